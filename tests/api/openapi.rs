//! `GET /openapi.json` is true. It is generated from the routes (`tributary::routes`: each
//! handler is registered at the path and method its `#[utoipa::path]` documents), so here a live
//! instance is held to it: every documented operation answers with a status the document names
//! (not the fallback's 404, not a 405), every other method on a documented path is a 405 whose
//! `Allow` names exactly the documented ones, every schema the document refers to is in it, and a
//! schemathesis run (PyPI's, installed by scripts/install-deps.sh) with the admin token finds no
//! 5xx and no answer that does not match the document.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use tributary::app;
use tributary::routes::Routes;

const TOKEN: &str = "openapi-admin-token-0123456789";

/// The generated document, as the server serves it.
fn generated() -> Value {
    let doc = Routes::document(&app::API).to_json().expect("the document serializes");
    serde_json::from_str(&doc).expect("the document is JSON")
}

/// (path, method) → the statuses documented for it.
fn operations(doc: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = BTreeMap::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("a path item") {
            let statuses = op["responses"].as_object().expect("responses").keys().map(|s| s.parse().expect("a status")).collect();
            out.insert((path.clone(), method.to_uppercase()), statuses);
        }
    }
    out
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A request with the admin token; the status, the `Allow` header and the body.
fn admin_request(port: u16, method: &str, path: &str) -> (u16, Option<String>, String) {
    let a = request(method, port, path, &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    let allow = a.header("allow").map(str::to_string);
    (a.status, allow, a.body)
}

#[test]
fn the_document_names_its_routes_and_every_schema_it_refers_to() {
    let doc = generated();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let ops = operations(&doc);
    assert!(ops.len() >= 17, "{ops:?}");
    for (path, method) in [("/health", "GET"), ("/", "GET"), ("/dead-letters/redrive", "POST"), ("/openapi.json", "GET")] {
        assert!(ops.contains_key(&(path.to_string(), method.to_string())), "{method} {path} is not documented: {ops:?}");
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("a reference outside the schemas: {r}"));
        assert!(schemas.contains_key(name), "{r} is not in the document's schemas: {:?}", schemas.keys().collect::<Vec<_>>());
    }
    // The admin routes carry the gate's scheme and its answers.
    let pause = &doc["paths"]["/pause"]["post"];
    assert_eq!(pause["security"][0]["admin"], serde_json::json!([]), "{pause}");
    assert!(pause["responses"]["401"].is_object() && pause["responses"]["403"].is_object(), "{pause}");
    assert!(doc["paths"]["/health"]["get"]["security"].is_null(), "health is public");
}

#[test]
fn every_documented_operation_answers_and_other_methods_are_405s_naming_the_documented_ones() {
    let Some(mut f) = Fixture::new(Kind::Sqlite, "openapi-live", 1, 1) else { return };
    f.produce(10);
    let mut s = f.settings();
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    let port = running.port;
    let doc = generated();
    let (_, served) = get_json(port, "/openapi.json");
    assert_eq!(served, doc, "the served document is the generated one");
    let ops = operations(&doc);
    for ((path, method), statuses) in &ops {
        let concrete = path.replace("{name}", "parser").replace("{topic}", "t").replace("{partition}", "0").replace("{offset}", "0");
        let (status, _, body) = admin_request(port, method, &concrete);
        assert!(statuses.contains(&status), "{method} {path}: {status} is not among the documented {statuses:?}: {body}");
    }
    let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (path, method) in ops.keys() {
        by_path.entry(path).or_default().insert(method);
    }
    for (path, methods) in by_path {
        let concrete = path.replace("{name}", "parser").replace("{topic}", "t").replace("{partition}", "0").replace("{offset}", "0");
        let mut allowed: BTreeSet<&str> = methods.clone();
        if methods.contains("GET") {
            allowed.insert("HEAD");
        }
        let other = if methods.contains("GET") { "DELETE" } else { "GET" };
        let (status, allow, body) = admin_request(port, other, &concrete);
        assert_eq!(status, 405, "{other} {path}: {body}");
        let allow: BTreeSet<String> = allow.unwrap_or_default().split(", ").map(str::to_string).collect();
        assert_eq!(allow, allowed.iter().map(|m| m.to_string()).collect(), "{path}");
    }
    let (status, _, body) = admin_request(port, "GET", "/not-a-route");
    assert_eq!(status, 404, "{body}");
    running.stop().unwrap();
}

#[test]
fn a_fuzz_run_from_the_document_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(mut f) = Fixture::new(Kind::Sqlite, "openapi", 2, 1) else { return };
    f.produce(1_000);
    let mut s = f.settings();
    s.http.admin_token = Some(TOKEN.to_string().into());
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(60));
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
