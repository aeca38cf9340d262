//! The legacy draft write endpoints: insert, change and delete one block of a template's draft
//! in the monolith's own `draft` table, with an optimistic version, as a Django REST framework
//! view would write them.
//!
//! - The expected version travels as a serializer field, `version`, in the JSON body of `POST`
//!   and `PATCH`, and as the query parameter `?version=` of `DELETE` (DRF reads no body on a
//!   `DELETE` a client can be relied on to send). A stale version is `409 Conflict` with the
//!   current version in the body, `{"detail": "...", "current_version": 7}`, as a DRF
//!   `APIException` subclass with `status_code = 409` answers. (Not `412`: that is for
//!   `If-Match` preconditions, which DRF does not evaluate and these views do not read.)
//! - Checks run in the order a DRF view runs them: authentication (and Django's CSRF check for a
//!   session), visibility of the template (`404`), the role (`403` for a viewer), the body
//!   (`415`, `400`), the fields (`400` field errors), then, under the row lock, the draft
//!   (`404`), the version (`409`) and the block (`404`).
//! - Every write answers the whole `Draft` at its new version: `201` for an insert, `200` for a
//!   change and for a delete (the view returns the draft instead of DRF's default empty `204`,
//!   so the client learns the version its next write needs).
//! - Nothing is copied to the draft store: the dual write runs from the services to the
//!   monolith only, so a draft written here and read from the draft store is stale (the split
//!   brain the migration engine warns about).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::MonolithState;
use super::auth::{Caller, IdPath};
use super::error::ApiError;
use super::handlers::{DraftOut, char_field, json_object};
use super::query::RequestUrl;
use crate::legacy::{DraftChange, DraftWriteError};

/// `{id}` and `{block_id}` of `/api/v1/templates/{id}/draft/blocks/{block_id}/`: the id an
/// integer as `<int:pk>` matches it, the block id any non-empty segment (`<str:block_id>`).
#[derive(Debug, Clone)]
pub(super) struct BlockPath {
    template: u64,
    block_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for BlockPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((raw, block_id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) || block_id.is_empty() {
            return Err(ApiError::not_found());
        }
        let template = raw.parse().map_err(|_| ApiError::not_found())?;
        Ok(BlockPath { template, block_id })
    }
}

/// The block types a draft can hold.
const BLOCK_TYPES: [&str; 5] = ["heading", "text", "image", "button", "divider"];

/// Field errors collected over a serializer's fields, as DRF reports them all at once.
#[derive(Default)]
struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_default().push(message.into());
    }

    fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Fields(self.0)) }
    }
}

/// DRF's `IntegerField(min_value=0)`: integers, and strings of one; `Err` with the message.
fn non_negative_integer(value: &Value) -> Result<u64, &'static str> {
    let number = match value {
        Value::Null => return Err("This field may not be null."),
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    };
    let number = number.ok_or("A valid integer is required.")?;
    u64::try_from(number).map_err(|_| "Ensure this value is greater than or equal to 0.")
}

/// Reads an integer field into `errors`; `None` when absent and not `required`, or invalid.
fn integer_field(
    fields: &Map<String, Value>,
    name: &str,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<u64> {
    match fields.get(name) {
        None => {
            if required {
                errors.add(name, "This field is required.");
            }
            None
        }
        Some(value) => non_negative_integer(value).map_err(|m| errors.add(name, m)).ok(),
    }
}

/// Reads a `CharField(allow_blank=True)` into `errors`; `default` when absent (`None`: required).
fn content_field(
    fields: &Map<String, Value>,
    default: Option<&str>,
    errors: &mut FieldErrors,
) -> Option<String> {
    match (fields.get("content"), default) {
        (None, Some(default)) => Some(default.to_owned()),
        (None, None) => {
            errors.add("content", "This field is required.");
            None
        }
        (Some(value), _) => char_field(value).map_err(|m| errors.add("content", m)).ok(),
    }
}

/// Runs a checked change and answers the draft at its new version with `status`.
fn write(
    state: &MonolithState,
    caller: Caller,
    template: u64,
    expected_version: u64,
    change: DraftChange,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let row =
        state.shared.legacy.edit_draft(template, expected_version, caller.user, change).map_err(|error| {
            match error {
                DraftWriteError::NoDraft | DraftWriteError::NoBlock => ApiError::not_found(),
                DraftWriteError::VersionConflict { current } => {
                    ApiError::Conflict { expected: expected_version, current }
                }
            }
        })?;
    Ok((status, Json(DraftOut::new(template, row))).into_response())
}

/// `POST /api/v1/templates/{id}/draft/blocks/` with `{"version", "type", "content"?, "index"?}`:
/// inserts a block at `index` (absent or past the end: appended); `201` with the `Draft`.
pub(super) async fn insert_block(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let template = state.editable_template(caller, id)?;
    let fields = json_object(&headers, &body)?;
    let mut errors = FieldErrors::default();
    let version = integer_field(&fields, "version", true, &mut errors);
    let index = integer_field(&fields, "index", false, &mut errors);
    let block_type = match fields.get("type") {
        None => {
            errors.add("type", "This field is required.");
            None
        }
        Some(Value::Null) => {
            errors.add("type", "This field may not be null.");
            None
        }
        Some(value) => {
            let shown = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            let found = BLOCK_TYPES.iter().find(|t| **t == shown).copied();
            if found.is_none() {
                errors.add("type", format!("\"{shown}\" is not a valid choice."));
            }
            found
        }
    };
    let content = content_field(&fields, Some(""), &mut errors);
    errors.into_result()?;
    let (Some(version), Some(block_type), Some(content)) = (version, block_type, content) else {
        return Err(ApiError::bad_request("invalid input"));
    };
    let index = index.map_or(usize::MAX, |i| usize::try_from(i).unwrap_or(usize::MAX));
    let change = DraftChange::Insert { index, block_type, content };
    write(&state, caller, template.id, version, change, StatusCode::CREATED)
}

/// `PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/` with `{"version", "content"}`:
/// replaces the block's content; `200` with the `Draft`.
pub(super) async fn update_block(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    path: BlockPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let template = state.editable_template(caller, path.template)?;
    let fields = json_object(&headers, &body)?;
    let mut errors = FieldErrors::default();
    let version = integer_field(&fields, "version", true, &mut errors);
    let content = content_field(&fields, None, &mut errors);
    errors.into_result()?;
    let (Some(version), Some(content)) = (version, content) else {
        return Err(ApiError::bad_request("invalid input"));
    };
    let change = DraftChange::Update { block_id: path.block_id, content };
    write(&state, caller, template.id, version, change, StatusCode::OK)
}

/// `DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/?version=N`: removes the block; `200`
/// with the `Draft`.
pub(super) async fn delete_block(
    State(state): State<Arc<MonolithState>>,
    caller: Caller,
    path: BlockPath,
    url: RequestUrl,
) -> Result<Response, ApiError> {
    let template = state.editable_template(caller, path.template)?;
    let version = match url.param("version") {
        None => return Err(ApiError::field("version", "This field is required.")),
        Some(raw) => non_negative_integer(&Value::String(raw.to_owned()))
            .map_err(|message| ApiError::field("version", message))?,
    };
    let change = DraftChange::Delete { block_id: path.block_id };
    write(&state, caller, template.id, version, change, StatusCode::OK)
}
