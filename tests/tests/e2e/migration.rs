//! The migration engine through the real gateway: a routing table file rewritten while requests
//! run, shadow comparison, a slow secondary, a sticky canary, flips gated by evidence, the
//! per-request override and `extensions.routing`. Which backend served is read from the
//! devstack's call counters, never from Banyan's own claim.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use banyan_devstack::{Backend as DevBackend, DevStackConfig, EventKind, Fault};
use banyan_migration::calls::{EVENTS_GET_TEMPLATE_STATS, MONOLITH_TEMPLATE_ANALYTICS};
use banyan_migration::recorder::Counters;
use banyan_migration::{Backend, Engine, FieldKey};
use banyan_tests::ws::{TRANSPORT_WS, WsClient};
use banyan_tests::{OWNER, RoutingTableFile, TestStack, template_id};
use serde_json::{Value, json};

const STATS_QUERY: &str = "query Stats($id: ID!) { template(id: $id) { stats { sent delivered opened clicked bounced uniqueOpens } } }";

/// `Template.stats` served by the monolith and compared with the event store on every request.
const STATS_IN_SHADOW_BEHIND_LEGACY: &str =
    "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\n";

async fn stack_with_table(table: &RoutingTableFile, devstack: DevStackConfig) -> TestStack {
    stack_with_table_and(table, devstack, |_| {}).await
}

async fn stack_with_table_and(
    table: &RoutingTableFile,
    devstack: DevStackConfig,
    configure: impl FnOnce(&mut banyan_gateway::Config),
) -> TestStack {
    let path = table.path.clone();
    TestStack::start_with(devstack, move |config| {
        config.migration.routing_table = Some(path);
        config.migration.reload_interval = Duration::from_millis(50);
        config.migration.expose_routing = true;
        configure(config);
    })
    .await
}

fn stats_key(engine: &Engine) -> FieldKey {
    engine.catalog().key("Template.stats").expect("declared")
}

fn legacy_calls(stack: &TestStack) -> u64 {
    stack.devstack.calls().count(MONOLITH_TEMPLATE_ANALYTICS.name)
}

fn service_calls(stack: &TestStack) -> u64 {
    stack.devstack.calls().count(EVENTS_GET_TEMPLATE_STATS.name)
}

/// Polls `done` every 25 ms, at most 400 times (10 s), and fails with `what` if it never holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

/// `Template.stats`' shadow counters once `settled` holds of them, polled like [`eventually`] but
/// returned either way, so that a failing assertion shows what was counted.
async fn stats_counters_once(engine: &Engine, settled: impl Fn(&Counters) -> bool) -> Counters {
    let counters = || {
        let results = engine.executor.recorder().snapshot().keys.remove(&stats_key(engine));
        results.map(|results| results.counters).unwrap_or_default()
    };
    for _ in 0..400 {
        if settled(&counters()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    counters()
}

async fn stats_of(stack: &TestStack, user: u64, template: u64) -> Value {
    let response = stack.graphql_as(Some(user), STATS_QUERY, json!({ "id": template_id(template) })).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    assert!(response.data()["template"]["stats"].is_object(), "{:?}", response.body);
    response.body
}

#[tokio::test]
async fn rewriting_the_table_flips_a_field_with_no_restart_and_no_failed_request() {
    let table = RoutingTableFile::new("flip", "[fields.\"Template.stats\"]\nmode = \"legacy\"\n");
    let stack = Arc::new(stack_with_table(&table, DevStackConfig::default()).await);
    let addr = stack.gateway.addr();

    for id in 1..=3 {
        stats_of(&stack, OWNER, id).await;
    }
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (3, 0), "legacy serves first");

    // Concurrent clients, each checking every response, while the file is rewritten.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4_u64)
        .map(|n| {
            let (stack, stop) = (stack.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answered = 0_u32;
                while !stop.load(Ordering::Acquire) {
                    stats_of(&stack, OWNER, 10 + n).await;
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    eventually("some requests ran on the legacy side", || legacy_calls(&stack) > 10).await;
    table.write("[fields.\"Template.stats\"]\nmode = \"service\"\n");
    eventually("the service serves after the rewrite", || service_calls(&stack) > 0).await;
    eventually("a few more requests ran after the flip", || service_calls(&stack) > 10).await;
    stop.store(true, Ordering::Release);
    for client in clients {
        assert!(client.await.expect("every response was whole and without errors") > 0);
    }

    // Settled: every request now on the service, from the same gateway (no restart).
    assert_eq!(stack.gateway.addr(), addr);
    stack.devstack.calls().reset();
    for id in 1..=3 {
        stats_of(&stack, OWNER, id).await;
    }
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (0, 3), "the service serves after the flip");
    Arc::into_inner(stack).expect("the clients are done").stop().await;
}

#[tokio::test]
async fn shadow_with_identical_data_matches_and_a_legacy_side_behind_mismatches_at_the_exact_path() {
    let table = RoutingTableFile::new(
        "shadow",
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"service\"\nsample_rate = 1.0\n",
    );
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    let engine = stack.gateway.engine().clone();
    let key = stats_key(&engine);
    let results =
        |engine: &Engine| engine.executor.recorder().snapshot().keys.get(&key).cloned().unwrap_or_default();

    let query = "query Pair($a: ID!, $b: ID!) { first: template(id: $a) { stats { sent opened } }
        second: template(id: $b) { stats { sent opened uniqueOpens } } }";
    for (a, b) in [(1, 2), (3, 4), (5, 6)] {
        let response = stack.graphql(query, json!({ "a": template_id(a), "b": template_id(b) })).await;
        assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    }
    eventually("six comparisons", || results(&engine).counters.compared() == 6).await;
    let counters = results(&engine).counters;
    assert_eq!((counters.matched, counters.mismatched), (6, 0), "{counters:?}");
    // Both sides were really called: six stats on each, the legacy one per template.
    assert_eq!(legacy_calls(&stack), 6);
    assert!(service_calls(&stack) >= 1);

    // The monolith's copy falls behind template 5 only.
    stack.devstack.set_legacy_sync(false);
    stack.devstack.append_events(vec![(5, EventKind::Sent), (5, EventKind::Opened)]).await;
    let response = stack.graphql(query, json!({ "a": template_id(6), "b": template_id(5) })).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    eventually("eight comparisons", || results(&engine).counters.compared() == 8).await;
    let results = results(&engine);
    assert_eq!((results.counters.matched, results.counters.mismatched), (7, 1), "{:?}", results.counters);
    assert_eq!(results.operations.get("Pair").map(|c| c.mismatched), Some(1));
    let [exemplar] = results.exemplars.as_slice() else { panic!("one exemplar: {:?}", results.exemplars) };
    assert_eq!(exemplar.field_path, "second.stats");
    assert_eq!((exemplar.primary, exemplar.secondary), (Backend::Service, Backend::Legacy));
    let paths: Vec<&str> = exemplar.differences.iter().map(|d| d.path.as_str()).collect();
    // A send and an open by a new recipient: sent, opened and unique opens, nothing else.
    assert_eq!(paths, ["$.opened", "$.sent", "$.unique_opens"], "{:?}", exemplar.differences);
    let sent = &exemplar.differences[1];
    assert_eq!(
        sent.primary.as_ref().and_then(Value::as_u64),
        sent.secondary.as_ref().and_then(Value::as_u64).map(|behind| behind + 1),
        "the service counted the appended send, the monolith did not"
    );
    // The response is the primary's (the service's, with the new events), not the secondary's.
    let served_sent = response.data()["second"]["stats"]["sent"].as_u64();
    assert_eq!(served_sent, sent.primary.as_ref().and_then(Value::as_u64));
    assert_eq!(exemplar.variables, Some(json!({ "a": "<redacted>", "b": "<redacted>" })));
    stack.stop().await;
}

/// A page of 50 templates with `Template.stats` in shadow: the page asks its items' stats of the
/// primary in one call, and of the secondary in one call too (not one per chunk of items that
/// resolved together, which was two or three).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secondaries_of_a_page_share_one_call() {
    let table = RoutingTableFile::new("shadow-page", STATS_IN_SHADOW_BEHIND_LEGACY);
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    // Answers that take as long as a real backend's, so the page's items resolve in waves.
    stack.devstack.faults().set(DevBackend::Monolith, Fault::latency(Duration::from_millis(2)));
    stack.devstack.faults().set(DevBackend::Events, Fault::latency(Duration::from_micros(500)));
    let engine = stack.gateway.engine().clone();
    let key = stats_key(&engine);
    let compared = |engine: &Engine| {
        engine.executor.recorder().snapshot().keys.get(&key).map_or(0, |results| results.counters.compared())
    };
    let query = include_str!("../../../frontend-contract/TemplateList/TemplateList.graphql");
    for round in 1..=3u64 {
        stack.devstack.calls().reset();
        let variables = json!({ "workspaceId": banyan_tests::workspace_id(1), "first": 50 });
        let response = stack.graphql(query, variables).await;
        assert!(response.body.get("errors").is_none(), "{:?}", response.body);
        let edges = response.data()["templates"]["edges"].as_array().map_or(0, Vec::len);
        assert_eq!(edges, 50, "a page of 50");
        eventually("the page's comparisons", || compared(&engine) == 50 * round).await;
        assert_eq!(legacy_calls(&stack), 50, "the legacy view reads one template per call");
        assert_eq!(
            service_calls(&stack),
            1,
            "round {round}: one GetTemplateStats for the page's secondaries"
        );
    }
    stack.stop().await;
}

/// A page whose items select `stats` twice (two aliases, one window) prefetches one window: the
/// page's batch expects 50 items and gets 100. The 50 beyond it are compared one by one, and
/// still every item is compared, and the secondary is asked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_beyond_a_shadowed_page_s_batch_are_compared_too() {
    let table = RoutingTableFile::new("shadow-aliases", STATS_IN_SHADOW_BEHIND_LEGACY);
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    let engine = stack.gateway.engine().clone();
    let query = "query Aliased($workspaceId: ID!) { templates(workspaceId: $workspaceId, first: 50) { edges { \
                 node { id stats { sent } again: stats { opened } } } } }";
    stack.devstack.calls().reset();
    let response = stack.graphql(query, json!({ "workspaceId": banyan_tests::workspace_id(1) })).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    let edges = response.data()["templates"]["edges"].as_array().map_or(0, Vec::len);
    assert_eq!(edges, 50, "a page of 50");
    let counters = stats_counters_once(&engine, |counters| counters.compared() == 100).await;
    assert_eq!((counters.matched, counters.skipped), (100, 0), "{counters:?}");
    assert_eq!(service_calls(&stack), 1, "one GetTemplateStats for the page's secondaries");
    stack.stop().await;
}

/// A subscription keeps one scope, and so one shadow batch per field, for all its events: each
/// event's page reads both sides afresh (one legacy call per template, one `GetTemplateStats`),
/// is compared in a round of its own, whose deadline counts from that page's start, and gives
/// the field's one slot back after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_of_a_subscription_compares_its_page_in_a_round_of_its_own() {
    let table = RoutingTableFile::new(
        "shadow-subscription",
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\n\
         secondary_deadline = \"500ms\"\nmax_in_flight = 1\n",
    );
    let mut devstack = DevStackConfig::default();
    // The secondary is still answering when the page's items are compared.
    devstack.faults.insert(DevBackend::Events, Fault::latency(Duration::from_millis(20)));
    let stack = stack_with_table(&table, devstack).await;
    let engine = stack.gateway.engine().clone();
    let mut socket = banyan_tests::ws::WsClient::signed_in(&stack, OWNER).await;
    let query = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence template { \
                 workspace { templates(first: 5) { edges { node { stats { sent } } } } } } } }";
    socket.subscribe("1", query, json!({ "ids": [template_id(1)] })).await;
    eventually("the subscription's stream is open", || stack.devstack.active_event_streams() == 1).await;
    for event in 1..=2u64 {
        stack.devstack.calls().reset();
        stack.devstack.append_events(vec![(1, EventKind::Opened)]).await;
        let message = socket.next().await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        let edges =
            &message["payload"]["data"]["templateEvents"]["template"]["workspace"]["templates"]["edges"];
        assert_eq!(edges.as_array().map_or(0, Vec::len), 5, "{message}");
        let counters =
            stats_counters_once(&engine, |c| c.compared() + c.secondary_timeouts >= 5 * event).await;
        assert_eq!(
            (counters.matched, counters.secondary_timeouts),
            (5 * event, 0),
            "event {event}: {counters:?}"
        );
        assert_eq!(
            (legacy_calls(&stack), service_calls(&stack)),
            (5, 1),
            "event {event} reads both sides afresh"
        );
        eventually("the page gives its slot back", || engine.executor.in_flight(stats_key(&engine)) == 0)
            .await;
        // The next event comes after this page's deadline has passed.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    socket.close().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_secondary_that_takes_two_seconds_does_not_hold_the_response() {
    let table = RoutingTableFile::new(
        "slow-secondary",
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\n\
         secondary_deadline = \"20s\"\n",
    );
    let mut devstack = DevStackConfig::default();
    devstack.faults.insert(DevBackend::Events, Fault::latency(Duration::from_secs(2)));
    // The event store's client waits long enough for the slow answer (the stack's default is 2 s).
    let stack = stack_with_table_and(&table, devstack, |config| {
        config.backends.events.timeout = Duration::from_secs(20);
    })
    .await;
    let engine = stack.gateway.engine().clone();
    let key = stats_key(&engine);
    let compared = |engine: &Engine| {
        engine.executor.recorder().snapshot().keys.get(&key).map_or(0, |r| r.counters.compared())
    };

    let body = stats_of(&stack, OWNER, 7).await;
    // The response is here while its secondary is still running: not compared yet, its slot
    // still taken.
    assert_eq!(compared(&engine), 0, "the response waited for the secondary");
    assert_eq!(engine.executor.in_flight(key), 1);
    assert_eq!(legacy_calls(&stack), 1, "the legacy side served");
    eventually("the secondary reached the event store", || service_calls(&stack) == 1).await;
    eventually("the secondary finished and was compared", || compared(&engine) == 1).await;
    assert_eq!(engine.executor.in_flight(key), 0);
    let results = engine.executor.recorder().snapshot().keys.get(&key).cloned().unwrap_or_default();
    assert_eq!(results.counters.matched, 1, "{:?}", results.counters);
    assert!(body["data"]["template"]["stats"]["sent"].is_u64());
    stack.stop().await;
}

#[tokio::test]
async fn a_canary_is_sticky_per_user() {
    let table =
        RoutingTableFile::new("canary", "[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = 20\n");
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    let dataset = stack.devstack.dataset().clone();
    let mut on_service = Vec::new();
    let mut users = 0;
    for user in &dataset.users {
        let Some(workspace) = dataset.workspaces_of(user.id).first().copied() else { continue };
        let template = dataset.templates.iter().find(|t| t.workspace == workspace).expect("a template").id;
        users += 1;
        let mut backends = Vec::new();
        for _ in 0..3 {
            let (legacy, service) = (legacy_calls(&stack), service_calls(&stack));
            stats_of(&stack, user.id, template).await;
            let served = (legacy_calls(&stack) - legacy, service_calls(&stack) - service);
            backends.push(match served {
                (1, 0) => Backend::Legacy,
                (0, 1) => Backend::Service,
                other => panic!("user {}: one stats call expected, saw {other:?}", user.id),
            });
        }
        assert!(backends.iter().all(|b| *b == backends[0]), "user {} moved: {backends:?}", user.id);
        if backends[0] == Backend::Service {
            on_service.push(user.id);
        }
    }
    // 20% of the 29 users with a workspace: some on each side (the 10,000-user share is checked
    // in the crate), and a minority on the service.
    assert!(!on_service.is_empty() && on_service.len() * 2 < users, "{on_service:?} of {users}");

    // Raising the percent keeps everyone already on the service there.
    table.write("[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = 60\n");
    eventually("the new table is live", || {
        stack
            .gateway
            .engine()
            .live
            .snapshot()
            .route(stats_key(stack.gateway.engine()))
            .map(|r| r.service_share())
            == Some(0.6)
    })
    .await;
    for user in &on_service {
        let workspace = dataset.workspaces_of(*user)[0];
        let template = dataset.templates.iter().find(|t| t.workspace == workspace).expect("a template").id;
        let service = service_calls(&stack);
        stats_of(&stack, *user, template).await;
        assert_eq!(service_calls(&stack), service + 1, "user {user} left the service at 60%");
    }
    stack.stop().await;
}

const EVIDENCE: &str =
    "require_evidence = { min_compared = 4, max_mismatch_rate = 0.0, all_contract_operations = false }\n";

#[tokio::test]
async fn a_flip_without_evidence_is_refused_and_with_it_accepted() {
    let shadow = format!(
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\n{EVIDENCE}"
    );
    let table = RoutingTableFile::new("evidence", &shadow);
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    let engine = stack.gateway.engine().clone();
    let key = stats_key(&engine);

    // No comparisons yet: flipping to the service is refused, with the reason and the place.
    table.write(&format!("[fields.\"Template.stats\"]\nmode = \"service\"\n{EVIDENCE}"));
    eventually("the flip is refused", || engine.live.status().rejections > 0).await;
    let reason = engine.live.status().last_rejection.unwrap_or_default();
    // Named at the entry's header, line 1.
    let place = format!("{}:1:", table.path.display());
    assert!(reason.contains(&place) && reason.contains("refused"), "{reason}");
    assert_eq!(engine.live.snapshot().route(key).map(|r| r.mode_name()), Some("shadow"));
    // The old table serves: the monolith answers, the service is the shadow.
    stats_of(&stack, OWNER, 1).await;
    assert_eq!(legacy_calls(&stack), 1);

    // A table that does not parse is rejected too, and the shadow table stays.
    let before = engine.live.status().rejections;
    table.write("[fields.\"Template.stats\"]\nmode = \"sideways\"\n");
    eventually("the bad table is rejected", || engine.live.status().rejections > before).await;
    let reason = engine.live.status().last_rejection.unwrap_or_default();
    assert!(reason.contains(&format!("{}:2:", table.path.display())), "{reason}");
    assert_eq!(engine.live.snapshot().route(key).map(|r| r.mode_name()), Some("shadow"));

    // Evidence: four matching comparisons. The watcher retries the refused flip each poll.
    table.write(&format!("[fields.\"Template.stats\"]\nmode = \"service\"\n{EVIDENCE}"));
    for id in 2..=4 {
        stats_of(&stack, OWNER, id).await;
    }
    eventually("the flip is accepted once the evidence is there", || {
        engine.live.snapshot().route(key).map(|r| r.mode_name()) == Some("service")
    })
    .await;
    let counters =
        engine.executor.recorder().snapshot().keys.get(&key).map(|r| r.counters).unwrap_or_default();
    assert_eq!((counters.matched, counters.mismatched), (4, 0));
    stack.devstack.calls().reset();
    stats_of(&stack, OWNER, 5).await;
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (0, 1), "the service serves alone");
    stack.stop().await;
}

/// Variables for a contract operation that selects `Template.stats`, as its component sends them.
fn stats_operation_variables(operation: &str) -> Value {
    match operation {
        "TemplateList" => json!({ "workspaceId": banyan_tests::workspace_id(1), "first": 2 }),
        "AnalyticsDashboard" => json!({ "id": template_id(7), "window": "LAST_30_DAYS", "eventsFirst": 2 }),
        _ => panic!("contract operation {operation} selects Template.stats: give it variables here"),
    }
}

/// The contract operations that select `key`, by banyan-schema's usage walk over the contract.
fn contract_operations_selecting(contract: &std::path::Path, key: &str) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema = banyan_schema::load_sdl_file(root.join("schema/schema.graphql")).expect("the schema loads");
    let contract = banyan_schema::Contract::load(contract).expect("the contract loads");
    banyan_schema::operation_usage(&schema, &contract)
        .into_iter()
        .filter(|usage| usage.fields.contains(key))
        .filter_map(|usage| usage.operation)
        .collect()
}

/// `all_contract_operations = true`: comparisons from an operation outside the contract do not
/// stand in for the contract's. The flip is refused, naming each contract operation selecting the
/// field that shadow has not compared yet, until every one has been; then the watcher's retry of
/// the same file is accepted.
#[tokio::test]
async fn a_flip_waits_for_every_contract_operation_selecting_the_field() {
    let requirement =
        "require_evidence = { min_compared = 2, max_mismatch_rate = 0.0, all_contract_operations = true }\n";
    let shadow = format!(
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\n{requirement}"
    );
    let flip = format!("[fields.\"Template.stats\"]\nmode = \"service\"\n{requirement}");
    let table = RoutingTableFile::new("contract-evidence", &shadow);
    let contract = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend-contract");
    let selecting = contract_operations_selecting(&contract, "Template.stats");
    assert!(selecting.len() >= 2, "several contract operations select stats: {selecting:?}");
    let stack = stack_with_table_and(&table, DevStackConfig::default(), |config| {
        config.admin.contract = contract.clone();
    })
    .await;
    let engine = stack.gateway.engine().clone();
    let key = stats_key(&engine);
    let compared = |engine: &Engine| {
        engine.executor.recorder().snapshot().keys.get(&key).map_or(0, |r| r.counters.compared())
    };
    let mode = |engine: &Engine| engine.live.snapshot().route(key).map(|r| r.mode_name());

    // Enough comparisons, all matching, but from `Stats`, which is not a contract operation.
    for template in [1, 2] {
        stats_of(&stack, OWNER, template).await;
    }
    eventually("two comparisons", || compared(&engine) == 2).await;
    let before = engine.live.status().rejections;
    table.write(&flip);
    eventually("the flip is refused", || engine.live.status().rejections > before).await;
    let reason = engine.live.status().last_rejection.unwrap_or_default();
    assert!(reason.contains("refused"), "{reason}");
    assert!(!reason.contains("calls compared"), "min_compared is met: {reason}");
    for operation in &selecting {
        assert!(reason.contains(&format!("contract operation {operation} not yet compared")), "{reason}");
    }
    assert!(!reason.contains("contract operation Stats"), "{reason}");
    assert_eq!(mode(&engine), Some("shadow"));

    // Each contract operation in turn: the refusal names only those still unseen.
    let operations = banyan_tests::contract_operations();
    for (done, operation) in selecting.iter().enumerate() {
        let body = &operations.iter().find(|(name, _)| name == operation).expect("in the contract").1;
        let expected = compared(&engine) + 1;
        let response = stack.graphql(body, stats_operation_variables(operation)).await;
        assert!(response.body.get("errors").is_none(), "{operation}: {:?}", response.body);
        eventually("the operation's comparisons", || compared(&engine) >= expected).await;
        let unseen = &selecting[done + 1..];
        if unseen.is_empty() {
            break;
        }
        // The watcher retries the refused file: its next reason no longer names `operation`.
        let seen = format!("contract operation {operation} not yet compared");
        eventually("a refusal without the operation just seen", || {
            !engine.live.status().last_rejection.unwrap_or_default().contains(&seen)
        })
        .await;
        let reason = engine.live.status().last_rejection.unwrap_or_default();
        for operation in unseen {
            assert!(reason.contains(&format!("contract operation {operation} not yet compared")), "{reason}");
        }
        assert_eq!(mode(&engine), Some("shadow"), "still refused: {reason}");
    }

    // Every contract operation selecting stats has been compared: the same file is accepted.
    eventually("the flip is accepted", || mode(&engine) == Some("service")).await;
    let results = engine.executor.recorder().snapshot().keys.get(&key).cloned().unwrap_or_default();
    assert_eq!(results.counters.mismatched, 0, "{:?}", results.exemplars);
    for operation in &selecting {
        assert!(results.operations.get(operation).is_some_and(|c| c.matched > 0), "{operation}: {results:?}");
    }
    stack.devstack.calls().reset();
    stats_of(&stack, OWNER, 5).await;
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (0, 1), "the service serves alone");
    stack.stop().await;
}

#[tokio::test]
async fn a_bad_table_at_start_up_stops_the_start_naming_its_line() {
    let table =
        RoutingTableFile::new("bad-start", "[fields.\"Template.stats\"]\nmode = \"legacy\"\nprecent = 3\n");
    let mut config = banyan_gateway::Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("an address");
    config.migration.routing_table = Some(table.path.clone());
    let error = banyan_gateway::RunningGateway::start(&config).await.err().expect("the start fails");
    let message = error.to_string();
    assert!(message.contains(&format!("{}:3:", table.path.display())), "{message}");
    assert!(message.contains("precent"), "{message}");

    // A write goes to one store: canary or shadow for it is refused, naming the place.
    table.write("[fields.\"Mutation.updateDraftBlock\"]\nmode = \"canary\"\npercent = 10\n");
    let error = banyan_gateway::RunningGateway::start(&config).await.err().expect("the start fails");
    let message = error.to_string();
    assert!(message.contains(&format!("{}:", table.path.display())), "{message}");
    assert!(message.contains("Mutation.updateDraftBlock"), "{message}");
}

#[tokio::test]
async fn the_override_header_is_refused_in_serve_by_default_and_forces_a_backend_when_allowed() {
    let stack = TestStack::start().await;
    let send = |stack: &TestStack, headers: &[(&str, &str)]| {
        let mut request = stack
            .http()
            .post(stack.graphql_url())
            .header("accept", "application/graphql-response+json")
            .header("authorization", format!("Token {}", stack.token(OWNER)))
            .json(&json!({ "query": STATS_QUERY, "variables": { "id": template_id(1) } }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let refused = banyan_tests::read(
        send(&stack, &[("x-banyan-route", "Template.stats=legacy")]).await.expect("answers"),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_codes(), ["ROUTE_OVERRIDE_NOT_ALLOWED"]);
    assert_eq!(legacy_calls(&stack) + service_calls(&stack), 0, "nothing ran");
    // Asking to see the routing is ignored when the configuration does not expose it.
    let quiet =
        banyan_tests::read(send(&stack, &[("x-banyan-show-routing", "true")]).await.expect("answers")).await;
    assert!(quiet.body.get("extensions").is_none(), "{:?}", quiet.body);
    stack.stop().await;

    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.migration.allow_route_override = true;
        config.migration.expose_routing = true;
    })
    .await;
    let forced = banyan_tests::read(
        send(&stack, &[("x-banyan-route", "Template.stats=legacy"), ("x-banyan-show-routing", "1")])
            .await
            .expect("answers"),
    )
    .await;
    assert!(forced.body.get("errors").is_none(), "{:?}", forced.body);
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (1, 0), "the monolith served");
    assert_eq!(
        forced.body["extensions"]["routing"],
        json!([{ "path": "template.stats", "field": "Template.stats", "backend": "legacy", "mode": "forced", "shadow": null }])
    );
    let plain =
        banyan_tests::read(send(&stack, &[("x-banyan-show-routing", "1")]).await.expect("answers")).await;
    assert_eq!(service_calls(&stack), 1, "without the override: the declared default, the service");
    assert_eq!(plain.body["extensions"]["routing"][0]["backend"], "service");
    assert_eq!(plain.body["extensions"]["routing"][0]["mode"], "service");
    let bad = banyan_tests::read(
        send(&stack, &[("x-banyan-route", "Template.nope=legacy")]).await.expect("answers"),
    )
    .await;
    assert_eq!((bad.status.as_u16(), bad.error_codes()), (400, vec!["BAD_ROUTE_OVERRIDE".to_owned()]));
    stack.stop().await;
}

/// A graphql-transport-ws connection, initialised with `payload`.
async fn websocket(stack: &TestStack, payload: Value) -> WsClient {
    let mut client = WsClient::connect(stack, TRANSPORT_WS, &[]).await;
    client.init(payload).await;
    client
}

/// Runs `STATS_QUERY` for `template` as operation `id` and returns its one `next` payload.
async fn websocket_stats(client: &mut WsClient, id: &str, template: u64) -> Value {
    client.subscribe(id, STATS_QUERY, json!({ "id": template_id(template) })).await;
    let mut payloads = Vec::new();
    for _ in 0..10 {
        let message = client.next().await.expect("the connection stays open");
        if message["type"] == "next" && message["id"] == id {
            payloads.push(message["payload"].clone());
        }
        if message["type"] == "complete" && message["id"] == id {
            let [payload] = payloads.as_slice() else { panic!("one result: {payloads:?}") };
            assert!(payload.get("errors").is_none(), "{payload:?}");
            return payload.clone();
        }
    }
    panic!("operation {id} did not complete: {payloads:?}");
}

/// A stack that lets callers force routes and see them, and a graphql-transport-ws connection
/// whose init payload forces `Template.stats` to legacy and asks to see the routing.
async fn stack_with_stats_forced_to_legacy_over_websocket() -> (TestStack, WsClient) {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.migration.allow_route_override = true;
        config.migration.expose_routing = true;
    })
    .await;
    let socket = websocket(
        &stack,
        json!({
            "Authorization": format!("Token {}", stack.token(OWNER)),
            "x-banyan-route": "Template.stats=legacy",
            "x-banyan-show-routing": "true",
        }),
    )
    .await;
    (stack, socket)
}

#[tokio::test]
async fn over_websocket_each_operation_routes_and_reports_from_the_init_payload() {
    let (stack, mut socket) = stack_with_stats_forced_to_legacy_over_websocket().await;
    for id in ["1", "2"] {
        let payload = websocket_stats(&mut socket, id, 3).await;
        assert_eq!(payload["extensions"]["routing"][0]["backend"], "legacy", "{payload:?}");
        assert_eq!(payload["extensions"]["routing"][0]["mode"], "forced");
        assert_eq!(payload["extensions"]["routing"][0]["path"], "template.stats");
    }
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (2, 0), "each operation read the monolith");

    // Not allowed: the connection is refused with graphql-transport-ws's Forbidden.
    let closed = TestStack::start().await;
    let mut socket = websocket(
        &closed,
        json!({ "Authorization": format!("Token {}", closed.token(OWNER)), "x-banyan-route": "Template.stats=legacy" }),
    )
    .await;
    let close = socket.read_until_close(Duration::from_secs(10)).await.close.map(|(code, _)| code);
    assert_eq!(close, Some(4403));
    closed.stop().await;
    stack.stop().await;
}

/// A subscription's events each report who served their own migrated fields in
/// `extensions.routing`, not every event's so far.
#[tokio::test]
async fn each_event_of_a_subscription_reports_its_own_routing() {
    let (stack, mut socket) = stack_with_stats_forced_to_legacy_over_websocket().await;
    let ack = socket.next().await.expect("connection_ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let query = "subscription($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence template { stats { sent } } } }";
    socket.subscribe("s", query, json!({ "ids": [template_id(1)] })).await;
    eventually("the subscription's stream is open", || stack.devstack.active_event_streams() == 1).await;
    for event in 1..=3 {
        stack.devstack.append_events(vec![(1, EventKind::Sent)]).await;
        let message = socket.next().await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        let routing = message["payload"]["extensions"]["routing"].as_array().cloned().unwrap_or_default();
        assert_eq!(routing.len(), 1, "event {event}: {message}");
        assert_eq!(routing[0]["path"], "templateEvents.template.stats");
        assert_eq!(
            (routing[0]["backend"].as_str(), routing[0]["mode"].as_str()),
            (Some("legacy"), Some("forced"))
        );
    }
    socket.close().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_websocket_operation_takes_the_table_in_force_when_it_starts_not_the_connections() {
    let table = RoutingTableFile::new("websocket-reload", "[fields.\"Template.stats\"]\nmode = \"legacy\"\n");
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    let mut socket =
        websocket(&stack, json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    websocket_stats(&mut socket, "before", 4).await;
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (1, 0));
    table.write("[fields.\"Template.stats\"]\nmode = \"service\"\n");
    let engine = stack.gateway.engine().clone();
    let key = stats_key(&engine);
    eventually("the new table is live", || {
        engine.live.snapshot().route(key).map(|r| r.mode_name()) == Some("service")
    })
    .await;
    // The same connection, a new operation: the new table.
    websocket_stats(&mut socket, "after", 4).await;
    assert_eq!((legacy_calls(&stack), service_calls(&stack)), (1, 1));
    stack.stop().await;
}

/// A query reading each migrated read field, for template 9 (which has a draft). A read declared
/// later fails [`every_read_field_is_routed_by_its_declaration`] until it has a query here.
const FIELD_QUERIES: &[(&str, &str)] = &[
    ("Template.stats", "query($id: ID!) { template(id: $id) { stats { sent opened uniqueOpens } } }"),
    (
        "Template.draft",
        "query($id: ID!) { template(id: $id) { draft { version updatedAt blocks { id kind content } } } }",
    ),
    (
        "Template.recentEvents",
        "query($id: ID!) { template(id: $id) { recentEvents(first: 5) { nodes { sequence kind recipient occurredAt }
            pageInfo { hasNextPage } } } }",
    ),
];

/// The generic test: for every declared read field, each backend forced in turn makes exactly
/// that side's declared calls (and none only the other side makes), and says so in
/// `extensions.routing`; then, shadowed with identical data, the two sides agree after the
/// declared normalisers.
#[tokio::test]
async fn every_read_field_is_routed_by_its_declaration() {
    let catalog = banyan_migration::Catalog::banyan().expect("the declarations agree");
    let reads: Vec<_> = catalog.fields().filter(|f| !f.is_write()).collect();
    let shadow_all: String = FIELD_QUERIES
        .iter()
        .map(|(key, _)| {
            format!("[fields.\"{key}\"]\nmode = \"shadow\"\nprimary = \"service\"\nsample_rate = 0.0\n")
        })
        .collect();
    let table = RoutingTableFile::new("generic", &shadow_all);
    let stack = stack_with_table_and(&table, DevStackConfig::default(), |config| {
        config.migration.allow_route_override = true;
    })
    .await;
    let variables = json!({ "id": template_id(9) });
    assert!(stack.devstack.dataset().draft(9).is_some(), "template 9 has a draft");
    for field in &reads {
        let (_, query) = FIELD_QUERIES
            .iter()
            .find(|(key, _)| *key == field.key)
            .unwrap_or_else(|| panic!("`{}` has no query in FIELD_QUERIES", field.key));
        for backend in [Backend::Legacy, Backend::Service] {
            stack.devstack.calls().reset();
            let response = banyan_tests::read(
                stack
                    .http()
                    .post(stack.graphql_url())
                    .header("authorization", format!("Token {}", stack.token(OWNER)))
                    .header("x-banyan-route", format!("{}={backend}", field.key))
                    .header("x-banyan-show-routing", "true")
                    .json(&json!({ "query": query, "variables": variables }))
                    .send()
                    .await
                    .expect("answers"),
            )
            .await;
            assert!(response.body.get("errors").is_none(), "{}: {:?}", field.key, response.body);
            assert_eq!(response.body["extensions"]["routing"][0]["backend"], backend.as_str());
            let seen = stack.devstack.calls().snapshot();
            let this_side = field.implementation(backend).calls;
            for call in this_side {
                assert!(
                    seen.contains_key(call.name),
                    "{} on {backend}: {} not called: {seen:?}",
                    field.key,
                    call
                );
            }
            for call in field.implementation(backend.other()).calls {
                if !this_side.contains(call) {
                    assert!(
                        !seen.contains_key(call.name),
                        "{} on {backend}: {} called: {seen:?}",
                        field.key,
                        call
                    );
                }
            }
        }
    }

    // Shadowed, every request sampled: identical data agrees after the normalisers.
    let sampled = shadow_all.replace("sample_rate = 0.0", "sample_rate = 1.0");
    table.write(&sampled);
    let engine = stack.gateway.engine().clone();
    eventually("the sampled table is live", || {
        FIELD_QUERIES.iter().all(|(key, _)| {
            let key = engine.catalog().key(key).expect("declared");
            engine.live.snapshot().route(key).map(|r| r.backends_called().len()) == Some(2)
                && engine
                    .live
                    .snapshot()
                    .decide(key, &banyan_migration::RequestSubject::default())
                    .shadow
                    .is_some()
        })
    })
    .await;
    for (key, query) in FIELD_QUERIES {
        for template in [9, 10, 11] {
            let response = stack.graphql(query, json!({ "id": template_id(template) })).await;
            assert!(response.body.get("errors").is_none(), "{key}: {:?}", response.body);
        }
        let key = engine.catalog().key(key).expect("declared");
        eventually("three comparisons", || {
            engine.executor.recorder().snapshot().keys.get(&key).map_or(0, |r| r.counters.compared()) == 3
        })
        .await;
        let results = engine.executor.recorder().snapshot().keys.get(&key).cloned().unwrap_or_default();
        assert_eq!(results.counters.mismatched, 0, "{key}: {:?}", results.exemplars);
    }
    stack.stop().await;
}

/// The mutation of each migrated write, given the draft it edits (`$template`, `$block`, `$version`).
/// A write declared later fails [`every_write_goes_to_the_store_its_routing_names`] until it has
/// one here.
const WRITE_MUTATIONS: &[(&str, &str)] = &[
    (
        "Mutation.updateDraftBlock",
        "mutation($block: ID!, $version: Int!) { updateDraftBlock(input: {
            blockId: $block, content: \"edited\", expectedVersion: $version }) {
            __typename ... on DraftUpdated { draft { version } } } }",
    ),
    (
        "Mutation.insertDraftBlock",
        "mutation($template: ID!, $block: ID!, $version: Int!) { insertDraftBlock(input: {
            templateId: $template, index: 0, kind: TEXT, content: $block, expectedVersion: $version }) {
            __typename ... on DraftUpdated { draft { version } } } }",
    ),
    (
        "Mutation.deleteDraftBlock",
        "mutation($block: ID!, $version: Int!) { deleteDraftBlock(input: {
            blockId: $block, expectedVersion: $version }) {
            __typename ... on DraftUpdated { draft { version } } } }",
    ),
];

const DRAFT_QUERY: &str = "query($id: ID!) { template(id: $id) { draft { version blocks { id } } } }";

/// The draft of `template` as `backend` has it.
async fn draft_on(stack: &TestStack, backend: Backend, template: u64) -> Value {
    let route = format!("Template.draft={backend}");
    routed(stack, &route, DRAFT_QUERY, json!({ "id": template_id(template) })).await.data()["template"]["draft"]
        .clone()
}

/// POSTs as [`OWNER`] with the routing headers.
async fn routed(
    stack: &TestStack,
    route: &str,
    query: &str,
    variables: Value,
) -> banyan_tests::GraphqlResponse {
    let response = banyan_tests::read(
        stack
            .http()
            .post(stack.graphql_url())
            .header("authorization", format!("Token {}", stack.token(OWNER)))
            .header("x-banyan-route", route)
            .header("x-banyan-show-routing", "true")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert!(response.body.get("errors").is_none(), "{route}: {:?}", response.body);
    response
}

/// The generic test of writes: each write forced to each store makes that store's write call
/// (and none only the other store makes), edits that store's draft, and, on the monolith, leaves
/// the draft store as it was (the monolith's writes are not copied over).
#[tokio::test]
async fn every_write_goes_to_the_store_its_routing_names() {
    let catalog = banyan_migration::Catalog::banyan().expect("the declarations agree");
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.migration.allow_route_override = true;
        config.migration.expose_routing = true;
    })
    .await;
    let dataset = stack.devstack.dataset().clone();
    // Templates of the owner's first workspace with a draft, one per (write, store).
    let mut templates =
        dataset.templates.iter().filter(|t| t.workspace == 1 && dataset.draft(t.id).is_some()).map(|t| t.id);
    for field in catalog.fields().filter(|f| f.is_write()) {
        let (_, mutation) = WRITE_MUTATIONS
            .iter()
            .find(|(key, _)| *key == field.key)
            .unwrap_or_else(|| panic!("`{}` has no mutation in WRITE_MUTATIONS", field.key));
        for backend in [Backend::Legacy, Backend::Service] {
            let template = templates.next().expect("enough templates with a draft");
            let before = draft_on(&stack, backend, template).await;
            let other_before = draft_on(&stack, backend.other(), template).await;
            let version = before["version"].as_u64().expect("a version");
            let variables = json!({
                "template": template_id(template),
                "block": before["blocks"][0]["id"].as_str().expect("a block"),
                "version": version,
            });
            stack.devstack.calls().reset();
            let response = routed(&stack, &format!("{}={backend}", field.key), mutation, variables).await;
            let what = format!("{} on {backend}", field.key);
            let result = response.data().as_object().and_then(|data| data.values().next()).cloned();
            let result = result.unwrap_or_default();
            assert_eq!(result["__typename"], "DraftUpdated", "{what}: {:?}", response.body);
            assert_eq!(result["draft"]["version"].as_u64(), Some(version + 1), "{what}");
            assert_eq!(response.body["extensions"]["routing"][0]["backend"], backend.as_str(), "{what}");
            let seen = stack.devstack.calls().snapshot();
            let this_side = field.implementation(backend).calls;
            let other_side = field.implementation(backend.other()).calls;
            assert!(
                this_side.iter().any(|call| !other_side.contains(call) && seen.contains_key(call.name)),
                "{what}: no call of its own side: {seen:?}"
            );
            for call in other_side.iter().filter(|call| !this_side.contains(call)) {
                assert!(!seen.contains_key(call.name), "{what}: {call} called: {seen:?}");
            }
            assert_eq!(
                draft_on(&stack, backend, template).await["version"].as_u64(),
                Some(version + 1),
                "{what}"
            );
            if backend == Backend::Legacy {
                assert_eq!(draft_on(&stack, Backend::Service, template).await, other_before, "{what}");
            }
        }
    }
    stack.stop().await;
}

/// A/A through the gateway: with the devstack's noise knob on, the monolith's analytics answer
/// carries a `computed_at` that differs on every call. Calibration (the primary called twice, on
/// loaders of its own) learns it as noise; comparisons then count a difference there as a match
/// with noise, visibly, and still count a real difference as a mismatch.
#[tokio::test]
async fn calibration_learns_a_nondeterministic_path_as_noise() {
    let calibrate = "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 0.0\n\
        calibration_rate = 1.0\n";
    let table = RoutingTableFile::new("calibration", calibrate);
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    stack.devstack.set_aa_noise(true);
    let engine = stack.gateway.engine().clone();
    let key = stats_key(&engine);
    let results =
        |engine: &Engine| engine.executor.recorder().snapshot().keys.get(&key).cloned().unwrap_or_default();

    stats_of(&stack, OWNER, 20).await;
    eventually("one calibration", || results(&engine).calibrations == 1).await;
    assert_eq!(legacy_calls(&stack), 2, "the primary was called twice, not answered from the cache");
    assert_eq!(service_calls(&stack), 0);
    let learned = results(&engine);
    assert_eq!(learned.calibrations_differing, 1);
    assert_eq!(learned.noise.keys().collect::<Vec<_>>(), ["$.computed_at"], "{:?}", learned.noise);

    // Compare against the service, which has no `computed_at`: noise, not a mismatch.
    table.write(
        &calibrate
            .replace("sample_rate = 0.0", "sample_rate = 1.0")
            .replace("calibration_rate = 1.0", "calibration_rate = 0.0"),
    );
    eventually("the comparing table is live", || {
        engine
            .live
            .snapshot()
            .decide(key, &banyan_migration::RequestSubject::default())
            .shadow
            .map(|p| p.call)
            == Some(Backend::Service)
    })
    .await;
    stats_of(&stack, OWNER, 21).await;
    eventually("one comparison", || results(&engine).counters.compared() == 1).await;
    let compared = results(&engine);
    assert_eq!(
        (compared.counters.matched, compared.counters.matched_with_noise, compared.counters.mismatched),
        (1, 1, 0),
        "{:?}",
        compared.counters
    );
    assert_eq!(compared.noise.get("$.computed_at").map(|n| n.comparisons_differing), Some(1));
    stack.stop().await;
}

/// A page's items are answered from the page's prefetch, each ready on its first poll: each
/// records the latency of the call that answered it, the prefetch's, not zero (which made a
/// page's primary look free beside its shadowed secondary, recorded at its page call's). The
/// devstack holds every call for its fault's latency, so no item can have been answered faster.
/// In shadow, the page selects `stats` twice (two aliases): the second 50 items are beyond the
/// page's batch and run with a second call each, and are timed the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_s_items_record_the_latency_of_the_call_that_answered_them() {
    let service = "[fields.\"Template.stats\"]\nmode = \"service\"\n";
    let aliased = "query Aliased($workspaceId: ID!) { templates(workspaceId: $workspaceId, first: 50) { edges { \
                   node { id stats { sent } again: stats { opened } } } } }";
    let page = include_str!("../../../frontend-contract/TemplateList/TemplateList.graphql");
    for (name, table, query, primary, items) in [
        ("shadow-latency", STATS_IN_SHADOW_BEHIND_LEGACY, aliased, Backend::Legacy, 100),
        ("service-latency", service, page, Backend::Service, 50),
    ] {
        let table = RoutingTableFile::new(name, table);
        let stack = stack_with_table(&table, DevStackConfig::default()).await;
        for backend in [DevBackend::Monolith, DevBackend::Events] {
            stack.devstack.faults().set(backend, Fault::latency(Duration::from_millis(10)));
        }
        let variables = json!({ "workspaceId": banyan_tests::workspace_id(1), "first": 50 });
        let response = stack.graphql(query, variables).await;
        assert!(response.body.get("errors").is_none(), "{:?}", response.body);
        assert_eq!(response.data()["templates"]["edges"].as_array().map_or(0, Vec::len), 50);
        let engine = stack.gateway.engine().clone();
        let results =
            engine.executor.recorder().snapshot().keys.remove(&stats_key(&engine)).unwrap_or_default();
        assert_eq!(results.served.get(&primary), Some(&items), "{name}: every item served by {primary:?}");
        let latency = match primary {
            Backend::Legacy => &results.latency.legacy,
            Backend::Service => &results.latency.service,
        };
        assert_eq!(latency.count, items, "{name}: {latency:?}");
        // Buckets of 1, 2 and 5 ms first: a call held 10 ms is in none of them.
        assert_eq!(latency.bounds_ms[2], 5);
        assert_eq!(
            latency.counts[..3].iter().sum::<u64>(),
            0,
            "{name}: an item recorded under 5 ms: {latency:?}"
        );
        stack.stop().await;
    }
}

/// A page's templates are written whole when their authors and stats are at hand (the page
/// prefetched them), and each item's stats then records and notes who served it once, as a
/// field read on its own does. When an edge cannot be written whole after its template's stats
/// were read at hand (here: the template's draft, not loaded yet, found only as the template is
/// written), it resolves field by field and reads the stats again: what the first read deferred
/// must not be recorded too. Either way, 50 items are served, 50 noted, each at its own path.
#[tokio::test]
async fn a_page_s_items_record_and_note_who_served_them_once_whether_written_whole_or_not() {
    let table = RoutingTableFile::new("written-whole", "[fields.\"Template.stats\"]\nmode = \"service\"\n");
    let stack = stack_with_table(&table, DevStackConfig::default()).await;
    let engine = stack.gateway.engine().clone();
    let served = || {
        let keys = engine.executor.recorder().snapshot().keys;
        keys.get(&stats_key(&engine))
            .and_then(|results| results.served.get(&Backend::Service).copied())
            .unwrap_or(0)
    };
    let page = |beside: &str| {
        format!(
            "query Page($workspaceId: ID!) {{ templates(workspaceId: $workspaceId, first: 50) {{ edges {{ \
             node {{ id stats {{ sent }} {beside} }} }} }} }}"
        )
    };
    let mut stats = Vec::new();
    for query in [page("createdBy { id fullName }"), page("draft { version }")] {
        let before = (served(), service_calls(&stack));
        let response = banyan_tests::read(
            stack
                .http()
                .post(stack.graphql_url())
                .header("accept", "application/graphql-response+json")
                .header("authorization", format!("Token {}", stack.token(OWNER)))
                .header("x-banyan-show-routing", "1")
                .json(
                    &json!({ "query": query, "variables": { "workspaceId": banyan_tests::workspace_id(1) } }),
                )
                .send()
                .await
                .expect("answers"),
        )
        .await;
        assert!(response.body.get("errors").is_none(), "{query}: {:?}", response.body);
        assert_eq!(service_calls(&stack) - before.1, 1, "{query}: one call for the page's stats");
        assert_eq!(served() - before.0, 50, "{query}: each item's stats recorded once");
        let routing = response.body["extensions"]["routing"].as_array().cloned().unwrap_or_default();
        let mut paths: Vec<String> = routing
            .iter()
            .filter(|note| note["field"] == "Template.stats")
            .map(|note| note["path"].as_str().unwrap_or_default().to_owned())
            .collect();
        paths.sort();
        let mut expected: Vec<String> = (0..50).map(|i| format!("templates.edges.{i}.node.stats")).collect();
        expected.sort();
        assert_eq!(paths, expected, "{query}: each item noted once, at its own path");
        assert!(routing.iter().all(|note| note["backend"] == "service"), "{query}: {routing:?}");
        let edges = response.data()["templates"]["edges"].as_array().cloned().unwrap_or_default();
        stats.push(
            edges
                .iter()
                .map(|edge| (edge["node"]["id"].clone(), edge["node"]["stats"].clone()))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(stats[0].len(), 50);
    assert_eq!(stats[0], stats[1], "the same templates and stats either way");
    stack.stop().await;
}
