//! One projection for many tables (`table = "${source.table}"`): the generated stream's
//! customers and items through one template projection end as the model; a change naming a
//! table that is not there, or one of tributary's own, is a `projection_no_table` dead letter
//! while the rest applies, and a redrive once the table is there writes it.

use std::time::Duration;

use serde_json::{json, Value};
use tributary::app;

use crate::cdc::assert_replica;
use crate::cdc_stream::{self, CUSTOMERS, ITEMS};
use crate::common::*;

on_both_backends!(a_template_projection_writes_each_table_its_changes_name,);

const EXTRA: &str = "db.public.extra";
const TOKEN: &str = "template-test-token-0123456789";

fn change(table: &str, id: i64, note: &str) -> String {
    json!({"before": null, "after": {"id": id, "note": note}, "op": "c", "ts_ms": 1,
           "source": {"connector": "postgresql", "table": table, "schema": "public", "lsn": id}})
    .to_string()
}

fn a_template_projection_writes_each_table_its_changes_name(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let group = format!("g-{}", unique());
    cdc_stream::create(&kafka, kind, &db.url);
    kafka.create_topic(EXTRA, 1).unwrap();
    let stream = cdc_stream::generate(23, 10);
    for m in &stream.msgs {
        kafka.send(m.topic, Some(m.partition), m.key.as_deref().map(str::as_bytes), m.value.as_deref().map(str::as_bytes), &[]).unwrap();
    }
    kafka.flush().unwrap();

    let mut s = settings(&kafka, CUSTOMERS, &group, &db.url);
    s.kafka.topics = vec!["^db\\.public\\..*".into()];
    s.http.admin_token = Some(TOKEN.to_string().into());
    // Customers and items (every field mapped, truncates applied) through one template; orders
    // (its own columns, truncates skipped) as the stream's own projection has it.
    let mut projections: Vec<Value> = cdc_stream::projections().as_array().unwrap().clone();
    projections.retain(|p| p["name"] == "orders");
    projections.push(json!({"name": "db", "table": "${source.table}", "topics": [CUSTOMERS, ITEMS, EXTRA],
                            "envelope": "debezium", "truncate": true}));
    s.projections = serde_json::from_value(Value::Array(projections)).unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    let mut produced = stream.msgs.len() as i64;
    wait_until("every offset committed", Duration::from_secs(120), || committed_all(&db.url) == produced);
    assert_replica(&db.url, &stream);

    // The ops went to each table, counted under the projection and by table.
    let (_, metrics) = http("GET", running.port, "/metrics");
    let sum = |filter: &str| -> f64 {
        metrics.lines().filter(|l| l.contains(filter)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    for table in ["customers", "items"] {
        assert!(sum(&format!("tributary_projection_table_rows_total{{projection=\"db\",table=\"{table}\"")) > 0.0, "{table}: {metrics}");
    }
    assert_eq!(
        sum("tributary_projection_table_rows_total{projection=\"db\""),
        sum("tributary_projection_rows_total{projection=\"db\""),
        "every op of the template's is counted by table: {metrics}"
    );
    assert_eq!(sum("tributary_projection_truncates_total{projection=\"db\"}"), stream.truncates_applied as f64);
    assert_eq!(
        sum("tributary_projection_table_ignored_fields_total{projection=\"db\",table=\"customers\"}"),
        stream.ignored_fields as f64,
        "the customers' fields the replica lacks, counted by table"
    );
    assert!(sum("tributary_projection_rows_total{projection=\"orders\"") > 0.0);
    let (_, status) = http("GET", running.port, "/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["tables_reached"], json!({"db": ["customers", "items"]}), "{status}");

    // A table that is not there and one of tributary's own: dead letters, the rest applies.
    for (i, (table, note)) in [("extra_rows", "a"), ("events", "b"), ("extra_rows", "c"), ("extra_rows", "d")].iter().enumerate() {
        let id = i as i64 + 1;
        let key = json!({"id": id}).to_string();
        kafka.send(EXTRA, Some(0), Some(key.as_bytes()), Some(change(table, id, note).as_bytes()), &[]).unwrap();
    }
    kafka.flush().unwrap();
    produced += 4;
    wait_until("the extra changes committed", Duration::from_secs(60), || committed_all(&db.url) == produced);
    let dead =
        query_pairs(&db.url, "SELECT reason AS a, detail AS b FROM dead_letters WHERE reason <> 'not_a_change_event' ORDER BY \"offset\"");
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(dead.iter().all(|(r, _)| r == "projection_no_table"), "{dead:?}");
    assert!(dead[0].1.contains("extra_rows") && dead[0].1.contains("does not exist") && dead[0].1.contains("redrive"), "{dead:?}");
    assert!(dead[1].1.contains("tributary's own tables"), "{dead:?}");

    // Once the table is there, a redrive writes its changes (the own table's stays refused).
    sql(&db.url, "CREATE TABLE extra_rows (id integer PRIMARY KEY, note text)");
    let auth = format!("Bearer {TOKEN}");
    let (code, answer) =
        http_with("POST", running.port, "/dead-letters/redrive", &[("Authorization", &auth)], br#"{"topic": "db.public.extra"}"#);
    assert_eq!(code, 200, "{answer}");
    let rows = query_pairs(&db.url, "SELECT CAST(id AS TEXT) AS a, note AS b FROM extra_rows ORDER BY id");
    assert_eq!(rows, [("1", "a"), ("3", "c"), ("4", "d")].map(|(a, b)| (a.to_string(), b.to_string())), "{answer}");
    let left = query_pairs(
        &db.url,
        "SELECT reason AS a, detail AS b FROM dead_letters WHERE reason <> 'not_a_change_event' AND redriven_at IS NULL",
    );
    assert_eq!(left.len(), 1, "{left:?}");
    // And a change after it goes straight in: the table is found by the next batch.
    kafka.send(EXTRA, Some(0), Some(br#"{"id":5}"#), Some(change("extra_rows", 5, "e").as_bytes()), &[]).unwrap();
    kafka.flush().unwrap();
    produced += 1;
    wait_until("the last change committed", Duration::from_secs(60), || committed_all(&db.url) == produced);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM extra_rows"), 4);
    running.stop().unwrap();
}
