//! The axum application: shared state, routes, and the tower stack every request passes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use banyan_migration::Engine;
use banyan_resolvers::QueryLimits;
use banyan_sources::Sources;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::admin;
use crate::auth::Authenticator;
use crate::config::LimitsConfig;
use crate::config::{AdminAccess, Config};
use crate::csrf::CsrfRule;
use crate::document_cache::DocumentCache;
use crate::edge::{self, InFlight};
use crate::error_masking::{ErrorMasking, WarningLimit};
use crate::graphql_http;
use crate::introspection::IntrospectionPolicy;
use crate::limits::{LimitWarnings, LimitsExtension};
use crate::metrics::{Metrics, OperationMetrics};
use crate::migration::RoutingPolicy;
use crate::migration_contract::ContractView;
use crate::persisted::{PersistedExtension, PersistedOperations};
use crate::pipeline::{FastSchemas, Graphql, GraphqlParts};
use crate::rate_limit::RateLimiter;
use crate::response_order::SelectionOrder;

/// What every handler shares: one `Arc` of [`AppParts`], so that the clone axum makes for each
/// extractor and middleware of each request is one reference count, not one per part (the
/// parts hold clients, caches and channels: cloning and dropping them all, several times a
/// request, cost a small query such as `Me` about a seventh of its CPU).
#[derive(Clone)]
pub(crate) struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What [`AppState`] shares.
pub(crate) struct AppParts {
    /// The executor every transport calls: the gateway's own pipeline around the schema
    /// without extensions (`crate::pipeline`).
    pub(crate) graphql: Graphql,
    /// What one document may ask for (the schema's extension applies them; GET reads them to
    /// parse safely before execution).
    pub(crate) limits: LimitsConfig,
    /// Requests served over a warn-only limit, per limit.
    pub(crate) limit_warnings: Arc<LimitWarnings>,
    pub(crate) sources: Sources,
    pub(crate) auth: Authenticator,
    /// The GraphiQL page, when enabled.
    pub(crate) graphiql: Option<crate::graphiql::GraphiqlPage>,
    /// False once shutdown begins, so load balancers stop sending traffic.
    pub(crate) ready: Arc<AtomicBool>,
    /// The backends whose open breaker turns `/readyz` to 503 (`breaker_affects_readiness`).
    pub(crate) readiness_breakers: Vec<&'static str>,
    /// Each HTTP request's own deadline (`server.request_timeout`), in its scope: fields not
    /// ready by then answer with coded errors, the rest is served.
    pub(crate) request_deadline: std::time::Duration,
    /// Turns for executing an HTTP operation (`server.max_concurrent_executions`).
    pub(crate) executions: Arc<tokio::sync::Semaphore>,
    /// Largest WebSocket message: `websocket.max_message_size`, else `server.max_body_bytes`, as
    /// a message is bounded like a request body.
    pub(crate) max_message_bytes: usize,
    /// How long a WebSocket may stay open without `connection_init`.
    pub(crate) websocket_init_timeout: std::time::Duration,
    /// The migration engine: the live routing table, the shadow executor and its results.
    pub(crate) engine: Engine,
    /// What requests may see of the routing (`extensions.routing`) and change (overrides).
    pub(crate) routing_policy: RoutingPolicy,
    /// What the frontend contract selects, for the migration report.
    pub(crate) contract: Arc<ContractView>,
    /// Who may read `/admin/*` (and, with its token, introspect).
    pub(crate) admin_access: AdminAccess,
    /// The persisted-operation rules: APQ store and trusted documents.
    pub(crate) persisted: Arc<PersistedOperations>,
    /// A token bucket per caller (admits everything unless `rate_limit.enabled`).
    pub(crate) rate_limit: RateLimiter,
    /// The CSRF rule for requests riding the session cookie.
    pub(crate) csrf: CsrfRule,
    /// WebSocket settings (`[websocket]`) and the connections each caller holds.
    pub(crate) websockets: crate::ws::WebSockets,
    /// Executions shared by the graphql-transport-ws subscribers of one operation
    /// (`subscriptions.share_execution`).
    pub(crate) shared_subscriptions: crate::ws::SharedSubscriptions,
    /// This gateway's Prometheus registry (`/metrics`).
    pub(crate) metrics: Metrics,
    /// What runs, and where a shutdown stands (WebSockets end when it drains).
    pub(crate) lifecycle: crate::lifecycle::Lifecycle,
    /// OpenTelemetry traces (`[tracing]`); off by default.
    pub(crate) telemetry: crate::telemetry::Telemetry,
}

impl AppState {
    /// A state for unit tests: `Config::default()` changed by `configure`, lazy clients (no
    /// backend is called unless a test resolves a field), the built-in catalog.
    #[cfg(test)]
    #[allow(clippy::expect_used)] // a test fixture
    pub(crate) fn for_tests(configure: impl FnOnce(&mut Config)) -> AppState {
        let mut config = Config::default();
        configure(&mut config);
        let sources = Sources::new(&config.backends.sources_options()).expect("lazy clients");
        let catalog = Arc::new(banyan_migration::Catalog::banyan().expect("the declarations agree"));
        AppState::new(
            &config,
            sources,
            banyan_migration::Engine::with_defaults(catalog),
            Arc::default(),
            &crate::graphiql::GraphiqlDefaults::default(),
            None,
            crate::telemetry::Telemetry::default(),
        )
    }

    pub(crate) fn new(
        config: &Config,
        sources: Sources,
        engine: Engine,
        contract: Arc<ContractView>,
        graphiql: &crate::graphiql::GraphiqlDefaults,
        shared: Option<crate::shared_store::SharedStore>,
        telemetry: crate::telemetry::Telemetry,
    ) -> Self {
        let limits = config.limits;
        let sources = sources
            .with_metrics(banyan_sources::BackendMetrics::new())
            .with_fanout(config.subscriptions.fanout_options());
        let websockets = crate::ws::WebSockets::new(&config.websocket, &config.cors.allowed_origins);
        let documents = DocumentCache::new(config.server.document_cache_size);
        let metrics = Metrics::new(
            Metrics::operation_names(config),
            &sources,
            &engine,
            &websockets,
            shared.as_ref(),
            &documents,
        );
        let shared_subscriptions = crate::ws::SharedSubscriptions::new(
            config.subscriptions.share_execution && config.subscriptions.share_upstream,
            config.subscriptions.subscriber_buffer,
            sources.metrics.clone(),
            metrics.subscriptions_active(),
        );
        let masking = Arc::new(WarningLimit::default());
        let subscription_policy = banyan_resolvers::SubscriptionPolicy {
            visibility_recheck_interval: config.websocket.credential_recheck_interval,
        };
        let query_limits = QueryLimits { max_recursive_depth: limits.max_nesting };
        // Without extensions unless one needs async-graphql's per-field hook (`pipeline`).
        let fast = (!config.server.field_spans && telemetry.extension().is_none()).then(|| {
            let build = |validation| {
                banyan_resolvers::build_schema_without_extensions(
                    sources.clone(),
                    engine.clone(),
                    query_limits,
                    config.server.suggestions,
                    subscription_policy,
                    validation,
                )
            };
            FastSchemas {
                strict: build(async_graphql::ValidationMode::Strict),
                validated_once: build(async_graphql::ValidationMode::Fast),
            }
        });
        let operation_metrics = OperationMetrics(metrics.clone());
        let persisted = Arc::new(PersistedOperations::new(&config.persisted).sharing(shared.clone()));
        let operations = persisted.clone();
        let limit_warnings = Arc::new(LimitWarnings::default());
        let schema =
            banyan_resolvers::build_schema_with(sources.clone(), engine.clone(), query_limits, |builder| {
                // Outermost when on: its spans enclose every other extension's work.
                let builder = if config.server.field_spans {
                    builder.extension(async_graphql::extensions::Tracing)
                } else {
                    builder
                };
                let builder = builder
                    // First, so it sees every error, the other extensions' refusals included.
                    .extension(ErrorMasking::sharing(masking.clone()))
                    .extension(operation_metrics)
                    // Persisted operations next: they fill in a document sent by id, which the
                    // limits then bound. The limits before the order extension, which reads the
                    // document they parsed and bounded.
                    .extension(PersistedExtension { operations })
                    .extension(LimitsExtension { limits, warnings: limit_warnings.clone() })
                    .extension(IntrospectionPolicy { enabled: config.server.introspection })
                    .extension(SelectionOrder)
                    // A running subscription re-checks its templates' visibility as often as its
                    // connection re-checks the credential.
                    .data(subscription_policy);
                // Names the operation's span (and opens field spans) when tracing is on.
                let builder = match telemetry.extension() {
                    Some(tracing) => builder.extension(tracing),
                    None => builder,
                };
                if config.server.suggestions { builder } else { builder.disable_suggestions() }
            });
        let routing_policy = RoutingPolicy {
            expose_on_request: config.migration.expose_routing,
            expose_always: graphiql.always_show_routing,
            allow_override: config.migration.allow_route_override,
        };
        let graphiql = config.server.graphiql.then(|| {
            let tabs = if graphiql.contract_tabs {
                crate::graphiql::contract_tabs(&config.admin.contract, &graphiql.sample_arguments)
            } else {
                Vec::new()
            };
            crate::graphiql::GraphiqlPage::new(graphiql, &config.server.graphiql_cdn, &tabs)
        });
        let graphql = Graphql::new(GraphqlParts {
            fast,
            full: schema,
            limits,
            limit_warnings: limit_warnings.clone(),
            documents,
            persisted: persisted.clone(),
            metrics: metrics.clone(),
            introspection: config.server.introspection,
            masking,
        });
        tracing::debug!(
            extension_free = graphql.is_extension_free(),
            "GraphQL runs on the schema without extensions unless a per-field extension is configured"
        );
        let ready = Arc::new(AtomicBool::new(true));
        Self(Arc::new(AppParts {
            graphql,
            lifecycle: crate::lifecycle::Lifecycle::new(ready.clone()),
            limits,
            limit_warnings,
            auth: Authenticator::new(sources.monolith.clone(), &config.auth)
                .propagating(&config.backends.propagate_headers),
            sources,
            graphiql,
            ready,
            readiness_breakers: config.backends.breakers_affecting_readiness(),
            request_deadline: config.server.request_timeout,
            executions: Arc::new(tokio::sync::Semaphore::new(config.server.max_concurrent_executions)),
            max_message_bytes: config.websocket.max_message_size.unwrap_or(config.server.max_body_bytes),
            websocket_init_timeout: config.server.websocket_init_timeout,
            engine,
            routing_policy,
            contract,
            admin_access: config.admin.access(),
            persisted,
            rate_limit: RateLimiter::new(&config.rate_limit).sharing(shared),
            csrf: CsrfRule::new(config),
            websockets,
            shared_subscriptions,
            metrics,
            telemetry,
        }))
    }
}

/// The whole application, layers included.
pub(crate) fn router(state: AppState, config: &Config) -> Router {
    let graphql = get(graphql_http::get)
        .post(graphql_http::post)
        .fallback(|method: http::Method| async move { graphql_http::method_not_allowed(&method) });
    let guarded = Router::new()
        .merge(admin::routes(&state.admin_access))
        .route("/graphql", graphql)
        .route(&format!("{}/{{name}}", crate::graphiql::ASSETS_PATH), get(crate::graphiql::asset))
        // Beyond `server.max_in_flight_requests`, 503 at once; probes are never turned away.
        .layer(axum::middleware::from_fn_with_state(
            InFlight::new(config.server.max_in_flight_requests),
            edge::limit_in_flight,
        ));
    let metrics = state.metrics.clone();
    let routes = guarded
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        // Every route above is timed under its template; `/metrics`, added after, is not, so a
        // scrape does not change what it reads.
        .route_layer(axum::middleware::from_fn_with_state(metrics.clone(), crate::metrics::track_http))
        .with_state(state);
    let routes = if config.metrics.enabled {
        let token = Some(config.metrics.token.as_str()).filter(|token| !token.is_empty()).map(Arc::from);
        routes.route("/metrics", get(crate::metrics::serve).with_state((metrics, token)))
    } else {
        routes
    };
    with_layers(routes, config)
}

/// The tower stack every route sits behind, in request order.
pub(crate) fn with_layers(routes: Router, config: &Config) -> Router {
    let request_id = HeaderName::from_static(banyan_sources::identity::REQUEST_ID_HEADER);
    routes.layer(
        ServiceBuilder::new()
            // Every request gets an id (kept if the client sent one), echoed in the response
            // and passed to the backends.
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(request_id))
            // One span per request, with method, path, request id and the caller's trace id.
            .layer(TraceLayer::new_for_http().make_span_with(crate::trace_context::request_span))
            // A panic in a handler is a logged 500 with a code and the request id, never a
            // dropped connection.
            .layer(axum::middleware::from_fn(edge::catch_panic))
            // Browsers from other origins only where configured.
            .layer(cors_layer(config))
            // A backstop on the whole request, a little after its own deadline (which answers
            // what is ready, with coded errors on the rest); WebSocket connections outlive it
            // once upgraded.
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                backstop_timeout(config.server.request_timeout),
            ))
            // Bodies beyond the limit are refused with 413 before they are read.
            .layer(DefaultBodyLimit::max(config.server.max_body_bytes)),
    )
}

fn cors_layer(config: &Config) -> CorsLayer {
    let origins: Vec<http::HeaderValue> =
        config.cors.allowed_origins.iter().filter_map(|origin| origin.parse().ok()).collect();
    let mut headers = vec![
        http::header::CONTENT_TYPE,
        http::header::AUTHORIZATION,
        http::header::ACCEPT,
        HeaderName::from_static(crate::migration::ROUTE_OVERRIDE_HEADER),
        HeaderName::from_static(crate::migration::SHOW_ROUTING_HEADER),
    ];
    // The headers that satisfy the CSRF rule must pass the preflight they force.
    headers.extend(
        config.csrf.required_headers.iter().filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()),
    );
    // A browser signed in with a Django session sends its CSRF header, for the monolith.
    headers.extend(HeaderName::from_bytes(config.auth.csrf_header.as_bytes()).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([http::Method::GET, http::Method::POST])
        .allow_headers(headers)
        .allow_credentials(true)
        .max_age(config.cors.max_age)
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    }
    let open: Vec<&str> = state
        .sources
        .resilience()
        .into_iter()
        .filter(|backend| {
            backend.breaker == banyan_sources::BreakerState::Open
                && state.readiness_breakers.contains(&backend.backend.name())
        })
        .map(|backend| backend.backend.name())
        .collect();
    if open.is_empty() {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("circuit breaker open: {}", open.join(", ")))
    }
}

/// The outer timeout: the request's deadline plus a grace (a tenth of it, 1 s at least) for the
/// answer to be written, so it fires only when something ignores the deadline.
fn backstop_timeout(request_timeout: std::time::Duration) -> std::time::Duration {
    request_timeout + (request_timeout / 10).max(std::time::Duration::from_secs(1))
}
