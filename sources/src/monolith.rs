//! The legacy monolith's REST client (Django REST framework conventions; see
//! `devstack/MONOLITH_API.md`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::domain::{
    Block, BlockKind, Draft, Membership, Page, Role, StatsWindow, Template, TemplateId, TemplatePatch,
    TemplateStats, TemplateStatus, User, UserId, Workspace, WorkspaceId,
};
use crate::error::{Backend, SourceError};
use crate::identity::{Caller, Credential, REQUEST_ID_HEADER};

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
}

/// A pooled client for the monolith. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MonolithClient {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
}

impl MonolithClient {
    /// Builds the client; nothing is connected until the first call.
    pub fn new(options: &MonolithOptions) -> Result<Self, SourceError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| SourceError::Unavailable {
                backend: Backend::Monolith,
                detail: format!("building the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            base_url: options.base_url.trim_end_matches('/').to_owned(),
            timeout: options.timeout,
        })
    }

    /// The user a credential belongs to; [`SourceError::Unauthenticated`] when it belongs to no
    /// one. Both 401 and 403 mean that here: DRF answers 403 instead of 401 when the view's first
    /// authentication class (`SessionAuthentication`) sends no `WWW-Authenticate` challenge.
    pub async fn me(&self, credential: &Credential, request_id: Option<&str>) -> Result<User, SourceError> {
        let answer: Result<wire::User, SourceError> =
            self.send(Method::GET, "/api/v1/me/", &[], None::<&()>, credential, request_id).await;
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

    /// One workspace; `None` when it does not exist or the caller is not a member.
    pub async fn workspace(
        &self,
        caller: &Caller,
        id: WorkspaceId,
    ) -> Result<Option<Workspace>, SourceError> {
        let path = format!("/api/v1/workspaces/{id}/");
        not_found_as_none(self.get::<wire::Workspace>(caller, &path, &[]).await)?
            .map(TryInto::try_into)
            .transpose()
    }

    /// A workspace's members, all pages.
    pub async fn workspace_members(
        &self,
        caller: &Caller,
        id: WorkspaceId,
    ) -> Result<Vec<Membership>, SourceError> {
        let path = format!("/api/v1/workspaces/{id}/members/");
        let members: Vec<wire::Membership> = self.get_all_pages(caller, &path).await?;
        members.into_iter().map(TryInto::try_into).collect()
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
            .send(Method::PATCH, &path, &[], Some(&body), &caller.credential, caller.request_id.as_deref())
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
        })
    }

    /// The legacy draft view; `None` when the template has no draft.
    pub async fn legacy_draft(&self, caller: &Caller, id: TemplateId) -> Result<Option<Draft>, SourceError> {
        let path = format!("/api/v1/templates/{id}/draft/");
        not_found_as_none(self.get::<wire::Draft>(caller, &path, &[]).await)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn get<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SourceError> {
        self.send(Method::GET, path, query, None::<&()>, &caller.credential, caller.request_id.as_deref())
            .await
    }

    /// Follows `next` links until the list ends (bounded, so a broken backend cannot loop us).
    async fn get_all_pages<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
    ) -> Result<Vec<T>, SourceError> {
        const MAX_PAGES: u64 = 100;
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let query = [("page", page.to_string()), ("page_size", MAX_PAGE_SIZE.to_string())];
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

    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        credential: &Credential,
        request_id: Option<&str>,
    ) -> Result<T, SourceError> {
        let span = tracing::debug_span!("monolith", http.method = %method, path);
        let timeout = self.timeout;
        let call = async {
            let request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .header(reqwest::header::ACCEPT, "application/json")
                .query(query);
            let mut request = authenticate(request, &method, credential);
            if let Some(request_id) = request_id {
                request = request.header(REQUEST_ID_HEADER, request_id);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| transport_error(&e, timeout))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| transport_error(&e, timeout))?;
            decode_response(status, &bytes)
        };
        match tokio::time::timeout(timeout, call.instrument(span)).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Timeout { backend: Backend::Monolith, timeout }),
        }
    }
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

fn decode_response<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, SourceError> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| SourceError::BadResponse {
            backend: Backend::Monolith,
            detail: format!("decoding a {status} answer: {e}"),
        });
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
            detail: format!("{s}: {}", String::from_utf8_lossy(body)),
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
        created_at: DateTime<Utc>,
    }

    impl TryFrom<Workspace> for super::Workspace {
        type Error = SourceError;
        fn try_from(w: Workspace) -> Result<Self, SourceError> {
            Ok(Self { id: WorkspaceId(w.id), name: w.name, slug: w.slug, created_at: w.created_at })
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Membership {
        user: u64,
        role: String,
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
        created_at: DateTime<Utc>,
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
    pub(super) struct Analytics {
        pub(super) template: u64,
        pub(super) sent: u64,
        pub(super) delivered: u64,
        pub(super) opened: u64,
        pub(super) clicked: u64,
        pub(super) bounced: u64,
        pub(super) unique_opens: u64,
    }

    #[derive(Deserialize)]
    pub(super) struct Draft {
        template: u64,
        version: u64,
        blocks: Vec<DraftBlock>,
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
