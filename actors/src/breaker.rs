//! The database circuit breaker, shared by the `DbWriter` workers (who trip and reset it) and
//! the `KafkaReader` (who pauses fetching while it is open).
//!
//! Open after `threshold` consecutive transient failures; closed by the next success. While it
//! is open the writers keep retrying their batches with backoff (nothing is dropped), the
//! reader pauses its partitions but stays in the group, and `/ready` answers 503.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    threshold: u32,
    failures: AtomicU32,
    open: AtomicBool,
}

/// What a recorded outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

impl Breaker {
    pub fn new(threshold: u32) -> Self {
        Self { inner: Arc::new(Inner { threshold: threshold.max(1), failures: AtomicU32::new(0), open: AtomicBool::new(false) }) }
    }

    pub fn is_open(&self) -> bool {
        self.inner.open.load(Ordering::SeqCst)
    }

    pub fn record_failure(&self) -> Transition {
        let n = self.inner.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.inner.threshold && !self.inner.open.swap(true, Ordering::SeqCst) {
            Transition::Opened
        } else {
            Transition::None
        }
    }

    pub fn record_success(&self) -> Transition {
        self.inner.failures.store(0, Ordering::SeqCst);
        if self.inner.open.swap(false, Ordering::SeqCst) {
            Transition::Closed
        } else {
            Transition::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_on_success() {
        let b = Breaker::new(3);
        assert_eq!(b.record_failure(), Transition::None);
        assert_eq!(b.record_failure(), Transition::None);
        assert_eq!(b.record_failure(), Transition::Opened);
        assert!(b.is_open());
        assert_eq!(b.record_failure(), Transition::None, "opens once");
        assert_eq!(b.record_success(), Transition::Closed);
        assert!(!b.is_open());
        assert_eq!(b.record_failure(), Transition::None, "the count starts again");
    }
}
