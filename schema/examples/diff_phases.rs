//! Times each phase of `banyan schema diff` in process, for profiling:
//! `cargo run --release -p banyan-schema --example diff_phases -- OLD NEW` prints reading,
//! parsing, validating, hashing and diffing (one side after the other, then both in parallel).
#![allow(clippy::print_stdout)] // a command-line tool

use std::time::Instant;

use apollo_compiler::Schema;
use banyan_schema::{diff, load_sdl, schema_hash};

fn ms(start: Instant) -> String {
    format!("{:7.1} ms", start.elapsed().as_secs_f64() * 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (old_path, new_path) = (args.next().ok_or("usage: diff_phases OLD NEW")?, args.next().ok_or("NEW")?);
    let t = Instant::now();
    let old_text = std::fs::read_to_string(&old_path)?;
    let new_text = std::fs::read_to_string(&new_path)?;
    println!("read            {}", ms(t));
    let t = Instant::now();
    let parsed = Schema::parse(&old_text, &old_path).map_err(|e| e.errors.to_string())?;
    println!("parse (one)     {}", ms(t));
    let t = Instant::now();
    let valid = parsed.validate().map_err(|e| e.errors.to_string())?;
    println!("validate (one)  {}", ms(t));
    drop(valid);
    let t = Instant::now();
    let hash = schema_hash(&old_text);
    println!("hash (one)      {} {}", ms(t), &hash[..15]);
    let t = Instant::now();
    let old = load_sdl(&old_path, &old_text)?;
    let new = load_sdl(&new_path, &new_text)?;
    println!("load both       {}", ms(t));
    let t = Instant::now();
    let (old2, new2) = std::thread::scope(|s| {
        let o = s.spawn(|| load_sdl(&old_path, &old_text));
        let n = load_sdl(&new_path, &new_text);
        (o.join(), n)
    });
    println!("load both (par) {}", ms(t));
    drop((old2, new2));
    let t = Instant::now();
    let changes = diff(&old, &new);
    println!("diff            {} ({} changes)", ms(t), changes.len());
    Ok(())
}
