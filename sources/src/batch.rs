//! Batch loading by level: a per-request [`BatchScheduler`] and the [`BatchLoader`]s it
//! dispatches, so every backend method is called once per level of a query, whatever the shape.
//!
//! # Why not a timer
//!
//! async-graphql's `DataLoader` collects keys for a fixed delay (1 ms) and then loads them. It
//! resolves a list's items with `try_join_all`, which above 30 items is a `FuturesOrdered`, and
//! `FuturesUnordered` hands control back to the runtime after every 32 futures it polls (it
//! wakes itself and returns `Pending`). On a busy machine the delay runs out between two of those
//! chunks, so a page of 100 templates asked its drafts in 4 batches, and the 200 templates of a
//! two-workspace query in 8 to 11. A longer delay costs every level its length; a shorter one
//! splits more.
//!
//! # Levels instead
//!
//! The request's execution (one HTTP request, or one WebSocket operation) runs inside
//! [`BatchScheduler::drive`] (or [`BatchScheduler::drive_stream`]), a wrapper future that polls it
//! with a waker of its own. A loader asked for a key while the wrapper polls does not call: it
//! queues the key and tells the scheduler. When a poll of the execution returns `Pending`
//! *without having been woken meanwhile* (a list's chunking wakes itself, so it is still runnable
//! and keeps its turn), nothing in the request can progress except through I/O: every field that
//! could ask for a key right now has asked.
//!
//! The wrapper then dispatches the queued keys, one batch per loader (split at the loader's
//! [`BatchLoad::MAX_BATCH`]), unless a call of an *earlier* level is still under way. A level is
//! what the execution does between two dispatches: the batches dispatched at its start and the
//! backend calls the execution makes itself meanwhile (`me`, the root list of workspaces;
//! counted in [`crate::resilience::Resilience::call`] when it starts inside the wrapper's poll)
//! belong to it. Their answers are what add keys to the next level, so the next level waits for
//! all of them: the templates of two workspaces, whose pages answer at different moments, ask
//! for their drafts in one call. Calls started during the level being collected do not hold it
//! back: they are its own, and its keys go out beside them. Each batch's answer wakes the fields
//! waiting for it, which resolve and queue the next level's keys, and so on. So each backend
//! method is called at most once per level (per `MAX_BATCH` keys), with no timer anywhere, and the
//! count does not depend on timing: the same query makes the same calls on a loaded machine.
//!
//! A load that asks nothing new at its level (every key is cached, or in a call of an earlier
//! level) is *deferred*: it answers when its level is dispatched, not at once. Otherwise a branch
//! whose key happened to be loaded a level early (a page both the root and a nested field ask
//! for) would run a level ahead, and what it asks next would go out one call before what its
//! siblings at the same depth ask. A level with only deferred loads dispatches nothing and ends
//! at once.
//!
//! Except what a page prefetched for its items ([`BatchLoader::prefetch_many`]): the page asks
//! its items' keys (authors, stats) at its own level and waits for them, and its items read them
//! a level later. That is their level, not a branch running ahead, so loads of only prefetched
//! keys answer at once. Deferring them would also cost a page of 50 items a wake and a poll per
//! item: it doubled the gateway's CPU per TemplateList request when it was tried.
//!
//! The price is the one a hand-written handler that makes the minimum calls pays too: a level
//! starts when the slowest call of the one before it has answered (each call bounded by its
//! backend's timeout and the request's deadline), where a timer-based loader would let a fast
//! branch run ahead with calls of its own.
//!
//! # Outside the wrapper
//!
//! Loads made from another task (the migration engine's shadow calls, spawned so the response
//! never waits for them) or with no wrapper at all are *detached*: the loader spawns a dispatch
//! that first yields once to the runtime, so the keys asked for in the same turn still share a
//! call, and never delays or joins the request's levels. When the wrapper is dropped (the request
//! ended or was cancelled), keys still queued for a level are dispatched the same way, so a
//! detached task waiting on them is answered.
//!
//! # What a loader remembers
//!
//! A [`BatchLoader`] keeps, for its request, one slot per key: being loaded (queued or under
//! way: a second ask waits for the same call, so a key is never in two calls), found (the cache),
//! missing (the backend did not return it: answered absent without a call), or failed. A key
//! whose call failed with a backend failure or the request's deadline is answered with that
//! error for the rest of the request, so a failing or hanging backend costs a request one call
//! and one deadline, not one for the prefetch and another for the fields; any other failure is
//! handed to those who waited and the key is tried again by the next ask. A load asking for a key
//! that failed fails with that error; [`BatchLoader::load_each`] answers that key with it and
//! loads the others.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures::Stream;
use tracing::Instrument;

use crate::error::{Backend, SourceError};

/// One backend method that loads many keys in one call: what a [`BatchLoader`] calls.
pub trait BatchLoad: Send + Sync + 'static {
    /// What one key names (an id, or a small struct of them).
    type Key: Clone + Eq + Hash + Send + Sync + 'static;
    /// What one key loads.
    type Value: Clone + Send + Sync + 'static;
    /// The backend called: a batch that ends without an answer fails with it unavailable.
    const BACKEND: Backend;
    /// The most keys one call may carry (the backend's own limit: a `?id__in=` page holds 100,
    /// `BatchGetDrafts` 1,000); a level with more is split into calls of at most this many.
    const MAX_BATCH: usize;

    /// Loads `keys` (at most [`Self::MAX_BATCH`], no duplicates). A key missing from the answer
    /// has no value (not visible, or does not exist).
    fn load(
        &self,
        keys: &[Self::Key],
    ) -> impl Future<Output = Result<Loaded<Self::Key, Self::Value>, SourceError>> + Send;
}

/// What a batch loaded: each key the backend answered, with its value. A list, not a map: the
/// batch settles it into the loader's slots in one pass, where a map was built (a hash and an
/// insert per key) only to be emptied key by key.
pub type Loaded<K, V> = Vec<(K, V)>;

/// The batch scheduler of one request: collects the loaders that have keys queued and dispatches
/// them when a level of the request's execution is complete (see the module docs). Cheap to
/// clone; clones are the same scheduler.
#[derive(Clone, Default)]
pub struct BatchScheduler {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BatchScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("BatchScheduler")
            .field("queued_loaders", &state.queued.len())
            .field("level", &state.level)
            .field("older_in_flight", &state.older)
            .field("deferred_loads", &state.deferred.len())
            .finish()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Loaders with keys queued for the next level.
    queued: Vec<Arc<dyn Dispatch>>,
    /// How many times the wrapper has dispatched: the level being collected now.
    level: u64,
    /// Backend calls the execution started during this level (since the last dispatch): they
    /// are of the same level as the queued keys, and do not hold them back.
    current: usize,
    /// Batches the wrapper dispatched and calls the execution started before the last
    /// dispatch, still under way: their answers may add keys to this level, so it waits for
    /// them.
    older: usize,
    /// The wrapper's waker, for when the last of `older` ends.
    driver: Option<Waker>,
    /// Loads of this level that asked no key of it (every key was known already, or in a
    /// call of an earlier level): they answer when this level is dispatched, so what they
    /// lead to is asked at the next level with the rest of it.
    deferred: Vec<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing holding the lock can panic half-way through an update: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call or batch started at `level` ended; wakes the wrapper when it was the last one
    /// older than the level being collected, unless the wrapper is polling on this thread right
    /// now (it looks at the count when the poll returns).
    fn end_one(self: &Arc<Self>, level: u64) {
        let driver = {
            let mut state = self.lock();
            if level == state.level {
                state.current = state.current.saturating_sub(1);
                return;
            }
            state.older = state.older.saturating_sub(1);
            if state.older > 0 {
                return;
            }
            state.driver.take()
        };
        if let Some(driver) = driver.filter(|_| !is_driving(self)) {
            driver.wake();
        }
    }
}

thread_local! {
    /// The scheduler whose wrapper is polling its execution on this thread, if any.
    static DRIVING: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

fn is_driving(shared: &Arc<Shared>) -> bool {
    DRIVING.with(|driving| driving.borrow().as_ref().is_some_and(|current| Arc::ptr_eq(current, shared)))
}

/// Marks `shared` as driving on this thread for as long as it lives; restores what was before.
struct DrivingGuard {
    previous: Option<Arc<Shared>>,
}

impl DrivingGuard {
    fn enter(shared: &Arc<Shared>) -> Self {
        Self { previous: DRIVING.with(|driving| driving.replace(Some(shared.clone()))) }
    }
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        DRIVING.with(|driving| *driving.borrow_mut() = previous);
    }
}

/// A backend call made by a driven execution (not by a batch), counted as under way until
/// dropped: a level is not complete while it runs. See [`direct_call`].
pub(crate) struct DirectCall(Arc<Shared>, u64);

impl Drop for DirectCall {
    fn drop(&mut self) {
        self.0.end_one(self.1);
    }
}

/// Counts a backend call starting now as part of the current level, when it starts inside a
/// wrapper's poll (the execution's own call: a page of templates, `me`); `None` elsewhere (a
/// batch, a shadow call).
pub(crate) fn direct_call() -> Option<DirectCall> {
    let shared = DRIVING.with(|driving| driving.borrow().clone())?;
    let level = {
        let mut state = shared.lock();
        state.current += 1;
        state.level
    };
    Some(DirectCall(shared, level))
}

/// A dispatched batch of a level, counted as under way until dropped.
struct LevelBatch(Arc<Shared>, u64);

impl Drop for LevelBatch {
    fn drop(&mut self) {
        self.0.end_one(self.1);
    }
}

/// A loader the scheduler can tell to dispatch its queued keys.
trait Dispatch: Send + Sync {
    /// Dispatches every queued key: for a level (counted as under way), or detached (`None`).
    fn dispatch(self: Arc<Self>, level: Option<&LevelDispatch<'_>>);
}

/// The waker the wrapper polls the execution with: notes that it was woken (the execution has
/// runnable work) and passes the wake on to the wrapper's own waker.
#[derive(Default)]
struct Flag {
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
}

impl Flag {
    fn prepare(&self, outer: &Waker) {
        let mut current = self.outer.lock().unwrap_or_else(PoisonError::into_inner);
        if !current.as_ref().is_some_and(|waker| waker.will_wake(outer)) {
            *current = Some(outer.clone());
        }
        self.woken.store(false, Ordering::SeqCst);
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if let Some(outer) = self.outer.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            outer.wake_by_ref();
        }
    }
}

/// Dispatches what is still queued, detached, when a wrapper goes away.
struct DriverGone<'a>(&'a BatchScheduler);

impl Drop for DriverGone<'_> {
    fn drop(&mut self) {
        let (queued, deferred) = {
            let mut state = self.0.shared.lock();
            state.level += 1;
            (std::mem::take(&mut state.queued), std::mem::take(&mut state.deferred))
        };
        for waiter in deferred {
            waiter.wake();
        }
        if queued.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for loader in queued {
            loader.dispatch(None);
        }
    }
}

impl BatchScheduler {
    /// A scheduler with nothing queued. Until an execution runs in [`Self::drive`], every load
    /// is detached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `execution` (one request's), dispatching its loaders' keys level by level.
    pub async fn drive<F: Future>(&self, execution: F) -> F::Output {
        let _gone = DriverGone(self);
        let mut execution = std::pin::pin!(execution);
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        futures::future::poll_fn(|cx| self.poll_level(execution.as_mut(), &flag, &waker, cx)).await
    }

    /// [`Self::drive`] for a stream of responses (a subscription, or a WebSocket operation):
    /// each item's execution is driven the same way.
    pub fn drive_stream<S: Stream + Send + Unpin>(
        &self,
        stream: S,
    ) -> impl Stream<Item = S::Item> + Send + use<S>
    where
        S::Item: Send,
    {
        DrivenStream { scheduler: self.clone(), stream, flag: Arc::new(Flag::default()), waker: None }
    }

    /// Polls the execution once; when it is idle and the level complete, dispatches.
    fn poll_level<F: Future>(
        &self,
        execution: Pin<&mut F>,
        flag: &Arc<Flag>,
        waker: &Waker,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        flag.prepare(cx.waker());
        let polled = {
            let _driving = DrivingGuard::enter(&self.shared);
            execution.poll(&mut Context::from_waker(waker))
        };
        match polled {
            Poll::Ready(output) => Poll::Ready(output),
            Poll::Pending => {
                self.after_pending(flag, cx);
                Poll::Pending
            }
        }
    }

    /// The execution returned `Pending`: unless it woke itself (still runnable) or a call of
    /// an earlier level is under way (its answer may add keys to this one), the level is
    /// complete: dispatch its keys. Calls started during this level go on beside its batches.
    fn after_pending(&self, flag: &Flag, cx: &Context<'_>) {
        if flag.woken.load(Ordering::SeqCst) {
            return;
        }
        let (queued, deferred, level) = {
            let mut state = self.shared.lock();
            if state.older > 0 || (state.queued.is_empty() && state.deferred.is_empty()) {
                if state.older > 0 {
                    state.driver = Some(cx.waker().clone());
                }
                return;
            }
            // The batches end by waking the wrapper; the waker must be there before they start.
            state.driver = Some(cx.waker().clone());
            // What this level started is older than the next one, which collects from now on.
            let level = state.level;
            state.older += std::mem::take(&mut state.current);
            state.level += 1;
            (std::mem::take(&mut state.queued), std::mem::take(&mut state.deferred), level)
        };
        let dispatch = LevelDispatch { scheduler: self, level };
        for loader in queued {
            loader.dispatch(Some(&dispatch));
        }
        // A level with only deferred loads dispatches nothing but still ends: they go on now.
        for waiter in deferred {
            waiter.wake();
        }
    }

    /// The level being collected, when this scheduler's wrapper is polling on this thread.
    fn level_here(&self) -> Option<u64> {
        self.is_driving_here().then(|| self.shared.lock().level)
    }

    /// Whether a load deferred at `level` still waits (the level is not dispatched yet); if so,
    /// `waker` is woken when it is.
    fn still_deferred(&self, level: u64, waker: &Waker) -> bool {
        let mut state = self.shared.lock();
        if state.level > level {
            return false;
        }
        if !state.deferred.iter().any(|w| w.will_wake(waker)) {
            state.deferred.push(waker.clone());
        }
        true
    }

    /// Queues `loader` for the next level.
    fn enqueue(&self, loader: Arc<dyn Dispatch>) {
        self.shared.lock().queued.push(loader);
    }

    /// Whether this scheduler's wrapper is polling on this thread (a load made now belongs to
    /// the level).
    fn is_driving_here(&self) -> bool {
        is_driving(&self.shared)
    }
}

/// A dispatch of the keys collected at `level`.
struct LevelDispatch<'a> {
    scheduler: &'a BatchScheduler,
    level: u64,
}

impl LevelDispatch<'_> {
    /// Counts one batch of the level as under way (older than the level collected next).
    fn start_batch(&self) -> LevelBatch {
        self.scheduler.shared.lock().older += 1;
        LevelBatch(self.scheduler.shared.clone(), self.level)
    }
}

/// A stream whose every poll is driven by level (see [`BatchScheduler::drive_stream`]).
struct DrivenStream<S> {
    scheduler: BatchScheduler,
    stream: S,
    flag: Arc<Flag>,
    waker: Option<Waker>,
}

impl<S> Drop for DrivenStream<S> {
    fn drop(&mut self) {
        drop(DriverGone(&self.scheduler));
    }
}

impl<S: Stream + Unpin> Stream for DrivenStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        this.flag.prepare(cx.waker());
        let waker = this.waker.get_or_insert_with(|| Waker::from(this.flag.clone())).clone();
        let polled = {
            let _driving = DrivingGuard::enter(&this.scheduler.shared);
            Pin::new(&mut this.stream).poll_next(&mut Context::from_waker(&waker))
        };
        match polled {
            Poll::Ready(item) => Poll::Ready(item),
            Poll::Pending => {
                this.scheduler.after_pending(&this.flag, cx);
                Poll::Pending
            }
        }
    }
}

/// What a request knows of one key.
enum Slot<V> {
    /// Queued for the level being collected.
    Queued,
    /// In a call under way.
    Loading,
    /// Loaded.
    Found(V),
    /// The backend has no value for it.
    Missing,
    /// Its call failed; `remembered` failures answer every later ask too.
    Failed { error: SourceError, remembered: bool },
}

/// The hasher of a loader's own maps. Their keys are a request's (at most a few hundred, within
/// the limits on a document); SipHash's resistance to chosen keys buys nothing there and cost
/// a few percent of a page's CPU, hashed at every ask, settle, gather and wake. foldhash is still
/// seeded per process.
type FastHash = foldhash::fast::RandomState;

/// A loader's keys, each with what is known of it.
type Slots<K, V> = HashMap<K, Known<V>, FastHash>;

/// What a request knows of one key, and whether a page asked for it on behalf of its items
/// ([`BatchLoader::prefetch_many`]): a later load of only such keys is one of those items' own,
/// a level after the page, and is not deferred (see [`LoaderInner::ask`]). The mark is kept with
/// the slot, not in a set beside the slots: one lookup where an item reads its key, one insert
/// where a page asks.
struct Known<V> {
    slot: Slot<V>,
    prefetched: bool,
}

/// Sets `key`'s slot to `slot`: in place, as each key of a batch has its slot already (it was
/// queued).
fn set_slot<K: Clone + Eq + Hash, V>(slots: &mut Slots<K, V>, key: &K, slot: Slot<V>) {
    match slots.get_mut(key) {
        Some(known) => known.slot = slot,
        None => {
            slots.insert(key.clone(), Known { slot, prefetched: false });
        }
    }
}

/// The slot of `key`, if the request knows it.
fn slot_of<'a, K: Eq + Hash, V>(slots: &'a Slots<K, V>, key: &K) -> Option<&'a Slot<V>> {
    slots.get(key).map(|known| &known.slot)
}

struct LoaderState<K, V> {
    slots: Slots<K, V>,
    /// Keys waiting for a dispatch.
    queue: Vec<K>,
    /// Queued with the scheduler for the next level.
    in_level: bool,
    /// A detached dispatch is scheduled.
    detached: bool,
    /// Who waits for a key of this loader, by waiter.
    waiters: HashMap<u64, Waker, FastHash>,
    next_waiter: u64,
}

/// What a load asks its keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asking {
    /// [`BatchLoader::load_many`] (and `load_one`): all of them, or the first failure.
    Load,
    /// [`BatchLoader::prefetch_many`]: for a page's items, a level later.
    Prefetch,
    /// [`BatchLoader::load_each`]: each key's own outcome.
    EachKey,
}

struct LoaderInner<T: BatchLoad> {
    loader: T,
    scheduler: BatchScheduler,
    state: Mutex<LoaderState<T::Key, T::Value>>,
}

impl<T: BatchLoad> LoaderInner<T> {
    fn lock(&self) -> MutexGuard<'_, LoaderState<T::Key, T::Value>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks every key not known yet (or whose last failure is not remembered) as queued: for
    /// the level when the request's wrapper is polling here, else detached. Returns the level a
    /// load asked at when none of its keys is queued for that level and not all of them were
    /// prefetched for it: such a load is deferred until the level is dispatched (see
    /// [`State::deferred`]). A prefetch notes the keys it queues as prefetched.
    fn ask(self: &Arc<Self>, keys: &[T::Key], asking: Asking) -> Option<u64> {
        let level = self.scheduler.level_here();
        let in_level = level.is_some();
        let prefetch = asking == Asking::Prefetch;
        let (join_level, spawn_detached, defer) = {
            let mut state = self.lock();
            let state = &mut *state;
            // A load holding a key whose failure is remembered fails with it: call nothing. Not
            // so a load of each key's own outcome, whose other keys are still wanted.
            let failed = asking != Asking::EachKey
                && keys.iter().any(|key| {
                    matches!(slot_of(&state.slots, key), Some(Slot::Failed { remembered: true, .. }))
                });
            if failed {
                return None;
            }
            // A page asks for its items' keys at once: room for them all, not grown in steps.
            state.slots.reserve(keys.len());
            for key in keys {
                match state.slots.get_mut(key) {
                    None => {
                        state.slots.insert(key.clone(), Known { slot: Slot::Queued, prefetched: prefetch });
                    }
                    Some(known) if matches!(known.slot, Slot::Failed { remembered: false, .. }) => {
                        known.slot = Slot::Queued;
                        known.prefetched |= prefetch;
                    }
                    Some(_) => continue,
                }
                state.queue.push(key.clone());
            }
            // A page's items read what the page prefetched for them a level earlier: that is
            // their level, not a branch running ahead (and deferring every item's field would
            // cost a poll of the whole page per level).
            let defer = level.filter(|_| {
                // A load of no key is not one of a page's items.
                let (mut queued_now, mut all_prefetched) = (false, !keys.is_empty());
                for known in keys.iter().filter_map(|key| state.slots.get(key)) {
                    queued_now |= matches!(known.slot, Slot::Queued);
                    all_prefetched &= known.prefetched;
                }
                !queued_now && !all_prefetched
            });
            if state.queue.is_empty() {
                (false, false, defer)
            } else if in_level {
                (!std::mem::replace(&mut state.in_level, true), false, defer)
            } else {
                (false, !std::mem::replace(&mut state.detached, true), defer)
            }
        };
        if join_level {
            self.scheduler.enqueue(self.clone());
        }
        if spawn_detached {
            let this = self.clone();
            tokio::spawn(
                async move {
                    // Let the other loads of this turn queue their keys first.
                    tokio::task::yield_now().await;
                    this.dispatch(None);
                }
                .in_current_span(),
            );
        }
        defer
    }

    /// What a load of `key` alone answers without asking or waiting, if it would: the key's
    /// remembered failure, or what a page prefetched for its items (see [`Self::ask`]). One
    /// lock and one lookup, where asking and then waiting take the scheduler's lock, this
    /// loader's twice and four lookups: a page's items load one key each, about a hundred loads
    /// per TemplateList page.
    fn answered_at_once(&self, key: &T::Key) -> Option<Result<Option<T::Value>, SourceError>> {
        let state = self.lock();
        let known = state.slots.get(key)?;
        let at_once = match &known.slot {
            Slot::Failed { remembered, .. } => *remembered,
            Slot::Found(_) | Slot::Missing => known.prefetched,
            Slot::Queued | Slot::Loading => false,
        };
        if at_once { settled(Some(&known.slot)) } else { None }
    }

    /// Records a batch's outcome for its keys and wakes everyone waiting on this loader.
    fn settle(&self, keys: &[T::Key], outcome: Result<Loaded<T::Key, T::Value>, (SourceError, bool)>) {
        let waiters = {
            let mut state = self.lock();
            let slots = &mut state.slots;
            match outcome {
                Ok(values) => {
                    // A key is this batch's while it is loading. (A key the backend answered
                    // unasked is set only if it is loading in another call of this loader, which
                    // sets it again when it answers.)
                    for (key, value) in values {
                        if let Some(known @ Known { slot: Slot::Loading, .. }) = slots.get_mut(&key) {
                            known.slot = Slot::Found(value);
                        }
                    }
                    for key in keys {
                        if slots.get(key).is_none_or(|known| matches!(known.slot, Slot::Loading)) {
                            set_slot(slots, key, Slot::Missing);
                        }
                    }
                }
                Err((error, remembered)) => {
                    for key in keys {
                        set_slot(slots, key, Slot::Failed { error: error.clone(), remembered });
                    }
                }
            }
            std::mem::take(&mut state.waiters)
        };
        for (_, waiter) in waiters {
            waiter.wake();
        }
    }
}

impl<T: BatchLoad> Dispatch for LoaderInner<T> {
    fn dispatch(self: Arc<Self>, level: Option<&LevelDispatch<'_>>) {
        let keys = {
            let mut state = self.lock();
            match level {
                Some(_) => state.in_level = false,
                None => state.detached = false,
            }
            let keys = std::mem::take(&mut state.queue);
            for key in &keys {
                if let Some(known @ Known { slot: Slot::Queued, .. }) = state.slots.get_mut(key) {
                    known.slot = Slot::Loading;
                }
            }
            keys
        };
        for chunk in keys.chunks(T::MAX_BATCH.max(1)) {
            let level = level.map(LevelDispatch::start_batch);
            let batch = Batch { inner: self.clone(), keys: chunk.to_vec(), settled: false };
            tokio::spawn(batch.run(level).in_current_span());
        }
    }
}

/// One call's keys; settles them with an error if it ends without an answer (a panic, or the
/// runtime shutting down), so no one waits for them forever.
struct Batch<T: BatchLoad> {
    inner: Arc<LoaderInner<T>>,
    keys: Vec<T::Key>,
    settled: bool,
}

impl<T: BatchLoad> Batch<T> {
    async fn run(mut self, level: Option<LevelBatch>) {
        let outcome = self.inner.loader.load(&self.keys).await.map_err(|error| {
            let remembered = error.failed_backend().is_some() || matches!(error, SourceError::RequestTimeout);
            (error, remembered)
        });
        self.inner.settle(&self.keys, outcome);
        self.settled = true;
        // Ends the level's count after the keys are settled, so the wrapper sees them.
        drop(level);
    }
}

impl<T: BatchLoad> Drop for Batch<T> {
    fn drop(&mut self) {
        if !self.settled {
            let error = SourceError::Unavailable {
                backend: T::BACKEND,
                detail: "a batch ended without an answer".to_owned(),
            };
            self.inner.settle(&self.keys, Err((error, false)));
        }
    }
}

/// Loads keys of one backend method for one request, by level (see the module docs). Cheap to
/// clone; clones share the cache.
pub struct BatchLoader<T: BatchLoad> {
    inner: Arc<LoaderInner<T>>,
}

impl<T: BatchLoad> Clone for BatchLoader<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<T: BatchLoad> BatchLoader<T> {
    /// A loader over `loader`, dispatched by `scheduler`.
    pub fn new(loader: T, scheduler: &BatchScheduler) -> Self {
        Self {
            inner: Arc::new(LoaderInner {
                loader,
                scheduler: scheduler.clone(),
                state: Mutex::new(LoaderState {
                    slots: HashMap::default(),
                    queue: Vec::new(),
                    in_level: false,
                    detached: false,
                    waiters: HashMap::default(),
                    next_waiter: 0,
                }),
            }),
        }
    }

    /// The backend method this loader calls.
    pub fn loader(&self) -> &T {
        &self.inner.loader
    }

    /// The value of `key`: `None` when the backend has none.
    pub async fn load_one(&self, key: T::Key) -> Result<Option<T::Value>, SourceError> {
        // Its one key inline and its value as found: a page's fields load one key each, and a
        // vector and a map per load were 200 of a TemplateList page's 3,000 allocations.
        if let Some(answer) = self.inner.answered_at_once(&key) {
            return answer;
        }
        let keys = [key];
        let deferred = self.inner.ask(&keys, Asking::Load);
        Waiting::<T, OneKey, _> { inner: &self.inner, keys, id: None, deferred, gather: PhantomData }.await
    }

    /// What [`Self::load_one`] of `key` answers without asking or waiting, if it would: a key a
    /// page prefetched, or a remembered failure. `None` otherwise, and nothing is asked: for a
    /// caller that writes an object whole only when everything it reads is at hand.
    pub fn at_hand(&self, key: &T::Key) -> Option<Result<Option<T::Value>, SourceError>> {
        self.inner.answered_at_once(key)
    }

    /// The values of `keys` that the backend has. Fails with the error of the first key whose
    /// call failed.
    pub async fn load_many(
        &self,
        keys: impl IntoIterator<Item = T::Key>,
    ) -> Result<HashMap<T::Key, T::Value>, SourceError> {
        self.wait_for::<AllOrFirstError>(keys, Asking::Load).await
    }

    /// Each key's own outcome, in the order of `keys`: its value, `None` when the backend has
    /// none, or the error of its call. One wait for all of them, where a `load_one` per key would
    /// take the lock, register a waker and be woken once per key.
    pub async fn load_each(&self, keys: Vec<T::Key>) -> Vec<Result<Option<T::Value>, SourceError>> {
        let deferred = self.inner.ask(&keys, Asking::EachKey);
        Waiting::<T, EachKey> { inner: &self.inner, keys, id: None, deferred, gather: PhantomData }.await
    }

    /// [`Self::load_many`] for a page about to resolve a field on each of its items: the items'
    /// later loads of these keys are answered at once, not deferred as a load answered from a
    /// call of an earlier level is (see the module docs). Failures are left for those loads.
    pub async fn prefetch_many(&self, keys: impl IntoIterator<Item = T::Key>) {
        self.wait_for::<Settled>(keys, Asking::Prefetch).await;
    }

    /// Asks for `keys` (a load or a prefetch) and waits for them, read by `G`.
    fn wait_for<G>(&self, keys: impl IntoIterator<Item = T::Key>, asking: Asking) -> Waiting<'_, T, G> {
        let keys: Vec<T::Key> = keys.into_iter().collect();
        let deferred = self.inner.ask(&keys, asking);
        Waiting { inner: &self.inner, keys, id: None, deferred, gather: PhantomData }
    }
}

/// How a wait reads its keys' slots: its answer, or `None` while it must go on waiting.
trait Gather<K, V> {
    type Output;
    fn gather(slots: &Slots<K, V>, keys: &[K]) -> Option<Self::Output>;
}

/// [`BatchLoader::load_many`]: the values found, or the first failure met before a key still
/// loading.
struct AllOrFirstError;

impl<K: Clone + Eq + Hash, V: Clone> Gather<K, V> for AllOrFirstError {
    type Output = Result<HashMap<K, V>, SourceError>;

    fn gather(slots: &Slots<K, V>, keys: &[K]) -> Option<Self::Output> {
        let mut values = HashMap::with_capacity(keys.len());
        for key in keys {
            match slot_of(slots, key) {
                Some(Slot::Queued | Slot::Loading) => return None,
                Some(Slot::Found(value)) => {
                    values.insert(key.clone(), value.clone());
                }
                Some(Slot::Failed { error, .. }) => return Some(Err(error.clone())),
                Some(Slot::Missing) | None => {}
            }
        }
        Some(Ok(values))
    }
}

/// [`BatchLoader::prefetch_many`]: nothing, once every key is settled. The values stay in the
/// slots for the loads that read them (a map of copies, made only to be dropped, cost a page's
/// prefetch a clone of every value).
struct Settled;

impl<K: Eq + Hash, V> Gather<K, V> for Settled {
    type Output = ();

    fn gather(slots: &Slots<K, V>, keys: &[K]) -> Option<()> {
        let loading =
            keys.iter().any(|key| matches!(slot_of(slots, key), Some(Slot::Queued | Slot::Loading)));
        (!loading).then_some(())
    }
}

/// [`BatchLoader::load_each`]: once every key is settled, each key's own outcome.
struct EachKey;

impl<K: Eq + Hash, V: Clone> Gather<K, V> for EachKey {
    type Output = Vec<Result<Option<V>, SourceError>>;

    fn gather(slots: &Slots<K, V>, keys: &[K]) -> Option<Self::Output> {
        keys.iter().map(|key| outcome(slots, key)).collect()
    }
}

/// [`BatchLoader::load_one`]: its one key's outcome, once settled.
struct OneKey;

impl<K: Eq + Hash, V: Clone> Gather<K, V> for OneKey {
    type Output = Result<Option<V>, SourceError>;

    fn gather(slots: &Slots<K, V>, keys: &[K]) -> Option<Self::Output> {
        // A load of no key has nothing to wait for (`load_one` always has one).
        keys.first().map_or(Some(Ok(None)), |key| outcome(slots, key))
    }
}

/// What a settled key gives: its value, `None` when the backend has none, or its call's
/// error; `None` (go on waiting) while it is queued or loading.
fn outcome<K: Eq + Hash, V: Clone>(slots: &Slots<K, V>, key: &K) -> Option<Result<Option<V>, SourceError>> {
    settled(slot_of(slots, key))
}

/// [`outcome`] of a key whose slot is `slot` (`None`: the key is unknown).
fn settled<V: Clone>(slot: Option<&Slot<V>>) -> Option<Result<Option<V>, SourceError>> {
    match slot {
        Some(Slot::Queued | Slot::Loading) => None,
        Some(Slot::Found(value)) => Some(Ok(Some(value.clone()))),
        Some(Slot::Failed { error, .. }) => Some(Err(error.clone())),
        Some(Slot::Missing) | None => Some(Ok(None)),
    }
}

/// Waits until the keys of one load are settled (or, for [`AllOrFirstError`], one has failed).
struct Waiting<'a, T: BatchLoad, G, Keys = Vec<<T as BatchLoad>::Key>> {
    inner: &'a LoaderInner<T>,
    keys: Keys,
    id: Option<u64>,
    /// The level this load waits to see dispatched first, if deferred.
    deferred: Option<u64>,
    gather: PhantomData<fn() -> G>,
}

// Nothing in it is pinned: it only reads its keys.
impl<T: BatchLoad, G, Keys> Unpin for Waiting<'_, T, G, Keys> {}

impl<T: BatchLoad, G: Gather<T::Key, T::Value>, Keys: AsRef<[T::Key]>> Future for Waiting<'_, T, G, Keys> {
    type Output = G::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(level) = this.deferred {
            if this.inner.scheduler.still_deferred(level, cx.waker()) {
                return Poll::Pending;
            }
            this.deferred = None;
        }
        let mut state = this.inner.lock();
        let state = &mut *state;
        if let Some(answer) = G::gather(&state.slots, this.keys.as_ref()) {
            if let Some(id) = this.id.take() {
                state.waiters.remove(&id);
            }
            return Poll::Ready(answer);
        }
        let id = *this.id.get_or_insert_with(|| {
            state.next_waiter += 1;
            state.next_waiter
        });
        match state.waiters.get_mut(&id) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                state.waiters.insert(id, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl<T: BatchLoad, G, Keys> Drop for Waiting<'_, T, G, Keys> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.inner.lock().waiters.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Answers every key but `13` with its double, records the size of each call, and fails
    /// every call while `failing`.
    #[derive(Default)]
    struct Doubling {
        calls: Mutex<Vec<usize>>,
        failing: AtomicBool,
        keys_asked: AtomicUsize,
    }

    impl BatchLoad for Arc<Doubling> {
        type Key = u64;
        type Value = u64;
        const BACKEND: Backend = Backend::Drafts;
        const MAX_BATCH: usize = 100;

        async fn load(&self, keys: &[u64]) -> Result<Loaded<u64, u64>, SourceError> {
            self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(keys.len());
            self.keys_asked.fetch_add(keys.len(), Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(SourceError::Unavailable { backend: Backend::Drafts, detail: "down".into() });
            }
            Ok(keys.iter().filter(|&&k| k != 13).map(|&k| (k, k * 2)).collect())
        }
    }

    fn calls(loader: &Doubling) -> Vec<usize> {
        loader.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Resolves `keys` the way async-graphql resolves a list: every item concurrently, in a
    /// `FuturesOrdered` (which yields to the runtime every 32 items), each item yielding once
    /// more before it asks.
    async fn list(loader: &BatchLoader<Arc<Doubling>>, keys: impl Iterator<Item = u64>) -> Vec<Option<u64>> {
        let items = keys.map(|key| async move {
            tokio::task::yield_now().await;
            loader.load_one(key).await.ok().flatten()
        });
        futures::future::join_all(items).await
    }

    #[tokio::test]
    async fn a_level_of_a_chunked_list_is_one_call_and_the_next_level_another() {
        let backend = Arc::new(Doubling::default());
        let scheduler = BatchScheduler::new();
        let loader = BatchLoader::new(backend.clone(), &scheduler);
        let answers = scheduler
            .drive(async {
                let first = list(&loader, 0..250).await;
                // The next level asks for the answers' keys (and some again: the cache answers).
                let second = list(&loader, first.iter().flatten().copied().filter(|v| *v >= 400)).await;
                (first, second)
            })
            .await;
        assert_eq!(answers.0[21], Some(42));
        assert_eq!(answers.0[13], None, "a missing key is absent");
        // 250 keys, at most 100 per call: one level split three ways; then the second level's
        // 50 keys (the doubles 400..=498, none asked before) in one call.
        let sizes = calls(&backend);
        assert_eq!(sizes[..3].iter().sum::<usize>(), 250, "{sizes:?}");
        assert!(sizes[..3].iter().all(|&n| n <= 100), "{sizes:?}");
        assert_eq!(sizes.len(), 3 + 1, "one split level, then one call: {sizes:?}");
        assert_eq!(sizes[3], 50, "{sizes:?}");
    }

    #[tokio::test]
    async fn a_key_is_called_once_and_a_backend_failure_is_remembered() {
        let backend = Arc::new(Doubling::default());
        let scheduler = BatchScheduler::new();
        let loader = BatchLoader::new(backend.clone(), &scheduler);
        backend.failing.store(true, Ordering::SeqCst);
        let (a, b) = scheduler.drive(async { futures::join!(loader.load_one(1), loader.load_one(1)) }).await;
        assert_eq!(a.err().map(|e| e.code()), Some("BACKEND_UNAVAILABLE"));
        assert_eq!(b.err().map(|e| e.code()), Some("BACKEND_UNAVAILABLE"));
        backend.failing.store(false, Ordering::SeqCst);
        // Remembered for the request: no second call, the same error; a missing key likewise.
        let again = scheduler.drive(loader.load_many([1, 13, 2])).await;
        assert_eq!(again.err().map(|e| e.code()), Some("BACKEND_UNAVAILABLE"));
        assert_eq!(calls(&backend), vec![1], "deduplicated into one call, and not repeated");
    }

    /// A branch whose key is known from an earlier level must not run a level ahead of a
    /// branch that loads its key at this level: what both ask next goes out in one call.
    #[tokio::test]
    async fn a_key_known_from_an_earlier_level_waits_for_its_level() {
        let backend = Arc::new(Doubling::default());
        let scheduler = BatchScheduler::new();
        let loader = BatchLoader::new(backend.clone(), &scheduler);
        let (cached, fresh) = scheduler
            .drive(async {
                let _ = loader.load_one(1).await;
                let cached = async {
                    let first = loader.load_one(1).await.ok().flatten().unwrap_or_default();
                    loader.load_one(first * 50).await.ok().flatten()
                };
                let fresh = async {
                    let first = loader.load_one(2).await.ok().flatten().unwrap_or_default();
                    loader.load_one(first * 50).await.ok().flatten()
                };
                futures::join!(cached, fresh)
            })
            .await;
        assert_eq!((cached, fresh), (Some(200), Some(400)));
        // Level 1: key 1; level 2: key 2 (1 is cached); level 3: keys 100 and 200 together.
        assert_eq!(calls(&backend), vec![1, 1, 2]);
    }

    /// What a page prefetched for its items is theirs a level later: their loads answer at once,
    /// while the same loads after a plain load of the keys (answered a level earlier, by another
    /// branch as far as the loader knows) wait for a level of their own.
    #[tokio::test]
    async fn keys_prefetched_for_a_page_answer_its_items_without_a_level_of_their_own() {
        for prefetch in [true, false] {
            let backend = Arc::new(Doubling::default());
            let scheduler = BatchScheduler::new();
            let loader = BatchLoader::new(backend.clone(), &scheduler);
            let items = scheduler
                .drive(async {
                    // 13 is one the backend has no value for: answered absent all the same.
                    if prefetch {
                        loader.prefetch_many([1, 2, 3, 13]).await;
                    } else {
                        let _ = loader.load_many([1, 2, 3, 13]).await;
                    }
                    futures::future::join_all([1, 2, 3, 13].map(|key| loader.load_one(key))).await
                })
                .await;
            let items: Vec<_> = items.into_iter().map(|item| item.ok().flatten()).collect();
            assert_eq!(items, [Some(2), Some(4), Some(6), None]);
            assert_eq!(calls(&backend), vec![4], "one call either way");
            // Levels passed, the wrapper's end included: the prefetch's, then the end; or the
            // load's, the deferred items', then the end.
            let levels = scheduler.shared.lock().level;
            assert_eq!(levels, if prefetch { 2 } else { 3 }, "prefetched: {prefetch}");
        }
    }

    /// `load_each` answers every key with its own outcome, where `load_many` fails whole: a key
    /// whose earlier call failed keeps its error, the others are loaded in one call.
    #[tokio::test]
    async fn each_key_gets_its_own_outcome_in_one_call() {
        let backend = Arc::new(Doubling::default());
        let scheduler = BatchScheduler::new();
        let loader = BatchLoader::new(backend.clone(), &scheduler);
        backend.failing.store(true, Ordering::SeqCst);
        let _ = scheduler.drive(loader.load_one(1)).await;
        backend.failing.store(false, Ordering::SeqCst);
        let keys = vec![1, 2, 13, 3, 2];
        let each = scheduler.drive(loader.load_each(keys.clone())).await;
        let codes: Vec<Result<Option<u64>, &str>> =
            each.iter().map(|outcome| outcome.as_ref().map(|v| *v).map_err(|e| e.code())).collect();
        assert_eq!(codes, [Err("BACKEND_UNAVAILABLE"), Ok(Some(4)), Ok(None), Ok(Some(6)), Ok(Some(4))]);
        assert_eq!(calls(&backend), vec![1, 3], "the failed key is not asked again; 2, 13 and 3 in one call");
        let whole = scheduler.drive(loader.load_many(keys)).await;
        assert_eq!(whole.err().map(|e| e.code()), Some("BACKEND_UNAVAILABLE"));
        assert!(loader.inner.lock().waiters.is_empty(), "no waiter left behind");
    }

    #[tokio::test]
    async fn a_load_outside_any_wrapper_still_batches_its_turn() {
        let backend = Arc::new(Doubling::default());
        let loader = BatchLoader::new(backend.clone(), &BatchScheduler::new());
        let answers = list(&loader, 0..40).await;
        assert_eq!(answers.iter().flatten().count(), 39);
        assert_eq!(backend.keys_asked.load(Ordering::SeqCst), 40, "every key asked once");
    }
}
