use std::fmt;

use crate::KeyState;

/// The result of every fallible KMS operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a KMS operation, named after the situation.
///
/// Messages are lower-case, carry key ids and backend names for context, and never carry key
/// material, tokens or request bodies. Only `kms-http` decides which status code each one gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed or a value is out of range.
    InvalidRequest {
        /// What is wrong, for a person.
        reason: String,
    },
    /// No key with this id exists.
    KeyNotFound {
        /// The key id asked for.
        key_id: String,
    },
    /// A key with this id exists already.
    KeyAlreadyExists {
        /// The key id asked for.
        key_id: String,
    },
    /// The key is in a state that forbids this operation.
    InvalidKeyState {
        /// The key id.
        key_id: String,
        /// The state the key is in.
        state: KeyState,
        /// What was refused.
        operation: &'static str,
    },
    /// The operation conflicts with the configuration (for example deleting the default key).
    Conflict {
        /// What conflicts, for a person.
        reason: String,
    },
    /// The ciphertext blob or its encryption context does not authenticate.
    DecryptionFailed,
    /// Sealing a data key failed.
    EncryptionFailed,
    /// The backend cannot be reached or is sealed; retrying later may help.
    BackendUnavailable {
        /// Which backend.
        backend: BackendName,
        /// What happened, without secrets.
        reason: String,
    },
    /// The backend answered with an error that retrying will not fix.
    Backend {
        /// Which backend.
        backend: BackendName,
        /// What happened, without secrets.
        reason: String,
    },
}

/// The name of a backend in error messages.
pub type BackendName = &'static str;

impl Error {
    /// An [`Error::InvalidRequest`] with this reason.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// An [`Error::KeyNotFound`] for this key id.
    pub fn key_not_found(key_id: impl fmt::Display) -> Self {
        Self::KeyNotFound {
            key_id: key_id.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRequest { reason } => write!(f, "{reason}"),
            Self::KeyNotFound { key_id } => write!(f, "key '{key_id}' does not exist"),
            Self::KeyAlreadyExists { key_id } => write!(f, "key '{key_id}' already exists"),
            Self::InvalidKeyState {
                key_id,
                state,
                operation,
            } => {
                write!(f, "key '{key_id}' is {state} and cannot {operation}")
            }
            Self::Conflict { reason } => write!(f, "{reason}"),
            Self::DecryptionFailed => {
                write!(
                    f,
                    "the ciphertext blob or its encryption context does not authenticate"
                )
            }
            Self::EncryptionFailed => write!(f, "the data key could not be sealed"),
            Self::BackendUnavailable { backend, reason } => {
                write!(f, "the {backend} backend is unavailable: {reason}")
            }
            Self::Backend { backend, reason } => {
                write!(f, "the {backend} backend failed: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {}
