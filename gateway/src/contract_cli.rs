//! The schema-contract commands of the CLI (`banyan schema diff|check`, `banyan contract
//! validate|manifest`): thin over `banyan_schema`, writing their report to a writer and
//! returning the process exit code (0 pass, 1 CI should stop, 2 an input could not be loaded).

use std::io::Write;
use std::path::{Path, PathBuf};

use banyan_schema::{
    ACCEPTED_CHANGES_FILE, AcceptedChanges, CheckOptions, ComponentFrom, Contract, EXIT_FAILURE,
    EXIT_INPUT_ERROR, EXIT_OK, ExtractOptions, Format, Level, MANIFEST_FILE, ManifestStatus, SchemaError,
    Sdl, SplitContract, build_manifest, check_compact, extract, load_base_compact_file, load_compact_file,
    load_compact_file_with, load_compact_with, load_sdl, load_sdl_file, schema_hash, validate_contract,
};

/// Where the code's own schema is committed; reports about it point at this file.
pub const SCHEMA_SNAPSHOT: &str = "schema/schema.graphql";

/// Output formats, as the CLI names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people; coloured on a terminal.
    Text,
    /// For machines (documented in schema/src/render.rs).
    Json,
    /// GitHub workflow annotations.
    Github,
    /// A pull-request comment.
    Markdown,
}

impl OutputFormat {
    fn format(self, colour: bool) -> Format {
        match self {
            Self::Text => Format::Text { colour },
            Self::Json => Format::Json,
            Self::Github => Format::Github,
            Self::Markdown => Format::Markdown,
        }
    }
}

/// How a command prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// The format.
    pub format: OutputFormat,
    /// ANSI colour in text output.
    pub colour: bool,
}

/// `banyan schema diff OLD NEW`: every change, classified; exit 1 when any is breaking.
pub fn schema_diff(old: &Path, new: &Path, output: Output, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    exit_code(err, || {
        // The new schema first, validated and kept only as its compact model; then the base,
        // modelled a chunk at a time (README, "Schema diff and check at scale"): apollo-compiler
        // never holds more than one whole schema, and that one beside one model. A base that
        // cannot be read is reported first; what is wrong in its text, after the new schema's.
        let old_file = loaded(open_schema(old))?;
        let new = loaded(load_compact_file(new))?;
        let old = loaded(load_base_compact_file(old_file, Some(&new)))?;
        let no_contract = loaded(Contract::from_sources([]))?;
        let report = check_compact(&old, &new, &no_contract, Vec::new(), CheckOptions { strict: true });
        write_report(out, &report.render(output.format.format(output.colour)));
        Ok(if report.changes_of(Level::Breaking).next().is_some() { EXIT_FAILURE } else { EXIT_OK })
    })
}

/// What `banyan schema check` compares, and how it judges.
#[derive(Debug, Clone, Copy)]
pub struct CheckArgs<'a> {
    /// The base schema.
    pub base: &'a Path,
    /// The new schema; `None`: the schema the code builds.
    pub new: Option<&'a Path>,
    /// The contract folder.
    pub contract: &'a Path,
    /// Fail on any breaking change.
    pub strict: bool,
    /// The accepted-changes file; `None`: [`ACCEPTED_CHANGES_FILE`] when it exists.
    pub accepted: Option<&'a Path>,
}

/// `banyan schema check`: the CI gate.
pub fn schema_check(args: CheckArgs<'_>, output: Output, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    exit_code(err, || {
        // As `schema diff`, the new schema first and then the base (README, "Schema diff and
        // check at scale"). The contract is kept as its texts and parsed again a group of files
        // at a time: validated while the new schema is loaded, walked once the base is.
        // Errors: a base that cannot be read, then the new schema's, the base's text's, the
        // contract's.
        let options = CheckOptions { strict: args.strict };
        let old_file = loaded(open_schema(args.base))?;
        let contract = Contract::load(args.contract).map(SplitContract::new);
        let validate = |schema: &_| contract.as_ref().ok().map(|c| c.validate(schema));
        let (new, validation) = loaded(match args.new {
            Some(path) => load_compact_file_with(path, validate),
            None => load_compact_with(SCHEMA_SNAPSHOT, &banyan_resolvers::sdl(), validate),
        })?;
        let old = loaded(load_base_compact_file(old_file, Some(&new)))?;
        let contract = loaded(contract)?;
        let report = contract.check(&old, &new, validation.unwrap_or_default(), options);
        let accepted = match args.accepted {
            Some(path) => loaded(AcceptedChanges::load(path))?,
            None if Path::new(ACCEPTED_CHANGES_FILE).is_file() => {
                loaded(AcceptedChanges::load(ACCEPTED_CHANGES_FILE))?
            }
            None => AcceptedChanges::none(),
        };
        let report = report.with_accepted(&accepted, old.hash());
        write_report(out, &report.render(output.format.format(output.colour)));
        Ok(report.exit_code())
    })
}

/// `banyan schema hash FILE`: the hash that keys accepted changes to a base schema.
pub fn schema_hash_of(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    exit_code(err, || {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        write_report(out, &format!("{}\n", schema_hash(&text)));
        Ok(EXIT_OK)
    })
}

/// `banyan contract validate`: every operation validates against the schema.
pub fn contract_validate(
    schema: Option<&Path>,
    contract_dir: &Path,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    exit_code(err, || {
        let schema = loaded(new_schema(schema))?;
        let contract = loaded(Contract::load(contract_dir))?;
        let report = validate_contract(&schema, &contract);
        write_report(out, &report.render(output.format.format(output.colour)));
        Ok(report.exit_code())
    })
}

/// `banyan contract manifest`: writes the persisted-operations manifest into the contract
/// folder; with `check_only`, writes nothing and exits 1 when the committed one is stale.
pub fn contract_manifest(
    contract_dir: &Path,
    check_only: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let path: PathBuf = contract_dir.join(MANIFEST_FILE);
    let loaded_manifest =
        loaded(Contract::load(contract_dir)).and_then(|contract| loaded(build_manifest(&contract)));
    let manifest = match loaded_manifest {
        Ok(manifest) => manifest,
        Err(message) => return exit_code(err, || Err(message)),
    };
    let committed = std::fs::read_to_string(&path).ok();
    match manifest.compare(committed.as_deref()) {
        ManifestStatus::UpToDate => {
            write_report(out, &format!("{} is up to date\n", path.display()));
            EXIT_OK
        }
        stale if check_only => {
            let why = stale.describe();
            write_report(
                err,
                &format!("{} is not up to date: {why}\nrun `banyan contract manifest`\n", path.display()),
            );
            EXIT_FAILURE
        }
        _ => exit_code(err, || {
            std::fs::write(&path, manifest.to_json())
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            let count = manifest.operations.len();
            write_report(out, &format!("wrote {} ({count} operations)\n", path.display()));
            Ok(EXIT_OK)
        }),
    }
}

/// What `banyan contract extract` reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct ExtractArgs<'a> {
    /// The SPA's source tree.
    pub from: &'a Path,
    /// The contract folder to write (or compare with).
    pub out: &'a Path,
    /// What names an operation's component.
    pub component: ComponentFrom,
    /// Write nothing; exit 1 when `out` differs from what the source holds.
    pub check_only: bool,
}

/// `banyan contract extract`: the contract's operation files from the SPA's source. Exit 0
/// written (or, with `check_only`, up to date), 1 stale (`check_only`), 2 an operation cannot be
/// extracted statically (each problem as `file:line:col`) or a file cannot be read or written.
pub fn contract_extract(args: ExtractArgs<'_>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let extraction = match extract(args.from, ExtractOptions { component: args.component }) {
        Ok(extraction) => extraction,
        Err(e) => return exit_code(err, || Err(e.to_string())),
    };
    let summary = format!(
        "{} operations from {} source files in {}",
        extraction.operations,
        extraction.sources,
        args.from.display()
    );
    if args.check_only {
        let differences = match extraction.compare(args.out) {
            Ok(differences) => differences,
            Err(e) => return exit_code(err, || Err(e.to_string())),
        };
        if differences.is_empty() {
            write_report(out, &format!("{} is up to date ({summary})\n", args.out.display()));
            return EXIT_OK;
        }
        let list: String = differences.iter().map(|d| format!("  {d}\n")).collect();
        write_report(
            err,
            &format!(
                "{} is not up to date with {}:\n{list}run `banyan contract extract --from {} --out {}`\n",
                args.out.display(),
                args.from.display(),
                args.from.display(),
                args.out.display()
            ),
        );
        return EXIT_FAILURE;
    }
    exit_code(err, || {
        let changed = loaded(extraction.write(args.out))?;
        let list: String = changed.iter().map(|d| format!("  {d}\n")).collect();
        write_report(
            out,
            &format!("{}: {} files changed ({summary})\n{list}", args.out.display(), changed.len()),
        );
        Ok(EXIT_OK)
    })
}

/// The schema at `path`, or the one the code builds, labelled as its committed snapshot.
fn new_schema(path: Option<&Path>) -> Result<Sdl, banyan_schema::SchemaError> {
    match path {
        Some(path) => load_sdl_file(path),
        None => load_sdl(SCHEMA_SNAPSHOT, &banyan_resolvers::sdl()),
    }
}

/// Runs a command body; an input that could not be loaded (or written) is exit 2 with its message.
fn exit_code(err: &mut dyn Write, body: impl FnOnce() -> Result<i32, String>) -> i32 {
    body().unwrap_or_else(|message| {
        write_report(err, &format!("error: {message}\n"));
        EXIT_INPUT_ERROR
    })
}

/// `path`, once it opens: a base that cannot be read is reported before the new schema loads.
fn open_schema(path: &Path) -> Result<&Path, SchemaError> {
    match std::fs::File::open(path) {
        Ok(_) => Ok(path),
        Err(source) => Err(SchemaError::Io { path: path.display().to_string().replace('\\', "/"), source }),
    }
}

fn loaded<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

fn write_report(to: &mut dyn Write, text: &str) {
    // A closed pipe (e.g. `| head`) is not worth a panic or an error of its own.
    let _ = to.write_all(text.as_bytes());
    let _ = to.flush();
}
