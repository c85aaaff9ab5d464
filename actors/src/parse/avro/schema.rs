//! An Avro schema (the registry's JSON text) compiled into a flat list of nodes the decoder walks.
//!
//! Written here rather than taken from `apache-avro`: its `Schema` drops the attributes of a
//! primitive type, and Kafka Connect's and Debezium's logical types live there
//! (`{"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}`).

use std::collections::HashMap;

use serde_json::{Map, Value};

/// What a value of a node means beyond its encoding (the Avro logical types, and Connect's and
/// Debezium's names for the same things).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logical {
    Plain,
    /// Days since 1970-01-01 (`int`).
    Date,
    /// Time of day in milliseconds (`int`), microseconds or nanoseconds (`long`).
    TimeMillis,
    TimeMicros,
    TimeNanos,
    /// Since the epoch, in UTC (`long`).
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    /// Since the epoch, on a wall clock of no zone (`long`).
    LocalTimestampMillis,
    LocalTimestampMicros,
    LocalTimestampNanos,
    /// A two's-complement big-endian unscaled value (`bytes` or `fixed`).
    Decimal {
        scale: u32,
    },
    /// Debezium's `VariableScaleDecimal`: a record of `scale` and `value`.
    VariableScaleDecimal,
    /// Avro's `duration` (`fixed` of 12): months, days, milliseconds.
    Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Null,
    Boolean,
    Int(Logical),
    Long(Logical),
    Float,
    Double,
    Bytes(Logical),
    String,
    /// Debezium's `io.debezium.data.Json`: a string holding a JSON document, written as that
    /// document (as the Connect JSON wrapper's is).
    JsonText,
    /// Field names already written as JSON strings, with their node.
    Record(Vec<(String, usize)>, Logical),
    /// Symbols already written as JSON strings.
    Enum(Vec<String>),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Fixed(usize, Logical),
}

/// A compiled schema: nodes by index, the root first.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(super) nodes: Vec<Node>,
    /// A change event envelope's row image fields and their column types (see `row.rs`).
    pub(crate) row: Option<std::sync::Arc<crate::project::row_schema::RowSchema>>,
}

/// Compile `main`, its named types able to refer to those of `references` (the registry's
/// schema references, each a schema text, compiled first in order).
pub(crate) fn compile(main: &str, references: &[String]) -> Result<Compiled, String> {
    let mut c = Compiler { nodes: vec![Node::Null], names: HashMap::new(), depth: 0 };
    for (i, text) in references.iter().enumerate() {
        let json: Value = serde_json::from_str(text).map_err(|e| format!("reference {i} is not JSON: {e}"))?;
        c.node(&json, "")?;
    }
    let json: Value = serde_json::from_str(main).map_err(|e| format!("the schema is not JSON: {e}"))?;
    let root = c.node(&json, "")?;
    // The root at index 0, so the decoder starts there.
    c.nodes[0] = c.nodes[root].clone();
    let mut compiled = Compiled { nodes: c.nodes, row: None };
    compiled.row = compiled.row_schema().map(std::sync::Arc::new);
    Ok(compiled)
}

/// Deeper than this the schema is refused rather than the stack risked.
const MAX_SCHEMA_DEPTH: usize = 100;

struct Compiler {
    nodes: Vec<Node>,
    /// Named types (records, enums, fixed) by full name.
    names: HashMap<String, usize>,
    depth: usize,
}

impl Compiler {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn node(&mut self, json: &Value, namespace: &str) -> Result<usize, String> {
        self.depth += 1;
        if self.depth > MAX_SCHEMA_DEPTH {
            return Err(format!("the schema nests deeper than {MAX_SCHEMA_DEPTH}"));
        }
        let node = match json {
            Value::String(name) => self.named_or_primitive(name, namespace, &Map::new()),
            Value::Array(branches) => {
                let branches = branches.iter().map(|b| self.node(b, namespace)).collect::<Result<Vec<_>, _>>()?;
                Ok(self.push(Node::Union(branches)))
            }
            Value::Object(o) => self.object(o, namespace),
            other => Err(format!("{other} is not a schema")),
        };
        self.depth -= 1;
        node
    }

    fn named_or_primitive(&mut self, name: &str, namespace: &str, attrs: &Map<String, Value>) -> Result<usize, String> {
        let node = match name {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int(logical(attrs, name)),
            "long" => Node::Long(logical(attrs, name)),
            "float" => Node::Float,
            "double" => Node::Double,
            "bytes" => Node::Bytes(logical(attrs, name)),
            "string" if connect_name(attrs) == Some("io.debezium.data.Json") => Node::JsonText,
            "string" => Node::String,
            _ => {
                let full = full_name(name, None, namespace);
                return self
                    .names
                    .get(&full)
                    .or_else(|| self.names.get(name))
                    .copied()
                    .ok_or_else(|| format!("type {full:?} is not defined before its use"));
            }
        };
        Ok(self.push(node))
    }

    fn object(&mut self, o: &Map<String, Value>, namespace: &str) -> Result<usize, String> {
        let ty = o.get("type").ok_or("a schema object without \"type\"")?;
        let ty = match ty {
            Value::String(t) => t.as_str(),
            // `{"type": {...}}` or `{"type": [...]}`: the inner schema.
            nested => return self.node(nested, namespace),
        };
        match ty {
            "record" | "error" => {
                let (full, ns) = self.name_of(o, namespace)?;
                // Registered before its fields, which may refer to it (a recursive type).
                let at = self.push(Node::Null);
                self.names.insert(full.clone(), at);
                let fields = o.get("fields").and_then(Value::as_array).ok_or_else(|| format!("record {full} has no \"fields\" array"))?;
                let mut compiled = Vec::with_capacity(fields.len());
                for f in fields {
                    let name = f.get("name").and_then(Value::as_str).ok_or_else(|| format!("a field of {full} has no name"))?;
                    let ty = f.get("type").ok_or_else(|| format!("field {full}.{name} has no type"))?;
                    compiled.push((json_string(name), self.node(ty, &ns)?));
                }
                let logical = match connect_name(o) {
                    Some("io.debezium.data.VariableScaleDecimal") if is_variable_scale(&compiled, &self.nodes) => {
                        Logical::VariableScaleDecimal
                    }
                    _ => Logical::Plain,
                };
                self.nodes[at] = Node::Record(compiled, logical);
                Ok(at)
            }
            "enum" => {
                let (full, _) = self.name_of(o, namespace)?;
                let symbols = o.get("symbols").and_then(Value::as_array).ok_or_else(|| format!("enum {full} has no \"symbols\" array"))?;
                let symbols =
                    symbols.iter().map(|s| s.as_str().map(json_string).ok_or_else(|| format!("a symbol of {full} is not a string")));
                let node = Node::Enum(symbols.collect::<Result<_, _>>()?);
                let at = self.push(node);
                self.names.insert(full, at);
                Ok(at)
            }
            "fixed" => {
                let (full, _) = self.name_of(o, namespace)?;
                let size = o.get("size").and_then(Value::as_u64).ok_or_else(|| format!("fixed {full} has no \"size\""))?;
                let size = usize::try_from(size).map_err(|_| format!("fixed {full} is too large"))?;
                let logical = match logical(o, "fixed") {
                    Logical::Duration if size != 12 => Logical::Plain,
                    l => l,
                };
                let at = self.push(Node::Fixed(size, logical));
                self.names.insert(full, at);
                Ok(at)
            }
            "array" => {
                let items = o.get("items").ok_or("an array without \"items\"")?;
                let items = self.node(items, namespace)?;
                Ok(self.push(Node::Array(items)))
            }
            "map" => {
                let values = o.get("values").ok_or("a map without \"values\"")?;
                let values = self.node(values, namespace)?;
                Ok(self.push(Node::Map(values)))
            }
            primitive => self.named_or_primitive(primitive, namespace, o),
        }
    }

    /// A named type's full name and the namespace its children inherit.
    fn name_of(&self, o: &Map<String, Value>, namespace: &str) -> Result<(String, String), String> {
        let name = o.get("name").and_then(Value::as_str).ok_or("a named type without \"name\"")?;
        let full = full_name(name, o.get("namespace").and_then(Value::as_str), namespace);
        let ns = full.rsplit_once('.').map_or(String::new(), |(ns, _)| ns.to_string());
        Ok((full, ns))
    }
}

fn full_name(name: &str, namespace: Option<&str>, enclosing: &str) -> String {
    if name.contains('.') {
        return name.to_string();
    }
    match namespace.unwrap_or(enclosing) {
        "" => name.to_string(),
        ns => format!("{ns}.{name}"),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn connect_name(attrs: &Map<String, Value>) -> Option<&str> {
    attrs.get("connect.name").and_then(Value::as_str)
}

/// A Debezium `VariableScaleDecimal` record has an `int` scale and a `bytes` value.
fn is_variable_scale(fields: &[(String, usize)], nodes: &[Node]) -> bool {
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, i)| &nodes[*i]);
    matches!(field("\"scale\""), Some(Node::Int(_))) && matches!(field("\"value\""), Some(Node::Bytes(_)))
}

/// The meaning of a primitive or fixed with these attributes. An unknown or ill-formed logical
/// type reads as its underlying type, as the Avro specification says.
fn logical(attrs: &Map<String, Value>, base: &str) -> Logical {
    let by_logical_type = attrs.get("logicalType").and_then(Value::as_str).and_then(|l| match (l, base) {
        ("date", "int") => Some(Logical::Date),
        ("time-millis", "int") => Some(Logical::TimeMillis),
        ("time-micros", "long") => Some(Logical::TimeMicros),
        ("timestamp-millis", "long") => Some(Logical::TimestampMillis),
        ("timestamp-micros", "long") => Some(Logical::TimestampMicros),
        ("timestamp-nanos", "long") => Some(Logical::TimestampNanos),
        ("local-timestamp-millis", "long") => Some(Logical::LocalTimestampMillis),
        ("local-timestamp-micros", "long") => Some(Logical::LocalTimestampMicros),
        ("local-timestamp-nanos", "long") => Some(Logical::LocalTimestampNanos),
        ("decimal", "bytes" | "fixed") => scale(attrs.get("scale")).map(|scale| Logical::Decimal { scale }),
        ("duration", "fixed") => Some(Logical::Duration),
        _ => None,
    });
    by_logical_type.or_else(|| connect_logical(attrs, base)).unwrap_or(Logical::Plain)
}

/// Kafka Connect's and Debezium's logical types that count in an `int` (`long = false`: days,
/// milliseconds of a day) or a `long`; the Connect JSON wrapper's reader uses them too.
pub(crate) fn connect_int_logical(name: &str, long: bool) -> Option<Logical> {
    Some(match (name, long) {
        ("org.apache.kafka.connect.data.Date" | "io.debezium.time.Date", false) => Logical::Date,
        ("org.apache.kafka.connect.data.Time" | "io.debezium.time.Time", false) => Logical::TimeMillis,
        ("io.debezium.time.MicroTime", true) => Logical::TimeMicros,
        ("io.debezium.time.NanoTime", true) => Logical::TimeNanos,
        ("org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp", true) => Logical::TimestampMillis,
        ("io.debezium.time.MicroTimestamp", true) => Logical::TimestampMicros,
        ("io.debezium.time.NanoTimestamp", true) => Logical::TimestampNanos,
        _ => return None,
    })
}

/// Kafka Connect's and Debezium's logical names (`connect.name`), for schemas written by their
/// Avro converter without an Avro `logicalType`.
fn connect_logical(attrs: &Map<String, Value>, base: &str) -> Option<Logical> {
    let name = connect_name(attrs)?;
    match base {
        "int" => connect_int_logical(name, false),
        "long" => connect_int_logical(name, true),
        "bytes" if name == "org.apache.kafka.connect.data.Decimal" => {
            let params = attrs.get("connect.parameters")?;
            Some(Logical::Decimal { scale: scale(params.get("scale"))? })
        }
        _ => None,
    }
}

/// A decimal's scale: a number, or (Connect's parameters) a numeric string.
fn scale(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|s| u32::try_from(s).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|s| *s <= 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_types_resolve_by_namespace_and_records_may_refer_to_themselves() {
        let c = compile(
            r#"{"type":"record","name":"Node","namespace":"a.b","fields":[
                {"name":"next","type":["null","Node"]},
                {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["X","Y"]}},
                {"name":"again","type":"a.b.Kind"}]}"#,
            &[],
        )
        .unwrap();
        let Node::Record(fields, _) = &c.nodes[0] else { panic!("{:?}", c.nodes[0]) };
        assert_eq!(fields[0].0, "\"next\"");
        let Node::Union(b) = &c.nodes[fields[0].1] else { panic!() };
        assert!(matches!(c.nodes[b[1]], Node::Record(..)), "the recursive branch is the record itself");
        assert_eq!(fields[1].1, fields[2].1, "Kind and a.b.Kind are one type");
    }

    #[test]
    fn logical_types_and_connect_names_are_read_and_bad_ones_fall_back() {
        let one = |s: &str| compile(s, &[]).unwrap().nodes[0].clone();
        assert_eq!(one(r#"{"type":"long","logicalType":"timestamp-micros"}"#), Node::Long(Logical::TimestampMicros));
        assert_eq!(one(r#"{"type":"long","connect.name":"io.debezium.time.MicroTimestamp"}"#), Node::Long(Logical::TimestampMicros));
        assert_eq!(
            one(r#"{"type":"bytes","connect.name":"org.apache.kafka.connect.data.Decimal","connect.parameters":{"scale":"3"}}"#),
            Node::Bytes(Logical::Decimal { scale: 3 })
        );
        assert_eq!(one(r#"{"type":"int","logicalType":"timestamp-micros"}"#), Node::Int(Logical::Plain));
        assert_eq!(one(r#"{"type":"bytes","logicalType":"decimal"}"#), Node::Bytes(Logical::Plain), "no scale: plain bytes");
    }

    #[test]
    fn references_define_names_the_main_schema_uses_and_unknown_names_are_errors() {
        let reference = r#"{"type":"record","name":"Address","namespace":"x","fields":[{"name":"zip","type":"string"}]}"#.to_string();
        let c = compile(r#"{"type":"record","name":"P","fields":[{"name":"a","type":"x.Address"}]}"#, &[reference]).unwrap();
        assert!(matches!(c.nodes[0], Node::Record(..)));
        let e = compile(r#"{"type":"record","name":"P","fields":[{"name":"a","type":"x.Address"}]}"#, &[]).unwrap_err();
        assert!(e.contains("x.Address"), "{e}");
        assert!(compile("[", &[]).is_err());
        let deep = format!("{}\"int\"{}", "[".repeat(120), "]".repeat(120));
        assert!(compile(&deep, &[]).unwrap_err().contains("deeper"));
    }
}
