//! `[subscriptions]`: how GraphQL subscriptions share the event store's streams
//! (`banyan_sources::fanout`): one upstream `StreamEvents` stream per distinct set of templates,
//! a bounded buffer per subscriber, and reconnecting a shared stream that fails.

use std::time::Duration;

use banyan_sources::FanoutOptions;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[subscriptions]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// Subscribers of the same set of templates share one upstream `StreamEvents` stream, opened
    /// with the gateway's own signed identity (the event store checks that a call came through
    /// the gateway and leaves visibility to it). `false` opens one stream per subscription with
    /// its caller's identity, for an event store that authorises each user. Default `true`.
    #[serde(default = "default_share_upstream")]
    pub share_upstream: bool,
    /// graphql-transport-ws subscribers of the same operation share one execution, when its
    /// payload cannot depend on the caller (no `afterSequence`, a selection of
    /// caller-independent `EmailEvent` fields): each subscriber is checked on its own (limits,
    /// arguments, visibility, re-checks) and keeps only its buffer, and one execution per
    /// distinct operation resolves and serializes each event once. Needs `share_upstream`.
    /// `false` runs one execution per subscriber. Default `true`.
    #[serde(default = "default_share_execution")]
    pub share_execution: bool,
    /// Events buffered for one subscriber that reads slower than they come. When it is full, the
    /// subscription delivers what the buffer holds, then ends with `SUBSCRIBER_TOO_SLOW`
    /// (`extensions.lastSequence`: the last sequence delivered) and `complete`; the others never
    /// wait for it. Default `256`.
    #[serde(default = "default_subscriber_buffer")]
    pub subscriber_buffer: usize,
    /// Failed attempts in a row (no event between them) to reopen a shared stream before its
    /// subscribers get the failure's code (`BACKEND_UNAVAILABLE`, `BACKEND_TIMEOUT`) and
    /// `complete`. Default `5`.
    #[serde(default = "default_reconnect_attempts")]
    pub reconnect_attempts: u32,
    /// The wait before reopening a shared stream that failed, doubled after each further failure
    /// up to 5s; it resumes after the last sequence it forwarded. Default `"100ms"`.
    #[serde(default = "default_reconnect_backoff", with = "humantime_serde")]
    pub reconnect_backoff: Duration,
}

fn default_share_upstream() -> bool {
    true
}
fn default_share_execution() -> bool {
    true
}
fn default_subscriber_buffer() -> usize {
    256
}
fn default_reconnect_attempts() -> u32 {
    5
}
fn default_reconnect_backoff() -> Duration {
    Duration::from_millis(100)
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        Self {
            share_upstream: default_share_upstream(),
            share_execution: default_share_execution(),
            subscriber_buffer: default_subscriber_buffer(),
            reconnect_attempts: default_reconnect_attempts(),
            reconnect_backoff: default_reconnect_backoff(),
        }
    }
}

impl SubscriptionsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.subscriber_buffer == 0 {
            return Err(ConfigError::Invalid {
                key: "subscriptions.subscriber_buffer",
                message: "must be at least 1".to_owned(),
            });
        }
        if self.reconnect_backoff.is_zero() {
            return Err(ConfigError::Invalid {
                key: "subscriptions.reconnect_backoff",
                message: "must be longer than 0s".to_owned(),
            });
        }
        Ok(())
    }

    /// The options of the events client's fan-out.
    pub fn fanout_options(&self) -> FanoutOptions {
        FanoutOptions {
            share_upstream: self.share_upstream,
            subscriber_buffer: self.subscriber_buffer,
            reconnect_attempts: self.reconnect_attempts,
            reconnect_backoff: self.reconnect_backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn bad_subscription_values_name_their_key() {
        for (toml, key) in [
            ("[subscriptions]\nsubscriber_buffer = 0\n", "subscriptions.subscriber_buffer"),
            ("[subscriptions]\nreconnect_backoff = \"0s\"\n", "subscriptions.reconnect_backoff"),
        ] {
            let error = Config::from_toml(toml).expect_err(toml);
            assert!(error.to_string().contains(key), "{toml}: {error}");
        }
    }
}
