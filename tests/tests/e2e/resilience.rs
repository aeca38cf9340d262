//! Backend faults under bounded concurrent load, over real sockets: the request deadline, errors
//! remembered for the request, retries under the retry budget, the circuit breaker, the
//! concurrency limit, deduplication of reads, and the devstack's wrong answers. Every assertion
//! is on codes, call counts (from the devstack's own counters) and states; none on time.

use std::time::Duration;

use banyan_devstack::{Answer, Backend, DevStackConfig, EventKind, Fault};
use banyan_gateway::Config;
use banyan_tests::{
    GraphqlResponse, OWNER, TestStack, contract_operation, metric_sample, template_id, workspace_id,
};
use futures::StreamExt;
use serde_json::{Value, json};

/// A viewer of workspace 1: sees template 1 as the owner does.
const VIEWER: u64 = banyan_devstack::dataset::VIEWER_ONLY_USER;

const GET_TEMPLATE_STATS: &str = "EventService/GetTemplateStats";
const BATCH_GET_DRAFTS: &str = "DraftService/BatchGetDrafts";
const GET_WORKSPACES: &str = "GET /api/v1/workspaces/";

fn template_list() -> (String, Value) {
    (contract_operation("TemplateList"), json!({ "workspaceId": workspace_id(1), "first": 10 }))
}

fn template_editor() -> (String, Value) {
    (contract_operation("TemplateEditor"), json!({ "id": template_id(1) }))
}

/// `n` requests by `user`, `concurrency` at a time; every response, in any order.
async fn load(
    stack: &TestStack,
    n: usize,
    concurrency: usize,
    user: u64,
    request: &(String, Value),
) -> Vec<GraphqlResponse> {
    futures::stream::iter(0..n)
        .map(|_| stack.graphql_as(Some(user), &request.0, request.1.clone()))
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// The codes of the errors whose path ends in `field`, and of all errors.
fn codes_on(response: &GraphqlResponse, field: &str) -> Vec<String> {
    response.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter(|e| {
                    e["path"].as_array().and_then(|p| p.last()).and_then(Value::as_str) == Some(field)
                })
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("<no code>").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Retries, breaker and limits off for `backends`, so counts are exact unless a test turns one on.
fn plain(config: &mut Config) {
    for (retry, breaker) in [
        (&mut config.backends.monolith.retry, &mut config.backends.monolith.breaker),
        (&mut config.backends.events.retry, &mut config.backends.events.breaker),
        (&mut config.backends.drafts.retry, &mut config.backends.drafts.breaker),
    ] {
        retry.max_retries = 0;
        breaker.enabled = false;
    }
}

/// Signs `users` in while the monolith is healthy, so their identity is cached when it fails.
async fn warm_identities(stack: &TestStack, users: &[u64]) {
    for &user in users {
        let response = stack.graphql_as(Some(user), "{ me { id } }", json!({})).await;
        assert!(response.data()["me"]["id"].is_string(), "{:?}", response.body);
    }
    stack.devstack.calls().reset();
}

async fn ready_status(stack: &TestStack) -> u16 {
    stack
        .http()
        .get(format!("http://{}/readyz", stack.gateway.addr()))
        .send()
        .await
        .expect("the gateway answers /readyz")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_failing_backend_is_called_once_per_request_not_for_the_prefetch_and_again_for_the_fields() {
    let stack = TestStack::start_with(DevStackConfig::default(), plain).await;
    warm_identities(&stack, &[OWNER]).await;
    stack.devstack.faults().set(Backend::Events, Fault::error_rate(1.0));
    let responses = load(&stack, 6, 3, OWNER, &template_list()).await;
    for response in &responses {
        assert_eq!(response.status, 200);
        let edges = response.data()["templates"]["edges"].as_array().expect("templates still load");
        assert_eq!(edges.len(), 10);
        assert!(edges.iter().all(|edge| edge["node"]["stats"].is_null()));
        assert_eq!(codes_on(response, "stats"), vec!["BACKEND_UNAVAILABLE"; 10]);
    }
    // One call per request: the page's prefetch fails, and its ten fields reuse that failure.
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 6);
    stack.stop().await;
}

#[tokio::test]
async fn a_hanging_backend_costs_a_request_one_deadline_and_one_call() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        plain(config);
        config.backends.events.timeout = Duration::from_millis(300);
    })
    .await;
    warm_identities(&stack, &[OWNER]).await;
    stack.devstack.faults().set(Backend::Events, Fault::hang());
    let responses = load(&stack, 4, 4, OWNER, &template_list()).await;
    for response in &responses {
        assert_eq!(response.status, 200);
        assert!(response.data()["templates"]["edges"][0]["node"]["name"].is_string());
        assert_eq!(codes_on(response, "stats"), vec!["BACKEND_TIMEOUT"; 10]);
    }
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 4);
    stack.stop().await;
}

#[tokio::test]
async fn the_request_deadline_answers_what_is_ready_with_coded_errors_instead_of_a_504() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        plain(config);
        // The per-call deadline is longer than the request's: the request's wins.
        config.backends.drafts.timeout = Duration::from_secs(30);
        config.server.request_timeout = Duration::from_secs(1);
    })
    .await;
    warm_identities(&stack, &[OWNER]).await;
    stack.devstack.faults().set(Backend::Drafts, Fault::hang());
    for response in load(&stack, 4, 4, OWNER, &template_editor()).await {
        assert_eq!(response.status, 200, "{:?}", response.body);
        assert!(response.data()["template"]["name"].is_string(), "{:?}", response.body);
        assert_eq!(response.data()["template"]["draft"], Value::Null);
        assert_eq!(response.error_codes(), ["BACKEND_TIMEOUT"]);
    }
    stack.stop().await;
}

/// `n` failing requests against a monolith that answers 503 to everything; returns the calls
/// the monolith received.
async fn monolith_outage(n: usize, configure: impl FnOnce(&mut banyan_gateway::config::RetryConfig)) -> u64 {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        plain(config);
        let retry = &mut config.backends.monolith.retry;
        retry.max_retries = 2;
        retry.initial_backoff = Duration::from_millis(1);
        retry.max_backoff = Duration::from_millis(5);
        configure(retry);
    })
    .await;
    warm_identities(&stack, &[OWNER]).await;
    stack.devstack.faults().set(Backend::Monolith, Fault::error_rate(1.0));
    let request = ("{ workspaces { id } }".to_owned(), json!({}));
    for response in load(&stack, n, 8, OWNER, &request).await {
        assert_eq!(response.status, 200);
        assert_eq!(codes_on(&response, "workspaces"), ["BACKEND_UNAVAILABLE"]);
    }
    let calls = stack.devstack.calls().count(GET_WORKSPACES);
    assert_eq!(calls, stack.devstack.calls().total(), "only the workspaces view was called");
    stack.stop().await;
    calls
}

#[tokio::test]
async fn the_retry_budget_keeps_an_outage_from_being_multiplied() {
    const N: usize = 100;
    // The defaults: 10% of the calls over 10 s, plus 1 a second (10 over the window).
    let with_budget = monolith_outage(N, |retry| {
        retry.budget_ratio = 0.1;
        retry.budget_min_per_second = 1;
        retry.budget_window = Duration::from_secs(10);
    })
    .await;
    let bound = (N + N / 10 + 10) as u64;
    assert!(with_budget > N as u64, "reads are retried: {with_budget} calls");
    assert!(with_budget <= bound, "{with_budget} calls for {N} requests, over the budget's {bound}");
    // Without a budget worth the name, every request is tried three times.
    let without_budget = monolith_outage(N, |retry| {
        retry.budget_ratio = 1.0;
        retry.budget_min_per_second = 1000;
    })
    .await;
    assert_eq!(without_budget, 3 * N as u64);
}

#[tokio::test]
async fn reads_are_retried_and_writes_never() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        plain(config);
        config.backends.monolith.retry.max_retries = 2;
        config.backends.monolith.retry.budget_min_per_second = 1000;
    })
    .await;
    warm_identities(&stack, &[OWNER]).await;
    stack.devstack.faults().set(Backend::Monolith, Fault::error_rate(1.0));
    let read = stack.graphql("{ workspaces { id } }", json!({})).await;
    assert_eq!(codes_on(&read, "workspaces"), ["BACKEND_UNAVAILABLE"]);
    assert_eq!(stack.devstack.calls().count(GET_WORKSPACES), 3, "a read is retried twice");
    let rename = stack
        .graphql(&contract_operation("RenameTemplate"), json!({ "id": template_id(1), "name": "Renamed" }))
        .await;
    assert_eq!(codes_on(&rename, "renameTemplate"), ["BACKEND_UNAVAILABLE"]);
    let patches: u64 = stack
        .devstack
        .calls()
        .snapshot()
        .iter()
        .filter(|(key, _)| key.starts_with("PATCH "))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(patches, 1, "a write is made once: {:?}", stack.devstack.calls().snapshot());
    stack.stop().await;
}

fn breaker_config(config: &mut Config, cool_down: Duration) {
    plain(config);
    let breaker = &mut config.backends.events.breaker;
    breaker.enabled = true;
    breaker.min_calls = 5;
    breaker.failure_rate = 0.5;
    breaker.window = Duration::from_secs(60);
    breaker.cool_down = cool_down;
    config.backends.events.breaker_affects_readiness = true;
}

#[tokio::test]
async fn an_open_breaker_fails_its_fields_at_once_without_calling_the_backend() {
    let stack =
        TestStack::start_with(DevStackConfig::default(), |c| breaker_config(c, Duration::from_secs(600)))
            .await;
    warm_identities(&stack, &[OWNER]).await;
    assert_eq!(ready_status(&stack).await, 200);
    stack.devstack.faults().set(Backend::Events, Fault::error_rate(1.0));
    // One call per request; the fifth failure in five calls opens it.
    for response in load(&stack, 5, 1, OWNER, &template_list()).await {
        assert_eq!(codes_on(&response, "stats"), vec!["BACKEND_UNAVAILABLE"; 10]);
    }
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 5);
    assert_eq!(ready_status(&stack).await, 503, "breaker_affects_readiness is on for events");
    // Open: the stats fail with the same code, the rest of the page is served, and the event
    // store hears nothing more.
    for response in load(&stack, 20, 4, OWNER, &template_list()).await {
        assert_eq!(response.status, 200);
        let edges = response.data()["templates"]["edges"].as_array().expect("templates still load");
        assert!(edges.iter().all(|edge| edge["node"]["name"].is_string()));
        assert_eq!(codes_on(&response, "stats"), vec!["BACKEND_UNAVAILABLE"; 10]);
    }
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 5);
    // Operators see it in /metrics: the events breaker open (the others closed), and each of the
    // 20 requests' stats batch shed without a call.
    let metrics = stack.metrics_text().await;
    assert_eq!(
        metric_sample(&metrics, r#"banyan_backend_breaker_state{backend="events",state="open"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_sample(&metrics, r#"banyan_backend_breaker_state{backend="events",state="closed"}"#),
        Some(0.0)
    );
    assert_eq!(
        metric_sample(&metrics, r#"banyan_backend_breaker_state{backend="monolith",state="closed"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_sample(&metrics, r#"banyan_backend_shed_by_breaker_total{backend="events"}"#),
        Some(20.0)
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_breaker_probes_after_its_cool_down_and_closes_once_the_backend_is_back() {
    let stack =
        TestStack::start_with(DevStackConfig::default(), |c| breaker_config(c, Duration::from_millis(200)))
            .await;
    warm_identities(&stack, &[OWNER]).await;
    stack.devstack.faults().set(Backend::Events, Fault::error_rate(1.0));
    load(&stack, 5, 1, OWNER, &template_list()).await;
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 5);
    stack.devstack.faults().clear(Backend::Events);
    // Bounded: the first request after the cool-down is the probe, and it succeeds.
    let mut recovered = None;
    for attempt in 0..200 {
        let response = stack.graphql(&template_list().0, template_list().1).await;
        if response.data()["templates"]["edges"][0]["node"]["stats"].is_object() {
            recovered = Some(attempt);
            break;
        }
        assert_eq!(codes_on(&response, "stats"), vec!["BACKEND_UNAVAILABLE"; 10], "shed while open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recovered.is_some(), "the breaker closed once the backend was back");
    // Shed requests made no call: one probe after the five failures.
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 6);
    assert_eq!(ready_status(&stack).await, 200);
    for response in load(&stack, 8, 4, OWNER, &template_list()).await {
        assert!(response.body["errors"].is_null(), "{:?}", response.body["errors"]);
    }
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 14);
    stack.stop().await;
}

#[tokio::test]
async fn past_the_concurrency_limit_calls_wait_briefly_then_fail_with_backend_overloaded() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        plain(config);
        config.backends.drafts.max_concurrent_calls = 1;
        config.backends.drafts.queue_timeout = Duration::from_millis(20);
    })
    .await;
    warm_identities(&stack, &[OWNER]).await;
    stack.devstack.faults().set(Backend::Drafts, Fault::latency(Duration::from_millis(1500)));
    let responses = load(&stack, 6, 6, OWNER, &template_editor()).await;
    let mut overloaded = 0;
    for response in &responses {
        assert_eq!(response.status, 200);
        assert!(response.data()["template"]["name"].is_string());
        match response.error_codes().as_slice() {
            [] => assert!(response.data()["template"]["draft"].is_object()),
            [code] if code == "BACKEND_OVERLOADED" => {
                overloaded += 1;
                assert_eq!(response.data()["template"]["draft"], Value::Null);
            }
            other => panic!("unexpected errors {other:?}"),
        }
    }
    assert!(overloaded >= 1, "six calls at once past a limit of one");
    // A refused call never reaches the backend.
    assert_eq!(stack.devstack.calls().count(BATCH_GET_DRAFTS), (6 - overloaded) as u64);
    stack.stop().await;
}

#[tokio::test]
async fn identical_reads_of_one_user_share_a_call_and_two_users_never_share() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        plain(config);
        config.backends.drafts.dedupe_reads = true;
    })
    .await;
    warm_identities(&stack, &[OWNER, VIEWER]).await;
    stack.devstack.faults().set(Backend::Drafts, Fault::latency(Duration::from_millis(500)));
    let editor = template_editor();
    let (a, b) = tokio::join!(
        stack.graphql_as(Some(OWNER), &editor.0, editor.1.clone()),
        stack.graphql_as(Some(OWNER), &editor.0, editor.1.clone()),
    );
    assert!(a.data()["template"]["draft"].is_object(), "{:?}", a.body);
    assert_eq!(a.data()["template"]["draft"], b.data()["template"]["draft"]);
    assert_eq!(stack.devstack.calls().count(BATCH_GET_DRAFTS), 1, "one user, one call");
    stack.devstack.calls().reset();
    let (owner, viewer) = tokio::join!(
        stack.graphql_as(Some(OWNER), &editor.0, editor.1.clone()),
        stack.graphql_as(Some(VIEWER), &editor.0, editor.1.clone()),
    );
    assert!(owner.data()["template"]["draft"].is_object());
    assert!(viewer.data()["template"]["draft"].is_object());
    assert_eq!(stack.devstack.calls().count(BATCH_GET_DRAFTS), 2, "two users, two calls");
    // Each user's call carried that user's identity.
    stack.stop().await;
}

#[tokio::test]
async fn wrong_grpc_answers_fail_only_the_fields_of_that_service_with_a_code() {
    let stack = TestStack::start_with(DevStackConfig::default(), plain).await;
    warm_identities(&stack, &[OWNER]).await;
    for (answer, code) in [
        (Answer::DeadlineExceeded, "BACKEND_TIMEOUT"),
        (Answer::ResourceExhausted, "BACKEND_UNAVAILABLE"),
        (Answer::Malformed, "BACKEND_ERROR"),
        (Answer::Html500, "BACKEND_ERROR"),
        (Answer::Reset, "BACKEND_UNAVAILABLE"),
    ] {
        stack.devstack.faults().set(Backend::Drafts, Fault { answer: Some(answer), ..Fault::none() });
        for response in load(&stack, 8, 4, OWNER, &template_editor()).await {
            assert_eq!(response.status, 200, "{answer:?}");
            assert!(response.data()["template"]["name"].is_string(), "{answer:?}: {:?}", response.body);
            assert_eq!(response.data()["template"]["draft"], Value::Null, "{answer:?}");
            assert_eq!(response.error_codes(), [code], "{answer:?}: {:?}", response.body["errors"]);
        }
    }
    stack.devstack.faults().clear(Backend::Drafts);
    let healthy = load(&stack, 1, 1, OWNER, &template_editor()).await;
    assert!(healthy[0].data()["template"]["draft"].is_object(), "the gateway still serves");
    stack.stop().await;
}

#[tokio::test]
async fn wrong_monolith_answers_are_coded_errors_that_leak_nothing() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        plain(config);
        config.backends.monolith.timeout = Duration::from_millis(500);
    })
    .await;
    warm_identities(&stack, &[OWNER]).await;
    let request = ("{ workspaces { id } }".to_owned(), json!({}));
    for (answer, code) in [
        (Answer::DeadlineExceeded, "BACKEND_UNAVAILABLE"),
        (Answer::ResourceExhausted, "BACKEND_ERROR"),
        (Answer::Malformed, "BACKEND_ERROR"),
        (Answer::Html500, "BACKEND_UNAVAILABLE"),
        (Answer::AppendSlashRedirect, "BACKEND_ERROR"),
        (Answer::PartialBody, "BACKEND_UNAVAILABLE"),
        (Answer::SlowBody, "BACKEND_TIMEOUT"),
        (Answer::Reset, "BACKEND_UNAVAILABLE"),
    ] {
        stack.devstack.calls().reset();
        stack.devstack.faults().set(Backend::Monolith, Fault { answer: Some(answer), ..Fault::none() });
        for response in load(&stack, 8, 4, OWNER, &request).await {
            assert_eq!(response.status, 200, "{answer:?}");
            assert_eq!(response.data()["workspaces"], Value::Null, "{answer:?}");
            assert_eq!(codes_on(&response, "workspaces"), [code], "{answer:?}: {:?}", response.body);
            let text = response.body.to_string();
            assert!(!text.contains("<html") && !text.contains("Server Error"), "{answer:?} leaks: {text}");
        }
        // One call per request: a redirect is not followed, and retries are off.
        assert_eq!(stack.devstack.calls().count(GET_WORKSPACES), 8, "{answer:?}");
    }
    stack.devstack.faults().clear(Backend::Monolith);
    let healthy = load(&stack, 1, 1, OWNER, &request).await;
    assert!(healthy[0].data()["workspaces"].is_array(), "the gateway still serves");
    stack.stop().await;
}

/// Opens `templateEvents` on template 1, lets one event through, then breaks the stream with
/// `answer`; returns the socket after the first event.
async fn subscription_broken_by(stack: &TestStack, answer: Answer) -> banyan_tests::ws::WsClient {
    let feed = contract_operation("TemplateEventsFeed");
    stack.devstack.faults().set(Backend::Events, Fault { answer: Some(answer), ..Fault::none() });
    let mut socket = banyan_tests::ws::WsClient::signed_in(stack, OWNER).await;
    socket.subscribe("1", &feed, json!({ "templateIds": [template_id(1)] })).await;
    let mut opened = false;
    for _ in 0..100 {
        if stack.devstack.active_event_streams() == 1 {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(opened, "{answer:?}: the gateway opened the gRPC stream");
    // One at a time: two events appended together can travel in one frame.
    stack.devstack.append_events(vec![(1, EventKind::Opened)]).await;
    let first = socket.next().await.expect("the first event");
    assert_eq!(first["type"], "next", "{answer:?}: {first}");
    assert_eq!(first["payload"]["data"]["templateEvents"]["kind"], "OPENED", "{answer:?}: {first}");
    stack.devstack.append_events(vec![(1, EventKind::Clicked)]).await;
    socket
}

/// The stream behind a subscription ends mid-flow (the event store going away, or the stream
/// reset): the gateway reopens it from the last sequence it forwarded, so the event that broke it
/// arrives anyway, with no error and no gap.
#[tokio::test]
async fn a_subscription_broken_mid_stream_resumes_without_a_gap() {
    for answer in [Answer::MidStreamUnavailable, Answer::MidStreamReset] {
        let stack = TestStack::start_with(DevStackConfig::default(), plain).await;
        let mut socket = subscription_broken_by(&stack, answer).await;
        let next = socket.next().await.expect("the next event");
        assert_eq!(next["type"], "next", "{answer:?}: {next}");
        assert!(next["payload"].get("errors").is_none(), "{answer:?}: {next}");
        assert_eq!(next["payload"]["data"]["templateEvents"]["kind"], "CLICKED", "{answer:?}: {next}");
        assert_eq!(stack.devstack.calls().count("EventService/StreamEvents"), 2, "{answer:?}: reopened once");
        socket.close().await;
        stack.stop().await;
    }
}

#[tokio::test]
async fn a_subscription_stalled_mid_stream_is_released_when_the_client_completes_it() {
    let stack = TestStack::start_with(DevStackConfig::default(), plain).await;
    let mut socket = subscription_broken_by(&stack, Answer::MidStreamStall).await;
    // The second event never arrives; the client gives up on the subscription, and the gateway
    // cancels the stalled gRPC stream.
    socket.send(json!({ "id": "1", "type": "complete" })).await;
    let mut released = false;
    for _ in 0..100 {
        if stack.devstack.active_event_streams() == 0 {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(released, "the stalled stream was cancelled");
    // The connection still serves: a new subscription on it gets its events.
    stack.devstack.faults().clear(Backend::Events);
    let feed = contract_operation("TemplateEventsFeed");
    socket.subscribe("2", &feed, json!({ "templateIds": [template_id(2)] })).await;
    for _ in 0..100 {
        if stack.devstack.active_event_streams() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.devstack.append_events(vec![(2, EventKind::Delivered)]).await;
    let next = socket.next().await.expect("an event");
    assert_eq!(next["id"], "2", "{next}");
    assert_eq!(next["payload"]["data"]["templateEvents"]["kind"], "DELIVERED", "{next}");
    socket.close().await;
    stack.stop().await;
}
