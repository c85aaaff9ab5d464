//! Exact or refused, end to end: numbers, times and fixed-length text sent through Kafka reach
//! the user's table as sent (or as the column's declared precision stores them), and what a
//! column cannot hold is a dead letter with a reason — configured in TOML as an operator would.

use std::time::Duration;

use serde_json::json;
use tributary::app;
use tributary::config::Settings;

use crate::common::*;

on_both_backends!(numbers_times_and_fixed_text_arrive_exactly_or_as_dead_letters);

/// The projection as an operator writes it: types from the table, a declared decimal, an epoch
/// in microseconds.
const PROJECTION: &str = r#"
[[projection]]
name = "readings"
table = "readings"
mode = "upsert"
key = ["id"]
[projection.columns]
id = "/id"
code = "/code"
amount = { from = "/amount", type = "numeric" }
big = "/big"
doc = "/doc"
n = "/n"
at = { from = "/at", type = "timestamptz", unit = "micros" }
day = "/day"
"#;

fn numbers_times_and_fixed_text_arrive_exactly_or_as_dead_letters(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("exact-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 1).unwrap();
    let (decimal, json_type) = match kind {
        Kind::Postgres => ("numeric", "jsonb"),
        Kind::Sqlite => ("DECIMAL_TEXT", "TEXT"),
    };
    sql(
        &db.url,
        &format!(
            "CREATE TABLE readings (id bigint PRIMARY KEY, code char(2), amount {decimal}, big text, doc {json_type}, \
             n bigint, at timestamptz, day date)"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("tributary.toml");
    let service = format!(
        "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{group}\"\ntopics = [\"{topic}\"]\n[database]\nurl = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n",
        kafka.bootstrap_servers(),
        db.url
    );
    std::fs::write(&toml, service + PROJECTION).unwrap();
    let messages = [
        json!({"id": 1, "code": "US"}).to_string(),
        json!({"id": 2, "code": "UK"}).to_string(),
        r#"{"id": 3, "amount": 99999999999999999999999.99, "big": 12345678901234567890123, "doc": {"x": 1e400}}"#.to_string(),
        r#"{"id": 4, "n": 9007199254740993.0, "at": 1700000000000000, "day": 19279}"#.to_string(),
        r#"{"id": 5, "n": -9223372036854775809}"#.to_string(),
        r#"{"id": 6, "at": "noon"}"#.to_string(),
    ];
    for m in &messages {
        kafka.send(&topic, Some(0), None, Some(m.as_bytes()), &[]).unwrap();
    }
    kafka.flush().unwrap();
    let s = Settings::load(Some(&toml), &Default::default()).expect("the TOML is valid");
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    wait_until("every offset committed", Duration::from_secs(60), || committed_total(&db.url, &group) == messages.len() as i64);
    running.stop().unwrap();

    let dead = query_pairs(&db.url, "SELECT CAST(\"offset\" AS TEXT) AS a, reason AS b FROM dead_letters ORDER BY \"offset\"");
    let want = [("4", "projection_type"), ("5", "projection_type")];
    assert_eq!(dead, want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec(), "out of range and not a time: refused");
    let text = |col: &str| {
        query_pairs(
            &db.url,
            &format!("SELECT CAST(id AS TEXT) AS a, CAST({col} AS TEXT) AS b FROM readings WHERE {col} IS NOT NULL ORDER BY id"),
        )
    };
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(text("code"), pairs(&[("1", "US"), ("2", "UK")]));
    assert_eq!(text("amount"), pairs(&[("3", "99999999999999999999999.99")]));
    assert_eq!(text("big"), pairs(&[("3", "12345678901234567890123")]));
    let doc = match kind {
        Kind::Postgres => format!(r#"{{"x": 1{}}}"#, "0".repeat(400)),
        Kind::Sqlite => r#"{"x":1e400}"#.to_string(),
    };
    assert_eq!(text("doc"), vec![("3".to_string(), doc)]);
    assert_eq!(text("n"), pairs(&[("4", "9007199254740993")]));
    let (at, day) = match kind {
        Kind::Postgres => ("2023-11-14 22:13:20+00", "2022-10-14"),
        Kind::Sqlite => ("2023-11-14T22:13:20.000000Z", "2022-10-14"),
    };
    let at_text = match kind {
        Kind::Postgres => query_pairs(&db.url, "SELECT CAST(id AS TEXT) AS a, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00' AS b FROM readings WHERE at IS NOT NULL"),
        Kind::Sqlite => text("at"),
    };
    assert_eq!(at_text, pairs(&[("4", at)]));
    assert_eq!(text("day"), pairs(&[("4", day)]));
}
