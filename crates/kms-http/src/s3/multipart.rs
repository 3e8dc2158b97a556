//! Multipart uploads: create, upload part (also by copy), list parts, complete, abort, and the
//! listing of a bucket's uploads. One data key serves the whole object: it is made when the
//! upload is created, stored wrapped in the upload record, and unwrapped once per part request.

use actix_web::HttpResponse;
use md5::{Digest, Md5};
use s3_bucket_encryption::objects::{self as documents, ListedPart, ListedUpload, MAX_PARTS};
use s3_object_store::{ObjectMeta, PartMeta, Segment, UploadMeta};

use super::body::BodyStream;
use super::dispatch::{xml_response, S3Request};
use super::encryption::existing_bucket;
use super::objects::{
    copy_data, copy_source, given_checksum, internal, new_segment_cipher, object_key,
    open_copy_source, receive, report_checksum, upload_customer_key, write_headers,
};
use super::sse::{self, Sealing};
use super::{S3Error, S3ErrorKind};
use crate::auth::Action;
use crate::AppState;

/// The smallest part but the last, as in S3.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

fn param<'a>(request: &'a S3Request, name: &str) -> Option<&'a str> {
    request
        .query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// CreateMultipartUpload (`POST /{bucket}/{key}?uploads`).
pub async fn create(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::PutObject)?;
    let record = existing_bucket(state, bucket)?;
    let key = object_key(request, raw_key)?;
    let headers = request.req.headers();
    let sse_request = sse::parse_request(headers, &request.resource)?;
    let (stored, user) = write_headers(request)?;
    let Sealing { encryption, .. } =
        sse::seal_new(state, &record, &key, sse_request, &request.resource).await?;
    let upload = UploadMeta {
        upload_id: String::new(),
        bucket: bucket.to_owned(),
        key: key.clone(),
        initiated: kms_core::now(),
        headers: stored,
        user_metadata: user,
        encryption,
    };
    let id = state
        .objects
        .create_upload(upload.clone())
        .await
        .map_err(|e| internal(request, "creating an upload failed", e))?;
    let mut response = HttpResponse::Ok();
    sse::report(&upload.encryption, request.req.headers(), &mut response);
    Ok(response
        .content_type("application/xml")
        .body(documents::initiate_upload(bucket, &key, &id)))
}

/// The common start of the routes on an upload: permission, bucket, key, and the upload named
/// by `uploadId`, which must belong to this bucket and key.
async fn existing_upload(
    state: &AppState,
    request: &S3Request,
    action: Action,
    bucket: &str,
    raw_key: &str,
) -> Result<(String, UploadMeta), S3Error> {
    request.require(state, action)?;
    existing_bucket(state, bucket)?;
    let key = object_key(request, raw_key)?;
    let id = param(request, "uploadId").unwrap_or("");
    let upload = state
        .objects
        .upload(id)
        .await
        .map_err(|e| internal(request, "reading an upload failed", e))?;
    let upload = upload
        .filter(|u| u.bucket == bucket && u.key == key)
        .ok_or_else(|| {
            request.error(
                S3ErrorKind::NoSuchUpload,
                "the upload does not exist; it may have been completed or aborted",
            )
        })?;
    Ok((key, upload))
}

fn part_number(request: &S3Request) -> Result<u32, S3Error> {
    param(request, "partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            request.error(
                S3ErrorKind::InvalidArgument,
                "partNumber must be an integer from 1 to 10000",
            )
        })
}

/// UploadPart (`PUT /{bucket}/{key}?partNumber=N&uploadId=…`), and UploadPartCopy when the
/// request names `x-amz-copy-source` (then `body` is empty).
pub async fn upload_part(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
    body: Option<BodyStream>,
) -> Result<HttpResponse, S3Error> {
    // Permission (403) before validation (400) before lookups (404), as everywhere.
    request.require(state, Action::PutObject)?;
    let number = part_number(request)?;
    let (key, upload) = existing_upload(state, request, Action::PutObject, bucket, raw_key).await?;
    let customer = upload_customer_key(request, &upload.encryption)?;
    let copy = match body {
        Some(_) => None,
        None => Some(open_copy_source(state, request, copy_source(request)?).await?),
    };
    let object_key = sse::open_existing(
        state,
        bucket,
        &key,
        &upload.encryption,
        customer,
        &request.resource,
    )
    .await?;
    let store = &state.objects;
    let id = upload.upload_id.as_str();
    let copy_range = match &copy {
        Some(source) => Some(copy_range(request, source.object.meta.size)?),
        None => None,
    };
    let (segment, file) = store
        .create_part_segment(id)
        .map_err(|e| internal(request, "creating a part segment failed", e))?;
    let (cipher, salt) = new_segment_cipher(object_key.as_ref(), number);
    // On any error `segment` is dropped, which removes its file.
    let (written, checksum) = match (&copy, copy_range, body) {
        (Some(source), Some(range), _) => {
            let written = copy_data(state, request, source, range, file, cipher).await?;
            (written, None)
        }
        (_, _, Some(mut body)) => {
            let (written, summary) = receive(request, &mut body, file, cipher).await?;
            (written, given_checksum(&summary))
        }
        _ => unreachable!("a part without a body is a copy"),
    };
    let part = PartMeta {
        part_number: number,
        size: written.size,
        etag: hex::encode(written.stored_md5),
        last_modified: kms_core::now(),
        file: segment.name().to_owned(),
        salt,
        checksum,
    };
    if let Err(e) = store.commit_part(id, part.clone(), segment).await {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Err(request.error(S3ErrorKind::NoSuchUpload, "the upload does not exist"));
        }
        return Err(internal(request, "committing a part failed", e));
    }
    let mut response = HttpResponse::Ok();
    sse::report(&upload.encryption, request.req.headers(), &mut response);
    if copy.is_some() {
        return Ok(response
            .content_type("application/xml")
            .body(documents::copy_result(
                &part.etag,
                &part.last_modified,
                true,
            )));
    }
    response.insert_header(("ETag", format!("\"{}\"", part.etag)));
    report_checksum(part.checksum.as_ref(), &mut response);
    Ok(response.finish())
}

/// `x-amz-copy-source-range: bytes=a-b` of UploadPartCopy, within the source; else all of it.
fn copy_range(request: &S3Request, size: u64) -> Result<(u64, u64), S3Error> {
    let Some(value) = request.req.headers().get("x-amz-copy-source-range") else {
        return Ok((0, size));
    };
    let invalid = || {
        request.error(
            S3ErrorKind::InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last within the source",
        )
    };
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("bytes="))
        .ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let (first, last) = (
        first.parse::<u64>().map_err(|_| invalid())?,
        last.parse::<u64>().map_err(|_| invalid())?,
    );
    if first > last || last >= size {
        return Err(invalid());
    }
    Ok((first, last + 1))
}

/// CompleteMultipartUpload (`POST /{bucket}/{key}?uploadId=…`).
pub async fn complete(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
) -> Result<HttpResponse, S3Error> {
    let (key, upload) = existing_upload(state, request, Action::PutObject, bucket, raw_key).await?;
    super::dispatch::check_integrity(request, false)?;
    let named = documents::parse_complete(&request.body).map_err(|e| {
        request.error(
            S3ErrorKind::MalformedXml,
            format!("the CompleteMultipartUpload document is not valid: {e}"),
        )
    })?;
    if named
        .windows(2)
        .any(|w| w[0].part_number >= w[1].part_number)
    {
        return Err(request.error(
            S3ErrorKind::InvalidPartOrder,
            "the parts must be listed in ascending order of part number",
        ));
    }
    let id = upload.upload_id.as_str();
    let stored = state
        .objects
        .parts(id)
        .await
        .map_err(|e| internal(request, "reading the parts of an upload failed", e))?;
    let mut chosen: Vec<&PartMeta> = Vec::with_capacity(named.len());
    for want in &named {
        let part = stored
            .iter()
            .find(|p| p.part_number == want.part_number && p.etag == want.etag)
            .ok_or_else(|| {
                request.error(
                    S3ErrorKind::InvalidPart,
                    format!(
                        "part {} was not uploaded or its ETag does not match",
                        want.part_number
                    ),
                )
            })?;
        chosen.push(part);
    }
    if let Some(small) = chosen[..chosen.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(request.error(
            S3ErrorKind::EntityTooSmall,
            format!(
                "part {} is smaller than the 5 MiB minimum of every part but the last",
                small.part_number
            ),
        ));
    }
    let mut tags = Md5::new();
    for part in &chosen {
        tags.update(hex::decode(&part.etag).unwrap_or_default());
    }
    let meta = ObjectMeta {
        key: key.clone(),
        size: chosen.iter().map(|p| p.size).sum(),
        etag: format!("{}-{}", hex::encode(tags.finalize()), chosen.len()),
        last_modified: kms_core::now(),
        headers: upload.headers.clone(),
        user_metadata: upload.user_metadata.clone(),
        checksum: None,
        encryption: upload.encryption.clone(),
        segments: chosen
            .iter()
            .map(|p| Segment {
                file: p.file.clone(),
                part_number: p.part_number,
                size: p.size,
                salt: p.salt.clone(),
            })
            .collect(),
        layout_mac: String::new(),
    };
    let etag = meta.etag.clone();
    state
        .objects
        .complete_upload(id, bucket, meta)
        .await
        .map_err(|e| internal(request, "completing an upload failed", e))?;
    let location = format!("/{bucket}/{}", raw_key);
    let mut response = HttpResponse::Ok();
    sse::report(&upload.encryption, request.req.headers(), &mut response);
    Ok(response
        .content_type("application/xml")
        .body(documents::complete_upload(&location, bucket, &key, &etag)))
}

/// AbortMultipartUpload (`DELETE /{bucket}/{key}?uploadId=…`).
pub async fn abort(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
) -> Result<HttpResponse, S3Error> {
    let (_, upload) = existing_upload(
        state,
        request,
        Action::AbortMultipartUpload,
        bucket,
        raw_key,
    )
    .await?;
    state
        .objects
        .abort_upload(&upload.upload_id)
        .await
        .map_err(|e| internal(request, "aborting an upload failed", e))?;
    Ok(HttpResponse::NoContent().finish())
}

/// ListParts (`GET /{bucket}/{key}?uploadId=…`).
pub async fn list_parts(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
    raw_key: &str,
) -> Result<HttpResponse, S3Error> {
    let (key, upload) = existing_upload(
        state,
        request,
        Action::ListMultipartUploadParts,
        bucket,
        raw_key,
    )
    .await?;
    let invalid = |what: &str| request.error(S3ErrorKind::InvalidArgument, what);
    let max_parts = match param(request, "max-parts") {
        None => 1000,
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| invalid("max-parts must be a non-negative integer"))?
            .min(1000),
    };
    let marker = match param(request, "part-number-marker") {
        None => 0,
        Some(n) => n
            .parse::<u32>()
            .map_err(|_| invalid("part-number-marker must be an integer"))?,
    };
    let parts = state
        .objects
        .parts(&upload.upload_id)
        .await
        .map_err(|e| internal(request, "reading the parts of an upload failed", e))?;
    let after: Vec<&PartMeta> = parts.iter().filter(|p| p.part_number > marker).collect();
    let truncated = after.len() > max_parts;
    let listed: Vec<ListedPart<'_>> = after
        .iter()
        .take(max_parts)
        .map(|p| ListedPart {
            part_number: p.part_number,
            last_modified: p.last_modified,
            etag: &p.etag,
            size: p.size,
        })
        .collect();
    let owner = state.owner_id();
    Ok(xml_response(documents::list_parts(
        bucket,
        &key,
        &upload.upload_id,
        marker,
        max_parts,
        &listed,
        truncated,
        (&owner, state.root_access_key()),
    )))
}

/// ListMultipartUploads (`GET /{bucket}?uploads`): every upload in progress, one page.
pub async fn list_uploads(
    state: &AppState,
    request: &S3Request,
    bucket: &str,
) -> Result<HttpResponse, S3Error> {
    request.require(state, Action::ListBucketMultipartUploads)?;
    existing_bucket(state, bucket)?;
    let uploads = state
        .objects
        .uploads_of(bucket)
        .await
        .map_err(|e| internal(request, "listing uploads failed", e))?;
    let listed: Vec<ListedUpload<'_>> = uploads
        .iter()
        .map(|u| ListedUpload {
            key: &u.key,
            upload_id: &u.upload_id,
            initiated: u.initiated,
        })
        .collect();
    let owner = state.owner_id();
    Ok(xml_response(documents::list_uploads(
        bucket,
        &listed,
        (&owner, state.root_access_key()),
    )))
}
