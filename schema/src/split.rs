//! The contract as `schema check` holds it at scale: each file's text and an outline of which
//! definitions count, cut into groups of files that are parsed again a group at a time:
//! validated while the new schema is loaded ([`SplitContract::validate`]), walked for usage
//! once both schemas are modelled ([`SplitContract::check`]).
//!
//! A parsed contract (apollo-compiler's syntax trees) costs about 16 bytes per byte of its
//! text, 8 MiB for 500 operations, and held beside the new schema it was the largest part of
//! `check`'s peak memory above `diff`'s (README, "Schema diff and check at scale"). Split, it
//! costs its texts and one group's trees per thread, for two more parses of each file.
//!
//! The groups give the same report as the whole contract: each group's files are parsed with
//! the `included` flags the whole contract gave their definitions, so fragment names resolve
//! to the same (first) definitions, and each group validates its operations with every
//! fragment they use (fragments no operation uses go to the first group, where they are
//! reported as unused), as [`plan_chunks`](crate::validate::plan_chunks) does.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use apollo_compiler::Schema;
use apollo_compiler::ast::Definition;
use apollo_compiler::validation::Valid;

use crate::check::{CheckOptions, CheckReport, TouchIndex, judge, report};
use crate::contract::Contract;
use crate::diff::diff;
use crate::model::CompactSchema;
use crate::problem::Problem;
use crate::validate::{default_parallelism, finish, validate_chunk};

/// Operations per group: as many as [`operation_errors`](crate::operation_errors) validates in
/// one document, whose trees and validation working memory are about a MiB.
const OPERATIONS_PER_GROUP: usize = 64;

/// A contract kept as its files' texts and an outline, for [`SplitContract::check`].
///
/// A handful of allocations whatever the number of files (texts in one string, flags in one
/// vector): made while the parsed contract is alive and kept once it is freed, a few per file
/// would be scattered through that memory and keep the schemas loaded next from reusing it in
/// large blocks (3–4 MiB more at `check`'s peak on the 500-operation contract).
#[derive(Debug)]
pub struct SplitContract {
    /// Every file's path, component and text, one after the other.
    strings: String,
    files: Vec<SplitFile>,
    /// Every file's `included` flags, then every group's definitions to validate.
    flags: Vec<bool>,
    groups: Vec<Group>,
    /// The files each group parses, group after group: (file, its flags in `flags`).
    parsed: Vec<(usize, Range<usize>)>,
    rule_problems: Vec<Problem>,
    operation_count: usize,
}

/// Where a file's parts are in [`SplitContract::strings`] and [`SplitContract::flags`].
#[derive(Debug)]
struct SplitFile {
    path: Range<usize>,
    component: Range<usize>,
    text: Range<usize>,
    /// Per definition: whether the whole contract counts it (see `ContractFile::included`).
    included: Range<usize>,
}

/// Files parsed together.
#[derive(Debug)]
struct Group {
    /// The files whose operations this group walks: a range, so that the groups' operations,
    /// one group after the other, are in contract order.
    own: Range<usize>,
    /// Every file the group parses (its own and those of the fragments its operations use),
    /// in contract order, with the definitions it validates: a range of
    /// [`SplitContract::parsed`].
    parsed: Range<usize>,
}

/// A group as it is planned, before it is packed into a [`Group`].
struct Plan {
    own: Range<usize>,
    parsed: Vec<(usize, Vec<bool>)>,
}

impl SplitContract {
    /// Splits `contract` into groups of files of about 64 operations.
    pub fn new(contract: Contract) -> SplitContract {
        SplitContract::with_group_size(contract, OPERATIONS_PER_GROUP)
    }

    /// [`SplitContract::new`] with groups of files of at least `operations_per_group`
    /// operations (the last may have fewer).
    pub fn with_group_size(contract: Contract, operations_per_group: usize) -> SplitContract {
        let files = contract.files();
        let mut ranges = Vec::new();
        let (mut start, mut operations) = (0, 0);
        for (fi, file) in files.iter().enumerate() {
            operations += file
                .document
                .definitions
                .iter()
                .filter(|d| matches!(d, Definition::OperationDefinition(_)))
                .count();
            if operations >= operations_per_group.max(1) {
                ranges.push(start..fi + 1);
                (start, operations) = (fi + 1, 0);
            }
        }
        if start < files.len() {
            ranges.push(start..files.len());
        }

        let mut used_anywhere: Vec<Vec<bool>> = files.iter().map(|f| vec![false; f.included.len()]).collect();
        let mut groups: Vec<Plan> = ranges
            .into_iter()
            .map(|own| {
                // File → definitions validated here; a file parsed only for the walk (an
                // anonymous operation's fragments) validates nothing of its own.
                let mut parsed: BTreeMap<usize, Vec<bool>> =
                    own.clone().map(|fi| (fi, vec![false; files[fi].included.len()])).collect();
                for op in contract.operations().iter().filter(|op| own.contains(&op.file_index)) {
                    let mut mark = |f: usize, d: usize, validated: bool| {
                        let len = files.get(f).map_or(0, |file| file.included.len());
                        let mask = parsed.entry(f).or_insert_with(|| vec![false; len]);
                        if let (true, Some(flag)) = (validated, mask.get_mut(d)) {
                            *flag = true;
                        }
                    };
                    let validated = files[op.file_index].included.get(op.def_index).copied().unwrap_or(false);
                    mark(op.file_index, op.def_index, validated);
                    for name in contract.fragment_closure(&op.node.selection_set) {
                        let Some((f, d)) = contract.fragment_position(&name) else { continue };
                        mark(f, d, validated);
                        if let (true, Some(used)) =
                            (validated, used_anywhere.get_mut(f).and_then(|u| u.get_mut(d)))
                        {
                            *used = true;
                        }
                    }
                }
                Plan { own, parsed: parsed.into_iter().collect() }
            })
            .collect();
        // Fragments no operation uses go to the first group, where validation reports them.
        if let Some(first) = groups.first_mut() {
            for (fi, file) in files.iter().enumerate() {
                for (di, def) in file.document.definitions.iter().enumerate() {
                    let unused_fragment = matches!(def, Definition::FragmentDefinition(_))
                        && file.included[di]
                        && !used_anywhere[fi][di];
                    if !unused_fragment {
                        continue;
                    }
                    match first.parsed.binary_search_by_key(&fi, |(f, _)| *f) {
                        Ok(at) => first.parsed[at].1[di] = true,
                        Err(at) => {
                            let mut mask = vec![false; file.included.len()];
                            mask[di] = true;
                            first.parsed.insert(at, (fi, mask));
                        }
                    }
                }
            }
        }

        // Packed, each buffer allocated once at its size.
        let text_bytes = files.iter().map(|f| f.path.len() + f.component.len() + f.text().len()).sum();
        let file_flags: usize = files.iter().map(|f| f.included.len()).sum();
        let group_flags: usize = groups.iter().flat_map(|g| &g.parsed).map(|(_, m)| m.len()).sum();
        let mut strings = String::with_capacity(text_bytes);
        let mut flags = Vec::with_capacity(file_flags + group_flags);
        let mut split_files = Vec::with_capacity(files.len());
        for f in files {
            let path = append(&mut strings, &f.path);
            let component = append(&mut strings, &f.component);
            let text = append(&mut strings, f.text());
            let start = flags.len();
            flags.extend_from_slice(&f.included);
            split_files.push(SplitFile { path, component, text, included: start..flags.len() });
        }
        let mut parsed = Vec::with_capacity(groups.iter().map(|g| g.parsed.len()).sum());
        let mut packed = Vec::with_capacity(groups.len());
        for plan in groups {
            let first = parsed.len();
            for (fi, mask) in plan.parsed {
                let start = flags.len();
                flags.extend_from_slice(&mask);
                parsed.push((fi, start..flags.len()));
            }
            packed.push(Group { own: plan.own, parsed: first..parsed.len() });
        }
        SplitContract {
            strings,
            files: split_files,
            flags,
            groups: packed,
            parsed,
            rule_problems: contract.rule_problems().to_vec(),
            operation_count: contract.operations().len(),
        }
    }

    /// The files group `group` parses: (file, definitions it validates).
    fn parsed_by(&self, group: &Group) -> impl Iterator<Item = (usize, &[bool])> {
        let parsed = self.parsed.get(group.parsed.clone()).unwrap_or_default();
        parsed.iter().map(|(fi, flags)| (*fi, self.flags.get(flags.clone()).unwrap_or_default()))
    }

    /// A file's path, component, text and `included` flags.
    fn file(&self, index: usize) -> Option<(&str, &str, &str, &[bool])> {
        let f = self.files.get(index)?;
        let text = |range: &Range<usize>| self.strings.get(range.clone()).unwrap_or_default();
        let included = self.flags.get(f.included.clone()).unwrap_or_default();
        Some((text(&f.path), text(&f.component), text(&f.text), included))
    }

    /// Number of operations in the contract.
    pub fn operation_count(&self) -> usize {
        self.operation_count
    }

    /// Number of groups the contract is parsed in.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The contract's rule problems and its validation against the new schema (what
    /// [`operation_errors`](crate::operation_errors) finds on the whole contract), a group at
    /// a time on up to [`default_parallelism`] threads: give it to [`SplitContract::check`].
    pub fn validate(&self, new_schema: &Valid<Schema>) -> ContractValidation {
        let mut errors = self.rule_problems.clone();
        for (_, problems) in self.each_group(|group, part| {
            let mask: Vec<Vec<bool>> = self.parsed_by(group).map(|(_, mask)| mask.to_vec()).collect();
            validate_chunk(new_schema, part, &mask)
        }) {
            // A group whose files do not parse again (they did once) reports why: never a
            // group checked less without a word.
            errors.extend(problems.unwrap_or_else(|syntax| syntax));
        }
        ContractValidation::pack(finish(errors))
    }

    /// The check [`check_compact`](crate::check_compact) makes, with the usage of the
    /// contract's operations walked a group at a time on up to [`default_parallelism`] threads:
    /// `validation` is what [`SplitContract::validate`] found. The same report as
    /// [`check()`](crate::check()) on the whole contract.
    pub fn check(
        &self,
        old: &CompactSchema,
        new: &CompactSchema,
        validation: ContractValidation,
        options: CheckOptions,
    ) -> CheckReport {
        let changes = diff(old, new);
        let index = TouchIndex::new(&changes);
        let mut touches = Vec::new();
        for (_, touched) in self.each_group(|group, part| {
            let files: Vec<usize> = self.parsed_by(group).map(|(fi, _)| fi).collect();
            let own = part
                .operations()
                .iter()
                .enumerate()
                .filter(|(_, op)| files.get(op.file_index).is_some_and(|fi| group.own.contains(fi)));
            index.touches(old, new, part, own.map(|(i, _)| i).collect::<Vec<_>>())
        }) {
            // A group that does not parse again has said so in `validate`.
            touches.extend(touched.unwrap_or_default());
        }
        let checked = judge(changes, touches, options);
        report(old, new, self.operation_count, options, checked, validation.unpack())
    }

    /// `work` on each group's files parsed again, on up to [`default_parallelism`] threads,
    /// each group's result (or the syntax errors of its files) in contract order.
    fn each_group<R: Send>(
        &self,
        work: impl Fn(&Group, &Contract) -> R + Sync,
    ) -> Vec<(usize, Result<R, Vec<Problem>>)> {
        let next = AtomicUsize::new(0);
        let run = || {
            let mut done = Vec::new();
            while let Some(group) = self.groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                let files = self.parsed_by(group).filter_map(|(fi, _)| self.file(fi));
                let result = Contract::reparse(files)
                    .map(|part| work(group, &part))
                    .map_err(|e| e.problems().to_vec());
                done.push((group.own.start, result));
            }
            done
        };
        let threads = default_parallelism().min(self.groups.len());
        let mut done = if threads <= 1 {
            run()
        } else {
            std::thread::scope(|scope| {
                let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(run)).collect();
                let mut done = run();
                for h in helpers {
                    done.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                }
                done
            })
        };
        done.sort_unstable_by_key(|(start, _)| *start);
        done
    }
}

/// Appends `text` to `buffer` and says where it is.
fn append(buffer: &mut String, text: &str) -> Range<usize> {
    let start = buffer.len();
    buffer.push_str(text);
    start..buffer.len()
}

/// What [`SplitContract::validate`] found, kept in one string and one vector until
/// [`SplitContract::check`] reports it.
///
/// The problems are made while the new schema is loaded, in the gaps apollo-compiler's schema
/// leaves in memory; kept as they are (several strings each) once the schema is freed, they
/// would be scattered through the memory the base's model is built in next, which then could
/// not reuse it in large blocks (2–4 MiB more at `check`'s peak on the 500-operation contract).
#[derive(Debug, Default)]
pub struct ContractValidation {
    text: String,
    problems: Vec<PackedProblem>,
}

#[derive(Debug)]
struct PackedProblem {
    severity: crate::Severity,
    code: Range<usize>,
    message: Range<usize>,
    file: Range<usize>,
    line: Option<usize>,
    column: Option<usize>,
    component: Option<Range<usize>>,
    definition: Option<Range<usize>>,
}

impl ContractValidation {
    fn pack(problems: Vec<Problem>) -> ContractValidation {
        let bytes = problems
            .iter()
            .map(|p| {
                let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
                p.code.len()
                    + p.message.len()
                    + p.file.len()
                    + optional(&p.component)
                    + optional(&p.definition)
            })
            .sum();
        let mut text = String::with_capacity(bytes);
        let mut push = |s: &str| append(&mut text, s);
        let mut packed = Vec::with_capacity(problems.len());
        for p in &problems {
            packed.push(PackedProblem {
                severity: p.severity,
                code: push(&p.code),
                message: push(&p.message),
                file: push(&p.file),
                line: p.line,
                column: p.column,
                component: p.component.as_deref().map(&mut push),
                definition: p.definition.as_deref().map(&mut push),
            });
        }
        drop(problems);
        ContractValidation { text, problems: packed }
    }

    /// The problems, in the order they were found in.
    pub fn unpack(self) -> Vec<Problem> {
        let text = |range: &Range<usize>| self.text.get(range.clone()).unwrap_or_default().to_owned();
        self.problems
            .iter()
            .map(|p| Problem {
                severity: p.severity,
                code: text(&p.code),
                message: text(&p.message),
                file: text(&p.file),
                line: p.line,
                column: p.column,
                component: p.component.as_ref().map(text),
                definition: p.definition.as_ref().map(text),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContractSource, Severity, check, load_sdl};

    fn source(path: &str, text: &str) -> ContractSource {
        let component = path.split('/').nth(1).filter(|_| path.matches('/').count() > 1).unwrap_or("");
        ContractSource { path: path.to_owned(), component: component.to_owned(), text: text.to_owned() }
    }

    /// A contract whose fragments live in other files than the operations spreading them,
    /// with a duplicate fragment name (the first definition counts), a duplicate operation
    /// name, an anonymous operation spreading a fragment of a later file, an unused fragment,
    /// and an operation the new schema no longer validates.
    fn contract() -> Contract {
        Contract::from_sources([
            source("c/A/One.graphql", "query One { a { ...AFields } }"),
            source("c/A/Two.graphql", "query Two { a { x } b }\nquery One { b }"),
            source("c/B/Three.graphql", "{ a { ...Late } }\nquery Three($v: Int) { c(v: $v) }"),
            source("c/B/Four.graphql", "query Four { a { ...AFields y } }"),
            source("c/fragments.graphql", "fragment AFields on A { x y }\nfragment Unused on A { z }"),
            source("c/more.graphql", "fragment AFields on A { z }\nfragment Late on A { y z }"),
            source("c/C/Five.graphql", "query Five { b a { z } }"),
        ])
        .unwrap()
    }

    #[test]
    fn every_group_size_reports_what_the_whole_contract_reports() {
        let old = load_sdl(
            "old.graphql",
            "type Query { a: A, b: Int, c(v: Int): Int }\ntype A { x: Int, y: Int, z: String }",
        )
        .unwrap();
        let new = load_sdl(
            "new.graphql",
            "type Query { a: A, c(v: Int!): Int }\ntype A { x: Int, y: String, z: Int }",
        )
        .unwrap();
        let contract = contract();
        let whole = check(&old, &new, &contract, CheckOptions::default());
        // What the comparison rests on: errors of several kinds and touches through fragments of
        // other files.
        let codes: std::collections::BTreeSet<&str> =
            whole.operation_errors.iter().map(|p| p.code.as_str()).collect();
        assert!(
            codes.contains("ANONYMOUS_OPERATION") && codes.contains("DUPLICATE_OPERATION_NAME"),
            "{codes:?}"
        );
        assert!(
            codes.contains("DUPLICATE_FRAGMENT_NAME") && codes.contains("INVALID_OPERATION"),
            "{codes:?}"
        );
        assert!(
            whole.operation_errors.iter().any(|p| p.message.contains("Unused")),
            "{:?}",
            whole.operation_errors
        );
        assert!(
            whole.changes.iter().flat_map(|c| &c.operations).any(|o| o.file == "c/fragments.graphql"),
            "a change touches an operation through a fragment of another file"
        );
        assert!(whole.changes.iter().any(|c| c.severity == Severity::Error));
        for size in [1, 2, 3, 100] {
            let split = SplitContract::with_group_size(contract.clone(), size);
            let validation = split.validate(new.schema());
            let grouped = split.check(old.compact(), new.compact(), validation, CheckOptions::default());
            assert_eq!(grouped, whole, "groups of {size} operations ({} groups)", split.group_count());
        }
        // One group per file with an operation, and the two fragment files after the last.
        assert_eq!(SplitContract::with_group_size(contract, 1).group_count(), 6);
    }
}
