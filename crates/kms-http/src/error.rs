//! The one place that turns errors into HTTP statuses and error codes: [`ApiError::status_code`]
//! for the admin API (JSON bodies) and [`S3Error`](crate::s3::S3Error) for the S3 API (XML).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;

/// An admin API error: a status, a stable code and a message for people.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// A KMS operation failed.
    Kms(kms_core::Error),
    /// The request is not authenticated.
    Unauthenticated(AuthError),
    /// The caller may not perform this action.
    Forbidden {
        /// The action the caller lacks.
        action: &'static str,
    },
    /// The operation needs a configured service.
    ServiceNotConfigured,
    /// The operation needs a running service.
    ServiceNotRunning,
    /// No route has this path.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than the limit.
    RequestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body did not arrive in time.
    RequestTimeout,
    /// The request's headers are too large.
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request's URI is too long.
    UriTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A bucket-level error from the JSON mirrors of the S3 bucket calls.
    Bucket(crate::s3::S3Error),
    /// Anything unexpected; the details are logged, never returned.
    Internal,
}

impl ApiError {
    /// A 400 `InvalidRequest` with this reason.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::Kms(kms_core::Error::invalid(reason))
    }

    /// The status and code, one match for the whole admin API.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use kms_core::Error as E;
        match self {
            Self::Kms(e) => match e {
                E::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "InvalidRequest"),
                E::KeyNotFound { .. } => (StatusCode::NOT_FOUND, "KeyNotFound"),
                E::KeyAlreadyExists { .. } => (StatusCode::CONFLICT, "Conflict"),
                E::InvalidKeyState { .. } => (StatusCode::BAD_REQUEST, "InvalidKeyState"),
                E::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
                E::DecryptionFailed => (StatusCode::BAD_REQUEST, "DecryptionFailed"),
                E::EncryptionFailed => (StatusCode::INTERNAL_SERVER_ERROR, "EncryptionFailed"),
                E::BackendUnavailable { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "BackendUnavailable")
                }
                E::Backend { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "BackendError"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            },
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "AccessDenied"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "AccessDenied"),
            Self::ServiceNotConfigured => (StatusCode::CONFLICT, "ServiceNotConfigured"),
            Self::ServiceNotRunning => (StatusCode::CONFLICT, "ServiceNotRunning"),
            Self::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            Self::RequestTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLarge"),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            Self::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "RequestHeaderFieldsTooLarge",
            ),
            Self::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "UriTooLong"),
            Self::Bucket(e) => (e.status(), e.code()),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// The message for people. Backend failures are summarised: their details go to the log.
    pub fn message(&self) -> String {
        use kms_core::Error as E;
        match self {
            Self::Kms(E::Backend { backend, .. }) => format!("the {backend} backend failed"),
            Self::Kms(e) => e.to_string(),
            Self::Unauthenticated(e) => e.to_string(),
            Self::Forbidden { action } => format!("the caller is not allowed to perform {action}"),
            Self::ServiceNotConfigured => "the KMS service is not configured".into(),
            Self::ServiceNotRunning => "the KMS service is not running".into(),
            Self::NotFound => "no such route".into(),
            Self::MethodNotAllowed => "the route does not support this method".into(),
            Self::RequestTooLarge { limit } => {
                format!("the request body is larger than {limit} bytes")
            }
            Self::RequestTimeout => "the request body did not arrive in time".into(),
            Self::HeadersTooLarge { limit } => {
                format!("the request headers are larger than {limit} bytes")
            }
            Self::UriTooLong { limit } => format!("the request URI is longer than {limit} bytes"),
            Self::Bucket(e) => e.message().to_string(),
            Self::Internal => "internal error".into(),
        }
    }

    /// The JSON error response, carrying the request id.
    pub fn to_response(&self, request_id: &str) -> HttpResponse {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: String,
            request_id: &'a str,
        }
        let (status, code) = self.status_and_code();
        HttpResponse::build(status).json(Body {
            error: Inner {
                code,
                message: self.message(),
                request_id,
            },
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        // The request middleware replaces this with the same body carrying the request id.
        self.to_response("")
    }
}

impl From<kms_core::Error> for ApiError {
    fn from(e: kms_core::Error) -> Self {
        if let kms_core::Error::Backend { .. } = &e {
            tracing::error!(error = %e, "backend failure");
        }
        Self::Kms(e)
    }
}

impl From<crate::request::BodyError> for ApiError {
    fn from(e: crate::request::BodyError) -> Self {
        use crate::request::BodyError;
        match e {
            BodyError::TooLarge { limit } => Self::RequestTooLarge { limit },
            BodyError::Timeout => Self::RequestTimeout,
            BodyError::Broken => Self::invalid("the request body could not be read"),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::Unauthenticated(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decryption_failures_are_client_errors() {
        let (status, code) = ApiError::Kms(kms_core::Error::DecryptionFailed).status_and_code();
        assert_eq!((status.as_u16(), code), (400, "DecryptionFailed"));
    }

    #[test]
    fn backend_details_stay_out_of_messages() {
        let e = ApiError::Kms(kms_core::Error::Backend {
            backend: "local",
            reason: "/secret/path: permission denied".into(),
        });
        assert!(!e.message().contains("/secret/path"));
        assert_eq!(e.status_and_code().0.as_u16(), 500);
    }
}
