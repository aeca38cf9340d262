//! `contract extract` on the fixture SPAs: the good one (tests/fixtures/spa: `.tsx`, `.ts`,
//! `.js`, `.jsx`, two `.vue` files and a `.graphql` file, a fragment imported from another
//! file through a re-export) reproduces the hand-written frontend-contract/ exactly; the broken
//! one (tests/fixtures/spa-broken) reports every problem at its `file:line:col`.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use banyan_schema::{
    ComponentFrom, Contract, ContractSource, Difference, ExtractError, ExtractOptions, ManifestStatus,
    build_manifest, extract, load_sdl_file, validate_contract,
};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/fixtures").join(name)
}

/// The `.graphql` files of the hand-written contract, read directly (not through `extract`).
fn committed_contract() -> BTreeMap<String, String> {
    let root = crate_dir().join("../frontend-contract");
    let mut files = BTreeMap::new();
    for component in std::fs::read_dir(&root).unwrap() {
        let component = component.unwrap().path();
        if !component.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&component).unwrap() {
            let file = file.unwrap().path();
            let rel = format!(
                "{}/{}",
                component.file_name().unwrap().to_string_lossy(),
                file.file_name().unwrap().to_string_lossy()
            );
            files.insert(rel, std::fs::read_to_string(&file).unwrap());
        }
    }
    files
}

#[test]
fn the_fixture_spa_extracts_to_the_hand_written_contract() {
    let extraction = extract(fixture("spa"), ExtractOptions::default()).unwrap();
    let expected = committed_contract();
    assert_eq!(expected.len(), 10, "the committed contract has 9 operations and 1 shared fragment file");
    let got: Vec<&String> = extraction.files.keys().collect();
    let want: Vec<&String> = expected.keys().collect();
    assert_eq!(got, want);
    for (path, text) in &expected {
        assert_eq!(&extraction.files[path], text, "{path}");
    }
    assert_eq!(extraction.operations, 9);
    assert_eq!(extraction.sources, 13);
}

#[test]
fn the_extracted_contract_validates_and_gives_the_committed_manifest() {
    let extraction = extract(fixture("spa"), ExtractOptions::default()).unwrap();
    let contract = Contract::from_sources(extraction.files.iter().map(|(path, text)| ContractSource {
        path: format!("frontend-contract/{path}"),
        component: path.split('/').next().unwrap().to_owned(),
        text: text.clone(),
    }))
    .unwrap();
    assert!(contract.rule_problems().is_empty(), "{:?}", contract.rule_problems());
    let schema = load_sdl_file(crate_dir().join("schema.graphql")).unwrap();
    let report = validate_contract(&schema, &contract);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let committed =
        std::fs::read_to_string(crate_dir().join("../frontend-contract/persisted-operations.json")).unwrap();
    assert_eq!(build_manifest(&contract).unwrap().compare(Some(&committed)), ManifestStatus::UpToDate);
}

#[test]
fn components_can_be_named_after_files() {
    let options = ExtractOptions { component: ComponentFrom::File };
    let extraction = extract(fixture("spa"), options).unwrap();
    let paths: Vec<&str> = extraction.files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "AnalyticsDashboard/AnalyticsDashboard.graphql",
            "AnalyticsDashboard/TemplateEventsFeed.graphql",
            "RenameButton/RenameTemplate.graphql",
            "TemplateEditor/TemplateEditor.graphql",
            "TemplateList/TemplateList.graphql",
            "UserMenu/UserMenu.graphql",
            "WorkspaceMembers/WorkspaceMembers.graphql",
            "WorkspaceSwitcher/WorkspaceSwitcher.graphql",
            "draftFragments/DraftContent.graphql",
            "useUpdateDraftBlock/UpdateDraftBlock.graphql",
        ]
    );
}

#[test]
fn the_broken_spa_reports_every_problem_at_its_position() {
    let err = extract(fixture("spa-broken"), ExtractOptions::default()).unwrap_err();
    let ExtractError::Unextractable { problems } = &err else { panic!("{err}") };
    let root = fixture("spa-broken").display().to_string();
    let got: Vec<(String, &str)> = problems
        .iter()
        .map(|p| (p.position().strip_prefix(&root).unwrap().to_owned(), p.code.as_str()))
        .collect();
    let want = [
        ("/src/Feed/Feed.tsx:11:5", "UNKNOWN_IDENTIFIER"),
        ("/src/Feed/Feed.tsx:17:5", "NON_STATIC_INTERPOLATION"),
        ("/src/Feed/Feed.tsx:22:5", "UNKNOWN_IDENTIFIER"),
        ("/src/Feed/Feed.tsx:29:1", "GRAPHQL_SYNTAX_ERROR"),
        ("/src/Feed/Feed.tsx:34:5", "NOT_A_FRAGMENT"),
        ("/src/Profile/Profile.vue:13:13", "UNKNOWN_FRAGMENT"),
        ("/src/Profile/Profile.vue:15:5", "NON_STATIC_INTERPOLATION"),
        ("/src/Profile/Profile.vue:19:3", "ANONYMOUS_OPERATION"),
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(p, c)| ((*p).to_owned(), *c)).collect();
    assert_eq!(got, want, "{err}");
    let missing = problems.iter().find(|p| p.position().ends_with("Feed.tsx:22:5")).unwrap();
    assert!(missing.message.contains("`MISSING` is imported from `./fragments`"), "{}", missing.message);
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("banyan-extract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn compare_finds_missing_changed_and_extra_files_and_write_repairs_them() {
    let extraction = extract(fixture("spa"), ExtractOptions::default()).unwrap();
    let out = scratch("stale");
    let written = extraction.write(&out).unwrap();
    assert_eq!(written.len(), 10);
    assert!(written.iter().all(|d| matches!(d, Difference::Missing(_))));
    assert_eq!(extraction.compare(&out).unwrap(), []);

    let readme = out.join("README.md");
    std::fs::write(&readme, "not a contract file").unwrap();
    std::fs::write(out.join("UserMenu/UserMenu.graphql"), "query UserMenu { me { id } }\n").unwrap();
    std::fs::remove_file(out.join("TemplateEditor/DraftContent.graphql")).unwrap();
    std::fs::create_dir_all(out.join("Gone")).unwrap();
    std::fs::write(out.join("Gone/Gone.graphql"), "query Gone { me { id } }\n").unwrap();
    let stale = extraction.compare(&out).unwrap();
    assert_eq!(
        stale,
        [
            Difference::Missing("TemplateEditor/DraftContent.graphql".into()),
            Difference::Changed("UserMenu/UserMenu.graphql".into()),
            Difference::Extra("Gone/Gone.graphql".into()),
        ]
    );
    extraction.write(&out).unwrap();
    assert_eq!(extraction.compare(&out).unwrap(), []);
    assert!(!out.join("Gone").exists(), "the emptied directory is removed");
    assert_eq!(
        std::fs::read_to_string(&readme).unwrap(),
        "not a contract file",
        "other files are left alone"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_missing_source_tree_is_an_io_error() {
    let err = extract(Path::new("no/such/spa"), ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, ExtractError::Io { .. }), "{err}");
}
