//! Debezium change events in Avro through a schema registry, framed by Confluent's own
//! serializer with the schema Debezium's Avro converter writes (`connect.name` logical types,
//! unions of null and the row): the same replica as the JSON converter's events give.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tributary::app;

use crate::common::registry::{framed, produce_framed, SchemaRegistry};
use crate::common::*;
use crate::registry::registry_settings;

/// The value schema of table `customers`, as Debezium's Avro converter registers it.
fn envelope() -> String {
    json!({"type": "record", "name": "Envelope", "namespace": "dbserver1.inventory.customers", "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
            {"name": "id", "type": "int"},
            {"name": "name", "type": "string"},
            {"name": "balance", "type": ["null", {"type": "bytes", "scale": 2, "precision": 12, "connect.version": 1,
                "connect.parameters": {"scale": "2", "connect.decimal.precision": "12"},
                "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}], "default": null},
            {"name": "born", "type": ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}], "default": null},
            {"name": "seen", "type": ["null", {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTimestamp"}], "default": null},
            {"name": "notes", "type": ["null", "string"], "default": null},
            {"name": "doc", "type": ["null", {"type": "string", "connect.version": 1, "connect.name": "io.debezium.data.Json"}], "default": null}],
            "connect.name": "dbserver1.inventory.customers.Value"}], "default": null},
        {"name": "after", "type": ["null", "Value"], "default": null},
        {"name": "source", "type": {"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql", "fields": [
            {"name": "connector", "type": "string"}, {"name": "table", "type": "string"},
            {"name": "lsn", "type": ["null", "long"], "default": null},
            {"name": "sequence", "type": ["null", "string"], "default": null}]}},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": null}],
        "connect.name": "dbserver1.inventory.customers.Envelope"})
    .to_string()
}

const KEY: &str =
    r#"{"type": "record", "name": "Key", "namespace": "dbserver1.inventory.customers", "fields": [{"name": "id", "type": "int"}]}"#;

/// A customer's row as the serializer takes it (the decimal tagged for Python).
fn row(id: i64, name: &str, cents: &str, born: i64, seen: i64, notes: &str) -> Value {
    json!({"id": id, "name": name, "balance": {"$decimal": cents}, "born": born, "seen": seen, "notes": notes, "doc": "{\"tags\": [1, 2.50]}"})
}

fn change(op: &str, lsn: i64, before: Value, after: Value) -> Value {
    let source = json!({"connector": "postgresql", "table": "customers", "lsn": lsn, "sequence": format!("[\"{}\",\"{lsn}\"]", lsn - 1)});
    framed("avro", &envelope(), json!({"before": before, "after": after, "source": source, "op": op, "ts_ms": 1_700_000_000_000i64}))
}

fn key(id: i64) -> Value {
    let mut m = framed("avro", KEY, json!({"id": id}));
    m["field"] = json!("key");
    m
}

#[test]
fn avro_change_events_through_the_registry_make_the_replica() {
    replica_from_avro(false);
}

/// The same, the table created from the registry's schema on the first change.
#[test]
fn avro_change_events_create_their_table_from_the_registry_schema() {
    replica_from_avro(true);
}

fn replica_from_avro(create: bool) {
    let Some(mut f) = Fixture::new(Kind::Postgres, "cdcavro", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    if !create {
        sql(
            &f.db.url,
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, balance numeric(12,2), born date, seen timestamp(6), \
             notes text, doc jsonb, src_position numeric(40,0))",
        );
    }
    let (a, b) = (row(1, "Anne", "-12.30", -1, 1_700_000_000_123_456, "long notes"), row(2, "Bob", "0.05", 19_782, 0, "b"));
    let a_update = a.clone();
    let a2 = json!({"id": 1, "name": "Anne Marie", "balance": {"$decimal": "99999.99"}, "born": -1, "seen": 253_402_300_799_999_999i64,
                    "notes": "__debezium_unavailable_value", "doc": "{\"tier\": \"gold\"}"});
    let messages = vec![
        key(1),
        change("r", 10, Value::Null, a.clone()),
        key(2),
        change("c", 20, Value::Null, b.clone()),
        key(1),
        change("u", 30, a_update, a2),
        key(2),
        change("d", 40, b, Value::Null),
        // A replay of key 1's snapshot read (a connector restarted from an older offset): its
        // position is older than the row's, so newer_wins keeps the update.
        key(1),
        change("r", 10, Value::Null, a.clone()),
    ];
    let out = produce_framed(&registry.url, &f.topic, &messages);
    for (i, kv) in out.chunks(2).enumerate() {
        f.kafka.send(&f.topic, Some(0), Some(kv[0].as_slice()), Some(kv[1].as_slice()), &[]).unwrap();
        if i == 3 {
            // Debezium's tombstone after the delete: the key, no value.
            f.kafka.send(&f.topic, Some(0), Some(kv[0].as_slice()), None, &[]).unwrap();
        }
    }
    f.kafka.flush().unwrap();
    f.sent(0, 6);

    let mut s = registry_settings(&f, &registry.url);
    s.projections = serde_json::from_value(json!([{"name": "customers", "table": "customers", "envelope": "debezium",
        "newer_wins": "src_position", "map_all_fields": true, "create_table": create,
        "columns": {"src_position": {"from": "debezium.position", "type": "numeric"}}}]))
    .unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));

    let rows: BTreeMap<String, String> = query_pairs(
        &f.db.url,
        "SELECT CAST(id AS TEXT) AS a, concat_ws('|', name, balance, born, to_char(seen, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), notes, doc->>'tier', src_position) AS b \
         FROM customers",
    )
    .into_iter()
    .collect();
    let position = format!("{:020}{:020}", 29, 30);
    assert_eq!(
        rows,
        BTreeMap::from([(
            "1".to_string(),
            format!("Anne Marie|99999.99|1969-12-31|9999-12-31T23:59:59.999999|long notes|gold|{}", position.trim_start_matches('0'))
        )]),
        "the update's values exactly (io.debezium.data.Json as a document), its TOASTed notes left as they were, the delete \
         applied, the replayed older read passed over"
    );
    if create {
        let types = query_pairs(
            &f.db.url,
            "SELECT column_name AS a, data_type AS b FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position",
        );
        let want = [
            ("id", "integer"),
            ("name", "text"),
            ("balance", "numeric"),
            ("born", "date"),
            ("seen", "timestamp without time zone"),
            ("notes", "text"),
            ("doc", "jsonb"),
            ("src_position", "numeric"),
        ];
        assert_eq!(types, want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec(), "the Avro schema's types, the listed column's");
    }
    running.stop().unwrap();
}
