//! The schema-contract commands of the CLI (`banyan schema diff|check`, `banyan contract
//! validate|manifest`): thin over `banyan_schema`, writing their report to a writer and
//! returning the process exit code (0 pass, 1 CI should stop, 2 an input could not be loaded).

use std::io::Write;
use std::path::{Path, PathBuf};

use banyan_schema::{
    CheckOptions, Contract, EXIT_FAILURE, EXIT_INPUT_ERROR, EXIT_OK, Format, Level, MANIFEST_FILE,
    ManifestStatus, Sdl, build_manifest, check, load_sdl, load_sdl_file, validate_contract,
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
    let (old, new) = match (load_sdl_file(old), load_sdl_file(new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) | (_, Err(e)) => return input_error(err, &e),
    };
    let empty = match Contract::from_sources([]) {
        Ok(contract) => contract,
        Err(e) => return input_error(err, &e),
    };
    let report = check(&old, &new, &empty, CheckOptions { strict: true });
    write_report(out, &report.render(output.format.format(output.colour)));
    if report.changes_of(Level::Breaking).next().is_some() { EXIT_FAILURE } else { EXIT_OK }
}

/// `banyan schema check`: the CI gate.
pub fn schema_check(
    base: &Path,
    new: Option<&Path>,
    contract_dir: &Path,
    strict: bool,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let old = match load_sdl_file(base) {
        Ok(old) => old,
        Err(e) => return input_error(err, &e),
    };
    let new = match new_schema(new) {
        Ok(new) => new,
        Err(e) => return input_error(err, &e),
    };
    let contract = match Contract::load(contract_dir) {
        Ok(contract) => contract,
        Err(e) => return input_error(err, &e),
    };
    let report = check(&old, &new, &contract, CheckOptions { strict });
    write_report(out, &report.render(output.format.format(output.colour)));
    report.exit_code()
}

/// `banyan contract validate`: every operation validates against the schema.
pub fn contract_validate(
    schema: Option<&Path>,
    contract_dir: &Path,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let schema = match new_schema(schema) {
        Ok(schema) => schema,
        Err(e) => return input_error(err, &e),
    };
    let contract = match Contract::load(contract_dir) {
        Ok(contract) => contract,
        Err(e) => return input_error(err, &e),
    };
    let report = validate_contract(&schema, &contract);
    write_report(out, &report.render(output.format.format(output.colour)));
    report.exit_code()
}

/// `banyan contract manifest`: writes the persisted-operations manifest into the contract
/// folder; with `check_only`, writes nothing and exits 1 when the committed one is stale.
pub fn contract_manifest(
    contract_dir: &Path,
    check_only: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let contract = match Contract::load(contract_dir) {
        Ok(contract) => contract,
        Err(e) => return input_error(err, &e),
    };
    let manifest = match build_manifest(&contract) {
        Ok(manifest) => manifest,
        Err(e) => return input_error(err, &e),
    };
    let path: PathBuf = contract_dir.join(MANIFEST_FILE);
    let committed = std::fs::read_to_string(&path).ok();
    let status = manifest.compare(committed.as_deref());
    if check_only {
        return match status {
            ManifestStatus::UpToDate => {
                write_report(out, &format!("{} is up to date\n", path.display()));
                EXIT_OK
            }
            stale => {
                write_report(
                    err,
                    &format!(
                        "{} is not up to date: {}\nrun `banyan contract manifest`\n",
                        path.display(),
                        stale.describe()
                    ),
                );
                EXIT_FAILURE
            }
        };
    }
    if status == ManifestStatus::UpToDate {
        write_report(out, &format!("{} is up to date\n", path.display()));
        return EXIT_OK;
    }
    match std::fs::write(&path, manifest.to_json()) {
        Ok(()) => {
            write_report(
                out,
                &format!("wrote {} ({} operations)\n", path.display(), manifest.operations.len()),
            );
            EXIT_OK
        }
        Err(e) => {
            write_report(err, &format!("error: writing {}: {e}\n", path.display()));
            EXIT_INPUT_ERROR
        }
    }
}

/// The schema at `path`, or the one the code builds, labelled as its committed snapshot.
fn new_schema(path: Option<&Path>) -> Result<Sdl, banyan_schema::SchemaError> {
    match path {
        Some(path) => load_sdl_file(path),
        None => load_sdl(SCHEMA_SNAPSHOT, &banyan_resolvers::sdl()),
    }
}

fn input_error(err: &mut dyn Write, error: &dyn std::fmt::Display) -> i32 {
    write_report(err, &format!("error: {error}\n"));
    EXIT_INPUT_ERROR
}

fn write_report(to: &mut dyn Write, text: &str) {
    // A closed pipe (e.g. `| head`) is not worth a panic or an error of its own.
    let _ = to.write_all(text.as_bytes());
    let _ = to.flush();
}
