//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`).
//! The caller is identified once per connection, by the same [`Authenticator::identify`] as HTTP:
//! from the `connection_init` payload (`{"Authorization": "Token <key>"}`), or else from the
//! upgrade request's header or session cookie.
//!
//! How a connection ends, beyond what async-graphql decides:
//! - a refused credential: close code 4403 (graphql-transport-ws's "Forbidden");
//! - the identity backend unavailable or too slow: 1013 ("Try Again Later"); answering
//!   unexpectedly: 1011 ("Internal Error"); see [`AuthError::refusal`];
//! - no `connection_init` within `server.websocket_init_timeout`: 4408 ("Connection
//!   initialisation timeout").
//!
//! The close reason is the refusal's safe message; on the older `graphql-ws` protocol a
//! `connection_error` with `extensions.code` comes first. Internal detail only reaches the log.
//!
//! [`Authenticator::identify`]: crate::auth::Authenticator::identify

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::response::Response;
use banyan_resolvers::RequestScope;
use banyan_sources::Credential;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AuthError, AuthRefusal, parse_authorization};

/// graphql-transport-ws's close code for a socket that sent no `connection_init` in time.
pub(crate) const CLOSE_INIT_TIMEOUT: u16 = 4408;

/// Frames buffered between async-graphql and the socket.
const OUTGOING_BUFFER: usize = 16;

/// What the connection's two halves (async-graphql's protocol, and the frame writer) share.
#[derive(Default)]
struct ConnectionState {
    /// `connection_init` arrived.
    initialized: AtomicBool,
    /// The init timeout ended the connection.
    timed_out: AtomicBool,
    /// Why `connection_init` was refused, for the writer to say so.
    refusal: Mutex<Option<AuthRefusal>>,
}

impl ConnectionState {
    fn refuse(&self, refusal: AuthRefusal) {
        *self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refusal);
    }

    fn refusal(&self) -> Option<AuthRefusal> {
        *self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Upgrades the connection and serves subscriptions on it until either side closes. A client
/// that has not sent `connection_init` within `init_timeout` is disconnected, so idle sockets
/// cannot pile up.
pub(crate) fn upgrade(
    app: AppState,
    upgrade: WebSocketUpgrade,
    protocol: GraphQLProtocol,
    headers: &HeaderMap,
) -> Response {
    let upgrade_credential = app.auth.credential(headers);
    let request_id = crate::auth::request_id(headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(app, socket, protocol, upgrade_credential, request_id))
}

async fn serve(
    app: AppState,
    socket: WebSocket,
    protocol: GraphQLProtocol,
    upgrade_credential: Result<Option<Credential>, AuthError>,
    request_id: Option<String>,
) {
    let state = Arc::new(ConnectionState::default());
    let (sink, stream) = socket.split();
    let give_up = {
        let state = state.clone();
        let init_timeout = app.websocket_init_timeout;
        async move {
            tokio::time::sleep(init_timeout).await;
            if state.initialized.load(Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
            state.timed_out.store(true, Ordering::Release);
            tracing::debug!("closing a WebSocket that sent no connection_init");
        }
    };
    // Ending the incoming stream ends the connection.
    let stream = stream.take_until(give_up);
    // async-graphql writes into a channel, so its frames can be adjusted on the way out.
    let (outgoing, frames) = futures::channel::mpsc::channel(OUTGOING_BUFFER);
    let schema = app.schema.clone();
    let init_state = state.clone();
    let graphql = GraphQLWebSocket::new_with_pair(outgoing, stream, schema, protocol)
        .on_connection_init(move |payload| {
            init_state.initialized.store(true, Ordering::Release);
            connection_data(app, payload, upgrade_credential, request_id, init_state)
        })
        .serve();
    futures::join!(graphql, write_frames(sink, frames, &state));
}

/// Copies async-graphql's frames to the socket, except that a refused `connection_init` closes
/// with the refusal's close code and message (async-graphql would close with 1002 and the error's
/// message), and a socket ended by the init timeout gets a close frame saying so.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: futures::channel::mpsc::Receiver<Message>,
    state: &ConnectionState,
) {
    while let Some(frame) = frames.next().await {
        if let Some(refusal) = state.refusal()
            && is_init_failure(&frame)
        {
            if matches!(frame, Message::Text(_)) {
                // The older graphql-ws protocol: a connection_error, then the close.
                let error = json!({
                    "type": "connection_error",
                    "payload": { "message": refusal.message, "extensions": { "code": refusal.code } },
                });
                let _ = sink.send(Message::Text(error.to_string().into())).await;
            }
            let _ = sink.send(close(refusal.close_code, refusal.message)).await;
            return;
        }
        if sink.send(frame).await.is_err() {
            return;
        }
    }
    if state.timed_out.load(Ordering::Acquire) {
        let _ = sink.send(close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout")).await;
    }
}

/// The frame async-graphql sends when `connection_init` fails: a close (graphql-transport-ws) or
/// a `connection_error` message (graphql-ws).
fn is_init_failure(frame: &Message) -> bool {
    match frame {
        Message::Close(_) => true,
        Message::Text(text) => serde_json::from_str::<Value>(text.as_str())
            .is_ok_and(|message| message["type"] == "connection_error"),
        _ => false,
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

async fn connection_data(
    app: AppState,
    payload: Value,
    upgrade_credential: Result<Option<Credential>, AuthError>,
    request_id: Option<String>,
    state: Arc<ConnectionState>,
) -> async_graphql::Result<Data> {
    let credential = match payload_credential(&payload) {
        Some(Ok(key)) => Ok(Some(Credential::Token(key))),
        Some(Err(error)) => Err(error),
        None => upgrade_credential,
    };
    match app.auth.identify(credential, request_id).await {
        Ok(caller) => {
            let mut data = Data::default();
            if let Some(caller) = caller {
                data.insert(RequestScope::new(&app.sources, caller));
            }
            Ok(data)
        }
        Err(error) => {
            let refusal = error.refusal();
            state.refuse(refusal);
            Err(async_graphql::Error::new(refusal.message))
        }
    }
}

/// The credential in a `connection_init` payload, under `Authorization` (any case) or
/// `headers.Authorization`, as some clients nest it.
fn payload_credential(payload: &Value) -> Option<Result<String, AuthError>> {
    let find = |object: &serde_json::Map<String, Value>| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| value.as_str().map(str::to_owned))
    };
    let object = payload.as_object()?;
    let value = find(object).or_else(|| object.get("headers").and_then(Value::as_object).and_then(find))?;
    Some(parse_authorization(&value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_from_payload() {
        let key = |payload: Value| payload_credential(&payload).map(|r| r.ok());
        assert_eq!(key(json!({"Authorization": "Token k"})), Some(Some("k".to_owned())));
        assert_eq!(key(json!({"headers": {"authorization": "Bearer k"}})), Some(Some("k".to_owned())));
        assert_eq!(key(json!({"Authorization": "k"})), Some(None));
        assert_eq!(key(json!({})), None);
        assert_eq!(key(Value::Null), None);
    }
}
