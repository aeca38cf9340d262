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
    reloading: Mutex<()>,
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
                reloading: Mutex::new(()),
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
        let _reloading = self.inner.reloading.lock().unwrap_or_else(PoisonError::into_inner);
        let table = RoutingTable::parse(text, origin, &self.inner.catalog)?;
        let current = self.snapshot();
        if table.same_routes(&current) {
            return Ok(ReloadOutcome::Unchanged);
        }
        let (refused, forced) = self.check_flips(&current, &table);
        if !refused.is_empty() {
            return Err(LoadError::Refused(refused));
        }
        for refusal in &forced {
            tracing::warn!(forced = %refusal, "routing table: flip forced without the required evidence");
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
        let text = read(path)?;
        self.propose(&text, &path.display().to_string())
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
                    Ok(Err(error)) => {
                        let message = format!("cannot read routing table {}: {error}", path.display());
                        if last_message.as_ref() != Some(&message) {
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
                    Err(_) => Err(LoadError::NotText { path: path.display().to_string() }),
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
