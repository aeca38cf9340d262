//! Shadow comparisons of a page's items made together: one second call for the page and one
//! task that compares every item once the last has its primary answer, instead of a task, a
//! channel and a timer per item.
//!
//! A page that knows its items before they resolve (a connection prefetching for them) makes a
//! [`ShadowBatch`], says how many items to expect, and starts the secondary's call for all of
//! them. Each item then [`run`](ShadowBatch::run)s its primary and leaves its answer in the
//! batch; the item that completes the batch (or the batch's drop, when the request ends with
//! items missing) hands the lot to one task, which waits for the secondary's answers under the
//! field's deadline and settles each item as the per-item path does. Items beyond what was
//! expected take the per-item path.
//!
//! A batch lives as long as its request's scope, which for a WebSocket operation spans every
//! event of a subscription. Pages expected while earlier ones still run join their round (one
//! deadline, counted from the round's first page); a page expected once everything before it was
//! handed off starts a new round, with a deadline of its own.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::decision::{Decision, ShadowPlan, ShadowPurpose};
use crate::declaration::Backend;
use crate::executor::{PrimaryDone, ShadowExecutor, Slot, primary_latency, settle};
use crate::recorder::{CallContext, Outcome};

/// Why an item has no answer when the secondary answered fewer keys than it was asked.
const SHORT: &str = "the secondary answered fewer keys than it was asked";

/// The secondary's answers for a batch's keys, in the keys' order.
pub type BatchAnswers<T, E> = Pin<Box<dyn Future<Output = Vec<Result<T, E>>> + Send>>;

/// Asks a backend (the shadow's) for some keys; what a [`ShadowBatch`] calls when it compares.
pub type BatchSecondary<K, T, E> = Arc<dyn Fn(Backend, Vec<K>) -> BatchAnswers<T, E> + Send + Sync>;

/// The shadowed items of one field in one request, compared together. See the module's doc.
pub struct ShadowBatch<K, T, E>
where
    K: Clone + Send + 'static,
    T: Serialize + Clone + PartialEq + Send + 'static,
    E: Display + Send + 'static,
{
    executor: ShadowExecutor,
    decision: Decision,
    plan: ShadowPlan,
    secondary: BatchSecondary<K, T, E>,
    state: Mutex<BatchState<K, T>>,
}

/// The pages a batch compares together: those expected while earlier ones are still running.
/// A page expected once the batch has handed off everything it had (a WebSocket operation's
/// next event, whose scope is the same) starts a new round.
#[derive(Clone)]
struct Round {
    /// When the round's first page (and so the secondary's call) started: the deadline counts
    /// from here.
    started: Instant,
    /// How long the secondary's page call took, in nanoseconds (0: not known yet).
    secondary_latency: Arc<AtomicU64>,
}

impl Round {
    fn now() -> Self {
        Self { started: Instant::now(), secondary_latency: Arc::new(AtomicU64::new(0)) }
    }
}

struct BatchState<K, T> {
    round: Round,
    /// The field's slot among its `max_in_flight`, held from [`ShadowBatch::expect`] until the
    /// expected items are compared: a page's items share one call, so they count once.
    slot: Option<Slot>,
    /// Items expected that have not started yet.
    to_come: usize,
    /// Items started whose primary has not answered yet.
    running: usize,
    /// Items whose primary answered, waiting to be compared.
    done: Vec<Done<K, T>>,
}

/// One item's side of a comparison.
struct Done<K, T> {
    key: K,
    primary: PrimaryDone<T>,
    context: CallContext,
}

/// Records how long the secondary's page call took (see [`ShadowBatch::latency_probe`]).
#[derive(Debug, Clone)]
pub struct LatencyProbe(Arc<AtomicU64>);

impl LatencyProbe {
    /// The secondary answered after `elapsed`.
    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.0.fetch_max(nanos, Ordering::Relaxed);
    }
}

impl ShadowExecutor {
    /// A batch for `decision`'s items, when it compares (calibrations call the primary's side
    /// again on loaders of their own, item by item). `secondary` answers a list of keys from the
    /// shadow's side; it is called once per completed batch (and once per item beyond what the
    /// batch expected).
    pub fn batch<K, T, E>(
        &self,
        decision: &Decision,
        secondary: BatchSecondary<K, T, E>,
    ) -> Option<ShadowBatch<K, T, E>>
    where
        K: Clone + Send + 'static,
        T: Serialize + Clone + PartialEq + Send + 'static,
        E: Display + Send + 'static,
    {
        let plan = decision.shadow.filter(|plan| plan.purpose == ShadowPurpose::Compare)?;
        Some(ShadowBatch {
            executor: self.clone(),
            decision: *decision,
            plan,
            secondary,
            state: Mutex::new(BatchState {
                round: Round::now(),
                slot: None,
                to_come: 0,
                running: 0,
                done: Vec::new(),
            }),
        })
    }
}

impl<K, T, E> ShadowBatch<K, T, E>
where
    K: Clone + Send + 'static,
    T: Serialize + Clone + PartialEq + Send + 'static,
    E: Display + Send + 'static,
{
    /// `items` more items of the field will run through this batch (a page about to resolve
    /// them, whose caller then asks the secondary for their keys). False when the field's
    /// `max_in_flight` second calls are already running: the items then go one by one, and are
    /// skipped as such.
    pub fn expect(&self, items: usize) -> bool {
        let mut state = self.lock();
        if state.slot.is_none() {
            match self.executor.take_slot(self.decision.key, self.plan.max_in_flight) {
                Some(slot) => state.slot = Some(slot),
                None => return false,
            }
        }
        if state.to_come == 0 && state.running == 0 && state.done.is_empty() {
            state.round = Round::now();
        }
        state.to_come += items;
        true
    }

    /// The items still expected will not come: what was asked of the request is answered (a
    /// subscription's event is resolved, and an error that nulled a list dropped its items
    /// unstarted). The round's items that came are compared and its slot freed, as the batch's
    /// drop does at a request's end; a page expected later starts a new round.
    pub fn end_round(&self) {
        let ready = {
            let mut state = self.lock();
            state.to_come = 0;
            match state.running == 0 {
                true => Some((std::mem::take(&mut state.done), state.slot.take(), state.round.clone())),
                false => None,
            }
        };
        if let Some((items, slot, round)) = ready {
            self.compare(items, slot, round);
        }
    }

    /// Where the caller that makes the secondary's page call records how long it took (the
    /// latency every item of the round reports for the secondary).
    pub fn latency_probe(&self) -> LatencyProbe {
        LatencyProbe(self.lock().round.secondary_latency.clone())
    }

    /// Serves one item: awaits `primary` and returns its result; its comparison is left to the
    /// batch. An item the batch does not expect runs as
    /// [`ShadowExecutor::run`] runs it, with a second call of its own. `prefetched`: how long the
    /// request's prefetch of this field waited for the primary's backend (see
    /// [`ShadowExecutor::serve`]).
    pub async fn run<E0, P>(
        &self,
        context: CallContext,
        primary: P,
        key: K,
        prefetched: Option<Duration>,
    ) -> Result<T, E0>
    where
        P: Future<Output = Result<T, E0>>,
    {
        let Some(mut arrival) = self.arrive(&context) else {
            let secondary = self.secondary.clone();
            let one = move |backend| async move {
                match secondary(backend, vec![key]).await.into_iter().next() {
                    Some(answer) => answer.map_err(|error| error.to_string()),
                    None => Err(SHORT.to_owned()),
                }
            };
            return self.executor.run(&self.decision, context, primary, one, prefetched).await;
        };
        let recorder = self.executor.recorder();
        let (result, elapsed) = primary_latency(primary, prefetched).await;
        recorder.record_served(self.decision.key, self.decision.serve, elapsed);
        let primary = match &result {
            Ok(value) => PrimaryDone::Value(value.clone(), elapsed),
            Err(_) => PrimaryDone::Failed,
        };
        arrival.done = Some(Done { key, primary, context });
        result
    }

    /// Counts an item in, when one is expected.
    fn arrive(&self, context: &CallContext) -> Option<Arrival<'_, K, T, E>> {
        let mut state = self.lock();
        if state.to_come == 0 {
            return None;
        }
        state.to_come -= 1;
        state.running += 1;
        Some(Arrival { batch: self, operation: context.operation.clone(), done: None })
    }

    /// An item finished, with its side of the comparison; without it (the request went away
    /// before its primary answered) it counts as skipped. The last of the expected items starts
    /// the comparisons, which take the batch's slot with them.
    fn finished(&self, operation: Option<&str>, done: Option<Done<K, T>>) {
        if done.is_none() {
            self.executor.recorder().record_outcome(self.decision.key, operation, Outcome::Skipped, None);
        }
        let ready = {
            let mut state = self.lock();
            state.running -= 1;
            state.done.extend(done);
            match state.to_come == 0 && state.running == 0 {
                true => Some((std::mem::take(&mut state.done), state.slot.take(), state.round.clone())),
                false => None,
            }
        };
        if let Some((items, slot, round)) = ready {
            self.compare(items, slot, round);
        }
    }

    /// Hands `items` to one task that waits for the secondary's answers (by the deadline of
    /// their `round`) and settles each; the slot is free once it has.
    fn compare(&self, items: Vec<Done<K, T>>, slot: Option<Slot>, round: Round) {
        if items.is_empty() {
            return;
        }
        let recorder = self.executor.recorder().clone();
        let (key, plan) = (self.decision.key, self.plan);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            for item in &items {
                recorder.record_outcome(key, item.context.operation.as_deref(), Outcome::Skipped, None);
            }
            return;
        };
        let answers = (self.secondary)(plan.call, items.iter().map(|item| item.key.clone()).collect());
        let deadline = tokio::time::Instant::from_std(round.started + plan.deadline);
        let Round { started, secondary_latency: latency } = round;
        runtime.spawn(async move {
            let _slot = slot;
            let answers = tokio::time::timeout_at(deadline, answers).await.ok();
            // The page call's own latency when its caller recorded it; else (it has not yet, or
            // some keys were not in it) until the last answer.
            let elapsed = match latency.load(Ordering::Relaxed) {
                0 => started.elapsed(),
                nanos => Duration::from_nanos(nanos),
            };
            let mut answers = answers.map(Vec::into_iter);
            for item in items {
                let answer = answers.as_mut().map(|answers| match answers.next() {
                    Some(answer) => answer.map_err(|error| error.to_string()),
                    None => Err(SHORT.to_owned()),
                });
                settle(&recorder, key, plan, &item.context, item.primary, answer, elapsed);
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState<K, T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One item counted into its batch; tells the batch when it is done, also when its future is
/// dropped before its primary answered.
struct Arrival<'a, K, T, E>
where
    K: Clone + Send + 'static,
    T: Serialize + Clone + PartialEq + Send + 'static,
    E: Display + Send + 'static,
{
    batch: &'a ShadowBatch<K, T, E>,
    operation: Option<Arc<str>>,
    done: Option<Done<K, T>>,
}

impl<K, T, E> Drop for Arrival<'_, K, T, E>
where
    K: Clone + Send + 'static,
    T: Serialize + Clone + PartialEq + Send + 'static,
    E: Display + Send + 'static,
{
    fn drop(&mut self) {
        self.batch.finished(self.operation.as_deref(), self.done.take());
    }
}

impl<K, T, E> Drop for ShadowBatch<K, T, E>
where
    K: Clone + Send + 'static,
    T: Serialize + Clone + PartialEq + Send + 'static,
    E: Display + Send + 'static,
{
    /// The request is over: the items that came are compared, even if others never did.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let (done, slot, round) = (std::mem::take(&mut state.done), state.slot.take(), state.round.clone());
        self.compare(done, slot, round);
    }
}
