//! Where a projected column's value comes from, and reading it off a parsed row.

use std::borrow::Cow;

use serde::Deserializer as _;
use serde_json::value::RawValue;
#[cfg(test)]
use serde_json::Value;

use super::cdc::{self, Change, Field};
use super::coerce::Raw;
use crate::records::{EventRow, RawMessage};

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
    /// A constant, as its JSON text.
    Constant(String),
    /// A field of a Debezium change event's envelope (`debezium.op`, `debezium.source.lsn`).
    Debezium(Field),
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
            _ if from.starts_with("debezium.") => Source::Debezium(Field::parse(&from[9..])?),
            _ if from.starts_with("ce.") && from.len() > 3 => Source::Attribute(from[3..].to_string()),
            _ if from.starts_with("header.") && from.len() > 7 => Source::Header(from[7..].to_string()),
            _ if from.starts_with('/') || from.is_empty() => Source::Data(pointer(from)?),
            _ => return Err(not_a_source(from)),
        })
    }

    /// Whether the value comes from the Kafka key (what a tombstone has).
    pub fn reads_the_key(&self) -> bool {
        matches!(self, Source::KafkaKey | Source::KeyPointer(_))
    }
}

fn not_a_source(from: &str) -> String {
    format!(
        "{from:?} is not a source: use a JSON pointer (\"/status\"), ce.<attribute>, kafka.topic|partition|offset|timestamp|key, \
         key:/pointer, header.<name>, debezium.<field> (envelope = \"debezium\"), or {{ value = ... }}"
    )
}

/// An object's members, names and values borrowed from its text, in order.
pub(crate) type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// What one message offers its sources. The headers' JSON is parsed once, on first use; the
/// data's top-level members are skimmed once, on first use, and each pointer then skims only the
/// member it starts with (see [`pointer`]).
pub(crate) struct Input<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub record: &'a RawMessage,
    /// `None` for a tombstone.
    pub row: Option<&'a EventRow>,
    headers: Option<Option<Members<'a>>>,
    /// The data's members when it is an object (`None` inside: it is not).
    members: Option<Option<Members<'a>>>,
    /// The key decoded from the registry's wire format (JSON text), read by `key:` pointers.
    key: Option<&'a str>,
    /// A change event's row image: what data pointers read in place of the data, and where
    /// they look next when the image lacks the field (the change's key, or `before`).
    image: Option<(&'a str, Option<&'a str>)>,
    change: Option<&'a Change<'a>>,
}

impl<'a> Input<'a> {
    pub(crate) fn new(topic: &'a str, partition: i32, record: &'a RawMessage, row: Option<&'a EventRow>) -> Self {
        Self { topic, partition, record, row, headers: None, members: None, key: None, image: None, change: None }
    }

    /// An input of the same message whose data pointers read `image` (then `fallback`), and
    /// `debezium.*` sources `change`.
    pub(crate) fn for_change<'b>(&self, change: &'b Change<'b>, image: &'b str, fallback: Option<&'b str>) -> Input<'b>
    where
        'a: 'b,
    {
        Input {
            topic: self.topic,
            partition: self.partition,
            record: self.record,
            row: self.row,
            headers: None,
            members: None,
            key: self.key,
            image: Some((image, fallback)),
            change: Some(change),
        }
    }

    /// A change event whose schema decoded its values: `unit` and `scale` do not apply.
    pub(crate) fn typed(&self) -> bool {
        self.change.is_some_and(|c| c.typed)
    }

    /// The names of the row image's fields (empty: no image, or not an object).
    pub(crate) fn image_fields(&mut self) -> impl Iterator<Item = &str> {
        let members = match self.image {
            Some((image, _)) => self.members.get_or_insert_with(|| members(image)).as_deref(),
            None => None,
        };
        members.unwrap_or_default().iter().map(|(name, _)| name.as_ref())
    }

    /// The key decoded from the registry's wire format, if it was.
    pub(crate) fn decoded_key(&self) -> Option<&'a str> {
        self.key
    }

    pub(crate) fn with_key(self, key: Option<&'a str>) -> Self {
        Self { key, ..self }
    }

    /// The value at data pointer `p`, as its text: its first token looked up in the data's
    /// members (the last of a repeated name, as in the parser), the rest skimmed out of that member.
    fn data(&mut self, p: &str) -> Option<&'a str> {
        if let Some((image, fallback)) = self.image {
            return self.member(image, p).or_else(|| fallback.and_then(|f| pointer_text(f, p)));
        }
        let data = self.row?.data()?;
        self.member(data, p)
    }

    /// [`Input::data`] in `data`, the text whose members `self.members` caches.
    fn member(&mut self, data: &'a str, p: &str) -> Option<&'a str> {
        let Some(tokens) = p.strip_prefix('/') else { return pointer_text(data, p) };
        // An array, or not JSON: no members to look up.
        let Some(members) = self.members.get_or_insert_with(|| members(data)) else { return pointer_text(data, p) };
        let (first, rest) = match tokens.split_once('/') {
            Some((first, rest)) => (first, Some(rest)),
            None => (tokens, None),
        };
        let first = unescape(first);
        let (_, at) = members.iter().rev().find(|(name, _)| *name == first)?;
        descend(at, rest.into_iter().flat_map(|r| r.split('/')))
    }

    /// The value of `source`, or `None` when the message does not have it (absent).
    pub(crate) fn get<'s>(&'s mut self, source: &'s Source) -> Option<Raw<'s>> {
        let text = |s: Option<&'a str>| s.map(|s| Raw::Text(Cow::Borrowed(s)));
        match source {
            Source::Constant(v) => Some(Raw::Json(Cow::Borrowed(v))),
            Source::KafkaTopic => Some(Raw::Text(Cow::Borrowed(self.topic))),
            Source::KafkaPartition => Some(Raw::Int(self.partition.into())),
            Source::KafkaOffset => Some(Raw::Int(self.record.offset)),
            Source::KafkaTimestamp => Some(self.record.timestamp_ms.and_then(crate::records::millis_to_utc).map_or(Raw::Null, Raw::Time)),
            Source::KafkaKey => Some(self.record.key().map_or(Raw::Null, Raw::Bytes)),
            Source::Header(name) => {
                let (_, value) = self.record.headers().filter(|(n, _)| *n == name.as_bytes()).last()?;
                Some(value.map_or(Raw::Null, Raw::Bytes))
            }
            Source::KeyPointer(p) => {
                let key = match self.key {
                    Some(decoded) => decoded,
                    None => std::str::from_utf8(self.record.key()?).ok()?,
                };
                pointer_text(key, p).map(|v| Raw::Json(Cow::Borrowed(v)))
            }
            Source::Data(p) => self.data(p).map(|v| Raw::Json(Cow::Borrowed(v))),
            Source::Debezium(field) => {
                let change = self.change?;
                let json = |s: &'a Option<Cow<'a, str>>| s.as_deref().map(|s| Raw::Json(Cow::Borrowed(s)));
                match field {
                    Field::Op => Some(Raw::Text(Cow::Borrowed(change.op.letter()))),
                    Field::TsMs => json(&change.ts_ms),
                    Field::Source(f) => pointer_text(change.source.as_deref()?, &format!("/{f}")).map(|v| Raw::Json(Cow::Borrowed(v))),
                    Field::Position => cdc::position(change.source.as_deref()?).map(|p| Raw::Text(Cow::Owned(p))),
                }
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
                        let headers = self.headers.get_or_insert_with(|| members(row.headers()));
                        let v = headers.as_ref()?.iter().rev().find(|(k, _)| {
                            k.len() == other.len() + 3
                                && k.is_char_boundary(3)
                                && k[..3].eq_ignore_ascii_case("ce_")
                                && k[3..].eq_ignore_ascii_case(other)
                        });
                        v.map(|(_, v)| Raw::Json(Cow::Borrowed(v.get())))
                    }
                }
            }
        }
    }
}

/// The text of the value at `pointer` (RFC 6901; empty: the whole) in the JSON text `json`;
/// `None` when the pointer names nothing (or the text is not JSON). The members on the way are
/// skimmed as borrowed raw values, so a message costs no tree of everything it carries, and the
/// value is its own text (a number keeps every digit); of a name repeated in an object the last
/// counts, as in the parser.
pub(crate) fn pointer_text<'j>(json: &'j str, pointer: &str) -> Option<&'j str> {
    descend(serde_json::from_str(json).ok()?, pointer.split('/').skip(1))
}

/// The value at `pointer` in `json`, parsed (see [`pointer_text`]).
#[cfg(test)]
pub(crate) fn pointer(json: &str, pointer: &str) -> Option<Value> {
    serde_json::from_str(pointer_text(json, pointer)?).ok()
}

/// RFC 6901's escapes: `~1` is `/`, `~0` is `~`.
fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// An object's members as borrowed raw values, in order; `None` when `json` is not an object.
pub(crate) fn members(json: &str) -> Option<Members<'_>> {
    struct All;
    impl<'de> serde::de::Visitor<'de> for All {
        type Value = Members<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
                all.push((name, map.next_value::<&'de RawValue>()?));
            }
            Ok(all)
        }
    }
    serde_json::Deserializer::from_str(json).deserialize_map(All).ok()
}

/// The text of the value `tokens` lead to from `at`.
fn descend<'j, 't>(mut at: &'j RawValue, tokens: impl Iterator<Item = &'t str>) -> Option<&'j str> {
    for token in tokens {
        let token = unescape(token);
        let mut de = serde_json::Deserializer::from_str(at.get());
        at = match at.get().trim_start().as_bytes().first()? {
            b'{' => de.deserialize_map(Member(&token)).ok()??,
            b'[' => {
                // RFC 6901: digits without a leading zero ("0" itself excepted).
                let ok = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) && (token == "0" || !token.starts_with('0'));
                de.deserialize_seq(Element(if ok { token.parse().ok()? } else { return None })).ok()??
            }
            _ => return None,
        };
    }
    Some(at.get())
}

/// A visitor taking one member of an object as a raw value, skipping the others.
struct Member<'t>(&'t str);

impl<'de> serde::de::Visitor<'de> for Member<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            if name == self.0 {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A visitor taking the `n`-th element of an array as a raw value.
struct Element(usize);

impl<'de> serde::de::Visitor<'de> for Element {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut i = 0;
        while found.is_none() {
            if i == self.0 {
                found = seq.next_element::<&'de RawValue>()?;
                if found.is_none() {
                    return Ok(None);
                }
            } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                return Ok(None);
            }
            i += 1;
        }
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(found)
    }
}

/// An object's member name: borrowed from the text unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}
