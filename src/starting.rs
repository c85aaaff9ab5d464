//! The HTTP answers while the service waits for its database at start, before any actor runs:
//! an orchestrator sees the process alive (`/health` 200) and not ready (`/ready` 503 with why),
//! instead of a refused connection. The real server takes the same socket over afterwards.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::{web, App, HttpRequest, HttpResponse, ResponseError};
use tributary_actors::{Health, Readiness};

use crate::answer::ApiError;

/// Why the service is not ready yet, as `/ready` says it.
#[derive(Clone, Default)]
pub struct Waiting(Arc<Mutex<String>>);

impl Waiting {
    pub fn set(&self, reason: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn answer(req: HttpRequest, waiting: web::Data<Waiting>) -> HttpResponse {
    let get = matches!(req.method().as_str(), "GET" | "HEAD");
    match req.path() {
        "/health" if get => HttpResponse::Ok().json(Health::starting()),
        "/ready" if get => HttpResponse::ServiceUnavailable().json(Readiness { ready: false, reasons: vec![waiting.get()] }),
        _ => ApiError::Starting(waiting.get()).error_response(),
    }
}

/// Serve the start-up answers on a clone of `listener` until the returned handle is stopped.
/// Stopped gracefully, it finishes the answers under way (a probe gets its answer, not a reset)
/// and waits at most a second for idle connections; later ones wait in the socket's backlog
/// for the real server.
pub fn serve(listener: &TcpListener, waiting: Waiting) -> std::io::Result<actix_web::dev::ServerHandle> {
    let server = crate::wire::serve(listener.try_clone()?, 1, 1, move || {
        App::new().app_data(web::Data::new(waiting.clone())).default_service(web::to(answer))
    })?;
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(handle)
}
