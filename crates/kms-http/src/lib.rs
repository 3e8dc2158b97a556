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
use futures_util::future::{ready, Either, TryFutureExt};

pub use admin::ADMIN_PREFIX;
pub use state::{AppState, Settings, Startup};

use crate::error::ApiError;
use crate::request::LogFields;
use crate::s3::{S3Error, S3ErrorKind};

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
            let (prepared, req) = prepare(req);
            let call = match oversized(&req, prepared.admin) {
                Some(error) => Either::Left(ready(Ok(req.error_response(error)))),
                None => Either::Right(srv.call(req).map_ok(ServiceResponse::map_into_boxed_body)),
            };
            finish(prepared, call)
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
fn prepare(mut req: ServiceRequest) -> (Prepared, ServiceRequest) {
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
    (prepared, req)
}

/// The most header bytes (names and values) a request may carry: far above what any signed
/// client sends, far below what would let a few requests exhaust memory.
const HEADER_LIMIT: usize = 32 * 1024;
/// The longest path and query a request may have.
const URI_LIMIT: usize = 16 * 1024;

/// The error for a request whose head is larger than the limits, in the API's own format.
fn oversized(req: &ServiceRequest, admin: bool) -> Option<actix_web::Error> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    let uri_bytes = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let resource = req.path().to_owned();
    if header_bytes > HEADER_LIMIT {
        let error: actix_web::Error = if admin {
            ApiError::HeadersTooLarge {
                limit: HEADER_LIMIT,
            }
            .into()
        } else {
            let message = format!("the request headers are larger than {HEADER_LIMIT} bytes");
            S3Error::new(S3ErrorKind::RequestHeaderSectionTooLarge, message, resource).into()
        };
        return Some(error);
    }
    if uri_bytes > URI_LIMIT {
        let error: actix_web::Error = if admin {
            ApiError::UriTooLong { limit: URI_LIMIT }.into()
        } else {
            let message = format!("the request URI is longer than {URI_LIMIT} bytes");
            S3Error::new(S3ErrorKind::UriTooLong, message, resource).into()
        };
        return Some(error);
    }
    None
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
async fn finish(
    prepared: Prepared,
    call: impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = call.await?;
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
