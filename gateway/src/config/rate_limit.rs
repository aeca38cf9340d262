//! `[rate_limit]`: a token bucket per caller (see `crate::rate_limit`).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[rate_limit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Limit each caller's request rate. Off by default: behind a proxy that is not listed in
    /// `trusted_proxies`, every request would share the proxy's bucket. Default `false`.
    #[serde(default)]
    pub enabled: bool,
    /// Steady rate each caller's bucket refills at, in requests per second (fractions allowed:
    /// `0.5` is one request every two seconds). Default `20.0`.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: f64,
    /// Requests a caller may send at once, above the steady rate (the bucket's size).
    /// Default `100`.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Proxies (addresses or CIDR blocks, e.g. `["10.0.0.0/8"]`) whose `X-Forwarded-For` is
    /// believed: the client is the rightmost address in it that is not one of them. From any
    /// other peer the header is ignored. Default `[]`.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Most callers tracked at once; beyond it the least recently seen are forgotten (a
    /// forgotten caller starts with a full bucket). Default `100000`.
    #[serde(default = "default_max_callers")]
    pub max_callers: u64,
    /// With `[redis]` set, what a request gets when Redis cannot answer: `"allow"` (the
    /// default: rate limiting fails open, the API stays up) or `"deny"` (fails closed: 429).
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

/// What the rate limit does when its shared store fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Admit the request.
    #[default]
    Allow,
    /// Refuse it, as over the limit.
    Deny,
}

fn default_requests_per_second() -> f64 {
    20.0
}
fn default_burst() -> u32 {
    100
}
fn default_max_callers() -> u64 {
    100_000
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
            trusted_proxies: Vec::new(),
            max_callers: default_max_callers(),
            on_store_error: OnStoreError::default(),
        }
    }
}

impl RateLimitConfig {
    /// The trusted proxies, parsed; a bare address is a one-address block.
    pub fn trusted_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::Invalid {
                        key: "rate_limit.trusted_proxies",
                        message: format!("{entry:?} is not an address or a CIDR block like \"10.0.0.0/8\""),
                    })
            })
            .collect()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(ConfigError::Invalid {
                key: "rate_limit.requests_per_second",
                message: "must be a positive number".to_owned(),
            });
        }
        if self.burst == 0 {
            return Err(ConfigError::Invalid {
                key: "rate_limit.burst",
                message: "must be at least 1".to_owned(),
            });
        }
        if self.max_callers == 0 {
            return Err(ConfigError::Invalid {
                key: "rate_limit.max_callers",
                message: "must be at least 1".to_owned(),
            });
        }
        self.trusted_networks().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("[rate_limit]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "rate_limit.trusted_proxies"),
            ("[rate_limit]\ntrusted_proxies = [\"proxy.internal\"]\n", "rate_limit.trusted_proxies"),
            ("[rate_limit]\nrequests_per_second = 0.0\n", "rate_limit.requests_per_second"),
            ("[rate_limit]\nburst = 0\n", "rate_limit.burst"),
            ("[persisted]\ntrusted_documents = \"strict\"\n", "trusted_documents"),
        ] {
            let error = Config::from_toml(toml).expect_err(toml).to_string();
            assert!(error.contains(key), "{toml}: {error}");
        }
        let config = Config::from_toml(
            "[rate_limit]\nenabled = true\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.1\", \"::1\"]\n\
             [persisted]\ntrusted_documents = \"enforce\"\n",
        )
        .expect("valid");
        assert_eq!(config.rate_limit.trusted_networks().map(|n| n.len()).ok(), Some(3));
        assert_eq!(config.persisted.trusted_documents, crate::config::TrustedDocuments::Enforce);
    }
}
