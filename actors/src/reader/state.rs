//! What the poll thread, the rebalance callback and the pipeline tasks share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::batch::PartitionBatcher;
use crate::batches::{Committed, ParsedBatch, RawBatch};
use crate::health::HealthReporter;
use crate::metrics::Metrics;
use crate::parser::Parser;
use crate::records::PartitionKey;
use crate::writer::{DbWriter, LoadOffsets};

use super::options::ReaderOptions;

/// Why a batch was not committed (its partition then resumes from the database's progress).
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum BatchFailed {
    #[error("{0}")]
    Parse(#[source] crate::parser::ParseFailed),
    #[error("the parser did not answer: {0}")]
    ParserUnavailable(#[source] actix::MailboxError),
    /// One failed transaction answers every batch of its group.
    #[error("{0}")]
    Write(#[source] Arc<crate::writer::WriteFailed>),
    #[error("db_writer did not answer: {0}")]
    WriterUnavailable(#[source] actix::MailboxError),
    #[error("the committer has stopped")]
    CommitterStopped,
}

/// A byte budget as semaphore permits of one KiB each.
pub(super) fn kib_budget(bytes: usize) -> usize {
    (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize))
}

/// Progress durable in the database, waiting to be committed to Kafka.
pub(super) type KafkaCommits = Arc<Mutex<HashMap<PartitionKey, i64>>>;

/// Per-partition counters shared with its pipeline task.
#[derive(Default)]
pub(super) struct PartitionShared {
    pub(super) in_flight: AtomicUsize,
    /// Set when a batch failed or was fenced: the partition must reload its progress.
    pub(super) resync: AtomicBool,
    /// How much larger the partition's last batch was parsed than read, in percent (0: none
    /// parsed yet): a batch reserves its read bytes grown by this much, so the in-flight budget
    /// bounds what batches hold once parsed (projections' coerced cells beside the records).
    pub(super) growth_percent: AtomicUsize,
}

impl PartitionShared {
    /// The byte budget a batch of `read` bytes reserves.
    pub(super) fn reserve_bytes(&self, read: usize) -> usize {
        read.saturating_mul(self.growth_percent.load(Ordering::Relaxed).max(100)) / 100
    }
}

/// What a batch holds while in flight: its share of the count and byte budgets.
pub(super) struct InFlight {
    pub(super) _batch: OwnedSemaphorePermit,
    pub(super) _bytes: OwnedSemaphorePermit,
}

/// A parsed batch handed to the committer, and where its answer goes.
pub(super) struct Submit {
    pub(super) batch: ParsedBatch,
    pub(super) reply: oneshot::Sender<Result<Committed, BatchFailed>>,
}

pub(super) struct PartitionState {
    pub(super) batcher: PartitionBatcher,
    pub(super) shared: Arc<PartitionShared>,
    pub(super) tx: mpsc::UnboundedSender<(RawBatch, InFlight)>,
    /// Paused for backpressure (too many pending messages).
    pub(super) paused: bool,
    pub(super) last_gap_warning: Option<Instant>,
}

/// Everything the poll thread and the rebalance callback share.
pub(super) struct Shared {
    pub(super) opts: ReaderOptions,
    pub(super) stop: AtomicBool,
    pub(super) paused: AtomicBool,
    pub(super) permits: Arc<Semaphore>,
    /// In-flight byte budget, one permit per KiB.
    pub(super) byte_permits: Arc<Semaphore>,
    /// Parsed batches on their way to the database.
    pub(super) commits: mpsc::UnboundedSender<Submit>,
    /// Progress durable in the database, waiting to be committed to Kafka.
    pub(super) kafka_commits: KafkaCommits,
    pub(super) parts: Mutex<HashMap<PartitionKey, PartitionState>>,
    pub(super) parser: Addr<Parser>,
    pub(super) writer: Addr<DbWriter>,
    pub(super) health: Addr<HealthReporter>,
    pub(super) metrics: Metrics,
    pub(super) arbiter: ArbiterHandle,
    /// Broker reachability and the throttle on librdkafka's repeated lines.
    pub(super) brokers: Mutex<super::brokers::Brokers>,
    pub(super) log: slog::Logger,
}

impl Shared {
    pub(super) fn brokers(&self) -> MutexGuard<'_, super::brokers::Brokers> {
        self.brokers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn parts(&self) -> MutexGuard<'_, HashMap<PartitionKey, PartitionState>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read the database's progress, retrying until it answers or we are stopping.
    pub(super) fn load_offsets(&self, keys: &[PartitionKey]) -> Option<HashMap<PartitionKey, i64>> {
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

    /// The in-flight byte budget in KiB.
    pub(super) fn budget_kib(&self) -> usize {
        kib_budget(self.opts.max_in_flight_bytes)
    }

    /// Whether every partition must stay paused: an operator asked, or the database breaker is
    /// open.
    pub(super) fn holding(&self) -> bool {
        self.paused.load(Ordering::SeqCst) || self.opts.breaker.is_open()
    }

    /// Wait (bounded) until these partitions have nothing in flight.
    pub(super) fn wait_idle(&self, keys: &[PartitionKey], timeout: Duration) -> bool {
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
