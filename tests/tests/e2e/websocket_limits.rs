//! The WebSocket limits of the security issue: the `Origin` allowlist, the caps on operations per
//! connection and connections per caller, keepalive pings, the query deadline, and the credential
//! re-check that closes a socket whose token was revoked. Each asserts the code that fired.

use std::time::Duration;

use banyan_devstack::{Backend, DevStackConfig, Fault};
use banyan_gateway::Config;
use banyan_tests::ws::{LEGACY_WS, TRANSPORT_WS, WsClient};
use banyan_tests::{OWNER, TestStack, eventually, template_id};
use serde_json::json;

const LIVE: &str = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
/// A user other than [`OWNER`] in the seeded data.
const OTHER: u64 = 2;

async fn stack_with(configure: impl FnOnce(&mut Config)) -> TestStack {
    TestStack::start_with(DevStackConfig::default(), configure).await
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_refused_with_403() {
    let stack = stack_with(|config| {
        config.cors.allowed_origins = vec!["https://app.example.com".to_owned()];
        config.websocket.allowed_origins = vec!["https://ws-only.example.com".to_owned()];
    })
    .await;
    let own = format!("http://{}", stack.gateway.addr());
    let session = format!("sessionid={}", stack.devstack.dataset().users[0].session_id);
    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let foreign = [("origin", "https://evil.example"), ("cookie", session.as_str())];
        assert_eq!(
            WsClient::try_connect(&stack, Some(protocol), &foreign).await.err(),
            Some(403),
            "{protocol}"
        );
        let other_port = format!("http://127.0.0.1:{}", stack.gateway.addr().port().wrapping_add(1));
        let lookalike = [("origin", other_port.as_str())];
        assert_eq!(WsClient::try_connect(&stack, Some(protocol), &lookalike).await.err(), Some(403));
        for allowed in [own.as_str(), "https://app.example.com", "https://ws-only.example.com"] {
            let headers = [("origin", allowed), ("cookie", session.as_str())];
            assert!(WsClient::try_connect(&stack, Some(protocol), &headers).await.is_ok(), "{allowed}");
        }
        // No Origin: not a browser, so no ambient cookie to hijack.
        assert!(WsClient::try_connect(&stack, Some(protocol), &[]).await.is_ok());
    }
    // The refusal is coded.
    let response = stack
        .http()
        .get(stack.graphql_url())
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", TRANSPORT_WS)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN_ORIGIN");
    stack.stop().await;
}

#[tokio::test]
async fn a_subscribe_over_the_per_connection_cap_gets_an_error_and_the_connection_stays() {
    let stack = stack_with(|config| config.websocket.max_subscriptions_per_connection = 2).await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("a", LIVE, json!({ "ids": [template_id(1)] })).await;
    socket.subscribe("b", LIVE, json!({ "ids": [template_id(2)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 2).await);
    socket.subscribe("c", LIVE, json!({ "ids": [template_id(4)] })).await;
    let refused = socket.next().await.expect("an answer");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "c");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS", "{refused}");
    assert_eq!(stack.devstack.active_event_streams(), 2, "the third never started");
    // Still up, and room again once one completes.
    socket.send(json!({ "id": "a", "type": "complete" })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    socket.subscribe("c", LIVE, json!({ "ids": [template_id(4)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 2).await, "the third runs now");
    stack.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_caller_cap_close_4429() {
    let stack = stack_with(|config| config.websocket.max_connections_per_caller = 2).await;
    let first = WsClient::signed_in(&stack, OWNER).await;
    let _second = WsClient::signed_in(&stack, OWNER).await;
    let mut third = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    third.init(json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    let ending = third.read_until_close(Duration::from_secs(10)).await;
    assert!(ending.messages.is_empty(), "no connection_ack: {:?}", ending.messages);
    assert_eq!(ending.close, Some((4429, "Too many connections for this caller".to_owned())));
    // Another user has a count of its own.
    let _other = WsClient::signed_in(&stack, OTHER).await;
    // A connection that ends frees its place (the server notices the close in its own time).
    first.close().await;
    let mut admitted = false;
    for _ in 0..100 {
        let mut retry = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
        retry.init(json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
        if retry.next().await.is_some_and(|answer| answer["type"] == "connection_ack") {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a place freed by a closed connection is given again");
    stack.stop().await;
}

#[tokio::test]
async fn anonymous_connections_count_per_address() {
    let stack = stack_with(|config| config.websocket.max_connections_per_caller = 1).await;
    let mut anonymous = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    anonymous.init(json!({})).await;
    assert_eq!(anonymous.next().await.expect("ack")["type"], "connection_ack");
    let mut again = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    again.init(json!({})).await;
    let ending = again.read_until_close(Duration::from_secs(10)).await;
    assert_eq!(ending.close, Some((4429, "Too many connections for this caller".to_owned())));
    // A signed-in user from the same address is counted as the user.
    let _user = WsClient::signed_in(&stack, OWNER).await;
    stack.stop().await;
}

#[tokio::test]
async fn the_server_pings_and_closes_a_client_that_never_answers() {
    let stack = stack_with(|config| config.websocket.keepalive_interval = Duration::from_millis(200)).await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    // This raw client reads but never answers: the server's ping, then the close.
    let ending = socket.read_until_close(Duration::from_secs(10)).await;
    assert_eq!(ending.messages, [json!({ "type": "ping" })], "one ping, unanswered, then the close");
    assert_eq!(ending.close, Some((1001, "Keepalive timeout: no message since the last ping".to_owned())));
    stack.stop().await;
}

#[tokio::test]
async fn a_client_answering_pings_stays_connected() {
    let stack = stack_with(|config| config.websocket.keepalive_interval = Duration::from_millis(100)).await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    for _ in 0..5 {
        let ping = socket.next_including_pings().await.expect("a ping");
        assert_eq!(ping, json!({ "type": "ping" }));
        socket.send(json!({ "type": "pong" })).await;
    }
    socket.subscribe("q", "{ me { id } }", json!({})).await;
    assert_eq!(socket.next().await.expect("next")["type"], "next", "still served after five pings");
    stack.stop().await;
}

#[tokio::test]
async fn a_query_past_the_operation_timeout_gets_a_coded_error_and_the_connection_stays() {
    let stack = stack_with(|config| {
        config.websocket.operation_timeout = Duration::from_millis(300);
        // The backend's own deadline is far away, so only the operation timeout can fire.
        config.backends.monolith.timeout = Duration::from_secs(60);
    })
    .await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    stack.devstack.faults().set(Backend::Monolith, Fault::hang());
    socket.subscribe("slow", "{ workspaces { id } }", json!({})).await;
    let next = socket.next().await.expect("an answer");
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "slow");
    assert_eq!(next["payload"]["errors"][0]["extensions"]["code"], "OPERATION_TIMEOUT", "{next}");
    assert_eq!(socket.next().await.expect("complete"), json!({ "id": "slow", "type": "complete" }));
    // The connection is still up.
    stack.devstack.faults().clear(Backend::Monolith);
    socket.send(json!({ "type": "ping", "payload": { "after": "timeout" } })).await;
    assert_eq!(
        socket.next().await.expect("pong"),
        json!({ "type": "pong", "payload": { "after": "timeout" } })
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_subscription_outlives_the_operation_timeout() {
    let stack = stack_with(|config| config.websocket.operation_timeout = Duration::from_millis(100)).await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("live", LIVE, json!({ "ids": [template_id(1)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    // Ordering, not timing: a query sent now and answered proves the subscription's deadline,
    // had it one, would have passed (the query's own 100 ms came and went while it ran).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sequences = stack.devstack.append_events(vec![(1, banyan_devstack::EventKind::Opened)]).await;
    let event = socket.next().await.expect("an event");
    assert_eq!(event["id"], "live", "{event}");
    assert_eq!(event["payload"]["data"]["templateEvents"]["sequence"], sequences[0].to_string());
    stack.stop().await;
}

#[tokio::test]
async fn a_revoked_token_closes_the_live_socket_with_4403() {
    let stack = stack_with(|config| {
        config.websocket.credential_recheck_interval = Duration::from_millis(200);
        config.auth.identity_cache_ttl = Duration::from_millis(100);
    })
    .await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    let mut other = WsClient::signed_in(&stack, OTHER).await;
    socket.subscribe("live", LIVE, json!({ "ids": [template_id(1)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    stack.devstack.revoke_token(&stack.token(OWNER));
    let ending = socket.read_until_close(Duration::from_secs(10)).await;
    assert_eq!(ending.close, Some((4403, "the credential is not valid".to_owned())));
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 0).await,
        "its subscription ended with it"
    );
    // Another user's connection is untouched.
    other.send(json!({ "type": "ping", "payload": { "still": "here" } })).await;
    assert_eq!(other.next().await.expect("pong")["payload"], json!({ "still": "here" }));
    stack.stop().await;
}

#[tokio::test]
async fn a_monolith_blip_during_a_recheck_keeps_the_socket() {
    let stack = stack_with(|config| {
        config.websocket.credential_recheck_interval = Duration::from_millis(100);
        config.auth.identity_cache_ttl = Duration::from_millis(50);
    })
    .await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    // The monolith answers 503 to every call (each is still counted): re-checks fail, twice at least.
    let before = stack.devstack.calls().count("GET /api/v1/me/");
    stack.devstack.faults().set(Backend::Monolith, Fault::error_rate(1.0));
    assert!(
        eventually(|| stack.devstack.calls().count("GET /api/v1/me/") >= before + 2).await,
        "re-checks reached the failing monolith"
    );
    stack.devstack.faults().clear(Backend::Monolith);
    socket.send(json!({ "type": "ping", "payload": { "n": 1 } })).await;
    assert_eq!(socket.next().await.expect("still open"), json!({ "type": "pong", "payload": { "n": 1 } }));
    stack.stop().await;
}

/// The older protocol cannot be used to get around the caller's connection cap or the re-check.
#[tokio::test]
async fn the_older_graphql_ws_protocol_has_the_same_connection_cap_and_recheck() {
    let stack = stack_with(|config| {
        config.websocket.max_connections_per_caller = 1;
        config.websocket.credential_recheck_interval = Duration::from_millis(200);
        config.auth.identity_cache_ttl = Duration::from_millis(100);
    })
    .await;
    let payload = json!({ "Authorization": format!("Token {}", stack.token(OWNER)) });
    let mut first = WsClient::connect(&stack, LEGACY_WS, &[]).await;
    first.init(payload.clone()).await;
    assert_eq!(first.next().await.expect("ack")["type"], "connection_ack");
    // Over the cap, counted across both protocols.
    for protocol in [LEGACY_WS, TRANSPORT_WS] {
        let mut second = WsClient::connect(&stack, protocol, &[]).await;
        second.init(payload.clone()).await;
        let ending = second.read_until_close(Duration::from_secs(10)).await;
        assert_eq!(
            ending.close,
            Some((4429, "Too many connections for this caller".to_owned())),
            "{protocol}"
        );
        if protocol == LEGACY_WS {
            assert_eq!(ending.messages[0]["type"], "connection_error", "{:?}", ending.messages);
            assert_eq!(ending.messages[0]["payload"]["extensions"]["code"], "TOO_MANY_CONNECTIONS");
        }
    }
    // Revoked while connected: closed 4403.
    stack.devstack.revoke_token(&stack.token(OWNER));
    let ending = first.read_until_close(Duration::from_secs(10)).await;
    assert_eq!(ending.close, Some((4403, "the credential is not valid".to_owned())));
    stack.stop().await;
}
