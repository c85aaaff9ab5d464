//! Exact or refused, through the parser, the routing, the coercion and a real database: what a
//! message carries is stored as the backend's own `INSERT` of it would store it, or the message
//! is a dead letter with a reason — never a value silently clamped, cut, shifted or NULL.

use serde_json::{json, Value};

use super::harness::Db;
use super::SetupError;

fn refused_key(db: &mut Db, spec: Value) -> String {
    match db.plan(&[spec]) {
        Err(SetupError::Spec(e)) => e.key,
        Err(e) => panic!("not a configuration error: {e}"),
        Ok(_) => panic!("the projection was taken"),
    }
}

fn some(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

#[test]
fn char_n_keys_and_bit_strings_are_stored_as_an_insert_stores_them() {
    for mut db in Db::all() {
        let pg = db.is_pg();
        let bits = if pg { ", b bit(4), vb varbit" } else { ", b text, vb text" };
        db.exec(&format!("CREATE TABLE cc (cc char(2) PRIMARY KEY, name char(5){bits})"));
        let spec = json!({"name": "cc", "table": "cc", "mode": "upsert", "key": ["cc"],
            "columns": {"cc": "/cc", "name": "/name", "b": "/b", "vb": "/vb"}});
        let (plan, _) = db.plan(&[spec]).expect("the table takes it");
        let fate = db.run(
            &plan,
            &[
                (None, r#"{"cc": "US"}"#),
                (None, r#"{"cc": "UK"}"#),
                (None, r#"{"cc": "DE"}"#),
                (None, r#"{"cc": "DK"}"#),
                (None, r#"{"cc": "FR", "name": "toolong"}"#),
                (None, r#"{"cc": "ES", "name": "abcde   "}"#),
                (None, r#"{"cc": "PT", "b": "1010", "vb": "101"}"#),
                (None, r#"{"cc": "NL", "b": "10"}"#),
                (None, r#"{"cc": "US ", "name": "again"}"#),
            ],
        );
        let rows = db.texts(
            "SELECT CAST(cc AS TEXT) || '|' || coalesce(CAST(name AS TEXT), '') || '|' || coalesce(CAST(b AS TEXT), '') || '|' \
             || coalesce(CAST(vb AS TEXT), '') AS v FROM cc ORDER BY cc",
        );
        if pg {
            // Too long for char(5) is refused (22001), blanks past it are cut (the standard), a
            // bit string of the wrong length is refused (22026), and `US ` is the key `US`.
            let mut want = vec![None; 9];
            want[4] = Some("22001".to_string());
            want[7] = Some("22026".to_string());
            assert_eq!(fate, want);
            assert_eq!(rows, some(&["DE|||", "DK|||", "ES|abcde||", "PT||1010|101", "UK|||", "US|again||"]));
        } else {
            // SQLite's char(n) is TEXT affinity: an INSERT keeps any text as it is.
            assert_eq!(fate, vec![None; 9]);
            assert_eq!(
                rows,
                some(&["DE|||", "DK|||", "ES|abcde   ||", "FR|toolong||", "NL||10|", "PT||1010|101", "UK|||", "US|||", "US |again||"])
            );
        }
    }
}

#[test]
fn numbers_keep_every_digit_into_numeric_text_json_and_integers() {
    for mut db in Db::all() {
        let pg = db.is_pg();
        let (numeric, json_type) = if pg { ("numeric", "jsonb") } else { ("DECIMAL_TEXT", "TEXT") };
        db.exec(&format!("CREATE TABLE nums (id bigint PRIMARY KEY, n {numeric}, t text, j {json_type}, i bigint)"));
        let spec = json!({"name": "nums", "table": "nums", "columns": {"id": "kafka.offset", "n": {"from": "/n", "type": "numeric"},
            "t": {"from": "/t", "type": "text"}, "j": {"from": "/j", "type": "jsonb"}, "i": {"from": "/i", "type": "bigint"}}});
        let (plan, _) = db.plan(&[spec]).expect("the table takes it");
        let long = "9".repeat(1000);
        let messages = [
            r#"{"n": 99999999999999999999999.99}"#.to_string(),
            r#"{"n": 12345678901234567890.123456789}"#.to_string(),
            format!(r#"{{"n": {long}}}"#),
            r#"{"n": 1e400}"#.to_string(),
            r#"{"t": 12345678901234567890123, "j": {"a": 12345678901234567890123}}"#.to_string(),
            r#"{"i": -9223372036854775809}"#.to_string(),
            r#"{"i": 9007199254740993.0}"#.to_string(),
            r#"{"i": 1e400}"#.to_string(),
            r#"{"n": 1e131072}"#.to_string(),
        ];
        let msgs: Vec<_> = messages.iter().map(|m| (None, m.as_str())).collect();
        let fate = db.run(&plan, &msgs);
        let mut want = vec![None; messages.len()];
        for dead in [5, 7, 8] {
            want[dead] = Some("projection_type".to_string());
        }
        assert_eq!(fate, want, "out of range: refused, never clamped, NULL or missing");
        let n = db.texts("SELECT CAST(n AS TEXT) AS v FROM nums WHERE n IS NOT NULL ORDER BY id");
        let e400 = if pg { format!("1{}", "0".repeat(400)) } else { "1e400".to_string() };
        assert_eq!(n, some(&["99999999999999999999999.99", "12345678901234567890.123456789", &long, &e400]));
        let (t, j) = (db.texts("SELECT t AS v FROM nums WHERE id = 4"), db.texts("SELECT CAST(j AS TEXT) AS v FROM nums WHERE id = 4"));
        assert_eq!(t, some(&["12345678901234567890123"]));
        assert_eq!(j, some(&[if pg { r#"{"a": 12345678901234567890123}"# } else { r#"{"a":12345678901234567890123}"# }]));
        assert_eq!(db.texts("SELECT CAST(i AS TEXT) AS v FROM nums WHERE id = 6"), some(&["9007199254740993"]));
    }
}

#[test]
fn a_numeric_key_tells_apart_what_differs_past_the_fifteenth_digit() {
    let Some(mut db) = Db::postgres() else { return };
    db.exec("CREATE TABLE nk (k numeric(30, 20) PRIMARY KEY, v text)");
    let spec = json!({"name": "nk", "table": "nk", "mode": "upsert", "key": ["k"], "columns": {"k": "/k", "v": "/v"}});
    let (plan, _) = db.plan(&[spec]).expect("the table takes it");
    let fate = db.run(
        &plan,
        &[
            (None, r#"{"k": 1, "v": "one"}"#),
            (None, r#"{"k": 1.0000000000000000001, "v": "almost"}"#),
            (None, r#"{"k": 1.000, "v": "one again"}"#),
            // numeric(30, 20) rounds as an INSERT does: 21 places make 20.
            (None, r#"{"k": 2.000000000000000000004, "v": "two"}"#),
        ],
    );
    assert_eq!(fate, vec![None; 4]);
    assert_eq!(
        db.texts("SELECT k || '=' || v AS v FROM nk ORDER BY k"),
        some(&["1.00000000000000000000=one again", "1.00000000000000000010=almost", "2.00000000000000000000=two"])
    );
}

#[test]
fn sqlite_keeps_a_created_numeric_column_exact_and_warns_of_its_own_numeric_affinity() {
    let mut db = Db::sqlite();
    let spec = json!({"name": "money", "table": "money", "create_table": true,
        "columns": {"id": {"from": "kafka.offset", "type": "bigint"}, "amount": {"from": "/amount", "type": "numeric"}}});
    let (plan, warnings) = db.plan(&[spec]).expect("created");
    assert!(warnings.is_empty(), "{warnings:?}");
    let fate = db.run(&plan, &[(None, r#"{"amount": "1234567890123456789.01"}"#), (None, r#"{"amount": 99999999999999999999999.99}"#)]);
    assert_eq!(fate, vec![None, None]);
    assert_eq!(db.texts("SELECT amount AS v FROM money ORDER BY id"), some(&["1234567890123456789.01", "99999999999999999999999.99"]));

    db.exec("CREATE TABLE own (id INTEGER PRIMARY KEY, amount NUMERIC)");
    let spec = json!({"name": "own", "table": "own", "columns": {"id": "kafka.offset", "amount": {"from": "/amount", "type": "numeric"}}});
    let (_, warnings) = db.plan(&[spec]).expect("taken, with a warning");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("own.amount") && warnings[0].contains("15 significant digits"), "{}", warnings[0]);
}

#[test]
fn epoch_numbers_take_their_unit_and_stay_within_four_digit_years() {
    for mut db in Db::all() {
        db.exec("CREATE TABLE times (id bigint PRIMARY KEY, at timestamptz, micros timestamptz, day date)");
        let spec = json!({"name": "times", "table": "times", "columns": {"id": "kafka.offset", "at": {"from": "/at", "type": "timestamptz"},
            "micros": {"from": "/micros", "type": "timestamptz", "unit": "micros"}, "day": {"from": "/day", "type": "date"}}});
        let (plan, _) = db.plan(&[spec]).expect("the table takes it");
        let fate = db.run(
            &plan,
            &[
                (None, r#"{"at": 1700000000000000}"#),
                (None, r#"{"micros": 1700000000000000}"#),
                (None, r#"{"day": 19279}"#),
                (None, r#"{"at": 1700000000.5}"#),
                (None, r#"{"day": "2024-01-01T23:30:00-05:00"}"#),
            ],
        );
        assert_eq!(fate, vec![Some("projection_type".to_string()), None, None, None, None], "year 55840 refused, not stored");
        let text = |db: &mut Db, col: &str| {
            let sql = if db.is_pg() {
                format!("SELECT to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS v FROM times WHERE {col} IS NOT NULL ORDER BY id")
            } else {
                format!("SELECT {col} AS v FROM times WHERE {col} IS NOT NULL ORDER BY id")
            };
            db.texts(&sql)
        };
        let pg = db.is_pg();
        let stamp = |s: &str| if pg { s.replace('T', " ").trim_end_matches('Z').to_string() } else { s.to_string() };
        assert_eq!(text(&mut db, "micros"), vec![Some(stamp("2023-11-14T22:13:20.000000Z"))]);
        assert_eq!(text(&mut db, "at"), vec![Some(stamp("2023-11-14T22:13:20.500000Z"))]);
        let days = if pg {
            "SELECT day::text AS v FROM times WHERE day IS NOT NULL ORDER BY id"
        } else {
            "SELECT day AS v FROM times WHERE day IS NOT NULL ORDER BY id"
        };
        assert_eq!(db.texts(days), some(&["2022-10-14", "2024-01-02"]), "days since the epoch; an offset's UTC date");
    }
    let mut db = Db::sqlite();
    db.exec("CREATE TABLE u (id INTEGER PRIMARY KEY, n INTEGER)");
    let spec = json!({"name": "u", "table": "u", "columns": {"id": "kafka.offset", "n": {"from": "/n", "unit": "millis"}}});
    assert_eq!(refused_key(&mut db, spec), "columns.n.unit", "a unit on a column that holds no time");
}

/// Two projections on one table, whatever they call it or key it by, end as one by one.
#[test]
fn projections_sharing_a_table_end_as_one_by_one() {
    let ce = |ty: &str, data: &str| format!(r#"{{"specversion":"1.0","id":"x","source":"s","type":"{ty}","data":{data}}}"#);
    for mut db in Db::all() {
        let pg = db.is_pg();
        let other_spelling = if pg { "public.po2" } else { "main.po2" };
        db.exec("CREATE TABLE po2 (id bigint PRIMARY KEY, v text)");
        db.exec("CREATE TABLE pn (id numeric PRIMARY KEY, v text)");
        db.exec("CREATE TABLE pe (id bigint PRIMARY KEY, email text UNIQUE, v text)");
        let specs = [
            json!({"name": "a", "table": "po2", "types": ["a"], "mode": "upsert", "key": ["id"], "columns": {"id": "/id", "v": "/v"}}),
            json!({"name": "b", "table": other_spelling, "types": ["b"], "mode": "upsert", "key": ["id"], "columns": {"id": "/id", "v": "/v"}}),
            json!({"name": "n", "table": "pn", "types": ["n"], "mode": "upsert", "key": ["id"], "columns": {"id": {"from": "/id", "type": "numeric"}, "v": "/v"}}),
            json!({"name": "i", "table": "pn", "types": ["i"], "mode": "upsert", "key": ["id"], "columns": {"id": {"from": "/id", "type": "bigint"}, "v": "/v"}}),
            json!({"name": "byid", "table": "pe", "types": ["byid"], "mode": "upsert", "key": ["id"], "columns": {"id": "/id", "email": "/email", "v": "/v"}}),
            json!({"name": "bymail", "table": "pe", "types": ["bymail"], "mode": "update", "key": ["email"], "columns": {"email": "/email", "v": "/v"}}),
        ];
        let (plan, _) = db.plan(&specs).expect("the tables take them");
        let messages = [
            ce("a", r#"{"id": 1, "v": "a0"}"#),
            ce("a", r#"{"id": 1, "v": "a1"}"#),
            ce("b", r#"{"id": 1, "v": "b2"}"#),
            ce("n", r#"{"id": 1.0, "v": "n0"}"#),
            ce("n", r#"{"id": "1.00", "v": "n1"}"#),
            ce("i", r#"{"id": 1, "v": "i2"}"#),
            ce("byid", r#"{"id": 1, "email": "x@example.com", "v": "id0"}"#),
            ce("byid", r#"{"id": 1, "v": "id1"}"#),
            ce("bymail", r#"{"email": "x@example.com", "v": "mail2"}"#),
        ];
        let msgs: Vec<_> = messages.iter().map(|m| (None, m.as_str())).collect();
        assert_eq!(db.run(&plan, &msgs), vec![None; messages.len()]);
        // The model: each table's row is its last message's.
        for (table, want) in [("po2", "b2"), ("pn", "i2"), ("pe", "mail2")] {
            assert_eq!(db.texts(&format!("SELECT v FROM {table}")), some(&[want]), "{table}");
        }
    }
}

#[test]
fn a_projection_never_writes_tributarys_own_tables() {
    for mut db in Db::all() {
        for own in ["events", "dead_letters", "consumer_offsets"] {
            db.exec(&format!("CREATE TABLE {own} (id bigint PRIMARY KEY, v text)"));
        }
        let spelled = if db.is_pg() {
            vec!["consumer_offsets", "public.events", "dead_letters"]
        } else {
            vec!["consumer_offsets", "main.EVENTS", "Dead_Letters"]
        };
        for table in spelled {
            let spec = json!({"name": "p", "table": table, "columns": {"id": "kafka.offset"}});
            assert_eq!(refused_key(&mut db, spec), "table", "{table}");
        }
        if db.is_pg() {
            // A table of that name in another schema is the user's own.
            db.exec("CREATE SCHEMA mine");
            db.exec("CREATE TABLE mine.events (id bigint PRIMARY KEY, v text)");
            let spec = json!({"name": "p", "table": "mine.events", "columns": {"id": "kafka.offset"}});
            assert!(db.plan(&[spec]).is_ok());
        }
    }
}

#[test]
fn columns_the_database_computes_or_labels_are_checked_at_start() {
    for mut db in Db::all() {
        let generated = if db.is_pg() { "bigint GENERATED ALWAYS AS (x * 2) STORED" } else { "INTEGER GENERATED ALWAYS AS (x * 2) STORED" };
        db.exec(&format!("CREATE TABLE g (id bigint PRIMARY KEY, x bigint, g {generated})"));
        let spec = json!({"name": "g", "table": "g", "columns": {"id": "kafka.offset", "g": "/g"}});
        assert_eq!(refused_key(&mut db, spec), "columns.g");
    }
    let Some(mut db) = Db::postgres() else { return };
    db.exec("CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)");
    let spec = json!({"name": "i", "table": "ident", "columns": {"id": "kafka.offset", "v": "/v"}});
    assert_eq!(refused_key(&mut db, spec), "columns.id");
    db.exec("CREATE TYPE mood AS ENUM ('low', 'high')");
    db.exec("CREATE TABLE moods (id bigint PRIMARY KEY, m mood)");
    let spec = json!({"name": "m", "table": "moods", "columns": {"id": "kafka.offset", "m": {"from": "/m", "type": "numeric"}}});
    assert_eq!(refused_key(&mut db, spec), "columns.m.type", "an enum takes labels");
    let spec = json!({"name": "m", "table": "moods", "columns": {"id": "kafka.offset", "m": "/m"}});
    let (plan, _) = db.plan(&[spec]).expect("an enum without a declared type");
    assert_eq!(db.run(&plan, &[(None, r#"{"m": "high"}"#), (None, r#"{"m": "meh"}"#)]), vec![None, Some("22P02".to_string())]);
}

#[test]
fn json_arrays_fill_array_columns() {
    let Some(mut db) = Db::postgres() else { return };
    db.exec("CREATE TABLE arr (id bigint PRIMARY KEY, tags text[], nums integer[], grid bigint[][], docs jsonb[])");
    let spec = json!({"name": "arr", "table": "arr", "columns": {"id": "kafka.offset", "tags": "/tags", "nums": "/nums", "grid": "/grid", "docs": "/docs"}});
    let (plan, _) = db.plan(&[spec]).expect("the table takes it");
    let fate = db.run(
        &plan,
        &[
            (None, r#"{"tags": ["a", "b,\"c\"", null, "{x}"], "nums": [1, "2", 3.0], "grid": [[1, 2], [3, 4]], "docs": [{"k": 1}]}"#),
            (None, r#"{"nums": [], "tags": "{x,y}"}"#),
            (None, r#"{"grid": [[1, 2], [3]]}"#),
            (None, r#"{"nums": [1.5]}"#),
            (None, r#"{"tags": [{"a": 1}]}"#),
            (None, r#"{"nums": [2147483648]}"#),
        ],
    );
    let t = Some("projection_type".to_string());
    assert_eq!(fate, vec![None, None, t.clone(), t.clone(), t.clone(), t]);
    assert_eq!(
        db.texts("SELECT concat_ws(' ', tags::text, nums::text, grid::text, docs::text) AS v FROM arr ORDER BY id"),
        some(&[r#"{a,"b,\"c\"",NULL,"{x}"} {1,2,3} {{1,2},{3,4}} {"{\"k\": 1}"}"#, "{x,y} {}"])
    );
}

/// A refusal outside the data classes is bisected like one: a trigger's `RAISE EXCEPTION`
/// (P0001) on one message makes that message a dead letter; one on every message, or a table
/// that refuses the statement without any row, is no message's fault and fails the group as an
/// outage would (the writer retries it and the breaker names the SQLSTATE).
#[test]
fn a_refusal_is_a_message_when_the_others_pass_and_the_tables_when_none_does() {
    let Some(mut db) = Db::postgres() else { return };
    db.exec("CREATE TABLE gate (closed boolean NOT NULL)");
    db.exec("INSERT INTO gate VALUES (false)");
    db.exec("CREATE TABLE tr (id bigint PRIMARY KEY, v text)");
    db.exec(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.v = 'bad' OR (SELECT closed FROM gate) THEN RAISE EXCEPTION 'refused %', NEW.id; END IF; RETURN NEW; END $$",
    );
    db.exec("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON tr FOR EACH ROW EXECUTE FUNCTION refuse()");
    let spec = json!({"name": "tr", "table": "tr", "mode": "upsert", "key": ["id"], "columns": {"id": "/id", "v": "/v"}});
    let (plan, _) = db.plan(&[spec]).expect("the table takes it");
    let fate = db.run(&plan, &[(None, r#"{"id": 1, "v": "a"}"#), (None, r#"{"id": 2, "v": "bad"}"#), (None, r#"{"id": 3, "v": "c"}"#)]);
    assert_eq!(fate, vec![None, Some("P0001".to_string()), None]);
    assert_eq!(db.run(&plan, &[(None, r#"{"id": 4, "v": "bad"}"#)]), vec![Some("P0001".to_string())], "alone in its batch");
    assert_eq!(db.texts("SELECT v FROM tr ORDER BY id"), some(&["a", "c"]));

    db.exec("UPDATE gate SET closed = true");
    let all = db.try_run(&plan, &[(None, r#"{"id": 5, "v": "e"}"#), (None, r#"{"id": 6, "v": "f"}"#)]);
    assert!(matches!(&all, Err(crate::storage::StoreError::Unwritable { sqlstate, .. }) if sqlstate == "P0001"), "{all:?}");
    assert!(all.unwrap_err().is_transient(), "retried as an outage");
    db.exec("UPDATE gate SET closed = false");

    db.exec("ALTER TABLE tr DROP COLUMN v");
    let one = db.try_run(&plan, &[(None, r#"{"id": 7, "v": "g"}"#)]);
    assert!(matches!(&one, Err(crate::storage::StoreError::Unwritable { sqlstate, .. }) if sqlstate == "42703"), "{one:?}");
    assert_eq!(db.texts("SELECT CAST(id AS TEXT) AS v FROM tr ORDER BY id"), some(&["1", "3"]), "nothing written");
}
