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
//!
//! A restart (an operator's, a stall's, a failure's) stops the poll thread, which drains and
//! leaves the group on its own; the fresh consumer subscribes only once it has left.
//!
//! Layout, one file per job: [`state`] (what the poll thread and the pipeline tasks share),
//! [`rebalance`] (the consumer context: assignment from the database's progress, revocation),
//! [`pipeline`] (one task per partition: parse, then hand to the committer), [`committer`]
//! (ready batches of many partitions into one transaction), [`poll`] (the poll thread:
//! batching, backpressure, resynchronisation, librdkafka's FFI), and the actor here.

mod brokers;
mod committer;
mod options;
mod pipeline;
mod poll;
mod rebalance;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};
use futures::future::{FutureExt, Shared as SharedFuture};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::Semaphore;

use crate::health::{HealthReporter, Joining};
use crate::lifecycle::{ActorFailed, ActorName, ActorRestartRequested, ActorStarted, ActorStopped, Restart};
use crate::metrics::Metrics;
use crate::parser::Parser;
use crate::records::PartitionKey;
use crate::writer::DbWriter;

pub use options::ReaderOptions;

use committer::committer;
use poll::PollLoop;
use rebalance::ReaderContext;
use state::*;

/// How much longer than its drain (`shutdown_timeout`) and revocation (`revoke_timeout`) an old
/// consumer may take to leave the group (librdkafka's close) before a fresh one joins anyway.
const LEAVE_GRACE: Duration = Duration::from_secs(10);

// ---- messages -------------------------------------------------------------------------------

/// Stop fetching, commit what is in flight, leave the group. Answers when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Pause or resume consumption (group membership is kept).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

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
    /// Resolves once the previous consumer has drained and left the group. Two members of one
    /// instance at once make the group rebalance around a member about to go, and on some
    /// brokers it never completes: a fresh consumer joins only after this.
    leaving: Option<SharedFuture<oneshot::Receiver<()>>>,
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
        Self {
            opts,
            parser,
            writer,
            health,
            metrics,
            log,
            poll: None,
            restarts: 0,
            restart_now: false,
            leaving: None,
            paused: false,
            shutting_down: false,
        }
    }

    /// Once the previous consumer has left the group (bounded), after `delay`, start a fresh one.
    fn start_after_leaving(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        let Some(leaving) = self.leaving.clone() else {
            return self.start_after(ctx, delay);
        };
        let patience = self.opts.shutdown_timeout + self.opts.revoke_timeout + LEAVE_GRACE;
        let waited = Instant::now();
        ctx.spawn(actix::clock::timeout(patience, leaving).into_actor(self).map(move |left, act, ctx| {
            if left.is_err() {
                slog::warn!(act.log, "the previous kafka consumer has not left the group yet; starting a fresh one anyway";
                    "waited_s" => waited.elapsed().as_secs());
            }
            act.leaving = None;
            act.start_after(ctx, delay);
        }));
    }

    fn start_after(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        if delay.is_zero() {
            self.start_consumer(ctx);
        } else {
            ctx.run_later(delay, |act, ctx| act.start_consumer(ctx));
        }
    }

    fn start_consumer(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
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
            brokers: Mutex::default(),
            log: self.log.clone(),
        });
        // Before it subscribes: the health reporter then sees this consumer's assignment after it.
        self.health.do_send(Joining);
        let mut config = ClientConfig::new();
        for (k, v) in &self.opts.client_config {
            config.set(k, v);
        }
        config.set("group.id", &self.opts.group_id);
        // The database is the source of truth for progress; Kafka commits are informational.
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        let consumer: Result<BaseConsumer<ReaderContext>, _> = config.create_with_context(ReaderContext { shared: shared.clone() });
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
            let poll = PollLoop {
                consumer,
                shared: thread_shared,
                seq: 0,
                paused_all: false,
                reported_pause: false,
                last_housekeeping: Instant::now(),
                last_key: PartitionKey { topic: String::new(), partition: -1 }.into(),
            };
            poll.run();
            let _ = done_tx.send(());
        });
        match spawned {
            Ok(handle) => {
                self.poll = Some(PollThread { shared, handle: Some(handle), done: Some(done_rx) });
                self.health.do_send(ActorStarted(ActorName::KafkaReader));
                slog::info!(self.log, "kafka reader started"; "topics" => self.opts.topics.join(","), "group_id" => &self.opts.group_id);
            }
            Err(e) => self.fail(ctx, format!("cannot start the poll thread: {e}")),
        }
    }

    fn fail(&mut self, ctx: &mut Context<Self>, error: String) {
        self.health.do_send(ActorFailed { name: ActorName::KafkaReader, error });
        ctx.stop();
    }

    /// A poll thread that ended without being asked to (a panic) means the reader failed.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        let died = self
            .poll
            .as_ref()
            .is_some_and(|p| !p.shared.stop.load(Ordering::SeqCst) && p.handle.as_ref().is_some_and(JoinHandle::is_finished));
        if died {
            let reason = match self.poll.as_mut().and_then(|p| p.handle.take()).map(JoinHandle::join) {
                Some(Err(panic)) => crate::lifecycle::panic_message(&*panic),
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
        let delay = if self.restarts == 0 || std::mem::take(&mut self.restart_now) {
            Duration::ZERO
        } else {
            self.opts.restart_backoff.delay(self.restarts - 1, &mut rand::rng())
        };
        self.start_after_leaving(ctx, delay);
        ctx.run_interval(Duration::from_millis(500), |act, ctx| act.watch(ctx));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        // Let the poll thread drain on its own (it needs this arbiter for in-flight batches); the
        // next start waits for it. Stopped again before that start, the reader keeps waiting
        // for the same one.
        if let Some(mut p) = self.poll.take() {
            p.shared.stop.store(true, Ordering::SeqCst);
            if let Some(done) = p.done.take() {
                self.leaving = Some(done.shared());
            }
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
        // A consumer still leaving after a restart is waited for as well.
        let done = self
            .poll
            .as_mut()
            .and_then(|p| {
                p.shared.stop.store(true, Ordering::SeqCst);
                p.done.take().map(FutureExt::shared)
            })
            .or_else(|| self.leaving.clone());
        Box::pin(async move {
            if let Some(done) = done {
                let _ = done.await;
            }
            health.do_send(ActorStopped(ActorName::KafkaReader));
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
    /// consumer as soon as the old one has left.
    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        if self.shutting_down {
            return;
        }
        self.health.do_send(ActorRestartRequested(ActorName::KafkaReader));
        self.restart_now = true;
        ctx.stop();
    }
}
