//! `[tracing]`: OpenTelemetry traces exported over OTLP/gRPC (off by default). See the README's
//! "Tracing" section for the spans and their attributes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Export traces (default false). Off, no span is built and a client's `traceparent` goes
    /// to the backends unchanged.
    #[serde(default)]
    pub enabled: bool,
    /// The OTLP/gRPC collector (default `http://127.0.0.1:4317`, an OpenTelemetry Collector or
    /// agent beside the gateway).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// `service.name` of the spans (default `banyan`).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// The share of traces the gateway starts that are sampled, 0.0 to 1.0 (default 1.0). A
    /// request whose `traceparent` says sampled or not is followed (parent-based sampling).
    #[serde(default = "default_sampling_ratio")]
    pub sampling_ratio: f64,
    /// Put the operation's text on its span as `graphql.document` (default false: documents can
    /// be large and hold literals).
    #[serde(default)]
    pub include_document: bool,
    /// A span per resolved field (default false: they cost CPU on every field of every request).
    #[serde(default)]
    pub field_spans: bool,
    /// How long one export to the collector may take (default "10s"); spans wait in a bounded
    /// queue meanwhile, and are dropped when it is full, never blocking a request.
    #[serde(default = "default_export_timeout", with = "humantime_serde")]
    pub export_timeout: Duration,
}

fn default_endpoint() -> String {
    "http://127.0.0.1:4317".to_owned()
}

fn default_service_name() -> String {
    "banyan".to_owned()
}

fn default_sampling_ratio() -> f64 {
    1.0
}

fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: default_endpoint(),
            service_name: default_service_name(),
            sampling_ratio: default_sampling_ratio(),
            include_document: false,
            field_spans: false,
            export_timeout: default_export_timeout(),
        }
    }
}

impl TracingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(ConfigError::Invalid {
                key: "tracing.sampling_ratio",
                message: format!("must be between 0.0 and 1.0, not {}", self.sampling_ratio),
            });
        }
        let scheme_ok = self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://");
        if !scheme_ok || self.endpoint.parse::<http::Uri>().is_err() {
            return Err(ConfigError::Invalid {
                key: "tracing.endpoint",
                message: format!("must be an http:// or https:// URL, not {:?}", self.endpoint),
            });
        }
        if self.endpoint.starts_with("https://") {
            return Err(ConfigError::Invalid {
                key: "tracing.endpoint",
                message: "TLS to the collector is not built in: use http:// to a local collector or agent"
                    .to_owned(),
            });
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "tracing.service_name",
                message: "must not be empty".to_owned(),
            });
        }
        if self.export_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                key: "tracing.export_timeout",
                message: "must be more than 0".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let invalid = |config: TracingConfig| match config.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        };
        assert_eq!(
            invalid(TracingConfig { sampling_ratio: 1.5, ..TracingConfig::default() }),
            "tracing.sampling_ratio"
        );
        assert_eq!(
            invalid(TracingConfig { endpoint: "127.0.0.1:4317".to_owned(), ..TracingConfig::default() }),
            "tracing.endpoint"
        );
        assert_eq!(
            invalid(TracingConfig { service_name: " ".to_owned(), ..TracingConfig::default() }),
            "tracing.service_name"
        );
        assert!(TracingConfig::default().validate().is_ok());
        assert!(!TracingConfig::default().enabled, "off by default");
    }
}
