//! `[limits]`: what one operation may ask for. Checked before async-graphql parses or validates
//! a document (see `crate::limits`), except the budget of backend calls, counted while it runs.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The limits `limits.warn_only` may name: over one of them, a request is served, and the
/// excess logged and counted. The others protect the gateway's own parser and validation and
/// are always enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarnableLimit {
    /// `limits.max_depth`.
    Depth,
    /// `limits.max_aliases`.
    Aliases,
    /// `limits.max_root_fields`.
    RootFields,
    /// `limits.max_complexity`.
    Complexity,
    /// `limits.max_cost`.
    Cost,
    /// `limits.max_backend_calls`.
    BackendCalls,
    /// `limits.max_tokens`.
    Tokens,
    /// `limits.max_directives_per_location`.
    Directives,
}

impl WarnableLimit {
    /// Every one, in a fixed order (the order of counters).
    pub const ALL: [WarnableLimit; 8] = [
        Self::Depth,
        Self::Aliases,
        Self::RootFields,
        Self::Complexity,
        Self::Cost,
        Self::BackendCalls,
        Self::Tokens,
        Self::Directives,
    ];

    /// The name `limits.warn_only` uses, also the `limit` field of the warning log line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Depth => "depth",
            Self::Aliases => "aliases",
            Self::RootFields => "root_fields",
            Self::Complexity => "complexity",
            Self::Cost => "cost",
            Self::BackendCalls => "backend_calls",
            Self::Tokens => "tokens",
            Self::Directives => "directives",
        }
    }

    /// Its place in [`WarnableLimit::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A set of [`WarnableLimit`]s, written in config as a list of names (`["cost", "depth"]`); an
/// unknown name is a configuration error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<WarnableLimit>", into = "Vec<WarnableLimit>")]
pub struct WarnOnly(u16);

impl WarnOnly {
    /// Whether `limit` is in the set.
    pub fn contains(self, limit: WarnableLimit) -> bool {
        self.0 & (1 << limit.index()) != 0
    }
}

impl From<Vec<WarnableLimit>> for WarnOnly {
    fn from(limits: Vec<WarnableLimit>) -> Self {
        Self(limits.into_iter().fold(0, |set, limit| set | (1 << limit.index())))
    }
}

impl From<WarnOnly> for Vec<WarnableLimit> {
    fn from(set: WarnOnly) -> Self {
        WarnableLimit::ALL.into_iter().filter(|limit| set.contains(*limit)).collect()
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deepest nesting of fields, not counting introspection. Default `12`.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Deepest nesting of fields under `__schema` or `__type`; the standard introspection query
    /// (graphql-js's `getIntrospectionQuery`, every option on) nests 15 deep. Default `20`.
    #[serde(default = "default_max_introspection_depth")]
    pub max_introspection_depth: usize,
    /// Highest complexity (each field counts 1). Default `5000`.
    #[serde(default = "default_max_complexity")]
    pub max_complexity: usize,
    /// Most aliases in one document. Default `30`.
    #[serde(default = "default_max_aliases")]
    pub max_aliases: usize,
    /// Deepest nesting of brackets in the document's text (selection sets, arguments, lists,
    /// input objects), and of selection sets through fragment spreads. Default `32`.
    #[serde(default = "default_max_nesting")]
    pub max_nesting: usize,
    /// Most fragment spreads once every spread is expanded. Default `1000`.
    #[serde(default = "default_max_fragment_spreads")]
    pub max_fragment_spreads: usize,
    /// Most selections (fields, fragment spreads, inline fragments) once every spread is
    /// expanded, over all operations and fragments. Default `10000`.
    #[serde(default = "default_max_selections")]
    pub max_selections: usize,
    /// Highest cost, counted before execution with list sizes: a field costs 1, and a list
    /// multiplies what it selects by its size (its `first` argument, else its declared size,
    /// else `default_list_size`). Default `20000`.
    #[serde(default = "default_max_cost")]
    pub max_cost: u64,
    /// The size assumed for a list field with no `first` argument and no declared size.
    /// Default `10`.
    #[serde(default = "default_default_list_size")]
    pub default_list_size: u64,
    /// Most backend calls one query or mutation may make while it runs (a DataLoader batch, or
    /// one page of a REST list, is one call); fields past it fail with
    /// `BACKEND_CALL_BUDGET_EXCEEDED`. Default `250`.
    #[serde(default = "default_max_backend_calls")]
    pub max_backend_calls: usize,
    /// Most lexical tokens in a document, counted before parsing. Default `15000`.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Most fields at the root of the operation, through fragments. Default `20`.
    #[serde(default = "default_max_root_fields")]
    pub max_root_fields: usize,
    /// Most directives on one field, fragment, operation or variable. Default `10`.
    #[serde(default = "default_max_directives_per_location")]
    pub max_directives_per_location: usize,
    /// Limits that log and count instead of refusing: any of `depth`, `aliases`,
    /// `root_fields`, `complexity`, `cost`, `backend_calls`, `tokens`, `directives`.
    /// Default `[]`.
    #[serde(default)]
    pub warn_only: WarnOnly,
}

fn default_max_depth() -> usize {
    12
}
fn default_max_introspection_depth() -> usize {
    20
}
fn default_max_complexity() -> usize {
    5_000
}
fn default_max_aliases() -> usize {
    30
}
fn default_max_nesting() -> usize {
    32
}
fn default_max_fragment_spreads() -> usize {
    1_000
}
fn default_max_selections() -> usize {
    10_000
}
fn default_max_cost() -> u64 {
    20_000
}
fn default_default_list_size() -> u64 {
    10
}
fn default_max_backend_calls() -> usize {
    250
}
fn default_max_tokens() -> usize {
    15_000
}
fn default_max_root_fields() -> usize {
    20
}
fn default_max_directives_per_location() -> usize {
    10
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_depth: default_max_depth(),
            max_introspection_depth: default_max_introspection_depth(),
            max_complexity: default_max_complexity(),
            max_aliases: default_max_aliases(),
            max_nesting: default_max_nesting(),
            max_fragment_spreads: default_max_fragment_spreads(),
            max_selections: default_max_selections(),
            max_cost: default_max_cost(),
            default_list_size: default_default_list_size(),
            max_backend_calls: default_max_backend_calls(),
            max_tokens: default_max_tokens(),
            max_root_fields: default_max_root_fields(),
            max_directives_per_location: default_max_directives_per_location(),
            warn_only: WarnOnly::default(),
        }
    }
}

/// Above this, the parser's recursion could exhaust a worker thread's stack.
const NESTING_CEILING: usize = 128;

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("limits.max_depth", self.max_depth),
            ("limits.max_introspection_depth", self.max_introspection_depth),
            ("limits.max_complexity", self.max_complexity),
            ("limits.max_nesting", self.max_nesting),
            ("limits.max_selections", self.max_selections),
            ("limits.max_backend_calls", self.max_backend_calls),
            ("limits.max_tokens", self.max_tokens),
            ("limits.max_root_fields", self.max_root_fields),
            ("limits.max_cost", usize::try_from(self.max_cost).unwrap_or(usize::MAX)),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid { key, message: "must be at least 1".to_owned() });
            }
        }
        if self.max_nesting > NESTING_CEILING {
            return Err(ConfigError::Invalid {
                key: "limits.max_nesting",
                message: format!("must be at most {NESTING_CEILING}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_below_what_the_stack_can_take() {
        let at_ceiling = LimitsConfig { max_nesting: NESTING_CEILING, ..LimitsConfig::default() };
        assert!(at_ceiling.validate().is_ok());
        let above = LimitsConfig { max_nesting: NESTING_CEILING + 1, ..LimitsConfig::default() };
        let error = above.validate().expect_err("refused");
        assert!(error.to_string().contains("limits.max_nesting"), "{error}");
        let zero = LimitsConfig { max_selections: 0, ..LimitsConfig::default() };
        assert!(zero.validate().expect_err("refused").to_string().contains("limits.max_selections"));
    }

    #[test]
    fn warn_only_takes_known_names_only() {
        let parse = |text: &str| {
            figment::Figment::from(<figment::providers::Toml as figment::providers::Format>::string(text))
                .extract::<LimitsConfig>()
                .map_err(Box::new)
        };
        let config = parse("warn_only = [\"cost\", \"depth\"]").expect("known names");
        assert!(config.warn_only.contains(WarnableLimit::Cost));
        assert!(config.warn_only.contains(WarnableLimit::Depth));
        assert!(!config.warn_only.contains(WarnableLimit::Aliases));
        let error = parse("warn_only = [\"cost\", \"nesting\"]").expect_err("nesting is always enforced");
        assert!(error.to_string().contains("unknown variant: found `nesting`"), "{error}");
        let every: Vec<&str> = WarnableLimit::ALL.iter().map(|limit| limit.name()).collect();
        let all = parse(&format!("warn_only = {every:?}")).expect("every name");
        assert!(WarnableLimit::ALL.iter().all(|limit| all.warn_only.contains(*limit)));
    }
}
