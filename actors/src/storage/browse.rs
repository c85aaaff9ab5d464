//! Reading dead letters for an operator (`GET /dead-letters`, `GET /dead-letters/{key}`):
//! pages in `(topic, partition, offset)` order with the same keyset cursor the redrive uses,
//! and one dead letter whole. Read-only: no lock is taken.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text};
use serde::Serialize;

use super::redrive::Selection;

/// Default and largest page of `GET /dead-letters`.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

/// One dead letter in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterSummary {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub detail: String,
    pub sqlstate: Option<String>,
    pub failed_at: Option<String>,
    pub redriven_at: Option<String>,
    pub payload_bytes: i64,
}

/// A page, lowest `(topic, partition, offset)` first; `next` is the cursor for the following
/// page when this one is full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterSummary>,
    /// topic/partition/offset: pass it as `after` for the next page.
    pub next: Option<String>,
}

/// One dead letter whole: the record's bytes (base64) and its headers as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub summary: DeadLetterSummary,
    pub key_base64: Option<String>,
    pub payload_base64: Option<String>,
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    pub kafka_timestamp: Option<String>,
    /// A payload in the schema registry's wire format, decoded with the registry's schema now
    /// (only with `[schema_registry]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<crate::parse::Inspected>,
}

#[derive(QueryableByName)]
pub(crate) struct Row {
    #[diesel(sql_type = Text)]
    topic: String,
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    offset: i64,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Text)]
    detail: String,
    #[diesel(sql_type = Nullable<Text>)]
    sqlstate: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    failed_at_ms: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    redriven_at_ms: Option<i64>,
    #[diesel(sql_type = BigInt)]
    payload_bytes: i64,
}

#[derive(QueryableByName)]
pub(crate) struct Whole {
    #[diesel(embed)]
    columns: Row,
    #[diesel(sql_type = Nullable<Binary>)]
    key: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    payload: Option<Vec<u8>>,
    #[diesel(sql_type = Text)]
    headers: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    kafka_timestamp_ms: Option<i64>,
}

/// Epoch milliseconds as RFC 3339 UTC, the same text on both backends.
fn stamp(ms: Option<i64>) -> Option<String> {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl From<Row> for DeadLetterSummary {
    fn from(r: Row) -> Self {
        DeadLetterSummary {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            reason: r.reason,
            detail: r.detail,
            sqlstate: r.sqlstate,
            failed_at: stamp(r.failed_at_ms),
            redriven_at: stamp(r.redriven_at_ms),
            payload_bytes: r.payload_bytes,
        }
    }
}

/// The columns of a summary, timestamps as epoch ms (`ms(col)`: the backend's expression).
fn columns(ms: fn(&str) -> String) -> String {
    format!(
        "topic, partition, \"offset\", reason, detail, sqlstate, {} AS failed_at_ms, {} AS redriven_at_ms, \
         CAST(COALESCE(length(payload), 0) AS BIGINT) AS payload_bytes",
        ms("failed_at"),
        ms("redriven_at")
    )
}

/// A page's query (bound with `bind_selection!`): `numbered` placeholders (`$4`, PostgreSQL's)
/// or SQLite's `?4`, epoch milliseconds by `ms`.
pub(crate) fn page_sql(f: &Selection, numbered: bool, ms: fn(&str) -> String) -> String {
    let limit = if numbered { "$4" } else { "?4" };
    format!("SELECT {} FROM dead_letters WHERE {} ORDER BY topic, partition, \"offset\" LIMIT {limit}", columns(ms), f.conditions(numbered))
}

/// One dead letter's query, bound with its topic, partition and offset; `headers`: the column as text.
pub(crate) fn whole_sql(numbered: bool, ms: fn(&str) -> String, headers: &str) -> String {
    let p = |n: u8| if numbered { format!("${n}") } else { format!("?{n}") };
    format!(
        "SELECT {}, key, payload, {headers} AS headers, {} AS kafka_timestamp_ms FROM dead_letters \
         WHERE topic = {} AND partition = {} AND \"offset\" = {}",
        columns(ms),
        ms("kafka_timestamp"),
        p(1),
        p(2),
        p(3)
    )
}

/// A page of rows as the API answers it, with the cursor of the next.
pub(crate) fn page(rows: Vec<Row>, f: &Selection) -> DeadLetterPage {
    let items: Vec<DeadLetterSummary> = rows.into_iter().map(DeadLetterSummary::from).collect();
    let next = f.next(items.len(), items.last().map(|d| (d.topic.as_str(), d.partition, d.offset)));
    DeadLetterPage { items, next }
}

/// A dead letter whole as the API answers it.
pub(crate) fn detail(w: Whole) -> DeadLetterDetail {
    let b64 = |b: Option<Vec<u8>>| b.map(|b| base64::engine::general_purpose::STANDARD.encode(b));
    DeadLetterDetail {
        summary: w.columns.into(),
        key_base64: b64(w.key),
        payload_base64: b64(w.payload),
        // Stored by this service as a JSON object; kept as text if it somehow is not.
        headers: serde_json::from_str(&w.headers).unwrap_or(serde_json::Value::String(w.headers)),
        kafka_timestamp: stamp(w.kafka_timestamp_ms),
        decoded: None,
    }
}
