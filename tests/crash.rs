//! The real binary as a subprocess: `kill -9` mid-stream loses and duplicates nothing, and
//! SIGTERM drains, commits and exits 0.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tributary::mock::MockKafka;

const PARTITIONS: i32 = 4;

fn start(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--config"])
        .arg(config)
        .env_remove("TRIBUTARY_TEST_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tributary")
}

on_both_backends!(kill_dash_nine_mid_stream_then_sigterm_loses_and_duplicates_nothing);

fn kill_dash_nine_mid_stream_then_sigterm_loses_and_duplicates_nothing(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = std::sync::Arc::new(MockKafka::start(1).unwrap());
    let (topic, group) = (format!("crash-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
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
level = "info"
"#,
            brokers = kafka.bootstrap_servers(),
            url = db.url
        ),
    )
    .unwrap();
    let log = dir.path().join("tributary.log");

    // A steady stream keeps arriving while the service is killed and restarted, so every kill
    // lands mid-stream.
    const TOTAL: usize = 60_000;
    let producer = {
        let kafka = kafka.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            let (mut watermarks, mut dead) = (BTreeMap::new(), BTreeMap::new());
            for chunk in 0..TOTAL / 1000 {
                let (w, d) = produce_mixed(&kafka, &topic, PARTITIONS, chunk * 1000, 1000);
                add(&mut watermarks, w);
                add(&mut dead, d);
                std::thread::sleep(Duration::from_millis(40));
            }
            (watermarks, dead)
        })
    };
    for round in 0..2 {
        let mut child = start(&config, &log);
        let floor = committed_total(&db.url, &group);
        wait_until("progress before the kill", Duration::from_secs(60), || committed_total(&db.url, &group) > floor + 500);
        child.kill().unwrap(); // SIGKILL: no drain, no goodbye
        child.wait().unwrap();
        let at_kill = committed_total(&db.url, &group);
        assert!(at_kill < TOTAL as i64, "round {round}: killed mid-stream ({at_kill} of {TOTAL})");
    }
    let (watermarks, dead) = producer.join().unwrap();
    let produced = TOTAL;

    let mut child = start(&config, &log);
    wait_until("everything committed after the kills", Duration::from_secs(120), || {
        committed_total(&db.url, &group) == produced as i64
    });
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &dead);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exit = None;
    wait_until("exit after SIGTERM", Duration::from_secs(30), || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.unwrap().success(), "SIGTERM exits 0; log:\n{log_text}");
    assert!(log_text.contains("left the consumer group"), "drained and left the group; log:\n{log_text}");
    assert!(!log_text.contains(&db.url), "the database URL never reaches the log");
}


