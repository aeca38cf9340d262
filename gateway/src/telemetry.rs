//! OpenTelemetry traces (`[tracing]`), exported over OTLP/gRPC when configured, off by default.
//!
//! Each gateway owns its tracer provider: a batch processor on a thread of its own, exporting
//! through opentelemetry-otlp's tonic client. Spans are started explicitly and carried with the
//! request (the async-graphql request data, then the [`Caller`](banyan_sources::Caller)'s
//! [`TraceContext`]), not through the `tracing` crate's subscriber: a process has one global
//! subscriber (the logs), while tests run many gateways in one process, each with its own
//! collector.
//!
//! The spans of one HTTP GraphQL request, all in the client's trace when it sent a valid
//! `traceparent` (else in a new one, sampled by `tracing.sampling_ratio`):
//!
//! - the operation (server kind), named `{type} {name}`, with `graphql.operation.type`,
//!   `graphql.operation.name` and, with `tracing.include_document`, `graphql.document`;
//! - with `tracing.field_spans`, one per resolved field, under its parent field;
//! - one per DataLoader batch (`batch <loader>`, from `banyan_sources::loaders`);
//! - one per attempt of each backend call (client kind, from `banyan_sources::resilience`),
//!   whose id is the parent in the `traceparent` the backend receives.
//!
//! A collector that is down never holds or fails a request: spans wait in a bounded queue, the
//! export times out (`tracing.export_timeout`), and the failure is logged at most once a minute.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Value, Variables};
use banyan_sources::TraceContext;
use http::HeaderMap;
use opentelemetry::context::FutureExt as _;
use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};

use crate::config::TracingConfig;

/// How long a shutdown waits for the last spans to reach the collector.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning per this long about a collector that cannot be reached.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Spans waiting for export; past it, new ones are dropped (and counted in the warning).
const MAX_QUEUED_SPANS: usize = 4096;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
#[error("building the OTLP exporter for {endpoint}: {source}")]
pub struct TelemetryError {
    endpoint: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

/// One gateway's tracing: off, or its tracer provider and tracer. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Telemetry(Option<Arc<Inner>>);

struct Inner {
    provider: SdkTracerProvider,
    tracer: Arc<BoxedTracer>,
    include_document: bool,
    field_spans: bool,
}

impl Telemetry {
    /// Tracing as `config` says: off unless `tracing.enabled`. Must run within the Tokio runtime
    /// that serves (the exporter's connection lives there); connects lazily, so a collector that
    /// is down does not stop start-up.
    pub(crate) fn start(config: &TracingConfig) -> Result<Self, TelemetryError> {
        if !config.enabled {
            return Ok(Self(None));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_timeout(config.export_timeout)
            .build()
            .map_err(|source| TelemetryError { endpoint: config.endpoint.clone(), source })?;
        let exporter = LoggedExporter {
            inner: exporter,
            endpoint: config.endpoint.clone(),
            failures: FailureLog::default(),
        };
        let batches = BatchConfigBuilder::default().with_max_queue_size(MAX_QUEUED_SPANS).build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batches).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio))))
            .with_resource(
                opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build(),
            )
            .build();
        let tracer = Arc::new(BoxedTracer::new(Box::new(provider.tracer("banyan"))));
        tracing::info!(endpoint = %config.endpoint, sampling_ratio = config.sampling_ratio, "exporting traces over OTLP");
        Ok(Self(Some(Arc::new(Inner {
            provider,
            tracer,
            include_document: config.include_document,
            field_spans: config.field_spans,
        }))))
    }

    /// The schema extension that names the operation's span and, with `tracing.field_spans`,
    /// opens one per field; `None` when tracing is off.
    pub(crate) fn extension(&self) -> Option<OperationTracing> {
        let inner = self.0.as_ref()?;
        Some(OperationTracing {
            tracer: inner.tracer.clone(),
            include_document: inner.include_document,
            field_spans: inner.field_spans,
        })
    }

    /// Starts the span of one GraphQL operation served over HTTP: a child of the client's
    /// `traceparent` when valid, else the root of a new trace. `None` when tracing is off.
    pub(crate) fn operation(&self, headers: &HeaderMap) -> Option<OperationSpan> {
        let inner = self.0.as_ref()?;
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let span = inner
            .tracer
            .span_builder("graphql")
            .with_kind(SpanKind::Server)
            .start_with_context(inner.tracer.as_ref(), &parent);
        let cx = parent.with_span(span);
        // The request's log lines carry the trace id, also when the gateway started the trace.
        let trace_id = cx.span().span_context().trace_id();
        tracing::Span::current().record("trace_id", tracing::field::display(trace_id));
        Some(OperationSpan { tracer: inner.tracer.clone(), cx })
    }

    /// Flushes what is queued and stops exporting (at most [`SHUTDOWN_TIMEOUT`]). The blocking
    /// part runs off the async workers, so the exporter's connection keeps being driven.
    pub(crate) async fn shutdown(&self) {
        let Some(inner) = &self.0 else { return };
        let provider = inner.provider.clone();
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT));
        match tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1), stopped).await {
            Ok(Ok(Ok(()))) => tracing::info!("traces flushed to the collector"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "flushing traces at shutdown failed"),
            Ok(Err(error)) => tracing::warn!(%error, "flushing traces at shutdown failed"),
            Err(_) => tracing::warn!("flushing traces at shutdown timed out"),
        }
    }

    /// Stops exporting without waiting (the gateway was dropped, not shut down): what is queued
    /// is flushed on a blocking thread, if a runtime is there to run it.
    pub(crate) fn stop_in_background(&self) {
        let Some(inner) = &self.0 else { return };
        let provider = inner.provider.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT));
        }
    }
}

/// The span of one GraphQL operation; ended when dropped.
pub(crate) struct OperationSpan {
    tracer: Arc<BoxedTracer>,
    cx: Context,
}

/// What the schema extension reads from the request's data: the operation's span.
#[derive(Clone)]
pub(crate) struct OperationContext(Context);

impl OperationSpan {
    /// Where the request's backend spans hang (for its [`Caller`](banyan_sources::Caller)).
    pub(crate) fn trace_context(&self) -> TraceContext {
        TraceContext::new(self.tracer.clone(), self.cx.clone())
    }

    /// For the request's data (see [`OperationTracing`]).
    pub(crate) fn request_data(&self) -> OperationContext {
        OperationContext(self.cx.clone())
    }

    /// Records how the operation ended: its errors' count, and an error status when it has any.
    pub(crate) fn finish(self, response: &Response) {
        let span = self.cx.span();
        if !response.errors.is_empty() {
            span.set_attribute(KeyValue::new("banyan.graphql.errors", response.errors.len() as i64));
            let code =
                response.errors.first().and_then(|error| error.extensions.as_ref()?.get("code").cloned());
            let code = match code {
                Some(Value::String(code)) => code,
                _ => "GRAPHQL_ERROR".to_owned(),
            };
            span.set_status(Status::error(code));
        }
    }
}

impl Drop for OperationSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The schema extension: names the operation's span after parsing (OTel's GraphQL conventions)
/// and, with `tracing.field_spans`, opens a span per resolved field.
pub(crate) struct OperationTracing {
    tracer: Arc<BoxedTracer>,
    include_document: bool,
    field_spans: bool,
}

impl ExtensionFactory for OperationTracing {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationTracingExtension {
            tracer: self.tracer.clone(),
            include_document: self.include_document,
            field_spans: self.field_spans,
            requested: Mutex::new(None),
        })
    }
}

struct OperationTracingExtension {
    tracer: Arc<BoxedTracer>,
    include_document: bool,
    field_spans: bool,
    /// The operation name the request asked for.
    requested: Mutex<Option<String>>,
}

fn type_name(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationTracingExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = next.run(ctx, request).await?;
        *self.requested.lock().unwrap_or_else(PoisonError::into_inner) = request.operation_name.clone();
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
        if let Some(OperationContext(cx)) = ctx.data_opt::<OperationContext>() {
            let span = cx.span();
            let requested = self.requested.lock().unwrap_or_else(PoisonError::into_inner).clone();
            if let Some((name, ty)) = crate::metrics::chosen_operation(&document, requested.as_deref()) {
                let ty = type_name(ty);
                span.set_attribute(KeyValue::new("graphql.operation.type", ty));
                match name {
                    Some(name) => {
                        span.update_name(format!("{ty} {name}"));
                        span.set_attribute(KeyValue::new("graphql.operation.name", name));
                    }
                    None => span.update_name(ty),
                }
            }
            if self.include_document {
                span.set_attribute(KeyValue::new("graphql.document", query.to_owned()));
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
        match ctx.data_opt::<OperationContext>() {
            // Field spans find their parent as the current context.
            Some(OperationContext(cx)) if self.field_spans => {
                next.run(ctx, operation_name).with_context(cx.clone()).await
            }
            _ => next.run(ctx, operation_name).await,
        }
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if !self.field_spans || ctx.data_opt::<OperationContext>().is_none() {
            return next.run(ctx, info).await;
        }
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(format!("{}.{}", info.parent_type, info.name))
            .with_attributes([
                KeyValue::new("graphql.field.name", info.name.to_owned()),
                KeyValue::new("graphql.field.parent_type", info.parent_type.to_owned()),
                KeyValue::new("graphql.field.path", info.path_node.to_string()),
            ])
            .start_with_context(self.tracer.as_ref(), &parent);
        let cx = parent.with_span(span);
        let result = next.run(ctx, info).with_context(cx.clone()).await;
        if let Err(error) = &result {
            cx.span().set_status(Status::error(error.message.clone()));
        }
        cx.span().end();
        result
    }
}

/// The OTLP exporter, with its failures logged: a collector that is down is a warning at most
/// once per [`WARNING_INTERVAL`], saying how many exports failed since the last one.
#[derive(Debug)]
struct LoggedExporter {
    inner: opentelemetry_otlp::SpanExporter,
    endpoint: String,
    failures: FailureLog,
}

#[derive(Debug, Default)]
struct FailureLog {
    /// Exports failed, and spans lost, since the last warning.
    exports: AtomicU64,
    spans: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl FailureLog {
    fn record(&self, endpoint: &str, spans: usize, error: &dyn std::fmt::Display) {
        self.exports.fetch_add(1, Ordering::Relaxed);
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        let mut last = self.last_warning.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < WARNING_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let exports = self.exports.swap(0, Ordering::Relaxed);
        let spans = self.spans.swap(0, Ordering::Relaxed);
        tracing::warn!(
            endpoint,
            failed_exports = exports,
            lost_spans = spans,
            %error,
            "cannot export traces to the collector; requests are served as usual (next warning in a minute at most)"
        );
    }
}

impl SpanExporter for LoggedExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            self.failures.record(&self.endpoint, spans, error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collector_that_stays_down_is_one_warning_per_interval_counting_what_was_lost() {
        let log = FailureLog::default();
        log.record("http://collector", 3, &"refused");
        // Logged at once: nothing is pending.
        assert_eq!(log.exports.load(Ordering::Relaxed), 0);
        log.record("http://collector", 4, &"refused");
        log.record("http://collector", 5, &"refused");
        // Within the interval: counted for the next warning, not logged.
        assert_eq!(log.exports.load(Ordering::Relaxed), 2);
        assert_eq!(log.spans.load(Ordering::Relaxed), 9);
    }

    #[test]
    fn off_builds_no_extension_and_no_span() {
        let telemetry = Telemetry::start(&TracingConfig::default()).expect("off always starts");
        assert!(telemetry.extension().is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert!(telemetry.operation(&headers).is_none());
    }
}
