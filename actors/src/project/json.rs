//! A JSON value as the text a message carries it in, read without building a tree: a number
//! stays its exact text (a `serde_json::Value` would hold it as an `f64`), an object or array its
//! own text without the blanks.

use std::borrow::Cow;

/// One JSON value, seen by what it is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    /// The number's text, every digit as sent.
    Number(&'a str),
    Str(Cow<'a, str>),
    /// An object or an array: its text.
    Compound(&'a str),
}

/// What the JSON `text` is (the parser checked it is JSON); `None` if it is not.
pub(super) fn view(text: &str) -> Option<Json<'_>> {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    // A raw value out of the parser has no blanks around it: trimmed only if it does.
    let t = if text.as_bytes().first().is_some_and(blank) || text.as_bytes().last().is_some_and(blank) {
        text.trim_matches([' ', '\t', '\n', '\r'])
    } else {
        text
    };
    Some(match t.as_bytes().first()? {
        b'n' if t == "null" => Json::Null,
        b't' if t == "true" => Json::Bool(true),
        b'f' if t == "false" => Json::Bool(false),
        // Valid JSON without a backslash: the text between the quotes is the string.
        b'"' if t.len() >= 2 && t.ends_with('"') && !t.contains('\\') => Json::Str(Cow::Borrowed(&t[1..t.len() - 1])),
        // Escapes: the string must be built.
        b'"' => Json::Str(Cow::Owned(serde_json::from_str::<String>(t).ok()?)),
        b'{' | b'[' => Json::Compound(t),
        b'-' | b'0'..=b'9' => Json::Number(t),
        _ => return None,
    })
}

/// JSON text without the blanks between tokens (strings and numbers untouched).
pub(super) fn compact(text: &str) -> Cow<'_, str> {
    let t = text.trim_matches([' ', '\t', '\n', '\r']);
    let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut in_string = false;
    let mut escaped = false;
    let mut any = false;
    for b in t.bytes() {
        if in_string {
            (in_string, escaped) = (escaped || b != b'"', !escaped && b == b'\\');
        } else if b == b'"' {
            in_string = true;
        } else if blank(b) {
            any = true;
            break;
        }
    }
    if !any {
        return Cow::Borrowed(t);
    }
    let mut out = String::with_capacity(t.len());
    (in_string, escaped) = (false, false);
    for c in t.chars() {
        if in_string {
            (in_string, escaped) = (escaped || c != '"', !escaped && c == '\\');
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii() && blank(c as u8) {
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Whether valid JSON text holds a `\u0000` escape (a NUL once parsed): outside strings JSON has
/// no backslash, and inside one an escape's backslash follows an even run of them.
pub(super) fn has_nul_escape(json: &str) -> bool {
    json.match_indices("\\u0000").any(|(at, _)| json[..at].bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_seen_by_its_text() {
        assert_eq!(view(" 12345678901234567890123 "), Some(Json::Number("12345678901234567890123")));
        assert_eq!(view(r#""a\"b""#), Some(Json::Str(Cow::Owned("a\"b".into()))));
        assert_eq!(view(r#""ab""#), Some(Json::Str(Cow::Borrowed("ab"))));
        assert_eq!(view("null"), Some(Json::Null));
        assert_eq!(view("[1]"), Some(Json::Compound("[1]")));
        assert_eq!(view("nope"), None);
    }

    #[test]
    fn a_nul_escape_is_told_from_an_escaped_backslash() {
        assert!(has_nul_escape(r#"{"a": "x\u0000"}"#));
        assert!(has_nul_escape(r#"["\\\u0000"]"#), "an escaped backslash, then the escape");
        assert!(!has_nul_escape(r#"["\\u0000"]"#), "an escaped backslash, then text");
        assert!(!has_nul_escape(r#"{"a": "u0000"}"#));
    }

    #[test]
    fn compact_drops_only_the_blanks_between_tokens() {
        assert_eq!(compact(r#"{ "a b" : [1e400, "x \" y" ,true ] }"#), r#"{"a b":[1e400,"x \" y",true]}"#);
        assert_eq!(compact(r#"{"a\\": " "}"#), r#"{"a\\":" "}"#);
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
    }
}
