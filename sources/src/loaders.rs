//! The per-request batch loaders: one [`BatchLoad`] per backend method that takes many keys,
//! each wrapped in a [`BatchLoader`] that the request's [`BatchScheduler`] dispatches once per
//! level of the query (see [`crate::batch`]), so a list of 100 templates costs one call, not 100,
//! and so do the templates of every workspace of a page. Loaders are built per request: they
//! carry the caller, and their cache must not outlive the request.
//!
//! Where a backend cannot batch (the monolith's legacy views take one template per call, and
//! `ListEvents` one template per call too), the loader says so in its docs ("one call per key")
//! and still gives the request its cache, its deduplication and bounded concurrency
//! ([`LEGACY_CONCURRENCY`] calls at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use futures::StreamExt;

use crate::Sources;
pub use crate::batch::{BatchLoad, BatchLoader, BatchScheduler, Loaded};
use crate::domain::{
    Draft, EventPage, Membership, Page, StatsWindow, Template, TemplateId, TemplateStats, User, UserId,
    Workspace, WorkspaceId,
};
use crate::error::{Backend, SourceError};
use crate::identity::Caller;

/// How many per-key calls a one-call-per-key loader makes at once.
pub const LEGACY_CONCURRENCY: usize = 8;

/// The most ids one `GetTemplateStats` (per window) or `BatchGetDrafts` call takes.
pub const MAX_SERVICE_BATCH: usize = 1000;

/// Users by id, from the monolith's `?id__in=` filter. Shared (`Arc`): a page's items load
/// their authors one by one, and a few authors write most templates, so each load hands out the
/// user the request already has rather than a copy of its strings.
pub struct UserLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for UserLoader {
    type Key = UserId;
    type Value = Arc<User>;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = crate::monolith::MAX_PAGE_SIZE;

    async fn load(&self, keys: &[UserId]) -> Result<Loaded<UserId, Arc<User>>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Monolith, "users", keys.len());
        let users = batch.done(self.sources.monolith.users_by_ids(batch.caller(), keys).await)?;
        Ok(users.into_iter().map(|user| (user.id, Arc::new(user))).collect())
    }
}

/// Templates by id, from the monolith's `?id__in=` filter; invisible ones are absent.
pub struct TemplateLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for TemplateLoader {
    type Key = TemplateId;
    // Shared: each `load_one` hands out a clone of the loader's value.
    type Value = Arc<Template>;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = crate::monolith::MAX_PAGE_SIZE;

    async fn load(&self, keys: &[TemplateId]) -> Result<Loaded<TemplateId, Arc<Template>>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Monolith, "templates", keys.len());
        let templates = batch.done(self.sources.monolith.templates_by_ids(batch.caller(), keys).await)?;
        Ok(templates.into_iter().map(|t| (t.id, Arc::new(t))).collect())
    }
}

/// The caller (`/api/v1/me/`), once per request however many fields ask (one key: `()`).
pub struct MeLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for MeLoader {
    type Key = ();
    type Value = Arc<User>;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = 1;

    async fn load(&self, _: &[()]) -> Result<Loaded<(), Arc<User>>, SourceError> {
        // Within the request's deadline (a slow monolith costs the field, not the request).
        let me = self
            .sources
            .monolith
            .me_within(
                &self.caller.budget,
                &self.caller.credential,
                self.caller.request_id.as_deref(),
                &self.caller.trace,
            )
            .await?;
        Ok(Loaded::from_iter([((), Arc::new(me))]))
    }
}

/// Every workspace of the caller, all pages, once per request however many fields ask (one
/// key: `()`). It also answers a workspace by id: the caller sees exactly the workspaces they
/// belong to, so one list serves `workspaces`, `workspace(id:)` and every `Template.workspace`
/// of the request.
pub struct MyWorkspacesLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for MyWorkspacesLoader {
    type Key = ();
    type Value = Vec<Workspace>;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = 1;

    async fn load(&self, _: &[()]) -> Result<Loaded<(), Vec<Workspace>>, SourceError> {
        let workspaces = self.sources.monolith.workspaces(&self.caller).await?;
        Ok(Loaded::from_iter([((), workspaces)]))
    }
}

/// One page of a workspace's templates: the arguments of the monolith's list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplatePageKey {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The `search` filter, if any.
    pub search: Option<String>,
    /// The page number, from 1.
    pub page: u64,
    /// Templates per page.
    pub page_size: u64,
}

/// Pages of workspaces' templates: one call per key (the monolith lists one workspace per
/// call); the same page asked twice in a request is one call.
pub struct TemplatePageLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for TemplatePageLoader {
    type Key = TemplatePageKey;
    // Each template shared: `load_one` hands out a clone of the loader's page, which was every
    // template's strings copied again (101 allocations for a page of 50).
    type Value = Page<Arc<Template>>;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = usize::MAX;

    async fn load(
        &self,
        keys: &[TemplatePageKey],
    ) -> Result<Loaded<TemplatePageKey, Page<Arc<Template>>>, SourceError> {
        self.sources.metrics.observe_batch(Backend::Monolith, "template_pages", keys.len());
        one_call_per_key(keys, |key| async move {
            self.sources
                .monolith
                .templates_page(&self.caller, key.workspace, key.search.as_deref(), key.page, key.page_size)
                .await
                .map(|page| {
                    Some(Page { total: page.total, items: page.items.into_iter().map(Arc::new).collect() })
                })
        })
        .await
    }
}

/// The members of workspaces, from the monolith's memberships list (`?workspace__in=`, every
/// page). A workspace the caller does not belong to is absent; one of theirs has at least them.
pub struct MembersLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for MembersLoader {
    type Key = WorkspaceId;
    type Value = Vec<Membership>;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = crate::monolith::MAX_PAGE_SIZE;

    async fn load(&self, keys: &[WorkspaceId]) -> Result<Loaded<WorkspaceId, Vec<Membership>>, SourceError> {
        self.sources.metrics.observe_batch(Backend::Monolith, "members", keys.len());
        let members = self.sources.monolith.members_of_workspaces(&self.caller, keys).await?;
        let mut by_workspace: HashMap<WorkspaceId, Vec<Membership>> = HashMap::with_capacity(keys.len());
        for (workspace, membership) in members {
            by_workspace.entry(workspace).or_default().push(membership);
        }
        Ok(by_workspace.into_iter().collect())
    }
}

/// Which template's stats, over which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatsKey {
    /// The template.
    pub template: TemplateId,
    /// The window, ending at the request's start.
    pub window: StatsWindow,
}

/// Template stats from the event store: one `GetTemplateStats` call per window asked for.
pub struct StatsLoader {
    sources: Sources,
    caller: Arc<Caller>,
    now: DateTime<Utc>,
}

impl BatchLoad for StatsLoader {
    type Key = StatsKey;
    type Value = TemplateStats;
    const BACKEND: Backend = Backend::Events;
    const MAX_BATCH: usize = MAX_SERVICE_BATCH;

    async fn load(&self, keys: &[StatsKey]) -> Result<Loaded<StatsKey, TemplateStats>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Events, "stats", keys.len());
        let mut by_window: HashMap<StatsWindow, Vec<TemplateId>> = HashMap::new();
        for key in keys {
            by_window.entry(key.window).or_default().push(key.template);
        }
        let mut loaded = Loaded::with_capacity(keys.len());
        for (window, ids) in by_window {
            let stats = batch
                .done(self.sources.events.template_stats(batch.caller(), &ids, window, self.now).await)?;
            loaded.extend(stats.into_iter().map(|s| (StatsKey { template: s.template_id, window }, s)));
        }
        Ok(loaded)
    }
}

/// Template stats from the monolith's legacy analytics view: one call per key, the monolith
/// cannot batch it.
pub struct LegacyStatsLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for LegacyStatsLoader {
    type Key = StatsKey;
    type Value = TemplateStats;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = usize::MAX;

    async fn load(&self, keys: &[StatsKey]) -> Result<Loaded<StatsKey, TemplateStats>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Monolith, "legacy_stats", keys.len());
        let caller = batch.caller();
        let loaded = one_call_per_key(keys, |key| async move {
            self.sources.monolith.legacy_analytics(caller, key.template, key.window).await.map(Some)
        })
        .await;
        batch.done(loaded)
    }
}

/// Drafts from the draft store: one `BatchGetDrafts` call; templates with no draft are absent.
pub struct DraftLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for DraftLoader {
    type Key = TemplateId;
    type Value = Draft;
    const BACKEND: Backend = Backend::Drafts;
    const MAX_BATCH: usize = MAX_SERVICE_BATCH;

    async fn load(&self, keys: &[TemplateId]) -> Result<Loaded<TemplateId, Draft>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Drafts, "drafts", keys.len());
        let drafts = batch.done(self.sources.drafts.batch_get(batch.caller(), keys).await)?;
        Ok(drafts.into_iter().map(|d| (d.template_id, d)).collect())
    }
}

/// Drafts from the monolith's legacy draft view: one call per key, the monolith cannot batch it.
pub struct LegacyDraftLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for LegacyDraftLoader {
    type Key = TemplateId;
    type Value = Draft;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = usize::MAX;

    async fn load(&self, keys: &[TemplateId]) -> Result<Loaded<TemplateId, Draft>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Monolith, "legacy_drafts", keys.len());
        let caller = batch.caller();
        batch.done(one_call_per_key(keys, |id| self.sources.monolith.legacy_draft(caller, id)).await)
    }
}

/// Which page of which template's events: the arguments of `ListEvents` and of the legacy
/// events view alike. A page token is only valid on the side that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventsPageKey {
    /// The template.
    pub template: TemplateId,
    /// Events per page, 1 to 100.
    pub page_size: u32,
    /// Where the page starts: a previous page's `next_page_token`, or `None` for the newest.
    pub page_token: Option<String>,
}

/// Pages of events from the event store's `ListEvents`: one call per key (the method takes one
/// template and one cursor).
pub struct EventsPageLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for EventsPageLoader {
    type Key = EventsPageKey;
    type Value = EventPage;
    const BACKEND: Backend = Backend::Events;
    const MAX_BATCH: usize = usize::MAX;

    async fn load(&self, keys: &[EventsPageKey]) -> Result<Loaded<EventsPageKey, EventPage>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Events, "event_pages", keys.len());
        let caller = batch.caller();
        let loaded = one_call_per_key(keys, |key| async move {
            let token = key.page_token.as_deref();
            self.sources.events.list_events(caller, key.template, key.page_size, token).await.map(Some)
        })
        .await;
        batch.done(loaded)
    }
}

/// Pages of events from the monolith's legacy events view (page numbers mapped onto cursors, see
/// [`MonolithClient::legacy_events`](crate::monolith::MonolithClient::legacy_events)): one call
/// per key, the monolith cannot batch it.
pub struct LegacyEventsPageLoader {
    sources: Sources,
    caller: Arc<Caller>,
}

impl BatchLoad for LegacyEventsPageLoader {
    type Key = EventsPageKey;
    type Value = EventPage;
    const BACKEND: Backend = Backend::Monolith;
    const MAX_BATCH: usize = usize::MAX;

    async fn load(&self, keys: &[EventsPageKey]) -> Result<Loaded<EventsPageKey, EventPage>, SourceError> {
        let batch =
            Batch::start(&self.sources, &self.caller, Backend::Monolith, "legacy_event_pages", keys.len());
        let caller = batch.caller();
        let loaded = one_call_per_key(keys, |key| async move {
            let token = key.page_token.as_deref();
            self.sources.monolith.legacy_events(caller, key.template, key.page_size, token).await.map(Some)
        })
        .await;
        batch.done(loaded)
    }
}

/// One batch of a loader: counted in the batch-size metrics, and, with tracing on, a span
/// (`batch <loader>`, with `banyan.loader`, `banyan.backend` and `banyan.batch.size`) that the
/// batch's backend calls are children of. The span ends when the batch is dropped.
struct Batch<'a> {
    caller: std::borrow::Cow<'a, Caller>,
    span: Option<crate::trace::ActiveSpan>,
}

impl<'a> Batch<'a> {
    fn start(
        sources: &Sources,
        caller: &'a Caller,
        backend: Backend,
        loader: &'static str,
        keys: usize,
    ) -> Self {
        sources.metrics.observe_batch(backend, loader, keys);
        let span = caller.trace.start(
            || format!("batch {loader}").into(),
            opentelemetry::trace::SpanKind::Internal,
            || {
                vec![
                    opentelemetry::KeyValue::new("banyan.loader", loader),
                    opentelemetry::KeyValue::new("banyan.backend", backend.name()),
                    opentelemetry::KeyValue::new(
                        "banyan.batch.size",
                        i64::try_from(keys).unwrap_or(i64::MAX),
                    ),
                ]
            },
        );
        let caller = match &span {
            Some(span) => std::borrow::Cow::Owned(caller.traced_by(span.context())),
            None => std::borrow::Cow::Borrowed(caller),
        };
        Self { caller, span }
    }

    /// The caller the batch's calls are made for (their spans children of the batch's).
    fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Records a failed batch on its span; hands the result back.
    fn done<T>(&self, result: Result<T, SourceError>) -> Result<T, SourceError> {
        if let (Some(span), Err(error)) = (&self.span, &result) {
            span.fail(error.code());
        }
        result
    }
}

/// What one key's call came to: its value (if found), or its error (`None` when it was not
/// called because another key's call had failed).
type KeyOutcome<K, V> = Result<(K, Option<V>), Option<SourceError>>;

/// Loads each of `keys` with a call of its own, [`LEGACY_CONCURRENCY`] at a time, for backend
/// methods that take one key: the legacy views, and `ListEvents` (one template, one cursor). A
/// key whose call finds nothing is absent from the answer.
///
/// The first failure fails the batch: no call starts after it, and the calls already under way
/// finish rather than being dropped mid-flight (so a budget of backend calls counts exactly the
/// calls the backends received).
async fn one_call_per_key<K, V, Call, Fut>(keys: &[K], call: Call) -> Result<Loaded<K, V>, SourceError>
where
    K: Clone + Eq + std::hash::Hash,
    Call: Fn(K) -> Fut,
    Fut: Future<Output = Result<Option<V>, SourceError>>,
{
    let call = &call;
    let failed = &AtomicBool::new(false);
    let outcomes: Vec<KeyOutcome<K, V>> = futures::stream::iter(keys.iter().cloned())
        .map(|key| async move {
            if failed.load(Ordering::Relaxed) {
                return Err(None);
            }
            match call(key.clone()).await {
                Ok(value) => Ok((key, value)),
                Err(error) => {
                    failed.store(true, Ordering::Relaxed);
                    Err(Some(error))
                }
            }
        })
        .buffer_unordered(LEGACY_CONCURRENCY)
        .collect()
        .await;
    let mut loaded = Loaded::with_capacity(outcomes.len());
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Ok((key, Some(value))) => loaded.push((key, value)),
            Ok((_, None)) => {}
            Err(error) => first_error = first_error.or(error),
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(loaded),
    }
}

/// A loader for one request: batched by level, with the request's cache, deduplication, and
/// memory of missing keys and failures (see [`crate::batch`]).
pub type CachedLoader<T> = BatchLoader<T>;

/// The loaders of one request, all acting for one caller. Each is built on first use
/// ([`LazyLoader`]): a request, or a subscription that lives for hours, holds only the loaders
/// it used (a `templateEvents` subscription: one of eight).
pub struct Loaders {
    /// The caller (monolith `me`).
    pub me: LazyLoader<MeLoader>,
    /// Every workspace of the caller, which also answers workspaces by id (monolith).
    pub my_workspaces: LazyLoader<MyWorkspacesLoader>,
    /// Pages of workspaces' templates (monolith).
    pub template_pages: LazyLoader<TemplatePageLoader>,
    /// Users by id (monolith).
    pub users: LazyLoader<UserLoader>,
    /// The members of workspaces (monolith).
    pub members: LazyLoader<MembersLoader>,
    /// Templates by id (monolith).
    pub templates: LazyLoader<TemplateLoader>,
    /// Stats from the event store.
    pub stats: LazyLoader<StatsLoader>,
    /// Stats from the monolith's legacy view.
    pub legacy_stats: LazyLoader<LegacyStatsLoader>,
    /// Drafts from the draft store.
    pub drafts: LazyLoader<DraftLoader>,
    /// Drafts from the monolith's legacy view.
    pub legacy_drafts: LazyLoader<LegacyDraftLoader>,
    /// Pages of events from the event store.
    pub event_pages: LazyLoader<EventsPageLoader>,
    /// Pages of events from the monolith's legacy view.
    pub legacy_event_pages: LazyLoader<LegacyEventsPageLoader>,
    scheduler: BatchScheduler,
}

impl Loaders {
    /// Loaders for one request by `caller`, with stats windows ending at `now`, dispatched by a
    /// scheduler of their own: run the request's execution in
    /// [`BatchScheduler::drive`] on [`Loaders::scheduler`] to batch by level.
    pub fn new(sources: &Sources, caller: &Caller, now: DateTime<Utc>) -> Self {
        Self::with_scheduler(sources, caller, now, BatchScheduler::new())
    }

    /// Fresh loaders (empty caches, stats windows ending at `now`) dispatched by the scheduler
    /// of these: for the next answer of an execution that scheduler already drives (a
    /// subscription's next event), which must read the data as it stands then.
    pub fn for_next_answer(&self, sources: &Sources, caller: &Caller, now: DateTime<Utc>) -> Self {
        Self::with_scheduler(sources, caller, now, self.scheduler.clone())
    }

    fn with_scheduler(
        sources: &Sources,
        caller: &Caller,
        now: DateTime<Utc>,
        scheduler: BatchScheduler,
    ) -> Self {
        let context = Arc::new(LoaderContext {
            sources: sources.clone(),
            caller: Arc::new(caller.clone()),
            now,
            scheduler: scheduler.clone(),
        });
        Self {
            me: LazyLoader::new(context.clone(), |c| MeLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            my_workspaces: LazyLoader::new(context.clone(), |c| MyWorkspacesLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            template_pages: LazyLoader::new(context.clone(), |c| TemplatePageLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            users: LazyLoader::new(context.clone(), |c| UserLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            members: LazyLoader::new(context.clone(), |c| MembersLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            templates: LazyLoader::new(context.clone(), |c| TemplateLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            stats: LazyLoader::new(context.clone(), |c| StatsLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
                now: c.now,
            }),
            legacy_stats: LazyLoader::new(context.clone(), |c| LegacyStatsLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            drafts: LazyLoader::new(context.clone(), |c| DraftLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            legacy_drafts: LazyLoader::new(context.clone(), |c| LegacyDraftLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            event_pages: LazyLoader::new(context.clone(), |c| EventsPageLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            legacy_event_pages: LazyLoader::new(context.clone(), |c| LegacyEventsPageLoader {
                sources: c.sources.clone(),
                caller: c.caller.clone(),
            }),
            scheduler,
        }
    }

    /// The scheduler that dispatches these loaders' keys.
    pub fn scheduler(&self) -> &BatchScheduler {
        &self.scheduler
    }
}

/// What every loader of one request is built from. Each loader keeps a handle on the same
/// clients and the same caller: the caller's strings are copied once per request, not once per
/// loader.
struct LoaderContext {
    sources: Sources,
    caller: Arc<Caller>,
    now: DateTime<Utc>,
    scheduler: BatchScheduler,
}

/// A [`CachedLoader`] built the first time it is used (it dereferences to it), from its request's
/// [`LoaderContext`]. Building all of a request's loaders up front cost about 9 KiB per request
/// (each holds its own clients and caller), kept for a subscription's whole life.
pub struct LazyLoader<T: BatchLoad> {
    context: Arc<LoaderContext>,
    make: fn(&LoaderContext) -> T,
    loader: OnceLock<CachedLoader<T>>,
}

impl<T: BatchLoad> LazyLoader<T> {
    fn new(context: Arc<LoaderContext>, make: fn(&LoaderContext) -> T) -> Self {
        Self { context, make, loader: OnceLock::new() }
    }

    /// Whether the loader has been built (used) yet.
    pub fn is_built(&self) -> bool {
        self.loader.get().is_some()
    }
}

impl<T: BatchLoad> std::ops::Deref for LazyLoader<T> {
    type Target = CachedLoader<T>;

    fn deref(&self) -> &CachedLoader<T> {
        self.loader.get_or_init(|| BatchLoader::new((self.make)(&self.context), &self.context.scheduler))
    }
}
