//! Subscriptions hold gRPC streams for as long as clients listen; behind a service (or proxy)
//! capping the streams of one HTTP/2 connection, they must not starve the unary calls other
//! fields need. Here the devstack's `EventService` caps every connection at 8 streams, and 12
//! subscriptions are open.

use std::time::Duration;

use banyan_devstack::{DevStackConfig, EventKind};
use banyan_tests::ws::WsClient;
use banyan_tests::{OWNER, TestStack, template_id};
use serde_json::{Value, json};

/// The devstack's `max_concurrent_streams`.
const SERVER_CAP: u32 = 8;
/// Subscriptions opened: more than the cap.
const SUBSCRIPTIONS: usize = 12;
/// Subscriptions per WebSocket connection (three connections).
const PER_SOCKET: usize = 4;

const LIVE: &str = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence templateId } }";
const STATS: &str = "query($id: ID!) { template(id: $id) { id stats(window: LAST_7_DAYS) { sent } } }";

async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

async fn stack(max_streams_per_connection: usize) -> TestStack {
    let devstack = DevStackConfig { max_concurrent_streams: Some(SERVER_CAP), ..DevStackConfig::default() };
    TestStack::start_with(devstack, |config| {
        config.backends.events.max_streams_per_connection = max_streams_per_connection;
    })
    .await
}

/// Three sockets with four subscriptions each to template 1's events; ids `s0`..`s11`. Each
/// also follows one other template of its own, so the 12 follow 12 distinct sets and the
/// gateway's fan-out (one upstream stream per distinct set) still opens 12 streams.
async fn subscribe_all(stack: &TestStack) -> Vec<WsClient> {
    let mut others: Vec<u64> = stack
        .devstack
        .dataset()
        .templates
        .iter()
        .filter(|t| (t.workspace == 1 || t.workspace == 2) && t.id != 1)
        .map(|t| t.id)
        .collect();
    others.sort_unstable();
    assert!(others.len() >= SUBSCRIPTIONS, "the seed has enough templates the owner sees");
    let mut sockets = Vec::new();
    for socket_index in 0..SUBSCRIPTIONS / PER_SOCKET {
        let mut socket = WsClient::signed_in(stack, OWNER).await;
        for n in 0..PER_SOCKET {
            let n = socket_index * PER_SOCKET + n;
            let ids = json!([template_id(1), template_id(others[n])]);
            socket.subscribe(&format!("s{n}"), LIVE, json!({ "ids": ids })).await;
        }
        sockets.push(socket);
    }
    sockets
}

/// The stats query over HTTP: answered with data and no error.
async fn assert_stats_answer(stack: &TestStack) {
    let before = stack.devstack.calls().count("EventService/GetTemplateStats");
    let response = stack.graphql(STATS, json!({ "id": template_id(1) })).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(
        response.body.get("errors").is_none(),
        "a unary call behind open streams failed: {}",
        response.body
    );
    assert!(
        response.data()["template"]["stats"]["sent"].is_string()
            || response.data()["template"]["stats"]["sent"].is_number(),
        "{}",
        response.body
    );
    assert_eq!(
        stack.devstack.calls().count("EventService/GetTemplateStats"),
        before + 1,
        "the stats came from the event store"
    );
}

/// With the gateway's bound at the service's cap, 12 subscriptions spread over two stream
/// connections (all 12 streams are served and get the next event), and the unary calls, on a
/// connection of their own, still answer. Before streams had their own connections, 8 streams
/// filled the one connection, the 4 others and the stats call queued behind them, and the stats
/// call failed with `BACKEND_TIMEOUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_answer_with_more_subscriptions_open_than_the_services_stream_cap() {
    let stack = stack(SERVER_CAP as usize).await;
    let mut sockets = subscribe_all(&stack).await;
    assert!(
        wait_for(|| stack.devstack.active_event_streams() == SUBSCRIPTIONS).await,
        "all {SUBSCRIPTIONS} streams served, past the cap of {SERVER_CAP} per connection: {} open",
        stack.devstack.active_event_streams()
    );
    assert_stats_answer(&stack).await;

    let sequence = stack.devstack.append_events(vec![(1, EventKind::Opened)]).await[0];
    let mut received = Vec::new();
    for socket in &mut sockets {
        for _ in 0..PER_SOCKET {
            let message = socket.next().await.expect("an event");
            assert_eq!(message["type"], "next", "{message}");
            let event = &message["payload"]["data"]["templateEvents"];
            assert_eq!(event["sequence"], sequence.to_string(), "{message}");
            received.push(message["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    received.sort();
    let mut expected: Vec<String> = (0..SUBSCRIPTIONS).map(|n| format!("s{n}")).collect();
    expected.sort();
    assert_eq!(received, expected, "every subscription got the event once");
    assert_stats_answer(&stack).await;
    stack.stop().await;
}

/// Misconfigured above the service's cap (the default bound of 100 against a cap of 8), the
/// streams past the cap wait for a free stream and fail with `BACKEND_TIMEOUT` after the call
/// deadline (each gets one `next` with the error, then `complete`): they never hang, and the
/// unary calls still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_cap_fail_with_a_code_and_unary_calls_still_answer() {
    let stack = stack(100).await;
    let mut sockets = subscribe_all(&stack).await;
    assert!(
        wait_for(|| stack.devstack.active_event_streams() == SERVER_CAP as usize).await,
        "the service serves its cap: {} open",
        stack.devstack.active_event_streams()
    );
    assert_stats_answer(&stack).await;

    // The next message of each socket, read until 4 subscriptions have failed. Nothing else can
    // arrive: no event was appended.
    let mut failed: Vec<(String, Value)> = Vec::new();
    let mut completed = Vec::new();
    for socket in &mut sockets {
        // At most every subscription's two messages.
        for _ in 0..2 * PER_SOCKET {
            if failed.len() == SUBSCRIPTIONS - SERVER_CAP as usize && completed.len() == failed.len() {
                break;
            }
            let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(6), socket.next()).await else {
                break;
            };
            let id = message["id"].as_str().unwrap_or_default().to_owned();
            match message["type"].as_str() {
                Some("next") => {
                    failed.push((id, message["payload"]["errors"][0]["extensions"]["code"].clone()))
                }
                Some("complete") => completed.push(id),
                _ => panic!("unexpected {message}"),
            }
        }
    }
    assert_eq!(failed.len(), SUBSCRIPTIONS - SERVER_CAP as usize, "{failed:?}");
    for (id, code) in &failed {
        assert_eq!(code, "BACKEND_TIMEOUT", "{id}");
    }
    let mut failed_ids: Vec<String> = failed.into_iter().map(|(id, _)| id).collect();
    failed_ids.sort();
    completed.sort();
    assert_eq!(completed, failed_ids, "each failed subscription was completed");
    assert_eq!(stack.devstack.active_event_streams(), SERVER_CAP as usize, "the others still run");
    assert_stats_answer(&stack).await;
    stack.stop().await;
}
