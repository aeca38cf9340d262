//! `banyan`: the command line. `banyan` alone (what `cargo run` does) is `banyan dev`.
#![allow(clippy::print_stdout)] // the CLI's own output goes to stdout

#[cfg(feature = "devstack")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use banyan_gateway::config::LogFormat;
use banyan_gateway::contract_cli::{self, Output, OutputFormat};
use banyan_gateway::migration_cli::{self, ReportFormat};
use banyan_gateway::{Config, RunningGateway};
use clap::{Parser, Subcommand};

/// Banyan: a GraphQL gateway for retiring a monolith one field at a time.
#[derive(Parser)]
#[command(name = "banyan", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// Email events per second `banyan dev` generates unless told otherwise.
#[cfg(feature = "devstack")]
const DEV_EVENT_RATE: f64 = 5.0;

/// Where `banyan dev` listens unless told otherwise: the server's own default.
#[cfg(feature = "devstack")]
fn default_listen() -> SocketAddr {
    banyan_gateway::config::ServerConfig::default().listen
}

#[derive(Subcommand)]
enum Command {
    /// Start the embedded devstack (stand-in monolith and services on loopback) and the gateway.
    #[cfg(feature = "devstack")]
    Dev {
        /// Where the gateway listens.
        #[arg(long, default_value_t = default_listen())]
        listen: SocketAddr,
        /// Email events the devstack appends per second, so subscriptions show live data.
        #[arg(long, default_value_t = DEV_EVENT_RATE)]
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
    /// Work with the frontend contract (the operations the SPA's components send).
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// The migration off the monolith: what is left, and routing tables.
    Migration {
        #[command(subcommand)]
        command: MigrationCommand,
    },
}

#[derive(Subcommand)]
enum MigrationCommand {
    /// What is left before each monolith endpoint can go: per component, the migrated fields its
    /// operations read and the share services serve; per monolith endpoint, what still needs it
    /// and in which mode; the retirable endpoints; per field, readiness to flip. Exits 2 when an
    /// input cannot be loaded.
    Report {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// The routing table; default: every field on its declared default backend.
        #[arg(long)]
        table: Option<PathBuf>,
        /// The contract folder.
        #[arg(long, default_value = "frontend-contract")]
        contract: PathBuf,
    },
    /// Validate a routing table against the declarations, as a reload would (evidence aside).
    /// Exits 1 when it is invalid (each problem as `file:line:col: `key`: message`), 2 when it
    /// cannot be read.
    Check {
        /// The routing table file.
        table: PathBuf,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the schema's SDL, as committed in schema/schema.graphql.
    Print,
    /// List every change between two SDL files, classified as breaking, dangerous or safe.
    /// Exits 1 when any change is breaking, 2 when a file does not parse or validate.
    Diff {
        /// The schema before.
        old: PathBuf,
        /// The schema after.
        new: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The CI gate: classify the changes, list the contract operations each one touches, and
    /// validate every operation against the new schema. Exits 1 when a breaking change touches
    /// an operation or an operation no longer validates (any breaking change with --strict),
    /// 2 when an input cannot be loaded.
    Check {
        /// The schema before (e.g. the main branch's schema/schema.graphql).
        #[arg(long)]
        base: PathBuf,
        /// The schema after; default: the schema the code builds.
        #[arg(long)]
        new: Option<PathBuf>,
        /// The contract folder.
        #[arg(long, default_value = "frontend-contract")]
        contract: PathBuf,
        /// Fail on any breaking change, touched by an operation or not.
        #[arg(long)]
        strict: bool,
        /// Reviewed changes to let through (keyed by the base schema's hash); default:
        /// schema/accepted-changes.toml when it exists.
        #[arg(long)]
        accepted: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print the hash of an SDL file that keys accepted changes to it as a base (`sha256:…` of
    /// the text with line endings, trailing blanks and the final newline normalised).
    Hash {
        /// The SDL file (e.g. the base branch's schema/schema.graphql).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ContractCommand {
    /// Validate every contract operation against the schema; names must be unique; deprecated
    /// usage is a warning. Exits 1 on any error.
    Validate {
        /// The contract folder.
        #[arg(long, default_value = "frontend-contract")]
        contract: PathBuf,
        /// The schema to validate against; default: the schema the code builds.
        #[arg(long)]
        schema: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write the persisted-operations manifest (Apollo's format) into the contract folder.
    Manifest {
        /// The contract folder.
        #[arg(long, default_value = "frontend-contract")]
        contract: PathBuf,
        /// Write nothing; exit 1 when the committed manifest is stale.
        #[arg(long)]
        check: bool,
    },
}

/// How a report is printed.
#[derive(clap::Args)]
struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Colour in text output.
    #[arg(long, value_enum, default_value_t = Colour::Auto)]
    colour: Colour,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Colour {
    /// When stdout is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}

impl OutputArgs {
    fn output(&self) -> Output {
        use std::io::IsTerminal;
        let colour = match self.colour {
            Colour::Always => true,
            Colour::Never => false,
            Colour::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Output { format: self.format, colour }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "devstack")]
    let command =
        cli.command.unwrap_or(Command::Dev { listen: default_listen(), event_rate: DEV_EVENT_RATE });
    #[cfg(not(feature = "devstack"))]
    let command = cli.command.unwrap_or(Command::Serve { config: PathBuf::from("banyan.toml") });
    // `serve` reads its configuration first: it says how to log.
    let (command, log_format) = match command {
        #[cfg(feature = "devstack")]
        Command::Dev { listen, event_rate } => (Run::Dev { listen, event_rate }, LogFormat::Text),
        Command::Serve { config: path } => match Config::load(&path) {
            Ok(config) => {
                let log_format = config.server.log_format;
                (Run::Serve(Box::new(config)), log_format)
            }
            Err(e) => {
                eprintln!("error: loading {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        Command::Schema { command } => (Run::Schema(command), LogFormat::Text),
        Command::Contract { command } => (Run::Contract(command), LogFormat::Text),
        Command::Migration { command } => (Run::Migration(command), LogFormat::Text),
    };
    init_tracing(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(banyan_gateway::WORKER_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            fatal(log_format, &anyhow::Error::new(e).context("starting the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => {
            fatal(log_format, &e);
            ExitCode::FAILURE
        }
    }
}

/// A [`Command`], with `serve`'s configuration loaded.
enum Run {
    #[cfg(feature = "devstack")]
    Dev {
        listen: SocketAddr,
        event_rate: f64,
    },
    Serve(Box<Config>),
    Schema(SchemaCommand),
    Contract(ContractCommand),
    Migration(MigrationCommand),
}

/// Reports the error that stops the process: on stderr as text, or as a log line where logs are
/// JSON, so a log collector sees it too.
fn fatal(log_format: LogFormat, error: &anyhow::Error) {
    match log_format {
        LogFormat::Text => eprintln!("error: {error:#}"),
        LogFormat::Json => tracing::error!(error = format!("{error:#}"), "Banyan stopped"),
    }
}

async fn run(command: Run) -> anyhow::Result<ExitCode> {
    match command {
        #[cfg(feature = "devstack")]
        Run::Dev { listen, event_rate } => dev(listen, event_rate).await,
        Run::Serve(config) => {
            let gateway = RunningGateway::start(&config).await?;
            gateway.run_until_signal().await;
            Ok(ExitCode::SUCCESS)
        }
        Run::Schema(command) => Ok(exit(schema_command(command))),
        Run::Contract(command) => Ok(exit(contract_command(command))),
        Run::Migration(command) => Ok(exit(migration_command(command))),
    }
}

fn schema_command(command: SchemaCommand) -> i32 {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match command {
        SchemaCommand::Print => {
            print!("{}", banyan_resolvers::sdl());
            0
        }
        SchemaCommand::Diff { old, new, output } => {
            contract_cli::schema_diff(&old, &new, output.output(), &mut out, &mut err)
        }
        SchemaCommand::Check { base, new, contract, strict, accepted, output } => {
            let args = contract_cli::CheckArgs {
                base: &base,
                new: new.as_deref(),
                contract: &contract,
                strict,
                accepted: accepted.as_deref(),
            };
            contract_cli::schema_check(args, output.output(), &mut out, &mut err)
        }
        SchemaCommand::Hash { file } => contract_cli::schema_hash_of(&file, &mut out, &mut err),
    }
}

fn contract_command(command: ContractCommand) -> i32 {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match command {
        ContractCommand::Validate { contract, schema, output } => {
            contract_cli::contract_validate(schema.as_deref(), &contract, output.output(), &mut out, &mut err)
        }
        ContractCommand::Manifest { contract, check } => {
            contract_cli::contract_manifest(&contract, check, &mut out, &mut err)
        }
    }
}

fn migration_command(command: MigrationCommand) -> i32 {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match command {
        MigrationCommand::Report { format, table, contract } => migration_cli::report(
            migration_cli::ReportArgs { table: table.as_deref(), contract: &contract, format },
            &mut out,
            &mut err,
        ),
        MigrationCommand::Check { table } => migration_cli::check(&table, &mut out, &mut err),
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
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
    // On loopback, for the developer: the admin page needs no token, and GraphiQL, introspection
    // and "Did you mean" suggestions are on (all off by default in `serve`).
    config.admin.open = true;
    config.server.open_for_development();
    config.backends =
        BackendsConfig::at(&devstack.monolith_url(), &devstack.events_url(), &devstack.drafts_url());
    // The stand-in services verify the caller's identity with a random secret made at their
    // start; the gateway signs with the same one.
    config.auth.service_identity_secrets =
        banyan_gateway::config::ServiceIdentitySecrets(devstack.service_identity_secrets().to_vec());
    // A routing table of its own, in a scratch directory, for the developer to edit live; every
    // response says who served each migrated field, and the override header is honoured.
    let table_dir = std::env::temp_dir().join(format!("banyan-dev-{}", std::process::id()));
    let routing_table = banyan_gateway::migration::write_dev_routing_table(&table_dir)
        .with_context(|| format!("writing the dev routing table in {}", table_dir.display()))?;
    config.migration.routing_table = Some(routing_table.clone());
    config.migration.reload_interval = std::time::Duration::from_secs(1);
    config.migration.expose_routing = true;
    config.migration.allow_route_override = true;
    // GraphiQL is for exploring: any document runs, and none is logged as untrusted.
    config.persisted.trusted_documents = banyan_gateway::config::TrustedDocuments::Off;
    let user = devstack.dataset().users.first().context("the devstack has no users")?;
    let authorization = format!("Token {}", user.token);
    let graphiql = GraphiqlDefaults { authorization: Some(authorization.clone()), always_show_routing: true };
    let gateway = RunningGateway::start_with(&config, graphiql)
        .await
        .with_context(|| format!("starting the gateway on {listen}"))?;
    let addr = gateway.addr();
    println!("Banyan is running with its devstack.");
    println!();
    println!("  GraphiQL:   http://{addr}/graphql");
    println!("  Migration:  http://{addr}/admin/migration");
    println!("  Signed in as {} with the header:", user.username);
    println!("    Authorization: {authorization}");
    println!();
    println!("  Monolith (REST): {}/api/v1/", devstack.monolith_url());
    println!("  EventService:    {}", devstack.events_url());
    println!("  DraftService:    {}", devstack.drafts_url());
    println!();
    println!("  Routing table:   {} (edit it; reloaded within a second)", routing_table.display());
    println!("  Every response's extensions.routing says which backend served each migrated field;");
    println!("  force one per request with the header  x-banyan-route: Template.stats=legacy");
    println!();
    println!("Try: curl -s http://{addr}/graphql -H 'Content-Type: application/json' \\");
    println!(
        "       -H 'Authorization: {authorization}' -d '{{\"query\":\"{{ me {{ fullName }} workspaces {{ name }} }}\"}}'"
    );
    println!("Press Ctrl-C to stop.");
    gateway.run_until_signal().await;
    devstack.shutdown().await;
    let _ = std::fs::remove_dir_all(&table_dir);
    Ok(ExitCode::SUCCESS)
}

/// Logs go to stderr, filtered by `BANYAN_LOG`: as text, coloured only when stderr is a terminal
/// and `NO_COLOR` is unset (not under systemd, Kubernetes or a pipe), or as one JSON object per
/// line.
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        // async-graphql's per-field spans are many (a page of 50 templates makes hundreds): opt in
        // with server.field_spans and BANYAN_LOG=info,async_graphql=info when tracing a slow query.
        EnvFilter::try_from_env("BANYAN_LOG")
            .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,async_graphql=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
        // `message` and the event's fields at the top level, where log collectors look.
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
}
