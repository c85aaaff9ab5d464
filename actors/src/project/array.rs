//! PostgreSQL array columns: a JSON array becomes the array's text form (`{1,2}`, nested arrays
//! as dimensions), each element coerced to the element type first, so a bad element is a
//! `projection_type` dead letter naming it rather than the server's refusal of the whole text.

use serde_json::value::RawValue;

use super::coerce::{coerce, not, CoerceError, Raw, Val};
use super::{Cell, SqlType};

/// PostgreSQL's limit on an array's dimensions.
const MAX_DIMENSIONS: usize = 6;

/// The array text of `v` for an array of `element`s: a JSON array converted, text passed as is
/// (PostgreSQL reads its own `{...}` form).
pub(super) fn literal(v: &Val<'_>, element: SqlType) -> Result<String, CoerceError> {
    match v {
        Val::Compound(c) if c.starts_with('[') => {
            let mut out = String::with_capacity(c.len() + 2);
            let mut dims = Vec::new();
            array(c, element, 0, &mut dims, &mut out)?;
            Ok(out)
        }
        Val::Str(s) => Ok(s.to_string()),
        Val::Text(s) => Ok(s.to_string()),
        other => Err(not(other, "an array")),
    }
}

/// Appends the array `text` at `depth`; `dims` holds each depth's length, the first array met
/// at a depth setting it for the others (PostgreSQL's arrays are rectangular).
fn array(text: &str, element: SqlType, depth: usize, dims: &mut Vec<usize>, out: &mut String) -> Result<(), CoerceError> {
    if depth == MAX_DIMENSIONS {
        return Err(format!("it has more than {MAX_DIMENSIONS} dimensions"));
    }
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| "the array is not JSON".to_string())?;
    match dims.get(depth) {
        None => dims.push(items.len()),
        Some(&n) if n != items.len() => return Err("its nested arrays differ in length, and a PostgreSQL array is rectangular".into()),
        Some(_) => {}
    }
    let nested = items.first().is_some_and(|i| i.get().starts_with('['));
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let t = item.get();
        match (nested, t.starts_with('[')) {
            (true, true) => array(t, element, depth + 1, dims, out)?,
            (false, false) => scalar(t, element, out)?,
            _ => return Err("it mixes arrays and values at one level, and a PostgreSQL array is rectangular".into()),
        }
    }
    out.push('}');
    Ok(())
}

fn scalar(text: &str, element: SqlType, out: &mut String) -> Result<(), CoerceError> {
    if text.starts_with('{') && !matches!(element, SqlType::Json | SqlType::Jsonb) {
        return Err(format!("an element is an object, and the array's elements are {}", element.name()));
    }
    let cell = coerce(&Raw::Json(text.into()), element).map_err(|e| format!("an element: {e}: {text}"))?;
    let s = match &cell {
        Cell::Null => {
            out.push_str("NULL");
            return Ok(());
        }
        Cell::Bytes(b) => b.iter().fold(String::from("\\x"), |mut s, x| {
            s.push_str(&format!("{x:02x}"));
            s
        }),
        other => other.to_text().unwrap_or_default().into_owned(),
    };
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(json: &str, element: SqlType) -> Result<String, CoerceError> {
        coerce(&Raw::Json(json.into()), super::super::coerce::Target { ty: SqlType::Text, unit: None, element: Some(element) })
            .map(|c| c.to_text().unwrap().into_owned())
    }

    #[test]
    fn a_json_array_becomes_postgres_array_text() {
        assert_eq!(lit(r#"["a", "b\"c", null, "x,y"]"#, SqlType::Text).unwrap(), r#"{"a","b\"c",NULL,"x,y"}"#);
        assert_eq!(lit("[[1, 2], [3, 4]]", SqlType::BigInt).unwrap(), r#"{{"1","2"},{"3","4"}}"#);
        assert_eq!(lit("[]", SqlType::Integer).unwrap(), "{}");
        assert_eq!(lit(r#"[{"a": 1}]"#, SqlType::Jsonb).unwrap(), r#"{"{\"a\":1}"}"#);
        assert_eq!(lit(r#""{1,2}""#, SqlType::Integer).unwrap(), "{1,2}", "PostgreSQL's own text passes");
        assert!(lit("[[1, 2], [3]]", SqlType::BigInt).unwrap_err().contains("rectangular"));
        assert!(lit("[[1], 2]", SqlType::BigInt).unwrap_err().contains("rectangular"));
        assert!(lit("[1.5]", SqlType::Integer).unwrap_err().contains("fraction"));
        assert!(lit(r#"[{"a": 1}]"#, SqlType::Text).unwrap_err().contains("object"));
        assert!(lit("[[[[[[[1]]]]]]]", SqlType::Integer).unwrap_err().contains("dimensions"));
        assert!(lit("7", SqlType::Integer).unwrap_err().contains("not an array"));
    }
}
