use std::borrow::Cow;

use serde_json::{json, Value};

use super::coerce::{coerce, Cell, Raw, SqlType};
use super::source::{Input, Source};
use super::*;
use crate::parse::{parse_message, ParseOptions, Parsed};
use crate::records::{RawMessage, Reason};

fn spec(v: Value) -> ProjectionSpec {
    serde_json::from_value(v).expect("spec")
}

fn base() -> Value {
    json!({"name": "orders", "table": "orders", "mode": "upsert", "key": ["id"],
           "columns": {"id": {"from": "key:/id", "type": "bigint"}, "status": "/status", "v": {"from": "/v", "type": "integer"}}})
}

fn with(patch: Value) -> ProjectionSpec {
    let mut b = base();
    for (k, v) in patch.as_object().unwrap() {
        b[k] = v.clone();
    }
    spec(b)
}

fn error_key(s: ProjectionSpec) -> String {
    Projection::from_spec(&s).map(|_| String::new()).unwrap_or_else(|e| e.key)
}

#[test]
fn coercion_turns_what_a_message_carries_into_the_column_type() {
    let j = |v: Value| Raw::Json(Cow::Owned(v.to_string()));
    assert_eq!(coerce(&j(json!("42")), SqlType::BigInt), Ok(Cell::Int(42)));
    assert_eq!(coerce(&j(json!(42.0)), SqlType::Integer), Ok(Cell::Int(42)));
    assert!(coerce(&j(json!(70000)), SqlType::SmallInt).is_err(), "out of range");
    assert!(coerce(&j(json!("12 dollars")), SqlType::BigInt).unwrap_err().contains("not an integer"));
    assert_eq!(coerce(&j(json!(12)), SqlType::Text), Ok(Cell::Text("12".into())));
    assert_eq!(coerce(&j(json!("true")), SqlType::Boolean), Ok(Cell::Bool(true)));
    assert_eq!(coerce(&j(json!("12.50")), SqlType::Numeric), Ok(Cell::Numeric("12.50".into())));
    assert!(coerce(&j(json!("1,5")), SqlType::Numeric).is_err());
    let t = |v: Value| coerce(&j(v), SqlType::Timestamptz).map(|c| c.to_text().unwrap().into_owned());
    assert_eq!(t(json!("2026-01-02T03:04:05+01:00")).unwrap(), "2026-01-02T02:04:05.000000Z");
    assert_eq!(t(json!(1_767_000_000)).unwrap(), t(json!(1_767_000_000_000i64)).unwrap(), "epoch seconds and millis");
    assert!(t(json!("noon")).is_err());
    assert_eq!(
        coerce(&j(json!("{6F9619FF-8B86-D011-B42D-00CF4FC964FF}")), SqlType::Uuid),
        Ok(Cell::Uuid("6f9619ff-8b86-d011-b42d-00cf4fc964ff".into()))
    );
    assert_eq!(coerce(&j(json!({"a": [1]})), SqlType::Jsonb), Ok(Cell::Json(r#"{"a":[1]}"#.into())));
    assert_eq!(coerce(&j(Value::Null), SqlType::BigInt), Ok(Cell::Null), "null is NULL whatever the type");
    assert_eq!(coerce(&Raw::Text(Cow::Borrowed(" 7 ")), SqlType::BigInt), Ok(Cell::Int(7)));
    assert!(coerce(&Raw::Bytes(b"\xff"), SqlType::Text).is_err(), "bytes that are not UTF-8");
    assert!(coerce(&j(json!(9_223_372_036_854_775_808.0)), SqlType::BigInt).is_err(), "2^63 is past i64::MAX, not clamped to it");
    assert!(coerce(&j(json!(-9_223_372_036_854_775_808.0)), SqlType::BigInt).is_err(), "the double's text is -9223372036854776000");
    assert_eq!(SqlType::of_sqlite(""), SqlType::Text, "an untyped SQLite column takes values as given");
    assert_eq!(SqlType::of_sqlite("BLOB"), SqlType::Bytea);
}

/// What a JSON number (or string) in a message becomes in a column: its exact value, or a refusal.
#[test]
fn a_number_keeps_every_digit_or_is_refused() {
    let c = |text: &str, ty: SqlType| coerce(&Raw::Json(Cow::Borrowed(text)), ty);
    let num = |s: &str| Ok(Cell::Numeric(s.into()));
    assert_eq!(c("99999999999999999999999.99", SqlType::Numeric), num("99999999999999999999999.99"));
    assert_eq!(c("12345678901234567890.123456789", SqlType::Numeric), num("12345678901234567890.123456789"));
    assert_eq!(c("1e400", SqlType::Numeric), num("1e400"));
    let digits = "9".repeat(1000);
    assert_eq!(c(&digits, SqlType::Numeric), num(&digits));
    assert!(c("1e131072", SqlType::Numeric).unwrap_err().contains("131072"), "beyond numeric: refused, not NULL");
    assert_eq!(c("12345678901234567890123", SqlType::Text), Ok(Cell::Text("12345678901234567890123".into())));
    assert_eq!(c("12345678901234567890123", SqlType::Jsonb), Ok(Cell::Json("12345678901234567890123".into())));
    assert_eq!(
        c(r#"{"n": 1e400, "m": [ 0.10000000000000000001 ]}"#, SqlType::Json),
        Ok(Cell::Json(r#"{"n":1e400,"m":[0.10000000000000000001]}"#.into()))
    );
    assert_eq!(c("9007199254740993.0", SqlType::BigInt), Ok(Cell::Int(9_007_199_254_740_993)));
    assert_eq!(c("-9223372036854775808", SqlType::BigInt), Ok(Cell::Int(i64::MIN)));
    assert!(c("-9223372036854775809", SqlType::BigInt).unwrap_err().contains("out of range"));
    assert!(c("1e400", SqlType::BigInt).unwrap_err().contains("out of range"));
    assert!(c("1.5", SqlType::Integer).unwrap_err().contains("fraction"));
    assert_eq!(c("1e3", SqlType::SmallInt), Ok(Cell::Int(1000)));
    assert_eq!(c("9007199254740993", SqlType::Double), Ok(Cell::Float(9_007_199_254_740_992.0)), "the nearest double");
    assert_eq!(c("0.1", SqlType::Real), Ok(Cell::Float(f64::from(0.1f32))), "the nearest real");
    assert_eq!(c("4.9e-324", SqlType::Double), Ok(Cell::Float(4.9e-324)), "a subnormal, as PostgreSQL reads it");
    for out in ["1e400", "-1e309", "1e-400"] {
        assert!(c(out, SqlType::Double).unwrap_err().contains("out of range"), "{out}");
    }
    assert!(c("1e39", SqlType::Real).unwrap_err().contains("out of range for real"));
    assert_eq!(c("\"1e3\"", SqlType::BigInt), Ok(Cell::Int(1000)), "a string that is a number");
    assert_eq!(c("1.0", SqlType::Boolean), Ok(Cell::Bool(true)));
}

#[test]
fn a_key_the_database_holds_equal_is_one_key_whatever_its_spelling() {
    let id = |c: Cell| {
        let mut out = Vec::new();
        c.identity(KeyForm::Number, &mut out);
        out
    };
    let n = |s: &str| id(Cell::Numeric(s.into()));
    for same in ["1.5", "1.50", "+1.500E0", "15e-1", "0.15e1", "001.5"] {
        assert_eq!(n(same), n("1.5"), "{same}");
    }
    for zero in ["0", "-0", "0.000", "0e5", "-0.0E-3"] {
        assert_eq!(n(zero), n("0"), "{zero}");
    }
    assert_eq!(n("150"), n("1.5e2"));
    assert_ne!(n("10"), n("1"));
    assert_ne!(n("-1.5"), n("1.5"));
    assert_ne!(n("1.5"), n("1.05"));
    assert_eq!(id(Cell::Float(-0.0)), id(Cell::Float(0.0)));
    // One key whichever type a projection declared it with.
    for (int, same) in [(10, "1e1"), (10, "10.00"), (-1500, "-1.5e3"), (0, "-0.0"), (i64::MIN, "-9223372036854775808")] {
        assert_eq!(id(Cell::Int(int)), n(same), "{int} and {same}");
    }
    assert_eq!(id(Cell::Int(3)), id(Cell::Float(3.0)));
    assert_ne!(id(Cell::Float(1.0)), id(Cell::Float(-1.0)));
}

#[test]
fn sources_are_parsed_or_refused_with_the_forms_there_are() {
    assert_eq!(Source::parse("/a/0/b"), Ok(Source::Data("/a/0/b".into())));
    assert_eq!(Source::parse("/"), Ok(Source::Data(String::new())));
    assert_eq!(Source::parse("ce.time"), Ok(Source::Attribute("time".into())));
    assert_eq!(Source::parse("key:/order_id"), Ok(Source::KeyPointer("/order_id".into())));
    assert_eq!(Source::parse("header.trace"), Ok(Source::Header("trace".into())));
    assert_eq!(Source::parse("kafka.offset"), Ok(Source::KafkaOffset));
    assert!(Source::parse("kafka.lag").unwrap_err().contains("kafka.topic"));
    assert!(Source::parse("status").unwrap_err().contains("JSON pointer"));
    assert!(Source::parse("key:order_id").is_err());
}

#[test]
fn a_projection_that_cannot_work_is_refused_naming_its_key() {
    assert!(Projection::from_spec(&spec(base())).is_ok());
    assert_eq!(error_key(with(json!({"name": " "}))), "name");
    assert_eq!(error_key(with(json!({"table": "a.b.c"}))), "table");
    assert_eq!(error_key(with(json!({"columns": {}}))), "columns");
    assert_eq!(error_key(with(json!({"key": ["nope"]}))), "key");
    assert_eq!(error_key(with(json!({"key": []}))), "key", "upsert needs a key");
    assert_eq!(error_key(with(json!({"mode": "insert", "key": [], "delete_types": ["x"]}))), "key", "deletes need a key");
    assert_eq!(error_key(with(json!({"newer_wins": "id"}))), "newer_wins", "not a key column");
    assert_eq!(error_key(with(json!({"mode": "insert", "newer_wins": "v"}))), "newer_wins");
    assert_eq!(error_key(with(json!({"create_table": true}))), "columns.status", "create_table needs every type");
    assert_eq!(error_key(with(json!({"columns": {"id": {"from": "/id", "type": "money"}}}))), "columns.id.type");
    assert_eq!(error_key(with(json!({"columns": {"id": {"from": "/id", "value": 1}}}))), "columns.id");
    // A tombstone has only its key: every key column must come from it.
    let mut s = base();
    s["delete_on_tombstone"] = json!(true);
    s["columns"]["id"] = json!({"from": "/id", "type": "bigint"});
    assert_eq!(error_key(spec(s)), "delete_on_tombstone");
    assert!(serde_json::from_value::<ProjectionSpec>(json!({"name": "x", "table": "t", "colums": {}})).is_err(), "unknown keys");
}

/// A name labels metrics and log lines as is: only `[A-Za-z0-9_.-]{1,64}` passes, and the error
/// names the projection escaped, so the error line itself cannot be split or forged.
#[test]
fn a_projection_name_is_letters_digits_underscore_dot_dash_up_to_64() {
    for good in ["orders", "Orders_v2", "shop.orders-eu", "a", &"x".repeat(64)] {
        assert_eq!(error_key(with(json!({"name": good}))), "", "{good:?}");
    }
    for bad in ["", " orders", "a\"b", "a\\b", "a\nb", "a b", "a}b", "a=b", "é", &"x".repeat(65)] {
        let e = Projection::from_spec(&with(json!({"name": bad}))).unwrap_err();
        assert_eq!(e.key, "name", "{bad:?}");
        assert_eq!(e.projection, bad.escape_debug().to_string());
        assert!(!e.to_string().contains('\n'), "one line: {e}");
        assert!(e.fix.contains("name = \"orders\""), "{e}");
    }
}

fn record(offset: i64, key: Option<&[u8]>, payload: Option<&[u8]>) -> RawMessage {
    RawMessage::new(offset, Some(1_767_000_000_000), key, payload, std::iter::empty::<(&[u8], Option<&[u8]>)>())
}

fn plan(specs: Vec<ProjectionSpec>) -> Plan {
    Plan { projections: specs.iter().map(|s| Projection::from_spec(s).unwrap()).collect(), events: EventsSpec::default() }
}

fn row(m: RawMessage) -> crate::records::EventRow {
    match parse_message(m, &ParseOptions::default()) {
        Parsed::Row(r) => r,
        Parsed::Dead(d) => panic!("{d:?}"),
    }
}

#[test]
fn a_message_goes_to_every_projection_its_topic_and_type_match() {
    let p = plan(vec![
        with(json!({"name": "a", "topics": ["shop.*"], "types": ["order.*"], "delete_types": ["order.cancelled"]})),
        with(json!({"name": "b", "types": ["payment.*"]})),
        with(json!({"name": "c", "mode": "insert", "key": []})),
    ]);
    let ce = |ty: &str| format!(r#"{{"specversion":"1.0","id":"1","source":"/s","type":"{ty}","data":{{"status":"paid","v":"3"}}}}"#);
    let routed = |topic: &str, ty: &str| -> Vec<(u16, bool)> {
        let r = row(record(5, Some(br#"{"id":9}"#), Some(ce(ty).as_bytes())));
        p.route(topic, 0, &r).unwrap().into_iter().map(|op| (op.projection, op.is_delete())).collect()
    };
    assert_eq!(routed("shop.eu", "order.placed"), vec![(0, false), (2, false)]);
    assert_eq!(routed("shop.eu", "order.cancelled"), vec![(0, true), (2, false)]);
    assert_eq!(routed("other", "order.placed"), vec![(2, false)], "topic glob");
    assert_eq!(routed("shop.eu", "payment.settled"), vec![(1, false), (2, false)]);
    // Cells are coerced; a delete carries the key only.
    let r = row(record(5, Some(br#"{"id":9}"#), Some(ce("order.cancelled").as_bytes())));
    let ops = p.route("shop.eu", 0, &r).unwrap();
    assert_eq!(ops[0].cells, vec![Some(Cell::Int(9)), None, None]);
    assert_eq!(ops[1].cells, vec![Some(Cell::Int(9)), Some(Cell::Text("paid".into())), Some(Cell::Int(3))]);
}

#[test]
fn a_message_a_projection_cannot_take_is_refused_with_the_column_and_value() {
    let p = plan(vec![with(json!({"name": "a", "newer_wins": "v"}))]);
    let refused = |key: &[u8], data: &str| {
        let r = row(record(1, Some(key), Some(data.as_bytes())));
        p.route("t", 0, &r).unwrap_err().refusal
    };
    let e = refused(br#"{"id":1}"#, r#"{"status":"x","v":"three"}"#);
    assert_eq!(e.reason, Reason::ProjectionType);
    assert!(e.detail.contains("projection a") && e.detail.contains("column v") && e.detail.contains("three"), "{}", e.detail);
    let e = refused(b"not json", r#"{"status":"x","v":1}"#);
    assert_eq!(e.reason, Reason::ProjectionMissing);
    assert!(e.detail.contains("column id"), "{}", e.detail);
    assert_eq!(refused(br#"{"id":1}"#, r#"{"status":"x"}"#).reason, Reason::ProjectionMissing, "newer_wins needs a version");
    assert_eq!(refused(br#"{"id":null}"#, r#"{"v":1}"#).reason, Reason::ProjectionMissing, "a null key");
    // Absent and null stay apart: absent leaves the column alone, null sets NULL.
    let r = row(record(1, Some(br#"{"id":1}"#), Some(br#"{"status":null,"v":2}"#)));
    assert_eq!(p.route("t", 0, &r).unwrap()[0].cells[1], Some(Cell::Null));
    let r = row(record(1, Some(br#"{"id":1}"#), Some(br#"{"v":2}"#)));
    assert_eq!(p.route("t", 0, &r).unwrap()[0].cells[1], None);
}

#[test]
fn a_tombstone_deletes_in_the_projections_that_ask_for_it() {
    let p = plan(vec![with(json!({"name": "a", "delete_on_tombstone": true})), with(json!({"name": "b"}))]);
    let ops = p.route_tombstone("t", 0, &record(3, Some(br#"{"id":4}"#), None)).unwrap();
    assert_eq!(ops, vec![Op::new(0, OpKind::Delete, vec![Some(Cell::Int(4)), None, None])]);
    let e = p.route_tombstone("t", 0, &record(3, None, None)).unwrap_err();
    assert_eq!(e.refusal.reason, Reason::ProjectionMissing);
}

/// With the archive on, a tombstone a projection takes is archived beside its deletes (no data,
/// its key and headers kept), so its offset is a row like any other; one nothing takes stays an
/// `empty_payload` dead letter; with the archive off it is projected only.
#[test]
fn a_tombstone_a_projection_takes_is_archived_with_its_key_and_headers() {
    use crate::parse::route::{route_message, Routed};
    let mut p = plan(vec![with(json!({"name": "a", "topics": ["t"], "delete_on_tombstone": true}))]);
    let key = br#"{"id":4}"#;
    let tombstone = |offset| {
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"trace", Some(b"t-1")), (b"gone", None)];
        RawMessage::new(offset, Some(1_767_000_000_000), Some(key), None, headers)
    };
    let opts = |p: &Plan| ParseOptions { plan: std::sync::Arc::new(p.clone()), ..ParseOptions::default() };
    match route_message(tombstone(3), "t", 0, &opts(&p)) {
        Routed::Row { row, ops } => {
            assert_eq!(ops, vec![Op::new(0, OpKind::Delete, vec![Some(Cell::Int(4)), None, None])]);
            assert_eq!((row.offset, row.data(), row.key(), row.event_type()), (3, None, Some(&key[..]), None));
            assert_eq!(row.headers(), r#"{"trace":"t-1","gone":null}"#);
            assert!(row.kafka_timestamp.is_some());
        }
        other => panic!("archived and projected: {other:?}"),
    }
    match route_message(tombstone(4), "u", 0, &opts(&p)) {
        Routed::Dead(d) => assert_eq!((d.reason, d.key.as_deref(), d.payload), (Reason::EmptyPayload, Some(&key[..]), None)),
        other => panic!("no projection takes topic u: {other:?}"),
    }
    p.events.enabled = false;
    assert!(matches!(route_message(tombstone(5), "t", 0, &opts(&p)), Routed::Projected { .. }));
}

/// Without the archive a NUL counts only in a value a projection writes, and only where the
/// column cannot hold it: PostgreSQL's text (a NUL character) and jsonb (a `\u0000` escape too).
#[test]
fn a_nul_is_refused_only_in_a_value_written_to_a_column_that_cannot_hold_it() {
    let spec = with(json!({"name": "a", "columns": {
        "id": {"from": "key:/id", "type": "bigint"}, "status": "/status", "doc": {"from": "/doc", "type": "jsonb"}}}));
    let route = |status: Nul, doc: Nul, data: &str| {
        let mut p = Projection::from_spec(&spec).unwrap();
        for c in &mut p.columns {
            c.nul = if c.name == "doc" { doc } else { status };
        }
        let plan = Plan { projections: vec![p], events: EventsSpec { enabled: false, unrouted: Unrouted::Skip } };
        let opts = ParseOptions { plan: std::sync::Arc::new(plan), ..ParseOptions::default() };
        let Parsed::Row(r) = parse_message(record(1, Some(br#"{"id":1}"#), Some(data.as_bytes())), &opts) else {
            panic!("{data} should parse without the archive")
        };
        opts.plan.route("t", 0, &r).map(|ops| ops[0].cells.clone()).map_err(|e| e.refusal)
    };
    let (text, json, jsonb) = (Nul::postgres(Some(SqlType::Text)), Nul::postgres(Some(SqlType::Json)), Nul::postgres(Some(SqlType::Jsonb)));
    assert!(route(text, jsonb, r#"{"status":"ok","other":"x\u0000"}"#).is_ok(), "a field nobody reads");
    let e = route(text, jsonb, r#"{"status":"a\u0000b"}"#).unwrap_err();
    assert_eq!(e.reason, Reason::NulCharacter);
    assert!(e.detail.starts_with("projection a: column status"), "{}", e.detail);
    assert_eq!(route(Nul::Holds, Nul::Holds, r#"{"status":"a\u0000b"}"#).unwrap()[2], Some(Cell::Text("a\0b".into())), "SQLite");
    assert_eq!(route(text, jsonb, r#"{"doc":{"k":"\u0000"}}"#).unwrap_err().reason, Reason::NulCharacter);
    assert!(route(text, json, r#"{"doc":{"k":"\u0000"}}"#).is_ok(), "json keeps the escape as text");
    assert!(route(text, jsonb, r#"{"doc":{"k":"\\u0000"}}"#).is_ok(), "an escaped backslash, then text");
}

#[test]
fn every_source_reads_its_part_of_the_message() {
    let s = spec(json!({"name": "all", "table": "t", "columns": {
        "d": "/", "a": "ce.source", "x": "ce.traceparent", "tp": "kafka.topic", "pa": "kafka.partition", "o": "kafka.offset",
        "ts": {"from": "kafka.timestamp", "type": "bigint"}, "k": "kafka.key", "h": "header.h", "c": {"value": "eu-1"}}}));
    let mut p = Projection::from_spec(&s).unwrap();
    for c in &mut p.columns {
        c.ty = c.declared.unwrap_or(SqlType::Text);
    }
    let plan = Plan { projections: vec![p], events: EventsSpec::default() };
    let ce = br#"{"specversion":"1.0","id":"1","source":"/shop","type":"t","traceparent":"00-ab","data":{"n":1}}"#;
    let headers: [(&[u8], Option<&[u8]>); 1] = [(b"h", Some(b"hv"))];
    let m = RawMessage::new(7, Some(1_767_000_000_000), Some(b"k1"), Some(ce), headers);
    let ops = plan.route("topic-a", 2, &row(m)).unwrap();
    let text = |i: usize| ops[0].cells[i].as_ref().and_then(|c| c.to_text()).map(|t| t.into_owned());
    let by: std::collections::BTreeMap<&str, Option<String>> =
        plan.projections[0].columns.iter().enumerate().map(|(i, c)| (c.name.as_str(), text(i))).collect();
    assert_eq!(by["d"].as_deref(), Some(r#"{"n":1}"#));
    assert_eq!(by["a"].as_deref(), Some("/shop"));
    assert_eq!(by["x"].as_deref(), Some("00-ab"), "an extension attribute");
    assert_eq!(by["tp"].as_deref(), Some("topic-a"));
    assert_eq!(by["pa"].as_deref(), Some("2"));
    assert_eq!(by["o"].as_deref(), Some("7"));
    assert_eq!(by["ts"].as_deref(), Some("1767000000000"), "Kafka's timestamp, as epoch millis into bigint");
    assert_eq!(by["k"].as_deref(), Some("k1"));
    assert_eq!(by["h"].as_deref(), Some("hv"));
    assert_eq!(by["c"].as_deref(), Some("eu-1"));
}

/// A data column's value read as a projection reads it: off a parsed message, through the
/// cache of the data's top-level members.
fn data_at(doc: &str, ptr: &str) -> Option<Value> {
    let m = RawMessage::new(0, None, None, Some(doc.as_bytes()), std::iter::empty::<(&[u8], Option<&[u8]>)>());
    let Parsed::Row(row) = parse_message(m, &ParseOptions::default()) else { panic!("{doc} should parse") };
    let mut input = Input::new("t", 0, &row.original, Some(&row));
    let source = Source::Data(ptr.to_string());
    let mut read = || {
        input.get(&source).map(|raw| match raw {
            Raw::Json(v) => serde_json::from_str::<Value>(&v).expect("JSON"),
            other => panic!("a data pointer gives JSON, not {other:?}"),
        })
    };
    let got = read();
    // A second read of the same message goes through the cached members.
    assert_eq!(got, read(), "{ptr}: a second read");
    got
}

#[test]
fn a_pointer_reads_one_value_out_of_the_text() {
    use super::source::pointer;
    let doc = r#"{"a": {"b": [10, {"c~d/e": "x"}, null], "": {"": 5}}, "n": 1, "n": 2, "esc\u0061ped": true, "arr": [], "a/b": 3, "": 4}"#;
    let want: [(&str, Option<Value>); 10] = [
        ("", serde_json::from_str(doc).ok()),
        ("/a/b/0", Some(json!(10))),
        ("/a/b/1/c~0d~1e", Some(json!("x"))),
        ("/a/b/2", Some(Value::Null)),
        ("/n", Some(json!(2))),
        ("/escaped", Some(json!(true))),
        ("/a~1b", Some(json!(3))),
        ("/", Some(json!(4))),
        ("/a/", Some(json!({"": 5}))),
        ("/a//", Some(json!(5))),
    ];
    for (ptr, want) in want {
        assert_eq!(pointer(doc, ptr), want, "pointer {ptr:?}");
        assert_eq!(data_at(doc, ptr), want, "data column {ptr:?}");
    }
    for absent in ["/a/b/3", "/a/b/01", "/a/b/x", "/arr/0", "/nope", "/n/0", "/a/b/-", "/a/b/"] {
        assert_eq!(pointer(doc, absent), None, "{absent}");
        assert_eq!(data_at(doc, absent), None, "data column {absent}");
    }
    assert_eq!(pointer("not json", "/a"), None);
}

proptest::proptest! {
    /// Any pointer into any object reads what serde_json's own `Value::pointer` reads.
    #[test]
    fn a_data_pointer_reads_what_serde_json_reads(doc in json_object(), path in proptest::collection::vec(token(), 0..4)) {
        let ptr: String = path.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect();
        let text = doc.to_string();
        proptest::prop_assert_eq!(data_at(&text, &ptr), doc.pointer(&ptr).cloned(), "{} at {:?}", text, ptr);
    }
}

/// Names and indices a generated pointer may use: some are in the generated documents.
fn token() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy;
    proptest::sample::select(vec!["a", "b", "", "a/b", "~", "0", "1", "01", "-"]).prop_map(str::to_string)
}

fn json_object() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z~/]{0,3}".prop_map(Value::from)
    ];
    let name = proptest::sample::select(vec!["a", "b", "", "a/b", "~", "0", "1"]).prop_map(str::to_string);
    let tree = leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(name.clone(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let name = proptest::sample::select(vec!["a", "b", "", "a/b", "~", "0", "1"]).prop_map(str::to_string);
    proptest::collection::btree_map(name, tree, 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// The in-flight budget holds batches as parsed: a projected batch weighs its ops and their
/// cells' text beside the records, so a batch that grows when parsed reserves more.
#[test]
fn a_parsed_batch_weighs_its_ops_and_their_text() {
    use crate::batches::{Fence, RawBatch};
    use crate::records::PartitionKey;
    let mut p = plan(vec![with(json!({"name": "a"}))]);
    p.events.enabled = false;
    let opts = ParseOptions { plan: std::sync::Arc::new(p), ..ParseOptions::default() };
    let status = "s".repeat(300);
    let messages: Vec<RawMessage> = (0..10)
        .map(|i| record(i, Some(format!(r#"{{"id":{i}}}"#).as_bytes()), Some(format!(r#"{{"status":"{status}","v":{i}}}"#).as_bytes())))
        .collect();
    let raw = RawBatch {
        partition: PartitionKey { topic: "t".into(), partition: 0 },
        fence: Fence::NoProgress,
        next_offset: 10,
        messages,
        seq: 1,
    };
    let read = raw.weight();
    let parsed = crate::parser::parse_batch(raw, &opts);
    assert_eq!(parsed.projected.len(), 10);
    let ops: usize = parsed.projected.iter().flat_map(|p| &p.ops).map(Op::weight).sum();
    assert!(ops >= 10 * (300 + 3 * std::mem::size_of::<Option<Cell>>()), "ops weigh their cells and text: {ops}");
    assert_eq!(parsed.weight(), read + ops, "the records as read, and the ops");
}

fn lit(json: &str, element: SqlType) -> Result<String, String> {
    coerce(&Raw::Json(json.into()), super::coerce::Target { ty: SqlType::Text, unit: None, element: Some(element), scale: None })
        .map(|c| c.to_text().unwrap().into_owned())
}

#[test]
fn a_json_array_becomes_postgres_array_text() {
    assert_eq!(lit(r#"["a", "b\"c", null, "x,y"]"#, SqlType::Text).unwrap(), r#"{"a","b\"c",NULL,"x,y"}"#);
    assert_eq!(lit("[[1, 2], [3, 4]]", SqlType::BigInt).unwrap(), r#"{{"1","2"},{"3","4"}}"#);
    assert_eq!(lit("[]", SqlType::Integer).unwrap(), "{}");
    assert_eq!(lit(r#"[{"a": 1}]"#, SqlType::Jsonb).unwrap(), r#"{"{\"a\":1}"}"#);
    assert_eq!(lit(r#""{1,2}""#, SqlType::Integer).unwrap(), "{1,2}", "PostgreSQL's own text passes");
    assert!(lit("[[1, 2], [3]]", SqlType::BigInt).unwrap_err().contains("rectangular"));
    assert!(lit("[[1], 2]", SqlType::BigInt).unwrap_err().contains("rectangular"));
    assert!(lit("[1.5]", SqlType::Integer).unwrap_err().contains("fraction"));
    assert!(lit(r#"[{"a": 1}]"#, SqlType::Text).unwrap_err().contains("object"));
    assert!(lit("[[[[[[[1]]]]]]]", SqlType::Integer).unwrap_err().contains("dimensions"));
    assert!(lit("7", SqlType::Integer).unwrap_err().contains("not an array"));
}

#[test]
fn a_debezium_projection_is_checked_at_start_naming_key_and_fix() {
    let cdc = |patch: Value| {
        let mut b = json!({"name": "replica", "table": "customers", "envelope": "debezium"});
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        error_key(spec(b))
    };
    assert_eq!(cdc(json!({})), "", "no columns and no key: both come from the table");
    let p = Projection::from_spec(&spec(json!({"name": "r", "table": "t", "envelope": "debezium"}))).unwrap();
    assert_eq!((p.mode, p.deferred, p.map_all.is_some()), (Mode::Upsert, true, true));
    assert_eq!(cdc(json!({"table": "${source.schema}.${source.table}"})), "", "a template, tables found as changes reach them");
    assert_eq!(cdc(json!({"table": "${source.tbl}"})), "table", "an unknown variable");
    assert_eq!(cdc(json!({"table": "${source.table}", "create_table": true})), "", "each table from the events' schema");
    let listed =
        json!({"table": "${source.table}", "create_table": true, "key": ["id"], "columns": {"id": {"from": "/id", "type": "bigint"}}});
    assert_eq!(cdc(listed), "create_table", "a template's tables come from the schema");
    assert_eq!(cdc(json!({"table": "${source.table}", "map_all_fields": true, "columns": {"s": "ce.source"}})), "columns");
    assert_eq!(error_key(with(json!({"table": "${source.table}"}))), "table", "only change events name their table");
    let t = Projection::from_spec(&spec(json!({"name": "r", "table": "${source.table}", "envelope": "debezium", "key": ["id"]}))).unwrap();
    assert!(t.deferred && t.template.is_some(), "a template's key and columns wait for each table");
    assert_eq!(cdc(json!({"schema_evolution": "add_columns"})), "", "every field mapped: new ones become columns");
    assert_eq!(cdc(json!({"schema_evolution": "add_columns", "key": ["id"], "columns": {"id": "/id"}})), "schema_evolution");
    assert_eq!(cdc(json!({"create_table": true})), "", "a table from the events' schema");
    assert_eq!(cdc(json!({"create_table": true, "columns": {"id": {"from": "/id", "type": "bigint"}}})), "create_table", "needs key");
    let widened =
        Projection::from_spec(&spec(json!({"name": "r", "table": "t", "envelope": "debezium", "schema_evolution": "add_columns"})))
            .unwrap();
    assert!(widened.template.is_some(), "a table the writer widens is found by the writer");
    assert_eq!(cdc(json!({"types": ["x"]})), "types");
    assert_eq!(cdc(json!({"delete_on_tombstone": true})), "delete_on_tombstone");
    assert_eq!(cdc(json!({"columns": {"v": {"from": "debezium.after"}}})), "columns.v");
    assert_eq!(cdc(json!({"columns": {"n": {"from": "/n", "type": "bigint", "scale": 2}}})), "columns.n.scale");
    assert_eq!(error_key(with(json!({"truncate": true}))), "truncate", "only change events truncate");
    assert_eq!(error_key(with(json!({"columns": {"id": "key:/id", "op": "debezium.op"}}))), "columns.op");
    let listed = Projection::from_spec(&spec(json!({"name": "r", "table": "t", "envelope": "debezium", "key": ["id"],
        "columns": {"id": "/id", "lsn": {"from": "debezium.source.lsn", "type": "bigint"}}})))
    .unwrap();
    assert!(!listed.deferred && listed.map_all.is_none(), "listed columns and a key: checked at once");
}
