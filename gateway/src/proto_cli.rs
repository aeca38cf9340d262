//! The proto-contract commands of the CLI (`banyan proto pull|check`): thin over `banyan_proto`,
//! writing their report to a writer and returning the process exit code (0 pass, 1 CI should stop,
//! 2 an input could not be loaded or a service could not be reached), as the schema commands do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use banyan_proto::{CheckInputs, CheckOptions, EXIT_FAILURE, EXIT_INPUT_ERROR, EXIT_OK, Format};
pub use banyan_proto::{ReflectionVersion, Rules};

use crate::contract_cli::{Output, OutputFormat};

/// Where the services' protos are committed; `proto pull` writes there by default.
pub const PROTO_DIR: &str = "sources/proto";
/// Where Banyan's backend clients are; `proto check` reads what they use from there by default.
pub const SOURCES_DIR: &str = "sources/src";

/// What `banyan proto pull` does.
#[derive(Debug, Clone)]
pub struct PullArgs {
    /// The servers (`host:port` or a URL), each listing its services over reflection.
    pub services: Vec<String>,
    /// Where the files go (or are compared).
    pub out: PathBuf,
    /// Compare only: exit 1 when the files under `out` differ from what is served.
    pub check: bool,
    /// Delete `.proto` files under `out` that no server serves.
    pub prune: bool,
    /// The reflection protocol.
    pub reflection: ReflectionVersion,
    /// Limit for each server's whole conversation.
    pub timeout: Duration,
}

/// `banyan proto pull`: fetch every listed service's files over reflection and write them (or,
/// with `check`, compare them with the committed ones: exit 1 when they differ).
pub async fn pull(args: &PullArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.services.is_empty() {
        write_report(err, "error: name at least one server with --service ADDR\n");
        return EXIT_INPUT_ERROR;
    }
    let pulled = match banyan_proto::pull(&args.services, args.reflection, args.timeout).await {
        Ok(pulled) => pulled,
        Err(e) => {
            write_report(err, &format!("error: {e}\n"));
            return EXIT_INPUT_ERROR;
        }
    };
    for (address, protocol, services) in &pulled.servers {
        write_report(err, &format!("{address} ({protocol}): {}\n", services.join(", ")));
    }
    let dir = &args.out;
    if args.check {
        return match banyan_proto::compare(&pulled, dir) {
            Ok(comparison) if comparison.is_clean() => {
                write_report(
                    out,
                    &format!(
                        "{} is up to date with what the services serve ({} files)\n",
                        dir.display(),
                        comparison.unchanged.len()
                    ),
                );
                EXIT_OK
            }
            Ok(comparison) => {
                write_report(
                    out,
                    &format!(
                        "{} differs from what the services serve:\n{}\nrun `banyan proto pull` (and `banyan proto check`) to take the served protos\n",
                        dir.display(),
                        comparison.describe(dir)
                    ),
                );
                EXIT_FAILURE
            }
            Err(e) => {
                write_report(err, &format!("error: {e}\n"));
                EXIT_INPUT_ERROR
            }
        };
    }
    match banyan_proto::write(&pulled, dir, args.prune) {
        Ok(done) => {
            let mut text = String::new();
            for path in &done.written {
                text.push_str(&format!("wrote      {}\n", path.display()));
            }
            for path in &done.unchanged {
                text.push_str(&format!("unchanged  {}\n", path.display()));
            }
            for path in &done.not_served {
                let what = if args.prune { "deleted" } else { "not served (left in place; --prune deletes)" };
                text.push_str(&format!("{what}  {}\n", path.display()));
            }
            write_report(out, &text);
            EXIT_OK
        }
        Err(e) => {
            write_report(err, &format!("error: {e}\n"));
            EXIT_INPUT_ERROR
        }
    }
}

/// What `banyan proto check` compares, and how it judges.
#[derive(Debug, Clone, Copy)]
pub struct CheckArgs<'a> {
    /// The base protos (e.g. the committed `sources/proto`).
    pub base: &'a Path,
    /// The new protos (e.g. what a service serves now, pulled).
    pub new: &'a Path,
    /// Banyan's sources, read for what they use.
    pub sources: &'a Path,
    /// The rule category.
    pub rules: Rules,
    /// Fail on any breaking change.
    pub strict: bool,
}

/// `banyan proto check`: the CI gate behind the gateway.
pub fn check(args: CheckArgs<'_>, output: Output, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut run = || -> Result<i32, banyan_proto::ProtoError> {
        let inputs = CheckInputs::load(args.base, args.new, args.sources)?;
        let report = banyan_proto::check(
            &inputs.old,
            &inputs.new,
            &inputs.usage,
            CheckOptions { rules: args.rules, strict: args.strict },
        );
        write_report(out, &report.render(format(output)));
        // The process ends next: freeing the descriptors' hundreds of thousands of small
        // allocations one by one would cost more than a tenth of the command.
        std::mem::forget(inputs);
        Ok(report.exit_code())
    };
    run().unwrap_or_else(|e| {
        write_report(err, &format!("error: {e}\n"));
        EXIT_INPUT_ERROR
    })
}

fn format(output: Output) -> Format {
    match output.format {
        OutputFormat::Text => Format::Text { colour: output.colour },
        OutputFormat::Json => Format::Json,
        OutputFormat::Github => Format::Github,
        OutputFormat::Markdown => Format::Markdown,
    }
}

fn write_report(to: &mut dyn Write, text: &str) {
    // A closed pipe (e.g. `| head`) is not worth a panic or an error of its own.
    let _ = to.write_all(text.as_bytes());
    let _ = to.flush();
}
