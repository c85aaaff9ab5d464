//! SQLite: the embedded backend. The same group commit as PostgreSQL — fences, rows, dead
//! letters, progress in one transaction — with multi-row prepared inserts instead of `COPY`.
//!
//! `BEGIN IMMEDIATE` takes the write lock up front, so two writers never deadlock upgrading a
//! read lock; WAL keeps readers (HTTP, `sqlite3` shells) from blocking the writer.

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::backend::{Conn, DatabaseOptions, Upkeep};
use super::browse;
use super::redrive::{
    bind_selection, redrive_with, DeadLetterKey, RedriveFilter, RedriveReport, RedriveStore, Selection, StillFailing, Stored, StoredRow,
};
use super::schema::sqlite::{consumer_offsets, dead_letters, events};
use super::store::{DeadRef, GroupStore, RowRef};
use super::StoreError;
use crate::batches::Fence;
use crate::parse::ParseOptions;
use crate::records::PartitionKey;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::{BigInt, Integer, Text};

mod kind;
mod wal;

/// The bench's SQLite connections are set up as the pool's.
#[cfg(feature = "bench")]
pub(crate) use kind::Pragmas;
pub(crate) use kind::KIND;
pub use kind::{configure_library, sqlite_path};

/// Rows per INSERT statement: full chunks go through [`FullChunk`], prepared once per connection
/// and reused; only a shorter tail is prepared anew. 13 binds a row stays far below SQLite's
/// 32,766-variable limit.
const ROWS_PER_STATEMENT: usize = 128;

/// A timestamp as the SQLite tables hold it: RFC 3339 with microseconds and `Z`, exactly what
/// chrono's `to_rfc3339_opts(SecondsFormat::Micros, true)` writes, but into a fixed buffer by
/// digits, without a formatter and a `String` per timestamp on the writer's thread. Years outside 0000–9999 and leap
/// seconds, which the fixed layout cannot hold, go through chrono. Every timestamp tributary
/// writes to SQLite is one of these (rows, dead letters, offsets, redrives).
#[derive(Debug, diesel::expression::AsExpression)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub(super) enum Stamp {
    Fixed([u8; 27]),
    Other(String),
}

impl Stamp {
    fn new(t: DateTime<Utc>) -> Stamp {
        use chrono::{Datelike, Timelike};
        let nanos = t.nanosecond();
        let year = match u32::try_from(t.year()) {
            Ok(year @ 0..=9999) if nanos < 1_000_000_000 => year,
            _ => return Stamp::Other(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        };
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        for (end, mut value) in
            [(4, year), (7, t.month()), (10, t.day()), (13, t.hour()), (16, t.minute()), (19, t.second()), (26, nanos / 1000)]
        {
            // Right to left from `end`; the template's zeros pad (every value fits its field).
            let mut i = end;
            while value > 0 {
                i -= 1;
                b[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Stamp::Fixed(b)
    }

    fn as_str(&self) -> &str {
        match self {
            // ASCII digits and separators: the check cannot fail.
            Stamp::Fixed(b) => std::str::from_utf8(b).unwrap_or_default(),
            Stamp::Other(s) => s,
        }
    }
}

impl diesel::serialize::ToSql<diesel::sql_types::Text, Sqlite> for Stamp {
    fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, Sqlite>) -> diesel::serialize::Result {
        out.set_value(self.as_str());
        Ok(diesel::serialize::IsNull::No)
    }
}

fn ts(t: Option<DateTime<Utc>>) -> Option<Stamp> {
    t.map(Stamp::new)
}

#[derive(Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
struct NewEvent<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    event_id: Option<&'a str>,
    source: Option<&'a str>,
    event_type: Option<&'a str>,
    subject: Option<&'a str>,
    time: Option<Stamp>,
    datacontenttype: Option<&'a str>,
    data: Option<&'a str>,
    headers: &'a str,
    kafka_timestamp: Option<Stamp>,
}

#[derive(Insertable)]
#[diesel(table_name = dead_letters, treat_none_as_default_value = false)]
struct NewDeadLetter<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: &'a str,
    reason: &'a str,
    detail: &'a str,
    sqlstate: Option<&'a str>,
    kafka_timestamp: Option<Stamp>,
}

/// The migrations embedded in the binary.
pub(crate) const MIGRATIONS: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("../migrations/sqlite");

/// `f` inside an immediate transaction (the file's write lock, taken first): a second process
/// waits on it (busy timeout), then finds nothing pending. Each migration's own transaction
/// nests as a savepoint.
fn migration_lock<T>(c: &mut SqliteConnection, f: impl FnOnce(&mut SqliteConnection) -> Result<T, StoreError>) -> Result<T, StoreError> {
    c.immediate_transaction(f)
}

super::offsets::offset_statements!(SqliteConnection, now());

/// The current time as SQLite timestamps are written.
pub(super) fn now() -> Stamp {
    Stamp::new(Utc::now())
}

fn new_event(RowRef { partition, row: r }: RowRef<'_>) -> NewEvent<'_> {
    NewEvent {
        topic: &partition.topic,
        partition: partition.partition,
        offset: r.offset,
        key: r.key(),
        event_id: r.event_id(),
        source: r.source(),
        event_type: r.event_type(),
        subject: r.subject(),
        time: ts(r.time),
        datacontenttype: r.datacontenttype(),
        data: r.data(),
        headers: r.headers(),
        kafka_timestamp: ts(r.kafka_timestamp),
    }
}

/// Exactly `ROWS_PER_STATEMENT` rows in one `INSERT` whose SQL never changes. Its query id is
/// static, so Diesel prepares it once per connection and afterwards only binds and steps it;
/// Diesel's own batch insert of borrowed rows cannot have a static id (its id type carries the
/// rows' lifetime), so it parses its SQL and grows its bind buffer anew for every statement.
struct FullChunk<'a> {
    /// An array, not a `Vec`: the row count the cached statement was prepared for is the type's.
    rows: [NewEvent<'a>; ROWS_PER_STATEMENT],
}

const INSERT_EVENTS: &str = "INSERT INTO `events` (`topic`, `partition`, `offset`, `key`, `event_id`, `source`, `type`, \
    `subject`, `time`, `datacontenttype`, `data`, `headers`, `kafka_timestamp`) VALUES ";

impl QueryId for FullChunk<'_> {
    type QueryId = FullChunk<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for FullChunk<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text};
        out.push_sql(INSERT_EVENTS);
        for (i, r) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, _>(&r.topic)?;
            out.push_sql(", ");
            out.push_bind_param::<Integer, _>(&r.partition)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&r.offset)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Binary>, _>(&r.key)?;
            for text in [&r.event_id, &r.source, &r.event_type, &r.subject] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(text)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&r.time)?;
            for text in [&r.datacontenttype, &r.data] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(text)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&r.headers)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&r.kafka_timestamp)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for FullChunk<'_> {}

/// Insert rows into `events`, `ROWS_PER_STATEMENT` rows per statement: full chunks through one
/// cached prepared statement, the tail through Diesel's batch insert.
#[cfg_attr(not(feature = "bench"), allow(unreachable_pub))] // the bench's raw statements (`raw`)
pub fn insert_events(conn: &mut SqliteConnection, rows: &[RowRef<'_>]) -> Result<(), StoreError> {
    let mut chunks = rows.chunks_exact(ROWS_PER_STATEMENT);
    for chunk in &mut chunks {
        FullChunk { rows: std::array::from_fn(|i| new_event(chunk[i])) }.execute(conn)?;
    }
    let tail: Vec<NewEvent<'_>> = chunks.remainder().iter().copied().map(new_event).collect();
    if !tail.is_empty() {
        diesel::insert_into(events::table).values(&tail).execute(conn)?;
    }
    Ok(())
}

impl GroupStore for SqliteConnection {
    fn in_transaction<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.immediate_transaction(f)
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

    fn insert_events(&mut self, rows: &[RowRef<'_>], _: &mut Vec<u8>) -> Result<(), StoreError> {
        insert_events(self, rows)
    }

    fn insert_dead_letters(&mut self, dead: &[DeadRef<'_>], _: &mut Vec<u8>) -> Result<(), StoreError> {
        for chunk in dead.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<NewDeadLetter<'_>> = chunk
                .iter()
                .map(|DeadRef { partition, dead: d }| NewDeadLetter {
                    topic: &partition.topic,
                    partition: partition.partition,
                    offset: d.offset,
                    key: d.key.as_deref(),
                    payload: d.payload.as_deref(),
                    headers: &d.headers,
                    reason: d.reason.code(),
                    detail: &d.detail,
                    sqlstate: d.sqlstate.as_deref(),
                    kafka_timestamp: ts(d.kafka_timestamp),
                })
                .collect();
            diesel::insert_into(dead_letters::table).values(&rows).execute(self)?;
        }
        Ok(())
    }
}

/// A timestamp column (RFC 3339 text) as epoch milliseconds (integer).
pub(crate) fn epoch_ms(col: &str) -> String {
    format!("CAST(round(unixepoch({col}, 'subsec') * 1000) AS INTEGER)")
}

impl Conn for SqliteConnection {
    super::backend::conn_statements!();

    fn redrive(&mut self, filter: &RedriveFilter, opts: &ParseOptions) -> Result<RedriveReport, StoreError> {
        // A dry run writes nothing: no write lock.
        if filter.dry_run {
            self.transaction(|c| redrive_with(c, filter, opts))
        } else {
            self.immediate_transaction(|c| redrive_with(c, filter, opts))
        }
    }

    fn dead_letter_rows(&mut self, f: &Selection) -> Result<Vec<browse::Row>, StoreError> {
        Ok(bind_selection!(diesel::sql_query(browse::page_sql(f, false, epoch_ms)), f).load(self)?)
    }

    fn dead_letter_whole(&mut self, key: &DeadLetterKey) -> Result<Option<browse::Whole>, StoreError> {
        Ok(diesel::sql_query(browse::whole_sql(false, epoch_ms, "headers"))
            .bind::<Text, _>(&key.topic)
            .bind::<Integer, _>(key.partition)
            .bind::<BigInt, _>(key.offset)
            .load::<browse::Whole>(self)?
            .pop())
    }

    fn upkeep(pool: &Pool<ConnectionManager<Self>>, opts: &DatabaseOptions, log: &slog::Logger) -> Option<Box<dyn Upkeep>> {
        wal::keeper(pool, opts, log)
    }
}

impl RedriveStore for SqliteConnection {
    fn select_dead_letters(&mut self, filter: &RedriveFilter) -> Result<Vec<Stored>, StoreError> {
        // The transaction is BEGIN IMMEDIATE (or a dry run): nothing else writes meanwhile.
        let query = diesel::sql_query(format!(
            "SELECT topic, partition, \"offset\", key, payload, headers, reason, detail, \
                    {} AS kafka_timestamp_ms \
             FROM dead_letters WHERE redriven_at IS NULL AND {} ORDER BY topic, partition, \"offset\" LIMIT ?4",
            epoch_ms("kafka_timestamp"),
            filter.select.conditions(false)
        ));
        let rows: Vec<StoredRow> = bind_selection!(query, &filter.select).load(self)?;
        Ok(rows.into_iter().map(Stored::from).collect())
    }

    fn mark_redriven(&mut self, topic: &str, partition: i32, offsets: &[i64]) -> Result<(), StoreError> {
        use super::schema::sqlite::dead_letters::dsl as dl;
        let now = now();
        for chunk in offsets.chunks(1000) {
            diesel::update(
                dl::dead_letters.filter(dl::topic.eq(topic)).filter(dl::partition.eq(partition)).filter(dl::offset.eq_any(chunk)),
            )
            .set(dl::redriven_at.eq(Some(&now)))
            .execute(self)?;
        }
        Ok(())
    }

    fn set_reason(&mut self, f: &StillFailing) -> Result<(), StoreError> {
        use super::schema::sqlite::dead_letters::dsl as dl;
        diesel::update(
            dl::dead_letters.filter(dl::topic.eq(&f.topic)).filter(dl::partition.eq(f.partition)).filter(dl::offset.eq(f.offset)),
        )
        .set((dl::reason.eq(&f.reason), dl::detail.eq(&f.detail)))
        .execute(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
