//! `Parser`: turns a [`RawBatch`] into a [`ParsedBatch`] of rows and dead letters.
//!
//! Runs on a `SyncArbiter` (CPU-bound work off the async arbiters); several workers parse
//! batches of different partitions in parallel. Every message yields exactly one row or one dead
//! letter. A panic inside a worker is caught, reported, and the worker is replaced by a fresh one
//! (the `SyncArbiter` factory), so one bug cannot take the pipeline down.

use actix::prelude::*;

use crate::batches::{Kept, ParsedBatch, Projected, RawBatch};
use crate::health::HealthReporter;
use crate::lifecycle::{catch_panic, ActorFailed, ActorName, ActorRestartRequested, ActorStarted, Restart};
use crate::metrics::{label, Metrics};
use crate::parse::route::{route_message, Routed};
use crate::parse::ParseOptions;

/// Parse one batch.
#[derive(Message)]
#[rtype(result = "Result<ParsedBatch, ParseFailed>")]
pub struct ParseBatch(pub RawBatch);

/// A parser worker panicked on the batch (the worker is replaced; the batch is read again).
#[derive(Debug, Clone, thiserror::Error)]
#[error("parser worker failed: {panic}")]
pub struct ParseFailed {
    pub panic: String,
}

pub struct Parser {
    opts: ParseOptions,
    metrics: Metrics,
    health: Addr<HealthReporter>,
}

impl Parser {
    pub fn new(opts: ParseOptions, metrics: Metrics, health: Addr<HealthReporter>) -> Self {
        Self { opts, metrics, health }
    }
}

/// The pure part: parse every message of a batch, and route it to the projections.
pub fn parse_batch(batch: RawBatch, opts: &ParseOptions) -> ParsedBatch {
    let mut rows = Vec::with_capacity(if opts.plan.events.enabled { batch.messages.len() } else { 0 });
    let mut dead_letters = Vec::new();
    let mut projected = Vec::with_capacity(if opts.plan.is_empty() { 0 } else { batch.messages.len() });
    let mut unrouted = 0;
    let mut oldest: Option<i64> = None;
    let message_count = batch.messages.len();
    let (topic, partition) = (batch.partition.topic.as_str(), batch.partition.partition);
    if let Some(schemas) = &opts.schemas {
        crate::parse::saw_schema_ids(schemas, topic, batch.messages.iter().map(|m| m.payload()));
    }
    for m in batch.messages {
        if let Some(ts) = m.timestamp_ms {
            oldest = Some(oldest.map_or(ts, |o| o.min(ts)));
        }
        let offset = m.offset;
        match route_message(m, topic, partition, opts) {
            Routed::Row { row, ops } if ops.is_empty() => rows.push(row),
            Routed::Row { row, ops } => {
                projected.push(Projected { offset, ops, record: Kept::Row(rows.len()) });
                rows.push(row);
            }
            Routed::Projected { ops, record } => projected.push(Projected { offset, ops, record: Kept::Own(record) }),
            Routed::Skipped => unrouted += 1,
            Routed::Dead(d) => dead_letters.push(d),
        }
    }
    // Batches wait in flight: no room held for the messages no projection took.
    projected.shrink_to_fit();
    ParsedBatch {
        message_count,
        partition: batch.partition,
        fence: batch.fence,
        next_offset: batch.next_offset,
        rows,
        dead_letters,
        projected,
        unrouted,
        seq: batch.seq,
        oldest_timestamp_ms: oldest,
    }
}

impl Actor for Parser {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.health.do_send(ActorStarted(ActorName::Parser));
    }
}

impl Handler<ParseBatch> for Parser {
    type Result = Result<ParsedBatch, ParseFailed>;

    fn handle(&mut self, msg: ParseBatch, ctx: &mut Self::Context) -> Self::Result {
        let topic = msg.0.partition.topic.clone();
        let count = msg.0.messages.len() as u64;
        match catch_panic(|| parse_batch(msg.0, &self.opts)) {
            Ok(parsed) => {
                self.metrics.messages_consumed.get_or_create(&label("topic", topic)).inc_by(count);
                Ok(parsed)
            }
            Err(error) => {
                self.health.do_send(ActorFailed { name: ActorName::Parser, error: error.clone() });
                ctx.stop();
                Err(ParseFailed { panic: error })
            }
        }
    }
}

impl Handler<Restart> for Parser {
    type Result = ();

    /// One worker stops; the `SyncArbiter` factory replaces it with a fresh one.
    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        self.health.do_send(ActorRestartRequested(ActorName::Parser));
        ctx.stop();
    }
}
