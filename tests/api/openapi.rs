//! `GET /openapi.json` is true: every route is in it and nothing else, and a schemathesis run
//! (PyPI's, installed by scripts/install-deps.sh) against a live instance with the admin token
//! finds no 5xx and no answer that does not match the document.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;
use tributary::app;

const TOKEN: &str = "openapi-admin-token-0123456789";

/// (method, path) of every route `tributary::http::routes` registers, read from its source.
fn routed() -> BTreeSet<(String, String)> {
    let source = [include_str!("../../src/http.rs"), include_str!("../../src/console/mod.rs")].concat();
    source
        .split("only(\"")
        .skip(1)
        .filter_map(|rest| {
            let (path, rest) = rest.split_once('"')?;
            let method = rest.split("Method::").nth(1)?.split(|c: char| !c.is_ascii_alphabetic()).next()?;
            Some((method.to_lowercase(), path.to_string()))
        })
        .collect()
}

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths.iter().flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone()))).collect()
}

#[test]
fn the_document_names_every_route_and_only_those() {
    let doc: serde_json::Value = serde_json::from_str(tributary::http::OPENAPI).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.0.3");
    let routed = routed();
    assert!(routed.len() >= 16, "{routed:?}");
    assert_eq!(documented(&doc), routed);
}

#[test]
fn a_fuzz_run_from_the_document_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(mut f) = Fixture::new(Kind::Sqlite, "openapi", 2, 1) else { return };
    f.produce(1_000);
    let mut s = f.settings();
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
    let (_, served) = get_json(running.port, "/openapi.json");
    assert_eq!(served, serde_json::from_str::<serde_json::Value>(tributary::http::OPENAPI).unwrap(), "served as written");
    wait_until("the console's first sample", Duration::from_secs(30), || get_json(running.port, "/console/snapshot").0 == 200);
    // The fuzzer restarts the reader among the rest, after which /ready answers a documented 503
    // (not_assigned) until the group assigns it again: /ready is held to its document, not to
    // "no 5xx", in a run of its own.
    let fuzz = |checks: &str, paths: [&str; 2], selected: &str| {
        let out = std::process::Command::new("schemathesis")
            .args(["run", &format!("http://127.0.0.1:{}/openapi.json", running.port)])
            .args(["--checks", checks, paths[0], paths[1]])
            .args(["--max-examples", "25", "--request-timeout", "10", "--header", &format!("Authorization: Bearer {TOKEN}")])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("schemathesis runs (scripts/install-deps.sh installs it from PyPI)");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "schemathesis:\n{said}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(selected), "{selected}: {said}");
    };
    let conformance = "status_code_conformance,content_type_conformance,response_schema_conformance";
    fuzz(&format!("not_a_server_error,{conformance}"), ["--exclude-path", "/ready"], "15 selected / 16 total");
    fuzz(conformance, ["--include-path", "/ready"], "1 selected / 16 total");
    assert_eq!(get_json(running.port, "/health").0, 200, "still alive after the fuzzing");
    running.stop().unwrap();
}
