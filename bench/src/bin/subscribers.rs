//! `subscribers`: what an open subscription costs the gateway (BENCHMARKS.md, "Subscriptions").
//!
//! Starts the devstack in this process and the release gateway (`banyan serve`) as a process of
//! its own, so its RSS (`/proc/<pid>/status` `VmRSS`) and CPU (`/proc/<pid>/stat` utime + stime)
//! are the gateway's alone. Then, on loopback, it opens `--subscribers` graphql-transport-ws
//! clients as one signed-in user, each subscribed to `templateEvents` for the same 3 templates
//! (the analytics dashboard's live feed), and measures the gateway after each step:
//!
//! 1. every socket upgraded (no `connection_init` yet),
//! 2. every connection acknowledged,
//! 3. every subscription running (each client has received a probe event) and idle,
//! 4. events appended at `--rate` per second for `--duration`, spread evenly over
//!    `--event-templates` templates of which the 3 followed are a part.
//!
//! It reports RSS per subscriber (per step, and in all), the event store's open `StreamEvents`
//! streams (read from the in-process devstack), gateway CPU per delivered event (minus the CPU
//! of an idle window as long as the events', which keepalive pings cost), and the delivery
//! latency from the append to the client reading the `next` message (p50, p99, max).
//!
//! `BANYAN_*` variables in the environment reach the gateway (e.g.
//! `BANYAN_WEBSOCKET__READ_BUFFER_SIZE=131072`), as does `MALLOC_ARENA_MAX`. The soft file
//! descriptor limit is raised to the hard one here, before the gateway is spawned, so both
//! processes have it: each end of 10,000 loopback connections needs its own descriptor.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use banyan_devstack::{DevStack, DevStackConfig, EventKind};
use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The dashboard's live feed, as `frontend-contract/AnalyticsDashboard` sends it.
const FEED: &str = "subscription TemplateEventsFeed($templateIds: [ID!]!) { templateEvents(templateIds: $templateIds) { sequence kind recipient occurredAt templateId } }";
/// The user every client signs in as (owner of workspaces 1 and 2).
const USER: u64 = banyan_devstack::dataset::OWNER_USER;
/// Templates each subscription follows.
const FOLLOWED: usize = 3;
/// How long one step (connecting, initialising, the first probe event) may take in all.
const STEP_BOUND: Duration = Duration::from_secs(300);
/// Pause before reading RSS after a step, so in-flight work has finished.
const SETTLE: Duration = Duration::from_secs(3);

/// `subscribers`: holds many graphql-transport-ws subscriptions open against the release gateway
/// and measures its memory, CPU and delivery latency.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// WebSocket clients to open, each with one subscription.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Events appended per second while measuring.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// How long events are appended (the idle CPU window before it is as long).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Templates the events are spread over, evenly, the 3 followed among them: every
    /// (N/3)-th event is one the subscribers follow. Default: all the user can see (400).
    #[arg(long)]
    event_templates: Option<usize>,
    /// The gateway binary. Default: `banyan` beside this binary (`target/release/banyan`).
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Connection handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.subscribers == 0 || args.rate <= 0.0 || args.connect_concurrency == 0 {
        bail!("--subscribers, --rate and --connect-concurrency must be positive");
    }
    let descriptors = raise_descriptor_limit()?;
    let needed = args.subscribers as u64 + 256;
    if descriptors < needed {
        bail!(
            "the soft file descriptor limit is {descriptors} after raising it to the hard limit; \
             {} subscribers need about {needed} (raise the hard limit: ulimit -Hn)",
            args.subscribers
        );
    }
    let devstack = DevStack::start(DevStackConfig::default()).await?;
    let result = run(&args, &devstack).await;
    devstack.shutdown().await;
    result
}

async fn run(args: &Args, devstack: &DevStack) -> anyhow::Result<()> {
    let dataset = devstack.dataset();
    let token = dataset.user(USER).context("the seeded user")?.token.clone();
    let workspaces = dataset.workspaces_of(USER);
    let mut visible: Vec<u64> =
        dataset.templates.iter().filter(|t| workspaces.contains(&t.workspace)).map(|t| t.id).collect();
    visible.sort_unstable();
    let spread = args.event_templates.unwrap_or(visible.len()).clamp(FOLLOWED, visible.len());
    let event_templates = &visible[..spread];
    let followed = &event_templates[..FOLLOWED];

    let mut gateway = Gateway::spawn(args, devstack).await?;
    let url = format!("ws://{}/graphql", gateway.addr);
    let mut out = std::io::stdout().lock();
    writeln!(out, "gateway pid {} on {}, {} subscribers", gateway.pid, gateway.addr, args.subscribers)?;
    // One request through the whole stack first, so lazily built state is not counted per client.
    warm_up(&url, &token, followed).await?;
    tokio::time::sleep(SETTLE).await;
    let rss_start = rss_kib(gateway.pid)?;

    // 1. Upgraded sockets.
    let started = Instant::now();
    let sockets = bounded(connect_all(&url, args.subscribers, args.connect_concurrency)).await?;
    let connect_time = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let rss_sockets = rss_kib(gateway.pid)?;

    // 2. Acknowledged connections.
    let sockets = bounded(init_all(sockets, &token, args.connect_concurrency)).await?;
    tokio::time::sleep(SETTLE).await;
    let rss_init = rss_kib(gateway.pid)?;

    // 3. Running subscriptions, each proven by a probe event reaching its client.
    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let probed = Arc::new(Probed::default());
    let templates: Vec<String> = followed.iter().map(|id| template_global_id(*id)).collect();
    let mut clients = Vec::with_capacity(sockets.len());
    // Subscribed in waves, each visibility check a call to the one in-process monolith.
    for (i, socket) in sockets.into_iter().enumerate() {
        if i > 0 && i % args.connect_concurrency == 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        clients.push(tokio::spawn(listen(socket, templates.clone(), probed.clone(), stopped.clone())));
    }
    let subscribed = probe_until_all(devstack, followed, &probed, args.subscribers).await;
    let subscribe_time = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let rss_subscribed = rss_kib(gateway.pid)?;
    let upstream_streams = devstack.active_event_streams();

    // Idle CPU (keepalive pings, timers) over a window as long as the events'.
    let idle_cpu = cpu_over(gateway.pid, args.duration).await?;

    // 4. Events at the rate, spread evenly so the followed ones are not bunched.
    let cpu_before = cpu_seconds(gateway.pid)?;
    let window = Instant::now();
    let appended = append_events(devstack, args, event_templates).await;
    tokio::time::sleep(SETTLE).await;
    let event_window = window.elapsed();
    let event_cpu = cpu_seconds(gateway.pid)? - cpu_before;
    let rss_events = rss_kib(gateway.pid)?;

    let _ = stop.send(true);
    let mut receipts = Vec::new();
    let mut ended_early = 0;
    for client in clients {
        match client.await {
            Ok(Ok(mut received)) => receipts.append(&mut received),
            Ok(Err(_)) | Err(_) => ended_early += 1,
        }
    }
    let followed_appends: HashMap<u64, Instant> = appended
        .iter()
        .filter(|append| followed.contains(&append.template))
        .map(|append| (append.sequence, append.at))
        .collect();
    let mut latencies: Vec<Duration> = receipts
        .iter()
        .filter_map(|(sequence, at)| Some(at.saturating_duration_since(*followed_appends.get(sequence)?)))
        .collect();
    latencies.sort_unstable();
    let delivered = latencies.len();
    let expected = followed_appends.len() * args.subscribers;
    gateway.stop();

    let n = args.subscribers as f64;
    let per = |from: u64, to: u64| (to as f64 - from as f64) / n;
    let idle_rate = idle_cpu / args.duration.as_secs_f64();
    let net_cpu = (event_cpu - idle_rate * event_window.as_secs_f64()).max(0.0);
    writeln!(
        out,
        "connect {:.1}s, subscribe {:.1}s",
        connect_time.as_secs_f64(),
        subscribe_time.as_secs_f64()
    )?;
    writeln!(out, "gateway RSS at start:         {:>9} KiB", rss_start)?;
    writeln!(
        out,
        "  + upgraded sockets:         {:>9} KiB  {:>7.2} KiB each",
        rss_sockets,
        per(rss_start, rss_sockets)
    )?;
    writeln!(
        out,
        "  + connection_init/ack:      {:>9} KiB  {:>7.2} KiB each",
        rss_init,
        per(rss_sockets, rss_init)
    )?;
    writeln!(
        out,
        "  + subscriptions (idle):     {:>9} KiB  {:>7.2} KiB each",
        rss_subscribed,
        per(rss_init, rss_subscribed)
    )?;
    writeln!(
        out,
        "  after the events:           {:>9} KiB  {:>7.2} KiB each",
        rss_events,
        per(rss_subscribed, rss_events)
    )?;
    writeln!(out, "RSS per idle subscriber:      {:>7.2} KiB", per(rss_start, rss_subscribed))?;
    writeln!(out, "RSS per subscriber after events: {:>7.2} KiB", per(rss_start, rss_events))?;
    writeln!(out, "subscribed: {subscribed} of {}; ended early: {ended_early}", args.subscribers)?;
    writeln!(out, "upstream StreamEvents streams: {upstream_streams} (the devstack's count)")?;
    writeln!(
        out,
        "events: {} appended in {:.1}s, {} on followed templates; delivered {delivered} of {expected}",
        appended.len(),
        args.duration.as_secs_f64(),
        followed_appends.len()
    )?;
    writeln!(
        out,
        "gateway CPU: idle {:.1}% of a core; events window {:.2}s CPU in {:.1}s",
        idle_rate * 100.0,
        event_cpu,
        event_window.as_secs_f64()
    )?;
    if delivered > 0 {
        writeln!(
            out,
            "CPU per delivered event: {:.1} µs (less idle), {:.1} µs (all)",
            net_cpu * 1e6 / delivered as f64,
            event_cpu * 1e6 / delivered as f64
        )?;
        writeln!(
            out,
            "delivery latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            millis(percentile(&latencies, 0.50)),
            millis(percentile(&latencies, 0.99)),
            millis(latencies.last().copied().unwrap_or_default())
        )?;
    }
    writeln!(
        out,
        "| {} | {:.1} | {:.1} | {} | {:.1} | {:.1} |",
        args.subscribers,
        per(rss_start, rss_subscribed),
        per(rss_start, rss_events),
        upstream_streams,
        if delivered > 0 { net_cpu * 1e6 / delivered as f64 } else { f64::NAN },
        millis(percentile(&latencies, 0.99)),
    )?;
    if subscribed < args.subscribers {
        bail!("only {subscribed} of {} subscriptions received the probe event", args.subscribers);
    }
    Ok(())
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit; children (the gateway) inherit it. Returns
/// the soft limit now.
fn raise_descriptor_limit() -> anyhow::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).context("raising the soft file descriptor limit")?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// The gateway as a child process.
struct Gateway {
    child: std::process::Child,
    pid: u32,
    addr: String,
    /// Deleted when the gateway stops.
    config: PathBuf,
}

impl Gateway {
    async fn spawn(args: &Args, devstack: &DevStack) -> anyhow::Result<Self> {
        let binary = match &args.gateway {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("banyan"),
        };
        if !binary.exists() {
            bail!("no gateway at {} (cargo build --release -p banyan-gateway)", binary.display());
        }
        let secrets = serde_json::to_string(devstack.service_identity_secrets())?;
        // As `banyan dev` runs it, with room for every client: the caps on connections per
        // caller and in all, and the time allowed before `connection_init` (step 1 holds
        // sockets without it).
        let toml = format!(
            r#"[server]
listen = "127.0.0.1:0"
log_format = "json"
max_connections = {max_connections}
websocket_init_timeout = "30m"

[backends.monolith]
url = "{monolith}"
# Thousands of subscriptions check visibility (and open streams) at once against one in-process
# devstack: a deadline or breaker tripping there would measure the devstack, not the gateway.
timeout = "60s"

[backends.monolith.breaker]
enabled = false

[backends.events]
url = "{events}"
timeout = "60s"

[backends.drafts]
url = "{drafts}"

[auth]
service_identity_secrets = {secrets}

[persisted]
trusted_documents = "off"

[websocket]
max_connections_per_caller = {max_connections}
# Off: a client waits between steps without reading, and would miss its pong.
keepalive_interval = "0s"
"#,
            max_connections = args.subscribers + 1024,
            monolith = devstack.monolith_url(),
            events = devstack.events_url(),
            drafts = devstack.drafts_url(),
        );
        let config =
            std::env::temp_dir().join(format!("banyan-bench-subscribers-{}.toml", std::process::id()));
        std::fs::write(&config, toml)?;
        // std's process and a reader thread rather than tokio's: tokio's `process` and
        // `io-util` features would rebuild tokio and everything on it for this one binary.
        let mut child = std::process::Command::new(&binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().context("the gateway's stderr")?;
        let (listening, addr) = std::sync::mpsc::channel();
        // Reads its log to the end, so the pipe never fills: the address it listens on, then
        // warnings and errors, echoed.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let entry = serde_json::from_str::<Value>(&line).unwrap_or_default();
                if entry["message"] == "Banyan is listening"
                    && let Some(addr) = entry["addr"].as_str()
                {
                    let _ = listening.send(addr.to_owned());
                } else if !matches!(entry["level"].as_str(), Some("INFO" | "DEBUG" | "TRACE")) {
                    let _ = writeln!(std::io::stderr().lock(), "gateway: {line}");
                }
            }
        });
        let addr = match addr.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                bail!("the gateway did not listen within 60 s");
            }
        };
        Ok(Self { child, pid, addr, config })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client as cheap as tungstenite allows: small buffers, as 10,000 of them share this process.
async fn connect(url: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    Ok(socket)
}

async fn connect_all(url: &str, n: usize, concurrency: usize) -> anyhow::Result<Vec<Socket>> {
    futures::stream::iter(0..n)
        .map(|_| connect(url))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn init_all(sockets: Vec<Socket>, token: &str, concurrency: usize) -> anyhow::Result<Vec<Socket>> {
    let payload =
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Token {token}") } });
    futures::stream::iter(sockets)
        .map(|mut socket| {
            let init = payload.to_string();
            async move {
                socket.send(Message::text(init)).await?;
                loop {
                    let message = read_json(&mut socket).await?;
                    match message["type"].as_str() {
                        Some("connection_ack") => return Ok(socket),
                        Some("ping") => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
                        _ => bail!("expected connection_ack, got {message}"),
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The next text message as JSON (answering WebSocket pings on the way).
async fn read_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await.context("the gateway closed the socket")?? {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Close(frame) => bail!("closed by the gateway: {frame:?}"),
            _ => {}
        }
    }
}

async fn bounded<T>(step: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP_BOUND, step).await.context("a step took longer than 5 minutes")?
}

async fn warm_up(url: &str, token: &str, followed: &[u64]) -> anyhow::Result<()> {
    let mut socket = bounded(connect(url)).await?;
    let mut sockets = bounded(init_all(vec![socket], token, 1)).await?;
    socket = sockets.pop().context("the warm-up socket")?;
    let templates: Vec<String> = followed.iter().map(|id| template_global_id(*id)).collect();
    socket.send(subscribe_message(&templates)).await?;
    socket.close(None).await?;
    Ok(())
}

fn subscribe_message(templates: &[String]) -> Message {
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": FEED, "operationName": "TemplateEventsFeed", "variables": { "templateIds": templates },
    } });
    Message::text(subscribe.to_string())
}

/// How many clients have received their first event, and a wake-up when that changes.
#[derive(Default)]
struct Probed {
    count: AtomicUsize,
    changed: Notify,
}

/// One client after `connection_ack`: subscribes, answers pings, and notes when each event
/// arrives, until told to stop. Returns (sequence, arrival) per event; an error if the
/// subscription or the connection ended.
async fn listen(
    mut socket: Socket,
    templates: Vec<String>,
    probed: Arc<Probed>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<(u64, Instant)>> {
    socket.send(subscribe_message(&templates)).await?;
    let mut received = Vec::new();
    loop {
        let message = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            message = socket.next() => message,
        };
        let text: Bytes = match message.context("the gateway closed the socket")?? {
            Message::Text(text) => text.into(),
            Message::Close(frame) => bail!("closed by the gateway: {frame:?}"),
            _ => continue,
        };
        let arrived = Instant::now();
        let message: Value = serde_json::from_slice(&text)?;
        match message["type"].as_str() {
            Some("next") => {
                let sequence = message["payload"]["data"]["templateEvents"]["sequence"]
                    .as_str()
                    .and_then(|sequence| sequence.parse().ok())
                    .with_context(|| format!("an event without a sequence: {message}"))?;
                if received.is_empty() {
                    probed.count.fetch_add(1, Ordering::AcqRel);
                    probed.changed.notify_one();
                }
                received.push((sequence, arrived));
            }
            Some("ping") => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
            _ => bail!("the subscription ended: {message}"),
        }
    }
    let _ = socket.close(None).await;
    Ok(received)
}

/// Appends a probe event to each followed template every half second until every client has
/// received one (or the step's bound passes). Returns how many have.
async fn probe_until_all(devstack: &DevStack, followed: &[u64], probed: &Probed, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + STEP_BOUND;
    let mut probe = tokio::time::interval(Duration::from_millis(500));
    loop {
        let count = probed.count.load(Ordering::Acquire);
        if count >= n || tokio::time::Instant::now() >= deadline {
            return count;
        }
        tokio::select! {
            _ = probe.tick() => {
                devstack.append_events(followed.iter().map(|id| (*id, EventKind::Delivered)).collect()).await;
            }
            () = probed.changed.notified() => {}
        }
    }
}

/// One appended event.
struct Appended {
    sequence: u64,
    template: u64,
    /// Taken before the append, so no client can read the event earlier.
    at: Instant,
}

/// Appends one event per tick at `args.rate` for `args.duration`; every (templates/3)-th event
/// goes to a followed template (`templates` starts with them), the others round the rest.
async fn append_events(devstack: &DevStack, args: &Args, templates: &[u64]) -> Vec<Appended> {
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let total = (args.duration.as_secs_f64() * args.rate).round() as usize;
    let stride = (templates.len() / FOLLOWED).max(1);
    let others = &templates[FOLLOWED..];
    let mut ticks = tokio::time::interval(period);
    let mut appended = Vec::with_capacity(total);
    for i in 0..total {
        ticks.tick().await;
        let template = if i % stride == 0 || others.is_empty() {
            templates[(i / stride) % FOLLOWED]
        } else {
            others[i % others.len()]
        };
        let at = Instant::now();
        let sequences = devstack.append_events(vec![(template, EventKind::Opened)]).await;
        appended.extend(sequences.into_iter().map(|sequence| Appended { sequence, template, at }));
    }
    appended
}

/// A template's global id, as the schema spells it (`Template:<id>` in base64).
fn template_global_id(id: u64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("Template:{id}"))
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// CPU seconds `pid` has used (user + system).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_seconds_of(&stat, rustix::param::clock_ticks_per_second())
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds; the command name
/// (field 2) is parenthesised and may hold spaces, so fields are counted after its `)`.
fn cpu_seconds_of(stat: &str, ticks_per_second: u64) -> anyhow::Result<f64> {
    let after_name = stat.rsplit_once(')').context("a /proc/<pid>/stat line")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields.get(index).context("a short /proc/<pid>/stat line")?.parse()?)
    };
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Ok((ticks(11)? + ticks(12)?) as f64 / ticks_per_second as f64)
}

async fn cpu_over(pid: u32, window: Duration) -> anyhow::Result<f64> {
    let before = cpu_seconds(pid)?;
    tokio::time::sleep(window).await;
    Ok(cpu_seconds(pid)? - before)
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_counted_after_the_command_name() {
        let stat = "42 (banyan (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 1 1";
        assert_eq!(cpu_seconds_of(stat, 100).ok(), Some(3.0));
    }

    #[test]
    fn percentiles_take_the_rank_at_or_above() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&sorted[..1], 0.99), Duration::from_millis(1));
    }
}
