//! Loading SDL: parse and validate a schema with apollo-compiler, keeping the path label so
//! every later message can point at `file:line:col`.

use std::path::Path;

use apollo_compiler::ast::{DirectiveDefinition, DirectiveLocation};
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{Node, Schema, name};
use sha2::{Digest, Sha256};

use crate::problem::{self, Problem, Severity};

/// A parsed and validated schema, with the path label it was loaded under.
#[derive(Debug, Clone)]
pub struct Sdl {
    path: String,
    schema: Valid<Schema>,
    hash: String,
}

/// Why an SDL file could not be loaded. The CLI maps every variant to exit code 2
/// ([`EXIT_INPUT_ERROR`](crate::EXIT_INPUT_ERROR)).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text does not parse, or does not validate, as a GraphQL schema.
    #[error("{path} is not a valid GraphQL schema:\n{}", render_problems(problems))]
    Invalid {
        /// The path label.
        path: String,
        /// Every parse and validation error, each with `file:line:col`.
        problems: Vec<Problem>,
    },
}

impl SchemaError {
    /// The located problems (empty for an I/O error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            SchemaError::Io { .. } => &[],
            SchemaError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// Parses and validates `text` as SDL. `path_label` names the file in every message (use the
/// path relative to the repository root so GitHub annotations resolve).
///
/// `@oneOf` (built in since the September 2025 GraphQL specification) is known even when the
/// text does not define it, and its rules are checked: every field of a oneOf input object is
/// nullable and has no default.
pub fn load_sdl(path_label: &str, text: &str) -> Result<Sdl, SchemaError> {
    let invalid = |errors: &DiagnosticList| {
        let mut problems = problem::from_diagnostics(errors, "INVALID_SCHEMA", path_label);
        for p in &mut problems {
            if p.message.starts_with("syntax error") {
                p.code = "SYNTAX_ERROR".to_owned();
            }
        }
        SchemaError::Invalid { path: path_label.to_owned(), problems }
    };
    let mut schema = Schema::parse(text, path_label).map_err(|with_errors| invalid(&with_errors.errors))?;
    if !schema.directive_definitions.contains_key("oneOf") {
        schema.directive_definitions.insert(name!("oneOf"), one_of_definition());
    }
    let schema = schema.validate().map_err(|with_errors| invalid(&with_errors.errors))?;
    let one_of_problems = one_of_rules(&schema, path_label);
    if !one_of_problems.is_empty() {
        return Err(SchemaError::Invalid { path: path_label.to_owned(), problems: one_of_problems });
    }
    Ok(Sdl { path: path_label.to_owned(), schema, hash: schema_hash(text) })
}

/// `directive @oneOf on INPUT_OBJECT`, as the specification defines it.
fn one_of_definition() -> Node<DirectiveDefinition> {
    Node::new(DirectiveDefinition {
        description: Some(
            "Indicates exactly one field must be supplied and this field must not be `null`.".into(),
        ),
        name: name!("oneOf"),
        arguments: Vec::new(),
        repeatable: false,
        locations: vec![DirectiveLocation::InputObject],
    })
}

/// Whether an input object type is a oneOf input object.
pub(crate) fn is_one_of(ty: &ExtendedType) -> bool {
    matches!(ty, ExtendedType::InputObject(io) if io.directives.has("oneOf"))
}

/// The specification's rules for oneOf input objects: each field nullable, none with a default.
fn one_of_rules(schema: &Schema, path_label: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (type_name, ty) in &schema.types {
        let ExtendedType::InputObject(io) = ty else { continue };
        if !is_one_of(ty) {
            continue;
        }
        for (field_name, field) in &io.fields {
            let why = if field.ty.is_non_null() {
                "must be nullable"
            } else if field.default_value.is_some() {
                "must not have a default value"
            } else {
                continue;
            };
            let pos = problem::line_col(&schema.sources, field.name.location());
            problems.push(Problem {
                severity: Severity::Error,
                code: "INVALID_SCHEMA".to_owned(),
                message: format!("`{type_name}.{field_name}` is a field of a @oneOf input object: it {why}"),
                file: path_label.to_owned(),
                line: pos.map(|p| p.0),
                column: pos.map(|p| p.1),
                component: None,
                definition: Some(type_name.to_string()),
            });
        }
    }
    problems
}

/// The hash that keys accepted changes to a base schema: `sha256:` and the lowercase hex
/// SHA-256 of the SDL text normalised so that only meaningful bytes count: a leading UTF-8
/// byte-order mark is dropped, `\r\n` and `\r` become `\n`, trailing spaces and tabs are
/// removed from every line, trailing empty lines are removed, and the text ends with exactly
/// one `\n`. (So `git show`, which drops the final newline, and a checkout agree.)
pub fn schema_hash(text: &str) -> String {
    // Streamed into the hasher line by line (no copies of the text): empty lines are held back
    // until a non-empty one follows, so trailing ones drop out.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut hasher = Sha256::new();
    let mut newlines_due = 0usize;
    for line in text_lines(text) {
        let line = line.trim_end_matches([' ', '\t']);
        if line.is_empty() {
            newlines_due += 1;
            continue;
        }
        for _ in 0..newlines_due {
            hasher.update(b"\n");
        }
        hasher.update(line.as_bytes());
        newlines_due = 1;
    }
    hasher.update(b"\n");
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The lines of `text`, ended by `\r\n`, `\r` or `\n` (the last one may be unterminated, and
/// is yielded even when empty, as `split` does).
fn text_lines(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let rest = &bytes[start..];
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                let line = &text[start..start + i];
                let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
                start += i + if crlf { 2 } else { 1 };
                Some(line)
            }
            None => {
                done = true;
                Some(&text[start..])
            }
        }
    })
}

/// Reads `path` and calls [`load_sdl`] with the path as its label.
pub fn load_sdl_file(path: impl AsRef<Path>) -> Result<Sdl, SchemaError> {
    let path = path.as_ref();
    let label = path.display().to_string().replace('\\', "/");
    let text =
        std::fs::read_to_string(path).map_err(|source| SchemaError::Io { path: label.clone(), source })?;
    load_sdl(&label, &text)
}

impl Sdl {
    /// The path label the schema was loaded under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// [`schema_hash`] of the text the schema was loaded from.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The validated apollo-compiler schema.
    pub fn schema(&self) -> &Valid<Schema> {
        &self.schema
    }

    /// Line and column of a span in this schema's source.
    pub(crate) fn line_col(&self, span: Option<SourceSpan>) -> Option<(usize, usize)> {
        problem::line_col(&self.schema.sources, span)
    }
}
