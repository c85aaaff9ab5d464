//! `kill -9` of the real binary during an Avro stream (framed keys and values) into a
//! `newer_wins` upsert projection: restarted each time, it ends with the table equal to the model
//! (the last version of each key) and every offset in the database exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};
use tributary::mock::MockKafka;

use crate::common::registry::{framed, produce_framed, SchemaRegistry};
use crate::common::*;
use crate::crash::{sigterm, start, started_count, wait_exit, write_config, Endpoints};
use crate::registry_more::{account, accounts, key_message, ACCOUNT, ACCOUNTS_TABLE};

const PARTITIONS: i32 = 3;
const CHANGES: usize = 3_000;
const KEYS: i64 = 200;

#[test]
fn kill_dash_nine_during_an_avro_stream_into_a_projection_ends_as_the_model_exactly_once() {
    let Some(db) = test_db_of(Kind::Postgres) else { return };
    let started = Instant::now();
    let registry = SchemaRegistry::start();
    let kafka = Arc::new(MockKafka::start(1).unwrap());
    let (topic, group) = (format!("avrokill-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    sql(&db.url, ACCOUNTS_TABLE);

    // Upserts over 200 keys, each key's versions in order; framed by Confluent's serializers.
    let mut next_version: BTreeMap<i64, i64> = BTreeMap::new();
    let changes: Vec<(i64, i64)> = (0..CHANGES as i64)
        .map(|n| {
            let id = (n * 7_919 + n / 13) % KEYS;
            let v = next_version.entry(id).or_insert(0);
            *v += 1;
            (id, *v)
        })
        .collect();
    let messages: Vec<Value> = changes.iter().flat_map(|(id, v)| [key_message(*id), framed("avro", ACCOUNT, account(*id, *v))]).collect();
    let framed_bytes = produce_framed(&registry.url, &topic, &messages);
    let records: Vec<(i32, Vec<u8>, Vec<u8>)> = changes
        .iter()
        .zip(framed_bytes.chunks(2))
        .map(|((id, _), kv)| ((id % PARTITIONS as i64) as i32, kv[0].clone(), kv[1].clone()))
        .collect();
    let mut watermarks: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, _, _) in &records {
        *watermarks.entry(*p).or_insert(0) += 1;
    }

    let dir = tempfile::tempdir().unwrap();
    let endpoints = Endpoints { brokers: kafka.bootstrap_servers(), group: &group, topic: &topic, url: &db.url };
    let extra = format!(
        r#"
[[projection]]
name = "accounts"
table = "accounts"
mode = "upsert"
key = ["id"]
newer_wins = "version"
[projection.columns]
id = {{ from = "key:/id", type = "bigint" }}
owner = "/owner"
balance = "/balance"
version = "/version"

[schema_registry]
url = "{}"
retry_backoff_ms = 50
retry_backoff_max_ms = 500
"#,
        registry.url
    );
    // A killed member stays in the group until its session times out: keep it short.
    let config = write_config(
        dir.path(),
        &endpoints,
        "\"session.timeout.ms\" = \"2000\"\n\"heartbeat.interval.ms\" = \"200\"",
        "batch_size = 50\nlinger_ms = 10",
        &extra,
    );
    let log = dir.path().join("tributary.log");

    // The stream: 25 records every 60 ms (about 7 s), so the kills land in it.
    let producer = {
        let (kafka, topic) = (kafka.clone(), topic.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(25) {
                for (p, key, value) in chunk {
                    kafka.send(&topic, Some(*p), Some(key.as_slice()), Some(value.as_slice()), &[]).unwrap();
                }
                kafka.flush().unwrap();
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };
    let committed = || committed_total(&db.url, &group);
    let mut rng = rand::rng();
    let kills = rng.random_range(3..=5);
    let mut moments = Vec::new();
    for _ in 0..kills {
        let mut child = start(&config, &log);
        let floor = committed();
        let moment = if rng.random_bool(0.5) {
            let ms = rng.random_range(200..2_500);
            std::thread::sleep(Duration::from_millis(ms));
            format!("{ms} ms after start")
        } else {
            wait_until("committed progress moves", Duration::from_secs(30), || committed() > floor || committed() == CHANGES as i64);
            let ms = rng.random_range(0..400);
            std::thread::sleep(Duration::from_millis(ms));
            format!("{ms} ms into ingestion")
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        moments.push(format!("{moment} (committed {} of {CHANGES})", committed()));
    }
    producer.join().unwrap();

    let starts = started_count(&log);
    let mut child = start(&config, &log);
    wait_until("everything committed after the kills", Duration::from_secs(60), || committed() == CHANGES as i64);
    // The last kill may have left nothing to do: SIGTERM only once this instance has started.
    wait_until("the last instance started", Duration::from_secs(60), || started_count(&log) > starts);
    assert_exactly_once(&db.url, &topic, &group, &watermarks, &BTreeMap::new());
    let mut model = BTreeMap::new();
    for (id, v) in &changes {
        let a = account(*id, *v);
        model.insert(*id, json!([a["owner"], a["balance"], a["version"]]));
    }
    assert_eq!(model.len(), KEYS as usize);
    assert_eq!(accounts(&db.url), model, "the last version of each key");
    sigterm(&child);
    let (exit, _) = wait_exit(&mut child, Duration::from_secs(30));
    assert!(exit.success(), "SIGTERM exits 0, got {exit:?}");
    eprintln!("avro kill loop: {kills} kills, {CHANGES} records, {:?}; kill moments: {}", started.elapsed(), moments.join("; "));
}
