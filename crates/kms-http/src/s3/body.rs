//! S3 request bodies read as a stream, in flat memory: plain or `aws-chunked` (SigV4 streaming,
//! with chunk and trailer signatures), checked against `x-amz-content-sha256`, `Content-MD5` and
//! the `x-amz-checksum-*` headers and trailers as the data goes by.
//!
//! A handler reads a body with [`BodyStream`]: it takes the decoded data piece by piece
//! ([`BodyStream::next_chunk`]), writes it to a temporary file, then calls
//! [`BodyStream::finish`], which says whether the body is what the request promised. Nothing read
//! may be trusted before `finish` succeeds: the data of an `aws-chunked` chunk is handed out as it
//! arrives, before the chunk's signature (sent ahead of the data, covering all of it) can be
//! checked at the chunk's end, and hashes and checksums can only be checked at the end of the
//! body. The caller commits what it wrote only once `finish` has succeeded.
//!
//! [`Checksums`] is the one place that knows which header names which checksum algorithm; the
//! buffered bucket routes use it too. The `aws-chunked` decoder is the one of
//! [`sigv4::decode_chunked`](crate::sigv4::decode_chunked), fed here piece by piece.

use std::fmt;
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::header::HeaderMap;
use actix_web::web::{self, Bytes};
use actix_web::HttpRequest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::stream::LocalBoxStream;
use futures_util::StreamExt;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{S3Error, S3ErrorKind};
use crate::request::BODY_TIMEOUT;
use crate::sigv4::{AuthError, ChunkDecoder, DecodeError, Payload};

const CHECKSUM_PREFIX: &str = "x-amz-checksum-";

/// Why a body could not be read, or is not what its request promised. Messages never quote the
/// body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyStreamError {
    /// The body is, or is declared to be, larger than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// No byte of the body arrived for [`BODY_TIMEOUT`].
    Timeout,
    /// The connection broke, or the body ended before it was complete.
    Incomplete,
    /// The `aws-chunked` framing is malformed, or a chunk or trailer signature does not match.
    BadChunk(AuthError),
    /// The body does not hash to its `x-amz-content-sha256`.
    ContentSha256Mismatch,
    /// A `Content-MD5` or `x-amz-checksum-*` value is not valid base64 or does not match.
    BadDigest {
        /// The header or trailer, lower case.
        header: String,
    },
    /// A checksum header or trailer is unknown, unannounced or missing.
    InvalidRequest(String),
}

impl fmt::Display for BodyStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            Self::Timeout => f.write_str("the body did not arrive in time"),
            Self::Incomplete => f.write_str("the body ended before it was complete"),
            Self::BadChunk(e) => e.fmt(f),
            Self::ContentSha256Mismatch => AuthError::ContentHashMismatch.fmt(f),
            Self::BadDigest { header } => {
                write!(
                    f,
                    "the {header} you specified did not match what was received"
                )
            }
            Self::InvalidRequest(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BodyStreamError {}

impl BodyStreamError {
    /// The S3 error for this failure, about `resource`.
    pub fn to_s3(&self, resource: &str) -> S3Error {
        let kind = match self {
            Self::TooLarge { .. } => S3ErrorKind::EntityTooLarge,
            Self::Timeout => S3ErrorKind::RequestTimeout,
            Self::Incomplete => S3ErrorKind::IncompleteBody,
            Self::BadChunk(e) => return S3Error::from_auth(e.clone(), resource),
            Self::ContentSha256Mismatch => S3ErrorKind::ContentSha256Mismatch,
            Self::BadDigest { .. } => S3ErrorKind::BadDigest,
            Self::InvalidRequest(_) => S3ErrorKind::InvalidRequest,
        };
        S3Error::new(kind, self.to_string(), resource)
    }
}

fn invalid(why: impl Into<String>) -> BodyStreamError {
    BodyStreamError::InvalidRequest(why.into())
}

/// The checksum algorithms of S3's `x-amz-checksum-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChecksumAlgorithm {
    /// CRC-32 (ISO HDLC, as zlib).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    const ALL: [Self; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The name S3 gives the algorithm (`x-amz-sdk-checksum-algorithm`, `ChecksumAlgorithm`).
    fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header (or trailer) that carries the checksum.
    fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The algorithm a header (or trailer) name, lower case, carries.
    fn from_header(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.header() == name)
    }
}

/// A checksum of a body as S3 reports it: the algorithm and the base64 value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    /// The algorithm, as S3 names it: `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: &'static str,
    /// The checksum, base64 encoded as in the `x-amz-checksum-*` headers.
    pub value: String,
}

enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => Self::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            Self::Crc64Nvme(h) => h.write(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Self::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            Self::Crc64Nvme(h) => h.sum64().to_be_bytes().to_vec(),
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// One checksum a request promises: from a header, or from a trailer announced in
/// `x-amz-trailer`.
struct Expected {
    algorithm: ChecksumAlgorithm,
    /// The base64 value of a header; `None` when it comes as a trailer.
    value: Option<String>,
    /// Which of [`Checksums::hashers`] computes it.
    hasher: usize,
}

/// The integrity values a request gives for its body (`Content-MD5`, `x-amz-checksum-*` headers
/// and trailers), computed incrementally over the body and verified at its end. Only what was
/// given is computed: the MD5 only with `Content-MD5` (object ETags come from the stored bytes).
pub struct Checksums {
    md5: Option<Md5>,
    content_md5: Vec<String>,
    expected: Vec<Expected>,
    hashers: Vec<(ChecksumAlgorithm, Hasher)>,
}

impl Checksums {
    fn new() -> Self {
        Self {
            md5: None,
            content_md5: Vec::new(),
            expected: Vec::new(),
            hashers: Vec::new(),
        }
    }

    /// The values a request's headers promise: `Content-MD5`, `x-amz-checksum-*` (but
    /// `x-amz-checksum-type`) and the checksum trailers announced in `x-amz-trailer`. An unknown
    /// checksum header or trailer is `InvalidRequest`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, BodyStreamError> {
        let mut checksums = Self::new();
        for (name, value) in headers {
            let name = name.as_str();
            let value = || String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
            if name == "content-md5" {
                checksums.md5.get_or_insert_with(Md5::new);
                checksums.content_md5.push(value());
            } else if name.starts_with(CHECKSUM_PREFIX) && name != "x-amz-checksum-type" {
                let algorithm = ChecksumAlgorithm::from_header(name)
                    .ok_or_else(|| invalid(format!("unsupported checksum header {name}")))?;
                checksums.expect(algorithm, Some(value()));
            }
        }
        for value in headers.get_all("x-amz-trailer") {
            let names = value
                .to_str()
                .map_err(|_| invalid("x-amz-trailer is not ASCII"))?;
            for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                checksums.expect_trailer(&name.to_ascii_lowercase())?;
            }
        }
        Ok(checksums)
    }

    /// Expects the checksum trailer `name` (lower case), as `x-amz-trailer` announces one.
    pub fn expect_trailer(&mut self, name: &str) -> Result<(), BodyStreamError> {
        let algorithm = ChecksumAlgorithm::from_header(name)
            .ok_or_else(|| invalid(format!("unsupported trailer {}", name.escape_debug())))?;
        let known = self
            .expected
            .iter()
            .any(|e| e.algorithm == algorithm && e.value.is_none());
        if !known {
            self.expect(algorithm, None);
        }
        Ok(())
    }

    fn expect(&mut self, algorithm: ChecksumAlgorithm, value: Option<String>) {
        let hasher = match self.hashers.iter().position(|(a, _)| *a == algorithm) {
            Some(index) => index,
            None => {
                self.hashers.push((algorithm, Hasher::new(algorithm)));
                self.hashers.len() - 1
            }
        };
        self.expected.push(Expected {
            algorithm,
            value,
            hasher,
        });
    }

    /// Whether the request gives no integrity value at all.
    pub fn is_empty(&self) -> bool {
        self.content_md5.is_empty() && self.expected.is_empty()
    }

    /// Adds the next piece of the body.
    pub fn update(&mut self, data: &[u8]) {
        if let Some(md5) = &mut self.md5 {
            md5.update(data);
        }
        for (_, hasher) in &mut self.hashers {
            hasher.update(data);
        }
    }

    /// Checks every value given against the body, the trailer values among `trailers` (names
    /// lower case). A bad base64 or a mismatch is `BadDigest`; a checksum trailer announced but
    /// missing, or present but not announced, is `InvalidRequest`. Returns the first
    /// `x-amz-checksum-*` given, as a header or a trailer, now verified.
    pub fn verify(
        self,
        trailers: &[(String, String)],
    ) -> Result<Option<Checksum>, BodyStreamError> {
        if let Some(md5) = self.md5 {
            let md5: [u8; 16] = md5.finalize().into();
            for given in &self.content_md5 {
                check_digest(given, &md5, "content-md5")?;
            }
        }
        for (name, _) in trailers
            .iter()
            .filter(|(n, _)| n.starts_with(CHECKSUM_PREFIX))
        {
            let announced = self
                .expected
                .iter()
                .any(|e| e.value.is_none() && e.algorithm.header() == name);
            if !announced {
                let name = name.escape_debug();
                return Err(invalid(format!(
                    "the trailer {name} is not announced in x-amz-trailer"
                )));
            }
        }
        let actual: Vec<Vec<u8>> = self.hashers.into_iter().map(|(_, h)| h.finish()).collect();
        let mut checksum = None;
        for expected in &self.expected {
            let actual = &actual[expected.hasher];
            let header = expected.algorithm.header();
            match &expected.value {
                Some(value) => check_digest(value, actual, header)?,
                None => {
                    let mut values = trailers.iter().filter(|(n, _)| n == header).peekable();
                    if values.peek().is_none() {
                        return Err(invalid(format!(
                            "the trailer {header} announced in x-amz-trailer is missing"
                        )));
                    }
                    for (_, value) in values {
                        check_digest(value, actual, header)?;
                    }
                }
            }
            checksum.get_or_insert_with(|| Checksum {
                algorithm: expected.algorithm.name(),
                value: STANDARD.encode(actual),
            });
        }
        Ok(checksum)
    }
}

fn check_digest(given: &str, actual: &[u8], header: &str) -> Result<(), BodyStreamError> {
    if STANDARD.decode(given).ok().as_deref() == Some(actual) {
        Ok(())
    } else {
        Err(BodyStreamError::BadDigest {
            header: header.to_owned(),
        })
    }
}

/// What a body turned out to be, once [`BodyStream::finish`] has verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodySummary {
    /// The length of the decoded body.
    pub length: u64,
    /// The first `x-amz-checksum-*` given, as a header or a trailer, now verified.
    pub checksum: Option<Checksum>,
    /// The trailers of an `aws-chunked` body, names lower case, without the trailer signature.
    pub trailers: Vec<(String, String)>,
}

enum StreamState {
    Reading,
    Ended {
        trailers: Vec<(String, String)>,
    },
    Failed(BodyStreamError),
    /// [`BodyStream::finish`] has been called.
    Finished,
}

/// A request body read as a stream of decoded data, verified as it goes and at its end. See the
/// module documentation for what may be trusted when.
pub struct BodyStream {
    source: LocalBoxStream<'static, Result<Bytes, PayloadError>>,
    /// Bytes received and not yet decoded.
    pending: Bytes,
    /// The decoder of an `aws-chunked` body; `None` for a plain one.
    decoder: Option<ChunkDecoder>,
    /// The SHA-256 the signature covers, and the hash of what has been read.
    content_sha256: Option<(Sha256, [u8; 32])>,
    checksums: Checksums,
    limit: u64,
    /// The `x-amz-decoded-content-length` of an `aws-chunked` body.
    decoded_length: Option<u64>,
    received: u64,
    /// The trailers of a body decoded before it was handed over ([`Self::buffered`]).
    decoded_trailers: Vec<(String, String)>,
    idle_timeout: Duration,
    state: StreamState,
}

impl BodyStream {
    /// Streams the body of `req`, read as `payload_mode` (from the request's verification, see
    /// `AppState::authenticate_streamed`) says, refusing more than `limit` decoded bytes. A
    /// `Content-Length` (plain) or `x-amz-decoded-content-length` (`aws-chunked`) above the
    /// limit, or an unknown checksum header, is refused at once.
    pub fn new(
        req: &HttpRequest,
        payload: web::Payload,
        payload_mode: Payload,
        limit: u64,
    ) -> Result<Self, BodyStreamError> {
        Self::from_source(req.headers(), payload.boxed_local(), payload_mode, limit)
    }

    /// A body already read whole, authenticated and decoded (after
    /// [`AuthError::NeedsBufferedBody`]), with its trailers: the stream hands it out in one
    /// piece and [`Self::finish`] checks its `Content-MD5` and checksums. A checksum header it
    /// cannot check makes the stream end at once and `finish` fail.
    pub fn buffered(req: &HttpRequest, body: Bytes, trailers: Vec<(String, String)>) -> Self {
        let source = futures_util::stream::once(async move { Ok(body) }).boxed_local();
        let mut stream = match Self::from_source(req.headers(), source, Payload::Plain, u64::MAX) {
            Ok(stream) => stream,
            Err(e) => Self::failed(e),
        };
        stream.decoded_trailers = trailers;
        stream
    }

    /// A stream that ends at once, `finish` failing with `e`.
    fn failed(e: BodyStreamError) -> Self {
        let source = futures_util::stream::empty().boxed_local();
        let mut stream = Self::with_parts(source, None, None, Checksums::new(), 0, None);
        stream.state = StreamState::Failed(e);
        stream
    }

    fn from_source(
        headers: &HeaderMap,
        source: LocalBoxStream<'static, Result<Bytes, PayloadError>>,
        payload_mode: Payload,
        limit: u64,
    ) -> Result<Self, BodyStreamError> {
        let (decoder, content_sha256) = match payload_mode {
            Payload::Plain => (None, None),
            Payload::Hashed(expected) => (None, Some((Sha256::new(), expected))),
            Payload::Chunked(verifier) => (Some(ChunkDecoder::new(verifier)), None),
        };
        // The Content-Length of an aws-chunked body counts its framing as well, so only the
        // decoded length says whether the data fits.
        let decoded_length = match &decoder {
            Some(_) => header_length(headers, "x-amz-decoded-content-length")?,
            None => None,
        };
        let declared = match &decoder {
            Some(_) => decoded_length,
            None => header_length(headers, "content-length").unwrap_or(None),
        };
        if declared.is_some_and(|n| n > limit) {
            return Err(BodyStreamError::TooLarge { limit });
        }
        let checksums = Checksums::from_headers(headers)?;
        Ok(Self::with_parts(
            source,
            decoder,
            content_sha256,
            checksums,
            limit,
            decoded_length,
        ))
    }

    fn with_parts(
        source: LocalBoxStream<'static, Result<Bytes, PayloadError>>,
        decoder: Option<ChunkDecoder>,
        content_sha256: Option<(Sha256, [u8; 32])>,
        checksums: Checksums,
        limit: u64,
        decoded_length: Option<u64>,
    ) -> Self {
        Self {
            source,
            pending: Bytes::new(),
            decoder,
            content_sha256,
            checksums,
            limit,
            decoded_length,
            received: 0,
            decoded_trailers: Vec::new(),
            idle_timeout: BODY_TIMEOUT,
            state: StreamState::Reading,
        }
    }

    /// The next piece of decoded data; `None` at the end of the body, after which
    /// [`Self::finish`] says whether it is valid. Each wait for the network is bounded by
    /// [`BODY_TIMEOUT`], the whole body is not. After an error, the stream ends.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, BodyStreamError>> {
        if !matches!(self.state, StreamState::Reading) {
            return None;
        }
        match self.read_data().await {
            Ok(Some(data)) => Some(Ok(data)),
            Ok(None) => None,
            Err(e) => {
                self.state = StreamState::Failed(e.clone());
                Some(Err(e))
            }
        }
    }

    async fn read_data(&mut self) -> Result<Option<Bytes>, BodyStreamError> {
        loop {
            if self.pending.is_empty() {
                match self.receive().await? {
                    Some(bytes) => self.pending = bytes,
                    None => {
                        let trailers = self.end()?;
                        self.state = StreamState::Ended { trailers };
                        return Ok(None);
                    }
                }
                continue;
            }
            let data = match &mut self.decoder {
                None => std::mem::take(&mut self.pending),
                Some(decoder) => {
                    let step = decoder
                        .step(&self.pending)
                        .map_err(BodyStreamError::BadChunk)?;
                    let data = self.pending.slice(..step.data);
                    self.pending = self.pending.slice(step.consumed..);
                    data
                }
            };
            if !data.is_empty() {
                self.account(&data)?;
                return Ok(Some(data));
            }
        }
    }

    /// The next bytes from the network, waiting at most the idle timeout for them.
    async fn receive(&mut self) -> Result<Option<Bytes>, BodyStreamError> {
        match tokio::time::timeout(self.idle_timeout, self.source.next()).await {
            Err(_) => Err(BodyStreamError::Timeout),
            Ok(None) => Ok(None),
            Ok(Some(Err(_))) => Err(BodyStreamError::Incomplete),
            Ok(Some(Ok(bytes))) => Ok(Some(bytes)),
        }
    }

    fn account(&mut self, data: &[u8]) -> Result<(), BodyStreamError> {
        self.received += data.len() as u64;
        if self.received > self.limit {
            return Err(BodyStreamError::TooLarge { limit: self.limit });
        }
        if self.decoded_length.is_some_and(|n| self.received > n) {
            return Err(BodyStreamError::BadChunk(AuthError::Malformed(
                "the body is longer than x-amz-decoded-content-length".into(),
            )));
        }
        if let Some((hash, _)) = &mut self.content_sha256 {
            hash.update(data);
        }
        self.checksums.update(data);
        Ok(())
    }

    fn end(&mut self) -> Result<Vec<(String, String)>, BodyStreamError> {
        let trailers = match self.decoder.take() {
            None => std::mem::take(&mut self.decoded_trailers),
            Some(decoder) => decoder.finish().map_err(|e| match e {
                DecodeError::Invalid(e) => BodyStreamError::BadChunk(e),
                DecodeError::Truncated(_) => BodyStreamError::Incomplete,
            })?,
        };
        if self.decoded_length.is_some_and(|n| self.received < n) {
            return Err(BodyStreamError::Incomplete);
        }
        Ok(trailers)
    }

    /// Verifies the body once [`Self::next_chunk`] has returned `None`: its
    /// `x-amz-content-sha256`, `Content-MD5` and every `x-amz-checksum-*` header and trailer.
    /// After a failed read it is that failure; called before the end (which ends the stream) or
    /// a second time, it is `Incomplete`.
    pub fn finish(&mut self) -> Result<BodySummary, BodyStreamError> {
        let trailers = match std::mem::replace(&mut self.state, StreamState::Finished) {
            StreamState::Ended { trailers } => trailers,
            StreamState::Failed(e) => {
                self.state = StreamState::Failed(e.clone());
                return Err(e);
            }
            StreamState::Reading | StreamState::Finished => {
                return Err(BodyStreamError::Incomplete)
            }
        };
        if let Some((hash, expected)) = self.content_sha256.take() {
            if hash.finalize()[..] != expected {
                return Err(BodyStreamError::ContentSha256Mismatch);
            }
        }
        let checksums = std::mem::replace(&mut self.checksums, Checksums::new());
        let checksum = checksums.verify(&trailers)?;
        Ok(BodySummary {
            length: self.received,
            checksum,
            trailers,
        })
    }
}

/// A length header as a number: `None` when absent, `InvalidRequest` when not a number.
fn header_length(headers: &HeaderMap, name: &str) -> Result<Option<u64>, BodyStreamError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::rc::Rc;

    use chrono::NaiveDateTime;
    use futures_util::stream;
    use kms_core::SecretBytes;
    use proptest::prelude::*;

    use super::*;
    use crate::sigv4::test_support::{headers as header_map, sign_request};
    use crate::sigv4::{
        self, BodyForHash, RequestParts, SigningService, EMPTY_SHA256, MAX_CHUNK_LINE,
    };

    const DATE: &str = "20260101T120000Z";
    const SCOPE: &str = "20260101/us-east-1/s3/aws4_request";
    const SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    const SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
    const UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

    /// `123456789`, the check input of the CRC catalogues, and its published digests.
    const CHECK_INPUT: &[u8] = b"123456789";
    const CHECK_VALUES: [(&str, &str, &str); 5] = [
        ("x-amz-checksum-crc32", "CRC32", "y/Q5Jg=="),
        ("x-amz-checksum-crc32c", "CRC32C", "4waSgw=="),
        ("x-amz-checksum-crc64nvme", "CRC64NVME", "rosUhgp5mIg="),
        (
            "x-amz-checksum-sha1",
            "SHA1",
            "98O8HYCOBHMq32eZZczDTKeuNEE=",
        ),
        (
            "x-amz-checksum-sha256",
            "SHA256",
            "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=",
        ),
    ];
    const CHECK_MD5: &str = "JfnnlDI7RTiF9RgfG2JNCw==";

    /// A request with these headers, signed by [`sigv4::sign`] and verified before its body is
    /// read: its headers, how to read its body, and its seed signature.
    fn signed(pairs: &[(&str, &str)], body: &[u8]) -> (HeaderMap, Payload, String) {
        let mut all = vec![("host", "localhost:9000"), ("x-amz-date", DATE)];
        all.extend_from_slice(pairs);
        let mut h = header_map(&all);
        let seed = sign_request(&mut h, SigningService::S3, "PUT", "/bucket/key", body);
        let parts = RequestParts {
            method: "PUT",
            path: "/bucket/key",
            query: "",
            headers: &h,
        };
        let now = NaiveDateTime::parse_from_str(DATE, "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc();
        let secret = |ak: &str| (ak == "AKID").then(|| SecretBytes::new(b"SECRET".to_vec()));
        let service = SigningService::S3;
        let verified = sigv4::verify_with(
            &parts,
            BodyForHash::Streamed,
            service,
            "us-east-1",
            now,
            &secret,
        )
        .unwrap();
        (h, verified.payload, seed)
    }

    /// A client's side of `aws-chunked` signing, written from the AWS documentation rather than
    /// from the verifier.
    struct ChunkSigner {
        key: Vec<u8>,
        previous: String,
    }

    impl ChunkSigner {
        fn new(seed: &str) -> Self {
            Self {
                key: sigv4::signing_key(b"SECRET", "20260101", "us-east-1", "s3"),
                previous: seed.to_owned(),
            }
        }

        fn sign(&mut self, data: &[u8]) -> String {
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{}\n{EMPTY_SHA256}\n{}",
                self.previous,
                hex::encode(Sha256::digest(data))
            );
            self.previous = hex::encode(sigv4::hmac(&self.key, string_to_sign.as_bytes()));
            self.previous.clone()
        }

        fn sign_trailers(&self, trailers: &[(&str, &str)]) -> String {
            let mut sorted = trailers.to_vec();
            sorted.sort();
            let canonical: String = sorted.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{}\n{}",
                self.previous,
                hex::encode(Sha256::digest(canonical.as_bytes()))
            );
            hex::encode(sigv4::hmac(&self.key, string_to_sign.as_bytes()))
        }
    }

    /// The wire form of `data` in chunks of `size` bytes, signed when `signer` is given, then
    /// the trailers, signed as well when `sign_trailers`.
    fn chunked(
        data: &[u8],
        size: usize,
        mut signer: Option<&mut ChunkSigner>,
        trailers: &[(&str, &str)],
        sign_trailers: bool,
    ) -> Vec<u8> {
        let mut wire = Vec::new();
        for piece in data.chunks(size).chain([&[][..]]) {
            let header = match signer.as_deref_mut() {
                Some(s) => format!("{:x};chunk-signature={}\r\n", piece.len(), s.sign(piece)),
                None => format!("{:x}\r\n", piece.len()),
            };
            wire.extend_from_slice(header.as_bytes());
            if !piece.is_empty() {
                wire.extend_from_slice(piece);
                wire.extend_from_slice(b"\r\n");
            }
        }
        for (name, value) in trailers {
            wire.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
        }
        if sign_trailers {
            let signature = signer.unwrap().sign_trailers(trailers);
            wire.extend_from_slice(format!("x-amz-trailer-signature:{signature}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        wire
    }

    fn crc32(data: &[u8]) -> String {
        STANDARD.encode(crc32fast::hash(data).to_be_bytes())
    }

    /// A request for a signed-trailer body of `length` bytes with a CRC-32 trailer.
    fn trailer_request(length: usize) -> (HeaderMap, Payload, String) {
        let length = length.to_string();
        signed(
            &[
                ("content-encoding", "aws-chunked"),
                ("x-amz-content-sha256", SIGNED_TRAILER),
                ("x-amz-decoded-content-length", &length),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
            ],
            b"",
        )
    }

    /// A signed-trailer body of `data` with its CRC-32 as a trailer: headers, mode and wire.
    fn signed_trailer_body(data: &[u8], size: usize) -> (HeaderMap, Payload, Vec<u8>) {
        let (headers, mode, seed) = trailer_request(data.len());
        let mut signer = ChunkSigner::new(&seed);
        let checksum = crc32(data);
        let trailers = [("x-amz-checksum-crc32", checksum.as_str())];
        let wire = chunked(data, size, Some(&mut signer), &trailers, true);
        (headers, mode, wire)
    }

    type Outcome = Result<(Vec<u8>, BodySummary), BodyStreamError>;

    async fn read_with(mut body: BodyStream) -> Outcome {
        let mut data = Vec::new();
        while let Some(piece) = body.next_chunk().await {
            data.extend_from_slice(&piece?);
        }
        Ok((data, body.finish()?))
    }

    /// Reads a body that arrives in these pieces.
    async fn read(headers: &HeaderMap, mode: Payload, pieces: Vec<Vec<u8>>, limit: u64) -> Outcome {
        let source = stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p)))).boxed_local();
        read_with(BodyStream::from_source(headers, source, mode, limit)?).await
    }

    #[track_caller]
    fn assert_malformed(outcome: &Outcome) {
        let malformed = matches!(
            outcome,
            Err(BodyStreamError::BadChunk(AuthError::Malformed(_)))
        );
        assert!(malformed, "{outcome:?}");
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn cut(wire: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for end in cuts.into_iter().chain([wire.len()]) {
            pieces.push(wire[start..end].to_vec());
            start = end;
        }
        pieces
    }

    const LIMIT: u64 = 1 << 20;

    #[tokio::test]
    async fn a_signed_chunked_body_decodes_the_same_however_it_is_split() {
        let data: Vec<u8> = (0..200u8).collect();
        let (headers, mode, wire) = signed_trailer_body(&data, 64);
        let whole = read(&headers, mode.clone(), vec![wire.clone()], LIMIT).await;
        let (decoded, summary) = whole.clone().unwrap();
        assert_eq!(decoded, data);
        assert_eq!(summary.length, 200);
        let checksum = summary.checksum.unwrap();
        assert_eq!(
            (checksum.algorithm, checksum.value),
            ("CRC32", crc32(&data))
        );
        assert_eq!(summary.trailers[0].0, "x-amz-checksum-crc32");

        for at in 0..=wire.len() {
            let split = read(&headers, mode.clone(), cut(&wire, &[at]), LIMIT).await;
            assert_eq!(split, whole, "split at {at}");
        }
        let bytes = wire.iter().map(|b| vec![*b]).collect();
        assert_eq!(read(&headers, mode, bytes, LIMIT).await, whole);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_data_and_verdict_as_the_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            size in 1usize..100,
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            tamper in proptest::option::of((any::<usize>(), 1u8..=255)),
        ) {
            let (headers, mode, mut wire) = signed_trailer_body(&data, size);
            if let Some((at, flip)) = tamper {
                let at = at % wire.len();
                wire[at] ^= flip;
            }
            let whole = block_on(read(&headers, mode.clone(), vec![wire.clone()], LIMIT));
            let split = block_on(read(&headers, mode, cut(&wire, &cuts), LIMIT));
            prop_assert_eq!(&split, &whole);
            if tamper.is_none() {
                prop_assert_eq!(whole.unwrap().0, data);
            }
        }
    }

    #[tokio::test]
    async fn a_tampered_chunk_or_chunk_signature_is_refused() {
        let data = b"first piece of data, then the second".to_vec();
        let (headers, mode, wire) = signed_trailer_body(&data, 16);
        let mismatch = Err(BodyStreamError::BadChunk(AuthError::SignatureMismatch));

        let mut changed_data = wire.clone();
        let at = changed_data.windows(4).position(|w| w == b"then").unwrap();
        changed_data[at] = b'T';
        let outcome = read(&headers, mode.clone(), vec![changed_data], LIMIT).await;
        assert_eq!(outcome, mismatch);

        let text = String::from_utf8(wire.clone()).unwrap();
        let at = text.find("chunk-signature=").unwrap() + "chunk-signature=".len();
        let mut changed_signature = wire.clone();
        changed_signature[at] = if wire[at] == b'0' { b'1' } else { b'0' };
        let outcome = read(&headers, mode.clone(), vec![changed_signature], LIMIT).await;
        assert_eq!(outcome, mismatch);
        let error = outcome.unwrap_err().to_s3("/bucket/key");
        assert_eq!(error.code(), "SignatureDoesNotMatch");
        assert_eq!(error.status().as_u16(), 403);

        let unsigned = chunked(&data, 16, None, &[], false);
        let outcome = read(&headers, mode, vec![unsigned], LIMIT).await;
        assert_malformed(&outcome);
    }

    #[tokio::test]
    async fn a_tampered_or_missing_trailer_signature_is_refused() {
        let data = b"trailer test".to_vec();
        let (headers, mode, wire) = signed_trailer_body(&data, 5);
        let text = String::from_utf8(wire).unwrap();
        let mismatch = Err(BodyStreamError::BadChunk(AuthError::SignatureMismatch));

        // Another checksum, as a man in the middle would put: the trailer signature catches it
        // before the checksum is compared.
        let other = text.replace(&crc32(&data), &crc32(b"other data"));
        let outcome = read(&headers, mode.clone(), vec![other.into_bytes()], LIMIT).await;
        assert_eq!(outcome, mismatch);

        let at = text.find("x-amz-trailer-signature:").unwrap() + 24;
        let mut changed = text.clone().into_bytes();
        changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
        let outcome = read(&headers, mode.clone(), vec![changed], LIMIT).await;
        assert_eq!(outcome, mismatch);

        let end = text[at..].find("\r\n").unwrap() + at + 2;
        let without = format!("{}{}", &text[..at - 24], &text[end..]);
        let outcome = read(&headers, mode, vec![without.into_bytes()], LIMIT).await;
        let expected = AuthError::Malformed("the trailer signature is missing".into());
        assert_eq!(outcome, Err(BodyStreamError::BadChunk(expected)));
    }

    #[tokio::test]
    async fn trailers_need_a_trailer_payload() {
        let (headers, mode, seed) = signed(&[("x-amz-content-sha256", SIGNED)], b"");
        let mut signer = ChunkSigner::new(&seed);
        let plain = chunked(b"data", 4, Some(&mut signer), &[], false);
        let (data, summary) = read(&headers, mode.clone(), vec![plain], LIMIT)
            .await
            .unwrap();
        assert_eq!((data.as_slice(), summary.trailers.len()), (&b"data"[..], 0));

        let mut signer = ChunkSigner::new(&seed);
        let checksum = crc32(b"data");
        let trailers = [("x-amz-checksum-crc32", checksum.as_str())];
        let smuggled = chunked(b"data", 4, Some(&mut signer), &trailers, false);
        let outcome = read(&headers, mode, vec![smuggled], LIMIT).await;
        assert_malformed(&outcome);
    }

    #[tokio::test]
    async fn trailers_are_signed_in_name_order() {
        let (headers, mode, seed) = signed(&[("x-amz-content-sha256", SIGNED_TRAILER)], b"");
        let mut signer = ChunkSigner::new(&seed);
        let trailers = [("x-amz-meta-b", "2"), ("x-amz-meta-a", "1")];
        let wire = chunked(b"data", 4, Some(&mut signer), &trailers, true);
        let (_, summary) = read(&headers, mode, vec![wire], LIMIT).await.unwrap();
        assert_eq!(summary.trailers.len(), 2);
    }

    /// A source of `count` pieces of `piece` bytes of `fill`, counting the pieces taken.
    fn endless(
        fill: u8,
        piece: usize,
        count: usize,
        taken: Rc<Cell<usize>>,
    ) -> LocalBoxStream<'static, Result<Bytes, PayloadError>> {
        stream::iter((0..count).map(move |_| {
            taken.set(taken.get() + 1);
            Ok(Bytes::from(vec![fill; piece]))
        }))
        .boxed_local()
    }

    #[tokio::test]
    async fn an_endless_chunk_header_is_refused_within_its_bound() {
        let (headers, mode, _) = signed(&[("x-amz-content-sha256", SIGNED)], b"");
        let taken = Rc::new(Cell::new(0));
        // 1 GiB of hex digits that never end a line, offered 1 KiB at a time.
        let source = endless(b'f', 1024, 1 << 20, taken.clone());
        let body = BodyStream::from_source(&headers, source, mode.clone(), u64::MAX).unwrap();
        let outcome = read_with(body).await;
        let expected = format!("a chunk header or trailer is longer than {MAX_CHUNK_LINE} bytes");
        assert_eq!(
            outcome,
            Err(BodyStreamError::BadChunk(AuthError::Malformed(expected)))
        );
        assert!(
            taken.get() <= MAX_CHUNK_LINE / 1024 + 1,
            "{} pieces read",
            taken.get()
        );

        // The same in one piece: refused without copying it.
        let huge = vec![b'f'; 1 << 20];
        let outcome = read(&headers, mode, vec![huge], u64::MAX).await;
        assert!(matches!(outcome, Err(BodyStreamError::BadChunk(_))));
    }

    #[tokio::test]
    async fn endless_trailers_are_refused() {
        let (headers, mode, _) = signed(&[("x-amz-content-sha256", UNSIGNED_TRAILER)], b"");
        let mut wire = b"0\r\n".to_vec();
        for i in 0..1000 {
            wire.extend_from_slice(format!("x-amz-meta-{i}:{}\r\n", "v".repeat(100)).as_bytes());
        }
        let outcome = read(&headers, mode, vec![wire], LIMIT).await;
        assert!(
            matches!(outcome, Err(BodyStreamError::BadChunk(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn checksum_headers_are_verified_for_every_algorithm() {
        for (header, name, value) in CHECK_VALUES {
            let headers = header_map(&[(header, value), ("content-md5", CHECK_MD5)]);
            let pieces = vec![b"1234".to_vec(), b"56789".to_vec()];
            let (_, summary) = read(&headers, Payload::Plain, pieces, LIMIT).await.unwrap();
            let checksum = summary.checksum.unwrap();
            assert_eq!((checksum.algorithm, checksum.value.as_str()), (name, value));

            let bad_digest = Err(BodyStreamError::BadDigest {
                header: header.to_owned(),
            });
            for wrong in ["AAAAAAAA", "not base64!", ""] {
                let headers = header_map(&[(header, wrong)]);
                let pieces = vec![CHECK_INPUT.to_vec()];
                assert_eq!(
                    read(&headers, Payload::Plain, pieces, LIMIT).await,
                    bad_digest,
                    "{header}: {wrong}"
                );
            }
            let pieces = vec![b"123456780".to_vec()];
            let headers = header_map(&[(header, value)]);
            let outcome = read(&headers, Payload::Plain, pieces, LIMIT).await;
            assert_eq!(outcome, bad_digest);
            assert_eq!(outcome.unwrap_err().to_s3("/b/k").code(), "BadDigest");
        }
    }

    #[tokio::test]
    async fn content_md5_is_verified_when_given() {
        let good = header_map(&[("content-md5", CHECK_MD5)]);
        let plain = read(&good, Payload::Plain, vec![CHECK_INPUT.to_vec()], LIMIT);
        let (data, summary) = plain.await.unwrap();
        assert_eq!(data, CHECK_INPUT);
        assert_eq!(summary.checksum, None);

        let headers = header_map(&[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")]);
        let outcome = read(&headers, Payload::Plain, vec![CHECK_INPUT.to_vec()], LIMIT).await;
        let header = "content-md5".to_owned();
        assert_eq!(outcome, Err(BodyStreamError::BadDigest { header }));
    }

    #[test]
    fn unknown_checksum_headers_and_trailers_are_invalid() {
        for pairs in [
            [("x-amz-checksum-md4", "AAAA")],
            [("x-amz-trailer", "x-amz-checksum-md4")],
            [("x-amz-trailer", "x-amz-meta-other")],
        ] {
            let headers = header_map(&pairs);
            let source = stream::empty().boxed_local();
            let refused = BodyStream::from_source(&headers, source, Payload::Plain, LIMIT).err();
            assert!(
                matches!(refused, Some(BodyStreamError::InvalidRequest(_))),
                "{pairs:?}"
            );
            assert_eq!(refused.unwrap().to_s3("/b/k").code(), "InvalidRequest");
        }
        let headers = header_map(&[("x-amz-checksum-type", "FULL_OBJECT")]);
        let checksums = Checksums::from_headers(&headers).unwrap();
        assert!(checksums.is_empty());
    }

    #[tokio::test]
    async fn checksum_trailers_are_verified_for_every_algorithm() {
        let (_, mode, _) = signed(&[("x-amz-content-sha256", UNSIGNED_TRAILER)], b"");
        for (header, name, value) in CHECK_VALUES {
            let headers = header_map(&[("x-amz-trailer", header)]);
            let wire = chunked(CHECK_INPUT, 4, None, &[(header, value)], false);
            let (data, summary) = read(&headers, mode.clone(), vec![wire], LIMIT)
                .await
                .unwrap();
            assert_eq!(data, CHECK_INPUT);
            let checksum = summary.checksum.unwrap();
            assert_eq!((checksum.algorithm, checksum.value.as_str()), (name, value));

            let wire = chunked(b"123456780", 4, None, &[(header, value)], false);
            let outcome = read(&headers, mode.clone(), vec![wire], LIMIT).await;
            let header_name = header.to_owned();
            assert_eq!(
                outcome,
                Err(BodyStreamError::BadDigest {
                    header: header_name
                })
            );

            // Announced but not sent, or sent but not announced.
            let wire = chunked(CHECK_INPUT, 4, None, &[], false);
            let outcome = read(&headers, mode.clone(), vec![wire], LIMIT).await;
            assert!(matches!(outcome, Err(BodyStreamError::InvalidRequest(_))));
            let wire = chunked(CHECK_INPUT, 4, None, &[(header, value)], false);
            let outcome = read(&HeaderMap::new(), mode.clone(), vec![wire], LIMIT).await;
            assert!(matches!(outcome, Err(BodyStreamError::InvalidRequest(_))));
        }
    }

    /// The body botocore 1.43 (`AwsChunkedWrapper`, 8-byte chunks) sends for `hello world` three
    /// times with a CRC-32 trailer, as boto3 sends every upload with a trailing checksum.
    const BOTOCORE_BODY: &[u8] =
        b"8\r\nhello wo\r\n8\r\nrldhello\r\n8\r\n worldhe\r\n8\r\nllo worl\r\n\
        1\r\nd\r\n0\r\nx-amz-checksum-crc32:lrVJrA==\r\n\r\n";

    #[tokio::test]
    async fn a_botocore_body_with_a_trailing_checksum_is_accepted() {
        let (_, mode, _) = signed(&[("x-amz-content-sha256", UNSIGNED_TRAILER)], b"");
        let headers = header_map(&[
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "33"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ]);
        let pieces = cut(BOTOCORE_BODY, &[5, 17, 40, 60]);
        let (data, summary) = read(&headers, mode, pieces, LIMIT).await.unwrap();
        assert_eq!(data, b"hello world".repeat(3));
        assert_eq!(summary.checksum.unwrap().value, "lrVJrA==");
    }

    /// `hello world` in chunks of 8 and 3 bytes with its CRC-32 as a trailer, the chunk and
    /// trailer signatures made by the AWS SDK for Rust's signer (aws-sigv4 1.6.6, `sign_chunk` and
    /// `sign_trailer`) from the seed signature of the request in the test below.
    const AWS_SDK_BODY: &[u8] = b"8;chunk-signature=\
        4915b5686ccf26924f5d6ddacd14840e3908c71ad044c584138496d3180360f4\r\nhello wo\r\n\
        3;chunk-signature=84d93fa909b484c7ebc1133b3c3dedf25de049a4c5efe43d982e694af993cfd3\r\n\
        rld\r\n\
        0;chunk-signature=be041a69dfaa7c80c04ca598e77c9160482e3f50bef4a44af6bb558eed08061a\r\n\
        x-amz-checksum-crc32:DUoRhQ==\r\n\
        x-amz-trailer-signature:f5e6f217221e9d045f6d16b12decdf5d45ce271b03a4817b3594c1df9a5d36f2\r\n\
        \r\n";

    #[tokio::test]
    async fn a_body_signed_by_the_aws_sdk_is_accepted() {
        let (headers, mode, seed) = trailer_request(11);
        // The seed the fixture was signed from.
        assert_eq!(
            seed,
            "646c641e3df21fc0433f8806d479594417d148d72eb63859307b67f4704c2dc1"
        );
        let pieces = cut(AWS_SDK_BODY, &[10, 50, 100, 130, 200]);
        let (data, summary) = read(&headers, mode.clone(), pieces, LIMIT).await.unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(summary.checksum.unwrap().value, "DUoRhQ==");

        // The test's own signer agrees with the SDK's.
        let mut signer = ChunkSigner::new(&seed);
        let trailers = [("x-amz-checksum-crc32", "DUoRhQ==")];
        let ours = chunked(b"hello world", 8, Some(&mut signer), &trailers, true);
        assert_eq!(ours, AWS_SDK_BODY);

        let forged = String::from_utf8(AWS_SDK_BODY.to_vec())
            .unwrap()
            .replace("DUoRhQ==", "AAAAAA==");
        let outcome = read(&headers, mode, vec![forged.into_bytes()], LIMIT).await;
        assert_eq!(
            outcome,
            Err(BodyStreamError::BadChunk(AuthError::SignatureMismatch))
        );
    }

    #[tokio::test]
    async fn the_declared_sha256_is_checked_at_the_end() {
        let body = b"a body whose hash the client declared";
        let declared = hex::encode(Sha256::digest(body));
        let (headers, mode, _) = signed(&[("x-amz-content-sha256", &declared)], body);
        assert!(matches!(mode, Payload::Hashed(_)));
        let pieces = cut(body, &[3, 10]);
        let (data, _) = read(&headers, mode.clone(), pieces, LIMIT).await.unwrap();
        assert_eq!(data, body);

        let mut other = body.to_vec();
        other[0] = b'A';
        let outcome = read(&headers, mode, vec![other], LIMIT).await;
        assert_eq!(outcome, Err(BodyStreamError::ContentSha256Mismatch));
        let error = outcome.unwrap_err().to_s3("/b/k");
        assert_eq!(
            (error.status().as_u16(), error.code()),
            (400, "XAmzContentSHA256Mismatch")
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let too_large = Err(BodyStreamError::TooLarge { limit: 10 });
        let headers = header_map(&[("content-length", "11")]);
        let source = stream::empty().boxed_local();
        let refused = BodyStream::from_source(&headers, source, Payload::Plain, 10).err();
        assert_eq!(refused, too_large.clone().err());

        let pieces = vec![vec![0; 6], vec![0; 5]];
        let outcome = read(&HeaderMap::new(), Payload::Plain, pieces, 10).await;
        assert_eq!(outcome, too_large);
        assert_eq!(outcome.unwrap_err().to_s3("/b/k").code(), "EntityTooLarge");

        // The framing of an aws-chunked body does not count; its decoded length does.
        let (_, mode, _) = signed(&[("x-amz-content-sha256", UNSIGNED_TRAILER)], b"");
        let wire = chunked(&[7; 10], 3, None, &[], false);
        let length = wire.len().to_string();
        let headers = header_map(&[
            ("content-length", &length),
            ("x-amz-decoded-content-length", "10"),
        ]);
        let outcome = read(&headers, mode.clone(), vec![wire], 10).await;
        assert_eq!(outcome.unwrap().0, [7; 10]);
        let headers = header_map(&[("x-amz-decoded-content-length", "11")]);
        let source = stream::empty().boxed_local();
        let refused = BodyStream::from_source(&headers, source, mode.clone(), 10).err();
        assert_eq!(refused, too_large.clone().err());
        let wire = chunked(&[7; 11], 3, None, &[], false);
        let outcome = read(&HeaderMap::new(), mode, vec![wire], 10).await;
        assert_eq!(outcome, too_large);
    }

    #[tokio::test]
    async fn short_or_broken_bodies_are_incomplete() {
        let broken = stream::iter([
            Ok(Bytes::from_static(b"part")),
            Err(PayloadError::Incomplete(None)),
        ]);
        let body = BodyStream::from_source(
            &HeaderMap::new(),
            broken.boxed_local(),
            Payload::Plain,
            LIMIT,
        );
        let outcome = read_with(body.unwrap()).await;
        assert_eq!(outcome, Err(BodyStreamError::Incomplete));
        assert_eq!(outcome.unwrap_err().to_s3("/b/k").code(), "IncompleteBody");

        let (_, mode, _) = signed(&[("x-amz-content-sha256", UNSIGNED_TRAILER)], b"");
        let wire = chunked(b"0123456789", 4, None, &[], false);
        let without_last_chunk = wire[..wire.len() - 5].to_vec();
        let outcome = read(
            &HeaderMap::new(),
            mode.clone(),
            vec![without_last_chunk],
            LIMIT,
        )
        .await;
        assert_eq!(outcome, Err(BodyStreamError::Incomplete));
        let mid_chunk = wire[..8].to_vec();
        let outcome = read(&HeaderMap::new(), mode.clone(), vec![mid_chunk], LIMIT).await;
        assert_eq!(outcome, Err(BodyStreamError::Incomplete));

        let headers = header_map(&[("x-amz-decoded-content-length", "11")]);
        let outcome = read(&headers, mode.clone(), vec![wire.clone()], LIMIT).await;
        assert_eq!(outcome, Err(BodyStreamError::Incomplete));
        let headers = header_map(&[("x-amz-decoded-content-length", "9")]);
        let outcome = read(&headers, mode, vec![wire], LIMIT).await;
        assert!(matches!(outcome, Err(BodyStreamError::BadChunk(_))));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_but_a_slow_steady_one_does_not() {
        let stalled = stream::once(async { Ok(Bytes::from_static(b"start")) })
            .chain(stream::pending())
            .boxed_local();
        let mut body =
            BodyStream::from_source(&HeaderMap::new(), stalled, Payload::Plain, LIMIT).unwrap();
        body.idle_timeout = Duration::from_millis(50);
        assert_eq!(read_with(body).await, Err(BodyStreamError::Timeout));

        // Ten pieces 20 ms apart take four times the idle timeout, and are all read.
        let slow = stream::iter(0..10)
            .then(|_| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Bytes::from_static(b"0123456789"))
            })
            .boxed_local();
        let mut body =
            BodyStream::from_source(&HeaderMap::new(), slow, Payload::Plain, LIMIT).unwrap();
        body.idle_timeout = Duration::from_millis(50);
        let (data, summary) = read_with(body).await.unwrap();
        assert_eq!((data.len(), summary.length), (100, 100));
        let error = BodyStreamError::Timeout.to_s3("/b/k");
        assert_eq!(
            (error.status().as_u16(), error.code()),
            (400, "RequestTimeout")
        );
    }

    #[tokio::test]
    async fn finish_trusts_nothing_before_the_end() {
        let source = stream::iter([Ok(Bytes::from_static(b"data"))]).boxed_local();
        let mut body =
            BodyStream::from_source(&HeaderMap::new(), source, Payload::Plain, LIMIT).unwrap();
        assert_eq!(
            body.next_chunk().await,
            Some(Ok(Bytes::from_static(b"data")))
        );
        assert_eq!(body.finish(), Err(BodyStreamError::Incomplete));
        assert_eq!(body.next_chunk().await, None);

        let source = stream::iter([Ok(Bytes::from_static(b"data"))]).boxed_local();
        let mut body =
            BodyStream::from_source(&HeaderMap::new(), source, Payload::Plain, LIMIT).unwrap();
        while body.next_chunk().await.is_some() {}
        assert_eq!(body.finish().unwrap().length, 4);
        assert_eq!(body.finish(), Err(BodyStreamError::Incomplete));

        let source = stream::iter([Ok(Bytes::from_static(b"data"))]).boxed_local();
        let mut body =
            BodyStream::from_source(&HeaderMap::new(), source, Payload::Plain, 2).unwrap();
        let too_large = BodyStreamError::TooLarge { limit: 2 };
        assert_eq!(body.next_chunk().await, Some(Err(too_large.clone())));
        assert_eq!(body.next_chunk().await, None);
        assert_eq!(body.finish(), Err(too_large));
    }

    #[tokio::test]
    async fn a_buffered_body_checks_its_checksums_and_trailers() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("x-amz-trailer", "x-amz-checksum-crc32"))
            .to_http_request();
        let trailers = vec![("x-amz-checksum-crc32".to_owned(), crc32(CHECK_INPUT))];
        let body = BodyStream::buffered(&req, Bytes::from_static(CHECK_INPUT), trailers);
        let (data, summary) = read_with(body).await.unwrap();
        assert_eq!((data.as_slice(), summary.length), (CHECK_INPUT, 9));
        assert_eq!(summary.checksum.unwrap().value, "y/Q5Jg==");

        let body = BodyStream::buffered(&req, Bytes::from_static(CHECK_INPUT), Vec::new());
        let outcome = read_with(body).await;
        assert!(matches!(outcome, Err(BodyStreamError::InvalidRequest(_))));

        let req = actix_web::test::TestRequest::default()
            .insert_header(("x-amz-checksum-md4", "AAAA"))
            .to_http_request();
        let mut body = BodyStream::buffered(&req, Bytes::from_static(CHECK_INPUT), Vec::new());
        assert_eq!(body.next_chunk().await, None);
        assert!(matches!(
            body.finish(),
            Err(BodyStreamError::InvalidRequest(_))
        ));
    }

    #[test]
    fn error_messages_quote_nothing_from_the_body() {
        let verifier = match signed(&[("x-amz-content-sha256", UNSIGNED_TRAILER)], b"").1 {
            Payload::Chunked(verifier) => verifier,
            other => panic!("{other:?}"),
        };
        let bodies: [&[u8]; 3] = [
            b"zz-secret-body-bytes\r\n",
            b"3\r\nsecret-body-bytes\r\n",
            b"0\r\nsecret-body-bytes\r\n",
        ];
        for body in bodies {
            let error = sigv4::decode_chunked(body, verifier.clone()).err().unwrap();
            let error = BodyStreamError::BadChunk(error).to_s3("/b/k");
            assert!(!error.message().contains("secret"), "{}", error.message());
            assert_eq!(error.code(), "AuthorizationHeaderMalformed");
        }
    }
}
