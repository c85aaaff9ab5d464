//! The projection phases (`proj-pg`, `proj-sqlite`): sensor readings of `--proj-keys` devices,
//! `--proj-events` of them on a topic of their own (a device's readings in one partition), kept
//! as one row per device by an upsert projection with `newer_wins` — against the raw limit of
//! the same upserts: on PostgreSQL the faster of binary `COPY` into a staging table with one set
//! `INSERT … ON CONFLICT` per batch and one such upsert over `unnest` of binary arrays, a
//! prepared single-row upsert on SQLite. Every run's table is checked
//! against the expected last reading of each device.

use std::path::{Path, PathBuf};
use std::time::Instant;

use diesel::pg::CopyFormat;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sqlite::Sqlite;
use serde_json::{json, Map, Value};
use tributary::mock::MockKafka;
use tributary_actors::raw;
use tributary_actors::BatchLimits;

use crate::service::end_to_end;
use crate::{alternate, create_topic, open, produce_records, quiesce, r1, rate3, report, temp_pg, Labels, Measured};

/// The projection as an operator writes it: no `events` archive, only the table.
const CONFIG: &str = r#"
[events]
enabled = false

[[projection]]
name = "readings"
table = "readings"
mode = "upsert"
key = ["device_id"]
newer_wins = "seq"

[projection.columns]
device_id = { from = "key:/device", type = "bigint" }
seq = { from = "/seq", type = "bigint" }
temperature = { from = "/temperature", type = "double precision" }
site = "/site"
updated_at = { from = "kafka.timestamp", type = "timestamptz" }
"#;

const PG_TABLE: &str =
    "CREATE TABLE readings (device_id bigint PRIMARY KEY, seq bigint, temperature double precision, site text, updated_at timestamptz)";
const SQLITE_TABLE: &str =
    "CREATE TABLE readings (device_id INTEGER PRIMARY KEY, seq INTEGER, temperature REAL, site TEXT, updated_at TEXT)";

/// PostgreSQL's staging table, emptied at every commit (created once per connection).
const PG_STAGING: &str = "CREATE TEMP TABLE readings_in (device_id bigint, seq bigint, temperature double precision, site text, \
    updated_at timestamptz) ON COMMIT DELETE ROWS";

/// A batch's staged rows into the table: the newest reading of each device, and only over an
/// older one.
const PG_UPSERT: &str = "INSERT INTO readings AS t (device_id, seq, temperature, site, updated_at) \
    SELECT DISTINCT ON (device_id) device_id, seq, temperature, site, updated_at FROM readings_in ORDER BY device_id, seq DESC \
    ON CONFLICT (device_id) DO UPDATE SET seq = EXCLUDED.seq, temperature = EXCLUDED.temperature, site = EXCLUDED.site, \
    updated_at = EXCLUDED.updated_at WHERE t.seq IS NULL OR EXCLUDED.seq > t.seq";

/// SQLite's upsert of one reading, around its five bound values.
const SQLITE_UPSERT: [&str; 2] = [
    "INSERT INTO readings (device_id, seq, temperature, site, updated_at) VALUES (",
    ") ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq, temperature = excluded.temperature, site = excluded.site, \
     updated_at = excluded.updated_at WHERE excluded.seq > readings.seq",
];

diesel::table! {
    /// The projection's table (only the columns both backends type alike are read).
    readings (device_id) {
        device_id -> BigInt,
        seq -> Nullable<BigInt>,
        temperature -> Nullable<Double>,
        site -> Nullable<Text>,
    }
}

diesel::table! {
    /// The staging table `COPY` writes into.
    readings_in (device_id) {
        device_id -> BigInt,
        seq -> BigInt,
        temperature -> Double,
        site -> Text,
        updated_at -> Timestamptz,
    }
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Event `i`'s reading (its device is `i % keys`).
struct Reading {
    device: i64,
    seq: i64,
    temperature: f64,
    site: String,
}

fn reading(i: usize, keys: usize) -> Reading {
    Reading { device: (i % keys) as i64, seq: i as i64, temperature: 20.0 + (i % 150) as f64 / 10.0, site: format!("plant-{}", i % 12) }
}

/// Event `i` as produced: a JSON key naming the device, a plain JSON value; its partition is the
/// device's, so a device's readings keep their order.
fn record(i: usize, keys: usize, partitions: i32) -> (crate::Event, i32) {
    let r = reading(i, keys);
    let key = format!("{{\"device\":{}}}", r.device).into_bytes();
    let value = json!({"device": r.device, "seq": r.seq, "temperature": r.temperature, "site": r.site, "status": "nominal"});
    ((key, value.to_string().into_bytes(), Vec::new()), partition(r.device, partitions))
}

fn partition(device: i64, partitions: i32) -> i32 {
    (device % i64::from(partitions)) as i32
}

/// The events' indexes per partition in offset order, in batches of `batch`.
pub(crate) fn batches(n: usize, keys: usize, partitions: i32, batch: usize) -> Vec<Vec<usize>> {
    let mut per_partition = vec![Vec::new(); partitions as usize];
    for i in 0..n {
        per_partition[partition((i % keys) as i64, partitions) as usize].push(i);
    }
    per_partition.iter().flat_map(|p| p.chunks(batch).map(<[usize]>::to_vec)).collect()
}

/// The table as read back, ordered by device.
type Rows = Vec<(i64, Option<i64>, Option<f64>, Option<String>)>;

fn read_back<C>(conn: &mut C) -> Rows
where
    C: Connection,
    for<'a> diesel::dsl::Order<
        diesel::dsl::Select<readings::table, (readings::device_id, readings::seq, readings::temperature, readings::site)>,
        readings::device_id,
    >: diesel::query_dsl::LoadQuery<'a, C, (i64, Option<i64>, Option<f64>, Option<String>)>,
{
    use readings::dsl as r;
    r::readings.select((r::device_id, r::seq, r::temperature, r::site)).order(r::device_id).load(conn).expect("read the readings table")
}

/// Every device seen has exactly one row, holding its last reading (the largest `i` with
/// `i % keys == device`); a wrong table fails the benchmark.
fn verify(what: &str, rows: &Rows, n: usize, keys: usize) {
    let devices = n.min(keys);
    assert_eq!(rows.len(), devices, "{what}: the readings table has {} rows, want one per device ({devices})", rows.len());
    for (d, (device, seq, temperature, site)) in rows.iter().enumerate() {
        assert_eq!(*device, d as i64, "{what}: row {d} is device {device}, want device {d} (a device is missing)");
        let want = reading(d + keys * ((n - 1 - d) / keys), keys);
        assert_eq!(*seq, Some(want.seq), "{what}: device {d} holds seq {seq:?}, want its last, {}", want.seq);
        assert!(
            temperature.is_some_and(|t| (t - want.temperature).abs() < 1e-9) && site.as_deref() == Some(want.site.as_str()),
            "{what}: device {d} holds ({temperature:?}, {site:?}), want seq {}'s ({}, {})",
            want.seq,
            want.temperature,
            want.site
        );
    }
}

/// One batch as one complete binary `COPY` stream of `readings_in`.
fn encode(batch: &[usize], keys: usize, at_micros: i64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(19 + batch.len() * 64);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
    let field = |buf: &mut Vec<u8>, bytes: &[u8]| {
        buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    for &i in batch {
        let r = reading(i, keys);
        buf.extend_from_slice(&5i16.to_be_bytes());
        field(&mut buf, &r.device.to_be_bytes());
        field(&mut buf, &r.seq.to_be_bytes());
        field(&mut buf, &r.temperature.to_bits().to_be_bytes());
        field(&mut buf, r.site.as_bytes());
        field(&mut buf, &(at_micros - PG_EPOCH_OFFSET_MICROS).to_be_bytes());
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    buf
}

/// One hand-written PostgreSQL write of the readings, timed: `setup` statements on a fresh
/// connection, `prepared` batches built before the clock starts, each written by `write` in a
/// transaction of its own, and the table checked afterwards.
fn timed_pg<T>(
    url: &str,
    n: usize,
    keys: usize,
    what: &str,
    setup: &[&str],
    prepared: Vec<T>,
    write: impl Fn(&mut diesel::PgConnection, &T) -> QueryResult<usize>,
) -> f64 {
    drop(open(url)); // the service's tables, migrated
    let mut conn = raw::postgres_connection(url);
    for sql in setup {
        diesel::sql_query(*sql).execute(&mut conn).expect(sql);
    }
    let started = Instant::now();
    for batch in &prepared {
        conn.transaction(|c| write(c, batch)).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    verify(what, &read_back(&mut conn), n, keys);
    rate
}

/// The raw PostgreSQL limit: per batch, one transaction of `COPY` into the staging table and
/// one set upsert from it, on one connection, from buffers encoded before the clock starts.
fn raw_pg(url: &str, batches: &[Vec<usize>], n: usize, keys: usize) -> f64 {
    let at = chrono::Utc::now().timestamp_micros();
    let buffers: Vec<Vec<u8>> = batches.iter().map(|b| encode(b, keys, at)).collect();
    use readings_in::dsl as s;
    timed_pg(url, n, keys, "raw PostgreSQL upsert", &[PG_TABLE, PG_STAGING], buffers, |c, buf| {
        diesel::copy_from(readings_in::table)
            .from_raw_data((s::device_id, s::seq, s::temperature, s::site, s::updated_at), |w| {
                w.write_all(buf).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
            })
            .with_format(CopyFormat::Binary)
            .execute(c)?;
        diesel::sql_query(PG_UPSERT).execute(c)
    })
}

/// The same upsert with the rows as binary arrays (`unnest`), the service's way: one statement per
/// batch, no staging table.
const PG_UNNEST_UPSERT: &str = "INSERT INTO readings AS t (device_id, seq, temperature, site, updated_at) \
    SELECT DISTINCT ON (d) d, s, v, w, u FROM unnest($1::int8[], $2::int8[], $3::float8[], $4::text[], $5::timestamptz[]) AS r(d, s, v, w, u) \
    ORDER BY d, s DESC \
    ON CONFLICT (device_id) DO UPDATE SET seq = EXCLUDED.seq, temperature = EXCLUDED.temperature, site = EXCLUDED.site, \
    updated_at = EXCLUDED.updated_at WHERE t.seq IS NULL OR EXCLUDED.seq > t.seq";

/// A batch's columns, built before the clock starts.
type Columns = (Vec<i64>, Vec<i64>, Vec<f64>, Vec<String>, Vec<chrono::DateTime<chrono::Utc>>);

/// The other hand-written PostgreSQL write of the same rows: per batch, one transaction of one
/// upsert over `unnest` of binary arrays, on one connection. The raw limit is the faster of the
/// two, so the service's choice of `unnest` is measured against `COPY` in every run.
fn raw_pg_unnest(url: &str, batches: &[Vec<usize>], n: usize, keys: usize) -> f64 {
    use diesel::sql_types::{Array, BigInt, Double, Text, Timestamptz};
    let at = chrono::Utc::now();
    let columns: Vec<Columns> = batches
        .iter()
        .map(|b| {
            let rs: Vec<Reading> = b.iter().map(|&i| reading(i, keys)).collect();
            (
                rs.iter().map(|r| r.device).collect(),
                rs.iter().map(|r| r.seq).collect(),
                rs.iter().map(|r| r.temperature).collect(),
                rs.into_iter().map(|r| r.site).collect(),
                vec![at; b.len()],
            )
        })
        .collect();
    timed_pg(url, n, keys, "raw PostgreSQL unnest upsert", &[PG_TABLE], columns, |c, (d, s, v, w, u)| {
        diesel::sql_query(PG_UNNEST_UPSERT)
            .bind::<Array<BigInt>, _>(d)
            .bind::<Array<BigInt>, _>(s)
            .bind::<Array<Double>, _>(v)
            .bind::<Array<Text>, _>(w)
            .bind::<Array<Timestamptz>, _>(u)
            .execute(c)
    })
}

/// One reading as one upsert whose SQL never changes: its query id is static, so Diesel
/// prepares it once per connection and afterwards only binds and steps it. (Diesel's own
/// `on_conflict().do_update()` marks itself unsafe to cache, so it would be prepared anew for
/// every row, as would `sql_query`.)
struct Upsert<'a> {
    r: &'a Reading,
    at: &'a str,
}

impl QueryId for Upsert<'_> {
    type QueryId = Upsert<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for Upsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Double, Text};
        out.push_sql(SQLITE_UPSERT[0]);
        out.push_bind_param::<BigInt, _>(&self.r.device)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.r.seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Double, _>(&self.r.temperature)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.r.site)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.at)?;
        out.push_sql(SQLITE_UPSERT[1]);
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for Upsert<'_> {}

/// The raw SQLite limit: a prepared upsert per reading, one immediate transaction per batch,
/// the readings built before the clock starts.
fn raw_sqlite(url: &str, batches: &[Vec<usize>], n: usize, keys: usize) -> f64 {
    drop(open(url)); // the service's tables, migrated
    let mut conn = raw::sqlite_connection(url);
    diesel::sql_query(SQLITE_TABLE).execute(&mut conn).expect("create readings");
    // The text the service writes a timestamptz as (fixed digits, so it compares as text).
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let prepared: Vec<Vec<Reading>> = batches.iter().map(|b| b.iter().map(|&i| reading(i, keys)).collect()).collect();
    let started = Instant::now();
    for batch in &prepared {
        conn.immediate_transaction::<_, diesel::result::Error, _>(|c| {
            for r in batch {
                Upsert { r, at: &at }.execute(c)?;
            }
            Ok(())
        })
        .expect("raw upsert");
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    verify("raw SQLite upsert", &read_back(&mut conn), n, keys);
    rate
}

/// The raw PostgreSQL limit of one run: the faster of `COPY` + staging and `unnest`, each into a
/// fresh database on the server `admin` connects to (the `cdc` phase measures it too when
/// `proj-pg` did not run).
pub(crate) fn raw_pg_limit(admin: &str, batches: &[Vec<usize>], n: usize, keys: usize) -> f64 {
    let copy = {
        let db = temp_pg(admin);
        quiesce(admin);
        raw_pg(&db.url, batches, n, keys)
    };
    let db = temp_pg(admin);
    quiesce(admin);
    let unnest = raw_pg_unnest(&db.url, batches, n, keys);
    eprintln!("    raw PG upsert: COPY + staging {copy:.0} rows/s, unnest arrays {unnest:.0} rows/s");
    copy.max(unnest)
}

/// What the projection phases need from the run.
pub struct Setup<'a> {
    pub bin: &'a PathBuf,
    pub mock: Option<&'a MockKafka>,
    pub brokers: &'a str,
    /// `--database-url`: where each PostgreSQL run gets a database of its own.
    pub admin: &'a str,
    pub partitions: i32,
    pub runs: usize,
    pub events: usize,
    pub keys: usize,
    pub dir: &'a Path,
    pub pg: bool,
    pub sqlite: bool,
}

pub struct Figures {
    events: usize,
    keys: usize,
    pg: Option<Measured>,
    sqlite: Option<Measured>,
}

impl Figures {
    /// The PostgreSQL raw limit's median (rows/s), when `proj-pg` ran.
    pub fn pg_raw(&self) -> Option<f64> {
        self.pg.as_ref()?.raw.as_ref().map(|r| r.median)
    }
}

/// Produce the readings, then measure each selected backend, raw and end to end alternating.
pub fn run(s: &Setup<'_>) -> Option<Figures> {
    if !s.pg && !s.sqlite {
        return None;
    }
    let (n, keys, partitions) = (s.events, s.keys, s.partitions);
    assert!(n > 0 && keys > 0, "--proj-events and --proj-keys must be positive");
    let topic = format!("bench-proj-{}", chrono::Utc::now().timestamp_micros());
    create_topic(s.mock, s.brokers, &topic, partitions);
    let rate = produce_records(s.brokers, &topic, 0, n, None, |i| record(i, keys, partitions));
    eprintln!("  produced readings   {rate:>12.0} events/s  ({n} over {keys} devices, {partitions} partitions, topic {topic})");
    let config = s.dir.join("readings.toml");
    std::fs::write(&config, CONFIG).expect("write the projection config");
    let batches = batches(n, keys, partitions, BatchLimits::default().max_messages);
    let note = Some(format!("; {keys} devices"));

    let pg = s.pg.then(|| {
        let mut raw = |_| raw_pg_limit(s.admin, &batches, n, keys);
        let mut e2e = |_| {
            let db = temp_pg(s.admin);
            let mut c = diesel::PgConnection::establish(&db.url).expect("connect to the bench database");
            diesel::sql_query(PG_TABLE).execute(&mut c).expect("create readings");
            quiesce(s.admin);
            let run = end_to_end(s.bin, s.brokers, &topic, &db.url, n, false, Some(&config));
            verify("tributary → PostgreSQL", &read_back(&mut c), n, keys);
            run
        };
        let m = alternate(s.runs, Some(&mut raw as _), Some(&mut e2e as _));
        let labels = Labels { db: "PG projection", raw: "raw PG upsert", e2e: "tributary → PG proj", ratio: "PG proj ÷ raw" };
        report(&m, s.runs, n, labels, note.clone());
        m
    });

    let sqlite = s.sqlite.then(|| {
        let remove = |path: &Path| {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        };
        let mut raw = |k| {
            let path = s.dir.join(format!("proj-raw-{k}.db"));
            let rate = raw_sqlite(&format!("sqlite://{}", path.display()), &batches, n, keys);
            remove(&path);
            rate
        };
        let mut e2e = |k| {
            let path = s.dir.join(format!("proj-e2e-{k}.db"));
            let connect = || diesel::SqliteConnection::establish(&path.display().to_string()).expect("open the SQLite file");
            diesel::sql_query(SQLITE_TABLE).execute(&mut connect()).expect("create readings");
            let run = end_to_end(s.bin, s.brokers, &topic, &format!("sqlite://{}", path.display()), n, false, Some(&config));
            verify("tributary → SQLite", &read_back(&mut connect()), n, keys);
            remove(&path);
            run
        };
        let m = alternate(s.runs, Some(&mut raw as _), Some(&mut e2e as _));
        let labels =
            Labels { db: "SQLite projection", raw: "raw SQLite upsert", e2e: "tributary → SQLite proj", ratio: "SQLite proj ÷ raw" };
        report(&m, s.runs, n, labels, note.clone());
        m
    });
    Some(Figures { events: n, keys, pg, sqlite })
}

/// The summary's projection fields (null for a skipped phase).
pub fn summary(f: Option<&Figures>) -> Map<String, Value> {
    let figures = |m: Option<&Measured>| {
        let e2e = m.and_then(|m| m.e2e.as_ref()).map(|(e, _)| e);
        (
            m.and_then(|m| m.raw.as_ref()).map(|r| r.median.round()),
            e2e.map(|e| e.per_s.round()),
            m.and_then(|m| m.ratio.as_ref()).map(|r| (rate3(r.median), rate3(r.low))),
            e2e.map(|e| (r1(e.rss_steady_mib), r1(e.rss_peak_mib), rate3(e.cpu_per_100k_s))),
        )
    };
    let (pg_raw, pg_e2e, pg_ratio, pg_rss) = figures(f.and_then(|f| f.pg.as_ref()));
    let (sq_raw, sq_e2e, sq_ratio, sq_rss) = figures(f.and_then(|f| f.sqlite.as_ref()));
    crate::fields(json!({
        "proj_events": f.map(|f| f.events),
        "proj_keys": f.map(|f| f.keys),
        "pg_proj_raw_per_s": pg_raw,
        "pg_proj_e2e_per_s": pg_e2e,
        "pg_proj_ratio": pg_ratio.map(|r| r.0),
        "pg_proj_ratio_low": pg_ratio.map(|r| r.1),
        "pg_proj_rss_steady_mib": pg_rss.map(|r| r.0),
        "pg_proj_rss_peak_mib": pg_rss.map(|r| r.1),
        "pg_proj_cpu_s_per_100k": pg_rss.map(|r| r.2),
        "sqlite_proj_raw_per_s": sq_raw,
        "sqlite_proj_e2e_per_s": sq_e2e,
        "sqlite_proj_ratio": sq_ratio.map(|r| r.0),
        "sqlite_proj_ratio_low": sq_ratio.map(|r| r.1),
        "sqlite_proj_rss_steady_mib": sq_rss.map(|r| r.0),
    }))
}
