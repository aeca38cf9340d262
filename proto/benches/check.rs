//! Benchmark: `proto check` on 200 generated `.proto` files per side (20 packages, each file
//! with a service of 5 RPCs, 10 messages with scalar, enum, message, map, repeated and oneof
//! fields, a nested message and 2 enums), the new side with changes of every kind in one file of
//! ten. Measured as `banyan proto check` works after start: load both folders (protox), read
//! Banyan's sources for usage, diff and classify. Target: under 100 ms on 2 cores (release).
//!
//! Run with `cargo bench -p banyan-proto`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use banyan_proto::{CheckOptions, ProtoSet, Usage, check};

const FILES: usize = 200;
const PACKAGES: usize = 20;

/// One generated file; `changed` applies the edits of the new side.
fn proto_file(n: usize, changed: bool) -> String {
    let package = n % PACKAGES;
    let mut s = String::new();
    let _ = writeln!(s, "// Generated file {n}.\nsyntax = \"proto3\";\n\npackage bench.p{package}.v1;\n");
    let _ = writeln!(s, "import \"google/protobuf/timestamp.proto\";");
    if n >= PACKAGES {
        let _ = writeln!(s, "import \"bench/p{package}/v1/f{}.proto\";", n - PACKAGES);
    }
    let _ = writeln!(s, "\noption go_package = \"example.com/bench/p{package}\";\n");
    let edit = changed && n % 10 == 3;
    let _ = writeln!(s, "// Service {n}.\nservice S{n} {{");
    for r in 0..5 {
        if edit && r == 4 {
            continue; // RPC removed
        }
        let stream = if r == 3 { "stream " } else { "" };
        let _ = writeln!(s, "  // RPC {r}.\n  rpc Call{r}(M{n}_{r}) returns ({stream}M{n}_{});", r + 1);
    }
    let _ = writeln!(s, "}}\n");
    for e in 0..2 {
        let _ = writeln!(
            s,
            "enum E{n}_{e} {{\n  E{n}_{e}_UNSPECIFIED = 0;\n  E{n}_{e}_ONE = 1;\n  E{n}_{e}_TWO = 2;"
        );
        if edit && e == 0 {
            let _ = writeln!(s, "  E{n}_{e}_THREE = 3;"); // value added
        }
        if !(edit && e == 1) {
            let _ = writeln!(s, "  E{n}_{e}_FOUR = 4;"); // value removed
        }
        let _ = writeln!(s, "}}\n");
    }
    for m in 0..10 {
        let _ = writeln!(s, "// Message {m} of file {n}.\nmessage M{n}_{m} {{");
        let _ = writeln!(s, "  // An id.\n  string id = 1;");
        if edit && m == 1 {
            let _ = writeln!(s, "  int64 count = 2;"); // type changed
        } else {
            let _ = writeln!(s, "  int32 count = 2;");
        }
        if edit && m == 2 {
            let _ = writeln!(s, "  repeated string labels_renamed = 3;"); // renamed
        } else {
            let _ = writeln!(s, "  repeated string labels = 3;");
        }
        let _ = writeln!(
            s,
            "  E{n}_0 kind = 4;\n  google.protobuf.Timestamp at = 5;\n  map<string, int64> totals = 6;"
        );
        if !(edit && m == 3) {
            let _ = writeln!(s, "  Inner inner = 7;"); // removed
        }
        let _ = writeln!(s, "  oneof choice {{\n    string text = 8;\n    bytes data = 9;\n  }}");
        if n >= PACKAGES {
            let _ = writeln!(s, "  M{}_{m} previous = 10;", n - PACKAGES);
        }
        if edit && m == 4 {
            let _ = writeln!(s, "  string added = 11;"); // added
        }
        let _ = writeln!(s, "  reserved 20 to 25;\n  reserved \"gone\";");
        let _ = writeln!(s, "  message Inner {{\n    bool flag = 1;\n    double ratio = 2;\n  }}\n}}\n");
    }
    s
}

struct Input {
    base: PathBuf,
    new: PathBuf,
    sources: PathBuf,
}

fn write_side(root: &Path, changed: bool) -> PathBuf {
    for n in 0..FILES {
        let dir = root.join(format!("bench/p{}/v1", n % PACKAGES));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        std::fs::write(dir.join(format!("f{n}.proto")), proto_file(n, changed)).expect("a scratch file");
    }
    root.to_path_buf()
}

fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("banyan-proto-bench-{}", std::process::id()));
        let base = write_side(&root.join("base"), false);
        let new = write_side(&root.join("new"), true);
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sources/src");
        Input { base, new, sources }
    })
}

/// What `banyan proto check` does after start: load, read usage, check.
fn whole_check(i: &Input) -> banyan_proto::CheckReport {
    let (old, new) = ProtoSet::load_dirs(&i.base, &i.new).expect("both sides compile");
    let usage = Usage::scan(&i.sources, &old).expect("the sources parse");
    check(&old, &new, &usage, CheckOptions::default())
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
