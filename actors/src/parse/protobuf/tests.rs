//! Fixtures from an independent implementation (fixtures/make.py: Python protobuf, Confluent's
//! ProtobufSerializer, a registry that prints schemas as Confluent's does), and corrupt input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::ProtoSchema;

/// Where make.py writes; in tributary the fixtures sit beside this file's module.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/parse/protobuf/fixtures")
}

struct Case {
    name: String,
    schema_id: u64,
    source: String,
    framed: Vec<u8>,
    expected: Json,
}

struct Fixtures {
    /// By schema id: the schema as the registry serves it (+ its references).
    registry: HashMap<u64, ProtoSchema>,
    /// By .proto file: the original source text, as a Java producer would register it.
    sources: HashMap<String, ProtoSchema>,
    cases: Vec<Case>,
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("fixture hex")).collect()
}

/// Every .proto under fixtures/proto as (import path, text).
fn proto_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("fixtures/proto") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            proto_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            let name = path.strip_prefix(root).expect("under root");
            let text = std::fs::read_to_string(&path).expect("proto text");
            out.push((name.to_string_lossy().into_owned(), text));
        }
    }
}

fn load() -> Fixtures {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json");
    let doc: Json = serde_json::from_str(&text).expect("cases.json is JSON");
    let mut registry = HashMap::new();
    for (id, schema) in doc["schemas"].as_object().expect("schemas") {
        let imports: Vec<(String, String)> = schema["imports"]
            .as_array()
            .expect("imports")
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().into(), pair[1].as_str().unwrap().into()))
            .collect();
        let main = schema["schema"].as_str().expect("schema text");
        let compiled = ProtoSchema::compile(main, &imports).unwrap_or_else(|e| panic!("schema {id}: {e}\n{main}"));
        registry.insert(id.parse().expect("id"), compiled);
    }
    let root = fixtures().join("proto");
    let mut files = Vec::new();
    proto_files(&root, &root, &mut files);
    let mut sources = HashMap::new();
    for (name, text) in &files {
        let compiled = ProtoSchema::compile(text, &files).unwrap_or_else(|e| panic!("{name}: {e}"));
        sources.insert(name.clone(), compiled);
    }
    let cases = doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().into(),
            schema_id: c["schema_id"].as_u64().unwrap(),
            source: c["source"].as_str().unwrap().into(),
            framed: unhex(c["framed_hex"].as_str().unwrap()),
            expected: c["expected"].clone(),
        })
        .collect();
    Fixtures { registry, sources, cases }
}

fn decode(schema: &ProtoSchema, body: &[u8]) -> Result<Json, String> {
    let mut out = String::new();
    schema.decode(body, &mut out)?;
    Ok(serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}")))
}

#[test]
fn fixtures_decode_to_the_expected_json() {
    let fx = load();
    assert!(fx.cases.len() >= 29, "make.py wrote {} cases", fx.cases.len());
    for case in &fx.cases {
        assert_eq!(case.framed[0], 0, "{}: magic byte", case.name);
        let id = u32::from_be_bytes(case.framed[1..5].try_into().unwrap());
        assert_eq!(u64::from(id), case.schema_id, "{}: schema id", case.name);
        let body = &case.framed[5..];
        let by_registry = decode(&fx.registry[&case.schema_id], body).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(by_registry, case.expected, "{} (registry text)", case.name);
        let by_source = decode(&fx.sources[&case.source], body).unwrap_or_else(|e| panic!("{} (source): {e}", case.name));
        assert_eq!(by_source, case.expected, "{} (original .proto)", case.name);
    }
}

#[test]
fn integers_beyond_2_pow_53_keep_every_digit() {
    let fx = load();
    let case = fx.cases.iter().find(|c| c.name == "scalars_full").unwrap();
    let mut out = String::new();
    fx.registry[&case.schema_id].decode(&case.framed[5..], &mut out).unwrap();
    for text in [
        "\"f_uint64\":18446744073709551615",
        "\"f_int64\":-9223372036854775808",
        "\"f_sint64\":9007199254740993",
        "\"f_float\":0.1,",
        "\"f_double\":0.1,",
    ] {
        assert!(out.contains(text), "{text} not in {out}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let fx = load();
    for name in ["scalars_default", "order_full"] {
        let case = fx.cases.iter().find(|c| c.name == name).unwrap();
        let mut body = case.framed[5..].to_vec();
        // Field 1000 as a varint, field 1001 length-delimited, field 1002 fixed32.
        body.extend([0xc0, 0x3e, 0x96, 0x01, 0xca, 0x3e, 0x02, b'h', b'i']);
        body.extend([0xd5, 0x3e, 1, 2, 3, 4]);
        let json = decode(&fx.registry[&case.schema_id], &body).unwrap();
        assert_eq!(json, case.expected, "{name}");
    }
}

fn orders() -> ProtoSchema {
    let fx = load();
    let case = fx.cases.iter().find(|c| c.name == "order_full").unwrap();
    fx.registry[&case.schema_id].clone()
}

fn error(schema: &ProtoSchema, body: &[u8]) -> String {
    let mut out = String::new();
    match schema.decode(body, &mut out) {
        Ok(()) => panic!("{body:02x?} decoded to {out}"),
        Err(e) => e,
    }
}

#[test]
fn corrupt_bodies_say_where() {
    let s = orders();
    let cases: &[(&[u8], &str)] = &[
        (b"", "message-index list: truncated or bad count"),
        (&[0x01], "message-index list: count -1 does not fit"),
        (&[0xfe, 0xff, 0xff, 0xff, 0x0f], "count 2147483647 does not fit"),
        (&[0x02, 0x08], "message index [4] names no message in the schema"),
        (&[0x04, 0x00, 0x12], "message index [0, 9] names no message"),
        (&[0x04, 0x00, 0x80], "message-index list: index 1 truncated"),
        // Order.customer (2) holds Customer.address (2) claiming 16 bytes of 3.
        (&[0x00, 0x12, 0x05, 0x12, 0x10, 0x0a, 0x01, 0x41], "field customer.address (2): truncated message (length 16, 3 bytes left)"),
        (&[0x00, 0x12, 0x03, 0x0a, 0x01, 0xff], "field customer.name (1): string is not valid UTF-8"),
        (&[0x00, 0x09, 1, 2, 3, 4, 5, 6, 7, 8], "field id (1): wire type 1 where a varint (wire type 0) was expected"),
        (&[0x00, 0x08, 0xff], "field id (1): truncated varint"),
        (&[0x00, 0x80], "message tributary.orders.Order: truncated field key"),
        (&[0x00, 0x07], "message tributary.orders.Order: invalid field number 0"),
        (&[0x00, 0x0e], "field id (1): invalid wire type 6"),
        // Order.placed_at (10) past year 9999, then with nanos of a whole second.
        (
            &[0x00, 0x52, 0x07, 0x08, 0x80, 0xd0, 0xd4, 0xc9, 0xc8, 0x07],
            "field placed_at: Timestamp seconds 260000000000 nanos 0 is outside",
        ),
        (&[0x00, 0x52, 0x06, 0x10, 0x80, 0x94, 0xeb, 0xdc, 0x03], "field placed_at: Timestamp seconds 0 nanos 1000000000 is outside"),
    ];
    for (body, want) in cases {
        let got = error(&s, body);
        assert!(got.contains(want), "{body:02x?}: {got:?} lacks {want:?}");
    }
}

#[test]
fn output_is_appended_and_left_alone_on_error() {
    let s = orders();
    let mut out = String::from("[");
    s.decode(&[0x00, 0x08, 0x07], &mut out).unwrap();
    assert!(out.starts_with("[{\"id\":7,"), "{out}");
    let mut out = String::from("kept");
    // A Timestamp out of range fails only while writing: the partial object must not stay.
    s.decode(&[0x00, 0x08, 0x07, 0x52, 0x06, 0x10, 0x80, 0x94, 0xeb, 0xdc, 0x03], &mut out).unwrap_err();
    assert_eq!(out, "kept");
}

/// Scalars.nested (50) holding `depth` levels of Nested.children (2).
fn nested(depth: usize) -> Vec<u8> {
    fn delimited(tag: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut out = tag.to_vec();
        let mut len = inner.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(inner);
        out
    }
    let mut inner = Vec::new();
    for _ in 0..depth {
        inner = delimited(&[0x12], &inner);
    }
    let mut body = vec![0x00];
    body.extend(delimited(&[0x92, 0x03], &inner));
    body
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let fx = load();
    let case = fx.cases.iter().find(|c| c.name == "scalars_default").unwrap();
    let s = &fx.registry[&case.schema_id];
    decode(s, &nested(60)).unwrap();
    let err = error(s, &nested(5000));
    assert_eq!(err, "field nested.children.children.….children.children.children (2): nested more than 100 messages deep");
}

#[test]
fn durations_out_of_range_or_mixed_signs_are_errors() {
    let s = ProtoSchema::compile(
        "syntax = \"proto3\"; import \"google/protobuf/duration.proto\";\n\
         message D { google.protobuf.Duration d = 1; }",
        &[],
    )
    .unwrap();
    // seconds 1, nanos -1 (int32 as a ten-byte varint).
    let mixed = [0x00, 0x0a, 0x0d, 0x08, 0x01, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    let got = error(&s, &mixed);
    assert!(got.contains("field d: Duration seconds 1 nanos -1"), "{got}");
}

#[test]
fn compile_errors_are_reported() {
    let err = ProtoSchema::compile("message {", &[]).unwrap_err();
    assert!(err.starts_with("the schema does not compile"), "{err}");
    let err = ProtoSchema::compile("syntax = \"proto3\"; import \"missing.proto\";", &[]).unwrap_err();
    assert!(err.contains("missing.proto"), "{err}");
    // Well-known imports resolve without being passed.
    ProtoSchema::compile(
        "syntax = \"proto3\"; import \"google/protobuf/struct.proto\";\n\
         message S { google.protobuf.Struct s = 1; }",
        &[],
    )
    .unwrap();
}

/// xorshift64*: deterministic noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mangled_bodies_never_panic() {
    let fx = load();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let check = |schema: &ProtoSchema, body: &[u8]| {
        let mut out = String::new();
        match schema.decode(body, &mut out) {
            Ok(()) => drop(serde_json::from_str::<Json>(&out).expect("Ok output is JSON")),
            Err(e) => assert!(!e.is_empty()),
        }
    };
    for case in &fx.cases {
        let schema = &fx.registry[&case.schema_id];
        let body = &case.framed[5..];
        for len in 0..body.len() {
            check(schema, &body[..len]);
        }
        for _ in 0..300 {
            let mut mangled = body.to_vec();
            for _ in 0..1 + noise.below(4) {
                if !mangled.is_empty() {
                    let at = noise.below(mangled.len());
                    mangled[at] = noise.next() as u8;
                }
            }
            check(schema, &mangled);
        }
    }
    let schemas: Vec<&ProtoSchema> = fx.registry.values().collect();
    for _ in 0..20_000 {
        let schema = schemas[noise.below(schemas.len())];
        let len = noise.below(48);
        let mut body: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
        // Mostly a valid index, so the noise reaches the message decoder.
        if noise.below(4) > 0 && !body.is_empty() {
            body[0] = 0;
        }
        check(schema, &body);
    }
}
