//! The batches that travel between the actors on the data path.
//!
//! `KafkaReader` cuts a partition's messages into a [`RawBatch`], the `Parser` turns it into a
//! [`ParsedBatch`] (rows, projected messages and dead letters), the `DbWriter` commits that in
//! one transaction and answers with a [`Committed`]. Each batch knows the partition's progress it
//! continues from (the [`Fence`]) and the progress it leaves behind (`next_offset`).

use crate::project::Op;
use crate::records::{DeadLetter, EventRow, PartitionKey, RawMessage};

/// Where a batch continues from: the fence checked against `consumer_offsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// The database held no progress for this partition when it was assigned: the commit must
    /// create the row, and fails if another member created it first.
    NoProgress,
    /// The database's `next_offset` must still equal this value for the commit to go through.
    NextOffset(i64),
}

/// A contiguous run of one partition's messages, cut by size or linger.
#[derive(Debug)]
pub struct RawBatch {
    pub partition: PartitionKey,
    pub fence: Fence,
    /// The offset after the last message: the partition's progress once this batch commits.
    pub next_offset: i64,
    pub messages: Vec<RawMessage>,
    /// Monotonic per reader; lets logs and tests tell batches apart.
    pub seq: u64,
}

impl RawBatch {
    /// The records' [`RawMessage::weight`]s.
    pub fn weight(&self) -> usize {
        self.messages.iter().map(RawMessage::weight).sum()
    }
}

/// A message some projection takes: its ops, and where its record is kept.
#[derive(Debug)]
pub struct Projected {
    pub offset: i64,
    pub ops: Vec<Op>,
    pub record: Kept,
}

/// Where a projected message's record is (for the dead letter, should the table refuse it).
#[derive(Debug)]
pub enum Kept {
    /// Also archived: the record is `rows[i]`'s.
    Row(usize),
    /// Not archived (`[events]` off): kept here.
    Own(RawMessage),
}

/// The parser's output for one [`RawBatch`]: every offset is a row (archived in `events`), a
/// projected message, both, a dead letter, or counted in `unrouted`.
#[derive(Debug)]
pub struct ParsedBatch {
    pub partition: PartitionKey,
    pub fence: Fence,
    pub next_offset: i64,
    /// Rows for the `events` table (none when `[events] enabled = false`).
    pub rows: Vec<EventRow>,
    pub dead_letters: Vec<DeadLetter>,
    /// Messages for the projections, in offset order.
    pub projected: Vec<Projected>,
    /// Messages nothing took (`[events]` off, `unrouted = "skip"`).
    pub unrouted: usize,
    pub seq: u64,
    /// Number of Kafka messages this batch covers.
    pub message_count: usize,
    /// Oldest Kafka timestamp in the batch (ms), for commit-latency metrics.
    pub oldest_timestamp_ms: Option<i64>,
}

impl ParsedBatch {
    /// The record of a projected message.
    pub fn record_of<'a>(&'a self, p: &'a Projected) -> &'a RawMessage {
        match &p.record {
            Kept::Row(i) => &self.rows[*i].original,
            Kept::Own(m) => m,
        }
    }

    /// Approximate bytes the batch holds: each row's record ([`RawMessage::weight`]), each
    /// projected message's ops and coerced cells, and each dead letter's payload and headers.
    pub fn weight(&self) -> usize {
        let own = self.projected.iter().map(|p| {
            let ops: usize = p.ops.iter().map(Op::weight).sum();
            ops + match &p.record {
                Kept::Own(m) => m.weight(),
                Kept::Row(_) => 32,
            }
        });
        let rows = self.rows.iter().map(|r| r.original.weight()).chain(own);
        let dead = self.dead_letters.iter().map(|d| d.payload.as_ref().map_or(0, Vec::len) + d.headers.len() + 64);
        rows.chain(dead).sum()
    }
}

/// The writer's answer for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Rows, dead letters and the new offset are durable.
    Committed { rows: usize, dead_letters: usize },
    /// The fence failed: another member advanced this partition; nothing was written. The
    /// reader must resume from `db_next_offset` if it still owns the partition.
    Fenced { db_next_offset: Option<i64> },
}

/// Reply to a write: what happened to batch `seq` of `partition`.
#[derive(Debug, Clone)]
pub struct Committed {
    pub partition: PartitionKey,
    pub next_offset: i64,
    pub seq: u64,
    pub outcome: CommitOutcome,
}
