//! Random histories of a few keys, applied by the real statements of both backends, end as a
//! model that applies them one by one: rounds, groups and bisection must not change the result.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use proptest::prelude::*;
use serde_json::json;
use tributary_testdb::TestDb;

use super::{apply_refusing, groups, Counts, ProjectStore};
use crate::project::{Cell, EventsSpec, Mode, Op, OpKind, Plan, Projection, ProjectionSpec};
use crate::storage::StoreError;

#[derive(Debug, Clone)]
enum Field<T> {
    Absent,
    Null,
    Val(T),
}

#[derive(Debug, Clone)]
enum Step {
    Delete(i64),
    /// key, a (negative: the table's CHECK refuses it), b, version
    Change(i64, Field<i64>, Field<String>, i64),
    /// A change event's truncate (every row deleted, in order).
    Truncate,
    /// A message written nowhere (Debezium's tombstone after a delete), counted.
    Skip,
}

fn field<T: std::fmt::Debug + Clone + 'static>(val: impl Strategy<Value = T> + 'static) -> impl Strategy<Value = Field<T>> {
    prop_oneof![1 => Just(Field::Absent), 1 => Just(Field::Null), 3 => val.prop_map(Field::Val)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..3i64).prop_map(Step::Delete),
        6 => (0..3i64, field(-1..4i64), field("[a-c]"), 0..8i64).prop_map(|(k, a, b, v)| Step::Change(k, a, b, v)),
        // Rare, as in a change stream: each cuts the range into what comes before and after.
        1 => prop_oneof![Just(Step::Truncate), Just(Step::Skip)],
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    a: Option<i64>,
    b: Option<String>,
    v: Option<i64>,
}

fn plan(mode: Mode, newer: bool) -> Plan {
    let mode = match mode {
        Mode::Insert => "insert",
        Mode::Upsert => "upsert",
        Mode::Update => "update",
    };
    let mut spec = json!({"name": "p", "table": "t", "mode": mode, "key": ["k"], "delete_types": ["d"],
        "columns": {"k": {"from": "/k", "type": "bigint"}, "a": {"from": "/a", "type": "bigint"}, "b": "/b", "v": {"from": "/v", "type": "bigint"}}});
    if newer {
        spec["newer_wins"] = json!("v");
    }
    let spec: ProjectionSpec = serde_json::from_value(spec).unwrap();
    let mut p = Projection::from_spec(&spec).unwrap();
    for c in &mut p.columns {
        c.ty = c.declared.unwrap_or(crate::project::SqlType::Text);
        c.table_type = if c.name == "b" { "text".into() } else { "bigint".into() };
        c.table_kind = Some(if c.name == "b" { crate::project::SqlType::Text } else { crate::project::SqlType::BigInt });
    }
    Plan { projections: vec![p], events: EventsSpec::default() }
}

fn cell<T: Clone>(f: &Field<T>, to: impl Fn(T) -> Cell) -> Option<Cell> {
    match f {
        Field::Absent => None,
        Field::Null => Some(Cell::Null),
        Field::Val(x) => Some(to(x.clone())),
    }
}

/// Columns in the spec's (sorted) order: a, b, k, v.
fn op(s: &Step) -> Op {
    match s {
        Step::Delete(k) => Op::new(0, OpKind::Delete, vec![None, None, Some(Cell::Int(*k)), None]),
        Step::Change(k, a, b, v) => {
            Op::new(0, OpKind::Change, vec![cell(a, Cell::Int), cell(b, Cell::Text), Some(Cell::Int(*k)), Some(Cell::Int(*v))])
        }
        Step::Truncate => Op::new(0, OpKind::Truncate, Vec::new()),
        Step::Skip => Op::new(0, OpKind::Skip(crate::project::cdc::Skip::Tombstone), Vec::new()),
    }
}

/// A row the table holds before the steps (k, a, b), without a version: older than any message.
const SEED: (i64, i64, &str) = (1, 0, "seed");
const SEED_SQL: &str = "INSERT INTO t (k, a, b, v) VALUES (1, 0, 'seed', NULL)";

/// One by one: the table, the steps refused, and the counts.
fn model(steps: &[Step], mode: Mode, newer: bool) -> (BTreeMap<i64, Row>, Vec<usize>, Counts) {
    let mut t = BTreeMap::from([(SEED.0, Row { a: Some(SEED.1), b: Some(SEED.2.into()), v: None })]);
    let (mut refused, mut c) = (Vec::new(), Counts::default());
    let set = |r: &mut Row, a: &Field<i64>, b: &Field<String>, v: i64| {
        match a {
            Field::Absent => {}
            Field::Null => r.a = None,
            Field::Val(x) => r.a = Some(*x),
        }
        match b {
            Field::Absent => {}
            Field::Null => r.b = None,
            Field::Val(x) => r.b = Some(x.clone()),
        }
        r.v = Some(v);
    };
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Truncate => {
                c.deleted += t.len() as u64;
                c.truncates += 1;
                t.clear();
            }
            Step::Skip => c.skipped_tombstones += 1,
            Step::Delete(k) => match t.remove(k) {
                Some(_) => c.deleted += 1,
                None => c.unchanged += 1,
            },
            Step::Change(k, a, b, v) => {
                // The table's CHECK (a >= 0) and NOT NULL b (no DEFAULT), on the row a message
                // would leave: a new one, or the changed one where the message wins.
                let negative = matches!(a, Field::Val(x) if *x < 0);
                let refused_row = |r: Option<&Row>| {
                    negative || matches!(b, Field::Null) || (matches!(b, Field::Absent) && r.is_none_or(|r| r.b.is_none()))
                };
                let wins = t.get(k).is_some_and(|r| !newer || r.v.is_none_or(|rv| *v > rv));
                match (mode, t.get(k)) {
                    (Mode::Insert | Mode::Upsert, None) if refused_row(None) => refused.push(i),
                    (Mode::Insert | Mode::Upsert, None) => {
                        let mut r = Row { a: None, b: None, v: None };
                        set(&mut r, a, b, *v);
                        t.insert(*k, r);
                        c.inserted += 1;
                    }
                    // Insert mode: the key's row exists (23505).
                    (Mode::Insert, Some(_)) => refused.push(i),
                    (_, Some(r)) if wins && refused_row(Some(r)) => refused.push(i),
                    (_, Some(_)) if wins => {
                        set(t.get_mut(k).unwrap(), a, b, *v);
                        c.updated += 1;
                    }
                    _ => c.unchanged += 1,
                }
            }
        }
    }
    (t, refused, c)
}

#[derive(QueryableByName)]
struct TRow {
    #[diesel(sql_type = BigInt)]
    k: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    a: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    b: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    v: Option<i64>,
}

type Outcome = (BTreeMap<i64, Row>, Vec<usize>, Counts);

/// Apply `steps` through the backend in a transaction rolled back afterwards; `load` reads `t`.
fn through<C: ProjectStore>(
    conn: &mut C,
    steps: &[Step],
    mode: Mode,
    newer: bool,
    load: impl Fn(&mut C) -> Result<Vec<TRow>, StoreError>,
) -> Outcome {
    let plan = plan(mode, newer);
    let ops: Vec<Op> = steps.iter().map(op).collect();
    let messages: Vec<&[Op]> = ops.iter().map(std::slice::from_ref).collect();
    let mut out = None;
    let _ = conn.in_transaction(|c| {
        let (refused, counts) = apply_refusing(c, &plan, &messages)?;
        let table = load(c)?.into_iter().map(|r| (r.k, Row { a: r.a, b: r.b, v: r.v })).collect();
        out = Some((table, refused.into_iter().map(|r| r.at).collect(), counts[0]));
        Err::<(), _>(StoreError::Rejected { sqlstate: "rollback".into(), message: String::new() })
    });
    out.expect("the steps ran")
}

const SELECT: &str = "SELECT k, a, b, v FROM t";

fn sqlite() -> SqliteConnection {
    crate::storage::configure_library();
    let mut c = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query("CREATE TABLE t (k INTEGER PRIMARY KEY, a INTEGER CHECK (a >= 0), b TEXT NOT NULL, v INTEGER)")
        .execute(&mut c)
        .unwrap();
    diesel::sql_query(SEED_SQL).execute(&mut c).unwrap();
    c
}

/// A database of its own on `TRIBUTARY_TEST_DATABASE_URL` with the table `t` seeded, dropped at
/// the end (`None` without the variable, unless `TRIBUTARY_TEST_REQUIRE_DB=1` makes that a failure).
pub(super) struct Pg {
    pub(super) conn: PgConnection,
    // Declared after `conn`, so dropped after it: the connection closes before the database goes.
    _db: TestDb,
}

pub(super) fn postgres() -> Option<Pg> {
    let db = TestDb::postgres("tributary_props")?;
    let mut conn = PgConnection::establish(&db.url).unwrap();
    diesel::sql_query("CREATE TABLE t (k bigint PRIMARY KEY, a bigint CHECK (a >= 0), b text NOT NULL, v bigint)")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(SEED_SQL).execute(&mut conn).unwrap();
    Some(Pg { conn, _db: db })
}

fn modes() -> impl Strategy<Value = (Mode, bool)> {
    (prop_oneof![Just(Mode::Insert), Just(Mode::Upsert), Just(Mode::Update)], any::<bool>())
        .prop_filter("insert takes no newer_wins", |(m, n)| !(*m == Mode::Insert && *n))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_ends_as_the_model(steps in prop::collection::vec(step(), 1..40), (mode, newer) in modes()) {
        let mut c = sqlite();
        let got = through(&mut c, &steps, mode, newer, |c| Ok(diesel::sql_query(SELECT).load(c)?));
        prop_assert_eq!(got, model(&steps, mode, newer));
    }
}

#[test]
fn postgres_ends_as_the_model() {
    let Some(pg) = postgres() else { return };
    let pg = std::cell::RefCell::new(pg);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 128, ..ProptestConfig::default() });
    runner
        .run(&(prop::collection::vec(step(), 1..40), modes()), |(steps, (mode, newer))| {
            let got = through(&mut pg.borrow_mut().conn, &steps, mode, newer, |c| Ok(diesel::sql_query(SELECT).load(c)?));
            prop_assert_eq!(got, model(&steps, mode, newer));
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_key_twice_goes_to_two_rounds_and_shapes_to_groups_of_their_own() {
    let plan = plan(Mode::Upsert, false);
    let steps = [
        Step::Change(1, Field::Val(1), Field::Absent, 1),
        Step::Change(2, Field::Val(1), Field::Absent, 1),
        Step::Change(1, Field::Val(2), Field::Absent, 2),
        Step::Change(3, Field::Absent, Field::Val("x".into()), 1),
        Step::Delete(2),
    ];
    let ops: Vec<Op> = steps.iter().map(op).collect();
    let messages: Vec<&[Op]> = ops.iter().map(std::slice::from_ref).collect();
    let g: Vec<(bool, usize)> = groups(&plan, &messages).iter().map(|g| (g.delete, g.ops.len())).collect();
    // Round 0: keys 1 and 2 together, key 3 (another shape); round 1: key 1 again, then the delete of 2.
    assert_eq!(g, vec![(false, 2), (false, 1), (false, 1), (true, 1)]);
}
