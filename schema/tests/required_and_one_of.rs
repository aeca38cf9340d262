//! Defaults that go away and `@oneOf`: which contract operations each change touches, per use
//! (an omitted argument, a literal without the field, a variable that may be unset), and the
//! exit code of the check.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use banyan_schema::{CheckOptions, Contract, ContractSource, SchemaError, check, load_sdl};

const SCHEMA: &str = r#"
directive @cache(ttl: Int! = 60) on FIELD
input Range { from: Int! = 0 to: Int }
input Filter { range: Range limit: Int! = 10 }
input Pick { id: ID slug: String }
type Template { id: ID! name: String }
type Query {
  templates(first: Int! = 20, filter: Filter): [Template]
  find(pick: Pick): Template
}
"#;

fn edit(from: &str, to: &str) -> String {
    assert!(SCHEMA.contains(from), "{from}");
    SCHEMA.replacen(from, to, 1)
}

/// `(name, text)` operations, each in its own file of component `C`.
fn contract(operations: &[(&str, &str)]) -> Contract {
    Contract::from_sources(operations.iter().map(|(name, text)| ContractSource {
        path: format!("frontend-contract/C/{name}.graphql"),
        component: "C".to_owned(),
        text: (*text).to_owned(),
    }))
    .unwrap()
}

/// The operations the one change of `kind` touches, and the check's exit code.
fn touched(new_sdl: &str, operations: &[(&str, &str)], kind: &str) -> (Vec<String>, i32) {
    let old = load_sdl("old.graphql", SCHEMA).unwrap();
    let new = load_sdl("new.graphql", new_sdl).unwrap();
    let report = check(&old, &new, &contract(operations), CheckOptions::default());
    let matching: Vec<_> = report.changes.iter().filter(|c| c.change.kind.as_str() == kind).collect();
    assert_eq!(matching.len(), 1, "expected one {kind}: {:#?}", report.changes);
    let mut names: Vec<String> = matching[0].operations.iter().map(|o| o.display_name()).collect();
    names.sort();
    (names, report.exit_code())
}

#[test]
fn an_argument_that_loses_its_default_touches_operations_that_leave_it_unset() {
    let new = edit("first: Int! = 20", "first: Int!");
    let (names, exit) = touched(
        &new,
        &[
            ("Omitted", "query Omitted { templates { id } }"),
            ("Given", "query Given { templates(first: 5) { id } }"),
            ("NullableVariable", "query NullableVariable($n: Int) { templates(first: $n) { id } }"),
            ("DefaultedVariable", "query DefaultedVariable($n: Int = 3) { templates(first: $n) { id } }"),
            ("NonNullVariable", "query NonNullVariable($n: Int!) { templates(first: $n) { id } }"),
            ("OnceEachWay", "query OnceEachWay { a: templates(first: 1) { id } b: templates { name } }"),
            ("ThroughFragment", "query ThroughFragment { ...F }\nfragment F on Query { templates { id } }"),
        ],
        "ARG_BECAME_REQUIRED",
    );
    assert_eq!(names, ["C/NullableVariable", "C/Omitted", "C/OnceEachWay", "C/ThroughFragment"]);
    assert_eq!(exit, 1);
}

#[test]
fn the_same_operations_are_touched_by_a_changed_default() {
    let new = edit("first: Int! = 20", "first: Int! = 50");
    let (names, exit) = touched(
        &new,
        &[
            ("Omitted", "query Omitted { templates { id } }"),
            ("Given", "query Given { templates(first: 5) { id } }"),
            ("OnceEachWay", "query OnceEachWay { a: templates(first: 1) { id } b: templates { name } }"),
        ],
        "ARG_DEFAULT_VALUE_CHANGE",
    );
    assert_eq!(names, ["C/Omitted", "C/OnceEachWay"]);
    assert_eq!(exit, 0, "a dangerous change warns");
}

#[test]
fn a_directive_argument_that_loses_its_default() {
    let new = edit("ttl: Int! = 60", "ttl: Int!");
    let (names, exit) = touched(
        &new,
        &[
            ("Bare", "query Bare { templates @cache { id } }"),
            ("Given", "query Given { templates @cache(ttl: 5) { id } }"),
            ("Unused", "query Unused { templates { id } }"),
        ],
        "ARG_BECAME_REQUIRED",
    );
    assert_eq!(names, ["C/Bare"]);
    assert_eq!(exit, 1);
}

#[test]
fn an_input_field_that_loses_its_default_touches_literals_without_it_and_variables() {
    let new = edit("limit: Int! = 10", "limit: Int!");
    let (names, exit) = touched(
        &new,
        &[
            ("LiteralWithout", "query LiteralWithout { templates(filter: { range: { to: 1 } }) { id } }"),
            ("LiteralWith", "query LiteralWith { templates(filter: { limit: 5 }) { id } }"),
            (
                "LiteralNullableVariable",
                "query LiteralNullableVariable($l: Int) { templates(filter: { limit: $l }) { id } }",
            ),
            ("Variable", "query Variable($f: Filter) { templates(filter: $f) { id } }"),
            ("NoFilter", "query NoFilter { templates { id } }"),
        ],
        "INPUT_FIELD_BECAME_REQUIRED",
    );
    assert_eq!(names, ["C/LiteralNullableVariable", "C/LiteralWithout", "C/Variable"]);
    assert_eq!(exit, 1);
}

#[test]
fn a_nested_input_field_that_loses_its_default() {
    let new = edit("from: Int! = 0", "from: Int!");
    let (names, _) = touched(
        &new,
        &[
            ("NestedWithout", "query NestedWithout { templates(filter: { range: { to: 1 } }) { id } }"),
            ("NestedWith", "query NestedWith { templates(filter: { range: { from: 1 } }) { id } }"),
            ("NoRange", "query NoRange { templates(filter: { limit: 1 }) { id } }"),
            ("OuterVariable", "query OuterVariable($f: Filter) { templates(filter: $f) { id } }"),
        ],
        "INPUT_FIELD_BECAME_REQUIRED",
    );
    assert_eq!(names, ["C/NestedWithout", "C/OuterVariable"]);
}

#[test]
fn adding_one_of_touches_operations_that_may_send_something_else_than_one_field() {
    let new = edit("input Pick {", "input Pick @oneOf {");
    let (names, exit) = touched(
        &new,
        &[
            ("OneField", "query OneField { find(pick: { id: \"1\" }) { id } }"),
            ("TwoFields", "query TwoFields { find(pick: { id: \"1\", slug: \"x\" }) { id } }"),
            ("Variable", "query Variable($p: Pick) { find(pick: $p) { id } }"),
            ("NullableInside", "query NullableInside($id: ID) { find(pick: { id: $id }) { id } }"),
            ("NonNullInside", "query NonNullInside($id: ID!) { find(pick: { id: $id }) { id } }"),
            ("ExplicitNull", "query ExplicitNull { find(pick: { id: null }) { id } }"),
            ("NoPick", "query NoPick { find { id } }"),
        ],
        "ONE_OF_ADDED",
    );
    assert_eq!(names, ["C/ExplicitNull", "C/NullableInside", "C/TwoFields", "C/Variable"]);
    assert_eq!(exit, 1);
}

#[test]
fn removing_one_of_and_adding_a_field_to_a_one_of_input_pass() {
    let one_of = edit("input Pick {", "input Pick @oneOf {");
    let old = load_sdl("old.graphql", &one_of).unwrap();
    let ops = contract(&[("OneField", "query OneField($p: Pick) { find(pick: $p) { id } }")]);

    let removed = load_sdl("new.graphql", SCHEMA).unwrap();
    let report = check(&old, &removed, &ops, CheckOptions { strict: true });
    let kinds: Vec<&str> = report.changes.iter().map(|c| c.change.kind.as_str()).collect();
    assert_eq!(kinds, ["ONE_OF_REMOVED"]);
    assert_eq!(report.exit_code(), 0);

    let added =
        load_sdl("new.graphql", &one_of.replace("slug: String }", "slug: String email: String }")).unwrap();
    let report = check(&old, &added, &ops, CheckOptions { strict: true });
    let kinds: Vec<&str> = report.changes.iter().map(|c| c.change.kind.as_str()).collect();
    assert_eq!(kinds, ["ONE_OF_INPUT_FIELD_ADDED"]);
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn one_of_rules_are_checked_on_load() {
    let err = load_sdl("bad.graphql", "type Query { f(p: P): Int }\ninput P @oneOf { a: Int! b: Int = 1 }")
        .unwrap_err();
    let SchemaError::Invalid { problems, .. } = &err else { panic!("{err}") };
    let found: Vec<(&str, Option<usize>, Option<usize>)> =
        problems.iter().map(|p| (p.code.as_str(), p.line, p.column)).collect();
    assert_eq!(found, [("INVALID_SCHEMA", Some(2), Some(18)), ("INVALID_SCHEMA", Some(2), Some(26))]);
    assert!(problems[0].message.contains("must be nullable"), "{}", problems[0].message);
    assert!(problems[1].message.contains("must not have a default"), "{}", problems[1].message);
}
