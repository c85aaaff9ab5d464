//! The seam between the service and a database: a backend's module implements [`Conn`] for its
//! connection type (with the traits of the group commit, the projections, their catalog checks
//! and the redrive), and every storage call is written once here over any such connection's
//! pool ([`Store`]). Another database is another module (its `Kind`, see `storage::kind`) and a
//! line in `storage::BACKENDS`.

use std::collections::HashMap;
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection, R2D2Connection};

use super::browse::{self, DeadLetterDetail, DeadLetterPage};
use super::commit::{self, GroupCommit};
use super::project::lookup::Lookup;
use super::project::tables::Tables;
use super::project::{self, Catalog, ProjectStore, SetupError};
use super::redrive::{DeadLetterKey, RedriveFilter, RedriveReport, RedriveStore, Selection};
use super::StoreError;
use crate::batches::ParsedBatch;
use crate::parse::ParseOptions;
use crate::project::Plan;
use crate::records::PartitionKey;

/// Pool and backend options.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// SQLite: the connections' WAL is copied back by a checkpointer (`storage/sqlite/wal.rs`) (the writer's),
    /// so they checkpoint by themselves only at `sqlite::WAL_BACKSTOP_PAGES` (otherwise at
    /// SQLite's 1,000). Harmless where none runs (the redriver's pool, `migrate`).
    pub checkpoint_in_background: bool,
}

/// Work a writer does after each commit of its own, by backend (SQLite keeps its WAL short).
pub(crate) trait Upkeep: Send {
    /// A transaction of `bytes` of records committed.
    fn after_commit(&mut self, bytes: usize);
}

/// What a database's connection does besides the group commit's, projections' and redrive's
/// statements (their own traits): the statements whose SQL or transaction differs by backend.
pub(crate) trait Conn: ProjectStore + Catalog + Lookup + RedriveStore + R2D2Connection + Send + 'static {
    /// Run pending embedded migrations; the versions applied.
    fn migrate(&mut self) -> Result<Vec<String>, StoreError>;
    /// The stored progress of `group` for these partitions (absent: never committed).
    fn load_offsets(&mut self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError>;
    /// One count (`n`) a query with one text parameter gives.
    fn count(&mut self, sql: &str, text: &str) -> Result<i64, StoreError>;
    /// The (`label`, `n`) rows of a query with at most one text parameter.
    fn label_counts(&mut self, sql: &str, text: Option<&str>) -> Result<Vec<(String, i64)>, StoreError>;
    /// The redrive in the transaction this backend runs it in (see `storage::redrive`).
    fn redrive(&mut self, filter: &RedriveFilter, opts: &ParseOptions) -> Result<RedriveReport, StoreError>;
    /// A page of dead letters' rows (see `storage::browse`).
    fn dead_letter_rows(&mut self, f: &Selection) -> Result<Vec<browse::Row>, StoreError>;
    /// One dead letter whole.
    fn dead_letter_whole(&mut self, key: &DeadLetterKey) -> Result<Option<browse::Whole>, StoreError>;
    /// The writer's upkeep after its commits over `pool` (opened with `opts`); none by default.
    fn upkeep(_pool: &Pool<ConnectionManager<Self>>, _opts: &DatabaseOptions, _log: &slog::Logger) -> Option<Box<dyn Upkeep>>
    where
        Self: Sized,
    {
        None
    }
}

/// Every storage call, over one backend's pool (object-safe: `Database` holds one).
pub(crate) trait Store: Send + Sync {
    fn migrate(&self) -> Result<Vec<String>, StoreError>;
    fn ping(&self) -> Result<(), StoreError>;
    fn load_offsets(&self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError>;
    fn commit_group(&self, group: &str, tables: &mut Tables, batches: &[ParsedBatch], buf: &mut Vec<u8>)
        -> Result<GroupCommit, StoreError>;
    fn prepare_projections(&self, plan: &mut Plan) -> Result<Vec<String>, SetupError>;
    fn upkeep(&self, log: &slog::Logger) -> Option<Box<dyn Upkeep>>;
    fn totals(&self, topic: &str, group: &str) -> Result<Totals, StoreError>;
    fn grouped_counts(&self, query: &str) -> Result<Vec<(String, i64)>, StoreError>;
    fn committed(&self, group: &str) -> Result<i64, StoreError>;
    fn connections_in_use(&self) -> u32;
    fn redrive(&self, filter: &RedriveFilter, opts: &ParseOptions) -> Result<RedriveReport, StoreError>;
    fn list_dead_letters(&self, f: &Selection) -> Result<DeadLetterPage, StoreError>;
    fn dead_letter(&self, key: &DeadLetterKey) -> Result<Option<DeadLetterDetail>, StoreError>;
    fn pool_state(&self) -> diesel::r2d2::State;
}

/// Counts for reports (demo summary): rows, dead letters by reason, committed progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub rows: i64,
    pub dead_letters: Vec<(String, i64)>,
    pub committed: i64,
}

/// A count a query gives (`n`).
#[derive(diesel::QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) n: i64,
}

/// A labelled count a query gives (`label`, `n`).
#[derive(diesel::QueryableByName)]
pub(crate) struct LabelCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub(crate) label: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) n: i64,
}

/// The [`Conn`] methods whose statements are the same text on every backend, for each backend's
/// `impl Conn` to expand (Diesel's types differ per backend). `MIGRATIONS`, `migration_lock` and
/// `load_offsets` (`offsets::offset_statements!`) must be that backend's, in scope.
macro_rules! conn_statements {
    () => {
        fn migrate(&mut self) -> Result<Vec<String>, $crate::storage::StoreError> {
            use diesel_migrations::MigrationHarness;
            // Under the backend's lock: members starting together on a new database would
            // otherwise both find a migration pending and race to create its tables.
            migration_lock(self, |c| {
                c.run_pending_migrations(MIGRATIONS)
                    .map(|applied| applied.into_iter().map(|v| v.to_string()).collect())
                    .map_err(|e| $crate::storage::StoreError::fatal("migration failed", e))
            })
        }

        fn load_offsets(
            &mut self,
            group: &str,
            parts: &[$crate::records::PartitionKey],
        ) -> Result<std::collections::HashMap<$crate::records::PartitionKey, i64>, $crate::storage::StoreError> {
            load_offsets(self, group, parts)
        }

        fn count(&mut self, sql: &str, text: &str) -> Result<i64, $crate::storage::StoreError> {
            use diesel::RunQueryDsl;
            Ok(diesel::sql_query(sql).bind::<diesel::sql_types::Text, _>(text).get_result::<$crate::storage::backend::Count>(self)?.n)
        }

        fn label_counts(&mut self, sql: &str, text: Option<&str>) -> Result<Vec<(String, i64)>, $crate::storage::StoreError> {
            use diesel::RunQueryDsl;
            let rows: Vec<$crate::storage::backend::LabelCount> = match text {
                Some(t) => diesel::sql_query(sql).bind::<diesel::sql_types::Text, _>(t).load(self)?,
                None => diesel::sql_query(sql).load(self)?,
            };
            Ok(rows.into_iter().map(|r| (r.label, r.n)).collect())
        }
    };
}

pub(super) use conn_statements;

const COMMITTED: &str = "SELECT CAST(COALESCE(sum(next_offset), 0) AS BIGINT) AS n FROM consumer_offsets WHERE group_id = $1";

/// A pool as `opts` size it, its connections made on demand (none opened ahead).
pub(crate) fn pool_builder<M: diesel::r2d2::ManageConnection>(opts: &DatabaseOptions) -> diesel::r2d2::Builder<M> {
    Pool::builder().max_size(opts.pool_size.max(1)).min_idle(Some(0)).connection_timeout(opts.connect_timeout)
}

/// A backend's pool and what it was opened with.
pub(crate) struct Pooled<C: R2D2Connection + 'static> {
    pub(crate) pool: Pool<ConnectionManager<C>>,
    pub(crate) opts: DatabaseOptions,
}

impl<C: Conn> Store for Pooled<C> {
    fn migrate(&self) -> Result<Vec<String>, StoreError> {
        checkout(&self.pool)?.migrate()
    }

    fn ping(&self) -> Result<(), StoreError> {
        checkout(&self.pool)?.label_counts("SELECT 'up' AS label, CAST(1 AS BIGINT) AS n", None).map(drop)
    }

    fn load_offsets(&self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError> {
        checkout(&self.pool)?.load_offsets(group, parts)
    }

    fn commit_group(
        &self,
        group: &str,
        tables: &mut Tables,
        batches: &[ParsedBatch],
        buf: &mut Vec<u8>,
    ) -> Result<GroupCommit, StoreError> {
        commit::commit_group(&mut *checkout(&self.pool)?, group, tables, batches, buf)
    }

    fn prepare_projections(&self, plan: &mut Plan) -> Result<Vec<String>, SetupError> {
        let unavailable = |source: StoreError| SetupError::Store { projection: String::new(), source };
        project::prepare(&mut *checkout(&self.pool).map_err(unavailable)?, &mut plan.projections)
    }

    fn upkeep(&self, log: &slog::Logger) -> Option<Box<dyn Upkeep>> {
        C::upkeep(&self.pool, &self.opts, log)
    }

    fn totals(&self, topic: &str, group: &str) -> Result<Totals, StoreError> {
        let mut c = checkout(&self.pool)?;
        let rows = c.count("SELECT count(*) AS n FROM events WHERE topic = $1", topic)?;
        let dead_letters = c.label_counts(
            "SELECT reason AS label, count(*) AS n FROM dead_letters WHERE topic = $1 GROUP BY reason ORDER BY reason",
            Some(topic),
        )?;
        Ok(Totals { rows, dead_letters, committed: c.count(COMMITTED, group)? })
    }

    fn grouped_counts(&self, query: &str) -> Result<Vec<(String, i64)>, StoreError> {
        checkout(&self.pool)?.label_counts(query, None)
    }

    fn committed(&self, group: &str) -> Result<i64, StoreError> {
        checkout(&self.pool)?.count(COMMITTED, group)
    }

    fn connections_in_use(&self) -> u32 {
        let s = self.pool.state();
        s.connections - s.idle_connections
    }

    fn redrive(&self, filter: &RedriveFilter, opts: &ParseOptions) -> Result<RedriveReport, StoreError> {
        checkout(&self.pool)?.redrive(filter, opts)
    }

    fn list_dead_letters(&self, f: &Selection) -> Result<DeadLetterPage, StoreError> {
        Ok(browse::page(checkout(&self.pool)?.dead_letter_rows(f)?, f))
    }

    fn dead_letter(&self, key: &DeadLetterKey) -> Result<Option<DeadLetterDetail>, StoreError> {
        Ok(checkout(&self.pool)?.dead_letter_whole(key)?.map(browse::detail))
    }

    fn pool_state(&self) -> diesel::r2d2::State {
        self.pool.state()
    }
}

fn checkout<C: R2D2Connection + 'static>(pool: &Pool<ConnectionManager<C>>) -> Result<PooledConnection<ConnectionManager<C>>, StoreError> {
    Ok(pool.get()?)
}
