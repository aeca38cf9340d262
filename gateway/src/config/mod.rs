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
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
        // Defaults first, so a section that sets one key keeps the defaults of the others.
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file_exact(path))
            .merge(Env::prefixed("BANYAN_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (for tests and examples), and validates.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backends.validate()?;
        self.limits.validate()?;
        self.cors.validate()?;
        self.auth.validate()?;
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

    /// Every key, dotted (`server.listen`), from a JSON view of a config.
    fn keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value.as_object() {
            Some(object) => {
                for (key, value) in object {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    keys(value, &path, out);
                }
            }
            None => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn every_key_is_in_the_example_and_the_readme() {
        let mut expected = Vec::new();
        keys(&serde_json::to_value(Config::default()).expect("serializes"), "", &mut expected);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let example: serde_json::Value =
            Figment::from(Toml::file_exact(root.join("banyan.example.toml"))).extract().expect("parses");
        let mut in_example = Vec::new();
        keys(&example, "", &mut in_example);
        in_example.sort();
        expected.sort();
        assert_eq!(in_example, expected, "banyan.example.toml lists every key, and only those");

        let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
        for key in &expected {
            let generic = match key.split('.').collect::<Vec<_>>().as_slice() {
                [section, _, field] => format!("{section}.<name>.{field}"),
                _ => key.clone(),
            };
            assert!(
                readme.contains(&format!("`{key}`")) || readme.contains(&format!("`{generic}`")),
                "README.md documents `{key}`"
            );
        }
    }

    #[test]
    fn a_section_with_one_key_keeps_the_other_defaults() {
        let config = Config::from_toml("[backends.drafts]\ntimeout = \"2s\"\n").expect("valid");
        assert_eq!(config.backends.drafts.url, "http://127.0.0.1:50052");
        assert_eq!(config.backends.drafts.connect_timeout, std::time::Duration::from_secs(1));
    }

    #[test]
    fn durations_are_human_strings() {
        let config = Config::from_toml("[backends.events]\ntimeout = \"250ms\"\n").expect("valid");
        assert_eq!(config.backends.events.timeout.as_millis(), 250);
    }
}
