//! Cutting one partition's message stream into batches, by count, bytes and linger.
//!
//! A [`PartitionBatcher`] is plain data owned by the reader's poll thread. It also carries the
//! partition's position: the fence the next batch continues from, so batches of a partition form
//! an unbroken chain of `consumer_offsets` updates. Offsets may have gaps (compaction,
//! transaction markers); a batch's fence is the previous batch's `next_offset`, not its own first
//! offset, so gaps never break the chain.

use std::time::{Duration, Instant};

use crate::batches::{Fence, RawBatch};
use crate::records::{PartitionKey, RawMessage};

/// When a batch is cut.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Cut when this many messages are pending.
    pub max_messages: usize,
    /// Cut when this many payload bytes are pending.
    pub max_bytes: usize,
    /// Cut when the oldest pending message has waited this long.
    pub linger: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_messages: 5000, max_bytes: 4 * 1024 * 1024, linger: Duration::from_millis(50) }
    }
}

/// One partition's pending messages and position.
#[derive(Debug)]
pub(crate) struct PartitionBatcher {
    key: PartitionKey,
    fence: Fence,
    /// Offset after the last accepted message; `None` until one arrives when there is no progress.
    position: Option<i64>,
    pending: Vec<RawMessage>,
    pending_bytes: usize,
    oldest: Option<Instant>,
}

impl PartitionBatcher {
    /// Start at `fence`: the database's progress for this partition (or none).
    pub(crate) fn new(key: PartitionKey, fence: Fence) -> Self {
        let position = match fence {
            Fence::NextOffset(n) => Some(n),
            Fence::NoProgress => None,
        };
        Self { key, fence, position, pending: Vec::new(), pending_bytes: 0, oldest: None }
    }

    /// The offset after the last accepted message (where fetching must continue), if known.
    pub(crate) fn position(&self) -> Option<i64> {
        self.position
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Accept a message. Returns false (and drops it) when it is behind the position: a
    /// redelivery after a seek, which the chain already covers.
    pub(crate) fn push(&mut self, msg: RawMessage, now: Instant) -> bool {
        if self.position.is_some_and(|p| msg.offset < p) {
            return false;
        }
        self.position = Some(msg.offset + 1);
        self.pending_bytes += msg.weight();
        self.pending.push(msg);
        self.oldest.get_or_insert(now);
        true
    }

    /// Whether a batch should be cut now.
    pub(crate) fn is_ready(&self, limits: &BatchLimits, now: Instant) -> bool {
        !self.pending.is_empty()
            && (self.pending.len() >= limits.max_messages
                || self.pending_bytes >= limits.max_bytes
                || self.oldest.is_some_and(|t| now.duration_since(t) >= limits.linger))
    }

    /// When the oldest pending message's linger runs out (nothing pending: never).
    pub(crate) fn linger_deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.oldest.map(|t| t + limits.linger)
    }

    /// Cut a batch of at most `limits` size if one is due (or `force`, e.g. when draining).
    pub(crate) fn take(&mut self, limits: &BatchLimits, now: Instant, force: bool, seq: u64) -> Option<RawBatch> {
        if self.pending.is_empty() || !(force || self.is_ready(limits, now)) {
            return None;
        }
        let mut count = 0;
        let mut bytes = 0;
        for m in &self.pending {
            if count > 0 && (count >= limits.max_messages || bytes + m.weight() > limits.max_bytes) {
                break;
            }
            count += 1;
            bytes += m.weight();
        }
        let rest = self.pending.split_off(count);
        let messages = std::mem::replace(&mut self.pending, rest);
        self.pending_bytes -= bytes;
        self.oldest = if self.pending.is_empty() { None } else { Some(now) };
        let next_offset = messages.last().map(|m| m.offset + 1).expect("batch is not empty");
        let fence = std::mem::replace(&mut self.fence, Fence::NextOffset(next_offset));
        Some(RawBatch { partition: self.key.clone(), fence, next_offset, messages, seq })
    }

    /// Forget pending messages and continue from `fence` (after a seek or a fenced commit).
    pub(crate) fn reset(&mut self, fence: Fence) {
        *self = Self::new(self.key.clone(), fence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(offset: i64) -> RawMessage {
        RawMessage::new(offset, None, None, Some(&[b'x'; 36]), [])
    }

    fn key() -> PartitionKey {
        PartitionKey { topic: "t".into(), partition: 0 }
    }

    #[test]
    fn cuts_by_count_and_chains_fences() {
        let limits = BatchLimits { max_messages: 3, max_bytes: usize::MAX, linger: Duration::from_secs(60) };
        let now = Instant::now();
        let mut b = PartitionBatcher::new(key(), Fence::NextOffset(10));
        for o in 10..17 {
            assert!(b.push(m(o), now));
        }
        let first = b.take(&limits, now, false, 1).unwrap();
        assert_eq!(first.fence, Fence::NextOffset(10));
        assert_eq!(first.next_offset, 13);
        assert_eq!(first.messages.len(), 3);
        let second = b.take(&limits, now, false, 2).unwrap();
        assert_eq!(second.fence, Fence::NextOffset(13));
        assert_eq!(second.next_offset, 16);
        assert!(b.take(&limits, now, false, 3).is_none(), "one pending message is not due");
        let last = b.take(&limits, now, true, 3).unwrap();
        assert_eq!((last.fence, last.next_offset), (Fence::NextOffset(16), 17));
    }

    #[test]
    fn cuts_by_linger_and_bytes() {
        let limits = BatchLimits { max_messages: 1000, max_bytes: 250, linger: Duration::from_millis(50) };
        let t0 = Instant::now();
        let mut b = PartitionBatcher::new(key(), Fence::NoProgress);
        b.push(m(0), t0);
        assert!(!b.is_ready(&limits, t0));
        assert!(b.is_ready(&limits, t0 + Duration::from_millis(50)));
        let batch = b.take(&limits, t0 + Duration::from_millis(50), false, 0).unwrap();
        assert_eq!(batch.fence, Fence::NoProgress);
        for o in 1..=5 {
            b.push(m(o), t0);
        }
        assert!(b.is_ready(&limits, t0), "5 × 100 bytes exceeds 250");
        let batch = b.take(&limits, t0, false, 1).unwrap();
        assert_eq!(batch.messages.len(), 2, "byte limit bounds the batch");
        assert_eq!(batch.fence, Fence::NextOffset(1));
    }

    #[test]
    fn gaps_keep_the_chain_and_redeliveries_are_dropped() {
        let limits = BatchLimits::default();
        let now = Instant::now();
        let mut b = PartitionBatcher::new(key(), Fence::NextOffset(5));
        assert!(!b.push(m(4), now), "behind the database's progress");
        assert!(b.push(m(8), now), "a gap (compaction) is fine");
        assert!(!b.push(m(8), now), "redelivered");
        let batch = b.take(&limits, now, true, 0).unwrap();
        assert_eq!((batch.fence, batch.next_offset), (Fence::NextOffset(5), 9));
        b.reset(Fence::NextOffset(3));
        assert!(b.push(m(3), now));
        assert_eq!(b.take(&limits, now, true, 1).unwrap().fence, Fence::NextOffset(3));
    }
}
