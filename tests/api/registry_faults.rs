//! The schema registry's faults and bad framed values: an outage holds the records that need a
//! schema not yet fetched (no dead letter; `/ready` says why) and they follow when it answers;
//! an id the registry does not know is a `schema_not_found` dead letter that a redrive brings in
//! once the schema is back; datums that do not decode are dead letters naming where, their raw
//! bytes kept whole; a framed format without a registry fails the start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tributary::app;
use tributary::config::Settings;
use tributary_actors::Format;

use crate::common::registry::{framed, produce_framed, schema_id, Down, SchemaRegistry};
use crate::common::*;
use crate::registry::{events_data, produce_values, registry_settings};

const READING: &str = r#"{"type": "record", "name": "Reading", "fields": [
  {"name": "id", "type": "long"}, {"name": "celsius", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 1}},
  {"name": "place", "type": {"type": "record", "name": "Place", "fields": [{"name": "name", "type": "string"}]}}]}"#;

const ALARM: &str = r#"{"type": "record", "name": "Alarm", "fields": [{"name": "id", "type": "long"}, {"name": "level", "type": "int"}]}"#;

/// A Reading (what Python is given, what tributary stores).
fn reading(i: i64) -> (Value, Value) {
    let tenths = i * 7 - 300;
    let text = format!("{}{}.{}", if tenths < 0 { "-" } else { "" }, tenths.abs() / 10, tenths.abs() % 10);
    let place = format!("p{i}");
    (json!({"id": i, "celsius": {"$decimal": text}, "place": {"name": place}}), json!({"id": i, "celsius": text, "place": {"name": place}}))
}

fn alarm(i: i64) -> (Value, Value) {
    let v = json!({"id": i, "level": i % 5});
    (v.clone(), v)
}

/// `/ready`'s reasons.
fn ready(port: u16) -> (u16, Vec<String>) {
    let (status, body) = get_json(port, "/ready");
    let reasons =
        body["reasons"].as_array().map(|r| r.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default();
    (status, reasons)
}

fn unreachable_reason(reasons: &[String]) -> bool {
    reasons.iter().any(|r| r.starts_with("schema_registry_unreachable: "))
}

#[test]
fn an_outage_holds_records_that_need_a_new_schema_and_loses_nothing() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "outage", 2, 1) else { return };
    let registry = SchemaRegistry::start();
    // Both schemas registered now, by the serializer; tributary has fetched neither.
    let (r_in, r_out): (Vec<Value>, Vec<Value>) = (0..30).map(reading).unzip();
    let (a_in, a_out): (Vec<Value>, Vec<Value>) = (100..110).map(alarm).unzip();
    let mut messages: Vec<Value> = r_in.into_iter().map(|v| framed("avro", READING, v)).collect();
    messages.extend(a_in.into_iter().map(|v| framed("avro", ALARM, v)));
    let values = produce_framed(&registry.url, &f.topic, &messages);
    let (reading_id, alarm_id) = (schema_id(&values[0]), schema_id(&values[30]));
    assert_ne!(reading_id, alarm_id);

    // Readings on both partitions: their schema is fetched and cached.
    produce_values(&mut f, 0, &values[0..10]);
    produce_values(&mut f, 1, &values[10..20]);
    let mut s = registry_settings(&f, &registry.url);
    s.parser.workers = 4;
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    let port = running.port;
    wait_until("the first readings committed", Duration::from_secs(60), || f.committed() == 20);

    // Down before tributary has seen the Alarm schema: alarms on partition 0 wait for it;
    // readings on partition 1 keep decoding with the cached schema.
    registry.down(Down::Http503);
    let outage = Instant::now();
    produce_values(&mut f, 0, &values[30..40]);
    produce_values(&mut f, 1, &values[20..30]);
    wait_until("/ready 503 schema_registry_unreachable (503s)", Duration::from_secs(30), || {
        let (status, reasons) = ready(port);
        status == 503 && unreachable_reason(&reasons)
    });
    wait_until("partition 1's readings committed during the outage", Duration::from_secs(30), || {
        progress(&f.db.url, &f.group).get(&1) == Some(&20)
    });
    // Half the outage answering 503, the other half refusing connections.
    wait_until("half the outage", Duration::from_secs(10), || outage.elapsed() >= Duration::from_millis(7_500));
    registry.down(Down::Refused);
    let refused_since = registry.requests(&format!("GET /schemas/ids/{alarm_id}"));
    wait_until("the whole outage, 15 s", Duration::from_secs(10), || {
        let (status, reasons) = ready(port);
        assert!(status == 503 && unreachable_reason(&reasons), "/ready during the outage: {status} {reasons:?}");
        outage.elapsed() >= Duration::from_secs(15)
    });
    assert_eq!(progress(&f.db.url, &f.group).get(&0), Some(&10), "the alarms waited");
    assert_eq!(count(&f.db.url, "SELECT count(*) AS n FROM dead_letters"), 0, "nothing became a dead letter");
    assert_eq!(registry.requests(&format!("GET /schemas/ids/{alarm_id}")), refused_since, "refused: no request arrived");
    assert!(refused_since > 1, "the fetch was retried while the registry answered 503: {:?}", registry.all_requests());

    registry.up();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    wait_until("/ready 200 again", Duration::from_secs(30), || ready(port).0 == 200);
    let mut by_partition: BTreeMap<i32, Vec<Value>> = BTreeMap::new();
    let q = format!(
        "SELECT CAST(partition AS TEXT) AS a, CAST(data AS TEXT) AS b FROM events WHERE topic = '{}' ORDER BY partition, \"offset\"",
        f.topic
    );
    for (p, data) in query_pairs(&f.db.url, &q) {
        by_partition.entry(p.parse().unwrap()).or_default().push(serde_json::from_str(&data).unwrap());
    }
    let want0: Vec<Value> = r_out[0..10].iter().chain(&a_out).cloned().collect();
    assert_eq!(by_partition[&0], want0);
    assert_eq!(by_partition[&1], r_out[10..30].to_vec());
    running.stop().unwrap();
}

const TOKEN: &str = "test-admin-token-0123456789";

#[test]
fn an_unknown_schema_id_is_a_dead_letter_that_a_redrive_brings_in_once_restored() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "unknown", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    let (r_in, r_out): (Vec<Value>, Vec<Value>) = (0..3).map(reading).unzip();
    let (a_in, a_out): (Vec<Value>, Vec<Value>) = (0..1).map(alarm).unzip();
    let mut messages: Vec<Value> = vec![framed("avro", READING, r_in[0].clone()), framed("avro", ALARM, a_in[0].clone())];
    messages.extend(r_in[1..].iter().map(|v| framed("avro", READING, v.clone())));
    let values = produce_framed(&registry.url, &f.topic, &messages);
    let alarm_id = schema_id(&values[1]);
    registry.forget(alarm_id);
    produce_values(&mut f, 0, &values);
    f.dead.insert("schema_not_found".into(), 1);
    let mut s = registry_settings(&f, &registry.url);
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let stored = query_pairs(&f.db.url, "SELECT CAST(\"offset\" AS TEXT) AS a, detail AS b FROM dead_letters");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "1");
    assert!(stored[0].1.contains(&format!("schema id {alarm_id}")), "{stored:?}");
    let failed_at = Instant::now();

    // Restored; once the 5 s an unknown id is remembered have passed, a redrive finds it.
    registry.restore(alarm_id);
    wait_until("the unknown id forgotten (5 s)", Duration::from_secs(10), || failed_at.elapsed() > Duration::from_millis(5_500));
    let (status, body) = http_with(
        "POST",
        running.port,
        "/dead-letters/redrive",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        json!({"reason": "schema_not_found"}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((report["selected"].as_i64(), report["redriven"].as_i64()), (Some(1), Some(1)), "{report}");
    let data: Vec<Value> = events_data(&f).into_iter().map(|(_, d)| d).collect();
    assert_eq!(data, vec![r_out[0].clone(), a_out[0].clone(), r_out[1].clone(), r_out[2].clone()]);
    let marked = count(&f.db.url, "SELECT count(*) AS n FROM dead_letters WHERE reason = 'schema_not_found' AND redriven_at IS NOT NULL");
    assert_eq!(marked, 1, "the dead letter is marked redriven");
    running.stop().unwrap();
}

/// A dead letter's reason and what its detail says; `None`: the record applies.
type Expected = Option<(&'static str, &'static str)>;

/// Dead letters' raw payloads (hex), reasons and details, by offset.
fn dead_letters(f: &Fixture) -> Vec<(i64, String, String, String)> {
    let hex = match f.db.url.starts_with("sqlite://") {
        true => "lower(hex(payload))",
        false => "encode(payload, 'hex')",
    };
    let q =
        format!("SELECT CAST(\"offset\" AS TEXT) AS a, {hex} || ' ' || reason || ' ' || detail AS b FROM dead_letters ORDER BY \"offset\"");
    query_pairs(&f.db.url, &q)
        .into_iter()
        .map(|(o, rest)| {
            let mut parts = rest.splitn(3, ' ');
            let (payload, reason, detail) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            (o.parse().unwrap(), payload.to_string(), reason.to_string(), detail.to_string())
        })
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn datums_that_do_not_decode_are_dead_letters_naming_where_and_their_neighbours_apply() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "corrupt", 1, 1) else { return };
    let registry = SchemaRegistry::start();
    let (r_in, r_out): (Vec<Value>, Vec<Value>) = (0..5).map(reading).unzip();
    let mut messages: Vec<Value> = r_in.iter().map(|v| framed("avro", READING, v.clone())).collect();
    messages.push(framed("json", r#"{"type": "object", "properties": {"a": {"type": "integer"}}}"#, json!({"a": 1})));
    let good = produce_framed(&registry.url, &f.topic, &messages);
    let json_id = schema_id(&good[5]);

    // Reading 1's datum: id (zigzag varint), celsius (length + bytes), place.name (length + text).
    let truncated = good[1][..good[1].len() - 1].to_vec();
    let mut trailing = good[2].clone();
    trailing.extend_from_slice(b"\x00\x01");
    let mut garbage = good[3].clone();
    let name_len_at = garbage.len() - 3; // "p3": its length byte, then two bytes
    garbage[name_len_at] = 0x7e; // a length of 63
    let not_framed = br#"{"id": 9}"#.to_vec();
    let mut bad_json = vec![0];
    bad_json.extend_from_slice(&json_id.to_be_bytes());
    bad_json.extend_from_slice(b"{\"a\": 1,");
    // A neighbour after each.
    let sequence: Vec<(Vec<u8>, Expected)> = vec![
        (good[0].clone(), None),
        (truncated.clone(), Some(("invalid_avro", "at /place/name: needs 2 bytes, 1 left"))),
        (good[4].clone(), None),
        (trailing.clone(), Some(("invalid_avro", "2 bytes left after the datum"))),
        (good[0].clone(), None),
        (garbage.clone(), Some(("invalid_avro", "at /place/name: needs 63 bytes, 2 left"))),
        (good[4].clone(), None),
        (not_framed.clone(), Some(("not_framed", "parser.format = avro"))),
        (good[0].clone(), None),
        (bad_json.clone(), Some(("invalid_json_schema", "is not JSON"))),
        (good[4].clone(), None),
    ];
    for (payload, want) in &sequence {
        f.kafka.send(&f.topic, Some(0), None, Some(payload), &[]).unwrap();
        if let Some((reason, _)) = want {
            *f.dead.entry(reason.to_string()).or_insert(0) += 1;
        }
    }
    f.kafka.flush().unwrap();
    f.sent(0, sequence.len());
    let mut s: Settings = registry_settings(&f, &registry.url);
    s.parser.format = Format::Avro;
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));

    let dead = dead_letters(&f);
    let want: Vec<(i64, String, String)> =
        sequence.iter().enumerate().filter_map(|(o, (p, w))| w.map(|(reason, _)| (o as i64, to_hex(p), reason.to_string()))).collect();
    assert_eq!(dead.iter().map(|(o, p, r, _)| (*o, p.clone(), r.clone())).collect::<Vec<_>>(), want, "raw bytes kept whole");
    for ((o, _, _, detail), (_, w)) in dead.iter().zip(sequence.iter().filter(|(_, w)| w.is_some())) {
        let needle = w.unwrap().1;
        assert!(detail.contains(needle), "offset {o}: {detail:?} names {needle:?}");
    }
    let applied: Vec<(i64, Value)> = events_data(&f);
    let want: Vec<(i64, Value)> = [(0, 0), (2, 4), (4, 0), (6, 4), (8, 0), (10, 4)].iter().map(|(o, r)| (*o, r_out[*r].clone())).collect();
    assert_eq!(applied, want, "the neighbours applied");
    let metrics = http("GET", running.port, "/metrics").1;
    let failures = |format: &str| crate::registry::metric(&metrics, "tributary_decode_failures_total", &format!("{{format=\"{format}\"}}"));
    assert_eq!((failures("avro"), failures("json_schema")), (3.0, 1.0), "{metrics}");
    running.stop().unwrap();
}

#[test]
fn a_framed_format_without_a_registry_fails_the_start_naming_parser_format() {
    for format in ["avro", "protobuf", "json_schema"] {
        let overrides = BTreeMap::from([
            ("kafka.brokers".to_string(), json!("127.0.0.1:9")),
            ("kafka.topics".to_string(), json!(["t"])),
            ("parser.format".to_string(), json!(format)),
        ]);
        let e = Settings::load(None, &overrides).expect_err("a framed format needs a registry").to_string();
        assert!(e.contains("parser.format") && e.contains("[schema_registry]"), "{format}: {e}");
    }
    // As an operator meets it: the command fails with the configuration error's exit code.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tributary.toml");
    std::fs::write(&config, "[kafka]\nbrokers = \"127.0.0.1:9\"\ntopics = [\"t\"]\n[parser]\nformat = \"avro\"\n").unwrap();
    for command in ["check-config", "run"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary")).args([command, "--config"]).arg(&config).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {said}");
        assert!(said.contains("parser.format"), "{command}: {said}");
    }
}
