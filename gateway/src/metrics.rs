//! Prometheus metrics at `GET /metrics` (OpenMetrics text, which Prometheus scrapes), one
//! registry per gateway: tests run many gateways in one process, so nothing is process-global.
//!
//! Names follow OpenTelemetry's semantic conventions where they exist, rendered Prometheus-style
//! (dots become underscores, the unit and `_total` are suffixes): `http_server_request_duration_seconds`
//! with `http_request_method`, `http_route` (the route template), `http_response_status_code`;
//! `http_server_active_requests`. GraphQL has no stable metric convention, so
//! `graphql_operation_duration_seconds` borrows the span attributes `graphql.operation.name` and
//! `graphql.operation.type` for its labels. Banyan's own series start with `banyan_`. The README's
//! "Metrics" section lists every series.
//!
//! Labels are bounded: operation names only from the frontend contract or the persisted
//! manifest (anything else, and anonymous operations, is `other`), routes are templates, backend
//! errors are [`SourceError::code`](banyan_sources::SourceError::code)s, migrated fields come
//! from the catalog.
//!
//! Values read from elsewhere at scrape time (open WebSockets, the migration engine's counters,
//! later the resilience layer's per-backend state) are [`Collector`]s: [`SnapshotCollector`]
//! turns any closure returning samples into a family, so exposing another component's snapshot
//! is one `register_collector` call in [`Metrics::new`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use banyan_migration::Engine;
use banyan_sources::metrics::duration_histogram;
use banyan_sources::{BreakerState, ResilienceSnapshot, Sources};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::config::Config;

/// The label value of an operation name outside the contract and the manifest.
pub(crate) const OTHER_OPERATION: &str = "other";

/// The content type of the OpenMetrics text format.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    http_request_method: String,
    http_route: String,
    http_response_status_code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    graphql_operation_name: String,
    graphql_operation_type: &'static str,
}

/// The metrics of one gateway. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    http_active: Gauge,
    operation_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    subscriptions_active: Gauge,
    /// The operation names that may be labels; every other name is [`OTHER_OPERATION`].
    operation_names: HashSet<String>,
}

impl Metrics {
    /// The registry of one gateway: its HTTP and GraphQL series, the backends' (what `sources`
    /// record into [`Sources::metrics`]), the migration engine's, and the open WebSocket
    /// connections. Per-backend state kept by the sources themselves (breakers, retries) is
    /// added here as a [`SnapshotCollector`] reading `sources`.
    pub(crate) fn new(
        operation_names: HashSet<String>,
        sources: &Sources,
        engine: &Engine,
        websockets: &crate::ws::WebSockets,
        shared: Option<&crate::shared_store::SharedStore>,
        documents: &crate::document_cache::DocumentCache,
    ) -> Self {
        let mut registry = Registry::default();
        let http_duration = Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP requests, by method, route template and status (OpenTelemetry http.server.request.duration); /metrics itself is not counted",
            Unit::Seconds,
            http_duration.clone(),
        );
        let http_active = Gauge::default();
        registry.register(
            "http_server_active_requests",
            "HTTP requests being handled (OpenTelemetry http.server.active_requests): an autoscaling signal",
            http_active.clone(),
        );
        let operation_duration =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        registry.register_with_unit(
            "graphql_operation_duration",
            "Duration of executing GraphQL queries and mutations, by operation name (contract and manifest names; others are `other`) and type",
            Unit::Seconds,
            operation_duration.clone(),
        );
        let subscriptions_active = Gauge::default();
        registry.register(
            "banyan_subscriptions_active",
            "GraphQL subscriptions running: an autoscaling signal",
            subscriptions_active.clone(),
        );
        let sockets = websockets.clone();
        registry.register_collector(Box::new(SnapshotCollector::gauge(
            "banyan_websocket_connections_active",
            "Initialised WebSocket connections open: an autoscaling signal",
            move || vec![(Vec::new(), sockets.open_connections() as f64)],
        )));
        let cache = documents.clone();
        registry.register_collector(Box::new(SnapshotCollector::counter(
            "banyan_document_cache_hits",
            "Requests whose document was found parsed in the document cache (server.document_cache_size)",
            move || vec![(Vec::new(), cache.hits() as f64)],
        )));
        let cache = documents.clone();
        registry.register_collector(Box::new(SnapshotCollector::counter(
            "banyan_document_cache_misses",
            "Requests whose document was not in the document cache, so was parsed and measured",
            move || vec![(Vec::new(), cache.misses() as f64)],
        )));
        let cache = documents.clone();
        registry.register_collector(Box::new(SnapshotCollector::gauge(
            "banyan_document_cache_entries",
            "Parsed documents kept in the document cache",
            move || vec![(Vec::new(), cache.entries() as f64)],
        )));
        sources.metrics.register(&mut registry);
        register_resilience(&mut registry, sources);
        register_migration(&mut registry, engine);
        if let Some(shared) = shared {
            shared.register(&mut registry);
        }
        Self(Arc::new(Inner {
            registry,
            http_duration,
            http_active,
            operation_duration,
            subscriptions_active,
            operation_names,
        }))
    }

    /// The operation names of the contract folder (`admin.contract`) and of the persisted
    /// manifest (`persisted.manifest`); whichever cannot be read adds none (both are logged
    /// elsewhere at start-up).
    pub(crate) fn operation_names(config: &Config) -> HashSet<String> {
        let mut names = HashSet::new();
        if let Ok(contract) = banyan_schema::Contract::load(&config.admin.contract) {
            names.extend(contract.operations().iter().filter_map(|operation| operation.name.clone()));
        }
        let manifest = std::fs::read_to_string(&config.persisted.manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<banyan_schema::Manifest>(&text).ok());
        if let Some(manifest) = manifest {
            names.extend(manifest.operations.into_iter().map(|operation| operation.name));
        }
        names
    }

    /// `name` when it may be a label, else [`OTHER_OPERATION`].
    fn operation_label(&self, name: Option<&str>) -> String {
        match name {
            Some(name) if self.0.operation_names.contains(name) => name.to_owned(),
            _ => OTHER_OPERATION.to_owned(),
        }
    }

    /// The registry as OpenMetrics text.
    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)?;
        Ok(text)
    }
}

/// `GET /metrics`: the registry, behind `metrics.token` when one is set.
pub(crate) async fn serve(
    State((metrics, token)): State<(Metrics, Option<Arc<str>>)>,
    headers: HeaderMap,
) -> HttpResponse {
    if let Some(expected) = token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let allowed = presented
            .is_some_and(|token| crate::admin::constant_time_eq(token.as_bytes(), expected.as_bytes()));
        if !allowed {
            let mut response =
                (StatusCode::UNAUTHORIZED, "send Authorization: Bearer <metrics.token>\n").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"banyan-metrics\""),
            );
            return response;
        }
    }
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Middleware on the routed paths: times each request under its route template and counts it
/// as active while it runs (a request whose future is dropped, by a timeout or a client gone,
/// leaves the active count but records no duration).
pub(crate) async fn track_http(
    State(metrics): State<Metrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> HttpResponse {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let _active = ActiveRequest::enter(&metrics.0.http_active);
    let response = next.run(request).await;
    let labels = HttpLabels {
        http_request_method: method,
        http_route: route,
        http_response_status_code: response.status().as_u16(),
    };
    metrics.0.http_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

/// One unit of a gauge, given back when dropped.
struct ActiveRequest(Gauge);

impl ActiveRequest {
    fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One subscription counted in `banyan_subscriptions_active` while held: a subscriber of a
/// shared execution (`crate::ws`) holds one, as its own execution would have.
pub(crate) struct SubscriptionUnit {
    _unit: ActiveRequest,
}

impl SubscriptionUnit {
    pub(crate) fn enter(gauge: &Gauge) -> Self {
        Self { _unit: ActiveRequest::enter(gauge) }
    }
}

/// One operation as the gateway's pipeline (`crate::pipeline`) records it, in place of the
/// extension below: its labels, and, for a subscription, its place in
/// `banyan_subscriptions_active` (given back when this is dropped, with the stream).
pub(crate) struct OperationRecord {
    labels: OperationLabels,
    _subscription: Option<ActiveRequest>,
}

impl Metrics {
    /// The record of the operation of `document` a request named `requested` runs; a
    /// subscription counts as running unless it is a shared execution (`counted` false), whose
    /// subscribers count one by one ([`SubscriptionUnit`]).
    pub(crate) fn operation(
        &self,
        document: &ExecutableDocument,
        requested: Option<&str>,
        counted: bool,
    ) -> OperationRecord {
        let (name, ty) = chosen_operation(document, requested).unwrap_or((None, OperationType::Query));
        let labels = OperationLabels {
            graphql_operation_name: self.operation_label(name.as_deref().or(requested)),
            graphql_operation_type: type_name(ty),
        };
        let subscription = (counted && ty == OperationType::Subscription)
            .then(|| ActiveRequest::enter(&self.0.subscriptions_active));
        OperationRecord { labels, _subscription: subscription }
    }

    /// `banyan_subscriptions_active`, for the subscribers of shared executions.
    pub(crate) fn subscriptions_active(&self) -> Gauge {
        self.0.subscriptions_active.clone()
    }

    /// Records one execution of `operation` (a query or mutation, or one subscription event)
    /// that took `elapsed`.
    pub(crate) fn observe(&self, operation: &OperationRecord, elapsed: std::time::Duration) {
        self.0.operation_duration.get_or_create(&operation.labels).observe(elapsed.as_secs_f64());
    }
}

/// The async-graphql extension timing operations and counting running subscriptions.
pub(crate) struct OperationMetrics(pub(crate) Metrics);

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationTimer { metrics: self.0.clone(), state: Mutex::default() })
    }
}

#[derive(Default)]
struct TimerState {
    /// The operation name the request asked for.
    requested: Option<String>,
    /// The chosen operation's label and type, once parsed.
    operation: Option<(String, &'static str)>,
    /// Held while a subscription runs (the extension lives as long as its stream).
    _subscription: Option<ActiveRequest>,
}

struct OperationTimer {
    metrics: Metrics,
    state: Mutex<TimerState>,
}

fn type_name(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// The operation of `document` a request named `requested` runs: its name and type.
pub(crate) fn chosen_operation(
    document: &ExecutableDocument,
    requested: Option<&str>,
) -> Option<(Option<String>, OperationType)> {
    let mut operations = document.operations.iter();
    match requested {
        Some(name) => operations
            .find(|(candidate, _)| candidate.map(|c| c.as_str()) == Some(name))
            .map(|(name, operation)| (name.map(|n| n.to_string()), operation.node.ty)),
        None => {
            let first = operations.next()?;
            // More than one, and none named: async-graphql refuses the request.
            operations.next().is_none().then(|| (first.0.map(|n| n.to_string()), first.1.node.ty))
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationTimer {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = next.run(ctx, request).await?;
        self.state.lock().unwrap_or_else(PoisonError::into_inner).requested = request.operation_name.clone();
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((name, ty)) = chosen_operation(&document, state.requested.as_deref()) {
            state.operation = Some((self.metrics.operation_label(name.as_deref()), type_name(ty)));
            // A shared execution's subscribers count one by one instead.
            let shared = ctx.data_opt::<banyan_resolvers::shared_execution::SharedFeed>().is_some();
            if ty == OperationType::Subscription && !shared {
                state._subscription = Some(ActiveRequest::enter(&self.metrics.0.subscriptions_active));
            }
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let started = Instant::now();
        let response = next.run(ctx, operation_name).await;
        let operation = self.state.lock().unwrap_or_else(PoisonError::into_inner).operation.clone();
        let (name, ty) = operation.unwrap_or_else(|| (self.metrics.operation_label(operation_name), "query"));
        let labels = OperationLabels { graphql_operation_name: name, graphql_operation_type: ty };
        self.metrics.0.operation_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        response
    }
}

/// One sample of a [`SnapshotCollector`]: its labels and value.
pub(crate) type Sample = (Vec<(String, String)>, f64);

/// A family read at scrape time from a closure: how a component that keeps its own state (the
/// migration engine's recorder, the WebSocket registry, the resilience layer's breakers) is
/// exposed without copying its numbers into the registry.
pub(crate) struct SnapshotCollector<F> {
    name: &'static str,
    help: &'static str,
    metric_type: MetricType,
    samples: F,
}

impl<F: Fn() -> Vec<Sample> + Send + Sync + 'static> SnapshotCollector<F> {
    /// A gauge family (a value that goes up and down).
    pub(crate) fn gauge(name: &'static str, help: &'static str, samples: F) -> Self {
        Self { name, help, metric_type: MetricType::Gauge, samples }
    }

    /// A counter family (`_total` is appended to `name`).
    pub(crate) fn counter(name: &'static str, help: &'static str, samples: F) -> Self {
        Self { name, help, metric_type: MetricType::Counter, samples }
    }
}

impl<F> std::fmt::Debug for SnapshotCollector<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCollector").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<F: Fn() -> Vec<Sample> + Send + Sync + 'static> Collector for SnapshotCollector<F> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples = (self.samples)();
        let mut family = encoder.encode_descriptor(self.name, self.help, None, self.metric_type)?;
        for (labels, value) in samples {
            let metric = family.encode_family(&labels)?;
            match self.metric_type {
                // Counters read from elsewhere are whole counts.
                MetricType::Counter => ConstCounter::new(value as u64).encode(metric)?,
                _ => ConstGauge::new(value).encode(metric)?,
            }
        }
        Ok(())
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

/// A resilience counter family: its name, help, and how to read it from a snapshot.
type ResilienceCounter = (&'static str, &'static str, fn(&ResilienceSnapshot) -> u64);

/// The resilience layer's state per backend as it keeps it, read at scrape time: each breaker's
/// state (one series per state, 1 for the current one, as Prometheus exposes enums), retries made
/// and refused by the retry budget, calls refused by the concurrency limit or shed by an open
/// breaker, and reads answered by another caller's identical call.
fn register_resilience(registry: &mut Registry, sources: &Sources) {
    let read = sources.clone();
    registry.register_collector(Box::new(SnapshotCollector::gauge(
        "banyan_backend_breaker_state",
        "Each backend's circuit breaker: 1 for its current state (closed, open, half_open), 0 for the others",
        move || {
            let mut samples = Vec::new();
            for snapshot in read.resilience() {
                for state in [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen] {
                    let value = if snapshot.breaker == state { 1.0 } else { 0.0 };
                    samples.push((
                        labels(&[("backend", snapshot.backend.name()), ("state", state.name())]),
                        value,
                    ));
                }
            }
            samples
        },
    )));
    let counters: [ResilienceCounter; 5] = [
        ("banyan_backend_retries", "Retries of idempotent reads made, by backend", |s| s.retries_total),
        (
            "banyan_backend_retries_refused",
            "Retries not made because the backend's retry budget was spent",
            |s| s.retries_refused_total,
        ),
        (
            "banyan_backend_rejected_by_limit",
            "Calls failed with BACKEND_OVERLOADED by the backend's concurrency limit",
            |s| s.rejected_by_limit_total,
        ),
        ("banyan_backend_shed_by_breaker", "Calls failed at once by an open breaker (no call made)", |s| {
            s.shed_by_breaker_total
        }),
        (
            "banyan_backend_deduplicated",
            "Reads answered by another caller's identical in-flight call (dedupe_reads)",
            |s| s.deduplicated_total,
        ),
    ];
    for (name, help, value) in counters {
        let read = sources.clone();
        registry.register_collector(Box::new(SnapshotCollector::counter(name, help, move || {
            read.resilience()
                .iter()
                .map(|snapshot| (labels(&[("backend", snapshot.backend.name())]), value(snapshot) as f64))
                .collect()
        })));
    }
}

/// The migration engine's counters as it keeps them (its recorder), read at scrape time: which
/// backend served each migrated field, each field's shadow results, and the mismatch rate the
/// flip evidence is judged on.
fn register_migration(registry: &mut Registry, engine: &Engine) {
    let recorder = engine.live.recorder().clone();
    registry.register_collector(Box::new(SnapshotCollector::counter(
        "banyan_migration_served",
        "Migrated-field calls served, by field and backend (legacy or service)",
        move || {
            let snapshot = recorder.snapshot();
            let mut samples = Vec::new();
            for (key, results) in &snapshot.keys {
                for (backend, count) in &results.served {
                    samples.push((
                        labels(&[("field", key.as_str()), ("backend", backend.as_str())]),
                        *count as f64,
                    ));
                }
            }
            samples
        },
    )));
    let recorder = engine.live.recorder().clone();
    registry.register_collector(Box::new(SnapshotCollector::counter(
        "banyan_migration_shadow_results",
        "Shadow comparisons and their outcomes, by field and result",
        move || {
            let snapshot = recorder.snapshot();
            let mut samples = Vec::new();
            for (key, results) in &snapshot.keys {
                let counters = results.counters;
                for (result, count) in [
                    ("matched", counters.matched),
                    ("matched_with_noise", counters.matched_with_noise),
                    ("mismatched", counters.mismatched),
                    ("secondary_error", counters.secondary_errors),
                    ("secondary_timeout", counters.secondary_timeouts),
                    ("skipped", counters.skipped),
                    ("primary_error", counters.primary_errors),
                ] {
                    samples.push((labels(&[("field", key.as_str()), ("result", result)]), count as f64));
                }
            }
            samples
        },
    )));
    let live = engine.live.clone();
    registry.register_collector(Box::new(SnapshotCollector::gauge(
        "banyan_migration_evidence_mismatch_ratio",
        "Per migrated field, mismatched / compared shadow calls: the flip evidence (fields not yet compared are absent)",
        move || {
            let snapshot = live.recorder().snapshot();
            let contract = live.contract().clone();
            snapshot
                .keys
                .keys()
                .filter_map(|key| {
                    let evidence = banyan_migration::KeyEvidence::gather(*key, &snapshot, &contract);
                    evidence.mismatch_rate.map(|rate| (labels(&[("field", key.as_str())]), rate))
                })
                .collect()
        },
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_operation_follows_the_requested_name() {
        let document =
            async_graphql::parser::parse_query("query A { a } mutation B { b } subscription C { c }")
                .expect("parses");
        assert_eq!(
            chosen_operation(&document, Some("B")),
            Some((Some("B".to_owned()), OperationType::Mutation))
        );
        assert_eq!(chosen_operation(&document, Some("Z")), None);
        assert_eq!(chosen_operation(&document, None), None, "ambiguous");
        let single = async_graphql::parser::parse_query("subscription { c }").expect("parses");
        assert_eq!(chosen_operation(&single, None), Some((None, OperationType::Subscription)));
    }
}
