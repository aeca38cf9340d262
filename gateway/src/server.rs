//! Starting and stopping the gateway: bind, serve, and drain gracefully on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banyan_sources::Sources;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::{self, AppState};
use crate::config::Config;
use crate::edge::{self, ConnectionLimits};
use crate::graphiql::GraphiqlDefaults;
use crate::lifecycle::{Lifecycle, ShutdownReport};

/// How long aborted connections get to go once the grace period has ended: they are dropped at
/// once, so this only bounds a task that does not yield.
const ABORT_WAIT: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A backend client could not be built from the configuration.
    #[error("configuring the backends: {0}")]
    Sources(#[from] banyan_sources::SourceError),
    /// The migration engine could not start (a bad routing table names its file:line).
    #[error("starting the migration engine: {0}")]
    Migration(#[from] crate::migration::MigrationStartError),
    /// `persisted.trusted_documents` is `enforce` and the manifest cannot be read: every
    /// operation would be refused.
    #[error("{0}")]
    Manifest(#[from] crate::persisted::ManifestLoadError),
    /// `[tracing]` is on and its exporter could not be built.
    #[error("starting tracing: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// No secret to sign the caller's identity to the services: they could not trust a call, so
    /// Banyan does not start rather than send identities anyone could forge.
    #[error(
        "`auth.service_identity_secrets` is empty: the gRPC services need the caller's identity signed; \
         set BANYAN_AUTH__SERVICE_IDENTITY_SECRETS='[\"<at least 32 bytes>\"]' with the secret the services verify with"
    )]
    NoServiceIdentitySecret,
    /// The Redis client could not be built from `redis.url` (connections open later, lazily).
    #[error("configuring the shared store: {0}")]
    SharedStore(#[from] crate::shared_store::StoreError),
}

/// What a start builds from the configuration before it binds.
struct Prepared {
    contract: Arc<crate::migration_contract::ContractView>,
    migration: crate::migration::MigrationRuntime,
    sources: Sources,
    shared: Option<crate::shared_store::SharedStore>,
}

/// Reads and checks everything the configuration points at (the persisted manifest, the
/// contract, the routing table, the service identity secret, the backends' and Redis's
/// addresses), as a
/// start does before binding.
fn prepare(config: &Config) -> Result<Prepared, StartError> {
    crate::persisted::check_manifest(&config.persisted)?;
    let contract = Arc::new(crate::admin::load_contract(&config.admin.contract));
    let migration = crate::migration::start(&config.migration, &contract.index)?;
    let mut options = config.backends.sources_options();
    options.service_identity =
        Some(config.auth.service_identity_keys().ok_or(StartError::NoServiceIdentitySecret)?);
    let sources = Sources::new(&options)?;
    let shared = crate::shared_store::SharedStore::new(&config.redis)?;
    Ok(Prepared { contract, migration, sources, shared })
}

/// Checks a configuration as [`RunningGateway::start`] would, without binding or serving:
/// `banyan serve --check`, for CI and for a deployment's config before it rolls out. Backends
/// are not called (a start does not call them either).
pub async fn check(config: &Config) -> Result<(), StartError> {
    prepare(config).map(drop)
}

/// A gateway serving on a socket until [`RunningGateway::shutdown`] or drop.
pub struct RunningGateway {
    addr: SocketAddr,
    /// Accepts connections until drain begins.
    task: Option<JoinHandle<()>>,
    /// Readiness, what runs, and the shutdown's stages.
    lifecycle: Lifecycle,
    /// Requests served over a warn-only limit (`limits.warn_only`), per limit.
    limit_warnings: Arc<crate::LimitWarnings>,
    /// The migration engine the gateway routes with (its table, executor and results).
    engine: banyan_migration::Engine,
    /// How long to keep serving, not ready, before closing the listener.
    delay: Duration,
    /// How long, once the listener is closed, what runs may take to finish.
    grace: Duration,
    /// Its traces' exporter, flushed at shutdown.
    telemetry: crate::telemetry::Telemetry,
    /// Polls the routing table file while the server runs; stops when dropped.
    _table_watcher: Option<banyan_migration::TableWatcher>,
}

impl RunningGateway {
    /// Binds `config.server.listen` and starts serving.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        Self::start_with(config, GraphiqlDefaults::default()).await
    }

    /// [`RunningGateway::start`], with defaults for GraphiQL.
    pub async fn start_with(config: &Config, graphiql: GraphiqlDefaults) -> Result<Self, StartError> {
        let Prepared { contract, migration, sources, shared } = prepare(config)?;
        let telemetry = crate::telemetry::Telemetry::start(&config.tracing)?;
        let state =
            AppState::new(config, sources, migration.engine, contract, &graphiql, shared, telemetry.clone());
        let lifecycle = state.lifecycle.clone();
        let limit_warnings = state.limit_warnings.clone();
        let engine = state.engine.clone();
        let router = app::router(state, config);
        let listen = config.server.listen;
        let listener =
            TcpListener::bind(listen).await.map_err(|source| StartError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
        let limits = ConnectionLimits {
            header_read_timeout: config.server.header_read_timeout,
            max_connections: config.server.max_connections,
        };
        let task = tokio::spawn(edge::serve(listener, router, limits, lifecycle.clone()));
        tracing::info!(%addr, "Banyan is listening");
        Ok(Self {
            addr,
            task: Some(task),
            lifecycle,
            engine,
            limit_warnings,
            delay: config.server.shutdown_delay,
            grace: config.server.shutdown_grace,
            telemetry,
            _table_watcher: migration.watcher,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests were served over each warn-only limit (`limits.warn_only`).
    pub fn limit_warnings(&self) -> &crate::LimitWarnings {
        &self.limit_warnings
    }

    /// The migration engine: what `/admin/migration` shows, and where tests record into.
    pub fn engine(&self) -> &banyan_migration::Engine {
        &self.engine
    }

    /// What runs now (requests in flight, open WebSockets) and what shutdowns aborted: the
    /// counts metrics read.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Shuts down in three stages, each logged: turns `/readyz` to 503 and keeps serving for
    /// `server.shutdown_delay`, so load balancers stop sending traffic first (HTTP/1 answers
    /// carry `Connection: close` meanwhile); then stops accepting connections, lets each finish
    /// the request it serves, and ends every WebSocket operation with `complete` and the
    /// connection with 1001; whatever still runs when `server.shutdown_grace` ends is aborted and
    /// counted ([`Lifecycle::aborted_at_shutdown`]). Returns once the server has stopped.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.lifecycle.not_ready();
        tracing::info!(delay = ?self.delay, "shutting down: /readyz answers 503; serving until server.shutdown_delay ends");
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.lifecycle.drain();
        let deadline = tokio::time::Instant::now() + self.grace;
        if let Some(task) = self.task.take() {
            // The accept loop ends at once when drain begins; the deadline only guards against a
            // bug keeping it.
            let abort = task.abort_handle();
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "the accept loop failed"),
                Err(_) => abort.abort(),
            }
        }
        if tokio::time::timeout_at(deadline, self.lifecycle.idle()).await.is_ok() {
            tracing::info!("drained: every request and WebSocket finished; stopped");
            // Last, so the spans of the requests that drained are exported too.
            self.telemetry.shutdown().await;
            return ShutdownReport { aborted_requests: 0, aborted_websockets: 0 };
        }
        let report = self.lifecycle.abort();
        tracing::warn!(
            grace = ?self.grace,
            aborted_requests = report.aborted_requests,
            aborted_websockets = report.aborted_websockets,
            "server.shutdown_grace ended: aborted {} requests and {} WebSocket connections still running; stopped",
            report.aborted_requests,
            report.aborted_websockets,
        );
        let _ = tokio::time::timeout(ABORT_WAIT, self.lifecycle.idle()).await;
        self.telemetry.shutdown().await;
        report
    }

    /// Serves until `signals` reports SIGTERM or SIGINT, then shuts down as
    /// [`RunningGateway::shutdown`] does.
    pub async fn run_until(self, mut signals: ShutdownSignals) {
        let signal = signals.recv().await;
        tracing::info!(signal, "received {signal}");
        self.shutdown().await;
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // Dropped without a shutdown: connections and WebSockets end now, uncounted.
        self.lifecycle.drop_everything();
        self.telemetry.stop_in_background();
    }
}

/// The process signals that start a shutdown, SIGTERM (Kubernetes, systemd) and SIGINT (Ctrl-C),
/// listened for from [`ShutdownSignals::listen`] on: created before the gateway starts, so a
/// signal that comes right after "Banyan is listening" drains the gateway instead of killing the
/// process (the default action of a signal nobody listens for yet).
pub struct ShutdownSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    /// Starts listening (within a tokio runtime). A signal that cannot be listened for is
    /// logged and never reported.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {name}");
                    None
                }
            };
            Self {
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for the next signal; returns which came.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.interrupt) => "SIGINT",
                () = next(&mut self.terminate) => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            "SIGINT"
        }
    }
}
