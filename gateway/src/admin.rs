//! `/admin/migration`: the migration engine as an operator sees it. JSON (the table in force,
//! the declarations, shadow counters, evidence, mismatch exemplars, reload status and the
//! retirement report) and a self-contained HTML page that polls it.
//!
//! Access ([`AdminAccess`]): `banyan dev` serves it openly; `banyan serve` only with
//! `admin.token` set, to callers sending `Authorization: Bearer <token>` (401 otherwise), and
//! not at all (404, as if absent) without one — an unset token never means "open".

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use banyan_migration::recorder::{Counters, Exemplar, Latencies, NoiseStat};
use banyan_migration::{
    Backend, Catalog, ContractIndex, Dependency, Engine, FieldDeclaration, FieldKey, KeyEvidence, LiveTable,
    RecorderConfig, Report, RoutingTable, ShadowRecorder,
};
use serde::Serialize;

use crate::app::AppState;
use crate::config::AdminAccess;
use crate::migration_contract::{self, ContractView};

/// The page; its script polls the JSON and renders it with `textContent` only (exemplars hold
/// backend data).
const PAGE: &str = include_str!("admin_migration.html");

/// The engine with every field on its declared default backend, evidence joined with `contract`:
/// what runs until a routing table is configured.
pub(crate) fn default_engine(catalog: Arc<Catalog>, contract: &ContractIndex) -> Engine {
    let table = RoutingTable::defaults(&catalog);
    let recorder = Arc::new(ShadowRecorder::new(catalog, RecorderConfig::default()));
    Engine::new(LiveTable::new(table, recorder, Arc::new(contract.clone())))
}

/// The contract folder's usage, or none (logged) when it cannot be read: a gateway without the
/// folder still serves, and its report lists no component.
pub(crate) fn load_contract(dir: &std::path::Path) -> ContractView {
    match migration_contract::load(None, dir) {
        Ok(view) => view,
        Err(error) => {
            tracing::warn!(
                contract = %dir.display(),
                error = %error,
                "the frontend contract cannot be read: the migration report lists no component, and a flip that requires every contract operation is refused"
            );
            ContractView { index: ContractIndex::unreadable(), ..ContractView::default() }
        }
    }
}

/// The admin routes for `access`; none when it is disabled, so they answer 404 like any
/// unknown path.
pub(crate) fn routes(access: &AdminAccess) -> Router<AppState> {
    let router = Router::new()
        .route("/admin/migration", get(migration))
        .route("/admin/migration.json", get(migration_json));
    match access {
        AdminAccess::Disabled => Router::new(),
        AdminAccess::Token(_) | AdminAccess::Open => router,
    }
}

/// `GET /admin/migration`: the page for a browser (`Accept: text/html`), the JSON otherwise.
async fn migration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(denied) = denial(&state, &headers) {
        return denied;
    }
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html { page() } else { json(&state, &headers) }
}

/// `GET /admin/migration.json`: always the JSON.
async fn migration_json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(denied) = denial(&state, &headers) {
        return denied;
    }
    json(&state, &headers)
}

/// The response refusing the request, or `None` when it may read the admin routes.
fn denial(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let expected = match &state.admin_access {
        AdminAccess::Open => return None,
        // Not routed; kept total in case the routes are mounted some other way.
        AdminAccess::Disabled => return Some(StatusCode::NOT_FOUND.into_response()),
        AdminAccess::Token(token) => token,
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        // The scheme is case-insensitive (RFC 9110, 11.1).
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => None,
        presented => {
            let error = if presented.is_some() { "invalid_token" } else { "missing_token" };
            let body =
                serde_json::json!({ "error": error, "message": "send Authorization: Bearer <admin.token>" });
            let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"banyan-admin\""));
            Some(response)
        }
    }
}

/// Compares without stopping at the first differing byte, so response times do not tell how
/// much of a guessed token was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn page() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    let headers = response.headers_mut();
    // Everything is inline and the data comes from this origin only.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The status as JSON. Serialized here rather than by `axum::Json`, whose failure answers the
/// serializer's own message as plain text: a failure is logged and answered with a code and the
/// request id only.
fn json(state: &AppState, headers: &HeaderMap) -> Response {
    let status = MigrationStatus::gather(&state.engine, &state.contract);
    let mut response = match serde_json::to_vec(&status) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(error) => {
            let request_id = crate::auth::request_id(headers);
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), %error, "serializing the migration status");
            let body = serde_json::json!({
                "error": "internal_error",
                "message": crate::error_masking::INTERNAL_MESSAGE,
                "requestId": request_id,
            });
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The declarations, as declared.
#[derive(Debug, Serialize)]
struct Declarations {
    /// The migrated fields.
    fields: Vec<&'static FieldDeclaration>,
    /// The backend calls of every other resolver and of the gateway.
    dependencies: &'static [Dependency],
}

/// One field's shadow counters.
#[derive(Debug, Serialize)]
struct FieldCounters {
    /// All outcomes.
    counters: Counters,
    /// `matched / (matched + mismatched)`, `None` before any comparison.
    match_rate: Option<f64>,
    /// Outcomes per operation name.
    operations: BTreeMap<String, Counters>,
    /// Requests served, per backend.
    served: BTreeMap<Backend, u64>,
    /// Each backend's latency histogram.
    latency: Latencies,
    /// Secondary calls running now.
    in_flight: usize,
    /// A/A calibrations run, and how many found a difference.
    calibrations: u64,
    calibrations_differing: u64,
    /// Paths known as noise, and how often each differed.
    noise: BTreeMap<String, NoiseStat>,
}

/// What `/admin/migration` answers.
#[derive(Debug, Serialize)]
struct MigrationStatus {
    /// The table in force (routes, warnings, where it came from).
    #[serde(serialize_with = "serialize_table")]
    table: Arc<RoutingTable>,
    /// How reloads have gone.
    reload: banyan_migration::live::ReloadStatus,
    declarations: Declarations,
    /// Per field key.
    counters: BTreeMap<FieldKey, FieldCounters>,
    /// Per field key: the evidence a flip is judged by.
    evidence: BTreeMap<FieldKey, KeyEvidence>,
    /// Per field key: the latest mismatches, newest first.
    exemplars: BTreeMap<FieldKey, Vec<Exemplar>>,
    /// The retirement report, as `banyan migration report --format json` prints it.
    report: Report,
}

fn serialize_table<S: serde::Serializer>(
    table: &Arc<RoutingTable>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    table.as_ref().serialize(serializer)
}

impl MigrationStatus {
    fn gather(engine: &Engine, contract: &ContractView) -> Self {
        let catalog = engine.catalog();
        let table = engine.live.snapshot();
        let results = engine.live.recorder().snapshot();
        let mut counters = BTreeMap::new();
        let mut evidence = BTreeMap::new();
        let mut exemplars = BTreeMap::new();
        for key in catalog.keys() {
            let field = results.keys.get(&key).cloned().unwrap_or_default();
            let compared = field.counters.compared();
            counters.insert(
                key,
                FieldCounters {
                    counters: field.counters,
                    match_rate: (compared > 0).then(|| field.counters.matched as f64 / compared as f64),
                    operations: field.operations,
                    served: field.served,
                    latency: field.latency,
                    in_flight: engine.executor.in_flight(key),
                    calibrations: field.calibrations,
                    calibrations_differing: field.calibrations_differing,
                    noise: field.noise,
                },
            );
            evidence.insert(key, KeyEvidence::gather(key, &results, engine.live.contract()));
            exemplars.insert(key, field.exemplars.into_iter().rev().collect());
        }
        let report = Report::build(catalog, &table, &results, &contract.usage);
        Self {
            table,
            reload: engine.live.status(),
            declarations: Declarations {
                fields: catalog.fields().collect(),
                dependencies: catalog.dependencies(),
            },
            counters,
            evidence,
            exemplars,
            report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeX"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
    }
}
