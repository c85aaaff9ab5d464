//! The admin API: bearer-token auth, body limits, pause/resume, restarting actors on demand.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tributary::app;
use tributary::mock::MockKafka;
use tributary::telemetry;

const TOKEN: &str = "test-admin-token-0123456789";

fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn admin_endpoints_need_the_bearer_token_and_cap_bodies() {
    let db = test_db_of(Kind::Sqlite).unwrap();
    let kafka = MockKafka::start(1).unwrap();
    let (topic, group) = (format!("admin-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 1).unwrap();

    // No token configured: admin endpoints are off.
    let off = app::spawn(settings(&kafka, &topic, &group, &db.url), telemetry::discard()).unwrap();
    let (status, body) = http_with("POST", off.port, "/pause", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(status, 403, "{body}");
    assert!(json_of(&body)["error"].as_str().unwrap().contains("admin_token"));
    off.stop().unwrap();

    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.http.admin_token = Some(TOKEN.to_string().into());
    let on = app::spawn(s, telemetry::discard()).unwrap();
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

#[test]
fn pause_holds_ingestion_and_resume_continues_without_loss() {
    let db = test_db_of(Kind::Sqlite).unwrap();
    let kafka = MockKafka::start(1).unwrap();
    let (topic, group) = (format!("pause-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 2).unwrap();
    let (mut watermarks, mut dead) = produce_mixed(&kafka, &topic, 2, 0, 2_000);
    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, telemetry::discard()).unwrap();
    let (port, auth) = (running.port, format!("Bearer {TOKEN}"));
    wait_until("first 2,000 committed", Duration::from_secs(30), || committed_total(&db.url, &group) == 2_000);

    assert_eq!(http_with("POST", port, "/pause", &[("Authorization", &auth)], b"").0, 200);
    wait_until("status reports paused", Duration::from_secs(10), || get_json(port, "/status").1["paused"] == true);
    let (w, d) = produce_mixed(&kafka, &topic, 2, 2_000, 2_000);
    add(&mut watermarks, w);
    add(&mut dead, d);
    // Nothing to wait for when nothing may happen: give the reader a generous second.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(committed_total(&db.url, &group), 2_000, "paused: nothing more is ingested");
    assert_eq!(get_json(port, "/ready").0, 200, "a paused instance is not stalled");

    assert_eq!(http_with("POST", port, "/resume", &[("Authorization", &auth)], b"").0, 200);
    wait_until("all 4,000 committed after resume", Duration::from_secs(30), || committed_total(&db.url, &group) == 4_000);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);
    running.stop().unwrap();
}

#[test]
fn actors_restart_on_demand_and_the_pipeline_goes_on() {
    let db = test_db_of(Kind::Sqlite).unwrap();
    let kafka = MockKafka::start(1).unwrap();
    let (topic, group) = (format!("restart-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 2).unwrap();
    let (mut watermarks, mut dead) = produce_mixed(&kafka, &topic, 2, 0, 1_000);
    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, telemetry::discard()).unwrap();
    let (port, auth) = (running.port, format!("Bearer {TOKEN}"));
    wait_until("first 1,000 committed", Duration::from_secs(30), || committed_total(&db.url, &group) == 1_000);

    for name in ["kafka_reader", "parser", "db_writer", "health_reporter"] {
        let (status, body) = http_with("POST", port, &format!("/actors/{name}/restart"), &[("Authorization", &auth)], b"");
        assert_eq!(status, 202, "{name}: {body}");
        wait_until(&format!("{name} restarted and running"), Duration::from_secs(30), || {
            let actors = get_json(port, "/actors").1;
            actors[name]["restarts"].as_u64() >= Some(1) && actors[name]["state"] == "running"
        });
    }
    let (w, d) = produce_mixed(&kafka, &topic, 2, 1_000, 1_000);
    add(&mut watermarks, w);
    add(&mut dead, d);
    wait_until("all 2,000 committed after the restarts", Duration::from_secs(60), || committed_total(&db.url, &group) == 2_000);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);
    let metrics = http("GET", port, "/metrics").1;
    assert!(metrics.contains("tributary_actor_restarts_total{actor=\"kafka_reader\"} 1"), "{metrics}");
    running.stop().unwrap();
}
