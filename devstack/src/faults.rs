//! Fault knobs: per backend, a latency, an error rate, a hang, refused connections, and a wrong
//! answer ([`Answer`]): an error status, a malformed, partial, stalled or reset body, an HTML
//! error page, a redirect.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::rng::SplitMix64;

/// How long a hung request waits before it gives up by itself (the client normally gives up
/// first; a shutdown ends it at once).
pub const HANG_LIMIT: Duration = Duration::from_secs(3600);

/// One of the stand-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The monolith's REST API.
    Monolith,
    /// The gRPC `EventService`.
    Events,
    /// The gRPC `DraftService`.
    Drafts,
}

impl Backend {
    /// All backends.
    pub const ALL: [Backend; 3] = [Backend::Monolith, Backend::Events, Backend::Drafts];

    /// The lowercase name used in configuration and in the admin endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Monolith => "monolith",
            Backend::Events => "events",
            Backend::Drafts => "drafts",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is not `monolith`, `events` or `drafts`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: expected monolith, events or drafts")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "monolith" => Ok(Backend::Monolith),
            "events" => Ok(Backend::Events),
            "drafts" => Ok(Backend::Drafts),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}

/// What goes wrong with a backend. The default is nothing.
///
/// In JSON or TOML: `{"latency": "250ms", "error_rate": 0.5, "hang": false,
/// "refuse_connections": false}`; every field is optional.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Added before every answer (errors included).
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Share of requests, `0.0..=1.0`, answered with an error: the monolith answers `503
    /// {"detail": "Service temporarily unavailable."}`, the gRPC services `UNAVAILABLE`.
    pub error_rate: f64,
    /// Requests are never answered (until the client gives up, the devstack shuts down or
    /// [`HANG_LIMIT`] passes).
    pub hang: bool,
    /// New TCP connections are accepted and closed at once; open connections keep working.
    pub refuse_connections: bool,
    /// Every request served (after `latency`, when not failed by `error_rate`) gets this wrong
    /// answer instead of the right one. `None`: the right one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
}

/// A wrong answer a backend can give, as real ones do. In JSON: `"answer": "html_500"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// gRPC `DEADLINE_EXCEEDED` at once; the monolith answers `504` with a proxy's HTML page.
    DeadlineExceeded,
    /// gRPC `RESOURCE_EXHAUSTED`; the monolith answers `429 {"detail": "Request was throttled."}`.
    ResourceExhausted,
    /// A success whose body does not parse: JSON cut short from the monolith, a message that is
    /// not protobuf from the services.
    Malformed,
    /// Django's HTML 500 page ("Server Error (500)"), from any backend (the services' HTTP/2
    /// answer then carries no gRPC status, as when a proxy answers for them).
    Html500,
    /// Django's `APPEND_SLASH`: `301` to the path with a slash added (monolith only).
    AppendSlashRedirect,
    /// The right status and headers, then half the body, then the connection is cut (the
    /// monolith; the services reset the stream).
    PartialBody,
    /// The right status and headers, then half the body, then nothing more: the body stalls
    /// until the client gives up (monolith only).
    SlowBody,
    /// The connection is reset before any of the body (the monolith cuts it after the headers;
    /// the services reset the stream).
    Reset,
    /// gRPC: the first message passes, then the call ends with `UNAVAILABLE` (a server going
    /// away mid-stream). The monolith ignores it.
    MidStreamUnavailable,
    /// gRPC: the first message passes; when the next is ready, the stream is reset instead. The
    /// monolith ignores it.
    MidStreamReset,
    /// gRPC: the first message passes, then nothing more, however many events follow, until the
    /// client gives up. The monolith ignores it.
    MidStreamStall,
}

impl Fault {
    /// No fault.
    pub fn none() -> Self {
        Self::default()
    }

    /// Only a latency.
    pub fn latency(latency: Duration) -> Self {
        Self { latency, ..Self::default() }
    }

    /// Only an error rate (clamped to `0.0..=1.0`).
    pub fn error_rate(rate: f64) -> Self {
        Self { error_rate: rate, ..Self::default() }.sanitized()
    }

    /// Only a hang.
    pub fn hang() -> Self {
        Self { hang: true, ..Self::default() }
    }

    /// Only refused connections.
    pub fn refuse_connections() -> Self {
        Self { refuse_connections: true, ..Self::default() }
    }

    /// Whether this is no fault at all.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the error rate is a number in `0.0..=1.0`.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        if (0.0..=1.0).contains(&self.error_rate) { Ok(()) } else { Err(InvalidFault(self.error_rate)) }
    }

    /// The same fault with the error rate clamped into `0.0..=1.0` (NaN becomes 0).
    fn sanitized(mut self) -> Self {
        self.error_rate = if self.error_rate.is_nan() { 0.0 } else { self.error_rate.clamp(0.0, 1.0) };
        self
    }
}

/// A fault whose error rate is outside `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("error_rate must be between 0.0 and 1.0, got {0}")]
pub struct InvalidFault(pub f64);

/// The live fault settings of the three backends; changes apply to the next request (or, for
/// `refuse_connections`, the next connection).
#[derive(Debug)]
pub struct Faults {
    slots: RwLock<BTreeMap<Backend, Fault>>,
    rng: Mutex<SplitMix64>,
}

impl Faults {
    pub(crate) fn new(seed: u64, initial: &BTreeMap<Backend, Fault>) -> Self {
        let slots = Backend::ALL
            .iter()
            .map(|b| (*b, initial.get(b).copied().unwrap_or_default().sanitized()))
            .collect();
        Self { slots: RwLock::new(slots), rng: Mutex::new(SplitMix64::new(seed ^ 0x6661_756C_7473)) }
    }

    /// The backend's current fault.
    pub fn get(&self, backend: Backend) -> Fault {
        self.slots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&backend)
            .copied()
            .unwrap_or_default()
    }

    /// Sets the backend's fault (an error rate outside `0.0..=1.0` is clamped).
    pub fn set(&self, backend: Backend, fault: Fault) {
        tracing::info!(%backend, ?fault, "devstack fault set");
        self.slots
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(backend, fault.sanitized());
    }

    /// Removes the backend's fault.
    pub fn clear(&self, backend: Backend) {
        self.set(backend, Fault::none());
    }

    /// Removes every fault.
    pub fn clear_all(&self) {
        for backend in Backend::ALL {
            self.clear(backend);
        }
    }

    /// The current fault of every backend.
    pub fn snapshot(&self) -> BTreeMap<Backend, Fault> {
        self.slots.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Draws whether a request fails, with probability `rate`.
    fn roll(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        if rate >= 1.0 {
            return true;
        }
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).chance(rate)
    }
}

/// What the fault of a backend does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it.
    Serve,
    /// Answer with the backend's "unavailable" error.
    Fail,
}

/// Applies the backend's current fault to one request: waits out latency and hangs (both end early
/// on shutdown, and are dropped with the request when the client goes away), then rolls for an
/// error.
pub(crate) async fn apply(faults: &Faults, shutdown: &CancellationToken, backend: Backend) -> Verdict {
    let fault = faults.get(backend);
    if !fault.latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(fault.latency) => {}
            () = shutdown.cancelled() => return Verdict::Fail,
        }
    }
    if fault.hang {
        tracing::debug!(%backend, "devstack request hangs");
        tokio::select! {
            () = tokio::time::sleep(HANG_LIMIT) => {}
            () = shutdown.cancelled() => {}
        }
        return Verdict::Fail;
    }
    if faults.roll(fault.error_rate) {
        return Verdict::Fail;
    }
    Verdict::Serve
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_uses_human_durations() {
        let fault: Fault =
            serde_json::from_str(r#"{"latency": "250ms", "error_rate": 0.5}"#).unwrap_or_default();
        assert_eq!(fault.latency, Duration::from_millis(250));
        assert!((fault.error_rate - 0.5).abs() < f64::EPSILON);
        assert!(!fault.hang);
        let text = serde_json::to_string(&Fault::latency(Duration::from_secs(2))).unwrap_or_default();
        assert!(text.contains(r#""latency":"2s""#), "{text}");
        assert!(serde_json::from_str::<Fault>(r#"{"latncy": "1s"}"#).is_err());
    }

    #[test]
    fn rates_are_clamped_and_rolled() {
        let faults = Faults::new(1, &BTreeMap::new());
        faults.set(Backend::Events, Fault::error_rate(7.0));
        assert!((faults.get(Backend::Events).error_rate - 1.0).abs() < f64::EPSILON);
        assert!(faults.roll(1.0));
        assert!(!faults.roll(0.0));
        let hits = (0..10_000).filter(|_| faults.roll(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
        faults.clear_all();
        assert!(faults.snapshot().values().all(Fault::is_none));
        assert_eq!("drafts".parse::<Backend>(), Ok(Backend::Drafts));
        assert!("db".parse::<Backend>().is_err());
        assert!(Fault::error_rate(0.5).validate().is_ok());
        let bad = Fault { error_rate: 1.5, ..Fault::none() };
        assert!(bad.validate().is_err());
    }
}
