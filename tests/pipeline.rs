//! The core pipeline end to end: real actors, librdkafka's mock cluster, a real PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use tributary::app;
use tributary::mock::MockKafka;
use tributary::telemetry;

const PARTITIONS: i32 = 4;

fn log() -> slog::Logger {
    if std::env::var("TRIBUTARY_TEST_LOG").is_ok() {
        telemetry::logger(&tributary::config::LogSettings { level: "debug".into(), ..Default::default() })
    } else {
        telemetry::discard()
    }
}



on_both_backends!(
    fifty_thousand_mixed_messages_are_each_accounted_for_exactly_once,
    stopping_mid_stream_and_restarting_loses_and_duplicates_nothing,
    two_instances_split_partitions_and_the_survivor_takes_over,
    http_endpoints_answer_as_documented,
);

fn fifty_thousand_mixed_messages_are_each_accounted_for_exactly_once(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = MockKafka::start(1).unwrap();
    let (topic, group) = (format!("mixed-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    let (watermarks, dead) = produce_mixed(&kafka, &topic, PARTITIONS, 0, 50_000);
    assert!(dead.len() >= 5, "several malformed kinds are mixed in: {dead:?}");

    let running = app::spawn(settings(&kafka, &topic, &group, &db.url), log()).unwrap();
    wait_until("all 50,000 offsets committed", Duration::from_secs(120), || committed_total(&db.url, &group) == 50_000);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);

    let (status, metrics) = http("GET", running.port, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tributary_rows_written_total"), "{metrics}");
    running.stop().unwrap();
}

fn stopping_mid_stream_and_restarting_loses_and_duplicates_nothing(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = MockKafka::start(1).unwrap();
    let (topic, group) = (format!("restart-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    let (mut watermarks, mut dead) = produce_mixed(&kafka, &topic, PARTITIONS, 0, 30_000);

    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.database.batch_size = 200; // many small batches, so the stop lands mid-stream
    let first = app::spawn(s.clone(), log()).unwrap();
    wait_until("some progress", Duration::from_secs(60), || committed_total(&db.url, &group) > 0);
    first.stop().unwrap();
    let after_stop = committed_total(&db.url, &group);
    assert!(after_stop > 0, "the first run committed something");

    // More arrives while the service is down.
    let (w2, d2) = produce_mixed(&kafka, &topic, PARTITIONS, 30_000, 10_000);
    add(&mut watermarks, w2);
    add(&mut dead, d2);

    let second = app::spawn(s, log()).unwrap();
    wait_until("all 40,000 offsets committed", Duration::from_secs(120), || committed_total(&db.url, &group) == 40_000);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);
    second.stop().unwrap();
}

fn two_instances_split_partitions_and_the_survivor_takes_over(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = MockKafka::start(1).unwrap();
    let (topic, group) = (format!("pair-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    let (mut watermarks, mut dead) = produce_mixed(&kafka, &topic, PARTITIONS, 0, 10_000);

    let a = app::spawn(settings(&kafka, &topic, &group, &db.url), log()).unwrap();
    let b = app::spawn(settings(&kafka, &topic, &group, &db.url), log()).unwrap();
    wait_until("both instances own partitions", Duration::from_secs(60), || {
        let (pa, pb) = (owned_partitions(a.port), owned_partitions(b.port));
        pa > 0 && pb > 0 && pa + pb == PARTITIONS as usize
    });
    wait_until("first 10,000 committed", Duration::from_secs(60), || committed_total(&db.url, &group) == 10_000);

    let (w2, d2) = produce_mixed(&kafka, &topic, PARTITIONS, 10_000, 10_000);
    add(&mut watermarks, w2);
    add(&mut dead, d2);
    a.stop().unwrap();
    wait_until("the survivor owns every partition", Duration::from_secs(60), || owned_partitions(b.port) == PARTITIONS as usize);
    wait_until("all 20,000 committed", Duration::from_secs(60), || committed_total(&db.url, &group) == 20_000);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);
    b.stop().unwrap();
}

fn http_endpoints_answer_as_documented(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = MockKafka::start(1).unwrap();
    let (topic, group) = (format!("http-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 2).unwrap();

    // Before the group assigns anything: no broker answers, so /ready must refuse.
    let mut unassigned = settings(&kafka, &topic, &group, &db.url);
    unassigned.kafka.brokers = "127.0.0.1:1".into();
    let lonely = app::spawn(unassigned, log()).unwrap();
    let (status, body) = get_json(lonely.port, "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body["reasons"].to_string().contains("not_assigned"), "{body}");
    assert_eq!(get_json(lonely.port, "/health").0, 200, "alive even when not ready");
    lonely.stop().unwrap();

    let (watermarks, dead) = produce_mixed(&kafka, &topic, 2, 0, 1_000);
    let running = app::spawn(settings(&kafka, &topic, &group, &db.url), log()).unwrap();
    let port = running.port;
    wait_until("/ready turns 200", Duration::from_secs(30), || get_json(port, "/ready").0 == 200);
    wait_until("all 1,000 committed", Duration::from_secs(30), || committed_total(&db.url, &group) == 1_000);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);

    let (status, health) = get_json(port, "/health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["actors"]["db_writer"]["state"], "running");

    let (status, st) = get_json(port, "/status");
    assert_eq!(status, 200);
    assert_eq!(st["group_id"], group.as_str());
    assert!(!st["config"]["database"]["url"].to_string().contains("password="), "{st}");
    wait_until("status shows zero lag", Duration::from_secs(30), || {
        let st = get_json(port, "/status").1;
        st["partitions"].as_array().is_some_and(|ps| ps.len() == 2 && ps.iter().all(|p| p["lag"] == 0 && p["next_offset"] == p["high_watermark"]))
    });

    let (status, metrics) = http("GET", port, "/metrics");
    assert_eq!(status, 200);
    for name in ["tributary_messages_consumed_total", "tributary_dead_letters_total", "tributary_db_write_duration_seconds", "tributary_consumer_lag", "tributary_actor_up"] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    let (status, err) = get_json(port, "/nope");
    assert_eq!((status, err["status"].as_u64()), (404, Some(404)));
    let (status, body) = http("POST", port, "/health");
    assert_eq!(status, 405, "{body}");
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].is_string());
    running.stop().unwrap();
}
