//! Projections under faults: the real binary killed with -9 again and again, and members joining
//! and leaving, while the order stream arrives — the table still ends as the model.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::crash::start;
use crate::projections::{assert_orders, orders_stream, orders_table, send_all, PARTITIONS};
use tributary::app;

/// The orders projection as an operator writes it (the configuration's interface).
const ORDERS_TOML: &str = r#"
[[projection]]
name = "orders"
table = "orders"
types = ["com.example.order.*"]
mode = "upsert"
key = ["order_id"]
newer_wins = "version"
delete_types = ["com.example.order.cancelled"]
delete_on_tombstone = true

[projection.columns]
order_id = { from = "key:/order_id", type = "bigint" }
status = "/status"
customer = "/customer/name"
amount = { from = "/amount_cents", type = "bigint" }
version = { from = "/version", type = "bigint" }
updated_at = { from = "ce.time", type = "timestamptz" }
last_offset = "kafka.offset"
"#;

on_both_backends!(
    kill_dash_nine_again_and_again_during_a_projected_ingest_leaves_the_table_as_the_model,
    members_joining_and_leaving_during_a_projected_ingest_leave_the_table_as_the_model,
);

fn config(dir: &std::path::Path, brokers: &str, group: &str, topic: &str, url: &str) -> std::path::PathBuf {
    let path = dir.join("tributary.toml");
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
topics = ["{topic}"]
[kafka.librdkafka]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
[database]
url = "{url}"
batch_size = 100
linger_ms = 10
[http]
bind = "127.0.0.1:0"
[log]
format = "json"
{ORDERS_TOML}"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn kill_dash_nine_again_and_again_during_a_projected_ingest_leaves_the_table_as_the_model(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = std::sync::Arc::new(tributary::mock::MockKafka::start(1).unwrap());
    let (topic, group) = (format!("killed-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), kafka.bootstrap_servers(), &group, &topic, &db.url);
    let log = dir.path().join("tributary.log");

    // Without its table the projection cannot work: the start fails, exit 2, naming key and fix.
    let out = Command::new(env!("CARGO_BIN_EXE_tributary")).args(["run", "--config"]).arg(&config).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("projection.orders.table") && said.contains("does not exist"), "{said}");
    sql(&db.url, &orders_table(kind, "orders"));

    // check-config reads the projection as written, before anything runs.
    let out = Command::new(env!("CARGO_BIN_EXE_tributary")).args(["check-config", "--config"]).arg(&config).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check-config prints JSON");
    assert_eq!(shown["projections"][0]["name"], "orders", "{shown}");
    assert_eq!(shown["projections"][0]["newer_wins"], "version", "{shown}");

    let (msgs, want) = orders_stream(5_000, 4, 11);
    let total = want.produced;
    // The stream keeps arriving while the service is killed and restarted.
    let producer = {
        let (kafka, topic) = (kafka.clone(), topic.clone());
        std::thread::spawn(move || {
            for chunk in msgs.chunks(500) {
                send_all(&kafka, &topic, chunk);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let mut mid_stream = 0;
    while mid_stream < 5 {
        let mut child = start(&config, &log);
        let floor = committed_total(&db.url, &group);
        wait_until("progress before the kill", Duration::from_secs(60), || {
            let now = committed_total(&db.url, &group);
            now > floor + 300 || now == total
        });
        child.kill().unwrap(); // SIGKILL: no drain, no goodbye
        child.wait().unwrap();
        let at_kill = committed_total(&db.url, &group);
        assert!(at_kill < total, "the kills land mid-stream ({mid_stream} did before the stream ran out); slow the producer");
        mid_stream += 1;
    }
    producer.join().unwrap();
    let mut child = start(&config, &log);
    wait_until("everything committed after the kills", Duration::from_secs(180), || committed_total(&db.url, &group) == total);
    assert_orders(&db.url, &want);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn members_joining_and_leaving_during_a_projected_ingest_leave_the_table_as_the_model(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("trio-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    sql(&db.url, &orders_table(kind, "orders"));
    let (msgs, want) = orders_stream(5_000, 4, 13);
    let quarter = msgs.len() / 4;
    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.database.batch_size = 100; // many commits, so the rebalances land between them
    s.projections = serde_json::from_value(serde_json::json!([crate::projections::orders_spec("orders")])).unwrap();
    send_all(&kafka, &topic, &msgs[..quarter]);
    let log = tributary::telemetry::discard;
    let a = app::spawn(s.clone(), log()).unwrap();
    let b = app::spawn(s.clone(), log()).unwrap();
    let c = app::spawn(s.clone(), log()).unwrap();
    wait_until("three members share the partitions", Duration::from_secs(60), || {
        [a.port, b.port, c.port].iter().map(|p| owned_partitions(*p)).filter(|n| *n > 0).count() == 3
    });
    send_all(&kafka, &topic, &msgs[quarter..2 * quarter]);
    b.stop().unwrap(); // leaves mid-stream
    send_all(&kafka, &topic, &msgs[2 * quarter..3 * quarter]);
    let d = app::spawn(s.clone(), log()).unwrap(); // joins mid-stream
    send_all(&kafka, &topic, &msgs[3 * quarter..]);
    wait_until("everything committed", Duration::from_secs(180), || committed_total(&db.url, &group) == want.produced);
    assert_orders(&db.url, &want);
    for r in [a, c, d] {
        r.stop().unwrap();
    }
}
