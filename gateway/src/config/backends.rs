//! `[backends]`: how to reach the monolith and the gRPC services.

use std::time::Duration;

use banyan_sources::{GrpcOptions, MonolithOptions, SourcesOptions};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::resilience::{BackendResilience, BreakerConfig, RetryConfig, default_queue_timeout};

/// `[backends]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsConfig {
    /// `[backends.monolith]`: the legacy REST API.
    #[serde(default = "default_monolith")]
    pub monolith: HttpBackendConfig,
    /// `[backends.events]`: the event store (gRPC).
    #[serde(default = "default_events")]
    pub events: GrpcBackendConfig,
    /// `[backends.drafts]`: the draft store (gRPC).
    #[serde(default = "default_drafts")]
    pub drafts: GrpcBackendConfig,
    /// Inbound headers passed on to every backend (as HTTP headers to the monolith, as gRPC
    /// metadata to the services), by name, any case. Headers that could carry an identity
    /// (`authorization`, `cookie`, `x-banyan-*`, `x-forwarded-user`, `x-remote-user`, …) and
    /// transport headers are refused here, and are never forwarded whatever is listed. The request
    /// id goes to every backend whether listed or not. Default `["x-request-id", "traceparent",
    /// "tracestate", "accept-language"]`.
    #[serde(default = "default_propagate_headers")]
    pub propagate_headers: Vec<String>,
}

/// `[backends.monolith]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpBackendConfig {
    /// Base URL. Default `http://127.0.0.1:8000`.
    pub url: String,
    /// Deadline for one call. Default `"5s"`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Deadline for opening a connection. Default `"1s"`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The most calls in flight to this backend at once from this gateway; past it a call waits
    /// up to `queue_timeout`, then fails with `BACKEND_OVERLOADED`. 0 is no limit. Default 0.
    #[serde(default)]
    pub max_concurrent_calls: usize,
    /// How long a call waits for a slot past `max_concurrent_calls`. Default `"100ms"`.
    #[serde(default = "default_queue_timeout", with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// Whether identical in-flight reads share one backend call (within a request and across
    /// concurrent requests); only calls for the same caller (credential or user id, and the same
    /// forwarded headers) are shared. Default `false`.
    #[serde(default)]
    pub dedupe_reads: bool,
    /// Whether an open breaker turns `/readyz` to 503. Default `false`: a gateway with one backend
    /// down still serves the others' fields, and taking every replica out of the load balancer
    /// would turn a partial outage into a whole one.
    #[serde(default)]
    pub breaker_affects_readiness: bool,
    /// `[backends.<name>.retry]`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[backends.<name>.breaker]`.
    #[serde(default)]
    pub breaker: BreakerConfig,
}

/// `[backends.events]` and `[backends.drafts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcBackendConfig {
    /// The service's URL. Defaults: events `http://127.0.0.1:50051`, drafts `http://127.0.0.1:50052`.
    pub url: String,
    /// Deadline for one call. Default `"5s"`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Deadline for opening a connection. Default `"1s"`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Most long-lived streams (subscriptions) on one HTTP/2 connection. Streams never share the
    /// unary calls' connection, so open subscriptions cannot starve them; when every stream
    /// connection carries this many, the next stream opens another. Keep it at or below the
    /// service's (or its proxy's) `max_concurrent_streams` (nginx: 128), or streams past that cap
    /// wait and fail with `BACKEND_TIMEOUT` after `timeout`. Default `100`.
    #[serde(default = "default_max_streams_per_connection")]
    pub max_streams_per_connection: usize,
    /// The most calls in flight to this backend at once from this gateway; past it a call waits
    /// up to `queue_timeout`, then fails with `BACKEND_OVERLOADED`. 0 is no limit. Default 0.
    #[serde(default)]
    pub max_concurrent_calls: usize,
    /// How long a call waits for a slot past `max_concurrent_calls`. Default `"100ms"`.
    #[serde(default = "default_queue_timeout", with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// Whether identical in-flight reads share one backend call (within a request and across
    /// concurrent requests); only calls for the same caller (credential or user id, and the same
    /// forwarded headers) are shared. Default `false`.
    #[serde(default)]
    pub dedupe_reads: bool,
    /// Whether an open breaker turns `/readyz` to 503. Default `false`: a gateway with one backend
    /// down still serves the others' fields, and taking every replica out of the load balancer
    /// would turn a partial outage into a whole one.
    #[serde(default)]
    pub breaker_affects_readiness: bool,
    /// `[backends.<name>.retry]`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[backends.<name>.breaker]`.
    #[serde(default)]
    pub breaker: BreakerConfig,
}

fn default_max_streams_per_connection() -> usize {
    banyan_sources::stream_pool::DEFAULT_MAX_STREAMS_PER_CONNECTION
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_monolith() -> HttpBackendConfig {
    HttpBackendConfig {
        url: "http://127.0.0.1:8000".to_owned(),
        timeout: default_timeout(),
        connect_timeout: default_connect_timeout(),
        max_concurrent_calls: 0,
        queue_timeout: default_queue_timeout(),
        dedupe_reads: false,
        breaker_affects_readiness: false,
        retry: RetryConfig::default(),
        breaker: BreakerConfig::default(),
    }
}
fn default_propagate_headers() -> Vec<String> {
    ["x-request-id", "traceparent", "tracestate", "accept-language"].map(str::to_owned).to_vec()
}
fn default_events() -> GrpcBackendConfig {
    grpc("http://127.0.0.1:50051")
}
fn default_drafts() -> GrpcBackendConfig {
    grpc("http://127.0.0.1:50052")
}
fn grpc(url: &str) -> GrpcBackendConfig {
    GrpcBackendConfig {
        url: url.to_owned(),
        timeout: default_timeout(),
        connect_timeout: default_connect_timeout(),
        max_streams_per_connection: default_max_streams_per_connection(),
        max_concurrent_calls: 0,
        queue_timeout: default_queue_timeout(),
        dedupe_reads: false,
        breaker_affects_readiness: false,
        retry: RetryConfig::default(),
        breaker: BreakerConfig::default(),
    }
}

impl Default for BackendsConfig {
    fn default() -> Self {
        Self {
            monolith: default_monolith(),
            events: default_events(),
            drafts: default_drafts(),
            propagate_headers: default_propagate_headers(),
        }
    }
}

impl Default for HttpBackendConfig {
    fn default() -> Self {
        default_monolith()
    }
}

impl BackendsConfig {
    /// Backends at these URLs, with default deadlines.
    pub fn at(monolith: &str, events: &str, drafts: &str) -> Self {
        Self {
            monolith: HttpBackendConfig { url: monolith.to_owned(), ..default_monolith() },
            events: grpc(events),
            drafts: grpc(drafts),
            propagate_headers: default_propagate_headers(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_url("backends.monolith.url", &self.monolith.url)?;
        check_url("backends.events.url", &self.events.url)?;
        check_url("backends.drafts.url", &self.drafts.url)?;
        for name in &self.propagate_headers {
            let invalid =
                |message: String| ConfigError::Invalid { key: "backends.propagate_headers", message };
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(invalid(format!("{name:?} is not a header name")));
            }
            if banyan_sources::identity::is_identity_header(&lower) {
                return Err(invalid(format!("{name:?} could carry an identity; it is never forwarded")));
            }
            if lower != banyan_sources::identity::REQUEST_ID_HEADER
                && !banyan_sources::identity::is_forwardable_header(&lower)
            {
                return Err(invalid(format!("{name:?} belongs to the transport; it is never forwarded")));
            }
        }
        for (key, timeout) in [
            ("backends.monolith.timeout", self.monolith.timeout),
            ("backends.events.timeout", self.events.timeout),
            ("backends.drafts.timeout", self.drafts.timeout),
        ] {
            if timeout.is_zero() {
                return Err(ConfigError::Invalid { key, message: "must be more than 0".to_owned() });
            }
        }
        for (key, streams) in [
            ("backends.events.max_streams_per_connection", self.events.max_streams_per_connection),
            ("backends.drafts.max_streams_per_connection", self.drafts.max_streams_per_connection),
        ] {
            if streams == 0 {
                return Err(ConfigError::Invalid { key, message: "must be at least 1".to_owned() });
            }
        }
        for backend in self.resilience() {
            backend.validate()?;
        }
        Ok(())
    }

    /// Each backend's resilience keys, by name.
    fn resilience(&self) -> [BackendResilience<'_>; 3] {
        [
            resilience_of(
                "monolith",
                &self.monolith.retry,
                &self.monolith.breaker,
                (self.monolith.max_concurrent_calls, self.monolith.queue_timeout, self.monolith.dedupe_reads),
            ),
            resilience_of(
                "events",
                &self.events.retry,
                &self.events.breaker,
                (self.events.max_concurrent_calls, self.events.queue_timeout, self.events.dedupe_reads),
            ),
            resilience_of(
                "drafts",
                &self.drafts.retry,
                &self.drafts.breaker,
                (self.drafts.max_concurrent_calls, self.drafts.queue_timeout, self.drafts.dedupe_reads),
            ),
        ]
    }

    /// Whether an open breaker of some backend should turn `/readyz` to 503: the backends whose
    /// `breaker_affects_readiness` is set, by name.
    pub fn breakers_affecting_readiness(&self) -> Vec<&'static str> {
        [
            ("monolith", self.monolith.breaker_affects_readiness),
            ("events", self.events.breaker_affects_readiness),
            ("drafts", self.drafts.breaker_affects_readiness),
        ]
        .into_iter()
        .filter_map(|(name, affects)| affects.then_some(name))
        .collect()
    }

    /// The options the backend clients are built from (without the service identity, which
    /// `[auth]` holds: see [`AuthConfig::service_identity_keys`](super::AuthConfig::service_identity_keys)).
    pub fn sources_options(&self) -> SourcesOptions {
        let [monolith, events, drafts] = self.resilience().map(|backend| backend.options());
        let grpc = |c: &GrpcBackendConfig, resilience| GrpcOptions {
            url: c.url.clone(),
            timeout: c.timeout,
            connect_timeout: c.connect_timeout,
            max_streams_per_connection: c.max_streams_per_connection,
            resilience,
        };
        SourcesOptions {
            monolith: MonolithOptions {
                base_url: self.monolith.url.clone(),
                timeout: self.monolith.timeout,
                connect_timeout: self.monolith.connect_timeout,
                resilience: monolith,
            },
            events: grpc(&self.events, events),
            drafts: grpc(&self.drafts, drafts),
            service_identity: None,
        }
    }
}

fn resilience_of<'a>(
    name: &'static str,
    retry: &'a RetryConfig,
    breaker: &'a BreakerConfig,
    (max_concurrent_calls, queue_timeout, dedupe_reads): (usize, Duration, bool),
) -> BackendResilience<'a> {
    BackendResilience { name, retry, breaker, max_concurrent_calls, queue_timeout, dedupe_reads }
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| ConfigError::Invalid { key, message: format!("{url:?} is not a URL: {e}") })?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(ConfigError::Invalid { key, message: format!("{url:?} is not an http(s) URL with a host") }),
    }
}
