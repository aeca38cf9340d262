//! Migrated fields, bound to the loaders of each side and served through the migration engine.
//!
//! A migrated read is its declaration (in `banyan_migration::banyan`) plus one [`MigratedRead`]
//! binding here: which loader call each backend makes. Everything else comes from the one
//! generic path, [`read`]: the request's decision from its table snapshot (and override), the
//! executor running the chosen side as primary and, when the decision says so, the other side as
//! a shadow compared on the JSON of the domain value, the note of who served for the response's
//! `extensions`, and [`prefetch`] for pages, which warms the same side the fields will read.

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::{Context, ContextBase, Result};
use banyan_migration::banyan::{
    DELETE_DRAFT_BLOCK, INSERT_DRAFT_BLOCK, TEMPLATE_DRAFT, TEMPLATE_RECENT_EVENTS, TEMPLATE_STATS,
    UPDATE_DRAFT_BLOCK,
};
use banyan_migration::{
    Backend, BatchSecondary, CallContext, DecidedBy, Decision, Engine, FieldDeclaration, FieldKey, Overrides,
    RequestSubject, RoutingTable, ShadowBatch, ShadowPurpose,
};
use banyan_sources::SourceError;
use banyan_sources::domain::{Draft, EventPage, TemplateId, TemplateStats};
use banyan_sources::loaders::{EventsPageKey, Loaders, StatsKey};
use serde::Serialize;

use crate::context::{CurrentLoaders, RequestScope, scope};
use crate::error::{SourceResultExt, coded, codes};

/// How one request (or WebSocket operation) routes migrated fields: one snapshot of the table,
/// who is asking, and any per-request override. Every field of the request decides from these,
/// so a table reload never splits a request and a page's prefetch agrees with its fields.
#[derive(Debug)]
pub struct RequestRouting {
    table: Arc<RoutingTable>,
    subject: RequestSubject,
    overrides: Overrides,
    served: Option<ServedLog>,
    /// Each field's decision, made once: it depends only on the above, and a page of 50 items
    /// would otherwise hash the request id twice per item in shadow.
    decided: Mutex<Vec<Decided>>,
}

/// One field's decision for the request, and how long the request's last prefetch of the field
/// waited for its backend: the latency its page's items record, answered by that call.
#[derive(Debug)]
struct Decided {
    decision: Decision,
    prefetched: Option<Duration>,
}

impl RequestRouting {
    /// Routing from `table` (one [`banyan_migration::LiveTable::snapshot`]) for `subject`, with
    /// `overrides` forced first.
    pub fn new(table: Arc<RoutingTable>, subject: RequestSubject, overrides: Overrides) -> Self {
        Self { table, subject, overrides, served: None, decided: Mutex::new(Vec::new()) }
    }

    /// Also notes, in `log`, which backend serves each migrated field at each path.
    pub fn noting_into(mut self, log: ServedLog) -> Self {
        self.served = Some(log);
        self
    }

    /// What this request does for `key`.
    pub fn decide(&self, key: FieldKey) -> Decision {
        self.decide_read(key).0
    }

    /// What this request does for `key`, and how long its prefetch of the field waited for the
    /// backend, if it prefetched ([`Self::note_prefetched`]).
    fn decide_read(&self, key: FieldKey) -> (Decision, Option<Duration>) {
        let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = decided.iter().find(|known| known.decision.key == key) {
            return (known.decision, known.prefetched);
        }
        let decision = self.table.decide_with(key, &self.subject, &self.overrides);
        decided.push(Decided { decision, prefetched: None });
        (decision, None)
    }

    /// Notes that a prefetch of `key` waited `waited` for its backend.
    fn note_prefetched(&self, key: FieldKey, waited: Duration) {
        let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = decided.iter_mut().find(|known| known.decision.key == key) {
            known.prefetched = Some(waited);
        }
    }

    /// The table snapshot this request decides from.
    pub fn table(&self) -> &Arc<RoutingTable> {
        &self.table
    }

    fn note(&self, path: impl FnOnce() -> String, decision: &Decision) {
        let Some(log) = &self.served else { return };
        let mode = match decision.decided_by {
            DecidedBy::Forced => "forced",
            _ => self.table.route(decision.key).map_or("default", |route| route.mode_name()),
        };
        log.push(Served {
            path: path(),
            field: decision.key.as_str(),
            backend: decision.serve,
            mode,
            shadow: decision.shadow.map(|plan| plan.call),
        });
    }
}

/// Which backend served one migrated field at one path of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    /// The field's path in the response (`template.stats`, `workspace.templates.edges.0.node.draft`).
    pub path: String,
    /// The migrated field's key (`Template.stats`).
    pub field: &'static str,
    /// The backend whose answer the response holds.
    pub backend: Backend,
    /// The field's mode in the table (`legacy`, `service`, `canary`, `shadow`), or `forced` by
    /// the request's override header.
    pub mode: &'static str,
    /// The backend also called beside it (a shadow comparison or calibration), if any.
    pub shadow: Option<Backend>,
}

/// Where a request notes who served its migrated fields; shared by the resolvers and whoever
/// renders the response. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ServedLog(Arc<Mutex<Vec<Served>>>);

impl ServedLog {
    fn push(&self, served: Served) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(served);
    }

    /// Whether nothing was noted.
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Everything noted since the last take, ordered by path, leaving the log empty: each
    /// answer of an operation (a subscription's events) reports its own fields.
    pub fn take(&self) -> Vec<Served> {
        let mut entries = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries
    }
}

/// What a binding may call on either side: the request's loaders (they hold the caller and the
/// clients; every bound side reads through one).
#[derive(Clone, Copy)]
pub(crate) struct Reach<'a> {
    pub(crate) loaders: &'a Loaders,
}

/// A migrated read field bound to its two implementations.
pub(crate) trait MigratedRead {
    /// The field's declaration; its key names it in the routing table.
    const DECLARATION: &'static FieldDeclaration;
    /// What one call reads (the template, its window, a page).
    type Key: Clone + Send + Sync + 'static;
    /// The domain value both sides return; shadows compare it, and its JSON when it differs.
    type Value: Serialize + Clone + PartialEq + Send + 'static;

    /// Reads `key` from `backend`.
    fn load(
        reach: Reach<'_>,
        backend: Backend,
        key: Self::Key,
    ) -> impl Future<Output = Result<Self::Value, SourceError>> + Send + '_;

    /// Reads every key of a page's shadow batch from `backend`: each key's own outcome, in the
    /// order of `keys`. Sides whose loader can wait for them all at once say so.
    fn load_each(
        reach: Reach<'_>,
        backend: Backend,
        keys: Vec<Self::Key>,
    ) -> impl Future<Output = Vec<Result<Self::Value, SourceError>>> + Send + '_ {
        futures::future::join_all(keys.into_iter().map(move |key| Self::load(reach, backend, key)))
    }

    /// What [`Self::load`] of `key` from `backend` answers without a call or a wait, if the
    /// request's loader holds it already (`BatchLoader::at_hand`). Sides that cannot say answer
    /// `None`, and their field is read as any other.
    fn at_hand(
        _reach: Reach<'_>,
        _backend: Backend,
        _key: &Self::Key,
    ) -> Option<Result<Self::Value, SourceError>> {
        None
    }

    /// Loads `keys` from `backend` into the request's loader cache, for a page about to resolve
    /// the field on each of its items. Sides without a cache do nothing.
    fn prefetch(
        _reach: Reach<'_>,
        _backend: Backend,
        _keys: Vec<Self::Key>,
    ) -> impl Future<Output = Result<(), SourceError>> + Send + '_ {
        async { Ok(()) }
    }
}

/// The migration engine, which the schema holds (`crate::build_schema`): read from the
/// schema's data directly, one lookup, where `ctx.data` would look in the request's and the
/// session's data first, a hash of its type each, for every migrated field of a page's items.
fn engine<'a, T>(ctx: &ContextBase<'a, T>) -> Result<&'a Engine> {
    ctx.schema_env
        .data
        .get(&std::any::TypeId::of::<Engine>())
        .and_then(|engine| engine.downcast_ref())
        .ok_or_else(|| {
            tracing::error!("the schema holds no migration engine");
            coded(codes::INTERNAL_SERVER_ERROR, "internal error")
        })
}

/// The key of `declaration` in the engine's catalog.
fn field_key(engine: &Engine, declaration: &FieldDeclaration) -> Result<FieldKey> {
    engine.catalog().key(declaration.key).ok_or_else(|| {
        tracing::error!(key = declaration.key, "a bound migrated field is missing from the engine's catalog");
        coded(codes::INTERNAL_SERVER_ERROR, "internal error")
    })
}

/// The request's scope, the engine, and the request's decision for the migrated field
/// `declaration`, with how long the request's prefetch of it waited, if it prefetched
/// (`RequestRouting::decide_read`).
fn decision_of<'a>(
    ctx: &Context<'a>,
    declaration: &FieldDeclaration,
) -> Result<(&'a RequestScope, &'a Engine, Decision, Option<Duration>)> {
    let scope = scope(ctx)?;
    let engine = engine(ctx)?;
    let (decision, prefetched) = scope.routing.decide_read(field_key(engine, declaration)?);
    Ok((scope, engine, decision, prefetched))
}

/// Serves the migrated field `F` for `key`: decides from the request's routing, runs the chosen
/// side (and its shadow), notes who served, and maps a backend failure to a field error.
pub(crate) async fn read<F: MigratedRead>(ctx: &Context<'_>, key: F::Key) -> Result<F::Value> {
    let (scope, engine, decision, prefetched) = decision_of(ctx, F::DECLARATION)?;
    let path = || ctx.path_node.map(|node| node.to_string()).unwrap_or_default();
    // Only a request that asked pays for the note of who served.
    scope.routing.note(path, &decision);
    if decision.shadow.is_some() {
        // Behind a box: the shadow's futures are several times the size of a plain read's, and
        // every field of the object holding this one would otherwise be sized for them.
        return Box::pin(read_in_shadow::<F>(ctx, scope, engine, &decision, key, prefetched)).await;
    }
    let loaders = scope.loaders();
    let primary = F::load(Reach { loaders: &loaders }, decision.serve, key);
    engine.executor.serve(&decision, primary, prefetched).await.graphql()
}

/// What the fields at hand of one object (or list) written whole (`crate::lean::Whole`) read of
/// their request, each looked up by the first field that needs it rather than by every item of
/// a page: the request's loaders and each migrated field's decision. And what those fields'
/// reads would record ([`read`]), deferred until the object is complete ([`Self::commit`]) and
/// dropped, with no effect, when it is resolved field by field after all and reads them again.
#[derive(Default)]
pub(crate) struct AtHand {
    loaders: Option<Arc<Loaders>>,
    decided: Vec<DecidedAtHand>,
    served: Vec<ServedAtOnce>,
}

/// A migrated field's decision for the request, kept in [`AtHand`].
struct DecidedAtHand {
    /// The field's key in the catalog (`FieldDeclaration::key`).
    field: &'static str,
    decision: Decision,
    prefetched: Option<Duration>,
    /// Whether the request asked who served its fields (`RequestRouting::note`).
    noting: bool,
}

/// What [`read`] records and notes for one field answered at hand, kept in [`AtHand`].
struct ServedAtOnce {
    decision: Decision,
    prefetched: Option<Duration>,
    /// The field's path, for a request that asked who served.
    path: Option<String>,
}

impl AtHand {
    /// Nothing looked up or deferred yet.
    pub(crate) const fn new() -> Self {
        Self { loaders: None, decided: Vec::new(), served: Vec::new() }
    }

    /// The request's loaders (those of its current answer).
    pub(crate) fn loaders(&mut self, ctx: &Context<'_>) -> Option<&Loaders> {
        if self.loaders.is_none() {
            self.loaders = Some(scope(ctx).ok()?.loaders());
        }
        self.loaders.as_deref()
    }

    /// The request's decision for `F`, as [`read`] makes it.
    fn decided<F: MigratedRead>(&mut self, ctx: &Context<'_>) -> Option<&DecidedAtHand> {
        let known = self.decided.iter().position(|known| known.field == F::DECLARATION.key);
        let at = match known {
            Some(at) => at,
            None => {
                let (scope, _, decision, prefetched) = decision_of(ctx, F::DECLARATION).ok()?;
                let noting = scope.routing.served.is_some();
                self.decided.push(DecidedAtHand { field: F::DECLARATION.key, decision, prefetched, noting });
                self.decided.len() - 1
            }
        };
        self.decided.get(at)
    }

    /// Records and notes what the reads at hand answered, as [`read`] would have: the object
    /// they were written in is complete.
    pub(crate) fn commit<T>(&mut self, ctx: &ContextBase<'_, T>) {
        if self.served.is_empty() {
            return;
        }
        let (Some(scope), Ok(engine)) = (ctx.data_opt::<RequestScope>(), engine(ctx)) else {
            return;
        };
        for ServedAtOnce { decision, prefetched, path } in self.served.drain(..) {
            scope.routing.note(|| path.unwrap_or_default(), &decision);
            engine.executor.served_at_once(&decision, prefetched);
        }
    }

    /// Forgets the request: what it looked up, and what it deferred (the object was not
    /// written, or has been committed).
    pub(crate) fn clear(&mut self) {
        self.loaders = None;
        self.decided.clear();
        self.served.clear();
    }
}

/// [`read`] of `key`, when its answer is at hand: the request serves `F` from one side (no
/// shadow) and that side's loader holds a value for `key` (`MigratedRead::at_hand`). `None`
/// otherwise (the answer is not loaded yet, or is a failure), with nothing recorded or asked:
/// the field is then read as any other, and reports its own error. What [`read`] would record
/// is deferred in `at_hand`, for [`AtHand::commit`].
pub(crate) fn read_at_hand<F: MigratedRead>(
    ctx: &Context<'_>,
    key: &F::Key,
    at_hand: &mut AtHand,
) -> Option<F::Value> {
    let &DecidedAtHand { decision, prefetched, noting, .. } = at_hand.decided::<F>(ctx)?;
    if decision.shadow.is_some() {
        return None;
    }
    let value = F::at_hand(Reach { loaders: at_hand.loaders(ctx)? }, decision.serve, key)?.ok()?;
    let path = noting.then(|| ctx.path_node.map(|node| node.to_string()).unwrap_or_default());
    at_hand.served.push(ServedAtOnce { decision, prefetched, path });
    Some(value)
}

/// [`read`] for a decision with a shadow: the primary, and the secondary beside it.
async fn read_in_shadow<F: MigratedRead>(
    ctx: &Context<'_>,
    scope: &RequestScope,
    engine: &Engine,
    decision: &Decision,
    key: F::Key,
    prefetched: Option<Duration>,
) -> Result<F::Value> {
    // Only a shadowed call pays for its context (path rendered, variables copied, names owned).
    let path = ctx.path_node.map(|node| node.to_string()).unwrap_or_default();
    let context = call_context(ctx, scope, path);
    let loaders = scope.loaders();
    let primary = F::load(Reach { loaders: &loaders }, decision.serve, key.clone());
    // An item of a page that prefetched in shadow: its comparison joins the page's.
    if decision.shadow.is_some_and(|plan| plan.purpose == ShadowPurpose::Compare)
        && let Some(batch) = scope.shadow_batch::<F>(engine, decision, false)
    {
        return batch.run(context, primary, key, prefetched).await.graphql();
    }
    // A calibration asks the primary again, so it must not be answered from the request's loader
    // cache (or joined to the primary's batch): it gets loaders of its own.
    let fresh = decision.shadow.is_some_and(|plan| plan.purpose == ShadowPurpose::Calibrate);
    let secondary = |backend| {
        let loaders = scope.second_call_loaders(fresh);
        async move { F::load(Reach { loaders: &loaders }, backend, key).await }
    };
    engine.executor.run(decision, context, primary, secondary, prefetched).await.graphql()
}

/// Loads `keys` of `F` into the cache of the side the request's fields of `F` will read: the
/// same decision as [`read`]. Failures are left for the fields to report.
///
/// In shadow (sampled per request, so every item of the page has the same plan), the keys are
/// asked of the secondary's side too, in one call from a task of its own (detached from the
/// request's levels, so the secondary never holds the response back), and the items' comparisons
/// are made together once the last item has its primary answer (the request's
/// [`ShadowBatch`] of `F`, which counts once among the field's `max_in_flight`). Not for a
/// calibration, whose second calls must not share the request's loaders, nor when the field's
/// second calls are at their bound.
pub(crate) async fn prefetch<F: MigratedRead>(ctx: &Context<'_>, keys: Vec<F::Key>) {
    let Ok((scope, engine, decision, _)) = decision_of(ctx, F::DECLARATION) else { return };
    let loaders = scope.loaders();
    if let Some(plan) = decision.shadow
        && plan.purpose == ShadowPurpose::Compare
        && let Some(batch) = scope.shadow_batch::<F>(engine, &decision, true)
        && batch.expect(keys.len())
    {
        let latency = batch.latency_probe();
        let (loaders, keys) = (loaders.clone(), keys.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let _ = F::prefetch(Reach { loaders: &loaders }, plan.call, keys).await;
            latency.record(started.elapsed());
        });
    }
    // Timed for the items it answers (`RequestRouting::decide_read`), as a field that loads its
    // own key is timed by the executor.
    let started = Instant::now();
    let _ = F::prefetch(Reach { loaders: &loaders }, decision.serve, keys).await;
    scope.routing.note_prefetched(decision.key, started.elapsed());
}

/// A migrated write: its store of record is decided per request like a read's backend, but it is
/// `legacy` or `service` only (the table refuses `canary` and `shadow` for a write), so it is
/// never called twice.
pub(crate) trait MigratedWrite {
    /// The field's declaration.
    const DECLARATION: &'static FieldDeclaration;
}

/// Which store the write `F` goes to for this request (table snapshot, then the override), noted
/// for `extensions.routing`.
pub(crate) fn write_backend<F: MigratedWrite>(ctx: &Context<'_>) -> Result<Backend> {
    let (scope, _, decision, _) = decision_of(ctx, F::DECLARATION)?;
    scope.routing.note(|| ctx.path_node.map(|node| node.to_string()).unwrap_or_default(), &decision);
    Ok(decision.serve)
}

fn call_context(ctx: &Context<'_>, scope: &RequestScope, field_path: String) -> CallContext {
    let request = scope.shadow_context.get_or_init(|| CallContext {
        operation: ctx.query_env.operation_name.as_deref().map(Arc::from),
        field_path: String::new(),
        variables: serde_json::to_value(&ctx.query_env.variables).ok().map(Arc::new),
        user_id: Some(Arc::from(scope.caller.user_id.to_string())),
    });
    CallContext { field_path, ..request.clone() }
}

impl RequestScope {
    /// The request's shadow batch of `F`; made (by a page's prefetch) when `create`.
    fn shadow_batch<F: MigratedRead>(
        &self,
        engine: &Engine,
        decision: &Decision,
        create: bool,
    ) -> Option<Arc<FieldBatch<F>>> {
        let mut batches = self.shadow_batches.lock();
        if let Some((_, batch)) = batches.iter().find(|(key, _)| *key == decision.key) {
            return batch.clone().into_any().downcast().ok();
        }
        if !create {
            return None;
        }
        let batch = Arc::new(engine.executor.batch(decision, batch_secondary::<F>(self.current_loaders()))?);
        batches.push((decision.key, batch.clone()));
        Some(batch)
    }

    /// The loaders of a second call, which may outlive the resolver: the request's, or (`fresh`)
    /// new ones with empty caches.
    fn second_call_loaders(&self, fresh: bool) -> Arc<Loaders> {
        match fresh {
            true => Arc::new(Loaders::new(&self.sources, &self.caller, self.started_at())),
            false => self.loaders(),
        }
    }
}

/// The request's shadow batch of the migrated field `F`.
type FieldBatch<F> = ShadowBatch<<F as MigratedRead>::Key, <F as MigratedRead>::Value, SourceError>;

/// A request's shadow batch of some migrated field, whatever the field's types.
trait AnyBatch: Send + Sync {
    fn end_round(&self);
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<K, T> AnyBatch for ShadowBatch<K, T, SourceError>
where
    K: Clone + Send + 'static,
    T: Serialize + Clone + PartialEq + Send + 'static,
{
    fn end_round(&self) {
        ShadowBatch::end_round(self);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The shadow batches of one request (or WebSocket operation), one per migrated field whose page
/// prefetched for its items. Cheap to clone; clones share the batches.
#[derive(Clone, Default)]
pub(crate) struct ShadowRounds(Arc<Mutex<Vec<FieldBatchEntry>>>);

/// One field's batch in [`ShadowRounds`].
type FieldBatchEntry = (FieldKey, Arc<dyn AnyBatch>);

impl ShadowRounds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FieldBatchEntry>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The operation's last answer is complete (a subscription's next event arrived): every
    /// batch compares the items that came and frees its slot, expecting no more of that
    /// answer's pages, so a page of the next answer starts a round of its own
    /// (`ShadowBatch::end_round`).
    pub(crate) fn end(&self) {
        let batches: Vec<Arc<dyn AnyBatch>> = self.lock().iter().map(|(_, batch)| batch.clone()).collect();
        for batch in batches {
            batch.end_round();
        }
    }
}

/// How a batch of `F` asks the secondary: its keys through the loaders of the answer being
/// compared (which the page's prefetch has filled, or is filling, for the same keys), all at
/// once. A subscription's batch outlives an event's loaders: each comparison takes the current
/// ones, asked when the round is handed off (before the next event replaces them).
fn batch_secondary<F: MigratedRead>(
    loaders: CurrentLoaders,
) -> BatchSecondary<F::Key, F::Value, SourceError> {
    Arc::new(move |backend, keys: Vec<F::Key>| {
        let loaders = loaders.get();
        Box::pin(async move { F::load_each(Reach { loaders: &loaders }, backend, keys).await })
    })
}

/// `Template.stats`: the legacy analytics view (one template per call) or `GetTemplateStats`.
pub(crate) struct TemplateStatsField;

impl MigratedRead for TemplateStatsField {
    const DECLARATION: &'static FieldDeclaration = &TEMPLATE_STATS;
    type Key = StatsKey;
    type Value = Option<TemplateStats>;

    async fn load(reach: Reach<'_>, backend: Backend, key: StatsKey) -> Result<Self::Value, SourceError> {
        match backend {
            Backend::Legacy => reach.loaders.legacy_stats.load_one(key).await,
            Backend::Service => reach.loaders.stats.load_one(key).await,
        }
    }

    async fn load_each(
        reach: Reach<'_>,
        backend: Backend,
        keys: Vec<StatsKey>,
    ) -> Vec<Result<Self::Value, SourceError>> {
        match backend {
            Backend::Legacy => reach.loaders.legacy_stats.load_each(keys).await,
            Backend::Service => reach.loaders.stats.load_each(keys).await,
        }
    }

    fn at_hand(
        reach: Reach<'_>,
        backend: Backend,
        key: &StatsKey,
    ) -> Option<Result<Self::Value, SourceError>> {
        match backend {
            Backend::Legacy => reach.loaders.legacy_stats.at_hand(key),
            Backend::Service => reach.loaders.stats.at_hand(key),
        }
    }

    async fn prefetch(reach: Reach<'_>, backend: Backend, keys: Vec<StatsKey>) -> Result<(), SourceError> {
        match backend {
            Backend::Legacy => {
                reach.loaders.legacy_stats.prefetch_many(keys).await;
                Ok(())
            }
            Backend::Service => {
                reach.loaders.stats.prefetch_many(keys).await;
                Ok(())
            }
        }
    }
}

/// `Template.draft`: the legacy draft view (one template per call) or `BatchGetDrafts`.
pub(crate) struct TemplateDraftField;

impl MigratedRead for TemplateDraftField {
    const DECLARATION: &'static FieldDeclaration = &TEMPLATE_DRAFT;
    type Key = TemplateId;
    type Value = Option<Draft>;

    async fn load(reach: Reach<'_>, backend: Backend, key: TemplateId) -> Result<Self::Value, SourceError> {
        match backend {
            Backend::Legacy => reach.loaders.legacy_drafts.load_one(key).await,
            Backend::Service => reach.loaders.drafts.load_one(key).await,
        }
    }

    async fn prefetch(reach: Reach<'_>, backend: Backend, keys: Vec<TemplateId>) -> Result<(), SourceError> {
        match backend {
            Backend::Legacy => {
                reach.loaders.legacy_drafts.prefetch_many(keys).await;
                Ok(())
            }
            Backend::Service => {
                reach.loaders.drafts.prefetch_many(keys).await;
                Ok(())
            }
        }
    }
}

/// `Template.recentEvents`: the legacy events view (page numbers under a cursor) or `ListEvents`;
/// one call per page on either side.
pub(crate) struct TemplateRecentEventsField;

impl MigratedRead for TemplateRecentEventsField {
    const DECLARATION: &'static FieldDeclaration = &TEMPLATE_RECENT_EVENTS;
    type Key = EventsPageKey;
    type Value = Option<EventPage>;

    async fn load(
        reach: Reach<'_>,
        backend: Backend,
        key: EventsPageKey,
    ) -> Result<Self::Value, SourceError> {
        match backend {
            Backend::Legacy => reach.loaders.legacy_event_pages.load_one(key).await,
            Backend::Service => reach.loaders.event_pages.load_one(key).await,
        }
    }
}

/// `Mutation.updateDraftBlock`.
pub(crate) struct UpdateDraftBlockField;

impl MigratedWrite for UpdateDraftBlockField {
    const DECLARATION: &'static FieldDeclaration = &UPDATE_DRAFT_BLOCK;
}

/// `Mutation.insertDraftBlock`.
pub(crate) struct InsertDraftBlockField;

impl MigratedWrite for InsertDraftBlockField {
    const DECLARATION: &'static FieldDeclaration = &INSERT_DRAFT_BLOCK;
}

/// `Mutation.deleteDraftBlock`.
pub(crate) struct DeleteDraftBlockField;

impl MigratedWrite for DeleteDraftBlockField {
    const DECLARATION: &'static FieldDeclaration = &DELETE_DRAFT_BLOCK;
}

#[cfg(test)]
mod tests {
    use banyan_migration::{Access, Catalog};

    use super::*;

    /// Every bound field, by declaration.
    const BOUND: &[&FieldDeclaration] = &[
        TemplateStatsField::DECLARATION,
        TemplateDraftField::DECLARATION,
        TemplateRecentEventsField::DECLARATION,
        UpdateDraftBlockField::DECLARATION,
        InsertDraftBlockField::DECLARATION,
        DeleteDraftBlockField::DECLARATION,
    ];

    #[test]
    fn every_declared_field_is_bound_once() {
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let mut bound: Vec<&str> = BOUND.iter().map(|d| d.key).collect();
        bound.sort_unstable();
        let mut declared: Vec<&str> = catalog.fields().map(|f| f.key).collect();
        declared.sort_unstable();
        assert_eq!(bound, declared, "bind each declared field in resolvers/src/migrated.rs, once");
        for declaration in BOUND {
            let read = matches!(declaration.access, Access::Read);
            assert_eq!(read, !declaration.is_write(), "`{}`", declaration.key);
        }
    }

    /// A request decides each field once and keeps it: asked again, in any order, each field
    /// gets what the table decides for it (sampled per request id, canary per user, an override
    /// first), never another field's decision.
    #[test]
    fn a_request_keeps_each_field_s_decision() {
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let table = RoutingTable::parse(
            "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 0.5\n\
             [fields.\"Template.draft\"]\nmode = \"canary\"\npercent = 50\n",
            "t",
            &catalog,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let table = Arc::new(table);
        let key = |name| catalog.key(name).unwrap_or_else(|| panic!("{name} is declared"));
        let (stats, draft, events) =
            (key("Template.stats"), key("Template.draft"), key("Template.recentEvents"));
        let overrides =
            Overrides::parse("Template.recentEvents=service", &catalog).unwrap_or_else(|e| panic!("{e}"));
        let (mut shadowed, mut on_service) = (0, 0);
        for id in 0..200 {
            let subject = RequestSubject {
                user_id: Some(format!("user-{id}")),
                request_id: format!("req-{id}"),
                headers: Vec::new(),
            };
            let fresh = |key| table.decide_with(key, &subject, &overrides);
            let expected = [fresh(stats), fresh(draft), fresh(events)];
            shadowed += usize::from(expected[0].shadow.is_some());
            on_service += usize::from(expected[1].serve == Backend::Service);
            let routing = RequestRouting::new(table.clone(), subject.clone(), overrides.clone());
            for key in [draft, stats, events, stats, draft, events, stats] {
                let decision = routing.decide(key);
                assert_eq!(Some(&decision), expected.iter().find(|d| d.key == key), "request {id}, {key}");
            }
        }
        // Both draws vary between requests, so a decision kept for the wrong request would show.
        assert!(
            (60..=140).contains(&shadowed) && (60..=140).contains(&on_service),
            "{shadowed} {on_service}"
        );
    }
}
