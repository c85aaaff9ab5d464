//! Turning one Kafka record into an `events` row, or into a dead letter with a reason.
//!
//! Pure functions, no I/O: the `Parser` actor calls [`parse_message`] for each message of a
//! batch. Three input formats are understood:
//! - CloudEvents 1.0 structured mode: a JSON object with `specversion`, `id`, `source`, `type`
//!   (content type `application/cloudevents+json`, or any JSON object with `specversion`);
//! - CloudEvents binary mode: `ce_*` headers carry the attributes, the value is the data;
//! - plain JSON: any JSON object, stored whole in `data`.
//!
//! Anything PostgreSQL would refuse later (NUL characters in text or JSON) is refused here while
//! the archive is on, so a batch's rows are known-good before the database sees them; without
//! it, the projections check the values they write (`project::Nul`).

use std::borrow::Cow;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::records::{millis_to_utc, DeadLetter, EventRow, RawMessage, Reason, Refusal, RowText, RowTextBuilder};

mod headers;
pub mod route;

pub use headers::headers_json;
use headers::{headers_capacity, json_string, write_headers_json};

/// Which formats the parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CloudEvents (binary or structured) when the record says so, else plain JSON.
    #[default]
    Auto,
    /// CloudEvents only: a record that is neither binary nor structured mode is a dead letter.
    Cloudevents,
    /// Plain JSON objects; CloudEvents headers and attributes are not interpreted.
    Json,
}

/// Limits and mode for parsing.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub format: Format,
    /// Payloads larger than this become `oversize` dead letters.
    pub max_message_bytes: usize,
    /// JSON nested deeper than this becomes a `too_deep` dead letter.
    pub max_depth: usize,
    /// The projections and `[events]` (the default: no projection, the archive on).
    pub plan: std::sync::Arc<crate::project::Plan>,
}

impl ParseOptions {
    /// Whether a NUL anywhere in a record refuses it: while the archive stores the whole record
    /// (PostgreSQL's text and jsonb cannot hold one). Without the archive only what is written
    /// counts: each projection's column checks the values it takes (`project::Nul`).
    fn refuses_nul(&self) -> bool {
        self.plan.events.enabled
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self { format: Format::Auto, max_message_bytes: 1024 * 1024, max_depth: 64, plan: Default::default() }
    }
}

/// The outcome for one message: exactly one of a row or a dead letter.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Row(EventRow),
    Dead(DeadLetter),
}

const CE_PREFIX: &str = "ce_";
const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents";

/// Parse one message. Never panics, whatever the bytes and headers. A row keeps the message
/// (moved, not copied) as its original.
pub fn parse_message(msg: RawMessage, topts: &ParseOptions) -> Parsed {
    match try_parse(&msg, topts) {
        Ok((time, text)) => Parsed::Row(EventRow {
            offset: msg.offset,
            time,
            kafka_timestamp: msg.timestamp_ms.and_then(millis_to_utc),
            text,
            original: msg,
        }),
        Err(refusal) => Parsed::Dead(dead_letter(&msg, refusal)),
    }
}

/// Build the dead letter for a refused message; keeps the payload and headers whole.
pub fn dead_letter(msg: &RawMessage, refusal: Refusal) -> DeadLetter {
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

/// A row's parsed `time` and its text columns.
type RowParts = (Option<DateTime<Utc>>, RowText);

/// A tombstone (a record whose value is null) a projection takes, as its `events` row when the
/// archive is on: no data and no attributes, its key and every header kept. So every offset
/// that is not a dead letter has its row, tombstones too.
pub fn tombstone_row(msg: RawMessage) -> Parsed {
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

fn try_parse(msg: &RawMessage, opts: &ParseOptions) -> Result<RowParts, Refusal> {
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
    if opts.format != Format::Json && known.is_binary_mode() {
        return parse_binary(msg, &known, payload, content_type, opts);
    }
    let text = std::str::from_utf8(payload).map_err(|e| Refusal::new(Reason::InvalidUtf8, format!("value is not UTF-8: {e}")))?;
    scan_json(text.as_bytes(), opts.max_depth, opts.refuses_nul())?;
    if !text.trim_start().starts_with('{') {
        validate_json(text)?;
        let kind = text.trim_start().chars().next().map_or("nothing", kind_of_first);
        return Err(Refusal::new(Reason::NotAnObject, format!("expected a JSON object, found {kind}")));
    }
    // Top-level members only, values left as borrowed raw JSON: no tree is built.
    let object: Object<'_> = serde_json::from_str(text).map_err(invalid_json)?;
    let structured = opts.format != Format::Json
        && (content_type.is_some_and(|ct| ct.starts_with(STRUCTURED_CONTENT_TYPE)) || object.contains_key("specversion"));
    if structured {
        parse_structured(msg, &object)
    } else if opts.format == Format::Cloudevents {
        Err(Refusal::new(
            Reason::NotCloudevent,
            "parser.format = cloudevents, but the record has neither ce_specversion header nor a specversion attribute",
        ))
    } else {
        let text = RowTextBuilder::new(msg, headers_capacity(msg, 0))
            .push(None)
            .push(None)
            .push(None)
            .push(None)
            .push(content_type)
            .push(Some(text))
            .push_with(|out| write_headers_json(out, msg.headers(), &[]))
            .finish();
        Ok((None, text))
    }
}

/// A JSON object's top-level members as borrowed raw values, in their order; of a repeated name
/// the last counts, as in serde's maps. A vector rather than a hash map: events have about ten
/// members, and hashing each name (SipHash) and growing a table costs more than a scan.
/// The parser looks up a fixed handful of names, so a long object costs linear time, not more.
struct Object<'a>(Vec<(Text<'a>, &'a RawValue)>);

impl<'a> Object<'a> {
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k.0 == name).map(|(_, v)| *v)
    }

    fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The members whose names `keep` accepts, sorted by name, each name once (its last value).
    fn sorted_members(&self, keep: impl Fn(&str) -> bool) -> Vec<(&str, &'a RawValue)> {
        let mut members: Vec<(&str, &'a RawValue)> = self.0.iter().map(|(k, v)| (k.0.as_ref(), *v)).filter(|(k, _)| keep(k)).collect();
        // A stable sort keeps a repeated name's members in order; each later one replaces the
        // one kept before it.
        members.sort_by_key(|(k, _)| *k);
        members.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        members
    }
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(Text<'de>, &'de RawValue)> = Vec::with_capacity(16);
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON string borrowed from the record when it has no escapes, else unescaped into its own
/// `String`. (serde's `Cow<str>` always allocates: an object's member names and attributes
/// cost one allocation each.)
#[derive(Debug, PartialEq, Eq)]
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn invalid_json(e: serde_json::Error) -> Refusal {
    if e.to_string().contains("recursion limit") {
        Refusal::new(Reason::TooDeep, "JSON nests deeper than serde_json's limit of 128")
    } else {
        Refusal::new(Reason::InvalidJson, format!("invalid JSON: {e}"))
    }
}

/// Full syntax check without building anything.
fn validate_json(text: &str) -> Result<(), Refusal> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ()).map_err(invalid_json)
}

/// Before parsing: container nesting deeper than `max_depth`, and with `refuse_nul` `\u0000`
/// escapes (NUL, which PostgreSQL cannot store in text or jsonb). Syntax is checked by the parser
/// afterwards; this only has to be right for valid JSON. Most texts are cleared without the
/// byte-by-byte scan: at most `max_depth` brackets in all cannot nest deeper, and
/// without the six bytes `\u0000` anywhere there is no NUL escape.
fn scan_json(text: &[u8], max_depth: usize, refuse_nul: bool) -> Result<(), Refusal> {
    let brackets = memchr::memchr2_iter(b'{', b'[', text).count();
    let nul_escape = refuse_nul && memchr::memchr_iter(b'\\', text).any(|i| text.get(i + 1..i + 6) == Some(b"u0000".as_slice()));
    if brackets <= max_depth && !nul_escape {
        return Ok(());
    }
    scan_json_bytes(text, max_depth, refuse_nul)
}

fn scan_json_bytes(text: &[u8], max_depth: usize, refuse_nul: bool) -> Result<(), Refusal> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if in_string {
            match b {
                b'\\' => {
                    if refuse_nul && text.get(i + 1) == Some(&b'u') && text.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                        return Err(Refusal::new(
                            Reason::NulCharacter,
                            "a JSON string contains a NUL character (\\u0000), which PostgreSQL cannot store",
                        ));
                    }
                    i += 2;
                    continue;
                }
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > max_depth {
                        return Err(Refusal::new(Reason::TooDeep, format!("JSON nests deeper than parser.max_depth = {max_depth}")));
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    Ok(())
}

fn check_nul(s: &str, place: &str) -> Result<(), Refusal> {
    if s.contains('\0') {
        Err(Refusal::new(Reason::NulCharacter, format!("{place} contains a NUL character, which PostgreSQL cannot store")))
    } else {
        Ok(())
    }
}

/// What a JSON value is, from its first character.
fn kind_of_first(c: char) -> &'static str {
    match c {
        '{' => "an object",
        '[' => "an array",
        '"' => "a string",
        't' | 'f' => "a boolean",
        'n' => "null",
        _ => "a number",
    }
}

/// A header's name and value.
type Header<'m> = (&'m [u8], Option<&'m [u8]>);

/// The CloudEvents attributes binary mode carries in `ce_<name>` headers, in the order they
/// are checked.
const CORE_HEADER_ATTRIBUTES: [&str; 6] = ["specversion", "id", "source", "type", "subject", "time"];

/// The headers the parser reads, found in one pass over a record's headers: `content-type` and
/// the `ce_` core attributes, each the first of its name (names compared case-insensitively).
/// (Looking each up by name would pass over the headers once per name.)
#[derive(Default)]
struct KnownHeaders<'m> {
    content_type: Option<Header<'m>>,
    /// By [`CORE_HEADER_ATTRIBUTES`]' order.
    core: [Option<Header<'m>>; 6],
}

impl<'m> KnownHeaders<'m> {
    fn of(msg: &'m RawMessage) -> Self {
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
    fn is_binary_mode(&self) -> bool {
        self.core[0].is_some()
    }

    /// The `ce_<name>` header's value as text (`name` one of [`CORE_HEADER_ATTRIBUTES`]).
    fn attribute(&self, name: &str) -> Result<Option<&'m str>, Refusal> {
        header_text(CORE_HEADER_ATTRIBUTES.iter().position(|c| *c == name).and_then(|i| self.core[i]))
    }
}

/// A header's value as text; none for a missing header or a null value.
fn header_text(header: Option<Header<'_>>) -> Result<Option<&str>, Refusal> {
    match header {
        None | Some((_, None)) => Ok(None),
        Some((k, Some(v))) => std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| Refusal::new(Reason::InvalidAttribute, format!("header {} is not UTF-8", String::from_utf8_lossy(k)))),
    }
}

fn check_specversion(v: &str) -> Result<(), Refusal> {
    if v == "1.0" {
        Ok(())
    } else {
        Err(Refusal::new(Reason::UnsupportedSpecversion, format!("specversion {v:?} is not supported (only 1.0)")))
    }
}

fn parse_time(v: Option<&str>) -> Result<Option<DateTime<Utc>>, Refusal> {
    v.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| Refusal::new(Reason::InvalidTimestamp, format!("time {t:?} is not RFC 3339: {e}")))
    })
    .transpose()
}

fn required<'a>(v: Option<&'a str>, name: &str) -> Result<&'a str, Refusal> {
    match v {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(Refusal::new(Reason::InvalidAttribute, format!("attribute {name} is empty"))),
        None => Err(Refusal::new(Reason::MissingAttribute, format!("required attribute {name} is missing"))),
    }
}

fn parse_binary(
    msg: &RawMessage,
    known: &KnownHeaders<'_>,
    payload: &[u8],
    content_type: Option<&str>,
    opts: &ParseOptions,
) -> Result<RowParts, Refusal> {
    let attr = |name: &str| known.attribute(name);
    let specversion = required(attr("specversion")?, "ce_specversion")?;
    check_specversion(specversion)?;
    let id = required(attr("id")?, "ce_id")?;
    let source = required(attr("source")?, "ce_source")?;
    let event_type = required(attr("type")?, "ce_type")?;
    let subject = attr("subject")?;
    let time = parse_time(attr("time")?)?;
    for (place, value) in [
        ("header ce_id", Some(id)),
        ("header ce_source", Some(source)),
        ("header ce_type", Some(event_type)),
        ("header ce_subject", subject),
        ("header content-type", content_type),
    ] {
        if let Some(v) = value.filter(|_| opts.refuses_nul()) {
            check_nul(v, place)?;
        }
    }
    let data: Option<Cow<'_, str>> = if payload.is_empty() {
        None
    } else if content_type.is_none_or(is_json_content_type) {
        let text = std::str::from_utf8(payload).map_err(|e| Refusal::new(Reason::InvalidUtf8, format!("value is not UTF-8: {e}")))?;
        scan_json(text.as_bytes(), opts.max_depth, opts.refuses_nul())?;
        validate_json(text)?;
        Some(Cow::Borrowed(text))
    } else {
        // Non-JSON data is kept as a JSON string: text when it is clean UTF-8, else base64.
        Some(Cow::Owned(match std::str::from_utf8(payload) {
            Ok(text) if !text.contains('\0') => json_string(text),
            _ => json_string(&base64::engine::general_purpose::STANDARD.encode(payload)),
        }))
    };
    let remaining =
        msg.headers().filter(|(k, _)| !ce_attribute(k).is_some_and(is_core_attribute) && !k.eq_ignore_ascii_case(b"content-type"));
    let text =
        RowTextBuilder::new(msg, headers_capacity(msg, data.as_ref().map_or(0, |d| if matches!(d, Cow::Owned(_)) { d.len() } else { 0 })))
            .push(Some(id))
            .push(Some(source))
            .push(Some(event_type))
            .push(subject)
            .push(content_type)
            .push(data.as_deref())
            .push_with(|out| write_headers_json(out, remaining, &[]))
            .finish();
    Ok((time, text))
}

/// The attribute name of a `ce_*` header (prefix matched case-insensitively), if it is one.
/// Names are compared as bytes: no UTF-8 check on each pass over a record's headers.
fn ce_attribute(header: &[u8]) -> Option<&[u8]> {
    header.get(..CE_PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(CE_PREFIX.as_bytes())).map(|_| &header[CE_PREFIX.len()..])
}

fn is_core_attribute(name: &[u8]) -> bool {
    CORE_HEADER_ATTRIBUTES.iter().any(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

fn is_json_content_type(ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct == "application/json" || ct == "text/json" || ct.ends_with("+json")
}

fn string_attr<'a>(object: &Object<'a>, name: &str) -> Result<Option<Cow<'a, str>>, Refusal> {
    match object.get(name).map(|raw| raw.get()) {
        None | Some("null") => Ok(None),
        Some(raw) if raw.starts_with('"') => serde_json::from_str::<Text<'a>>(raw).map(|t| Some(t.0)).map_err(invalid_json),
        Some(raw) => Err(Refusal::new(
            Reason::InvalidAttribute,
            format!("attribute {name} must be a string, found {}", raw.chars().next().map_or("nothing", kind_of_first)),
        )),
    }
}

const CORE_ATTRIBUTES: [&str; 9] = ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data", "data_base64"];

fn parse_structured(msg: &RawMessage, object: &Object<'_>) -> Result<RowParts, Refusal> {
    let specversion = string_attr(object, "specversion")?;
    check_specversion(required(specversion.as_deref(), "specversion")?)?;
    let id = string_attr(object, "id")?;
    let id = required(id.as_deref(), "id")?;
    let source = string_attr(object, "source")?;
    let source = required(source.as_deref(), "source")?;
    let event_type = string_attr(object, "type")?;
    let event_type = required(event_type.as_deref(), "type")?;
    let subject = string_attr(object, "subject")?;
    let time = parse_time(string_attr(object, "time")?.as_deref())?;
    let datacontenttype = string_attr(object, "datacontenttype")?;
    let data = match (object.get("data"), object.get("data_base64")) {
        (Some(_), Some(_)) => {
            return Err(Refusal::new(Reason::InvalidAttribute, "both data and data_base64 are present"));
        }
        (Some(raw), None) if raw.get() == "null" => None,
        (None, None) => None,
        (Some(raw), None) => Some(raw.get()),
        (None, Some(raw)) => {
            let b64 = string_attr(object, "data_base64")?.unwrap_or_default();
            if base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()).is_err() {
                return Err(Refusal::new(Reason::InvalidAttribute, "data_base64 is not valid base64"));
            }
            // Kept as the JSON string it already is.
            Some(raw.get())
        }
    };
    // Extension attributes travel along in `headers`, prefixed `ce_`.
    let extensions = object.sorted_members(|k| !CORE_ATTRIBUTES.contains(&k));
    let ext_bytes: usize = extensions.iter().map(|(k, v)| k.len() + v.get().len() + 8).sum();
    let text = RowTextBuilder::new(msg, headers_capacity(msg, ext_bytes))
        .push(Some(id))
        .push(Some(source))
        .push(Some(event_type))
        .push(subject.as_deref())
        .push(datacontenttype.as_deref())
        .push(data)
        .push_with(|out| write_headers_json(out, msg.headers(), &extensions))
        .finish();
    Ok((time, text))
}

/// Dead-letter details are stored as text: no NUL, bounded length.
pub fn sanitize_detail(detail: &str) -> String {
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
mod tests;
