//! What went wrong talking to Vault, sorted into the few cases the backend acts on.
//!
//! Every message is built here from status codes, Vault's own error strings and transport
//! causes. Tokens travel only in request headers, which no error here ever reads.

use std::fmt;

use kms_core::Error;
use vaultrs::error::ClientError;

pub(crate) const BACKEND: &str = "vault";

/// Vault's error strings are short; anything longer is cut so that a surprising answer cannot
/// flood a log line or an error message.
const MAX_REASON_CHARS: usize = 200;

/// One failed Vault request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    Unreachable(String),
    /// Vault answered with an error status.
    Status {
        /// The HTTP status code.
        code: u16,
        /// Vault's `errors` list.
        errors: Vec<String>,
    },
    /// Vault answered 2xx with something this client could not read, or the request could not
    /// be built.
    Malformed(String),
    /// Logging in again after Vault refused the token failed.
    Login(Error),
}

impl Failure {
    /// Sorts a client error.
    pub(crate) fn from_client(error: ClientError) -> Self {
        match error {
            ClientError::APIError { code, errors } => Self::Status { code, errors },
            ClientError::RestClientError { source } => from_rest(source),
            ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
                Self::Malformed("vault answered without data".into())
            }
            ClientError::JsonParseError { .. } => {
                Self::Malformed("vault's answer could not be read".into())
            }
            other => Self::Malformed(other.to_string()),
        }
    }

    /// Whether retrying later may help: no answer, or Vault sealed, in standby without a
    /// leader, rate limiting, or behind a failing proxy.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Status { code, .. } => matches!(code, 429 | 502 | 503 | 504),
            Self::Malformed(_) | Self::Login(_) => false,
        }
    }

    /// OpenBao's storage refused to commit the request's transaction because a concurrent
    /// request changed the same entry. For a KV write nothing was written, so it is a conflict
    /// like a check-and-set mismatch. (Not so for Transit: a rotation answered this way may
    /// still have happened in the server's memory, so such answers are never retried.)
    pub(crate) fn is_uncommitted(&self) -> bool {
        match self {
            Self::Status { code: 500, errors } => mentions(errors, "transaction commit failed"),
            _ => false,
        }
    }

    /// Vault refused the token (expired, revoked or lacking a policy).
    pub(crate) fn is_forbidden(&self) -> bool {
        matches!(self, Self::Status { code: 403, .. })
    }

    /// Nothing at this path: a 404 whose `errors` list is empty. A 404 naming a missing route
    /// means the mount itself is missing, which is a configuration error, not a missing key.
    pub(crate) fn is_not_found(&self) -> bool {
        match self {
            Self::Status { code: 404, errors } => !mentions(errors, "no handler for route"),
            _ => false,
        }
    }

    /// A KV write whose check-and-set version no longer matches: another writer was first.
    pub(crate) fn is_cas_conflict(&self) -> bool {
        match self {
            Self::Status { code: 400, errors } => mentions(errors, "check-and-set"),
            _ => false,
        }
    }

    /// A client error of Vault's (400), as Transit answers for a ciphertext that does not
    /// authenticate, cannot be parsed, or names a key or version that does not exist.
    pub(crate) fn is_bad_request(&self) -> bool {
        matches!(self, Self::Status { code: 400, .. })
    }

    /// The `kms_core` error for this failure while doing `what` (for example "reading key
    /// metadata"): transient failures are [`Error::BackendUnavailable`], the rest
    /// [`Error::Backend`].
    pub(crate) fn into_error(self, what: &str) -> Error {
        if let Self::Login(error) = self {
            return error;
        }
        let reason = format!("{what}: {self}");
        if self.is_transient() {
            Error::BackendUnavailable {
                backend: BACKEND,
                reason,
            }
        } else {
            Error::Backend {
                backend: BACKEND,
                reason,
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(cause) => write!(f, "vault cannot be reached ({cause})"),
            Self::Status { code: 503, .. } => f.write_str("vault is sealed or not ready (503)"),
            Self::Status { code, errors } if errors.is_empty() => {
                write!(f, "vault answered {code}")
            }
            Self::Status { code, errors } => {
                write!(f, "vault answered {code}: {}", cut(&errors.join("; ")))
            }
            Self::Malformed(what) => f.write_str(&cut(what)),
            Self::Login(error) => write!(f, "{error}"),
        }
    }
}

fn mentions(errors: &[String], needle: &str) -> bool {
    errors.iter().any(|e| e.contains(needle))
}

fn cut(text: &str) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    match one_line.char_indices().nth(MAX_REASON_CHARS) {
        Some((end, _)) => format!("{}…", &one_line[..end]),
        None => one_line,
    }
}

fn from_rest(error: rustify::errors::ClientError) -> Failure {
    use rustify::errors::ClientError as Rest;
    match error {
        Rest::ServerResponseError { code, content } => Failure::Status {
            code,
            errors: content.map(|c| parse_errors(&c)).unwrap_or_default(),
        },
        Rest::RequestError { source, .. } => Failure::Unreachable(transport_cause(&*source)),
        Rest::ResponseError { source } => Failure::Unreachable(transport_cause(&*source)),
        Rest::ResponseParseError { .. } | Rest::ResponseConversionError { .. } => {
            Failure::Malformed("vault's answer could not be read".into())
        }
        other => Failure::Malformed(other.to_string()),
    }
}

/// Vault's error body is `{"errors": [...]}`; anything else is not repeated.
fn parse_errors(content: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<String>,
    }
    serde_json::from_str::<Body>(content)
        .map(|b| b.errors)
        .unwrap_or_default()
}

/// The innermost cause of a transport failure ("Connection refused (os error 111)", "operation
/// timed out"): the most useful part for an operator, and free of URLs and headers.
fn transport_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    cut(&innermost.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, errors: &[&str]) -> Failure {
        Failure::Status {
            code,
            errors: errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn unreachable_and_sealed_are_unavailable() {
        for failure in [
            Failure::Unreachable("Connection refused (os error 111)".into()),
            status(503, &["Vault is sealed"]),
            status(429, &[]),
        ] {
            let err = failure.into_error("reading key metadata");
            assert!(
                matches!(
                    err,
                    Error::BackendUnavailable {
                        backend: "vault",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn other_failures_are_backend_errors() {
        for failure in [
            status(403, &["permission denied"]),
            status(500, &["internal error"]),
            status(404, &[]),
            Failure::Malformed("odd".into()),
        ] {
            let err = failure.into_error("creating a key");
            assert!(
                matches!(
                    err,
                    Error::Backend {
                        backend: "vault",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn api_errors_are_classified_by_code_and_text() {
        let api = |code, errors: &[&str]| {
            Failure::from_client(ClientError::APIError {
                code,
                errors: errors.iter().map(|e| e.to_string()).collect(),
            })
        };
        assert!(api(404, &[]).is_not_found());
        assert!(!api(
            404,
            &["no handler for route \"x/keys/k\". route entry not found."]
        )
        .is_not_found());
        assert!(api(
            400,
            &["check-and-set parameter did not match the current version"]
        )
        .is_cas_conflict());
        assert!(!api(400, &["cipher: message authentication failed"]).is_cas_conflict());
        assert!(api(403, &["permission denied"]).is_forbidden());
        let uncommitted = api(
            500,
            &["1 error occurred:\n\t* transaction commit failed\n\n"],
        );
        assert!(uncommitted.is_uncommitted() && !uncommitted.is_transient());
        assert!(!api(500, &["internal error"]).is_uncommitted());
    }

    #[test]
    fn server_responses_are_parsed_into_statuses() {
        let rest = rustify::errors::ClientError::ServerResponseError {
            code: 400,
            content: Some(r#"{"errors":["check-and-set parameter did not match"]}"#.into()),
        };
        let failure = Failure::from_client(ClientError::RestClientError { source: rest });
        assert!(failure.is_cas_conflict(), "{failure:?}");
        let garbage = rustify::errors::ClientError::ServerResponseError {
            code: 502,
            content: Some("<html>bad gateway</html>".into()),
        };
        let failure = Failure::from_client(ClientError::RestClientError { source: garbage });
        assert_eq!(failure, status(502, &[]));
        assert!(failure.is_transient());
    }

    #[test]
    fn messages_are_one_bounded_line() {
        let long = status(400, &[&format!("first\nline {}", "x".repeat(500))]);
        let shown = long.to_string();
        assert!(!shown.contains('\n'));
        assert!(shown.chars().count() < MAX_REASON_CHARS + 40, "{shown}");
        assert_eq!(
            status(503, &["sealed"]).to_string(),
            "vault is sealed or not ready (503)"
        );
    }
}
