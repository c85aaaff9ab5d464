//! Confluent's wire format: a magic byte `0`, the schema's id (4 bytes, big-endian), then the
//! datum encoded by that schema, which the registry keeps. The datum is decoded by the schema's
//! type to the JSON text the rest of tributary works on (docs/formats.md has the mapping).

mod schemas;

use super::avro;
use super::decode::{Decoder, Record, RowParts};
use super::headers::{headers_capacity, write_headers_json};
use super::json::{scan_json, validate_json};
use crate::records::{Reason, Refusal, RowTextBuilder};

use schemas::Entry;
pub use schemas::Schemas;

/// A framed value's schema id and its datum; `None`: the value is not framed.
pub(crate) fn frame(payload: &[u8]) -> Option<(u32, &[u8])> {
    match payload {
        [0, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

/// The record's value decoded as JSON text, when it is framed and a registry is configured;
/// decoded once per record, whichever decoder asks first.
pub(super) fn data<'r>(record: &'r Record<'_>) -> Option<Result<&'r str, Refusal>> {
    let decoded = record.framed.get_or_init(|| {
        let schemas = record.opts.schemas.as_deref()?;
        let (id, datum) = frame(record.payload)?;
        Some(decode(schemas, id, datum, record))
    });
    decoded.as_ref().map(|r| r.as_deref().map_err(Clone::clone))
}

fn decode(schemas: &Schemas, id: u32, datum: &[u8], record: &Record<'_>) -> Result<String, Refusal> {
    let opts = record.opts;
    let entry = schemas.get(id);
    let mut out = String::with_capacity(datum.len() * 2 + 16);
    match &*entry {
        Entry::NotFound { detail, .. } => return Err(Refusal::new(Reason::SchemaNotFound, format!("schema id {id}: {detail}"))),
        Entry::Unusable { reason, detail } => return Err(Refusal::new(*reason, detail.clone())),
        Entry::Avro(schema) => {
            if let Err(e) = avro::decode(schema, datum, opts.max_depth, &mut out) {
                schemas.failed("avro");
                return Err(Refusal::new(Reason::InvalidAvro, format!("the datum does not decode with schema {id}: {e}")));
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

/// A framed record: its decoded value stored whole in `data`, no attributes.
pub(super) struct Framed;

impl Decoder for Framed {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        let data = data(record)?;
        Some(data.map(|text| {
            let msg = record.msg;
            let text = RowTextBuilder::new(msg, headers_capacity(msg, text.len()))
                .push(None)
                .push(None)
                .push(None)
                .push(None)
                .push(record.content_type)
                .push(Some(text))
                .push_with(|out| write_headers_json(out, msg.headers(), &[]))
                .finish();
            (None, text)
        }))
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
    let p = record.payload;
    let first = p.first().map_or_else(|| "it is empty".to_string(), |b| format!("its first byte is 0x{b:02x}, {} bytes in all", p.len()));
    Refusal::new(
        Reason::NotFramed,
        format!(
            "parser.format = {}, but the value is not in the schema registry's wire format (magic byte 0, a 4-byte schema id): {first}",
            record.opts.format.name()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn a_frame_is_magic_zero_and_a_big_endian_id_then_the_datum() {
        assert_eq!(frame(&[0, 0, 0, 1, 2, 9, 9]), Some((258, &[9u8, 9][..])));
        assert_eq!(frame(&[0, 0, 0, 0, 7]), Some((7, &[][..])));
        assert_eq!(frame(&[0, 0, 0, 7]), None, "shorter than a frame");
        assert_eq!(frame(b"{\"a\":1}"), None);
        assert_eq!(frame(&[1, 0, 0, 0, 7]), None, "magic byte 1 is a GUID frame, not read");
    }
}
