//! Which database a `database.url` names, by its scheme, and what differs between them beyond
//! their statements: the URL's own checks, how many writers and transactions at once, the
//! refusal probe, the shell an operator opens it with.

use std::path::Path;

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

/// A `database.url` its backend cannot use: what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlProblem {
    pub problem: String,
    pub fix: String,
}

fn problem(problem: impl Into<String>, fix: impl Into<String>) -> UrlProblem {
    UrlProblem { problem: problem.into(), fix: fix.into() }
}

impl Backend {
    /// What `database.url` takes, for an error's fix.
    pub const SCHEMES: &'static str = "postgres://user:password@host:5432/db or sqlite://path/to/file.db";

    /// The URL's own problems, found before anything connects.
    pub fn check_url(self, url: &str) -> Result<(), UrlProblem> {
        match self {
            Backend::Sqlite => {
                let path = Path::new(sqlite_path(url));
                if path.as_os_str().is_empty() {
                    return Err(problem("names no SQLite file", "use sqlite://path/to/file.db"));
                }
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                if !dir.is_dir() {
                    return Err(problem(
                        format!("the SQLite file's directory {} does not exist", dir.display()),
                        "create the directory, or name a file in one that exists",
                    ));
                }
                if path.is_dir() {
                    return Err(problem(format!("{} is a directory", path.display()), "name a file: sqlite://path/to/file.db"));
                }
            }
            Backend::Postgres => {
                if let Some(port) = url_port(url).filter(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
                    return Err(problem(format!("port {port:?} is not a port (1 to 65535)"), "use postgres://user:password@host:5432/db"));
                }
                // libpq's own parser, which `run` uses: a URL it refuses is refused here, and its
                // words are not repeated (they quote the offending part, which may be the password).
                if !super::refusal::libpq_parses(url) {
                    return Err(problem(
                        format!("libpq cannot parse {}", crate::redact::database_url(url)),
                        "check its syntax; percent-encode reserved characters of the user and password (% as %25, @ as %40, / as %2F)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writer threads: SQLite has one write lock, so more would only queue on it.
    pub fn writers(self, pool_size: u32) -> usize {
        match self {
            Backend::Postgres => pool_size.max(1) as usize,
            Backend::Sqlite => 1,
        }
    }

    /// Transactions the committer runs at once: PostgreSQL overlaps one transaction's commit
    /// with the next one's COPY; SQLite has one write lock, so a second would only wait for it.
    pub fn concurrent_commits(self, pool_size: u32) -> usize {
        match self {
            Backend::Postgres => pool_size.clamp(1, 2) as usize,
            Backend::Sqlite => 1,
        }
    }

    /// Whether a refused connection's SQLSTATE is asked for before the pool connects (libpq
    /// tells it; SQLite opens a file).
    pub fn probes_refusal(self) -> bool {
        self == Backend::Postgres
    }

    /// The command an operator queries the database with, `shown` the URL as it may be shown.
    pub fn shell(self, url: &str, shown: &str) -> String {
        match self {
            Backend::Sqlite => format!("sqlite3 {}", sqlite_path(url)),
            Backend::Postgres => format!("psql {shown}"),
        }
    }
}

/// The port of a URL's authority, if it names one (not for several hosts or a bare IPv6 address).
fn url_port(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.contains(',') || host_port.ends_with(']') {
        return None;
    }
    host_port.rsplit_once(':').map(|(_, p)| p)
}

/// The file path of a `sqlite://` URL.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url)
}
