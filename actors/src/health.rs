//! `HealthReporter`: the one place that knows how the service is doing.
//!
//! The other actors tell it what happens (actor up/restarted, partitions assigned/revoked,
//! progress, watermarks, database reachability); the HTTP server asks it (`GetHealth`,
//! `GetReadiness`, `GetStatus`, `GetMetrics`, `GetActors`). It owns the metrics registry and
//! probes the database through the `DbWriter` so readiness reflects the truth even when idle.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::{json, Value};

use crate::lifecycle::{ActorFailed, ActorName, ActorRestartRequested, ActorStarted, ActorStopped, Ping, Restart};
use crate::messages::PartitionKey;
use crate::metrics::{label, partition_label, Metrics};

/// How often the database is probed while idle.
const DB_PROBE_EVERY: Duration = Duration::from_secs(2);
/// How often stall detection runs.
const STALL_CHECK_EVERY: Duration = Duration::from_secs(1);

// ---- messages: what the others report -------------------------------------------------------

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

/// Consumption paused or resumed by an operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Paused(pub bool);

/// Where to send database probes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetDbProbe(pub Recipient<Ping>);

// ---- messages: what HTTP asks ---------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// 200 when true, 503 when false.
    pub ok: bool,
    pub body: Value,
}

#[derive(Message)]
#[rtype(result = "Report")]
pub struct GetHealth;

#[derive(Message)]
#[rtype(result = "Report")]
pub struct GetReadiness;

#[derive(Message)]
#[rtype(result = "Value")]
pub struct GetStatus;

#[derive(Message)]
#[rtype(result = "Value")]
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
    /// Lag above zero and no commit for this long ⇒ not ready (`stalled`).
    pub stall_after: Duration,
    /// Restart the Kafka reader when a partition has had lag and no commit for this long while
    /// the database kept answering (`None`: never).
    pub restart_reader_after: Option<Duration>,
    /// More restarts than this within `restart_window` ⇒ the actor counts as failed.
    pub restart_budget: u32,
    pub restart_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorState {
    Starting,
    Running,
    Restarting,
    Failed,
    Stopped,
}

#[derive(Debug)]
struct ActorInfo {
    state: ActorState,
    restarts: u64,
    recent: VecDeque<Instant>,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct PartitionInfo {
    next_offset: Option<i64>,
    high_watermark: Option<i64>,
    /// Nothing deliverable lies beyond the last commit (see [`Watermark::caught_up`]).
    caught_up: bool,
    /// See [`Watermark::starved`].
    starved: bool,
    last_commit: Option<DateTime<Utc>>,
    /// Last commit, or the assignment if none since: the start of a possible stall.
    progress_at: Option<Instant>,
}

impl PartitionInfo {
    fn lag(&self) -> Option<i64> {
        if self.caught_up {
            return Some(0);
        }
        match (self.high_watermark, self.next_offset) {
            (Some(hw), Some(n)) => Some((hw - n).max(0)),
            (Some(hw), None) => Some(hw.max(0)),
            _ => None,
        }
    }
}

pub struct HealthReporter {
    opts: HealthOptions,
    started: Instant,
    metrics: Metrics,
    registry: Registry,
    actors: BTreeMap<ActorName, ActorInfo>,
    group_joined: bool,
    partitions: BTreeMap<PartitionKey, PartitionInfo>,
    db: Option<Result<(), String>>,
    db_probe: Option<Recipient<Ping>>,
    reader: Option<Recipient<Restart>>,
    /// When a stall last restarted the reader.
    stall_restart_at: Option<Instant>,
    /// Since when the database has answered without a failure in between (probe, writes,
    /// breaker closed); `None` while it fails.
    db_healthy_since: Option<Instant>,
    /// When the database was last found unreachable, for the INFO line when it is back.
    db_lost_at: Option<Instant>,
    /// When consumption last resumed (an operator's pause lifted, the reader (re)started): a
    /// stall is only counted from then.
    consuming_since: Instant,
    paused: bool,
    /// Why no broker answers, while none does.
    brokers_unreachable: Option<String>,
    /// Why the database circuit breaker is open, while it is.
    breaker: Option<String>,
    stalled: Vec<PartitionKey>,
    log: slog::Logger,
}

impl HealthReporter {
    pub fn new(opts: HealthOptions, metrics: Metrics, registry: Registry, log: slog::Logger) -> Self {
        let actors = ActorName::ALL
            .into_iter()
            .map(|n| (n, ActorInfo { state: ActorState::Starting, restarts: 0, recent: VecDeque::new(), last_error: None }))
            .collect();
        Self {
            opts,
            started: Instant::now(),
            metrics,
            registry,
            actors,
            group_joined: false,
            partitions: BTreeMap::new(),
            db: None,
            db_probe: None,
            reader: None,
            stall_restart_at: None,
            db_healthy_since: None,
            db_lost_at: None,
            consuming_since: Instant::now(),
            paused: false,
            brokers_unreachable: None,
            breaker: None,
            stalled: Vec::new(),
            log,
        }
    }

    fn actor(&mut self, name: ActorName) -> &mut ActorInfo {
        self.actors.entry(name).or_insert_with(|| ActorInfo {
            state: ActorState::Starting,
            restarts: 0,
            recent: VecDeque::new(),
            last_error: None,
        })
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
        match (&self.db, &status) {
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
            self.db_healthy_since.get_or_insert_with(Instant::now);
        } else {
            self.db_healthy_since = None;
        }
        self.db = Some(status);
    }

    fn check_stalls(&mut self) {
        let now = Instant::now();
        let stall_after = self.opts.stall_after;
        let stalled: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.lag().unwrap_or(0) > 0 && p.progress_at.is_some_and(|t| now.duration_since(t) >= stall_after))
            .map(|(k, _)| k.clone())
            .collect();
        if !self.paused && !stalled.is_empty() && stalled != self.stalled {
            let names: Vec<String> = stalled.iter().map(ToString::to_string).collect();
            slog::warn!(self.log, "ingestion stalled: lag above zero and no commit"; "partitions" => names.join(","), "stall_after_s" => stall_after.as_secs_f64());
        }
        self.stalled = if self.paused { Vec::new() } else { stalled };
        self.restart_reader_if_stalled(now);
    }

    /// A partition with lag and no commit for `restart_reader_after`, of which the reader holds
    /// nothing (*starved*: nothing pending, in flight or resynchronising), while the database
    /// kept answering, the breaker closed and nobody paused consumption: what is stuck is the
    /// consumer (librdkafka can leave a partition fetching from a broker that is no longer its
    /// leader after leadership moves, with no error reaching the application). Restart the
    /// reader: it drains, leaves the group and joins with a fresh consumer. A slow or hung
    /// database holds batches in flight, so it never counts; nor does an outage (the clock
    /// starts at the latest of the last commit or assignment, the database's recovery and the
    /// last resume of consumption). Reassignment restarts the clock, so this repeats at most
    /// once per `restart_reader_after` while the stall lasts.
    fn restart_reader_if_stalled(&mut self, now: Instant) {
        let (Some(after), Some(healthy_since)) = (self.opts.restart_reader_after, self.db_healthy_since) else { return };
        let reader_running = self.actors.get(&ActorName::KafkaReader).is_some_and(|a| a.state == ActorState::Running);
        if self.paused || self.breaker.is_some() || !reader_running || self.stall_restart_at.is_some_and(|t| now.duration_since(t) < after)
        {
            return;
        }
        let stuck: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, p)| {
                p.starved
                    && p.lag().unwrap_or(0) > 0
                    && p.progress_at.is_some_and(|t| now.duration_since(t.max(healthy_since).max(self.consuming_since)) >= after)
            })
            .map(|(k, _)| k.to_string())
            .collect();
        let Some(reader) = &self.reader else { return };
        if stuck.is_empty() {
            return;
        }
        slog::warn!(self.log, "partitions stalled while the database answers: restarting the kafka reader";
            "partitions" => stuck.join(","), "after_s" => after.as_secs_f64());
        self.metrics.stall_restarts.inc();
        self.stall_restart_at = Some(now);
        reader.do_send(Restart);
    }

    fn readiness(&mut self) -> Report {
        self.check_stalls();
        let mut reasons = Vec::new();
        if let Some(e) = &self.brokers_unreachable {
            reasons.push(format!("brokers_unreachable: {e}"));
        }
        if !self.group_joined {
            reasons.push("not_assigned: the consumer group has not assigned partitions yet".to_string());
        }
        match &self.db {
            None => reasons.push("database_unknown: the database has not been reached yet".to_string()),
            Some(Err(e)) => reasons.push(format!("database_unreachable: {e}")),
            Some(Ok(())) => {}
        }
        if let Some(reason) = &self.breaker {
            reasons.push(format!("breaker_open: the database is unavailable ({reason}); consumption is paused until it answers"));
        }
        for (name, a) in &self.actors {
            if a.state != ActorState::Running && *name != ActorName::HealthReporter {
                reasons.push(format!("actor_not_running: {name} is {:?}", a.state).to_lowercase());
            }
        }
        if !self.stalled.is_empty() {
            let names: Vec<String> = self.stalled.iter().map(ToString::to_string).collect();
            reasons.push(format!("stalled: no commit for {:?} with lag above zero on {}", self.opts.stall_after, names.join(", ")));
        }
        let ready = reasons.is_empty();
        Report { ok: ready, body: json!({ "ready": ready, "reasons": reasons }) }
    }

    fn actors_json(&self) -> Value {
        let m: serde_json::Map<String, Value> = self
            .actors
            .iter()
            .map(|(n, a)| (n.as_str().to_string(), json!({ "state": a.state, "restarts": a.restarts, "last_error": a.last_error })))
            .collect();
        Value::Object(m)
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
            self.consuming_since = Instant::now();
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

impl Handler<Assigned> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Assigned, _: &mut Self::Context) {
        self.group_joined = true;
        // An assignment came through the group coordinator: a broker answers.
        self.brokers_unreachable = None;
        let now = Instant::now();
        for (key, next) in msg.0 {
            let p = self.partitions.entry(key).or_default();
            p.next_offset = next;
            p.caught_up = false;
            p.starved = false;
            p.progress_at = Some(now);
        }
        self.metrics.partitions_assigned.set(self.partitions.len() as i64);
    }
}

impl Handler<Revoked> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Revoked, _: &mut Self::Context) {
        for key in msg.0 {
            self.metrics.consumer_lag.remove(&partition_label(&key));
            self.partitions.remove(&key);
        }
        self.metrics.partitions_assigned.set(self.partitions.len() as i64);
    }
}

impl Handler<Progress> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Progress, _: &mut Self::Context) {
        self.set_db(Ok(()));
        let p = self.partitions.entry(msg.partition.clone()).or_default();
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
            if let Some(p) = self.partitions.get_mut(&w.partition) {
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
        self.brokers_unreachable = msg.0;
    }
}

impl Handler<BreakerChanged> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: BreakerChanged, _: &mut Self::Context) {
        if msg.0.is_none() {
            self.set_db(Ok(()));
        } else {
            self.db_healthy_since = None;
        }
        self.breaker = msg.0;
    }
}

impl Handler<Paused> for HealthReporter {
    type Result = ();
    fn handle(&mut self, msg: Paused, _: &mut Self::Context) {
        if self.paused && !msg.0 {
            self.consuming_since = Instant::now();
        }
        self.paused = msg.0;
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
        let failed: Vec<&str> = self.actors.iter().filter(|(_, a)| a.state == ActorState::Failed).map(|(n, _)| n.as_str()).collect();
        let ok = failed.is_empty();
        MessageResult(Report {
            ok,
            body: json!({
                "status": if ok { "ok" } else { "failing" },
                "failed_actors": failed,
                "actors": self.actors_json(),
            }),
        })
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
        MessageResult(self.actors_json())
    }
}

impl Handler<GetStatus> for HealthReporter {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        let readiness = self.readiness();
        let partitions: Vec<Value> = self
            .partitions
            .iter()
            .map(|(k, p)| {
                json!({
                    "topic": k.topic,
                    "partition": k.partition,
                    "next_offset": p.next_offset,
                    "high_watermark": p.high_watermark,
                    "lag": p.lag(),
                    "last_commit": p.last_commit.map(|t| t.to_rfc3339()),
                })
            })
            .collect();
        MessageResult(json!({
            "version": self.opts.version,
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "group_id": self.opts.group_id,
            "ready": readiness.ok,
            "reasons": readiness.body["reasons"],
            "paused": self.paused,
            "breaker": json!({ "open": self.breaker.is_some(), "reason": self.breaker }),
            "database": match &self.db { None => json!({"reachable": null}), Some(Ok(())) => json!({"reachable": true}), Some(Err(e)) => json!({"reachable": false, "error": e}) },
            "actors": self.actors_json(),
            "partitions": partitions,
            "config": self.opts.config_summary,
        }))
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
