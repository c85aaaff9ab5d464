//! More of the schema registry: Avro-framed Kafka keys read by `key:` pointers into an upsert
//! projection (and `parser.key_format = "avro"` refusing a key that is not framed); an Avro
//! schema that references another registered schema; the dead-letter detail's `decoded` view of
//! a framed payload.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tributary::app;
use tributary_actors::Format;

use crate::common::registry::{framed, produce_framed, produce_framed_with, schema_id, Down, SchemaRegistry};
use crate::common::*;
use crate::registry::{events_data, registry_settings};

pub const ACCOUNT_KEY: &str = r#"{"type": "record", "name": "AccountKey", "namespace": "com.example", "fields": [
  {"name": "id", "type": "long"}]}"#;

pub const ACCOUNT: &str = r#"{"type": "record", "name": "Account", "namespace": "com.example", "fields": [
  {"name": "owner", "type": "string"}, {"name": "balance", "type": "long"}, {"name": "version", "type": "long"}]}"#;

pub(crate) const ACCOUNTS_TABLE: &str = "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text, balance bigint, version bigint)";

const ACCOUNTS_PROJECTION: &str = r#"[{"name": "accounts", "table": "accounts", "mode": "upsert", "key": ["id"],
  "columns": {"id": {"from": "key:/id", "type": "bigint"}, "owner": "/owner", "balance": "/balance", "version": "/version"}}]"#;

/// Account `id` at `version`: its value.
pub fn account(id: i64, version: i64) -> Value {
    json!({"owner": format!("owner {id}"), "balance": (id * 7_919 + version * 104_729) * if version % 2 == 0 { 1 } else { -1 }, "version": version})
}

pub(crate) fn key_message(id: i64) -> Value {
    let mut m = framed("avro", ACCOUNT_KEY, json!({"id": id}));
    m["field"] = json!("key");
    m
}

/// The accounts table: id → [owner, balance, version].
pub(crate) fn accounts(url: &str) -> BTreeMap<i64, Value> {
    query_pairs(url, "SELECT CAST(id AS TEXT) AS a, CAST(json_build_array(owner, balance, version) AS TEXT) AS b FROM accounts")
        .into_iter()
        .map(|(id, row)| (id.parse().unwrap(), serde_json::from_str(&row).unwrap()))
        .collect()
}

/// Key and value framed pairs: `(id, version)` in order.
fn framed_pairs(registry: &SchemaRegistry, topic: &str, changes: &[(i64, i64)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let messages: Vec<Value> = changes.iter().flat_map(|(id, v)| [key_message(*id), framed("avro", ACCOUNT, account(*id, *v))]).collect();
    let out = produce_framed(&registry.url, topic, &messages);
    out.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()
}

#[test]
fn avro_framed_keys_feed_key_pointers_and_updates_of_a_key_collapse_to_the_latest() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "avrokeys", 2, 1) else { return };
    let registry = SchemaRegistry::start();
    sql(&f.db.url, ACCOUNTS_TABLE);
    // 25 keys, 4 versions each, interleaved; a key stays on one partition.
    let changes: Vec<(i64, i64)> = (1..=4).flat_map(|v| (0..25).map(move |k| (k * 1_000_003 - 12, v))).collect();
    let pairs = framed_pairs(&registry, &f.topic, &changes);
    let (key_id, value_id) = (schema_id(&pairs[0].0), schema_id(&pairs[0].1));
    assert_ne!(key_id, value_id);
    assert!(registry.all_requests().contains_key(&format!("POST /subjects/{}-key/versions", f.topic)), "{:?}", registry.all_requests());
    for ((id, _), (key, value)) in changes.iter().zip(&pairs) {
        let p = id.rem_euclid(2) as i32;
        f.kafka.send(&f.topic, Some(p), Some(key.as_slice()), Some(value.as_slice()), &[]).unwrap();
        f.sent(p, 1);
    }
    f.kafka.flush().unwrap();
    let mut s = registry_settings(&f, &registry.url);
    s.projections = serde_json::from_str(ACCOUNTS_PROJECTION).unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));

    let mut model = BTreeMap::new();
    for (id, v) in &changes {
        let a = account(*id, *v);
        model.insert(*id, json!([a["owner"], a["balance"], a["version"]]));
    }
    assert_eq!(accounts(&f.db.url), model, "the last version of each key");
    // The archive keeps the key's own bytes.
    let q = format!("SELECT CAST(\"offset\" AS TEXT) AS a, encode(key, 'hex') AS b FROM events WHERE topic = '{}' AND partition = 0 ORDER BY \"offset\"", f.topic);
    let keys: Vec<String> = query_pairs(&f.db.url, &q).into_iter().map(|(_, k)| k).collect();
    let want: Vec<String> = changes
        .iter()
        .zip(&pairs)
        .filter(|((id, _), _)| id.rem_euclid(2) == 0)
        .map(|(_, (k, _))| k.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert_eq!(keys, want, "events.key: the framed key as sent");
    assert_eq!(registry.requests(&format!("GET /schemas/ids/{key_id}")), 1, "{:?}", registry.all_requests());
    running.stop().unwrap();
}

#[test]
fn key_format_avro_refuses_a_json_key_as_not_framed_and_its_neighbours_apply() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "keyavro", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    sql(&f.db.url, ACCOUNTS_TABLE);
    let changes: Vec<(i64, i64)> = (0..6).map(|i| (i, 1)).collect();
    let pairs = framed_pairs(&registry, &f.topic, &changes);
    for (i, (key, value)) in pairs.iter().enumerate() {
        // Record 3 has the right value and a JSON key.
        let key: &[u8] = if i == 3 { br#"{"id": 3}"# } else { key };
        f.kafka.send(&f.topic, Some(0), Some(key), Some(value.as_slice()), &[]).unwrap();
    }
    f.kafka.flush().unwrap();
    f.sent(0, pairs.len());
    f.dead.insert("not_framed".into(), 1);
    let mut s = registry_settings(&f, &registry.url);
    s.parser.key_format = Format::Avro;
    s.projections = serde_json::from_str(ACCOUNTS_PROJECTION).unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let dead = query_pairs(&f.db.url, "SELECT CAST(\"offset\" AS TEXT) AS a, detail AS b FROM dead_letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "3");
    assert!(dead[0].1.starts_with("the key"), "the detail begins with the key: {:?}", dead[0].1);
    assert!(dead[0].1.contains("parser.key_format = avro"), "{:?}", dead[0].1);
    let model: BTreeMap<i64, Value> = changes
        .iter()
        .filter(|(id, _)| *id != 3)
        .map(|(id, v)| {
            let a = account(*id, *v);
            (*id, json!([a["owner"], a["balance"], a["version"]]))
        })
        .collect();
    assert_eq!(accounts(&f.db.url), model, "the neighbours applied");
    running.stop().unwrap();
}

const ADDRESS: &str = r#"{"type": "record", "name": "Address", "namespace": "com.example.shared", "fields": [
  {"name": "street", "type": "string"}, {"name": "zip", "type": ["null", "string"]}]}"#;

/// References `com.example.shared.Address` by name, registered under a subject of its own.
const CUSTOMER: &str = r#"{"type": "record", "name": "Customer", "namespace": "com.example", "fields": [
  {"name": "id", "type": "long"}, {"name": "home", "type": "com.example.shared.Address"},
  {"name": "work", "type": ["null", "com.example.shared.Address"]},
  {"name": "past", "type": {"type": "array", "items": "com.example.shared.Address"}}]}"#;

#[test]
fn an_avro_schema_referencing_another_registered_schema_decodes() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "avrorefs", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    let address = |i: i64, j: i64| json!({"street": format!("{i}-{j} Elm"), "zip": if j % 2 == 0 { json!(format!("{:05}", i * 13 + j)) } else { Value::Null }});
    let sent: Vec<Value> = (0..15i64)
        .map(|i| {
            json!({"id": i - 7, "home": address(i, 0), "work": if i % 3 == 0 { Value::Null } else { address(i, 1) },
                   "past": (0..i % 3).map(|j| address(i, j + 2)).collect::<Vec<_>>()})
        })
        .collect();
    let refs = json!([{"name": "com.example.shared.Address", "subject": "shared-address", "version": 1}]);
    let messages: Vec<Value> = sent
        .iter()
        .map(|v| {
            let mut m = framed("avro", CUSTOMER, v.clone());
            m["references"] = refs.clone();
            m
        })
        .collect();
    let extra = json!({"register": [{"subject": "shared-address", "schema": ADDRESS}]});
    let values = produce_framed_with(&registry.url, &f.topic, extra, &messages);
    let before = registry.requests("GET /subjects/shared-address/versions/1");
    crate::registry::produce_values(&mut f, 0, &values);
    let running = app::spawn(registry_settings(&f, &registry.url), tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let got: Vec<Value> = events_data(&f).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, sent);
    assert_eq!(
        registry.requests("GET /subjects/shared-address/versions/1"),
        before + 1,
        "the reference fetched once: {:?}",
        registry.all_requests()
    );
    running.stop().unwrap();
}

const TOKEN: &str = "test-admin-token-0123456789";

const READING: &str = r#"{"type": "record", "name": "Reading", "namespace": "com.example", "fields": [
  {"name": "id", "type": "long"}, {"name": "place", "type": {"type": "record", "name": "Place", "fields": [
    {"name": "name", "type": "string"}]}}]}"#;

/// One dead letter whole, with the admin token.
fn dead_letter(port: u16, topic: &str, offset: i64) -> Value {
    let (status, body) =
        http_with("GET", port, &format!("/dead-letters/{topic}/0/{offset}"), &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

const TAG: &str = r#"{"type": "record", "name": "Tag", "namespace": "com.example", "fields": [{"name": "label", "type": "string"}]}"#;

#[test]
fn a_dead_letters_detail_shows_its_framed_payload_decoded_and_where_decoding_failed() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "dlview", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    let reading = json!({"id": 9_007_199_254_740_993i64, "place": {"name": "place \u{e9}"}});
    let messages = [framed("avro", READING, reading.clone()), framed("avro", TAG, json!({"label": "a label"}))];
    let values = produce_framed(&registry.url, &f.topic, &messages);
    let (id, tag_id) = (schema_id(&values[0]), schema_id(&values[1]));
    registry.forget(id);
    // Offset 0: an id the registry does not know (now); 1: a datum cut short; 2: a good Tag.
    let truncated = values[1][..values[1].len() - 2].to_vec();
    for v in [&values[0], &truncated, &values[1]] {
        f.kafka.send(&f.topic, Some(0), None, Some(v.as_slice()), &[]).unwrap();
    }
    f.kafka.flush().unwrap();
    f.sent(0, 3);
    f.dead.insert("schema_not_found".into(), 1);
    f.dead.insert("invalid_avro".into(), 1);
    let mut s = registry_settings(&f, &registry.url);
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));

    let forgotten = dead_letter(running.port, &f.topic, 0);
    assert_eq!(forgotten["reason"], "schema_not_found", "{forgotten}");
    assert_eq!(forgotten["decoded"]["schema_id"], id, "{forgotten}");
    assert!(forgotten["decoded"]["value"].is_null(), "not yet restored: {forgotten}");

    registry.restore(id);
    // The 404 is remembered for 5 s; then the view decodes with the restored schema.
    let restored = Instant::now();
    let mut seen = Value::Null;
    wait_until("the restored schema decodes the dead letter", Duration::from_secs(20), || {
        seen = dead_letter(running.port, &f.topic, 0);
        !seen["decoded"]["value"].is_null()
    });
    eprintln!("decoded {:?} after the restore", restored.elapsed());
    let decoded = &seen["decoded"];
    assert_eq!(decoded["schema_id"], id, "{seen}");
    assert_eq!(decoded["schema_type"], "AVRO", "{seen}");
    let subject = format!("{}-value (version 1)", f.topic);
    assert!(decoded["subjects"].as_array().unwrap().iter().any(|s| s == &json!(subject)), "{seen}");
    assert_eq!(decoded["value"], reading, "{seen}");
    assert!(decoded["error"].is_null(), "{seen}");

    let cut = dead_letter(running.port, &f.topic, 1);
    assert_eq!(cut["reason"], "invalid_avro", "{cut}");
    let decoded = &cut["decoded"];
    assert_eq!((decoded["schema_id"].as_u64(), decoded["schema_type"].as_str()), (Some(tag_id as u64), Some("AVRO")), "{cut}");
    assert!(decoded["value"].is_null(), "{cut}");
    let error = decoded["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("invalid_avro") && error.contains("at /label: needs 7 bytes, 5 left"), "{cut}");
    let subject = format!("{}-value (version 2)", f.topic);
    assert!(decoded["subjects"].as_array().unwrap().iter().any(|s| s == &json!(subject)), "{cut}");
    running.stop().unwrap();

    // A fresh instance holds no schema; with the registry down the view says so, under no
    // dead-letter reason (an outage is not the record's fault).
    registry.down(Down::Http503);
    let mut s = registry_settings(&f, &registry.url);
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    let cut = dead_letter(running.port, &f.topic, 1);
    let decoded = &cut["decoded"];
    assert_eq!(decoded["schema_id"].as_u64(), Some(tag_id as u64), "{cut}");
    assert!(decoded["schema_type"].is_null() && decoded["value"].is_null(), "{cut}");
    assert!(decoded["error"].as_str().unwrap_or_default().starts_with("the schema registry is unavailable: "), "{cut}");
    running.stop().unwrap();
}
