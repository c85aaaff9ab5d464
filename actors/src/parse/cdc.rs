//! Reading a Debezium change event's envelope, for the projections with `envelope = "debezium"`.
//!
//! A value is the envelope itself (the JSON converter with `schemas.enable=false`, or an
//! Avro/Protobuf value the registry's schema decoded already), or Kafka Connect's JSON wrapper
//! `{"schema": …, "payload": …}`, told apart per message; keys alike. With a Connect schema, the
//! logical types of the row images and the key (`io.debezium.time.MicroTimestamp`, Connect's
//! `Decimal`, …) are decoded as the Avro decoder decodes them, so one column gets the same
//! value whichever converter the connector ran.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::avro::{self, Logical};
use super::json::Spans;
use crate::project::cdc::{Change, ChangeOp, Event};
use crate::project::row_schema::RowSchema;
use crate::project::source::members;

/// The members of an envelope tributary reads (the others are skipped unread).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts_ms: Option<&'a RawValue>,
}

/// An [`Envelope`]'s members as their JSON texts (a null one absent, as serde reads it).
#[derive(Default)]
struct Parts<'a> {
    schema: Option<&'a str>,
    payload: Option<&'a str>,
    op: Option<Cow<'a, str>>,
    before: Option<&'a str>,
    after: Option<&'a str>,
    source: Option<&'a str>,
    ts_ms: Option<&'a str>,
}

impl<'a> From<Envelope<'a>> for Parts<'a> {
    fn from(e: Envelope<'a>) -> Self {
        let text = |r: Option<&'a RawValue>| r.map(RawValue::get);
        Parts {
            schema: text(e.schema),
            payload: text(e.payload),
            op: e.op,
            before: text(e.before),
            after: text(e.after),
            source: text(e.source),
            ts_ms: text(e.ts_ms),
        }
    }
}

impl<'a> Parts<'a> {
    fn read(text: &'a str) -> Result<Parts<'a>, serde_json::Error> {
        serde_json::from_str::<Envelope<'a>>(text).map(Parts::from)
    }

    /// The envelope out of the members the parser found in `data` (`spans`), as serde would
    /// read it; `None` for what serde refuses or reads otherwise (a repeated member, an `op`
    /// that is not a plain string): [`Parts::read`] tells.
    fn of_spans(data: &'a str, spans: &Spans) -> Option<Parts<'a>> {
        let mut parts = Parts::default();
        let mut seen = 0u8;
        for (name, value) in spans {
            let (name, value) = (data.get(name.clone())?, data.get(value.clone())?);
            let (bit, slot) = match name {
                "op" => {
                    ((seen & 1) == 0).then_some(())?;
                    seen |= 1;
                    parts.op = match value {
                        "null" => None,
                        _ => Some(Cow::Borrowed(value.strip_prefix('"')?.strip_suffix('"').filter(|op| !op.contains('\\'))?)),
                    };
                    continue;
                }
                "schema" => (1, &mut parts.schema),
                "payload" => (2, &mut parts.payload),
                "before" => (3, &mut parts.before),
                "after" => (4, &mut parts.after),
                "source" => (5, &mut parts.source),
                "ts_ms" => (6, &mut parts.ts_ms),
                _ => continue,
            };
            ((seen & (1 << bit)) == 0).then_some(())?;
            seen |= 1 << bit;
            *slot = (value != "null").then_some(value);
        }
        Some(parts)
    }
}

/// Read the change event in `data` (the message's data, JSON text), its key in `key` (JSON
/// text, when the Kafka key is JSON or was decoded from the registry's wire format); `typed`:
/// the data was decoded by a registry schema. `spans`: `data`'s top-level members as the parser
/// found them, so the envelope is not parsed again.
pub(crate) fn read<'a>(data: &'a str, spans: Option<&Spans>, key: Option<&'a str>, typed: bool) -> Event<'a> {
    let env = match spans.and_then(|s| Parts::of_spans(data, s)) {
        Some(env) => env,
        // Else serde would read the fields of an array, by position.
        None if !data.trim_start().starts_with('{') => {
            return Event::Invalid("the value is not a JSON object, so not a change event's envelope".into())
        }
        None => match Parts::read(data) {
            Ok(env) => env,
            Err(e) => return Event::Invalid(format!("the value is not a change event's envelope: {e}")),
        },
    };
    let key = key.and_then(read_key);
    match (&env.op, env.payload) {
        // Kafka Connect's JSON wrapper: the envelope is the payload, described by the schema.
        (None, Some(payload)) => {
            let conv = match env.schema.map(compiled).transpose() {
                Ok(conv) => conv,
                Err(e) => return Event::Invalid(format!("the Connect schema of the value: {e}")),
            };
            match payload {
                "null" => Event::NotARow("a null payload (a tombstone in Connect's wrapper)"),
                text => match Parts::read(text) {
                    Ok(inner) => change(inner, text, conv.as_deref(), key, conv.is_some()),
                    Err(e) => Event::Invalid(format!("the payload is not a change event's envelope: {e}")),
                },
            }
        }
        _ => change(env, data, None, key, typed),
    }
}

/// The key's fields as a JSON object's text, out of Connect's wrapper when it is in one.
fn read_key(key: &str) -> Option<Cow<'_, str>> {
    let key = key.trim();
    if !key.starts_with('{') {
        return None;
    }
    // One skim of the members tells the wrapper and holds its parts.
    let members = members(key)?;
    let wrapped = members.len() == 2 && members.iter().all(|(n, _)| n == "schema" || n == "payload");
    if !wrapped {
        return Some(Cow::Borrowed(key));
    }
    let part = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v.get());
    let payload = part("payload").filter(|p| p.starts_with('{'))?;
    let conv = part("schema").and_then(|s| compiled(s).ok());
    match conv.as_deref() {
        Some(Compiled { value, .. }) => convert(payload, value).ok(),
        None => Some(Cow::Borrowed(payload)),
    }
}

/// A change from an envelope (`text`: its JSON, for what is not a row's change).
fn change<'a>(env: Parts<'a>, text: &'a str, conv: Option<&Compiled>, key: Option<Cow<'a, str>>, typed: bool) -> Event<'a> {
    let Some(op) = env.op.as_deref() else { return not_a_row(text) };
    let Some(op) = ChangeOp::parse(op) else {
        return Event::Invalid(format!("op {op:?} is not one of c, r, u, d, t, m"));
    };
    let image = |raw: Option<&'a str>, conv: Option<&Conv>, which: &str| -> Result<Option<Cow<'a, str>>, String> {
        let Some(raw) = raw else { return Ok(None) };
        if !raw.starts_with('{') {
            return Err(format!("{which} is not an object"));
        }
        convert(raw, conv.unwrap_or(&Conv::Plain)).map(Some).map_err(|e| format!("{which}: {e}"))
    };
    let images =
        image(env.before, conv.map(|c| &c.before), "before").and_then(|b| Ok((b, image(env.after, conv.map(|c| &c.after), "after")?)));
    match images {
        Ok((before, after)) => Event::Change(Change {
            op,
            before,
            after,
            source: env.source.map(Cow::Borrowed),
            ts_ms: env.ts_ms.map(Cow::Borrowed),
            key,
            typed,
            schema: conv.and_then(|c| c.row.clone()),
        }),
        Err(e) => Event::Invalid(e),
    }
}

/// An envelope without `op`: a heartbeat, a schema change or transaction metadata, else not a
/// change event at all.
fn not_a_row(text: &str) -> Event<'_> {
    let Some(members) = members(text) else { return Event::Invalid("the value is not a JSON object".into()) };
    let has = |name: &str| members.iter().any(|(n, _)| n == name);
    let text_of = |name: &str| members.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.get());
    if has("ddl") || has("tableChanges") || (has("databaseName") && has("source")) {
        Event::NotARow("a schema change")
    } else if matches!(text_of("status"), Some("\"BEGIN\"" | "\"END\"")) && has("id") {
        Event::NotARow("transaction metadata")
    } else if !members.is_empty() && members.iter().all(|(n, _)| n == "ts_ms") {
        Event::NotARow("a heartbeat")
    } else {
        Event::Invalid("the value has no op: it is not a Debezium change event".into())
    }
}

/// What a Connect schema says about a value: how to decode its logical types.
#[derive(Debug, Clone, PartialEq)]
enum Conv {
    /// As sent.
    Plain,
    /// The fields that need decoding (the others are copied).
    Struct(HashMap<String, Conv>),
    Array(Box<Conv>),
    /// An integer counting days, time of day or time since the epoch.
    Int(Logical),
    /// Connect's `Decimal`: base64 of the unscaled value's two's complement.
    Decimal(u32),
    /// Debezium's `VariableScaleDecimal`: `{"scale": s, "value": base64}`.
    VariableScale,
    /// Debezium's `Json`: a string holding JSON text, written as that JSON.
    Json,
}

/// A value's schema compiled: the envelope's row images (or a key's value).
#[derive(Debug)]
struct Compiled {
    before: Conv,
    after: Conv,
    /// The schema as a whole (a key's).
    value: Conv,
    /// The row image's fields and their column types (`after`'s, else `before`'s).
    row: Option<Arc<RowSchema>>,
}

/// The schema texts a worker keeps compiled, at most: by count (two per table, key and value,
/// for a database of 500 tables) and by their bytes.
const CACHED_SCHEMAS: usize = 1024;
const CACHED_BYTES: usize = 16 << 20;

/// Compiled schemas by their text, and the texts' bytes.
type Cache = (HashMap<Rc<str>, Rc<Compiled>>, usize);

/// The schemas a worker used last, most recent first: a topic's messages repeat their key's
/// and their value's schema, found by comparing the text rather than hashing all of it.
const RECENT: usize = 4;

thread_local! {
    /// Schemas by their text: a connector sends one schema text per table version, so a worker
    /// compiles each once; past the bounds the cache starts over.
    static SCHEMAS: RefCell<Cache> = RefCell::new((HashMap::new(), 0));
    static RECENT_SCHEMAS: RefCell<Vec<(Rc<str>, Rc<Compiled>)>> = const { RefCell::new(Vec::new()) };
}

fn compiled(text: &str) -> Result<Rc<Compiled>, String> {
    let recent = RECENT_SCHEMAS.with(|r| {
        let mut r = r.borrow_mut();
        let i = r.iter().position(|(t, _)| **t == *text)?;
        r[..=i].rotate_right(1);
        Some(r[0].1.clone())
    });
    if let Some(c) = recent {
        return Ok(c);
    }
    let (text, c) = cached(text)?;
    RECENT_SCHEMAS.with(|r| {
        let mut r = r.borrow_mut();
        r.truncate(RECENT - 1);
        r.insert(0, (text, c.clone()));
    });
    Ok(c)
}

/// The schema compiled from `text`, out of the worker's cache or into it.
fn cached(text: &str) -> Result<(Rc<str>, Rc<Compiled>), String> {
    if let Some((t, c)) = SCHEMAS.with(|s| s.borrow().0.get_key_value(text).map(|(t, c)| (t.clone(), c.clone()))) {
        return Ok((t, c));
    }
    let schema: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| {
        schema.get("fields").and_then(Value::as_array).and_then(|f| f.iter().find(|f| f.get("field").and_then(Value::as_str) == Some(name)))
    };
    let c = Rc::new(Compiled {
        before: field("before").map_or(Conv::Plain, conv),
        after: field("after").map_or(Conv::Plain, conv),
        value: conv(&schema),
        row: field("after").or_else(|| field("before")).and_then(RowSchema::connect).map(Arc::new),
    });
    Ok(SCHEMAS.with(|s| {
        let (map, bytes) = &mut *s.borrow_mut();
        if map.len() >= CACHED_SCHEMAS || *bytes + text.len() > CACHED_BYTES {
            map.clear();
            *bytes = 0;
        }
        *bytes += text.len();
        let text: Rc<str> = text.into();
        map.insert(text.clone(), c.clone());
        (text, c)
    }))
}

/// The logical types of Kafka Connect and Debezium that count in integers (the Avro
/// converter's, by the Connect type's name).
fn int_logical(name: &str, ty: &str) -> Option<Logical> {
    match ty {
        "int32" => avro::connect_int_logical(name, false),
        "int64" => avro::connect_int_logical(name, true),
        _ => None,
    }
}

fn conv(schema: &Value) -> Conv {
    let name = schema.get("name").and_then(Value::as_str).unwrap_or_default();
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or_default();
    match (name, ty) {
        ("org.apache.kafka.connect.data.Decimal", "bytes") => {
            let scale = schema.get("parameters").and_then(|p| p.get("scale"));
            let scale = scale.and_then(|s| s.as_str().and_then(|s| s.parse().ok()).or(s.as_u64().and_then(|s| u32::try_from(s).ok())));
            scale.filter(|s| *s <= crate::project::MAX_SCALE).map_or(Conv::Plain, Conv::Decimal)
        }
        ("io.debezium.data.VariableScaleDecimal", "struct") => Conv::VariableScale,
        ("io.debezium.data.Json", "string") => Conv::Json,
        (_, "struct") => {
            let fields = schema.get("fields").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let special: HashMap<String, Conv> = fields
                .iter()
                .filter_map(|f| Some((f.get("field")?.as_str()?.to_string(), conv(f))))
                .filter(|(_, c)| *c != Conv::Plain)
                .collect();
            if special.is_empty() {
                Conv::Plain
            } else {
                Conv::Struct(special)
            }
        }
        (_, "array") => match schema.get("items").map(conv) {
            Some(Conv::Plain) | None => Conv::Plain,
            Some(items) => Conv::Array(Box::new(items)),
        },
        _ => int_logical(name, ty).map_or(Conv::Plain, Conv::Int),
    }
}

/// `text` with its logical types decoded by `conv` (borrowed when nothing needs decoding).
fn convert<'a>(text: &'a str, conv: &Conv) -> Result<Cow<'a, str>, String> {
    if *conv == Conv::Plain || text == "null" {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len() + 16);
    write(text, conv, &mut out)?;
    Ok(Cow::Owned(out))
}

fn write(text: &str, conv: &Conv, out: &mut String) -> Result<(), String> {
    if text == "null" {
        out.push_str(text);
        return Ok(());
    }
    let string = || serde_json::from_str::<String>(text).map_err(|_| format!("{text} is not a string"));
    match conv {
        Conv::Plain => out.push_str(text),
        // A string where the schema says a number: a placeholder for a value Debezium was not
        // sent, left for the projection to tell (or refuse as the column's type).
        Conv::Int(_) if text.starts_with('"') => out.push_str(text),
        Conv::Int(l) => {
            let v: i64 = text.parse().map_err(|_| format!("{text} is not an integer"))?;
            avro::int_value(v, *l, out)?;
        }
        // `decimal.format = NUMERIC` sends a number: exact as sent. A string that is not base64
        // (Debezium's placeholder for a value it was not sent) stays as sent too.
        Conv::Decimal(scale) => match base64_of(&string().unwrap_or_default()) {
            Ok(bytes) if text.starts_with('"') => avro::decimal(&bytes, *scale, out)?,
            _ => out.push_str(text),
        },
        Conv::VariableScale if !text.starts_with('{') => out.push_str(text),
        Conv::VariableScale => {
            #[derive(Deserialize)]
            struct Vsd {
                scale: u32,
                value: String,
            }
            let v: Vsd = serde_json::from_str(text).map_err(|e| format!("a VariableScaleDecimal: {e}"))?;
            avro::decimal(&base64_of(&v.value)?, v.scale, out)?;
        }
        Conv::Json => {
            let s = string()?;
            // JSON text stays JSON; anything else stays the string it is.
            match serde_json::from_str::<IgnoredAny>(&s) {
                Ok(_) => out.push_str(s.trim()),
                Err(_) => out.push_str(text),
            }
        }
        Conv::Array(item) => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| format!("{text} is not an array"))?;
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v.get(), item, out)?;
            }
            out.push(']');
        }
        Conv::Struct(fields) => {
            let members = members(text).ok_or_else(|| format!("{text} is not an object"))?;
            out.push('{');
            for (i, (name, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.to_string()).to_string());
                out.push(':');
                match fields.get(name.as_ref()) {
                    Some(c) => write(v.get(), c, out).map_err(|e| format!("field {name:?}: {e}"))?,
                    None => out.push_str(v.get()),
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

fn base64_of(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(|_| format!("{s:?} is not base64"))
}

#[cfg(test)]
mod tests;
