//! Kafka headers (and CloudEvents extension attributes) as the JSON the `headers` columns hold.

use base64::Engine as _;
use serde_json::value::RawValue;

use crate::records::{utf8_string, RawMessage};

/// Room for a row's own text: the headers as JSON (about their packed size) plus `extra`.
pub(super) fn headers_capacity(msg: &RawMessage, extra: usize) -> usize {
    msg.headers().map(|(k, v)| k.len() + v.map_or(4, <[u8]>::len) + 6).sum::<usize>() + 2 + extra
}

/// Kafka headers as a JSON object: UTF-8 values (without NUL) as strings, others as
/// `{"base64": "..."}`, null values as null. A name that is not UTF-8 (only a dead letter's: the
/// parser refuses such records) or holds a NUL is written lossily (U+FFFD) with its bytes in
/// base64 after it — `"x\u{FFFD} [eP8=]"`: two such names do not collide — and its bytes in the
/// value too, for redrive: `{"name_base64": "...", "base64": "..."}` (no `base64` for a null
/// value). Written directly, without building a tree; a repeated name appears twice and the
/// database keeps the last.
pub(crate) fn headers_json<'a>(headers: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(64);
    write_headers_json(&mut out, headers, &[]);
    utf8_string(out)
}

/// [`headers_json`] plus CloudEvents extension attributes as `ce_<name>` members, appended to
/// `out` (UTF-8 in, UTF-8 out).
pub(super) fn write_headers_json<'a>(
    out: &mut Vec<u8>,
    headers: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    extensions: &[(&str, &RawValue)],
) {
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    let b64 = |out: &mut Vec<u8>, bytes: &[u8]| write_json_str(out, &base64::engine::general_purpose::STANDARD.encode(bytes));
    for (raw_name, value) in headers {
        sep(out);
        let Some(name) = std::str::from_utf8(raw_name).ok().filter(|n| !n.contains('\0')) else {
            // Not storable as a JSON member name as it is: written lossily, kept exactly beside.
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw_name);
            write_json_str(out, &format!("{} [{encoded}]", String::from_utf8_lossy(raw_name).replace('\0', "\u{FFFD}")));
            out.extend_from_slice(b":{\"name_base64\":");
            write_json_str(out, &encoded);
            if let Some(bytes) = value {
                out.extend_from_slice(b",\"base64\":");
                b64(out, bytes);
            }
            out.push(b'}');
            continue;
        };
        write_json_str(out, name);
        out.push(b':');
        match value {
            None => out.extend_from_slice(b"null"),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) if !s.contains('\0') => write_json_str(out, s),
                _ => {
                    out.extend_from_slice(b"{\"base64\":");
                    b64(out, bytes);
                    out.push(b'}');
                }
            },
        }
    }
    for (name, raw) in extensions {
        sep(out);
        out.extend_from_slice(b"\"ce_");
        // The name came out of a JSON string: re-escape it (without its quotes).
        let mut quoted = Vec::with_capacity(name.len() + 2);
        write_json_str(&mut quoted, name);
        out.extend_from_slice(&quoted[1..]);
        out.push(b':');
        out.extend_from_slice(raw.get().as_bytes());
    }
    out.push(b'}');
}

pub(super) fn json_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_json_str(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

pub(super) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}
