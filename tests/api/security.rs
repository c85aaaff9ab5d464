//! Shipping defaults: TLS settings reach libpq, and secrets never reach the operator's screen.
//!
//! The librdkafka side (SASL_SSL/SCRAM accepted, a missing CA file failing the start) is
//! proven by the unit tests in src/config.rs; here the binary itself and a real PostgreSQL.

use std::process::Command;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use tributary_actors::{Database, DatabaseOptions};

const SECRETS: [&str; 4] = ["db-secret-pw", "sasl-secret-pw", "key-secret-pw", "admin-secret-token"];

/// The binary with `args`, in `dir`, with only the environment this test sets: no TRIBUTARY_*
/// from the caller's.
fn command(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TRIBUTARY_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn tributary(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    command(args, env, dir.path()).output().expect("run tributary")
}

fn secret_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("TRIBUTARY_KAFKA__BROKERS", "127.0.0.1:1"),
        ("TRIBUTARY_KAFKA__TOPICS", "events"),
        ("TRIBUTARY_DATABASE__URL", "postgres://app:db-secret-pw@db.example:5432/events?sslmode=require"),
        ("TRIBUTARY_HTTP__ADMIN_TOKEN", "admin-secret-token-0123456789"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_MECHANISMS", "SCRAM-SHA-256"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_USERNAME", "alice"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD", "sasl-secret-pw"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SSL_KEY_PASSWORD", "key-secret-pw"),
    ];
    env.extend_from_slice(extra);
    env
}

#[test]
fn check_config_never_prints_secrets() {
    let out = tributary(&["check-config"], &secret_env(&[]));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "check-config failed: {stderr}");
    for secret in SECRETS {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} printed:\n{stdout}\n{stderr}");
    }
    // What is not secret stays visible, sslmode included.
    for shown in ["alice", "SCRAM-SHA-256", "sslmode=require", "db.example"] {
        assert!(stdout.contains(shown), "{shown} missing:\n{stdout}");
    }
}

#[test]
fn a_missing_ca_file_stops_run_naming_the_property_and_no_secret() {
    let env = secret_env(&[
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SSL_CA_LOCATION", "/nonexistent/ca.pem"),
        ("TRIBUTARY_LOG__FORMAT", "json"),
    ]);
    let out = tributary(&["run"], &env);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "a configuration error exits 2:\n{stdout}\n{stderr}");
    assert!(stderr.contains("ssl.ca.location"), "{stderr}");
    for secret in SECRETS {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} printed:\n{stdout}\n{stderr}");
    }
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    // Port 1 on loopback: nothing listens there.
    let out = tributary(&["healthcheck", "--timeout", "2"], &[("TRIBUTARY_HTTP__BIND", "0.0.0.0:1")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://127.0.0.1:1/health"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    setting: String,
}

#[derive(QueryableByName)]
struct SslInUse {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

fn with_params(url: &str, params: &str) -> String {
    format!("{url}{}{params}", if url.contains('?') { '&' } else { '?' })
}

#[test]
fn postgres_sslmode_in_the_url_reaches_libpq() {
    let Some(db) = crate::common::test_db() else { return };
    let server_ssl = {
        let mut c = PgConnection::establish(&db.url).expect("connect");
        diesel::sql_query("SELECT setting FROM pg_settings WHERE name = 'ssl'").get_result::<Setting>(&mut c).expect("ssl setting").setting
            == "on"
    };
    let open = |url: String| {
        let db = Database::open(&DatabaseOptions {
            url,
            pool_size: 1,
            connect_timeout: Duration::from_secs(2),
            checkpoint_in_background: false,
        })
        .expect("open");
        db.migrate().map_err(|e| e.to_string())
    };

    // The service's own pool, with sslmode=require: TLS or nothing.
    let required = open(with_params(&db.url, "sslmode=require"));
    if server_ssl {
        required.expect("sslmode=require against a server with ssl=on");
        let mut c = PgConnection::establish(&with_params(&db.url, "sslmode=require")).expect("connect with TLS");
        let row = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .get_result::<SslInUse>(&mut c)
            .expect("pg_stat_ssl");
        assert!(row.ssl, "sslmode=require gave a connection without TLS");
    } else {
        let e = required.expect_err("sslmode=require against a server without SSL must fail");
        assert!(e.contains("SSL"), "libpq's SSL error expected: {e}");
    }

    // verify-full with a CA file that does not exist: libpq names the file (whatever the
    // server), which it does only when the setting reached it and it was built with OpenSSL.
    let e = open(with_params(&db.url, "sslmode=verify-full&sslrootcert=/nonexistent/root.crt"))
        .expect_err("a missing root certificate must fail");
    assert!(e.contains("/nonexistent/root.crt") || e.contains("SSL"), "{e}");
}

/// The service running with a secret in every place one can be (the database password, the
/// admin token, SASL and key passwords), its brokers unreachable so that librdkafka reports
/// errors, at debug level: no log line and no answer — health, readiness, status, actors,
/// metrics, a refused admin call, a bad request, a 404 — contains any of them.
#[test]
fn a_running_service_never_shows_a_secret_in_its_logs_or_answers() {
    use crate::common::{get_json, http, http_with, test_db, wait_until};
    let Some(db) = test_db() else { return };
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let url = format!("{scheme}://{user}:db-secret-pw@{host}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let env = secret_env(&[("TRIBUTARY_DATABASE__URL", &url), ("TRIBUTARY_HTTP__BIND", &bind), ("TRIBUTARY_LOG__LEVEL", "debug")]);
    let dir = tempfile::tempdir().unwrap();
    // The log goes to a file so that the test can wait for a debug line (the brokers' repeated
    // failures are logged at debug) rather than hope one was written before the stop.
    let log_path = dir.path().join("log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = command(&["run"], &env, dir.path()).stdout(log_file.try_clone().unwrap()).stderr(log_file).spawn().unwrap();
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until("/ready names the unreachable brokers", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && get_json(port, "/ready").1.to_string().contains("brokers_unreachable")
    });
    let mut answers = Vec::new();
    for path in ["/health", "/ready", "/status", "/actors", "/metrics", "/nope"] {
        answers.push(http("GET", port, path).1);
    }
    let wrong = [("Authorization", "Bearer admin-secret-token-0123456788")];
    answers.push(http_with("POST", port, "/pause", &wrong, b"").1);
    let right = [("Authorization", "Bearer admin-secret-token-0123456789")];
    answers.push(http_with("POST", port, "/dead-letters/redrive", &right, b"{\"limit\": \"many\"}").1);
    assert!(answers[2].contains("[REDACTED]"), "the configuration in /status shows where secrets were: {}", answers[2]);
    wait_until("a debug line in the log", Duration::from_secs(60), || read_log().contains("DEBG"));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let log = read_log();
    assert!(log.contains("kafka brokers unreachable") && log.contains("DEBG"), "a log with something in it:\n{log}");
    for secret in SECRETS {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        for a in &answers {
            assert!(!a.contains(secret), "{secret} in an answer: {a}");
        }
    }
}
