//! `KafkaReader`: the consumer-group member that feeds the pipeline.
//!
//! The actor owns a dedicated poll thread (librdkafka's consumer is a blocking API, and its
//! rebalance callback must query the database before assigning). The thread:
//! - cuts each partition's messages into [`RawBatch`]es (count, bytes, linger);
//! - hands each batch to that partition's pipeline task, at most `max_in_flight` batches in all
//!   (a semaphore); partitions whose pending messages pile up are paused, never dropped;
//! - on assignment reads `consumer_offsets` through the `DbWriter` and starts each partition
//!   there (the database, not Kafka, is the source of truth); on revocation waits (bounded) for
//!   the partition's in-flight batches;
//! - commits the database's progress to Kafka (async) so standard lag tools work.
//!
//! Each partition's pipeline task runs on the actor's arbiter: it sends the batch to the
//! `Parser` (awaited `send`) and hands the parsed batch to the reader's committer, awaiting its
//! answer. Parsing of the next batches overlaps the current write, but writes of one partition
//! happen strictly in order. The committer groups whatever parsed batches of different
//! partitions are ready into one [`WriteGroup`] — one database transaction — with at most
//! `concurrent_commits` transactions at a time: the per-transaction cost is paid once per group,
//! not once per partition. If a write fails or is fenced, the partition is re-synchronised: the
//! thread waits for its in-flight batches, reloads its progress from the database and seeks there.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backoff::Backoff;
use crate::batch::{BatchLimits, PartitionBatcher};
use crate::breaker::Breaker;
use crate::health::{ActorFailed, ActorRestartRequested, ActorStarted, ActorStopped, Assigned, HealthReporter, Paused, Progress, Restart, Revoked, Watermark, Watermarks};
use crate::messages::{CommitOutcome, Committed, Fence, ParsedBatch, PartitionKey, RawBatch, RawMessage};
use crate::metrics::Metrics;
use crate::parser::{ParseBatch, Parser};
use crate::writer::{DbWriter, GroupWritten, LoadOffsets, WriteGroup};

/// Parses of one partition that may run ahead of its write.
const PARSE_AHEAD: usize = 2;
/// How often DB progress is committed to Kafka and watermarks are read.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// How long the poll loop may stop taking messages (pending bytes over budget) before it pauses
/// the partitions instead: callbacks (rebalances) are served by the same poll, so this bounds
/// how long one can wait.
const HOLD_MAX: Duration = Duration::from_millis(500);

// ---- messages -------------------------------------------------------------------------------

/// Stop fetching, commit what is in flight, leave the group. Answers when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Pause or resume consumption (group membership is kept).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

// ---- options --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// librdkafka properties (bootstrap.servers, group.id and anything passed through).
    pub client_config: BTreeMap<String, String>,
    pub group_id: String,
    pub topics: Vec<String>,
    pub limits: BatchLimits,
    /// Batches handed to parser/writer and not yet committed, across all partitions.
    pub max_in_flight: usize,
    /// Bytes of messages in those batches (approximate, by message weight).
    pub max_in_flight_bytes: usize,
    /// Transactions the committer runs at once (1 for SQLite, which has one write lock).
    pub concurrent_commits: usize,
    /// Bytes of messages read but not yet handed on, across all partitions, before the reader
    /// pauses fetching.
    pub pending_budget_bytes: usize,
    /// How long a revocation waits for the partition's in-flight batches.
    pub revoke_timeout: Duration,
    /// How long a shutdown waits for in-flight batches to commit.
    pub shutdown_timeout: Duration,
    /// Delay between restarts of a failed reader.
    pub restart_backoff: Backoff,
    /// The database circuit breaker: while open, fetching is paused.
    pub breaker: Breaker,
}

/// A byte budget as semaphore permits of one KiB each.
fn kib_budget(bytes: usize) -> usize {
    (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize))
}

/// Progress durable in the database, waiting to be committed to Kafka.
type KafkaCommits = Arc<Mutex<HashMap<PartitionKey, i64>>>;

// ---- state shared between the poll thread and the pipeline tasks ----------------------------

/// Per-partition counters shared with its pipeline task.
#[derive(Default)]
struct PartitionShared {
    in_flight: AtomicUsize,
    /// Set when a batch failed or was fenced: the partition must reload its progress.
    resync: AtomicBool,
}

/// What a batch holds while in flight: its share of the count and byte budgets.
struct InFlight {
    _batch: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// A parsed batch handed to the committer, and where its answer goes.
struct Submit {
    batch: ParsedBatch,
    reply: oneshot::Sender<Result<Committed, String>>,
}

struct PartitionState {
    batcher: PartitionBatcher,
    shared: Arc<PartitionShared>,
    tx: mpsc::UnboundedSender<(RawBatch, InFlight)>,
    /// Paused for backpressure (too many pending messages).
    paused: bool,
    last_gap_warning: Option<Instant>,
}

/// Everything the poll thread and the rebalance callback share.
struct Shared {
    opts: ReaderOptions,
    stop: AtomicBool,
    paused: AtomicBool,
    permits: Arc<Semaphore>,
    /// In-flight byte budget, one permit per KiB.
    byte_permits: Arc<Semaphore>,
    /// Parsed batches on their way to the database.
    commits: mpsc::UnboundedSender<Submit>,
    /// Progress durable in the database, waiting to be committed to Kafka.
    kafka_commits: KafkaCommits,
    parts: Mutex<HashMap<PartitionKey, PartitionState>>,
    parser: Addr<Parser>,
    writer: Addr<DbWriter>,
    health: Addr<HealthReporter>,
    metrics: Metrics,
    arbiter: ArbiterHandle,
    log: slog::Logger,
}

impl Shared {
    fn parts(&self) -> MutexGuard<'_, HashMap<PartitionKey, PartitionState>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read the database's progress, retrying until it answers or we are stopping.
    fn load_offsets(&self, keys: &[PartitionKey]) -> Option<HashMap<PartitionKey, i64>> {
        let mut attempt = 0;
        loop {
            match futures::executor::block_on(self.writer.send(LoadOffsets(keys.to_vec()))) {
                Ok(Ok(map)) => return Some(map),
                Ok(Err(e)) => slog::warn!(self.log, "cannot read consumer_offsets; retrying"; "error" => e.to_string()),
                Err(e) => slog::warn!(self.log, "db_writer unavailable; retrying"; "error" => e.to_string()),
            }
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            std::thread::sleep(self.opts.restart_backoff.delay(attempt, &mut rand::rng()));
            attempt += 1;
        }
    }

    fn start_partition(&self, key: PartitionKey, fence: Fence) -> PartitionState {
        let (tx, rx) = mpsc::unbounded();
        let shared = Arc::new(PartitionShared::default());
        let pipeline = pipeline(
            key.clone(),
            rx,
            shared.clone(),
            self.parser.clone(),
            self.commits.clone(),
            self.health.clone(),
            self.metrics.clone(),
            self.log.clone(),
            self.kafka_commits.clone(),
        );
        self.arbiter.spawn(pipeline);
        PartitionState { batcher: PartitionBatcher::new(key, fence), shared, tx, paused: false, last_gap_warning: None }
    }

    /// The in-flight byte budget in KiB.
    fn budget_kib(&self) -> usize {
        kib_budget(self.opts.max_in_flight_bytes)
    }

    /// Whether every partition must stay paused: an operator asked, or the database breaker is
    /// open.
    fn holding(&self) -> bool {
        self.paused.load(Ordering::SeqCst) || self.opts.breaker.is_open()
    }

    /// Wait (bounded) until these partitions have nothing in flight.
    fn wait_idle(&self, keys: &[PartitionKey], timeout: Duration) -> bool {
        let counters: Vec<Arc<PartitionShared>> =
            self.parts().iter().filter(|(k, _)| keys.contains(k)).map(|(_, p)| p.shared.clone()).collect();
        let deadline = Instant::now() + timeout;
        while counters.iter().any(|c| c.in_flight.load(Ordering::SeqCst) > 0) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

// ---- the consumer context: logging and the rebalance protocol -------------------------------

pub struct ReaderContext {
    shared: Arc<Shared>,
}

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let log = &self.shared.log;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                slog::error!(log, "librdkafka: {}", log_message; "facility" => fac)
            }
            RDKafkaLogLevel::Warning => slog::warn!(log, "librdkafka: {}", log_message; "facility" => fac),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => slog::info!(log, "librdkafka: {}", log_message; "facility" => fac),
            RDKafkaLogLevel::Debug => slog::debug!(log, "librdkafka: {}", log_message; "facility" => fac),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        slog::warn!(self.shared.log, "kafka client error"; "error" => error.to_string(), "reason" => reason);
    }
}

fn keys_of(tpl: &TopicPartitionList) -> Vec<PartitionKey> {
    tpl.elements().iter().map(|e| PartitionKey { topic: e.topic().to_string(), partition: e.partition() }).collect()
}

impl ConsumerContext for ReaderContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let s = &self.shared;
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let keys = keys_of(tpl);
                let Some(offsets) = s.load_offsets(&keys) else { return };
                let mut report = Vec::new();
                {
                    let mut parts = s.parts();
                    for key in &keys {
                        let stored = offsets.get(key).copied();
                        let offset = stored.map_or(Offset::Stored, Offset::Offset);
                        if let Err(e) = tpl.set_partition_offset(&key.topic, key.partition, offset) {
                            slog::error!(s.log, "cannot set start offset"; "partition" => key.to_string(), "error" => e.to_string());
                        }
                        let fence = stored.map_or(Fence::NoProgress, Fence::NextOffset);
                        parts.insert(key.clone(), s.start_partition(key.clone(), fence));
                        report.push((key.clone(), stored));
                    }
                }
                let res = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = res {
                    slog::error!(s.log, "assign failed"; "error" => e.to_string());
                }
                // librdkafka keeps a partition's pause flag across unassign/assign; a partition
                // paused for backpressure before the rebalance would stay paused forever. Start
                // every assigned partition in the state the reader wants now.
                let res = if s.holding() { consumer.pause(tpl) } else { consumer.resume(tpl) };
                if let Err(e) = res {
                    slog::warn!(s.log, "setting pause state after assignment failed"; "error" => e.to_string());
                }
                slog::info!(s.log, "partitions assigned"; "partitions" => keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
                s.health.do_send(Assigned(report));
            }
            _ => {
                if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    slog::error!(s.log, "rebalance error; dropping the assignment"; "error" => format!("{err:?}"));
                }
                let keys = if cooperative { keys_of(tpl) } else { s.parts().keys().cloned().collect() };
                // Stop cutting batches for these partitions; let in-flight ones finish so the
                // next owner starts from the latest committed offset.
                for key in &keys {
                    if let Some(p) = s.parts().get_mut(key) {
                        p.batcher.reset(Fence::NoProgress);
                        p.shared.resync.store(true, Ordering::SeqCst);
                    }
                }
                if !s.wait_idle(&keys, s.opts.revoke_timeout) {
                    slog::warn!(s.log, "revocation timed out waiting for in-flight batches; the fence keeps them safe");
                }
                commit_to_kafka(consumer, s, CommitMode::Sync);
                {
                    let mut parts = s.parts();
                    for key in &keys {
                        parts.remove(key);
                    }
                }
                let res = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = res {
                    slog::warn!(s.log, "unassign failed"; "error" => e.to_string());
                }
                slog::info!(s.log, "partitions revoked"; "partitions" => keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
                s.health.do_send(Revoked(keys));
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            slog::debug!(self.shared.log, "kafka offset commit failed (the database holds the truth)"; "error" => e.to_string());
        }
    }
}

/// Commit the database's progress to Kafka, for lag tools. Never a source of truth.
fn commit_to_kafka(consumer: &BaseConsumer<ReaderContext>, s: &Shared, mode: CommitMode) {
    let pending: Vec<(PartitionKey, i64)> = {
        let mut c = s.kafka_commits.lock().unwrap_or_else(|e| e.into_inner());
        c.drain().collect()
    };
    if pending.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (k, next) in &pending {
        let _ = tpl.add_partition_offset(&k.topic, k.partition, Offset::Offset(*next));
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        slog::debug!(s.log, "kafka offset commit failed (the database holds the truth)"; "error" => e.to_string());
    }
}

// ---- the pipeline task of one partition -----------------------------------------------------

#[allow(clippy::too_many_arguments)]
async fn pipeline(
    key: PartitionKey,
    rx: mpsc::UnboundedReceiver<(RawBatch, InFlight)>,
    part: Arc<PartitionShared>,
    parser: Addr<Parser>,
    commits: mpsc::UnboundedSender<Submit>,
    health: Addr<HealthReporter>,
    metrics: Metrics,
    log: slog::Logger,
    kafka_commits: KafkaCommits,
) {
    let mut parsed = rx
        .map(|(raw, permit)| {
            let parser = parser.clone();
            async move { (parser.send(ParseBatch(raw)).await, permit) }
        })
        .buffered(PARSE_AHEAD);
    while let Some((parse_result, permit)) = parsed.next().await {
        // After a failure every later batch of the partition would break the chain: skip them
        // until the poll thread has reloaded the progress.
        if !part.resync.load(Ordering::SeqCst) {
            let write_result = match parse_result {
                Ok(Ok(batch)) => submit(&commits, batch).await,
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("parser unavailable: {e}")),
            };
            match write_result {
                Ok(c) => match c.outcome {
                    CommitOutcome::Committed { .. } => {
                        kafka_commits.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), c.next_offset);
                        health.do_send(Progress { partition: key.clone(), next_offset: c.next_offset });
                    }
                    CommitOutcome::Fenced { .. } => part.resync.store(true, Ordering::SeqCst),
                },
                Err(e) => {
                    slog::error!(log, "batch not committed; the partition will resume from the database's progress"; "partition" => key.to_string(), "error" => e);
                    part.resync.store(true, Ordering::SeqCst);
                }
            }
        }
        metrics.in_flight_batches.dec();
        part.in_flight.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
    }
}

/// Hand a parsed batch to the committer and wait for its answer.
async fn submit(commits: &mpsc::UnboundedSender<Submit>, batch: ParsedBatch) -> Result<Committed, String> {
    let (reply, answer) = oneshot::channel();
    commits.unbounded_send(Submit { batch, reply }).map_err(|_| "the committer has stopped".to_string())?;
    answer.await.map_err(|_| "the committer dropped the batch".to_string())?
}

// ---- the committer: ready batches of many partitions, one transaction -------------------------

/// Group the parsed batches waiting in `rx` into transactions of at most `max_messages`
/// messages (at least one batch), running up to `concurrency` of them at once. Batches of one
/// partition never meet in a group or run concurrently: a pipeline submits its next batch only
/// after the answer for the previous one. Ends when every sender is gone and all work is done.
async fn committer(mut rx: mpsc::UnboundedReceiver<Submit>, writer: Addr<DbWriter>, max_messages: usize, concurrency: usize) {
    let mut queue: VecDeque<Submit> = VecDeque::new();
    let mut running = FuturesUnordered::new();
    let mut open = true;
    loop {
        while open {
            match rx.try_recv() {
                Ok(s) => queue.push_back(s),
                Err(mpsc::TryRecvError::Closed) => open = false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        while running.len() < concurrency.max(1) && !queue.is_empty() {
            let mut group = Vec::new();
            let mut messages = 0;
            while let Some(next) = queue.front() {
                if !group.is_empty() && messages + next.batch.message_count > max_messages {
                    break;
                }
                messages += next.batch.message_count;
                group.extend(queue.pop_front());
            }
            running.push(write_group(writer.clone(), group));
        }
        if !open && queue.is_empty() && running.is_empty() {
            return;
        }
        tokio::select! {
            item = rx.next(), if open => match item {
                Some(s) => queue.push_back(s),
                None => open = false,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
}

/// One transaction for a group; each batch's submitter gets its own answer.
async fn write_group(writer: Addr<DbWriter>, group: Vec<Submit>) {
    let (batches, replies): (Vec<ParsedBatch>, Vec<_>) = group.into_iter().map(|s| (s.batch, s.reply)).unzip();
    match writer.send(WriteGroup(batches)).await {
        Ok(Ok(GroupWritten { answers, batches })) => {
            for (answer, reply) in answers.into_iter().zip(replies) {
                let _ = reply.send(Ok(answer));
            }
            // Freed here, after the answers, off the writer's thread.
            drop(batches);
        }
        Ok(Err(e)) => replies.into_iter().for_each(|r| drop(r.send(Err(e.to_string())))),
        Err(e) => replies.into_iter().for_each(|r| drop(r.send(Err(format!("db_writer unavailable: {e}"))))),
    }
}

// ---- the poll thread ------------------------------------------------------------------------

fn to_raw(m: &rdkafka::message::BorrowedMessage<'_>) -> RawMessage {
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
fn pending_total(parts: &HashMap<PartitionKey, PartitionState>) -> usize {
    parts.values().map(|p| p.batcher.pending_bytes()).sum()
}

/// Given each partition's pending bytes, over `budget`: the pending bytes from which a
/// partition is cut now — the largest partitions, enough of them to bring the total down to half
/// the budget. Under it: none.
fn press_threshold(mut sizes: Vec<usize>, budget: usize) -> Option<usize> {
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

fn tpl_of<'a>(keys: impl Iterator<Item = &'a PartitionKey>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for k in keys {
        tpl.add_partition(&k.topic, k.partition);
    }
    tpl
}

struct PollLoop {
    consumer: BaseConsumer<ReaderContext>,
    shared: Arc<Shared>,
    seq: u64,
    paused_all: bool,
    reported_pause: bool,
    last_housekeeping: Instant,
    /// The partition of the last message accepted.
    last_key: std::cell::RefCell<PartitionKey>,
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
        // budget. Cutting every partition at once made batches of budget ÷ partitions (a few
        // hundred messages with 8), and the per-transaction cost then dominated the database's
        // work; the partitions left keep growing towards a full batch (their linger still bounds
        // their wait).
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
                let kib = (p.batcher.pending_bytes().min(limits.max_bytes) / 1024).clamp(1, s.budget_kib());
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
        let first = self.shared.parts()
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

    /// Every `HOUSEKEEPING_EVERY`: commit the database's progress to Kafka and report each
    /// partition's watermark to `HealthReporter`. `holding`: the poll loop takes nothing from
    /// librdkafka now (read-ahead full), so no partition can count as starved.
    fn housekeeping(&mut self, holding: bool) {
        if self.last_housekeeping.elapsed() < HOUSEKEEPING_EVERY {
            return;
        }
        self.last_housekeeping = Instant::now();
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

    /// `now` is read once per poll round, not per message (a clock read per message cost 3 % of
    /// the service's CPU); linger needs no finer time.
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

    fn run(mut self) {
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
                    Some(Err(e)) => slog::warn!(s.log, "consume error"; "error" => e.to_string()),
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
                        Some(Err(e)) => slog::warn!(s.log, "consume error"; "error" => e.to_string()),
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
                p.shared.in_flight.load(Ordering::SeqCst) > 0
                    || (p.batcher.pending_len() > 0 && !p.shared.resync.load(Ordering::SeqCst))
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

// ---- the actor --------------------------------------------------------------------------------

struct PollThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    done: Option<oneshot::Receiver<()>>,
}

pub struct KafkaReader {
    opts: ReaderOptions,
    parser: Addr<Parser>,
    writer: Addr<DbWriter>,
    health: Addr<HealthReporter>,
    metrics: Metrics,
    log: slog::Logger,
    poll: Option<PollThread>,
    restarts: u32,
    /// The next start follows an operator's restart: no backoff.
    restart_now: bool,
    paused: bool,
    shutting_down: bool,
}

impl KafkaReader {
    pub fn new(
        opts: ReaderOptions,
        parser: Addr<Parser>,
        writer: Addr<DbWriter>,
        health: Addr<HealthReporter>,
        metrics: Metrics,
        log: slog::Logger,
    ) -> Self {
        Self { opts, parser, writer, health, metrics, log, poll: None, restarts: 0, restart_now: false, paused: false, shutting_down: false }
    }

    fn start_consumer(&mut self, ctx: &mut Context<Self>) {
        let (commits, commit_queue) = mpsc::unbounded();
        let max_group = self.opts.limits.max_messages;
        Arbiter::current().spawn(committer(commit_queue, self.writer.clone(), max_group, self.opts.concurrent_commits));
        let shared = Arc::new(Shared {
            opts: self.opts.clone(),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(self.paused),
            permits: Arc::new(Semaphore::new(self.opts.max_in_flight.max(1))),
            byte_permits: Arc::new(Semaphore::new(kib_budget(self.opts.max_in_flight_bytes))),
            commits,
            kafka_commits: Arc::new(Mutex::new(HashMap::new())),
            parts: Mutex::new(HashMap::new()),
            parser: self.parser.clone(),
            writer: self.writer.clone(),
            health: self.health.clone(),
            metrics: self.metrics.clone(),
            arbiter: Arbiter::current(),
            log: self.log.clone(),
        });
        let mut config = ClientConfig::new();
        for (k, v) in &self.opts.client_config {
            config.set(k, v);
        }
        config.set("group.id", &self.opts.group_id);
        // The database is the source of truth for progress; Kafka commits are informational.
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        let consumer: Result<BaseConsumer<ReaderContext>, _> =
            config.create_with_context(ReaderContext { shared: shared.clone() });
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => return self.fail(ctx, format!("cannot create the Kafka consumer: {e}")),
        };
        let topics: Vec<&str> = self.opts.topics.iter().map(String::as_str).collect();
        if let Err(e) = consumer.subscribe(&topics) {
            return self.fail(ctx, format!("cannot subscribe to {topics:?}: {e}"));
        }
        let (done_tx, done_rx) = oneshot::channel();
        let thread_shared = shared.clone();
        let spawned = std::thread::Builder::new().name("kafka-poll".into()).spawn(move || {
            let poll = PollLoop { consumer, shared: thread_shared, seq: 0, paused_all: false, reported_pause: false, last_housekeeping: Instant::now(), last_key: PartitionKey { topic: String::new(), partition: -1 }.into() };
            poll.run();
            let _ = done_tx.send(());
        });
        match spawned {
            Ok(handle) => {
                self.poll = Some(PollThread { shared, handle: Some(handle), done: Some(done_rx) });
                self.health.do_send(ActorStarted("kafka_reader"));
                slog::info!(self.log, "kafka reader started"; "topics" => self.opts.topics.join(","), "group_id" => &self.opts.group_id);
            }
            Err(e) => self.fail(ctx, format!("cannot start the poll thread: {e}")),
        }
    }

    fn fail(&mut self, ctx: &mut Context<Self>, error: String) {
        self.health.do_send(ActorFailed { name: "kafka_reader", error });
        ctx.stop();
    }

    /// A poll thread that ended without being asked to (a panic) means the reader failed.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        let died = self.poll.as_ref().is_some_and(|p| {
            !p.shared.stop.load(Ordering::SeqCst) && p.handle.as_ref().is_some_and(JoinHandle::is_finished)
        });
        if died {
            let reason = match self.poll.as_mut().and_then(|p| p.handle.take()).map(JoinHandle::join) {
                Some(Err(panic)) => crate::parser::panic_message(&*panic),
                _ => "poll thread ended".to_string(),
            };
            self.poll = None;
            self.fail(ctx, reason);
        }
    }
}

impl Actor for KafkaReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.restarts == 0 || std::mem::take(&mut self.restart_now) {
            self.start_consumer(ctx);
        } else {
            let delay = self.opts.restart_backoff.delay(self.restarts - 1, &mut rand::rng());
            ctx.run_later(delay, |act, ctx| act.start_consumer(ctx));
        }
        ctx.run_interval(Duration::from_millis(500), |act, ctx| act.watch(ctx));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        // Let the poll thread drain on its own; it needs this arbiter for in-flight batches.
        if let Some(p) = self.poll.take() {
            p.shared.stop.store(true, Ordering::SeqCst);
        }
        Running::Stop
    }
}

impl Supervised for KafkaReader {
    fn restarting(&mut self, _: &mut Self::Context) {
        if !self.shutting_down {
            self.restarts += 1;
        }
    }
}

impl Handler<Shutdown> for KafkaReader {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        let health = self.health.clone();
        let done = self.poll.as_mut().and_then(|p| {
            p.shared.stop.store(true, Ordering::SeqCst);
            p.done.take()
        });
        Box::pin(async move {
            if let Some(done) = done {
                let _ = done.await;
            }
            health.do_send(ActorStopped("kafka_reader"));
        })
    }
}

impl Handler<SetPaused> for KafkaReader {
    type Result = ();

    fn handle(&mut self, msg: SetPaused, _: &mut Self::Context) {
        self.paused = msg.0;
        if let Some(p) = &self.poll {
            p.shared.paused.store(msg.0, Ordering::SeqCst);
        }
    }
}

impl Handler<Restart> for KafkaReader {
    type Result = ();

    /// Stop (the poll thread drains and leaves the group) and let the supervisor start a fresh
    /// consumer at once.
    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        if self.shutting_down {
            return;
        }
        self.health.do_send(ActorRestartRequested("kafka_reader"));
        self.restart_now = true;
        ctx.stop();
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
