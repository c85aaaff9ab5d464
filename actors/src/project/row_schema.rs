//! The columns a change event's schema describes, for the tables tributary makes or widens from
//! it (`create_table`, `schema_evolution = "add_columns"`): each row-image field's name and the
//! column type that keeps its decoded value exactly.

use serde_json::Value;

use super::SqlType;

/// A row image's fields and their column types, in the schema's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSchema {
    pub(crate) fields: Vec<(String, SqlType)>,
}

impl RowSchema {
    /// From a Kafka Connect struct schema (the JSON converter's `{"type": "struct", "fields": …}`);
    /// `None` when it is not one.
    pub(crate) fn connect(schema: &Value) -> Option<RowSchema> {
        let fields = schema.get("fields")?.as_array()?;
        let fields = fields.iter().filter_map(|f| Some((f.get("field")?.as_str()?.to_string(), connect_type(f)))).collect();
        Some(RowSchema { fields })
    }
}

/// The column type for a Connect field: its logical type (Connect's and Debezium's names) else
/// its Connect type. Times of day are text (no time type is written); arrays, maps and structs
/// are JSON.
pub(crate) fn connect_type(field: &Value) -> SqlType {
    let name = field.get("name").and_then(Value::as_str).unwrap_or_default();
    let ty = field.get("type").and_then(Value::as_str).unwrap_or_default();
    match name {
        "org.apache.kafka.connect.data.Decimal" | "io.debezium.data.VariableScaleDecimal" => return SqlType::Numeric,
        "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date" => return SqlType::Date,
        "org.apache.kafka.connect.data.Timestamp"
        | "io.debezium.time.Timestamp"
        | "io.debezium.time.MicroTimestamp"
        | "io.debezium.time.NanoTimestamp" => return SqlType::Timestamp,
        "io.debezium.time.ZonedTimestamp" => return SqlType::Timestamptz,
        "io.debezium.data.Json" => return SqlType::Jsonb,
        "io.debezium.data.Uuid" => return SqlType::Uuid,
        "org.apache.kafka.connect.data.Time"
        | "io.debezium.time.Time"
        | "io.debezium.time.MicroTime"
        | "io.debezium.time.NanoTime"
        | "io.debezium.time.ZonedTime" => return SqlType::Text,
        _ => {}
    }
    match ty {
        "int8" | "int16" => SqlType::SmallInt,
        "int32" => SqlType::Integer,
        "int64" => SqlType::BigInt,
        "float32" => SqlType::Real,
        "float64" => SqlType::Double,
        "boolean" => SqlType::Boolean,
        "bytes" => SqlType::Bytea,
        "array" | "map" | "struct" => SqlType::Jsonb,
        _ => SqlType::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_fields_map_to_the_columns_that_keep_their_values() {
        let f = |ty: &str, name: Option<&str>| {
            let mut v = json!({"type": ty, "field": "x"});
            if let Some(n) = name {
                v["name"] = json!(n);
            }
            connect_type(&v)
        };
        assert_eq!(f("int32", None), SqlType::Integer);
        assert_eq!(f("int16", None), SqlType::SmallInt);
        assert_eq!(f("int64", None), SqlType::BigInt);
        assert_eq!(f("float64", None), SqlType::Double);
        assert_eq!(f("boolean", None), SqlType::Boolean);
        assert_eq!(f("string", None), SqlType::Text);
        assert_eq!(f("bytes", None), SqlType::Bytea);
        assert_eq!(f("bytes", Some("org.apache.kafka.connect.data.Decimal")), SqlType::Numeric);
        assert_eq!(f("struct", Some("io.debezium.data.VariableScaleDecimal")), SqlType::Numeric);
        assert_eq!(f("int32", Some("io.debezium.time.Date")), SqlType::Date);
        assert_eq!(f("int64", Some("io.debezium.time.MicroTimestamp")), SqlType::Timestamp);
        assert_eq!(f("string", Some("io.debezium.time.ZonedTimestamp")), SqlType::Timestamptz);
        assert_eq!(f("int64", Some("io.debezium.time.MicroTime")), SqlType::Text, "a time of day is text");
        assert_eq!(f("string", Some("io.debezium.data.Json")), SqlType::Jsonb);
        assert_eq!(f("string", Some("io.debezium.data.Uuid")), SqlType::Uuid);
        assert_eq!(f("array", None), SqlType::Jsonb);
        let s =
            RowSchema::connect(&json!({"type": "struct", "fields": [{"type": "int32", "field": "id"}, {"type": "string", "field": "n"}]}));
        assert_eq!(s.unwrap().fields, vec![("id".to_string(), SqlType::Integer), ("n".to_string(), SqlType::Text)]);
        assert_eq!(RowSchema::connect(&json!({"type": "string"})), None);
    }
}
