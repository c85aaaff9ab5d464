//! `Redriver`: re-parses dead letters on an operator's request (`POST /dead-letters/redrive`)
//! with the service's current parser settings and ingests those that now pass.
//!
//! Runs on its own one-thread `SyncArbiter` with its own one-connection pool: a redrive is
//! blocking Diesel work that must stay off the async arbiters, and it must not take a
//! connection (or a writer thread) from the data path. The transaction and its exactly-once
//! rules live in [`crate::storage::redrive`].

use actix::prelude::*;
use base64::Engine as _;

use crate::health::HealthReporter;
use crate::lifecycle::{catch_panic, ActorFailed, ActorName, ActorRestartRequested, ActorStarted, Restart};
use crate::metrics::{label, Metrics};
use crate::parse::ParseOptions;
use crate::storage::browse::{DeadLetterDetail, DeadLetterPage};
use crate::storage::redrive::{DeadLetterKey, RedriveFilter, RedriveReport, Selection};
use crate::storage::{Database, Failure, StoreError};

/// Redrive the dead letters the filter selects (or, dry run, report what would happen).
#[derive(Message)]
#[rtype(result = "Result<RedriveReport, StoreError>")]
pub struct Redrive(pub RedriveFilter);

/// A page of dead letters, for an operator browsing them (read-only, on the same pool).
#[derive(Message)]
#[rtype(result = "Result<DeadLetterPage, StoreError>")]
pub struct ListDeadLetters(pub Selection);

/// One dead letter whole.
#[derive(Message)]
#[rtype(result = "Result<Option<DeadLetterDetail>, StoreError>")]
pub struct GetDeadLetter(pub DeadLetterKey);

/// A read that panicked: an error for the caller; the worker goes on (it held nothing).
fn read_failed(what: &str, error: String) -> StoreError {
    StoreError::Fatal(Failure::Condition(format!("{what} failed: {error}").into()))
}

impl Handler<ListDeadLetters> for Redriver {
    type Result = Result<DeadLetterPage, StoreError>;

    fn handle(&mut self, msg: ListDeadLetters, _: &mut Self::Context) -> Self::Result {
        catch_panic(|| self.db.list_dead_letters(&msg.0)).unwrap_or_else(|e| Err(read_failed("listing dead letters", e)))
    }
}

impl Handler<GetDeadLetter> for Redriver {
    type Result = Result<Option<DeadLetterDetail>, StoreError>;

    fn handle(&mut self, msg: GetDeadLetter, _: &mut Self::Context) -> Self::Result {
        let opts = &self.opts;
        catch_panic(|| {
            let mut detail = self.db.dead_letter(&msg.0)?;
            if let Some(d) = detail.as_mut() {
                let payload = d.payload_base64.as_deref().and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok());
                d.decoded = payload.and_then(|p| crate::parse::inspect_framed(&p, opts));
            }
            Ok(detail)
        })
        .unwrap_or_else(|e| Err(read_failed("reading a dead letter", e)))
    }
}

pub struct Redriver {
    /// A pool of its own (one connection), separate from the writer's.
    db: Database,
    /// The same settings the `Parser` uses, so a redrive judges as ingestion would now.
    opts: ParseOptions,
    metrics: Metrics,
    health: Addr<HealthReporter>,
    log: slog::Logger,
}

impl Redriver {
    pub fn new(db: Database, opts: ParseOptions, metrics: Metrics, health: Addr<HealthReporter>, log: slog::Logger) -> Self {
        Self { db, opts, metrics, health, log }
    }
}

impl Actor for Redriver {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.health.do_send(ActorStarted(ActorName::Redriver));
    }
}

impl Handler<Restart> for Redriver {
    type Result = ();

    /// The worker stops; the `SyncArbiter` factory replaces it with a fresh one.
    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        self.health.do_send(ActorRestartRequested(ActorName::Redriver));
        ctx.stop();
    }
}

impl Handler<Redrive> for Redriver {
    type Result = Result<RedriveReport, StoreError>;

    fn handle(&mut self, msg: Redrive, ctx: &mut Self::Context) -> Self::Result {
        let filter = msg.0;
        let report = catch_panic(|| self.db.redrive(&filter, &self.opts)).unwrap_or_else(|error| {
            // Reported like any worker's panic; the transaction rolled back, nothing changed.
            self.health.do_send(ActorFailed { name: ActorName::Redriver, error: error.clone() });
            ctx.stop();
            Err(StoreError::Fatal(Failure::Condition(format!("redrive failed: {error}").into())))
        });
        match &report {
            Ok(r) => {
                if !r.dry_run {
                    for (reason, counts) in &r.by_reason {
                        if counts.redriven > 0 {
                            self.metrics.dead_letters_redriven.get_or_create(&label("reason", reason.clone())).inc_by(counts.redriven);
                        }
                    }
                    for (projection, counts) in &r.projections {
                        self.metrics.count_projection_rows(projection, counts);
                    }
                }
                slog::info!(self.log, "dead letters redriven";
                    "dry_run" => r.dry_run, "selected" => r.selected, "redriven" => r.redriven, "still_failing" => r.still_failing,
                    "reason" => filter.select.reason.as_deref().unwrap_or("*"), "topic" => filter.select.topic.as_deref().unwrap_or("*"));
            }
            Err(e) => slog::warn!(self.log, "redrive failed; nothing was changed"; "error" => e.to_string()),
        }
        report
    }
}
