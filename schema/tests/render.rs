//! Output formats and exit codes, on the fixture schemas and contract.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use banyan_schema::{
    CheckOptions, Contract, ContractSource, EXIT_FAILURE, EXIT_OK, Format, Severity, check, load_sdl,
    load_sdl_file,
};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Loads the fixtures with repository-relative labels, so snapshots do not depend on the
/// checkout path.
fn report(strict: bool) -> banyan_schema::CheckReport {
    let old = load_sdl(
        "schema/tests/fixtures/old.graphql",
        &std::fs::read_to_string(fixture("old.graphql")).unwrap(),
    )
    .unwrap();
    let new = load_sdl(
        "schema/tests/fixtures/new.graphql",
        &std::fs::read_to_string(fixture("new.graphql")).unwrap(),
    )
    .unwrap();
    let contract = contract();
    check(&old, &new, &contract, CheckOptions { strict })
}

fn contract() -> Contract {
    // Load from disk, then relabel through from_sources for stable paths.
    let root = fixture("contract");
    let loaded = Contract::load(&root).unwrap();
    assert!(loaded.operations().len() >= 4);
    assert!(load_sdl_file(fixture("old.graphql")).is_ok());
    let mut sources = Vec::new();
    for entry in walk(std::path::Path::new(&root)) {
        let rel = entry.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let component = rel.split('/').next().unwrap().to_owned();
        sources.push(banyan_schema::ContractSource {
            path: format!("frontend-contract/{rel}"),
            component,
            text: std::fs::read_to_string(&entry).unwrap(),
        });
    }
    Contract::from_sources(sources).unwrap()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn text() {
    insta::assert_snapshot!(report(false).render(Format::Text { colour: false }));
}

#[test]
fn text_colour_only_when_asked() {
    let r = report(false);
    let plain = r.render(Format::Text { colour: false });
    let coloured = r.render(Format::Text { colour: true });
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[1;31merror"));
    // Same text once the escapes are removed.
    let stripped = strip_ansi(&coloured);
    assert_eq!(stripped, plain);
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn json() {
    let r = report(false);
    let text = r.render(Format::Json);
    assert!(text.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], "banyan-schema-check");
    assert_eq!(v["version"], 1);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["summary"]["breaking"], 6);
    let first = &v["changes"][0];
    for key in
        ["level", "kind", "coordinate", "message", "impact", "location", "anchor", "severity", "operations"]
    {
        assert!(first.get(key).is_some(), "missing {key}");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn github() {
    let text = report(false).render(Format::Github);
    for line in text.lines() {
        assert!(
            line.starts_with("::error ") || line.starts_with("::warning ") || line.starts_with("::notice "),
            "{line}"
        );
    }
    // Removals are anchored on the new schema file, never on the old one.
    assert!(!text.contains("old.graphql"));
    assert!(text.contains("::error file=schema/tests/fixtures/new.graphql,line=21,col=6,"));
    assert!(text.contains("::error file=frontend-contract/TemplateList/ListTemplates.graphql,line=4,col=5,"));
    insta::assert_snapshot!(text);
}

#[test]
fn markdown() {
    insta::assert_snapshot!(report(false).render(Format::Markdown));
}

#[test]
fn strict_text_verdict() {
    let text = report(true).render(Format::Text { colour: false });
    assert!(text.contains("3 breaking changes no operation uses (strict)"), "{text}");
}

#[test]
fn exit_codes() {
    assert_eq!(report(false).exit_code(), 1);
    assert_eq!(report(true).exit_code(), 1);

    let schema = "type Query { a: Int\n b: Int }";
    let old = load_sdl("old.graphql", schema).unwrap();
    let contract = Contract::from_sources([ContractSource {
        path: "frontend-contract/W/A.graphql".into(),
        component: "W".into(),
        text: "query A { a }".into(),
    }])
    .unwrap();
    // No changes.
    let same = check(&old, &old, &contract, CheckOptions::default());
    assert_eq!(same.exit_code(), EXIT_OK);
    assert!(same.render(Format::Text { colour: false }).contains("No schema changes."));
    // A breaking change nobody uses: 0, or 1 when strict.
    let new = load_sdl("new.graphql", "type Query { a: Int }").unwrap();
    assert_eq!(check(&old, &new, &contract, CheckOptions::default()).exit_code(), EXIT_OK);
    assert_eq!(check(&old, &new, &contract, CheckOptions { strict: true }).exit_code(), EXIT_FAILURE);
    // A breaking change an operation uses: 1.
    let new = load_sdl("new.graphql", "type Query { b: Int }").unwrap();
    let r = check(&old, &new, &contract, CheckOptions::default());
    assert_eq!(r.exit_code(), EXIT_FAILURE);
    assert_eq!(r.summary().breaking_touching_operations, 1);
    // Safe change but an operation that does not validate: 1.
    let bad = Contract::from_sources([ContractSource {
        path: "frontend-contract/W/A.graphql".into(),
        component: "W".into(),
        text: "query A { a c }".into(),
    }])
    .unwrap();
    let r = check(&old, &old, &bad, CheckOptions::default());
    assert_eq!(r.exit_code(), EXIT_FAILURE);
    assert_eq!(r.operation_errors.len(), 1);
    assert_eq!(r.operation_errors[0].position(), "frontend-contract/W/A.graphql:1:13");
    // Dangerous change touching an operation: a warning, exit 0.
    let old = load_sdl("old.graphql", "type Query { e: E }\nenum E { X }").unwrap();
    let new = load_sdl("new.graphql", "type Query { e: E }\nenum E { X Y }").unwrap();
    let uses_e = Contract::from_sources([ContractSource {
        path: "frontend-contract/W/E.graphql".into(),
        component: "W".into(),
        text: "query E { e }".into(),
    }])
    .unwrap();
    let r = check(&old, &new, &uses_e, CheckOptions { strict: true });
    assert_eq!(r.exit_code(), EXIT_OK);
    assert_eq!(r.changes[0].severity, Severity::Warning);
}
