//! The monolith stand-in: the legacy Django app's REST API (see `MONOLITH_API.md`), plus the
//! `/__devstack/` admin surface.

mod admin;
mod auth;
mod draft_writes;
mod error;
mod handlers;
mod query;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};

use crate::Shared;
use crate::dataset::Template;
use crate::faults::{self, Backend, Verdict};

pub(crate) use error::ApiError;

/// What the monolith's handlers share.
#[derive(Debug)]
pub(crate) struct MonolithState {
    shared: Arc<Shared>,
    /// The templates as they are now (`PATCH` changes them).
    templates: RwLock<BTreeMap<u64, Template>>,
    /// Token to user id (DRF's `authtoken_token` table).
    tokens: HashMap<String, u64>,
    /// Session key to user id (Django's `django_session` table, signed-in sessions only).
    sessions: HashMap<String, u64>,
    /// See `DevStackConfig::session_authentication_first`.
    session_authentication_first: bool,
    /// Where the stand-in listens; the host of absolute URLs when a request has no `Host`.
    addr: SocketAddr,
}

impl MonolithState {
    fn user_for_token(&self, token: &str) -> Option<u64> {
        let revoked = self.shared.revoked_tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if revoked.contains(token) {
            return None;
        }
        self.tokens.get(token).copied()
    }

    fn user_for_session(&self, session_key: &str) -> Option<u64> {
        self.sessions.get(session_key).copied()
    }

    fn templates(&self) -> RwLockReadGuard<'_, BTreeMap<u64, Template>> {
        // A PATCH replaces a template only after validating it: a poisoned lock is still sound.
        self.templates.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn templates_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<u64, Template>> {
        self.templates.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The monolith's router: the API (counted, and subject to the monolith's fault) and the admin
/// surface (neither).
pub(crate) fn router(shared: Arc<Shared>, addr: SocketAddr) -> Router {
    let dataset = &shared.dataset;
    let state = Arc::new(MonolithState {
        templates: RwLock::new(dataset.templates.iter().map(|t| (t.id, t.clone())).collect()),
        tokens: dataset.users.iter().map(|u| (u.token.clone(), u.id)).collect(),
        sessions: dataset.users.iter().map(|u| (u.session_id.clone(), u.id)).collect(),
        session_authentication_first: shared.session_authentication_first,
        addr,
        shared,
    });
    let api = Router::new()
        .route("/api/v1/me/", get(handlers::me))
        .route("/api/v1/users/", get(handlers::list_users))
        .route("/api/v1/users/{id}/", get(handlers::get_user))
        .route("/api/v1/workspaces/", get(handlers::list_workspaces))
        .route("/api/v1/workspaces/{id}/", get(handlers::get_workspace))
        .route("/api/v1/workspaces/{id}/members/", get(handlers::list_members))
        .route("/api/v1/memberships/", get(handlers::list_memberships))
        .route("/api/v1/templates/", get(handlers::list_templates))
        .route("/api/v1/templates/{id}/", get(handlers::get_template).patch(handlers::patch_template))
        .route("/api/v1/templates/{id}/analytics/", get(handlers::analytics))
        .route("/api/v1/templates/{id}/draft/", get(handlers::draft))
        .route("/api/v1/templates/{id}/events/", get(handlers::events))
        .route("/api/v1/templates/{id}/draft/blocks/", post(draft_writes::insert_block))
        .route(
            "/api/v1/templates/{id}/draft/blocks/{block_id}/",
            patch(draft_writes::update_block).delete(draft_writes::delete_block),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    api.merge(admin::router()).with_state(state)
}

/// Counts the call under `"{METHOD} {route pattern}"` and applies the monolith's fault.
async fn guard(State(state): State<Arc<MonolithState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path().to_string(), |p| p.as_str().to_string());
    let key = format!("{} {route}", request.method());
    state.shared.calls.record(&key, request.headers());
    match faults::apply(&state.shared.faults, &state.shared.shutdown, Backend::Monolith).await {
        Verdict::Serve => match state.shared.faults.get(Backend::Monolith).answer {
            None => next.run(request).await,
            Some(answer) => {
                let path = request.uri().path().to_owned();
                crate::wrong_answer::monolith(
                    answer,
                    &path,
                    next.run(request).await,
                    state.shared.shutdown.clone(),
                )
                .await
            }
        },
        Verdict::Fail => ApiError::unavailable().into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::Detail(axum::http::StatusCode::METHOD_NOT_ALLOWED, format!("Method \"{method}\" not allowed."))
}
