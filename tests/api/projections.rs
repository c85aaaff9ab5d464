//! Projections end to end: a generated order stream into the user's own table on both backends,
//! compared with a model the test computes on its own by applying the messages one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tributary::app;
use tributary::config::Settings;
use tributary_actors::{EventsSpec, ProjectionSpec, Unrouted};

use crate::common::*;

on_both_backends!(
    an_order_stream_ends_as_the_model_applied_one_by_one,
    one_stream_fans_out_by_type_to_two_tables_and_the_archive,
    without_the_archive_unrouted_messages_are_skipped_or_dead_letters,
    a_projection_that_cannot_work_fails_the_start_naming_key_and_fix,
    a_redriven_dead_letter_goes_through_the_projections,
);

pub const PARTITIONS: i32 = 4;

fn log() -> slog::Logger {
    tributary::telemetry::discard()
}

/// The sum of a metric's samples whose labels include `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn specs(v: Value) -> Vec<ProjectionSpec> {
    serde_json::from_value(v).expect("projection specs")
}

pub fn orders_table(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Postgres => format!(
            "CREATE TABLE {name} (order_id bigint PRIMARY KEY, status text NOT NULL DEFAULT 'new', customer text, \
             amount bigint CHECK (amount >= 0), version bigint, updated_at timestamptz, last_offset bigint)"
        ),
        Kind::Sqlite => format!(
            "CREATE TABLE {name} (order_id INTEGER PRIMARY KEY, status TEXT NOT NULL DEFAULT 'new', customer TEXT, \
             amount INTEGER CHECK (amount >= 0), version INTEGER, updated_at TEXT, last_offset INTEGER)"
        ),
    }
}

pub fn orders_spec(table: &str) -> Value {
    json!({
        "name": "orders", "table": table, "types": ["com.example.order.*"], "mode": "upsert",
        "key": ["order_id"], "newer_wins": "version",
        "delete_types": ["com.example.order.cancelled"], "delete_on_tombstone": true,
        "columns": {
            "order_id": {"from": "key:/order_id", "type": "bigint"},
            "status": "/status",
            "customer": "/customer/name",
            "amount": {"from": "/amount_cents", "type": "bigint"},
            "version": {"from": "/version", "type": "bigint"},
            "updated_at": {"from": "ce.time", "type": "timestamptz"},
            "last_offset": "kafka.offset",
        }
    })
}

/// A field of a generated change: absent, an explicit null, or a value.
#[derive(Clone, Debug)]
enum F<T> {
    Absent,
    Null,
    Val(T),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    status: String,
    customer: Option<String>,
    amount: Option<i64>,
    version: Option<i64>,
    last_offset: i64,
}

#[derive(QueryableByName, Debug)]
struct TableRow {
    #[diesel(sql_type = BigInt)]
    order_id: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    customer: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    amount: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    version: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last_offset: Option<i64>,
}

fn table_rows(url: &str, table: &str) -> BTreeMap<i64, Row> {
    let q = format!("SELECT order_id, status, customer, amount, version, last_offset FROM {table}");
    let rows: Vec<TableRow> = if let Some(path) = url.strip_prefix("sqlite://") {
        let mut c = SqliteConnection::establish(path).unwrap();
        diesel::sql_query(q).load(&mut c).unwrap()
    } else {
        let mut c = PgConnection::establish(url).unwrap();
        diesel::sql_query(q).load(&mut c).unwrap()
    };
    rows.into_iter()
        .map(|r| {
            let row = Row {
                status: r.status,
                customer: r.customer,
                amount: r.amount,
                version: r.version,
                last_offset: r.last_offset.unwrap_or(-1),
            };
            (r.order_id, row)
        })
        .collect()
}

fn cloudevent(ty: &str, id: usize, data: Value) -> Vec<u8> {
    json!({"specversion": "1.0", "id": format!("e{id}"), "source": "/shop", "type": ty,
           "time": "2026-01-02T03:04:05Z", "data": data})
    .to_string()
    .into_bytes()
}

/// What the generated stream must give: the table, and each poison message's reason.
pub struct Expected {
    table: BTreeMap<i64, Row>,
    dead: BTreeMap<(i32, i64), &'static str>,
    tombstones: i64,
    pub produced: i64,
}

/// One generated record.
pub struct Msg {
    partition: i32,
    key: Vec<u8>,
    payload: Option<Vec<u8>>,
}

/// Produce `msgs` (then flush).
pub fn send_all(kafka: &tributary::mock::MockKafka, topic: &str, msgs: &[Msg]) {
    for m in msgs {
        kafka.send(topic, Some(m.partition), Some(&m.key), m.payload.as_deref(), &[]).unwrap();
    }
    kafka.flush().unwrap();
}

/// Produce ≥ 5,000 keys' histories: partial changes, explicit nulls, late old versions, bursts of
/// one key (duplicates inside a batch), deletes by type and by tombstone, re-creation, values
/// that cannot be coerced, values the table's CHECK and NOT NULL refuse, keys that are not JSON.
/// The model applies each message in the order generated (a key stays in one partition).
pub fn orders_stream(keys: i64, rounds: usize, seed: u64) -> (Vec<Msg>, Expected) {
    let mut out = Vec::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<i64, Row> = BTreeMap::new();
    let mut versions: BTreeMap<i64, i64> = BTreeMap::new();
    let mut next_offset = [0i64; PARTITIONS as usize];
    let mut dead = BTreeMap::new();
    let (mut tombstones, mut produced, mut id) = (0, 0, 0);
    for _ in 0..rounds {
        let mut order: Vec<i64> = (0..keys).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for &k in &order {
            let burst = if rng.random_bool(0.2) { 3 } else { 1 };
            for _ in 0..burst {
                let p = (k % PARTITIONS as i64) as i32;
                let offset = next_offset[p as usize];
                next_offset[p as usize] += 1;
                produced += 1;
                id += 1;
                let key = json!({"order_id": k}).to_string();
                let r: f64 = rng.random();
                if r < 0.05 {
                    out.push(Msg { partition: p, key: key.clone().into_bytes(), payload: None });
                    tombstones += 1;
                    model.remove(&k);
                    continue;
                }
                if r < 0.12 {
                    let payload = cloudevent("com.example.order.cancelled", id, json!({"reason": "customer"}));
                    out.push(Msg { partition: p, key: key.clone().into_bytes(), payload: Some(payload) });
                    model.remove(&k);
                    continue;
                }
                if r < 0.125 {
                    let payload = cloudevent("com.example.order.updated", id, json!({"status": "x", "version": 1}));
                    out.push(Msg { partition: p, key: b"not json".to_vec(), payload: Some(payload) });
                    dead.insert((p, offset), "projection_missing");
                    continue;
                }
                let v = versions.entry(k).or_insert(0);
                // A late, old version now and then (older than what the key has seen).
                let version = if r < 0.17 && *v > 2 {
                    *v - 2
                } else {
                    *v += 1;
                    *v
                };
                let pick = |rng: &mut StdRng, absent: f64, null: f64| {
                    let x: f64 = rng.random();
                    if x < absent {
                        0
                    } else if x < absent + null {
                        1
                    } else {
                        2
                    }
                };
                let status = match pick(&mut rng, 0.3, 0.0) {
                    0 => F::Absent,
                    _ => F::Val(["placed", "paid", "shipped"][rng.random_range(0..3)].to_string()),
                };
                let customer = match pick(&mut rng, 0.4, 0.1) {
                    0 => F::Absent,
                    1 => F::Null,
                    _ => F::Val(format!("c{}", rng.random_range(0..100))),
                };
                let amount = match pick(&mut rng, 0.3, 0.0) {
                    0 => F::Absent,
                    _ => F::Val(rng.random_range(0..100_000i64)),
                };
                let mut data = json!({"version": version});
                if let F::Val(s) = &status {
                    data["status"] = json!(s);
                }
                match &customer {
                    F::Absent => {}
                    F::Null => data["customer"] = json!({"name": null}),
                    F::Val(c) => data["customer"] = json!({"name": c}),
                }
                // As text half the time: coerced to bigint.
                if let F::Val(a) = &amount {
                    data["amount_cents"] = if rng.random_bool(0.5) { json!(a) } else { json!(a.to_string()) };
                }
                let poison: f64 = rng.random();
                let reason = if poison < 0.01 {
                    data["amount_cents"] = json!("12 dollars");
                    Some("projection_type")
                } else if poison < 0.02 {
                    data["amount_cents"] = json!(-5);
                    Some("database_rejected")
                } else if poison < 0.025 {
                    data["status"] = Value::Null;
                    Some("database_rejected")
                } else {
                    None
                };
                let payload = cloudevent("com.example.order.updated", id, data);
                out.push(Msg { partition: p, key: key.into_bytes(), payload: Some(payload) });
                // The table refuses a value only on a row the message would write: a new one, or
                // one whose version it beats; an older one leaves the row as it is.
                let applies = model.get(&k).is_none_or(|row| row.version.is_none_or(|rv| version > rv));
                match reason {
                    Some("database_rejected") if !applies => continue,
                    Some(reason) => {
                        dead.insert((p, offset), reason);
                        continue;
                    }
                    None => {}
                }
                match model.get_mut(&k) {
                    None => {
                        let status = if let F::Val(s) = &status { s.clone() } else { "new".into() };
                        let customer = if let F::Val(c) = &customer { Some(c.clone()) } else { None };
                        let amount = if let F::Val(a) = &amount { Some(*a) } else { None };
                        model.insert(k, Row { status, customer, amount, version: Some(version), last_offset: offset });
                    }
                    Some(row) if row.version.is_none_or(|rv| version > rv) => {
                        if let F::Val(s) = &status {
                            row.status = s.clone();
                        }
                        match &customer {
                            F::Absent => {}
                            F::Null => row.customer = None,
                            F::Val(c) => row.customer = Some(c.clone()),
                        }
                        if let F::Val(a) = &amount {
                            row.amount = Some(*a);
                        }
                        row.version = Some(version);
                        row.last_offset = offset;
                    }
                    Some(_) => {}
                }
            }
        }
    }
    (out, Expected { table: model, dead, tombstones, produced })
}

/// The table equals the model, each poison message is exactly one dead letter of its reason
/// (the table's refusals with their SQLSTATEs), and the archive holds everything else.
pub fn assert_orders(url: &str, want: &Expected) {
    let got = table_rows(url, "orders");
    let wrong: Vec<_> = want.table.iter().filter(|(k, r)| got.get(k) != Some(r)).take(5).map(|(k, r)| (k, r, got.get(k))).collect();
    assert!(wrong.is_empty(), "rows differ from the model (key, model, table): {wrong:?}");
    let extra: Vec<_> = got.keys().filter(|k| !want.table.contains_key(k)).take(5).collect();
    assert!(extra.is_empty(), "rows the model deleted or never had: {extra:?}");
    assert_eq!(got.len(), want.table.len());

    // Each poison message is exactly one dead letter, of its reason; nothing else is.
    let dead = dead_letters(url);
    let got_dead: BTreeMap<(i32, i64), String> = dead.iter().map(|d| ((d.partition, d.offset), d.reason.clone())).collect();
    assert_eq!(got_dead.len(), dead.len(), "one dead letter per message");
    let want_dead: BTreeMap<(i32, i64), String> = want.dead.iter().map(|(k, v)| (*k, v.to_string())).collect();
    assert_eq!(got_dead, want_dead);
    let codes: BTreeSet<_> = dead.iter().filter_map(|d| d.sqlstate.clone()).collect();
    assert_eq!(codes, BTreeSet::from(["23502".to_string(), "23514".to_string()]), "NOT NULL and CHECK refusals, by SQLSTATE");
    // The archive keeps every message but dead letters: each tombstone too, without data.
    let archived = count(url, "SELECT count(*) AS n FROM events");
    assert_eq!(archived, want.produced - want.dead.len() as i64);
    assert_eq!(count(url, "SELECT count(*) AS n FROM events WHERE data IS NULL"), want.tombstones);
}

#[derive(QueryableByName)]
struct DeadRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    offset: i64,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Nullable<Text>)]
    sqlstate: Option<String>,
}

fn dead_letters(url: &str) -> Vec<DeadRow> {
    let q = "SELECT partition, \"offset\", reason, sqlstate FROM dead_letters";
    if let Some(path) = url.strip_prefix("sqlite://") {
        diesel::sql_query(q).load(&mut SqliteConnection::establish(path).unwrap()).unwrap()
    } else {
        diesel::sql_query(q).load(&mut PgConnection::establish(url).unwrap()).unwrap()
    }
}

fn an_order_stream_ends_as_the_model_applied_one_by_one(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("orders-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    sql(&db.url, &orders_table(kind, "orders"));
    let (msgs, want) = orders_stream(5_000, 4, 7);
    send_all(&kafka, &topic, &msgs);
    assert!(want.table.len() > 3_000 && want.dead.len() > 100, "the stream has rows and poison: {} {}", want.table.len(), want.dead.len());

    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.projections = specs(json!([orders_spec("orders")]));
    let running = app::spawn(s, log()).unwrap();
    wait_until("every offset committed", Duration::from_secs(180), || committed_total(&db.url, &group) == want.produced);

    assert_orders(&db.url, &want);
    let (_, metrics) = http("GET", running.port, "/metrics");
    let rows = |outcome: &str| metric(&metrics, "tributary_projection_rows_total", &[("projection", "orders"), ("outcome", outcome)]);
    assert!(
        rows("inserted") >= want.table.len() as f64 && rows("updated") > 0.0 && rows("deleted") > 0.0 && rows("unchanged") > 0.0,
        "{metrics}"
    );
    let refused = metric(&metrics, "tributary_projection_dead_letters_total", &[("projection", "orders")]);
    assert_eq!(refused, want.dead.len() as f64, "{metrics}");
    running.stop().unwrap();
}

fn one_stream_fans_out_by_type_to_two_tables_and_the_archive(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("shop-{}", unique()), format!("g-{}", unique()));
    // A second subscribed topic the payments projection's `shop-*` does not match.
    let ledger = format!("ledger-{}", unique());
    kafka.create_topic(&topic, 2).unwrap();
    kafka.create_topic(&ledger, 1).unwrap();
    sql(&db.url, &orders_table(kind, "orders"));
    let (audit, payments) = match kind {
        Kind::Postgres => (
            "CREATE TABLE audit (id bigserial PRIMARY KEY, topic text, kafka_offset bigint, type text, doc jsonb)",
            "CREATE TABLE payments (payment_id text PRIMARY KEY, order_id bigint, amount numeric(12,2), paid boolean)",
        ),
        Kind::Sqlite => (
            "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, kafka_offset INTEGER, type TEXT, doc TEXT)",
            "CREATE TABLE payments (payment_id TEXT PRIMARY KEY, order_id INTEGER, amount NUMERIC, paid BOOLEAN)",
        ),
    };
    sql(&db.url, audit);
    sql(&db.url, payments);
    let mut n = 0;
    for i in 0..300i64 {
        let key = json!({"order_id": i % 50}).to_string();
        let (ty, data) = match i % 3 {
            0 => ("com.example.order.updated", json!({"status": "paid", "version": i})),
            1 => ("com.example.payment.settled", json!({"payment": format!("p{i}"), "order": i % 50, "amount": "12.50", "paid": "true"})),
            _ => ("com.example.misc", json!({"note": i})),
        };
        kafka.send(&topic, Some((i % 2) as i32), Some(key.as_bytes()), Some(&cloudevent(ty, i as usize, data)), &[]).unwrap();
        n += 1;
    }
    for i in 0..30i64 {
        let data = json!({"payment": format!("ledger{i}"), "order": i, "amount": "1.00", "paid": "true"});
        kafka.send(&ledger, Some(0), None, Some(&cloudevent("com.example.payment.settled", 1000 + i as usize, data)), &[]).unwrap();
        n += 1;
    }
    kafka.flush().unwrap();
    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.kafka.topics = vec![topic.clone(), ledger.clone()];
    s.projections = specs(json!([
        orders_spec("orders"),
        {"name": "payments", "table": "payments", "topics": ["shop-*"], "types": ["com.example.payment.*"], "mode": "upsert",
         "key": ["payment_id"], "columns": {"payment_id": "/payment", "order_id": "/order", "amount": "/amount", "paid": "/paid"}},
        {"name": "audit", "table": "audit", "columns": {"topic": "kafka.topic", "kafka_offset": "kafka.offset", "type": "ce.type", "doc": {"from": "/", "type": "jsonb"}}},
    ]));
    let running = app::spawn(s, log()).unwrap();
    // Both topics' progress (`committed_total` keys partitions of one topic).
    let committed = format!("SELECT CAST(COALESCE(SUM(next_offset), 0) AS BIGINT) AS n FROM consumer_offsets WHERE group_id = '{group}'");
    wait_until("every offset committed", Duration::from_secs(60), || count(&db.url, &committed) == n);
    let dead = query_pairs(&db.url, "SELECT reason AS a, detail AS b FROM dead_letters");
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM orders"), 50);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM payments"), 100, "payments of shop-* only, none of the ledger topic");
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM payments WHERE amount = 12.5 AND paid"), 100, "coerced from text");
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM audit"), n, "the audit table takes every message");
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM audit WHERE type = 'com.example.misc'"), 100);
    assert_eq!(
        count(&db.url, &format!("SELECT count(*) AS n FROM audit WHERE topic = '{ledger}'")),
        30,
        "a projection without topics takes every one"
    );
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM events"), n, "and the archive too");
    // /status lists the projections as checked against their tables.
    let (_, status) = get_json(running.port, "/status");
    let listed = &status["config"]["projections"];
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{status}");
    let amount = listed[1]["columns"].as_array().unwrap().iter().find(|c| c["column"] == "amount").cloned().unwrap();
    assert_eq!(amount["type"], "numeric", "the table's own type: {listed}");
    // Each order's row has its last change's version (versions rise with i).
    let last: BTreeMap<i64, i64> = (0..300i64).filter(|i| i % 3 == 0).map(|i| (i % 50, i)).collect();
    let rows = query_pairs(&db.url, "SELECT CAST(order_id AS TEXT) AS a, CAST(version AS TEXT) AS b FROM orders");
    let got: BTreeMap<i64, i64> = rows.iter().map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())).collect();
    assert_eq!(got, last);
    running.stop().unwrap();
}

fn without_the_archive_unrouted_messages_are_skipped_or_dead_letters(kind: Kind) {
    for unrouted in [Unrouted::Skip, Unrouted::DeadLetter] {
        let Some(db) = test_db_of(kind) else { return };
        let kafka = tributary::mock::MockKafka::start(1).unwrap();
        let (topic, group) = (format!("only-{}", unique()), format!("g-{}", unique()));
        kafka.create_topic(&topic, 1).unwrap();
        sql(&db.url, &orders_table(kind, "orders"));
        for i in 0..100i64 {
            let key = json!({"order_id": i}).to_string();
            let ty = if i % 4 == 0 { "com.example.other" } else { "com.example.order.created" };
            kafka.send(&topic, Some(0), Some(key.as_bytes()), Some(&cloudevent(ty, i as usize, json!({"version": 1}))), &[]).unwrap();
        }
        kafka.flush().unwrap();
        let mut s: Settings = settings(&kafka, &topic, &group, &db.url);
        s.events = EventsSpec { enabled: false, unrouted };
        s.projections = specs(json!([orders_spec("orders")]));
        let running = app::spawn(s, log()).unwrap();
        wait_until("every offset committed", Duration::from_secs(60), || committed_total(&db.url, &group) == 100);
        assert_eq!(count(&db.url, "SELECT count(*) AS n FROM orders"), 75);
        assert_eq!(count(&db.url, "SELECT count(*) AS n FROM events"), 0, "no archive");
        let dead = count(&db.url, "SELECT count(*) AS n FROM dead_letters WHERE reason = 'unrouted'");
        let (_, metrics) = http("GET", running.port, "/metrics");
        let skipped = metric(&metrics, "tributary_unrouted_total", &[("topic", &topic)]);
        match unrouted {
            Unrouted::Skip => assert_eq!((dead, skipped), (0, 25.0), "{metrics}"),
            Unrouted::DeadLetter => assert_eq!((dead, skipped), (25, 0.0), "{metrics}"),
        }
        running.stop().unwrap();
    }
}

fn a_projection_that_cannot_work_fails_the_start_naming_key_and_fix(kind: Kind) {
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("bad-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 1).unwrap();
    sql(&db.url, &orders_table(kind, "orders"));
    sql(&db.url, "CREATE TABLE nokey (order_id bigint, status text)");
    let start = |spec: Value| {
        let mut s = settings(&kafka, &topic, &group, &db.url);
        s.projections = specs(json!([spec]));
        app::spawn(s, log()).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let with = |patch: Value| {
        let mut spec = orders_spec("orders");
        for (k, v) in patch.as_object().unwrap() {
            spec[k] = v.clone();
        }
        spec
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(json!({"table": "missing"})), "projection.orders.table", "does not exist"),
        (
            with(json!({"columns": {"order_id": {"from": "key:/order_id", "type": "bigint"}, "nope": "/x", "version": "/version"}})),
            "projection.orders.columns.nope",
            "has no column",
        ),
        (
            with(
                json!({"columns": {"order_id": {"from": "key:/order_id", "type": "bigint"}, "amount": {"from": "/a", "type": "timestamptz"}, "version": "/version"}}),
            ),
            "projection.orders.columns.amount.type",
            "declare type",
        ),
        (
            with(
                json!({"table": "nokey", "newer_wins": null, "columns": {"order_id": {"from": "key:/order_id", "type": "bigint"}, "status": "/status"}}),
            ),
            "projection.orders.key",
            "CREATE UNIQUE INDEX",
        ),
    ];
    for (spec, key, words) in cases {
        let e = start(spec);
        assert!(e.contains(key) && e.contains(words), "{key}: {e}");
    }
    // create_table = true makes the table from the declared types, the key its primary key.
    let created = json!({"name": "made", "table": "made", "mode": "upsert", "key": ["id"], "create_table": true,
        "columns": {"id": {"from": "key:/order_id", "type": "bigint"}, "v": {"from": "/version", "type": "integer"}}});
    let mut s = settings(&kafka, &topic, &group, &db.url);
    s.projections = specs(json!([created]));
    for i in 0..10i64 {
        let key = json!({"order_id": i % 5}).to_string();
        kafka.send(&topic, Some(0), Some(key.as_bytes()), Some(json!({"version": i}).to_string().as_bytes()), &[]).unwrap();
    }
    kafka.flush().unwrap();
    let running = app::spawn(s, log()).unwrap();
    wait_until("every offset committed", Duration::from_secs(60), || committed_total(&db.url, &group) == 10);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM made"), 5);
    assert_eq!(count(&db.url, "SELECT CAST(sum(v) AS BIGINT) AS n FROM made"), 5 + 6 + 7 + 8 + 9, "the last change of each key");
    running.stop().unwrap();
}

fn a_redriven_dead_letter_goes_through_the_projections(kind: Kind) {
    const TOKEN: &str = "test-admin-token-0123456789";
    let Some(db) = test_db_of(kind) else { return };
    let kafka = tributary::mock::MockKafka::start(1).unwrap();
    let (topic, group) = (format!("redo-{}", unique()), format!("g-{}", unique()));
    kafka.create_topic(&topic, 1).unwrap();
    sql(&db.url, &orders_table(kind, "orders"));
    for i in 0..20i64 {
        let key = json!({"order_id": i}).to_string();
        // Every other change names no customer, which the first configuration requires.
        let data = if i % 2 == 0 { json!({"version": 1, "customer": {"name": format!("c{i}")}}) } else { json!({"version": 1}) };
        kafka.send(&topic, Some(0), Some(key.as_bytes()), Some(&cloudevent("com.example.order.placed", i as usize, data)), &[]).unwrap();
    }
    kafka.flush().unwrap();
    let configured = |required: bool| {
        let mut spec = orders_spec("orders");
        spec["columns"]["customer"] = json!({"from": "/customer/name", "required": required});
        let mut s = settings(&kafka, &topic, &group, &db.url);
        s.projections = specs(json!([spec]));
        s.http.admin_token = Some(TOKEN.to_string().into());
        s
    };
    let strict = app::spawn(configured(true), log()).unwrap();
    wait_until("every offset committed", Duration::from_secs(60), || committed_total(&db.url, &group) == 20);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM dead_letters WHERE reason = 'projection_missing'"), 10);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM orders"), 10);
    strict.stop().unwrap();

    // The operator relaxes the column and redrives: the rows appear, in the table and the archive.
    let relaxed = app::spawn(configured(false), log()).unwrap();
    let auth = format!("Bearer {TOKEN}");
    let (status, body) =
        http_with("POST", relaxed.port, "/dead-letters/redrive", &[("Authorization", &auth)], b"{\"reason\": \"projection_missing\"}");
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((report["redriven"].as_i64(), report["still_failing"].as_i64()), (Some(10), Some(0)), "{report}");
    assert_eq!(report["projections"], json!({"orders": {"inserted": 10, "updated": 0, "deleted": 0, "unchanged": 0}}), "{report}");
    let (_, metrics) = http_with("GET", relaxed.port, "/metrics", &[], b"");
    assert!(
        metrics.lines().any(|l| l == "tributary_projection_rows_total{projection=\"orders\",outcome=\"inserted\"} 10"),
        "the redrive's rows are counted: {metrics}"
    );
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM orders"), 20);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM orders WHERE customer IS NULL"), 10);
    assert_eq!(count(&db.url, "SELECT count(*) AS n FROM events"), 20);
    relaxed.stop().unwrap();
}
