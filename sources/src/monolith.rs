//! The legacy monolith's REST client (Django REST framework conventions; see
//! `devstack/MONOLITH_API.md`).

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::budget::CallBudget;
use crate::domain::{
    Block, BlockKind, Draft, DraftEdit, EmailEvent, EventKind, EventPage, Membership, Page, Role,
    StatsWindow, Template, TemplateId, TemplatePatch, TemplateStats, TemplateStatus, User, UserId, Workspace,
    WorkspaceId,
};
use crate::error::{Backend, SourceError};
use crate::identity::{Caller, Credential, REQUEST_ID_HEADER, forwardable};
use crate::resilience::{Attempt, CallKind, Resilience, ResilienceOptions};
use crate::trace::{CallSpan, TRACEPARENT, TraceContext};
use opentelemetry::KeyValue;

/// The largest page the monolith serves; batch lookups are chunked to it.
pub const MAX_PAGE_SIZE: usize = 100;

/// How to reach the monolith.
#[derive(Debug, Clone)]
pub struct MonolithOptions {
    /// Base URL, e.g. `http://127.0.0.1:8000` (no trailing `/api/...`).
    pub base_url: String,
    /// Deadline for one call, retries included.
    pub timeout: Duration,
    /// Deadline for opening a connection.
    pub connect_timeout: Duration,
    /// Retries, breaker, concurrency limit and deduplication.
    pub resilience: ResilienceOptions,
}

/// A pooled client for the monolith. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MonolithClient {
    http: reqwest::Client,
    /// Parsed once: a URL made from text is parsed again for every call, its host through IDNA.
    base_url: reqwest::Url,
    timeout: Duration,
    /// Where each call's duration and outcome go.
    metrics: crate::metrics::BackendMetrics,
    resilience: Resilience,
}

impl MonolithClient {
    /// Builds the client; nothing is connected until the first call.
    pub fn new(options: &MonolithOptions) -> Result<Self, SourceError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // A redirect is an answer to report, not to follow: Django's APPEND_SLASH 301 means a
            // wrong path, and following one would send the credential on and loop.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SourceError::Unavailable {
                backend: Backend::Monolith,
                detail: format!("building the HTTP client: {e}"),
            })?;
        let base_url = reqwest::Url::parse(&options.base_url).map_err(|e| SourceError::Unavailable {
            backend: Backend::Monolith,
            detail: format!("the monolith's URL {:?}: {e}", options.base_url),
        })?;
        Ok(Self {
            http,
            base_url,
            timeout: options.timeout,
            metrics: crate::metrics::BackendMetrics::default(),
            resilience: Resilience::new(Backend::Monolith, options.resilience.clone()),
        })
    }

    /// The same client, recording its calls into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: crate::metrics::BackendMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The monolith's breaker, retry budget and counters.
    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// The user a credential belongs to; [`SourceError::Unauthenticated`] when it belongs to no
    /// one. Both 401 and 403 mean that here: DRF answers 403 instead of 401 when the view's first
    /// authentication class (`SessionAuthentication`) sends no `WWW-Authenticate` challenge.
    /// `trace` is where the call's span goes ([`TraceContext::off`] for the gateway's own identity
    /// check, which is cached across requests and not traced).
    ///
    /// With no deadline but the per-call one: for the identity check, before a request has a
    /// deadline. A field of a request reads it through [`Self::me_within`].
    pub async fn me(
        &self,
        credential: &Credential,
        request_id: Option<&str>,
        trace: &TraceContext,
    ) -> Result<User, SourceError> {
        self.me_within(&CallBudget::unlimited(), credential, request_id, trace).await
    }

    /// [`Self::me`] within a request's `budget`: its deadline caps the call's, so a slow monolith
    /// costs the field a `BACKEND_TIMEOUT` at the request's deadline, not the whole request.
    pub async fn me_within(
        &self,
        budget: &CallBudget,
        credential: &Credential,
        request_id: Option<&str>,
        trace: &TraceContext,
    ) -> Result<User, SourceError> {
        let answer: Result<wire::User, SourceError> = self
            .send(budget, Method::GET, "/api/v1/me/", &[], None::<&()>, credential, request_id, &[], trace)
            .await;
        match answer {
            Ok(user) => user.try_into(),
            Err(SourceError::Unauthenticated | SourceError::Forbidden(_)) => {
                Err(SourceError::Unauthenticated)
            }
            // Any other refusal of "who am I" is not the caller's doing.
            Err(
                SourceError::NotFound | SourceError::InvalidInput(_) | SourceError::VersionConflict { .. },
            ) => Err(SourceError::BadResponse {
                backend: Backend::Monolith,
                detail: "/api/v1/me/ refused a request it should always answer".to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The visible users among `ids`, in any order; invisible and unknown ids are left out.
    pub async fn users_by_ids(&self, caller: &Caller, ids: &[UserId]) -> Result<Vec<User>, SourceError> {
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PAGE_SIZE) {
            let page: wire::Page<wire::User> =
                self.get(caller, "/api/v1/users/", &id_in_query(chunk.iter().map(|id| id.0))).await?;
            for user in page.results {
                users.push(user.try_into()?);
            }
        }
        Ok(users)
    }

    /// The caller's workspaces, all pages.
    pub async fn workspaces(&self, caller: &Caller) -> Result<Vec<Workspace>, SourceError> {
        let pages: Vec<wire::Workspace> = self.get_all_pages(caller, "/api/v1/workspaces/").await?;
        pages.into_iter().map(TryInto::try_into).collect()
    }

    /// The members of each of `ids` the caller belongs to, all pages, by workspace (a workspace
    /// the caller does not see is left out).
    pub async fn members_of_workspaces(
        &self,
        caller: &Caller,
        ids: &[WorkspaceId],
    ) -> Result<Vec<(WorkspaceId, Membership)>, SourceError> {
        let workspaces: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
        let filter = [("workspace__in", workspaces.join(","))];
        let members: Vec<wire::WorkspaceMembership> =
            self.get_all_pages_with(caller, "/api/v1/memberships/", &filter).await?;
        members.into_iter().map(|m| Ok((WorkspaceId(m.workspace), m.membership.try_into()?))).collect()
    }

    /// One page of a workspace's templates, newest first, optionally filtered by `search`.
    pub async fn templates_page(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        search: Option<&str>,
        page: u64,
        page_size: u64,
    ) -> Result<Page<Template>, SourceError> {
        let mut query = vec![
            ("workspace", workspace.to_string()),
            ("page", page.to_string()),
            ("page_size", page_size.to_string()),
        ];
        if let Some(search) = search.filter(|s| !s.is_empty()) {
            query.push(("search", search.to_owned()));
        }
        match self.get::<wire::Page<wire::Template>>(caller, "/api/v1/templates/", &query).await {
            Ok(page) => Ok(Page {
                total: page.count,
                items: page.results.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?,
            }),
            // DRF answers 404 "Invalid page." past the end; for a cursor that is an empty page.
            Err(SourceError::NotFound) => Ok(Page { total: 0, items: Vec::new() }),
            Err(e) => Err(e),
        }
    }

    /// The visible templates among `ids`; invisible and unknown ids are left out.
    pub async fn templates_by_ids(
        &self,
        caller: &Caller,
        ids: &[TemplateId],
    ) -> Result<Vec<Template>, SourceError> {
        let mut templates = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PAGE_SIZE) {
            let page: wire::Page<wire::Template> =
                self.get(caller, "/api/v1/templates/", &id_in_query(chunk.iter().map(|id| id.0))).await?;
            for template in page.results {
                templates.push(template.try_into()?);
            }
        }
        Ok(templates)
    }

    /// Changes a template's name or status.
    pub async fn update_template(
        &self,
        caller: &Caller,
        id: TemplateId,
        patch: &TemplatePatch,
    ) -> Result<Template, SourceError> {
        let body =
            wire::TemplatePatch { name: patch.name.clone(), status: patch.status.map(wire::status_name) };
        let path = format!("/api/v1/templates/{id}/");
        let template: wire::Template = self
            .send(
                &caller.budget,
                Method::PATCH,
                &path,
                &[],
                Some(&body),
                &caller.credential,
                caller.request_id.as_deref(),
                &caller.forwarded_headers,
                &caller.trace,
            )
            .await?;
        template.try_into()
    }

    /// The legacy analytics view: stats computed by the monolith, one template per call.
    pub async fn legacy_analytics(
        &self,
        caller: &Caller,
        id: TemplateId,
        window: StatsWindow,
    ) -> Result<TemplateStats, SourceError> {
        let path = format!("/api/v1/templates/{id}/analytics/");
        let query = [("window", window.legacy_name().to_owned())];
        let analytics: wire::Analytics = self.get(caller, &path, &query).await?;
        Ok(TemplateStats {
            template_id: TemplateId(analytics.template),
            sent: analytics.sent,
            delivered: analytics.delivered,
            opened: analytics.opened,
            clicked: analytics.clicked,
            bounced: analytics.bounced,
            unique_opens: analytics.unique_opens,
            computed_at: analytics.computed_at,
        })
    }

    /// The legacy draft view; `None` when the template has no draft.
    pub async fn legacy_draft(&self, caller: &Caller, id: TemplateId) -> Result<Option<Draft>, SourceError> {
        let path = format!("/api/v1/templates/{id}/draft/");
        not_found_as_none(self.get::<wire::Draft>(caller, &path, &[]).await)?
            .map(TryInto::try_into)
            .transpose()
    }

    /// The legacy events view, mapped onto the event store's cursor model: one page of a
    /// template's events, newest first, at most `page_size` (1 to 100, as `ListEvents` takes it)
    /// of them, after the position `page_token` names.
    ///
    /// The monolith pages by number (`?page=N&page_size=M`, DRF's `PageNumberPagination`); the
    /// cursor this returns is opaque to callers and holds the template and the number of events
    /// already returned (an offset). A continuation asked for with the same `page_size` is one
    /// call (`page = offset / page_size + 1`); one asked for with another size, so that the offset
    /// falls inside a page, is two calls (the rest of that page, then the head of the next). Page
    /// numbers count from the newest event, so events that arrive between two calls shift the
    /// pages and the next page may repeat events, which the store's cursor never does: what the
    /// monolith can do, no more. A page past the end (DRF's `404 "Invalid page."`) is an empty
    /// last page. One template per call: the monolith cannot batch this view.
    ///
    /// Errors as `ListEvents` gives them: a `page_size` out of range or a cursor not made by this
    /// method for this template is [`SourceError::InvalidInput`] (with the store's messages);
    /// a template the caller cannot see is [`SourceError::NotFound`].
    pub async fn legacy_events(
        &self,
        caller: &Caller,
        template: TemplateId,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<EventPage, SourceError> {
        if !(1..=MAX_PAGE_SIZE as u32).contains(&page_size) {
            return Err(SourceError::InvalidInput(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
            )));
        }
        let offset = match page_token.filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => events_cursor::decode(token, template).ok_or_else(|| {
                SourceError::InvalidInput("page_token is not valid for this request".to_owned())
            })?,
        };
        let size = u64::from(page_size);
        let path = format!("/api/v1/templates/{template}/events/");
        let first = offset / size + 1;
        let skip = usize::try_from(offset % size).unwrap_or(usize::MAX);
        let Some(page) = self.events_page(caller, &path, first, size).await? else {
            return Ok(EventPage { events: Vec::new(), next_page_token: None });
        };
        let total = page.count;
        let mut rows: Vec<wire::Event> = page.results.into_iter().skip(skip).collect();
        if skip > 0
            && page.next.is_some()
            && let Some(more) = self.events_page(caller, &path, first + 1, size).await?
        {
            rows.extend(more.results.into_iter().take(skip));
        }
        let end = offset + rows.len() as u64;
        let events = rows.into_iter().map(TryInto::try_into).collect::<Result<Vec<EmailEvent>, _>>()?;
        let next_page_token =
            (end < total && !events.is_empty()).then(|| events_cursor::encode(template, end));
        Ok(EventPage { events, next_page_token })
    }

    /// One page of the events view; `None` for DRF's `404 "Invalid page."`.
    async fn events_page(
        &self,
        caller: &Caller,
        path: &str,
        page: u64,
        page_size: u64,
    ) -> Result<Option<wire::Page<wire::Event>>, SourceError> {
        let query = [("page", page.to_string()), ("page_size", page_size.to_string())];
        let (status, body) = self
            .exchange(
                &caller.budget,
                Method::GET,
                path,
                &query,
                None::<&()>,
                &caller.credential,
                caller.request_id.as_deref(),
                &caller.forwarded_headers,
                &caller.trace,
            )
            .await?;
        if status == StatusCode::NOT_FOUND && wire::error_detail(&body).as_deref() == Some(INVALID_PAGE) {
            return Ok(None);
        }
        decode_response(status, &body).map(Some)
    }

    /// The legacy draft write endpoints: applies one edit made against `expected_version` to the
    /// monolith's own draft table and returns the draft at its new version, as
    /// [`DraftsClient::edit`](crate::drafts::DraftsClient::edit) does for the draft store. A
    /// stale version (the monolith's `409` with `current_version`) is
    /// [`SourceError::VersionConflict`]; no draft or no such block is [`SourceError::NotFound`];
    /// a caller who may read but not edit (a viewer) is [`SourceError::Forbidden`]. The monolith
    /// writes only its own table: the draft store does not see the edit.
    pub async fn legacy_edit_draft(
        &self,
        caller: &Caller,
        template: TemplateId,
        expected_version: u64,
        edit: DraftEdit,
    ) -> Result<Draft, SourceError> {
        let blocks = format!("/api/v1/templates/{template}/draft/blocks/");
        let (method, path, query, body) = match edit {
            DraftEdit::InsertBlock { index, kind, content } => {
                let body = wire::BlockWrite {
                    version: expected_version,
                    index: Some(index),
                    kind: Some(wire::block_type(kind)),
                    content,
                };
                (Method::POST, blocks, Vec::new(), Some(body))
            }
            DraftEdit::UpdateBlock { block_id, content } => {
                let body = wire::BlockWrite { version: expected_version, index: None, kind: None, content };
                (Method::PATCH, format!("{blocks}{}/", path_segment(&block_id)), Vec::new(), Some(body))
            }
            DraftEdit::DeleteBlock { block_id } => {
                let path = format!("{blocks}{}/", path_segment(&block_id));
                (Method::DELETE, path, vec![("version", expected_version.to_string())], None)
            }
        };
        let (status, bytes) = self
            .exchange(
                &caller.budget,
                method,
                &path,
                &query,
                body.as_ref(),
                &caller.credential,
                caller.request_id.as_deref(),
                &caller.forwarded_headers,
                &caller.trace,
            )
            .await?;
        if status == StatusCode::CONFLICT {
            let current =
                serde_json::from_slice::<wire::Conflict>(&bytes).map_err(|e| SourceError::BadResponse {
                    backend: Backend::Monolith,
                    detail: format!("a 409 without a current_version: {e}"),
                })?;
            return Err(SourceError::VersionConflict {
                expected: expected_version,
                current: current.current_version,
            });
        }
        let draft: wire::Draft = decode_response(status, &bytes)?;
        draft.try_into()
    }

    async fn get<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SourceError> {
        self.send(
            &caller.budget,
            Method::GET,
            path,
            query,
            None::<&()>,
            &caller.credential,
            caller.request_id.as_deref(),
            &caller.forwarded_headers,
            &caller.trace,
        )
        .await
    }

    /// Follows `next` links until the list ends (bounded, so a broken backend cannot loop us).
    async fn get_all_pages<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
    ) -> Result<Vec<T>, SourceError> {
        self.get_all_pages_with(caller, path, &[]).await
    }

    /// [`Self::get_all_pages`] with the query parameters of a filter.
    async fn get_all_pages_with<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<T>, SourceError> {
        const MAX_PAGES: u64 = 100;
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query = filter.to_vec();
            query.extend([("page", page.to_string()), ("page_size", MAX_PAGE_SIZE.to_string())]);
            let body: wire::Page<T> = self.get(caller, path, &query).await?;
            items.extend(body.results);
            if body.next.is_none() {
                return Ok(items);
            }
        }
        Err(SourceError::BadResponse {
            backend: Backend::Monolith,
            detail: format!("{path} has more than {MAX_PAGES} pages"),
        })
    }

    #[allow(clippy::too_many_arguments)] // the request's parts, then who it is for
    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        budget: &CallBudget,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        credential: &Credential,
        request_id: Option<&str>,
        forwarded: &[(String, String)],
        trace: &TraceContext,
    ) -> Result<T, SourceError> {
        let (status, bytes) = self
            .exchange(budget, method, path, query, body, credential, request_id, forwarded, trace)
            .await?;
        decode_response(status, &bytes)
    }

    /// One request and its answer's status and body, through the monolith's resilience: each
    /// attempt within the smaller of the per-call timeout and what remains of the request; GETs
    /// retried on a reset, a refused connection or a 502/503/504, and shared when deduplication
    /// is on (keyed by the caller's credential and forwarded headers, so callers never share
    /// another's answer); writes never retried.
    #[allow(clippy::too_many_arguments)] // the request's parts, then who it is for
    async fn exchange<B: Serialize + ?Sized>(
        &self,
        budget: &CallBudget,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        credential: &Credential,
        request_id: Option<&str>,
        forwarded: &[(String, String)],
        trace: &TraceContext,
    ) -> Result<(StatusCode, Bytes), SourceError> {
        let idempotent = method == Method::GET;
        let span = trace.is_on().then(|| {
            let route = crate::metrics::monolith_route(&method, path);
            let template = route.split_once(' ').map_or(&*route, |(_, template)| template).to_owned();
            CallSpan {
                parent: trace.clone(),
                name: route.into_owned(),
                attributes: vec![
                    KeyValue::new("http.request.method", method.to_string()),
                    KeyValue::new("url.template", template),
                    KeyValue::new("banyan.backend", Backend::Monolith.name()),
                ],
            }
        });
        let dedupe_key = (idempotent && self.resilience.dedupes_reads()).then(|| {
            let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let forwarded: Vec<String> = forwardable(forwarded).map(|(n, v)| format!("{n}:{v}")).collect();
            format!(
                "{method} {path}?{}|{}|{}",
                query.join("&"),
                credential.identity_key(),
                forwarded.join(",")
            )
        });
        let body =
            body.map(serde_json::to_vec).transpose().map_err(|e| SourceError::InvalidInput(e.to_string()))?;
        let body = body.as_deref();
        self.resilience
            .call(budget, self.timeout, CallKind { idempotent, dedupe_key }, span, |timeout| {
                let method = method.clone();
                // This attempt's span is current now (tracing on): the backend's parent.
                let traceparent = if trace.is_on() { crate::trace::current_traceparent() } else { None };
                async move {
                    let sent = Sent { request_id, forwarded, traceparent };
                    let result =
                        self.exchange_once(timeout, method, path, query, body, credential, sent).await;
                    let status = result.as_ref().ok().map(|(status, _)| {
                        KeyValue::new("http.response.status_code", i64::from(status.as_u16()))
                    });
                    let attempt = match result {
                        Ok((status, bytes)) if status.is_server_error() => {
                            let retryable = matches!(
                                status,
                                StatusCode::BAD_GATEWAY
                                    | StatusCode::SERVICE_UNAVAILABLE
                                    | StatusCode::GATEWAY_TIMEOUT
                            );
                            Attempt { result: Ok((status, bytes)), failed: true, retryable, status: None }
                        }
                        other => Attempt::judged(other),
                    };
                    attempt.with_status(status)
                }
            })
            .await
    }

    /// One attempt, within `timeout`.
    #[allow(clippy::too_many_arguments)] // the request's parts, then who it is for
    async fn exchange_once(
        &self,
        timeout: Duration,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
        credential: &Credential,
        sent: Sent<'_>,
    ) -> Result<(StatusCode, Bytes), SourceError> {
        let Sent { request_id, forwarded, traceparent } = sent;
        let span = tracing::debug_span!("monolith", http.method = %method, path);
        let call = async {
            let request = self
                .http
                .request(method.clone(), call_url(&self.base_url, path))
                .header(reqwest::header::ACCEPT, "application/json")
                .query(query);
            // Forwarded headers first; `forwardable` never yields an identity header, so the
            // credential below is the only one the monolith sees.
            // With tracing on, the client's `traceparent` gives way to the attempt's own.
            let request = forwardable(forwarded)
                .filter(|(name, _)| traceparent.is_none() || *name != TRACEPARENT)
                .fold(request, |request, (name, value)| request.header(name, value));
            let request = match &traceparent {
                Some(traceparent) => request.header(TRACEPARENT, traceparent),
                None => request,
            };
            let mut request = authenticate(request, &method, credential);
            if let Some(request_id) = request_id {
                request = request.header(REQUEST_ID_HEADER, request_id);
            }
            if let Some(body) = body {
                request =
                    request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_vec());
            }
            let response = request.send().await.map_err(|e| transport_error(&e, timeout))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| transport_error(&e, timeout))?;
            Ok((status, bytes))
        };
        let timer = self.metrics.start_call(Backend::Monolith, crate::metrics::monolith_route(&method, path));
        let result = match tokio::time::timeout(timeout, call.instrument(span)).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Timeout { backend: Backend::Monolith, timeout }),
        };
        // A refusal's code is the one its status maps to (a body that does not decode is
        // counted where it is decoded: not here).
        timer.finish_with(match &result {
            Ok((status, _)) if status.is_success() => None,
            Ok((status, bytes)) => {
                decode_response::<serde::de::IgnoredAny>(*status, bytes).err().map(|e| e.code())
            }
            Err(error) => Some(error.code()),
        });
        result
    }
}

/// What travels with an attempt besides the caller's credential: the request id, the forwarded
/// headers, and (tracing on) the attempt's `traceparent`.
struct Sent<'a> {
    request_id: Option<&'a str>,
    forwarded: &'a [(String, String)],
    traceparent: Option<String>,
}

/// DRF's `detail` for a page number past the end.
const INVALID_PAGE: &str = "Invalid page.";

/// The legacy events cursor: `legacy-v1:{template}:{offset}`, opaque to callers, bound to its
/// template as the store's tokens are.
mod events_cursor {
    use crate::domain::TemplateId;

    const PREFIX: &str = "legacy-v1:";

    pub(super) fn encode(template: TemplateId, offset: u64) -> String {
        format!("{PREFIX}{template}:{offset}")
    }

    pub(super) fn decode(token: &str, template: TemplateId) -> Option<u64> {
        let (for_template, offset) = token.strip_prefix(PREFIX)?.split_once(':')?;
        (for_template == template.to_string()).then_some(())?;
        offset.parse().ok()
    }
}

/// A path segment with everything but RFC 3986's unreserved characters percent-encoded, so a
/// block id cannot change the route.
fn path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Presents the caller's credential the way the monolith takes it: a token as `Authorization`,
/// a session as a `Cookie` header; on a write (an unsafe method) a session also carries the
/// caller's CSRF cookie and headers, which Django's CSRF check compares.
fn authenticate(
    request: reqwest::RequestBuilder,
    method: &Method,
    credential: &Credential,
) -> reqwest::RequestBuilder {
    match credential {
        Credential::Token(key) => request.header(reqwest::header::AUTHORIZATION, format!("Token {key}")),
        Credential::Session(session) => {
            let mut cookie = format!("{}={}", session.cookie_name, session.session_id);
            let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
            if safe {
                return request.header(reqwest::header::COOKIE, cookie);
            }
            if let Some((name, value)) = &session.csrf_cookie {
                cookie.push_str(&format!("; {name}={value}"));
            }
            let mut request = request.header(reqwest::header::COOKIE, cookie);
            for (name, value) in &session.csrf_headers {
                request = request.header(name.as_str(), value.as_str());
            }
            request
        }
    }
}

fn id_in_query(ids: impl Iterator<Item = u64>) -> Vec<(&'static str, String)> {
    let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    vec![("id__in", ids.join(",")), ("page_size", MAX_PAGE_SIZE.to_string())]
}

fn not_found_as_none<T>(result: Result<T, SourceError>) -> Result<Option<T>, SourceError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(SourceError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn transport_error(error: &reqwest::Error, timeout: Duration) -> SourceError {
    if error.is_timeout() {
        SourceError::Timeout { backend: Backend::Monolith, timeout }
    } else {
        SourceError::Unavailable { backend: Backend::Monolith, detail: error.to_string() }
    }
}

/// How much of an error body the log gets: enough to recognise it, not a whole HTML page.
const BODY_EXCERPT_CHARS: usize = 200;

/// The start of `body` on one line, for a log: a 5xx page (Django's HTML debug page is tens of
/// kilobytes) is cut at [`BODY_EXCERPT_CHARS`] characters.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String =
        text.chars().take(BODY_EXCERPT_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    let total = text.chars().count();
    if total > BODY_EXCERPT_CHARS {
        excerpt.push_str(&format!("… ({} bytes)", body.len()));
    }
    excerpt
}

/// The URL of `path` (`/api/v1/…`) on the monolith at `base`, under its path if it has one.
fn call_url(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url
}

fn decode_response<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, SourceError> {
    if status.is_success() {
        let bad = |e: &dyn std::fmt::Display| SourceError::BadResponse {
            backend: Backend::Monolith,
            detail: format!("decoding a {status} answer: {e}"),
        };
        // JSON is UTF-8: checked once for the whole body, where reading bytes checks every
        // string on its own (a page of templates holds about a thousand; about 1.5% of the
        // gateway's CPU per TemplateList request went to those checks).
        let text = std::str::from_utf8(body).map_err(|e| bad(&e))?;
        return serde_json::from_str(text).map_err(|e| bad(&e));
    }
    let detail = wire::error_detail(body);
    Err(match status {
        StatusCode::UNAUTHORIZED => SourceError::Unauthenticated,
        StatusCode::FORBIDDEN => SourceError::Forbidden(
            detail.unwrap_or_else(|| "you do not have permission to do this".to_owned()),
        ),
        StatusCode::NOT_FOUND => SourceError::NotFound,
        StatusCode::BAD_REQUEST => {
            SourceError::InvalidInput(detail.unwrap_or_else(|| "invalid input".to_owned()))
        }
        s if s.is_server_error() => SourceError::Unavailable {
            backend: Backend::Monolith,
            detail: format!("{s}: {}", body_excerpt(body)),
        },
        s => {
            SourceError::BadResponse { backend: Backend::Monolith, detail: format!("unexpected status {s}") }
        }
    })
}

/// The monolith's JSON shapes, kept apart from the domain types.
mod wire {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct Page<T> {
        pub(super) count: u64,
        pub(super) next: Option<String>,
        pub(super) results: Vec<T>,
    }

    #[derive(Deserialize)]
    pub(super) struct User {
        id: u64,
        username: String,
        email: String,
        full_name: String,
        #[serde(deserialize_with = "crate::rfc3339::utc")]
        date_joined: DateTime<Utc>,
    }

    impl TryFrom<User> for super::User {
        type Error = SourceError;
        fn try_from(u: User) -> Result<Self, SourceError> {
            Ok(Self {
                id: UserId(u.id),
                username: u.username,
                email: u.email,
                full_name: u.full_name,
                date_joined: u.date_joined,
            })
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Workspace {
        id: u64,
        name: String,
        slug: String,
        #[serde(deserialize_with = "crate::rfc3339::utc")]
        created_at: DateTime<Utc>,
    }

    impl TryFrom<Workspace> for super::Workspace {
        type Error = SourceError;
        fn try_from(w: Workspace) -> Result<Self, SourceError> {
            Ok(Self { id: WorkspaceId(w.id), name: w.name, slug: w.slug, created_at: w.created_at })
        }
    }

    /// A membership with its workspace, as `/api/v1/memberships/` lists it.
    #[derive(Deserialize)]
    pub(super) struct WorkspaceMembership {
        pub(super) workspace: u64,
        #[serde(flatten)]
        pub(super) membership: Membership,
    }

    #[derive(Deserialize)]
    pub(super) struct Membership {
        user: u64,
        role: String,
        #[serde(deserialize_with = "crate::rfc3339::utc")]
        joined_at: DateTime<Utc>,
    }

    impl TryFrom<Membership> for super::Membership {
        type Error = SourceError;
        fn try_from(m: Membership) -> Result<Self, SourceError> {
            let role = match m.role.as_str() {
                "owner" => Role::Owner,
                "admin" => Role::Admin,
                "editor" => Role::Editor,
                "viewer" => Role::Viewer,
                other => return Err(unexpected(format!("unknown role {other:?}"))),
            };
            Ok(Self { user_id: UserId(m.user), role, joined_at: m.joined_at })
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Template {
        id: u64,
        workspace: u64,
        name: String,
        subject: String,
        status: String,
        created_by: u64,
        #[serde(deserialize_with = "crate::rfc3339::utc")]
        created_at: DateTime<Utc>,
        #[serde(deserialize_with = "crate::rfc3339::utc")]
        updated_at: DateTime<Utc>,
        can_edit: bool,
    }

    impl TryFrom<Template> for super::Template {
        type Error = SourceError;
        fn try_from(t: Template) -> Result<Self, SourceError> {
            let status = match t.status.as_str() {
                "draft" => TemplateStatus::Draft,
                "active" => TemplateStatus::Active,
                "archived" => TemplateStatus::Archived,
                other => return Err(unexpected(format!("unknown template status {other:?}"))),
            };
            Ok(Self {
                id: TemplateId(t.id),
                workspace_id: WorkspaceId(t.workspace),
                name: t.name,
                subject: t.subject,
                status,
                created_by: UserId(t.created_by),
                created_at: t.created_at,
                updated_at: t.updated_at,
                can_edit: t.can_edit,
            })
        }
    }

    pub(super) fn status_name(status: TemplateStatus) -> &'static str {
        match status {
            TemplateStatus::Draft => "draft",
            TemplateStatus::Active => "active",
            TemplateStatus::Archived => "archived",
        }
    }

    #[derive(Serialize)]
    pub(super) struct TemplatePatch {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) status: Option<&'static str>,
    }

    #[derive(Deserialize)]
    pub(super) struct Event {
        sequence: u64,
        template: u64,
        kind: String,
        recipient: String,
        #[serde(deserialize_with = "crate::rfc3339::utc")]
        occurred_at: DateTime<Utc>,
    }

    impl TryFrom<Event> for super::EmailEvent {
        type Error = SourceError;
        fn try_from(e: Event) -> Result<Self, SourceError> {
            let kind = match e.kind.as_str() {
                "sent" => EventKind::Sent,
                "delivered" => EventKind::Delivered,
                "opened" => EventKind::Opened,
                "clicked" => EventKind::Clicked,
                "bounced" => EventKind::Bounced,
                other => return Err(unexpected(format!("unknown event kind {other:?}"))),
            };
            Ok(Self {
                sequence: e.sequence,
                template_id: TemplateId(e.template),
                kind,
                recipient: e.recipient,
                occurred_at: e.occurred_at,
            })
        }
    }

    /// The body of a draft block write.
    #[derive(Serialize)]
    pub(super) struct BlockWrite {
        pub(super) version: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) index: Option<u32>,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub(super) kind: Option<&'static str>,
        pub(super) content: String,
    }

    /// A `409` of a draft write.
    #[derive(Deserialize)]
    pub(super) struct Conflict {
        pub(super) current_version: u64,
    }

    pub(super) fn block_type(kind: BlockKind) -> &'static str {
        match kind {
            BlockKind::Heading => "heading",
            BlockKind::Text => "text",
            BlockKind::Image => "image",
            BlockKind::Button => "button",
            BlockKind::Divider => "divider",
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Analytics {
        pub(super) template: u64,
        pub(super) sent: u64,
        pub(super) delivered: u64,
        pub(super) opened: u64,
        pub(super) clicked: u64,
        pub(super) bounced: u64,
        pub(super) unique_opens: u64,
        #[serde(default, deserialize_with = "crate::rfc3339::utc_or_null")]
        pub(super) computed_at: Option<DateTime<Utc>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Draft {
        template: u64,
        version: u64,
        blocks: Vec<DraftBlock>,
        #[serde(deserialize_with = "crate::rfc3339::utc")]
        updated_at: DateTime<Utc>,
        updated_by: u64,
    }

    #[derive(Deserialize)]
    struct DraftBlock {
        id: String,
        #[serde(rename = "type")]
        kind: String,
        content: String,
    }

    impl TryFrom<Draft> for super::Draft {
        type Error = SourceError;
        fn try_from(d: Draft) -> Result<Self, SourceError> {
            let blocks = d
                .blocks
                .into_iter()
                .map(|b| {
                    let kind = match b.kind.as_str() {
                        "heading" => BlockKind::Heading,
                        "text" => BlockKind::Text,
                        "image" => BlockKind::Image,
                        "button" => BlockKind::Button,
                        "divider" => BlockKind::Divider,
                        other => return Err(unexpected(format!("unknown block type {other:?}"))),
                    };
                    Ok(Block { id: b.id, kind, content: b.content })
                })
                .collect::<Result<_, _>>()?;
            Ok(Self {
                template_id: TemplateId(d.template),
                version: d.version,
                blocks,
                updated_at: d.updated_at,
                updated_by: UserId(d.updated_by),
            })
        }
    }

    /// DRF errors: `{"detail": "..."}`, or field errors `{"field": ["message", ...]}`.
    pub(super) fn error_detail(body: &[u8]) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let object = value.as_object()?;
        if let Some(detail) = object.get("detail").and_then(|d| d.as_str()) {
            return Some(detail.to_owned());
        }
        let fields: Vec<String> = object
            .iter()
            .filter_map(|(field, messages)| {
                let messages = messages.as_array()?;
                let text: Vec<&str> = messages.iter().filter_map(|m| m.as_str()).collect();
                Some(format!("{field}: {}", text.join(" ")))
            })
            .collect();
        (!fields.is_empty()).then(|| fields.join("; "))
    }

    fn unexpected(detail: String) -> SourceError {
        SourceError::BadResponse { backend: Backend::Monolith, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calls_url_is_the_base_with_the_path_appended_as_text_would_give_it() {
        for base in [
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/",
            "http://legacy.internal/django",
            "https://legacy.internal/django/",
        ] {
            let parsed = reqwest::Url::parse(base).unwrap_or_else(|e| panic!("{base}: {e}"));
            for path in ["/api/v1/me/", "/api/v1/templates/42/draft/blocks/"] {
                // The way each call made its URL before: the text, parsed.
                let expected = reqwest::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
                    .unwrap_or_else(|e| panic!("{base}{path}: {e}"));
                assert_eq!(call_url(&parsed, path), expected, "{base} {path}");
            }
        }
    }

    #[test]
    fn a_5xx_page_reaches_the_log_as_a_one_line_excerpt() {
        let page =
            format!("<html>\n<title>Server Error (500)</title>\n{}</html>", "<p>trace</p>\n".repeat(5000));
        let Err(SourceError::Unavailable { detail, .. }) =
            decode_response::<serde::de::IgnoredAny>(StatusCode::INTERNAL_SERVER_ERROR, page.as_bytes())
        else {
            panic!("a 500 is the backend unavailable")
        };
        assert!(
            detail.starts_with("500 Internal Server Error: <html> <title>Server Error (500)</title>"),
            "{detail}"
        );
        assert!(detail.ends_with(&format!("… ({} bytes)", page.len())), "{detail}");
        assert!(detail.chars().count() < BODY_EXCERPT_CHARS + 80, "{} characters", detail.chars().count());
        assert!(!detail.contains('\n'));
        let short = decode_response::<serde::de::IgnoredAny>(
            StatusCode::SERVICE_UNAVAILABLE,
            b"{\"detail\": \"down\"}",
        );
        assert!(
            matches!(short, Err(SourceError::Unavailable { detail, .. }) if detail == "503 Service Unavailable: {\"detail\": \"down\"}")
        );
    }

    #[test]
    fn a_2xx_body_is_read_as_utf_8_json_and_anything_else_is_a_bad_response() {
        let user = "{\"id\": 7, \"username\": \"ada\", \"email\": \"ada@example.com\", \
                    \"full_name\": \"Ada \\u00e9 \u{e9}\", \"date_joined\": \"2026-01-02T03:04:05Z\"}";
        let decoded: Result<wire::User, _> = decode_response(StatusCode::OK, user.as_bytes());
        let decoded = decoded.and_then(User::try_from).map(|user| user.full_name);
        assert_eq!(decoded.ok().as_deref(), Some("Ada \u{e9} \u{e9}"));
        // A string that is not UTF-8 (a lone continuation byte), then bytes that are not JSON.
        let bodies: [&[u8]; 3] = [b"{\"id\": 7, \"username\": \"\x80\"}", b"\xff\xfe{}", b"{\"id\": "];
        for body in bodies {
            let Err(SourceError::BadResponse { backend, detail }) =
                decode_response::<wire::User>(StatusCode::OK, body)
            else {
                panic!("{body:?} decoded")
            };
            assert_eq!(backend, Backend::Monolith);
            assert!(detail.starts_with("decoding a 200 OK answer: "), "{detail}");
        }
    }
}
