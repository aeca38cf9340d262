//! Banyan's configuration: one struct per concern, read from a TOML file and
//! `BANYAN_<SECTION>__<KEY>` environment variables (e.g. `BANYAN_SERVER__LISTEN=0.0.0.0:4000`),
//! validated before anything starts. Every key is documented in the README and in
//! `banyan.example.toml`.

mod admin;
mod auth;
mod backends;
mod cors;
mod csrf;
mod limits;
mod metrics;
mod migration;
mod persisted;
mod rate_limit;
mod redis;
mod resilience;
mod server;
mod subscriptions;
mod tracing;
mod websocket;

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

pub use self::tracing::TracingConfig;
pub use admin::{AdminAccess, AdminConfig, MIN_TOKEN_CHARS};
pub use auth::{AuthConfig, ServiceIdentitySecrets};
pub use backends::{BackendsConfig, GrpcBackendConfig, HttpBackendConfig};
pub use cors::CorsConfig;
pub use csrf::CsrfConfig;
pub use limits::{LimitsConfig, WarnOnly, WarnableLimit};
pub use metrics::MetricsConfig;
pub use migration::MigrationConfig;
pub use persisted::{PersistedConfig, TrustedDocuments};
pub use rate_limit::{OnStoreError, RateLimitConfig};
pub use redis::RedisConfig;
pub use resilience::{BreakerConfig, RetryConfig};
pub use server::{LogFormat, ServerConfig};
pub use subscriptions::SubscriptionsConfig;
pub use websocket::WebSocketConfig;

/// What every configuration variable's name starts with.
pub const ENV_PREFIX: &str = "BANYAN_";

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
    /// `[csrf]`: the rule against cross-site requests riding the session cookie.
    #[serde(default)]
    pub csrf: CsrfConfig,
    /// `[migration]`: the routing table of migrated fields.
    #[serde(default)]
    pub migration: MigrationConfig,
    /// `[admin]`: who may read `/admin/migration`.
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[persisted]`: automatic persisted queries and trusted documents.
    #[serde(default)]
    pub persisted: PersistedConfig,
    /// `[rate_limit]`: a token bucket per caller.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// `[websocket]`: origins, caps and keepalive of WebSocket connections.
    #[serde(default)]
    pub websocket: WebSocketConfig,
    /// `[subscriptions]`: shared upstream streams, per-subscriber buffers, reconnects.
    #[serde(default)]
    pub subscriptions: SubscriptionsConfig,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[redis]`: the store replicas share.
    #[serde(default)]
    pub redis: RedisConfig,
    /// `[tracing]`: OpenTelemetry traces over OTLP.
    #[serde(default)]
    pub tracing: TracingConfig,
}

impl Config {
    /// Reads `path` (TOML), then the `BANYAN_<SECTION>__<KEY>` environment variables over it, and
    /// validates. A `BANYAN_` variable without `__` in its name (`BANYAN_LOG`, a deployment's
    /// `BANYAN_VERSION`) is not configuration and is left alone; one with `__` names a key, and a
    /// misspelt section or key is an error that names the variable.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        // Defaults first, so a section that sets one key keeps the defaults of the others.
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file_exact(path))
            .merge(EnvOverrides::from_process())
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
        self.server.validate()?;
        self.backends.validate()?;
        self.csrf.validate()?;
        self.limits.validate()?;
        self.cors.validate()?;
        self.auth.validate()?;
        self.migration.validate()?;
        self.admin.validate()?;
        self.persisted.validate()?;
        self.rate_limit.validate()?;
        self.websocket.validate()?;
        self.subscriptions.validate()?;
        self.metrics.validate()?;
        self.redis.validate()?;
        self.tracing.validate()?;
        Ok(())
    }
}

/// The environment variables that name a configuration key: `BANYAN_<SECTION>__<KEY>`, nested
/// keys continuing with `__` (`BANYAN_BACKENDS__MONOLITH__URL`). Every key sits in a section, so
/// a variable without `__` cannot be one and is someone else's (`BANYAN_LOG` is the log filter).
struct EnvOverrides {
    env: Env,
}

impl EnvOverrides {
    fn from_process() -> Self {
        Self { env: Env::prefixed(ENV_PREFIX).filter(|key| key.as_str().contains("__")).split("__") }
    }
}

impl Provider for EnvOverrides {
    /// Names a key in an error as the variable that set it (`BANYAN_SERVER__LISTN`), not as
    /// figment's dotted path.
    fn metadata(&self) -> Metadata {
        Metadata::named("the environment").interpolater(|_: &Profile, keys: &[&str]| {
            let name: Vec<String> = keys.iter().map(|key| key.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", name.join("__"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.env.data()
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
                [section, _, rest @ ..] if !rest.is_empty() => format!("{section}.<name>.{}", rest.join(".")),
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

    /// Runs `check` on `Config::load` of `toml` with exactly the environment variables `vars`
    /// (the rest of the process's environment cleared), in a jail: the environment is
    /// process-global, and figment's `Jail` runs one such test at a time and restores it after.
    #[allow(clippy::result_large_err)] // figment::Jail's closure returns figment's own Result
    fn load_with_env(toml: &str, vars: &[(&str, &str)], check: impl FnOnce(Result<Config, ConfigError>)) {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (name, value) in vars {
                jail.set_env(name, value);
            }
            let path = jail.directory().join("banyan.toml");
            std::fs::write(&path, toml).map_err(|e| e.to_string())?;
            check(Config::load(&path));
            Ok(())
        });
    }

    #[test]
    fn banyan_variables_that_name_no_key_are_not_configuration() {
        let vars = [("BANYAN_LOG", "debug"), ("BANYAN_VERSION", "1.2.3"), ("BANYAN_BIN", "/usr/bin/banyan")];
        load_with_env("[server]\nlisten = \"127.0.0.1:4100\"\n", &vars, |loaded| {
            let config = loaded.expect("BANYAN_LOG, BANYAN_VERSION and BANYAN_BIN are not config keys");
            assert_eq!(config.server.listen, "127.0.0.1:4100".parse().expect("an address"));
        });
    }

    #[test]
    fn section_key_variables_override_the_file() {
        let vars = [
            ("BANYAN_LOG", "debug"),
            ("BANYAN_SERVER__LISTEN", "0.0.0.0:4200"),
            ("BANYAN_SERVER__LOG_FORMAT", "json"),
            ("BANYAN_BACKENDS__MONOLITH__URL", "http://monolith:8000"),
            ("BANYAN_LIMITS__MAX_DEPTH", "7"),
            ("banyan_auth__session_cookie", "sid"),
            ("BANYAN_CORS__ALLOWED_ORIGINS", "[\"https://app.example.com\"]"),
            ("BANYAN_CORS__MAX_AGE", "1h 30m"),
            ("BANYAN_AUTH__NEGATIVE_CACHE_TTL", "2s"),
            ("BANYAN_AUTH__STALE_ON_ERROR", "1m"),
            (
                "BANYAN_AUTH__SERVICE_IDENTITY_SECRETS",
                "[\"new-secret-0123456789abcdef0123456789\", \"old-secret-0123456789abcdef0123456789\"]",
            ),
            ("BANYAN_BACKENDS__PROPAGATE_HEADERS", "[\"traceparent\"]"),
        ];
        let toml = "[server]\nlisten = \"127.0.0.1:4100\"\ngraphiql = false\n[limits]\nmax_depth = 3\n";
        load_with_env(toml, &vars, |loaded| {
            let config = loaded.expect("valid overrides");
            assert_eq!(config.server.listen, "0.0.0.0:4200".parse().expect("an address"));
            assert_eq!(config.server.log_format, LogFormat::Json);
            assert!(!config.server.graphiql, "keys the environment does not set keep the file's value");
            assert_eq!(config.backends.monolith.url, "http://monolith:8000");
            assert_eq!(config.backends.monolith.timeout, std::time::Duration::from_secs(5), "default kept");
            assert_eq!(config.limits.max_depth, 7);
            assert_eq!(config.auth.session_cookie, "sid");
            assert_eq!(config.cors.allowed_origins, ["https://app.example.com"]);
            assert_eq!(config.cors.max_age, std::time::Duration::from_secs(5400));
            assert_eq!(config.auth.negative_cache_ttl, std::time::Duration::from_secs(2));
            assert_eq!(config.auth.stale_on_error, std::time::Duration::from_secs(60));
            assert_eq!(config.auth.service_identity_secrets.0.len(), 2);
            assert!(config.auth.service_identity_keys().is_some());
            assert_eq!(config.backends.propagate_headers, ["traceparent"]);
        });
    }

    #[test]
    fn a_misspelt_variable_is_an_error_that_names_it() {
        // (variable, the misspelt part, how the error names the variable: up to the misspelling)
        for (variable, misspelt, named) in [
            ("BANYAN_SERVER__LISTN", "listn", "\"BANYAN_SERVER__LISTN\""),
            ("BANYAN_BACKENDS__MONOLITH__ULR", "ulr", "\"BANYAN_BACKENDS__MONOLITH__ULR\""),
            ("BANYAN_SERVR__LISTEN", "servr", "\"BANYAN_SERVR\""),
        ] {
            load_with_env("", &[(variable, "127.0.0.1:1"), ("BANYAN_LOG", "debug")], |loaded| {
                let error = loaded.expect_err("a misspelt key is refused").to_string();
                assert!(error.contains(&format!("unknown field: found `{misspelt}`")), "{variable}: {error}");
                assert!(error.contains(named), "the error names {variable}: {error}");
            });
        }
    }

    #[test]
    fn a_bad_value_from_the_environment_names_its_key() {
        load_with_env("", &[("BANYAN_LIMITS__MAX_DEPTH", "0")], |loaded| {
            let error = loaded.expect_err("max_depth 0 is refused").to_string();
            assert!(error.contains("limits.max_depth"), "{error}");
        });
    }

    #[test]
    fn the_admin_token_comes_from_the_environment_and_is_never_in_debug_output() {
        let token = "an-admin-token-of-32-characters!";
        load_with_env("", &[("BANYAN_ADMIN__TOKEN", token)], |loaded| {
            let config = loaded.expect("a valid token");
            assert_eq!(config.admin.access(), AdminAccess::Token(token.to_owned()));
            assert!(!format!("{config:?}").contains(token), "the token is redacted");
        });
        load_with_env("", &[], |loaded| {
            assert_eq!(loaded.expect("valid").admin.access(), AdminAccess::Disabled);
        });
        load_with_env("", &[("BANYAN_ADMIN__TOKEN", "short")], |loaded| {
            let error = loaded.expect_err("a short token is refused").to_string();
            assert!(error.contains("admin.token"), "{error}");
        });
        // `open` is for `banyan dev` alone: no file sets it.
        let error = Config::from_toml("[admin]\nopen = true\n").expect_err("not a key");
        assert!(error.to_string().contains("open"), "{error}");
    }

    #[test]
    fn durations_are_human_strings() {
        let config = Config::from_toml("[backends.events]\ntimeout = \"250ms\"\n").expect("valid");
        assert_eq!(config.backends.events.timeout.as_millis(), 250);
    }
}
