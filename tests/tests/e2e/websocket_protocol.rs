//! graphql-transport-ws conformance, one test per rule of the protocol (graphql-ws's
//! PROTOCOL.md) a client can observe, with a raw WebSocket client: close codes and their exact
//! reasons, `error` (and no `complete`) for documents that do not parse or validate, duplicate
//! ids, invalid messages, reasons that fit a close frame, ping and pong with payloads, and what
//! already held (the subprotocol handshake, queries through `subscribe`, ids reused after
//! `complete`, two subscriptions at once, the message size cap).
//!
//! The close for a silent socket (4408) and for a refused credential (4403) are in
//! `websocket_auth.rs`.

use std::time::Duration;

use banyan_devstack::{DevStackConfig, EventKind};
use banyan_tests::ws::{Ending, TRANSPORT_WS, WsClient};
use banyan_tests::{OWNER, TestStack, eventually, template_id, user_id};
use serde_json::{Value, json};

const LIVE: &str = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { templateId kind } }";

async fn until_close(socket: &mut WsClient) -> Ending {
    socket.read_until_close(Duration::from_secs(10)).await
}

/// Sends a `ping` with a payload of its own and reads the answer: what the server sent between
/// is whatever `next` returns first, so "the next message is this pong" proves nothing came before.
async fn assert_next_is_pong(socket: &mut WsClient, marker: &str) {
    socket.send(json!({ "type": "ping", "payload": { "marker": marker } })).await;
    let answer = socket.next().await.expect("an answer to ping");
    assert_eq!(answer, json!({ "type": "pong", "payload": { "marker": marker } }));
}

#[tokio::test]
async fn unknown_or_missing_subprotocols_are_refused_at_the_handshake() {
    let stack = TestStack::start().await;
    assert_eq!(WsClient::try_connect(&stack, Some("graphql-unknown"), &[]).await.err(), Some(400));
    assert_eq!(WsClient::try_connect(&stack, None, &[]).await.err(), Some(400));
    assert!(WsClient::try_connect(&stack, Some(TRANSPORT_WS), &[]).await.is_ok());
    stack.stop().await;
}

#[tokio::test]
async fn subscribe_before_connection_init_closes_4401() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    socket.subscribe("1", "{ __typename }", json!({})).await;
    let ending = until_close(&mut socket).await;
    assert!(ending.messages.is_empty(), "{:?}", ending.messages);
    assert_eq!(ending.close, Some((4401, "Unauthorized".to_owned())));
    stack.stop().await;
}

#[tokio::test]
async fn a_second_connection_init_closes_4429() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.init(json!({})).await;
    let ending = until_close(&mut socket).await;
    assert_eq!(ending.close, Some((4429, "Too many initialisation requests".to_owned())));
    stack.stop().await;
}

#[tokio::test]
async fn a_document_that_does_not_parse_gets_one_error_and_no_complete() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("p", "{ me { id }", json!({})).await;
    let message = socket.next().await.expect("an answer");
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["id"], "p");
    let errors = message["payload"].as_array().expect("payload is the list of GraphQL errors");
    assert_eq!(errors.len(), 1, "{message}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{message}");
    assert!(errors[0]["locations"].is_array(), "a syntax error says where: {message}");
    // No `complete` after `error`: the next thing the server says is the pong.
    assert_next_is_pong(&mut socket, "after-parse-error").await;
    stack.stop().await;
}

#[tokio::test]
async fn a_document_that_fails_validation_gets_one_error_and_no_complete() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("v", "{ me { id noSuchField } }", json!({})).await;
    let message = socket.next().await.expect("an answer");
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["id"], "v");
    let errors = message["payload"].as_array().expect("payload is the list of GraphQL errors");
    assert!(
        errors.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains("noSuchField"))),
        "{message}"
    );
    assert!(errors.iter().all(|e| e.get("path").is_none()), "request errors have no path: {message}");
    assert_next_is_pong(&mut socket, "after-validation-error").await;
    // The id is free again: the operation never ran.
    socket.subscribe("v", "{ me { id } }", json!({})).await;
    assert_eq!(socket.next().await.expect("next")["type"], "next");
    stack.stop().await;
}

#[tokio::test]
async fn a_query_through_subscribe_gets_next_then_complete_and_its_id_can_be_reused() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    for _ in 0..2 {
        socket.subscribe("q", "{ me { id } }", json!({})).await;
        let next = socket.next().await.expect("next");
        assert_eq!(
            next,
            json!({ "id": "q", "type": "next", "payload": { "data": { "me": { "id": user_id(OWNER) } } } })
        );
        assert_eq!(socket.next().await.expect("complete"), json!({ "id": "q", "type": "complete" }));
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_duplicate_id_of_a_running_subscription_closes_4409() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("a", LIVE, json!({ "ids": [template_id(4)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    socket.subscribe("a", LIVE, json!({ "ids": [template_id(4)] })).await;
    let ending = until_close(&mut socket).await;
    assert_eq!(ending.close, Some((4409, "Subscriber for a already exists".to_owned())));
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 0).await,
        "the closed connection's stream ended"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_long_duplicate_id_still_gets_a_valid_close_frame() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    let id = "x".repeat(300);
    socket.subscribe(&id, LIVE, json!({ "ids": [template_id(4)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    socket.subscribe(&id, LIVE, json!({ "ids": [template_id(4)] })).await;
    let ending = until_close(&mut socket).await;
    // A frame the client could parse at all proves it fit (a longer one is a protocol error, 1006).
    let (code, reason) = ending.close.expect("a close frame, not a dropped connection");
    assert_eq!(code, 4409);
    assert!(reason.len() <= 123, "{} bytes", reason.len());
    assert!(reason.starts_with("Subscriber for xxxx") && reason.ends_with("… already exists"), "{reason}");
    stack.stop().await;
}

#[tokio::test]
async fn the_clients_complete_ends_a_subscription_and_frees_its_id() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("a", LIVE, json!({ "ids": [template_id(4)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    socket.send(json!({ "id": "a", "type": "complete" })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 0).await, "complete cancels the stream");
    // No `complete` echoed for a client's complete; the id is free.
    socket.subscribe("a", "{ me { id } }", json!({})).await;
    let next = socket.next().await.expect("next");
    assert_eq!((next["id"].clone(), next["type"].clone()), (json!("a"), json!("next")), "{next}");
    stack.stop().await;
}

#[tokio::test]
async fn two_subscriptions_run_at_once() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("one", LIVE, json!({ "ids": [template_id(1)] })).await;
    socket.subscribe("two", LIVE, json!({ "ids": [template_id(2)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 2).await);
    stack.devstack.append_events(vec![(1, EventKind::Opened), (2, EventKind::Clicked)]).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = socket.next().await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        let event = &message["payload"]["data"]["templateEvents"];
        seen.push((message["id"].clone(), event["templateId"].clone(), event["kind"].clone()));
    }
    seen.sort_by_key(|(id, _, _)| id.to_string());
    assert_eq!(
        seen,
        [
            (json!("one"), json!(template_id(1)), json!("OPENED")),
            (json!("two"), json!(template_id(2)), json!("CLICKED")),
        ]
    );
    stack.stop().await;
}

#[tokio::test]
async fn pings_are_answered_at_any_time_with_their_payload() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    // Before connection_init.
    assert_next_is_pong(&mut socket, "before-init").await;
    socket.send(json!({ "type": "ping" })).await;
    assert_eq!(socket.next().await.expect("pong"), json!({ "type": "pong" }));
    socket.init(json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    assert_eq!(socket.next().await.expect("ack")["type"], "connection_ack");
    // A client's pong (unsolicited, with a payload) is accepted.
    socket.send(json!({ "type": "pong", "payload": { "rtt": 3 } })).await;
    assert_next_is_pong(&mut socket, "after-init").await;
    stack.stop().await;
}

/// Each invalid message closes 4400 with its reason. `init_first` sends an acknowledged
/// `connection_init` before it, so the 4400 is for the message itself, not for its timing.
async fn assert_invalid(stack: &TestStack, init_first: bool, message: &str, reason: &str) {
    let mut socket = if init_first {
        WsClient::signed_in(stack, OWNER).await
    } else {
        WsClient::connect(stack, TRANSPORT_WS, &[]).await
    };
    socket.send_text(message.to_owned()).await;
    let ending = until_close(&mut socket).await;
    assert!(ending.messages.is_empty(), "{message}: {:?}", ending.messages);
    assert_eq!(ending.close, Some((4400, reason.to_owned())), "{message}");
}

#[tokio::test]
async fn invalid_messages_close_4400_with_a_reason() {
    let stack = TestStack::start().await;
    let not_json = "Invalid message received: not JSON";
    let no_type = "Invalid message received: not an object with a string type";
    let unexpected = "Invalid message received: unknown type, or one only a server sends";
    let not_object = "Invalid message received: payload must be an object";
    let no_id = "Invalid message received: id must be a non-empty string";
    let bad_payload = "Invalid message received: subscribe needs a payload with a string query";
    let cases: &[(bool, &str, &str)] = &[
        (false, "not json", not_json),
        (false, "{\"type\": \"connection_init\"", not_json),
        (false, "{\"payload\": {}}", no_type),
        (false, "{\"type\": 42}", no_type),
        (false, "[\"connection_init\"]", no_type),
        (false, "{\"type\": \"hello\"}", unexpected),
        (false, "{\"type\": \"connection_init\", \"payload\": \"Token abc\"}", not_object),
        (false, "{\"type\": \"connection_init\", \"payload\": [1]}", not_object),
        (false, "{\"type\": \"ping\", \"payload\": 5}", not_object),
        (true, "{\"type\": \"next\", \"id\": \"1\", \"payload\": {\"data\": {}}}", unexpected),
        (true, "{\"type\": \"connection_ack\"}", unexpected),
        (true, "{\"type\": \"error\", \"id\": \"1\", \"payload\": []}", unexpected),
        (true, "{\"type\": \"subscribe\", \"payload\": {\"query\": \"{ __typename }\"}}", no_id),
        (
            true,
            "{\"type\": \"subscribe\", \"id\": \"\", \"payload\": {\"query\": \"{ __typename }\"}}",
            no_id,
        ),
        (true, "{\"type\": \"subscribe\", \"id\": 7, \"payload\": {\"query\": \"{ __typename }\"}}", no_id),
        (true, "{\"type\": \"subscribe\", \"id\": \"1\"}", bad_payload),
        (true, "{\"type\": \"subscribe\", \"id\": \"1\", \"payload\": {}}", bad_payload),
        (true, "{\"type\": \"subscribe\", \"id\": \"1\", \"payload\": {\"variables\": {}}}", bad_payload),
        (true, "{\"type\": \"subscribe\", \"id\": \"1\", \"payload\": {\"query\": 42}}", bad_payload),
        (
            true,
            "{\"type\": \"subscribe\", \"id\": \"1\", \"payload\": {\"query\": \"{ a }\", \"variables\": []}}",
            bad_payload,
        ),
        (true, "{\"type\": \"complete\"}", no_id),
    ];
    for (init_first, message, reason) in cases {
        assert_invalid(&stack, *init_first, message, reason).await;
        assert!(reason.len() <= 123);
    }
    // A subscribe without an id is invalid before it is early: 4400, not 4401.
    assert_invalid(&stack, false, "{\"type\": \"subscribe\", \"payload\": {\"query\": \"{ a }\"}}", no_id)
        .await;
    stack.stop().await;
}

#[tokio::test]
async fn a_binary_frame_closes_4400() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.send_binary(b"{\"type\":\"ping\"}".to_vec()).await;
    let ending = until_close(&mut socket).await;
    assert_eq!(
        ending.close,
        Some((4400, "Invalid message received: binary frames are not part of the protocol".to_owned()))
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_message_over_max_body_bytes_closes_1009_and_one_under_it_is_served() {
    let max = 4096;
    let stack =
        TestStack::start_with(DevStackConfig::default(), |config| config.server.max_body_bytes = max).await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    // Padded with a comment to an exact size, just under and just over the cap.
    let sized = banyan_tests::ws::subscribe_message_of_size;
    let under = sized(max);
    assert_eq!(under.len(), max);
    assert!(socket.send_text(under).await);
    assert_eq!(socket.next().await.expect("served")["type"], "next");
    assert_eq!(socket.next().await.expect("complete")["type"], "complete");
    let over = sized(max + 1);
    assert_eq!(over.len(), max + 1);
    socket.send_text(over).await;
    let ending = until_close(&mut socket).await;
    assert_eq!(ending.close, Some((1009, "Message too big".to_owned())));
    stack.stop().await;
}

/// Every close reason a client can meet fits the frame: checked on the wire for the longest ones.
#[tokio::test]
async fn close_reasons_fit_a_close_frame_on_the_wire() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    socket.send(json!({ "type": "next", "id": "x".repeat(400), "payload": Value::Null })).await;
    let (code, reason) = until_close(&mut socket).await.close.expect("a parsable close frame");
    assert_eq!(code, 4400);
    assert!(reason.len() <= 123, "{reason}");
    stack.stop().await;
}

#[tokio::test]
async fn the_older_graphql_ws_protocol_still_serves_operations() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::connect(&stack, banyan_tests::ws::LEGACY_WS, &[]).await;
    socket.init(json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    assert_eq!(socket.next().await.expect("ack")["type"], "connection_ack");
    socket.send(json!({ "id": "1", "type": "start", "payload": { "query": "{ me { id } }" } })).await;
    let mut messages = Vec::new();
    while messages.len() < 2 {
        let message = socket.next().await.expect("an answer");
        if message["type"] != "ka" {
            messages.push(message);
        }
    }
    assert_eq!(
        messages,
        [
            json!({ "id": "1", "type": "data", "payload": { "data": { "me": { "id": user_id(OWNER) } } } }),
            json!({ "id": "1", "type": "complete" }),
        ]
    );
    stack.stop().await;
}
