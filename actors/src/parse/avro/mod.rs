//! Avro: a schema from the registry compiled once ([`schema`]), each datum decoded by it to
//! JSON text ([`decode`]). The mapping (docs/formats.md): records → objects, unions → the
//! branch's value, enums → symbols, bytes/fixed → base64, decimals → exact strings, dates,
//! times and timestamps → ISO 8601 / RFC 3339 text with the type's own precision.

mod decode;
mod row;
mod schema;

pub(crate) use decode::decode;
pub(crate) use decode::{decimal, int_value};
pub(crate) use schema::{compile, Compiled};
pub(crate) use schema::{connect_int_logical, Logical};
