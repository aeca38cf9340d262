//! OpenTelemetry traces end to end: an in-process OTLP/gRPC collector (a tonic server of OTLP's
//! `TraceService` on an ephemeral port) receives the spans the gateway exports, and the devstack's
//! call log shows the `traceparent` each backend received. The trace must be one tree, in the
//! client's trace, with the backends' parents being the gateway's backend-call spans.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use banyan_devstack::DevStackConfig;
use banyan_tests::{TestStack, contract_operations, eventually, workspace_id};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};

/// The client's trace: what it sends as `traceparent`.
const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01")
}

/// One span as the collector received it, ids in hex.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
    service_name: Option<String>,
}

/// The collector: every span of every export it received.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans.resource.as_ref().and_then(|resource| {
                resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| text(kv.value.as_ref()))
            });
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(Received {
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: span.kind,
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                        service_name: service_name.clone(),
                    });
                }
            }
        }
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// Starts a collector on 127.0.0.1:0; it serves until the test's runtime ends.
async fn start_collector() -> (SocketAddr, Collector) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let collector = Collector::default();
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
    });
    (addr, collector)
}

/// A stack whose gateway exports its traces to `collector`.
async fn stack_exporting_to(collector: SocketAddr) -> TestStack {
    TestStack::start_with(DevStackConfig::default(), |config| {
        config.tracing.enabled = true;
        config.tracing.endpoint = format!("http://{collector}");
        config.tracing.service_name = "banyan-under-test".to_owned();
    })
    .await
}

/// The contract's `TemplateList`: a page of templates from the monolith, their authors in one
/// users batch (monolith) and their stats in one stats batch (the event store, gRPC).
fn template_list() -> String {
    contract_operations().into_iter().find(|(name, _)| name == "TemplateList").expect("in the contract").1
}

/// POSTs `TemplateList` (10 templates) as the owner, with `traceparent` when given; checks it
/// succeeded and returns how many distinct authors its templates have (the size of the users
/// batch).
async fn send_template_list(stack: &TestStack, traceparent: Option<&str>) -> usize {
    let mut request = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(banyan_tests::OWNER)))
        .json(&json!({ "query": template_list(), "variables": { "workspaceId": workspace_id(1), "first": 10 } }));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = banyan_tests::read(request.send().await.expect("the gateway answers")).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    let edges = response.data()["templates"]["edges"].as_array().cloned().unwrap_or_default();
    assert_eq!(edges.len(), 10, "{:?}", response.body);
    let authors: std::collections::BTreeSet<String> =
        edges.iter().filter_map(|edge| edge["node"]["createdBy"]["id"].as_str().map(str::to_owned)).collect();
    assert!(!authors.is_empty(), "{:?}", response.body);
    authors.len()
}

/// Warms the identity cache, so the calls counted next are the operation's own.
async fn warm_up(stack: &TestStack) {
    let response = stack.graphql("{ __typename }", json!({})).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    stack.devstack.calls().reset();
}

/// The parent span id of a `traceparent`.
fn parent_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(2).unwrap_or_default()
}

fn only<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let matching: Vec<&Received> = spans.iter().filter(|span| span.name == name).collect();
    assert_eq!(matching.len(), 1, "one span named {name:?}: {spans:#?}");
    matching[0]
}

/// Checks the spans of one `TemplateList` request in `trace_id` (whose operation span's parent
/// is `root_parent`, empty for a trace the gateway started), and that each backend saw its call
/// span as its parent.
fn check_trace(
    calls: &banyan_devstack::CallLog,
    spans: &[Received],
    trace_id: &str,
    root_parent: &str,
    authors: usize,
) {
    let trace: Vec<Received> = spans.iter().filter(|span| span.trace_id == trace_id).cloned().collect();
    assert!(spans.iter().all(|span| span.service_name.as_deref() == Some("banyan-under-test")), "{spans:#?}");

    let operation = only(&trace, "query TemplateList");
    assert_eq!(operation.kind, SpanKind::Server as i32);
    assert_eq!(operation.parent_span_id, root_parent, "the operation joins the client's span");
    assert_eq!(operation.attributes.get("graphql.operation.type").map(String::as_str), Some("query"));
    assert_eq!(operation.attributes.get("graphql.operation.name").map(String::as_str), Some("TemplateList"));
    assert!(!operation.attributes.contains_key("graphql.document"), "off by default");

    // A tree: one root (the operation), every other span's parent in the trace.
    let ids: HashMap<&str, &Received> = trace.iter().map(|span| (span.span_id.as_str(), span)).collect();
    assert_eq!(ids.len(), trace.len(), "span ids are unique");
    for span in &trace {
        if span.span_id != operation.span_id {
            assert!(ids.contains_key(span.parent_span_id.as_str()), "{span:?}'s parent is in the trace");
        }
    }

    let users_batch = only(&trace, "batch users");
    let stats_batch = only(&trace, "batch stats");
    for (batch, size) in [(users_batch, authors), (stats_batch, 10)] {
        assert_eq!(batch.parent_span_id, operation.span_id, "{batch:?} is the operation's child");
        assert_eq!(batch.attributes.get("banyan.batch.size"), Some(&size.to_string()), "{batch:?}");
    }

    let templates_call = only(&trace, "GET /api/v1/templates/");
    let users_call = only(&trace, "GET /api/v1/users/");
    let stats_call = only(&trace, "banyan.events.v1.EventService/GetTemplateStats");
    assert_eq!(templates_call.parent_span_id, operation.span_id, "the page is read by the operation");
    assert_eq!(users_call.parent_span_id, users_batch.span_id);
    assert_eq!(stats_call.parent_span_id, stats_batch.span_id);
    for call in [templates_call, users_call] {
        assert_eq!(call.kind, SpanKind::Client as i32);
        assert_eq!(call.attributes.get("http.request.method").map(String::as_str), Some("GET"));
        assert_eq!(call.attributes.get("http.response.status_code").map(String::as_str), Some("200"));
        assert_eq!(call.attributes.get("banyan.retry").map(String::as_str), Some("0"));
    }
    assert_eq!(stats_call.kind, SpanKind::Client as i32);
    assert_eq!(stats_call.attributes.get("rpc.system").map(String::as_str), Some("grpc"));
    assert_eq!(
        stats_call.attributes.get("rpc.service").map(String::as_str),
        Some("banyan.events.v1.EventService")
    );
    assert_eq!(stats_call.attributes.get("rpc.method").map(String::as_str), Some("GetTemplateStats"));
    assert_eq!(stats_call.attributes.get("rpc.grpc.status_code").map(String::as_str), Some("0"));

    // What each backend received: the same trace, its parent the gateway's call span.
    for (key, call) in [
        ("GET /api/v1/templates/", templates_call),
        ("GET /api/v1/users/", users_call),
        ("EventService/GetTemplateStats", stats_call),
    ] {
        assert_eq!(calls.trace_ids(key), [trace_id], "{key} was called once, in the trace");
        let traceparents = calls.traceparents(key);
        assert_eq!(parent_of(&traceparents[0]), call.span_id, "{key}'s parent is the gateway's call span");
    }
}

/// Shuts the gateway down (which flushes its spans to the collector), then hands back the
/// devstack, whose call log the checks read.
async fn stop_gateway(stack: TestStack) -> banyan_devstack::DevStack {
    let TestStack { devstack, gateway, .. } = stack;
    let report = gateway.shutdown().await;
    assert!(report.drained(), "{report:?}");
    devstack
}

#[tokio::test]
async fn one_requests_spans_reach_the_collector_in_the_clients_trace() {
    let (collector_addr, collector) = start_collector().await;
    let stack = stack_exporting_to(collector_addr).await;
    warm_up(&stack).await;
    let authors = send_template_list(&stack, Some(&client_traceparent())).await;
    // Nothing waits for the batch's schedule: the shutdown flushes what is queued.
    let devstack = stop_gateway(stack).await;
    check_trace(devstack.calls(), &collector.spans(), CLIENT_TRACE_ID, CLIENT_SPAN_ID, authors);
    devstack.shutdown().await;
}

#[tokio::test]
async fn without_a_traceparent_the_gateway_starts_the_trace_and_the_backends_join_it() {
    let (collector_addr, collector) = start_collector().await;
    let stack = stack_exporting_to(collector_addr).await;
    warm_up(&stack).await;
    let authors = send_template_list(&stack, None).await;
    let devstack = stop_gateway(stack).await;
    let spans = collector.spans();
    let operation = only(&spans, "query TemplateList");
    assert_ne!(operation.trace_id, CLIENT_TRACE_ID);
    assert_eq!(operation.trace_id.len(), 32);
    check_trace(devstack.calls(), &spans, &operation.trace_id.clone(), "", authors);
    devstack.shutdown().await;
}

#[tokio::test]
async fn the_operation_span_carries_the_document_only_when_asked() {
    let (collector_addr, collector) = start_collector().await;
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.tracing.enabled = true;
        config.tracing.endpoint = format!("http://{collector_addr}");
        config.tracing.include_document = true;
    })
    .await;
    let query = "query Me { me { username } }";
    let response = stack.graphql(query, json!({})).await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    let devstack = stop_gateway(stack).await;
    let spans = collector.spans();
    let operation = only(&spans, "query Me");
    assert_eq!(operation.attributes.get("graphql.document").map(String::as_str), Some(query));
    assert_eq!(operation.service_name.as_deref(), Some("banyan"), "the default service name");
    devstack.shutdown().await;
}

#[tokio::test]
async fn tracing_is_off_by_default_exports_nothing_and_forwards_the_clients_traceparent_as_is() {
    let (collector_addr, collector) = start_collector().await;
    // The collector is configured; `tracing.enabled` is left at its default.
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.tracing.endpoint = format!("http://{collector_addr}");
    })
    .await;
    warm_up(&stack).await;
    let traceparent = client_traceparent();
    send_template_list(&stack, Some(&traceparent)).await;
    let devstack = stop_gateway(stack).await;
    assert!(collector.spans().is_empty(), "{:#?}", collector.spans());
    for key in ["GET /api/v1/templates/", "GET /api/v1/users/", "EventService/GetTemplateStats"] {
        assert_eq!(
            devstack.calls().traceparents(key),
            vec![traceparent.clone()],
            "{key} got the client's header"
        );
    }
    devstack.shutdown().await;
}

#[tokio::test]
async fn a_collector_that_is_down_fails_no_request_and_the_trace_still_reaches_the_backends() {
    // A port nothing listens on: bound, then released.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address")
    };
    let logs = banyan_tests::captured_json_logs();
    let stack = stack_exporting_to(down).await;
    warm_up(&stack).await;
    for _ in 0..5 {
        send_template_list(&stack, Some(&client_traceparent())).await;
    }
    assert_eq!(
        stack.devstack.calls().trace_ids("EventService/GetTemplateStats"),
        vec![CLIENT_TRACE_ID.to_owned(); 5],
        "propagation does not depend on the collector"
    );
    // The shutdown's flush fails, is logged, and does not hold the shutdown past its bound.
    let devstack = stop_gateway(stack).await;
    let endpoint = format!("http://{down}");
    let warned = eventually(|| {
        let text = String::from_utf8_lossy(&logs.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
        text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).any(|line| {
            line["level"] == "WARN"
                && line["endpoint"] == endpoint.as_str()
                && line["message"].as_str().is_some_and(|m| m.starts_with("cannot export traces"))
        })
    })
    .await;
    assert!(warned, "a warning names the collector that is down");
    devstack.shutdown().await;
}

#[tokio::test]
async fn each_attempt_of_a_retried_call_is_a_span_and_the_parent_of_what_the_backend_saw() {
    let logs = banyan_tests::captured_json_logs();
    let (collector_addr, collector) = start_collector().await;
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.tracing.enabled = true;
        config.tracing.endpoint = format!("http://{collector_addr}");
        config.backends.events.retry.max_retries = 2;
        config.backends.events.retry.budget_min_per_second = 100;
        config.backends.events.breaker.enabled = false;
    })
    .await;
    warm_up(&stack).await;
    stack
        .devstack
        .faults()
        .set(banyan_devstack::faults::Backend::Events, banyan_devstack::Fault::error_rate(1.0));
    let response =
        stack.graphql(&template_list(), json!({ "workspaceId": workspace_id(1), "first": 10 })).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(response.error_codes().iter().all(|code| code == "BACKEND_UNAVAILABLE"), "{:?}", response.body);
    let devstack = stop_gateway(stack).await;
    let spans = collector.spans();
    let mut attempts: Vec<&Received> =
        spans.iter().filter(|span| span.name == "banyan.events.v1.EventService/GetTemplateStats").collect();
    attempts.sort_by_key(|span| span.attributes.get("banyan.retry").cloned());
    let retries: Vec<&str> =
        attempts.iter().filter_map(|span| span.attributes.get("banyan.retry").map(String::as_str)).collect();
    assert_eq!(retries, ["0", "1", "2"], "the first attempt and two retries: {attempts:#?}");
    let batch = only(&spans, "batch stats");
    for attempt in &attempts {
        assert_eq!(attempt.parent_span_id, batch.span_id, "every attempt under the batch");
        // UNAVAILABLE is 14.
        assert_eq!(attempt.attributes.get("rpc.grpc.status_code").map(String::as_str), Some("14"));
        assert_eq!(attempt.attributes.get("error.type").map(String::as_str), Some("BACKEND_UNAVAILABLE"));
    }
    // The service saw three calls, each with its own attempt as the parent.
    let mut seen: Vec<String> = devstack
        .calls()
        .traceparents("EventService/GetTemplateStats")
        .iter()
        .map(|traceparent| parent_of(traceparent).to_owned())
        .collect();
    let mut sent: Vec<String> = attempts.iter().map(|span| span.span_id.clone()).collect();
    seen.sort();
    sent.sort();
    assert_eq!(seen, sent);
    // The request's log lines carry the trace the gateway started (no client traceparent here).
    let text = String::from_utf8_lossy(&logs.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
    let warning = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["span"]["trace_id"] == batch.trace_id.as_str());
    assert!(
        warning.as_ref().is_some_and(|line| line["message"] == "backend call failed"),
        "the outage warning is logged in the trace: {warning:?}"
    );
    devstack.shutdown().await;
}

#[tokio::test]
async fn field_spans_are_off_by_default_and_nest_under_their_parent_field_when_on() {
    for field_spans in [false, true] {
        let (collector_addr, collector) = start_collector().await;
        let stack = TestStack::start_with(DevStackConfig::default(), |config| {
            config.tracing.enabled = true;
            config.tracing.endpoint = format!("http://{collector_addr}");
            config.tracing.field_spans = field_spans;
        })
        .await;
        let response = stack.graphql("query Me { me { username } }", json!({})).await;
        assert!(response.body.get("errors").is_none(), "{:?}", response.body);
        let devstack = stop_gateway(stack).await;
        let spans = collector.spans();
        let operation = only(&spans, "query Me");
        let fields: Vec<&Received> =
            spans.iter().filter(|span| span.attributes.contains_key("graphql.field.name")).collect();
        if field_spans {
            let me = only(&spans, "Query.me");
            let username = only(&spans, "User.username");
            assert_eq!(me.parent_span_id, operation.span_id);
            assert_eq!(username.parent_span_id, me.span_id);
            assert_eq!(
                username.attributes.get("graphql.field.path").map(String::as_str),
                Some("me.username")
            );
            // `me` is loaded by a batch loader, whose one call may serve several fields: the call
            // hangs under the operation, not under one field.
            let call = only(&spans, "GET /api/v1/me/");
            assert_eq!(call.parent_span_id, operation.span_id);
        } else {
            assert!(fields.is_empty(), "{fields:#?}");
            let call = only(&spans, "GET /api/v1/me/");
            assert_eq!(call.parent_span_id, operation.span_id);
        }
        devstack.shutdown().await;
    }
}
