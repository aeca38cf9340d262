//! The bounded soak's load driver (`scripts/soak/run.sh` builds and runs it): starts the devstack
//! in this process (with its event generator on), a `banyan serve` child process in front of it on
//! loopback, then drives the gateway at saturation for a set time with the frontend contract's
//! queries and mutations over HTTP and a couple of live subscriptions over WebSocket, sampling the
//! gateway process's resident memory (`VmRSS` in `/proc/<pid>/status`) as it goes. At the end it
//! prints the requests, the gateway errors (a non-200 answer, any GraphQL error, a subscription
//! error or end), the throughput and the memory series, and exits non-zero on any gateway error,
//! on a gateway that panicked or died, or on memory that grew.
//!
//! Only the gateway is measured: the devstack and the clients live in this process, not in the
//! child. Settings are environment variables (see [`Settings::from_env`]).
#![allow(clippy::print_stdout)] // the report is the tool's output

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use banyan_devstack::{DevStack, DevStackConfig, EventGeneratorConfig};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The user every request acts as: owner of workspaces 1 and 2.
const USER: u64 = banyan_devstack::dataset::OWNER_USER;
/// The templates the event generator writes to and the subscriptions follow.
const LIVE_TEMPLATES: [u64; 2] = [1, 2];
/// Error samples kept for the report.
const ERROR_SAMPLES: usize = 5;

/// What the soak is told by its environment.
struct Settings {
    /// `SOAK_SECONDS`: how long to drive the gateway (default 600).
    duration: Duration,
    /// `SOAK_CLIENTS`: concurrent HTTP clients, each sending its next request as soon as the last
    /// is answered (default 32).
    clients: usize,
    /// `SOAK_SUBSCRIPTIONS`: WebSocket connections, each with one subscription (default 2).
    subscriptions: usize,
    /// `SOAK_SAMPLE_SECONDS`: how often RSS is sampled (default 5).
    sample_every: Duration,
    /// `SOAK_WARMUP_SECONDS`: samples before this are left out of the memory verdict (default a
    /// fifth of the run, at most 60).
    warm_up: Duration,
    /// `SOAK_RSS_TOLERANCE`: how much the last third's mean may exceed the first third's (default
    /// 0.10).
    tolerance: f64,
    /// `SOAK_EVENT_RATE`: events per second the devstack appends (default 10).
    event_rate: f64,
    /// The `banyan` binary (first argument).
    banyan: PathBuf,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        fn number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
            match std::env::var(name) {
                Ok(text) => {
                    text.trim().parse().map_err(|_| anyhow::anyhow!("{name}={text:?} is not a number"))
                }
                Err(_) => Ok(default),
            }
        }
        let seconds: u64 = number("SOAK_SECONDS", 600)?;
        if seconds == 0 {
            bail!("SOAK_SECONDS must be at least 1");
        }
        let warm_up_default = (seconds / 5).min(60);
        let banyan = std::env::args_os()
            .nth(1)
            .map(PathBuf::from)
            .context("usage: banyan-soak <path to the banyan binary>")?;
        Ok(Self {
            duration: Duration::from_secs(seconds),
            clients: number("SOAK_CLIENTS", 32)?.max(1),
            subscriptions: number("SOAK_SUBSCRIPTIONS", 2)?,
            sample_every: Duration::from_secs(number("SOAK_SAMPLE_SECONDS", 5)?.max(1)),
            warm_up: Duration::from_secs(number("SOAK_WARMUP_SECONDS", warm_up_default)?),
            tolerance: number("SOAK_RSS_TOLERANCE", 0.10)?,
            event_rate: number("SOAK_EVENT_RATE", 10.0)?,
            banyan,
        })
    }
}

/// One HTTP operation of the mix: the contract's document and the variables a component sends.
struct Operation {
    name: String,
    body: String,
    variables: Value,
}

/// The contract's queries and mutations with variables (the subscription goes over WebSocket);
/// and the names of operations the soak has no variables for, which it leaves out.
fn operation_mix() -> (Vec<Operation>, Vec<String>) {
    use banyan_tests::{template_id, workspace_id};
    let mut mix = Vec::new();
    let mut left_out = Vec::new();
    for (name, body) in banyan_tests::contract_operations() {
        let variables = match name.as_str() {
            "UserMenu" | "WorkspaceSwitcher" => json!({}),
            "TemplateList" => json!({ "workspaceId": workspace_id(1), "first": 50 }),
            // The same name every time: a rename that changes nothing grows nothing.
            "RenameTemplate" => json!({ "id": template_id(3), "name": "Soak, renamed" }),
            "TemplateEditor" => json!({ "id": template_id(1) }),
            // Always the seeded version: the first save applies, every later one is the typed
            // conflict (data, not an error), so the draft never grows.
            "UpdateDraftBlock" => json!({ "input": {
                "blockId": banyan_tests::block_id(4, "b1"), "content": "Soak edit", "expectedVersion": 1,
            } }),
            "AnalyticsDashboard" => json!({ "id": template_id(2), "window": "LAST_30_DAYS" }),
            "WorkspaceMembers" => json!({ "id": workspace_id(1) }),
            "TemplateEventsFeed" => continue,
            _ => {
                left_out.push(name);
                continue;
            }
        };
        mix.push(Operation { name, body, variables });
    }
    (mix, left_out)
}

/// What the clients counted.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    subscription_events: AtomicU64,
    subscription_errors: AtomicU64,
    samples: Mutex<Vec<String>>,
    /// Answer times in microseconds, for the report's percentiles.
    latencies: Mutex<Vec<u32>>,
}

impl Tally {
    async fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().await;
        if samples.len() < ERROR_SAMPLES {
            samples.push(what);
        }
    }
}

/// The gateway child process, killed (by its PID, through its handle) when dropped.
struct Gateway {
    child: Child,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port: bound, read, released (the gateway binds it a moment later).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// The gateway's resident memory in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let outcome = async {
        let settings = Settings::from_env()?;
        let scratch = std::env::temp_dir().join(format!("banyan-soak-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).context("creating a scratch directory")?;
        let outcome = soak(&settings, &scratch).await;
        let _ = std::fs::remove_dir_all(&scratch);
        outcome
    }
    .await;
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn soak(settings: &Settings, scratch: &std::path::Path) -> anyhow::Result<()> {
    let devstack = DevStack::start(DevStackConfig {
        event_generator: EventGeneratorConfig {
            rate_per_second: settings.event_rate,
            template_ids: LIVE_TEMPLATES.to_vec(),
        },
        ..DevStackConfig::default()
    })
    .await
    .context("starting the devstack")?;
    let port = free_port()?;
    let secrets: Vec<String> = devstack.service_identity_secrets().to_vec();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [backends.monolith]\nurl = \"{}\"\n\n[backends.events]\nurl = \"{}\"\n\n\
         [backends.drafts]\nurl = \"{}\"\n\n[auth]\nservice_identity_secrets = {}\n",
        devstack.monolith_url(),
        devstack.events_url(),
        devstack.drafts_url(),
        serde_json::to_string(&secrets)?,
    );
    let config_path = scratch.join("banyan.toml");
    std::fs::write(&config_path, config).context("writing the gateway's configuration")?;
    let log_path = scratch.join("gateway.log");
    let log = std::fs::File::create(&log_path).context("creating the gateway's log")?;
    let child = Command::new(&settings.banyan)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", settings.banyan.display()))?;
    let mut gateway = Gateway { child };
    let pid = gateway.child.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(settings.clients)
        .build()?;
    let mut ready = false;
    for _ in 0..300 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        if let Some(status) = gateway.child.try_wait()? {
            bail!("the gateway exited at start ({status}); its log: {}", tail(&log_path));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        bail!("the gateway was not ready after 30 s; its log: {}", tail(&log_path));
    }
    let token = devstack.dataset().user(USER).map(|u| u.token.clone()).context("the seeded user")?;
    let (mix, left_out) = operation_mix();
    if mix.is_empty() {
        bail!("the contract has no operation the soak can send");
    }
    println!(
        "soak: gateway pid {pid} on {base}, {} s, {} HTTP clients, {} subscriptions, operations: {}",
        settings.duration.as_secs(),
        settings.clients,
        settings.subscriptions,
        mix.iter().map(|op| op.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    if !left_out.is_empty() {
        println!("soak: left out (no variables known): {}", left_out.join(", "));
    }

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mix = Arc::new(mix);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..settings.clients {
        let (http, url, token, mix, tally, stop) = (
            http.clone(),
            format!("{base}/graphql"),
            token.clone(),
            mix.clone(),
            tally.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let mut next = client;
            while !stop.load(Ordering::Relaxed) {
                let op = &mix[next % mix.len()];
                next += 1;
                send(&http, &url, &token, op, &tally).await;
            }
        });
    }
    let feed = banyan_tests::contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateEventsFeed")
        .map(|(_, body)| body);
    if let Some(feed) = feed.filter(|_| settings.subscriptions > 0) {
        for _ in 0..settings.subscriptions {
            let (url, token, feed, tally, stop) = (
                format!("ws://127.0.0.1:{port}/graphql"),
                token.clone(),
                feed.clone(),
                tally.clone(),
                stop.clone(),
            );
            tasks.spawn(async move { subscribe(&url, &token, &feed, &tally, &stop).await });
        }
    }

    // Sample the gateway's RSS until the time is up.
    let mut rss: Vec<(Duration, u64)> = Vec::new();
    let mut died = None;
    while started.elapsed() < settings.duration {
        if let Some(kib) = rss_kib(pid) {
            rss.push((started.elapsed(), kib));
        }
        if let Some(status) = gateway.child.try_wait()? {
            died = Some(status);
            break;
        }
        let left = settings.duration.saturating_sub(started.elapsed());
        tokio::time::sleep(settings.sample_every.min(left)).await;
    }
    if let Some(kib) = rss_kib(pid) {
        rss.push((started.elapsed(), kib));
    }
    stop.store(true, Ordering::Relaxed);
    // In-flight requests finish (each is bounded by the client timeout); subscriptions stop.
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let alive = died.is_none() && gateway.child.try_wait()?.is_none();
    drop(gateway);
    devstack.shutdown().await;

    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let panics = log_text.matches("panicked").count();
    report(settings, &tally, &rss, elapsed, alive, panics).await
}

/// Sends one operation and counts its answer.
async fn send(http: &reqwest::Client, url: &str, token: &str, op: &Operation, tally: &Tally) {
    let sent = Instant::now();
    let answer = http
        .post(url)
        .header("authorization", format!("Token {token}"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": op.body, "variables": op.variables, "operationName": op.name }))
        .send()
        .await;
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let response = match answer {
        Ok(response) => response,
        Err(error) => return tally.error(format!("{}: transport error: {error}", op.name)).await,
    };
    let status = response.status();
    let body: Value = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(error) => return tally.error(format!("{}: body cut: {error}", op.name)).await,
    };
    let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
    tally.latencies.lock().await.push(micros);
    if status != 200 {
        tally.error(format!("{}: HTTP {status}: {body}", op.name)).await;
    } else if body.get("errors").is_some() || body.get("data").is_none_or(Value::is_null) {
        tally.error(format!("{}: {body}", op.name)).await;
    }
}

/// One WebSocket connection with one subscription to the live templates' events, until `stop`:
/// every event counted; an error, an end or a lost connection counted as a gateway error.
async fn subscribe(url: &str, token: &str, feed: &str, tally: &Tally, stop: &AtomicBool) {
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => return tally.error(format!("subscription: bad URL: {error}")).await,
    };
    if let Ok(protocol) = "graphql-transport-ws".parse() {
        request.headers_mut().insert("sec-websocket-protocol", protocol);
    }
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(error) => return tally.error(format!("subscription: connect: {error}")).await,
    };
    let ids: Vec<String> = LIVE_TEMPLATES.iter().map(|id| banyan_tests::template_id(*id)).collect();
    let opening = [
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Token {token}") } }),
        json!({ "id": "1", "type": "subscribe", "payload": { "query": feed, "variables": { "templateIds": ids } } }),
    ];
    for message in opening {
        if let Err(error) = socket.send(Message::text(message.to_string())).await {
            return tally.error(format!("subscription: send: {error}")).await;
        }
    }
    while !stop.load(Ordering::Relaxed) {
        let message = match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
            Err(_) => continue,
            Ok(None) => return tally.error("subscription: the connection ended".to_owned()).await,
            Ok(Some(Err(error))) => return tally.error(format!("subscription: {error}")).await,
            Ok(Some(Ok(message))) => message,
        };
        let Message::Text(text) = message else { continue };
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match value["type"].as_str() {
            Some("connection_ack" | "pong") => {}
            Some("ping") => {
                let _ = socket.send(Message::text(json!({ "type": "pong" }).to_string())).await;
            }
            Some("next") if value["payload"].get("errors").is_none() => {
                tally.subscription_events.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                tally.subscription_errors.fetch_add(1, Ordering::Relaxed);
                tally.error(format!("subscription: {value}")).await;
            }
        }
    }
    let _ = socket.send(Message::text(json!({ "id": "1", "type": "complete" }).to_string())).await;
    let _ = socket.close(None).await;
}

/// The last lines of the gateway's log.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn mean(values: &[u64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<u64>() as f64 / values.len() as f64 }
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

async fn report(
    settings: &Settings,
    tally: &Tally,
    rss: &[(Duration, u64)],
    elapsed: Duration,
    alive: bool,
    panics: usize,
) -> anyhow::Result<()> {
    let requests = tally.requests.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let events = tally.subscription_events.load(Ordering::Relaxed);
    let mut latencies = tally.latencies.lock().await.clone();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).map_or(0.0, |micros| f64::from(*micros) / 1000.0)
    };
    println!("soak: {:.0} s", elapsed.as_secs_f64());
    println!("requests:            {requests}");
    println!("gateway errors:      {errors}");
    println!("throughput:          {:.1} requests/s", requests as f64 / elapsed.as_secs_f64());
    println!("latency p50 / p99:   {:.1} ms / {:.1} ms", percentile(0.5), percentile(0.99));
    println!("subscription events: {events} on {} subscriptions", settings.subscriptions);
    for sample in tally.samples.lock().await.iter() {
        println!("  error: {}", sample.chars().take(400).collect::<String>());
    }
    let all: Vec<u64> = rss.iter().map(|(_, kib)| *kib).collect();
    let mut sorted = all.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    println!(
        "RSS samples:         {} every {} s; first {}, median {}, max {}, last {}",
        all.len(),
        settings.sample_every.as_secs(),
        mib(all.first().copied().unwrap_or(0) as f64),
        mib(median as f64),
        mib(sorted.last().copied().unwrap_or(0) as f64),
        mib(all.last().copied().unwrap_or(0) as f64),
    );
    println!(
        "RSS series (MiB):    {}",
        all.iter().map(|kib| format!("{:.0}", *kib as f64 / 1024.0)).collect::<Vec<_>>().join(" ")
    );
    let judged: Vec<u64> =
        rss.iter().filter(|(at, _)| *at >= settings.warm_up).map(|(_, kib)| *kib).collect();
    let mut failures = Vec::new();
    if judged.len() >= 6 {
        let third = judged.len() / 3;
        let (first, last) = (mean(&judged[..third]), mean(&judged[judged.len() - third..]));
        let growth = if first > 0.0 { last / first - 1.0 } else { 0.0 };
        let flat = growth <= settings.tolerance;
        println!(
            "memory:              {} (after {} s of warm-up: first third's mean {}, last third's {}, {:+.1}%, tolerance {:.0}%)",
            if flat { "flat" } else { "GROWING" },
            settings.warm_up.as_secs(),
            mib(first),
            mib(last),
            growth * 100.0,
            settings.tolerance * 100.0
        );
        if !flat {
            failures.push("memory grew");
        }
    } else {
        println!("memory:              not judged ({} samples after warm-up; 6 needed)", judged.len());
    }
    if errors > 0 {
        failures.push("gateway errors");
    }
    if settings.subscriptions > 0 && events == 0 {
        failures.push("no subscription event arrived");
    }
    if !alive {
        failures.push("the gateway died");
    }
    if panics > 0 {
        failures.push("the gateway's log has a panic");
    }
    if requests == 0 {
        failures.push("no request was answered");
    }
    if failures.is_empty() {
        println!("verdict:             PASS");
        Ok(())
    } else {
        println!("verdict:             FAIL ({})", failures.join(", "));
        bail!("the soak failed: {}", failures.join(", "))
    }
}
