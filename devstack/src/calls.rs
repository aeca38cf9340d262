//! Call counters: how often each endpoint or method of a stand-in was called, with which
//! headers the last time, and the W3C trace context of every call (so tests can follow a trace
//! from the gateway into the backends).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use http::HeaderMap;

/// Traceparents kept per key: enough for any test, bounded for a long-running `banyan dev`.
const MAX_TRACEPARENTS: usize = 1024;

#[derive(Debug, Default)]
struct Entry {
    count: u64,
    last_headers: BTreeMap<String, String>,
    /// The `traceparent` of each call that carried one, oldest first (the first
    /// [`MAX_TRACEPARENTS`]).
    traceparents: Vec<String>,
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
#[derive(Debug, Default)]
pub struct CallLog {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl CallLog {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep going.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many calls `key` received since the start or the last [`reset`](Self::reset).
    pub fn count(&self, key: &str) -> u64 {
        self.lock().get(key).map_or(0, |e| e.count)
    }

    /// Every key called at least once, with its count.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().iter().map(|(k, e)| (k.clone(), e.count)).collect()
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.lock().values().map(|e| e.count).sum()
    }

    /// Forgets every count and every recorded header.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// The headers (gRPC metadata included) of the last call to `key`: lowercase name to value;
    /// repeated headers are joined with `", "`, values that are not text are left out.
    pub fn last_headers(&self, key: &str) -> Option<BTreeMap<String, String>> {
        self.lock().get(key).map(|e| e.last_headers.clone())
    }

    /// The `traceparent` (header or gRPC metadata) of every call to `key` that carried one, in
    /// order of arrival (the first 1024): `00-<trace id>-<parent span id>-<flags>`.
    pub fn traceparents(&self, key: &str) -> Vec<String> {
        self.lock().get(key).map(|e| e.traceparents.clone()).unwrap_or_default()
    }

    /// The trace id of every call to `key` that carried a `traceparent`, in order of arrival.
    pub fn trace_ids(&self, key: &str) -> Vec<String> {
        self.traceparents(key)
            .iter()
            .filter_map(|traceparent| traceparent.split('-').nth(1).map(str::to_owned))
            .collect()
    }

    /// Counts one call to `key` and remembers its headers.
    pub(crate) fn record(&self, key: String, headers: &HeaderMap) {
        let mut last_headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let Ok(value) = value.to_str() else { continue };
            last_headers
                .entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.to_string());
        }
        let mut entries = self.lock();
        let entry = entries.entry(key).or_default();
        entry.count += 1;
        if let Some(traceparent) = last_headers.get("traceparent")
            && entry.traceparents.len() < MAX_TRACEPARENTS
        {
            entry.traceparents.push(traceparent.clone());
        }
        entry.last_headers = last_headers;
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
        log.record("K".into(), &headers);
        log.record("K".into(), &headers);
        assert_eq!(log.count("K"), 2);
        assert_eq!(log.total(), 2);
        let last = log.last_headers("K").unwrap_or_default();
        assert_eq!(last.get("accept").map(String::as_str), Some("a, b"));
        assert!(log.trace_ids("K").is_empty(), "no call carried a traceparent");
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        log.record("K".into(), &headers);
        assert_eq!(log.trace_ids("K"), ["4bf92f3577b34da6a3ce929d0e0e4736"]);
        assert_eq!(log.traceparents("K"), ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]);
        log.reset();
        assert!(log.trace_ids("K").is_empty());
        assert_eq!(log.count("K"), 0);
        assert!(log.last_headers("K").is_none());
    }
}
