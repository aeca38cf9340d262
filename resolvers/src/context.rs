//! What each request brings to the resolvers: the caller, their loaders, and how migrated fields
//! are routed for them.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use async_graphql::{Context, Error};
use banyan_migration::CallContext;
use banyan_sources::loaders::Loaders;
use banyan_sources::{Caller, Sources};
use chrono::{DateTime, Utc};

use crate::error::unauthenticated;
use crate::migrated::{RequestRouting, ShadowRounds};

/// The signed-in caller of one request (or one WebSocket operation), the batch loaders acting
/// for them, and the routing of migrated fields. The gateway puts one into each request's data
/// once the caller's identity is checked; without it, every field that reads data answers
/// `UNAUTHENTICATED`.
pub struct RequestScope {
    /// Who is asking.
    pub caller: Caller,
    /// What the current answer reads through: the request's one, or a subscription's current
    /// event's ([`NextAnswer`]).
    answer: Arc<ArcSwap<Answer>>,
    /// The clients, for migrated sides that have no loader.
    pub(crate) sources: Sources,
    /// One snapshot of the routing table, the subject it decides for, and any override.
    pub routing: RequestRouting,
    /// What the request's shadowed calls tell the recorder about it (operation, variables,
    /// user), made at its first shadowed call and shared by the others.
    pub(crate) shadow_context: OnceLock<CallContext>,
    /// The request's shadow batches, one per migrated field whose page prefetched for its items.
    /// Dropped with the request, which compares whatever items a batch still holds; a
    /// subscription ends their rounds as each next event arrives ([`NextAnswer::next`]).
    pub(crate) shadow_batches: ShadowRounds,
}

/// What one answer reads the backends through. A request has one answer; a subscription one
/// per event, each reading the data as it stands when the event is resolved, as a query made
/// then would.
struct Answer {
    /// Loaders acting for the caller, their caches this answer's only (shared with shadow calls
    /// that outlive a field's resolver).
    loaders: Arc<Loaders>,
    /// When the answer started: where its stats windows end.
    started_at: DateTime<Utc>,
}

impl RequestScope {
    /// The scope of a request (or WebSocket operation) by `caller` starting now: stats windows
    /// end at this moment for every field of it, every migrated field routes by `routing`, and
    /// its backend calls are counted on a budget of its own (`caller.budget`, fresh here).
    pub fn new(sources: &Sources, caller: Caller, routing: RequestRouting) -> Self {
        let started_at = Utc::now();
        let caller = caller.for_request();
        let loaders = Arc::new(Loaders::new(sources, &caller, started_at));
        Self {
            caller,
            answer: Arc::new(ArcSwap::from_pointee(Answer { loaders, started_at })),
            sources: sources.clone(),
            routing,
            shadow_context: OnceLock::new(),
            shadow_batches: ShadowRounds::default(),
        }
    }

    /// The loaders of the current answer.
    pub fn loaders(&self) -> Arc<Loaders> {
        self.answer.load().loaders.clone()
    }

    /// The loaders of whichever answer is current when asked: for what runs later on the
    /// answer's behalf (a shadow batch's comparison).
    pub(crate) fn current_loaders(&self) -> CurrentLoaders {
        CurrentLoaders(self.answer.clone())
    }

    /// Where the current answer's stats windows end.
    pub(crate) fn started_at(&self) -> DateTime<Utc> {
        self.answer.load().started_at
    }

    /// The scheduler of this request's loaders (every answer's): run the request's execution in
    /// its [`drive`](banyan_sources::loaders::BatchScheduler::drive) (or `drive_stream`) so they
    /// batch level by level.
    pub fn batch_scheduler(&self) -> banyan_sources::loaders::BatchScheduler {
        self.loaders().scheduler().clone()
    }

    /// For an operation that gives more than one answer (a subscription): call
    /// [`NextAnswer::next`] before resolving each event.
    pub(crate) fn next_answer(&self) -> NextAnswer {
        NextAnswer {
            answer: self.answer.clone(),
            sources: self.sources.clone(),
            caller: self.caller.clone(),
            rounds: self.shadow_batches.clone(),
        }
    }
}

/// The loaders of a scope's current answer, asked when needed (see
/// [`RequestScope::current_loaders`]).
#[derive(Clone)]
pub(crate) struct CurrentLoaders(Arc<ArcSwap<Answer>>);

impl CurrentLoaders {
    pub(crate) fn get(&self) -> Arc<Loaders> {
        self.0.load().loaders.clone()
    }
}

/// Moves a [`RequestScope`] on from one answer to the next. Cheap to clone.
#[derive(Clone)]
pub(crate) struct NextAnswer {
    answer: Arc<ArcSwap<Answer>>,
    sources: Sources,
    caller: Caller,
    rounds: ShadowRounds,
}

impl NextAnswer {
    /// A new answer starts (a subscription's event arrived), the last one being complete: the
    /// shadow batches compare the items that came for it and give their slots back, and the new
    /// answer reads through fresh loaders (empty caches, stats windows ending now) on the same
    /// scheduler. Loads still running for the last answer (a shadow's detached calls) keep the
    /// loaders they started with.
    pub(crate) fn next(&self) {
        self.rounds.end();
        let now = Utc::now();
        let loaders = self.answer.load().loaders.for_next_answer(&self.sources, &self.caller, now);
        self.answer.store(Arc::new(Answer { loaders: Arc::new(loaders), started_at: now }));
    }
}

/// The request's scope, or `UNAUTHENTICATED`.
pub(crate) fn scope<'a>(ctx: &Context<'a>) -> Result<&'a RequestScope, Error> {
    ctx.data_opt::<RequestScope>().ok_or_else(unauthenticated)
}
