//! Banyan's migration engine: moving a field from the monolith to a service, per field, live,
//! with evidence. No GraphQL and no clients live here; `resolvers` binds each declaration to its
//! loaders and `gateway` serves the results.
//!
//! - [`declaration`], [`calls`], [`banyan`], [`catalog`]: the vocabulary. A migrated field is
//!   one [`FieldDeclaration`]: a stable key, the monolith endpoints and gRPC methods each side
//!   calls (shared constants, spelled as the devstack counts them), whether each side batches,
//!   the normalisers its answers are compared with and, for a write, the read whose store it
//!   writes. Non-migrated resolvers declare their calls too ([`Dependency`]).
//! - [`table`]: the routing table file (TOML), parsed with line numbers and checked against the
//!   catalog; [`live`]: the table in force, reloaded on change, gated by evidence.
//! - [`decision`]: per request and field, which backend serves (fixed, sticky canary, shadow)
//!   and whether a second call is made.
//! - [`executor`]: runs the serving call and its shadow; [`batch`]: the shadows of a page's
//!   items, compared together; [`compare`], [`path`]: the comparison;
//!   [`recorder`]: counters, latencies, noise (A/A), exemplars; [`evidence`]: what a flip needs.
//! - [`report`]: the retirement report (per component, per monolith endpoint, per field).
//! - [`hash`]: the fixed hash every replica shares; [`engine`]: what a process holds of it all.
//!
//! Per request: take one [`LiveTable::snapshot`], [`RoutingTable::decide`] each migrated field,
//! and [`ShadowExecutor::execute`] the decision with a closure that calls the chosen backend.

pub mod banyan;
pub mod batch;
pub mod calls;
pub mod catalog;
pub mod compare;
pub mod decision;
pub mod declaration;
pub mod engine;
pub mod evidence;
pub mod executor;
pub mod hash;
pub mod live;
pub mod path;
pub mod recorder;
pub mod report;
pub mod table;

pub use batch::{BatchAnswers, BatchSecondary, LatencyProbe, ShadowBatch};
pub use catalog::{Catalog, CatalogError};
pub use compare::{Comparator, Comparison, Difference};
pub use decision::{
    DecidedBy, Decision, OverrideError, Overrides, RequestSubject, ShadowPlan, ShadowPurpose, Subject,
};
pub use declaration::{
    Access, Backend, BackendCall, Batching, Dependency, FieldDeclaration, FieldKey, FloatTolerance,
    Implementation, Normalisers, System, TimeUnit, TimestampRule, UnorderedList,
};
pub use engine::Engine;
pub use evidence::{ContractIndex, KeyEvidence};
pub use executor::ShadowExecutor;
pub use live::{LiveTable, LoadError, Refusal, ReloadOutcome, TableWatcher};
pub use recorder::{CallContext, Outcome, RecorderConfig, RecorderSnapshot, ShadowRecorder};
pub use report::{ContractUsage, Report};
pub use table::{EvidenceRequirement, Location, Mode, Problem, Route, RoutingTable, TableError};
