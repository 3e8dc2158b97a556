//! The local backend: master keys in a directory on this machine.
//!
//! [`LocalBackend`] keeps one file per key under its key directory. Key material never touches
//! the disk in clear: every version is wrapped with AES-256-GCM under a key-encryption key derived
//! with HKDF-SHA256 from the server's [`RootSecret`]. Every write goes through
//! [`write_atomic`] (temporary file, fsync, rename, fsync of the directory), so a crash leaves
//! either the old file or the new one, never half of one.
//!
//! State rules come from `kms-core`; this crate only stores and loads. The other crates that
//! persist files (configuration, bucket records, credentials) reuse [`write_atomic`].

mod backend;
mod durable;
mod root_secret;

pub use backend::LocalBackend;
pub use durable::{ensure_private_dir, remove_durably, remove_leftover_temps, write_atomic};
pub use root_secret::RootSecret;
