//! A generated Debezium stream over three source tables, and the replica it must give: the
//! model applies each change event's meaning on its own (c/r/u write the after image, TOASTed
//! columns kept; d removes the key's row; t empties the table where `truncate = true`).

use std::collections::BTreeMap;

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::common::Kind;

pub const PLACEHOLDER: &str = "__debezium_unavailable_value";

/// One record to produce.
pub struct Msg {
    pub topic: &'static str,
    pub partition: i32,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// A replica table's rows by key, each column as the text the test reads back.
pub type Table = BTreeMap<String, BTreeMap<&'static str, Option<String>>>;

pub struct Stream {
    pub msgs: Vec<Msg>,
    pub customers: Table,
    pub orders: Table,
    pub items: Table,
    /// Messages that are dead letters (`not_a_change_event`), by topic.
    pub dead: usize,
    pub tombstones: usize,
    pub truncates_skipped: usize,
    pub truncates_applied: usize,
    /// Fields of the customers' images the replica lacks (`tier`, once added at the source).
    pub ignored_fields: usize,
}

pub const CUSTOMERS: &str = "db.public.customers";
pub const ORDERS: &str = "db.public.orders";
pub const ITEMS: &str = "db.public.items";

/// The three topics in `kafka` and the three replica tables in the database at `url`.
pub fn create(kafka: &tributary::mock::MockKafka, kind: Kind, url: &str) {
    kafka.create_topic(CUSTOMERS, 2).unwrap();
    kafka.create_topic(ORDERS, 1).unwrap();
    kafka.create_topic(ITEMS, 1).unwrap();
    for t in tables(kind) {
        crate::common::sql(url, t);
    }
}

fn tables(kind: Kind) -> [&'static str; 3] {
    match kind {
        Kind::Postgres => [
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, balance numeric(12,2), born date, \
             seen timestamp(6), notes text, doc jsonb)",
            "CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id integer, amount numeric(10,2), placed_at timestamptz)",
            "CREATE TABLE items (order_id bigint, line integer, sku text, qty integer, PRIMARY KEY (order_id, line))",
        ],
        Kind::Sqlite => [
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance DECIMAL_TEXT, born DATE, \
             seen TIMESTAMP, notes TEXT, doc JSONB)",
            "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, amount DECIMAL_TEXT, placed_at DATETIME)",
            "CREATE TABLE items (order_id INTEGER, line INTEGER, sku TEXT, qty INTEGER, PRIMARY KEY (order_id, line))",
        ],
    }
}

/// The three projections: customers with every field mapped (a Connect schema always), orders
/// without schemas (so `unit` and `scale` say what its numbers mean) and truncates skipped,
/// items with and without the wrapper by message and truncates applied.
pub fn projections() -> Value {
    json!([
        {"name": "customers", "table": "customers", "topics": [CUSTOMERS], "envelope": "debezium"},
        {"name": "orders", "table": "orders", "topics": [ORDERS], "envelope": "debezium", "map_all_fields": true,
         "columns": {"amount": {"from": "/amount", "type": "numeric", "scale": 2},
                     "placed_at": {"from": "/placed_at", "type": "timestamptz", "unit": "micros"}}},
        {"name": "items", "table": "items", "topics": [ITEMS], "envelope": "debezium", "truncate": true},
    ])
}

pub(crate) fn field(name: &str, ty: &str, logical: Option<&str>, params: Option<Value>) -> Value {
    let mut f = json!({"type": ty, "optional": true, "field": name});
    if let Some(l) = logical {
        f["name"] = json!(l);
    }
    if let Some(p) = params {
        f["parameters"] = p;
    }
    f
}

/// The envelope schema the JSON converter writes for a table with `fields`.
pub(crate) fn envelope_schema(table: &str, fields: &[Value]) -> Value {
    let row = |which: &str| json!({"type": "struct", "fields": fields, "optional": true, "name": format!("db.public.{table}.Value"), "field": which});
    json!({"type": "struct", "name": format!("db.public.{table}.Envelope"), "optional": false, "fields": [
        row("before"), row("after"),
        {"type": "struct", "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source", "fields": [
            {"type": "string", "field": "connector"}, {"type": "string", "field": "table"}, {"type": "int64", "field": "lsn"},
            {"type": "string", "optional": true, "field": "sequence"}]},
        {"type": "string", "optional": false, "field": "op"},
        {"type": "int64", "optional": true, "field": "ts_ms"}]})
}

fn customer_fields(with_tier: bool) -> Vec<Value> {
    let mut f = vec![
        field("id", "int32", None, None),
        field("name", "string", None, None),
        field(
            "balance",
            "bytes",
            Some("org.apache.kafka.connect.data.Decimal"),
            Some(json!({"scale": "2", "connect.decimal.precision": "12"})),
        ),
        field("born", "int32", Some("io.debezium.time.Date"), None),
        field("seen", "int64", Some("io.debezium.time.MicroTimestamp"), None),
        field("notes", "string", None, None),
        field("doc", "string", Some("io.debezium.data.Json"), None),
    ];
    if with_tier {
        f.push(field("tier", "string", None, None));
    }
    f
}

fn item_fields() -> Vec<Value> {
    vec![
        field("order_id", "int64", None, None),
        field("line", "int32", None, None),
        field("sku", "string", None, None),
        field("qty", "int32", None, None),
    ]
}

/// Two's complement, big-endian, minimal: Connect's `Decimal` bytes of an unscaled value.
pub(crate) fn decimal_b64(unscaled: i64) -> String {
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 7 && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0) || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0)) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}

/// `cents` as the text numeric(n,2) gives back.
fn money(cents: i64) -> String {
    format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

pub(crate) fn date(days: i64) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days)).format("%Y-%m-%d").to_string()
}

pub(crate) fn micros(us: i64, zone: &str) -> String {
    let t = chrono::DateTime::from_timestamp_micros(us).unwrap().naive_utc();
    format!("{}{zone}", t.format("%Y-%m-%dT%H:%M:%S%.6f"))
}

struct Gen {
    rng: StdRng,
    out: Vec<Msg>,
    lsn: i64,
}

impl Gen {
    fn source(&mut self, table: &str) -> Value {
        self.lsn += 8;
        json!({"connector": "postgresql", "table": table, "lsn": self.lsn, "sequence": format!("[\"{}\",\"{}\"]", self.lsn - 4, self.lsn)})
    }

    /// A change event of `table`, wrapped with `schema` (fields) or as the payload alone.
    fn event(&mut self, topic: &'static str, partition: i32, key: Value, payload: Value, schema: Option<(&str, Vec<Value>)>) {
        let key_text = match &schema {
            Some((table, fields)) => {
                let names: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
                let key_fields: Vec<Value> = fields.iter().filter(|f| names.contains(&f["field"].as_str().unwrap())).cloned().collect();
                json!({"schema": {"type": "struct", "name": format!("db.public.{table}.Key"), "fields": key_fields}, "payload": key})
            }
            None => key.clone(),
        };
        let value = match schema {
            Some((table, fields)) => json!({"schema": envelope_schema(table, &fields), "payload": payload}),
            None => payload,
        };
        self.out.push(Msg { topic, partition, key: Some(key_text.to_string()), value: Some(value.to_string()) });
    }

    fn tombstone(&mut self, topic: &'static str, partition: i32, key: Value) {
        self.out.push(Msg { topic, partition, key: Some(key.to_string()), value: None });
    }
}

/// A customer as the source holds it: (name, balance cents, born days, seen µs, notes, doc, tier).
type Customer = (String, i64, i64, i64, String, Value, Option<String>);

fn customer_image(id: i64, c: &Customer, toasted: bool) -> Value {
    let mut v = json!({"id": id, "name": c.0, "balance": decimal_b64(c.1), "born": c.2, "seen": c.3,
                       "notes": if toasted { PLACEHOLDER.to_string() } else { c.4.clone() }, "doc": c.5.to_string()});
    if let Some(t) = &c.6 {
        v["tier"] = json!(t);
    }
    v
}

fn customer_row(c: &Customer) -> BTreeMap<&'static str, Option<String>> {
    BTreeMap::from([
        ("name", Some(c.0.clone())),
        ("balance", Some(money(c.1))),
        ("born", Some(date(c.2))),
        ("seen", Some(micros(c.3, ""))),
        ("notes", Some(c.4.clone())),
        ("doc", Some(c.5.to_string())),
    ])
}

/// The stream: a snapshot of each table, then creates, updates (some with TOASTed notes),
/// deletes with their tombstones, primary-key changes of items, a truncate of each of orders
/// (skipped) and items (applied), a column added to customers, and a few messages that are not
/// change events: a heartbeat (skipped) and a plain object (dead letter).
pub fn generate(seed: u64, rounds: usize) -> Stream {
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), out: Vec::new(), lsn: 1000 };
    let mut customers: BTreeMap<i64, Customer> = BTreeMap::new();
    let mut orders: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    let mut items: BTreeMap<(i64, i64), (String, i64)> = BTreeMap::new();
    let (mut replica_orders, mut replica_items) = (Table::new(), Table::new());
    let (mut dead, mut tombstones, mut skipped, mut applied, mut ignored) = (0, 0, 0, 0, 0);
    let mut tier = false;
    let (mut next_customer, mut next_order) = (0i64, 0i64);

    let customer_event = |g: &mut Gen,
                          op: &str,
                          id: i64,
                          before: Option<&Customer>,
                          after: Option<&Customer>,
                          toasted: bool,
                          tier: bool| {
        let source = g.source("customers");
        let payload = json!({"op": op, "before": before.map(|c| customer_image(id, c, false)), "after": after.map(|c| customer_image(id, c, toasted)),
                             "source": source, "ts_ms": 1_700_000_000_000i64 + g.lsn});
        g.event(CUSTOMERS, (id % 2) as i32, json!({"id": id}), payload, Some(("customers", customer_fields(tier))));
    };
    let order_image =
        |id: i64, o: &(i64, i64, i64)| json!({"order_id": id, "customer_id": o.0, "amount": decimal_b64(o.1), "placed_at": o.2});
    let order_row = |o: &(i64, i64, i64)| {
        BTreeMap::from([("customer_id", Some(o.0.to_string())), ("amount", Some(money(o.1))), ("placed_at", Some(micros(o.2, "Z")))])
    };
    let item_row = |i: &(String, i64)| BTreeMap::from([("sku", Some(i.0.clone())), ("qty", Some(i.1.to_string()))]);
    let item_key = |k: &(i64, i64)| format!("{}/{}", k.0, k.1);

    for round in 0..rounds {
        // Customers: new ones (a snapshot read in round 0), changes, removals.
        for _ in 0..10 {
            let id = next_customer;
            next_customer += 1;
            let r = &mut g.rng;
            let c: Customer = (
                format!("c{id}"),
                r.random_range(-1_000_000..100_000_000),
                r.random_range(-30_000..30_000),
                r.random_range(-60_000_000_000_000_000..60_000_000_000_000_000),
                format!("notes of {id} {}", "x".repeat(r.random_range(0..50))),
                json!({"tags": [id, "t"], "score": 2.5}),
                tier.then(|| "gold".to_string()),
            );
            customer_event(&mut g, if round == 0 { "r" } else { "c" }, id, None, Some(&c), false, tier);
            customers.insert(id, c);
        }
        let ids: Vec<i64> = customers.keys().copied().collect();
        for _ in 0..12 {
            let id = ids[g.rng.random_range(0..ids.len())];
            let Some(old) = customers.get(&id).cloned() else { continue };
            if g.rng.random_bool(0.15) {
                customer_event(&mut g, "d", id, Some(&old), None, false, tier);
                g.tombstone(CUSTOMERS, (id % 2) as i32, json!({"id": id}));
                tombstones += 1;
                customers.remove(&id);
                continue;
            }
            let mut new = old.clone();
            new.1 += g.rng.random_range(-500..500);
            new.3 += 1_000_001;
            // Notes unchanged half the time, and then TOASTed in the event (the replica keeps them).
            let toasted = g.rng.random_bool(0.5);
            if !toasted {
                new.4 = format!("{} edited", new.4);
            }
            new.6 = tier.then(|| "silver".to_string());
            customer_event(&mut g, "u", id, Some(&old), Some(&new), toasted, tier);
            customers.insert(id, new);
        }
        if round == rounds / 2 {
            // The source gains a column the replica lacks: ignored from here on, and counted.
            tier = true;
        }

        // Orders, without schemas.
        for _ in 0..8 {
            let id = next_order;
            next_order += 1;
            let o = (
                g.rng.random_range(0..next_customer.max(1)),
                g.rng.random_range(0..10_000_000),
                1_700_000_000_000_000 + g.rng.random_range(0..1_000_000_000_000),
            );
            let source = g.source("orders");
            let payload = json!({"op": if round == 0 { "r" } else { "c" }, "before": null, "after": order_image(id, &o), "source": source, "ts_ms": 1});
            g.event(ORDERS, 0, json!({"order_id": id}), payload, None);
            replica_orders.insert(id.to_string(), order_row(&o));
            orders.insert(id, o);
            // Its items: one to three lines, with the wrapper every other message.
            for line in 0..g.rng.random_range(1..4) {
                let it = (format!("sku-{}", g.rng.random_range(0..100)), g.rng.random_range(1..10));
                let source = g.source("items");
                let payload = json!({"op": "c", "after": {"order_id": id, "line": line, "sku": it.0, "qty": it.1}, "source": source});
                let schema = g.rng.random_bool(0.5).then(|| ("items", item_fields()));
                g.event(ITEMS, 0, json!({"order_id": id, "line": line}), payload, schema);
                replica_items.insert(item_key(&(id, line)), item_row(&it));
                items.insert((id, line), it);
            }
        }
        // An order changes, one is deleted; an item's line number changes (delete, tombstone, create).
        let oids: Vec<i64> = orders.keys().copied().collect();
        if let Some(&id) = oids.get(g.rng.random_range(0..oids.len().max(1))) {
            let old = orders[&id];
            let new = (old.0, old.1 + 1, old.2 + 1);
            let source = g.source("orders");
            let payload = json!({"op": "u", "before": order_image(id, &old), "after": order_image(id, &new), "source": source, "ts_ms": 2});
            g.event(ORDERS, 0, json!({"order_id": id}), payload, None);
            replica_orders.insert(id.to_string(), order_row(&new));
            orders.insert(id, new);
        }
        if let Some(&id) = oids.get(g.rng.random_range(0..oids.len().max(1))) {
            if let Some(old) = orders.remove(&id) {
                let source = g.source("orders");
                let payload = json!({"op": "d", "before": order_image(id, &old), "after": null, "source": source, "ts_ms": 3});
                g.event(ORDERS, 0, json!({"order_id": id}), payload, None);
                g.tombstone(ORDERS, 0, json!({"order_id": id}));
                tombstones += 1;
                replica_orders.remove(&id.to_string());
            }
        }
        let first = items.iter().next().map(|(k, v)| (*k, v.clone()));
        if let Some(((oid, line), it)) = first {
            let new_line = line + 100;
            let source = g.source("items");
            let before = json!({"order_id": oid, "line": line, "sku": it.0, "qty": it.1});
            g.event(ITEMS, 0, json!({"order_id": oid, "line": line}), json!({"op": "d", "before": before, "source": source}), None);
            g.tombstone(ITEMS, 0, json!({"order_id": oid, "line": line}));
            tombstones += 1;
            let source = g.source("items");
            let payload = json!({"op": "c", "after": {"order_id": oid, "line": new_line, "sku": it.0, "qty": it.1}, "source": source});
            g.event(ITEMS, 0, json!({"order_id": oid, "line": new_line}), payload, Some(("items", item_fields())));
            items.remove(&(oid, line));
            items.insert((oid, new_line), it.clone());
            replica_items.remove(&item_key(&(oid, line)));
            replica_items.insert(item_key(&(oid, new_line)), item_row(&it));
        }
        if round == rounds / 3 {
            // The source truncates both: orders keeps its rows (truncate = false), items empties.
            let source = g.source("orders");
            g.out.push(Msg {
                topic: ORDERS,
                partition: 0,
                key: None,
                value: Some(json!({"op": "t", "source": source, "ts_ms": 4}).to_string()),
            });
            skipped += 1;
            orders.clear();
            let source = g.source("items");
            let value = json!({"schema": envelope_schema("items", &item_fields()), "payload": {"op": "t", "before": null, "after": null, "source": source, "ts_ms": 4}});
            g.out.push(Msg { topic: ITEMS, partition: 0, key: None, value: Some(value.to_string()) });
            applied += 1;
            items.clear();
            replica_items.clear();
        }
        if round % 4 == 1 {
            // A heartbeat caught by the topic list, and a message that is no change event at all.
            g.out.push(Msg {
                topic: ITEMS,
                partition: 0,
                key: Some(r#"{"serverName":"db"}"#.into()),
                value: Some(r#"{"ts_ms":1}"#.into()),
            });
            g.out.push(Msg { topic: ORDERS, partition: 0, key: None, value: Some(r#"{"order_id": 1, "status": "paid"}"#.into()) });
            dead += 1;
        }
    }
    // Every customers change event after the column came carries `tier` in its images.
    for m in g.out.iter().filter(|m| m.topic == CUSTOMERS) {
        if let Some(v) = &m.value {
            let p: Value = serde_json::from_str(v).unwrap();
            if p["payload"]["after"].get("tier").is_some() {
                ignored += 1;
            }
        }
    }
    let customers = customers.iter().map(|(id, c)| (id.to_string(), customer_row(c))).collect();
    Stream {
        msgs: g.out,
        customers,
        orders: replica_orders,
        items: replica_items,
        dead,
        tombstones,
        truncates_skipped: skipped,
        truncates_applied: applied,
        ignored_fields: ignored,
    }
}
