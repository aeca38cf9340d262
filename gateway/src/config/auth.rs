//! `[auth]`: how callers are identified.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[auth]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a checked credential is trusted before the monolith is asked again. Default `"30s"`.
    #[serde(default = "default_identity_cache_ttl", with = "humantime_serde")]
    pub identity_cache_ttl: Duration,
    /// Most credentials remembered at once. Default `10000`.
    #[serde(default = "default_identity_cache_capacity")]
    pub identity_cache_capacity: u64,
    /// Name of the session cookie accepted in place of an `Authorization` header. Default `"sessionid"`.
    #[serde(default = "default_session_cookie")]
    pub session_cookie: String,
}

fn default_identity_cache_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_identity_cache_capacity() -> u64 {
    10_000
}
fn default_session_cookie() -> String {
    "sessionid".to_owned()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            identity_cache_ttl: default_identity_cache_ttl(),
            identity_cache_capacity: default_identity_cache_capacity(),
            session_cookie: default_session_cookie(),
        }
    }
}
