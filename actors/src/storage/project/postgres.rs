//! PostgreSQL: a group of ops is one set statement over `unnest` of arrays (one per column
//! present, sent in binary where the values allow), each value cast to the column's own type —
//! `INSERT … SELECT`, `UPDATE … FROM`, `DELETE … USING`; an upsert `INSERT … ON CONFLICT DO
//! UPDATE` in the fast pass and both of the first two in one statement in the exact one — so a
//! group costs one round trip whatever its size.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Binary, Bool, Date, Double, Integer, Nullable, Text, Timestamp, Timestamptz};

use super::{groups, steps, truncate, Catalog, ColumnInfo, Counts, Group, Pass, ProjectStore, Step, TableInfo};
use crate::project::{quote_ident, Cell, KeyForm, Mode, Op, OpKind, Plan, Projection, SqlType};
use crate::records::PartitionKey;
use crate::storage::StoreError;

#[derive(QueryableByName)]
struct Changed {
    #[diesel(sql_type = BigInt)]
    inserted: i64,
    #[diesel(sql_type = BigInt)]
    updated: i64,
}

#[derive(QueryableByName)]
struct CatalogColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    formatted: String,
    #[diesel(sql_type = Text)]
    base: String,
    #[diesel(sql_type = Text)]
    typname: String,
    #[diesel(sql_type = Bool)]
    is_enum: bool,
    #[diesel(sql_type = Nullable<Text>)]
    element: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    unwritable: Option<String>,
}

#[derive(QueryableByName)]
struct Identity {
    #[diesel(sql_type = BigInt)]
    oid: i64,
    #[diesel(sql_type = Bool)]
    own: bool,
}

#[derive(QueryableByName)]
struct IndexColumn {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_primary: bool,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Nullable<Text>)]
    t: Option<String>,
}

/// One column's values for a set statement, as one array parameter: in PostgreSQL's binary
/// form where every cell has one binary-sendable type of the column's own kind, so neither side
/// formats or parses text per value; as text otherwise, which keeps the text a text column gets,
/// numeric's every digit and the casts of unknown types.
enum Column<'a> {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Timestamptz(Vec<Option<DateTime<Utc>>>),
    Timestamp(Vec<Option<NaiveDateTime>>),
    Date(Vec<Option<NaiveDate>>),
    Bytes(Vec<Option<&'a [u8]>>),
    Text(Vec<Option<Cow<'a, str>>>),
}

/// A value as PostgreSQL reads it from text (`bytea` in its hex form).
fn text_of(c: &Cell) -> Option<Cow<'_, str>> {
    match c {
        Cell::Bytes(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            b.iter().for_each(|x| write!(s, "{x:02x}").unwrap_or_default());
            Some(Cow::Owned(s))
        }
        other => other.to_text(),
    }
}

impl<'a> Column<'a> {
    fn of(ops: &[&'a Op], i: usize, column: Option<SqlType>) -> Self {
        let cells = || ops.iter().map(move |op| op.cells[i].as_ref().filter(|c| !matches!(c, Cell::Null)));
        // Every cell of the column as the variant's value, or `None` when one is of another type.
        macro_rules! typed {
            ($variant:ident, $v:ident => $value:expr) => {
                cells()
                    .map(|c| match c {
                        None => Some(None),
                        Some(Cell::$variant($v)) => Some(Some($value)),
                        Some(_) => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(Column::$variant)
            };
        }
        use SqlType as T;
        // Binary only where the server's cast from the binary type equals its cast from our text.
        let typed_column = match (cells().flatten().next(), column) {
            (Some(Cell::Int(_)), Some(T::SmallInt | T::Integer | T::BigInt | T::Numeric)) => typed!(Int, v => *v),
            (Some(Cell::Float(_)), Some(T::Double)) => typed!(Float, v => *v),
            (Some(Cell::Bool(_)), Some(T::Boolean)) => typed!(Bool, v => *v),
            (Some(Cell::Timestamptz(_)), Some(T::Timestamptz)) => typed!(Timestamptz, v => *v),
            (Some(Cell::Timestamp(_)), Some(T::Timestamp)) => typed!(Timestamp, v => *v),
            (Some(Cell::Date(_)), Some(T::Date)) => typed!(Date, v => *v),
            (Some(Cell::Bytes(_)), Some(T::Bytea)) => typed!(Bytes, v => v.as_slice()),
            _ => None,
        };
        typed_column.unwrap_or_else(|| Column::Text(cells().map(|c| c.and_then(text_of)).collect()))
    }

    /// The array's type, as the statement casts its parameter.
    fn array_type(&self) -> &'static str {
        match self {
            Column::Int(_) => "int8[]",
            Column::Float(_) => "float8[]",
            Column::Bool(_) => "bool[]",
            Column::Timestamptz(_) => "timestamptz[]",
            Column::Timestamp(_) => "timestamp[]",
            Column::Date(_) => "date[]",
            Column::Bytes(_) => "bytea[]",
            Column::Text(_) => "text[]",
        }
    }

    fn bind(self, q: BoxedSqlQuery<'a, Pg, SqlQuery>) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
        match self {
            Column::Int(v) => q.bind::<Array<Nullable<BigInt>>, _>(v),
            Column::Float(v) => q.bind::<Array<Nullable<Double>>, _>(v),
            Column::Bool(v) => q.bind::<Array<Nullable<Bool>>, _>(v),
            Column::Timestamptz(v) => q.bind::<Array<Nullable<Timestamptz>>, _>(v),
            Column::Timestamp(v) => q.bind::<Array<Nullable<Timestamp>>, _>(v),
            Column::Date(v) => q.bind::<Array<Nullable<Date>>, _>(v),
            Column::Bytes(v) => q.bind::<Array<Nullable<Binary>>, _>(v),
            Column::Text(v) => q.bind::<Array<Nullable<Text>>, _>(v),
        }
    }
}

/// tributary's own tables, as its connections resolve them (the migrations create them unqualified).
const OWN_TABLES: &str = "to_regclass('events'), to_regclass('dead_letters'), to_regclass('consumer_offsets'), \
     to_regclass('__diesel_schema_migrations')";

fn table_info(conn: &mut PgConnection, p: &Projection) -> Result<Option<TableInfo>, StoreError> {
    let name = p.table.quoted();
    let exists = diesel::sql_query("SELECT to_regclass($1)::text AS t").bind::<Text, _>(&name).get_result::<Exists>(conn)?;
    if exists.t.is_none() {
        return Ok(None);
    }
    let id =
        diesel::sql_query(format!("SELECT to_regclass($1)::oid::bigint AS oid, COALESCE(to_regclass($1) IN ({OWN_TABLES}), false) AS own"))
            .bind::<Text, _>(&name)
            .get_result::<Identity>(conn)?;
    // Each value is cast to the column's type by its own name, which carries no modifier
    // (`format_type(oid, NULL)` says `character`, which SQL reads as char(1), and `bit` bit(1)).
    let columns = diesel::sql_query(
        "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS formatted, \
         format('%I.%I', n.nspname, t.typname) AS base, COALESCE(b.typname, t.typname)::text AS typname, \
         COALESCE(b.typtype, t.typtype) = 'e' AS is_enum, e.typname::text AS element, \
         CASE WHEN a.attgenerated <> '' THEN 'GENERATED ALWAYS AS (...) STORED' \
              WHEN a.attidentity = 'a' THEN 'GENERATED ALWAYS AS IDENTITY' END AS unwritable \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace \
         LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype \
         LEFT JOIN pg_type e ON COALESCE(b.typcategory, t.typcategory) = 'A' AND e.oid = COALESCE(b.typelem, t.typelem) \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind::<Text, _>(&name)
    .load::<CatalogColumn>(conn)?;
    let index = diesel::sql_query(
        // The key columns only (an index's INCLUDE columns follow its first indnkeyatts), of
        // indexes ON CONFLICT and a statement's own checks can use: valid, and not deferred.
        "SELECT i.indexrelid::bigint AS id, a.attname::text AS name, i.indisprimary AS is_primary FROM pg_index i \
         CROSS JOIN generate_series(0, i.indnkeyatts - 1) AS k(n) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.n] \
         WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indimmediate AND i.indisvalid \
         AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY i.indexrelid, k.n",
    )
    .bind::<Text, _>(&name)
    .load::<IndexColumn>(conn)?;
    let mut unique: Vec<(i64, BTreeSet<String>)> = Vec::new();
    let primary: Vec<String> = index.iter().filter(|c| c.is_primary).map(|c| c.name.clone()).collect();
    for c in index {
        match unique.iter_mut().find(|(id, _)| *id == c.id) {
            Some((_, set)) => {
                set.insert(c.name);
            }
            None => unique.push((c.id, BTreeSet::from([c.name]))),
        }
    }
    let column = |c: CatalogColumn| {
        let kind = SqlType::of_postgres(&c.typname);
        let key_form = match kind {
            _ if c.typname == "bpchar" => KeyForm::Padded,
            Some(k) if k.is_number() => KeyForm::Number,
            _ => KeyForm::Text,
        };
        ColumnInfo {
            kind: if c.element.is_some() { None } else { kind },
            element: c.element.map(|e| SqlType::of_postgres(&e).unwrap_or(SqlType::Text)),
            is_enum: c.is_enum,
            unwritable: c.unwritable,
            key_form,
            lossy_decimals: false,
            name: c.name,
            formatted: c.formatted,
            cast: c.base,
        }
    };
    Ok(Some(TableInfo {
        id: format!("pg:{}", id.oid),
        own: id.own,
        columns: columns.into_iter().map(column).collect(),
        unique: unique.into_iter().map(|(_, s)| s).collect(),
        primary,
        fold_case: false,
    }))
}

impl Catalog for PgConnection {
    fn table_info(&mut self, p: &Projection) -> Result<Option<TableInfo>, StoreError> {
        table_info(self, p)
    }

    const ADD_COLUMN_IF_NOT_EXISTS: bool = true;

    fn decl(t: SqlType) -> String {
        t.name().to_string()
    }

    fn ddl(&mut self, sql: &str) -> Result<(), StoreError> {
        diesel::sql_query(sql).execute(self)?;
        Ok(())
    }
}

/// Ops one set statement carries at most: a bigger group takes several, so the statement's
/// arrays (and the buffers libpq keeps grown to its largest message, per connection) stay small.
/// Small in unit tests, so their few keys take several.
#[cfg(not(test))]
const STATEMENT_OPS: usize = 1000;
#[cfg(test)]
const STATEMENT_OPS: usize = 2;

/// The exact upsert's rows, by a name no user table has (a CTE's name hides a table's).
const SRC: &str = "\"tributary rows\"";

fn run_group(
    conn: &mut PgConnection,
    p: &Projection,
    g: &Group<'_>,
    ops: &[&Op],
    pass: Pass,
    counts: &mut Counts,
) -> Result<(), StoreError> {
    let n = ops.len() as u64;
    let cols: Vec<usize> = (0..p.columns.len()).filter(|&i| g.shape[i]).collect();
    let name = |i: usize| quote_ident(&p.columns[i].name);
    let val = |i: usize| format!("s.c{i}::{}", p.columns[i].table_type);
    let list = |f: &dyn Fn(usize) -> String, of: &[usize], sep: &str| of.iter().map(|&i| f(i)).collect::<Vec<_>>().join(sep);
    let table = p.table.quoted();
    if cols.is_empty() {
        // Only an insert with every column absent: DEFAULT VALUES, once per op.
        for _ in 0..n {
            diesel::sql_query(format!("INSERT INTO {table} DEFAULT VALUES")).execute(conn)?;
        }
        counts.inserted += n;
        return Ok(());
    }
    let columns: Vec<Column<'_>> = cols.iter().map(|&i| Column::of(ops, i, p.columns[i].table_kind)).collect();
    let unnest = format!(
        "unnest({}) AS s({})",
        columns.iter().enumerate().map(|(k, c)| format!("${}::{}", k + 1, c.array_type())).collect::<Vec<_>>().join(", "),
        list(&|i| format!("c{i}"), &cols, ", ")
    );
    let key_match = list(&|k| format!("t.{} = {}", name(k), val(k)), &p.key, " AND ");
    let sets: Vec<usize> = cols.iter().copied().filter(|i| !p.key.contains(i)).collect();
    let newer = |value: &str| p.newer_wins.map(|v| format!("(t.{0} IS NULL OR {value} > t.{0})", name(v)));
    let bound = |sql: String| columns.into_iter().fold(diesel::sql_query(sql).into_boxed::<Pg>(), |q, c| c.bind(q));
    if g.delete {
        let d = bound(format!("DELETE FROM {table} AS t USING {unnest} WHERE {key_match}")).execute(conn)? as u64;
        counts.deleted += d;
        counts.unchanged += n - d;
        return Ok(());
    }
    let names = list(&name, &cols, ", ");
    let values = list(&val, &cols, ", ");
    // The guarded change of the rows `from` names (each present column but the key's).
    let update = |from: &str| {
        let set = list(&|i| format!("{} = {}", name(i), val(i)), &sets, ", ");
        let guard = p.newer_wins.map(|v| format!(" AND {}", newer(&val(v)).unwrap_or_default())).unwrap_or_default();
        format!("UPDATE {table} AS t SET {set} FROM {from} WHERE {key_match}{guard}")
    };
    match p.mode {
        Mode::Insert => {
            counts.inserted += bound(format!("INSERT INTO {table} ({names}) SELECT {values} FROM {unnest}")).execute(conn)? as u64;
        }
        Mode::Update if sets.is_empty() => counts.unchanged += n,
        Mode::Update => {
            let u = bound(update(&unnest)).execute(conn)? as u64;
            counts.updated += u;
            counts.unchanged += n - u;
        }
        Mode::Upsert if pass == Pass::Fast => {
            let keys = list(&name, &p.key, ", ");
            let action = if sets.is_empty() {
                "NOTHING".to_string()
            } else {
                let set = list(&|i| format!("{0} = EXCLUDED.{0}", name(i)), &sets, ", ");
                let guard = p.newer_wins.map(|v| format!(" WHERE {}", newer(&format!("EXCLUDED.{}", name(v))).unwrap_or_default()));
                format!("UPDATE SET {set}{}", guard.unwrap_or_default())
            };
            // xmax is 0 on a row this statement inserted, the locking transaction's id on one it updated.
            let sql = format!(
                "WITH \"tributary written\" AS (INSERT INTO {table} AS t ({names}) SELECT {values} FROM {unnest} ON CONFLICT ({keys}) DO {action} \
                 RETURNING (t.xmax = 0) AS ins) \
                 SELECT count(*) FILTER (WHERE ins) AS inserted, count(*) FILTER (WHERE NOT ins) AS updated FROM \"tributary written\""
            );
            // Two spellings of a key that only the column's type holds equal meet one row twice
            // (21000, refused like data): the exact pass applies them.
            let c = bound(sql).get_result::<Changed>(conn)?;
            counts.inserted += c.inserted as u64;
            counts.updated += c.updated as u64;
            counts.unchanged += n - (c.inserted + c.updated) as u64;
        }
        Mode::Upsert => {
            // The rows that exist are changed, the others inserted: an op never proposes a row
            // for a key that has one, which PostgreSQL checks (NOT NULL, CHECK) before it sees
            // the conflict. The two parts see the same snapshot and touch different keys (a group
            // has each key once). A key inserted meanwhile by another transaction fails the
            // insert (23505), and the message, retried on its own, then finds its row.
            // A CTE's name hides a table of that name in the statement: ours cannot be a user's.
            let changed = if sets.is_empty() {
                String::new()
            } else {
                format!("\"tributary updated\" AS ({} RETURNING 1), ", update(&format!("{SRC} AS s")))
            };
            let sql = format!(
                "WITH {SRC} AS (SELECT * FROM {unnest}), {changed}\
                 \"tributary inserted\" AS (INSERT INTO {table} ({names}) SELECT {values} FROM {SRC} AS s \
                 WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {key_match}) RETURNING 1) \
                 SELECT (SELECT count(*) FROM \"tributary inserted\") AS inserted, {} AS updated",
                if sets.is_empty() { "0::bigint" } else { "(SELECT count(*) FROM \"tributary updated\")" }
            );
            let c = bound(sql).get_result::<Changed>(conn)?;
            counts.inserted += c.inserted as u64;
            counts.updated += c.updated as u64;
            counts.unchanged += n - (c.inserted + c.updated) as u64;
        }
    }
    Ok(())
}

impl ProjectStore for PgConnection {
    const FIRST_PASS: Pass = Pass::Fast;

    fn apply_ops(&mut self, plan: &Plan, messages: &[&[Op]], pass: Pass, counts: &mut [Counts]) -> Result<(), StoreError> {
        for step in steps(messages, counts) {
            match step {
                Step::Run(messages) => {
                    for g in groups(plan, &messages) {
                        for ops in g.ops.chunks(STATEMENT_OPS) {
                            run_group(self, &plan.projections[g.projection], &g, ops, pass, &mut counts[g.projection])?;
                        }
                    }
                }
                Step::Truncate(op) => truncate(plan, op, counts, |sql| Ok(diesel::sql_query(sql).execute(self)?))?,
            }
        }
        Ok(())
    }

    fn probe(&mut self, plan: &Plan, ops: &[Op]) -> Result<(), StoreError> {
        for op in ops.iter().filter(|op| matches!(op.kind, OpKind::Change | OpKind::Delete)) {
            let p = &plan.projections[op.projection as usize];
            let g = Group {
                projection: op.projection as usize,
                delete: op.is_delete(),
                shape: op.cells.iter().map(Option::is_some).collect(),
                ops: Vec::new(),
            };
            run_group(self, p, &g, &[], Pass::Exact, &mut Counts::default())?;
        }
        Ok(())
    }

    fn delete_events(&mut self, rows: &[(&PartitionKey, i64)]) -> Result<(), StoreError> {
        for (k, offset) in rows {
            diesel::sql_query("DELETE FROM events WHERE topic = $1 AND \"partition\" = $2 AND \"offset\" = $3")
                .bind::<Text, _>(&k.topic)
                .bind::<Integer, _>(k.partition)
                .bind::<BigInt, _>(offset)
                .execute(self)?;
        }
        Ok(())
    }
}
