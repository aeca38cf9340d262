//! `banyan`: the command line. `banyan` alone (what `cargo run` does) is `banyan dev`.
#![allow(clippy::print_stdout)] // the CLI's own output goes to stdout

#[cfg(feature = "devstack")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use banyan_gateway::{Config, RunningGateway};
use clap::{Parser, Subcommand};

/// Banyan: a GraphQL gateway for retiring a monolith one field at a time.
#[derive(Parser)]
#[command(name = "banyan", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the embedded devstack (stand-in monolith and services on loopback) and the gateway.
    #[cfg(feature = "devstack")]
    Dev {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:4000")]
        listen: SocketAddr,
        /// Email events the devstack appends per second, so subscriptions show live data.
        #[arg(long, default_value_t = 5.0)]
        event_rate: f64,
    },
    /// Serve against real backends.
    Serve {
        /// The configuration file (TOML); `BANYAN_*` environment variables override it.
        #[arg(long, short, default_value = "banyan.toml")]
        config: PathBuf,
    },
    /// Work with the schema.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the schema's SDL, as committed in schema/schema.graphql.
    Print,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "devstack")]
    let command = cli
        .command
        .unwrap_or(Command::Dev { listen: SocketAddr::from(([127, 0, 0, 1], 4000)), event_rate: 5.0 });
    #[cfg(not(feature = "devstack"))]
    let command = cli.command.unwrap_or(Command::Serve { config: PathBuf::from("banyan.toml") });
    match command {
        #[cfg(feature = "devstack")]
        Command::Dev { listen, event_rate } => dev(listen, event_rate).await,
        Command::Serve { config } => {
            let config = Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let gateway = RunningGateway::start(&config).await?;
            gateway.run_until_signal().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { command: SchemaCommand::Print } => {
            print!("{}", banyan_resolvers::sdl());
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(feature = "devstack")]
async fn dev(listen: SocketAddr, event_rate: f64) -> anyhow::Result<ExitCode> {
    use banyan_devstack::{DevStack, DevStackConfig, EventGeneratorConfig};
    use banyan_gateway::GraphiqlDefaults;
    use banyan_gateway::config::BackendsConfig;

    let devstack = DevStack::start(DevStackConfig {
        event_generator: EventGeneratorConfig {
            rate_per_second: event_rate,
            ..EventGeneratorConfig::default()
        },
        ..DevStackConfig::default()
    })
    .await
    .context("starting the devstack")?;
    let mut config = Config::default();
    config.server.listen = listen;
    config.backends =
        BackendsConfig::at(&devstack.monolith_url(), &devstack.events_url(), &devstack.drafts_url());
    let user = devstack.dataset().users.first().context("the devstack has no users")?;
    let authorization = format!("Token {}", user.token);
    let gateway =
        RunningGateway::start_with(&config, GraphiqlDefaults { authorization: Some(authorization.clone()) })
            .await
            .with_context(|| format!("starting the gateway on {listen}"))?;
    let addr = gateway.addr();
    println!("Banyan is running with its devstack.");
    println!();
    println!("  GraphiQL:   http://{addr}/graphql");
    println!("  Signed in as {} with the header:", user.username);
    println!("    Authorization: {authorization}");
    println!();
    println!("  Monolith (REST): {}/api/v1/", devstack.monolith_url());
    println!("  EventService:    {}", devstack.events_url());
    println!("  DraftService:    {}", devstack.drafts_url());
    println!();
    println!("Try: curl -s http://{addr}/graphql -H 'Content-Type: application/json' \\");
    println!(
        "       -H 'Authorization: {authorization}' -d '{{\"query\":\"{{ me {{ fullName }} workspaces {{ name }} }}\"}}'"
    );
    println!("Press Ctrl-C to stop.");
    gateway.run_until_signal().await;
    devstack.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("BANYAN_LOG").unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
