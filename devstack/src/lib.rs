//! Stand-ins for Banyan's backends, for `banyan dev`, the end-to-end tests and the benchmarks.
//!
//! [`DevStack::start`] serves, each on its own TCP port:
//!
//! - the **monolith**: the legacy Django app's REST API as `devstack/MONOLITH_API.md` describes it
//!   (token auth, DRF pagination and errors, visibility, `PATCH`, the legacy analytics, draft and
//!   events views, the legacy draft block writes with optimistic versions), plus a small admin
//!   surface under `/__devstack/` (call counters, fault knobs, the legacy-sync and A/A noise
//!   knobs);
//! - the **`EventService`** (gRPC): an in-memory append-only event log with stats, pages and live
//!   streams, and an optional background generator of events;
//! - the **`DraftService`** (gRPC): drafts in memory with optimistic concurrency.
//!
//! Both services refuse, with `UNAUTHENTICATED`, any call without the identity the gateway signs
//! (`banyan_sources::service_identity`), verified with [`DevStackConfig::service_identity_secrets`].
//! Both also serve gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, open to any
//! caller, as real services commonly do) with the descriptors they were built from
//! ([`FILE_DESCRIPTOR_SET`]), each listing its own service; [`DevStackConfig::reflected_protos`]
//! makes them serve other protos instead, to model a service that changed its protofile.
//!
//! All three are seeded from one [`Dataset`]. The monolith keeps its own copy of the events and
//! drafts (as a Django app has its own tables) and computes its legacy views from it; a dual write
//! keeps that copy in step with the services (one way: the monolith's own draft writes never reach
//! the draft store), so the two sides agree until [`DevStack::set_legacy_sync`] lets them drift
//! apart. [`DevStack::set_aa_noise`] makes one path of a legacy answer differ between identical
//! calls, for A/A calibration.
//! Each backend has a [`Fault`] knob (latency, error rate, hang, refused connections), settable
//! at start, through [`DevStack::faults`] or over HTTP, and every call is counted in a
//! [`CallLog`] so tests can prove batching and identity propagation.
//!
//! ```no_run
//! # async fn demo() -> Result<(), banyan_devstack::DevStackError> {
//! use banyan_devstack::{Backend, DevStack, DevStackConfig, Fault};
//! use std::time::Duration;
//!
//! let stack = DevStack::start(DevStackConfig::default()).await?;
//! let token = &stack.dataset().users[0].token;
//! // ... call stack.monolith_url() with `Authorization: Token {token}` ...
//! stack.faults().set(Backend::Events, Fault::latency(Duration::from_millis(200)));
//! assert_eq!(stack.calls().count("EventService/GetTemplateStats"), 0);
//! stack.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Never used by production code paths.

pub mod calls;
pub mod dataset;
mod drafts;
mod events;
pub mod faults;
mod grpc_guard;
mod legacy;
mod listener;
mod monolith;
mod rng;
mod service_auth;
mod time;
mod wrong_answer;

/// The encoded `FileDescriptorSet` the services were built from (`sources/proto/`, compiled with
/// protox, with imports and source info): what their reflection serves by default.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/services_descriptor_set.bin"));

/// The `EventService`'s fully-qualified name, as reflection lists it.
pub const EVENT_SERVICE: &str = "banyan.events.v1.EventService";
/// The `DraftService`'s fully-qualified name, as reflection lists it.
pub const DRAFT_SERVICE: &str = "banyan.drafts.v1.DraftService";

/// The generated protobuf types, gRPC servers and gRPC clients of the services.
pub mod proto {
    /// `banyan.events.v1`: the event store.
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod events {
        tonic::include_proto!("banyan.events.v1");
    }
    /// `banyan.drafts.v1`: the draft store.
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod drafts {
        tonic::include_proto!("banyan.drafts.v1");
    }
}

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use calls::CallLog;
pub use dataset::Dataset;
pub use drafts::{DRAFTS_ERROR_DOMAIN, USER_ID_METADATA, VERSION_CONFLICT_REASON};
pub use events::EventGeneratorConfig;
pub use faults::{Answer, Backend, Fault, Faults};
pub use proto::drafts::BlockKind;
pub use proto::events::EventKind;

use crate::drafts::{DraftStore, DraftsApi};
use crate::events::{EventStore, EventsApi};
use crate::grpc_guard::GrpcGuardLayer;
use crate::legacy::LegacyTables;
use crate::listener::FaultyListener;
use crate::proto::drafts::draft_service_server::DraftServiceServer;
use crate::proto::events::NewEmailEvent;
use crate::proto::events::event_service_server::EventServiceServer;
use crate::service_auth::VerifyIdentity;
use banyan_sources::ServiceIdentityKeys;

/// How long [`DevStack::shutdown`] waits for the servers to finish before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// How to start a [`DevStack`]. The default: seed 42, no event generator, no faults, and every
/// backend on an ephemeral port of 127.0.0.1.
///
/// Deserializes from TOML or JSON with every field optional, e.g.
/// `{"seed": 7, "faults": {"events": {"latency": "300ms"}}, "monolith_addr": "127.0.0.1:8001"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevStackConfig {
    /// Seed of the dataset (and of the event generator and fault rolls).
    pub seed: u64,
    /// The background event generator (off by default).
    pub event_generator: EventGeneratorConfig,
    /// Faults active from the start; backends not named have none.
    pub faults: BTreeMap<Backend, Fault>,
    /// Where the monolith stand-in listens.
    pub monolith_addr: SocketAddr,
    /// Where the `EventService` listens.
    pub events_addr: SocketAddr,
    /// Where the `DraftService` listens.
    pub drafts_addr: SocketAddr,
    /// Whether the monolith lists Django REST framework's `SessionAuthentication` before
    /// `TokenAuthentication`. Then, as DRF does, a request it cannot authenticate is answered
    /// `403` instead of `401` (the first class sends no `WWW-Authenticate` challenge). Default false.
    pub session_authentication_first: bool,
    /// The secrets the services verify the gateway's signed identity with (the first is the one
    /// [`DevStack::service_identity_keys`] signs with; all verify), each at least 32 bytes. Empty
    /// (the default): one random secret, made at start, which `banyan dev` and the test kit give
    /// the gateway.
    pub service_identity_secrets: Vec<String>,
    /// The gRPC services' HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: the most streams (unary
    /// calls and `StreamEvents` alike) one connection may carry at once, as a proxy in front of
    /// a real service caps it (nginx: 128). `None` (the default): tonic's own (no cap).
    pub max_concurrent_streams: Option<u32>,
    /// A folder of `.proto` files (compiled with protox at start) that the services serve over
    /// reflection instead of the ones they were built from: a service whose protofile changed
    /// (a field removed, say) while its code did not. `None` (the default): their own.
    pub reflected_protos: Option<std::path::PathBuf>,
}

impl Default for DevStackConfig {
    fn default() -> Self {
        Self {
            seed: dataset::DEFAULT_SEED,
            event_generator: EventGeneratorConfig::default(),
            faults: BTreeMap::new(),
            monolith_addr: localhost(),
            events_addr: localhost(),
            drafts_addr: localhost(),
            session_authentication_first: false,
            service_identity_secrets: Vec::new(),
            max_concurrent_streams: None,
            reflected_protos: None,
        }
    }
}

/// Why a [`DevStack`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevStackError {
    /// A stand-in could not listen on its address.
    #[error("cannot listen on {addr} for the {backend} stand-in: {source}")]
    Bind {
        /// The stand-in.
        backend: Backend,
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not usable.
    #[error("invalid devstack configuration: {0}")]
    Config(String),
    /// Generating the dataset failed (a bug).
    #[error("generating the dataset failed: {0}")]
    Dataset(String),
}

/// What the stand-ins share: the data, the knobs, the counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dataset: Arc<Dataset>,
    pub(crate) faults: Faults,
    pub(crate) calls: CallLog,
    pub(crate) events: EventStore,
    pub(crate) drafts: DraftStore,
    /// The monolith's own tables of events and drafts.
    pub(crate) legacy: LegacyTables,
    /// See [`DevStackConfig::session_authentication_first`].
    pub(crate) session_authentication_first: bool,
    /// Cancelled when the devstack shuts down: ends servers, streams, hangs and the generator.
    pub(crate) shutdown: CancellationToken,
    /// Tokens deleted since the start (DRF's token deleted: `/me/` answers 401 for it).
    pub(crate) revoked_tokens: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Memberships deleted since the start, as (workspace, user).
    pub(crate) removed_memberships: std::sync::RwLock<std::collections::HashSet<(u64, u64)>>,
}

impl Shared {
    /// `user`'s role in `workspace` now: the seeded one, unless the membership was removed.
    pub(crate) fn role(&self, user: u64, workspace: u64) -> Option<dataset::Role> {
        let removed = self.removed_memberships.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.dataset.role(user, workspace).filter(|_| !removed.contains(&(workspace, user)))
    }

    /// The workspaces `user` is a member of now, ascending.
    pub(crate) fn workspaces_of(&self, user: u64) -> Vec<u64> {
        let removed = self.removed_memberships.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut workspaces = self.dataset.workspaces_of(user);
        workspaces.retain(|workspace| !removed.contains(&(*workspace, user)));
        workspaces
    }
}

/// The running stand-ins. Dropping it stops them too (without waiting); prefer
/// [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct DevStack {
    shared: Arc<Shared>,
    monolith_addr: SocketAddr,
    events_addr: SocketAddr,
    drafts_addr: SocketAddr,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// The secrets the services verify with (the configured ones, or the one made at start).
    secrets: Secrets,
    identity: ServiceIdentityKeys,
}

/// Secrets, kept out of `Debug` output.
struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} redacted]", self.0.len())
    }
}

async fn bind(backend: Backend, addr: SocketAddr) -> Result<TcpListener, DevStackError> {
    TcpListener::bind(addr).await.map_err(|source| DevStackError::Bind { backend, addr, source })
}

fn local_addr(
    backend: Backend,
    listener: &TcpListener,
    asked: SocketAddr,
) -> Result<SocketAddr, DevStackError> {
    listener.local_addr().map_err(|source| DevStackError::Bind { backend, addr: asked, source })
}

impl DevStack {
    /// Generates the dataset, binds the three stand-ins and starts serving. When it returns,
    /// every stand-in accepts connections.
    pub async fn start(config: DevStackConfig) -> Result<DevStack, DevStackError> {
        for (backend, fault) in &config.faults {
            fault.validate().map_err(|e| DevStackError::Config(format!("faults.{backend}: {e}")))?;
        }
        let rate = config.event_generator.rate_per_second;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(DevStackError::Config(format!(
                "event_generator.rate_per_second must be a number >= 0, got {rate}"
            )));
        }
        let secrets = if config.service_identity_secrets.is_empty() {
            vec![ServiceIdentityKeys::generate_secret()]
        } else {
            config.service_identity_secrets.clone()
        };
        let identity = ServiceIdentityKeys::new(&secrets)
            .map_err(|e| DevStackError::Config(format!("service_identity_secrets: {e}")))?;
        let reflected = reflected_descriptors(config.reflected_protos.as_deref())?;
        let monolith = bind(Backend::Monolith, config.monolith_addr).await?;
        let events = bind(Backend::Events, config.events_addr).await?;
        let drafts = bind(Backend::Drafts, config.drafts_addr).await?;
        let monolith_addr = local_addr(Backend::Monolith, &monolith, config.monolith_addr)?;
        let events_addr = local_addr(Backend::Events, &events, config.events_addr)?;
        let drafts_addr = local_addr(Backend::Drafts, &drafts, config.drafts_addr)?;

        let seed = config.seed;
        let started = std::time::Instant::now();
        let shared = tokio::task::spawn_blocking(move || {
            let dataset = Dataset::generate(seed, chrono::Utc::now());
            let events = EventStore::new(&dataset);
            let drafts = DraftStore::new(&dataset);
            let legacy = LegacyTables::new(&dataset);
            (dataset, events, drafts, legacy)
        })
        .await
        .map(|(dataset, events, drafts, legacy)| Shared {
            dataset: Arc::new(dataset),
            faults: Faults::new(seed, &config.faults),
            calls: CallLog::default(),
            events,
            drafts,
            legacy,
            session_authentication_first: config.session_authentication_first,
            shutdown: CancellationToken::new(),
            revoked_tokens: std::sync::RwLock::default(),
            removed_memberships: std::sync::RwLock::default(),
        })
        .map_err(|e| DevStackError::Dataset(e.to_string()))?;
        let shared = Arc::new(shared);
        tracing::debug!(elapsed = ?started.elapsed(), events = shared.dataset.events.len(), "devstack dataset ready");

        let mut tasks = Vec::new();

        let app = monolith::router(shared.clone(), monolith_addr);
        let listener = FaultyListener::new(monolith, shared.clone(), Backend::Monolith);
        let stop = shared.shutdown.clone();
        tasks.push((
            "monolith",
            tokio::spawn(async move {
                let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
                if let Err(error) = serve.await {
                    tracing::error!(%error, "devstack monolith stand-in failed");
                }
            }),
        ));

        let incoming = FaultyListener::new(events, shared.clone(), Backend::Events).into_incoming();
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(config.max_concurrent_streams)
            .layer(GrpcGuardLayer::new(shared.clone(), Backend::Events))
            .add_service(EventServiceServer::with_interceptor(
                EventsApi::new(shared.clone()),
                VerifyIdentity::new(identity.clone()),
            ));
        let (v1, v1alpha) = reflection(&reflected, EVENT_SERVICE)?;
        let server = server.add_service(v1).add_service(v1alpha);
        let stop = shared.shutdown.clone();
        tasks.push((
            "events",
            tokio::spawn(async move {
                let serve = server.serve_with_incoming_shutdown(Box::pin(incoming), stop.cancelled_owned());
                if let Err(error) = serve.await {
                    tracing::error!(%error, "devstack EventService stand-in failed");
                }
            }),
        ));

        let incoming = FaultyListener::new(drafts, shared.clone(), Backend::Drafts).into_incoming();
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(config.max_concurrent_streams)
            .layer(GrpcGuardLayer::new(shared.clone(), Backend::Drafts))
            .add_service(DraftServiceServer::with_interceptor(
                DraftsApi::new(shared.clone()),
                VerifyIdentity::new(identity.clone()),
            ));
        let (v1, v1alpha) = reflection(&reflected, DRAFT_SERVICE)?;
        let server = server.add_service(v1).add_service(v1alpha);
        let stop = shared.shutdown.clone();
        tasks.push((
            "drafts",
            tokio::spawn(async move {
                let serve = server.serve_with_incoming_shutdown(Box::pin(incoming), stop.cancelled_owned());
                if let Err(error) = serve.await {
                    tracing::error!(%error, "devstack DraftService stand-in failed");
                }
            }),
        ));

        if rate > 0.0 {
            tasks.push((
                "event generator",
                tokio::spawn(events::run_generator(shared.clone(), config.event_generator.clone())),
            ));
        }

        tracing::info!(
            monolith = %monolith_addr,
            events = %events_addr,
            drafts = %drafts_addr,
            seed,
            "devstack started"
        );
        Ok(DevStack {
            shared,
            monolith_addr,
            events_addr,
            drafts_addr,
            tasks,
            secrets: Secrets(secrets),
            identity,
        })
    }

    /// The monolith's base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn monolith_url(&self) -> String {
        format!("http://{}", self.monolith_addr)
    }

    /// The `EventService`'s URL, `http://127.0.0.1:PORT`.
    pub fn events_url(&self) -> String {
        format!("http://{}", self.events_addr)
    }

    /// The `DraftService`'s URL, `http://127.0.0.1:PORT`.
    pub fn drafts_url(&self) -> String {
        format!("http://{}", self.drafts_addr)
    }

    /// The monolith's socket address.
    pub fn monolith_addr(&self) -> SocketAddr {
        self.monolith_addr
    }

    /// The `EventService`'s socket address.
    pub fn events_addr(&self) -> SocketAddr {
        self.events_addr
    }

    /// The `DraftService`'s socket address.
    pub fn drafts_addr(&self) -> SocketAddr {
        self.drafts_addr
    }

    /// The secrets the services verify the gateway's signed identity with, signing one first:
    /// what the gateway's `auth.service_identity_secrets` must share (one of them at least).
    pub fn service_identity_secrets(&self) -> &[String] {
        &self.secrets.0
    }

    /// Keys signing with the services' first secret: for a test calling a service directly as
    /// the gateway would (`keys.sign_metadata(request.metadata_mut(), user, None)`).
    pub fn service_identity_keys(&self) -> &ServiceIdentityKeys {
        &self.identity
    }

    /// The fault knobs: `faults().set(Backend::Events, Fault::hang())`, `faults().clear(..)`.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The call counters.
    pub fn calls(&self) -> &CallLog {
        &self.shared.calls
    }

    /// The seeded data, in its initial state (later writes through the APIs are not reflected).
    pub fn dataset(&self) -> &Dataset {
        &self.shared.dataset
    }

    /// The number of `StreamEvents` calls being served now.
    pub fn active_event_streams(&self) -> usize {
        self.shared.events.active_streams()
    }

    /// Appends events now, exactly as a gRPC `AppendEvents` would (same validation, same live
    /// broadcast, same dual write to the monolith's table), without counting a call; returns their
    /// sequences in order. Each event gets a
    /// recipient `test-{n}@example.com` (`n` = its position in the batch) and the store's clock.
    ///
    /// # Panics
    ///
    /// If an event's kind is [`EventKind::Unspecified`] (the gRPC call answers
    /// `INVALID_ARGUMENT`), or the batch has more than 10,000 events.
    pub async fn append_events(&self, events: Vec<(u64, EventKind)>) -> Vec<u64> {
        let batch = events
            .into_iter()
            .enumerate()
            .map(|(n, (template, kind))| NewEmailEvent {
                template_id: template.to_string(),
                kind: kind.into(),
                recipient: format!("test-{n}@example.com"),
                occurred_at: None,
            })
            .collect();
        match self.shared.ingest(batch) {
            Ok(sequences) => sequences,
            Err(status) => panic!("DevStack::append_events: {}", status.message()),
        }
    }

    /// Turns the dual write to the monolith's own tables on (the default) or off. While it is
    /// off, ingested events and saved drafts reach only the services, so the legacy analytics,
    /// draft and events views fall behind: a discrepancy between the two sides, on purpose.
    /// Turning it back on does not copy what was missed. It governs the services-to-monolith
    /// direction only: drafts written through the monolith's own endpoints never reach the
    /// draft store, on or off.
    pub fn set_legacy_sync(&self, enabled: bool) {
        self.shared.legacy.set_sync(enabled);
    }

    /// Whether the dual write from the services to the monolith's own tables is on.
    pub fn legacy_sync(&self) -> bool {
        self.shared.legacy.syncing()
    }

    /// Revokes a token, as deleting its row from DRF's token table does: from now on the monolith
    /// refuses it (401), while the user's other credentials keep working.
    pub fn revoke_token(&self, token: &str) {
        self.shared
            .revoked_tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token.to_owned());
    }

    /// Removes `user` from `workspace`, as deleting the membership row does: from now on the
    /// monolith answers as if `user` had no role there (the workspace and its templates are not
    /// visible to it, `404`); the seeded member lists still show the row.
    pub fn remove_membership(&self, workspace: u64, user: u64) {
        self.shared
            .removed_memberships
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((workspace, user));
    }

    /// Turns the A/A noise knob on or off (off by default). While it is on, the monolith's legacy
    /// analytics view (`GET /api/v1/templates/{id}/analytics/`) adds `computed_at`, a timestamp
    /// that differs between any two calls, even identical ones made in the same microsecond: a
    /// path of a legacy answer that is pure noise, for the migration engine's A/A calibration to
    /// learn. Also `PUT /__devstack/aa-noise` with `{"enabled": true}`.
    pub fn set_aa_noise(&self, enabled: bool) {
        self.shared.legacy.set_aa_noise(enabled);
    }

    /// Whether the A/A noise knob is on.
    pub fn aa_noise(&self) -> bool {
        self.shared.legacy.aa_noise()
    }

    /// Stops every stand-in: ends open streams and hung requests, lets the servers finish
    /// (waiting at most 5 seconds), then aborts what is left.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for (name, mut task) in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(task = name, "devstack task did not stop in time; aborting it");
                task.abort();
            }
        }
        tracing::info!("devstack stopped");
    }
}

/// The descriptors reflection serves: the compiled-in set, or `dir`'s protos compiled now.
fn reflected_descriptors(
    dir: Option<&std::path::Path>,
) -> Result<prost_types::FileDescriptorSet, DevStackError> {
    use prost::Message as _;
    let Some(dir) = dir else {
        return prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).map_err(|e| {
            DevStackError::Config(format!("the compiled-in descriptor set does not decode: {e}"))
        });
    };
    let mut names = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let entries = std::fs::read_dir(&at)
            .map_err(|e| DevStackError::Config(format!("reflected_protos: {}: {e}", at.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                names.push(path);
            }
        }
    }
    names.sort();
    protox::compile(&names, [dir])
        .map_err(|e| DevStackError::Config(format!("reflected_protos: {}: {e}", dir.display())))
}

/// Reflection servers (v1, v1alpha) listing only `service`, from `descriptors`.
#[allow(clippy::type_complexity)]
fn reflection(
    descriptors: &prost_types::FileDescriptorSet,
    service: &str,
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    DevStackError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_file_descriptor_set(descriptors.clone())
            .with_service_name(service)
    };
    let error =
        |e: tonic_reflection::server::Error| DevStackError::Config(format!("reflection for {service}: {e}"));
    Ok((builder().build_v1().map_err(error)?, builder().build_v1alpha().map_err(error)?))
}

impl Shared {
    /// The ingestion pipeline: appends to the event store and, while the dual write is on,
    /// inserts the same events (same times) into the monolith's own table.
    pub(crate) fn ingest(&self, batch: Vec<NewEmailEvent>) -> Result<Vec<u64>, tonic::Status> {
        let stored = self.events.append(batch)?;
        if self.legacy.syncing() {
            self.legacy.insert_events(
                stored.iter().map(|e| (e.sequence, &*e.template_id, e.kind, &e.recipient, e.occurred_at)),
            );
        }
        Ok(stored.iter().map(|e| e.sequence).collect())
    }

    /// The dual write of a draft the draft store saved.
    pub(crate) fn replicate_draft(&self, draft: &proto::drafts::Draft) {
        if self.legacy.syncing() {
            self.legacy.save_draft(draft);
        }
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
