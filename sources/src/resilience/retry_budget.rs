//! The retry budget: retries of one backend stay under a share of its calls over a sliding
//! window, plus a small allowance per second, so that in an outage retries add at most that
//! share to the load instead of multiplying it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Retries of idempotent reads, and the budget that bounds them.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOptions {
    /// The most retries of one call; 0 turns retries off.
    pub max_retries: u32,
    /// The first backoff's upper bound (each retry doubles it, full jitter).
    pub initial_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
    /// Retries allowed as a share of calls over the window, `0.0..=1.0`.
    pub budget_ratio: f64,
    /// Retries allowed per second of the window whatever the traffic, so a quiet backend can
    /// still retry.
    pub budget_min_per_second: u32,
    /// The sliding window the budget counts over.
    pub budget_window: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(250),
            budget_ratio: 0.1,
            budget_min_per_second: 1,
            budget_window: Duration::from_secs(10),
        }
    }
}

/// The most events remembered, so memory stays bounded whatever the traffic.
const MAX_EVENTS: usize = 65_536;

#[derive(Debug)]
pub(super) struct RetryBudget {
    ratio: f64,
    min_in_window: f64,
    window: Duration,
    /// Times of first attempts and of retries in the window.
    events: Mutex<(VecDeque<Instant>, VecDeque<Instant>)>,
}

impl RetryBudget {
    pub(super) fn new(options: &RetryOptions) -> Self {
        Self {
            ratio: options.budget_ratio,
            min_in_window: f64::from(options.budget_min_per_second) * options.budget_window.as_secs_f64(),
            window: options.budget_window,
            events: Mutex::new((VecDeque::new(), VecDeque::new())),
        }
    }

    fn trim(&self, queue: &mut VecDeque<Instant>, now: Instant) {
        while queue.len() > MAX_EVENTS
            || queue.front().is_some_and(|at| now.duration_since(*at) > self.window)
        {
            queue.pop_front();
        }
    }

    /// Counts a first attempt.
    pub(super) fn record_call(&self) {
        let now = Instant::now();
        let mut events = self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        events.0.push_back(now);
        let calls = &mut events.0;
        self.trim(calls, now);
    }

    /// Takes one retry from the budget, if any is left.
    pub(super) fn try_retry(&self) -> bool {
        let now = Instant::now();
        let mut guard = self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (calls, retries) = &mut *guard;
        self.trim(calls, now);
        self.trim(retries, now);
        let allowed = self.ratio * calls.len() as f64 + self.min_in_window;
        if (retries.len() as f64) < allowed.floor() {
            retries.push_back(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_under_the_share_plus_the_minimum() {
        let budget = RetryBudget::new(&RetryOptions {
            budget_ratio: 0.1,
            budget_min_per_second: 1,
            budget_window: Duration::from_secs(10),
            ..RetryOptions::default()
        });
        let mut retries = 0;
        for _ in 0..1000 {
            budget.record_call();
            if budget.try_retry() {
                retries += 1;
            }
        }
        // 10% of 1000 calls, plus 1 per second over 10 seconds.
        assert_eq!(retries, 110);
    }
}
