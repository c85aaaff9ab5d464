//! The core pipeline end to end: real actors, librdkafka's mock cluster, a real PostgreSQL.

use std::time::Duration;

use crate::common::*;
use tributary::app;
use tributary::http::metric_sum;
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
    three_members_leaving_and_joining_during_ingest_keep_exactly_once,
    http_endpoints_answer_as_documented,
    a_header_name_that_is_not_utf8_becomes_a_dead_letter_and_ingest_goes_on,
);

fn fifty_thousand_mixed_messages_are_each_accounted_for_exactly_once(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "mixed", PARTITIONS, 1) else { return };
    f.produce(50_000);
    assert!(f.dead.len() >= 5, "several malformed kinds are mixed in: {:?}", f.dead);

    let running = app::spawn(f.settings(), log()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    // Records with many headers keep every one of them.
    let many = (0..50_000).filter(|i| i % 3 == 2 && i % 500 == 2).count() as i64;
    let each: Vec<String> = (0..MANY_HEADERS).map(|j| format!("CAST(headers AS TEXT) LIKE '%\"h{j}\"%\"v{j}-%'")).collect();
    let kept = count(&f.db.url, &format!("SELECT count(*) AS n FROM events WHERE topic = '{}' AND {}", f.topic, each.join(" AND ")));
    assert_eq!(kept, many, "rows with all {MANY_HEADERS} headers");

    let (status, metrics) = http("GET", running.port, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tributary_rows_written_total"), "{metrics}");
    running.stop().unwrap();
}

fn stopping_mid_stream_and_restarting_loses_and_duplicates_nothing(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "restart", PARTITIONS, 1) else { return };
    f.produce(30_000);

    let mut s = f.settings();
    s.database.batch_size = 200; // many small batches, so the stop lands mid-stream
    let first = app::spawn(s.clone(), log()).unwrap();
    wait_until("some progress", Duration::from_secs(60), || f.committed() > 0);
    first.stop().unwrap();
    assert!(f.committed() > 0, "the first run committed something");

    f.produce(10_000); // more arrives while the service is down
    let second = app::spawn(s, log()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    second.stop().unwrap();
}

fn a_header_name_that_is_not_utf8_becomes_a_dead_letter_and_ingest_goes_on(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "rawname", 2, 1) else { return };
    f.produce(500);
    // Kafka takes any bytes as a header name; rdkafka's own header accessor panics on these.
    f.produce_dead(0, br#"{"a":1}"#, &[(b"ok", b"1"), (&[b'x', 0xff], b"v"), (&[b'x', 0xfe], b"w")], "invalid_utf8");
    f.kafka.flush().unwrap();
    f.produce(500);

    let running = app::spawn(f.settings(), log()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let kept =
        query_pairs(&f.db.url, "SELECT detail AS a, CAST(headers AS TEXT) AS b FROM dead_letters WHERE detail LIKE '%name of header%'");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].0.contains("name of header 1"), "the detail names the header: {kept:?}");
    // The names' bytes are kept beside their lossy spellings, which stay apart ("eP8=" is
    // x 0xff, "eP4=" x 0xfe; jsonb keeps one value per name and re-spaces).
    let headers: serde_json::Value = serde_json::from_str(&kept[0].1).unwrap();
    assert_eq!(headers["x\u{FFFD} [eP8=]"], serde_json::json!({"name_base64": "eP8=", "base64": "dg=="}), "{kept:?}");
    assert_eq!(headers["x\u{FFFD} [eP4=]"], serde_json::json!({"name_base64": "eP4=", "base64": "dw=="}), "{kept:?}");
    let (_, health) = get_json(running.port, "/health");
    assert_eq!(health["actors"]["kafka_reader"]["restarts"], 0, "{health}");
    running.stop().unwrap();
}

fn two_instances_split_partitions_and_the_survivor_takes_over(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "pair", PARTITIONS, 1) else { return };
    f.produce(10_000);

    let a = app::spawn(f.settings(), log()).unwrap();
    let b = app::spawn(f.settings(), log()).unwrap();
    wait_until("both instances own partitions", Duration::from_secs(60), || {
        let (pa, pb) = (owned_partitions(a.port), owned_partitions(b.port));
        pa > 0 && pb > 0 && pa + pb == PARTITIONS as usize
    });
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));

    f.produce(10_000);
    a.stop().unwrap();
    wait_until("the survivor owns every partition", Duration::from_secs(60), || owned_partitions(b.port) == PARTITIONS as usize);
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    b.stop().unwrap();
}

fn http_endpoints_answer_as_documented(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "http", 2, 1) else { return };

    // Before the group assigns anything: no broker answers, so /ready must refuse.
    let mut unassigned = f.settings();
    unassigned.kafka.brokers = "127.0.0.1:1".into();
    let lonely = app::spawn(unassigned, log()).unwrap();
    let (status, body) = get_json(lonely.port, "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body["reasons"].to_string().contains("not_assigned"), "{body}");
    assert_eq!(get_json(lonely.port, "/health").0, 200, "alive even when not ready");
    lonely.stop().unwrap();

    f.produce(1_000);
    let running = app::spawn(f.settings(), log()).unwrap();
    let port = running.port;
    wait_until("/ready turns 200", Duration::from_secs(30), || get_json(port, "/ready").0 == 200);
    f.assert_all_ingested_exactly_once(Duration::from_secs(30));

    let (status, health) = get_json(port, "/health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["actors"]["db_writer"]["state"], "running");

    let (status, st) = get_json(port, "/status");
    assert_eq!(status, 200);
    assert_eq!(st["group_id"], f.group.as_str());
    assert!(!st["config"]["database"]["url"].to_string().contains("password="), "{st}");
    wait_until("status shows zero lag", Duration::from_secs(30), || {
        let st = get_json(port, "/status").1;
        st["partitions"]
            .as_array()
            .is_some_and(|ps| ps.len() == 2 && ps.iter().all(|p| p["lag"] == 0 && p["next_offset"] == p["high_watermark"]))
    });

    let (status, metrics) = http("GET", port, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "tributary_messages_consumed_total",
        "tributary_dead_letters_total",
        "tributary_db_write_duration_seconds",
        "tributary_consumer_lag",
        "tributary_actor_up",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    let (status, err) = get_json(port, "/nope");
    assert_eq!((status, err["status"].as_u64()), (404, Some(404)));
    let (status, body) = http("POST", port, "/health");
    assert_eq!(status, 405, "{body}");
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].is_string());
    running.stop().unwrap();
}

fn three_members_leaving_and_joining_during_ingest_keep_exactly_once(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "trio", 6, 1) else { return };
    f.produce(6_000);
    let mut s = f.settings();
    s.database.batch_size = 100; // many commits, so rebalances land between them
    let small_batches = || s.clone();
    let a = app::spawn(small_batches(), log()).unwrap();
    let b = app::spawn(small_batches(), log()).unwrap();
    let c = app::spawn(small_batches(), log()).unwrap();
    wait_until("three members share six partitions", Duration::from_secs(60), || {
        [a.port, b.port, c.port].iter().map(|p| owned_partitions(*p)).filter(|n| *n > 0).count() == 3
    });
    f.produce(6_000);
    b.stop().unwrap(); // leaves mid-stream
    f.produce(6_000);
    let d = app::spawn(small_batches(), log()).unwrap(); // joins mid-stream
    f.produce(6_000);
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    let fenced: f64 =
        [a.port, c.port, d.port].iter().map(|p| metric_sum(&http("GET", *p, "/metrics").1, "tributary_batches_fenced_total")).sum();
    eprintln!("batches refused by the fence during the rebalances: {fenced}");
    for r in [a, c, d] {
        r.stop().unwrap();
    }
}
