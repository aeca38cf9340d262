//! Call counters: how often each endpoint or method of a stand-in was called, and with which
//! headers the last time.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use http::HeaderMap;

/// Traceparents kept per key: enough for any test, bounded for a long-running `banyan dev`.
const MAX_TRACEPARENTS: usize = 1024;

/// One key's counter and the headers of its last call, kept as received: they are turned into
/// text only when a test asks for them, not on every call.
#[derive(Debug, Default)]
struct Entry {
    count: AtomicU64,
    last_headers: Mutex<Option<HeaderMap>>,
    /// The `traceparent` of each call that carried one, oldest first (the first
    /// [`MAX_TRACEPARENTS`]).
    traceparents: Mutex<Vec<String>>,
}

/// Counts the requests that reached each stand-in, per endpoint and method.
///
/// Keys are `"{METHOD} {route pattern}"` for the monolith (`"GET /api/v1/templates/"`,
/// `"GET /api/v1/templates/{id}/analytics/"`, `"PATCH /api/v1/templates/{id}/"`,
/// `"GET /api/v1/templates/{id}/events/"`, `"POST /api/v1/templates/{id}/draft/blocks/"`,
/// `"PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/"`,
/// `"DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/"`), the spelling
/// `banyan_migration::calls` declares, and
/// `"{Service}/{Method}"` for gRPC (`"EventService/GetTemplateStats"`,
/// `"DraftService/BatchGetDrafts"`). Every request is counted, including those a fault then
/// fails; the `/__devstack/` admin endpoints are not. A monolith request that matches no route is
/// counted under `"{METHOD} {path as sent}"`.
///
/// Recording a call takes a shared lock on the map (exclusive only the first time a key is
/// seen), an atomic increment, and that key's own lock for the time of one header-map swap, so
/// concurrent calls to different endpoints do not wait for each other.
#[derive(Debug, Default)]
pub struct CallLog {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl CallLog {
    fn entries(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep going.
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entries_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many calls `key` received since the start or the last [`reset`](Self::reset).
    pub fn count(&self, key: &str) -> u64 {
        self.entries().get(key).map_or(0, |e| e.count.load(Ordering::Acquire))
    }

    /// Every key called at least once, with its count.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.entries()
            .iter()
            .map(|(k, e)| (k.clone(), e.count.load(Ordering::Acquire)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.entries().values().map(|e| e.count.load(Ordering::Acquire)).sum()
    }

    /// Forgets every count and every recorded header. Entries are zeroed, not removed, so a call
    /// recorded while this runs is counted either before the reset or after it, never lost.
    pub fn reset(&self) {
        for entry in self.entries().values() {
            entry.count.store(0, Ordering::Relaxed);
            *entry.last_headers.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            entry.traceparents.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        }
    }

    /// The `traceparent` (header or gRPC metadata) of every call to `key` that carried one, in
    /// order of arrival (the first 1024): `00-<trace id>-<parent span id>-<flags>`.
    pub fn traceparents(&self, key: &str) -> Vec<String> {
        let Some(entry) = self.entries().get(key).cloned() else { return Vec::new() };
        entry.traceparents.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The trace id of every call to `key` that carried a `traceparent`, in order of arrival.
    pub fn trace_ids(&self, key: &str) -> Vec<String> {
        self.traceparents(key)
            .iter()
            .filter_map(|traceparent| traceparent.split('-').nth(1).map(str::to_owned))
            .collect()
    }

    /// The headers (gRPC metadata included) of the last call to `key`: lowercase name to value;
    /// repeated headers are joined with `", "`, values that are not text are left out.
    pub fn last_headers(&self, key: &str) -> Option<BTreeMap<String, String>> {
        let entry = self.entries().get(key).cloned()?;
        let headers = entry.last_headers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let headers = headers.as_ref()?;
        let mut last_headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers.iter() {
            let Ok(value) = value.to_str() else { continue };
            last_headers
                .entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.to_string());
        }
        Some(last_headers)
    }

    /// Counts one call to `key` and remembers its headers.
    pub(crate) fn record(&self, key: &str, headers: &HeaderMap) {
        // Remember the headers before counting: a test that sees the count sees the headers.
        let known = self.entries().get(key).cloned();
        let entry = match known {
            Some(entry) => entry,
            None => self.entries_mut().entry(key.to_owned()).or_default().clone(),
        };
        if let Some(traceparent) = headers.get("traceparent").and_then(|value| value.to_str().ok()) {
            let mut traceparents =
                entry.traceparents.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if traceparents.len() < MAX_TRACEPARENTS {
                traceparents.push(traceparent.to_owned());
            }
        }
        // Cloning a header map copies no header value (they are reference-counted bytes).
        let headers = headers.clone();
        *entry.last_headers.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(headers);
        entry.count.fetch_add(1, Ordering::Release);
    }
}

/// The call-log key of a gRPC request path: `/banyan.events.v1.EventService/AppendEvents` becomes
/// `EventService/AppendEvents`.
pub(crate) fn grpc_key(path: &str) -> String {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => {
            let short = service.rsplit('.').next().unwrap_or(service);
            format!("{short}/{method}")
        }
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_keys_drop_the_package() {
        assert_eq!(
            grpc_key("/banyan.events.v1.EventService/GetTemplateStats"),
            "EventService/GetTemplateStats"
        );
        assert_eq!(grpc_key("/weird"), "weird");
    }

    #[test]
    fn counts_and_headers() {
        let log = CallLog::default();
        let mut headers = HeaderMap::new();
        headers.append("x-banyan-user-id", http::HeaderValue::from_static("7"));
        headers.append("accept", http::HeaderValue::from_static("a"));
        headers.append("accept", http::HeaderValue::from_static("b"));
        log.record("K", &headers);
        log.record("K", &headers);
        assert_eq!(log.count("K"), 2);
        assert_eq!(log.total(), 2);
        let last = log.last_headers("K").unwrap_or_default();
        assert_eq!(last.get("accept").map(String::as_str), Some("a, b"));
        assert!(log.trace_ids("K").is_empty(), "no call carried a traceparent");
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        log.record("K", &headers);
        assert_eq!(log.trace_ids("K"), ["4bf92f3577b34da6a3ce929d0e0e4736"]);
        assert_eq!(log.traceparents("K"), ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]);
        log.reset();
        assert!(log.trace_ids("K").is_empty());
        assert_eq!(log.count("K"), 0);
        assert!(log.last_headers("K").is_none());
    }

    #[test]
    fn concurrent_calls_are_all_counted() {
        let log = std::sync::Arc::new(CallLog::default());
        let headers = HeaderMap::new();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (log, headers) = (&log, &headers);
                scope.spawn(move || {
                    for _ in 0..500 {
                        log.record(if thread % 2 == 0 { "A" } else { "B" }, headers);
                    }
                });
            }
        });
        assert_eq!(log.count("A"), 1000);
        assert_eq!(log.count("B"), 1000);
        assert_eq!(log.snapshot().len(), 2);
        log.reset();
        assert!(log.snapshot().is_empty(), "a reset key is not listed");
        assert_eq!(log.total(), 0);
    }
}
