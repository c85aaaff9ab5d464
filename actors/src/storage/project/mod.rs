//! Projections in the database: checking each against its table at start, and applying a
//! group's ops inside its transaction, as if one by one in offset order.
//!
//! A database refusal (SQLSTATE classes 22/23: CHECK, NOT NULL, FK, a duplicate key in `insert`
//! mode; or a trigger's `RAISE`, which a probe without rows tells from the table's own refusal)
//! is isolated by message, like the `events` rows: the ops of a range of messages run in a
//! savepoint; a refused range is split and its halves applied in order, down to the one message
//! that caused it, which becomes a dead letter. Counts are taken only from savepoints that held.
//! A range refused in the fast pass ([`Pass`]) is first applied again exactly.

pub(crate) mod lookup;
mod postgres;
mod sqlite;
pub(crate) mod tables;

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use super::error::blames_data;
use super::store::GroupStore;
use super::StoreError;
pub(crate) use crate::project::Counts;
use crate::project::{KeyForm, Mode, Nul, Op, OpKind, Plan, Projection, SpecError, SqlType, TableName};
use crate::records::PartitionKey;
use lookup::Lookup;

/// Which statements apply a range of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The fastest statements that end as one by one whenever the database takes them
    /// (PostgreSQL's `INSERT … ON CONFLICT DO UPDATE`); a refusal may be the statement's own
    /// (a row it proposes for a key that has one), so a refused range is tried again exactly.
    Fast,
    /// Statements that refuse only what a message, applied on its own, would be refused.
    Exact,
}

/// What applying projections needs from a backend, besides the group commit's statements.
pub(crate) trait ProjectStore: GroupStore {
    /// The pass a range is first applied with: [`Pass::Fast`] only where its statements differ
    /// from the exact ones, so a backend without a fast pass never applies a refused range twice.
    const FIRST_PASS: Pass;
    /// Apply the ops of `messages` (each one message's, in offset order), counting into
    /// `counts` (by projection); `Rejected` when the database refuses any of them.
    fn apply_ops(&mut self, plan: &Plan, messages: &[&[Op]], pass: Pass, counts: &mut [Counts]) -> Result<(), StoreError>;
    /// Run the statements `ops` (one message's) would run, with no rows: refused, the fault is
    /// the table's (a dropped column, a trigger refusing all), not the message's.
    fn probe(&mut self, plan: &Plan, ops: &[Op]) -> Result<(), StoreError>;
    /// Remove the `events` rows of messages the projections refused (they become dead letters).
    fn delete_events(&mut self, rows: &[(&PartitionKey, i64)]) -> Result<(), StoreError>;
}

/// A message the database refused.
#[derive(Debug)]
pub(crate) struct Refused {
    /// Its index among the messages applied.
    pub(crate) at: usize,
    /// The projection whose op the database refused.
    pub(crate) projection: u16,
    pub(crate) sqlstate: String,
    /// The database's message.
    pub(crate) message: String,
}

/// Apply `messages`, isolating the ones the database refuses: returns them and the counts, by
/// projection, of everything applied.
pub(crate) fn apply_refusing<S: ProjectStore>(
    s: &mut S,
    plan: &Plan,
    messages: &[&[Op]],
) -> Result<(Vec<Refused>, Vec<Counts>), StoreError> {
    let mut counts = vec![Counts::default(); plan.projections.len()];
    let mut refused = Vec::new();
    if !messages.is_empty() {
        isolate(s, plan, messages, 0..messages.len(), S::FIRST_PASS, &mut counts, &mut refused)?;
    }
    if let Some(e) = refused_alike(messages.len(), refused.iter().map(|r| (&r.sqlstate, &r.message))) {
        return Err(e);
    }
    Ok((refused, counts))
}

fn isolate<S: ProjectStore>(
    s: &mut S,
    plan: &Plan,
    messages: &[&[Op]],
    range: Range<usize>,
    pass: Pass,
    counts: &mut [Counts],
    refused: &mut Vec<Refused>,
) -> Result<(), StoreError> {
    let attempt = s.in_savepoint(|s| {
        let mut c = vec![Counts::default(); counts.len()];
        s.apply_ops(plan, &messages[range.clone()], pass, &mut c).map(|()| c)
    });
    match attempt {
        Ok(c) => {
            counts.iter_mut().zip(&c).for_each(|(a, b)| a.add(b));
            Ok(())
        }
        Err(StoreError::Rejected { .. }) if pass == Pass::Fast => isolate(s, plan, messages, range, Pass::Exact, counts, refused),
        Err(StoreError::Rejected { sqlstate, message }) => {
            if range.len() == 1 {
                if !blames_data(&sqlstate) {
                    s.in_savepoint(|s| s.probe(plan, messages[range.start])).map_err(StoreError::unwritable)?;
                }
                let projection = culprit(s, plan, messages[range.start])?.unwrap_or(messages[range.start][0].projection);
                refused.push(Refused { at: range.start, projection, sqlstate, message });
                return Ok(());
            }
            // In order: the first half's effects are what the second half's messages see.
            let mid = range.start + range.len() / 2;
            isolate(s, plan, messages, range.start..mid, pass, counts, refused)?;
            isolate(s, plan, messages, mid..range.end, pass, counts, refused)
        }
        Err(e) => Err(e),
    }
}

/// Every one of `n` (two or more) messages refused on its own with one SQLSTATE outside the data
/// classes: no message is the cause (each would fail without the others too, as with a trigger
/// that refuses every row), so none becomes a dead letter — it is the table's refusal.
pub(crate) fn refused_alike<'r>(n: usize, refused: impl Iterator<Item = (&'r String, &'r String)> + Clone) -> Option<StoreError> {
    let (sqlstate, message) = refused.clone().next()?;
    let alike = n >= 2 && refused.clone().count() == n && !blames_data(sqlstate) && refused.clone().all(|(s, _)| s == sqlstate);
    alike.then(|| StoreError::Unwritable { sqlstate: sqlstate.clone(), message: message.clone() })
}

/// Which of one message's ops the database refuses: its ops are tried in order, each after
/// the ones before it, in savepoints rolled back (the message changes nothing).
fn culprit<S: ProjectStore>(s: &mut S, plan: &Plan, ops: &[Op]) -> Result<Option<u16>, StoreError> {
    if ops.len() == 1 {
        return Ok(Some(ops[0].projection));
    }
    for k in 0..ops.len() {
        let mut c = vec![Counts::default(); plan.projections.len()];
        let tried = s.in_savepoint(|s| {
            s.apply_ops(plan, &[&ops[..=k]], Pass::Exact, &mut c)?;
            // Rolled back whatever happened: only the answer is wanted.
            Err::<(), _>(StoreError::Rejected { sqlstate: String::new(), message: String::new() })
        });
        match tried {
            Err(StoreError::Rejected { sqlstate, .. }) if !sqlstate.is_empty() => return Ok(Some(ops[k].projection)),
            Err(StoreError::Rejected { .. }) => {}
            Err(e) => return Err(e),
            Ok(()) => {}
        }
    }
    Ok(None)
}

/// One step of applying a range of messages, in order.
pub(crate) enum Step<'a> {
    /// Ops the set statements apply (changes and deletes), as slices of messages' ops.
    Run(Vec<&'a [Op]>),
    /// Delete every row of the op's table: what came before applies first, what follows after.
    Truncate(&'a Op),
}

/// `messages` cut at each truncate; skips and ignored fields counted into `counts` (by
/// projection), not applied.
pub(crate) fn steps<'a>(messages: &[&'a [Op]], counts: &mut [Counts]) -> Vec<Step<'a>> {
    let mut out = Vec::new();
    let mut run: Vec<&'a [Op]> = Vec::with_capacity(messages.len());
    for &ops in messages {
        let mut from = 0;
        for (i, op) in ops.iter().enumerate() {
            let c = &mut counts[op.projection as usize];
            c.ignored_fields += op.ignored.as_ref().map_or(0, |f| f.len() as u64);
            match op.kind {
                OpKind::Change | OpKind::Delete => continue,
                OpKind::Skip(why) => c.skipped(why),
                // Made into its table's op before any step (`Tables::apply`); never written.
                OpKind::Truncate | OpKind::Pending => {}
            }
            if from < i {
                run.push(&ops[from..i]);
            }
            from = i + 1;
            if op.kind == OpKind::Truncate {
                if !run.is_empty() {
                    out.push(Step::Run(std::mem::take(&mut run)));
                }
                out.push(Step::Truncate(op));
            }
        }
        if from < ops.len() {
            run.push(&ops[from..]);
        }
    }
    if !run.is_empty() {
        out.push(Step::Run(run));
    }
    out
}

/// Apply a truncate step with `execute` (the backend's: rows affected): `DELETE FROM` the table
/// (not `TRUNCATE`: that takes the table's strongest lock and is not MVCC-safe on PostgreSQL,
/// and a replica is read while it is written), counted.
pub(crate) fn truncate(
    plan: &Plan,
    op: &Op,
    counts: &mut [Counts],
    execute: impl FnOnce(&str) -> Result<usize, StoreError>,
) -> Result<(), StoreError> {
    let at = op.projection as usize;
    counts[at].deleted += execute(&format!("DELETE FROM {}", plan.projections[at].table.quoted()))? as u64;
    counts[at].truncates += 1;
    Ok(())
}

/// Ops that one statement may apply together: one projection, one kind, one set of columns
/// present, and no key twice (the k-th op of a key in a range is in round k, rounds in order),
/// so a set statement gives what one by one would.
pub(crate) struct Group<'a> {
    pub projection: usize,
    pub delete: bool,
    /// Which columns the ops carry (a delete: the key's).
    pub shape: Vec<bool>,
    pub ops: Vec<&'a Op>,
}

pub(crate) fn groups<'a>(plan: &Plan, messages: &[&'a [Op]]) -> Vec<Group<'a>> {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut index: HashMap<(usize, u16, bool, Vec<bool>), usize> = HashMap::new();
    let mut out: Vec<(usize, Group<'a>)> = Vec::new();
    let mut id = Vec::new();
    for op in messages.iter().flat_map(|ops| ops.iter()) {
        let p = &plan.projections[op.projection as usize];
        let round = match &p.round_key {
            Some(k) if k.is_empty() => 0,
            by => {
                // The table as the database names it, not the projection: two may write one table.
                id.clear();
                id.extend_from_slice(p.table_id.as_bytes());
                id.push(0);
                for &k in by.iter().flatten() {
                    op.cells[k].as_ref().map_or(&crate::project::Cell::Null, |c| c).identity(p.columns[k].key_form, &mut id);
                }
                let n = seen.entry(id.clone()).or_insert(0);
                *n += 1;
                *n - 1
            }
        };
        let shape: Vec<bool> = op.cells.iter().map(Option::is_some).collect();
        let at = *index.entry((round, op.projection, op.is_delete(), shape.clone())).or_insert_with(|| {
            out.push((round, Group { projection: op.projection as usize, delete: op.is_delete(), shape, ops: Vec::new() }));
            out.len() - 1
        });
        out[at].1.ops.push(op);
    }
    // Stable: within a round, groups keep the order they first appeared in.
    out.sort_by_key(|(round, _)| *round);
    out.into_iter().map(|(_, g)| g).collect()
}

/// One column of a table, as its catalog tells it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColumnInfo {
    pub name: String,
    /// The type as the catalog writes it (`character varying(20)`).
    pub formatted: String,
    /// The type without its modifier (`"pg_catalog"."varchar"`), which values are cast to, so
    /// that writing them to the column applies the modifier as an `INSERT` does: an over-long
    /// text is refused (22001), where a cast to `varchar(20)` would cut it short.
    pub cast: String,
    /// What tributary makes of the type (a domain's: its base type's); `None` for one it does
    /// not know.
    pub kind: Option<SqlType>,
    /// An array column: what tributary makes of its elements' type (text for one it does not know).
    pub element: Option<SqlType>,
    /// An enum column: its values are labels, so only text can be written to it.
    pub is_enum: bool,
    /// Why the column cannot be written (`GENERATED ALWAYS`), if it cannot.
    pub unwritable: Option<String>,
    /// How the column compares values (a key's rounds).
    pub key_form: KeyForm,
    /// SQLite's NUMERIC affinity: a decimal keeps only 15 significant digits there.
    pub lossy_decimals: bool,
}

/// A table's columns and unique keys, as its catalog tells them.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableInfo {
    /// The table whatever its spelling (PostgreSQL: its OID; SQLite: schema and folded name).
    pub id: String,
    /// One of tributary's own tables (`events`, `dead_letters`, `consumer_offsets`, migrations).
    pub own: bool,
    pub columns: Vec<ColumnInfo>,
    /// The column sets of the primary key and every unique, non-partial index on plain columns.
    pub unique: Vec<BTreeSet<String>>,
    /// The primary key's columns, in its order (empty: none).
    pub primary: Vec<String>,
    /// SQLite compares names without case.
    pub fold_case: bool,
}

impl TableInfo {
    fn norm(&self, name: &str) -> String {
        if self.fold_case {
            name.to_ascii_lowercase()
        } else {
            name.to_string()
        }
    }
}

/// The table `p` names does not exist; `other_case`: tables whose names differ only in case.
fn missing_table(p: &Projection, other_case: &[String]) -> SpecError {
    let mut fix = String::new();
    if !other_case.is_empty() {
        // PostgreSQL folds unquoted names to lower case when a table is created; tributary quotes
        // the name as configured, so `Orders` and `orders` are two names.
        let names: Vec<String> = other_case.iter().map(|t| format!("table = {t:?}")).collect();
        fix = format!("names are case-sensitive, and {} exists in another case: write {}; or ", other_case.join(", "), names.join(" or "));
    }
    fix.push_str(if p.from_template {
        // Each batch looks for it again, so only what came before it was there waits.
        "create it (tributary changes no schema), then redrive the dead letters of reason projection_no_table"
    } else {
        "create it (tributary changes no schema), or set create_table = true with a type for every column"
    });
    SpecError::new(&p.name, "table", format!("table {} does not exist", p.table), fix)
}

/// The table's schema does not exist (`create_table` creates only the table).
fn missing_schema(p: &Projection) -> SpecError {
    let schema = p.table.schema.as_deref().unwrap_or_default();
    SpecError::new(
        &p.name,
        "table",
        format!("schema {schema:?} of table {} does not exist", p.table),
        format!(
            "create the schema first (PostgreSQL: CREATE SCHEMA {}; tributary creates only a table, with create_table = true), \
             or name a table in a schema that exists (SQLite: main, temp or an attached database)",
            crate::project::quote_ident(schema)
        ),
    )
}

/// Check `p` against its table and fill in each column's types and what NUL it cannot hold
/// (`holds_nul`: the backend's text holds any); a warning for what the start-up should tell but
/// not refuse.
pub(crate) fn complete(p: &mut Projection, info: &TableInfo, holds_nul: bool, warnings: &mut Vec<String>) -> Result<(), SpecError> {
    let table = p.table.to_string();
    if info.own {
        return Err(SpecError::new(
            &p.name,
            "table",
            format!("{table} is one of tributary's own tables (events, dead_letters, consumer_offsets)"),
            "write projections to tables of your own",
        ));
    }
    p.table_id = info.id.clone();
    // A projection of change events takes its columns and key from the table.
    p.adopt_table(info.columns.iter().map(|c| (c.name.as_str(), c.unwritable.is_none())), &info.primary, info.fold_case)?;
    let err = |key: &str, problem: String, fix: String| SpecError::new(&p.name, key, problem, fix);
    for c in &mut p.columns {
        let key = format!("columns.{}", c.name);
        let found = info.columns.iter().find(|col| info.norm(&col.name) == info.norm(&c.name));
        let Some(col) = found else {
            return Err(SpecError::new(
                &p.name,
                &key,
                format!("table {table} has no column {:?}", c.name),
                format!("add it (ALTER TABLE {table} ADD COLUMN ...) or remove it from [projection.columns]"),
            ));
        };
        let table_type = &col.formatted;
        if let Some(why) = &col.unwritable {
            return Err(SpecError::new(
                &p.name,
                &key,
                format!("column {table}.{} is {why}: the database computes it, and refuses a value for it", c.name),
                "remove it from [projection.columns]".to_string(),
            ));
        }
        let writable = match (c.declared, col.kind, col.element) {
            (Some(declared), _, Some(element)) => declared.writable_to(element),
            (Some(declared), Some(column), None) => declared.writable_to(column),
            (Some(declared), None, None) => !col.is_enum || declared == SqlType::Text,
            (None, ..) => true,
        };
        if !writable {
            let (what, fix) = match (col.element, col.kind) {
                (Some(e), _) => {
                    (format!("an array of {}", e.name()), format!("declare type = {:?} (the elements'), or leave type out", e.name()))
                }
                (None, Some(k)) => (table_type.clone(), format!("declare type = {:?}, or leave type out to use the table's", k.name())),
                (None, None) => (format!("{table_type}, an enum of labels"), "declare type = \"text\", or leave type out".to_string()),
            };
            return Err(SpecError::new(
                &p.name,
                &format!("{key}.type"),
                format!("is {:?}, but column {table}.{} is {what}", c.declared.map_or("", SqlType::name), c.name),
                fix,
            ));
        }
        c.ty = c.declared.or(col.kind).unwrap_or(SqlType::Text);
        c.table_type = col.cast.clone();
        c.table_kind = col.kind;
        c.element = col.element.map(|e| c.declared.unwrap_or(e));
        c.key_form = col.key_form;
        if let Some(u) = c.unit {
            if !c.ty.is_time() || c.element.is_some() {
                return Err(SpecError::new(
                    &p.name,
                    &format!("{key}.unit"),
                    format!("unit = {:?} counts time, and column {table}.{} is {table_type}", u.name(), c.name),
                    "remove unit from the column".to_string(),
                ));
            }
        }
        c.nul = if holds_nul { Nul::Holds } else { Nul::postgres(col.kind) };
        if col.lossy_decimals && c.ty == SqlType::Numeric {
            warnings.push(format!(
                "projection {:?}: column {table}.{} is declared {table_type:?}, whose NUMERIC affinity keeps only 15 significant \
                 digits of a decimal (SQLite stores it as a double): declare the column DECIMAL_TEXT (or TEXT) to keep every digit",
                p.name, c.name
            ));
        }
    }
    if let Some(v) = p.newer_wins.map(|v| &p.columns[v]).filter(|v| v.ty.is_number() && v.key_form == KeyForm::Text) {
        return Err(err(
            "newer_wins",
            format!("column {table}.{} holds numbers as text, which compares as text (\"9\" > \"10\")", v.name),
            "make the version column a number column (bigint, double precision; on SQLite INTEGER or REAL)".into(),
        ));
    }
    let deletes = p.delete_on_tombstone || !p.spec.delete_types.is_empty() || p.envelope != crate::project::Envelope::None;
    if p.mode != Mode::Insert || deletes {
        let key: BTreeSet<String> = p.key.iter().map(|&k| info.norm(&p.columns[k].name)).collect();
        let covered = info.unique.iter().any(|u| u.iter().map(|n| info.norm(n)).collect::<BTreeSet<_>>() == key);
        if !covered {
            let cols = p.key.iter().map(|&k| p.columns[k].name.as_str()).collect::<Vec<_>>().join(", ");
            return Err(err(
                "key",
                format!("no primary key or unique index of {table} is exactly ({cols}), which upserts, updates and deletes need"),
                format!("CREATE UNIQUE INDEX ON {table} ({cols}), or make key name the columns of one"),
            ));
        }
    }
    Ok(())
}

/// `CREATE TABLE IF NOT EXISTS` from the declared types, the key as primary key; `decl` names
/// a type as the backend declares it.
pub(crate) fn create_table_sql(p: &Projection, decl: impl Fn(SqlType) -> String) -> String {
    let columns: Vec<(String, SqlType)> = p.columns.iter().map(|c| (c.name.clone(), c.declared.unwrap_or(SqlType::Text))).collect();
    let key: Vec<String> = p.key.iter().map(|&k| p.columns[k].name.clone()).collect();
    create_sql(&p.table, &columns, &key, decl)
}

/// `CREATE TABLE IF NOT EXISTS` of `columns`, `key` its primary key (none when empty).
pub(crate) fn create_sql(table: &TableName, columns: &[(String, SqlType)], key: &[String], decl: impl Fn(SqlType) -> String) -> String {
    use crate::project::quote_ident;
    let mut parts: Vec<String> = columns.iter().map(|(name, ty)| format!("{} {}", quote_ident(name), decl(*ty))).collect();
    if !key.is_empty() {
        let key: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!("CREATE TABLE IF NOT EXISTS {} ({})", table.quoted(), parts.join(", "))
}

/// Why a projection could not be set up against the database.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("projection {projection:?}: {source}")]
    Store { projection: String, source: StoreError },
}

#[cfg(test)]
mod exact_props;
#[cfg(test)]
mod exact_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod postgres_tests;
#[cfg(test)]
mod tests;

/// What start-up checks need from a backend's catalog.
pub(crate) trait Catalog {
    /// The table's columns and unique keys; `None`: there is no such table.
    fn table_info(&mut self, p: &Projection) -> Result<Option<TableInfo>, StoreError>;
    /// Whether `ALTER TABLE … ADD COLUMN IF NOT EXISTS` is understood (PostgreSQL; SQLite's
    /// writes are one at a time, so a column found missing stays missing until it is added).
    const ADD_COLUMN_IF_NOT_EXISTS: bool;
    /// How the backend declares a column of this type.
    fn decl(ty: SqlType) -> String;
    /// Run a statement that changes the schema.
    fn ddl(&mut self, sql: &str) -> Result<(), StoreError>;
    /// `CREATE TABLE IF NOT EXISTS` from the declared types (see [`create_table_sql`]).
    fn create_table(&mut self, p: &Projection) -> Result<(), StoreError>
    where
        Self: Sized,
    {
        self.ddl(&create_table_sql(p, Self::decl))
    }
}

/// Create the tables asked for, then check every projection against its table; the warnings
/// to log.
pub(crate) fn prepare<C: Catalog + Lookup>(conn: &mut C, projections: &mut [Projection]) -> Result<Vec<String>, SetupError> {
    let mut warnings = Vec::new();
    // A template projection's tables are checked as changes reach them (`tables`).
    for p in projections.iter_mut().filter(|p| p.template.is_none()) {
        let store = |source: StoreError| SetupError::Store { projection: p.name.clone(), source };
        // A missing schema is the configuration's to fix, told by the backend's code or catalog.
        let failed = |conn: &mut C, e: StoreError| match conn.schema_missing(&p.table, &e) {
            Ok(true) => SetupError::Spec(missing_schema(p)),
            Ok(false) => store(e),
            Err(lookup) => store(lookup),
        };
        if p.create_table {
            if let Err(e) = conn.create_table(p) {
                return Err(failed(conn, e));
            }
        }
        let info = match conn.table_info(p) {
            Ok(info) => info,
            Err(e) => return Err(failed(conn, e)),
        };
        match info {
            Some(info) => complete(p, &info, C::TEXT_HOLDS_NUL, &mut warnings)?,
            None => {
                // A name in another case first: its schema may be the one spelled another way.
                let other_case = conn.other_case(&p.table).map_err(store)?;
                if other_case.is_empty() && conn.no_such_schema(&p.table).map_err(store)? {
                    return Err(missing_schema(p).into());
                }
                return Err(missing_table(p, &other_case).into());
            }
        }
    }
    serialize_shared_tables(projections);
    Ok(warnings)
}

/// Projections that write one table but name its rows by different columns (or one by none)
/// cannot tell from their values which ops meet one row: every op of such a table is a round
/// of its own, so they apply strictly in offset order.
fn serialize_shared_tables(projections: &mut [Projection]) {
    let key_names = |p: &Projection| -> Option<BTreeSet<String>> {
        p.round_key.as_ref().map(|k| k.iter().map(|&i| p.columns[i].name.clone()).collect())
    };
    let mut by_table: HashMap<String, Vec<Option<BTreeSet<String>>>> = HashMap::new();
    for p in projections.iter() {
        by_table.entry(p.table_id.clone()).or_default().push(key_names(p));
    }
    for p in projections.iter_mut() {
        let keys = &by_table[&p.table_id];
        if keys.iter().any(|k| k != &keys[0]) {
            p.round_key = None;
        }
    }
}
