//! Wiring: build the actor system and the HTTP server from [`Settings`], run until told to stop.
//!
//! `Application::build` must run inside an actix `System`. Tests and the demo use
//! [`spawn`], which runs the application on its own thread and returns a handle with the real
//! HTTP port and a graceful `stop`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, App};
use secrecy::ExposeSecret;
use tributary_actors::{
    refusal, refusal::Probe, Backend, Backoff, BatchLimits, Breaker, Database, DatabaseOptions, DbWriter, Failure, HealthOptions,
    HealthReporter, KafkaReader, Metrics, ParseOptions, Parser, Plan, ReaderOptions, Redriver, Registry, RegistryHealth, Schemas,
    SetDbProbe, SetReader, SetupError, Shutdown, StoreError, WriterOptions,
};

use crate::config::{ConfigError, Settings};
use crate::http::{ApiState, Document};
use crate::routes::{AdminToken, Register, Routes};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error("http: cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("projection {projection:?}: cannot read or create its table: {source}")]
    ProjectionTable { projection: String, source: StoreError },
    #[error("projection set-up task failed: {0}")]
    SetupTask(#[source] tokio::task::JoinError),
    #[error("cannot start the application thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the application thread panicked")]
    Panicked,
}

/// The version string: crate version and the git commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILD_GIT_COMMIT"), ")");

pub fn version() -> String {
    VERSION.to_string()
}

pub fn database_options(settings: &Settings) -> DatabaseOptions {
    DatabaseOptions {
        url: settings.database.url.expose_secret().to_string(),
        pool_size: settings.database.pool_size,
        connect_timeout: settings.database.connect_timeout,
        // The writer's pool: on SQLite its upkeep runs the checkpointer (`Database::upkeep`).
        checkpoint_in_background: true,
    }
}

/// How long `tributary migrate` waits for an unreachable database. The service itself waits
/// for as long as it takes, answering `/health` and `/ready` meanwhile.
pub const MIGRATE_PATIENCE: Duration = Duration::from_secs(30);
/// The least time the probe that asks a refusing server for its SQLSTATE gets (else
/// `database.connect_timeout_ms`, when longer).
const REFUSAL_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Wait for the database and, with `migrate`, run the embedded migrations: retried while it is
/// unreachable, up to `patience` (`None`: until it answers). A server that refuses the
/// connection for good (SQLSTATE 3D000, 28xxx, 42501) ends the wait at once: retrying cannot
/// create a database or a role. `waiting` gets the reason `/ready` shows meanwhile.
pub async fn prepare_database(
    db: &Database,
    url: &str,
    connect_timeout: Duration,
    migrate: bool,
    patience: Option<Duration>,
    log: &slog::Logger,
    waiting: Option<&crate::starting::Waiting>,
) -> Result<Vec<String>, StoreError> {
    let started = std::time::Instant::now();
    let backoff = Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(5) };
    let (mut attempt, mut lines) = (0, tributary_actors::Throttle::default());
    loop {
        // Asked first: the pool would spend its whole checkout timeout retrying a refusal.
        let probe = if db.backend().probes_refusal() {
            let url = url.to_string();
            let timeout = connect_timeout.max(REFUSAL_PROBE_TIMEOUT);
            actix_web::rt::task::spawn_blocking(move || refusal::probe(&url, timeout)).await.unwrap_or(Probe::Unknown)
        } else {
            Probe::Connected
        };
        if let Some(refused) = match &probe {
            Probe::Refused(code) => refusal::Refused::of(code),
            _ => None,
        } {
            return Err(StoreError::fatal("cannot start", refused));
        }
        let e = match probe {
            Probe::Failed(why) => StoreError::Transient(Failure::Condition(format!("cannot connect: {why}").into())),
            Probe::Connected | Probe::Refused(_) | Probe::Unknown => {
                let db2 = db.clone();
                let result =
                    actix_web::rt::task::spawn_blocking(move || if migrate { db2.migrate() } else { db2.ping().map(|()| Vec::new()) })
                        .await
                        .map_err(|e| StoreError::fatal("database start-up task failed", e))?;
                match result {
                    Err(e) if e.is_transient() => e,
                    other => return other,
                }
            }
        };
        if patience.is_some_and(|p| started.elapsed() >= p) {
            return Err(e);
        }
        let text = e.to_string();
        if let Some(w) = waiting {
            w.set(format!("database_unreachable: {text}"));
        }
        match lines.admit("database", std::time::Instant::now()) {
            Some(_) if attempt == 0 => slog::warn!(log, "database not reachable at start; waiting for it"; "error" => &text),
            Some(_) => slog::warn!(log, "database still not reachable at start"; "error" => &text,
                "for_s" => started.elapsed().as_secs(), "attempts" => attempt + 1),
            None => slog::debug!(log, "database not reachable at start"; "error" => &text),
        }
        actix_web::rt::time::sleep(backoff.delay(attempt, &mut rand::rng())).await;
        attempt += 1;
    }
}

/// librdkafka's `session.timeout.ms` as configured, else its default (45 s); librdkafka itself
/// refuses a value it cannot take when the consumer is created.
fn group_session_timeout(settings: &Settings) -> Duration {
    let ms = settings.librdkafka_config().get("session.timeout.ms").and_then(|v| v.trim().parse().ok()).unwrap_or(45_000);
    Duration::from_millis(ms)
}

/// The database, migrated (or pinged) before anything else starts; meanwhile HTTP already
/// answers on `listener` (alive, not ready, and why).
async fn open_database(settings: &Settings, listener: &TcpListener, log: &slog::Logger) -> Result<Database, AppError> {
    let db = Database::open(&database_options(settings))?;
    let waiting = crate::starting::Waiting::default();
    waiting.set("database_connecting: the first connection is being made".into());
    let addr = settings.http.bind.clone();
    let answering = crate::starting::serve(listener, waiting.clone()).map_err(|source| AppError::Bind { addr, source })?;
    let migrate = settings.database.migrate_on_start;
    let timeout = settings.database.connect_timeout;
    let prepared = prepare_database(&db, settings.database.url.expose_secret(), timeout, migrate, None, log, Some(&waiting)).await;
    answering.stop(true).await;
    let applied = prepared?;
    if migrate {
        slog::info!(log, "database migrations up to date"; "applied" => applied.join(","));
    }
    Ok(db)
}

/// The projections, checked against their tables (created where asked), as the actors share them.
async fn prepare_projections(settings: &Settings, db: &Database, log: &slog::Logger) -> Result<Arc<Plan>, AppError> {
    let mut plan = settings.plan()?;
    if plan.is_empty() {
        return Ok(Arc::new(plan));
    }
    let db = db.clone();
    let warnings;
    (plan, warnings) = actix_web::rt::task::spawn_blocking(move || db.prepare_projections(&mut plan).map(|w| (plan, w)))
        .await
        .map_err(AppError::SetupTask)?
        .map_err(|e| match e {
            SetupError::Spec(e) => AppError::Config(crate::config::spec_error(e)),
            SetupError::Store { projection, source } => AppError::ProjectionTable { projection, source },
        })?;
    for w in warnings {
        slog::warn!(log, "{}", w);
    }
    for p in &plan.projections {
        slog::info!(log, "projection ready"; "projection" => &p.name, "table" => p.table.to_string(), "mode" => format!("{:?}", p.mode).to_lowercase());
    }
    Ok(Arc::new(plan))
}

/// The schema registry's client and the schemas compiled from it, when `[schema_registry]` has a
/// URL; its TLS files are read here, so a bad one fails the start.
fn schemas(settings: &Settings, metrics: &Metrics, log: &slog::Logger) -> Result<Option<Arc<Schemas>>, AppError> {
    let Some(opts) = settings.schema_registry.options() else { return Ok(None) };
    let registry = Registry::new(opts, metrics.registry.clone(), log.new(slog::o!("part" => "schema_registry")))
        .map_err(|e| ConfigError::new("schema_registry", e, "correct the certificate and key files under [schema_registry]"))?;
    Ok(Some(Arc::new(Schemas::new(Arc::new(registry)))))
}

/// The `HealthReporter`, under its supervisor, owning the metrics registry.
fn start_health(
    settings: &Settings,
    plan: &Plan,
    metrics: Metrics,
    registry: prometheus_client::registry::Registry,
    schema_registry: Option<Arc<RegistryHealth>>,
    log: &slog::Logger,
) -> Addr<HealthReporter> {
    let opts = HealthOptions {
        version: version(),
        group_id: settings.kafka.group_id.clone(),
        config_summary: {
            // The projections as checked against their tables: each column's actual type.
            let mut summary = settings.redacted();
            summary["projections"] = crate::config::projection_summary(plan)["projections"].clone();
            summary
        },
        stall_after: settings.health.stall_after,
        restart_reader_after: settings.health.reader_restart_due(),
        group_session_timeout: group_session_timeout(settings),
        restart_budget: settings.health.restart_budget,
        restart_window: settings.health.restart_window,
        schema_registry,
    };
    let l = log.new(slog::o!("actor" => "health_reporter"));
    let mut registry = Some(registry);
    Supervisor::start(move |_| {
        // The registry moves into the first instance; a supervisor restart keeps the same actor
        // value, so the factory runs once.
        let r = registry.take().unwrap_or_default();
        HealthReporter::new(opts.clone(), metrics.clone(), r, l.clone())
    })
}

/// How the writer retries a database that does not answer.
const WRITER_RETRY: Backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(5) };
/// How long a failed reader waits before it starts again.
const READER_RESTART: Backoff = Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(30) };

/// The `DbWriter` workers, as many as the backend can commit at once.
fn start_writer(
    settings: &Settings,
    db: Database,
    plan: &Arc<Plan>,
    breaker: &Breaker,
    metrics: &Metrics,
    health: &Addr<HealthReporter>,
    log: &slog::Logger,
) -> Addr<DbWriter> {
    let backend = db.backend();
    let opts =
        WriterOptions { group_id: settings.kafka.group_id.clone(), retry: WRITER_RETRY, breaker: breaker.clone(), plan: plan.clone() };
    let (m, h, l) = (metrics.clone(), health.clone(), log.new(slog::o!("actor" => "db_writer")));
    SyncArbiter::start(backend.writers(settings.database.pool_size), move || {
        DbWriter::new(db.clone(), opts.clone(), m.clone(), h.clone(), l.clone())
    })
}

/// The `Redriver`, with a one-connection pool of its own: it never competes with the writer.
fn start_redriver(
    settings: &Settings,
    opts: ParseOptions,
    metrics: &Metrics,
    health: &Addr<HealthReporter>,
    log: &slog::Logger,
) -> Result<Addr<Redriver>, AppError> {
    let db = Database::open(&DatabaseOptions { pool_size: 1, ..database_options(settings) })?;
    let (m, h, l) = (metrics.clone(), health.clone(), log.new(slog::o!("actor" => "redriver")));
    Ok(SyncArbiter::start(1, move || Redriver::new(db.clone(), opts.clone(), m.clone(), h.clone(), l.clone())))
}

/// The `KafkaReader`, under its supervisor, on an arbiter of its own (with its pipeline tasks,
/// away from HTTP).
#[allow(clippy::too_many_arguments)]
fn start_reader(
    settings: &Settings,
    backend: Backend,
    breaker: Breaker,
    parser: &Addr<Parser>,
    writer: &Addr<DbWriter>,
    health: &Addr<HealthReporter>,
    metrics: Metrics,
    log: &slog::Logger,
) -> (Addr<KafkaReader>, Arbiter) {
    let opts = ReaderOptions {
        client_config: settings.librdkafka_config(),
        group_id: settings.kafka.group_id.clone(),
        topics: settings.kafka.topics.clone(),
        limits: BatchLimits {
            max_messages: settings.database.batch_size,
            max_bytes: settings.database.batch_max_bytes,
            linger: settings.database.linger,
        },
        max_in_flight: settings.database.max_in_flight,
        max_in_flight_bytes: settings.database.max_in_flight_bytes,
        concurrent_commits: backend.concurrent_commits(settings.database.pool_size),
        pending_budget_bytes: settings.database.batch_max_bytes.saturating_mul(2),
        revoke_timeout: settings.kafka.revoke_timeout,
        shutdown_timeout: settings.shutdown.timeout,
        restart_backoff: READER_RESTART,
        breaker,
    };
    let arbiter = Arbiter::new();
    let (p, w, h, l) = (parser.clone(), writer.clone(), health.clone(), log.new(slog::o!("actor" => "kafka_reader")));
    let reader = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
        KafkaReader::new(opts.clone(), p.clone(), w.clone(), h.clone(), metrics.clone(), l.clone())
    });
    (reader, arbiter)
}

/// Every part that registers routes: what the server serves and `GET /openapi.json` documents.
pub const API: [Register; 2] = [crate::console::routes, crate::http::routes];

/// The HTTP server: the console's routes and the API's, on connections of ours (`wire`).
fn serve_http(settings: &Settings, listener: TcpListener, state: ApiState) -> std::io::Result<actix_web::dev::Server> {
    let console = Arc::new(crate::console::Console::new(settings.http.admin_token.is_some()));
    crate::console::start_sampler(console.clone(), state.health.clone());
    let console = web::Data::new(console);
    let admin = web::Data::new(AdminToken(settings.http.admin_token.clone()));
    let document = Routes::document(&API).to_json().map_err(std::io::Error::other)?;
    let document = web::Data::new(Document(document.into()));
    crate::wire::serve(listener, 2, 5, move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(console.clone())
            .app_data(admin.clone())
            .app_data(document.clone())
            .configure(|cfg| Routes::serve(cfg, &API))
    })
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    reader: Addr<KafkaReader>,
    reader_arbiter: Arbiter,
    log: slog::Logger,
}

impl Application {
    /// Start every actor and bind the HTTP server. Call inside an actix `System`.
    pub async fn build(settings: Settings, log: slog::Logger) -> Result<Self, AppError> {
        // The port first: if it cannot be had, nothing else has started (no actor, no consumer).
        let addr = settings.bind_addr()?;
        let listener = TcpListener::bind(addr).map_err(|source| AppError::Bind { addr: addr.to_string(), source })?;
        let db = open_database(&settings, &listener, &log).await?;
        let plan = prepare_projections(&settings, &db, &log).await?;
        let (metrics, registry) = Metrics::new();
        let schemas = schemas(&settings, &metrics, &log)?;
        let health = start_health(&settings, &plan, metrics.clone(), registry, schemas.as_ref().map(|s| s.registry().health()), &log);
        let breaker = Breaker::new(settings.database.breaker_threshold);
        let backend = db.backend();
        let writer = start_writer(&settings, db, &plan, &breaker, &metrics, &health, &log);
        let parse_opts = ParseOptions {
            format: settings.parser.format,
            key_format: settings.parser.key_format,
            max_message_bytes: settings.parser.max_message_bytes,
            max_depth: settings.parser.max_depth,
            plan: plan.clone(),
            schemas,
        };
        let parser = {
            let (opts, m, h) = (parse_opts.clone(), metrics.clone(), health.clone());
            SyncArbiter::start(settings.parser.workers, move || Parser::new(opts.clone(), m.clone(), h.clone()))
        };
        let redriver = start_redriver(&settings, parse_opts, &metrics, &health, &log)?;
        health.do_send(SetDbProbe(writer.clone().recipient()));
        let (reader, reader_arbiter) = start_reader(&settings, backend, breaker, &parser, &writer, &health, metrics, &log);
        health.do_send(SetReader(reader.clone().recipient()));
        let state = ApiState { health, reader: reader.clone(), parser, writer, redriver };
        let port = listener.local_addr().map_err(|source| AppError::Bind { addr: addr.to_string(), source })?.port();
        let server = serve_http(&settings, listener, state).map_err(|source| AppError::Bind { addr: addr.to_string(), source })?;
        slog::info!(log, "tributary started"; "version" => version(), "http" => format!("{}:{port}", addr.ip()));
        Ok(Self { port, server, reader, reader_arbiter, log })
    }

    /// The HTTP port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until `shutdown` resolves, then drain: stop fetching, commit in-flight batches,
    /// leave the group, stop HTTP.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AppError> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        shutdown.await;
        slog::info!(self.log, "shutting down: draining in-flight batches");
        if let Err(e) = self.reader.send(Shutdown).await {
            slog::warn!(self.log, "kafka reader did not answer shutdown"; "error" => e.to_string());
        }
        handle.stop(true).await;
        let _ = server.await;
        self.reader_arbiter.stop();
        slog::info!(self.log, "tributary stopped");
        Ok(())
    }
}

/// An application running on its own thread (tests, demo).
pub struct RunningApp {
    pub port: u16,
    stop: Option<futures::channel::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), AppError>>>,
}

impl RunningApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Graceful stop, as on SIGTERM; waits until the application has drained.
    pub fn stop(mut self) -> Result<(), AppError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), AppError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(AppError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Start the application on a new thread with its own actix `System`.
pub fn spawn(settings: Settings, log: slog::Logger) -> Result<RunningApp, AppError> {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("tributary-app".into())
        .spawn(move || {
            let system = System::new();
            let result = system.block_on(async move {
                match Application::build(settings, log).await {
                    Ok(app) => {
                        let _ = port_tx.send(Some(app.port()));
                        app.run_until_stopped(async move {
                            let _ = stop_rx.await;
                        })
                        .await
                    }
                    Err(e) => {
                        // The error itself comes back through the thread's result.
                        let _ = port_tx.send(None);
                        Err(e)
                    }
                }
            });
            System::current().stop();
            let _ = system.run();
            result
        })
        .map_err(AppError::Thread)?;
    match port_rx.recv() {
        Ok(Some(port)) => Ok(RunningApp { port, stop: Some(stop_tx), thread: Some(thread) }),
        // The build failed (its error is the thread's result) or the thread died before it told.
        _ => match thread.join() {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) | Err(_) => Err(AppError::Panicked),
        },
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when it
/// is first awaited, so that a signal during the start is seen (see `run`) instead of killing
/// the process half-way.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    // A signal whose handler could not be installed never arrives.
    async fn arrives(signal: Option<Signal>) {
        match signal {
            Some(mut s) => drop(s.recv().await),
            None => futures::future::pending().await,
        }
    }
    let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
    async move {
        tokio::select! {
            () = arrives(term) => {}
            () = arrives(int) => {}
        }
    }
}
