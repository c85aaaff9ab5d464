//! PostgreSQL: the group commit's statements — offset fences, streamed binary `COPY` of rows and
//! dead letters.

use std::cell::RefCell;

use diesel::pg::CopyFormat;
use diesel::prelude::*;

use super::backend::{pool_builder, Conn, Pooled};
use super::browse;
use super::copy::CopyEncoder;
use super::kind::{Kind, UrlProblem};
use super::redrive::{
    bind_selection, redrive_with, DeadLetterKey, RedriveFilter, RedriveReport, RedriveStore, Selection, StillFailing, Stored, StoredRow,
};
use super::schema::pg::{consumer_offsets, dead_letters, events};
use super::store::{DeadRef, GroupStore, RowRef};
use super::StoreError;
use crate::batches::Fence;
use crate::parse::ParseOptions;
use crate::records::{EventRow, PartitionKey};
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::{Array, BigInt, Integer, Text};
use std::sync::Arc;

/// PostgreSQL as a backend (see `storage::kind`): `postgres://` or `postgresql://` URLs, libpq's own.
pub(super) const KIND: Kind = Kind {
    name: "Postgres",
    prefixes: &["postgres://", "postgresql://"],
    example: "postgres://user:password@host:5432/db",
    check_url,
    open: |opts| {
        let pool = pool_builder(opts)
            // A connection cut during an outage must not come back out of the pool.
            .test_on_check_out(true)
            // Connections are made lazily: a database down at start-up delays ingestion
            // instead of failing it.
            .build_unchecked(ConnectionManager::<PgConnection>::new(&opts.url));
        Ok(Arc::new(Pooled { pool, opts: opts.clone() }))
    },
    writers: |pool_size| pool_size.max(1) as usize,
    // One transaction's commit overlaps the next one's COPY.
    concurrent_commits: |pool_size| pool_size.clamp(1, 2) as usize,
    // libpq tells a refused connection's SQLSTATE.
    probes_refusal: true,
    shell: |_, shown| format!("psql {shown}"),
};

fn check_url(url: &str) -> Result<(), UrlProblem> {
    if let Some(port) = url_port(url).filter(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(UrlProblem::new(format!("port {port:?} is not a port (1 to 65535)"), "use postgres://user:password@host:5432/db"));
    }
    // libpq's own parser, which `run` uses: a URL it refuses is refused here, and its words are
    // not repeated (they quote the offending part, which may be the password).
    if !super::refusal::libpq_parses(url) {
        return Err(UrlProblem::new(
            format!("libpq cannot parse {}", crate::redact::database_url(url)),
            "check its syntax; percent-encode reserved characters of the user and password (% as %25, @ as %40, / as %2F)",
        ));
    }
    Ok(())
}

/// The port of a URL's authority, if it names one (not for several hosts or a bare IPv6 address).
fn url_port(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.contains(',') || host_port.ends_with(']') {
        return None;
    }
    host_port.rsplit_once(':').map(|(_, p)| p)
}

/// The migrations embedded in the binary.
pub(super) const MIGRATIONS: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("../migrations/postgres");

/// The advisory lock members take around migrations ("tributa" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_7269_6275_7461;

/// `f` while this session holds the migration lock: a second member waits, then finds nothing
/// pending.
fn migration_lock<T>(c: &mut PgConnection, f: impl FnOnce(&mut PgConnection) -> Result<T, StoreError>) -> Result<T, StoreError> {
    diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK).execute(c)?;
    let done = f(c);
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK).execute(c);
    let done = done?;
    unlocked?;
    Ok(done)
}

super::offsets::offset_statements!(PgConnection, diesel::dsl::now);

/// Tuples encoded per chunk of a streamed `COPY`: the buffer stays small, whatever the group.
const COPY_CHUNK: usize = 256;

/// Stream `items` to a binary `COPY` in chunks, encoding each into the reused `buf`.
fn copy_chunks<T>(
    w: &mut dyn std::io::Write,
    items: &[T],
    buf: &RefCell<&mut Vec<u8>>,
    encode: impl Fn(&mut CopyEncoder<'_>, &T),
) -> Result<(), diesel::result::Error> {
    let io = |err: std::io::Error| diesel::result::Error::SerializationError(Box::new(err));
    let mut buf = buf.borrow_mut();
    let chunks = items.len().div_ceil(COPY_CHUNK).max(1);
    for (i, chunk) in items.chunks(COPY_CHUNK).chain(items.is_empty().then_some(&items[..0])).enumerate() {
        let mut enc = if i == 0 { CopyEncoder::new(&mut buf) } else { CopyEncoder::resume(&mut buf) };
        for item in chunk {
            encode(&mut enc, item);
        }
        let data = if i + 1 == chunks { enc.finish() } else { enc.written() };
        w.write_all(data).map_err(io)?;
    }
    Ok(())
}

/// One `events` tuple.
pub(super) fn encode_event(enc: &mut CopyEncoder<'_>, topic: &str, partition: i32, r: &EventRow) {
    enc.tuple(13);
    enc.text(Some(topic));
    enc.int4(partition);
    enc.int8(r.offset);
    enc.bytes(r.key());
    enc.text(r.event_id());
    enc.text(r.source());
    enc.text(r.event_type());
    enc.text(r.subject());
    enc.timestamptz(r.time);
    enc.text(r.datacontenttype());
    enc.jsonb(r.data());
    enc.jsonb(Some(r.headers()));
    enc.timestamptz(r.kafka_timestamp);
}

/// `COPY events FROM STDIN (FORMAT binary)`; `write` produces the binary data.
fn copy_events_with(
    conn: &mut PgConnection,
    write: impl Fn(&mut dyn std::io::Write) -> Result<(), diesel::result::Error>,
) -> Result<usize, StoreError> {
    use events::dsl as e;
    Ok(diesel::copy_from(events::table)
        .from_raw_data(
            (
                e::topic,
                e::partition,
                e::offset,
                e::key,
                e::event_id,
                e::source,
                e::event_type,
                e::subject,
                e::time,
                e::datacontenttype,
                e::data,
                e::headers,
                e::kafka_timestamp,
            ),
            write,
        )
        .with_format(CopyFormat::Binary)
        .execute(conn)?)
}

/// Rows of several partitions, streamed in chunks.
pub(super) fn copy_events(conn: &mut PgConnection, rows: &[RowRef<'_>], buf: &mut Vec<u8>) -> Result<usize, StoreError> {
    let buf = RefCell::new(buf);
    copy_events_with(conn, |w| copy_chunks(w, rows, &buf, |enc, r| encode_event(enc, &r.partition.topic, r.partition.partition, r.row)))
}

/// Encode rows of one partition as one complete binary COPY stream (the bench's prepared data).
#[cfg(feature = "bench")]
pub fn encode_events<'b>(topic: &str, partition: i32, rows: &[EventRow], buf: &'b mut Vec<u8>) -> &'b [u8] {
    let mut enc = CopyEncoder::new(buf);
    for r in rows {
        encode_event(&mut enc, topic, partition, r);
    }
    enc.finish()
}

/// `COPY` already encoded data (from [`encode_events`]).
#[cfg(feature = "bench")]
pub fn copy_encoded_events(conn: &mut PgConnection, data: &[u8]) -> Result<usize, StoreError> {
    copy_events_with(conn, |w| w.write_all(data).map_err(|err| diesel::result::Error::SerializationError(Box::new(err))))
}

fn copy_dead_letters(conn: &mut PgConnection, dead: &[DeadRef<'_>], buf: &mut Vec<u8>) -> Result<usize, StoreError> {
    use dead_letters::dsl as d;
    let buf = RefCell::new(buf);
    Ok(diesel::copy_from(dead_letters::table)
        .from_raw_data(
            (d::topic, d::partition, d::offset, d::key, d::payload, d::headers, d::reason, d::detail, d::sqlstate, d::kafka_timestamp),
            |w: &mut dyn std::io::Write| {
                copy_chunks(w, dead, &buf, |enc, DeadRef { partition, dead: x }| {
                    enc.tuple(10);
                    enc.text(Some(&partition.topic));
                    enc.int4(partition.partition);
                    enc.int8(x.offset);
                    enc.bytes(x.key.as_deref());
                    enc.bytes(x.payload.as_deref());
                    enc.jsonb(Some(&x.headers));
                    enc.text(Some(x.reason.code()));
                    enc.text(Some(&x.detail));
                    enc.text(x.sqlstate.as_deref());
                    enc.timestamptz(x.kafka_timestamp);
                })
            },
        )
        .with_format(CopyFormat::Binary)
        .execute(conn)?)
}

impl GroupStore for PgConnection {
    fn in_transaction<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.transaction(f)
    }

    fn in_savepoint<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        // Inside a transaction, Diesel's nested transaction is a savepoint.
        self.transaction(f)
    }

    fn advance(&mut self, group: &str, key: &PartitionKey, fence: Fence, next: i64) -> Result<bool, StoreError> {
        advance_offset(self, group, key, fence, next)
    }

    fn current_offset(&mut self, group: &str, key: &PartitionKey) -> Result<Option<i64>, StoreError> {
        current_offset(self, group, key)
    }

    fn insert_events(&mut self, rows: &[RowRef<'_>], buf: &mut Vec<u8>) -> Result<(), StoreError> {
        copy_events(self, rows, buf).map(drop)
    }

    fn insert_dead_letters(&mut self, dead: &[DeadRef<'_>], buf: &mut Vec<u8>) -> Result<(), StoreError> {
        copy_dead_letters(self, dead, buf).map(drop)
    }
}

/// A timestamp column as epoch milliseconds (bigint).
pub(crate) fn epoch_ms(col: &str) -> String {
    format!("CAST(round(extract(epoch FROM {col}) * 1000) AS BIGINT)")
}

impl Conn for PgConnection {
    super::backend::conn_statements!();

    fn redrive(&mut self, filter: &RedriveFilter, opts: &ParseOptions) -> Result<RedriveReport, StoreError> {
        self.transaction(|c| redrive_with(c, filter, opts))
    }

    fn dead_letter_rows(&mut self, f: &Selection) -> Result<Vec<browse::Row>, StoreError> {
        Ok(bind_selection!(diesel::sql_query(browse::page_sql(f, true, epoch_ms)), f).load(self)?)
    }

    fn dead_letter_whole(&mut self, key: &DeadLetterKey) -> Result<Option<browse::Whole>, StoreError> {
        Ok(diesel::sql_query(browse::whole_sql(true, epoch_ms, "headers::text"))
            .bind::<Text, _>(&key.topic)
            .bind::<Integer, _>(key.partition)
            .bind::<BigInt, _>(key.offset)
            .load::<browse::Whole>(self)?
            .pop())
    }
}

impl RedriveStore for PgConnection {
    fn select_dead_letters(&mut self, filter: &RedriveFilter) -> Result<Vec<Stored>, StoreError> {
        // SKIP LOCKED: rows another redrive holds are left to it, never waited for and redone.
        let lock = if filter.dry_run { "" } else { "FOR UPDATE SKIP LOCKED" };
        let query = diesel::sql_query(format!(
            "SELECT topic, partition, \"offset\", key, payload, headers::text AS headers, reason, detail, \
                    {} AS kafka_timestamp_ms \
             FROM dead_letters WHERE redriven_at IS NULL AND {} ORDER BY topic, partition, \"offset\" LIMIT $4 {lock}",
            epoch_ms("kafka_timestamp"),
            filter.select.conditions(true)
        ));
        let rows: Vec<StoredRow> = bind_selection!(query, &filter.select).load(self)?;
        Ok(rows.into_iter().map(Stored::from).collect())
    }

    fn mark_redriven(&mut self, topic: &str, partition: i32, offsets: &[i64]) -> Result<(), StoreError> {
        diesel::sql_query("UPDATE dead_letters SET redriven_at = now() WHERE topic = $1 AND partition = $2 AND \"offset\" = ANY($3)")
            .bind::<Text, _>(topic)
            .bind::<Integer, _>(partition)
            .bind::<Array<BigInt>, _>(offsets)
            .execute(self)?;
        Ok(())
    }

    fn set_reason(&mut self, f: &StillFailing) -> Result<(), StoreError> {
        diesel::sql_query("UPDATE dead_letters SET reason = $4, detail = $5 WHERE topic = $1 AND partition = $2 AND \"offset\" = $3")
            .bind::<Text, _>(&f.topic)
            .bind::<Integer, _>(f.partition)
            .bind::<BigInt, _>(f.offset)
            .bind::<Text, _>(&f.reason)
            .bind::<Text, _>(&f.detail)
            .execute(self)?;
        Ok(())
    }
}
