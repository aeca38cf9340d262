//! The generated protos of `proto check`'s benchmark: 200 files per side in 20 packages, each
//! file importing a well-known type and the file 20 before it, with a service of 5 RPCs, 10
//! messages (scalar, enum, message, map, repeated and oneof fields, a nested message) and 2
//! enums; the new side edits one file in ten with changes of every kind. Shared by the benchmark
//! and `examples/synth_protos.rs`; deterministic.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Files per side.
pub(crate) const FILES: usize = 200;
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

/// Writes one side under `root` (`bench/p<package>/v1/f<n>.proto`); `changed` writes the new side.
pub(crate) fn write_side(root: &Path, changed: bool) -> std::io::Result<PathBuf> {
    for n in 0..FILES {
        let dir = root.join(format!("bench/p{}/v1", n % PACKAGES));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("f{n}.proto")), proto_file(n, changed))?;
    }
    Ok(root.to_path_buf())
}
