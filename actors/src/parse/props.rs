//! Property tests: whatever bytes and headers arrive, the parser neither panics nor loses the
//! message — it yields exactly one row (valid JSON, storable) or one dead letter (payload kept).

use crate::parse::{parse_message, Format, ParseOptions, Parsed};
use crate::records::RawMessage;
use crate::storage::redrive::headers_from_json;
use proptest::prelude::*;

/// Header names are bytes: Kafka does not check that they are UTF-8.
fn header() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    let name = prop_oneof![
        Just("ce_specversion".to_string()),
        Just("ce_id".to_string()),
        Just("ce_source".to_string()),
        Just("ce_type".to_string()),
        Just("ce_time".to_string()),
        Just("content-type".to_string()),
        "[a-z_\\-]{1,12}",
        "(ce_|CE_|ab)[a-zé€]{0,4}",
        ".{0,8}",
    ]
    .prop_map(String::into_bytes);
    let name = prop_oneof![8 => name, 1 => prop::collection::vec(any::<u8>(), 0..8)];
    let value = prop_oneof![
        Just(Some(b"1.0".to_vec())),
        Just(Some(b"application/json".to_vec())),
        Just(Some(b"2024-01-01T00:00:00Z".to_vec())),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Some),
        Just(None),
    ];
    (name, value)
}

fn payload() -> impl Strategy<Value = Option<Vec<u8>>> {
    let json_ish = prop::collection::vec(
        prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just("\"specversion\":\"1.0\"".to_string()),
            Just("\"id\":\"x\"".to_string()),
            Just("\"data\":".to_string()),
            Just("\"\\u0000\"".to_string()),
            Just("\"\\ud800\"".to_string()),
            Just("1e999".to_string()),
            Just("null".to_string()),
            "\"[^\"\\\\]{0,6}\"",
            "-?[0-9]{1,4}",
        ],
        0..24,
    )
    .prop_map(|parts| Some(parts.concat().into_bytes()));
    prop_oneof![Just(None), prop::collection::vec(any::<u8>(), 0..256).prop_map(Some), json_ish]
}

/// Whether any string or member name in `v` holds a NUL character (PostgreSQL's `jsonb` refuses
/// `\u0000`). Checked on the decoded value: the text `\\u0000` (an escaped backslash) is fine.
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(members) => members.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Auto), Just(Format::Cloudevents), Just(Format::Json)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_input_yields_exactly_one_storable_outcome(
        payload in payload(),
        headers in prop::collection::vec(header(), 0..6),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
        offset in 0i64..1_000_000,
        timestamp in prop::option::of(any::<i64>()),
        format in format(),
        max_depth in 1usize..8,
    ) {
        let msg = RawMessage::new(offset, timestamp, key.as_deref(), payload.as_deref(), headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref())));
        let opts = ParseOptions { format, max_message_bytes: 200, max_depth, ..ParseOptions::default() };
        match parse_message(msg.clone(), &opts) {
            Parsed::Row(row) => {
                prop_assert_eq!(row.offset, offset);
                if let Some(data) = row.data() {
                    let v: serde_json::Value = serde_json::from_str(data).expect("data is valid JSON");
                    prop_assert!(!has_nul(&v), "no NUL reaches the database: {}", data);
                }
                let h: serde_json::Value = serde_json::from_str(row.headers()).expect("headers are valid JSON");
                prop_assert!(h.is_object());
                prop_assert!(!row.headers().contains('\0'));
                prop_assert_eq!(row.key(), msg.key());
                prop_assert_eq!(&row.original, &msg, "the row keeps the record whole");
                for text in [row.event_id(), row.source(), row.event_type(), row.subject(), row.datacontenttype()].into_iter().flatten() {
                    prop_assert!(!text.contains('\0'));
                }
            }
            Parsed::Dead(dead) => {
                prop_assert_eq!(dead.offset, offset);
                prop_assert_eq!(dead.payload.as_deref(), msg.payload(), "the payload is kept whole");
                prop_assert_eq!(dead.key.as_deref(), msg.key());
                prop_assert!(!dead.reason.code().is_empty() && !dead.detail.is_empty());
                prop_assert!(!dead.detail.contains('\0'));
                let h: serde_json::Value = serde_json::from_str(&dead.headers).expect("headers are valid JSON");
                prop_assert!(h.is_object());
                prop_assert!(!dead.headers.contains('\0'));
                prop_assert_eq!(headers_from_json(&dead.headers), Ok(headers.clone()), "the headers are kept exactly");
            }
        }
    }

    #[test]
    fn a_packed_record_gives_back_exactly_what_was_packed(
        payload in payload(),
        headers in prop::collection::vec(header(), 0..8),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
        offset in any::<i64>(),
        timestamp in prop::option::of(any::<i64>()),
    ) {
        let msg = RawMessage::new(offset, timestamp, key.as_deref(), payload.as_deref(), headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref())));
        prop_assert_eq!(msg.offset, offset);
        prop_assert_eq!(msg.timestamp_ms, timestamp);
        prop_assert_eq!(msg.key(), key.as_deref());
        prop_assert_eq!(msg.payload(), payload.as_deref());
        let back: Vec<(Vec<u8>, Option<Vec<u8>>)> = msg.headers().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect();
        prop_assert_eq!(back, headers);
    }
}
