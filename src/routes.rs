//! The API's routes and `GET /openapi.json`'s document, from one list: each handler is
//! registered at the path and method its `#[utoipa::path]` documents, so a route cannot be
//! served undocumented nor documented unserved. Also the pieces every route shares: the admin
//! gate (one middleware on the admin routes) and the request body capped by actix's
//! `PayloadConfig`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use utoipa::openapi::path::{HttpMethod, Operation, Paths};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr, Response, Schema, ServerBuilder};

use crate::answer::{only, ApiError, ErrorBody};

/// Largest request body accepted (admin calls carry little or nothing).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The security scheme the admin routes name in the document.
const ADMIN_SCHEME: &str = "admin";

/// One part of the API registering its routes (the console's, the API's).
pub type Register = fn(&mut Routes<'_>);

/// Where routes go: into a server's configuration, or into the document only.
pub struct Routes<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl Routes<'_> {
    /// Serve `parts` on `cfg`, with the extractor settings every route shares.
    pub fn serve(cfg: &mut web::ServiceConfig, parts: &[Register]) {
        cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(web::PathConfig::default().error_handler(|e, req| ApiError::BadRequest(format!("{}: {e}", req.path())).into()));
        let mut routes = Routes { cfg: Some(cfg), paths: Paths::new(), schemas: Vec::new() };
        parts.iter().for_each(|register| register(&mut routes));
    }

    /// The OpenAPI document of `parts`: their paths and the schemas they name.
    pub fn document(parts: &[Register]) -> OpenApi {
        let mut routes = Routes { cfg: None, paths: Paths::new(), schemas: Vec::new() };
        routes.schema::<ErrorBody>();
        parts.iter().for_each(|register| register(&mut routes));
        let info = InfoBuilder::new()
            .title("tributary")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(
                "Kafka → SQL ingestion, exactly once: health, readiness, status, metrics, the operator console, and the \
                 admin API (pause, resume, restart an actor, dead letters and their redrive). Admin calls need \
                 `Authorization: Bearer <http.admin_token>`: 403 when no token is configured, 401 for a missing or wrong \
                 one. Every error is a JSON body {error, status}. See docs/http-api.md.",
            ))
            .build();
        let components = ComponentsBuilder::new()
            .schemas_from_iter(routes.schemas)
            .security_scheme(ADMIN_SCHEME, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)))
            .build();
        OpenApiBuilder::new()
            .info(info)
            .servers(Some([ServerBuilder::new().url("/").build()]))
            .paths(routes.paths)
            .components(Some(components))
            .build()
    }

    /// `handler` at the path and method(s) `P` documents.
    pub fn add<P, F, Args>(&mut self, _: P, handler: F)
    where
        P: utoipa::Path,
        F: actix_web::Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.route::<P, F, Args>(handler, P::operation(), |route| route);
    }

    /// An admin `handler` at the path and method(s) `P` documents, behind the bearer token: the
    /// gate and its documentation (the scheme, 401, 403) are added here, once for all.
    pub fn admin<P, F, Args>(&mut self, _: P, handler: F)
    where
        P: utoipa::Path,
        F: actix_web::Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        let mut operation = P::operation();
        operation.security = Some(vec![SecurityRequirement::new(ADMIN_SCHEME, Vec::<String>::new())]);
        let error = |description: &str| {
            let content = utoipa::openapi::ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("Error"))).build();
            RefOr::T(Response::builder().description(description).content("application/json", content).build())
        };
        let responses = &mut operation.responses.responses;
        responses.insert("401".into(), error("a missing or wrong bearer token"));
        responses.insert("403".into(), error("admin endpoints are off: no http.admin_token configured"));
        self.route::<P, F, Args>(handler, operation, |route| route.wrap(from_fn(admit)));
    }

    /// A schema the routes' operations name (and those it names in turn).
    pub fn schema<T: utoipa::ToSchema>(&mut self) {
        self.schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.schemas);
    }

    /// What answers a path no route takes.
    pub fn fallback<F, Args>(&mut self, handler: F)
    where
        F: actix_web::Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.default_service(web::to(handler));
        }
    }

    /// Data the handlers extract (served only; the document has no server).
    pub fn app_data<U: 'static>(&mut self, data: U) {
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.app_data(data);
        }
    }

    fn route<P, F, Args>(&mut self, handler: F, operation: Operation, wrap: impl Fn(actix_web::Route) -> actix_web::Route)
    where
        P: utoipa::Path,
        F: actix_web::Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        let (path, documented) = (P::path(), P::methods());
        if let Some(cfg) = self.cfg.as_deref_mut() {
            let methods: Vec<Method> = documented.iter().map(method).collect();
            cfg.service(only(&path, &methods, handler, wrap));
        }
        self.paths.add_path_operation(path, documented, operation);
    }
}

fn method(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// The admin token, as the gate compares it (`None`: admin routes are off).
pub struct AdminToken(pub Option<SecretString>);

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 7235), the token is not.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start_matches(' '))
}

/// The admin gate: 403 while no token is configured, 401 unless the request carries it
/// (compared in constant time).
async fn admit(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let admin = req.app_data::<web::Data<AdminToken>>().cloned();
    let Some(token) = admin.as_ref().and_then(|a| a.0.as_ref()) else { return Err(ApiError::AdminDisabled.into()) };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    if !given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.expose_secret().as_bytes()))) {
        return Err(ApiError::Unauthorized.into());
    }
    next.call(req).await
}

/// A request body, read whole up to `PayloadConfig`'s limit; its failures are [`ApiError`]s.
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = futures::future::LocalBoxFuture<'static, Result<Body, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let read = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            read.await.map(Body).map_err(|e| match e.as_error::<actix_web::error::PayloadError>() {
                Some(actix_web::error::PayloadError::Overflow) => ApiError::TooLarge(MAX_BODY_BYTES),
                _ => ApiError::BadRequest(format!("cannot read the request body: {e}")),
            })
        })
    }
}
