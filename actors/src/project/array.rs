//! PostgreSQL array columns: a JSON array becomes the array's text form (`{1,2}`, nested arrays
//! as dimensions), each element coerced to the element type first (by the caller's `element`),
//! so a bad element is a `projection_type` dead letter naming it rather than the server's refusal
//! of the whole text.

use serde_json::value::RawValue;

/// PostgreSQL's limit on an array's dimensions.
const MAX_DIMENSIONS: usize = 6;

/// An element's text as the element type's input reads it (`None`: NULL), or why it is refused.
pub(super) type Element<'e> = &'e dyn Fn(&str) -> Result<Option<String>, String>;

/// The array text of the JSON array `text`; `objects`: whether an element may be an object (the
/// elements are JSON).
pub(super) fn literal(text: &str, objects: bool, element: Element<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 2);
    let mut dims = Vec::new();
    array(text, objects, element, 0, &mut dims, &mut out)?;
    Ok(out)
}

/// Appends the array `text` at `depth`; `dims` holds each depth's length, the first array met
/// at a depth setting it for the others (PostgreSQL's arrays are rectangular).
fn array(text: &str, objects: bool, element: Element<'_>, depth: usize, dims: &mut Vec<usize>, out: &mut String) -> Result<(), String> {
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
            (true, true) => array(t, objects, element, depth + 1, dims, out)?,
            (false, false) => scalar(t, objects, element, out)?,
            _ => return Err("it mixes arrays and values at one level, and a PostgreSQL array is rectangular".into()),
        }
    }
    out.push('}');
    Ok(())
}

fn scalar(text: &str, objects: bool, element: Element<'_>, out: &mut String) -> Result<(), String> {
    if text.starts_with('{') && !objects {
        return Err("an element is an object, and the array's elements are not JSON".to_string());
    }
    let Some(s) = element(text)? else {
        out.push_str("NULL");
        return Ok(());
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
