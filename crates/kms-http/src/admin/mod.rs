//! The admin API under `/rustfs/admin/v3`: JSON over HTTP, signed for `execute-api`.

mod buckets;
mod data_keys;
mod keys;
mod lifecycle;
mod views;

use actix_web::{web, HttpResponse};

use crate::error::ApiError;

/// The path prefix of the admin API.
pub const ADMIN_PREFIX: &str = "/rustfs/admin/v3";

/// Registers every admin route. Fixed paths come before `/kms/keys/{key_id}` so that, for
/// example, `GET /kms/keys/delete` is a 405 rather than a lookup of a key named `delete`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(ADMIN_PREFIX)
            .service(resource("/kms/configure").route(web::post().to(lifecycle::configure)))
            .service(resource("/kms/reconfigure").route(web::post().to(lifecycle::reconfigure)))
            .service(resource("/kms/start").route(web::post().to(lifecycle::start)))
            .service(resource("/kms/stop").route(web::post().to(lifecycle::stop)))
            .service(
                resource("/kms/service-status").route(web::get().to(lifecycle::service_status)),
            )
            .service(resource("/kms/config").route(web::get().to(lifecycle::config)))
            .service(resource("/kms/status").route(web::get().to(lifecycle::status)))
            .service(resource("/kms/clear-cache").route(web::post().to(lifecycle::clear_cache)))
            .service(
                resource("/kms/keys")
                    .route(web::post().to(keys::create))
                    .route(web::get().to(keys::list)),
            )
            .service(resource("/kms/keys/delete").route(web::delete().to(keys::schedule_deletion)))
            .service(
                resource("/kms/keys/cancel-deletion").route(web::post().to(keys::cancel_deletion)),
            )
            .service(resource("/kms/keys/enable").route(web::post().to(keys::enable)))
            .service(resource("/kms/keys/disable").route(web::post().to(keys::disable)))
            .service(resource("/kms/keys/rotate").route(web::post().to(keys::rotate)))
            .service(resource("/kms/keys/rotation").route(web::post().to(keys::rotation)))
            .service(resource("/kms/keys/{key_id}").route(web::get().to(keys::describe)))
            .service(resource("/kms/create-key").route(web::post().to(keys::create)))
            .service(resource("/kms/describe-key").route(web::get().to(keys::describe_legacy)))
            .service(resource("/kms/list-keys").route(web::get().to(keys::list)))
            .service(resource("/kms/generate-data-key").route(web::post().to(data_keys::generate)))
            .service(resource("/kms/decrypt").route(web::post().to(data_keys::decrypt)))
            .service(resource("/api/v1/buckets").route(web::get().to(buckets::list)))
            .service(
                resource("/api/v1/bucket-encryption/{bucket}")
                    .route(web::get().to(buckets::get_encryption))
                    .route(web::put().to(buckets::put_encryption))
                    .route(web::delete().to(buckets::delete_encryption)),
            )
            .default_service(web::to(not_found)),
    );
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
