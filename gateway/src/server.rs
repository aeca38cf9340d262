//! Starting and stopping the gateway: bind, serve, and drain gracefully on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use banyan_sources::Sources;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{self, AppState, GraphiqlDefaults};
use crate::config::Config;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
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
}

/// A gateway serving on a socket until [`RunningGateway::shutdown`] or drop.
pub struct RunningGateway {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// The readiness flag `/readyz` reports; cleared when shutdown begins.
    ready: Arc<AtomicBool>,
    /// The migration engine the gateway routes with (its table, executor and results).
    engine: banyan_migration::Engine,
    /// How long to keep serving, not ready, before closing the listener.
    delay: std::time::Duration,
    grace: std::time::Duration,
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
        let sources = Sources::new(&config.backends.sources_options())?;
        let contract = Arc::new(crate::admin::load_contract(&config.admin.contract));
        let migration = crate::migration::start(&config.migration, &contract.index)?;
        let state = AppState::new(config, sources, migration.engine, contract, &graphiql);
        let ready = state.ready.clone();
        let engine = state.engine.clone();
        let router = app::router(state, config);
        let listen = config.server.listen;
        let listener =
            TcpListener::bind(listen).await.map_err(|source| StartError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "Banyan is listening");
        Ok(Self {
            addr,
            stop: Some(stop),
            task: Some(task),
            ready,
            engine,
            delay: config.server.shutdown_delay,
            grace: config.server.shutdown_grace,
            _table_watcher: migration.watcher,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The migration engine: what `/admin/migration` shows, and where tests record into.
    pub fn engine(&self) -> &banyan_migration::Engine {
        &self.engine
    }

    /// Turns `/readyz` to 503 and keeps serving for `server.shutdown_delay`, so load balancers
    /// stop sending traffic first; then stops taking new connections, lets requests in flight
    /// finish (bounded by `server.shutdown_grace`), and returns when the server has stopped.
    pub async fn shutdown(mut self) {
        self.ready.store(false, Ordering::Relaxed);
        if !self.delay.is_zero() {
            tracing::info!(delay = ?self.delay, "not ready; serving until the shutdown delay ends");
            tokio::time::sleep(self.delay).await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(self.grace, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the server stopped with an error"),
                Ok(Err(e)) => tracing::warn!(error = %e, "the server task failed"),
                Err(_) => {
                    tracing::warn!(grace = ?self.grace, "requests still in flight after the grace period; stopping anyway");
                    task.abort();
                }
            }
        }
    }

    /// Serves until the process gets Ctrl-C or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
