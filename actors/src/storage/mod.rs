//! Durable state: rows, dead letters and progress, written in one transaction per batch.
//!
//! [`Database`] is what the `DbWriter` owns: an r2d2 pool of Diesel connections for one backend.
//! The exactly-once invariant lives here: a batch commits only if `consumer_offsets` for its
//! partition still holds the batch's fence, and rows, dead letters and the new `next_offset`
//! commit together or not at all.

mod backend;
pub(crate) mod browse;
pub(crate) mod commit;
mod copy;
pub(crate) mod error;
mod kind;
mod offsets;
mod postgres;
pub(crate) mod project;
pub(crate) mod redrive;
pub mod refusal;
mod schema;
pub(crate) mod sqlite;
pub(crate) mod store;

use std::collections::HashMap;

use std::sync::Arc;

use diesel::r2d2::{ConnectionManager, Pool};
use diesel::{PgConnection, SqliteConnection};

use backend::Store;

use crate::batches::ParsedBatch;
use crate::project::Plan;
use crate::records::PartitionKey;
pub use backend::DatabaseOptions;
pub(crate) use backend::{Totals, Upkeep};
pub(crate) use commit::GroupCommit;
pub(crate) use error::{Failure, StoreError};
pub use kind::{sqlite_path, Backend};
pub use sqlite::configure_library;

/// The raw statements the benchmark harness measures the service against (`bench` feature):
/// not part of the service's interface.
#[cfg(feature = "bench")]
pub mod raw {
    pub use super::postgres::{copy_encoded_events, encode_events};
    pub use super::sqlite::insert_events;
    pub use super::store::RowRef;

    /// A PostgreSQL connection of the bench's own.
    pub fn postgres_connection(url: &str) -> diesel::PgConnection {
        diesel::Connection::establish(url).expect("connect to PostgreSQL")
    }

    /// A SQLite connection as the service's pool makes them (WAL, its pragmas).
    pub fn sqlite_connection(url: &str) -> diesel::SqliteConnection {
        use diesel::r2d2::CustomizeConnection;
        let mut c: diesel::SqliteConnection = diesel::Connection::establish(super::sqlite_path(url)).expect("open SQLite");
        super::sqlite::Pragmas { busy_timeout_ms: 10_000, wal_autocheckpoint: 1000 }.on_acquire(&mut c).expect("pragmas");
        c
    }
}

/// The database the writer owns: one pool for one backend, behind the one seam every backend
/// fills (`backend::Conn`).
#[derive(Clone)]
pub struct Database(Arc<dyn Store>);

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({:?}, {:?})", self.0.backend(), self.0.pool_state())
    }
}

impl Database {
    /// Build the pool. PostgreSQL connections are made lazily, so a database that is down at
    /// start-up delays ingestion instead of failing it. SQLite gets one connection per writer
    /// (it has one write lock anyway) and the file is created if missing.
    pub fn open(opts: &DatabaseOptions) -> Result<Self, StoreError> {
        match Backend::of_url(&opts.url) {
            Some(Backend::Postgres) => Ok(Database(Arc::new(backend::Pooled {
                opts: opts.clone(),
                pool: Pool::builder()
                    .max_size(opts.pool_size.max(1))
                    .min_idle(Some(0))
                    .connection_timeout(opts.connect_timeout)
                    // A connection cut during an outage must not come back out of the pool.
                    .test_on_check_out(true)
                    .build_unchecked(ConnectionManager::<PgConnection>::new(&opts.url)),
            }))),
            Some(Backend::Sqlite) => {
                sqlite::configure_library();
                let path = sqlite_path(&opts.url);
                if path.is_empty() {
                    return Err(StoreError::Fatal(Failure::Condition("sqlite URL has no file path (use sqlite://path/to/file.db)".into())));
                }
                Ok(Database(Arc::new(backend::Pooled {
                    opts: opts.clone(),
                    pool: Pool::builder()
                        .max_size(opts.pool_size.max(1))
                        .min_idle(Some(0))
                        .connection_timeout(opts.connect_timeout)
                        .connection_customizer(Box::new(sqlite::Pragmas {
                            busy_timeout_ms: opts.connect_timeout.as_millis() as u64,
                            wal_autocheckpoint: if opts.checkpoint_in_background { sqlite::WAL_BACKSTOP_PAGES } else { 1000 },
                        }))
                        .build_unchecked(ConnectionManager::<SqliteConnection>::new(path)),
                })))
            }
            None => Err(StoreError::Fatal(Failure::Condition(
                format!("unsupported database.url scheme in {:?}", crate::redact::database_url(&opts.url)).into(),
            ))),
        }
    }

    pub fn backend(&self) -> Backend {
        self.0.backend()
    }

    /// Run pending embedded migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.0.migrate()
    }

    /// Cheap round trip proving the database answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.0.ping()
    }

    /// The stored progress of `group` for these partitions (absent: never committed).
    pub fn load_offsets(&self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError> {
        self.0.load_offsets(group, parts)
    }

    /// Commit batches of distinct partitions in one transaction: fences, rows, dead letters,
    /// progress (see [`commit::commit_group`]).
    pub fn commit_group(&self, group: &str, plan: &Plan, batches: &[ParsedBatch], buf: &mut Vec<u8>) -> Result<GroupCommit, StoreError> {
        self.0.commit_group(group, plan, batches, buf)
    }

    /// Create the tables of projections with `create_table`, then check every projection
    /// against its table and complete its column types (fails naming projection, key and fix);
    /// returns the warnings to log.
    pub fn prepare_projections(&self, plan: &mut Plan) -> Result<Vec<String>, project::SetupError> {
        self.0.prepare_projections(plan)
    }

    /// The upkeep a writer runs after its commits (SQLite: its WAL kept short by a checkpointer
    /// of the writer's own), if the backend has any.
    pub(crate) fn upkeep(&self, log: &slog::Logger) -> Option<Box<dyn Upkeep>> {
        self.0.upkeep(log)
    }

    /// Rows, dead letters by reason (for `topic`) and committed progress (for `group`).
    pub fn totals(&self, topic: &str, group: &str) -> Result<Totals, StoreError> {
        self.0.totals(topic, group)
    }

    /// The rows of a report query selecting `label` (text) and `n` (a count), e.g. a projection's
    /// table by status for the demo's summary.
    pub fn grouped_counts(&self, query: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.0.grouped_counts(query)
    }

    /// Committed progress of `group`: the sum of its `next_offset`s (one cheap query).
    pub fn committed(&self, group: &str) -> Result<i64, StoreError> {
        self.0.committed(group)
    }

    /// Connections checked out right now.
    pub fn connections_in_use(&self) -> u32 {
        self.0.connections_in_use()
    }

    /// Redrive the dead letters `filter` selects, re-parsed with `opts` (see `redrive`).
    pub fn redrive(
        &self,
        filter: &redrive::RedriveFilter,
        opts: &crate::parse::ParseOptions,
    ) -> Result<redrive::RedriveReport, StoreError> {
        self.0.redrive(filter, opts)
    }

    /// A page of dead letters (see `browse`).
    pub fn list_dead_letters(&self, f: &redrive::Selection) -> Result<browse::DeadLetterPage, StoreError> {
        self.0.list_dead_letters(f)
    }

    /// One dead letter whole, `None` when there is none at `key`.
    pub fn dead_letter(&self, key: &redrive::DeadLetterKey) -> Result<Option<browse::DeadLetterDetail>, StoreError> {
        self.0.dead_letter(key)
    }
}
