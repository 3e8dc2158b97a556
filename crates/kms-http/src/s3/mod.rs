//! The S3 API: path-style buckets and bucket default encryption, XML over HTTP, signed for `s3`.

mod dispatch;
mod encryption;
mod error;

pub use dispatch::dispatch;
pub use encryption::{delete_encryption, get_encryption, put_encryption};
pub use error::{S3Error, S3ErrorKind};
