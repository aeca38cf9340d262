//! `/__devstack/`: counters and fault knobs for a human with curl. Not counted, no faults.
//!
//! - `GET /__devstack/calls`: the call counters, `{"GET /api/v1/me/": 3, ...}`
//! - `DELETE /__devstack/calls`: resets them
//! - `GET /__devstack/faults`: every backend's fault
//! - `PUT /__devstack/faults/{backend}` with a `Fault` as JSON (`{"latency": "300ms",
//!   "error_rate": 0.2, "hang": false, "refuse_connections": false, "answer": "html_500"}`, every
//!   field optional; `answer` is one of `deadline_exceeded`, `resource_exhausted`, `malformed`,
//!   `html_500`, `append_slash_redirect`, `partial_body`, `slow_body`, `reset`):
//!   sets it; `DELETE` clears it
//! - `GET /__devstack/users`: the seeded users with their tokens, sessions and memberships
//! - `GET /__devstack/legacy-sync`, `PUT` with `{"enabled": false}`: the dual write to the
//!   monolith's own event and draft tables (services to monolith only)
//! - `GET /__devstack/aa-noise`, `PUT` with `{"enabled": true}`: the A/A noise knob (the legacy
//!   analytics view adds a `computed_at` that differs on every call)
//! - `GET /__devstack/streams`: the `StreamEvents` calls the event store is serving now,
//!   `{"event_streams": 3}` (what the gateway's fan-out of subscriptions is measured by)

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::MonolithState;
use super::error::ApiError;
use crate::faults::{Backend, Fault};

pub(super) fn router() -> Router<Arc<MonolithState>> {
    Router::new()
        .route("/__devstack/calls", get(calls).delete(reset_calls))
        .route("/__devstack/faults", get(faults))
        .route("/__devstack/faults/{backend}", get(fault).put(set_fault).delete(clear_fault))
        .route("/__devstack/users", get(users))
        .route("/__devstack/legacy-sync", get(legacy_sync).put(set_legacy_sync))
        .route("/__devstack/aa-noise", get(aa_noise).put(set_aa_noise))
        .route("/__devstack/streams", get(streams))
}

async fn streams(State(state): State<Arc<MonolithState>>) -> Response {
    Json(json!({ "event_streams": state.shared.events.active_streams() })).into_response()
}

async fn calls(State(state): State<Arc<MonolithState>>) -> Response {
    Json(state.shared.calls.snapshot()).into_response()
}

async fn reset_calls(State(state): State<Arc<MonolithState>>) -> StatusCode {
    state.shared.calls.reset();
    StatusCode::NO_CONTENT
}

async fn faults(State(state): State<Arc<MonolithState>>) -> Response {
    Json(state.shared.faults.snapshot()).into_response()
}

fn backend(name: &str) -> Result<Backend, ApiError> {
    name.parse()
        .map_err(|e: crate::faults::UnknownBackend| ApiError::Detail(StatusCode::NOT_FOUND, e.to_string()))
}

async fn fault(
    State(state): State<Arc<MonolithState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let backend = backend(&name)?;
    Ok(Json(state.shared.faults.get(backend)).into_response())
}

async fn set_fault(
    State(state): State<Arc<MonolithState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let backend = backend(&name)?;
    let fault: Fault =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("not a fault: {e}")))?;
    fault.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
    state.shared.faults.set(backend, fault);
    Ok(Json(state.shared.faults.get(backend)).into_response())
}

async fn clear_fault(
    State(state): State<Arc<MonolithState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let backend = backend(&name)?;
    state.shared.faults.clear(backend);
    Ok(StatusCode::NO_CONTENT)
}

async fn users(State(state): State<Arc<MonolithState>>) -> Json<Value> {
    let dataset = &state.shared.dataset;
    let users: Vec<Value> = dataset
        .users
        .iter()
        .map(|u| {
            let memberships: Vec<Value> = dataset
                .memberships
                .iter()
                .filter(|m| m.user == u.id)
                .map(|m| json!({ "workspace": m.workspace, "role": m.role.as_str() }))
                .collect();
            json!({
                "id": u.id,
                "username": u.username,
                "token": u.token,
                "session_id": u.session_id,
                "memberships": memberships,
            })
        })
        .collect();
    Json(Value::Array(users))
}

async fn legacy_sync(State(state): State<Arc<MonolithState>>) -> Json<Value> {
    Json(json!({ "enabled": state.shared.legacy.syncing() }))
}

/// The body of a `PUT` to an on/off knob.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    enabled: bool,
}

fn switch(body: &[u8]) -> Result<bool, ApiError> {
    serde_json::from_slice::<Switch>(body)
        .map(|s| s.enabled)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"enabled\": true|false}}: {e}")))
}

async fn set_legacy_sync(
    State(state): State<Arc<MonolithState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state.shared.legacy.set_sync(switch(&body)?);
    Ok(legacy_sync(State(state)).await)
}

async fn aa_noise(State(state): State<Arc<MonolithState>>) -> Json<Value> {
    Json(json!({ "enabled": state.shared.legacy.aa_noise() }))
}

async fn set_aa_noise(State(state): State<Arc<MonolithState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    state.shared.legacy.set_aa_noise(switch(&body)?);
    Ok(aa_noise(State(state)).await)
}
