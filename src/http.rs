//! The HTTP API (actix-web): every answer comes from asking the `HealthReporter` actor.
//!
//! JSON everywhere except `/metrics` (Prometheus text). Unknown paths answer 404 and wrong
//! methods 405, both with a JSON error body.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;
use tributary_actors::health::{GetActors, GetHealth, GetMetrics, GetReadiness, GetStatus, HealthReporter, Report};

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub health: Addr<HealthReporter>,
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into(), "status": status.as_u16() }))
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

async fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, "no such endpoint; see docs/http-api.md")
}

async fn method_not_allowed() -> HttpResponse {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed for this endpoint")
}

/// A GET-only resource; other methods get a JSON 405.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(web::get().to(handler)).default_service(web::to(method_not_allowed))
}

/// Register the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/health", health))
        .service(get("/ready", ready))
        .service(get("/status", status))
        .service(get("/actors", actors))
        .service(get("/metrics", metrics))
        .default_service(web::to(not_found));
}
