//! The migration commands of the CLI: `banyan migration report` (what is left before each
//! monolith endpoint can go) and `banyan migration check TABLE` (a routing table validated
//! against the declarations, for CI). Each writes to the writers it is given and returns the
//! process exit code:
//!
//! - `report`: 0 printed; 2 an input could not be loaded (the table, the contract, the schema).
//! - `check`: 0 the table is valid (warnings, such as split brain, go to stderr); 1 it is not
//!   (each problem on stderr as `file:line:col: `key`: message`, as a reload logs it); 2 the
//!   file cannot be read.

use std::io::Write;
use std::path::Path;

use banyan_migration::{Catalog, RecorderSnapshot, Report, RoutingTable};
use banyan_schema::{EXIT_FAILURE, EXIT_INPUT_ERROR, EXIT_OK};

use crate::migration_contract;

/// How `banyan migration report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For a terminal.
    Text,
    /// Markdown, for a pull-request comment or a wiki page.
    Md,
    /// The report's JSON (the same as `report` in `/admin/migration`).
    Json,
}

/// What `banyan migration report` reads.
#[derive(Debug, Clone, Copy)]
pub struct ReportArgs<'a> {
    /// The routing table; `None`: every field on its declared default backend.
    pub table: Option<&'a Path>,
    /// The contract folder.
    pub contract: &'a Path,
    /// The output format.
    pub format: ReportFormat,
}

/// `banyan migration report`: the declarations, the table and the contract joined. The CLI has
/// no shadow evidence (that lives in a running gateway, see `/admin/migration`), so readiness
/// here says what a flip would still need from zero.
pub fn report(args: ReportArgs<'_>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let catalog = match Catalog::banyan() {
        Ok(catalog) => catalog,
        Err(e) => return fail(err, EXIT_INPUT_ERROR, &format!("error: the declarations: {e}\n")),
    };
    let table = match args.table {
        None => RoutingTable::defaults(&catalog),
        Some(path) => match read_table(path, &catalog) {
            Ok(table) => table,
            Err(TableLoad::Unreadable(message)) => return fail(err, EXIT_INPUT_ERROR, &message),
            Err(TableLoad::Invalid(message)) => return fail(err, EXIT_INPUT_ERROR, &message),
        },
    };
    let contract = match migration_contract::load(None, args.contract) {
        Ok(view) => view,
        Err(e) => return fail(err, EXIT_INPUT_ERROR, &format!("error: {e}\n")),
    };
    let report = Report::build(&catalog, &table, &RecorderSnapshot::default(), &contract.usage);
    let text = match args.format {
        ReportFormat::Text => report.to_text(),
        ReportFormat::Md => report.to_markdown(),
        ReportFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => json + "\n",
            Err(e) => return fail(err, EXIT_INPUT_ERROR, &format!("error: the report as JSON: {e}\n")),
        },
    };
    write(out, &text);
    for warning in table.warnings() {
        write(err, &format!("warning: {warning}\n"));
    }
    EXIT_OK
}

/// `banyan migration check TABLE`: the table parsed and checked against the declarations, as a
/// reload would (evidence aside: it lives in running gateways).
pub fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let catalog = match Catalog::banyan() {
        Ok(catalog) => catalog,
        Err(e) => return fail(err, EXIT_INPUT_ERROR, &format!("error: the declarations: {e}\n")),
    };
    match read_table(path, &catalog) {
        Ok(table) => {
            for warning in table.warnings() {
                write(err, &format!("warning: {warning}\n"));
            }
            let modes: Vec<String> =
                table.routes().map(|route| format!("{} {}", route.key, route.mode_name())).collect();
            write(out, &format!("{}: ok ({})\n", path.display(), modes.join(", ")));
            EXIT_OK
        }
        Err(TableLoad::Invalid(message)) => fail(err, EXIT_FAILURE, &message),
        Err(TableLoad::Unreadable(message)) => fail(err, EXIT_INPUT_ERROR, &message),
    }
}

enum TableLoad {
    /// The message for stderr.
    Unreadable(String),
    /// Every problem, one per line, then a count.
    Invalid(String),
}

fn read_table(path: &Path, catalog: &Catalog) -> Result<RoutingTable, TableLoad> {
    let bytes = std::fs::read(path)
        .map_err(|e| TableLoad::Unreadable(format!("error: cannot read {}: {e}\n", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| TableLoad::Unreadable(format!("error: {} is not UTF-8 text\n", path.display())))?;
    RoutingTable::parse(&text, &path.display().to_string(), catalog).map_err(|error| {
        let count = error.problems.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        TableLoad::Invalid(format!("{error}\nerror: {}: {count} {noun}\n", path.display()))
    })
}

fn fail(err: &mut dyn Write, code: i32, message: &str) -> i32 {
    write(err, message);
    code
}

fn write(to: &mut dyn Write, text: &str) {
    // A closed pipe (e.g. `| head`) is not worth a panic or an error of its own.
    let _ = to.write_all(text.as_bytes());
    let _ = to.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str) -> (i32, String, String) {
        // A file of its own per call (removed when dropped): tests run in parallel.
        let mut file = tempfile::Builder::new()
            .prefix("banyan-migration-check-")
            .suffix(".toml")
            .tempfile()
            .unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check(file.path(), &mut out, &mut err);
        (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn a_write_in_shadow_is_exit_1_with_its_place() {
        let (code, _, err) = check_text(
            "[fields.\"Template.stats\"]\nmode = \"legacy\"\n\n[fields.\"Mutation.updateDraftBlock\"]\nmode = \"shadow\"\nprimary = \"legacy\"\n",
        );
        assert_eq!(code, 1, "{err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(".toml:5:"), "the problem's line: {err}");
        assert!(first.contains("`Mutation.updateDraftBlock`: "), "its key: {err}");
        assert!(err.ends_with(": 1 problem\n"), "{err}");
    }

    #[test]
    fn a_valid_table_is_exit_0_and_split_brain_warns() {
        let (code, out, err) = check_text("[fields.\"Template.draft\"]\nmode = \"legacy\"\n");
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("Template.draft legacy"), "{out}");
        assert!(err.starts_with("warning: "), "a read routed apart from its writes warns: {err}");
    }

    #[test]
    fn a_missing_file_is_exit_2() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check(Path::new("/nonexistent/banyan-routing.toml"), &mut out, &mut err);
        assert_eq!(code, 2);
        assert!(String::from_utf8_lossy(&err).starts_with("error: cannot read /nonexistent/"));
    }
}
