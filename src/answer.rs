//! What every HTTP piece answers with: the JSON error body of anything but a success, and a
//! route that answers only its method (a JSON 405 with `Allow` otherwise).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The JSON error every answer that is not a success carries (also the start-up answers').
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into(), "status": status.as_u16() }))
}

/// A resource answering `GET` (and `HEAD`, which actix answers without the body) or `POST`;
/// other methods get a JSON 405 naming the allowed ones in `Allow`.
pub(crate) fn only<F, Args>(path: &str, method: actix_web::http::Method, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let get = method == actix_web::http::Method::GET;
    let allow = if get { "GET, HEAD".to_string() } else { method.to_string() };
    let resource = web::resource(path).route(web::method(method).to(handler.clone()));
    let resource = if get { resource.route(web::head().to(handler)) } else { resource };
    resource.default_service(web::to(move || {
        let allow = allow.clone();
        async move {
            let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed for this endpoint; allowed: {allow}"));
            if let Ok(value) = header::HeaderValue::from_str(&allow) {
                resp.headers_mut().insert(header::ALLOW, value);
            }
            resp
        }
    }))
}
