//! Service lifecycle and monitoring routes.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::Action;
use crate::config::{ConfigureBody, KmsConfig};
use crate::error::ApiError;
use crate::request::parse_json;
use crate::service::ServiceStatus;
use crate::AppState;

fn no_body(body: &[u8]) -> Result<(), ApiError> {
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let empty_object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .is_ok_and(|m| m.is_empty());
    if blank || empty_object {
        Ok(())
    } else {
        Err(ApiError::invalid("this route takes no body"))
    }
}

/// The validated configuration in the body of `configure` or `reconfigure`.
async fn configuration(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<KmsConfig, ApiError> {
    let (body, _) = state
        .admin_request(req, payload, Action::Configure, &[])
        .await?;
    parse_json::<ConfigureBody>(&body)?.validate(&state.data_dir, state.service.root())
}

/// `POST /kms/configure`.
pub async fn configure(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = configuration(&req, payload, &state).await?;
    let config_id = state.service.configure(config, None).await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": "KMS configured successfully",
        "config_id": config_id,
    })))
}

/// `POST /kms/reconfigure`: apply a configuration and end `Running`.
pub async fn reconfigure(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = configuration(&req, payload, &state).await?;
    state
        .service
        .configure(config, Some(ServiceStatus::Running))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": "KMS reconfigured and restarted successfully",
        "status": ServiceStatus::Running.as_str(),
    })))
}

/// `POST /kms/start`.
pub async fn start(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    switch(req, payload, &state, true).await
}

/// `POST /kms/stop`.
pub async fn stop(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    switch(req, payload, &state, false).await
}

async fn switch(
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
    start: bool,
) -> Result<HttpResponse, ApiError> {
    let (body, _) = state
        .admin_request(&req, payload, Action::Configure, &[])
        .await?;
    no_body(&body)?;
    let (status, message) = if start {
        (
            state.service.start().await?,
            "KMS service started successfully",
        )
    } else {
        (
            state.service.stop().await?,
            "KMS service stopped successfully",
        )
    };
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": message,
        "status": status.as_str(),
    })))
}

/// `GET /kms/service-status`: answers in every state.
pub async fn service_status(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin_request(&req, payload, Action::ServerInfo, &[])
        .await?;
    let snapshot = state.service.snapshot();
    let healthy = state.service.healthy().await;
    let summary = snapshot.config.as_ref().map(|c| {
        json!({
            "backend_type": c.backend.kind().as_str(),
            "default_key_id": c.default_key_id.as_str(),
            "timeout_seconds": c.timeout_seconds,
            "retry_attempts": c.retry_attempts,
            "enable_cache": c.enable_cache,
        })
    });
    Ok(HttpResponse::Ok().json(json!({
        "status": snapshot.status.as_str(),
        "backend_type": snapshot.config.as_ref().map(|c| c.backend.kind().as_str()),
        "healthy": healthy,
        "config_id": snapshot.config_id,
        "config_summary": summary,
    })))
}

/// `GET /kms/config`: the live configuration, `null` values when not configured.
pub async fn config(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin_request(&req, payload, Action::ServerInfo, &[])
        .await?;
    let snapshot = state.service.snapshot();
    let c = snapshot.config.as_ref();
    Ok(HttpResponse::Ok().json(json!({
        "backend": c.map(|c| c.backend.kind().as_str()),
        "cache_enabled": c.map(|c| c.enable_cache),
        "cache_max_keys": c.map(|c| c.cache_max_keys),
        "cache_ttl_seconds": c.map(|c| c.cache_ttl_seconds),
        "default_key_id": c.map(|c| c.default_key_id.as_str()),
    })))
}

/// `GET /kms/status`: backend health and cache counters.
pub async fn status(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin_request(&req, payload, Action::ServerInfo, &[])
        .await?;
    let snapshot = state.service.snapshot();
    let healthy = state.service.healthy().await;
    let backend_status = match snapshot.status {
        ServiceStatus::NotConfigured => "not_configured",
        ServiceStatus::Stopped => "stopped",
        ServiceStatus::Running if healthy => "healthy",
        _ => "unhealthy",
    };
    let stats = snapshot.backend.as_ref().and_then(|b| b.cache_stats());
    let c = snapshot.config.as_ref();
    Ok(HttpResponse::Ok().json(json!({
        "backend_type": c.map(|c| c.backend.kind().as_str()),
        "backend_status": backend_status,
        "healthy": healthy,
        "cache_enabled": c.is_some_and(|c| c.enable_cache),
        "cache_stats": stats.map(|s| json!({"hit_count": s.hit_count, "miss_count": s.miss_count})),
        "default_key_id": c.map(|c| c.default_key_id.as_str()),
    })))
}

/// `POST /kms/clear-cache`.
pub async fn clear_cache(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    no_body(
        &state
            .admin_request(&req, payload, Action::Configure, &[])
            .await?
            .0,
    )?;
    let snapshot = state.service.snapshot();
    if snapshot.status == ServiceStatus::NotConfigured {
        return Err(ApiError::ServiceNotConfigured);
    }
    if let Some(backend) = &snapshot.backend {
        backend.clear_cache().await;
    }
    Ok(HttpResponse::Ok()
        .json(json!({"status": "success", "message": "cache cleared successfully"})))
}
