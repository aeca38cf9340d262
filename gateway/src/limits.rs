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
//! 4. async-graphql validates the document it is handed; its complexity is then compared with
//!    the limit.
//!
//! Depth is measured apart for introspection (`__schema`, `__type`): the standard introspection
//! query that GraphiQL and codegen send nests deeper than a data query should, so it gets its own
//! bound, plus graphql-js's rule against nesting `fields`/`interfaces`/`possibleTypes`/
//! `inputFields` three deep.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult};

use crate::config::LimitsConfig;

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
    /// The complexity is above `limits.max_complexity`.
    pub(crate) const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
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
        }
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
pub(crate) fn check_nesting(text: &str, max: usize) -> Result<(), LimitError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
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
                if depth > max {
                    return Err(LimitError::NestingTooDeep { max });
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
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

/// Scans, parses and measures a document: the whole of steps 1 to 3 of the module docs.
pub(crate) fn parse_bounded(query: &str, limits: &LimitsConfig) -> Result<ExecutableDocument, ServerError> {
    check_nesting(query, limits.max_nesting).map_err(LimitError::into_server_error)?;
    let document = async_graphql::parser::parse_query(query)
        .map_err(|e| with_code(ServerError::from(e), codes::GRAPHQL_PARSE_FAILED))?;
    check_document(&document, limits).map_err(LimitError::into_server_error)?;
    Ok(document)
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
/// depth and introspection depth, in time linear in the document.
pub(crate) fn check_document(document: &ExecutableDocument, limits: &LimitsConfig) -> Result<(), LimitError> {
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
    let aliases = count_aliases(document);
    if aliases > limits.max_aliases {
        return Err(LimitError::TooManyAliases { found: aliases, max: limits.max_aliases });
    }
    for measure in operations {
        if measure.root_data_depth > limits.max_depth {
            return Err(LimitError::QueryTooDeep { found: measure.root_data_depth, max: limits.max_depth });
        }
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

/// The extension that applies `[limits]` to every request, over HTTP and WebSocket.
pub(crate) struct LimitsExtension {
    pub(crate) limits: LimitsConfig,
}

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsChecker { limits: self.limits })
    }
}

struct LimitsChecker {
    limits: LimitsConfig,
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
        let document = parse_bounded(&request.query, &self.limits)?;
        request.set_parsed_query(document);
        next.run(ctx, request).await
    }

    /// async-graphql computes complexity during validation (honouring any per-field cost);
    /// the limit is applied here so that its refusal has a code. Validation errors get one too.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|mut errors| {
            // As graphql-js's `validate` does: a document can break a rule once per token, and
            // each error costs the response far more bytes than its token cost the request.
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
                .collect::<Vec<_>>()
        })?;
        if result.complexity > self.limits.max_complexity {
            let error =
                LimitError::QueryTooComplex { found: result.complexity, max: self.limits.max_complexity };
            return Err(vec![error.into_server_error()]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests;
