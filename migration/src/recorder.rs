//! Shadow results: counters per field and per operation, each side's latency histogram, noise
//! learned by A/A calibration, and a bounded ring of mismatch exemplars. Kept in process; a
//! [`RecorderSnapshot`] is what the admin page and (later) metrics read.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::compare::Comparison;
use crate::declaration::{Backend, FieldKey};
use crate::hash::user_hash;

/// What happened to one shadowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both answers agree after normalising (noise aside).
    Match,
    /// They differ at a path that is not noise.
    Mismatch,
    /// The secondary failed.
    SecondaryError,
    /// The secondary outlived its deadline.
    SecondaryTimeout,
    /// The secondary was not run: too many in flight, or the request went away first.
    Skipped,
    /// The primary failed, so there was nothing to compare.
    PrimaryError,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Answers that agreed.
    pub matched: u64,
    /// Of `matched`, those that differed only at noise paths.
    pub matched_with_noise: u64,
    /// Answers that differed.
    pub mismatched: u64,
    /// Secondaries that failed.
    pub secondary_errors: u64,
    /// Secondaries that timed out.
    pub secondary_timeouts: u64,
    /// Secondaries not run.
    pub skipped: u64,
    /// Primaries that failed.
    pub primary_errors: u64,
}

impl Counters {
    fn add(&mut self, outcome: Outcome, noise_only: bool) {
        match outcome {
            Outcome::Match => {
                self.matched += 1;
                self.matched_with_noise += u64::from(noise_only);
            }
            Outcome::Mismatch => self.mismatched += 1,
            Outcome::SecondaryError => self.secondary_errors += 1,
            Outcome::SecondaryTimeout => self.secondary_timeouts += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::PrimaryError => self.primary_errors += 1,
        }
    }

    /// Calls whose answers were compared: matched plus mismatched.
    pub fn compared(&self) -> u64 {
        self.matched + self.mismatched
    }
}

/// Upper bounds of the latency buckets, in milliseconds; a last bucket takes the rest.
pub const LATENCY_BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// A latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Histogram {
    /// Upper bounds in milliseconds ([`LATENCY_BUCKETS_MS`]).
    pub bounds_ms: &'static [u64],
    /// Count per bucket, not cumulative; one more than `bounds_ms` (the last is above them all).
    pub counts: Vec<u64>,
    /// Number of observations.
    pub count: u64,
    /// Sum of observations, in microseconds.
    pub sum_micros: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            bounds_ms: &LATENCY_BUCKETS_MS,
            counts: vec![0; LATENCY_BUCKETS_MS.len() + 1],
            count: 0,
            sum_micros: 0,
        }
    }
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index =
            self.bounds_ms.iter().position(|bound| micros <= bound * 1000).unwrap_or(self.bounds_ms.len());
        if let Some(slot) = self.counts.get_mut(index) {
            *slot += 1;
        }
        self.count += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }
}

/// Latency of each backend for one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Latencies {
    /// The monolith's calls (primary or secondary).
    pub legacy: Histogram,
    /// The service's calls.
    pub service: Histogram,
}

impl Latencies {
    fn of(&mut self, backend: Backend) -> &mut Histogram {
        match backend {
            Backend::Legacy => &mut self.legacy,
            Backend::Service => &mut self.service,
        }
    }
}

/// A path that differs between two identical calls of the same backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NoiseStat {
    /// A/A calibrations in which it differed.
    pub calibrations_differing: u64,
    /// A/B comparisons in which it differed and was set aside as noise.
    pub comparisons_differing: u64,
}

/// A differing path in an exemplar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExemplarDifference {
    /// Where.
    pub path: String,
    /// The primary's value; `None` when absent.
    pub primary: Option<Value>,
    /// The secondary's value; `None` when absent.
    pub secondary: Option<Value>,
    /// Whether A/A calibration knows the path as noise.
    pub noise: bool,
}

/// One recorded mismatch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exemplar {
    /// The field.
    pub key: FieldKey,
    /// The GraphQL operation's name.
    pub operation: Option<String>,
    /// The field's path in the response (`template.stats`).
    pub field_path: String,
    /// The operation's variables, redacted unless the recorder keeps them.
    pub variables: Option<Value>,
    /// [`crate::hash::user_hash`] of the user id.
    pub user_hash: Option<String>,
    /// Who served.
    pub primary: Backend,
    /// Who was compared.
    pub secondary: Backend,
    /// The differing paths.
    pub differences: Vec<ExemplarDifference>,
    /// Differences beyond those listed.
    pub omitted_differences: usize,
    /// The primary's latency in milliseconds.
    pub primary_ms: f64,
    /// The secondary's latency in milliseconds.
    pub secondary_ms: f64,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// Counts `outcome` for `operation` (anonymous when `None`); the name is copied only the first
/// time it is seen.
fn count_per_operation(
    operations: &mut BTreeMap<String, Counters>,
    operation: Option<&str>,
    outcome: Outcome,
    noise_only: bool,
) {
    let operation = operation.unwrap_or(ANONYMOUS_OPERATION);
    match operations.get_mut(operation) {
        Some(counters) => counters.add(outcome, noise_only),
        None => operations.entry(operation.to_owned()).or_default().add(outcome, noise_only),
    }
}

/// What the request tells the recorder about a shadowed call. All but the path are the
/// request's, shared: a request makes them once for all its shadowed calls.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The GraphQL operation's name (from the document, `None` when anonymous).
    pub operation: Option<Arc<str>>,
    /// The field's path in the response.
    pub field_path: String,
    /// The operation's variables.
    pub variables: Option<Arc<Value>>,
    /// The signed-in user's id (stored only hashed).
    pub user_id: Option<Arc<str>>,
}

/// How the recorder behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Mismatch exemplars kept per field (oldest dropped first).
    pub exemplars_per_key: usize,
    /// Keep variables in exemplars as sent; by default each value is replaced by `"<redacted>"`.
    pub keep_variables: bool,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self { exemplars_per_key: 32, keep_variables: false }
    }
}

/// Operation name used when the document names none.
pub const ANONYMOUS_OPERATION: &str = "(anonymous)";

#[derive(Debug, Default)]
struct KeyState {
    counters: Counters,
    operations: BTreeMap<String, Counters>,
    served: BTreeMap<Backend, u64>,
    latency: Latencies,
    calibrations: u64,
    calibrations_differing: u64,
    noise: BTreeMap<String, NoiseStat>,
    exemplars: VecDeque<Exemplar>,
}

/// One field's results.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyResults {
    /// All outcomes.
    pub counters: Counters,
    /// Outcomes per operation name.
    pub operations: BTreeMap<String, Counters>,
    /// Requests served, per backend.
    pub served: BTreeMap<Backend, u64>,
    /// Each backend's latency.
    pub latency: Latencies,
    /// A/A calibrations run.
    pub calibrations: u64,
    /// Of those, how many found a difference.
    pub calibrations_differing: u64,
    /// Noise paths (general form, `$.events[*].at`) and how often each differed.
    pub noise: BTreeMap<String, NoiseStat>,
    /// The latest mismatches, oldest first.
    pub exemplars: Vec<Exemplar>,
}

/// Every field's results at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecorderSnapshot {
    /// Per field key.
    pub keys: BTreeMap<FieldKey, KeyResults>,
}

/// Where shadow results are kept.
#[derive(Debug)]
pub struct ShadowRecorder {
    catalog: Arc<Catalog>,
    config: RecorderConfig,
    state: Mutex<BTreeMap<FieldKey, KeyState>>,
}

impl ShadowRecorder {
    /// An empty recorder for `catalog`'s fields.
    pub fn new(catalog: Arc<Catalog>, config: RecorderConfig) -> Self {
        Self { catalog, config, state: Mutex::new(BTreeMap::new()) }
    }

    /// The catalog it compares with.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<FieldKey, KeyState>> {
        // Updates are single statements on plain counters: a panic elsewhere cannot leave the
        // map half-changed, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request served by `backend` and its latency.
    pub fn record_served(&self, key: FieldKey, backend: Backend, latency: Duration) {
        let mut state = self.lock();
        let entry = state.entry(key).or_default();
        *entry.served.entry(backend).or_default() += 1;
        entry.latency.of(backend).observe(latency);
    }

    /// Counts an outcome that involved no comparison (skipped, errors, timeouts); the secondary's
    /// latency is recorded when it ran.
    pub fn record_outcome(
        &self,
        key: FieldKey,
        operation: Option<&str>,
        outcome: Outcome,
        secondary: Option<(Backend, Duration)>,
    ) {
        let mut state = self.lock();
        let entry = state.entry(key).or_default();
        entry.counters.add(outcome, false);
        count_per_operation(&mut entry.operations, operation, outcome, false);
        if let Some((backend, latency)) = secondary {
            entry.latency.of(backend).observe(latency);
        }
    }

    /// Compares a primary's and a secondary's answers, counts the outcome, and keeps an exemplar
    /// of a mismatch. Differences at noise paths are listed in the exemplar, flagged, and do not
    /// make a mismatch.
    pub fn record_comparison(
        &self,
        key: FieldKey,
        context: &CallContext,
        primary: (Backend, &Value, Duration),
        secondary: (Backend, &Value, Duration),
    ) -> Outcome {
        let comparison = match self.catalog.comparator(key) {
            Some(comparator) => comparator.compare(primary.1, secondary.1),
            None => crate::compare::Comparator::exact().compare(primary.1, secondary.1),
        };
        self.record_compared(key, context, primary.0, primary.2, secondary.0, secondary.2, &comparison)
    }

    /// Counts a comparison of two answers known to be equal (no JSON was made of them): a match,
    /// as [`record_comparison`](Self::record_comparison) would count it.
    pub fn record_match(
        &self,
        key: FieldKey,
        context: &CallContext,
        primary: (Backend, Duration),
        secondary: (Backend, Duration),
    ) -> Outcome {
        self.record_compared(
            key,
            context,
            primary.0,
            primary.1,
            secondary.0,
            secondary.1,
            &Comparison::default(),
        )
    }

    #[allow(clippy::too_many_arguments)] // private; each argument is a distinct fact
    fn record_compared(
        &self,
        key: FieldKey,
        context: &CallContext,
        primary: Backend,
        primary_latency: Duration,
        secondary: Backend,
        secondary_latency: Duration,
        comparison: &Comparison,
    ) -> Outcome {
        let mut state = self.lock();
        let entry = state.entry(key).or_default();
        entry.latency.of(secondary).observe(secondary_latency);
        let noise: BTreeSet<&str> = comparison
            .differences
            .iter()
            .map(|d| d.general_path.as_str())
            .filter(|path| entry.noise.contains_key(*path))
            .collect();
        for path in &noise {
            if let Some(stat) = entry.noise.get_mut(*path) {
                stat.comparisons_differing += 1;
            }
        }
        let real = comparison.differences.len()
            - comparison.differences.iter().filter(|d| noise.contains(d.general_path.as_str())).count();
        let outcome = if real == 0 && comparison.omitted == 0 { Outcome::Match } else { Outcome::Mismatch };
        let noise_only = outcome == Outcome::Match && !noise.is_empty();
        entry.counters.add(outcome, noise_only);
        count_per_operation(&mut entry.operations, context.operation.as_deref(), outcome, noise_only);
        if outcome == Outcome::Mismatch && self.config.exemplars_per_key > 0 {
            if entry.exemplars.len() >= self.config.exemplars_per_key {
                entry.exemplars.pop_front();
            }
            entry.exemplars.push_back(Exemplar {
                key,
                operation: context.operation.as_deref().map(str::to_owned),
                field_path: context.field_path.clone(),
                variables: context
                    .variables
                    .as_deref()
                    .map(|v| if self.config.keep_variables { v.clone() } else { redact(v) }),
                user_hash: context.user_id.as_deref().map(user_hash),
                primary,
                secondary,
                differences: comparison
                    .differences
                    .iter()
                    .map(|d| ExemplarDifference {
                        path: d.path.clone(),
                        primary: d.left.clone(),
                        secondary: d.right.clone(),
                        noise: noise.contains(d.general_path.as_str()),
                    })
                    .collect(),
                omitted_differences: comparison.omitted,
                primary_ms: millis(primary_latency),
                secondary_ms: millis(secondary_latency),
                at: Utc::now(),
            });
        }
        outcome
    }

    /// Learns noise from two answers of the same backend to the same request (A/A): every path
    /// where they differ is noise from now on. Returns the paths found.
    pub fn record_calibration(&self, key: FieldKey, first: &Value, second: &Value) -> Vec<String> {
        let comparison = match self.catalog.comparator(key) {
            Some(comparator) => comparator.compare(first, second),
            None => crate::compare::Comparator::exact().compare(first, second),
        };
        let paths: BTreeSet<String> = comparison.differences.into_iter().map(|d| d.general_path).collect();
        let mut state = self.lock();
        let entry = state.entry(key).or_default();
        entry.calibrations += 1;
        entry.calibrations_differing += u64::from(!paths.is_empty());
        for path in &paths {
            let stat = entry.noise.entry(path.clone()).or_default();
            if stat.calibrations_differing == 0 {
                tracing::info!(key = %key, path = %path, "A/A calibration found a noise path; it no longer counts as a mismatch");
            }
            stat.calibrations_differing += 1;
        }
        paths.into_iter().collect()
    }

    /// Every field's results now.
    pub fn snapshot(&self) -> RecorderSnapshot {
        let state = self.lock();
        let keys = state
            .iter()
            .map(|(key, s)| {
                (
                    *key,
                    KeyResults {
                        counters: s.counters,
                        operations: s.operations.clone(),
                        served: s.served.clone(),
                        latency: s.latency.clone(),
                        calibrations: s.calibrations,
                        calibrations_differing: s.calibrations_differing,
                        noise: s.noise.clone(),
                        exemplars: s.exemplars.iter().cloned().collect(),
                    },
                )
            })
            .collect();
        RecorderSnapshot { keys }
    }
}

fn millis(latency: Duration) -> f64 {
    latency.as_secs_f64() * 1000.0
}

/// Keeps the shape of variables (keys, list lengths) and hides every value.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), redact(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::Null => Value::Null,
        _ => Value::String("<redacted>".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn recorder(config: RecorderConfig) -> (ShadowRecorder, FieldKey) {
        let catalog = Arc::new(Catalog::banyan().unwrap_or_else(|e| panic!("{e}")));
        let key = catalog.key("Template.draft").unwrap_or_else(|| panic!("declared"));
        (ShadowRecorder::new(catalog, config), key)
    }

    fn context(operation: &str) -> CallContext {
        CallContext {
            operation: Some(operation.into()),
            field_path: "template.draft".to_owned(),
            variables: Some(Arc::new(json!({"id": "VGVtcGxhdGU6MQ==", "n": 3, "list": ["a", null]}))),
            user_id: Some("7".into()),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn outcomes_are_counted_per_field_and_operation_and_mismatches_kept_as_exemplars() {
        let (recorder, key) = recorder(RecorderConfig::default());
        let legacy = json!({"version": 3, "blocks": [{"id": "b1", "content": "hello"}]});
        let service = json!({"version": 3, "blocks": [{"id": "b1", "content": "hullo"}]});
        let m = |r: &ShadowRecorder, op, s: &Value| {
            r.record_comparison(
                key,
                &context(op),
                (Backend::Legacy, &legacy, 2 * MS),
                (Backend::Service, s, 30 * MS),
            )
        };
        assert_eq!(m(&recorder, "TemplateEditor", &legacy.clone()), Outcome::Match);
        assert_eq!(m(&recorder, "TemplateEditor", &service), Outcome::Mismatch);
        assert_eq!(m(&recorder, "DraftOnly", &legacy.clone()), Outcome::Match);
        recorder.record_outcome(
            key,
            Some("TemplateEditor"),
            Outcome::SecondaryTimeout,
            Some((Backend::Service, 300 * MS)),
        );
        recorder.record_outcome(key, None, Outcome::Skipped, None);
        recorder.record_outcome(
            key,
            Some("DraftOnly"),
            Outcome::SecondaryError,
            Some((Backend::Service, MS)),
        );

        let snapshot = recorder.snapshot();
        let results = &snapshot.keys[&key];
        assert_eq!(
            results.counters,
            Counters {
                matched: 2,
                mismatched: 1,
                secondary_timeouts: 1,
                skipped: 1,
                secondary_errors: 1,
                ..Counters::default()
            }
        );
        assert_eq!(
            results.operations["TemplateEditor"],
            Counters { matched: 1, mismatched: 1, secondary_timeouts: 1, ..Counters::default() }
        );
        assert_eq!(
            results.operations["DraftOnly"],
            Counters { matched: 1, secondary_errors: 1, ..Counters::default() }
        );
        assert_eq!(results.operations[ANONYMOUS_OPERATION], Counters { skipped: 1, ..Counters::default() });
        // Three compared service answers plus the timeout and the error; no legacy latencies
        // here because serving is recorded by `record_served`.
        assert_eq!(results.latency.service.count, 5);
        assert_eq!(results.latency.legacy.count, 0);

        assert_eq!(results.exemplars.len(), 1);
        let exemplar = &results.exemplars[0];
        assert_eq!(exemplar.operation.as_deref(), Some("TemplateEditor"));
        assert_eq!(exemplar.field_path, "template.draft");
        assert_eq!(
            exemplar.variables,
            Some(json!({"id": "<redacted>", "n": "<redacted>", "list": ["<redacted>", null]}))
        );
        // The Python transcription of the hash gives 0xda5eb1ad67c4e20e for user "7".
        assert_eq!(exemplar.user_hash.as_deref(), Some("da5eb1ad67c4e20e"));
        assert_eq!((exemplar.primary, exemplar.secondary), (Backend::Legacy, Backend::Service));
        assert_eq!(
            exemplar.differences,
            vec![ExemplarDifference {
                path: "$.blocks[0].content".into(),
                primary: Some(json!("hello")),
                secondary: Some(json!("hullo")),
                noise: false
            }]
        );
        assert_eq!((exemplar.primary_ms, exemplar.secondary_ms), (2.0, 30.0));
    }

    #[test]
    fn variables_are_kept_only_when_configured() {
        let (recorder, key) = recorder(RecorderConfig { keep_variables: true, ..RecorderConfig::default() });
        recorder.record_comparison(
            key,
            &context("Op"),
            (Backend::Legacy, &json!(1), MS),
            (Backend::Service, &json!(2), MS),
        );
        let snapshot = recorder.snapshot();
        assert_eq!(snapshot.keys[&key].exemplars[0].variables, context("Op").variables.as_deref().cloned());
    }

    #[test]
    fn the_exemplar_ring_keeps_the_latest() {
        let (recorder, key) = recorder(RecorderConfig { exemplars_per_key: 3, keep_variables: false });
        for i in 0..5 {
            recorder.record_comparison(
                key,
                &context(&format!("Op{i}")),
                (Backend::Legacy, &json!(i), MS),
                (Backend::Service, &json!(-1), MS),
            );
        }
        let snapshot = recorder.snapshot();
        let kept: Vec<Option<&str>> =
            snapshot.keys[&key].exemplars.iter().map(|e| e.operation.as_deref()).collect();
        assert_eq!(kept, [Some("Op2"), Some("Op3"), Some("Op4")]);
        assert_eq!(snapshot.keys[&key].counters.mismatched, 5);
    }

    #[test]
    fn calibrated_noise_is_reported_and_kept_out_of_mismatches() {
        let (recorder, key) = recorder(RecorderConfig::default());
        let a =
            json!({"generated": "t1", "events": [{"id": 1, "nonce": "x"}, {"id": 2, "nonce": "y"}], "n": 1});
        // A/A with identical answers learns nothing.
        assert!(recorder.record_calibration(key, &a, &a.clone()).is_empty());
        // A/A whose answers differ in `generated` and in one event's nonce.
        let b =
            json!({"generated": "t2", "events": [{"id": 1, "nonce": "x"}, {"id": 2, "nonce": "z"}], "n": 1});
        assert_eq!(recorder.record_calibration(key, &a, &b), vec!["$.events[*].nonce", "$.generated"]);

        // A/B differing only at noise paths (another position of the list): a match, noted.
        let c =
            json!({"generated": "t3", "events": [{"id": 1, "nonce": "q"}, {"id": 2, "nonce": "y"}], "n": 1});
        let outcome = recorder.record_comparison(
            key,
            &context("Op"),
            (Backend::Legacy, &a, MS),
            (Backend::Service, &c, MS),
        );
        assert_eq!(outcome, Outcome::Match);
        // A/B differing at noise and at `n`: a mismatch, the noise still shown, flagged.
        let d =
            json!({"generated": "t4", "events": [{"id": 1, "nonce": "x"}, {"id": 2, "nonce": "y"}], "n": 2});
        let outcome = recorder.record_comparison(
            key,
            &context("Op"),
            (Backend::Legacy, &a, MS),
            (Backend::Service, &d, MS),
        );
        assert_eq!(outcome, Outcome::Mismatch);

        let snapshot = recorder.snapshot();
        let results = &snapshot.keys[&key];
        assert_eq!((results.calibrations, results.calibrations_differing), (2, 1));
        assert_eq!(
            results.counters,
            Counters { matched: 1, matched_with_noise: 1, mismatched: 1, ..Counters::default() }
        );
        assert_eq!(
            results.noise,
            [
                (
                    "$.events[*].nonce".to_owned(),
                    NoiseStat { calibrations_differing: 1, comparisons_differing: 1 }
                ),
                ("$.generated".to_owned(), NoiseStat { calibrations_differing: 1, comparisons_differing: 2 }),
            ]
            .into_iter()
            .collect()
        );
        let flagged: Vec<(&str, bool)> =
            results.exemplars[0].differences.iter().map(|d| (d.path.as_str(), d.noise)).collect();
        assert_eq!(flagged, [("$.generated", true), ("$.n", false)]);
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let mut histogram = Histogram::default();
        for micros in [500, 1_000, 1_001, 2_000, 20_000_000] {
            histogram.observe(Duration::from_micros(micros));
        }
        assert_eq!(histogram.counts[0], 2, "≤ 1 ms");
        assert_eq!(histogram.counts[1], 2, "≤ 2 ms");
        assert_eq!(histogram.counts[LATENCY_BUCKETS_MS.len()], 1, "above 10 s");
        assert_eq!(histogram.counts.iter().sum::<u64>(), 5);
        assert_eq!((histogram.count, histogram.sum_micros), (5, 20_004_501));
    }
}
