//! `load`: the load harness (see `BENCHMARKS.md`). `load --smoke` is CI's check that the
//! harness works and that every operation costs the backend calls the table allows.
#![allow(clippy::print_stdout)] // a report on stdout is this binary's output

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use banyan_bench::driver::{self, Outcome, Pace, Target};
use banyan_bench::floor::{self, FloorConfig};

/// The gateway's allocator, so that the floor (`serve-floor`, this binary) is measured on the
/// same one (BENCHMARKS.md, "Allocator"); the devstack and the driver run on it too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use banyan_bench::operations::{self, BENCH_USER, OPERATIONS, Operation, TEMPLATE_LIST};
use banyan_bench::procstat;
use banyan_bench::stack::{
    self, DevstackControl, DevstackInfo, FloorInfo, GatewayOptions, Process, announce_and_wait,
};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Banyan's load harness: the devstack, `banyan serve` and the floor, each its own process, under
/// a closed-loop HTTP/1.1 load.
#[derive(Parser)]
#[command(name = "load")]
struct Cli {
    #[command(subcommand)]
    child: Option<Child>,
    #[command(flatten)]
    run: RunArgs,
}

/// The processes this binary starts of itself.
#[derive(Subcommand)]
enum Child {
    /// Serve the devstack; print where, as one JSON line; stop when stdin closes.
    #[command(hide = true)]
    ServeDevstack,
    /// Serve the floor; print where, as one JSON line; stop when stdin closes.
    #[command(hide = true)]
    ServeFloor {
        #[arg(long)]
        monolith: String,
        #[arg(long)]
        events: String,
        #[arg(long = "secret")]
        secrets: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Operations to run (comma-separated): TemplateList, TemplateEditor, AnalyticsDashboard, Me, Wide, Typename.
    #[arg(long, value_delimiter = ',')]
    ops: Vec<String>,
    /// Concurrent connections, one run each.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    concurrency: Vec<usize>,
    /// Send this many requests per second (an open loop, over `--concurrency` connections at
    /// most), latency counted from when each was due; default: a closed loop, each connection
    /// sending again as soon as it has its answer.
    #[arg(long)]
    rate: Option<f64>,
    /// Backend latencies: `realistic` (monolith 2 ms, services 0.5 ms) and/or `zero`.
    #[arg(long, value_delimiter = ',', default_value = "realistic,zero")]
    latency: Vec<Latency>,
    /// What serves the requests, in order; repeat one for A/B/A (`banyan,floor,banyan`).
    #[arg(long, value_delimiter = ',', default_value = "banyan,floor")]
    variants: Vec<Variant>,
    /// Measured time of each run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured load before each run (connections, caches, JIT-free warm-up of the allocator).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The `banyan` binary; default: the one next to this binary (same profile). Repeat it to
    /// compare binaries: each variant's runs go to every binary in turn, against the same
    /// devstack, and a summary pairs them round by round.
    #[arg(long)]
    gateway_bin: Vec<PathBuf>,
    /// How many times to run everything (with several binaries, the rounds of an A/B).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// `KEY=VALUE` environment for the gateway (configuration as `BANYAN_<SECTION>__<KEY>`).
    #[arg(long = "gateway-env")]
    gateway_env: Vec<String>,
    /// Every result as JSON, to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// CI's smoke run: every operation for about a second at zero latency and 4 connections,
    /// Banyan and the floor; fails on any failed request and on calls above the table.
    #[arg(long)]
    smoke: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Latency {
    /// Monolith 2 ms, services 0.5 ms (Django answers in milliseconds).
    Realistic,
    /// No added latency: pure overhead.
    Zero,
}

impl Latency {
    fn backends(self) -> (Duration, Duration) {
        match self {
            Latency::Realistic => (Duration::from_millis(2), Duration::from_micros(500)),
            Latency::Zero => (Duration::ZERO, Duration::ZERO),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Variant {
    /// The gateway, every migrated field on its declared default.
    Banyan,
    /// The gateway with every migrated read on `legacy`.
    Legacy,
    /// The gateway with every migrated read in shadow, primary `legacy`, 100% sampled.
    Shadow,
    /// The hand-written floor (TemplateList only).
    Floor,
}

/// The routing table of a variant.
fn routing_table(variant: Variant) -> Option<String> {
    const READS: [&str; 3] = ["Template.stats", "Template.draft", "Template.recentEvents"];
    match variant {
        Variant::Banyan | Variant::Floor => None,
        Variant::Legacy => {
            Some(READS.iter().map(|f| format!("[fields.\"{f}\"]\nmode = \"legacy\"\n\n")).collect())
        }
        // No shadow is shed: `max_in_flight` counts each item's second call, and 256 connections
        // of 50-template pages hold up to 12,800 of them at once.
        Variant::Shadow => Some(
            READS
                .iter()
                .map(|f| {
                    format!(
                        "[fields.\"{f}\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsample_rate = 1.0\nmax_in_flight = 100000\n\n"
                    )
                })
                .collect(),
        ),
    }
}

/// One run's figures.
#[derive(Debug, Serialize)]
struct Row {
    /// Which `--gateway-bin` served (0: the first, and the floor's).
    binary: usize,
    /// Which of the `--rounds`.
    round: usize,
    latency: Latency,
    variant: Variant,
    operation: &'static str,
    concurrency: usize,
    /// The open loop's rate, if the run had one.
    rate: Option<f64>,
    requests: u64,
    failures: u64,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    backend_calls_per_request: f64,
    calls: BTreeMap<String, u64>,
    cpu_ms_per_request: f64,
    peak_rss_mib: f64,
    rss_mib: f64,
    devstack_cpu_ms_per_request: f64,
    /// The gateway's CPU over the devstack's in the same run: the devstack's work per request is
    /// fixed by the operation and variant, so this ratio carries less of the machine's drift
    /// than either figure alone (compare it between runs of the same variant only). None when the
    /// devstack did no work (an operation that reaches no backend).
    cpu_per_devstack_cpu: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BANYAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.child {
            Some(Child::ServeDevstack) => serve_devstack().await.map(|()| true),
            Some(Child::ServeFloor { monolith, events, secrets }) => serve_floor(FloorConfig {
                monolith_url: monolith,
                events_url: events,
                service_identity_secrets: secrets,
            })
            .await
            .map(|()| true),
            None => harness(cli.run).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_devstack() -> anyhow::Result<()> {
    let stack = banyan_devstack::DevStack::start(banyan_devstack::DevStackConfig::default()).await?;
    let token = stack
        .dataset()
        .users
        .iter()
        .find(|u| u.id == BENCH_USER)
        .map(|u| u.token.clone())
        .context("the dataset has no bench user")?;
    let info = DevstackInfo {
        monolith_url: stack.monolith_url(),
        events_url: stack.events_url(),
        drafts_url: stack.drafts_url(),
        secrets: stack.service_identity_secrets().to_vec(),
        token,
    };
    announce_and_wait(&info).await?;
    stack.shutdown().await;
    Ok(())
}

async fn serve_floor(config: FloorConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let info = FloorInfo { addr: listener.local_addr()? };
    tokio::select! {
        served = floor::serve(listener, &config) => served?,
        waited = announce_and_wait(&info) => waited?,
    }
    Ok(())
}

/// What serves one variant's runs.
struct Served {
    process: Process,
    addr: std::net::SocketAddr,
}

async fn harness(mut args: RunArgs) -> anyhow::Result<bool> {
    if args.smoke {
        args.concurrency = vec![4];
        args.latency = vec![Latency::Zero];
        args.variants = vec![Variant::Banyan, Variant::Floor];
        args.duration = Duration::from_secs(1);
        args.warmup = Duration::from_millis(300);
    }
    let ops: Vec<&'static Operation> = if args.ops.is_empty() {
        OPERATIONS.iter().collect()
    } else {
        args.ops
            .iter()
            .map(|name| operations::by_name(name).with_context(|| format!("no operation called {name}")))
            .collect::<anyhow::Result<_>>()?
    };
    let gateway_bins = match args.gateway_bin.clone() {
        bins if bins.is_empty() => vec![std::env::current_exe()?.with_file_name("banyan")],
        bins => bins,
    };
    for gateway_bin in &gateway_bins {
        if !gateway_bin.exists() {
            bail!(
                "no gateway binary at {}: build it first (`cargo build --release -p banyan-gateway --bin banyan`, or without --release for a debug `load`)",
                gateway_bin.display()
            );
        }
    }
    let gateway_env = args
        .gateway_env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .context("--gateway-env takes KEY=VALUE")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scratch = std::env::temp_dir().join(format!("banyan-bench-{}", std::process::id()));
    let pace = match args.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => {
            println!("open loop: {rate} requests per second, over at most `conc` connections");
            Pace::Rate(rate)
        }
        Some(rate) => bail!("--rate must be a positive number of requests per second, not {rate}"),
        None => Pace::ClosedLoop,
    };

    let (devstack_process, devstack) = stack::spawn_self::<DevstackInfo>(&["serve-devstack"]).await?;
    let control = DevstackControl::new(&devstack);
    let authorization = format!("Token {}", devstack.token);
    println!(
        "{:<9} {:<9} {:<18} {:>5} {:>9} {:>8} {:>8} {:>9} {:>10} {:>9} {:>10} {:>7} {:>6}",
        "latency",
        "variant",
        "operation",
        "conc",
        "req/s",
        "p50 ms",
        "p99 ms",
        "calls/req",
        "cpu ms/req",
        "peak MiB",
        "devstk ms",
        "cpu/dev",
        "fails"
    );
    let mut rows = Vec::new();
    let result = async {
        for round in 0..args.rounds.max(1) {
            for &latency in &args.latency {
                let (monolith, services) = latency.backends();
                control.set_latency(monolith, services).await?;
                for &variant in &args.variants {
                    // The floor is the same whichever gateway binary is compared.
                    let binaries =
                        if variant == Variant::Floor { &gateway_bins[..1] } else { &gateway_bins[..] };
                    for (binary, gateway_bin) in binaries.iter().enumerate() {
                        let served =
                            start_variant(variant, &devstack, gateway_bin, &gateway_env, &scratch).await?;
                        let runs = ops
                            .iter()
                            .filter(|op| variant != Variant::Floor || op.name == TEMPLATE_LIST.name)
                            .flat_map(|&op| {
                                args.concurrency.iter().map(move |&concurrency| Run {
                                    binary,
                                    round,
                                    latency,
                                    variant,
                                    op,
                                    concurrency,
                                    pace,
                                })
                            });
                        for run in runs {
                            let target = Target {
                                addr: served.addr,
                                path: "/graphql".to_owned(),
                                authorization: authorization.clone(),
                                body: serde_json::to_vec(&run.op.body())?.into(),
                            };
                            let row = measure(
                                &target,
                                &control,
                                &served,
                                devstack_process.pid(),
                                run,
                                args.warmup,
                                args.duration,
                            )
                            .await?;
                            print_row(&row, gateway_bins.len());
                            rows.push(row);
                        }
                        served.process.stop();
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    devstack_process.stop();
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    print_ratios(&rows, gateway_bins.len());
    print_binaries(&rows, gateway_bins.len());
    print_shadow(&rows, gateway_bins.len());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(check(&rows, args.smoke))
}

async fn start_variant(
    variant: Variant,
    devstack: &DevstackInfo,
    gateway_bin: &std::path::Path,
    gateway_env: &[(String, String)],
    scratch: &std::path::Path,
) -> anyhow::Result<Served> {
    if variant == Variant::Floor {
        let mut args =
            vec!["serve-floor", "--monolith", &devstack.monolith_url, "--events", &devstack.events_url];
        for secret in &devstack.secrets {
            args.extend(["--secret", secret.as_str()]);
        }
        let (process, info) = stack::spawn_self::<FloorInfo>(&args).await?;
        return Ok(Served { process, addr: info.addr });
    }
    let options = GatewayOptions {
        binary: gateway_bin.to_path_buf(),
        routing_table: routing_table(variant),
        env: gateway_env.to_vec(),
        scratch: scratch.to_path_buf(),
    };
    let name = format!("{variant:?}").to_lowercase();
    let gateway = stack::start_gateway(&options, devstack, &name).await?;
    Ok(Served { process: gateway.process, addr: gateway.addr })
}

/// What one measured run is: which binary, round, latency, variant, operation and concurrency.
#[derive(Clone, Copy)]
struct Run {
    binary: usize,
    round: usize,
    latency: Latency,
    variant: Variant,
    op: &'static Operation,
    concurrency: usize,
    pace: Pace,
}

async fn measure(
    target: &Target,
    control: &DevstackControl,
    served: &Served,
    devstack_pid: u32,
    run: Run,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Row> {
    let Run { binary, round, latency, variant, op, concurrency, pace } = run;
    // Warm up, then start counting with nothing in flight, so every counted call belongs to a
    // counted request.
    driver::run(target.clone(), concurrency, warmup, pace).await?;
    control.reset_calls().await?;
    let pid = served.process.pid();
    procstat::reset_peak(pid);
    let cpu_before = procstat::cpu_time(pid)?;
    let devstack_before = procstat::cpu_time(devstack_pid)?;
    let outcome: Outcome = driver::run(target.clone(), concurrency, duration, pace).await?;
    let cpu = procstat::cpu_time(pid)?.saturating_sub(cpu_before);
    let devstack_cpu = procstat::cpu_time(devstack_pid)?.saturating_sub(devstack_before);
    let memory = procstat::memory(pid)?;
    let calls = control.calls().await?;
    let requests = outcome.requests().max(1);
    if let Some(failure) = &outcome.first_failure {
        eprintln!("{} via {variant:?}: first failure: {failure:.400}", op.name);
    }
    Ok(Row {
        binary,
        round,
        latency,
        variant,
        operation: op.name,
        concurrency,
        rate: match pace {
            Pace::Rate(rate) => Some(rate),
            Pace::ClosedLoop => None,
        },
        requests: outcome.requests(),
        failures: outcome.failures,
        requests_per_second: outcome.throughput(),
        p50_ms: ms(outcome.quantile(0.5)),
        p99_ms: ms(outcome.quantile(0.99)),
        backend_calls_per_request: calls.values().sum::<u64>() as f64 / requests as f64,
        calls,
        cpu_ms_per_request: ms(cpu) / requests as f64,
        peak_rss_mib: mib(memory.peak),
        rss_mib: mib(memory.rss),
        devstack_cpu_ms_per_request: ms(devstack_cpu) / requests as f64,
        cpu_per_devstack_cpu: (!devstack_cpu.is_zero())
            .then(|| cpu.as_secs_f64() / devstack_cpu.as_secs_f64()),
    })
}

fn print_row(row: &Row, binaries: usize) {
    let variant = format!("{:?}", row.variant).to_lowercase();
    let variant = if binaries > 1 && row.variant != Variant::Floor {
        format!("{variant}#{}", row.binary + 1)
    } else {
        variant
    };
    println!(
        "{:<9} {:<9} {:<18} {:>5} {:>9.0} {:>8.2} {:>8.2} {:>9.2} {:>10.3} {:>9.1} {:>10.3} {:>7} {:>6}",
        format!("{:?}", row.latency).to_lowercase(),
        variant,
        row.operation,
        row.concurrency,
        row.requests_per_second,
        row.p50_ms,
        row.p99_ms,
        row.backend_calls_per_request,
        row.cpu_ms_per_request,
        row.peak_rss_mib,
        row.devstack_cpu_ms_per_request,
        row.cpu_per_devstack_cpu.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}")),
        row.failures,
    );
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// Banyan (every gateway variant's runs of one binary, averaged) over the floor, per latency and
/// concurrency; one table per `--gateway-bin`.
fn print_ratios(rows: &[Row], binaries: usize) {
    for binary in 0..binaries {
        let name = if binaries > 1 { format!("Banyan#{}", binary + 1) } else { "Banyan".to_owned() };
        print_ratios_of(rows, binary, &name);
    }
}

/// One line of the Banyan/floor table: the means' ratios over every run, and with several
/// rounds each round's own ratio (its Banyan runs over its floor run, moments apart).
struct FloorRatios {
    throughput: f64,
    p50: f64,
    cpu: f64,
    /// `cpu/dev` over `cpu/dev`: it carries less of the machine's drift between runs than CPU
    /// per request does, but it is not neutral between the two sides: the devstack's own CPU
    /// per request depends on how its client spreads the calls (BENCHMARKS.md, "Measuring the
    /// floor's ratio").
    cpu_dev: Option<f64>,
    /// Per round: CPU per request, and `cpu/dev`.
    rounds: Vec<(f64, Option<f64>)>,
}

impl FloorRatios {
    fn of(banyan: &[&Row], floor: &[&Row]) -> Option<Self> {
        let ratio =
            |f: fn(&Row) -> f64| Some(mean(banyan.iter().map(|r| f(r)))? / mean(floor.iter().map(|r| f(r)))?);
        let cpu_dev = |banyan: &[&Row], floor: &[&Row]| {
            let devstack = |rows: &[&Row]| -> Option<f64> {
                let ratios: Vec<f64> = rows.iter().map(|r| r.cpu_per_devstack_cpu).collect::<Option<_>>()?;
                mean(ratios.into_iter())
            };
            Some(devstack(banyan)? / devstack(floor)?)
        };
        let rounds = distinct(floor.iter().map(|r| r.round))
            .into_iter()
            .filter_map(|round| {
                let banyan: Vec<&Row> = banyan.iter().copied().filter(|r| r.round == round).collect();
                let floor: Vec<&Row> = floor.iter().copied().filter(|r| r.round == round).collect();
                let cpu = mean(banyan.iter().map(|r| r.cpu_ms_per_request))?
                    / mean(floor.iter().map(|r| r.cpu_ms_per_request))?;
                Some((cpu, cpu_dev(&banyan, &floor)))
            })
            .collect();
        Some(Self {
            throughput: ratio(|r| r.requests_per_second)?,
            p50: ratio(|r| r.p50_ms)?,
            cpu: ratio(|r| r.cpu_ms_per_request)?,
            cpu_dev: cpu_dev(banyan, floor),
            rounds,
        })
    }
}

/// `values`' median and range, as `1.52x (1.41–1.60x)`.
fn spread(values: Vec<f64>) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    median(values).map_or_else(|| "-".to_owned(), |mid| format!("{mid:.2}x ({low:.2}–{high:.2}x)"))
}

fn print_ratios_of(rows: &[Row], binary: usize, name: &str) {
    let mut printed_header = false;
    for latency in [Latency::Realistic, Latency::Zero] {
        let concurrencies: std::collections::BTreeSet<usize> = rows.iter().map(|r| r.concurrency).collect();
        for concurrency in concurrencies {
            let of = |floor: bool| -> Vec<&Row> {
                rows.iter()
                    .filter(move |r| {
                        r.latency == latency
                            && r.concurrency == concurrency
                            && r.operation == TEMPLATE_LIST.name
                            && (r.variant == Variant::Floor) == floor
                            && (floor || r.binary == binary)
                            && matches!(r.variant, Variant::Banyan | Variant::Floor)
                    })
                    .collect()
            };
            let Some(ratios) = FloorRatios::of(&of(false), &of(true)) else {
                continue;
            };
            let several_rounds = ratios.rounds.len() > 1;
            if !printed_header {
                println!(
                    "\n{name} / floor, TemplateList (means over the runs; cpu/dev: each side's gateway CPU over its devstack's):"
                );
                print!(
                    "{:<9} {:>5} {:>11} {:>9} {:>12} {:>8}",
                    "latency", "conc", "throughput", "p50", "CPU/request", "cpu/dev"
                );
                if several_rounds {
                    print!("   {:<20} cpu/dev by round (median, range)", "CPU/request by round");
                }
                println!();
                printed_header = true;
            }
            print!(
                "{:<9} {:>5} {:>10.2}x {:>8.2}x {:>11.2}x {:>8}",
                format!("{latency:?}").to_lowercase(),
                concurrency,
                ratios.throughput,
                ratios.p50,
                ratios.cpu,
                ratios.cpu_dev.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x")),
            );
            if several_rounds {
                let cpu = spread(ratios.rounds.iter().map(|(cpu, _)| *cpu).collect());
                let cpu_dev = spread(ratios.rounds.iter().filter_map(|(_, cpu_dev)| *cpu_dev).collect());
                print!("   {cpu:<20} {cpu_dev}");
            }
            println!();
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// `row`'s gateway CPU over `first`'s: by `cpu/dev` when the devstack worked in both runs (its
/// work is fixed per request, so the ratio carries less of the machine's drift), by CPU per request
/// when it did not (an operation that reaches no backend).
fn paired_cpu_ratio(first: &Row, row: &Row) -> f64 {
    match (first.cpu_per_devstack_cpu, row.cpu_per_devstack_cpu) {
        (Some(first), Some(row)) => row / first,
        _ => row.cpu_ms_per_request / first.cpu_ms_per_request,
    }
}

/// With several `--gateway-bin`s: per run shape, each binary's medians over the rounds, and each
/// binary's `cpu/dev` against the first's, paired round by round (the same devstack, moments
/// apart, so the machine's drift mostly cancels).
fn print_binaries(rows: &[Row], binaries: usize) {
    if binaries < 2 {
        return;
    }
    let rounds = rows.iter().map(|r| r.round).max().map_or(0, |r| r + 1);
    println!();
    println!(
        "binaries compared ({rounds} rounds; medians, and cpu/dev of each binary over #1's in the same round)"
    );
    let shapes = distinct(
        rows.iter()
            .filter(|r| r.variant != Variant::Floor)
            .map(|r| (r.latency, r.variant, r.operation, r.concurrency)),
    );
    for (latency, variant, operation, concurrency) in shapes {
        let of = |binary: usize| {
            rows.iter().filter(move |r| {
                (r.latency, r.variant, r.operation, r.concurrency, r.binary)
                    == (latency, variant, operation, concurrency, binary)
            })
        };
        let first: Vec<&Row> = of(0).collect();
        for binary in 0..binaries {
            if of(binary).next().is_none() {
                continue;
            }
            let cpu_dev = median(of(binary).filter_map(|r| r.cpu_per_devstack_cpu).collect())
                .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}"));
            let cpu = median(of(binary).map(|r| r.cpu_ms_per_request).collect()).unwrap_or(0.0);
            let p50 = median(of(binary).map(|r| r.p50_ms).collect()).unwrap_or(0.0);
            let rps = median(of(binary).map(|r| r.requests_per_second).collect()).unwrap_or(0.0);
            let paired: Vec<f64> = paired_within_rounds(&first, &of(binary).collect::<Vec<_>>())
                .into_iter()
                .map(|(first, row)| paired_cpu_ratio(first, row))
                .collect();
            let (lower, rounds) = (paired.iter().filter(|ratio| **ratio < 1.0).count(), paired.len());
            let versus = match (binary, median(paired)) {
                (0, _) | (_, None) => String::new(),
                (_, Some(ratio)) => {
                    format!("  vs #1: x{ratio:.3} (median of {rounds}), lower in {lower} of {rounds}")
                }
            };
            println!(
                "{:<9} {:<9} {:<18} {:>5}  #{}: cpu/dev {cpu_dev}, cpu {cpu:.3} ms/req, p50 {p50:.2} ms, {rps:.0} req/s{versus}",
                format!("{latency:?}").to_lowercase(),
                format!("{variant:?}").to_lowercase(),
                operation,
                concurrency,
                binary + 1,
            );
        }
    }
}

/// Shadow's p50 over legacy-only's for one run shape, paired within rounds.
#[derive(Debug, PartialEq)]
struct ShadowPairs {
    latency: Latency,
    operation: &'static str,
    concurrency: usize,
    binary: usize,
    /// One ratio per pair, in round order.
    ratios: Vec<f64>,
}

/// Distinct items, in the order they first come.
fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// `b`'s runs paired with `a`'s runs moments apart: within each round, the first with the
/// first, the second with the second, and so on (so the machine's drift mostly cancels).
fn paired_within_rounds<'r>(a: &[&'r Row], b: &[&'r Row]) -> Vec<(&'r Row, &'r Row)> {
    let mut pairs = Vec::new();
    for round in distinct(b.iter().map(|r| r.round)) {
        let a_runs = a.iter().filter(|r| r.round == round);
        let b_runs = b.iter().filter(|r| r.round == round);
        pairs.extend(a_runs.zip(b_runs).map(|(a, b)| (*a, *b)));
    }
    pairs
}

/// The shadow target's figure (the primary's p50 in shadow against legacy-only), per run shape:
/// each round's `shadow` runs paired with its `legacy` runs ([`paired_within_rounds`]).
fn shadow_pairs(rows: &[Row]) -> Vec<ShadowPairs> {
    let shapes = distinct(
        rows.iter()
            .filter(|r| r.variant == Variant::Shadow)
            .map(|r| (r.latency, r.operation, r.concurrency, r.binary)),
    );
    let mut out = Vec::new();
    for (latency, operation, concurrency, binary) in shapes {
        let of = |variant: Variant| -> Vec<&Row> {
            rows.iter()
                .filter(|r| {
                    (r.latency, r.operation, r.concurrency, r.binary, r.variant)
                        == (latency, operation, concurrency, binary, variant)
                })
                .collect()
        };
        let ratios: Vec<f64> = paired_within_rounds(&of(Variant::Legacy), &of(Variant::Shadow))
            .into_iter()
            .map(|(legacy, shadow)| shadow.p50_ms / legacy.p50_ms)
            .collect();
        if !ratios.is_empty() {
            out.push(ShadowPairs { latency, operation, concurrency, binary, ratios });
        }
    }
    out
}

fn print_shadow(rows: &[Row], binaries: usize) {
    let pairs = shadow_pairs(rows);
    if pairs.is_empty() {
        return;
    }
    println!();
    println!("shadow's p50 over legacy-only's, paired within each round (the target: at most x1.05)");
    for p in pairs {
        let n = p.ratios.len();
        let within = p.ratios.iter().filter(|r| **r <= 1.05).count();
        let (low, high) = p.ratios.iter().fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        let Some(middle) = median(p.ratios) else { continue };
        let binary = if binaries > 1 { format!(" #{}", p.binary + 1) } else { String::new() };
        println!(
            "{:<9} {:<18} {:>5}{binary}  x{middle:.3} (median of {n}, {low:.2}-{high:.2}), within x1.05 in {within} of {n}",
            format!("{:?}", p.latency).to_lowercase(),
            p.operation,
            p.concurrency,
        );
    }
}

/// Failed requests fail any run; in smoke mode, so do calls above the table.
fn check(rows: &[Row], smoke: bool) -> bool {
    let mut ok = true;
    for row in rows {
        if row.failures > 0 {
            println!("FAIL {} via {:?}: {} failed requests", row.operation, row.variant, row.failures);
            ok = false;
        }
        if row.requests == 0 {
            println!("FAIL {} via {:?}: no request answered", row.operation, row.variant);
            ok = false;
        }
    }
    if !smoke {
        return ok;
    }
    for row in rows.iter().filter(|r| r.variant == Variant::Banyan) {
        let Some(op) = operations::by_name(row.operation) else { continue };
        let expected: BTreeMap<&str, u64> = op.expected_calls.iter().copied().collect();
        let keys: std::collections::BTreeSet<&str> =
            expected.keys().copied().chain(row.calls.keys().map(String::as_str)).collect();
        for key in keys {
            let allowed = expected.get(key).copied().unwrap_or(0) * row.requests;
            let made = row.calls.get(key).copied().unwrap_or(0);
            if made > allowed {
                println!(
                    "FAIL {}: {key}: {:.2} calls per request, the table allows {}",
                    row.operation,
                    made as f64 / row.requests.max(1) as f64,
                    expected.get(key).copied().unwrap_or(0)
                );
                ok = false;
            } else if made < allowed {
                println!(
                    "note {}: {key}: {:.2} calls per request, below the table's {}: lower the table (bench/src/operations.rs)",
                    row.operation,
                    made as f64 / row.requests.max(1) as f64,
                    expected.get(key).copied().unwrap_or(0)
                );
            }
        }
    }
    println!("{}", if ok { "smoke: ok" } else { "smoke: FAILED" });
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(round: usize, variant: Variant, concurrency: usize, binary: usize, p50_ms: f64) -> Row {
        Row {
            binary,
            round,
            latency: Latency::Realistic,
            variant,
            operation: TEMPLATE_LIST.name,
            concurrency,
            rate: None,
            requests: 1,
            failures: 0,
            requests_per_second: 1.0,
            p50_ms,
            p99_ms: p50_ms,
            backend_calls_per_request: 1.0,
            calls: BTreeMap::new(),
            cpu_ms_per_request: 1.0,
            peak_rss_mib: 1.0,
            rss_mib: 1.0,
            devstack_cpu_ms_per_request: 1.0,
            cpu_per_devstack_cpu: Some(1.0),
        }
    }

    /// Each shadow run is paired with the legacy run in the same place of its round, whatever
    /// their order; shapes without both variants give no pair.
    #[test]
    fn shadow_runs_pair_with_the_legacy_runs_of_their_round() {
        use Variant::{Legacy, Shadow};
        let rows = vec![
            row(0, Legacy, 16, 0, 40.0),
            row(0, Shadow, 16, 0, 42.0),
            row(0, Legacy, 16, 0, 50.0),
            row(0, Shadow, 16, 0, 45.0),
            row(0, Legacy, 64, 0, 200.0),
            row(1, Shadow, 16, 0, 60.0),
            row(1, Legacy, 16, 0, 50.0),
            row(1, Shadow, 16, 1, 70.0),
        ];
        let pairs = shadow_pairs(&rows);
        assert_eq!(pairs.len(), 1, "{pairs:?}");
        assert_eq!((pairs[0].concurrency, pairs[0].binary), (16, 0));
        let expected = [42.0 / 40.0, 45.0 / 50.0, 60.0 / 50.0];
        assert_eq!(pairs[0].ratios.len(), expected.len());
        for (got, want) in pairs[0].ratios.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} != {want}");
        }
    }
}
