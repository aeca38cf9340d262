//! How many backend calls one request may make: a counter shared by every clone of the
//! request's [`Caller`](crate::Caller), charged by each client just before it calls a backend.
//! A loader batch is one call, as is each page of a paged REST list.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::SourceError;

/// A request's budget of backend calls. Cheap to clone; clones share the count.
///
/// A new budget is unlimited; the gateway sets the limit once per request
/// ([`CallBudget::limit_to`]). Every budget compares equal: it says how much a request may
/// call, not who the caller is.
#[derive(Clone, Default)]
pub struct CallBudget(Arc<State>);

#[derive(Default)]
struct State {
    /// Calls made.
    used: AtomicUsize,
    /// Calls refused because the budget was spent.
    refused: AtomicUsize,
    /// The most calls allowed; 0 until a limit is set (then unlimited).
    limit: AtomicUsize,
    /// Whether a call past the limit is refused (`false`: made, and only counted past it).
    enforce: AtomicBool,
    /// When the whole request must be answered; every backend call's deadline is at most what
    /// remains of it.
    deadline: OnceLock<Instant>,
}

impl CallBudget {
    /// A fresh, unlimited budget.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Allows at most `limit` calls from now on; past it, calls fail with
    /// [`SourceError::CallBudgetExceeded`] when `enforce`, or are made and counted when not.
    pub fn limit_to(&self, limit: usize, enforce: bool) {
        self.0.limit.store(limit, Ordering::Relaxed);
        self.0.enforce.store(enforce, Ordering::Relaxed);
    }

    /// Sets the request's deadline (the first one set holds): from then on each backend call
    /// waits at most what remains, and none starts after it (`REQUEST_TIMEOUT`).
    pub fn set_deadline(&self, deadline: Instant) {
        let _ = self.0.deadline.set(deadline);
    }

    /// What remains of the request's deadline (zero once passed), or `None` without one.
    pub fn remaining(&self) -> Option<Duration> {
        self.0.deadline.get().map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// The limit set, if any.
    pub fn limit(&self) -> Option<usize> {
        Some(self.0.limit.load(Ordering::Relaxed)).filter(|&limit| limit > 0)
    }

    /// Backend calls made so far.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Backend calls refused so far because the budget was spent.
    pub fn refused(&self) -> usize {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Takes one call from the budget, before the call is made: fails when an enforced limit
    /// is reached (the count never passes it, however many calls race for the last one).
    pub(crate) fn charge(&self) -> Result<(), SourceError> {
        let limit = self.limit();
        let enforce = self.0.enforce.load(Ordering::Relaxed);
        let charged = self.0.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| match limit {
            Some(limit) if enforce && used >= limit => None,
            _ => Some(used.saturating_add(1)),
        });
        match (charged, limit) {
            (Ok(_), _) => Ok(()),
            (Err(_), Some(limit)) => {
                self.0.refused.fetch_add(1, Ordering::Relaxed);
                Err(SourceError::CallBudgetExceeded { limit })
            }
            // Unreachable: a refusal needs a limit; refuse nothing without one.
            (Err(_), None) => Ok(()),
        }
    }
}

impl PartialEq for CallBudget {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for CallBudget {}

impl std::fmt::Debug for CallBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallBudget")
            .field("used", &self.used())
            .field("refused", &self.refused())
            .field("limit", &self.limit())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enforced_budget_refuses_past_its_limit_and_clones_share_it() {
        let budget = CallBudget::unlimited();
        for _ in 0..10 {
            assert!(budget.charge().is_ok());
        }
        let request = CallBudget::unlimited();
        request.limit_to(3, true);
        let clone = request.clone();
        assert!(request.charge().is_ok());
        assert!(clone.charge().is_ok());
        assert!(request.charge().is_ok());
        let refused = clone.charge().expect_err("the fourth call is over budget");
        assert_eq!(refused.code(), "BACKEND_CALL_BUDGET_EXCEEDED");
        assert_eq!((request.used(), request.refused()), (3, 1));
    }

    #[test]
    fn a_warn_only_budget_counts_past_its_limit() {
        let budget = CallBudget::unlimited();
        budget.limit_to(2, false);
        for _ in 0..5 {
            assert!(budget.charge().is_ok());
        }
        assert_eq!((budget.used(), budget.refused(), budget.limit()), (5, 0, Some(2)));
    }
}
