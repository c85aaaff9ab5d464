//! PostgreSQL specifics: every type a projection writes reaches the table as the value it was
//! (binary arrays where a value is of the column's kind, text otherwise, each cast to the
//! column's type), and the catalog checks see only keys an upsert can rely on.

use chrono::{NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::json;

use super::tests::postgres;
use super::{apply_refusing, prepare};
use crate::project::{Cell, EventsSpec, Op, OpKind, Plan, Projection, ProjectionSpec};

/// (column, declared type, column's type in the table).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("i2", "smallint", "smallint"),
    ("i4", "integer", "integer"),
    ("i8", "bigint", "bigint"),
    ("num", "numeric", "numeric"),
    ("r4", "real", "real"),
    ("f8", "double precision", "double precision"),
    ("b", "boolean", "boolean"),
    ("tz", "timestamptz", "timestamptz"),
    ("ts", "timestamp", "timestamp"),
    ("d", "date", "date"),
    ("u", "uuid", "uuid"),
    ("j", "json", "json"),
    ("jb", "jsonb", "jsonb"),
    ("by", "bytea", "bytea"),
    ("t", "text", "text"),
    ("vc", "text", "character varying(5)"),
    // Written to a column of another type: the value the server casts from our text, so a text
    // column keeps the text tributary writes (as on SQLite), numeric every digit of a double,
    // and a type tributary does not know (an enum) the cast from text.
    ("tz_as_date", "timestamptz", "date"),
    ("i_as_num", "bigint", "numeric"),
    ("f_as_num", "double precision", "numeric"),
    ("i_as_text", "bigint", "text"),
    ("tz_as_text", "timestamptz", "text"),
    ("f_as_text", "double precision", "text"),
    ("lvl", "text", "level"),
];

#[derive(QueryableByName)]
struct Back {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    v: String,
}

fn at(p: &Projection, name: &str) -> usize {
    p.columns.iter().position(|c| c.name == name).expect("a mapped column")
}

#[test]
fn every_type_reaches_postgres_as_it_was() {
    let Some(mut pg) = postgres() else { return };
    let ddl: Vec<String> = COLUMNS.iter().map(|(c, _, ty)| format!("{c} {ty}")).collect();
    diesel::sql_query("CREATE TYPE level AS ENUM ('1', '2', '3')").execute(&mut pg.conn).unwrap();
    diesel::sql_query(format!("CREATE TABLE typed (id bigint PRIMARY KEY, {})", ddl.join(", "))).execute(&mut pg.conn).unwrap();
    let mut columns = serde_json::Map::new();
    columns.insert("id".into(), json!({"from": "/id", "type": "bigint"}));
    for (c, ty, _) in COLUMNS {
        columns.insert((*c).into(), json!({"from": format!("/{c}"), "type": ty}));
    }
    let spec: ProjectionSpec =
        serde_json::from_value(json!({"name": "typed", "table": "typed", "mode": "upsert", "key": ["id"], "columns": columns})).unwrap();
    let mut projections = vec![Projection::from_spec(&spec).unwrap()];
    prepare(&mut pg.conn, &mut projections).expect("the table takes the projection");
    let plan = Plan { projections, events: EventsSpec::default() };
    let p = &plan.projections[0];
    let values = |id: i64, day: u32| -> Vec<(&str, Cell)> {
        vec![
            ("id", Cell::Int(id)),
            ("i2", Cell::Int(-7)),
            ("i4", Cell::Int(123_456)),
            ("i8", Cell::Int(i64::MAX - i64::from(day))),
            ("num", Cell::Numeric("12345.678900".into())),
            ("r4", Cell::Float(1.5)),
            ("f8", Cell::Float(0.1)),
            ("b", Cell::Bool(day.is_multiple_of(2))),
            ("tz", Cell::Timestamptz(Utc.with_ymd_and_hms(2024, 2, day, 23, 59, 58).unwrap() + chrono::Duration::microseconds(123_456))),
            ("ts", Cell::Timestamp(NaiveDate::from_ymd_opt(2024, 2, day).unwrap().and_hms_milli_opt(23, 59, 58, 500).unwrap())),
            ("d", Cell::Date(NaiveDate::from_ymd_opt(2024, 2, day).unwrap())),
            ("u", Cell::Uuid("6f1c2b8e-0d3a-4c5e-9f7a-1b2c3d4e5f60".into())),
            ("j", Cell::Json("{\"a\": [1, 2]}".into())),
            ("jb", Cell::Json("{\"b\":1,\"a\":2}".into())),
            ("by", Cell::Bytes(vec![0, 1, 0xfe, 0xff])),
            ("t", Cell::Text("naïve ' \" \\ ,{} NULL".into())),
            ("vc", Cell::Text("abcde".into())),
            ("tz_as_date", Cell::Timestamptz(Utc.with_ymd_and_hms(2024, 3, 1, 23, 30, 0).unwrap())),
            ("i_as_num", Cell::Int(5)),
            ("f_as_num", Cell::Float(0.1 + 0.2)),
            ("i_as_text", Cell::Int(-42)),
            ("tz_as_text", Cell::Timestamptz(Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(500))),
            ("f_as_text", Cell::Float(1e20)),
            ("lvl", Cell::Int(2)),
        ]
    };
    let op = |cells: Vec<(&str, Cell)>| {
        let mut row = vec![None; p.columns.len()];
        cells.into_iter().for_each(|(name, c)| row[at(p, name)] = Some(c));
        Op::new(0, OpKind::Change, row)
    };
    let all_null = |id: i64| {
        let mut cells = vec![("id", Cell::Int(id))];
        cells.extend(COLUMNS.iter().map(|(c, _, _)| (*c, Cell::Null)));
        cells
    };
    let mut wide = values(5, 3);
    // An integer too wide for `integer`: the server refuses it (22003), the others go in.
    wide.iter_mut().filter(|(c, _)| *c == "i4").for_each(|(_, v)| *v = Cell::Int(1 << 40));
    let ops = [
        op(values(1, 28)),
        op(all_null(2)),
        op(vec![("id", Cell::Int(3))]),
        // Key 1 again (its own round, so its own statement): changed by an update of every column.
        op(values(1, 29)),
        op(wide),
        // A column whose cells differ in type goes as text (here i8: text beside the integers).
        op(vec![("id", Cell::Int(6)), ("i8", Cell::Text("42".into())), ("by", Cell::Null)]),
        op(vec![("id", Cell::Int(7)), ("i8", Cell::Int(43)), ("by", Cell::Bytes(vec![0xab]))]),
        // Longer than varchar(5): refused (22001) as an INSERT would, not cut short.
        op(vec![("id", Cell::Int(8)), ("vc", Cell::Text("abcdefgh".into()))]),
    ];
    let messages: Vec<&[Op]> = ops.iter().map(std::slice::from_ref).collect();
    let (refused, counts) = pg.conn.transaction(|c| apply_refusing(c, &plan, &messages)).expect("applied");
    assert_eq!(refused.iter().map(|r| (r.at, r.sqlstate.as_str())).collect::<Vec<_>>(), vec![(4, "22003"), (7, "22001")]);
    assert_eq!((counts[0].inserted, counts[0].updated), (5, 1));

    let list: Vec<String> = COLUMNS.iter().map(|(c, _, _)| format!("{c}::text")).collect();
    let back: Vec<Back> = diesel::sql_query(format!("SELECT id, json_build_array({})::text AS v FROM typed ORDER BY id", list.join(", ")))
        .load(&mut pg.conn)
        .unwrap();
    let got: Vec<(i64, Vec<Option<String>>)> = back.into_iter().map(|b| (b.id, serde_json::from_str(&b.v).unwrap())).collect();
    let text = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    let nulls = vec![None; COLUMNS.len()];
    let some_nulls = |i8: &str, by: Option<&str>| {
        let mut row = nulls.clone();
        row[2] = Some(i8.to_string());
        row[13] = by.map(str::to_string);
        row
    };
    #[rustfmt::skip]
    let want = vec![
        (1, text(&["-7", "123456", "9223372036854775778", "12345.678900", "1.5", "0.1", "false",
            "2024-02-29 23:59:58.123456+00", "2024-02-29 23:59:58.5", "2024-02-29",
            "6f1c2b8e-0d3a-4c5e-9f7a-1b2c3d4e5f60", "{\"a\": [1, 2]}", "{\"a\": 2, \"b\": 1}", "\\x0001feff",
            "naïve ' \" \\ ,{} NULL", "abcde", "2024-03-01", "5", "0.30000000000000004", "-42",
            "2024-03-01T12:00:00.500000Z", "100000000000000000000", "2"])),
        (2, nulls.clone()),
        (3, nulls.clone()),
        (6, some_nulls("42", None)),
        (7, some_nulls("43", Some("\\xab"))),
    ];
    assert_eq!(got, want);
}

#[test]
fn an_upsert_key_is_the_key_columns_of_a_valid_immediate_unique_index() {
    let Some(mut pg) = postgres() else { return };
    for ddl in [
        "CREATE TABLE inc (id bigint, x bigint, PRIMARY KEY (id) INCLUDE (x))",
        "CREATE TABLE deferred (id bigint, x bigint, CONSTRAINT u UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)",
    ] {
        diesel::sql_query(ddl).execute(&mut pg.conn).unwrap();
    }
    let mut check = |table: &str, key: &[&str]| {
        let spec: ProjectionSpec = serde_json::from_value(json!({"name": "p", "table": table, "mode": "upsert", "key": key,
            "columns": {"id": {"from": "/id", "type": "bigint"}, "x": {"from": "/x", "type": "bigint"}}}))
        .unwrap();
        match prepare(&mut pg.conn, &mut [Projection::from_spec(&spec).unwrap()]) {
            Ok(_) => Ok(()),
            Err(super::SetupError::Spec(e)) => Err(e.key),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(check("inc", &["id"]), Ok(()), "INCLUDE columns are not part of the key");
    assert_eq!(check("inc", &["id", "x"]), Err("key".into()), "nor do they make one");
    assert_eq!(check("deferred", &["id"]), Err("key".into()), "a deferred unique constraint is checked at commit, too late");
}
