//! The service under measurement: the release binary as a subprocess, its end-to-end run
//! (Kafka → committed rows) and its commit latency at a fixed offered rate.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tributary::http::loopback_get;
use tributary::mock::MockKafka;
use tributary_actors::{Database, DatabaseOptions};

use crate::{create_topic, produce};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Consumer-group timing for the service, unless set in the environment. Tansu holds a new
/// group's first JoinGroup for about half the session timeout (23 s at librdkafka's default of
/// 45 s, 3 s at 6 s; a bare confluent-kafka consumer waits the same) before every end-to-end
/// run; the measured time starts at the first commit either way. 6 s is Kafka brokers' default
/// `group.min.session.timeout.ms`; heartbeats every 2 s leave two of them to miss on a busy
/// machine.
pub const GROUP_TIMING: [(&str, &str); 2] =
    [("TRIBUTARY_KAFKA__LIBRDKAFKA__SESSION_TIMEOUT_MS", "6000"), ("TRIBUTARY_KAFKA__LIBRDKAFKA__HEARTBEAT_INTERVAL_MS", "2000")];

pub struct Service {
    child: Child,
    pub port: u16,
}

impl Service {
    /// Start the binary, with `--config FILE` when given (the environment still names the
    /// brokers, group, topic, database and listener, over the file).
    pub fn start(bin: &PathBuf, brokers: &str, topic: &str, group: &str, url: &str, config: Option<&Path>) -> Service {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let mut cmd = Command::new(bin);
        let harness = std::process::id();
        // SAFETY: prctl and getppid are async-signal-safe and touch only the new process. A
        // harness that is killed (Ctrl-C, a timeout) takes its services along instead of leaving
        // them running; one that died before prctl took effect is seen as a new parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() as u32 != harness {
                    return Err(std::io::Error::other("the harness is gone"));
                }
                Ok(())
            });
        }
        cmd.arg("run");
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let child = cmd
            .env("TRIBUTARY_KAFKA__BROKERS", brokers)
            .env("TRIBUTARY_KAFKA__GROUP_ID", group)
            .env("TRIBUTARY_KAFKA__TOPICS", topic)
            .env("TRIBUTARY_DATABASE__URL", url)
            .env("TRIBUTARY_HTTP__BIND", format!("127.0.0.1:{port}"))
            .env("TRIBUTARY_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .envs(GROUP_TIMING.iter().filter(|(k, _)| std::env::var_os(k).is_none()).copied())
            .spawn()
            .expect("start tributary");
        Service { child, port }
    }

    /// Start it and wait for its first commit: group join and start-up are not throughput.
    /// Returns the service, a connection for reading its progress, and the progress then. Only
    /// the progress is polled (one indexed row per partition); counting `events` would load the
    /// database being measured.
    pub fn started(bin: &PathBuf, brokers: &str, topic: &str, group: &str, url: &str, config: Option<&Path>) -> (Service, Database, i64) {
        let db = progress_db(url);
        let svc = Service::start(bin, brokers, topic, group, url, config);
        svc.wait_ready();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut floor = 0;
        while floor == 0 {
            floor = db.committed(group).unwrap_or(0);
            assert!(Instant::now() < deadline, "nothing committed");
            std::thread::sleep(Duration::from_millis(5));
        }
        (svc, db, floor)
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while loopback_get(self.port, "/ready").map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "tributary did not become ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn proc_status(&self, field: &str) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = s.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let ticks: u64 =
            fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0) + fields.get(12).and_then(|u| u.parse().ok()).unwrap_or(0);
        ticks as f64 / 100.0
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-connection pool for reading the service's progress.
pub fn progress_db(url: &str) -> Database {
    Database::open(&DatabaseOptions {
        url: url.into(),
        pool_size: 1,
        connect_timeout: Duration::from_secs(10),
        checkpoint_in_background: false,
    })
    .expect("open")
}

pub struct E2e {
    pub per_s: f64,
    pub rss_peak_mib: f64,
    pub rss_steady_mib: f64,
    pub cpu_per_100k_s: f64,
    pub health: Option<(f64, f64)>,
    /// Database transactions the run committed, and the batches they carried.
    pub transactions: f64,
    pub batches: f64,
}

/// The value of an unlabelled counter in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(f64::NAN)
}

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Start the service (with `config`, if any), wait until it is ready, time until all `n`
/// offsets are committed.
pub fn end_to_end(bin: &PathBuf, brokers: &str, topic: &str, url: &str, n: usize, probe_health: bool, config: Option<&Path>) -> E2e {
    let group = format!("bench-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let (svc, db, floor) = Service::started(bin, brokers, topic, &group, url, config);
    let cpu0 = svc.cpu_seconds();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let health = probe_health.then(|| {
        let (stop, port) = (stop.clone(), svc.port);
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            let t0 = Instant::now();
            // Paced like a busy orchestrator plus scrapers (200/s): probing flat out would take a
            // core from the ingest it is measuring on a small machine.
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) && lat.len() < 200_000 {
                let t = Instant::now();
                if loopback_get(port, "/health").is_some_and(|r| r.0 == 200) {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                next += Duration::from_millis(5);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            let rate = lat.len() as f64 / t0.elapsed().as_secs_f64();
            lat.sort_by(f64::total_cmp);
            (rate, percentile(&lat, 0.99))
        })
    });
    let mut rss = Vec::new();
    loop {
        let committed = db.committed(&group).unwrap_or(0);
        rss.push(svc.proc_status("VmRSS:").unwrap_or(0) as f64 / 1024.0);
        if committed as usize >= n {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "end to end stalled at {committed} of {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = svc.cpu_seconds() - cpu0;
    let peak = svc.proc_status("VmHWM:").unwrap_or(0) as f64 / 1024.0;
    stop.store(true, Ordering::Relaxed);
    let health = health.and_then(|h| h.join().ok());
    let metrics = loopback_get(svc.port, "/metrics").map(|r| r.1).unwrap_or_default();
    svc.stop();
    let second_half = &mut rss[rss.len() / 2..].to_vec();
    second_half.sort_by(f64::total_cmp);
    E2e {
        per_s: (n as i64 - floor) as f64 / elapsed,
        rss_peak_mib: peak,
        rss_steady_mib: percentile(second_half, 0.5),
        cpu_per_100k_s: cpu / (n as i64 - floor) as f64 * 100_000.0,
        health,
        transactions: metric(&metrics, "tributary_transactions_committed_total"),
        batches: metric(&metrics, "tributary_batches_committed_total"),
    }
}

/// Offer `rate` events/s for `seconds` and read the commit-latency histogram.
pub fn commit_latency(bin: &PathBuf, mock: Option<&MockKafka>, brokers: &str, url: &str, rate: u64, seconds: u64) -> (f64, f64) {
    let topic = format!("bench-latency-{}", chrono::Utc::now().timestamp_micros());
    create_topic(mock, brokers, &topic, 4);
    let group = format!("bench-latency-{}", std::process::id());
    let svc = Service::start(bin, brokers, &topic, &group, url, None);
    svc.wait_ready();
    let n = (rate * seconds) as usize;
    produce(brokers, &topic, 4, 0, n, Some(rate));
    let db = progress_db(url);
    let deadline = Instant::now() + Duration::from_secs(120);
    while db.committed(&group).unwrap_or(0) < n as i64 {
        assert!(Instant::now() < deadline, "latency phase did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = loopback_get(svc.port, "/metrics").map(|r| r.1).unwrap_or_default();
    svc.stop();
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with("tributary_commit_latency_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    // The shape, not only two quantiles: where between linger and the commit the time goes.
    let shape: Vec<String> = buckets
        .iter()
        .filter(|(le, c)| le.is_finite() && *c > 0.0 && *c < total)
        .map(|(le, c)| format!("≤{:.0}ms {:.1}%", le * 1000.0, 100.0 * c / total))
        .collect();
    eprintln!("  commit latency histogram (cumulative, {total} batches): {}", shape.join(", "));
    let q = |q: f64| buckets.iter().find(|(_, c)| *c >= q * total).map_or(f64::NAN, |(le, _)| le * 1000.0);
    (q(0.5), q(0.99))
}
