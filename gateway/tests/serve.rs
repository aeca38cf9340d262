//! `banyan serve` as a process, as systemd or Kubernetes runs it: configured by a file and the
//! environment, with stderr a pipe, not a terminal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempPath;

/// How long to wait for the next log line before calling the process stuck: a bound against
/// hangs, not a measurement.
const LINE_WAIT: Duration = Duration::from_secs(60);

/// The address in the file: TEST-NET-1 is never local, so binding it fails. A server that comes
/// up at all took its address from `BANYAN_SERVER__LISTEN`.
const UNBINDABLE: &str = "192.0.2.1:4000";

/// A running `banyan serve`, its stderr read line by line (raw bytes) on a thread.
struct Served {
    child: Child,
    lines: mpsc::Receiver<Vec<u8>>,
    seen: Vec<Vec<u8>>,
    /// The configuration file, removed with this (the process reads it as it starts).
    _config: TempPath,
}

/// Writes `toml` to a scratch file and starts `banyan serve --config` on it with exactly the
/// environment `vars` (nothing inherited, so neither the caller's `NO_COLOR` nor a stray
/// `BANYAN_` variable changes the outcome) plus a service-identity secret (which `vars` may
/// override), stderr piped.
fn serve(name: &str, toml: &str, vars: &[(&str, &str)]) -> Served {
    let config = scratch_file(name, toml);
    let mut child = Command::new(env!("CARGO_BIN_EXE_banyan"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_clear()
        .env("BANYAN_AUTH__SERVICE_IDENTITY_SECRETS", "[\"a-service-identity-secret-of-32-bytes\"]")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("banyan starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Served { child, lines, seen: Vec::new(), _config: config }
}

/// A file holding `text` in the system's temporary directory, named after `name`, removed when
/// dropped (a failing test's too).
fn scratch_file(name: &str, text: &str) -> TempPath {
    let mut file = tempfile::Builder::new()
        .prefix(&format!("banyan-serve-{name}-"))
        .suffix(".toml")
        .tempfile()
        .expect("a temp file");
    file.write_all(text.as_bytes()).expect("the temp file written");
    file.into_temp_path()
}

impl Served {
    /// The first line from now on that `matches`; panics if stderr ends first.
    fn line_where(&mut self, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let line = match self.lines.recv_timeout(LINE_WAIT) {
                Ok(line) => line,
                Err(e) => panic!("no matching log line ({e}); stderr so far:\n{}", self.stderr_so_far()),
            };
            self.seen.push(line.clone());
            let text = String::from_utf8_lossy(&line).into_owned();
            if matches(&text) {
                return text;
            }
        }
    }

    fn stderr_so_far(&self) -> String {
        self.seen.iter().map(|line| String::from_utf8_lossy(line).into_owned() + "\n").collect()
    }

    /// Stops the process and returns every line it wrote to stderr.
    fn stop(mut self) -> Vec<Vec<u8>> {
        // Only this test's own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe is closed now: the reader thread drains what is left and ends.
        while let Ok(line) = self.lines.recv_timeout(LINE_WAIT) {
            self.seen.push(line);
        }
        self.seen
    }
}

/// `GET path` over a plain socket with an `x-request-id`; the status line and headers.
fn get(addr: SocketAddr, path: &str, request_id: &str) -> String {
    get_with(addr, path, &format!("x-request-id: {request_id}\r\n"))
}

/// `GET path` over a plain socket with the extra header lines; the status line and headers.
fn get_with(addr: SocketAddr, path: &str, extra_headers: &str) -> String {
    let mut socket = TcpStream::connect(addr).expect("the server accepts");
    socket.set_read_timeout(Some(LINE_WAIT)).expect("a read timeout");
    write!(socket, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n")
        .expect("sent");
    let mut response = String::new();
    socket.read_to_string(&mut response).expect("an answer");
    response
}

#[test]
fn serve_ignores_banyan_variables_that_are_not_config_keys_and_logs_without_colour_to_a_pipe() {
    let toml = format!("[server]\nlisten = \"{UNBINDABLE}\"\n");
    let mut served = serve(
        "text",
        &toml,
        &[
            ("BANYAN_LOG", "info,tower_http=debug"),
            ("BANYAN_VERSION", "1.2.3"),
            ("BANYAN_BIN", "/usr/local/bin/banyan"),
            ("BANYAN_SERVER__LISTEN", "127.0.0.1:0"),
        ],
    );
    let listening = served.line_where(|line| line.contains("Banyan is listening"));
    let addr: SocketAddr = listening
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("`addr=` in {listening:?}"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "listening on the override's address: {addr}");
    assert!(get(addr, "/readyz", "text-1").starts_with("HTTP/1.1 200"), "it serves");
    // BANYAN_LOG was read as the log filter: tower_http's debug lines are there.
    served.line_where(|line| line.contains("finished processing request"));

    let lines = served.stop();
    let coloured: Vec<String> = lines
        .iter()
        .filter(|line| line.contains(&0x1b))
        .map(|line| String::from_utf8_lossy(line).escape_debug().to_string())
        .collect();
    assert!(coloured.is_empty(), "ANSI escapes on a pipe: {coloured:#?}");
}

#[test]
fn json_logs_are_one_object_per_line_with_their_fields_and_spans() {
    let toml = format!("[server]\nlisten = \"{UNBINDABLE}\"\nlog_format = \"json\"\n");
    let mut served = serve(
        "json",
        &toml,
        &[("BANYAN_LOG", "info,tower_http=debug"), ("BANYAN_SERVER__LISTEN", "127.0.0.1:0")],
    );
    let listening: Value =
        serde_json::from_str(&served.line_where(|line| line.contains("Banyan is listening"))).expect("JSON");
    assert_eq!(listening["level"], "INFO", "{listening}");
    assert_eq!(listening["message"], "Banyan is listening", "{listening}");
    assert_eq!(listening["target"], "banyan_gateway::server", "{listening}");
    let addr: SocketAddr = listening["addr"]
        .as_str()
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("an `addr` field: {listening}"));
    assert!(get(addr, "/readyz", "json-1").starts_with("HTTP/1.1 200"), "it serves");
    let finished: Value =
        serde_json::from_str(&served.line_where(|line| line.contains("finished processing request")))
            .expect("JSON");
    assert_eq!(finished["level"], "DEBUG", "{finished}");
    assert_eq!(finished["span"]["name"], "request", "the request's span: {finished}");
    assert_eq!(finished["span"]["uri"], "/readyz", "{finished}");
    assert_eq!(finished["span"]["request_id"], "json-1", "{finished}");
    assert!(finished["span"].get("trace_id").is_none(), "no traceparent, no trace id: {finished}");
    // A W3C traceparent: its trace id is on every line of the request.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traced = get_with(
        addr,
        "/healthz",
        &format!("x-request-id: json-2\r\ntraceparent: 00-{trace_id}-b7ad6b7169203331-01\r\n"),
    );
    assert!(traced.starts_with("HTTP/1.1 200"), "{traced}");
    let finished: Value = serde_json::from_str(
        &served.line_where(|line| line.contains("finished processing request") && line.contains("json-2")),
    )
    .expect("JSON");
    assert_eq!(finished["span"]["request_id"], "json-2", "{finished}");
    assert_eq!(finished["span"]["trace_id"], trace_id, "{finished}");

    let lines = served.stop();
    assert!(lines.len() >= 3, "{} lines", lines.len());
    for line in &lines {
        let text = String::from_utf8_lossy(line);
        let object: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(object[field].is_string(), "`{field}` in {text}");
        }
        assert!(!line.contains(&0x1b), "no ANSI escapes in JSON: {text}");
    }
}

#[test]
fn serve_refuses_a_misspelt_variable_and_names_it() {
    let mut served =
        serve("misspelt", "", &[("BANYAN_LOG", "debug"), ("BANYAN_SERVER__LISTN", "127.0.0.1:0")]);
    let status = served.child.wait().expect("banyan exits");
    let lines = served.stop();
    let stderr: String = lines.iter().map(|line| String::from_utf8_lossy(line).into_owned() + "\n").collect();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown field: found `listn`"), "{stderr}");
    assert!(stderr.contains("BANYAN_SERVER__LISTN"), "{stderr}");
}

/// `POST /graphql` with `body` and the extra header lines over a plain socket; the status line
/// and the body.
fn post_graphql(addr: SocketAddr, body: &str, extra_headers: &str) -> (String, Value) {
    let mut socket = TcpStream::connect(addr).expect("the server accepts");
    socket.set_read_timeout(Some(LINE_WAIT)).expect("a read timeout");
    write!(
        socket,
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/graphql-response+json\r\n{extra_headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sent");
    let mut response = String::new();
    socket.read_to_string(&mut response).expect("an answer");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn serve_refuses_introspection_without_the_admin_token_and_serves_no_graphiql() {
    const TOKEN: &str = "serve-test-admin-token-0123456789";
    let toml = format!("[server]\nlisten = \"{UNBINDABLE}\"\n");
    // Backends are never reached: these requests are anonymous.
    let mut served = serve(
        "introspection",
        &toml,
        &[("BANYAN_SERVER__LISTEN", "127.0.0.1:0"), ("BANYAN_ADMIN__TOKEN", TOKEN)],
    );
    let listening = served.line_where(|line| line.contains("Banyan is listening"));
    let addr: SocketAddr = listening
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("`addr=` in {listening:?}"));
    let introspection = r#"{"query":"{ __schema { queryType { name } } }"}"#;
    let (status, body) = post_graphql(addr, introspection, "");
    assert!(status.starts_with("HTTP/1.1 400"), "{status} {body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "INTROSPECTION_DISABLED", "{body}");
    assert!(body.get("data").is_none(), "{body}");
    let (status, body) = post_graphql(addr, r#"{"query":"{ __typename }"}"#, "");
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    assert_eq!(body["data"]["__typename"], "Query");
    let (status, body) = post_graphql(addr, introspection, &format!("x-banyan-admin-token: {TOKEN}\r\n"));
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query", "{body}");
    // A browser asking for the page gets no GraphiQL.
    let mut socket = TcpStream::connect(addr).expect("the server accepts");
    socket.set_read_timeout(Some(LINE_WAIT)).expect("a read timeout");
    write!(
        socket,
        "GET /graphql HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html,*/*;q=0.8\r\nConnection: close\r\n\r\n"
    )
    .expect("sent");
    let mut page = String::new();
    socket.read_to_string(&mut page).expect("an answer");
    assert!(!page.to_ascii_lowercase().contains("graphiql"), "{page}");
    served.stop();
}

#[test]
fn serve_refuses_to_start_without_a_service_identity_secret() {
    let toml = "[server]\nlisten = \"127.0.0.1:0\"\n";
    let mut served = serve("no-secret", toml, &[("BANYAN_AUTH__SERVICE_IDENTITY_SECRETS", "[]")]);
    let status = served.child.wait().expect("banyan exits");
    let lines = served.stop();
    let stderr: String = lines.iter().map(|line| String::from_utf8_lossy(line).into_owned() + "\n").collect();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("auth.service_identity_secrets"), "{stderr}");
    assert!(stderr.contains("BANYAN_AUTH__SERVICE_IDENTITY_SECRETS"), "{stderr}");
    assert!(!stderr.contains("Banyan is listening"), "{stderr}");

    // A secret too short to key an HMAC is refused as configuration, naming the key.
    let mut served = serve("short-secret", toml, &[("BANYAN_AUTH__SERVICE_IDENTITY_SECRETS", "[\"short\"]")]);
    let status = served.child.wait().expect("banyan exits");
    let lines = served.stop();
    let stderr: String = lines.iter().map(|line| String::from_utf8_lossy(line).into_owned() + "\n").collect();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("auth.service_identity_secrets") && stderr.contains("at least 32"), "{stderr}");
}

/// `banyan serve` stopped by a signal, as Kubernetes (SIGTERM) or a developer (Ctrl-C, SIGINT)
/// stops it: `/readyz` answers 503 while the listener still accepts, for `server.shutdown_delay`;
/// then the listener stops, the requests in flight drain, and the process exits 0. The log says
/// each step, in that order.
#[test]
fn a_signal_turns_readyz_503_then_stops_accepting_then_drains_and_exits_0() {
    for signal in ["TERM", "INT"] {
        let toml = format!("[server]\nlisten = \"{UNBINDABLE}\"\nshutdown_delay = \"3s\"\n");
        let mut served =
            serve(&format!("signal-{signal}"), &toml, &[("BANYAN_SERVER__LISTEN", "127.0.0.1:0")]);
        let listening = served.line_where(|line| line.contains("Banyan is listening"));
        let addr: SocketAddr = listening
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("`addr=` in {listening:?}"));
        assert!(get(addr, "/readyz", "before").starts_with("HTTP/1.1 200"), "ready while serving");

        // Only this test's own child, by its process id.
        let killed = Command::new("kill")
            .args([format!("-{signal}"), served.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "SIG{signal} sent");
        served.line_where(|line| line.contains(&format!("received SIG{signal}")));
        served.line_where(|line| line.contains("shutting down: /readyz answers 503"));
        // Within the delay: the listener still accepts, and readiness says to go elsewhere.
        let readyz = get(addr, "/readyz", "during");
        assert!(readyz.starts_with("HTTP/1.1 503"), "SIG{signal}: {readyz}");
        assert!(readyz.to_ascii_lowercase().contains("connection: close"), "SIG{signal}: {readyz}");
        served.line_where(|line| line.contains("stopped accepting connections"));
        served.line_where(|line| line.contains("drained: every request and WebSocket finished"));
        let status = served.child.wait().expect("banyan exits");
        assert_eq!(status.code(), Some(0), "SIG{signal}: a clean stop");
        assert!(TcpStream::connect(addr).is_err(), "SIG{signal}: the listener is closed");
        served.stop();
    }
}

/// `banyan serve --check` with exactly the environment `vars` (plus a service-identity secret
/// they may override): exit code, stdout, stderr.
fn check(name: &str, toml: &str, vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let config = scratch_file(name, toml);
    let output = Command::new(env!("CARGO_BIN_EXE_banyan"))
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .env_clear()
        .env("BANYAN_AUTH__SERVICE_IDENTITY_SECRETS", "[\"a-service-identity-secret-of-32-bytes\"]")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("banyan runs");
    drop(config);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// A deployment's configuration is checked before it rolls out: what a start would refuse,
/// `--check` refuses with the same reason, and a good one passes without binding its address.
#[test]
fn serve_check_judges_a_configuration_as_a_start_would_without_serving() {
    // The address cannot be bound here: a check that tried would fail.
    let good = format!("[server]\nlisten = \"{UNBINDABLE}\"\n");
    let (code, stdout, stderr) = check("check-good", &good, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("Banyan would start with this configuration"), "{stdout}");
    assert!(!stderr.contains("Banyan is listening"), "{stderr}");

    let (code, _, stderr) =
        check("check-no-secret", &good, &[("BANYAN_AUTH__SERVICE_IDENTITY_SECRETS", "[]")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("auth.service_identity_secrets"), "{stderr}");

    // A routing table naming a field the catalog does not know: the start's own error, with
    // the table's file and line.
    let table = scratch_file("check-table", "[fields.\"Template.nope\"]\nmode = \"service\"\n");
    let with_table = format!("{good}[migration]\nrouting_table = \"{}\"\n", table.display());
    let (code, _, stderr) = check("check-bad-table", &with_table, &[]);
    drop(table);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("Template.nope") && stderr.contains(":1:"), "{stderr}");

    let (code, _, stderr) = check("check-bad-key", "[server]\nlisen = \"127.0.0.1:0\"\n", &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("unknown field: found `lisen`"), "{stderr}");
}
