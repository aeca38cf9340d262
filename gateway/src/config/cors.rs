//! `[cors]`: which browser origins may call Banyan.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[cors]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call from a browser, e.g. `["https://app.example.com"]`. Default `[]`:
    /// same-origin only.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
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
