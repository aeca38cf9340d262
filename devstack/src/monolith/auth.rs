//! `Authorization: Token <key>`, checked the way DRF's `TokenAuthentication` checks it, and the
//! path id extractor.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::MonolithState;
use super::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    /// The caller's user id.
    pub(crate) user: u64,
}

fn not_provided() -> ApiError {
    ApiError::Unauthenticated("Authentication credentials were not provided.".into())
}

impl FromRequestParts<Arc<MonolithState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<MonolithState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(not_provided());
        };
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            return Err(ApiError::Unauthenticated(
                "Invalid token header. Token string should not contain invalid characters.".into(),
            ));
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            // Another scheme (or none) is not this authenticator's business: not authenticated.
            [] => Err(not_provided()),
            [scheme, ..] if !scheme.eq_ignore_ascii_case("token") => Err(not_provided()),
            [_] => Err(ApiError::Unauthenticated("Invalid token header. No credentials provided.".into())),
            [_, key] => state
                .user_for_token(key)
                .map(|user| Caller { user })
                .ok_or_else(|| ApiError::Unauthenticated("Invalid token.".into())),
            _ => Err(ApiError::Unauthenticated(
                "Invalid token header. Token string should not contain spaces.".into(),
            )),
        }
    }
}

/// The `{id}` of the path, an integer as Django's `<int:pk>` matches it; anything else is a 404.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdPath(pub(crate) u64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found())?;
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::not_found());
        }
        raw.parse().map(IdPath).map_err(|_| ApiError::not_found())
    }
}
