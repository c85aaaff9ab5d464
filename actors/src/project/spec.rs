//! The `[events]` and `[[projection]]` tables as configured (serde), before any check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::instant::Unit;

/// `[events]`: the generic archive, and what happens to a message no projection takes without it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSpec {
    pub enabled: bool,
    pub unrouted: Unrouted,
}

impl Default for EventsSpec {
    fn default() -> Self {
        Self { enabled: true, unrouted: Unrouted::Skip }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unrouted {
    /// Counted (`tributary_unrouted_total`) and passed over.
    #[default]
    Skip,
    /// A dead letter with reason `unrouted`.
    DeadLetter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A new row; a key that exists is refused by the table.
    #[default]
    Insert,
    /// Insert, or change the row of the key.
    Upsert,
    /// Change the row of the key if there is one, else nothing.
    Update,
}

/// One `[[projection]]` as configured.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSpec {
    pub name: String,
    pub table: String,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
    /// `None`: `insert`, or `upsert` with `envelope = "debezium"`.
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub key: Vec<String>,
    #[serde(default)]
    pub newer_wins: Option<String>,
    #[serde(default)]
    pub delete_types: Vec<String>,
    #[serde(default)]
    pub delete_on_tombstone: bool,
    #[serde(default)]
    pub create_table: bool,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// What a message is: the event itself, or a change event wrapping row images.
    #[serde(default)]
    pub envelope: Envelope,
    /// With `envelope = "debezium"` and `columns`: the row image's fields map to the table's
    /// columns of the same name too, the listed columns adding to or overriding them.
    #[serde(default)]
    pub map_all_fields: bool,
    /// With `envelope = "debezium"`: apply a truncate (op `t`) by deleting every row.
    #[serde(default)]
    pub truncate: bool,
    #[serde(default)]
    pub schema_evolution: SchemaEvolution,
    /// Debezium's `unavailable.value.placeholder`: a value left out of the change (PostgreSQL's
    /// TOASTed columns), so the column keeps what it holds.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
}

/// Debezium's default `unavailable.value.placeholder`.
pub(crate) const DEFAULT_PLACEHOLDER: &str = "__debezium_unavailable_value";

fn default_placeholder() -> String {
    DEFAULT_PLACEHOLDER.to_string()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// The message is the event (today's behaviour).
    #[default]
    None,
    /// A Debezium change event: `op`, `before`, `after`, `source`, `ts_ms`.
    Debezium,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    #[default]
    None,
    /// A field the table lacks becomes a new nullable column.
    AddColumns,
}

/// `column = "source"` or `column = { from = "source", type = "...", required = bool }` or
/// `column = { value = ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    From(String),
    Full(FullColumn),
}

impl ColumnSpec {
    /// The source it reads (`None`: a constant).
    pub(crate) fn from(&self) -> Option<&str> {
        match self {
            ColumnSpec::From(f) => Some(f),
            ColumnSpec::Full(f) => f.from.as_deref(),
        }
    }
}

/// By hand, not `untagged`: a table's own error (`unknown field "form", expected one of from,
/// value, type, required`) reaches the user instead of "did not match any variant".
impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Spec;
        impl<'de> serde::de::Visitor<'de> for Spec {
            type Value = ColumnSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a source such as \"/status\", or a table such as { from = \"/amount\", type = \"bigint\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ColumnSpec, E> {
                Ok(ColumnSpec::From(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ColumnSpec, A::Error> {
                FullColumn::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ColumnSpec::Full)
            }
        }
        d.deserialize_any(Spec)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FullColumn {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// What an epoch number counts, for a time column.
    #[serde(default)]
    pub unit: Option<Unit>,
    /// The scale of a decimal sent as base64 bytes of its unscaled value (Kafka Connect's
    /// `Decimal` without a schema); a `numeric` column only.
    #[serde(default)]
    pub scale: Option<u32>,
}

/// A projection that cannot work: which one, which key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("projection {projection:?}: {key}: {problem}. Fix: {fix}")]
pub struct SpecError {
    pub projection: String,
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl SpecError {
    pub fn new(projection: &str, key: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { projection: projection.to_string(), key: key.to_string(), problem: problem.into(), fix: fix.into() }
    }
}
