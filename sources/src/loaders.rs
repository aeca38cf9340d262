//! Batch loaders (async-graphql's DataLoader): every key a request asks for within one tick is
//! loaded with one backend call per backend method, so a list of 100 templates costs one call,
//! not 100. Loaders are built per request: they carry the caller, and their cache must not outlive
//! the request.
//!
//! Where a backend cannot batch (the monolith's legacy views take one template per call, and
//! `ListEvents` one template per call too), the loader says so in its docs ("one call per key")
//! and still gives the request its cache and bounded concurrency
//! ([`LEGACY_CONCURRENCY`] calls at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use chrono::{DateTime, Utc};

use futures::StreamExt;

use crate::Sources;
use crate::domain::{Draft, EventPage, StatsWindow, Template, TemplateId, TemplateStats, User, UserId};
use crate::error::{Backend, SourceError};
use crate::identity::Caller;

/// How many per-key calls a one-call-per-key loader makes at once.
pub const LEGACY_CONCURRENCY: usize = 8;

/// Users by id, from the monolith's `?id__in=` filter.
pub struct UserLoader {
    sources: Sources,
    caller: Caller,
}

impl Loader<UserId> for UserLoader {
    type Value = User;
    type Error = SourceError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, User>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Monolith, "users", keys.len());
        let users = batch.done(self.sources.monolith.users_by_ids(batch.caller(), keys).await)?;
        Ok(users.into_iter().map(|user| (user.id, user)).collect())
    }
}

/// Templates by id, from the monolith's `?id__in=` filter; invisible ones are absent.
pub struct TemplateLoader {
    sources: Sources,
    caller: Caller,
}

impl Loader<TemplateId> for TemplateLoader {
    type Value = Template;
    type Error = SourceError;

    async fn load(&self, keys: &[TemplateId]) -> Result<HashMap<TemplateId, Template>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Monolith, "templates", keys.len());
        let templates = batch.done(self.sources.monolith.templates_by_ids(batch.caller(), keys).await)?;
        Ok(templates.into_iter().map(|t| (t.id, t)).collect())
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
    caller: Caller,
    now: DateTime<Utc>,
}

impl Loader<StatsKey> for StatsLoader {
    type Value = TemplateStats;
    type Error = SourceError;

    async fn load(&self, keys: &[StatsKey]) -> Result<HashMap<StatsKey, TemplateStats>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Events, "stats", keys.len());
        let mut by_window: HashMap<StatsWindow, Vec<TemplateId>> = HashMap::new();
        for key in keys {
            by_window.entry(key.window).or_default().push(key.template);
        }
        let mut loaded = HashMap::with_capacity(keys.len());
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
    caller: Caller,
}

impl Loader<StatsKey> for LegacyStatsLoader {
    type Value = TemplateStats;
    type Error = SourceError;

    async fn load(&self, keys: &[StatsKey]) -> Result<HashMap<StatsKey, TemplateStats>, SourceError> {
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
    caller: Caller,
}

impl Loader<TemplateId> for DraftLoader {
    type Value = Draft;
    type Error = SourceError;

    async fn load(&self, keys: &[TemplateId]) -> Result<HashMap<TemplateId, Draft>, SourceError> {
        let batch = Batch::start(&self.sources, &self.caller, Backend::Drafts, "drafts", keys.len());
        let drafts = batch.done(self.sources.drafts.batch_get(batch.caller(), keys).await)?;
        Ok(drafts.into_iter().map(|d| (d.template_id, d)).collect())
    }
}

/// Drafts from the monolith's legacy draft view: one call per key, the monolith cannot batch it.
pub struct LegacyDraftLoader {
    sources: Sources,
    caller: Caller,
}

impl Loader<TemplateId> for LegacyDraftLoader {
    type Value = Draft;
    type Error = SourceError;

    async fn load(&self, keys: &[TemplateId]) -> Result<HashMap<TemplateId, Draft>, SourceError> {
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
    caller: Caller,
}

impl Loader<EventsPageKey> for EventsPageLoader {
    type Value = EventPage;
    type Error = SourceError;

    async fn load(&self, keys: &[EventsPageKey]) -> Result<HashMap<EventsPageKey, EventPage>, SourceError> {
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
    caller: Caller,
}

impl Loader<EventsPageKey> for LegacyEventsPageLoader {
    type Value = EventPage;
    type Error = SourceError;

    async fn load(&self, keys: &[EventsPageKey]) -> Result<HashMap<EventsPageKey, EventPage>, SourceError> {
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
/// key whose call finds nothing is absent from the map.
///
/// The first failure fails the batch: no call starts after it, and the calls already under way
/// finish rather than being dropped mid-flight (so a budget of backend calls counts exactly the
/// calls the backends received).
async fn one_call_per_key<K, V, Call, Fut>(keys: &[K], call: Call) -> Result<HashMap<K, V>, SourceError>
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
    let mut loaded = HashMap::with_capacity(outcomes.len());
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Ok((key, Some(value))) => {
                loaded.insert(key, value);
            }
            Ok((_, None)) => {}
            Err(error) => first_error = first_error.or(error),
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(loaded),
    }
}

/// A loader that remembers what it loaded for the rest of the request, so a key asked for twice
/// (the same author on many templates, a prefetched page) costs one call. It also remembers what
/// the cache cannot hold ([`Remembering`]): keys the backend does not have, and keys whose call
/// failed, so neither is asked for again in the same request.
pub type CachedLoader<T> = DataLoader<Remembering<T>, HashMapCache>;

/// What a request learned about a key besides its value.
#[derive(Clone)]
enum Known {
    /// The backend has no value for it (the caller may not see it, or it does not exist).
    Missing,
    /// Its call failed; the same error answers it for the rest of the request.
    Failed(SourceError),
}

/// Wraps a loader so that, for the rest of its request, a key the backend did not return is
/// answered absent without a call, and a key whose call failed with a backend failure is answered
/// with that failure without a call: a failing or hanging backend costs a request one call (one
/// deadline), not one for the prefetch and another for the field. A batch holding a key that
/// failed fails with that error; a batch of keys never tried is called. Keys are remembered by
/// their `Debug` form (every loader's key is a plain id or a small struct of them), so one wrapper
/// serves every key type.
pub struct Remembering<T> {
    inner: T,
    known: std::sync::Mutex<HashMap<String, Known>>,
}

impl<T> Remembering<T> {
    fn new(inner: T) -> Self {
        Self { inner, known: std::sync::Mutex::new(HashMap::new()) }
    }
}

impl<K, T> Loader<K> for Remembering<T>
where
    K: Send + Sync + Clone + Eq + std::hash::Hash + std::fmt::Debug + 'static,
    T: Loader<K, Error = SourceError>,
{
    type Value = T::Value;
    type Error = SourceError;

    async fn load(&self, keys: &[K]) -> Result<HashMap<K, T::Value>, SourceError> {
        let fresh: Vec<K> = {
            let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut fresh = Vec::with_capacity(keys.len());
            for key in keys {
                match known.get(&format!("{key:?}")) {
                    Some(Known::Failed(error)) => return Err(error.clone()),
                    Some(Known::Missing) => {}
                    None => fresh.push(key.clone()),
                }
            }
            fresh
        };
        if fresh.is_empty() {
            return Ok(HashMap::new());
        }
        let result = self.inner.load(&fresh).await;
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &result {
            Ok(values) => {
                for key in fresh.iter().filter(|key| !values.contains_key(key)) {
                    known.insert(format!("{key:?}"), Known::Missing);
                }
            }
            Err(error)
                if error.failed_backend().is_some() || matches!(error, SourceError::RequestTimeout) =>
            {
                for key in &fresh {
                    known.insert(format!("{key:?}"), Known::Failed(error.clone()));
                }
            }
            Err(_) => {}
        }
        result
    }
}

/// The loaders of one request, all acting for one caller. Each is built on first use
/// ([`LazyLoader`]): a request, or a subscription that lives for hours, holds only the loaders
/// it used (a `templateEvents` subscription: one of eight).
pub struct Loaders {
    /// Users by id (monolith).
    pub users: LazyLoader<UserLoader>,
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
}

impl Loaders {
    /// Loaders for one request by `caller`, with stats windows ending at `now`.
    pub fn new(sources: &Sources, caller: &Caller, now: DateTime<Utc>) -> Self {
        let context = Arc::new(LoaderContext { sources: sources.clone(), caller: caller.clone(), now });
        Self {
            users: LazyLoader::new(context.clone(), |c| UserLoader {
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
        }
    }
}

/// What every loader of one request is built from.
struct LoaderContext {
    sources: Sources,
    caller: Caller,
    now: DateTime<Utc>,
}

/// A [`CachedLoader`] built the first time it is used (it dereferences to it), from its request's
/// [`LoaderContext`]. Building all eight of a request's loaders up front cost about 9 KiB per
/// request (each holds its own clients and caller), kept for a subscription's whole life.
pub struct LazyLoader<T> {
    context: Arc<LoaderContext>,
    make: fn(&LoaderContext) -> T,
    loader: OnceLock<CachedLoader<T>>,
}

impl<T> LazyLoader<T> {
    fn new(context: Arc<LoaderContext>, make: fn(&LoaderContext) -> T) -> Self {
        Self { context, make, loader: OnceLock::new() }
    }

    /// Whether the loader has been built (used) yet.
    pub fn is_built(&self) -> bool {
        self.loader.get().is_some()
    }
}

impl<T: Send + Sync + 'static> std::ops::Deref for LazyLoader<T> {
    type Target = CachedLoader<T>;

    fn deref(&self) -> &CachedLoader<T> {
        self.loader.get_or_init(|| cached((self.make)(&self.context)))
    }
}

fn cached<T: Send + Sync + 'static>(loader: T) -> DataLoader<Remembering<T>, HashMapCache> {
    DataLoader::with_cache(Remembering::new(loader), tokio::spawn, HashMapCache::default())
}
