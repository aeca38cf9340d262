//! Per-backend resilience around every backend call: the request's deadline passed down, a
//! concurrency limit, a circuit breaker, retries of idempotent reads under a retry budget, and
//! (opt-in) deduplication of identical in-flight reads. The clients wrap each call in
//! [`Resilience::call`]; nothing here knows REST or gRPC, the clients say what failed and whether
//! a retry may help ([`Attempt`]).
//!
//! Order per call: singleflight (a follower makes no call of its own), then per attempt: the
//! request deadline, the breaker, the concurrency limit, the call, then the breaker learns the
//! outcome and a retry is considered (idempotent, retryable, budget left, time left).
//!
//! With tracing on, each attempt is a client span of its own ([`crate::trace`]), numbered
//! (`banyan.retry`: 0 for the first attempt), so retries show in the trace; the attempt is made
//! with that span as the current OpenTelemetry context, which is where the clients read the
//! `traceparent` they send.

mod breaker;
mod retry_budget;
mod singleflight;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

pub use breaker::{BreakerOptions, BreakerState};
pub use retry_budget::RetryOptions;

use crate::budget::CallBudget;
use crate::error::{Backend, SourceError};
use crate::trace::CallSpan;

/// How one backend is protected. `Default` is what an unconfigured backend gets.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceOptions {
    /// Retries of idempotent reads.
    pub retry: RetryOptions,
    /// The circuit breaker.
    pub breaker: BreakerOptions,
    /// The most calls in flight to this backend at once, from this gateway; 0 is no limit.
    pub max_concurrent_calls: usize,
    /// How long a call waits for a free slot past the limit before it fails with
    /// `BACKEND_OVERLOADED`.
    pub queue_timeout: Duration,
    /// Whether identical in-flight reads (same call, same caller) share one backend call.
    pub dedupe_reads: bool,
}

impl Default for ResilienceOptions {
    fn default() -> Self {
        Self {
            retry: RetryOptions::default(),
            breaker: BreakerOptions::default(),
            max_concurrent_calls: 0,
            queue_timeout: Duration::from_millis(100),
            dedupe_reads: false,
        }
    }
}

/// What one attempt came to, as the client judges it.
pub(crate) struct Attempt<T> {
    /// The answer or the error, handed back as is when no retry follows.
    pub(crate) result: Result<T, SourceError>,
    /// Whether the backend failed (counts against the breaker).
    pub(crate) failed: bool,
    /// Whether another attempt may succeed (unavailable, reset, 502/503/504, gRPC `UNAVAILABLE`).
    pub(crate) retryable: bool,
    /// The answer's status for the attempt's span (`http.response.status_code`,
    /// `rpc.grpc.status_code`), when the client knows one.
    pub(crate) status: Option<opentelemetry::KeyValue>,
}

impl<T> Attempt<T> {
    /// An attempt judged by its error alone: a backend failure fails, and only an unavailable
    /// backend is worth retrying.
    pub(crate) fn judged(result: Result<T, SourceError>) -> Self {
        let (failed, retryable) = match &result {
            Ok(_) => (false, false),
            Err(error) => {
                (error.failed_backend().is_some(), matches!(error, SourceError::Unavailable { .. }))
            }
        };
        Self { result, failed, retryable, status: None }
    }

    /// The same attempt, with the answer's status for its span.
    pub(crate) fn with_status(mut self, status: Option<opentelemetry::KeyValue>) -> Self {
        self.status = status;
        self
    }
}

/// What a call is: whether it may be retried or shared, and its key when shared.
pub(crate) struct CallKind {
    /// A read that changes nothing (GETs, read RPCs): retryable and shareable.
    pub(crate) idempotent: bool,
    /// The identity of the call for deduplication: the method, its arguments and everything about
    /// the caller that can change the answer. `None` never shares.
    pub(crate) dedupe_key: Option<String>,
}

/// The resilience state of one backend, shared by every request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Resilience(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    backend: Backend,
    options: ResilienceOptions,
    breaker: breaker::Breaker,
    retry_budget: retry_budget::RetryBudget,
    slots: Option<Semaphore>,
    singleflight: singleflight::Singleflight,
    calls: AtomicU64,
    retries: AtomicU64,
    retries_refused: AtomicU64,
    rejected_by_limit: AtomicU64,
    shed_by_breaker: AtomicU64,
    deduplicated: AtomicU64,
    in_flight: AtomicI64,
    jitter: AtomicU64,
}

/// A point-in-time view of one backend's resilience counters, for `/metrics` and `/readyz`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSnapshot {
    /// The backend.
    pub backend: Backend,
    /// The breaker's state now.
    pub breaker: BreakerState,
    /// Attempts made to the backend (first attempts and retries).
    pub calls_total: u64,
    /// Retries made.
    pub retries_total: u64,
    /// Retries not made because the retry budget was spent.
    pub retries_refused_total: u64,
    /// Calls failed with `BACKEND_OVERLOADED` by the concurrency limit.
    pub rejected_by_limit_total: u64,
    /// Calls failed at once by an open breaker (no call made).
    pub shed_by_breaker_total: u64,
    /// Reads answered by another caller's identical in-flight call.
    pub deduplicated_total: u64,
    /// Attempts in flight now.
    pub in_flight: i64,
}

impl Resilience {
    /// The resilience state of `backend`, configured by `options`.
    pub fn new(backend: Backend, options: ResilienceOptions) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
        Self(Arc::new(Inner {
            backend,
            breaker: breaker::Breaker::new(backend, options.breaker.clone()),
            retry_budget: retry_budget::RetryBudget::new(&options.retry),
            slots: (options.max_concurrent_calls > 0).then(|| Semaphore::new(options.max_concurrent_calls)),
            singleflight: singleflight::Singleflight::default(),
            options,
            calls: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            retries_refused: AtomicU64::new(0),
            rejected_by_limit: AtomicU64::new(0),
            shed_by_breaker: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            jitter: AtomicU64::new(seed),
        }))
    }

    /// The counters and the breaker's state now.
    pub fn snapshot(&self) -> ResilienceSnapshot {
        let inner = &self.0;
        ResilienceSnapshot {
            backend: inner.backend,
            breaker: inner.breaker.state(),
            calls_total: inner.calls.load(Ordering::Relaxed),
            retries_total: inner.retries.load(Ordering::Relaxed),
            retries_refused_total: inner.retries_refused.load(Ordering::Relaxed),
            rejected_by_limit_total: inner.rejected_by_limit.load(Ordering::Relaxed),
            shed_by_breaker_total: inner.shed_by_breaker.load(Ordering::Relaxed),
            deduplicated_total: inner.deduplicated.load(Ordering::Relaxed),
            in_flight: inner.in_flight.load(Ordering::Relaxed),
        }
    }

    /// The backend this protects.
    pub fn backend(&self) -> Backend {
        self.0.backend
    }

    /// Whether identical reads share one call (`dedupe_reads`): callers build a read's
    /// deduplication key only then, as it costs a formatted copy of the request.
    pub(crate) fn dedupes_reads(&self) -> bool {
        self.0.options.dedupe_reads
    }

    /// Whether the breaker is open now (shedding every call).
    pub fn breaker_open(&self) -> bool {
        self.0.breaker.state() == BreakerState::Open
    }

    /// Runs one logical call: `attempt(timeout)` makes one attempt within `timeout` (the smaller
    /// of the per-call deadline and what remains of the request); see the module docs for the
    /// order of the checks. The call is first charged to the request's `budget` of backend calls
    /// (retries are not: the retry budget bounds them), so every unary call of every backend is
    /// counted here, in one place. `span` (`None` when tracing is off) describes each attempt's
    /// span; `attempt` is called with that span current (see the module's documentation).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        budget: &CallBudget,
        per_call_timeout: Duration,
        kind: CallKind,
        span: Option<CallSpan>,
        attempt: F,
    ) -> Result<T, SourceError>
    where
        T: Clone + Send + Sync + 'static,
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        budget.charge()?;
        // A call the request's execution makes itself holds its level open until it ends.
        let _level = crate::batch::direct_call();
        // Boxed: an attempt's future is kilobytes (a gRPC call's about 9 KiB, the monolith's 3.5),
        // and every future that awaits this one held it inline, some of them twice (the
        // singleflight's argument and its awaitee). A backend call's chain of futures was 11 to
        // 28 KiB, copied whole at each level as it was made and again as its batch's task was
        // spawned: a quarter of what a page copied (`memmove` was a tenth of its CPU).
        let guarded = Box::pin(self.guarded(budget, per_call_timeout, kind.idempotent, span, attempt));
        match kind.dedupe_key.filter(|_| kind.idempotent && self.0.options.dedupe_reads) {
            Some(key) => {
                let (result, shared) = self.0.singleflight.run(key, guarded).await;
                if shared {
                    self.0.deduplicated.fetch_add(1, Ordering::Relaxed);
                }
                result
            }
            None => guarded.await,
        }
    }

    async fn guarded<T, F, Fut>(
        &self,
        budget: &CallBudget,
        per_call_timeout: Duration,
        idempotent: bool,
        span: Option<CallSpan>,
        mut attempt: F,
    ) -> Result<T, SourceError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let inner = &self.0;
        let backend = inner.backend;
        let mut retries_made = 0;
        loop {
            let remaining = budget.remaining();
            if remaining.is_some_and(|r| r.is_zero()) {
                return Err(SourceError::RequestTimeout);
            }
            if !inner.breaker.admit() {
                inner.shed_by_breaker.fetch_add(1, Ordering::Relaxed);
                return Err(SourceError::Unavailable {
                    backend,
                    detail: "the circuit breaker is open".to_owned(),
                });
            }
            let _permit = match &inner.slots {
                None => None,
                Some(slots) => {
                    let wait =
                        remaining.map_or(inner.options.queue_timeout, |r| r.min(inner.options.queue_timeout));
                    match tokio::time::timeout(wait, slots.acquire()).await {
                        Ok(Ok(permit)) => Some(permit),
                        _ => {
                            inner.breaker.release_probe();
                            inner.rejected_by_limit.fetch_add(1, Ordering::Relaxed);
                            return Err(SourceError::Overloaded { backend });
                        }
                    }
                }
            };
            let timeout = remaining.map_or(per_call_timeout, |r| r.min(per_call_timeout));
            inner.calls.fetch_add(1, Ordering::Relaxed);
            if retries_made == 0 {
                inner.retry_budget.record_call();
            }
            inner.in_flight.fetch_add(1, Ordering::Relaxed);
            let attempt_span = span.as_ref().and_then(|call| {
                call.parent.start(
                    || call.name.clone().into(),
                    opentelemetry::trace::SpanKind::Client,
                    || {
                        let mut attributes = call.attributes.clone();
                        attributes
                            .push(opentelemetry::KeyValue::new("banyan.retry", i64::from(retries_made)));
                        attributes
                    },
                )
            });
            let future = match &attempt_span {
                // Current only while the attempt is built: the clients read its `traceparent` then.
                Some(active) => {
                    let _current = active.current();
                    attempt(timeout)
                }
                None => attempt(timeout),
            };
            let outcome = InFlight(&inner.in_flight).wrap(future).await;
            if let Some(active) = &attempt_span {
                record_outcome(active, &outcome);
            }
            drop(attempt_span);
            inner.breaker.record(outcome.failed);
            if !outcome.failed
                || !outcome.retryable
                || !idempotent
                || retries_made >= inner.options.retry.max_retries
            {
                return outcome.result;
            }
            let backoff = self.backoff(retries_made);
            if budget.remaining().is_some_and(|r| r <= backoff) {
                return outcome.result;
            }
            if !inner.retry_budget.try_retry() {
                inner.retries_refused.fetch_add(1, Ordering::Relaxed);
                return outcome.result;
            }
            retries_made += 1;
            inner.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(backend = backend.name(), retry = retries_made, ?backoff, "retrying a read");
            tokio::time::sleep(backoff).await;
        }
    }

    /// "Full jitter" exponential backoff: uniform in `[0, min(max, initial × 2^n)]`.
    fn backoff(&self, retries_made: u32) -> Duration {
        let retry = &self.0.options.retry;
        let ceiling = retry.initial_backoff.saturating_mul(1 << retries_made.min(16)).min(retry.max_backoff);
        let random = splitmix(self.0.jitter.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }
}

/// What an attempt came to, on its span: the answer's status, and the error's code when it
/// failed (a 5xx answer fails as `BACKEND_ERROR`, as it is decoded later).
fn record_outcome<T>(span: &crate::trace::ActiveSpan, outcome: &Attempt<T>) {
    if let Some(status) = &outcome.status {
        span.set_attribute(status.clone());
    }
    match &outcome.result {
        Err(error) => span.fail(error.code()),
        Ok(_) if outcome.failed => span.fail("BACKEND_ERROR"),
        Ok(_) => {}
    }
}

/// Decrements the in-flight gauge when the attempt ends, however it ends (dropped included).
struct InFlight<'a>(&'a AtomicI64);

impl InFlight<'_> {
    async fn wrap<O>(self, future: impl Future<Output = O>) -> O {
        future.await
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn resilience() -> Resilience {
        let mut options = ResilienceOptions::default();
        options.breaker.enabled = false;
        options.retry.initial_backoff = Duration::from_millis(1);
        options.retry.max_backoff = Duration::from_millis(1);
        options.retry.budget_min_per_second = 100;
        Resilience::new(Backend::Events, options)
    }

    /// Runs one call whose every attempt fails with `error`; returns the attempts made.
    async fn attempts(
        resilience: &Resilience,
        budget: &CallBudget,
        idempotent: bool,
        error: SourceError,
    ) -> usize {
        let made = AtomicUsize::new(0);
        let kind = CallKind { idempotent, dedupe_key: None };
        let result: Result<(), SourceError> = resilience
            .call(budget, Duration::from_secs(1), kind, None, |_| {
                made.fetch_add(1, Ordering::SeqCst);
                let error = error.clone();
                async move { Attempt::judged(Err(error)) }
            })
            .await;
        assert!(result.is_err());
        made.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn only_idempotent_calls_to_an_unavailable_backend_are_retried() {
        let resilience = resilience();
        let budget = CallBudget::unlimited();
        let unavailable = SourceError::Unavailable { backend: Backend::Events, detail: String::new() };
        let timeout = SourceError::Timeout { backend: Backend::Events, timeout: Duration::from_secs(1) };
        assert_eq!(attempts(&resilience, &budget, true, unavailable.clone()).await, 3);
        assert_eq!(attempts(&resilience, &budget, false, unavailable).await, 1, "a write is made once");
        assert_eq!(attempts(&resilience, &budget, true, timeout).await, 1, "a timeout is not retried");
        assert_eq!(attempts(&resilience, &budget, true, SourceError::NotFound).await, 1);
        assert_eq!(resilience.snapshot().retries_total, 2);
        assert_eq!(resilience.snapshot().calls_total, 6);
        assert_eq!(resilience.snapshot().in_flight, 0);
    }

    #[tokio::test]
    async fn no_call_starts_after_the_request_deadline() {
        let resilience = resilience();
        let budget = CallBudget::unlimited();
        budget.set_deadline(tokio::time::Instant::now());
        let made = AtomicUsize::new(0);
        let kind = CallKind { idempotent: true, dedupe_key: None };
        let result: Result<(), SourceError> = resilience
            .call(&budget, Duration::from_secs(1), kind, None, |_| {
                made.fetch_add(1, Ordering::SeqCst);
                async { Attempt::judged(Ok(())) }
            })
            .await;
        assert_eq!(result.map_err(|e| e.code()), Err("REQUEST_TIMEOUT"));
        assert_eq!(made.load(Ordering::SeqCst), 0);
    }
}
