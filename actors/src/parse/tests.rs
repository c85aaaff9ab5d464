use super::json::{scan_json, scan_json_bytes};
use super::*;

fn msg(payload: Option<&[u8]>, headers: &[(&str, &[u8])]) -> RawMessage {
    RawMessage::new(7, Some(1_700_000_000_000), Some(b"k"), payload, headers.iter().map(|(k, v)| (k.as_bytes(), Some(*v))))
}

fn reason_of(m: &RawMessage, opts: &ParseOptions) -> String {
    match parse_message(m.clone(), opts) {
        Parsed::Dead(d) => {
            assert_eq!(d.payload.as_deref(), m.payload(), "dead letter keeps the payload whole");
            assert!(!d.detail.is_empty());
            d.reason.code().to_string()
        }
        Parsed::Row(r) => panic!("expected a dead letter, got {r:?}"),
    }
}

fn row_of(m: &RawMessage, opts: &ParseOptions) -> EventRow {
    match parse_message(m.clone(), opts) {
        Parsed::Row(r) => r,
        Parsed::Dead(d) => panic!("expected a row, got {d:?}"),
    }
}

const STRUCTURED: &[u8] = br#"{"specversion":"1.0","id":"e-1","source":"/orders","type":"order.created","subject":"o-9","time":"2024-05-01T12:00:00Z","datacontenttype":"application/json","data":{"amount":12.5},"traceparent":"00-ab"}"#;

#[test]
fn structured_cloudevent_becomes_a_row_with_attributes() {
    let r = row_of(&msg(Some(STRUCTURED), &[]), &ParseOptions::default());
    assert_eq!(r.event_id(), Some("e-1"));
    assert_eq!(r.source(), Some("/orders"));
    assert_eq!(r.event_type(), Some("order.created"));
    assert_eq!(r.subject(), Some("o-9"));
    assert_eq!(r.time.unwrap().to_rfc3339(), "2024-05-01T12:00:00+00:00");
    assert_eq!(r.data(), Some(r#"{"amount":12.5}"#));
    assert_eq!(r.datacontenttype(), Some("application/json"));
    assert!(r.headers().contains("ce_traceparent"), "extensions kept: {}", r.headers());
    assert_eq!(r.kafka_timestamp.unwrap().timestamp_millis(), 1_700_000_000_000);
}

#[test]
fn attributes_and_data_are_read_from_the_record_not_copied() {
    let r = row_of(&msg(Some(STRUCTURED), &[]), &ParseOptions::default());
    assert_eq!(r.text.own_len(), r.headers().len(), "only the headers JSON is written: {r:?}");
    // An escaped attribute is unescaped into the row's own text.
    let escaped = br#"{"specversion":"1.0","id":"e\u002d1","source":"/s","type":"t","data":{}}"#;
    let r = row_of(&msg(Some(escaped), &[]), &ParseOptions::default());
    assert_eq!(r.event_id(), Some("e-1"));
    assert_eq!(r.text.own_len(), "e-1".len() + r.headers().len());
    let r = row_of(
        &msg(Some(b"{}"), &[("ce_specversion", b"1.0"), ("ce_id", b"i"), ("ce_source", b"s"), ("ce_type", b"t")]),
        &ParseOptions::default(),
    );
    assert_eq!((r.event_id(), r.data()), (Some("i"), Some("{}")));
    assert_eq!(r.text.own_len(), r.headers().len(), "binary mode: attributes are header values in the record");
}

#[test]
fn binary_cloudevent_reads_ce_headers() {
    let m = msg(
        Some(br#"{"n":1}"#),
        &[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"b-1"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
            ("content-type", b"application/json"),
            ("trace", b"x"),
        ],
    );
    let r = row_of(&m, &ParseOptions::default());
    assert_eq!(r.event_id(), Some("b-1"));
    assert_eq!(r.source(), Some("/s"));
    assert_eq!(r.event_type(), Some("t"));
    assert_eq!(r.subject(), None);
    assert_eq!(r.datacontenttype(), Some("application/json"));
    assert_eq!(r.data(), Some(r#"{"n":1}"#));
    assert_eq!(r.headers(), r#"{"trace":"x"}"#);
}

#[test]
fn binary_mode_header_names_with_multibyte_characters_do_not_panic() {
    // "ab€": byte 3 falls inside the euro sign, where slicing a &str would panic.
    let m = msg(
        Some(b"{}"),
        &[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
            ("ab\u{20ac}x", b"v"),
            ("CE_Time", b"2024-01-01T00:00:00Z"),
        ],
    );
    let r = row_of(&m, &ParseOptions::default());
    assert!(r.headers().contains("ab\u{20ac}x"), "kept as an ordinary header: {}", r.headers());
    assert!(r.time.is_some(), "the ce_ prefix matches case-insensitively");
}

#[test]
fn binary_cloudevent_with_text_data_keeps_it_as_a_json_string() {
    let m = msg(
        Some(b"hello"),
        &[("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t"), ("content-type", b"text/plain")],
    );
    assert_eq!(row_of(&m, &ParseOptions::default()).data(), Some("\"hello\""));
}

#[test]
fn plain_json_object_is_stored_whole() {
    let r = row_of(&msg(Some(br#"{"user":"a","n":[1,2]}"#), &[]), &ParseOptions::default());
    assert_eq!(r.event_id(), None);
    assert_eq!(r.datacontenttype(), None);
    assert_eq!(r.data(), Some(r#"{"user":"a","n":[1,2]}"#));
    assert_eq!(r.headers(), "{}");
}

#[test]
fn json_format_does_not_interpret_cloudevents() {
    let opts = ParseOptions { format: Format::Json, ..Default::default() };
    let r = row_of(&msg(Some(STRUCTURED), &[]), &opts);
    assert_eq!(r.event_id(), None);
}

#[test]
fn each_malformed_kind_has_its_reason() {
    let o = ParseOptions::default();
    let cases: Vec<(RawMessage, &str)> = vec![
        (msg(None, &[]), "empty_payload"),
        (msg(Some(b"{\"a\":"), &[]), "invalid_json"),
        (msg(Some(b""), &[]), "invalid_json"),
        (msg(Some(b"\xff\xfe{}"), &[]), "invalid_utf8"),
        (msg(Some(b"[1,2]"), &[]), "not_an_object"),
        (msg(Some(b"42"), &[]), "not_an_object"),
        (msg(Some(br#"{"a":"x\u0000y"}"#), &[]), "nul_character"),
        (msg(Some(br#"{"specversion":"1.0","source":"/s","type":"t"}"#), &[]), "missing_attribute"),
        (msg(Some(br#"{"specversion":"1.0","id":5,"source":"/s","type":"t"}"#), &[]), "invalid_attribute"),
        (msg(Some(br#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#), &[]), "unsupported_specversion"),
        (msg(Some(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}"#), &[]), "invalid_timestamp"),
        (msg(Some(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"!!"}"#), &[]), "invalid_attribute"),
        (msg(Some(b"{}"), &[("ce_specversion", b"1.0"), ("ce_source", b"/s"), ("ce_type", b"t")]), "missing_attribute"),
        (msg(Some(b"{}"), &[("ce_specversion", b"1.0"), ("ce_id", b"\xff"), ("ce_source", b"/s"), ("ce_type", b"t")]), "invalid_attribute"),
        (
            msg(
                Some(b"{}"),
                &[("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t"), ("ce_time", b"2024-13-01")],
            ),
            "invalid_timestamp",
        ),
        (msg(Some(b"{oops"), &[("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t")]), "invalid_json"),
    ];
    for (m, want) in cases {
        assert_eq!(reason_of(&m, &o), want, "payload {:?}", m.payload().map(String::from_utf8_lossy));
    }
}

#[test]
fn oversize_and_too_deep_are_refused() {
    let o = ParseOptions { max_message_bytes: 10, max_depth: 3, ..Default::default() };
    assert_eq!(reason_of(&msg(Some(br#"{"aaaaaaaaaaaaa":1}"#), &[]), &o), "oversize");
    let o = ParseOptions { max_depth: 3, ..Default::default() };
    assert_eq!(reason_of(&msg(Some(br#"{"a":{"b":{"c":{}}}}"#), &[]), &o), "too_deep");
    assert!(matches!(parse_message(msg(Some(br#"{"a":{"b":{}}}"#), &[]), &o), Parsed::Row(_)));
    // Deeper than serde_json's own recursion limit: still a dead letter, no stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(reason_of(&msg(Some(deep.as_bytes()), &[]), &ParseOptions::default()), "too_deep");
}

#[test]
fn a_repeated_member_name_counts_once_with_its_last_value() {
    let text = br#"{"specversion":"1.0","id":"first","source":"/s","type":"t","zeta":1,"id":"last","alpha":2,"zeta":3}"#;
    let r = row_of(&msg(Some(text), &[]), &ParseOptions::default());
    assert_eq!(r.event_id(), Some("last"));
    assert_eq!(r.headers(), r#"{"ce_alpha":2,"ce_zeta":3}"#, "extensions sorted by name, each once, last value");
    // Last wins for refusals too: a good value after a bad one is accepted, and the reverse not.
    let bad_then_good = br#"{"specversion":"0.3","specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
    assert!(matches!(parse_message(msg(Some(bad_then_good), &[]), &ParseOptions::default()), Parsed::Row(_)));
    let good_then_bad = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","specversion":"0.3"}"#;
    assert_eq!(reason_of(&msg(Some(good_then_bad), &[]), &ParseOptions::default()), "unsupported_specversion");
}

#[test]
fn binary_mode_reads_the_first_header_of_each_name_whatever_its_case() {
    let m = msg(
        Some(b"{}"),
        &[
            ("CE_SpecVersion", b"1.0"),
            ("Ce_Id", b"one"),
            ("ce_id", b"two"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
            ("Content-Type", b"application/json"),
            ("content-type", b"text/plain"),
        ],
    );
    let r = row_of(&m, &ParseOptions::default());
    assert_eq!(r.event_id(), Some("one"));
    assert_eq!(r.datacontenttype(), Some("application/json"));
    assert_eq!(r.data(), Some("{}"), "the first content-type decides: JSON data stays JSON");
}

proptest::proptest! {
    /// The scan's shortcut (few brackets, no `\u0000` bytes) agrees with the byte-by-byte scan.
    #[test]
    fn the_scan_shortcut_agrees_with_the_full_scan(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("{"), proptest::strategy::Just("}"), proptest::strategy::Just("["),
                proptest::strategy::Just("]"), proptest::strategy::Just("\""), proptest::strategy::Just("\\"),
                proptest::strategy::Just("u0000"), proptest::strategy::Just("\\u0000"), proptest::strategy::Just("\\\\u0000"),
                proptest::strategy::Just("\"[{\""), proptest::strategy::Just("a"), proptest::strategy::Just(":"),
            ],
            0..40,
        ),
        max_depth in 0usize..6,
        refuse_nul in proptest::bool::ANY,
    ) {
        let text = parts.concat();
        let reason = |r: Result<(), Refusal>| r.err().map(|e| e.reason);
        proptest::prop_assert_eq!(
            reason(scan_json(text.as_bytes(), max_depth, refuse_nul)),
            reason(scan_json_bytes(text.as_bytes(), max_depth, refuse_nul)),
            "{}",
            text
        );
    }
}

#[test]
fn cloudevents_format_refuses_plain_json() {
    let o = ParseOptions { format: Format::Cloudevents, ..Default::default() };
    assert_eq!(reason_of(&msg(Some(b"{\"a\":1}"), &[]), &o), "not_cloudevent");
}

#[test]
fn binary_headers_are_kept_as_base64() {
    let h = headers_json([(&b"bin"[..], Some(&[0u8, 159, 146][..])), (b"none", None)].into_iter());
    assert_eq!(h, r#"{"bin":{"base64":"AJ+S"},"none":null}"#);
}

#[test]
fn a_record_whose_headers_librdkafka_could_not_parse_is_a_dead_letter_not_a_row_without_them() {
    let m = RawMessage::new(1, None, None, Some(STRUCTURED), []).with_unreadable_headers();
    for format in [Format::Auto, Format::Cloudevents, Format::Json] {
        assert_eq!(reason_of(&m, &ParseOptions { format, ..ParseOptions::default() }), "unreadable_headers");
    }
    assert!(matches!(parse_message(m.clone(), &ParseOptions::default()), Parsed::Dead(d) if d.detail.contains("corrupt header block")));
}

#[test]
fn a_header_name_that_is_not_utf8_makes_a_dead_letter_that_keeps_it() {
    // Kafka does not check header names; a producer can send any bytes.
    for opts in [ParseOptions::default(), ParseOptions { format: Format::Json, ..ParseOptions::default() }] {
        let m = RawMessage::new(1, None, None, Some(br#"{"a":1}"#.as_slice()), [(&b"ok"[..], Some(&b"1"[..])), (&[b'x', 0xff][..], None)]);
        let Parsed::Dead(d) = parse_message(m, &opts) else { panic!("expected a dead letter") };
        assert_eq!(d.reason.code(), "invalid_utf8");
        assert!(d.detail.contains("header 1"), "{}", d.detail);
        assert_eq!(d.headers, "{\"ok\":\"1\",\"x\u{FFFD} [eP8=]\":{\"name_base64\":\"eP8=\"}}");
    }
}
