//! One execution shared by the subscribers of one operation (`subscriptions.share_execution`):
//! subscribers of the same templates and the same caller-independent selection, with no
//! `afterSequence`, are served by one execution (`banyan_subscription_shared_executions`), each
//! still checked on its own (a subscriber losing visibility is ended alone), with its own buffer
//! (a slow one is ended with `SUBSCRIBER_TOO_SLOW` alone); a subscription that is not shareable
//! runs its own execution as before.
//!
//! Every expected list is built from the sequences the event store assigned when the test
//! appended (`DevStack::append_events`) and from the seeded data; never from the gateway.

use std::collections::HashMap;
use std::time::Duration;

use banyan_devstack::dataset::Role;
use banyan_devstack::{DevStackConfig, EventKind, Fault};
use banyan_tests::subscriptions::{
    append_large, event_sequence, metric, metric_reaches, read_until_complete, visible_templates,
};
use banyan_tests::ws::WsClient;
use banyan_tests::{OWNER, TestStack, eventually, template_id};
use serde_json::{Value, json};

/// The dashboard's live feed, from now on: shareable.
const LIVE: &str = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence templateId } }";

/// The same operation spelled another way (a fragment, another operation and variable name):
/// the same executed selection, so the same shared execution.
const LIVE_WITH_A_FRAGMENT: &str = "fragment Seen on EmailEvent { sequence templateId } \
    subscription Feed($templates: [ID!]!) { templateEvents(templateIds: $templates) { ...Seen } }";

const EXECUTIONS: &str = "banyan_subscription_shared_executions";
const SUBSCRIBERS: &str = "banyan_subscription_shared_subscribers";
const RUNNING: &str = "banyan_subscriptions_active";

/// Subscriptions per connection.
const PER_CONNECTION: usize = 10;

/// Reads `count` events on each of `ids` from `socket` (any interleaving); each id's sequences
/// in arrival order.
async fn read_events(socket: &mut WsClient, ids: &[String], count: usize) -> HashMap<String, Vec<u64>> {
    let mut received: HashMap<String, Vec<u64>> = HashMap::new();
    for _ in 0..ids.len() * count {
        let message = socket.next().await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        let id = message["id"].as_str().expect("an id").to_owned();
        assert!(ids.contains(&id), "an event for {id}, not one of {ids:?}");
        received.entry(id).or_default().push(event_sequence(&message).expect("an event"));
    }
    received
}

/// 30 subscribers of one operation (on 3 connections, half of them spelling it another way) are
/// served by one shared execution: each receives exactly the appended events of its template, in
/// order, and each event is resolved once for all. One joining while the stream runs receives
/// the events appended after it joined, once each. When they leave, the execution and the
/// upstream stream end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_operation_share_one_execution_and_receive_every_event_in_order() {
    const CONNECTIONS: usize = 3;
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let templates = visible_templates(&stack, 2);
    let (followed, other) = (templates[0], templates[1]);
    let mut sockets = Vec::new();
    let mut ids = Vec::new();
    for connection in 0..CONNECTIONS {
        let mut socket = WsClient::signed_in(&stack, OWNER).await;
        let mut on_socket = Vec::new();
        for slot in 0..PER_CONNECTION {
            let id = format!("s{connection}-{slot}");
            if slot % 2 == 0 {
                socket.subscribe(&id, LIVE, json!({ "ids": [template_id(followed)] })).await;
            } else {
                socket
                    .subscribe(&id, LIVE_WITH_A_FRAGMENT, json!({ "templates": [template_id(followed)] }))
                    .await;
            }
            on_socket.push(id);
        }
        sockets.push(socket);
        ids.push(on_socket);
    }
    let subscribers = (CONNECTIONS * PER_CONNECTION) as f64;
    assert!(metric_reaches(&stack, SUBSCRIBERS, subscribers).await, "all 30 joined");
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0, "one execution for the 30 subscribers");
    assert_eq!(metric(&stack, RUNNING).await, subscribers, "each counts as a running subscription");
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 1).await,
        "one upstream stream, listening"
    );

    let resolved_before = metric(&stack, "banyan_subscription_event_resolutions_total").await;
    let batch: Vec<(u64, EventKind)> =
        (0..12).map(|i| (if i % 4 == 3 { other } else { followed }, EventKind::Delivered)).collect();
    let sequences = stack.devstack.append_events(batch.clone()).await;
    let expected: Vec<u64> =
        batch.iter().zip(&sequences).filter(|((t, _), _)| *t == followed).map(|(_, s)| *s).collect();
    for (socket, ids) in sockets.iter_mut().zip(&ids) {
        let received = read_events(socket, ids, expected.len()).await;
        for id in ids {
            assert_eq!(received.get(id), Some(&expected), "subscriber {id}");
        }
    }
    assert_eq!(
        metric(&stack, "banyan_subscription_event_resolutions_total").await - resolved_before,
        expected.len() as f64,
        "each event resolved once for all 30"
    );

    // A subscriber joining while the stream runs.
    let mut late = WsClient::signed_in(&stack, OWNER).await;
    late.subscribe("late", LIVE, json!({ "ids": [template_id(followed)] })).await;
    assert!(metric_reaches(&stack, SUBSCRIBERS, subscribers + 1.0).await, "the late one joined");
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0, "it joined the running execution");
    let after_join = stack.devstack.append_events(vec![(followed, EventKind::Opened); 3]).await;
    let received = read_events(&mut late, &["late".to_owned()], after_join.len()).await;
    assert_eq!(received["late"], after_join, "the events after its join, in order, once each");
    for (socket, ids) in sockets.iter_mut().zip(&ids) {
        let received = read_events(socket, ids, after_join.len()).await;
        assert!(ids.iter().all(|id| received[id] == after_join), "the others too");
    }

    // Leaving: one connection completes its subscriptions, the others close.
    let mut sockets = sockets.into_iter();
    let mut completing = sockets.next().expect("three");
    for id in &ids[0] {
        completing.send(json!({ "id": id, "type": "complete" })).await;
    }
    for socket in sockets {
        socket.close().await;
    }
    assert!(metric_reaches(&stack, SUBSCRIBERS, 1.0).await, "the late one is left");
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0, "it still holds the execution");
    late.close().await;
    assert!(metric_reaches(&stack, EXECUTIONS, 0.0).await, "the last one leaving ended it");
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 0).await,
        "and the upstream stream: {} open",
        stack.devstack.active_event_streams()
    );
    assert_eq!(metric(&stack, RUNNING).await, 0.0);
    // The connection that completed its subscriptions is still served.
    completing.send(json!({ "type": "ping" })).await;
    assert_eq!(completing.next_including_pings().await.expect("an answer")["type"], "pong");
    stack.stop().await;
}

/// An owner and a viewer of one workspace subscribe with the same operation: one shared
/// execution serves both. The viewer is removed from the workspace: at the next re-check it alone
/// is ended with `NOT_FOUND` and `complete`, while the owner keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_losing_visibility_is_ended_with_not_found_while_the_others_continue() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
        config.websocket.credential_recheck_interval = Duration::from_millis(300);
        config.auth.identity_cache_ttl = Duration::from_secs(3600);
    })
    .await;
    let dataset = stack.devstack.dataset();
    let viewer = dataset
        .memberships
        .iter()
        .find(|m| m.role == Role::Viewer && (m.workspace == 1 || m.workspace == 2))
        .expect("a seeded viewer of workspace 1 or 2");
    let (workspace, viewer) = (viewer.workspace, viewer.user);
    let template = dataset.templates.iter().find(|t| t.workspace == workspace).expect("a template").id;
    let mut owner_socket = WsClient::signed_in(&stack, OWNER).await;
    owner_socket.subscribe("owner", LIVE, json!({ "ids": [template_id(template)] })).await;
    let mut viewer_socket = WsClient::signed_in(&stack, viewer).await;
    viewer_socket.subscribe("viewer", LIVE, json!({ "ids": [template_id(template)] })).await;
    assert!(metric_reaches(&stack, SUBSCRIBERS, 2.0).await);
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0, "one execution for both callers");
    // Events "from now" are those appended once the event store listens.
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await, "the upstream stream listens");
    let first = stack.devstack.append_events(vec![(template, EventKind::Delivered)]).await;
    assert_eq!(event_sequence(&owner_socket.next().await.expect("an event")), Some(first[0]));
    assert_eq!(event_sequence(&viewer_socket.next().await.expect("an event")), Some(first[0]));

    stack.devstack.remove_membership(workspace, viewer);
    let ended = viewer_socket.next().await.expect("the refusal");
    assert_eq!(ended["id"], "viewer", "{ended}");
    assert_eq!(ended["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{ended}");
    assert_eq!(ended["payload"]["errors"][0]["path"], json!(["templateEvents"]), "{ended}");
    assert_eq!(viewer_socket.next().await.expect("the end"), json!({ "id": "viewer", "type": "complete" }));
    assert!(metric_reaches(&stack, SUBSCRIBERS, 1.0).await, "the viewer left");

    let second = stack.devstack.append_events(vec![(template, EventKind::Opened)]).await;
    assert_eq!(event_sequence(&owner_socket.next().await.expect("an event")), Some(second[0]));
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0, "the owner's execution runs on");
    // The viewer's connection is still up (its credential is valid), with nothing more for it.
    viewer_socket.send(json!({ "type": "ping" })).await;
    assert_eq!(viewer_socket.next_including_pings().await.expect("an answer")["type"], "pong");
    stack.stop().await;
}

/// Two subscribers of one shared execution; one stops reading. Once its buffer is full it alone
/// is ended: reading again, it finds a gapless prefix of the events, then `SUBSCRIBER_TOO_SLOW`
/// naming the last sequence it got, then `complete`; the other received every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shared_subscriber_is_ended_alone_with_its_last_sequence() {
    const QUERY: &str =
        "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence recipient } }";
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.subscriptions.subscriber_buffer = 16;
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let variables = json!({ "ids": [template_id(template)] });
    let mut fast = WsClient::signed_in(&stack, OWNER).await;
    fast.subscribe("fast", QUERY, variables.clone()).await;
    let mut slow = WsClient::signed_in_with_receive_buffer(&stack, OWNER, 4096).await;
    slow.subscribe("slow", QUERY, variables).await;
    assert!(metric_reaches(&stack, SUBSCRIBERS, 2.0).await);
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0, "both on one execution");
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await, "the upstream stream listens");

    // Batches of 8 (half the buffer) read by the fast one before the next: the pace of a client
    // that keeps up; bounded.
    let mut appended = Vec::new();
    let mut fast_received = Vec::new();
    for _ in 0..500 {
        let batch = append_large(&stack, template, 8).await;
        for _ in 0..batch.len() {
            let message = fast.next().await.expect("an event");
            fast_received.push(event_sequence(&message).unwrap_or_else(|| panic!("an event: {message}")));
        }
        appended.extend(batch);
        if metric(&stack, "banyan_subscription_overflows_total").await >= 1.0 {
            break;
        }
    }
    assert_eq!(metric(&stack, "banyan_subscription_overflows_total").await, 1.0, "the slow one, once");
    assert_eq!(fast_received, appended, "the fast one got every event, in order");

    let (slow_received, error) = read_until_complete(&mut slow, appended.len() + 2).await;
    assert_eq!(error["extensions"]["code"], "SUBSCRIBER_TOO_SLOW", "{error}");
    let last = *slow_received.last().expect("it got some events first");
    assert_eq!(error["extensions"]["lastSequence"], last.to_string(), "{error}");
    assert_eq!(error["path"], json!(["templateEvents"]), "{error}");
    assert!(slow_received.len() < appended.len(), "it was ended before the end");
    assert_eq!(slow_received, appended[..slow_received.len()], "a gapless prefix, in order");
    stack.stop().await;
}

/// When the event store goes away for good, every subscriber of the shared execution gets the
/// failure's code and `complete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_reaches_every_subscriber_of_the_shared_execution() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
        config.subscriptions.reconnect_backoff = Duration::from_millis(20);
        config.subscriptions.reconnect_attempts = 2;
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    // The stream is reset after each event (and reopened, while the event store answers).
    stack.devstack.faults().set(
        banyan_devstack::Backend::Events,
        Fault { answer: Some(banyan_devstack::Answer::MidStreamReset), ..Fault::none() },
    );
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut socket = WsClient::signed_in(&stack, OWNER).await;
        for slot in 0..2 {
            socket.subscribe(&format!("s{slot}"), LIVE, json!({ "ids": [template_id(template)] })).await;
        }
        sockets.push(socket);
    }
    assert!(metric_reaches(&stack, SUBSCRIBERS, 4.0).await);
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0);
    assert!(eventually(|| stack.devstack.active_event_streams() == 1).await, "the upstream stream listens");
    let first = stack.devstack.append_events(vec![(template, EventKind::Delivered)]).await[0];
    for socket in &mut sockets {
        for _ in 0..2 {
            assert_eq!(event_sequence(&socket.next().await.expect("an event")), Some(first));
        }
    }
    // From now on it refuses every call: the reset after the next event cannot be mended.
    stack.devstack.faults().set(banyan_devstack::Backend::Events, Fault::error_rate(1.0));
    stack.devstack.append_events(vec![(template, EventKind::Opened)]).await;
    for socket in &mut sockets {
        let mut ended = Vec::new();
        for _ in 0..4 {
            let message = socket.next().await.expect("the failure, then the end");
            match message["type"].as_str() {
                Some("next") => {
                    let code = &message["payload"]["errors"][0]["extensions"]["code"];
                    assert_eq!(code, "BACKEND_UNAVAILABLE", "{message}");
                }
                Some("complete") => ended.push(message["id"].as_str().expect("an id").to_owned()),
                _ => panic!("unexpected {message}"),
            }
        }
        ended.sort();
        assert_eq!(ended, ["s0", "s1"], "both subscriptions completed");
    }
    assert!(metric_reaches(&stack, EXECUTIONS, 0.0).await);
    stack.devstack.faults().clear(banyan_devstack::Backend::Events);
    stack.stop().await;
}

/// What is not shareable runs its own execution, as before: a subscription with `afterSequence`
/// (its replay is its own) and one selecting `template` (resolved with its caller's loaders),
/// beside a shareable one on the same connection; each receives its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_that_are_not_shareable_run_their_own_execution() {
    const WITH_TEMPLATE: &str =
        "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence template { name } } }";
    const RESUMING: &str = "subscription($ids: [ID!]!, $after: ID) { \
        templateEvents(templateIds: $ids, afterSequence: $after) { sequence } }";
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let name =
        stack.devstack.dataset().templates.iter().find(|t| t.id == template).expect("seeded").name.clone();
    let missed = stack.devstack.append_events(vec![(template, EventKind::Sent); 2]).await;
    let ids = json!([template_id(template)]);
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("shared", LIVE, json!({ "ids": ids })).await;
    socket.subscribe("template", WITH_TEMPLATE, json!({ "ids": ids })).await;
    socket.subscribe("resuming", RESUMING, json!({ "ids": ids, "after": (missed[0] - 1).to_string() })).await;
    assert!(metric_reaches(&stack, SUBSCRIBERS, 3.0).await, "all three joined the event store's stream");
    assert_eq!(metric(&stack, EXECUTIONS).await, 1.0, "only the shareable one shares");
    assert_eq!(metric(&stack, RUNNING).await, 3.0);
    // The shared stream, and the resuming one's catch-up stream, which stays until its first live
    // event.
    assert!(eventually(|| stack.devstack.active_event_streams() == 2).await, "both streams listen");
    let live = stack.devstack.append_events(vec![(template, EventKind::Clicked)]).await;
    let mut received: HashMap<String, Vec<Value>> = HashMap::new();
    for _ in 0..missed.len() + 3 {
        let message = socket.next().await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        let id = message["id"].as_str().expect("an id").to_owned();
        received.entry(id).or_default().push(message["payload"]["data"]["templateEvents"].clone());
    }
    let sequence = |s: u64| json!(s.to_string());
    assert_eq!(
        received["shared"],
        [json!({ "sequence": sequence(live[0]), "templateId": template_id(template) })]
    );
    assert_eq!(
        received["template"],
        [json!({ "sequence": sequence(live[0]), "template": { "name": name } })]
    );
    let resumed: Vec<Value> =
        missed.iter().chain(&live).map(|s| json!({ "sequence": sequence(*s) })).collect();
    assert_eq!(received["resuming"], resumed, "the replay, then the live event");
    stack.stop().await;
}
