//! One schema pair per change kind (table-driven): each pair must produce exactly the listed
//! changes, each with the level written in the case (not read from the implementation's
//! table); a snapshot records messages and positions for review. The levels of the kinds
//! graphql-js has are checked against graphql-js's own lists, copied below.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use std::collections::BTreeSet;
use std::fmt::Write as _;

use banyan_schema::{ChangeKind, Level, Side, diff, load_sdl};

struct Case {
    name: &'static str,
    old: &'static str,
    new: &'static str,
    /// Every expected change: (kind, coordinate, level).
    expect: &'static [(&'static str, &'static str, Level)],
}

const Q: &str = "type Query { a: Int }\n";

macro_rules! case {
    ($name:literal, $old:expr, $new:expr, [$(($k:literal, $c:literal, $l:ident)),* $(,)?]) => {
        Case { name: $name, old: $old, new: $new, expect: &[$(($k, $c, Level::$l)),*] }
    };
}

fn cases() -> Vec<Case> {
    vec![
        // ----- breaking -----
        case!(
            "type removed",
            "type Query { a: Int }\ntype Foo { x: Int }",
            "type Query { a: Int }",
            [("TYPE_REMOVED", "Foo", Breaking)]
        ),
        case!(
            "type changed kind",
            "type Query { a: Int }\ntype Foo { x: Int }",
            "type Query { a: Int }\ninterface Foo { x: Int }",
            [("TYPE_CHANGED_KIND", "Foo", Breaking)]
        ),
        case!(
            "type removed from union",
            "type Query { u: U }\ntype A { x: Int }\ntype B { y: Int }\nunion U = A | B",
            "type Query { u: U }\ntype A { x: Int }\ntype B { y: Int }\nunion U = A",
            [("TYPE_REMOVED_FROM_UNION", "U", Breaking)]
        ),
        case!(
            "enum value removed",
            "type Query { e: E }\nenum E { ONE TWO }",
            "type Query { e: E }\nenum E { ONE }",
            [("VALUE_REMOVED_FROM_ENUM", "E.TWO", Breaking)]
        ),
        case!(
            "required input field added",
            "type Query { f(i: I): Int }\ninput I { a: Int }",
            "type Query { f(i: I): Int }\ninput I { a: Int\n b: Int! }",
            [("REQUIRED_INPUT_FIELD_ADDED", "I.b", Breaking)]
        ),
        case!(
            "implemented interface removed",
            "type Query { n: N }\ninterface N { id: ID }\ntype T implements N { id: ID }",
            "type Query { n: N }\ninterface N { id: ID }\ntype T { id: ID }",
            [("IMPLEMENTED_INTERFACE_REMOVED", "T", Breaking)]
        ),
        case!("field removed", "type Query { a: Int\n b: Int }", Q, [("FIELD_REMOVED", "Query.b", Breaking)]),
        case!(
            "input field removed",
            "type Query { f(i: I): Int }\ninput I { a: Int\n b: Int }",
            "type Query { f(i: I): Int }\ninput I { a: Int }",
            [("FIELD_REMOVED", "I.b", Breaking)]
        ),
        case!(
            "field changed kind",
            "type Query { a: Int }",
            "type Query { a: String }",
            [("FIELD_CHANGED_KIND", "Query.a", Breaking)]
        ),
        case!(
            "input field changed kind",
            "type Query { f(i: I): Int }\ninput I { a: Int }",
            "type Query { f(i: I): Int }\ninput I { a: Int! }",
            [("FIELD_CHANGED_KIND", "I.a", Breaking)]
        ),
        case!(
            "required argument added",
            "type Query { a: Int }",
            "type Query { a(x: Int!): Int }",
            [("REQUIRED_ARG_ADDED", "Query.a(x:)", Breaking)]
        ),
        case!(
            "argument removed",
            "type Query { a(x: Int): Int }",
            "type Query { a: Int }",
            [("ARG_REMOVED", "Query.a(x:)", Breaking)]
        ),
        case!(
            "argument changed kind",
            "type Query { a(x: Int): Int }",
            "type Query { a(x: Int!): Int }",
            [("ARG_CHANGED_KIND", "Query.a(x:)", Breaking)]
        ),
        case!(
            "directive removed",
            "type Query { a: Int }\ndirective @d on FIELD",
            Q,
            [("DIRECTIVE_REMOVED", "@d", Breaking)]
        ),
        case!(
            "directive argument removed",
            "type Query { a: Int }\ndirective @d(x: Int) on FIELD",
            "type Query { a: Int }\ndirective @d on FIELD",
            [("DIRECTIVE_ARG_REMOVED", "@d(x:)", Breaking)]
        ),
        case!(
            "required directive argument added",
            "type Query { a: Int }\ndirective @d on FIELD",
            "type Query { a: Int }\ndirective @d(x: Int!) on FIELD",
            [("REQUIRED_DIRECTIVE_ARG_ADDED", "@d(x:)", Breaking)]
        ),
        case!(
            "directive argument changed kind",
            "type Query { a: Int }\ndirective @d(x: Int) on FIELD",
            "type Query { a: Int }\ndirective @d(x: [Int]) on FIELD",
            [("ARG_CHANGED_KIND", "@d(x:)", Breaking)]
        ),
        case!(
            "directive no longer repeatable",
            "type Query { a: Int }\ndirective @d repeatable on FIELD",
            "type Query { a: Int }\ndirective @d on FIELD",
            [("DIRECTIVE_REPEATABLE_REMOVED", "@d", Breaking)]
        ),
        case!(
            "directive location removed",
            "type Query { a: Int }\ndirective @d on FIELD | QUERY",
            "type Query { a: Int }\ndirective @d on FIELD",
            [("DIRECTIVE_LOCATION_REMOVED", "@d", Breaking)]
        ),
        case!(
            "root operation type changed",
            "schema { query: Query mutation: M }\ntype Query { a: Int }\ntype M { a: Int }",
            "schema { query: Query }\ntype Query { a: Int }\ntype M { a: Int }",
            [("ROOT_OPERATION_TYPE_CHANGED", "M", Breaking)]
        ),
        case!(
            "non-null argument lost its default",
            "type Query { a(x: Int! = 1): Int }",
            "type Query { a(x: Int!): Int }",
            [("ARG_BECAME_REQUIRED", "Query.a(x:)", Breaking)]
        ),
        case!(
            "non-null directive argument lost its default",
            "type Query { a: Int }\ndirective @d(x: Int! = 1) on FIELD",
            "type Query { a: Int }\ndirective @d(x: Int!) on FIELD",
            [("ARG_BECAME_REQUIRED", "@d(x:)", Breaking)]
        ),
        case!(
            "non-null input field lost its default",
            "type Query { f(i: I): Int }\ninput I { a: Int! = 1 }",
            "type Query { f(i: I): Int }\ninput I { a: Int! }",
            [("INPUT_FIELD_BECAME_REQUIRED", "I.a", Breaking)]
        ),
        case!(
            "input object became oneOf",
            "type Query { f(i: I): Int }\ninput I { a: Int b: String }",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int b: String }",
            [("ONE_OF_ADDED", "I", Breaking)]
        ),
        case!(
            "field removed from a oneOf input",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int b: String }",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int }",
            [("FIELD_REMOVED", "I.b", Breaking)]
        ),
        case!(
            "oneOf input field changed type",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int b: String }",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int b: [String] }",
            [("FIELD_CHANGED_KIND", "I.b", Breaking)]
        ),
        // ----- dangerous -----
        case!(
            "enum value added",
            "type Query { e: E }\nenum E { ONE }",
            "type Query { e: E }\nenum E { ONE TWO }",
            [("VALUE_ADDED_TO_ENUM", "E.TWO", Dangerous)]
        ),
        case!(
            "type added to union",
            "type Query { u: U }\ntype A { x: Int }\ntype B { y: Int }\nunion U = A",
            "type Query { u: U }\ntype A { x: Int }\ntype B { y: Int }\nunion U = A | B",
            [("TYPE_ADDED_TO_UNION", "U", Dangerous)]
        ),
        case!(
            "optional input field added",
            "type Query { f(i: I): Int }\ninput I { a: Int }",
            "type Query { f(i: I): Int }\ninput I { a: Int\n b: Int! = 1 }",
            [("OPTIONAL_INPUT_FIELD_ADDED", "I.b", Dangerous)]
        ),
        case!(
            "optional argument added",
            "type Query { a: Int }",
            "type Query { a(x: Int): Int }",
            [("OPTIONAL_ARG_ADDED", "Query.a(x:)", Dangerous)]
        ),
        case!(
            "interface added to object",
            "type Query { t: T }\ninterface N { id: ID }\ntype T { id: ID }",
            "type Query { t: T }\ninterface N { id: ID }\ntype T implements N { id: ID }",
            [("IMPLEMENTED_INTERFACE_ADDED", "T", Dangerous)]
        ),
        case!(
            "interface added to interface",
            "type Query { t: J }\ninterface N { id: ID }\ninterface J { id: ID }",
            "type Query { t: J }\ninterface N { id: ID }\ninterface J implements N { id: ID }",
            [("IMPLEMENTED_INTERFACE_ADDED", "J", Dangerous)]
        ),
        case!(
            "argument default value changed",
            "type Query { a(x: Int = 1): Int }",
            "type Query { a(x: Int = 2): Int }",
            [("ARG_DEFAULT_VALUE_CHANGE", "Query.a(x:)", Dangerous)]
        ),
        case!(
            "argument default value removed",
            "type Query { a(x: Int = 1): Int }",
            "type Query { a(x: Int): Int }",
            [("ARG_DEFAULT_VALUE_CHANGE", "Query.a(x:)", Dangerous)]
        ),
        case!(
            "argument object default reordered is no change",
            "type Query { a(x: I = {p: 1, q: 2}): Int }\ninput I { p: Int q: Int }",
            "type Query { a(x: I = {q: 2, p: 1}): Int }\ninput I { p: Int q: Int }",
            []
        ),
        case!(
            "directive argument default changed",
            "type Query { a: Int }\ndirective @d(x: Int = 1) on FIELD",
            "type Query { a: Int }\ndirective @d(x: Int = 2) on FIELD",
            [("ARG_DEFAULT_VALUE_CHANGE", "@d(x:)", Dangerous)]
        ),
        case!(
            "input field default changed",
            "type Query { f(i: I): Int }\ninput I { a: Int = 1 }",
            "type Query { f(i: I): Int }\ninput I { a: Int = 5 }",
            [("INPUT_FIELD_DEFAULT_VALUE_CHANGE", "I.a", Dangerous)]
        ),
        case!(
            "argument default value added",
            "type Query { a(x: Int): Int }",
            "type Query { a(x: Int = 3): Int }",
            [("ARG_DEFAULT_VALUE_CHANGE", "Query.a(x:)", Dangerous)]
        ),
        case!(
            "non-null argument with a default made nullable without one is not required",
            "type Query { a(x: Int! = 1): Int }",
            "type Query { a(x: Int): Int }",
            [
                ("ARG_TYPE_CHANGED_SAFE", "Query.a(x:)", Safe),
                ("ARG_DEFAULT_VALUE_CHANGE", "Query.a(x:)", Dangerous)
            ]
        ),
        case!(
            "nullable input field lost its default",
            "type Query { f(i: I): Int }\ninput I { a: Int = 1 }",
            "type Query { f(i: I): Int }\ninput I { a: Int }",
            [("INPUT_FIELD_DEFAULT_VALUE_CHANGE", "I.a", Dangerous)]
        ),
        // ----- safe -----
        case!("type added", Q, "type Query { a: Int }\ntype Foo { x: Int }", [("TYPE_ADDED", "Foo", Safe)]),
        case!("field added", Q, "type Query { a: Int\n b: Int }", [("FIELD_ADDED", "Query.b", Safe)]),
        case!(
            "directive added",
            Q,
            "type Query { a: Int }\ndirective @d on FIELD",
            [("DIRECTIVE_ADDED", "@d", Safe)]
        ),
        case!(
            "optional directive argument added",
            "type Query { a: Int }\ndirective @d on FIELD",
            "type Query { a: Int }\ndirective @d(x: Int) on FIELD",
            [("DIRECTIVE_ARG_ADDED", "@d(x:)", Safe)]
        ),
        case!(
            "directive location added",
            "type Query { a: Int }\ndirective @d on FIELD",
            "type Query { a: Int }\ndirective @d on FIELD | QUERY",
            [("DIRECTIVE_LOCATION_ADDED", "@d", Safe)]
        ),
        case!(
            "directive became repeatable",
            "type Query { a: Int }\ndirective @d on FIELD",
            "type Query { a: Int }\ndirective @d repeatable on FIELD",
            [("DIRECTIVE_REPEATABLE_ADDED", "@d", Safe)]
        ),
        case!(
            "descriptions changed",
            "\"q\" type Query { \"a\" a(\"x\" x: Int): E }\n\"e\" enum E { \"one\" ONE }\n\"d\" directive @d on FIELD",
            "\"Q\" type Query { a(\"X\" x: Int): E }\nenum E { \"ONE\" ONE }\n\"D\" directive @d on FIELD",
            [
                ("DESCRIPTION_CHANGED", "Query", Safe),
                ("DESCRIPTION_CHANGED", "Query.a", Safe),
                ("DESCRIPTION_CHANGED", "Query.a(x:)", Safe),
                ("DESCRIPTION_CHANGED", "E", Safe),
                ("DESCRIPTION_CHANGED", "E.ONE", Safe),
                ("DESCRIPTION_CHANGED", "@d", Safe),
            ]
        ),
        case!(
            "deprecations added",
            "type Query { a(x: Int): E }\nenum E { ONE }\ninput I { p: Int }\ntype T { f(i: I): Int }",
            "type Query { a(x: Int @deprecated): E @deprecated(reason: \"use b\") }\nenum E { ONE @deprecated }\ninput I { p: Int @deprecated }\ntype T { f(i: I): Int }",
            [
                ("DEPRECATION_ADDED", "Query.a", Safe),
                ("DEPRECATION_ADDED", "Query.a(x:)", Safe),
                ("DEPRECATION_ADDED", "E.ONE", Safe),
                ("DEPRECATION_ADDED", "I.p", Safe),
            ]
        ),
        case!(
            "deprecation removed",
            "type Query { a: Int @deprecated }",
            Q,
            [("DEPRECATION_REMOVED", "Query.a", Safe)]
        ),
        case!(
            "deprecation reason changed",
            "type Query { a: Int @deprecated(reason: \"old\") }",
            "type Query { a: Int @deprecated(reason: \"new\") }",
            [("DEPRECATION_REASON_CHANGED", "Query.a", Safe)]
        ),
        case!(
            "output field made non-null",
            "type Query { a: Int }",
            "type Query { a: Int! }",
            [("FIELD_TYPE_CHANGED_SAFE", "Query.a", Safe)]
        ),
        case!(
            "argument made nullable",
            "type Query { a(x: Int!): Int }",
            "type Query { a(x: Int): Int }",
            [("ARG_TYPE_CHANGED_SAFE", "Query.a(x:)", Safe)]
        ),
        case!(
            "input object no longer oneOf",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int b: String }",
            "type Query { f(i: I): Int }\ninput I { a: Int b: String }",
            [("ONE_OF_REMOVED", "I", Safe)]
        ),
        case!(
            "field added to a oneOf input",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int }",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int b: String }",
            [("ONE_OF_INPUT_FIELD_ADDED", "I.b", Safe)]
        ),
        case!(
            "field added to an input that stops being oneOf is an ordinary optional field",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int }",
            "type Query { f(i: I): Int }\ninput I { a: Int b: String = \"x\" }",
            [("ONE_OF_REMOVED", "I", Safe), ("OPTIONAL_INPUT_FIELD_ADDED", "I.b", Dangerous)]
        ),
        case!(
            "a schema that defines @oneOf itself",
            "directive @oneOf on INPUT_OBJECT\ntype Query { f(i: I): Int }\ninput I @oneOf { a: Int }",
            "type Query { f(i: I): Int }\ninput I @oneOf { a: Int }",
            []
        ),
        case!(
            "identical schemas",
            "type Query { a(x: Int = 1): [Int!]! }\ndirective @d(x: Int) repeatable on FIELD",
            "type Query { a(x: Int = 1): [Int!]! }\ndirective @d(x: Int) repeatable on FIELD",
            []
        ),
        case!(
            "definition order and formatting are not changes",
            "type Query { a: Int, b: String }\nenum E { X Y }\ntype T { e: E }",
            "type T {\n  e: E\n}\nenum E {\n  X\n  Y\n}\ntype Query {\n  a: Int\n  b: String\n}",
            []
        ),
    ]
}

#[test]
fn every_change_kind() {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut snapshot = String::new();
    for case in cases() {
        let old =
            load_sdl("old.graphql", case.old).unwrap_or_else(|e| panic!("{}: old schema: {e}", case.name));
        let new =
            load_sdl("new.graphql", case.new).unwrap_or_else(|e| panic!("{}: new schema: {e}", case.name));
        let changes = diff(&old, &new);
        let got: BTreeSet<(&str, &str, Level)> =
            changes.iter().map(|c| (c.kind.as_str(), c.coordinate.as_str(), c.level)).collect();
        let want: BTreeSet<(&str, &str, Level)> = case.expect.iter().copied().collect();
        assert_eq!(got, want, "case `{}`", case.name);
        let _ = writeln!(snapshot, "# {}", case.name);
        for c in &changes {
            let loc = c.location.as_ref().expect("every change here has a location");
            // Removals point into the old file, everything else into the new one.
            let removal = matches!(
                c.kind,
                ChangeKind::TypeRemoved
                    | ChangeKind::FieldRemoved
                    | ChangeKind::ArgRemoved
                    | ChangeKind::DirectiveRemoved
                    | ChangeKind::DirectiveArgRemoved
                    | ChangeKind::ValueRemovedFromEnum
                    | ChangeKind::TypeRemovedFromUnion
                    | ChangeKind::ImplementedInterfaceRemoved
            ) || (c.kind == ChangeKind::RootOperationTypeChanged);
            let expected_side = if removal { Side::Old } else { Side::New };
            assert_eq!(loc.side, expected_side, "{}: {}", case.name, c.message);
            let _ = writeln!(
                snapshot,
                "{:<9} {:<34} {:<14} {}:{}:{}  {}",
                c.level.as_str(),
                c.kind.as_str(),
                c.coordinate,
                match loc.side {
                    Side::Old => "old",
                    Side::New => "new",
                },
                loc.line,
                loc.column,
                c.message
            );
            seen.insert(c.kind.as_str());
        }
    }
    let missing: Vec<&str> =
        ChangeKind::ALL.iter().map(|k| k.as_str()).filter(|k| !seen.contains(k)).collect();
    assert!(missing.is_empty(), "kinds without a case: {missing:?}");
    insta::assert_snapshot!(snapshot);
}

/// graphql-js's `BreakingChangeType`, as in graphql/graphql-js
/// `src/utilities/findBreakingChanges.ts` (v16 and main).
const GRAPHQL_JS_BREAKING: &[&str] = &[
    "TYPE_REMOVED",
    "TYPE_CHANGED_KIND",
    "TYPE_REMOVED_FROM_UNION",
    "VALUE_REMOVED_FROM_ENUM",
    "REQUIRED_INPUT_FIELD_ADDED",
    "IMPLEMENTED_INTERFACE_REMOVED",
    "FIELD_REMOVED",
    "FIELD_CHANGED_KIND",
    "REQUIRED_ARG_ADDED",
    "ARG_REMOVED",
    "ARG_CHANGED_KIND",
    "DIRECTIVE_REMOVED",
    "DIRECTIVE_ARG_REMOVED",
    "REQUIRED_DIRECTIVE_ARG_ADDED",
    "DIRECTIVE_REPEATABLE_REMOVED",
    "DIRECTIVE_LOCATION_REMOVED",
];

/// graphql-js's `DangerousChangeType`, same file.
const GRAPHQL_JS_DANGEROUS: &[&str] = &[
    "VALUE_ADDED_TO_ENUM",
    "TYPE_ADDED_TO_UNION",
    "OPTIONAL_INPUT_FIELD_ADDED",
    "OPTIONAL_ARG_ADDED",
    "IMPLEMENTED_INTERFACE_ADDED",
    "ARG_DEFAULT_VALUE_CHANGE",
];

#[test]
fn levels_match_graphql_js() {
    let ours = |name: &str| ChangeKind::ALL.iter().copied().find(|k| k.as_str() == name);
    for (list, level) in [(GRAPHQL_JS_BREAKING, Level::Breaking), (GRAPHQL_JS_DANGEROUS, Level::Dangerous)] {
        for name in list {
            let kind = ours(name).unwrap_or_else(|| panic!("graphql-js's {name} has no kind here"));
            assert_eq!(kind.level(), level, "{name}");
        }
    }
    // Stable machine names, as in JSON.
    assert_eq!(serde_json::to_string(&ChangeKind::RequiredArgAdded).unwrap(), "\"REQUIRED_ARG_ADDED\"");
}

/// Every kind graphql-js lacks is documented in schema/README.md's table of them, with its
/// level; and that table lists no kind graphql-js has.
#[test]
fn kinds_graphql_js_lacks_are_documented() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### Kinds graphql-js lacks")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("schema/README.md has a `### Kinds graphql-js lacks` section");
    let documented: BTreeSet<(String, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_owned(), (*cells.get(2)?).to_owned()))
        })
        .collect();
    let graphql_js: BTreeSet<&str> =
        GRAPHQL_JS_BREAKING.iter().chain(GRAPHQL_JS_DANGEROUS).copied().collect();
    let lacking: BTreeSet<(String, String)> = ChangeKind::ALL
        .iter()
        .filter(|k| !graphql_js.contains(k.as_str()))
        .map(|k| (k.as_str().to_owned(), k.level().as_str().to_owned()))
        .collect();
    assert_eq!(documented, lacking);
}

#[test]
fn removal_is_anchored_on_the_new_parent() {
    let old = load_sdl("old.graphql", "type Query { a: Int }\n\ntype T {\n  x: Int\n  y: Int\n}").unwrap();
    let new = load_sdl("new.graphql", "type Query { a: Int }\ntype T {\n  x: Int\n}").unwrap();
    let changes = diff(&old, &new);
    assert_eq!(changes.len(), 1);
    let c = &changes[0];
    let loc = c.location.as_ref().unwrap();
    assert_eq!((loc.side, loc.file.as_str(), loc.line, loc.column), (Side::Old, "old.graphql", 5, 3));
    let anchor = c.anchor.as_ref().unwrap();
    assert_eq!(
        (anchor.side, anchor.file.as_str(), anchor.line, anchor.column),
        (Side::New, "new.graphql", 2, 6)
    );
}

#[test]
fn changes_are_sorted_breaking_first() {
    let old =
        load_sdl("old.graphql", "type Query { a: Int\n b: Int }\nenum E { X }\ntype Z { e: E }").unwrap();
    let new =
        load_sdl("new.graphql", "type Query { a: Int\n c: Int }\nenum E { X Y }\ntype Z { e: E }").unwrap();
    let levels: Vec<Level> = diff(&old, &new).iter().map(|c| c.level).collect();
    assert_eq!(levels, vec![Level::Breaking, Level::Dangerous, Level::Safe]);
}
