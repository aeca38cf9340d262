//! `schema check`: diff two schemas, find which contract operations each change touches,
//! validate the contract against the new schema, and decide whether CI should stop.
//!
//! Exit-code rules ([`CheckReport::exit_code`]):
//!
//! * **1** when a breaking change touches a contract operation, when a contract operation does
//!   not validate against the new schema (or breaks a contract rule), or, with
//!   [`CheckOptions::strict`], when there is any breaking change at all;
//! * **0** otherwise: breaking changes no operation touches are warnings, dangerous changes are
//!   warnings when they touch an operation and notices otherwise, safe changes are notices;
//! * **2** is for input errors ([`SchemaError`](crate::SchemaError),
//!   [`ContractError`](crate::ContractError)), which the CLI maps itself.

use apollo_compiler::collections::HashMap;
use serde::Serialize;

use crate::accepted::{Acceptance, AcceptedChanges, Unused, UnusedAcceptance};
use crate::contract::{Contract, OperationType};
use crate::diff::{Change, Level, diff};
use crate::model::CompactSchema;
use crate::problem::{Problem, Severity};
use crate::sdl::Sdl;
use crate::usage::Collector;
use crate::validate::{default_parallelism, finish, plan_chunks, validate_chunk};
use crate::{EXIT_FAILURE, EXIT_OK};

/// Options of [`check()`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Fail on every breaking change, even one no contract operation touches.
    pub strict: bool,
}

/// A contract operation a change touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TouchedOperation {
    /// The component.
    pub component: String,
    /// The operation name (`None` when anonymous).
    pub operation: Option<String>,
    /// The operation kind.
    pub operation_type: OperationType,
    /// The contract file where the use is (the operation's file, or the file of the fragment
    /// through which the operation uses the changed element).
    pub file: String,
    /// 1-based line of the use.
    pub line: usize,
    /// 1-based column of the use.
    pub column: usize,
}

impl TouchedOperation {
    /// `Component/Operation`.
    pub fn display_name(&self) -> String {
        let name = self.operation.as_deref().unwrap_or("<anonymous>");
        if self.component.is_empty() { name.to_owned() } else { format!("{}/{name}", self.component) }
    }

    /// `file:line:col`.
    pub fn position(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A change with its verdict and the operations it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedChange {
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// `error` fails the check; `warning` and `notice` do not.
    pub severity: Severity,
    /// The contract operations the change touches.
    pub operations: Vec<TouchedOperation>,
    /// The accepted-changes entry that lets this change through (its severity is then
    /// `notice`), if any.
    pub accepted: Option<Acceptance>,
}

/// The result of [`check()`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The old schema's path label.
    pub old_schema: String,
    /// The new schema's path label.
    pub new_schema: String,
    /// Whether `strict` was on.
    pub strict: bool,
    /// Number of contract operations.
    pub operation_count: usize,
    /// Every change, breaking first.
    pub changes: Vec<CheckedChange>,
    /// Contract operations that do not validate against the new schema (and contract rule
    /// violations).
    pub operation_errors: Vec<Problem>,
    /// The accepted-changes file applied (see [`CheckReport::with_accepted`]), if any.
    pub accepted_file: Option<String>,
    /// Entries of that file that applied to no change (stale or unmatched): warnings.
    pub unused_acceptances: Vec<UnusedAcceptance>,
}

/// Counts for a summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Breaking changes.
    pub breaking: usize,
    /// Dangerous changes.
    pub dangerous: usize,
    /// Safe changes.
    pub safe: usize,
    /// Breaking changes that touch at least one contract operation.
    pub breaking_touching_operations: usize,
    /// Dangerous changes that touch at least one contract operation.
    pub dangerous_touching_operations: usize,
    /// Changes whose severity is `error`.
    pub errors: usize,
    /// Changes whose severity is `warning`.
    pub warnings: usize,
    /// Operation errors.
    pub operation_errors: usize,
    /// Contract operations checked.
    pub operations: usize,
    /// Changes let through by an accepted-changes entry.
    pub accepted: usize,
    /// Accepted-changes entries that applied to no change.
    pub unused_acceptances: usize,
}

impl CheckReport {
    /// 1 when CI should stop the change, else 0 (see the module docs).
    pub fn exit_code(&self) -> i32 {
        if self.failed() { EXIT_FAILURE } else { EXIT_OK }
    }

    /// Whether the check fails.
    pub fn failed(&self) -> bool {
        !self.operation_errors.is_empty() || self.changes.iter().any(|c| c.severity == Severity::Error)
    }

    /// The counts.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            operation_errors: self.operation_errors.len(),
            operations: self.operation_count,
            unused_acceptances: self.unused_acceptances.len(),
            ..Summary::default()
        };
        for c in &self.changes {
            s.accepted += usize::from(c.accepted.is_some());
            let touched = !c.operations.is_empty();
            match c.change.level {
                Level::Breaking => {
                    s.breaking += 1;
                    s.breaking_touching_operations += usize::from(touched);
                }
                Level::Dangerous => {
                    s.dangerous += 1;
                    s.dangerous_touching_operations += usize::from(touched);
                }
                Level::Safe => s.safe += 1,
            }
            match c.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
                Severity::Notice => {}
            }
        }
        s
    }

    /// Applies accepted changes: every change whose coordinate and kind an entry names, when
    /// the entry's `base` is `base_hash` (the [`Sdl::hash`] or [`CompactSchema::hash`] of this
    /// check's old schema), is
    /// marked accepted and becomes a notice, so it no longer fails the check. Entries that
    /// apply to nothing are listed in [`CheckReport::unused_acceptances`].
    #[must_use]
    pub fn with_accepted(mut self, accepted: &AcceptedChanges, base_hash: &str) -> Self {
        self.accepted_file = accepted.path().map(str::to_owned);
        for entry in accepted.entries() {
            let why = if entry.base != base_hash {
                Some(Unused::Stale)
            } else {
                let mut matched = false;
                for c in &mut self.changes {
                    if c.change.coordinate == entry.coordinate && c.change.kind.as_str() == entry.kind {
                        matched = true;
                        if c.accepted.is_none() {
                            c.accepted = Some(Acceptance {
                                file: entry.file.clone(),
                                line: entry.line,
                                reason: entry.reason.clone(),
                            });
                            c.severity = Severity::Notice;
                        }
                    }
                }
                (!matched).then_some(Unused::Unmatched)
            };
            if let Some(why) = why {
                self.unused_acceptances.push(UnusedAcceptance { entry: entry.clone(), why });
            }
        }
        self.changes.sort_by_key(|c| (c.change.level, c.severity));
        self
    }

    /// Changes of one level, in report order.
    pub fn changes_of(&self, level: Level) -> impl Iterator<Item = &CheckedChange> {
        self.changes.iter().filter(move |c| c.change.level == level)
    }
}

/// Runs the whole check: [`diff()`], usage of every operation, touches, and validation against
/// `new`.
///
/// Usage is resolved in the old schema, which the operations were written against; an
/// operation that does not fully resolve there (say, it already uses a field the new schema
/// adds) is resolved in the new schema as well and the two usages are merged.
pub fn check(old: &Sdl, new: &Sdl, contract: &Contract, options: CheckOptions) -> CheckReport {
    // Validation of the contract against the new schema is independent of the rest: run it
    // beside the diff and the usage walks.
    let chunks = plan_chunks(contract, default_parallelism());
    let (checked, operation_errors) = std::thread::scope(|scope| {
        let validations: Vec<_> = chunks
            .iter()
            .map(|chunk| scope.spawn(|| validate_chunk(new.schema(), contract, chunk)))
            .collect();
        let checked = classify(old.compact(), new.compact(), contract, options);
        let mut errors = contract.rule_problems().to_vec();
        for v in validations {
            errors.extend(v.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        (checked, finish(errors))
    });
    report(old.compact(), new.compact(), contract.operations().len(), options, checked, operation_errors)
}

/// [`check()`] on compact models, for schemas loaded with
/// [`load_compact_with`](crate::load_compact_with) so that apollo-compiler's schemas are gone
/// by now: `operation_errors` is what [`operation_errors`](crate::operation_errors) found
/// validating the contract against the new schema while it was loaded.
pub fn check_compact(
    old: &CompactSchema,
    new: &CompactSchema,
    contract: &Contract,
    operation_errors: Vec<Problem>,
    options: CheckOptions,
) -> CheckReport {
    let checked = classify(old, new, contract, options);
    report(old, new, contract.operations().len(), options, checked, operation_errors)
}

pub(crate) fn report(
    old: &CompactSchema,
    new: &CompactSchema,
    operation_count: usize,
    options: CheckOptions,
    changes: Vec<CheckedChange>,
    operation_errors: Vec<Problem>,
) -> CheckReport {
    CheckReport {
        old_schema: old.path().to_owned(),
        new_schema: new.path().to_owned(),
        strict: options.strict,
        operation_count,
        changes,
        operation_errors,
        accepted_file: None,
        unused_acceptances: Vec::new(),
    }
}

/// Diff, usage, touches and severities.
fn classify(
    old: &CompactSchema,
    new: &CompactSchema,
    contract: &Contract,
    options: CheckOptions,
) -> Vec<CheckedChange> {
    let changes = diff(old, new);
    let touches = TouchIndex::new(&changes).touches(old, new, contract, 0..contract.operations().len());
    judge(changes, touches, options)
}

/// Which changes an operation may touch: an index from usage key to the changes that need it.
///
/// Each operation's usage is walked once, tested against the changes it may touch (those
/// indexed under one of its keys, and those that can touch an operation without any), and
/// dropped: one usage is alive at a time, not the contract's (several MiB for 500 operations).
pub(crate) struct TouchIndex<'c> {
    changes: &'c [Change],
    /// Key → the changes that need it (one of their keys must be used for them to touch).
    by_key: HashMap<&'c str, Vec<usize>>,
    without_keys: Vec<usize>,
}

impl<'c> TouchIndex<'c> {
    pub(crate) fn new(changes: &'c [Change]) -> Self {
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::default();
        let mut without_keys = Vec::new();
        for (c, change) in changes.iter().enumerate() {
            match change.touch.required_keys() {
                Some(keys) => keys.into_iter().for_each(|k| by_key.entry(k).or_default().push(c)),
                None => without_keys.push(c),
            }
        }
        TouchIndex { changes, by_key, without_keys }
    }

    /// Walks the operations numbered `operations` (in `contract.operations()`, in contract
    /// order) and returns each (change, operation) it touches, in the operations' order.
    ///
    /// Usage is resolved in the old schema, which the operations were written against. An
    /// operation that does not fully resolve there (one written for the new schema, or an
    /// invalid one) is resolved in the new schema too, and the two are merged.
    pub(crate) fn touches(
        &self,
        old: &CompactSchema,
        new: &CompactSchema,
        contract: &Contract,
        operations: impl IntoIterator<Item = usize>,
    ) -> Vec<(usize, TouchedOperation)> {
        let mut in_old = Collector::new(old, contract, false);
        let mut in_new: Option<Collector<'_>> = None;
        let mut touching = Vec::new();
        let mut candidates = Vec::new();
        for i in operations {
            let Some(op) = contract.operations().get(i) else { continue };
            let mut u = in_old.operation(i);
            if u.unresolved {
                let c = in_new.get_or_insert_with(|| Collector::new(new, contract, false));
                u.merge(&c.operation(i));
            }
            candidates.clear();
            candidates.extend(u.keys().filter_map(|k| self.by_key.get(k)).flatten());
            candidates.extend_from_slice(&self.without_keys);
            candidates.sort_unstable();
            candidates.dedup();
            for &c in &candidates {
                let touch = &self.changes[c].touch;
                if !touch.matches(&u) {
                    continue;
                }
                let site = touch.site(&u);
                let file = contract
                    .file_index_of(site)
                    .and_then(|fi| contract.file(fi))
                    .map(|f| f.path.clone())
                    .unwrap_or_else(|| op.file.clone());
                let (line, column) = contract.line_col(site).unwrap_or((op.line, op.column));
                touching.push((
                    c,
                    TouchedOperation {
                        component: op.component.clone(),
                        operation: op.name.clone(),
                        operation_type: op.operation_type,
                        file,
                        line,
                        column,
                    },
                ));
            }
        }
        touching
    }
}

/// Each change with the operations it touches (given in contract order) and its severity,
/// in report order.
pub(crate) fn judge(
    changes: Vec<Change>,
    touches: impl IntoIterator<Item = (usize, TouchedOperation)>,
    options: CheckOptions,
) -> Vec<CheckedChange> {
    let mut touching: Vec<Vec<TouchedOperation>> = vec![Vec::new(); changes.len()];
    for (c, operation) in touches {
        if let Some(list) = touching.get_mut(c) {
            list.push(operation);
        }
    }
    let mut checked = Vec::with_capacity(changes.len());
    for (change, operations) in changes.into_iter().zip(touching) {
        let touched = !operations.is_empty();
        let severity = match change.level {
            Level::Breaking if touched || options.strict => Severity::Error,
            Level::Breaking => Severity::Warning,
            Level::Dangerous if touched => Severity::Warning,
            _ => Severity::Notice,
        };
        checked.push(CheckedChange { change, severity, operations, accepted: None });
    }

    // Within a level, what fails first, then what warns.
    checked.sort_by_key(|c| (c.change.level, c.severity));
    checked
}
