//! JSON mirrors of the S3 bucket-encryption calls, for web consoles that speak only the admin
//! API. Same rules and error codes as the S3 calls; answers are JSON.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::SecondsFormat;
use s3_bucket_encryption::{ConfigError, EncryptionConfig};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Action;
use crate::error::ApiError;
use crate::request::parse_json;
use crate::s3::{self, S3Error, S3ErrorKind};
use crate::AppState;

fn config_json(config: &EncryptionConfig) -> Value {
    let mut default = json!({ "SSEAlgorithm": config.algorithm.as_str() });
    if let Some(key_id) = &config.kms_master_key_id {
        default["KMSMasterKeyID"] = json!(key_id.as_str());
    }
    let mut rule = json!({ "ApplyServerSideEncryptionByDefault": default });
    if let Some(enabled) = config.bucket_key_enabled {
        rule["BucketKeyEnabled"] = json!(enabled);
    }
    json!({ "Rules": [rule] })
}

fn bucket_name(req: &HttpRequest) -> String {
    req.match_info()
        .get("bucket")
        .unwrap_or_default()
        .to_owned()
}

/// `GET /api/v1/buckets`: every bucket with its encryption summary.
pub async fn list(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin_request(&req, payload, Action::ListAllMyBuckets, &[])
        .await?;
    let buckets: Vec<Value> = state
        .buckets
        .list()
        .iter()
        .map(|b| {
            let encryption = b.encryption.as_ref().map(|e| {
                json!({
                    "SSEAlgorithm": e.algorithm.as_str(),
                    "KMSMasterKeyID": e.kms_master_key_id.as_ref().map(|k| k.as_str()),
                })
            });
            json!({
                "Name": b.name.as_str(),
                "CreationDate": b.creation_date.to_rfc3339_opts(SecondsFormat::Millis, true),
                "encryption": encryption,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "Buckets": buckets,
        "Owner": { "ID": state.owner_id(), "DisplayName": state.root_access_key() },
    })))
}

/// `GET /api/v1/bucket-encryption/{bucket}`.
pub async fn get_encryption(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin_request(&req, payload, Action::GetEncryptionConfiguration, &[])
        .await?;
    let config = s3::get_encryption(&state, &bucket_name(&req)).map_err(ApiError::Bucket)?;
    Ok(HttpResponse::Ok()
        .json(json!({ "ServerSideEncryptionConfiguration": config_json(&config) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(non_snake_case, reason = "the S3 JSON spelling")]
struct PutBody {
    ServerSideEncryptionConfiguration: Option<RulesJson>,
    Rules: Option<Vec<RuleJson>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(non_snake_case, reason = "the S3 JSON spelling")]
struct RulesJson {
    Rules: Vec<RuleJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(non_snake_case, reason = "the S3 JSON spelling")]
struct RuleJson {
    ApplyServerSideEncryptionByDefault: Option<DefaultJson>,
    BucketKeyEnabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(non_snake_case, reason = "the S3 JSON spelling")]
struct DefaultJson {
    SSEAlgorithm: String,
    KMSMasterKeyID: Option<String>,
}

/// `PUT /api/v1/bucket-encryption/{bucket}`: `{ServerSideEncryptionConfiguration: {Rules}}` or a
/// bare `{Rules}`.
pub async fn put_encryption(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = state
        .admin_request(&req, payload, Action::PutEncryptionConfiguration, &[])
        .await?
        .0;
    let name = bucket_name(&req);
    let input: PutBody = parse_json(&body)?;
    let resource = format!("/{name}");
    let malformed = |why: &str| {
        ApiError::Bucket(S3Error::new(
            S3ErrorKind::MalformedXml,
            why,
            resource.clone(),
        ))
    };
    let rules = match (input.ServerSideEncryptionConfiguration, input.Rules) {
        (Some(config), None) => config.Rules,
        (None, Some(rules)) => rules,
        _ => {
            return Err(malformed(
                "give ServerSideEncryptionConfiguration or Rules, exactly one",
            ))
        }
    };
    let [rule] = <[RuleJson; 1]>::try_from(rules)
        .map_err(|_| malformed("the configuration must have exactly one rule"))?;
    let default = rule
        .ApplyServerSideEncryptionByDefault
        .ok_or_else(|| malformed("the rule must have ApplyServerSideEncryptionByDefault"))?;
    let config = EncryptionConfig::new(
        &default.SSEAlgorithm,
        default.KMSMasterKeyID.as_deref(),
        rule.BucketKeyEnabled,
    )
    .map_err(|e| match e {
        ConfigError::Malformed(why) => malformed(&why),
        ConfigError::InvalidArgument(why) => ApiError::Bucket(S3Error::new(
            S3ErrorKind::InvalidArgument,
            why,
            resource.clone(),
        )),
        ConfigError::NoSuchKey(why) => ApiError::Bucket(S3Error::new(
            S3ErrorKind::KmsKeyNotFound,
            why,
            resource.clone(),
        )),
    })?;
    s3::put_encryption(&state, &name, config)
        .await
        .map_err(ApiError::Bucket)?;
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

/// `DELETE /api/v1/bucket-encryption/{bucket}`.
pub async fn delete_encryption(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin_request(&req, payload, Action::PutEncryptionConfiguration, &[])
        .await?;
    s3::delete_encryption(&state, &bucket_name(&req))
        .await
        .map_err(ApiError::Bucket)?;
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}
