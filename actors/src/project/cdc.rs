//! Change data capture: what a Debezium change event says, once its envelope is read (by the
//! parser's `parse::cdc`), and the envelope's own fields as column sources (`debezium.*`).

use std::borrow::Cow;

use base64::Engine as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::spec::{ProjectionSpec, SchemaEvolution, SpecError};

/// A change event's `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeOp {
    Create,
    /// A snapshot read.
    Read,
    Update,
    Delete,
    Truncate,
    /// A logical decoding message (PostgreSQL's `pg_logical_emit_message`): no row changes.
    Message,
}

impl ChangeOp {
    pub(crate) fn parse(op: &str) -> Option<ChangeOp> {
        Some(match op {
            "c" => ChangeOp::Create,
            "r" => ChangeOp::Read,
            "u" => ChangeOp::Update,
            "d" => ChangeOp::Delete,
            "t" => ChangeOp::Truncate,
            "m" => ChangeOp::Message,
            _ => return None,
        })
    }

    pub(crate) fn letter(self) -> &'static str {
        match self {
            ChangeOp::Create => "c",
            ChangeOp::Read => "r",
            ChangeOp::Update => "u",
            ChangeOp::Delete => "d",
            ChangeOp::Truncate => "t",
            ChangeOp::Message => "m",
        }
    }
}

/// A change event read: its row images (and key) as JSON text whose logical types are decoded
/// (a date as `"2024-02-29"`, a decimal as an exact string), its source and time as sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change<'a> {
    pub op: ChangeOp,
    pub before: Option<Cow<'a, str>>,
    pub after: Option<Cow<'a, str>>,
    /// The `source` object's text.
    pub source: Option<Cow<'a, str>>,
    /// `ts_ms`'s text.
    pub ts_ms: Option<Cow<'a, str>>,
    /// The Kafka key's fields (the source table's primary key), as a JSON object's text.
    pub key: Option<Cow<'a, str>>,
    /// A schema came with it (Connect's wrapper, or the registry's): its logical types are
    /// decoded already, so a column's `unit` and `scale` do not apply.
    pub typed: bool,
    /// The row image's fields and their column types, when the schema tells them (Connect's
    /// wrapper): what `create_table` and `add_columns` make columns from.
    pub schema: Option<std::sync::Arc<super::row_schema::RowSchema>>,
}

impl Change<'_> {
    /// Owned, to wait in a batch for the writer (a template projection's change).
    pub(crate) fn to_static(&self) -> Change<'static> {
        let own = |t: &Option<Cow<'_, str>>| t.as_deref().map(|t| Cow::Owned(t.to_string()));
        Change {
            op: self.op,
            before: own(&self.before),
            after: own(&self.after),
            source: own(&self.source),
            ts_ms: own(&self.ts_ms),
            key: own(&self.key),
            typed: self.typed,
            schema: self.schema.clone(),
        }
    }
}

/// A message on a change topic that is not a row's change, skipped (counted) by the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The null value Debezium sends after a delete, for log compaction.
    Tombstone,
    /// A truncate, with `truncate = false`.
    Truncate,
    /// A heartbeat, a schema change, transaction metadata or a logical decoding message.
    NotARow,
}

impl Skip {
    pub fn name(self) -> &'static str {
        match self {
            Skip::Tombstone => "tombstone",
            Skip::Truncate => "truncate",
            Skip::NotARow => "not_a_row",
        }
    }
}

/// What a message on a change topic is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event<'a> {
    Change(Change<'a>),
    /// A heartbeat, a schema change or transaction metadata (what, for the docs and tests).
    NotARow(&'static str),
    /// Not a change event: the dead letter's detail.
    Invalid(String),
}

/// An envelope field as a column's source (`debezium.<field>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Op,
    TsMs,
    /// A field of `source` (`debezium.source.lsn`).
    Source(String),
    /// One value that sorts in the source's commit order (see [`position`]).
    Position,
}

impl Field {
    pub fn parse(name: &str) -> Result<Field, String> {
        Ok(match name {
            "op" => Field::Op,
            "ts_ms" => Field::TsMs,
            "position" => Field::Position,
            _ => match name.strip_prefix("source.") {
                Some(f) if !f.is_empty() => Field::Source(f.to_string()),
                _ => {
                    return Err(format!(
                        "\"debezium.{name}\" is not an envelope field: use debezium.op, debezium.ts_ms, debezium.position or \
                         debezium.source.<field> (e.g. debezium.source.lsn)"
                    ))
                }
            },
        })
    }

    pub fn name(&self) -> String {
        match self {
            Field::Op => "debezium.op".into(),
            Field::TsMs => "debezium.ts_ms".into(),
            Field::Position => "debezium.position".into(),
            Field::Source(f) => format!("debezium.source.{f}"),
        }
    }
}

/// What `envelope = "debezium"` cannot be combined with (yet, or at all).
pub(super) fn check_spec(spec: &ProjectionSpec) -> Result<(), SpecError> {
    let err = |key: &str, problem: &str, fix: &str| Err(SpecError::new(&spec.name, key, problem, fix));
    let map_all = spec.columns.is_empty() || spec.map_all_fields;
    if writer_resolved(spec) && spec.columns.values().any(|c| c.from().is_some_and(|f| f.trim().starts_with("ce."))) {
        return err(
            "columns",
            "read CloudEvents attributes (ce.*), which the writer does not keep for a template table or one it creates or widens",
            "map the row image's fields, envelope fields (debezium.*) or kafka.* instead",
        );
    }
    if spec.schema_evolution == SchemaEvolution::AddColumns && !map_all {
        return err(
            "schema_evolution",
            "\"add_columns\" adds columns that only a projection mapping every field fills",
            "leave out [projection.columns], or set map_all_fields = true",
        );
    }
    if spec.create_table && !map_all && spec.table.contains("${") {
        return err(
            "create_table",
            "with a template creates each table from the change events' schema, which needs every field mapped",
            "leave out [projection.columns], or set map_all_fields = true",
        );
    }
    if spec.create_table && !map_all && spec.key.is_empty() {
        return err("create_table", "needs key: the primary key of the table it creates", "set key = [\"id\"] (listed columns)");
    }
    for (key, set) in [
        ("types", !spec.types.is_empty()),
        ("delete_types", !spec.delete_types.is_empty()),
        ("delete_on_tombstone", spec.delete_on_tombstone),
    ] {
        if set {
            return err(key, "does not apply to change events: their op says what to do", "remove it");
        }
    }
    let p = &spec.unavailable_value_placeholder;
    if p.is_empty() || p.strip_prefix("hex:").is_some_and(|h| hex_octets(h).is_none_or(|b| b.is_empty())) {
        return err(
            "unavailable_value_placeholder",
            "is empty, or a hex: form without octets",
            "leave it out (Debezium's default), or set the connector's unavailable.value.placeholder",
        );
    }
    Ok(())
}

/// Whether tables are made from the change events' schema (`create_table` with every field
/// mapped): each one when a change first names it, its columns the schema's fields.
pub(super) fn creates_from_schema(spec: &ProjectionSpec) -> bool {
    spec.envelope == super::Envelope::Debezium && spec.create_table && (spec.columns.is_empty() || spec.map_all_fields)
}

/// Whether the writer finds (and may create or widen) the table as changes reach it, rather
/// than the start-up: a template, `create_table` from the events' schema, `add_columns`.
pub(super) fn writer_resolved(spec: &ProjectionSpec) -> bool {
    spec.envelope == super::Envelope::Debezium
        && (spec.table.contains("${") || creates_from_schema(spec) || spec.schema_evolution == SchemaEvolution::AddColumns)
}

/// The first key set that only a debezium projection takes.
pub(super) fn cdc_only_key(spec: &ProjectionSpec) -> Option<&'static str> {
    [
        ("truncate", spec.truncate),
        ("map_all_fields", spec.map_all_fields),
        ("schema_evolution", spec.schema_evolution != SchemaEvolution::None),
        ("unavailable_value_placeholder", spec.unavailable_value_placeholder != super::spec::DEFAULT_PLACEHOLDER),
    ]
    .into_iter()
    .find_map(|(k, set)| set.then_some(k))
}

/// The JSON texts Debezium writes for a value it does not have (a TOASTed column it was not
/// sent): for any column, the placeholder as a string and an array holding it; for a binary
/// column only, its bytes (the `hex:` form's octets, else its UTF-8) as base64 and as hex, and
/// arrays of those (text that happens to spell them is a value elsewhere).
pub(super) fn placeholders(placeholder: &str) -> Placeholders {
    let bytes = match placeholder.strip_prefix("hex:").and_then(hex_octets) {
        Some(b) => b,
        None => placeholder.as_bytes().to_vec(),
    };
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let forms = |texts: &[String]| -> Vec<String> {
        let strings: Vec<String> = texts.iter().map(|t| serde_json::Value::String(t.clone()).to_string()).collect();
        let arrays: Vec<String> = strings.iter().map(|s| format!("[{s}]")).collect();
        strings.into_iter().chain(arrays).collect()
    };
    Placeholders { text: forms(&[placeholder.to_string()]), bytes: forms(&[base64::engine::general_purpose::STANDARD.encode(&bytes), hex]) }
}

/// Debezium's placeholder's JSON texts: for every column, and for binary columns only.
#[derive(Debug, Clone, Default)]
pub(crate) struct Placeholders {
    pub(crate) text: Vec<String>,
    pub(crate) bytes: Vec<String>,
}

fn hex_octets(h: &str) -> Option<Vec<u8>> {
    (h.len().is_multiple_of(2) && h.is_ascii())
        .then(|| (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok()).collect())
        .flatten()
}

/// Digits of each part of a position: every part of a `u64` fits in 20.
const PART: usize = 20;

/// The change's place in its source's commit order, as digits of a fixed width (40), so it
/// compares alike as a number (a `numeric` column) and as text (SQLite's TEXT); `None` for a
/// connector without one, or a source missing its fields.
///
/// - PostgreSQL: `sequence`'s `[last committed LSN, this change's LSN]`. The LSN alone is not in
///   commit order: a transaction that began writing earlier but committed later has lower
///   LSNs than one that committed before it. The last commit before a transaction orders the
///   transactions, the change's own LSN the changes within one.
/// - MySQL and MariaDB: the binlog file's number, `pos` and `row` (a rows event holds several
///   rows): the binlog is written in commit order.
pub(crate) fn position(source: &str) -> Option<String> {
    /// The fields positions are made of (the others are skipped unread).
    #[derive(Deserialize)]
    struct Source<'a> {
        #[serde(borrow)]
        connector: Option<Cow<'a, str>>,
        #[serde(borrow)]
        lsn: Option<&'a RawValue>,
        /// A string holding a JSON array of two strings (or nulls).
        #[serde(borrow)]
        sequence: Option<Cow<'a, str>>,
        #[serde(borrow)]
        file: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pos: Option<&'a RawValue>,
        #[serde(borrow)]
        row: Option<&'a RawValue>,
    }
    let s: Source<'_> = serde_json::from_str(source).ok()?;
    let number = |v: Option<&RawValue>| -> Option<u64> { v?.get().trim_matches('"').parse().ok() };
    match s.connector.as_deref()? {
        "postgresql" => {
            let lsn = number(s.lsn)?;
            // Without `sequence` the LSN alone would not be in commit order: no position. A null
            // last commit (none yet, as in a first snapshot) orders first.
            let sequence = serde_json::from_str::<Vec<Option<String>>>(&s.sequence?).ok()?;
            let last = match sequence.first()? {
                Some(last) => last.parse::<u64>().ok()?,
                None => 0,
            };
            Some(format!("{last:0PART$}{lsn:0PART$}"))
        }
        "mysql" | "mariadb" => {
            let index: u64 = s.file?.rsplit('.').next()?.parse().ok()?;
            let pos = number(s.pos)?;
            let row = number(s.row).unwrap_or(0);
            // The file's index takes 10 digits (MySQL's run to 6), the row 10 (a u32).
            Some(format!("{index:010}{pos:0PART$}{row:010}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_sort_in_commit_order_as_numbers_and_as_text() {
        let pg = |seq: &str, lsn: u64| {
            position(&format!(r#"{{"connector":"postgresql","lsn":{lsn},"sequence":{}}}"#, serde_json::json!(seq))).unwrap()
        };
        // B committed at 160 before A, which began at 100: A's changes come after B's.
        let b = pg(r#"["90","150"]"#, 150);
        let a = pg(r#"["160","100"]"#, 100);
        assert!(a > b, "{a} > {b}");
        assert_eq!(a.len(), 40);
        assert_eq!(pg(r#"[null,"7"]"#, 7), format!("{:040}", 7));
        let my = |file: &str, pos: u64, row: u64| {
            position(&format!(r#"{{"connector":"mysql","file":"{file}","pos":{pos},"row":{row}}}"#)).unwrap()
        };
        assert!(my("mysql-bin.000003", 154, 1) > my("mysql-bin.000003", 154, 0));
        assert!(my("mysql-bin.000010", 4, 0) > my("mysql-bin.000009", 99_999_999, 5), "files by number, not by name");
        assert_eq!(position(r#"{"connector":"sqlserver","change_lsn":"x"}"#), None);
        assert_eq!(position(r#"{"connector":"postgresql"}"#), None, "no lsn");
        assert_eq!(position(r#"{"connector":"postgresql","lsn":7}"#), None, "no sequence: the LSN alone is not commit order");
    }

    #[test]
    fn placeholders_are_the_text_its_bytes_and_arrays_of_them() {
        let p = placeholders("__debezium_unavailable_value");
        assert_eq!(p.text, ["\"__debezium_unavailable_value\"", "[\"__debezium_unavailable_value\"]"]);
        assert!(p.bytes.contains(&"\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"".to_string()), "{p:?}");
        let h = placeholders("hex:00ff");
        assert!(h.bytes.contains(&"\"AP8=\"".to_string()) && h.bytes.contains(&"\"00ff\"".to_string()), "{h:?}");
        assert!(!h.text.contains(&"\"00ff\"".to_string()), "a text column's \"00ff\" is a value");
    }

    #[test]
    fn envelope_fields_parse_and_name_themselves() {
        for name in ["op", "ts_ms", "position", "source.lsn"] {
            assert_eq!(Field::parse(name).unwrap().name(), format!("debezium.{name}"));
        }
        assert!(Field::parse("source.").is_err());
        assert!(Field::parse("after").unwrap_err().contains("debezium.source.<field>"));
    }
}
