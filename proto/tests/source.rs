//! `.proto` text written from descriptors: compiling what was written gives back the same
//! descriptors as compiling the original, and writing is a fixed point. (`tests/link.rs` checks
//! the loader against protox on the same files.)

use banyan_proto::{ProtoSet, render_set};
use prost_types::FileDescriptorProto;

mod support;
use support::{OTHER, RICH2, RICH3};

fn compile(files: &[(&str, &str)]) -> ProtoSet {
    match ProtoSet::from_sources("t", files.iter().copied()) {
        Ok(set) => set,
        Err(e) => panic!("does not compile: {e}"),
    }
}

fn written(set: &ProtoSet) -> Vec<(String, String)> {
    match render_set(&set.all_files().cloned().collect::<Vec<_>>()) {
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
