//! Template projections' tables (`table = "${source.table}"`), in the writer: a table a change
//! names is found and checked the first time a message needs it, inside the batch's transaction,
//! then kept as a projection of its own, appended to the writer's plan (its ops index it there).
//! A table that cannot be written refuses those messages (`projection_no_table`), not the batch;
//! it is looked up again by the next batch, so it is used as soon as it is there.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::lookup::Lookup;
use super::{apply_refusing, complete, missing_schema, missing_table, serialize_shared_tables, Catalog, Counts, ProjectStore, Refused};
use crate::project::{Op, OpKind, Plan, Projection, TableName};
use crate::records::{EventRow, RawMessage, Reason, Refusal};
use crate::storage::StoreError;

/// The most tables the writer keeps projections for (its ops index them with a `u16`).
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

/// What the writer tells in its log after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Told {
    /// A template projection reached a table, checked.
    Reached { projection: String, table: String },
    /// What a table's check warns of (it is written all the same).
    Warning(String),
    /// A change's field its table has no column for (once per projection, table and field).
    Ignored { projection: String, table: String, field: String },
}

/// The writer's projections: the configured ones, then one per table a template reached.
pub(crate) struct Tables {
    plan: Plan,
    /// By template projection, then table: the index of its projection for that table.
    known: HashMap<u16, HashMap<TableName, u16>>,
    /// Fields told ignored, by projection.
    ignored: HashMap<u16, HashSet<String>>,
    told: Vec<Told>,
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

impl Tables {
    pub(crate) fn new(plan: &Arc<Plan>) -> Tables {
        Tables { plan: Plan::clone(plan), known: HashMap::new(), ignored: HashMap::new(), told: Vec::new() }
    }

    /// Every projection the ops of a resolved message may index.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// What to tell since the last time.
    pub(crate) fn take_told(&mut self) -> Vec<Told> {
        std::mem::take(&mut self.told)
    }

    /// Make the pending ops of `msgs` with their tables' projections, then apply every op,
    /// isolating what is refused (see [`apply_refusing`]).
    pub(crate) fn apply<S: ProjectStore + Catalog + Lookup>(&mut self, s: &mut S, msgs: &[Msg<'_>]) -> Result<Applied, StoreError> {
        let mut unresolved = Vec::new();
        let mut at = Vec::with_capacity(msgs.len());
        let mut made: Vec<Cow<'_, [Op]>> = Vec::with_capacity(msgs.len());
        let mut missing = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            match self.resolve(s, m, &mut missing)? {
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
    #[allow(clippy::type_complexity)]
    fn resolve<'m, C: ProjectStore + Catalog + Lookup>(
        &mut self,
        conn: &mut C,
        m: &Msg<'m>,
        missing: &mut HashMap<(u16, TableName), Refusal>,
    ) -> Result<Result<Cow<'m, [Op]>, (u16, Refusal)>, StoreError> {
        if !m.ops.iter().any(|op| op.kind == OpKind::Pending) {
            return Ok(Ok(Cow::Borrowed(m.ops)));
        }
        let mut ops = Vec::with_capacity(m.ops.len());
        for op in m.ops {
            let Some(pending) = op.pending.as_deref().filter(|_| op.kind == OpKind::Pending) else {
                ops.push(op.clone());
                continue;
            };
            let index = match self.index(conn, op.projection, &pending.table, missing)? {
                Ok(index) => index,
                Err(refusal) => return Ok(Err((op.projection, refusal))),
            };
            let p = &self.plan.projections[index as usize];
            match p.pending_op(index, pending, m.topic, m.partition, m.record, m.row) {
                Ok(made) => ops.push(made),
                Err(refusal) => return Ok(Err((index, refusal))),
            }
        }
        Ok(Ok(Cow::Owned(ops)))
    }

    /// The index of `template`'s projection for `table`, checked against it the first time.
    fn index<C: ProjectStore + Catalog + Lookup>(
        &mut self,
        conn: &mut C,
        template: u16,
        table: &TableName,
        missing: &mut HashMap<(u16, TableName), Refusal>,
    ) -> Result<Result<u16, Refusal>, StoreError> {
        if let Some(&i) = self.known.get(&template).and_then(|t| t.get(table)) {
            return Ok(Ok(i));
        }
        if let Some(refusal) = missing.get(&(template, table.clone())) {
            return Ok(Err(refusal.clone()));
        }
        let mut p = self.plan.projections[template as usize].for_table(table.clone());
        let checked = self.check(conn, &mut p)?;
        let index = match checked {
            Err(problem) => {
                let refusal = Refusal {
                    reason: Reason::ProjectionNoTable,
                    detail: format!("projection {}: table {table} (from {:?}): {problem}", p.name, p.spec.table),
                };
                missing.insert((template, table.clone()), refusal.clone());
                return Ok(Err(refusal));
            }
            Ok(warnings) => {
                self.told.extend(warnings.into_iter().map(Told::Warning));
                self.told.push(Told::Reached { projection: p.name.clone(), table: table.to_string() });
                self.plan.projections.push(p);
                serialize_shared_tables(&mut self.plan.projections);
                (self.plan.projections.len() - 1) as u16
            }
        };
        self.known.entry(template).or_default().insert(table.clone(), index);
        Ok(Ok(index))
    }

    /// Check `p` against its table as the start-up does a configured projection: the warnings,
    /// or what keeps the table from being written.
    fn check<C: ProjectStore + Catalog + Lookup>(
        &mut self,
        conn: &mut C,
        p: &mut Projection,
    ) -> Result<Result<Vec<String>, String>, StoreError> {
        if self.plan.projections.len() >= MAX_PROJECTIONS {
            return Ok(Err(format!("the writer keeps {MAX_PROJECTIONS} projections at most, and has them")));
        }
        // In a savepoint: an error must not end the batch's transaction (PostgreSQL aborts it).
        let info = match conn.in_savepoint(|c| c.table_info(p)) {
            Ok(info) => info,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                return Ok(Err(match conn.in_savepoint(|c| c.schema_missing(&p.table, &e)) {
                    Ok(true) => fix(missing_schema(p)),
                    _ => format!("its catalog could not be read: {e}"),
                }))
            }
        };
        let Some(info) = info else {
            let other_case = conn.in_savepoint(|c| c.other_case(&p.table))?;
            if other_case.is_empty() && conn.in_savepoint(|c| c.no_such_schema(&p.table))? {
                return Ok(Err(fix(missing_schema(p))));
            }
            return Ok(Err(fix(missing_table(p, &other_case))));
        };
        let mut warnings = Vec::new();
        Ok(complete(p, &info, C::TEXT_HOLDS_NUL, &mut warnings).map(|()| warnings).map_err(fix))
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

/// A check's problem and fix, as a dead letter's detail says them.
fn fix(e: crate::project::SpecError) -> String {
    format!("{}. Fix: {}", e.problem, e.fix)
}
