//! What every HTTP piece answers with when it does not succeed: one [`ApiError`] that maps each
//! failure to its status, headers and JSON body (`{"error": "...", "status": N}`), and a route
//! that answers only its methods (a JSON 405 with `Allow` otherwise).

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use tributary_actors::StoreError;

/// The JSON body of every answer that is not a success (also the start-up answers').
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: String,
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
}

/// Every way an HTTP answer fails; [`ResponseError`] turns each into its status and body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request the API cannot take (its body, query or path).
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("admin endpoints are disabled: configure http.admin_token")]
    AdminDisabled,
    #[error("{0}")]
    NotFound(String),
    /// The allowed methods, as `Allow` names them.
    #[error("method not allowed for this endpoint; allowed: {0}")]
    MethodNotAllowed(String),
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    UriTooLong(String),
    /// An actor's mailbox did not answer: that is itself the answer (the actor is down or full).
    #[error("{actor} did not answer: {source}")]
    NoAnswer { actor: String, source: actix::MailboxError },
    /// A database that is away is a 503; anything else it refuses is a 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
    /// The service waits for its database (the start-up answers).
    #[error("starting: {0}; only /health and /ready answer until then")]
    Starting(String),
}

impl ApiError {
    /// The actor named `actor` did not answer.
    pub fn no_answer(actor: impl Into<String>) -> impl FnOnce(actix::MailboxError) -> ApiError {
        let actor = actor.into();
        move |source| ApiError::NoAnswer { actor, source }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::Store(StoreError::Transient(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NoAnswer { .. } | ApiError::Unavailable(_) | ApiError::Starting(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut answer = HttpResponse::build(status);
        match self {
            ApiError::Unauthorized => {
                answer.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed(allow) => {
                answer.insert_header((header::ALLOW, allow.as_str()));
            }
            ApiError::Starting(_) => {
                answer.insert_header((header::RETRY_AFTER, "2"));
            }
            _ => {}
        }
        answer.json(ErrorBody { error: self.to_string(), status: status.as_u16() })
    }
}

/// A resource answering `methods` (`GET` with `HEAD`, which actix answers without the body);
/// other methods get a JSON 405 naming the allowed ones in `Allow`. `wrap` goes around each
/// allowed method's route only, so a wrong method is a 405 before anything else is checked.
pub fn only<F, Args>(path: &str, methods: &[Method], handler: F, wrap: impl Fn(actix_web::Route) -> actix_web::Route) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let mut allowed = Vec::new();
    let mut resource = web::resource(path);
    for method in methods {
        resource = resource.route(wrap(web::method(method.clone()).to(handler.clone())));
        allowed.push(method.to_string());
        if *method == Method::GET {
            resource = resource.route(wrap(web::head().to(handler.clone())));
            allowed.push(Method::HEAD.to_string());
        }
    }
    let allow = allowed.join(", ");
    resource.default_service(web::to(move || {
        let allow = allow.clone();
        async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow)) }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_answers_its_status_its_headers_and_the_json_error() {
        use tributary_actors::Failure;
        let away = StoreError::Transient(Failure::Condition("connection refused".into()));
        let refused = StoreError::Fatal(Failure::Condition("permission denied".into()));
        for (e, status, header) in [
            (ApiError::BadRequest("no".into()), 400, None),
            (ApiError::Unauthorized, 401, Some((header::WWW_AUTHENTICATE, "Bearer"))),
            (ApiError::AdminDisabled, 403, None),
            (ApiError::MethodNotAllowed("GET, HEAD".into()), 405, Some((header::ALLOW, "GET, HEAD"))),
            (ApiError::TooLarge(10), 413, None),
            (ApiError::Store(away), 503, None),
            (ApiError::Store(refused), 500, None),
            (ApiError::Starting("database_connecting".into()), 503, Some((header::RETRY_AFTER, "2"))),
        ] {
            let answer = e.error_response();
            assert_eq!(answer.status().as_u16(), status, "{e}");
            if let Some((name, value)) = header {
                assert_eq!(answer.headers().get(name).and_then(|v| v.to_str().ok()), Some(value), "{e}");
            }
            let body = actix_web::body::to_bytes(answer.into_body());
            let body = futures::executor::block_on(body).unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, serde_json::json!({ "error": e.to_string(), "status": status }));
        }
    }
}
