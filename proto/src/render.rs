//! Rendering of a [`CheckReport`] in the formats of `banyan schema check`: text for people (ANSI
//! colour on request), JSON for machines, GitHub workflow commands, Markdown for a PR comment.
//!
//! # JSON shape (`format: "banyan-proto-check"`, `version: 1`)
//!
//! ```json
//! {
//!   "format": "banyan-proto-check",
//!   "version": 1,
//!   "base": "sources/proto",
//!   "new": "pulled",
//!   "rules": "wire-json",                    // wire | wire-json | file
//!   "strict": false,
//!   "usage_source": "sources/src",           // or null
//!   "exit_code": 1,
//!   "summary": {"breaking": 1, "dangerous": 0, "safe": 0, "breaking_used": 1,
//!               "dangerous_used": 0, "errors": 1, "warnings": 0},
//!   "changes": [
//!     {
//!       "level": "breaking",                 // breaking | dangerous | safe
//!       "kind": "FIELD_REMOVED",             // stable machine name
//!       "buf_rule": "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",   // or null
//!       "element": "banyan.events.v1.TemplateStats.unique_opens",
//!       "message": "Field `…` (7) was removed without reserving its number 7: …",
//!       "location": {"side": "old", "file": "sources/proto/banyan/events/v1/events.proto",
//!                    "line": 113, "column": 3},   // or null
//!       "severity": "error",                 // error | warning | notice
//!       "uses": [
//!         {"file": "sources/src/events.rs", "line": 104, "column": 35,
//!          "function": "EventsClient::template_stats", "what": "reads `unique_opens`"}
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! Keys are never omitted; new keys may be added while `version` is 1.

use std::fmt::Write as _;

use serde::Serialize;

use crate::check::{CheckReport, CheckedChange, ProtoPosition, Rules, Side, Summary};
use crate::{Level, Severity};

/// The output formats of `banyan schema check`, shared so both gates print alike.
pub use banyan_schema::Format;
use banyan_schema::render::{Style, annotation, escape_data, level_title, md_cell, plural};

fn pos(p: &ProtoPosition) -> String {
    format!("{}:{}:{}", p.file, p.line, p.column)
}

fn side(p: &ProtoPosition) -> &'static str {
    match p.side {
        Side::Old => "base",
        Side::New => "new",
    }
}

#[derive(Serialize)]
struct CheckJson<'a> {
    format: &'static str,
    version: u32,
    base: &'a str,
    new: &'a str,
    rules: Rules,
    strict: bool,
    usage_source: Option<&'a str>,
    exit_code: i32,
    summary: Summary,
    changes: &'a [CheckedChange],
}

impl CheckReport {
    /// Renders the report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text { colour } => self.text(&Style::new(colour)),
            Format::Json => {
                let json = CheckJson {
                    format: "banyan-proto-check",
                    version: 1,
                    base: &self.base,
                    new: &self.new,
                    rules: self.rules,
                    strict: self.strict,
                    usage_source: self.usage_source.as_deref(),
                    exit_code: self.exit_code(),
                    summary: self.summary(),
                    changes: &self.changes,
                };
                // Serialising plain data cannot fail.
                let mut s = serde_json::to_string_pretty(&json).unwrap_or_else(|_| String::from("{}"));
                s.push('\n');
                s
            }
            Format::Github => self.github(),
            Format::Markdown => self.markdown(),
        }
    }

    fn verdict_line(&self) -> (bool, String) {
        let open =
            |used: bool| self.changes_of(Level::Breaking).filter(|c| c.uses.is_empty() != used).count();
        let (used, unused) = (open(true), open(false));
        let mut reasons = Vec::new();
        if used > 0 {
            reasons.push(format!(
                "{} {} what Banyan uses",
                plural(used, "breaking change", "breaking changes"),
                if used == 1 { "touches" } else { "touch" }
            ));
        }
        if self.strict && unused > 0 {
            reasons.push(format!(
                "{} Banyan does not use (strict)",
                plural(unused, "breaking change", "breaking changes")
            ));
        }
        if !reasons.is_empty() {
            return (false, format!("FAILED: {}.", reasons.join("; ")));
        }
        let mut notes = Vec::new();
        if unused > 0 {
            notes.push(format!(
                "{} Banyan does not use",
                plural(unused, "breaking change", "breaking changes")
            ));
        }
        let dangerous = self.summary().dangerous_used;
        if dangerous > 0 {
            notes.push(format!(
                "{} touching what Banyan uses",
                plural(dangerous, "dangerous change", "dangerous changes")
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
        let usage = match &self.usage_source {
            Some(source) => format!("usage from {source}"),
            None => "no usage known".to_owned(),
        };
        let _ = writeln!(
            out,
            "{} {} → {} (rules {}, {usage}{})",
            st.bold("Proto check:"),
            self.base,
            self.new,
            self.rules.as_str(),
            if self.strict { ", strict" } else { "" }
        );
        if self.changes.is_empty() {
            let _ = writeln!(out, "\nNo proto changes.");
        }
        for level in [Level::Breaking, Level::Dangerous] {
            let changes: Vec<&CheckedChange> = self.changes_of(level).collect();
            if changes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{}", st.bold(&format!("{} ({})", level_title(level), changes.len())));
            for c in changes {
                let ch = &c.change;
                let _ = writeln!(out, "  {} {}  {}", st.severity(c.severity), ch.kind, st.bold(&ch.element));
                let _ = writeln!(out, "          {}", ch.message);
                if let Some(p) = &ch.location {
                    let _ = writeln!(out, "          {}", st.dim(&format!("at {} ({})", pos(p), side(p))));
                }
                if c.uses.is_empty() {
                    let _ = writeln!(out, "          {}", st.dim("Banyan does not use it"));
                }
                for u in &c.uses {
                    let _ = writeln!(
                        out,
                        "          used by {} at {}: {}",
                        st.bold(&u.function),
                        u.position(),
                        u.what
                    );
                }
            }
        }
        let safe: Vec<&CheckedChange> = self.changes_of(Level::Safe).collect();
        if !safe.is_empty() {
            let _ = writeln!(out, "\n{}", st.bold(&format!("Safe changes ({})", safe.len())));
            for c in safe {
                let at = c.change.location.as_ref().map(|p| format!("  ({})", pos(p))).unwrap_or_default();
                let _ = writeln!(out, "  {} {}{}", st.dim(c.change.kind), c.change.message, st.dim(&at));
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
                Severity::Notice if ch.level == Level::Dangerous => "notice",
                Severity::Notice => continue,
            };
            let title = format!("{} proto change: {}", ch.level, ch.kind);
            let users = if c.uses.is_empty() {
                " Banyan does not use it.".to_owned()
            } else {
                let list: Vec<String> =
                    c.uses.iter().map(|u| format!("{} ({}, {})", u.function, u.position(), u.what)).collect();
                format!(" Used by {}.", list.join("; "))
            };
            let message = format!("{}{users}", ch.message);
            let (file, line, col) = match &ch.location {
                Some(p) => (p.file.as_str(), Some(p.line), Some(p.column)),
                None => (self.new.as_str(), None, None),
            };
            let _ = writeln!(out, "{}", annotation(level, file, line.zip(col), &title, &message));
            for u in &c.uses {
                let message = format!("{} {} is affected: {}", u.function, u.what, ch.message);
                let _ = writeln!(
                    out,
                    "{}",
                    annotation(level, &u.file, Some((u.line, u.column)), &title, &message)
                );
            }
        }
        let (_, line) = self.verdict_line();
        let _ = writeln!(out, "::notice title=Proto check::{}", escape_data(&line));
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let s = self.summary();
        let (ok, line) = self.verdict_line();
        let icon = if ok { "✅" } else { "❌" };
        let _ = writeln!(out, "## {icon} Proto check {}\n", if ok { "passed" } else { "failed" });
        let _ = writeln!(
            out,
            "`{}` → `{}` · rules `{}` · **{}** breaking ({} used by Banyan) · **{}** dangerous · **{}** safe\n",
            md_code(&self.base),
            md_code(&self.new),
            self.rules.as_str(),
            s.breaking,
            s.breaking_used,
            s.dangerous,
            s.safe
        );
        let _ = writeln!(out, "{line}\n");
        for level in [Level::Breaking, Level::Dangerous] {
            let changes: Vec<&CheckedChange> = self.changes_of(level).collect();
            if changes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "### {} ({})\n", level_title(level), changes.len());
            let _ = writeln!(out, "| | Change | Where | Banyan code |");
            let _ = writeln!(out, "|---|---|---|---|");
            for c in changes {
                let sev = match c.severity {
                    Severity::Error => "❌",
                    Severity::Warning => "⚠️",
                    Severity::Notice => "ℹ️",
                };
                let at = c
                    .change
                    .location
                    .as_ref()
                    .map(|p| format!("`{}:{}` ({})", md_code(&p.file), p.line, side(p)))
                    .unwrap_or_default();
                let uses = if c.uses.is_empty() {
                    "not used".to_owned()
                } else {
                    c.uses
                        .iter()
                        .map(|u| {
                            format!(
                                "`{}` (`{}`): {}",
                                md_code(&u.function),
                                md_code(&u.position()),
                                md_cell(&u.what)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("<br>")
                };
                let _ = writeln!(
                    out,
                    "| {sev} | {} <br>`{}` | {at} | {uses} |",
                    md_cell(&c.change.message),
                    c.change.kind
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
        out
    }
}

/// Text for inside a Markdown code span.
fn md_code(s: &str) -> String {
    s.replace('`', "'")
}
