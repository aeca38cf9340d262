//! `[server]`: where Banyan listens and how it treats a request as a whole.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:4000`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serve GraphiQL to browsers on `GET /graphql`. Default `false` (`banyan dev` turns it on).
    #[serde(default)]
    pub graphiql: bool,
    /// Answer introspection (`__schema`, `__type`) to every caller. Off, only a caller sending
    /// `x-banyan-admin-token: <admin.token>` may introspect; others get `INTROSPECTION_DISABLED`.
    /// `__typename` always works. Default `false` (`banyan dev` turns it on).
    #[serde(default)]
    pub introspection: bool,
    /// Let validation errors propose names ("Did you mean …?"), which spell out the schema to a
    /// caller who may not introspect. Default `false` (`banyan dev` turns it on).
    #[serde(default)]
    pub suggestions: bool,
    /// Open a `tracing` span per resolved field (async-graphql's `Tracing` extension: spans
    /// `request`, `parse`, `validation`, `execute` and one per field, at `info` under the
    /// `async_graphql` target). It wraps every field's resolution, so it costs CPU on every
    /// request even when the log filter drops the spans (`BENCHMARKS.md`). Default `false`.
    #[serde(default)]
    pub field_spans: bool,
    /// Most parsed documents kept, keyed by their text, so a repeated query is neither parsed
    /// nor measured against the limits again (`0` turns the cache off). Only documents within
    /// every limit are kept, and only texts up to 16 KiB. Default `1000`.
    #[serde(default = "default_document_cache_size")]
    pub document_cache_size: u64,
    /// Where GraphiQL's page loads GraphiQL and React from: empty (the default), the gateway
    /// serves them itself under `/graphql/assets/` (built in, so GraphiQL works with no
    /// internet); or the base URL of an unpkg-style npm CDN or mirror
    /// (`<base>/graphiql@4.1.2/graphiql.min.js`), which the page's Content-Security-Policy then
    /// allows.
    #[serde(default)]
    pub graphiql_cdn: String,
    /// Deadline for a whole HTTP request (not for WebSocket connections). Default `"30s"`.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes. Default `1048576` (1 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a WebSocket may stay open before sending `connection_init`. Default `"10s"`.
    #[serde(default = "default_websocket_init_timeout", with = "humantime_serde")]
    pub websocket_init_timeout: Duration,
    /// How long, once shutdown begins, Banyan keeps serving with `/readyz` answering 503 before
    /// it stops accepting connections, so load balancers stop sending traffic first. Default
    /// `"0s"`.
    #[serde(default = "default_shutdown_delay", with = "humantime_serde")]
    pub shutdown_delay: Duration,
    /// How long a shutdown waits for requests in flight. Default `"10s"`.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long a client has to send a request's headers, counted from when the server starts
    /// waiting for them (on a kept-alive connection, from the end of the previous response); a
    /// slower client is disconnected, so slow-header clients cannot hold connections open. It
    /// also bounds how long a kept-alive HTTP/1 connection may sit idle: behind a load balancer
    /// that reuses connections, keep it above the balancer's idle timeout. Default `"30s"`.
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Most connections open at once (WebSockets included); a connection beyond it is closed as
    /// soon as it is accepted. Default `10000`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most requests handled at once; a request beyond it is answered at once with 503,
    /// `SERVER_BUSY` and `Retry-After`, rather than queued (`/healthz` and `/readyz` are not
    /// counted). Default `1000`.
    #[serde(default = "default_max_in_flight_requests")]
    pub max_in_flight_requests: usize,
    /// Most HTTP operations executing at once; the others wait their turn (within their
    /// deadline) instead of building their responses side by side. Each execution in flight holds
    /// its whole response tree and its loaders' results (about 0.3 MiB for a page of 50
    /// templates), so the bound caps memory under a burst. It also caps throughput at this many
    /// divided by a request's time in its backends: raise it when the backends are slow. Default
    /// `64`.
    #[serde(default = "default_max_concurrent_executions")]
    pub max_concurrent_executions: usize,
    /// How log lines are written to stderr: `"text"` (for people; coloured only on a terminal)
    /// or `"json"` (one object per line, for log collectors). Default `"text"`.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// `server.log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colour only when stderr is a terminal and `NO_COLOR` is unset.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's fields,
    /// and the spans it happened in.
    Json,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_websocket_init_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_shutdown_delay() -> Duration {
    Duration::ZERO
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_in_flight_requests() -> usize {
    1000
}
fn default_max_concurrent_executions() -> usize {
    64
}
fn default_document_cache_size() -> u64 {
    1000
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}

impl ServerConfig {
    /// Caps must let something through.
    pub(super) fn validate(&self) -> Result<(), super::ConfigError> {
        let positive = |key: &'static str, value: usize| {
            if value == 0 {
                Err(super::ConfigError::Invalid { key, message: "must be at least 1".to_owned() })
            } else {
                Ok(())
            }
        };
        positive("server.max_connections", self.max_connections)?;
        positive("server.max_in_flight_requests", self.max_in_flight_requests)?;
        positive("server.max_concurrent_executions", self.max_concurrent_executions)?;
        if !self.graphiql_cdn.is_empty() && crate::graphiql::cdn_origin(&self.graphiql_cdn).is_none() {
            return Err(super::ConfigError::Invalid {
                key: "server.graphiql_cdn",
                message: format!("{:?} is not an http(s) URL", self.graphiql_cdn),
            });
        }
        if self.header_read_timeout.is_zero() {
            return Err(super::ConfigError::Invalid {
                key: "server.header_read_timeout",
                message: "must be longer than 0s".to_owned(),
            });
        }
        Ok(())
    }

    /// What `banyan dev` shows a developer on loopback: GraphiQL, introspection and suggestions.
    pub fn open_for_development(&mut self) {
        self.graphiql = true;
        self.introspection = true;
        self.suggestions = true;
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            graphiql: false,
            introspection: false,
            suggestions: false,
            field_spans: false,
            document_cache_size: default_document_cache_size(),
            graphiql_cdn: String::new(),
            request_timeout: default_request_timeout(),
            max_body_bytes: default_max_body_bytes(),
            websocket_init_timeout: default_websocket_init_timeout(),
            shutdown_delay: default_shutdown_delay(),
            shutdown_grace: default_shutdown_grace(),
            header_read_timeout: default_header_read_timeout(),
            max_connections: default_max_connections(),
            max_in_flight_requests: default_max_in_flight_requests(),
            max_concurrent_executions: default_max_concurrent_executions(),
            log_format: LogFormat::default(),
        }
    }
}
