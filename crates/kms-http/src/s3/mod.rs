//! The S3 API: path-style buckets, bucket default encryption and objects encrypted at rest,
//! XML over HTTP, signed for `s3`.

mod body;
mod dispatch;
mod encryption;
mod error;
mod multipart;
mod objects;
mod sse;

pub use body::{BodyStream, BodyStreamError, BodySummary, Checksum, Checksums};
pub use dispatch::dispatch;
pub use encryption::{delete_encryption, get_encryption, put_encryption};
pub use error::{S3Error, S3ErrorKind};
