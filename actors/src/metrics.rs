//! The Prometheus metrics: handles shared by every actor, one registry owned by the
//! `HealthReporter` (which renders it for `GET /metrics`).
//!
//! Handles are cheap clones of atomics, so the data path updates them without messages.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use crate::batches::{CommitOutcome, ParsedBatch};
use crate::project::Plan;
use crate::registry::RegistryMetrics;
use crate::storage::GroupCommit;

pub(crate) type Labels = Vec<(String, LabelValue)>;

/// A label value, escaped as the text exposition requires (`\\`, `\"`, `\n`) when `/metrics`
/// is rendered. prometheus-client 0.24 writes label values verbatim, so a value holding a quote
/// or a newline (a topic, a projection name) would end its sample early and forge lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelValue(pub String);

impl EncodeLabelValue for LabelValue {
    fn encode(&self, out: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        let mut rest = self.0.as_str();
        while let Some(at) = rest.find(['\\', '"', '\n']) {
            out.write_str(&rest[..at])?;
            out.write_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[at + 1..];
        }
        out.write_str(rest)
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub messages_consumed: Family<Labels, Counter>,
    pub rows_written: Family<Labels, Counter>,
    pub dead_letters: Family<Labels, Counter>,
    /// Dead letters re-parsed and ingested by a redrive, by their former reason.
    pub dead_letters_redriven: Family<Labels, Counter>,
    pub batches_committed: Counter,
    pub transactions_committed: Counter,
    pub batches_fenced: Counter,
    pub batch_size: Histogram,
    pub db_write_seconds: Histogram,
    pub commit_latency_seconds: Histogram,
    pub db_retries: Counter,
    pub offsets_skipped: Family<Labels, Counter>,
    pub backpressure_pauses: Counter,
    pub stall_restarts: Counter,
    pub consumer_lag: Family<Labels, Gauge>,
    pub in_flight_batches: Gauge,
    pub actor_restarts: Family<Labels, Counter>,
    pub actor_up: Family<Labels, Gauge>,
    pub breaker_open: Gauge,
    pub paused: Gauge,
    pub pool_in_use: Gauge,
    pub partitions_assigned: Gauge,
    /// Rows of the projections' tables, by projection and outcome (inserted, updated, deleted, unchanged).
    pub projection_rows: Family<Labels, Counter>,
    pub projection_dead_letters: Family<Labels, Counter>,
    /// Change-topic messages a projection passed over, by projection and what they were.
    pub projection_skipped: Family<Labels, Counter>,
    pub projection_truncates: Family<Labels, Counter>,
    /// A template projection's ops, by the table they went to.
    pub projection_table_rows: Family<Labels, Counter>,
    /// Columns `add_columns` added, by projection and table.
    pub projection_columns_added: Family<Labels, Counter>,
    /// Row-image fields a template projection's table has no column for, by table.
    pub projection_table_ignored_fields: Family<Labels, Counter>,
    pub projection_ignored_fields: Family<Labels, Counter>,
    pub unrouted: Family<Labels, Counter>,
    /// The schema registry's requests and schemas, framed values that did not decode.
    pub registry: RegistryMetrics,
    families: Arc<[&'static str]>,
}

/// A registry that keeps the names registered in it.
struct Registrar {
    registry: Registry,
    names: Vec<&'static str>,
}

impl Registrar {
    fn register(&mut self, name: &'static str, help: &str, metric: impl Metric) {
        self.names.push(name);
        self.registry.register(name, help, metric);
    }
}

impl Metrics {
    /// Create the handles and register them in a fresh registry (prefix `tributary_`).
    pub fn new() -> (Self, Registry) {
        let mut m = Metrics {
            messages_consumed: Family::default(),
            rows_written: Family::default(),
            dead_letters: Family::default(),
            dead_letters_redriven: Family::default(),
            batches_committed: Counter::default(),
            transactions_committed: Counter::default(),
            batches_fenced: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            db_write_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            commit_latency_seconds: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            db_retries: Counter::default(),
            offsets_skipped: Family::default(),
            backpressure_pauses: Counter::default(),
            stall_restarts: Counter::default(),
            consumer_lag: Family::default(),
            in_flight_batches: Gauge::default(),
            actor_restarts: Family::default(),
            actor_up: Family::default(),
            breaker_open: Gauge::default(),
            paused: Gauge::default(),
            pool_in_use: Gauge::default(),
            partitions_assigned: Gauge::default(),
            projection_rows: Family::default(),
            projection_dead_letters: Family::default(),
            projection_skipped: Family::default(),
            projection_truncates: Family::default(),
            projection_table_rows: Family::default(),
            projection_columns_added: Family::default(),
            projection_table_ignored_fields: Family::default(),
            projection_ignored_fields: Family::default(),
            unrouted: Family::default(),
            registry: RegistryMetrics::new(),
            families: Arc::default(),
        };
        let mut r = Registrar { registry: Registry::with_prefix("tributary"), names: Vec::new() };
        r.register("messages_consumed", "Kafka messages consumed, by topic", m.messages_consumed.clone());
        r.register("rows_written", "Rows committed to the events table, by topic", m.rows_written.clone());
        r.register("dead_letters", "Messages committed as dead letters, by reason", m.dead_letters.clone());
        r.register(
            "dead_letters_redriven",
            "Dead letters redriven into events (POST /dead-letters/redrive), by former reason",
            m.dead_letters_redriven.clone(),
        );
        r.register(
            "batches_committed",
            "Batches committed (rows, dead letters and offsets in one transaction)",
            m.batches_committed.clone(),
        );
        r.register(
            "transactions_committed",
            "Database transactions committed; each carries the ready batches of several partitions",
            m.transactions_committed.clone(),
        );
        r.register("batches_fenced", "Batches refused by the offset fence (another member owned the partition)", m.batches_fenced.clone());
        r.register("batch_size", "Messages per committed batch", m.batch_size.clone());
        r.register(
            "db_write_duration_seconds",
            "Time to commit one transaction (the ready batches of several partitions)",
            m.db_write_seconds.clone(),
        );
        r.register(
            "commit_latency_seconds",
            "Kafka timestamp of a batch's oldest message to its database commit",
            m.commit_latency_seconds.clone(),
        );
        r.register("db_retries", "Transient database errors retried", m.db_retries.clone());
        r.register(
            "offsets_skipped",
            "Offsets never delivered by Kafka (compaction, transaction markers, or retention deleted them before ingestion), by topic",
            m.offsets_skipped.clone(),
        );
        r.register("backpressure_pauses", "Partitions paused because the messages read ahead stayed over budget (the database was slower than Kafka for longer than a moment); each resume re-fetches", m.backpressure_pauses.clone());
        r.register("stall_restarts", "Kafka reader restarts because partitions stalled (lag above zero, no commit) or none were assigned, for health.restart_reader_after_secs, while the database answered", m.stall_restarts.clone());
        r.register("consumer_lag", "High watermark minus committed offset, by partition", m.consumer_lag.clone());
        r.register("in_flight_batches", "Batches handed to the parser or writer and not yet committed", m.in_flight_batches.clone());
        r.register("actor_restarts", "Actor restarts by its supervisor, by actor", m.actor_restarts.clone());
        r.register("actor_up", "1 while the actor runs, by actor", m.actor_up.clone());
        r.register("breaker_open", "1 while the database circuit breaker is open", m.breaker_open.clone());
        r.register("paused", "1 while an operator has paused consumption (POST /pause)", m.paused.clone());
        r.register("db_pool_connections_in_use", "Database connections checked out of the pool", m.pool_in_use.clone());
        r.register("partitions_assigned", "Partitions this instance owns", m.partitions_assigned.clone());
        r.register(
            "projection_rows",
            "Ops the projections applied to their tables, by projection and outcome (inserted, updated, deleted; unchanged: an older version, or an update or delete of a missing row)",
            m.projection_rows.clone(),
        );
        r.register(
            "projection_dead_letters",
            "Messages a projection refused (a value it could not coerce, a missing key or required value, a row the table refused), by projection and reason",
            m.projection_dead_letters.clone(),
        );
        r.register(
            "projection_skipped",
            "Messages on a debezium projection's topics that change no row, passed over, by projection and what (tombstone: Debezium's after a delete; truncate: with truncate = false; not_a_row: a heartbeat, schema change, transaction metadata or logical decoding message)",
            m.projection_skipped.clone(),
        );
        r.register(
            "projection_truncates",
            "Change events' truncates applied (every row of the table deleted), by projection",
            m.projection_truncates.clone(),
        );
        r.register(
            "projection_table_rows",
            "A template projection's ops, by projection, the table they went to, and outcome (as projection_rows)",
            m.projection_table_rows.clone(),
        );
        r.register(
            "projection_columns_added",
            "Columns schema_evolution = \"add_columns\" added for change events' new fields, by projection and table",
            m.projection_columns_added.clone(),
        );
        r.register(
            "projection_table_ignored_fields",
            "Row-image fields a template projection's table has no column for, passed over, by projection and table",
            m.projection_table_ignored_fields.clone(),
        );
        r.register(
            "projection_ignored_fields",
            "Fields of change events' row images that the projection's table has no column for, passed over, by projection",
            m.projection_ignored_fields.clone(),
        );
        r.register(
            "unrouted",
            "Messages no projection took, passed over ([events] enabled = false, unrouted = \"skip\"), by topic",
            m.unrouted.clone(),
        );
        r.register(
            "schema_registry_requests",
            "Schema registry requests, by outcome (ok; not_found: the registry does not know the id; error: unavailable, retried)",
            m.registry.requests.clone(),
        );
        r.register("schema_registry_request_duration_seconds", "Time of one schema registry request", m.registry.request_seconds.clone());
        r.register("schemas_cached", "Compiled schemas held by id ([schema_registry] cache_capacity)", m.registry.schemas_cached.clone());
        r.register(
            "decode_failures",
            "Framed records whose datum did not decode with its schema, by format (avro, protobuf, json_schema)",
            m.registry.decode_failures.clone(),
        );
        m.families = r.names.into();
        (m, r.registry)
    }

    /// Every family's full name (`tributary_…`), as registered: the exposition leaves out a
    /// family with no sample yet (a labelled counter nothing has counted).
    pub fn families(&self) -> Vec<String> {
        self.families.iter().map(|n| format!("tributary_{n}")).collect()
    }

    /// Count what one committed group did: its batches and rows, dead letters by reason (and by
    /// projection), rows no projection took, the projections' outcomes, and its timings.
    pub(crate) fn group_committed(&self, plan: &Plan, batches: &[ParsedBatch], commit: &GroupCommit, took: Duration, pool_in_use: u32) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut committed_any = false;
        for ((batch, outcome), rejected) in batches.iter().zip(&commit.outcomes).zip(&commit.rejected) {
            match outcome {
                CommitOutcome::Committed { rows, .. } => {
                    committed_any = true;
                    self.batches_committed.inc();
                    self.batch_size.observe(batch.message_count as f64);
                    self.rows_written.get_or_create(&label("topic", batch.partition.topic.clone())).inc_by(*rows as u64);
                    for d in batch.dead_letters.iter().chain(rejected) {
                        self.dead_letters.get_or_create(&label("reason", d.reason.code())).inc();
                        if let Some(p) = d.projection.and_then(|p| plan.projections.get(p as usize)) {
                            self.projection_dead_letters.get_or_create(&projection_label(&p.name, "reason", d.reason.code())).inc();
                        }
                    }
                    if batch.unrouted > 0 {
                        self.unrouted.get_or_create(&label("topic", batch.partition.topic.clone())).inc_by(batch.unrouted as u64);
                    }
                    if let Some(ts) = batch.oldest_timestamp_ms {
                        self.commit_latency_seconds.observe(Duration::from_millis((now_ms - ts).max(0) as u64).as_secs_f64());
                    }
                }
                CommitOutcome::Fenced { .. } => {
                    self.batches_fenced.inc();
                }
            }
        }
        for (p, c) in plan.projections.iter().zip(&commit.projections) {
            self.count_projection_rows(&p.name, c);
            if p.from_template {
                self.count_table_rows(&p.name, &p.table.to_string(), c);
            }
        }
        if committed_any {
            self.db_write_seconds.observe(took.as_secs_f64());
            self.transactions_committed.inc();
        }
        self.pool_in_use.set(i64::from(pool_in_use));
    }

    /// Count what a template projection's statements did to one of its tables.
    fn count_table_rows(&self, projection: &str, table: &str, c: &crate::project::Counts) {
        for (outcome, n) in c.outcomes() {
            if n > 0 {
                let mut labels = table_label(projection, table);
                labels.push(("outcome".to_string(), LabelValue(outcome.to_string())));
                self.projection_table_rows.get_or_create(&labels).inc_by(n);
            }
        }
        if c.ignored_fields > 0 {
            self.projection_table_ignored_fields.get_or_create(&table_label(projection, table)).inc_by(c.ignored_fields);
        }
    }

    /// Count columns `add_columns` added to a table.
    pub(crate) fn count_columns_added(&self, projection: &str, table: &str, n: u64) {
        self.projection_columns_added.get_or_create(&table_label(projection, table)).inc_by(n);
    }

    /// Count what a projection's statements did (a commit's or a redrive's).
    pub fn count_projection_rows(&self, projection: &str, c: &crate::project::Counts) {
        for (outcome, n) in c.outcomes() {
            if n > 0 {
                self.projection_rows.get_or_create(&projection_label(projection, "outcome", outcome)).inc_by(n);
            }
        }
        for (what, n) in c.skips() {
            if n > 0 {
                self.projection_skipped.get_or_create(&projection_label(projection, "what", what.name())).inc_by(n);
            }
        }
        let only = |n: u64, family: &Family<Labels, Counter>| {
            if n > 0 {
                family.get_or_create(&label("projection", projection)).inc_by(n);
            }
        };
        only(c.truncates, &self.projection_truncates);
        only(c.ignored_fields, &self.projection_ignored_fields);
    }
}

pub fn label(k: &str, v: impl Into<String>) -> Labels {
    vec![(k.to_string(), LabelValue(v.into()))]
}

/// A label value as the text format writes one (the client writes values as they are, and a
/// table a change event names may hold a backslash, a quote or a newline).
fn escaped(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A projection's and one of its tables' labels.
fn table_label(projection: &str, table: &str) -> Labels {
    vec![("projection".to_string(), LabelValue(projection.to_string())), ("table".to_string(), LabelValue(escaped(table)))]
}

/// A projection's label set: `projection` and one more (`reason`, `outcome`).
pub fn projection_label(projection: &str, k: &str, v: &str) -> Labels {
    vec![("projection".to_string(), LabelValue(projection.to_string())), (k.to_string(), LabelValue(v.to_string()))]
}

/// A partition's label set: `topic` and `partition`.
pub(crate) fn partition_label(p: &crate::records::PartitionKey) -> Labels {
    vec![("topic".to_string(), LabelValue(p.topic.clone())), ("partition".to_string(), LabelValue(p.partition.to_string()))]
}
