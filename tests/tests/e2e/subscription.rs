//! `templateEvents` over WebSocket (graphql-transport-ws): live events arrive, and when the
//! client leaves, the gRPC stream behind it ends.

use std::time::Duration;

use banyan_devstack::EventKind;
use banyan_tests::ws::{TRANSPORT_WS, WsClient};
use banyan_tests::{OWNER, TestStack, contract_operations, eventually, template_id};
use serde_json::json;

#[tokio::test]
async fn live_events_arrive_and_the_stream_ends_when_the_client_leaves() {
    let stack = TestStack::start().await;
    let (_, feed) = contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateEventsFeed")
        .expect("in the contract");
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("1", &feed, json!({ "templateIds": [template_id(1), template_id(2)] })).await;
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 1).await,
        "the gateway opened one gRPC stream"
    );

    let sequences = stack
        .devstack
        .append_events(vec![(1, EventKind::Opened), (3, EventKind::Opened), (2, EventKind::Clicked)])
        .await;
    let mut received = Vec::new();
    while received.len() < 2 {
        let message = socket.next().await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        received.push(message["payload"]["data"]["templateEvents"].clone());
    }
    assert_eq!(received[0]["templateId"], template_id(1));
    assert_eq!(received[0]["kind"], "OPENED");
    assert_eq!(received[0]["sequence"], sequences[0].to_string());
    assert_eq!(received[1]["templateId"], template_id(2), "template 3's event is not followed");
    assert_eq!(received[1]["kind"], "CLICKED");

    socket.close().await;
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 0).await,
        "the gRPC stream ended with the client"
    );
    stack.stop().await;
}

#[tokio::test]
async fn completing_a_subscription_ends_its_stream_but_not_the_connection() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    let query = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
    socket.subscribe("a", query, json!({ "ids": [template_id(4)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    socket.send(json!({ "id": "a", "type": "complete" })).await;
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 0).await,
        "complete cancels the gRPC stream"
    );
    socket.close().await;
    stack.stop().await;
}

#[tokio::test]
async fn subscribing_to_an_invisible_template_is_refused() {
    let stack = TestStack::start().await;
    let foreign =
        stack.devstack.dataset().templates.iter().find(|t| t.workspace == 3).expect("a template").id;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    let query = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
    socket.subscribe("x", query, json!({ "ids": [template_id(foreign)] })).await;
    let message = socket.next().await.expect("an answer");
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
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    socket.init(json!({ "Authorization": "Token 0000000000000000000000000000000000000000" })).await;
    let ending = socket.read_until_close(Duration::from_secs(10)).await;
    assert!(ending.messages.is_empty(), "no connection_ack for a bad token: {:?}", ending.messages);
    // graphql-transport-ws's "Forbidden", not async-graphql's generic 1002.
    assert_eq!(ending.close, Some((4403, "the credential is not valid".to_owned())));
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
    let mut initialised = WsClient::signed_in(&stack, OWNER).await;

    // Silent: opened after that acknowledgement, never sends connection_init. (The read bound
    // only guards against a socket that is never closed; it is not a measurement.)
    let mut silent = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    let ending = silent.read_until_close(Duration::from_secs(60)).await;
    assert_eq!(
        ending.close.map(|(code, _)| code),
        Some(4408),
        "graphql-transport-ws: 4408 Connection initialisation timeout"
    );

    // The silent socket's deadline has passed, and the initialised one's came earlier (same
    // window, opened before): it is still served.
    initialised.send(json!({ "type": "ping" })).await;
    assert_eq!(initialised.next_including_pings().await.expect("an answer")["type"], "pong");
    stack.stop().await;
}

/// Each event's payload is resolved as the data stands when the event is delivered, as a query
/// made then would be: a subscription that selects its template's stats sees the event it was
/// just told about counted, and the next one too, not the stats as they stood when it began.
#[tokio::test]
async fn each_event_reads_the_data_as_it_stands_then() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    let query = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence template { \
                 name stats { opened } } } }";
    socket.subscribe("s", query, json!({ "ids": [template_id(1)] })).await;
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await);
    let stats = "query($id: ID!) { template(id: $id) { stats { opened } } }";
    let before = stack.graphql(stats, json!({ "id": template_id(1) })).await;
    let before = before.data()["template"]["stats"]["opened"].as_u64().expect("a count");
    let mut seen = Vec::new();
    for _ in 0..2 {
        stack.devstack.append_events(vec![(1, EventKind::Opened)]).await;
        let message = socket.next().await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        seen.push(message["payload"]["data"]["templateEvents"]["template"]["stats"]["opened"].as_u64());
    }
    // Counted independently: the count a query read before the first event, plus the events
    // appended since.
    assert_eq!(seen, [Some(before + 1), Some(before + 2)]);
    socket.close().await;
    stack.stop().await;
}
