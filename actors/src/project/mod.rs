//! Projections: messages into the user's own tables — typed columns, upserts, deletes, routing.
//!
//! Pure, no I/O. The configuration's `[[projection]]` tables are [`ProjectionSpec`]s; checked
//! ([`Projection::from_spec`]) and completed with the table's column types by the storage at
//! start, they make the [`Plan`] the parser routes each message with ([`Plan::route`]): every
//! projection a message matches gives one [`Op`] whose cells are already coerced, so a value the
//! table could not take is a dead letter before any SQL. The writer applies the ops
//! (`storage::project`) in the batch's transaction, as if one by one in offset order.

mod array;
pub(crate) mod cdc;
pub(crate) mod coerce;
mod column;
mod decimal;
pub(crate) mod instant;
mod json;
mod outcome;
mod replica;
pub(crate) mod row_schema;
pub(crate) mod source;
mod spec;
mod sql_type;
mod table_name;
mod template;

use serde_json::Value;
use wildmatch::WildMatch;

use coerce::{coerce, quote, Target};
pub(crate) use coerce::{Cell, KeyForm, SqlType};
pub(crate) use decimal::{unscaled_decimal, MAX_SCALE};
use instant::Unit;
pub(crate) use outcome::Counts;
use source::{Input, Source};
pub(crate) use spec::Envelope;
pub(crate) use spec::Mode;
pub use spec::{EventsSpec, ProjectionSpec, SpecError, Unrouted};
pub(crate) use sql_type::sqlite_numeric_affinity;
pub(crate) use table_name::quote_ident;
pub(crate) use table_name::TableName;
pub(crate) use template::Pending;

use crate::records::Refusal;
use crate::records::{EventRow, RawMessage, Reason};

/// The detail of an `unrouted` dead letter.
pub(crate) const UNROUTED: &str = "no projection takes the message, and [events] enabled = false keeps no archive";

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
    /// A decimal sent as base64 bytes of its unscaled value has this scale (`numeric` only).
    pub scale: Option<u32>,
    /// How the table compares this column's values (a key column's rounds).
    pub key_form: KeyForm,
    /// What NUL the column cannot hold (known once the table is read).
    pub nul: Nul,
}

impl Column {
    /// What values are coerced to.
    pub fn target(&self) -> Target {
        Target { ty: self.ty, unit: self.unit, element: self.element, scale: self.scale }
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
    pub envelope: Envelope,
    /// With `envelope = "debezium"`: apply op `t` (else skip it).
    pub truncate: bool,
    /// The row image's fields map to the table's columns of the same name: set until the table
    /// is read ([`Projection::adopt_table`]), then the table's column names (folded where the
    /// backend folds them), to tell the fields it lacks.
    pub map_all: Option<std::collections::HashSet<String>>,
    /// Names fold to lower case (SQLite).
    pub fold_case: bool,
    /// `key` and `newer_wins` wait for the table (its primary key, its columns).
    pub deferred: bool,
    /// The JSON texts that mean "unchanged, not sent" (Debezium's placeholder).
    pub(crate) placeholders: cdc::Placeholders,
    /// A template table name: each change event names its table, and the writer completes a
    /// projection of this one for each table reached ([`Projection::for_table`]).
    pub(crate) template: Option<template::Template>,
    /// Completed from a template for one of the tables it reached.
    pub from_template: bool,
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
        let cdc = spec.envelope == Envelope::Debezium;
        if cdc {
            cdc::check_spec(spec)?;
        } else if let Some(key) = cdc::cdc_only_key(spec) {
            return Err(err(key, "applies to change events only".into(), "set envelope = \"debezium\", or remove it"));
        }
        let mut template = template::Template::parse(&spec.table).map_err(|p| {
            err("table", p, &format!("use a table name (\"orders\", \"schema.orders\") or a template of {}", template::VARIABLES))
        })?;
        if template.is_some() && !cdc {
            return Err(err("table", "is a template, which change events fill".into(), "name one table, or set envelope = \"debezium\""));
        }
        let table = match &template {
            // Named for logs and `/status` until each change event names its own.
            Some(_) => TableName { schema: None, name: spec.table.trim().to_string() },
            None => TableName::parse(spec.table.trim()).ok_or_else(|| {
                err("table", format!("{:?} is not a table name", spec.table), "use table = \"orders\" or \"schema.orders\"")
            })?,
        };
        if template.is_none() && cdc::writer_resolved(spec) {
            // One table, which the writer creates or widens as the changes' schema says.
            template = Some(template::Template::constant(&table));
        }
        let map_all = cdc && (spec.columns.is_empty() || spec.map_all_fields);
        if spec.columns.is_empty() && !cdc {
            return Err(err("columns", "maps no column".into(), "add [projection.columns] with column = \"/json/pointer\" lines"));
        }
        let mut columns = Vec::with_capacity(spec.columns.len());
        for (col, cs) in &spec.columns {
            columns.push(Column::checked(name, col, cs, cdc)?);
        }
        let mut p = Projection {
            name: name.to_string(),
            table_id: table.to_string(),
            round_key: None,
            table,
            topics: globs(&spec.topics),
            types: globs(&spec.types),
            delete_types: globs(&spec.delete_types),
            mode: spec.mode.unwrap_or(if cdc { Mode::Upsert } else { Mode::Insert }),
            key: Vec::new(),
            newer_wins: None,
            delete_on_tombstone: spec.delete_on_tombstone,
            create_table: spec.create_table,
            columns,
            spec: spec.clone(),
            envelope: spec.envelope,
            truncate: spec.truncate,
            map_all: map_all.then(Default::default),
            fold_case: false,
            deferred: map_all || (cdc && spec.key.is_empty()) || template.is_some(),
            template,
            from_template: false,
            placeholders: if cdc { cdc::placeholders(&spec.unavailable_value_placeholder) } else { Default::default() },
        };
        if !p.deferred {
            p.resolve(&spec.key)?;
        }
        Ok(p)
    }

    /// Find the key and version columns among the mapped ones (`key`: their names), and check
    /// what needs them.
    pub(crate) fn resolve(&mut self, key_names: &[String]) -> Result<(), SpecError> {
        let (name, spec, columns) = (self.name.as_str(), &self.spec, &self.columns);
        let err = |key: &str, problem: String, fix: &str| SpecError::new(name, key, problem, fix);
        let position = |key: &str, c: &str| {
            columns.iter().position(|x| x.name == c).ok_or_else(|| {
                err(
                    key,
                    format!("names {c:?}, which is not a mapped column"),
                    &format!("map it under [projection.columns]: {c} = \"/...\""),
                )
            })
        };
        let mut key = Vec::with_capacity(key_names.len());
        for k in key_names {
            let at = position("key", k)?;
            if key.contains(&at) {
                return Err(err("key", format!("names {k:?} twice"), "name each key column once"));
            }
            key.push(at);
        }
        let deletes = !spec.delete_types.is_empty() || spec.delete_on_tombstone || self.envelope == Envelope::Debezium;
        if key.is_empty() && (self.mode != Mode::Insert || deletes) {
            let why = if self.mode != Mode::Insert { format!("mode = \"{}\"", mode_name(self.mode)) } else { "deletes".to_string() };
            let fix = if self.envelope == Envelope::Debezium {
                "give the table a primary key (the source table's), or set key = [\"id\"] (mapped columns)"
            } else {
                "set key = [\"id\"] (mapped columns)"
            };
            return Err(err("key", format!("is empty, and {why} needs the columns that identify a row"), fix));
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
                if self.mode == Mode::Insert {
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
        if spec.create_table && !cdc::creates_from_schema(spec) {
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
        self.key = key;
        self.newer_wins = newer_wins;
        self.round_key = Some(round_key);
        self.deferred = false;
        Ok(())
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
    pub(crate) fn cells(&self, input: &mut Input<'_>, delete: bool) -> Result<Vec<Option<Cell>>, Refusal> {
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
            let target = if input.typed() { Target { unit: None, scale: None, ..c.target() } } else { c.target() };
            let got = input.get(&c.source).filter(|raw| !self.unavailable(raw, c));
            let cell = match got {
                None if is_key => return Err(missing("the key column's value is missing")),
                None if is_version => return Err(missing("the newer_wins column's value is missing")),
                None if c.required => return Err(missing("the required value is missing")),
                None => None,
                Some(raw) => Some(coerce(&raw, target).map_err(|why| Refusal {
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

impl Projection {
    /// Debezium's placeholder for a value it was not sent: the column is left as it is.
    fn unavailable(&self, raw: &coerce::Raw<'_>, c: &Column) -> bool {
        let coerce::Raw::Json(text) = raw else { return false };
        let (text, p) = (text.trim(), &self.placeholders);
        let binary = c.ty == SqlType::Bytea || c.element == Some(SqlType::Bytea);
        p.text.iter().any(|t| t == text) || (binary && p.bytes.iter().any(|t| t == text))
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
        Source::Debezium(f) => f.name(),
    }
}

/// One projection's part of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub projection: u16,
    pub kind: OpKind,
    /// `cells[i]` is column `i`'s value; `None`: absent from the message (a change: the column
    /// is left as it is). Empty for a truncate or a skip.
    pub cells: Vec<Option<Cell>>,
    /// Fields of a change's row image the table has no column for (counted, told once).
    pub ignored: Option<Box<[String]>>,
    /// A template projection's change, for the writer to resolve (with [`OpKind::Pending`]).
    pub pending: Option<Box<Pending>>,
}

/// What an op does to its projection's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Insert, upsert or update, by the projection's mode.
    Change,
    /// Delete the key's row.
    Delete,
    /// Delete every row (a change event's truncate, with `truncate = true`).
    Truncate,
    /// Nothing to write; counted.
    Skip(cdc::Skip),
    /// A change to a table not known yet (`pending` says which and what): the writer makes
    /// the op with the table's projection before any statement.
    Pending,
}

impl Op {
    pub fn new(projection: u16, kind: OpKind, cells: Vec<Option<Cell>>) -> Op {
        Op { projection, kind, cells, ignored: None, pending: None }
    }

    pub fn is_delete(&self) -> bool {
        self.kind == OpKind::Delete
    }

    /// Bytes the op holds, its cells' text included.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Op>()
            + self.cells.capacity() * std::mem::size_of::<Option<Cell>>()
            + self.cells.iter().flatten().map(Cell::heap_bytes).sum::<usize>()
            + self.ignored.iter().flat_map(|i| i.iter()).map(|f| f.capacity() + std::mem::size_of::<String>()).sum::<usize>()
            + self.pending.as_ref().map_or(0, |p| p.weight())
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

    /// Whether any projection reads into the key (`key:/pointer`, or a change event's key that
    /// names the row a delete removes): only then is a framed key decoded.
    pub(crate) fn reads_key_pointers(&self) -> bool {
        self.projections
            .iter()
            .any(|p| p.envelope == Envelope::Debezium || p.columns.iter().any(|c| matches!(c.source, Source::KeyPointer(_))))
    }

    /// The ops of a parsed message, in projection order (empty: no projection takes it).
    pub fn route(&self, topic: &str, partition: i32, row: &EventRow) -> Result<Vec<Op>, RouteError> {
        self.route_keyed(topic, partition, row, None, None)
    }

    /// Whether a projection of change events takes messages of `topic` (then the parser reads
    /// each one's envelope, once, for [`Plan::route_keyed`]).
    pub(crate) fn reads_changes(&self, topic: &str) -> bool {
        self.projections.iter().any(|p| p.envelope == Envelope::Debezium && p.takes_topic(topic))
    }

    /// [`Plan::route`], `key:` pointers reading `key` (the record's key decoded from the
    /// registry's wire format, as JSON text) in place of the key's own bytes, and projections
    /// of change events reading `event` (the message's envelope, read when
    /// [`Plan::reads_changes`]).
    pub(crate) fn route_keyed(
        &self,
        topic: &str,
        partition: i32,
        row: &EventRow,
        key: Option<&str>,
        event: Option<&cdc::Event<'_>>,
    ) -> Result<Vec<Op>, RouteError> {
        let mut input = Input::new(topic, partition, &row.original, Some(row)).with_key(key);
        let ty = row.event_type();
        // Sized to fit: a batch in flight holds one of these per message (a `Vec` grown from
        // empty would hold room for four ops).
        let mut ops = Vec::with_capacity(self.projections.len());
        for (i, p) in self.projections.iter().enumerate() {
            let refused = |refusal| RouteError { projection: i as u16, refusal };
            if p.envelope == Envelope::Debezium {
                if p.takes_topic(topic) {
                    ops.push(p.change_op(i as u16, &input, event).map_err(refused)?);
                }
            } else if let Some(delete) = p.takes(topic, ty) {
                let cells = p.cells(&mut input, delete).map_err(refused)?;
                ops.push(Op::new(i as u16, if delete { OpKind::Delete } else { OpKind::Change }, cells));
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
        for (i, p) in self.projections.iter().enumerate().filter(|(_, p)| p.takes_topic(topic)) {
            if p.envelope == Envelope::Debezium {
                // Debezium's tombstone follows a delete, for log compaction: the delete did the work.
                ops.push(Op::new(i as u16, OpKind::Skip(cdc::Skip::Tombstone), Vec::new()));
            } else if p.delete_on_tombstone {
                let cells = p.cells(&mut input, true).map_err(|refusal| RouteError { projection: i as u16, refusal })?;
                ops.push(Op::new(i as u16, OpKind::Delete, cells));
            }
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
        "envelope": p.envelope,
        "truncate": p.truncate,
        "map_all_fields": p.map_all.is_some(),
        "columns": p.columns.iter().map(|c| serde_json::json!({
            "column": c.name, "from": source_name(&c.source), "required": c.required, "unit": c.unit.map(Unit::name),
            // Before the table is read, an undeclared type is the table's.
            "type": if c.table_type.is_empty() { c.declared.map_or("(the table's)", SqlType::name) } else { c.ty.name() },
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
