//! JSON as the decoders read it: an object's top-level members as borrowed raw values (no tree),
//! the depth and NUL-escape scan, a syntax check without building anything.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::records::{Reason, Refusal};

/// A JSON object's top-level members as borrowed raw values, in their order; of a repeated name
/// the last counts, as in serde's maps. A vector rather than a hash map: events have about ten
/// members, and hashing each name (SipHash) and growing a table costs more than a scan.
/// The parser looks up a fixed handful of names, so a long object costs linear time, not more.
pub(super) struct Object<'a>(Vec<(Text<'a>, &'a RawValue)>);

impl<'a> Object<'a> {
    pub(super) fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k.0 == name).map(|(_, v)| *v)
    }

    pub(super) fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The members whose names `keep` accepts, sorted by name, each name once (its last value).
    pub(super) fn sorted_members(&self, keep: impl Fn(&str) -> bool) -> Vec<(&str, &'a RawValue)> {
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

/// An object's top-level members as byte ranges of its text: each name (inside its quotes) and
/// value, in order. What the parser found, kept for a later reader of the same text.
pub(crate) type Spans = Vec<(Range<usize>, Range<usize>)>;

impl Object<'_> {
    /// The members as ranges of `text`, the text this object was read from; `None` when a name
    /// has escapes (it is not a slice of the text).
    pub(super) fn spans(&self, text: &str) -> Option<Spans> {
        let base = text.as_ptr() as usize;
        let at = |s: &str| {
            let start = (s.as_ptr() as usize).checked_sub(base)?;
            let end = start + s.len();
            (end <= text.len()).then_some(start..end)
        };
        self.0.iter().map(|(k, v)| if let Cow::Borrowed(name) = k.0 { Some((at(name)?, at(v.get())?)) } else { None }).collect()
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
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

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

pub(super) fn invalid_json(e: serde_json::Error) -> Refusal {
    if e.to_string().contains("recursion limit") {
        Refusal::new(Reason::TooDeep, "JSON nests deeper than serde_json's limit of 128")
    } else {
        Refusal::new(Reason::InvalidJson, format!("invalid JSON: {e}"))
    }
}

/// Full syntax check without building anything.
pub(super) fn validate_json(text: &str) -> Result<(), Refusal> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ()).map_err(invalid_json)
}

/// Before parsing: container nesting deeper than `max_depth`, and with `refuse_nul` `\u0000`
/// escapes (NUL, which PostgreSQL cannot store in text or jsonb). Syntax is checked by the parser
/// afterwards; this only has to be right for valid JSON. Most texts are cleared without the
/// byte-by-byte scan: at most `max_depth` brackets in all cannot nest deeper, and
/// without the six bytes `\u0000` anywhere there is no NUL escape.
pub(super) fn scan_json(text: &[u8], max_depth: usize, refuse_nul: bool) -> Result<(), Refusal> {
    let brackets = memchr::memchr2_iter(b'{', b'[', text).count();
    let nul_escape = refuse_nul && memchr::memchr_iter(b'\\', text).any(|i| text.get(i + 1..i + 6) == Some(b"u0000".as_slice()));
    if brackets <= max_depth && !nul_escape {
        return Ok(());
    }
    scan_json_bytes(text, max_depth, refuse_nul)
}

pub(super) fn scan_json_bytes(text: &[u8], max_depth: usize, refuse_nul: bool) -> Result<(), Refusal> {
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

pub(super) fn check_nul(s: &str, place: &str) -> Result<(), Refusal> {
    if s.contains('\0') {
        Err(Refusal::new(Reason::NulCharacter, format!("{place} contains a NUL character, which PostgreSQL cannot store")))
    } else {
        Ok(())
    }
}

/// What a JSON value is, from its first character.
pub(super) fn kind_of_first(c: char) -> &'static str {
    match c {
        '{' => "an object",
        '[' => "an array",
        '"' => "a string",
        't' | 'f' => "a boolean",
        'n' => "null",
        _ => "a number",
    }
}
