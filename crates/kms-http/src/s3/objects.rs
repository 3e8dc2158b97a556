//! The object routes: PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject and the
//! listings. Data moves between the network and the store through bounded channels and
//! blocking threads, a few 64 KiB packages at a time, so memory stays flat for any size.

use std::io;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, HttpResponseBuilder};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use kms_core::SecretBytes;
use s3_bucket_encryption::objects::{self as documents, ListVersion, ListedObject, ObjectListing};
use s3_bucket_encryption::BucketRecord;
use s3_object_store::package::SALT_LEN;
use s3_object_store::{
    is_tampered, read_segment, Checksum, Encryption, ListQuery, ObjectMeta, ObjectStore,
    PendingSegment, Segment, SegmentCipher, SegmentWriter, WrittenSegment,
};
use tokio::sync::mpsc;

use super::body::{BodyStream, BodySummary};
use super::dispatch::{xml_response, S3Request};
use super::encryption::existing_bucket;
use super::sse::{self, CustomerKey, Sealing, SseRequest, COPY_SOURCE_CUSTOMER, CUSTOMER};
use super::{S3Error, S3ErrorKind};
use crate::auth::Action;
use crate::sigv4::percent_decode;
use crate::AppState;

/// The largest object a single PUT (or one part) may carry, as in S3.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The longest object key, in bytes.
const MAX_KEY_BYTES: usize = 1024;
/// Pieces in flight between the network and a blocking thread.
const CHANNEL_DEPTH: usize = 4;
/// The representation headers stored with an object and returned on reads.
const STORED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
];

/// A failure inside the server: logged, answered as 500 without details.
pub fn internal(request: &S3Request, what: &str, error: impl std::fmt::Debug) -> S3Error {
    tracing::error!(error = ?error, "{what}");
    request.error(S3ErrorKind::InternalError, "internal error")
}

/// Validates an object key taken from the path: UTF-8 (two invalid spellings must not name one
/// object), at most 1024 bytes.
pub fn object_key(request: &S3Request, raw: &str) -> Result<String, S3Error> {
    let key = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| request.error(S3ErrorKind::InvalidArgument, "the object key is not UTF-8"))?
        .into_owned();
    if key.len() > MAX_KEY_BYTES {
        return Err(request.error(
            S3ErrorKind::KeyTooLong,
            "the object key is longer than 1024 bytes",
        ));
    }
    Ok(key)
}

/// Header names and values, in order.
pub type Pairs = Vec<(String, String)>;

/// The most bytes of user metadata (names and values of `x-amz-meta-*`) an object may carry, as
/// in S3.
const MAX_USER_METADATA: usize = 2 * 1024;

/// The representation headers and user metadata of a write, refusing user metadata over 2 KB.
pub fn write_headers(request: &S3Request) -> Result<(Pairs, Pairs), S3Error> {
    let (stored, user) = stored_headers(request.req.headers());
    let size: usize = user.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(request.error(
            S3ErrorKind::MetadataTooLarge,
            format!("user metadata is {size} bytes; at most {MAX_USER_METADATA} are allowed"),
        ));
    }
    Ok((stored, user))
}

/// The representation headers and user metadata a request carries.
fn stored_headers(headers: &HeaderMap) -> (Pairs, Pairs) {
    let mut stored = Vec::new();
    let mut user = Vec::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        let name = name.as_str();
        if let Some(meta) = name.strip_prefix("x-amz-meta-") {
            user.push((meta.to_owned(), value.to_owned()));
        } else if STORED_HEADERS.contains(&name) {
            let value = if name == "content-encoding" {
                // `aws-chunked` describes the transfer, not the object.
                let kept: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.eq_ignore_ascii_case("aws-chunked") && !v.is_empty())
                    .collect();
                if kept.is_empty() {
                    continue;
                }
                kept.join(",")
            } else {
                value.to_owned()
            };
            stored.push((name.to_owned(), value));
        }
    }
    (stored, user)
}

/// Streams a request body into a new segment file, sealing it with `cipher` when given, then
/// checks the body's hashes. On any error the caller discards the file.
pub async fn receive(
    request: &S3Request,
    body: &mut BodyStream,
    file: std::fs::File,
    cipher: Option<SegmentCipher>,
) -> Result<(WrittenSegment, BodySummary), S3Error> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer = tokio::task::spawn_blocking(move || {
        let mut writer = SegmentWriter::new(file, cipher);
        while let Some(piece) = rx.blocking_recv() {
            writer.write(&piece)?;
        }
        writer.finish()
    });
    let mut failure = None;
    while let Some(piece) = body.next_chunk().await {
        match piece {
            Ok(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failure = Some(e.to_s3(&request.resource));
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let written = written
        .map_err(|e| internal(request, "the segment writer panicked", e))?
        .map_err(|e| internal(request, "writing a segment failed", e))?;
    let summary = body.finish().map_err(|e| e.to_s3(&request.resource))?;
    Ok((written, summary))
}

fn new_salt() -> [u8; SALT_LEN] {
    let salt = SecretBytes::random(SALT_LEN);
    salt.expose().try_into().expect("SALT_LEN bytes")
}

/// The cipher of a new segment, and its salt for the record.
pub fn new_segment_cipher(
    object_key: Option<&SecretBytes>,
    part_number: u32,
) -> (Option<SegmentCipher>, Option<String>) {
    match object_key {
        None => (None, None),
        Some(key) => {
            let salt = new_salt();
            (
                Some(SegmentCipher::new(key, &salt, part_number)),
                Some(hex::encode(salt)),
            )
        }
    }
}

/// The checksum to store: the one the client gave, upper-case algorithm.
pub fn given_checksum(summary: &BodySummary) -> Option<Checksum> {
    summary.checksum.as_ref().map(|c| Checksum {
        algorithm: c.algorithm.to_ascii_uppercase(),
        value: c.value.clone(),
    })
}

/// Adds the `x-amz-checksum-*` header of a stored checksum.
pub fn report_checksum(checksum: Option<&Checksum>, response: &mut HttpResponseBuilder) {
    if let Some(c) = checksum {
        response.insert_header((
            format!("x-amz-checksum-{}", c.algorithm.to_ascii_lowercase()),
            c.value.as_str(),
        ));
    }
}

/// A single-segment object about to be committed: what the request says of it.
struct NewObject {
    key: String,
    headers: Pairs,
    user_metadata: Pairs,
    checksum: Option<Checksum>,
    encryption: Encryption,
}

impl NewObject {
    /// Records the written segment as the object's data and commits the record; the segment
    /// is removed when that fails.
    async fn commit(
        self,
        state: &AppState,
        request: &S3Request,
        bucket: &str,
        segment: PendingSegment,
        salt: Option<String>,
        written: WrittenSegment,
    ) -> Result<ObjectMeta, S3Error> {
        let store = &state.objects;
        let mut meta = ObjectMeta {
            key: self.key,
            size: written.size,
            etag: hex::encode(written.stored_md5),
            last_modified: kms_core::now(),
            headers: self.headers,
            user_metadata: self.user_metadata,
            checksum: self.checksum,
            encryption: self.encryption,
            segments: vec![Segment {
                file: segment.name().to_owned(),
                part_number: 1,
                size: written.size,
                salt,
            }],
            layout_mac: String::new(),
        };
        store.seal_layout(bucket, &mut meta);
        store
            .commit(bucket, meta.clone(), segment)
            .await
            .map_err(|e| internal(request, "committing an object failed", e))?;
        Ok(meta)
    }
}

/// PutObject.
pub async fn put_object(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
    mut body: BodyStream,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::PutObject)?;
    let record = existing_bucket(state, bucket)?;
    let key = object_key(request, raw_key)?;
    let headers = request.req.headers();
    check_write_preconditions(state, request, bucket, &key)?;
    let sse = sse::parse_request(headers, &request.resource)?;
    let (stored, user) = write_headers(request)?;
    let Sealing {
        encryption,
        object_key,
    } = sse::seal_new(state, &record, &key, sse, &request.resource).await?;

    let store = &state.objects;
    let (segment, file) = store
        .create_segment(bucket)
        .map_err(|e| internal(request, "creating a segment failed", e))?;
    let (cipher, salt) = new_segment_cipher(object_key.as_ref(), 1);
    // On any error `segment` is dropped, which removes its file.
    let (written, summary) = receive(request, &mut body, file, cipher).await?;
    let meta = NewObject {
        key,
        headers: stored,
        user_metadata: user,
        checksum: given_checksum(&summary),
        encryption,
    }
    .commit(state, request, bucket, segment, salt, written)
    .await?;
    let mut response = HttpResponse::Ok();
    response.insert_header(("ETag", format!("\"{}\"", meta.etag)));
    sse::report(&meta.encryption, request.req.headers(), &mut response);
    report_checksum(meta.checksum.as_ref(), &mut response);
    Ok(response.finish())
}

/// `If-None-Match: *` on a write: refuse when the object exists (conditional create).
fn check_write_preconditions(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    key: &str,
) -> Result<(), S3Error> {
    let headers = request.req.headers();
    if headers.get("if-none-match").is_some_and(|v| v == "*")
        && state.objects.summary(bucket, key).is_some()
    {
        return Err(request.error(
            S3ErrorKind::PreconditionFailed,
            "the object exists and If-None-Match is *",
        ));
    }
    Ok(())
}

/// The record of an existing object; `NoSuchKey` otherwise.
pub async fn existing_object(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    key: &str,
) -> Result<ObjectMeta, S3Error> {
    let meta = state
        .objects
        .get(bucket, key)
        .await
        .map_err(|e| internal(request, "reading an object record failed", e))?
        .ok_or_else(|| request.error(S3ErrorKind::NoSuchKey, "the object does not exist"))?;
    if state.objects.verify_layout(bucket, &meta).is_err() {
        tracing::error!(bucket, "an object record does not authenticate");
        return Err(request.error(S3ErrorKind::InternalError, "internal error"));
    }
    Ok(meta)
}

/// The most segment files a read opens before it answers. An object with more parts opens the
/// rest as the read reaches them.
// FIXME: a read of an object of more than 256 parts can be cut short when the object is
// overwritten or deleted while the read is past its 256th part (the segment files it had not
// opened yet are gone); reads of smaller objects always see one whole version.
const MAX_OPEN_SEGMENTS: usize = 256;

/// An object's record with its segment files already open: the files of a version replaced
/// or deleted after this point stay readable through these handles, so a read always sees one
/// whole version of the object.
pub struct OpenedObject {
    /// The record.
    pub meta: ObjectMeta,
    files: Vec<Option<std::fs::File>>,
}

impl OpenedObject {
    /// New handles to the same files, for a second reader.
    fn duplicate_files(&self) -> io::Result<Vec<Option<std::fs::File>>> {
        self.files
            .iter()
            .map(|f| f.as_ref().map(std::fs::File::try_clone).transpose())
            .collect()
    }
}

/// Reads an object's record and opens its segment files. When an overwrite or a delete removes
/// a file between the two, the record is read again.
pub async fn open_object(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    key: &str,
) -> Result<OpenedObject, S3Error> {
    for _ in 0..8 {
        let meta = existing_object(state, request, bucket, key).await?;
        let store = state.objects.clone();
        let (b, m) = (bucket.to_owned(), meta.clone());
        let opened = tokio::task::spawn_blocking(move || {
            m.segments
                .iter()
                .take(MAX_OPEN_SEGMENTS)
                .map(|s| std::fs::File::open(store.segment_path(&b, &s.file)).map(Some))
                .collect::<io::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| internal(request, "the open thread panicked", e))?;
        match opened {
            Ok(files) => return Ok(OpenedObject { meta, files }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(internal(request, "opening an object's data failed", e)),
        }
    }
    Err(internal(
        request,
        "an object kept changing while it was opened",
        "",
    ))
}

/// The HTTP date form of a time.
pub fn http_date(time: &DateTime<Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.trim_start_matches("W/").trim_matches('"') == etag
    })
}

/// Evaluates the conditional headers with this prefix (`if-` for reads, `x-amz-copy-source-if-`
/// for copies) in the RFC 7232 order. Copies answer 412 where reads answer 304.
fn check_conditions(
    request: &S3Request,
    prefix: &str,
    meta: &ObjectMeta,
    copy: bool,
) -> Result<(), S3Error> {
    let headers = request.req.headers();
    let get = |name: &str| {
        headers
            .get(format!("{prefix}{name}"))
            .and_then(|v| v.to_str().ok())
    };
    let modified = meta.last_modified.timestamp();
    let failed = || request.error(S3ErrorKind::PreconditionFailed, "a precondition failed");
    let not_modified = || {
        if copy {
            failed()
        } else {
            request.error(S3ErrorKind::NotModified, "not modified")
        }
    };
    match get("match") {
        Some(list) if !etag_matches(list, &meta.etag) => return Err(failed()),
        Some(_) => {}
        None => {
            if let Some(since) = get("unmodified-since").and_then(parse_http_date) {
                if modified > since.timestamp() {
                    return Err(failed());
                }
            }
        }
    }
    match get("none-match") {
        Some(list) if etag_matches(list, &meta.etag) => return Err(not_modified()),
        Some(_) => {}
        None => {
            if let Some(since) = get("modified-since").and_then(parse_http_date) {
                if modified <= since.timestamp() {
                    return Err(not_modified());
                }
            }
        }
    }
    Ok(())
}

/// A byte range `start..end` of an object of `size` bytes, from a `Range` header. `Ok(None)`:
/// the whole object (no header, or one this server ignores as RFC 9110 allows).
fn parse_range(request: &S3Request, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(value) = request.req.headers().get("range") else {
        return Ok(None);
    };
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let unsatisfiable = || {
        request.error(
            S3ErrorKind::InvalidRange,
            "the requested range is not satisfiable",
        )
    };
    let range = if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return Ok(None);
        };
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        (size.saturating_sub(suffix), size)
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return Ok(None);
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= start => l.saturating_add(1).min(size),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(unsatisfiable());
        }
        (start, end)
    };
    Ok(Some(range))
}

/// The byte range of `?partNumber=N` (the N-th part of a multipart object; part 1 of any other
/// object is all of it), which S3 multipart downloaders ask for instead of a `Range`.
fn part_range(request: &S3Request, meta: &ObjectMeta) -> Result<Option<(u64, u64)>, S3Error> {
    let Some((_, text)) = request.query.iter().find(|(k, _)| k == "partNumber") else {
        return Ok(None);
    };
    let number = text
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            request.error(
                S3ErrorKind::InvalidArgument,
                "partNumber must be an integer from 1 to 10000",
            )
        })?;
    if request.req.headers().contains_key("range") {
        return Err(request.error(
            S3ErrorKind::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    let Some(part) = meta.segments.get(number - 1) else {
        return Err(request.error(
            S3ErrorKind::InvalidPartNumber,
            "the requested part number is not satisfiable",
        ));
    };
    if part.size == 0 {
        // An empty object: its one part is all of it, and no range can express it.
        return Ok(None);
    }
    let start: u64 = meta.segments[..number - 1].iter().map(|s| s.size).sum();
    Ok(Some((start, start + part.size)))
}

/// The response headers every read of an object carries. A `response-*` override that is not
/// a valid header value is `InvalidArgument`.
fn object_headers(
    request: &S3Request,
    meta: &ObjectMeta,
    response: &mut HttpResponseBuilder,
) -> Result<(), S3Error> {
    response.insert_header(("ETag", format!("\"{}\"", meta.etag)));
    response.insert_header(("Last-Modified", http_date(&meta.last_modified)));
    response.insert_header(("Accept-Ranges", "bytes"));
    let overrides: Vec<(String, String)> = request
        .query
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("response-")
                .filter(|name| STORED_HEADERS.contains(name))
                .map(|name| (name.to_owned(), v.clone()))
        })
        .collect();
    if let Some((name, _)) = overrides
        .iter()
        .find(|(_, v)| HeaderValue::from_str(v).is_err())
    {
        return Err(request.error(
            S3ErrorKind::InvalidArgument,
            format!("response-{name} is not a valid header value"),
        ));
    }
    let mut has_type = false;
    for (name, value) in meta.headers.iter().chain(&overrides) {
        has_type |= name == "content-type";
        response.insert_header((name.as_str(), value.as_str()));
    }
    if !has_type {
        response.insert_header(("content-type", "binary/octet-stream"));
    }
    for (name, value) in &meta.user_metadata {
        response.insert_header((format!("x-amz-meta-{name}"), value.as_str()));
    }
    if meta.segments.len() > 1 || meta.etag.contains('-') {
        response.insert_header(("x-amz-mp-parts-count", meta.segments.len().to_string()));
    }
    sse::report(&meta.encryption, request.req.headers(), response);
    Ok(())
}

/// GetObject and HeadObject.
pub async fn get_object(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
    head: bool,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::GetObject)?;
    existing_bucket(state, bucket)?;
    let key = object_key(request, raw_key)?;
    let opened = if head {
        // HEAD reads no data: the record is enough.
        OpenedObject {
            meta: existing_object(state, request, bucket, &key).await?,
            files: Vec::new(),
        }
    } else {
        open_object(state, request, bucket, &key).await?
    };
    let meta = &opened.meta;
    let customer = sse::parse_customer(request.req.headers(), CUSTOMER, &request.resource)?;
    sse::check_customer(&meta.encryption, customer.as_ref(), &request.resource)?;
    check_conditions(request, "if-", meta, false)?;
    let range = match part_range(request, meta)? {
        Some(part) => Some(part),
        None => parse_range(request, meta.size)?,
    };
    let (start, end) = range.unwrap_or((0, meta.size));
    let mut response = if range.is_some() {
        let mut partial = HttpResponse::build(StatusCode::PARTIAL_CONTENT);
        partial.insert_header((
            "Content-Range",
            format!("bytes {start}-{}/{}", end.saturating_sub(1), meta.size),
        ));
        partial
    } else {
        HttpResponse::Ok()
    };
    object_headers(request, meta, &mut response)?;
    let checksum_mode = request
        .req
        .headers()
        .get("x-amz-checksum-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"enabled"));
    if checksum_mode && range.is_none() {
        report_checksum(meta.checksum.as_ref(), &mut response);
    }
    let length = end - start;
    if head {
        // The length of the object, without a body: the server sends no body for HEAD.
        return Ok(response.body(SizedStream::new(
            length,
            stream::empty::<Result<Bytes, io::Error>>(),
        )));
    }
    let object_key = sse::open_existing(
        state,
        bucket,
        &key,
        &meta.encryption,
        customer,
        &request.resource,
    )
    .await?;
    let mut rx = spawn_reader(
        state.objects.clone(),
        bucket.to_owned(),
        opened,
        object_key,
        start,
        end,
    );
    // The first piece is read before the answer starts, so a damaged or unreadable object is
    // an error status rather than a cut connection in the common case.
    let first = rx.recv().await;
    let first = match first {
        Some(Err(e)) => return Err(read_failure(request, &e)),
        other => other,
    };
    let rest = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = stream::iter(first).chain(rest).map(|item| {
        item.inspect_err(|e| {
            tracing::error!(error = %e, tampered = is_tampered(e), "an object read failed midway");
        })
    });
    Ok(response.body(SizedStream::new(length, body)))
}

fn read_failure(request: &S3Request, error: &io::Error) -> S3Error {
    if is_tampered(error) {
        tracing::error!(resource = %request.resource, "stored object data does not authenticate");
    } else {
        tracing::error!(error = %error, "reading an object failed");
    }
    request.error(S3ErrorKind::InternalError, "internal error")
}

/// Reads plaintext `start..end` of an object on a blocking thread, into a bounded channel.
fn spawn_reader(
    store: Arc<ObjectStore>,
    bucket: String,
    opened: OpenedObject,
    object_key: Option<SecretBytes>,
    start: u64,
    end: u64,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut sink = |piece: Vec<u8>| tx.blocking_send(Ok(Bytes::from(piece))).is_ok();
        let result = read_object(
            &store,
            &bucket,
            opened,
            object_key.as_ref(),
            start,
            end,
            &mut sink,
        );
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// Reads plaintext `start..end` of an object, segment by segment, into `sink`; stops when the
/// sink returns `false`. The segment files opened with the record ([`open_object`]) are read;
/// segments beyond them are opened here.
pub fn read_object(
    store: &ObjectStore,
    bucket: &str,
    object: OpenedObject,
    object_key: Option<&SecretBytes>,
    start: u64,
    end: u64,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> io::Result<()> {
    let OpenedObject { meta, files } = object;
    let mut offset = 0;
    let mut open = true;
    let mut files = files.into_iter();
    for segment in &meta.segments {
        let opened = files.next().flatten();
        let (seg_start, seg_end) = (offset, offset + segment.size);
        offset = seg_end;
        // Every segment a range touches is read; an empty object still reads its one segment
        // so that its tag is checked.
        let touches = (start < seg_end && end > seg_start) || (meta.size == 0 && open);
        if !touches {
            continue;
        }
        let salt = segment
            .salt_bytes()
            .map_err(|t| io::Error::new(io::ErrorKind::InvalidData, t))?;
        let cipher = match (object_key, salt) {
            (Some(key), Some(salt)) => Some(SegmentCipher::new(key, &salt, segment.part_number)),
            (None, None) => None,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    s3_object_store::Tampered,
                ))
            }
        };
        let file = match opened {
            Some(file) => file,
            None => std::fs::File::open(store.segment_path(bucket, &segment.file))?,
        };
        let from = start.max(seg_start) - seg_start;
        let to = end.min(seg_end) - seg_start;
        let mut stopped = false;
        read_segment(
            file,
            cipher.as_ref(),
            segment.size,
            from,
            to,
            &mut |piece| {
                let more = sink(piece);
                stopped |= !more;
                more
            },
        )?;
        open = false;
        if stopped {
            break;
        }
    }
    Ok(())
}

/// DeleteObject: 204 whether or not the object existed.
pub async fn delete_object(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::DeleteObject)?;
    existing_bucket(state, bucket)?;
    let key = object_key(request, raw_key)?;
    state
        .objects
        .delete(bucket, &key)
        .await
        .map_err(|e| internal(request, "deleting an object failed", e))?;
    Ok(HttpResponse::NoContent().finish())
}

/// DeleteObjects (`POST /{bucket}?delete`).
pub async fn delete_objects(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::DeleteObject)?;
    existing_bucket(state, bucket)?;
    super::dispatch::check_integrity(request, true)?;
    let parsed = documents::parse_delete(&request.body).map_err(|e| {
        request.error(
            S3ErrorKind::MalformedXml,
            format!("the Delete document is not valid: {e}"),
        )
    })?;
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for key in &parsed.keys {
        if key.len() > MAX_KEY_BYTES {
            failed.push((key.as_str(), "KeyTooLongError", "the key is too long"));
            continue;
        }
        match state.objects.delete(bucket, key).await {
            Ok(_) => deleted.push(key.as_str()),
            Err(e) => {
                tracing::error!(error = %e, "deleting an object failed");
                failed.push((key.as_str(), "InternalError", "internal error"));
            }
        }
    }
    let failures: Vec<documents::DeleteFailure<'_>> = failed
        .iter()
        .map(|(key, code, message)| documents::DeleteFailure { key, code, message })
        .collect();
    Ok(xml_response(documents::delete_result(
        &deleted,
        &failures,
        parsed.quiet,
    )))
}

/// ListObjects (v1) and ListObjectsV2 (`list-type=2`).
pub fn list_objects(
    state: &AppState,
    request: &S3Request,
    record: &BucketRecord,
) -> Result<HttpResponse, S3Error> {
    let param = |name: &str| {
        request
            .query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let v2 = match param("list-type") {
        None => false,
        Some("2") => true,
        Some(_) => return Err(request.error(S3ErrorKind::InvalidArgument, "list-type must be 2")),
    };
    let max_keys = match param("max-keys") {
        None => 1000,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                request.error(
                    S3ErrorKind::InvalidArgument,
                    "max-keys must be a non-negative integer",
                )
            })?,
    }
    .min(1000) as usize;
    let url_encoded = match param("encoding-type") {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(request.error(S3ErrorKind::InvalidArgument, "encoding-type must be url"))
        }
    };
    let prefix = param("prefix").unwrap_or("");
    let delimiter = param("delimiter").filter(|d| !d.is_empty());
    let token = param("continuation-token");
    let decoded_token = match token {
        Some(t) if v2 => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    request.error(
                        S3ErrorKind::InvalidArgument,
                        "the continuation token is not valid",
                    )
                })?,
        ),
        _ => None,
    };
    let start_after = if v2 {
        decoded_token.as_deref().or(param("start-after"))
    } else {
        param("marker")
    };
    let query = ListQuery {
        prefix,
        delimiter,
        start_after: start_after.filter(|s| !s.is_empty()),
        max_keys,
    };
    let name = record.name.as_str();
    let page = state.objects.list(name, &query);
    let owner_id = state.owner_id();
    let fetch_owner = !v2 || param("fetch-owner") == Some("true");
    let listing = ObjectListing {
        bucket: name,
        prefix,
        delimiter,
        max_keys,
        url_encoded,
        objects: page
            .objects
            .iter()
            .map(|(key, summary)| ListedObject {
                key,
                last_modified: summary.last_modified,
                etag: &summary.etag,
                size: summary.size,
            })
            .collect(),
        common_prefixes: page.common_prefixes.iter().map(String::as_str).collect(),
        truncated: page.truncated,
        owner: fetch_owner.then_some((owner_id.as_str(), state.root_access_key())),
    };
    let next_token = page
        .last
        .as_ref()
        .filter(|_| page.truncated)
        .map(|last| URL_SAFE_NO_PAD.encode(last));
    let version = if v2 {
        ListVersion::V2 {
            continuation_token: token,
            next_continuation_token: next_token.as_deref(),
            start_after: param("start-after"),
        }
    } else {
        ListVersion::V1 {
            marker: param("marker").unwrap_or(""),
            next_marker: page.last.as_deref().filter(|_| page.truncated),
        }
    };
    Ok(xml_response(documents::list_objects(&listing, &version)))
}

/// The source of a copy: `x-amz-copy-source` as `[/]bucket/key[?versionId=…]`, URL-encoded.
pub fn copy_source(request: &S3Request) -> Result<(String, String), S3Error> {
    let invalid = || {
        request.error(
            S3ErrorKind::InvalidArgument,
            "x-amz-copy-source must be bucket/key",
        )
    };
    let raw = request
        .req
        .headers()
        .get("x-amz-copy-source")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid)?;
    let raw = raw.split_once('?').map_or(raw, |(path, _)| path);
    let decoded = percent_decode(raw.trim_start_matches('/'));
    let (bucket, key) = decoded.split_once('/').ok_or_else(invalid)?;
    if key.is_empty() {
        return Err(invalid());
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

/// An object opened as the source of a copy: its record, files and key.
pub struct CopySource {
    /// The source bucket.
    pub bucket: String,
    /// The source record and files.
    pub object: OpenedObject,
    /// The source's object key.
    pub object_key: Option<SecretBytes>,
}

/// Opens the source of a copy: permission, existence, conditions, SSE-C key, data key.
pub async fn open_copy_source(
    state: &AppState,
    request: &S3Request,
    (bucket, key): (String, String),
) -> Result<CopySource, S3Error> {
    request.require(state, Action::GetObject)?;
    existing_bucket(state, &bucket)?;
    let object = open_object(state, request, &bucket, &key).await?;
    let meta = &object.meta;
    let customer = sse::parse_customer(
        request.req.headers(),
        COPY_SOURCE_CUSTOMER,
        &request.resource,
    )?;
    sse::check_customer(&meta.encryption, customer.as_ref(), &request.resource)?;
    check_conditions(request, "x-amz-copy-source-if-", meta, true)?;
    let object_key = sse::open_existing(
        state,
        &bucket,
        &key,
        &meta.encryption,
        customer,
        &request.resource,
    )
    .await?;
    Ok(CopySource {
        bucket,
        object,
        object_key,
    })
}

/// Re-encrypts `start..end` of a source object into a new segment file (a blocking thread).
pub async fn copy_data(
    state: &AppState,
    request: &S3Request,
    source: &CopySource,
    (start, end): (u64, u64),
    file: std::fs::File,
    cipher: Option<SegmentCipher>,
) -> Result<WrittenSegment, S3Error> {
    let store = state.objects.clone();
    let bucket = source.bucket.clone();
    let object = OpenedObject {
        meta: source.object.meta.clone(),
        files: source
            .object
            .duplicate_files()
            .map_err(|e| internal(request, "duplicating file handles failed", e))?,
    };
    let key = source.object_key.clone();
    let copied = tokio::task::spawn_blocking(move || {
        let mut writer = SegmentWriter::new(file, cipher);
        let mut failure = None;
        read_object(
            &store,
            &bucket,
            object,
            key.as_ref(),
            start,
            end,
            &mut |piece| match writer.write(&piece) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            },
        )?;
        if let Some(e) = failure {
            return Err(e);
        }
        writer.finish()
    })
    .await
    .map_err(|e| internal(request, "the copy thread panicked", e))?;
    copied.map_err(|e| read_failure(request, &e))
}

/// CopyObject (PUT with `x-amz-copy-source`).
pub async fn copy_object(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::PutObject)?;
    let record = existing_bucket(state, bucket)?;
    let key = object_key(request, raw_key)?;
    let headers = request.req.headers();
    let replace = match headers
        .get("x-amz-metadata-directive")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => {
            return Err(request.error(
                S3ErrorKind::InvalidArgument,
                "x-amz-metadata-directive must be COPY or REPLACE",
            ))
        }
    };
    let sse_request = sse::parse_request(headers, &request.resource)?;
    let source = copy_source(request)?;
    if source.0 == bucket && source.1 == key && !replace && !sse_request.is_specified() {
        return Err(request.error(
            S3ErrorKind::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata or encryption attributes.",
        ));
    }
    check_write_preconditions(state, request, bucket, &key)?;
    let source = open_copy_source(state, request, source).await?;
    let (stored, user) = if replace {
        write_headers(request)?
    } else {
        (
            source.object.meta.headers.clone(),
            source.object.meta.user_metadata.clone(),
        )
    };
    let Sealing {
        encryption,
        object_key,
    } = sse::seal_new(state, &record, &key, sse_request, &request.resource).await?;
    let store = &state.objects;
    let (segment, file) = store
        .create_segment(bucket)
        .map_err(|e| internal(request, "creating a segment failed", e))?;
    let (cipher, salt) = new_segment_cipher(object_key.as_ref(), 1);
    let range = (0, source.object.meta.size);
    let written = copy_data(state, request, &source, range, file, cipher).await?;
    let meta = NewObject {
        key,
        headers: stored,
        user_metadata: user,
        checksum: source.object.meta.checksum.clone(),
        encryption,
    }
    .commit(state, request, bucket, segment, salt, written)
    .await?;
    let mut response = HttpResponse::Ok();
    sse::report(&meta.encryption, request.req.headers(), &mut response);
    Ok(response
        .content_type("application/xml")
        .body(documents::copy_result(
            &meta.etag,
            &meta.last_modified,
            false,
        )))
}

/// The SSE-C key of a request writing into an upload, checked against the upload's encryption
/// (parsed once with the other encryption headers): a part takes its encryption from the
/// upload, so only SSE-C's key, which the server does not keep, may be given.
pub fn upload_customer_key(
    request: &S3Request,
    encryption: &Encryption,
) -> Result<Option<CustomerKey>, S3Error> {
    let customer = match sse::parse_request(request.req.headers(), &request.resource)? {
        SseRequest::Unspecified => None,
        SseRequest::Customer(key) => Some(key),
        _ => {
            return Err(request.error(
                S3ErrorKind::InvalidArgument,
                "the encryption of an upload is chosen when it is created",
            ))
        }
    };
    sse::check_customer(encryption, customer.as_ref(), &request.resource)?;
    Ok(customer)
}
