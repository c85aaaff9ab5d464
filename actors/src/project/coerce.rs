//! Coercion of a source's value into a column's type, before any SQL: a value that cannot be
//! coerced makes the message a `projection_type` dead letter. Exact or refused: a number keeps
//! every digit it was sent with (read from its text, never through a float unless the column is
//! one), an instant its microseconds, and nothing is clamped, cut or turned into NULL.

use std::borrow::Cow;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use super::array;
use super::decimal::Decimal;
use super::instant::{self, Unit};
use super::json::{self, Json};
pub(crate) use super::sql_type::SqlType;

/// A source's value before coercion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw<'a> {
    /// A JSON value as its text (valid JSON: out of the message, or a constant's own text).
    Json(Cow<'a, str>),
    Text(Cow<'a, str>),
    Int(i64),
    Time(DateTime<Utc>),
    Bytes(&'a [u8]),
    Null,
}

/// A coerced value, ready for either backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    /// A decimal in its canonical text.
    Numeric(String),
    Bool(bool),
    Timestamptz(DateTime<Utc>),
    Timestamp(NaiveDateTime),
    Date(NaiveDate),
    /// Lowercase, hyphenated.
    Uuid(String),
    /// JSON text.
    Json(String),
    Bytes(Vec<u8>),
}

impl Cell {
    /// Bytes the cell holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Cell::Text(s) | Cell::Numeric(s) | Cell::Uuid(s) | Cell::Json(s) => s.capacity(),
            Cell::Bytes(b) => b.capacity(),
            _ => 0,
        }
    }
}

impl Cell {
    /// The value as text, the way both backends parse it (PostgreSQL casts it from text, SQLite
    /// stores timestamps, UUIDs, decimals and JSON as text). `None` for NULL.
    pub fn to_text(&self) -> Option<Cow<'_, str>> {
        Some(match self {
            Cell::Null => return None,
            Cell::Text(s) | Cell::Numeric(s) | Cell::Uuid(s) | Cell::Json(s) => Cow::Borrowed(s),
            Cell::Int(i) => Cow::Owned(i.to_string()),
            Cell::Float(f) => Cow::Owned(f.to_string()),
            Cell::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Cell::Timestamptz(t) => Cow::Owned(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            Cell::Timestamp(t) => Cow::Owned(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
            Cell::Date(d) => Cow::Owned(d.format("%Y-%m-%d").to_string()),
            Cell::Bytes(b) => Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b)),
        })
    }

    /// Bytes that identify the value among the others of a key column, compared as the column
    /// compares them (`form`): numbers by value whatever their spelling or type (`1`, `1.0`,
    /// `1e0`, `-0`), `char(n)` without trailing blanks; so no statement of a batch's round meets
    /// one row twice, whichever projection wrote the value.
    pub fn identity(&self, form: KeyForm, out: &mut Vec<u8>) {
        match (self, form) {
            (Cell::Bytes(b), _) => out.extend_from_slice(b),
            (Cell::Null, _) => out.extend_from_slice(b"\0null"),
            (Cell::Int(i), KeyForm::Number) => int_canonical(*i, out),
            (c, form) => {
                let text = c.to_text().unwrap_or_default();
                match form {
                    KeyForm::Number => match Decimal::parse(&text) {
                        Some(d) => d.canonical(out),
                        None => out.extend_from_slice(text.as_bytes()),
                    },
                    KeyForm::Padded => out.extend_from_slice(text.trim_end_matches(' ').as_bytes()),
                    KeyForm::Text => out.extend_from_slice(text.as_bytes()),
                }
            }
        }
        out.push(0xff);
    }
}

/// [`Decimal::canonical`] of an integer, without building one (a key's hot path).
fn int_canonical(i: i64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let (mut n, mut exp) = (i.unsigned_abs(), 0u32);
    if n == 0 {
        out.push(b'0');
        return;
    }
    while n % 10 == 0 {
        n /= 10;
        exp += 1;
    }
    let _ = write!(out, "{}{n}e{exp}", if i < 0 { "-" } else { "" });
}

/// How a key column compares its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyForm {
    /// As their text (timestamps, UUIDs and dates have one text per value).
    #[default]
    Text,
    /// By numeric value.
    Number,
    /// As text, trailing blanks not counted (`char(n)`).
    Padded,
}

/// Why a value could not be coerced (the dead letter's detail says it with the value).
pub(crate) type CoerceError = String;

/// What a column wants: its type, the unit of an epoch number for a time column, and for an
/// array column the type of its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub ty: SqlType,
    pub unit: Option<Unit>,
    /// `Some`: a PostgreSQL array column, whose elements are coerced to this type.
    pub element: Option<SqlType>,
    /// `Some`: a decimal comes as base64 bytes of its unscaled value, with this scale.
    pub scale: Option<u32>,
}

impl From<SqlType> for Target {
    fn from(ty: SqlType) -> Self {
        Target { ty, unit: None, element: None, scale: None }
    }
}

/// A value seen by what it is, whatever source it came from.
enum Val<'r> {
    Null,
    Bool(bool),
    /// A JSON number's exact text.
    Number(&'r str),
    /// A JSON string.
    Str(Cow<'r, str>),
    /// A JSON object or array, its text.
    Compound(&'r str),
    /// Text that is not JSON: a header, the key, an attribute, a topic.
    Text(&'r str),
    Int(i64),
    Time(DateTime<Utc>),
    Bytes(&'r [u8]),
}

fn val<'r>(raw: &'r Raw<'_>) -> Result<Val<'r>, CoerceError> {
    Ok(match raw {
        Raw::Json(text) => match json::view(text).ok_or_else(|| "the value is not JSON".to_string())? {
            Json::Null => Val::Null,
            Json::Bool(b) => Val::Bool(b),
            Json::Number(n) => Val::Number(n),
            Json::Str(s) => Val::Str(s),
            Json::Compound(c) => Val::Compound(c),
        },
        Raw::Text(s) => Val::Text(s.as_ref()),
        Raw::Int(i) => Val::Int(*i),
        Raw::Time(t) => Val::Time(*t),
        Raw::Bytes(b) => Val::Bytes(b),
        Raw::Null => Val::Null,
    })
}

/// Coerce `raw` to what the column wants. JSON `null` and a null source are NULL whatever the type.
pub(crate) fn coerce(raw: &Raw<'_>, to: impl Into<Target>) -> Result<Cell, CoerceError> {
    let to = to.into();
    let v = val(raw)?;
    if matches!(v, Val::Null) {
        return Ok(Cell::Null);
    }
    if let Some(element) = to.element {
        return match &v {
            Val::Compound(c) if c.starts_with('[') => {
                let objects = matches!(element, SqlType::Json | SqlType::Jsonb);
                array::literal(c, objects, &|item| element_text(item, element)).map(Cell::Text)
            }
            // PostgreSQL reads its own `{...}` form.
            Val::Str(s) => Ok(Cell::Text(s.to_string())),
            Val::Text(s) => Ok(Cell::Text(s.to_string())),
            other => Err(not(other, "an array")),
        };
    }
    match to.ty {
        SqlType::Text => text_of(&v).map(|s| Cell::Text(s.into_owned())),
        SqlType::SmallInt => int_of(&v, i16::MIN.into(), i16::MAX.into(), to.ty),
        SqlType::Integer => int_of(&v, i32::MIN.into(), i32::MAX.into(), to.ty),
        SqlType::BigInt => int_of(&v, i64::MIN, i64::MAX, to.ty),
        SqlType::Numeric => match (to.scale, &v) {
            (Some(scale), Val::Str(s)) => {
                let b = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(|_| format!("{s:?} is not base64"))?;
                super::decimal::unscaled_decimal(&b, scale)
                    .map(Cell::Numeric)
                    .ok_or_else(|| format!("the decimal's {} bytes are more than {}", b.len(), super::decimal::MAX_UNSCALED_BYTES))
            }
            _ => numeric_of(&v),
        },
        SqlType::Real => float_of(&v, true).map(Cell::Float),
        SqlType::Double => float_of(&v, false).map(Cell::Float),
        SqlType::Boolean => bool_of(&v),
        SqlType::Timestamptz => time_of(&v, to.unit, false).map(Cell::Timestamptz),
        SqlType::Timestamp => naive_time_of(&v, to.unit).map(Cell::Timestamp),
        SqlType::Date => date_of(&v, to.unit).map(Cell::Date),
        SqlType::Uuid => uuid_of(&v),
        SqlType::Json | SqlType::Jsonb => json_of(&v).map(Cell::Json),
        SqlType::Bytea => bytes_of(&v).map(Cell::Bytes),
    }
}

/// An array element's text as PostgreSQL reads it (`bytea` in its hex form); `None`: NULL.
fn element_text(item: &str, element: SqlType) -> Result<Option<String>, CoerceError> {
    let cell = coerce(&Raw::Json(Cow::Borrowed(item)), element).map_err(|e| format!("an element: {e}: {item}"))?;
    Ok(match &cell {
        Cell::Null => None,
        Cell::Bytes(b) => Some(b.iter().fold(String::from("\\x"), |mut s, x| {
            s.push_str(&format!("{x:02x}"));
            s
        })),
        other => other.to_text().map(Cow::into_owned),
    })
}

fn kind(v: &Val<'_>) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Number(_) => "a number",
        Val::Str(_) => "a string",
        Val::Compound(c) if c.starts_with('[') => "an array",
        Val::Compound(_) => "an object",
        Val::Text(_) => "text",
        Val::Int(_) => "an integer",
        Val::Time(_) => "a timestamp",
        Val::Bytes(_) => "bytes",
    }
}

fn not(v: &Val<'_>, what: &str) -> CoerceError {
    format!("{} is not {what}", kind(v))
}

/// The value as text: strings as they are, numbers as sent, objects and arrays as their JSON
/// (without blanks), bytes only if UTF-8.
fn text_of<'r>(v: &'r Val<'_>) -> Result<Cow<'r, str>, CoerceError> {
    Ok(match v {
        Val::Null => return Err("null".into()),
        Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Val::Number(n) => Cow::Borrowed(n),
        Val::Str(s) => Cow::Borrowed(s.as_ref()),
        Val::Compound(c) => json::compact(c),
        Val::Text(s) => Cow::Borrowed(s),
        Val::Int(i) => Cow::Owned(i.to_string()),
        Val::Time(t) => Cow::Owned(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        Val::Bytes(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| "bytes are not UTF-8 text".to_string())?),
    })
}

/// A number's text: a JSON number as sent, or text that is one (a string, header or key, trimmed).
fn number_text<'r>(v: &'r Val<'_>) -> Option<&'r str> {
    match v {
        Val::Number(n) => Some(n),
        Val::Str(s) => Some(s.trim()),
        Val::Text(s) => Some(s.trim()),
        Val::Bytes(b) => std::str::from_utf8(b).ok().map(str::trim),
        _ => None,
    }
}

fn decimal_of(v: &Val<'_>, what: &str) -> Result<Decimal, CoerceError> {
    let s = number_text(v).ok_or_else(|| not(v, what))?;
    Decimal::parse(s).ok_or_else(|| format!("{s:?} is not {what}"))
}

fn int_of(v: &Val<'_>, min: i64, max: i64, ty: SqlType) -> Result<Cell, CoerceError> {
    let n = match v {
        Val::Int(i) => *i,
        // A timestamp into a number column: epoch milliseconds, as Kafka keeps it.
        Val::Time(t) => t.timestamp_millis(),
        // Plain integer text, the common case, without building a decimal.
        _ => match number_text(v).and_then(|s| s.parse::<i64>().ok()) {
            Some(i) => i,
            None => {
                let d = decimal_of(v, "an integer")?;
                if !d.is_integer() {
                    return Err("it has a fraction, and the column holds integers".into());
                }
                d.to_i64().ok_or_else(|| format!("it is out of range for {} ({min}..={max})", ty.name()))?
            }
        },
    };
    if n < min || n > max {
        return Err(format!("it is out of range for {} ({min}..={max})", ty.name()));
    }
    Ok(Cell::Int(n))
}

/// The nearest `double precision` (or `real`) to the value, as both databases' own input
/// conversion gives it; a value beyond the type's range, or so small it would read as zero, is
/// refused as PostgreSQL refuses it.
fn float_of(v: &Val<'_>, real: bool) -> Result<f64, CoerceError> {
    let name = if real { "real" } else { "double precision" };
    let (f, zero) = match v {
        Val::Int(i) => (if real { f64::from(*i as f32) } else { *i as f64 }, *i == 0),
        Val::Time(t) => (t.timestamp_millis() as f64, false),
        _ => {
            let s = number_text(v).ok_or_else(|| not(v, "a number"))?;
            let f = if real { s.parse::<f32>().map(f64::from) } else { s.parse::<f64>() };
            // Zero only if no digit of the mantissa is (`0.0e5`): else a zero is an underflow.
            let zero = !s.bytes().take_while(|b| !matches!(b, b'e' | b'E')).any(|b| matches!(b, b'1'..=b'9'));
            (f.map_err(|_| format!("{s:?} is not a number"))?, zero)
        }
    };
    if !f.is_finite() || (f == 0.0 && !zero) {
        return Err(format!("it is out of range for {name}"));
    }
    Ok(f)
}

fn numeric_of(v: &Val<'_>) -> Result<Cell, CoerceError> {
    if let Val::Int(i) = v {
        return Ok(Cell::Numeric(i.to_string()));
    }
    let d = decimal_of(v, "a decimal number")?;
    if let Some(why) = d.numeric_overflow() {
        return Err(format!("it {why}"));
    }
    Ok(Cell::Numeric(number_text(v).unwrap_or_default().to_string()))
}

fn bool_of(v: &Val<'_>) -> Result<Cell, CoerceError> {
    match v {
        Val::Bool(b) => Ok(Cell::Bool(*b)),
        Val::Int(i @ (0 | 1)) => Ok(Cell::Bool(*i == 1)),
        Val::Number(n) => match Decimal::parse(n).and_then(|d| d.to_i64()) {
            Some(i @ (0 | 1)) => Ok(Cell::Bool(i == 1)),
            _ => Err(format!("{n} is not a boolean (0 or 1)")),
        },
        _ => match number_text(v).map(str::to_ascii_lowercase).as_deref() {
            Some("true" | "t" | "yes" | "1") => Ok(Cell::Bool(true)),
            Some("false" | "f" | "no" | "0") => Ok(Cell::Bool(false)),
            Some(s) => Err(format!("{s:?} is not a boolean")),
            None => Err(not(v, "a boolean")),
        },
    }
}

/// An instant: a timestamp, ISO-8601 text, or an epoch number (see [`instant::from_epoch`]).
fn time_of(v: &Val<'_>, unit: Option<Unit>, date: bool) -> Result<DateTime<Utc>, CoerceError> {
    let t = match v {
        Val::Time(t) => *t,
        Val::Int(i) => instant::from_epoch(&Decimal::from(*i), unit, date)?,
        Val::Number(n) => instant::from_epoch(&decimal_of(v, "a number")?, unit, date).map_err(|e| format!("{n} {e}"))?,
        _ => {
            let Some(s) = number_text(v) else { return Err(not(v, "a timestamp")) };
            match instant::parse_iso(s).ok_or_else(|| Decimal::parse(s)) {
                Ok(t) => t,
                Err(Some(d)) => instant::from_epoch(&d, unit, date)?,
                Err(None) => return Err(format!("{s:?} is not an ISO-8601 timestamp or epoch number")),
            }
        }
    };
    instant::checked(t)
}

fn naive_time_of(v: &Val<'_>, unit: Option<Unit>) -> Result<NaiveDateTime, CoerceError> {
    match number_text(v).and_then(instant::parse_naive) {
        Some(t) => instant::checked(t.and_utc()).map(|t| t.naive_utc()),
        None => time_of(v, unit, false).map(|t| t.naive_utc()),
    }
}

fn date_of(v: &Val<'_>, unit: Option<Unit>) -> Result<NaiveDate, CoerceError> {
    match number_text(v).and_then(instant::parse_date) {
        Some(d) => instant::checked(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()).map(|t| t.date_naive()),
        None => match number_text(v).and_then(instant::parse_naive) {
            Some(t) => instant::checked(t.and_utc()).map(|t| t.date_naive()),
            None => time_of(v, unit, true).map(|t| t.date_naive()),
        },
    }
}

fn uuid_of(v: &Val<'_>) -> Result<Cell, CoerceError> {
    let s = match v {
        Val::Str(s) => s.trim(),
        Val::Text(s) => s.trim(),
        Val::Bytes(b) => std::str::from_utf8(b).map_err(|_| "bytes are not UTF-8 text".to_string())?.trim(),
        other => return Err(not(other, "a UUID")),
    };
    let inner = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s);
    let hex: String = inner.chars().filter(|c| *c != '-').collect();
    let hyphens_ok = !inner.contains('-') || [8, 13, 18, 23].iter().all(|&i| inner.as_bytes().get(i) == Some(&b'-')) && inner.len() == 36;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !hyphens_ok {
        return Err(format!("{s:?} is not a UUID"));
    }
    let h = hex.to_ascii_lowercase();
    Ok(Cell::Uuid(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])))
}

fn json_of(v: &Val<'_>) -> Result<String, CoerceError> {
    Ok(match v {
        Val::Null => "null".into(),
        Val::Bool(b) => b.to_string(),
        Val::Number(n) => (*n).to_string(),
        Val::Str(s) => serde_json::Value::String(s.to_string()).to_string(),
        Val::Compound(c) => json::compact(c).into_owned(),
        Val::Int(i) => i.to_string(),
        Val::Time(t) => serde_json::Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)).to_string(),
        // Text (a header, a key, an attribute) that is JSON is kept as such, else as a string.
        Val::Text(_) | Val::Bytes(_) => {
            let s = text_of(v)?;
            if serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok() {
                json::compact(&s).into_owned()
            } else {
                serde_json::Value::String(s.into_owned()).to_string()
            }
        }
    })
}

fn bytes_of(v: &Val<'_>) -> Result<Vec<u8>, CoerceError> {
    match v {
        Val::Bytes(b) => Ok(b.to_vec()),
        Val::Text(s) => Ok(s.as_bytes().to_vec()),
        // JSON carries bytes as base64 text.
        Val::Str(s) => base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(|_| format!("{s:?} is not base64")),
        other => Err(not(other, "base64 text")),
    }
}

/// A value as the dead letter's detail quotes it (bounded).
pub(crate) fn quote(raw: &Raw<'_>) -> String {
    let s = match raw {
        Raw::Json(v) => json::compact(v).into_owned(),
        Raw::Text(s) => format!("{s:?}"),
        Raw::Int(i) => i.to_string(),
        Raw::Time(t) => t.to_rfc3339(),
        Raw::Bytes(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Raw::Null => "null".into(),
    };
    let mut cut = s.len().min(120);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    if cut < s.len() {
        format!("{}…", &s[..cut])
    } else {
        s
    }
}
