//! The core of the KMS: the vocabulary every other crate speaks.
//!
//! This layer defines master keys and their metadata ([`KeyMetadata`], [`KeyState`]), the
//! [`EncryptionContext`] with its canonical encoding, the versioned [`Envelope`] that a
//! ciphertext blob is made of, secret newtypes that print nothing ([`SecretBytes`]), the one
//! [`Error`] enum, and the [`Backend`] trait every key backend implements. The [`ops`] module holds
//! the backend-independent rules (key state checks, data key generation) written once.
//!
//! It deliberately does no file or network I/O and knows nothing of HTTP, JSON request shapes or
//! status codes: backends own storage, `kms-http` owns the wire.

mod backend;
mod context;
mod envelope;
mod error;
mod key;
pub mod ops;
mod secret;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod time;

pub use backend::{
    Backend, BackendKind, CacheStats, CreateKeyRequest, KeyChange, KeyPage, ListKeysRequest,
    ListMarker, LoadedKey, MasterKey,
};
pub use context::{EncryptionContext, MAX_CONTEXT_BYTES};
pub use envelope::{Envelope, ENVELOPE_VERSION};
pub use error::{Error, Result};
pub use key::{
    KeyId, KeyMetadata, KeySpec, KeyState, KeyUsage, Tags, DEFAULT_PENDING_WINDOW_DAYS,
    DEFAULT_ROTATION_PERIOD_DAYS, MAX_DESCRIPTION_CHARS, MAX_TAGS, MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS, PENDING_WINDOW_DAYS, ROTATION_PERIOD_DAYS,
};
pub use secret::SecretBytes;
pub use time::{format_timestamp, now};
