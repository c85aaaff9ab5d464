//! SQLite: each op is one or two statements with typed binds, in offset order — an `UPDATE` of
//! the key's row (guarded by `newer_wins`), then, when it changed nothing, an `INSERT … ON
//! CONFLICT (key) DO NOTHING` (never `INSERT OR REPLACE`, which deletes the row and its other
//! columns). Changes counts tell inserted from updated from unchanged.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Double, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

use super::{create_table_sql, Catalog, Counts, ProjectStore, TableInfo};
use crate::messages::PartitionKey;
use crate::project::{quote_ident, Cell, Mode, Op, Plan, Projection, SqlType};
use crate::storage::StoreError;

#[derive(QueryableByName)]
struct TableColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "type")]
    decl: String,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct IndexColumn {
    #[diesel(sql_type = Text)]
    idx: String,
    #[diesel(sql_type = Nullable<Text>)]
    col: Option<String>,
}

fn table_info(conn: &mut SqliteConnection, p: &Projection) -> Result<Option<TableInfo>, StoreError> {
    let schema = p.table.schema.clone().unwrap_or_else(|| "main".into());
    let columns = diesel::sql_query("SELECT name, type, pk FROM pragma_table_info(?1, ?2)")
        .bind::<Text, _>(&p.table.name)
        .bind::<Text, _>(&schema)
        .load::<TableColumn>(conn)?;
    if columns.is_empty() {
        return Ok(None);
    }
    let index = diesel::sql_query(
        "SELECT il.name AS idx, ii.name AS col FROM pragma_index_list(?1, ?2) AS il, pragma_index_info(il.name, ?2) AS ii \
         WHERE il.\"unique\" = 1 AND il.partial = 0",
    )
    .bind::<Text, _>(&p.table.name)
    .bind::<Text, _>(&schema)
    .load::<IndexColumn>(conn)?;
    let mut unique: Vec<(String, Option<BTreeSet<String>>)> = Vec::new();
    for c in index {
        let at = match unique.iter().position(|(i, _)| *i == c.idx) {
            Some(at) => at,
            None => {
                unique.push((c.idx.clone(), Some(BTreeSet::new())));
                unique.len() - 1
            }
        };
        // An expression in the index: not a set of plain columns.
        match (c.col, &mut unique[at].1) {
            (Some(col), Some(set)) => {
                set.insert(col);
            }
            (None, set) => *set = None,
            (Some(_), None) => {}
        }
    }
    let mut unique: Vec<BTreeSet<String>> = unique.into_iter().filter_map(|(_, s)| s).collect();
    let pk: BTreeSet<String> = columns.iter().filter(|c| c.pk > 0).map(|c| c.name.clone()).collect();
    if !pk.is_empty() {
        unique.push(pk);
    }
    Ok(Some(TableInfo {
        columns: columns.into_iter().map(|c| (c.name, c.decl.clone(), Some(SqlType::of_sqlite(&c.decl)))).collect(),
        unique,
        fold_case: true,
    }))
}

impl Catalog for SqliteConnection {
    fn table_info(&mut self, p: &Projection) -> Result<Option<TableInfo>, StoreError> {
        table_info(self, p)
    }

    fn create_table(&mut self, p: &Projection) -> Result<(), StoreError> {
        diesel::sql_query(create_table_sql(p, |t| t.sqlite_decl().to_string())).execute(self)?;
        Ok(())
    }
}

/// A value bound as the type SQLite keeps it: numbers as numbers, booleans as 0/1, blobs as
/// blobs, the rest (timestamps with a fixed number of digits, so they compare as text) as text.
enum Bind<'a> {
    Null,
    Int(i64),
    Float(f64),
    Bool(i32),
    Text(std::borrow::Cow<'a, str>),
    Bytes(&'a [u8]),
}

impl<'a> Bind<'a> {
    fn of(c: &'a Cell) -> Self {
        match c {
            Cell::Null => Bind::Null,
            Cell::Int(i) => Bind::Int(*i),
            Cell::Float(f) => Bind::Float(*f),
            Cell::Bool(b) => Bind::Bool(i32::from(*b)),
            Cell::Bytes(b) => Bind::Bytes(b),
            other => other.to_text().map_or(Bind::Null, Bind::Text),
        }
    }
}

/// Marks a bind's place in a statement's text: names were checked to hold no NUL.
const BIND: char = '\0';

/// One statement and its binds. Not marked unsafe to cache (as `sql_query` is), so Diesel
/// prepares it once per connection for its text and bind types and afterwards only binds and
/// steps it: a projection has few shapes, and preparing each op anew halved what SQLite did.
struct Statement<'a> {
    /// SQL with a [`BIND`] where each value goes.
    sql: &'a str,
    binds: Vec<Bind<'a>>,
}

impl QueryId for Statement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Sqlite> for Statement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let mut binds = self.binds.iter();
        for (i, piece) in self.sql.split(BIND).enumerate() {
            if i > 0 {
                match binds.next() {
                    Some(Bind::Null) | None => out.push_bind_param::<Nullable<Text>, Option<String>>(&None)?,
                    Some(Bind::Int(v)) => out.push_bind_param::<BigInt, _>(v)?,
                    Some(Bind::Float(v)) => out.push_bind_param::<Double, _>(v)?,
                    Some(Bind::Bool(v)) => out.push_bind_param::<Integer, _>(v)?,
                    Some(Bind::Text(v)) => out.push_bind_param::<Text, str>(v.as_ref())?,
                    Some(Bind::Bytes(v)) => out.push_bind_param::<Binary, [u8]>(v)?,
                }
            }
            out.push_sql(piece);
        }
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for Statement<'_> {}

fn run(conn: &mut SqliteConnection, sql: String, cells: &[&Cell]) -> Result<u64, StoreError> {
    Ok(Statement { sql: &sql, binds: cells.iter().map(|c| Bind::of(c)).collect() }.execute(conn)? as u64)
}

fn apply_one(conn: &mut SqliteConnection, p: &Projection, op: &Op, counts: &mut Counts) -> Result<(), StoreError> {
    let table = p.table.quoted();
    let name = |i: usize| quote_ident(&p.columns[i].name);
    let cell = |i: usize| op.cells[i].as_ref().unwrap_or(&Cell::Null);
    let key_where = p.key.iter().map(|&k| format!("{} = {BIND}", name(k))).collect::<Vec<_>>().join(" AND ");
    let key_cells: Vec<&Cell> = p.key.iter().map(|&k| cell(k)).collect();
    if op.delete {
        let d = run(conn, format!("DELETE FROM {table} WHERE {key_where}"), &key_cells)?;
        counts.deleted += d;
        counts.unchanged += 1 - d.min(1);
        return Ok(());
    }
    let present: Vec<usize> = (0..p.columns.len()).filter(|&i| op.cells[i].is_some()).collect();
    let sets: Vec<usize> = present.iter().copied().filter(|i| !p.key.contains(i)).collect();
    let insert = |conn: &mut SqliteConnection, tail: &str| -> Result<u64, StoreError> {
        if present.is_empty() {
            return run(conn, format!("INSERT INTO {table} DEFAULT VALUES"), &[]);
        }
        let names = present.iter().map(|&i| name(i)).collect::<Vec<_>>().join(", ");
        let marks = vec![BIND.to_string(); present.len()].join(", ");
        let cells: Vec<&Cell> = present.iter().map(|&i| cell(i)).collect();
        run(conn, format!("INSERT INTO {table} ({names}) VALUES ({marks}){tail}"), &cells)
    };
    let update = |conn: &mut SqliteConnection| -> Result<u64, StoreError> {
        if sets.is_empty() {
            return Ok(0);
        }
        let set = sets.iter().map(|&i| format!("{} = {BIND}", name(i))).collect::<Vec<_>>().join(", ");
        let mut cells: Vec<&Cell> = sets.iter().map(|&i| cell(i)).chain(key_cells.iter().copied()).collect();
        let guard = match p.newer_wins {
            Some(v) => {
                cells.push(cell(v));
                format!(" AND ({0} IS NULL OR {BIND} > {0})", name(v))
            }
            None => String::new(),
        };
        run(conn, format!("UPDATE {table} SET {set} WHERE {key_where}{guard}"), &cells)
    };
    match p.mode {
        Mode::Insert => counts.inserted += insert(conn, "")?,
        Mode::Update => {
            let u = update(conn)?;
            counts.updated += u;
            counts.unchanged += 1 - u.min(1);
        }
        Mode::Upsert => {
            if update(conn)? == 1 {
                counts.updated += 1;
            } else {
                let keys = p.key.iter().map(|&k| name(k)).collect::<Vec<_>>().join(", ");
                let i = insert(conn, &format!(" ON CONFLICT ({keys}) DO NOTHING"))?;
                counts.inserted += i;
                counts.unchanged += 1 - i.min(1);
            }
        }
    }
    Ok(())
}

impl ProjectStore for SqliteConnection {
    fn apply_ops(&mut self, plan: &Plan, messages: &[&[Op]], counts: &mut [Counts]) -> Result<(), StoreError> {
        for op in messages.iter().flat_map(|ops| ops.iter()) {
            let at = op.projection as usize;
            apply_one(self, &plan.projections[at], op, &mut counts[at])?;
        }
        Ok(())
    }

    fn delete_events(&mut self, rows: &[(&PartitionKey, i64)]) -> Result<(), StoreError> {
        for (k, offset) in rows {
            diesel::sql_query("DELETE FROM events WHERE topic = ?1 AND \"partition\" = ?2 AND \"offset\" = ?3")
                .bind::<Text, _>(&k.topic)
                .bind::<Integer, _>(k.partition)
                .bind::<BigInt, _>(offset)
                .execute(self)?;
        }
        Ok(())
    }
}
