//! Where a projected column's value comes from, and reading it off a parsed row.

use std::borrow::Cow;

use serde_json::Value;

use super::coerce::Raw;
use crate::messages::{EventRow, RawMessage};

/// A column's source (the configuration's `from`, or `value`).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A JSON pointer into the event's data (`/` or empty: the whole of it).
    Data(String),
    /// A CloudEvents attribute: `id`, `source`, `type`, `subject`, `time`, `datacontenttype`, or
    /// any other (extensions, `dataschema`), which the row keeps as `ce_<name>` in its headers.
    Attribute(String),
    KafkaTopic,
    KafkaPartition,
    KafkaOffset,
    KafkaTimestamp,
    KafkaKey,
    /// A JSON pointer into a Kafka key that is JSON.
    KeyPointer(String),
    Header(String),
    Constant(Value),
}

impl Source {
    /// Parse a `from` string; the error says what forms there are.
    pub fn parse(from: &str) -> Result<Source, String> {
        let from = from.trim();
        let pointer = |p: &str| -> Result<String, String> {
            if p.is_empty() || p.starts_with('/') {
                Ok(if p == "/" { String::new() } else { p.to_string() })
            } else {
                Err(format!("{p:?} is not a JSON pointer (RFC 6901: \"/field/0/name\"; \"/\" is the whole value)"))
            }
        };
        Ok(match from {
            "kafka.topic" => Source::KafkaTopic,
            "kafka.partition" => Source::KafkaPartition,
            "kafka.offset" => Source::KafkaOffset,
            "kafka.timestamp" => Source::KafkaTimestamp,
            "kafka.key" => Source::KafkaKey,
            _ if from.starts_with("kafka.") => {
                return Err(format!("{from:?}: kafka.* is one of kafka.topic, kafka.partition, kafka.offset, kafka.timestamp, kafka.key"))
            }
            _ if from.starts_with("key:") => Source::KeyPointer(pointer(&from[4..])?),
            _ if from.starts_with("ce.") && from.len() > 3 => Source::Attribute(from[3..].to_string()),
            _ if from.starts_with("header.") && from.len() > 7 => Source::Header(from[7..].to_string()),
            _ if from.starts_with('/') || from.is_empty() => Source::Data(pointer(from)?),
            _ => return Err(not_a_source(from)),
        })
    }

    /// Whether the value comes from the Kafka key (what a tombstone has).
    pub fn from_key(&self) -> bool {
        matches!(self, Source::KafkaKey | Source::KeyPointer(_))
    }
}

fn not_a_source(from: &str) -> String {
    format!(
        "{from:?} is not a source: use a JSON pointer (\"/status\"), ce.<attribute>, kafka.topic|partition|offset|timestamp|key, \
         key:/pointer, header.<name>, or {{ value = ... }}"
    )
}

/// What one message offers its sources; parsed JSON (data, key, headers) is parsed once, on
/// first use.
pub struct Input<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub record: &'a RawMessage,
    /// `None` for a tombstone.
    pub row: Option<&'a EventRow>,
    data: Option<Option<Value>>,
    key: Option<Option<Value>>,
    headers: Option<Option<Value>>,
}

impl<'a> Input<'a> {
    pub fn new(topic: &'a str, partition: i32, record: &'a RawMessage, row: Option<&'a EventRow>) -> Self {
        Self { topic, partition, record, row, data: None, key: None, headers: None }
    }

    /// The value of `source`, or `None` when the message does not have it (absent).
    pub fn get(&mut self, source: &Source) -> Option<Raw<'_>> {
        let text = |s: Option<&'a str>| s.map(|s| Raw::Text(Cow::Borrowed(s)));
        match source {
            Source::Constant(v) => Some(Raw::Json(Cow::Owned(v.clone()))),
            Source::KafkaTopic => Some(Raw::Text(Cow::Borrowed(self.topic))),
            Source::KafkaPartition => Some(Raw::Int(self.partition.into())),
            Source::KafkaOffset => Some(Raw::Int(self.record.offset)),
            Source::KafkaTimestamp => Some(self.record.timestamp_ms.and_then(crate::parse::millis_to_utc).map_or(Raw::Null, Raw::Time)),
            Source::KafkaKey => Some(self.record.key().map_or(Raw::Null, Raw::Bytes)),
            Source::Header(name) => {
                let (_, value) = self.record.headers().filter(|(n, _)| *n == name.as_bytes()).last()?;
                Some(value.map_or(Raw::Null, Raw::Bytes))
            }
            Source::KeyPointer(p) => {
                let record = self.record;
                let key = self.key.get_or_insert_with(|| record.key().and_then(|k| serde_json::from_slice(k).ok()));
                key.as_ref()?.pointer(p).map(|v| Raw::Json(Cow::Borrowed(v)))
            }
            Source::Data(p) => {
                let row = self.row?;
                let data = self.data.get_or_insert_with(|| row.data().and_then(|d| serde_json::from_str(d).ok()));
                data.as_ref()?.pointer(p).map(|v| Raw::Json(Cow::Borrowed(v)))
            }
            Source::Attribute(name) => {
                let row = self.row?;
                match name.as_str() {
                    "id" => text(row.event_id()),
                    "source" => text(row.source()),
                    "type" => text(row.event_type()),
                    "subject" => text(row.subject()),
                    "datacontenttype" => text(row.datacontenttype()),
                    "time" => row.time.map(Raw::Time),
                    other => {
                        let headers = self.headers.get_or_insert_with(|| serde_json::from_str(row.headers()).ok());
                        let v = headers.as_ref()?.as_object()?.iter().find(|(k, _)| {
                            k.len() == other.len() + 3 && k[..3].eq_ignore_ascii_case("ce_") && k[3..].eq_ignore_ascii_case(other)
                        });
                        v.map(|(_, v)| Raw::Json(Cow::Borrowed(v)))
                    }
                }
            }
        }
    }
}
