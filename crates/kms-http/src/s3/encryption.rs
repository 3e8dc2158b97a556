//! Bucket default encryption, shared by the S3 API and its JSON mirrors for web consoles.

use std::sync::Arc;

use kms_core::Backend;
use s3_bucket_encryption::{BucketName, BucketRecord, EncryptionConfig, SseAlgorithm};

use super::{sse, S3Error, S3ErrorKind};
use crate::buckets::BucketStoreError;
use crate::AppState;

fn resource(name: &str) -> String {
    format!("/{name}")
}

/// The record of an existing bucket; `InvalidBucketName` or `NoSuchBucket` otherwise.
pub fn existing_bucket(state: &AppState, name: &str) -> Result<BucketRecord, S3Error> {
    let bucket = BucketName::parse(name)
        .map_err(|why| S3Error::new(S3ErrorKind::InvalidBucketName, why, resource(name)))?;
    state
        .buckets
        .get(&bucket)
        .ok_or_else(|| no_such_bucket(name))
}

fn no_such_bucket(name: &str) -> S3Error {
    S3Error::new(
        S3ErrorKind::NoSuchBucket,
        "the bucket does not exist",
        resource(name),
    )
}

/// The running KMS backend, when it answers; 503 `ServiceUnavailable` otherwise.
pub async fn service_ready(state: &AppState, name: &str) -> Result<Arc<dyn Backend>, S3Error> {
    let backend = sse::backend(state, &resource(name))?;
    if !state.service.healthy().await {
        return Err(S3Error::new(
            S3ErrorKind::ServiceUnavailable,
            "the KMS is not available; retry later",
            resource(name),
        ));
    }
    Ok(backend)
}

/// Validates a configuration against the KMS and stores it. With `aws:kms`, the key must exist
/// and be enabled; when none is named, the default key is filled in. Returns what was stored.
pub async fn put_encryption(
    state: &AppState,
    name: &str,
    mut config: EncryptionConfig,
) -> Result<EncryptionConfig, S3Error> {
    let record = existing_bucket(state, name)?;
    let backend = service_ready(state, name).await?;
    if config.algorithm == SseAlgorithm::AwsKms {
        let key_id = match config.kms_master_key_id.clone() {
            Some(id) => id,
            None => state.default_key_id().map_err(|_| {
                S3Error::new(
                    S3ErrorKind::ServiceUnavailable,
                    "the KMS is not configured",
                    resource(name),
                )
            })?,
        };
        let meta = backend
            .describe_key(&key_id)
            .await
            .map_err(|e| sse::kms_error(e, &resource(name)))?;
        if !meta.enabled() {
            return Err(S3Error::new(
                S3ErrorKind::KmsInvalidState,
                format!("KMS key '{key_id}' is {}", meta.key_state),
                resource(name),
            ));
        }
        config.kms_master_key_id = Some(key_id);
    }
    store(state, &record.name, Some(config.clone())).await?;
    tracing::info!(target: "kms_audit", event = "bucket.encryption_set", bucket = %name,
        algorithm = config.algorithm.as_str(),
        key_id = config.kms_master_key_id.as_ref().map(|k| k.as_str()).unwrap_or(""));
    Ok(config)
}

/// The bucket's configuration; 404 `ServerSideEncryptionConfigurationNotFoundError` when none.
pub fn get_encryption(state: &AppState, name: &str) -> Result<EncryptionConfig, S3Error> {
    existing_bucket(state, name)?.encryption.ok_or_else(|| {
        S3Error::new(
            S3ErrorKind::EncryptionConfigurationNotFound,
            "the server side encryption configuration was not found",
            resource(name),
        )
    })
}

/// Removes the bucket's configuration; succeeds when there is none.
pub async fn delete_encryption(state: &AppState, name: &str) -> Result<(), S3Error> {
    let record = existing_bucket(state, name)?;
    if record.encryption.is_some() {
        store(state, &record.name, None).await?;
        tracing::info!(target: "kms_audit", event = "bucket.encryption_deleted", bucket = %name);
    }
    Ok(())
}

async fn store(
    state: &AppState,
    name: &BucketName,
    config: Option<EncryptionConfig>,
) -> Result<(), S3Error> {
    state
        .buckets
        .set_encryption(name, config)
        .await
        .map_err(|e| match e {
            BucketStoreError::NotFound => no_such_bucket(name.as_str()),
            other => {
                tracing::error!(error = ?other, "writing a bucket record failed");
                S3Error::new(
                    S3ErrorKind::InternalError,
                    "internal error",
                    resource(name.as_str()),
                )
            }
        })
}
