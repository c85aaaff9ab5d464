//! Test harness: messages through the real parser, the projections' routing and coercion, and a
//! real database's start-up checks and statements — everything the writer does but Kafka.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use serde_json::Value;

use super::tests::{postgres, Pg};
use super::{apply_refusing, prepare, GroupStore, SetupError};
use crate::parse::{parse_message, ParseOptions, Parsed};
use crate::project::{EventsSpec, Op, Plan, Projection, ProjectionSpec};
use crate::records::RawMessage;
use crate::storage::StoreError;

pub(super) enum Db {
    Pg(Box<Pg>),
    Lite(SqliteConnection),
}

#[derive(QueryableByName)]
struct V {
    #[diesel(sql_type = Nullable<Text>)]
    v: Option<String>,
}

#[derive(QueryableByName)]
struct F {
    #[diesel(sql_type = Nullable<Double>)]
    v: Option<f64>,
}

/// A message: its key (JSON text, or none) and its value.
pub(super) type Msg<'a> = (Option<&'a str>, &'a str);

impl Db {
    pub(super) fn sqlite() -> Db {
        crate::storage::configure_library();
        Db::Lite(SqliteConnection::establish(":memory:").expect("an in-memory SQLite"))
    }

    /// PostgreSQL (a database of its own), or `None` without `TRIBUTARY_TEST_DATABASE_URL`.
    pub(super) fn postgres() -> Option<Db> {
        postgres().map(|pg| Db::Pg(Box::new(pg)))
    }

    /// Both backends the machine has: SQLite always, PostgreSQL where configured.
    pub(super) fn all() -> Vec<Db> {
        std::iter::once(Db::sqlite()).chain(Db::postgres()).collect()
    }

    pub(super) fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    pub(super) fn exec(&mut self, sql: &str) {
        let r = match self {
            Db::Pg(pg) => diesel::sql_query(sql).execute(&mut pg.conn),
            Db::Lite(c) => diesel::sql_query(sql).execute(c),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The single text column `v` of each row of `sql`.
    pub(super) fn texts(&mut self, sql: &str) -> Vec<Option<String>> {
        let r = match self {
            Db::Pg(pg) => diesel::sql_query(sql).load::<V>(&mut pg.conn),
            Db::Lite(c) => diesel::sql_query(sql).load::<V>(c),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}")).into_iter().map(|r| r.v).collect()
    }

    /// The double precision column `v` of each row of `sql`.
    pub(super) fn doubles(&mut self, sql: &str) -> Vec<Option<f64>> {
        let r = match self {
            Db::Pg(pg) => diesel::sql_query(sql).load::<F>(&mut pg.conn),
            Db::Lite(c) => diesel::sql_query(sql).load::<F>(c),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}")).into_iter().map(|r| r.v).collect()
    }

    /// A plain `INSERT INTO table (id, column) VALUES (id, text)`: `None`, or the code it is refused with.
    pub(super) fn insert_text(&mut self, table: &str, column: &str, id: i64, text: &str) -> Option<String> {
        let sql = if self.is_pg() { "($1, $2)" } else { "(?1, ?2)" };
        let sql = format!("INSERT INTO {table} (id, {column}) VALUES {sql}");
        let q = diesel::sql_query(&sql).bind::<BigInt, _>(id).bind::<Text, _>(text);
        let r = match self {
            Db::Pg(pg) => q.execute(&mut pg.conn),
            Db::Lite(c) => q.execute(c),
        };
        r.map_err(StoreError::from).err().map(|e| e.code().unwrap_or_else(|| panic!("{sql}: no code: {e}")))
    }

    /// The projections checked against their tables, and the start-up's warnings.
    pub(super) fn plan(&mut self, specs: &[Value]) -> Result<(Plan, Vec<String>), SetupError> {
        let mut projections: Vec<Projection> = specs
            .iter()
            .map(|s| Projection::from_spec(&serde_json::from_value::<ProjectionSpec>(s.clone()).expect("a spec")))
            .collect::<Result<_, _>>()?;
        let warnings = match self {
            Db::Pg(pg) => prepare(&mut pg.conn, &mut projections)?,
            Db::Lite(c) => prepare(c, &mut projections)?,
        };
        Ok((Plan { projections, events: EventsSpec::default() }, warnings))
    }

    /// Route and apply `messages` as the parser and the writer do (one transaction); each
    /// message's fate: `None` applied, or its dead letter's reason code, or SQLSTATE for a
    /// database refusal.
    pub(super) fn run(&mut self, plan: &Plan, messages: &[Msg<'_>]) -> Vec<Option<String>> {
        self.try_run(plan, messages).expect("the group applies")
    }

    /// [`Db::run`], or the error that fails the whole group.
    pub(super) fn try_run(&mut self, plan: &Plan, messages: &[Msg<'_>]) -> Result<Vec<Option<String>>, StoreError> {
        let opts = ParseOptions { plan: std::sync::Arc::new(plan.clone()), ..ParseOptions::default() };
        let mut fate = vec![None; messages.len()];
        let mut routed: Vec<(usize, Vec<Op>)> = Vec::new();
        for (i, (key, value)) in messages.iter().enumerate() {
            let m = RawMessage::new(i as i64, Some(1_700_000_000_000), key.map(str::as_bytes), Some(value.as_bytes()), []);
            match parse_message(m, &opts) {
                Parsed::Row(row) => match plan.route("t", 0, &row) {
                    Ok(ops) => routed.push((i, ops)),
                    Err(e) => fate[i] = Some(e.refusal.reason.code().to_string()),
                },
                Parsed::Dead(d) => fate[i] = Some(d.reason.code().to_string()),
            }
        }
        let ops: Vec<&[Op]> = routed.iter().map(|(_, o)| o.as_slice()).collect();
        let refused = match self {
            Db::Pg(pg) => pg.conn.in_transaction(|c| apply_refusing(c, plan, &ops)),
            Db::Lite(c) => c.in_transaction(|c| apply_refusing(c, plan, &ops)),
        }?
        .0;
        for r in refused {
            fate[routed[r.at].0] = Some(r.sqlstate);
        }
        Ok(fate)
    }
}
