//! `/metrics` scraped over a real socket after known traffic: the OpenMetrics text is parsed here,
//! line by line (not with the gateway's encoder), and its names, labels and values are checked
//! against what was sent and against what the devstack's backends counted.

use std::collections::BTreeMap;
use std::time::Duration;

use banyan_devstack::{Backend, DevStackConfig, Fault};
use banyan_tests::ws::WsClient;
use banyan_tests::{TestStack, contract_operation, template_id, workspace_id};
use serde_json::json;

/// One sample: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
}

/// Every sample of an OpenMetrics text, by series.
struct Scrape(BTreeMap<Series, f64>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect("closing brace"))),
                None => (series, BTreeMap::new()),
            };
            samples.insert(Series { name: name.to_owned(), labels }, value);
        }
        Self(samples)
    }

    /// The value of the series `name` whose labels include `labels`, when exactly one matches.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching = self.matching(name, labels);
        assert!(matching.len() <= 1, "{name}{labels:?} is ambiguous: {matching:?}");
        matching.first().map(|(_, value)| *value)
    }

    fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(&Series, f64)> {
        self.0
            .iter()
            .filter(|(series, _)| {
                series.name == name
                    && labels
                        .iter()
                        .all(|(key, value)| series.labels.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|(series, value)| (series, *value))
            .collect()
    }

    /// Every value of label `label` on series `name`.
    fn label_values(&self, name: &str, label: &str) -> std::collections::BTreeSet<String> {
        self.0.keys().filter(|s| s.name == name).filter_map(|s| s.labels.get(label).cloned()).collect()
    }
}

/// `a="x",b="y"` (values may hold `{`, `}`, `/` and spaces; escapes as OpenMetrics writes them).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("a label in {text}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.to_owned(), value);
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

async fn scrape(stack: &TestStack) -> (String, Scrape) {
    let response = stack
        .http()
        .get(format!("http://{}/metrics", stack.gateway.addr()))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.expect("a body");
    (content_type, Scrape::parse(&text))
}

const OPERATION_SECONDS: &str = "graphql_operation_duration_seconds_count";
const HTTP_SECONDS: &str = "http_server_request_duration_seconds_count";
const BACKEND_SECONDS: &str = "banyan_backend_request_duration_seconds_count";

#[tokio::test]
async fn metrics_count_the_traffic_sent_by_operation_route_backend_and_batch() {
    // The contract's operation names are the labels the gateway may use.
    let contract = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend-contract");
    let stack =
        TestStack::start_with(DevStackConfig::default(), |config| config.admin.contract = contract).await;
    for _ in 0..3 {
        let response = stack.graphql(&contract_operation("UserMenu"), json!({})).await;
        assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    }
    let unknown = stack.graphql("query NotInTheContract { me { id } }", json!({})).await;
    assert!(unknown.body.get("errors").is_none(), "{:?}", unknown.body);
    // The event store fails every call: the page's stats fail together, in one batch.
    stack.devstack.faults().set(Backend::Events, Fault { error_rate: 1.0, ..Fault::default() });
    let page = stack
        .graphql(&contract_operation("TemplateList"), json!({ "workspaceId": workspace_id(1), "first": 10 }))
        .await;
    let templates = page.data()["templates"]["edges"].as_array().map(Vec::len).expect("templates load");
    let failed_stats = page.error_codes().iter().filter(|code| *code == "BACKEND_UNAVAILABLE").count();
    assert_eq!(failed_stats, templates, "every stats field failed: {:?}", page.body["errors"]);

    let (content_type, metrics) = scrape(&stack).await;
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");

    // Operations: contract names as sent, anything else `other`, and nothing more.
    assert_eq!(
        metrics.value(
            OPERATION_SECONDS,
            &[("graphql_operation_name", "UserMenu"), ("graphql_operation_type", "query")]
        ),
        Some(3.0)
    );
    assert_eq!(metrics.value(OPERATION_SECONDS, &[("graphql_operation_name", "TemplateList")]), Some(1.0));
    assert_eq!(
        metrics.value(
            OPERATION_SECONDS,
            &[("graphql_operation_name", "other"), ("graphql_operation_type", "query")]
        ),
        Some(1.0)
    );
    let names = metrics.label_values(OPERATION_SECONDS, "graphql_operation_name");
    assert_eq!(
        names,
        ["TemplateList", "UserMenu", "other"].map(String::from).into(),
        "no unknown name is a label"
    );

    // HTTP: five POSTs to the /graphql route, all 200; the scrape itself is not counted.
    assert_eq!(
        metrics.value(
            HTTP_SECONDS,
            &[
                ("http_request_method", "POST"),
                ("http_route", "/graphql"),
                ("http_response_status_code", "200")
            ]
        ),
        Some(5.0)
    );
    assert_eq!(metrics.label_values(HTTP_SECONDS, "http_route"), ["/graphql".to_owned()].into());
    assert_eq!(metrics.value("http_server_active_requests", &[]), Some(0.0));

    // Backends: every call the devstack received, under the same route or method, and the
    // event store's failures by code.
    let calls = stack.devstack.calls().snapshot();
    // (The page's one stats batch is retried while the retry budget allows, so the event store
    // sees more calls than batches; the metrics must say what the backend saw, attempt by
    // attempt.)
    let stats_calls = calls.get("EventService/GetTemplateStats").copied().unwrap_or(0);
    assert!(stats_calls >= 1, "{calls:?}");
    assert_eq!(
        metrics
            .value(BACKEND_SECONDS, &[("backend", "events"), ("operation", "EventService/GetTemplateStats")]),
        Some(stats_calls as f64)
    );
    assert_eq!(
        metrics
            .value("banyan_backend_errors_total", &[("backend", "events"), ("code", "BACKEND_UNAVAILABLE")]),
        Some(stats_calls as f64)
    );
    assert_eq!(metrics.label_values("banyan_backend_errors_total", "backend"), ["events".to_owned()].into());
    let monolith_calls: Vec<(&String, &u64)> =
        calls.iter().filter(|(key, _)| !key.contains("Service/")).collect();
    assert!(!monolith_calls.is_empty(), "{calls:?}");
    for (route, count) in &monolith_calls {
        assert_eq!(
            metrics.value(BACKEND_SECONDS, &[("backend", "monolith"), ("operation", route.as_str())]),
            Some(**count as f64),
            "{route}"
        );
    }
    let monolith_total: u64 = monolith_calls.iter().map(|(_, count)| **count).sum();
    let recorded: f64 =
        metrics.matching(BACKEND_SECONDS, &[("backend", "monolith")]).iter().map(|(_, v)| v).sum();
    assert_eq!(recorded, monolith_total as f64, "no monolith call the devstack did not see");
    for backend in ["monolith", "events", "drafts"] {
        let in_flight = metrics.value("banyan_backend_in_flight_calls", &[("backend", backend)]);
        assert!(matches!(in_flight, None | Some(0.0)), "{backend}: {in_flight:?}");
    }

    // The migration engine's route counter: each of the page's stats fields was routed to the
    // service (its declared default), failing or not.
    assert_eq!(
        metrics
            .value("banyan_migration_served_total", &[("field", "Template.stats"), ("backend", "service")]),
        Some(templates as f64)
    );
    assert_eq!(
        metrics.value(
            "banyan_migration_shadow_results_total",
            &[("field", "Template.stats"), ("result", "mismatched")]
        ),
        Some(0.0),
        "no shadow configured"
    );

    // Batches: the page's stats are one batch of as many keys as templates on the page (its
    // failure is remembered for the request, so the fields do not ask again).
    let batch = [("loader", "stats"), ("backend", "events")];
    assert_eq!(metrics.value("banyan_backend_batch_size_count", &batch), Some(1.0));
    assert_eq!(metrics.value("banyan_backend_batch_size_sum", &batch), Some(templates as f64));
    // The authors of the page in one batch of as many distinct users.
    let authors: std::collections::BTreeSet<String> = page.data()["templates"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| edge["node"]["createdBy"]["id"].as_str().map(str::to_owned))
        .collect();
    let users = [("loader", "users"), ("backend", "monolith")];
    assert_eq!(metrics.value("banyan_backend_batch_size_count", &users), Some(1.0));
    assert_eq!(metrics.value("banyan_backend_batch_size_sum", &users), Some(authors.len() as f64));
    stack.stop().await;
}

#[tokio::test]
async fn open_subscriptions_and_websockets_are_gauges_that_fall_when_they_end() {
    let stack = TestStack::start().await;
    let mut socket = WsClient::signed_in(&stack, banyan_tests::OWNER).await;
    socket
        .subscribe("1", &contract_operation("TemplateEventsFeed"), json!({ "templateIds": [template_id(1)] }))
        .await;
    // Bounded wait for the stream to reach the event store, which it does once running.
    for _ in 0..200 {
        if stack.devstack.active_event_streams() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(stack.devstack.active_event_streams(), 1);
    let (_, open) = scrape(&stack).await;
    assert_eq!(open.value("banyan_subscriptions_active", &[]), Some(1.0));
    assert_eq!(open.value("banyan_websocket_connections_active", &[]), Some(1.0));
    socket.close().await;
    let mut last = None;
    for _ in 0..200 {
        let (_, metrics) = scrape(&stack).await;
        last = Some((
            metrics.value("banyan_subscriptions_active", &[]),
            metrics.value("banyan_websocket_connections_active", &[]),
        ));
        if last == Some((Some(0.0), Some(0.0))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(last, Some((Some(0.0), Some(0.0))), "both fall back to zero once the socket closes");
    stack.stop().await;
}

#[tokio::test]
async fn metrics_can_be_switched_off_or_put_behind_a_token() {
    let off = TestStack::start_with(DevStackConfig::default(), |config| config.metrics.enabled = false).await;
    let url = format!("http://{}/metrics", off.gateway.addr());
    assert_eq!(off.http().get(&url).send().await.expect("answers").status(), 404);
    off.stop().await;

    let token = "a-metrics-token-of-at-least-32-characters";
    let guarded =
        TestStack::start_with(DevStackConfig::default(), |config| config.metrics.token = token.to_owned())
            .await;
    let url = format!("http://{}/metrics", guarded.gateway.addr());
    let refused = guarded.http().get(&url).send().await.expect("answers");
    assert_eq!(refused.status(), 401);
    let wrong = guarded.http().get(&url).bearer_auth("not-the-token").send().await.expect("answers");
    assert_eq!(wrong.status(), 401);
    let scraped = guarded.http().get(&url).bearer_auth(token).send().await.expect("answers");
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.expect("a body");
    assert!(text.lines().any(|line| line == "# TYPE http_server_active_requests gauge"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    guarded.stop().await;
}

#[tokio::test]
async fn shadow_results_and_evidence_per_field_are_exported_as_the_engine_counts_them() {
    let table = banyan_tests::RoutingTableFile::new(
        "metrics-shadow",
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"service\"\nsample_rate = 1.0\n",
    );
    let path = table.path.clone();
    let stack = TestStack::start_with(DevStackConfig::default(), move |config| {
        config.migration.routing_table = Some(path);
    })
    .await;
    let query = "query Trio($a: ID!, $b: ID!, $c: ID!) { a: template(id: $a) { stats { sent } }
        b: template(id: $b) { stats { sent } } c: template(id: $c) { stats { sent } } }";
    let ids = json!({ "a": template_id(1), "b": template_id(2), "c": template_id(3) });
    let response = stack.graphql(query, ids).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    // The monolith's copy falls behind template 2: its next comparison mismatches.
    stack.devstack.set_legacy_sync(false);
    stack.devstack.append_events(vec![(2, banyan_devstack::EventKind::Sent)]).await;
    let response = stack
        .graphql(
            "query One($id: ID!) { template(id: $id) { stats { sent } } }",
            json!({ "id": template_id(2) }),
        )
        .await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);

    // Shadow comparisons finish after the response: a bounded wait for all four.
    let result = |metrics: &Scrape, result: &str| {
        metrics.value(
            "banyan_migration_shadow_results_total",
            &[("field", "Template.stats"), ("result", result)],
        )
    };
    let mut metrics = scrape(&stack).await.1;
    for _ in 0..200 {
        if result(&metrics, "matched").unwrap_or(0.0) + result(&metrics, "mismatched").unwrap_or(0.0) >= 4.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        metrics = scrape(&stack).await.1;
    }
    assert_eq!(result(&metrics, "matched"), Some(3.0));
    assert_eq!(result(&metrics, "mismatched"), Some(1.0));
    assert_eq!(result(&metrics, "secondary_error"), Some(0.0));
    assert_eq!(
        metrics.value("banyan_migration_evidence_mismatch_ratio", &[("field", "Template.stats")]),
        Some(0.25)
    );
    // Four stats fields served by the service; the legacy side was the shadow, once per field.
    assert_eq!(
        metrics
            .value("banyan_migration_served_total", &[("field", "Template.stats"), ("backend", "service")]),
        Some(4.0)
    );
    let legacy_calls = stack.devstack.calls().count("GET /api/v1/templates/{id}/analytics/");
    assert_eq!(legacy_calls, 4);
    assert_eq!(
        metrics.value(
            BACKEND_SECONDS,
            &[("backend", "monolith"), ("operation", "GET /api/v1/templates/{id}/analytics/")]
        ),
        Some(legacy_calls as f64)
    );
    stack.stop().await;
}
