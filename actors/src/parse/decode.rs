//! What every payload format's decoder gets and gives: a record with what the parser has
//! already read of it (its headers of interest, the JSON object of its value on first use), and
//! a row's parts or a refusal — or nothing, when the record is not the format's.

use std::cell::OnceCell;

use chrono::{DateTime, Utc};

use super::json::{invalid_json, kind_of_first, scan_json, validate_json, Object};
use super::options::ParseOptions;
use crate::records::{RawMessage, Reason, Refusal, RowText};

/// A row's parsed `time` and its text columns.
pub(super) type RowParts = (Option<DateTime<Utc>>, RowText);

/// One payload format.
pub(super) trait Decoder: Sync {
    /// The record's row parts or why it is refused; `None`: the record is not this format's.
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>>;
}

/// A record as the decoders see it; its value's JSON object is read once, by the first decoder
/// that asks.
pub(super) struct Record<'m> {
    pub(super) msg: &'m RawMessage,
    pub(super) payload: &'m [u8],
    pub(super) known: KnownHeaders<'m>,
    pub(super) content_type: Option<&'m str>,
    pub(super) opts: &'m ParseOptions,
    object: OnceCell<Result<(&'m str, Object<'m>), Refusal>>,
    /// The framed value decoded (`framed::data`): none when it is not framed.
    pub(super) framed: OnceCell<Option<Result<String, Refusal>>>,
}

impl<'m> Record<'m> {
    pub(super) fn new(
        msg: &'m RawMessage,
        payload: &'m [u8],
        known: KnownHeaders<'m>,
        content_type: Option<&'m str>,
        opts: &'m ParseOptions,
    ) -> Self {
        Record { msg, payload, known, content_type, opts, object: OnceCell::new(), framed: OnceCell::new() }
    }

    /// The value as JSON text and its object's top-level members: UTF-8, within the depth
    /// limit, without NUL escapes while they are refused, an object, valid.
    pub(super) fn object(&self) -> Result<(&'m str, &Object<'m>), Refusal> {
        match self.object.get_or_init(|| {
            let text =
                std::str::from_utf8(self.payload).map_err(|e| Refusal::new(Reason::InvalidUtf8, format!("value is not UTF-8: {e}")))?;
            scan_json(text.as_bytes(), self.opts.max_depth, self.opts.refuses_nul())?;
            if !text.trim_start().starts_with('{') {
                validate_json(text)?;
                let kind = text.trim_start().chars().next().map_or("nothing", kind_of_first);
                return Err(Refusal::new(Reason::NotAnObject, format!("expected a JSON object, found {kind}")));
            }
            // Top-level members only, values left as borrowed raw JSON: no tree is built.
            Ok((text, serde_json::from_str(text).map_err(invalid_json)?))
        }) {
            Ok((text, object)) => Ok((text, object)),
            Err(e) => Err(e.clone()),
        }
    }
}

impl Record<'_> {
    /// The top-level members of the value's object, when a decoder read it (see [`Record::object`]).
    pub(super) fn spans(&self) -> Option<super::json::Spans> {
        match self.object.get()? {
            Ok((text, object)) => object.spans(text),
            Err(_) => None,
        }
    }
}

/// The attribute name of a `ce_*` header (prefix matched case-insensitively), if it is one.
/// Names are compared as bytes: no UTF-8 check on each pass over a record's headers.
pub(super) fn ce_attribute(header: &[u8]) -> Option<&[u8]> {
    header.get(..CE_PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(CE_PREFIX.as_bytes())).map(|_| &header[CE_PREFIX.len()..])
}

const CE_PREFIX: &str = "ce_";

/// A header's name and value.
pub(super) type Header<'m> = (&'m [u8], Option<&'m [u8]>);

/// The CloudEvents attributes binary mode carries in `ce_<name>` headers, in the order they
/// are checked.
pub(super) const CORE_HEADER_ATTRIBUTES: [&str; 6] = ["specversion", "id", "source", "type", "subject", "time"];

/// The headers the parser reads, found in one pass over a record's headers: `content-type` and
/// the `ce_` core attributes, each the first of its name (names compared case-insensitively).
/// (Looking each up by name would pass over the headers once per name.)
#[derive(Default)]
pub(super) struct KnownHeaders<'m> {
    pub(super) content_type: Option<Header<'m>>,
    /// By [`CORE_HEADER_ATTRIBUTES`]' order.
    pub(super) core: [Option<Header<'m>>; 6],
}

impl<'m> KnownHeaders<'m> {
    pub(super) fn of(msg: &'m RawMessage) -> Self {
        let mut known = Self::default();
        for header @ (name, _) in msg.headers() {
            let slot = if name.eq_ignore_ascii_case(b"content-type") {
                &mut known.content_type
            } else if let Some(i) =
                ce_attribute(name).and_then(|a| CORE_HEADER_ATTRIBUTES.iter().position(|c| c.as_bytes().eq_ignore_ascii_case(a)))
            {
                &mut known.core[i]
            } else {
                continue;
            };
            slot.get_or_insert(header);
        }
        known
    }

    /// A `ce_specversion` header makes a record a binary-mode CloudEvent.
    pub(super) fn is_binary_mode(&self) -> bool {
        self.core[0].is_some()
    }

    /// The `ce_<name>` header's value as text (`name` one of [`CORE_HEADER_ATTRIBUTES`]).
    pub(super) fn attribute(&self, name: &str) -> Result<Option<&'m str>, Refusal> {
        header_text(CORE_HEADER_ATTRIBUTES.iter().position(|c| *c == name).and_then(|i| self.core[i]))
    }
}

/// A header's value as text; none for a missing header or a null value.
pub(super) fn header_text(header: Option<Header<'_>>) -> Result<Option<&str>, Refusal> {
    match header {
        None | Some((_, None)) => Ok(None),
        Some((k, Some(v))) => std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| Refusal::new(Reason::InvalidAttribute, format!("header {} is not UTF-8", String::from_utf8_lossy(k)))),
    }
}
