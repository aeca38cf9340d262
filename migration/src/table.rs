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
            problems.sort_by_key(|p| (p.location.line, p.location.column));
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
    let span = error.span().unwrap_or(0..0);
    TableError {
        problems: vec![Problem {
            location: Location::at(origin, text, span.start),
            key: entry_at(text, span),
            message: error.message().trim().to_owned(),
        }],
    }
}

/// The field key of the entry an error's `span` is in: the key inside the span (an error about a
/// whole entry spans it), else the last key before it. Found with a second, lenient parse, because
/// serde's errors do not say which map entry they are in; when the text is not even TOML, the last
/// `[fields."…"]` header before the error.
fn entry_at(text: &str, span: Range<usize>) -> Option<String> {
    let offset = span.start;
    #[derive(Deserialize)]
    struct Lenient {
        #[serde(default)]
        fields: BTreeMap<Spanned<String>, toml::Value>,
    }
    match toml::from_str::<Lenient>(text) {
        Ok(lenient) => lenient
            .fields
            .into_keys()
            .filter(|key| key.span().start < span.end.max(offset + 1))
            .max_by_key(|key| key.span().start)
            .map(Spanned::into_inner),
        Err(_) => text.get(..offset)?.lines().rev().find_map(|line| {
            let quoted = line.trim().strip_prefix("[fields.\"")?;
            let (key, rest) = quoted.split_once('"')?;
            rest.trim_start().starts_with(']').then(|| key.to_owned())
        }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::banyan().unwrap_or_else(|e| panic!("{e}"))
    }

    fn key(catalog: &Catalog, key: &str) -> FieldKey {
        catalog.key(key).unwrap_or_else(|| panic!("{key} is declared"))
    }

    fn parse(text: &str) -> Result<RoutingTable, TableError> {
        RoutingTable::parse(text, "routing.toml", &catalog())
    }

    /// The problems as `line:column key message` triples, to compare with hand-written ones.
    fn problems(text: &str) -> Vec<(usize, usize, Option<String>, String)> {
        match parse(text) {
            Ok(_) => panic!("{text} should be refused"),
            Err(error) => error
                .problems
                .into_iter()
                .map(|p| {
                    assert_eq!(&*p.location.origin, "routing.toml");
                    (p.location.line, p.location.column, p.key, p.message)
                })
                .collect(),
        }
    }

    #[test]
    fn a_full_table_parses_and_unnamed_fields_take_their_default() {
        let catalog = catalog();
        let text = r#"
[fields."Template.stats"]
mode = "canary"
percent = 20

[fields."Template.draft"]
mode = "shadow"
primary = "service"
sample_rate = 0.25
calibration_rate = 0.01
secondary_deadline = "750ms"
max_in_flight = 8
require_evidence = { min_compared = 500, max_mismatch_rate = 0.002, all_contract_operations = false }

[fields."Template.recentEvents"]
mode = "legacy"
force = true

[fields."Mutation.updateDraftBlock"]
mode = "service"
"#;
        let table = RoutingTable::parse(text, "routing.toml", &catalog).unwrap_or_else(|e| panic!("{e}"));
        let route = |k| table.route(key(&catalog, k)).unwrap_or_else(|| panic!("{k} routed"));
        assert_eq!(route("Template.stats").mode, Mode::Canary { percent: 20.0, sticky: StickyKey::User });
        assert_eq!(route("Template.stats").location.as_ref().map(|l| (l.line, l.column)), Some((2, 9)));
        assert_eq!(
            route("Template.draft").mode,
            Mode::Shadow(ShadowSettings {
                primary: Backend::Service,
                sample_rate: 0.25,
                calibration_rate: 0.01,
                secondary_deadline: Duration::from_millis(750),
                max_in_flight: 8,
            })
        );
        assert_eq!(
            route("Template.draft").require_evidence,
            Some(EvidenceRequirement {
                min_compared: 500,
                max_mismatch_rate: 0.002,
                all_contract_operations: false
            })
        );
        assert_eq!(route("Template.recentEvents").mode, Mode::Legacy);
        assert!(route("Template.recentEvents").force);
        // Not in the file: the declaration's default, and no location.
        assert_eq!(route("Mutation.deleteDraftBlock").mode, Mode::Service);
        assert_eq!(route("Mutation.deleteDraftBlock").location, None);
        assert_eq!(table.routes().count(), catalog.keys().count());
    }

    #[test]
    fn defaults_of_optional_keys() {
        let catalog = catalog();
        let table = RoutingTable::parse(
            "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nrequire_evidence = {}\n",
            "t",
            &catalog,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let route = table.route(key(&catalog, "Template.stats")).unwrap_or_else(|| panic!("routed"));
        assert_eq!(
            route.mode,
            Mode::Shadow(ShadowSettings {
                primary: Backend::Legacy,
                sample_rate: 1.0,
                calibration_rate: 0.0,
                secondary_deadline: Duration::from_secs(2),
                max_in_flight: 64,
            })
        );
        assert_eq!(
            route.require_evidence,
            Some(EvidenceRequirement {
                min_compared: 1000,
                max_mismatch_rate: 0.001,
                all_contract_operations: true
            })
        );
        assert!(!route.force);
        // An empty file is every default.
        assert!(parse("").map(|t| t.same_routes(&RoutingTable::defaults(&catalog))).unwrap_or(false));
    }

    #[test]
    fn syntax_errors_and_unknown_keys_carry_line_column_and_key() {
        // A TOML syntax error: line 3, where the value is missing.
        let found = problems("[fields.\"Template.stats\"]\nmode = \"legacy\"\npercent =\n");
        assert_eq!((found[0].0, found[0].2.as_deref()), (3, Some("Template.stats")));

        // A misspelt key inside an entry (deny_unknown_fields), on line 4.
        let found = problems("\n[fields.\"Template.draft\"]\nmode = \"canary\"\npercnt = 20\n");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0, found[0].1, found[0].2.as_deref()), (4, 1, Some("Template.draft")));
        assert!(found[0].3.contains("unknown field `percnt`"), "{}", found[0].3);

        // A misspelt key at the top level.
        let found = problems("field = 1\n");
        assert_eq!((found[0].0, found[0].1, found[0].2.clone()), (1, 1, None));
        assert!(found[0].3.contains("unknown field `field`"), "{}", found[0].3);

        // A field key that is not declared.
        let found = problems("[fields.\"Template.stat\"]\nmode = \"legacy\"\n");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0, found[0].1, found[0].2.as_deref()), (1, 9, Some("Template.stat")));
        assert!(
            found[0].3.starts_with("unknown field key; declared keys are Template.stats, "),
            "{}",
            found[0].3
        );

        // No mode.
        let found = problems("[fields.\"Template.stats\"]\npercent = 3\n");
        assert_eq!(found[0].2.as_deref(), Some("Template.stats"));
        assert!(found[0].3.contains("missing field `mode`"), "{}", found[0].3);
    }

    #[test]
    fn impossible_modes_are_refused_with_each_place() {
        let text = r#"[fields."Template.stats"]
mode = "shadow"
percent = 10

[fields."Template.draft"]
mode = "canary"

[fields."Template.recentEvents"]
mode = "blue"
"#;
        assert_eq!(
            problems(text),
            vec![
                (
                    2,
                    8,
                    Some("Template.stats".into()),
                    "mode \"shadow\" needs `primary` (\"legacy\" or \"service\")".into()
                ),
                (3, 11, Some("Template.stats".into()), "`percent` does not apply to mode \"shadow\"".into()),
                (6, 8, Some("Template.draft".into()), "mode \"canary\" needs `percent` (0 to 100)".into()),
                (
                    9,
                    8,
                    Some("Template.recentEvents".into()),
                    "unknown mode \"blue\"; expected \"legacy\", \"service\", \"canary\" or \"shadow\""
                        .into()
                ),
            ]
        );
        let ranges = r#"[fields."Template.stats"]
mode = "canary"
percent = 150
sticky = "cookie"

[fields."Template.draft"]
mode = "shadow"
primary = "both"
sample_rate = 2
secondary_deadline = "soon"
max_in_flight = 0
require_evidence = { min_compared = -1, max_mismatch_rate = 1.5 }

[fields."Template.recentEvents"]
mode = "service"
sample_rate = 0.5
"#;
        let messages: Vec<(usize, String)> =
            problems(ranges).into_iter().map(|(line, _, _, m)| (line, m)).collect();
        assert_eq!(
            messages,
            vec![
                (3, "`percent` must be between 0 and 100, not 150".to_owned()),
                (4, "`sticky` is \"user\" or \"header:<lowercase-name>\", not \"cookie\"".to_owned()),
                (8, "`primary` is \"legacy\" or \"service\", not \"both\"".to_owned()),
                (9, "`sample_rate` must be between 0 and 1, not 2".to_owned()),
                (10, "`secondary_deadline` \"soon\" is not a duration: expected number at 0".to_owned()),
                (11, "`max_in_flight` must be between 1 and 100000, not 0".to_owned()),
                (12, "`min_compared` must not be negative, not -1".to_owned()),
                (12, "`max_mismatch_rate` must be between 0 and 1, not 1.5".to_owned()),
                (16, "`sample_rate` does not apply to mode \"service\"".to_owned()),
            ]
        );
        let deadline = problems(
            "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\nsecondary_deadline = \"5m\"\n",
        );
        assert_eq!(deadline[0].3, "`secondary_deadline` must be above 0 and at most 60s");
    }

    #[test]
    fn writes_refuse_canary_and_shadow() {
        for (name, rest) in [("canary", "percent = 5"), ("shadow", "primary = \"legacy\"")] {
            let text = format!("[fields.\"Mutation.updateDraftBlock\"]\nmode = \"{name}\"\n{rest}\n");
            let found = problems(&text);
            assert!(
                found.contains(&(
                    2,
                    8,
                    Some("Mutation.updateDraftBlock".into()),
                    format!("a write goes to one store of record: its mode is \"legacy\" or \"service\", not {name:?}")
                )),
                "{found:?}"
            );
        }
        assert!(parse("[fields.\"Mutation.updateDraftBlock\"]\nmode = \"legacy\"\n").is_ok());
    }

    #[test]
    fn split_brain_warns_unless_read_and_writes_agree() {
        // The read on legacy, the writes on their default (service): three warnings.
        let table =
            parse("[fields.\"Template.draft\"]\nmode = \"legacy\"\n").unwrap_or_else(|e| panic!("{e}"));
        let warned: Vec<&str> = table.warnings().iter().filter_map(|w| w.key.as_deref()).collect();
        assert_eq!(
            warned,
            ["Mutation.updateDraftBlock", "Mutation.insertDraftBlock", "Mutation.deleteDraftBlock"]
        );
        assert_eq!(
            table.warnings()[0].message,
            "split brain: `Mutation.updateDraftBlock` writes to service but `Template.draft` (legacy) reads from \
             legacy; readers will see stale data (declare the stores synchronised if they are)"
        );
        // Located at the read's entry, as the writes are not in the file.
        assert_eq!(table.warnings()[0].location.line, 1);

        // Everything on legacy: none.
        let all_legacy = "[fields.\"Template.draft\"]\nmode = \"legacy\"\n[fields.\"Mutation.updateDraftBlock\"]\nmode = \"legacy\"\n[fields.\"Mutation.insertDraftBlock\"]\nmode = \"legacy\"\n[fields.\"Mutation.deleteDraftBlock\"]\nmode = \"legacy\"\n";
        assert!(parse(all_legacy).map(|t| t.warnings().is_empty()).unwrap_or(false));

        // A canary read serves some users from legacy while writes go to the service.
        let canary = parse("[fields.\"Template.draft\"]\nmode = \"canary\"\npercent = 50\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(canary.warnings().len(), 3);
        // Shadow with the service serving: readers read what the writes wrote.
        let shadow = parse("[fields.\"Template.draft\"]\nmode = \"shadow\"\nprimary = \"service\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(shadow.warnings().is_empty(), "{:?}", shadow.warnings());
        // The defaults are consistent.
        assert!(parse("").map(|t| t.warnings().is_empty()).unwrap_or(false));
    }

    #[test]
    fn synchronised_stores_do_not_warn() {
        use crate::declaration::{
            Access, BackendCall, Batching, FieldDeclaration, Implementation, Normalisers,
        };
        const READ: FieldDeclaration = FieldDeclaration {
            key: "T.read",
            description: "a read",
            access: Access::Read,
            legacy: Implementation {
                calls: &[BackendCall::monolith("GET /r/")],
                batching: Batching::OneAtATime,
            },
            service: Implementation { calls: &[BackendCall::grpc("S/Read")], batching: Batching::Batched },
            normalisers: Normalisers::NONE,
            default_backend: Backend::Legacy,
        };
        static FIELDS: &[FieldDeclaration] = &[
            READ,
            FieldDeclaration {
                key: "Mutation.synced",
                access: Access::Write { store_of: "T.read", synchronised: true },
                default_backend: Backend::Service,
                ..READ
            },
            FieldDeclaration {
                key: "Mutation.apart",
                access: Access::Write { store_of: "T.read", synchronised: false },
                default_backend: Backend::Service,
                ..READ
            },
        ];
        let catalog = Catalog::new(FIELDS, &[]).unwrap_or_else(|e| panic!("{e}"));
        let table = RoutingTable::parse("", "t", &catalog).unwrap_or_else(|e| panic!("{e}"));
        let warned: Vec<&str> = table.warnings().iter().filter_map(|w| w.key.as_deref()).collect();
        assert_eq!(warned, ["Mutation.apart"]);
    }

    #[test]
    fn errors_render_as_file_line_column_key_message() {
        let error = parse("[fields.\"Template.stats\"]\nmode = \"blue\"\n")
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert_eq!(
            error.to_string(),
            "routing.toml:2:8: `Template.stats`: unknown mode \"blue\"; expected \"legacy\", \"service\", \"canary\" or \"shadow\""
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let found = problems("# é é\n[fields.\"Template.stats\"]\nmode = \"legacy\" ; x\n");
        assert_eq!(found[0].0, 3);
        let found = problems("[fields.\"Template.stats\"] # ééé\nmode = \"blué\"\n");
        assert_eq!((found[0].0, found[0].1), (2, 8));
    }
}

#[cfg(test)]
mod documentation {
    use std::path::Path;

    use super::*;

    /// The example table in the repository is valid, warns of nothing, and sets every key.
    #[test]
    fn the_example_table_loads_cleanly() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("routing.example.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let table =
            RoutingTable::parse(&text, "routing.example.toml", &catalog).unwrap_or_else(|e| panic!("{e}"));
        assert!(table.warnings().is_empty(), "{:?}", table.warnings());
        for key in ROUTE_KEYS {
            let name = key.rsplit('.').next().unwrap_or(key);
            assert!(text.contains(&format!("{name} = ")), "routing.example.toml sets `{key}`");
        }
    }

    /// Every key of a route is in the README's routing-table section.
    #[test]
    fn every_key_is_in_the_readme() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let section = readme.split("## Routing table").nth(1).unwrap_or_default();
        for key in ROUTE_KEYS {
            assert!(
                section.contains(&format!("| `{key}`")),
                "README.md's routing-table section documents `{key}`"
            );
        }
    }

    /// The keys a route accepts; `the_listed_keys_are_the_parsers` keeps this list and the
    /// parser's in step.
    const ROUTE_KEYS: &[&str] = &[
        "mode",
        "percent",
        "sticky",
        "primary",
        "sample_rate",
        "calibration_rate",
        "secondary_deadline",
        "max_in_flight",
        "require_evidence.min_compared",
        "require_evidence.max_mismatch_rate",
        "require_evidence.all_contract_operations",
        "force",
    ];

    /// The parser's own list of keys (from its "expected one of" message for an unknown key)
    /// is exactly `ROUTE_KEYS`.
    #[test]
    fn the_listed_keys_are_the_parsers() {
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let accepted = |text: &str, prefix: &str| -> Vec<String> {
            let message =
                RoutingTable::parse(text, "t", &catalog).err().map(|e| e.to_string()).unwrap_or_default();
            let list = message.split("expected one of").nth(1).unwrap_or_default();
            list.split('`').skip(1).step_by(2).map(|name| format!("{prefix}{name}")).collect()
        };
        let mut keys = accepted("[fields.\"Template.stats\"]\nzzz = 1\n", "");
        keys.extend(accepted(
            "[fields.\"Template.stats\"]\nmode = \"legacy\"\nrequire_evidence = { zzz = 1 }\n",
            "require_evidence.",
        ));
        keys.retain(|key| key != "require_evidence");
        keys.sort();
        let mut expected: Vec<String> = ROUTE_KEYS.iter().map(|k| (*k).to_owned()).collect();
        expected.sort();
        assert_eq!(keys, expected);
    }
}
