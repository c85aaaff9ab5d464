//! A schema registry of the tests' own making (Confluent's cannot be installed here): a small
//! HTTP/1.1 server on `127.0.0.1:0` keeping schemas in memory and serving the REST subset that
//! Confluent's clients use — `POST /subjects/{s}/versions` (register), `POST /subjects/{s}`
//! (look up), `GET /schemas/ids/{id}`, `GET /subjects`, `GET /subjects/{s}/versions`,
//! `GET /subjects/{s}/versions/{v|latest}`, `GET /schemas/ids/{id}/versions`, `GET /schemas/types`,
//! `GET /config` — Protobuf schemas stored as .proto text, as Confluent's registry does — with optional
//! HTTP basic auth, and the controls the tests need: an outage of either kind ([`Down`]), an id
//! forgotten and restored, and a count of requests per path. Also: [`produce_framed`], the wire
//! bytes Confluent's own Python serializers make against it (tests/registry/produce.py).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// How the registry is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// Every request answers `503 Service Unavailable`.
    Http503,
    /// The listener is closed: connections are refused.
    Refused,
}

const UP: u8 = 0;
const DOWN_503: u8 = 1;
const DOWN_REFUSED: u8 = 2;

#[derive(Clone, PartialEq, Eq)]
struct Stored {
    schema: String,
    schema_type: String,
    references: Value,
}

#[derive(Default)]
struct State {
    /// By id − 1.
    schemas: Vec<Stored>,
    /// A subject's versions, in order: the ids.
    subjects: BTreeMap<String, Vec<u32>>,
    forgotten: BTreeSet<u32>,
    requests: BTreeMap<String, u64>,
}

/// The registry; stopped when dropped.
pub struct SchemaRegistry {
    pub url: String,
    state: Arc<Mutex<State>>,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    /// The listener is closed (refusing).
    closed: Arc<AtomicBool>,
    /// Connections accepted and not yet answered.
    in_flight: Arc<AtomicUsize>,
}

impl SchemaRegistry {
    pub fn start() -> SchemaRegistry {
        Self::start_with(None)
    }

    /// With HTTP basic auth: requests without these credentials answer 401.
    pub fn start_with_auth(username: &str, password: &str) -> SchemaRegistry {
        Self::start_with(Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))))
    }

    fn start_with(authorization: Option<String>) -> SchemaRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<State>> = Arc::default();
        let (mode, stop) = (Arc::new(AtomicU8::new(UP)), Arc::new(AtomicBool::new(false)));
        let (closed, in_flight) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (state2, mode2, stop2, closed2, in_flight2) = (state.clone(), mode.clone(), stop.clone(), closed.clone(), in_flight.clone());
        let authorization = Arc::new(authorization);
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            while !stop2.load(Ordering::SeqCst) {
                let refused = mode2.load(Ordering::SeqCst) == DOWN_REFUSED;
                if refused {
                    listener = None;
                } else if listener.is_none() {
                    // Back on the same port (std sets SO_REUSEADDR); retried until it binds.
                    listener = TcpListener::bind(("127.0.0.1", port)).ok();
                }
                closed2.store(listener.is_none(), Ordering::SeqCst);
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((conn, _)) => {
                        let (state, mode, authorization) = (state2.clone(), mode2.clone(), authorization.clone());
                        in_flight2.fetch_add(1, Ordering::SeqCst);
                        let in_flight = in_flight2.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, &state, &mode, authorization.as_deref());
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SchemaRegistry { url: format!("http://127.0.0.1:{port}"), state, mode, stop, closed, in_flight }
    }

    /// Unavailable, as `how` says, until [`up`](Self::up). Refused: returns once the listener
    /// is closed and every connection accepted before is answered (no request counts after).
    pub fn down(&self, how: Down) {
        self.mode.store(if how == Down::Http503 { DOWN_503 } else { DOWN_REFUSED }, Ordering::SeqCst);
        if how == Down::Refused {
            super::wait_until("the test registry's listener closed", Duration::from_secs(10), || {
                self.closed.load(Ordering::SeqCst) && self.in_flight.load(Ordering::SeqCst) == 0
            });
        }
    }

    pub fn up(&self) {
        self.mode.store(UP, Ordering::SeqCst);
    }

    /// Answer 404 for this id (and for subject versions that are it) until restored.
    pub fn forget(&self, id: u32) {
        self.state.lock().unwrap().forgotten.insert(id);
    }

    pub fn restore(&self, id: u32) {
        self.state.lock().unwrap().forgotten.remove(&id);
    }

    /// Requests answered so far for `"GET /schemas/ids/3"` (method, a space, the path without
    /// its query), 503s and 401s included.
    pub fn requests(&self, method_path: &str) -> u64 {
        self.state.lock().unwrap().requests.get(method_path).copied().unwrap_or(0)
    }

    /// Every request counted, by method and path.
    pub fn all_requests(&self) -> BTreeMap<String, u64> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn register(state: &mut State, subject: &str, stored: Stored) -> u32 {
    // The same schema has one id, whatever subject it is registered under.
    let id = match state.schemas.iter().position(|s| *s == stored) {
        Some(i) => i as u32 + 1,
        None => {
            state.schemas.push(stored);
            state.schemas.len() as u32
        }
    };
    let versions = state.subjects.entry(subject.to_string()).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    id
}

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Option<Request>> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("/").to_string());
    let (mut length, mut authorization) = (0usize, None);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let path = target.split('?').next().unwrap_or("/").to_string();
    Ok(Some(Request { method, path, authorization, body }))
}

/// One request per connection, answered and closed.
fn serve(mut conn: TcpStream, state: &Mutex<State>, mode: &AtomicU8, authorization: Option<&str>) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some(mut req) = read_request(&conn)? else { return Ok(()) };
    if req.method == "POST" {
        req.body = canonical_protobuf(&req.body);
    }
    *state.lock().unwrap().requests.entry(format!("{} {}", req.method, req.path)).or_insert(0) += 1;
    let (status, body) = if mode.load(Ordering::SeqCst) != UP {
        (503, json!({"error_code": 50301, "message": "the test registry is down"}))
    } else if authorization.is_some() && req.authorization.as_deref() != authorization {
        (401, json!({"error_code": 401, "message": "Unauthorized"}))
    } else {
        route(&mut state.lock().unwrap(), &req)
    };
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        _ => "Service Unavailable",
    };
    write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    conn.flush()
}

fn not_found(code: u32, what: &str) -> (u16, Value) {
    (404, json!({"error_code": code, "message": what}))
}

/// A schema as the registry answers it: `schemaType` left out for Avro, as Confluent's does.
fn schema_json(s: &Stored, mut out: Value) -> Value {
    out["schema"] = json!(s.schema);
    if s.schema_type != "AVRO" {
        out["schemaType"] = json!(s.schema_type);
    }
    if s.references.as_array().is_some_and(|r| !r.is_empty()) {
        out["references"] = s.references.clone();
    }
    out
}

/// A registration or look-up body whose Protobuf schema is stored as Confluent's registry stores
/// it: base64 of a FileDescriptorProto (what Confluent's Python serializer sends) as .proto text
/// (tests/registry/proto_text.py). Other bodies as sent.
fn canonical_protobuf(body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else { return body.to_vec() };
    let Some(schema) = v["schema"].as_str().filter(|_| v["schemaType"] == "PROTOBUF") else { return body.to_vec() };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/registry/proto_text.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs tests/registry/proto_text.py");
    child.stdin.take().unwrap().write_all(schema.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "proto_text.py failed");
    v["schema"] = json!(String::from_utf8(out.stdout).unwrap());
    v.to_string().into_bytes()
}

/// A path segment percent-decoded.
fn decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let hex = (b[i] == b'%').then(|| segment.get(i + 1..i + 3)).flatten().and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(state: &mut State, req: &Request) -> (u16, Value) {
    let segments: Vec<String> = req.path.trim_matches('/').split('/').map(decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let posted = || serde_json::from_slice::<Value>(&req.body).ok();
    let stored_of = |v: &Value| Stored {
        schema: v["schema"].as_str().unwrap_or_default().to_string(),
        schema_type: v["schemaType"].as_str().unwrap_or("AVRO").to_string(),
        references: v.get("references").cloned().unwrap_or_else(|| json!([])),
    };
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["schemas", "types"]) => (200, json!(["JSON", "PROTOBUF", "AVRO"])),
        ("GET", ["config"]) => (200, json!({"compatibilityLevel": "BACKWARD"})),
        ("GET", ["subjects"]) => (200, json!(state.subjects.keys().collect::<Vec<_>>())),
        ("GET", ["schemas", "ids", id]) => {
            let id: u32 = id.parse().unwrap_or(0);
            match state.schemas.get((id as usize).wrapping_sub(1)) {
                Some(s) if !state.forgotten.contains(&id) => (200, schema_json(s, json!({}))),
                _ => not_found(40403, "Schema not found"),
            }
        }
        ("GET", ["schemas", "ids", id, "versions"]) => {
            let id: u32 = id.parse().unwrap_or(0);
            if id == 0 || id as usize > state.schemas.len() || state.forgotten.contains(&id) {
                return not_found(40403, "Schema not found");
            }
            let under: Vec<Value> = state
                .subjects
                .iter()
                .flat_map(|(s, ids)| {
                    ids.iter().enumerate().filter(|(_, i)| **i == id).map(move |(v, _)| json!({"subject": s, "version": v + 1}))
                })
                .collect();
            (200, json!(under))
        }
        ("GET", ["subjects", subject, "versions"]) => match state.subjects.get(*subject) {
            Some(v) => (200, json!((1..=v.len()).collect::<Vec<_>>())),
            None => not_found(40401, "Subject not found"),
        },
        ("GET", ["subjects", subject, "versions", version]) => {
            let Some(versions) = state.subjects.get(*subject) else { return not_found(40401, "Subject not found") };
            let n = if *version == "latest" { versions.len() } else { version.parse().unwrap_or(0) };
            match n.checked_sub(1).and_then(|i| versions.get(i)) {
                Some(id) if !state.forgotten.contains(id) => {
                    let s = &state.schemas[*id as usize - 1];
                    (200, schema_json(s, json!({"subject": subject, "version": n, "id": id})))
                }
                _ => not_found(40402, "Version not found"),
            }
        }
        ("POST", ["subjects", subject, "versions"]) => match posted() {
            Some(v) if v["schema"].is_string() => (200, json!({"id": register(state, subject, stored_of(&v))})),
            _ => (422, json!({"error_code": 42201, "message": "Invalid schema"})),
        },
        ("POST", ["subjects", subject]) => {
            let Some(v) = posted() else { return (422, json!({"error_code": 42201, "message": "Invalid schema"})) };
            let wanted = stored_of(&v);
            let versions = state.subjects.get(*subject).cloned().unwrap_or_default();
            match versions.iter().position(|id| state.schemas[*id as usize - 1] == wanted) {
                Some(i) => (200, schema_json(&wanted, json!({"subject": subject, "version": i + 1, "id": versions[i]}))),
                None => not_found(40403, "Schema not found"),
            }
        }
        _ => not_found(404, "no such endpoint in the test registry"),
    }
}

/// A message for [`produce_framed`]: Confluent's serializer for `format` ("avro" or "json")
/// with `schema` under `{topic}-value`, and the value as JSON with typed values tagged
/// (`{"$decimal": "-1.5"}`, `{"$datetime": "…+00:00"}`, `{"$date": …}`, `{"$time": …}`,
/// `{"$bytes": "<hex>"}`, `{"$uuid": …}`, `{"$float": "nan"}`, `{"$naive": "…"}`: see produce.py).
pub fn framed(format: &str, schema: &str, value: Value) -> Value {
    json!({"format": format, "schema": schema, "value": value})
}

/// The framed bytes Confluent's Python serializers (confluent-kafka 2.12.1) make for `messages`
/// against the registry at `url` — which they register their schemas in as they go.
pub fn produce_framed(url: &str, topic: &str, messages: &[Value]) -> Vec<Vec<u8>> {
    produce_framed_as(url, None, topic, messages)
}

/// [`produce_framed`] with HTTP basic auth (username, password).
pub fn produce_framed_as(url: &str, auth: Option<(&str, &str)>, topic: &str, messages: &[Value]) -> Vec<Vec<u8>> {
    let mut extra = json!({});
    if let Some((username, password)) = auth {
        extra["username"] = json!(username);
        extra["password"] = json!(password);
    }
    produce_framed_with(url, topic, extra, messages)
}

/// The .proto files of the Protobuf tests (`"proto_dir"` of [`produce_framed_with`]).
pub const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/registry/proto");

/// [`produce_framed`] with more of produce.py's spec: `extra`'s members (`"register"`,
/// `"proto_dir"`, `"username"`, ...) are added to it.
pub fn produce_framed_with(url: &str, topic: &str, extra: Value, messages: &[Value]) -> Vec<Vec<u8>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/registry/produce.py");
    let mut spec = json!({"url": url, "topic": topic, "messages": messages});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs tests/registry/produce.py (scripts/install-deps.sh installs confluent-kafka)");
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "produce.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Vec<u8>> = String::from_utf8(out.stdout).unwrap().lines().map(|l| hex_bytes(l.trim())).collect();
    assert_eq!(lines.len(), messages.len(), "one framed value per message");
    lines
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// The schema id of framed bytes.
pub fn schema_id(framed: &[u8]) -> u32 {
    assert_eq!(framed[0], 0, "magic byte");
    u32::from_be_bytes(framed[1..5].try_into().unwrap())
}
