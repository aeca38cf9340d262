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
//! Each operation (not the connection) gets its own [`RequestScope`]: its loaders, one snapshot
//! of the routing table and its own request id (`<connection's>:<n>`), so a table reload never
//! splits an operation and a long-lived connection follows reloads. The routing headers
//! (`x-banyan-route`, `x-banyan-show-routing`) are read from the `connection_init` payload (as
//! browsers cannot set WebSocket headers) or else the upgrade request, and apply to every
//! operation of the connection; `extensions.routing` rides on each `next` payload.
//!
//! [`Authenticator::identify`]: crate::auth::Authenticator::identify

use std::any::TypeId;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, Executor};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::response::Response;
use banyan_resolvers::RequestScope;
use banyan_sources::{Caller, Credential};
use futures::stream::{BoxStream, SplitSink};
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AuthError, AuthRefusal, parse_authorization};
use crate::migration::{self, RoutingAsk, RoutingAskError};

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
    let headers = headers.clone();
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| {
        serve(app, socket, protocol, Upgrade { credential: upgrade_credential, request_id, headers })
    })
}

/// What the upgrade request brought.
struct Upgrade {
    credential: Result<Option<Credential>, AuthError>,
    request_id: Option<String>,
    headers: HeaderMap,
}

async fn serve(app: AppState, socket: WebSocket, protocol: GraphQLProtocol, upgrade: Upgrade) {
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
    let executor = OperationScopes { app: app.clone() };
    let init_state = state.clone();
    let graphql = GraphQLWebSocket::new_with_pair(outgoing, stream, executor, protocol)
        .on_connection_init(move |payload| {
            init_state.initialized.store(true, Ordering::Release);
            connection_data(app, payload, upgrade, init_state)
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
    upgrade: Upgrade,
    state: Arc<ConnectionState>,
) -> async_graphql::Result<Data> {
    let credential = match payload_credential(&payload) {
        Some(Ok(key)) => Ok(Some(Credential::Token(key))),
        Some(Err(error)) => Err(error),
        None => upgrade.credential,
    };
    let refuse = |refusal: AuthRefusal| {
        state.refuse(refusal);
        Err(async_graphql::Error::new(refusal.message))
    };
    let caller = match app.auth.identify(credential, upgrade.request_id.clone()).await {
        Ok(caller) => caller.map(|caller| app.auth.with_forwarded_headers(caller, &upgrade.headers)),
        Err(error) => return refuse(error.refusal()),
    };
    let headers = RoutingHeaders { payload, upgrade: upgrade.headers };
    let ask = match app.routing_policy.ask(app.engine.catalog(), |name| headers.get(name)) {
        Ok(ask) => ask,
        Err(error) => return refuse(routing_refusal(&error)),
    };
    let mut data = Data::default();
    if let Some(caller) = caller {
        let request_id = upgrade.request_id.unwrap_or_else(|| crate::graphql_http::uuid_like(&caller));
        data.insert(ConnectionIdentity { caller, ask, headers, request_id, operations: AtomicU64::new(0) });
    }
    Ok(data)
}

/// How a refused routing header closes the connection.
fn routing_refusal(error: &RoutingAskError) -> AuthRefusal {
    let (status, code) = error.status_and_code();
    let message = match error {
        RoutingAskError::OverrideNotAllowed => "the x-banyan-route header is not allowed here",
        RoutingAskError::BadOverride(_) => "the x-banyan-route header does not parse",
    };
    AuthRefusal { status, close_code: crate::auth::CLOSE_FORBIDDEN, code, message }
}

/// What `connection_init` settled for every operation of the connection.
struct ConnectionIdentity {
    caller: Caller,
    ask: RoutingAsk,
    headers: RoutingHeaders,
    /// The upgrade request's id; operation `n` is `<id>:<n>`.
    request_id: String,
    operations: AtomicU64,
}

/// Routing headers of a connection: the `connection_init` payload's (top level or under
/// `headers`, any case), else the upgrade request's.
struct RoutingHeaders {
    payload: Value,
    upgrade: HeaderMap,
}

impl RoutingHeaders {
    fn get(&self, name: &str) -> Option<&str> {
        fn find<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
            object
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| value.as_str())
        }
        let from_payload = self.payload.as_object().and_then(|object| {
            find(object, name).or_else(|| {
                object.get("headers").and_then(Value::as_object).and_then(|nested| find(nested, name))
            })
        });
        from_payload.or_else(|| self.upgrade.get(name).and_then(|value| value.to_str().ok()))
    }
}

/// The schema, giving each WebSocket operation its own [`RequestScope`].
#[derive(Clone)]
struct OperationScopes {
    app: AppState,
}

impl Executor for OperationScopes {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.app.schema.execute(request).await
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let session_data = session_data.unwrap_or_default();
        let identity = session_data
            .get(&TypeId::of::<ConnectionIdentity>())
            .and_then(|data| data.downcast_ref::<ConnectionIdentity>());
        let mut served = None;
        if let Some(identity) = identity {
            let n = identity.operations.fetch_add(1, Ordering::Relaxed);
            let (routing, log) = migration::request_routing(
                &self.app.engine,
                &identity.caller,
                format!("{}:{n}", identity.request_id),
                identity.ask.clone(),
                |name| identity.headers.get(name),
            );
            served = log;
            request = request.data(RequestScope::new(&self.app.sources, identity.caller.clone(), routing));
        }
        let stream = self.app.schema.execute_stream_with_session_data(request, session_data);
        match served {
            None => stream,
            Some(log) => stream
                .map(move |mut response| {
                    if !log.is_empty() {
                        response.extensions.insert("routing".to_owned(), migration::routing_extension(&log));
                    }
                    response
                })
                .boxed(),
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
