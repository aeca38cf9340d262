//! The `banyan` binary's schema and contract commands, run as CI runs them, on the repository's
//! own schema snapshot and contract.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn banyan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_banyan"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .output()
        .expect("banyan runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The committed snapshot with `edit` applied, written to a temporary file.
fn edited_schema(name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let snapshot = std::fs::read_to_string(repo().join("schema/schema.graphql")).expect("the snapshot");
    let edited = edit(snapshot.clone());
    assert!(edited != snapshot, "the edit {name} changed nothing");
    let path = std::env::temp_dir().join(format!("banyan-cli-{}-{name}.graphql", std::process::id()));
    std::fs::write(&path, edited).expect("a temp file");
    path
}

#[test]
fn schema_print_is_the_committed_snapshot() {
    let output = banyan(&["schema", "print"]);
    assert!(output.status.success());
    let snapshot = std::fs::read_to_string(repo().join("schema/schema.graphql")).expect("the snapshot");
    assert_eq!(stdout(&output), snapshot);
}

#[test]
fn the_contract_validates_and_its_manifest_is_up_to_date() {
    let validate = banyan(&["contract", "validate"]);
    assert_eq!(validate.status.code(), Some(0), "{}{}", stdout(&validate), stderr(&validate));
    let manifest = banyan(&["contract", "manifest", "--check"]);
    assert_eq!(
        manifest.status.code(),
        Some(0),
        "frontend-contract/persisted-operations.json is stale: run `cargo run -- contract manifest`\n{}",
        stderr(&manifest)
    );
}

#[test]
fn removing_a_field_the_contract_selects_fails_the_check() {
    let new = edited_schema("removed", |sdl| {
        let field = "\tviewerCanEdit: Boolean!\n";
        let start = sdl.find(field).expect("Template.viewerCanEdit is in the snapshot");
        // Drop the field and the description block right above it.
        let description_start = sdl[..start].rfind("\t\"\"\"\n\tWhether").expect("its description");
        format!("{}{}", &sdl[..description_start], &sdl[start + field.len()..])
    });
    let new = new.to_string_lossy().into_owned();
    let output = banyan(&["schema", "check", "--base", "schema/schema.graphql", "--new", &new]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("Template.viewerCanEdit"), "{text}");
    assert!(text.contains("TemplateList/TemplateList.graphql"), "the touched operation is named: {text}");

    let json =
        banyan(&["schema", "check", "--base", "schema/schema.graphql", "--new", &new, "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON output");
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["changes"][0]["kind"], "FIELD_REMOVED");

    let diff = banyan(&["schema", "diff", "schema/schema.graphql", &new]);
    assert_eq!(diff.status.code(), Some(1), "diff exits 1 on a breaking change");
}

#[test]
fn an_untouched_breaking_change_passes_unless_strict() {
    // No contract operation sends `WorkspaceRole.VIEWER` (it is only ever read).
    let new = edited_schema("untouched", |sdl| {
        sdl.replacen("\t\"\"\"\n\tReads only.\n\t\"\"\"\n\tVIEWER\n", "", 1)
    });
    let new = new.to_string_lossy().into_owned();
    let relaxed = banyan(&["schema", "check", "--base", "schema/schema.graphql", "--new", &new]);
    assert_eq!(relaxed.status.code(), Some(0), "{}", stdout(&relaxed));
    let strict = banyan(&["schema", "check", "--base", "schema/schema.graphql", "--new", &new, "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
}

#[test]
fn a_schema_that_does_not_parse_is_exit_2_with_its_position() {
    let path = std::env::temp_dir().join(format!("banyan-cli-{}-broken.graphql", std::process::id()));
    std::fs::write(&path, "type Query {\n  a: Int\n").expect("a temp file");
    let path = path.to_string_lossy().into_owned();
    let output = banyan(&["schema", "diff", &path, "schema/schema.graphql"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(&format!("{path}:2:10")), "file:line:col in {}", stderr(&output));
}
