//! `tributary demo --exit-when-done` runs the whole job and accounts for every event; a signal
//! ends it cleanly with the summary of what was committed; its `--config` is read like `run`'s.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

on_both_backends!(demo_exits_zero_with_a_summary_and_every_event_accounted_for);

fn demo_exits_zero_with_a_summary_and_every_event_accounted_for(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["demo", "--events", "3000", "--bad-ratio", "0.02", "--bind", "127.0.0.1:0", "--exit-when-done", "--db", &db.url])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accounted for      3000 of 3000 offsets committed"), "{stdout}");
    assert_eq!(count(&db.url, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM dead_letters) AS n"), 3000);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM dead_letters"), 60, "2% of 3000 are malformed");
    // The orders projection holds the latest state of each order, as the generator's plan says.
    let mut latest = std::collections::BTreeMap::new();
    for i in (0..3000).filter(|i| !tributary::demo::is_malformed(*i, 0.02)) {
        match tributary::demo::order_of(i) {
            Some((order, "cancelled")) => latest.remove(&order),
            Some((order, status)) => latest.insert(order, status),
            None => None,
        };
    }
    let mut by_status = std::collections::BTreeMap::<String, i64>::new();
    for status in latest.values() {
        *by_status.entry(status.to_string()).or_default() += 1;
    }
    assert!(by_status.len() >= 3, "the plan goes through several states: {by_status:?}");
    let got: std::collections::BTreeMap<String, i64> =
        query_pairs(&db.url, "SELECT status AS a, CAST(count(*) AS TEXT) AS b FROM orders GROUP BY status")
            .into_iter()
            .map(|(s, n)| (s, n.parse().unwrap()))
            .collect();
    assert_eq!(got, by_status);
    assert!(stdout.contains(&format!("orders (projection) {} rows", latest.len())), "{stdout}");
}

/// "accounted for      X of Y offsets committed" as (X, Y).
fn accounted(stdout: &str) -> (i64, i64) {
    let line = stdout.lines().find(|l| l.trim_start().starts_with("accounted for")).unwrap_or_else(|| panic!("no summary: {stdout}"));
    let numbers: Vec<i64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1])
}

#[test]
fn demo_stopped_by_sigterm_mid_ingest_exits_zero_with_the_summary_of_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["demo", "--events", "3000000", "--bind", "127.0.0.1:0", "--exit-when-done", "--db", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the demo commits", Duration::from_secs(60), || committed_all(&url) > 0);
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("stopped by a signal"), "{stdout}");
    let (accounted, committed) = accounted(&stdout);
    assert_eq!(committed, committed_all(&url), "the summary counts what the database holds");
    assert_eq!(accounted, count(&url, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM dead_letters) AS n"));
    assert_eq!(accounted, committed, "exactly once: {stdout}");
    assert!(committed < 3_000_000, "stopped early: {stdout}");
}

/// Started in the background by a non-interactive shell (SIGINT inherited as ignored), serving
/// after its ingest: its `--config` applies (the admin token guards /pause), and SIGINT stops it.
#[test]
fn demo_reads_its_config_and_a_sigint_while_serving_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("demo.toml");
    let token = "demo-config-admin-token-0123456789";
    std::fs::write(&config, format!("[http]\nadmin_token = \"{token}\"\n")).unwrap();
    let db = dir.path().join("demo.db");
    let output = dir.path().join("out.txt");
    let mut shell = Command::new("sh")
        .args(["-c", "\"$0\" demo --config \"$1\" --events 500 --bind 127.0.0.1:0 --db \"$2\" >\"$3\" 2>&1 & echo $!; wait $!"])
        .arg(env!("CARGO_BIN_EXE_tributary"))
        .args([&config, &db, &output])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(shell.stdout.take().unwrap());
    let mut pid = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut pid).unwrap();
    let text = || std::fs::read_to_string(&output).unwrap_or_default();
    wait_until("the demo serves", Duration::from_secs(60), || text().contains("Serving the HTTP API on port"));
    let port: u16 = text().split("on port ").nth(1).and_then(|r| r.split(';').next()).unwrap().parse().unwrap();
    assert_eq!(http_with("POST", port, "/pause", &[], b"").0, 401, "the file's admin token applies");
    let (status, body) = http_with("POST", port, "/pause", &[("Authorization", &format!("Bearer {token}"))], b"");
    assert_eq!(status, 200, "{body}");
    assert!(Command::new("kill").args(["-INT", pid.trim()]).status().unwrap().success());
    // The shell's status is the demo's (`wait $!`).
    assert_eq!(shell.wait().unwrap().code(), Some(0), "{}", text());
    assert!(text().contains("tributary demo: done"), "{}", text());
    assert!(!text().contains("panicked"), "{}", text());
}

#[test]
fn demo_refuses_a_malformed_config_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[http\nadmin_token = 5\n").unwrap();
    let db = dir.path().join("demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["demo", "--events", "10", "--exit-when-done", "--config"])
        .arg(&config)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.trim().is_empty() && !stderr.contains("panicked"), "{stderr}");
    assert!(!db.exists(), "nothing started");
}
