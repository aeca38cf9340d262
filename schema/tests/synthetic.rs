//! Keeps the benchmark's generator honest: its schemas are valid, its operations validate
//! against the old schema, and its changes cover many kinds.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use std::collections::BTreeSet;

use banyan_schema::{CheckOptions, Contract, check, load_sdl, validate_contract};

#[path = "../benches/support/synth.rs"]
mod synth;

#[test]
fn generated_inputs_are_valid_and_varied() {
    let (old, new, files) = synth::generate(600, 60, 300);
    let old = load_sdl("old.graphql", &old).unwrap();
    let new = load_sdl("new.graphql", &new).unwrap();
    let contract = Contract::from_sources(files).unwrap();
    assert_eq!(contract.operations().len(), 60);
    let valid = validate_contract(&old, &contract);
    assert!(valid.errors.is_empty(), "{:#?}", &valid.errors[..valid.errors.len().min(5)]);
    let report = check(&old, &new, &contract, CheckOptions::default());
    let kinds: BTreeSet<&str> = report.changes.iter().map(|c| c.change.kind.as_str()).collect();
    assert!(kinds.len() >= 12, "{kinds:?}");
    assert!(report.summary().breaking_touching_operations > 0);
}

/// The diff of the 5,000-type pair the benchmarks and the README's figures use agrees, kind by
/// kind, with the generator's own record of what it changed (counted on its models, not SDL).
#[test]
fn the_diff_of_the_generated_pair_counts_what_the_generator_changed() {
    let (old, new) = synth::generate_documented(5_000, 486);
    let expected = synth::expected_changes(5_000, 486);
    let old = load_sdl("old.graphql", &old).unwrap();
    let new = load_sdl("new.graphql", &new).unwrap();
    let mut counted: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for change in banyan_schema::diff(&old, &new) {
        *counted.entry(change.kind.as_str()).or_default() += 1;
    }
    assert_eq!(counted, expected);
    assert_eq!(expected.values().sum::<usize>(), 477);
}

/// The lean paths (each schema parsed in chunks, validated, kept only as its compact model, the
/// contract validated against the new schema while it is loaded; and the CLI's, with the
/// contract in groups and the base read a chunk at a time into the same model, listed line by
/// line) report exactly what the whole path does (each schema parsed whole and kept, the model
/// built from it), positions included, on the 5,000-type pair; and the model is a small part of
/// what apollo-compiler keeps for the same schema (about 27 MiB).
#[test]
fn schemas_loaded_lean_in_chunks_check_as_schemas_loaded_whole() {
    let (old_text, new_text) = synth::generate_documented(5_000, 486);
    let (_, _, files) = synth::generate(5_000, 500, 486);
    let contract = Contract::from_sources(files).unwrap();
    let whole_old = load_sdl("old.graphql", &old_text).unwrap();
    let whole_new = load_sdl("new.graphql", &new_text).unwrap();
    let whole = check(&whole_old, &whole_new, &contract, CheckOptions::default());
    drop((whole_old, whole_new));

    let lean_old = banyan_schema::load_compact("old.graphql", &old_text).unwrap();
    let (lean_new, errors) = banyan_schema::load_compact_with("new.graphql", &new_text, |schema| {
        banyan_schema::operation_errors(schema, &contract)
    })
    .unwrap();
    let lean = banyan_schema::check_compact(&lean_old, &lean_new, &contract, errors, CheckOptions::default());
    assert_eq!(lean, whole);
    // The CLI's path: the contract split into groups of files, each parsed again and validated
    // while the new schema is loaded, the base modelled a chunk at a time, then each group
    // parsed again and walked.
    let split = banyan_schema::SplitContract::new(contract.clone());
    assert!(split.group_count() >= 7, "{} groups", split.group_count());
    let (_, validation) =
        banyan_schema::load_compact_with("new.graphql", &new_text, |schema| split.validate(schema)).unwrap();
    let parts_old = banyan_schema::load_base_compact("old.graphql", &old_text, Some(&lean_new)).unwrap();
    assert_eq!(parts_old.hash(), lean_old.hash());
    assert_eq!(parts_old.listing(), lean_old.listing());
    let parts_new = banyan_schema::load_base_compact("new.graphql", &new_text, None).unwrap();
    assert_eq!(parts_new.listing(), lean_new.listing());
    let grouped = split.check(&parts_old, &lean_new, validation, CheckOptions::default());
    assert_eq!(grouped, whole);
    assert_eq!(whole.changes.len(), 477);
    assert!(!whole.operation_errors.is_empty());
    assert!(whole.changes.iter().all(|c| c.change.location.is_some()));
    assert_eq!(lean_old.hash(), banyan_schema::schema_hash(&old_text));
    assert!(lean_new.heap_bytes() < 6 << 20, "{} bytes", lean_new.heap_bytes());
}
