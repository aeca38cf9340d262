//! `[redis]`: the store replicas share (automatic persisted queries, rate-limit buckets).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[redis]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`. Empty (the default): every store is per process.
    /// Set it from the environment (`BANYAN_REDIS__URL`) when it holds a password.
    #[serde(default)]
    pub url: String,
    /// Connections to Redis per replica, each multiplexing every request's commands; commands
    /// take them in turn. Default `2`.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Deadline for opening a connection. Default `"1s"`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deadline for one command; past it the command counts as failed (and the store degrades,
    /// see the README's "Replicas"). Default `"100ms"`.
    #[serde(default = "default_command_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Prefix of every key Banyan writes, so one Redis can serve several deployments.
    /// Default `"banyan:"`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

fn default_connections() -> usize {
    2
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_command_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_key_prefix() -> String {
    "banyan:".to_owned()
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            connections: default_connections(),
            connect_timeout: default_connect_timeout(),
            command_timeout: default_command_timeout(),
            key_prefix: default_key_prefix(),
        }
    }
}

/// The URL may hold a password: never printed.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &if self.url.is_empty() { "" } else { "<redacted>" })
            .field("connections", &self.connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl RedisConfig {
    /// Whether replicas share their stores.
    pub fn is_enabled(&self) -> bool {
        !self.url.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.to_owned() });
        if self.is_enabled() {
            // The client's own parser, so what passes here connects the same way later.
            match redis::IntoConnectionInfo::into_connection_info(self.url.as_str()) {
                Ok(_) if self.url.starts_with("redis://") => {}
                // Without naming the URL: it may hold a password.
                _ => return invalid("redis.url", "must be a redis://[:password@]host:port[/db] URL"),
            }
        }
        if self.connections == 0 || self.connections > 64 {
            return invalid("redis.connections", "must be between 1 and 64");
        }
        if self.connect_timeout.is_zero() {
            return invalid("redis.connect_timeout", "must be longer than 0s");
        }
        if self.command_timeout.is_zero() {
            return invalid("redis.command_timeout", "must be longer than 0s");
        }
        Ok(())
    }
}
