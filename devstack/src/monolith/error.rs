//! Error answers in Django REST framework's shapes.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer of the monolith stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// `{"detail": "..."}` with this status.
    Detail(StatusCode, String),
    /// `401 {"detail": "..."}` with `WWW-Authenticate: Token`.
    Unauthenticated(String),
    /// `400` field errors: `{"name": ["This field may not be blank."]}`.
    Fields(BTreeMap<String, Vec<String>>),
    /// `409` for a stale optimistic version: `{"detail": "...", "current_version": 7}`.
    Conflict {
        /// The version the writer sent.
        expected: u64,
        /// The version now.
        current: u64,
    },
}

impl ApiError {
    pub(crate) fn not_found() -> Self {
        Self::Detail(StatusCode::NOT_FOUND, "Not found.".into())
    }

    pub(crate) fn invalid_page() -> Self {
        Self::Detail(StatusCode::NOT_FOUND, "Invalid page.".into())
    }

    pub(crate) fn forbidden() -> Self {
        Self::Detail(StatusCode::FORBIDDEN, "You do not have permission to perform this action.".into())
    }

    pub(crate) fn unavailable() -> Self {
        Self::Detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable.".into())
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::Detail(StatusCode::BAD_REQUEST, detail.into())
    }

    /// One error on one field.
    pub(crate) fn field(name: &str, message: impl Into<String>) -> Self {
        Self::Fields(BTreeMap::from([(name.to_string(), vec![message.into()])]))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Detail(status, detail) => (status, Json(json!({ "detail": detail }))).into_response(),
            ApiError::Unauthenticated(detail) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Token")],
                Json(json!({ "detail": detail })),
            )
                .into_response(),
            ApiError::Fields(fields) => (StatusCode::BAD_REQUEST, Json(fields)).into_response(),
            ApiError::Conflict { expected, current } => (
                StatusCode::CONFLICT,
                Json(json!({
                    "detail": format!("The draft is at version {current}, not {expected}."),
                    "current_version": current,
                })),
            )
                .into_response(),
        }
    }
}
