//! `tributary demo --exit-when-done` runs the whole job and accounts for every event.

use std::process::Command;

use crate::common::*;

on_both_backends!(demo_exits_zero_with_a_summary_and_every_event_accounted_for);

fn demo_exits_zero_with_a_summary_and_every_event_accounted_for(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["demo", "--events", "3000", "--bad-ratio", "0.02", "--bind", "127.0.0.1:0", "--exit-when-done", "--db", &db.url])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accounted for      3000 of 3000"), "{stdout}");
    assert_eq!(count(&db.url, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM dead_letters) AS n"), 3000);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM dead_letters"), 60, "2% of 3000 are malformed");
}
