//! `[limits]`: what one operation may ask for.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[limits]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deepest selection nesting. Default `12`.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Highest complexity (each field counts 1). Default `5000`.
    #[serde(default = "default_max_complexity")]
    pub max_complexity: usize,
    /// Most aliases in one document. Default `30`.
    #[serde(default = "default_max_aliases")]
    pub max_aliases: usize,
}

fn default_max_depth() -> usize {
    12
}
fn default_max_complexity() -> usize {
    5_000
}
fn default_max_aliases() -> usize {
    30
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_depth: default_max_depth(),
            max_complexity: default_max_complexity(),
            max_aliases: default_max_aliases(),
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in
            [("limits.max_depth", self.max_depth), ("limits.max_complexity", self.max_complexity)]
        {
            if value == 0 {
                return Err(ConfigError::Invalid { key, message: "must be at least 1".to_owned() });
            }
        }
        Ok(())
    }
}
