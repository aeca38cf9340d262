//! Located diagnostics shared by every module: a [`Problem`] is one message tied to a file
//! (and, where known, a line and column).

use std::fmt;

use apollo_compiler::parser::{SourceMap, SourceSpan};
use apollo_compiler::validation::DiagnosticList;
use serde::Serialize;

/// How serious a finding is.
///
/// `Error` fails the command (exit 1), `Warning` is reported but passes, `Notice` is
/// informational (used for dangerous changes no operation touches and for safe changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the check.
    Error,
    /// Reported, does not fail the check.
    Warning,
    /// Informational only.
    Notice,
}

impl Severity {
    /// The lower-case name used in every output format (`error`, `warning`, `notice`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One located diagnostic: a parse or validation error, a contract rule violation, or a
/// deprecation warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// How serious it is.
    pub severity: Severity,
    /// Stable machine name, e.g. `SYNTAX_ERROR`, `INVALID_OPERATION`, `DEPRECATED_FIELD`.
    pub code: String,
    /// Human-readable message (one line).
    pub message: String,
    /// The file, as labelled by the caller (for the contract: the directory passed to
    /// [`Contract::load`](crate::Contract::load) joined with the file's relative path).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// The contract component the file belongs to, for contract problems.
    pub component: Option<String>,
    /// The operation or fragment the problem sits in, when known.
    pub definition: Option<String>,
}

impl Problem {
    /// `file:line:col` (or as much of it as is known).
    pub fn position(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.position(), self.severity, self.message)
    }
}

/// Line and column (both 1-based) of the start of `span`, if its file is in `sources`.
pub(crate) fn line_col(sources: &SourceMap, span: Option<SourceSpan>) -> Option<(usize, usize)> {
    let lc = span?.line_column(sources)?;
    Some((lc.line, lc.column))
}

/// The path label a span's file was parsed with.
pub(crate) fn file_label(sources: &SourceMap, span: Option<SourceSpan>) -> Option<String> {
    let file = sources.get(&span?.file_id())?;
    Some(file.path().display().to_string().replace('\\', "/"))
}

/// Converts apollo-compiler diagnostics into [`Problem`]s. `default_file` is used for a
/// diagnostic without a location.
pub(crate) fn from_diagnostics(list: &DiagnosticList, code: &str, default_file: &str) -> Vec<Problem> {
    use apollo_compiler::diagnostic::ToCliReport;
    list.iter()
        .map(|d| {
            let span = d.error.location();
            let pos = line_col(d.sources, span);
            Problem {
                severity: Severity::Error,
                code: code.to_owned(),
                message: one_line(&d.error.to_string()),
                file: file_label(d.sources, span).unwrap_or_else(|| default_file.to_owned()),
                line: pos.map(|p| p.0),
                column: pos.map(|p| p.1),
                component: None,
                definition: None,
            }
        })
        .collect()
}

/// Collapses whitespace runs (including newlines) so every message fits on one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
