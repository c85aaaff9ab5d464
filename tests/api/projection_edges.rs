//! Projections at their edges (issue 33): tombstones in the archive, NUL characters without it,
//! and start-up errors that say what to do — a table named in the wrong case, a schema missing.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tributary::app;
use tributary_actors::{EventsSpec, ProjectionSpec, Unrouted};

use crate::common::*;
use crate::projections::{orders_spec, orders_table};

on_both_backends!(
    with_the_archive_on_every_offset_is_an_event_or_a_dead_letter_tombstones_too,
    without_the_archive_only_a_nul_a_projection_writes_is_refused,
    a_table_named_in_another_case_is_found_or_named_in_the_error,
    a_schema_that_does_not_exist_is_a_configuration_error_naming_the_fix,
);

const TOKEN: &str = "test-admin-token-0123456789";

fn log() -> slog::Logger {
    tributary::telemetry::discard()
}

fn specs(v: Value) -> Vec<ProjectionSpec> {
    serde_json::from_value(v).expect("projection specs")
}

/// `(topic, partition, offset)` as text: one row's place.
fn place(t: &str, p: i32, o: i64) -> String {
    format!("{t}/{p}/{o}")
}

/// What the model says each offset ends as.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// An `events` row; for a tombstone, its key and its `trace` header (its data is null).
    Event {
        tombstone: Option<(String, String)>,
    },
    Dead(&'static str),
}

/// The rows of `events` with null data: place → "key trace".
fn tombstone_rows(kind: Kind, url: &str) -> BTreeMap<String, String> {
    let (key, trace) = match kind {
        Kind::Postgres => ("convert_from(key, 'UTF8')", "(headers->>'trace')"),
        Kind::Sqlite => ("CAST(key AS TEXT)", "json_extract(headers, '$.trace')"),
    };
    let q = format!(
        "SELECT topic || '/' || CAST(partition AS TEXT) || '/' || CAST(\"offset\" AS TEXT) AS a, {key} || ' ' || {trace} AS b \
         FROM events WHERE data IS NULL"
    );
    query_pairs(url, &q).into_iter().collect()
}

/// Every place in `events` and in the dead letters still live (not redriven): place → reason or "event".
fn places(url: &str) -> BTreeMap<String, String> {
    let q = "SELECT topic || '/' || CAST(partition AS TEXT) || '/' || CAST(\"offset\" AS TEXT) AS a, 'event' AS b FROM events \
             UNION ALL SELECT topic || '/' || CAST(partition AS TEXT) || '/' || CAST(\"offset\" AS TEXT) AS a, reason AS b \
             FROM dead_letters WHERE redriven_at IS NULL";
    let rows = query_pairs(url, q);
    let n = rows.len();
    let map: BTreeMap<String, String> = rows.into_iter().collect();
    assert_eq!(map.len(), n, "no offset is both an event and a live dead letter, nor either twice");
    map
}

/// With `[events] enabled = true`, a tombstone the orders projection takes deletes its row AND is
/// archived (null data, its key and headers kept); one on a topic no projection takes stays an
/// `empty_payload` dead letter. Every offset is exactly one of the two. A redrive of those dead
/// letters under a projection that now takes their topic archives them the same way.
fn with_the_archive_on_every_offset_is_an_event_or_a_dead_letter_tombstones_too(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (taken, passed, group) = (format!("taken-{}", unique()), format!("passed-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&taken, 2).unwrap();
    kafka.create_topic(&passed, 1).unwrap();
    sql(&db.url, &orders_table(kind, "orders"));

    // The model: what each offset ends as, and the table (order → version).
    let (mut ends, mut table) = (BTreeMap::new(), BTreeMap::<i64, i64>::new());
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let n = 160i64;
    for i in 0..n {
        // Keys of the passed topic are apart from the taken topic's, so deleting them later
        // (the redrive) leaves the table as it is.
        let (topic, p, k) = if i % 4 == 3 { (&passed, 0, 100 + i % 10) } else { (&taken, (i % 2) as i32, i % 10) };
        let offset = next.entry((topic.clone(), p)).or_insert(0);
        let at = place(topic, p, *offset);
        *offset += 1;
        let key = json!({"order_id": k}).to_string();
        let trace = format!("t{i}");
        if i % 5 == 0 {
            kafka.send(topic, Some(p), Some(key.as_bytes()), None, &[("trace", trace.as_bytes())]).unwrap();
            if topic == &taken {
                table.remove(&k);
                ends.insert(at, End::Event { tombstone: Some((key, trace)) });
            } else {
                ends.insert(at, End::Dead("empty_payload"));
            }
            continue;
        }
        let body = json!({"specversion": "1.0", "id": format!("e{i}"), "source": "/shop", "type": "com.example.order.updated",
                          "data": {"version": i, "status": "paid"}});
        kafka.send(topic, Some(p), Some(key.as_bytes()), Some(body.to_string().as_bytes()), &[("trace", trace.as_bytes())]).unwrap();
        if topic == &taken {
            table.insert(k, i);
        }
        ends.insert(at, End::Event { tombstone: None });
    }
    kafka.flush().unwrap();

    let start = |topics: Vec<&String>| {
        let mut s = settings(&kafka, &taken, &group, &db.url);
        s.kafka.topics = vec![taken.clone(), passed.clone()];
        let mut spec = orders_spec("orders");
        spec["topics"] = json!(topics);
        s.projections = specs(json!([spec]));
        s.http.admin_token = Some(TOKEN.to_string().into());
        app::spawn(s, log()).unwrap()
    };
    let running = start(vec![&taken]);
    let committed = format!("SELECT CAST(COALESCE(SUM(next_offset), 0) AS BIGINT) AS n FROM consumer_offsets WHERE group_id = '{group}'");
    wait_until("every offset committed", Duration::from_secs(60), || count(&db.url, &committed) == n);

    let want: BTreeMap<String, String> = ends
        .iter()
        .map(|(at, end)| {
            (
                at.clone(),
                match end {
                    End::Event { .. } => "event".to_string(),
                    End::Dead(r) => r.to_string(),
                },
            )
        })
        .collect();
    assert_eq!(places(&db.url), want, "every offset is one events row or one dead letter");
    let tombstones: BTreeMap<String, String> = ends
        .iter()
        .filter_map(|(at, end)| match end {
            End::Event { tombstone: Some((key, trace)) } => Some((at.clone(), format!("{key} {trace}"))),
            _ => None,
        })
        .collect();
    assert!(tombstones.len() >= 20, "{tombstones:?}");
    assert_eq!(tombstone_rows(kind, &db.url), tombstones, "archived tombstones: null data, their key and headers");
    let rows = query_pairs(&db.url, "SELECT CAST(order_id AS TEXT) AS a, CAST(version AS TEXT) AS b FROM orders");
    let got: BTreeMap<i64, i64> = rows.iter().map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())).collect();
    assert_eq!(got, table, "the deletes applied");
    running.stop().unwrap();

    // The projection now takes the passed topic too: its tombstones, redriven, are archived
    // and offered as deletes (of keys the table never had).
    let running = start(vec![&taken, &passed]);
    let auth = format!("Bearer {TOKEN}");
    let (status, body) =
        http_with("POST", running.port, "/dead-letters/redrive", &[("Authorization", &auth)], br#"{"reason": "empty_payload"}"#);
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    let redriven = ends.values().filter(|e| matches!(e, End::Dead(_))).count() as i64;
    assert_eq!((report["redriven"].as_i64(), report["still_failing"].as_i64()), (Some(redriven), Some(0)), "{report}");
    assert_eq!(report["projections"]["orders"]["unchanged"].as_i64(), Some(redriven), "{report}");
    let now = places(&db.url);
    assert_eq!(now.len() as i64, n, "still one place per offset");
    assert!(now.values().all(|v| v == "event"), "{now:?}");
    assert_eq!(tombstone_rows(kind, &db.url).len() as i64, tombstones.len() as i64 + redriven);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM orders") as usize, table.len());
    running.stop().unwrap();
}

/// With the archive off, a NUL in a field no projection reads is nothing to refuse: the message
/// applies. A NUL a projection writes is refused where the backend's INSERT would refuse it —
/// PostgreSQL's text (22021) and jsonb (22P05) — as a `nul_character` dead letter naming the
/// projection and column; SQLite's TEXT keeps it whole.
fn without_the_archive_only_a_nul_a_projection_writes_is_refused(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("nul-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 1).unwrap();
    let (names, docs) = match kind {
        Kind::Postgres => ("CREATE TABLE names (id bigint PRIMARY KEY, name text)", "CREATE TABLE docs (id bigint PRIMARY KEY, doc jsonb)"),
        Kind::Sqlite => ("CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT)", "CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT)"),
    };
    sql(&db.url, names);
    sql(&db.url, docs);
    let messages = [
        r#"{"id": 1, "name": "a", "other": "x\u0000y", "doc": {"k": "v"}}"#,
        r#"{"id": 2, "name": "a\u0000b", "doc": {"k": "v"}}"#,
        r#"{"id": 3, "name": "c", "doc": {"k": "x\u0000"}}"#,
        r#"{"id": 4, "name": "d", "doc": {"k": "v"}}"#,
    ];
    for m in messages {
        kafka.send(&topic, Some(0), None, Some(m.as_bytes()), &[]).unwrap();
    }
    kafka.flush().unwrap();
    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.events = EventsSpec { enabled: false, unrouted: Unrouted::DeadLetter };
    s.projections = specs(json!([
        {"name": "names", "table": "names", "mode": "upsert", "key": ["id"], "columns": {"id": {"from": "/id", "type": "bigint"}, "name": "/name"}},
        {"name": "docs", "table": "docs", "mode": "upsert", "key": ["id"], "columns": {"id": {"from": "/id", "type": "bigint"}, "doc": {"from": "/doc", "type": "jsonb"}}},
    ]));
    let running = app::spawn(s, log()).unwrap();
    wait_until("every offset committed", Duration::from_secs(60), || committed_total(&db.url, &group) == 4);
    let ids = |table: &str| query_pairs(&db.url, &format!("SELECT CAST(id AS TEXT) AS a, '' AS b FROM {table} ORDER BY id"));
    let ids = |table: &str| ids(table).into_iter().map(|(a, _)| a.parse::<i64>().unwrap()).collect::<Vec<_>>();
    let dead =
        query_pairs(&db.url, "SELECT CAST(\"offset\" AS TEXT) || ' ' || reason AS a, detail AS b FROM dead_letters ORDER BY \"offset\"");
    match kind {
        Kind::Postgres => {
            assert_eq!((ids("names"), ids("docs")), (vec![1, 4], vec![1, 4]));
            let reasons: Vec<&str> = dead.iter().map(|(a, _)| a.as_str()).collect();
            assert_eq!(reasons, ["1 nul_character", "2 nul_character"], "{dead:?}");
            assert!(dead[0].1.contains("projection names: column name (text)"), "{dead:?}");
            assert!(dead[1].1.contains("projection docs: column doc (jsonb)"), "{dead:?}");
        }
        Kind::Sqlite => {
            assert!(dead.is_empty(), "{dead:?}");
            assert_eq!((ids("names"), ids("docs")), (vec![1, 2, 3, 4], vec![1, 2, 3, 4]));
            let kept = query_pairs(&db.url, "SELECT hex(name) AS a, '' AS b FROM names WHERE id = 2");
            assert_eq!(kept[0].0, "610062", "the NUL is kept, not cut");
        }
    }
    let (_, metrics) = http("GET", running.port, "/metrics");
    let refused =
        metrics.lines().filter(|l| l.starts_with("tributary_projection_dead_letters_total{") && l.contains("nul_character")).count();
    assert_eq!(refused, if kind == Kind::Postgres { 2 } else { 0 }, "{metrics}");
    running.stop().unwrap();
}

/// PostgreSQL's names are case-sensitive as tributary quotes them: a table created as "Orders"
/// is not `orders`, and the error names the one that exists. SQLite compares names without case.
fn a_table_named_in_another_case_is_found_or_named_in_the_error(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("case-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 1).unwrap();
    sql(&db.url, &orders_table(kind, "\"Orders\""));
    let start = |table: &str| {
        let mut s = settings(&kafka, &topic, &group, &db.url);
        s.projections = specs(json!([orders_spec(table)]));
        app::spawn(s, log())
    };
    match kind {
        Kind::Postgres => {
            let e = start("orders").err().expect("no table orders").to_string();
            assert!(e.contains("projection.orders.table") && e.contains("does not exist") && e.contains(r#"table = "Orders""#), "{e}");
            sql(&db.url, &format!("CREATE SCHEMA shop; {}", orders_table(kind, "shop.\"Items\"")));
            let e = start("Shop.items").err().expect("no table Shop.items").to_string();
            assert!(e.contains(r#"table = "shop.Items""#), "{e}");
            let e = start("nothing").err().expect("no table nothing").to_string();
            assert!(e.contains("does not exist") && !e.contains("another case"), "{e}");
            start("Orders").expect("the name as created").stop().unwrap();
        }
        Kind::Sqlite => start("orders").expect("SQLite finds \"Orders\" as orders").stop().unwrap(),
    }
}

/// A table in a schema that does not exist — created with `create_table` or not — fails the
/// start with exit code 2, naming `projection.<name>.table` and the fix.
fn a_schema_that_does_not_exist_is_a_configuration_error_naming_the_fix(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let dir = tempfile::tempdir().unwrap();
    for create_table in [true, false] {
        let config = dir.path().join("tributary.toml");
        std::fs::write(
            &config,
            format!(
                "[kafka]\nbrokers = \"127.0.0.1:9\"\ntopics = [\"orders\"]\n[database]\nurl = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
                 [[projection]]\nname = \"made\"\ntable = \"nope.made\"\nmode = \"upsert\"\nkey = [\"id\"]\ncreate_table = {create_table}\n\
                 [projection.columns]\nid = {{ from = \"/id\", type = \"bigint\" }}\n",
                db.url
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tributary")).args(["run", "--config"]).arg(&config).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "create_table = {create_table}: {said}");
        assert!(said.contains("projection.made.table"), "create_table = {create_table}: {said}");
        assert!(said.contains("schema") && said.contains("CREATE SCHEMA"), "create_table = {create_table}: {said}");
    }
}
