//! The schema registry as the parser's workers use it: a blocking client ([`client`]) and the
//! registry's health. A fetch waits through an outage (retrying with backoff) rather than
//! failing: an unreachable registry is never the message's fault, so nothing may become a dead
//! letter for it; `/ready` says so meanwhile ([`RegistryHealth`]).

mod client;
mod options;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

pub(crate) use client::{FetchError, RawSchema};
pub use options::RegistryOptions;

/// A label whose values are the code's own words (no escaping needed).
type StaticLabel = Vec<(&'static str, &'static str)>;

/// The registry's metrics (registered by `Metrics`; kept here so the parser need not see them all).
#[derive(Clone)]
pub struct RegistryMetrics {
    /// Requests, by outcome (ok, not_found, error).
    pub requests: Family<StaticLabel, Counter>,
    pub request_seconds: Histogram,
    /// Compiled schemas held.
    pub schemas_cached: Gauge,
    /// Framed records whose datum did not decode with its schema, by format.
    pub decode_failures: Family<StaticLabel, Counter>,
}

impl RegistryMetrics {
    pub(crate) fn new() -> Self {
        Self {
            requests: Family::default(),
            request_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            schemas_cached: Gauge::default(),
            decode_failures: Family::default(),
        }
    }

    pub(crate) fn decode_failed(&self, format: &'static str) {
        self.decode_failures.get_or_create(&vec![("format", format)]).inc();
    }
}

/// Whether the registry answers, as `/ready` and the stall watchdog read it, and what `/status`
/// shows of it.
#[derive(Debug, Default)]
pub struct RegistryHealth {
    /// The URL for display (userinfo redacted).
    url: String,
    /// Schema ids seen per topic (bounded).
    seen: Mutex<BTreeMap<String, BTreeSet<u32>>>,
    unavailable: Mutex<Option<(String, Instant)>>,
    /// When the registry last answered after being unavailable.
    recovered_at: Mutex<Option<Instant>>,
}

impl RegistryHealth {
    /// Why the registry is unavailable, while it is.
    pub fn unavailable(&self) -> Option<String> {
        lock(&self.unavailable).as_ref().map(|(reason, _)| reason.clone())
    }

    /// When it last came back (for the stall watchdog, whose clock starts then).
    pub fn recovered_at(&self) -> Option<Instant> {
        *lock(&self.recovered_at)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Schema ids seen per topic, for `/status`.
    pub fn schema_ids(&self) -> BTreeMap<String, Vec<u32>> {
        lock(&self.seen).iter().map(|(t, ids)| (t.clone(), ids.iter().copied().collect())).collect()
    }

    /// Note the ids a batch of `topic` was framed with (once per batch, not per record).
    pub(crate) fn saw(&self, topic: &str, ids: &[u32]) {
        if ids.is_empty() {
            return;
        }
        let mut seen = lock(&self.seen);
        if !seen.contains_key(topic) && seen.len() >= MAX_TOPICS_SHOWN {
            return;
        }
        let known = seen.entry(topic.to_string()).or_default();
        for id in ids {
            if known.len() < MAX_IDS_SHOWN {
                known.insert(*id);
            }
        }
    }
}

/// `/status` shows this many topics' ids, this many ids each, at most.
const MAX_TOPICS_SHOWN: usize = 1000;
const MAX_IDS_SHOWN: usize = 100;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client, the registry's health and its metrics, shared by the parser's workers and the
/// redriver.
pub struct Registry {
    client: client::Client,
    pub(crate) opts: RegistryOptions,
    pub(crate) health: Arc<RegistryHealth>,
    pub(crate) metrics: RegistryMetrics,
    log: slog::Logger,
}

impl Registry {
    /// Fails on unreadable TLS files (a configuration error, for the start to report).
    pub fn new(opts: RegistryOptions, metrics: RegistryMetrics, log: slog::Logger) -> Result<Self, String> {
        let health = Arc::new(RegistryHealth { url: crate::redact::database_url(&opts.url), ..RegistryHealth::default() });
        Ok(Self { client: client::Client::new(&opts)?, opts, health, metrics, log })
    }

    pub fn health(&self) -> Arc<RegistryHealth> {
        self.health.clone()
    }

    fn observe(&self, outcome: &'static str, took: Duration) {
        self.metrics.requests.get_or_create(&vec![("outcome", outcome)]).inc();
        self.metrics.request_seconds.observe(took.as_secs_f64());
    }

    /// One attempt at the schema with this id, for showing a dead letter: no waiting, an outage
    /// is an error to show.
    pub(crate) fn fetch_once(&self, id: u32) -> Result<RawSchema, FetchError> {
        self.client.schema(id, &|outcome, took| self.observe(outcome, took))
    }

    /// The subjects (and versions) the id is registered under, one attempt; none if it fails.
    pub(crate) fn subjects(&self, id: u32) -> Vec<String> {
        self.client.subjects(id, &|outcome, took| self.observe(outcome, took)).unwrap_or_default()
    }

    /// The schema with this id, waiting through outages; `Err`: the registry does not know it.
    pub(crate) fn fetch(&self, id: u32) -> Result<RawSchema, String> {
        let observe = |outcome: &'static str, took: Duration| self.observe(outcome, took);
        let mut attempt = 0;
        loop {
            match self.client.schema(id, &observe) {
                Ok(schema) => {
                    self.answered();
                    return Ok(schema);
                }
                Err(FetchError::NotFound(e)) => {
                    self.answered();
                    return Err(e);
                }
                Err(FetchError::Unavailable(e)) => {
                    let mut down = lock(&self.health.unavailable);
                    if down.is_none() {
                        slog::warn!(self.log, "schema registry unavailable; records that need a new schema wait until it answers"; "error" => &e);
                    }
                    let since = down.as_ref().map_or_else(Instant::now, |(_, t)| *t);
                    *down = Some((e, since));
                }
            }
            std::thread::sleep(self.opts.retry.delay(attempt, &mut rand::rng()));
            attempt = attempt.saturating_add(1);
        }
    }

    fn answered(&self) {
        if let Some((_, since)) = lock(&self.health.unavailable).take() {
            slog::info!(self.log, "schema registry answers again"; "unavailable_for_s" => format!("{:.1}", since.elapsed().as_secs_f64()));
            *lock(&self.health.recovered_at) = Some(Instant::now());
        }
    }
}
