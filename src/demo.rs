//! `tributary demo`: the whole job on one machine with one command.
//!
//! Starts librdkafka's in-process mock cluster, a generator producing realistic CloudEvents
//! (structured and binary mode, several sources and types, a small share of malformed ones), and
//! the real pipeline with its HTTP API; shows live progress and ends with a summary.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tributary_actors::redact::database_url as redact_url;
use tributary_actors::{Backend, Database};

use crate::app;
use crate::config::Settings;
use crate::mock::MockKafka;

const PARTITIONS: i32 = 4;
const REGIONS: [&str; 3] = ["eu", "us", "apac"];

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Events to generate.
    #[arg(long, env = "TRIBUTARY_DEMO_EVENTS", default_value_t = 100_000)]
    pub events: usize,
    /// Events per second to offer (default: as fast as possible).
    #[arg(long, env = "TRIBUTARY_DEMO_RATE")]
    pub rate: Option<u64>,
    /// Share of malformed events, 0.0–1.0.
    #[arg(long, env = "TRIBUTARY_DEMO_BAD_RATIO", default_value_t = 0.01)]
    pub bad_ratio: f64,
    /// Database: a SQLite file path or URL (`sqlite://…`), or `postgres://…`.
    #[arg(long, env = "TRIBUTARY_DEMO_DB", default_value = "tributary-demo.db")]
    pub db: String,
    /// HTTP address of the API while the demo runs.
    #[arg(long, env = "TRIBUTARY_DEMO_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Exit when every event is committed instead of serving HTTP until Ctrl-C.
    #[arg(long, env = "TRIBUTARY_DEMO_EXIT_WHEN_DONE")]
    pub exit_when_done: bool,
}

const SOURCES: [(&str, &str); 4] = [
    ("/shop/orders", "com.example.order.created"),
    ("/shop/payments", "com.example.payment.settled"),
    ("/iot/sensors", "com.example.sensor.reading"),
    ("/auth", "com.example.user.login"),
];

/// Orders of the demo's `orders` projection: every fourth event is one, and each order goes
/// through these in turn, one change per round of all orders (cancelled deletes its row; the
/// next change creates it again).
pub const ORDERS: usize = 200;
pub const ORDER_STATUSES: [&str; 4] = ["created", "paid", "shipped", "cancelled"];

/// The order event `i` is (`i % 4 == 0`), if it is one: (order id, status).
pub fn order_of(i: usize) -> Option<(usize, &'static str)> {
    let (n, order) = (i / SOURCES.len(), (i / SOURCES.len()) % ORDERS);
    // Each order starts at a step of its own, so the table ends with every status.
    i.is_multiple_of(SOURCES.len()).then(|| (order, ORDER_STATUSES[(n / ORDERS + order) % ORDER_STATUSES.len()]))
}

/// Whether the demo makes event `i` malformed, at `bad_ratio`.
pub fn is_malformed(i: usize, bad_ratio: f64) -> bool {
    let bad_every = if bad_ratio > 0.0 { (1.0 / bad_ratio.min(1.0)).round() as usize } else { usize::MAX };
    bad_every != usize::MAX && i % bad_every == bad_every - 1
}

/// The demo's projection: the latest state of each order, in a table it creates. Its version is
/// the event's time, so a file reused across demos keeps the newest state.
fn orders_projection() -> tributary_actors::ProjectionSpec {
    serde_json::from_value(json!({
        "name": "orders", "table": "orders", "types": ["com.example.order.*"], "mode": "upsert",
        "key": ["order_id"], "newer_wins": "updated_at", "delete_types": ["com.example.order.cancelled"], "create_table": true,
        "columns": {
            "order_id": {"from": "/order_id", "type": "bigint"},
            "status": {"from": "/status", "type": "text"},
            "amount": {"from": "/amount", "type": "numeric"},
            "region": {"from": "/region", "type": "text"},
            "updated_at": {"from": "ce.time", "type": "timestamptz"},
        }
    }))
    .expect("the demo's projection is valid")
}

const MALFORMED: [&[u8]; 5] = [
    b"{\"id\": ",
    b"\xc3\x28 not utf-8",
    br#"{"specversion":"1.0","source":"/shop/orders","type":"com.example.order.created"}"#,
    br#"{"specversion":"1.0","id":"x","source":"/iot","type":"t","time":"last tuesday"}"#,
    b"[\"an\", \"array\"]",
];

/// How far the generator may run ahead of committed progress. The mock cluster keeps only
/// 5 MB per partition (older data is deleted, as retention would), so a generator far ahead of
/// ingestion would delete events before they are read.
const MAX_LEAD: i64 = 20_000;

/// Produce the demo stream until all events are queued or a stop is requested; returns how
/// many were queued.
fn generate(kafka: &MockKafka, topic: &str, args: &DemoArgs, committed: &AtomicI64, stop: &AtomicBool) -> Result<usize, String> {
    let started = Instant::now();
    let bad_every = if args.bad_ratio > 0.0 { (1.0 / args.bad_ratio.min(1.0)).round() as usize } else { usize::MAX };
    let mut queued = 0;
    // Order changes carry a strictly rising time: newer_wins compares them.
    let mut clock = chrono::Utc::now();
    for i in 0..args.events {
        if i % 1000 == 0 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while i as i64 - committed.load(Ordering::Relaxed) > MAX_LEAD && Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if let Some(rate) = args.rate.filter(|r| *r > 0) {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let p = Some((i % PARTITIONS as usize) as i32);
        let key = format!("key-{}", i % 1000);
        let send = |payload: &[u8], headers: &[(&str, &[u8])]| kafka.send(topic, p, Some(key.as_bytes()), Some(payload), headers);
        let result = if is_malformed(i, args.bad_ratio) {
            send(MALFORMED[(i / bad_every) % MALFORMED.len()], &[])
        } else {
            let (source, mut kind) = (SOURCES[i % SOURCES.len()].0, SOURCES[i % SOURCES.len()].1.to_string());
            let mut data = json!({"seq": i, "amount": (i % 997) as f64 / 10.0, "currency": "EUR", "region": REGIONS[i % 3]});
            if let Some((order, status)) = order_of(i) {
                kind = format!("com.example.order.{status}");
                data["order_id"] = json!(order);
                data["status"] = json!(status);
            }
            let id = format!("evt-{i}");
            clock = (clock + chrono::Duration::microseconds(1)).max(chrono::Utc::now());
            let time = clock.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            if i % 2 == 0 {
                let body = json!({"specversion":"1.0","id":id,"source":source,"type":kind,"time":time,"datacontenttype":"application/json","subject":key,"data":data});
                send(body.to_string().as_bytes(), &[("content-type", b"application/cloudevents+json")])
            } else {
                send(
                    data.to_string().as_bytes(),
                    &[
                        ("ce_specversion", b"1.0"),
                        ("ce_id", id.as_bytes()),
                        ("ce_source", source.as_bytes()),
                        ("ce_type", kind.as_bytes()),
                        ("ce_time", time.as_bytes()),
                        ("content-type", b"application/json"),
                    ],
                )
            }
        };
        result.map_err(|e| format!("producing to the mock cluster failed: {e}"))?;
        queued += 1;
    }
    kafka.flush().map_err(|e| e.to_string())?;
    Ok(queued)
}

/// Live counts for the progress bar, from the service's own `/metrics` (what an operator sees):
/// counting the tables instead would scan a growing `events` every tick, and on SQLite each
/// such read holds a snapshot that keeps the WAL from being rewound.
#[derive(Debug, Default, Clone, Copy)]
struct Live {
    consumed: u64,
    rows: u64,
    dead_letters: u64,
}

fn live(port: u16) -> Option<Live> {
    let (_, body) = crate::http::loopback_get(port, "/metrics")?;
    let sum = |name| crate::http::metric_sum(&body, name) as u64;
    Some(Live {
        consumed: sum("tributary_messages_consumed_total"),
        rows: sum("tributary_rows_written_total"),
        dead_letters: sum("tributary_dead_letters_total"),
    })
}

/// Log output while the progress bar is drawn: each record is written with the bar hidden and
/// the bar drawn again after it, so a log line never lands in the middle of the bar.
#[derive(Clone)]
pub struct BarWriter {
    bar: ProgressBar,
    line: Vec<u8>,
}

impl BarWriter {
    pub fn new(bar: ProgressBar) -> Self {
        Self { bar, line: Vec::new() }
    }
}

impl std::io::Write for BarWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        self.bar.suspend(|| {
            let mut err = std::io::stderr().lock();
            err.write_all(&line).and_then(|()| err.flush())
        })
    }
}

/// A bare path means a SQLite file.
fn database_url(db: &str) -> String {
    if Backend::of_url(db).is_some() {
        db.to_string()
    } else {
        format!("sqlite://{db}")
    }
}

/// SIGTERM and SIGINT as a flag the demo's loops look at; the handlers are installed before
/// this returns (a signal from then on stops the demo cleanly instead of killing it).
struct StopSignal {
    flag: Arc<AtomicBool>,
    rx: std::sync::mpsc::Receiver<()>,
}

impl StopSignal {
    fn install() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let (installed_tx, installed_rx) = std::sync::mpsc::channel();
        let (tx, rx) = std::sync::mpsc::channel();
        let set = flag.clone();
        std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let signal = app::shutdown_signal();
                let _ = installed_tx.send(());
                signal.await;
                set.store(true, Ordering::SeqCst);
                let _ = tx.send(());
            });
        });
        let _ = installed_rx.recv();
        Self { flag, rx }
    }

    fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn wait(&self) {
        let _ = self.rx.recv();
    }
}

/// Why the demo did not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The configuration (file, environment, flags) is invalid: exit 2, like `run`.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Failed(String),
}

impl From<String> for DemoError {
    fn from(e: String) -> Self {
        Self::Failed(e)
    }
}

/// `tributary demo`: the configuration (`--config`, `./tributary.toml`, the environment) is read
/// and validated as `run` reads it, with the demo's own settings (mock brokers, topic, database,
/// bind) on top; its log level defaults to `warn` so the progress bar stays readable.
pub fn main(args: DemoArgs, config: Option<&Path>) -> ExitCode {
    let stop = StopSignal::install();
    // Hidden until the demo draws it; log lines go through it so they never break it.
    let bar = ProgressBar::hidden();
    let result = prepare(&args, config).and_then(|prepared| {
        let output: crate::telemetry::Output = Box::new(BarWriter::new(bar.clone()));
        let (log, _flush_on_exit) = crate::telemetry::logger_to(&prepared.settings.log, Some(output));
        run(args, prepared, log, bar, &stop)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(DemoError::Config(e)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(DemoError::Failed(e)) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the demo runs on: the mock cluster with its topic, and the settings pointing at it.
struct Prepared {
    kafka: MockKafka,
    settings: Settings,
    topic: String,
    group: String,
    url: String,
}

fn prepare(args: &DemoArgs, config: Option<&Path>) -> Result<Prepared, DemoError> {
    if !(0.0..=1.0).contains(&args.bad_ratio) {
        return Err(DemoError::Failed("--bad-ratio must be between 0.0 and 1.0".into()));
    }
    let url = database_url(&args.db);
    let kafka = MockKafka::start(1).map_err(|e| format!("cannot start the mock Kafka cluster: {e}"))?;
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let topic = format!("demo-events-{stamp}");
    let group = format!("tributary-demo-{stamp}");
    kafka.create_topic(&topic, PARTITIONS).map_err(|e| e.to_string())?;
    let defaults = BTreeMap::from([("log.level".to_string(), json!("warn"))]);
    let overrides: BTreeMap<String, Value> = BTreeMap::from([
        ("kafka.brokers".into(), json!(kafka.bootstrap_servers())),
        ("kafka.group_id".into(), json!(group)),
        ("kafka.topics".into(), json!([topic])),
        ("database.url".into(), json!(url)),
        ("http.bind".into(), json!(args.bind)),
    ]);
    let mut settings = Settings::load_over(&defaults, config, &overrides)?;
    if !settings.projections.iter().any(|p| p.name == "orders") {
        settings.projections.push(orders_projection());
    }
    Ok(Prepared { kafka, settings, topic, group, url })
}

/// Run the demo; `bar` is the progress bar its log lines are already routed through. A stop
/// signal ends the ingest early: what was read is drained and committed, and the summary
/// accounts for exactly that.
fn run(args: DemoArgs, prepared: Prepared, log: slog::Logger, bar: ProgressBar, stop: &StopSignal) -> Result<(), DemoError> {
    let Prepared { kafka, settings, topic, group, url } = prepared;
    let db_options = app::database_options(&settings);
    let running = app::spawn(settings, log).map_err(|e| e.to_string())?;
    let db = Database::open(&db_options).map_err(|e| format!("cannot open {}: {e}", redact_url(&url)))?;

    let started = Instant::now();
    let progress = Arc::new(AtomicI64::new(0));
    let generator = {
        let args = args.clone();
        let topic = topic.clone();
        let progress = progress.clone();
        let stop = stop.flag.clone();
        std::thread::spawn(move || {
            let r = generate(&kafka, &topic, &args, &progress, &stop);
            (kafka, r)
        })
    };
    bar.set_length(args.events as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} committed  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let total = args.events as i64;
    let mut committed = 0;
    while committed < total && !stop.requested() {
        // One indexed row per partition: cheap whatever the size of the tables.
        committed = db.committed(&group).unwrap_or(committed);
        progress.store(committed, Ordering::Relaxed);
        let rate = committed as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_position(committed as u64);
        let l = live(running.port).unwrap_or_default();
        bar.set_message(format!("consumed {}  rows {}  dead letters {}  {rate:.0} events/s", l.consumed, l.rows, l.dead_letters));
        if started.elapsed() > Duration::from_secs(600) {
            return Err("the demo did not finish within 10 minutes".to_string().into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let interrupted = stop.requested();
    let elapsed = started.elapsed();
    bar.finish();
    let (kafka, generated) = generator.join().map_err(|_| "generator thread panicked".to_string())?;
    let generated = generated?;
    let port = running.port;
    // Stopped early: drain first, so that the summary counts what the database holds.
    let running = if interrupted {
        running.stop().map_err(|e| e.to_string())?;
        None
    } else {
        Some(running)
    };
    let committed = db.committed(&group).map_err(|e| e.to_string())?;
    let t = db.totals(&topic, &group).unwrap_or_default();
    let rows = t.rows;
    let dead: i64 = t.dead_letters.iter().map(|(_, n)| n).sum();
    println!();
    if interrupted {
        println!("tributary demo: stopped by a signal; what was read is committed");
    } else {
        println!("tributary demo: done");
    }
    println!("  events generated   {generated}");
    println!("  rows in events     {rows}");
    println!("  dead letters       {dead}");
    for (reason, n) in &t.dead_letters {
        println!("    {reason:<22} {n}");
    }
    println!("  accounted for      {} of {committed} offsets committed (exactly once)", rows + dead);
    if let Ok(orders) = db.grouped_counts("SELECT status AS label, count(*) AS n FROM orders GROUP BY status ORDER BY status") {
        let all: i64 = orders.iter().map(|(_, n)| n).sum();
        println!("  orders (projection) {all} rows, the latest state of each order; cancelled ones deleted");
        for (status, n) in &orders {
            println!("    {status:<22} {n}");
        }
    }
    println!("  elapsed            {:.2} s  ({:.0} events/s end to end)", elapsed.as_secs_f64(), committed as f64 / elapsed.as_secs_f64());
    println!("  database           {}  (topic {topic})", redact_url(&url));
    println!();
    println!("Try:");
    // The URL was opened above, so it names a backend.
    let shell = Backend::of_url(&url).map_or_else(|| redact_url(&url), |b| b.shell(&url, &redact_url(&url)));
    println!("  {shell} \"SELECT type, count(*) FROM events WHERE topic = '{topic}' GROUP BY type\"");
    println!("  {shell} \"SELECT reason, count(*) FROM dead_letters WHERE topic = '{topic}' GROUP BY reason\"");
    println!("  {shell} \"SELECT status, count(*) FROM orders GROUP BY status\"");
    if running.is_some() {
        println!("  curl -s http://127.0.0.1:{port}/status");
        println!("  curl -s http://127.0.0.1:{port}/ready");
        println!("  curl -s http://127.0.0.1:{port}/metrics | grep tributary_");
    }
    if rows + dead != committed || (!interrupted && committed != total) {
        return Err(format!("accounting mismatch: {} of {committed} committed, {total} generated", rows + dead).into());
    }
    if let Some(running) = running {
        if !args.exit_when_done {
            println!();
            println!("Serving the HTTP API on port {port}; Ctrl-C or SIGTERM to stop.");
            stop.wait();
        }
        running.stop().map_err(|e| e.to_string())?;
    }
    drop(kafka);
    Ok(())
}
