//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`).
//! The caller is identified once per connection: from the `connection_init` payload
//! (`{"Authorization": "Token <key>"}`), or else from the upgrade request's header or cookie.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message};
use axum::response::Response;
use banyan_resolvers::RequestScope;
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::parse_authorization;

/// Upgrades the connection and serves subscriptions on it until either side closes. A client
/// that has not sent `connection_init` within `init_timeout` is disconnected, so idle sockets
/// cannot pile up.
pub(crate) fn upgrade(
    app: AppState,
    upgrade: WebSocketUpgrade,
    protocol: GraphQLProtocol,
    headers: &HeaderMap,
) -> Response {
    let upgrade_credential = app.auth.credential(headers).ok().flatten();
    let init_timeout = app.websocket_init_timeout;
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        let schema = app.schema.clone();
        let (mut sink, stream) = socket.split();
        let initialized = Arc::new(AtomicBool::new(false));
        let timed_out = Arc::new(AtomicBool::new(false));
        let give_up = {
            let (initialized, timed_out) = (initialized.clone(), timed_out.clone());
            async move {
                tokio::time::sleep(init_timeout).await;
                if initialized.load(Ordering::Acquire) {
                    std::future::pending::<()>().await;
                }
                timed_out.store(true, Ordering::Release);
                tracing::debug!("closing a WebSocket that sent no connection_init");
            }
        };
        // Ending the incoming stream ends the connection.
        let stream = stream.take_until(give_up);
        GraphQLWebSocket::new_with_pair(&mut sink, stream, schema, protocol)
            .on_connection_init(move |payload| {
                initialized.store(true, Ordering::Release);
                connection_data(app, payload, upgrade_credential)
            })
            .serve()
            .await;
        if timed_out.load(Ordering::Acquire) {
            // graphql-transport-ws: "4408: Connection initialisation timeout".
            let close = CloseFrame {
                code: INIT_TIMEOUT_CLOSE_CODE,
                reason: "Connection initialisation timeout".into(),
            };
            let _ = sink.send(Message::Close(Some(close))).await;
        }
    })
}

/// The close code for a socket that sent no `connection_init` in time (graphql-transport-ws).
const INIT_TIMEOUT_CLOSE_CODE: u16 = 4408;

async fn connection_data(
    app: AppState,
    payload: Value,
    upgrade_credential: Option<String>,
) -> async_graphql::Result<Data> {
    let mut data = Data::default();
    let credential = match payload_credential(&payload) {
        Some(Ok(token)) => Some(token),
        Some(Err(())) => {
            return Err(async_graphql::Error::new(
                "the Authorization value must be `Token <key>` or `Bearer <key>`",
            ));
        }
        None => upgrade_credential,
    };
    if let Some(token) = credential {
        let caller =
            app.auth.caller(token, None).await.map_err(|e| async_graphql::Error::new(e.to_string()))?;
        data.insert(RequestScope::new(&app.sources, caller));
    }
    Ok(data)
}

/// The credential in a `connection_init` payload, under `Authorization` (any case) or
/// `headers.Authorization`, as some clients nest it.
fn payload_credential(payload: &Value) -> Option<Result<String, ()>> {
    let find = |object: &serde_json::Map<String, Value>| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| value.as_str().map(str::to_owned))
    };
    let object = payload.as_object()?;
    let value = find(object).or_else(|| object.get("headers").and_then(Value::as_object).and_then(find))?;
    Some(parse_authorization(&value).map_err(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_from_payload() {
        assert_eq!(payload_credential(&json!({"Authorization": "Token k"})), Some(Ok("k".to_owned())));
        assert_eq!(
            payload_credential(&json!({"headers": {"authorization": "Bearer k"}})),
            Some(Ok("k".to_owned()))
        );
        assert_eq!(payload_credential(&json!({"Authorization": "k"})), Some(Err(())));
        assert_eq!(payload_credential(&json!({})), None);
        assert_eq!(payload_credential(&Value::Null), None);
    }
}
