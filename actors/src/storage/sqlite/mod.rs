//! SQLite: the embedded backend. The same group commit as PostgreSQL — fences, rows, dead
//! letters, progress in one transaction — with multi-row prepared inserts instead of `COPY`.
//!
//! `BEGIN IMMEDIATE` takes the write lock up front, so two writers never deadlock upgrading a
//! read lock; WAL keeps readers (HTTP, `sqlite3` shells) from blocking the writer.

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::r2d2::CustomizeConnection;
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::backend::{Conn, Count, DatabaseOptions, LabelCount, Upkeep};
use super::browse;
use super::kind::Backend;
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
use std::collections::HashMap;

/// Rows per INSERT statement: full chunks go through [`FullChunk`], prepared once per connection
/// and reused; only a shorter tail is prepared anew. 13 binds a row stays far below SQLite's
/// 32,766-variable limit.
const ROWS_PER_STATEMENT: usize = 128;

/// Bytes of records committed after which the writer rewinds the WAL (`wal_checkpoint(RESTART)`
/// between two transactions). SQLite starts the WAL over only when a write transaction begins
/// with every frame copied back and no reader in it, which a writer that never pauses leaves to
/// chance: nothing else bounds the WAL. It stays within a small multiple of this.
pub(crate) const WAL_REWIND_BYTES: usize = 8 << 20;

/// Bytes of records committed between two wake-ups of the [`Checkpointer`]'s thread: every
/// transaction touches the same B-tree pages (where each partition inserts), so fewer passes
/// write them back fewer times. A pass also runs before a rewind is due (which then copies back
/// only one commit's frames, on the writer's thread) and after a quiet second.
pub(crate) const WAL_PASS_BYTES: usize = 3 << 20;

/// A [`Checkpointer`] not woken for this long runs a pass anyway (one with nothing to copy
/// costs next to nothing).
const IDLE_PASS: std::time::Duration = std::time::Duration::from_secs(1);

/// SQLite's auto-checkpoint threshold on connections whose WAL a [`Checkpointer`] copies back
/// (SQLite's default is 1,000 pages): rarely reached, it covers a checkpointer that could not start.
pub(crate) const WAL_BACKSTOP_PAGES: u32 = 4000;

/// Connection set-up applied to every pooled connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pragmas {
    pub busy_timeout_ms: u64,
    /// `wal_autocheckpoint` (SQLite's default is 1,000 pages).
    pub wal_autocheckpoint: u32,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        // synchronous=NORMAL in WAL mode keeps every commit atomic (rows and progress together);
        // a power cut may drop the last commits, which are then simply re-read from Kafka.
        // A small page cache per connection: inserts touch only the B-trees' right edges, and
        // every pooled connection fills its own.
        conn.batch_execute(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = {}; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -4000; PRAGMA wal_autocheckpoint = {};",
            self.busy_timeout_ms, self.wal_autocheckpoint
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Copies the WAL back into the database file on a connection and thread of its own, so the
/// writer — the pipeline's bottleneck on SQLite — does not (reading frames back, writing pages,
/// two fsyncs). Woken every
/// [`WAL_PASS_BYTES`] of records committed (wake-ups while a pass runs fold into one), it runs a
/// PASSIVE checkpoint, which never blocks the writer or readers; every [`WAL_REWIND_BYTES`] the
/// writer rewinds the WAL (see [`Checkpointer::after_commit`]). Dropping it stops the thread
/// after the pass under way.
pub(crate) struct Checkpointer {
    wake: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Held through each pass and through the writer's rewind: the rewind never meets a pass
    /// (SQLite runs one checkpoint at a time and would refuse it).
    running: std::sync::Arc<std::sync::Mutex<()>>,
    /// Bytes committed since the WAL was last rewound, and the rewind threshold.
    since_rewind: std::cell::Cell<usize>,
    rewind_bytes: usize,
    /// Bytes committed since the thread was last woken, and the wake-up threshold.
    since_pass: std::cell::Cell<usize>,
    pass_bytes: usize,
    /// Wake-ups sent (for tests).
    wakes: std::cell::Cell<u64>,
}

/// The row `PRAGMA wal_checkpoint` answers.
#[derive(QueryableByName)]
struct CheckpointRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
}

impl Checkpointer {
    /// Open a connection to `path` and start the thread; it is woken every `pass_bytes` of
    /// records ([`WAL_PASS_BYTES`]) and the WAL is rewound every `rewind_bytes`
    /// ([`WAL_REWIND_BYTES`]).
    pub(crate) fn start(
        path: &str,
        busy_timeout_ms: u64,
        pass_bytes: usize,
        rewind_bytes: usize,
        log: slog::Logger,
    ) -> Result<Self, StoreError> {
        use diesel::connection::SimpleConnection;
        let mut conn = SqliteConnection::establish(path).map_err(|e| StoreError::fatal("sqlite checkpointer", e))?;
        conn.batch_execute(&format!("PRAGMA busy_timeout = {busy_timeout_ms};"))?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let running = std::sync::Arc::new(std::sync::Mutex::new(()));
        let passes = running.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                // Woken by commits, or after a quiet second: what the last commits left in the
                // WAL (less than `pass_bytes`) does not wait for the next burst.
                while !matches!(woken.recv_timeout(IDLE_PASS), Err(std::sync::mpsc::RecvTimeoutError::Disconnected)) {
                    let _pass = passes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<CheckpointRow>(&mut conn) {
                        Ok(_) => {
                            if failing {
                                failing = false;
                                slog::info!(log, "sqlite checkpoints succeed again");
                            }
                        }
                        Err(e) => {
                            // The writer's rewinds copy everything back meanwhile.
                            if !failing {
                                failing = true;
                                slog::warn!(log, "sqlite checkpoint failed; the writer's WAL rewinds copy it back until it succeeds"; "error" => e.to_string());
                            }
                        }
                    }
                }
            })
            .map_err(|e| StoreError::fatal("cannot start the sqlite checkpointer", e))?;
        Ok(Self {
            wake: Some(wake),
            thread: Some(thread),
            running,
            since_rewind: std::cell::Cell::new(0),
            rewind_bytes,
            since_pass: std::cell::Cell::new(0),
            pass_bytes,
            wakes: std::cell::Cell::new(0),
        })
    }

    /// A transaction of `bytes` of records committed: rewind the WAL with `restart` (which runs
    /// [`restart_wal`] on the writer's connection, outside any transaction) once enough has been
    /// committed since the last rewind, else wake the thread once `pass_bytes` have been committed
    /// since its last wake-up or before a rewind is due (it checkpoints when it is free). A
    /// rewind the WAL could not have (a reader stayed in it) is tried again after the next
    /// `rewind_bytes`, not after every commit: each try may wait for readers. Returns the
    /// rewind's outcome when one was due.
    pub(crate) fn after_commit(
        &self,
        bytes: usize,
        restart: impl FnOnce() -> Result<Rewind, StoreError>,
    ) -> Result<Option<Rewind>, StoreError> {
        let since = self.since_rewind.get().saturating_add(bytes);
        if since >= self.rewind_bytes {
            self.since_rewind.set(0);
            // Waits for a pass under way (a few milliseconds: it copies what the last commits
            // added, the pass before the rewind below being due). No pass is woken after a
            // rewind: it would find nothing to copy.
            let _pass = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let rewound = restart();
            // Rewound, everything was copied back: the next pass counts from here. Not, this
            // commit's bytes wait for the next pass like any other's.
            self.since_pass.set(if matches!(rewound, Ok(Rewind::Done)) { 0 } else { self.since_pass.get().saturating_add(bytes) });
            return rewound.map(Some);
        }
        self.since_rewind.set(since);
        let pass = self.since_pass.get().saturating_add(bytes);
        // A pass is also due when another commit of this size would bring the rewind: the
        // rewind, on the writer's thread, then copies back only what that commit adds.
        if pass < self.pass_bytes && since.saturating_add(bytes) < self.rewind_bytes {
            self.since_pass.set(pass);
            return Ok(None);
        }
        self.since_pass.set(0);
        self.wakes.set(self.wakes.get() + 1);
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
        Ok(None)
    }
}

/// How long a rewind waits for readers to leave the WAL (a `sqlite3` shell, a backup): the
/// writer waits with it, so briefly; a rewind that gives up is tried again later.
pub(crate) const REWIND_WAIT_MS: u64 = 50;

/// What a WAL rewind did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rewind {
    /// Everything copied back: the next transaction starts the WAL from the beginning.
    Done,
    /// A reader (or another checkpoint) was still in the WAL: an expected condition, tried
    /// again later.
    InUse,
}

/// Copy the whole WAL back and make the next transaction start it from the beginning, waiting up
/// to [`REWIND_WAIT_MS`] for readers still in the WAL; then the connection's busy timeout is
/// `busy_timeout_ms` again.
pub(crate) fn restart_wal(conn: &mut SqliteConnection, busy_timeout_ms: u64) -> Result<Rewind, StoreError> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(&format!("PRAGMA busy_timeout = {REWIND_WAIT_MS};"))?;
    let row = diesel::sql_query("PRAGMA wal_checkpoint(RESTART)").get_result::<CheckpointRow>(conn);
    conn.batch_execute(&format!("PRAGMA busy_timeout = {busy_timeout_ms};"))?;
    // busy: another connection's checkpoint, or a reader still in the WAL.
    Ok(if row?.busy != 0 { Rewind::InUse } else { Rewind::Done })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Process-wide SQLite settings, applied once before the first connection opens (SQLite takes
/// them only before it initialises; later calls are refused and change nothing).
///
/// - Multi-thread mode instead of serialized: a connection is never used by two threads at once
///   (a pooled Diesel connection is `Send`, not `Sync`), so the per-connection mutex that every
///   bind and step takes buys nothing.
/// - No memory statistics: with them every SQLite allocation takes a global mutex.
pub fn configure_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use libsqlite3_sys::{sqlite3_config, SQLITE_CONFIG_MEMSTATUS, SQLITE_CONFIG_MULTITHREAD};
        // SAFETY: sqlite3_config is documented safe to call before sqlite3_initialize (it returns
        // SQLITE_MISUSE afterwards and changes nothing); both options take the documented
        // arguments (none; one int).
        unsafe {
            sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
            sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int);
        }
    });
}

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

/// Rewinds in a row that find the WAL in use (each after another 8 MiB of records) before the
/// writer warns that it grows.
const WAL_IN_USE_WARN_AFTER: u32 = 8;

/// A writer's upkeep on SQLite: its [`Checkpointer`] copies the WAL back beside it, and every
/// [`WAL_REWIND_BYTES`] the writer rewinds the WAL between two transactions.
struct WalKeeper {
    checkpointer: Checkpointer,
    pool: Pool<ConnectionManager<SqliteConnection>>,
    busy_timeout_ms: u64,
    /// Rewinds in a row that found the WAL in use.
    in_use: u32,
    log: slog::Logger,
}

impl Upkeep for WalKeeper {
    fn after_commit(&mut self, bytes: usize) {
        let (pool, busy) = (&self.pool, self.busy_timeout_ms);
        // Committed already: a rewind that cannot be had is tried again after the next 8 MiB.
        match self.checkpointer.after_commit(bytes, || restart_wal(&mut *pool.get()?, busy)) {
            Ok(None) => {}
            Ok(Some(Rewind::Done)) => {
                if self.in_use >= WAL_IN_USE_WARN_AFTER {
                    slog::info!(self.log, "the sqlite WAL is rewound again"; "tries" => self.in_use);
                }
                self.in_use = 0;
            }
            Ok(Some(Rewind::InUse)) => {
                // Expected now and then (a reader, the checkpointer's pass); worth a word only
                // when it lasts, as the WAL then grows.
                self.in_use += 1;
                if self.in_use == WAL_IN_USE_WARN_AFTER {
                    slog::warn!(self.log, "the sqlite WAL cannot be rewound: a reader stays in it, so it grows until the reader leaves"; "tries" => self.in_use);
                } else {
                    slog::debug!(self.log, "sqlite WAL in use; rewinding later"; "tries" => self.in_use);
                }
            }
            Err(e) => slog::warn!(self.log, "could not rewind the sqlite WAL; trying again later"; "error" => e.to_string()),
        }
    }
}

/// A timestamp column (RFC 3339 text) as epoch milliseconds (integer).
pub(crate) fn epoch_ms(col: &str) -> String {
    format!("CAST(round(unixepoch({col}, 'subsec') * 1000) AS INTEGER)")
}

impl Conn for SqliteConnection {
    const BACKEND: Backend = Backend::Sqlite;

    fn migrate(&mut self) -> Result<Vec<String>, StoreError> {
        use diesel_migrations::MigrationHarness;
        self.run_pending_migrations(MIGRATIONS)
            .map(|applied| applied.into_iter().map(|v| v.to_string()).collect())
            .map_err(|e| StoreError::fatal("migration failed", e))
    }

    fn load_offsets(&mut self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError> {
        load_offsets(self, group, parts)
    }

    fn count(&mut self, sql: &str, text: &str) -> Result<i64, StoreError> {
        Ok(diesel::sql_query(sql).bind::<Text, _>(text).get_result::<Count>(self)?.n)
    }

    fn label_counts(&mut self, sql: &str, text: Option<&str>) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<LabelCount> = match text {
            Some(t) => diesel::sql_query(sql).bind::<Text, _>(t).load(self)?,
            None => diesel::sql_query(sql).load(self)?,
        };
        Ok(rows.into_iter().map(|r| (r.label, r.n)).collect())
    }

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
        if !opts.checkpoint_in_background {
            return None;
        }
        let busy_timeout_ms = opts.connect_timeout.as_millis() as u64;
        match Checkpointer::start(super::sqlite_path(&opts.url), busy_timeout_ms, WAL_PASS_BYTES, WAL_REWIND_BYTES, log.clone()) {
            Ok(checkpointer) => {
                Some(Box::new(WalKeeper { checkpointer, pool: pool.clone(), busy_timeout_ms, in_use: 0, log: log.clone() }))
            }
            Err(e) => {
                slog::error!(log, "no background checkpoints: the writer checkpoints the WAL by itself"; "error" => e.to_string());
                None
            }
        }
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
