//! Framed records through the whole parser and router, with schemas held in advance (the
//! registry's side is the integration tests'; the Avro bytes here are written by hand, and
//! Confluent's own serializers write them there).

use std::sync::Arc;

use serde_json::{json, Value};

use super::{frame, Schemas};
use crate::parse::options::{Format, ParseOptions};
use crate::parse::route::{route_message, Routed};
use crate::project::{EventsSpec, Plan, Projection, ProjectionSpec};
use crate::records::{RawMessage, Reason};
use crate::registry::RawSchema;

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"long"},
    {"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
    {"name":"note","type":["null","string"]}]}"#;
const KEY: &str = r#"{"type":"record","name":"Key","fields":[{"name":"id","type":"long"}]}"#;

fn avro(schema: &str) -> RawSchema {
    RawSchema { schema_type: "AVRO".into(), schema: schema.into(), references: vec![] }
}

fn zz(v: i64) -> Vec<u8> {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    [&[0][..], &id.to_be_bytes(), datum].concat()
}

/// Order 2⁵³+1, total -123.45, note "hi".
fn order() -> Vec<u8> {
    [zz(9_007_199_254_740_993), zz(2), vec![0xcf, 0xc7], zz(1), zz(2), b"hi".to_vec()].concat()
}

fn opts(format: Format, key_format: Format, plan: Plan) -> ParseOptions {
    let schemas = Schemas::preloaded(vec![
        (1, avro(ORDER)),
        (2, avro(KEY)),
        (3, RawSchema { schema_type: "JSON".into(), schema: "{}".into(), references: vec![] }),
        (4, avro(r#"{"type":"record","name":"Broken","fields":[{"name":"x","type":"NoSuchType"}]}"#)),
    ]);
    ParseOptions { format, key_format, plan: Arc::new(plan), schemas: Some(Arc::new(schemas)), ..ParseOptions::default() }
}

fn route(opts: &ParseOptions, key: Option<&[u8]>, value: &[u8], headers: &[(&[u8], &[u8])]) -> Routed {
    let msg = RawMessage::new(7, Some(1_767_000_000_000), key, Some(value), headers.iter().map(|(k, v)| (*k, Some(*v))));
    route_message(msg, "orders", 0, opts)
}

fn data(routed: Routed) -> Value {
    match routed {
        Routed::Row { row, .. } => serde_json::from_str(row.data().expect("data")).expect("JSON"),
        other => panic!("not a row: {other:?}"),
    }
}

fn dead(routed: Routed) -> (Reason, String) {
    match routed {
        Routed::Dead(d) => (d.reason, d.detail),
        other => panic!("not a dead letter: {other:?}"),
    }
}

#[test]
fn a_framed_avro_value_is_stored_as_the_json_of_its_schema_in_auto_and_avro_alike() {
    let expected = json!({"id": 9_007_199_254_740_993u64, "total": "-123.45", "note": "hi"});
    for format in [Format::Auto, Format::Avro] {
        let o = opts(format, Format::Auto, Plan::default());
        assert_eq!(data(route(&o, None, &framed(1, &order()), &[])), expected);
        // A plain JSON value still reads in auto; an explicit format refuses it.
        let plain = route(&o, None, br#"{"a":1}"#, &[]);
        match format {
            Format::Auto => assert_eq!(data(plain), json!({"a": 1})),
            _ => {
                let (reason, detail) = dead(plain);
                assert_eq!(reason, Reason::NotFramed);
                assert!(detail.contains("parser.format = avro") && detail.contains("0x7b"), "{detail}");
            }
        }
    }
}

#[test]
fn a_binary_mode_cloudevent_with_framed_data_keeps_both_its_attributes_and_the_decoded_data() {
    let o = opts(Format::Auto, Format::Auto, Plan::default());
    let headers: [(&[u8], &[u8]); 4] = [(b"ce_specversion", b"1.0"), (b"ce_id", b"e1"), (b"ce_source", b"/shop"), (b"ce_type", b"order")];
    let Routed::Row { row, .. } = route(&o, None, &framed(1, &order()), &headers) else { panic!("not a row") };
    assert_eq!((row.event_id(), row.source(), row.event_type()), (Some("e1"), Some("/shop"), Some("order")));
    assert_eq!(serde_json::from_str::<Value>(row.data().unwrap()).unwrap()["total"], json!("-123.45"));
}

#[test]
fn a_datum_its_schema_cannot_read_or_an_unusable_schema_is_a_dead_letter_saying_why() {
    let o = opts(Format::Auto, Format::Auto, Plan::default());
    let truncated = &order()[..order().len() - 1];
    let (reason, detail) = dead(route(&o, None, &framed(1, truncated), &[]));
    assert_eq!(reason, Reason::InvalidAvro);
    assert!(detail.contains("schema 1") && detail.contains("at /note"), "{detail}");
    let (reason, detail) = dead(route(&o, None, &framed(4, &[]), &[]));
    assert_eq!(reason, Reason::InvalidAvro);
    assert!(detail.contains("NoSuchType"), "{detail}");
    assert_eq!(o.schemas.as_ref().unwrap().registry().metrics.decode_failures.get_or_create(&vec![("format", "avro")]).get(), 1);
}

#[test]
fn json_schema_values_lose_their_frame_and_must_be_json() {
    let o = opts(Format::JsonSchema, Format::Auto, Plan::default());
    assert_eq!(data(route(&o, None, &framed(3, br#"{"n":12345678901234567890}"#), &[])), json!({"n": 12345678901234567890u64}));
    let (reason, detail) = dead(route(&o, None, &framed(3, b"{oops"), &[]));
    assert_eq!(reason, Reason::InvalidJsonSchema);
    assert!(detail.contains("schema 3"), "{detail}");
}

#[test]
fn key_pointers_read_a_framed_key_decoded_and_an_explicit_key_format_refuses_an_unframed_key() {
    let spec: ProjectionSpec = serde_json::from_value(json!({"name": "orders", "table": "orders", "mode": "upsert", "key": ["id"],
        "columns": {"id": {"from": "key:/id", "type": "bigint"}, "note": "/note"}}))
    .unwrap();
    let plan = Plan { projections: vec![Projection::from_spec(&spec).unwrap()], events: EventsSpec::default() };
    let key = framed(2, &zz(42));
    let o = opts(Format::Auto, Format::Auto, plan.clone());
    let Routed::Row { ops, .. } = route(&o, Some(&key), &framed(1, &order()), &[]) else { panic!("not a row") };
    assert_eq!(ops[0].cells[0], Some(crate::project::Cell::Int(42)));
    // A JSON key reads as before.
    let Routed::Row { ops, .. } = route(&o, Some(br#"{"id":5}"#), &framed(1, &order()), &[]) else { panic!("not a row") };
    assert_eq!(ops[0].cells[0], Some(crate::project::Cell::Int(5)));
    // A key its schema cannot read is the record's dead letter, told apart from the value's.
    let (reason, detail) = dead(route(&o, Some(&framed(2, &[])), &framed(1, &order()), &[]));
    assert_eq!(reason, Reason::InvalidAvro);
    assert!(detail.starts_with("the key: "), "{detail}");
    let o = opts(Format::Auto, Format::Avro, plan);
    let (reason, detail) = dead(route(&o, Some(br#"{"id":5}"#), &framed(1, &order()), &[]));
    assert_eq!(reason, Reason::NotFramed);
    assert!(detail.starts_with("the key: parser.key_format = avro"), "{detail}");
}

#[test]
fn a_frame_is_magic_zero_and_a_big_endian_id_then_the_datum() {
    assert_eq!(frame(&[0, 0, 0, 1, 2, 9, 9]), Some((258, &[9u8, 9][..])));
    assert_eq!(frame(&[0, 0, 0, 0, 7]), Some((7, &[][..])));
    assert_eq!(frame(&[0, 0, 0, 7]), None, "shorter than a frame");
    assert_eq!(frame(b"{\"a\":1}"), None);
    assert_eq!(frame(&[1, 0, 0, 0, 7]), None, "magic byte 1 is a GUID frame, not read");
}
