use super::super::schema::compile;
use super::*;

/// Avro's zigzag varint, as the specification writes it (independent of the decoder's loop).
fn zz(v: i64) -> Vec<u8> {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn json(schema: &str, bytes: &[u8]) -> Result<String, DecodeError> {
    let c = compile(schema, &[]).unwrap();
    let mut out = String::new();
    decode(&c, bytes, 64, &mut out).map(|()| out)
}

fn string(s: &str) -> Vec<u8> {
    [zz(s.len() as i64), s.as_bytes().to_vec()].concat()
}

#[test]
fn longs_beyond_two_to_the_53_and_every_primitive_keep_their_exact_value() {
    assert_eq!(json(r#""long""#, &zz(9_007_199_254_740_993)).unwrap(), "9007199254740993");
    assert_eq!(json(r#""long""#, &zz(i64::MIN)).unwrap(), i64::MIN.to_string());
    assert_eq!(json(r#""int""#, &zz(-1)).unwrap(), "-1");
    assert_eq!(json(r#""float""#, &0.1f32.to_le_bytes()).unwrap(), "0.1");
    assert_eq!(json(r#""double""#, &0.1f64.to_le_bytes()).unwrap(), "0.1");
    assert_eq!(json(r#""double""#, &f64::NAN.to_le_bytes()).unwrap(), "\"NaN\"");
    assert_eq!(json(r#""float""#, &f32::NEG_INFINITY.to_le_bytes()).unwrap(), "\"-Infinity\"");
    assert_eq!(json(r#""boolean""#, &[1]).unwrap(), "true");
    assert_eq!(json(r#""string""#, &string("a\"\n\u{1F600}")).unwrap(), r#""a\"\n😀""#);
    assert_eq!(json(r#""bytes""#, &[zz(3), vec![0, 255, 10]].concat()).unwrap(), "\"AP8K\"");
}

#[test]
fn records_unions_enums_arrays_and_maps_become_plain_json() {
    let schema = r#"{"type":"record","name":"R","fields":[
        {"name":"u","type":["null","string"]},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
        {"name":"a","type":{"type":"array","items":"int"}},
        {"name":"m","type":{"type":"map","values":"long"}}]}"#;
    // The array in two blocks, the second with a negative count and its byte size.
    let bytes = [zz(1), string("x"), zz(1), zz(1), zz(5), zz(-2), zz(2), zz(6), zz(7), zz(0), zz(1), string("k"), zz(9), zz(0)].concat();
    assert_eq!(json(schema, &bytes).unwrap(), r#"{"u":"x","e":"B","a":[5,6,7],"m":{"k":9}}"#);
    let null_branch = [zz(0), zz(0), zz(0), zz(0)].concat();
    assert_eq!(json(schema, &null_branch).unwrap(), r#"{"u":null,"e":"A","a":[],"m":{}}"#);
}

#[test]
fn decimals_of_any_size_and_sign_are_exact_strings() {
    let dec = |bytes: &[u8], scale: u32| {
        let mut out = String::new();
        decimal(bytes, scale, &mut out).unwrap();
        out
    };
    let mut out = String::new();
    assert!(decimal(&[1; 513], 0, &mut out).is_err(), "beyond 512 bytes: refused, not minutes of CPU");
    assert!(decimal(&[1], 1001, &mut out).is_err(), "a scale beyond 1000");
    assert_eq!(dec(&[0x30, 0x39], 2), "\"123.45\"");
    assert_eq!(dec(&[0xcf, 0xc7], 2), "\"-123.45\"");
    assert_eq!(dec(&[0x05], 3), "\"0.005\"");
    assert_eq!(dec(&[0xff], 0), "\"-1\"");
    assert_eq!(dec(&[], 2), "\"0.00\"");
    assert_eq!(dec(&[0x80, 0, 0, 0, 0, 0, 0, 0], 0), format!("\"{}\"", i64::MIN));
    // 2^100, beyond any machine integer.
    let mut big = vec![0x10];
    big.extend([0u8; 12]);
    assert_eq!(dec(&big, 10), "\"126765060022822940149.6703205376\"");
    let schema = r#"{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}"#;
    assert_eq!(json(schema, &[zz(2), vec![0x30, 0x39]].concat()).unwrap(), "\"123.45\"");
    let fixed = r#"{"type":"fixed","name":"F","size":3,"logicalType":"decimal","precision":6,"scale":1}"#;
    assert_eq!(json(fixed, &[0xff, 0xff, 0xf6]).unwrap(), "\"-1.0\"");
    let variable = r#"{"type":"record","name":"V","connect.name":"io.debezium.data.VariableScaleDecimal",
        "fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}]}"#;
    assert_eq!(json(variable, &[zz(3), zz(2), vec![0x30, 0x39]].concat()).unwrap(), "\"12.345\"");
}

#[test]
fn dates_times_and_timestamps_keep_their_precision() {
    let one = |ty: &str, v: i64| json(ty, &zz(v)).unwrap();
    assert_eq!(one(r#"{"type":"int","logicalType":"date"}"#, 19_000), "\"2022-01-08\"");
    assert_eq!(one(r#"{"type":"int","logicalType":"date"}"#, -1), "\"1969-12-31\"");
    assert_eq!(one(r#"{"type":"int","logicalType":"time-millis"}"#, 3_723_004), "\"01:02:03.004\"");
    assert_eq!(one(r#"{"type":"long","logicalType":"time-micros"}"#, 3_723_000_005), "\"01:02:03.000005\"");
    assert_eq!(one(r#"{"type":"long","logicalType":"timestamp-millis"}"#, 1_700_000_000_123), "\"2023-11-14T22:13:20.123Z\"");
    assert_eq!(one(r#"{"type":"long","logicalType":"timestamp-micros"}"#, 1_700_000_000_123_456), "\"2023-11-14T22:13:20.123456Z\"");
    assert_eq!(one(r#"{"type":"long","logicalType":"timestamp-nanos"}"#, 1_700_000_000_123_456_789), "\"2023-11-14T22:13:20.123456789Z\"");
    assert_eq!(one(r#"{"type":"long","logicalType":"timestamp-micros"}"#, -1), "\"1969-12-31T23:59:59.999999Z\"");
    assert_eq!(one(r#"{"type":"long","logicalType":"local-timestamp-micros"}"#, 1), "\"1970-01-01T00:00:00.000001\"");
    assert_eq!(one(r#"{"type":"long","connect.name":"io.debezium.time.NanoTime"}"#, 1), "\"00:00:00.000000001\"");
    let e = json(r#"{"type":"int","logicalType":"time-millis"}"#, &zz(86_400_000)).unwrap_err();
    assert!(e.what.contains("out of a day"), "{e}");
    assert!(json(r#"{"type":"long","logicalType":"timestamp-millis"}"#, &zz(i64::MAX)).is_err());
    let duration = r#"{"type":"fixed","name":"D","size":12,"logicalType":"duration"}"#;
    assert_eq!(json(duration, &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]).unwrap(), r#"{"months":1,"days":2,"millis":3}"#);
}

#[test]
fn a_datum_that_does_not_fit_its_schema_says_where_and_never_panics() {
    let schema = r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":
        {"type":"record","name":"I","fields":[{"name":"s","type":"string"}]}}}]}"#;
    let e = json(schema, &[zz(1), zz(5), b"ab".to_vec()].concat()).unwrap_err();
    assert_eq!(e.at, "/a/0/s");
    assert!(e.what.contains("needs 5 bytes, 2 left"), "{e}");
    let e = json(r#""int""#, &[zz(1), vec![7]].concat()).unwrap_err();
    assert!(e.what.contains("1 bytes left after the datum"), "{e}");
    assert!(json(r#"["null","int"]"#, &zz(2)).unwrap_err().what.contains("union branch 2"));
    assert!(json(r#""int""#, &zz(1 << 40)).unwrap_err().what.contains("32-bit"));
    assert!(json(r#""long""#, &[0xff; 11]).unwrap_err().what.contains("64 bits"));
    // A billion nulls claimed in five bytes.
    assert!(json(r#"{"type":"array","items":"null"}"#, &zz(1_000_000_000)).unwrap_err().what.contains("more items"));
    let list = r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#;
    let deep: Vec<u8> = std::iter::repeat_n(2u8, 500).chain([0]).collect();
    assert!(json(list, &deep).unwrap_err().what.contains("deeper"));
    // Whatever the bytes, an answer and no panic.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let len = (state % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = json(schema, &bytes);
        let _ = json(r#"{"type":"map","values":["null","double",{"type":"bytes","logicalType":"decimal","scale":3}]}"#, &bytes);
    }
}

#[test]
fn timestamps_written_by_hand_are_chronos_text_in_every_year_it_writes_unsigned() {
    let chrono_text = |t: &chrono::NaiveDateTime, digits: usize| t.format(&format!("%Y-%m-%dT{}", fraction(digits))).to_string();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut micros = vec![0, -1, 1, -62_167_219_200_000_000, 253_402_300_799_999_999, 1_764_000_000_123_456];
    for _ in 0..2000 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        micros.push((seed >> 1) as i64 % 253_402_300_800_000_000);
    }
    for m in micros {
        let t = DateTime::from_timestamp_micros(m).unwrap().naive_utc() + chrono::Duration::nanoseconds(m.rem_euclid(997));
        for digits in [3, 6, 9] {
            let mut out = String::new();
            assert!(iso_stamp(&t, digits, &mut out), "{t}");
            assert_eq!(out, chrono_text(&t, digits), "{m} at {digits} digits");
        }
    }
    let far = DateTime::from_timestamp_micros(253_402_300_800_000_000).unwrap().naive_utc();
    let before = DateTime::from_timestamp_micros(-62_167_219_200_000_001).unwrap().naive_utc();
    for t in [far, before] {
        assert!(!iso_stamp(&t, 6, &mut String::new()), "{t}: chrono signs it");
    }
    let mut out = String::new();
    int_value(-62_167_219_200_000_001, Logical::TimestampMicros, &mut out).unwrap();
    assert_eq!(out, "\"-0001-12-31T23:59:59.999999Z\"", "a year chrono signs is still its text");
}
