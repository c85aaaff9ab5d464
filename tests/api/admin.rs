//! The admin API: bearer-token auth, body limits, pause/resume, restarting actors on demand.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use tributary::app;
use tributary::telemetry;

const TOKEN: &str = "test-admin-token-0123456789";

fn with_token(mut s: tributary::config::Settings) -> tributary::config::Settings {
    s.http.admin_token = Some(TOKEN.to_string().into());
    s
}

fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn admin_endpoints_need_the_bearer_token_and_cap_bodies() {
    let f = Fixture::new(Kind::Sqlite, "admin", 1, 1).unwrap();

    // No token configured: admin endpoints are off.
    let off = app::spawn(f.settings(), telemetry::discard()).unwrap();
    let (status, body) = http_with("POST", off.port, "/pause", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(status, 403, "{body}");
    assert!(json_of(&body)["error"].as_str().unwrap().contains("admin_token"));
    off.stop().unwrap();

    let on = app::spawn(with_token(f.settings()), telemetry::discard()).unwrap();
    let port = on.port;
    let (status, body) = http_with("POST", port, "/pause", &[], b"");
    assert_eq!(status, 401, "missing token: {body}");
    assert_eq!(json_of(&body)["status"], 401);
    let (status, _) = http_with("POST", port, "/pause", &[("Authorization", "Bearer wrong-token-wrong-token")], b"");
    assert_eq!(status, 401, "wrong token");
    let (status, _) = http_with("POST", port, "/pause", &[("Authorization", &format!("Basic {TOKEN}"))], b"");
    assert_eq!(status, 401, "not a bearer token");
    let auth = format!("Bearer {TOKEN}");
    let big = vec![b'x'; 1024 * 1024];
    let (status, body) = http_with("POST", port, "/pause", &[("Authorization", &auth)], &big);
    assert_eq!(status, 413, "oversized body: {body}");
    let (status, body) = http_with("POST", port, "/pause", &[("Authorization", &auth)], b"");
    assert_eq!((status, json_of(&body)), (200, json!({"paused": true})));
    let (status, body) = http_with("POST", port, "/actors/nobody/restart", &[("Authorization", &auth)], b"");
    assert_eq!(status, 404, "{body}");
    assert_eq!(http("GET", port, "/pause").0, 405);
    on.stop().unwrap();
}

/// A member named twice in an admin body is a 400, as a repeated query parameter is: the last
/// one must not win (`dry_run` twice would otherwise redrive for real).
#[test]
fn an_admin_body_that_names_a_member_twice_is_a_400_with_a_json_error() {
    let f = Fixture::new(Kind::Sqlite, "twice", 1, 1).unwrap();
    let running = app::spawn(with_token(f.settings()), telemetry::discard()).unwrap();
    let auth = format!("Bearer {TOKEN}");
    for body in [r#"{"dry_run": true, "dry_run": false}"#, r#"{"limit": 1, "limit": 1000}"#] {
        let (status, text) = http_with("POST", running.port, "/dead-letters/redrive", &[("Authorization", &auth)], body.as_bytes());
        let answer = json_of(&text);
        assert_eq!((status, answer["status"].as_i64()), (400, Some(400)), "{body}: {text}");
        assert!(answer["error"].as_str().is_some_and(|e| e.contains("twice")), "{body}: {text}");
    }
    let (status, text) = http_with("POST", running.port, "/dead-letters/redrive", &[("Authorization", &auth)], br#"{"dry_run": true}"#);
    assert_eq!((status, json_of(&text)["dry_run"].as_bool()), (200, Some(true)), "{text}");
    running.stop().unwrap();
}

#[test]
fn pause_holds_ingestion_and_resume_continues_without_loss() {
    let mut f = Fixture::new(Kind::Sqlite, "pause", 2, 1).unwrap();
    f.produce(2_000);
    let running = app::spawn(with_token(f.settings()), telemetry::discard()).unwrap();
    let (port, auth) = (running.port, format!("Bearer {TOKEN}"));
    f.assert_all_ingested_exactly_once(Duration::from_secs(30));

    assert_eq!(http_with("POST", port, "/pause", &[("Authorization", &auth)], b"").0, 200);
    wait_until("status reports paused", Duration::from_secs(10), || get_json(port, "/status").1["paused"] == true);
    f.produce(2_000);
    // Nothing to wait for when nothing may happen: give the reader a generous second.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(f.committed(), 2_000, "paused: nothing more is ingested");
    assert_eq!(get_json(port, "/ready").0, 200, "a paused instance is not stalled");

    assert_eq!(http_with("POST", port, "/resume", &[("Authorization", &auth)], b"").0, 200);
    f.assert_all_ingested_exactly_once(Duration::from_secs(30));
    running.stop().unwrap();
}

#[test]
fn actors_restart_on_demand_and_the_pipeline_goes_on() {
    let mut f = Fixture::new(Kind::Sqlite, "restart", 2, 1).unwrap();
    f.produce(1_000);
    let running = app::spawn(with_token(f.settings()), telemetry::discard()).unwrap();
    let (port, auth) = (running.port, format!("Bearer {TOKEN}"));
    f.assert_all_ingested_exactly_once(Duration::from_secs(30));

    for name in ["kafka_reader", "parser", "db_writer", "health_reporter", "redriver"] {
        let (status, body) = http_with("POST", port, &format!("/actors/{name}/restart"), &[("Authorization", &auth)], b"");
        assert_eq!(status, 202, "{name}: {body}");
        wait_until(&format!("{name} restarted and running"), Duration::from_secs(30), || {
            let actors = get_json(port, "/actors").1;
            actors[name]["restarts"].as_u64() >= Some(1) && actors[name]["state"] == "running"
        });
        // Ready again means it: the group has assigned every partition (a restarted reader owns
        // none until then).
        wait_until(&format!("ready again after restarting {name}"), Duration::from_secs(30), || {
            get_json(port, "/ready").0 == 200 && owned_partitions(port) == 2
        });
    }
    f.produce(1_000);
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let metrics = http("GET", port, "/metrics").1;
    assert!(metrics.contains("tributary_actor_restarts_total{actor=\"kafka_reader\"} 1"), "{metrics}");
    running.stop().unwrap();
}

fn has_reason(report: &serde_json::Value, code: &str) -> bool {
    report["reasons"].as_array().is_some_and(|r| r.iter().any(|r| r.as_str().is_some_and(|r| r.starts_with(code))))
}

/// After `POST /actors/kafka_reader/restart` the instance is not ready, `not_assigned`, until the
/// group has assigned the fresh consumer its partitions — never ready while it owns none — and
/// what was produced meanwhile lands exactly once.
#[test]
fn a_restarted_reader_is_not_ready_until_assigned_again_and_loses_nothing() {
    let mut f = Fixture::new(Kind::Sqlite, "reassign", 4, 1).unwrap();
    f.produce(2_000);
    let running = app::spawn(with_token(f.settings()), telemetry::discard()).unwrap();
    let (port, auth) = (running.port, format!("Bearer {TOKEN}"));
    f.assert_all_ingested_exactly_once(Duration::from_secs(30));
    wait_until("ready with every partition", Duration::from_secs(30), || get_json(port, "/ready").0 == 200 && owned_partitions(port) == 4);

    let (status, body) = http_with("POST", port, "/actors/kafka_reader/restart", &[("Authorization", &auth)], b"");
    assert_eq!(status, 202, "{body}");
    // The reader tells the health reporter before it answers: no stale `ready` after a restart.
    let (status, ready) = get_json(port, "/ready");
    assert_eq!(status, 503, "{ready}");
    assert!(has_reason(&ready, "not_assigned"), "{ready}");
    f.produce(2_000);
    // Each /status is one snapshot of readiness and partitions.
    let mut snapshots = 0;
    wait_until("assigned again and ready", Duration::from_secs(60), || {
        let status = get_json(port, "/status").1;
        snapshots += 1;
        let owned = status["partitions"].as_array().map_or(0, Vec::len);
        if status["ready"] == true {
            assert_eq!(owned, 4, "ready only with every partition assigned: {status}");
            return true;
        }
        assert!(owned == 4 || has_reason(&status, "not_assigned"), "partitions missing without not_assigned: {status}");
        false
    });
    eprintln!("{snapshots} snapshots until ready");
    assert_eq!(get_json(port, "/ready").0, 200);
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    assert_eq!(get_json(port, "/actors").1["kafka_reader"]["restarts"], 1);
    running.stop().unwrap();
}

/// Three restarts of the reader in a row, each as soon as the fresh consumer has started, before
/// the group has assigned it anything: every consumer leaves the group before the next one
/// joins (two members of one instance at once kept a broker's group from ever completing),
/// consumption resumes and everything lands exactly once.
#[test]
fn quick_reader_restarts_each_wait_for_the_old_member_to_leave_and_lose_nothing() {
    let mut f = Fixture::new(Kind::Sqlite, "restarts", 4, 1).unwrap();
    f.produce(2_000);
    let log = CapturedLog::default();
    let (logger, guard) = log.logger("info");
    let running = app::spawn(with_token(f.settings()), logger).unwrap();
    let (port, auth) = (running.port, format!("Bearer {TOKEN}"));
    f.assert_all_ingested_exactly_once(Duration::from_secs(30));

    for restart in 1..=3 {
        let (status, body) = http_with("POST", port, "/actors/kafka_reader/restart", &[("Authorization", &auth)], b"");
        assert_eq!(status, 202, "{body}");
        f.produce(500);
        wait_until(&format!("consumer {} started", restart + 1), Duration::from_secs(30), || {
            log.lines("kafka reader started").len() > restart
        });
    }
    wait_until("ready with every partition", Duration::from_secs(60), || get_json(port, "/ready").0 == 200 && owned_partitions(port) == 4);
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    assert_eq!(get_json(port, "/actors").1["kafka_reader"]["restarts"], 3);
    running.stop().unwrap();
    drop(guard);

    // Four consumers, one after the other: each left (the last at the stop) before the next started.
    let order: Vec<&str> = log
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| match l["msg"].as_str() {
            Some(m) if m.starts_with("kafka reader started") => Some("started"),
            Some(m) if m.starts_with("kafka reader stopped; left the consumer group") => Some("left"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["started", "left"].repeat(4), "{}", log.text());
}
