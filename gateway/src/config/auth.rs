//! `[auth]`: how callers are identified.

use std::time::Duration;

use banyan_sources::ServiceIdentityKeys;
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
    /// How long past `identity_cache_ttl` a caller whose credential the monolith accepted keeps
    /// being served while the monolith's `/me/` fails (unreachable, timing out, 5xx). Never
    /// applies to a credential the monolith refused. Default `"0s"`: off, so a revoked credential
    /// stops working after `identity_cache_ttl` whatever the monolith's health; turn it on
    /// (`"60s"`) to ride out short monolith blips, accepting that a credential revoked during
    /// one keeps working until the window ends.
    #[serde(default, with = "humantime_serde")]
    pub stale_on_error: Duration,
    /// The secrets that sign the caller's identity to the gRPC services (HMAC-SHA256 over user
    /// id, expiry and request id; see the README, "Identity to services"). The first signs; every
    /// one is accepted by services that verify with the same list, for rotation. Each at least
    /// 32 bytes. Set it from the environment (`BANYAN_AUTH__SERVICE_IDENTITY_SECRETS='["…"]'`),
    /// not in a file. Default `[]`: `banyan serve` refuses to start without one (`banyan dev`
    /// makes a random one and gives it to its stand-ins).
    #[serde(default)]
    pub service_identity_secrets: ServiceIdentitySecrets,
    /// How long a signed identity stays valid after the gateway signs it (per call, so this
    /// covers clock skew and one call's deadline, not a request's length). Default `"60s"`.
    #[serde(default = "default_service_identity_ttl", with = "humantime_serde")]
    pub service_identity_ttl: Duration,
}

/// The service-identity secrets: a list of strings that never shows in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceIdentitySecrets(pub Vec<String>);

impl std::fmt::Debug for ServiceIdentitySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} redacted]", self.0.len())
    }
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
fn default_service_identity_ttl() -> Duration {
    banyan_sources::service_identity::DEFAULT_TTL
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
        if !self.service_identity_secrets.0.is_empty() {
            ServiceIdentityKeys::new(&self.service_identity_secrets.0).map_err(|e| ConfigError::Invalid {
                key: "auth.service_identity_secrets",
                message: e.to_string(),
            })?;
        }
        if self.service_identity_ttl < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                key: "auth.service_identity_ttl",
                message: "must be at least 1s (expiry is in whole seconds)".to_owned(),
            });
        }
        if http::HeaderName::from_bytes(self.csrf_header.as_bytes()).is_err() {
            return Err(ConfigError::Invalid {
                key: "auth.csrf_header",
                message: format!("{:?} is not a header name", self.csrf_header),
            });
        }
        Ok(())
    }
}

impl AuthConfig {
    /// The keys that sign the caller's identity to the services; `None` when no secret is set.
    pub fn service_identity_keys(&self) -> Option<ServiceIdentityKeys> {
        let keys = ServiceIdentityKeys::new(&self.service_identity_secrets.0).ok()?;
        Some(keys.with_ttl(self.service_identity_ttl))
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
            stale_on_error: Duration::ZERO,
            service_identity_secrets: ServiceIdentitySecrets::default(),
            service_identity_ttl: default_service_identity_ttl(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn service_identity_secrets_are_checked_and_never_printed() {
        let secret = "a-service-identity-secret-of-32-bytes";
        let config = Config::from_toml(&format!("[auth]\nservice_identity_secrets = [\"{secret}\"]\n"))
            .expect("a long secret");
        assert!(config.auth.service_identity_keys().is_some());
        assert!(!format!("{config:?}").contains(secret), "the secret is redacted");
        let error = Config::from_toml("[auth]\nservice_identity_secrets = [\"short\"]\n").expect_err("short");
        assert!(error.to_string().contains("auth.service_identity_secrets"), "{error}");
        assert!(Config::default().auth.service_identity_keys().is_none(), "no secret by default");
        let error = Config::from_toml("[auth]\nservice_identity_ttl = \"500ms\"\n").expect_err("too short");
        assert!(error.to_string().contains("auth.service_identity_ttl"), "{error}");
    }
}
