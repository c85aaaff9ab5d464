//! The operator console: one page (`GET /`) from assets compiled into the binary, and the one
//! snapshot every open page polls (`GET /console/snapshot`). A background sampler builds the
//! snapshot once per [`SAMPLE_EVERY`] (one ask of the `HealthReporter` for the status and one for
//! the metrics) and keeps [`HISTORY`] of samples for the charts, so any number of open pages cost
//! the actors nothing more. Admin actions go to the admin API with the token the page keeps in
//! memory for the tab.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::BTreeMap;

use actix::Addr;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use tributary_actors::{GetMetrics, GetStatus, HealthReporter, Status};
use utoipa::ToSchema;

use crate::answer::{ApiError, ErrorBody};
use crate::routes::Routes;

pub const INDEX: &str = include_str!("index.html");
pub const SCRIPT: &str = include_str!("console.js");
pub const STYLE: &str = include_str!("console.css");

/// Nothing but this origin's own files, no inline script or style, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How often the sampler asks the actors, and how much history the charts show.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
pub const HISTORY: Duration = Duration::from_secs(15 * 60);

/// Counters at one moment, for rates between two samples.
#[derive(Debug, Clone, Default)]
struct Sample {
    at_ms: i64,
    consumed: f64,
    dead: f64,
    lag: f64,
    /// Cumulative `tributary_commit_latency_seconds` buckets: (upper bound, count).
    latency: Vec<(f64, f64)>,
}

/// Rates between two samples, for the charts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Point {
    /// Milliseconds since the epoch.
    t: i64,
    events_per_s: f64,
    dead_letters_per_s: f64,
    lag: f64,
}

/// Commit latency over the last minute of samples (`None` without commits).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Latency {
    p50: Option<f64>,
    p99: Option<f64>,
    window_s: i64,
}

/// What every open page polls (`GET /console/snapshot`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Snapshot {
    /// RFC 3339.
    at: String,
    sample_every_s: u64,
    /// An admin token is configured (the page offers the admin actions).
    admin: bool,
    status: Status,
    series: Vec<Point>,
    commit_latency_ms: Latency,
    dead_letters_by_reason: BTreeMap<String, f64>,
}

/// What the sampler keeps: the latest snapshot and the history behind the charts.
#[derive(Default)]
pub struct Console {
    latest: Mutex<Option<Snapshot>>,
    history: Mutex<VecDeque<Sample>>,
    admin: bool,
}

/// A metric's samples `name{labels} value` as (labels text, value); `name` exactly.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |l| {
        let rest = l.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let (labels, v) = r.split_once("} ")?;
                (labels, v)
            }
            None => ("", rest.strip_prefix(' ')?),
        };
        Some((labels, value.split(' ').next()?.parse().ok()?))
    })
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    labels[start..].split('"').next()
}

fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).map(|(_, v)| v).sum()
}

/// The `q` quantile (0–1) of the observations between two cumulative bucket lists, as the upper
/// bound of the bucket it falls in (what Prometheus' histogram_quantile interpolates); `None`
/// without observations.
fn quantile(old: &[(f64, f64)], new: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = new.iter().map(|(le, n)| (*le, n - old.iter().find(|(l, _)| l == le).map_or(0.0, |(_, o)| *o))).collect();
    let total = delta.iter().map(|(_, n)| *n).fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    delta.iter().find(|(_, n)| *n >= q * total).map(|(le, _)| *le)
}

impl Console {
    pub fn new(admin: bool) -> Self {
        Console { admin, ..Console::default() }
    }

    /// Take one sample: the status and metrics as the `HealthReporter` gave them.
    fn record(&self, status: Status, metrics: &str) {
        let now = chrono::Utc::now();
        let mut latency: Vec<(f64, f64)> = samples(metrics, "tributary_commit_latency_seconds_bucket")
            .filter_map(|(l, v)| Some((label(l, "le")?.parse::<f64>().ok()?, v)))
            .collect();
        latency.sort_by(|a, b| a.0.total_cmp(&b.0));
        let sample = Sample {
            at_ms: now.timestamp_millis(),
            consumed: sum(metrics, "tributary_messages_consumed_total"),
            dead: sum(metrics, "tributary_dead_letters_total"),
            lag: sum(metrics, "tributary_consumer_lag"),
            latency,
        };
        let mut history = self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        history.push_back(sample);
        let keep_from = now.timestamp_millis() - HISTORY.as_millis() as i64;
        while history.front().is_some_and(|s| s.at_ms < keep_from) {
            history.pop_front();
        }
        let series = history
            .iter()
            .zip(history.iter().skip(1))
            .map(|(a, b)| {
                let secs = ((b.at_ms - a.at_ms) as f64 / 1000.0).max(0.001);
                // A restarted counter (a new process) is not a negative rate.
                Point {
                    t: b.at_ms,
                    events_per_s: ((b.consumed - a.consumed) / secs).max(0.0),
                    dead_letters_per_s: ((b.dead - a.dead) / secs).max(0.0),
                    lag: b.lag,
                }
            })
            .collect();
        // Commit latency over the last minute of samples.
        let newest = history.back().cloned().unwrap_or_default();
        let minute_ago = history.iter().find(|s| s.at_ms >= newest.at_ms - 60_000).cloned().unwrap_or_default();
        let ms = |q| quantile(&minute_ago.latency, &newest.latency, q).map(|s| (s * 1000.0).round());
        let dead_letters_by_reason =
            samples(metrics, "tributary_dead_letters_total").filter_map(|(l, v)| Some((label(l, "reason")?.to_string(), v))).collect();
        let snapshot = Snapshot {
            at: now.to_rfc3339(),
            sample_every_s: SAMPLE_EVERY.as_secs(),
            admin: self.admin,
            status,
            series,
            commit_latency_ms: Latency { p50: ms(0.5), p99: ms(0.99), window_s: (newest.at_ms - minute_ago.at_ms) / 1000 },
            dead_letters_by_reason,
        };
        *self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(snapshot);
    }

    fn latest(&self) -> Option<Snapshot> {
        self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Sample every [`SAMPLE_EVERY`] on the current arbiter, for as long as it runs.
pub fn start_sampler(console: Arc<Console>, health: Addr<HealthReporter>) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            // An actor system that does not answer leaves the last snapshot (its `at` ages).
            if let (Ok(status), Ok(metrics)) = (health.send(GetStatus).await, health.send(GetMetrics).await) {
                console.record(status, &metrics);
            }
        }
    });
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The page's routes: the page, its assets and the snapshot it polls.
pub fn routes(r: &mut Routes<'_>) {
    r.schema::<Snapshot>();
    r.add(__path_index, index);
    r.add(__path_script, script);
    r.add(__path_style, style);
    r.add(__path_snapshot, snapshot);
    r.add(__path_no_icon, no_icon);
}

#[utoipa::path(get, path = "/", operation_id = "console", summary = "the operator console", responses(
    (status = 200, description = "the page", body = String, content_type = "text/html")))]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

#[utoipa::path(get, path = "/console.js", operation_id = "console_script", responses(
    (status = 200, description = "the console's script", body = String, content_type = "text/javascript")))]
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[utoipa::path(get, path = "/console.css", operation_id = "console_style", responses(
    (status = 200, description = "the console's style", body = String, content_type = "text/css")))]
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// Browsers ask for one; there is none (an answer without a body, not a 404 in their console).
#[utoipa::path(get, path = "/favicon.ico", operation_id = "favicon", responses((status = 204, description = "there is no icon")))]
pub async fn no_icon() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[utoipa::path(get, path = "/console/snapshot", operation_id = "console_snapshot", summary = "the console's data, built every 2 s by one sampler",
    responses(
    (status = 200, description = "the latest snapshot", body = Snapshot),
    (status = 503, description = "no sample is taken yet", body = ErrorBody)))]
pub async fn snapshot(console: web::Data<Arc<Console>>) -> Result<HttpResponse, ApiError> {
    let latest = console.latest().ok_or_else(|| ApiError::Unavailable("the console's first sample is not taken yet".into()))?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_latency_come_from_the_metrics_text() {
        let text = "tributary_dead_letters_total{reason=\"invalid_json\"} 3\ntributary_dead_letters_total{reason=\"oversize\"} 2\n\
                    tributary_commit_latency_seconds_bucket{le=\"0.1\"} 5\ntributary_commit_latency_seconds_bucket{le=\"1.0\"} 9\n\
                    tributary_commit_latency_seconds_bucket{le=\"+Inf\"} 10\ntributary_consumer_lag{topic=\"t\",partition=\"0\"} 7\n";
        assert_eq!(sum(text, "tributary_dead_letters_total"), 5.0);
        assert_eq!(sum(text, "tributary_consumer_lag"), 7.0);
        let buckets = vec![(0.1, 5.0), (1.0, 9.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(&[], &buckets, 0.5), Some(0.1));
        assert_eq!(quantile(&[], &buckets, 0.9), Some(1.0));
        assert_eq!(quantile(&buckets, &buckets, 0.5), None, "nothing observed between them");
        let c = Console::new(true);
        c.record(Status::default(), text);
        c.record(Status::default(), &text.replace("} 3", "} 13"));
        let s = serde_json::to_value(c.latest()).unwrap();
        assert_eq!(s["dead_letters_by_reason"]["invalid_json"], 13.0);
        assert_eq!(s["series"].as_array().map(Vec::len), Some(1));
        assert!(s["series"][0]["dead_letters_per_s"].as_f64().unwrap() > 0.0);
    }
}
