//! The pipeline task of one partition: parse each batch (awaited), hand it to the committer,
//! await its answer; the next batches parse meanwhile, writes stay in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

use crate::batch::PartitionBatcher;
use crate::batches::{CommitOutcome, Committed, Fence, ParsedBatch, RawBatch};
use crate::health::{HealthReporter, Progress};
use crate::metrics::Metrics;
use crate::parser::{ParseBatch, Parser};
use crate::records::PartitionKey;

use super::state::*;

/// A newly assigned partition's state, its pipeline task started on the reader's arbiter.
pub(super) fn start_partition(s: &Shared, key: PartitionKey, fence: Fence) -> PartitionState {
    let (tx, rx) = mpsc::unbounded();
    let shared = Arc::new(PartitionShared::default());
    let pipeline = pipeline(
        key.clone(),
        rx,
        shared.clone(),
        s.parser.clone(),
        s.commits.clone(),
        s.health.clone(),
        s.metrics.clone(),
        s.log.clone(),
        s.kafka_commits.clone(),
    );
    s.arbiter.spawn(pipeline);
    PartitionState { batcher: PartitionBatcher::new(key, fence), shared, tx, paused: false, last_gap_warning: None }
}

/// Parses of one partition that may run ahead of its write.
pub(super) const PARSE_AHEAD: usize = 2;

#[allow(clippy::too_many_arguments)]
pub(super) async fn pipeline(
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
            let read = raw.weight();
            async move { (parser.send(ParseBatch(raw)).await, permit, read) }
        })
        .buffered(PARSE_AHEAD);
    while let Some((parse_result, permit, read)) = parsed.next().await {
        if let Ok(Ok(batch)) = &parse_result {
            part.growth_percent.store(batch.weight().saturating_mul(100) / read.max(1), Ordering::Relaxed);
        }
        // After a failure every later batch of the partition would break the chain: skip them
        // until the poll thread has reloaded the progress.
        if !part.resync.load(Ordering::SeqCst) {
            let write_result = match parse_result {
                Ok(Ok(batch)) => submit(&commits, batch).await,
                Ok(Err(e)) => Err(BatchFailed::Parse(e)),
                Err(e) => Err(BatchFailed::ParserUnavailable(e)),
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
                    slog::error!(log, "batch not committed; the partition will resume from the database's progress"; "partition" => key.to_string(), "error" => e.to_string());
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
pub(super) async fn submit(commits: &mpsc::UnboundedSender<Submit>, batch: ParsedBatch) -> Result<Committed, BatchFailed> {
    let (reply, answer) = oneshot::channel();
    commits.unbounded_send(Submit { batch, reply }).map_err(|_| BatchFailed::CommitterStopped)?;
    answer.await.map_err(|_| BatchFailed::CommitterStopped)?
}
