//! Protobuf values framed by Confluent's own ProtobufSerializer (classes generated at test time
//! from tests/registry/proto by grpc_tools.protoc): nested messages, an imported user .proto that
//! the serializer registers as a schema reference (tributary resolves it through
//! `GET /subjects/{s}/versions/{v}`), well-known types, an enum, repeated and map fields, an int64
//! beyond 2^53, messages of several types of one file (indexes [0], [1] and [1, 0]) land in
//! `events.data` and a typed projection as a model the test computes on its own.

use std::time::Duration;

use base64::Engine as _;
use chrono::DateTime;
use serde_json::{json, Map, Value};
use tributary::app;

use crate::common::registry::{produce_framed_with, schema_id, SchemaRegistry, PROTO_DIR};
use crate::common::*;
use crate::registry::{events_data, produce_values, registry_settings};

const ORDER: &str = "shop.orders_pb2.Order";

fn protobuf(message: &str, value: Value) -> Value {
    json!({"format": "protobuf", "message": message, "value": value})
}

/// Numbers compared by value: a double that holds an integer equals that integer.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                json!(f as i64)
            } else {
                v.clone()
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()),
        _ => v.clone(),
    }
}

/// RFC 3339 in UTC as proto3 JSON writes a Timestamp: 0, 3, 6 or 9 fraction digits as needed.
fn rfc3339(seconds: i64, nanos: u32) -> String {
    let t = DateTime::from_timestamp(seconds, nanos).unwrap().naive_utc();
    let fraction = match nanos {
        0 => String::new(),
        n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
        n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
        n => format!(".{n:09}"),
    };
    format!("{}{fraction}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// The `i`th Order: proto3 JSON for json_format.ParseDict (absent fields left out), and what
/// tributary must store: field names as declared, every field present (proto3 defaults, `null`
/// for an absent message or wrapper), int64 exact, the enum's name, the Timestamp in RFC 3339.
/// Also the instant for the projection (`None`: no Timestamp).
fn order(i: i64) -> (Value, Value, Option<String>) {
    let id = [9_007_199_254_740_993 + i, -(1i64 << 62) - i, i, i64::MAX - i][i as usize % 4];
    let name = if i % 5 == 0 { String::new() } else { format!("cust {i} \u{e9}\"") };
    let status = ["STATUS_UNKNOWN", "PLACED", "SHIPPED", "CANCELLED"][i as usize % 4];
    let lines: Vec<Value> = (0..i % 3).map(|j| json!({"sku": format!("s{i}-{j}"), "qty": j, "cents": -(i * 100 + j)})).collect();
    let counters: Map<String, Value> =
        (0..i % 4).map(|j| (format!("k{}", 3 - j), json!((j - 1) * 1_000_000_000_000_007 * (i + 1)))).collect();
    let (seconds, nanos) = (
        1_700_000_000 + i * 86_399 - if i % 3 == 0 { 2_000_000_000 } else { 0 },
        [0, 123_000_000, 123_456_000, 999_999_000][i as usize % 4],
    );
    let placed_at = (i % 6 != 5).then(|| rfc3339(seconds, nanos));
    let note = match i % 3 {
        0 => None,
        1 => Some(format!("note {i}")),
        _ => Some(String::new()),
    };
    let extra = (i % 4 != 0).then(|| json!({"n": i as f64 + 0.5, "list": [1.5, "x", null, true], "nested": {"a": {}, "b": [-2.25]}}));
    let geo = (i % 3 != 0).then(|| json!({"lat": 59.5 + i as f64 / 8.0, "lon": if i % 2 == 0 { -10.75 } else { 0.0 }}));
    let ship_to = (i % 5 != 4).then(|| json!({"street": format!("{i} Main"), "city": if i % 2 == 1 { "" } else { "Oslo" }, "geo": geo}));
    let big = [u64::MAX - i as u64, (1u64 << 53) + 1, 0][i as usize % 3];
    let delta = [i64::MIN + i, -1, 0, 12_345][i as usize % 4];
    let tags: Vec<String> = (0..i % 3).map(|j| format!("t{j}")).collect();
    let blob: Vec<u8> = (0..(i % 5) as u8).map(|j| j.wrapping_mul(91).wrapping_add(i as u8)).collect();
    let blob = base64::engine::general_purpose::STANDARD.encode(blob);

    // What Python is given: proto3 JSON, the defaults left out as a producer would.
    let mut input = json!({"id": id, "status": status, "lines": lines.clone(), "counters": counters.clone(), "big": big, "delta": delta,
                           "tags": tags.clone(), "blob": blob.clone()});
    let members = [
        ("customer_name", (!name.is_empty()).then(|| json!(name))),
        ("placed_at", placed_at.clone().map(Value::from)),
        ("note", note.clone().map(Value::from)),
        ("extra", extra.clone()),
        ("ship_to", ship_to.clone()),
        ("rush", (i % 2 == 1).then_some(json!(true))),
    ];
    for (k, v) in members {
        if let Some(v) = v {
            input[k] = v;
        }
    }
    if status == "STATUS_UNKNOWN" {
        input.as_object_mut().unwrap().remove("status");
    }
    let output = json!({
        "id": id, "customer_name": name, "status": status, "lines": lines, "counters": counters,
        "placed_at": placed_at, "note": note, "extra": extra,
        "ship_to": ship_to,
        "big": big, "delta": delta, "rush": i % 2 == 1, "tags": tags, "blob": blob,
    });
    // The projection's timestamptz, read back with microseconds.
    let at =
        (i % 6 != 5).then(|| format!("{}Z", DateTime::from_timestamp(seconds, nanos).unwrap().naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f")));
    (input, output, at)
}

const ORDERS: i64 = 40;

const PB_TABLE: &str = "CREATE TABLE pb_orders (id bigint PRIMARY KEY, status text, placed_at timestamptz, big numeric(20,0), \
     city text, note text, lines jsonb)";

const PB_PROJECTION: &str = r#"[{"name": "pb_orders", "table": "pb_orders", "mode": "upsert", "key": ["id"],
  "columns": {"id": "/id", "status": "/status", "placed_at": "/placed_at", "big": "/big", "city": "/ship_to/city",
              "note": "/note", "lines": "/lines"}}]"#;

#[test]
fn protobuf_with_references_and_well_known_types_lands_in_events_and_a_typed_projection_as_the_model() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "protobuf", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    sql(&f.db.url, PB_TABLE);
    let mut orders: Vec<(Value, Value, Option<String>)> = (0..ORDERS).map(order).collect();
    let messages: Vec<Value> = orders.iter().map(|(input, _, _)| protobuf(ORDER, input.clone())).collect();
    let values = produce_framed_with(&registry.url, &f.topic, json!({"proto_dir": PROTO_DIR}), &messages);
    for v in &values {
        assert_eq!(&v[5..7], &[2, 2], "the second message of the file: indexes [1]");
    }
    // The imported file is a schema of its own, referenced by the topic's.
    let subjects = registry.all_requests();
    assert!(subjects.contains_key("POST /subjects/shop%2Fcommon.proto/versions"), "{subjects:?}");
    let id = schema_id(&values[0]);
    produce_values(&mut f, 0, &values);

    let mut s = registry_settings(&f, &registry.url);
    s.projections = serde_json::from_str(PB_PROJECTION).unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));

    let got = events_data(&f);
    assert_eq!(got.len(), orders.len());
    for ((offset, data), (_, want, _)) in got.iter().zip(&orders) {
        assert_eq!(normalized(data), normalized(want), "offset {offset}: events.data equals the model");
    }
    let fetched: u64 = registry
        .all_requests()
        .iter()
        .filter(|(path, _)| path.starts_with("GET /subjects/shop%2Fcommon.proto/versions/"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(fetched, 1, "the reference fetched once, by subject and version: {:?}", registry.all_requests());
    assert_eq!(registry.requests(&format!("GET /schemas/ids/{id}")), 1);

    let rows = query_pairs(
        &f.db.url,
        "SELECT CAST(id AS TEXT) AS a, CAST(json_build_array(status, to_char(placed_at AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), CAST(big AS TEXT), city, note, lines) AS TEXT) AS b FROM pb_orders ORDER BY id",
    );
    orders.sort_by_key(|(_, m, _)| m["id"].as_i64().unwrap());
    let want: Vec<(String, Value)> = orders
        .iter()
        .map(|(_, m, at)| {
            let city = m["ship_to"].get("city").cloned().unwrap_or(Value::Null);
            (m["id"].to_string(), json!([m["status"], at, m["big"].to_string(), city, m["note"], m["lines"]]))
        })
        .collect();
    let got: Vec<(String, Value)> = rows.into_iter().map(|(id, row)| (id, serde_json::from_str(&row).unwrap())).collect();
    assert_eq!(got, want, "bigint exact from the int64, timestamptz with microseconds, text of the enum's name");
    running.stop().unwrap();
}

/// Three message types of one file on one topic: the first (indexes written as the single byte
/// 0), the second ([1]) and one nested in it ([1, 0]); each decoded as its own type.
#[test]
fn protobuf_messages_of_several_types_of_one_file_each_decode_by_their_message_indexes() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "pbindex", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    let mut messages = Vec::new();
    let mut model = Vec::new();
    for i in 0..12i64 {
        match i % 3 {
            0 => {
                messages.push(protobuf("shop.orders_pb2.Header", json!({"source": format!("src{i}")})));
                model.push(json!({"source": format!("src{i}")}));
            }
            1 => {
                let line = json!({"sku": format!("l{i}"), "qty": i, "cents": -i * 1_000_000_000_000});
                messages.push(protobuf("shop.orders_pb2.Order.Line", line.clone()));
                model.push(line);
            }
            _ => {
                let (input, output, _) = order(i);
                messages.push(protobuf(ORDER, input));
                model.push(output);
            }
        }
    }
    // An empty Line: every field its default.
    messages.push(protobuf("shop.orders_pb2.Order.Line", json!({})));
    model.push(json!({"sku": "", "qty": 0, "cents": 0}));
    let values = produce_framed_with(&registry.url, &f.topic, json!({"proto_dir": PROTO_DIR}), &messages);
    assert_eq!(values[0][5], 0, "Header, the first message: the single byte 0");
    assert_eq!(&values[1][5..8], &[4, 2, 0], "Order.Line: [1, 0]");
    assert_eq!(&values[2][5..7], &[2, 2], "Order: [1]");
    assert_eq!(values.iter().map(|v| schema_id(v)).collect::<std::collections::BTreeSet<_>>().len(), 1, "one file, one id");
    produce_values(&mut f, 0, &values);
    let running = app::spawn(registry_settings(&f, &registry.url), tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let got: Vec<Value> = events_data(&f).into_iter().map(|(_, d)| normalized(&d)).collect();
    let want: Vec<Value> = model.iter().map(normalized).collect();
    assert_eq!(got, want);
    running.stop().unwrap();
}
