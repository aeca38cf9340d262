//! `banyan dev` as a process (the README's `cargo run --release`): its async workers have the
//! stack a query as deep as the limits allow needs. With tokio's default 2 MiB, a 12-deep query
//! (exactly `limits.max_depth`) overflowed a worker's stack in a debug build and aborted the
//! process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// A bound against a hung process, not a measurement.
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn dev_answers_a_query_as_deep_as_the_limits_allow_and_stays_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_banyan"))
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_MIN_STACK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("banyan dev starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut authorization, mut table) = (None, None, None);
    for line in lines.by_ref().take(40) {
        let line = line.expect("a banner line");
        if let Some(url) = line.trim().strip_prefix("GraphiQL:") {
            addr = url
                .trim()
                .strip_prefix("http://")
                .and_then(|rest| rest.strip_suffix("/graphql"))
                .map(str::to_owned);
        }
        if let Some(value) = line.trim().strip_prefix("Authorization:") {
            authorization = Some(value.trim().to_owned());
        }
        if let Some(rest) = line.trim().strip_prefix("Routing table:") {
            // `<path> (edit it; ...)`
            table = rest.trim().split(" (").next().map(std::path::PathBuf::from);
            break;
        }
    }
    let (Some(addr), Some(authorization), Some(table)) = (addr, authorization, table) else {
        let _ = child.kill();
        panic!("the banner names the address, a token and the routing table");
    };
    assert!(table.is_file(), "the routing table {} exists while dev runs", table.display());

    // template → (workspace → templates → nodes) × 3 → workspace → id: 12 fields deep.
    let mut selection = "workspace { id }".to_owned();
    for _ in 0..3 {
        selection = format!("workspace {{ templates(first: 1) {{ nodes {{ {selection} }} }} }}");
    }
    let template = base64::engine::general_purpose::STANDARD.encode("Template:1");
    let body =
        json!({ "query": format!("{{ template(id: \"{template}\") {{ {selection} }} }}") }).to_string();
    let answer = post(&addr, &authorization, &body);
    let still_running = child.try_wait().map(|status| status.is_none()).unwrap_or(false);
    if !still_running {
        let _ = child.wait();
        panic!("banyan dev died answering a 12-deep query");
    }
    // Stopped as a developer stops it (Ctrl-C is SIGINT): it exits 0 and takes its scratch
    // routing table with it.
    let interrupted =
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(interrupted.success(), "SIGINT sent");
    let status = wait_bounded(&mut child);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "banyan dev exits 0 on SIGINT");
    assert!(!table.exists(), "{} is removed when dev stops", table.display());
    let folder = table.parent().expect("the table's folder");
    assert!(!folder.exists(), "{} is removed when dev stops", folder.display());
    let (head, json_body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let value: Value = serde_json::from_str(json_body).unwrap_or(Value::Null);
    assert!(value.get("errors").is_none(), "{value}");
    let mut inner = &value["data"]["template"];
    for _ in 0..3 {
        inner = &inner["workspace"]["templates"]["nodes"][0];
    }
    assert!(inner["workspace"]["id"].is_string(), "{value}");
}

/// The child's exit status once it exits, or `None` (after killing it) when it has not within
/// [`WAIT`].
fn wait_bounded(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `POST /graphql` with `body` over a plain socket; the whole answer (`Connection: close`).
fn post(addr: &str, authorization: &str, body: &str) -> String {
    let mut socket = TcpStream::connect(addr).expect("the gateway accepts");
    socket.set_read_timeout(Some(WAIT)).expect("a read timeout");
    write!(
        socket,
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Authorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sent");
    let mut answer = String::new();
    // A process that aborts mid-request leaves a reset or an empty answer, not an error here.
    let _ = socket.read_to_string(&mut answer);
    answer
}

/// The usual first-run problem, a port already taken, is one clear line that says what to do,
/// before the devstack starts (no start-up lines for a start that cannot happen).
#[test]
fn dev_on_a_taken_port_says_so_once_and_suggests_another_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = taken.local_addr().expect("its address");
    let output = Command::new(env!("CARGO_BIN_EXE_banyan"))
        .args(["dev", "--listen", &addr.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("banyan dev runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("already in use").count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("{addr} is already in use")), "{stderr}");
    assert!(stderr.contains("banyan dev --listen 127.0.0.1:"), "{stderr}");
    assert!(!stderr.contains("devstack started"), "{stderr}");
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
}
