//! OpenTelemetry spans on the backends' side of a request, and the W3C `traceparent` each backend
//! call carries.
//!
//! The gateway starts a request's operation span with its own tracer and hands it down in the
//! [`Caller`](crate::Caller) as a [`TraceContext`]; here a DataLoader batch opens a child span
//! ([`crate::loaders`]) and each attempt of a backend call one more
//! ([`crate::resilience::Resilience::call`]), whose id is the parent in the `traceparent` sent
//! with that attempt (REST header or gRPC metadata), so the backend's spans join the same trace.
//!
//! With tracing off the context is [`TraceContext::off`]: no span is built, no attribute is
//! formatted, and the client's own `traceparent` (when `backends.propagate_headers` lets it
//! through) goes to the backends unchanged, as before tracing existed.
//!
//! Spans are carried explicitly, not through the `tracing` crate's subscriber: a process may run
//! several gateways (the tests do), each with its own exporter, while the process has one global
//! subscriber for its logs.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

/// The W3C Trace Context header (and gRPC metadata key).
pub const TRACEPARENT: &str = "traceparent";

/// Where a request's spans hang: the tracer of the gateway serving it and the span new spans
/// are children of. Cheap to clone; [`Default`] is off.
#[derive(Clone, Default)]
pub struct TraceContext(Option<Arc<Traced>>);

struct Traced {
    tracer: Arc<BoxedTracer>,
    parent: Context,
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("TraceContext(off)"),
            Some(traced) => write!(f, "TraceContext({})", traced.parent.span().span_context().trace_id()),
        }
    }
}

/// Every context compares equal, as every [`CallBudget`](crate::CallBudget) does: it says where
/// a request's spans go, not who the caller is.
impl PartialEq for TraceContext {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TraceContext {}

impl TraceContext {
    /// No tracing: nothing is recorded, and the client's `traceparent` is forwarded as is.
    pub fn off() -> Self {
        Self(None)
    }

    /// New spans are started by `tracer` as children of the span in `parent`.
    pub fn new(tracer: Arc<BoxedTracer>, parent: Context) -> Self {
        Self(Some(Arc::new(Traced { tracer, parent })))
    }

    /// Whether spans are recorded.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Starts a child span, ended when the returned [`ActiveSpan`] drops; `None` when off.
    /// `attributes` is only called when on, so nothing is formatted otherwise. The parent is
    /// the current OpenTelemetry context's span when there is one (the field being resolved,
    /// with the gateway's `tracing.field_spans`), else this context's.
    pub fn start(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<ActiveSpan> {
        let traced = self.0.as_ref()?;
        let current = Context::current();
        let parent = if current.has_active_span() { &current } else { &traced.parent };
        let span = traced
            .tracer
            .span_builder(name())
            .with_kind(kind)
            .with_attributes(attributes())
            .start_with_context(traced.tracer.as_ref(), parent);
        Some(ActiveSpan { tracer: traced.tracer.clone(), cx: parent.with_span(span) })
    }
}

/// A started span; ended when dropped (so a call cancelled by its deadline still ends it).
pub struct ActiveSpan {
    tracer: Arc<BoxedTracer>,
    cx: Context,
}

impl ActiveSpan {
    /// A context whose new spans are children of this one.
    pub fn context(&self) -> TraceContext {
        TraceContext::new(self.tracer.clone(), self.cx.clone())
    }

    /// Makes this span the current OpenTelemetry context on this thread until the guard drops:
    /// hold it only around synchronous code (it must not cross an `.await`).
    pub(crate) fn current(&self) -> opentelemetry::ContextGuard {
        self.cx.clone().attach()
    }

    /// Adds an attribute.
    pub fn set_attribute(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Marks the span failed with the error's stable code (`error.type`, as OTel's conventions
    /// name it), never with a backend's message.
    pub fn fail(&self, code: &'static str) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", code));
        span.set_status(Status::error(code));
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// The W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) naming the current OpenTelemetry
/// context's span as the parent (the attempt a client is building, see
/// [`ActiveSpan::current`]), or `None` when no span is current: tracing is off, and the client's
/// own header, if forwarded, goes on unchanged.
pub(crate) fn current_traceparent() -> Option<String> {
    Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| {
            format!("00-{}-{}-{:02x}", context.trace_id(), context.span_id(), context.trace_flags().to_u8())
        })
    })
}

/// How one backend call is described on its spans (one span per attempt): the name and the
/// attributes of OTel's HTTP or RPC client conventions. Built only when tracing is on.
pub(crate) struct CallSpan {
    /// The parent: the batch or the operation the call is made for.
    pub(crate) parent: TraceContext,
    /// `GET /api/v1/templates/` or `banyan.events.v1.EventService/GetTemplateStats`.
    pub(crate) name: String,
    /// `http.request.method`, `url.template` or `rpc.system`, `rpc.service`, `rpc.method`.
    pub(crate) attributes: Vec<KeyValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_starts_nothing_and_never_builds_attributes() {
        let span = TraceContext::off().start(
            || unreachable!("no name is formatted when off"),
            SpanKind::Client,
            || unreachable!("no attribute is formatted when off"),
        );
        assert!(span.is_none());
    }
}
