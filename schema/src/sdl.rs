//! Loading SDL: parse and validate a schema with apollo-compiler, keeping the path label so
//! every later message can point at `file:line:col`.

use std::path::Path;

use apollo_compiler::Schema;
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::validation::Valid;

use crate::problem::{self, Problem};

/// A parsed and validated schema, with the path label it was loaded under.
#[derive(Debug, Clone)]
pub struct Sdl {
    path: String,
    schema: Valid<Schema>,
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
pub fn load_sdl(path_label: &str, text: &str) -> Result<Sdl, SchemaError> {
    match Schema::parse_and_validate(text, path_label) {
        Ok(schema) => Ok(Sdl { path: path_label.to_owned(), schema }),
        Err(with_errors) => {
            let mut problems = problem::from_diagnostics(&with_errors.errors, "INVALID_SCHEMA", path_label);
            for p in &mut problems {
                if p.message.starts_with("syntax error") {
                    p.code = "SYNTAX_ERROR".to_owned();
                }
            }
            Err(SchemaError::Invalid { path: path_label.to_owned(), problems })
        }
    }
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

    /// The validated apollo-compiler schema.
    pub fn schema(&self) -> &Valid<Schema> {
        &self.schema
    }

    /// Line and column of a span in this schema's source.
    pub(crate) fn line_col(&self, span: Option<SourceSpan>) -> Option<(usize, usize)> {
        problem::line_col(&self.schema.sources, span)
    }
}
