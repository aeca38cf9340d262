//! The identity check of a WebSocket's `connection_init` is the HTTP path's: the same refusals,
//! shown as close codes with safe reasons (4403 for a refused credential, 1013 "Try Again Later"
//! when the identity backend is down), never the backend's URL or body.

use std::time::Duration;

use banyan_devstack::{Backend, Fault};
use banyan_tests::ws::{Ending, LEGACY_WS, TRANSPORT_WS, WsClient};
use banyan_tests::{OWNER, TestStack};
use serde_json::{Value, json};

/// Opens a socket with `protocol` (and an `x-request-id`), sends `connection_init` with
/// `payload`, and reads until the server closes.
async fn init_and_read_until_close(stack: &TestStack, protocol: &str, payload: Value) -> Ending {
    let mut socket = WsClient::connect(stack, protocol, &[("x-request-id", "ws-identity-check")]).await;
    socket.init(payload).await;
    socket.read_until_close(Duration::from_secs(10)).await
}

fn token_payload(stack: &TestStack) -> Value {
    json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })
}

/// Nothing internal in a reason or message: no address, no URL, no backend body or status.
fn assert_nothing_internal(stack: &TestStack, text: &str) {
    let monolith = stack.devstack.monolith_addr().to_string();
    for internal in
        [monolith.as_str(), "127.0.0.1", "http", "/api/v1", "Service temporarily", "503", "error sending"]
    {
        assert!(!text.contains(internal), "{internal:?} leaked in {text:?}");
    }
}

const UNAVAILABLE: &str = "the identity backend is unavailable; try again";

#[tokio::test]
async fn a_monolith_that_refuses_connections_at_connection_init_closes_with_1013() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Monolith, Fault { refuse_connections: true, ..Fault::default() });
    let ending = init_and_read_until_close(&stack, TRANSPORT_WS, token_payload(&stack)).await;
    assert!(ending.messages.is_empty(), "no connection_ack: {:?}", ending.messages);
    assert_eq!(ending.close, Some((1013, UNAVAILABLE.to_owned())));
    assert_nothing_internal(&stack, UNAVAILABLE);
    stack.stop().await;
}

#[tokio::test]
async fn a_monolith_answering_5xx_at_connection_init_closes_with_1013_and_no_body() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Monolith, Fault { error_rate: 1.0, ..Fault::default() });
    let ending = init_and_read_until_close(&stack, TRANSPORT_WS, token_payload(&stack)).await;
    assert!(ending.messages.is_empty(), "no connection_ack: {:?}", ending.messages);
    let (code, reason) = ending.close.expect("a close frame");
    assert_eq!(code, 1013);
    assert_eq!(reason, UNAVAILABLE);
    assert_nothing_internal(&stack, &reason);
    // The identity check went to the monolith with the upgrade's request id.
    let me = stack.devstack.calls().last_headers("GET /api/v1/me/").expect("the monolith was asked");
    assert_eq!(me.get("x-request-id").map(String::as_str), Some("ws-identity-check"));

    // HTTP gets the same refusal from the same table: status, code and message.
    let response = stack.graphql("{ me { id } }", json!({})).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_codes(), ["BACKEND_UNAVAILABLE"]);
    assert_eq!(response.body["errors"][0]["message"], UNAVAILABLE);
    stack.stop().await;
}

#[tokio::test]
async fn the_older_graphql_ws_protocol_gets_a_coded_connection_error_then_the_close() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Monolith, Fault { error_rate: 1.0, ..Fault::default() });
    let ending = init_and_read_until_close(&stack, LEGACY_WS, token_payload(&stack)).await;
    assert_eq!(
        ending.messages,
        [json!({
            "type": "connection_error",
            "payload": { "message": UNAVAILABLE, "extensions": { "code": "BACKEND_UNAVAILABLE" } }
        })]
    );
    assert_eq!(ending.close, Some((1013, UNAVAILABLE.to_owned())));
    stack.stop().await;
}

#[tokio::test]
async fn refused_credentials_close_with_4403() {
    let stack = TestStack::start().await;
    let cases = [
        (
            json!({ "Authorization": "Token 0000000000000000000000000000000000000000" }),
            "the credential is not valid",
        ),
        (
            json!({ "Authorization": "Basic abc" }),
            "the Authorization value must be `Token <key>` or `Bearer <key>`",
        ),
    ];
    for (payload, reason) in cases {
        let ending = init_and_read_until_close(&stack, TRANSPORT_WS, payload.clone()).await;
        assert!(ending.messages.is_empty(), "{payload}: {:?}", ending.messages);
        assert_eq!(ending.close, Some((4403, reason.to_owned())), "{payload}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_socket_silent_past_the_init_timeout_closes_with_4408() {
    let stack = TestStack::start_with(banyan_devstack::DevStackConfig::default(), |config| {
        config.server.websocket_init_timeout = Duration::from_millis(500);
    })
    .await;
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    let ending = socket.read_until_close(Duration::from_secs(10)).await;
    assert!(ending.messages.is_empty(), "{:?}", ending.messages);
    assert_eq!(ending.close, Some((4408, "Connection initialisation timeout".to_owned())));
    stack.stop().await;
}
