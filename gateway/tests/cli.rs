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

/// The committed snapshot with `Template.subject` nullable: breaking for TemplateEditor, which
/// selects it, while every operation stays valid.
fn nullable_subject(sdl: String) -> String {
    assert!(sdl.contains("\tsubject: String!\n"), "Template.subject is in the snapshot");
    sdl.replacen("\tsubject: String!\n", "\tsubject: String\n", 1)
}

fn accepted_file(name: &str, base: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("banyan-cli-{}-{name}.toml", std::process::id()));
    let text = format!(
        "[[accepted]]\nbase = \"{base}\"\ncoordinate = \"Template.subject\"\nkind = \"FIELD_CHANGED_KIND\"\nreason = \"Templates without a subject are allowed now.\"\n"
    );
    std::fs::write(&path, text).expect("a temp file");
    path
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
    let new = edited_schema("accepted", nullable_subject).to_string_lossy().into_owned();
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

    let for_this_base = check(&accepted_file("this-base", &base));
    assert_eq!(for_this_base.status.code(), Some(0), "{}", stdout(&for_this_base));
    let text = stdout(&for_this_base);
    assert!(text.contains("accepted FIELD_CHANGED_KIND  Template.subject"), "{text}");
    assert!(text.contains("accepted: Templates without a subject are allowed now."), "{text}");

    // Written against another base: it does not apply, and it is named as stale.
    let other = banyan_schema::schema_hash("type Query { a: Int }");
    let for_another_base = check(&accepted_file("other-base", &other));
    assert_eq!(for_another_base.status.code(), Some(1), "{}", stdout(&for_another_base));
    let text = stdout(&for_another_base);
    assert!(text.contains(&format!("was written for base {other}, not this base")), "{text}");

    let malformed = accepted_file("malformed", "sha256:nothex");
    assert_eq!(check(&malformed).status.code(), Some(2));
    assert!(stderr(&check(&malformed)).contains("`base` must be"), "{}", stderr(&check(&malformed)));
    assert_eq!(check(Path::new("no/such/accepted.toml")).status.code(), Some(2));
}

/// A throwaway git repository holding `.ci/schema-contract` and the contract, for running the
/// gate as CI does.
struct GitRepo {
    root: PathBuf,
}

impl GitRepo {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("banyan-ci-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(".ci")).expect("a temp dir");
        std::fs::create_dir_all(root.join("schema")).expect("a temp dir");
        std::fs::copy(repo().join(".ci/schema-contract"), root.join(".ci/schema-contract"))
            .expect("the script");
        copy_dir(&repo().join("frontend-contract"), &root.join("frontend-contract"));
        let repo = Self { root };
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
    let git = GitRepo::new("merge-base");
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
    let accepted = std::fs::read_to_string(accepted_file("gate", &base)).expect("the entry");
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
    let _ = std::fs::remove_dir_all(&git.root);
}

#[test]
fn schemas_using_one_of_load_and_adding_it_is_breaking() {
    let write = |name: &str, text: &str| {
        let path = std::env::temp_dir().join(format!("banyan-cli-{}-{name}.graphql", std::process::id()));
        std::fs::write(&path, text).expect("a temp file");
        path.to_string_lossy().into_owned()
    };
    let plain = write("plain", "type Query { find(by: By): Int }\ninput By { id: ID slug: String }\n");
    let one_of =
        write("one-of", "type Query { find(by: By): Int }\ninput By @oneOf { id: ID slug: String }\n");
    let added = banyan(&["schema", "diff", &plain, &one_of]);
    assert_eq!(added.status.code(), Some(1), "{}{}", stdout(&added), stderr(&added));
    assert!(stdout(&added).contains("ONE_OF_ADDED"), "{}", stdout(&added));
    let removed = banyan(&["schema", "diff", &one_of, &plain]);
    assert_eq!(removed.status.code(), Some(0), "{}{}", stdout(&removed), stderr(&removed));
    assert!(stdout(&removed).contains("ONE_OF_REMOVED"), "{}", stdout(&removed));
}
