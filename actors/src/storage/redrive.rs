//! Redrive: re-parse stored dead letters with the current parser settings and ingest the ones
//! that now pass, in one transaction per call.
//!
//! Exactly once: the selected dead letters are locked for the transaction (PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so a concurrent redrive takes other rows; SQLite `BEGIN IMMEDIATE`,
//! one writer at a time). Each one that now parses is inserted into `events` through the same
//! path as an ingested batch (binary `COPY` / multi-row `INSERT`) and gets its `redriven_at` in
//! the same transaction, so a repeated redrive no longer selects it; the `events` primary key
//! refuses a second copy anyway. Those that still fail stay, with their reason and detail
//! updated to what the current settings say.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text};
use serde::{Deserialize, Serialize};

use super::commit::insert_refusing;
use super::project::lookup::Lookup;
use super::project::tables::{Msg, Tables};
use super::project::{Catalog, Counts, ProjectStore};
use super::store::{GroupStore, RowRef};
use super::StoreError;
use crate::parse::route::{route_message, Routed};
use crate::parse::ParseOptions;
use crate::project::Op;
use crate::records::Reason;
use crate::records::{EventRow, PartitionKey, RawMessage};

/// Default number of dead letters one redrive selects.
pub const DEFAULT_LIMIT: u32 = 1000;
/// Most dead letters one redrive may select (one transaction).
pub const MAX_LIMIT: u32 = 10_000;

/// Where a dead letter sits: `topic/partition/offset` as text (Kafka topic names hold no `/`),
/// the cursor of a redrive that goes through a large set call by call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadLetterKey {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for DeadLetterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

impl std::str::FromStr for DeadLetterKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const SHAPE: &str = "expected topic/partition/offset, as a redrive's `next` gives it";
        let mut parts = s.rsplitn(3, '/');
        let (offset, partition, topic) = (parts.next(), parts.next(), parts.next());
        match (topic, partition.and_then(|p| p.parse().ok()), offset.and_then(|o| o.parse().ok())) {
            (Some(topic), Some(partition), Some(offset)) if !topic.is_empty() && partition >= 0 && offset >= 0 => {
                Ok(DeadLetterKey { topic: topic.to_string(), partition, offset })
            }
            _ => Err(SHAPE.to_string()),
        }
    }
}

/// Which dead letters a redrive or a listing takes: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub reason: Option<String>,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    /// Only those after this one: the `next` of the previous call, so that a set is gone
    /// through once (for a redrive: however many of its rows still fail).
    pub after: Option<DeadLetterKey>,
    /// At most this many, lowest (topic, partition, offset) first.
    pub limit: u32,
}

impl Selection {
    /// The cursor after a page that took `taken` rows ending at `last`: when the page is full
    /// there may be more; a page that came up short ends the set (`None`).
    pub(super) fn next(&self, taken: usize, last: Option<(&str, i32, i64)>) -> Option<String> {
        let (topic, partition, offset) = last.filter(|_| taken >= self.limit as usize)?;
        Some(DeadLetterKey { topic: topic.to_string(), partition, offset }.to_string())
    }

    /// The conditions for this selection's values: placeholders `1`–`3` reason, topic,
    /// partition and `5`–`7` the cursor (`4` is the limit). A filter given is a plain comparison
    /// — the cursor a row value — that the planner can take to the primary key (SQLite plans
    /// before it sees the values, so `? IS NULL OR …` would scan from the start on every
    /// page); one not given is its placeholder compared with NULL, so the binds stay in place.
    pub(super) fn conditions(&self, postgres: bool) -> String {
        let p = |n: u8, ty: &str| if postgres { format!("${n}::{ty}") } else { format!("?{n}") };
        let unset = |n: u8, ty: &str| format!("{} IS NULL", p(n, ty));
        let one = |given: bool, n: u8, ty: &str, column: &str| if given { format!("{column} = {}", p(n, ty)) } else { unset(n, ty) };
        let cursor = match self.after {
            Some(_) => format!("(topic, partition, \"offset\") > ({}, {}, {})", p(5, "text"), p(6, "int4"), p(7, "int8")),
            None => format!("{} AND {} AND {}", unset(5, "text"), unset(6, "int4"), unset(7, "int8")),
        };
        [
            one(self.reason.is_some(), 1, "text", "reason"),
            one(self.topic.is_some(), 2, "text", "topic"),
            one(self.partition.is_some(), 3, "int4", "partition"),
            cursor,
        ]
        .join(" AND ")
    }
}

/// Bind a [`Selection`] to a query written with its [`Selection::conditions`].
macro_rules! bind_selection {
    ($query:expr, $s:expr) => {{
        let s: &$crate::storage::redrive::Selection = $s;
        let after = s.after.as_ref();
        $query
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(s.reason.as_deref())
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(s.topic.as_deref())
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Integer>, _>(s.partition)
            .bind::<diesel::sql_types::BigInt, _>(i64::from(s.limit))
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(after.map(|a| a.topic.as_str()))
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Integer>, _>(after.map(|a| a.partition))
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>, _>(after.map(|a| a.offset))
    }};
}
pub(crate) use bind_selection;

/// Which dead letters to redrive (only those not redriven yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveFilter {
    pub select: Selection,
    /// Select and re-parse, but write nothing.
    pub dry_run: bool,
}

/// Counts for one original reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReasonCounts {
    pub selected: u64,
    pub redriven: u64,
    pub still_failing: u64,
}

/// What a redrive did (or, dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedriveReport {
    pub selected: u64,
    pub redriven: u64,
    pub still_failing: u64,
    /// Keyed by the reason the dead letter had before this redrive.
    pub by_reason: BTreeMap<String, ReasonCounts>,
    pub dry_run: bool,
    /// The last dead letter selected when the call took as many as its limit (there may be
    /// more: pass it as `after`); `None` when the selection is exhausted.
    pub next: Option<String>,
    /// What the redriven messages did to each projection's table, by projection name (those
    /// that changed or were offered anything; none on a dry run).
    #[serde(default)]
    pub projections: BTreeMap<String, Counts>,
}

impl RedriveReport {
    fn count(&mut self, reason: &str, redriven: bool) {
        let r = self.by_reason.entry(reason.to_string()).or_default();
        r.selected += 1;
        self.selected += 1;
        if redriven {
            r.redriven += 1;
            self.redriven += 1;
        } else {
            r.still_failing += 1;
            self.still_failing += 1;
        }
    }
}

/// Kafka headers in record order, as [`RawMessage`] holds them: names and values as bytes.
pub(crate) type Headers = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A dead letter that now passes: its `events` row (when the archive is on) and its
/// projections' ops (none: the archive only, or skipped as unrouted).
struct Passed {
    offset: i64,
    row: Option<EventRow>,
    ops: Vec<Op>,
    /// The record when it has no row (a template projection's ops are made from it).
    record: Option<RawMessage>,
}

/// What now passes, by (topic, partition), each with its dead letter's former reason.
type Reparsed = BTreeMap<(String, i32), Vec<(Passed, String)>>;

/// A stored dead letter turned back into the record it came from.
struct Candidate {
    topic: String,
    partition: i32,
    msg: RawMessage,
    reason: String,
    detail: String,
}

/// A dead letter that still fails, with what the current settings say about it.
pub(crate) struct StillFailing {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The reason stored before this redrive.
    pub(crate) old_reason: String,
    pub(crate) reason: String,
    pub(crate) detail: String,
    pub(crate) changed: bool,
}

/// The pure part: re-parse every candidate and route it through the projections (as the
/// parser does an ingested message). What now passes, grouped by partition, and what still fails.
fn reparse(candidates: Vec<Candidate>, opts: &ParseOptions) -> (Reparsed, Vec<StillFailing>) {
    let mut rows = Reparsed::new();
    let mut failing = Vec::new();
    for Candidate { topic, partition, msg, reason, detail } in candidates {
        let offset = msg.offset;
        let passed = match route_message(msg, &topic, partition, opts) {
            Routed::Row { row, ops } => Passed { offset, row: Some(row), ops, record: None },
            Routed::Projected { ops, record } => Passed { offset, row: None, ops, record: Some(record) },
            // Unrouted and skipped, as an ingested message would be: done.
            Routed::Skipped => Passed { offset, row: None, ops: Vec::new(), record: None },
            Routed::Dead(d) => {
                let changed = d.reason.code() != reason || d.detail != detail;
                let new_reason = d.reason.code().to_string();
                failing.push(StillFailing { topic, partition, offset, old_reason: reason, reason: new_reason, detail: d.detail, changed });
                continue;
            }
        };
        rows.entry((topic, partition)).or_default().push((passed, reason));
    }
    (rows, failing)
}

/// The inverse of [`crate::parse::headers_json`]: strings, `null`, `{"base64": …}` values and
/// `{"name_base64": …}` names back to raw header bytes, in stored order. (PostgreSQL's jsonb
/// keeps one value per name.)
pub(crate) fn headers_from_json(text: &str) -> Result<Headers, String> {
    use base64::Engine as _;
    struct Pairs(Vec<(String, serde_json::Value)>);
    impl<'de> Deserialize<'de> for Pairs {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object of headers")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                        out.push(entry);
                    }
                    Ok(Pairs(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    let Pairs(pairs) = serde_json::from_str(text).map_err(|e| format!("stored headers are not a JSON object: {e}"))?;
    let b64 = |name: &str, b: Option<&serde_json::Value>| -> Result<Option<Vec<u8>>, String> {
        match b {
            None => Ok(None),
            Some(serde_json::Value::String(b)) => {
                base64::engine::general_purpose::STANDARD.decode(b).map(Some).map_err(|e| format!("header {name}: bad base64: {e}"))
            }
            Some(_) => Err(format!("header {name}: unexpected stored value")),
        }
    };
    pairs
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::Null => Ok((name.into_bytes(), None)),
            serde_json::Value::String(s) => Ok((name.into_bytes(), Some(s.into_bytes()))),
            serde_json::Value::Object(o) => {
                let value = b64(&name, o.get("base64"))?;
                match b64(&name, o.get("name_base64"))? {
                    Some(raw_name) => Ok((raw_name, value)),
                    None => {
                        let value = value.ok_or_else(|| format!("header {name}: unexpected stored value"))?;
                        Ok((name.into_bytes(), Some(value)))
                    }
                }
            }
            _ => Err(format!("header {name}: unexpected stored value")),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn candidate(
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: &str,
    reason: String,
    detail: String,
    kafka_timestamp: Option<DateTime<Utc>>,
) -> Result<Candidate, StillFailing> {
    match headers_from_json(headers) {
        Ok(headers) => {
            let msg = RawMessage::new(
                offset,
                kafka_timestamp.map(|t| t.timestamp_millis()),
                key.as_deref(),
                payload.as_deref(),
                headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
            );
            // Its headers were never stored (librdkafka could not parse them): still so.
            let msg = if reason == Reason::UnreadableHeaders.code() { msg.with_unreadable_headers() } else { msg };
            Ok(Candidate { topic, partition, msg, reason, detail })
        }
        // Cannot happen for rows this service wrote; keep the row as it is.
        Err(_) => Err(StillFailing { topic, partition, offset, old_reason: reason.clone(), reason, detail, changed: false }),
    }
}

/// A dead letter as stored.
pub(crate) struct Stored {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: String,
    reason: String,
    detail: String,
    kafka_timestamp: Option<DateTime<Utc>>,
}

/// What a redrive needs from a backend besides the group commit's inserts.
pub(crate) trait RedriveStore: GroupStore {
    /// The dead letters not yet redriven that `filter` selects, lowest (topic, partition,
    /// offset) first, locked for the transaction unless it is a dry run.
    fn select_dead_letters(&mut self, filter: &RedriveFilter) -> Result<Vec<Stored>, StoreError>;
    fn mark_redriven(&mut self, topic: &str, partition: i32, offsets: &[i64]) -> Result<(), StoreError>;
    fn set_reason(&mut self, f: &StillFailing) -> Result<(), StoreError>;
}

/// The redrive, for either backend: select, re-parse, insert what passes (refused rows stay),
/// mark it redriven, record what the current settings say of the rest.
pub(crate) fn redrive_with<S: RedriveStore + ProjectStore + Catalog + Lookup>(
    conn: &mut S,
    filter: &RedriveFilter,
    opts: &ParseOptions,
) -> Result<RedriveReport, StoreError> {
    let mut report = RedriveReport { dry_run: filter.dry_run, ..RedriveReport::default() };
    let mut candidates = Vec::new();
    let mut failing = Vec::new();
    let selected = conn.select_dead_letters(filter)?;
    report.next = filter.select.next(selected.len(), selected.last().map(|d| (d.topic.as_str(), d.partition, d.offset)));
    for d in selected {
        match candidate(d.topic, d.partition, d.offset, d.key, d.payload, &d.headers, d.reason, d.detail, d.kafka_timestamp) {
            Ok(c) => candidates.push(c),
            Err(f) => failing.push(f),
        }
    }
    let (rows, mut still) = reparse(candidates, opts);
    still.append(&mut failing);
    for f in &still {
        report.count(&f.old_reason, false);
    }
    let mut buf = Vec::new();
    let mut tables = Tables::new(&opts.plan);
    for ((topic, partition), passed) in rows {
        let key = PartitionKey { topic: topic.clone(), partition };
        let ok = if filter.dry_run {
            vec![true; passed.len()]
        } else {
            write_passed(conn, &mut tables, &key, &passed, &mut buf, &mut report.projections)?
        };
        let mut done = Vec::new();
        for ((p, reason), ok) in passed.iter().zip(ok) {
            report.count(reason, ok);
            if ok {
                done.push(p.offset);
            }
        }
        if !filter.dry_run && !done.is_empty() {
            conn.mark_redriven(&topic, partition, &done)?;
        }
    }
    if !filter.dry_run {
        for f in still.iter().filter(|f| f.changed) {
            conn.set_reason(f)?;
        }
    }
    Ok(report)
}

/// Write what passes of one partition with the group commit's isolation of refused rows
/// (bisection in savepoints): `events` rows, then the projections' ops of the messages whose row
/// was taken. What the database refuses stays a dead letter (its `events` row removed). Returns,
/// per message, whether it was written.
fn write_passed<S: ProjectStore + Catalog + Lookup>(
    conn: &mut S,
    tables: &mut Tables,
    partition: &PartitionKey,
    passed: &[(Passed, String)],
    buf: &mut Vec<u8>,
    counts: &mut BTreeMap<String, Counts>,
) -> Result<Vec<bool>, StoreError> {
    let mut ok = vec![true; passed.len()];
    let archived: Vec<usize> = (0..passed.len()).filter(|&i| passed[i].0.row.is_some()).collect();
    let refs: Vec<RowRef<'_>> = archived.iter().filter_map(|&i| passed[i].0.row.as_ref()).map(|row| RowRef { partition, row }).collect();
    for (i, _, _) in insert_refusing(conn, &refs, buf)? {
        ok[archived[i]] = false;
    }
    // Every message with ops has its record (in its row, or its own).
    fn record(p: &Passed) -> Option<&RawMessage> {
        p.row.as_ref().map(|r| &r.original).or(p.record.as_ref())
    }
    let projected: Vec<usize> =
        (0..passed.len()).filter(|&i| ok[i] && !passed[i].0.ops.is_empty() && record(&passed[i].0).is_some()).collect();
    let msgs: Vec<Msg<'_>> = projected
        .iter()
        .flat_map(|&i| {
            let p = &passed[i].0;
            record(p).map(|record| Msg {
                topic: &partition.topic,
                partition: partition.partition,
                record,
                row: p.row.as_ref(),
                ops: &p.ops,
            })
        })
        .collect();
    let applied = tables.apply(conn, &msgs)?;
    for (p, c) in tables.plan().projections.iter().zip(&applied.counts).filter(|(_, c)| **c != Counts::default()) {
        counts.entry(p.name.clone()).or_default().add(c);
    }
    let mut unarchive = Vec::new();
    for at in applied.refused.iter().map(|r| r.at).chain(applied.unresolved.iter().map(|u| u.0)) {
        let i = projected[at];
        ok[i] = false;
        if passed[i].0.row.is_some() {
            unarchive.push((partition, passed[i].0.offset));
        }
    }
    if !unarchive.is_empty() {
        conn.delete_events(&unarchive)?;
    }
    Ok(ok)
}

/// The columns a redrive reads, the Kafka timestamp as epoch milliseconds on both backends.
#[derive(QueryableByName)]
pub(crate) struct StoredRow {
    #[diesel(sql_type = Text)]
    topic: String,
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    offset: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    key: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    payload: Option<Vec<u8>>,
    #[diesel(sql_type = Text)]
    headers: String,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Text)]
    detail: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    kafka_timestamp_ms: Option<i64>,
}

impl From<StoredRow> for Stored {
    fn from(r: StoredRow) -> Self {
        Stored {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            key: r.key,
            payload: r.payload,
            headers: r.headers,
            reason: r.reason,
            detail: r.detail,
            kafka_timestamp: r.kafka_timestamp_ms.and_then(crate::records::millis_to_utc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::headers_json;

    #[test]
    fn stored_headers_round_trip_to_the_original_bytes() {
        let headers: Headers = vec![
            (b"content-type".to_vec(), Some(b"application/json".to_vec())),
            (b"ce_id".to_vec(), Some(b"x\"y\\z".to_vec())),
            (b"binary".to_vec(), Some(vec![0xff, 0x00, 0x10])),
            (b"nul".to_vec(), Some(b"a\0b".to_vec())),
            (b"none".to_vec(), None),
            (b"dup".to_vec(), Some(b"1".to_vec())),
            (b"dup".to_vec(), Some(b"2".to_vec())),
            // Names that are not UTF-8 or hold a NUL: written lossily, kept exactly beside.
            (vec![b'n', 0xff, b'x'], Some(b"v".to_vec())),
            (vec![0xc3], None),
            (b"a\0b".to_vec(), Some(vec![0xfe])),
        ];
        let json = headers_json(headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref())));
        assert!(json.contains("\"n\u{FFFD}x [bv94]\":{\"name_base64\":\"bv94\""), "{json}");
        assert_eq!(headers_from_json(&json).unwrap(), headers);
        assert_eq!(headers_from_json("{}").unwrap(), vec![]);
        assert!(headers_from_json("[1]").is_err());
        assert!(headers_from_json(r#"{"a": 1}"#).is_err());
        assert!(headers_from_json(r#"{"a": {}}"#).is_err());
        assert!(headers_from_json(r#"{"a": {"name_base64": "!"}}"#).is_err());
    }

    #[test]
    fn a_selection_compares_only_what_it_is_given_and_keeps_every_placeholder() {
        let none = Selection { limit: 10, ..Selection::default() };
        assert_eq!(none.conditions(false), "?1 IS NULL AND ?2 IS NULL AND ?3 IS NULL AND ?5 IS NULL AND ?6 IS NULL AND ?7 IS NULL");
        let after = DeadLetterKey { topic: "t".into(), partition: 1, offset: 7 };
        let some = Selection { topic: Some("t".into()), after: Some(after), ..none };
        assert_eq!(
            some.conditions(true),
            "$1::text IS NULL AND topic = $2::text AND $3::int4 IS NULL AND (topic, partition, \"offset\") > ($5::text, $6::int4, $7::int8)"
        );
    }

    #[test]
    fn a_dead_letter_key_reads_back_what_it_writes_and_refuses_anything_else() {
        let key = DeadLetterKey { topic: "shop.orders-v2_x".into(), partition: 3, offset: 1_000_000 };
        assert_eq!(key.to_string(), "shop.orders-v2_x/3/1000000");
        assert_eq!(key.to_string().parse::<DeadLetterKey>(), Ok(key));
        for bad in ["", "t", "t/1", "/1/2", "t/x/2", "t/1/y", "t/-1/2", "t/1/-2", "t/1/2/"] {
            assert!(bad.parse::<DeadLetterKey>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reparse_splits_rows_and_still_failing() {
        let msg = |offset, payload: &[u8]| RawMessage::new(offset, Some(1), None, Some(payload), []);
        let cand = |offset, payload: &[u8]| Candidate {
            topic: "t".into(),
            partition: 0,
            msg: msg(offset, payload),
            reason: "oversize".into(),
            detail: "old".into(),
        };
        let opts = ParseOptions { max_message_bytes: 10, ..ParseOptions::default() };
        let (rows, still) = reparse(vec![cand(1, br#"{"a":1}"#), cand(2, br#"{"a":"0123456789"}"#), cand(3, b"[1]")], &opts);
        assert_eq!(rows[&("t".to_string(), 0)].iter().map(|(r, _)| r.offset).collect::<Vec<_>>(), vec![1]);
        assert!(rows[&("t".to_string(), 0)].iter().all(|(r, _)| r.row.is_some() && r.ops.is_empty()), "archived, no projection");
        assert_eq!(
            still.iter().map(|f| (f.offset, f.reason.as_str(), f.changed)).collect::<Vec<_>>(),
            vec![(2, "oversize", true), (3, "not_an_object", true)]
        );
    }

    #[test]
    fn a_dead_letter_whose_headers_were_unreadable_stays_one() {
        let detail = "librdkafka could not parse the record's headers";
        let c = candidate("t".into(), 0, 5, None, Some(br#"{"a":1}"#.to_vec()), "{}", "unreadable_headers".into(), detail.into(), None)
            .ok()
            .unwrap();
        let (rows, still) = reparse(vec![c], &ParseOptions::default());
        assert!(rows.is_empty(), "not a row without its headers");
        assert_eq!(still.iter().map(|f| f.reason.as_str()).collect::<Vec<_>>(), vec!["unreadable_headers"]);
        // Any other dead letter with the same bytes parses now.
        let c = candidate("t".into(), 0, 6, None, Some(br#"{"a":1}"#.to_vec()), "{}", "oversize".into(), "old".into(), None).ok().unwrap();
        assert_eq!(reparse(vec![c], &ParseOptions::default()).0.len(), 1);
    }
}
