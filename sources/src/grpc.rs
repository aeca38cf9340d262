//! What the two gRPC clients share: channels, deadlines, metadata, and timestamp conversion.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use crate::error::{Backend, SourceError, from_status};
use crate::identity::{Caller, REQUEST_ID_HEADER, USER_ID_METADATA, forwardable};
use crate::metrics::BackendMetrics;
use crate::resilience::{Attempt, CallKind, Resilience, ResilienceOptions};
use crate::service_identity::ServiceIdentityKeys;
use crate::stream_pool::StreamPool;
use crate::trace::CallSpan;
use opentelemetry::KeyValue;

/// How to reach one gRPC service.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// The service's URL, e.g. `http://127.0.0.1:50051`.
    pub url: String,
    /// Deadline for one unary call (and for a stream to start).
    pub timeout: Duration,
    /// Deadline for opening a connection.
    pub connect_timeout: Duration,
    /// Most streams (subscriptions) one stream connection carries before another opens; at or
    /// below the server's (or its proxy's) `max_concurrent_streams`. See [`crate::stream_pool`].
    pub max_streams_per_connection: usize,
    /// Retries, breaker, concurrency limit and deduplication.
    pub resilience: ResilienceOptions,
}

/// What a service's connections share: where, and how to connect.
fn endpoint(backend: Backend, options: &GrpcOptions) -> Result<Endpoint, SourceError> {
    let endpoint = Endpoint::from_shared(options.url.clone()).map_err(|e| SourceError::Unavailable {
        backend,
        detail: format!("invalid URL {:?}: {e}", options.url),
    })?;
    Ok(endpoint
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true))
}

/// One lazily connected HTTP/2 channel per service for unary calls, shared by every request.
pub(crate) fn channel(backend: Backend, options: &GrpcOptions) -> Result<Channel, SourceError> {
    Ok(endpoint(backend, options)?.connect_lazy())
}

/// The service's connections for long-lived streams, apart from the unary channel, so open
/// subscriptions never take the streams unary calls need.
pub(crate) fn stream_pool(backend: Backend, options: &GrpcOptions) -> Result<StreamPool, SourceError> {
    Ok(StreamPool::new(endpoint(backend, options)?, options.max_streams_per_connection))
}

/// Wraps a message with the caller's identity, the request id and the deadline.
pub(crate) fn request<T>(
    message: T,
    caller: &Caller,
    identity: Option<&ServiceIdentityKeys>,
    timeout: Duration,
) -> tonic::Request<T> {
    let mut request = streaming_request(message, caller, identity);
    request.set_timeout(timeout);
    request
}

/// Wraps a message with the caller's identity and the request id, but no deadline: for a stream,
/// which lives as long as its client wants. The forwarded headers go first, so nothing they hold
/// can stand in for the identity set after them (they never hold an identity header anyway).
/// Without keys the user id goes unsigned, which a verifying service refuses.
pub(crate) fn streaming_request<T>(
    message: T,
    caller: &Caller,
    identity: Option<&ServiceIdentityKeys>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    for (name, value) in forwardable(&caller.forwarded_headers) {
        if let (Ok(key), Ok(value)) =
            (name.parse::<MetadataKey<Ascii>>(), value.parse::<MetadataValue<Ascii>>())
        {
            metadata.append(key, value);
        }
    }
    // With tracing on, the attempt being built is the current span: it replaces the client's
    // `traceparent` as the service's parent.
    if caller.trace.is_on()
        && let Some(traceparent) = crate::trace::current_traceparent().and_then(|value| value.parse().ok())
    {
        metadata.insert(crate::trace::TRACEPARENT, traceparent);
    }
    match identity {
        Some(keys) => keys.sign_metadata(metadata, caller.user_id.0, caller.request_id.as_deref()),
        None => {
            metadata.insert(USER_ID_METADATA, MetadataValue::from(caller.user_id.0));
            if let Some(id) = caller.request_id.as_deref().and_then(|id| id.parse().ok()) {
                metadata.insert(REQUEST_ID_HEADER, id);
            }
        }
    }
    request
}

/// A read RPC: retryable, and shareable by callers with the same identity and forwarded
/// headers asking the same thing (the key holds the encoded request).
pub(crate) fn read_call<M: prost::Message>(
    resilience: &Resilience,
    rpc: &'static str,
    message: &M,
    caller: &Caller,
) -> CallKind {
    let dedupe_key = resilience.dedupes_reads().then(|| {
        let forwarded: Vec<String> =
            forwardable(&caller.forwarded_headers).map(|(n, v)| format!("{n}:{v}")).collect();
        format!("{rpc}|{}|{}|{}", hex::encode(message.encode_to_vec()), caller.user_id.0, forwarded.join(","))
    });
    CallKind { idempotent: true, dedupe_key }
}

/// A write RPC: never retried, never shared.
pub(crate) fn write_call() -> CallKind {
    CallKind { idempotent: false, dedupe_key: None }
}

/// Runs one unary call through the backend's resilience: `call(timeout)` starts one attempt with
/// that deadline (the smaller of `timeout` and what remains of the request). The `grpc-timeout`
/// header tells the server; the client gives up too, even when the server ignores it. Only
/// `UNAVAILABLE` (a reset or refused connection included) is worth a retry.
pub(crate) async fn call<T, F, Fut>(
    metrics: &BackendMetrics,
    resilience: &Resilience,
    caller: &Caller,
    rpc: &'static str,
    timeout: Duration,
    kind: CallKind,
    mut call: F,
) -> Result<T, SourceError>
where
    T: Clone + Send + Sync + 'static,
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let backend = resilience.backend();
    let span = caller.trace.is_on().then(|| call_span(caller, backend, rpc));
    resilience
        .call(&caller.budget, timeout, kind, span, |timeout| {
            let attempt = call(timeout);
            // Each attempt is one backend call, for the metrics too.
            let timer = metrics.start_call(backend, rpc);
            async move {
                let span = tracing::debug_span!("grpc", backend = backend.name(), rpc);
                let attempt = match tokio::time::timeout(timeout, attempt.instrument(span)).await {
                    Ok(Ok(response)) => Attempt::judged(Ok(response.into_inner()))
                        .with_status(Some(grpc_status(tonic::Code::Ok))),
                    Ok(Err(status)) => {
                        let error = from_status(backend, timeout, &status);
                        let retryable = status.code() == tonic::Code::Unavailable
                            && matches!(error, SourceError::Unavailable { .. });
                        Attempt {
                            failed: error.failed_backend().is_some(),
                            retryable,
                            result: Err(error),
                            status: Some(grpc_status(status.code())),
                        }
                    }
                    Err(_) => Attempt::judged(Err(SourceError::Timeout { backend, timeout })),
                };
                timer.finish(&attempt.result);
                attempt
            }
        })
        .await
}

/// The fully qualified gRPC service of `backend`, as `rpc.service` names it.
fn service_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Events => "banyan.events.v1.EventService",
        Backend::Drafts => "banyan.drafts.v1.DraftService",
        Backend::Monolith => "monolith",
    }
}

/// How each attempt of `rpc` (`Service/Method`) shows in the trace: OTel's RPC client
/// conventions, the span named `package.Service/Method`.
pub(crate) fn call_span(caller: &Caller, backend: Backend, rpc: &'static str) -> CallSpan {
    let service = service_name(backend);
    let method = rpc.rsplit_once('/').map_or(rpc, |(_, method)| method);
    CallSpan {
        parent: caller.trace.clone(),
        name: format!("{service}/{method}"),
        attributes: vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service),
            KeyValue::new("rpc.method", method),
            KeyValue::new("banyan.backend", backend.name()),
        ],
    }
}

/// `rpc.grpc.status_code`: the status's number.
pub(crate) fn grpc_status(code: tonic::Code) -> KeyValue {
    KeyValue::new("rpc.grpc.status_code", code as i64)
}

/// Runs one call under the deadline, outside the resilience layer: for opening a stream, which
/// is not a read to retry or share.
pub(crate) async fn call_once<T>(
    metrics: &BackendMetrics,
    backend: Backend,
    rpc: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, SourceError> {
    let span = tracing::debug_span!("grpc", backend = backend.name(), rpc);
    let timer = metrics.start_call(backend, rpc);
    let result = match tokio::time::timeout(timeout, call.instrument(span)).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(from_status(backend, timeout, &status)),
        Err(_) => Err(SourceError::Timeout { backend, timeout }),
    };
    timer.finish(&result);
    result
}

pub(crate) fn to_timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        // Always in 0..1e9, so it fits.
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn from_timestamp(
    backend: Backend,
    timestamp: Option<prost_types::Timestamp>,
) -> Result<DateTime<Utc>, SourceError> {
    let timestamp = timestamp
        .ok_or_else(|| SourceError::BadResponse { backend, detail: "a timestamp is missing".to_owned() })?;
    let nanos = u32::try_from(timestamp.nanos).ok();
    nanos.and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos)).ok_or_else(|| {
        SourceError::BadResponse { backend, detail: format!("timestamp out of range: {timestamp:?}") }
    })
}

pub(crate) fn parse_template_id(
    backend: Backend,
    id: &str,
) -> Result<crate::domain::TemplateId, SourceError> {
    id.parse().map(crate::domain::TemplateId).map_err(|_| SourceError::BadResponse {
        backend,
        detail: format!("template id {id:?} is not a number"),
    })
}
