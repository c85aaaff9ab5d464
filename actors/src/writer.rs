//! `DbWriter`: owns the database pool and commits batches, exactly once.
//!
//! Runs on a `SyncArbiter` (Diesel is blocking), one worker per pooled connection. For each
//! [`WriteGroup`] — ready batches of several partitions — it runs ONE transaction: each batch's
//! offset fence, binary `COPY` of all rows and dead letters, the new `next_offset`s. Rows the
//! database refuses are bisected out into dead letters (see `storage::commit`). Transient errors (lost connection, server restarting) are
//! retried here with exponential backoff and jitter for as long as they last; repeated ones open
//! the circuit breaker (the reader pauses, `/ready` answers 503) and the next success closes it.
//! The reply comes only when the batch is durable, fenced, or failed for a non-transient reason.

use std::collections::HashMap;
use std::time::Instant;

use actix::prelude::*;

use crate::backoff::Backoff;
use crate::batches::{CommitOutcome, Committed, ParsedBatch};
use crate::breaker::{Breaker, Transition};
use crate::health::{BreakerChanged, DbStatus, HealthReporter, TableReached};
use crate::lifecycle::{catch_panic, ActorFailed, ActorName, ActorRestartRequested, ActorStarted, Ping, Restart};
use crate::metrics::Metrics;
use crate::records::PartitionKey;
use crate::storage::{Database, StoreError, Tables, Told, Upkeep};

/// Commit parsed batches of distinct partitions in one transaction; one answer per batch.
#[derive(Message)]
#[rtype(result = "Result<GroupWritten, WriteFailed>")]
pub struct WriteGroup(pub Vec<ParsedBatch>);

/// The answers for a [`WriteGroup`], and its batches handed back: the sender frees them, not
/// the writer thread, which is the pipeline's bottleneck on SQLite (a group's rows were
/// allocated on other threads).
pub struct GroupWritten {
    pub answers: Vec<Committed>,
    pub batches: Vec<ParsedBatch>,
}

/// Read the stored progress of the group for these partitions.
#[derive(Message)]
#[rtype(result = "Result<HashMap<PartitionKey, i64>, WriteFailed>")]
pub struct LoadOffsets(pub Vec<PartitionKey>);

#[derive(Debug, thiserror::Error)]
pub enum WriteFailed {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The worker panicked (it is replaced; the batches are read again).
    #[error("db_writer worker failed: {panic}")]
    Panicked { panic: String },
}

#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub group_id: String,
    pub retry: Backoff,
    /// Shared with the reader: open while the database is unavailable.
    pub breaker: Breaker,
    /// The projections, checked against their tables (the ops in each batch index them).
    pub plan: std::sync::Arc<crate::project::Plan>,
}

pub struct DbWriter {
    db: Database,
    opts: WriterOptions,
    metrics: Metrics,
    health: Addr<HealthReporter>,
    log: slog::Logger,
    /// Reused COPY buffer: grows to the largest batch and stays.
    buf: Vec<u8>,
    /// The backend's work after each commit (SQLite: the WAL's checkpoints and rewinds).
    upkeep: Option<Box<dyn Upkeep>>,
    /// The projections, with one for each table a template projection has reached.
    tables: Tables,
}

impl DbWriter {
    pub fn new(db: Database, opts: WriterOptions, metrics: Metrics, health: Addr<HealthReporter>, log: slog::Logger) -> Self {
        let upkeep = db.upkeep(&log);
        let tables = Tables::new(&opts.plan);
        Self { db, opts, metrics, health, log, buf: Vec::new(), upkeep, tables }
    }

    /// Run `op` until it succeeds or fails for a non-transient reason; transient failures are
    /// retried with backoff and drive the circuit breaker.
    fn with_retries<T>(&mut self, what: &str, mut op: impl FnMut(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            match op(self) {
                Ok(v) => {
                    if self.opts.breaker.record_success() == Transition::Closed {
                        self.breaker_changed(None);
                        slog::info!(self.log, "database reachable again: circuit breaker closed, ingestion resumes");
                    }
                    return Ok(v);
                }
                Err(e) if e.is_transient() => {
                    let delay = self.opts.retry.delay(attempt, &mut rand::rng());
                    self.metrics.db_retries.inc();
                    self.health.do_send(DbStatus(Err(e.to_string())));
                    if self.opts.breaker.record_failure() == Transition::Opened {
                        self.breaker_changed(Some(e.to_string()));
                        slog::error!(self.log, "database unavailable: circuit breaker open, consumption paused"; "error" => e.to_string());
                    }
                    slog::warn!(self.log, "transient database error; retrying"; "op" => what, "error" => e.to_string(), "attempt" => attempt + 1, "retry_in_ms" => delay.as_millis() as u64);
                    std::thread::sleep(delay);
                    attempt = attempt.saturating_add(1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Tell the metrics and the `HealthReporter` that the breaker opened (why) or closed.
    fn breaker_changed(&self, open: Option<String>) {
        self.metrics.breaker_open.set(i64::from(open.is_some()));
        self.health.do_send(BreakerChanged(open));
    }

    /// Log what resolving template projections' tables and ignoring fields found.
    fn tell(&mut self) {
        for told in self.tables.take_told() {
            match told {
                Told::Reached { projection, table, created } => {
                    let what = if created {
                        "a projection created a table from the change events' schema"
                    } else {
                        "a projection reached a table, checked"
                    };
                    slog::info!(self.log, "{}", what; "projection" => &projection, "table" => &table);
                    self.health.do_send(TableReached { projection, table });
                }
                Told::ColumnsAdded { projection, table, columns } => {
                    slog::info!(self.log, "columns added for a change's new fields (schema_evolution = \"add_columns\")";
                        "projection" => &projection, "table" => &table, "columns" => columns.join(", "));
                    self.metrics.count_columns_added(&projection, &table, columns.len() as u64);
                }
                Told::Warning(w) => slog::warn!(self.log, "{}", w),
                Told::Ignored { projection, table, field } => {
                    slog::warn!(self.log, "a change event's field has no column in the table; ignored (counted in tributary_projection_ignored_fields_total)";
                        "projection" => projection, "table" => table, "field" => field)
                }
            }
        }
    }

    fn write(&mut self, batches: &[ParsedBatch]) -> Result<Vec<Committed>, StoreError> {
        let started = Instant::now();
        let group = self.opts.group_id.clone();
        let result = self.with_retries("commit_group", |w| w.db.commit_group(&group, &mut w.tables, batches, &mut w.buf))?;
        if let Some(upkeep) = &mut self.upkeep {
            upkeep.after_commit(batches.iter().map(ParsedBatch::weight).sum());
        }
        // A huge one-off record should not pin memory forever.
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::new();
        }
        self.metrics.group_committed(self.tables.plan(), batches, &result, started.elapsed(), self.db.connections_in_use());
        self.tell();
        let mut replies = Vec::with_capacity(batches.len());
        for ((batch, outcome), rejected) in batches.iter().zip(result.outcomes).zip(&result.rejected) {
            match &outcome {
                CommitOutcome::Committed { .. } => {
                    for d in rejected {
                        slog::warn!(self.log, "the database refused a row; kept as a dead letter"; "partition" => batch.partition.to_string(), "offset" => d.offset, "sqlstate" => d.sqlstate.as_deref().unwrap_or(""), "detail" => &d.detail);
                    }
                }
                CommitOutcome::Fenced { db_next_offset } => {
                    slog::warn!(self.log, "batch fenced: another member advanced the partition; dropped"; "partition" => batch.partition.to_string(), "fence" => format!("{:?}", batch.fence), "db_next_offset" => format!("{db_next_offset:?}"));
                }
            }
            replies.push(Committed { partition: batch.partition.clone(), next_offset: batch.next_offset, seq: batch.seq, outcome });
        }
        Ok(replies)
    }

    fn guarded<T>(&mut self, ctx: &mut SyncContext<Self>, f: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, WriteFailed> {
        match catch_panic(|| f(self)) {
            Ok(r) => r.map_err(WriteFailed::from),
            Err(error) => {
                self.health.do_send(ActorFailed { name: ActorName::DbWriter, error: error.clone() });
                ctx.stop();
                Err(WriteFailed::Panicked { panic: error })
            }
        }
    }
}

impl Actor for DbWriter {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.health.do_send(ActorStarted(ActorName::DbWriter));
    }
}

impl Handler<WriteGroup> for DbWriter {
    type Result = Result<GroupWritten, WriteFailed>;

    fn handle(&mut self, WriteGroup(batches): WriteGroup, ctx: &mut Self::Context) -> Self::Result {
        let answers = self.guarded(ctx, |w| w.write(&batches))?;
        Ok(GroupWritten { answers, batches })
    }
}

impl Handler<LoadOffsets> for DbWriter {
    type Result = Result<HashMap<PartitionKey, i64>, WriteFailed>;

    fn handle(&mut self, msg: LoadOffsets, ctx: &mut Self::Context) -> Self::Result {
        let group = self.opts.group_id.clone();
        self.guarded(ctx, |w| w.with_retries("load_offsets", |w| w.db.load_offsets(&group, &msg.0)))
    }
}

impl Handler<Ping> for DbWriter {
    type Result = Result<(), String>;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        self.db.ping().map_err(|e| e.to_string())
    }
}

impl Handler<Restart> for DbWriter {
    type Result = ();

    /// One worker stops; the `SyncArbiter` factory replaces it with a fresh one.
    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        self.health.do_send(ActorRestartRequested(ActorName::DbWriter));
        ctx.stop();
    }
}
