//! The routing table: a TOML file giving each migrated field a mode, parsed with line numbers and
//! checked against the catalog.
//!
//! ```toml
//! [fields."Template.stats"]
//! mode = "canary"
//! percent = 20
//!
//! [fields."Template.draft"]
//! mode = "shadow"
//! primary = "legacy"
//! sample_rate = 0.1
//! require_evidence = { min_compared = 1000, max_mismatch_rate = 0.001, all_contract_operations = true }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::Catalog;
use crate::declaration::{Access, Backend, FieldKey};
use crate::hash::{BUCKETS, share_to_buckets};

/// Default of `sample_rate`: compare every request.
pub const DEFAULT_SAMPLE_RATE: f64 = 1.0;
/// Default of `calibration_rate`: no A/A calls.
pub const DEFAULT_CALIBRATION_RATE: f64 = 0.0;
/// Default of `secondary_deadline`.
pub const DEFAULT_SECONDARY_DEADLINE: Duration = Duration::from_secs(2);
/// Default of `max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Largest `max_in_flight` accepted.
pub const MAX_IN_FLIGHT_LIMIT: usize = 100_000;
/// Longest `secondary_deadline` accepted.
pub const MAX_SECONDARY_DEADLINE: Duration = Duration::from_secs(60);
/// Default of `require_evidence.min_compared`.
pub const DEFAULT_MIN_COMPARED: u64 = 1000;
/// Default of `require_evidence.max_mismatch_rate`.
pub const DEFAULT_MAX_MISMATCH_RATE: f64 = 0.001;

/// A place in a table file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file (or whatever the text came from).
    #[serde(serialize_with = "serialize_str")]
    pub origin: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    fn at(origin: &Arc<str>, text: &str, offset: usize) -> Self {
        let before = text.get(..offset.min(text.len())).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self { origin: origin.clone(), line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// One thing wrong (or worth a warning) in a table file: where, which key, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where.
    pub location: Location,
    /// The field key of the entry it is in, when known.
    pub key: Option<String>,
    /// What.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: `{key}`: {}", self.location, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

/// A table file that cannot be used; every problem found, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct TableError {
    /// What is wrong, in file order.
    pub problems: Vec<Problem>,
}

fn render_problems(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// What a canary hashes to keep each user on one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StickyKey {
    /// The signed-in user's id (the default).
    User,
    /// A request header's value (`header:x-tenant-id`).
    Header(String),
}

/// How a field is routed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Mode {
    /// Always the monolith.
    Legacy,
    /// Always the service.
    Service,
    /// The service for `percent`% of users, the same users every time.
    Canary {
        /// Share of users on the service, 0 to 100.
        percent: f64,
        /// What identifies a user.
        sticky: StickyKey,
    },
    /// The primary serves; the other is called beside it on a sample and compared.
    Shadow(ShadowSettings),
}

/// The settings of a field in shadow mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowSettings {
    /// Who serves the response.
    pub primary: Backend,
    /// Share of requests on which the other backend is also called and compared, 0 to 1.
    pub sample_rate: f64,
    /// Share of requests on which the primary is called twice to learn its noise (A/A), 0 to 1.
    pub calibration_rate: f64,
    /// How long the secondary may take before it counts as a timeout.
    #[serde(serialize_with = "serialize_duration")]
    pub secondary_deadline: Duration,
    /// Most secondary calls of this field running at once; more are skipped and counted.
    pub max_in_flight: usize,
}

fn serialize_str<S: serde::Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(text)
}

fn serialize_duration<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*duration))
}

/// What a flip of this field to `service` or `canary` needs to have been seen in shadow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvidenceRequirement {
    /// Fewest compared calls.
    pub min_compared: u64,
    /// Highest share of compared calls that mismatched, 0 to 1.
    pub max_mismatch_rate: f64,
    /// Whether every contract operation that selects the field must have been compared, each
    /// within `max_mismatch_rate`.
    pub all_contract_operations: bool,
}

/// One field's route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// The field.
    pub key: FieldKey,
    /// Its mode.
    #[serde(flatten)]
    pub mode: Mode,
    /// Evidence a flip to `service` or `canary` needs.
    pub require_evidence: Option<EvidenceRequirement>,
    /// Whether a flip without the evidence is accepted (and logged).
    pub force: bool,
    /// Where the table sets it; `None` when the table leaves it to the declaration's default.
    pub location: Option<Location>,
}

impl Route {
    /// The share of users the service answers, 0 to 1 (shadow: the primary's share).
    pub fn service_share(&self) -> f64 {
        match &self.mode {
            Mode::Legacy => 0.0,
            Mode::Service => 1.0,
            Mode::Canary { percent, .. } => percent / 100.0,
            Mode::Shadow(settings) => match settings.primary {
                Backend::Legacy => 0.0,
                Backend::Service => 1.0,
            },
        }
    }

    /// The backends that may answer a request (serve it, or shadow it).
    pub fn backends_called(&self) -> Vec<Backend> {
        match &self.mode {
            Mode::Legacy => vec![Backend::Legacy],
            Mode::Service => vec![Backend::Service],
            Mode::Canary { percent, .. } if *percent <= 0.0 => vec![Backend::Legacy],
            Mode::Canary { percent, .. } if *percent >= 100.0 => vec![Backend::Service],
            Mode::Canary { .. } => vec![Backend::Legacy, Backend::Service],
            Mode::Shadow(s) if s.sample_rate <= 0.0 => vec![s.primary],
            Mode::Shadow(_) => vec![Backend::Legacy, Backend::Service],
        }
    }

    /// The backends whose answers reach clients.
    pub fn backends_serving(&self) -> Vec<Backend> {
        match &self.mode {
            Mode::Shadow(s) => vec![s.primary],
            _ => self.backends_called(),
        }
    }

    /// The mode's name as in the file.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Legacy => "legacy",
            Mode::Service => "service",
            Mode::Canary { .. } => "canary",
            Mode::Shadow(_) => "shadow",
        }
    }

    pub(crate) fn canary_buckets(percent: f64) -> u32 {
        share_to_buckets(percent / 100.0).min(BUCKETS)
    }
}

/// A parsed, checked routing table: a route for every declared field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingTable {
    #[serde(serialize_with = "serialize_str")]
    origin: Arc<str>,
    routes: BTreeMap<FieldKey, Route>,
    warnings: Vec<Problem>,
}

impl RoutingTable {
    /// Every field on its declaration's default backend.
    pub fn defaults(catalog: &Catalog) -> Self {
        let routes =
            catalog.fields().filter_map(|f| catalog.key(f.key)).map(|key| (key, default_route(catalog, key)));
        Self { origin: Arc::from("(defaults)"), routes: routes.collect(), warnings: Vec::new() }
    }

    /// Parses and checks `text`, naming it `origin` (the file path) in errors and warnings.
    pub fn parse(text: &str, origin: &str, catalog: &Catalog) -> Result<Self, TableError> {
        let origin: Arc<str> = Arc::from(origin);
        let raw: RawTable = toml::from_str(text).map_err(|error| syntax_error(text, &origin, &error))?;
        let mut problems = Vec::new();
        let mut routes = BTreeMap::new();
        for (name, entry) in raw.fields {
            let key_location = Location::at(&origin, text, name.span().start);
            let Some(key) = catalog.key(name.get_ref()) else {
                let known: Vec<&str> = catalog.keys().map(FieldKey::as_str).collect();
                problems.push(Problem {
                    location: key_location,
                    key: Some(name.get_ref().clone()),
                    message: format!("unknown field key; declared keys are {}", known.join(", ")),
                });
                continue;
            };
            let mut check =
                EntryCheck { text, origin: &origin, key: name.get_ref(), problems: &mut problems };
            if let Some(route) = check.route(catalog, key, entry.into_inner(), key_location) {
                routes.insert(key, route);
            }
        }
        if !problems.is_empty() {
            return Err(TableError { problems });
        }
        for key in catalog.keys() {
            routes.entry(key).or_insert_with(|| default_route(catalog, key));
        }
        let warnings = split_brain_warnings(catalog, &routes, &origin);
        Ok(Self { origin, routes, warnings })
    }

    /// The route of `key`.
    pub fn route(&self, key: FieldKey) -> Option<&Route> {
        self.routes.get(&key)
    }

    /// Every route, by key.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }

    /// Warnings found while checking (split brain), each with its place.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Where the table came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether `other` routes every field the same way (places and warnings aside).
    pub fn same_routes(&self, other: &Self) -> bool {
        self.routes.len() == other.routes.len()
            && self.routes.iter().zip(&other.routes).all(|((k1, a), (k2, b))| {
                k1 == k2 && a.mode == b.mode && a.require_evidence == b.require_evidence && a.force == b.force
            })
    }
}

fn default_route(catalog: &Catalog, key: FieldKey) -> Route {
    let backend = catalog.declaration(key).map_or(Backend::Legacy, |d| d.default_backend);
    let mode = match backend {
        Backend::Legacy => Mode::Legacy,
        Backend::Service => Mode::Service,
    };
    Route { key, mode, require_evidence: None, force: false, location: None }
}

/// A read field routed to one store while a write of that store goes to the other: readers see
/// stale data. Warned, not refused, because it is a legitimate step when stores are synchronised
/// by means Banyan cannot see; declarations say so with `synchronised: true`.
fn split_brain_warnings(
    catalog: &Catalog,
    routes: &BTreeMap<FieldKey, Route>,
    origin: &Arc<str>,
) -> Vec<Problem> {
    let mut warnings = Vec::new();
    for write in catalog.fields() {
        let Access::Write { store_of, synchronised: false } = write.access else { continue };
        let (Some(write_key), Some(read_key)) = (catalog.key(write.key), catalog.key(store_of)) else {
            continue;
        };
        let (Some(write_route), Some(read_route)) = (routes.get(&write_key), routes.get(&read_key)) else {
            continue;
        };
        let writes_to = write_route.backends_serving();
        let reads_from = read_route.backends_serving();
        if reads_from.iter().any(|backend| !writes_to.contains(backend)) {
            let location = write_route
                .location
                .clone()
                .or_else(|| read_route.location.clone())
                .unwrap_or(Location { origin: origin.clone(), line: 1, column: 1 });
            warnings.push(Problem {
                location,
                key: Some(write.key.to_owned()),
                message: format!(
                    "split brain: `{}` writes to {} but `{store_of}` ({}) reads from {}; readers will see stale \
                     data (declare the stores synchronised if they are)",
                    write.key,
                    names(&writes_to),
                    read_route.mode_name(),
                    names(&reads_from),
                ),
            });
        }
    }
    warnings
}

fn names(backends: &[Backend]) -> String {
    backends.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(" and ")
}

fn syntax_error(text: &str, origin: &Arc<str>, error: &toml::de::Error) -> TableError {
    let offset = error.span().map_or(0, |span| span.start);
    TableError {
        problems: vec![Problem {
            location: Location::at(origin, text, offset),
            key: entry_at(text, offset),
            message: error.message().trim().to_owned(),
        }],
    }
}

/// The field key of the entry holding byte `offset`: the last key that starts before it. Found
/// with a second, lenient parse, because serde's errors do not say which map entry they are in.
fn entry_at(text: &str, offset: usize) -> Option<String> {
    #[derive(Deserialize)]
    struct Lenient {
        #[serde(default)]
        fields: BTreeMap<Spanned<String>, toml::Value>,
    }
    let lenient: Lenient = toml::from_str(text).ok()?;
    lenient
        .fields
        .into_keys()
        .filter(|key| key.span().start <= offset)
        .max_by_key(|key| key.span().start)
        .map(Spanned::into_inner)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    mode: Spanned<String>,
    percent: Option<Spanned<f64>>,
    sticky: Option<Spanned<String>>,
    primary: Option<Spanned<String>>,
    sample_rate: Option<Spanned<f64>>,
    calibration_rate: Option<Spanned<f64>>,
    secondary_deadline: Option<Spanned<String>>,
    max_in_flight: Option<Spanned<i64>>,
    require_evidence: Option<Spanned<RawEvidence>>,
    force: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    min_compared: Option<Spanned<i64>>,
    max_mismatch_rate: Option<Spanned<f64>>,
    all_contract_operations: Option<bool>,
}

struct EntryCheck<'a> {
    text: &'a str,
    origin: &'a Arc<str>,
    key: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl EntryCheck<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            location: Location::at(self.origin, self.text, span.start),
            key: Some(self.key.to_owned()),
            message: message.into(),
        });
    }

    fn route(
        &mut self,
        catalog: &Catalog,
        key: FieldKey,
        raw: RawRoute,
        location: Location,
    ) -> Option<Route> {
        let before = self.problems.len();
        let mode_span = raw.mode.span();
        let mode_name = raw.mode.get_ref().as_str();
        // Which optional keys each mode takes; any other is an impossible combination.
        let allowed: &[&str] = match mode_name {
            "legacy" | "service" => &[],
            "canary" => &["percent", "sticky"],
            "shadow" => {
                &["primary", "sample_rate", "calibration_rate", "secondary_deadline", "max_in_flight"]
            }
            other => {
                self.problem(
                    mode_span.clone(),
                    format!(
                        "unknown mode {other:?}; expected \"legacy\", \"service\", \"canary\" or \"shadow\""
                    ),
                );
                return None;
            }
        };
        let present: [(&str, Option<Range<usize>>); 7] = [
            ("percent", raw.percent.as_ref().map(Spanned::span)),
            ("sticky", raw.sticky.as_ref().map(Spanned::span)),
            ("primary", raw.primary.as_ref().map(Spanned::span)),
            ("sample_rate", raw.sample_rate.as_ref().map(Spanned::span)),
            ("calibration_rate", raw.calibration_rate.as_ref().map(Spanned::span)),
            ("secondary_deadline", raw.secondary_deadline.as_ref().map(Spanned::span)),
            ("max_in_flight", raw.max_in_flight.as_ref().map(Spanned::span)),
        ];
        for (name, span) in present {
            if let Some(span) = span
                && !allowed.contains(&name)
            {
                self.problem(span, format!("`{name}` does not apply to mode {mode_name:?}"));
            }
        }
        let is_write = catalog.declaration(key).is_some_and(|d| d.is_write());
        if is_write && matches!(mode_name, "canary" | "shadow") {
            self.problem(
                mode_span.clone(),
                format!(
                    "a write goes to one store of record: its mode is \"legacy\" or \"service\", not {mode_name:?}"
                ),
            );
        }
        let mode = match mode_name {
            "legacy" => Mode::Legacy,
            "service" => Mode::Service,
            "canary" => self.canary(&raw, mode_span),
            _ => self.shadow(&raw, mode_span),
        };
        let require_evidence = raw.require_evidence.map(|raw| self.evidence(raw.into_inner()));
        if self.problems.len() > before {
            return None;
        }
        Some(Route {
            key,
            mode,
            require_evidence,
            force: raw.force.is_some_and(|force| *force.get_ref()),
            location: Some(location),
        })
    }

    fn canary(&mut self, raw: &RawRoute, mode_span: Range<usize>) -> Mode {
        let percent = match &raw.percent {
            Some(p) if p.get_ref().is_finite() && (0.0..=100.0).contains(p.get_ref()) => *p.get_ref(),
            Some(p) => {
                self.problem(p.span(), format!("`percent` must be between 0 and 100, not {}", p.get_ref()));
                0.0
            }
            None => {
                self.problem(mode_span, "mode \"canary\" needs `percent` (0 to 100)");
                0.0
            }
        };
        let sticky = match &raw.sticky {
            None => StickyKey::User,
            Some(s) => match s.get_ref().as_str() {
                "user" => StickyKey::User,
                text => match text.strip_prefix("header:") {
                    Some(name) if is_header_name(name) => StickyKey::Header(name.to_owned()),
                    _ => {
                        self.problem(
                            s.span(),
                            format!("`sticky` is \"user\" or \"header:<lowercase-name>\", not {text:?}"),
                        );
                        StickyKey::User
                    }
                },
            },
        };
        Mode::Canary { percent, sticky }
    }

    fn shadow(&mut self, raw: &RawRoute, mode_span: Range<usize>) -> Mode {
        let primary = match &raw.primary {
            Some(p) => Backend::parse(p.get_ref()).unwrap_or_else(|| {
                self.problem(
                    p.span(),
                    format!("`primary` is \"legacy\" or \"service\", not {:?}", p.get_ref()),
                );
                Backend::Legacy
            }),
            None => {
                self.problem(mode_span, "mode \"shadow\" needs `primary` (\"legacy\" or \"service\")");
                Backend::Legacy
            }
        };
        let sample_rate = self.rate("sample_rate", raw.sample_rate.as_ref(), DEFAULT_SAMPLE_RATE);
        let calibration_rate =
            self.rate("calibration_rate", raw.calibration_rate.as_ref(), DEFAULT_CALIBRATION_RATE);
        let secondary_deadline = match &raw.secondary_deadline {
            None => DEFAULT_SECONDARY_DEADLINE,
            Some(text) => match humantime::parse_duration(text.get_ref()) {
                Ok(d) if !d.is_zero() && d <= MAX_SECONDARY_DEADLINE => d,
                Ok(_) => {
                    self.problem(text.span(), "`secondary_deadline` must be above 0 and at most 60s");
                    DEFAULT_SECONDARY_DEADLINE
                }
                Err(e) => {
                    self.problem(
                        text.span(),
                        format!("`secondary_deadline` {:?} is not a duration: {e}", text.get_ref()),
                    );
                    DEFAULT_SECONDARY_DEADLINE
                }
            },
        };
        let max_in_flight = match &raw.max_in_flight {
            None => DEFAULT_MAX_IN_FLIGHT,
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(n) if (1..=MAX_IN_FLIGHT_LIMIT).contains(&n) => n,
                _ => {
                    self.problem(
                        n.span(),
                        format!(
                            "`max_in_flight` must be between 1 and {MAX_IN_FLIGHT_LIMIT}, not {}",
                            n.get_ref()
                        ),
                    );
                    DEFAULT_MAX_IN_FLIGHT
                }
            },
        };
        Mode::Shadow(ShadowSettings {
            primary,
            sample_rate,
            calibration_rate,
            secondary_deadline,
            max_in_flight,
        })
    }

    fn rate(&mut self, name: &str, value: Option<&Spanned<f64>>, default: f64) -> f64 {
        match value {
            None => default,
            Some(v) if v.get_ref().is_finite() && (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.problem(v.span(), format!("`{name}` must be between 0 and 1, not {}", v.get_ref()));
                default
            }
        }
    }

    fn evidence(&mut self, raw: RawEvidence) -> EvidenceRequirement {
        let min_compared = match raw.min_compared {
            None => DEFAULT_MIN_COMPARED,
            Some(n) => u64::try_from(*n.get_ref()).unwrap_or_else(|_| {
                self.problem(n.span(), format!("`min_compared` must not be negative, not {}", n.get_ref()));
                DEFAULT_MIN_COMPARED
            }),
        };
        let max_mismatch_rate =
            self.rate("max_mismatch_rate", raw.max_mismatch_rate.as_ref(), DEFAULT_MAX_MISMATCH_RATE);
        EvidenceRequirement {
            min_compared,
            max_mismatch_rate,
            all_contract_operations: raw.all_contract_operations.unwrap_or(true),
        }
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
