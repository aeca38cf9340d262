//! `[cors]`: which browser origins may call Banyan.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[cors]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call from a browser, e.g. `["https://app.example.com"]`. Default `[]`:
    /// same-origin only.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// How long a browser may reuse an allowed preflight's answer (`Access-Control-Max-Age`, in
    /// whole seconds), so a page does not send an `OPTIONS` before every request. Browsers cap it
    /// (Chromium at 2h). Default `"10m"`.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
}

fn default_max_age() -> Duration {
    Duration::from_secs(600)
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), max_age: default_max_age() }
    }
}

impl CorsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.allowed_origins {
            if origin == "*" || http::HeaderValue::from_str(origin).is_err() || !origin.contains("://") {
                return Err(ConfigError::Invalid {
                    key: "cors.allowed_origins",
                    message: format!(
                        "{origin:?} is not an origin like \"https://app.example.com\" (\"*\" is refused: credentials are sent)"
                    ),
                });
            }
        }
        Ok(())
    }
}
