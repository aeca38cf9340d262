//! Accepted changes: keyed by the base schema's hash, reported as accepted in every format,
//! stale and unmatched entries reported, malformed files refused.
#![allow(clippy::unwrap_used)] // tests unwrap on purpose

use banyan_schema::{
    AcceptedChanges, AcceptedChangesError, CheckOptions, CheckReport, Contract, ContractSource, Format,
    Severity, Unused, check, load_sdl, schema_hash,
};

const OLD: &str = "type Query {\n  me: User!\n  other: Int\n}\ntype User { id: ID! }\n";
const NEW: &str = "type Query {\n  me: User\n  other: Int\n}\ntype User { id: ID! }\n";

fn contract() -> Contract {
    Contract::from_sources([ContractSource {
        path: "frontend-contract/Menu/Me.graphql".into(),
        component: "Menu".into(),
        text: "query Me { me { id } }".into(),
    }])
    .unwrap()
}

fn entry(base: &str, coordinate: &str, kind: &str) -> String {
    format!(
        "[[accepted]]\nbase = \"{base}\"\ncoordinate = \"{coordinate}\"\nkind = \"{kind}\"\nreason = \"Roots are nullable now.\"\n"
    )
}

fn run(accepted_toml: &str) -> CheckReport {
    let old = load_sdl("base.graphql", OLD).unwrap();
    let new = load_sdl("schema/schema.graphql", NEW).unwrap();
    let accepted = AcceptedChanges::parse("schema/accepted-changes.toml", accepted_toml).unwrap();
    check(&old, &new, &contract(), CheckOptions::default()).with_accepted(&accepted, old.hash())
}

#[test]
fn the_hash_normalises_line_endings_trailing_blanks_and_the_final_newline() {
    // `printf 'type Query {\n a: Int\n}\n' | sha256sum`
    let expected = "sha256:c13adf388669a415a3966b9c1c44aa8ee5c349de2ce6e4a1a8b68bac244f601d";
    for text in [
        "type Query {\n a: Int\n}\n",
        "type Query {\n a: Int\n}",
        "type Query {\r\n a: Int  \r\n}\r\n\r\n",
        "\u{feff}type Query {\n a: Int\t\n}\n\n\n",
    ] {
        assert_eq!(schema_hash(text), expected, "{text:?}");
    }
    assert_ne!(schema_hash("type Query {\n a: Int!\n}\n"), expected);
    assert_ne!(schema_hash("type Query {\n  a: Int\n}\n"), expected, "leading blanks count");
    assert_eq!(load_sdl("x.graphql", "type Query {\n a: Int\n}").unwrap().hash(), expected);
}

/// The hash is streamed line by line; it must be the hash of the normalised text as the
/// definition states it (normalise with string operations, then hash), on awkward inputs too.
#[test]
fn the_streamed_hash_is_the_hash_of_the_normalised_text() {
    use sha2::{Digest, Sha256};
    fn by_definition(text: &str) -> String {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches([' ', '\t'])).collect();
        let mut normalised = lines.join("\n");
        normalised.truncate(normalised.trim_end_matches('\n').len());
        normalised.push('\n');
        format!("sha256:{}", hex::encode(Sha256::digest(normalised.as_bytes())))
    }
    for text in [
        "",
        "\n\n",
        " \t\n",
        "\n\ntype A {\n\n\n  a: Int\n}\n \n\t\n",
        "a\rb\r\rc\r",
        "a\r\n\r\nb",
        "\r\n\r",
        "\u{feff}\u{feff}a",
        "é \n  ü\t \r\n",
    ] {
        assert_eq!(schema_hash(text), by_definition(text), "{text:?}");
    }
}

#[test]
fn an_entry_for_this_base_accepts_the_change() {
    let report = run(&entry(&schema_hash(OLD), "Query.me", "FIELD_CHANGED_KIND"));
    let change = report.changes.iter().find(|c| c.change.coordinate == "Query.me").unwrap();
    assert_eq!(change.change.kind.as_str(), "FIELD_CHANGED_KIND");
    assert_eq!(change.operations.len(), 1, "still reported as touching Menu/Me");
    let acceptance = change.accepted.as_ref().expect("accepted");
    assert_eq!((acceptance.file.as_str(), acceptance.line), ("schema/accepted-changes.toml", 1));
    assert_eq!(acceptance.reason, "Roots are nullable now.");
    assert_eq!(change.severity, Severity::Notice);
    assert!(report.unused_acceptances.is_empty());
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.summary().accepted, 1);
}

#[test]
fn an_entry_written_for_another_base_does_not_apply_and_is_reported_stale() {
    // Written when the base was another schema (say, before a later change to `Query.me`).
    let other_base = schema_hash("type Query {\n  me: User\n}\ntype User { id: ID! }\n");
    let report = run(&entry(&other_base, "Query.me", "FIELD_CHANGED_KIND"));
    let change = report.changes.iter().find(|c| c.change.coordinate == "Query.me").unwrap();
    assert!(change.accepted.is_none());
    assert_eq!(change.severity, Severity::Error);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.unused_acceptances.len(), 1);
    assert_eq!(report.unused_acceptances[0].why, Unused::Stale);
    assert_eq!(report.unused_acceptances[0].entry.base, other_base);
}

#[test]
fn an_entry_for_this_base_that_matches_no_change_is_reported_unmatched() {
    let base = schema_hash(OLD);
    let toml = format!(
        "{}\n{}",
        entry(&base, "Query.me", "FIELD_CHANGED_KIND"),
        entry(&base, "Query.other", "FIELD_REMOVED")
    );
    let report = run(&toml);
    assert_eq!(report.exit_code(), 0);
    let unused: Vec<(&str, usize, Unused)> = report
        .unused_acceptances
        .iter()
        .map(|u| (u.entry.coordinate.as_str(), u.entry.line, u.why))
        .collect();
    assert_eq!(unused, [("Query.other", 7, Unused::Unmatched)]);
}

#[test]
fn the_kind_must_match_too() {
    let report = run(&entry(&schema_hash(OLD), "Query.me", "FIELD_REMOVED"));
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.unused_acceptances[0].why, Unused::Unmatched);
}

#[test]
fn every_format_says_accepted_and_names_stale_entries() {
    let toml = format!(
        "{}\n{}",
        entry(&schema_hash(OLD), "Query.me", "FIELD_CHANGED_KIND"),
        entry(&schema_hash("type Query { a: Int }"), "Query.gone", "FIELD_REMOVED")
    );
    let report = run(&toml);

    let text = report.render(Format::Text { colour: false });
    assert!(text.contains("accepted FIELD_CHANGED_KIND  Query.me"), "{text}");
    assert!(text.contains("accepted: Roots are nullable now. (schema/accepted-changes.toml:1)"), "{text}");
    assert!(
        text.contains(
            "schema/accepted-changes.toml:7: accepted FIELD_REMOVED Query.gone was written for base"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "PASSED with warnings: 1 change accepted; 1 accepted-changes entry that applies to nothing."
        ),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    let me = json["changes"].as_array().unwrap().iter().find(|c| c["coordinate"] == "Query.me").unwrap();
    assert_eq!(
        me["accepted"],
        serde_json::json!({ "file": "schema/accepted-changes.toml", "line": 1, "reason": "Roots are nullable now." })
    );
    assert_eq!(me["severity"], "notice");
    assert_eq!(json["accepted_file"], "schema/accepted-changes.toml");
    assert_eq!(json["unused_acceptances"][0]["why"], "stale");
    assert_eq!(json["unused_acceptances"][0]["coordinate"], "Query.gone");
    assert_eq!(json["summary"]["accepted"], 1);
    assert_eq!(json["exit_code"], 0);

    let github = report.render(Format::Github);
    assert!(
        github.lines().any(|l| l.starts_with("::notice file=schema/schema.graphql,line=2,")
            && l.contains("title=accepted breaking change%3A FIELD_CHANGED_KIND")
            && l.contains("Accepted (schema/accepted-changes.toml:1): Roots are nullable now.")),
        "{github}"
    );
    assert!(
        github.lines().any(|l| l.starts_with("::warning file=schema/accepted-changes.toml,line=7,")),
        "{github}"
    );
    assert!(!github.contains("::error"), "{github}");

    let markdown = report.render(Format::Markdown);
    assert!(markdown.contains("| ☑️ accepted | Field `Query.me` changed type"), "{markdown}");
    assert!(
        markdown.contains("accepted (`schema/accepted-changes.toml:1`): Roots are nullable now."),
        "{markdown}"
    );
    assert!(markdown.contains("### Accepted-changes entries that apply to nothing (1)"), "{markdown}");
}

#[test]
fn malformed_files_are_refused_with_the_entry_line() {
    let base = schema_hash(OLD);
    let cases = [
        (entry(&base, "Query.me", "FIELD_CHANGED"), "`kind` `FIELD_CHANGED` is not a change kind"),
        (entry("sha256:abc", "Query.me", "FIELD_REMOVED"), "`base` must be"),
        (
            entry(&base, "Query.me", "FIELD_REMOVED").replace("Roots are nullable now.", " "),
            "`reason` is empty",
        ),
    ];
    for (toml, wanted) in cases {
        let toml = format!("# header\n\n{toml}");
        match AcceptedChanges::parse("a.toml", &toml) {
            Err(AcceptedChangesError::Entry { line, message, .. }) => {
                assert_eq!(line, 3, "{message}");
                assert!(message.contains(wanted), "{message}");
            }
            other => panic!("{toml}: {other:?}"),
        }
    }
    let unknown_key = format!("{}note = \"x\"\n", entry(&base, "Query.me", "FIELD_REMOVED"));
    assert!(matches!(
        AcceptedChanges::parse("a.toml", &unknown_key),
        Err(AcceptedChangesError::Syntax { .. })
    ));
}
