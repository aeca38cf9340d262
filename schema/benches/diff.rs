//! Benchmark: `check` (diff + usage + validation of the contract against the new schema) on
//! two 5,000-type schemas, the new one with a few hundred changes of mixed kinds, and 500
//! contract operations. Target: under 200 ms on 2 cores (release).
//!
//! Run with `cargo bench -p banyan-schema`.

use std::sync::OnceLock;
use std::time::Instant;

use banyan_schema::{CheckOptions, Contract, Sdl, check, diff, load_sdl, validate_contract};

#[path = "support/synth.rs"]
mod synth;

struct Input {
    old: Sdl,
    new: Sdl,
    contract: Contract,
}

fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(|| {
        let (old, new, files) = synth::generate(5_000, 500, 400);
        let old = load_sdl("old.graphql", &old).expect("generated old schema is valid");
        let new = load_sdl("new.graphql", &new).expect("generated new schema is valid");
        let contract = Contract::from_sources(files).expect("generated contract parses");
        Input { old, new, contract }
    })
}

fn main() {
    let i = input();
    // One plain measurement, printed before divan's table.
    let start = Instant::now();
    let report = check(&i.old, &i.new, &i.contract, CheckOptions::default());
    let elapsed = start.elapsed();
    let s = report.summary();
    eprintln!(
        "check: {} types, {} operations, {} changes ({} breaking, {} dangerous, {} safe), {} breaking touching operations, {} operation errors: {:.1} ms",
        i.old.schema().types.len(),
        s.operations,
        report.changes.len(),
        s.breaking,
        s.dangerous,
        s.safe,
        s.breaking_touching_operations,
        s.operation_errors,
        elapsed.as_secs_f64() * 1000.0
    );
    divan::main();
}

/// diff + usage + touches + validation against the new schema: what `banyan schema check` does
/// after loading its inputs.
#[divan::bench(sample_count = 20)]
fn check_5000_types_500_ops() -> usize {
    let i = input();
    check(&i.old, &i.new, &i.contract, CheckOptions::default()).changes.len()
}

/// The schema diff alone.
#[divan::bench(sample_count = 20)]
fn diff_5000_types() -> usize {
    let i = input();
    diff(&i.old, &i.new).len()
}

/// Validation of the 500 operations (with deprecation warnings).
#[divan::bench(sample_count = 20)]
fn validate_500_ops() -> usize {
    let i = input();
    validate_contract(&i.new, &i.contract).errors.len()
}

/// Parsing and validating one 5,000-type SDL file (not part of the target; for reference).
#[divan::bench(sample_count = 10)]
fn load_sdl_5000_types(bencher: divan::Bencher) {
    let text = synth::generate(5_000, 1, 0).0;
    bencher.bench(|| load_sdl("schema.graphql", &text).map(|s| s.schema().types.len()))
}

/// What `banyan schema diff` and `check` do per schema: parse in chunks on two threads,
/// validate, build the compact model, drop apollo-compiler's schema.
#[divan::bench(sample_count = 10)]
fn load_compact_5000_types(bencher: divan::Bencher) {
    let text = synth::generate(5_000, 1, 0).0;
    bencher.bench(|| banyan_schema::load_compact("schema.graphql", &text).map(|s| s.type_count()))
}

/// Usage of the 500 operations in one schema.
#[divan::bench(sample_count = 20)]
fn usage_500_ops() -> usize {
    let i = input();
    banyan_schema::operation_usage(&i.new, &i.contract).len()
}
