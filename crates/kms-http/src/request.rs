//! Plumbing every handler shares: reading a bounded body, strict JSON and query parsing,
//! authentication and authorization, and the fields a request's log line carries.

use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::auth::{Action, AuthError};
use crate::error::ApiError;
use crate::sigv4::{self, BodyForHash, RequestParts, SigningService, Verified};
use crate::AppState;

/// The largest admin request body.
pub const ADMIN_BODY_LIMIT: usize = 1024 * 1024;

/// How long a client may take to send a body. Actix bounds the head of a request; this bounds
/// the rest, so a client trickling bytes cannot hold a worker forever. A streamed S3 body
/// ([`BodyStream`](crate::s3::BodyStream)) may take as long as it needs, but no single read may
/// wait longer than this.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why a body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// It is larger than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// It did not arrive within [`BODY_TIMEOUT`].
    Timeout,
    /// The connection broke or the transfer encoding is invalid.
    Broken,
}

/// Reads a body of at most `limit` bytes within [`BODY_TIMEOUT`].
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| BodyError::Broken)?;
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .map_err(|_| BodyError::Timeout)?
}

/// Reads an admin body (at most 1 MiB).
pub async fn admin_body(req: &HttpRequest, payload: web::Payload) -> Result<Bytes, ApiError> {
    read_body(req, payload, ADMIN_BODY_LIMIT)
        .await
        .map_err(ApiError::from)
}

/// Who made a request, for the request log.
#[derive(Clone, Debug, Default)]
pub struct LogFields {
    /// The access key of the caller.
    pub identity: Option<String>,
    /// The key id the request is about.
    pub key_id: Option<String>,
}

/// Records the key id a request is about, for its log line.
pub fn note_key_id(req: &HttpRequest, key_id: &impl std::fmt::Display) {
    let mut ext = req.extensions_mut();
    let fields = ext.get_mut::<LogFields>();
    match fields {
        Some(fields) => fields.key_id = Some(key_id.to_string()),
        None => {
            ext.insert(LogFields {
                identity: None,
                key_id: Some(key_id.to_string()),
            });
        }
    }
}

impl AppState {
    /// Verifies the signature of a request whose whole body has been read and returns the
    /// access key that made it.
    pub fn authenticate(
        &self,
        req: &HttpRequest,
        body: &[u8],
        service: SigningService,
    ) -> Result<Verified, AuthError> {
        self.authenticate_with(req, BodyForHash::Bytes(body), service)
    }

    /// Verifies the signature of a request before its body is read, for bodies streamed with
    /// [`BodyStream`](crate::s3::BodyStream), which checks what the signature leaves to it
    /// ([`Verified::payload`]). [`AuthError::NeedsBufferedBody`] means the body's hash is not
    /// declared: read it whole (within a small limit) and call [`Self::authenticate`].
    pub fn authenticate_streamed(
        &self,
        req: &HttpRequest,
        service: SigningService,
    ) -> Result<Verified, AuthError> {
        self.authenticate_with(req, BodyForHash::Streamed, service)
    }

    fn authenticate_with(
        &self,
        req: &HttpRequest,
        body: BodyForHash<'_>,
        service: SigningService,
    ) -> Result<Verified, AuthError> {
        let method = req.method().as_str();
        let parts = RequestParts {
            method,
            path: req.uri().path(),
            query: req.query_string(),
            headers: req.headers(),
        };
        let verified = sigv4::verify_with(
            &parts,
            body,
            service,
            &self.region,
            chrono::Utc::now(),
            &|ak| self.identities.secret_of(ak),
        )?;
        let mut ext = req.extensions_mut();
        match ext.get_mut::<LogFields>() {
            Some(fields) => fields.identity = Some(verified.access_key.clone()),
            None => {
                ext.insert(LogFields {
                    identity: Some(verified.access_key.clone()),
                    key_id: None,
                });
            }
        }
        Ok(verified)
    }

    /// The first steps of every admin request, in the documented order: read the body (413),
    /// authenticate (401), authorize (403), refuse query parameters not in `allowed` (400).
    pub async fn admin_request(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        action: Action,
        allowed: &[&str],
    ) -> Result<(Bytes, Query), ApiError> {
        let body = admin_body(req, payload).await?;
        self.authorize(req, &body, action)?;
        let query = Query::parse(req, allowed)?;
        Ok((body, query))
    }

    /// Authenticates an admin request (`execute-api`) and checks that its identity may perform
    /// `action`: 401 when not authenticated, 403 when not allowed.
    pub fn authorize(
        &self,
        req: &HttpRequest,
        body: &[u8],
        action: Action,
    ) -> Result<(), ApiError> {
        let verified = self.authenticate(req, body, SigningService::ExecuteApi)?;
        if self.allows(&verified.access_key, action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                action: action.name(),
            })
        }
    }

    /// Whether the identity may perform the action.
    pub fn allows(&self, access_key: &str, action: Action) -> bool {
        self.identities
            .get(access_key)
            .is_some_and(|identity| identity.allows(action))
    }
}

/// Parses a JSON body strictly: unknown fields and wrong types are 400 `InvalidRequest`. The
/// message names the problem but quotes no value from the body.
///
/// The body must be a JSON object: serde would otherwise read a struct from an array. An
/// optional field given as `null` counts as absent, as in the AWS JSON protocols.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(describe_json_error(&e)))?;
    if !value.is_object() {
        return Err(ApiError::invalid("the request body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid(describe_json_error(&e)))
}

/// Like [`parse_json`], but an empty body is the default value.
pub fn parse_json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        }
        Category::Data => {
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text);
            format!("invalid request body: {}", strip_quoted_values(text))
        }
    }
}

/// Removes quoted values (`"…"`) from a serde message, keeping field names (in backticks).
fn strip_quoted_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_quote = false;
    for c in text.chars() {
        match (c, in_quote) {
            ('"', false) => {
                in_quote = true;
                out.push_str("<value>");
            }
            ('"', true) => in_quote = false,
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// A query string parsed strictly: only the named parameters, each at most once.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses the query, refusing parameters not in `allowed`.
    pub fn parse(req: &HttpRequest, allowed: &[&str]) -> Result<Self, ApiError> {
        let pairs = sigv4::parse_query(req.query_string())
            .map_err(|_| ApiError::invalid("bad query string"))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter '{}'",
                    name.escape_debug()
                )));
            }
            if pairs[..i].iter().any(|(other, _)| other == name) {
                return Err(ApiError::invalid(format!(
                    "query parameter '{name}' is repeated"
                )));
            }
        }
        Ok(Self(pairs))
    }

    /// Whether no parameter was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[expect(dead_code, reason = "only its parsing is tested")]
        n: u32,
    }

    #[test]
    fn json_errors_quote_no_values_from_the_body() {
        let err = parse_json::<Sample>(br#"{"n": "secret-ish"}"#).unwrap_err();
        assert!(!err.message().contains("secret-ish"), "{}", err.message());
        let err = parse_json::<Sample>(br#"{"n": 1, "other": 2}"#).unwrap_err();
        assert!(err.message().contains("other"), "{}", err.message());
        let err = parse_json::<Sample>(b"{nope").unwrap_err();
        assert!(err.message().contains("not valid JSON"));
    }
}
