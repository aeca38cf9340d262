//! GraphQL over WebSocket on `/graphql`: `graphql-transport-ws` (the graphql-ws library's
//! protocol, which Banyan runs itself in [`transport`]) and the older `graphql-ws`
//! (subscriptions-transport-ws, served by async-graphql in [`legacy`]).
//!
//! Before the upgrade, the `Origin` is checked (a browser sends the session cookie with the
//! upgrade, so a foreign page must not open a socket in the user's name: cross-site WebSocket
//! hijacking): no `Origin` (not a browser) or the gateway's own origin is allowed, and otherwise
//! only `cors.allowed_origins` and `websocket.allowed_origins`; anything else is 403.
//!
//! The caller is identified once per connection, by the same [`Authenticator::identify`] as HTTP:
//! from the `connection_init` payload (`{"Authorization": "Token <key>"}`), or else from the
//! upgrade request's header or session cookie. How a connection ends is one table,
//! [`close::Close`]. Each operation (not the connection) gets its own [`RequestScope`]: its
//! loaders, one snapshot of the routing table and its own request id (`<connection's>:<n>`), so a
//! table reload never splits an operation and a long-lived connection follows reloads. The routing
//! headers (`x-banyan-route`, `x-banyan-show-routing`) are read from the `connection_init` payload
//! (as browsers cannot set WebSocket headers) or else the upgrade request, and apply to every
//! operation of the connection; `extensions.routing` rides on each `next` payload.
//!
//! [`Authenticator::identify`]: crate::auth::Authenticator::identify
//! [`RequestScope`]: banyan_resolvers::RequestScope

pub(crate) mod close;
mod legacy;
mod shared;
mod transport;

pub(crate) use shared::SharedSubscriptions;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::http::WebSocketProtocols;
use async_graphql_axum::GraphQLProtocol;
use axum::extract::ConnectInfo;
use axum::extract::WebSocketUpgrade;
use axum::response::{IntoResponse, Response};
use banyan_resolvers::{RequestScope, ServedLog};
use banyan_sources::domain::UserId;
use banyan_sources::loaders::BatchScheduler;
use banyan_sources::{Caller, Credential};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AuthError, AuthRefusal, parse_authorization};
use crate::config::WebSocketConfig;
use crate::migration::{self, RoutingAsk, RoutingAskError};
use crate::pipeline::Graphql;
use crate::rate_limit::{RateKey, RateLimited};

/// What WebSocket connections share across the process: their settings and how many
/// connections each caller holds.
#[derive(Clone)]
pub(crate) struct WebSockets {
    /// `[websocket]`.
    pub(crate) config: Arc<WebSocketConfig>,
    /// Origins other than the gateway's own that may open a socket: `cors.allowed_origins` and
    /// `websocket.allowed_origins`.
    allowed_origins: Arc<[String]>,
    /// Initialised connections per caller.
    open: Arc<Mutex<HashMap<CallerKey, usize>>>,
}

impl WebSockets {
    pub(crate) fn new(config: &WebSocketConfig, cors_origins: &[String]) -> Self {
        let allowed_origins = cors_origins.iter().chain(&config.allowed_origins).cloned().collect();
        Self { config: Arc::new(config.clone()), allowed_origins, open: Arc::default() }
    }

    /// Initialised connections open now, every caller's together (a `/metrics` gauge).
    pub(crate) fn open_connections(&self) -> usize {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().sum()
    }

    /// Counts one more connection for `caller`, unless it already holds the most it may.
    fn admit(&self, caller: CallerKey) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = open.entry(caller.clone()).or_default();
        if *held >= self.config.max_connections_per_caller {
            return None;
        }
        *held += 1;
        Some(ConnectionSlot { open: self.open.clone(), caller })
    }
}

/// Whom a connection counts against: its user, or its IP address when anonymous.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CallerKey {
    User(UserId),
    Address(IpAddr),
    /// Anonymous with no known address (a router served without connection info).
    Unknown,
}

/// One connection counted against its caller; dropping it (the connection ending) frees it.
struct ConnectionSlot {
    open: Arc<Mutex<HashMap<CallerKey, usize>>>,
    caller: CallerKey,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = open.get_mut(&self.caller) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// Checks the upgrade's `Origin`, then upgrades and serves the subprotocol the client asked for
/// (the first one it lists that Banyan speaks, as `protocol` was extracted; none is 400).
pub(crate) fn upgrade(
    app: AppState,
    upgrade: WebSocketUpgrade,
    protocol: GraphQLProtocol,
    parts: &Parts,
) -> Response {
    let headers = &parts.headers;
    if !origin_allowed(headers, &app.websockets.allowed_origins) {
        tracing::debug!(origin = ?headers.get(header::ORIGIN), "WebSocket upgrade from a foreign origin refused");
        let body = json!({ "errors": [{
            "message": "WebSocket connections from this origin are not allowed",
            "extensions": { "code": "FORBIDDEN_ORIGIN" },
        }] });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let Some(chosen) = requested_protocol(headers) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let connection = Upgrade {
        credential: app.auth.credential(headers),
        request_id: crate::auth::request_id(headers),
        headers: Arc::new(owned_headers(headers)),
        // The client's address as rate limiting sees it (`X-Forwarded-For` behind a trusted proxy).
        peer: Some(
            app.rate_limit
                .client_ip(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0), headers),
        ),
    };
    // A message is bounded like a POST body (axum's default is 64 MiB). graphql-transport-ws
    // checks the bound itself, so it can close with 1009 and a reason; the socket's own limit
    // (twice that) only stops what is far over it from being buffered at all.
    let max = app.max_message_bytes;
    // Every open connection keeps its read buffer (tungstenite's default is 128 KiB, most of
    // what an idle subscriber cost): `websocket.read_buffer_size`, see BENCHMARKS.md.
    let buffers = &app.websockets.config;
    let upgrade = upgrade
        .protocols([chosen.sec_websocket_protocol()])
        .read_buffer_size(buffers.read_buffer_size)
        .write_buffer_size(buffers.write_buffer_size);
    // Counted while open, and dropped if a shutdown's grace period ends first.
    let lifecycle = app.lifecycle.clone();
    let open = lifecycle.websocket_upgrade();
    match chosen {
        WebSocketProtocols::GraphQLWS => {
            let ceiling = max.saturating_mul(2);
            upgrade.max_message_size(ceiling).max_frame_size(ceiling).on_upgrade(move |socket| async move {
                lifecycle.websocket(open, Box::pin(transport::serve(app, socket, connection))).await;
            })
        }
        WebSocketProtocols::SubscriptionsTransportWS => {
            upgrade.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| async move {
                lifecycle.websocket(open, Box::pin(legacy::serve(app, socket, protocol, connection))).await;
            })
        }
    }
}

/// A copy of the upgrade request's headers that shares no memory with it. hyper parses header
/// values as slices of the connection's read buffer (16 KiB or more), so a plain clone kept for
/// the connection's life would keep that whole buffer alive for every open WebSocket.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // `from_bytes` copies; it accepts every byte a parsed value can hold.
        let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) else { continue };
        copy.set_sensitive(value.is_sensitive());
        owned.append(name.clone(), copy);
    }
    owned
}

/// The first subprotocol in `Sec-WebSocket-Protocol` that Banyan speaks, as async-graphql picks.
fn requested_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|protocol| WebSocketProtocols::from_str(protocol.trim()).ok())
}

/// No `Origin` (not a browser), the gateway's own origin (its host equals `Host`), or a listed
/// origin (exact, case-insensitive).
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.trim();
    if allowed.iter().any(|listed| listed.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host))
}

/// What the upgrade request brought.
struct Upgrade {
    credential: Result<Option<Credential>, AuthError>,
    request_id: Option<String>,
    /// Shared with the connection's [`RoutingHeaders`]: an open connection holds one copy.
    headers: Arc<HeaderMap>,
    /// The client's address (the peer's, or behind `rate_limit.trusted_proxies` the forwarded
    /// one), which anonymous connections count against.
    peer: Option<IpAddr>,
}

/// Identifies the caller of a `connection_init` (its payload's credential, else the upgrade's),
/// and reads its routing headers; a refusal says how to close.
async fn identify_connection(
    app: &AppState,
    payload: Value,
    upgrade: &Upgrade,
) -> Result<Option<ConnectionIdentity>, AuthRefusal> {
    let credential = match payload_credential(&payload) {
        Some(Ok(key)) => Ok(Some(Credential::Token(key))),
        Some(Err(error)) => Err(error),
        None => upgrade.credential.clone(),
    };
    let caller = app
        .auth
        .identify(credential, upgrade.request_id.clone())
        .await
        .map_err(|error| error.refusal())?
        .map(|caller| app.auth.with_forwarded_headers(caller, &upgrade.headers));
    let headers = RoutingHeaders { payload, upgrade: Arc::clone(&upgrade.headers) };
    let ask = app
        .routing_policy
        .ask(app.engine.catalog(), |name| headers.get(name))
        .map_err(|error| routing_refusal(&error))?;
    Ok(caller.map(|caller| {
        let request_id =
            upgrade.request_id.clone().unwrap_or_else(|| crate::graphql_http::uuid_like(&caller));
        ConnectionIdentity { caller, ask, headers, request_id, operations: AtomicU64::new(0) }
    }))
}

/// How a refused routing header closes the connection.
fn routing_refusal(error: &RoutingAskError) -> AuthRefusal {
    let (status, code) = error.status_and_code();
    let message = match error {
        RoutingAskError::OverrideNotAllowed => "the x-banyan-route header is not allowed here",
        RoutingAskError::BadOverride(_) => "the x-banyan-route header does not parse",
    };
    AuthRefusal { status, close_code: crate::auth::CLOSE_FORBIDDEN, code, message }
}

/// Spends one request of the caller's rate limit (the user's bucket, else the address's): the
/// WebSocket side of `crate::rate_limit`, for `connection_init` and each operation.
async fn spend_rate_limit(
    app: &AppState,
    caller: Option<&Caller>,
    upgrade: &Upgrade,
) -> Result<(), RateLimited> {
    let Some(address) = upgrade.peer else { return Ok(()) };
    app.rate_limit.check(&RateKey::for_caller(caller, address)).await
}

/// What `connection_init` settled for every operation of the connection.
struct ConnectionIdentity {
    caller: Caller,
    ask: RoutingAsk,
    headers: RoutingHeaders,
    /// The upgrade request's id; operation `n` is `<id>:<n>`.
    request_id: String,
    operations: AtomicU64,
}

impl ConnectionIdentity {
    /// `request` with a [`RequestScope`] of its own, and how to run it (see [`OperationScope`]).
    fn scope(&self, app: &AppState, request: async_graphql::Request) -> OperationScope {
        let n = self.operations.fetch_add(1, Ordering::Relaxed);
        let (routing, log) = migration::request_routing(
            &app.engine,
            &self.caller,
            format!("{}:{n}", self.request_id),
            self.ask.clone(),
            |name| self.headers.get(name),
        );
        let scope = RequestScope::new(&app.sources, self.caller.clone(), routing);
        let scheduler = scope.batch_scheduler();
        OperationScope { request: request.data(scope), scheduler, served: log }
    }
}

/// A WebSocket operation's request with its scope, and what runs it.
struct OperationScope {
    request: async_graphql::Request,
    /// Drives the operation's execution (`BatchScheduler::drive_stream`), so its loaders batch
    /// level by level.
    scheduler: BatchScheduler,
    /// Which backend served each migrated field, when the caller may see it.
    served: Option<ServedLog>,
}

impl OperationScope {
    /// `request` run by no one in particular (no signed-in caller: no scope, no loaders).
    fn bare(request: async_graphql::Request) -> Self {
        Self { request, scheduler: BatchScheduler::new(), served: None }
    }

    /// Executes the operation on `graphql`, its loaders dispatching level by level while its
    /// scheduler drives it: its answers, and who served them.
    fn execute(
        self,
        graphql: &Graphql,
        session_data: Option<Arc<async_graphql::Data>>,
    ) -> (BoxStream<'static, async_graphql::Response>, Option<ServedLog>) {
        let stream = self.scheduler.drive_stream(graphql.execute_stream(self.request, session_data));
        (stream.boxed(), self.served)
    }
}

/// Adds `extensions.routing` to a response, when the caller may see it and a field was routed.
fn with_routing(mut response: async_graphql::Response, log: Option<&ServedLog>) -> async_graphql::Response {
    if let Some(log) = log.filter(|log| !log.is_empty()) {
        response.extensions.insert("routing".to_owned(), migration::routing_extension(log));
    }
    response
}

/// Routing headers of a connection: the `connection_init` payload's (top level or under
/// `headers`, any case), else the upgrade request's.
struct RoutingHeaders {
    payload: Value,
    upgrade: Arc<HeaderMap>,
}

impl RoutingHeaders {
    fn get(&self, name: &str) -> Option<&str> {
        fn find<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
            object
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| value.as_str())
        }
        let from_payload = self.payload.as_object().and_then(|object| {
            find(object, name).or_else(|| {
                object.get("headers").and_then(Value::as_object).and_then(|nested| find(nested, name))
            })
        });
        from_payload.or_else(|| self.upgrade.get(name).and_then(|value| value.to_str().ok()))
    }
}

/// The credential in a `connection_init` payload, under `Authorization` (any case) or
/// `headers.Authorization`, as some clients nest it.
fn payload_credential(payload: &Value) -> Option<Result<String, AuthError>> {
    let find = |object: &serde_json::Map<String, Value>| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| value.as_str().map(str::to_owned))
    };
    let object = payload.as_object()?;
    let value = find(object).or_else(|| object.get("headers").and_then(Value::as_object).and_then(find))?;
    Some(parse_authorization(&value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Values parsed as hyper parses them (slices of one read buffer) are copied out: nothing the
    /// connection keeps points into that buffer, so it can be freed after the upgrade.
    #[test]
    fn kept_headers_share_no_memory_with_the_read_buffer() {
        let buffer = axum::body::Bytes::from(b"Token secret-token-valuerequest-42".to_vec());
        let slice = |range: std::ops::Range<usize>| {
            HeaderValue::from_maybe_shared(buffer.slice(range)).expect("a valid header value")
        };
        let mut parsed = HeaderMap::new();
        let mut authorization = slice(0..24);
        authorization.set_sensitive(true);
        parsed.insert(header::AUTHORIZATION, authorization);
        parsed.append("x-request-id", slice(24..34));
        parsed.append("x-request-id", slice(26..34));
        let inside = |value: &HeaderValue| buffer.as_ptr_range().contains(&value.as_bytes().as_ptr());
        // The premise: a clone still points into the buffer.
        assert!(parsed.values().all(inside));
        let kept = owned_headers(&parsed);
        assert_eq!(kept, parsed, "the same names and values, in order, repeated names too");
        assert!(!kept.values().any(inside), "a kept value still points into the read buffer");
        assert!(kept[header::AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn credential_from_payload() {
        let key = |payload: Value| payload_credential(&payload).map(|r| r.ok());
        assert_eq!(key(json!({"Authorization": "Token k"})), Some(Some("k".to_owned())));
        assert_eq!(key(json!({"headers": {"authorization": "Bearer k"}})), Some(Some("k".to_owned())));
        assert_eq!(key(json!({"Authorization": "k"})), Some(None));
        assert_eq!(key(json!({})), None);
        assert_eq!(key(Value::Null), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (header::HeaderName::from_static(name), value.parse().expect("a value")))
            .collect()
    }

    #[test]
    fn origins() {
        let allowed = ["https://app.example.com".to_owned()];
        assert!(origin_allowed(&headers(&[("host", "gw:4000")]), &allowed), "no Origin: not a browser");
        assert!(origin_allowed(&headers(&[("host", "gw:4000"), ("origin", "http://gw:4000")]), &allowed));
        assert!(origin_allowed(&headers(&[("host", "gw"), ("origin", "https://APP.example.com")]), &allowed));
        assert!(!origin_allowed(
            &headers(&[("host", "gw:4000"), ("origin", "https://evil.example")]),
            &allowed
        ));
        assert!(!origin_allowed(&headers(&[("host", "gw:4000"), ("origin", "http://gw:4001")]), &allowed));
        assert!(!origin_allowed(&headers(&[("host", "gw:4000"), ("origin", "null")]), &allowed));
        assert!(!origin_allowed(&headers(&[("origin", "http://gw:4000")]), &allowed), "no Host to match");
    }

    #[test]
    fn connections_per_caller_are_counted_and_freed() {
        let config = WebSocketConfig { max_connections_per_caller: 2, ..WebSocketConfig::default() };
        let sockets = WebSockets::new(&config, &[]);
        let user = CallerKey::User(UserId(1));
        let first = sockets.admit(user.clone()).expect("one");
        let _second = sockets.admit(user.clone()).expect("two");
        assert!(sockets.admit(user.clone()).is_none(), "a third is over the cap");
        assert!(sockets.admit(CallerKey::User(UserId(2))).is_some(), "another user has its own count");
        drop(first);
        assert!(sockets.admit(user).is_some(), "a closed connection frees its slot");
    }
}
