//! Durable state: rows, dead letters and progress, written in one transaction per batch.
//!
//! [`Database`] is what the `DbWriter` owns: an r2d2 pool of Diesel connections for one backend.
//! The exactly-once invariant lives here: a batch commits only if `consumer_offsets` for its
//! partition still holds the batch's fence, and rows, dead letters and the new `next_offset`
//! commit together or not at all.

pub mod browse;
pub(crate) mod commit;
mod copy;
pub mod error;
mod offsets;
mod postgres;
pub mod project;
pub mod redrive;
pub mod refusal;
mod schema;
pub(crate) mod sqlite;
pub(crate) mod store;

use std::collections::HashMap;
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::sql_types::{BigInt, Text};
use diesel::{PgConnection, RunQueryDsl, SqliteConnection};

use crate::batches::ParsedBatch;
use crate::project::Plan;
use crate::records::PartitionKey;
pub use commit::GroupCommit;
pub use error::{Failure, StoreError};
pub use sqlite::configure_library;

/// The raw statements the benchmark harness measures the service against (`bench` feature):
/// not part of the service's interface.
#[cfg(feature = "bench")]
pub mod raw {
    pub use super::postgres::{copy_encoded_events, encode_events};
    pub use super::sqlite::insert_events;
    pub use super::store::RowRef;
}

/// Migrations embedded in the binary, per backend.
pub const POSTGRES_MIGRATIONS: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("../migrations/postgres");
pub const SQLITE_MIGRATIONS: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("../migrations/sqlite");

/// Pool and backend options.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// SQLite: the connections' WAL is copied back by a [`sqlite::Checkpointer`] (the writer's),
    /// so they checkpoint by themselves only at [`sqlite::WAL_BACKSTOP_PAGES`] (otherwise at
    /// SQLite's 1,000). Harmless where none runs (the redriver's pool, `migrate`).
    pub checkpoint_in_background: bool,
}

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// `postgres://` / `postgresql://` or `sqlite://PATH` (`sqlite:PATH` also accepted).
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// The file path of a `sqlite://` URL.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url)
}

type PgPool = Pool<ConnectionManager<PgConnection>>;
type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;

/// The database the writer owns: one pool for one backend.
#[derive(Clone)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Postgres(p) => write!(f, "Database::Postgres({:?})", p.state()),
            Database::Sqlite(p) => write!(f, "Database::Sqlite({:?})", p.state()),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct ReasonCount {
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct LabelCount {
    #[diesel(sql_type = Text)]
    label: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Counts for reports (demo summary): rows, dead letters by reason, committed progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub rows: i64,
    pub dead_letters: Vec<(String, i64)>,
    pub committed: i64,
}

fn checkout<C: diesel::r2d2::R2D2Connection + 'static>(
    pool: &Pool<ConnectionManager<C>>,
) -> Result<PooledConnection<ConnectionManager<C>>, StoreError> {
    Ok(pool.get()?)
}

/// Run the same Diesel code against whichever backend's connection this is.
macro_rules! with_conn {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            Database::Postgres(pool) => {
                let mut c = checkout(pool)?;
                let $conn = &mut *c;
                let result = $body;
                result
            }
            Database::Sqlite(pool) => {
                let mut c = checkout(pool)?;
                let $conn = &mut *c;
                let result = $body;
                result
            }
        }
    };
}

impl Database {
    /// Build the pool. PostgreSQL connections are made lazily, so a database that is down at
    /// start-up delays ingestion instead of failing it. SQLite gets one connection per writer
    /// (it has one write lock anyway) and the file is created if missing.
    pub fn open(opts: &DatabaseOptions) -> Result<Self, StoreError> {
        match Backend::of_url(&opts.url) {
            Some(Backend::Postgres) => Ok(Database::Postgres(
                Pool::builder()
                    .max_size(opts.pool_size.max(1))
                    .min_idle(Some(0))
                    .connection_timeout(opts.connect_timeout)
                    // A connection cut during an outage must not come back out of the pool.
                    .test_on_check_out(true)
                    .build_unchecked(ConnectionManager::<PgConnection>::new(&opts.url)),
            )),
            Some(Backend::Sqlite) => {
                sqlite::configure_library();
                let path = sqlite_path(&opts.url);
                if path.is_empty() {
                    return Err(StoreError::Fatal(Failure::Condition("sqlite URL has no file path (use sqlite://path/to/file.db)".into())));
                }
                Ok(Database::Sqlite(
                    Pool::builder()
                        .max_size(opts.pool_size.max(1))
                        .min_idle(Some(0))
                        .connection_timeout(opts.connect_timeout)
                        .connection_customizer(Box::new(sqlite::Pragmas {
                            busy_timeout_ms: opts.connect_timeout.as_millis() as u64,
                            wal_autocheckpoint: if opts.checkpoint_in_background { sqlite::WAL_BACKSTOP_PAGES } else { 1000 },
                        }))
                        .build_unchecked(ConnectionManager::<SqliteConnection>::new(path)),
                ))
            }
            None => Err(StoreError::Fatal(Failure::Condition(
                format!("unsupported database.url scheme in {:?}", crate::redact::database_url(&opts.url)).into(),
            ))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Database::Postgres(_) => Backend::Postgres,
            Database::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Run pending embedded migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        use diesel_migrations::MigrationHarness;
        let migrations = match self.backend() {
            Backend::Postgres => POSTGRES_MIGRATIONS,
            Backend::Sqlite => SQLITE_MIGRATIONS,
        };
        with_conn!(self, c => c
            .run_pending_migrations(migrations)
            .map(|applied| applied.into_iter().map(|v| v.to_string()).collect())
            .map_err(|e| StoreError::fatal("migration failed", e)))
    }

    /// Cheap round trip proving the database answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        with_conn!(self, c => diesel::sql_query("SELECT 1").execute(c)?);
        Ok(())
    }

    /// The stored progress of `group` for these partitions (absent: never committed).
    pub fn load_offsets(&self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError> {
        match self {
            Database::Postgres(p) => postgres::load_offsets(&mut *checkout(p)?, group, parts),
            Database::Sqlite(p) => sqlite::load_offsets(&mut *checkout(p)?, group, parts),
        }
    }

    /// Commit batches of distinct partitions in one transaction: fences, rows, dead letters,
    /// progress (see [`commit::commit_group`]).
    pub fn commit_group(&self, group: &str, plan: &Plan, batches: &[ParsedBatch], buf: &mut Vec<u8>) -> Result<GroupCommit, StoreError> {
        match self {
            Database::Postgres(p) => commit::commit_group(&mut *checkout(p)?, group, plan, batches, buf),
            Database::Sqlite(p) => commit::commit_group(&mut *checkout(p)?, group, plan, batches, buf),
        }
    }

    /// Create the tables of projections with `create_table`, then check every projection
    /// against its table and complete its column types (fails naming projection, key and fix);
    /// returns the warnings to log.
    pub fn prepare_projections(&self, plan: &mut Plan) -> Result<Vec<String>, project::SetupError> {
        let unavailable = |source: StoreError| project::SetupError::Store { projection: String::new(), source };
        match self {
            Database::Postgres(p) => project::prepare(&mut *checkout(p).map_err(unavailable)?, &mut plan.projections),
            Database::Sqlite(p) => project::prepare(&mut *checkout(p).map_err(unavailable)?, &mut plan.projections),
        }
    }

    /// SQLite: copy the whole WAL back and let the next transaction start it from the beginning
    /// (see [`sqlite::Checkpointer`]). PostgreSQL: nothing to do.
    pub fn restart_wal(&self, busy_timeout: Duration) -> Result<sqlite::Rewind, StoreError> {
        match self {
            Database::Postgres(_) => Ok(sqlite::Rewind::Done),
            Database::Sqlite(p) => sqlite::restart_wal(&mut *checkout(p)?, busy_timeout.as_millis() as u64),
        }
    }

    /// Rows, dead letters by reason (for `topic`) and committed progress (for `group`).
    pub fn totals(&self, topic: &str, group: &str) -> Result<Totals, StoreError> {
        let (rows, dead_letters) = with_conn!(self, c => {
            let rows = diesel::sql_query("SELECT count(*) AS n FROM events WHERE topic = $1")
                .bind::<Text, _>(topic)
                .get_result::<Count>(c)?
                .n;
            let dead_letters = diesel::sql_query("SELECT reason, count(*) AS n FROM dead_letters WHERE topic = $1 GROUP BY reason ORDER BY reason")
                .bind::<Text, _>(topic)
                .load::<ReasonCount>(c)?
                .into_iter()
                .map(|r| (r.reason, r.n))
                .collect();
            Ok::<_, StoreError>((rows, dead_letters))
        })?;
        Ok(Totals { rows, dead_letters, committed: self.committed(group)? })
    }

    /// The rows of a report query selecting `label` (text) and `n` (a count), e.g. a projection's
    /// table by status for the demo's summary.
    pub fn grouped_counts(&self, query: &str) -> Result<Vec<(String, i64)>, StoreError> {
        with_conn!(self, c => Ok(diesel::sql_query(query).load::<LabelCount>(c)?.into_iter().map(|r| (r.label, r.n)).collect()))
    }

    /// Committed progress of `group`: the sum of its `next_offset`s (one cheap query).
    pub fn committed(&self, group: &str) -> Result<i64, StoreError> {
        with_conn!(self, c => Ok(diesel::sql_query("SELECT CAST(COALESCE(sum(next_offset), 0) AS BIGINT) AS n FROM consumer_offsets WHERE group_id = $1")
            .bind::<Text, _>(group)
            .get_result::<Count>(c)?
            .n))
    }

    /// Connections checked out right now.
    pub fn connections_in_use(&self) -> u32 {
        let s = match self {
            Database::Postgres(p) => p.state(),
            Database::Sqlite(p) => p.state(),
        };
        s.connections - s.idle_connections
    }
}
