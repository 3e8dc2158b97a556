//! The HTTP face of the KMS.
//!
//! This layer turns requests into KMS operations and results into responses: the admin API
//! under `/rustfs/admin/v3` (JSON, signed for `execute-api`), the S3 API for buckets and their
//! default encryption (XML, signed for `s3`), `GET /health`. It verifies SigV4 signatures
//! ([`sigv4`]), checks each identity's actions ([`auth`]), runs the service lifecycle
//! ([`service`]) and is the only crate that knows JSON shapes and status codes ([`error`]).
//!
//! Key storage, key state rules and the cache belong to the crates below; start-up flags and
//! logging set-up belong to `kms-server`.

mod admin;
pub mod auth;
mod buckets;
pub mod config;
pub mod error;
mod request;
pub mod s3;
pub mod service;
pub mod sigv4;
mod state;

use std::future::Future;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, Uri};
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpMessage, HttpResponse};

pub use admin::ADMIN_PREFIX;
pub use state::{AppState, Settings, Startup};

use crate::error::ApiError;
use crate::request::LogFields;
use crate::s3::S3Error;

/// The id of one request, in its response headers, error body and log line.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The complete application: admin API, S3 API, health check, CORS for the listed origins, and
/// the request middleware (request ids, admin path normalisation, error bodies, request log).
pub fn app(
    state: web::Data<AppState>,
    cors_origins: &[String],
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(request::ADMIN_BODY_LIMIT))
        .wrap(Condition::new(!cors_origins.is_empty(), cors(cors_origins)))
        .wrap_fn(|req, srv| {
            let fut = prepare(req).map(|req| srv.call(req));
            finish(fut)
        })
        .route("/health", web::get().to(health))
        .route("/health", web::head().to(health))
        .configure(admin::routes)
        .default_service(web::to(s3::dispatch))
}

fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "PUT", "POST", "DELETE", "HEAD"])
        .allow_any_header()
        .expose_headers(["x-request-id", "x-amz-request-id", "etag"])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

struct Prepared {
    request_id: String,
    method: Method,
    path: String,
    admin: bool,
    started: Instant,
}

/// Before routing: a request id, and the admin path normalised (`//` collapsed, dot segments
/// removed) so the guide's `//rustfs/admin/v3/…` reaches its route and signs as sent.
fn prepare(mut req: ServiceRequest) -> PreparedCall {
    let request_id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    if let Some(normalised) = normalise_admin_path(req.path()) {
        let query = req.query_string();
        let path_and_query = if query.is_empty() {
            normalised
        } else {
            format!("{normalised}?{query}")
        };
        if let Ok(uri) = path_and_query.parse::<Uri>() {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(LogFields::default());
    let prepared = Prepared {
        request_id,
        method: req.method().clone(),
        path: req.path().to_owned(),
        admin: req.path().starts_with(ADMIN_PREFIX) || req.path() == "/health",
        started: Instant::now(),
    };
    PreparedCall { prepared, req }
}

struct PreparedCall {
    prepared: Prepared,
    req: ServiceRequest,
}

impl PreparedCall {
    fn map<F>(self, call: impl FnOnce(ServiceRequest) -> F) -> (Prepared, F) {
        (self.prepared, call(self.req))
    }
}

/// The admin path with `//` collapsed and dot segments removed, when it differs and is an admin
/// path; S3 paths are never touched.
fn normalise_admin_path(path: &str) -> Option<String> {
    if !path.contains("//") && !path.contains("/.") {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = if path.ends_with('/') && !segments.is_empty() {
        "/"
    } else {
        ""
    };
    let normalised = format!("/{}{trailing}", segments.join("/"));
    let is_admin =
        normalised == ADMIN_PREFIX || normalised.starts_with(&format!("{ADMIN_PREFIX}/"));
    (is_admin && normalised != path).then_some(normalised)
}

/// After the handler: errors rendered with the request id, the request id header, the log line.
async fn finish<B: MessageBody + 'static>(
    (prepared, call): (
        Prepared,
        impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    ),
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = call.await?.map_into_boxed_body();
    let id = &prepared.request_id;
    let rendered = res.response().error().and_then(|e| {
        if let Some(api) = e.as_error::<ApiError>() {
            Some(api.to_response(id))
        } else {
            e.as_error::<S3Error>()
                .map(|s3| s3.to_response(id, prepared.method == Method::HEAD))
        }
    });
    let mut res = match rendered {
        Some(response) => res.into_response(response),
        None => res,
    };
    let header = if prepared.admin {
        "x-request-id"
    } else {
        "x-amz-request-id"
    };
    if let Ok(value) = HeaderValue::from_str(id) {
        res.headers_mut()
            .insert(HeaderName::from_static(header), value);
    }
    log_request(&prepared, &res);
    Ok(res)
}

fn log_request(prepared: &Prepared, res: &ServiceResponse<BoxBody>) {
    let fields = res
        .request()
        .extensions()
        .get::<LogFields>()
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        target: "kms_http::access",
        method = %prepared.method,
        path = %prepared.path,
        status = res.status().as_u16(),
        latency_ms = prepared.started.elapsed().as_secs_f64() * 1000.0,
        request_id = %prepared.request_id,
        identity = fields.identity.as_deref().unwrap_or("-"),
        key_id = fields.key_id.as_deref().unwrap_or("-"),
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_paths_are_normalised_and_s3_paths_are_not() {
        assert_eq!(
            normalise_admin_path("//rustfs/admin/v3/kms/keys").as_deref(),
            Some("/rustfs/admin/v3/kms/keys")
        );
        assert_eq!(
            normalise_admin_path("/rustfs//admin/v3/./kms/x/../keys").as_deref(),
            Some("/rustfs/admin/v3/kms/keys")
        );
        assert_eq!(normalise_admin_path("/rustfs/admin/v3/kms/keys"), None);
        assert_eq!(normalise_admin_path("/bucket//key"), None);
        assert_eq!(normalise_admin_path("//bucket/key"), None);
    }
}
