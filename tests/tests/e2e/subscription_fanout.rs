//! Subscriptions at scale: subscribers of the same templates share upstream `StreamEvents`
//! streams (counted by the devstack's event store, over its `/__devstack/streams` endpoint),
//! receive every event in sequence order with no gap and no duplicate, are ended with
//! `SUBSCRIBER_TOO_SLOW` (never silently dropped) when they cannot keep up, resume with
//! `afterSequence`, and see no gap when the upstream stream is reset under them. Subscribers of
//! the same selection share each event's resolution, unless the selection depends on the caller
//! (counted by the gateway's `/metrics`).
//!
//! Every expected list is built from the sequences the event store assigned when the test
//! appended (`DevStack::append_events`), filtered by template here, and from the seeded data;
//! never from the gateway.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use banyan_devstack::{Answer, Backend, DevStackConfig, EventKind, Fault};
use banyan_tests::subscriptions::{
    append_large, event_sequence, metric, metric_reaches, read_until_complete, visible_templates,
};
use banyan_tests::ws::WsClient;
use banyan_tests::{OWNER, TestStack, eventually, template_id};
use serde_json::{Value, json};

const LIVE: &str = "subscription($ids: [ID!]!, $after: ID) { \
    templateEvents(templateIds: $ids, afterSequence: $after) { sequence templateId } }";

/// Connections of the 200-subscriber test, and subscriptions on each.
const CONNECTIONS: usize = 20;
const PER_CONNECTION: usize = 10;

fn variables(template: u64, after: u64) -> Value {
    json!({ "ids": [template_id(template)], "after": after.to_string() })
}

/// The devstack's count of open `StreamEvents` calls, read over its HTTP admin endpoint.
async fn upstream_streams_over_http(stack: &TestStack) -> u64 {
    let body: Value = stack
        .http()
        .get(format!("{}/__devstack/streams", stack.devstack.monolith_url()))
        .send()
        .await
        .expect("the devstack answers")
        .json()
        .await
        .expect("JSON");
    body["event_streams"].as_u64().expect("a count")
}

/// 200 subscribers, on 20 connections, following 3 templates (one each, round robin): the
/// event store serves 3 streams, never more; every subscriber receives exactly its template's
/// events in sequence order; and once the last subscriber has left (some `complete`, some
/// close, some vanish without a word) the streams are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_subscribers_share_three_streams_and_receive_every_event_in_order() {
    // The test's clients answer no ping, and a loaded machine may take longer than one interval.
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let templates = visible_templates(&stack, 4);
    let (followed, unfollowed) = (&templates[..3], templates[3]);
    // Everyone starts after this event: a sequence the event store assigned.
    let start = stack.devstack.append_events(vec![(followed[0], EventKind::Sent)]).await[0];
    let mut sockets = Vec::new();
    for connection in 0..CONNECTIONS {
        let mut socket = WsClient::signed_in(&stack, OWNER).await;
        for slot in 0..PER_CONNECTION {
            let n = connection * PER_CONNECTION + slot;
            socket.subscribe(&format!("s{n}"), LIVE, variables(followed[n % 3], start)).await;
        }
        sockets.push(socket);
    }
    let subscribers = (CONNECTIONS * PER_CONNECTION) as f64;
    assert!(
        metric_reaches(&stack, "banyan_subscription_shared_subscribers", subscribers).await,
        "all 200 subscribers joined their shared streams"
    );
    assert_eq!(upstream_streams_over_http(&stack).await, 3, "one stream per distinct set of templates");
    assert_eq!(metric(&stack, "banyan_subscription_upstream_streams").await, 3.0);

    // Watch the event store's count while the events flow.
    let most_streams = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (most, sampling) = (most_streams.clone(), sampling.clone());
        let url = format!("{}/__devstack/streams", stack.devstack.monolith_url());
        let http = stack.http().clone();
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                if let Ok(response) = http.get(&url).send().await
                    && let Ok(body) = response.json::<Value>().await
                {
                    most.fetch_max(body["event_streams"].as_u64().unwrap_or(0), Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // 30 events round robin on the followed templates, with the unfollowed one in between.
    let batch: Vec<(u64, EventKind)> = (0..33)
        .map(|i| {
            let template = if i % 11 == 5 { unfollowed } else { followed[i % 3] };
            (template, if i % 2 == 0 { EventKind::Delivered } else { EventKind::Opened })
        })
        .collect();
    let sequences = stack.devstack.append_events(batch.clone()).await;
    let expected: HashMap<u64, Vec<String>> = followed
        .iter()
        .map(|t| {
            let of_template = batch
                .iter()
                .zip(&sequences)
                .filter(|((template, _), _)| template == t)
                .map(|(_, sequence)| sequence.to_string())
                .collect();
            (*t, of_template)
        })
        .collect();

    for (connection, socket) in sockets.iter_mut().enumerate() {
        let mut received: HashMap<String, Vec<String>> = HashMap::new();
        let wanted = |n: usize| expected[&followed[n % 3]].len();
        let complete = |received: &HashMap<String, Vec<String>>| {
            (0..PER_CONNECTION).all(|slot| {
                let n = connection * PER_CONNECTION + slot;
                received.get(&format!("s{n}")).map_or(0, Vec::len) >= wanted(n)
            })
        };
        for _ in 0..1_000 {
            if complete(&received) {
                break;
            }
            let message = socket.next().await.expect("an event");
            assert_eq!(message["type"], "next", "{message}");
            let id = message["id"].as_str().expect("an id").to_owned();
            let sequence = message["payload"]["data"]["templateEvents"]["sequence"].clone();
            received.entry(id).or_default().push(sequence.as_str().expect("a sequence").to_owned());
        }
        for slot in 0..PER_CONNECTION {
            let n = connection * PER_CONNECTION + slot;
            assert_eq!(
                received.get(&format!("s{n}")),
                Some(&expected[&followed[n % 3]]),
                "subscriber s{n} on template {}",
                followed[n % 3]
            );
        }
    }
    sampling.store(false, Ordering::SeqCst);
    sampler.await.expect("the sampler ran");
    assert!(
        most_streams.load(Ordering::SeqCst) <= 3,
        "at most 3 upstream streams while events flowed, saw {}",
        most_streams.load(Ordering::SeqCst)
    );

    // Leaving: a third complete their operations, a third close, a third vanish.
    let mut sockets = sockets.into_iter().enumerate();
    // These connections stay open: completing is what ends their subscriptions.
    let mut completed = Vec::new();
    for (connection, mut socket) in sockets.by_ref().take(CONNECTIONS / 3) {
        for slot in 0..PER_CONNECTION {
            let n = connection * PER_CONNECTION + slot;
            socket.send(json!({ "id": format!("s{n}"), "type": "complete" })).await;
        }
        completed.push(socket);
    }
    for (_, socket) in sockets.by_ref().take(CONNECTIONS / 3) {
        socket.close().await;
    }
    drop(sockets.collect::<Vec<_>>());
    assert!(
        eventually(|| stack.devstack.active_event_streams() == 0).await,
        "the last subscriber leaving closed the upstream streams: {} open",
        stack.devstack.active_event_streams()
    );
    assert_eq!(upstream_streams_over_http(&stack).await, 0);
    assert!(metric_reaches(&stack, "banyan_subscription_upstream_streams", 0.0).await);
    assert_eq!(metric(&stack, "banyan_subscription_shared_subscribers").await, 0.0);
    drop(completed);
    stack.stop().await;
}

/// What the slow-subscriber test's clients select: the sequence and the (large) recipient.
const WITH_RECIPIENT: &str = "subscription($ids: [ID!]!, $after: ID) { \
    templateEvents(templateIds: $ids, afterSequence: $after) { sequence recipient } }";

/// A subscriber that stops reading its socket is ended with `SUBSCRIBER_TOO_SLOW` after its
/// buffer fills, while another on the same stream keeps receiving every event. The slow one,
/// reading again, finds a gapless prefix of the events, then the error naming the last sequence
/// it got, then `complete`; resubscribing with `afterSequence` set to it brings the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_ended_with_a_coded_error_while_the_others_keep_receiving() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.subscriptions.subscriber_buffer = 64;
        // The slow client answers no ping while it does not read.
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    let mut fast = WsClient::signed_in(&stack, OWNER).await;
    // Both run the same selection, so what sets them apart is the reading alone.
    fast.subscribe("fast", WITH_RECIPIENT, variables(template, start)).await;
    let mut slow = WsClient::signed_in_with_receive_buffer(&stack, OWNER, 4096).await;
    slow.subscribe("slow", WITH_RECIPIENT, variables(template, start)).await;
    assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", 2.0).await);

    // The fast client reads everything, until the last sequence it is told of, and says how
    // far it got.
    let (last_tx, mut last_rx) = tokio::sync::watch::channel(None::<u64>);
    let fast_progress = Arc::new(AtomicU64::new(0));
    let reader = {
        let progress = fast_progress.clone();
        tokio::spawn(async move {
            let mut received = Vec::new();
            for _ in 0..200_000 {
                if received.last().is_some_and(|last| Some(*last) == *last_rx.borrow_and_update()) {
                    break;
                }
                // The last sequence may be told after its event arrived: wait for either.
                tokio::select! {
                    message = fast.next() => {
                        let message = message.expect("an event");
                        let sequence =
                            event_sequence(&message).unwrap_or_else(|| panic!("an event: {message}"));
                        received.push(sequence);
                        progress.store(sequence, Ordering::SeqCst);
                    }
                    changed = last_rx.changed() => changed.expect("the test holds the sender"),
                }
            }
            (fast, received)
        })
    };

    // Events until the slow subscriber's buffer overflows (bounded: 400 batches of 25, each
    // well inside the buffer), each batch appended once the fast subscriber has read the last:
    // the pace of a client that keeps up.
    let mut appended = Vec::new();
    for _ in 0..400 {
        appended.extend(append_large(&stack, template, 25).await);
        let last = appended.last().copied().unwrap_or_default();
        for _ in 0..2_000 {
            if fast_progress.load(Ordering::SeqCst) >= last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if metric(&stack, "banyan_subscription_overflows_total").await >= 1.0 {
            break;
        }
    }
    assert!(
        metric_reaches(&stack, "banyan_subscription_overflows_total", 1.0).await,
        "the slow subscriber overflowed after {} events",
        appended.len()
    );
    appended.extend(stack.devstack.append_events(vec![(template, EventKind::Opened)]).await);
    last_tx.send(appended.last().copied()).expect("the reader listens");
    let (fast, fast_received) = reader.await.expect("the fast reader");
    assert_eq!(fast_received, appended, "the fast subscriber got every event, in order");

    // The slow one reads again: a prefix, the coded error, complete.
    let (slow_received, error) = read_until_complete(&mut slow, appended.len() + 2).await;
    assert_eq!(error["extensions"]["code"], "SUBSCRIBER_TOO_SLOW", "{error}");
    let last = *slow_received.last().expect("it got some events first");
    assert_eq!(error["extensions"]["lastSequence"], last.to_string(), "{error}");
    assert!(slow_received.len() < appended.len(), "it was ended before the end");
    assert_eq!(slow_received, appended[..slow_received.len()], "a gapless prefix, in order");
    assert_eq!(metric(&stack, "banyan_subscription_overflows_total").await, 1.0, "only the slow one");

    // Resuming after the last sequence it got brings exactly the rest (the fast subscriber keeps
    // the shared stream ahead, so this catches up first).
    slow.subscribe("resumed", LIVE, variables(template, last)).await;
    let mut resumed = Vec::new();
    while resumed.len() < appended.len() - slow_received.len() {
        let message = slow.next().await.expect("an event");
        assert_eq!(message["id"], "resumed", "{message}");
        resumed.push(event_sequence(&message).unwrap_or_else(|| panic!("an event: {message}")));
    }
    assert_eq!(resumed, appended[slow_received.len()..], "no gap, no duplicate");
    drop(fast);
    stack.stop().await;
}

/// A subscriber that leaves and comes back with `afterSequence` while the shared stream has moved
/// on receives the events it missed, then the live ones, each once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_after_sequence_gives_no_gap() {
    let stack = TestStack::start().await;
    let template = visible_templates(&stack, 1)[0];
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    let mut keeper = WsClient::signed_in(&stack, OWNER).await;
    keeper.subscribe("keeper", LIVE, variables(template, start)).await;
    let mut client = WsClient::signed_in(&stack, OWNER).await;
    client.subscribe("first", LIVE, variables(template, start)).await;
    assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", 2.0).await);

    let seen = stack.devstack.append_events(vec![(template, EventKind::Delivered); 3]).await;
    let mut received = Vec::new();
    while received.len() < seen.len() {
        received.push(event_sequence(&client.next().await.expect("an event")).expect("an event"));
    }
    assert_eq!(received, seen);
    client.send(json!({ "id": "first", "type": "complete" })).await;
    assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", 1.0).await);

    // Missed while away; the keeper holds the stream, which moves past them.
    let missed = stack.devstack.append_events(vec![(template, EventKind::Opened); 4]).await;
    let mut keeper_received = Vec::new();
    while keeper_received.len() < seen.len() + missed.len() {
        keeper_received.push(event_sequence(&keeper.next().await.expect("an event")).expect("an event"));
    }
    client.subscribe("again", LIVE, variables(template, *seen.last().expect("three"))).await;
    assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", 2.0).await);
    let live = stack.devstack.append_events(vec![(template, EventKind::Clicked); 2]).await;
    let mut resumed = Vec::new();
    while resumed.len() < missed.len() + live.len() {
        let message = client.next().await.expect("an event");
        assert_eq!(message["id"], "again", "{message}");
        resumed.push(event_sequence(&message).expect("an event"));
    }
    let expected: Vec<u64> = missed.iter().chain(&live).copied().collect();
    assert_eq!(resumed, expected, "the missed events, then the live ones, once each");
    assert_eq!(upstream_streams_over_http(&stack).await, 1, "the catch-up stream is gone");
    stack.stop().await;
}

/// The upstream stream is reset after each event (the devstack's `mid_stream_reset`): the shared
/// stream reconnects from the last sequence it saw each time, and 20 subscribers each receive
/// every event once, in order, including those appended while it was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_mid_flow_gives_subscribers_no_gap() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.subscriptions.reconnect_backoff = Duration::from_millis(20);
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    stack
        .devstack
        .faults()
        .set(Backend::Events, Fault { answer: Some(Answer::MidStreamReset), ..Fault::none() });
    let mut sockets = Vec::new();
    for connection in 0..2 {
        let mut socket = WsClient::signed_in(&stack, OWNER).await;
        for slot in 0..10 {
            socket.subscribe(&format!("s{connection}-{slot}"), LIVE, variables(template, start)).await;
        }
        sockets.push(socket);
    }
    assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", 20.0).await);

    // One event alone, then three together (the stream resets on them and they are replayed
    // from the event store after the reconnect), then one more; each phase read by everyone
    // before the next, so each lands on a stream that has passed its first message.
    let mut appended = Vec::new();
    let mut received: Vec<HashMap<String, Vec<u64>>> = vec![HashMap::new(); sockets.len()];
    for phase in [vec![EventKind::Delivered], vec![EventKind::Opened; 3], vec![EventKind::Clicked]] {
        let phase: Vec<(u64, EventKind)> = phase.into_iter().map(|kind| (template, kind)).collect();
        let count = phase.len();
        appended.extend(stack.devstack.append_events(phase).await);
        for (socket, received) in sockets.iter_mut().zip(&mut received) {
            for _ in 0..10 * count {
                let message = socket.next().await.expect("an event");
                assert_eq!(message["type"], "next", "{message}");
                assert!(
                    message["payload"].get("errors").is_none(),
                    "no error reaches the subscriber: {message}"
                );
                let id = message["id"].as_str().expect("an id").to_owned();
                received.entry(id).or_default().push(event_sequence(&message).expect("an event"));
            }
        }
    }
    for received in received {
        assert_eq!(received.len(), 10);
        for (id, sequences) in received {
            assert_eq!(sequences, appended, "{id}");
        }
    }
    let reconnects = metric(&stack, "banyan_subscription_upstream_reconnects_total").await;
    assert!(reconnects >= 2.0, "the stream was reset and reopened: {reconnects} reconnects");
    stack.devstack.faults().clear(Backend::Events);
    assert_eq!(upstream_streams_over_http(&stack).await, 1, "one shared stream, reopened");
    stack.stop().await;
}

/// When the stream cannot be reopened (the event store refuses every call), the subscriber gets
/// the backend's code and `complete` after `reconnect_attempts` tries, not a hang.
#[tokio::test]
async fn an_upstream_that_stays_down_ends_subscriptions_with_a_code() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.subscriptions.reconnect_backoff = Duration::from_millis(20);
        config.subscriptions.reconnect_attempts = 2;
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    stack
        .devstack
        .faults()
        .set(Backend::Events, Fault { answer: Some(Answer::MidStreamReset), ..Fault::none() });
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("1", LIVE, variables(template, start)).await;
    assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", 1.0).await);
    let first = stack.devstack.append_events(vec![(template, EventKind::Delivered)]).await[0];
    assert_eq!(event_sequence(&socket.next().await.expect("an event")), Some(first));

    stack.devstack.faults().set(Backend::Events, Fault::error_rate(1.0));
    stack.devstack.append_events(vec![(template, EventKind::Opened)]).await;
    let error = socket.next().await.expect("the failure is reported");
    assert_eq!(error["type"], "next", "{error}");
    assert_eq!(error["payload"]["errors"][0]["extensions"]["code"], "BACKEND_UNAVAILABLE", "{error}");
    assert_eq!(socket.next().await.expect("the end"), json!({ "id": "1", "type": "complete" }));
    assert_eq!(
        metric(&stack, "banyan_subscription_upstream_reconnects_total").await,
        2.0,
        "it tried reconnect_attempts times before giving up"
    );
    assert!(eventually(|| stack.devstack.active_event_streams() == 0).await);
    stack.devstack.faults().clear(Backend::Events);
    stack.stop().await;
}

/// A running subscription re-checks its templates on the credential re-check interval, against
/// the monolith itself: once the caller's token is revoked it ends with `UNAUTHENTICATED` and
/// `complete`, even while the identity cache still vouches for the connection.
#[tokio::test]
async fn a_revoked_caller_stops_receiving_at_the_next_recheck() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.credential_recheck_interval = Duration::from_millis(300);
        config.auth.identity_cache_ttl = Duration::from_secs(3600);
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("1", LIVE, variables(template, start)).await;
    assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", 1.0).await);
    let first = stack.devstack.append_events(vec![(template, EventKind::Delivered)]).await[0];
    assert_eq!(event_sequence(&socket.next().await.expect("an event")), Some(first));

    stack.devstack.revoke_token(&stack.token(OWNER));
    let ended = socket.next().await.expect("the refusal");
    assert_eq!(ended["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{ended}");
    assert_eq!(socket.next().await.expect("the end"), json!({ "id": "1", "type": "complete" }));
    assert!(eventually(|| stack.devstack.active_event_streams() == 0).await, "its stream closed");
    stack.stop().await;
}

/// CPU time of this whole process (gateway, devstack and test clients), from `/proc/self/stat`
/// (`utime` + `stime`, in clock ticks of 10 ms, Linux's `USER_HZ`).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the first after the name is field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(14) + field(15);
    Duration::from_millis(ticks * 10)
}

/// Not a check: what one delivery costs, with 1 and with 200 subscribers of the same template
/// (one shared stream), 300 events each, the contract's `TemplateEventsFeed` selection. Run
/// with `cargo test -p banyan-tests --test e2e -- --ignored --nocapture subscription_fanout::measure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_cpu_per_delivered_event() {
    const EVENTS: usize = 300;
    let (_, feed) = banyan_tests::contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateEventsFeed")
        .expect("in the contract");
    for subscribers in [1_usize, 200] {
        // The test's clients answer no ping.
        let stack = TestStack::start_with(DevStackConfig::default(), |config| {
            config.websocket.keepalive_interval = Duration::ZERO;
        })
        .await;
        let template = visible_templates(&stack, 1)[0];
        let mut sockets = Vec::new();
        for connection in 0..subscribers.div_ceil(PER_CONNECTION) {
            let mut socket = WsClient::signed_in(&stack, OWNER).await;
            for slot in 0..PER_CONNECTION.min(subscribers - connection * PER_CONNECTION) {
                let variables = json!({ "templateIds": [template_id(template)] });
                socket.subscribe(&format!("s{slot}"), &feed, variables).await;
            }
            sockets.push(socket);
        }
        assert!(metric_reaches(&stack, "banyan_subscription_shared_subscribers", subscribers as f64).await);
        let before = process_cpu();
        for _ in 0..EVENTS / 30 {
            stack.devstack.append_events(vec![(template, EventKind::Opened); 30]).await;
            for (connection, socket) in sockets.iter_mut().enumerate() {
                let on_socket = PER_CONNECTION.min(subscribers - connection * PER_CONNECTION);
                for _ in 0..30 * on_socket {
                    socket.next().await.expect("an event");
                }
            }
        }
        let cpu = process_cpu().saturating_sub(before);
        let deliveries = (subscribers * EVENTS) as u32;
        eprintln!(
            "{subscribers} subscriber(s) x {EVENTS} events: {cpu:?} CPU, {:?} per delivery",
            cpu / deliveries
        );
        stack.stop().await;
    }
}

/// Selections of each event resolved so far, and deliveries that reused another subscriber's.
const RESOLUTIONS: &str = "banyan_subscription_event_resolutions_total";
const REUSED: &str = "banyan_subscription_event_resolutions_reused_total";

/// Kinds the reuse tests append, round robin, with their GraphQL names.
const KINDS: [(EventKind, &str); 2] = [(EventKind::Delivered, "DELIVERED"), (EventKind::Opened, "OPENED")];

/// One appended event, as the test knows it: the sequence the event store assigned, the kind
/// appended and the recipient the devstack writes (`test-{position in the batch}@example.com`).
struct Appended {
    sequence: String,
    kind: &'static str,
    recipient: String,
}

/// Appends `count` events to `template`, kinds round robin.
async fn append_round_robin(stack: &TestStack, template: u64, count: usize) -> Vec<Appended> {
    let batch = (0..count).map(|i| (template, KINDS[i % KINDS.len()].0)).collect();
    let sequences = stack.devstack.append_events(batch).await;
    sequences
        .iter()
        .enumerate()
        .map(|(i, sequence)| Appended {
            sequence: sequence.to_string(),
            kind: KINDS[i % KINDS.len()].1,
            recipient: format!("test-{i}@example.com"),
        })
        .collect()
}

/// What a reuse test's events did: the events appended, each subscription's payloads, and how
/// many resolutions and reuses the gateway counted while they were delivered.
struct Delivery {
    appended: Vec<Appended>,
    received: HashMap<String, Vec<Value>>,
    resolutions: f64,
    reuses: f64,
}

/// Once all `subscribers` (on `sockets`, [`PER_CONNECTION`] each) share their stream: appends
/// `count` events to `template` and reads them on every subscription.
async fn deliver(
    stack: &TestStack,
    sockets: &mut [WsClient],
    subscribers: usize,
    template: u64,
    count: usize,
) -> Delivery {
    assert!(metric_reaches(stack, "banyan_subscription_shared_subscribers", subscribers as f64).await);
    let (resolved_before, reused_before) = (metric(stack, RESOLUTIONS).await, metric(stack, REUSED).await);
    let appended = append_round_robin(stack, template, count).await;
    let received = read_events(sockets, PER_CONNECTION, count).await;
    assert_eq!(received.len(), subscribers);
    Delivery {
        appended,
        received,
        resolutions: metric(stack, RESOLUTIONS).await - resolved_before,
        reuses: metric(stack, REUSED).await - reused_before,
    }
}

/// `{ field: value }`.
fn object(field: &str, value: Value) -> Value {
    Value::Object(serde_json::Map::from_iter([(field.to_owned(), value)]))
}

/// Reads exactly `per_socket × count` messages from each socket, every one an event with no
/// error; returns each subscription's `payload.data` in arrival order, by subscription id.
async fn read_events(
    sockets: &mut [WsClient],
    per_socket: usize,
    count: usize,
) -> HashMap<String, Vec<Value>> {
    let mut received: HashMap<String, Vec<Value>> = HashMap::new();
    for socket in sockets {
        for _ in 0..per_socket * count {
            let message = socket.next().await.expect("an event");
            assert_eq!(message["type"], "next", "{message}");
            assert!(message["payload"].get("errors").is_none(), "{message}");
            let id = message["id"].as_str().expect("an id").to_owned();
            received.entry(id).or_default().push(message["payload"]["data"].clone());
        }
    }
    received
}

/// The same selection as [`SPELLED_WITH_A_FRAGMENT`], plainly.
const SPELLED_PLAINLY: &str = "subscription($ids: [ID!]!, $after: ID) { \
    templateEvents(templateIds: $ids, afterSequence: $after) { sequence kind recipient } }";

/// The same selection as [`SPELLED_PLAINLY`] through a fragment, another operation and other
/// variable names, an alias on the root field (the response key, not the event's selection) and
/// an `@include` that keeps its field.
const SPELLED_WITH_A_FRAGMENT: &str = "fragment Seen on EmailEvent { sequence kind } \
    subscription Feed($templates: [ID!]!, $from: ID, $withRecipient: Boolean!) { \
    events: templateEvents(templateIds: $templates, afterSequence: $from) { \
    ...Seen recipient @include(if: $withRecipient) } }";

/// 100 subscribers of one template, half of them spelling the selection another way: every one
/// receives every appended event, in its own response's shape, and each event's selection is
/// resolved once for all of them (the counter reads K, where one resolution per subscriber would
/// read 100 × K).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_selection_share_one_resolution_per_event() {
    const EVENTS: usize = 20;
    const SOCKETS: usize = 10;
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    let spellings = [
        (SPELLED_PLAINLY, "templateEvents", variables(template, start)),
        (
            SPELLED_WITH_A_FRAGMENT,
            "events",
            json!({ "templates": [template_id(template)], "from": start.to_string(), "withRecipient": true }),
        ),
    ];
    let mut sockets = open_subscriptions(&stack, SOCKETS, |n| {
        let (query, _, variables) = &spellings[n % spellings.len()];
        (query.to_string(), variables.clone())
    })
    .await;
    let subscribers = SOCKETS * PER_CONNECTION;
    let Delivery { appended, received, resolutions, reuses } =
        deliver(&stack, &mut sockets, subscribers, template, EVENTS).await;
    for n in 0..subscribers {
        let root = spellings[n % spellings.len()].1;
        let expected: Vec<Value> = appended
            .iter()
            .map(|event| {
                let event =
                    json!({ "sequence": event.sequence, "kind": event.kind, "recipient": event.recipient });
                object(root, event)
            })
            .collect();
        assert_eq!(received[&format!("s{n}")], expected, "subscriber s{n}");
    }
    assert_eq!(resolutions, EVENTS as f64, "one resolution per event, whichever spelling");
    assert_eq!(reuses, (EVENTS * (subscribers - 1)) as f64, "every other delivery reused it");
    stack.stop().await;
}

/// `sockets` connections of [`OWNER`], each with [`PER_CONNECTION`] subscriptions named `s0`,
/// `s1`, … in order; `subscription(n)` gives the n-th one's query and variables.
async fn open_subscriptions(
    stack: &TestStack,
    sockets: usize,
    subscription: impl Fn(usize) -> (String, Value),
) -> Vec<WsClient> {
    let mut opened = Vec::with_capacity(sockets);
    for connection in 0..sockets {
        let mut socket = WsClient::signed_in(stack, OWNER).await;
        for slot in 0..PER_CONNECTION {
            let n = connection * PER_CONNECTION + slot;
            let (query, variables) = subscription(n);
            socket.subscribe(&format!("s{n}"), &query, variables).await;
        }
        opened.push(socket);
    }
    opened
}

/// What a reuse-test subscriber selects, and the `templateEvents` it expects for an event.
type Shape = (&'static str, fn(&Appended) -> Value);

/// Three selections of the same events (the second is the first with an alias, the third has
/// one more field): each event is resolved once per selection, and every subscriber receives its
/// own selection's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_selections_of_the_same_events_resolve_once_each() {
    const EVENTS: usize = 10;
    const SOCKETS: usize = 3;
    let shapes: [Shape; 3] = [
        ("sequence kind", |e| json!({ "sequence": e.sequence, "kind": e.kind })),
        ("at: sequence kind", |e| json!({ "at": e.sequence, "kind": e.kind })),
        (
            "sequence kind recipient",
            |e| json!({ "sequence": e.sequence, "kind": e.kind, "recipient": e.recipient }),
        ),
    ];
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let template = visible_templates(&stack, 1)[0];
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    let mut sockets = open_subscriptions(&stack, SOCKETS, |n| {
        let query = format!(
            "subscription($ids: [ID!]!, $after: ID) {{ \
             templateEvents(templateIds: $ids, afterSequence: $after) {{ {} }} }}",
            shapes[n % shapes.len()].0
        );
        (query, variables(template, start))
    })
    .await;
    let subscribers = SOCKETS * PER_CONNECTION;
    let Delivery { appended, received, resolutions, reuses } =
        deliver(&stack, &mut sockets, subscribers, template, EVENTS).await;
    for n in 0..subscribers {
        let shape = shapes[n % shapes.len()].1;
        let expected: Vec<Value> =
            appended.iter().map(|event| object("templateEvents", shape(event))).collect();
        assert_eq!(received[&format!("s{n}")], expected, "subscriber s{n}");
    }
    assert_eq!(resolutions, (EVENTS * shapes.len()) as f64, "one resolution per event and selection");
    assert_eq!(reuses, (EVENTS * subscribers) as f64 - resolutions);
    stack.stop().await;
}

/// A selection reaching `template` depends on the caller (`viewerCanEdit` is the caller's own
/// right; visibility and the credential are too): it is resolved for every subscriber, never
/// shared, and an owner and a viewer of the same workspace, subscribed to the same events with
/// the same operation, each receive the template as they see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_reaching_the_template_is_resolved_per_subscriber() {
    const EVENTS: usize = 4;
    const QUERY: &str = "subscription($ids: [ID!]!, $after: ID) { \
        templateEvents(templateIds: $ids, afterSequence: $after) { sequence template { name viewerCanEdit } } }";
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.websocket.keepalive_interval = Duration::ZERO;
    })
    .await;
    let dataset = stack.devstack.dataset();
    // A viewer of one of OWNER's workspaces, and a template of that workspace, from the seed.
    let viewer = dataset
        .memberships
        .iter()
        .find(|m| m.role == banyan_devstack::dataset::Role::Viewer && (m.workspace == 1 || m.workspace == 2))
        .expect("a seeded viewer of workspace 1 or 2");
    let template = dataset.templates.iter().find(|t| t.workspace == viewer.workspace).expect("a template");
    let (template, name, viewer) = (template.id, template.name.clone(), viewer.user);
    let start = stack.devstack.append_events(vec![(template, EventKind::Sent)]).await[0];
    // Both users' subscriptions on one connection each, the owner's first.
    let users = [(OWNER, true), (viewer, false)];
    let mut sockets = Vec::new();
    for (user, _) in users {
        let mut socket = WsClient::signed_in(&stack, user).await;
        for slot in 0..PER_CONNECTION {
            socket.subscribe(&format!("u{user}-{slot}"), QUERY, variables(template, start)).await;
        }
        sockets.push(socket);
    }
    let subscribers = users.len() * PER_CONNECTION;
    let Delivery { appended, received, resolutions, reuses } =
        deliver(&stack, &mut sockets, subscribers, template, EVENTS).await;
    for (user, can_edit) in users {
        let expected: Vec<Value> = appended
            .iter()
            .map(|event| {
                let event = json!({ "sequence": event.sequence, "template": { "name": name, "viewerCanEdit": can_edit } });
                object("templateEvents", event)
            })
            .collect();
        for slot in 0..PER_CONNECTION {
            assert_eq!(received[&format!("u{user}-{slot}")], expected, "user {user}, subscription {slot}");
        }
    }
    assert_eq!(resolutions, (EVENTS * subscribers) as f64, "one resolution per event and subscriber");
    assert_eq!(reuses, 0.0, "nothing reused");
    stack.stop().await;
}
