//! SQLite: each op is one or two statements with typed binds, in offset order — an `UPDATE` of
//! the key's row (guarded by `newer_wins`), then, when it changed nothing and the key has no row,
//! an `INSERT` (never `INSERT OR REPLACE`, which deletes the row and its other columns). Changes
//! counts tell inserted from updated from unchanged.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Double, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

use super::{steps, truncate, Catalog, ColumnInfo, Counts, Pass, ProjectStore, Step, TableInfo};
use crate::project::{quote_ident, sqlite_numeric_affinity, Cell, KeyForm, Mode, Op, Plan, Projection, SqlType};
use crate::records::PartitionKey;
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
    /// 2 and 3: a generated column (virtual, stored).
    #[diesel(sql_type = Integer)]
    hidden: i32,
}

/// tributary's own tables (the migrations create them in `main`).
const OWN_TABLES: [&str; 4] = ["events", "dead_letters", "consumer_offsets", "__diesel_schema_migrations"];

#[derive(QueryableByName)]
struct IndexColumn {
    #[diesel(sql_type = Text)]
    idx: String,
    #[diesel(sql_type = Nullable<Text>)]
    col: Option<String>,
}

fn table_info(conn: &mut SqliteConnection, p: &Projection) -> Result<Option<TableInfo>, StoreError> {
    let schema = p.table.schema.clone().unwrap_or_else(|| "main".into());
    let columns = diesel::sql_query("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1, ?2) WHERE hidden <> 1")
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
    let mut primary: Vec<(i32, String)> = columns.iter().filter(|c| c.pk > 0).map(|c| (c.pk, c.name.clone())).collect();
    primary.sort();
    let primary: Vec<String> = primary.into_iter().map(|(_, name)| name).collect();
    let pk: BTreeSet<String> = primary.iter().cloned().collect();
    if !pk.is_empty() {
        unique.push(pk);
    }
    let column = |c: TableColumn| {
        let kind = SqlType::of_sqlite(&c.decl);
        let numeric_affinity = sqlite_numeric_affinity(&c.decl);
        ColumnInfo {
            kind: Some(kind),
            element: None,
            is_enum: false,
            unwritable: (c.hidden >= 2).then(|| "GENERATED ALWAYS AS (...)".to_string()),
            // Integer, real and numeric affinities compare numbers by value, the others as stored.
            key_form: if numeric_affinity { KeyForm::Number } else { KeyForm::Text },
            lossy_decimals: numeric_affinity,
            name: c.name,
            cast: c.decl.clone(),
            formatted: c.decl,
        }
    };
    let folded = p.table.name.to_ascii_lowercase();
    let schema = schema.to_ascii_lowercase();
    Ok(Some(TableInfo {
        own: schema == "main" && OWN_TABLES.contains(&folded.as_str()),
        id: format!("sqlite:{schema}.{folded}"),
        columns: columns.into_iter().map(column).collect(),
        unique,
        primary,
        fold_case: true,
    }))
}

impl Catalog for SqliteConnection {
    fn table_info(&mut self, p: &Projection) -> Result<Option<TableInfo>, StoreError> {
        table_info(self, p)
    }

    const ADD_COLUMN_IF_NOT_EXISTS: bool = false;

    fn decl(t: SqlType) -> String {
        t.sqlite_decl().to_string()
    }

    fn ddl(&mut self, sql: &str) -> Result<(), StoreError> {
        diesel::sql_query(sql).execute(self)?;
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

/// Marks a bind's place in a statement's text while it is built: names were checked to hold no NUL.
const BIND: char = '\0';

/// A statement's text cut at its binds, once per shape: Diesel walks a statement more than once
/// per execution (for the cache key, then for the binds), so the text is not searched each time.
struct Sql {
    pieces: Vec<String>,
    /// The column whose value goes into each bind, in order.
    cols: Vec<usize>,
}

impl Sql {
    fn new(text: &str, cols: Vec<usize>) -> Self {
        let pieces: Vec<String> = text.split(BIND).map(str::to_string).collect();
        debug_assert_eq!(pieces.len(), cols.len() + 1, "one column per bind in {text}");
        Self { pieces, cols }
    }
}

/// One statement and its binds. Not marked unsafe to cache (as `sql_query` is), so Diesel
/// prepares it once per connection for its text and bind types and afterwards only binds and
/// steps it: a projection has few shapes, and an op is never prepared anew.
struct Statement<'a> {
    /// The text around the binds: one piece more than there are binds.
    pieces: &'a [String],
    binds: Vec<Bind<'a>>,
}

impl QueryId for Statement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Sqlite> for Statement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let mut binds = self.binds.iter();
        for (i, piece) in self.pieces.iter().enumerate() {
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

/// A `SELECT 1 …` (whether a key has a row) reads its rows as integers.
impl Query for Statement<'_> {
    type SqlType = Integer;
}

/// One (projection, kind, columns present)'s statements, built once per apply: each statement's
/// text and the columns whose values it binds, in order.
struct Shape {
    /// A delete's; else the guarded `UPDATE` (none when only key columns are present).
    first: Option<Sql>,
    /// Whether the key has a row, asked in upsert mode when the `UPDATE` changed nothing.
    exists: Option<Sql>,
    /// The `INSERT` (in upsert mode only where the key has no row); none for deletes and updates.
    insert: Option<Sql>,
}

fn shape(p: &Projection, delete: bool, present: &[bool]) -> Shape {
    let table = p.table.quoted();
    let name = |i: usize| quote_ident(&p.columns[i].name);
    let list = |of: &[usize], f: &dyn Fn(usize) -> String, sep: &str| of.iter().map(|&i| f(i)).collect::<Vec<_>>().join(sep);
    let key_where = list(&p.key, &|k| format!("{} = {BIND}", name(k)), " AND ");
    if delete {
        return Shape {
            first: Some(Sql::new(&format!("DELETE FROM {table} WHERE {key_where}"), p.key.clone())),
            exists: None,
            insert: None,
        };
    }
    let cols: Vec<usize> = (0..p.columns.len()).filter(|&i| present[i]).collect();
    let sets: Vec<usize> = cols.iter().copied().filter(|i| !p.key.contains(i)).collect();
    let update = (p.mode != Mode::Insert && !sets.is_empty()).then(|| {
        let mut binds: Vec<usize> = sets.iter().chain(&p.key).copied().collect();
        let guard = p.newer_wins.map_or(String::new(), |v| {
            binds.push(v);
            format!(" AND ({0} IS NULL OR {BIND} > {0})", name(v))
        });
        Sql::new(&format!("UPDATE {table} SET {} WHERE {key_where}{guard}", list(&sets, &|i| format!("{} = {BIND}", name(i)), ", ")), binds)
    });
    let insert = (p.mode != Mode::Update).then(|| {
        if cols.is_empty() {
            return Sql::new(&format!("INSERT INTO {table} DEFAULT VALUES"), Vec::new());
        }
        let (names, marks) = (list(&cols, &name, ", "), vec![BIND.to_string(); cols.len()].join(", "));
        Sql::new(&format!("INSERT INTO {table} ({names}) VALUES ({marks})"), cols.clone())
    });
    // In upsert mode an UPDATE that changed nothing leaves a question only where a row can hold
    // it back (`newer_wins`) or there was nothing to set: does the key have a row? If so the
    // message is `unchanged` — never proposed as an insert, which SQLite, like PostgreSQL, checks
    // (NOT NULL, CHECK) before it sees the conflict.
    let exists = (p.mode == Mode::Upsert && (p.newer_wins.is_some() || update.is_none()))
        .then(|| Sql::new(&format!("SELECT 1 FROM {table} WHERE {key_where}"), p.key.clone()));
    Shape { first: update, exists, insert }
}

/// Which of an op's columns are present: a bit each, without an allocation for the common
/// table of up to 128 mapped columns.
#[derive(PartialEq, Eq, Hash)]
enum Present {
    Bits(u128),
    Wide(Vec<bool>),
}

impl Present {
    fn of(cells: &[Option<Cell>]) -> Self {
        if cells.len() <= 128 {
            Present::Bits(cells.iter().enumerate().fold(0, |bits, (i, c)| bits | (u128::from(c.is_some()) << i)))
        } else {
            Present::Wide(cells.iter().map(Option::is_some).collect())
        }
    }
}

/// `sql` with `op`'s values bound.
fn statement<'a>(sql: &'a Sql, op: &'a Op) -> Statement<'a> {
    Statement { pieces: &sql.pieces, binds: sql.cols.iter().map(|&i| op.cells[i].as_ref().map_or(Bind::Null, Bind::of)).collect() }
}

fn apply_one(conn: &mut SqliteConnection, p: &Projection, op: &Op, sh: &Shape, counts: &mut Counts) -> Result<(), StoreError> {
    let run = |conn: &mut SqliteConnection, sql: &Sql| -> Result<u64, StoreError> { Ok(statement(sql, op).execute(conn)? as u64) };
    let changed = |conn: &mut SqliteConnection, s: &Option<Sql>| s.as_ref().map_or(Ok(0), |s| run(conn, s));
    if op.is_delete() {
        let d = changed(conn, &sh.first)?;
        counts.deleted += d;
        counts.unchanged += 1 - d.min(1);
        return Ok(());
    }
    match p.mode {
        Mode::Insert => counts.inserted += changed(conn, &sh.insert)?,
        Mode::Update => {
            let u = changed(conn, &sh.first)?;
            counts.updated += u;
            counts.unchanged += 1 - u.min(1);
        }
        Mode::Upsert => {
            if changed(conn, &sh.first)? == 1 {
                counts.updated += 1;
            } else if let Some(exists) = &sh.exists {
                if statement(exists, op).get_results::<i32>(conn)?.is_empty() {
                    counts.inserted += changed(conn, &sh.insert)?;
                } else {
                    counts.unchanged += 1;
                }
            } else {
                counts.inserted += changed(conn, &sh.insert)?;
            }
        }
    }
    Ok(())
}

impl ProjectStore for SqliteConnection {
    /// Each op's statements are exact already: a refused range is not worth a second try.
    const FIRST_PASS: Pass = Pass::Exact;

    fn apply_ops(&mut self, plan: &Plan, messages: &[&[Op]], _pass: Pass, counts: &mut [Counts]) -> Result<(), StoreError> {
        let mut shapes: HashMap<(u16, bool, Present), Shape> = HashMap::new();
        for step in steps(messages, counts) {
            let run = match step {
                Step::Run(run) => run,
                Step::Truncate(op) => {
                    truncate(plan, op, counts, |sql| Ok(diesel::sql_query(sql).execute(self)?))?;
                    continue;
                }
            };
            for op in run.iter().flat_map(|ops| ops.iter()) {
                let at = op.projection as usize;
                let p = &plan.projections[at];
                let key = (op.projection, op.is_delete(), Present::of(&op.cells));
                let sh = shapes.entry(key).or_insert_with(|| {
                    let present: Vec<bool> = op.cells.iter().map(Option::is_some).collect();
                    shape(p, op.is_delete(), &present)
                });
                apply_one(self, p, op, sh, &mut counts[at])?;
            }
        }
        Ok(())
    }

    /// SQLite refuses data only by constraint, type and size codes (classes 22 and 23), which
    /// blame the message without a probe.
    fn probe(&mut self, _: &Plan, _: &[Op]) -> Result<(), StoreError> {
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
