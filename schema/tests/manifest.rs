//! The persisted-operations manifest: Apollo's format, deterministic bodies and ids, sorted
//! operations, staleness.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use banyan_schema::{
    Contract, ContractSource, MANIFEST_FORMAT, ManifestError, ManifestStatus, OperationType, build_manifest,
    operation_id,
};

fn src(path: &str, text: &str) -> ContractSource {
    ContractSource {
        path: format!("frontend-contract/{path}"),
        component: path.split('/').next().unwrap_or_default().to_owned(),
        text: text.to_owned(),
    }
}

fn files() -> Vec<ContractSource> {
    vec![
        src(
            "List/List.graphql",
            "# a comment\nquery ListTemplates($first: Int = 10) {\n  templates(first: $first) { ...Card }\n}\n",
        ),
        src("List/Card.graphql", "fragment Card on Template { id ...Owner }"),
        src(
            "shared/owner.graphql",
            "fragment Owner on Template { owner { id } }\nfragment Unused on Template { id }",
        ),
        src(
            "Editor/Save.graphql",
            "mutation SaveTemplate($id: ID!) { save(id: $id) { ...Card } }\nsubscription Events { events { kind } }",
        ),
    ]
}

#[test]
fn shape_and_order() {
    let manifest = build_manifest(&Contract::from_sources(files()).unwrap()).unwrap();
    assert_eq!(manifest.format, MANIFEST_FORMAT);
    assert_eq!(manifest.version, 1);
    let names: Vec<&str> = manifest.operations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["Events", "ListTemplates", "SaveTemplate"]);
    let types: Vec<OperationType> = manifest.operations.iter().map(|o| o.operation_type).collect();
    assert_eq!(types, [OperationType::Subscription, OperationType::Query, OperationType::Mutation]);
    for op in &manifest.operations {
        assert_eq!(op.id, operation_id(&op.body));
        assert_eq!(op.id.len(), 64);
        assert!(!op.body.ends_with('\n'));
    }
    // The operation first, then the fragments it uses (transitively), sorted by name; unused
    // fragments are left out; comments are not part of the body.
    let list = &manifest.operations[1];
    assert!(list.body.starts_with("query ListTemplates($first: Int = 10) {"));
    let card = list.body.find("fragment Card").unwrap();
    let owner = list.body.find("fragment Owner").unwrap();
    assert!(card < owner);
    assert!(!list.body.contains("Unused"));
    assert!(!list.body.contains("comment"));
    insta::assert_snapshot!(manifest.to_json());
}

#[test]
fn sha256_hex() {
    // sha256("abc")
    assert_eq!(operation_id("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn deterministic() {
    let a = build_manifest(&Contract::from_sources(files()).unwrap()).unwrap().to_json();
    // Same operations, files in another order, reformatted, with other comments.
    let mut reordered = files();
    reordered.reverse();
    reordered[3] = src(
        "List/List.graphql",
        "query ListTemplates( $first : Int = 10 ) { templates ( first : $first ) { ... Card } } # x",
    );
    let b = build_manifest(&Contract::from_sources(reordered).unwrap()).unwrap().to_json();
    assert_eq!(a, b);
    assert!(a.ends_with("}\n"));
    assert!(a.starts_with("{\n  \"format\": \"apollo-persisted-query-manifest\",\n  \"version\": 1,"));
}

#[test]
fn staleness() {
    let manifest = build_manifest(&Contract::from_sources(files()).unwrap()).unwrap();
    let committed = manifest.to_json();
    assert_eq!(manifest.compare(Some(&committed)), ManifestStatus::UpToDate);
    assert!(manifest.compare(Some(&committed)).is_up_to_date());
    assert_eq!(manifest.compare(None), ManifestStatus::Missing);

    let mut changed_files = files();
    changed_files[0] = src("List/List.graphql", "query ListTemplates { templates { id } }");
    changed_files.push(src("New/New.graphql", "query Brand { a }"));
    changed_files.retain(|f| !f.path.ends_with("Save.graphql"));
    let newer = build_manifest(&Contract::from_sources(changed_files).unwrap()).unwrap();
    let status = newer.compare(Some(&committed));
    assert_eq!(
        status,
        ManifestStatus::Stale {
            added: vec!["Brand".into()],
            removed: vec!["Events".into(), "SaveTemplate".into()],
            changed: vec!["ListTemplates".into()],
            parseable: true,
        }
    );
    assert_eq!(
        status.describe(),
        "the persisted-operations manifest is stale (added: Brand; removed: Events, SaveTemplate; changed: ListTemplates); regenerate it"
    );
    // Same content, other formatting: stale (the CLI writes the exact text).
    let compact = serde_json::to_string(&manifest).unwrap();
    assert!(matches!(manifest.compare(Some(&compact)), ManifestStatus::Stale { parseable: true, .. }));
    assert!(matches!(manifest.compare(Some("not json")), ManifestStatus::Stale { parseable: false, .. }));
}

#[test]
fn invalid_contract() {
    let err = build_manifest(
        &Contract::from_sources([
            src("A/A.graphql", "query Same { a ...Nowhere }"),
            src("B/B.graphql", "query Same { a }"),
            src("C/C.graphql", "{ a }"),
        ])
        .unwrap(),
    )
    .unwrap_err();
    let ManifestError::Invalid { problems } = &err;
    let codes: Vec<&str> = problems.iter().map(|p| p.code.as_str()).collect();
    assert_eq!(codes, ["DUPLICATE_OPERATION_NAME", "ANONYMOUS_OPERATION", "UNDEFINED_FRAGMENT"]);
    assert!(err.to_string().contains("frontend-contract/B/B.graphql:1:7"));
}
