use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::request::BodyError;
use crate::sigv4::AuthError;

/// The S3 error codes the server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum S3ErrorKind {
    /// Not signed, or not allowed.
    AccessDenied,
    /// The signature does not match.
    SignatureDoesNotMatch,
    /// The access key is unknown.
    InvalidAccessKeyId,
    /// The request time is too far from the server's.
    RequestTimeTooSkewed,
    /// The authorization header is malformed or names another region.
    AuthorizationHeaderMalformed,
    /// The body does not match `x-amz-content-sha256`.
    ContentSha256Mismatch,
    /// The request is missing something or is otherwise wrong.
    InvalidRequest,
    /// A value is not allowed.
    InvalidArgument,
    /// The bucket name breaks the S3 rules.
    InvalidBucketName,
    /// No such bucket.
    NoSuchBucket,
    /// The bucket exists and is yours.
    BucketAlreadyOwnedByYou,
    /// The XML is not a valid document of its kind.
    MalformedXml,
    /// A checksum does not match the body.
    BadDigest,
    /// The KMS key named does not exist.
    KmsKeyNotFound,
    /// The KMS key is disabled or pending deletion.
    KmsInvalidState,
    /// The bucket has no default encryption.
    EncryptionConfigurationNotFound,
    /// The KMS is not running or its backend is down; retry later.
    ServiceUnavailable,
    /// The operation is not implemented.
    NotImplemented,
    /// The method is not allowed on this resource.
    MethodNotAllowed,
    /// The body is too large.
    EntityTooLarge,
    /// The body did not arrive in time.
    RequestTimeout,
    /// The body ended early or its encoding is broken.
    IncompleteBody,
    /// The request's headers are too large.
    RequestHeaderSectionTooLarge,
    /// The request's URI is too long.
    UriTooLong,
    /// No such object.
    NoSuchKey,
    /// No such multipart upload.
    NoSuchUpload,
    /// The bucket still holds objects.
    BucketNotEmpty,
    /// The Range cannot be satisfied.
    InvalidRange,
    /// `partNumber` names a part the object does not have.
    InvalidPartNumber,
    /// A precondition (`If-Match`, `If-Unmodified-Since`) failed.
    PreconditionFailed,
    /// `If-None-Match` or `If-Modified-Since` says the client's copy is current (no body).
    NotModified,
    /// A part other than the last is smaller than 5 MiB.
    EntityTooSmall,
    /// A part named in CompleteMultipartUpload does not exist or has another ETag.
    InvalidPart,
    /// The parts of CompleteMultipartUpload are not in ascending order.
    InvalidPartOrder,
    /// The object key is longer than 1024 bytes.
    KeyTooLong,
    /// User metadata (`x-amz-meta-*`) over 2 KB.
    MetadataTooLarge,
    /// Anything unexpected.
    InternalError,
}

impl S3ErrorKind {
    /// The status and S3 code, one match for the whole S3 API.
    pub fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Self::AccessDenied => (StatusCode::FORBIDDEN, "AccessDenied"),
            Self::SignatureDoesNotMatch => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
            Self::InvalidAccessKeyId => (StatusCode::FORBIDDEN, "InvalidAccessKeyId"),
            Self::RequestTimeTooSkewed => (StatusCode::FORBIDDEN, "RequestTimeTooSkewed"),
            Self::AuthorizationHeaderMalformed => {
                (StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed")
            }
            Self::ContentSha256Mismatch => (StatusCode::BAD_REQUEST, "XAmzContentSHA256Mismatch"),
            Self::InvalidRequest => (StatusCode::BAD_REQUEST, "InvalidRequest"),
            Self::InvalidArgument => (StatusCode::BAD_REQUEST, "InvalidArgument"),
            Self::InvalidBucketName => (StatusCode::BAD_REQUEST, "InvalidBucketName"),
            Self::NoSuchBucket => (StatusCode::NOT_FOUND, "NoSuchBucket"),
            Self::BucketAlreadyOwnedByYou => (StatusCode::CONFLICT, "BucketAlreadyOwnedByYou"),
            Self::MalformedXml => (StatusCode::BAD_REQUEST, "MalformedXML"),
            Self::BadDigest => (StatusCode::BAD_REQUEST, "BadDigest"),
            Self::KmsKeyNotFound => (StatusCode::BAD_REQUEST, "KMSKeyNotFound"),
            Self::KmsInvalidState => (StatusCode::BAD_REQUEST, "KMS.KMSInvalidStateException"),
            Self::EncryptionConfigurationNotFound => (
                StatusCode::NOT_FOUND,
                "ServerSideEncryptionConfigurationNotFoundError",
            ),
            Self::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Self::NotImplemented => (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            Self::EntityTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge"),
            Self::RequestTimeout => (StatusCode::BAD_REQUEST, "RequestTimeout"),
            Self::IncompleteBody => (StatusCode::BAD_REQUEST, "IncompleteBody"),
            Self::RequestHeaderSectionTooLarge => {
                (StatusCode::BAD_REQUEST, "RequestHeaderSectionTooLarge")
            }
            Self::UriTooLong => (StatusCode::URI_TOO_LONG, "RequestURITooLong"),
            Self::NoSuchKey => (StatusCode::NOT_FOUND, "NoSuchKey"),
            Self::NoSuchUpload => (StatusCode::NOT_FOUND, "NoSuchUpload"),
            Self::BucketNotEmpty => (StatusCode::CONFLICT, "BucketNotEmpty"),
            Self::InvalidRange => (StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange"),
            Self::InvalidPartNumber => (StatusCode::RANGE_NOT_SATISFIABLE, "InvalidPartNumber"),
            Self::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "PreconditionFailed"),
            Self::NotModified => (StatusCode::NOT_MODIFIED, "NotModified"),
            Self::EntityTooSmall => (StatusCode::BAD_REQUEST, "EntityTooSmall"),
            Self::InvalidPart => (StatusCode::BAD_REQUEST, "InvalidPart"),
            Self::InvalidPartOrder => (StatusCode::BAD_REQUEST, "InvalidPartOrder"),
            Self::KeyTooLong => (StatusCode::BAD_REQUEST, "KeyTooLongError"),
            Self::MetadataTooLarge => (StatusCode::BAD_REQUEST, "MetadataTooLarge"),
            Self::InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }
}

/// An S3 error: its kind, a message for people and the resource it is about.
#[derive(Clone, Debug)]
pub struct S3Error {
    kind: S3ErrorKind,
    message: String,
    resource: String,
}

impl S3Error {
    /// An error about a resource (`/bucket`).
    pub fn new(kind: S3ErrorKind, message: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            resource: resource.into(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> S3ErrorKind {
        self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status_and_code().0
    }

    /// The S3 code.
    pub fn code(&self) -> &'static str {
        self.kind.status_and_code().1
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The XML error response carrying the request id. `HEAD` answers carry no body.
    pub fn to_response(&self, request_id: &str, head: bool) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        // 304 has no body by definition.
        if head || self.kind == S3ErrorKind::NotModified {
            return builder.finish();
        }
        let xml = s3_bucket_encryption::xml::error(
            self.code(),
            &self.message,
            &self.resource,
            request_id,
        );
        builder.content_type("application/xml").body(xml)
    }

    /// The S3 error for a body that could not be read.
    pub fn from_body(e: BodyError, resource: &str) -> Self {
        let (kind, message) = match e {
            BodyError::TooLarge { limit } => (
                S3ErrorKind::EntityTooLarge,
                format!("the body is larger than {limit} bytes"),
            ),
            BodyError::Timeout => (
                S3ErrorKind::RequestTimeout,
                "the body did not arrive in time".into(),
            ),
            BodyError::Broken => (
                S3ErrorKind::IncompleteBody,
                "the body could not be read".into(),
            ),
        };
        Self::new(kind, message, resource)
    }

    /// The S3 error for a failed signature check.
    pub fn from_auth(e: AuthError, resource: &str) -> Self {
        let kind = match &e {
            AuthError::Missing => S3ErrorKind::AccessDenied,
            AuthError::Malformed(_) | AuthError::WrongRegion { .. } => {
                S3ErrorKind::AuthorizationHeaderMalformed
            }
            AuthError::UnknownAccessKey => S3ErrorKind::InvalidAccessKeyId,
            AuthError::SignatureMismatch => S3ErrorKind::SignatureDoesNotMatch,
            AuthError::TimeTooSkewed => S3ErrorKind::RequestTimeTooSkewed,
            AuthError::Expired => S3ErrorKind::AccessDenied,
            AuthError::ContentHashMismatch => S3ErrorKind::ContentSha256Mismatch,
            // What S3 answers when x-amz-content-sha256 is missing, for a caller that does not
            // fall back to reading the body whole.
            AuthError::NeedsBufferedBody => S3ErrorKind::InvalidRequest,
        };
        Self::new(kind, e.to_string(), resource)
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for S3Error {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        // The request middleware replaces this with the same body carrying the request id.
        self.to_response("", false)
    }
}
