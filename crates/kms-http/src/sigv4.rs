//! AWS Signature Version 4 verification, for the admin API (`execute-api`) and the S3 API (`s3`).
//!
//! No maintained crate verifies SigV4 on the server side (the AWS crates sign), so this module
//! does, with `hmac`/`sha2` and a constant-time comparison from `subtle`. It is checked against
//! real signers (botocore, the JavaScript SDKs, curl) in the end-to-end tests.

use std::fmt;

use actix_web::http::header::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use kms_core::SecretBytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_SKEW_SECONDS: i64 = 15 * 60;
const MAX_PRESIGN_SECONDS: i64 = 7 * 24 * 3600;
/// The hash of an empty payload.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload marker of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// Which AWS service rules a request is signed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningService {
    /// The admin API: paths normalised and encoded twice, as botocore and the JavaScript SDK do.
    ExecuteApi,
    /// The S3 API: paths encoded once, `x-amz-content-sha256` markers, presigned URLs allowed.
    S3,
}

impl SigningService {
    fn name(self) -> &'static str {
        match self {
            Self::ExecuteApi => "execute-api",
            Self::S3 => "s3",
        }
    }
}

/// Why a request is not authenticated. Messages name what is wrong, never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header or presigned query.
    Missing,
    /// The header or query is not well formed.
    Malformed(String),
    /// The credential scope names another region.
    WrongRegion {
        /// The region the server serves.
        expected: String,
    },
    /// The access key is not known.
    UnknownAccessKey,
    /// The signature does not match.
    SignatureMismatch,
    /// The request time is more than 15 minutes from the server's.
    TimeTooSkewed,
    /// The presigned URL has expired.
    Expired,
    /// The body does not match its signed hash.
    ContentHashMismatch,
    /// The body was not given ([`BodyForHash::Streamed`]) and its hash is not declared in
    /// `x-amz-content-sha256`, so the signature can only be checked over the whole body: read it
    /// (within a small limit) and verify again with [`BodyForHash::Bytes`].
    NeedsBufferedBody,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("the request is not signed"),
            Self::Malformed(what) => write!(f, "the signature is malformed: {what}"),
            Self::WrongRegion { expected } => {
                write!(f, "the credential scope names another region; this server is '{expected}'")
            }
            Self::UnknownAccessKey => f.write_str("the access key is not known"),
            Self::SignatureMismatch => f.write_str("the request signature does not match"),
            Self::TimeTooSkewed => f.write_str(
                "RequestTimeTooSkewed: the request time differs from the server time by more than 15 minutes",
            ),
            Self::Expired => f.write_str("the presigned request has expired"),
            Self::ContentHashMismatch => {
                f.write_str("the body does not match x-amz-content-sha256")
            }
            Self::NeedsBufferedBody => {
                f.write_str("Missing required header for this request: x-amz-content-sha256")
            }
        }
    }
}

fn malformed(what: impl Into<String>) -> AuthError {
    AuthError::Malformed(what.into())
}

/// The parts of a request that its signature covers.
pub struct RequestParts<'a> {
    /// The method, upper case.
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
}

/// What [`verify_with`] knows of the body when it checks the signature. (No `Debug`: it would
/// print the body.)
#[derive(Clone, Copy)]
pub enum BodyForHash<'a> {
    /// The whole body, already read: a declared `x-amz-content-sha256` is checked against it.
    Bytes(&'a [u8]),
    /// The body is still to be read, as a stream. A hex `x-amz-content-sha256` is trusted for
    /// the signature and returned as [`Payload::Hashed`], for the reader to check at the end; an
    /// absent one gives [`AuthError::NeedsBufferedBody`].
    Streamed,
}

/// How the body of a verified request is to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The body is exactly the bytes received, with nothing left to check: they were hashed
    /// already, or the body is not signed (`UNSIGNED-PAYLOAD`, presigned URLs).
    Plain,
    /// The body is exactly the bytes received, and they must hash to this SHA-256, which the
    /// signature covers. Only [`BodyForHash::Streamed`] gives it: the reader checks it at the end.
    Hashed([u8; 32]),
    /// The body is `aws-chunked`; its chunk (and trailer) signatures are checked as it is decoded,
    /// whole by [`decode_chunked`] or streamed by [`BodyStream`](crate::s3::BodyStream).
    Chunked(ChunkVerifier),
}

/// A verified request: who signed it and how to read its body.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The access key that signed the request.
    pub access_key: String,
    /// How to read the body.
    pub payload: Payload,
}

struct Credential<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl<'a> Credential<'a> {
    fn parse(text: &'a str) -> Result<Self, AuthError> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [access_key, date, region, service, "aws4_request"] => Ok(Self {
                access_key,
                date,
                region,
                service,
            }),
            _ => Err(malformed(
                "Credential must be AK/date/region/service/aws4_request",
            )),
        }
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The verified parameters of a signature, from either the header or the query.
struct Signature<'a> {
    credential: Credential<'a>,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
    amz_date: String,
    presigned_expires: Option<i64>,
}

/// Verifies the signature of a request whose whole body has been read. `secret_of` maps an access
/// key to its secret.
pub fn verify(
    parts: &RequestParts<'_>,
    body: &[u8],
    service: SigningService,
    region: &str,
    now: DateTime<Utc>,
    secret_of: &dyn Fn(&str) -> Option<SecretBytes>,
) -> Result<Verified, AuthError> {
    let body = BodyForHash::Bytes(body);
    verify_with(parts, body, service, region, now, secret_of)
}

/// Verifies a request's signature, with its body read ([`BodyForHash::Bytes`]) or still to be
/// streamed ([`BodyForHash::Streamed`]). `secret_of` maps an access key to its secret.
pub fn verify_with(
    parts: &RequestParts<'_>,
    body: BodyForHash<'_>,
    service: SigningService,
    region: &str,
    now: DateTime<Utc>,
    secret_of: &dyn Fn(&str) -> Option<SecretBytes>,
) -> Result<Verified, AuthError> {
    let query = parse_query(parts.query)?;
    let presigned = query.iter().any(|(k, _)| k == "X-Amz-Algorithm");
    let sig = if presigned {
        if service != SigningService::S3 {
            return Err(malformed("presigned URLs are accepted on the S3 API only"));
        }
        signature_from_query(&query)?
    } else {
        signature_from_header(parts.headers)?
    };

    let cred = &sig.credential;
    if cred.service != service.name() {
        return Err(malformed(format!(
            "the credential scope must name service '{}'",
            service.name()
        )));
    }
    if cred.region != region {
        return Err(AuthError::WrongRegion {
            expected: region.to_owned(),
        });
    }
    let time = parse_amz_date(&sig.amz_date)?;
    if !sig.amz_date.starts_with(cred.date) || cred.date.len() != 8 {
        return Err(malformed(
            "the credential date does not match the request date",
        ));
    }
    check_time(time, now, sig.presigned_expires)?;
    check_signed_headers(&sig, parts.headers, service, presigned)?;
    let secret = secret_of(cred.access_key).ok_or(AuthError::UnknownAccessKey)?;

    let payload_hash = payload_hash(parts.headers, body, presigned)?;
    let scope = cred.scope();
    let key = signing_key(secret.expose(), cred.date, cred.region, cred.service);
    let signature_for = |style: QueryStyle| {
        let canonical = canonical_request(
            parts,
            &query,
            &sig.signed_headers,
            &payload_hash,
            service,
            style,
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{scope}\n{}",
            sig.amz_date,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        hex::encode(hmac(&key, string_to_sign.as_bytes()))
    };
    let matches =
        |expected: String| bool::from(expected.as_bytes().ct_eq(sig.signature.as_bytes()));
    // curl before 8.x signs a valueless parameter (`?encryption`) without its `=`; the meaning
    // is the same, so that spelling is accepted as well.
    let valueless = query.iter().any(|(_, v)| v.is_empty());
    let accepted = matches(signature_for(QueryStyle::Aws))
        || (valueless && matches(signature_for(QueryStyle::BareValueless)));
    if !accepted {
        return Err(AuthError::SignatureMismatch);
    }

    let chunk_mode = match payload_hash.as_str() {
        STREAMING_SIGNED => Some(ChunkMode::Signed),
        STREAMING_SIGNED_TRAILER => Some(ChunkMode::SignedTrailer),
        STREAMING_UNSIGNED_TRAILER => Some(ChunkMode::UnsignedTrailer),
        _ => None,
    };
    let payload = match (chunk_mode, body) {
        (Some(mode), _) => Payload::Chunked(ChunkVerifier {
            mode,
            key,
            amz_date: sig.amz_date.clone(),
            scope,
            previous: sig.signature.to_owned(),
        }),
        // The hash was trusted for the signature; the reader checks the body against it.
        (None, BodyForHash::Streamed) => match decode_sha256(&payload_hash) {
            Some(expected) => Payload::Hashed(expected),
            None => Payload::Plain,
        },
        (None, BodyForHash::Bytes(_)) => Payload::Plain,
    };
    Ok(Verified {
        access_key: cred.access_key.to_owned(),
        payload,
    })
}

fn signature_from_header(headers: &HeaderMap) -> Result<Signature<'_>, AuthError> {
    let header = headers.get("authorization").ok_or(AuthError::Missing)?;
    for name in ["authorization", "x-amz-date", "x-amz-content-sha256"] {
        if headers.get_all(name).nth(1).is_some() {
            return Err(malformed(format!("{name} is repeated")));
        }
    }
    let header = header
        .to_str()
        .map_err(|_| malformed("Authorization is not ASCII"))?;
    let rest = header
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| malformed("Authorization must use AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for item in rest.split(',') {
        let (name, value) = item
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("bad component"))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(malformed(format!(
                    "unknown component '{}'",
                    name.escape_debug()
                )))
            }
        };
        if slot.replace(value).is_some() {
            return Err(malformed(format!("repeated component '{name}'")));
        }
    }
    let amz_date = match headers.get("x-amz-date").or_else(|| headers.get("date")) {
        Some(value) => value
            .to_str()
            .map_err(|_| malformed("bad date header"))?
            .to_owned(),
        None => return Err(malformed("X-Amz-Date is missing")),
    };
    Ok(Signature {
        credential: Credential::parse(credential.ok_or_else(|| malformed("Credential missing"))?)?,
        signed_headers: split_signed_headers(
            signed_headers.ok_or_else(|| malformed("SignedHeaders missing"))?,
        )?,
        signature: signature.ok_or_else(|| malformed("Signature missing"))?,
        amz_date,
        presigned_expires: None,
    })
}

fn signature_from_query(query: &[(String, String)]) -> Result<Signature<'_>, AuthError> {
    let get = |name: &str| {
        let mut values = query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(malformed(format!("{name} is missing"))),
            (Some(_), Some(_)) => Err(malformed(format!("{name} is repeated"))),
        }
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(malformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let expires: i64 = get("X-Amz-Expires")?
        .parse()
        .map_err(|_| malformed("bad X-Amz-Expires"))?;
    if !(1..=MAX_PRESIGN_SECONDS).contains(&expires) {
        return Err(malformed("X-Amz-Expires must be between 1 and 604800"));
    }
    Ok(Signature {
        credential: Credential::parse(get("X-Amz-Credential")?)?,
        signed_headers: split_signed_headers(get("X-Amz-SignedHeaders")?)?,
        signature: get("X-Amz-Signature")?,
        amz_date: get("X-Amz-Date")?.to_owned(),
        presigned_expires: Some(expires),
    })
}

fn split_signed_headers(list: &str) -> Result<Vec<&str>, AuthError> {
    let names: Vec<&str> = list.split(';').collect();
    let sorted = names.windows(2).all(|w| w[0] < w[1]);
    let valid = names
        .iter()
        .all(|n| !n.is_empty() && !n.bytes().any(|b| b.is_ascii_uppercase()));
    if !sorted || !valid {
        return Err(malformed(
            "SignedHeaders must be sorted, lower-case and unique",
        ));
    }
    Ok(names)
}

fn parse_amz_date(text: &str) -> Result<DateTime<Utc>, AuthError> {
    NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc())
        .map_err(|_| malformed("the request date must look like 20240919T071042Z"))
}

fn check_time(
    time: DateTime<Utc>,
    now: DateTime<Utc>,
    presigned_expires: Option<i64>,
) -> Result<(), AuthError> {
    match presigned_expires {
        Some(expires) => {
            if now > time + chrono::Duration::seconds(expires) {
                return Err(AuthError::Expired);
            }
            if time - now > chrono::Duration::seconds(MAX_SKEW_SECONDS) {
                return Err(AuthError::TimeTooSkewed);
            }
        }
        None => {
            if (now - time).num_seconds().abs() > MAX_SKEW_SECONDS {
                return Err(AuthError::TimeTooSkewed);
            }
        }
    }
    Ok(())
}

fn check_signed_headers(
    sig: &Signature<'_>,
    headers: &HeaderMap,
    service: SigningService,
    presigned: bool,
) -> Result<(), AuthError> {
    let signs = |name: &str| sig.signed_headers.contains(&name);
    if service == SigningService::S3 && !signs("host") {
        return Err(malformed("the host header must be signed"));
    }
    if !presigned && !signs("x-amz-date") && !signs("date") {
        return Err(malformed("the request date header must be signed"));
    }
    if let Some(missing) = sig
        .signed_headers
        .iter()
        .find(|name| !headers.contains_key(**name))
    {
        return Err(malformed(format!("signed header '{missing}' is missing")));
    }
    Ok(())
}

fn payload_hash(
    headers: &HeaderMap,
    body: BodyForHash<'_>,
    presigned: bool,
) -> Result<String, AuthError> {
    let declared = match headers.get("x-amz-content-sha256") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| malformed("bad x-amz-content-sha256"))?,
        ),
        None => None,
    };
    match declared {
        None if presigned => Ok(UNSIGNED_PAYLOAD.to_owned()),
        // AWS requires the header on S3, but curl 7.x does not send it; the body hash is then
        // signed all the same, so accepting its absence costs no security.
        None => match body {
            BodyForHash::Bytes(body) => Ok(hex::encode(Sha256::digest(body))),
            BodyForHash::Streamed => Err(AuthError::NeedsBufferedBody),
        },
        Some(
            v @ (UNSIGNED_PAYLOAD
            | STREAMING_SIGNED
            | STREAMING_SIGNED_TRAILER
            | STREAMING_UNSIGNED_TRAILER),
        ) => Ok(v.to_owned()),
        Some(v) if decode_sha256(v).is_some() => {
            if let BodyForHash::Bytes(body) = body {
                let actual = hex::encode(Sha256::digest(body));
                if !v.eq_ignore_ascii_case(&actual) {
                    return Err(AuthError::ContentHashMismatch);
                }
            }
            Ok(v.to_ascii_lowercase())
        }
        Some(_) => Err(malformed(
            "x-amz-content-sha256 is not a hash or a known marker",
        )),
    }
}

/// The 32 bytes of a hex SHA-256, if `text` is one.
fn decode_sha256(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

/// How valueless query parameters are written in the canonical query string.
#[derive(Clone, Copy)]
enum QueryStyle {
    /// `name=`, as AWS specifies.
    Aws,
    /// `name`, as older curl releases sign it.
    BareValueless,
}

fn canonical_request(
    parts: &RequestParts<'_>,
    query: &[(String, String)],
    signed_headers: &[&str],
    payload_hash: &str,
    service: SigningService,
    style: QueryStyle,
) -> String {
    let uri = match service {
        // Botocore and the JavaScript SDK encode the (already encoded) path once more.
        SigningService::ExecuteApi => uri_encode(parts.path, false),
        // S3 signs the path encoded once, whatever the client's own escaping.
        SigningService::S3 => uri_encode(&percent_decode(parts.path), false),
    };
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| match style {
            QueryStyle::BareValueless if v.is_empty() => k,
            _ => format!("{k}={v}"),
        })
        .collect();
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = parts
            .headers
            .get_all(*name)
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{uri}\n{}\n{headers}\n{}\n{payload_hash}",
        parts.method,
        query.join("&"),
        signed_headers.join(";")
    )
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits a raw query string into decoded pairs, keeping their order.
pub fn parse_query(raw: &str) -> Result<Vec<(String, String)>, AuthError> {
    raw.split('&')
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            Ok((percent_decode(k), percent_decode(v)))
        })
        .collect()
}

/// Decodes `%XX` escapes; anything else, `+` included, stays as it is.
pub fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// AWS URI encoding: everything but `A-Z a-z 0-9 - _ . ~` is `%XX`; `/` too when `slash`.
pub fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (byte == b'/' && !slash);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut first = Zeroizing::new(b"AWS4".to_vec());
    first.extend_from_slice(secret);
    let k_date = hmac(&first, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Which `STREAMING-*` payload an `aws-chunked` body was signed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkMode {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: signed chunks, no trailers.
    Signed,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks and signed trailers.
    SignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: neither chunks nor trailers are signed.
    UnsignedTrailer,
}

/// Verifies the chunk signatures of an `aws-chunked` body, each chained to the previous one,
/// and the trailer signature that closes the chain. It checks hashes, not data: the decoder
/// hashes each chunk as it streams past.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkVerifier {
    mode: ChunkMode,
    key: Vec<u8>,
    amz_date: String,
    scope: String,
    previous: String,
}

impl fmt::Debug for ChunkVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkVerifier")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ChunkVerifier {
    /// Whether trailers may follow the last chunk.
    pub(crate) fn allows_trailers(&self) -> bool {
        self.mode != ChunkMode::Signed
    }

    /// Checks the signature of one chunk, given the SHA-256 of its data.
    pub(crate) fn check(
        &mut self,
        chunk_sha256: &[u8],
        signature: Option<&str>,
    ) -> Result<(), AuthError> {
        if self.mode == ChunkMode::UnsignedTrailer {
            return Ok(());
        }
        let signature = signature.ok_or_else(|| malformed("a chunk has no signature"))?;
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(chunk_sha256)
        );
        self.previous = self.matching(&string_to_sign, signature)?;
        Ok(())
    }

    /// Checks the `x-amz-trailer-signature` of the trailers (names lower case, the signature
    /// itself not among them), chained to the last chunk's signature. Only bodies signed as
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` carry one.
    pub(crate) fn check_trailers(
        &self,
        trailers: &[(String, String)],
        signature: Option<&str>,
    ) -> Result<(), AuthError> {
        if self.mode != ChunkMode::SignedTrailer {
            return Ok(());
        }
        let signature = signature.ok_or_else(|| malformed("the trailer signature is missing"))?;
        // Each trailer as `name:value\n`, sorted by name, as the AWS signers canonicalize them.
        let mut sorted: Vec<&(String, String)> = trailers.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut canonical = Sha256::new();
        for (name, value) in sorted {
            canonical.update(format!("{name}:{value}\n").as_bytes());
        }
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(canonical.finalize())
        );
        self.matching(&string_to_sign, signature).map(drop)
    }

    /// The signature of `string_to_sign`, when it is `given`.
    fn matching(&self, string_to_sign: &str, given: &str) -> Result<String, AuthError> {
        let expected = hex::encode(hmac(&self.key, string_to_sign.as_bytes()));
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(AuthError::SignatureMismatch);
        }
        Ok(expected)
    }
}

/// The longest chunk header or trailer line of an `aws-chunked` body, CRLF included. A chunk
/// header is a hex size and a 64-digit signature; a line near this long is not from a real client.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The most bytes the trailer lines of an `aws-chunked` body may hold together.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// A decoded `aws-chunked` body.
pub struct ChunkedBody {
    /// The data of every chunk, in order.
    pub data: Vec<u8>,
    /// The trailing headers (checksums), names lower-cased, without `x-amz-trailer-signature`.
    pub trailers: Vec<(String, String)>,
}

/// Decodes a whole `aws-chunked` body, verifying every chunk signature, and the trailer signature
/// when the body is signed with trailers.
pub fn decode_chunked(body: &[u8], verifier: ChunkVerifier) -> Result<ChunkedBody, AuthError> {
    let mut decoder = ChunkDecoder::new(verifier);
    let mut data = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let step = decoder.step(rest)?;
        data.extend_from_slice(&rest[..step.data]);
        rest = &rest[step.consumed..];
    }
    let trailers = decoder.finish().map_err(|e| match e {
        DecodeError::Invalid(e) => e,
        DecodeError::Truncated(why) => malformed(why),
    })?;
    Ok(ChunkedBody { data, trailers })
}

/// Which line an `aws-chunked` decoder is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineKind {
    /// A chunk header: `hex-size[;chunk-signature=sig]`.
    Header,
    /// The empty line that ends a chunk's data.
    DataEnd,
    /// A trailer (`name:value`), or an empty line, after the last chunk.
    Trailer,
}

/// Where a [`ChunkDecoder`] is in the body.
enum DecodeState {
    Line(LineKind),
    /// Inside a chunk's data, hashing it for its signature.
    Data {
        remaining: u64,
        hash: Sha256,
        signature: Option<String>,
    },
}

/// What one [`ChunkDecoder::step`] did: the first `data` bytes of its input are chunk data, and
/// it used the first `consumed` bytes.
pub(crate) struct Step {
    pub(crate) consumed: usize,
    pub(crate) data: usize,
}

/// Why a [`ChunkDecoder`] stopped.
pub(crate) enum DecodeError {
    /// The body breaks the format or a signature does not match.
    Invalid(AuthError),
    /// The body ended early.
    Truncated(&'static str),
}

/// An incremental `aws-chunked` decoder: fed the body as it arrives, split anywhere, it hands
/// out chunk data without buffering it and checks each chunk signature at the chunk's end, so a
/// chunk's data is out before its signature is checked. It buffers one line at most, of at most
/// [`MAX_CHUNK_LINE`] bytes, and the trailers, of at most `MAX_TRAILER_BYTES`.
pub(crate) struct ChunkDecoder {
    verifier: ChunkVerifier,
    state: DecodeState,
    line: Vec<u8>,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<String>,
    trailer_bytes: usize,
}

impl ChunkDecoder {
    pub(crate) fn new(verifier: ChunkVerifier) -> Self {
        Self {
            verifier,
            state: DecodeState::Line(LineKind::Header),
            line: Vec::new(),
            trailers: Vec::new(),
            trailer_signature: None,
            trailer_bytes: 0,
        }
    }

    /// Decodes from the start of `input`, which must not be empty: a run of chunk data, or (part
    /// of) one line. It always consumes at least one byte.
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<Step, AuthError> {
        match &mut self.state {
            DecodeState::Data {
                remaining,
                hash,
                signature,
            } => {
                let n = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                hash.update(&input[..n]);
                *remaining -= n as u64;
                if *remaining == 0 {
                    let digest = hash.finalize_reset();
                    self.verifier.check(&digest, signature.as_deref())?;
                    self.state = DecodeState::Line(LineKind::DataEnd);
                }
                Ok(Step {
                    consumed: n,
                    data: n,
                })
            }
            DecodeState::Line(kind) => {
                let kind = *kind;
                let (consumed, complete) = self.take_line(input)?;
                if complete {
                    let line = std::mem::take(&mut self.line);
                    self.end_line(kind, &line)?;
                }
                Ok(Step { consumed, data: 0 })
            }
        }
    }

    /// Adds the start of `input` to the current line, up to its LF; whether the line is complete.
    fn take_line(&mut self, input: &[u8]) -> Result<(usize, bool), AuthError> {
        let room = MAX_CHUNK_LINE - self.line.len();
        let window = &input[..input.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.line.extend_from_slice(&window[..=end]);
                Ok((end + 1, true))
            }
            None if window.len() == room => Err(AuthError::Malformed(format!(
                "a chunk header or trailer is longer than {MAX_CHUNK_LINE} bytes"
            ))),
            None => {
                self.line.extend_from_slice(window);
                Ok((window.len(), false))
            }
        }
    }

    fn end_line(&mut self, kind: LineKind, raw: &[u8]) -> Result<(), AuthError> {
        let line = raw
            .strip_suffix(b"\r\n")
            .ok_or_else(|| malformed("a chunk line does not end with CRLF"))?;
        let line = std::str::from_utf8(line).map_err(|_| malformed("bad chunk header"))?;
        match kind {
            LineKind::Header => self.start_chunk(line),
            LineKind::DataEnd if line.is_empty() => {
                self.state = DecodeState::Line(LineKind::Header);
                Ok(())
            }
            LineKind::DataEnd => Err(malformed("a chunk is longer than its size")),
            LineKind::Trailer => self.add_trailer(line),
        }
    }

    fn start_chunk(&mut self, header: &str) -> Result<(), AuthError> {
        let (size, signature) = match header.split_once(';') {
            Some((size, ext)) => (size, ext.strip_prefix("chunk-signature=")),
            None => (header, None),
        };
        let size = u64::from_str_radix(size.trim(), 16).map_err(|_| malformed("bad chunk size"))?;
        if size == 0 {
            self.verifier.check(&Sha256::digest(b""), signature)?;
            self.state = DecodeState::Line(LineKind::Trailer);
        } else {
            self.state = DecodeState::Data {
                remaining: size,
                hash: Sha256::new(),
                signature: signature.map(str::to_owned),
            };
        }
        Ok(())
    }

    fn add_trailer(&mut self, line: &str) -> Result<(), AuthError> {
        if line.is_empty() {
            return Ok(());
        }
        if !self.verifier.allows_trailers() {
            return Err(malformed(
                "trailers need an x-amz-content-sha256 of STREAMING-*-TRAILER",
            ));
        }
        self.trailer_bytes += line.len();
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(AuthError::Malformed(format!(
                "the trailers are larger than {MAX_TRAILER_BYTES} bytes"
            )));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("a trailer has no ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        if name != "x-amz-trailer-signature" {
            self.trailers.push((name, value));
        } else if self.trailer_signature.replace(value).is_some() {
            return Err(malformed("x-amz-trailer-signature is repeated"));
        }
        Ok(())
    }

    /// Ends the body: the trailers, once the body is complete and its trailer signature holds.
    pub(crate) fn finish(self) -> Result<Vec<(String, String)>, DecodeError> {
        let partial = !self.line.is_empty();
        let truncated = match self.state {
            DecodeState::Line(LineKind::Trailer) if !partial => None,
            DecodeState::Line(LineKind::Trailer) => Some("a trailer is not terminated"),
            DecodeState::Line(LineKind::Header) => Some("a chunk header is not terminated"),
            DecodeState::Line(LineKind::DataEnd) => Some("a chunk is not terminated"),
            DecodeState::Data { .. } => Some("a chunk is shorter than its size"),
        };
        if let Some(why) = truncated {
            return Err(DecodeError::Truncated(why));
        }
        self.verifier
            .check_trailers(&self.trailers, self.trailer_signature.as_deref())
            .map_err(DecodeError::Invalid)?;
        Ok(self.trailers)
    }
}

/// What a client signs: the request parts and credentials for [`sign`].
pub struct SigningInput<'a> {
    /// The request parts; `headers` must already hold `host` and `x-amz-date`.
    pub parts: RequestParts<'a>,
    /// The body.
    pub body: &'a [u8],
    /// The service rules.
    pub service: SigningService,
    /// The region.
    pub region: &'a str,
    /// The access key.
    pub access_key: &'a str,
    /// The secret key.
    pub secret_key: &'a [u8],
}

/// The `Authorization` header a client would send, signing every header given. For in-process
/// tests and tools; the end-to-end tests use the real AWS signers instead.
pub fn sign(input: &SigningInput<'_>) -> Result<String, AuthError> {
    let parts = &input.parts;
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| malformed("x-amz-date is missing"))?;
    let date = amz_date
        .get(..8)
        .ok_or_else(|| malformed("bad x-amz-date"))?;
    let mut names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let query = parse_query(parts.query)?;
    let hash = payload_hash(parts.headers, BodyForHash::Bytes(input.body), false)?;
    let canonical = canonical_request(parts, &query, &names, &hash, input.service, QueryStyle::Aws);
    let service = input.service.name();
    let scope = format!("{date}/{}/{service}/aws4_request", input.region);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical))
    );
    let key = signing_key(input.secret_key, date, input.region, service);
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    Ok(format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        input.access_key,
        names.join(";")
    ))
}

/// Request helpers for the tests of this module and of the S3 bodies.
#[cfg(test)]
pub(crate) mod test_support {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::{sign, RequestParts, SigningInput, SigningService};

    /// A header map of these pairs, in order.
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    /// Signs a request as `AKID` (secret `SECRET`) in `us-east-1`, every header given, and adds
    /// its `Authorization`; the signature, which seeds an `aws-chunked` body's chain.
    pub(crate) fn sign_request(
        headers: &mut HeaderMap,
        service: SigningService,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> String {
        let auth = sign(&SigningInput {
            parts: RequestParts {
                method,
                path,
                query: "",
                headers,
            },
            body,
            service,
            region: "us-east-1",
            access_key: "AKID",
            secret_key: b"SECRET",
        })
        .unwrap();
        let signature = auth.rsplit("Signature=").next().unwrap().to_owned();
        headers.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(&auth).unwrap(),
        );
        signature
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::test_support::{headers, sign_request};
    use super::*;

    /// The `get-vanilla` case of the AWS SigV4 test suite: checks the canonical request, the key
    /// derivation and the string to sign against AWS's published signature.
    #[test]
    fn matches_the_aws_test_suite_vanilla_get() {
        let h = headers(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ]);
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers: &h,
        };
        let signed = ["host", "x-amz-date"];
        let service = SigningService::ExecuteApi;
        let canonical =
            canonical_request(&parts, &[], &signed, EMPTY_SHA256, service, QueryStyle::Aws);
        let scope = "20150830/us-east-1/service/aws4_request";
        let sts = format!(
            "{ALGORITHM}\n20150830T123600Z\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical))
        );
        let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let key = signing_key(secret, "20150830", "us-east-1", "service");
        assert_eq!(
            hex::encode(hmac(&key, sts.as_bytes())),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    fn secrets(ak: &str) -> Option<SecretBytes> {
        (ak == "AKID").then(|| SecretBytes::new(b"SECRET".to_vec()))
    }

    fn signed_request(date: &str, body: &[u8]) -> HeaderMap {
        let mut h = headers(&[("host", "localhost:9000"), ("x-amz-date", date)]);
        let path = "/rustfs/admin/v3/kms/keys";
        sign_request(&mut h, SigningService::ExecuteApi, "POST", path, body);
        h
    }

    fn check(headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Verified, AuthError> {
        let parts = RequestParts {
            method: "POST",
            path: "/rustfs/admin/v3/kms/keys",
            query: "",
            headers,
        };
        verify(
            &parts,
            body,
            SigningService::ExecuteApi,
            "us-east-1",
            now,
            &secrets,
        )
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_amz_date(text).unwrap()
    }

    #[test]
    fn accepts_a_good_signature_and_refuses_a_changed_body() {
        let h = signed_request("20260101T120000Z", b"{}");
        assert_eq!(
            check(&h, b"{}", at("20260101T120000Z")).unwrap().access_key,
            "AKID"
        );
        assert_eq!(
            check(&h, b"{ }", at("20260101T120000Z")).unwrap_err(),
            AuthError::SignatureMismatch
        );
    }

    #[test]
    fn refuses_skew_beyond_fifteen_minutes_only() {
        let h = signed_request("20260101T120000Z", b"");
        assert!(check(&h, b"", at("20260101T121459Z")).is_ok());
        assert_eq!(
            check(&h, b"", at("20260101T121501Z")).unwrap_err(),
            AuthError::TimeTooSkewed
        );
        assert_eq!(
            check(&h, b"", at("20260101T114459Z")).unwrap_err(),
            AuthError::TimeTooSkewed
        );
    }

    #[test]
    fn refuses_other_regions_and_unknown_keys() {
        let h = signed_request("20260101T120000Z", b"");
        let parts = RequestParts {
            method: "POST",
            path: "/rustfs/admin/v3/kms/keys",
            query: "",
            headers: &h,
        };
        let now = at("20260101T120000Z");
        let err = verify(
            &parts,
            b"",
            SigningService::ExecuteApi,
            "eu-west-1",
            now,
            &secrets,
        );
        assert!(matches!(err, Err(AuthError::WrongRegion { .. })));
        let none = |_: &str| None;
        let err = verify(
            &parts,
            b"",
            SigningService::ExecuteApi,
            "us-east-1",
            now,
            &none,
        );
        assert_eq!(err.unwrap_err(), AuthError::UnknownAccessKey);
        let err = verify(&parts, b"", SigningService::S3, "us-east-1", now, &secrets);
        assert!(
            matches!(err, Err(AuthError::Malformed(_))),
            "an execute-api scope passed as s3"
        );
    }

    #[test]
    fn missing_or_garbled_authorization_is_refused() {
        let now = at("20260101T120000Z");
        assert_eq!(
            check(&headers(&[]), b"", now).unwrap_err(),
            AuthError::Missing
        );
        let garbled = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 nonsense"),
            ("x-amz-date", "20260101T120000Z"),
        ]);
        assert!(matches!(
            check(&garbled, b"", now),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn uri_encoding_follows_aws_rules() {
        assert_eq!(uri_encode("a b/c~d", false), "a%20b/c~d");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("é", true), "%C3%A9");
        assert_eq!(percent_decode("a%2Fb+c"), "a/b+c");
    }

    fn s3_request(content_sha256: Option<&str>, body: &[u8]) -> HeaderMap {
        let mut h = headers(&[
            ("host", "localhost:9000"),
            ("x-amz-date", "20260101T120000Z"),
        ]);
        if let Some(value) = content_sha256 {
            h.insert(
                HeaderName::from_static("x-amz-content-sha256"),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        sign_request(&mut h, SigningService::S3, "PUT", "/bucket/key", body);
        h
    }

    #[test]
    fn chunked_bodies_decode_and_unsigned_ones_need_no_signature() {
        let verifier = ChunkVerifier {
            mode: ChunkMode::UnsignedTrailer,
            key: vec![],
            amz_date: String::new(),
            scope: String::new(),
            previous: String::new(),
        };
        let body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n";
        let decoded = decode_chunked(body, verifier.clone()).unwrap();
        assert_eq!(decoded.data, b"hello");
        assert_eq!(
            decoded.trailers,
            [("x-amz-checksum-crc32".to_owned(), "AAAA".to_owned())]
        );
        assert!(decode_chunked(b"5\r\nhel", verifier.clone()).is_err());
        assert!(decode_chunked(b"zz\r\n", verifier).is_err());
    }

    fn check_s3(headers: &HeaderMap, body: BodyForHash<'_>) -> Result<Verified, AuthError> {
        let parts = RequestParts {
            method: "PUT",
            path: "/bucket/key",
            query: "",
            headers,
        };
        let now = at("20260101T120000Z");
        verify_with(&parts, body, SigningService::S3, "us-east-1", now, &secrets)
    }

    #[test]
    fn a_streamed_body_leaves_its_declared_hash_to_the_reader() {
        let hash = Sha256::digest(b"object data");
        let h = s3_request(Some(&hex::encode(hash)), b"object data");
        let verified = check_s3(&h, BodyForHash::Streamed).unwrap();
        assert_eq!(verified.payload, Payload::Hashed(hash.into()));

        // Buffered, the same request is checked against its body at once, as before.
        let buffered = check_s3(&h, BodyForHash::Bytes(b"object data")).unwrap();
        assert_eq!(buffered.payload, Payload::Plain);
        assert_eq!(
            check_s3(&h, BodyForHash::Bytes(b"other data")).unwrap_err(),
            AuthError::ContentHashMismatch
        );
    }

    #[test]
    fn a_streamed_body_without_a_declared_hash_must_be_buffered() {
        let h = s3_request(None, b"small");
        assert_eq!(
            check_s3(&h, BodyForHash::Streamed).unwrap_err(),
            AuthError::NeedsBufferedBody
        );
        let buffered = check_s3(&h, BodyForHash::Bytes(b"small")).unwrap();
        assert_eq!(buffered.payload, Payload::Plain);
    }

    #[test]
    fn a_streamed_signature_is_still_checked() {
        let h = s3_request(Some(UNSIGNED_PAYLOAD), b"");
        assert_eq!(
            check_s3(&h, BodyForHash::Streamed).unwrap().payload,
            Payload::Plain
        );
        let mut tampered = h.clone();
        tampered.insert(
            HeaderName::from_static("x-amz-content-sha256"),
            HeaderValue::from_static(EMPTY_SHA256),
        );
        assert_eq!(
            check_s3(&tampered, BodyForHash::Streamed).unwrap_err(),
            AuthError::SignatureMismatch
        );
    }

    #[test]
    fn streaming_markers_give_a_chunk_verifier_of_their_mode() {
        for (marker, mode) in [
            (STREAMING_SIGNED, ChunkMode::Signed),
            (STREAMING_SIGNED_TRAILER, ChunkMode::SignedTrailer),
            (STREAMING_UNSIGNED_TRAILER, ChunkMode::UnsignedTrailer),
        ] {
            let h = s3_request(Some(marker), b"");
            for body in [BodyForHash::Streamed, BodyForHash::Bytes(b"0\r\n\r\n")] {
                match check_s3(&h, body).unwrap().payload {
                    Payload::Chunked(verifier) => assert_eq!(verifier.mode, mode),
                    other => panic!("{marker} gave {other:?}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_authorization_headers_are_refused_without_panicking(
            auth in "AWS4-HMAC-SHA256 [ -~]{0,200}",
            date in "[0-9TZ]{0,20}",
            query in "[ -~]{0,80}",
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&auth) {
                headers.insert(HeaderName::from_static("authorization"), v);
            }
            if let Ok(v) = HeaderValue::from_str(&date) {
                headers.insert(HeaderName::from_static("x-amz-date"), v);
            }
            let parts = RequestParts { method: "GET", path: "/", query: &query, headers: &headers };
            let secret = |_: &str| Some(SecretBytes::new(b"s".to_vec()));
            for service in [SigningService::ExecuteApi, SigningService::S3] {
                prop_assert!(verify(&parts, b"", service, "us-east-1", Utc::now(), &secret).is_err());
            }
        }

        #[test]
        fn arbitrary_chunked_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            for mode in [ChunkMode::Signed, ChunkMode::SignedTrailer, ChunkMode::UnsignedTrailer] {
                let verifier = ChunkVerifier {
                    mode,
                    key: vec![1; 32],
                    amz_date: "20260101T000000Z".into(),
                    scope: "20260101/us-east-1/s3/aws4_request".into(),
                    previous: "0".repeat(64),
                };
                let _ = decode_chunked(&body, verifier);
            }
        }
    }
}
