//! Tables the writer finds as changes reach them: a template projection's (`table =
//! "${source.table}"`), and any debezium projection's that creates or widens its table from the
//! change events' schema. A table a change names is found and checked the first time a group
//! needs it, inside the group's transaction (created first with `create_table`, new fields added
//! as columns with `add_columns`), then kept as a projection of its own, appended to the
//! writer's plan (its ops index it there). A table that cannot be written refuses those messages
//! (`projection_no_table`), not the group; the next group looks for it again. What a group
//! learnt is undone when its transaction rolls back, since the DDL is rolled back with it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::lookup::Lookup;
use super::{apply_refusing, complete, create_sql, missing_schema, missing_table, serialize_shared_tables, Catalog, Counts};
use super::{ProjectStore, Refused, TableInfo};
use crate::project::cdc::Change;
use crate::project::row_schema::RowSchema;
use crate::project::source::members;
use crate::project::{quote_ident, Op, OpKind, Plan, Projection, TableName};
use crate::records::{EventRow, RawMessage, Reason, Refusal};
use crate::storage::StoreError;

/// The most projections the writer keeps (its ops index them with a `u16`).
const MAX_PROJECTIONS: usize = u16::MAX as usize;

/// One message, its ops as the parser made them.
pub(crate) struct Msg<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) record: &'a RawMessage,
    /// Its `events` row, when archived.
    pub(crate) row: Option<&'a EventRow>,
    pub(crate) ops: &'a [Op],
}

/// What the writer tells in its log (and metrics) after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Told {
    /// A projection reached a table, checked (`created`: from the changes' schema).
    Reached { projection: String, table: String, created: bool },
    /// Columns added to a table for a change's new fields.
    ColumnsAdded { projection: String, table: String, columns: Vec<String> },
    /// What a table's check warns of (it is written all the same).
    Warning(String),
    /// A change's field its table has no column for (once per projection, table and field).
    Ignored { projection: String, table: String, field: String },
}

/// What a group learnt, to undo if its transaction rolls back.
enum Undo {
    Pushed { template: u16, table: TableName },
    Replaced { index: u16, was: Box<Projection> },
}

/// The writer's projections: the configured ones, then one per table reached.
pub(crate) struct Tables {
    plan: Plan,
    /// By configured projection, then table: the index of its projection for that table.
    known: HashMap<u16, HashMap<TableName, u16>>,
    /// The change schema a table's projection was last found to cover (`add_columns`).
    covered: HashMap<u16, Arc<RowSchema>>,
    /// Fields told ignored, by projection.
    ignored: HashMap<u16, HashSet<String>>,
    told: Vec<Told>,
    journal: Vec<Undo>,
    told_before: usize,
}

/// What applying a group's messages did.
pub(crate) struct Applied {
    /// Messages the database refused (`at`: the index among those applied).
    pub(crate) refused: Vec<Refused>,
    /// Messages refused before any statement (a table that cannot be written, a value its
    /// column cannot take): index, projection, why.
    pub(crate) unresolved: Vec<(usize, u16, Refusal)>,
    /// By projection of [`Tables::plan`].
    pub(crate) counts: Vec<Counts>,
}

/// A table that cannot be written: the problem and the fix, as a dead letter's detail says them.
type Problem = String;

impl Tables {
    pub(crate) fn new(plan: &Arc<Plan>) -> Tables {
        Tables {
            plan: Plan::clone(plan),
            known: HashMap::new(),
            covered: HashMap::new(),
            ignored: HashMap::new(),
            told: Vec::new(),
            journal: Vec::new(),
            told_before: 0,
        }
    }

    /// Every projection the ops of a resolved message may index.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// What to tell since the last time.
    pub(crate) fn take_told(&mut self) -> Vec<Told> {
        self.told_before = 0;
        std::mem::take(&mut self.told)
    }

    /// A group's transaction begins: what it learns is kept until [`Tables::rollback`].
    pub(crate) fn begin(&mut self) {
        self.journal.clear();
        self.told_before = self.told.len();
    }

    /// The group's transaction rolled back, its DDL with it: forget what it learnt.
    pub(crate) fn rollback(&mut self) {
        while let Some(undo) = self.journal.pop() {
            match undo {
                Undo::Pushed { template, table } => {
                    if let Some(i) = self.known.get_mut(&template).and_then(|t| t.remove(&table)) {
                        self.covered.remove(&i);
                        self.ignored.remove(&i);
                    }
                    self.plan.projections.pop();
                }
                Undo::Replaced { index, was } => {
                    self.covered.remove(&index);
                    self.plan.projections[index as usize] = *was;
                }
            }
        }
        serialize_shared_tables(&mut self.plan.projections);
        self.told.truncate(self.told_before);
    }

    /// Make the pending ops of `msgs` with their tables' projections, then apply every op,
    /// isolating what is refused (see [`apply_refusing`]).
    pub(crate) fn apply<S: ProjectStore + Catalog + Lookup>(&mut self, s: &mut S, msgs: &[Msg<'_>]) -> Result<Applied, StoreError> {
        // Tables first (found, created, widened), so that every op is made with its table's
        // final columns.
        let mut missing = HashMap::new();
        let pending = msgs.iter().flat_map(|m| m.ops.iter()).filter(|op| op.kind == OpKind::Pending);
        for (op, p) in pending.filter_map(|op| Some((op, op.pending.as_deref()?))) {
            self.index(s, op.projection, &p.table, &p.change, &mut missing)?;
        }
        let mut unresolved = Vec::new();
        let mut at = Vec::with_capacity(msgs.len());
        let mut made: Vec<Cow<'_, [Op]>> = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            match self.resolve(m, &missing) {
                Ok(ops) => {
                    self.tell_ignored(&ops);
                    at.push(i);
                    made.push(ops);
                }
                Err((projection, refusal)) => unresolved.push((i, projection, refusal)),
            }
        }
        let ops: Vec<&[Op]> = made.iter().map(|o| &**o).collect();
        let (mut refused, counts) = apply_refusing(s, &self.plan, &ops)?;
        for r in &mut refused {
            r.at = at[r.at];
        }
        Ok(Applied { refused, unresolved, counts })
    }

    /// One message's ops with each pending one made (borrowed when none is), or the refusal
    /// of the first that cannot be (`missing`: this group's tables that cannot be written).
    fn resolve<'m>(&self, m: &Msg<'m>, missing: &HashMap<(u16, TableName), Refusal>) -> Result<Cow<'m, [Op]>, (u16, Refusal)> {
        if !m.ops.iter().any(|op| op.kind == OpKind::Pending) {
            return Ok(Cow::Borrowed(m.ops));
        }
        let mut ops = Vec::with_capacity(m.ops.len());
        for op in m.ops {
            let Some(pending) = op.pending.as_deref().filter(|_| op.kind == OpKind::Pending) else {
                ops.push(op.clone());
                continue;
            };
            let Some(&index) = self.known.get(&op.projection).and_then(|t| t.get(&pending.table)) else {
                let refusal = missing.get(&(op.projection, pending.table.clone())).cloned();
                return Err((
                    op.projection,
                    refusal.unwrap_or_else(|| no_table(&self.plan.projections[op.projection as usize], &pending.table, "not found")),
                ));
            };
            let p = &self.plan.projections[index as usize];
            ops.push(p.pending_op(index, pending, m.topic, m.partition, m.record, m.row).map_err(|r| (index, r))?);
        }
        Ok(Cow::Owned(ops))
    }

    /// Find `template`'s projection for `table`, checked (and the table created or widened as
    /// `change`'s schema says, where the projection asks for it), or note why it cannot be.
    fn index<C: ProjectStore + Catalog + Lookup>(
        &mut self,
        conn: &mut C,
        template: u16,
        table: &TableName,
        change: &Change<'_>,
        missing: &mut HashMap<(u16, TableName), Refusal>,
    ) -> Result<(), StoreError> {
        // Known first: every pending op comes here, and a missing table's key is a copy.
        let result = match self.known.get(&template).and_then(|t| t.get(table)).copied() {
            Some(index) => self.widen(conn, index, change),
            None if missing.contains_key(&(template, table.clone())) => return Ok(()),
            None => self.reach(conn, template, table, change),
        };
        match result? {
            Ok(()) => Ok(()),
            Err(problem) => {
                missing.insert((template, table.clone()), no_table(&self.plan.projections[template as usize], table, &problem));
                Ok(())
            }
        }
    }

    /// The first change of a group to name `table`: check it (create it first, if asked and
    /// missing), keep its projection, add what columns `change` brings.
    fn reach<C: ProjectStore + Catalog + Lookup>(
        &mut self,
        conn: &mut C,
        template: u16,
        table: &TableName,
        change: &Change<'_>,
    ) -> Result<Result<(), Problem>, StoreError> {
        if self.plan.projections.len() >= MAX_PROJECTIONS {
            return Ok(Err(format!("the writer keeps {MAX_PROJECTIONS} projections at most, and has them")));
        }
        let mut created = false;
        let base = &self.plan.projections[template as usize];
        if base.creates_from_schema() {
            let p = base.for_table(table.clone());
            match read(conn, &p)? {
                Ok(Some(_)) => {}
                Ok(None) => {
                    if let Err(problem) = create(conn, &p, change)? {
                        return Ok(Err(problem));
                    }
                    created = true;
                }
                Err(problem) => return Ok(Err(problem)),
            }
        }
        let p = match self.checked(conn, template, table)? {
            Ok(p) => p,
            Err(problem) => return Ok(Err(problem)),
        };
        self.told.push(Told::Reached { projection: p.name.clone(), table: table.to_string(), created });
        self.plan.projections.push(p);
        let index = (self.plan.projections.len() - 1) as u16;
        self.known.entry(template).or_default().insert(table.clone(), index);
        self.journal.push(Undo::Pushed { template, table: table.clone() });
        serialize_shared_tables(&mut self.plan.projections);
        self.widen(conn, index, change)
    }

    /// With `add_columns`, add each field of `change`'s schema that the table lacks as a
    /// nullable column of its type, then check the table again.
    fn widen<C: ProjectStore + Catalog + Lookup>(
        &mut self,
        conn: &mut C,
        index: u16,
        change: &Change<'_>,
    ) -> Result<Result<(), Problem>, StoreError> {
        let p = &self.plan.projections[index as usize];
        let Some(schema) = change.schema.as_ref().filter(|_| p.adds_columns()) else { return Ok(Ok(())) };
        if self.covered.get(&index).is_some_and(|c| Arc::ptr_eq(c, schema)) {
            return Ok(Ok(()));
        }
        let fold = p.fold_case;
        let norm = |n: &str| if fold { n.to_ascii_lowercase() } else { n.to_string() };
        let mapped: HashSet<String> = p.map_all.iter().flatten().map(|n| norm(n)).collect();
        if schema.fields.iter().any(|(name, _)| !mapped.contains(&norm(name))) {
            // New to this projection: the catalog, read now, says what the table lacks (another
            // member, or a redrive, may have added it since).
            let template = self.known.iter().find_map(|(t, tables)| tables.values().any(|&i| i == index).then_some(*t)).unwrap_or(index);
            let table = p.table.clone();
            let info = match existing(conn, &self.plan.projections[template as usize].for_table(table.clone()))? {
                Ok(info) => info,
                Err(problem) => return Ok(Err(problem)),
            };
            let has: HashSet<String> = info.columns.iter().map(|c| norm(&c.name)).collect();
            let new: Vec<String> = schema.fields.iter().filter(|(name, _)| !has.contains(&norm(name))).map(|(n, _)| n.clone()).collect();
            for (name, ty) in schema.fields.iter().filter(|(name, _)| new.contains(name)) {
                let if_not = if C::ADD_COLUMN_IF_NOT_EXISTS { "IF NOT EXISTS " } else { "" };
                let sql = format!("ALTER TABLE {} ADD COLUMN {if_not}{} {}", table.quoted(), quote_ident(name), C::decl(*ty));
                match conn.in_savepoint(|c| c.ddl(&sql)) {
                    Ok(()) => {}
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => return Ok(Err(format!("column {name:?} could not be added: {e}"))),
                }
            }
            // The configured projection's settings, checked against the table as it is now.
            let p = match self.checked(conn, template, &table)? {
                Ok(p) => p,
                Err(problem) => return Ok(Err(problem)),
            };
            if !new.is_empty() {
                self.told.push(Told::ColumnsAdded { projection: p.name.clone(), table: table.to_string(), columns: new });
            }
            let was = std::mem::replace(&mut self.plan.projections[index as usize], p);
            self.journal.push(Undo::Replaced { index, was: Box::new(was) });
            serialize_shared_tables(&mut self.plan.projections);
        }
        self.covered.insert(index, schema.clone());
        Ok(Ok(()))
    }

    /// `template`'s projection for `table`, checked against the table as the start-up checks a
    /// configured one (its warnings told), or why the table cannot be written.
    fn checked<C: ProjectStore + Catalog + Lookup>(
        &mut self,
        conn: &mut C,
        template: u16,
        table: &TableName,
    ) -> Result<Result<Projection, Problem>, StoreError> {
        let mut p = self.plan.projections[template as usize].for_table(table.clone());
        let info = match existing(conn, &p)? {
            Ok(info) => info,
            Err(problem) => return Ok(Err(problem)),
        };
        let mut warnings = Vec::new();
        if let Err(e) = complete(&mut p, &info, C::TEXT_HOLDS_NUL, &mut warnings) {
            return Ok(Err(fix(e)));
        }
        self.told.extend(warnings.into_iter().map(Told::Warning));
        Ok(Ok(p))
    }

    /// Tell, once per projection and field, a change's field its table has no column for.
    fn tell_ignored(&mut self, ops: &[Op]) {
        for op in ops.iter().filter(|op| op.ignored.is_some()) {
            let told = self.ignored.entry(op.projection).or_default();
            for field in op.ignored.iter().flat_map(|f| f.iter()) {
                if told.len() < 1_000 && !told.contains(field.as_str()) {
                    told.insert(field.clone());
                    let p = &self.plan.projections[op.projection as usize];
                    self.told.push(Told::Ignored { projection: p.name.clone(), table: p.table.to_string(), field: field.clone() });
                }
            }
        }
    }
}

/// The table's catalog entry (`None`: no such table), read in a savepoint (an error must not
/// end the group's transaction); what keeps it from being read.
fn read<C: ProjectStore + Catalog + Lookup>(conn: &mut C, p: &Projection) -> Result<Result<Option<TableInfo>, Problem>, StoreError> {
    match conn.in_savepoint(|c| c.table_info(p)) {
        Ok(info) => Ok(Ok(info)),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => Ok(Err(match conn.in_savepoint(|c| c.schema_missing(&p.table, &e)) {
            Ok(true) => fix(missing_schema(p)),
            _ => format!("its catalog could not be read: {e}"),
        })),
    }
}

/// The table's catalog entry, or why it cannot be written (not there, not readable).
fn existing<C: ProjectStore + Catalog + Lookup>(conn: &mut C, p: &Projection) -> Result<Result<TableInfo, Problem>, StoreError> {
    Ok(match read(conn, p)? {
        Ok(Some(info)) => Ok(info),
        Ok(None) => Err(absent(conn, p)?),
        Err(problem) => Err(problem),
    })
}

/// Why a table that is not there cannot be written, with the fix.
fn absent<C: ProjectStore + Catalog + Lookup>(conn: &mut C, p: &Projection) -> Result<Problem, StoreError> {
    let other_case = conn.in_savepoint(|c| c.other_case(&p.table))?;
    if other_case.is_empty() && conn.in_savepoint(|c| c.no_such_schema(&p.table))? {
        return Ok(fix(missing_schema(p)));
    }
    Ok(fix(missing_table(p, &other_case)))
}

/// `CREATE TABLE IF NOT EXISTS` from `change`'s schema: its fields (a listed column's declared
/// type first), the configured key else the Kafka key's fields as primary key. A member that
/// created it first wins; this one then finds it.
fn create<C: ProjectStore + Catalog + Lookup>(
    conn: &mut C,
    p: &Projection,
    change: &Change<'_>,
) -> Result<Result<(), Problem>, StoreError> {
    let Some(schema) = &change.schema else {
        return Ok(Err(
            "it does not exist, and the change has no schema to create it from (Connect's JSON wrapper with schemas.enable=true)".into(),
        ));
    };
    let mut columns: Vec<(String, crate::project::SqlType)> = schema
        .fields
        .iter()
        .map(|(name, ty)| (name.clone(), p.columns.iter().find(|c| &c.name == name).and_then(|c| c.declared).unwrap_or(*ty)))
        .collect();
    // Listed columns the row image does not feed (a source position, a constant), as declared.
    for c in &p.columns {
        if let (Some(ty), false) = (c.declared, columns.iter().any(|(n, _)| n == &c.name)) {
            columns.push((c.name.clone(), ty));
        }
    }
    let key: Vec<String> = if p.spec.key.is_empty() {
        change.key.as_deref().and_then(members).map(|m| m.iter().map(|(n, _)| n.to_string()).collect()).unwrap_or_default()
    } else {
        p.spec.key.clone()
    };
    if key.is_empty() {
        return Ok(Err("it does not exist, and the change has no key to make its primary key from: set key = [\"id\"]".into()));
    }
    if let Some(k) = key.iter().find(|k| !columns.iter().any(|(n, _)| n == *k)) {
        return Ok(Err(format!("it does not exist, and key column {k:?} is not a field of the change's schema")));
    }
    let sql = create_sql(&p.table, &columns, &key, C::decl);
    match conn.in_savepoint(|c| c.ddl(&sql)) {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.is_transient() => Err(e),
        // Another member's CREATE won the race (its commit made ours a duplicate): it is there.
        Err(_) if matches!(read(conn, p)?, Ok(Some(_))) => Ok(Ok(())),
        Err(e) => Ok(Err(format!("it does not exist and could not be created: {e}"))),
    }
}

/// The dead letter's refusal for a change whose table cannot be written.
fn no_table(p: &Projection, table: &TableName, problem: &str) -> Refusal {
    Refusal {
        reason: Reason::ProjectionNoTable,
        detail: format!("projection {}: table {table} (from {:?}): {problem}", p.name, p.spec.table),
    }
}

/// A check's problem and fix, as a dead letter's detail says them.
fn fix(e: crate::project::SpecError) -> String {
    format!("{}. Fix: {}", e.problem, e.fix)
}
