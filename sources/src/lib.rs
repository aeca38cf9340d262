//! Banyan's backends, with no GraphQL in sight: the monolith's REST client ([`monolith`]), the
//! gRPC clients of the event store ([`events`]) and the draft store ([`drafts`]), the domain types
//! they all return ([`domain`]), the per-request batch loaders ([`loaders`], dispatched level by level by [`batch`]), and how the caller's
//! identity, deadlines and errors travel ([`identity`], [`error`]).

pub mod batch;
pub mod budget;
pub mod domain;
pub mod drafts;
pub mod error;
pub mod events;
pub mod fanout;
mod grpc;
pub mod identity;
pub mod loaders;
pub mod metrics;
pub mod monolith;
pub mod resilience;
mod rfc3339;
pub mod service_identity;
pub mod stream_pool;
pub mod trace;

pub use budget::CallBudget;
pub use error::{Backend, SourceError};
pub use fanout::{FanoutOptions, FeedError, SharedEventStream};
pub use grpc::GrpcOptions;
pub use identity::{Caller, Credential, SessionCredential};
pub use metrics::{BackendMetrics, SharedExecutionGuard, SharedSubscriberGuard};
pub use monolith::MonolithOptions;
pub use resilience::{BreakerOptions, BreakerState, ResilienceOptions, ResilienceSnapshot, RetryOptions};
pub use service_identity::ServiceIdentityKeys;
pub use trace::TraceContext;

use std::sync::Arc;

/// Generated protobuf types and gRPC clients for the services' APIs.
pub mod proto {
    /// `banyan.events.v1`: the event store.
    #[allow(missing_docs, unreachable_pub, clippy::all)]
    pub mod events {
        tonic::include_proto!("banyan.events.v1");
    }
    /// `banyan.drafts.v1`: the draft store.
    #[allow(missing_docs, unreachable_pub, clippy::all)]
    pub mod drafts {
        tonic::include_proto!("banyan.drafts.v1");
    }
}

/// Every backend client, built once at start-up and shared by all requests: one reference
/// count to clone. A request's scope and each loader it uses keep one, where each used to clone
/// the clients themselves (two tonic channels with their configuration, the monolith's client,
/// the metrics' handles); see BENCHMARKS.md, "The request's clients shared".
#[derive(Debug, Clone)]
pub struct Sources(Arc<Backends>);

/// The clients of [`Sources`], read through it.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The legacy monolith.
    pub monolith: monolith::MonolithClient,
    /// The event store.
    pub events: events::EventsClient,
    /// The draft store.
    pub drafts: drafts::DraftsClient,
    /// Where the clients and loaders record (the gateway's registry shows them).
    pub metrics: BackendMetrics,
}

/// How to reach every backend.
#[derive(Debug, Clone)]
pub struct SourcesOptions {
    /// The monolith.
    pub monolith: MonolithOptions,
    /// The event store.
    pub events: GrpcOptions,
    /// The draft store.
    pub drafts: GrpcOptions,
    /// The secrets that sign the caller's identity to the services; `None` sends it unsigned.
    pub service_identity: Option<ServiceIdentityKeys>,
}

impl std::ops::Deref for Sources {
    type Target = Backends;

    fn deref(&self) -> &Backends {
        &self.0
    }
}

impl From<Backends> for Sources {
    fn from(backends: Backends) -> Self {
        Self(Arc::new(backends))
    }
}

impl Sources {
    /// Builds every client; connections open lazily, so a backend that is down does not stop
    /// start-up (its fields fail until it is back).
    pub fn new(options: &SourcesOptions) -> Result<Self, SourceError> {
        Ok(Self::from(Backends {
            monolith: monolith::MonolithClient::new(&options.monolith)?,
            events: with_identity(
                events::EventsClient::new(&options.events)?,
                options,
                events::EventsClient::with_identity,
            ),
            drafts: with_identity(
                drafts::DraftsClient::new(&options.drafts)?,
                options,
                drafts::DraftsClient::with_identity,
            ),
            metrics: BackendMetrics::default(),
        }))
    }

    /// The same clients, recording calls and batches into `metrics` (one per gateway).
    #[must_use]
    pub fn with_metrics(self, metrics: BackendMetrics) -> Self {
        let backends = self.into_backends();
        Self::from(Backends {
            monolith: backends.monolith.with_metrics(metrics.clone()),
            events: backends.events.with_metrics(metrics.clone()),
            drafts: backends.drafts.with_metrics(metrics.clone()),
            metrics,
        })
    }

    /// The same clients, sharing subscriptions' upstream event streams as `options` say.
    #[must_use]
    pub fn with_fanout(self, options: FanoutOptions) -> Self {
        let backends = self.into_backends();
        Self::from(Backends { events: backends.events.with_fanout(options), ..backends })
    }

    /// The clients, taken out when nothing else shares them, copied otherwise.
    fn into_backends(self) -> Backends {
        Arc::unwrap_or_clone(self.0)
    }
}

impl Sources {
    /// Each backend's breaker state and resilience counters now, for `/metrics` and `/readyz`.
    pub fn resilience(&self) -> Vec<ResilienceSnapshot> {
        vec![
            self.monolith.resilience().snapshot(),
            self.events.resilience().snapshot(),
            self.drafts.resilience().snapshot(),
        ]
    }
}

fn with_identity<C>(client: C, options: &SourcesOptions, sign: fn(C, ServiceIdentityKeys) -> C) -> C {
    match &options.service_identity {
        Some(keys) => sign(client, keys.clone()),
        None => client,
    }
}
