//! `[auth]`: how callers are identified.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[auth]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a checked credential is trusted before the monolith is asked again. Default `"30s"`.
    #[serde(default = "default_identity_cache_ttl", with = "humantime_serde")]
    pub identity_cache_ttl: Duration,
    /// How long a credential the monolith refused (401/403) is remembered as refused, so a client
    /// retrying a bad token does not cost one check per request. Shorter than
    /// `identity_cache_ttl`, so a new credential works soon. A failing monolith is never cached.
    /// Default `"5s"`.
    #[serde(default = "default_negative_cache_ttl", with = "humantime_serde")]
    pub negative_cache_ttl: Duration,
    /// Most credentials remembered at once. Default `10000`.
    #[serde(default = "default_identity_cache_capacity")]
    pub identity_cache_capacity: u64,
    /// Name of the session cookie accepted in place of an `Authorization` header. Default `"sessionid"`.
    #[serde(default = "default_session_cookie")]
    pub session_cookie: String,
    /// Name of Django's CSRF cookie (`CSRF_COOKIE_NAME`), forwarded with a session's writes.
    /// Default `"csrftoken"`.
    #[serde(default = "default_csrf_cookie")]
    pub csrf_cookie: String,
    /// Name of Django's CSRF header (`CSRF_HEADER_NAME`), forwarded with a session's writes.
    /// Default `"X-CSRFToken"`.
    #[serde(default = "default_csrf_header")]
    pub csrf_header: String,
}

fn default_identity_cache_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_negative_cache_ttl() -> Duration {
    Duration::from_secs(5)
}
fn default_identity_cache_capacity() -> u64 {
    10_000
}
fn default_session_cookie() -> String {
    "sessionid".to_owned()
}
fn default_csrf_cookie() -> String {
    "csrftoken".to_owned()
}
fn default_csrf_header() -> String {
    "X-CSRFToken".to_owned()
}

impl AuthConfig {
    /// Cookie names must be cookie tokens and the CSRF header a header name, since both are sent
    /// on to the monolith.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let cookie_name = |key: &'static str, name: &str| {
            let token = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if token {
                Ok(())
            } else {
                Err(ConfigError::Invalid { key, message: format!("{name:?} is not a cookie name") })
            }
        };
        cookie_name("auth.session_cookie", &self.session_cookie)?;
        cookie_name("auth.csrf_cookie", &self.csrf_cookie)?;
        if http::HeaderName::from_bytes(self.csrf_header.as_bytes()).is_err() {
            return Err(ConfigError::Invalid {
                key: "auth.csrf_header",
                message: format!("{:?} is not a header name", self.csrf_header),
            });
        }
        Ok(())
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            identity_cache_ttl: default_identity_cache_ttl(),
            negative_cache_ttl: default_negative_cache_ttl(),
            identity_cache_capacity: default_identity_cache_capacity(),
            session_cookie: default_session_cookie(),
            csrf_cookie: default_csrf_cookie(),
            csrf_header: default_csrf_header(),
        }
    }
}
