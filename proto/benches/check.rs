//! Benchmark: `proto check` on 200 generated `.proto` files per side (20 packages, each file
//! with a service of 5 RPCs, 10 messages with scalar, enum, message, map, repeated and oneof
//! fields, a nested message and 2 enums), the new side with changes of every kind in one file of
//! ten. Measured as `banyan proto check` works after start: load both folders (protox-parse and `src/link.rs`), read
//! Banyan's sources for usage, diff and classify. The inputs come from `support/synth.rs`
//! (`examples/synth_protos.rs` writes them to disk for whole-process runs). Target: under 100 ms on 2 cores (release).
//!
//! Run with `cargo bench -p banyan-proto`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use banyan_proto::{CheckInputs, CheckOptions, ProtoSet, Usage, check};

#[path = "support/synth.rs"]
mod synth;
use synth::FILES;

struct Input {
    base: PathBuf,
    new: PathBuf,
    sources: PathBuf,
}

fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("banyan-proto-bench-{}", std::process::id()));
        let base = synth::write_side(&root.join("base"), false).expect("a scratch folder");
        let new = synth::write_side(&root.join("new"), true).expect("a scratch folder");
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sources/src");
        Input { base, new, sources }
    })
}

/// What `banyan proto check` does after start: load, read usage, check.
fn whole_check(i: &Input) -> banyan_proto::CheckReport {
    let inputs = CheckInputs::load(&i.base, &i.new, &i.sources).expect("both sides load");
    let report = check(&inputs.old, &inputs.new, &inputs.usage, CheckOptions::default());
    // As the command does: it ends right after, without freeing the descriptors.
    std::mem::forget(inputs);
    report
}

fn main() {
    let i = input();
    let start = Instant::now();
    let report = whole_check(i);
    let elapsed = start.elapsed();
    let s = report.summary();
    eprintln!(
        "proto check: {FILES} files per side, {} changes ({} breaking, {} dangerous, {} safe): {:.1} ms (first run)",
        report.changes.len(),
        s.breaking,
        s.dangerous,
        s.safe,
        elapsed.as_secs_f64() * 1000.0
    );
    divan::main();
    let _ = std::fs::remove_dir_all(i.base.parent().unwrap_or(&i.base));
}

/// Load both folders, read usage, diff and classify: the whole command after start.
#[divan::bench(sample_count = 20)]
fn check_200_files() -> usize {
    whole_check(input()).changes.len()
}

/// Loading (protox) one side of 200 files.
#[divan::bench(sample_count = 20)]
fn load_200_files() -> usize {
    ProtoSet::load_dir(&input().base).expect("the base compiles").all_files().len()
}

/// The diff and classification alone, on loaded sides.
#[divan::bench(sample_count = 20)]
fn diff_only(bencher: divan::Bencher<'_, '_>) {
    let i = input();
    let old = ProtoSet::load_dir(&i.base).expect("the base compiles");
    let new = ProtoSet::load_dir(&i.new).expect("the new side compiles");
    let usage = Usage::default();
    bencher.bench(|| check(&old, &new, &usage, CheckOptions::default()).changes.len());
}
