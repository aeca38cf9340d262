//! What the sources tests share: a devstack and a client for each of its backends.

use std::time::Duration;

use banyan_devstack::{DevStack, DevStackConfig};
use banyan_sources::drafts::DraftsClient;
use banyan_sources::events::EventsClient;
use banyan_sources::monolith::MonolithClient;
use banyan_sources::{GrpcOptions, MonolithOptions};

/// Every call's deadline: a bound against a hung test, not a measurement.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// A devstack and the three clients pointed at it.
pub(crate) struct Clients {
    pub(crate) stack: DevStack,
    pub(crate) monolith: MonolithClient,
    pub(crate) events: EventsClient,
    pub(crate) drafts: DraftsClient,
}

/// Starts a devstack with its defaults and builds the clients.
pub(crate) async fn start() -> Clients {
    let stack = DevStack::start(DevStackConfig::default()).await.expect("the devstack starts");
    let grpc = |url: String| GrpcOptions {
        url,
        timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        max_streams_per_connection: banyan_sources::stream_pool::DEFAULT_MAX_STREAMS_PER_CONNECTION,
        resilience: banyan_sources::ResilienceOptions::default(),
    };
    let monolith = MonolithClient::new(&MonolithOptions {
        base_url: stack.monolith_url(),
        timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        resilience: banyan_sources::ResilienceOptions::default(),
    })
    .expect("a monolith client");
    let keys = stack.service_identity_keys().clone();
    let events =
        EventsClient::new(&grpc(stack.events_url())).expect("an events client").with_identity(keys.clone());
    let drafts = DraftsClient::new(&grpc(stack.drafts_url())).expect("a drafts client").with_identity(keys);
    Clients { stack, monolith, events, drafts }
}
