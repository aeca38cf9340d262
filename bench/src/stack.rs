//! The processes of a run: the devstack and the floor (this binary, started again with a
//! subcommand), and the gateway (the `banyan` binary, `banyan serve`). Each is its own process,
//! so its CPU time and memory are its own; each is killed when its handle drops.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the devstack child prints once it serves: where everything is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevstackInfo {
    /// The monolith's base URL.
    pub monolith_url: String,
    /// The `EventService`'s URL.
    pub events_url: String,
    /// The `DraftService`'s URL.
    pub drafts_url: String,
    /// The secrets the services verify the gateway's identity with.
    pub secrets: Vec<String>,
    /// The token of [`crate::operations::BENCH_USER`].
    pub token: String,
}

/// What the floor child prints once it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorInfo {
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pid: u32,
}

impl Process {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills it and waits for it to end.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts this binary again with `args` and reads the JSON line it prints when it serves. Its
/// stdin stays open: the child ends when it closes (when this process ends, however it ends).
pub async fn spawn_self<T: serde::de::DeserializeOwned + Send + 'static>(
    args: &[&str],
) -> anyhow::Result<(Process, T)> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut child = Command::new(&exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))?;
    let pid = child.id();
    let stdout = child.stdout.take().context("the child's stdout")?;
    let process = Process { child, pid };
    let what = args.join(" ");
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .with_context(|| format!("{what} did not start within 60 s"))?
        .context("reading the child's first line")?
        .context("reading the child's first line")?;
    let info =
        serde_json::from_str(line.trim()).with_context(|| format!("the child {what} printed {line:?}"))?;
    Ok((process, info))
}

/// What the child side prints: one JSON line on stdout, then it serves until stdin closes.
pub async fn announce_and_wait<T: Serialize>(info: &T) -> anyhow::Result<()> {
    #[allow(clippy::print_stdout)] // the parent reads this line
    {
        println!("{}", serde_json::to_string(info)?);
    }
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while stdin.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    })
    .await?;
    Ok(())
}

/// A free port on 127.0.0.1 (bound, then released for the gateway to take).
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding an ephemeral port")?;
    Ok(listener.local_addr()?)
}

/// How a gateway is started.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The `banyan` binary.
    pub binary: PathBuf,
    /// A routing table (TOML text) to serve with; `None`: every field on its default.
    pub routing_table: Option<String>,
    /// Extra `BANYAN_*` variables, e.g. `BANYAN_SERVER__TRACING=false`.
    pub env: Vec<(String, String)>,
    /// Where its configuration and log go.
    pub scratch: PathBuf,
}

/// A running `banyan serve`.
#[derive(Debug)]
pub struct Gateway {
    /// The process.
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
}

/// Starts `banyan serve` in front of the devstack and waits for `/healthz`.
pub async fn start_gateway(
    options: &GatewayOptions,
    devstack: &DevstackInfo,
    name: &str,
) -> anyhow::Result<Gateway> {
    std::fs::create_dir_all(&options.scratch)?;
    let addr = free_port()?;
    let mut config = format!(
        "[server]\nlisten = \"{addr}\"\n\n\
         [backends.monolith]\nurl = \"{}\"\n\n[backends.events]\nurl = \"{}\"\n\n[backends.drafts]\nurl = \"{}\"\n\n\
         [auth]\nservice_identity_secrets = {}\n\n[persisted]\ntrusted_documents = \"off\"\n",
        devstack.monolith_url,
        devstack.events_url,
        devstack.drafts_url,
        json!(devstack.secrets),
    );
    if let Some(table) = &options.routing_table {
        let path = options.scratch.join(format!("{name}-routing.toml"));
        std::fs::write(&path, table)?;
        config.push_str(&format!("\n[migration]\nrouting_table = {}\n", json!(path.display().to_string())));
    }
    let config_path = options.scratch.join(format!("{name}.toml"));
    std::fs::write(&config_path, config)?;
    let log = options.scratch.join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log)?;
    let mut command = Command::new(&options.binary);
    command
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .env("BANYAN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    for (key, value) in &options.env {
        command.env(key, value);
    }
    let child = command.spawn().with_context(|| format!("starting {}", options.binary.display()))?;
    let pid = child.id();
    let process = Process { child, pid };
    wait_healthy(addr, &log).await?;
    Ok(Gateway { process, addr, log })
}

async fn wait_healthy(addr: SocketAddr, log: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("http://{addr}/healthz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    bail!("the gateway did not answer /healthz on {addr} within 30 s; its log:\n{tail}")
}

/// The devstack's admin surface, over HTTP.
#[derive(Debug, Clone)]
pub struct DevstackControl {
    http: reqwest::Client,
    monolith_url: String,
}

impl DevstackControl {
    /// Control of the devstack at `info`.
    pub fn new(info: &DevstackInfo) -> Self {
        Self { http: reqwest::Client::new(), monolith_url: info.monolith_url.clone() }
    }

    /// Sets every backend's latency (`PUT /__devstack/faults/{backend}`).
    pub async fn set_latency(&self, monolith: Duration, services: Duration) -> anyhow::Result<()> {
        for (backend, latency) in [("monolith", monolith), ("events", services), ("drafts", services)] {
            let body = json!({ "latency": humantime::format_duration(latency).to_string() });
            let response = self
                .http
                .put(format!("{}/__devstack/faults/{backend}", self.monolith_url))
                .json(&body)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("setting the {backend} latency: {}", response.text().await.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Forgets every call count.
    pub async fn reset_calls(&self) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/__devstack/calls", self.monolith_url))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The call counts since the last reset.
    pub async fn calls(&self) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        Ok(self.http.get(format!("{}/__devstack/calls", self.monolith_url)).send().await?.json().await?)
    }
}
