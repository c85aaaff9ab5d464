//! A Debezium stream over three tables, produced live while the real binary is `kill -9`ed five
//! times and a second member joins and leaves (two rebalances): the replicas end equal to the
//! model and every offset of every topic is in the database exactly once. Customers and items
//! go through one template projection (`table = "${source.table}"`), whose tables each restarted
//! member finds again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use rand::Rng;
use tributary::mock::MockKafka;

use crate::cdc::assert_replica;
use crate::cdc_stream::{self, CUSTOMERS, ITEMS, ORDERS};
use crate::common::*;
use crate::crash::{sigterm, start, started_count, wait_exit, write_config, Endpoints};

const KILLS: usize = 5;

on_both_backends!(kill_dash_nine_and_rebalances_during_a_change_stream_end_as_the_model_exactly_once,);

#[derive(QueryableByName)]
struct Offsets {
    #[diesel(sql_type = Text)]
    topic: String,
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    distinct_offsets: i64,
    #[diesel(sql_type = BigInt)]
    top: i64,
}

/// By (topic, partition).
type ByPartition<T> = BTreeMap<(String, i32), T>;

/// (topic, partition) → (rows in `events` ∪ `dead_letters`, distinct offsets, max offset + 1),
/// and the committed progress of each.
fn stored(url: &str) -> (ByPartition<(i64, i64, i64)>, ByPartition<i64>) {
    let rows: Vec<Offsets> = on_conn!(url, c => diesel::sql_query(
        "SELECT topic, partition, count(*) AS rows, count(DISTINCT \"offset\") AS distinct_offsets, max(\"offset\") + 1 AS top \
         FROM (SELECT topic, partition, \"offset\" FROM events UNION ALL SELECT topic, partition, \"offset\" FROM dead_letters) t \
         GROUP BY topic, partition",
    )
    .load(c)
    .unwrap());
    let progress: Vec<Offsets> = on_conn!(url, c => diesel::sql_query(
        "SELECT topic, partition, next_offset AS rows, next_offset AS distinct_offsets, next_offset AS top FROM consumer_offsets",
    )
    .load(c)
    .unwrap());
    (
        rows.into_iter().map(|r| ((r.topic, r.partition), (r.rows, r.distinct_offsets, r.top))).collect(),
        progress.into_iter().map(|r| ((r.topic, r.partition), r.rows)).collect(),
    )
}

fn kill_dash_nine_and_rebalances_during_a_change_stream_end_as_the_model_exactly_once(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = Arc::new(MockKafka::start(1).unwrap());
    let group = format!("g-{}", unique());
    cdc_stream::create(&kafka, kind, &db.url);
    let stream = cdc_stream::generate(23, 40);
    let mut watermarks: ByPartition<i64> = BTreeMap::new();
    for m in &stream.msgs {
        *watermarks.entry((m.topic.to_string(), m.partition)).or_insert(0) += 1;
    }
    let total: i64 = watermarks.values().sum();

    let dir = tempfile::tempdir().unwrap();
    // write_config names one topic: the three, as TOML's list items, in its quotes.
    let topics = format!("{CUSTOMERS}\", \"{ORDERS}\", \"{ITEMS}");
    let endpoints = Endpoints { brokers: kafka.bootstrap_servers(), group: &group, topic: &topics, url: &db.url };
    let projections = format!(
        r#"
[[projection]]
name = "db"
table = "${{source.table}}"
topics = ["{CUSTOMERS}", "{ITEMS}"]
envelope = "debezium"
truncate = true

[[projection]]
name = "orders"
table = "orders"
topics = ["{ORDERS}"]
envelope = "debezium"
map_all_fields = true
[projection.columns]
amount = {{ from = "/amount", type = "numeric", scale = 2 }}
placed_at = {{ from = "/placed_at", type = "timestamptz", unit = "micros" }}
"#
    );
    // A killed member stays in the group until its session times out: keep it short.
    let config = write_config(
        dir.path(),
        &endpoints,
        "\"session.timeout.ms\" = \"2000\"\n\"heartbeat.interval.ms\" = \"200\"",
        "batch_size = 20\nlinger_ms = 10",
        &projections,
    );
    let log = dir.path().join("tributary.log");
    let log_b = dir.path().join("second.log");

    // The stream: 20 records every 50 ms, so the kills and the rebalances land in it.
    let producer = {
        let kafka = kafka.clone();
        let msgs: Vec<(&'static str, i32, Option<String>, Option<String>)> =
            stream.msgs.iter().map(|m| (m.topic, m.partition, m.key.clone(), m.value.clone())).collect();
        std::thread::spawn(move || {
            for chunk in msgs.chunks(20) {
                for (topic, p, key, value) in chunk {
                    kafka.send(topic, Some(*p), key.as_deref().map(str::as_bytes), value.as_deref().map(str::as_bytes), &[]).unwrap();
                }
                kafka.flush().unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let committed = || committed_all(&db.url);
    let mut rng = rand::rng();
    // A second member joins now and leaves after the second kill: two rebalances mid-stream.
    let mut second = Some(start(&config, &log_b));
    for k in 0..KILLS {
        let mut child = start(&config, &log);
        let floor = committed();
        if rng.random_bool(0.5) {
            std::thread::sleep(Duration::from_millis(rng.random_range(200..2_000)));
        } else {
            wait_until("committed progress moves", Duration::from_secs(60), || committed() > floor || committed() == total);
            std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        }
        child.kill().unwrap(); // SIGKILL: no drain, no goodbye
        child.wait().unwrap();
        if k == 1 {
            let mut b = second.take().unwrap();
            sigterm(&b);
            let (exit, _) = wait_exit(&mut b, Duration::from_secs(30));
            let text = std::fs::read_to_string(&log_b).unwrap_or_default();
            assert!(exit.success(), "the second member leaves cleanly: {exit:?}; its log:\n{text}");
        }
    }
    producer.join().unwrap();
    assert!(committed() < total, "the kills landed before the end of the stream ({} of {total})", committed());

    let starts = started_count(&log);
    let mut child = start(&config, &log);
    wait_until("everything committed after the kills", Duration::from_secs(120), || committed() == total);
    wait_until("the last instance started", Duration::from_secs(60), || started_count(&log) > starts);
    assert_replica(&db.url, &stream);
    let (rows, progress) = stored(&db.url);
    let want: ByPartition<(i64, i64, i64)> = watermarks.iter().map(|(k, hw)| (k.clone(), (*hw, *hw, *hw))).collect();
    assert_eq!(rows, want, "per topic and partition (rows, distinct offsets, max + 1): every offset exactly once");
    assert_eq!(progress, watermarks, "consumer_offsets equal the high watermarks");
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM dead_letters WHERE reason = 'not_a_change_event'"), stream.dead as i64);
    sigterm(&child);
    let (exit, _) = wait_exit(&mut child, Duration::from_secs(30));
    assert!(exit.success(), "SIGTERM exits 0, got {exit:?}");
}
