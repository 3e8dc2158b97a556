//! The records of objects and multipart uploads, as stored in their JSON files.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use kms_core::SecretBytes;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::package::{Tampered, SALT_LEN};

/// One stored object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object key.
    pub key: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// The entity tag, without quotes: the plaintext MD5 for unencrypted objects, the MD5 of the
    /// packages' tags for encrypted ones ([`crate::WrittenSegment`]), or `<md5 of the part
    /// tags>-N` for a multipart object.
    pub etag: String,
    /// When it was written.
    pub last_modified: DateTime<Utc>,
    /// The stored representation headers (`content-type`, `content-encoding`, …), lower case.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// User metadata (`x-amz-meta-*` without the prefix), lower case names.
    #[serde(default)]
    pub user_metadata: Vec<(String, String)>,
    /// The checksum the client gave for the whole object, over the plaintext.
    #[serde(default)]
    pub checksum: Option<Checksum>,
    /// How the data is encrypted.
    pub encryption: Encryption,
    /// The data, in order.
    pub segments: Vec<Segment>,
    /// HMAC of the layout (object name, encryption record, segments) under the store's integrity
    /// key, hex; see [`layout_mac`].
    #[serde(default)]
    pub layout_mac: String,
}

/// A checksum given by the client: algorithm (`CRC32`, `SHA256`, …) and base64 value.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checksum {
    /// The algorithm, upper case as in `x-amz-checksum-algorithm`.
    pub algorithm: String,
    /// The base64 value.
    pub value: String,
}

/// How an object (or an upload) is encrypted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encryption {
    /// Stored as sent.
    None,
    /// A data key from the KMS (SSE-S3 or SSE-KMS).
    Kms {
        /// `AES256` (SSE-S3, under the default key) or `aws:kms`.
        algorithm: String,
        /// The master key that sealed the data key.
        key_id: String,
        /// The sealed data key (envelope bytes), hex.
        wrapped_key: String,
        /// The caller's part of the encryption context (the object's ARN is always added).
        #[serde(default)]
        context: BTreeMap<String, String>,
        /// Echoed as `x-amz-server-side-encryption-bucket-key-enabled`.
        #[serde(default)]
        bucket_key_enabled: bool,
    },
    /// A key the customer sends with every request (SSE-C); only a salted check value is kept,
    /// not even the key's MD5.
    Customer {
        /// Salt of the check value, hex.
        salt: String,
        /// HMAC-SHA256 of the salt under the customer key, hex.
        check: String,
    },
}

impl Encryption {
    /// Whether the data is encrypted.
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// The SSE-C record for a customer key.
    pub fn customer(key: &SecretBytes) -> Self {
        let salt = SecretBytes::random(SALT_LEN);
        Self::Customer {
            check: hex::encode(customer_check(key, salt.expose())),
            salt: hex::encode(salt.expose()),
        }
    }

    /// Whether `key` is the customer key of this SSE-C record (constant time).
    pub fn customer_key_matches(&self, key: &SecretBytes) -> bool {
        use subtle::ConstantTimeEq;
        let Self::Customer { salt, check, .. } = self else {
            return false;
        };
        let (Ok(salt), Ok(check)) = (hex::decode(salt), hex::decode(check)) else {
            return false;
        };
        customer_check(key, &salt).ct_eq(&check).into()
    }
}

fn customer_check(key: &SecretBytes, salt: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose()).expect("HMAC takes any key");
    mac.update(b"kms-sse-c-check-v1");
    mac.update(salt);
    mac.finalize().into_bytes().to_vec()
}

/// One stored run of packages: the body of a single PUT, or one part of a multipart upload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    /// The segment file's name in the bucket directory.
    pub file: String,
    /// The part number (1 for a single PUT); part of the package key derivation.
    pub part_number: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// The salt of the package key, hex; absent for unencrypted objects.
    #[serde(default)]
    pub salt: Option<String>,
}

impl Segment {
    /// The salt as bytes.
    pub fn salt_bytes(&self) -> Result<Option<[u8; SALT_LEN]>, Tampered> {
        match &self.salt {
            None => Ok(None),
            Some(text) => hex::decode(text)
                .ok()
                .and_then(|b| b.try_into().ok())
                .map(Some)
                .ok_or(Tampered),
        }
    }
}

/// A multipart upload in progress.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadMeta {
    /// The upload id.
    pub upload_id: String,
    /// The bucket.
    pub bucket: String,
    /// The object key it will complete into.
    pub key: String,
    /// When it was created.
    pub initiated: DateTime<Utc>,
    /// Representation headers for the object.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// User metadata for the object.
    #[serde(default)]
    pub user_metadata: Vec<(String, String)>,
    /// The encryption of every part (one data key for the whole object).
    pub encryption: Encryption,
}

/// One uploaded part.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartMeta {
    /// Its number, 1 to 10,000.
    pub part_number: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// Its entity tag, without quotes.
    pub etag: String,
    /// When it was uploaded.
    pub last_modified: DateTime<Utc>,
    /// The segment file in the upload directory.
    pub file: String,
    /// The salt of its package key, hex.
    #[serde(default)]
    pub salt: Option<String>,
    /// The checksum the client gave for it.
    #[serde(default)]
    pub checksum: Option<Checksum>,
}

/// The MAC that binds an object's layout to its name: which segments, in which order, of which
/// sizes and salts, under which encryption record. Without it, editing the metadata file could
/// drop or reorder whole parts without any package failing to authenticate.
pub fn layout_mac(integrity_key: &SecretBytes, bucket: &str, meta: &ObjectMeta) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(integrity_key.expose()).expect("any key");
    let mut field = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    field(b"kms-object-layout-v1");
    field(bucket.as_bytes());
    field(meta.key.as_bytes());
    field(&meta.size.to_be_bytes());
    let encryption = serde_json::to_vec(&meta.encryption).expect("plain data serialises");
    field(&encryption);
    for segment in &meta.segments {
        field(segment.file.as_bytes());
        field(&segment.part_number.to_be_bytes());
        field(&segment.size.to_be_bytes());
        field(segment.salt.as_deref().unwrap_or("").as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Checks the layout MAC and that the segment sizes add up to the object size.
pub fn verify_layout(
    integrity_key: &SecretBytes,
    bucket: &str,
    meta: &ObjectMeta,
) -> Result<(), Tampered> {
    use subtle::ConstantTimeEq;
    let expected = layout_mac(integrity_key, bucket, meta);
    let total: u64 = meta.segments.iter().map(|s| s.size).sum();
    let mac_ok: bool = expected.as_bytes().ct_eq(meta.layout_mac.as_bytes()).into();
    if mac_ok && total == meta.size {
        Ok(())
    } else {
        Err(Tampered)
    }
}
