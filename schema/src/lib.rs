//! Banyan's schema contract tooling, on SDL and operation text alone (no async-graphql).
//!
//! * [`load_sdl`] parses and validates a schema (errors carry `file:line:col`);
//!   [`load_compact`] does the same in chunks and keeps only the [`CompactSchema`] the diff and
//!   the usage walks read, for large schemas ([`load_compact_with`] runs code on the validated
//!   schema first, e.g. [`operation_errors`]; [`check_compact`] checks two such models).
//! * [`diff()`] lists every change between two schemas, classified as breaking, dangerous or
//!   safe (graphql-js's change kinds, with input and output positions told apart).
//! * [`Contract::load`] reads the frontend contract (`<Component>/<Operation>.graphql`).
//! * [`check()`] combines both: which contract operations each change touches, whether every
//!   operation still validates against the new schema, and the exit code CI should use
//!   ([`CheckReport::exit_code`]); [`CheckReport::render`] prints it as text, JSON, GitHub
//!   annotations or Markdown.
//! * [`SplitContract::check`] is the check the CLI makes at scale: the contract kept as its
//!   texts, parsed again, validated and walked a group of files at a time while the new
//!   schema is loaded.
//! * [`validate_contract`] validates the contract against one schema (unique names,
//!   deprecated usage as warnings).
//! * [`build_manifest`] builds the persisted-operations manifest;
//!   [`Manifest::compare`] tells whether a committed one is stale.
//! * [`extract()`] pulls the contract from the SPA's source (`gql` templates in JS/TS/Vue,
//!   `.graphql` files), following `${Fragment}` interpolations across files.
//! * [`operation_usage`] lists the schema coordinates each operation uses.
//! * [`AcceptedChanges`] reads `schema/accepted-changes.toml`, reviewed changes keyed by the
//!   base schema's [`schema_hash`]; [`CheckReport::with_accepted`] lets them through.
//!
//! ```
//! use banyan_schema::{CheckOptions, Contract, ContractSource, Format, check, load_sdl};
//!
//! let old = load_sdl("old.graphql", "type Query { a: Int, b: Int }").unwrap();
//! let new = load_sdl("new.graphql", "type Query { a: Int }").unwrap();
//! let contract = Contract::from_sources([ContractSource {
//!     path: "frontend-contract/Widget/GetB.graphql".into(),
//!     component: "Widget".into(),
//!     text: "query GetB { b }".into(),
//! }])
//! .unwrap();
//! let report = check(&old, &new, &contract, CheckOptions::default());
//! assert_eq!(report.exit_code(), 1); // Query.b was removed and Widget/GetB selects it
//! let _text = report.render(Format::Text { colour: false });
//! ```

pub mod accepted;
pub mod check;
pub mod contract;
pub mod diff;
pub mod extract;
pub mod manifest;
pub mod model;
pub mod problem;
pub mod render;
pub mod sdl;
pub mod split;
pub mod usage;
pub mod validate;

pub use accepted::{
    ACCEPTED_CHANGES_FILE, Acceptance, AcceptedChanges, AcceptedChangesError, AcceptedEntry, Unused,
    UnusedAcceptance,
};
pub use check::{CheckOptions, CheckReport, CheckedChange, Summary, TouchedOperation, check, check_compact};
pub use contract::{Contract, ContractError, ContractOperation, ContractSource, OperationType};
pub use diff::{Change, ChangeKind, Level, SdlPosition, Side, diff};
pub use extract::{ComponentFrom, Difference, ExtractError, ExtractOptions, Extraction, extract};
pub use manifest::{
    MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestError, ManifestStatus, PersistedOperation,
    build_manifest, operation_id,
};
pub use model::CompactSchema;
pub use problem::{Problem, Severity};
pub use render::Format;
pub use sdl::{
    SchemaError, Sdl, load_base_compact, load_base_compact_file, load_compact, load_compact_file,
    load_compact_file_with, load_compact_with, load_sdl, load_sdl_file, schema_hash,
};
pub use split::{ContractValidation, SplitContract};
pub use usage::{OperationUsage, operation_usage};
pub use validate::{ValidationReport, operation_errors, validate_contract};

/// Exit code: nothing to stop.
pub const EXIT_OK: i32 = 0;
/// Exit code: CI should stop the change (a breaking change touches the contract, or an
/// operation is invalid, …).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: an input could not be loaded ([`SchemaError`], [`ContractError`],
/// [`ManifestError`]).
pub const EXIT_INPUT_ERROR: i32 = 2;
