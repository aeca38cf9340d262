//! Rendering of [`CheckReport`] and [`ValidationReport`]: text for people (ANSI colour only on
//! request), JSON for machines, GitHub workflow commands (annotations), Markdown for a PR
//! comment.
//!
//! # JSON shape of a check report (`format: "banyan-schema-check"`, `version: 1`)
//!
//! ```json
//! {
//!   "format": "banyan-schema-check",
//!   "version": 1,
//!   "old_schema": "base.graphql",
//!   "new_schema": "schema/schema.graphql",
//!   "strict": false,
//!   "exit_code": 1,
//!   "summary": {
//!     "breaking": 1, "dangerous": 1, "safe": 2,
//!     "breaking_touching_operations": 1, "dangerous_touching_operations": 1,
//!     "errors": 1, "warnings": 1, "operation_errors": 0, "operations": 3,
//!     "accepted": 0, "unused_acceptances": 0
//!   },
//!   "changes": [
//!     {
//!       "level": "breaking",                 // breaking | dangerous | safe
//!       "kind": "FIELD_REMOVED",             // stable machine name (ChangeKind)
//!       "coordinate": "Template.stats",      // schema coordinate
//!       "message": "Field `Template.stats` was removed.",
//!       "impact": "the operation selects `Template.stats`; it no longer validates",
//!       "location": {"side": "old", "file": "base.graphql", "line": 12, "column": 3},
//!       "anchor": {"side": "new", "file": "schema/schema.graphql", "line": 10, "column": 6},
//!       "severity": "error",                 // error | warning | notice
//!       "operations": [
//!         {"component": "TemplateList", "operation": "ListTemplates",
//!          "operation_type": "query",
//!          "file": "frontend-contract/TemplateList/ListTemplates.graphql",
//!          "line": 5, "column": 7}
//!       ],
//!       "accepted": null                     // or {"file", "line", "reason"}: let through
//!     }
//!   ],
//!   "accepted_file": "schema/accepted-changes.toml",   // or null
//!   "unused_acceptances": [                  // entries that applied to no change (warnings)
//!     {"base": "sha256:…", "coordinate": "Query.me", "kind": "FIELD_CHANGED_KIND",
//!      "reason": "…", "file": "schema/accepted-changes.toml", "line": 4,
//!      "why": "stale"}                       // stale (another base) | unmatched
//!   ],
//!   "operation_errors": [
//!     {"severity": "error", "code": "INVALID_OPERATION", "message": "...",
//!      "file": "frontend-contract/A/B.graphql", "line": 3, "column": 5,
//!      "component": "A", "definition": "B"}
//!   ]
//! }
//! ```
//!
//! `location` and `anchor` may be `null`; `line`/`column`/`component`/`definition` of a
//! problem may be `null`. Keys are never omitted. New keys may be added in a later version;
//! existing keys keep their meaning while `version` is 1.
//!
//! # JSON shape of a validation report (`format: "banyan-contract-validation"`, `version: 1`)
//!
//! `{"format", "version", "schema", "operations", "exit_code", "errors": [problem],
//! "warnings": [problem]}` with problems shaped as in `operation_errors` above.

use std::fmt::Write as _;

use serde::Serialize;

use crate::accepted::UnusedAcceptance;
use crate::check::{CheckReport, CheckedChange, Summary};
use crate::diff::{Level, SdlPosition, Side};
use crate::problem::{Problem, Severity};
use crate::validate::ValidationReport;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text for people; `colour` adds ANSI colour codes.
    Text {
        /// Whether to emit ANSI colour codes.
        colour: bool,
    },
    /// Pretty JSON (the documented shape), with a trailing newline.
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::message`).
    Github,
    /// Markdown, for a pull-request comment.
    Markdown,
}

/// ANSI styling of the gates' text output (`schema check`, `proto check`): colour codes only
/// when asked for.
pub struct Style {
    on: bool,
}

impl Style {
    /// Colour codes when `colour`, plain text otherwise.
    pub fn new(colour: bool) -> Self {
        Self { on: colour }
    }
    /// `s` in the SGR style `code`.
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.on { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }
    /// Bold.
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    /// Dim.
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    /// The severity word padded to a column.
    pub fn severity(&self, sev: Severity) -> String {
        let pad = " ".repeat(7 - sev.as_str().len());
        format!("{}{pad}", self.severity_word(sev))
    }
    /// The severity word in its colour.
    pub fn severity_word(&self, sev: Severity) -> String {
        let label = sev.as_str();
        match sev {
            Severity::Error => self.paint("1;31", label),
            Severity::Warning => self.paint("33", label),
            Severity::Notice => self.paint("36", label),
        }
    }
    /// A verdict line: green when it passed, red when not.
    pub fn verdict(&self, ok: bool, s: &str) -> String {
        if ok { self.paint("1;32", s) } else { self.paint("1;31", s) }
    }
}

/// `1 change`, `2 changes`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

fn pos(p: &SdlPosition) -> String {
    format!("{}:{}:{}", p.file, p.line, p.column)
}

fn side_label(p: &SdlPosition) -> &'static str {
    match p.side {
        Side::Old => "old schema",
        Side::New => "new schema",
    }
}

/// The heading of a level's section.
pub fn level_title(level: Level) -> &'static str {
    match level {
        Level::Breaking => "Breaking changes",
        Level::Dangerous => "Dangerous changes",
        Level::Safe => "Safe changes",
    }
}

fn problem_label(p: &Problem) -> String {
    let def = match (&p.component, &p.definition) {
        (Some(c), Some(d)) if !c.is_empty() => format!("[{c}/{d}] "),
        (_, Some(d)) => format!("[{d}] "),
        _ => String::new(),
    };
    format!("{def}{}", p.message)
}

fn json<T: Serialize>(value: &T) -> String {
    // Serialising plain data structures cannot fail.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| String::from("{}"));
    s.push('\n');
    s
}

// ----- check report ------------------------------------------------------------------------

#[derive(Serialize)]
struct CheckJson<'a> {
    format: &'static str,
    version: u32,
    old_schema: &'a str,
    new_schema: &'a str,
    strict: bool,
    exit_code: i32,
    summary: Summary,
    changes: &'a [CheckedChange],
    operation_errors: &'a [Problem],
    accepted_file: Option<&'a str>,
    unused_acceptances: &'a [UnusedAcceptance],
}

impl CheckReport {
    /// Renders the report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text { colour } => self.text(&Style::new(colour)),
            Format::Json => json(&CheckJson {
                format: "banyan-schema-check",
                version: 1,
                old_schema: &self.old_schema,
                new_schema: &self.new_schema,
                strict: self.strict,
                exit_code: self.exit_code(),
                summary: self.summary(),
                changes: &self.changes,
                operation_errors: &self.operation_errors,
                accepted_file: self.accepted_file.as_deref(),
                unused_acceptances: &self.unused_acceptances,
            }),
            Format::Github => self.github(),
            Format::Markdown => self.markdown(),
        }
    }

    fn verdict_line(&self) -> (bool, String) {
        let s = self.summary();
        let open_breaking = |touched: bool| {
            self.changes_of(Level::Breaking)
                .filter(|c| c.accepted.is_none() && c.operations.is_empty() != touched)
                .count()
        };
        let (touching, untouched) = (open_breaking(true), open_breaking(false));
        let mut reasons = Vec::new();
        if touching > 0 {
            reasons.push(format!(
                "{} {} contract operations",
                plural(touching, "breaking change", "breaking changes"),
                if touching == 1 { "touches" } else { "touch" }
            ));
        }
        if self.strict && untouched > 0 {
            reasons.push(format!(
                "{} no operation uses (strict)",
                plural(untouched, "breaking change", "breaking changes")
            ));
        }
        if s.operation_errors > 0 {
            reasons.push(plural(s.operation_errors, "contract operation error", "contract operation errors"));
        }
        if !reasons.is_empty() {
            return (false, format!("FAILED: {}.", reasons.join("; ")));
        }
        let mut notes = Vec::new();
        if s.accepted > 0 {
            notes.push(format!("{} accepted", plural(s.accepted, "change", "changes")));
        }
        if s.unused_acceptances > 0 {
            notes.push(format!(
                "{} that {} to nothing",
                plural(s.unused_acceptances, "accepted-changes entry", "accepted-changes entries"),
                if s.unused_acceptances == 1 { "applies" } else { "apply" }
            ));
        }
        if untouched > 0 {
            notes.push(format!(
                "{} no contract operation uses",
                plural(untouched, "breaking change", "breaking changes")
            ));
        }
        if s.dangerous_touching_operations > 0 {
            notes.push(format!(
                "{} touching contract operations",
                plural(s.dangerous_touching_operations, "dangerous change", "dangerous changes")
            ));
        }
        if notes.is_empty() {
            (true, "PASSED.".to_owned())
        } else {
            (true, format!("PASSED with warnings: {}.", notes.join("; ")))
        }
    }

    fn text(&self, st: &Style) -> String {
        let mut out = String::new();
        let s = self.summary();
        let _ = writeln!(
            out,
            "{} {} → {} ({}{})",
            st.bold("Schema check:"),
            self.old_schema,
            self.new_schema,
            plural(s.operations, "contract operation", "contract operations"),
            if self.strict { ", strict" } else { "" }
        );
        if self.changes.is_empty() {
            let _ = writeln!(out, "\nNo schema changes.");
        }
        for level in [Level::Breaking, Level::Dangerous] {
            let changes: Vec<&CheckedChange> = self.changes_of(level).collect();
            if changes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{}", st.bold(&format!("{} ({})", level_title(level), changes.len())));
            for c in changes {
                let ch = &c.change;
                let label = match &c.accepted {
                    Some(_) => st.paint("32", "accepted"),
                    None => st.severity(c.severity),
                };
                let _ = writeln!(out, "  {label} {}  {}", ch.kind, st.bold(&ch.coordinate));
                let _ = writeln!(out, "          {}", ch.message);
                if let Some(a) = &c.accepted {
                    let _ = writeln!(out, "          accepted: {} ({}:{})", a.reason, a.file, a.line);
                }
                if let Some(p) = &ch.location {
                    let _ =
                        writeln!(out, "          {}", st.dim(&format!("at {} ({})", pos(p), side_label(p))));
                }
                if c.operations.is_empty() {
                    let _ = writeln!(out, "          {}", st.dim("no contract operation uses it"));
                } else {
                    for op in &c.operations {
                        let _ = writeln!(
                            out,
                            "          used by {} at {}",
                            st.bold(&op.display_name()),
                            op.position()
                        );
                    }
                    if !ch.impact.is_empty() {
                        let _ = writeln!(out, "          why: {}", ch.impact);
                    }
                }
            }
        }
        let safe: Vec<&CheckedChange> = self.changes_of(Level::Safe).collect();
        if !safe.is_empty() {
            let _ = writeln!(out, "\n{}", st.bold(&format!("Safe changes ({})", safe.len())));
            for c in safe {
                let ch = &c.change;
                let at = ch.location.as_ref().map(|p| format!("  ({})", pos(p))).unwrap_or_default();
                let users = if c.operations.is_empty() {
                    String::new()
                } else {
                    format!(
                        " — used by {}",
                        c.operations.iter().map(|o| o.display_name()).collect::<Vec<_>>().join(", ")
                    )
                };
                let _ =
                    writeln!(out, "  {} {}{}{}", st.dim(ch.kind.as_str()), ch.message, users, st.dim(&at));
            }
        }
        if !self.operation_errors.is_empty() {
            let _ = writeln!(
                out,
                "\n{}",
                st.bold(&format!(
                    "Contract operations invalid against the new schema ({})",
                    self.operation_errors.len()
                ))
            );
            for p in &self.operation_errors {
                let _ = writeln!(
                    out,
                    "  {}: {}: {}",
                    p.position(),
                    st.severity_word(p.severity),
                    problem_label(p)
                );
            }
        }
        if !self.unused_acceptances.is_empty() {
            let _ = writeln!(
                out,
                "\n{}",
                st.bold(&format!(
                    "Accepted-changes entries that apply to nothing ({})",
                    self.unused_acceptances.len()
                ))
            );
            for u in &self.unused_acceptances {
                let _ = writeln!(out, "  {} {}", st.severity_word(Severity::Warning), u.describe());
            }
        }
        let (ok, line) = self.verdict_line();
        let _ =
            writeln!(out, "\n{} {}", st.verdict(ok, &line), st.dim(&format!("(exit {})", self.exit_code())));
        out
    }

    fn github(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let ch = &c.change;
            let level = match c.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Notice if ch.level == Level::Dangerous || c.accepted.is_some() => "notice",
                Severity::Notice => continue,
            };
            let title = match &c.accepted {
                Some(_) => format!("accepted {} change: {}", ch.level, ch.kind),
                None => format!("{} change: {}", ch.level, ch.kind),
            };
            let users = if c.operations.is_empty() {
                " No contract operation uses it.".to_owned()
            } else {
                format!(
                    " Used by {}. {}",
                    c.operations.iter().map(|o| o.display_name()).collect::<Vec<_>>().join(", "),
                    capitalise(&ch.impact)
                )
            };
            let accepted = match &c.accepted {
                Some(a) => format!(" Accepted ({}:{}): {}", a.file, a.line, a.reason),
                None => String::new(),
            };
            let message = format!("{}{}{accepted}", ch.message, users.trim_end());
            // A removal is located in the old file: anchor it on the new file instead.
            let schema_pos = match &ch.location {
                Some(p) if p.side == Side::New => Some(p),
                _ => ch.anchor.as_ref(),
            };
            let _ = writeln!(
                out,
                "{}",
                annotation(level, &self.new_schema, schema_pos.map(|p| (p.line, p.column)), &title, &message)
            );
            for op in &c.operations {
                let message = format!(
                    "{} is affected: {} {}{accepted}",
                    op.display_name(),
                    ch.message,
                    capitalise(&ch.impact)
                );
                let _ = writeln!(
                    out,
                    "{}",
                    annotation(level, &op.file, Some((op.line, op.column)), &title, &message)
                );
            }
        }
        for p in &self.operation_errors {
            let _ = writeln!(out, "{}", problem_annotation(p, "Invalid contract operation"));
        }
        for u in &self.unused_acceptances {
            let e = &u.entry;
            let _ = writeln!(
                out,
                "{}",
                annotation(
                    "warning",
                    &e.file,
                    Some((e.line, 1)),
                    "Accepted change applies to nothing",
                    &u.describe()
                )
            );
        }
        let (_, line) = self.verdict_line();
        let _ = writeln!(out, "::notice title=Schema check::{}", escape_data(&line));
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let s = self.summary();
        let (ok, line) = self.verdict_line();
        let icon = if ok { "✅" } else { "❌" };
        let _ = writeln!(out, "## {icon} Schema check {}\n", if ok { "passed" } else { "failed" });
        let _ = writeln!(
            out,
            "`{}` → `{}` · {} · **{}** breaking ({} touching operations) · **{}** dangerous · **{}** safe · **{}** invalid operations\n",
            md_code_text(&self.old_schema),
            md_code_text(&self.new_schema),
            plural(s.operations, "contract operation", "contract operations"),
            s.breaking,
            s.breaking_touching_operations,
            s.dangerous,
            s.safe,
            s.operation_errors
        );
        let _ = writeln!(out, "{line}\n");
        for level in [Level::Breaking, Level::Dangerous] {
            let changes: Vec<&CheckedChange> = self.changes_of(level).collect();
            if changes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "### {} ({})\n", level_title(level), changes.len());
            let _ = writeln!(out, "| | Change | Where | Contract operations |");
            let _ = writeln!(out, "|---|---|---|---|");
            for c in changes {
                let ch = &c.change;
                let sev = match (c.severity, &c.accepted) {
                    (_, Some(_)) => "☑️ accepted",
                    (Severity::Error, _) => "❌",
                    (Severity::Warning, _) => "⚠️",
                    (Severity::Notice, _) => "ℹ️",
                };
                let accepted = match &c.accepted {
                    Some(a) => format!(
                        "<br>accepted (`{}:{}`): {}",
                        md_code_text(&a.file),
                        a.line,
                        md_cell(&a.reason)
                    ),
                    None => String::new(),
                };
                let at = ch
                    .location
                    .as_ref()
                    .map(|p| format!("`{}:{}` ({})", md_code_text(&p.file), p.line, side_label(p)))
                    .unwrap_or_default();
                let ops = if c.operations.is_empty() {
                    "none".to_owned()
                } else {
                    let list = c
                        .operations
                        .iter()
                        .map(|o| {
                            format!(
                                "`{}` (`{}:{}`)",
                                md_code_text(&o.display_name()),
                                md_code_text(&o.file),
                                o.line
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("<br>");
                    format!("{list}<br>{}", md_cell(&ch.impact))
                };
                let _ = writeln!(
                    out,
                    "| {sev} | {} <br>`{}`{accepted} | {} | {} |",
                    md_cell(&ch.message),
                    ch.kind,
                    at,
                    ops
                );
            }
            let _ = writeln!(out);
        }
        let safe: Vec<&CheckedChange> = self.changes_of(Level::Safe).collect();
        if !safe.is_empty() {
            let _ = writeln!(out, "<details><summary>Safe changes ({})</summary>\n", safe.len());
            let _ = writeln!(out, "| Change | Kind |");
            let _ = writeln!(out, "|---|---|");
            for c in safe {
                let _ = writeln!(out, "| {} | `{}` |", md_cell(&c.change.message), c.change.kind);
            }
            let _ = writeln!(out, "\n</details>\n");
        }
        if !self.operation_errors.is_empty() {
            let _ = writeln!(
                out,
                "### Contract operations invalid against the new schema ({})\n",
                self.operation_errors.len()
            );
            for p in &self.operation_errors {
                let _ = writeln!(out, "- `{}`: {}", md_code_text(&p.position()), md_cell(&problem_label(p)));
            }
            let _ = writeln!(out);
        }
        if !self.unused_acceptances.is_empty() {
            let _ = writeln!(
                out,
                "### Accepted-changes entries that apply to nothing ({})\n",
                self.unused_acceptances.len()
            );
            for u in &self.unused_acceptances {
                let _ = writeln!(out, "- ⚠️ {}", md_cell(&u.describe()));
            }
            let _ = writeln!(out);
        }
        out
    }
}

// ----- validation report -------------------------------------------------------------------

#[derive(Serialize)]
struct ValidationJson<'a> {
    format: &'static str,
    version: u32,
    schema: &'a str,
    operations: usize,
    exit_code: i32,
    errors: &'a [Problem],
    warnings: &'a [Problem],
}

impl ValidationReport {
    /// Renders the report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text { colour } => self.text(&Style::new(colour)),
            Format::Json => json(&ValidationJson {
                format: "banyan-contract-validation",
                version: 1,
                schema: &self.schema,
                operations: self.operations,
                exit_code: self.exit_code(),
                errors: &self.errors,
                warnings: &self.warnings,
            }),
            Format::Github => {
                let mut out = String::new();
                for p in self.errors.iter().chain(&self.warnings) {
                    let title = match p.severity {
                        Severity::Error => "Invalid contract operation",
                        _ => "Deprecated usage",
                    };
                    let _ = writeln!(out, "{}", problem_annotation(p, title));
                }
                let _ = writeln!(
                    out,
                    "::notice title=Contract validation::{}",
                    escape_data(&self.verdict_line())
                );
                out
            }
            Format::Markdown => {
                let mut out = String::new();
                let icon = if self.is_ok() { "✅" } else { "❌" };
                let _ = writeln!(
                    out,
                    "## {icon} Contract validation {}\n",
                    if self.is_ok() { "passed" } else { "failed" }
                );
                let _ = writeln!(out, "{}\n", self.verdict_line());
                for (title, list) in [("Errors", &self.errors), ("Warnings", &self.warnings)] {
                    if list.is_empty() {
                        continue;
                    }
                    let _ = writeln!(out, "### {title} ({})\n", list.len());
                    for p in list {
                        let _ = writeln!(
                            out,
                            "- `{}`: {}",
                            md_code_text(&p.position()),
                            md_cell(&problem_label(p))
                        );
                    }
                    let _ = writeln!(out);
                }
                out
            }
        }
    }

    fn verdict_line(&self) -> String {
        let ops = plural(self.operations, "contract operation", "contract operations");
        if self.is_ok() {
            if self.warnings.is_empty() {
                format!("OK: {ops} valid against {}.", self.schema)
            } else {
                format!(
                    "OK: {ops} valid against {}, {}.",
                    self.schema,
                    plural(self.warnings.len(), "warning", "warnings")
                )
            }
        } else {
            format!(
                "FAILED: {}, {} ({ops} against {}).",
                plural(self.errors.len(), "error", "errors"),
                plural(self.warnings.len(), "warning", "warnings"),
                self.schema
            )
        }
    }

    fn text(&self, st: &Style) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} {}", st.bold("Contract validation against"), self.schema);
        for p in self.errors.iter().chain(&self.warnings) {
            let _ = writeln!(
                out,
                "  {}: {}: {} {}",
                p.position(),
                st.severity_word(p.severity),
                problem_label(p),
                st.dim(&format!("[{}]", p.code))
            );
        }
        let _ = writeln!(
            out,
            "{} {}",
            st.verdict(self.is_ok(), &self.verdict_line()),
            st.dim(&format!("(exit {})", self.exit_code()))
        );
        out
    }
}

// ----- helpers -----------------------------------------------------------------------------

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => {
            let mut out: String = f.to_uppercase().collect();
            out.push_str(c.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

/// Escapes a workflow-command message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow-command property value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A GitHub workflow command (`::error file=…,line=…,col=…,title=…::message`), escaped.
pub fn annotation(level: &str, file: &str, at: Option<(usize, usize)>, title: &str, message: &str) -> String {
    let mut props = format!("file={}", escape_property(file));
    if let Some((line, col)) = at {
        let _ = write!(props, ",line={line},col={col}");
    }
    let _ = write!(props, ",title={}", escape_property(title));
    format!("::{level} {props}::{}", escape_data(message))
}

fn problem_annotation(p: &Problem, title: &str) -> String {
    let level = match p.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Notice => "notice",
    };
    let at = p.line.map(|l| (l, p.column.unwrap_or(1)));
    annotation(level, &p.file, at, title, &problem_label(p))
}

/// Escapes text for a Markdown table cell (pipes and line breaks).
pub fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Text put inside backticks: backticks cannot be escaped there, so they are replaced.
fn md_code_text(s: &str) -> String {
    s.replace('`', "'").replace('|', "\\|")
}
