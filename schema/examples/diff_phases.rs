//! Times each phase of `banyan schema check` in process, with the peak memory after each, for
//! profiling: `cargo run --release -p banyan-schema --example diff_phases -- OLD NEW [CONTRACT]`
//! (after `--example synth_schemas -- /tmp/synth`). The phases are the CLI's: the old schema
//! loaded into its compact model (parsed in chunks on two threads, validated, compacted,
//! apollo-compiler's schema dropped), the new one the same way with the contract validated
//! against it before the drop, then the diff, the usage walks and touches, and the rendering.
#![allow(clippy::print_stdout)] // a command-line tool

use std::time::Instant;

use banyan_schema::{
    CheckOptions, Contract, Format, check_compact, diff, load_compact, load_compact_with, operation_errors,
};

/// `VmHWM` (peak RSS so far) and `VmRSS` (RSS now) of this process, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn phase(name: &str, start: Instant) {
    let (peak, now) = memory_mib();
    println!(
        "{name:<32} {:6.1} ms   RSS {now:5.1} MiB, peak {peak:5.1} MiB",
        start.elapsed().as_secs_f64() * 1000.0
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: diff_phases OLD NEW [CONTRACT]";
    let (old_path, new_path) = (args.next().ok_or(usage)?, args.next().ok_or(usage)?);
    let contract_dir = args.next();
    let all = Instant::now();
    let t = Instant::now();
    let old_text = std::fs::read_to_string(&old_path)?;
    let new_text = std::fs::read_to_string(&new_path)?;
    phase("read both", t);
    let t = Instant::now();
    let old = load_compact(&old_path, &old_text)?;
    drop(old_text);
    phase(&format!("load old (compact: {} KiB)", old.heap_bytes() / 1024), t);
    let t = Instant::now();
    let contract = match &contract_dir {
        Some(dir) => Contract::load(dir)?,
        None => Contract::from_sources([])?,
    };
    phase("load contract", t);
    let t = Instant::now();
    let (new, errors) =
        load_compact_with(&new_path, &new_text, |schema| operation_errors(schema, &contract))?;
    drop(new_text);
    phase(&format!("load new + contract ({} KiB)", new.heap_bytes() / 1024), t);
    let t = Instant::now();
    let changes = diff(&old, &new);
    phase(&format!("diff ({} changes)", changes.len()), t);
    let t = Instant::now();
    let report = check_compact(&old, &new, &contract, errors, CheckOptions::default());
    phase("check (diff, usage, touches)", t);
    let t = Instant::now();
    let text = report.render(Format::Text { colour: false });
    let json = report.render(Format::Json);
    phase(&format!("render text + JSON ({} KiB)", (text.len() + json.len()) / 1024), t);
    phase("total", all);
    Ok(())
}
