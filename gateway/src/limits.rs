//! What one document may ask for, checked before any recursive code sees it, as an
//! async-graphql extension so HTTP and WebSocket share it.
//!
//! The order matters, because async-graphql's parser, validation and cost analysis all recurse
//! and follow fragment spreads:
//! 1. a linear scan of the text bounds nesting of every kind (`{`, `[`, `(`: selections, lists,
//!    input objects, arguments) before the parser runs ([`check_nesting`]);
//! 2. the document is parsed (its nesting is now bounded, so the parser's recursion is too);
//! 3. one pass over the parsed document, memoised per fragment, counts what validation would
//!    walk once every fragment spread is expanded, and measures depth, so exponential fragment
//!    fan-out and cycles are refused in linear time ([`check_document`]);
//! 4. async-graphql validates the document it is handed; then the operation to run is picked
//!    (`UNKNOWN_OPERATION`, `OPERATION_NAME_REQUIRED`), its flat complexity is compared with
//!    `limits.max_complexity`, and its list-size-aware cost ([`cost`]), computed on the parsed
//!    document with the request's variables, with `limits.max_cost`: an amplifying document is
//!    refused before any resolver runs, so before any backend call;
//! 5. while a query or mutation runs, each backend call is charged to the request's budget
//!    (`limits.max_backend_calls`, a [`banyan_sources::CallBudget`] on the request's caller):
//!    past it, the fields that need another call fail with `BACKEND_CALL_BUDGET_EXCEEDED` and
//!    the rest of the response stands.
//!
//! The scan of step 1 also counts lexical tokens (`limits.max_tokens`), so a flood of tokens is
//! refused before the parser allocates anything for it; step 3 also counts root fields and
//! directives per location.
//!
//! The limits named in `limits.warn_only` ([`WarnableLimit`]) do not refuse: a request over one
//! is served, and the excess is logged (a `warn` line with the limit's name, the value and the
//! limit) and counted in [`LimitWarnings`]. Nesting, fragment expansion and cycles, and
//! introspection depth protect the gateway's own parser and validation and are always enforced.
//!
//! Depth is measured apart for introspection (`__schema`, `__type`): the standard introspection
//! query that GraphiQL and codegen send nests deeper than a data query should, so it gets its own
//! bound, plus graphql-js's rule against nesting `fields`/`interfaces`/`possibleTypes`/
//! `inputFields` three deep.

pub(crate) mod cost;

use std::any::TypeId;
use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::Registry;
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};
use banyan_resolvers::RequestScope;
use banyan_sources::CallBudget;

use crate::config::{LimitsConfig, WarnableLimit};
use crate::document_cache::{CachedDocument, DocumentCache};

/// The stable `extensions.code` of every refusal here.
pub(crate) mod codes {
    /// The document does not parse.
    pub(crate) const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    /// The document breaks a validation rule of the specification (unknown field, wrong
    /// argument type, ...).
    pub(crate) const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    /// Brackets, or selection sets through fragment spreads, nest deeper than `limits.max_nesting`.
    pub(crate) const NESTING_TOO_DEEP: &str = "NESTING_TOO_DEEP";
    /// Expanding fragment spreads gives more than `limits.max_fragment_spreads` spreads.
    pub(crate) const TOO_MANY_FRAGMENT_SPREADS: &str = "TOO_MANY_FRAGMENT_SPREADS";
    /// Expanding fragment spreads gives more than `limits.max_selections` selections.
    pub(crate) const TOO_MANY_SELECTIONS: &str = "TOO_MANY_SELECTIONS";
    /// A fragment spreads itself, directly or not.
    pub(crate) const FRAGMENT_CYCLE: &str = "FRAGMENT_CYCLE";
    /// More aliases than `limits.max_aliases`.
    pub(crate) const TOO_MANY_ALIASES: &str = "TOO_MANY_ALIASES";
    /// Fields nest deeper than `limits.max_depth`.
    pub(crate) const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    /// Introspection nests deeper than `limits.max_introspection_depth`, or nests its type lists
    /// three deep.
    pub(crate) const INTROSPECTION_TOO_DEEP: &str = "INTROSPECTION_TOO_DEEP";
    /// The complexity (each field counting 1) is above `limits.max_complexity`.
    pub(crate) const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    /// The list-size-aware cost is above `limits.max_cost`.
    pub(crate) const QUERY_TOO_COSTLY: &str = "QUERY_TOO_COSTLY";
    /// More lexical tokens than `limits.max_tokens`.
    pub(crate) const TOO_MANY_TOKENS: &str = "TOO_MANY_TOKENS";
    /// More root fields than `limits.max_root_fields`.
    pub(crate) const TOO_MANY_ROOT_FIELDS: &str = "TOO_MANY_ROOT_FIELDS";
    /// More directives on one location than `limits.max_directives_per_location`.
    pub(crate) const TOO_MANY_DIRECTIVES: &str = "TOO_MANY_DIRECTIVES";
    /// `operationName` names no operation of the document.
    pub(crate) const UNKNOWN_OPERATION: &str = "UNKNOWN_OPERATION";
    /// The document has several operations and the request names none.
    pub(crate) const OPERATION_NAME_REQUIRED: &str = "OPERATION_NAME_REQUIRED";
    /// A subscription sent over HTTP (subscriptions are served over WebSocket).
    pub(crate) const SUBSCRIPTION_OVER_HTTP: &str = "SUBSCRIPTION_OVER_HTTP";
}

/// Most validation errors reported for one document, as graphql-js's `validate` (`maxErrors`).
pub(crate) const MAX_REPORTED_ERRORS: usize = 100;

/// How many of `fields`, `interfaces`, `possibleTypes` and `inputFields` introspection may nest
/// along one path: graphql-js's `MaxIntrospectionDepthRule` refuses three.
const MAX_INTROSPECTION_LISTS: usize = 2;

/// The introspection fields of `__Type` that return lists of types or fields, whose nesting
/// multiplies the size of an introspection answer.
const INTROSPECTION_LISTS: [&str; 4] = ["fields", "interfaces", "possibleTypes", "inputFields"];

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitError {
    #[error("the document nests deeper than {max} levels")]
    NestingTooDeep { max: usize },
    #[error("a block string (`\"\"\"`) is not closed")]
    UnterminatedBlockString,
    #[error("the document expands to more than {max} fragment spreads")]
    TooManyFragmentSpreads { max: usize },
    #[error("the document expands to more than {max} selections")]
    TooManySelections { max: usize },
    #[error("fragment `{0}` spreads itself")]
    FragmentCycle(String),
    #[error("the document has {found} aliases; at most {max} are allowed")]
    TooManyAliases { found: usize, max: usize },
    #[error("the query nests {found} fields deep; at most {max} are allowed")]
    QueryTooDeep { found: usize, max: usize },
    #[error("the introspection query nests {found} fields deep; at most {max} are allowed")]
    IntrospectionTooDeep { found: usize, max: usize },
    #[error(
        "introspection nests `fields`, `interfaces`, `possibleTypes` or `inputFields` {found} deep; \
         at most {MAX_INTROSPECTION_LISTS} are allowed"
    )]
    IntrospectionListsTooDeep { found: usize },
    #[error("the query's complexity is {found}; at most {max} is allowed")]
    QueryTooComplex { found: usize, max: usize },
    #[error(
        "the query's cost, counting list sizes, is {found}; at most {max} is allowed (a list \
         multiplies what it selects by its `first` argument or its declared size)"
    )]
    QueryTooCostly { found: u64, max: u64 },
    #[error("the document has more than {max} tokens")]
    TooManyTokens { found: usize, max: usize },
    #[error("the operation selects {found} root fields; at most {max} are allowed")]
    TooManyRootFields { found: usize, max: usize },
    #[error("a location of the document carries {found} directives; at most {max} are allowed")]
    TooManyDirectives { found: usize, max: usize },
    #[error("the document has no operation named `{0}`")]
    UnknownOperation(String),
    #[error("the document has several operations: name the one to run in `operationName`")]
    OperationNameRequired,
    #[error("subscriptions are served over WebSocket (graphql-transport-ws) at /graphql, not over HTTP")]
    SubscriptionOverHttp,
}

impl LimitError {
    /// The stable `extensions.code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NestingTooDeep { .. } => codes::NESTING_TOO_DEEP,
            Self::UnterminatedBlockString => codes::GRAPHQL_PARSE_FAILED,
            Self::TooManyFragmentSpreads { .. } => codes::TOO_MANY_FRAGMENT_SPREADS,
            Self::TooManySelections { .. } => codes::TOO_MANY_SELECTIONS,
            Self::FragmentCycle(_) => codes::FRAGMENT_CYCLE,
            Self::TooManyAliases { .. } => codes::TOO_MANY_ALIASES,
            Self::QueryTooDeep { .. } => codes::QUERY_TOO_DEEP,
            Self::IntrospectionTooDeep { .. } | Self::IntrospectionListsTooDeep { .. } => {
                codes::INTROSPECTION_TOO_DEEP
            }
            Self::QueryTooComplex { .. } => codes::QUERY_TOO_COMPLEX,
            Self::QueryTooCostly { .. } => codes::QUERY_TOO_COSTLY,
            Self::TooManyTokens { .. } => codes::TOO_MANY_TOKENS,
            Self::TooManyRootFields { .. } => codes::TOO_MANY_ROOT_FIELDS,
            Self::TooManyDirectives { .. } => codes::TOO_MANY_DIRECTIVES,
            Self::UnknownOperation(_) => codes::UNKNOWN_OPERATION,
            Self::OperationNameRequired => codes::OPERATION_NAME_REQUIRED,
            Self::SubscriptionOverHttp => codes::SUBSCRIPTION_OVER_HTTP,
        }
    }

    /// The warn-only-able limit this breaks, with the value found and the limit.
    fn warnable(&self) -> Option<(WarnableLimit, u64, u64)> {
        let pair = |found: usize, max: usize| (found as u64, max as u64);
        let (limit, (found, max)) = match *self {
            Self::QueryTooDeep { found, max } => (WarnableLimit::Depth, pair(found, max)),
            Self::TooManyAliases { found, max } => (WarnableLimit::Aliases, pair(found, max)),
            Self::TooManyRootFields { found, max } => (WarnableLimit::RootFields, pair(found, max)),
            Self::QueryTooComplex { found, max } => (WarnableLimit::Complexity, pair(found, max)),
            Self::QueryTooCostly { found, max } => (WarnableLimit::Cost, (found, max)),
            Self::TooManyTokens { found, max } => (WarnableLimit::Tokens, pair(found, max)),
            Self::TooManyDirectives { found, max } => (WarnableLimit::Directives, pair(found, max)),
            _ => return None,
        };
        Some((limit, found, max))
    }

    fn into_server_error(self) -> ServerError {
        with_code(ServerError::new(self.to_string(), None), self.code())
    }
}

/// `error` with `extensions.code` set to `code`.
fn with_code(mut error: ServerError, code: &'static str) -> ServerError {
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

/// Bounds nesting of every kind in the text of a document, in one pass and before any parser:
/// `{` (selection sets, input objects), `[` (lists, list types) and `(` (arguments, variable
/// definitions). Brackets inside strings, block strings and comments do not count, as the parser
/// does not see them either. Unbalanced brackets are left for the parser to report. Each byte is
/// looked at once.
#[cfg(test)]
pub(crate) fn check_nesting(text: &str, max: usize) -> Result<(), LimitError> {
    scan_text(text, max, None).map(|_| ())
}

/// Whether `byte` continues a name, a number or `...`: such a run is one token.
fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'+' | b'.')
}

/// [`check_nesting`], and counts the document's lexical tokens as GraphQL's lexer would
/// (punctuators, names, numbers, strings, `...`; whitespace, commas and comments are not
/// tokens). With `max_tokens`, stops as soon as the count passes it, so a flood costs only its
/// first `max_tokens` tokens to refuse. Returns the count.
pub(crate) fn scan_text(
    text: &str,
    max_nesting: usize,
    max_tokens: Option<usize>,
) -> Result<usize, LimitError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut tokens = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'#') {
            tokens += 1;
            if let Some(max) = max_tokens
                && tokens > max
            {
                return Err(LimitError::TooManyTokens { found: tokens, max });
            }
        }
        match byte {
            b'#' => {
                while i < bytes.len() && !matches!(bytes[i], b'\n' | b'\r') {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                // A block string ends at the next `"""` that is not escaped as `\"""`. Without
                // one, the document is malformed (GraphQL's lexer reads `"""` greedily), though
                // async-graphql's parser would backtrack and read `""` then an ordinary string:
                // refuse it here, so the scan never has to follow that reading.
                i = block_string_end(bytes, i + 3).ok_or(LimitError::UnterminatedBlockString)?;
                continue;
            }
            b'"' => {
                // A string ends at an unescaped `"`; a line break ends it too (the parser refuses
                // the document there, so nothing after it reaches the parser's recursion).
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if i + 1 < bytes.len() && !matches!(bytes[i + 1], b'\n' | b'\r') => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\n' | b'\r' => break,
                        _ => i += 1,
                    }
                }
                continue;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(LimitError::NestingTooDeep { max: max_nesting });
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            byte if is_word_byte(byte) => {
                while i + 1 < bytes.len() && is_word_byte(bytes[i + 1]) {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(tokens)
}

/// Where the block string whose content starts at `start` ends (after its closing `"""`).
fn block_string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// Scans, parses and measures a document: the whole of steps 1 to 3 of the module docs. Limits
/// in `limits.warn_only` pass silently: for a look at a document before it is executed (the GET
/// handler's), whose execution logs and counts them.
pub(crate) fn parse_bounded(query: &str, limits: &LimitsConfig) -> Result<ExecutableDocument, ServerError> {
    parse_enforced(query, &Enforcer::new(limits, None))
}

fn parse_enforced(query: &str, enforcer: &Enforcer<'_>) -> Result<ExecutableDocument, ServerError> {
    let limits = enforcer.limits;
    let tokens_enforced = !limits.warn_only.contains(WarnableLimit::Tokens);
    let tokens = scan_text(query, limits.max_nesting, tokens_enforced.then_some(limits.max_tokens))
        .map_err(LimitError::into_server_error)?;
    enforcer
        .check(tokens > limits.max_tokens, || LimitError::TooManyTokens {
            found: tokens,
            max: limits.max_tokens,
        })
        .map_err(LimitError::into_server_error)?;
    let document = async_graphql::parser::parse_query(query)
        .map_err(|e| with_code(ServerError::from(e), codes::GRAPHQL_PARSE_FAILED))?;
    check_document_enforced(&document, enforcer).map_err(LimitError::into_server_error)?;
    Ok(document)
}

/// How many requests went over each warn-only limit, per gateway: the count behind the `warn`
/// log lines, for tests and for whoever exports metrics.
#[derive(Debug, Default)]
pub struct LimitWarnings([AtomicU64; WarnableLimit::ALL.len()]);

impl LimitWarnings {
    /// Requests served over `limit` because it is warn-only.
    pub fn count(&self, limit: WarnableLimit) -> u64 {
        self.0[limit.index()].load(Ordering::Relaxed)
    }

    fn record(&self, limit: WarnableLimit, value: u64, max: u64) {
        self.0[limit.index()].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(limit = limit.name(), value, max, "over a warn-only limit; served anyway");
    }
}

/// Applies `limits.warn_only`: an excess over a warn-only limit is recorded (when `warnings`
/// is given) and let through; any other is refused.
struct Enforcer<'a> {
    limits: &'a LimitsConfig,
    warnings: Option<&'a LimitWarnings>,
    /// Set when a warn-only limit was exceeded (and let through).
    exceeded: Cell<bool>,
}

impl<'a> Enforcer<'a> {
    fn new(limits: &'a LimitsConfig, warnings: Option<&'a LimitWarnings>) -> Self {
        Self { limits, warnings, exceeded: Cell::new(false) }
    }
}

impl Enforcer<'_> {
    /// `Ok` unless `exceeded` and the limit `error` names is enforced.
    fn check(&self, exceeded: bool, error: impl FnOnce() -> LimitError) -> Result<(), LimitError> {
        if !exceeded {
            return Ok(());
        }
        let error = error();
        match error.warnable() {
            Some((limit, value, max)) if self.limits.warn_only.contains(limit) => {
                self.exceeded.set(true);
                if let Some(warnings) = self.warnings {
                    warnings.record(limit, value, max);
                }
                Ok(())
            }
            _ => Err(error),
        }
    }
}

/// What a selection set amounts to once its fragment spreads are expanded. Counts saturate.
#[derive(Debug, Clone, Copy, Default)]
struct Measure {
    /// Fragment spreads, each expansion counted.
    spreads: usize,
    /// Fields, inline fragments and fragment spreads, each expansion counted.
    selections: usize,
    /// Selection sets nested, this one counting 1, through inline fragments and spreads.
    height: usize,
    /// Fields nested (`__typename` does not count, as in async-graphql's own depth).
    depth: usize,
    /// `INTROSPECTION_LISTS` fields nested.
    lists: usize,
    /// Were this the root selection set: the depth of its fields other than introspection...
    root_data_depth: usize,
    /// ...and of its introspection fields (`__schema`, `__type`), with their list nesting.
    root_introspection_depth: usize,
    root_introspection_lists: usize,
}

enum FragmentState {
    InProgress,
    Done(Measure),
}

struct Measurer<'a> {
    document: &'a ExecutableDocument,
    limits: &'a LimitsConfig,
    fragments: HashMap<&'a str, FragmentState>,
}

impl<'a> Measurer<'a> {
    /// Measures `set` found `level` selection sets deep (the outermost is 1). Recursion never
    /// goes deeper than `limits.max_nesting`, and each fragment is measured once.
    fn measure(&mut self, set: &'a SelectionSet, level: usize) -> Result<Measure, LimitError> {
        if level > self.limits.max_nesting {
            return Err(LimitError::NestingTooDeep { max: self.limits.max_nesting });
        }
        let mut total = Measure { height: 1, ..Measure::default() };
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let sub = if field.selection_set.node.items.is_empty() {
                        Measure::default()
                    } else {
                        self.measure(&field.selection_set.node, level + 1)?
                    };
                    let name = field.name.node.as_str();
                    let depth = if name == "__typename" { 0 } else { 1 + sub.depth };
                    let lists = sub.lists + usize::from(INTROSPECTION_LISTS.contains(&name));
                    total.add_counts(1, &sub);
                    total.height = total.height.max(1 + sub.height);
                    total.depth = total.depth.max(depth);
                    total.lists = total.lists.max(lists);
                    if matches!(name, "__schema" | "__type") {
                        total.root_introspection_depth = total.root_introspection_depth.max(depth);
                        total.root_introspection_lists = total.root_introspection_lists.max(sub.lists);
                    } else {
                        total.root_data_depth = total.root_data_depth.max(depth);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let sub = self.measure(&fragment.node.selection_set.node, level + 1)?;
                    total.add_counts(1, &sub);
                    total.merge_nested(&sub);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    // An unknown fragment is validation's to report; it expands to nothing.
                    let sub = self.fragment(name, level + 1)?.unwrap_or_default();
                    total.spreads = total.spreads.saturating_add(1);
                    total.add_counts(1, &sub);
                    total.merge_nested(&sub);
                }
            }
            self.check_counts(&total)?;
        }
        if level.saturating_add(total.height).saturating_sub(1) > self.limits.max_nesting {
            return Err(LimitError::NestingTooDeep { max: self.limits.max_nesting });
        }
        Ok(total)
    }

    /// The measure of fragment `name`'s selection set (`None` when there is no such fragment).
    fn fragment(&mut self, name: &'a str, level: usize) -> Result<Option<Measure>, LimitError> {
        let Some((key, definition)) = self.document.fragments.get_key_value(name) else {
            return Ok(None);
        };
        match self.fragments.entry(key.as_str()) {
            Entry::Occupied(entry) => match entry.get() {
                FragmentState::InProgress => return Err(LimitError::FragmentCycle(name.to_owned())),
                FragmentState::Done(measure) => {
                    let measure = *measure;
                    if level.saturating_add(measure.height).saturating_sub(1) > self.limits.max_nesting {
                        return Err(LimitError::NestingTooDeep { max: self.limits.max_nesting });
                    }
                    return Ok(Some(measure));
                }
            },
            Entry::Vacant(entry) => {
                entry.insert(FragmentState::InProgress);
            }
        }
        let measure = self.measure(&definition.node.selection_set.node, level)?;
        self.fragments.insert(key.as_str(), FragmentState::Done(measure));
        Ok(Some(measure))
    }

    fn check_counts(&self, measure: &Measure) -> Result<(), LimitError> {
        if measure.spreads > self.limits.max_fragment_spreads {
            return Err(LimitError::TooManyFragmentSpreads { max: self.limits.max_fragment_spreads });
        }
        if measure.selections > self.limits.max_selections {
            return Err(LimitError::TooManySelections { max: self.limits.max_selections });
        }
        Ok(())
    }
}

impl Measure {
    /// Adds `own` selections and the counts of a nested measure.
    fn add_counts(&mut self, own: usize, sub: &Measure) {
        self.spreads = self.spreads.saturating_add(sub.spreads);
        self.selections = self.selections.saturating_add(own).saturating_add(sub.selections);
    }

    /// Merges what an inline fragment or a spread contributes: its fields stay at this level.
    fn merge_nested(&mut self, sub: &Measure) {
        self.height = self.height.max(1 + sub.height);
        self.depth = self.depth.max(sub.depth);
        self.lists = self.lists.max(sub.lists);
        self.root_data_depth = self.root_data_depth.max(sub.root_data_depth);
        self.root_introspection_depth = self.root_introspection_depth.max(sub.root_introspection_depth);
        self.root_introspection_lists = self.root_introspection_lists.max(sub.root_introspection_lists);
    }
}

/// Step 3 of the module docs: fragment expansion, cycles, nesting through spreads, aliases,
/// depth and introspection depth, root fields and directives, in time linear in the document.
#[cfg(test)]
pub(crate) fn check_document(document: &ExecutableDocument, limits: &LimitsConfig) -> Result<(), LimitError> {
    check_document_enforced(document, &Enforcer::new(limits, None))
}

fn check_document_enforced(document: &ExecutableDocument, enforcer: &Enforcer<'_>) -> Result<(), LimitError> {
    let limits = enforcer.limits;
    let mut measurer = Measurer { document, limits, fragments: HashMap::new() };
    // Validation walks every fragment definition and every operation, each expanded: bound the
    // sum of all of them.
    let mut total = Measure::default();
    for name in document.fragments.keys() {
        let measure = measurer.fragment(name.as_str(), 1)?.unwrap_or_default();
        total.add_counts(0, &measure);
        measurer.check_counts(&total)?;
    }
    let mut operations = Vec::new();
    for (_, operation) in document.operations.iter() {
        let measure = measurer.measure(&operation.node.selection_set.node, 1)?;
        total.add_counts(0, &measure);
        measurer.check_counts(&total)?;
        operations.push(measure);
    }
    let directives = most_directives(document);
    enforcer.check(directives > limits.max_directives_per_location, || LimitError::TooManyDirectives {
        found: directives,
        max: limits.max_directives_per_location,
    })?;
    let aliases = count_aliases(document);
    enforcer.check(aliases > limits.max_aliases, || LimitError::TooManyAliases {
        found: aliases,
        max: limits.max_aliases,
    })?;
    for (_, operation) in document.operations.iter() {
        let roots = count_root_fields(document, &operation.node.selection_set.node, 0);
        enforcer.check(roots > limits.max_root_fields, || LimitError::TooManyRootFields {
            found: roots,
            max: limits.max_root_fields,
        })?;
    }
    for measure in operations {
        enforcer.check(measure.root_data_depth > limits.max_depth, || LimitError::QueryTooDeep {
            found: measure.root_data_depth,
            max: limits.max_depth,
        })?;
        if measure.root_introspection_depth > limits.max_introspection_depth {
            return Err(LimitError::IntrospectionTooDeep {
                found: measure.root_introspection_depth,
                max: limits.max_introspection_depth,
            });
        }
        if measure.root_introspection_lists > MAX_INTROSPECTION_LISTS {
            return Err(LimitError::IntrospectionListsTooDeep { found: measure.root_introspection_lists });
        }
    }
    Ok(())
}

/// Aliases as written (a fragment's count once): aliases let one request multiply an expensive
/// field past what the complexity limit sees in a single selection.
fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations = document.operations.iter().map(|(_, op)| &op.node.selection_set.node);
    let fragments = document.fragments.values().map(|f| &f.node.selection_set.node);
    operations.chain(fragments).map(count_in).sum()
}

fn count_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_in(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_in(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Root fields of an operation, through inline fragments and fragment spreads at the root
/// (cycles were refused and nesting bounded before this runs; `level` bounds it again).
fn count_root_fields(document: &ExecutableDocument, set: &SelectionSet, level: usize) -> usize {
    if level > MAX_ROOT_FRAGMENT_NESTING {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(fragment) => {
                count_root_fields(document, &fragment.node.selection_set.node, level + 1)
            }
            Selection::FragmentSpread(spread) => {
                document.fragments.get(&spread.node.fragment_name.node).map_or(0, |fragment| {
                    count_root_fields(document, &fragment.node.selection_set.node, level + 1)
                })
            }
        })
        .fold(0, usize::saturating_add)
}

/// Deepest chain of fragments followed at the root when counting root fields: above
/// `limits.max_nesting`'s ceiling, so it never cuts a document the other checks let through.
const MAX_ROOT_FRAGMENT_NESTING: usize = 128;

/// The most directives on any one location of the document as written: an operation, a
/// variable definition, a fragment definition, a field, an inline fragment or a spread.
fn most_directives(document: &ExecutableDocument) -> usize {
    fn in_set(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    field.node.directives.len().max(in_set(&field.node.selection_set.node))
                }
                Selection::InlineFragment(fragment) => {
                    fragment.node.directives.len().max(in_set(&fragment.node.selection_set.node))
                }
                Selection::FragmentSpread(spread) => spread.node.directives.len(),
            })
            .max()
            .unwrap_or(0)
    }
    let operations = document.operations.iter().map(|(_, operation)| {
        let operation = &operation.node;
        let variables = operation.variable_definitions.iter().map(|v| v.node.directives.len()).max();
        operation.directives.len().max(variables.unwrap_or(0)).max(in_set(&operation.selection_set.node))
    });
    let fragments = document
        .fragments
        .values()
        .map(|fragment| fragment.node.directives.len().max(in_set(&fragment.node.selection_set.node)));
    operations.chain(fragments).max().unwrap_or(0)
}

/// The operation a request runs, as async-graphql picks it.
pub(crate) fn select_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Result<&'a OperationDefinition, LimitError> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => Ok(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => operations
            .get(name)
            .map(|operation| &operation.node)
            .ok_or_else(|| LimitError::UnknownOperation(name.to_owned())),
        // async-graphql runs a lone operation only when the request names none.
        (DocumentOperations::Single(_), Some(name)) => Err(LimitError::UnknownOperation(name.to_owned())),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .values()
            .next()
            .map(|operation| &operation.node)
            .ok_or(LimitError::OperationNameRequired),
        (DocumentOperations::Multiple(_), None) => Err(LimitError::OperationNameRequired),
    }
}

/// The extension that applies `[limits]` to every request, over HTTP and WebSocket.
pub(crate) struct LimitsExtension {
    pub(crate) limits: LimitsConfig,
    /// Requests served over a warn-only limit, shared by every request of this gateway.
    pub(crate) warnings: Arc<LimitWarnings>,
}

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsChecker {
            limits: self.limits,
            warnings: self.warnings.clone(),
            over_http: AtomicBool::new(false),
            verdict: Mutex::new(None),
        })
    }
}

/// One request's checker (async-graphql creates the extensions per request).
struct LimitsChecker {
    limits: LimitsConfig,
    warnings: Arc<LimitWarnings>,
    /// Set by the `request` hook, which only `Schema::execute` (HTTP) runs, not the stream
    /// that WebSocket operations go through.
    over_http: AtomicBool,
    /// What `prepare_request` found out about the document, for `validation` to apply once
    /// async-graphql's own validation has passed (so spec errors are reported first).
    verdict: Mutex<Option<Verdict>>,
}

/// The operation a request runs and its cost, or why none can run.
struct Verdict {
    operation: Result<(OperationType, u64), LimitError>,
}

impl LimitsChecker {
    fn enforcer(&self) -> Enforcer<'_> {
        Enforcer::new(&self.limits, Some(&*self.warnings))
    }

    /// Steps 4 and 5 after validation: the operation, complexity, cost.
    fn after_validation(&self, complexity: usize) -> Result<(), LimitError> {
        let verdict = self.verdict.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(Verdict { operation }) = verdict else {
            return Ok(());
        };
        let (operation_type, cost) = operation?;
        if operation_type == OperationType::Subscription && self.over_http.load(Ordering::Relaxed) {
            return Err(LimitError::SubscriptionOverHttp);
        }
        let limits = &self.limits;
        let enforcer = self.enforcer();
        enforcer.check(complexity > limits.max_complexity, || LimitError::QueryTooComplex {
            found: complexity,
            max: limits.max_complexity,
        })?;
        enforcer.check(cost > limits.max_cost, || LimitError::QueryTooCostly {
            found: cost,
            max: limits.max_cost,
        })
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for LimitsChecker {
    /// Runs before async-graphql parses: hands it a document already scanned, parsed and
    /// measured, so its own parse, validation and cost analysis only see bounded documents.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let document = parse_enforced(&request.query, &self.enforcer())?;
        let operation = select_operation(&document, request.operation_name.as_deref()).map(|operation| {
            let cost = cost::operation_cost(
                &ctx.schema_env.registry,
                &document,
                operation,
                &request.variables,
                self.limits.default_list_size,
            );
            (operation.ty, cost)
        });
        if let (Ok((operation_type, _)), Some(scope)) = (&operation, request_scope(&request)) {
            limit_budget(&scope.caller.budget, *operation_type, &self.limits);
        }
        *self.verdict.lock().unwrap_or_else(PoisonError::into_inner) = Some(Verdict { operation });
        request.set_parsed_query(document);
        next.run(ctx, request).await
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        self.over_http.store(true, Ordering::Relaxed);
        next.run(ctx).await
    }

    /// Logs (and, for a warn-only budget, counts) a request that went over its budget of
    /// backend calls.
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        if let Some(scope) = ctx.data_opt::<RequestScope>() {
            after_execution(&scope.caller.budget, &self.warnings);
        }
        response
    }

    /// async-graphql computes complexity during validation (honouring any per-field cost);
    /// the limits of step 4 are applied here, after validation, so that each refusal has a code
    /// and spec errors come first. Validation errors get a code too.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(code_validation_errors)?;
        self.after_validation(result.complexity).map_err(|error| vec![error.into_server_error()])?;
        Ok(result)
    }
}

/// Gives a query or mutation its budget of backend calls; a subscription's stream lives as long
/// as its client wants, and each of its events is bounded by the cost instead.
pub(crate) fn limit_budget(budget: &CallBudget, operation_type: OperationType, limits: &LimitsConfig) {
    if matches!(operation_type, OperationType::Query | OperationType::Mutation) {
        let enforce = !limits.warn_only.contains(WarnableLimit::BackendCalls);
        budget.limit_to(limits.max_backend_calls, enforce);
    }
}

/// After a query or mutation ran: logs a request that went over its budget of backend calls
/// and, for a warn-only budget, counts it.
pub(crate) fn after_execution(budget: &CallBudget, warnings: &LimitWarnings) {
    let Some(limit) = budget.limit() else { return };
    if budget.refused() > 0 {
        tracing::warn!(
            limit = WarnableLimit::BackendCalls.name(),
            max = limit,
            refused = budget.refused(),
            "backend calls refused over the request's budget"
        );
    } else if budget.used() > limit {
        warnings.record(WarnableLimit::BackendCalls, budget.used() as u64, limit as u64);
    }
}

/// Validation errors as the gateway reports them: at most [`MAX_REPORTED_ERRORS`] (as
/// graphql-js's `validate` does: a document can break a rule once per token, and each error
/// costs the response far more bytes than its token cost the request), each with a code.
pub(crate) fn code_validation_errors(mut errors: Vec<ServerError>) -> Vec<ServerError> {
    if errors.len() > MAX_REPORTED_ERRORS {
        errors.truncate(MAX_REPORTED_ERRORS);
        errors.push(ServerError::new(
            "Too many validation errors, error limit reached. Validation aborted.",
            None,
        ));
    }
    errors
        .into_iter()
        .map(|error| match error.extensions.as_ref().and_then(|e| e.get("code")) {
            Some(_) => error,
            None => with_code(error, codes::GRAPHQL_VALIDATION_FAILED),
        })
        .collect()
}

/// What the gateway's own pipeline (`crate::pipeline`) learns of a document before execution.
pub(crate) enum Precheck {
    /// Refused by steps 1 to 3: the error to answer with, as the extension would.
    Refused(ServerError),
    /// Within every limit, as far as can be known before validation: the document (kept in the
    /// cache) and the type of the operation the request runs.
    Clean { document: Arc<CachedDocument>, operation_type: OperationType },
    /// A refusal that must come after async-graphql's validation errors (no such operation, a
    /// subscription over HTTP, complexity or cost possibly over), or a warn-only excess to log
    /// and count: the schema with the limits extension has to serve it.
    Checked,
}

/// Steps 1 to 3 (through `documents`), the operation and an upper bound of steps 4's checks,
/// with no side effect: nothing is logged or counted here, so whatever is not
/// [`Precheck::Clean`] or [`Precheck::Refused`] can be served by the extension as before.
pub(crate) fn precheck(
    query: &str,
    operation_name: Option<&str>,
    variables: &Variables,
    registry: &Registry,
    limits: &LimitsConfig,
    documents: &DocumentCache,
    over_http: bool,
) -> Precheck {
    let document = match documents.get(query) {
        Some(cached) => cached,
        None => {
            let enforcer = Enforcer::new(limits, None);
            let parsed = parse_enforced(query, &enforcer);
            if enforcer.exceeded.get() {
                return Precheck::Checked;
            }
            match parsed {
                Ok(document) => documents.insert(query, document),
                Err(error) => return Precheck::Refused(error),
            }
        }
    };
    let Ok(operation) = select_operation(&document.document, operation_name) else {
        return Precheck::Checked;
    };
    if operation.ty == OperationType::Subscription && over_http {
        return Precheck::Checked;
    }
    let cost = document.cost(registry, (operation, operation_name), variables, limits.default_list_size);
    if cost > limits.max_cost || document.complexity_bound() > limits.max_complexity {
        return Precheck::Checked;
    }
    let operation_type = operation.ty;
    Precheck::Clean { document, operation_type }
}

/// At least async-graphql's flat complexity of any operation of `document` (each field counts
/// 1, fragment spreads expanded): every field of every operation. Bounded, as step 3 bounds the
/// expansion of spreads.
pub(crate) fn complexity_bound(document: &ExecutableDocument) -> usize {
    fn in_set(document: &ExecutableDocument, set: &SelectionSet, level: usize) -> usize {
        if level > MAX_ROOT_FRAGMENT_NESTING {
            return usize::MAX;
        }
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    1usize.saturating_add(in_set(document, &field.node.selection_set.node, level + 1))
                }
                Selection::InlineFragment(fragment) => {
                    in_set(document, &fragment.node.selection_set.node, level + 1)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |fragment| in_set(document, &fragment.node.selection_set.node, level + 1)),
            })
            .fold(0, usize::saturating_add)
    }
    document
        .operations
        .iter()
        .map(|(_, operation)| in_set(document, &operation.node.selection_set.node, 1))
        .fold(0, usize::saturating_add)
}

/// The request's scope, when the caller was identified (it travels in the request's data).
fn request_scope(request: &Request) -> Option<&RequestScope> {
    request.data.get(&TypeId::of::<RequestScope>()).and_then(|data| data.downcast_ref::<RequestScope>())
}

#[cfg(test)]
mod tests;
