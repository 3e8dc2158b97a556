//! Routing of S3 requests: `/` and `/{bucket}` with their sub-resources.
//!
//! S3 paths are not normalised (object keys may contain `//`), so one catch-all handler splits
//! the raw path itself.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::Md5;
use s3_bucket_encryption::{xml, BucketName, ConfigError, EncryptionConfig};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::encryption::{delete_encryption, existing_bucket, get_encryption, put_encryption};
use super::{S3Error, S3ErrorKind};
use crate::auth::Action;
use crate::buckets::BucketStoreError;
use crate::request::{read_body, ADMIN_BODY_LIMIT};
use crate::sigv4::{decode_chunked, parse_query, percent_decode, Payload, SigningService};
use crate::AppState;

/// Sub-resources this server does not implement; a request naming one gets `NotImplemented`
/// rather than being mistaken for a plain bucket operation.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "intelligent-tiering",
    "inventory",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "tagging",
    "uploads",
    "versioning",
    "versions",
    "website",
    "delete",
];

struct S3Request {
    req: HttpRequest,
    resource: String,
    access_key: String,
    body: web::Bytes,
    trailers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl S3Request {
    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    fn require(&self, state: &AppState, action: Action) -> Result<(), S3Error> {
        if state.allows(&self.access_key, action) {
            return Ok(());
        }
        Err(S3Error::new(
            S3ErrorKind::AccessDenied,
            format!("the caller is not allowed to perform {}", action.name()),
            self.resource.clone(),
        ))
    }

    fn error(&self, kind: S3ErrorKind, message: impl Into<String>) -> S3Error {
        S3Error::new(kind, message, self.resource.clone())
    }
}

/// Serves every S3 request.
pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, S3Error> {
    let resource = percent_decode(req.uri().path());
    let body = read_body(&req, payload, ADMIN_BODY_LIMIT)
        .await
        .map_err(|e| S3Error::from_body(e, &resource))?;
    let verified = state
        .authenticate(&req, &body, SigningService::S3)
        .map_err(|e| S3Error::from_auth(e, &resource))?;
    let (body, trailers) = match verified.payload {
        Payload::Plain => (body, Vec::new()),
        Payload::Chunked(verifier) => {
            let decoded =
                decode_chunked(&body, verifier).map_err(|e| S3Error::from_auth(e, &resource))?;
            (web::Bytes::from(decoded.data), decoded.trailers)
        }
    };
    let query = parse_query(req.query_string()).unwrap_or_default();
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) => (
            percent_decode(bucket),
            Some(key.to_owned()).filter(|k| !k.is_empty()),
        ),
        None => (percent_decode(&path), None),
    };
    let request = S3Request {
        req,
        resource,
        access_key: verified.access_key,
        body,
        trailers,
        query,
    };
    let method = request.req.method().clone();

    if bucket.is_empty() {
        return match method {
            Method::GET => list_buckets(&state, &request),
            _ => Err(request.error(
                S3ErrorKind::MethodNotAllowed,
                "the service supports GET only",
            )),
        };
    }
    if key.is_some() {
        // FIXME: objects encrypted at rest (API.md §10, issue 8) are not built yet.
        return Err(request.error(
            S3ErrorKind::NotImplemented,
            "object operations are not available in this release",
        ));
    }
    if request.has("encryption") {
        return match method {
            Method::PUT => put_bucket_encryption(&state, &request, &bucket).await,
            Method::GET => get_bucket_encryption(&state, &request, &bucket),
            Method::DELETE => delete_bucket_encryption(&state, &request, &bucket).await,
            _ => Err(request.error(
                S3ErrorKind::MethodNotAllowed,
                "encryption supports GET, PUT and DELETE",
            )),
        };
    }
    if method == Method::GET && request.has("location") {
        request.require(&state, Action::ListBucket)?;
        existing_bucket(&state, &bucket)?;
        return Ok(xml_response(xml::location(&state.region)));
    }
    if let Some((name, _)) = request
        .query
        .iter()
        .find(|(k, _)| UNSUPPORTED_SUBRESOURCES.contains(&k.as_str()))
    {
        return Err(request.error(
            S3ErrorKind::NotImplemented,
            format!("the '{name}' sub-resource is not supported"),
        ));
    }
    match method {
        Method::PUT => create_bucket(&state, &request, &bucket).await,
        Method::HEAD => {
            request.require(&state, Action::ListBucket)?;
            existing_bucket(&state, &bucket)?;
            Ok(HttpResponse::Ok().finish())
        }
        Method::DELETE => delete_bucket(&state, &request, &bucket).await,
        Method::GET => {
            request.require(&state, Action::ListBucket)?;
            let record = existing_bucket(&state, &bucket)?;
            let prefix = request
                .query
                .iter()
                .find(|(k, _)| k == "prefix")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            Ok(xml_response(xml::empty_object_listing(
                record.name.as_str(),
                prefix,
                1000,
            )))
        }
        _ => Err(request.error(
            S3ErrorKind::MethodNotAllowed,
            "the method is not allowed on a bucket",
        )),
    }
}

fn xml_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/xml")
        .body(body)
}

fn list_buckets(state: &AppState, request: &S3Request) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::ListAllMyBuckets)?;
    let buckets = state.buckets.list();
    Ok(xml_response(xml::list_buckets(
        &state.owner_id(),
        &request.access_key,
        &buckets,
    )))
}

async fn create_bucket(
    state: &AppState,
    request: &S3Request,
    name: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::CreateBucket)?;
    let bucket = BucketName::parse(name)
        .map_err(|why| request.error(S3ErrorKind::InvalidBucketName, why))?;
    match state.buckets.create(bucket).await {
        Ok(_) => {
            tracing::info!(target: "kms_audit", event = "bucket.created", bucket = %name);
            Ok(HttpResponse::Ok()
                .insert_header(("Location", format!("/{name}")))
                .finish())
        }
        Err(BucketStoreError::AlreadyExists) => Err(request.error(
            S3ErrorKind::BucketAlreadyOwnedByYou,
            "you already own this bucket",
        )),
        Err(e) => {
            tracing::error!(error = ?e, "creating a bucket failed");
            Err(request.error(S3ErrorKind::InternalError, "internal error"))
        }
    }
}

async fn delete_bucket(
    state: &AppState,
    request: &S3Request,
    name: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::DeleteBucket)?;
    let record = existing_bucket(state, name)?;
    match state.buckets.delete(&record.name).await {
        Ok(()) => {
            tracing::info!(target: "kms_audit", event = "bucket.deleted", bucket = %name);
            Ok(HttpResponse::NoContent().finish())
        }
        Err(BucketStoreError::NotFound) => {
            Err(request.error(S3ErrorKind::NoSuchBucket, "the bucket does not exist"))
        }
        Err(e) => {
            tracing::error!(error = ?e, "deleting a bucket failed");
            Err(request.error(S3ErrorKind::InternalError, "internal error"))
        }
    }
}

async fn put_bucket_encryption(
    state: &AppState,
    request: &S3Request,
    name: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::PutEncryptionConfiguration)?;
    existing_bucket(state, name)?;
    check_integrity(request)?;
    let config = EncryptionConfig::from_xml(&request.body).map_err(|e| match e {
        ConfigError::Malformed(why) => request.error(
            S3ErrorKind::MalformedXml,
            format!("the XML is not a valid encryption configuration: {why}"),
        ),
        ConfigError::InvalidArgument(why) => request.error(S3ErrorKind::InvalidArgument, why),
        ConfigError::NoSuchKey(why) => request.error(S3ErrorKind::KmsKeyNotFound, why),
    })?;
    put_encryption(state, name, config).await?;
    Ok(HttpResponse::Ok().finish())
}

fn get_bucket_encryption(
    state: &AppState,
    request: &S3Request,
    name: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::GetEncryptionConfiguration)?;
    Ok(xml_response(get_encryption(state, name)?.to_xml()))
}

async fn delete_bucket_encryption(
    state: &AppState,
    request: &S3Request,
    name: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::PutEncryptionConfiguration)?;
    delete_encryption(state, name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Checks `Content-MD5` and every `x-amz-checksum-*` given (as a header or a trailer) against the
/// body. At least one is required, as S3 requires for PutBucketEncryption.
fn check_integrity(request: &S3Request) -> Result<(), S3Error> {
    let mut given: Vec<(String, String)> = request
        .req
        .headers()
        .iter()
        .filter(|(name, _)| {
            name.as_str() == "content-md5" || name.as_str().starts_with("x-amz-checksum-")
        })
        .filter(|(name, _)| name.as_str() != "x-amz-checksum-type")
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).trim().to_owned(),
            )
        })
        .collect();
    given.extend(
        request
            .trailers
            .iter()
            .filter(|(n, _)| n.starts_with("x-amz-checksum-"))
            .cloned(),
    );
    if given.is_empty() {
        return Err(request.error(
            S3ErrorKind::InvalidRequest,
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
        ));
    }
    for (name, value) in given {
        let body = &request.body;
        let actual = match name.as_str() {
            "content-md5" => Md5::digest(body).to_vec(),
            "x-amz-checksum-crc32" => crc32fast::hash(body).to_be_bytes().to_vec(),
            "x-amz-checksum-crc32c" => crc32c::crc32c(body).to_be_bytes().to_vec(),
            "x-amz-checksum-crc64nvme" => {
                let mut digest = crc64fast_nvme::Digest::new();
                digest.write(body);
                digest.sum64().to_be_bytes().to_vec()
            }
            "x-amz-checksum-sha1" => Sha1::digest(body).to_vec(),
            "x-amz-checksum-sha256" => Sha256::digest(body).to_vec(),
            other => {
                return Err(request.error(
                    S3ErrorKind::InvalidRequest,
                    format!("unsupported checksum header {other}"),
                ))
            }
        };
        if STANDARD.decode(&value).ok().as_deref() != Some(&actual[..]) {
            return Err(request.error(
                S3ErrorKind::BadDigest,
                format!("the {name} you specified did not match what was received"),
            ));
        }
    }
    Ok(())
}
