//! The XML documents of the object API: the two that clients send (CompleteMultipartUpload and
//! Delete) parsed into validated types, and the results the server answers with.

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::escape::escape;

use crate::document;
use crate::encryption::{malformed, ConfigError};
use crate::S3_XML_NAMESPACE;

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// The most parts an upload may have, and the most keys one Delete may name (S3's limits).
pub const MAX_PARTS: u32 = 10_000;
/// The most keys one DeleteObjects request may name.
pub const MAX_DELETE_KEYS: usize = 1000;

fn date(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A part named in a CompleteMultipartUpload request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// Its number.
    pub part_number: u32,
    /// Its entity tag, quotes removed.
    pub etag: String,
}

/// Parses `CompleteMultipartUpload`: the parts in the order given (the caller checks the order).
pub fn parse_complete(xml: &[u8]) -> Result<Vec<CompletedPart>, ConfigError> {
    let root = document::parse(xml)?;
    if root.name != "CompleteMultipartUpload" {
        return Err(malformed(
            "the root element must be CompleteMultipartUpload",
        ));
    }
    let mut parts = Vec::new();
    for part in root.children_named("Part", &["Part"])? {
        let allowed = [
            "PartNumber",
            "ETag",
            "ChecksumCRC32",
            "ChecksumCRC32C",
            "ChecksumCRC64NVME",
            "ChecksumSHA1",
            "ChecksumSHA256",
        ];
        let number = part
            .only_child("PartNumber", &allowed)?
            .ok_or_else(|| malformed("a Part has no PartNumber"))?;
        let etag = part
            .only_child("ETag", &[])?
            .ok_or_else(|| malformed("a Part has no ETag"))?;
        let part_number = number
            .text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PARTS).contains(n))
            .ok_or_else(|| malformed("PartNumber must be 1 to 10000"))?;
        parts.push(CompletedPart {
            part_number,
            etag: etag.text.trim().trim_matches('"').to_owned(),
        });
        if parts.len() > MAX_PARTS as usize {
            return Err(malformed("too many parts"));
        }
    }
    if parts.is_empty() {
        return Err(malformed("the upload must name at least one part"));
    }
    Ok(parts)
}

/// A parsed `Delete` request of DeleteObjects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Report only failures.
    pub quiet: bool,
    /// The keys, in the order given.
    pub keys: Vec<String>,
}

/// Parses `Delete`.
pub fn parse_delete(xml: &[u8]) -> Result<DeleteRequest, ConfigError> {
    let root = document::parse(xml)?;
    if root.name != "Delete" {
        return Err(malformed("the root element must be Delete"));
    }
    let objects = root.children_named("Object", &["Object", "Quiet"])?;
    let quiet = match root.only_child("Quiet", &[])? {
        None => false,
        Some(q) => match q.text.trim() {
            "true" => true,
            "false" => false,
            _ => return Err(malformed("Quiet must be true or false")),
        },
    };
    if objects.is_empty() || objects.len() > MAX_DELETE_KEYS {
        return Err(malformed("Delete must name 1 to 1000 objects"));
    }
    let mut keys = Vec::with_capacity(objects.len());
    for object in objects {
        let allowed = ["Key", "VersionId", "ETag", "LastModifiedTime", "Size"];
        let key = object
            .only_child("Key", &allowed)?
            .ok_or_else(|| malformed("an Object has no Key"))?;
        keys.push(key.text.clone());
    }
    Ok(DeleteRequest { quiet, keys })
}

/// An object in a listing.
#[derive(Clone, Debug)]
pub struct ListedObject<'a> {
    /// Its key.
    pub key: &'a str,
    /// When it was written.
    pub last_modified: DateTime<Utc>,
    /// Its entity tag, without quotes.
    pub etag: &'a str,
    /// Its size.
    pub size: u64,
}

/// What a ListObjects (v1) or ListObjectsV2 result holds.
#[derive(Clone, Debug, Default)]
pub struct ObjectListing<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The prefix asked for.
    pub prefix: &'a str,
    /// The delimiter asked for.
    pub delimiter: Option<&'a str>,
    /// The page size asked for.
    pub max_keys: usize,
    /// Whether keys are URL-encoded (`encoding-type=url`).
    pub url_encoded: bool,
    /// The objects.
    pub objects: Vec<ListedObject<'a>>,
    /// The common prefixes.
    pub common_prefixes: Vec<&'a str>,
    /// Whether more follow.
    pub truncated: bool,
    /// Owner to show with each object, when asked for.
    pub owner: Option<(&'a str, &'a str)>,
}

/// The version of a listing and its position fields.
#[derive(Clone, Debug)]
pub enum ListVersion<'a> {
    /// ListObjects: `marker` given, `next_marker` when truncated (S3 sends it with a delimiter).
    V1 {
        /// The marker asked for.
        marker: &'a str,
        /// Where the next page starts.
        next_marker: Option<&'a str>,
    },
    /// ListObjectsV2.
    V2 {
        /// The continuation token asked for.
        continuation_token: Option<&'a str>,
        /// The token of the next page.
        next_continuation_token: Option<&'a str>,
        /// `start-after` as asked.
        start_after: Option<&'a str>,
    },
}

/// `ListBucketResult`.
pub fn list_objects(listing: &ObjectListing<'_>, version: &ListVersion<'_>) -> String {
    let text = |value: &str| -> String {
        if listing.url_encoded {
            escape(url_encode(value).as_str()).into_owned()
        } else {
            escape(value).into_owned()
        }
    };
    let mut xml = format!(
        "{DECLARATION}<ListBucketResult xmlns=\"{S3_XML_NAMESPACE}\"><Name>{}</Name><Prefix>{}</Prefix>",
        escape(listing.bucket),
        text(listing.prefix)
    );
    match version {
        ListVersion::V1 {
            marker,
            next_marker,
        } => {
            xml.push_str(&format!("<Marker>{}</Marker>", text(marker)));
            if let Some(next) = next_marker {
                xml.push_str(&format!("<NextMarker>{}</NextMarker>", text(next)));
            }
        }
        ListVersion::V2 {
            continuation_token,
            next_continuation_token,
            start_after,
        } => {
            let count = listing.objects.len() + listing.common_prefixes.len();
            xml.push_str(&format!("<KeyCount>{count}</KeyCount>"));
            if let Some(token) = continuation_token {
                xml.push_str(&format!(
                    "<ContinuationToken>{}</ContinuationToken>",
                    escape(*token)
                ));
            }
            if let Some(token) = next_continuation_token {
                xml.push_str(&format!(
                    "<NextContinuationToken>{}</NextContinuationToken>",
                    escape(*token)
                ));
            }
            if let Some(after) = start_after {
                xml.push_str(&format!("<StartAfter>{}</StartAfter>", text(after)));
            }
        }
    }
    xml.push_str(&format!("<MaxKeys>{}</MaxKeys>", listing.max_keys));
    if let Some(delimiter) = listing.delimiter {
        xml.push_str(&format!("<Delimiter>{}</Delimiter>", text(delimiter)));
    }
    if listing.url_encoded {
        xml.push_str("<EncodingType>url</EncodingType>");
    }
    xml.push_str(&format!("<IsTruncated>{}</IsTruncated>", listing.truncated));
    for object in &listing.objects {
        xml.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size>",
            text(object.key),
            date(&object.last_modified),
            escape(object.etag),
            object.size
        ));
        if let Some((id, name)) = listing.owner {
            xml.push_str(&format!(
                "<Owner><ID>{}</ID><DisplayName>{}</DisplayName></Owner>",
                escape(id),
                escape(name)
            ));
        }
        xml.push_str("<StorageClass>STANDARD</StorageClass></Contents>");
    }
    for prefix in &listing.common_prefixes {
        xml.push_str(&format!(
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            text(prefix)
        ));
    }
    xml.push_str("</ListBucketResult>");
    xml
}

/// Percent-encodes a key as S3 does for `encoding-type=url` (unreserved characters and `/`
/// kept).
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `CopyObjectResult` (or `CopyPartResult` when `part` is set).
pub fn copy_result(etag: &str, last_modified: &DateTime<Utc>, part: bool) -> String {
    let root = if part {
        "CopyPartResult"
    } else {
        "CopyObjectResult"
    };
    format!(
        "{DECLARATION}<{root} xmlns=\"{S3_XML_NAMESPACE}\"><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag></{root}>",
        date(last_modified),
        escape(etag)
    )
}

/// `InitiateMultipartUploadResult`.
pub fn initiate_upload(bucket: &str, key: &str, upload_id: &str) -> String {
    format!(
        "{DECLARATION}<InitiateMultipartUploadResult xmlns=\"{S3_XML_NAMESPACE}\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId></InitiateMultipartUploadResult>",
        escape(bucket),
        escape(key),
        escape(upload_id)
    )
}

/// `CompleteMultipartUploadResult`.
pub fn complete_upload(location: &str, bucket: &str, key: &str, etag: &str) -> String {
    format!(
        "{DECLARATION}<CompleteMultipartUploadResult xmlns=\"{S3_XML_NAMESPACE}\"><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>&quot;{}&quot;</ETag></CompleteMultipartUploadResult>",
        escape(location),
        escape(bucket),
        escape(key),
        escape(etag)
    )
}

/// A part in a ListParts result.
#[derive(Clone, Debug)]
pub struct ListedPart<'a> {
    /// Its number.
    pub part_number: u32,
    /// When it was uploaded.
    pub last_modified: DateTime<Utc>,
    /// Its entity tag, without quotes.
    pub etag: &'a str,
    /// Its size.
    pub size: u64,
}

/// `ListPartsResult`.
#[allow(clippy::too_many_arguments)]
pub fn list_parts(
    bucket: &str,
    key: &str,
    upload_id: &str,
    marker: u32,
    max_parts: usize,
    parts: &[ListedPart<'_>],
    truncated: bool,
    owner: (&str, &str),
) -> String {
    let mut xml = format!(
        "{DECLARATION}<ListPartsResult xmlns=\"{S3_XML_NAMESPACE}\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId><Initiator><ID>{id}</ID><DisplayName>{name}</DisplayName></Initiator><Owner><ID>{id}</ID><DisplayName>{name}</DisplayName></Owner><StorageClass>STANDARD</StorageClass><PartNumberMarker>{marker}</PartNumberMarker>",
        escape(bucket),
        escape(key),
        escape(upload_id),
        id = escape(owner.0),
        name = escape(owner.1),
    );
    if let Some(last) = parts.last().filter(|_| truncated) {
        xml.push_str(&format!(
            "<NextPartNumberMarker>{}</NextPartNumberMarker>",
            last.part_number
        ));
    }
    xml.push_str(&format!(
        "<MaxParts>{max_parts}</MaxParts><IsTruncated>{truncated}</IsTruncated>"
    ));
    for part in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size></Part>",
            part.part_number,
            date(&part.last_modified),
            escape(part.etag),
            part.size
        ));
    }
    xml.push_str("</ListPartsResult>");
    xml
}

/// An upload in a ListMultipartUploads result.
#[derive(Clone, Debug)]
pub struct ListedUpload<'a> {
    /// The object key.
    pub key: &'a str,
    /// The upload id.
    pub upload_id: &'a str,
    /// When it was started.
    pub initiated: DateTime<Utc>,
}

/// `ListMultipartUploadsResult` (one page holding every upload).
pub fn list_uploads(bucket: &str, uploads: &[ListedUpload<'_>], owner: (&str, &str)) -> String {
    let mut xml = format!(
        "{DECLARATION}<ListMultipartUploadsResult xmlns=\"{S3_XML_NAMESPACE}\"><Bucket>{}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>",
        escape(bucket)
    );
    for upload in uploads {
        xml.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiator><ID>{id}</ID><DisplayName>{name}</DisplayName></Initiator><Owner><ID>{id}</ID><DisplayName>{name}</DisplayName></Owner><StorageClass>STANDARD</StorageClass><Initiated>{}</Initiated></Upload>",
            escape(upload.key),
            escape(upload.upload_id),
            date(&upload.initiated),
            id = escape(owner.0),
            name = escape(owner.1),
        ));
    }
    xml.push_str("</ListMultipartUploadsResult>");
    xml
}

/// One failed key of a DeleteObjects request.
#[derive(Clone, Debug)]
pub struct DeleteFailure<'a> {
    /// The key.
    pub key: &'a str,
    /// The S3 error code.
    pub code: &'a str,
    /// The message.
    pub message: &'a str,
}

/// `DeleteResult`: the deleted keys (omitted when quiet) and the failures.
pub fn delete_result(deleted: &[&str], failed: &[DeleteFailure<'_>], quiet: bool) -> String {
    let mut xml = format!("{DECLARATION}<DeleteResult xmlns=\"{S3_XML_NAMESPACE}\">");
    if !quiet {
        for key in deleted {
            xml.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(*key)));
        }
    }
    for failure in failed {
        xml.push_str(&format!(
            "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
            escape(failure.key),
            escape(failure.code),
            escape(failure.message)
        ));
    }
    xml.push_str("</DeleteResult>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_delete_documents_parse_and_refuse_junk() {
        let xml = format!(
            "<CompleteMultipartUpload xmlns=\"{S3_XML_NAMESPACE}\"><Part><ETag>\"abc\"</ETag><PartNumber>2</PartNumber><ChecksumCRC32>x</ChecksumCRC32></Part></CompleteMultipartUpload>"
        );
        assert_eq!(
            parse_complete(xml.as_bytes()).unwrap(),
            [CompletedPart {
                part_number: 2,
                etag: "abc".into()
            }]
        );
        assert!(parse_complete(b"<CompleteMultipartUpload/>").is_err());
        assert!(parse_complete(
            b"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>"
        )
        .is_err());
        let delete = parse_delete(
            b"<Delete>\n  <Quiet>true</Quiet>\n  <Object><Key>a/b</Key></Object><Object><Key> c&amp;d </Key></Object></Delete>",
        )
        .unwrap();
        assert!(delete.quiet);
        assert_eq!(delete.keys, ["a/b", " c&d "]);
        assert!(parse_delete(b"<Delete><Object><Nope/></Object></Delete>").is_err());
        assert!(parse_delete(b"<Delete></Delete>").is_err());
    }

    #[test]
    fn listings_encode_keys_when_asked() {
        let listing = ObjectListing {
            bucket: "b",
            prefix: "",
            max_keys: 1000,
            url_encoded: true,
            objects: vec![ListedObject {
                key: "a b&c",
                last_modified: DateTime::UNIX_EPOCH,
                etag: "e",
                size: 3,
            }],
            ..ObjectListing::default()
        };
        let xml = list_objects(
            &listing,
            &ListVersion::V2 {
                continuation_token: None,
                next_continuation_token: None,
                start_after: None,
            },
        );
        assert!(xml.contains("<Key>a%20b%26c</Key>"), "{xml}");
        assert!(xml.contains("<KeyCount>1</KeyCount>"));
        assert!(xml.contains("<ETag>&quot;e&quot;</ETag>"));
    }
}
