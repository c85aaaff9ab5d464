//! The `cdc` phase: Debezium change events of one source table (`shop.public.accounts`, as
//! Debezium's PostgreSQL connector writes them with the JSON converter and
//! `schemas.enable=true`: every key and value in Connect's `{"schema": …, "payload": …}` wrapper)
//! into a replica table on PostgreSQL through a projection with `envelope = "debezium"`.
//! `--proj-events` change events (70 % updates, 20 % creates, 10 % deletes) over `--proj-keys`
//! keys, the same counts as the projection phase, on a topic of their own (a key's events in one
//! partition, `id % partitions`). The figure is end to end against the `proj-pg` phase's raw
//! limit measured in the same run, or, without that phase, the same raw limit measured here,
//! alternating with the end-to-end runs. Every run's table is checked against the model, row by
//! row.

use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde_json::{json, Map, Value};
use tributary::mock::MockKafka;

use crate::service::{end_to_end, E2e};
use crate::{alternate, create_topic, produce_records, project, quiesce, r1, rate3, report, temp_pg, Event, Labels, Measured, Spread};

/// The replica as its operator creates it: the source table's columns and primary key.
const TABLE: &str = "CREATE TABLE replica (id bigint PRIMARY KEY, name text, balance numeric(14,2), updated_at timestamp(6), status text)";

/// The projection: no `events` archive, the table's columns and primary key by default.
const CONFIG: &str = r#"
[events]
enabled = false

[[projection]]
name = "replica"
table = "replica"
envelope = "debezium"
"#;

/// A change event's op, as the generator chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    fn letter(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// The stream: each event's op and key, and the model it leaves (per key, the index of the event
/// that wrote its row last; `None` for a key never created or deleted last).
struct Plan {
    ops: Vec<(Op, u32)>,
    last: Vec<Option<u32>>,
    /// Creates, updates, deletes as generated.
    counts: [usize; 3],
}

/// SplitMix64: a fixed function of `x`, so the stream is the same in every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const OP_SALT: u64 = 0x0cdc_0000_0000_0001;
const ROW_SALT: u64 = 0x0cdc_0000_0000_0002;

/// Event `i`'s op by `mix(i)`: below 70 of 100 an update, below 90 a create, else a delete. A
/// create takes a key that has no row (uniformly among them), an update or a delete one that has
/// a row, so every event is one a source could have sent. When there is none such (at the start
/// nothing exists; once every key exists there is nothing left to create), the op falls back: an
/// update or delete to a create, a create to an update. The counts say what was generated.
fn plan(n: usize, keys: usize) -> Plan {
    assert!(keys <= u32::MAX as usize && n <= u32::MAX as usize, "--proj-events and --proj-keys must fit in 32 bits");
    // Keys with a row are `slots[..live]`, the others `slots[live..]`.
    let mut slots: Vec<u32> = (0..keys as u32).collect();
    let mut live = 0usize;
    let mut last = vec![None; keys];
    let mut ops = Vec::with_capacity(n);
    let mut counts = [0; 3];
    for i in 0..n {
        let h = mix(OP_SALT ^ i as u64);
        let pick = (h >> 32) as usize;
        let op = match h % 100 {
            0..70 if live > 0 => Op::Update,
            70..90 if live < keys => Op::Create,
            90.. if live > 0 => Op::Delete,
            _ if live == 0 => Op::Create,
            _ => Op::Update,
        };
        let key = match op {
            Op::Create => {
                slots.swap(live, live + pick % (keys - live));
                live += 1;
                slots[live - 1]
            }
            Op::Update => slots[pick % live],
            Op::Delete => {
                slots.swap(pick % live, live - 1);
                live -= 1;
                slots[live]
            }
        };
        last[key as usize] = (op != Op::Delete).then_some(i as u32);
        counts[op as usize] += 1;
        ops.push((op, key));
    }
    Plan { ops, last, counts }
}

/// The source row event `i` writes for key `id`, its columns as PostgreSQL gives them back as
/// text: (name, balance in cents, updated_at in µs since the epoch, status).
fn row(id: u32, i: usize) -> (String, i64, i64, &'static str) {
    let h = mix(ROW_SALT ^ i as u64);
    let name = format!("Customer {id:06} rev {}", i % 1000);
    // -10,000,000.00 to 89,999,999.99: numeric(14,2) holds it.
    let cents = (h % 10_000_000_000) as i64 - 1_000_000_000;
    // From 2025-11-24, a millisecond per event, and a few µs so every digit counts.
    let micros = 1_764_000_000_000_000 + i as i64 * 1000 + ((h >> 40) % 1000) as i64;
    let status = ["active", "pending", "suspended", "closed"][((h >> 20) % 4) as usize];
    (name, cents, micros, status)
}

/// `cents` as numeric(14,2)'s text.
fn money(cents: i64) -> String {
    format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

/// µs since the epoch as `to_char(…, 'YYYY-MM-DD HH24:MI:SS.US')` gives a `timestamp(6)` back.
fn timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default().naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// Connect's `Decimal`: the unscaled value's two's complement, big-endian and minimal, in
/// base64 (the harness's own encoder, independent of tributary's decoder).
fn decimal(unscaled: i64) -> String {
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 7 && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0) || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0)) {
        start += 1;
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(12);
    for chunk in bytes[start..].chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            out.push(if k <= chunk.len() { ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// The envelope schema the JSON converter writes for the source table, as one text (compiled
/// once per text by tributary, as a connector sends one per table version).
fn schema() -> String {
    let f = |ty: &str, optional: bool, field: &str| json!({"type": ty, "optional": optional, "field": field});
    let columns = vec![
        f("int64", false, "id"),
        f("string", true, "name"),
        json!({"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
               "parameters": {"scale": "2", "connect.decimal.precision": "14"}, "field": "balance"}),
        json!({"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "updated_at"}),
        f("string", true, "status"),
    ];
    let image =
        |which: &str| json!({"type": "struct", "fields": columns, "optional": true, "name": "shop.public.accounts.Value", "field": which});
    let source = json!({"type": "struct", "fields": [
        f("string", false, "version"), f("string", false, "connector"), f("string", false, "name"), f("int64", false, "ts_ms"),
        json!({"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
               "parameters": {"allowed": "true,last,false,incremental"}, "default": "false", "field": "snapshot"}),
        f("string", false, "db"), f("string", true, "sequence"), f("string", false, "schema"), f("string", false, "table"),
        f("int64", true, "txId"), f("int64", true, "lsn"), f("int64", true, "xmin")],
        "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source"});
    let transaction = json!({"type": "struct", "fields": [f("string", false, "id"), f("int64", false, "total_order"),
        f("int64", false, "data_collection_order")], "optional": true, "name": "event.block", "version": 1, "field": "transaction"});
    json!({"type": "struct", "fields": [image("before"), image("after"), source, f("string", false, "op"), f("int64", true, "ts_ms"), transaction],
           "optional": false, "name": "shop.public.accounts.Envelope", "version": 1})
    .to_string()
}

const KEY_SCHEMA: &str =
    r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"shop.public.accounts.Key"}"#;

/// Event `i` as Debezium's PostgreSQL connector sends it (REPLICA IDENTITY DEFAULT: an update
/// has no `before`, a delete's `before` holds the key alone; `tombstones.on.delete = false`, so
/// no tombstone follows a delete), and its partition.
fn record(plan: &Plan, schema: &str, i: usize, partitions: i32) -> (Event, i32) {
    let (op, id) = plan.ops[i];
    let image = || {
        let (name, cents, micros, status) = row(id, i);
        format!(r#"{{"id":{id},"name":"{name}","balance":"{}","updated_at":{micros},"status":"{status}"}}"#, decimal(cents))
    };
    let (before, after) = match op {
        Op::Create | Op::Update => ("null".to_string(), image()),
        Op::Delete => (format!(r#"{{"id":{id},"name":null,"balance":null,"updated_at":null,"status":null}}"#), "null".to_string()),
    };
    // Three changes per transaction; the LSNs grow with the stream, the last commit's trails.
    let lsn = 0x1_6b37_4d48 + i as u64 * 312;
    let tx = 7_000_000 + i / 3;
    let ts = 1_764_000_000_000 + i as u64;
    let source = format!(
        r#"{{"version":"2.7.3.Final","connector":"postgresql","name":"shop","ts_ms":{ts},"snapshot":"false","db":"shop","sequence":"[\"{}\",\"{lsn}\"]","schema":"public","table":"accounts","txId":{tx},"lsn":{lsn},"xmin":null}}"#,
        lsn - 312 * (i as u64 % 3 + 1)
    );
    let value = format!(
        r#"{{"schema":{schema},"payload":{{"before":{before},"after":{after},"source":{source},"op":"{}","ts_ms":{},"transaction":null}}}}"#,
        op.letter(),
        ts + 3
    );
    let key = format!(r#"{{"schema":{KEY_SCHEMA},"payload":{{"id":{id}}}}}"#);
    ((key.into_bytes(), value.into_bytes(), Vec::new()), (id % partitions as u32) as i32)
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    balance: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    updated_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

/// The replica must be the model exactly: one row per key that exists at the end, each column as
/// its last change wrote it; a wrong table fails the benchmark.
fn verify(conn: &mut PgConnection, plan: &Plan) {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT id, name, balance::text AS balance, to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.US') AS updated_at, status \
         FROM replica ORDER BY id",
    )
    .load(conn)
    .expect("read the replica");
    let want: Vec<Row> = (plan.last.iter().enumerate())
        .filter_map(|(id, last)| {
            let (name, cents, micros, status) = row(id as u32, (*last)? as usize);
            let s = |x: String| Some(x);
            Some(Row { id: id as i64, name: s(name), balance: s(money(cents)), updated_at: s(timestamp(micros)), status: s(status.into()) })
        })
        .collect();
    assert_eq!(rows.len(), want.len(), "cdc: the replica has {} rows, the model {}", rows.len(), want.len());
    for (got, want) in rows.iter().zip(&want) {
        assert_eq!(got, want, "cdc: replica row {} differs from the model", want.id);
    }
}

/// What the phase needs from the run.
pub struct Setup<'a> {
    pub bin: &'a PathBuf,
    pub mock: Option<&'a MockKafka>,
    pub brokers: &'a str,
    /// `--database-url`: where each run gets a database of its own.
    pub admin: &'a str,
    /// `--partitions`, if given.
    pub partitions: Option<i32>,
    pub runs: usize,
    pub events: usize,
    pub keys: usize,
    pub dir: &'a Path,
    /// The `proj-pg` phase's raw limit (median, rows/s), when it ran.
    pub proj_raw: Option<f64>,
    /// The projection phases' partitions: their raw limit's batches, when measured here.
    pub proj_partitions: i32,
}

pub struct Figures {
    events: usize,
    keys: usize,
    partitions: i32,
    bytes: usize,
    counts: [usize; 3],
    raw: f64,
    measured: Measured,
}

/// Produce the change events, then run tributary end to end `runs` times (each against the
/// `proj-pg` raw limit, or alternating with a raw run of its own), each table checked.
pub fn run(s: &Setup<'_>) -> Figures {
    let (n, keys) = (s.events, s.keys);
    assert!(n > 0 && keys > 0, "--proj-events and --proj-keys must be positive");
    let plan = plan(n, keys);
    let schema = schema();
    // The mock cluster keeps 5 MB per partition (a message's own overhead ~70 bytes): enough
    // partitions that the whole topic stays, with a tenth to spare.
    let bytes = {
        let sample: Vec<usize> =
            (0..n).step_by((n / 1000).max(1)).map(|i| record(&plan, &schema, i, 1).0).map(|(k, v, _)| k.len() + v.len()).collect();
        sample.iter().sum::<usize>() / sample.len()
    };
    let partitions = s.partitions.unwrap_or(if s.mock.is_some() { (n * (bytes + 70)).div_ceil(4_500_000).max(4) as i32 } else { 8 });
    let topic = format!("bench-cdc-{}", chrono::Utc::now().timestamp_micros());
    create_topic(s.mock, s.brokers, &topic, partitions);
    let rate = produce_records(s.brokers, &topic, 0, n, None, |i| record(&plan, &schema, i, partitions));
    let [c, u, d] = plan.counts;
    let rows = plan.last.iter().filter(|l| l.is_some()).count();
    eprintln!(
        "  produced changes    {rate:>12.0} events/s  ({n}: {c} c, {u} u, {d} d over {keys} keys, {rows} rows at the end; ~{bytes} bytes \
         each; {partitions} partitions, topic {topic})"
    );
    let config = s.dir.join("cdc.toml");
    std::fs::write(&config, CONFIG).expect("write the cdc config");

    let mut e2e = |_| -> E2e {
        let db = temp_pg(s.admin);
        let mut conn = PgConnection::establish(&db.url).expect("connect to the bench database");
        diesel::sql_query(TABLE).execute(&mut conn).expect("create the replica");
        quiesce(s.admin);
        let run = end_to_end(s.bin, s.brokers, &topic, &db.url, n, false, Some(&config));
        verify(&mut conn, &plan);
        eprintln!("    cdc run: {:.0} events/s, {:.2} s CPU per 100k", run.per_s, run.cpu_per_100k_s);
        run
    };
    let (measured, raw, note) = match s.proj_raw {
        Some(raw) => {
            let mut m = alternate(s.runs, None, Some(&mut e2e as _));
            let spread =
                m.e2e.as_ref().map(|(_, spread)| Spread { median: spread.median / raw, low: spread.low / raw, high: spread.high / raw });
            m.ratio = spread;
            (m, raw, format!("; ÷ proj-pg's raw limit, {raw:.0} rows/s"))
        }
        None => {
            let batches = project::batches(n, keys, s.proj_partitions, tributary_actors::BatchLimits::default().max_messages);
            let mut raw = |_| project::raw_pg_limit(s.admin, &batches, n, keys);
            let m = alternate(s.runs, Some(&mut raw as _), Some(&mut e2e as _));
            let raw = m.raw.as_ref().map_or(f64::NAN, |r| r.median);
            (m, raw, "; run by run ÷ the projection's raw limit measured here".to_string())
        }
    };
    let labels = Labels { db: "CDC", raw: "raw PG upsert", e2e: "tributary → PG CDC", ratio: "CDC ÷ proj raw" };
    report(&measured, s.runs, n, labels, Some(note));
    Figures { events: n, keys, partitions, bytes, counts: plan.counts, raw, measured }
}

/// The phase's fields of the JSON line (null when it did not run).
pub fn summary(f: Option<&Figures>) -> Map<String, Value> {
    let e2e = f.and_then(|f| f.measured.e2e.as_ref()).map(|(e, _)| e);
    let ratio = f.and_then(|f| f.measured.ratio.as_ref());
    crate::fields(json!({
        "cdc_events": f.map(|f| f.events),
        "cdc_keys": f.map(|f| f.keys),
        "cdc_partitions": f.map(|f| f.partitions),
        "cdc_message_bytes": f.map(|f| f.bytes),
        "cdc_ops": f.map(|f| json!({"c": f.counts[0], "u": f.counts[1], "d": f.counts[2]})),
        "cdc_raw_per_s": f.map(|f| f.raw.round()),
        "cdc_e2e_per_s": e2e.map(|e| e.per_s.round()),
        "cdc_ratio": ratio.map(|r| rate3(r.median)),
        "cdc_ratio_low": ratio.map(|r| rate3(r.low)),
        "cdc_rss_steady_mib": e2e.map(|e| r1(e.rss_steady_mib)),
        "cdc_rss_peak_mib": e2e.map(|e| r1(e.rss_peak_mib)),
        "cdc_cpu_s_per_100k": e2e.map(|e| rate3(e.cpu_per_100k_s)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_seventy_twenty_ten_and_the_model_follows_it() {
        let p = plan(100_000, 10_000);
        let [c, u, d] = p.counts;
        assert_eq!(c + u + d, 100_000);
        for (got, want) in [(u, 0.70), (c, 0.20), (d, 0.10)] {
            assert!((got as f64 / 100_000.0 - want).abs() < 0.01, "{:?}", p.counts);
        }
        // Replaying the ops: creates only of absent keys, updates and deletes only of present ones.
        let mut live = vec![false; 10_000];
        for &(op, k) in &p.ops {
            assert_eq!(live[k as usize], op != Op::Create, "{op:?} of key {k}");
            live[k as usize] = op != Op::Delete;
        }
        assert_eq!(live, p.last.iter().map(Option::is_some).collect::<Vec<_>>());
        assert_eq!(p.ops, plan(100_000, 10_000).ops, "deterministic");
    }

    #[test]
    fn decimals_are_connects_bytes() {
        // Connect's own: 12.30 at scale 2 is 1230 = 0x04CE → "BM4="; -1 is 0xFF → "/w==".
        assert_eq!(decimal(1230), "BM4=");
        assert_eq!(decimal(-1), "/w==");
        assert_eq!(decimal(0), "AA==");
        assert_eq!(decimal(128), "AIA=");
        assert_eq!(decimal(-1_000_000_000), "xGU2AA==");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(timestamp(1_764_000_000_000_001), "2025-11-24 16:00:00.000001");
    }

    #[test]
    fn a_record_is_the_wrapper_with_its_schema() {
        let p = plan(10, 5);
        let schema = schema();
        let ((key, value, _), partition) = record(&p, &schema, 3, 4);
        let v: Value = serde_json::from_slice(&value).unwrap();
        let k: Value = serde_json::from_slice(&key).unwrap();
        let id = k["payload"]["id"].as_i64().unwrap();
        assert_eq!(partition as i64, id % 4);
        assert_eq!(v["payload"]["source"]["connector"], "postgresql");
        assert_eq!(v["schema"]["fields"][1]["fields"][2]["name"], "org.apache.kafka.connect.data.Decimal");
        assert!(["c", "u", "d"].contains(&v["payload"]["op"].as_str().unwrap()));
    }
}
