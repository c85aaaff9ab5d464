//! Records and rows: a Kafka record as read ([`RawMessage`]), the `events` row a message becomes
//! ([`EventRow`]), the dead letter it becomes instead ([`DeadLetter`], with its [`Reason`]) and
//! why ([`Refusal`]). Leaf types every layer shares; the batches that carry them between the
//! actors are in `batches`.

use chrono::{DateTime, TimeZone, Utc};

/// One Kafka record as the reader saw it: owned bytes, so it can cross threads.
///
/// Packed: key, value and headers are copied out of librdkafka into one buffer — one allocation
/// per record, however many headers, freed on another thread. The record
/// travels on unchanged as the row's [`EventRow::original`], which the row's key is read from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawMessage {
    pub offset: i64,
    /// Kafka's timestamp (create or log-append time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The key's bytes, then the value's, then each header: name length and value length (u32
    /// little-endian, [`NULL_LEN`] for a null value), name, value.
    buf: Vec<u8>,
    /// Length of the key in `buf`; `None` for a null key.
    key_len: Option<usize>,
    /// Length of the value after the key; `None` for a tombstone (null value).
    payload_len: Option<usize>,
    /// librdkafka could not parse the record's headers (a corrupt header block): it has none
    /// here, and the parser makes it a dead letter rather than a row without them.
    headers_unreadable: bool,
}

/// A null header value's length in [`RawMessage`]'s buffer.
const NULL_LEN: u32 = u32::MAX;

impl RawMessage {
    /// Copy a record's parts into one buffer. Headers keep their order; a header may have a null
    /// value. Header names are taken as bytes: Kafka does not check that they are UTF-8, so the
    /// parser does ([`RawMessage::non_utf8_header_name`]).
    pub fn new<'a, H>(offset: i64, timestamp_ms: Option<i64>, key: Option<&[u8]>, payload: Option<&[u8]>, headers: H) -> Self
    where
        H: IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        H::IntoIter: Clone,
    {
        let headers = headers.into_iter();
        let header_bytes: usize = headers.clone().map(|(k, v)| 8 + k.len() + v.map_or(0, <[u8]>::len)).sum();
        let mut buf = Vec::with_capacity(key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len) + header_bytes);
        buf.extend_from_slice(key.unwrap_or_default());
        buf.extend_from_slice(payload.unwrap_or_default());
        for (name, value) in headers {
            // Kafka caps a record far below 4 GiB; the cut only keeps this total.
            let name = &name[..name.len().min(NULL_LEN as usize - 1)];
            let value = value.map(|v| &v[..v.len().min(NULL_LEN as usize - 1)]);
            buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
            buf.extend_from_slice(&value.map_or(NULL_LEN, |v| v.len() as u32).to_le_bytes());
            buf.extend_from_slice(name);
            buf.extend_from_slice(value.unwrap_or_default());
        }
        Self { offset, timestamp_ms, buf, key_len: key.map(<[u8]>::len), payload_len: payload.map(<[u8]>::len), headers_unreadable: false }
    }

    /// The record's headers could not be read (see [`RawMessage::headers_unreadable`]).
    pub fn with_unreadable_headers(mut self) -> Self {
        self.headers_unreadable = true;
        self
    }

    /// Whether librdkafka could not parse the record's headers, so it has none here.
    pub fn headers_unreadable(&self) -> bool {
        self.headers_unreadable
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.buf[..n])
    }

    /// `None` for a tombstone (null value).
    pub fn payload(&self) -> Option<&[u8]> {
        let start = self.key_len.unwrap_or(0);
        self.payload_len.map(|n| &self.buf[start..start + n])
    }

    /// Headers in record order, as `(name, value)`, both as the bytes the record holds (Kafka
    /// does not check that names are UTF-8); a value may be null.
    pub fn headers(&self) -> Headers<'_> {
        let start = self.key_len.unwrap_or(0) + self.payload_len.unwrap_or(0);
        Headers { rest: &self.buf[start..] }
    }

    /// The first header whose name is not UTF-8 (Kafka does not check): its position and name.
    pub fn non_utf8_header_name(&self) -> Option<(usize, &[u8])> {
        self.headers().map(|(name, _)| name).enumerate().find(|(_, name)| std::str::from_utf8(name).is_err())
    }

    /// Approximate heap bytes held by this message, for memory accounting.
    pub fn weight(&self) -> usize {
        self.buf.len() + 64
    }

    /// The packed bytes, which a [`RowText`] may point into.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// The headers of a [`RawMessage`] with their names as bytes, decoded from its buffer as they are
/// iterated (they run to the buffer's end).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let (lens, rest) = self.rest.split_first_chunk::<8>()?;
        let name_len = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
        let value_len = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]);
        let (name, rest) = rest.split_at_checked(name_len)?;
        let (value, rest) = if value_len == NULL_LEN {
            (None, rest)
        } else {
            let (v, rest) = rest.split_at_checked(value_len as usize)?;
            (Some(v), rest)
        };
        self.rest = rest;
        Some((name, value))
    }
}

/// Identifies a partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A row for the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub offset: i64,
    pub time: Option<DateTime<Utc>>,
    pub kafka_timestamp: Option<DateTime<Utc>>,
    /// The text columns (id, source, type, subject, datacontenttype, data, headers).
    pub text: RowText,
    /// The record as it arrived (moved, not copied): the row's key is read from it, and if the
    /// database refuses the row, it becomes a dead letter that keeps the payload and headers whole.
    pub original: RawMessage,
}

impl EventRow {
    pub fn key(&self) -> Option<&[u8]> {
        self.original.key()
    }
    pub fn event_id(&self) -> Option<&str> {
        self.text.get(&self.original, Col::EventId)
    }
    pub fn source(&self) -> Option<&str> {
        self.text.get(&self.original, Col::Source)
    }
    pub fn event_type(&self) -> Option<&str> {
        self.text.get(&self.original, Col::EventType)
    }
    pub fn subject(&self) -> Option<&str> {
        self.text.get(&self.original, Col::Subject)
    }
    pub fn datacontenttype(&self) -> Option<&str> {
        self.text.get(&self.original, Col::DataContentType)
    }
    /// JSON text, already validated (no NUL characters, bounded depth).
    pub fn data(&self) -> Option<&str> {
        self.text.get(&self.original, Col::Data)
    }
    /// Remaining Kafka headers (and CloudEvents extensions) as a JSON object.
    pub fn headers(&self) -> &str {
        self.text.get(&self.original, Col::Headers).unwrap_or("{}")
    }
}

/// The text columns of an `events` row, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    EventId,
    Source,
    EventType,
    Subject,
    DataContentType,
    Data,
    Headers,
}

const COLS: usize = 7;

/// A row's text columns without copying what the record already holds: a column that is a
/// slice of the record (an attribute or `data` as it stands in the JSON value, a header value,
/// the whole value) is kept as its position in the record's buffer; only text that had to be
/// written (unescaped strings, the headers JSON) has its own buffer, one for the row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowText {
    own: String,
    /// Each column's start and end, in the record's buffer or in `own`.
    spans: [(u32, u32); COLS],
    /// Bit `i` set: column `i` is NULL.
    nulls: u8,
    /// Bit `i` set: column `i` lies in the record's buffer.
    in_record: u8,
}

impl RowText {
    /// Column `col`, reading record-held columns from `record` (the record the row was parsed
    /// from, which the row keeps).
    pub fn get<'a>(&'a self, record: &'a RawMessage, col: Col) -> Option<&'a str> {
        let i = col as usize;
        if self.nulls & (1 << i) != 0 {
            return None;
        }
        let (start, end) = (self.spans[i].0 as usize, self.spans[i].1 as usize);
        if self.in_record & (1 << i) != 0 {
            // Was a `&str` when the span was taken; checked again rather than trusted.
            std::str::from_utf8(record.bytes().get(start..end)?).ok()
        } else {
            self.own.get(start..end)
        }
    }

    /// Bytes this row had to write itself (the rest it reads from its record).
    #[cfg(test)]
    pub(crate) fn own_len(&self) -> usize {
        self.own.len()
    }
}

/// Builds a [`RowText`] column by column, in [`Col`] order.
pub(crate) struct RowTextBuilder<'r> {
    record: &'r [u8],
    own: Vec<u8>,
    spans: [(u32, u32); COLS],
    nulls: u8,
    in_record: u8,
    next: usize,
}

impl<'r> RowTextBuilder<'r> {
    /// Columns of a row of `record`; `own_bytes` is a guess of the text that will be written.
    pub(crate) fn new(record: &'r RawMessage, own_bytes: usize) -> Self {
        Self { record: record.bytes(), own: Vec::with_capacity(own_bytes), spans: [(0, 0); COLS], nulls: 0, in_record: 0, next: 0 }
    }

    /// Where `s` lies in the record's buffer, if it is a slice of it.
    fn span_in_record(&self, s: &str) -> Option<(u32, u32)> {
        let base = self.record.as_ptr() as usize;
        let at = (s.as_ptr() as usize).checked_sub(base)?;
        let end = at.checked_add(s.len())?;
        (end <= self.record.len()).then_some(())?;
        Some((u32::try_from(at).ok()?, u32::try_from(end).ok()?))
    }

    /// The next column's value: kept by position if it is a slice of the record, else copied.
    /// (By `&mut self`: a builder moved through each call is copied in parts and back whole.)
    pub(crate) fn push(&mut self, value: Option<&str>) -> &mut Self {
        let start = self.own.len();
        match value {
            None => self.nulls |= 1 << self.next,
            Some(v) => match self.span_in_record(v) {
                Some(span) if !v.is_empty() => {
                    self.in_record |= 1 << self.next;
                    return self.end(span);
                }
                _ => self.own.extend_from_slice(v.as_bytes()),
            },
        }
        self.end_own(start)
    }

    /// The next column, written by `write` (which must write UTF-8).
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let start = self.own.len();
        write(&mut self.own);
        self.end_own(start)
    }

    /// End a column written to the row's own buffer from `start`. (A row's own text past
    /// 4 GiB cannot occur: records are capped far below; `get` would answer NULL, not panic.)
    fn end_own(&mut self, start: usize) -> &mut Self {
        let pos = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let span = (pos(start), pos(self.own.len()));
        self.end(span)
    }

    fn end(&mut self, span: (u32, u32)) -> &mut Self {
        if self.next < COLS {
            self.spans[self.next] = span;
            self.next += 1;
        }
        self
    }

    pub(crate) fn finish(&mut self) -> RowText {
        while self.next < COLS {
            self.push(None);
        }
        RowText { own: utf8_string(std::mem::take(&mut self.own)), spans: self.spans, nulls: self.nulls, in_record: self.in_record }
    }
}

/// Bytes written as UTF-8 (JSON, copied `&str`s) as a `String`; should they not be, they are
/// kept lossily rather than panicking.
pub(crate) fn utf8_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Why a message became a dead letter. The string form is stored in `dead_letters.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    EmptyPayload,
    Oversize,
    InvalidUtf8,
    InvalidJson,
    TooDeep,
    NotAnObject,
    NulCharacter,
    MissingAttribute,
    InvalidAttribute,
    UnsupportedSpecversion,
    InvalidTimestamp,
    NotCloudevent,
    /// librdkafka could not parse the record's header block.
    UnreadableHeaders,
    /// Set by the writer when the database refused the message's row (its SQLSTATE kept).
    DatabaseRejected,
    /// A value a projection could not coerce to its column's type.
    ProjectionType,
    /// A projection's key column, or a `required` one, has no value in the message.
    ProjectionMissing,
    /// No projection takes the message, `[events]` is off and `unrouted = "dead_letter"`.
    Unrouted,
    /// `parser.format` names a schema-registry format and the value is not framed.
    NotFramed,
    /// The registry does not know the value's schema id (redrivable once it is restored).
    SchemaNotFound,
    /// The datum does not decode with its schema, by format.
    InvalidAvro,
    InvalidProtobuf,
    InvalidJsonSchema,
    /// A message on a debezium projection's topic that is not a change event.
    NotAChangeEvent,
    /// A template projection's change names a table that cannot be written (missing, not
    /// matching the projection, one of tributary's own; redrivable once it is there).
    ProjectionNoTable,
}

impl Reason {
    /// The code `dead_letters.reason` stores.
    pub fn code(self) -> &'static str {
        match self {
            Reason::EmptyPayload => "empty_payload",
            Reason::Oversize => "oversize",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::InvalidJson => "invalid_json",
            Reason::TooDeep => "too_deep",
            Reason::NotAnObject => "not_an_object",
            Reason::NulCharacter => "nul_character",
            Reason::MissingAttribute => "missing_attribute",
            Reason::InvalidAttribute => "invalid_attribute",
            Reason::UnsupportedSpecversion => "unsupported_specversion",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::NotCloudevent => "not_cloudevent",
            Reason::UnreadableHeaders => "unreadable_headers",
            Reason::DatabaseRejected => "database_rejected",
            Reason::ProjectionType => "projection_type",
            Reason::ProjectionMissing => "projection_missing",
            Reason::Unrouted => "unrouted",
            Reason::NotFramed => "not_framed",
            Reason::SchemaNotFound => "schema_not_found",
            Reason::InvalidAvro => "invalid_avro",
            Reason::InvalidProtobuf => "invalid_protobuf",
            Reason::InvalidJsonSchema => "invalid_json_schema",
            Reason::NotAChangeEvent => "not_a_change_event",
            Reason::ProjectionNoTable => "projection_no_table",
        }
    }
}

/// A row for the `dead_letters` table: the message kept whole, and why it was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// All Kafka headers as a JSON object (text).
    pub headers: String,
    /// Why: stored as its code, e.g. `invalid_json`.
    pub reason: Reason,
    /// Human explanation.
    pub detail: String,
    /// SQLSTATE when the database refused the row (bisected out of a batch).
    pub sqlstate: Option<String>,
    pub kafka_timestamp: Option<DateTime<Utc>>,
    /// The projection (index in the plan) that refused the message, if one did (for metrics;
    /// the detail names it).
    pub projection: Option<u16>,
}

/// A refusal: the reason code and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// Kafka timestamps are milliseconds since the epoch; out-of-range values are dropped, not fatal.
pub(crate) fn millis_to_utc(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_text_keeps_slices_of_the_record_by_position_and_copies_the_rest() {
        let record =
            RawMessage::new(3, None, Some(b"k"), Some(br#"{"id":"a-1","data":{"x":1}}"#), [(&b"ct"[..], Some(&b"text/plain"[..]))]);
        let payload = std::str::from_utf8(record.payload().unwrap()).unwrap();
        let header = std::str::from_utf8(record.headers().next().unwrap().1.unwrap()).unwrap();
        let text = RowTextBuilder::new(&record, 16)
            .push(Some(&payload[7..10]))
            .push(Some("copied"))
            .push(None)
            .push(Some(""))
            .push(Some(header))
            .push(Some(&payload[19..26]))
            .push_with(|out| out.extend_from_slice(b"{}"))
            .finish();
        let get = |c| text.get(&record, c);
        assert_eq!(get(Col::EventId), Some("a-1"));
        assert_eq!(get(Col::Source), Some("copied"));
        assert_eq!(get(Col::EventType), None);
        assert_eq!(get(Col::Subject), Some(""));
        assert_eq!(get(Col::DataContentType), Some("text/plain"));
        assert_eq!(get(Col::Data), Some(r#"{"x":1}"#));
        assert_eq!(get(Col::Headers), Some("{}"));
        assert_eq!(text.own_len(), "copied".len() + 2, "only what is not in the record is copied");
        // Moved or cloned, the record keeps its bytes: positions stay right.
        let (moved, text2) = (record.clone(), text.clone());
        drop(record);
        assert_eq!(text2.get(&moved, Col::Data), Some(r#"{"x":1}"#));
    }
}
