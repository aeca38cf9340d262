//! The live table: the current [`RoutingTable`] behind an `Arc`, replaced whole on reload, so
//! each request takes one snapshot and a reload never splits a request.
//!
//! Reloads come from a poll of the file ([`LiveTable::watch`]) rather than from filesystem
//! events (notify): the table is a Kubernetes ConfigMap in production, which is updated by
//! swapping a `..data` symlink — inotify watches on the file itself miss that, and watching the
//! directory needs per-platform care — while a read and a hash of a small file every few seconds
//! costs nothing, sees every kind of update (symlink swap, rename, in-place write, network
//! filesystem), adds no dependency, and behaves the same in tests. A content hash, not the
//! modification time, decides whether anything changed, so a rewrite within the same second
//! (coarse mtime) is still seen and a `touch` is not a reload.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::evidence::{ContractIndex, KeyEvidence};
use crate::recorder::ShadowRecorder;
use crate::table::{Location, Problem, RoutingTable, TableError};

/// A flip refused for want of evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// The field.
    pub key: String,
    /// Where the new table sets it.
    pub location: Option<Location>,
    /// Its mode in the current table.
    pub from: &'static str,
    /// Its mode in the refused table.
    pub to: &'static str,
    /// What the evidence lacks.
    pub reasons: Vec<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        write!(
            f,
            "`{}`: flip from {} to {} refused, the evidence falls short: {}; set `force = true` to flip anyway",
            self.key,
            self.from,
            self.to,
            self.reasons.join("; ")
        )
    }
}

/// Why a table was not loaded; the last good table stays.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read routing table {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("routing table {path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: String,
    },
    /// The file does not parse or contradicts the declarations.
    #[error(transparent)]
    Invalid(#[from] TableError),
    /// It flips fields without the evidence their `require_evidence` asks for.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Refusal>),
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ReloadOutcome {
    /// The new table routes every field as the current one does; nothing was swapped.
    Unchanged,
    /// The new table is live.
    Replaced {
        /// Its warnings (split brain).
        warnings: Vec<Problem>,
        /// Fields flipped towards the service without enough evidence, accepted by `force = true`.
        forced: Vec<Refusal>,
    },
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<Catalog>,
    recorder: Arc<ShadowRecorder>,
    contract: Arc<ContractIndex>,
    current: RwLock<Arc<RoutingTable>>,
    /// Serialises reloads, so two never check evidence against the same old table.
    reloading: Mutex<ReloadStatus>,
}

/// How reloads have gone so far (for the admin page and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadStatus {
    /// Tables made live after the first.
    pub reloads: u64,
    /// Tables rejected (invalid, unreadable, or refused for want of evidence).
    pub rejections: u64,
    /// Why the last rejected table was rejected, with its place.
    pub last_rejection: Option<String>,
}

/// The routing table in force, shared by every request; cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveTable {
    inner: Arc<Inner>,
}

impl LiveTable {
    /// A live table starting with `initial`. The first table is taken as it is, without an
    /// evidence check: evidence lives in the process, so a replica that has just started has
    /// none, and the table it starts with is the one the fleet already runs.
    pub fn new(initial: RoutingTable, recorder: Arc<ShadowRecorder>, contract: Arc<ContractIndex>) -> Self {
        for warning in initial.warnings() {
            tracing::warn!(warning = %warning, "routing table");
        }
        let catalog = recorder.catalog().clone();
        Self {
            inner: Arc::new(Inner {
                catalog,
                recorder,
                contract,
                current: RwLock::new(Arc::new(initial)),
                reloading: Mutex::new(ReloadStatus::default()),
            }),
        }
    }

    /// A live table starting from the file at `path`.
    pub fn from_file(
        path: &Path,
        recorder: Arc<ShadowRecorder>,
        contract: Arc<ContractIndex>,
    ) -> Result<Self, LoadError> {
        let text = read(path)?;
        let table = RoutingTable::parse(&text, &path.display().to_string(), recorder.catalog())?;
        Ok(Self::new(table, recorder, contract))
    }

    /// The table in force. Take one per request (or WebSocket operation) and decide every field
    /// of it from that one.
    pub fn snapshot(&self) -> Arc<RoutingTable> {
        self.inner.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The catalog the table is checked against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The recorder whose evidence gates flips.
    pub fn recorder(&self) -> &Arc<ShadowRecorder> {
        &self.inner.recorder
    }

    /// The contract index evidence is joined with.
    pub fn contract(&self) -> &Arc<ContractIndex> {
        &self.inner.contract
    }

    /// Parses `text` (named `origin` in messages), checks it against the declarations and the
    /// evidence, and makes it live. On error the current table stays.
    pub fn propose(&self, text: &str, origin: &str) -> Result<ReloadOutcome, LoadError> {
        let mut status = self.inner.reloading.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = self.swap_in(text, origin);
        match &outcome {
            Ok(ReloadOutcome::Replaced { .. }) => status.reloads += 1,
            Ok(ReloadOutcome::Unchanged) => {}
            Err(error) => {
                status.rejections += 1;
                status.last_rejection = Some(error.to_string());
            }
        }
        outcome
    }

    /// How reloads have gone so far.
    pub fn status(&self) -> ReloadStatus {
        self.inner.reloading.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records a table that could not even be read, from the watcher.
    fn reject(&self, error: &LoadError) {
        let mut status = self.inner.reloading.lock().unwrap_or_else(PoisonError::into_inner);
        status.rejections += 1;
        status.last_rejection = Some(error.to_string());
    }

    fn swap_in(&self, text: &str, origin: &str) -> Result<ReloadOutcome, LoadError> {
        let table = RoutingTable::parse(text, origin, &self.inner.catalog)?;
        let current = self.snapshot();
        if table.same_routes(&current) {
            return Ok(ReloadOutcome::Unchanged);
        }
        let (refused, forced) = self.check_flips(&current, &table);
        if !refused.is_empty() {
            return Err(LoadError::Refused(refused));
        }
        for flip in &forced {
            tracing::warn!(
                key = %flip.key,
                from = flip.from,
                to = flip.to,
                location = ?flip.location.as_ref().map(ToString::to_string),
                shortfalls = %flip.reasons.join("; "),
                "routing table: flip forced (`force = true`) without the required evidence"
            );
        }
        for warning in table.warnings() {
            tracing::warn!(warning = %warning, "routing table");
        }
        let warnings = table.warnings().to_vec();
        *self.inner.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        tracing::info!(origin, "routing table reloaded");
        Ok(ReloadOutcome::Replaced { warnings, forced })
    }

    /// Reads the file at `path` and [`propose`](Self::propose)s it.
    pub fn reload_file(&self, path: &Path) -> Result<ReloadOutcome, LoadError> {
        match read(path) {
            Ok(text) => self.propose(&text, &path.display().to_string()),
            Err(error) => {
                self.reject(&error);
                Err(error)
            }
        }
    }

    /// A flip is any change that gives the service a larger share of users (to `service`, to a
    /// canary, a canary's percent raised, shadow with the service as primary). It needs the
    /// evidence of the new entry's `require_evidence`, or of the current entry's when the new
    /// one has none, so deleting the requirement in the same edit does not bypass it.
    fn check_flips(&self, current: &RoutingTable, next: &RoutingTable) -> (Vec<Refusal>, Vec<Refusal>) {
        let (mut refused, mut forced) = (Vec::new(), Vec::new());
        let mut snapshot = None;
        for route in next.routes() {
            let Some(before) = current.route(route.key) else { continue };
            if route.service_share() <= before.service_share() {
                continue;
            }
            let Some(requirement) = route.require_evidence.or(before.require_evidence) else { continue };
            let snapshot = snapshot.get_or_insert_with(|| self.inner.recorder.snapshot());
            let evidence = KeyEvidence::gather(route.key, snapshot, &self.inner.contract);
            let reasons = evidence.shortfalls(&requirement);
            if reasons.is_empty() {
                continue;
            }
            let refusal = Refusal {
                key: route.key.to_string(),
                location: route.location.clone(),
                from: before.mode_name(),
                to: route.mode_name(),
                reasons,
            };
            if route.force { forced.push(refusal) } else { refused.push(refusal) }
        }
        (refused, forced)
    }

    /// Polls the file at `path` every `interval` and reloads it when its content changes. A
    /// rejected file is logged once (with its line) and the last good table stays; a file refused
    /// for want of evidence is retried every poll, since evidence grows. Stops when the returned
    /// watcher is dropped. Needs a Tokio runtime.
    pub fn watch(&self, path: PathBuf, interval: Duration) -> TableWatcher {
        let live = self.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_seen: Option<u64> = None;
            let mut last_message: Option<String> = None;
            let mut retry = false;
            loop {
                ticker.tick().await;
                let reading = path.clone();
                let bytes = match tokio::task::spawn_blocking(move || std::fs::read(reading)).await {
                    Ok(Ok(bytes)) => bytes,
                    // The blocking task panicked or was cancelled (runtime shutting down).
                    Err(_) => continue,
                    Ok(Err(source)) => {
                        let error = LoadError::Read { path: path.display().to_string(), source };
                        let message = error.to_string();
                        if last_message.as_ref() != Some(&message) {
                            live.reject(&error);
                            tracing::error!(error = %message, "routing table not reloaded; keeping the last good table");
                            last_message = Some(message);
                        }
                        continue;
                    }
                };
                let mut hasher = DefaultHasher::new();
                bytes.hash(&mut hasher);
                let hash = hasher.finish();
                if last_seen == Some(hash) && !retry {
                    continue;
                }
                last_seen = Some(hash);
                let outcome = match String::from_utf8(bytes) {
                    Ok(text) => live.propose(&text, &path.display().to_string()),
                    Err(_) => {
                        let error = LoadError::NotText { path: path.display().to_string() };
                        live.reject(&error);
                        Err(error)
                    }
                };
                retry = matches!(outcome, Err(LoadError::Refused(_)));
                match outcome {
                    Ok(ReloadOutcome::Unchanged) => last_message = None,
                    Ok(ReloadOutcome::Replaced { .. }) => last_message = None,
                    Err(error) => {
                        let message = error.to_string();
                        if last_message.as_ref() != Some(&message) {
                            tracing::error!(error = %message, "routing table rejected; keeping the last good table");
                            last_message = Some(message);
                        }
                    }
                }
            }
        });
        TableWatcher { task }
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    let bytes =
        std::fs::read(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
    String::from_utf8(bytes).map_err(|_| LoadError::NotText { path: path.display().to_string() })
}

/// Polls a table file until dropped.
#[derive(Debug)]
pub struct TableWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TableWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::declaration::{Backend, FieldKey};
    use crate::recorder::{CallContext, RecorderConfig};
    use crate::table::Mode;

    struct Fixture {
        live: LiveTable,
        stats: FieldKey,
    }

    const SHADOW_WITH_REQUIREMENT: &str = "[fields.\"Template.stats\"]\nmode = \"shadow\"\nprimary = \"legacy\"\n\
        require_evidence = { min_compared = 10, max_mismatch_rate = 0.1, all_contract_operations = true }\n";

    fn fixture(initial: &str) -> Fixture {
        let catalog = Arc::new(Catalog::banyan().unwrap_or_else(|e| panic!("{e}")));
        let stats = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
        let recorder = Arc::new(ShadowRecorder::new(catalog.clone(), RecorderConfig::default()));
        let contract = Arc::new(ContractIndex::from_pairs([("Template.stats", "TemplateList")]));
        let table = RoutingTable::parse(initial, "initial.toml", &catalog).unwrap_or_else(|e| panic!("{e}"));
        Fixture { live: LiveTable::new(table, recorder, contract), stats }
    }

    fn mode(live: &LiveTable, key: FieldKey) -> Mode {
        live.snapshot().route(key).map(|r| r.mode.clone()).unwrap_or(Mode::Legacy)
    }

    fn compare(live: &LiveTable, key: FieldKey, operation: &str, same: bool) {
        let context = CallContext { operation: Some(operation.into()), ..CallContext::default() };
        let secondary = if same { json!(1) } else { json!(2) };
        live.recorder().record_comparison(
            key,
            &context,
            (Backend::Legacy, &json!(1), Duration::ZERO),
            (Backend::Service, &secondary, Duration::ZERO),
        );
    }

    #[test]
    fn a_bad_table_is_refused_and_the_last_good_one_stays() {
        let Fixture { live, stats } = fixture("[fields.\"Template.stats\"]\nmode = \"legacy\"\n");
        let held = live.snapshot();
        let error = live.propose("[fields.\"Template.stats\"]\nmode = \"sevice\"\n", "routing.toml");
        assert!(matches!(&error, Err(LoadError::Invalid(_))), "{error:?}");
        assert_eq!(mode(&live, stats), Mode::Legacy);
        let status = live.status();
        assert_eq!((status.reloads, status.rejections), (0, 1));
        assert!(
            status
                .last_rejection
                .as_deref()
                .is_some_and(|m| m.starts_with("routing.toml:2:8: `Template.stats`: unknown mode"))
        );

        let outcome = live.propose("[fields.\"Template.stats\"]\nmode = \"service\"\n", "routing.toml");
        assert!(matches!(outcome, Ok(ReloadOutcome::Replaced { .. })), "{outcome:?}");
        assert_eq!(mode(&live, stats), Mode::Service);
        // A snapshot taken before the reload is untouched: a request keeps its table.
        assert_eq!(held.route(stats).map(|r| &r.mode), Some(&Mode::Legacy));
        // The same routes again: nothing to swap.
        let again =
            live.propose("# a comment\n[fields.\"Template.stats\"]\nmode = \"service\"\n", "routing.toml");
        assert!(matches!(again, Ok(ReloadOutcome::Unchanged)), "{again:?}");
        assert_eq!(live.status().reloads, 1);
    }

    #[test]
    fn a_flip_without_evidence_is_refused_and_accepted_once_the_evidence_is_there() {
        let Fixture { live, stats } = fixture(SHADOW_WITH_REQUIREMENT);
        let flip = "\n[fields.\"Template.stats\"]\nmode = \"service\"\n";
        let Err(LoadError::Refused(refusals)) = live.propose(flip, "next.toml") else { panic!("refused") };
        assert_eq!(
            refusals[0].to_string(),
            "next.toml:2:9: `Template.stats`: flip from shadow to service refused, the evidence falls short: 0 calls \
             compared, 10 required; contract operation TemplateList not yet compared; set `force = true` to flip anyway"
        );
        assert!(matches!(mode(&live, stats), Mode::Shadow(_)));

        // Nine clean comparisons in an operation outside the contract and one mismatch in it:
        // enough calls, but a 10% mismatch rate in TemplateList.
        for _ in 0..9 {
            compare(&live, stats, "Adhoc", true);
        }
        compare(&live, stats, "TemplateList", false);
        let Err(LoadError::Refused(refusals)) = live.propose(flip, "next.toml") else { panic!("refused") };
        assert_eq!(refusals[0].reasons, ["contract operation TemplateList mismatches at 1.0000 (1 of 1)"]);

        for _ in 0..20 {
            compare(&live, stats, "TemplateList", true);
        }
        // 30 compared, 1 mismatch (3.3%), TemplateList at 1 of 21 (4.8%): enough.
        let outcome = live.propose(flip, "next.toml");
        assert!(
            matches!(outcome, Ok(ReloadOutcome::Replaced { ref forced, .. }) if forced.is_empty()),
            "{outcome:?}"
        );
        assert_eq!(mode(&live, stats), Mode::Service);
    }

    #[test]
    fn force_accepts_a_flip_without_evidence_and_says_so() {
        let Fixture { live, stats } = fixture(SHADOW_WITH_REQUIREMENT);
        let outcome = live
            .propose("[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = 5\nforce = true\n", "f.toml");
        let Ok(ReloadOutcome::Replaced { forced, .. }) = outcome else { panic!("accepted: {outcome:?}") };
        assert_eq!(forced.len(), 1);
        assert_eq!(
            (forced[0].key.as_str(), forced[0].from, forced[0].to),
            ("Template.stats", "shadow", "canary")
        );
        assert!(matches!(mode(&live, stats), Mode::Canary { .. }));
    }

    #[test]
    fn dropping_the_requirement_in_the_same_edit_does_not_bypass_it() {
        let Fixture { live, .. } = fixture(SHADOW_WITH_REQUIREMENT);
        assert!(matches!(
            live.propose("[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = 1\n", "t"),
            Err(LoadError::Refused(_))
        ));
    }

    #[test]
    fn only_moves_towards_the_service_need_evidence() {
        let canary = |percent| {
            format!(
                "[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = {percent}\n\
                 require_evidence = {{ min_compared = 1 }}\n"
            )
        };
        let Fixture { live, .. } = fixture(&canary(20));
        // Down, and back to legacy: always allowed.
        assert!(matches!(live.propose(&canary(10), "t"), Ok(ReloadOutcome::Replaced { .. })));
        assert!(matches!(
            live.propose(
                "[fields.\"Template.stats\"]\nmode = \"legacy\"\nrequire_evidence = { min_compared = 1 }\n",
                "t"
            ),
            Ok(ReloadOutcome::Replaced { .. })
        ));
        // Up: refused.
        assert!(matches!(live.propose(&canary(30), "t"), Err(LoadError::Refused(_))));
        // With no requirement anywhere, a flip needs nothing.
        let Fixture { live, .. } = fixture("");
        assert!(matches!(
            live.propose("[fields.\"Template.stats\"]\nmode = \"legacy\"\n", "t"),
            Ok(ReloadOutcome::Replaced { .. })
        ));
        assert!(matches!(
            live.propose("[fields.\"Template.stats\"]\nmode = \"service\"\n", "t"),
            Ok(ReloadOutcome::Replaced { .. })
        ));
    }

    /// Two fields always routed alike by every table version: a request that takes one snapshot
    /// never sees them apart, however reloads interleave.
    #[test]
    fn a_snapshot_never_mixes_two_tables() {
        let both = |mode: &str| {
            format!(
                "[fields.\"Template.stats\"]\nmode = \"{mode}\"\n[fields.\"Template.recentEvents\"]\nmode = \"{mode}\"\n"
            )
        };
        let Fixture { live, stats } = fixture(&both("legacy"));
        let events = live.catalog().key("Template.recentEvents").unwrap_or_else(|| panic!("declared"));
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let live = live.clone();
                    scope.spawn(move || {
                        let mut seen = [0u32; 2];
                        for _ in 0..20_000 {
                            let table = live.snapshot();
                            let a = table.route(stats).map(|r| r.mode.clone());
                            let b = table.route(events).map(|r| r.mode.clone());
                            assert_eq!(a, b);
                            seen[usize::from(a == Some(Mode::Service))] += 1;
                        }
                        seen
                    })
                })
                .collect();
            for i in 0..200u32 {
                let mode = if i.is_multiple_of(2) { "service" } else { "legacy" };
                assert!(live.propose(&both(mode), "t").is_ok());
            }
            for reader in readers {
                assert!(reader.join().is_ok());
            }
        });
        assert_eq!(live.status().reloads, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watcher_reloads_on_change_and_keeps_the_last_good_table() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("routing.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        write("[fields.\"Template.stats\"]\nmode = \"legacy\"\n");
        let Fixture { live, stats } = fixture("[fields.\"Template.stats\"]\nmode = \"legacy\"\n");
        let _watcher = live.watch(path.clone(), Duration::from_millis(5));

        write("[fields.\"Template.stats\"]\nmode = \"service\"\n");
        wait_for(|| mode(&live, stats) == Mode::Service).await;

        write("[fields.\"Template.stats\"]\nmode = \"servce\"\n");
        wait_for(|| live.status().rejections == 1).await;
        assert_eq!(mode(&live, stats), Mode::Service);
        let rejection = live.status().last_rejection.unwrap_or_default();
        assert!(
            rejection.starts_with(&format!("{}:2:8: `Template.stats`: unknown mode", path.display())),
            "{rejection}"
        );

        // The file goes away: counted once, the table stays.
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        wait_for(|| live.status().rejections == 2).await;
        assert_eq!(mode(&live, stats), Mode::Service);

        write("[fields.\"Template.stats\"]\nmode = \"canary\"\npercent = 10\n");
        wait_for(|| matches!(mode(&live, stats), Mode::Canary { .. })).await;
        assert_eq!(live.status().rejections, 2, "each bad state is counted once");
    }

    /// Polls `done` up to 2,000 times, 5 ms apart; the bound is generous, and the assertion is on
    /// the state reached, not on how long it took.
    async fn wait_for(done: impl Fn() -> bool) {
        for _ in 0..2_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition not reached");
    }
}
