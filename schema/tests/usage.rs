//! Which operations a change touches: usage through fragments (same file, other file of the
//! component, shared), inline fragments, interfaces and unions, variables' input types
//! (recursively), literal enum values and input objects, directives.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use banyan_schema::{CheckOptions, Contract, ContractSource, Severity, check, load_sdl, operation_usage};

const SCHEMA: &str = r#"
directive @tag(name: String) on FIELD | INLINE_FRAGMENT

interface Node { id: ID! }
enum Status { DRAFT LIVE ARCHIVED }
enum Sort { NEWEST OLDEST }
enum Color { RED GREEN }
type Template implements Node { id: ID! name: String status: Status color: Color }
type User implements Node { id: ID! email: String }
type Event { kind: String }
union Item = Template | Event
input Range { from: Int to: Int }
input Filter { status: Status range: Range sort: Sort }
input Patch { name: String color: Color }
type Query {
  node(id: ID!): Node
  templates(filter: Filter, limit: Int = 10): [Template]
  items: [Item]
  me: User
}
type Mutation { patch(id: ID!, patch: Patch!): Template }
"#;

fn contract(files: &[(&str, &str)]) -> Contract {
    Contract::from_sources(files.iter().map(|(path, text)| {
        let component = if path.contains('/') {
            path.split('/').next().unwrap_or_default().to_owned()
        } else {
            String::new()
        };
        ContractSource { path: format!("frontend-contract/{path}"), component, text: (*text).to_owned() }
    }))
    .unwrap()
}

/// Names of the operations the (single) change with `kind` touches.
fn touched(new_sdl: &str, files: &[(&str, &str)], kind: &str) -> Vec<String> {
    let old = load_sdl("old.graphql", SCHEMA).unwrap();
    let new = load_sdl("new.graphql", new_sdl).unwrap();
    let contract = contract(files);
    let report = check(&old, &new, &contract, CheckOptions::default());
    let matching: Vec<_> = report.changes.iter().filter(|c| c.change.kind.as_str() == kind).collect();
    assert_eq!(matching.len(), 1, "expected one {kind}: {:#?}", report.changes);
    matching[0].operations.iter().map(|o| o.display_name()).collect()
}

fn edit(from: &str, to: &str) -> String {
    assert!(SCHEMA.contains(from), "{from}");
    SCHEMA.replacen(from, to, 1)
}

#[test]
fn field_through_fragments_in_other_files() {
    let files = [
        ("List/List.graphql", "query List { templates { ...Row } }"),
        ("List/Row.graphql", "fragment Row on Template { id ...Names }"),
        ("shared/names.graphql", "fragment Names on Template { name }"),
        ("Other/Other.graphql", "query Other { me { id } }"),
    ];
    let new = edit("id: ID! name: String status", "id: ID! status");
    assert_eq!(touched(&new, &files, "FIELD_REMOVED"), ["List/List"]);
    // And the use is located in the shared file.
    let old = load_sdl("old.graphql", SCHEMA).unwrap();
    let new = load_sdl("new.graphql", &new).unwrap();
    let report = check(&old, &new, &contract(&files), CheckOptions::default());
    let op = &report.changes[0].operations[0];
    assert_eq!(op.position(), "frontend-contract/shared/names.graphql:1:30");
    assert_eq!(report.changes[0].severity, Severity::Error);
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn field_through_interface_and_inline_fragments() {
    let files = [
        ("A/ById.graphql", "query ById($id: ID!) { node(id: $id) { id ... on Template { name } } }"),
        ("B/Emails.graphql", "query Emails { node(id: 1) { ... on User { email } } }"),
        ("C/Ids.graphql", "query Ids { node(id: 1) { id } }"),
    ];
    let new = edit("id: ID! name: String status", "id: ID! status");
    assert_eq!(touched(&new, &files, "FIELD_REMOVED"), ["A/ById"]);
    // `Node.id` selected on the interface counts as `Template.id` and `User.id` too.
    let new = edit(
        "type User implements Node { id: ID! email",
        "type User implements Node { id: ID! @deprecated email",
    );
    assert_eq!(touched(&new, &files, "DEPRECATION_ADDED"), ["A/ById", "C/Ids"]);
}

#[test]
fn enum_value_removed_through_nested_variable_input() {
    let files = [
        // Status reached through Filter.status.
        ("A/ByFilter.graphql", "query ByFilter($f: Filter) { templates(filter: $f) { id } }"),
        // A literal that uses another value.
        ("B/Drafts.graphql", "query Drafts { templates(filter: { status: DRAFT }) { id } }"),
        // A literal that uses the removed value.
        ("C/Archived.graphql", "query Archived { templates(filter: { status: ARCHIVED }) { id } }"),
        // Output only: removal cannot break it.
        ("D/Statuses.graphql", "query Statuses { templates { status } }"),
    ];
    let new = edit("DRAFT LIVE ARCHIVED", "DRAFT LIVE");
    assert_eq!(touched(&new, &files, "VALUE_REMOVED_FROM_ENUM"), ["A/ByFilter", "C/Archived"]);
}

#[test]
fn enum_value_added_reaches_output_only() {
    let files = [
        ("A/Statuses.graphql", "query Statuses { templates { status } }"),
        ("B/ByStatus.graphql", "query ByStatus($s: Status) { templates(filter: { status: $s }) { id } }"),
    ];
    let new = edit("DRAFT LIVE ARCHIVED", "DRAFT LIVE ARCHIVED PAUSED");
    assert_eq!(touched(&new, &files, "VALUE_ADDED_TO_ENUM"), ["A/Statuses"]);
    let old = load_sdl("old.graphql", SCHEMA).unwrap();
    let new = load_sdl("new.graphql", &new).unwrap();
    let report = check(&old, &new, &contract(&files), CheckOptions::default());
    assert_eq!(
        report.changes[0].change.impact,
        "a new enum value Status.PAUSED may reach a component's switch over Status"
    );
    assert_eq!(report.changes[0].severity, Severity::Warning);
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn input_object_fields_through_variables_and_literals() {
    let files = [
        ("A/Patch.graphql", "mutation Patch($p: Patch!) { patch(id: 1, patch: $p) { id } }"),
        ("B/Rename.graphql", "mutation Rename { patch(id: 1, patch: { name: \"x\" }) { id } }"),
        ("C/Range.graphql", "query InRange { templates(filter: { range: { from: 1 } }) { id } }"),
    ];
    // Removing Patch.color touches the variable user (it may send it), not the literal.
    let new = edit("input Patch { name: String color: Color }", "input Patch { name: String }");
    assert_eq!(touched(&new, &files, "FIELD_REMOVED"), ["A/Patch"]);
    // A required field breaks both.
    let new = edit("input Patch { name: String", "input Patch { id: ID! name: String");
    assert_eq!(touched(&new, &files, "REQUIRED_INPUT_FIELD_ADDED"), ["A/Patch", "B/Rename"]);
    // Nested literal: Range.to is not sent by the literal, Range.from is.
    let new = edit("input Range { from: Int to: Int }", "input Range { from: Int }");
    assert!(touched(&new, &files, "FIELD_REMOVED").is_empty());
    let new = edit("input Range { from: Int to: Int }", "input Range { from: String to: Int }");
    assert_eq!(touched(&new, &files, "FIELD_CHANGED_KIND"), ["C/InRange"]);
    // Enum reached recursively through a variable: Patch.color → Color.
    let new = edit("enum Color { RED GREEN }", "enum Color { RED }");
    assert_eq!(touched(&new, &files, "VALUE_REMOVED_FROM_ENUM"), ["A/Patch"]);
}

#[test]
fn arguments() {
    let files = [
        ("A/Limited.graphql", "query Limited { templates(limit: 5) { id } }"),
        ("B/Default.graphql", "query Default { templates { id } }"),
    ];
    let new = edit("limit: Int = 10", "limit: Int = 20");
    assert_eq!(touched(&new, &files, "ARG_DEFAULT_VALUE_CHANGE"), ["B/Default"]);
    let new = edit("limit: Int = 10", "limit: Int! = 10");
    assert_eq!(touched(&new, &files, "ARG_CHANGED_KIND"), ["A/Limited"]);
    let new = edit("(filter: Filter, limit: Int = 10)", "(filter: Filter)");
    assert_eq!(touched(&new, &files, "ARG_REMOVED"), ["A/Limited"]);
    let new = edit("limit: Int = 10)", "limit: Int = 10, after: String!)");
    assert_eq!(touched(&new, &files, "REQUIRED_ARG_ADDED"), ["A/Limited", "B/Default"]);
}

#[test]
fn unions_and_interfaces() {
    let files = [
        ("A/Templates.graphql", "query ItemTemplates { items { ... on Template { id } } }"),
        ("B/Events.graphql", "query ItemEvents { items { ... on Event { kind } } }"),
        ("C/AnyNode.graphql", "query AnyNode { items { ... on Node { id } } }"),
    ];
    let new = edit("union Item = Template | Event", "union Item = Template");
    assert_eq!(touched(&new, &files, "TYPE_REMOVED_FROM_UNION"), ["B/ItemEvents"]);
    let new = edit("union Item = Template | Event", "union Item = Template | Event | User");
    assert_eq!(
        touched(&new, &files, "TYPE_ADDED_TO_UNION"),
        ["A/ItemTemplates", "B/ItemEvents", "C/AnyNode"]
    );
    let new = edit("type Event { kind: String }", "type Event implements Node { id: ID! kind: String }");
    assert_eq!(touched(&new, &files, "IMPLEMENTED_INTERFACE_ADDED"), ["C/AnyNode"]);
    let new = edit("type Template implements Node { id: ID!", "type Template { id: ID!");
    assert_eq!(touched(&new, &files, "IMPLEMENTED_INTERFACE_REMOVED"), ["C/AnyNode"]);
}

#[test]
fn types_and_directives() {
    let files = [
        ("A/Tagged.graphql", "query Tagged { me @tag(name: \"x\") { id } }"),
        ("B/TaggedFragment.graphql", "query TaggedFragment { me { ... @tag { id } } }"),
        ("C/Plain.graphql", "query Plain { me { email } }"),
    ];
    let new = edit("on FIELD | INLINE_FRAGMENT", "on FIELD");
    assert_eq!(touched(&new, &files, "DIRECTIVE_LOCATION_REMOVED"), ["B/TaggedFragment"]);
    let new = edit("@tag(name: String)", "@tag");
    assert_eq!(touched(&new, &files, "DIRECTIVE_ARG_REMOVED"), ["A/Tagged"]);
    let new = edit("directive @tag(name: String) on FIELD | INLINE_FRAGMENT", "");
    assert_eq!(touched(&new, &files, "DIRECTIVE_REMOVED"), ["A/Tagged", "B/TaggedFragment"]);
    let new = edit("interface Node { id: ID! }", "type Node { id: ID! }").replace(" implements Node", "");
    assert!(touched(&new, &files, "TYPE_CHANGED_KIND").is_empty());
    let new = edit(
        "type User implements Node { id: ID! email: String }",
        "type User implements Node { id: ID! email: String }\ntype Extra { x: Int }",
    );
    assert!(touched(&new, &files, "TYPE_ADDED").is_empty());
}

#[test]
fn untouched_breaking_change_is_a_warning_unless_strict() {
    let files = [("A/Me.graphql", "query Me { me { id } }")];
    let old = load_sdl("old.graphql", SCHEMA).unwrap();
    let new =
        load_sdl("new.graphql", &edit("type Event { kind: String }", "type Event { kind: Int }")).unwrap();
    let c = contract(&files);
    let lenient = check(&old, &new, &c, CheckOptions { strict: false });
    assert_eq!(lenient.changes[0].severity, Severity::Warning);
    assert_eq!(lenient.exit_code(), 0);
    let strict = check(&old, &new, &c, CheckOptions { strict: true });
    assert_eq!(strict.changes[0].severity, Severity::Error);
    assert_eq!(strict.exit_code(), 1);
}

#[test]
fn usage_lists_coordinates() {
    let files = [(
        "A/All.graphql",
        r#"
query All($f: Filter, $id: ID!) {
  node(id: $id) { id ...Card }
  templates(filter: $f, limit: 3) { color }
  items { __typename ... on Event { kind } }
}
fragment Card on Template { name }
"#,
    )];
    let schema = load_sdl("schema.graphql", SCHEMA).unwrap();
    let usage = operation_usage(&schema, &contract(&files));
    assert_eq!(usage.len(), 1);
    let u = &usage[0];
    assert_eq!(u.operation.as_deref(), Some("All"));
    let fields: Vec<&str> = u.fields.iter().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "Event.kind",
            "Node.id",
            "Query.items",
            "Query.node",
            "Query.templates",
            "Template.color",
            "Template.id",
            "Template.name",
            "User.id",
        ]
    );
    let coords: Vec<&str> = u.coordinates.iter().map(String::as_str).collect();
    for expected in [
        "Filter",
        "Filter.range",
        "Filter.sort",
        "Filter.status",
        "Range.from",
        "Range.to",
        "Sort",
        "Status",
        "Query.templates(filter:)",
        "Query.templates(limit:)",
        "Query.node(id:)",
        "Item",
        "Color",
        "ID",
        "Int",
    ] {
        assert!(coords.contains(&expected), "{expected} missing from {coords:?}");
    }
    assert!(!coords.iter().any(|c| c.contains('#') || c.starts_with("schema:")));
}

#[test]
fn operations_written_for_the_new_schema_resolve_there() {
    let old = load_sdl("old.graphql", "type Query { a: Int e: E }\nenum E { X }").unwrap();
    let new =
        load_sdl("new.graphql", "type Query { a: Int e: E t: T }\ntype T { e2: E }\nenum E { X Y }").unwrap();
    let c = contract(&[("A/UsesNew.graphql", "query UsesNew { t { e2 } }")]);
    let report = check(&old, &new, &c, CheckOptions::default());
    let added = report.changes.iter().find(|c| c.change.kind.as_str() == "VALUE_ADDED_TO_ENUM").unwrap();
    assert_eq!(added.operations[0].display_name(), "A/UsesNew");
    assert_eq!(added.operations[0].position(), "frontend-contract/A/UsesNew.graphql:1:21");
    assert!(report.operation_errors.is_empty());
}
