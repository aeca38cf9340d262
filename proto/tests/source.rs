//! `.proto` text written from descriptors: compiling what was written gives back the same
//! descriptors as compiling the original (protox is the oracle), and writing is a fixed point.

use banyan_proto::{ProtoSet, render_set};
use prost_types::FileDescriptorProto;

const RICH3: &str = r#"// File comment, detached.

// Leading comment of syntax.
syntax = "proto3";

package rich.v1;

import "google/protobuf/timestamp.proto";
import public "rich/v1/other.proto";

option go_package = "example.com/rich/v1;richv1";
option java_multiple_files = true;

// A service.
service Things {
  option deprecated = true;
  // Unary.
  rpc Get(Request) returns (Thing);
  rpc Watch(Request) returns (stream Thing); // trailing
  rpc Upload(stream Thing) returns (Request) {
    option idempotency_level = IDEMPOTENT;
  }
  rpc Chat(stream Request) returns (stream Thing);
}

// A request.
message Request {
  string id = 1 [json_name = "ident"];
  optional int32 limit = 2;
  repeated int64 values = 3 [packed = false];
  map<string, Thing> by_name = 4;
  oneof choice {
    string text = 5;
    bytes data = 6 [deprecated = true];
  }
  google.protobuf.Timestamp at = 7;
  Other other = 8;
  repeated Thing.Part parts = 10;
  reserved 9, 12 to 14, 100 to max;
  reserved "old", "older";
}

message Thing {
  option deprecated = true;

  // Nested.
  message Part {
    Kind kind = 1;
    Thing owner = 2;
  }

  enum Kind {
    option allow_alias = true;
    KIND_UNSPECIFIED = 0;
    KIND_A = 1;
    KIND_ALIAS = 1 [deprecated = true];
    reserved 5 to 7;
    reserved "KIND_GONE";
  }
  repeated Part parts = 1;
  Kind main_kind = 2;
  jstype_holder holder = 3;
}

message jstype_holder {
  int64 big = 1 [jstype = JS_STRING];
}
"#;

const OTHER: &str = "syntax = \"proto3\";\n\npackage rich.v1;\n\nmessage Other {\n  string name = 1;\n}\n";

const RICH2: &str = r#"syntax = "proto2";

package legacy;

message Old {
  required string id = 1;
  optional int32 count = 2 [default = 7];
  optional string label = 3 [default = "a \"quoted\" label"];
  optional Mode mode = 4 [default = MODE_B];
  repeated double ratios = 5 [packed = true];
  extensions 100 to 199;
}

enum Mode {
  MODE_A = 1;
  MODE_B = 2;
}

extend Old {
  optional string note = 100;
}
"#;

fn compile(files: &[(&str, &str)]) -> ProtoSet {
    match ProtoSet::from_sources("t", files.iter().copied()) {
        Ok(set) => set,
        Err(e) => panic!("does not compile: {e}"),
    }
}

fn written(set: &ProtoSet) -> Vec<(String, String)> {
    match render_set(set.all_files()) {
        Ok(files) => files.into_iter().collect(),
        Err(e) => panic!("cannot write: {e}"),
    }
}

/// Descriptors without source info (positions and comments), by name.
fn without_source_info(set: &ProtoSet) -> Vec<FileDescriptorProto> {
    set.own_files().map(|f| FileDescriptorProto { source_code_info: None, ..f.clone() }).collect()
}

fn comments(set: &ProtoSet) -> Vec<String> {
    let mut out: Vec<String> = set
        .own_files()
        .flat_map(|f| f.source_code_info.iter().flat_map(|i| i.location.iter()))
        .flat_map(|l| {
            l.leading_detached_comments
                .iter()
                .chain(l.leading_comments.iter())
                .chain(l.trailing_comments.iter())
                .cloned()
        })
        .collect();
    out.sort();
    out
}

fn round_trip(files: &[(&str, &str)]) {
    let original = compile(files);
    let first = written(&original);
    let first_refs: Vec<(&str, &str)> = first.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let recompiled = compile(&first_refs);
    assert_eq!(without_source_info(&recompiled), without_source_info(&original), "written:\n{first:#?}");
    assert_eq!(comments(&recompiled), comments(&original));
    assert_eq!(written(&recompiled), first, "writing is not a fixed point");
}

#[test]
fn proto3_with_every_construct_round_trips() {
    round_trip(&[("rich/v1/rich.proto", RICH3), ("rich/v1/other.proto", OTHER)]);
}

#[test]
fn proto2_with_defaults_required_and_extensions_round_trips() {
    round_trip(&[("legacy.proto", RICH2)]);
}

#[test]
fn the_committed_service_protos_are_written_back_byte_for_byte() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../sources/proto");
    let set = match ProtoSet::load_dir(std::path::Path::new(root)) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    };
    let files = written(&set);
    assert_eq!(files.len(), 2);
    for (name, text) in files {
        let committed = std::fs::read_to_string(format!("{root}/{name}")).unwrap_or_default();
        assert_eq!(text, committed, "{name}");
    }
}

#[test]
fn type_names_are_the_shortest_that_resolve_to_the_same_type() {
    // `Inner` inside `Outer` would resolve to `Outer.Inner` from a message with its own `Inner`.
    let text = "syntax = \"proto3\";\npackage a.b;\nmessage Inner {}\nmessage Outer {\n  message Inner {}\n  a.b.Inner top = 1;\n  Inner mine = 2;\n}\n";
    let set = compile(&[("x.proto", text)]);
    let out = &written(&set)[0].1;
    assert!(out.contains("  b.Inner top = 1;") || out.contains("  a.b.Inner top = 1;"), "{out}");
    assert!(out.contains("  Inner mine = 2;"), "{out}");
    round_trip(&[("x.proto", text)]);
}
