//! Change data capture end to end (`envelope = "debezium"`): a generated Debezium stream over
//! three tables into replica tables equal to a model the test computes itself, and the change
//! events Debezium's own documentation shows, on both backends.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use serde_json::{json, Value};
use tributary::app;

use crate::cdc_stream::{self, Table, CUSTOMERS};
use crate::common::*;

on_both_backends!(a_generated_change_stream_ends_as_the_model, the_events_debeziums_documentation_shows_apply_as_it_says,);

fn log() -> slog::Logger {
    tributary::telemetry::discard()
}

/// A row read back as text: the key, then up to six columns.
#[derive(QueryableByName, Debug)]
struct Text7 {
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = Nullable<Text>)]
    a: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    b: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    d: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    e: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    f: Option<String>,
}

pub(crate) fn read(url: &str, pg: &str, sqlite: &str) -> BTreeMap<String, Vec<Option<String>>> {
    let rows: Vec<Text7> = on_conn!(url, c => {
        let q = if url.starts_with("sqlite://") { sqlite } else { pg };
        diesel::sql_query(q).load(c).unwrap()
    });
    rows.into_iter().map(|r| (r.k, vec![r.a, r.b, r.c, r.d, r.e, r.f])).collect()
}

/// The model's rows with `columns` in order (the rest padded), JSON columns parsed.
fn modelled(t: &Table, columns: &[&str]) -> BTreeMap<String, Vec<Option<String>>> {
    t.iter()
        .map(|(k, row)| {
            let mut v: Vec<Option<String>> = columns.iter().map(|c| row[c].clone()).collect();
            v.resize(6, None);
            (k.clone(), v)
        })
        .collect()
}

/// JSON text compared as JSON (jsonb writes its own spacing and key order).
fn as_json(mut rows: BTreeMap<String, Vec<Option<String>>>, at: usize) -> BTreeMap<String, Vec<Option<String>>> {
    for v in rows.values_mut() {
        v[at] = v[at].as_deref().map(|s| serde_json::from_str::<Value>(s).expect("JSON").to_string());
    }
    rows
}

fn assert_table(name: &str, got: BTreeMap<String, Vec<Option<String>>>, want: BTreeMap<String, Vec<Option<String>>>) {
    let wrong: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(3).map(|(k, v)| (k, v, got.get(k))).collect();
    assert!(
        wrong.is_empty(),
        "{name}: rows differ from the model (key, model, table): {wrong:?} ({} rows, the model {})",
        got.len(),
        want.len()
    );
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).take(3).collect();
    assert!(extra.is_empty(), "{name}: rows the model does not have: {extra:?}");
}

/// The three replica tables equal the stream's model.
pub(crate) fn assert_replica(url: &str, stream: &cdc_stream::Stream) {
    let customers = read(
        url,
        "SELECT id::text AS k, name AS a, balance::text AS b, born::text AS c, \
         to_char(seen, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS d, notes AS e, doc::text AS f FROM customers",
        "SELECT CAST(id AS TEXT) AS k, name AS a, balance AS b, born AS c, seen AS d, notes AS e, doc AS f FROM customers",
    );
    let dead = query_pairs(url, "SELECT reason AS a, detail AS b FROM dead_letters WHERE reason <> 'not_a_change_event' LIMIT 3");
    assert!(dead.is_empty(), "no other dead letters: {dead:?}");
    let want = modelled(&stream.customers, &["name", "balance", "born", "seen", "notes", "doc"]);
    assert_table("customers", as_json(customers, 5), as_json(want, 5));
    let orders = read(
        url,
        "SELECT order_id::text AS k, customer_id::text AS a, amount::text AS b, \
         to_char(placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS c, \
         NULL AS d, NULL AS e, NULL AS f FROM orders",
        "SELECT CAST(order_id AS TEXT) AS k, CAST(customer_id AS TEXT) AS a, amount AS b, placed_at AS c, \
         NULL AS d, NULL AS e, NULL AS f FROM orders",
    );
    assert_table("orders", orders, modelled(&stream.orders, &["customer_id", "amount", "placed_at"]));
    let items = read(
        url,
        "SELECT order_id::text || '/' || line::text AS k, sku AS a, qty::text AS b, NULL AS c, NULL AS d, NULL AS e, NULL AS f FROM items",
        "SELECT CAST(order_id AS TEXT) || '/' || CAST(line AS TEXT) AS k, sku AS a, CAST(qty AS TEXT) AS b, \
         NULL AS c, NULL AS d, NULL AS e, NULL AS f FROM items",
    );
    assert_table("items", items, modelled(&stream.items, &["sku", "qty"]));
}

fn a_generated_change_stream_ends_as_the_model(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let group = format!("g-{}", unique());
    cdc_stream::create(&kafka, kind, &db.url);
    let stream = cdc_stream::generate(11, 12);
    assert!(stream.customers.len() > 50 && stream.items.len() > 20 && stream.ignored_fields > 10, "the stream has rows");
    for m in &stream.msgs {
        kafka.send(m.topic, Some(m.partition), m.key.as_deref().map(str::as_bytes), m.value.as_deref().map(str::as_bytes), &[]).unwrap();
    }
    kafka.flush().unwrap();

    let mut s = settings(&kafka, CUSTOMERS, &group, &db.url);
    // One regex subscription takes the three tables' topics.
    s.kafka.topics = vec!["^db\\.public\\..*".into()];
    s.projections = serde_json::from_value(cdc_stream::projections()).unwrap();
    let running = app::spawn(s, log()).unwrap();
    let produced = stream.msgs.len() as i64;
    wait_until("every offset committed", Duration::from_secs(120), || committed_all(&db.url) == produced);

    assert_replica(&db.url, &stream);

    // Each message that is no change event is one dead letter; the others are counted.
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM dead_letters WHERE reason = 'not_a_change_event'"), stream.dead as i64);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM dead_letters"), stream.dead as i64);
    let (_, metrics) = http("GET", running.port, "/metrics");
    let metric = |name: &str, labels: &[(&str, &str)]| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(metric("tributary_projection_skipped_total", &[("what", "tombstone")]), stream.tombstones as f64, "{metrics}");
    assert_eq!(
        metric("tributary_projection_skipped_total", &[("projection", "orders"), ("what", "truncate")]),
        stream.truncates_skipped as f64
    );
    assert_eq!(metric("tributary_projection_truncates_total", &[("projection", "items")]), stream.truncates_applied as f64);
    assert!(metric("tributary_projection_skipped_total", &[("projection", "items"), ("what", "not_a_row")]) >= 1.0, "the heartbeats");
    assert_eq!(metric("tributary_projection_ignored_fields_total", &[("projection", "customers")]), stream.ignored_fields as f64);
    assert_eq!(
        metric("tributary_projection_dead_letters_total", &[("projection", "orders"), ("reason", "not_a_change_event")]),
        stream.dead as f64
    );
    running.stop().unwrap();
}

/// One of the events committed under tests/cdc/debezium-docs (Debezium's documentation).
struct DocEvent {
    key: Option<String>,
    value: String,
    payload_only: String,
}

fn doc_event(name: &str) -> DocEvent {
    let path = format!("{}/tests/cdc/debezium-docs/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the fixture")).expect("JSON");
    let value = &doc["value"];
    DocEvent {
        key: (!doc["key"].is_null()).then(|| doc["key"].to_string()),
        value: value.to_string(),
        payload_only: value.get("payload").unwrap_or(value).to_string(),
    }
}

fn the_events_debeziums_documentation_shows_apply_as_it_says(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let group = format!("g-{}", unique());
    let topics = ["PostgreSQL_server.public.customers", "mysql-server-1.inventory.customers"];
    for t in topics {
        kafka.create_topic(t, 1).unwrap();
    }
    let ddl = |table: &str| {
        format!("CREATE TABLE {table} (id integer PRIMARY KEY, first_name varchar(255) NOT NULL, last_name varchar(255) NOT NULL, email varchar(255) NOT NULL)")
    };
    sql(&db.url, &ddl("pg_customers"));
    sql(&db.url, &ddl("my_customers"));
    let mut s = settings(&kafka, topics[0], &group, &db.url);
    s.kafka.topics = topics.iter().map(|t| t.to_string()).collect();
    s.projections = serde_json::from_value(json!([
        {"name": "pg", "table": "pg_customers", "topics": [topics[0]], "envelope": "debezium", "truncate": true},
        {"name": "my", "table": "my_customers", "topics": [topics[1]], "envelope": "debezium", "truncate": true},
    ]))
    .unwrap();
    let running = app::spawn(s, log()).unwrap();
    let mut sent = 0i64;
    let mut send = |topic: &str, key: Option<&str>, value: Option<&str>| {
        kafka.send(topic, Some(0), key.map(str::as_bytes), value.map(str::as_bytes), &[]).unwrap();
        kafka.flush().unwrap();
        sent += 1;
        let want = sent;
        wait_until("the event committed", Duration::from_secs(60), || committed_all(&db.url) == want);
    };
    let rows = |table: &str| -> Vec<(String, Option<String>)> {
        let q = format!(
            "SELECT CAST(id AS TEXT) AS k, first_name AS a, last_name AS b, email AS c, NULL AS d, NULL AS e, NULL AS f FROM {table}"
        );
        read(&db.url, &q, &q).into_iter().map(|(k, v)| (k, v[0].clone())).collect()
    };
    let anne = |id: &str, name: &str| vec![(id.to_string(), Some(name.to_string()))];
    // PostgreSQL's with the keys its documentation shows; MySQL's without a key (its documented
    // key names row 1001, its events row 1004): a delete then finds its row by `before`.
    for (topic, table, prefix, id, with_key) in
        [(topics[0], "pg_customers", "postgresql", "1", true), (topics[1], "my_customers", "mysql", "1004", false)]
    {
        for wrapped in [true, false] {
            let ev = |op: &str| doc_event(&format!("{prefix}-{op}"));
            let value = |e: &DocEvent| if wrapped { e.value.clone() } else { e.payload_only.clone() };
            let key = |e: &DocEvent| if with_key { e.key.clone() } else { None };
            let create = ev("create");
            send(topic, key(&create).as_deref(), Some(&value(&create)));
            assert_eq!(rows(table), anne(id, "Anne"), "{prefix} create (wrapped: {wrapped})");
            let update = ev("update");
            send(topic, key(&update).as_deref(), Some(&value(&update)));
            assert_eq!(rows(table), anne(id, "Anne Marie"), "{prefix} update (wrapped: {wrapped})");
            let delete = ev("delete");
            send(topic, key(&delete).as_deref(), Some(&value(&delete)));
            assert_eq!(rows(table), vec![], "{prefix} delete (wrapped: {wrapped})");
            // The tombstone that follows a delete is passed over.
            send(topic, key(&delete).as_deref().or(Some(r#"{"id":1004}"#)), None);
            send(topic, key(&create).as_deref(), Some(&value(&create)));
            assert_eq!(rows(table), anne(id, "Anne"));
            let truncate = ev("truncate");
            send(topic, None, Some(&value(&truncate)));
            assert_eq!(rows(table), vec![], "{prefix} truncate (wrapped: {wrapped})");
        }
    }
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM dead_letters"), 0);
    let (_, metrics) = http("GET", running.port, "/metrics");
    assert!(metrics.contains("tributary_projection_skipped_total{projection=\"pg\",what=\"tombstone\"} 2"), "{metrics}");
    assert!(metrics.contains("tributary_projection_truncates_total{projection=\"my\"} 2"), "{metrics}");
    running.stop().unwrap();
}
