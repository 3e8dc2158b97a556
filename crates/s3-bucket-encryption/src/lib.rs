//! Buckets and their default encryption, as S3 defines them.
//!
//! [`BucketName`] enforces the S3 naming rules; [`EncryptionConfig`] is a validated bucket default
//! encryption, parsed from and written to the standard `ServerSideEncryptionConfiguration` XML
//! ([`EncryptionConfig::from_xml`], [`EncryptionConfig::to_xml`]); [`BucketRecord`] is what the
//! server stores for a bucket. [`xml`] writes the other S3 documents the server answers with; [`objects`] parses and
//! writes the documents of the object API.
//!
//! This crate is the only one that knows the S3 XML schema. It does not check that a KMS key
//! exists (the server does, with the KMS) and does no I/O.

mod bucket;
mod document;
mod encryption;
pub mod objects;
pub mod xml;

pub use bucket::{BucketName, BucketRecord};
pub use encryption::{ConfigError, EncryptionConfig, SseAlgorithm, S3_XML_NAMESPACE};
