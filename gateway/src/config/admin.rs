//! `[admin]`: who may read `/admin/migration`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[admin]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token `/admin/*` asks for (`Authorization: Bearer <token>`). Empty (the
    /// default): `banyan serve` does not serve the admin routes at all (404). Set it from the
    /// environment (`BANYAN_ADMIN__TOKEN`) rather than in a file.
    #[serde(default)]
    pub token: String,
    /// The frontend contract folder the migration report and flip evidence read (which
    /// operations of which components select each field). Default `"frontend-contract"`; when it
    /// cannot be read, the report lists no component and a warning is logged.
    #[serde(default = "default_contract")]
    pub contract: PathBuf,
    /// Serve the admin routes without a token: `banyan dev` sets it; no file or variable can.
    #[serde(skip)]
    pub open: bool,
}

fn default_contract() -> PathBuf {
    PathBuf::from("frontend-contract")
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { token: String::new(), contract: default_contract(), open: false }
    }
}

/// Who may read the admin routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAccess {
    /// Nobody: the routes answer 404, as if they did not exist.
    Disabled,
    /// Anyone who can reach the port (`banyan dev`, on loopback).
    Open,
    /// Callers presenting this bearer token.
    Token(String),
}

impl AdminConfig {
    /// Who may read the admin routes: `banyan dev` opens them; otherwise a token is needed, and
    /// without one configured they are not served.
    pub fn access(&self) -> AdminAccess {
        if self.open {
            AdminAccess::Open
        } else if self.token.is_empty() {
            AdminAccess::Disabled
        } else {
            AdminAccess::Token(self.token.clone())
        }
    }

    /// A token must be usable in a header, and long enough not to be guessed.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.token.is_empty() {
            return Ok(());
        }
        if self.token.chars().count() < MIN_TOKEN_CHARS {
            return Err(ConfigError::Invalid {
                key: "admin.token",
                message: format!("must be at least {MIN_TOKEN_CHARS} characters (or empty to disable)"),
            });
        }
        if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                key: "admin.token",
                message: "must be printable ASCII without spaces".to_owned(),
            });
        }
        Ok(())
    }
}

/// Shortest accepted token.
pub const MIN_TOKEN_CHARS: usize = 16;

impl std::fmt::Debug for AdminConfig {
    /// The token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .field("contract", &self.contract)
            .field("open", &self.open)
            .finish()
    }
}
