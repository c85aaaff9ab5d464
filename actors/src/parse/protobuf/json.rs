//! DynamicMessage → JSON text in tributary's mapping (see mod.rs): proto field names, every field
//! present, 64-bit integers as exact numbers, non-finite floats as strings; the well-known types
//! (below) in their own forms. One file: messages and well-known types recurse into each other.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io;

use base64::Engine as _;
use chrono::{DateTime, Datelike as _, Timelike as _};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage as _, Value};

/// Where the JSON writer gave up: the field path from the decoded message down, and why.
#[derive(Debug)]
pub(super) struct JsonError {
    /// Innermost field first; reversed when displayed.
    path: Vec<String>,
    detail: String,
}

impl JsonError {
    pub(super) fn new(detail: String) -> JsonError {
        JsonError { path: Vec::new(), detail }
    }

    fn in_field(mut self, field: &FieldDescriptor) -> JsonError {
        self.path.push(field.name().to_owned());
        self
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return f.write_str(&self.detail);
        }
        f.write_str("field ")?;
        for (i, name) in self.path.iter().rev().enumerate() {
            if i > 0 {
                f.write_char('.')?;
            }
            f.write_str(name)?;
        }
        write!(f, ": {}", self.detail)
    }
}

pub(super) type JsonResult = Result<(), JsonError>;

/// A message as a JSON object (or, for a well-known type, its special form).
pub(super) fn write_message(msg: &DynamicMessage, out: &mut String) -> JsonResult {
    if let Some(done) = wkt_write(msg, out) {
        return done;
    }
    out.push('{');
    let mut first = true;
    for field in msg.descriptor().fields() {
        let real_oneof = field.containing_oneof().is_some_and(|oneof| !oneof.is_synthetic());
        let present = msg.has_field(&field);
        // Only the member of a oneof that is set appears; proto3 `optional` is a synthetic oneof
        // and reads like any other field with presence.
        if real_oneof && !present {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_str(field.name(), out);
        out.push(':');
        if !present && field.supports_presence() && !field.is_list() && !field.is_map() {
            // Absent with presence: null, unless proto2 declared a `[default = …]`.
            if field.field_descriptor_proto().default_value.is_some() {
                write_value(&field.kind(), &field.default_value(), out)
            } else {
                out.push_str("null");
                Ok(())
            }
        } else {
            write_field(&field, &msg.get_field(&field), out)
        }
        .map_err(|e| e.in_field(&field))?;
    }
    out.push('}');
    Ok(())
}

/// A field's value: a list or map field as a whole, else one value.
pub(super) fn write_field(field: &FieldDescriptor, value: &Value, out: &mut String) -> JsonResult {
    match value {
        Value::List(items) => write_list(&field.kind(), items, out),
        Value::Map(entries) => {
            let value_kind = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => return Err(JsonError::new("a map field without a map entry type".into())),
            };
            write_map(&value_kind, entries, out)
        }
        value => write_value(&field.kind(), value, out),
    }
}

pub(super) fn write_list(kind: &Kind, items: &[Value], out: &mut String) -> JsonResult {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_value(kind, item, out)?;
    }
    out.push(']');
    Ok(())
}

pub(super) fn write_map(value_kind: &Kind, entries: &std::collections::HashMap<MapKey, Value>, out: &mut String) -> JsonResult {
    // Sorted keys: the same message always gives the same text.
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match key {
            MapKey::String(s) => write_str(s, out),
            MapKey::Bool(b) => out.push_str(if *b { "\"true\"" } else { "\"false\"" }),
            MapKey::I32(n) => push_fmt(out, format_args!("\"{n}\"")),
            MapKey::I64(n) => push_fmt(out, format_args!("\"{n}\"")),
            MapKey::U32(n) => push_fmt(out, format_args!("\"{n}\"")),
            MapKey::U64(n) => push_fmt(out, format_args!("\"{n}\"")),
        }
        out.push(':');
        write_value(value_kind, value, out)?;
    }
    out.push('}');
    Ok(())
}

/// One singular value of the given kind.
pub(super) fn write_value(kind: &Kind, value: &Value, out: &mut String) -> JsonResult {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I32(n) => push_fmt(out, format_args!("{n}")),
        Value::I64(n) => push_fmt(out, format_args!("{n}")),
        Value::U32(n) => push_fmt(out, format_args!("{n}")),
        Value::U64(n) => push_fmt(out, format_args!("{n}")),
        Value::F32(v) => write_f32(*v, out),
        Value::F64(v) => write_f64(*v, out),
        Value::String(s) => write_str(s, out),
        Value::Bytes(b) => write_bytes(b, out),
        Value::EnumNumber(n) => write_enum(kind, *n, out),
        Value::Message(m) => return write_message(m, out),
        Value::List(_) | Value::Map(_) => return Err(JsonError::new("a list or map nested in a list or map".into())),
    }
    Ok(())
}

/// An enum as its value's name; a number the enum does not declare stays a number.
fn write_enum(kind: &Kind, number: i32, out: &mut String) {
    let Kind::Enum(desc) = kind else {
        return push_fmt(out, format_args!("{number}"));
    };
    // google.protobuf.NullValue is JSON's null, whatever the number.
    if desc.full_name() == "google.protobuf.NullValue" {
        return out.push_str("null");
    }
    match desc.get_value(number) {
        Some(value) => write_str(value.name(), out),
        None => push_fmt(out, format_args!("{number}")),
    }
}

pub(super) fn write_f64(v: f64, out: &mut String) {
    if v.is_finite() {
        let _ = serde_json::to_writer(StringWriter(out), &v);
    } else {
        out.push_str(non_finite(v.is_nan(), v > 0.0));
    }
}

/// f32 printed as the shortest text that reads back as the same f32 (0.1f32 → 0.1).
fn write_f32(v: f32, out: &mut String) {
    if v.is_finite() {
        let _ = serde_json::to_writer(StringWriter(out), &v);
    } else {
        out.push_str(non_finite(v.is_nan(), v > 0.0));
    }
}

fn non_finite(nan: bool, positive: bool) -> &'static str {
    match (nan, positive) {
        (true, _) => "\"NaN\"",
        (false, true) => "\"Infinity\"",
        (false, false) => "\"-Infinity\"",
    }
}

pub(super) fn write_bytes(bytes: &[u8], out: &mut String) {
    out.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
    out.push('"');
}

/// A JSON string literal, escaped by serde_json.
pub(super) fn write_str(s: &str, out: &mut String) {
    // Serializing a str or a finite float into memory cannot fail: the results are ignored.
    let _ = serde_json::to_writer(StringWriter(out), s);
}

pub(super) fn push_fmt(out: &mut String, args: fmt::Arguments<'_>) {
    // Writing to a String never fails.
    let _ = out.write_fmt(args);
}

/// Lets serde_json write straight into the output String (it emits whole UTF-8 fragments).
struct StringWriter<'a>(&'a mut String);

impl io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.0.push_str(text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---- well-known types: google.protobuf well-known types: the JSON forms proto3 gives them (Timestamp, Duration,
// FieldMask…), except that wrapped 64-bit integers stay exact numbers like every other integer.

/// Proto3 JSON's Timestamp range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999999Z.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
/// Proto3 JSON's Duration range: about ±10,000 years.
const DURATION_SECONDS: std::ops::RangeInclusive<i64> = -315_576_000_000..=315_576_000_000;

/// Writes `msg` in its special form when it is a well-known type; None for any other message.
fn wkt_write(msg: &DynamicMessage, out: &mut String) -> Option<JsonResult> {
    let desc = msg.descriptor();
    let name = desc.full_name().strip_prefix("google.protobuf.")?;
    Some(match name {
        "Timestamp" => timestamp(msg, out),
        "Duration" => duration(msg, out),
        "DoubleValue" | "FloatValue" | "Int64Value" | "UInt64Value" | "Int32Value" | "UInt32Value" | "BoolValue" | "StringValue"
        | "BytesValue" => {
            let field = desc.get_field(1)?;
            write_value(&field.kind(), &msg.get_field(&field), out)
        }
        // Struct's map<string, Value> and ListValue's repeated Value, written as the object and
        // the array they stand for.
        "Struct" | "ListValue" => {
            let field = desc.get_field(1)?;
            write_field(&field, &msg.get_field(&field), out)
        }
        "Value" => value(msg, out),
        "Empty" => {
            out.push_str("{}");
            Ok(())
        }
        "FieldMask" => {
            // The paths as written (proto field names, like every key we write), comma-joined.
            let mut joined = String::new();
            if let Value::List(paths) = field(msg, 1).as_ref() {
                for (i, path) in paths.iter().enumerate() {
                    if i > 0 {
                        joined.push(',');
                    }
                    joined.push_str(path.as_str().unwrap_or_default());
                }
            }
            write_str(&joined, out);
            Ok(())
        }
        "Any" => {
            out.push_str("{\"@type\":");
            write_str(field(msg, 1).as_str().unwrap_or_default(), out);
            out.push_str(",\"value\":");
            write_bytes(field(msg, 2).as_bytes().map_or(&[][..], |b| b), out);
            out.push('}');
            Ok(())
        }
        _ => return None,
    })
}

/// A field by number, or an empty value when a hand-written copy of the type lacks it.
fn field(msg: &DynamicMessage, number: u32) -> Cow<'_, Value> {
    msg.get_field_by_number(number).unwrap_or(Cow::Owned(Value::Bool(false)))
}

fn seconds_nanos(msg: &DynamicMessage) -> (i64, i32) {
    (field(msg, 1).as_i64().unwrap_or(0), field(msg, 2).as_i32().unwrap_or(0))
}

/// RFC 3339 in UTC with `Z`, with 0, 3, 6 or 9 fraction digits as proto3 JSON writes it.
fn timestamp(msg: &DynamicMessage, out: &mut String) -> JsonResult {
    let (seconds, nanos) = seconds_nanos(msg);
    let when = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000 && TIMESTAMP_SECONDS.contains(&seconds))
        .and_then(|n| DateTime::from_timestamp(seconds, n))
        .ok_or_else(|| JsonError::new(format!("Timestamp seconds {seconds} nanos {nanos} is outside 0001-01-01..9999-12-31")))?;
    push_fmt(
        out,
        format_args!(
            "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            when.year(),
            when.month(),
            when.day(),
            when.hour(),
            when.minute(),
            when.second()
        ),
    );
    push_fraction(nanos.unsigned_abs(), out);
    out.push_str("Z\"");
    Ok(())
}

/// Seconds with 0, 3, 6 or 9 fraction digits and an `s` ("1.5s" is "1.500s"), as proto3 JSON.
fn duration(msg: &DynamicMessage, out: &mut String) -> JsonResult {
    let (seconds, nanos) = seconds_nanos(msg);
    let mixed_signs = (seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0);
    if !DURATION_SECONDS.contains(&seconds) || nanos.unsigned_abs() >= 1_000_000_000 || mixed_signs {
        return Err(JsonError::new(format!("Duration seconds {seconds} nanos {nanos} is out of range or of mixed signs")));
    }
    out.push('"');
    if seconds < 0 || nanos < 0 {
        out.push('-');
    }
    push_fmt(out, format_args!("{}", seconds.unsigned_abs()));
    push_fraction(nanos.unsigned_abs(), out);
    out.push_str("s\"");
    Ok(())
}

fn push_fraction(nanos: u32, out: &mut String) {
    if nanos == 0 {
    } else if nanos.is_multiple_of(1_000_000) {
        push_fmt(out, format_args!(".{:03}", nanos / 1_000_000));
    } else if nanos.is_multiple_of(1_000) {
        push_fmt(out, format_args!(".{:06}", nanos / 1_000));
    } else {
        push_fmt(out, format_args!(".{nanos:09}"));
    }
}

/// google.protobuf.Value: whichever member of its `kind` oneof is set; none set reads as null.
fn value(msg: &DynamicMessage, out: &mut String) -> JsonResult {
    let Some((field, value)) = msg.fields().next() else {
        out.push_str("null");
        return Ok(());
    };
    match value {
        Value::F64(v) => write_f64(*v, out),
        Value::EnumNumber(_) => out.push_str("null"),
        _ => return write_value(&field.kind(), value, out),
    }
    Ok(())
}
