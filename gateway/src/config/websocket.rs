//! `[websocket]`: what one WebSocket connection, and one caller's connections, may hold open,
//! and how a live connection is kept honest (keepalive, operation timeout, credential re-check).
//! and what one connection's socket keeps in memory (its read and write buffers, the largest
//! message). `server.websocket_init_timeout` stays in `[server]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[websocket]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Origins that may open a WebSocket besides the gateway's own and those of
    /// `cors.allowed_origins`, e.g. `["https://app.example.com"]`. An upgrade without an `Origin`
    /// header (not a browser) is allowed; from any other origin it is refused with 403, because the
    /// browser sends the session cookie with it. Default `[]`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Operations one connection may run at once; one more is answered with an `error` message
    /// (`TOO_MANY_SUBSCRIPTIONS`) and the connection stays up. Default `100`.
    #[serde(default = "default_max_subscriptions_per_connection")]
    pub max_subscriptions_per_connection: usize,
    /// Initialised connections one caller (a user, or an IP address for anonymous callers) may
    /// hold open; one more is closed with 4429. Default `50`.
    #[serde(default = "default_max_connections_per_caller")]
    pub max_connections_per_caller: usize,
    /// How often the server sends a protocol `ping`; a connection that has sent nothing (no
    /// `pong`, no other message) since the previous ping is closed with 1001. `"0s"` turns
    /// keepalive off. Default `"15s"`.
    #[serde(default = "default_keepalive_interval", with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// Deadline for a query or mutation sent over the socket (not for subscriptions); past it the
    /// operation gets a `next` with an `OPERATION_TIMEOUT` error, then `complete`, and the
    /// connection stays up. Default `"30s"`.
    #[serde(default = "default_operation_timeout", with = "humantime_serde")]
    pub operation_timeout: Duration,
    /// How often a connection's credential is checked again (through the identity cache, so at
    /// most once per `auth.identity_cache_ttl` reaches the monolith); a credential refused now
    /// closes the connection with 4403. `"0s"` turns the re-check off. Default `"1m"`.
    #[serde(default = "default_credential_recheck_interval", with = "humantime_serde")]
    pub credential_recheck_interval: Duration,
    /// Bytes each connection's socket reads at a time: its read buffer, which every open
    /// connection keeps (in full: it is zeroed before the first read). A longer message is still
    /// read, in several reads, into a buffer grown for it. tungstenite's own default, 128 KiB, is
    /// 1.25 GiB at 10,000 connections; the client sends little (`subscribe`, `pong`). At least
    /// 256. Default `4096`.
    #[serde(default = "default_read_buffer_size")]
    pub read_buffer_size: usize,
    /// Bytes of outgoing frames collected before they are written to the socket. Each message is
    /// flushed as soon as it is queued, so this only matters when several are queued together;
    /// nothing is allocated up front. `0` writes every frame at once. Default `0`.
    #[serde(default)]
    pub write_buffer_size: usize,
    /// Largest message a client may send, in bytes; a longer one closes the connection with 1009
    /// (graphql-transport-ws) or is refused by the socket (graphql-ws). Unset: `server.max_body_bytes`,
    /// as a message is bounded like a request body. At least 1024 when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
}

fn default_max_subscriptions_per_connection() -> usize {
    100
}
fn default_max_connections_per_caller() -> usize {
    50
}
fn default_keepalive_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_operation_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_credential_recheck_interval() -> Duration {
    Duration::from_secs(60)
}
/// One page: what a `subscribe` or `pong` needs, with room (BENCHMARKS.md, "Subscriptions").
fn default_read_buffer_size() -> usize {
    4096
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            max_subscriptions_per_connection: default_max_subscriptions_per_connection(),
            max_connections_per_caller: default_max_connections_per_caller(),
            keepalive_interval: default_keepalive_interval(),
            operation_timeout: default_operation_timeout(),
            credential_recheck_interval: default_credential_recheck_interval(),
            read_buffer_size: default_read_buffer_size(),
            write_buffer_size: 0,
            max_message_size: None,
        }
    }
}

impl WebSocketConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.allowed_origins {
            if origin == "*" || !origin.contains("://") || origin.ends_with('/') {
                return Err(ConfigError::Invalid {
                    key: "websocket.allowed_origins",
                    message: format!("{origin:?} is not an origin like \"https://app.example.com\""),
                });
            }
        }
        let positive = [
            ("websocket.max_subscriptions_per_connection", self.max_subscriptions_per_connection),
            ("websocket.max_connections_per_caller", self.max_connections_per_caller),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid { key, message: "must be at least 1".to_owned() });
            }
        }
        if self.read_buffer_size < 256 {
            return Err(ConfigError::Invalid {
                key: "websocket.read_buffer_size",
                message: format!("{} bytes is too small; at least 256", self.read_buffer_size),
            });
        }
        if let Some(max) = self.max_message_size
            && max < 1024
        {
            return Err(ConfigError::Invalid {
                key: "websocket.max_message_size",
                message: format!("{max} bytes is too small; at least 1024"),
            });
        }
        if self.operation_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                key: "websocket.operation_timeout",
                message: "must be longer than 0s".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn bad_websocket_values_name_their_key() {
        for (toml, key) in [
            ("[websocket]\nallowed_origins = [\"*\"]\n", "websocket.allowed_origins"),
            ("[websocket]\nallowed_origins = [\"app.example.com\"]\n", "websocket.allowed_origins"),
            (
                "[websocket]\nmax_subscriptions_per_connection = 0\n",
                "websocket.max_subscriptions_per_connection",
            ),
            ("[websocket]\nmax_connections_per_caller = 0\n", "websocket.max_connections_per_caller"),
            ("[websocket]\noperation_timeout = \"0s\"\n", "websocket.operation_timeout"),
            ("[websocket]\nread_buffer_size = 255\n", "websocket.read_buffer_size"),
            ("[websocket]\nmax_message_size = 1023\n", "websocket.max_message_size"),
        ] {
            let error = Config::from_toml(toml).expect_err(toml).to_string();
            assert!(error.contains(key), "{toml}: {error}");
        }
        let config = Config::from_toml(
            "[websocket]\nkeepalive_interval = \"0s\"\ncredential_recheck_interval = \"0s\"\n",
        )
        .expect("zero turns keepalive and the re-check off");
        assert!(config.websocket.keepalive_interval.is_zero());
        assert_eq!(config.websocket.max_connections_per_caller, 50, "the other keys keep their defaults");
    }
}
