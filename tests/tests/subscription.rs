//! `templateEvents` over WebSocket (graphql-transport-ws): live events arrive, and when the
//! client leaves, the gRPC stream behind it ends.

use std::time::Duration;

use banyan_devstack::EventKind;
use banyan_tests::{OWNER, TestStack, contract_operations, template_id};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(stack: &TestStack, init_payload: Value) -> Socket {
    let mut request = stack.websocket_url().into_client_request().expect("a ws URL");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the gateway upgrades");
    send(&mut socket, json!({ "type": "connection_init", "payload": init_payload })).await;
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("sent");
}

/// The next JSON message, skipping pings; `None` when the socket closes.
async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        let message =
            timeout(Duration::from_secs(10), socket.next()).await.expect("a message within 10 s")?;
        match message.ok()? {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
                if value["type"] == "ping" {
                    continue;
                }
                return Some(value);
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// The next JSON message, pings and pongs included.
async fn next_including_pings(socket: &mut Socket) -> Option<Value> {
    let message = timeout(Duration::from_secs(10), socket.next()).await.expect("a message within 10 s")?;
    match message.ok()? {
        Message::Text(text) => Some(serde_json::from_str(text.as_str()).expect("JSON")),
        _ => None,
    }
}

async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

#[tokio::test]
async fn live_events_arrive_and_the_stream_ends_when_the_client_leaves() {
    let stack = TestStack::start().await;
    let (_, feed) = contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateEventsFeed")
        .expect("in the contract");
    let mut socket =
        connect(&stack, json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    assert_eq!(next(&mut socket).await.expect("an answer")["type"], "connection_ack");
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": feed, "variables": { "templateIds": [template_id(1), template_id(2)] } } }),
    )
    .await;
    assert!(
        wait_for(|| stack.devstack.active_event_streams() == 1).await,
        "the gateway opened one gRPC stream"
    );

    let sequences = stack
        .devstack
        .append_events(vec![(1, EventKind::Opened), (3, EventKind::Opened), (2, EventKind::Clicked)])
        .await;
    let mut received = Vec::new();
    while received.len() < 2 {
        let message = next(&mut socket).await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        received.push(message["payload"]["data"]["templateEvents"].clone());
    }
    assert_eq!(received[0]["templateId"], template_id(1));
    assert_eq!(received[0]["kind"], "OPENED");
    assert_eq!(received[0]["sequence"], sequences[0].to_string());
    assert_eq!(received[1]["templateId"], template_id(2), "template 3's event is not followed");
    assert_eq!(received[1]["kind"], "CLICKED");

    socket.close(None).await.expect("closed");
    drop(socket);
    assert!(
        wait_for(|| stack.devstack.active_event_streams() == 0).await,
        "the gRPC stream ended with the client"
    );
    stack.stop().await;
}

#[tokio::test]
async fn completing_a_subscription_ends_its_stream_but_not_the_connection() {
    let stack = TestStack::start().await;
    let mut socket =
        connect(&stack, json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    assert_eq!(next(&mut socket).await.expect("an answer")["type"], "connection_ack");
    let query = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
    send(&mut socket, json!({ "id": "a", "type": "subscribe", "payload": { "query": query, "variables": { "ids": [template_id(4)] } } })).await;
    assert!(wait_for(|| stack.devstack.active_event_streams() == 1).await);
    send(&mut socket, json!({ "id": "a", "type": "complete" })).await;
    assert!(
        wait_for(|| stack.devstack.active_event_streams() == 0).await,
        "complete cancels the gRPC stream"
    );
    socket.close(None).await.expect("closed");
    stack.stop().await;
}

#[tokio::test]
async fn subscribing_to_an_invisible_template_is_refused() {
    let stack = TestStack::start().await;
    let foreign =
        stack.devstack.dataset().templates.iter().find(|t| t.workspace == 3).expect("a template").id;
    let mut socket =
        connect(&stack, json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    assert_eq!(next(&mut socket).await.expect("an answer")["type"], "connection_ack");
    let query = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
    send(&mut socket, json!({ "id": "x", "type": "subscribe", "payload": { "query": query, "variables": { "ids": [template_id(foreign)] } } })).await;
    let message = next(&mut socket).await.expect("an answer");
    let errors = if message["type"] == "error" {
        message["payload"].clone()
    } else {
        message["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{message}");
    assert_eq!(stack.devstack.active_event_streams(), 0);
    stack.stop().await;
}

#[tokio::test]
async fn a_bad_token_in_connection_init_closes_the_connection() {
    let stack = TestStack::start().await;
    let mut socket =
        connect(&stack, json!({ "Authorization": "Token 0000000000000000000000000000000000000000" })).await;
    let frame = timeout(Duration::from_secs(10), socket.next()).await.expect("a frame within 10 s");
    let Some(Ok(Message::Close(Some(close)))) = frame else {
        panic!("no connection_ack for a bad token, but a close frame: {frame:?}");
    };
    // graphql-transport-ws's "Forbidden", not async-graphql's generic 1002.
    assert_eq!(u16::from(close.code), 4403);
    assert_eq!(close.reason.as_str(), "the credential is not valid");
    stack.stop().await;
}

#[tokio::test]
async fn a_socket_that_never_sends_connection_init_is_closed() {
    // Test stacks start in parallel on two cores: the window is wide enough that a client sending
    // connection_init straight after the upgrade always makes it, and nothing below compares
    // clocks. "Past the deadline" is shown by ordering instead of by sleeping.
    let stack = TestStack::start_with(banyan_devstack::DevStackConfig::default(), |config| {
        config.server.websocket_init_timeout = Duration::from_secs(5);
    })
    .await;
    // In time: connection_init right after the upgrade, acknowledged.
    let mut initialised =
        connect(&stack, json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    assert_eq!(next(&mut initialised).await.expect("an answer")["type"], "connection_ack");

    // Silent: opened after that acknowledgement, never sends connection_init.
    let mut request = stack.websocket_url().into_client_request().expect("a ws URL");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let (mut silent, _) = tokio_tungstenite::connect_async(request).await.expect("the gateway upgrades");
    assert_eq!(
        close_code(&mut silent).await,
        Some(4408),
        "graphql-transport-ws: 4408 Connection initialisation timeout"
    );

    // The silent socket's deadline has passed, and the initialised one's came earlier (same
    // window, opened before): it is still served.
    send(&mut initialised, json!({ "type": "ping" })).await;
    assert_eq!(next_including_pings(&mut initialised).await.expect("an answer")["type"], "pong");
    stack.stop().await;
}

/// The code of the close frame the server sends, skipping other messages; `None` when the
/// connection ends without one.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        // A bound against a socket that is never closed, not a measurement.
        let message =
            timeout(Duration::from_secs(60), socket.next()).await.expect("the gateway closes the socket")?;
        match message {
            Ok(Message::Close(frame)) => return frame.map(|frame| u16::from(frame.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}
