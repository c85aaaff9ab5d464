//! The HTTP API (actix-web): every answer comes from asking the `HealthReporter` actor (or the
//! `Redriver`, for dead letters).
//!
//! JSON everywhere except `/metrics` (Prometheus text). Unknown paths answer 404 and wrong
//! methods 405, both with a JSON error body ([`ApiError`] maps every failure). Admin endpoints
//! (`POST /pause`, `/resume`, `/actors/{name}/restart`, `/dead-letters/redrive`, `GET
//! /dead-letters…`) go through the admin gate of [`crate::routes`]. Request bodies are capped.
//! Each handler's `#[utoipa::path]` is both its route and its entry in `GET /openapi.json`.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};

use crate::answer::{ApiError, ErrorBody};
use crate::routes::{Body, Routes};
use tributary_actors::{ActorName, Restart};
use tributary_actors::{Actors, GetActors, GetHealth, GetMetrics, GetReadiness, GetStatus, Health, HealthReporter, Readiness, Status};
use tributary_actors::{DbWriter, Parser};
use tributary_actors::{DeadLetterDetail, DeadLetterKey, DeadLetterPage, RedriveFilter, RedriveReport, Selection};
use tributary_actors::{GetDeadLetter, ListDeadLetters, Redrive, Redriver};
use tributary_actors::{KafkaReader, SetPaused};
use tributary_actors::{DEFAULT_LIMIT, DEFAULT_PAGE, MAX_LIMIT, MAX_PAGE};

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub health: Addr<HealthReporter>,
    pub reader: Addr<KafkaReader>,
    pub parser: Addr<Parser>,
    pub writer: Addr<DbWriter>,
    pub redriver: Addr<Redriver>,
}

/// 200 when `ok`, else 503, with the same body.
fn verdict<T>(body: T, ok: bool) -> (web::Json<T>, StatusCode) {
    (web::Json(body), if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE })
}

#[utoipa::path(get, path = "/health", operation_id = "health", summary = "liveness", responses(
    (status = 200, description = "alive", body = Health),
    (status = 503, description = "an actor exceeded its restart budget, or the actor system does not answer", body = Unhealthy)))]
async fn health(state: web::Data<ApiState>) -> Result<(web::Json<Health>, StatusCode), ApiError> {
    let health = state.health.send(GetHealth).await.map_err(ApiError::no_answer("health_reporter"))?;
    let ok = health.ok();
    Ok(verdict(health, ok))
}

#[utoipa::path(get, path = "/ready", operation_id = "ready", summary = "readiness, with reasons", responses(
    (status = 200, description = "ready", body = Readiness),
    (status = 503, description = "not ready", body = Unready)))]
async fn ready(state: web::Data<ApiState>) -> Result<(web::Json<Readiness>, StatusCode), ApiError> {
    let readiness = state.health.send(GetReadiness).await.map_err(ApiError::no_answer("health_reporter"))?;
    let ok = readiness.ready;
    Ok(verdict(readiness, ok))
}

#[utoipa::path(get, path = "/status", operation_id = "status", responses(
    (status = 200, description = "status", body = Status),
    (status = 503, description = "the actor system does not answer", body = ErrorBody)))]
async fn status(state: web::Data<ApiState>) -> Result<web::Json<Status>, ApiError> {
    state.health.send(GetStatus).await.map(web::Json).map_err(ApiError::no_answer("health_reporter"))
}

#[utoipa::path(get, path = "/actors", operation_id = "actors", responses(
    (status = 200, description = "each actor", body = Actors),
    (status = 503, description = "the actor system does not answer", body = ErrorBody)))]
async fn actors(state: web::Data<ApiState>) -> Result<web::Json<Actors>, ApiError> {
    state.health.send(GetActors).await.map(web::Json).map_err(ApiError::no_answer("health_reporter"))
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", responses(
    (status = 200, description = "Prometheus/OpenMetrics text", body = String, content_type = "application/openmetrics-text"),
    (status = 503, description = "the actor system does not answer", body = ErrorBody)))]
async fn metrics(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let text = state.health.send(GetMetrics).await.map_err(ApiError::no_answer("health_reporter"))?;
    Ok(HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(text))
}

/// The OpenAPI document, generated once at start from the routes (see [`crate::routes`]).
pub struct Document(pub web::Bytes);

#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", responses(
    (status = 200, description = "this document", body = Object)))]
async fn openapi(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document.0.clone())
}

/// `POST /pause`'s and `/resume`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Paused {
    paused: bool,
}

async fn set_paused(state: &ApiState, paused: bool) -> Result<web::Json<Paused>, ApiError> {
    state.reader.send(SetPaused(paused)).await.map_err(ApiError::no_answer("kafka_reader"))?;
    Ok(web::Json(Paused { paused }))
}

#[utoipa::path(post, path = "/pause", operation_id = "pause", summary = "stop consuming, keeping group membership", responses(
    (status = 200, description = "paused", body = Paused),
    (status = 400, description = "the body cannot be read", body = ErrorBody),
    (status = 413, description = "the body is too large", body = ErrorBody),
    (status = 503, description = "the reader does not answer", body = ErrorBody)))]
async fn pause(state: web::Data<ApiState>, _: Body) -> Result<web::Json<Paused>, ApiError> {
    set_paused(&state, true).await
}

#[utoipa::path(post, path = "/resume", operation_id = "resume", summary = "consume again", responses(
    (status = 200, description = "resumed", body = Paused),
    (status = 400, description = "the body cannot be read", body = ErrorBody),
    (status = 413, description = "the body is too large", body = ErrorBody),
    (status = 503, description = "the reader does not answer", body = ErrorBody)))]
async fn resume(state: web::Data<ApiState>, _: Body) -> Result<web::Json<Paused>, ApiError> {
    set_paused(&state, false).await
}

/// `POST /actors/{name}/restart`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Restarting {
    restarting: String,
}

#[utoipa::path(post, path = "/actors/{name}/restart", operation_id = "restart_actor", summary = "restart an actor under its supervisor",
    params(("name" = ActorName, Path, description = "the actor")),
    responses(
    (status = 202, description = "restarting", body = Restarting),
    (status = 400, description = "the body cannot be read", body = ErrorBody),
    (status = 404, description = "no such actor", body = ErrorBody),
    (status = 413, description = "the body is too large", body = ErrorBody),
    (status = 503, description = "the actor does not answer", body = ErrorBody)))]
async fn restart(state: web::Data<ApiState>, name: web::Path<String>, _: Body) -> Result<(web::Json<Restarting>, StatusCode), ApiError> {
    let name = name.into_inner();
    let actor = name.parse::<ActorName>().map_err(|unknown| ApiError::NotFound(unknown.to_string()))?;
    let sent = match actor {
        ActorName::KafkaReader => state.reader.send(Restart).await,
        ActorName::Parser => state.parser.send(Restart).await,
        ActorName::DbWriter => state.writer.send(Restart).await,
        ActorName::HealthReporter => state.health.send(Restart).await,
        ActorName::Redriver => state.redriver.send(Restart).await,
    };
    sent.map_err(ApiError::no_answer(name.as_str()))?;
    Ok((web::Json(Restarting { restarting: name }), StatusCode::ACCEPTED))
}

/// The body of `POST /dead-letters/redrive`; every field optional, unknown fields refused.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RedriveRequest, description = "every member at most once (a member named twice, at any depth, is a 400)")]
struct RedriveBody {
    reason: Option<String>,
    topic: Option<String>,
    #[schema(minimum = 0)]
    partition: Option<i32>,
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// topic/partition/offset
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

#[utoipa::path(post, path = "/dead-letters/redrive", operation_id = "redrive",
    summary = "re-parse dead letters with the current settings; ingest (and project) those that now pass",
    request_body(content = Option<RedriveBody>, content_type = "application/json"),
    responses(
    (status = 200, description = "what the redrive did", body = RedriveReport),
    (status = 400, description = "the body is not a redrive request", body = ErrorBody),
    (status = 413, description = "the body is too large", body = ErrorBody),
    (status = 500, description = "the database refused", body = ErrorBody),
    (status = 503, description = "the redriver or the database does not answer", body = ErrorBody)))]
async fn redrive(state: web::Data<ApiState>, body: Body) -> Result<web::Json<RedriveReport>, ApiError> {
    let filter = RedriveBody::parse(&body.0).map_err(ApiError::BadRequest)?;
    // The blocking work runs on the redriver's own thread, not on this arbiter.
    let report = state.redriver.send(Redrive(filter)).await.map_err(ApiError::no_answer("redriver"))??;
    Ok(web::Json(report))
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
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SelectionFields {
    reason: Option<String>,
    topic: Option<String>,
    #[param(minimum = 0)]
    partition: Option<i32>,
    /// topic/partition/offset, a page's next
    after: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

impl SelectionFields {
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

/// `GET /dead-letters` (admin: payload sizes and details are user data). The body is read only
/// to hold it to the cap, as every admin call's is.
#[utoipa::path(get, path = "/dead-letters", operation_id = "list_dead_letters", summary = "dead letters, lowest (topic, partition, offset) first",
    params(SelectionFields),
    responses(
    (status = 200, description = "a page", body = DeadLetterPage),
    (status = 400, description = "a query the API does not take", body = ErrorBody),
    (status = 413, description = "the body is too large", body = ErrorBody),
    (status = 500, description = "the database refused", body = ErrorBody),
    (status = 503, description = "the redriver or the database does not answer", body = ErrorBody)))]
async fn list_dead_letters(
    state: web::Data<ApiState>,
    query: web::Query<SelectionFields>,
    _: Body,
) -> Result<web::Json<DeadLetterPage>, ApiError> {
    let selection = query.into_inner().checked(DEFAULT_PAGE, MAX_PAGE).map_err(ApiError::BadRequest)?;
    let page = state.redriver.send(ListDeadLetters(selection)).await.map_err(ApiError::no_answer("redriver"))??;
    Ok(web::Json(page))
}

/// `GET /dead-letters/{topic}/{partition}/{offset}` (admin): one, payload included.
#[utoipa::path(get, path = "/dead-letters/{topic}/{partition}/{offset}", operation_id = "get_dead_letter",
    params(
        ("topic" = String, Path),
        ("partition" = i32, Path, minimum = 0),
        ("offset" = i64, Path, minimum = 0)),
    responses(
    (status = 200, description = "one dead letter whole", body = DeadLetterDetail),
    (status = 400, description = "a path that names no dead letter's place", body = ErrorBody),
    (status = 404, description = "no dead letter there", body = ErrorBody),
    (status = 413, description = "the body is too large", body = ErrorBody),
    (status = 500, description = "the database refused", body = ErrorBody),
    (status = 503, description = "the redriver or the database does not answer", body = ErrorBody)))]
async fn dead_letter(
    state: web::Data<ApiState>,
    place: web::Path<(String, i32, i64)>,
    _: Body,
) -> Result<web::Json<DeadLetterDetail>, ApiError> {
    let (topic, partition, offset) = place.into_inner();
    // The key's own rules (a topic, no negative numbers), as a redrive's `after` is held to.
    let text = format!("{topic}/{partition}/{offset}");
    let key = text.parse::<DeadLetterKey>().map_err(|e| ApiError::BadRequest(format!("{text}: {e}")))?;
    let found = state.redriver.send(GetDeadLetter(key.clone())).await.map_err(ApiError::no_answer("redriver"))??;
    found.map(web::Json).ok_or_else(|| ApiError::NotFound(format!("no dead letter at {key}")))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such endpoint; see docs/http-api.md".into()))
}

/// A 503 of `/health`: the verdict, or the error when the actor system does not answer.
pub struct Unhealthy;

/// A 503 of `/ready`: the verdict, or the error when the actor system does not answer.
pub struct Unready;

/// `oneOf` the schema named `verdict` and the error's.
fn verdict_or_error(verdict: &str) -> RefOr<Schema> {
    let error = <ErrorBody as utoipa::ToSchema>::name();
    OneOfBuilder::new().item(Ref::from_schema_name(verdict)).item(Ref::from_schema_name(error)).into()
}

impl utoipa::PartialSchema for Unhealthy {
    fn schema() -> RefOr<Schema> {
        verdict_or_error(&<Health as utoipa::ToSchema>::name())
    }
}

impl utoipa::ToSchema for Unhealthy {}

impl utoipa::PartialSchema for Unready {
    fn schema() -> RefOr<Schema> {
        verdict_or_error(&<Readiness as utoipa::ToSchema>::name())
    }
}

impl utoipa::ToSchema for Unready {}

/// The API's routes, each at the path and method its `#[utoipa::path]` documents.
pub fn routes(r: &mut Routes<'_>) {
    let query_error = |e: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest| {
        ApiError::BadRequest(format!("{e}; parameters: reason, topic, partition, after (topic/partition/offset), limit")).into()
    };
    r.app_data(web::QueryConfig::default().error_handler(query_error));
    for schema in [
        Routes::schema::<Health>,
        Routes::schema::<Unhealthy>,
        Routes::schema::<Readiness>,
        Routes::schema::<Unready>,
        Routes::schema::<Status>,
        Routes::schema::<Actors>,
        Routes::schema::<Paused>,
        Routes::schema::<Restarting>,
        Routes::schema::<ActorName>,
        Routes::schema::<DeadLetterPage>,
        Routes::schema::<DeadLetterDetail>,
        Routes::schema::<RedriveBody>,
        Routes::schema::<RedriveReport>,
    ] {
        schema(r);
    }
    r.add(__path_openapi, openapi);
    r.add(__path_health, health);
    r.add(__path_ready, ready);
    r.add(__path_status, status);
    r.add(__path_actors, actors);
    r.add(__path_metrics, metrics);
    r.admin(__path_pause, pause);
    r.admin(__path_resume, resume);
    r.admin(__path_restart, restart);
    r.admin(__path_redrive, redrive);
    r.admin(__path_list_dead_letters, list_dead_letters);
    r.admin(__path_dead_letter, dead_letter);
    r.fallback(not_found);
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
