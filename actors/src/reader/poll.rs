//! The poll thread: takes records from librdkafka (headers read through its C API), cuts
//! batches, bounds what is read ahead (backpressure), resynchronises partitions whose batch
//! failed, and reports watermarks.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::batches::Fence;
use crate::health::{Paused, Watermark, Watermarks};
use crate::records::{PartitionKey, RawMessage};

use super::rebalance::{commit_to_kafka, ReaderContext};
use super::state::*;

/// How often DB progress is committed to Kafka and watermarks are read.
pub(super) const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// How long the poll loop may stop taking messages (pending bytes over budget) before it pauses
/// the partitions instead: callbacks (rebalances) are served by the same poll, so this bounds
/// how long one can wait.
pub(super) const HOLD_MAX: Duration = Duration::from_millis(500);

pub(super) fn to_raw(m: &rdkafka::message::BorrowedMessage<'_>) -> RawMessage {
    use rdkafka_sys::rd_kafka_resp_err_t::{RD_KAFKA_RESP_ERR_NO_ERROR as NO_ERROR, RD_KAFKA_RESP_ERR__NOENT as NO_HEADERS};
    // Headers straight from librdkafka, names as bytes: rdkafka's `Headers::try_get` panics on
    // a name that is not UTF-8, which Kafka does not check (the parser makes such a record a
    // dead letter). By index (a `Clone` iterator): the record's size is summed before its one
    // allocation.
    let mut native: *mut rdkafka_sys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: the message is alive for this call; librdkafka parses its headers on first access
    // and keeps them with the message (none: an error code and a null pointer).
    let err = unsafe { rdkafka_sys::rd_kafka_message_headers(m.ptr(), &mut native) };
    let found = err == NO_ERROR && !native.is_null();
    // SAFETY: `native` is the message's header list, checked non-null.
    let count = if found { unsafe { rdkafka_sys::rd_kafka_header_cnt(native) } } else { 0 };
    let headers = (0..count).filter_map(move |i| {
        let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
        // SAFETY: `i` is below the count; the pointers stay valid while the message lives, and
        // `RawMessage::new` copies what they point to before this function returns.
        unsafe {
            let err = rdkafka_sys::rd_kafka_header_get_all(native, i, &mut name, &mut value, &mut size);
            (err == NO_ERROR && !name.is_null()).then(|| {
                let value = (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast::<u8>(), size));
                (std::ffi::CStr::from_ptr(name).to_bytes(), value)
            })
        }
    });
    let raw = RawMessage::new(m.offset(), m.timestamp().to_millis(), m.key(), m.payload(), headers);
    // Any error but "no headers" is a header block librdkafka could not parse.
    if err == NO_ERROR || err == NO_HEADERS {
        raw
    } else {
        raw.with_unreadable_headers()
    }
}

/// Bytes of messages read but not yet handed on, across these partitions.
pub(super) fn pending_total(parts: &HashMap<PartitionKey, PartitionState>) -> usize {
    parts.values().map(|p| p.batcher.pending_bytes()).sum()
}

/// Given each partition's pending bytes, over `budget`: the pending bytes from which a
/// partition is cut now — the largest partitions, enough of them to bring the total down to half
/// the budget. Under it: none.
pub(super) fn press_threshold(mut sizes: Vec<usize>, budget: usize) -> Option<usize> {
    let total: usize = sizes.iter().sum();
    if total < budget {
        return None;
    }
    sizes.retain(|&b| b > 0);
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut left = total;
    let mut least = 1;
    for size in sizes {
        if left <= budget / 2 {
            break;
        }
        left -= size;
        least = size.max(1);
    }
    Some(least)
}

pub(super) fn tpl_of<'a>(keys: impl Iterator<Item = &'a PartitionKey>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for k in keys {
        tpl.add_partition(&k.topic, k.partition);
    }
    tpl
}

pub(super) struct PollLoop {
    pub(super) consumer: BaseConsumer<ReaderContext>,
    pub(super) shared: Arc<Shared>,
    pub(super) seq: u64,
    pub(super) paused_all: bool,
    pub(super) reported_pause: bool,
    pub(super) last_housekeeping: Instant,
    /// The partition of the last message accepted.
    pub(super) last_key: std::cell::RefCell<PartitionKey>,
}

impl PollLoop {
    /// Hand every due batch to its pipeline while permits last. Returns true if a batch is
    /// due but waits for a permit.
    fn dispatch(&mut self, force: bool) -> bool {
        let s = &self.shared;
        let limits = s.opts.limits;
        let now = Instant::now();
        let mut waiting = false;
        let mut parts = s.parts();
        // Over the read-ahead budget nothing more is read, so batches cannot grow: cut now rather
        // than wait for linger — but only the partitions holding the most, down to half the
        // budget, so batches stay large (cutting every partition would make them budget ÷
        // partitions); the others keep growing towards a full batch, their linger bounding the wait.
        let pressed_from = if force {
            Some(0)
        } else {
            press_threshold(parts.values().map(|p| p.batcher.pending_bytes()).collect(), s.opts.pending_budget_bytes)
        };
        for p in parts.values_mut() {
            if p.shared.resync.load(Ordering::SeqCst) {
                continue;
            }
            let pressed = pressed_from.is_some_and(|least| p.batcher.pending_bytes() >= least);
            while pressed || p.batcher.is_ready(&limits, now) {
                if p.batcher.pending_len() == 0 {
                    break;
                }
                // Approximate (a batch is cut at max_bytes), enough to bound memory.
                let kib = (p.shared.reserve_bytes(p.batcher.pending_bytes().min(limits.max_bytes)) / 1024).clamp(1, s.budget_kib());
                let (Ok(batch_permit), Ok(byte_permit)) =
                    (s.permits.clone().try_acquire_owned(), s.byte_permits.clone().try_acquire_many_owned(kib as u32))
                else {
                    waiting = true;
                    break;
                };
                let permit = InFlight { _batch: batch_permit, _bytes: byte_permit };
                self.seq += 1;
                let Some(batch) = p.batcher.take(&limits, now, true, self.seq) else { break };
                p.shared.in_flight.fetch_add(1, Ordering::SeqCst);
                s.metrics.in_flight_batches.inc();
                if p.tx.unbounded_send((batch, permit)).is_err() {
                    p.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                    s.metrics.in_flight_batches.dec();
                    p.shared.resync.store(true, Ordering::SeqCst);
                }
            }
        }
        waiting
    }

    /// How long the next poll may wait: `idle`, or less if a partition's linger runs out sooner.
    fn poll_timeout(&self, idle: Duration) -> Duration {
        let limits = self.shared.opts.limits;
        let first = self
            .shared
            .parts()
            .values()
            // A partition waiting to resynchronise is not dispatched: its linger wakes nobody.
            .filter(|p| !p.shared.resync.load(Ordering::SeqCst))
            .filter_map(|p| p.batcher.linger_deadline(&limits))
            .min();
        first.map_or(idle, |t| t.saturating_duration_since(Instant::now()).min(idle))
    }

    /// Bytes of messages read but not yet handed on, across all partitions.
    fn pending_bytes(&self) -> usize {
        pending_total(&self.shared.parts())
    }

    /// Bound what waits for a permit. While the pending bytes exceed the budget the poll loop
    /// stops taking messages from librdkafka (whose own queue is bounded, so fetching stops
    /// too) — no pause, no seek, no re-fetch: the next messages are ready the moment a permit
    /// frees. Only if that lasts `HOLD_MAX` (the database is slow or down) are the partitions
    /// holding messages paused, so the loop can poll again and serve rebalances. A partition
    /// whose own pending messages reach two batches is paused too. Resume when back under one
    /// batch and half the budget.
    fn backpressure(&mut self, held_too_long: bool) {
        let s = &self.shared;
        let limits = s.opts.limits;
        let mut to_pause = Vec::new();
        let mut to_resume = Vec::new();
        let mut parts = s.parts();
        let total_bytes = pending_total(&parts);
        let relaxed = total_bytes < s.opts.pending_budget_bytes / 2;
        for (k, p) in parts.iter_mut() {
            let pending = p.batcher.pending_len();
            if !p.paused && (pending >= limits.max_messages * 2 || (held_too_long && pending > 0)) {
                p.paused = true;
                to_pause.push(k.clone());
            } else if p.paused && pending < limits.max_messages && relaxed {
                p.paused = false;
                to_resume.push(k.clone());
            }
        }
        drop(parts);
        if !to_pause.is_empty() {
            s.metrics.backpressure_pauses.inc_by(to_pause.len() as u64);
            slog::debug!(s.log, "backpressure: pausing"; "partitions" => format!("{to_pause:?}"));
            let _ = self.consumer.pause(&tpl_of(to_pause.iter()));
        }
        if !to_resume.is_empty() && !self.paused_all {
            self.resume_at_position(&to_resume);
        }
    }

    /// Resume partitions and seek each to the offset after the last message accepted.
    /// librdkafka discards its prefetched messages on pause but may resume fetching after them,
    /// which would silently skip offsets; the explicit seek makes the position ours.
    fn resume_at_position(&self, keys: &[PartitionKey]) {
        let s = &self.shared;
        if let Err(e) = self.consumer.resume(&tpl_of(keys.iter())) {
            slog::warn!(s.log, "resume failed"; "error" => e.to_string());
        }
        let positions: Vec<(PartitionKey, i64)> = {
            let parts = s.parts();
            keys.iter().filter_map(|k| parts.get(k).and_then(|p| p.batcher.position()).map(|pos| (k.clone(), pos))).collect()
        };
        for (k, pos) in positions {
            if let Err(e) = self.consumer.seek(&k.topic, k.partition, Offset::Offset(pos), Duration::from_secs(10)) {
                // The chain stays safe: resync reloads the progress and seeks again.
                slog::warn!(s.log, "seek after resume failed; resynchronising"; "partition" => k.to_string(), "error" => e.to_string());
                if let Some(p) = s.parts().get(&k) {
                    p.shared.resync.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// Pause all partitions while an operator asks or the database breaker is open; resume
    /// when neither holds.
    fn apply_pause(&mut self) {
        let operator = self.shared.paused.load(Ordering::SeqCst);
        if operator != self.reported_pause {
            self.reported_pause = operator;
            self.shared.health.do_send(Paused(operator));
        }
        let want = self.shared.holding();
        if want == self.paused_all {
            return;
        }
        let keys: Vec<PartitionKey> = self.shared.parts().keys().cloned().collect();
        if want {
            if let Err(e) = self.consumer.pause(&tpl_of(keys.iter())) {
                slog::warn!(self.shared.log, "pause failed"; "error" => e.to_string());
                return;
            }
        } else {
            self.resume_at_position(&keys);
        }
        self.paused_all = want;
    }

    /// Reload progress and seek for partitions whose batch failed or was fenced, once their
    /// in-flight batches are done.
    fn resync(&mut self) {
        let s = self.shared.clone();
        let due: Vec<PartitionKey> = s
            .parts()
            .iter()
            .filter(|(_, p)| p.shared.resync.load(Ordering::SeqCst) && p.shared.in_flight.load(Ordering::SeqCst) == 0)
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let Some(offsets) = s.load_offsets(&due) else { return };
        for key in due {
            let stored = offsets.get(&key).copied();
            let offset = stored.map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = self.consumer.seek(&key.topic, key.partition, offset, Duration::from_secs(10)) {
                slog::warn!(s.log, "seek failed; will retry"; "partition" => key.to_string(), "error" => e.to_string());
                continue;
            }
            if let Some(p) = s.parts().get_mut(&key) {
                p.batcher.reset(stored.map_or(Fence::NoProgress, Fence::NextOffset));
                p.shared.resync.store(false, Ordering::SeqCst);
            }
            slog::info!(s.log, "partition resynchronised from the database"; "partition" => key.to_string(), "next_offset" => format!("{stored:?}"));
        }
    }

    /// While the brokers are unreachable, ask for metadata now and then: an answer means they
    /// are back (librdkafka calls back on failures only).
    fn probe_brokers(&self) {
        let s = &self.shared;
        if !s.brokers().probe_due(Instant::now()) {
            return;
        }
        if self.consumer.fetch_metadata(None, super::brokers::PROBE_TIMEOUT).is_ok() {
            s.brokers().on_answer(&s.log, &s.health);
        }
    }

    /// Every `HOUSEKEEPING_EVERY`: commit the database's progress to Kafka and report each
    /// partition's watermark to `HealthReporter`. `holding`: the poll loop takes nothing from
    /// librdkafka now (read-ahead full), so no partition can count as starved.
    fn housekeeping(&mut self, holding: bool) {
        if self.last_housekeeping.elapsed() < HOUSEKEEPING_EVERY {
            return;
        }
        self.last_housekeeping = Instant::now();
        self.probe_brokers();
        commit_to_kafka(&self.consumer, &self.shared, CommitMode::Async);
        // Each partition with what the reader holds of it, under one lock: (key, idle, paused).
        // Idle: nothing pending, in flight or waiting to resynchronise.
        let parts: Vec<(PartitionKey, bool, bool)> = self
            .shared
            .parts()
            .iter()
            .map(|(k, p)| {
                let idle = p.batcher.pending_len() == 0
                    && p.shared.in_flight.load(Ordering::SeqCst) == 0
                    && !p.shared.resync.load(Ordering::SeqCst);
                (k.clone(), idle, p.paused)
            })
            .collect();
        // librdkafka's position moves past records it never hands out (transaction markers,
        // aborted records): at the high watermark with nothing of ours pending, the rest is not
        // data and the partition has no lag, even though its progress is short of `high`.
        let positions: HashMap<PartitionKey, i64> = self
            .consumer
            .position()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter_map(|e| {
                        let offset = e.offset().to_raw().filter(|o| *o >= 0)?;
                        Some((PartitionKey { topic: e.topic().to_string(), partition: e.partition() }, offset))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut marks = Vec::with_capacity(parts.len());
        for (k, idle, paused) in parts {
            let (mut low, mut high) = (0i64, 0i64);
            let Ok(topic) = std::ffi::CString::new(k.topic.clone()) else { continue };
            // Cached values from the last fetch response: no network round trip.
            // SAFETY: the client pointer lives as long as the consumer we borrow it from; `topic`
            // is a NUL-terminated string alive for the call; librdkafka only writes the two i64s.
            let err = unsafe {
                rdkafka_sys::rd_kafka_get_watermark_offsets(
                    self.consumer.client().native_ptr(),
                    topic.as_ptr(),
                    k.partition,
                    &mut low,
                    &mut high,
                )
            };
            // Every assigned partition is reported, also with no known watermark: a `caught_up`
            // reported earlier must not outlive the facts it was drawn from.
            let high = (err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high);
            let at_end = high.is_some_and(|high| positions.get(&k).is_some_and(|pos| *pos >= high));
            // Starved: librdkafka should be handing this partition's records over and is not.
            // Not while the loop holds or anything is paused (a slow database fills the
            // read-ahead and the in-flight budget first, so it never starves a partition).
            let starved = idle && !at_end && !holding && !paused && !self.paused_all;
            marks.push(Watermark { partition: k, high, caught_up: at_end && idle, starved });
        }
        if !marks.is_empty() {
            self.shared.health.do_send(Watermarks(marks));
        }
    }

    /// `now` is read once per poll round, not per message (a clock read per message is
    /// measurable); linger needs no finer time.
    /// Returns the weight of the message taken (0 if it was not).
    fn accept(&self, m: &rdkafka::message::BorrowedMessage<'_>, now: Instant) -> usize {
        // Messages come in runs of one partition: reuse the key instead of allocating one each.
        let mut key = self.last_key.borrow_mut();
        if key.partition != m.partition() || key.topic != m.topic() {
            *key = PartitionKey { topic: m.topic().to_string(), partition: m.partition() };
        }
        let key = &*key;
        let mut parts = self.shared.parts();
        if let Some(p) = parts.get_mut(key) {
            if !p.shared.resync.load(Ordering::SeqCst) {
                if let Some(pos) = p.batcher.position().filter(|pos| m.offset() > *pos) {
                    // Normal on compacted or transactional topics; on others it means retention
                    // deleted data before it was ingested. Counted always, logged at most once a
                    // minute per partition.
                    let skipped = (m.offset() - pos) as u64;
                    self.shared.metrics.offsets_skipped.get_or_create(&crate::metrics::label("topic", key.topic.clone())).inc_by(skipped);
                    if p.last_gap_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        p.last_gap_warning = Some(Instant::now());
                        slog::warn!(self.shared.log, "offsets skipped: Kafka no longer has them (retention) or never delivers them (compaction, transaction markers)";
                            "partition" => key.to_string(), "expected" => pos, "got" => m.offset(), "skipped" => skipped);
                    }
                }
                let raw = to_raw(m);
                let weight = raw.weight();
                if p.batcher.push(raw, now) {
                    return weight;
                }
            }
        }
        0
    }

    pub(super) fn run(mut self) {
        let s = self.shared.clone();
        let idle_wait = s.opts.limits.linger.clamp(Duration::from_millis(1), Duration::from_millis(100));
        let mut waiting = false;
        let mut held_since: Option<Instant> = None;
        while !s.stop.load(Ordering::SeqCst) {
            self.apply_pause();
            let held_too_long = held_since.is_some_and(|t| t.elapsed() >= HOLD_MAX);
            if held_since.is_some() && !held_too_long {
                // Holding: take nothing more from librdkafka until a permit frees room.
                std::thread::sleep(Duration::from_millis(1));
            } else {
                // Wake for the first linger to run out: a poll that waited its full idle time
                // past it would add up to `idle_wait` to that batch's commit latency.
                let timeout = if waiting { Duration::from_millis(2) } else { self.poll_timeout(idle_wait) };
                match self.consumer.poll(timeout) {
                    Some(Ok(m)) => {
                        self.accept(&m, Instant::now());
                    }
                    Some(Err(e)) => s.brokers().on_consume_error(&e, &s.log),
                    None => {}
                }
                // Drain what librdkafka already has without waiting, up to the budget.
                let now = Instant::now();
                let mut room = s.opts.pending_budget_bytes.saturating_sub(self.pending_bytes());
                for _ in 0..s.opts.limits.max_messages {
                    if room == 0 {
                        break;
                    }
                    match self.consumer.poll(Duration::ZERO) {
                        Some(Ok(m)) => room = room.saturating_sub(self.accept(&m, now)),
                        Some(Err(e)) => s.brokers().on_consume_error(&e, &s.log),
                        None => break,
                    }
                }
            }
            waiting = self.dispatch(false);
            let over = self.pending_bytes() >= s.opts.pending_budget_bytes;
            held_since = if over { held_since.or_else(|| Some(Instant::now())) } else { None };
            self.backpressure(held_since.is_some_and(|t| t.elapsed() >= HOLD_MAX));
            self.resync();
            self.housekeeping(held_since.is_some());
        }
        self.drain();
    }

    /// Shutdown: stop fetching, commit everything already read, leave the group.
    fn drain(mut self) {
        let s = self.shared.clone();
        let keys: Vec<PartitionKey> = s.parts().keys().cloned().collect();
        let _ = self.consumer.pause(&tpl_of(keys.iter()));
        let deadline = Instant::now() + s.opts.shutdown_timeout;
        loop {
            // Keep serving librdkafka callbacks; anything already fetched is still accepted.
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(1)) {
                self.accept(&m, Instant::now());
            }
            self.dispatch(true);
            let busy = s.parts().values().any(|p| {
                p.shared.in_flight.load(Ordering::SeqCst) > 0 || (p.batcher.pending_len() > 0 && !p.shared.resync.load(Ordering::SeqCst))
            });
            if !busy || Instant::now() >= deadline {
                if busy {
                    slog::warn!(s.log, "shutdown deadline reached with batches in flight; they will be re-read");
                }
                break;
            }
        }
        commit_to_kafka(&self.consumer, &s, CommitMode::Sync);
        // Leaving the group runs the revoke callback, which waits for nothing now.
        self.consumer.unsubscribe();
        let close_deadline = Instant::now() + Duration::from_secs(5);
        while !s.parts().is_empty() && Instant::now() < close_deadline {
            self.consumer.poll(Duration::from_millis(10));
        }
        drop(self.consumer);
        s.parts().clear();
        slog::info!(s.log, "kafka reader stopped; left the consumer group");
    }
}

#[cfg(test)]
mod tests {
    use super::press_threshold;

    #[test]
    fn over_budget_only_the_largest_partitions_are_cut_down_to_half_the_budget() {
        // Under the budget nothing is pressed (linger and size still cut).
        assert_eq!(press_threshold(vec![100, 200, 300], 1000), None);
        // 1000 pending of a 1000 budget: cutting 500 (the largest) leaves 500 = half.
        assert_eq!(press_threshold(vec![100, 500, 0, 250, 150], 1000), Some(500));
        // Two are needed to get to half: both are pressed, the smaller ones keep growing.
        assert_eq!(press_threshold(vec![300, 300, 200, 200], 1000), Some(300));
        // Evenly spread: ties are all cut (as every partition was before this rule).
        assert_eq!(press_threshold(vec![125; 8], 1000), Some(125));
        // Nothing pending at all, a zero budget: never a threshold of 0 (that would press empty
        // partitions).
        assert_eq!(press_threshold(vec![0, 0], 0), Some(1));
    }
}
