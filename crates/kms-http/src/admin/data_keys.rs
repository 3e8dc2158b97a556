//! Data key routes: generate a data key under a master key, decrypt a ciphertext blob.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kms_core::{EncryptionContext, KeyId, KeySpec};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::Action;
use crate::error::ApiError;
use crate::request::{note_key_id, parse_json};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    key_id: Option<String>,
    key_spec: Option<String>,
    encryption_context: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecryptBody {
    ciphertext_blob: String,
    encryption_context: Option<Map<String, Value>>,
}

/// Converts a JSON encryption context: string values as they are, integers as decimal text
/// (the guide's upload example puts numbers in it); anything else is refused.
pub fn encryption_context(map: Option<Map<String, Value>>) -> Result<EncryptionContext, ApiError> {
    let mut pairs = std::collections::BTreeMap::new();
    for (key, value) in map.unwrap_or_default() {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => {
                return Err(ApiError::invalid(format!(
                    "encryption context value of '{}' must be a string or an integer",
                    key.escape_debug()
                )))
            }
        };
        pairs.insert(key, text);
    }
    Ok(EncryptionContext::new(pairs)?)
}

/// `POST /kms/generate-data-key`: a fresh data key, in clear and sealed.
pub async fn generate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (body, _) = state
        .admin_request(&req, payload, Action::GenerateDataKey, &[])
        .await?;
    let input: GenerateBody = parse_json(&body)?;
    let spec = input
        .key_spec
        .as_deref()
        .map(KeySpec::parse)
        .transpose()?
        .unwrap_or_default();
    let context = encryption_context(input.encryption_context)?;
    let key_id = input.key_id.as_deref().map(KeyId::parse).transpose()?;
    let backend = state.service.running_backend()?;
    let key_id = match key_id {
        Some(id) => id,
        None => state.default_key_id()?,
    };
    note_key_id(&req, &key_id);
    let data_key =
        kms_core::ops::generate_data_key(backend.as_ref(), &key_id, spec, &context).await?;
    Ok(HttpResponse::Ok().json(json!({
        "key_id": data_key.key_id.as_str(),
        "plaintext_key": STANDARD.encode(data_key.plaintext.expose()),
        "ciphertext_blob": STANDARD.encode(&data_key.ciphertext_blob),
    })))
}

/// `POST /kms/decrypt`: the data key inside a ciphertext blob, given its exact context.
pub async fn decrypt(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (body, _) = state
        .admin_request(&req, payload, Action::Decrypt, &[])
        .await?;
    let input: DecryptBody = parse_json(&body)?;
    let blob = STANDARD
        .decode(input.ciphertext_blob.trim())
        .map_err(|_| ApiError::invalid("ciphertext_blob is not base64"))?;
    if blob.is_empty() {
        return Err(ApiError::invalid("ciphertext_blob is empty"));
    }
    let context = encryption_context(input.encryption_context)?;
    let backend = state.service.running_backend()?;
    let data_key = kms_core::ops::decrypt(backend.as_ref(), &blob, &context).await?;
    note_key_id(&req, &data_key.key_id);
    Ok(HttpResponse::Ok().json(json!({
        "key_id": data_key.key_id.as_str(),
        "plaintext": STANDARD.encode(data_key.plaintext.expose()),
    })))
}
