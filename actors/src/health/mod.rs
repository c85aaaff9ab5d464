//! `HealthReporter`: the one place that knows how the service is doing.
//!
//! The other actors tell it what happens (actor up/restarted, partitions assigned/revoked,
//! progress, watermarks, database reachability); the HTTP server asks it (`GetHealth`,
//! `GetReadiness`, `GetStatus`, `GetMetrics`, `GetActors`). It owns the metrics registry and
//! probes the database through the `DbWriter` so readiness reflects the truth even when idle.
//! What it concludes from what it is told (lag, stalls, restarts, `/ready`'s reasons) is pure
//! logic in [`verdict`]; the actor keeps the facts current and acts on the verdicts.

mod answers;
mod verdict;

use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::lifecycle::{ActorFailed, ActorName, ActorRestartRequested, ActorStarted, ActorStopped, Ping, Restart};
use crate::metrics::{label, partition_label, Metrics};
use crate::records::PartitionKey;

pub use answers::{ActorReport, Actors, BreakerState, DatabaseState, Health, Liveness, PartitionStatus, Readiness, RegistryState, Status};
pub(crate) use verdict::ActorState;
use verdict::{ActorInfo, Facts, Membership, RestartCause, Stalls};

/// How often the database is probed while idle.
const DB_PROBE_EVERY: Duration = Duration::from_secs(2);
/// How often stall detection runs.
const STALL_CHECK_EVERY: Duration = Duration::from_secs(1);

// ---- messages: what the others report -------------------------------------------------------

/// The reader subscribes with a fresh consumer: it owns nothing until the group assigns it
/// partitions, and what an earlier consumer found (partitions, unreachable brokers) is void.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Joining;

/// The consumer group handed us partitions, with the database's progress for each.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Assigned(pub Vec<(PartitionKey, Option<i64>)>);

/// Partitions taken away (rebalance or shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revoked(pub Vec<PartitionKey>);

/// A batch committed: the partition's progress is now `next_offset`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Progress {
    pub partition: PartitionKey,
    pub next_offset: i64,
}

/// High watermarks as the consumer last saw them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watermarks(pub Vec<Watermark>);

#[derive(Debug, Clone)]
pub struct Watermark {
    pub partition: PartitionKey,
    /// librdkafka's cached high watermark, `None` when unknown (no fetch answered yet, or the
    /// last one was an error: brokers send -1 then).
    pub high: Option<i64>,
    /// librdkafka's position is at the high watermark and nothing read is still pending or in
    /// flight: what lies between the last committed record and `high` is not data (transaction
    /// markers, aborted records), so the lag is zero.
    pub caught_up: bool,
    /// The reader holds nothing of this partition (nothing pending, in flight or waiting to
    /// resynchronise) and is not at its end: if it also commits nothing, the consumer is what
    /// does not deliver, not the database.
    pub starved: bool,
}

/// Where to send [`Restart`] when partitions stall (the Kafka reader).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetReader(pub Recipient<Restart>);

/// The outcome of the latest database round trip.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DbStatus(pub Result<(), String>);

/// No Kafka broker answers (`Some(error)`), or one answers again (`None`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct BrokersUnreachable(pub Option<String>);

/// The database circuit breaker opened (`Some(reason)`) or closed (`None`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct BreakerChanged(pub Option<String>);

/// A template projection reached a table (the writer checked it, and writes it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TableReached {
    pub projection: String,
    pub table: String,
}

/// Consumption paused or resumed by an operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Paused(pub bool);

/// Where to send database probes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetDbProbe(pub Recipient<Ping>);

// ---- messages: what HTTP asks ---------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "Health")]
pub struct GetHealth;

#[derive(Message)]
#[rtype(result = "Readiness")]
pub struct GetReadiness;

#[derive(Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

#[derive(Message)]
#[rtype(result = "Actors")]
pub struct GetActors;

#[derive(Message)]
#[rtype(result = "String")]
pub struct GetMetrics;

// ---- the actor --------------------------------------------------------------------------------

/// Static facts for `/status`.
#[derive(Debug, Clone)]
pub struct HealthOptions {
    pub version: String,
    pub group_id: String,
    /// Configuration summary, secrets already redacted.
    pub config_summary: Value,
    /// Lag above zero and no commit, or no partitions assigned, for this long ⇒ not ready
    /// (`stalled`).
    pub stall_after: Duration,
    /// Restart the Kafka reader when a partition has had lag and no commit, or the reader no
    /// assignment (then at least twice `group_session_timeout`), for this long while the
    /// database kept answering (`None`: never).
    pub restart_reader_after: Option<Duration>,
    /// librdkafka's `session.timeout.ms`: how long the group may wait for a member gone without
    /// leaving.
    pub group_session_timeout: Duration,
    /// More restarts than this within `restart_window` ⇒ the actor counts as failed.
    pub restart_budget: u32,
    pub restart_window: Duration,
    /// Whether the schema registry answers (`[schema_registry]`; none without one).
    pub schema_registry: Option<std::sync::Arc<crate::registry::RegistryHealth>>,
}

pub struct HealthReporter {
    opts: HealthOptions,
    started: Instant,
    metrics: Metrics,
    registry: Registry,
    facts: Facts,
    /// What stalled at the last check, to log only changes.
    stalled: Stalls,
    db_probe: Option<Recipient<Ping>>,
    reader: Option<Recipient<Restart>>,
    /// When the database was last found unreachable, for the INFO line when it is back.
    db_lost_at: Option<Instant>,
    /// The tables each template projection has reached.
    tables_reached: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    log: slog::Logger,
}

impl HealthReporter {
    pub fn new(opts: HealthOptions, metrics: Metrics, registry: Registry, log: slog::Logger) -> Self {
        let now = Instant::now();
        Self {
            opts,
            started: now,
            metrics,
            registry,
            facts: Facts::new(now),
            stalled: Stalls::default(),
            db_probe: None,
            reader: None,
            db_lost_at: None,
            tables_reached: Default::default(),
            log,
        }
    }

    fn actor(&mut self, name: ActorName) -> &mut ActorInfo {
        self.facts.actors.entry(name).or_default()
    }

    /// The reader's consumer is gone or going (a restart, a failure): until a fresh one is
    /// assigned partitions, nothing is read.
    fn reader_left(&mut self, name: ActorName) {
        if name == ActorName::KafkaReader {
            self.facts.membership = Membership::Joining { since: Instant::now() };
        }
    }

    /// Partitions no longer this instance's: out of `/status` and the lag metric.
    fn forget(&mut self, keys: Vec<PartitionKey>) {
        for key in keys {
            self.metrics.consumer_lag.remove(&partition_label(&key));
            self.facts.partitions.remove(&key);
        }
        self.metrics.partitions_assigned.set(self.facts.partitions.len() as i64);
    }

    fn set_up(&mut self, name: ActorName, up: bool) {
        self.metrics.actor_up.get_or_create(&label("actor", name.as_str())).set(i64::from(up));
    }

    fn probe_db(&mut self, ctx: &mut Context<Self>) {
        let Some(probe) = self.db_probe.clone() else { return };
        ctx.spawn(async move { probe.send(Ping).await }.into_actor(self).map(|res, act, _| {
            act.set_db(match res {
                Ok(r) => r,
                Err(e) => Err(format!("db_writer did not answer: {e}")),
            });
        }));
    }

    /// Logs the changes only: a WARN when the database goes, an INFO when it is back.
    fn set_db(&mut self, status: Result<(), String>) {
        match (&self.facts.db, &status) {
            (Some(Err(_)), Err(_)) | (Some(Ok(())) | None, Ok(())) => {}
            (_, Err(e)) => {
                self.db_lost_at = Some(Instant::now());
                slog::warn!(self.log, "database unreachable; commits wait until it answers"; "error" => e.as_str());
            }
            (Some(Err(_)), Ok(())) => {
                let down = self.db_lost_at.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
                slog::info!(self.log, "database reachable again"; "unreachable_for_s" => format!("{down:.1}"));
            }
        }
        if status.is_ok() {
            self.facts.db_healthy_since.get_or_insert_with(Instant::now);
        } else {
            self.facts.db_healthy_since = None;
        }
        self.facts.db = Some(status);
    }

    /// Log what starts to stall, and restart the reader when it is stuck (see
    /// [`Facts::restart_due`]: librdkafka can leave a partition fetching from a broker that is no
    /// longer its leader, a group can fail to assign a member; a fresh consumer recovers both).
    fn check_stalls(&mut self) {
        if let Some(registry) = &self.opts.schema_registry {
            self.facts.registry_unavailable = registry.unavailable();
            self.facts.registry_recovered_at = registry.recovered_at();
        }
        let now = Instant::now();
        let stall_after = self.opts.stall_after;
        let stalls = self.facts.stalls(now, stall_after);
        if !stalls.partitions.is_empty() && stalls.partitions != self.stalled.partitions {
            let names: Vec<String> = stalls.partitions.iter().map(ToString::to_string).collect();
            slog::warn!(self.log, "ingestion stalled: lag above zero and no commit"; "partitions" => names.join(","), "stall_after_s" => stall_after.as_secs_f64());
        }
        if let (Some(joining), None) = (stalls.joining_for, self.stalled.joining_for) {
            slog::warn!(self.log, "ingestion stalled: the consumer group has assigned the reader no partitions"; "for_s" => joining.as_secs());
        }
        self.stalled = stalls;
        let Some(after) = self.opts.restart_reader_after else { return };
        let Some(reader) = &self.reader else { return };
        match self.facts.restart_due(now, after, self.opts.group_session_timeout) {
            None => return,
            Some(RestartCause::Starved(partitions)) => {
                let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
                slog::warn!(self.log, "partitions stalled while the database answers: restarting the kafka reader";
                    "partitions" => names.join(","), "after_s" => after.as_secs_f64());
            }
            Some(RestartCause::NeverAssigned(joining)) => {
                slog::warn!(self.log, "the consumer group assigned the reader nothing while the database answers: restarting the kafka reader";
                    "for_s" => joining.as_secs(), "after_s" => after.as_secs_f64());
            }
        }
        self.metrics.stall_restarts.inc();
        self.facts.stall_restart_at = Some(now);
        reader.do_send(Restart);
    }

    fn readiness(&mut self) -> Readiness {
        self.check_stalls();
        let reasons = self.facts.reasons(&self.stalled, self.opts.stall_after);
        Readiness { ready: reasons.is_empty(), reasons }
    }

    fn actors(&self) -> Actors {
        let report = |a: &ActorInfo| ActorReport { state: a.state, restarts: a.restarts, last_error: a.last_error.clone() };
        Actors(self.facts.actors.iter().map(|(n, a)| (n.as_str(), report(a))).collect())
    }
}

impl Actor for HealthReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.actor(ActorName::HealthReporter).state = ActorState::Running;
        self.set_up(ActorName::HealthReporter, true);
        ctx.run_interval(DB_PROBE_EVERY, |act, ctx| act.probe_db(ctx));
        ctx.run_interval(STALL_CHECK_EVERY, |act, _| act.check_stalls());
    }
}

impl Supervised for HealthReporter {
    fn restarting(&mut self, _: &mut Self::Context) {
        let a = self.actor(ActorName::HealthReporter);
        a.restarts += 1;
        self.metrics.actor_restarts.get_or_create(&label("actor", ActorName::HealthReporter.as_str())).inc();
    }
}

impl Handler<ActorStarted> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: ActorStarted, _: &mut Self::Context) {
        if msg.0 == ActorName::KafkaReader {
            self.facts.consuming_since = Instant::now();
        }
        self.actor(msg.0).state = ActorState::Running;
        self.set_up(msg.0, true);
    }
}

impl Handler<ActorFailed> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: ActorFailed, _: &mut Self::Context) {
        let budget = self.opts.restart_budget;
        let window = self.opts.restart_window;
        let now = Instant::now();
        let a = self.actor(msg.name);
        a.restarts += 1;
        a.recent.push_back(now);
        while a.recent.front().is_some_and(|t| now.duration_since(*t) > window) {
            a.recent.pop_front();
        }
        a.last_error = Some(msg.error.clone());
        a.state = if a.recent.len() as u32 > budget { ActorState::Failed } else { ActorState::Restarting };
        let state = a.state;
        self.metrics.actor_restarts.get_or_create(&label("actor", msg.name.as_str())).inc();
        self.set_up(msg.name, false);
        self.reader_left(msg.name);
        slog::error!(self.log, "actor failed; its supervisor restarts it"; "actor" => msg.name.as_str(), "error" => msg.error, "state" => format!("{state:?}"));
    }
}

impl Handler<ActorRestartRequested> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: ActorRestartRequested, _: &mut Self::Context) {
        let a = self.actor(msg.0);
        a.restarts += 1;
        a.state = ActorState::Restarting;
        self.metrics.actor_restarts.get_or_create(&label("actor", msg.0.as_str())).inc();
        self.set_up(msg.0, false);
        self.reader_left(msg.0);
        slog::info!(self.log, "actor restart requested"; "actor" => msg.0.as_str());
    }
}

impl Handler<Restart> for HealthReporter {
    type Result = ();
    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        slog::info!(self.log, "restarting on request"; "actor" => "health_reporter");
        ctx.stop();
    }
}

impl Handler<ActorStopped> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: ActorStopped, _: &mut Self::Context) {
        self.actor(msg.0).state = ActorState::Stopped;
        self.set_up(msg.0, false);
    }
}

impl Handler<Joining> for HealthReporter {
    type Result = ();
    fn handle(&mut self, _: Joining, _: &mut Self::Context) {
        self.facts.membership = Membership::Joining { since: Instant::now() };
        self.facts.brokers_unreachable = None;
        // An old consumer revokes what it held as it leaves, but one whose thread died did not.
        let keys: Vec<PartitionKey> = self.facts.partitions.keys().cloned().collect();
        self.forget(keys);
    }
}

impl Handler<Assigned> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Assigned, _: &mut Self::Context) {
        self.facts.membership = Membership::Assigned;
        // An assignment came through the group coordinator: a broker answers.
        self.facts.brokers_unreachable = None;
        let now = Instant::now();
        for (key, next) in msg.0 {
            let p = self.facts.partitions.entry(key).or_default();
            p.next_offset = next;
            p.caught_up = false;
            p.starved = false;
            p.progress_at = Some(now);
        }
        self.metrics.partitions_assigned.set(self.facts.partitions.len() as i64);
    }
}

impl Handler<Revoked> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Revoked, _: &mut Self::Context) {
        self.forget(msg.0);
    }
}

impl Handler<Progress> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Progress, _: &mut Self::Context) {
        self.set_db(Ok(()));
        // A batch of a consumer gone since (its revocation timed out) must not bring back a
        // partition this instance no longer owns.
        let Some(p) = self.facts.partitions.get_mut(&msg.partition) else { return };
        p.next_offset = Some(msg.next_offset);
        p.last_commit = Some(Utc::now());
        p.progress_at = Some(Instant::now());
        if let Some(lag) = p.lag() {
            self.metrics.consumer_lag.get_or_create(&partition_label(&msg.partition)).set(lag);
        }
    }
}

impl Handler<Watermarks> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Watermarks, _: &mut Self::Context) {
        for w in msg.0 {
            if let Some(p) = self.facts.partitions.get_mut(&w.partition) {
                // An unknown watermark keeps the last one known, but never a `caught_up` of the past.
                if w.high.is_some() {
                    p.high_watermark = w.high;
                }
                p.caught_up = w.caught_up;
                p.starved = w.starved;
                if let Some(lag) = p.lag() {
                    self.metrics.consumer_lag.get_or_create(&partition_label(&w.partition)).set(lag);
                }
            }
        }
    }
}

impl Handler<DbStatus> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: DbStatus, _: &mut Self::Context) {
        self.set_db(msg.0);
    }
}

impl Handler<BrokersUnreachable> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: BrokersUnreachable, _: &mut Self::Context) {
        if let Some(e) = &msg.0 {
            self.actor(ActorName::KafkaReader).last_error = Some(format!("brokers unreachable: {e}"));
        }
        self.facts.brokers_unreachable = msg.0;
    }
}

impl Handler<TableReached> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: TableReached, _: &mut Self::Context) {
        self.tables_reached.entry(msg.projection).or_default().insert(msg.table);
    }
}

impl Handler<BreakerChanged> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: BreakerChanged, _: &mut Self::Context) {
        if msg.0.is_none() {
            self.set_db(Ok(()));
        } else {
            self.facts.db_healthy_since = None;
        }
        self.facts.breaker = msg.0;
    }
}

impl Handler<Paused> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Paused, _: &mut Self::Context) {
        if self.facts.paused && !msg.0 {
            self.facts.consuming_since = Instant::now();
        }
        self.facts.paused = msg.0;
        self.metrics.paused.set(i64::from(msg.0));
    }
}

impl Handler<SetReader> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: SetReader, _: &mut Self::Context) {
        self.reader = Some(msg.0);
    }
}

impl Handler<SetDbProbe> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: SetDbProbe, ctx: &mut Self::Context) {
        self.db_probe = Some(msg.0);
        self.probe_db(ctx);
    }
}

impl Handler<GetHealth> for HealthReporter {
    type Result = MessageResult<GetHealth>;
    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        let failed: Vec<&'static str> =
            self.facts.actors.iter().filter(|(_, a)| a.state == ActorState::Failed).map(|(n, _)| n.as_str()).collect();
        let status = if failed.is_empty() { Liveness::Ok } else { Liveness::Failing };
        MessageResult(Health { status, failed_actors: failed, actors: self.actors() })
    }
}

impl Handler<GetReadiness> for HealthReporter {
    type Result = MessageResult<GetReadiness>;
    fn handle(&mut self, _: GetReadiness, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.readiness())
    }
}

impl Handler<GetActors> for HealthReporter {
    type Result = MessageResult<GetActors>;
    fn handle(&mut self, _: GetActors, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.actors())
    }
}

impl Handler<GetStatus> for HealthReporter {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        let readiness = self.readiness();
        let partitions = self
            .facts
            .partitions
            .iter()
            .map(|(k, p)| PartitionStatus {
                topic: k.topic.clone(),
                partition: k.partition,
                next_offset: p.next_offset,
                high_watermark: p.high_watermark,
                lag: p.lag(),
                last_commit: p.last_commit.map(|t| t.to_rfc3339()),
            })
            .collect();
        let database = match &self.facts.db {
            None => DatabaseState { reachable: None, error: None },
            Some(Ok(())) => DatabaseState { reachable: Some(true), error: None },
            Some(Err(e)) => DatabaseState { reachable: Some(false), error: Some(e.clone()) },
        };
        MessageResult(Status {
            version: self.opts.version.clone(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            group_id: self.opts.group_id.clone(),
            ready: readiness.ready,
            reasons: readiness.reasons,
            paused: self.facts.paused,
            breaker: BreakerState { open: self.facts.breaker.is_some(), reason: self.facts.breaker.clone() },
            database,
            schema_registry: self.opts.schema_registry.as_ref().map(|r| {
                let error = r.unavailable();
                RegistryState { url: r.url().to_string(), reachable: error.is_none(), error, schema_ids: r.schema_ids() }
            }),
            actors: self.actors(),
            partitions,
            tables_reached: self.tables_reached.iter().map(|(p, t)| (p.clone(), t.iter().cloned().collect())).collect(),
            config: self.opts.config_summary.clone(),
        })
    }
}

impl Handler<GetMetrics> for HealthReporter {
    type Result = MessageResult<GetMetrics>;
    fn handle(&mut self, _: GetMetrics, _: &mut Self::Context) -> Self::Result {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            slog::error!(self.log, "metrics encoding failed"; "error" => e.to_string());
        }
        MessageResult(out)
    }
}
