//! The real binary as a subprocess: `kill -9` mid-stream loses and duplicates nothing (once, and
//! in a loop of random kills during a live 200k-message ingest), and SIGTERM — also under full
//! load — drains, commits, leaves the group and exits 0 within the deadline.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use tributary::mock::MockKafka;

const PARTITIONS: i32 = 4;

/// The binary, `run --config`, its log appended to `log`.
pub(crate) fn start(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--config"])
        .arg(config)
        .env_remove("TRIBUTARY_TEST_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tributary")
}

on_both_backends!(
    kill_dash_nine_mid_stream_then_sigterm_loses_and_duplicates_nothing,
    kill_dash_nine_ten_times_at_random_moments_of_a_live_200k_ingest_loses_and_duplicates_nothing,
    sigterm_under_full_load_drains_commits_and_exits_zero_within_the_deadline,
);

fn kill_dash_nine_mid_stream_then_sigterm_loses_and_duplicates_nothing(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = std::sync::Arc::new(MockKafka::start(1).unwrap());
    let (topic, group) = (format!("crash-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = Endpoints { brokers: kafka.bootstrap_servers(), group: &group, topic: &topic, url: &db.url };
    let config = write_config(
        dir.path(),
        &endpoints,
        "\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"",
        "batch_size = 100\nlinger_ms = 10",
        "",
    );
    let log = dir.path().join("tributary.log");

    // A steady stream keeps arriving while the service is killed and restarted, so every kill
    // lands mid-stream.
    const TOTAL: usize = 60_000;
    let producer = {
        let kafka = kafka.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            let (mut watermarks, mut dead) = (BTreeMap::new(), BTreeMap::new());
            for chunk in 0..TOTAL / 1000 {
                let (w, d) = produce_mixed(&kafka, &topic, PARTITIONS, chunk * 1000, 1000);
                add(&mut watermarks, w);
                add(&mut dead, d);
                std::thread::sleep(Duration::from_millis(40));
            }
            (watermarks, dead)
        })
    };
    for round in 0..2 {
        let mut child = start(&config, &log);
        let floor = committed_total(&db.url, &group);
        wait_until("progress before the kill", Duration::from_secs(60), || committed_total(&db.url, &group) > floor + 500);
        child.kill().unwrap(); // SIGKILL: no drain, no goodbye
        child.wait().unwrap();
        let at_kill = committed_total(&db.url, &group);
        assert!(at_kill < TOTAL as i64, "round {round}: killed mid-stream ({at_kill} of {TOTAL})");
    }
    let (watermarks, dead) = producer.join().unwrap();
    let produced = TOTAL;

    let mut child = start(&config, &log);
    wait_until("everything committed after the kills", Duration::from_secs(120), || committed_total(&db.url, &group) == produced as i64);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exit = None;
    wait_until("exit after SIGTERM", Duration::from_secs(30), || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.unwrap().success(), "SIGTERM exits 0; log:\n{log_text}");
    assert!(log_text.contains("left the consumer group"), "drained and left the group; log:\n{log_text}");
    assert!(!log_text.contains(&db.url), "the database URL never reaches the log");
}

/// What a producer made: messages per partition, and expected dead letters by reason.
type Produced = (BTreeMap<i32, i64>, BTreeMap<String, i64>);

/// A live producer (see [`World::producer`]). Dropped without [`Producer::finish`] (a failed
/// assertion), it stops once the promised total is out instead of producing on beside the next
/// tests.
struct Producer {
    handle: Option<std::thread::JoinHandle<Produced>>,
    stop: std::sync::Arc<AtomicBool>,
    produced: std::sync::Arc<AtomicUsize>,
}

impl Producer {
    /// Messages produced so far.
    fn produced(&self) -> usize {
        self.produced.load(Ordering::SeqCst)
    }

    /// Stop once at least the promised total is out; the accounting and the count produced.
    fn finish(mut self) -> (BTreeMap<i32, i64>, BTreeMap<String, i64>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let (watermarks, dead) = self.handle.take().expect("a producer is finished once").join().expect("producer");
        (watermarks, dead, self.produced())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Where a test's service reads and writes.
pub(crate) struct Endpoints<'a> {
    pub(crate) brokers: &'a str,
    pub(crate) group: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) url: &'a str,
}

/// Write the service's configuration into `dir`: `librdkafka` and `database` are lines for
/// those sections, `extra` further sections.
pub(crate) fn write_config(dir: &std::path::Path, at: &Endpoints<'_>, librdkafka: &str, database: &str, extra: &str) -> std::path::PathBuf {
    let config = dir.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
topics = ["{topic}"]
[kafka.librdkafka]
{librdkafka}
[database]
url = "{url}"
{database}
[http]
bind = "127.0.0.1:0"
[log]
format = "json"
level = "info"
{extra}
"#,
            brokers = at.brokers,
            group = at.group,
            topic = at.topic,
            url = at.url,
        ),
    )
    .unwrap();
    config
}

/// SIGTERM while the service waits for its database at start: it stops at once and exits 0
/// (not killed by the signal, not waiting out the connection attempt).
#[test]
fn sigterm_while_waiting_for_the_database_at_start_exits_zero_at_once() {
    // A "database" that accepts connections and never answers: the start blocks in the first
    // connection's handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (u, url) = (unique(), format!("postgres://tributary@127.0.0.1:{port}/tributary?connect_timeout=60"));
    let endpoints = Endpoints { brokers: "127.0.0.1:1", group: &format!("g-{u}"), topic: &format!("t-{u}"), url: &url };
    let config = write_config(dir.path(), &endpoints, "", "", "");
    let log = dir.path().join("tributary.log");
    let mut child = start(&config, &log);
    // Accepted: the service is connecting, past its start-up, with its signal handlers in place.
    let (_held, _) = silent.accept().unwrap();
    sigterm(&child);
    let (exit, took) = wait_exit(&mut child, Duration::from_secs(30));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.success(), "exit 0 after SIGTERM during the start, got {exit:?}; log:\n{log_text}");
    assert!(took < Duration::from_secs(5), "stopped at once, not after the connection attempt: {took:?}");
    assert!(log_text.contains("stopped while starting"), "log:\n{log_text}");
}

/// One subprocess test's world: the mock cluster and its topic, the group, the database.
#[derive(Clone)]
struct World {
    kafka: std::sync::Arc<MockKafka>,
    topic: String,
    group: String,
    url: String,
    partitions: i32,
}

impl World {
    fn new(name: &str, db: &TestDb, partitions: i32) -> World {
        let kafka = std::sync::Arc::new(MockKafka::start(1).unwrap());
        let (topic, group) = (format!("{name}-{}", unique()), format!("g-{}", unique()));
        kafka.create_topic(&topic, partitions).unwrap();
        World { kafka, topic, group, url: db.url.clone(), partitions }
    }

    fn committed(&self) -> i64 {
        committed_total(&self.url, &self.group)
    }

    /// Write the service's configuration into `dir`: `librdkafka` and `database` are lines for
    /// those sections, `extra` further sections.
    fn config(&self, dir: &std::path::Path, librdkafka: &str, database: &str, extra: &str) -> std::path::PathBuf {
        let endpoints = Endpoints { brokers: self.kafka.bootstrap_servers(), group: &self.group, topic: &self.topic, url: &self.url };
        write_config(dir, &endpoints, librdkafka, database, extra)
    }

    /// A producer thread: mixed messages from `start` in chunks of 1000, at least `total` of
    /// them and on until [`Producer::finish`], never more than `max_lead` ahead of the committed
    /// progress (the mock cluster keeps only ~5 MB per partition; a consumer further behind would
    /// find its data deleted).
    fn producer(&self, start: usize, total: usize, max_lead: i64) -> Producer {
        let w = self.clone();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let produced = std::sync::Arc::new(AtomicUsize::new(0));
        let (stop_flag, count) = (stop.clone(), produced.clone());
        let handle = std::thread::spawn(move || {
            let (mut watermarks, mut dead) = (BTreeMap::new(), BTreeMap::new());
            let (mut first, mut held_since) = (start, None::<std::time::Instant>);
            while first < start + total || !stop_flag.load(Ordering::SeqCst) {
                if first as i64 - w.committed() > max_lead {
                    // Wait for the service, re-checking the stop flag (past `total`, stopping
                    // ends the wait).
                    let since = *held_since.get_or_insert_with(std::time::Instant::now);
                    assert!(
                        since.elapsed() < Duration::from_secs(300),
                        "the committed progress stayed {max_lead} behind message {first} for 300 s"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                held_since = None;
                let n = if first < start + total { 1000.min(start + total - first) } else { 1000 };
                let (m, d) = produce_mixed(&w.kafka, &w.topic, w.partitions, first, n);
                add(&mut watermarks, m);
                add(&mut dead, d);
                first += n;
                count.store(first - start, Ordering::SeqCst);
            }
            (watermarks, dead)
        });
        Producer { handle: Some(handle), stop, produced }
    }

    /// The offsets Kafka holds as committed for the group (what lag tools see), by partition.
    fn kafka_committed(&self) -> BTreeMap<i32, i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        // Not subscribed: it only asks the group coordinator, it never joins the group.
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.kafka.bootstrap_servers())
            .set("group.id", &self.group)
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(n) => Some((e.partition(), n)),
                _ => None,
            })
            .collect()
    }
}

/// How many instances have logged their start into `log` (all instances of a test append to it).
pub(crate) fn started_count(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches("kafka reader started").count()
}

/// The last `n` lines of `text` (a crash loop's log holds every instance's).
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -TERM");
}

/// Wait (bounded) for the child to exit; returns the exit status and how long it took.
pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) -> (std::process::ExitStatus, Duration) {
    let started = std::time::Instant::now();
    let mut exit = None;
    wait_until("the process exits", timeout, || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    (exit.unwrap(), started.elapsed())
}

/// For every partition with progress: the rows in `events` ∪ `dead_letters` are exactly the
/// offsets below `next_offset`, each once — the progress and the data never disagree.
fn assert_progress_matches_rows(url: &str, topic: &str, group: &str) {
    let committed = committed_total(url, group);
    let all = format!(
        "SELECT partition, \"offset\" FROM events WHERE topic = '{topic}' \
         UNION ALL SELECT partition, \"offset\" FROM dead_letters WHERE topic = '{topic}'"
    );
    let rows = count(url, &format!("SELECT count(*) AS n FROM ({all}) t"));
    let distinct = count(url, &format!("SELECT count(*) AS n FROM (SELECT DISTINCT partition, \"offset\" FROM ({all}) t) d"));
    let beyond = count(
        url,
        &format!(
            "SELECT count(*) AS n FROM ({all}) t \
             LEFT JOIN consumer_offsets c ON c.group_id = '{group}' AND c.topic = '{topic}' AND c.partition = t.partition \
             WHERE c.next_offset IS NULL OR t.\"offset\" >= c.next_offset"
        ),
    );
    assert_eq!(
        (rows, distinct, beyond),
        (committed, committed, 0),
        "(rows, distinct offsets, rows beyond progress) = (progress, progress, 0)"
    );
}

/// The crash loop: 200,000 messages or more produced live (≈1% malformed) while the real binary is
/// `kill -9`ed at random moments — during start-up, while joining, in the middle of ingestion — and
/// restarted, until ten kills have hit it while it was committing; then it finishes and every
/// offset is in the database exactly once.
fn kill_dash_nine_ten_times_at_random_moments_of_a_live_200k_ingest_loses_and_duplicates_nothing(kind: Kind) {
    use rand::Rng;
    const TOTAL: usize = 200_000;
    const PARTITIONS: i32 = 6;
    const MID_INGEST_KILLS: usize = 10;
    const MAX_KILLS: usize = 30;
    let Some(db) = test_db_of(kind) else { return };
    let started = std::time::Instant::now();
    let w = World::new("crashloop", &db, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    // A killed member stays in the group until its session times out; the next start waits for
    // that, so keep it short.
    let config = w.config(
        dir.path(),
        r#""session.timeout.ms" = "2000"
"heartbeat.interval.ms" = "200"
"topic.metadata.refresh.interval.ms" = "1000""#,
        "batch_size = 500\nlinger_ms = 20",
        "",
    );
    let log = dir.path().join("tributary.log");
    let producer = w.producer(0, TOTAL, 20_000);

    let mut rng = rand::rng();
    let (mut kills, mut mid_ingest, mut moments) = (0, 0, Vec::new());
    // Kill until ten kills have landed while the instance was committing (others land during
    // start-up or the group join, which is worth doing too).
    while mid_ingest < MID_INGEST_KILLS {
        assert!(kills < MAX_KILLS, "{kills} kills, only {mid_ingest} of them mid-ingest: {}", moments.join("; "));
        let mut child = start(&config, &log);
        let floor = w.committed();
        // A random moment: a plain delay (often before the group is joined), after committed
        // progress moved by a random amount, or a random delay after progress began.
        let moment = match rng.random_range(0..3) {
            0 => {
                let ms = rng.random_range(0..2000);
                std::thread::sleep(Duration::from_millis(ms));
                format!("{ms} ms after start")
            }
            1 => {
                let by = rng.random_range(1..6000);
                wait_until("committed progress moves", Duration::from_secs(60), || w.committed() >= floor + by);
                format!("after {by} more committed")
            }
            _ => {
                wait_until("committed progress moves", Duration::from_secs(60), || w.committed() > floor);
                let ms = rng.random_range(0..500);
                std::thread::sleep(Duration::from_millis(ms));
                format!("{ms} ms into ingestion")
            }
        };
        child.kill().unwrap(); // SIGKILL: no drain, no goodbye
        child.wait().unwrap();
        kills += 1;
        let (at_kill, produced) = (w.committed(), producer.produced());
        // Mid-ingest: this instance committed while the producer was still writing. (The
        // producer goes on past TOTAL until the kills are done: a fast service used to finish all
        // of it before its tenth such kill, and the test failed.)
        if at_kill > floor {
            mid_ingest += 1;
        }
        moments.push(format!("{moment} (committed {at_kill} of {produced})"));
    }

    let starts = started_count(&log);
    let mut child = start(&config, &log);
    let (watermarks, dead, total) = producer.finish();
    wait_until("everything committed after the kills", Duration::from_secs(180), || w.committed() == total as i64);
    // The last kill may have found everything committed: then the instance that finishes has
    // nothing to do, and SIGTERM must not reach it before it has started (it would die by the
    // signal, not drain and exit 0).
    wait_until("the last instance started", Duration::from_secs(60), || started_count(&log) > starts);
    assert_exactly_once(&w.url, &w.topic, &w.group, &watermarks, &dead);
    sigterm(&child);
    let (exit, _) = wait_exit(&mut child, Duration::from_secs(30));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.success(), "SIGTERM exits 0, got {exit:?}; log (last 30 lines):\n{}", last_lines(&log_text, 30));
    assert!(!log_text.contains("offsets skipped"), "the producer stayed within the mock cluster's retention");
    let dead_total: i64 = dead.values().sum();
    eprintln!(
        "crash loop ({kind:?}): {kills} kills ({mid_ingest} while committing), {total} messages ({dead_total} dead letters), 0 lost, 0 duplicated, {:?}; kill moments: {}",
        started.elapsed(),
        moments.join("; ")
    );
}

/// SIGTERM while ingesting a 100k backlog at full rate with a producer still writing: fetching
/// stops, the batches already read commit, the group is left, exit 0 before the deadline, and
/// the database's progress matches its rows exactly. A restart then finishes the job exactly once.
fn sigterm_under_full_load_drains_commits_and_exits_zero_within_the_deadline(kind: Kind) {
    const PARTITIONS: i32 = 8;
    const BACKLOG: usize = 100_000;
    const LIVE: usize = 40_000;
    const DEADLINE_SECS: u64 = 10;
    // What the service may hold already read when SIGTERM arrives, in messages: librdkafka's
    // prefetch per partition (queued.max.messages.kbytes + one fetch of fetch.message.max.bytes),
    // the batcher's pending budget (2 × batch_max_bytes) — both at 80 bytes a message
    // (produce_mixed averages 87 with its key) — and the batches in flight. A coarse bound, well
    // below the backlog left at SIGTERM: committing more after SIGTERM would mean it kept fetching.
    const BATCH: i64 = 500;
    const MAX_IN_FLIGHT: i64 = 4;
    const PREFETCH_BYTES: i64 = (256 + 64) * 1024;
    const BATCH_MAX_BYTES: i64 = 64 * 1024;
    const ALREADY_READ_BOUND: i64 = PARTITIONS as i64 * PREFETCH_BYTES / 80 + 2 * BATCH_MAX_BYTES / 80 + MAX_IN_FLIGHT * BATCH;

    let Some(db) = test_db_of(kind) else { return };
    let started = std::time::Instant::now();
    let w = World::new("drain", &db, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let config = w.config(
        dir.path(),
        r#""session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"queued.max.messages.kbytes" = "256"
"fetch.message.max.bytes" = "65536""#,
        &format!("batch_size = {BATCH}\nlinger_ms = 20\nmax_in_flight = {MAX_IN_FLIGHT}\nbatch_max_bytes = {BATCH_MAX_BYTES}"),
        &format!("[shutdown]\ntimeout_secs = {DEADLINE_SECS}"),
    );
    let log = dir.path().join("tributary.log");
    let (mut watermarks, mut dead) = produce_mixed(&w.kafka, &w.topic, PARTITIONS, 0, BACKLOG);
    let producer = w.producer(BACKLOG, LIVE, BACKLOG as i64);

    let mut child = start(&config, &log);
    wait_until("ingesting at full rate", Duration::from_secs(120), || w.committed() >= 20_000);
    let before = w.committed();
    sigterm(&child);
    let (exit, took) = wait_exit(&mut child, Duration::from_secs(DEADLINE_SECS + 20));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.success(), "SIGTERM exits 0; log:\n{log_text}");
    assert!(took < Duration::from_secs(DEADLINE_SECS), "exited in {took:?}, within shutdown.timeout_secs = {DEADLINE_SECS}");
    assert!(log_text.contains("left the consumer group"), "drained and left the group");
    assert!(!log_text.contains("shutdown deadline reached"), "every batch in flight committed before the deadline");
    let at_exit = w.committed();
    assert!(
        at_exit - before <= ALREADY_READ_BOUND,
        "after SIGTERM only what was already read commits: {} more (bound {ALREADY_READ_BOUND})",
        at_exit - before
    );
    assert!(before + ALREADY_READ_BOUND < BACKLOG as i64, "SIGTERM came with more backlog left than the service could have read");
    assert!(at_exit < BACKLOG as i64, "stopped with backlog left ({at_exit} of {BACKLOG}): it stopped fetching");
    assert_progress_matches_rows(&w.url, &w.topic, &w.group);
    assert_eq!(w.kafka_committed(), progress(&w.url, &w.group), "Kafka's committed offsets equal the database's progress at exit");

    // A restart finishes the job, exactly once.
    let mut child = start(&config, &log);
    let (more_watermarks, more_dead, live) = producer.finish();
    add(&mut watermarks, more_watermarks);
    add(&mut dead, more_dead);
    let total = (BACKLOG + live) as i64;
    wait_until("everything committed after the restart", Duration::from_secs(180), || w.committed() == total);
    assert_exactly_once(&w.url, &w.topic, &w.group, &watermarks, &dead);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).0.success());
    eprintln!(
        "graceful shutdown ({kind:?}): SIGTERM at {before} committed, {at_exit} at exit ({} drained, bound {ALREADY_READ_BOUND}), exit 0 in {took:?}; {total} messages exactly once in {:?}",
        at_exit - before,
        started.elapsed()
    );
}
