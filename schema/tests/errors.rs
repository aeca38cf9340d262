//! Parse and validation errors carry `file:line:col`; contract rules; contract validation
//! against a schema (deprecated usage as warnings).
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use banyan_schema::{
    Contract, ContractError, ContractSource, EXIT_FAILURE, EXIT_OK, Format, SchemaError, Severity, load_sdl,
    load_sdl_file, validate_contract,
};

fn src(path: &str, text: &str) -> ContractSource {
    ContractSource {
        path: format!("frontend-contract/{path}"),
        component: path.split('/').next().unwrap_or_default().to_owned(),
        text: text.to_owned(),
    }
}

#[test]
fn sdl_syntax_error_position() {
    let err = load_sdl("schema/schema.graphql", "type Query {\n  a: Int\n  b: \n}\n").unwrap_err();
    let SchemaError::Invalid { path, problems } = &err else { panic!("{err}") };
    assert_eq!(path, "schema/schema.graphql");
    let p = &problems[0];
    assert_eq!(p.code, "SYNTAX_ERROR");
    assert_eq!((p.file.as_str(), p.line, p.column), ("schema/schema.graphql", Some(4), Some(1)));
    assert!(err.to_string().contains("schema/schema.graphql:4:1: error: syntax error"), "{err}");
}

#[test]
fn sdl_validation_error_position() {
    let err = load_sdl("s.graphql", "type Query {\n  a: Missing\n}\n").unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.code, "INVALID_SCHEMA");
    assert_eq!((p.line, p.column), (Some(2), Some(6)));
    assert!(p.message.contains("Missing"), "{}", p.message);
    // Executable definitions are not SDL.
    let err = load_sdl("s.graphql", "type Query { a: Int }\nquery Q { a }").unwrap_err();
    assert_eq!(err.problems()[0].line, Some(2));
}

#[test]
fn sdl_file_errors() {
    let err = load_sdl_file("/definitely/not/here.graphql").unwrap_err();
    assert!(matches!(err, SchemaError::Io { .. }));
    assert!(err.problems().is_empty());
}

#[test]
fn contract_syntax_error_position() {
    let err = Contract::from_sources([
        src("A/Ok.graphql", "query Ok { a }"),
        src("B/Broken.graphql", "query Broken {\n  a(\n}\n"),
    ])
    .unwrap_err();
    let ContractError::Syntax { problems } = &err else { panic!("{err}") };
    let p = &problems[0];
    assert_eq!(p.file, "frontend-contract/B/Broken.graphql");
    assert_eq!(p.line, Some(3));
    assert_eq!(p.component.as_deref(), Some("B"));
}

#[test]
fn blank_contract_files_are_skipped() {
    let contract = Contract::from_sources([
        src("A/Empty.graphql", ""),
        src("A/Comments.graphql", "# nothing here yet\n\n  # really\n"),
        src("A/Op.graphql", "query Op { a }"),
    ])
    .unwrap();
    assert_eq!(contract.file_count(), 1);
    assert_eq!(contract.operations().len(), 1);
}

#[test]
fn contract_load_from_disk() {
    let dir = std::env::temp_dir().join(format!("banyan-schema-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("Widget")).unwrap();
    std::fs::create_dir_all(dir.join(".hidden")).unwrap();
    std::fs::write(dir.join("Widget/GetA.graphql"), "query GetA { a ...Shared }").unwrap();
    std::fs::write(dir.join("shared.graphql"), "fragment Shared on Query { a }").unwrap();
    std::fs::write(dir.join("persisted-operations.json"), "{}").unwrap();
    std::fs::write(dir.join(".hidden/x.graphql"), "not graphql").unwrap();
    let contract = Contract::load(&dir).unwrap();
    assert_eq!(contract.file_count(), 2);
    let op = &contract.operations()[0];
    assert_eq!(op.component, "Widget");
    assert_eq!(op.display_name(), "Widget/GetA");
    assert!(op.file.ends_with("Widget/GetA.graphql"));
    assert_eq!((op.line, op.column), (1, 7));
    assert_eq!(contract.fragment_names(), ["Shared"]);
    let schema = load_sdl("s.graphql", "type Query { a: Int }").unwrap();
    assert!(validate_contract(&schema, &contract).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(matches!(Contract::load(&dir), Err(ContractError::Io { .. })));
}

const SCHEMA: &str = r#"type Query {
  a: Int
  old: Int @deprecated(reason: "use a")
  list(mode: Mode, legacy: Boolean @deprecated, f: F): [Int]
}
enum Mode { FAST SLOW @deprecated(reason: "too slow") }
input F { x: Int y: Int @deprecated }
"#;

#[test]
fn invalid_operations_are_located_and_attributed() {
    let schema = load_sdl("schema.graphql", SCHEMA).unwrap();
    let contract = Contract::from_sources([
        src("A/Good.graphql", "query Good { a }"),
        src("B/Bad.graphql", "query Bad {\n  a\n  nope\n}\n"),
        src("C/UsesFrag.graphql", "query UsesFrag { ...Missing }"),
        src("D/Frag.graphql", "query D { ...F1 }\nfragment F1 on Query {\n  zzz\n}"),
        src("E/Var.graphql", "query Var($m: Int) { list(mode: $m) }"),
    ])
    .unwrap();
    let report = validate_contract(&schema, &contract);
    assert_eq!(report.exit_code(), EXIT_FAILURE);
    let errs: Vec<String> =
        report.errors.iter().map(|p| format!("{} {:?} {}", p.position(), p.definition, p.message)).collect();
    insta::assert_snapshot!(errs.join("\n"));
    for e in &report.errors {
        assert_eq!(e.severity, Severity::Error);
        assert_eq!(e.code, "INVALID_OPERATION");
    }
}

#[test]
fn contract_rules() {
    let schema = load_sdl("schema.graphql", SCHEMA).unwrap();
    let contract = Contract::from_sources([
        src("A/One.graphql", "query Same { a }"),
        src("B/Two.graphql", "query Same { a }"),
        src("C/Anon.graphql", "{ a }"),
        src("D/Frag1.graphql", "query D1 { ...Dup }\nfragment Dup on Query { a }"),
        src("E/Frag2.graphql", "fragment Dup on Query { a }"),
        src("F/Sdl.graphql", "query F { a }\ntype Extra { x: Int }"),
    ])
    .unwrap();
    let codes: Vec<(&str, String)> =
        contract.rule_problems().iter().map(|p| (p.code.as_str(), p.position())).collect();
    assert_eq!(
        codes,
        [
            ("DUPLICATE_OPERATION_NAME", "frontend-contract/B/Two.graphql:1:7".to_owned()),
            ("ANONYMOUS_OPERATION", "frontend-contract/C/Anon.graphql:1:1".to_owned()),
            ("DUPLICATE_FRAGMENT_NAME", "frontend-contract/E/Frag2.graphql:1:10".to_owned()),
            ("NOT_EXECUTABLE", "frontend-contract/F/Sdl.graphql:2:1".to_owned()),
        ]
    );
    assert!(contract.rule_problems()[0].message.contains("frontend-contract/A/One.graphql:1:7"));
    let report = validate_contract(&schema, &contract);
    assert_eq!(report.exit_code(), EXIT_FAILURE);
    // Only the rule problems: the duplicates are left out of schema validation.
    assert_eq!(report.errors.len(), 4, "{:#?}", report.errors);
}

#[test]
fn deprecated_usage_is_a_warning() {
    let schema = load_sdl("schema.graphql", SCHEMA).unwrap();
    let contract = Contract::from_sources([src(
        "A/Old.graphql",
        "query Old {\n  old\n  list(mode: SLOW, legacy: true, f: { y: 1 })\n  ...Frag\n}\nfragment Frag on Query { old }",
    )])
    .unwrap();
    let report = validate_contract(&schema, &contract);
    assert_eq!(report.exit_code(), EXIT_OK);
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let warnings: Vec<String> = report
        .warnings
        .iter()
        .map(|p| format!("{} {} {:?} {}", p.position(), p.code, p.definition, p.message))
        .collect();
    insta::assert_snapshot!(warnings.join("\n"));
    insta::assert_snapshot!("validation_text", report.render(Format::Text { colour: false }));
    insta::assert_snapshot!("validation_github", report.render(Format::Github));
    insta::assert_snapshot!("validation_markdown", report.render(Format::Markdown));
    let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    assert_eq!(json["format"], "banyan-contract-validation");
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["warnings"].as_array().unwrap().len(), 5);
}
