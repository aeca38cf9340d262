//! Banyan's configuration: one struct per concern, read from a TOML file and `BANYAN_*`
//! environment variables (e.g. `BANYAN_SERVER__LISTEN=0.0.0.0:4000`), validated before anything
//! starts. Every key is documented in the README and in `banyan.example.toml`.

mod auth;
mod backends;
mod cors;
mod limits;
mod server;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

pub use auth::AuthConfig;
pub use backends::{BackendsConfig, GrpcBackendConfig, HttpBackendConfig};
pub use cors::CorsConfig;
pub use limits::LimitsConfig;
pub use server::ServerConfig;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment did not parse into the expected shape.
    #[error("{0}")]
    Parse(#[from] Box<figment::Error>),
    /// A value parsed but is not acceptable.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The dotted key at fault.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where and how to listen.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[backends]`: how to reach the monolith and the services.
    #[serde(default)]
    pub backends: BackendsConfig,
    /// `[limits]`: what one request may ask for.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[auth]`: how callers are identified.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[cors]`: which browser origins may call.
    #[serde(default)]
    pub cors: CorsConfig,
}

impl Config {
    /// Reads `path` (TOML), then `BANYAN_*` environment variables over it, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Config = Figment::new()
            .merge(Toml::file_exact(path))
            .merge(Env::prefixed("BANYAN_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (for tests and examples), and validates.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = Figment::new().merge(Toml::string(text)).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backends.validate()?;
        self.limits.validate()?;
        self.cors.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../banyan.example.toml");
        let text = std::fs::read_to_string(&path).expect("banyan.example.toml is in the repo");
        let config = Config::from_toml(&text).expect("the example config is valid");
        assert_eq!(config.server.listen.port(), 4000);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let error = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlsten = 1\n").unwrap_err();
        assert!(error.to_string().contains("lsten"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = Config::from_toml("[backends.monolith]\nurl = \"not a url\"\n").unwrap_err();
        assert!(error.to_string().contains("backends.monolith.url"), "{error}");
        let error = Config::from_toml("[limits]\nmax_depth = 0\n").unwrap_err();
        assert!(error.to_string().contains("limits.max_depth"), "{error}");
    }

    #[test]
    fn durations_are_human_strings() {
        let config = Config::from_toml("[backends.events]\ntimeout = \"250ms\"\n").expect("valid");
        assert_eq!(config.backends.events.timeout.as_millis(), 250);
    }
}
