use serde_json::{json, Value};

use super::read;
use crate::project::cdc::{ChangeOp, Event};

/// A Connect field schema.
fn field(name: &str, ty: &str, logical: Option<&str>) -> Value {
    let mut f = json!({"type": ty, "optional": true, "field": name});
    if let Some(l) = logical {
        f["name"] = json!(l);
    }
    f
}

/// A value wrapped as the JSON converter writes it with `schemas.enable=true`.
fn wrapped(row_fields: Vec<Value>, payload: Value) -> String {
    let row = json!({"type": "struct", "fields": row_fields, "optional": true, "name": "db.public.t.Value"});
    let mut before = row.clone();
    before["field"] = json!("before");
    let mut after = row;
    after["field"] = json!("after");
    json!({
        "schema": {"type": "struct", "name": "db.public.t.Envelope", "fields": [
            before, after,
            {"type": "struct", "fields": [], "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source"},
            {"type": "string", "optional": false, "field": "op"},
            {"type": "int64", "optional": true, "field": "ts_ms"}]},
        "payload": payload,
    })
    .to_string()
}

fn change(text: &str, key: Option<&str>) -> crate::project::cdc::Change<'static> {
    let text: &'static str = Box::leak(text.to_string().into_boxed_str());
    let key: Option<&'static str> = key.map(|k| &*Box::leak(k.to_string().into_boxed_str()));
    match read(text, None, key, false) {
        Event::Change(c) => c,
        other => panic!("{other:?}"),
    }
}

fn image(s: Option<&str>) -> Value {
    serde_json::from_str(s.expect("an image")).unwrap()
}

#[test]
fn the_payload_alone_is_read_as_sent() {
    let v = json!({"before": null, "after": {"id": 1, "name": "Anne"}, "source": {"connector": "postgresql", "lsn": 33},
                   "op": "c", "ts_ms": 1559033904863i64})
    .to_string();
    let c = change(&v, Some(r#"{"id": 1}"#));
    assert_eq!(c.op, ChangeOp::Create);
    assert_eq!(c.before, None);
    assert_eq!(image(c.after.as_deref()), json!({"id": 1, "name": "Anne"}));
    assert!(matches!(c.after, Some(std::borrow::Cow::Borrowed(_))), "nothing to decode: borrowed");
    assert_eq!(c.ts_ms.as_deref(), Some("1559033904863"));
    assert_eq!(c.key.as_deref(), Some(r#"{"id": 1}"#));
    assert!(!c.typed, "no schema: a column's unit and scale say what numbers mean");
}

#[test]
fn connect_logical_types_decode_exactly_in_the_wrapper() {
    let fields = vec![
        field("id", "int32", None),
        field("born", "int32", Some("io.debezium.time.Date")),
        field("old", "int32", Some("org.apache.kafka.connect.data.Date")),
        field("at", "int64", Some("io.debezium.time.MicroTimestamp")),
        field("at_ns", "int64", Some("io.debezium.time.NanoTimestamp")),
        field("at_ms", "int64", Some("org.apache.kafka.connect.data.Timestamp")),
        field("far", "int64", Some("io.debezium.time.MicroTimestamp")),
        field("early", "int64", Some("io.debezium.time.Timestamp")),
        field("t", "int64", Some("io.debezium.time.MicroTime")),
        field("t_ms", "int32", Some("io.debezium.time.Time")),
        json!({"type": "bytes", "optional": true, "field": "price", "name": "org.apache.kafka.connect.data.Decimal",
               "parameters": {"scale": "2", "connect.decimal.precision": "10"}}),
        json!({"type": "struct", "optional": true, "field": "vsd", "name": "io.debezium.data.VariableScaleDecimal",
               "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]}),
        field("doc", "string", Some("io.debezium.data.Json")),
        field("zoned", "string", Some("io.debezium.time.ZonedTimestamp")),
        json!({"type": "array", "optional": true, "field": "days", "items": {"type": "int32", "name": "io.debezium.time.Date"}}),
    ];
    let payload = json!({
        "before": null,
        "after": {"id": 7, "born": -1, "old": 19_782, "at": 1_700_000_000_123_456i64, "at_ns": 1_700_000_000_123_456_789i64,
                  "at_ms": 86_400_001, "far": 32_503_680_000_000_001i64, "early": -62_135_596_800_000i64, "t": 45_296_000_001i64, "t_ms": 1_000, "price": "AOI=", "vsd": {"scale": 3, "value": "/w=="},
                  "doc": "{\"a\": [1, 2.50]}", "zoned": "2024-01-02T03:04:05.123456Z", "days": [0, null, 1]},
        "source": {"connector": "postgresql"}, "op": "r", "ts_ms": 1,
    });
    let c = change(&wrapped(fields, payload), None);
    assert_eq!(c.op, ChangeOp::Read);
    assert!(c.typed, "the schema decoded the values");
    assert_eq!(
        image(c.after.as_deref()),
        json!({"id": 7, "born": "1969-12-31", "old": "2024-02-29", "at": "2023-11-14T22:13:20.123456Z",
               "at_ns": "2023-11-14T22:13:20.123456789Z", "at_ms": "1970-01-02T00:00:00.001Z",
               "far": "3000-01-01T00:00:00.000001Z", "early": "0001-01-01T00:00:00.000Z", "t": "12:34:56.000001",
               "t_ms": "00:00:01.000", "price": "2.26", "vsd": "-0.001", "doc": {"a": [1, 2.50]},
               "zoned": "2024-01-02T03:04:05.123456Z", "days": ["1970-01-01", null, "1970-01-02"]})
    );
    // The decimal's digits as sent: 2.50 stays 2.50 inside the JSON document.
    assert!(c.after.as_deref().unwrap().contains("2.50"));
}

#[test]
fn decimals_sent_as_numbers_and_keys_in_the_wrapper() {
    let fields = vec![json!({"type": "bytes", "optional": true, "field": "price", "name": "org.apache.kafka.connect.data.Decimal",
                              "parameters": {"scale": "2"}})];
    let v = wrapped(fields, json!({"before": {"price": 12.5}, "after": null, "op": "d", "ts_ms": 1})).replace("12.5", "12.30");
    let key = json!({"schema": {"type": "struct", "fields": [field("day", "int32", Some("io.debezium.time.Date"))]},
                     "payload": {"day": 1}})
    .to_string();
    let c = change(&v, Some(&key));
    assert_eq!(c.op, ChangeOp::Delete);
    assert!(c.before.as_deref().unwrap().contains("12.30"), "decimal.format = NUMERIC: as sent");
    assert_eq!(image(c.key.as_deref()), json!({"day": "1970-01-02"}));
    assert_eq!(change(&v, Some("\"not an object\"")).key, None);
}

#[test]
fn what_is_not_a_row_change_is_told_from_what_is_not_a_change_event() {
    let not_a_row = |v: Value| match read(Box::leak(v.to_string().into_boxed_str()), None, None, false) {
        Event::NotARow(what) => what,
        other => panic!("{other:?}"),
    };
    assert_eq!(not_a_row(json!({"ts_ms": 1})), "a heartbeat");
    assert_eq!(not_a_row(json!({"schema": {"type": "struct"}, "payload": {"ts_ms": 1}})), "a heartbeat");
    assert_eq!(
        not_a_row(json!({"source": {}, "databaseName": "inventory", "ddl": "ALTER TABLE t ADD c int", "tableChanges": []})),
        "a schema change"
    );
    assert_eq!(not_a_row(json!({"status": "BEGIN", "id": "571:53195829", "ts_ms": 1, "event_count": null})), "transaction metadata");
    let invalid = |v: &str| match read(Box::leak(v.to_string().into_boxed_str()), None, None, false) {
        Event::Invalid(why) => why,
        other => panic!("{other:?}"),
    };
    assert!(invalid(r#"{"id": 1, "name": "x"}"#).contains("no op"));
    assert!(invalid(r#"{"op": "x", "after": {}}"#).contains("not one of"));
    assert!(invalid(r#"{"op": "c", "after": [1]}"#).contains("after is not an object"));
    assert!(invalid(r#"{"op": "c", "op": "u"}"#).contains("envelope"), "a repeated member");
    assert!(invalid("[1]").contains("envelope"));
    // A string where the schema says a number stays as sent: Debezium's placeholder for a value
    // it was not sent, for the projection to tell from a value (or refuse as the column's type).
    let toasted = wrapped(
        vec![
            field("d", "int32", Some("io.debezium.time.Date")),
            json!({"type": "bytes", "field": "p", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}),
        ],
        json!({"op": "c", "after": {"d": "__debezium_unavailable_value", "p": "__debezium_unavailable_value"}}),
    );
    assert_eq!(
        image(change(&toasted, None).after.as_deref()),
        json!({"d": "__debezium_unavailable_value", "p": "__debezium_unavailable_value"})
    );
    let huge = wrapped(
        vec![json!({"type": "struct", "field": "v", "name": "io.debezium.data.VariableScaleDecimal", "fields": []})],
        json!({"op": "c", "after": {"v": {"scale": 4_000_000_000u32, "value": "AQ=="}}}),
    );
    assert!(invalid(&huge).contains("beyond what tributary reads"), "a scale of billions is refused, not written out: {}", invalid(&huge));
    let far = wrapped(vec![field("d", "int32", Some("io.debezium.time.Date"))], json!({"op": "c", "after": {"d": 2_147_483_647}}));
    assert!(invalid(&far).contains("out of range"), "{}", invalid(&far));
}

#[test]
fn truncates_and_messages_read_without_images() {
    let c = change(r#"{"op": "t", "before": null, "after": null, "source": {"table": "t"}, "ts_ms": 5}"#, None);
    assert_eq!((c.op, c.before, c.after), (ChangeOp::Truncate, None, None));
    assert_eq!(change(r#"{"op": "m", "message": {"prefix": "p"}}"#, None).op, ChangeOp::Message);
}

/// The worker keeps its last schemas to compare before it hashes: schema texts of one length
/// that differ only near their end, sent in turn and more of them than it keeps, must each
/// decode their own message.
#[test]
fn each_message_is_decoded_by_its_own_schema_when_schemas_alternate() {
    // Date and Time: the same length, one int read two ways.
    let logicals = ["io.debezium.time.Date", "io.debezium.time.Time"];
    let schemas: Vec<(String, &str)> = (0..3)
        .flat_map(|table| logicals.iter().map(move |l| (table, *l)))
        .map(|(table, l)| (wrapped(vec![field(&format!("v{table}"), "int32", Some(l))], json!(null)), l))
        .collect();
    assert!(schemas.len() > super::RECENT, "more schemas than the worker keeps at hand");
    for round in 0..3 {
        for (i, (schema, logical)) in schemas.iter().enumerate().rev().skip(round % 2) {
            let table = i / 2;
            let v = schema.replace(r#""payload":null"#, &format!(r#""payload":{{"op":"c","after":{{"v{table}":1000}}}}"#));
            let want = if logical.ends_with("Date") { "1972-09-27" } else { "00:00:01.000" };
            assert_eq!(image(change(&v, None).after.as_deref()), json!({format!("v{table}"): want}), "{logical} in round {round}");
        }
    }
}

/// The members the parser found are the envelope serde reads again: the same event from either,
/// and what serde alone can tell (a repeated member, an `op` not a plain string) left to it.
#[test]
fn the_parsers_members_read_as_the_envelope_read_again() {
    let schema_fields = vec![field("at", "int64", Some("io.debezium.time.MicroTimestamp"))];
    let texts = [
        wrapped(schema_fields.clone(), json!({"op": "u", "after": {"at": 1}, "source": {"lsn": 1}, "ts_ms": 2})),
        wrapped(schema_fields.clone(), json!(null)),
        wrapped(schema_fields, json!({"ts_ms": 1})),
        json!({"op": "c", "before": null, "after": {"id": 1}, "source": {}, "ts_ms": 3}).to_string(),
        r#"{"op": "c", "op": "u", "after": {}}"#.into(),
        r#"{"op": null, "ts_ms": 1}"#.into(),
        r#"{"op": 5, "after": {}}"#.into(),
        r#"{"op": "\u0063", "after": {"id": 2}}"#.into(),
        r#"{"after": {"id": 2}, "after": {"id": 3}, "op": "c"}"#.into(),
        r#"{"schema": null, "payload": {"op": "d", "before": {"id": 1}}}"#.into(),
        r#"{"payload": {"op": "d", "before": {"id": 1}}, "other": [1, {"op": "x"}]}"#.into(),
        r#"{"ddl": "CREATE TABLE t (id int)", "source": {}, "databaseName": "db"}"#.into(),
    ];
    for text in &texts {
        let text: &'static str = Box::leak(text.clone().into_boxed_str());
        let object: super::super::json::Object<'_> = serde_json::from_str(text).unwrap();
        let spans = object.spans(text).unwrap();
        let key = Some(r#"{"id": 1}"#);
        assert_eq!(read(text, Some(&spans), key, false), read(text, None, key, false), "{text}");
    }
    let usual = &texts[0];
    let spans = serde_json::from_str::<super::super::json::Object<'_>>(usual).unwrap().spans(usual).unwrap();
    assert!(super::Parts::of_spans(usual, &spans).is_some(), "the usual wrapper is read from the members");
    let repeated = &texts[4];
    let spans = serde_json::from_str::<super::super::json::Object<'_>>(repeated).unwrap().spans(repeated).unwrap();
    assert!(super::Parts::of_spans(repeated, &spans).is_none(), "a repeated member is serde's to refuse");
}
