//! How much memory apollo-compiler needs for one large schema: peak and kept RSS after parsing
//! and validating it whole, or parsed in chunks of about `CHUNK` bytes cut between top-level
//! definitions (a probe for issue 11's memory target; README, "Schema diff and check at scale").
//!
//! `cargo run --release -p banyan-schema --example parse_memory -- /tmp/synth/new.graphql 0`
//! (whole) or `… 65536` (chunks, cut as `schema diff` and `check` cut them), or `… parts` (the
//! compact model built a chunk at a time, as the base of a comparison is loaded), after
//! `--example synth_schemas -- /tmp/synth`.

use apollo_compiler::Schema;

/// `VmHWM` (peak) and `VmRSS` (now) of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: parse_memory SCHEMA.graphql CHUNK_BYTES (0: whole)")?;
    let mode = args.next().unwrap_or_else(|| "0".to_owned());
    let text = std::fs::read_to_string(&path)?;
    let (_, before) = memory();
    let started = std::time::Instant::now();
    if mode == "parts" {
        let compact = banyan_schema::load_base_compact(&path, &text, None)?;
        let (peak, now) = memory();
        eprintln!(
            "{} types modelled in parts in {:?}: peak {} KiB, kept {} KiB (model {} KiB; RSS before: {before} KiB)",
            compact.type_count(),
            started.elapsed(),
            peak,
            now.saturating_sub(before),
            compact.heap_bytes() / 1024
        );
        return Ok(());
    }
    let chunk: usize = mode.parse()?;
    let schema = if chunk == 0 {
        Schema::parse(&text, &path).map_err(|e| e.errors.to_string())?
    } else {
        let parts = banyan_schema::sdl::definition_chunks(&text, chunk);
        eprintln!("{} chunks", parts.len());
        let mut builder = Schema::builder();
        for (_, part) in parts {
            builder = builder.parse(part, &path);
        }
        builder.build().map_err(|e| e.errors.to_string())?
    };
    let valid = schema.validate().map_err(|e| e.errors.to_string())?;
    let (peak, now) = memory();
    eprintln!(
        "{} types in {:?}: peak {} KiB, kept {} KiB (RSS before: {before} KiB)",
        valid.types.len(),
        started.elapsed(),
        peak,
        now.saturating_sub(before)
    );
    Ok(())
}
