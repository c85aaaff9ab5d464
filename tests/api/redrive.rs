//! `POST /dead-letters/redrive`: after an operator fixes the parser settings, dead letters that
//! now parse move into `events` exactly once (repeated and concurrent redrives included), those
//! that still fail stay with their current reason, a dry run changes nothing, and the admin
//! rules (token, body limit, strict JSON body) hold.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use diesel::prelude::*;
use serde_json::{json, Value};
use tributary::app;
use tributary::config::Settings;
use tributary::telemetry;
use tributary_actors::Database;
use tributary_actors::{Format, ParseOptions};
use tributary_actors::{RedriveFilter, Selection};

const TOKEN: &str = "test-admin-token-0123456789";
const MIXED: usize = 1_200;
const BIG: usize = 20;

fn with(mut s: Settings, format: Format, max_message_bytes: usize, token: bool) -> Settings {
    s.parser.format = format;
    s.parser.max_message_bytes = max_message_bytes;
    if token {
        s.http.admin_token = Some(TOKEN.to_string().into());
    }
    s
}

fn redrive(port: u16, body: Value) -> (u16, Value) {
    let (status, text) =
        http_with("POST", port, "/dead-letters/redrive", &[("Authorization", &format!("Bearer {TOKEN}"))], body.to_string().as_bytes());
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// Dead letters produce_mixed's messages `0..n` get under `format = cloudevents`: the malformed
/// ones keep their reasons, the plain JSON ones (every third) are `not_cloudevent`.
fn dead_under_cloudevents(n: usize) -> BTreeMap<String, i64> {
    let mut dead = BTreeMap::new();
    for i in 0..n {
        let reason = if i % 100 == 99 {
            MALFORMED[(i / 100) % MALFORMED.len()].0
        } else if i % 3 == 2 {
            "not_cloudevent"
        } else {
            continue;
        };
        *dead.entry(reason.to_string()).or_insert(0) += 1;
    }
    dead
}

fn live_dead_letters_by_reason(url: &str, topic: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for reason in MALFORMED.iter().map(|(r, _)| *r).chain(["not_cloudevent", "oversize"]) {
        let n = count(
            url,
            &format!("SELECT count(*) AS n FROM dead_letters WHERE topic = '{topic}' AND reason = '{reason}' AND redriven_at IS NULL"),
        );
        if n > 0 {
            out.insert(reason.to_string(), n);
        }
    }
    out
}

/// Every offset is exactly once in `events` ∪ the dead letters not redriven, and every redriven
/// dead letter has its event.
fn assert_each_offset_once(url: &str, topic: &str, watermarks: &BTreeMap<i32, i64>) {
    let live = format!(
        "SELECT partition, \"offset\" FROM events WHERE topic = '{topic}' \
         UNION ALL SELECT partition, \"offset\" FROM dead_letters WHERE topic = '{topic}' AND redriven_at IS NULL"
    );
    let total: i64 = watermarks.values().sum();
    assert_eq!(count(url, &format!("SELECT count(*) AS n FROM ({live}) t")), total, "one row per offset");
    assert_eq!(
        count(url, &format!("SELECT count(*) AS n FROM (SELECT DISTINCT partition, \"offset\" FROM ({live}) t) d")),
        total,
        "no offset twice"
    );
    for (p, hw) in watermarks {
        assert_eq!(
            count(url, &format!("SELECT max(\"offset\") + 1 AS n FROM ({live}) t WHERE partition = {p}")),
            *hw,
            "partition {p} complete"
        );
    }
    let orphans = count(
        url,
        &format!(
            "SELECT count(*) AS n FROM dead_letters d WHERE d.topic = '{topic}' AND d.redriven_at IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM events e WHERE e.topic = d.topic AND e.partition = d.partition AND e.\"offset\" = d.\"offset\")"
        ),
    );
    assert_eq!(orphans, 0, "every redriven dead letter has its event");
}

on_both_backends!(
    redrive_ingests_dead_letters_that_now_parse_exactly_once,
    a_redrive_goes_through_rows_that_still_fail_to_the_ones_behind_them,
    dead_letters_are_listed_page_by_page_and_read_whole_over_the_api
);

fn redrive_ingests_dead_letters_that_now_parse_exactly_once(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "redrive", 2, 1) else { return };
    let (url, topic) = (f.db.url.clone(), f.topic.clone());

    // Ingest under strict settings: CloudEvents only, 512-byte values.
    f.produce(MIXED);
    let pad = "x".repeat(1000);
    for i in 0..BIG {
        let p = (i % 2) as i32;
        let body = json!({"specversion": "1.0", "id": format!("big-{i}"), "source": "/big", "type": "big.one", "data": {"pad": pad}});
        f.kafka.send(&topic, Some(p), None, Some(body.to_string().as_bytes()), &[]).unwrap();
        f.kafka.send(&topic, Some(p), None, Some(json!({"plain": i, "pad": pad}).to_string().as_bytes()), &[]).unwrap();
        *f.watermarks.entry(p).or_insert(0) += 2;
    }
    f.kafka.flush().unwrap();
    let total: i64 = f.watermarks.values().sum();
    let mut expected = dead_under_cloudevents(MIXED);
    expected.insert("oversize".into(), 2 * BIG as i64);
    {
        let strict = app::spawn(with(f.settings(), Format::Cloudevents, 512, false), telemetry::discard()).unwrap();
        wait_until("everything committed", Duration::from_secs(60), || f.committed() == total);
        assert_exactly_once(&url, &topic, &f.group, &f.watermarks, &expected);
        let (status, body) =
            http_with("POST", strict.port, "/dead-letters/redrive", &[("Authorization", &format!("Bearer {TOKEN}"))], b"{}");
        assert_eq!(status, 403, "no admin_token configured: {body}");
        strict.stop().unwrap();
    }

    // The operator raises parser.max_message_bytes (still CloudEvents only) and redrives the
    // oversize ones: the big CloudEvents parse now; the big plain JSON ones still fail, now for
    // the reason the current settings give.
    {
        let raised = app::spawn(with(f.settings(), Format::Cloudevents, 1024 * 1024, true), telemetry::discard()).unwrap();
        let port = raised.port;
        let (status, report) = redrive(port, json!({"reason": "oversize", "topic": topic}));
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            report,
            json!({"selected": 40, "redriven": 20, "still_failing": 20, "dry_run": false, "next": null, "projections": {},
                   "by_reason": {"oversize": {"selected": 40, "redriven": 20, "still_failing": 20}}})
        );
        assert_eq!(count(&url, &format!("SELECT count(*) AS n FROM events WHERE topic = '{topic}' AND event_id LIKE 'big-%'")), BIG as i64);
        assert_eq!(redrive(port, json!({"reason": "oversize"})).1["selected"], 0, "nothing left with that reason");
        raised.stop().unwrap();
    }
    *expected.get_mut("not_cloudevent").unwrap() += BIG as i64;
    expected.remove("oversize");
    assert_eq!(live_dead_letters_by_reason(&url, &topic), expected);
    assert_each_offset_once(&url, &topic, &f.watermarks);

    // Then switches parser.format to auto and redrives the not_cloudevent ones.
    let relaxed = app::spawn(with(f.settings(), Format::Auto, 1024 * 1024, true), telemetry::discard()).unwrap();
    let port = relaxed.port;
    let auth = format!("Bearer {TOKEN}");
    let not_ce = expected["not_cloudevent"];

    // Admin rules.
    let (status, body) = http_with("POST", port, "/dead-letters/redrive", &[], b"{}");
    assert_eq!(status, 401, "missing token: {body}");
    let (status, _) = http_with("POST", port, "/dead-letters/redrive", &[("Authorization", "Bearer wrong-token-wrong-token")], b"{}");
    assert_eq!(status, 401, "wrong token");
    let (status, _) = http_with("POST", port, "/dead-letters/redrive", &[("Authorization", &auth)], &vec![b' '; 1024 * 1024]);
    assert_eq!(status, 413, "oversized body");
    for bad in [json!({"reason": "not_cloudevent", "bogus": 1}), json!({"limit": 0}), json!({"limit": 10_001}), json!({"partition": "one"})]
    {
        let (status, body) = redrive(port, bad.clone());
        assert_eq!((status, body["status"].clone()), (400, json!(400)), "{bad} → {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, body) = http_with("POST", port, "/dead-letters/redrive", &[("Authorization", &auth)], b"not json");
    assert_eq!(status, 400, "{body}");
    assert_eq!(http("GET", port, "/dead-letters/redrive").0, 405);

    // A dry run reports and changes nothing.
    let events_before = count(&url, "SELECT count(*) AS n FROM events");
    let (status, report) = redrive(port, json!({"reason": "not_cloudevent", "dry_run": true, "limit": 10_000}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["selected"].as_i64(), report["redriven"].as_i64(), report["dry_run"].as_bool()),
        (Some(not_ce), Some(not_ce), Some(true))
    );
    assert_eq!(count(&url, "SELECT count(*) AS n FROM events"), events_before, "dry run wrote no events");
    assert_eq!(live_dead_letters_by_reason(&url, &topic), expected, "dry run marked nothing");

    // A limit takes the lowest offsets first.
    let (_, first) = redrive(port, json!({"reason": "not_cloudevent", "partition": 0, "limit": 10}));
    assert_eq!((first["selected"].as_i64(), first["redriven"].as_i64()), (Some(10), Some(10)), "{first}");
    // Two redrives at once — this instance's and another instance's (its own pool, straight to
    // the storage call the Redriver makes) — share the rest without overlap.
    let other = Database::open(&app::database_options(&f.settings())).unwrap();
    let select = Selection { reason: Some("not_cloudevent".into()), limit: 10_000, ..Selection::default() };
    let filter = RedriveFilter { select, dry_run: false };
    let opts = ParseOptions { format: Format::Auto, ..ParseOptions::default() };
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let here = {
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            barrier.wait();
            redrive(port, json!({"reason": "not_cloudevent", "limit": 10_000}))
        })
    };
    barrier.wait();
    let there = other.redrive(&filter, &opts).unwrap();
    let (status, here) = here.join().unwrap();
    assert_eq!(status, 200, "{here}");
    assert_eq!(
        here["redriven"].as_i64().unwrap() + there.redriven as i64 + 10,
        not_ce,
        "each dead letter redriven once: {here} and {there:?}"
    );
    assert_eq!(here["selected"].as_i64().unwrap() + there.selected as i64 + 10, not_ce, "and selected once");
    assert_eq!(redrive(port, json!({"reason": "not_cloudevent"})).1["selected"], 0, "a repeated redrive selects nothing");
    let (_, still) = redrive(port, json!({"reason": "invalid_json"}));
    let invalid = expected["invalid_json"];
    assert_eq!(
        (still["selected"].as_i64(), still["redriven"].as_i64(), still["still_failing"].as_i64()),
        (Some(invalid), Some(0), Some(invalid)),
        "{still}"
    );

    expected.remove("not_cloudevent");
    assert_eq!(live_dead_letters_by_reason(&url, &topic), expected);
    assert_each_offset_once(&url, &topic, &f.watermarks);
    assert_eq!(
        count(&url, &format!("SELECT count(*) AS n FROM events WHERE topic = '{topic}' AND CAST(data AS TEXT) LIKE '%\"pad\"%'")),
        2 * BIG as i64
    );
    let metrics = http("GET", port, "/metrics").1;
    let redriven_here = 10 + here["redriven"].as_i64().unwrap();
    assert_eq!(
        tributary::http::metric_sum(&metrics, "tributary_dead_letters_redriven_total"),
        redriven_here as f64,
        "what this instance redrove"
    );

    // Ingestion goes on as before.
    f.produce(300);
    wait_until("new messages committed", Duration::from_secs(60), || f.committed() == f.watermarks.values().sum::<i64>());

    // The database refusing a row (here: its event already exists, SQLSTATE 23505) fails only
    // that row; the others of the same partition still go in.
    let events_before = count(&url, "SELECT count(*) AS n FROM events");
    let hw = f.watermarks[&0];
    for offset in [0, hw + 1_000] {
        on_conn!(&url, c => {
            let sql = match kind {
                Kind::Postgres => "INSERT INTO dead_letters (topic, partition, \"offset\", payload, headers, reason, detail) VALUES ($1, 0, $2, $3, '{}', 'database_rejected', 'test')",
                Kind::Sqlite => "INSERT INTO dead_letters (topic, partition, \"offset\", payload, headers, reason, detail) VALUES (?, 0, ?, ?, '{}', 'database_rejected', 'test')",
            };
            diesel::sql_query(sql)
                .bind::<diesel::sql_types::Text, _>(&topic)
                .bind::<diesel::sql_types::BigInt, _>(offset)
                .bind::<diesel::sql_types::Binary, _>(br#"{"ok": true}"#.as_slice())
                .execute(c)
                .unwrap()
        });
    }
    let (status, report) = redrive(port, json!({"reason": "database_rejected"}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["selected"].as_i64(), report["redriven"].as_i64(), report["still_failing"].as_i64()),
        (Some(2), Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(count(&url, "SELECT count(*) AS n FROM events"), events_before + 1);
    assert_eq!(count(&url, &format!("SELECT count(*) AS n FROM dead_letters WHERE topic = '{topic}' AND reason = 'database_rejected' AND redriven_at IS NULL AND \"offset\" = 0")), 1);
    relaxed.stop().unwrap();
}

/// Dead letters that still fail ahead of ones that now pass: calls of `limit` 100, each given
/// the previous `next`, go through the whole set once and reach every redrivable row; the
/// procedure ends (`next` null) with the first call that selects fewer than its limit.
fn a_redrive_goes_through_rows_that_still_fail_to_the_ones_behind_them(kind: Kind) {
    const STILL_FAILING: usize = 979;
    const BEHIND: usize = 21;
    let Some(mut f) = Fixture::new(kind, "redrive-cursor", 1, 1) else { return };
    let (url, topic) = (f.db.url.clone(), f.topic.clone());
    let pad = "x".repeat(600);
    for i in 0..STILL_FAILING {
        f.kafka.send(&topic, Some(0), None, Some(json!({"plain": i}).to_string().as_bytes()), &[]).unwrap();
    }
    for i in 0..BEHIND {
        let body = json!({"specversion": "1.0", "id": format!("late-{i}"), "source": "/late", "type": "late.one", "data": {"pad": pad}});
        f.kafka.send(&topic, Some(0), None, Some(body.to_string().as_bytes()), &[]).unwrap();
    }
    f.kafka.flush().unwrap();
    let total = (STILL_FAILING + BEHIND) as i64;
    f.watermarks.insert(0, total);
    {
        let strict = app::spawn(with(f.settings(), Format::Cloudevents, 512, false), telemetry::discard()).unwrap();
        wait_until("everything committed", Duration::from_secs(60), || f.committed() == total);
        strict.stop().unwrap();
    }
    let mut expected = BTreeMap::from([("not_cloudevent".to_string(), STILL_FAILING as i64), ("oversize".to_string(), BEHIND as i64)]);
    assert_eq!(live_dead_letters_by_reason(&url, &topic), expected);

    let raised = app::spawn(with(f.settings(), Format::Cloudevents, 1024 * 1024, true), telemetry::discard()).unwrap();
    let (mut calls, mut selected, mut redriven, mut after) = (0, 0, 0, Value::Null);
    loop {
        let (status, report) = redrive(raised.port, json!({"limit": 100, "after": after}));
        assert_eq!(status, 200, "{report}");
        calls += 1;
        selected += report["selected"].as_i64().unwrap();
        redriven += report["redriven"].as_i64().unwrap();
        after = report["next"].clone();
        if after.is_null() {
            break;
        }
        assert!(calls < 100, "the procedure does not end: {report}");
    }
    // A full page may have more behind it: the call that comes up short (here empty) ends it.
    assert_eq!(calls, (STILL_FAILING + BEHIND) / 100 + 1, "one pass over the set");
    assert_eq!((selected, redriven), (total, BEHIND as i64));
    expected.remove("oversize");
    assert_eq!(live_dead_letters_by_reason(&url, &topic), expected);
    assert_eq!(count(&url, &format!("SELECT count(*) AS n FROM events WHERE topic = '{topic}' AND event_id LIKE 'late-%'")), BEHIND as i64);
    assert_each_offset_once(&url, &topic, &f.watermarks);

    // A cursor that is not one is a 400 naming the field.
    let (status, body) = redrive(raised.port, json!({"after": "no-partition"}));
    assert_eq!((status, body["error"].as_str().unwrap_or_default().starts_with("after:")), (400, true), "{body}");
    raised.stop().unwrap();
}

/// `GET /dead-letters` pages through exactly the dead letters produced (lowest
/// `(topic, partition, offset)` first, `next` until null), filters by partition and reason, and
/// `GET /dead-letters/{topic}/{partition}/{offset}` gives one whole; bad parameters are 400s,
/// an unknown one 404, and both need the admin token.
fn dead_letters_are_listed_page_by_page_and_read_whole_over_the_api(kind: Kind) {
    use base64::Engine as _;
    let Some(mut f) = Fixture::new(kind, "dead-letter-api", 2, 1) else { return };
    let topic = f.topic.clone();
    let mut model = Vec::new();
    for i in 0..60 {
        let p = i % 2;
        let offset = f.watermarks.get(&p).copied().unwrap_or(0);
        if i % 7 == 3 {
            f.produce_dead(p, format!("{{broken {i}").as_bytes(), &[(b"h".as_slice(), b"v".as_slice())], "invalid_json");
            model.push((p, offset));
        } else {
            f.kafka.send(&topic, Some(p), None, Some(json!({"n": i}).to_string().as_bytes()), &[]).unwrap();
            *f.watermarks.entry(p).or_insert(0) += 1;
        }
    }
    f.kafka.flush().unwrap();
    model.sort();
    let total: i64 = f.watermarks.values().sum();
    let running = app::spawn(with(f.settings(), Format::Auto, 1024 * 1024, true), telemetry::discard()).unwrap();
    let port = running.port;
    wait_until("everything committed", Duration::from_secs(60), || f.committed() == total);
    let auth = [("Authorization", format!("Bearer {TOKEN}"))];
    let get = |path: &str| -> (u16, Value) {
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, text) = http_with("GET", port, path, &headers, b"");
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
    };

    let (mut listed, mut after, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let (status, page) = get(&format!("/dead-letters?limit=3&topic={topic}{after}"));
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for d in page["items"].as_array().unwrap() {
            assert_eq!(
                (d["topic"].as_str(), d["reason"].as_str(), d["sqlstate"].is_null()),
                (Some(topic.as_str()), Some("invalid_json"), true),
                "{d}"
            );
            assert!(d["failed_at"].as_str().is_some_and(|t| t.ends_with('Z')) && d["redriven_at"].is_null(), "{d}");
            assert!(d["payload_bytes"].as_i64().unwrap() >= 8, "{d}");
            listed.push((d["partition"].as_i64().unwrap() as i32, d["offset"].as_i64().unwrap()));
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
        assert!(pages < 50, "the pages never end");
    }
    assert_eq!(listed, model, "every dead letter once, in (partition, offset) order");
    assert_eq!(pages, model.len() / 3 + 1);

    let (_, only_one) = get(&format!("/dead-letters?topic={topic}&partition=1&limit=1000"));
    let want: Vec<i64> = model.iter().filter(|(p, _)| *p == 1).map(|(_, o)| *o).collect();
    let got: Vec<i64> = only_one["items"].as_array().unwrap().iter().map(|d| d["offset"].as_i64().unwrap()).collect();
    assert_eq!((got, only_one["next"].is_null()), (want, true));
    assert_eq!(get(&format!("/dead-letters?topic={topic}&reason=oversize")).1["items"], json!([]));

    let (p, offset) = model[0];
    let (status, one) = get(&format!("/dead-letters/{topic}/{p}/{offset}"));
    assert_eq!(status, 200, "{one}");
    let payload = base64::engine::general_purpose::STANDARD.decode(one["payload_base64"].as_str().unwrap()).unwrap();
    assert!(payload.starts_with(b"{broken "), "{one}");
    assert_eq!(one["key_base64"], base64::engine::general_purpose::STANDARD.encode("poison"));
    assert_eq!(one["headers"]["h"], "v", "{one}");
    assert_eq!((one["partition"].as_i64(), one["offset"].as_i64()), (Some(p as i64), Some(offset)));

    assert_eq!(get(&format!("/dead-letters/{topic}/{p}/999999")).0, 404);
    for bad in
        ["/dead-letters?limit=0", "/dead-letters?limit=abc", "/dead-letters?bogus=1", "/dead-letters?after=zz", "/dead-letters/t/x/1"]
    {
        let (status, body) = get(bad);
        assert_eq!((status, body["status"].as_i64()), (400, Some(400)), "{bad}: {body}");
    }
    assert_eq!(http("GET", port, "/dead-letters").0, 401, "the admin token is needed");
    running.stop().unwrap();
}
