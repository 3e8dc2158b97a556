//! The package format: an object's data sealed in 64 KiB authenticated packages.
//!
//! Each object has one 256-bit object key (a data key from the KMS, or the SSE-C customer key).
//! Each segment of an object (the whole body of a single PUT, or one part of a multipart upload)
//! gets its own AES-256-GCM key, derived with HKDF-SHA256 from the object key, a random 128-bit
//! salt chosen when the segment is written, and the part number. Within a segment, package `i`
//! is sealed with the nonce `i (u64, big-endian) || 0 0 0 last`, where `last` is 1 for the final
//! package only. So:
//!
//! - no nonce repeats under a key: every segment write has a fresh salt, hence a fresh key, and
//!   each package of it a distinct index (re-uploading a part never reuses a key);
//! - reordering packages fails (the index is in the nonce), dropping packages from the end fails
//!   (the new last package was not sealed as last), flipping a bit fails (the GCM tag);
//! - a range read decrypts only the packages it touches: package `i` starts at byte
//!   `i * SEALED_PACKAGE` of the segment file.
//!
//! Which segments make up the object, in which order and of which sizes is authenticated
//! separately, by the layout MAC of the object's metadata ([`crate::ObjectMeta`]).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use kms_core::SecretBytes;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Plaintext bytes per package (the last package of a segment may be shorter).
pub const PACKAGE: u64 = 64 * 1024;
/// The GCM tag each package carries.
pub const TAG: u64 = 16;
/// Bytes of a full package on disk.
pub const SEALED_PACKAGE: u64 = PACKAGE + TAG;
/// Length of the random salt of a segment.
pub const SALT_LEN: usize = 16;

/// Packages in a segment of `size` plaintext bytes: at least one, so that even an empty segment
/// carries a tag sealed as the last package.
pub fn package_count(size: u64) -> u64 {
    size.div_ceil(PACKAGE).max(1)
}

/// Bytes on disk of a sealed segment of `size` plaintext bytes.
pub fn sealed_len(size: u64) -> u64 {
    size + package_count(size) * TAG
}

/// A package failed to authenticate: the file was changed, truncated or reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tampered;

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stored object data does not authenticate")
    }
}

impl std::error::Error for Tampered {}

/// The cipher of one segment.
pub struct SegmentCipher {
    aead: Aes256Gcm,
}

impl SegmentCipher {
    /// The cipher for the segment with this salt and part number (1 for a single PUT), under the
    /// object key.
    pub fn new(object_key: &SecretBytes, salt: &[u8; SALT_LEN], part_number: u32) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(salt), object_key.expose());
        let mut info = b"kms-object-segment-v1".to_vec();
        info.extend_from_slice(&part_number.to_be_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's output limit, so expansion cannot fail.
        let _ = hkdf.expand(&info, key.as_mut());
        Self {
            aead: Aes256Gcm::new_from_slice(key.as_ref()).expect("derived keys are 32 bytes"),
        }
    }

    /// Seals package `index` of the segment.
    pub fn seal(&self, index: u64, last: bool, plaintext: &[u8]) -> Vec<u8> {
        self.aead
            .encrypt(&nonce(index, last), plaintext)
            .expect("AES-GCM sealing of a package cannot fail")
    }

    /// Opens package `index`, which must have been sealed with the same `last` flag.
    pub fn open(&self, index: u64, last: bool, sealed: &[u8]) -> Result<Vec<u8>, Tampered> {
        self.aead
            .decrypt(&nonce(index, last), sealed)
            .map_err(|_| Tampered)
    }
}

fn nonce(index: u64, last: bool) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[11] = u8::from(last);
    Nonce::from(bytes)
}
