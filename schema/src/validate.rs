//! Validation of the contract against a schema: every operation must validate (apollo-compiler's
//! executable validation), operation and fragment names must be unique across the contract,
//! and use of deprecated fields, arguments, input fields and enum values is a warning.

use std::sync::atomic::{AtomicUsize, Ordering};

use apollo_compiler::ast;
use apollo_compiler::diagnostic::ToCliReport;
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{ExecutableDocument, Schema};
use serde::Serialize;

use crate::contract::Contract;
use crate::problem::{self, Problem, Severity};
use crate::sdl::Sdl;
use crate::usage::Collector;
use crate::{EXIT_FAILURE, EXIT_OK};

/// The result of [`validate_contract`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// The schema's path label.
    pub schema: String,
    /// Number of contract operations.
    pub operations: usize,
    /// Errors: invalid operations and contract rule violations. Any error fails (exit 1).
    pub errors: Vec<Problem>,
    /// Warnings: deprecated usage. Never fail.
    pub warnings: Vec<Problem>,
}

impl ValidationReport {
    /// 1 when there is an error, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.errors.is_empty() { EXIT_OK } else { EXIT_FAILURE }
    }

    /// Whether there is no error.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates every contract operation against `schema`.
pub fn validate_contract(schema: &Sdl, contract: &Contract) -> ValidationReport {
    let errors = operation_errors(schema.schema(), contract);
    let mut collector = Collector::new(schema.compact(), contract, true);
    for i in 0..contract.operations().len() {
        collector.operation(i);
    }
    let mut warnings = collector.take_deprecations();
    sort_problems(&mut warnings);
    warnings.dedup();
    ValidationReport {
        schema: schema.path().to_owned(),
        operations: contract.operations().len(),
        errors,
        warnings,
    }
}

pub(crate) fn sort_problems(v: &mut [Problem]) {
    v.sort_by(|a, b| (&a.file, a.line, a.column, &a.message).cmp(&(&b.file, b.line, b.column, &b.message)));
}

/// The contract's rule violations plus apollo-compiler's build and validation errors of its
/// operations against `schema`, located and attributed to the operation or fragment they sit
/// in, sorted: [`ValidationReport::errors`], and [`CheckReport::operation_errors`](crate::CheckReport::operation_errors)
/// when given to [`check_compact`](crate::check_compact).
pub fn operation_errors(schema: &Valid<Schema>, contract: &Contract) -> Vec<Problem> {
    let threads = default_parallelism();
    let documents = contract.operations().len().div_ceil(OPERATIONS_PER_DOCUMENT).max(threads);
    let chunks = plan_chunks(contract, documents);
    let mut out: Vec<Problem> = contract.rule_problems().to_vec();
    // Each worker builds, validates and drops one document at a time.
    let next = AtomicUsize::new(0);
    let work = || {
        let mut found = Vec::new();
        while let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
            found.extend(validate_chunk(schema, contract, chunk));
        }
        found
    };
    if chunks.len() <= 1 || threads <= 1 {
        out.extend(work());
    } else {
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            out.extend(work());
            for h in helpers {
                out.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
        });
    }
    finish(out)
}

/// Operations per document validated at once: apollo-compiler's executable document and its
/// validation's working memory cost about 20 KiB per operation, so documents of this size keep
/// that to about a MiB each.
const OPERATIONS_PER_DOCUMENT: usize = 64;

/// Sorts and removes duplicates (a fragment validated in two chunks reports twice).
pub(crate) fn finish(mut out: Vec<Problem>) -> Vec<Problem> {
    sort_problems(&mut out);
    out.dedup_by(|a, b| a.file == b.file && a.line == b.line && a.message == b.message);
    out
}

/// How many threads validation may use.
pub(crate) fn default_parallelism() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4)
}

/// Which definitions of each file a chunk validates (`mask[file][definition]`).
pub(crate) type Chunk = Vec<Vec<bool>>;

/// Splits the contract into up to `n` independently valid documents: each holds a share of
/// the operations plus every fragment those use; the first also holds the fragments no
/// operation uses (so they are reported as unused). Small contracts are not split.
pub(crate) fn plan_chunks(contract: &Contract, n: usize) -> Vec<Chunk> {
    let ops: Vec<&crate::ContractOperation> = contract
        .operations()
        .iter()
        .filter(|op| {
            contract
                .files()
                .get(op.file_index)
                .and_then(|f| f.included.get(op.def_index))
                .copied()
                .unwrap_or(false)
        })
        .collect();
    let n = if ops.len() < 100 { 1 } else { n.max(1) };
    let empty: Chunk = contract.files().iter().map(|f| vec![false; f.included.len()]).collect();
    let mut chunks = vec![empty; n];
    let mut used_anywhere = chunks[0].clone();
    let per = ops.len().div_ceil(n).max(1);
    for (i, op) in ops.iter().enumerate() {
        let chunk = &mut chunks[(i / per).min(n - 1)];
        chunk[op.file_index][op.def_index] = true;
        for name in contract.fragment_closure(&op.node.selection_set) {
            if let Some((f, d)) = contract.fragment_position(&name) {
                chunk[f][d] = true;
                used_anywhere[f][d] = true;
            }
        }
    }
    // Fragments nobody uses (and any other included definition not placed yet) go to the
    // first chunk.
    for (fi, file) in contract.files().iter().enumerate() {
        for (di, inc) in file.included.iter().enumerate() {
            let placed = chunks.iter().any(|c| c[fi][di]);
            if *inc && !placed && !used_anywhere[fi][di] {
                chunks[0][fi][di] = true;
            }
        }
    }
    chunks
}

/// apollo-compiler's build and validation errors for the definitions of one chunk.
pub(crate) fn validate_chunk(
    valid_schema: &Valid<Schema>,
    contract: &Contract,
    chunk: &Chunk,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut build_errors = DiagnosticList::new(valid_schema.sources.clone());
    let mut builder = ExecutableDocument::builder(Some(valid_schema), &mut build_errors);
    let mut any = false;
    for (file, mask) in contract.files().iter().zip(chunk) {
        let definitions: Vec<ast::Definition> = file
            .document
            .definitions
            .iter()
            .zip(mask)
            .filter(|(_, inc)| **inc)
            .map(|(d, _)| d.clone())
            .collect();
        if definitions.is_empty() {
            continue;
        }
        any = true;
        let mut doc = ast::Document::new();
        doc.sources = file.document.sources.clone();
        doc.definitions = definitions;
        builder.add_ast_document(&doc, false);
    }
    let document = builder.build();
    if any {
        convert(contract, &build_errors, &mut out);
        if let Err(e) = document.validate(valid_schema) {
            convert(contract, &e.errors, &mut out);
        }
    }
    out
}

fn convert(contract: &Contract, list: &DiagnosticList, out: &mut Vec<Problem>) {
    for d in list.iter() {
        let span = d.error.location();
        let pos = problem::line_col(d.sources, span);
        let file_index = contract.file_index_of(span);
        let file = file_index.and_then(|i| contract.file(i));
        let definition = match (file_index, span) {
            (Some(i), Some(s)) => contract.definition_at(i, s.offset()),
            _ => None,
        };
        out.push(Problem {
            severity: Severity::Error,
            code: "INVALID_OPERATION".to_owned(),
            message: problem::one_line(&d.error.to_string()),
            file: file
                .map(|f| f.path.clone())
                .or_else(|| problem::file_label(d.sources, span))
                .unwrap_or_default(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            component: file.map(|f| f.component.clone()),
            definition,
        });
    }
}
