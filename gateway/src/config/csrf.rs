//! `[csrf]`: the rule that keeps another site from using a browser's session cookie.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[csrf]`.
///
/// A browser attaches the session cookie to any request to this origin, including one another
/// site makes it send; it adds no `Authorization` header on its own. Another site can make a
/// browser send, without a CORS preflight, a GET or a POST with a "simple" content type
/// (`text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`, or none). So a
/// request carrying the session cookie must either have a content type that is not simple
/// (`application/json`) or carry one of `required_headers` (or Django's CSRF header,
/// `auth.csrf_header`): any of these makes the browser ask first, and CORS then decides.
/// Otherwise it is refused with 403 and `CSRF_PREVENTED`, before the identity check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfConfig {
    /// Apply the rule. Default `true`.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Headers any one of which proves the request went through a preflight (their value does
    /// not matter). Default `["x-banyan-csrf", "apollo-require-preflight",
    /// "x-apollo-operation-name"]`, so Apollo's clients work as they are.
    #[serde(default = "default_required_headers")]
    pub required_headers: Vec<String>,
}

fn default_enabled() -> bool {
    true
}
fn default_required_headers() -> Vec<String> {
    ["x-banyan-csrf", "apollo-require-preflight", "x-apollo-operation-name"].map(str::to_owned).to_vec()
}

impl Default for CsrfConfig {
    fn default() -> Self {
        Self { enabled: default_enabled(), required_headers: default_required_headers() }
    }
}

impl CsrfConfig {
    /// Every name must be a header name, and an enabled rule needs at least one, or a browser
    /// could not send a cookie-carrying GET at all.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let key = "csrf.required_headers";
        if self.enabled && self.required_headers.is_empty() {
            return Err(ConfigError::Invalid { key, message: "name at least one header".to_owned() });
        }
        for name in &self.required_headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::Invalid { key, message: format!("{name:?} is not a header name") });
            }
        }
        Ok(())
    }
}
