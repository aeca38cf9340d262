//! One small proto pair per rule, checked under each rule set (`wire`, `wire-json`, `file`),
//! with the levels buf's documentation gives where buf has the rule
//! (<https://buf.build/docs/breaking/rules/>): which category a rule is in decides whether the
//! change breaks under it.

use banyan_proto::{CheckOptions, CheckReport, Level, ProtoSet, Rules, Severity, Usage, check};

fn set(label: &str, files: &[(&str, &str)]) -> ProtoSet {
    match ProtoSet::from_sources(label, files.iter().copied()) {
        Ok(set) => set,
        Err(e) => panic!("{label} does not compile: {e}"),
    }
}

fn run(old: &[(&str, &str)], new: &[(&str, &str)], rules: Rules) -> CheckReport {
    check(&set("old", old), &set("new", new), &Usage::default(), CheckOptions { rules, strict: false })
}

/// `(kind, level)` of every change that is not safe, sorted.
fn unsafe_changes(report: &CheckReport) -> Vec<(String, Level)> {
    let mut v: Vec<(String, Level)> = report
        .changes
        .iter()
        .filter(|c| c.change.level != Level::Safe)
        .map(|c| (c.change.kind.to_owned(), c.change.level))
        .collect();
    v.sort();
    v
}

/// The level of the one change of `kind` under each rule set (wire, wire-json, file).
fn levels(old: &str, new: &str, kind: &str) -> [Option<Level>; 3] {
    [Rules::Wire, Rules::WireJson, Rules::File].map(|rules| {
        let report = run(&[("a.proto", old)], &[("a.proto", new)], rules);
        let found: Vec<Level> =
            report.changes.iter().filter(|c| c.change.kind == kind).map(|c| c.change.level).collect();
        assert!(found.len() <= 1, "{kind} reported {} times under {rules:?}", found.len());
        found.first().copied()
    })
}

const B: Option<Level> = Some(Level::Breaking);
const D: Option<Level> = Some(Level::Dangerous);
const S: Option<Level> = Some(Level::Safe);

fn proto3(body: &str) -> String {
    format!("syntax = \"proto3\";\npackage p.v1;\n{body}\n")
}

#[test]
fn identical_protos_have_no_changes() {
    let text = proto3("message A { int32 x = 1; }");
    let report = run(&[("a.proto", &text)], &[("a.proto", &text)], Rules::File);
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn field_removed_without_reserving_its_number_breaks_under_every_rule_set() {
    // buf: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED is in WIRE (and so in WIRE_JSON and FILE).
    let old = proto3("message A { int32 x = 1; int32 y = 2; }");
    let new = proto3("message A { int32 x = 1; }");
    assert_eq!(levels(&old, &new, "FIELD_REMOVED"), [B, B, B]);
}

#[test]
fn field_removed_with_only_its_number_reserved_breaks_json_not_wire() {
    // buf: FIELD_NO_DELETE_UNLESS_NAME_RESERVED is in WIRE_JSON, not in WIRE.
    let old = proto3("message A { int32 x = 1; int32 y = 2; }");
    let new = proto3("message A { int32 x = 1; reserved 2; }");
    assert_eq!(levels(&old, &new, "FIELD_REMOVED_NAME_NOT_RESERVED"), [D, B, B]);
    assert_eq!(levels(&old, &new, "FIELD_REMOVED"), [None, None, None]);
}

#[test]
fn field_removed_with_number_and_name_reserved_breaks_only_generated_code() {
    // buf: FIELD_NO_DELETE is in FILE only.
    let old = proto3("message A { int32 x = 1; int32 y = 2; }");
    let new = proto3("message A { int32 x = 1; reserved 2; reserved \"y\"; }");
    assert_eq!(levels(&old, &new, "FIELD_REMOVED_RESERVED"), [D, D, B]);
}

#[test]
fn a_field_number_reused_by_another_field_breaks() {
    let old = proto3("message A { int32 count = 1; }");
    let new = proto3("message A { string label = 1; }");
    assert_eq!(levels(&old, &new, "FIELD_NUMBER_REUSED"), [B, B, B]);
    // Reported once, not also as a rename and a type change.
    let report = run(&[("a.proto", &old)], &[("a.proto", &new)], Rules::WireJson);
    assert_eq!(unsafe_changes(&report), vec![("FIELD_NUMBER_REUSED".to_owned(), Level::Breaking)]);
}

#[test]
fn field_types_follow_wire_and_json_compatibility() {
    let pair = |from: &str, to: &str| {
        levels(
            &proto3(&format!("message A {{ {from} x = 1; }}")),
            &proto3(&format!("message A {{ {to} x = 1; }}")),
            "FIELD_TYPE_CHANGED",
        )
    };
    // Different wire types.
    assert_eq!(pair("int32", "string"), [B, B, B]);
    assert_eq!(pair("int64", "fixed64"), [B, B, B]);
    assert_eq!(pair("sint32", "int32"), [B, B, B]);
    // Varints: wire-compatible (buf's FIELD_WIRE_COMPATIBLE_TYPE lets int32 → int64 through),
    // but JSON writes int64 as a string (FIELD_WIRE_JSON_COMPATIBLE_TYPE does not).
    assert_eq!(pair("int32", "int64"), [D, B, B]);
    assert_eq!(pair("string", "bytes"), [D, B, B]);
    // Same wire and JSON shape: values may be reinterpreted (sign), nothing fails to parse.
    assert_eq!(pair("int32", "uint32"), [D, D, B]);
    assert_eq!(pair("fixed64", "sfixed64"), [D, D, B]);
}

#[test]
fn a_message_or_enum_type_change_breaks_even_when_identical() {
    // buf issue #80: changing to an identically shaped type is breaking under WIRE.
    let old = proto3("message A { B b = 1; } message B { int32 x = 1; } message C { int32 x = 1; }");
    let new = proto3("message A { C b = 1; } message B { int32 x = 1; } message C { int32 x = 1; }");
    assert_eq!(levels(&old, &new, "FIELD_TYPE_CHANGED"), [B, B, B]);
}

#[test]
fn cardinality_changes_break() {
    let old = proto3("message A { string x = 1; }");
    let new = proto3("message A { repeated string x = 1; }");
    assert_eq!(levels(&old, &new, "FIELD_CARDINALITY_CHANGED"), [B, B, B]);
    assert_eq!(levels(&new, &old, "FIELD_CARDINALITY_CHANGED"), [B, B, B]);
}

#[test]
fn explicit_presence_changes_break_only_generated_code() {
    let old = proto3("message A { string x = 1; }");
    let new = proto3("message A { optional string x = 1; }");
    assert_eq!(levels(&old, &new, "FIELD_PRESENCE_CHANGED"), [S, S, B]);
    assert_eq!(levels(&old, &new, "FIELD_ONEOF_CHANGED"), [None, None, None]);
}

#[test]
fn moving_a_field_into_or_out_of_a_oneof_breaks() {
    // buf: FIELD_SAME_ONEOF is in WIRE.
    let plain = proto3("message A { string x = 1; int32 y = 2; }");
    let into = proto3("message A { oneof choice { string x = 1; } int32 y = 2; }");
    assert_eq!(levels(&plain, &into, "FIELD_ONEOF_CHANGED"), [B, B, B]);
    let oneof = proto3("message A { oneof choice { string x = 1; int32 y = 2; } }");
    let report = run(&[("a.proto", &oneof)], &[("a.proto", &plain)], Rules::Wire);
    let out_of: Vec<&str> = report
        .changes
        .iter()
        .filter(|c| c.change.kind == "FIELD_ONEOF_CHANGED")
        .map(|c| c.change.element.as_str())
        .collect();
    assert_eq!(out_of, ["p.v1.A.x", "p.v1.A.y"]);
}

#[test]
fn a_renamed_field_is_dangerous_on_the_wire_and_breaking_in_json() {
    let old = proto3("message A { string template_id = 1; }");
    let new = proto3("message A { string template_key = 1; }");
    assert_eq!(levels(&old, &new, "FIELD_RENAMED"), [D, B, B]);
    let report = run(&[("a.proto", &old)], &[("a.proto", &new)], Rules::Wire);
    assert!(
        report.changes[0].change.message.contains("from `templateId` to `templateKey`"),
        "{}",
        report.changes[0].change.message
    );
}

#[test]
fn a_changed_json_name_is_dangerous_on_the_wire_and_breaking_in_json() {
    let old = proto3("message A { string x = 1; }");
    let new = proto3("message A { string x = 1 [json_name = \"ex\"]; }");
    assert_eq!(levels(&old, &new, "FIELD_JSON_NAME_CHANGED"), [D, B, B]);
}

#[test]
fn enum_value_removed_renumbered_or_renamed() {
    let old = proto3("enum K { K_UNSPECIFIED = 0; K_A = 1; K_B = 2; }");
    assert_eq!(
        levels(&old, &proto3("enum K { K_UNSPECIFIED = 0; K_A = 1; }"), "ENUM_VALUE_REMOVED"),
        [B, B, B]
    );
    assert_eq!(
        levels(
            &old,
            &proto3("enum K { K_UNSPECIFIED = 0; K_A = 1; reserved 2; }"),
            "ENUM_VALUE_REMOVED_NAME_NOT_RESERVED"
        ),
        [D, B, B]
    );
    assert_eq!(
        levels(&old, &proto3("enum K { K_UNSPECIFIED = 0; K_A = 1; K_B = 3; }"), "ENUM_VALUE_RENUMBERED"),
        [B, B, B]
    );
    // buf: ENUM_VALUE_SAME_NAME is in WIRE_JSON, not WIRE (JSON writes the name).
    assert_eq!(
        levels(&old, &proto3("enum K { K_UNSPECIFIED = 0; K_A = 1; K_C = 2; }"), "ENUM_VALUE_RENAMED"),
        [D, B, B]
    );
    assert_eq!(
        levels(&old, &proto3("enum K { K_UNSPECIFIED = 0; K_A = 1; K_B = 2; K_C = 3; }"), "ENUM_VALUE_ADDED"),
        [D, D, D]
    );
}

#[test]
fn removed_messages_enums_and_services_break() {
    let old = proto3("message A {} message B {} enum E { E_X = 0; } service S { rpc M(A) returns (A); }");
    let new = proto3("message A {}");
    assert_eq!(levels(&old, &new, "MESSAGE_REMOVED"), [B, B, B]);
    assert_eq!(levels(&old, &new, "ENUM_REMOVED"), [B, B, B]);
    assert_eq!(levels(&old, &new, "SERVICE_REMOVED"), [B, B, B]);
}

#[test]
fn rpc_removed_or_its_types_or_streaming_changed_break() {
    let old = proto3("message A {} message B {} service S { rpc M(A) returns (B); rpc N(A) returns (B); }");
    let kinds =
        |new: &str| unsafe_changes(&run(&[("a.proto", &old)], &[("a.proto", &proto3(new))], Rules::Wire));
    assert_eq!(
        kinds("message A {} message B {} service S { rpc M(A) returns (B); }"),
        vec![("RPC_REMOVED".to_owned(), Level::Breaking)]
    );
    assert_eq!(
        kinds("message A {} message B {} service S { rpc M(B) returns (B); rpc N(A) returns (A); }"),
        vec![
            ("RPC_REQUEST_TYPE_CHANGED".to_owned(), Level::Breaking),
            ("RPC_RESPONSE_TYPE_CHANGED".to_owned(), Level::Breaking)
        ]
    );
    assert_eq!(
        kinds(
            "message A {} message B {} service S { rpc M(A) returns (stream B); rpc N(stream A) returns (B); }"
        ),
        vec![
            ("RPC_STREAMING_CHANGED".to_owned(), Level::Breaking),
            ("RPC_STREAMING_CHANGED".to_owned(), Level::Breaking)
        ]
    );
}

#[test]
fn a_renamed_package_is_one_breaking_change_not_every_element_removed() {
    let old = "syntax = \"proto3\";\npackage p.v1;\nmessage A { B b = 1; }\nmessage B {}\nservice S { rpc M(A) returns (B); }\n";
    let new = "syntax = \"proto3\";\npackage p.v2;\nmessage A { B b = 1; }\nmessage B {}\nservice S { rpc M(A) returns (B); }\n";
    let report = run(&[("a.proto", old)], &[("a.proto", new)], Rules::WireJson);
    assert_eq!(unsafe_changes(&report), vec![("PACKAGE_CHANGED".to_owned(), Level::Breaking)]);
}

#[test]
fn file_rules_add_file_level_changes() {
    let old = proto3("option go_package = \"a\"; message A {}");
    let new = proto3("option go_package = \"b\"; message A {}");
    assert_eq!(levels(&old, &new, "FILE_OPTION_CHANGED"), [S, S, B]);
    // A message moved to another file: nothing changes on the wire, generated code moves.
    let before = [
        ("a.proto", "syntax = \"proto3\";\npackage p;\nmessage A {}\nmessage B {}\n"),
        ("b.proto", "syntax = \"proto3\";\npackage p;\n"),
    ];
    let after = [
        ("a.proto", "syntax = \"proto3\";\npackage p;\nmessage A {}\n"),
        ("b.proto", "syntax = \"proto3\";\npackage p;\nmessage B {}\n"),
    ];
    for (rules, level) in
        [(Rules::Wire, Level::Safe), (Rules::WireJson, Level::Safe), (Rules::File, Level::Breaking)]
    {
        let report = run(&before, &after, rules);
        let moved: Vec<Level> = report
            .changes
            .iter()
            .filter(|c| c.change.kind == "MESSAGE_MOVED")
            .map(|c| c.change.level)
            .collect();
        assert_eq!(moved, [level], "{rules:?}");
        assert!(!report.changes.iter().any(|c| c.change.kind == "MESSAGE_REMOVED"));
    }
}

#[test]
fn removing_a_reserved_range_breaks() {
    // buf: RESERVED_MESSAGE_NO_DELETE is in WIRE.
    let old = proto3("message A { reserved 5 to 9; }");
    let new = proto3("message A { reserved 5 to 8; }");
    assert_eq!(levels(&old, &new, "RESERVED_REMOVED"), [B, B, B]);
}

#[test]
fn an_unused_breaking_change_warns_and_strict_fails_on_it() {
    let old = set("old", &[("a.proto", &proto3("message A { int32 x = 1; }"))]);
    let new = set("new", &[("a.proto", &proto3("message A { }"))]);
    let lenient =
        check(&old, &new, &Usage::default(), CheckOptions { rules: Rules::WireJson, strict: false });
    assert_eq!(lenient.changes[0].severity, Severity::Warning);
    assert_eq!(lenient.exit_code(), 0);
    let strict = check(&old, &new, &Usage::default(), CheckOptions { rules: Rules::WireJson, strict: true });
    assert_eq!(strict.changes[0].severity, Severity::Error);
    assert_eq!(strict.exit_code(), 1);
}

/// A tiny crate using the protos as Banyan's sources do.
const LIB: &str = r#"
pub mod proto {
    pub mod p {
        tonic::include_proto!("p.v1");
    }
}
"#;

const CLIENT: &str = r#"
use crate::proto::p as pb;

pub struct Client;

impl Client {
    pub async fn get(&self) -> u64 {
        let request = pb::GetRequest { id: 1 };
        let response = self.inner.get_thing(request).await;
        response.thing.count
    }
}

#[cfg(test)]
mod tests {
    fn uses_everything(x: super::pb::Thing) -> i32 { x.unused_in_code }
}
"#;

const USED: &str = "message GetRequest { uint64 id = 1; }
message GetResponse { Thing thing = 1; }
message Thing { uint64 count = 1; int32 unused_in_code = 2; }
service S { rpc GetThing(GetRequest) returns (GetResponse); rpc Other(GetRequest) returns (GetRequest); }";

fn usage_of(base: &ProtoSet) -> Usage {
    let sources = [("lib.rs".to_owned(), LIB.to_owned()), ("client.rs".to_owned(), CLIENT.to_owned())];
    match Usage::from_sources("src", &sources, base) {
        Ok(usage) => usage,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn usage_is_read_from_the_code_and_names_where() {
    let base = set("old", &[("a.proto", &proto3(USED))]);
    let usage = usage_of(&base);
    let keys: Vec<&str> = usage.entries().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "field:p.v1.GetRequest.id",
            "field:p.v1.GetResponse.thing",
            "field:p.v1.Thing.count",
            "message:p.v1.GetRequest",
            "rpc:p.v1.S/GetThing",
        ]
    );
    let count = &usage.sites_of("field:p.v1.Thing.count")[0];
    assert_eq!((count.file.as_str(), count.line, count.column), ("src/client.rs", 10, 24));
    assert_eq!(count.function, "Client::get");
    assert_eq!(count.what, "reads `count`");
}

#[test]
fn a_breaking_change_to_a_used_field_fails_and_one_to_an_unused_field_warns() {
    let base = set("old", &[("a.proto", &proto3(USED))]);
    let usage = usage_of(&base);
    let new_text = proto3(&USED.replace(" uint64 count = 1;", "").replace(" int32 unused_in_code = 2;", ""));
    let new = set("new", &[("a.proto", &new_text)]);
    let report = check(&base, &new, &usage, CheckOptions::default());
    let verdicts: Vec<(&str, Severity, usize)> =
        report.changes.iter().map(|c| (c.change.element.as_str(), c.severity, c.uses.len())).collect();
    assert_eq!(
        verdicts,
        [("p.v1.Thing.count", Severity::Error, 1), ("p.v1.Thing.unused_in_code", Severity::Warning, 0)]
    );
    assert_eq!(report.exit_code(), 1);
    let text = report.render(banyan_proto::Format::Text { colour: false });
    assert!(text.contains("used by Client::get at src/client.rs:10:24: reads `count`"), "{text}");
    // An RPC Banyan does not call can go with a warning only.
    let without_other = proto3(&USED.replace(" rpc Other(GetRequest) returns (GetRequest);", ""));
    let report = check(&base, &set("new", &[("a.proto", &without_other)]), &usage, CheckOptions::default());
    assert_eq!(
        report.changes.iter().map(|c| (c.change.kind, c.severity)).collect::<Vec<_>>(),
        [("RPC_REMOVED", Severity::Warning)]
    );
}

#[test]
fn reserved_ranges_may_be_split_or_merged_but_not_shrunk() {
    let old = proto3("message A { reserved 5 to 9, 100 to max; }");
    // The same numbers, written differently: nothing removed.
    let same = proto3("message A { reserved 5, 6 to 7, 8 to 9; reserved 100 to 199, 200 to max; }");
    assert_eq!(levels(&old, &same, "RESERVED_REMOVED"), [None, None, None]);
    let shrunk = proto3("message A { reserved 5 to 9, 101 to max; }");
    let report = run(&[("a.proto", &old)], &[("a.proto", &shrunk)], Rules::Wire);
    let messages: Vec<&str> = report
        .changes
        .iter()
        .filter(|c| c.change.kind == "RESERVED_REMOVED")
        .map(|c| c.change.message.as_str())
        .collect();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("(first: 100)"), "{}", messages[0]);
    let enum_old = proto3("enum E { E_X = 0; reserved 3 to 6; }");
    let enum_new = proto3("enum E { E_X = 0; reserved 3, 4, 6; }");
    assert_eq!(levels(&enum_old, &enum_new, "RESERVED_REMOVED"), [B, B, B]);
}

#[test]
fn a_proto_that_does_not_compile_is_an_error_with_its_position() {
    let dir = std::env::temp_dir().join(format!("banyan-proto-bad-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("x")).expect("a scratch folder");
    std::fs::write(
        dir.join("x/a.proto"),
        "syntax = \"proto3\";\npackage x;\nmessage A {\n  int32 x = 1\n}\n",
    )
    .expect("a scratch file");
    let error = ProtoSet::load_dir(&dir).map(|_| ()).expect_err("a syntax error");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        error.to_string(),
        format!("{}/x/a.proto:5:1: expected ';' or '[', but found '}}'", dir.display())
    );
}

#[test]
fn every_format_names_the_change_and_the_code() {
    let base = set("old", &[("a.proto", &proto3(USED))]);
    let usage = usage_of(&base);
    let new = set("new", &[("a.proto", &proto3(&USED.replace(" uint64 count = 1;", "")))]);
    let report = check(&base, &new, &usage, CheckOptions::default());

    let json: serde_json::Value =
        serde_json::from_str(&report.render(banyan_proto::Format::Json)).expect("the JSON output parses");
    assert_eq!(json["format"], "banyan-proto-check");
    assert_eq!(json["version"], 1);
    assert_eq!(json["rules"], "wire-json");
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["summary"]["breaking_used"], 1);
    let change = &json["changes"][0];
    assert_eq!(change["kind"], "FIELD_REMOVED");
    assert_eq!(change["buf_rule"], "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED");
    assert_eq!(change["element"], "p.v1.Thing.count");
    assert_eq!(change["severity"], "error");
    assert_eq!(change["location"]["file"], "old/a.proto");
    assert_eq!(change["location"]["line"], 5);
    assert_eq!(change["uses"][0]["function"], "Client::get");
    assert_eq!(change["uses"][0]["line"], 10);

    let github = report.render(banyan_proto::Format::Github);
    let lines: Vec<&str> = github.lines().collect();
    assert!(lines[0].starts_with("::error file=old/a.proto,line=5,col="), "{github}");
    assert!(lines[1].starts_with("::error file=src/client.rs,line=10,col=24,title=breaking proto change%3A FIELD_REMOVED::Client::get reads `count` is affected"), "{github}");
    assert_eq!(
        lines.last().copied(),
        Some("::notice title=Proto check::FAILED: 1 breaking change touches what Banyan uses.")
    );

    let markdown = report.render(banyan_proto::Format::Markdown);
    assert!(markdown.starts_with("## ❌ Proto check failed\n"), "{markdown}");
    assert!(markdown.contains("| ❌ | Field `p.v1.Thing.count` (1) was removed"), "{markdown}");
    assert!(markdown.contains("`Client::get` (`src/client.rs:10:24`): reads `count`"), "{markdown}");
}
