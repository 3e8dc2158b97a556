//! Master key routes: create, list, describe, state changes, rotation, deletion.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use kms_core::{
    format_timestamp, CreateKeyRequest, KeyChange, KeyId, KeyMetadata, KeyUsage, ListKeysRequest,
    ListMarker, Tags, DEFAULT_PENDING_WINDOW_DAYS, DEFAULT_ROTATION_PERIOD_DAYS,
};
use serde::Deserialize;
use serde_json::json;

use super::views::{KeyAnswer, KeyListEntry, KeyMetadataView};
use crate::auth::Action;
use crate::error::ApiError;
use crate::request::{note_key_id, parse_json, parse_json_or_default};
use crate::AppState;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateKeyBody {
    #[serde(rename = "KeyUsage", alias = "key_usage")]
    key_usage: Option<String>,
    #[serde(rename = "Description", alias = "description")]
    description: Option<String>,
    #[serde(rename = "Tags", alias = "tags")]
    tags: Option<BTreeMap<String, String>>,
}

/// `POST /kms/keys` and the legacy `POST /kms/create-key`.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (body, _) = state
        .admin_request(&req, payload, Action::CreateKey, &[])
        .await?;
    let input: CreateKeyBody = parse_json_or_default(&body)?;
    if let Some(usage) = &input.key_usage {
        KeyUsage::parse(usage)?;
    }
    let request = CreateKeyRequest {
        key_id: None,
        description: input.description.unwrap_or_default(),
        tags: Tags::new(input.tags.unwrap_or_default())?,
    };
    // Validate before asking for the service state, as the documented check order says.
    request.clone().into_metadata(kms_core::now())?;
    let backend = state.service.running_backend()?;
    let meta = backend.create_key(request).await?;
    note_key_id(&req, &meta.key_id);
    state.audit(&req, "key.created", &meta.key_id);
    Ok(HttpResponse::Ok().json(KeyAnswer::from(&meta)))
}

/// `GET /kms/keys` and the legacy `GET /kms/list-keys`.
pub async fn list(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, query) = state
        .admin_request(&req, payload, Action::ServerInfo, &["limit", "marker"])
        .await?;
    let limit = match query.get("limit") {
        None => 50,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid("limit must be an integer from 1 to 1000"))?,
    };
    let marker = match query.get("marker") {
        None | Some("") => None,
        Some(text) => Some(ListMarker::decode(text)?),
    };
    let backend = state.service.running_backend()?;
    let page = backend
        .list_keys(&ListKeysRequest { limit, marker })
        .await?;
    let keys: Vec<KeyListEntry<'_>> = page.keys.iter().map(KeyListEntry::from).collect();
    Ok(HttpResponse::Ok().json(json!({
        "keys": keys,
        "truncated": page.next_marker.is_some(),
        "next_marker": page.next_marker.map(|m| m.encode()),
    })))
}

/// `GET /kms/keys/{key_id}`.
pub async fn describe(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin_request(&req, payload, Action::ServerInfo, &[])
        .await?;
    let key_id = KeyId::parse(req.match_info().get("key_id").unwrap_or_default())?;
    describe_answer(&req, &state, &key_id).await
}

/// The legacy `GET /kms/describe-key?keyId=`.
pub async fn describe_legacy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, query) = state
        .admin_request(&req, payload, Action::ServerInfo, &["keyId", "key_id"])
        .await?;
    let id = query
        .get("keyId")
        .or(query.get("key_id"))
        .ok_or_else(|| ApiError::invalid("keyId is required"))?;
    describe_answer(&req, &state, &KeyId::parse(id)?).await
}

async fn describe_answer(
    req: &HttpRequest,
    state: &AppState,
    key_id: &KeyId,
) -> Result<HttpResponse, ApiError> {
    note_key_id(req, key_id);
    let backend = state.service.running_backend()?;
    let meta = backend.describe_key(key_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "key_metadata": KeyMetadataView::from(&meta) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteKeyBody {
    #[serde(alias = "keyId")]
    key_id: String,
    pending_window_in_days: Option<i64>,
}

/// `DELETE /kms/keys/delete`: schedules deletion after a waiting period.
pub async fn schedule_deletion(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let allowed = ["key_id", "keyId", "pending_window_in_days"];
    let (body, query) = state
        .admin_request(&req, payload, Action::DeleteKey, &allowed)
        .await?;
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        let key_id = query
            .get("key_id")
            .or(query.get("keyId"))
            .ok_or_else(|| ApiError::invalid("key_id is required"))?;
        let days = query
            .get("pending_window_in_days")
            .map(|d| {
                d.parse::<i64>()
                    .map_err(|_| ApiError::invalid("pending_window_in_days must be an integer"))
            })
            .transpose()?;
        DeleteKeyBody {
            key_id: key_id.to_owned(),
            pending_window_in_days: days,
        }
    } else if query.is_empty() {
        parse_json(&body)?
    } else {
        return Err(ApiError::invalid(
            "give the deletion parameters in the body or in the query, not both",
        ));
    };
    let key_id = KeyId::parse(&input.key_id)?;
    note_key_id(&req, &key_id);
    let days = input
        .pending_window_in_days
        .unwrap_or(DEFAULT_PENDING_WINDOW_DAYS);
    let change = KeyChange::schedule_deletion(kms_core::now(), days)?;
    let backend = state.service.running_backend()?;
    let is_default = state
        .service
        .snapshot()
        .config
        .as_ref()
        .is_some_and(|c| c.default_key_id == key_id);
    if is_default {
        return Err(ApiError::Kms(kms_core::Error::Conflict {
            reason: format!("key '{key_id}' is the configured default key and cannot be deleted"),
        }));
    }
    let meta = backend.update_key(&key_id, change).await?;
    state.audit(&req, "key.deletion_scheduled", &key_id);
    let buckets = state.buckets.buckets_using_key(&key_id);
    Ok(HttpResponse::Ok().json(json!({
        "key_id": meta.key_id.as_str(),
        "deletion_date": meta.deletion_date.as_ref().map(format_timestamp),
        "pending_window_in_days": days,
        "buckets_using_key": buckets,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyIdBody {
    #[serde(alias = "keyId")]
    key_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationBody {
    #[serde(alias = "keyId")]
    key_id: String,
    enabled: bool,
    rotation_period_in_days: Option<i64>,
}

enum Operation {
    Change(KeyChange),
    Rotate,
}

/// `POST /kms/keys/enable`.
pub async fn enable(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let op = Operation::Change(KeyChange::Enable);
    key_id_route(req, payload, &state, Action::ManageKey, "key.enabled", op).await
}

/// `POST /kms/keys/disable`.
pub async fn disable(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let op = Operation::Change(KeyChange::Disable);
    key_id_route(req, payload, &state, Action::ManageKey, "key.disabled", op).await
}

/// `POST /kms/keys/cancel-deletion`.
pub async fn cancel_deletion(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let op = Operation::Change(KeyChange::CancelDeletion);
    key_id_route(
        req,
        payload,
        &state,
        Action::DeleteKey,
        "key.deletion_cancelled",
        op,
    )
    .await
}

/// `POST /kms/keys/rotate`: a new current version now.
pub async fn rotate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    key_id_route(
        req,
        payload,
        &state,
        Action::ManageKey,
        "key.rotated",
        Operation::Rotate,
    )
    .await
}

/// A route whose body is only `{key_id}`.
async fn key_id_route(
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
    action: Action,
    event: &'static str,
    op: Operation,
) -> Result<HttpResponse, ApiError> {
    let (body, _) = state.admin_request(&req, payload, action, &[]).await?;
    let input: KeyIdBody = parse_json(&body)?;
    apply(&req, state, &input.key_id, event, op).await
}

/// `POST /kms/keys/rotation`: automatic rotation on or off, and its period.
pub async fn rotation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (body, _) = state
        .admin_request(&req, payload, Action::ManageKey, &[])
        .await?;
    let input: RotationBody = parse_json(&body)?;
    let period = input
        .rotation_period_in_days
        .unwrap_or(DEFAULT_ROTATION_PERIOD_DAYS);
    let op = Operation::Change(KeyChange::set_rotation(input.enabled, period)?);
    apply(&req, &state, &input.key_id, "key.rotation_changed", op).await
}

/// The common tail of every key change: validate the id, check the service, change, audit, answer.
async fn apply(
    req: &HttpRequest,
    state: &AppState,
    key_id: &str,
    event: &'static str,
    op: Operation,
) -> Result<HttpResponse, ApiError> {
    let key_id = KeyId::parse(key_id)?;
    note_key_id(req, &key_id);
    let backend = state.service.running_backend()?;
    let meta: KeyMetadata = match op {
        Operation::Change(change) => backend.update_key(&key_id, change).await?,
        Operation::Rotate => backend.rotate_key(&key_id, kms_core::now()).await?,
    };
    state.audit(req, event, &key_id);
    Ok(HttpResponse::Ok().json(KeyAnswer::from(&meta)))
}
