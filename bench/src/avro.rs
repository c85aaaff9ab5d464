//! The `avro` phase: the `pg` phase's events Avro-encoded by an independent encoder (the
//! `apache-avro` crate) with one record schema, framed in the schema registry's wire format
//! (magic byte 0, the schema id 1 big-endian, the datum) on a topic of their own, and a registry
//! on loopback in this process that serves the schema and counts the requests. Each run is
//! tributary end to end into a fresh PostgreSQL database, exactly as the JSON `pg` run it follows
//! (same binary, same settings, `/health` probed alike) but with `[schema_registry] url` set; the
//! ratio Avro ÷ JSON is taken run by run, and every run's table is checked.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{Decimal, Schema};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use serde_json::{json, Map, Value};
use tributary::mock::MockKafka;

use crate::service::{end_to_end, E2e};
use crate::{create_topic, median_e2e, produce_records, quiesce, r1, rate3, report, temp_pg, Event, Labels, Measured, Spread};

/// The schema id every value is framed with, the only one the registry knows.
const SCHEMA_ID: u32 = 1;

/// A structured CloudEvent with the `pg` phase's fields: its attributes (`time` as
/// `timestamp-micros`) and the reading as a nested record (the temperature a `decimal`).
const SCHEMA: &str = r#"{
  "type": "record", "name": "SensorEvent", "namespace": "com.example.sensor",
  "fields": [
    {"name": "specversion", "type": "string"},
    {"name": "id", "type": "string"},
    {"name": "source", "type": "string"},
    {"name": "type", "type": "string"},
    {"name": "time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "datacontenttype", "type": "string"},
    {"name": "data", "type": {"type": "record", "name": "Reading", "fields": [
      {"name": "seq", "type": "long"},
      {"name": "temperature", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 1}},
      {"name": "humidity", "type": "int"},
      {"name": "site", "type": "string"},
      {"name": "status", "type": "string"},
      {"name": "firmware", "type": "string"}
    ]}}
  ]
}"#;

/// Event `i`'s fields, as `crate::event` makes them.
fn seconds(i: usize) -> i64 {
    1_764_000_000 + (i / 1000) as i64
}

/// Event `i` as an Avro record of [`SCHEMA`].
fn datum(i: usize) -> Avro {
    let s = |v: &str| Avro::String(v.to_string());
    let reading = Avro::Record(vec![
        ("seq".into(), Avro::Long(i as i64)),
        // 20.0 + (i % 150) / 10, exactly: its unscaled value at scale 1.
        ("temperature".into(), Avro::Decimal(Decimal::from((200 + (i % 150) as i16).to_be_bytes()))),
        ("humidity".into(), Avro::Int(((i * 7) % 100) as i32)),
        ("site".into(), Avro::String(format!("plant-{}", i % 12))),
        ("status".into(), s("nominal")),
        ("firmware".into(), s("4.2.17")),
    ]);
    Avro::Record(vec![
        ("specversion".into(), s("1.0")),
        ("id".into(), Avro::String(format!("evt-{i:012}"))),
        ("source".into(), s("/factory/sensors")),
        ("type".into(), s("com.example.sensor.reading")),
        ("time".into(), Avro::TimestampMicros(seconds(i) * 1_000_000)),
        ("datacontenttype".into(), s("application/json")),
        ("data".into(), reading),
    ])
}

/// Event `i`'s value as tributary should store it (docs/formats.md's mapping).
fn expected(i: usize) -> Value {
    let time = chrono::DateTime::from_timestamp(seconds(i), 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let unscaled = 200 + i % 150;
    json!({"specversion": "1.0", "id": format!("evt-{i:012}"), "source": "/factory/sensors", "type": "com.example.sensor.reading",
        "time": time, "datacontenttype": "application/json",
        "data": {"seq": i, "temperature": format!("{}.{}", unscaled / 10, unscaled % 10), "humidity": (i * 7) % 100,
            "site": format!("plant-{}", i % 12), "status": "nominal", "firmware": "4.2.17"}})
}

/// Event `i` framed: key and partition as the `pg` phase's, a `content-type` header.
fn record(writer: &GenericDatumWriter<'_>, i: usize, partitions: i32) -> (Event, i32) {
    let mut value = Vec::with_capacity(128);
    value.push(0);
    value.extend_from_slice(&SCHEMA_ID.to_be_bytes());
    writer.write_value(&mut value, datum(i)).expect("encode the event");
    let key = format!("device-{}", i % 5000).into_bytes();
    ((key, value, vec![("content-type".into(), b"application/avro".to_vec())]), (i % partitions as usize) as i32)
}

/// A Confluent-compatible registry on loopback that knows schema [`SCHEMA_ID`]: one thread, one
/// request per connection (`Connection: close`), every request counted.
struct Registry {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl Registry {
    fn start() -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the registry");
        let port = listener.local_addr().expect("registry address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let body = json!({"schema": SCHEMA, "schemaType": "AVRO"}).to_string();
        let count = requests.clone();
        std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if let Some(path) = answer(stream, &body) {
                        count.fetch_add(1, Ordering::Relaxed);
                        if path != format!("/schemas/ids/{SCHEMA_ID}") {
                            eprintln!("    registry: GET {path} → 404");
                        }
                    }
                }
            })
            .expect("registry thread");
        Registry { port, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Read one request's head and answer it; its path, if it was a request.
fn answer(mut stream: TcpStream, schema: &str) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&buf[..n]);
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.lines().next()?.split_whitespace().nth(1)?.to_string();
    let (status, body) = if path == format!("/schemas/ids/{SCHEMA_ID}") {
        ("200 OK", schema.to_string())
    } else {
        ("404 Not Found", json!({"error_code": 40403, "message": "Schema not found"}).to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    Some(path)
}

/// One Avro run: the service's figures, the rate of the JSON run it is paired with, and the
/// registry requests it made.
struct Run {
    e2e: E2e,
    json_per_s: Option<f64>,
    requests: usize,
}

/// The phase: its topic, registry and config, and the runs so far.
pub struct Phase<'a> {
    bin: &'a PathBuf,
    brokers: &'a str,
    admin: &'a str,
    topic: String,
    partitions: i32,
    events: usize,
    config: PathBuf,
    registry: Registry,
    runs: Vec<Run>,
}

impl<'a> Phase<'a> {
    /// Start the registry, write the service's config and produce `n` events over `partitions`.
    pub fn new(
        bin: &'a PathBuf,
        mock: Option<&MockKafka>,
        brokers: &'a str,
        admin: &'a str,
        partitions: i32,
        n: usize,
        dir: &Path,
    ) -> Phase<'a> {
        let schema = Schema::parse_str(SCHEMA).expect("the Avro schema");
        let writer = GenericDatumWriter::builder(&schema).build().expect("Avro writer");
        let topic = format!("bench-avro-{}", chrono::Utc::now().timestamp_micros());
        create_topic(mock, brokers, &topic, partitions);
        let rate = produce_records(brokers, &topic, 0, n, None, |i| record(&writer, i, partitions));
        let size = record(&writer, 0, partitions).0 .1.len();
        eprintln!("  produced Avro       {rate:>12.0} events/s  ({n}, {size} bytes framed, {partitions} partitions, topic {topic})");
        let registry = Registry::start();
        let config = dir.join("avro.toml");
        std::fs::write(&config, format!("[schema_registry]\nurl = \"http://127.0.0.1:{}\"\n", registry.port))
            .expect("write the Avro config");
        Phase { bin, brokers, admin, topic, partitions, events: n, config, registry, runs: Vec::new() }
    }

    /// One end-to-end run into a fresh database, paired with the JSON run just before it (if
    /// any), its table checked.
    pub fn measure(&mut self, json_per_s: Option<f64>) {
        let db = temp_pg(self.admin);
        quiesce(self.admin);
        let before = self.registry.requests();
        let e2e = end_to_end(self.bin, self.brokers, &self.topic, &db.url, self.events, true, Some(&self.config));
        let requests = self.registry.requests() - before;
        verify(&db.url, self.events, &self.topic, self.partitions);
        let vs = json_per_s.map_or(String::new(), |j| format!(", {:.0}% of the JSON run's {j:.0}", 100.0 * e2e.per_s / j));
        eprintln!("    Avro run: {:.0} events/s{vs}, {requests} registry request(s)", e2e.per_s);
        self.runs.push(Run { e2e, json_per_s, requests });
    }

    /// Print the figures; `None` when there was no run.
    pub fn finish(self, runs: usize) -> Option<Figures> {
        if self.runs.is_empty() {
            return None;
        }
        let ratios: Vec<f64> = self.runs.iter().filter_map(|r| r.json_per_s.map(|j| r.e2e.per_s / j)).collect();
        let requests: Vec<usize> = self.runs.iter().map(|r| r.requests).collect();
        let measured = Measured {
            raw: None,
            ratio: (!ratios.is_empty()).then(|| Spread::of(ratios)),
            e2e: Some(median_e2e(self.runs.into_iter().map(|r| r.e2e).collect())),
        };
        let labels = Labels { db: "Avro", raw: "", e2e: "tributary → PG, Avro", ratio: "Avro ÷ JSON" };
        report(&measured, runs, self.events, labels, None);
        eprintln!("  registry requests   {requests:?} (per run)");
        Some(Figures { measured, requests: requests.into_iter().max().unwrap_or(0) })
    }
}

pub struct Figures {
    measured: Measured,
    /// The most registry requests of one run (one service start).
    requests: usize,
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    with_data: i64,
    #[diesel(sql_type = BigInt)]
    dead: i64,
}

#[derive(QueryableByName)]
struct Data {
    #[diesel(sql_type = Text)]
    data: String,
}

/// Every event committed once (the key is topic, partition, offset), its value decoded, no dead
/// letter, and a sample of rows holding exactly what was encoded; a wrong table fails the
/// benchmark.
fn verify(url: &str, n: usize, topic: &str, partitions: i32) {
    let mut c = diesel::PgConnection::establish(url).expect("connect to the run's database");
    let counts: Counts = diesel::sql_query(
        "SELECT (SELECT count(*) FROM events) AS rows, (SELECT count(data) FROM events) AS with_data, \
         (SELECT count(*) FROM dead_letters) AS dead",
    )
    .get_result(&mut c)
    .expect("count the rows");
    assert_eq!((counts.rows, counts.with_data, counts.dead), (n as i64, n as i64, 0), "avro: (rows, rows with data, dead letters)");
    for i in [0, 1, n / 3, n / 2 + 1, n - 1] {
        let rows: Vec<Data> = diesel::sql_query(
            "SELECT data::text AS data FROM events WHERE topic = $1 AND partition = $2 AND data->>'id' = $3 AND key = $4",
        )
        .bind::<Text, _>(topic)
        .bind::<Integer, _>((i % partitions as usize) as i32)
        .bind::<Text, _>(format!("evt-{i:012}"))
        .bind::<diesel::sql_types::Binary, _>(format!("device-{}", i % 5000).into_bytes())
        .load(&mut c)
        .expect("read a row");
        let got: Vec<Value> = rows.iter().map(|r| serde_json::from_str(&r.data).expect("jsonb text")).collect();
        assert_eq!(got, vec![expected(i)], "avro: event {i}'s row");
    }
}

/// The phase's fields of the JSON line (null when it did not run).
pub fn summary(f: Option<&Figures>) -> Map<String, Value> {
    let e2e = f.and_then(|f| f.measured.e2e.as_ref()).map(|(e, _)| e);
    let ratio = f.and_then(|f| f.measured.ratio.as_ref());
    crate::fields(json!({
        "avro_e2e_per_s": e2e.map(|e| e.per_s.round()),
        "avro_vs_json_ratio": ratio.map(|r| rate3(r.median)),
        "avro_vs_json_ratio_low": ratio.map(|r| rate3(r.low)),
        "avro_rss_steady_mib": e2e.map(|e| r1(e.rss_steady_mib)),
        "avro_rss_peak_mib": e2e.map(|e| r1(e.rss_peak_mib)),
        "avro_cpu_s_per_100k": e2e.map(|e| rate3(e.cpu_per_100k_s)),
        "avro_registry_requests": f.map(|f| f.requests),
    }))
}
