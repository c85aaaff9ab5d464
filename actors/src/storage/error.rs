//! Database errors, told apart by the codes the database reports — never by the words of a
//! message, which are the user's (a trigger's `RAISE`, a constraint's name, a quoted value) or
//! translated (`lc_messages`).
//!
//! PostgreSQL: the SQLSTATE of the error result (libpq's `PG_DIAG_SQLSTATE`, read through the
//! accessor vendor/diesel adds) and the connection's state (Diesel reports a connection libpq
//! marks `CONNECTION_BAD`, or a command that could not be sent, by its kind). SQLite: the
//! extended result code of the failed call. Both are the codes the databases document as their
//! stable interface, in any language.

use diesel::result::{DatabaseErrorKind as Kind, Error as DieselError};

/// What went wrong with a storage call, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: connection refused or lost, serialization failure or deadlock, server
    /// shutting down, out of resources, SQLite busy.
    #[error("database unavailable: {0}")]
    Transient(#[source] Failure),
    /// The database refused a statement for a reason a message may cause (SQLSTATE classes 22
    /// and 23, a trigger's `RAISE` (P0001), any code outside the outage classes; SQLite
    /// constraint, size and type errors): bisected, the message responsible becomes a dead letter.
    #[error("the database refused the data: {message} (SQLSTATE {sqlstate})")]
    Rejected { sqlstate: String, message: String },
    /// A refusal that is no message's: the statement is refused with no rows at all (a dropped
    /// table or column, a trigger that refuses every row). Retried like an outage, and the
    /// breaker it opens names the SQLSTATE.
    #[error("the database refuses every write: {message} (SQLSTATE {sqlstate})")]
    Unwritable { sqlstate: String, message: String },
    /// Retrying cannot help: a schema mismatch, missing privileges, a bug.
    #[error("database error: {0}")]
    Fatal(#[source] Failure),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_) | StoreError::Unwritable { .. })
    }

    /// What a refusal at one message becomes when the same statement without any row is refused
    /// too (`probe`'s error): the table's fault, not the message's.
    pub fn unwritable(probe: StoreError) -> StoreError {
        match probe {
            StoreError::Rejected { sqlstate, message } => StoreError::Unwritable { sqlstate, message },
            other => other,
        }
    }

    /// The SQLSTATE (or SQLite result code) the database gave, if it gave one.
    pub fn code(&self) -> Option<String> {
        match self {
            StoreError::Rejected { sqlstate, .. } | StoreError::Unwritable { sqlstate, .. } => Some(sqlstate.clone()),
            StoreError::Transient(Failure::Statement { code, .. }) | StoreError::Fatal(Failure::Statement { code, .. }) => match code {
                Code::SqlState(s) => Some(String::from_utf8_lossy(s).into_owned()),
                Code::Sqlite(c) => Some(c.to_string()),
                Code::None => None,
            },
            _ => None,
        }
    }

    /// A fatal error with what was being done and why it failed.
    pub fn fatal(context: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Fatal(Failure::Context { context, source: source.into() })
    }
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The cause under a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A statement failed; `code` is what the database said.
    #[error("{}{code}", one_line(&error_message(source)))]
    Statement {
        code: Code,
        #[source]
        source: DieselError,
    },
    /// No connection could be had from the pool (refused, timed out, authentication).
    #[error("no database connection: {}", one_line(&source.to_string()))]
    Pool {
        #[source]
        source: diesel::r2d2::PoolError,
    },
    /// A condition of our own, such as a WAL still in use or a URL without a path.
    #[error("{0}")]
    Condition(std::borrow::Cow<'static, str>),
    #[error("{context}: {}", one_line(&source.to_string()))]
    Context {
        context: &'static str,
        #[source]
        source: BoxError,
    },
}

/// The code a database attached to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// PostgreSQL's five-character SQLSTATE.
    SqlState([u8; 5]),
    /// SQLite's extended result code.
    Sqlite(i32),
    /// None reported (an error of Diesel's own, or a lost connection without a result).
    None,
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::SqlState(s) => write!(f, " (SQLSTATE {})", String::from_utf8_lossy(s)),
            Code::Sqlite(c) => write!(f, " (SQLite result code {c})"),
            Code::None => Ok(()),
        }
    }
}

impl Code {
    /// The code of a Diesel error, if the database gave one.
    pub fn of(e: &DieselError) -> Code {
        let DieselError::DatabaseError(_, info) = e else { return Code::None };
        if let Some(s) = info.sqlstate().and_then(|s| <[u8; 5]>::try_from(s.as_bytes()).ok()) {
            Code::SqlState(s)
        } else if let Some(c) = info.result_code() {
            Code::Sqlite(c)
        } else {
            Code::None
        }
    }
}

/// How the retry policy treats an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Transient,
    /// Refused data, with the SQLSTATE the dead letter keeps.
    Refused(&'static str),
    Fatal,
}

/// PostgreSQL by SQLSTATE class: connection exception (08), transaction rollback —
/// serialization failure, deadlock (40), insufficient resources (53), operator intervention —
/// shutdown, cancel (57), system error (58) and internal error (XX) are worth retrying; a lock
/// timeout (55P03) too. Authentication (28), a missing database (3D000), a read-only server
/// (25006) and a missing privilege (42501) are the environment's: fatal. Everything else may be
/// a message's doing — a data exception (22), an integrity violation (23), a trigger's `RAISE`
/// (P0001), a generated column given a value (428C9) — and is bisected: a message refused on its
/// own while the same statement without rows is taken is the cause (see [`StoreError::unwritable`]).
pub(crate) fn classify_sqlstate(code: &[u8; 5]) -> Class {
    match (&code[..2], code) {
        (b"08" | b"40" | b"53" | b"57" | b"58" | b"XX", _) | (_, b"55P03") => Class::Transient,
        (b"28" | b"3D", _) | (_, b"25006" | b"42501") => Class::Fatal,
        _ => Class::Refused(""),
    }
}

/// Whether a refusal's SQLSTATE names the data (classes 22 and 23), so that no probe is needed
/// to blame the message.
pub(crate) fn blames_data(sqlstate: &str) -> bool {
    sqlstate.starts_with("22") || sqlstate.starts_with("23")
}

/// SQLite by (extended) result code, with the SQLSTATE a refused row's dead letter records.
pub(crate) fn classify_sqlite(code: i32) -> Class {
    use libsqlite3_sys as ffi;
    match code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Class::Refused("23505"),
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Class::Refused("23503"),
        ffi::SQLITE_CONSTRAINT_NOTNULL => Class::Refused("23502"),
        ffi::SQLITE_CONSTRAINT_CHECK => Class::Refused("23514"),
        _ => match code & 0xff {
            // A trigger's RAISE(ABORT), a datatype mismatch in a STRICT table, a row too big.
            ffi::SQLITE_CONSTRAINT => Class::Refused("23000"),
            ffi::SQLITE_MISMATCH => Class::Refused("22000"),
            ffi::SQLITE_TOOBIG => Class::Refused("22001"),
            // Locks held elsewhere, a full disk, I/O and memory shortages, a schema changed
            // under a prepared statement, an interrupt, WAL lock protocol races.
            ffi::SQLITE_BUSY
            | ffi::SQLITE_LOCKED
            | ffi::SQLITE_FULL
            | ffi::SQLITE_IOERR
            | ffi::SQLITE_NOMEM
            | ffi::SQLITE_SCHEMA
            | ffi::SQLITE_INTERRUPT
            | ffi::SQLITE_PROTOCOL => Class::Transient,
            _ => Class::Fatal,
        },
    }
}

/// The class of a Diesel error: by code where the database gave one, else by Diesel's kind
/// (which Diesel sets from the same codes and from the connection's state).
pub(crate) fn classify(e: &DieselError, code: Code) -> Class {
    match (code, e) {
        // A lost connection first: whatever code came with it, nothing is wrong with the data.
        (_, DieselError::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _)) => Class::Transient,
        (Code::SqlState(s), _) => classify_sqlstate(&s),
        (Code::Sqlite(c), _) => classify_sqlite(c),
        (Code::None, DieselError::DatabaseError(kind, _)) => match kind {
            Kind::SerializationFailure => Class::Transient,
            Kind::UniqueViolation => Class::Refused("23505"),
            Kind::ForeignKeyViolation => Class::Refused("23503"),
            Kind::NotNullViolation => Class::Refused("23502"),
            Kind::CheckViolation => Class::Refused("23514"),
            _ => Class::Fatal,
        },
        // A transaction whose rollback failed: its connection is discarded by the pool.
        (Code::None, DieselError::BrokenTransactionManager) => Class::Transient,
        (Code::None, _) => Class::Fatal,
    }
}

impl From<DieselError> for StoreError {
    fn from(source: DieselError) -> Self {
        let code = Code::of(&source);
        match classify(&source, code) {
            Class::Transient => StoreError::Transient(Failure::Statement { code, source }),
            Class::Refused(fallback) => StoreError::Rejected {
                sqlstate: match code {
                    Code::SqlState(s) => String::from_utf8_lossy(&s).into_owned(),
                    _ => fallback.to_string(),
                },
                message: one_line(&error_message(&source)),
            },
            Class::Fatal => StoreError::Fatal(Failure::Statement { code, source }),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(source: diesel::r2d2::PoolError) -> Self {
        StoreError::Transient(Failure::Pool { source })
    }
}

/// The database's primary message (Diesel's `Display` for other errors).
fn error_message(e: &DieselError) -> String {
    match e {
        DieselError::DatabaseError(_, info) => info.message().to_string(),
        other => other.to_string(),
    }
}

/// libpq's messages span lines (`\n\tIs the server running…`): one line for logs and reasons.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    #[test]
    fn sqlstate_classes_decide_the_policy() {
        for (code, class) in [
            (b"08006", Class::Transient),
            (b"40001", Class::Transient),
            (b"40P01", Class::Transient),
            (b"53100", Class::Transient),
            (b"57014", Class::Transient),
            (b"57P01", Class::Transient),
            (b"58030", Class::Transient),
            (b"XX000", Class::Transient),
            (b"55P03", Class::Transient),
            (b"22023", Class::Refused("")),
            (b"22P02", Class::Refused("")),
            (b"23514", Class::Refused("")),
            (b"42501", Class::Fatal),
            (b"28P01", Class::Fatal),
            (b"3D000", Class::Fatal),
            (b"25006", Class::Fatal),
            (b"42P01", Class::Refused("")),
            (b"P0001", Class::Refused("")),
            (b"428C9", Class::Refused("")),
            (b"55000", Class::Refused("")),
        ] {
            assert_eq!(classify_sqlstate(code), class, "{}", String::from_utf8_lossy(code));
        }
    }

    fn sqlite() -> SqliteConnection {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER CONSTRAINT connection_ssl_timeout CHECK (v >= 0));
             CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.v = 13
               BEGIN SELECT RAISE(ABORT, 'database is locked: connection timeout'); END;",
        )
        .unwrap();
        c
    }

    fn sqlite_error(c: &mut SqliteConnection, sql: &str) -> StoreError {
        StoreError::from(c.batch_execute(sql).unwrap_err())
    }

    #[test]
    fn sqlite_errors_are_told_apart_by_result_code_not_words() {
        let mut c = sqlite();
        // A trigger whose message reads like an outage is still a refused row.
        match sqlite_error(&mut c, "INSERT INTO t VALUES (1, 13)") {
            StoreError::Rejected { sqlstate, .. } => assert_eq!(sqlstate, "23000"),
            other => panic!("{other:?}"),
        }
        match sqlite_error(&mut c, "INSERT INTO t VALUES (1, -1)") {
            StoreError::Rejected { sqlstate, .. } => assert_eq!(sqlstate, "23514"),
            other => panic!("{other:?}"),
        }
        c.batch_execute("INSERT INTO t VALUES (1, 1)").unwrap();
        match sqlite_error(&mut c, "INSERT INTO t VALUES (1, 2)") {
            StoreError::Rejected { sqlstate, .. } => assert_eq!(sqlstate, "23505"),
            other => panic!("{other:?}"),
        }
        let missing = sqlite_error(&mut c, "INSERT INTO missing VALUES (1)");
        assert!(matches!(missing, StoreError::Fatal(Failure::Statement { code: Code::Sqlite(1), .. })), "{missing:?}");
    }

    #[test]
    fn sqlite_busy_is_transient() {
        let dir = tempfile_dir();
        let path = dir.join("busy.db");
        let path = path.to_str().unwrap();
        let mut a = SqliteConnection::establish(path).unwrap();
        a.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);").unwrap();
        let mut b = SqliteConnection::establish(path).unwrap();
        b.batch_execute("PRAGMA busy_timeout = 0").unwrap();
        let busy = sqlite_error(&mut b, "BEGIN IMMEDIATE");
        assert!(matches!(busy, StoreError::Transient(Failure::Statement { code: Code::Sqlite(5), .. })), "{busy:?}");
        a.batch_execute("COMMIT").unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tributary-error-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(
            one_line("connection to server failed: Connection refused\n\tIs the server running?\n"),
            "connection to server failed: Connection refused Is the server running?"
        );
    }
}
