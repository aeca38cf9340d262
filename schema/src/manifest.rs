//! The persisted-operations manifest, in Apollo's `apollo-persisted-query-manifest` format:
//!
//! ```json
//! {
//!   "format": "apollo-persisted-query-manifest",
//!   "version": 1,
//!   "operations": [
//!     {"id": "<sha256 hex of body>", "name": "ListTemplates", "type": "query", "body": "..."}
//!   ]
//! }
//! ```
//!
//! The body of an operation is the operation followed by every fragment it uses (directly or
//! through other fragments) sorted by name, printed by apollo-compiler's serializer (so
//! formatting and comments in the contract files do not change it), without a trailing
//! newline. Operations are sorted by name. The file is pretty JSON (two-space indent) with a
//! trailing newline; the CLI writes it to `frontend-contract/persisted-operations.json`.

use std::collections::{BTreeMap, BTreeSet};

use apollo_compiler::ast;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contract::{Contract, OperationType, spreads};
use crate::problem::{Problem, Severity};

/// The manifest's file name inside the contract directory.
pub const MANIFEST_FILE: &str = "persisted-operations.json";

/// The manifest's `format` value.
pub const MANIFEST_FORMAT: &str = "apollo-persisted-query-manifest";

/// A persisted-operations manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The operations, sorted by name.
    pub operations: Vec<PersistedOperation>,
}

/// One operation of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedOperation {
    /// Lower-case hex SHA-256 of `body`.
    pub id: String,
    /// The operation name.
    pub name: String,
    /// `query`, `mutation` or `subscription`.
    #[serde(rename = "type")]
    pub operation_type: OperationType,
    /// The operation and the fragments it uses.
    pub body: String,
}

/// Why a manifest cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Anonymous or duplicate operations, duplicate fragments, undefined or cyclic fragments.
    #[error("cannot build the persisted-operations manifest:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The problems, located.
        problems: Vec<Problem>,
    },
}

/// Whether a committed manifest matches the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestStatus {
    /// The committed text is exactly what [`Manifest::to_json`] produces.
    UpToDate,
    /// There is no committed manifest.
    Missing,
    /// The committed manifest differs.
    Stale {
        /// Operations in the contract but not in the committed manifest.
        added: Vec<String>,
        /// Operations in the committed manifest but not in the contract.
        removed: Vec<String>,
        /// Operations whose id, type or body differ.
        changed: Vec<String>,
        /// Whether the committed file could be parsed at all (when not, the lists are empty).
        parseable: bool,
    },
}

impl ManifestStatus {
    /// Whether the committed manifest is up to date.
    pub fn is_up_to_date(&self) -> bool {
        matches!(self, ManifestStatus::UpToDate)
    }

    /// A one-paragraph human description.
    pub fn describe(&self) -> String {
        match self {
            ManifestStatus::UpToDate => "the persisted-operations manifest is up to date".into(),
            ManifestStatus::Missing => "the persisted-operations manifest is missing".into(),
            ManifestStatus::Stale { added, removed, changed, parseable } => {
                if !parseable {
                    return "the persisted-operations manifest is not a valid manifest; regenerate it".into();
                }
                let mut parts = Vec::new();
                for (what, list) in [("added", added), ("removed", removed), ("changed", changed)] {
                    if !list.is_empty() {
                        parts.push(format!("{what}: {}", list.join(", ")));
                    }
                }
                if parts.is_empty() {
                    "the persisted-operations manifest is stale (formatting differs); regenerate it".into()
                } else {
                    format!(
                        "the persisted-operations manifest is stale ({}); regenerate it",
                        parts.join("; ")
                    )
                }
            }
        }
    }
}

impl Manifest {
    /// Pretty JSON with a trailing newline: the exact text to commit.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Compares with the committed manifest text (`None` when there is no file).
    pub fn compare(&self, committed: Option<&str>) -> ManifestStatus {
        let Some(committed) = committed else {
            return ManifestStatus::Missing;
        };
        if committed == self.to_json() {
            return ManifestStatus::UpToDate;
        }
        let Ok(old) = serde_json::from_str::<Manifest>(committed) else {
            return ManifestStatus::Stale {
                added: Vec::new(),
                removed: Vec::new(),
                changed: Vec::new(),
                parseable: false,
            };
        };
        let old_ops: BTreeMap<&str, &PersistedOperation> =
            old.operations.iter().map(|o| (o.name.as_str(), o)).collect();
        let new_ops: BTreeMap<&str, &PersistedOperation> =
            self.operations.iter().map(|o| (o.name.as_str(), o)).collect();
        let added = new_ops.keys().filter(|k| !old_ops.contains_key(*k)).map(|k| k.to_string()).collect();
        let removed = old_ops.keys().filter(|k| !new_ops.contains_key(*k)).map(|k| k.to_string()).collect();
        let changed = new_ops
            .iter()
            .filter(|(k, n)| old_ops.get(*k).is_some_and(|o| o != *n))
            .map(|(k, _)| k.to_string())
            .collect();
        ManifestStatus::Stale { added, removed, changed, parseable: old.format == MANIFEST_FORMAT }
    }
}

/// Lower-case hex SHA-256 of `body`.
pub fn operation_id(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// Builds the manifest from the contract. Fails on the contract's rule problems (anonymous or
/// duplicate operations, duplicate fragments) and on spreads of undefined fragments.
pub fn build_manifest(contract: &Contract) -> Result<Manifest, ManifestError> {
    let mut problems: Vec<Problem> = contract.rule_problems().to_vec();
    let mut operations = Vec::new();
    for op in contract.operations() {
        let Some(name) = &op.name else { continue };
        // Fragments used, transitively.
        let mut used: BTreeSet<apollo_compiler::Name> = BTreeSet::new();
        let mut stack: Vec<apollo_compiler::Name> = Vec::new();
        spreads(&op.node.selection_set, &mut stack);
        while let Some(f) = stack.pop() {
            if !used.insert(f.clone()) {
                continue;
            }
            match contract.fragment(&f) {
                Some((_, def)) => spreads(&def.selection_set, &mut stack),
                None => problems.push(Problem {
                    severity: Severity::Error,
                    code: "UNDEFINED_FRAGMENT".to_owned(),
                    message: format!(
                        "operation `{name}` uses fragment `{f}`, which the contract does not define"
                    ),
                    file: op.file.clone(),
                    line: Some(op.line),
                    column: Some(op.column),
                    component: Some(op.component.clone()),
                    definition: Some(name.clone()),
                }),
            }
        }
        let mut doc = ast::Document::new();
        doc.definitions.push(ast::Definition::OperationDefinition(op.node.clone()));
        for f in &used {
            if let Some((_, def)) = contract.fragment(f) {
                doc.definitions.push(ast::Definition::FragmentDefinition(def.clone()));
            }
        }
        let body = doc.to_string().trim_end().to_owned();
        operations.push(PersistedOperation {
            id: operation_id(&body),
            name: name.clone(),
            operation_type: op.operation_type,
            body,
        });
    }
    if !problems.is_empty() {
        return Err(ManifestError::Invalid { problems });
    }
    operations.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Manifest { format: MANIFEST_FORMAT.to_owned(), version: 1, operations })
}
