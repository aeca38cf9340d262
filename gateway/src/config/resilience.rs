//! `[backends.<name>.retry]` and `[backends.<name>.breaker]`, and the per-backend resilience keys
//! beside `timeout` (`max_concurrent_calls`, `queue_timeout`, `dedupe_reads`,
//! `breaker_affects_readiness`): how each backend is protected from its own trouble and kept from
//! multiplying it.

use std::time::Duration;

use banyan_sources::{BreakerOptions, ResilienceOptions, RetryOptions};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[backends.<name>.retry]`: retries of idempotent reads (GETs, read RPCs; never writes), on a
/// reset or refused connection, a 502/503/504 or gRPC `UNAVAILABLE` only, under a retry budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// The most retries of one call; 0 turns retries off. Default 2.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Upper bound of the first backoff, doubled per retry, with full jitter. Default `"25ms"`.
    #[serde(default = "default_initial_backoff", with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The largest backoff. Default `"250ms"`.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Retries allowed as a share of this backend's calls over `budget_window`. Default 0.1.
    #[serde(default = "default_budget_ratio")]
    pub budget_ratio: f64,
    /// Retries allowed per second of `budget_window` whatever the traffic. Default 1.
    #[serde(default = "default_budget_min_per_second")]
    pub budget_min_per_second: u32,
    /// The sliding window of the retry budget. Default `"10s"`.
    #[serde(default = "default_budget_window", with = "humantime_serde")]
    pub budget_window: Duration,
}

/// `[backends.<name>.breaker]`: the circuit breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Whether the breaker is on. Default `true`.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The share of failed calls over `window` at which it opens. Default 0.5.
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    /// The fewest calls in `window` before the rate is judged. Default 20.
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// How far back calls count. Default `"10s"`.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// How long it stays open (every field of the backend failing at once with
    /// `BACKEND_UNAVAILABLE`, no call made) before one probe call. Default `"5s"`.
    #[serde(default = "default_cool_down", with = "humantime_serde")]
    pub cool_down: Duration,
}

fn default_max_retries() -> u32 {
    2
}
fn default_initial_backoff() -> Duration {
    Duration::from_millis(25)
}
fn default_max_backoff() -> Duration {
    Duration::from_millis(250)
}
fn default_budget_ratio() -> f64 {
    0.1
}
fn default_budget_min_per_second() -> u32 {
    1
}
fn default_budget_window() -> Duration {
    Duration::from_secs(10)
}
fn default_enabled() -> bool {
    true
}
fn default_failure_rate() -> f64 {
    0.5
}
fn default_min_calls() -> u32 {
    20
}
fn default_window() -> Duration {
    Duration::from_secs(10)
}
fn default_cool_down() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn default_queue_timeout() -> Duration {
    Duration::from_millis(100)
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: default_max_retries(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            budget_ratio: default_budget_ratio(),
            budget_min_per_second: default_budget_min_per_second(),
            budget_window: default_budget_window(),
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            failure_rate: default_failure_rate(),
            min_calls: default_min_calls(),
            window: default_window(),
            cool_down: default_cool_down(),
        }
    }
}

/// The resilience keys of one backend section, borrowed for validation and conversion.
pub(super) struct BackendResilience<'a> {
    pub(super) name: &'static str,
    pub(super) retry: &'a RetryConfig,
    pub(super) breaker: &'a BreakerConfig,
    pub(super) max_concurrent_calls: usize,
    pub(super) queue_timeout: Duration,
    pub(super) dedupe_reads: bool,
}

impl BackendResilience<'_> {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
            key,
            message: format!("in [backends.{}]: {message}", self.name),
        };
        if !(0.0..=1.0).contains(&self.retry.budget_ratio) {
            return Err(invalid("backends.<name>.retry.budget_ratio", "must be between 0.0 and 1.0"));
        }
        if self.retry.budget_window.is_zero() {
            return Err(invalid("backends.<name>.retry.budget_window", "must be more than 0"));
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err(invalid(
                "backends.<name>.retry.initial_backoff",
                "must not be more than retry.max_backoff",
            ));
        }
        if !(self.breaker.failure_rate > 0.0 && self.breaker.failure_rate <= 1.0) {
            return Err(invalid(
                "backends.<name>.breaker.failure_rate",
                "must be more than 0.0 and at most 1.0",
            ));
        }
        if self.breaker.min_calls == 0 {
            return Err(invalid("backends.<name>.breaker.min_calls", "must be at least 1"));
        }
        if self.breaker.window.is_zero() || self.breaker.cool_down.is_zero() {
            return Err(invalid(
                "backends.<name>.breaker.window",
                "the window and the cool-down must be more than 0",
            ));
        }
        Ok(())
    }

    pub(super) fn options(&self) -> ResilienceOptions {
        ResilienceOptions {
            retry: RetryOptions {
                max_retries: self.retry.max_retries,
                initial_backoff: self.retry.initial_backoff,
                max_backoff: self.retry.max_backoff,
                budget_ratio: self.retry.budget_ratio,
                budget_min_per_second: self.retry.budget_min_per_second,
                budget_window: self.retry.budget_window,
            },
            breaker: BreakerOptions {
                enabled: self.breaker.enabled,
                failure_rate: self.breaker.failure_rate,
                min_calls: self.breaker.min_calls,
                window: self.breaker.window,
                cool_down: self.breaker.cool_down,
            },
            max_concurrent_calls: self.max_concurrent_calls,
            queue_timeout: self.queue_timeout,
            dedupe_reads: self.dedupe_reads,
        }
    }
}
