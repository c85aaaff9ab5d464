//! `tributary demo --exit-when-done` runs the whole job and accounts for every event.

mod common;

use std::process::Command;

use common::*;

#[test]
fn demo_exits_zero_with_a_summary_and_every_event_accounted_for() {
    let Some(db) = test_db() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["demo", "--events", "3000", "--bad-ratio", "0.02", "--bind", "127.0.0.1:0", "--exit-when-done", "--db", &db.url])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accounted for      3000 of 3000"), "{stdout}");
    let mut c = connect(&db.url);
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM dead_letters) AS n").get_result(&mut c).unwrap();
    assert_eq!(n.n, 3000);
    let dead: N = diesel::sql_query("SELECT count(*) AS n FROM dead_letters").get_result(&mut c).unwrap();
    assert_eq!(dead.n, 60, "2% of 3000 are malformed");
}
