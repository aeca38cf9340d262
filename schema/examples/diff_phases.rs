//! Times each phase of `banyan schema check` in process, with the peak memory after each, for
//! profiling: `cargo run --release -p banyan-schema --example diff_phases -- OLD NEW [CONTRACT]`
//! (after `--example synth_schemas -- /tmp/synth`). The phases are the CLI's: the contract
//! loaded and kept as its texts, the new schema loaded (parsed in chunks on two threads and
//! validated, the contract validated a group of files at a time, apollo-compiler's schema
//! dropped, then the compact model read from the text with cynic-parser), the old schema read
//! into its model the same way, then the diff (timed on its own here; the check makes it
//! again), the usage walks and touches, and the rendering.
#![allow(clippy::print_stdout)] // a command-line tool

use std::time::Instant;

use banyan_schema::{
    CheckOptions, Contract, Format, SplitContract, diff, load_base_compact_file, load_compact_file_with,
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

/// CPU time of this process so far (user and system, every thread), in milliseconds, from
/// `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<f64>().ok()).sum();
    ticks * 10.0
}

fn phase(name: &str, start: Instant) {
    let (peak, now) = memory_mib();
    println!(
        "{name:<32} {:6.1} ms   RSS {now:5.1} MiB, peak {peak:5.1} MiB, CPU so far {:4.0} ms",
        start.elapsed().as_secs_f64() * 1000.0,
        cpu_ms()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: diff_phases OLD NEW [CONTRACT]";
    let (old_path, new_path) = (args.next().ok_or(usage)?, args.next().ok_or(usage)?);
    let contract_dir = args.next();
    let all = Instant::now();
    let t = Instant::now();
    let whole = match &contract_dir {
        Some(dir) => Contract::load(dir)?,
        None => Contract::from_sources([])?,
    };
    phase("load contract", t);
    let t = Instant::now();
    let contract = SplitContract::new(whole);
    phase(&format!("split it ({} groups)", contract.group_count()), t);
    let t = Instant::now();
    let (new, validation) = load_compact_file_with(&new_path, |schema| {
        phase("load new (parsed, validated)", t);
        let t = Instant::now();
        let validation = contract.validate(schema);
        phase("validate the contract (groups parsed again)", t);
        validation
    })?;
    phase(&format!("load new + validate + read (compact: {} KiB)", new.heap_bytes() / 1024), t);
    let t = Instant::now();
    let old = load_base_compact_file(&old_path, Some(&new))?;
    phase(&format!("read old (compact: {} KiB)", old.heap_bytes() / 1024), t);
    let t = Instant::now();
    let changes = diff(&old, &new);
    phase(&format!("diff ({} changes)", changes.len()), t);
    let t = Instant::now();
    let report = contract.check(&old, &new, validation, CheckOptions::default());
    phase("check (diff, groups parsed again, usage, touches)", t);
    let t = Instant::now();
    let text = report.render(Format::Text { colour: false });
    let json = report.render(Format::Json);
    phase(&format!("render text + JSON ({} KiB)", (text.len() + json.len()) / 1024), t);
    phase("total", all);
    Ok(())
}
