//! The loader (protox-parse, then `src/link.rs`) against protox's compiler, the oracle: on every
//! construct the `.proto` writer covers, on Banyan's committed protos and on a set built to
//! exercise protobuf's scoping rules, both give the same descriptors; and what protox refuses,
//! the loader refuses too, naming the element at fault.

use std::collections::BTreeMap;

use banyan_proto::ProtoSet;
use prost_types::FileDescriptorProto;
use prost_types::source_code_info::Location;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

mod support;
use support::{OTHER, RICH2, RICH3};

struct Memory(BTreeMap<String, String>);

impl FileResolver for Memory {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(text) => File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// What protox's compiler makes of `files`, imports included.
fn protox_compile(files: &[(&str, &str)]) -> Result<Vec<FileDescriptorProto>, protox::Error> {
    let map: BTreeMap<String, String> =
        files.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
    let mut resolver = ChainFileResolver::new();
    resolver.add(Memory(map.clone()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(true);
    for name in map.keys() {
        compiler.open_file(name)?;
    }
    Ok(compiler.file_descriptor_set().file)
}

fn load(files: &[(&str, &str)]) -> Result<ProtoSet, banyan_proto::ProtoError> {
    ProtoSet::from_sources("t", files.iter().copied())
}

/// Asserts both sides agree, file by file: the descriptors without source info, and every
/// location the loader gives that is not an option's (protox moves an option's location from
/// its uninterpreted path to the option's field, which nothing here reads).
fn assert_same(files: &[(&str, &str)]) {
    let expected = match protox_compile(files) {
        Ok(files) => files,
        Err(e) => panic!("protox refuses the input: {e}"),
    };
    let actual = match load(files) {
        Ok(set) => set.all_files().cloned().collect::<Vec<_>>(),
        Err(e) => panic!("the loader refuses what protox compiles: {e}"),
    };
    let names = |f: &[FileDescriptorProto]| f.iter().map(|f| f.name().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&actual), names(&expected), "files and their order");
    for (a, e) in actual.iter().zip(&expected) {
        let strip = |f: &FileDescriptorProto| FileDescriptorProto { source_code_info: None, ..f.clone() };
        assert_eq!(strip(a), strip(e), "{}", a.name());
        let locations = |f: &FileDescriptorProto| -> Vec<Location> {
            f.source_code_info.iter().flat_map(|i| i.location.iter()).cloned().collect()
        };
        let expected_locations = locations(e);
        let mut compared = 0;
        for location in locations(a).into_iter().filter(|l| !l.path.contains(&UNINTERPRETED_OPTION)) {
            assert!(expected_locations.contains(&location), "{}: {location:?} is not protox's", a.name());
            compared += 1;
        }
        assert!(compared > 0 || a.source_code_info.is_none(), "{}: no locations compared", a.name());
    }
}

/// `uninterpreted_option`'s field number in every options message.
const UNINTERPRETED_OPTION: i32 = 999;

#[test]
fn every_construct_the_writer_covers_links_as_protox_links_it() {
    assert_same(&[("rich/v1/rich.proto", RICH3), ("rich/v1/other.proto", OTHER)]);
    assert_same(&[("legacy.proto", RICH2)]);
}

#[test]
fn the_committed_service_protos_link_as_protox_compiles_them() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../sources/proto"));
    let mut names: Vec<String> = Vec::new();
    for entry in walk(root) {
        names.push(entry.strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default());
    }
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    let texts: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), std::fs::read_to_string(root.join(n)).unwrap_or_default()))
        .collect();
    let refs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert_same(&refs);
    // And from the folder, as `proto check` loads it.
    let from_dir = ProtoSet::load_dir(root).map(|s| s.all_files().len()).unwrap_or(0);
    assert_eq!(from_dir, load(&refs).map(|s| s.all_files().len()).unwrap_or(usize::MAX));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    out
}

/// Relative, partly and fully qualified names, shadowing, names through `import public`,
/// groups, extensions (top-level and nested), custom options and every standard option kind.
const SCOPE: &str = r#"syntax = "proto3";
package a.b.c;

import "a/b/base.proto";
import "a/reexport.proto";

option optimize_for = CODE_SIZE;
option cc_enable_arenas = true;
option java_package = "com.example.abc";
option deprecated = false;

message Inner { int32 x = 1; }

message Outer {
  option deprecated = true;
  message Inner { string y = 1; }
  enum Level { LEVEL_UNSPECIFIED = 0; LEVEL_HIGH = 1 [deprecated = true]; }
  Inner mine = 1;
  b.Inner base = 2;
  .a.b.c.Inner top = 3;
  c.Inner sibling = 4;
  Deep deep = 5;
  Level level = 6;
  Outer.Level again = 7;
  repeated Deep.Kind kinds = 8 [packed = true];
  map<int32, b.Inner> by_id = 9;
  optional int64 big = 10 [jstype = JS_STRING, deprecated = true];
  oneof pick {
    option (a.oneof_note) = "x";
    string text = 11 [ctype = CORD];
    Inner inner = 12;
  }
}

service S {
  option deprecated = true;
  rpc Get(Inner) returns (b.Inner) { option idempotency_level = NO_SIDE_EFFECTS; }
  rpc Stream(stream Outer.Inner) returns (stream .a.Deep);
}
"#;

const BASE: &str = "syntax = \"proto3\";\npackage a.b;\nmessage Inner { bool z = 1; }\n";
const REEXPORT: &str = "syntax = \"proto3\";\npackage a;\nimport public \"a/deep.proto\";\n";
const DEEP: &str = r#"syntax = "proto3";
package a;
import "google/protobuf/descriptor.proto";
message Deep { enum Kind { KIND_UNSPECIFIED = 0; } Kind kind = 1; }
extend google.protobuf.OneofOptions { string oneof_note = 50001; }
"#;

const LEGACY: &str = r#"syntax = "proto2";
package g;
import "google/protobuf/descriptor.proto";
extend google.protobuf.FieldOptions { optional string my_opt = 50002; }
message WithGroup {
  optional group Result = 1 { optional string url = 2; }
  optional int32 v = 3 [(my_opt) = "x", deprecated = true, default = 4];
  extensions 10 to 20;
  extend WithGroup { optional int32 nested_ext = 11; }
}
extend WithGroup { optional string top_ext = 12; }
enum E { option allow_alias = true; E_A = 1; E_B = 1; }
"#;

#[test]
fn scoping_imports_groups_extensions_and_options_link_as_protox_links_them() {
    assert_same(&[
        ("a/b/c/scope.proto", SCOPE),
        ("a/b/base.proto", BASE),
        ("a/reexport.proto", REEXPORT),
        ("a/deep.proto", DEEP),
    ]);
    assert_same(&[("g/legacy.proto", LEGACY)]);
}

/// In-memory files: (name, text).
type Files<'a> = &'a [(&'a str, &'a str)];

/// What protox refuses, the loader refuses, at `line:col` of the element at fault.
#[test]
fn what_protox_refuses_the_loader_refuses_where_it_is() {
    let cases: &[(&str, Files<'_>, &str)] = &[
        (
            "undefined type",
            &[("x.proto", "syntax = \"proto3\";\nmessage A {\n  Missing m = 1;\n}\n")],
            "t/x.proto:3:3: 'Missing' is not defined",
        ),
        (
            "a type not imported",
            &[
                ("x.proto", "syntax = \"proto3\";\npackage p;\nmessage A {\n  B b = 1;\n}\n"),
                ("y.proto", "syntax = \"proto3\";\npackage p;\nmessage B {}\n"),
            ],
            "t/x.proto:4:3: 'B' resolves to 'p.B', defined in 'y.proto', which 'x.proto' does not import",
        ),
        (
            "a duplicate field number",
            &[("x.proto", "syntax = \"proto3\";\nmessage A {\n  int32 a = 1;\n  int32 b = 1;\n}\n")],
            "t/x.proto:4:13: field number 1 is used by both 'a' and 'b'",
        ),
        (
            "a reserved number",
            &[("x.proto", "syntax = \"proto3\";\nmessage A {\n  reserved 2 to 4;\n  int32 a = 3;\n}\n")],
            "t/x.proto:4:13: field 'a' uses reserved number 3",
        ),
        (
            "protobuf's own numbers",
            &[("x.proto", "syntax = \"proto3\";\nmessage A {\n  int32 a = 19000;\n}\n")],
            "t/x.proto:3:13: field number 19000 is in the range protobuf keeps for itself",
        ),
        (
            "a name defined twice",
            &[
                ("x.proto", "syntax = \"proto3\";\npackage p;\nmessage A {}\n"),
                ("y.proto", "syntax = \"proto3\";\npackage p;\nmessage A {}\n"),
            ],
            "t/y.proto:3:1: name 'p.A' is defined twice (first in 'x.proto')",
        ),
        (
            "an enum number twice",
            &[("x.proto", "syntax = \"proto3\";\nenum E {\n  E_A = 0;\n  E_B = 0;\n}\n")],
            "t/x.proto:4:9: 'E_A' and 'E_B' have the same number 0",
        ),
        (
            "one json name twice",
            &[(
                "x.proto",
                "syntax = \"proto3\";\nmessage A {\n  int32 foo_bar = 1;\n  int32 fooBar = 2;\n}\n",
            )],
            "t/x.proto:4:9: fields 'foo_bar' and 'fooBar' have the same json name 'fooBar'",
        ),
        (
            "an unknown option",
            &[("x.proto", "syntax = \"proto3\";\nmessage A {\n  int32 a = 1 [colour = true];\n}\n")],
            "t/x.proto:3:3: option 'colour' is unknown",
        ),
        (
            "an undefined custom option",
            &[("x.proto", "syntax = \"proto3\";\nmessage A {\n  int32 a = 1 [(nope) = true];\n}\n")],
            "t/x.proto:3:3: option '(nope)' is not a defined extension",
        ),
        (
            "an option of the wrong type",
            &[("x.proto", "syntax = \"proto3\";\nmessage A {\n  int32 a = 1 [deprecated = 3];\n}\n")],
            "t/x.proto:3:3: option 'deprecated' expects true or false",
        ),
        (
            "a missing import",
            &[("x.proto", "syntax = \"proto3\";\nimport \"gone.proto\";\n")],
            "t/x.proto:2:1: import 'gone.proto' not found",
        ),
        (
            "an import cycle",
            &[
                ("x.proto", "syntax = \"proto3\";\nimport \"y.proto\";\n"),
                ("y.proto", "syntax = \"proto3\";\nimport \"x.proto\";\n"),
            ],
            "import cycle: x.proto -> y.proto -> x.proto",
        ),
        (
            "a method taking an enum",
            &[(
                "x.proto",
                "syntax = \"proto3\";\nenum E { E_A = 0; }\nservice S {\n  rpc M(E) returns (E);\n}\n",
            )],
            "t/x.proto:4:9: 'E' is not a message type",
        ),
    ];
    for (what, files, expected) in cases {
        assert!(protox_compile(files).is_err(), "{what}: protox accepts it, so the case proves nothing");
        assert_refused(what, files, expected);
    }
    // protoc refuses a reserved field name ("Field name \"a\" is reserved."); protox does not
    // check it, so here protoc's rule is the reference.
    let reserved_name =
        [("x.proto", "syntax = \"proto3\";\nmessage A {\n  reserved \"a\";\n  int32 a = 3;\n}\n")];
    assert!(protox_compile(&reserved_name).is_ok(), "protox now checks reserved names: move the case up");
    assert_refused("a reserved name", &reserved_name, "t/x.proto:4:9: field name 'a' is reserved");
}

fn assert_refused(what: &str, files: &[(&str, &str)], expected: &str) {
    match load(files) {
        Ok(_) => panic!("{what}: the loader accepts it"),
        Err(e) => assert!(e.to_string().contains(expected), "{what}: {e}\n  expected: {expected}"),
    }
}

/// `proto check` loads both sides at once and shares the files that are the same on both: each
/// side must come out as it does loaded alone, including a file whose text is unchanged but
/// whose import changed (it must link against the new import).
#[test]
fn loading_both_sides_at_once_gives_each_side_as_loading_it_alone() {
    let root = std::env::temp_dir().join(format!("banyan-link-both-{}", std::process::id()));
    let write = |side: &str, files: &[(&str, &str)]| {
        for (name, text) in files {
            let path = root.join(side).join(name);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("a scratch folder");
            std::fs::write(path, text).expect("a scratch file");
        }
    };
    let importer =
        "syntax = \"proto3\";\npackage p;\nimport \"p/dep.proto\";\nmessage User { Dep dep = 1; }\n";
    let unchanged = "syntax = \"proto3\";\npackage q;\nmessage Alone { int32 a = 1; }\n";
    write(
        "base",
        &[
            ("p/dep.proto", "syntax = \"proto3\";\npackage p;\nmessage Dep { int32 a = 1; }\n"),
            ("p/user.proto", importer),
            ("q/alone.proto", unchanged),
        ],
    );
    // `Dep` becomes an enum: the unchanged importer's field must turn from message to enum.
    write(
        "new",
        &[
            ("p/dep.proto", "syntax = \"proto3\";\npackage p;\nenum Dep { DEP_UNSPECIFIED = 0; }\n"),
            ("p/user.proto", importer),
            ("q/alone.proto", unchanged),
        ],
    );
    let sources = root.join("src");
    std::fs::create_dir_all(&sources).expect("a scratch folder");
    let both = banyan_proto::CheckInputs::load(&root.join("base"), &root.join("new"), &sources);
    let alone = |side: &str| match ProtoSet::load_dir(&root.join(side)) {
        Ok(set) => set.all_files().cloned().collect::<Vec<_>>(),
        Err(e) => panic!("{side}: {e}"),
    };
    let (base_alone, new_alone) = (alone("base"), alone("new"));
    let _ = std::fs::remove_dir_all(&root);
    let both = match both {
        Ok(both) => both,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(both.old.all_files().cloned().collect::<Vec<_>>(), base_alone);
    assert_eq!(both.new.all_files().cloned().collect::<Vec<_>>(), new_alone);
    let user_dep = |files: &[FileDescriptorProto]| {
        let user = files.iter().find(|f| f.name() == "p/user.proto").expect("user.proto");
        user.message_type[0].field[0].r#type()
    };
    assert_eq!(user_dep(&base_alone), prost_types::field_descriptor_proto::Type::Message);
    assert_eq!(user_dep(&new_alone), prost_types::field_descriptor_proto::Type::Enum);
}
