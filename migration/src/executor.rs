//! The shadow executor: runs a field's serving call and, when the decision says so, a second call
//! beside it, without ever waiting for the second. Transport-agnostic: it is handed futures.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::decision::{Decision, ShadowPlan, ShadowPurpose};
use crate::declaration::{Backend, FieldKey};
use crate::recorder::{CallContext, Outcome, ShadowRecorder};

/// Runs serving calls and their shadows, and records what it sees.
#[derive(Debug, Clone)]
pub struct ShadowExecutor {
    recorder: Arc<ShadowRecorder>,
    in_flight: Arc<HashMap<FieldKey, AtomicUsize>>,
}

/// What the secondary task learns of the primary once it is done: its answer as it is (turned
/// into JSON only when it differs from the secondary's), and how long it took.
pub(crate) enum PrimaryDone<T> {
    Value(T, Duration),
    Failed,
}

/// A slot among a field's `max_in_flight`; frees itself when dropped.
pub(crate) struct Slot {
    in_flight: Arc<HashMap<FieldKey, AtomicUsize>>,
    key: FieldKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(count) = self.in_flight.get(&self.key) {
            count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl ShadowExecutor {
    /// An executor recording into `recorder`, for the fields of its catalog.
    pub fn new(recorder: Arc<ShadowRecorder>) -> Self {
        let in_flight = recorder.catalog().keys().map(|key| (key, AtomicUsize::new(0))).collect();
        Self { recorder, in_flight: Arc::new(in_flight) }
    }

    /// The recorder.
    pub fn recorder(&self) -> &Arc<ShadowRecorder> {
        &self.recorder
    }

    /// Secondary calls of `key` running now.
    pub fn in_flight(&self, key: FieldKey) -> usize {
        self.in_flight.get(&key).map_or(0, |count| count.load(Ordering::Acquire))
    }

    /// Serves `decision`: awaits `call(decision.serve)` and returns its result. When the decision
    /// holds a shadow plan and the field has a free slot, `call(plan.call)` is spawned first and
    /// runs concurrently under its own deadline; it is compared with the primary's answer (or, for
    /// calibration, taught as noise) after both are done, in the background. The response never
    /// waits for it, and its result never reaches the caller.
    ///
    /// A second call that finds `max_in_flight` secondaries running is not made, and counts as
    /// skipped. Needs a Tokio runtime.
    pub async fn execute<T, E, F, Fut>(
        &self,
        decision: &Decision,
        context: CallContext,
        call: F,
    ) -> Result<T, E>
    where
        F: Fn(Backend) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + Clone + PartialEq + Send + 'static,
        E: Display + Send + 'static,
    {
        let primary = call(decision.serve);
        self.run(decision, context, primary, call, None).await
    }

    /// The primary alone, for a decision without a shadow: timed and recorded as [`run`](Self::run)
    /// records it, with no second call to prepare for. `prefetched` is how long the request's
    /// prefetch of this field waited for its backend, if it prefetched: a primary ready on its
    /// first poll was answered by that call, and is recorded with its latency (with none, it
    /// waited for nothing: zero).
    pub async fn serve<T, E>(
        &self,
        decision: &Decision,
        primary: impl Future<Output = Result<T, E>>,
        prefetched: Option<Duration>,
    ) -> Result<T, E> {
        let (result, latency) = primary_latency(primary, prefetched).await;
        self.recorder.record_served(decision.key, decision.serve, latency);
        result
    }

    /// Records what [`serve`](Self::serve) records for a primary whose answer was at hand
    /// without a call of its own (the request's prefetch loaded it), for a caller that read it
    /// synchronously: it waited as long as the prefetch did (`prefetched`), or for nothing.
    pub fn served_at_once(&self, decision: &Decision, prefetched: Option<Duration>) {
        self.recorder.record_served(decision.key, decision.serve, prefetched.unwrap_or(Duration::ZERO));
    }

    /// [`execute`](Self::execute) with the primary's future given directly, so it may borrow
    /// from the request (a per-request loader); only the second call, which outlives the
    /// response, must own what it uses. `secondary` is called at most once, with the backend to
    /// call, and only when a second call is made. `prefetched`: how long the request's prefetch
    /// of this field waited for the primary's backend, if it prefetched (see [`Self::serve`]).
    pub async fn run<T, E, E2, P, S, SFut>(
        &self,
        decision: &Decision,
        context: CallContext,
        primary: P,
        secondary: S,
        prefetched: Option<Duration>,
    ) -> Result<T, E>
    where
        P: Future<Output = Result<T, E>>,
        S: FnOnce(Backend) -> SFut,
        SFut: Future<Output = Result<T, E2>> + Send + 'static,
        T: Serialize + Clone + PartialEq + Send + 'static,
        E2: Display + Send + 'static,
    {
        let key = decision.key;
        let to_secondary =
            decision.shadow.and_then(|plan| self.start_secondary(key, plan, context, secondary));
        let (result, elapsed) = primary_latency(primary, prefetched).await;
        self.recorder.record_served(key, decision.serve, elapsed);
        if let Some(sender) = to_secondary {
            // A copy of the answer is the only shadow work on the primary's path, and only on
            // sampled requests; the comparison runs in the secondary's task.
            let done = match &result {
                Ok(value) => PrimaryDone::Value(value.clone(), elapsed),
                Err(_) => PrimaryDone::Failed,
            };
            // The secondary's task waits for this message, so it is there to receive it.
            let _ = sender.send(done);
        }
        result
    }

    fn start_secondary<T, E, S, SFut>(
        &self,
        key: FieldKey,
        plan: ShadowPlan,
        context: CallContext,
        call: S,
    ) -> Option<oneshot::Sender<PrimaryDone<T>>>
    where
        S: FnOnce(Backend) -> SFut,
        SFut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + PartialEq + Send + 'static,
        E: Display + Send + 'static,
    {
        let Some(slot) = self.take_slot(key, plan.max_in_flight) else {
            self.recorder.record_outcome(key, context.operation.as_deref(), Outcome::Skipped, None);
            return None;
        };
        let (sender, receiver) = oneshot::channel::<PrimaryDone<T>>();
        let secondary = call(plan.call);
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            let answer = tokio::time::timeout(plan.deadline, secondary).await;
            let elapsed = started.elapsed();
            let Ok(primary) = receiver.await else {
                // The request went away before its primary answered.
                recorder.record_outcome(key, context.operation.as_deref(), Outcome::Skipped, None);
                return;
            };
            settle(&recorder, key, plan, &context, primary, answer.ok(), elapsed);
        });
        Some(sender)
    }

    pub(crate) fn take_slot(&self, key: FieldKey, max_in_flight: usize) -> Option<Slot> {
        let count = self.in_flight.get(&key)?;
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| (now < max_in_flight).then_some(now + 1))
            .ok()?;
        Some(Slot { in_flight: self.in_flight.clone(), key })
    }
}

/// Awaits `primary`, with the latency of the backend call that answered it.
///
/// A primary ready on its first poll was answered from the request's loaders, as a page's items
/// are after the page prefetched for them: it waited for the call that loaded it, the prefetch's
/// (`prefetched`, the same for every item of the page, as a shadowed page's secondary reports
/// its one call for every item), or, with no prefetch, for no backend at all. Recording such an
/// item as zero made a page's primary look free beside its secondary. The clock is read only for
/// a primary that waits: two reads per item were most of the 1% of a page's CPU that went to it.
pub(crate) async fn primary_latency<T>(
    primary: impl Future<Output = T>,
    prefetched: Option<Duration>,
) -> (T, Duration) {
    let mut primary = std::pin::pin!(primary);
    match std::future::poll_fn(|cx| Poll::Ready(primary.as_mut().poll(cx))).await {
        Poll::Ready(result) => (result, prefetched.unwrap_or(Duration::ZERO)),
        Poll::Pending => {
            let started = Instant::now();
            (primary.await, started.elapsed())
        }
    }
}

/// Records what one second call found, once both answers are in: `secondary` is `None` when it
/// missed its deadline, and `elapsed` is how long it took. Equal answers are a match whatever
/// the normalisers say, and need no JSON: the common case costs a comparison of two values.
pub(crate) fn settle<T, E>(
    recorder: &ShadowRecorder,
    key: FieldKey,
    plan: ShadowPlan,
    context: &CallContext,
    primary: PrimaryDone<T>,
    secondary: Option<Result<T, E>>,
    elapsed: Duration,
) where
    T: Serialize + PartialEq,
    E: Display,
{
    // An outcome with no comparison; `ran`: the secondary answered (its latency counts).
    let finish = |outcome: Outcome, ran: bool| {
        recorder.record_outcome(
            key,
            context.operation.as_deref(),
            outcome,
            ran.then_some((plan.call, elapsed)),
        );
    };
    let secondary_value = match secondary {
        None => return finish(Outcome::SecondaryTimeout, true),
        Some(Err(error)) => {
            tracing::debug!(key = %key, backend = %plan.call, %error, "shadow: the secondary failed");
            return finish(Outcome::SecondaryError, true);
        }
        Some(Ok(value)) => value,
    };
    let PrimaryDone::Value(primary_value, primary_elapsed) = primary else {
        return finish(Outcome::PrimaryError, false);
    };
    if plan.purpose == ShadowPurpose::Compare && primary_value == secondary_value {
        recorder.record_match(key, context, (plan.call.other(), primary_elapsed), (plan.call, elapsed));
        return;
    }
    let (primary_value, secondary_value) =
        match (serde_json::to_value(primary_value), serde_json::to_value(secondary_value)) {
            (Ok(primary), Ok(secondary)) => (primary, secondary),
            (_, Err(error)) => {
                tracing::warn!(key = %key, %error, "shadow: the secondary's answer does not serialise");
                return finish(Outcome::SecondaryError, true);
            }
            (Err(error), _) => {
                tracing::warn!(key = %key, %error, "shadow: the primary's answer does not serialise");
                return finish(Outcome::PrimaryError, false);
            }
        };
    match plan.purpose {
        ShadowPurpose::Calibrate => {
            recorder.record_calibration(key, &primary_value, &secondary_value);
        }
        ShadowPurpose::Compare => {
            recorder.record_comparison(
                key,
                context,
                (plan.call.other(), &primary_value, primary_elapsed),
                (plan.call, &secondary_value, elapsed),
            );
        }
    }
}
