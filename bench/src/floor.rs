//! The floor: a hand-written backend-for-frontend handler for the TemplateList page, with no
//! GraphQL at all. It makes the calls Banyan makes for that page (the caller's identity once per
//! token, then the page of templates, then the authors and the 7-day stats side by side) and
//! answers the JSON Banyan answers, so what Banyan spends beyond it is what GraphQL costs.
//!
//! Benchmark code only: it understands the TemplateList request and nothing else.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use banyan_devstack::proto::events::event_service_client::EventServiceClient;
use banyan_devstack::proto::events::{GetTemplateStatsRequest, TimeWindow};
use banyan_sources::ServiceIdentityKeys;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Where the floor's backends are.
#[derive(Debug, Clone)]
pub struct FloorConfig {
    /// The monolith's base URL.
    pub monolith_url: String,
    /// The `EventService`'s URL.
    pub events_url: String,
    /// The secrets the services verify the caller's identity with.
    pub service_identity_secrets: Vec<String>,
}

/// Why the floor could not start.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// A URL or secret is unusable.
    #[error("floor configuration: {0}")]
    Config(String),
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

struct Floor {
    http: reqwest::Client,
    events: EventServiceClient<Channel>,
    keys: ServiceIdentityKeys,
    monolith_url: String,
    /// Token to user id, asked of `/api/v1/me/` once per token (Banyan caches it too).
    identities: RwLock<HashMap<String, u64>>,
}

/// The floor's router: `POST /graphql` with TemplateList's body.
pub fn router(config: &FloorConfig) -> Result<Router, FloorError> {
    let keys = ServiceIdentityKeys::new(&config.service_identity_secrets)
        .map_err(|e| FloorError::Config(format!("service identity: {e}")))?;
    let channel = Channel::from_shared(config.events_url.clone())
        .map_err(|e| FloorError::Config(format!("events URL: {e}")))?
        .connect_lazy();
    let http =
        reqwest::Client::builder().build().map_err(|e| FloorError::Config(format!("HTTP client: {e}")))?;
    let floor = Floor {
        http,
        events: EventServiceClient::new(channel),
        keys,
        monolith_url: config.monolith_url.trim_end_matches('/').to_owned(),
        identities: RwLock::default(),
    };
    Ok(Router::new().route("/graphql", post(template_list)).with_state(Arc::new(floor)))
}

/// Serves the floor on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: &FloorConfig) -> Result<(), FloorError> {
    axum::serve(listener, router(config)?).await?;
    Ok(())
}

/// A failure, answered as a plain 502 (the harness counts it).
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn bad_gateway(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::BAD_GATEWAY, format!("{what}: {error}"))
}

#[derive(Deserialize)]
struct Body {
    variables: Variables,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Variables {
    workspace_id: String,
    first: Option<u64>,
}

#[derive(Deserialize)]
struct Page<T> {
    count: u64,
    results: Vec<T>,
}

#[derive(Deserialize)]
struct WireTemplate {
    id: u64,
    name: String,
    status: String,
    created_by: u64,
    updated_at: DateTime<Utc>,
    can_edit: bool,
}

#[derive(Deserialize)]
struct WireUser {
    id: u64,
    full_name: String,
}

#[derive(Deserialize)]
struct WireMe {
    id: u64,
}

#[derive(Serialize)]
struct Answer {
    data: Data,
}

#[derive(Serialize)]
struct Data {
    templates: Connection,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    total_count: u64,
    page_info: PageInfo,
    edges: Vec<Edge>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Serialize)]
struct Edge {
    cursor: String,
    node: Row,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    id: String,
    name: String,
    status: String,
    updated_at: String,
    viewer_can_edit: bool,
    created_by: Option<Author>,
    stats: Option<Stats>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Author {
    id: String,
    full_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    sent: u64,
    delivered: u64,
    open_rate: f64,
    click_rate: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn global_id(kind: &str, id: u64) -> String {
    STANDARD.encode(format!("{kind}:{id}"))
}

impl Floor {
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        authorization: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Failure> {
        let response = self
            .http
            .get(format!("{}{path}", self.monolith_url))
            .header(header::AUTHORIZATION, authorization)
            .query(query)
            .send()
            .await
            .map_err(|e| bad_gateway(path, e))?;
        if !response.status().is_success() {
            return Err(Failure(response.status(), format!("{path}: {}", response.status())));
        }
        response.json().await.map_err(|e| bad_gateway(path, e))
    }

    async fn user_id(&self, authorization: &str) -> Result<u64, Failure> {
        let known = self
            .identities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(authorization)
            .copied();
        if let Some(id) = known {
            return Ok(id);
        }
        let me: WireMe = self.get(authorization, "/api/v1/me/", &[]).await?;
        self.identities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(authorization.to_owned(), me.id);
        Ok(me.id)
    }
}

async fn template_list(
    State(floor): State<Arc<Floor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Failure(StatusCode::UNAUTHORIZED, "no credential".to_owned()))?;
    let body: Body =
        serde_json::from_slice(&body).map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
    let workspace = STANDARD
        .decode(&body.variables.workspace_id)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|id| id.strip_prefix("Workspace:").and_then(|n| n.parse::<u64>().ok()))
        .ok_or_else(|| Failure(StatusCode::BAD_REQUEST, "workspaceId".to_owned()))?;
    let first = body.variables.first.unwrap_or(50).clamp(1, 100);
    let user = floor.user_id(authorization).await?;

    let page: Page<WireTemplate> = floor
        .get(
            authorization,
            "/api/v1/templates/",
            &[
                ("workspace", workspace.to_string()),
                ("page", "1".to_owned()),
                ("page_size", first.to_string()),
            ],
        )
        .await?;
    let authors: HashSet<u64> = page.results.iter().map(|t| t.created_by).collect();
    let author_ids: Vec<String> = authors.iter().map(u64::to_string).collect();
    let users_query = [("id__in", author_ids.join(",")), ("page_size", "100".to_owned())];
    let users = floor.get::<Page<WireUser>>(authorization, "/api/v1/users/", &users_query);
    let now = Utc::now();
    let mut request = tonic::Request::new(GetTemplateStatsRequest {
        template_ids: page.results.iter().map(|t| t.id.to_string()).collect(),
        window: Some(TimeWindow {
            start: Some(timestamp(now - chrono::Duration::days(7))),
            end: Some(timestamp(now)),
        }),
    });
    floor.keys.sign_metadata(request.metadata_mut(), user, None);
    let mut events = floor.events.clone();
    let stats = async move { events.get_template_stats(request).await };
    let (users, stats) = tokio::join!(users, stats);
    let users: HashMap<u64, String> = users?.results.into_iter().map(|u| (u.id, u.full_name)).collect();
    let stats: HashMap<String, Stats> = stats
        .map_err(|e| bad_gateway("GetTemplateStats", e.message()))?
        .into_inner()
        .stats
        .into_iter()
        .map(|s| {
            let row = Stats {
                sent: s.sent,
                delivered: s.delivered,
                open_rate: ratio(s.opened, s.delivered),
                click_rate: ratio(s.clicked, s.delivered),
            };
            (s.template_id, row)
        })
        .collect();
    let mut stats = stats;

    let count = page.results.len() as u64;
    let edges: Vec<Edge> = page
        .results
        .into_iter()
        .enumerate()
        .map(|(offset, t)| Edge {
            cursor: STANDARD.encode(format!("offset:{offset}")),
            node: Row {
                id: global_id("Template", t.id),
                status: t.status.to_ascii_uppercase(),
                updated_at: t.updated_at.to_rfc3339(),
                viewer_can_edit: t.can_edit,
                created_by: users
                    .get(&t.created_by)
                    .map(|name| Author { id: global_id("User", t.created_by), full_name: name.clone() }),
                stats: stats.remove(&t.id.to_string()),
                name: t.name,
            },
        })
        .collect();
    let answer = Answer {
        data: Data {
            templates: Connection {
                total_count: page.count,
                page_info: PageInfo {
                    has_next_page: count < page.count,
                    end_cursor: edges.last().map(|e| e.cursor.clone()),
                },
                edges,
            },
        },
    };
    let bytes =
        serde_json::to_vec(&answer).map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
