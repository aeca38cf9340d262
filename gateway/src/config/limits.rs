//! `[limits]`: what one operation may ask for. Checked before async-graphql parses or validates
//! a document (see `crate::limits`).

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
}
