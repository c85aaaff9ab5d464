//! Hostile-but-fair use (issue 22): answers that stay clear, a start that fails cleanly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;
use tributary::app;
use tributary::telemetry;

const TOKEN: &str = "hardening-admin-token-0123456789";

/// A raw request; the whole response (status line, headers, body) as text. For what a real
/// client cannot send (malformed or endless heads) or does not show (bytes after a HEAD answer).
fn raw(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it has read an over-long request.
    let _ = s.write_all(request.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// The service on SQLite with [`TOKEN`] as its admin token; the fixture keeps its mock cluster
/// alive and must outlive the service.
fn with_admin_token(name: &str) -> (Fixture, app::RunningApp) {
    let f = Fixture::new(Kind::Sqlite, name, 1, 1).unwrap();
    let mut s = f.settings();
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, telemetry::discard()).unwrap();
    (f, running)
}

#[test]
fn head_works_where_get_does_405_names_allow_and_the_bearer_scheme_is_case_insensitive() {
    let (_f, running) = with_admin_token("http-edges");
    let port = running.port;

    // Raw bytes: a client reading a HEAD answer never looks past its head, so only the bytes
    // show that no body followed.
    let head = raw(port, "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(head.split("\r\n\r\n").nth(1), Some(""), "HEAD has no body: {head}");
    for path in ["/ready", "/status", "/actors", "/metrics"] {
        let r = request("HEAD", port, path, &[], b"");
        assert_ne!(r.status, 405, "HEAD {path}");
    }

    let r = request("POST", port, "/health", &[], b"");
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("GET, HEAD"), "{}", r.body);
    let r = request("GET", port, "/pause", &[], b"");
    assert_eq!(r.header("allow"), Some("POST"), "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["status"], 405);

    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (status, body) = http_with("POST", port, "/resume", &[("Authorization", &format!("{scheme} {TOKEN}"))], b"");
        assert_eq!(status, 200, "{scheme}: {body}");
    }
    let (status, _) = http_with("POST", port, "/resume", &[("Authorization", &format!("Bearer {}", TOKEN.to_uppercase()))], b"");
    assert_eq!(status, 401, "the token itself is case-sensitive");
    running.stop().unwrap();
}

#[test]
fn a_redrive_body_must_be_an_object_and_errors_speak_of_the_api() {
    let (_f, running) = with_admin_token("redrive-body");
    let auth = format!("Bearer {TOKEN}");
    for body in [&b"[null,null,null,5,true]"[..], b"[]", b"5", b"\"x\"", b"{\"limit\": \"ten\"}", b"{\"nope\": 1}", b"{"] {
        let (status, answer) = http_with("POST", running.port, "/dead-letters/redrive", &[("Authorization", &auth)], body);
        assert_eq!(status, 400, "{}: {answer}", String::from_utf8_lossy(body));
        let error = serde_json::from_str::<Value>(&answer).unwrap()["error"].as_str().unwrap().to_string();
        for internal in ["RedriveBody", "struct", "RedriveFilter"] {
            assert!(!error.contains(internal), "{}: names an internal type: {error}", String::from_utf8_lossy(body));
        }
    }
    let (status, answer) = http_with("POST", running.port, "/dead-letters/redrive", &[("Authorization", &auth)], b"{\"dry_run\": true}");
    assert_eq!(status, 200, "{answer}");
    running.stop().unwrap();
}

/// The HTTP port is taken: one clear line, a non-zero exit, and nothing else started.
#[test]
fn a_port_in_use_fails_the_start_cleanly_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--brokers", "127.0.0.1:1", "--topics", "t"])
        .env("TRIBUTARY_DATABASE__URL", format!("sqlite://{}", dir.path().join("t.db").display()))
        .env("TRIBUTARY_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("TRIBUTARY_LOG__LEVEL", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "no panic: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| !l.trim().is_empty()).count(), 1, "one line: {stderr}");
    assert!(!dir.path().join("t.db").exists(), "nothing started, not even the database");
    drop(taken);
}

/// `--help` is the operator's reference: every option names its variable, and the help names
/// the scheme every other key follows.
#[test]
fn help_names_every_options_variable_and_the_env_scheme() {
    for command in ["run", "demo", "check-config", "migrate", "healthcheck"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args([command, "--help"])
            .env("TRIBUTARY_DATABASE__URL", "postgres://u:HelpSecret99@h/db")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{command}: {help}");
        // clap wraps an option's help below its name: an option is a line starting with `--`,
        // its text runs until the next option.
        let options: Vec<String> = help.split("\n  ").filter(|o| o.trim_start().starts_with("--")).map(str::to_string).collect();
        assert!(!options.is_empty(), "{command}: {help}");
        for option in options {
            let name = option.split_whitespace().next().unwrap();
            if ["--help", "--version"].contains(&name) {
                continue;
            }
            assert!(option.contains("[env: TRIBUTARY_"), "{command} {name} names no variable: {option}");
        }
        assert!(help.contains("TRIBUTARY_<SECTION>__<KEY>"), "{command}: {help}");
        assert!(help.contains("docs/configuration.md"), "{command}: {help}");
        assert!(!help.contains("HelpSecret99"), "{command} --help shows a variable's value: {help}");
    }
}
/// Brokers gone: one WARN line and a reason in `/ready`, not two lines per reconnect attempt;
/// one INFO line when they are back, and ingestion goes on.
#[test]
fn unreachable_brokers_are_told_once_in_the_log_and_in_ready_and_their_return_too() {
    let mut f = Fixture::new(Kind::Sqlite, "brokers-gone", 1, 1).unwrap();
    f.produce(200);
    let log = CapturedLog::default();
    let (logger, guard) = log.logger("info");
    let running = app::spawn(f.settings(), logger).unwrap();
    let port = running.port;
    wait_until("the first events are in", Duration::from_secs(60), || f.committed() == f.produced());

    f.kafka.cluster().broker_down(1).unwrap();
    wait_until("/ready names the unreachable brokers", Duration::from_secs(60), || {
        let (status, body) = get_json(port, "/ready");
        status == 503 && body["reasons"].to_string().contains("brokers_unreachable")
    });
    let last_error = get_json(port, "/actors").1["kafka_reader"]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(last_error.contains("brokers unreachable"), "{last_error}");
    // librdkafka reconnects every few tens of milliseconds meanwhile. Counted by their own time
    // stamps, from a second after the outage was told: the burst that tells it may still be on
    // its way through the asynchronous logger.
    let from = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let t0 = std::time::Instant::now();
    // Shorter than the session timeout (6 s): an outage that outlasts it is a rebalance, another test.
    wait_until("a few seconds of reconnect attempts", Duration::from_secs(10), || t0.elapsed() >= Duration::from_secs(4));
    let warnings = log.lines("").iter().filter(|l| l["level"] == "WARN" && l["ts"].as_str().is_some_and(|ts| ts > from.as_str())).count();
    assert!(warnings <= 2, "{warnings} more WARN lines in 3 s of the same outage:\n{}", log.text());

    f.kafka.cluster().broker_up(1).unwrap();
    f.produce(200);
    f.assert_all_ingested_exactly_once(Duration::from_secs(90));
    wait_until("/ready without brokers_unreachable", Duration::from_secs(30), || {
        !get_json(port, "/ready").1["reasons"].to_string().contains("brokers_unreachable")
    });
    running.stop().unwrap();
    drop(guard);
    assert_eq!(log.lines("kafka brokers unreachable").len(), 1, "{}", log.text());
    assert_eq!(log.lines("kafka brokers reachable again").len(), 1, "{}", log.text());
}

/// A database or a role that does not exist: retrying cannot help, so `migrate` and `run` fail
/// at once, naming the SQLSTATE the server gave (read by code, in any `lc_messages`).
#[test]
fn a_database_or_role_that_does_not_exist_fails_the_start_at_once_by_its_sqlstate() {
    let Some(db) = test_db() else { return };
    let (hp, u) = (pg_host_port(&db.url), unique());
    let cases = [
        (format!("postgres://postgres@{hp}/missing_{u}"), "3D000", "the database does not exist"),
        (format!("postgres://nobody_{u}@{hp}/postgres"), "28000", "the role does not exist"),
    ];
    for (url, sqlstate, meaning) in cases {
        for command in ["migrate", "run"] {
            let t0 = std::time::Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
                .args([command, "--brokers", "127.0.0.1:1", "--topics", "t", "--bind", "127.0.0.1:0"])
                .env("TRIBUTARY_DATABASE__URL", &url)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
            assert!(t0.elapsed() < Duration::from_secs(10), "{command} failed at once, not after retrying: {:?}", t0.elapsed());
            assert!(stderr.contains(&format!("SQLSTATE {sqlstate}")) && stderr.contains(meaning), "{command}: {stderr}");
            assert!(!stderr.contains("retrying") && !stderr.contains("panicked"), "{command}: {stderr}");
        }
    }
}

/// The database is down at start: the service waits for it with HTTP already answering (alive,
/// not ready, and why), `migrate` gives up after its bounded wait, and once the database is
/// back the service starts and ingests everything.
#[test]
fn while_the_database_is_awaited_at_start_http_answers_and_migrate_gives_up_in_bounded_time() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "db-awaited", 1, 1) else { return };
    f.produce(300);
    let proxy = Proxy::start(&pg_host_port(&f.db.url));
    proxy.down();
    let url = proxy.url_for(&f.db.url);

    let t0 = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["migrate", "--brokers", "127.0.0.1:1", "--topics", "t"])
        .env("TRIBUTARY_DATABASE__URL", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let took = t0.elapsed();
    assert!(took >= app::MIGRATE_PATIENCE && took < app::MIGRATE_PATIENCE + Duration::from_secs(15), "bounded wait: {took:?}");
    assert!(stderr.contains("cannot connect: "), "{stderr}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut settings = f.settings();
    settings.database.url = url.into();
    settings.http.bind = format!("127.0.0.1:{port}");
    let log = CapturedLog::default();
    let (logger, guard) = log.logger("info");
    let starting = std::thread::spawn(move || app::spawn(settings, logger));
    wait_until("/ready says the database is unreachable", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get_json(port, "/ready").1["reasons"][0].as_str().is_some_and(|r| r.starts_with("database_unreachable: "))
    });
    let (status, body) = get_json(port, "/health");
    assert_eq!((status, body["status"].as_str()), (200, Some("starting")), "{body}");
    assert_eq!(get_json(port, "/ready").0, 503);
    let (status, body) = get_json(port, "/status");
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("starting: database_unreachable")), "{body}");
    assert!(!starting.is_finished(), "still waiting for the database");

    proxy.up();
    let running = starting.join().unwrap().unwrap();
    assert_eq!(running.port, port, "the real server took the same socket over");
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    assert_eq!(get_json(port, "/health").1["status"], "ok");
    running.stop().unwrap();
    drop(guard);
    assert_eq!(log.lines("database not reachable at start; waiting for it").len(), 1, "told once: {}", log.text());
}

/// What actix-http answers itself (a request it cannot parse, a head too large or too slow)
/// carries the JSON error body like every other answer; a request line over 8 KiB is a 414;
/// a HEAD answer stays bodiless; the connection's earlier answers are untouched.
#[test]
fn malformed_http_gets_the_json_error_body_and_an_over_long_uri_a_414() {
    let (_f, running) = with_admin_token("http-codec");
    let port = running.port;
    let json_error = |r: &str| -> (u16, Value) {
        let status = r.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert_eq!(header(r, "content-type"), Some("application/json"), "{r}");
        let body: Value = serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {r}"));
        assert_eq!(body["status"], status, "{r}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
        (status, body)
    };
    let long = |n: usize| "a".repeat(n);
    let cases = [
        ("GET /health HTTP/1.1\r\nContent-Length: abc\r\n\r\n".to_string(), 400),
        ("GET /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_string(), 400),
        ("GET /he alth HTTP/1.1\r\n\r\n".to_string(), 400),
        (format!("GET /health?{} HTTP/1.1\r\nConnection: close\r\n\r\n", long(9_000)), 414),
        (format!("GET /{} HTTP/1.1\r\nConnection: close\r\n\r\n", long(70_000)), 414),
        (format!("POST /actors/{}/restart HTTP/1.1\r\nContent-Length: 0\r\n\r\n", long(100_000)), 414),
        (format!("GET /{} HTTP/1.1\r\n\r\n", long(200_000)), 414),
        (format!("GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n", long(140_000)), 431),
        (format!("GET /health HTTP/1.1\r\n{}\r\n", (0..100).map(|i| format!("X-{i}: v\r\n")).collect::<String>()), 431),
    ];
    for (request, want) in cases {
        let r = raw(port, &request);
        assert_eq!(json_error(&r).0, want, "{}…: {r}", &request[..request.len().min(60)]);
    }
    // A head that never ends: 408 after the request timeout, with its body.
    let r = raw(port, "GET /health HTTP/1.1\r\nHost: x\r\n");
    assert_eq!(json_error(&r).0, 408, "{r}");
    // HEAD: the answer stays bodiless, as HTTP requires.
    let r = raw(port, "HEAD /health HTTP/1.1\r\nContent-Length: abc\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400") && r.ends_with("\r\n\r\n"), "{r}");
    // Keep-alive: a good answer, then the malformed request's, on one connection.
    let r = raw(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nContent-Length: x\r\n\r\n");
    let (first, second) = r.split_once("HTTP/1.1 400").unwrap_or_else(|| panic!("{r}"));
    assert!(first.starts_with("HTTP/1.1 200") && first.contains("\"status\":\"ok\""), "{r}");
    json_error(&format!("HTTP/1.1 400{second}"));
    // The service is unharmed.
    assert_eq!(get_json(port, "/health").0, 200);
}
