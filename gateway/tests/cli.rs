//! The `banyan` binary's schema and contract commands, run as CI runs them, on the repository's
//! own schema snapshot and contract.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::{TempDir, TempPath};

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

/// A file holding `text` in the system's temporary directory, removed when dropped (a failing
/// test's too).
fn temp_file(suffix: &str, text: &str) -> TempPath {
    let mut file =
        tempfile::Builder::new().prefix("banyan-cli-").suffix(suffix).tempfile().expect("a temp file");
    file.write_all(text.as_bytes()).expect("the temp file written");
    file.into_temp_path()
}

/// The committed snapshot with `edit` applied, written to a temporary file.
fn edited_schema(name: &str, edit: impl FnOnce(String) -> String) -> TempPath {
    let snapshot = std::fs::read_to_string(repo().join("schema/schema.graphql")).expect("the snapshot");
    let edited = edit(snapshot.clone());
    assert!(edited != snapshot, "the edit {name} changed nothing");
    temp_file(".graphql", &edited)
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
    let edited = edited_schema("removed", |sdl| {
        let field = "\tviewerCanEdit: Boolean!\n";
        let start = sdl.find(field).expect("Template.viewerCanEdit is in the snapshot");
        // Drop the field and the description block right above it.
        let description_start = sdl[..start].rfind("\t\"\"\"\n\tWhether").expect("its description");
        format!("{}{}", &sdl[..description_start], &sdl[start + field.len()..])
    });
    let new = edited.to_string_lossy().into_owned();
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
    let edited = edited_schema("untouched", |sdl| {
        sdl.replacen("\t\"\"\"\n\tReads only.\n\t\"\"\"\n\tVIEWER\n", "", 1)
    });
    let new = edited.to_string_lossy().into_owned();
    let relaxed = banyan(&["schema", "check", "--base", "schema/schema.graphql", "--new", &new]);
    assert_eq!(relaxed.status.code(), Some(0), "{}", stdout(&relaxed));
    let strict = banyan(&["schema", "check", "--base", "schema/schema.graphql", "--new", &new, "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
}

#[test]
fn a_schema_that_does_not_parse_is_exit_2_with_its_position() {
    let broken = temp_file(".graphql", "type Query {\n  a: Int\n");
    let path = broken.to_string_lossy().into_owned();
    let output = banyan(&["schema", "diff", &path, "schema/schema.graphql"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(&format!("{path}:2:10")), "file:line:col in {}", stderr(&output));
}

/// The base of a diff was validated when it was new: it is parsed, not validated again. A base
/// naming a type it does not define still diffs (and that text as the new schema is exit 2);
/// one that does not parse, or whose definitions cannot stand alone, is still exit 2.
#[test]
fn the_base_is_parsed_and_the_new_schema_validated() {
    let unknown = temp_file(".graphql", "type Query {\n  a: Int\n  b: Missing\n}\n");
    let unknown = unknown.to_string_lossy().into_owned();
    let valid = temp_file(".graphql", "type Query {\n  a: Int\n}\n");
    let valid = valid.to_string_lossy().into_owned();
    let as_base = banyan(&["schema", "diff", &unknown, &valid]);
    assert_eq!(as_base.status.code(), Some(1), "{}{}", stdout(&as_base), stderr(&as_base));
    assert!(stdout(&as_base).contains("Query.b"), "the removed field in {}", stdout(&as_base));
    let as_new = banyan(&["schema", "diff", &valid, &unknown]);
    assert_eq!(as_new.status.code(), Some(2));
    assert!(stderr(&as_new).contains("Missing"), "{}", stderr(&as_new));
    // An extension of a type the base does not define: loaded whole, validated, exit 2.
    let orphan = temp_file(".graphql", "type Query {\n  a: Int\n}\nextend type Nowhere {\n  x: Int\n}\n");
    let orphan = orphan.to_string_lossy().into_owned();
    let output = banyan(&["schema", "diff", &orphan, &valid]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(&format!("{orphan}:4")), "{}", stderr(&output));
    // Nothing defined at all: as before, not a schema.
    let empty = temp_file(".graphql", "# nothing yet\n");
    let empty = empty.to_string_lossy().into_owned();
    assert_eq!(banyan(&["schema", "diff", &empty, &valid]).status.code(), Some(2));
}

/// The committed snapshot with `Template.subject` nullable: breaking for TemplateEditor, which
/// selects it, while every operation stays valid.
fn nullable_subject(sdl: String) -> String {
    assert!(sdl.contains("\tsubject: String!\n"), "Template.subject is in the snapshot");
    sdl.replacen("\tsubject: String!\n", "\tsubject: String\n", 1)
}

fn accepted_file(base: &str) -> TempPath {
    let text = format!(
        "[[accepted]]\nbase = \"{base}\"\ncoordinate = \"Template.subject\"\nkind = \"FIELD_CHANGED_KIND\"\nreason = \"Templates without a subject are allowed now.\"\n"
    );
    temp_file(".toml", &text)
}

#[test]
fn schema_hash_prints_the_key_of_a_base() {
    let output = banyan(&["schema", "hash", "schema/schema.graphql"]);
    assert_eq!(output.status.code(), Some(0));
    let snapshot = std::fs::read_to_string(repo().join("schema/schema.graphql")).expect("the snapshot");
    assert_eq!(stdout(&output), format!("{}\n", banyan_schema::schema_hash(&snapshot)));
    // The same text with CRLF line endings and no final newline has the same key.
    let crlf = edited_schema("crlf", |sdl| sdl.trim_end().replace('\n', "\r\n"));
    let crlf_output = banyan(&["schema", "hash", &crlf.to_string_lossy()]);
    assert_eq!(stdout(&crlf_output), stdout(&output));
    assert_eq!(banyan(&["schema", "hash", "no/such/file.graphql"]).status.code(), Some(2));
}

#[test]
fn an_accepted_change_passes_only_against_the_base_it_was_written_for() {
    let edited = edited_schema("accepted", nullable_subject);
    let new = edited.to_string_lossy().into_owned();
    let base = stdout(&banyan(&["schema", "hash", "schema/schema.graphql"])).trim().to_owned();
    let check = |accepted: &Path| {
        let accepted = accepted.to_string_lossy().into_owned();
        banyan(&[
            "schema",
            "check",
            "--base",
            "schema/schema.graphql",
            "--new",
            &new,
            "--accepted",
            &accepted,
        ])
    };

    let for_this_base = check(&accepted_file(&base));
    assert_eq!(for_this_base.status.code(), Some(0), "{}", stdout(&for_this_base));
    let text = stdout(&for_this_base);
    assert!(text.contains("accepted FIELD_CHANGED_KIND  Template.subject"), "{text}");
    assert!(text.contains("accepted: Templates without a subject are allowed now."), "{text}");

    // Written against another base: it does not apply, and it is named as stale.
    let other = banyan_schema::schema_hash("type Query { a: Int }");
    let for_another_base = check(&accepted_file(&other));
    assert_eq!(for_another_base.status.code(), Some(1), "{}", stdout(&for_another_base));
    let text = stdout(&for_another_base);
    assert!(text.contains(&format!("was written for base {other}, not this base")), "{text}");

    let malformed = accepted_file("sha256:nothex");
    assert_eq!(check(&malformed).status.code(), Some(2));
    assert!(stderr(&check(&malformed)).contains("`base` must be"), "{}", stderr(&check(&malformed)));
    assert_eq!(check(Path::new("no/such/accepted.toml")).status.code(), Some(2));
}

/// A throwaway git repository holding `.ci/schema-contract`, the contract and the fixture SPA it
/// is extracted from, for running the gate as CI does.
struct GitRepo {
    /// Removed with the repository.
    _dir: TempDir,
    root: PathBuf,
}

impl GitRepo {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("banyan-ci-").tempdir().expect("a temp dir");
        let root = dir.path().to_owned();
        std::fs::create_dir_all(root.join(".ci")).expect("a temp dir");
        std::fs::create_dir_all(root.join("schema")).expect("a temp dir");
        std::fs::copy(repo().join(".ci/schema-contract"), root.join(".ci/schema-contract"))
            .expect("the script");
        copy_dir(&repo().join("frontend-contract"), &root.join("frontend-contract"));
        // The gate checks frontend-contract/ against the SPA source it is extracted from.
        let spa = "schema/tests/fixtures/spa";
        copy_dir(&repo().join(spa), &root.join(spa));
        let repo = Self { _dir: dir, root };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.root)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {}", stderr(&output));
        stdout(&output)
    }

    fn commit(&self, file: &str, text: &str, message: &str) {
        std::fs::write(self.root.join(file), text).expect("write");
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    fn gate(&self, env: &[(&str, &str)]) -> Output {
        let mut command = Command::new("bash");
        command
            .arg(".ci/schema-contract")
            .current_dir(&self.root)
            .env("BANYAN_BIN", env!("CARGO_BIN_EXE_banyan"))
            .env("NO_COLOR", "1")
            .env_remove("BANYAN_CONTRACT_BASE")
            .env_remove("GITHUB_BASE_REF");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("bash runs")
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a dir");
    for entry in std::fs::read_dir(from).expect("readable") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("a copy");
        }
    }
}

#[test]
fn the_ci_gate_compares_against_the_merge_base_when_ci_names_a_target() {
    let snapshot = std::fs::read_to_string(repo().join("schema/schema.graphql")).expect("the snapshot");
    let git = GitRepo::new();
    git.commit("schema/schema.graphql", &snapshot, "main's schema");
    git.git(&["checkout", "-q", "-b", "feature"]);
    git.commit("schema/schema.graphql", &nullable_subject(snapshot.clone()), "a breaking change");
    git.commit("notes.txt", "unrelated\n", "a later commit that does not touch the schema");

    // A push: HEAD~1 has the same schema, so there is nothing to judge.
    let push = git.gate(&[]);
    assert_eq!(push.status.code(), Some(0), "{}{}", stdout(&push), stderr(&push));
    assert!(stdout(&push).contains("base is HEAD~1"), "{}", stdout(&push));

    // A pull request into main: judged against the merge base, the breaking change fails.
    let explicit = git.gate(&[("BANYAN_CONTRACT_BASE", "main")]);
    assert_eq!(explicit.status.code(), Some(1), "{}{}", stdout(&explicit), stderr(&explicit));
    assert!(stdout(&explicit).contains("base is the merge base with main"), "{}", stdout(&explicit));
    assert!(stdout(&explicit).contains("Template.subject"), "{}", stdout(&explicit));
    git.git(&["update-ref", "refs/remotes/origin/main", "main"]);
    let github = git.gate(&[("GITHUB_BASE_REF", "main")]);
    assert_eq!(github.status.code(), Some(1), "{}{}", stdout(&github), stderr(&github));
    assert!(stdout(&github).contains("base is the merge base with origin/main"), "{}", stdout(&github));

    // Accepted against main's schema, the change passes, and says so.
    let base = banyan_schema::schema_hash(&snapshot);
    let accepted = std::fs::read_to_string(accepted_file(&base)).expect("the entry");
    git.commit("schema/accepted-changes.toml", &accepted, "accept the change");
    let with_entry = git.gate(&[("BANYAN_CONTRACT_BASE", "main")]);
    assert_eq!(with_entry.status.code(), Some(0), "{}{}", stdout(&with_entry), stderr(&with_entry));
    assert!(
        stdout(&with_entry).contains("accepted FIELD_CHANGED_KIND  Template.subject"),
        "{}",
        stdout(&with_entry)
    );

    // A target with no common history is an input error, not a silent HEAD~1.
    let unknown = git.gate(&[("BANYAN_CONTRACT_BASE", "no-such-branch")]);
    assert_eq!(unknown.status.code(), Some(2), "{}{}", stdout(&unknown), stderr(&unknown));
}

#[test]
fn schemas_using_one_of_load_and_adding_it_is_breaking() {
    let plain_file =
        temp_file(".graphql", "type Query { find(by: By): Int }\ninput By { id: ID slug: String }\n");
    let one_of_file =
        temp_file(".graphql", "type Query { find(by: By): Int }\ninput By @oneOf { id: ID slug: String }\n");
    let (plain, one_of) = (plain_file.to_string_lossy(), one_of_file.to_string_lossy());
    let added = banyan(&["schema", "diff", &plain, &one_of]);
    assert_eq!(added.status.code(), Some(1), "{}{}", stdout(&added), stderr(&added));
    assert!(stdout(&added).contains("ONE_OF_ADDED"), "{}", stdout(&added));
    let removed = banyan(&["schema", "diff", &one_of, &plain]);
    assert_eq!(removed.status.code(), Some(0), "{}{}", stdout(&removed), stderr(&removed));
    assert!(stdout(&removed).contains("ONE_OF_REMOVED"), "{}", stdout(&removed));
}

/// The benchmark's generator (schema/benches/support/synth.rs), for the 5,000-type pair.
#[path = "../../schema/benches/support/synth.rs"]
mod synth;

/// Writes the pair `synth_schemas` writes (two documented 5,000-type schemas with 477 changes
/// and 500 contract operations) into a fresh directory.
fn synth_pair() -> TempDir {
    let scratch = tempfile::Builder::new().prefix("banyan-cli-synth-").tempdir().expect("a temp dir");
    let dir = scratch.path();
    let (_, _, files) = synth::generate(5_000, 500, 486);
    let (old, new) = synth::generate_documented(5_000, 486);
    std::fs::write(dir.join("old.graphql"), old).expect("a temp file");
    std::fs::write(dir.join("new.graphql"), new).expect("a temp file");
    for file in files {
        let rel = file.path.strip_prefix("frontend-contract/").expect("a contract path");
        let path = dir.join("contract").join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a temp dir");
        std::fs::write(path, file.text).expect("a temp file");
    }
    scratch
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The reports of `schema diff` and `schema check` on the generated 5,000-type pair are, byte
/// for byte, what they were before the diff moved from apollo-compiler's schemas to the compact
/// model loaded in chunks (recorded with the release build of 47683e8): the text reports are the
/// committed fixtures, the JSON ones (every field of every change, position, anchor, touched
/// operation and operation error) are pinned by their SHA-256.
#[test]
fn reports_on_the_generated_5000_type_pair_are_unchanged() {
    let scratch = synth_pair();
    let dir = scratch.path();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_banyan"))
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("banyan runs");
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        output.stdout
    };
    let diff = ["schema", "diff", "old.graphql", "new.graphql"];
    let check =
        ["schema", "check", "--base", "old.graphql", "--new", "new.graphql", "--contract", "contract"];
    let fixture = |name: &str| {
        std::fs::read_to_string(repo().join("schema/tests/fixtures/synth").join(name)).expect("the fixture")
    };
    let diff_text = String::from_utf8(run(&diff)).expect("UTF-8");
    assert!(diff_text == fixture("diff.txt"), "schema diff's text report changed:\n{diff_text}");
    let check_text = String::from_utf8(run(&check)).expect("UTF-8");
    assert!(check_text == fixture("check.txt"), "schema check's text report changed:\n{check_text}");
    assert!(check_text.ends_with(
        "FAILED: 123 breaking changes touch contract operations; 37 contract operation errors. (exit 1)\n"
    ));
    let json = |args: &[&str]| sha256_hex(&run(&[args, &["--format", "json"]].concat()));
    assert_eq!(json(&diff), "d89c820532f0e0429ed1fc7c8f29e01654172031d2209ededf6943fd87f507ed");
    assert_eq!(json(&check), "b7d3e3cf994d08ed9daa0f973de9a0354b02c0891e4a312ecc21daa37368a6b9");
}

// ---- banyan migration report / check ----

/// A routing table written to a temporary file.
fn table_file(text: &str) -> TempPath {
    temp_file(".toml", text)
}

fn report_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["migration", "report", "--format", "json"];
    all.extend_from_slice(args);
    let output = banyan(&all);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value.as_array().expect("an array").iter().map(|v| v.as_str().expect("a string").to_owned()).collect()
}

/// `(component, [(field, mode)], service share, monolith endpoints)` from the report.
type ComponentRow = (String, Vec<(String, String)>, Option<f64>, Vec<String>);

fn components(report: &serde_json::Value) -> Vec<ComponentRow> {
    report["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            let fields = c["migrated_fields"]
                .as_array()
                .expect("fields")
                .iter()
                .map(|f| {
                    (f["key"].as_str().expect("key").to_owned(), f["mode"].as_str().expect("mode").to_owned())
                })
                .collect();
            (
                c["component"].as_str().expect("name").to_owned(),
                fields,
                c["service_share"].as_f64(),
                strings(&c["monolith_endpoints"]),
            )
        })
        .collect()
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn fields(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, m)| ((*k).to_owned(), (*m).to_owned())).collect()
}

// The expectations below are read off frontend-contract/*/*.graphql by hand, with each selected
// field's declared calls (migration/src/banyan.rs), not computed by the code under test:
// - AnalyticsDashboard: `template` (GET templates), `stats`, `recentEvents`; its
//   TemplateEventsFeed subscription: `templateEvents` (GET templates + StreamEvents).
// - TemplateEditor: `template`, `draft`, `Draft.updatedBy` (GET users); UpdateDraftBlock:
//   `updateDraftBlock` (whose service side still asks GET templates for permissions).
// - TemplateList: `templates`, `createdBy` (GET users), `stats`; RenameTemplate: `renameTemplate`
//   (PATCH templates/{id}).
// - UserMenu: `me`. WorkspaceMembers: `workspace`, `members`, `WorkspaceMember.user`.
//   WorkspaceSwitcher: `me`, `workspaces`.
// - Every component needs GET /api/v1/me/ for the gateway's identity check.
const ME: &str = "GET /api/v1/me/";
const TEMPLATES: &str = "GET /api/v1/templates/";
const USERS: &str = "GET /api/v1/users/";
const ANALYTICS: &str = "GET /api/v1/templates/{id}/analytics/";
const DRAFT: &str = "GET /api/v1/templates/{id}/draft/";
const EVENTS: &str = "GET /api/v1/templates/{id}/events/";
const BLOCK_INSERT: &str = "POST /api/v1/templates/{id}/draft/blocks/";
const BLOCK_UPDATE: &str = "PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/";
const BLOCK_DELETE: &str = "DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/";

#[test]
fn the_migration_report_for_the_default_table_and_the_committed_contract() {
    let report = report_json(&[]);
    let expected: Vec<ComponentRow> = vec![
        (
            "AnalyticsDashboard".into(),
            fields(&[("Template.stats", "service"), ("Template.recentEvents", "service")]),
            Some(1.0),
            owned(&[ME, TEMPLATES]),
        ),
        (
            "TemplateEditor".into(),
            fields(&[("Template.draft", "service"), ("Mutation.updateDraftBlock", "service")]),
            Some(1.0),
            owned(&[ME, TEMPLATES, USERS]),
        ),
        (
            "TemplateList".into(),
            fields(&[("Template.stats", "service")]),
            Some(1.0),
            owned(&[ME, TEMPLATES, USERS, "PATCH /api/v1/templates/{id}/"]),
        ),
        ("UserMenu".into(), vec![], None, owned(&[ME])),
        (
            "WorkspaceMembers".into(),
            vec![],
            None,
            owned(&[ME, "GET /api/v1/memberships/", USERS, "GET /api/v1/workspaces/"]),
        ),
        ("WorkspaceSwitcher".into(), vec![], None, owned(&[ME, "GET /api/v1/workspaces/"])),
    ];
    assert_eq!(components(&report), expected);

    // Every field on its service: the legacy views and the legacy draft writes can go; the
    // permission check (GET templates) cannot, the service side of the writes still asks it.
    let mut retirable = owned(&[ANALYTICS, DRAFT, EVENTS, BLOCK_INSERT, BLOCK_UPDATE, BLOCK_DELETE]);
    retirable.sort();
    assert_eq!(strings(&report["retirable"]), retirable);
    let templates = report["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["endpoint"] == TEMPLATES)
        .expect("GET templates is listed");
    let updating = templates["needed_by"]
        .as_array()
        .expect("needs")
        .iter()
        .find(|n| n["by"] == "Mutation.updateDraftBlock")
        .expect("the service side of updateDraftBlock needs it");
    assert_eq!(updating["mode"], "service");
    assert_eq!(strings(&updating["components"]), ["TemplateEditor"]);

    for field in report["fields"].as_array().expect("fields") {
        assert_eq!(field["readiness"]["status"], "on_service", "{field}");
    }

    // Text and Markdown say the same.
    let text = banyan(&["migration", "report"]);
    assert_eq!(text.status.code(), Some(0));
    let text = stdout(&text);
    assert!(text.contains("  UserMenu: no migrated field\n"), "{text}");
    assert!(text.contains(&format!("  {ANALYTICS}: retirable\n")), "{text}");
    let markdown = stdout(&banyan(&["migration", "report", "--format", "md"]));
    assert!(markdown.contains(&format!("| `{ANALYTICS}` | **retirable** | |")), "{markdown}");
}

#[test]
fn the_migration_report_follows_the_table_and_judges_readiness_per_contract_operation() {
    let table_path = table_file(
        "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 0.1\n\
         [fields.\"Template.recentEvents\"]\nmode = \"canary\"\npercent = 20\n\
         [fields.\"Template.draft\"]\nmode = \"legacy\"\n\
         [fields.\"Mutation.updateDraftBlock\"]\nmode = \"legacy\"\n\
         [fields.\"Mutation.insertDraftBlock\"]\nmode = \"legacy\"\n\
         [fields.\"Mutation.deleteDraftBlock\"]\nmode = \"legacy\"\n",
    );
    let table = table_path.to_string_lossy().into_owned();
    let report = report_json(&["--table", &table]);
    let shares: Vec<(String, Option<f64>)> =
        components(&report).into_iter().map(|(name, _, share, _)| (name, share)).collect();
    assert_eq!(
        shares,
        [
            // (0% shadow with the monolith serving + 20% canary) / 2
            ("AnalyticsDashboard".to_owned(), Some(0.1)),
            ("TemplateEditor".to_owned(), Some(0.0)),
            ("TemplateList".to_owned(), Some(0.0)),
            ("UserMenu".to_owned(), None),
            ("WorkspaceMembers".to_owned(), None),
            ("WorkspaceSwitcher".to_owned(), None),
        ]
    );
    // Every legacy view is called by something again.
    assert_eq!(report["retirable"], serde_json::json!([]));
    let needs = |endpoint: &str| -> Vec<(String, String, Vec<String>)> {
        let entry = report["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .find(|e| e["endpoint"] == endpoint)
            .unwrap_or_else(|| panic!("{endpoint} is listed"));
        entry["needed_by"]
            .as_array()
            .expect("needs")
            .iter()
            .map(|n| {
                (
                    n["by"].as_str().expect("by").to_owned(),
                    n["mode"].as_str().unwrap_or("").to_owned(),
                    strings(&n["components"]),
                )
            })
            .collect()
    };
    assert_eq!(
        needs(ANALYTICS),
        [("Template.stats".into(), "shadow".into(), owned(&["AnalyticsDashboard", "TemplateList"]))]
    );
    assert_eq!(
        needs(EVENTS),
        [("Template.recentEvents".into(), "canary".into(), owned(&["AnalyticsDashboard"]))]
    );
    assert_eq!(
        needs(BLOCK_UPDATE),
        [("Mutation.updateDraftBlock".into(), "legacy".into(), owned(&["TemplateEditor"]))]
    );
    assert_eq!(needs(BLOCK_INSERT), [("Mutation.insertDraftBlock".into(), "legacy".into(), vec![])]);

    // Readiness names every contract operation selecting the field: AnalyticsDashboard and
    // TemplateList select `stats`; only TemplateEditor selects `Template.draft` (UpdateDraftBlock
    // reads drafts through its payload types, not through `Template.draft`).
    let shortfalls = |key: &str| -> Vec<String> {
        let field = report["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["key"] == key)
            .unwrap_or_else(|| panic!("{key} is listed"));
        assert_eq!(field["readiness"]["status"], "not_ready", "{field}");
        strings(&field["readiness"]["shortfalls"])
    };
    let none_compared = "0 calls compared, 1000 required";
    assert_eq!(
        shortfalls("Template.stats"),
        [
            none_compared,
            "contract operation AnalyticsDashboard not yet compared",
            "contract operation TemplateList not yet compared"
        ]
    );
    assert_eq!(
        shortfalls("Template.recentEvents"),
        [none_compared, "contract operation AnalyticsDashboard not yet compared"]
    );
    assert_eq!(
        shortfalls("Template.draft"),
        [none_compared, "contract operation TemplateEditor not yet compared"]
    );
    assert_eq!(
        shortfalls("Mutation.updateDraftBlock"),
        [none_compared, "contract operation UpdateDraftBlock not yet compared"]
    );
    assert_eq!(shortfalls("Mutation.insertDraftBlock"), [none_compared]);
}

#[test]
fn migration_check_exit_codes_and_error_format() {
    let example = banyan(&["migration", "check", "migration/routing.example.toml"]);
    assert_eq!(example.status.code(), Some(0), "{}", stderr(&example));
    assert!(stdout(&example).contains("Template.stats shadow"), "{}", stdout(&example));

    let bad = table_file(
        "[fields.\"Template.stats\"]\nmode = \"legacy\"\n\n[fields.\"Mutation.deleteDraftBlock\"]\nmode = \"canary\"\npercent = 5\n\n[fields.\"Template.nope\"]\nmode = \"legacy\"\n",
    );
    let bad_path = bad.to_string_lossy().into_owned();
    let output = banyan(&["migration", "check", &bad_path]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "two problems and a count: {err}");
    assert!(lines[0].starts_with(&format!("{bad_path}:5:")), "{err}");
    assert!(lines[0].contains(": `Mutation.deleteDraftBlock`: "), "{err}");
    assert!(lines[1].starts_with(&format!("{bad_path}:8:")), "{err}");
    assert!(lines[1].contains(": `Template.nope`: unknown field key"), "{err}");
    assert_eq!(lines[2], format!("error: {bad_path}: 2 problems"));

    // The same table fails the report as an input error.
    let report = banyan(&["migration", "report", "--table", &bad_path]);
    assert_eq!(report.status.code(), Some(2));

    let missing = banyan(&["migration", "check", "no/such/table.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).starts_with("error: cannot read no/such/table.toml"), "{}", stderr(&missing));
}

#[test]
fn the_contract_is_what_the_fixture_spa_holds() {
    let output = banyan(&["contract", "extract", "--from", "schema/tests/fixtures/spa", "--check"]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("9 operations from 13 source files"), "{}", stdout(&output));
}

#[test]
fn extract_check_exits_1_on_a_stale_contract_and_extract_repairs_it() {
    let scratch = tempfile::Builder::new().prefix("banyan-cli-extracted-").tempdir().expect("a temp dir");
    let out = scratch.path().join("contract");
    let out_arg = out.to_string_lossy().into_owned();
    let extract = |check: bool| {
        let mut args = vec!["contract", "extract", "--from", "schema/tests/fixtures/spa", "--out", &out_arg];
        if check {
            args.push("--check");
        }
        banyan(&args)
    };
    let missing = extract(true);
    assert_eq!(missing.status.code(), Some(1), "an empty folder is stale: {}", stderr(&missing));
    assert!(stderr(&missing).contains("missing  UserMenu/UserMenu.graphql"), "{}", stderr(&missing));

    let written = extract(false);
    assert_eq!(written.status.code(), Some(0), "{}", stderr(&written));
    assert_eq!(extract(true).status.code(), Some(0));

    std::fs::write(out.join("UserMenu/UserMenu.graphql"), "query UserMenu { me { id } }\n").expect("edit");
    let stale = extract(true);
    assert_eq!(stale.status.code(), Some(1));
    assert!(stderr(&stale).contains("changed  UserMenu/UserMenu.graphql"), "{}", stderr(&stale));
    assert_eq!(extract(false).status.code(), Some(0));
    assert_eq!(extract(true).status.code(), Some(0));
}

#[test]
fn extract_exits_2_with_the_position_of_what_cannot_be_extracted() {
    let output = banyan(&["contract", "extract", "--from", "schema/tests/fixtures/spa-broken", "--check"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(
        err.contains(
            "schema/tests/fixtures/spa-broken/src/Feed/Feed.tsx:17:5: error: only an identifier bound to a gql fragment template can be interpolated"
        ),
        "{err}"
    );
    assert!(err.contains("schema/tests/fixtures/spa-broken/src/Profile/Profile.vue:15:5"), "{err}");
}
