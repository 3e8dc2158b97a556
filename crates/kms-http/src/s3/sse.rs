//! Server-side encryption of objects: which encryption a request asks for (its headers, else
//! the bucket default), the object key that encryption yields, and the headers that report it.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use actix_web::HttpResponseBuilder;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kms_core::{ops, Backend, EncryptionContext, Error, KeyId, KeySpec, SecretBytes};
use md5::{Digest, Md5};
use s3_bucket_encryption::{BucketRecord, SseAlgorithm};
use s3_object_store::Encryption;

use super::{S3Error, S3ErrorKind};
use crate::AppState;

const SSE: &str = "x-amz-server-side-encryption";
const SSE_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";
const SSE_CONTEXT: &str = "x-amz-server-side-encryption-context";
const SSE_BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";
/// The prefix of the SSE-C headers of the object written or read.
pub const CUSTOMER: &str = "x-amz-server-side-encryption-customer-";
/// The prefix of the SSE-C headers of a copy's source.
pub const COPY_SOURCE_CUSTOMER: &str = "x-amz-copy-source-server-side-encryption-customer-";
/// The encryption context entry every object's data key is bound to.
const ARN_CONTEXT: &str = "aws:s3:arn";

/// A key sent by the client for SSE-C (its MD5 checked).
pub struct CustomerKey {
    key: SecretBytes,
}

/// The encryption a request asks for.
pub enum SseRequest {
    /// No encryption header: the bucket default applies.
    Unspecified,
    /// `AES256`: SSE-S3, under the default KMS key.
    S3,
    /// `aws:kms`, with the key named (else the default key) and the caller's context.
    Kms {
        /// The key id as given (bare or ARN).
        key_id: Option<String>,
        /// The caller's encryption context.
        context: BTreeMap<String, String>,
        /// `x-amz-server-side-encryption-bucket-key-enabled`.
        bucket_key_enabled: Option<bool>,
    },
    /// SSE-C.
    Customer(CustomerKey),
}

impl SseRequest {
    /// Whether the request names any encryption.
    pub fn is_specified(&self) -> bool {
        !matches!(self, Self::Unspecified)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Reads the encryption headers of a write (PutObject, CopyObject, CreateMultipartUpload).
pub fn parse_request(headers: &HeaderMap, resource: &str) -> Result<SseRequest, S3Error> {
    let invalid = |message: &str| S3Error::new(S3ErrorKind::InvalidArgument, message, resource);
    let customer = parse_customer(headers, CUSTOMER, resource)?;
    let algorithm = header(headers, SSE);
    let key_id = header(headers, SSE_KEY_ID);
    let context = header(headers, SSE_CONTEXT);
    let bucket_key = match header(headers, SSE_BUCKET_KEY) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => return Err(invalid("the bucket key header must be true or false")),
    };
    if let Some(customer) = customer {
        if algorithm.is_some() || key_id.is_some() || context.is_some() {
            return Err(invalid(
                "SSE-C cannot be combined with x-amz-server-side-encryption",
            ));
        }
        return Ok(SseRequest::Customer(customer));
    }
    match algorithm {
        None if key_id.is_some() || context.is_some() => Err(invalid(
            "a KMS key id or context needs x-amz-server-side-encryption: aws:kms",
        )),
        None => Ok(SseRequest::Unspecified),
        Some("AES256") if key_id.is_some() || context.is_some() => Err(invalid(
            "a KMS key id or context is not allowed with AES256",
        )),
        Some("AES256") => Ok(SseRequest::S3),
        Some("aws:kms") => Ok(SseRequest::Kms {
            key_id: key_id.map(str::to_owned),
            context: context
                .map(|c| parse_context(c, resource))
                .transpose()?
                .unwrap_or_default(),
            bucket_key_enabled: bucket_key,
        }),
        Some(_) => Err(invalid(
            "x-amz-server-side-encryption must be AES256 or aws:kms",
        )),
    }
}

/// Reads the SSE-C headers with this prefix; all three or none.
pub fn parse_customer(
    headers: &HeaderMap,
    prefix: &str,
    resource: &str,
) -> Result<Option<CustomerKey>, S3Error> {
    let invalid = |message: &str| S3Error::new(S3ErrorKind::InvalidArgument, message, resource);
    let algorithm = header(headers, &format!("{prefix}algorithm"));
    let key = header(headers, &format!("{prefix}key"));
    let key_md5 = header(headers, &format!("{prefix}key-md5"));
    let (algorithm, key, key_md5) = match (algorithm, key, key_md5) {
        (None, None, None) => return Ok(None),
        (Some(a), Some(k), Some(m)) => (a, k, m),
        _ => {
            return Err(invalid(
                "SSE-C needs the algorithm, the key and the key MD5 headers together",
            ))
        }
    };
    if algorithm != "AES256" {
        return Err(invalid("the SSE-C algorithm must be AES256"));
    }
    let key = STANDARD
        .decode(key)
        .ok()
        .filter(|k| k.len() == 32)
        .map(SecretBytes::new)
        .ok_or_else(|| invalid("the SSE-C key must be 256 bits, base64"))?;
    if STANDARD.encode(Md5::digest(key.expose())) != key_md5 {
        return Err(invalid("the SSE-C key MD5 does not match the key"));
    }
    Ok(Some(CustomerKey { key }))
}

fn parse_context(text: &str, resource: &str) -> Result<BTreeMap<String, String>, S3Error> {
    let invalid = |message: &str| S3Error::new(S3ErrorKind::InvalidArgument, message, resource);
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| invalid("the encryption context is not base64"))?;
    let pairs: BTreeMap<String, String> = serde_json::from_slice(&bytes)
        .map_err(|_| invalid("the encryption context must be a JSON object of strings"))?;
    if pairs.keys().any(|k| k.starts_with("aws:")) {
        return Err(invalid(
            "encryption context keys starting with aws: are reserved",
        ));
    }
    Ok(pairs)
}

/// The KMS backend when the service runs; 503 `ServiceUnavailable` otherwise.
pub fn backend(state: &AppState, resource: &str) -> Result<Arc<dyn Backend>, S3Error> {
    state.service.running_backend().map_err(|_| {
        S3Error::new(
            S3ErrorKind::ServiceUnavailable,
            "the KMS is not available; retry later",
            resource,
        )
    })
}

/// The S3 error for a KMS failure on the S3 API: writing or reading an object, or checking the
/// key of a bucket default encryption.
pub fn kms_error(error: Error, resource: &str) -> S3Error {
    let (kind, message) = match &error {
        Error::KeyNotFound { key_id } => (
            S3ErrorKind::KmsKeyNotFound,
            format!("KMS key '{key_id}' does not exist"),
        ),
        Error::InvalidKeyState { key_id, state, .. } => (
            S3ErrorKind::KmsInvalidState,
            format!("KMS key '{key_id}' is {state}"),
        ),
        Error::InvalidRequest { reason } => (S3ErrorKind::InvalidArgument, reason.clone()),
        Error::BackendUnavailable { .. } => (
            S3ErrorKind::ServiceUnavailable,
            "the KMS backend is unavailable; retry later".to_owned(),
        ),
        other => {
            tracing::error!(error = %other, "a KMS operation for the S3 API failed");
            (S3ErrorKind::InternalError, "internal error".to_owned())
        }
    };
    S3Error::new(kind, message, resource)
}

/// The encryption context of an object's data key: its ARN plus the caller's pairs.
fn context_of(
    bucket: &str,
    key: &str,
    pairs: &BTreeMap<String, String>,
    resource: &str,
) -> Result<EncryptionContext, S3Error> {
    let mut all = pairs.clone();
    all.insert(
        ARN_CONTEXT.to_owned(),
        format!("arn:aws:s3:::{bucket}/{key}"),
    );
    EncryptionContext::new(all).map_err(|e| kms_error(e, resource))
}

/// A new object's encryption record and the key its data is sealed with.
pub struct Sealing {
    /// What the object's record stores.
    pub encryption: Encryption,
    /// The object key; `None` for an unencrypted object.
    pub object_key: Option<SecretBytes>,
}

/// Decides a new object's encryption (the request's, else the bucket default) and makes its
/// key: a fresh data key from the KMS, or the customer's key. Nothing is stored here, so a
/// refused key (missing, disabled) leaves no trace.
pub async fn seal_new(
    state: &AppState,
    bucket: &BucketRecord,
    key: &str,
    request: SseRequest,
    resource: &str,
) -> Result<Sealing, S3Error> {
    let request = match request {
        SseRequest::Unspecified => match &bucket.encryption {
            None => {
                return Ok(Sealing {
                    encryption: Encryption::None,
                    object_key: None,
                })
            }
            Some(config) if config.algorithm == SseAlgorithm::Aes256 => SseRequest::S3,
            Some(config) => SseRequest::Kms {
                key_id: config.kms_master_key_id.as_ref().map(|k| k.to_string()),
                context: BTreeMap::new(),
                bucket_key_enabled: config.bucket_key_enabled,
            },
        },
        other => other,
    };
    let (algorithm, key_id, pairs, bucket_key_enabled) = match request {
        SseRequest::Customer(customer) => {
            return Ok(Sealing {
                encryption: Encryption::customer(&customer.key),
                object_key: Some(customer.key),
            })
        }
        SseRequest::Unspecified | SseRequest::S3 => ("AES256", None, BTreeMap::new(), false),
        SseRequest::Kms {
            key_id,
            context,
            bucket_key_enabled,
        } => (
            "aws:kms",
            key_id,
            context,
            bucket_key_enabled.unwrap_or(false),
        ),
    };
    let key_id = match key_id {
        Some(text) => parse_key_id(&text, resource)?,
        None => state.default_key_id().map_err(|_| {
            S3Error::new(
                S3ErrorKind::ServiceUnavailable,
                "the KMS is not configured",
                resource,
            )
        })?,
    };
    let backend = backend(state, resource)?;
    let context = context_of(bucket.name.as_str(), key, &pairs, resource)?;
    let data_key = ops::generate_data_key(backend.as_ref(), &key_id, KeySpec::Aes256, &context)
        .await
        .map_err(|e| kms_error(e, resource))?;
    Ok(Sealing {
        encryption: Encryption::Kms {
            algorithm: algorithm.to_owned(),
            key_id: data_key.key_id.to_string(),
            wrapped_key: hex::encode(&data_key.ciphertext_blob),
            context: pairs,
            bucket_key_enabled,
        },
        object_key: Some(data_key.plaintext),
    })
}

/// A KMS key id as S3 accepts it: bare, or the ARN `arn:…:key/<id>`.
fn parse_key_id(text: &str, resource: &str) -> Result<KeyId, S3Error> {
    let bare = match text.strip_prefix("arn:") {
        Some(rest) => rest.rsplit_once(":key/").map_or(text, |(_, id)| id),
        None => text,
    };
    KeyId::parse(bare).map_err(|_| {
        S3Error::new(
            S3ErrorKind::KmsKeyNotFound,
            format!("KMS key '{}' does not exist", bare.escape_debug()),
            resource,
        )
    })
}

/// Checks the SSE-C headers of a read against an object's encryption, without the KMS: an
/// SSE-C object needs its key (400 without, 403 for another), other objects take none.
pub fn check_customer(
    encryption: &Encryption,
    customer: Option<&CustomerKey>,
    resource: &str,
) -> Result<(), S3Error> {
    match (encryption, customer) {
        (Encryption::Customer { .. }, None) => Err(S3Error::new(
            S3ErrorKind::InvalidRequest,
            "the object was stored with SSE-C; the request must give its key",
            resource,
        )),
        (Encryption::Customer { .. }, Some(c)) if !encryption.customer_key_matches(&c.key) => {
            Err(S3Error::new(
                S3ErrorKind::AccessDenied,
                "the SSE-C key does not match the object's key",
                resource,
            ))
        }
        (Encryption::Customer { .. }, Some(_)) => Ok(()),
        (_, Some(_)) => Err(S3Error::new(
            S3ErrorKind::InvalidRequest,
            "the object is not encrypted with SSE-C; the request must not give a key",
            resource,
        )),
        (_, None) => Ok(()),
    }
}

/// The key an existing object's data is sealed with: unwrapped once by the KMS, or the
/// customer's key (checked). `None` for an unencrypted object.
pub async fn open_existing(
    state: &AppState,
    bucket: &str,
    key: &str,
    encryption: &Encryption,
    customer: Option<CustomerKey>,
    resource: &str,
) -> Result<Option<SecretBytes>, S3Error> {
    check_customer(encryption, customer.as_ref(), resource)?;
    match encryption {
        Encryption::None => Ok(None),
        Encryption::Customer { .. } => Ok(customer.map(|c| c.key)),
        Encryption::Kms {
            wrapped_key,
            context,
            ..
        } => {
            let blob = hex::decode(wrapped_key).map_err(|_| {
                S3Error::new(S3ErrorKind::InternalError, "internal error", resource)
            })?;
            let backend = backend(state, resource)?;
            let context = context_of(bucket, key, context, resource)?;
            let opened = ops::decrypt(backend.as_ref(), &blob, &context)
                .await
                .map_err(|e| kms_error(e, resource))?;
            Ok(Some(opened.plaintext))
        }
    }
}

/// Adds the headers that report an object's encryption. For SSE-C the key's MD5 is echoed from
/// the request (checked against the key when it was parsed), since the server keeps no MD5.
pub fn report(encryption: &Encryption, request: &HeaderMap, response: &mut HttpResponseBuilder) {
    match encryption {
        Encryption::None => {}
        Encryption::Kms {
            algorithm,
            key_id,
            context,
            bucket_key_enabled,
            ..
        } => {
            response.insert_header((SSE, algorithm.as_str()));
            if algorithm == "aws:kms" {
                response.insert_header((SSE_KEY_ID, key_id.as_str()));
                if *bucket_key_enabled {
                    response.insert_header((SSE_BUCKET_KEY, "true"));
                }
                if !context.is_empty() {
                    let json = serde_json::to_vec(context).unwrap_or_default();
                    response.insert_header((SSE_CONTEXT, STANDARD.encode(json)));
                }
            }
        }
        Encryption::Customer { .. } => {
            response.insert_header((format!("{CUSTOMER}algorithm"), "AES256"));
            if let Some(md5) = request.get(format!("{CUSTOMER}key-md5")) {
                response.insert_header((format!("{CUSTOMER}key-MD5"), md5.clone()));
            }
        }
    }
}
