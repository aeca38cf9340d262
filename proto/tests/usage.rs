//! What Banyan's real sources use, as `Usage::scan` reads it, against plain text searches of the
//! same files (an independent count).

use std::collections::BTreeSet;
use std::path::Path;

use banyan_proto::{ProtoSet, Usage};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_rpcs_found_are_the_client_methods_the_sources_call() {
    let base = ProtoSet::load_dir(&repo("sources/proto")).expect("the committed protos compile");
    let usage = Usage::scan(&repo("sources/src"), &base).expect("the sources parse");
    let found: BTreeSet<String> =
        usage.entries().filter_map(|(k, _)| k.strip_prefix("rpc:")).map(str::to_owned).collect();

    // Independently: every `rpc Name(` in the proto text whose generated client method
    // (`.snake_name(`) appears in the sources' text.
    let mut sources = String::new();
    for entry in std::fs::read_dir(repo("sources/src")).expect("sources/src").flatten() {
        sources.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    let mut expected = BTreeSet::new();
    for (file, package, service) in [
        ("sources/proto/banyan/events/v1/events.proto", "banyan.events.v1", "EventService"),
        ("sources/proto/banyan/drafts/v1/drafts.proto", "banyan.drafts.v1", "DraftService"),
    ] {
        let text = std::fs::read_to_string(repo(file)).expect("a proto file");
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap_or_default();
                if sources.contains(&format!(".{}(", snake(name))) {
                    expected.insert(format!("{package}.{service}/{name}"));
                }
            }
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(found, expected);
    // Banyan never appends events itself.
    assert!(!found.contains("banyan.events.v1.EventService/AppendEvents"));
}

#[test]
fn every_field_of_a_response_the_sources_map_is_read() {
    let base = ProtoSet::load_dir(&repo("sources/proto")).expect("the committed protos compile");
    let usage = Usage::scan(&repo("sources/src"), &base).expect("the sources parse");
    // `TemplateStats` is mapped field by field into the domain type in events.rs: each of its
    // fields appears there as `s.<field>` (a plain search), and each is a use.
    let events = std::fs::read_to_string(repo("sources/src/events.rs")).expect("events.rs");
    for field in ["template_id", "sent", "delivered", "opened", "clicked", "bounced", "unique_opens"] {
        assert!(events.contains(&format!("s.{field}")), "{field}");
        let sites = usage.sites_of(&format!("field:banyan.events.v1.TemplateStats.{field}"));
        assert!(sites.iter().any(|s| s.function == "EventsClient::template_stats"), "{field}: {sites:?}");
    }
}

/// `scan` reads only the files that can name a generated module; reading every file of the
/// tree finds exactly the same uses, sites included.
#[test]
fn reading_only_the_files_that_can_name_generated_code_loses_no_use() {
    let base = ProtoSet::load_dir(&repo("sources/proto")).expect("the committed protos compile");
    let scanned = Usage::scan(&repo("sources/src"), &base).expect("the sources parse");
    let mut every_file = Vec::new();
    let mut walk = vec![repo("sources/src")];
    while let Some(dir) = walk.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(repo("sources/src")).expect("under sources/src");
                let name = relative.to_string_lossy().replace('\\', "/");
                every_file.push((name, std::fs::read_to_string(&path).expect("a source file")));
            }
        }
    }
    every_file.sort();
    assert!(every_file.len() > 10, "{}", every_file.len());
    let label = repo("sources/src").display().to_string();
    let read_all = Usage::from_sources(&label, &every_file, &base).expect("the sources parse");
    let entries = |u: &Usage| u.entries().map(|(k, v)| (k.to_owned(), v.to_vec())).collect::<Vec<_>>();
    assert!(!entries(&scanned).is_empty());
    assert_eq!(entries(&scanned), entries(&read_all));
}
