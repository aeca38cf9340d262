//! One upstream `StreamEvents` stream per distinct set of templates, fanned out to every
//! subscriber of that set.
//!
//! **Why per set, not per template.** The event store sends one stream's events in sequence
//! order (it broadcasts under its append lock), but two streams are not ordered against each
//! other and its protocol carries no watermark. Merging per-template streams into one feed in
//! sequence order would mean holding an event of one template until every other template's
//! stream had passed its sequence, which the gateway cannot know. Keyed by the sorted set, a
//! feed is exactly one upstream stream and inherits its order; the event store serves one stream
//! per distinct set the dashboards hold (tabs of the same workspace ask for the same set) instead
//! of one per tab. Overlapping but different sets cost one stream each.
//!
//! **A feed** ([`Feed`]) is reference-counted by its subscribers: the last one to leave (its
//! stream dropped: `complete`, the socket gone, the connection closed) aborts the feed's task,
//! which drops the gRPC stream and so cancels the call. Each subscriber has a bounded buffer
//! (`subscriber_buffer` events); the feed never waits for a subscriber: one whose buffer is full
//! is detached, drains what its buffer holds, and then ends with [`FeedError::TooSlow`] carrying
//! the last sequence it delivered, so the client resumes with `afterSequence` and loses nothing.
//!
//! **Joining at a defined sequence.** A feed knows its position: the highest sequence it has
//! forwarded (or the `afterSequence` it was opened at). A subscriber is registered under the
//! feed's lock, which is also where events are forwarded, so it receives exactly the events
//! after the position at its join. Without `afterSequence` that is where it starts. With
//! `afterSequence` at or past the position it skips up to it; behind the position (or before
//! the feed has a position), it first reads a private catch-up stream from `afterSequence` until
//! that stream reaches the position (or the first event its buffer holds), then continues from
//! its buffer. Sequences are compared on every hand-over, so nothing arrives twice.
//!
//! **Upstream failure.** When the upstream stream fails or ends after it was open, the feed
//! reopens it with back-off (`reconnect_backoff`, doubling up to [`MAX_RECONNECT_BACKOFF`]) from
//! the last sequence it forwarded, so subscribers see no gap; after `reconnect_attempts`
//! failures in a row with no event between them (or an open breaker each time), every subscriber
//! gets the failure's code and its stream ends. A stream that fails to open the first time fails
//! its subscribers at once, as an unshared one would. Until a feed opened "from now" has
//! forwarded its first event it has no sequence to resume from: a reconnect in that window
//! resumes from the event store's "now" again.
//!
//! **Identity.** A shared stream serves many callers, so it is opened with the gateway's own
//! identity ([`GATEWAY_USER_ID`], signed like any call, no caller's forwarded headers), never
//! with the identity of whichever subscriber came first. That is sound because of what the event
//! store authorises: it verifies that a call was signed by the gateway and does not filter events
//! by user (the gateway checks visibility against the monolith). Each subscriber's visibility is
//! checked by the resolver when it subscribes and again while it runs, and a feed holds exactly
//! one set, so a subscriber only ever receives events of templates it was allowed to follow. An
//! event store that authorised per user would need `share_upstream = false`, which opens one
//! stream per subscription with its caller's identity, as before.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::AbortHandle;

use crate::budget::CallBudget;
use crate::domain::{EmailEvent, TemplateId, UserId};
use crate::error::{Backend, SourceError};
use crate::events::{EventStream, EventsClient};
use crate::identity::{Caller, Credential};
use crate::metrics::{BackendMetrics, SharedSubscriberGuard};

/// The user id a shared stream is signed with: the gateway acting for itself. No monolith user
/// has id 0 (primary keys start at 1).
pub const GATEWAY_USER_ID: u64 = 0;

/// The longest wait between two reconnect attempts.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(5);

/// How subscriptions share upstream streams (the gateway's `[subscriptions]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutOptions {
    /// Share one upstream stream per distinct set of templates (default `true`).
    pub share_upstream: bool,
    /// Events buffered per subscriber before it is ended as too slow (default 256).
    pub subscriber_buffer: usize,
    /// Failed reconnects in a row (no event between them) before subscribers get the error
    /// (default 5).
    pub reconnect_attempts: u32,
    /// The first wait before a reconnect, doubled on each further failure (default 100 ms).
    pub reconnect_backoff: Duration,
}

impl Default for FanoutOptions {
    fn default() -> Self {
        Self {
            share_upstream: true,
            subscriber_buffer: 256,
            reconnect_attempts: 5,
            reconnect_backoff: Duration::from_millis(100),
        }
    }
}

/// Why a subscriber's stream ended with an error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeedError {
    /// The event store failed (and reconnecting did not help).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The subscriber's buffer overflowed: it read slower than events came. Every event up to
    /// `last_sequence` was delivered; resume with `afterSequence: last_sequence`.
    #[error("the subscriber did not keep up; resume after sequence {last_sequence}")]
    TooSlow {
        /// The last sequence delivered to the subscriber (or its starting point).
        last_sequence: u64,
    },
}

/// One subscriber's events, in sequence order, shared as they are among subscribers.
pub type SharedEventStream = Pin<Box<dyn Stream<Item = Result<Arc<EmailEvent>, FeedError>> + Send>>;

/// A feed's key: the sorted, de-duplicated template ids.
type FeedKey = Arc<[TemplateId]>;

/// The feeds of one events client (shared by its clones).
#[derive(Debug, Clone)]
pub(crate) struct EventHub(Arc<HubInner>);

#[derive(Debug)]
struct HubInner {
    options: FanoutOptions,
    feeds: Mutex<HashMap<FeedKey, Arc<Feed>>>,
    /// Numbers feeds, for the request id their streams carry.
    opened: AtomicU64,
}

/// One shared upstream stream and its subscribers.
#[derive(Debug)]
struct Feed {
    key: FeedKey,
    /// `banyan-feed-<n>`: the request id of its upstream calls, for the event store's logs.
    name: String,
    state: Mutex<FeedState>,
}

#[derive(Debug, Default)]
struct FeedState {
    /// The highest sequence forwarded, or the sequence the feed was opened after.
    position: Option<u64>,
    subscribers: HashMap<u64, Slot>,
    next_subscriber: u64,
    /// No longer in the hub: its task is stopping or stopped.
    closed: bool,
    task: Option<AbortHandle>,
}

/// A subscriber as its feed sees it.
#[derive(Debug)]
struct Slot {
    sender: mpsc::Sender<Arc<EmailEvent>>,
    ending: Arc<OnceLock<Ending>>,
}

/// Why a feed let go of a subscriber (read once its buffer is drained).
#[derive(Debug, Clone)]
enum Ending {
    TooSlow,
    Failed(SourceError),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; a poisoned one still holds consistent state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventHub {
    pub(crate) fn new(options: FanoutOptions) -> Self {
        Self(Arc::new(HubInner { options, feeds: Mutex::default(), opened: AtomicU64::new(0) }))
    }

    /// `share_upstream`.
    pub(crate) fn shares_upstream(&self) -> bool {
        self.0.options.share_upstream
    }

    /// A subscriber's stream (see [`EventsClient::subscribe`]); `counted` in
    /// `banyan_subscription_shared_subscribers` unless it serves a shared execution.
    pub(crate) async fn subscribe(
        self,
        client: &EventsClient,
        caller: &Caller,
        templates: &[TemplateId],
        after: Option<u64>,
        counted: bool,
    ) -> Result<SharedEventStream, SourceError> {
        if !self.0.options.share_upstream {
            let stream = client.open_stream(caller, templates, after.unwrap_or(0)).await?;
            return Ok(stream.map(|item| item.map(Arc::new).map_err(FeedError::from)).boxed());
        }
        let mut key: Vec<TemplateId> = templates.to_vec();
        key.sort_unstable();
        key.dedup();
        let key: FeedKey = key.into();
        let Joined { membership, receiver, ending, catch_up } = self.join(client, key.clone(), after);
        let catch_up = match catch_up {
            Some((from, handoff)) => {
                // Opened before the subscription counts as started, so a failure is its answer.
                let stream = client.open_stream(&gateway_caller("banyan-catch-up"), &key, from).await?;
                Some(CatchUp { stream, handoff })
            }
            None => None,
        };
        let reader = Reader {
            _counted: counted.then(|| client.metrics().shared_subscriber()),
            _membership: membership,
            receiver,
            ending,
            last: after.unwrap_or(0),
            catch_up,
            pending: None,
            done: false,
        };
        Ok(futures::stream::unfold(reader, |mut reader| async move {
            let item = reader.next().await?;
            Some((item, reader))
        })
        .boxed())
    }

    /// Registers a subscriber with the feed of `key`, opening the feed when there is none; returns
    /// what the subscriber reads, and, when it must catch up first, from which sequence and up to
    /// which (`None`: up to the first event its buffer receives).
    fn join(&self, client: &EventsClient, key: FeedKey, after: Option<u64>) -> Joined {
        let (sender, receiver) = mpsc::channel(self.0.options.subscriber_buffer.max(1));
        let ending = Arc::new(OnceLock::new());
        let mut feeds = lock(&self.0.feeds);
        let existing = feeds.get(&key).filter(|feed| !lock(&feed.state).closed).cloned();
        let (feed, created) = match existing {
            Some(feed) => (feed, false),
            None => {
                let n = self.0.opened.fetch_add(1, Ordering::Relaxed);
                let feed = Arc::new(Feed {
                    key: key.clone(),
                    name: format!("banyan-feed-{n}"),
                    state: Mutex::new(FeedState {
                        position: after.filter(|a| *a > 0),
                        ..FeedState::default()
                    }),
                });
                feeds.insert(key, feed.clone());
                (feed, true)
            }
        };
        let mut state = lock(&feed.state);
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        state.subscribers.insert(id, Slot { sender, ending: ending.clone() });
        let position = state.position;
        if created {
            let task = tokio::spawn(run_feed(self.clone(), feed.clone(), client.clone(), after.unwrap_or(0)));
            state.task = Some(task.abort_handle());
        }
        drop(state);
        drop(feeds);
        let catch_up = match (created, after, position) {
            (true, _, _) | (false, None, _) => None,
            (false, Some(from), Some(position)) if from >= position => None,
            (false, Some(from), position) => Some((from, position)),
        };
        Joined { membership: Membership { hub: self.clone(), feed, id }, receiver, ending, catch_up }
    }

    /// Sends `event` to every subscriber of `feed`; detaches those whose buffer is full. False
    /// once the feed has no subscriber left (it is then closed).
    fn forward(&self, feed: &Arc<Feed>, event: EmailEvent, metrics: &BackendMetrics) -> bool {
        let mut state = lock(&feed.state);
        if state.closed {
            return false;
        }
        // A resumed stream may repeat what was forwarded before the failure.
        if state.position.is_some_and(|position| event.sequence <= position) {
            return true;
        }
        state.position = Some(event.sequence);
        let event = Arc::new(event);
        let mut overflowed = 0_u64;
        state.subscribers.retain(|_, slot| match slot.sender.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                let _ = slot.ending.set(Ending::TooSlow);
                overflowed += 1;
                false
            }
            Err(TrySendError::Closed(_)) => false,
        });
        let empty = state.subscribers.is_empty();
        drop(state);
        if overflowed > 0 {
            tracing::debug!(feed = %feed.name, overflowed, "subscribers ended as too slow");
        }
        (0..overflowed).for_each(|_| metrics.subscriber_overflowed());
        !(empty && self.retire(feed))
    }

    /// Closes `feed` if it has no subscriber; whether it did (or it was closed already).
    fn retire(&self, feed: &Arc<Feed>) -> bool {
        let mut feeds = lock(&self.0.feeds);
        let mut state = lock(&feed.state);
        if state.closed {
            return true;
        }
        if !state.subscribers.is_empty() {
            return false;
        }
        state.closed = true;
        if let Some(task) = state.task.take() {
            task.abort();
        }
        if feeds.get(&feed.key).is_some_and(|current| Arc::ptr_eq(current, feed)) {
            feeds.remove(&feed.key);
        }
        true
    }

    /// Ends every subscriber of `feed` with `error` (after what their buffers hold) and closes it.
    fn fail(&self, feed: &Arc<Feed>, error: &SourceError) {
        let mut feeds = lock(&self.0.feeds);
        let mut state = lock(&feed.state);
        state.closed = true;
        for (_, slot) in state.subscribers.drain() {
            let _ = slot.ending.set(Ending::Failed(error.clone()));
        }
        if feeds.get(&feed.key).is_some_and(|current| Arc::ptr_eq(current, feed)) {
            feeds.remove(&feed.key);
        }
    }

    fn leave(&self, feed: &Arc<Feed>, id: u64) {
        let feeds = lock(&self.0.feeds);
        let mut state = lock(&feed.state);
        state.subscribers.remove(&id);
        let empty = state.subscribers.is_empty();
        drop(state);
        drop(feeds);
        if empty {
            self.retire(feed);
        }
    }
}

/// What [`EventHub::join`] gives a new subscriber.
struct Joined {
    membership: Membership,
    receiver: mpsc::Receiver<Arc<EmailEvent>>,
    ending: Arc<OnceLock<Ending>>,
    /// Catch up from this sequence first, up to the second (`None`: up to the first event the
    /// buffer receives).
    catch_up: Option<(u64, Option<u64>)>,
}

/// A subscriber's place in its feed; leaving it (dropping) is what reference-counts the feed.
struct Membership {
    hub: EventHub,
    feed: Arc<Feed>,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.feed, self.id);
    }
}

/// A private stream replaying what a late subscriber missed.
struct CatchUp {
    stream: EventStream,
    /// Hand over to the buffer once this sequence is delivered; `None` until the buffer's first
    /// event says where the feed's coverage starts.
    handoff: Option<u64>,
}

/// One subscriber's side: its buffer, and the catch-up stream while there is one.
struct Reader {
    /// `None` for a shared execution, whose subscribers are counted one by one instead.
    _counted: Option<SharedSubscriberGuard>,
    _membership: Membership,
    receiver: mpsc::Receiver<Arc<EmailEvent>>,
    ending: Arc<OnceLock<Ending>>,
    /// The highest sequence delivered (or the starting point): nothing at or below it is sent.
    last: u64,
    catch_up: Option<CatchUp>,
    /// An event taken from the buffer during catch-up, delivered after it.
    pending: Option<Arc<EmailEvent>>,
    done: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<Arc<EmailEvent>, FeedError>> {
        if self.done {
            return None;
        }
        while let Some(catch_up) = &mut self.catch_up {
            if catch_up.handoff.is_some_and(|handoff| self.last >= handoff) {
                self.catch_up = None;
                break;
            }
            let learn_handoff = catch_up.handoff.is_none() && self.pending.is_none();
            tokio::select! {
                item = catch_up.stream.next() => match item {
                    Some(Ok(event)) => {
                        if event.sequence > self.last {
                            self.last = event.sequence;
                            return Some(Ok(Arc::new(event)));
                        }
                    }
                    Some(Err(error)) => {
                        self.done = true;
                        return Some(Err(error.into()));
                    }
                    None => {
                        self.done = true;
                        return Some(Err(stream_ended().into()));
                    }
                },
                received = self.receiver.recv(), if learn_handoff => match received {
                    Some(event) => {
                        catch_up.handoff = Some(event.sequence);
                        self.pending = Some(event);
                    }
                    // The feed let go of this subscriber before forwarding it anything.
                    None => self.catch_up = None,
                },
            }
        }
        loop {
            let received = match self.pending.take() {
                Some(event) => Some(event),
                None => self.receiver.recv().await,
            };
            match received {
                Some(event) if event.sequence <= self.last => continue,
                Some(event) => {
                    self.last = event.sequence;
                    return Some(Ok(event));
                }
                None => {
                    self.done = true;
                    return match self.ending.get() {
                        Some(Ending::TooSlow) => Some(Err(FeedError::TooSlow { last_sequence: self.last })),
                        Some(Ending::Failed(error)) => Some(Err(error.clone().into())),
                        None => None,
                    };
                }
            }
        }
    }
}

/// The identity of a shared (or catch-up) stream: the gateway itself, no caller's headers.
fn gateway_caller(request_id: &str) -> Caller {
    Caller {
        // Never sent: the services receive the signed user id only.
        credential: Credential::Token(String::new()),
        user_id: UserId(GATEWAY_USER_ID),
        request_id: Some(request_id.to_owned()),
        budget: CallBudget::unlimited(),
        forwarded_headers: Vec::new(),
        // A shared stream belongs to no request's trace.
        trace: crate::trace::TraceContext::off(),
    }
}

fn stream_ended() -> SourceError {
    SourceError::Unavailable { backend: Backend::Events, detail: "the event stream ended".to_owned() }
}

/// Keeps `feed`'s upstream stream open and forwards its events until the feed closes.
async fn run_feed(hub: EventHub, feed: Arc<Feed>, client: EventsClient, start_after: u64) {
    let options = hub.0.options.clone();
    let caller = gateway_caller(&feed.name);
    let mut failures: u32 = 0;
    let mut opened_once = false;
    loop {
        // Resume after the last event forwarded (or the starting point).
        let after = lock(&feed.state).position.unwrap_or(start_after);
        let opened = if opened_once && client.resilience().breaker_open() {
            Err(SourceError::Unavailable {
                backend: Backend::Events,
                detail: "the circuit breaker is open".to_owned(),
            })
        } else {
            client.open_stream(&caller, &feed.key, after).await
        };
        let failure = match opened {
            Ok(mut stream) => {
                opened_once = true;
                tracing::debug!(feed = %feed.name, after, templates = feed.key.len(), "shared event stream open");
                loop {
                    match stream.next().await {
                        Some(Ok(event)) => {
                            failures = 0;
                            if !hub.forward(&feed, event, client.metrics()) {
                                return;
                            }
                        }
                        Some(Err(error)) => break error,
                        None => break stream_ended(),
                    }
                }
            }
            Err(error) => error,
        };
        failures += 1;
        if !opened_once || failures > options.reconnect_attempts {
            tracing::warn!(feed = %feed.name, error = %failure, failures, "shared event stream failed; ending its subscriptions");
            hub.fail(&feed, &failure);
            return;
        }
        let backoff = options
            .reconnect_backoff
            .saturating_mul(2_u32.saturating_pow(failures - 1))
            .min(MAX_RECONNECT_BACKOFF);
        tracing::info!(feed = %feed.name, error = %failure, failures, ?backoff, "shared event stream failed; reconnecting");
        client.metrics().upstream_reconnected();
        tokio::time::sleep(backoff).await;
    }
}
