//! The data types that travel between the actors on the data path.
//!
//! `KafkaReader` cuts a partition's messages into a [`RawBatch`], the `Parser` turns it into a
//! [`ParsedBatch`] (rows and dead letters), the `DbWriter` commits that in one transaction and
//! answers with a [`Committed`]. Each batch knows the partition's progress it continues from
//! (`start_offset`, the fence) and the progress it leaves behind (`next_offset`).

use chrono::{DateTime, Utc};

/// One Kafka record as the reader saw it: owned bytes, so it can cross threads.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone (null value).
    pub payload: Option<Vec<u8>>,
    /// Headers in record order; a header may have a null value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Kafka's timestamp (create or log-append time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl RawMessage {
    /// Approximate heap bytes held by this message, for memory accounting.
    pub fn weight(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
            + 64
    }
}

/// Identifies a partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

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

/// A row for the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub time: Option<DateTime<Utc>>,
    pub kafka_timestamp: Option<DateTime<Utc>>,
    /// The text columns (id, source, type, subject, datacontenttype, data, headers).
    pub text: RowText,
    /// The record as it arrived (moved, not copied, from the [`RawMessage`]): if the database
    /// refuses the row, it becomes a dead letter that keeps the payload and headers whole.
    pub original: Original,
}

impl EventRow {
    pub fn event_id(&self) -> Option<&str> {
        self.text.get(Col::EventId)
    }
    pub fn source(&self) -> Option<&str> {
        self.text.get(Col::Source)
    }
    pub fn event_type(&self) -> Option<&str> {
        self.text.get(Col::EventType)
    }
    pub fn subject(&self) -> Option<&str> {
        self.text.get(Col::Subject)
    }
    pub fn datacontenttype(&self) -> Option<&str> {
        self.text.get(Col::DataContentType)
    }
    /// JSON text, already validated (no NUL characters, bounded depth).
    pub fn data(&self) -> Option<&str> {
        self.text.get(Col::Data)
    }
    /// Remaining Kafka headers (and CloudEvents extensions) as a JSON object.
    pub fn headers(&self) -> &str {
        self.text.get(Col::Headers).unwrap_or("{}")
    }
}

/// The text columns of an `events` row, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    EventId,
    Source,
    EventType,
    Subject,
    DataContentType,
    Data,
    Headers,
}

const COLS: usize = 7;

/// A row's text columns in one allocation: seven separate `String`s per row cost seven
/// allocations (freed on another thread) and their headers; this is one buffer and the ends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowText {
    buf: String,
    ends: [usize; COLS],
    /// Bit `i` set: column `i` is NULL.
    nulls: u8,
}

impl RowText {
    pub fn get(&self, col: Col) -> Option<&str> {
        let i = col as usize;
        if self.nulls & (1 << i) != 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.buf.get(start..self.ends[i])
    }
}

/// Builds a [`RowText`] column by column, in [`Col`] order.
pub struct RowTextBuilder {
    buf: Vec<u8>,
    ends: [usize; COLS],
    nulls: u8,
    next: usize,
}

impl RowTextBuilder {
    pub fn with_capacity(bytes: usize) -> Self {
        Self { buf: Vec::with_capacity(bytes), ends: [0; COLS], nulls: 0, next: 0 }
    }

    /// The next column's value.
    pub fn push(mut self, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.buf.extend_from_slice(v.as_bytes()),
            None => self.nulls |= 1 << self.next,
        }
        self.end()
    }

    /// The next column, written by `write` (which must write UTF-8).
    pub fn push_with(mut self, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        write(&mut self.buf);
        self.end()
    }

    fn end(mut self) -> Self {
        if self.next < COLS {
            self.ends[self.next] = self.buf.len();
            self.next += 1;
        }
        self
    }

    pub fn finish(mut self) -> RowText {
        while self.next < COLS {
            self = self.push(None);
        }
        RowText { buf: utf8_string(self.buf), ends: self.ends, nulls: self.nulls }
    }
}

/// Bytes written as UTF-8 (JSON, copied `&str`s) as a `String`; should they not be, they are
/// kept lossily rather than panicking.
pub(crate) fn utf8_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A record's value and headers exactly as Kafka delivered them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Original {
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A row for the `dead_letters` table: the message kept whole, and why it was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// All Kafka headers as a JSON object (text).
    pub headers: String,
    /// Machine reason code, e.g. `invalid_json` (see `parse::Reason`).
    pub reason: String,
    /// Human explanation.
    pub detail: String,
    /// SQLSTATE when the database refused the row (bisected out of a batch).
    pub sqlstate: Option<String>,
    pub kafka_timestamp: Option<DateTime<Utc>>,
}

/// The parser's output for one [`RawBatch`]: every offset is in exactly one of the two lists.
#[derive(Debug)]
pub struct ParsedBatch {
    pub partition: PartitionKey,
    pub fence: Fence,
    pub next_offset: i64,
    pub rows: Vec<EventRow>,
    pub dead_letters: Vec<DeadLetter>,
    pub seq: u64,
    /// Number of Kafka messages this batch covers.
    pub message_count: usize,
    /// Oldest Kafka timestamp in the batch (ms), for commit-latency metrics.
    pub oldest_timestamp_ms: Option<i64>,
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
