//! Which database a `database.url` names, and what differs between backends beyond their
//! statements: each backend's module describes itself in one [`Kind`] (its URL schemes and
//! checks, how it opens its pool, how many writers and transactions at once, the refusal probe,
//! the shell an operator opens it with). `Backend::of_url` (storage/mod.rs) picks one of them.

use std::sync::Arc;

use super::backend::{DatabaseOptions, Store};
use super::StoreError;

/// What a backend is besides its statements.
pub(crate) struct Kind {
    /// For logs and `Debug`.
    pub(crate) name: &'static str,
    /// The URL prefixes that name it.
    pub(crate) prefixes: &'static [&'static str],
    /// A URL it takes, for an error's fix.
    pub(crate) example: &'static str,
    /// The URL's own problems, found before anything connects.
    pub(crate) check_url: fn(&str) -> Result<(), UrlProblem>,
    /// Its pool, as `opts` ask.
    pub(crate) open: fn(&DatabaseOptions) -> Result<Arc<dyn Store>, StoreError>,
    /// Writer threads for a pool of this size.
    pub(crate) writers: fn(u32) -> usize,
    /// Transactions the committer runs at once for a pool of this size.
    pub(crate) concurrent_commits: fn(u32) -> usize,
    /// Whether a refused connection's SQLSTATE is asked for before the pool connects.
    pub(crate) probes_refusal: bool,
    /// The command an operator queries the database with (the URL, and the URL as it may be shown).
    pub(crate) shell: fn(&str, &str) -> String,
}

/// A backend: a handle on its [`Kind`].
#[derive(Clone, Copy)]
pub struct Backend(pub(crate) &'static Kind);

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Backend {}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Backend {
    /// The URL's own problems, found before anything connects.
    pub fn check_url(self, url: &str) -> Result<(), UrlProblem> {
        (self.0.check_url)(url)
    }

    /// Writer threads: as many as the backend can write with at once.
    pub fn writers(self, pool_size: u32) -> usize {
        (self.0.writers)(pool_size)
    }

    /// Transactions the committer runs at once.
    pub fn concurrent_commits(self, pool_size: u32) -> usize {
        (self.0.concurrent_commits)(pool_size)
    }

    /// Whether a refused connection's SQLSTATE is asked for before the pool connects.
    pub fn probes_refusal(self) -> bool {
        self.0.probes_refusal
    }

    /// The command an operator queries the database with, `shown` the URL as it may be shown.
    pub fn shell(self, url: &str, shown: &str) -> String {
        (self.0.shell)(url, shown)
    }
}

/// A `database.url` its backend cannot use: what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlProblem {
    pub problem: String,
    pub fix: String,
}

impl UrlProblem {
    pub(crate) fn new(problem: impl Into<String>, fix: impl Into<String>) -> UrlProblem {
        UrlProblem { problem: problem.into(), fix: fix.into() }
    }
}
