//! How much memory apollo-compiler needs for one large schema: peak and kept RSS after parsing
//! and validating it whole, or parsed in chunks of about `CHUNK` bytes cut between top-level
//! definitions (a probe for issue 11's memory target; README, "Schema diff and check at scale").
//!
//! `cargo run --release -p banyan-schema --example parse_memory -- /tmp/synth/new.graphql 0`
//! (whole) or `… 65536` (chunks), after `--example synth_schemas -- /tmp/synth`.

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

/// `text` cut after a line that ends a top-level definition's braces, outside strings and
/// comments, once a chunk holds at least `target` bytes.
fn chunks(text: &str, target: usize) -> Vec<&str> {
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut start, mut closed) = (0usize, 0i32, 0usize, false);
    let mut out = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !(bytes[i..].starts_with(b"\"\"\"") && bytes[i - 1] != b'\\') {
                    i += 1;
                }
                i += 3;
                closed = false;
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                closed = false;
                continue;
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                closed = false;
            }
            c @ (b'}' | b')' | b']') => {
                depth -= 1;
                closed = c == b'}' && depth == 0;
            }
            b'\n' if depth == 0 && closed && i + 1 - start >= target => {
                out.push(&text[start..=i]);
                start = i + 1;
            }
            b' ' | b'\t' | b'\r' | b',' | b'\n' => {}
            _ => closed = false,
        }
        i += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: parse_memory SCHEMA.graphql CHUNK_BYTES (0: whole)")?;
    let chunk: usize = args.next().unwrap_or_else(|| "0".to_owned()).parse()?;
    let text = std::fs::read_to_string(&path)?;
    let (_, before) = memory();
    let started = std::time::Instant::now();
    let schema = if chunk == 0 {
        Schema::parse(&text, &path).map_err(|e| e.errors.to_string())?
    } else {
        let parts = chunks(&text, chunk);
        eprintln!("{} chunks", parts.len());
        let mut builder = Schema::builder();
        for part in parts {
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
