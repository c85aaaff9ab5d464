//! Confluent's wire format: a magic byte `0`, the schema's id (4 bytes, big-endian), then the
//! datum encoded by that schema, which the registry keeps. The datum is decoded by the schema's
//! type to the JSON text the rest of tributary works on (docs/formats.md has the mapping).

pub(crate) mod schemas;

use super::avro;
use super::decode::{Decoder, Record, RowParts};
use super::json::{scan_json, validate_json};
use super::options::{Format, ParseOptions};
use crate::records::{RawMessage, Reason, Refusal};

use schemas::Entry;
pub use schemas::Schemas;

/// A framed value's schema id and its datum; `None`: the value is not framed.
pub(crate) fn frame(payload: &[u8]) -> Option<(u32, &[u8])> {
    match payload {
        [0, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

/// Whether `payload` was decoded by an Avro schema (whose Connect logical types the decoder
/// turns into their values); JSON Schema and Protobuf data stay as the connector wrote them.
pub(crate) fn avro_decoded(payload: Option<&[u8]>, opts: &ParseOptions) -> bool {
    let (Some((id, _)), Some(schemas)) = (payload.and_then(frame), opts.schemas.as_deref()) else { return false };
    matches!(*schemas.get(id), Entry::Avro(_))
}

/// The row schema of a change event decoded from Avro (for `create_table`, `add_columns`).
pub(crate) fn avro_row_schema(
    payload: Option<&[u8]>,
    opts: &ParseOptions,
) -> Option<std::sync::Arc<crate::project::row_schema::RowSchema>> {
    let (Some((id, _)), Some(schemas)) = (payload.and_then(frame), opts.schemas.as_deref()) else { return None };
    match &*schemas.get(id) {
        Entry::Avro(schema) => schema.row.clone(),
        _ => None,
    }
}

/// Note the schema ids a batch of `topic` is framed with (for `/status`): once per batch.
pub(crate) fn saw<'p>(schemas: &Schemas, topic: &str, payloads: impl Iterator<Item = Option<&'p [u8]>>) {
    let mut ids: Vec<u32> = Vec::new();
    for (id, _) in payloads.flatten().filter_map(frame) {
        // A batch holds few ids, usually one: a scan beats a set.
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    schemas.registry().health.saw(topic, &ids);
}

/// The record's value decoded as JSON text, when it is framed and a registry is configured;
/// decoded once per record, whichever decoder asks first.
pub(super) fn data<'r>(record: &'r Record<'_>) -> Option<Result<&'r str, Refusal>> {
    let decoded = record.framed.get_or_init(|| {
        let schemas = record.opts.schemas.as_deref()?;
        let (id, datum) = frame(record.payload)?;
        Some(decode(schemas, id, datum, record.opts))
    });
    decoded.as_ref().map(|r| r.as_deref().map_err(Clone::clone))
}

/// The record's key decoded from the registry's wire format (JSON text), for `key:` pointers:
/// when `parser.key_format` names a framed format (then a key that is not framed is refused), or
/// is `auto` and a projection reads into the key. `None`: the key is read as it is.
pub(crate) fn key(msg: &RawMessage, opts: &ParseOptions) -> Result<Option<String>, Refusal> {
    let explicit = opts.key_format.is_framed();
    let (Some(key), Some(schemas)) = (msg.key(), opts.schemas.as_deref()) else { return Ok(None) };
    // The frame's bytes first: the projections' columns are looked through only for a framed key.
    let wanted = || explicit || (opts.key_format == Format::Auto && opts.plan.reads_key_pointers());
    match frame(key) {
        Some(_) if !wanted() => Ok(None),
        Some((id, datum)) => {
            decode(schemas, id, datum, opts).map(Some).map_err(|r| Refusal { detail: format!("the key: {}", r.detail), ..r })
        }
        None if explicit => Err(Refusal::new(
            Reason::NotFramed,
            format!(
                "the key: parser.key_format = {}, but the key is not in the schema registry's wire format (magic byte 0, a 4-byte schema id): {}",
                opts.key_format.name(),
                describe_start(key)
            ),
        )),
        None => Ok(None),
    }
}

fn decode(schemas: &Schemas, id: u32, datum: &[u8], opts: &ParseOptions) -> Result<String, Refusal> {
    decode_entry(schemas, &schemas.get(id), id, datum, opts)
}

fn decode_entry(schemas: &Schemas, entry: &Entry, id: u32, datum: &[u8], opts: &ParseOptions) -> Result<String, Refusal> {
    let mut out = String::with_capacity(datum.len() * 2 + 16);
    match entry {
        Entry::NotFound { detail, .. } => return Err(Refusal::new(Reason::SchemaNotFound, format!("schema id {id}: {detail}"))),
        Entry::Unusable { reason, detail } => return Err(Refusal::new(*reason, detail.clone())),
        Entry::Avro(schema) => {
            if let Err(e) = avro::decode(schema, datum, opts.max_depth, &mut out) {
                schemas.failed("avro");
                return Err(Refusal::new(Reason::InvalidAvro, format!("the datum does not decode with schema {id}: {e}")));
            }
        }
        Entry::Protobuf(schema) => {
            if let Err(e) = schema.decode(datum, &mut out) {
                schemas.failed("protobuf");
                return Err(Refusal::new(Reason::InvalidProtobuf, format!("the datum does not decode with schema {id}: {e}")));
            }
        }
        Entry::Json => {
            let text = std::str::from_utf8(datum).map_err(|e| {
                schemas.failed("json_schema");
                Refusal::new(Reason::InvalidJsonSchema, format!("the datum framed with schema {id} is not UTF-8: {e}"))
            })?;
            validate_json(text).map_err(|e| {
                schemas.failed("json_schema");
                Refusal::new(Reason::InvalidJsonSchema, format!("the datum framed with schema {id} is not JSON: {}", e.detail))
            })?;
            out.push_str(text);
        }
    }
    // The limits and the NUL rule every JSON value meets.
    scan_json(out.as_bytes(), opts.max_depth, opts.refuses_nul())?;
    Ok(out)
}

/// A framed payload as an operator sees it in a dead letter: its schema, and the value decoded
/// with it now, or why not.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Inspected {
    pub schema_id: u32,
    /// `AVRO`, `PROTOBUF` or `JSON`; none when the registry has no usable schema for the id.
    pub schema_type: Option<String>,
    /// The subjects and versions the id is registered under.
    pub subjects: Vec<String>,
    /// The value decoded, as JSON.
    #[schema(value_type = Object)]
    pub value: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Decode a dead letter's framed payload for display; `None` when it is not framed or no
/// registry is configured.
pub(crate) fn inspect(payload: &[u8], opts: &ParseOptions) -> Option<Inspected> {
    let schemas = opts.schemas.as_deref()?;
    let (id, datum) = frame(payload)?;
    let entry = match schemas.peek(id) {
        Ok(entry) => entry,
        // An outage is no refusal of the record: said as it is, not under a reason code.
        Err(e) => return Some(Inspected { schema_id: id, schema_type: None, subjects: Vec::new(), value: None, error: Some(e) }),
    };
    let schema_type = match &*entry {
        Entry::Avro(_) => Some("AVRO"),
        Entry::Protobuf(_) => Some("PROTOBUF"),
        Entry::Json => Some("JSON"),
        Entry::NotFound { .. } | Entry::Unusable { .. } => None,
    };
    // A 404 for the schema is one for its subjects too.
    let subjects = if matches!(*entry, Entry::NotFound { .. }) { Vec::new() } else { schemas.registry().subjects(id) };
    let decoded = decode_entry(schemas, &entry, id, datum, opts).and_then(|text| {
        serde_json::from_str(&text).map_err(|e| Refusal::new(Reason::InvalidJson, format!("the decoded value is not JSON: {e}")))
    });
    let (value, error) = match decoded {
        Ok(v) => (Some(v), None),
        Err(r) => (None, Some(format!("{}: {}", r.reason.code(), r.detail))),
    };
    Some(Inspected { schema_id: id, schema_type: schema_type.map(str::to_string), subjects, value, error })
}

/// A framed record: its decoded value stored whole in `data`, no attributes.
pub(super) struct Framed;

impl Decoder for Framed {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        Some(data(record)?.map(|text| super::plain::data_row(record, text, text.len())))
    }
}

/// `parser.format` names a framed format: a value that is not framed is refused.
pub(super) struct NotFramed;

impl Decoder for NotFramed {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        Some(Err(not_framed(record)))
    }
}

/// Why a record of a framed format is refused when its value is not framed.
pub(super) fn not_framed(record: &Record<'_>) -> Refusal {
    Refusal::new(
        Reason::NotFramed,
        format!(
            "parser.format = {}, but the value is not in the schema registry's wire format (magic byte 0, a 4-byte schema id): {}",
            record.opts.format.name(),
            describe_start(record.payload)
        ),
    )
}

fn describe_start(bytes: &[u8]) -> String {
    match bytes.first() {
        None => "it is empty".to_string(),
        Some(b) => format!("its first byte is 0x{b:02x}, {} bytes in all", bytes.len()),
    }
}

#[cfg(test)]
mod tests;
