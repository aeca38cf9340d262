//! What the backend calls cost, for `/metrics`: per backend and operation a duration histogram,
//! errors by [`SourceError::code`], calls in flight, and the sizes of loader batches; and for
//! subscriptions ([`crate::fanout`]), the upstream `StreamEvents` streams open, their reconnects,
//! the subscribers ended for not keeping up, and how often an event's selection was resolved or
//! reused (counted by the resolvers, which share one resolution per event and operation).
//!
//! One [`BackendMetrics`] belongs to one gateway (tests run many gateways in one process, so
//! there is no process-global recorder): the gateway builds it, registers it in its own
//! Prometheus registry ([`BackendMetrics::register`]) and hands it to [`crate::Sources`]. Clients
//! record at their choke points (the gRPC `call`, the monolith's `exchange`, the loaders' batch
//! functions). Every label value comes from a fixed set, so the series stay bounded.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::error::{Backend, SourceError};

/// Upper bounds of the duration buckets, in seconds: OpenTelemetry's recommended boundaries for
/// `http.server.request.duration`, reused for every duration so they line up on a dashboard.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Upper bounds of the batch-size buckets (keys per loader call).
pub const BATCH_SIZE_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// A duration histogram with [`DURATION_BUCKETS`].
pub fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn batch_size_histogram() -> Histogram {
    Histogram::new(BATCH_SIZE_BUCKETS)
}

/// Which backend, which operation (a gRPC method, or the monolith's method and route template).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    backend: &'static str,
    operation: Cow<'static, str>,
}

/// A failed call's backend and code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    backend: &'static str,
    code: &'static str,
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

/// A loader, by the backend it calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LoaderLabels {
    backend: &'static str,
    loader: &'static str,
}

/// The backend metrics of one gateway. Cheap to clone; a default one records into families
/// nobody reads (what a [`crate::Sources`] built without a gateway uses).
#[derive(Debug, Clone, Default)]
pub struct BackendMetrics(Arc<Families>);

#[derive(Debug)]
struct Families {
    duration: Family<CallLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    in_flight: Family<BackendLabels, Gauge>,
    batch_size: Family<LoaderLabels, Histogram, fn() -> Histogram>,
    upstream_streams: Gauge,
    shared_subscribers: Gauge,
    shared_executions: Gauge,
    upstream_reconnects: Counter,
    subscriber_overflows: Counter,
    event_resolutions: Counter,
    event_resolutions_reused: Counter,
}

impl Default for Families {
    fn default() -> Self {
        Self {
            duration: Family::new_with_constructor(duration_histogram),
            errors: Family::default(),
            in_flight: Family::default(),
            batch_size: Family::new_with_constructor(batch_size_histogram),
            upstream_streams: Gauge::default(),
            shared_subscribers: Gauge::default(),
            shared_executions: Gauge::default(),
            upstream_reconnects: Counter::default(),
            subscriber_overflows: Counter::default(),
            event_resolutions: Counter::default(),
            event_resolutions_reused: Counter::default(),
        }
    }
}

impl BackendMetrics {
    /// Fresh, empty families.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the families to `registry` (see the README's metric table for the names).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "banyan_backend_request_duration",
            "Duration of backend calls, by backend and operation (gRPC method, or HTTP method and route template)",
            Unit::Seconds,
            self.0.duration.clone(),
        );
        registry.register(
            "banyan_backend_errors",
            "Failed backend calls, by backend and error code (extensions.code)",
            self.0.errors.clone(),
        );
        registry.register(
            "banyan_backend_in_flight_calls",
            "Backend calls under way",
            self.0.in_flight.clone(),
        );
        registry.register(
            "banyan_backend_batch_size",
            "Keys per DataLoader batch, by loader and the backend it calls",
            self.0.batch_size.clone(),
        );
        registry.register(
            "banyan_subscription_upstream_streams",
            "StreamEvents streams the gateway holds open to the event store (shared by every subscriber of the same templates)",
            self.0.upstream_streams.clone(),
        );
        registry.register(
            "banyan_subscription_shared_subscribers",
            "Subscriptions attached to a shared upstream stream (joined, buffer allocated)",
            self.0.shared_subscribers.clone(),
        );
        registry.register(
            "banyan_subscription_shared_executions",
            "Executions shared by the subscribers of one operation (the same templates and a selection that does not depend on the caller): one per distinct operation, however many subscribe",
            self.0.shared_executions.clone(),
        );
        registry.register(
            "banyan_subscription_upstream_reconnects",
            "Shared event streams reopened after the event store ended them (resuming from the last sequence seen)",
            self.0.upstream_reconnects.clone(),
        );
        registry.register(
            "banyan_subscription_overflows",
            "Subscriptions ended with SUBSCRIBER_TOO_SLOW because their buffer (subscriptions.subscriber_buffer) filled",
            self.0.subscriber_overflows.clone(),
        );
        registry.register(
            "banyan_subscription_event_resolutions",
            "Subscription events whose selection was resolved: once per event and distinct operation when the selection does not depend on the caller, once per subscriber when it does",
            self.0.event_resolutions.clone(),
        );
        registry.register(
            "banyan_subscription_event_resolutions_reused",
            "Subscription events delivered with a value another subscriber of the same operation had resolved",
            self.0.event_resolutions_reused.clone(),
        );
    }

    /// Counts one upstream event stream as open until the guard is dropped.
    pub(crate) fn upstream_stream(&self) -> UpstreamStreamGuard {
        self.0.upstream_streams.inc();
        UpstreamStreamGuard(self.clone())
    }

    /// The upstream event streams open now.
    pub fn upstream_streams(&self) -> i64 {
        self.0.upstream_streams.get()
    }

    /// Counts one subscriber as attached to a shared stream (directly, or through a shared
    /// execution) until the guard is dropped.
    pub fn shared_subscriber(&self) -> SharedSubscriberGuard {
        self.0.shared_subscribers.inc();
        SharedSubscriberGuard(self.clone())
    }

    /// Counts one execution shared by the subscribers of one operation until the guard is
    /// dropped.
    pub fn shared_execution(&self) -> SharedExecutionGuard {
        self.0.shared_executions.inc();
        SharedExecutionGuard(self.clone())
    }

    /// Counts one reconnect of a shared event stream.
    pub(crate) fn upstream_reconnected(&self) {
        self.0.upstream_reconnects.inc();
    }

    /// Counts one subscriber ended because its buffer overflowed.
    pub fn subscriber_overflowed(&self) {
        self.0.subscriber_overflows.inc();
    }

    /// Subscribers ended because their buffer overflowed, so far.
    pub fn subscriber_overflows(&self) -> u64 {
        self.0.subscriber_overflows.get()
    }

    /// Counts one resolution of a subscription's selection for one event.
    pub fn subscription_event_resolved(&self) {
        self.0.event_resolutions.inc();
    }

    /// Counts one delivery of a subscription event whose value was resolved for another
    /// subscriber of the same operation.
    pub fn subscription_event_reused(&self) {
        self.0.event_resolutions_reused.inc();
    }

    /// Counts `deliveries` of a subscription event whose value was resolved once for them all
    /// (a shared execution's payload given to its subscribers but one).
    pub fn subscription_events_reused(&self, deliveries: u64) {
        self.0.event_resolutions_reused.inc_by(deliveries);
    }

    /// Resolutions of subscription events so far (see
    /// [`BackendMetrics::subscription_event_resolved`]).
    pub fn subscription_event_resolutions(&self) -> u64 {
        self.0.event_resolutions.get()
    }

    /// Deliveries of subscription events that reused another subscriber's resolution so far.
    pub fn subscription_event_reuses(&self) -> u64 {
        self.0.event_resolutions_reused.get()
    }

    /// Starts timing one call; the call counts as in flight until the guard is dropped (so a
    /// call its caller abandoned is not counted forever).
    pub(crate) fn start_call(&self, backend: Backend, operation: impl Into<Cow<'static, str>>) -> CallGuard {
        let labels = BackendLabels { backend: backend.name() };
        self.0.in_flight.get_or_create(&labels).inc();
        CallGuard {
            metrics: self.clone(),
            labels: CallLabels { backend: backend.name(), operation: operation.into() },
            started: Instant::now(),
        }
    }

    /// Records one batch of `size` keys loaded by `loader` from `backend`.
    pub(crate) fn observe_batch(&self, backend: Backend, loader: &'static str, size: usize) {
        let labels = LoaderLabels { backend: backend.name(), loader };
        self.0.batch_size.get_or_create(&labels).observe(size as f64);
    }
}

/// One open upstream event stream (see [`BackendMetrics::upstream_stream`]).
pub(crate) struct UpstreamStreamGuard(BackendMetrics);

impl Drop for UpstreamStreamGuard {
    fn drop(&mut self) {
        self.0.0.upstream_streams.dec();
    }
}

/// One subscriber attached to a shared stream (see [`BackendMetrics::shared_subscriber`]).
#[derive(Debug)]
pub struct SharedSubscriberGuard(BackendMetrics);

impl Drop for SharedSubscriberGuard {
    fn drop(&mut self) {
        self.0.0.shared_subscribers.dec();
    }
}

/// One execution counted in `banyan_subscription_shared_executions` while it is held.
#[derive(Debug)]
pub struct SharedExecutionGuard(BackendMetrics);

impl Drop for SharedExecutionGuard {
    fn drop(&mut self) {
        self.0.0.shared_executions.dec();
    }
}

/// A call under way (see [`BackendMetrics::start_call`]).
pub(crate) struct CallGuard {
    metrics: BackendMetrics,
    labels: CallLabels,
    started: Instant,
}

impl CallGuard {
    /// Records the call's duration and, when it failed, its error code.
    pub(crate) fn finish<T>(self, result: &Result<T, SourceError>) {
        self.finish_with(result.as_ref().err().map(SourceError::code));
    }

    /// Records the call's duration and `error_code`, when it failed.
    pub(crate) fn finish_with(self, error_code: Option<&'static str>) {
        let families = &self.metrics.0;
        families.duration.get_or_create(&self.labels).observe(self.started.elapsed().as_secs_f64());
        if let Some(code) = error_code {
            families.errors.get_or_create(&ErrorLabels { backend: self.labels.backend, code }).inc();
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.metrics.0.in_flight.get_or_create(&BackendLabels { backend: self.labels.backend }).dec();
    }
}

/// The literal segments of the monolith's API paths (devstack/MONOLITH_API.md); any other
/// segment is an id and becomes `{id}`, so a route label never holds a caller's value.
const MONOLITH_SEGMENTS: &[&str] = &[
    "api",
    "v1",
    "me",
    "users",
    "workspaces",
    "members",
    "memberships",
    "templates",
    "analytics",
    "draft",
    "events",
    "blocks",
];

/// The routes a request's reads take with no id in their path, as their labels: a page's list
/// calls are labelled without building a string (the route, the list of its segments and the
/// joined path were three allocations per call).
const LITERAL_GET_ROUTES: &[&str] = &[
    "GET /api/v1/me/",
    "GET /api/v1/users/",
    "GET /api/v1/workspaces/",
    "GET /api/v1/memberships/",
    "GET /api/v1/templates/",
];

/// `GET /api/v1/templates/{id}/analytics/` for `GET` and `/api/v1/templates/7/analytics/`.
pub(crate) fn monolith_route(method: &reqwest::Method, path: &str) -> Cow<'static, str> {
    if *method == reqwest::Method::GET
        && let Some(route) = LITERAL_GET_ROUTES.iter().find(|route| route.strip_prefix("GET ") == Some(path))
    {
        return Cow::Borrowed(route);
    }
    let route: Vec<&str> = path
        .split('/')
        .map(
            |segment| {
                if segment.is_empty() || MONOLITH_SEGMENTS.contains(&segment) { segment } else { "{id}" }
            },
        )
        .collect();
    Cow::Owned(format!("{method} {}", route.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monolith_routes_are_templates_whatever_the_ids() {
        assert_eq!(
            monolith_route(&reqwest::Method::GET, "/api/v1/templates/7/analytics/"),
            "GET /api/v1/templates/{id}/analytics/"
        );
        assert_eq!(
            monolith_route(&reqwest::Method::PATCH, "/api/v1/templates/7/draft/blocks/a%20b/"),
            "PATCH /api/v1/templates/{id}/draft/blocks/{id}/"
        );
        assert_eq!(monolith_route(&reqwest::Method::GET, "/api/v1/me/"), "GET /api/v1/me/");
        assert_eq!(monolith_route(&reqwest::Method::GET, "/api/v1/memberships/"), "GET /api/v1/memberships/");
    }

    /// The labels answered from [`LITERAL_GET_ROUTES`] are the ones the segments would build.
    #[test]
    fn literal_routes_are_labelled_as_their_segments_would_label_them() {
        for route in LITERAL_GET_ROUTES {
            let path = route.strip_prefix("GET ").unwrap_or_default();
            let segments: Vec<&str> = path.split('/').collect();
            for segment in &segments {
                assert!(segment.is_empty() || MONOLITH_SEGMENTS.contains(segment), "{route}: {segment}");
            }
            let built = segments.join("/");
            assert_eq!(format!("GET {built}"), *route);
            assert!(matches!(monolith_route(&reqwest::Method::GET, path), Cow::Borrowed(_)), "{route}");
        }
    }
}
