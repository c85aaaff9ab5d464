//! Values in the schema registry's wire format, made by Confluent's own Python serializers
//! (tests/registry/produce.py) against a registry of the tests' making (common/registry.rs):
//! Avro of every type and logical type lands in `events.data` and in a typed projection equal to
//! a model the test computes on its own; two writer schemas of one subject both decode; JSON
//! Schema values land as sent; each schema id is fetched once however many messages use it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime};
use serde_json::{json, Value};
use tributary::app;
use tributary::config::Settings;

use crate::common::registry::{framed, produce_framed, produce_framed_as, schema_id, SchemaRegistry};
use crate::common::*;

/// Every Avro type tributary maps, named as docs/formats.md does.
pub const THING: &str = r#"{"type": "record", "name": "Thing", "namespace": "com.example", "fields": [
  {"name": "id", "type": "long"},
  {"name": "name", "type": "string"},
  {"name": "flag", "type": "boolean"},
  {"name": "small", "type": "int"},
  {"name": "big", "type": "long"},
  {"name": "f", "type": "float"},
  {"name": "d", "type": "double"},
  {"name": "bin", "type": "bytes"},
  {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
  {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "attrs", "type": {"type": "map", "values": "long"}},
  {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
    {"name": "street", "type": "string"}, {"name": "zip", "type": ["null", "string"]}]}},
  {"name": "opt", "type": ["null", "string", "long", "Address"]},
  {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
    {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4}},
  {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
  {"name": "whole", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 0}},
  {"name": "rate", "type": {"type": "fixed", "name": "Rate", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 6}},
  {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
  {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
  {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "ts_ns", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
  {"name": "lts_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
  {"name": "lts_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
  {"name": "lts_ns", "type": {"type": "long", "logicalType": "local-timestamp-nanos"}},
  {"name": "connect_ts", "type": {"type": "long", "connect.name": "org.apache.kafka.connect.data.Timestamp"}},
  {"name": "connect_day", "type": {"type": "int", "connect.name": "org.apache.kafka.connect.data.Date"}},
  {"name": "dbz_us", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}},
  {"name": "connect_dec", "type": {"type": "bytes", "connect.name": "org.apache.kafka.connect.data.Decimal",
    "connect.parameters": {"scale": "3"}}}
]}"#;

/// An exact decimal's text: `unscaled` × 10^-`scale`, with exactly `scale` fraction digits.
pub fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{}{digits}", "0".repeat((scale as usize + 1).saturating_sub(digits.len())));
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// Two's complement, big-endian, as few bytes as hold it (Kafka Connect's Decimal), in hex.
fn twos_complement_hex(v: i128) -> String {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < 15 && ((b[start] == 0 && b[start + 1] & 0x80 == 0) || (b[start] == 0xff && b[start + 1] & 0x80 != 0)) {
        start += 1;
    }
    b[start..].iter().map(|x| format!("{x:02x}")).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// An instant `n` units after the epoch, as `format` (chrono's) prints it.
fn instant(nanos: i64, format: &str) -> String {
    DateTime::from_timestamp(nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000) as u32)
        .unwrap()
        .naive_utc()
        .format(format)
        .to_string()
}

/// The `i`th Thing: what Python is given (typed values tagged) and what tributary must store.
pub fn thing(i: i64) -> (Value, Value) {
    let k = i as i128;
    let big = [9_007_199_254_740_993 + i, i64::MIN + i, i64::MAX - i, -9_007_199_254_740_995 - i][i as usize % 4];
    let floats = [("0.1", json!(0.1)), ("1.5", json!(1.5)), ("-2.25", json!(-2.25)), ("3.4028235e38", json!(3.4028235e38))];
    let doubles = [
        (json!(0.1), json!(0.1)),
        (json!({"$float": "nan"}), json!("NaN")),
        (json!({"$float": "inf"}), json!("Infinity")),
        (json!({"$float": "-inf"}), json!("-Infinity")),
        (json!(-6.02214076e23), json!(-6.02214076e23)),
        (json!(1.0e-7), json!(1.0e-7)),
    ];
    let (f_in, f_out) = &floats[i as usize % floats.len()];
    let (d_in, d_out) = &doubles[i as usize % doubles.len()];
    let bin: Vec<u8> = (0..(i % 7) as u8).map(|j| j.wrapping_mul(37).wrapping_add(i as u8)).collect();
    let fx = [i as u8, 0xff, 0x00, 0x80];
    let color = ["RED", "GREEN", "BLUE"][i as usize % 3];
    let tags: Vec<String> = (0..i % 4).map(|j| format!("t{j}-\"q\"-é")).collect();
    let attrs: serde_json::Map<String, Value> = (0..i % 3).map(|j| (format!("k{j}"), json!(j * 1_000_000_007 - i))).collect();
    let zip = (i % 2 == 0).then(|| format!("{:05}", i * 7));
    let address = json!({"street": format!("{i} Main St / \\ \u{1F600}"), "zip": zip});
    let (opt_in, opt_out) = match i % 4 {
        0 => (Value::Null, Value::Null),
        1 => (json!(format!("opt{i}")), json!(format!("opt{i}"))),
        2 => (json!(-i * 1_000_000_000_000), json!(-i * 1_000_000_000_000)),
        _ => (json!({"street": "Side", "zip": null}), json!({"street": "Side", "zip": null})),
    };
    let items: Vec<Value> = (0..i % 3).map(|j| json!({"sku": format!("s{i}-{j}"), "qty": j as i32 - 1})).collect();
    // Decimals of several scales and signs, zero and the type's extremes among them.
    let amount = [0, 1, -1, 12_345_678_901_234_567_890, -99_999_999_999_999_999_999, 5][i as usize % 6] * (1 + k % 3);
    let amount = amount.clamp(-99_999_999_999_999_999_999, 99_999_999_999_999_999_999);
    let price = [-12_345, 99, 100, -1, 0][i as usize % 5] + k;
    let whole = [10i128.pow(29) - 1, -(10i128.pow(29) - 1), 0, 42][i as usize % 4];
    let rate = [-123_456_789_012_i128, 1, -1, 999_999_999_999][i as usize % 4];
    let connect_dec = [-1_234_567_i128, 0, 1, -1, 170_141_183_460_469_231_731_687_303_715][i as usize % 5];
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", i as u32, i as u64 * 7919);
    let day = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(i * 811 - 20_000);
    // A micro-second instant, before and after the epoch and 2038.
    let us = -2_208_988_800_000_000 + i * 97_654_321_987_653;
    let ms_us = us - us.rem_euclid(1000);
    let tm_us = (i * 3_600_123_000 + 999_000) % 86_400_000_000;
    let tm_us = tm_us - tm_us % 1000;
    let tu_us = (i * 3_599_999_999 + 1) % 86_400_000_000;
    let ns = us * 1000 + i % 1000;
    let time = |micros: i64, format: &str| {
        NaiveTime::from_num_seconds_from_midnight_opt((micros / 1_000_000) as u32, (micros % 1_000_000) as u32 * 1000)
            .unwrap()
            .format(format)
            .to_string()
    };
    let small = [i32::MIN, -1, 0, i32::MAX][i as usize % 4];
    let input = json!({
        "id": i, "name": format!("thing {i}"), "flag": i % 2 == 1, "small": small,
        "big": big, "f": serde_json::from_str::<Value>(f_in).unwrap(), "d": d_in,
        "bin": {"$bytes": hex(&bin)}, "fx": {"$bytes": hex(&fx)}, "color": color, "tags": tags, "attrs": attrs,
        "address": address, "opt": opt_in, "items": items,
        "amount": {"$decimal": decimal_text(amount, 4)}, "price": {"$decimal": decimal_text(price, 2)},
        "whole": {"$decimal": decimal_text(whole, 0)}, "rate": {"$decimal": decimal_text(rate, 6)},
        "uid": {"$uuid": uid}, "day": {"$date": day.format("%Y-%m-%d").to_string()},
        "tm": {"$time": time(tm_us, "%H:%M:%S%.6f")}, "tu": {"$time": time(tu_us, "%H:%M:%S%.6f")},
        "ts_ms": {"$datetime": instant(ms_us * 1000, "%Y-%m-%dT%H:%M:%S%.6f+00:00")},
        "ts_us": {"$datetime": instant(us * 1000, "%Y-%m-%dT%H:%M:%S%.6f+00:00")},
        "ts_ns": ns,
        "lts_ms": {"$naive": instant(ms_us * 1000, "%Y-%m-%dT%H:%M:%S%.6f")},
        "lts_us": {"$naive": instant(us * 1000, "%Y-%m-%dT%H:%M:%S%.6f")},
        "lts_ns": ns,
        "connect_ts": ms_us / 1000, "connect_day": (day - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days(),
        "dbz_us": us, "connect_dec": {"$bytes": twos_complement_hex(connect_dec)},
    });
    let output = json!({
        "id": i, "name": format!("thing {i}"), "flag": i % 2 == 1, "small": input["small"],
        "big": big, "f": f_out, "d": d_out, "bin": base64(&bin), "fx": base64(&fx), "color": color,
        "tags": input["tags"], "attrs": input["attrs"], "address": input["address"], "opt": opt_out, "items": input["items"],
        "amount": decimal_text(amount, 4), "price": decimal_text(price, 2), "whole": decimal_text(whole, 0),
        "rate": decimal_text(rate, 6), "uid": uid, "day": day.format("%Y-%m-%d").to_string(),
        "tm": time(tm_us, "%H:%M:%S%.3f"), "tu": time(tu_us, "%H:%M:%S%.6f"),
        "ts_ms": instant(ms_us * 1000, "%Y-%m-%dT%H:%M:%S%.3fZ"),
        "ts_us": instant(us * 1000, "%Y-%m-%dT%H:%M:%S%.6fZ"),
        "ts_ns": instant(ns, "%Y-%m-%dT%H:%M:%S%.9fZ"),
        "lts_ms": instant(ms_us * 1000, "%Y-%m-%dT%H:%M:%S%.3f"),
        "lts_us": instant(us * 1000, "%Y-%m-%dT%H:%M:%S%.6f"),
        "lts_ns": instant(ns, "%Y-%m-%dT%H:%M:%S%.9f"),
        "connect_ts": instant(ms_us * 1000, "%Y-%m-%dT%H:%M:%S%.3fZ"), "connect_day": day.format("%Y-%m-%d").to_string(),
        "dbz_us": instant(us * 1000, "%Y-%m-%dT%H:%M:%S%.6fZ"), "connect_dec": decimal_text(connect_dec, 3),
    });
    (input, output)
}

/// Settings for one instance decoding framed values with the registry at `url`.
pub fn registry_settings(f: &Fixture, url: &str) -> Settings {
    let mut s = f.settings();
    s.schema_registry.url = Some(url.to_string().into());
    s.schema_registry.retry_backoff = Duration::from_millis(50);
    s.schema_registry.retry_backoff_max = Duration::from_millis(500);
    s
}

/// Produce each framed value to partition `p` and account for it.
pub fn produce_values(f: &mut Fixture, p: i32, values: &[Vec<u8>]) {
    for v in values {
        f.kafka.send(&f.topic, Some(p), Some(b"k".as_slice()), Some(v), &[]).unwrap();
    }
    f.kafka.flush().unwrap();
    f.sent(p, values.len());
}

/// `events.data` of the topic by offset, as JSON.
pub fn events_data(f: &Fixture) -> Vec<(i64, Value)> {
    let q = format!(
        "SELECT CAST(\"offset\" AS TEXT) AS a, CAST(data AS TEXT) AS b FROM events WHERE topic = '{}' ORDER BY \"offset\"",
        f.topic
    );
    query_pairs(&f.db.url, &q).into_iter().map(|(o, d)| (o.parse().unwrap(), serde_json::from_str(&d).unwrap())).collect()
}

/// The value of `name{labels}` in a Prometheus exposition (0 when absent).
pub fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name}{labels} "))).map_or(0.0, |v| v.trim().parse().unwrap())
}

const THINGS: i64 = 48;

const THINGS_TABLE: &str = "CREATE TABLE things (id bigint PRIMARY KEY, name text, flag boolean, amount numeric(20,4), \
     big bigint, at timestamptz, day date, address jsonb, price numeric(10,2), color text, whole numeric)";

const THINGS_PROJECTION: &str = r#"[{"name": "things", "table": "things", "mode": "upsert", "key": ["id"],
  "columns": {"id": "/id", "name": "/name", "flag": "/flag", "amount": "/amount", "big": "/big", "at": "/ts_us",
              "day": "/day", "address": "/address", "price": "/price", "color": "/color", "whole": "/whole"}}]"#;

#[test]
fn avro_of_every_type_lands_in_events_and_a_typed_projection_as_the_model() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "avro", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    sql(&f.db.url, THINGS_TABLE);
    let (inputs, model): (Vec<Value>, Vec<Value>) = (0..THINGS).map(thing).unzip();
    let messages: Vec<Value> = inputs.into_iter().map(|v| framed("avro", THING, v)).collect();
    let values = produce_framed(&registry.url, &f.topic, &messages);
    let ids: BTreeSet<u32> = values.iter().map(|v| schema_id(v)).collect();
    assert_eq!(ids.len(), 1, "one schema, one id");
    produce_values(&mut f, 0, &values);

    let mut s = registry_settings(&f, &registry.url);
    s.projections = serde_json::from_str(THINGS_PROJECTION).unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));

    let got = events_data(&f);
    assert_eq!(got.len(), model.len());
    for ((offset, data), want) in got.iter().zip(&model) {
        assert_eq!(data, want, "offset {offset}: events.data equals the model");
    }

    // The projection: each column typed by the table, read back as text.
    let rows = query_pairs(
        &f.db.url,
        "SELECT CAST(id AS TEXT) AS a, CAST(json_build_array(name, flag, CAST(amount AS TEXT), CAST(big AS TEXT), \
         to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), CAST(day AS TEXT), address, CAST(price AS TEXT), \
         color, CAST(whole AS TEXT)) AS TEXT) AS b FROM things ORDER BY id",
    );
    let want: Vec<(String, Value)> = model
        .iter()
        .map(|m| {
            let row = json!([
                m["name"],
                m["flag"],
                m["amount"],
                m["big"].to_string(),
                m["ts_us"],
                m["day"],
                m["address"],
                m["price"],
                m["color"],
                m["whole"]
            ]);
            (m["id"].to_string(), row)
        })
        .collect();
    let got: Vec<(String, Value)> = rows.into_iter().map(|(id, row)| (id, serde_json::from_str(&row).unwrap())).collect();
    assert_eq!(got, want, "the projection's typed columns equal the model");

    // Each id fetched once, however many messages.
    let metrics = http("GET", running.port, "/metrics").1;
    assert_eq!(metric(&metrics, "tributary_schema_registry_requests_total", "{outcome=\"ok\"}"), ids.len() as f64, "{metrics}");
    assert_eq!(metric(&metrics, "tributary_schemas_cached", ""), ids.len() as f64, "{metrics}");
    assert_eq!(registry.requests(&format!("GET /schemas/ids/{}", ids.first().unwrap())), 1, "{:?}", registry.all_requests());
    running.stop().unwrap();
}

const READING_V1: &str = r#"{"type": "record", "name": "Reading", "namespace": "com.example", "fields": [
  {"name": "id", "type": "long"}, {"name": "value", "type": "double"}]}"#;

/// v1 and a field with a default: a backward-compatible evolution.
const READING_V2: &str = r#"{"type": "record", "name": "Reading", "namespace": "com.example", "fields": [
  {"name": "id", "type": "long"}, {"name": "value", "type": "double"},
  {"name": "unit", "type": {"type": "enum", "name": "Unit", "symbols": ["C", "F"]}, "default": "C"}]}"#;

/// Two writer schemas of one subject interleaved on one topic, each record decoded by the schema
/// it was written with; behind HTTP basic auth; each id fetched once, however many messages.
#[test]
fn two_writer_schemas_on_one_topic_both_decode_each_fetched_once() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "evolve", 2, 1) else { return };
    let registry = SchemaRegistry::start_with_auth("reader", "s3cret");
    let mut messages = Vec::new();
    let mut model = BTreeMap::<i32, Vec<Value>>::new();
    for i in 0..60i64 {
        let value = i as f64 * 0.25 - 3.0;
        let (schema, input) = match i % 3 {
            0 => (READING_V1, json!({"id": i, "value": value})),
            _ => (READING_V2, json!({"id": i, "value": value, "unit": if i % 2 == 0 { "C" } else { "F" }})),
        };
        model.entry((i % 2) as i32).or_default().push(input.clone());
        messages.push(framed("avro", schema, input));
    }
    let values = produce_framed_as(&registry.url, Some(("reader", "s3cret")), &f.topic, &messages);
    let ids: BTreeSet<u32> = values.iter().map(|v| schema_id(v)).collect();
    assert_eq!(ids.len(), 2, "two versions, two ids");
    assert_eq!(registry.requests(&format!("GET /subjects/{}-value/versions", f.topic)), 0);
    for (i, v) in values.iter().enumerate() {
        produce_values(&mut f, (i % 2) as i32, std::slice::from_ref(v));
    }
    let mut s = registry_settings(&f, &registry.url);
    s.schema_registry.username = Some("reader".into());
    s.schema_registry.password = Some("s3cret".to_string().into());
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let q = format!(
        "SELECT CAST(partition AS TEXT) AS a, CAST(data AS TEXT) AS b FROM events WHERE topic = '{}' ORDER BY partition, \"offset\"",
        f.topic
    );
    let mut got = BTreeMap::<i32, Vec<Value>>::new();
    for (p, data) in query_pairs(&f.db.url, &q) {
        got.entry(p.parse().unwrap()).or_default().push(serde_json::from_str(&data).unwrap());
    }
    assert_eq!(got, model, "each record as its writer's schema has it (v1: no unit)");
    let metrics = http("GET", running.port, "/metrics").1;
    assert_eq!(metric(&metrics, "tributary_schema_registry_requests_total", "{outcome=\"ok\"}"), 2.0, "{metrics}");
    assert_eq!(metric(&metrics, "tributary_schema_registry_requests_total", "{outcome=\"error\"}"), 0.0, "{metrics}");
    assert_eq!(metric(&metrics, "tributary_schemas_cached", ""), 2.0, "{metrics}");
    // /status names the registry, that it answers, and the ids the topic's values were framed with.
    let (_, status) = get_json(running.port, "/status");
    let shown = &status["schema_registry"];
    assert_eq!((shown["url"].as_str(), shown["reachable"].as_bool()), (Some(registry.url.as_str()), Some(true)), "{status}");
    let want_ids: Vec<u32> = ids.iter().copied().collect();
    assert_eq!(shown["schema_ids"][&f.topic], json!(want_ids), "{status}");
    for id in &ids {
        assert_eq!(registry.requests(&format!("GET /schemas/ids/{id}")), 1, "{:?}", registry.all_requests());
    }
    running.stop().unwrap();
}

/// JSON Schema: the frame is stripped and the JSON stored as sent (SQLite: the backend does not
/// matter here).
#[test]
fn json_schema_values_land_as_the_json_sent() {
    let Some(mut f) = Fixture::new(Kind::Sqlite, "jsonschema", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    let schema = r#"{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order", "type": "object",
      "properties": {"id": {"type": "integer"}, "items": {"type": "array"}, "note": {"type": ["string", "null"]}}, "required": ["id"]}"#;
    let sent: Vec<Value> = (0..25i64)
        .map(|i| {
            json!({"id": i * 1_000_000_000_007, "items": (0..i % 4).map(|j| json!({"sku": format!("s{j}"), "qty": j as f64 / 4.0})).collect::<Vec<_>>(),
                   "note": if i % 3 == 0 { Value::Null } else { json!(format!("n\u{e9}\"{i}\"\n")) }, "nested": {"deep": [[i], {"x": true}]}})
        })
        .collect();
    let messages: Vec<Value> = sent.iter().map(|v| framed("json", schema, v.clone())).collect();
    let values = produce_framed(&registry.url, &f.topic, &messages);
    let ids: BTreeSet<u32> = values.iter().map(|v| schema_id(v)).collect();
    assert_eq!(ids.len(), 1);
    produce_values(&mut f, 0, &values);
    let running = app::spawn(registry_settings(&f, &registry.url), tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let got: Vec<Value> = events_data(&f).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, sent);
    running.stop().unwrap();
}
