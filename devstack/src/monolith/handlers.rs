//! The REST endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use chrono::Duration;
use serde::Serialize;
use serde_json::Value;

use super::MonolithState;
use super::auth::{Caller, IdPath};
use super::error::ApiError;
use super::query::RequestUrl;
use crate::dataset::{Membership, Template, TemplateStatus, User, Workspace};
use crate::legacy::DraftRow;
use crate::time::{self, rfc3339};

type ApiResult = Result<Json<Value>, ApiError>;

fn to_json<T: Serialize>(value: T) -> ApiResult {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| ApiError::Detail(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[derive(Serialize)]
struct UserOut<'a> {
    id: u64,
    username: &'a str,
    email: &'a str,
    full_name: &'a str,
    date_joined: String,
}

impl<'a> From<&'a User> for UserOut<'a> {
    fn from(u: &'a User) -> Self {
        UserOut {
            id: u.id,
            username: &u.username,
            email: &u.email,
            full_name: &u.full_name,
            date_joined: rfc3339(&u.date_joined),
        }
    }
}

#[derive(Serialize)]
struct WorkspaceOut<'a> {
    id: u64,
    name: &'a str,
    slug: &'a str,
    created_at: String,
}

impl<'a> From<&'a Workspace> for WorkspaceOut<'a> {
    fn from(w: &'a Workspace) -> Self {
        WorkspaceOut { id: w.id, name: &w.name, slug: &w.slug, created_at: rfc3339(&w.created_at) }
    }
}

#[derive(Serialize)]
struct MembershipOut {
    user: u64,
    role: &'static str,
    joined_at: String,
}

impl From<&Membership> for MembershipOut {
    fn from(m: &Membership) -> Self {
        MembershipOut { user: m.user, role: m.role.as_str(), joined_at: rfc3339(&m.joined_at) }
    }
}

#[derive(Serialize)]
struct TemplateOut {
    id: u64,
    workspace: u64,
    name: String,
    subject: String,
    status: &'static str,
    created_by: u64,
    created_at: String,
    updated_at: String,
    can_edit: bool,
}

impl MonolithState {
    fn template_out(&self, t: &Template, caller: Caller) -> TemplateOut {
        TemplateOut {
            id: t.id,
            workspace: t.workspace,
            name: t.name.clone(),
            subject: t.subject.clone(),
            status: t.status.as_str(),
            created_by: t.created_by,
            created_at: rfc3339(&t.created_at),
            updated_at: rfc3339(&t.updated_at),
            can_edit: self.shared.role(caller.user, t.workspace).is_some_and(|r| r.can_edit()),
        }
    }

    /// The template, if the caller may see it.
    pub(super) fn visible_template(&self, caller: Caller, id: u64) -> Result<Template, ApiError> {
        let template = self.templates().get(&id).cloned().ok_or_else(ApiError::not_found)?;
        if self.shared.role(caller.user, template.workspace).is_none() {
            return Err(ApiError::not_found());
        }
        Ok(template)
    }
}

/// `GET /api/v1/me/`
pub(super) async fn me(State(state): State<Arc<MonolithState>>, caller: Caller) -> ApiResult {
    let user = state.shared.dataset.user(caller.user).ok_or_else(ApiError::not_found)?;
    to_json(UserOut::from(user))
}

/// `GET /api/v1/users/?id__in=`
pub(super) async fn list_users(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    url: RequestUrl,
) -> ApiResult {
    let dataset = &state.shared.dataset;
    let wanted = url.id_in()?;
    let users: Vec<UserOut<'_>> = dataset
        .visible_users(caller.user)
        .into_iter()
        .filter(|id| wanted.as_ref().is_none_or(|w| w.contains(id)))
        .filter_map(|id| dataset.user(id))
        .map(UserOut::from)
        .collect();
    url.paginate(users)
}

/// `GET /api/v1/users/{id}/`
pub(super) async fn get_user(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult {
    let dataset = &state.shared.dataset;
    if !dataset.visible_users(caller.user).contains(&id) {
        return Err(ApiError::not_found());
    }
    let user = dataset.user(id).ok_or_else(ApiError::not_found)?;
    to_json(UserOut::from(user))
}

/// `GET /api/v1/workspaces/`
pub(super) async fn list_workspaces(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    url: RequestUrl,
) -> ApiResult {
    let dataset = &state.shared.dataset;
    let workspaces: Vec<WorkspaceOut<'_>> = state
        .shared
        .workspaces_of(caller.user)
        .into_iter()
        .filter_map(|id| dataset.workspace(id))
        .map(WorkspaceOut::from)
        .collect();
    url.paginate(workspaces)
}

/// `GET /api/v1/workspaces/{id}/`
pub(super) async fn get_workspace(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult {
    let dataset = &state.shared.dataset;
    if state.shared.role(caller.user, id).is_none() {
        return Err(ApiError::not_found());
    }
    let workspace = dataset.workspace(id).ok_or_else(ApiError::not_found)?;
    to_json(WorkspaceOut::from(workspace))
}

/// `GET /api/v1/workspaces/{id}/members/`
pub(super) async fn list_members(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
    url: RequestUrl,
) -> ApiResult {
    let dataset = &state.shared.dataset;
    if state.shared.role(caller.user, id).is_none() {
        return Err(ApiError::not_found());
    }
    let mut members: Vec<&Membership> = dataset.memberships.iter().filter(|m| m.workspace == id).collect();
    members.sort_by_key(|m| m.user);
    url.paginate(members.into_iter().map(MembershipOut::from).collect())
}

/// `GET /api/v1/memberships/?workspace__in=`: the memberships of the caller's workspaces (of
/// those among `workspace__in`), by workspace then user.
pub(super) async fn list_memberships(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    url: RequestUrl,
) -> ApiResult {
    let dataset = &state.shared.dataset;
    let wanted = url.ids_in("workspace__in")?;
    let visible = state.shared.workspaces_of(caller.user);
    let mut members: Vec<&Membership> = dataset
        .memberships
        .iter()
        .filter(|m| visible.contains(&m.workspace))
        .filter(|m| wanted.as_ref().is_none_or(|w| w.contains(&m.workspace)))
        .collect();
    members.sort_by_key(|m| (m.workspace, m.user));
    url.paginate(members.into_iter().map(WorkspaceMembershipOut::from).collect())
}

#[derive(Serialize)]
struct WorkspaceMembershipOut {
    workspace: u64,
    #[serde(flatten)]
    membership: MembershipOut,
}

impl From<&Membership> for WorkspaceMembershipOut {
    fn from(m: &Membership) -> Self {
        WorkspaceMembershipOut { workspace: m.workspace, membership: MembershipOut::from(m) }
    }
}

/// DRF's `SearchFilter` terms: split on whitespace and commas.
fn search_terms(search: &str) -> Vec<String> {
    search
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// `GET /api/v1/templates/?workspace=&search=&id__in=&page=&page_size=`
pub(super) async fn list_templates(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    url: RequestUrl,
) -> ApiResult {
    let workspaces = state.shared.workspaces_of(caller.user);
    let workspace = match url.param("workspace").map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(raw) => {
            Some(raw.parse::<u64>().map_err(|_| ApiError::field("workspace", "Enter a whole number."))?)
        }
    };
    let ids = url.id_in()?;
    let terms = search_terms(url.param("search").unwrap_or_default());
    let matches_search = |t: &Template| {
        terms.is_empty() || {
            let name = t.name.to_lowercase();
            let subject = t.subject.to_lowercase();
            terms.iter().all(|term| name.contains(term) || subject.contains(term))
        }
    };
    // Filter and sort references; only the page's templates become resources (DRF paginates the
    // queryset before serializing too).
    let all = state.templates();
    let mut templates: Vec<&Template> = all
        .values()
        .filter(|t| workspaces.contains(&t.workspace))
        .filter(|t| workspace.is_none_or(|w| t.workspace == w))
        .filter(|t| ids.as_ref().is_none_or(|ids| ids.contains(&t.id)))
        .filter(|t| matches_search(t))
        .collect();
    if ids.is_none() {
        // Newest change first, then id descending.
        templates.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
    }
    url.paginate_with(templates, |t| state.template_out(t, caller))
}

/// `GET /api/v1/templates/{id}/`
pub(super) async fn get_template(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult {
    let template = state.visible_template(caller, id)?;
    to_json(state.template_out(&template, caller))
}

/// DRF's name for the JSON type of a value, for "Expected a dictionary, but got list."
pub(super) fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// DRF's `CharField` reading of a value: strings, and numbers as text; `Err` with the message.
pub(super) fn char_field(value: &Value) -> Result<String, &'static str> {
    match value {
        Value::Null => Err("This field may not be null."),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => Err("Not a valid string."),
    }
}

impl MonolithState {
    /// The template, if the caller may see it (404) and change it (403), checked in that order
    /// as DRF's `get_object()` then `check_object_permissions` do.
    pub(super) fn editable_template(&self, caller: Caller, id: u64) -> Result<Template, ApiError> {
        let template = self.visible_template(caller, id)?;
        let can_edit = self.shared.role(caller.user, template.workspace).is_some_and(|r| r.can_edit());
        if !can_edit {
            return Err(ApiError::forbidden());
        }
        Ok(template)
    }
}

/// A request body as DRF's `JSONParser` reads it for a serializer: empty is `{}`, another
/// content type is `415`, bad JSON is `400 "JSON parse error - ..."`, and anything but an object
/// is `400 {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}`.
pub(super) fn json_object(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let data: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(serde_json::Map::new())
    } else {
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::Detail(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported media type \"{content_type}\" in request."),
            ));
        }
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("JSON parse error - {e}")))?
    };
    match data {
        Value::Object(fields) => Ok(fields),
        other => Err(ApiError::Fields(BTreeMap::from([(
            "non_field_errors".to_string(),
            vec![format!("Invalid data. Expected a dictionary, but got {}.", python_type(&other))],
        )]))),
    }
}

/// `PATCH /api/v1/templates/{id}/` with `{"name"?, "status"?}`.
pub(super) async fn patch_template(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.editable_template(caller, id)?;
    let fields = json_object(&headers, &body)?;
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name = None;
    if let Some(value) = fields.get("name") {
        match char_field(value).map(|s| s.trim().to_string()) {
            Err(message) => {
                errors.insert("name".into(), vec![message.into()]);
            }
            Ok(s) if s.is_empty() => {
                errors.insert("name".into(), vec!["This field may not be blank.".into()]);
            }
            Ok(s) if s.chars().count() > 200 => {
                errors
                    .insert("name".into(), vec!["Ensure this field has no more than 200 characters.".into()]);
            }
            Ok(s) => name = Some(s),
        }
    }
    let mut status = None;
    if let Some(value) = fields.get("status") {
        let shown = match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        match shown {
            None => {
                errors.insert("status".into(), vec!["This field may not be null.".into()]);
            }
            Some(shown) => match TemplateStatus::parse(&shown) {
                Some(s) => status = Some(s),
                None => {
                    errors.insert("status".into(), vec![format!("\"{shown}\" is not a valid choice.")]);
                }
            },
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let updated = {
        let mut templates = state.templates_mut();
        let stored = templates.get_mut(&id).ok_or_else(ApiError::not_found)?;
        if let Some(name) = name {
            stored.name = name;
        }
        if let Some(status) = status {
            stored.status = status;
        }
        stored.updated_at = time::now();
        stored.clone()
    };
    to_json(state.template_out(&updated, caller))
}

#[derive(Serialize)]
struct AnalyticsOut {
    template: u64,
    window: &'static str,
    sent: u64,
    delivered: u64,
    opened: u64,
    clicked: u64,
    bounced: u64,
    unique_opens: u64,
    open_rate: f64,
    click_rate: f64,
    /// When the numbers were computed: sent only while the A/A noise knob is on, and then
    /// different on every call.
    #[serde(skip_serializing_if = "Option::is_none")]
    computed_at: Option<String>,
}

/// The analytics windows and their lengths.
const WINDOWS: [(&str, i64); 4] = [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24), ("90d", 90 * 24)];

/// `GET /api/v1/templates/{id}/analytics/?window=7d`: counted from the monolith's own event
/// table (not the event store), over the window that ends now.
pub(super) async fn analytics(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
    url: RequestUrl,
) -> ApiResult {
    let template = state.visible_template(caller, id)?;
    let requested = url.param("window").unwrap_or("7d");
    let Some((window, hours)) = WINDOWS.iter().find(|(name, _)| *name == requested) else {
        return Err(ApiError::field("window", format!("\"{requested}\" is not a valid choice.")));
    };
    let end = time::now();
    let start = end - Duration::hours(*hours);
    let counts = state.shared.legacy.analytics(template.id, start, end);
    let rate = |n: u64| {
        if counts.delivered == 0 { 0.0 } else { n as f64 / counts.delivered as f64 }
    };
    to_json(AnalyticsOut {
        template: template.id,
        window,
        sent: counts.sent,
        delivered: counts.delivered,
        opened: counts.opened,
        clicked: counts.clicked,
        bounced: counts.bounced,
        unique_opens: counts.unique_opens,
        open_rate: rate(counts.opened),
        click_rate: rate(counts.clicked),
        computed_at: state.shared.legacy.aa_noise().then(|| rfc3339(&state.shared.legacy.computed_at())),
    })
}

#[derive(Serialize)]
struct BlockOut {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    content: String,
}

/// The `Draft` resource.
#[derive(Serialize)]
pub(super) struct DraftOut {
    template: u64,
    version: u64,
    blocks: Vec<BlockOut>,
    updated_at: Option<String>,
    /// The author's user id; `null` if the service recorded an id that is not a number.
    updated_by: Option<u64>,
}

impl DraftOut {
    /// The resource of a template's draft row.
    pub(super) fn new(template: u64, draft: DraftRow) -> Self {
        DraftOut {
            template,
            version: draft.version,
            blocks: draft
                .blocks
                .into_iter()
                .map(|b| BlockOut { kind: b.block_type, id: b.id, content: b.content })
                .collect(),
            updated_at: draft.updated_at.map(|t| rfc3339(&t)),
            updated_by: draft.updated_by.trim().parse().ok(),
        }
    }
}

/// `GET /api/v1/templates/{id}/draft/`: the monolith's own draft row (kept in step with the draft
/// store by the dual write).
pub(super) async fn draft(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult {
    let template = state.visible_template(caller, id)?;
    let draft = state.shared.legacy.draft(template.id).ok_or_else(ApiError::not_found)?;
    to_json(DraftOut::new(template.id, draft))
}

/// The `EmailEvent` resource of the legacy events view.
#[derive(Serialize)]
struct EventOut {
    /// The event store's sequence (the monolith's `event_sequence` column).
    sequence: u64,
    template: u64,
    kind: &'static str,
    recipient: String,
    occurred_at: String,
}

/// `GET /api/v1/templates/{id}/events/?page=&page_size=`: the template's events from the
/// monolith's own `email_event` table (fed by the dual write), newest first, page-number
/// paginated.
pub(super) async fn events(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
    url: RequestUrl,
) -> ApiResult {
    let template = state.visible_template(caller, id)?;
    let rows = state.shared.legacy.events_newest_first(template.id);
    url.paginate_with(rows, |row| EventOut {
        sequence: row.sequence,
        template: template.id,
        kind: row.kind,
        recipient: row.recipient.to_string(),
        occurred_at: rfc3339(&row.occurred_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_splits_like_drf() {
        assert_eq!(search_terms(" Spring,sale  "), vec!["spring", "sale"]);
        assert!(search_terms("").is_empty());
    }

    #[test]
    fn char_fields_read_like_drf() {
        assert_eq!(char_field(&Value::from(5)), Ok("5".to_string()));
        assert_eq!(char_field(&Value::Null), Err("This field may not be null."));
        assert_eq!(char_field(&Value::Bool(true)), Err("Not a valid string."));
        assert_eq!(python_type(&Value::Array(vec![])), "list");
    }
}
