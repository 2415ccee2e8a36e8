//! When the sweeper next looks at the store, shared between the sweeper and
//! the calls that add deadlines: a new challenge wakes the sweeper only when
//! it expires before that time, so that creating one costs no store read.

use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::Notify;

/// No sweep planned: while the sweeper reads the store, every new deadline
/// is earlier than this, so none is missed.
const UNPLANNED: i64 = i64::MAX;

/// The sweeper's next planned sweep (ms since the Unix epoch).
pub struct Deadlines {
    next: AtomicI64,
    earlier: Notify,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            next: AtomicI64::new(UNPLANNED),
            earlier: Notify::new(),
        }
    }
}

impl Deadlines {
    /// Something falls due at `deadline`; wakes the sweeper if that is
    /// earlier than its plan.
    pub fn add(&self, deadline: i64) {
        if self.next.fetch_min(deadline, Ordering::AcqRel) > deadline {
            self.earlier.notify_one();
        }
    }

    /// The sweeper is about to read the store's earliest deadline: until it
    /// [plans](Self::plan) again, every deadline added is kept.
    pub fn forget_plan(&self) {
        self.next.store(UNPLANNED, Ordering::Release);
    }

    /// Plans the next sweep at the store's earliest deadline, or at an
    /// earlier one added meanwhile; returns that time.
    pub fn plan(&self, store_deadline: Option<i64>) -> Option<i64> {
        let candidate = store_deadline.unwrap_or(UNPLANNED);
        let before = self.next.fetch_min(candidate, Ordering::AcqRel);
        Some(before.min(candidate)).filter(|&t| t != UNPLANNED)
    }

    /// The planned sweep, if any.
    pub fn planned(&self) -> Option<i64> {
        Some(self.next.load(Ordering::Acquire)).filter(|&t| t != UNPLANNED)
    }

    /// Resolves when a deadline earlier than the plan was added.
    pub async fn earlier_added(&self) {
        self.earlier.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{future::Future, pin::pin, task::Context};

    /// Whether the sweeper, waiting now, would wake at once.
    fn woken(deadlines: &Deadlines) -> bool {
        let waiting = pin!(deadlines.earlier_added());
        waiting
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
            .is_ready()
    }

    #[test]
    fn only_an_earlier_deadline_wakes_the_sweeper() {
        let deadlines = Deadlines::default();
        assert_eq!(deadlines.plan(Some(1_000)), Some(1_000));
        deadlines.add(5_000);
        assert!(!woken(&deadlines));
        assert_eq!(deadlines.planned(), Some(1_000));
        deadlines.add(500);
        assert!(woken(&deadlines));
        assert_eq!(deadlines.planned(), Some(500));
    }

    #[test]
    fn a_deadline_added_while_the_store_is_read_is_kept() {
        let deadlines = Deadlines::default();
        deadlines.plan(Some(1_000));
        deadlines.forget_plan();
        // Added after the sweeper read the store, which did not see it.
        deadlines.add(3_000);
        assert_eq!(deadlines.plan(Some(8_000)), Some(3_000));
        assert_eq!(deadlines.plan(None), Some(3_000));
        deadlines.forget_plan();
        assert_eq!(deadlines.plan(None), None);
        assert_eq!(deadlines.planned(), None);
    }
}
