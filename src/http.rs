//! The HTTP API (actix-web): every answer comes from asking the `HealthReporter` actor.
//!
//! JSON everywhere except `/metrics` (Prometheus text). Unknown paths answer 404 and wrong
//! methods 405, both with a JSON error body. Admin endpoints (`POST /pause`, `/resume`,
//! `/actors/{name}/restart`, `/dead-letters/redrive`) need `Authorization: Bearer
//! <http.admin_token>`, compared in constant time; with no token configured they answer 403.
//! Request bodies are capped.

use actix::Addr;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::answer::{error, only};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;
use tributary_actors::DbWriter;
use tributary_actors::Parser;
use tributary_actors::StoreError;
use tributary_actors::{ActorName, Restart};
use tributary_actors::{DeadLetterKey, RedriveFilter, Selection, DEFAULT_LIMIT, MAX_LIMIT};
use tributary_actors::{GetActors, GetHealth, GetMetrics, GetReadiness, GetStatus, HealthReporter, Report};
use tributary_actors::{GetDeadLetter, ListDeadLetters, Redrive, Redriver};
use tributary_actors::{KafkaReader, SetPaused};
use tributary_actors::{DEFAULT_PAGE, MAX_PAGE};

/// Largest request body accepted (admin calls carry little or nothing).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub health: Addr<HealthReporter>,
    pub reader: Addr<KafkaReader>,
    pub parser: Addr<Parser>,
    pub writer: Addr<DbWriter>,
    pub redriver: Addr<Redriver>,
    pub admin_token: Option<SecretString>,
}

/// The actor system did not answer: that is itself the answer to "is it healthy".
fn unavailable(e: actix::MailboxError) -> HttpResponse {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("health_reporter did not answer: {e}"))
}

fn report(r: Report) -> HttpResponse {
    let status = if r.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).json(r.body)
}

async fn health(state: web::Data<ApiState>) -> HttpResponse {
    state.health.send(GetHealth).await.map_or_else(unavailable, report)
}

async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    state.health.send(GetReadiness).await.map_or_else(unavailable, report)
}

async fn status(state: web::Data<ApiState>) -> HttpResponse {
    state.health.send(GetStatus).await.map_or_else(unavailable, |v| HttpResponse::Ok().json(v))
}

async fn actors(state: web::Data<ApiState>) -> HttpResponse {
    state.health.send(GetActors).await.map_or_else(unavailable, |v| HttpResponse::Ok().json(v))
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    state.health.send(GetMetrics).await.map_or_else(unavailable, |text| {
        HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(text)
    })
}

/// The OpenAPI 3 document of every endpoint (kept true by tests/api/openapi.rs: every route is
/// in it, and a schemathesis run checks the answers against it).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 7235), the token is not.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start_matches(' '))
}

/// Check the bearer token, then read the (bounded) body.
async fn admit(state: &ApiState, req: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, HttpResponse> {
    let Some(token) = &state.admin_token else {
        return Err(error(StatusCode::FORBIDDEN, "admin endpoints are disabled: configure http.admin_token"));
    };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.expose_secret().as_bytes())));
    if !ok {
        let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return Err(resp);
    }
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {MAX_BODY_BYTES} bytes"));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn set_paused(state: &ApiState, req: HttpRequest, payload: web::Payload, paused: bool) -> HttpResponse {
    if let Err(resp) = admit(state, &req, payload).await {
        return resp;
    }
    match state.reader.send(SetPaused(paused)).await {
        Ok(()) => HttpResponse::Ok().json(json!({ "paused": paused })),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("kafka_reader did not answer: {e}")),
    }
}

async fn pause(state: web::Data<ApiState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    set_paused(&state, req, payload, true).await
}

async fn resume(state: web::Data<ApiState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    set_paused(&state, req, payload, false).await
}

async fn restart(state: web::Data<ApiState>, req: HttpRequest, payload: web::Payload, name: web::Path<String>) -> HttpResponse {
    if let Err(resp) = admit(&state, &req, payload).await {
        return resp;
    }
    let actor = match name.parse::<ActorName>() {
        Ok(actor) => actor,
        Err(unknown) => return error(StatusCode::NOT_FOUND, unknown.to_string()),
    };
    let sent = match actor {
        ActorName::KafkaReader => state.reader.send(Restart).await,
        ActorName::Parser => state.parser.send(Restart).await,
        ActorName::DbWriter => state.writer.send(Restart).await,
        ActorName::HealthReporter => state.health.send(Restart).await,
        ActorName::Redriver => state.redriver.send(Restart).await,
    };
    match sent {
        Ok(()) => HttpResponse::Accepted().json(json!({ "restarting": name.as_str() })),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("{} did not answer: {e}", name.as_str())),
    }
}

/// The body of `POST /dead-letters/redrive`; every field optional, unknown fields refused.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    reason: Option<String>,
    topic: Option<String>,
    partition: Option<i32>,
    limit: Option<u32>,
    after: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

impl RedriveBody {
    fn parse(body: &[u8]) -> Result<RedriveFilter, String> {
        const SHAPE: &str = "the body must be a JSON object with optional fields reason, topic, partition, limit, after, dry_run";
        let b: RedriveBody = if body.iter().all(u8::is_ascii_whitespace) {
            RedriveBody::default()
        } else {
            // An object only: serde would also take a struct from an array of its fields.
            match serde_json::from_slice::<UniqueKeys>(body).map(|u| u.0) {
                Ok(v @ serde_json::Value::Object(_)) => {
                    serde_json::from_value(v).map_err(|e| format!("invalid request body: {e}; {SHAPE}"))?
                }
                Ok(_) => return Err(SHAPE.to_string()),
                // Data: valid JSON that names a member twice (serde_json's category, not its words).
                Err(e) if e.is_data() => return Err(format!("invalid request body: {e}; {SHAPE}")),
                Err(e) => return Err(format!("the body is not JSON ({e}); {SHAPE}")),
            }
        };
        let fields = SelectionFields { reason: b.reason, topic: b.topic, partition: b.partition, after: b.after, limit: b.limit };
        Ok(RedriveFilter { select: fields.checked(DEFAULT_LIMIT, MAX_LIMIT)?, dry_run: b.dry_run })
    }
}

async fn redrive(state: web::Data<ApiState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let body = match admit(&state, &req, payload).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let filter = match RedriveBody::parse(&body) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // The blocking work runs on the redriver's own thread, not on this arbiter.
    stored(state.redriver.send(Redrive(filter)).await, |report| HttpResponse::Ok().json(report))
}

/// A JSON value whose objects name each member once, at any depth. serde_json keeps the last of
/// a repeated name, so `{"dry_run": true, "dry_run": false}` would redrive for real; like a
/// repeated query parameter, it is refused.
struct UniqueKeys(serde_json::Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Null))
            }
            fn visit_bool<E>(self, v: bool) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::from(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
                let mut items = Vec::new();
                while let Some(UniqueKeys(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(UniqueKeys(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
                let mut members = serde_json::Map::new();
                while let Some(name) = map.next_key::<String>()? {
                    if members.contains_key(&name) {
                        return Err(serde::de::Error::custom(format_args!("the member {name:?} appears twice")));
                    }
                    let UniqueKeys(v) = map.next_value()?;
                    members.insert(name, v);
                }
                Ok(UniqueKeys(Value::Object(members)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Which dead letters a request means, as sent: the query of `GET /dead-letters` (unknown
/// parameters refused) and the selecting part of a redrive's body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectionFields {
    reason: Option<String>,
    topic: Option<String>,
    partition: Option<i32>,
    after: Option<String>,
    limit: Option<u32>,
}

impl SelectionFields {
    fn from_query(query: &str) -> Result<Selection, String> {
        web::Query::<SelectionFields>::from_query(query)
            .map_err(|e| format!("{e}; parameters: reason, topic, partition, after (topic/partition/offset), limit"))?
            .into_inner()
            .checked(DEFAULT_PAGE, MAX_PAGE)
    }

    /// Checked: `limit` (else `default`) from 1 to `max`, `after` a cursor.
    fn checked(self, default: u32, max: u32) -> Result<Selection, String> {
        let limit = self.limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(format!("limit must be between 1 and {max}"));
        }
        let after = self.after.as_deref().map(str::parse::<DeadLetterKey>).transpose().map_err(|e| format!("after: {e}"))?;
        Ok(Selection { reason: self.reason, topic: self.topic, partition: self.partition, after, limit })
    }
}

/// What the redriver answered, as HTTP: a database that is away is a 503, anything else a 500.
fn stored<T>(answer: Result<Result<T, StoreError>, actix::MailboxError>, ok: impl FnOnce(T) -> HttpResponse) -> HttpResponse {
    match answer {
        Ok(Ok(v)) => ok(v),
        Ok(Err(e @ StoreError::Transient(_))) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("redriver did not answer: {e}")),
    }
}

/// `GET /dead-letters` (admin: payload sizes and details are user data).
async fn list_dead_letters(state: web::Data<ApiState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    if let Err(resp) = admit(&state, &req, payload).await {
        return resp;
    }
    match SelectionFields::from_query(req.query_string()) {
        Ok(filter) => stored(state.redriver.send(ListDeadLetters(filter)).await, |page| HttpResponse::Ok().json(page)),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// `GET /dead-letters/{topic}/{partition}/{offset}` (admin): one, payload included.
async fn dead_letter(state: web::Data<ApiState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    if let Err(resp) = admit(&state, &req, payload).await {
        return resp;
    }
    let m = req.match_info();
    let text = format!(
        "{}/{}/{}",
        m.get("topic").unwrap_or_default(),
        m.get("partition").unwrap_or_default(),
        m.get("offset").unwrap_or_default()
    );
    let key = match text.parse::<DeadLetterKey>() {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{text}: {e}")),
    };
    stored(state.redriver.send(GetDeadLetter(key.clone())).await, |found| match found {
        Some(d) => HttpResponse::Ok().json(d),
        None => error(StatusCode::NOT_FOUND, format!("no dead letter at {key}")),
    })
}

async fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, "no such endpoint; see docs/http-api.md")
}

/// Register the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    cfg.service(only("/openapi.json", Method::GET, openapi))
        .service(only("/health", Method::GET, health))
        .service(only("/ready", Method::GET, ready))
        .service(only("/status", Method::GET, status))
        .service(only("/actors", Method::GET, actors))
        .service(only("/metrics", Method::GET, metrics))
        .service(only("/pause", Method::POST, pause))
        .service(only("/resume", Method::POST, resume))
        .service(only("/actors/{name}/restart", Method::POST, restart))
        .service(only("/dead-letters/redrive", Method::POST, redrive))
        .service(only("/dead-letters", Method::GET, list_dead_letters))
        .service(only("/dead-letters/{topic}/{partition}/{offset}", Method::GET, dead_letter))
        .default_service(web::to(not_found));
}

/// A plain `GET` to this service on loopback, for the demo's progress and the benchmark harness
/// (no HTTP client runtime needed). Returns the status and the body.
pub fn loopback_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

/// A counter's or gauge's value in Prometheus text, summed over its label sets.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::RedriveBody;

    #[test]
    fn a_redrive_body_that_names_a_member_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"dry_run": true, "dry_run": false}"#,
            r#"{"limit": 1, "reason": "oversize", "limit": 1000}"#,
            r#"{"topic": {"a": 1, "a": 2}}"#,
            r#"{"topic": [{"a": 1}, {"b": 1, "b": 2}]}"#,
        ] {
            let e = RedriveBody::parse(body.as_bytes()).unwrap_err();
            assert!(e.contains("appears twice") && e.starts_with("invalid request body"), "{body}: {e}");
        }
        let f = RedriveBody::parse(br#"{"dry_run": true, "limit": 5, "after": null}"#).unwrap();
        assert!(f.dry_run && f.select.limit == 5);
        assert!(RedriveBody::parse(br#"{"limit": 5"#).unwrap_err().starts_with("the body is not JSON"));
    }
}
