//! Lines that repeat while a condition lasts (a broker down, a database awaited): the first is
//! logged, then one a minute with how many were held back, so a fault never floods the log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a condition that persists is logged again.
pub(crate) const REMINDER_EVERY: Duration = Duration::from_secs(60);

/// Lines by kind: the first is logged, the next at most once per [`REMINDER_EVERY`].
#[derive(Default)]
pub struct Throttle {
    last: HashMap<String, (Instant, u64)>,
}

impl Throttle {
    /// `Some(held back since the last line)` when a line of `kind` is due now.
    pub fn admit(&mut self, kind: &str, now: Instant) -> Option<u64> {
        match self.last.get_mut(kind) {
            Some((at, held)) if now.duration_since(*at) < REMINDER_EVERY => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                self.last.insert(kind.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_logs_the_first_line_then_one_a_minute_with_the_count_held_back() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.admit("a", t0), Some(0));
        assert_eq!(t.admit("a", t0 + Duration::from_millis(50)), None);
        assert_eq!(t.admit("b", t0 + Duration::from_millis(60)), Some(0), "kinds are counted apart");
        assert_eq!(t.admit("a", t0 + Duration::from_secs(59)), None);
        assert_eq!(t.admit("a", t0 + REMINDER_EVERY), Some(2));
        assert_eq!(t.admit("a", t0 + REMINDER_EVERY + Duration::from_secs(1)), None);
    }
}
