//! Turning one Kafka record into an `events` row, or into a dead letter with a reason.
//!
//! Pure functions, no I/O: the `Parser` actor calls [`parse_message`] for each message of a
//! batch. Each payload format is one module behind one [`decode::Decoder`], and `parser.format`
//! picks the decoders a record is offered to, in order:
//! - CloudEvents 1.0 binary mode (`cloudevents.rs`): `ce_*` headers carry the attributes, the
//!   value is the data;
//! - CloudEvents 1.0 structured mode (`cloudevents.rs`): a JSON object with `specversion`, `id`,
//!   `source`, `type` (content type `application/cloudevents+json`, or any JSON object with
//!   `specversion`);
//! - plain JSON (`plain.rs`): any JSON object, stored whole in `data`;
//! - the schema registry's wire format (`framed/`): a magic byte 0 and a schema id, the datum
//!   decoded by the registry's schema (Avro: `avro/`; Protobuf: `protobuf/`; JSON Schema) to JSON, stored in `data`. A
//!   binary-mode CloudEvent's data may be framed too.
//!
//! Anything PostgreSQL would refuse later (NUL characters in text or JSON) is refused here while
//! the archive is on, so a batch's rows are known-good before the database sees them; without
//! it, the projections check the values they write (`project::Nul`).

use crate::records::{millis_to_utc, DeadLetter, EventRow, RawMessage, Reason, Refusal, RowTextBuilder};
use decode::{header_text, Decoder, KnownHeaders, Record, RowParts};
use json::Spans;

mod avro;
mod cdc;
mod cloudevents;
mod decode;
mod framed;
mod headers;
mod json;
mod options;
mod plain;
mod protobuf;
pub(crate) mod route;

pub(crate) use framed::inspect as inspect_framed;
pub(crate) use framed::saw as saw_schema_ids;
pub use framed::Inspected;
pub use framed::Schemas;
pub(crate) use headers::headers_json;
use headers::{headers_capacity, write_headers_json};
pub use options::{Format, ParseOptions};

/// The outcome for one message: exactly one of a row or a dead letter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    Row(EventRow),
    Dead(DeadLetter),
}

/// Parse one message. Never panics, whatever the bytes and headers. A row keeps the message
/// (moved, not copied) as its original.
#[cfg(test)]
pub(crate) fn parse_message(msg: RawMessage, topts: &ParseOptions) -> Parsed {
    parse_spanned(msg, topts, false).0
}

/// [`parse_message`], and with `spans` the value's top-level members as a decoder read them, if
/// one did: for a reader of the same text after it (`route`), which then need not parse it again.
fn parse_spanned(msg: RawMessage, topts: &ParseOptions, spans: bool) -> (Parsed, Option<Spans>) {
    match try_parse(&msg, topts, spans) {
        Ok(((time, text), spans)) => (
            Parsed::Row(EventRow {
                offset: msg.offset,
                time,
                kafka_timestamp: msg.timestamp_ms.and_then(millis_to_utc),
                text,
                original: msg,
            }),
            spans,
        ),
        Err(refusal) => (Parsed::Dead(dead_letter(&msg, refusal)), None),
    }
}

/// Build the dead letter for a refused message; keeps the payload and headers whole.
pub(crate) fn dead_letter(msg: &RawMessage, refusal: Refusal) -> DeadLetter {
    DeadLetter {
        offset: msg.offset,
        key: msg.key().map(<[u8]>::to_vec),
        payload: msg.payload().map(<[u8]>::to_vec),
        headers: headers_json(msg.headers()),
        reason: refusal.reason,
        detail: sanitize_detail(&refusal.detail),
        sqlstate: None,
        kafka_timestamp: msg.timestamp_ms.and_then(millis_to_utc),
        projection: None,
    }
}

/// A tombstone (a record whose value is null) a projection takes, as its `events` row when the
/// archive is on: no data and no attributes, its key and every header kept. So every offset
/// that is not a dead letter has its row, tombstones too.
pub(crate) fn tombstone_row(msg: RawMessage) -> Parsed {
    let text = check_headers(&msg).map(|()| {
        RowTextBuilder::new(&msg, headers_capacity(&msg, 0))
            .push(None)
            .push(None)
            .push(None)
            .push(None)
            .push(None)
            .push(None)
            .push_with(|out| write_headers_json(out, msg.headers(), &[]))
            .finish()
    });
    match text {
        Ok(text) => Parsed::Row(EventRow {
            offset: msg.offset,
            time: None,
            kafka_timestamp: msg.timestamp_ms.and_then(millis_to_utc),
            text,
            original: msg,
        }),
        Err(refusal) => Parsed::Dead(dead_letter(&msg, refusal)),
    }
}

/// Headers a row can hold: librdkafka read them, and every name is UTF-8.
fn check_headers(msg: &RawMessage) -> Result<(), Refusal> {
    if msg.headers_unreadable() {
        return Err(Refusal::new(
            Reason::UnreadableHeaders,
            "librdkafka could not parse the record's headers (a corrupt header block); key and value are kept, the headers are not",
        ));
    }
    if let Some((i, name)) = msg.non_utf8_header_name() {
        return Err(Refusal::new(
            Reason::InvalidUtf8,
            format!("the name of header {i} (counting from 0) is not UTF-8: {:?}", String::from_utf8_lossy(name)),
        ));
    }
    Ok(())
}

fn try_parse(msg: &RawMessage, opts: &ParseOptions, spans: bool) -> Result<(RowParts, Option<Spans>), Refusal> {
    let payload = msg.payload().ok_or_else(|| Refusal::new(Reason::EmptyPayload, "record has a null value (tombstone)"))?;
    if payload.len() > opts.max_message_bytes {
        return Err(Refusal::new(
            Reason::Oversize,
            format!("value is {} bytes, limit parser.max_message_bytes = {}", payload.len(), opts.max_message_bytes),
        ));
    }
    check_headers(msg)?;
    let known = KnownHeaders::of(msg);
    let content_type = header_text(known.content_type)?;
    let record = Record::new(msg, payload, known, content_type, opts);
    // The first decoder the record is for decides; the last of each format's always is.
    let decoders: &[&dyn Decoder] = match opts.format {
        Format::Auto => &[&cloudevents::Binary, &framed::Framed, &cloudevents::Structured, &plain::Plain],
        Format::Cloudevents => &[&cloudevents::Binary, &cloudevents::Structured, &cloudevents::NotOne],
        Format::Json => &[&plain::Plain],
        Format::Avro | Format::Protobuf | Format::JsonSchema => &[&cloudevents::Binary, &framed::Framed, &framed::NotFramed],
    };
    // The last decoder of every list takes any record.
    let parts = decoders
        .iter()
        .find_map(|d| d.decode(&record))
        .unwrap_or_else(|| Err(Refusal::new(Reason::InvalidJson, "no decoder took the record")))?;
    Ok((parts, if spans { record.spans() } else { None }))
}

/// Dead-letter details are stored as text: no NUL, bounded length.
pub(crate) fn sanitize_detail(detail: &str) -> String {
    let mut out: String = detail.replace('\0', "\\0");
    if out.len() > 1000 {
        let mut cut = 1000;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
