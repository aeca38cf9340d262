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

/// jemalloc, with one arena, unused pages given back after a second and thread caches for blocks
/// up to 32 KiB (`.cargo/config.toml`): about a fifth less CPU per request than glibc's malloc
/// at no more memory (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
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
        /// Check the configuration and what it points at (routing table, persisted manifest,
        /// contract, service identity secret), as a start would, then exit: 0 when it would
        /// start, 1 with the reason when not. Binds nothing, calls no backend.
        #[arg(long)]
        check: bool,
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
    /// The services' .proto files: pull them over gRPC reflection, check them for compatibility.
    Proto {
        #[command(subcommand)]
        command: ProtoCommand,
    },
}

#[derive(Subcommand)]
enum ProtoCommand {
    /// Fetch the .proto files of every service the servers list, over gRPC server reflection
    /// (well-known types left out), and write them in package layout. Exits 2 when a server cannot
    /// be reached or answers wrongly; with --check, writes nothing and exits 1 when the files
    /// under --out differ from what is served.
    Pull {
        /// A server (`host:port` or `http://host:port`); repeat for several.
        #[arg(long = "service", value_name = "ADDR", required = true)]
        services: Vec<String>,
        /// Where the files go.
        #[arg(long, default_value = banyan_gateway::proto_cli::PROTO_DIR)]
        out: PathBuf,
        /// Write nothing; exit 1 (with a diff) when the files under --out are not what is served.
        #[arg(long)]
        check: bool,
        /// Delete .proto files under --out that no server serves.
        #[arg(long)]
        prune: bool,
        /// The reflection protocol: v1, v1alpha, or auto (v1, then v1alpha).
        #[arg(long, value_enum, default_value_t = ReflectionArg::Auto)]
        reflection: ReflectionArg,
        /// Limit for each server's whole conversation.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Classify every change between two folders of .proto files as breaking, dangerous or safe
    /// (buf's categories), judged by what Banyan's sources use. Exits 1 when a breaking change
    /// touches something Banyan uses (any breaking change with --strict), 2 when an input cannot
    /// be loaded.
    Check {
        /// The protos before (e.g. the committed sources/proto).
        #[arg(long)]
        base: PathBuf,
        /// The protos after (e.g. what `proto pull` fetched from a service).
        #[arg(long)]
        new: PathBuf,
        /// buf's rule category.
        #[arg(long, value_enum, default_value_t = RulesArg::WireJson)]
        rules: RulesArg,
        /// Banyan's sources, read for the RPCs, messages and fields they use.
        #[arg(long, default_value = banyan_gateway::proto_cli::SOURCES_DIR)]
        sources: PathBuf,
        /// Fail on any breaking change, used by Banyan or not.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReflectionArg {
    Auto,
    V1,
    V1alpha,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RulesArg {
    Wire,
    WireJson,
    File,
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
    /// Pull the operations from the SPA's source (`gql`/`graphql` templates and calls in
    /// .ts/.tsx/.js/.jsx/.vue, .graphql files) into one file per operation, following
    /// `${Fragment}` interpolations across files. Exits 1 with --check when the folder is stale,
    /// 2 when an operation cannot be extracted statically (each at file:line:col).
    Extract {
        /// The SPA's source tree.
        #[arg(long)]
        from: PathBuf,
        /// The contract folder to write.
        #[arg(long, default_value = "frontend-contract")]
        out: PathBuf,
        /// What names an operation's component: the source file's directory, or its file name.
        #[arg(long, value_enum, default_value_t = ComponentArg::Dir)]
        component: ComponentArg,
        /// Write nothing; exit 1 when the folder differs from what the source holds.
        #[arg(long)]
        check: bool,
    },
}

/// `--component` of `contract extract`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ComponentArg {
    /// The source file's directory (`src/TemplateList/TemplateList.tsx` → `TemplateList`).
    Dir,
    /// The source file's name (`src/components/UserMenu.vue` → `UserMenu`).
    File,
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
    let command =
        cli.command.unwrap_or(Command::Serve { config: PathBuf::from("banyan.toml"), check: false });
    // `serve` reads its configuration first: it says how to log.
    let (command, log_format) = match command {
        #[cfg(feature = "devstack")]
        Command::Dev { listen, event_rate } => (Run::Dev { listen, event_rate }, LogFormat::Text),
        Command::Serve { config: path, check } => match Config::load(&path) {
            Ok(config) => {
                let log_format = config.server.log_format;
                let config = Box::new(config);
                (if check { Run::Check(config, path) } else { Run::Serve(config) }, log_format)
            }
            Err(e) => {
                eprintln!("error: loading {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        Command::Schema { command } => (Run::Schema(command), LogFormat::Text),
        Command::Contract { command } => (Run::Contract(command), LogFormat::Text),
        Command::Migration { command } => (Run::Migration(command), LogFormat::Text),
        Command::Proto { command } => (Run::Proto(command), LogFormat::Text),
    };
    init_tracing(log_format);
    // The schema and contract commands are synchronous: they start no async runtime (and its
    // worker threads), which is part of what a CI step waits for.
    let command = match command {
        Run::Schema(command) => return exit(schema_command(command)),
        Run::Contract(command) => return exit(contract_command(command)),
        other => other,
    };
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
    /// `serve --check`: the configuration and the file it came from.
    Check(Box<Config>, PathBuf),
    Schema(SchemaCommand),
    Contract(ContractCommand),
    Migration(MigrationCommand),
    Proto(ProtoCommand),
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
            let signals = banyan_gateway::server::ShutdownSignals::listen();
            let gateway = RunningGateway::start(&config).await?;
            gateway.run_until(signals).await;
            Ok(ExitCode::SUCCESS)
        }
        Run::Check(config, path) => {
            banyan_gateway::server::check(&config).await?;
            println!("{}: Banyan would start with this configuration", path.display());
            Ok(ExitCode::SUCCESS)
        }
        // Run before the runtime starts (see `main`); kept here so the match stays whole.
        Run::Schema(command) => Ok(exit(schema_command(command))),
        Run::Contract(command) => Ok(exit(contract_command(command))),
        Run::Migration(command) => Ok(exit(migration_command(command))),
        Run::Proto(command) => Ok(exit(proto_command(command).await)),
    }
}

async fn proto_command(command: ProtoCommand) -> i32 {
    use banyan_gateway::proto_cli;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match command {
        ProtoCommand::Pull { services, out: dir, check, prune, reflection, timeout } => {
            let reflection = match reflection {
                ReflectionArg::Auto => banyan_proto::ReflectionVersion::Auto,
                ReflectionArg::V1 => banyan_proto::ReflectionVersion::V1,
                ReflectionArg::V1alpha => banyan_proto::ReflectionVersion::V1Alpha,
            };
            let args = proto_cli::PullArgs { services, out: dir, check, prune, reflection, timeout };
            proto_cli::pull(&args, &mut out, &mut err).await
        }
        ProtoCommand::Check { base, new, rules, sources, strict, output } => {
            let rules = match rules {
                RulesArg::Wire => banyan_proto::Rules::Wire,
                RulesArg::WireJson => banyan_proto::Rules::WireJson,
                RulesArg::File => banyan_proto::Rules::File,
            };
            let args = proto_cli::CheckArgs { base: &base, new: &new, sources: &sources, rules, strict };
            proto_cli::check(args, output.output(), &mut out.lock(), &mut err.lock())
        }
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
        ContractCommand::Extract { from, out: out_dir, component, check } => {
            let component = match component {
                ComponentArg::Dir => banyan_schema::ComponentFrom::Directory,
                ComponentArg::File => banyan_schema::ComponentFrom::File,
            };
            let args = contract_cli::ExtractArgs { from: &from, out: &out_dir, component, check_only: check };
            contract_cli::contract_extract(args, &mut out, &mut err)
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

    // Before anything starts: a taken port is the usual first-run problem, and deserves one
    // clear line rather than a devstack started for nothing and an OS error.
    if let Err(error) = std::net::TcpListener::bind(listen) {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::bail!(
                "{listen} is already in use (another `banyan dev`?); stop that process, or choose \
                 another address: banyan dev --listen 127.0.0.1:{}",
                listen.port().wrapping_add(1).max(1024)
            );
        }
        return Err(anyhow::Error::new(error).context(format!("listening on {listen}")));
    }
    let signals = banyan_gateway::server::ShutdownSignals::listen();
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
    // Removed when this returns, whether the gateway stopped or failed to start.
    let table_dir = tempfile::Builder::new()
        .prefix("banyan-dev-")
        .tempdir()
        .context("creating a scratch folder for the dev routing table")?;
    let routing_table = banyan_gateway::migration::write_dev_routing_table(table_dir.path())
        .with_context(|| format!("writing the dev routing table in {}", table_dir.path().display()))?;
    config.migration.routing_table = Some(routing_table.clone());
    config.migration.reload_interval = std::time::Duration::from_secs(1);
    config.migration.expose_routing = true;
    config.migration.allow_route_override = true;
    // GraphiQL is for exploring: any document runs, and none is logged as untrusted.
    config.persisted.trusted_documents = banyan_gateway::config::TrustedDocuments::Off;
    let user = devstack.dataset().users.first().context("the devstack has no users")?;
    let authorization = format!("Token {}", user.token);
    let graphiql = GraphiqlDefaults {
        authorization: Some(authorization.clone()),
        always_show_routing: true,
        contract_tabs: true,
        sample_arguments: devstack_samples(devstack.dataset(), user),
    };
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
    gateway.run_until(signals).await;
    devstack.shutdown().await;
    drop(table_dir);
    Ok(ExitCode::SUCCESS)
}

/// Values for the contract's variables in GraphiQL's tabs, from the devstack's data: the signed-in
/// user's first workspace and its first active template, keyed by the argument they are passed to.
#[cfg(feature = "devstack")]
fn devstack_samples(
    dataset: &banyan_devstack::Dataset,
    user: &banyan_devstack::dataset::User,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    use banyan_devstack::dataset::TemplateStatus;
    use serde_json::json;
    let mut samples = std::collections::BTreeMap::new();
    let Some(workspace) = dataset.memberships.iter().find(|m| m.user == user.id).map(|m| m.workspace) else {
        return samples;
    };
    let template = dataset
        .templates
        .iter()
        .find(|t| t.workspace == workspace && t.status == TemplateStatus::Active)
        .or_else(|| dataset.templates.iter().find(|t| t.workspace == workspace));
    let Some(template) = template else { return samples };
    let (template_id, workspace_id) = banyan_resolvers::template_and_workspace_ids(template.id, workspace);
    for argument in ["template.id", "renameTemplate.id"] {
        samples.insert(argument.to_owned(), json!(template_id));
    }
    samples.insert("workspace.id".to_owned(), json!(workspace_id));
    samples.insert("templates.workspaceId".to_owned(), json!(workspace_id));
    samples.insert("templateEvents.templateIds".to_owned(), json!([template_id]));
    samples
        .insert("renameTemplate.name".to_owned(), json!(format!("{} (renamed in GraphiQL)", template.name)));
    samples.insert("window".to_owned(), json!("LAST_7_DAYS"));
    samples
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
