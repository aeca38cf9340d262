//! Writes the benchmark's generated inputs to disk, for measuring `banyan schema diff` and
//! `banyan schema check` as whole processes:
//!
//! ```sh
//! cargo run --release -p banyan-schema --example synth_schemas -- /tmp/synth
//! banyan schema diff /tmp/synth/old.graphql /tmp/synth/new.graphql
//! banyan schema check --base /tmp/synth/old.graphql --new /tmp/synth/new.graphql --contract /tmp/synth/contract
//! ```
//!
//! `synth_schemas DIR [TYPES [OPERATIONS [CHANGES]]]` (defaults 5000, 500, 486: two documented
//! 5,000-type schemas of about 1.7 MB with 477 changes; the operations are the benchmark's). Deterministic: the same arguments write the same
//! bytes. Prints the change counts by kind the generator expects (from its own models).
#![allow(clippy::print_stdout)] // a command-line tool

#[path = "../benches/support/synth.rs"]
mod synth;

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: synth_schemas DIR [TYPES [OPERATIONS [CHANGES]]]")?);
    let mut number = |default: usize| args.next().map_or(Ok(default), |a| a.parse::<usize>());
    let (types, ops, changes) = (number(5_000)?, number(500)?, number(486)?);
    let (_, _, files) = synth::generate(types, ops, changes);
    let (old, new) = synth::generate_documented(types, changes);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("old.graphql"), &old)?;
    std::fs::write(dir.join("new.graphql"), &new)?;
    let contract = dir.join("contract");
    let _ = std::fs::remove_dir_all(&contract);
    for file in files {
        let rel = file.path.strip_prefix("frontend-contract/").unwrap_or(&file.path);
        let path = contract.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, file.text)?;
    }
    let expected = synth::expected_changes(types, changes);
    println!(
        "{}: old {} bytes, new {} bytes, {ops} operations, {} changes expected",
        dir.display(),
        old.len(),
        new.len(),
        expected.values().sum::<usize>()
    );
    for (kind, n) in expected {
        println!("  {kind:<28} {n}");
    }
    Ok(())
}
