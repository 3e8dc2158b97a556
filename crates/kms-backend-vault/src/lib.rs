//! The Vault backend: master keys in HashiCorp Vault or OpenBao.
//!
//! [`VaultBackend`] implements [`kms_core::Backend`] on two secret engines. Key material never
//! leaves Vault: each master key is a Transit key (`aes256-gcm96`) named by its key id, and data
//! keys are sealed and unsealed by Transit `encrypt` and `decrypt`, with the envelope header and
//! the canonical encryption context bound as AEAD `associated_data`. Each key's
//! [`kms_core::KeyMetadata`] is a record in KV version 2, written with check-and-set so that two
//! writers never overwrite each other.
//!
//! [`VaultSettings`] says where Vault is and how to log in ([`VaultAuth`]: a token, a token
//! file, or AppRole, whose tokens are renewed before they expire). [`VaultBackend::connect`]
//! logs in and probes both mounts, so a bad configuration fails before anything changes.
//! Tokens are [`kms_core::SecretBytes`] and appear in no `Debug` output, message or log.
//!
//! The state rules come from `kms-core`; this crate only stores and loads. It knows nothing of
//! HTTP requests to the KMS, JSON configuration shapes or caching: `kms-http` turns the
//! configuration into [`VaultSettings`], `kms-cache` sits in front.
//!
//! A token needs this policy (with the default mounts and prefix):
//!
//! ```hcl
//! path "transit/keys/*"      { capabilities = ["create", "read", "update", "delete"] }
//! path "transit/encrypt/*"   { capabilities = ["update"] }
//! path "transit/decrypt/*"   { capabilities = ["update"] }
//! path "secret/data/rustfs/kms/keys/*"     { capabilities = ["create", "read", "update"] }
//! path "secret/metadata/rustfs/kms/keys/*" { capabilities = ["list", "delete"] }
//! path "secret/metadata/rustfs/kms/keys"   { capabilities = ["list"] }
//! ```
//!
//! Granting only `update` (not `create`) on `transit/encrypt/*` matters: with `create`, an
//! encrypt naming a missing Transit key would make a new one. An AppRole secret id must stay
//! valid for later logins (no use limit, or a `secret_id_file` kept current).
//!
//! Key ids here are Transit key names: A-Z, a-z, 0-9, `_`, `-` and `.`, starting and ending with
//! a letter, digit or `_`. Server-generated ids (UUIDs) always qualify; creating any other id is
//! refused as an invalid request, and looking one up finds nothing.

mod backend;
mod connection;
mod endpoints;
mod error;
mod layout;
mod records;
mod settings;
mod transit;

pub use backend::VaultBackend;
pub use settings::{
    SecretIdSource, VaultAuth, VaultSettings, VaultTls, APPROLE_MOUNT, DEFAULT_KEY_PATH_PREFIX,
    DEFAULT_KV_MOUNT, DEFAULT_MOUNT_PATH, DEFAULT_RETRY_ATTEMPTS, DEFAULT_TIMEOUT,
    MAX_RETRY_ATTEMPTS,
};
