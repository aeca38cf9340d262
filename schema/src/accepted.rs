//! Accepted changes: a reviewed list of deliberate changes `check` lets through.
//!
//! `schema/accepted-changes.toml` holds one `[[accepted]]` table per change:
//!
//! ```toml
//! [[accepted]]
//! base = "sha256:…"          # schema_hash() of the base schema the change was judged against
//! coordinate = "Query.me"    # the change's coordinate, as check prints it
//! kind = "FIELD_CHANGED_KIND" # the change's kind
//! reason = "Root fields that read a backend are nullable (issue 6, item 7)."
//! ```
//!
//! An entry applies only when the check's base schema has exactly that hash, so it cannot
//! accept a later change to the same coordinate: once the base moves on, the entry is
//! reported as stale until someone removes it. An entry whose base matches but which matches
//! no change is reported as unmatched. Neither fails the check.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diff::ChangeKind;

/// Where the accepted changes of the repository live, relative to its root.
pub const ACCEPTED_CHANGES_FILE: &str = "schema/accepted-changes.toml";

/// One entry of the accepted-changes file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcceptedEntry {
    /// [`schema_hash`](crate::schema_hash) of the base schema the entry was written against.
    pub base: String,
    /// The change's schema coordinate.
    pub coordinate: String,
    /// The change's kind (its machine name).
    pub kind: String,
    /// Why the change is accepted (reviewed with the change).
    pub reason: String,
    /// The file the entry is in.
    pub file: String,
    /// 1-based line of the entry's `[[accepted]]` header.
    pub line: usize,
}

/// The accepted changes of one file (or none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptedChanges {
    path: Option<String>,
    entries: Vec<AcceptedEntry>,
}

/// Why the accepted-changes file could not be loaded. The CLI exits 2 on any of them.
#[derive(Debug, thiserror::Error)]
pub enum AcceptedChangesError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error("{path} is not a valid accepted-changes file: {message}")]
    Syntax {
        /// The path label.
        path: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// An entry is malformed.
    #[error("{path}:{line}: {message}")]
    Entry {
        /// The path label.
        path: String,
        /// 1-based line of the entry.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    accepted: Vec<toml::Spanned<EntryShape>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryShape {
    base: String,
    coordinate: String,
    kind: String,
    reason: String,
}

impl AcceptedChanges {
    /// No accepted changes.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses the text of an accepted-changes file; `path_label` names it in messages.
    pub fn parse(path_label: &str, text: &str) -> Result<Self, AcceptedChangesError> {
        let shape: FileShape = toml::from_str(text).map_err(|e| AcceptedChangesError::Syntax {
            path: path_label.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut entries = Vec::with_capacity(shape.accepted.len());
        for spanned in shape.accepted {
            let line = 1 + text[..spanned.span().start.min(text.len())].matches('\n').count();
            let entry = spanned.into_inner();
            let bad =
                |message: String| AcceptedChangesError::Entry { path: path_label.to_owned(), line, message };
            let hex = entry.base.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(bad(format!(
                    "`base` must be `sha256:` and 64 lowercase hex digits (`banyan schema hash BASE`), not `{}`",
                    entry.base
                )));
            }
            if !ChangeKind::ALL.iter().any(|k| k.as_str() == entry.kind) {
                return Err(bad(format!("`kind` `{}` is not a change kind", entry.kind)));
            }
            if entry.coordinate.trim().is_empty() {
                return Err(bad("`coordinate` is empty".to_owned()));
            }
            if entry.reason.trim().is_empty() {
                return Err(bad("`reason` is empty: say why the change is accepted".to_owned()));
            }
            entries.push(AcceptedEntry {
                base: entry.base,
                coordinate: entry.coordinate,
                kind: entry.kind,
                reason: entry.reason.trim().to_owned(),
                file: path_label.to_owned(),
                line,
            });
        }
        Ok(Self { path: Some(path_label.to_owned()), entries })
    }

    /// Reads `path` and parses it, labelled with the path.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AcceptedChangesError> {
        let path = path.as_ref();
        let label = path.display().to_string().replace('\\', "/");
        let text = std::fs::read_to_string(path)
            .map_err(|source| AcceptedChangesError::Io { path: label.clone(), source })?;
        Self::parse(&label, &text)
    }

    /// The file's path label (`None` for [`AcceptedChanges::none`]).
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[AcceptedEntry] {
        &self.entries
    }
}

/// How an accepted change was accepted (on [`CheckedChange::accepted`](crate::CheckedChange)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acceptance {
    /// The accepted-changes file.
    pub file: String,
    /// 1-based line of the entry.
    pub line: usize,
    /// The entry's reason.
    pub reason: String,
}

/// Why an entry applied to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unused {
    /// Written against another base schema (its `base` hash is not this check's base).
    Stale,
    /// Written against this base, but no change has its coordinate and kind.
    Unmatched,
}

/// An entry that applied to nothing, reported so it does not linger unnoticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnusedAcceptance {
    /// The entry.
    #[serde(flatten)]
    pub entry: AcceptedEntry,
    /// Why it applied to nothing.
    pub why: Unused,
}

impl UnusedAcceptance {
    /// One line for people.
    pub fn describe(&self) -> String {
        let e = &self.entry;
        match self.why {
            Unused::Stale => format!(
                "{}:{}: accepted {} {} was written for base {}, not this base: remove it",
                e.file, e.line, e.kind, e.coordinate, e.base
            ),
            Unused::Unmatched => format!(
                "{}:{}: accepted {} {} matches no change against this base",
                e.file, e.line, e.kind, e.coordinate
            ),
        }
    }
}
