//! The column types an Avro change event's schema gives its row image's fields, for the tables
//! tributary makes or widens from it (as `project::row_schema` reads Connect's JSON schema).

use super::schema::{Compiled, Logical, Node};
use crate::project::row_schema::RowSchema;
use crate::project::SqlType;

impl Compiled {
    /// The `after` (else `before`) record's fields and their column types, when the root is a
    /// change event's envelope record.
    pub(crate) fn row_schema(&self) -> Option<RowSchema> {
        let Node::Record(fields, _) = self.nodes.first()? else { return None };
        let image = |name: &str| fields.iter().find(|(n, _)| n == &format!("\"{name}\"")).map(|(_, node)| *node);
        let record = self.non_null(image("after").or_else(|| image("before"))?);
        let Node::Record(row, _) = &self.nodes[record] else { return None };
        let fields = row
            .iter()
            .filter_map(|(name, node)| Some((serde_json::from_str::<String>(name).ok()?, self.column_type(self.non_null(*node)))))
            .collect();
        Some(RowSchema { fields })
    }

    /// A union of null and one type: that type (an optional field's).
    fn non_null(&self, node: usize) -> usize {
        match &self.nodes[node] {
            Node::Union(branches) => {
                let mut others = branches.iter().filter(|&&b| self.nodes[b] != Node::Null);
                match (others.next(), others.next()) {
                    (Some(&only), None) => only,
                    _ => node,
                }
            }
            _ => node,
        }
    }

    fn column_type(&self, node: usize) -> SqlType {
        match &self.nodes[node] {
            Node::Boolean => SqlType::Boolean,
            Node::Int(Logical::Date) => SqlType::Date,
            Node::Int(Logical::Plain) => SqlType::Integer,
            Node::Long(Logical::Plain) => SqlType::BigInt,
            Node::Int(l) | Node::Long(l) if is_timestamp(*l) => SqlType::Timestamp,
            // A time of day (no time type is written), or a logical type read as its number.
            Node::Int(_) | Node::Long(_) => SqlType::Text,
            Node::Float => SqlType::Real,
            Node::Double => SqlType::Double,
            Node::Bytes(Logical::Decimal { .. }) | Node::Fixed(_, Logical::Decimal { .. }) => SqlType::Numeric,
            Node::Record(_, Logical::VariableScaleDecimal) => SqlType::Numeric,
            Node::Bytes(_) | Node::Fixed(..) => SqlType::Bytea,
            Node::JsonText | Node::Record(..) | Node::Array(_) | Node::Map(_) | Node::Union(_) => SqlType::Jsonb,
            Node::String | Node::Enum(_) | Node::Null => SqlType::Text,
        }
    }
}

fn is_timestamp(l: Logical) -> bool {
    use Logical::*;
    matches!(l, TimestampMillis | TimestampMicros | TimestampNanos | LocalTimestampMillis | LocalTimestampMicros | LocalTimestampNanos)
}

#[cfg(test)]
mod tests {
    use super::super::compile;
    use crate::project::SqlType;

    #[test]
    fn an_envelopes_row_record_gives_each_field_its_column_type() {
        let row = r#"{"type": "record", "name": "Value", "fields": [
            {"name": "id", "type": "int"},
            {"name": "name", "type": ["null", "string"]},
            {"name": "price", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}]},
            {"name": "made", "type": ["null", {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}]},
            {"name": "since", "type": ["null", {"type": "int", "connect.name": "io.debezium.time.Date"}]},
            {"name": "at", "type": ["null", {"type": "long", "connect.name": "io.debezium.time.MicroTime"}]},
            {"name": "doc", "type": ["null", {"type": "string", "connect.name": "io.debezium.data.Json"}]},
            {"name": "n", "type": "long"}, {"name": "ok", "type": "boolean"}, {"name": "raw", "type": "bytes"},
            {"name": "tags", "type": {"type": "array", "items": "string"}}]}"#;
        let envelope = format!(
            r#"{{"type": "record", "name": "Envelope", "namespace": "db.public.t", "fields": [
                {{"name": "before", "type": ["null", {row}]}}, {{"name": "after", "type": ["null", "Value"]}},
                {{"name": "op", "type": "string"}}]}}"#
        );
        let got = compile(&envelope, &[]).unwrap().row_schema().unwrap().fields;
        let want = [
            ("id", SqlType::Integer),
            ("name", SqlType::Text),
            ("price", SqlType::Numeric),
            ("made", SqlType::Timestamp),
            ("since", SqlType::Date),
            ("at", SqlType::Text),
            ("doc", SqlType::Jsonb),
            ("n", SqlType::BigInt),
            ("ok", SqlType::Boolean),
            ("raw", SqlType::Bytea),
            ("tags", SqlType::Jsonb),
        ];
        assert_eq!(got, want.map(|(n, t)| (n.to_string(), t)).to_vec());
        assert_eq!(compile(r#"{"type": "string"}"#, &[]).unwrap().row_schema(), None, "not an envelope");
    }
}
