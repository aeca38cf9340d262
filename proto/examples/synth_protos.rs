//! Writes the `proto check` benchmark's generated protos to disk, for measuring `banyan proto
//! check` as a whole process:
//!
//! ```sh
//! cargo run --release -p banyan-proto --example synth_protos -- /tmp/synth-protos
//! banyan proto check --base /tmp/synth-protos/base --new /tmp/synth-protos/new
//! ```
//!
//! Deterministic: the same bytes every time.
#![allow(clippy::print_stdout)] // a command-line tool

#[path = "../benches/support/synth.rs"]
mod synth;

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::args().nth(1).ok_or("usage: synth_protos DIR")?);
    let base = synth::write_side(&root.join("base"), false)?;
    let new = synth::write_side(&root.join("new"), true)?;
    println!("{} files per side: {} and {}", synth::FILES, base.display(), new.display());
    Ok(())
}
