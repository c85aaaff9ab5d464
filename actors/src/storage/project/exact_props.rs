//! Properties of exactness on both backends: arbitrary JSON numbers into numeric, bigint, double
//! precision, text and JSON columns, and arbitrary strings into char(n), varchar(n) and text,
//! through the parser, the routing, the coercion and the database.

use proptest::prelude::*;
use serde_json::json;

use super::harness::Db;
use crate::project::Plan;

/// A JSON number: a sign, an integer part (sometimes a thousand digits), a fraction, an exponent.
fn json_number() -> impl Strategy<Value = String> {
    let int = prop_oneof![3 => Just("0".to_string()), 12 => "[1-9][0-9]{0,24}", 1 => "[1-9][0-9]{990,1010}"];
    let exp = (prop::sample::select(vec!["e", "E"]), prop::sample::select(vec!["", "+", "-"]), 0u32..400);
    (any::<bool>(), int, prop::option::of("[0-9]{1,25}"), prop::option::weighted(0.4, exp)).prop_map(|(neg, int, frac, exp)| {
        let mut s = if neg { format!("-{int}") } else { int };
        if let Some(f) = frac {
            s = format!("{s}.{f}");
        }
        if let Some((e, sign, n)) = exp {
            s = format!("{s}{e}{sign}{n}");
        }
        s
    })
}

/// A number's value, worked out on its own: sign, significant digits, power of ten.
fn value(s: &str) -> (bool, String, i64) {
    let neg = s.starts_with('-');
    let s = s.trim_start_matches(['-', '+']);
    let (mantissa, exp) = s.split_once(['e', 'E']).map_or((s, 0), |(m, e)| (m, e.parse::<i64>().expect("an exponent")));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let exp = exp - frac.len() as i64;
    let significant = all.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return (false, String::new(), 0);
    }
    (neg, trimmed.to_string(), exp + (significant.len() - trimmed.len()) as i64)
}

/// The integer a number is, if it is one that fits an i64.
fn integer(s: &str) -> Option<i64> {
    let (neg, digits, exp) = value(s);
    if digits.is_empty() {
        return Some(0);
    }
    if exp < 0 || digits.len() as i64 + exp > 20 {
        return None;
    }
    let n: i128 = format!("{}{digits}{}", if neg { "-" } else { "" }, "0".repeat(exp as usize)).parse().ok()?;
    i64::try_from(n).ok()
}

/// One projection per column type, each its own table, so one type's refusal leaves the others'.
struct Numbers {
    db: Db,
    plans: Vec<(&'static str, Plan)>,
}

const TYPES: [&str; 5] = ["numeric", "bigint", "double precision", "text", "jsonb"];

impl Numbers {
    fn new(mut db: Db) -> Self {
        let pg = db.is_pg();
        let plans = TYPES
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                let decl = match (*ty, pg) {
                    ("numeric", false) => "DECIMAL_TEXT",
                    ("jsonb", false) => "TEXT",
                    ("double precision", false) => "REAL",
                    (t, _) => t,
                };
                db.exec(&format!("CREATE TABLE n{i} (id bigint PRIMARY KEY, v {decl})"));
                let spec = json!({"name": format!("n{i}"), "table": format!("n{i}"),
                    "columns": {"id": "kafka.offset", "v": {"from": "/v", "type": ty}}});
                (*ty, db.plan(&[spec]).expect("the table takes it").0)
            })
            .collect();
        Numbers { db, plans }
    }

    fn check(&mut self, numbers: &[String]) -> Result<(), TestCaseError> {
        let messages: Vec<String> = numbers.iter().map(|n| format!(r#"{{"v": {n}}}"#)).collect();
        let msgs: Vec<_> = messages.iter().map(|m| (None, m.as_str())).collect();
        let pg = self.db.is_pg();
        for (i, (ty, plan)) in self.plans.iter().enumerate() {
            self.db.exec(&format!("DELETE FROM n{i}"));
            let fate = self.db.run(plan, &msgs);
            let stored = self.db.texts(&format!("SELECT CAST(v AS TEXT) AS v FROM n{i} ORDER BY id"));
            let doubles = if *ty == "double precision" { self.db.doubles(&format!("SELECT v FROM n{i} ORDER BY id")) } else { Vec::new() };
            let mut at = 0;
            for (k, n) in numbers.iter().enumerate() {
                let dead = fate[k].is_some();
                if !dead {
                    at += 1;
                }
                let got = || stored[at - 1].clone().unwrap_or_default();
                match *ty {
                    // PostgreSQL keeps the value (its own spelling), SQLite's TEXT affinity the text.
                    "numeric" | "jsonb" if pg => {
                        prop_assert!(!dead, "{n} into {ty}: {:?}", fate[k]);
                        prop_assert_eq!(value(&got()), value(n), "{} into {}", n, ty);
                    }
                    "numeric" | "jsonb" | "text" => {
                        prop_assert!(!dead, "{n} into {ty}: {:?}", fate[k]);
                        prop_assert_eq!(got(), n.clone(), "{} into {}", n, ty);
                    }
                    "bigint" => match integer(n) {
                        Some(i) => {
                            prop_assert!(!dead, "{n} into bigint: {:?}", fate[k]);
                            prop_assert_eq!(got(), i.to_string());
                        }
                        None => prop_assert_eq!(fate[k].as_deref(), Some("projection_type"), "{} into bigint", n),
                    },
                    _ => {
                        let nearest: f64 = n.parse().expect("a number");
                        let (_, digits, _) = value(n);
                        if nearest.is_infinite() || (nearest == 0.0 && !digits.is_empty()) {
                            prop_assert_eq!(fate[k].as_deref(), Some("projection_type"), "{} into double precision", n);
                        } else {
                            prop_assert!(!dead, "{n} into double precision: {:?}", fate[k]);
                            let d = doubles[at - 1].unwrap_or(f64::NAN);
                            // SQLite keeps a REAL that is a whole number as an integer: -0 comes back 0.
                            let same = if pg { d.to_bits() == nearest.to_bits() } else { d == nearest };
                            prop_assert!(same, "{} into double precision: {} against {}", n, d, nearest);
                        }
                    }
                }
            }
            prop_assert_eq!(at, stored.len());
        }
        Ok(())
    }
}

fn numbers_hold(db: Db) {
    let numbers = std::cell::RefCell::new(Numbers::new(db));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 96, ..ProptestConfig::default() });
    runner.run(&prop::collection::vec(json_number(), 1..8), |ns| numbers.borrow_mut().check(&ns)).unwrap();
}

#[test]
fn any_json_number_is_stored_exactly_or_refused_on_sqlite() {
    numbers_hold(Db::sqlite());
}

#[test]
fn any_json_number_is_stored_exactly_or_refused_on_postgres() {
    if let Some(db) = Db::postgres() {
        numbers_hold(db);
    }
}

/// Strings into char(4), varchar(4) and text end as the backend's own INSERT of each ends: the
/// same value stored, or the same code refusing it.
fn strings_hold(mut db: Db) {
    let columns = [("c", "char(4)"), ("vc", "varchar(4)"), ("t", "text")];
    for table in ["s", "twin"] {
        let cols: Vec<String> = columns.iter().map(|(c, ty)| format!("{c} {ty}")).collect();
        db.exec(&format!("CREATE TABLE {table} (id bigint PRIMARY KEY, {})", cols.join(", ")));
    }
    let plans: Vec<Plan> = columns
        .iter()
        .map(|(c, _)| {
            let spec = json!({"name": format!("s_{c}"), "table": "s", "mode": "upsert", "key": ["id"],
                "columns": {"id": "kafka.offset", *c: "/s"}});
            db.plan(&[spec]).expect("the table takes it").0
        })
        .collect();
    let db = std::cell::RefCell::new(db);
    let strings = prop_oneof![prop::collection::vec("[ab ]{0,7}", 1..6), prop::collection::vec("\\PC{0,6}", 1..6)];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    runner
        .run(&strings, |strings| {
            let db = &mut *db.borrow_mut();
            let messages: Vec<String> = strings.iter().map(|s| json!({ "s": s }).to_string()).collect();
            let msgs: Vec<_> = messages.iter().map(|m| (None, m.as_str())).collect();
            for ((c, _), plan) in columns.iter().zip(&plans) {
                db.exec("DELETE FROM s");
                db.exec("DELETE FROM twin");
                let fate = db.run(plan, &msgs);
                for (k, s) in strings.iter().enumerate() {
                    let own = db.insert_text("twin", c, k as i64, s);
                    prop_assert_eq!(fate[k].clone(), own, "{:?} into {}", s, c);
                }
                let read =
                    |db: &mut Db, t: &str| db.texts(&format!("SELECT CAST({c} AS TEXT) || '|' || length({c}) AS v FROM {t} ORDER BY id"));
                let (got, want) = (read(db, "s"), read(db, "twin"));
                prop_assert_eq!(got, want, "{:?} into {}", strings, c);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_string_is_stored_as_the_backends_own_insert_stores_it() {
    for db in Db::all() {
        strings_hold(db);
    }
}
