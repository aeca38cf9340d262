//! GraphQL over HTTP, per the GraphQL-over-HTTP specification: `POST /graphql` with a JSON body,
//! `GET /graphql?query=` for queries only, `application/graphql-response+json` and
//! `application/json` responses with their status codes. GraphiQL and WebSocket upgrades share
//! the GET route and are handed off here.
//!
//! One request reads top to bottom: negotiate the response type, the caller's rate limit by
//! address, read the parameters, resolve a persisted operation (APQ, trusted documents), identify
//! the caller (and its rate limit by user), execute, render.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Name, Variables};
use async_graphql_axum::GraphQLProtocol;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use banyan_resolvers::{RequestScope, ServedLog};
use banyan_sources::{Caller, Credential};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::auth::AuthError;
use crate::config::LimitsConfig;
use crate::csrf::CSRF_PREVENTED;
use crate::error_masking::RequestId;
use crate::introspection::admin_grant;
use crate::migration;
use crate::persisted::{self, PersistedError, PersistedQuery, Resolved};
use crate::rate_limit::{RATE_LIMITED, RateLimited};

/// `application/graphql-response+json`, the spec's own response type.
pub(crate) const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";
/// `application/json`, for legacy clients.
pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// The response media type agreed with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    /// `application/graphql-response+json`: request errors get 4xx statuses.
    GraphqlResponse,
    /// `application/json`: every GraphQL response is 200.
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponse => GRAPHQL_RESPONSE_JSON,
            Self::Json => JSON,
        }
    }
}

/// An HTTP request refused before GraphQL sees it: malformed (400 whatever the media type, as
/// the spec asks for bodies that are not JSON or parameters of the wrong shape), or refused by a
/// rule of HTTP (401, 403 for the CSRF rule, 405, 406, 413, 415), or by a failed identity check
/// (502, 503, 504).
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Headers the refusal carries (`Retry-After`, `Cache-Control`); a list, as a `HeaderMap`
    /// would make every `Result<_, Refusal>` large.
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Set where the refusal stands for a failure the client may report (a backend down).
    request_id: Option<String>,
}

impl Refusal {
    fn malformed(message: impl Into<String>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    fn status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), headers: Vec::new(), request_id: None }
    }

    fn with_request_id(self, headers: &HeaderMap) -> Self {
        Self { request_id: crate::auth::request_id(headers), ..self }
    }

    fn render(self, media: Media) -> Response {
        let status = self.status;
        let mut extensions = json!({ "code": self.code });
        if let Some(id) = self.request_id {
            extensions["requestId"] = id.into();
        }
        let body = json!({ "errors": [{ "message": self.message, "extensions": extensions }] });
        let mut response = json_response(status, media, &body);
        response.headers_mut().extend(self.headers);
        match status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        response
    }
}

/// The parameters of a GraphQL request, from a POST body or a GET query string.
#[derive(Debug, Default)]
pub(crate) struct GraphqlParams {
    query: String,
    operation_name: Option<String>,
    variables: Map<String, Value>,
    extensions: Map<String, Value>,
    /// The GraphQL-over-HTTP persisted-documents proposal's `documentId`.
    document_id: Option<String>,
    /// What the persisted-operation rules decided (set by [`resolve_persisted`]).
    resolved: Option<Resolved>,
}

/// `POST /graphql`.
pub(crate) async fn post(State(app): State<AppState>, mut request: Request) -> Response {
    // The headers and the peer are taken out of the request, not copied by extractors; the
    // extensions stay, for the body's limit.
    let headers = std::mem::take(request.headers_mut());
    let peer = peer(request.extensions());
    let body = Bytes::from_request(request, &app).await;
    let media = match negotiate(&headers) {
        Ok(media) => media,
        Err(refusal) => return refusal.render(Media::Json),
    };
    if let Err(refusal) = check_csrf(&app, &headers) {
        return refusal.render(media);
    }
    let client_ip = app.rate_limit.client_ip(peer, &headers);
    if let Err(refusal) = limit_before_identity(&app, &headers, client_ip).await {
        return refusal.render(media);
    }
    let params = match check_content_type(&headers)
        .and_then(|()| read_body(body))
        .and_then(|b| params_from_body(&b))
    {
        Ok(params) => params,
        Err(refusal) => return refusal.render(media),
    };
    let params = match resolve_persisted(&app, params).await {
        Ok(params) => params,
        Err(refusal) => return refusal.render(media),
    };
    execute(&app, media, &headers, client_ip, params, false).await
}

/// `GET /graphql`: a WebSocket upgrade, GraphiQL for a browser, or a query in the URL.
pub(crate) async fn get(State(app): State<AppState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    if is_websocket_upgrade(&parts.headers) {
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
            // A subscribe message is bounded like a POST body (axum's default is 64 MiB).
            Ok(upgrade) => {
                upgrade.max_message_size(app.max_message_bytes).max_frame_size(app.max_message_bytes)
            }
            Err(rejection) => return rejection.into_response(),
        };
        return match GraphQLProtocol::from_request_parts(&mut parts, &app).await {
            Ok(protocol) => crate::ws::upgrade(app, upgrade, protocol, &parts),
            Err(rejection) => rejection.into_response(),
        };
    }
    let raw_query = parts.uri.query().unwrap_or_default();
    if let Some(page) = &app.graphiql
        && wants_html(&parts.headers)
        && !raw_query.contains("query=")
    {
        return crate::graphiql::page_response(page);
    }
    let media = match negotiate(&parts.headers) {
        Ok(media) => media,
        Err(refusal) => return refusal.render(Media::Json),
    };
    if let Err(refusal) = check_csrf(&app, &parts.headers) {
        return refusal.render(media);
    }
    let client_ip = app.rate_limit.client_ip(peer(&parts.extensions), &parts.headers);
    if let Err(refusal) = limit_before_identity(&app, &parts.headers, client_ip).await {
        return refusal.render(media);
    }
    let params = match params_from_url(raw_query) {
        Ok(params) => params,
        Err(refusal) => return refusal.render(media),
    };
    // Resolved first, so a query sent by id is checked for its operation type too.
    let params =
        match resolve_persisted(&app, params).await.and_then(|params| only_queries(params, &app.limits)) {
            Ok(params) => params,
            Err(refusal) => return refusal.render(media),
        };
    // A query sent by id over GET may be cached by a CDN, as `persisted.get_max_age` says.
    let cacheable = params.resolved.as_ref().is_some_and(|resolved| resolved.by_id);
    execute(&app, media, &parts.headers, client_ip, params, cacheable).await
}

/// The peer's address, when the server was started with connect info.
fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr)
}

/// The rate limit by address, before anything costs more (`crate::rate_limit`, step 1).
async fn limit_before_identity(
    app: &AppState,
    headers: &HeaderMap,
    client_ip: IpAddr,
) -> Result<(), Refusal> {
    if !app.rate_limit.is_enabled() {
        return Ok(());
    }
    let has_credential = !matches!(app.auth.credential(headers), Ok(None));
    app.rate_limit.before_identity(client_ip, has_credential).await.map_err(rate_limited)
}

/// 429 with `Retry-After` and code `RATE_LIMITED`.
fn rate_limited(limited: RateLimited) -> Refusal {
    let mut refusal = Refusal::status(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED, RateLimited::MESSAGE);
    refusal.headers.push((header::RETRY_AFTER, HeaderValue::from(limited.retry_after_secs())));
    refusal
}

/// The persisted-operation rules (`crate::persisted`), before the caller is identified, so a
/// refused document costs no backend call. The query sent by id is filled in.
async fn resolve_persisted(app: &AppState, mut params: GraphqlParams) -> Result<GraphqlParams, Refusal> {
    let extension = params.extensions.remove(persisted::EXTENSION_KEY).filter(|value| !value.is_null());
    let reference = match (extension, params.document_id.take()) {
        (None, None) => None,
        (Some(value), None) => Some(PersistedQuery::from_json(&value)),
        (None, Some(id)) => Some(Ok(PersistedQuery::from_document_id(&id))),
        (Some(_), Some(_)) => Some(Err(PersistedError::Malformed)),
    }
    .transpose()
    .map_err(persisted_refusal)?;
    let resolved = app
        .persisted
        .resolve(&params.query, params.operation_name.as_deref(), reference)
        .await
        .map_err(persisted_refusal)?;
    if let Some(text) = &resolved.query {
        params.query = text.to_string();
    }
    params.resolved = Some(resolved);
    Ok(params)
}

fn persisted_refusal(error: PersistedError) -> Refusal {
    let mut refusal = Refusal::status(error.status(), error.code(), error.to_string());
    if let Some(value) = error.cache_control() {
        refusal.headers.push((header::CACHE_CONTROL, value));
    }
    refusal
}

async fn execute(
    app: &AppState,
    media: Media,
    headers: &HeaderMap,
    client_ip: IpAddr,
    params: GraphqlParams,
    cacheable: bool,
) -> Response {
    // The operation's span (tracing on), from before the caller's check to the answer.
    let operation = app.telemetry.operation(headers);
    // Boxed: identifying can wait on the credential cache and the rate limiter, whose futures
    // are large (about 25 KiB); inline, every request waiting for its turn below would keep
    // that much in its handler's future.
    let caller = match Box::pin(identify(app, headers, client_ip)).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal.with_request_id(headers).render(media),
    };
    let caller = match &operation {
        Some(operation) => caller.map(|caller| Caller { trace: operation.trace_context(), ..caller }),
        None => caller,
    };
    let signed_in = caller.is_some();
    let mut request = async_graphql::Request::new(params.query)
        .variables(Variables::from_json(Value::Object(params.variables)));
    if let Some(id) = crate::auth::request_id(headers) {
        request = request.data(RequestId(id));
    }
    if let Some(grant) = admin_grant(headers, &app.admin_access) {
        request = request.data(grant);
    }
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    request.extensions = async_graphql::Extensions(
        params
            .extensions
            .into_iter()
            .filter_map(|(key, value)| Some((key, async_graphql::Value::from_json(value).ok()?)))
            .collect::<HashMap<_, _>>(),
    );
    if let Some(resolved) = params.resolved {
        // The extension then neither resolves nor logs this request again.
        request = request.data(resolved);
    }
    if let Some(operation) = &operation {
        request = request.data(operation.request_data());
    }
    let mut served = None;
    let mut batches = None;
    if let Some(caller) = caller {
        let (scope, log) = match request_scope(app, headers, caller) {
            Ok(scoped) => scoped,
            Err(refusal) => return refusal.render(media),
        };
        served = log;
        batches = Some(scope.batch_scheduler());
        request = request.data(scope);
    }
    // Its turn to execute: a burst queues here instead of building every response at once. A
    // wait as long as the request's whole deadline is the server being too busy for it.
    let Ok(Ok(_turn)) =
        tokio::time::timeout(app.request_deadline, app.executions.clone().acquire_owned()).await
    else {
        return crate::edge::busy(
            crate::auth::request_id(headers).as_deref(),
            "server.max_concurrent_executions",
        );
    };
    // Boxed, and built only now: a request waiting for its turn above holds none of the
    // execution's state (its future is several KiB).
    let mut response = Box::pin(run(app, request, batches)).await;
    if let Some(operation) = operation {
        operation.finish(&response);
    }
    if let Some(log) = served.filter(|log| !log.is_empty()) {
        response.extensions.insert("routing".to_owned(), migration::routing_extension(&log));
    }
    let cache_control = cacheable.then(|| app.persisted.get_cache_control(&response, signed_in)).flatten();
    let mut http_response = render(media, response);
    if let Some(value) = cache_control {
        http_response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    http_response
}

/// Executes `request`; its loaders dispatch level by level while its scheduler drives the
/// execution.
async fn run(
    app: &AppState,
    request: async_graphql::Request,
    batches: Option<banyan_sources::loaders::BatchScheduler>,
) -> async_graphql::Response {
    match batches {
        Some(scheduler) => scheduler.drive(app.graphql.execute_to_render(request)).await,
        None => app.graphql.execute_to_render(request).await,
    }
}

/// The CSRF rule (see `csrf`), before the caller is identified, so a forged request costs no
/// backend call.
fn check_csrf(app: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let rides_session = matches!(app.auth.credential(headers), Ok(Some(Credential::Session(_))));
    if app.csrf.allows(headers, rides_session) {
        return Ok(());
    }
    tracing::debug!(
        request_id = crate::auth::request_id(headers).as_deref().unwrap_or("-"),
        "CSRF rule refused a request"
    );
    Err(Refusal::status(StatusCode::FORBIDDEN, CSRF_PREVENTED, app.csrf.message()))
}

/// The caller; `None` for an anonymous request (which may still ask for `__typename` and
/// introspection; data fields answer `UNAUTHENTICATED`). Then the caller's rate limit
/// (`crate::rate_limit`, step 2).
async fn identify(app: &AppState, headers: &HeaderMap, client_ip: IpAddr) -> Result<Option<Caller>, Refusal> {
    let credential = app.auth.credential(headers);
    let identity = app.auth.identify(credential, crate::auth::request_id(headers)).await;
    app.rate_limit.after_identity(client_ip, &identity).await.map_err(rate_limited)?;
    let caller = identity.map_err(auth_refusal)?;
    Ok(caller.map(|caller| app.auth.with_forwarded_headers(caller, headers)))
}

/// The request's scope: its loaders, and the routing of its migrated fields from one snapshot
/// of the table, with the override and show-routing headers applied as the configuration allows.
fn request_scope(
    app: &AppState,
    headers: &HeaderMap,
    caller: Caller,
) -> Result<(RequestScope, Option<ServedLog>), Refusal> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let ask = app.routing_policy.ask(app.engine.catalog(), header).map_err(|error| {
        let (status, code) = error.status_and_code();
        Refusal::status(status, code, error.to_string())
    })?;
    // The request-id layer gives every request an id; a caller without one was built elsewhere.
    let request_id = caller.request_id.clone().unwrap_or_else(|| uuid_like(&caller));
    let (routing, log) = migration::request_routing(&app.engine, &caller, request_id, ask, header);
    let scope = RequestScope::new(&app.sources, caller, routing);
    scope.caller.budget.set_deadline(tokio::time::Instant::now() + app.request_deadline);
    Ok((scope, log))
}

/// A request id for a request that came without one: unique within the process.
pub(crate) fn uuid_like(caller: &Caller) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", caller.user_id, std::process::id())
}

/// The status, code and safe message of a failed identity check (the same table as the
/// WebSocket's close codes); the detail was logged by `identify`.
fn auth_refusal(error: AuthError) -> Refusal {
    let refusal = error.refusal();
    Refusal::status(refusal.status, refusal.code, refusal.message)
}

fn render(media: Media, response: async_graphql::Response) -> Response {
    // A request error (parse, validation, limits, unknown operation) has no data and no error
    // with a path; field errors always carry one.
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = match (request_error, media) {
        (true, Media::GraphqlResponse) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    // Straight to bytes: async-graphql's objects keep the order of the selection set, which a
    // detour through `serde_json::Value` (a sorted map) would lose. The buffer starts at the
    // size of the last body: a page's body (about 15 KiB) is then written without growing its
    // buffer from serde_json's 128 bytes, eight times over.
    let mut bytes = Vec::with_capacity(LAST_BODY_SIZE.load(Ordering::Relaxed).clamp(128, MAX_BODY_SIZE_HINT));
    let outcome = write_body(&mut bytes, &response, !request_error);
    // Stored only when it changes: a page sent again and again keeps its size, and a store on
    // every response would bounce the counter's cache line between the cores.
    if LAST_BODY_SIZE.load(Ordering::Relaxed) != bytes.len() {
        LAST_BODY_SIZE.store(bytes.len(), Ordering::Relaxed);
    }
    let mut http_response = match outcome {
        Ok(()) => bytes_response(status, media, bytes),
        Err(e) => {
            tracing::error!(error = %e, "serializing a response");
            Refusal::status(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal error")
                .render(media)
        }
    };
    http_response.headers_mut().extend(response.http_headers);
    http_response
}

/// Writes `response` as a GraphQL response body: `errors` first when there are any, as the
/// specification suggests, then `data` (when `with_data`: a request error has none), then
/// `extensions` when there are any. The data may hold objects written as they resolved
/// ([`banyan_resolvers::write_data`]), which only this transport marks its requests for.
fn write_body(
    out: &mut Vec<u8>,
    response: &async_graphql::Response,
    with_data: bool,
) -> serde_json::Result<()> {
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, name: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(name);
    };
    if !response.errors.is_empty() {
        member(out, b"\"errors\":");
        serde_json::to_writer(&mut *out, &response.errors)?;
    }
    if with_data {
        member(out, b"\"data\":");
        banyan_resolvers::write_data(out, &response.data)?;
    }
    if !response.extensions.is_empty() {
        member(out, b"\"extensions\":");
        serde_json::to_writer(&mut *out, &response.extensions)?;
    }
    out.push(b'}');
    Ok(())
}

fn json_response(status: StatusCode, media: Media, body: &Value) -> Response {
    bytes_response(status, media, serde_json::to_vec(body).unwrap_or_default())
}

/// The size of the last response body rendered (see [`render`]).
static LAST_BODY_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The largest buffer a body starts with, whatever the last one's size: one large answer must
/// not make every small one that follows reserve as much.
const MAX_BODY_SIZE_HINT: usize = 64 * 1024;

fn bytes_response(status: StatusCode, media: Media, bytes: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type()))], bytes).into_response()
}

/// Picks the response type from `Accept`: the spec's type when the client takes it at least as
/// gladly as JSON, JSON for wildcards or no header, 406 when neither is acceptable.
pub(crate) fn negotiate(headers: &HeaderMap) -> Result<Media, Refusal> {
    // Read in place, with no copy of the header or of a range: every request passes here.
    let ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let mut any = false;
    let mut best: Option<(f32, u8, Media)> = None; // (q, explicitness, media)
    for item in ranges {
        any = true;
        let mut pieces = item.split(';').map(str::trim);
        let range = pieces.next().unwrap_or_default();
        let q =
            pieces.filter_map(|p| p.strip_prefix("q=")).find_map(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let is = |media: &str| range.eq_ignore_ascii_case(media);
        let candidate = if is("application/graphql-response+json") {
            (q, 2, Media::GraphqlResponse)
        } else if is("application/json") {
            (q, 1, Media::Json)
        } else if is("application/*") || range == "*/*" {
            (q, 0, Media::Json)
        } else {
            continue;
        };
        if best.is_none_or(|(bq, bx, _)| (candidate.0, candidate.1) > (bq, bx)) {
            best = Some(candidate);
        }
    }
    if !any {
        return Ok(Media::Json);
    }
    best.map(|(_, _, media)| media).ok_or_else(|| {
        Refusal::status(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            "accept application/graphql-response+json or application/json",
        )
    })
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let unsupported = |message: &str| {
        Refusal::status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", message)
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("send the request as Content-Type: application/json"));
    };
    let value = value.to_str().map_err(|_| unsupported("the Content-Type header is not text"))?;
    let mut pieces = value.split(';').map(str::trim);
    if !pieces.next().unwrap_or_default().eq_ignore_ascii_case("application/json") {
        return Err(unsupported("send the request as Content-Type: application/json"));
    }
    for param in pieces {
        if let Some((name, charset)) = param.split_once('=') {
            let charset = charset.trim_matches('"');
            if name.trim().eq_ignore_ascii_case("charset") && !charset.eq_ignore_ascii_case("utf-8") {
                return Err(unsupported("the request body must be UTF-8"));
            }
        }
    }
    Ok(())
}

fn read_body(body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::status(status, "PAYLOAD_TOO_LARGE", "the request body is too large")
        } else {
            Refusal::status(status, "BAD_REQUEST", rejection.body_text())
        }
    })
}

fn params_from_body(body: &[u8]) -> Result<GraphqlParams, Refusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::malformed(format!("the body is not valid JSON: {e}")))?;
    let mut object = match value {
        Value::Object(object) => object,
        // Batching (a JSON array of requests) is off: one request is one operation, so the
        // limits and the budget of backend calls bound what one HTTP request can cost.
        Value::Array(_) => {
            return Err(Refusal::status(
                StatusCode::BAD_REQUEST,
                "BATCH_NOT_SUPPORTED",
                "batched requests (a JSON array) are not supported; send one operation per request",
            ));
        }
        _ => return Err(Refusal::malformed("the body must be a JSON object")),
    };
    let query = match object.remove("query") {
        Some(Value::String(query)) => Some(query),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Refusal::malformed("the `query` parameter must be a string")),
    };
    let document_id = match object.remove("documentId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => return Err(Refusal::malformed("the `documentId` parameter must be a string")),
    };
    let operation_name = match object.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name),
        Some(_) => {
            return Err(Refusal::malformed("the `operationName` parameter must be a string"));
        }
    };
    let extensions = map_param(object.remove("extensions"), "extensions")?;
    Ok(GraphqlParams {
        query: query_or_reference(query, &extensions, document_id.as_deref())?,
        operation_name,
        variables: map_param(object.remove("variables"), "variables")?,
        extensions,
        document_id,
        resolved: None,
    })
}

/// The `query` parameter; it may be left out only when a persisted operation is named instead.
fn query_or_reference(
    query: Option<String>,
    extensions: &Map<String, Value>,
    document_id: Option<&str>,
) -> Result<String, Refusal> {
    let names_persisted = document_id.is_some()
        || extensions.get(persisted::EXTENSION_KEY).is_some_and(|value| !value.is_null());
    match query {
        Some(query) => Ok(query),
        None if names_persisted => Ok(String::new()),
        None => Err(Refusal::malformed("the `query` parameter is missing")),
    }
}

fn map_param(value: Option<Value>, name: &str) -> Result<Map<String, Value>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(Refusal::malformed(format!("the `{name}` parameter must be an object"))),
    }
}

fn params_from_url(raw_query: &str) -> Result<GraphqlParams, Refusal> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query)
        .map_err(|e| Refusal::malformed(format!("the query string is malformed: {e}")))?;
    let mut params = GraphqlParams::default();
    let mut query = None;
    for (key, value) in pairs {
        match key.as_str() {
            "query" => query = Some(value),
            "operationName" => params.operation_name = Some(value).filter(|v| !v.is_empty()),
            "documentId" => params.document_id = Some(value),
            "variables" | "extensions" => {
                let parsed = serde_json::from_str(&value)
                    .map_err(|e| Refusal::malformed(format!("`{key}` is not valid JSON: {e}")))?;
                let map = map_param(Some(parsed), &key)?;
                if key == "variables" {
                    params.variables = map;
                } else {
                    params.extensions = map;
                }
            }
            _ => {}
        }
    }
    params.query = query_or_reference(query, &params.extensions, params.document_id.as_deref())?;
    Ok(params)
}

/// GET may only read: a mutation (or subscription) over GET is 405.
fn only_queries(params: GraphqlParams, limits: &LimitsConfig) -> Result<GraphqlParams, Refusal> {
    // Parsed within the same limits as execution, so no document reaches the parser unbounded;
    // one that does not parse, or breaks a limit, is left for execution to report with its code.
    let Ok(document) = crate::limits::parse_bounded(&params.query, limits) else {
        return Ok(params);
    };
    let operation_type = match (&document.operations, &params.operation_name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(&Name::new(name)).map(|op| op.node.ty),
        // A named operation alone in its document runs without `operationName`.
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    };
    match operation_type {
        Some(OperationType::Mutation | OperationType::Subscription) => Err(Refusal::status(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "only queries may be sent with GET; send mutations with POST",
        )),
        _ => Ok(params),
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// Methods other than GET and POST on `/graphql`.
pub(crate) fn method_not_allowed(method: &Method) -> Response {
    Refusal::status(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not supported on /graphql; use POST (or GET for queries)"),
    )
    .render(Media::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).expect("header"));
        headers
    }

    /// A request waiting for its execution turn holds its handler's future: that future must
    /// not carry the identity check's or the execution's state inline (they were 25 KiB, and
    /// 192 requests waiting at 256 connections held 6–7 MiB of them; BENCHMARKS.md, "A request
    /// waiting for its turn").
    #[tokio::test]
    async fn a_request_waiting_for_its_turn_holds_a_small_future() {
        let state = AppState::for_tests(|_| {});
        let headers = HeaderMap::new();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let waiting = execute(&state, Media::Json, &headers, ip, GraphqlParams::default(), false);
        let size = std::mem::size_of_val(&waiting);
        assert!(size < 4096, "the future of `execute` is {size} bytes");
        let identity = identify(&state, &headers, ip);
        let execution = run(&state, async_graphql::Request::new("{ __typename }"), None);
        // What the boxes keep out of it: the identity check's future alone is larger than the
        // whole waiting future, and the execution's is of its order.
        assert!(std::mem::size_of_val(&identity) > size, "{}", std::mem::size_of_val(&identity));
        assert!(std::mem::size_of_val(&execution) > size / 2, "{}", std::mem::size_of_val(&execution));
    }

    #[test]
    fn negotiation_follows_the_spec() {
        assert_eq!(negotiate(&HeaderMap::new()).ok(), Some(Media::Json));
        assert_eq!(negotiate(&accept("*/*")).ok(), Some(Media::Json));
        assert_eq!(negotiate(&accept("application/json")).ok(), Some(Media::Json));
        assert_eq!(
            negotiate(&accept("application/graphql-response+json, application/json;q=0.9")).ok(),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            negotiate(&accept("application/graphql-response+json;q=0.5, application/json")).ok(),
            Some(Media::Json)
        );
        assert!(negotiate(&accept("text/plain")).is_err());
        assert!(negotiate(&accept("application/json;q=0")).is_err());
        // Media types are case-insensitive (RFC 9110, 8.3.1); an empty list accepts anything.
        assert_eq!(
            negotiate(&accept("Application/GraphQL-Response+JSON, application/json;q=0.9")).ok(),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(negotiate(&accept("APPLICATION/*")).ok(), Some(Media::Json));
        assert_eq!(negotiate(&accept(" , ")).ok(), Some(Media::Json));
        assert!(negotiate(&accept("application/json;q=0, */*;q=0")).is_err());
    }

    #[test]
    fn body_parameters_are_checked() {
        let params = params_from_body(
            br#" {"query":"{a}","operationName":"A","variables":{"n":3,"s":[true,null,"x"],"o":{"f":1.5}},"other":[1]}"#,
        )
        .expect("a good body");
        assert_eq!((params.query.as_str(), params.operation_name.as_deref()), ("{a}", Some("A")));
        assert_eq!(
            Value::Object(params.variables),
            json!({ "n": 3, "s": [true, null, "x"], "o": { "f": 1.5 } })
        );
        for empty in [&br#"{"query":"{a}","variables":null,"extensions":{}}"#[..], br#"{"query":"{a}"}"#] {
            let params = params_from_body(empty).expect("a good body");
            assert!(params.variables.is_empty() && params.extensions.is_empty());
        }
        for (bad, code, message) in [
            (&br#"[]"#[..], "BATCH_NOT_SUPPORTED", "batched requests"),
            (br#" [{"query":"{a}"}]"#, "BATCH_NOT_SUPPORTED", "batched requests"),
            (br#""{a}""#, "BAD_REQUEST", "the body must be a JSON object"),
            (br#"{"query":1}"#, "BAD_REQUEST", "the `query` parameter must be a string"),
            (
                br#"{"query":"{a}","variables":"x"}"#,
                "BAD_REQUEST",
                "the `variables` parameter must be an object",
            ),
            (
                br#"{"query":"{a}","variables":[{}]}"#,
                "BAD_REQUEST",
                "the `variables` parameter must be an object",
            ),
            (
                br#"{"query":"{a}","extensions":1}"#,
                "BAD_REQUEST",
                "the `extensions` parameter must be an object",
            ),
            (br#"{"query":"{a}","operationName":0}"#, "BAD_REQUEST", "the `operationName` parameter"),
            (br#"{"query":"{a}","documentId":0}"#, "BAD_REQUEST", "the `documentId` parameter"),
            (br#"{"variables":{}}"#, "BAD_REQUEST", "the `query` parameter is missing"),
            (b"{", "BAD_REQUEST", "the body is not valid JSON"),
            (b"[", "BAD_REQUEST", "the body is not valid JSON"),
            (br#"{"query":"{a}","variables":{"n":}}"#, "BAD_REQUEST", "the body is not valid JSON"),
        ] {
            let refusal = params_from_body(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(bad));
            assert_eq!(refusal.code, code, "{}", String::from_utf8_lossy(bad));
            assert!(
                refusal.message.contains(message),
                "{}: {}",
                String::from_utf8_lossy(bad),
                refusal.message
            );
        }
    }
}
