//! The column types a projection writes and the coercion of a source's value into one, before any
//! SQL: a value that cannot be coerced makes the message a `projection_type` dead letter.

use std::borrow::Cow;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

/// A column type as the configuration names it (`type = "..."`) or as read from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    Text,
    SmallInt,
    Integer,
    BigInt,
    Numeric,
    Real,
    Double,
    Boolean,
    Timestamptz,
    Timestamp,
    Date,
    Uuid,
    Json,
    Jsonb,
    Bytea,
}

impl SqlType {
    pub const ALL: [SqlType; 15] = [
        SqlType::Text,
        SqlType::SmallInt,
        SqlType::Integer,
        SqlType::BigInt,
        SqlType::Numeric,
        SqlType::Real,
        SqlType::Double,
        SqlType::Boolean,
        SqlType::Timestamptz,
        SqlType::Timestamp,
        SqlType::Date,
        SqlType::Uuid,
        SqlType::Json,
        SqlType::Jsonb,
        SqlType::Bytea,
    ];

    /// The configuration's name, which is also PostgreSQL's.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Text => "text",
            SqlType::SmallInt => "smallint",
            SqlType::Integer => "integer",
            SqlType::BigInt => "bigint",
            SqlType::Numeric => "numeric",
            SqlType::Real => "real",
            SqlType::Double => "double precision",
            SqlType::Boolean => "boolean",
            SqlType::Timestamptz => "timestamptz",
            SqlType::Timestamp => "timestamp",
            SqlType::Date => "date",
            SqlType::Uuid => "uuid",
            SqlType::Json => "json",
            SqlType::Jsonb => "jsonb",
            SqlType::Bytea => "bytea",
        }
    }

    pub fn parse(name: &str) -> Option<SqlType> {
        let n = name.trim().to_ascii_lowercase();
        SqlType::ALL.into_iter().find(|t| t.name() == n)
    }

    /// The type of a column whose catalog names `udt` (PostgreSQL's `pg_type.typname`).
    pub fn of_postgres(udt: &str) -> Option<SqlType> {
        Some(match udt {
            "text" | "varchar" | "bpchar" | "citext" | "name" => SqlType::Text,
            "int2" => SqlType::SmallInt,
            "int4" => SqlType::Integer,
            "int8" => SqlType::BigInt,
            "numeric" => SqlType::Numeric,
            "float4" => SqlType::Real,
            "float8" => SqlType::Double,
            "bool" => SqlType::Boolean,
            "timestamptz" => SqlType::Timestamptz,
            "timestamp" => SqlType::Timestamp,
            "date" => SqlType::Date,
            "uuid" => SqlType::Uuid,
            "json" => SqlType::Json,
            "jsonb" => SqlType::Jsonb,
            "bytea" => SqlType::Bytea,
            _ => return None,
        })
    }

    /// The type of a SQLite column declared `decl`: our own names first, then SQLite's affinity
    /// rules (section 3.1 of its datatype page).
    pub fn of_sqlite(decl: &str) -> SqlType {
        let d = decl.trim().to_ascii_lowercase();
        let base = d.split('(').next().unwrap_or("").trim();
        if let Some(t) = SqlType::parse(base) {
            return t;
        }
        match base {
            "datetime" | "timestamp with time zone" => return SqlType::Timestamptz,
            "timestamp without time zone" => return SqlType::Timestamp,
            "bool" => return SqlType::Boolean,
            "float" | "double" => return SqlType::Double,
            "decimal" => return SqlType::Numeric,
            _ => {}
        }
        if d.contains("int") {
            SqlType::BigInt
        } else if d.contains("char") || d.contains("clob") || d.contains("text") {
            SqlType::Text
        } else if d.is_empty() {
            // No declared type keeps any value as given: values without a `type` go as text, and
            // a declared one as its own (an untyped column is no blob to decode text into).
            SqlType::Text
        } else if d.contains("blob") {
            SqlType::Bytea
        } else if d.contains("real") || d.contains("floa") || d.contains("doub") {
            SqlType::Double
        } else {
            SqlType::Numeric
        }
    }

    /// How SQLite declares a column of this type (`create_table`): our own name, which
    /// [`SqlType::of_sqlite`] reads back and whose affinity keeps the value as written, except
    /// JSON (TEXT: a NUMERIC affinity would turn `"12"` into 12) and bytes (BLOB).
    pub fn sqlite_decl(self) -> &'static str {
        match self {
            SqlType::Json | SqlType::Jsonb => "TEXT",
            SqlType::Bytea => "BLOB",
            other => other.name(),
        }
    }

    fn is_number(self) -> bool {
        matches!(self, SqlType::SmallInt | SqlType::Integer | SqlType::BigInt | SqlType::Numeric | SqlType::Real | SqlType::Double)
    }

    /// Whether a value coerced to `self` may be written to a column of type `column` (the
    /// database's assignment casts; a value out of the column's range is then refused row by row).
    pub fn writable_to(self, column: SqlType) -> bool {
        use SqlType::*;
        self == column
            || column == Text
            || (self.is_number() && column.is_number())
            || matches!((self, column), (Json | Jsonb, Json | Jsonb) | (Timestamptz | Timestamp | Date, Timestamptz | Timestamp | Date))
    }
}

/// A source's value before coercion.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    Json(Cow<'a, Value>),
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

    /// Bytes that identify the value among the others of a key (same type per column): values
    /// the database holds equal are one key here too (`1.50` and `1.5e0`, `-0` and `0`), so
    /// no statement of a batch's round meets one row twice.
    pub fn identity(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Bytes(b) => out.extend_from_slice(b),
            Cell::Numeric(s) => match canonical_decimal(s) {
                Some(c) => out.extend_from_slice(c.as_bytes()),
                None => out.extend_from_slice(s.as_bytes()),
            },
            Cell::Float(f) if *f == 0.0 => out.push(b'0'),
            other => out.extend_from_slice(other.to_text().as_deref().unwrap_or("\u{0}null").as_bytes()),
        }
        out.push(0xff);
    }
}

/// Why a value could not be coerced (the dead letter's detail says it with the value).
pub type CoerceError = String;

/// Coerce `raw` to `ty`. JSON `null` and a null source are NULL whatever the type.
pub fn coerce(raw: &Raw<'_>, ty: SqlType) -> Result<Cell, CoerceError> {
    if matches!(raw, Raw::Null) || matches!(raw, Raw::Json(v) if v.is_null()) {
        return Ok(Cell::Null);
    }
    match ty {
        SqlType::Text => text_of(raw).map(|s| Cell::Text(s.into_owned())),
        SqlType::SmallInt => int_of(raw, i16::MIN as i64, i16::MAX as i64),
        SqlType::Integer => int_of(raw, i32::MIN as i64, i32::MAX as i64),
        SqlType::BigInt => int_of(raw, i64::MIN, i64::MAX),
        SqlType::Numeric => numeric_of(raw),
        SqlType::Real | SqlType::Double => float_of(raw).map(Cell::Float),
        SqlType::Boolean => bool_of(raw),
        SqlType::Timestamptz => time_of(raw).map(Cell::Timestamptz),
        SqlType::Timestamp => naive_time_of(raw).map(Cell::Timestamp),
        SqlType::Date => date_of(raw).map(Cell::Date),
        SqlType::Uuid => uuid_of(raw),
        SqlType::Json | SqlType::Jsonb => json_of(raw).map(Cell::Json),
        SqlType::Bytea => bytes_of(raw).map(Cell::Bytes),
    }
}

fn kind(raw: &Raw<'_>) -> &'static str {
    match raw {
        Raw::Json(v) => match v.as_ref() {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        },
        Raw::Text(_) => "text",
        Raw::Int(_) => "an integer",
        Raw::Time(_) => "a timestamp",
        Raw::Bytes(_) => "bytes",
        Raw::Null => "null",
    }
}

fn not(raw: &Raw<'_>, what: &str) -> CoerceError {
    format!("{} is not {what}", kind(raw))
}

/// The value as text: strings as they are, other JSON as its text, bytes only if UTF-8.
fn text_of<'r>(raw: &'r Raw<'_>) -> Result<Cow<'r, str>, CoerceError> {
    Ok(match raw {
        Raw::Json(v) => match v.as_ref() {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            other => Cow::Owned(other.to_string()),
        },
        Raw::Text(s) => Cow::Borrowed(s.as_ref()),
        Raw::Int(i) => Cow::Owned(i.to_string()),
        Raw::Time(t) => Cow::Owned(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        Raw::Bytes(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| "bytes are not UTF-8 text".to_string())?),
        Raw::Null => return Err("null".into()),
    })
}

/// Text that is a number's (a string, header or key), if the value is one.
fn textual<'r>(raw: &'r Raw<'_>) -> Option<&'r str> {
    match raw {
        Raw::Json(v) => v.as_str(),
        Raw::Text(s) => Some(s.as_ref()),
        Raw::Bytes(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
    .map(str::trim)
}

fn int_of(raw: &Raw<'_>, min: i64, max: i64) -> Result<Cell, CoerceError> {
    let n: i64 = match raw {
        Raw::Int(i) => *i,
        // A timestamp into a number column: epoch milliseconds, as Kafka keeps it.
        Raw::Time(t) => t.timestamp_millis(),
        Raw::Json(v) if v.is_number() => match (v.as_i64(), v.as_f64()) {
            (Some(i), _) => i,
            // i64::MAX as f64 is 2^63, one past the range (`as` would clamp it to i64::MAX).
            (None, Some(f)) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => f as i64,
            _ => return Err(format!("{v} is not an integer in range")),
        },
        _ => match textual(raw) {
            Some(s) => s.parse::<i64>().map_err(|_| format!("{s:?} is not an integer"))?,
            None => return Err(not(raw, "an integer")),
        },
    };
    if n < min || n > max {
        return Err(format!("{n} is out of range ({min}..={max})"));
    }
    Ok(Cell::Int(n))
}

fn float_of(raw: &Raw<'_>) -> Result<f64, CoerceError> {
    let f = match raw {
        Raw::Int(i) => *i as f64,
        Raw::Json(v) if v.is_number() => v.as_f64().ok_or_else(|| format!("{v} is not a number"))?,
        _ => match textual(raw) {
            Some(s) => s.parse::<f64>().map_err(|_| format!("{s:?} is not a number"))?,
            None => return Err(not(raw, "a number")),
        },
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err(format!("{f} is not a finite number"))
    }
}

/// A decimal: sign, digits, an optional fraction and exponent (what both databases parse).
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() || !frac.is_empty())
        && digits(int)
        && digits(frac)
        && exp.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        })
}

/// A decimal's value as one text whatever its spelling: sign, significant digits, exponent
/// (`-1.50` and `-15e-1` are both `-15e-1`, every zero is `0`); `None` for an exponent too
/// large to add up.
fn canonical_decimal(s: &str) -> Option<String> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exp) = s.split_once(['e', 'E']).unwrap_or((s, "0"));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut exp: i128 = exp.parse().ok()?;
    exp = exp.checked_sub(i128::try_from(frac.len()).ok()?)?;
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return Some("0".into());
    }
    exp = exp.checked_add(i128::try_from(digits.len() - significant.len()).ok()?)?;
    Some(format!("{}{significant}e{exp}", if negative { "-" } else { "" }))
}

fn numeric_of(raw: &Raw<'_>) -> Result<Cell, CoerceError> {
    match raw {
        Raw::Int(i) => Ok(Cell::Numeric(i.to_string())),
        Raw::Json(v) if v.is_number() => Ok(Cell::Numeric(v.to_string())),
        _ => match textual(raw) {
            Some(s) if is_decimal(s) => Ok(Cell::Numeric(s.to_string())),
            Some(s) => Err(format!("{s:?} is not a decimal number")),
            None => Err(not(raw, "a number")),
        },
    }
}

fn bool_of(raw: &Raw<'_>) -> Result<Cell, CoerceError> {
    match raw {
        Raw::Json(v) if v.is_boolean() => Ok(Cell::Bool(v.as_bool().unwrap_or_default())),
        Raw::Json(v) if v.as_i64().is_some_and(|i| i == 0 || i == 1) => Ok(Cell::Bool(v.as_i64() == Some(1))),
        Raw::Int(i @ (0 | 1)) => Ok(Cell::Bool(*i == 1)),
        _ => match textual(raw).map(str::to_ascii_lowercase).as_deref() {
            Some("true" | "t" | "yes" | "1") => Ok(Cell::Bool(true)),
            Some("false" | "f" | "no" | "0") => Ok(Cell::Bool(false)),
            Some(s) => Err(format!("{s:?} is not a boolean")),
            None => Err(not(raw, "a boolean")),
        },
    }
}

/// Epoch numbers below this are seconds, above it milliseconds (1e11 s is the year 5138).
const MILLIS_FROM: f64 = 1e11;

fn epoch(n: f64) -> Result<DateTime<Utc>, CoerceError> {
    let ms = if n.abs() < MILLIS_FROM { n * 1000.0 } else { n };
    if !ms.is_finite() || ms.abs() > 8.2e15 {
        return Err(format!("{n} is out of range for a timestamp"));
    }
    Utc.timestamp_millis_opt(ms.round() as i64).single().ok_or_else(|| format!("{n} is out of range for a timestamp"))
}

/// ISO-8601 with an offset (RFC 3339, `T` or a space), or without one (taken as UTC).
fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    parse_naive(s).map(|n| n.and_utc())
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

fn time_of(raw: &Raw<'_>) -> Result<DateTime<Utc>, CoerceError> {
    match raw {
        Raw::Time(t) => Ok(*t),
        Raw::Int(i) => epoch(*i as f64),
        Raw::Json(v) if v.is_number() => epoch(v.as_f64().unwrap_or(f64::NAN)),
        _ => match textual(raw) {
            Some(s) => match parse_iso(s) {
                Some(t) => Ok(t),
                None => s.parse::<f64>().map_err(|_| format!("{s:?} is not an ISO-8601 timestamp or epoch number")).and_then(epoch),
            },
            None => Err(not(raw, "a timestamp")),
        },
    }
}

fn naive_time_of(raw: &Raw<'_>) -> Result<NaiveDateTime, CoerceError> {
    match textual(raw).and_then(parse_naive) {
        Some(t) => Ok(t),
        None => time_of(raw).map(|t| t.naive_utc()),
    }
}

fn date_of(raw: &Raw<'_>) -> Result<NaiveDate, CoerceError> {
    match textual(raw).and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()) {
        Some(d) => Ok(d),
        None => naive_time_of(raw).map(|t| t.date()),
    }
}

fn uuid_of(raw: &Raw<'_>) -> Result<Cell, CoerceError> {
    let Some(s) = textual(raw) else { return Err(not(raw, "a UUID")) };
    let inner = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s);
    let hex: String = inner.chars().filter(|c| *c != '-').collect();
    let hyphens_ok = !inner.contains('-') || [8, 13, 18, 23].iter().all(|&i| inner.as_bytes().get(i) == Some(&b'-')) && inner.len() == 36;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !hyphens_ok {
        return Err(format!("{s:?} is not a UUID"));
    }
    let h = hex.to_ascii_lowercase();
    Ok(Cell::Uuid(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])))
}

fn json_of(raw: &Raw<'_>) -> Result<String, CoerceError> {
    Ok(match raw {
        Raw::Json(v) => v.to_string(),
        Raw::Int(i) => i.to_string(),
        Raw::Time(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)).to_string(),
        // Text (a header, a key, an attribute) that is JSON is kept as such, else as a string.
        Raw::Text(_) | Raw::Bytes(_) => {
            let s = text_of(raw)?;
            match serde_json::from_str::<Value>(&s) {
                Ok(v) => v.to_string(),
                Err(_) => Value::String(s.into_owned()).to_string(),
            }
        }
        Raw::Null => "null".into(),
    })
}

fn bytes_of(raw: &Raw<'_>) -> Result<Vec<u8>, CoerceError> {
    match raw {
        Raw::Bytes(b) => Ok(b.to_vec()),
        Raw::Text(s) => Ok(s.as_bytes().to_vec()),
        // JSON carries bytes as base64 text.
        Raw::Json(v) => match v.as_str() {
            Some(s) => base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| format!("{s:?} is not base64")),
            None => Err(not(raw, "base64 text")),
        },
        other => Err(not(other, "bytes")),
    }
}

/// A value as the dead letter's detail quotes it (bounded).
pub fn quote(raw: &Raw<'_>) -> String {
    let s = match raw {
        Raw::Json(v) => v.to_string(),
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
