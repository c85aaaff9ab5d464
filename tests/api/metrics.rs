//! `/metrics` stays a valid exposition whatever the labels hold: label values are escaped when
//! rendered, projection names are refused at start unless they are plain, and a running
//! service's scrape passes a strict reader (common/exposition.rs).

use std::time::Duration;

use serde_json::json;
use tributary::app;
use tributary_actors::{label, projection_label, Metrics};

use crate::common::exposition::{parse, Sample};
use crate::common::*;

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
}

#[test]
fn label_values_are_escaped_so_no_value_can_forge_a_line() {
    let (metrics, registry) = Metrics::new();
    let evil = ["a\"b", "back\\slash", "two\nlines", "x\"} 1\ntributary_forged_total 666\n# EOF\n", "\\n", "plain"];
    for (i, v) in evil.iter().enumerate() {
        metrics.messages_consumed.get_or_create(&label("topic", *v)).inc_by(i as u64 + 1);
        metrics.projection_rows.get_or_create(&projection_label(v, "outcome", v)).inc();
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(samples.iter().all(|s| !s.name.contains("forged")), "{text}");
    for (i, v) in evil.iter().enumerate() {
        let consumed = find(&samples, "tributary_messages_consumed_total", &[("topic", v)]);
        assert_eq!(consumed.map(|s| s.value), Some(i as f64 + 1.0), "{v:?} reads back as itself:\n{text}");
        assert!(find(&samples, "tributary_projection_rows_total", &[("projection", v), ("outcome", v)]).is_some(), "{v:?}");
    }
}

/// The configuration of a projection named `name`, as an operator writes it.
fn config_with_projection(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join("tributary.toml");
    let db = dir.join("t.db");
    let text = format!(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\ntopics = [\"orders\"]\n[database]\nurl = \"sqlite://{}\"\n\
         [[projection]]\nname = {name}\ntable = \"orders\"\n[projection.columns]\nid = {{ from = \"/id\", type = \"bigint\" }}\n",
        db.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_projection_name_that_could_forge_metrics_lines_fails_the_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, key) in [(r#""a\"b""#, r#"projection.a\"b.name"#), (r#""a\nb""#, r#"projection.a\nb.name"#)] {
        let config = config_with_projection(dir.path(), toml);
        for command in ["check-config", "run"] {
            let out =
                std::process::Command::new(env!("CARGO_BIN_EXE_tributary")).args([command, "--config"]).arg(&config).output().unwrap();
            let said = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {said}");
            assert!(said.contains(key) && said.contains("name = \"orders\""), "{command}: {said}");
            assert_eq!(said.trim_end().lines().count(), 1, "one line, the name escaped: {said}");
        }
    }
    let config = config_with_projection(dir.path(), "\"shop.orders-v2\"");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary")).args(["check-config", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_running_service_with_projections_serves_metrics_a_strict_reader_accepts() {
    let db = test_db_of(Kind::Sqlite).unwrap();
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("m.e-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 2).unwrap();
    sql(&db.url, "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)");
    for i in 0..40i64 {
        // Every tenth one cannot be coerced: a projection's dead letter, labelled with its name.
        let id = if i % 10 == 9 { json!("nine") } else { json!(i) };
        let body = json!({"id": id, "status": "paid"}).to_string();
        kafka.send(&topic, Some((i % 2) as i32), None, Some(body.as_bytes()), &[]).unwrap();
    }
    kafka.flush().unwrap();
    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.projections = serde_json::from_value(json!([{"name": "shop.orders-v2", "table": "orders", "mode": "upsert", "key": ["id"],
        "columns": {"id": {"from": "/id", "type": "bigint"}, "status": "/status"}}]))
    .unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    wait_until("every offset committed", Duration::from_secs(60), || committed_total(&db.url, &group) == 40);
    let (status, text) = http("GET", running.port, "/metrics");
    assert_eq!(status, 200);
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let rows = find(&samples, "tributary_projection_rows_total", &[("projection", "shop.orders-v2"), ("outcome", "inserted")]);
    assert_eq!(rows.map(|s| s.value), Some(36.0), "{text}");
    let refused =
        find(&samples, "tributary_projection_dead_letters_total", &[("projection", "shop.orders-v2"), ("reason", "projection_type")]);
    assert_eq!(refused.map(|s| s.value), Some(4.0), "{text}");
    // The lag gauge follows the watermarks the reader reports a moment after the commits.
    wait_until("the lag of partition 1 published, in a scrape a strict reader accepts", Duration::from_secs(30), || {
        let text = http("GET", running.port, "/metrics").1;
        let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        find(&samples, "tributary_consumer_lag", &[("topic", &topic), ("partition", "1")]).is_some()
    });
    running.stop().unwrap();
}
