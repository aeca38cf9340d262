//! The proto contract over real sockets: `banyan proto pull` against the devstack's services
//! (gRPC server reflection, v1 and v1alpha) writes exactly the committed `sources/proto/`, and a
//! service serving a changed descriptor makes `proto pull --check` and `proto check` fail, naming
//! the field and the Banyan code that reads it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use banyan_devstack::{DevStack, DevStackConfig};
use banyan_gateway::contract_cli::{Output, OutputFormat};
use banyan_gateway::proto_cli::{self, CheckArgs, PullArgs, ReflectionVersion, Rules};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A scratch folder of this test's own, removed when dropped.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new(name: &str) -> Self {
        Scratch(
            tempfile::Builder::new()
                .prefix(&format!("banyan-proto-{name}-"))
                .tempdir()
                .expect("a scratch folder"),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Every `.proto` file under `dir`, by relative path, with its bytes: listed with a plain walk.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("a readable folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).expect("under dir").to_string_lossy().replace('\\', "/");
                out.push((name, std::fs::read(&path).expect("a readable file")));
            }
        }
    }
    out.sort();
    out
}

fn pull_args(stack: &DevStack, out: &Path, check: bool, reflection: ReflectionVersion) -> PullArgs {
    PullArgs {
        services: vec![stack.events_url(), stack.drafts_addr().to_string()],
        out: out.to_path_buf(),
        check,
        prune: false,
        reflection,
        timeout: Duration::from_secs(10),
    }
}

async fn pull(args: &PullArgs) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = proto_cli::pull(args, &mut out, &mut err).await;
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

fn check(base: &Path, new: &Path, strict: bool) -> (i32, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args = CheckArgs { base, new, sources: &repo("sources/src"), rules: Rules::WireJson, strict };
    let code =
        proto_cli::check(args, Output { format: OutputFormat::Text, colour: false }, &mut out, &mut err);
    (code, format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err)))
}

async fn pull_round_trips(reflection: ReflectionVersion, protocol: &str) {
    let stack = DevStack::start(DevStackConfig::default()).await.expect("the devstack starts");
    let scratch = Scratch::new(protocol);
    let (code, _, err) = pull(&pull_args(&stack, scratch.path(), false, reflection)).await;
    assert_eq!(code, 0, "{err}");
    // Each server answered over the protocol asked for, listing its own service only.
    assert!(
        err.contains(&format!("{} ({protocol}): banyan.events.v1.EventService\n", stack.events_url())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{} ({protocol}): banyan.drafts.v1.DraftService\n", stack.drafts_addr())),
        "{err}"
    );
    assert_eq!(stack.calls().count("ServerReflection/ServerReflectionInfo"), 2);
    // Byte for byte what is committed, and nothing else (no well-known types).
    let committed = files_under(&repo("sources/proto"));
    assert_eq!(committed.len(), 2);
    assert_eq!(files_under(scratch.path()), committed);
    // So `--check` against the committed folder passes.
    let (code, out, err) = pull(&pull_args(&stack, &repo("sources/proto"), true, reflection)).await;
    assert_eq!(code, 0, "{out}{err}");
    // And a second pull over the first writes nothing.
    let (code, out, _) = pull(&pull_args(&stack, scratch.path(), false, reflection)).await;
    assert_eq!(code, 0);
    assert_eq!(out.matches("unchanged").count(), 2, "{out}");
    stack.shutdown().await;
}

#[tokio::test]
async fn pull_over_reflection_v1_writes_exactly_the_committed_protos() {
    pull_round_trips(ReflectionVersion::V1, "grpc.reflection.v1").await;
}

#[tokio::test]
async fn pull_over_reflection_v1alpha_writes_exactly_the_committed_protos() {
    pull_round_trips(ReflectionVersion::V1Alpha, "grpc.reflection.v1alpha").await;
}

/// The line of `needle` in a file (1-based), found by a plain search.
fn line_of(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).expect("a readable file");
    let lines: Vec<usize> =
        text.lines().enumerate().filter(|(_, l)| l.contains(needle)).map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 1, "{needle} is on {lines:?}");
    lines[0]
}

#[tokio::test]
async fn a_service_serving_a_changed_descriptor_fails_the_check_naming_the_field_and_the_code() {
    // The event store's team removes `TemplateStats.unique_opens`, which Banyan reads, without
    // reserving its number: the one change, so the failure is exactly this one.
    let changed = Scratch::new("changed");
    for (name, bytes) in files_under(&repo("sources/proto")) {
        let path = changed.path().join(&name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
        let mut text = String::from_utf8(bytes).expect("UTF-8");
        if name.ends_with("events.proto") {
            let field =
                "  // Distinct recipients with at least one OPENED event.\n  uint64 unique_opens = 7;\n";
            assert!(text.contains(field));
            text = text.replace(field, "");
        }
        std::fs::write(path, text).expect("a written file");
    }
    let config =
        DevStackConfig { reflected_protos: Some(changed.path().to_owned()), ..DevStackConfig::default() };
    let stack = DevStack::start(config).await.expect("the devstack starts");

    // The committed protos are no longer what the service serves.
    let (code, out, _) =
        pull(&pull_args(&stack, &repo("sources/proto"), true, ReflectionVersion::Auto)).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("banyan/events/v1/events.proto (+0 -2 lines)"), "{out}");
    assert!(out.contains("-  uint64 unique_opens = 7;"), "{out}");
    assert!(!out.contains("drafts.proto"), "{out}");

    // Pulled and checked against the committed ones: a breaking change Banyan reads.
    let pulled = Scratch::new("pulled");
    let (code, _, err) = pull(&pull_args(&stack, pulled.path(), false, ReflectionVersion::Auto)).await;
    assert_eq!(code, 0, "{err}");
    let (code, report) = check(&repo("sources/proto"), pulled.path(), false);
    assert_eq!(code, 1, "{report}");
    let line = line_of(&repo("sources/src/events.rs"), "unique_opens: s.unique_opens");
    assert!(
        report.contains("error   FIELD_REMOVED  banyan.events.v1.TemplateStats.unique_opens"),
        "{report}"
    );
    let site = format!(
        "used by EventsClient::template_stats at {}:{line}:",
        repo("sources/src").join("events.rs").display()
    );
    assert!(report.contains(&site), "{site} not in {report}");
    assert!(report.contains("reads `unique_opens`"), "{report}");
    assert!(report.contains("FAILED: 1 breaking change touches what Banyan uses. (exit 1)"), "{report}");
    stack.shutdown().await;
}

#[tokio::test]
async fn removing_an_rpc_banyan_does_not_call_is_a_warning_unless_strict() {
    // Banyan never calls `AppendEvents` (the devstack's generator appends); its removal warns.
    let changed = Scratch::new("no-append");
    for (name, bytes) in files_under(&repo("sources/proto")) {
        let path = changed.path().join(&name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
        let text = String::from_utf8(bytes).expect("UTF-8");
        let rpc = "  rpc AppendEvents(AppendEventsRequest) returns (AppendEventsResponse);\n";
        std::fs::write(path, text.replace(rpc, "")).expect("a written file");
    }
    let (code, report) = check(&repo("sources/proto"), changed.path(), false);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("warning RPC_REMOVED  banyan.events.v1.EventService/AppendEvents"), "{report}");
    assert!(report.contains("Banyan does not use it"), "{report}");
    let (code, report) = check(&repo("sources/proto"), changed.path(), true);
    assert_eq!(code, 1, "{report}");
}

#[tokio::test]
async fn a_server_without_reflection_is_an_input_error() {
    // A listener that accepts and never speaks HTTP/2: the pull gives up at its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a listener");
    let addr = silent.local_addr().expect("an address");
    let scratch = Scratch::new("silent");
    let args = PullArgs {
        services: vec![addr.to_string()],
        out: scratch.path().to_owned(),
        check: false,
        prune: false,
        reflection: ReflectionVersion::Auto,
        timeout: Duration::from_millis(500),
    };
    let (code, _, err) = pull(&args).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("error: {addr}: no answer within 500ms")), "{err}");
    assert!(files_under(scratch.path()).is_empty());
    drop(silent);
}
