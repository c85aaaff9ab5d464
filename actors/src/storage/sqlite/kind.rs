//! SQLite as a backend: `sqlite://PATH` URLs, a file made if missing, one writer.

use std::path::Path;
use std::sync::Arc;

use diesel::r2d2::{ConnectionManager, CustomizeConnection};
use diesel::SqliteConnection;

use crate::storage::backend::{pool_builder, Pooled};
use crate::storage::error::{Failure, StoreError};
use crate::storage::kind::{Kind, UrlProblem};

/// SQLite's auto-checkpoint threshold on connections whose WAL a checkpointer copies back (`wal.rs`)
/// (SQLite's default is 1,000 pages): rarely reached, it covers a checkpointer that could not start.
pub(crate) const WAL_BACKSTOP_PAGES: u32 = 4000;

/// SQLite as a backend (see `storage::kind`).
pub(crate) const KIND: Kind = Kind {
    name: "Sqlite",
    prefixes: &["sqlite:"],
    example: "sqlite://path/to/file.db",
    check_url,
    open: |opts| {
        configure_library();
        let path = sqlite_path(&opts.url);
        if path.is_empty() {
            return Err(StoreError::Fatal(Failure::Condition("sqlite URL has no file path (use sqlite://path/to/file.db)".into())));
        }
        let pool = pool_builder(opts)
            .connection_customizer(Box::new(Pragmas {
                busy_timeout_ms: opts.connect_timeout.as_millis() as u64,
                wal_autocheckpoint: if opts.checkpoint_in_background { WAL_BACKSTOP_PAGES } else { 1000 },
            }))
            .build_unchecked(ConnectionManager::<SqliteConnection>::new(path));
        Ok(Arc::new(Pooled { pool, opts: opts.clone() }))
    },
    // SQLite has one write lock: more writers, or a second transaction at once, would only
    // queue on it.
    writers: |_| 1,
    concurrent_commits: |_| 1,
    // Opening a file asks no server.
    probes_refusal: false,
    shell: |url, _| format!("sqlite3 {}", sqlite_path(url)),
};

fn check_url(url: &str) -> Result<(), UrlProblem> {
    let path = Path::new(sqlite_path(url));
    if path.as_os_str().is_empty() {
        return Err(UrlProblem::new("names no SQLite file", "use sqlite://path/to/file.db"));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(UrlProblem::new(
            format!("the SQLite file's directory {} does not exist", dir.display()),
            "create the directory, or name a file in one that exists",
        ));
    }
    if path.is_dir() {
        return Err(UrlProblem::new(format!("{} is a directory", path.display()), "name a file: sqlite://path/to/file.db"));
    }
    Ok(())
}

/// The file path of a `sqlite://` URL (`sqlite:PATH` also accepted).
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url)
}

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
