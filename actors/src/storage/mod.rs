//! Durable state: rows, dead letters and progress, written in one transaction per batch.
//!
//! [`Database`] is what the `DbWriter` owns: an r2d2 pool of Diesel connections for one backend.
//! The exactly-once invariant lives here: a batch commits only if `consumer_offsets` for its
//! partition still holds the batch's fence, and rows, dead letters and the new `next_offset`
//! commit together or not at all.

pub mod copy;
pub mod postgres;
pub mod schema;

use std::collections::HashMap;
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::PgConnection;

use crate::messages::{CommitOutcome, ParsedBatch, PartitionKey};

/// Migrations embedded in the binary, per backend.
pub const POSTGRES_MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("../migrations/postgres");

/// Why a storage call failed, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: connection refused or lost, serialization failure, server shutting down,
    /// out of resources.
    #[error("database unavailable: {0}")]
    Transient(String),
    /// The database refused the data itself (SQLSTATE classes 22, 23).
    #[error("database rejected the data: {message} (SQLSTATE {sqlstate})")]
    Rejected { sqlstate: String, message: String },
    /// Anything else: a bug or a schema mismatch; retrying will not help.
    #[error("database error: {0}")]
    Fatal(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match &e {
            E::DatabaseError(kind, info) => match kind {
                K::ClosedConnection | K::UnableToSendCommand | K::SerializationFailure => {
                    StoreError::Transient(e.to_string())
                }
                K::UniqueViolation | K::ForeignKeyViolation | K::NotNullViolation | K::CheckViolation => {
                    StoreError::Rejected { sqlstate: sqlstate_of(kind).into(), message: info.message().to_string() }
                }
                _ => classify_message(&e.to_string()),
            },
            _ => classify_message(&e.to_string()),
        }
    }
}

fn sqlstate_of(kind: &diesel::result::DatabaseErrorKind) -> &'static str {
    use diesel::result::DatabaseErrorKind as K;
    match kind {
        K::UniqueViolation => "23505",
        K::ForeignKeyViolation => "23503",
        K::NotNullViolation => "23502",
        K::CheckViolation => "23514",
        _ => "XX000",
    }
}

/// libpq reports lost connections and server shutdowns as plain text without a kind.
fn classify_message(msg: &str) -> StoreError {
    let m = msg.to_ascii_lowercase();
    let transient = [
        "connection", "server closed", "terminating", "shutting down", "could not connect", "timed out",
        "timeout", "broken pipe", "too many clients", "no connection", "ssl", "database is locked", "i/o",
    ];
    if transient.iter().any(|t| m.contains(t)) {
        StoreError::Transient(msg.to_string())
    } else {
        StoreError::Fatal(msg.to_string())
    }
}

/// Pool and backend options.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
}

/// The database the writer owns: one pool for one backend.
#[derive(Clone)]
pub enum Database {
    Postgres(Pool<ConnectionManager<PgConnection>>),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Postgres(p) => write!(f, "Database::Postgres({:?})", p.state()),
        }
    }
}

impl Database {
    /// Build the pool. Connections are made lazily, so a database that is down at start-up
    /// delays ingestion instead of failing it.
    pub fn open(opts: &DatabaseOptions) -> Result<Self, StoreError> {
        if opts.url.starts_with("postgres://") || opts.url.starts_with("postgresql://") {
            let pool = Pool::builder()
                .max_size(opts.pool_size.max(1))
                .min_idle(Some(0))
                .connection_timeout(opts.connect_timeout)
                .test_on_check_out(false)
                .build_unchecked(ConnectionManager::<PgConnection>::new(&opts.url));
            Ok(Database::Postgres(pool))
        } else {
            Err(StoreError::Fatal(format!("unsupported database.url scheme in {:?}", redact_url(&opts.url))))
        }
    }

    fn pg(&self) -> Result<PooledConnection<ConnectionManager<PgConnection>>, StoreError> {
        match self {
            Database::Postgres(pool) => pool.get().map_err(|e| StoreError::Transient(e.to_string())),
        }
    }

    /// Run pending embedded migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        use diesel_migrations::MigrationHarness;
        let mut conn = self.pg()?;
        let applied = conn
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(|e| StoreError::Fatal(format!("migration failed: {e}")))?;
        Ok(applied.into_iter().map(|v| v.to_string()).collect())
    }

    /// Cheap round trip proving the database answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        use diesel::RunQueryDsl;
        let mut conn = self.pg()?;
        diesel::sql_query("SELECT 1").execute(&mut conn)?;
        Ok(())
    }

    /// The stored progress of `group` for these partitions (absent: never committed).
    pub fn load_offsets(&self, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError> {
        postgres::load_offsets(&mut *self.pg()?, group, parts)
    }

    /// Commit a batch: fence, rows, dead letters and progress in one transaction.
    pub fn commit_batch(&self, group: &str, batch: &ParsedBatch, buf: &mut Vec<u8>) -> Result<CommitOutcome, StoreError> {
        postgres::commit_batch(&mut *self.pg()?, group, batch, buf)
    }

    /// Connections checked out right now.
    pub fn connections_in_use(&self) -> u32 {
        match self {
            Database::Postgres(p) => {
                let s = p.state();
                s.connections - s.idle_connections
            }
        }
    }
}

/// A URL with its password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return redact_query_password(url);
    };
    let user = userinfo.split(':').next().unwrap_or("");
    let redacted = if userinfo.contains(':') { format!("{user}:[REDACTED]") } else { user.to_string() };
    redact_query_password(&format!("{scheme}://{redacted}@{host}"))
}

fn redact_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=[REDACTED]"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(redact_url("postgres://u:s3cret@h:5432/db"), "postgres://u:[REDACTED]@h:5432/db");
        assert_eq!(redact_url("postgres://h/db?user=u&password=s3cret"), "postgres://h/db?user=u&password=[REDACTED]");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn lost_connections_are_transient() {
        assert!(classify_message("server closed the connection unexpectedly").is_transient());
        assert!(!classify_message("relation \"events\" does not exist").is_transient());
    }
}
