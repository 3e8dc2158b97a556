//! Routing of S3 requests: `/` and `/{bucket}` with their sub-resources.
//!
//! S3 paths are not normalised (object keys may contain `//`), so one catch-all handler splits
//! the raw path itself.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use s3_bucket_encryption::{xml, BucketName, ConfigError, EncryptionConfig};

use super::body::{BodyStream, Checksums};
use super::encryption::{delete_encryption, existing_bucket, get_encryption, put_encryption};
use super::objects::MAX_OBJECT_SIZE;
use super::{multipart, objects, S3Error, S3ErrorKind};
use crate::auth::Action;
use crate::buckets::BucketStoreError;
use crate::request::{read_body, ADMIN_BODY_LIMIT};
use crate::sigv4::{
    decode_chunked, parse_query, percent_decode, AuthError, Payload, SigningService,
};
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
    "torrent",
    "retention",
    "legal-hold",
    "restore",
    "select",
    "attributes",
    "versioning",
    "versions",
    "website",
];

/// An S3 request, authenticated, with its buffered body (empty for streamed object bodies).
pub struct S3Request {
    /// The request.
    pub req: HttpRequest,
    /// The decoded path, for error documents.
    pub resource: String,
    /// Who signed it.
    pub access_key: String,
    /// The body, when it was read whole.
    pub body: web::Bytes,
    /// Trailing headers of an `aws-chunked` body read whole.
    pub trailers: Vec<(String, String)>,
    /// The query parameters.
    pub query: Vec<(String, String)>,
}

impl S3Request {
    /// Whether the query names this parameter.
    pub fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    /// 403 `AccessDenied` unless the caller may perform `action`.
    pub fn require(&self, state: &AppState, action: Action) -> Result<(), S3Error> {
        if state.allows(&self.access_key, action) {
            return Ok(());
        }
        Err(S3Error::new(
            S3ErrorKind::AccessDenied,
            format!("the caller is not allowed to perform {}", action.name()),
            self.resource.clone(),
        ))
    }

    /// An error about this request's resource.
    pub fn error(&self, kind: S3ErrorKind, message: impl Into<String>) -> S3Error {
        S3Error::new(kind, message, self.resource.clone())
    }
}

/// Reads a body whole (at most 1 MiB) and authenticates the request with it.
async fn read_whole(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    resource: &str,
) -> Result<(String, web::Bytes, Vec<(String, String)>), S3Error> {
    let body = read_body(req, payload, ADMIN_BODY_LIMIT)
        .await
        .map_err(|e| S3Error::from_body(e, resource))?;
    let verified = state
        .authenticate(req, &body, SigningService::S3)
        .map_err(|e| S3Error::from_auth(e, resource))?;
    let (body, trailers) = match verified.payload {
        Payload::Chunked(verifier) => {
            let decoded =
                decode_chunked(&body, verifier).map_err(|e| S3Error::from_auth(e, resource))?;
            (web::Bytes::from(decoded.data), decoded.trailers)
        }
        _ => (body, Vec::new()),
    };
    Ok((verified.access_key, body, trailers))
}

/// Authenticates an object write whose body is streamed. A request that signs its body's hash
/// without declaring it (curl 7.x) cannot be verified before the body is read, so its body is
/// read whole instead, within the 1 MiB limit.
async fn open_stream(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    resource: &str,
) -> Result<(String, BodyStream), S3Error> {
    match state.authenticate_streamed(req, SigningService::S3) {
        Ok(verified) => {
            let stream = BodyStream::new(req, payload, verified.payload, MAX_OBJECT_SIZE)
                .map_err(|e| e.to_s3(resource))?;
            Ok((verified.access_key, stream))
        }
        Err(AuthError::NeedsBufferedBody) => {
            let (access_key, body, trailers) = read_whole(req, payload, state, resource).await?;
            Ok((access_key, BodyStream::buffered(req, body, trailers)))
        }
        Err(e) => Err(S3Error::from_auth(e, resource)),
    }
}

/// Serves every S3 request.
pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, S3Error> {
    let resource = percent_decode(req.uri().path());
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) => (
            percent_decode(bucket),
            Some(key.to_owned()).filter(|k| !k.is_empty()),
        ),
        None => (percent_decode(&path), None),
    };
    let method = req.method().clone();
    let streamed =
        method == Method::PUT && key.is_some() && !req.headers().contains_key("x-amz-copy-source");
    let (access_key, body, trailers, stream) = if streamed {
        let (access_key, stream) = open_stream(&req, payload, &state, &resource).await?;
        (access_key, web::Bytes::new(), Vec::new(), Some(stream))
    } else {
        let (access_key, body, trailers) = read_whole(&req, payload, &state, &resource).await?;
        (access_key, body, trailers, None)
    };
    let query = parse_query(req.query_string()).unwrap_or_default();
    let request = S3Request {
        req,
        resource,
        access_key,
        body,
        trailers,
        query,
    };

    if bucket.is_empty() {
        return match method {
            Method::GET => list_buckets(&state, &request),
            _ => Err(request.error(
                S3ErrorKind::MethodNotAllowed,
                "the service supports GET only",
            )),
        };
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
    if let Some(key) = key {
        return object_route(&state, &request, &bucket, &key, stream).await;
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
    match method {
        Method::PUT => create_bucket(&state, &request, &bucket).await,
        Method::HEAD => {
            request.require(&state, Action::ListBucket)?;
            existing_bucket(&state, &bucket)?;
            Ok(HttpResponse::Ok().finish())
        }
        Method::DELETE => delete_bucket(&state, &request, &bucket).await,
        Method::POST if request.has("delete") => {
            objects::delete_objects(&state, &request, &bucket).await
        }
        Method::GET if request.has("uploads") => {
            multipart::list_uploads(&state, &request, &bucket).await
        }
        Method::GET => {
            request.require(&state, Action::ListBucket)?;
            let record = existing_bucket(&state, &bucket)?;
            objects::list_objects(&state, &request, &record)
        }
        _ => Err(request.error(
            S3ErrorKind::MethodNotAllowed,
            "the method is not allowed on a bucket",
        )),
    }
}

/// The routes of `/{bucket}/{key}`.
async fn object_route(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    key: &str,
    stream: Option<BodyStream>,
) -> Result<HttpResponse, S3Error> {
    let upload = request.has("uploadId");
    match request.req.method().clone() {
        Method::PUT if upload || request.has("partNumber") => {
            multipart::upload_part(state, request, bucket, key, stream).await
        }
        Method::PUT => match stream {
            Some(stream) => objects::put_object(state, request, bucket, key, stream).await,
            None => objects::copy_object(state, request, bucket, key).await,
        },
        Method::GET if upload => multipart::list_parts(state, request, bucket, key).await,
        Method::GET => objects::get_object(state, request, bucket, key, false).await,
        Method::HEAD => objects::get_object(state, request, bucket, key, true).await,
        Method::DELETE if upload => multipart::abort(state, request, bucket, key).await,
        Method::DELETE => objects::delete_object(state, request, bucket, key).await,
        Method::POST if request.has("uploads") => {
            multipart::create(state, request, bucket, key).await
        }
        Method::POST if upload => multipart::complete(state, request, bucket, key).await,
        _ => Err(request.error(
            S3ErrorKind::MethodNotAllowed,
            "the method is not allowed on an object",
        )),
    }
}

/// A 200 answer carrying an XML document.
pub fn xml_response(body: String) -> HttpResponse {
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
    if !state.objects.is_empty(name) {
        return Err(request.error(
            S3ErrorKind::BucketNotEmpty,
            "the bucket you tried to delete is not empty",
        ));
    }
    match state.buckets.delete(&record.name).await {
        Ok(()) => {
            if let Err(e) = state.objects.forget_bucket(name).await {
                tracing::warn!(error = %e, "removing a deleted bucket's directory failed");
            }
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
    check_integrity(request, true)?;
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
/// whole body. When `required`, at least one must be given, as S3 requires for
/// PutBucketEncryption and DeleteObjects.
pub fn check_integrity(request: &S3Request, required: bool) -> Result<(), S3Error> {
    let resource = &request.resource;
    let mut checksums =
        Checksums::from_headers(request.req.headers()).map_err(|e| e.to_s3(resource))?;
    // The whole body is here, so a checksum trailer counts even when x-amz-trailer did not
    // announce it.
    for (name, _) in request
        .trailers
        .iter()
        .filter(|(n, _)| n.starts_with("x-amz-checksum-"))
    {
        checksums
            .expect_trailer(name)
            .map_err(|e| e.to_s3(resource))?;
    }
    if checksums.is_empty() && required {
        return Err(request.error(
            S3ErrorKind::InvalidRequest,
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
        ));
    }
    checksums.update(&request.body);
    checksums
        .verify(&request.trailers)
        .map_err(|e| e.to_s3(resource))?;
    Ok(())
}
