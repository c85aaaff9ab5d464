//! Avro's binary encoding of one datum, written straight to JSON text by its writer's schema: no
//! value tree in between, every number kept exact.

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, NaiveTime};

use super::schema::{Compiled, Logical, Node};

/// Why a datum does not decode: what failed, and where (`/field/0/key` as a JSON pointer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub(crate) at: String,
    pub(crate) what: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at.as_str() {
            "" => write!(f, "{}", self.what),
            at => write!(f, "at {at}: {}", self.what),
        }
    }
}

/// Decode `bytes` (the whole datum, nothing after it) as the schema's root, appending JSON to
/// `out`. `max_depth` bounds nesting, as the JSON parser's limit does.
pub(crate) fn decode(schema: &Compiled, bytes: &[u8], max_depth: usize, out: &mut String) -> Result<(), DecodeError> {
    // Items of zero bytes each (nulls, empty records) could claim billions in a few bytes.
    let budget = bytes.len().saturating_mul(16).saturating_add(1024);
    let mut d = Decoder { nodes: &schema.nodes, bytes, pos: 0, path: Vec::new(), max_depth, items: budget };
    d.value(0, out).map_err(|what| d.error(what))?;
    if d.pos != bytes.len() {
        let what = format!("{} bytes left after the datum (a payload written with another schema?)", bytes.len() - d.pos);
        return Err(DecodeError { at: String::new(), what });
    }
    Ok(())
}

struct Decoder<'s, 'b> {
    nodes: &'s [Node],
    bytes: &'b [u8],
    pos: usize,
    /// Where decoding is, as JSON pointer tokens, for the error.
    path: Vec<String>,
    max_depth: usize,
    /// Array and map items left to decode.
    items: usize,
}

type Step = Result<(), String>;

impl Decoder<'_, '_> {
    fn error(&self, what: String) -> DecodeError {
        let at = self.path.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect();
        DecodeError { at, what }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("needs {n} bytes, {} left", self.bytes.len() - self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A zigzag varint of up to 64 bits (`int` and `long` alike; `int` then range-checked).
    fn long(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if shift == 63 && b > 1 {
                    return Err("varint longer than 64 bits".into());
                }
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err("varint longer than 64 bits".into())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int {v} out of 32-bit range"))
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    fn value(&mut self, at: usize, out: &mut String) -> Step {
        if self.path.len() > self.max_depth {
            return Err(format!("nested deeper than {} levels", self.max_depth));
        }
        match &self.nodes[at] {
            Node::Null => out.push_str("null"),
            Node::Boolean => match self.take(1)?[0] {
                0 => out.push_str("false"),
                1 => out.push_str("true"),
                b => return Err(format!("boolean byte {b}")),
            },
            Node::Int(l) => {
                let v = self.int()?;
                int_value(i64::from(v), *l, out)?;
            }
            Node::Long(l) => {
                let v = self.long()?;
                int_value(v, *l, out)?;
            }
            Node::Float => {
                let b = self.take(4)?;
                float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]), out);
            }
            Node::Double => {
                let b = self.take(8)?;
                let v = f64::from_le_bytes(b.try_into().map_err(|_| "double")?);
                float(v, out);
            }
            Node::Bytes(l) => {
                let n = self.len()?;
                let b = self.take(n)?;
                bytes_value(b, *l, out)?;
            }
            Node::Fixed(n, l) => {
                let b = self.take(*n)?;
                bytes_value(b, *l, out)?;
            }
            node @ (Node::String | Node::JsonText) => {
                let document = matches!(node, Node::JsonText);
                let n = self.len()?;
                let b = self.take(n)?;
                let s = std::str::from_utf8(b).map_err(|e| format!("string is not UTF-8: {e}"))?;
                // A document stays the document; text that is not JSON stays the string it is.
                if document && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() {
                    out.push_str(s.trim());
                } else {
                    json_str(s, out);
                }
            }
            Node::Enum(symbols) => {
                let i = self.int()?;
                let s = usize::try_from(i).ok().and_then(|i| symbols.get(i));
                out.push_str(s.ok_or_else(|| format!("enum index {i} of {} symbols", symbols.len()))?);
            }
            Node::Union(branches) => {
                let i = self.long()?;
                let b = usize::try_from(i).ok().and_then(|i| branches.get(i));
                let b = *b.ok_or_else(|| format!("union branch {i} of {}", branches.len()))?;
                self.value(b, out)?;
            }
            Node::Record(fields, Logical::VariableScaleDecimal) => self.variable_scale(fields, out)?,
            Node::Record(fields, _) => {
                out.push('{');
                for (i, (name, node)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push(':');
                    self.path.push(serde_json::from_str(name).unwrap_or_default());
                    self.value(*node, out)?;
                    self.path.pop();
                }
                out.push('}');
            }
            Node::Array(items) => {
                out.push('[');
                let mut i = 0usize;
                self.blocks(|d| {
                    if i > 0 {
                        out.push(',');
                    }
                    d.path.push(i.to_string());
                    d.value(*items, out)?;
                    d.path.pop();
                    i += 1;
                    Ok(())
                })?;
                out.push(']');
            }
            Node::Map(values) => {
                out.push('{');
                let mut first = true;
                self.blocks(|d| {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    let n = d.len()?;
                    let key = std::str::from_utf8(d.take(n)?).map_err(|e| format!("map key is not UTF-8: {e}"))?.to_string();
                    json_str(&key, out);
                    out.push(':');
                    d.path.push(key);
                    d.value(*values, out)?;
                    d.path.pop();
                    Ok(())
                })?;
                out.push('}');
            }
        }
        Ok(())
    }

    /// Array and map items come in blocks: a count (negative: its absolute value, then the
    /// block's size in bytes), a count of zero ending them.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Step) -> Step {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            let count = usize::try_from(count.unsigned_abs()).map_err(|_| "block count too large")?;
            self.items = self.items.checked_sub(count).ok_or("more items than the payload can hold")?;
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    /// Debezium's `VariableScaleDecimal` record: its fields in the schema's order.
    fn variable_scale(&mut self, fields: &[(String, usize)], out: &mut String) -> Step {
        let (mut scale, mut unscaled) = (None, None);
        for (name, _) in fields {
            match name.as_str() {
                "\"scale\"" => scale = Some(self.int()?),
                _ => {
                    let n = self.len()?;
                    unscaled = Some(self.take(n)?.to_vec());
                }
            }
        }
        let scale = scale.and_then(|s| u32::try_from(s).ok()).ok_or("VariableScaleDecimal without a scale of 0 or more")?;
        decimal(&unscaled.unwrap_or_default(), scale, out)
    }
}

fn json_str(s: &str, out: &mut String) {
    // serde_json escapes exactly as JSON requires; writing to a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// A float's shortest text as its own type prints it (`0.1f32` → `0.1`, not `0.100000001…`).
/// JSON has no NaN or infinities: they are written as the strings Avro's JSON encoding and
/// JavaScript use.
fn float<F: Into<f64> + Copy + serde::Serialize>(v: F, out: &mut String) {
    let wide: f64 = v.into();
    match serde_json::to_string(&v) {
        Ok(text) if wide.is_finite() => out.push_str(&text),
        _ if wide.is_nan() => out.push_str("\"NaN\""),
        _ if wide > 0.0 => out.push_str("\"Infinity\""),
        _ => out.push_str("\"-Infinity\""),
    }
}

pub(crate) fn int_value(v: i64, l: Logical, out: &mut String) -> Result<(), String> {
    let time = |nanos_per: i64, digits: usize, out: &mut String| -> Step {
        let nanos =
            v.checked_mul(nanos_per).filter(|n| (0..86_400_000_000_000).contains(n)).ok_or_else(|| format!("time {v} out of a day"))?;
        let t = NaiveTime::from_num_seconds_from_midnight_opt((nanos / 1_000_000_000) as u32, (nanos % 1_000_000_000) as u32)
            .ok_or_else(|| format!("time {v} out of a day"))?;
        let _ = write!(out, "\"{}\"", t.format(fraction(digits)));
        Ok(())
    };
    // From its own unit: through nanoseconds, an i64 would reach only the years 1677 to 2262.
    let stamp = |t: Option<DateTime<chrono::Utc>>, digits: usize, zone: &str, out: &mut String| -> Step {
        let t = t.ok_or_else(|| format!("timestamp {v} out of range"))?.naive_utc();
        out.push('"');
        if !iso_stamp(&t, digits, out) {
            let _ = write!(out, "{}", t.format(&format!("%Y-%m-%dT{}", fraction(digits))));
        }
        out.push_str(zone);
        out.push('"');
        Ok(())
    };
    match l {
        Logical::Date => {
            let d = i32::try_from(v)
                .ok()
                .and_then(|d| chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(d.into())));
            let _ = write!(out, "\"{}\"", d.ok_or_else(|| format!("date {v} out of range"))?.format("%Y-%m-%d"));
            Ok(())
        }
        Logical::TimeMillis => time(1_000_000, 3, out),
        Logical::TimeMicros => time(1_000, 6, out),
        Logical::TimeNanos => time(1, 9, out),
        Logical::TimestampMillis => stamp(DateTime::from_timestamp_millis(v), 3, "Z", out),
        Logical::TimestampMicros => stamp(DateTime::from_timestamp_micros(v), 6, "Z", out),
        Logical::TimestampNanos => stamp(Some(DateTime::from_timestamp_nanos(v)), 9, "Z", out),
        Logical::LocalTimestampMillis => stamp(DateTime::from_timestamp_millis(v), 3, "", out),
        Logical::LocalTimestampMicros => stamp(DateTime::from_timestamp_micros(v), 6, "", out),
        Logical::LocalTimestampNanos => stamp(Some(DateTime::from_timestamp_nanos(v)), 9, "", out),
        _ => {
            let _ = write!(out, "{v}");
            Ok(())
        }
    }
}

/// `t` as chrono's `%Y-%m-%dT%H:%M:%S%.{digits}f` writes it, for the years 0000–9999 (false,
/// nothing written: another year, which chrono writes with a sign); by hand, as chrono's
/// formatter reads its format string anew for every value, a cost each change event paid.
fn iso_stamp(t: &chrono::NaiveDateTime, digits: usize, out: &mut String) -> bool {
    use chrono::{Datelike, Timelike};
    let Ok(year) = u32::try_from(t.year()) else { return false };
    if year > 9999 || t.nanosecond() >= 1_000_000_000 || !matches!(digits, 3 | 6 | 9) {
        return false;
    }
    let mut buf = *b"0000-00-00T00:00:00.000000000";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, digits, t.nanosecond() / 10u32.pow(9 - digits as u32));
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&buf[..20 + digits]).unwrap_or_default());
    true
}

/// `HH:MM:SS` and a fraction of exactly `digits` digits: the type's own precision.
fn fraction(digits: usize) -> &'static str {
    match digits {
        3 => "%H:%M:%S%.3f",
        6 => "%H:%M:%S%.6f",
        _ => "%H:%M:%S%.9f",
    }
}

fn bytes_value(b: &[u8], l: Logical, out: &mut String) -> Step {
    match l {
        Logical::Decimal { scale } => decimal(b, scale, out)?,
        Logical::Duration => {
            let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            let _ = write!(out, "{{\"months\":{},\"days\":{},\"millis\":{}}}", part(0), part(4), part(8));
        }
        _ => {
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
    }
    Ok(())
}

/// A two's-complement big-endian unscaled value and its scale as an exact decimal, quoted.
pub(crate) fn decimal(b: &[u8], scale: u32, out: &mut String) -> Result<(), String> {
    let d = crate::project::unscaled_decimal(b, scale)
        .ok_or_else(|| format!("a decimal of {} bytes at scale {scale} is beyond what tributary reads (512 bytes, scale 1000)", b.len()))?;
    out.push('"');
    out.push_str(&d);
    out.push('"');
    Ok(())
}

#[cfg(test)]
mod tests;
