//! The soak phase: one long ingest (3M events by default) into a fresh database, to show that
//! the rate holds as the tables grow and that SQLite's WAL stays bounded. It reports the rate of
//! each third of the offsets, the WAL's largest size, and the service's steady RSS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tributary_actors::EventRow;

use crate::service::{percentile, Service};

pub struct Soak {
    /// Events per second over each third of the offsets.
    pub thirds: [f64; 3],
    /// The largest size the SQLite WAL file reached (sampled every 100 ms).
    pub wal_peak_mib: Option<f64>,
    pub rss_steady_mib: f64,
}

impl Soak {
    pub fn last_over_first(&self) -> f64 {
        self.thirds[2] / self.thirds[0]
    }
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

/// Ingest the `n` events of `topic` into `url`; `wal` is the SQLite WAL file to watch.
pub fn soak(bin: &PathBuf, brokers: &str, topic: &str, url: &str, n: usize, wal: Option<&Path>) -> Soak {
    let group = format!("bench-soak-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let (svc, db, floor) = Service::started(bin, brokers, topic, &group, url, None);
    let n = n as i64;
    let bounds = [n / 3, 2 * n / 3, n];
    let mut marks: Vec<(i64, Instant)> = vec![(floor, Instant::now())];
    let (mut wal_peak, mut rss) = (0.0f64, Vec::new());
    while marks.len() <= bounds.len() {
        let committed = db.committed(&group).unwrap_or(0);
        let now = Instant::now();
        while marks.len() <= bounds.len() && committed >= bounds[marks.len() - 1] {
            marks.push((committed, now));
        }
        if let Some(wal) = wal {
            wal_peak = wal_peak.max(file_mib(wal));
        }
        rss.push(svc.proc_status("VmRSS:").unwrap_or(0) as f64 / 1024.0);
        assert!(marks[0].1.elapsed() < Duration::from_secs(3600), "soak stalled at {committed} of {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
    svc.stop();
    let rate = |k: usize| (marks[k + 1].0 - marks[k].0) as f64 / (marks[k + 1].1 - marks[k].1).as_secs_f64();
    let steady = &mut rss[rss.len() / 2..].to_vec();
    steady.sort_by(f64::total_cmp);
    Soak { thirds: [rate(0), rate(1), rate(2)], wal_peak_mib: wal.map(|_| wal_peak), rss_steady_mib: percentile(steady, 0.5) }
}

/// Reorder per-partition batches round-robin over the partitions: the order the service's
/// commits reach the database in.
pub fn interleaved(batches: Vec<(i32, Vec<EventRow>)>) -> Vec<(i32, Vec<EventRow>)> {
    let mut queues: std::collections::BTreeMap<i32, std::collections::VecDeque<(i32, Vec<EventRow>)>> = Default::default();
    for b in batches {
        queues.entry(b.0).or_default().push_back(b);
    }
    let mut out = Vec::new();
    while queues.values().any(|q| !q.is_empty()) {
        for q in queues.values_mut() {
            out.extend(q.pop_front());
        }
    }
    out
}

/// Rates over each third of `n` rows, from marks of the rows done so far.
pub struct Thirds {
    n: usize,
    marks: Vec<(usize, Instant)>,
}

impl Thirds {
    pub fn new(n: usize) -> Self {
        Self { n, marks: vec![(0, Instant::now())] }
    }

    /// `done == 0`: the clock starts now (after any preparation).
    pub fn mark(&mut self, done: usize) {
        if done == 0 {
            self.marks = vec![(0, Instant::now())];
            return;
        }
        let bound = self.n * self.marks.len() / 3;
        if self.marks.len() <= 3 && done >= bound {
            self.marks.push((done, Instant::now()));
        }
    }

    pub fn rates(&self) -> [f64; 3] {
        let rate = |k: usize| match (self.marks.get(k), self.marks.get(k + 1)) {
            (Some(a), Some(b)) => (b.0 - a.0) as f64 / (b.1 - a.1).as_secs_f64(),
            _ => f64::NAN,
        };
        [rate(0), rate(1), rate(2)]
    }
}
