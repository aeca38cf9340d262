//! What an open WebSocket subscription keeps in memory, and the `[websocket]` keys that size it:
//! `read_buffer_size` (every connection's read buffer), `max_message_size`.

use std::time::Duration;

use banyan_devstack::{DevStackConfig, EventKind};
use banyan_tests::ws::{TRANSPORT_WS, WsClient};
use banyan_tests::{OWNER, TestStack, template_id};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Subscribers held open at once: 2 descriptors each in this process (client and gateway side),
/// well under the usual soft limit of 1024, which tests do not raise.
const SUBSCRIBERS: usize = 200;
/// A bound on one read, against a gateway that never answers (not a measurement).
const READ_BOUND: Duration = Duration::from_secs(20);

/// `VmRSS` of this process (gateway, devstack and clients together), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// A client that costs little itself (a 4 KiB read buffer), so the gateway's share dominates.
async fn subscriber(stack: &TestStack, token: &str, templates: &Value) -> Socket {
    let mut request = stack.websocket_url().into_client_request().expect("a ws URL");
    request.headers_mut().insert("sec-websocket-protocol", TRANSPORT_WS.parse().expect("a header value"));
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await.expect("the upgrade");
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Token {token}") } });
    socket.send(Message::text(init.to_string())).await.expect("sent");
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({ "id": "feed", "type": "subscribe", "payload": {
        "query": "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }",
        "variables": { "ids": templates },
    } });
    socket.send(Message::text(subscribe.to_string())).await.expect("sent");
    socket
}

/// The next protocol message other than a keepalive `ping` (which is answered).
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(READ_BOUND, socket.next())
            .await
            .expect("a frame within the bound")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if message["type"] != "ping" {
                return message;
            }
            // The keepalive's ping: answered, as a client that stays must.
            socket.send(Message::text(r#"{"type":"pong"}"#)).await.expect("sent");
        }
    }
}

/// Waits (bounded) until every socket has received an event, appending one to `template` until
/// then: only a running subscription receives it, however the gateway shares upstream streams.
async fn until_every_subscription_runs(stack: &TestStack, template: u64, sockets: &mut [Socket]) {
    for socket in sockets.iter_mut() {
        let mut delivered = false;
        for _ in 0..20 {
            stack.devstack.append_events(vec![(template, EventKind::Delivered)]).await;
            let read = tokio::time::timeout(Duration::from_millis(500), next_json(socket)).await;
            if let Ok(message) = read {
                assert_eq!(message["type"], "next", "{message}");
                delivered = true;
                break;
            }
        }
        assert!(delivered, "a subscription received no event");
    }
}

/// Regression (issue 13): an idle subscriber cost the gateway ~171 KiB, 128 KiB of it
/// tungstenite's default read buffer, allocated and zeroed for every connection. Measured here
/// (the whole process: gateway, devstack with one stream per subscription, clients with small
/// buffers, debug build): 229 KiB per subscriber with `read_buffer_size = 131072`, 109 KiB with
/// the default. The bound sits between, with room for allocator noise on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_subscriber_costs_kilobytes_not_a_read_buffer_each() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.max_connections_per_caller = SUBSCRIBERS + 10;
    })
    .await;
    let token = stack.token(OWNER);
    let templates = json!([template_id(1), template_id(2), template_id(3)]);
    // One subscriber first, so what is built once (pools, caches, the first stream connection)
    // is not counted per subscriber.
    let mut warm = vec![subscriber(&stack, &token, &templates).await];
    until_every_subscription_runs(&stack, 1, &mut warm).await;
    let before = rss_kib();

    let mut sockets = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        sockets.push(subscriber(&stack, &token, &templates).await);
    }
    until_every_subscription_runs(&stack, 2, &mut sockets).await;
    let per_subscriber = (rss_kib().saturating_sub(before)) as f64 / SUBSCRIBERS as f64;
    assert!(
        per_subscriber < 160.0,
        "{per_subscriber:.1} KiB per idle subscriber (gateway, devstack and client together)"
    );
    drop(sockets);
    drop(warm);
    stack.stop().await;
}

/// `websocket.max_message_size` bounds a message apart from `server.max_body_bytes`: at the
/// bound it is served (read whole through the smallest read buffer, 256 bytes, in many reads),
/// one byte over closes 1009.
#[tokio::test]
async fn max_message_size_bounds_messages_and_a_small_read_buffer_still_reads_them_whole() {
    let max = 4096;
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        assert_eq!(config.server.max_body_bytes, 1_048_576, "the body limit stays far above");
        config.websocket.max_message_size = Some(max);
        config.websocket.read_buffer_size = 256;
    })
    .await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    // Padded with a comment to an exact size, just at and just over the bound.
    let sized = banyan_tests::ws::subscribe_message_of_size;
    let at = sized(max);
    assert_eq!(at.len(), max);
    assert!(socket.send_text(at).await);
    let served = socket.next().await.expect("served");
    assert_eq!(served["type"], "next", "{served}");
    assert_eq!(served["payload"]["data"]["me"]["id"], banyan_tests::user_id(OWNER));
    assert_eq!(socket.next().await.expect("complete")["type"], "complete");
    let over = sized(max + 1);
    socket.send_text(over).await;
    let ending = socket.read_until_close(READ_BOUND).await;
    assert_eq!(ending.close, Some((1009, "Message too big".to_owned())));
    stack.stop().await;
}
