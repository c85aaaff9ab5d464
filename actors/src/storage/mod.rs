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

use backend::Store;

use crate::batches::ParsedBatch;
use crate::project::Plan;
use crate::records::PartitionKey;
pub use backend::DatabaseOptions;
pub(crate) use backend::{Totals, Upkeep};
pub(crate) use commit::GroupCommit;
pub(crate) use error::{Failure, StoreError};
pub use kind::Backend;
pub(crate) use project::tables::{Tables, Told};
pub use sqlite::{configure_library, sqlite_path};

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
        let mut c: diesel::SqliteConnection = diesel::Connection::establish(super::sqlite::sqlite_path(url)).expect("open SQLite");
        super::sqlite::Pragmas { busy_timeout_ms: 10_000, wal_autocheckpoint: 1000 }.on_acquire(&mut c).expect("pragmas");
        c
    }
}

/// Every backend tributary has, each described by its own module: adding one is a module and a
/// line here.
const BACKENDS: [&kind::Kind; 2] = [&postgres::KIND, &sqlite::KIND];

impl Backend {
    /// The backend a `database.url` names, by its scheme.
    pub fn of_url(url: &str) -> Option<Backend> {
        BACKENDS.into_iter().find(|k| k.prefixes.iter().any(|p| url.starts_with(p))).map(Backend)
    }

    /// What `database.url` takes, for an error's fix.
    pub fn schemes() -> String {
        BACKENDS.map(|k| k.example).join(" or ")
    }
}

/// The database the writer owns: one pool for one backend, behind the one seam every backend
/// fills (`backend::Conn`).
#[derive(Clone)]
pub struct Database {
    store: Arc<dyn Store>,
    backend: Backend,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({:?}, {:?})", self.backend, self.store.pool_state())
    }
}

impl Database {
    /// Build the pool of the backend the URL names (each backend's module says how: see
    /// `storage::kind`).
    pub fn open(opts: &DatabaseOptions) -> Result<Self, StoreError> {
        let backend = Backend::of_url(&opts.url).ok_or_else(|| {
            StoreError::Fatal(Failure::Condition(
                format!("unsupported database.url scheme in {:?}", crate::redact::database_url(&opts.url)).into(),
            ))
        })?;
        Ok(Database { store: (backend.0.open)(opts)?, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Run pending embedded migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.store.migrate()
    }

    /// Cheap round trip proving the database answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.store.ping()
    }

    /// The stored progress of `group` for these partitions (absent: never committed).
    pub fn load_offsets(&self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError> {
        self.store.load_offsets(group, parts)
    }

    /// Commit batches of distinct partitions in one transaction: fences, rows, dead letters,
    /// progress (see [`commit::commit_group`]).
    pub(crate) fn commit_group(
        &self,
        group: &str,
        tables: &mut Tables,
        batches: &[ParsedBatch],
        buf: &mut Vec<u8>,
    ) -> Result<GroupCommit, StoreError> {
        self.store.commit_group(group, tables, batches, buf)
    }

    /// Create the tables of projections with `create_table`, then check every projection
    /// against its table and complete its column types (fails naming projection, key and fix);
    /// returns the warnings to log.
    pub fn prepare_projections(&self, plan: &mut Plan) -> Result<Vec<String>, project::SetupError> {
        self.store.prepare_projections(plan)
    }

    /// The upkeep a writer runs after its commits (SQLite: its WAL kept short by a checkpointer
    /// of the writer's own), if the backend has any.
    pub(crate) fn upkeep(&self, log: &slog::Logger) -> Option<Box<dyn Upkeep>> {
        self.store.upkeep(log)
    }

    /// Rows, dead letters by reason (for `topic`) and committed progress (for `group`).
    pub fn totals(&self, topic: &str, group: &str) -> Result<Totals, StoreError> {
        self.store.totals(topic, group)
    }

    /// The rows of a report query selecting `label` (text) and `n` (a count), e.g. a projection's
    /// table by status for the demo's summary.
    pub fn grouped_counts(&self, query: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.store.grouped_counts(query)
    }

    /// Committed progress of `group`: the sum of its `next_offset`s (one cheap query).
    pub fn committed(&self, group: &str) -> Result<i64, StoreError> {
        self.store.committed(group)
    }

    /// Connections checked out right now.
    pub fn connections_in_use(&self) -> u32 {
        self.store.connections_in_use()
    }

    /// Redrive the dead letters `filter` selects, re-parsed with `opts` (see `redrive`).
    pub fn redrive(
        &self,
        filter: &redrive::RedriveFilter,
        opts: &crate::parse::ParseOptions,
    ) -> Result<redrive::RedriveReport, StoreError> {
        self.store.redrive(filter, opts)
    }

    /// A page of dead letters (see `browse`).
    pub fn list_dead_letters(&self, f: &redrive::Selection) -> Result<browse::DeadLetterPage, StoreError> {
        self.store.list_dead_letters(f)
    }

    /// One dead letter whole, `None` when there is none at `key`.
    pub fn dead_letter(&self, key: &redrive::DeadLetterKey) -> Result<Option<browse::DeadLetterDetail>, StoreError> {
        self.store.dead_letter(key)
    }
}
