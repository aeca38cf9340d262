//! What each request brings to the resolvers: the caller, their loaders, and how migrated fields
//! are routed for them.

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::{Context, Error};
use banyan_migration::{CallContext, FieldKey};
use banyan_sources::loaders::Loaders;
use banyan_sources::{Caller, Sources};

use crate::error::unauthenticated;
use crate::migrated::RequestRouting;

/// The signed-in caller of one request (or one WebSocket operation), the batch loaders acting
/// for them, and the routing of migrated fields. The gateway puts one into each request's data
/// once the caller's identity is checked; without it, every field that reads data answers
/// `UNAUTHENTICATED`.
pub struct RequestScope {
    /// Who is asking.
    pub caller: Caller,
    /// Loaders acting for `caller`, alive for this request only (shared with shadow calls that
    /// outlive a field's resolver).
    pub loaders: Arc<Loaders>,
    /// The clients, for migrated sides that have no loader.
    pub(crate) sources: Sources,
    /// One snapshot of the routing table, the subject it decides for, and any override.
    pub routing: RequestRouting,
    /// When the request started: where its stats windows end.
    pub(crate) started_at: chrono::DateTime<chrono::Utc>,
    /// What the request's shadowed calls tell the recorder about it (operation, variables,
    /// user), made at its first shadowed call and shared by the others.
    pub(crate) shadow_context: OnceLock<CallContext>,
    /// The request's shadow batches, one per migrated field whose page prefetched for its items
    /// (each a `banyan_migration::ShadowBatch` of that field's types). Dropped with the request,
    /// which compares whatever items a batch still holds.
    pub(crate) shadow_batches: Mutex<Vec<(FieldKey, Arc<dyn Any + Send + Sync>)>>,
}

impl RequestScope {
    /// The scope of a request (or WebSocket operation) by `caller` starting now: stats windows
    /// end at this moment for every field of it, every migrated field routes by `routing`, and
    /// its backend calls are counted on a budget of its own (`caller.budget`, fresh here).
    pub fn new(sources: &Sources, caller: Caller, routing: RequestRouting) -> Self {
        let started_at = chrono::Utc::now();
        let caller = caller.for_request();
        let loaders = Arc::new(Loaders::new(sources, &caller, started_at));
        Self {
            caller,
            loaders,
            sources: sources.clone(),
            routing,
            started_at,
            shadow_context: OnceLock::new(),
            shadow_batches: Mutex::default(),
        }
    }
}

impl RequestScope {
    /// The scheduler of this request's loaders: run the request's execution in its
    /// [`drive`](banyan_sources::loaders::BatchScheduler::drive) (or `drive_stream`) so they
    /// batch level by level.
    pub fn batch_scheduler(&self) -> banyan_sources::loaders::BatchScheduler {
        self.loaders.scheduler().clone()
    }
}

/// The request's scope, or `UNAUTHENTICATED`.
pub(crate) fn scope<'a>(ctx: &Context<'a>) -> Result<&'a RequestScope, Error> {
    ctx.data_opt::<RequestScope>().ok_or_else(unauthenticated)
}
