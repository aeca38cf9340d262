//! The fault matrix under bounded concurrent load: every fault the devstack can inject (and a
//! closed port), on the monolith and on each gRPC service in turn, while [`CLIENTS`] clients send
//! a query that reads all three backends. Each answer must arrive as a `200` with the unaffected
//! fields equal to values recomputed from the seeded dataset, and a coded error (exact
//! `extensions.code`) on each affected field's path and nowhere else; afterwards the gateway
//! serves again. A hang or a slow backend is cut by that backend's short call deadline into a
//! coded error, and the request deadline (`server.request_timeout`) bounds every answer, so every
//! answer arrives, none as a `504`; nothing here asserts on time.
//!
//! Beside the matrix, under the same load: subscriptions broken mid-stream (`UNAVAILABLE`, reset,
//! stall), the breaker opening, shedding (counted at the devstack) and closing after recovery,
//! and the retry budget in a full outage of each backend. Every test also checks that nothing
//! panicked on the runtime's worker threads, where the gateway's tasks run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use banyan_devstack::dataset::Dataset;
use banyan_devstack::{Answer, Backend, DevStackConfig, EventKind, Fault};
use banyan_gateway::Config;
use banyan_tests::ws::WsClient;
use banyan_tests::{
    GraphqlResponse, OWNER, TestStack, block_id, contract_operations, metric_sample, template_id, user_id,
};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Concurrent clients.
const CLIENTS: usize = 16;
/// Requests each client sends one after another, per fault that fails fast (the CPU a debug
/// build spends per request, times the cases, is what this file's run time is made of).
const REQUESTS_PER_CLIENT: usize = 1;
/// The template every request reads: owned by [`OWNER`], with a seeded draft and events.
const TEMPLATE: u64 = 1;
/// The whole-request deadline: every answer arrives by then (a backstop a little later would
/// answer `504`, which no test here may see). Far longer than a healthy request takes under the
/// load, even in a debug build on a busy machine.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The per-call deadline of the backend under fault: a hang or a slow backend costs a request
/// this, then a coded error. (The request deadline cutting a hang is
/// [`regression_me_is_read_within_the_request_deadline`]'s and `resilience.rs`'s subject.)
const FAULTED_CALL_DEADLINE: Duration = Duration::from_secs(2);

/// One query, three backends: `me` and `template` from the monolith, `stats` from the event
/// store, `draft` from the draft store.
const MATRIX_QUERY: &str = "query FaultMatrix($id: ID!) {
  me { id username }
  template(id: $id) {
    id name subject
    stats(window: LAST_30_DAYS) { sent delivered opened clicked bounced uniqueOpens }
    draft { version blocks { id kind content } }
  }
}";

/// The devstack's call-log key of the event store's stats call (one per matrix query).
const GET_TEMPLATE_STATS: &str = "EventService/GetTemplateStats";

/// Whether a devstack call-log key is a call to `backend`.
fn is_call_to(backend: Backend, key: &str) -> bool {
    match backend {
        Backend::Monolith => !key.contains("Service/"),
        Backend::Events => key.starts_with("EventService/"),
        Backend::Drafts => key.starts_with("DraftService/"),
    }
}

/// The calls `backend` received since the counters were last reset.
fn calls_to(stack: &TestStack, backend: Backend) -> u64 {
    stack.devstack.calls().snapshot().iter().filter(|(key, _)| is_call_to(backend, key)).map(|(_, n)| n).sum()
}

// ---------------------------------------------------------------------------------------------
// Panics

/// Panics seen on tokio's threads (where the gateway's connection and request tasks run) since
/// the hook was installed. The test's own assertions run on the test's thread, named after it.
fn worker_panics() -> &'static Mutex<Vec<String>> {
    static PANICS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            // tokio names its workers `tokio-rt-worker` (`tokio-runtime-worker` before 1.5x).
            if thread.name().is_some_and(|name| name.starts_with("tokio-"))
                && let Some(panics) = PANICS.get()
            {
                panics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(info.to_string());
            }
            previous(info);
        }));
        Mutex::new(Vec::new())
    })
}

/// The message of the one panic this file causes on purpose, to show the check sees panics.
const SELF_TEST_PANIC: &str = "the panic check's own test panic";

fn assert_nothing_panicked() {
    let panics: Vec<String> = worker_panics()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|panic| !panic.contains(SELF_TEST_PANIC))
        .cloned()
        .collect();
    assert!(panics.is_empty(), "a worker panicked: {panics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_check_sees_a_panic_in_a_spawned_task() {
    worker_panics();
    // A task like the gateway's connection and request tasks; tokio catches its panic, so only
    // the hook would ever tell.
    let joined = tokio::spawn(async { panic!("{SELF_TEST_PANIC}") }).await;
    assert!(joined.is_err_and(|error| error.is_panic()));
    let panics = worker_panics().lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert!(panics.iter().any(|panic| panic.contains(SELF_TEST_PANIC)), "{panics:?}");
}

// ---------------------------------------------------------------------------------------------
// Expected values, recomputed from the seeded rows

/// The six counts of a template's seeded events over the last `days` days, recounted with a
/// plain loop (no seeded event lies within an hour of a window boundary, so the dataset's anchor
/// stands for now).
fn recount_stats(dataset: &Dataset, template: u64, days: i64) -> Value {
    let since = dataset.anchor - chrono::Duration::days(days);
    let (mut sent, mut delivered, mut opened, mut clicked, mut bounced) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut openers: Vec<&str> = Vec::new();
    for event in dataset.events.iter().filter(|e| e.template == template && e.occurred_at >= since) {
        match event.kind {
            EventKind::Sent => sent += 1,
            EventKind::Delivered => delivered += 1,
            EventKind::Opened => {
                opened += 1;
                if !openers.contains(&&*event.recipient) {
                    openers.push(&event.recipient);
                }
            }
            EventKind::Clicked => clicked += 1,
            EventKind::Bounced => bounced += 1,
            EventKind::Unspecified => {}
        }
    }
    json!({
        "sent": sent, "delivered": delivered, "opened": opened, "clicked": clicked,
        "bounced": bounced, "uniqueOpens": openers.len(),
    })
}

/// What the matrix query answers when every backend is healthy, built from the dataset.
struct Expected {
    me: Value,
    id: Value,
    name: Value,
    subject: Value,
    stats: Value,
    draft: Value,
}

impl Expected {
    fn from_dataset(dataset: &Dataset) -> Self {
        let user = dataset.user(OWNER).expect("a seeded owner");
        let template = dataset.template(TEMPLATE).expect("a seeded template");
        let draft = dataset.draft(TEMPLATE).expect("a seeded draft");
        let blocks: Vec<Value> = draft
            .blocks
            .iter()
            .map(|block| {
                json!({
                    "id": block_id(TEMPLATE, &block.id),
                    // GraphQL enum values are the dataset's kinds in upper case.
                    "kind": format!("{:?}", block.kind).to_uppercase(),
                    "content": block.content,
                })
            })
            .collect();
        Self {
            me: json!({ "id": user_id(OWNER), "username": user.username }),
            id: json!(template_id(TEMPLATE)),
            name: json!(template.name),
            subject: json!(template.subject),
            stats: recount_stats(dataset, TEMPLATE, 30),
            draft: json!({ "version": draft.version, "blocks": blocks }),
        }
    }
}

/// The paths of the fields a failing `backend` costs the matrix query (with the monolith down,
/// both root fields; with a service down, its one field under the template).
fn affected_paths(backend: Backend) -> Vec<Value> {
    match backend {
        Backend::Monolith => vec![json!(["me"]), json!(["template"])],
        Backend::Events => vec![json!(["template", "stats"])],
        Backend::Drafts => vec![json!(["template", "draft"])],
    }
}

/// Checks one answer of the matrix query: a 200; every field the fault does not touch equal to
/// the dataset's value; null on each affected field, with exactly one error there, of `code`;
/// no other error. `failing` is `None` for an answer that must be whole.
fn check_answer(
    response: &GraphqlResponse,
    expected: &Expected,
    failing: Option<(Backend, &str)>,
    what: &str,
) {
    assert_eq!(response.status, 200, "{what}: {:?}", response.body);
    assert!(response.content_type.starts_with("application/graphql-response+json"), "{what}");
    let data = response.data();
    let errors = response.body["errors"].as_array().cloned().unwrap_or_default();
    let mut error_paths: Vec<(Value, String)> = errors
        .iter()
        .map(|e| (e["path"].clone(), e["extensions"]["code"].as_str().unwrap_or("<no code>").to_owned()))
        .collect();
    error_paths.sort_by_key(|(path, _)| path.to_string());
    let mut wanted: Vec<(Value, String)> = match failing {
        None => Vec::new(),
        Some((backend, code)) => affected_paths(backend).into_iter().map(|p| (p, code.to_owned())).collect(),
    };
    wanted.sort_by_key(|(path, _)| path.to_string());
    assert_eq!(error_paths, wanted, "{what}: errors {errors:?}");
    for error in &errors {
        let message = error["message"].as_str().unwrap_or_default();
        assert!(!message.contains("127.0.0.1") && !message.contains("<html"), "{what}: leaks {message}");
    }
    let template = &data["template"];
    match failing.map(|(backend, _)| backend) {
        Some(Backend::Monolith) => {
            assert_eq!(*data, json!({ "me": null, "template": null }), "{what}");
        }
        backend => {
            assert_eq!(data["me"], expected.me, "{what}");
            assert_eq!(template["id"], expected.id, "{what}");
            assert_eq!(template["name"], expected.name, "{what}");
            assert_eq!(template["subject"], expected.subject, "{what}");
            let (stats, draft) = match backend {
                Some(Backend::Events) => (Value::Null, expected.draft.clone()),
                Some(Backend::Drafts) => (expected.stats.clone(), Value::Null),
                _ => (expected.stats.clone(), expected.draft.clone()),
            };
            assert_eq!(template["stats"], stats, "{what}");
            assert_eq!(template["draft"], draft, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load

/// [`CLIENTS`] clients, each sending `per_client` matrix queries one after another; every answer.
async fn drive(stack: &TestStack, per_client: usize) -> Vec<GraphqlResponse> {
    let clients = (0..CLIENTS).map(|_| async move {
        let mut answers = Vec::with_capacity(per_client);
        for _ in 0..per_client {
            answers.push(stack.graphql(MATRIX_QUERY, json!({ "id": template_id(TEMPLATE) })).await);
        }
        answers
    });
    futures::future::join_all(clients).await.into_iter().flatten().collect()
}

/// After a fault is cleared: the matrix query is whole again (checked field by field) within a
/// bounded number of tries, one request at a time (a gRPC channel whose connection was cut
/// reconnects with a backoff of its own), and the gateway serves.
async fn assert_recovered(stack: &TestStack, expected: &Expected, what: &str) {
    let mut whole = None;
    for _ in 0..100 {
        let response = stack.graphql(MATRIX_QUERY, json!({ "id": template_id(TEMPLATE) })).await;
        if response.status == 200 && response.body.get("errors").is_none() {
            whole = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let whole =
        whole.unwrap_or_else(|| panic!("{what}: the gateway answers whole once the fault is cleared"));
    check_answer(&whole, expected, None, &format!("{what}, recovered"));
    stack.assert_serving().await;
}

/// The gateway configuration of the matrix: the request deadline and the healthy backends' call
/// deadlines long, `faulted`'s call deadline short; retries and breakers off so each fault's code
/// is exact (their own tests turn them on); identities cached for longer than the test, so a
/// failing monolith still lets callers in.
fn matrix_config(config: &mut Config, faulted: &[Backend]) {
    config.server.request_timeout = REQUEST_DEADLINE;
    config.auth.identity_cache_ttl = Duration::from_secs(600);
    let backends = &mut config.backends;
    for (backend, timeout) in [
        (Backend::Monolith, &mut backends.monolith.timeout),
        (Backend::Events, &mut backends.events.timeout),
        (Backend::Drafts, &mut backends.drafts.timeout),
    ] {
        *timeout = if faulted.contains(&backend) { FAULTED_CALL_DEADLINE } else { REQUEST_DEADLINE };
    }
    for (retry, breaker) in [
        (&mut backends.monolith.retry, &mut backends.monolith.breaker),
        (&mut backends.events.retry, &mut backends.events.breaker),
        (&mut backends.drafts.retry, &mut backends.drafts.breaker),
    ] {
        retry.max_retries = 0;
        breaker.enabled = false;
    }
}

/// Signs the owner in while the monolith is healthy (its identity is then cached), checks a whole
/// answer, and resets the devstack's counters; returns the stats calls it made (they stay in a
/// breaker's window).
async fn warm_up(stack: &TestStack, expected: &Expected) -> u64 {
    let response = stack.graphql(MATRIX_QUERY, json!({ "id": template_id(TEMPLATE) })).await;
    check_answer(&response, expected, None, "warm-up");
    let stats_calls = stack.devstack.calls().count(GET_TEMPLATE_STATS);
    stack.devstack.calls().reset();
    stats_calls
}

/// A fault of the devstack and the code each backend's fields get for it, or `None` where the
/// fault does not apply to that backend.
struct Case {
    name: &'static str,
    fault: Fault,
    /// Whether each request waits out the faulted backend's call deadline (then one request per
    /// client, on a stack where that deadline is short).
    waits_out_the_deadline: bool,
    monolith: Option<&'static str>,
    grpc: Option<&'static str>,
}

/// The code of a case whose fault leaves the matrix query whole.
const WHOLE: &str = "<whole>";

fn answer(answer: Answer) -> Fault {
    Fault { answer: Some(answer), ..Fault::none() }
}

fn cases() -> Vec<Case> {
    let case = |name, fault, waits_out_the_deadline, monolith, grpc| Case {
        name,
        fault,
        waits_out_the_deadline,
        monolith,
        grpc,
    };
    vec![
        // Beyond the request deadline: cut by it.
        case(
            "slow",
            Fault::latency(Duration::from_secs(60)),
            true,
            Some("BACKEND_TIMEOUT"),
            Some("BACKEND_TIMEOUT"),
        ),
        case("hung", Fault::hang(), true, Some("BACKEND_TIMEOUT"), Some("BACKEND_TIMEOUT")),
        // The monolith's 503 {"detail": …}; the services' UNAVAILABLE.
        case("5xx", Fault::error_rate(1.0), false, Some("BACKEND_UNAVAILABLE"), Some("BACKEND_UNAVAILABLE")),
        case("html 500", answer(Answer::Html500), false, Some("BACKEND_UNAVAILABLE"), Some("BACKEND_ERROR")),
        case("reset", answer(Answer::Reset), false, Some("BACKEND_UNAVAILABLE"), Some("BACKEND_UNAVAILABLE")),
        case("malformed", answer(Answer::Malformed), false, Some("BACKEND_ERROR"), Some("BACKEND_ERROR")),
        // The monolith's proxy 504 page; the services' DEADLINE_EXCEEDED.
        case(
            "deadline exceeded",
            answer(Answer::DeadlineExceeded),
            false,
            Some("BACKEND_UNAVAILABLE"),
            Some("BACKEND_TIMEOUT"),
        ),
        // The monolith's 429; the services' RESOURCE_EXHAUSTED.
        case(
            "resource exhausted",
            answer(Answer::ResourceExhausted),
            false,
            Some("BACKEND_ERROR"),
            Some("BACKEND_UNAVAILABLE"),
        ),
        case(
            "partial body",
            answer(Answer::PartialBody),
            false,
            Some("BACKEND_UNAVAILABLE"),
            Some("BACKEND_UNAVAILABLE"),
        ),
        case("slow body", answer(Answer::SlowBody), true, Some("BACKEND_TIMEOUT"), None),
        case("append slash 301", answer(Answer::AppendSlashRedirect), false, Some("BACKEND_ERROR"), None),
        // Unary calls break too: the one message passes, then the call ends as the fault says.
        case(
            "mid-stream unavailable",
            answer(Answer::MidStreamUnavailable),
            false,
            None,
            Some("BACKEND_UNAVAILABLE"),
        ),
        case("mid-stream reset", answer(Answer::MidStreamReset), false, None, Some(WHOLE)),
        case("mid-stream stall", answer(Answer::MidStreamStall), true, None, Some("BACKEND_TIMEOUT")),
    ]
}

/// Every case that applies to `backend`, in turn, under load; how many answers were checked.
/// The cases that wait out the faulted backend's call deadline run on a stack where that
/// deadline is short; the others on one where every deadline is long, so no healthy call and no
/// quick failure can be cut by a deadline on a busy machine.
async fn matrix_on(backend: Backend) -> usize {
    worker_panics();
    let mut answers = 0;
    for waiting in [false, true] {
        let faulted: &[Backend] = if waiting { &[backend] } else { &[] };
        let stack = TestStack::start_with(DevStackConfig::default(), |c| matrix_config(c, faulted)).await;
        let expected = Expected::from_dataset(stack.devstack.dataset());
        warm_up(&stack, &expected).await;
        for case in cases().into_iter().filter(|case| case.waits_out_the_deadline == waiting) {
            let code = match backend {
                Backend::Monolith => case.monolith,
                Backend::Events | Backend::Drafts => case.grpc,
            };
            let Some(code) = code else { continue };
            let what = format!("{} on {backend}", case.name);
            stack.devstack.faults().set(backend, case.fault);
            let per_client = if waiting { 1 } else { REQUESTS_PER_CLIENT };
            let responses = drive(&stack, per_client).await;
            assert_eq!(responses.len(), CLIENTS * per_client, "{what}: every answer arrived");
            let failing = (code != WHOLE).then_some((backend, code));
            for response in &responses {
                check_answer(response, &expected, failing, &what);
            }
            answers += responses.len();
            stack.devstack.faults().clear(backend);
            assert_recovered(&stack, &expected, &what).await;
        }
        stack.stop().await;
    }
    assert_nothing_panicked();
    answers
}

// One test per backend, so their waits for the request deadline overlap.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_of_the_monolith_under_load_costs_only_its_fields() {
    // Eleven cases; the slow, hung and slow-body ones wait out the deadline.
    assert_eq!(matrix_on(Backend::Monolith).await, CLIENTS * (8 * REQUESTS_PER_CLIENT + 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_of_the_event_store_under_load_costs_only_the_stats() {
    // Twelve cases; the slow, hung and stalled ones wait out the deadline.
    assert_eq!(matrix_on(Backend::Events).await, CLIENTS * (9 * REQUESTS_PER_CLIENT + 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_of_the_draft_store_under_load_costs_only_the_draft() {
    assert_eq!(matrix_on(Backend::Drafts).await, CLIENTS * (9 * REQUESTS_PER_CLIENT + 3));
}

// ---------------------------------------------------------------------------------------------
// A closed port

/// A TCP forwarder in front of one backend that can close its port (listener and every
/// connection through it) and open it again on the same port: a backend that is down, as a
/// crashed process is, refusing connections rather than accepting and dropping them.
struct Door {
    addr: SocketAddr,
    target: SocketAddr,
    open: Option<tokio::task::JoinHandle<()>>,
}

impl Door {
    /// An open door on an ephemeral port of 127.0.0.1, forwarding to `target`. Synchronous, for
    /// [`TestStack::start_with`]'s configure step (which runs inside the runtime).
    fn new(target: SocketAddr) -> Self {
        let mut door = Self { addr: "127.0.0.1:0".parse().expect("an address"), target, open: None };
        door.open();
        door
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn open(&mut self) {
        let socket = TcpSocket::new_v4().expect("a socket");
        // The port's connections from before the close may linger in TIME_WAIT.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(self.addr).expect("the door's port is free");
        let listener = socket.listen(1024).expect("listening");
        self.addr = listener.local_addr().expect("a bound address");
        let target = self.target;
        self.open = Some(tokio::spawn(async move {
            // Dropped with the accept loop when the door closes: every connection is cut.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn close(&mut self) {
        if let Some(task) = self.open.take() {
            task.abort();
            let _ = task.await;
        }
        let refused = TcpStream::connect(self.addr).await;
        assert!(refused.is_err(), "the port {} is closed", self.addr);
    }
}

/// The address in a devstack URL (`http://127.0.0.1:PORT`).
fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").trim_end_matches('/').parse().expect("a devstack address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_whose_port_is_closed_costs_only_its_fields_under_load_and_comes_back() {
    worker_panics();
    let doors: Mutex<BTreeMap<Backend, Door>> = Mutex::default();
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        // A closed port refuses at once: no short deadline is needed, and none may fire.
        matrix_config(config, &[]);
        let mut doors = doors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let backends = &mut config.backends;
        for (backend, url) in [
            (Backend::Monolith, &mut backends.monolith.url),
            (Backend::Events, &mut backends.events.url),
            (Backend::Drafts, &mut backends.drafts.url),
        ] {
            let door = Door::new(addr_of(url));
            *url = door.url();
            doors.insert(backend, door);
        }
    })
    .await;
    let mut doors = doors.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let expected = Expected::from_dataset(stack.devstack.dataset());
    warm_up(&stack, &expected).await;
    for backend in Backend::ALL {
        let what = format!("port closed on {backend}");
        let door = doors.get_mut(&backend).expect("a door per backend");
        door.close().await;
        let responses = drive(&stack, REQUESTS_PER_CLIENT).await;
        assert_eq!(responses.len(), CLIENTS * REQUESTS_PER_CLIENT, "{what}: every answer arrived");
        for response in &responses {
            check_answer(response, &expected, Some((backend, "BACKEND_UNAVAILABLE")), &what);
        }
        door.open();
        assert_recovered(&stack, &expected, &what).await;
    }
    assert_nothing_panicked();
    stack.stop().await;
}

/// Regression: `me` was read from the monolith without the request's deadline (the budget of the
/// identity check, which has none), so a slow monolith held the whole request past its deadline
/// until the backstop answered `504` with no body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_me_is_read_within_the_request_deadline() {
    worker_panics();
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        matrix_config(config, &[]);
        // Shorter than the monolith's per-call deadline, so the request's is the one that fires.
        config.server.request_timeout = FAULTED_CALL_DEADLINE;
    })
    .await;
    let expected = Expected::from_dataset(stack.devstack.dataset());
    warm_up(&stack, &expected).await;
    stack.devstack.faults().set(Backend::Monolith, Fault::hang());
    let response = stack.graphql("{ me { id } }", json!({})).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["data"], json!({ "me": null }));
    assert_eq!(response.error_codes(), ["BACKEND_TIMEOUT"]);
    assert_eq!(response.body["errors"][0]["path"], json!(["me"]));
    stack.devstack.faults().clear(Backend::Monolith);
    stack.assert_serving().await;
    assert_nothing_panicked();
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Subscriptions broken mid-stream

/// `TemplateEventsFeed` from the contract.
fn events_feed() -> String {
    contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateEventsFeed")
        .map(|(_, body)| body)
        .expect("in the contract")
}

/// The template the subscriptions follow: another than [`TEMPLATE`], so the events they append
/// leave the matrix query's stats as seeded.
const SUBSCRIBED: u64 = 2;

/// Waits (bounded: 200 × 50 ms) until the devstack has `n` event streams open; whether it did.
async fn event_streams_reach(stack: &TestStack, n: usize) -> bool {
    for _ in 0..200 {
        if stack.devstack.active_event_streams() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_broken_mid_stream_under_load_end_coded_or_are_released_and_queries_go_on() {
    worker_panics();
    // The mid-stream fault and what the unary stats call of each concurrent query gets from it
    // (the one message passes, then the call ends as the fault says).
    for (fault, stats_code) in [
        (Answer::MidStreamUnavailable, Some("BACKEND_UNAVAILABLE")),
        (Answer::MidStreamReset, None),
        (Answer::MidStreamStall, Some("BACKEND_TIMEOUT")),
    ] {
        let what = format!("{fault:?}");
        let stalls = fault == Answer::MidStreamStall;
        // A stalled unary call waits out the event store's call deadline: short only then.
        let faulted: &[Backend] = if stalls { &[Backend::Events] } else { &[] };
        // One stream per subscription, so a broken stream reaches each client as it is: the shared
        // streams' resume and reconnect are tested in subscription_fanout.rs.
        let stack = TestStack::start_with(DevStackConfig::default(), |c| {
            matrix_config(c, faulted);
            c.subscriptions.share_upstream = false;
        })
        .await;
        let expected = Expected::from_dataset(stack.devstack.dataset());
        warm_up(&stack, &expected).await;
        stack.devstack.faults().set(Backend::Events, answer(fault));
        let feed = events_feed();
        let mut sockets = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            let mut socket = WsClient::signed_in(&stack, OWNER).await;
            socket.subscribe("1", &feed, json!({ "templateIds": [template_id(SUBSCRIBED)] })).await;
            sockets.push(socket);
        }
        // One gRPC stream per subscription.
        assert!(event_streams_reach(&stack, CLIENTS).await, "{what}: every subscription opened its stream");
        // The first event passes on every stream.
        stack.devstack.append_events(vec![(SUBSCRIBED, EventKind::Opened)]).await;
        for socket in &mut sockets {
            let first = socket.next().await.expect("the first event");
            assert_eq!(first["type"], "next", "{what}: {first}");
            assert_eq!(first["payload"]["data"]["templateEvents"]["kind"], "OPENED", "{what}: {first}");
        }
        // The next one breaks every stream, while the query load runs.
        stack.devstack.append_events(vec![(SUBSCRIBED, EventKind::Clicked)]).await;
        let (responses, ()) = tokio::join!(drive(&stack, 1), async {
            for socket in &mut sockets {
                if stalls {
                    // Nothing more comes; the client gives up on the subscription.
                    socket.send(json!({ "id": "1", "type": "complete" })).await;
                    continue;
                }
                let error = socket.next().await.expect("the failure is reported");
                assert_eq!(error["type"], "next", "{what}: {error}");
                assert_eq!(
                    error["payload"]["errors"][0]["extensions"]["code"], "BACKEND_UNAVAILABLE",
                    "{what}"
                );
                assert_eq!(error["payload"]["data"], Value::Null, "{what}: {error}");
                let end = socket.next().await.expect("the subscription ends");
                assert_eq!(end, json!({ "id": "1", "type": "complete" }), "{what}");
            }
        });
        assert_eq!(responses.len(), CLIENTS, "{what}: every answer arrived");
        for response in &responses {
            check_answer(response, &expected, stats_code.map(|code| (Backend::Events, code)), &what);
        }
        // Every broken or abandoned stream is released at the devstack.
        assert!(event_streams_reach(&stack, 0).await, "{what}: every stream was released");
        // Once the service is well again, the same connections subscribe and get events.
        stack.devstack.faults().clear(Backend::Events);
        for socket in &mut sockets {
            socket.subscribe("2", &feed, json!({ "templateIds": [template_id(SUBSCRIBED)] })).await;
        }
        assert!(event_streams_reach(&stack, CLIENTS).await, "{what}: resubscribed");
        stack.devstack.append_events(vec![(SUBSCRIBED, EventKind::Delivered)]).await;
        for socket in sockets {
            let mut socket = socket;
            let next = socket.next().await.expect("an event");
            assert_eq!(next["id"], "2", "{what}: {next}");
            assert_eq!(next["payload"]["data"]["templateEvents"]["kind"], "DELIVERED", "{what}: {next}");
            socket.close().await;
        }
        assert_recovered(&stack, &expected, &what).await;
        stack.stop().await;
    }
    assert_nothing_panicked();
}

// ---------------------------------------------------------------------------------------------
// The breaker and the retry budget under load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_the_breaker_opens_sheds_and_closes_after_recovery() {
    worker_panics();
    const REQUESTS: usize = 4;
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        matrix_config(config, &[]);
        let breaker = &mut config.backends.events.breaker;
        breaker.enabled = true;
        breaker.min_calls = 8;
        breaker.failure_rate = 0.5;
        breaker.window = Duration::from_secs(60);
        breaker.cool_down = Duration::from_secs(1);
    })
    .await;
    let expected = Expected::from_dataset(stack.devstack.dataset());
    // The warm-up's successful stats calls are in the breaker's window too: with them, fewer
    // than 8 failures can be enough to open it.
    let warm_up_calls = warm_up(&stack, &expected).await;
    stack.devstack.faults().set(Backend::Events, Fault::error_rate(1.0));
    let responses = drive(&stack, REQUESTS).await;
    let total = CLIENTS * REQUESTS;
    assert_eq!(responses.len(), total);
    // Failed by the event store or shed by the breaker, a stats field reads the same; the rest
    // of every answer is whole.
    for response in &responses {
        check_answer(response, &expected, Some((Backend::Events, "BACKEND_UNAVAILABLE")), "breaker");
    }
    // Each query makes one stats call or is shed: the devstack's count and the gateway's shed
    // count add up to the queries sent, and most were shed (the breaker opened after 8 calls,
    // the warm-up's included, plus what was in flight then, plus one probe per one-second
    // cool-down).
    let calls = stack.devstack.calls().count(GET_TEMPLATE_STATS);
    let metrics = stack.metrics_text().await;
    let shed = metric_sample(&metrics, r#"banyan_backend_shed_by_breaker_total{backend="events"}"#)
        .unwrap_or(0.0) as u64;
    assert_eq!(calls + shed, total as u64, "{calls} calls and {shed} shed for {total} queries");
    assert!(
        warm_up_calls + calls >= 8,
        "the breaker needs 8 calls to judge: {warm_up_calls} in the warm-up and {calls} failing"
    );
    assert!(calls <= total as u64 / 2, "the breaker shed most calls: {calls} of {total} made");
    assert_eq!(
        metric_sample(&metrics, r#"banyan_backend_breaker_state{backend="events",state="closed"}"#),
        Some(0.0)
    );
    // The event store comes back: a probe after the cool-down closes the breaker (bounded tries).
    stack.devstack.faults().clear(Backend::Events);
    assert_recovered(&stack, &expected, "breaker").await;
    stack.devstack.calls().reset();
    for response in drive(&stack, 2).await {
        check_answer(&response, &expected, None, "breaker closed");
    }
    assert_eq!(stack.devstack.calls().count(GET_TEMPLATE_STATS), 2 * CLIENTS as u64, "no call shed");
    let metrics = stack.metrics_text().await;
    assert_eq!(
        metric_sample(&metrics, r#"banyan_backend_breaker_state{backend="events",state="closed"}"#),
        Some(1.0)
    );
    assert_nothing_panicked();
    stack.stop().await;
}

/// The calls `backend` receives for one healthy matrix query (the warm-up, which also signs the
/// owner in), then [`CLIENTS`] × `per_client` more while it fails
/// every call, with reads retried up to twice under a retry budget of 10% of the calls plus 1 a
/// second over a 10 s window (`max_retries = 0`: no retries at all).
async fn calls_in_an_outage(backend: Backend, max_retries: u32, per_client: usize) -> u64 {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        matrix_config(config, &[]);
        let backends = &mut config.backends;
        for (name, retry) in [
            (Backend::Monolith, &mut backends.monolith.retry),
            (Backend::Events, &mut backends.events.retry),
            (Backend::Drafts, &mut backends.drafts.retry),
        ] {
            if name == backend {
                retry.max_retries = max_retries;
                retry.initial_backoff = Duration::from_millis(1);
                retry.max_backoff = Duration::from_millis(5);
                retry.budget_ratio = 0.1;
                retry.budget_min_per_second = 1;
                retry.budget_window = Duration::from_secs(10);
            }
        }
    })
    .await;
    let expected = Expected::from_dataset(stack.devstack.dataset());
    // The warm-up's calls stay counted: the budget's share is of every first try in its window.
    let response = stack.graphql(MATRIX_QUERY, json!({ "id": template_id(TEMPLATE) })).await;
    check_answer(&response, &expected, None, "warm-up");
    stack.devstack.faults().set(backend, Fault::error_rate(1.0));
    for response in drive(&stack, per_client).await {
        check_answer(&response, &expected, Some((backend, "BACKEND_UNAVAILABLE")), "outage");
    }
    let calls = calls_to(&stack, backend);
    stack.devstack.faults().clear(backend);
    assert_recovered(&stack, &expected, "outage").await;
    stack.stop().await;
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_the_retry_budget_holds_in_a_full_outage_of_each_backend() {
    worker_panics();
    const PER_CLIENT: usize = 2;
    for backend in Backend::ALL {
        let first_tries = calls_in_an_outage(backend, 0, PER_CLIENT).await;
        let with_retries = calls_in_an_outage(backend, 2, PER_CLIENT).await;
        // The budget: 10% of the first tries over the window (all of this test's), plus 1 a second
        // (10 over the window).
        let budget = first_tries / 10 + 10;
        let extra = with_retries.saturating_sub(first_tries);
        assert!(extra > 0, "{backend}: reads are retried ({first_tries} → {with_retries} calls)");
        assert!(
            extra <= budget,
            "{backend}: {extra} extra calls over {first_tries}, past the budget of {budget}"
        );
        // Without the budget, two retries each would triple the calls.
        assert!(
            with_retries < 2 * first_tries,
            "{backend}: {with_retries} calls for {first_tries} first tries"
        );
    }
    assert_nothing_panicked();
}
