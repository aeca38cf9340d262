//! The migration engine as the gateway runs it: built at start-up from `[migration]`, its routing
//! table watched for the server's life, and each request's routing (table snapshot, subject,
//! override header, whether to say who served) read from the request.

use std::path::Path;
use std::sync::Arc;

use banyan_migration::table::{Mode, StickyKey};
use banyan_migration::{
    Catalog, CatalogError, ContractIndex, Engine, LiveTable, LoadError, Overrides, RecorderConfig,
    RequestSubject, ShadowRecorder, TableWatcher,
};
use banyan_resolvers::{RequestRouting, ServedLog};
use banyan_sources::Caller;
use http::StatusCode;

use crate::config::MigrationConfig;

/// Forces a backend for one request: `x-banyan-route: Template.stats=legacy, Template.draft=service`.
/// Honoured when `migration.allow_route_override` is on (always in `banyan dev`).
pub const ROUTE_OVERRIDE_HEADER: &str = "x-banyan-route";

/// Asks for `extensions.routing` in the response: `x-banyan-show-routing: true`. Honoured when
/// `migration.expose_routing` is on; `banyan dev` answers with it always.
pub const SHOW_ROUTING_HEADER: &str = "x-banyan-show-routing";

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum MigrationStartError {
    /// The declarations contradict themselves (a bug in `banyan_migration::banyan`).
    #[error("the migrated-field declarations are inconsistent: {0}")]
    Catalog(#[from] CatalogError),
    /// The routing table file cannot be read, or is invalid (each problem with its file:line).
    #[error("{0}")]
    Table(#[from] LoadError),
}

/// The engine and the watcher that keeps its table current; the watcher stops when dropped.
pub(crate) struct MigrationRuntime {
    pub(crate) engine: Engine,
    pub(crate) watcher: Option<TableWatcher>,
}

/// Builds the engine: the table from `migration.routing_table` (every field on its declared
/// default without one), polled every `migration.reload_interval`; flips are checked against
/// `contract` (which contract operations select each field). Needs a Tokio runtime.
pub(crate) fn start(
    config: &MigrationConfig,
    contract: &ContractIndex,
) -> Result<MigrationRuntime, MigrationStartError> {
    let catalog = Arc::new(Catalog::banyan()?);
    let Some(path) = &config.routing_table else {
        tracing::info!("no migration.routing_table: every migrated field on its declared default backend");
        return Ok(MigrationRuntime {
            engine: crate::admin::default_engine(catalog, contract),
            watcher: None,
        });
    };
    let recorder = Arc::new(ShadowRecorder::new(catalog, RecorderConfig::default()));
    let live = LiveTable::from_file(path, recorder, Arc::new(contract.clone()))?;
    let watcher = live.watch(path.clone(), config.reload_interval);
    tracing::info!(path = %path.display(), interval = ?config.reload_interval, "routing table loaded and watched");
    Ok(MigrationRuntime { engine: Engine::new(live), watcher: Some(watcher) })
}

/// What the request's headers (or a WebSocket's upgrade headers and `connection_init` payload)
/// ask of the routing, checked against the configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoutingAsk {
    /// Forced backends.
    pub(crate) overrides: Overrides,
    /// Whether the response says who served.
    pub(crate) show: bool,
}

/// A routing header the request may not send, or that does not parse.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RoutingAskError {
    /// The override header is sent but overrides are off.
    #[error("the {ROUTE_OVERRIDE_HEADER} header is not allowed here (migration.allow_route_override is off)")]
    OverrideNotAllowed,
    /// The override header does not parse.
    #[error("the {ROUTE_OVERRIDE_HEADER} header: {0}")]
    BadOverride(#[from] banyan_migration::OverrideError),
}

impl RoutingAskError {
    /// The HTTP status and `extensions.code` of the refusal.
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::OverrideNotAllowed => (StatusCode::FORBIDDEN, "ROUTE_OVERRIDE_NOT_ALLOWED"),
            Self::BadOverride(_) => (StatusCode::BAD_REQUEST, "BAD_ROUTE_OVERRIDE"),
        }
    }
}

/// How this process treats the routing headers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoutingPolicy {
    /// `migration.expose_routing`.
    pub(crate) expose_on_request: bool,
    /// `banyan dev`: every response says who served.
    pub(crate) expose_always: bool,
    /// `migration.allow_route_override`.
    pub(crate) allow_override: bool,
}

impl RoutingPolicy {
    /// Reads the routing headers through `header` (a lowercase name to its value).
    pub(crate) fn ask<'h>(
        &self,
        catalog: &Catalog,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> Result<RoutingAsk, RoutingAskError> {
        let overrides = match header(ROUTE_OVERRIDE_HEADER) {
            None => Overrides::none(),
            Some(_) if !self.allow_override => return Err(RoutingAskError::OverrideNotAllowed),
            Some(text) => Overrides::parse(text, catalog)?,
        };
        let asked = header(SHOW_ROUTING_HEADER)
            .is_some_and(|value| !matches!(value.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"));
        Ok(RoutingAsk { overrides, show: self.expose_always || (self.expose_on_request && asked) })
    }
}

/// The routing of one request (or WebSocket operation) by `caller`: one snapshot of the table,
/// and the subject it decides for (`request_id` draws shadow samples; headers a canary's sticky
/// key names are copied). Returns the log of who served when the response should say so.
pub(crate) fn request_routing<'h>(
    engine: &Engine,
    caller: &Caller,
    request_id: String,
    ask: RoutingAsk,
    header: impl Fn(&str) -> Option<&'h str>,
) -> (RequestRouting, Option<ServedLog>) {
    let table = engine.live.snapshot();
    let headers = table
        .routes()
        .filter_map(|route| match &route.mode {
            Mode::Canary { sticky: StickyKey::Header(name), .. } => {
                header(name).map(|value| (name.clone(), value.to_owned()))
            }
            _ => None,
        })
        .collect();
    let subject = RequestSubject { user_id: Some(caller.user_id.to_string()), request_id, headers };
    let routing = RequestRouting::new(table, subject, ask.overrides);
    if ask.show {
        let log = ServedLog::default();
        (routing.noting_into(log.clone()), Some(log))
    } else {
        (routing, None)
    }
}

/// `extensions.routing`: who served each migrated field since the last answer, ordered by path
/// (added to a response only when it resolved one).
pub(crate) fn routing_extension(log: &ServedLog) -> async_graphql::Value {
    serde_json::to_value(log.take())
        .ok()
        .and_then(|json| async_graphql::Value::from_json(json).ok())
        .unwrap_or(async_graphql::Value::Null)
}

/// The routing table `banyan dev` starts with: every migrated field on its declared default,
/// written to `dir/routing.toml` so a developer can edit it and watch the gateway reload it.
pub fn write_dev_routing_table(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let catalog = Catalog::banyan().map_err(std::io::Error::other)?;
    let mut text = String::from(
        "# banyan dev's routing table: edit and save; the gateway reloads it within a second.\n\
         # Modes: legacy, service, canary (percent = N), shadow (primary = \"legacy\"|\"service\").\n\
         # See the README's \"Routing table\" for every key.\n",
    );
    for field in catalog.fields() {
        text.push_str(&format!(
            "\n# {}\n[fields.\"{}\"]\nmode = \"{}\"\n",
            field.description, field.key, field.default_backend
        ));
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("routing.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::banyan().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn overrides_are_refused_unless_allowed_and_must_parse() {
        let header = |value: &'static str| move |name: &str| (name == ROUTE_OVERRIDE_HEADER).then_some(value);
        let closed = RoutingPolicy::default();
        assert!(matches!(
            closed.ask(&catalog(), header("Template.stats=legacy")),
            Err(RoutingAskError::OverrideNotAllowed)
        ));
        let open = RoutingPolicy { allow_override: true, ..RoutingPolicy::default() };
        let ask = open.ask(&catalog(), header("Template.stats=legacy")).unwrap_or_else(|e| panic!("{e}"));
        let stats = catalog().key("Template.stats").unwrap_or_else(|| panic!("declared"));
        assert_eq!(ask.overrides.get(stats), Some(banyan_migration::Backend::Legacy));
        assert!(!ask.show);
        let error = open.ask(&catalog(), header("Template.nope=legacy")).err();
        assert_eq!(error.map(|e| e.status_and_code().1), Some("BAD_ROUTE_OVERRIDE"));
    }

    #[test]
    fn routing_is_shown_when_asked_and_allowed_or_always_in_dev() {
        let asking = |name: &str| (name == SHOW_ROUTING_HEADER).then_some("true");
        let silent = |_: &str| None;
        let show = |policy: RoutingPolicy, header: &dyn Fn(&str) -> Option<&'static str>| {
            policy.ask(&catalog(), header).map(|ask| ask.show).unwrap_or_else(|e| panic!("{e}"))
        };
        let on_request = RoutingPolicy { expose_on_request: true, ..RoutingPolicy::default() };
        let always = RoutingPolicy { expose_always: true, ..RoutingPolicy::default() };
        assert!(!show(RoutingPolicy::default(), &asking));
        assert!(show(on_request, &asking));
        assert!(!show(on_request, &silent));
        assert!(show(always, &silent));
    }

    #[test]
    fn the_dev_table_parses_and_routes_every_field_to_its_default() {
        let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_dev_routing_table(&scratch.path().join("dev")).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let catalog = catalog();
        let table =
            banyan_migration::RoutingTable::parse(&text, "dev", &catalog).unwrap_or_else(|e| panic!("{e}"));
        assert!(table.same_routes(&banyan_migration::RoutingTable::defaults(&catalog)));
        assert_eq!(table.routes().count(), catalog.keys().count());
    }
}
