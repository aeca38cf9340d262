//! Type changes are judged by position: output fields accept what narrows the values a client
//! can receive; arguments, input fields and directive arguments accept what widens the values
//! a client can send. List wrapping changes are breaking everywhere.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use banyan_schema::{ChangeKind, Level, diff, load_sdl};

/// (old type, new type, level on an output field, level on an argument / input field).
const CASES: &[(&str, &str, Level, Level)] = &[
    ("String", "String!", Level::Safe, Level::Breaking),
    ("String!", "String", Level::Breaking, Level::Safe),
    ("[String]", "String", Level::Breaking, Level::Breaking),
    ("String", "[String]", Level::Breaking, Level::Breaking),
    ("String!", "[String!]!", Level::Breaking, Level::Breaking),
    ("[String]", "[String!]", Level::Safe, Level::Breaking),
    ("[String!]", "[String]", Level::Breaking, Level::Safe),
    ("[String]", "[String]!", Level::Safe, Level::Breaking),
    ("[String]!", "[String]", Level::Breaking, Level::Safe),
    ("[String]", "[String!]!", Level::Safe, Level::Breaking),
    ("[String!]!", "[String]", Level::Breaking, Level::Safe),
    ("[[String]]", "[String]", Level::Breaking, Level::Breaking),
    ("[String]", "[[String]]", Level::Breaking, Level::Breaking),
    ("[[String]]", "[[String!]!]!", Level::Safe, Level::Breaking),
    ("[[String!]!]!", "[[String]]", Level::Breaking, Level::Safe),
    ("String", "Int", Level::Breaking, Level::Breaking),
    ("String!", "Int!", Level::Breaking, Level::Breaking),
    ("String", "ID", Level::Breaking, Level::Breaking),
];

fn only_change(old: &str, new: &str) -> (ChangeKind, Level) {
    let old = load_sdl("old.graphql", old).unwrap();
    let new = load_sdl("new.graphql", new).unwrap();
    let changes = diff(&old, &new);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    (changes[0].kind, changes[0].level)
}

#[test]
fn output_field_types() {
    for (from, to, output, _) in CASES {
        let (kind, level) =
            only_change(&format!("type Query {{ f: {from} }}"), &format!("type Query {{ f: {to} }}"));
        assert_eq!(level, *output, "output field {from} -> {to}");
        let expected = if *output == Level::Safe {
            ChangeKind::FieldTypeChangedSafe
        } else {
            ChangeKind::FieldChangedKind
        };
        assert_eq!(kind, expected, "output field {from} -> {to}");
    }
}

#[test]
fn argument_types() {
    for (from, to, _, input) in CASES {
        let (kind, level) = only_change(
            &format!("type Query {{ f(a: {from}): Int }}"),
            &format!("type Query {{ f(a: {to}): Int }}"),
        );
        assert_eq!(level, *input, "argument {from} -> {to}");
        let expected =
            if *input == Level::Safe { ChangeKind::ArgTypeChangedSafe } else { ChangeKind::ArgChangedKind };
        assert_eq!(kind, expected, "argument {from} -> {to}");
    }
}

#[test]
fn input_field_types() {
    for (from, to, _, input) in CASES {
        let (kind, level) = only_change(
            &format!("type Query {{ f(i: I): Int }}\ninput I {{ v: {from} }}"),
            &format!("type Query {{ f(i: I): Int }}\ninput I {{ v: {to} }}"),
        );
        assert_eq!(level, *input, "input field {from} -> {to}");
        let expected = if *input == Level::Safe {
            ChangeKind::FieldTypeChangedSafe
        } else {
            ChangeKind::FieldChangedKind
        };
        assert_eq!(kind, expected, "input field {from} -> {to}");
    }
}

#[test]
fn directive_argument_types() {
    for (from, to, _, input) in CASES {
        let (_, level) = only_change(
            &format!("type Query {{ f: Int }}\ndirective @d(a: {from}) on FIELD"),
            &format!("type Query {{ f: Int }}\ndirective @d(a: {to}) on FIELD"),
        );
        assert_eq!(level, *input, "directive argument {from} -> {to}");
    }
}

#[test]
fn interface_field_types_follow_output_rules() {
    let (kind, level) = only_change(
        "type Query { n: N }\ninterface N { f: String }",
        "type Query { n: N }\ninterface N { f: String! }",
    );
    assert_eq!((kind, level), (ChangeKind::FieldTypeChangedSafe, Level::Safe));
}

#[test]
fn required_vs_optional_additions() {
    // A non-null argument with a default is optional.
    let (kind, _) = only_change("type Query { f: Int }", "type Query { f(a: Int! = 1): Int }");
    assert_eq!(kind, ChangeKind::OptionalArgAdded);
    let (kind, _) = only_change("type Query { f: Int }", "type Query { f(a: [Int]!): Int }");
    assert_eq!(kind, ChangeKind::RequiredArgAdded);
    let (kind, _) = only_change(
        "type Query { f(i: I): Int }\ninput I { a: Int }",
        "type Query { f(i: I): Int }\ninput I { a: Int\n b: [Int!] }",
    );
    assert_eq!(kind, ChangeKind::OptionalInputFieldAdded);
}
