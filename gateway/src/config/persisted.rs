//! `[persisted]`: persisted operations, Apollo's automatic persisted queries (APQ) and trusted
//! documents (see `crate::persisted`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How strictly operations must come from the trusted documents (the persisted-operations
/// manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustedDocuments {
    /// Any operation runs; the manifest only serves ids.
    Off,
    /// Any operation runs; one not in the manifest is logged (`warn`, with its SHA-256).
    LogUnknown,
    /// Only operations in the manifest run, sent by id or with the manifest's exact body;
    /// anything else is refused before any backend call.
    Enforce,
}

/// `[persisted]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedConfig {
    /// Accept Apollo's automatic persisted queries: a client registers a document with its
    /// SHA-256 and later sends the hash alone. Default `true`.
    #[serde(default = "default_apq")]
    pub apq: bool,
    /// Most bytes of registered documents (and their hashes) kept in memory; the least used go
    /// first. Default `16777216` (16 MiB).
    #[serde(default = "default_apq_max_bytes")]
    pub apq_max_bytes: u64,
    /// How long a registered document is kept. Default `"24h"`.
    #[serde(default = "default_apq_ttl", with = "humantime_serde")]
    pub apq_ttl: Duration,
    /// `off`, `log_unknown` or `enforce`. Default `"log_unknown"` (`banyan dev`: `off`).
    #[serde(default = "default_trusted_documents")]
    pub trusted_documents: TrustedDocuments,
    /// The persisted-operations manifest (`banyan contract manifest`). Default
    /// `"frontend-contract/persisted-operations.json"`.
    #[serde(default = "default_manifest")]
    pub manifest: PathBuf,
    /// `Cache-Control: max-age` of a successful query sent with `GET` by persisted id
    /// (`public` for anonymous callers, `private` for signed-in ones); a schema hint
    /// (`#[graphql(cache_control)]`) lowers it. `"0s"`: no header. Default `"0s"`.
    #[serde(default = "default_get_max_age", with = "humantime_serde")]
    pub get_max_age: Duration,
}

fn default_apq() -> bool {
    true
}
fn default_apq_max_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_apq_ttl() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}
fn default_trusted_documents() -> TrustedDocuments {
    TrustedDocuments::LogUnknown
}
fn default_manifest() -> PathBuf {
    PathBuf::from("frontend-contract/persisted-operations.json")
}
fn default_get_max_age() -> Duration {
    Duration::ZERO
}

impl Default for PersistedConfig {
    fn default() -> Self {
        Self {
            apq: default_apq(),
            apq_max_bytes: default_apq_max_bytes(),
            apq_ttl: default_apq_ttl(),
            trusted_documents: default_trusted_documents(),
            manifest: default_manifest(),
            get_max_age: default_get_max_age(),
        }
    }
}

impl PersistedConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.get_max_age.as_secs() > i32::MAX as u64 {
            return Err(ConfigError::Invalid {
                key: "persisted.get_max_age",
                message: "must be less than 68 years".to_owned(),
            });
        }
        Ok(())
    }
}
