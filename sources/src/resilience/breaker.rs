//! A circuit breaker per backend: closed, it counts outcomes over a sliding window and opens when
//! the failure rate reaches its threshold (with enough calls to judge); open, it sheds every call
//! until a cool-down passes; half-open, it lets one probe through at a time, which closes it on
//! success or opens it again on failure. Transitions are logged at `warn`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Backend;

/// How a backend's breaker trips and recovers.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerOptions {
    /// Whether the breaker is on.
    pub enabled: bool,
    /// The share of failed calls in the window, `0.0..=1.0`, at which it opens.
    pub failure_rate: f64,
    /// The fewest calls in the window before the rate counts.
    pub min_calls: u32,
    /// How far back outcomes count.
    pub window: Duration,
    /// How long it stays open before a probe.
    pub cool_down: Duration,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_rate: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once, no call is made.
    Open,
    /// One probe at a time goes through.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// The most outcomes kept in the window, so a busy backend costs bounded memory.
const MAX_OUTCOMES: usize = 4096;

#[derive(Debug)]
pub(super) struct Breaker {
    backend: Backend,
    options: BreakerOptions,
    state: Mutex<State>,
}

/// The outcomes of a closed breaker's window, oldest first, with the failures among them
/// counted as they come and go: judging a call costs the same however busy the backend is.
#[derive(Debug, Default)]
struct Window {
    outcomes: VecDeque<(Instant, bool)>,
    failures: usize,
}

impl Window {
    /// Adds an outcome at `now` and forgets those older than `window` or beyond
    /// [`MAX_OUTCOMES`].
    fn push(&mut self, now: Instant, failed: bool, window: Duration) {
        self.outcomes.push_back((now, failed));
        self.failures += usize::from(failed);
        while self.outcomes.len() > MAX_OUTCOMES
            || self.outcomes.front().is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            if let Some((_, failed)) = self.outcomes.pop_front() {
                self.failures -= usize::from(failed);
            }
        }
    }
}

#[derive(Debug)]
enum State {
    Closed(Window),
    Open {
        until: Instant,
    },
    /// `probe_since`: when the probe in flight started; a probe older than the cool-down is
    /// presumed lost (its caller went away) and another may start.
    HalfOpen {
        probe_since: Option<Instant>,
    },
}

impl Breaker {
    pub(super) fn new(backend: Backend, options: BreakerOptions) -> Self {
        Self { backend, options, state: Mutex::new(State::Closed(Window::default())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed(_) => BreakerState::Closed,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go now (a half-open breaker takes it as its probe).
    pub(super) fn admit(&self) -> bool {
        if !self.options.enabled {
            return true;
        }
        let now = Instant::now();
        let mut state = self.lock();
        match &mut *state {
            State::Closed(_) => true,
            State::Open { until } if now < *until => false,
            State::Open { .. } => {
                tracing::warn!(backend = self.backend.name(), "circuit breaker half-open: probing");
                *state = State::HalfOpen { probe_since: Some(now) };
                true
            }
            State::HalfOpen { probe_since } => match probe_since {
                Some(since) if now.duration_since(*since) < self.options.cool_down => false,
                _ => {
                    *probe_since = Some(now);
                    true
                }
            },
        }
    }

    /// A probe admitted but not made (the concurrency limit refused it): another may go.
    pub(super) fn release_probe(&self) {
        if let State::HalfOpen { probe_since } = &mut *self.lock() {
            *probe_since = None;
        }
    }

    /// Learns one call's outcome.
    pub(super) fn record(&self, failed: bool) {
        if !self.options.enabled {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        match &mut *state {
            State::Closed(window) => {
                window.push(now, failed, self.options.window);
                let (total, failures) = (window.outcomes.len(), window.failures);
                if failed
                    && total >= self.options.min_calls as usize
                    && failures as f64 >= self.options.failure_rate * total as f64
                {
                    tracing::warn!(
                        backend = self.backend.name(),
                        failures,
                        calls = total,
                        cool_down = ?self.options.cool_down,
                        "circuit breaker opened: failing this backend's fields at once"
                    );
                    *state = State::Open { until: now + self.options.cool_down };
                }
            }
            State::HalfOpen { .. } if failed => {
                tracing::warn!(backend = self.backend.name(), "circuit breaker probe failed: open again");
                *state = State::Open { until: now + self.options.cool_down };
            }
            State::HalfOpen { .. } => {
                tracing::warn!(backend = self.backend.name(), "circuit breaker closed: the probe succeeded");
                *state = State::Closed(Window::default());
            }
            // A call admitted before the breaker opened: its outcome is already accounted for.
            State::Open { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(min_calls: u32) -> Breaker {
        Breaker::new(
            Backend::Monolith,
            BreakerOptions {
                enabled: true,
                failure_rate: 0.5,
                min_calls,
                window: Duration::from_secs(60),
                cool_down: Duration::from_millis(500),
            },
        )
    }

    #[tokio::test]
    async fn opens_on_the_failure_rate_probes_and_closes() {
        let breaker = breaker(4);
        for failed in [true, false, true] {
            assert!(breaker.admit());
            breaker.record(failed);
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "too few calls to judge");
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.admit(), "open sheds");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(breaker.admit(), "the first call after the cool-down probes");
        assert!(!breaker.admit(), "one probe at a time");
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Open, "a failed probe opens it again");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(breaker.admit());
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.admit());
    }

    /// The breaker's running count of failures, against a count made afresh over a plain list
    /// of outcomes after every call: both open it at the same call when the failures that tip
    /// it are the ones the cap on outcomes pushes out.
    #[test]
    fn failures_pushed_out_by_the_cap_stop_counting() {
        let breaker = Breaker::new(
            Backend::Monolith,
            BreakerOptions {
                min_calls: MAX_OUTCOMES as u32,
                window: Duration::from_secs(3600),
                ..breaker(1).options
            },
        );
        // Old failures, then enough successes to fill the window; then failures, each pushing
        // out the oldest outcome, until the breaker opens.
        let calls = std::iter::repeat_n(true, 2000)
            .chain(std::iter::repeat_n(false, MAX_OUTCOMES - 2000))
            .chain(std::iter::repeat(true))
            .take(3 * MAX_OUTCOMES);
        let mut kept: VecDeque<bool> = VecDeque::new();
        let mut expected_to_open_at = None;
        let mut opened_at = None;
        for (i, failed) in calls.enumerate() {
            kept.push_back(failed);
            if kept.len() > MAX_OUTCOMES {
                kept.pop_front();
            }
            let failures = kept.iter().filter(|failed| **failed).count();
            if expected_to_open_at.is_none()
                && failed
                && kept.len() >= MAX_OUTCOMES
                && failures * 2 >= kept.len()
            {
                expected_to_open_at = Some(i);
            }
            breaker.record(failed);
            if opened_at.is_none() && breaker.state() == BreakerState::Open {
                opened_at = Some(i);
            }
        }
        // 2,048 new failures, once the 2,000 old ones are gone: not after 48.
        assert_eq!(expected_to_open_at, Some(MAX_OUTCOMES + 2047));
        assert_eq!(opened_at, expected_to_open_at);
    }

    /// Failures older than the window stop counting: 10 old failures and 1 new one among 20
    /// calls in the window is a rate of 1/20, not 11/20.
    #[tokio::test]
    async fn failures_older_than_the_window_stop_counting() {
        let breaker = Breaker::new(
            Backend::Monolith,
            BreakerOptions { min_calls: 20, window: Duration::from_secs(1), ..breaker(1).options },
        );
        for _ in 0..10 {
            breaker.record(true);
        }
        // Past the window; the 37 calls after it take far less than a window (a stall of a
        // second would age some of them out too).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for _ in 0..19 {
            breaker.record(false);
        }
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        // The new failures alone open it: 19 of 38 calls.
        for _ in 0..17 {
            breaker.record(true);
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "18 failures among 37 calls");
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Open, "19 failures among 38 calls");
    }

    #[test]
    fn successes_keep_it_closed() {
        let breaker = breaker(4);
        for i in 0..100 {
            breaker.record(i % 4 == 0);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
