//! Shutting the gateway down (`RunningGateway::shutdown`, what SIGTERM runs) over real sockets:
//! `/readyz` turns 503 while the listener still accepts, every request accepted before the
//! listener stopped is answered, subscriptions end with `complete` and close 1001, and what still
//! runs when the grace period ends is aborted and counted.

use std::collections::BTreeMap;
use std::time::Duration;

use banyan_devstack::{Backend, DevStackConfig, Fault};
use banyan_tests::ws::{LEGACY_WS, WsClient};
use banyan_tests::{OWNER, TestStack, template_id};
use serde_json::json;

const LIVE: &str = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence } }";
const STATS: &str = "query($id: ID!) { template(id: $id) { id stats(window: LAST_7_DAYS) { sent } } }";

async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    condition()
}

/// A subscription open over each protocol when shutdown begins: each gets `complete` for its
/// operation, then a close frame 1001, and nothing is aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_subscriptions_get_complete_then_close_1001_on_both_protocols() {
    let stack = TestStack::start().await;
    let mut modern = WsClient::signed_in(&stack, OWNER).await;
    modern.subscribe("live", LIVE, json!({ "ids": [template_id(1)] })).await;
    let mut legacy = WsClient::connect(&stack, LEGACY_WS, &[]).await;
    legacy.init(json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    let ack = legacy.next().await.expect("an answer to connection_init");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let start = json!({ "query": LIVE, "variables": { "ids": [template_id(2)] } });
    legacy.send(json!({ "type": "start", "id": "old", "payload": start })).await;
    assert!(wait_for(|| stack.devstack.active_event_streams() == 2).await, "both subscriptions run");

    let TestStack { devstack, gateway, .. } = stack;
    let lifecycle = gateway.lifecycle().clone();
    assert_eq!(lifecycle.open_websockets(), 2);
    let shutdown = tokio::spawn(gateway.shutdown());

    let modern_end = modern.read_until_close(Duration::from_secs(10)).await;
    let operations: Vec<_> = modern_end.messages.iter().filter(|m| m["type"] != "ping").cloned().collect();
    assert_eq!(operations, [json!({ "id": "live", "type": "complete" })]);
    assert_eq!(modern_end.close, Some((1001, "Server shutting down".to_owned())));

    let legacy_end = legacy.read_until_close(Duration::from_secs(10)).await;
    let operations: Vec<_> = legacy_end.messages.iter().filter(|m| m["type"] != "ka").cloned().collect();
    assert_eq!(operations, [json!({ "type": "complete", "id": "old" })]);
    assert_eq!(legacy_end.close, Some((1001, "Server shutting down".to_owned())));

    let report = shutdown.await.expect("shutdown ran");
    assert!(report.drained(), "{report:?}");
    assert_eq!(lifecycle.aborted_at_shutdown(), 0);
    assert_eq!(lifecycle.open_websockets(), 0);
    assert!(wait_for(|| devstack.active_event_streams() == 0).await, "the gRPC streams ended too");
    devstack.shutdown().await;
}

/// How one request of the load ended.
#[derive(Debug)]
enum Outcome {
    /// 200 with the template's stats and no error.
    Answered,
    /// The connection was refused: the listener had stopped.
    Refused,
    /// Anything else: an accepted request that failed.
    Failed(String),
}

/// Client tasks sending the stats query in a loop.
const CLIENTS: usize = 8;
/// Most requests one client sends (each stops at its first refusal).
const MAX_REQUESTS: usize = 400;

/// Eight clients send queries in a loop, each on a fresh connection, with the event store slow
/// enough (50 ms) that requests are in flight at every moment, while the gateway shuts down
/// with a 300 ms pre-stop delay: every request gets a 200 with data or is refused (the listener
/// stopped); none accepted is reset or cut. A ninth client polls `/readyz`, which answers 503
/// (over connections the listener still accepted) before the connections are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_no_accepted_request() {
    let devstack = DevStackConfig {
        faults: BTreeMap::from([(Backend::Events, Fault::latency(Duration::from_millis(50)))]),
        ..DevStackConfig::default()
    };
    let stack = TestStack::start_with(devstack, |config| {
        config.server.shutdown_delay = Duration::from_millis(300);
        config.server.shutdown_grace = Duration::from_secs(15);
    })
    .await;
    // The caller's identity is cached after the first request; warm it.
    assert_eq!(stack.graphql(STATS, json!({ "id": template_id(1) })).await.status, 200);
    let url = stack.graphql_url();
    let readyz = format!("http://{}/readyz", stack.gateway.addr());
    let token = stack.token(OWNER);
    // No idle connection is kept: each request opens its own, so "accepted" is exact.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client");
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..MAX_REQUESTS {
                let sent = client
                    .post(&url)
                    .header("authorization", format!("Token {token}"))
                    .header("accept", "application/graphql-response+json")
                    .json(&json!({ "query": STATS, "variables": { "id": template_id(1) } }))
                    .send()
                    .await;
                let outcome = match sent {
                    Err(error) if error.is_connect() => Outcome::Refused,
                    Err(error) => Outcome::Failed(format!("{error:?}")),
                    Ok(response) => {
                        let status = response.status();
                        match response.json::<serde_json::Value>().await {
                            Ok(body)
                                if status == 200
                                    && body.get("errors").is_none()
                                    && !body["data"]["template"]["stats"].is_null() =>
                            {
                                Outcome::Answered
                            }
                            Ok(body) => Outcome::Failed(format!("{status}: {body}")),
                            Err(error) => Outcome::Failed(format!("{status}, body cut: {error:?}")),
                        }
                    }
                };
                let refused = matches!(outcome, Outcome::Refused);
                outcomes.push(outcome);
                if refused {
                    break;
                }
            }
            outcomes
        }));
    }
    let poller = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..MAX_REQUESTS {
                match client.get(&readyz).send().await {
                    Ok(response) => statuses.push(response.status().as_u16()),
                    Err(error) if error.is_connect() => break,
                    Err(error) => panic!("/readyz failed: {error:?}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        })
    };
    // Load is on: every client has had answers.
    assert!(
        wait_for(|| stack.devstack.calls().count("EventService/GetTemplateStats") >= 3 * CLIENTS as u64)
            .await,
        "the load runs"
    );

    let TestStack { devstack, gateway, .. } = stack;
    let lifecycle = gateway.lifecycle().clone();
    let report = gateway.shutdown().await;

    let (mut answered, mut refused, mut failed) = (0, 0, Vec::new());
    for task in tasks {
        for outcome in task.await.expect("a client ran") {
            match outcome {
                Outcome::Answered => answered += 1,
                Outcome::Refused => refused += 1,
                Outcome::Failed(why) => failed.push(why),
            }
        }
    }
    let statuses = poller.await.expect("the poller ran");
    eprintln!("answered {answered}, refused {refused}, failed {}; readyz {statuses:?}", failed.len());
    assert!(failed.is_empty(), "accepted requests failed: {failed:#?}");
    assert_eq!(refused, CLIENTS, "every client ran until the listener refused it");
    assert!(answered > 3 * CLIENTS, "answered {answered}");
    assert!(report.drained(), "{report:?}");
    assert_eq!(lifecycle.aborted_at_shutdown(), 0);
    let first_503 = statuses.iter().position(|&status| status == 503);
    assert!(
        first_503.is_some_and(
            |at| statuses[..at].iter().all(|&s| s == 200) && statuses[at..].iter().all(|&s| s == 503)
        ),
        "/readyz: 200s, then 503s while the listener still accepted: {statuses:?}"
    );
    devstack.shutdown().await;
}

/// A request still running when `server.shutdown_grace` ends (the event store hangs) is
/// aborted: its connection is dropped, the shutdown returns, and it is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_running_at_the_grace_deadline_is_aborted_and_counted() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.server.shutdown_grace = Duration::from_millis(500);
        config.backends.events.timeout = Duration::from_secs(60);
    })
    .await;
    assert_eq!(stack.graphql(STATS, json!({ "id": template_id(1) })).await.status, 200);
    stack.devstack.faults().set(Backend::Events, Fault::hang());
    let request = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .json(&json!({ "query": STATS, "variables": { "id": template_id(1) } }))
        .send();
    let request = tokio::spawn(request);
    let lifecycle = stack.gateway.lifecycle().clone();
    assert!(wait_for(|| lifecycle.in_flight_requests() == 1).await, "the request is in flight");

    let TestStack { devstack, gateway, .. } = stack;
    let report = gateway.shutdown().await;
    assert_eq!(report.aborted_requests, 1, "{report:?}");
    assert_eq!(report.aborted_websockets, 0, "{report:?}");
    assert_eq!(lifecycle.aborted_at_shutdown(), 1);
    assert_eq!(lifecycle.in_flight_requests(), 0, "the aborted request is gone");
    let outcome = request.await.expect("the client ran");
    let error = outcome.expect_err("the aborted request got no answer");
    assert!(!error.is_connect() && !error.is_timeout(), "cut, not refused or timed out: {error:?}");
    devstack.shutdown().await;
}
