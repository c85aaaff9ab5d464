//! A database of its own for each test (and each bench phase), gone when dropped: PostgreSQL
//! created on an admin URL and dropped with `WITH (FORCE)`, or a SQLite file in a temporary
//! directory. The integration tests, the actors crate's tests and the bench share it.

use diesel::{Connection, PgConnection, RunQueryDsl};

/// The admin URL the PostgreSQL tests create their databases on.
pub const URL_VAR: &str = "TRIBUTARY_TEST_DATABASE_URL";
/// Set to `1` (as CI does) to make a test without [`URL_VAR`] fail instead of skipping.
pub const REQUIRE_VAR: &str = "TRIBUTARY_TEST_REQUIRE_DB";

/// A database created for one test and dropped after it.
pub struct TestDb {
    /// Where to connect: `postgres://…/<name>` or `sqlite://<file>`.
    pub url: String,
    /// The PostgreSQL database and the admin URL to drop it on; `None` for SQLite.
    postgres: Option<(String, String)>,
    /// The SQLite file's directory, removed with it.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh PostgreSQL database on [`URL_VAR`], named `<prefix>_<pid>_<random>` so that a
    /// leftover (a killed run) tells whose it was. `None` without the variable — said on stderr —
    /// unless [`REQUIRE_VAR`]`=1`, which makes that a panic.
    pub fn postgres(prefix: &str) -> Option<TestDb> {
        let Ok(admin) = std::env::var(URL_VAR) else {
            assert!(std::env::var(REQUIRE_VAR).as_deref() != Ok("1"), "{URL_VAR} is not set but {REQUIRE_VAR}=1");
            eprintln!("SKIPPED: set {URL_VAR} to run PostgreSQL tests");
            return None;
        };
        Some(TestDb::postgres_on(&admin, prefix))
    }

    /// A fresh PostgreSQL database on the server `admin` connects to (its last path segment
    /// replaced by the new name); panics if it cannot be created.
    pub fn postgres_on(admin: &str, prefix: &str) -> TestDb {
        let name = format!("{prefix}_{}_{:08x}", std::process::id(), rand::random::<u32>());
        let mut c = PgConnection::establish(admin).unwrap_or_else(|e| panic!("connect to the admin URL: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut c).unwrap_or_else(|e| panic!("create {name}: {e}"));
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        TestDb { url: format!("{base}/{name}"), postgres: Some((admin.to_string(), name)), _dir: None }
    }

    /// A SQLite file (`test.db`) in a fresh temporary directory; nothing is created yet.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        TestDb { url, postgres: None, _dir: Some(dir) }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // FORCE: a service or pool still connected must not keep the database alive.
        if let Some((admin, name)) = &self.postgres {
            if let Ok(mut c) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{BigInt, Text};
    use diesel::QueryableByName;

    use super::*;

    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    #[test]
    fn a_postgres_database_is_its_own_and_gone_once_dropped() {
        let Some(db) = TestDb::postgres("tributary_testdb") else { return };
        let admin = std::env::var(URL_VAR).unwrap();
        let name = db.url.rsplit_once('/').unwrap().1.to_string();
        let count = || {
            let mut c = PgConnection::establish(&admin).unwrap();
            diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(&name)
                .get_result::<N>(&mut c)
                .unwrap()
                .n
        };
        // Connected and busy while dropped, as a test's service may still be.
        let mut open = PgConnection::establish(&db.url).unwrap();
        diesel::sql_query("CREATE TABLE t (k bigint)").execute(&mut open).unwrap();
        assert_eq!(count(), 1);
        assert_ne!(TestDb::postgres("tributary_testdb").unwrap().url, db.url, "each call its own database");
        drop(db);
        assert_eq!(count(), 0);
    }

    #[test]
    fn a_sqlite_file_goes_with_its_directory() {
        let db = TestDb::sqlite();
        let path = std::path::PathBuf::from(db.url.strip_prefix("sqlite://").unwrap());
        assert!(!path.exists(), "nothing is created yet");
        std::fs::write(&path, b"").unwrap();
        drop(db);
        assert!(!path.parent().unwrap().exists());
    }
}
