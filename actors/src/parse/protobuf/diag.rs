//! Why a payload did not decode, said as the field path where the wire bytes go wrong.
//!
//! prost-reflect's DecodeError names no field, so on failure (only then) the payload is walked
//! again against the descriptors. Anything the walk cannot place falls back to prost's own text.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// prost's recursion limit: a payload nested deeper fails to decode, and the walk stops there too.
const MAX_DEPTH: usize = 100;

pub(super) fn explain(desc: &MessageDescriptor, payload: &[u8], err: &impl std::fmt::Display) -> String {
    let mut path = Vec::new();
    match walk(desc, payload, &mut path, 0) {
        Err(reason) if path.is_empty() => format!("message {}: {reason}", desc.full_name()),
        Err(reason) => {
            let mut names: Vec<&str> = path.iter().map(|(name, _)| name.as_str()).collect();
            // A runaway nesting would print a hundred names: keep both ends.
            if names.len() > 8 {
                names.splice(3..names.len() - 3, ["…"]);
            }
            let number = path.last().map_or(0, |(_, number)| *number);
            format!("field {} ({number}): {reason}", names.join("."))
        }
        Ok(()) => {
            let text = err.to_string();
            let text = text.strip_prefix("failed to decode Protobuf message: ").unwrap_or(&text);
            format!("message {}: {text}", desc.full_name())
        }
    }
}

/// Walks one message's bytes. Err leaves `path` at the field that failed; Ok means nothing was
/// found (or the walk gave up, on groups).
fn walk(desc: &MessageDescriptor, buf: &[u8], path: &mut Vec<(String, u64)>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested more than {MAX_DEPTH} messages deep"));
    }
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos).ok_or("truncated field key")?;
        let (number, wire) = (key >> 3, key & 7);
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(format!("invalid field number {number}"));
        }
        let field = u32::try_from(number).ok().and_then(|n| desc.get_field(n));
        let name = field.as_ref().map_or_else(|| format!("#{number}"), |f| f.name().to_owned());
        path.push((name, number));
        if wire > 5 {
            return Err(format!("invalid wire type {wire}"));
        }
        if let Some(expected) = field.as_ref().and_then(|f| mismatch(f, wire)) {
            return Err(format!("wire type {wire} where {expected} was expected"));
        }
        match wire {
            0 => {
                read_varint(buf, &mut pos).ok_or("truncated varint")?;
            }
            1 | 5 => {
                let width = if wire == 1 { 8 } else { 4 };
                if buf.len() - pos < width {
                    return Err(format!("truncated fixed{}", width * 8));
                }
                pos += width;
            }
            2 => {
                let len = read_varint(buf, &mut pos).ok_or("truncated length")?;
                let left = buf.len() - pos;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&len| len <= left)
                    .ok_or_else(|| format!("truncated message (length {len}, {left} bytes left)"))?;
                let sub = &buf[pos..pos + len];
                pos += len;
                if let Some(field) = &field {
                    check_delimited(field, sub, path, depth)?;
                }
            }
            // Groups (proto2's deprecated wire types 3/4): not worth walking.
            _ => return Ok(()),
        }
        path.pop();
    }
    Ok(())
}

/// A length-delimited value of a known field: a nested message, a string, a packed list.
fn check_delimited(field: &FieldDescriptor, sub: &[u8], path: &mut Vec<(String, u64)>, depth: usize) -> Result<(), String> {
    match field.kind() {
        Kind::Message(m) => walk(&m, sub, path, depth + 1),
        Kind::String if std::str::from_utf8(sub).is_err() => Err("string is not valid UTF-8".to_owned()),
        Kind::String | Kind::Bytes => Ok(()),
        // A packed list of scalars.
        kind => match wire_type(&kind) {
            0 => {
                let mut pos = 0;
                while pos < sub.len() {
                    read_varint(sub, &mut pos).ok_or("truncated varint in packed list")?;
                }
                Ok(())
            }
            1 if !sub.len().is_multiple_of(8) => Err("packed list length not a multiple of 8".into()),
            5 if !sub.len().is_multiple_of(4) => Err("packed list length not a multiple of 4".into()),
            _ => Ok(()),
        },
    }
}

/// The wire type a field's values must come in, when `wire` is not one it accepts.
fn mismatch(field: &FieldDescriptor, wire: u64) -> Option<&'static str> {
    let kind = field.kind();
    if field.is_group() {
        return None;
    }
    let expected = wire_type(&kind);
    let packed_ok = field.is_list() && expected != 2 && wire == 2;
    if wire == expected || packed_ok {
        return None;
    }
    Some(match expected {
        0 => "a varint (wire type 0)",
        1 => "a fixed64 (wire type 1)",
        5 => "a fixed32 (wire type 5)",
        _ => "a length-delimited value (wire type 2)",
    })
}

fn wire_type(kind: &Kind) -> u64 {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => 1,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => 5,
        Kind::String | Kind::Bytes | Kind::Message(_) => 2,
        _ => 0,
    }
}

/// A base-128 varint as protobuf writes it.
pub(super) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
