//! Projections: messages into the user's own tables — typed columns, upserts, deletes, routing.
//!
//! Pure, no I/O. The configuration's `[[projection]]` tables are [`ProjectionSpec`]s; checked
//! ([`Projection::from_spec`]) and completed with the table's column types by the storage at
//! start, they make the [`Plan`] the parser routes each message with ([`Plan::route`]): every
//! projection a message matches gives one [`Op`] whose cells are already coerced, so a value the
//! table could not take is a dead letter before any SQL. The writer applies the ops
//! (`storage::project`) in the batch's transaction, as if one by one in offset order.

mod array;
pub(crate) mod coerce;
mod decimal;
pub(crate) mod instant;
mod json;
pub(crate) mod source;
mod sql_type;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wildmatch::WildMatch;

use coerce::{coerce, quote, Target};
pub(crate) use coerce::{Cell, KeyForm, SqlType};
use instant::Unit;
use source::{Input, Source};
pub(crate) use sql_type::sqlite_numeric_affinity;

use crate::records::Refusal;
use crate::records::{EventRow, RawMessage, Reason};

/// The detail of an `unrouted` dead letter.
pub(crate) const UNROUTED: &str = "no projection takes the message, and [events] enabled = false keeps no archive";

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
    #[serde(default)]
    pub mode: Mode,
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
}

/// `column = "source"` or `column = { from = "source", type = "...", required = bool }` or
/// `column = { value = ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    From(String),
    Full(FullColumn),
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

/// `table` or `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(s: &str) -> Option<TableName> {
        let (schema, name) = match s.split_once('.') {
            Some((a, b)) => (Some(a.to_string()), b.to_string()),
            None => (None, s.to_string()),
        };
        let ok = |p: &str| !p.is_empty() && !p.contains(['"', '\0', '.']);
        (schema.as_deref().is_none_or(ok) && ok(&name)).then_some(TableName { schema, name })
    }

    /// Quoted for SQL: `"schema"."table"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// An identifier quoted for SQL (both backends): names were checked to hold no `"` or NUL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub source: Source,
    /// The configured `type`, if any.
    pub declared: Option<SqlType>,
    /// What values are coerced to: the declared type, else the table's.
    pub ty: SqlType,
    /// The table's own type without its modifier (PostgreSQL casts each value to it, and the
    /// write to the column applies the modifier); empty before the table was read.
    pub table_type: String,
    /// What tributary makes of the table's type; `None` for one it does not know (an enum, a
    /// domain, an extension's type), or before the table was read.
    pub table_kind: Option<SqlType>,
    /// For a PostgreSQL array column, the type its elements are coerced to.
    pub element: Option<SqlType>,
    pub required: bool,
    /// What an epoch number counts (a time column only).
    pub unit: Option<Unit>,
    /// How the table compares this column's values (a key column's rounds).
    pub key_form: KeyForm,
    /// What NUL the column cannot hold (known once the table is read).
    pub nul: Nul,
}

impl Column {
    /// What values are coerced to.
    pub fn target(&self) -> Target {
        Target { ty: self.ty, unit: self.unit, element: self.element }
    }
}

/// The NUL a column cannot hold, by backend and type: a value holding one is a `nul_character`
/// dead letter before any SQL, as the database would refuse it (or the message) anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Nul {
    /// Anything: SQLite's TEXT (a value is bound with its length, NUL included).
    #[default]
    Holds,
    /// No NUL character: PostgreSQL's text types and `json` (22021); a `\u0000` escape in JSON
    /// text is six characters of text there.
    NoCharacter,
    /// No NUL character and no `\u0000` escape in JSON: PostgreSQL's `jsonb` (22P05), and the
    /// types it casts from text that tributary does not know.
    NoCharacterNorEscape,
}

impl Nul {
    /// PostgreSQL's rule for a column of this kind (`None`: a type tributary does not know).
    pub fn postgres(kind: Option<SqlType>) -> Nul {
        match kind {
            Some(SqlType::Jsonb) | None => Nul::NoCharacterNorEscape,
            Some(_) => Nul::NoCharacter,
        }
    }

    fn refuses(self, cell: &Cell) -> bool {
        match (self, cell) {
            (Nul::Holds, _) => false,
            (_, Cell::Text(s)) => s.contains('\0'),
            (Nul::NoCharacterNorEscape, Cell::Json(j)) => json::has_nul_escape(j),
            _ => false,
        }
    }
}

/// A checked projection.
#[derive(Debug, Clone)]
pub struct Projection {
    pub name: String,
    pub table: TableName,
    topics: Vec<WildMatch>,
    types: Vec<WildMatch>,
    delete_types: Vec<WildMatch>,
    pub mode: Mode,
    /// Positions in `columns`.
    pub key: Vec<usize>,
    pub newer_wins: Option<usize>,
    pub delete_on_tombstone: bool,
    pub create_table: bool,
    pub columns: Vec<Column>,
    pub spec: ProjectionSpec,
    /// The table as the database identifies it (PostgreSQL: its OID), whatever the spelling;
    /// the configured name until the table is read.
    pub table_id: String,
    /// The columns whose values tell a batch's ops apart (the key's, by name), so the k-th op of
    /// a row goes to round k; `None`: projections writing this table name rows by different
    /// columns, so every op of the table is a round of its own, in offset order.
    pub round_key: Option<Vec<usize>>,
}

/// The longest projection name.
pub(crate) const MAX_NAME: usize = 64;

/// A projection name: `[A-Za-z0-9_.-]{1,64}`, safe as a metric label and in a log line as is.
pub(crate) fn is_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    WildMatch::new(pattern).matches(name)
}

fn globs(list: &[String]) -> Vec<WildMatch> {
    list.iter().map(|g| WildMatch::new(g)).collect()
}

impl Projection {
    /// Check a spec on its own (no database): every error names the key and the fix.
    pub fn from_spec(spec: &ProjectionSpec) -> Result<Projection, SpecError> {
        let name = spec.name.as_str();
        if !is_name(name) {
            // The name labels metrics and log lines: a quote or a newline would forge lines in
            // both, so the error itself names it escaped.
            return Err(SpecError::new(
                &name.escape_debug().to_string(),
                "name",
                format!("{name:?} is not a projection name: 1 to {MAX_NAME} of the letters A-Z and a-z, digits, '_', '.' and '-'"),
                "name it with those only, e.g. name = \"orders\" (it labels logs, metrics and dead letters)",
            ));
        }
        let err = |key: &str, problem: String, fix: &str| SpecError::new(name, key, problem, fix);
        let table = TableName::parse(spec.table.trim())
            .ok_or_else(|| err("table", format!("{:?} is not a table name", spec.table), "use table = \"orders\" or \"schema.orders\""))?;
        if spec.columns.is_empty() {
            return Err(err("columns", "maps no column".into(), "add [projection.columns] with column = \"/json/pointer\" lines"));
        }
        let mut columns = Vec::with_capacity(spec.columns.len());
        for (col, cs) in &spec.columns {
            let key = format!("columns.{col}");
            if col.is_empty() || col.contains(['"', '\0']) {
                return Err(err(&key, "is not a column name".into(), "name columns without quotes or NUL"));
            }
            let (source, ty, required, unit) = match cs {
                ColumnSpec::From(from) => {
                    (Source::parse(from).map_err(|p| err(&key, p, "see docs/projections.md#sources"))?, None, false, None)
                }
                ColumnSpec::Full(f) => {
                    let source = match (&f.from, &f.value) {
                        (Some(_), Some(_)) => return Err(err(&key, "has both from and value".into(), "keep one of them")),
                        (None, None) => return Err(err(&key, "has neither from nor value".into(), "add from = \"/field\" or value = ...")),
                        (Some(from), None) => Source::parse(from).map_err(|p| err(&key, p, "see docs/projections.md#sources"))?,
                        (None, Some(v)) => Source::Constant(v.to_string()),
                    };
                    let ty = match &f.ty {
                        None => None,
                        Some(t) => Some(SqlType::parse(t).ok_or_else(|| {
                            err(
                                &format!("{key}.type"),
                                format!("{t:?} is not a type tributary writes"),
                                "use one of text, smallint, integer, bigint, numeric, real, double precision, boolean, timestamptz, \
                                 timestamp, date, uuid, json, jsonb, bytea — or leave type out to use the table's",
                            )
                        })?),
                    };
                    if let (Some(u), Some(t)) = (f.unit, ty) {
                        if !t.is_time() {
                            return Err(err(
                                &format!("{key}.unit"),
                                format!("unit = {:?} counts time, and the column's type is {}", u.name(), t.name()),
                                "remove unit, or declare type = \"timestamptz\", \"timestamp\" or \"date\"",
                            ));
                        }
                    }
                    (source, ty, f.required, f.unit)
                }
            };
            columns.push(Column {
                name: col.clone(),
                source,
                declared: ty,
                ty: ty.unwrap_or(SqlType::Text),
                table_type: String::new(),
                table_kind: None,
                element: None,
                required,
                unit,
                key_form: KeyForm::Text,
                nul: Nul::Holds,
            });
        }
        let position = |key: &str, c: &str| {
            columns.iter().position(|x| x.name == c).ok_or_else(|| {
                err(
                    key,
                    format!("names {c:?}, which is not a mapped column"),
                    &format!("map it under [projection.columns]: {c} = \"/...\""),
                )
            })
        };
        let mut key = Vec::with_capacity(spec.key.len());
        for k in &spec.key {
            let at = position("key", k)?;
            if key.contains(&at) {
                return Err(err("key", format!("names {k:?} twice"), "name each key column once"));
            }
            key.push(at);
        }
        let deletes = !spec.delete_types.is_empty() || spec.delete_on_tombstone;
        if key.is_empty() && (spec.mode != Mode::Insert || deletes) {
            let why = if spec.mode != Mode::Insert { format!("mode = \"{}\"", mode_name(spec.mode)) } else { "deletes".to_string() };
            return Err(err(
                "key",
                format!("is empty, and {why} needs the columns that identify a row"),
                "set key = [\"id\"] (mapped columns)",
            ));
        }
        if spec.delete_on_tombstone {
            if let Some(&c) = key.iter().find(|&&c| !columns[c].source.reads_the_key()) {
                return Err(err(
                    "delete_on_tombstone",
                    format!("a tombstone has only its Kafka key, but key column {:?} comes from elsewhere", columns[c].name),
                    "take every key column from kafka.key or key:/pointer, or set delete_on_tombstone = false",
                ));
            }
        }
        let newer_wins = match &spec.newer_wins {
            None => None,
            Some(c) => {
                if spec.mode == Mode::Insert {
                    return Err(err(
                        "newer_wins",
                        "applies to changes, and mode = \"insert\" changes no row".into(),
                        "use mode = \"upsert\" or \"update\", or remove newer_wins",
                    ));
                }
                let at = position("newer_wins", c)?;
                if key.contains(&at) {
                    return Err(err(
                        "newer_wins",
                        format!("{c:?} is a key column"),
                        "name a version or timestamp column that is not in key",
                    ));
                }
                Some(at)
            }
        };
        if spec.create_table {
            if let Some(c) = columns.iter().find(|c| c.declared.is_none()) {
                return Err(err(
                    &format!("columns.{}", c.name),
                    "has no type, and create_table = true needs one for every column".into(),
                    "add type = \"...\" to the column",
                ));
            }
        }
        let mut round_key = key.clone();
        round_key.sort_by(|&a, &b| columns[a].name.cmp(&columns[b].name));
        Ok(Projection {
            name: name.to_string(),
            table_id: table.to_string(),
            round_key: Some(round_key),
            table,
            topics: globs(&spec.topics),
            types: globs(&spec.types),
            delete_types: globs(&spec.delete_types),
            mode: spec.mode,
            key,
            newer_wins,
            delete_on_tombstone: spec.delete_on_tombstone,
            create_table: spec.create_table,
            columns,
            spec: spec.clone(),
        })
    }

    fn takes_topic(&self, topic: &str) -> bool {
        self.topics.is_empty() || self.topics.iter().any(|g| g.matches(topic))
    }

    /// `Some(delete)` when the projection takes a message of this topic and type.
    fn takes(&self, topic: &str, ty: Option<&str>) -> Option<bool> {
        if !self.takes_topic(topic) {
            return None;
        }
        let matches = |g: &[WildMatch]| ty.is_some_and(|t| g.iter().any(|g| g.matches(t)));
        if matches(&self.delete_types) {
            return Some(true);
        }
        (self.types.is_empty() || matches(&self.types)).then_some(false)
    }

    /// The cells of one op: every column (a change) or the key's (a delete), coerced.
    fn cells(&self, input: &mut Input<'_>, delete: bool) -> Result<Vec<Option<Cell>>, Refusal> {
        let mut cells = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            let is_key = self.key.contains(&i);
            // The version is compared with the row's: a change without one cannot be ordered.
            let is_version = !delete && self.newer_wins == Some(i);
            if delete && !is_key {
                cells.push(None);
                continue;
            }
            let missing = |what: &str| Refusal {
                reason: Reason::ProjectionMissing,
                detail: format!("projection {}: column {}: {what} ({})", self.name, c.name, source_name(&c.source)),
            };
            let cell = match input.get(&c.source) {
                None if is_key => return Err(missing("the key column's value is missing")),
                None if is_version => return Err(missing("the newer_wins column's value is missing")),
                None if c.required => return Err(missing("the required value is missing")),
                None => None,
                Some(raw) => Some(coerce(&raw, c.target()).map_err(|why| Refusal {
                    reason: Reason::ProjectionType,
                    detail: format!("projection {}: column {} ({}): {why}: {}", self.name, c.name, c.ty.name(), quote(&raw)),
                })?),
            };
            if cell.as_ref().is_some_and(|cell| c.nul.refuses(cell)) {
                return Err(Refusal {
                    reason: Reason::NulCharacter,
                    detail: format!(
                        "projection {}: column {} ({}): the value holds a NUL character (\\u0000), which the column cannot store",
                        self.name,
                        c.name,
                        c.ty.name()
                    ),
                });
            }
            if (is_key || is_version) && matches!(cell, Some(Cell::Null)) {
                return Err(missing(if is_key { "the key column's value is null" } else { "the newer_wins column's value is null" }));
            }
            cells.push(cell);
        }
        Ok(cells)
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Insert => "insert",
        Mode::Upsert => "upsert",
        Mode::Update => "update",
    }
}

fn source_name(s: &Source) -> String {
    match s {
        Source::Data(p) if p.is_empty() => "/".into(),
        Source::Data(p) => p.clone(),
        Source::Attribute(a) => format!("ce.{a}"),
        Source::KafkaTopic => "kafka.topic".into(),
        Source::KafkaPartition => "kafka.partition".into(),
        Source::KafkaOffset => "kafka.offset".into(),
        Source::KafkaTimestamp => "kafka.timestamp".into(),
        Source::KafkaKey => "kafka.key".into(),
        Source::KeyPointer(p) => format!("key:{p}"),
        Source::Header(h) => format!("header.{h}"),
        Source::Constant(_) => "value".into(),
    }
}

/// What a projection's statements did to its table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = ProjectionCounts)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Ops that changed nothing: an older version, an `update` or delete of a missing row.
    pub unchanged: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.unchanged += o.unchanged;
    }
}

/// One projection's part of one message: a change (insert, upsert or update, by its mode) or a
/// delete of the key's row. `cells[i]` is column `i`'s value; `None`: absent from the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub projection: u16,
    pub delete: bool,
    pub cells: Vec<Option<Cell>>,
}

impl Op {
    /// Bytes the op holds, its cells' text included.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Op>()
            + self.cells.capacity() * std::mem::size_of::<Option<Cell>>()
            + self.cells.iter().flatten().map(Cell::heap_bytes).sum::<usize>()
    }
}

/// A refused message: the projection it failed in, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteError {
    pub projection: u16,
    pub refusal: Refusal,
}

/// Every projection, checked against its table, and what `[events]` says.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub projections: Vec<Projection>,
    pub events: EventsSpec,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.projections.is_empty()
    }

    /// Whether any projection reads into the key (`key:/pointer`): only then is a framed key
    /// decoded.
    pub(crate) fn reads_key_pointers(&self) -> bool {
        self.projections.iter().any(|p| p.columns.iter().any(|c| matches!(c.source, Source::KeyPointer(_))))
    }

    /// The ops of a parsed message, in projection order (empty: no projection takes it).
    pub fn route(&self, topic: &str, partition: i32, row: &EventRow) -> Result<Vec<Op>, RouteError> {
        self.route_keyed(topic, partition, row, None)
    }

    /// [`Plan::route`], `key:` pointers reading `key` (the record's key decoded from the
    /// registry's wire format, as JSON text) in place of the key's own bytes.
    pub(crate) fn route_keyed(&self, topic: &str, partition: i32, row: &EventRow, key: Option<&str>) -> Result<Vec<Op>, RouteError> {
        let mut input = Input::new(topic, partition, &row.original, Some(row)).with_key(key);
        let ty = row.event_type();
        // Sized to fit: a batch in flight holds one of these per message (a `Vec` grown from
        // empty would hold room for four ops).
        let mut ops = Vec::with_capacity(self.projections.len());
        for (i, p) in self.projections.iter().enumerate() {
            if let Some(delete) = p.takes(topic, ty) {
                let cells = p.cells(&mut input, delete).map_err(|refusal| RouteError { projection: i as u16, refusal })?;
                ops.push(Op { projection: i as u16, delete, cells });
            }
        }
        ops.shrink_to_fit();
        Ok(ops)
    }

    /// The deletes a tombstone (a record whose value is null) makes.
    pub fn route_tombstone(&self, topic: &str, partition: i32, record: &RawMessage) -> Result<Vec<Op>, RouteError> {
        self.route_tombstone_keyed(topic, partition, record, None)
    }

    /// [`Plan::route_tombstone`] with a decoded key, as [`Plan::route_keyed`].
    pub(crate) fn route_tombstone_keyed(
        &self,
        topic: &str,
        partition: i32,
        record: &RawMessage,
        key: Option<&str>,
    ) -> Result<Vec<Op>, RouteError> {
        let mut input = Input::new(topic, partition, record, None).with_key(key);
        let mut ops = Vec::with_capacity(self.projections.len());
        for (i, p) in self.projections.iter().enumerate().filter(|(_, p)| p.delete_on_tombstone && p.takes_topic(topic)) {
            let cells = p.cells(&mut input, true).map_err(|refusal| RouteError { projection: i as u16, refusal })?;
            ops.push(Op { projection: i as u16, delete: true, cells });
        }
        ops.shrink_to_fit();
        Ok(ops)
    }
}

/// What a projection's name is in output (`check-config`, `/status`).
pub fn describe(p: &Projection) -> Value {
    serde_json::json!({
        "name": p.name,
        "table": p.table.to_string(),
        "mode": mode_name(p.mode),
        "topics": p.spec.topics,
        "types": p.spec.types,
        "key": p.spec.key,
        "newer_wins": p.spec.newer_wins,
        "delete_types": p.spec.delete_types,
        "delete_on_tombstone": p.delete_on_tombstone,
        "columns": p.columns.iter().map(|c| serde_json::json!({
            "column": c.name, "from": source_name(&c.source), "required": c.required, "unit": c.unit.map(Unit::name),
            // Before the table is read, an undeclared type is the table's.
            "type": if c.table_type.is_empty() { c.declared.map_or("(the table's)", SqlType::name) } else { c.ty.name() },
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
