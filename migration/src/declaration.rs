//! The vocabulary: what a migrated field is, which backend calls each side makes, and how its
//! two answers are compared. Declarations are `const` data, so one list of them drives routing,
//! shadowing, evidence and the report, and code, spans and metrics share one spelling of every
//! endpoint and method.

use std::fmt;

use serde::Serialize;

/// Which implementation serves a migrated field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The monolith's endpoint(s).
    Legacy,
    /// The gRPC service's method(s).
    Service,
}

impl Backend {
    /// `"legacy"` or `"service"`, as in the routing table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Service => "service",
        }
    }

    /// The other backend.
    pub fn other(self) -> Self {
        match self {
            Self::Legacy => Self::Service,
            Self::Service => Self::Legacy,
        }
    }

    /// Parses `"legacy"` or `"service"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "legacy" => Some(Self::Legacy),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which backend system a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// The REST monolith; the call's name is `"{METHOD} {route pattern}"`.
    Monolith,
    /// A gRPC service; the call's name is `"{Service}/{Method}"`, without the package.
    Grpc,
}

/// One endpoint or method, named the way the devstack's call counters and the spans name it:
/// `"GET /api/v1/templates/{id}/analytics/"`, `"EventService/GetTemplateStats"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct BackendCall {
    /// The system it goes to.
    pub system: System,
    /// Its name.
    pub name: &'static str,
}

impl BackendCall {
    /// A monolith endpoint, `"{METHOD} {route pattern}"`.
    pub const fn monolith(name: &'static str) -> Self {
        Self { system: System::Monolith, name }
    }

    /// A gRPC method, `"{Service}/{Method}"`.
    pub const fn grpc(name: &'static str) -> Self {
        Self { system: System::Grpc, name }
    }

    /// Whether it goes to the monolith.
    pub fn is_monolith(&self) -> bool {
        self.system == System::Monolith
    }
}

impl fmt::Display for BackendCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Whether one call of an implementation can answer many keys at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Batching {
    /// One call per batch of keys (a list of 100 templates costs one call).
    Batched,
    /// One call per key: the backend cannot batch (a list of 100 templates costs 100 calls).
    OneAtATime,
}

/// One side of a migrated field: the calls it makes and whether it batches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Implementation {
    /// Every backend call this side may make (including permission checks it needs).
    pub calls: &'static [BackendCall],
    /// Whether it batches.
    pub batching: Batching,
}

/// Whether a migrated field reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Access {
    /// A read; it can be routed in any mode.
    Read,
    /// A write: it goes to one store of record, so only `legacy` or `service`.
    Write {
        /// The key of the read field whose store this write changes (`Template.draft`).
        store_of: &'static str,
        /// Whether the two stores are kept in step outside Banyan (replication, dual writes), so
        /// routing the read and the write to different backends shows no stale data.
        synchronised: bool,
    },
}

/// How timestamps at a path are truncated before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Whole minutes.
    Minute,
    /// Whole seconds.
    Second,
    /// Whole milliseconds.
    Millisecond,
    /// Whole microseconds.
    Microsecond,
}

/// Numbers closer than this compare equal (as Python's `math.isclose`): `|a - b| <= absolute` or
/// `|a - b| <= relative * max(|a|, |b|)`. Applies only when one side is not an integer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FloatTolerance {
    /// The absolute tolerance.
    pub absolute: f64,
    /// The relative tolerance.
    pub relative: f64,
}

/// RFC 3339 strings at `path` are compared after truncation to `unit` (and conversion to UTC).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimestampRule {
    /// A path pattern (see [`crate::path::PathPattern`]), e.g. `events[*].occurred_at`.
    pub path: &'static str,
    /// The unit to truncate to.
    pub unit: TimeUnit,
}

/// The list at `path` is compared as a set of items matched by their `key` field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UnorderedList {
    /// A path pattern, e.g. `blocks`.
    pub path: &'static str,
    /// The field that identifies an item, e.g. `id`.
    pub key: &'static str,
}

/// What is normalised before two answers are compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Normalisers {
    /// Path patterns left out of the comparison (`next_page_token`, `items[*].etag`).
    pub ignore: &'static [&'static str],
    /// Tolerance for numbers that are not integers; `None` compares them exactly.
    pub float_tolerance: Option<FloatTolerance>,
    /// Timestamps compared after truncation.
    pub timestamps: &'static [TimestampRule],
    /// Lists compared regardless of order.
    pub unordered: &'static [UnorderedList],
}

impl Normalisers {
    /// Compare exactly.
    pub const NONE: Self = Self { ignore: &[], float_tolerance: None, timestamps: &[], unordered: &[] };
}

/// A migrated field: one entry drives its routing, shadowing, evidence and report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FieldDeclaration {
    /// The stable key, `Type.field` (`Template.stats`, `Mutation.updateDraftBlock`).
    pub key: &'static str,
    /// One line saying what it is.
    pub description: &'static str,
    /// Read or write.
    pub access: Access,
    /// The monolith side.
    pub legacy: Implementation,
    /// The service side.
    pub service: Implementation,
    /// How the two answers are normalised before comparing.
    pub normalisers: Normalisers,
    /// Who serves it when the routing table does not name it.
    pub default_backend: Backend,
}

impl FieldDeclaration {
    /// The implementation of `backend`.
    pub fn implementation(&self, backend: Backend) -> &Implementation {
        match backend {
            Backend::Legacy => &self.legacy,
            Backend::Service => &self.service,
        }
    }

    /// Whether it is a write.
    pub fn is_write(&self) -> bool {
        matches!(self.access, Access::Write { .. })
    }
}

/// The backend calls of a resolver that is not migrated (or of the gateway itself), so the report
/// knows every monolith dependency, not only those of migrated fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The schema coordinate (`Query.me`, `Template.createdBy`), or `gateway:<what>` for the
    /// gateway's own calls (identity).
    pub coordinate: &'static str,
    /// Every call it may make.
    pub calls: &'static [BackendCall],
}

/// A validated field key: one that the catalog declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FieldKey(pub(crate) &'static str);

impl FieldKey {
    /// The key's text.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
