//! Tables made and widened from the change events' schema: a template projection with
//! `create_table = true` and `schema_evolution = "add_columns"` on an empty database creates the
//! table its first change names (the schema's fields as columns, the Kafka key's as primary
//! key), adds the field a later schema version brings, and ends equal to the model; a field sent
//! without a schema is ignored (counted), on both backends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tributary::app;

use crate::cdc::read;
use crate::cdc_stream::{date, decimal_b64, envelope_schema, field, micros};
use crate::common::*;

on_both_backends!(a_table_is_created_and_widened_from_the_change_events_schema,);

const TOPIC: &str = "srv.public.gadgets";

/// The source table's columns at schema `version`: 1, then 2 with `color`, 3 with `size` too.
fn fields(version: u8) -> Vec<Value> {
    let mut f = vec![
        json!({"type": "int32", "optional": false, "field": "id"}),
        field("name", "string", None, None),
        field("price", "bytes", Some("org.apache.kafka.connect.data.Decimal"), Some(json!({"scale": "2"}))),
        field("made", "int64", Some("io.debezium.time.MicroTimestamp"), None),
        field("since", "int32", Some("io.debezium.time.Date"), None),
        field("spec", "string", Some("io.debezium.data.Json"), None),
    ];
    if version >= 2 {
        f.push(field("color", "string", None, None));
    }
    if version >= 3 {
        f.push(field("size", "int16", None, None));
    }
    f
}

/// One gadget's change, wrapped with its schema (`None`: the payload alone) and its key.
fn change(op: &str, id: i64, after: Option<Value>, schema: Option<u8>) -> (String, String) {
    let payload = json!({"before": if op == "d" { json!({"id": id}) } else { Value::Null }, "after": after, "op": op, "ts_ms": 1,
                         "source": {"connector": "postgresql", "table": "gadgets", "lsn": id}});
    let key = json!({"schema": {"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}]}, "payload": {"id": id}});
    let value = match schema {
        Some(version) => json!({"schema": envelope_schema("gadgets", &fields(version)), "payload": payload}),
        None => payload,
    };
    (key.to_string(), value.to_string())
}

fn image(id: i64, name: &str, cents: i64, made_us: i64, days: i64, color: Option<&str>) -> Value {
    let mut v = json!({"id": id, "name": name, "price": decimal_b64(cents), "made": made_us, "since": days, "spec": "{\"w\": 2}"});
    if let Some(c) = color {
        v["color"] = json!(c);
    }
    v
}

fn a_table_is_created_and_widened_from_the_change_events_schema(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    kafka.create_topic(TOPIC, 1).unwrap();
    let group = format!("g-{}", unique());
    let made = 1_700_000_000_123_456;
    let msgs = [
        change("c", 1, Some(image(1, "bolt", 1234, made, -400, None)), Some(1)),
        change("c", 2, Some(image(2, "nut", 5, made + 1, 19_000, None)), Some(1)),
        change("u", 1, Some(image(1, "bolt v2", -99, made + 2, -400, None)), Some(1)),
        // The source table gained a column: the next schema version has it.
        change("c", 3, Some(image(3, "gear", 100_000, made + 3, 0, Some("red"))), Some(2)),
        change("u", 1, Some(image(1, "bolt v2", -99, made + 2, -400, Some("blue"))), Some(2)),
        // Without a schema a new field is only ignored (and counted): its type is not known.
        change(
            "u",
            3,
            Some({
                let mut v = image(3, "gear", 100_000, made + 3, 0, Some("red"));
                v["weight"] = json!(7);
                v["price"] = json!("1000.00");
                // Values only a schema tells the meaning of stay out (their columns keep theirs).
                for f in ["made", "since", "spec"] {
                    v.as_object_mut().unwrap().remove(f);
                }
                v
            }),
            None,
        ),
        change("d", 2, None, Some(2)),
    ];
    for (key, value) in &msgs {
        kafka.send(TOPIC, Some(0), Some(key.as_bytes()), Some(value.as_bytes()), &[]).unwrap();
    }
    kafka.flush().unwrap();

    let mut s = settings(&kafka, TOPIC, &group, &db.url);
    s.projections = serde_json::from_value(json!([{"name": "auto", "table": "${source.table}", "topics": ["srv.public.*"],
        "envelope": "debezium", "create_table": true, "schema_evolution": "add_columns"}]))
    .unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    wait_until("every offset committed", Duration::from_secs(60), || committed_all(&db.url) == msgs.len() as i64);
    let dead = query_pairs(&db.url, "SELECT reason AS a, detail AS b FROM dead_letters");
    assert!(dead.is_empty(), "{dead:?}");

    // The model, by id: name, price, made, since, spec, color.
    let ts = |us: i64| micros(us, "");
    let row = |v: [String; 5], color: &str| -> Vec<Option<String>> { v.into_iter().map(Some).chain([Some(color.to_string())]).collect() };
    let want = BTreeMap::from([
        ("1".to_string(), row(["bolt v2".into(), "-0.99".into(), ts(made + 2), date(-400), r#"{"w":2}"#.into()], "blue")),
        ("3".to_string(), row(["gear".into(), "1000.00".into(), ts(made + 3), date(0), r#"{"w":2}"#.into()], "red")),
    ]);
    let mut got = read(
        &db.url,
        "SELECT id::text AS k, name AS a, price::text AS b, to_char(made, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS c, since::text AS d, \
         spec::text AS e, color AS f FROM gadgets",
        "SELECT CAST(id AS TEXT) AS k, name AS a, price AS b, made AS c, since AS d, spec AS e, color AS f FROM gadgets",
    );
    for v in got.values_mut() {
        v[4] = v[4].as_deref().map(|s| serde_json::from_str::<Value>(s).unwrap().to_string());
    }
    assert_eq!(got, want);
    if kind == Kind::Postgres {
        let types = query_pairs(
            &db.url,
            "SELECT column_name AS a, data_type AS b FROM information_schema.columns WHERE table_name = 'gadgets' ORDER BY ordinal_position",
        );
        let want: Vec<(String, String)> = [
            ("id", "integer"),
            ("name", "text"),
            ("price", "numeric"),
            ("made", "timestamp without time zone"),
            ("since", "date"),
            ("spec", "jsonb"),
            ("color", "text"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .into();
        assert_eq!(types, want);
    }

    // A column added by someone else (another member, by hand) since the writer read the
    // table: the next schema's field is found there, not added twice.
    sql(&db.url, "ALTER TABLE gadgets ADD COLUMN size smallint");
    let mut v = image(1, "bolt v3", -99, made + 2, -400, Some("blue"));
    v["size"] = json!(4);
    let (key, value) = change("u", 1, Some(v), Some(3));
    kafka.send(TOPIC, Some(0), Some(key.as_bytes()), Some(value.as_bytes()), &[]).unwrap();
    kafka.flush().unwrap();
    wait_until("the last change committed", Duration::from_secs(60), || committed_all(&db.url) == msgs.len() as i64 + 1);
    let sized = query_pairs(&db.url, "SELECT name AS a, CAST(size AS TEXT) AS b FROM gadgets WHERE id = 1");
    assert_eq!(sized, [("bolt v3".to_string(), "4".to_string())]);
    let (_, metrics) = http("GET", running.port, "/metrics");
    assert!(metrics.contains("tributary_projection_columns_added_total{projection=\"auto\",table=\"gadgets\"} 1"), "{metrics}");
    assert!(metrics.contains("tributary_projection_ignored_fields_total{projection=\"auto\"} 1"), "{metrics}");
    let (_, status) = http("GET", running.port, "/status");
    assert_eq!(serde_json::from_str::<Value>(&status).unwrap()["tables_reached"], json!({"auto": ["gadgets"]}));
    running.stop().unwrap();
}
