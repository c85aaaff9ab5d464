//! tributary's benchmark harness (`bench/run`, documented in `docs/benchmarks.md`).
//!
//! One run, one machine, one generated data set. It measures the raw limits — a bare rdkafka
//! consumer reading the topic, binary `COPY` of the same rows into PostgreSQL from prepared
//! buffers, multi-row inserts into SQLite in large transactions — and then tributary itself end
//! to end (the release binary as a subprocess: Kafka → committed rows and offsets) on both
//! backends, with its RSS and CPU, `/health` latency under load, and commit latency at a fixed
//! offered rate. It prints ratios against the raw limits and ends with one JSON line. The
//! projection phases (`project`) do the same for an upsert projection into a table of one row
//! per key, and the `avro` phase runs the same events Avro-encoded with a registry on loopback.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::time::{Duration, Instant};

mod avro;
mod cdc;
mod project;
mod service;
mod soak;

use service::{commit_latency, end_to_end, E2e};

use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{json, Map, Value};
use tributary::mock::MockKafka;
use tributary_actors::parse_batch;
use tributary_actors::BatchLimits;
use tributary_actors::ParseOptions;
use tributary_actors::{raw, raw::RowRef};
use tributary_actors::{Database, DatabaseOptions};
use tributary_actors::{Fence, RawBatch};
use tributary_actors::{PartitionKey, RawMessage};
use tributary_testdb::TestDb;

#[derive(Debug, Parser)]
#[command(about = "Measure tributary against the raw limits of Kafka and the database, in one run")]
struct Args {
    /// Events to generate (CloudEvents of ~300 bytes).
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// A real Kafka-protocol broker; default: librdkafka's in-process mock cluster.
    #[arg(long)]
    brokers: Option<String>,
    /// PostgreSQL server (the user must be allowed to CREATE DATABASE).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
    /// Partitions (default: 8 on a real broker; on the mock cluster enough to hold every event,
    /// since it keeps only 5 MB per partition).
    #[arg(long)]
    partitions: Option<i32>,
    /// Offered rate for the commit-latency phase (events/s) and its duration (s).
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u64,
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Runs of each raw database limit and of each end-to-end phase, alternating; the figures are
    /// their medians (of an even count, the upper of the middle two).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// The tributary binary to run (default: next to this one).
    #[arg(long)]
    tributary: Option<PathBuf>,
    /// Reuse a topic that already holds `--events` generated events (from an earlier run on the
    /// same broker, e.g. with `--phases produce`) instead of producing a new one.
    #[arg(long)]
    topic: Option<String>,
    /// The phases to run (for profiling one of them); figures of skipped phases are null.
    #[arg(long, value_delimiter = ',', default_values_t = Phase::ALL.to_vec())]
    phases: Vec<Phase>,
    /// Events of the soak phase (a topic of its own, one run per database).
    #[arg(long, default_value_t = 3_000_000)]
    soak_events: usize,
    /// Events of the projection phases (a topic of its own), readings of `--proj-keys` devices;
    /// also the `cdc` phase's change events, over as many keys.
    #[arg(long, default_value_t = 1_000_000)]
    proj_events: usize,
    /// Devices (Kafka keys, rows of the projected table) of the projection phases.
    #[arg(long, default_value_t = 100_000)]
    proj_keys: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    Produce,
    Consume,
    PgCopy,
    SqliteRaw,
    Pg,
    Sqlite,
    ProjPg,
    ProjSqlite,
    Cdc,
    Avro,
    Latency,
    Soak,
}

impl Phase {
    const ALL: [Phase; 12] = [
        Phase::Produce,
        Phase::Consume,
        Phase::PgCopy,
        Phase::SqliteRaw,
        Phase::Pg,
        Phase::Sqlite,
        Phase::ProjPg,
        Phase::ProjSqlite,
        Phase::Cdc,
        Phase::Avro,
        Phase::Latency,
        Phase::Soak,
    ];
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        f.write_str(self.to_possible_value().expect("no skipped variants").get_name())
    }
}

// ---- data -------------------------------------------------------------------------------------

/// A generated record: key, value, headers.
type Event = (Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// Event `i`: half structured CloudEvents, half binary mode; about 300 bytes of payload.
fn event(i: usize) -> Event {
    let key = format!("device-{}", i % 5000).into_bytes();
    let data = json!({"seq": i, "temperature": 20.0 + (i % 150) as f64 / 10.0, "humidity": (i * 7) % 100, "site": format!("plant-{}", i % 12), "status": "nominal", "firmware": "4.2.17"});
    let time = chrono::DateTime::from_timestamp(1_764_000_000 + (i / 1000) as i64, 0).unwrap_or_default().to_rfc3339();
    if i.is_multiple_of(2) {
        let body = json!({"specversion":"1.0","id":format!("evt-{i:012}"),"source":"/factory/sensors","type":"com.example.sensor.reading","time":time,"datacontenttype":"application/json","data":data});
        (key, body.to_string().into_bytes(), vec![("content-type".into(), b"application/cloudevents+json".to_vec())])
    } else {
        let headers = vec![
            ("ce_specversion".into(), b"1.0".to_vec()),
            ("ce_id".into(), format!("evt-{i:012}").into_bytes()),
            ("ce_source".into(), b"/factory/sensors".to_vec()),
            ("ce_type".into(), b"com.example.sensor.reading".to_vec()),
            ("ce_time".into(), time.into_bytes()),
            ("content-type".into(), b"application/json".to_vec()),
        ];
        (key, data.to_string().into_bytes(), headers)
    }
}

pub(crate) fn produce(brokers: &str, topic: &str, partitions: i32, from: usize, n: usize, rate: Option<u64>) -> f64 {
    produce_records(brokers, topic, from, n, rate, |i| (event(i), (i % partitions as usize) as i32))
}

/// Produce records `from..from + n` (each with its partition) at `rate`, or flat out.
pub(crate) fn produce_records(
    brokers: &str,
    topic: &str,
    from: usize,
    n: usize,
    rate: Option<u64>,
    make: impl Fn(usize) -> (Event, i32),
) -> f64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .expect("create producer");
    // Connect and learn the partition leaders before the clock starts: otherwise the first
    // records wait in the producer for that, and their timestamps (set at send) count the
    // producer's start-up as commit latency of the first batch of each partition.
    producer.client().fetch_metadata(Some(topic), Duration::from_secs(30)).expect("producer metadata");
    let started = Instant::now();
    for i in from..from + n {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64((i - from) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let ((key, payload, headers), partition) = make(i);
        let mut h = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in &headers {
            h = h.insert(rdkafka::message::Header { key: k, value: Some(v) });
        }
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload).headers(h).partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    n as f64 / started.elapsed().as_secs_f64()
}

pub(crate) fn create_topic(mock: Option<&MockKafka>, brokers: &str, topic: &str, partitions: i32) {
    if let Some(m) = mock {
        m.create_topic(topic, partitions).expect("create topic");
        return;
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let fut = admin.create_topics([&t], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))));
    let res = futures::executor::block_on(fut).expect("create topics");
    for r in res {
        r.expect("topic created");
    }
}

// ---- raw limits -------------------------------------------------------------------------------

/// A bare consumer reading every partition from the start, touching each payload.
fn raw_consume(brokers: &str, topic: &str, partitions: i32, n: usize) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-raw-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .expect("raw consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let (mut count, mut bytes) = (0usize, 0usize);
    while count < n {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            count += 1;
            bytes += m.payload().map_or(0, <[u8]>::len) + m.headers().map_or(0, |h| h.count());
        }
        assert!(started.elapsed() < Duration::from_secs(600), "raw consume stalled at {count}");
    }
    std::hint::black_box(bytes);
    n as f64 / started.elapsed().as_secs_f64()
}

/// The generated events as parsed rows, in batches of `batch` per partition.
fn parsed_batches(n: usize, partitions: i32, batch: usize) -> Vec<(i32, Vec<tributary_actors::EventRow>)> {
    let mut per_partition: BTreeMap<i32, Vec<RawMessage>> = BTreeMap::new();
    for i in 0..n {
        let p = (i % partitions as usize) as i32;
        let (key, payload, headers) = event(i);
        let list = per_partition.entry(p).or_default();
        let offset = list.len() as i64;
        let headers = headers.iter().map(|(k, v)| (k.as_bytes(), Some(v.as_slice())));
        list.push(RawMessage::new(offset, Some(chrono::Utc::now().timestamp_millis()), Some(&key), Some(&payload), headers));
    }
    let mut out = Vec::new();
    for (p, msgs) in per_partition {
        for chunk in msgs.chunks(batch) {
            let raw = RawBatch {
                partition: PartitionKey { topic: "bench".into(), partition: p },
                fence: Fence::NoProgress,
                next_offset: chunk.last().map_or(0, |m| m.offset + 1),
                messages: chunk.to_vec(),
                seq: 0,
            };
            out.push((p, parse_batch(raw, &ParseOptions::default()).rows));
        }
    }
    out
}

fn open(url: &str) -> Database {
    let db = Database::open(&DatabaseOptions {
        url: url.into(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(10),
        checkpoint_in_background: false,
    })
    .expect("open database");
    db.migrate().expect("migrate");
    db
}

/// Binary COPY of prepared buffers, one transaction per batch; `mark` gets the rows so far after
/// each.
fn raw_pg_copy(url: &str, batches: &[(i32, Vec<tributary_actors::EventRow>)], mark: &mut dyn FnMut(usize)) -> f64 {
    use diesel::Connection;
    drop(open(url)); // the service's tables, migrated
    let buffers: Vec<Vec<u8>> = batches
        .iter()
        .map(|(p, rows)| {
            let mut buf = Vec::new();
            raw::encode_events("bench", *p, rows, &mut buf);
            buf
        })
        .collect();
    let rows: usize = batches.iter().map(|(_, r)| r.len()).sum();
    let mut conn = raw::postgres_connection(url);
    let started = Instant::now();
    let mut done = 0;
    mark(done);
    for buf in &buffers {
        let n = conn.transaction::<_, tributary_actors::StoreError, _>(|c| raw::copy_encoded_events(c, buf)).expect("copy");
        done += n;
        mark(done);
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        Spread { median: values[values.len() / 2], low: values[0], high: values[values.len() - 1] }
    }
}

/// One database's raw limit and tributary's end-to-end rate into it.
struct Measured {
    raw: Option<Spread>,
    e2e: Option<(E2e, Spread)>,
    /// End to end ÷ the raw limit, per pair of runs taken one after the other.
    ratio: Option<Spread>,
}

/// Measure the raw limit and end to end `runs` times each (`--runs`: a single run of a few
/// seconds moved by up to a third between runs — disk flushes, the host — and with three runs one
/// bad pair still moved the median), alternating (raw, end to end, raw,
/// …; each run gets its index, for a fresh target), and pair each end-to-end run with the raw run
/// just before it: the machine's speed drifts over minutes (on one machine of this kind, raw
/// `COPY` moved from 147k to 232k rows/s within twenty minutes), and a ratio of measurements
/// taken minutes apart carried that drift. Either side may be skipped (`--phases`).
fn alternate(n_runs: usize, mut raw: Option<&mut dyn FnMut(usize) -> f64>, mut e2e: Option<&mut dyn FnMut(usize) -> E2e>) -> Measured {
    let (mut raws, mut runs) = (Vec::new(), Vec::new());
    for k in 0..n_runs {
        if let Some(measure) = raw.as_mut() {
            raws.push(measure(k));
        }
        if let Some(measure) = e2e.as_mut() {
            runs.push(measure(k));
        }
    }
    let ratios: Vec<f64> = runs.iter().zip(&raws).map(|(e, r)| e.per_s / r).collect();
    Measured {
        ratio: (!ratios.is_empty()).then(|| Spread::of(ratios)),
        raw: (!raws.is_empty()).then(|| Spread::of(raws)),
        e2e: (!runs.is_empty()).then(|| median_e2e(runs)),
    }
}

/// How one database's figures are labelled in the report.
struct Labels {
    db: &'static str,
    raw: &'static str,
    e2e: &'static str,
    ratio: &'static str,
}

/// Print one database's raw limit, end-to-end rate, ratio, memory, CPU and transactions (`n`
/// events per run); `e2e_note` is appended inside the end-to-end line's parentheses.
fn report(m: &Measured, runs: usize, n: usize, l: Labels, e2e_note: Option<String>) {
    if let Some(rate) = &m.raw {
        eprintln!("  {:<20}{:>12.0} rows/s  (median of {runs}: {:.0}–{:.0})", l.raw, rate.median, rate.low, rate.high);
    }
    let Some((e, rate)) = &m.e2e else { return };
    let note = e2e_note.unwrap_or_default();
    eprintln!("  {:<20}{:>12.0} events/s  (median of {runs}: {:.0}–{:.0}{note})", l.e2e, e.per_s, rate.low, rate.high);
    if let Some(r) = &m.ratio {
        eprintln!(
            "  {:<20}{:>11.0}%   (run by run, median of {runs}: {:.0}–{:.0}%)",
            l.ratio,
            r.median * 100.0,
            r.low * 100.0,
            r.high * 100.0
        );
    }
    eprintln!(
        "  RSS ({} runs, worst) peak {:.1} MiB, steady {:.1} MiB; CPU {:.2} s per 100k events",
        l.db, e.rss_peak_mib, e.rss_steady_mib, e.cpu_per_100k_s
    );
    let tx = format!("transactions ({})", l.db);
    eprintln!(
        "  {tx:<19} {:.0}, {:.0} events and {:.1} batches each",
        e.transactions,
        n as f64 / e.transactions,
        e.batches / e.transactions
    );
}

/// The median end-to-end run's rate, CPU and transactions, and the worst memory and `/health`
/// figures of all runs.
fn median_e2e(mut runs: Vec<E2e>) -> (E2e, Spread) {
    runs.sort_by(|a, b| a.per_s.total_cmp(&b.per_s));
    let spread = Spread::of(runs.iter().map(|r| r.per_s).collect());
    let peak = runs.iter().map(|r| r.rss_peak_mib).fold(f64::NAN, f64::max);
    let steady = runs.iter().map(|r| r.rss_steady_mib).fold(f64::NAN, f64::max);
    let health = runs.iter().filter_map(|r| r.health).reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
    let mut median = runs.swap_remove(runs.len() / 2);
    median.rss_peak_mib = peak;
    median.rss_steady_mib = steady;
    median.health = health;
    (median, spread)
}

/// Multi-row prepared inserts, one immediate transaction per batch; `mark` gets the rows so far
/// after each.
fn raw_sqlite_insert(url: &str, batches: &[(i32, Vec<tributary_actors::EventRow>)], mark: &mut dyn FnMut(usize)) -> f64 {
    drop(open(url)); // the service's tables, migrated
    let rows: usize = batches.iter().map(|(_, r)| r.len()).sum();
    let mut conn = raw::sqlite_connection(url);
    let started = Instant::now();
    let mut done = 0;
    mark(done);
    for (p, batch) in batches {
        let key = PartitionKey { topic: "bench".into(), partition: *p };
        let rows: Vec<RowRef<'_>> = batch.iter().map(|row| RowRef { partition: &key, row }).collect();
        conn.immediate_transaction::<_, tributary_actors::StoreError, _>(|c| raw::insert_events(c, &rows)).expect("insert");
        done += rows.len();
        mark(done);
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// A figure of the JSON line to one decimal (MiB).
fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A figure of the JSON line to three decimals (ratios, CPU seconds).
fn rate3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A phase's fields of the JSON line, written as one `json!` object.
fn fields(object: Value) -> Map<String, Value> {
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Let PostgreSQL write out what earlier phases left (a million rows of WAL to checkpoint), so
/// every measured phase starts from a quiet server instead of paying for the one before it.
fn quiesce(admin: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut c = diesel::PgConnection::establish(admin).expect("connect to --database-url");
    diesel::sql_query("CHECKPOINT").execute(&mut c).expect("checkpoint (the user needs pg_checkpoint or superuser)");
}

fn main() {
    let args = Args::parse();
    let bin = args.tributary.clone().unwrap_or_else(|| std::env::current_exe().expect("current exe").with_file_name("tributary"));
    assert!(bin.exists(), "tributary binary not found at {} (build it with cargo build --release)", bin.display());
    let mock = if args.brokers.is_none() { Some(MockKafka::start(1).expect("mock cluster")) } else { None };
    let brokers = args.brokers.clone().unwrap_or_else(|| mock.as_ref().map(|m| m.bootstrap_servers().to_string()).unwrap_or_default());
    let partitions = args.partitions.unwrap_or(if mock.is_some() { ((args.events * 420) / 4_500_000).max(4) as i32 } else { 8 });
    let n = args.events;
    let run = |p: Phase| args.phases.contains(&p);
    let runs = args.runs as usize;
    let topic = args.topic.clone().unwrap_or_else(|| format!("bench-{}", chrono::Utc::now().timestamp_micros()));
    eprintln!(
        "bench: {n} events, {partitions} partitions, topic {topic}, {}",
        if mock.is_some() { "mock cluster".to_string() } else { format!("brokers {brokers}") }
    );

    // The main topic only when a phase reads it (the raw limits read prepared rows; the latency,
    // soak and projection phases produce topics of their own).
    let produce_rate =
        (args.topic.is_none() && [Phase::Produce, Phase::Consume, Phase::Pg, Phase::Sqlite].into_iter().any(run)).then(|| {
            create_topic(mock.as_ref(), &brokers, &topic, partitions);
            let rate = produce(&brokers, &topic, partitions, 0, n, None);
            eprintln!("  produced            {rate:>12.0} events/s");
            rate
        });
    let consume = run(Phase::Consume).then(|| {
        let rate = raw_consume(&brokers, &topic, partitions, n);
        eprintln!("  raw consume         {rate:>12.0} events/s");
        rate
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let batches = (run(Phase::PgCopy) || run(Phase::SqliteRaw)).then(|| parsed_batches(n, partitions, BatchLimits::default().max_messages));
    let batches = batches.as_deref().unwrap_or_default();

    // The Avro runs follow the JSON runs, one after each (its own loop without the `pg` phase).
    let mut avro = run(Phase::Avro).then(|| avro::Phase::new(&bin, mock.as_ref(), &brokers, &args.database_url, partitions, n, dir.path()));
    let pg = {
        let mut raw = |_| {
            let db = temp_pg(&args.database_url);
            quiesce(&args.database_url);
            raw_pg_copy(&db.url, batches, &mut |_| {})
        };
        let mut e2e = |_| {
            let db = temp_pg(&args.database_url);
            quiesce(&args.database_url);
            let json = end_to_end(&bin, &brokers, &topic, &db.url, n, true, None);
            drop(db);
            if let Some(a) = avro.as_mut() {
                a.measure(Some(json.per_s));
            }
            json
        };
        alternate(runs, run(Phase::PgCopy).then_some(&mut raw as _), run(Phase::Pg).then_some(&mut e2e as _))
    };
    if let Some(a) = avro.as_mut().filter(|_| !run(Phase::Pg)) {
        (0..runs).for_each(|_| a.measure(None));
    }
    let of_consume = pg.e2e.as_ref().map(|(e, _)| consume.map_or("-".to_string(), |c| format!("{:.0}%", 100.0 * e.per_s / c)));
    report(
        &pg,
        runs,
        n,
        Labels { db: "PG", raw: "raw PostgreSQL COPY", e2e: "tributary → PG", ratio: "PG ÷ COPY" },
        of_consume.map(|c| format!("; {c} of consume")),
    );
    if let Some((e, _)) = &pg.e2e {
        let (rps, p99) = e.health.unwrap_or((f64::NAN, f64::NAN));
        eprintln!("  /health under load  {rps:.0} req/s, p99 {p99:.2} ms");
    }
    let avro = avro.and_then(|a| a.finish(runs));

    let sq = {
        let remove = |path: &std::path::Path| {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        };
        let mut raw = |k| {
            let path = dir.path().join(format!("raw-{k}.db"));
            let rate = raw_sqlite_insert(&format!("sqlite://{}", path.display()), batches, &mut |_| {});
            remove(&path);
            rate
        };
        let mut e2e = |k| {
            let path = dir.path().join(format!("e2e-{k}.db"));
            let run = end_to_end(&bin, &brokers, &topic, &format!("sqlite://{}", path.display()), n, false, None);
            remove(&path);
            run
        };
        alternate(runs, run(Phase::SqliteRaw).then_some(&mut raw as _), run(Phase::Sqlite).then_some(&mut e2e as _))
    };
    report(&sq, runs, n, Labels { db: "SQLite", raw: "raw SQLite insert", e2e: "tributary → SQLite", ratio: "SQLite ÷ raw insert" }, None);
    let proj_partitions = args.partitions.unwrap_or(if mock.is_some() { ((args.proj_events * 420) / 4_500_000).max(4) as i32 } else { 8 });
    let proj = project::run(&project::Setup {
        bin: &bin,
        mock: mock.as_ref(),
        brokers: &brokers,
        admin: &args.database_url,
        partitions: proj_partitions,
        runs,
        events: args.proj_events,
        keys: args.proj_keys,
        dir: dir.path(),
        pg: run(Phase::ProjPg),
        sqlite: run(Phase::ProjSqlite),
    });
    let cdc = run(Phase::Cdc).then(|| {
        cdc::run(&cdc::Setup {
            bin: &bin,
            mock: mock.as_ref(),
            brokers: &brokers,
            admin: &args.database_url,
            partitions: args.partitions,
            runs,
            events: args.proj_events,
            keys: args.proj_keys,
            dir: dir.path(),
            proj_raw: proj.as_ref().and_then(project::Figures::pg_raw),
            proj_partitions,
        })
    });
    let latency = run(Phase::Latency).then(|| {
        let db = temp_pg(&args.database_url);
        quiesce(&args.database_url);
        let (p50, p99) = commit_latency(&bin, mock.as_ref(), &brokers, &db.url, args.latency_rate, args.latency_seconds);
        eprintln!("  commit latency at {} events/s: p50 ≤ {p50:.0} ms, p99 ≤ {p99:.0} ms (histogram bucket bounds)", args.latency_rate);
        (p50, p99)
    });

    let soaks = run(Phase::Soak).then(|| {
        let n = args.soak_events;
        let topic = format!("bench-soak-{}", chrono::Utc::now().timestamp_micros());
        let partitions = args.partitions.unwrap_or(if mock.is_some() { ((n * 420) / 4_500_000).max(4) as i32 } else { 8 });
        create_topic(mock.as_ref(), &brokers, &topic, partitions);
        produce(&brokers, &topic, partitions, 0, n, None);
        // The raw limits over the same rows, batches of the partitions interleaved as the
        // service commits them: whether the database itself slows as its tables grow.
        let raw = {
            let batches = soak::interleaved(parsed_batches(n, partitions, BatchLimits::default().max_messages));
            let pg = {
                let db = temp_pg(&args.database_url);
                quiesce(&args.database_url);
                let mut thirds = soak::Thirds::new(n);
                raw_pg_copy(&db.url, &batches, &mut |done| thirds.mark(done));
                thirds.rates()
            };
            let path = dir.path().join("soak-raw.db");
            let mut thirds = soak::Thirds::new(n);
            raw_sqlite_insert(&format!("sqlite://{}", path.display()), &batches, &mut |done| thirds.mark(done));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            (pg, thirds.rates())
        };
        for (db, [a, b, c]) in [("PG COPY", raw.0), ("SQLite", raw.1)] {
            eprintln!("  soak raw {db:<8} thirds {a:.0} / {b:.0} / {c:.0} rows/s (last ÷ first {:.0}%)", 100.0 * c / a);
        }
        let report = |db: &str, s: &soak::Soak| {
            let [a, b, c] = s.thirds;
            let wal = s.wal_peak_mib.map_or(String::new(), |w| format!(", WAL peak {w:.1} MiB"));
            eprintln!("  soak {db:<7} {n} events, {partitions} partitions: thirds {a:.0} / {b:.0} / {c:.0} events/s (last ÷ first {:.0}%){wal}, steady RSS {:.1} MiB", 100.0 * s.last_over_first(), s.rss_steady_mib);
        };
        // End to end only from a real broker: the mock cluster finds a fetch's offset by walking
        // the partition's message sets from the start (rdkafka_mock.c, "FIXME: Maintain an
        // index"), so its own rate falls as the topic is read.
        if mock.is_some() {
            eprintln!("  soak end to end skipped: it needs a real broker (--brokers); the mock cluster slows down as it is read");
            return (n, None, None, raw);
        }
        let pg = {
            let db = temp_pg(&args.database_url);
            quiesce(&args.database_url);
            soak::soak(&bin, &brokers, &topic, &db.url, n, None)
        };
        report("PG", &pg);
        let path = dir.path().join("soak.db");
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let sq = soak::soak(&bin, &brokers, &topic, &format!("sqlite://{}", path.display()), n, Some(&wal));
        report("SQLite", &sq);
        (n, Some(pg), Some(sq), raw)
    });

    let pg_e2e = pg.e2e.as_ref().map(|(e, _)| e);
    let sq_e2e = sq.e2e.as_ref().map(|(e, _)| e);
    let health = pg_e2e.and_then(|p| p.health);
    let mut summary = json!({
        "events": n,
        "partitions": partitions,
        "runs": runs,
        "broker": if mock.is_some() { "mock" } else { "real" },
        "produce_per_s": produce_rate.map(f64::round),
        "consume_per_s": consume.map(f64::round),
        "pg_copy_per_s": pg.raw.as_ref().map(|r| r.median.round()),
        "pg_e2e_per_s": pg_e2e.map(|p| p.per_s.round()),
        "pg_ratio": pg.ratio.as_ref().map(|r| rate3(r.median)),
        "pg_ratio_low": pg.ratio.as_ref().map(|r| rate3(r.low)),
        "consume_ratio": pg_e2e.zip(consume).map(|(p, c)| rate3(p.per_s / c)),
        "sqlite_raw_per_s": sq.raw.as_ref().map(|r| r.median.round()),
        "sqlite_e2e_per_s": sq_e2e.map(|s| s.per_s.round()),
        "sqlite_ratio": sq.ratio.as_ref().map(|r| rate3(r.median)),
        "sqlite_ratio_low": sq.ratio.as_ref().map(|r| rate3(r.low)),
        "rss_peak_mib": pg_e2e.map(|p| r1(p.rss_peak_mib)),
        "rss_steady_mib": pg_e2e.map(|p| r1(p.rss_steady_mib)),
        "sqlite_rss_peak_mib": sq_e2e.map(|s| r1(s.rss_peak_mib)),
        "sqlite_rss_steady_mib": sq_e2e.map(|s| r1(s.rss_steady_mib)),
        "cpu_s_per_100k": pg_e2e.map(|p| rate3(p.cpu_per_100k_s)),
        "sqlite_cpu_s_per_100k": sq_e2e.map(|s| rate3(s.cpu_per_100k_s)),
        "commit_p50_ms": latency.map(|l| l.0),
        "commit_p99_ms": latency.map(|l| l.1),
        "health_rps": health.map(|h| h.0.round()),
        "health_p99_ms": health.map(|h| (h.1 * 100.0).round() / 100.0),
        "soak_events": soaks.as_ref().map(|s| s.0),
        "pg_soak_raw_thirds_per_s": soaks.as_ref().map(|s| s.3 .0.map(f64::round)),
        "sqlite_soak_raw_thirds_per_s": soaks.as_ref().map(|s| s.3 .1.map(f64::round)),
        "pg_soak_thirds_per_s": soaks.as_ref().and_then(|s| s.1.as_ref()).map(|p| p.thirds.map(f64::round)),
        "pg_soak_last_over_first": soaks.as_ref().and_then(|s| s.1.as_ref()).map(|p| rate3(p.last_over_first())),
        "pg_soak_rss_steady_mib": soaks.as_ref().and_then(|s| s.1.as_ref()).map(|p| r1(p.rss_steady_mib)),
        "sqlite_soak_thirds_per_s": soaks.as_ref().and_then(|s| s.2.as_ref()).map(|q| q.thirds.map(f64::round)),
        "sqlite_soak_last_over_first": soaks.as_ref().and_then(|s| s.2.as_ref()).map(|q| rate3(q.last_over_first())),
        "sqlite_soak_wal_peak_mib": soaks.as_ref().and_then(|s| s.2.as_ref()).and_then(|q| q.wal_peak_mib).map(r1),
        "sqlite_soak_rss_steady_mib": soaks.as_ref().and_then(|s| s.2.as_ref()).map(|q| r1(q.rss_steady_mib)),
    });
    if let Some(fields) = summary.as_object_mut() {
        fields.extend(project::summary(proj.as_ref()));
        fields.extend(avro::summary(avro.as_ref()));
        fields.extend(cdc::summary(cdc.as_ref()));
    }
    println!("{summary}");
}

/// A PostgreSQL database for one phase on the server `admin` connects to, dropped afterwards.
fn temp_pg(admin: &str) -> TestDb {
    TestDb::postgres_on(admin, "tributary_bench")
}
