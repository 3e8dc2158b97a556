//! Objects on disk, encrypted at rest.
//!
//! An object is a record ([`ObjectMeta`], JSON) naming one or more segment files. Each segment
//! holds the object's data sealed in authenticated packages ([`package`]) under a key derived
//! from the object's own key: a fresh data key from the KMS per object (SSE-S3, SSE-KMS), or
//! the customer's key (SSE-C, never stored). Unencrypted objects keep their bytes as sent.
//!
//! This crate knows files and bytes; it does not talk to the KMS and knows nothing of HTTP.

pub mod listing;
pub mod meta;
pub mod package;
pub mod store;
pub mod stream;

pub use listing::{ListQuery, Listing};
pub use meta::{Checksum, Encryption, ObjectMeta, PartMeta, Segment, UploadMeta};
pub use package::{SegmentCipher, Tampered};
pub use store::{ObjectStore, PendingSegment, Summary};
pub use stream::{is_tampered, read_segment, SegmentWriter, WrittenSegment};
