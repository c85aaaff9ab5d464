//! Shared test support: a fresh database per test, HTTP through a real client, the mock Kafka
//! cluster, a mixed message generator, exact accounting checks, and waiting for conditions (never
//! sleeping).

mod client;
pub mod exposition;
pub mod registry;

pub use client::{get_json, http, http_with, request};
pub use tributary_testdb::TestDb;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use serde_json::{json, Value};
use tributary::config::Settings;
use tributary::mock::MockKafka;

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

/// A fresh database of that kind. SQLite needs nothing; PostgreSQL needs
/// `TRIBUTARY_TEST_DATABASE_URL` and is skipped (`None`) without it, unless
/// `TRIBUTARY_TEST_REQUIRE_DB=1` (as in CI) turns the skip into a failure.
pub fn test_db_of(kind: Kind) -> Option<TestDb> {
    tributary_actors::configure_library();
    match kind {
        Kind::Sqlite => Some(TestDb::sqlite()),
        Kind::Postgres => test_db(),
    }
}

/// A fresh PostgreSQL database (see [`test_db_of`]).
pub fn test_db() -> Option<TestDb> {
    TestDb::postgres("tributary_test")
}

/// Run the same Diesel code on a connection to `url`, PostgreSQL or SQLite.
macro_rules! on_conn {
    ($url:expr, $c:ident => $body:expr) => {
        match $url.strip_prefix("sqlite://") {
            Some(path) => {
                // As the service does before SQLite's first use (settings are refused afterwards).
                tributary_actors::configure_library();
                let mut conn = SqliteConnection::establish(path).expect("open test database");
                // The service may be checkpointing the WAL as it closes: wait, do not fail.
                diesel::connection::SimpleConnection::batch_execute(&mut conn, "PRAGMA busy_timeout = 10000").expect("set busy_timeout");
                let $c = &mut conn;
                $body
            }
            None => {
                let mut conn = PgConnection::establish($url).expect("connect to test database");
                let $c = &mut conn;
                $body
            }
        }
    };
}

/// Generate `#[test]` wrappers running each `fn name(kind: Kind)` on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::common::Kind::Postgres) } )*
        }
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::common::Kind::Sqlite) } )*
        }
    };
}

pub fn unique() -> String {
    format!("{}_{:08x}", std::process::id(), rand::random::<u32>())
}

/// Settings for one instance against the mock cluster and a test database.
pub fn settings(kafka: &MockKafka, topic: &str, group: &str, db_url: &str) -> Settings {
    let overrides = BTreeMap::from([
        ("kafka.brokers".to_string(), json!(kafka.bootstrap_servers())),
        ("kafka.group_id".to_string(), json!(group)),
        ("kafka.topics".to_string(), json!([topic])),
        (
            "kafka.librdkafka".to_string(),
            json!({"session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "topic.metadata.refresh.interval.ms": "1000"}),
        ),
        ("database.url".to_string(), json!(db_url)),
        ("database.batch_size".to_string(), json!(500)),
        ("database.linger_ms".to_string(), json!(20)),
        ("http.bind".to_string(), json!("127.0.0.1:0")),
        ("shutdown.timeout_secs".to_string(), json!(20)),
    ]);
    Settings::load(None, &overrides).expect("test settings are valid")
}

/// The kinds of malformed message the generator mixes in, with the reason each must get.
pub const MALFORMED: [(&str, &[u8]); 13] = [
    ("invalid_json", b"{\"truncated\": "),
    ("invalid_utf8", b"\xff\xfe\xfd"),
    ("not_an_object", b"[1,2,3]"),
    ("nul_character", br#"{"name":"a\u0000b"}"#),
    ("missing_attribute", br#"{"specversion":"1.0","source":"/s","type":"t"}"#),
    ("invalid_timestamp", br#"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"noon"}"#),
    ("empty_payload", b""),
    ("unsupported_specversion", br#"{"specversion":"0.3","id":"x","source":"/s","type":"t"}"#),
    ("invalid_attribute", br#"{"specversion":"1.0","id":"x","source":"/s","type":42}"#),
    ("too_deep", br#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#),
    ("invalid_attribute", br#"{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"!!"}"#),
    ("not_an_object", b"42"),
    ("invalid_json", br#"{"specversion":"1.0","id":"x","source":"/s","type":"t","data":{"a":1,}}"#),
];

/// Headers on the plain JSON messages of [`produce_mixed`] with `i % 500 == 2` (plain: `i % 3 ==
/// 2`): `h0`.., valued `v{j}-{i}`.
pub const MANY_HEADERS: usize = 20;

/// Produce `n` messages round-robin over `partitions`: structured CloudEvents, binary
/// CloudEvents, plain JSON (some with [`MANY_HEADERS`] headers), and every 100th one malformed.
/// Returns the per-partition count and the expected dead letters by reason.
pub fn produce_mixed(
    kafka: &MockKafka,
    topic: &str,
    partitions: i32,
    start: usize,
    n: usize,
) -> (BTreeMap<i32, i64>, BTreeMap<String, i64>) {
    let mut per_partition = BTreeMap::new();
    let mut dead = BTreeMap::new();
    for i in start..start + n {
        let p = (i % partitions as usize) as i32;
        *per_partition.entry(p).or_insert(0) += 1;
        let key = format!("k{i}");
        if i % 100 == 99 {
            let (reason, payload) = MALFORMED[(i / 100) % MALFORMED.len()];
            *dead.entry(reason.to_string()).or_insert(0) += 1;
            let payload = if reason == "empty_payload" { None } else { Some(payload) };
            kafka.send(topic, Some(p), Some(key.as_bytes()), payload, &[]).unwrap();
            continue;
        }
        match i % 3 {
            0 => {
                let body = json!({"specversion":"1.0","id":format!("e{i}"),"source":"/orders","type":"order.created","time":"2026-01-02T03:04:05Z","datacontenttype":"application/json","data":{"n":i,"amount":i as f64 * 0.5}});
                kafka
                    .send(
                        topic,
                        Some(p),
                        Some(key.as_bytes()),
                        Some(body.to_string().as_bytes()),
                        &[("content-type", b"application/cloudevents+json")],
                    )
                    .unwrap();
            }
            1 => {
                let id = format!("b{i}");
                let body = json!({"n": i, "user": format!("u{}", i % 17)});
                kafka
                    .send(
                        topic,
                        Some(p),
                        Some(key.as_bytes()),
                        Some(body.to_string().as_bytes()),
                        &[
                            ("ce_specversion", b"1.0"),
                            ("ce_id", id.as_bytes()),
                            ("ce_source", b"/users"),
                            ("ce_type", b"user.seen"),
                            ("content-type", b"application/json"),
                        ],
                    )
                    .unwrap();
            }
            _ => {
                let body = json!({"n": i, "plain": true, "tags": ["a", "b"]});
                let many: Vec<(String, String)> =
                    if i % 500 == 2 { (0..MANY_HEADERS).map(|j| (format!("h{j}"), format!("v{j}-{i}"))).collect() } else { Vec::new() };
                let headers: Vec<(&str, &[u8])> = many.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
                kafka.send(topic, Some(p), Some(key.as_bytes()), Some(body.to_string().as_bytes()), &headers).unwrap();
            }
        }
    }
    kafka.flush().unwrap();
    (per_partition, dead)
}

/// Add per-key counts from `b` into `a`.
pub fn add<K: Ord>(a: &mut BTreeMap<K, i64>, b: BTreeMap<K, i64>) {
    for (k, v) in b {
        *a.entry(k).or_insert(0) += v;
    }
}

/// Wait for `cond` with a deadline; panics with `what` on timeout.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[derive(QueryableByName, Debug)]
struct PartitionCount {
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    distinct_offsets: i64,
    #[diesel(sql_type = BigInt)]
    min_offset: i64,
    #[diesel(sql_type = BigInt)]
    max_offset: i64,
}

#[derive(QueryableByName, Debug)]
struct Progress {
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    next_offset: i64,
}

#[derive(QueryableByName, Debug)]
struct ReasonCount {
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Committed progress per partition for the group (empty before the tables exist).
pub fn progress(url: &str, group: &str) -> BTreeMap<i32, i64> {
    on_conn!(url, c => diesel::sql_query("SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1")
        .bind::<Text, _>(group)
        .load::<Progress>(c)
        .map(|rows| rows.into_iter().map(|r| (r.partition, r.next_offset)).collect())
        .unwrap_or_default())
}

/// Sum of committed progress of every group (0 before the tables exist).
pub fn committed_all(url: &str) -> i64 {
    on_conn!(url, c => diesel::sql_query("SELECT partition, next_offset FROM consumer_offsets")
        .load::<Progress>(c)
        .map(|rows| rows.iter().map(|r| r.next_offset).sum())
        .unwrap_or_default())
}

/// Sum of committed progress for the group.
pub fn committed_total(url: &str, group: &str) -> i64 {
    progress(url, group).values().sum()
}

/// A single count from `sql` (which must name its column `n`).
pub fn count(url: &str, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    on_conn!(url, c => diesel::sql_query(sql).get_result::<N>(c).expect("count query").n)
}

/// Every offset below each partition's high watermark is in exactly one of `events` and
/// `dead_letters`; progress equals the watermarks; dead letters have the expected reasons.
pub fn assert_exactly_once(url: &str, topic: &str, group: &str, watermarks: &BTreeMap<i32, i64>, dead: &BTreeMap<String, i64>) {
    let counts: Vec<PartitionCount> = on_conn!(url, c => diesel::sql_query(
        "SELECT partition, count(*) AS total, count(DISTINCT \"offset\") AS distinct_offsets, \
                min(\"offset\") AS min_offset, max(\"offset\") AS max_offset \
         FROM (SELECT partition, \"offset\" FROM events WHERE topic = $1 \
               UNION ALL SELECT partition, \"offset\" FROM dead_letters WHERE topic = $1) t \
         GROUP BY partition ORDER BY partition",
    )
    .bind::<Text, _>(topic)
    .load(c)
    .unwrap());
    let got: BTreeMap<i32, (i64, i64, i64, i64)> =
        counts.iter().map(|r| (r.partition, (r.total, r.distinct_offsets, r.min_offset, r.max_offset))).collect();
    let want: BTreeMap<i32, (i64, i64, i64, i64)> = watermarks.iter().map(|(p, hw)| (*p, (*hw, *hw, 0, hw - 1))).collect();
    assert_eq!(got, want, "per partition (rows, distinct offsets, min, max): every offset exactly once");
    assert_eq!(&progress(url, group), watermarks, "consumer_offsets equal the high watermarks");
    let reasons: Vec<ReasonCount> = on_conn!(url, c =>
        diesel::sql_query("SELECT reason, count(*) AS n FROM dead_letters WHERE topic = $1 GROUP BY reason")
            .bind::<Text, _>(topic)
            .load(c)
            .unwrap());
    let reasons: BTreeMap<String, i64> = reasons.into_iter().map(|r| (r.reason, r.n)).collect();
    assert_eq!(&reasons, dead, "dead letters by reason");
}

/// Partitions an instance owns, from its `/status`.
pub fn owned_partitions(port: u16) -> usize {
    get_json(port, "/status").1["partitions"].as_array().map_or(0, Vec::len)
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones,
/// to simulate a database outage.
pub struct Proxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(target: &str) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, stop2, conns2, target) = (up.clone(), stop.clone(), conns.clone(), target.to_string());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if !up2.load(Ordering::SeqCst) {
                            drop(client); // refused: closed at once
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(&target) else { continue };
                        client.set_nonblocking(false).unwrap();
                        let mut c = conns2.lock().unwrap();
                        c.push(client.try_clone().unwrap());
                        c.push(server.try_clone().unwrap());
                        for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, up, stop, conns }
    }

    /// Cut every open connection (mid-transaction or not) and refuse new ones.
    pub fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by this proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap();
        let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{user}127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.down();
    }
}

/// The `host:port` of a PostgreSQL URL.
pub fn pg_host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    }
}

/// One test's world: its database, a mock cluster with its topic, its group, and the
/// accounting of everything produced so far.
pub struct Fixture {
    pub db: TestDb,
    pub kafka: MockKafka,
    pub topic: String,
    pub group: String,
    pub partitions: i32,
    pub watermarks: BTreeMap<i32, i64>,
    pub dead: BTreeMap<String, i64>,
    produced: usize,
}

impl Fixture {
    /// `None` when the backend is unavailable (PostgreSQL without its URL, locally).
    pub fn new(kind: Kind, name: &str, partitions: i32, brokers: u32) -> Option<Fixture> {
        let db = test_db_of(kind)?;
        let kafka = MockKafka::start(brokers).unwrap();
        let (topic, group) = (format!("{name}-{}", unique()), format!("g-{}", unique()));
        kafka.create_topic(&topic, partitions).unwrap();
        Some(Fixture { db, kafka, topic, group, partitions, watermarks: BTreeMap::new(), dead: BTreeMap::new(), produced: 0 })
    }

    /// Produce `n` more mixed messages (see [`produce_mixed`]) and account for them.
    pub fn produce(&mut self, n: usize) {
        let (w, d) = produce_mixed(&self.kafka, &self.topic, self.partitions, self.produced, n);
        add(&mut self.watermarks, w);
        add(&mut self.dead, d);
        self.produced += n;
    }

    /// Account for `n` records sent to partition `p` some other way than [`Fixture::produce`].
    pub fn sent(&mut self, p: i32, n: usize) {
        *self.watermarks.entry(p).or_insert(0) += n as i64;
        self.produced += n;
    }

    pub fn produced(&self) -> i64 {
        self.produced as i64
    }

    /// Produce one message to partition `p` that must end as a dead letter with `reason`
    /// (call `kafka.flush()` after a run of them). Header names are bytes: Kafka takes any.
    pub fn produce_dead(&mut self, p: i32, payload: &[u8], headers: &[(&[u8], &[u8])], reason: &str) {
        self.kafka.send_raw_names(&self.topic, Some(p), Some(b"poison".as_slice()), Some(payload), headers).unwrap();
        *self.watermarks.entry(p).or_insert(0) += 1;
        *self.dead.entry(reason.to_string()).or_insert(0) += 1;
        self.produced += 1;
    }

    pub fn settings(&self) -> Settings {
        settings(&self.kafka, &self.topic, &self.group, &self.db.url)
    }

    pub fn committed(&self) -> i64 {
        committed_total(&self.db.url, &self.group)
    }

    /// Wait until everything produced is committed, then check the exact accounting.
    pub fn assert_all_ingested_exactly_once(&self, timeout: Duration) {
        wait_until(&format!("all {} offsets committed", self.produced), timeout, || self.committed() == self.produced());
        assert_exactly_once(&self.db.url, &self.topic, &self.group, &self.watermarks, &self.dead);
    }
}

/// Run SQL statements on a test database.
pub fn sql(url: &str, statements: &str) {
    on_conn!(url, c => diesel::connection::SimpleConnection::batch_execute(c, statements).expect("run SQL"));
}

#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = diesel::sql_types::Text)]
    a: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    b: String,
}

/// The rows of a query selecting two text columns named `a` and `b`.
pub fn query_pairs(url: &str, query: &str) -> Vec<(String, String)> {
    let rows: Vec<Pair> = on_conn!(url, c => diesel::sql_query(query).load::<Pair>(c).expect("query"));
    rows.into_iter().map(|p| (p.a, p.b)).collect()
}

/// Log lines kept in memory as JSON, for tests that check what an operator would read.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// A JSON logger at `level` writing here; keep the guard until the lines are read.
    pub fn logger(&self, level: &str) -> (slog::Logger, slog_async::AsyncGuard) {
        let settings = tributary::config::LogSettings { format: tributary::config::LogFormat::Json, level: level.into() };
        tributary::telemetry::logger_to(&settings, Some(Box::new(self.clone())))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The parsed lines whose `msg` starts with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(prefix)))
            .collect()
    }
}
