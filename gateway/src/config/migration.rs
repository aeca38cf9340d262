//! `[migration]`: the routing table that says which backend serves each migrated field, and what
//! a request may see of it or change about it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[migration]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// The routing table file (TOML; see the README's "Routing table"), polled for changes and
    /// reloaded without a restart. Default: none, every migrated field on its declared default
    /// backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_table: Option<PathBuf>,
    /// How often the routing table file is checked for changes. Default `"2s"`.
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
    /// Answer a request that sends `x-banyan-show-routing: true` with which backend served each
    /// migrated field, at which path and in which mode, under `extensions.routing`. Default
    /// `false` (`banyan dev` turns it on for every request).
    #[serde(default)]
    pub expose_routing: bool,
    /// Honour the `x-banyan-route: Template.stats=legacy, …` header, which forces a backend for
    /// one request; when off, a request that sends it is refused (403). Default `false`
    /// (`banyan dev` turns it on).
    #[serde(default)]
    pub allow_route_override: bool,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(2)
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            routing_table: None,
            reload_interval: default_reload_interval(),
            expose_routing: false,
            allow_route_override: false,
        }
    }
}

impl MigrationConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.reload_interval < Duration::from_millis(10) {
            return Err(ConfigError::Invalid {
                key: "migration.reload_interval",
                message: format!("{:?} is too short; at least 10ms", self.reload_interval),
            });
        }
        Ok(())
    }
}
