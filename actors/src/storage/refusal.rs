//! Why a PostgreSQL server refused a connection, by SQLSTATE. Diesel and r2d2 report a failed
//! connect as text only, and libpq keeps the startup error's fields to itself; but at
//! `PQERRORS_SQLSTATE` verbosity libpq writes a server's error as exactly `SEVERITY:  SQLSTATE`
//! (documented: "only the error severity and the SQLSTATE error code"). A second connect made
//! that way reads the code, never the words, which are translated (`lc_messages`) or the user's.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

/// A refusal that retrying cannot mend (until someone changes the server or the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the database server refuses the connection (SQLSTATE {sqlstate}): {meaning}; fix database.url or the server")]
pub struct Refused {
    pub sqlstate: String,
    pub meaning: &'static str,
}

impl Refused {
    /// The refusal a SQLSTATE means, if retrying cannot mend it.
    pub fn of(sqlstate: &str) -> Option<Refused> {
        permanent(sqlstate).map(|meaning| Refused { sqlstate: sqlstate.to_string(), meaning })
    }
}

/// What a refusal's SQLSTATE means to an operator; `None` for codes worth retrying (the server
/// starting or shutting down, too many connections, …).
pub fn permanent(sqlstate: &str) -> Option<&'static str> {
    Some(match sqlstate {
        "3D000" => "the database does not exist",
        "28P01" => "password authentication failed",
        "28000" => "the role does not exist, or pg_hba.conf rejects this host, user or database",
        "42501" => "the role may not connect to this database (no CONNECT privilege)",
        s if s.starts_with("28") => "authorization refused",
        _ => return None,
    })
}

/// Whether libpq can parse `conninfo` (a URL or `key=value` pairs) at all.
pub fn libpq_parses(conninfo: &str) -> bool {
    let Ok(c) = CString::new(conninfo) else { return false };
    let mut error: *mut std::os::raw::c_char = std::ptr::null_mut();
    // SAFETY: `c` is NUL-terminated; libpq returns an options array (freed with
    // PQconninfoFree) or NULL with an error message it allocated (freed with PQfreemem).
    unsafe {
        let options = pq_sys::PQconninfoParse(c.as_ptr(), &mut error);
        if !error.is_null() {
            pq_sys::PQfreemem(error.cast());
        }
        if options.is_null() {
            return false;
        }
        pq_sys::PQconninfoFree(options);
    }
    true
}

/// What one connect to the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It let us in.
    Connected,
    /// It answered with this SQLSTATE.
    Refused(String),
    /// The connect failed without a SQLSTATE (refused, unresolvable, no password to give, TLS
    /// required but refused): libpq's words, for the operator.
    Failed(String),
    /// No outcome within the probe's time, or libpq could not start (a URL it cannot parse is
    /// refused by the configuration check): the pool's own connect will tell.
    Unknown,
}

/// Connect once to `url` and say how it went, within `timeout`.
pub fn probe(url: &str, timeout: Duration) -> Probe {
    let Ok(conninfo) = CString::new(url) else { return Probe::Unknown };
    // SAFETY: `conninfo` is a NUL-terminated string that outlives the call; libpq copies it.
    let conn = Conn(unsafe { pq_sys::PQconnectStart(conninfo.as_ptr()) });
    if conn.0.is_null() {
        return Probe::Unknown;
    }
    // SAFETY: `conn.0` is a live PGconn (non-null, finished only by `Conn`'s drop).
    unsafe { pq_sys::PQsetErrorVerbosity(conn.0, pq_sys::PGVerbosity::PQERRORS_SQLSTATE) };
    let deadline = Instant::now() + timeout;
    // libpq's protocol: before the first PQconnectPoll, behave as if it asked to write.
    let mut want = pq_sys::PostgresPollingStatusType::PGRES_POLLING_WRITING;
    // SAFETY (this loop): `conn.0` is live; PQsocket/PQconnectPoll take it as libpq documents.
    // Bad at once: libpq could not even start (its message may quote the URL; not repeated).
    if unsafe { pq_sys::PQstatus(conn.0) } == pq_sys::ConnStatusType::CONNECTION_BAD {
        return Probe::Unknown;
    }
    loop {
        use pq_sys::PostgresPollingStatusType::*;
        let events = match want {
            PGRES_POLLING_OK => return Probe::Connected,
            PGRES_POLLING_FAILED => return conn.failed(),
            PGRES_POLLING_READING => libc::POLLIN,
            _ => libc::POLLOUT,
        };
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { return Probe::Unknown };
        let mut fd = libc::pollfd { fd: unsafe { pq_sys::PQsocket(conn.0) }, events, revents: 0 };
        // SAFETY: one valid pollfd, its count 1.
        if unsafe { libc::poll(&mut fd, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) } == 0 {
            return Probe::Unknown;
        }
        want = unsafe { pq_sys::PQconnectPoll(conn.0) };
    }
}

/// The last `…:  XXXXX` line of a libpq message written at `PQERRORS_SQLSTATE` verbosity (one
/// line per host tried; the last is the final answer).
fn sqlstate_of(message: &str) -> Option<String> {
    message.lines().rev().find_map(|line| {
        let (_, code) = line.trim_end().rsplit_once(":  ")?;
        (code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())).then(|| code.to_string())
    })
}

/// A PGconn finished on drop.
struct Conn(*mut pq_sys::PGconn);

impl Conn {
    /// The failed connect's SQLSTATE, or libpq's own message when no server gave one.
    fn failed(&self) -> Probe {
        // SAFETY: live PGconn; libpq returns a NUL-terminated string it owns (copied here).
        let message = unsafe { CStr::from_ptr(pq_sys::PQerrorMessage(self.0)) }.to_string_lossy().into_owned();
        match sqlstate_of(&message) {
            Some(code) => Probe::Refused(code),
            None => Probe::Failed(super::error::one_line(&message)),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: finished once, here; nothing uses it afterwards.
            unsafe { pq_sys::PQfinish(self.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parses_what_it_can_use_and_nothing_else() {
        assert!(libpq_parses("postgres://u:p%25w@h:5432/db?sslmode=require"));
        assert!(libpq_parses("host=h user=u dbname=d"));
        assert!(!libpq_parses("postgres://u:50%off@h/db"), "a bad percent-encoding");
        assert!(!libpq_parses("postgres://h/db?nonsense=1"), "an unknown option");
        assert!(!libpq_parses("host=h user"), "a keyword without its value");
    }

    #[test]
    fn the_code_is_read_from_the_sqlstate_format_only() {
        let one = "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  3D000\n";
        assert_eq!(sqlstate_of(one).as_deref(), Some("3D000"));
        let two = "connection to server at \"a\" (10.0.0.1), port 5432 failed: FATAL:  57P03\n\
                   connection to server at \"b\" (10.0.0.2), port 5432 failed: FATAL:  28P01\n";
        assert_eq!(sqlstate_of(two).as_deref(), Some("28P01"), "the last host's answer");
        // libpq's own failures (no server answer) carry no code.
        assert_eq!(sqlstate_of("connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n"), None);
        assert_eq!(sqlstate_of("FATAL:  database \"connection\" does not exist"), None);
        assert_eq!(permanent("3D000"), Some("the database does not exist"));
        assert!(permanent("28P01").is_some() && permanent("28999").is_some() && permanent("42501").is_some());
        for retry in ["57P03", "53300", "08006", "XX000"] {
            assert_eq!(permanent(retry), None, "{retry}");
        }
    }
}
