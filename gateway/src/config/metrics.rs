//! `[metrics]`: the Prometheus endpoint, `/metrics`.

use serde::{Deserialize, Serialize};

use super::{ConfigError, MIN_TOKEN_CHARS};

/// `[metrics]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` on the main listener (default true). Off, it answers 404.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// A bearer token `/metrics` asks for (`Authorization: Bearer <token>`, Prometheus's
    /// `authorization` scrape setting). Empty (the default): anyone who reaches the port may
    /// scrape, as is usual behind a cluster network policy. Set it from the environment
    /// (`BANYAN_METRICS__TOKEN`) when the port is reachable from outside.
    #[serde(default)]
    pub token: String,
}

fn default_enabled() -> bool {
    true
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, token: String::new() }
    }
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .finish()
    }
}

impl MetricsConfig {
    /// A token must be usable in a header, and long enough not to be guessed.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.token.is_empty() {
            return Ok(());
        }
        if self.token.chars().count() < MIN_TOKEN_CHARS {
            return Err(ConfigError::Invalid {
                key: "metrics.token",
                message: format!("must be at least {MIN_TOKEN_CHARS} characters (or empty for none)"),
            });
        }
        if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                key: "metrics.token",
                message: "must be printable ASCII without spaces".to_owned(),
            });
        }
        Ok(())
    }
}
