//! The WAL kept short on SQLite: a checkpointer thread copies it back beside the writer, and
//! the writer's upkeep rewinds it every few MiB between two transactions.

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sqlite::SqliteConnection;

use super::kind::sqlite_path;
use crate::storage::backend::{DatabaseOptions, Upkeep};
use crate::storage::error::StoreError;

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
    pub(super) wakes: std::cell::Cell<u64>,
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

/// The writer's upkeep over `pool` when a checkpointer is asked for (`checkpoint_in_background`).
pub(super) fn keeper(
    pool: &Pool<ConnectionManager<SqliteConnection>>,
    opts: &DatabaseOptions,
    log: &slog::Logger,
) -> Option<Box<dyn Upkeep>> {
    if !opts.checkpoint_in_background {
        return None;
    }
    let busy_timeout_ms = opts.connect_timeout.as_millis() as u64;
    match Checkpointer::start(sqlite_path(&opts.url), busy_timeout_ms, WAL_PASS_BYTES, WAL_REWIND_BYTES, log.clone()) {
        Ok(checkpointer) => Some(Box::new(WalKeeper { checkpointer, pool: pool.clone(), busy_timeout_ms, in_use: 0, log: log.clone() })),
        Err(e) => {
            slog::error!(log, "no background checkpoints: the writer checkpoints the WAL by itself"; "error" => e.to_string());
            None
        }
    }
}
