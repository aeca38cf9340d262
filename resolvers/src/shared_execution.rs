//! One execution shared by the subscribers of one operation: what `templateEvents` tells a
//! transport that offers to share, and what the transport gives the shared execution.
//!
//! **Per subscriber**, the transport runs the subscriber's own execution with a [`ShareOffer`]
//! in its data. Parsing, validation, the limits, the argument checks and the visibility of every
//! template to this caller all run as for any subscription; then, when the payload cannot depend
//! on the caller, the resolver accepts the offer instead of following the events: it records a
//! [`SharePlan`] (what the payload depends on, and where this subscriber's own errors point) and
//! returns an empty stream, so that execution ends and its state (document, variables, scope and
//! loaders) is freed. It accepts only when it is sure: no `afterSequence` (a replay is per
//! subscriber), a selection made of caller-independent fields (`event_memo::SelectionKey`), the
//! field alone at the root with no directive.
//!
//! **Per plan**, the transport runs one execution of the operation with a [`SharedFeed`] in its
//! data: the events it opened. There the resolver checks nothing more (each subscriber was
//! checked above, and is re-checked by the transport) and follows those events, noting the
//! sequence of each so the transport knows where every subscriber stands.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Error, Pos, Response, ServerError};
use banyan_sources::domain::TemplateId;
use banyan_sources::{Caller, FeedError, SharedEventStream, SourceError, Sources};
use tokio::sync::Notify;

/// In a subscription request's data: the transport can share one execution among the
/// subscribers of one plan. The resolver accepts by leaving a [`SharePlan`] here, or declines
/// (so that the transport lets go at once of what it kept to share).
#[derive(Clone, Default)]
pub struct ShareOffer(Arc<OfferState>);

#[derive(Default)]
struct OfferState {
    plan: Mutex<Option<SharePlan>>,
    decided: Notify,
}

impl ShareOffer {
    /// An offer not yet answered.
    pub fn new() -> Self {
        Self::default()
    }

    /// The plan, once the resolver has accepted the offer.
    pub fn take(&self) -> Option<SharePlan> {
        self.0.plan.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Whether the resolver accepted (and the plan was not taken yet).
    pub fn is_accepted(&self) -> bool {
        self.0.plan.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Resolves once the resolver has accepted or declined the offer.
    pub async fn decided(&self) {
        self.0.decided.notified().await;
    }

    pub(crate) fn accept(&self, plan: SharePlan) {
        *self.0.plan.lock().unwrap_or_else(PoisonError::into_inner) = Some(plan);
        self.0.decided.notify_one();
    }

    pub(crate) fn decline(&self) {
        self.0.decided.notify_one();
    }
}

/// What a shareable subscription's payloads depend on, and where its own errors point.
#[derive(Debug, Clone)]
pub struct SharePlan {
    /// The templates followed, sorted, without duplicates.
    pub templates: Arc<[TemplateId]>,
    /// The root field's response key and what it selects of each event: with `templates`, all
    /// a payload depends on (spelling, fragments and variable names aside).
    pub selection: Arc<str>,
    /// The root field's response key: the path of an error that ends this subscriber.
    pub response_key: Arc<str>,
    /// The root field's place in this subscriber's document: the location of such an error.
    pub position: Pos,
}

impl SharePlan {
    /// The response that ends this subscriber with `error`, as its own execution would have
    /// reported it (no data; the error at the root field's location and path). Not yet masked.
    pub fn error_response(&self, error: Error) -> Response {
        let error: ServerError = error
            .into_server_error(self.position)
            .with_path(vec![async_graphql::PathSegment::Field(self.response_key.to_string())]);
        Response::from_errors(vec![error])
    }
}

/// In a shared execution's data: the events it follows, and the sequence of the last one taken.
#[derive(Clone)]
pub struct SharedFeed(Arc<SharedFeedInner>);

struct SharedFeedInner {
    events: Mutex<Option<SharedEventStream>>,
    last_sequence: AtomicU64,
}

impl SharedFeed {
    /// A shared execution's events, from a sequence on (0: none taken yet).
    pub fn new(events: SharedEventStream, after: u64) -> Self {
        Self(Arc::new(SharedFeedInner {
            events: Mutex::new(Some(events)),
            last_sequence: AtomicU64::new(after),
        }))
    }

    /// The sequence of the last event the execution took: the one its latest payload is about,
    /// as it takes the next only once that payload is out.
    pub fn last_sequence(&self) -> u64 {
        self.0.last_sequence.load(Ordering::Acquire)
    }

    /// The events, once: the execution's resolver takes them.
    pub(crate) fn take_events(&self) -> Option<SharedEventStream> {
        self.0.events.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    pub(crate) fn took(&self, sequence: u64) {
        self.0.last_sequence.store(sequence, Ordering::Release);
    }
}

/// The error that ends a subscriber whose buffer filled (`SUBSCRIBER_TOO_SLOW`, with
/// `extensions.lastSequence`), as the resolver's own stream reports it.
pub fn too_slow(last_sequence: u64) -> Error {
    crate::subscription::feed_error(FeedError::TooSlow { last_sequence })
}

/// The error of a subscription whose events could not be opened.
pub fn feed_failed(error: SourceError) -> Error {
    crate::error::from_source(error)
}

/// Why `caller` may no longer follow `templates` (`NOT_FOUND`, or its credential's refusal),
/// asked of the monolith as a running subscription's re-check does; `None` while it may, or when
/// the monolith could not answer (a blip does not end subscriptions).
pub async fn visibility_refusal(
    sources: &Sources,
    caller: &Caller,
    templates: &[TemplateId],
) -> Option<Error> {
    crate::subscription::refusal(sources, caller, templates).await
}
