//! CloudEvents 1.0: binary mode (`ce_*` headers carry the attributes, the value is the data) and
//! structured mode (a JSON object with `specversion`, `id`, `source`, `type`; content type
//! `application/cloudevents+json`, or any JSON object with `specversion`).

use std::borrow::Cow;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::decode::{ce_attribute, Decoder, Record, RowParts, CORE_HEADER_ATTRIBUTES};
use super::headers::{headers_capacity, json_string, write_headers_json};
use super::json::{check_nul, invalid_json, kind_of_first, scan_json, validate_json, Object, Text};
use crate::records::{RawMessage, Reason, Refusal, RowTextBuilder};

const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents";

/// Binary mode: a record with a `ce_specversion` header.
pub(super) struct Binary;

impl Decoder for Binary {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        record.known.is_binary_mode().then(|| parse_binary(record))
    }
}

/// Structured mode: a JSON object with a CloudEvents content type or a `specversion` member.
pub(super) struct Structured;

impl Decoder for Structured {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        let (_, object) = match record.object() {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        let structured =
            record.content_type.is_some_and(|ct| ct.starts_with(STRUCTURED_CONTENT_TYPE)) || object.contains_key("specversion");
        structured.then(|| parse_structured(record.msg, object))
    }
}

/// `parser.format = "cloudevents"`: a valid JSON object that is neither mode is refused.
pub(super) struct NotOne;

impl Decoder for NotOne {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        Some(record.object().and_then(|_| {
            Err(Refusal::new(
                Reason::NotCloudevent,
                "parser.format = cloudevents, but the record has neither ce_specversion header nor a specversion attribute",
            ))
        }))
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

fn parse_binary(record: &Record<'_>) -> Result<RowParts, Refusal> {
    let Record { msg, known, payload, content_type, opts, .. } = record;
    let (msg, payload, content_type) = (*msg, *payload, *content_type);
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
    } else if let Some(decoded) = super::framed::data(record) {
        Some(Cow::Borrowed(decoded?))
    } else if opts.format.is_framed() {
        return Err(super::framed::not_framed(record));
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
