use std::fs;
use std::io;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hkdf::Hkdf;
use kms_core::{Error, Result, SecretBytes};
use sha2::Sha256;

use crate::write_atomic;

const FILE_NAME: &str = "root.secret";
const NONCE_LEN: usize = 12;

/// The server's root secret: every local master key, and every secret in the saved
/// configuration, is wrapped under keys derived from it. Losing it loses every local key.
pub struct RootSecret(SecretBytes);

impl RootSecret {
    /// A root secret from text (for example `KMS_ROOT_SECRET`): at least 32 characters.
    pub fn from_text(text: &str) -> Result<Self> {
        if text.len() < 32 {
            return Err(Error::invalid(
                "the root secret must have at least 32 characters",
            ));
        }
        Ok(Self(SecretBytes::new(text.as_bytes().to_vec())))
    }

    /// Reads the root secret file of the data directory, creating it (mode 0600, 32 random bytes)
    /// on first start. Returns whether it was created.
    pub fn load_or_create(data_dir: &Path) -> io::Result<(Self, bool)> {
        let path = data_dir.join(FILE_NAME);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = STANDARD
                    .decode(text.trim())
                    .map_err(|_| io::Error::other(format!("{} is not base64", path.display())))?;
                Ok((Self(SecretBytes::new(bytes)), false))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let secret = SecretBytes::random(32);
                let text = format!("{}\n", STANDARD.encode(secret.expose()));
                write_atomic(&path, text.as_bytes(), 0o600)?;
                Ok((Self(secret), true))
            }
            Err(e) => Err(e),
        }
    }

    /// A 32-byte key for one purpose, derived with HKDF-SHA256. Different purposes give
    /// independent keys.
    pub fn derive(&self, purpose: &str) -> SecretBytes {
        let hkdf = Hkdf::<Sha256>::new(Some(b"kms-root-secret-v1"), self.0.expose());
        let mut key = vec![0u8; 32];
        // 32 bytes is far below HKDF-SHA256's output limit, so expansion cannot fail.
        let _ = hkdf.expand(purpose.as_bytes(), &mut key);
        SecretBytes::new(key)
    }

    /// Seals a small secret (a Vault token, say) for storage: `nonce || AES-256-GCM`, with the
    /// label bound as associated data so a sealed value cannot be moved to another field.
    pub fn seal(&self, label: &str, secret: &[u8]) -> Vec<u8> {
        seal_with(
            &self.derive("sealed-config-values"),
            label.as_bytes(),
            secret,
        )
    }

    /// Opens a value sealed with [`RootSecret::seal`] under the same label.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<SecretBytes> {
        open_with(
            &self.derive("sealed-config-values"),
            label.as_bytes(),
            sealed,
        )
    }
}

/// AES-256-GCM with a random nonce, returned as `nonce || ciphertext || tag`.
pub(crate) fn seal_with(key: &SecretBytes, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key.expose()).expect("keys are 32 bytes");
    let nonce_bytes = SecretBytes::random(NONCE_LEN);
    let nonce = Nonce::from_slice(nonce_bytes.expose());
    let sealed = cipher
        .encrypt(
            nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of small inputs cannot fail");
    let mut out = nonce_bytes.expose().to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// Opens `nonce || ciphertext || tag`; any mismatch is [`Error::DecryptionFailed`].
pub(crate) fn open_with(key: &SecretBytes, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(Error::DecryptionFailed);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new_from_slice(key.expose()).expect("keys are 32 bytes");
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(SecretBytes::new)
        .map_err(|_| Error::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn is_created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = RootSecret::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (second, created) = RootSecret::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.derive("x").expose(), second.derive("x").expose());
        let mode = fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn sealed_values_open_only_under_their_label() {
        let root = RootSecret::from_text(&"r".repeat(32)).unwrap();
        let sealed = root.seal("vault.token", b"s.secret-token");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            root.open("vault.token", &sealed).unwrap().expose(),
            b"s.secret-token"
        );
        assert_eq!(
            root.open("other", &sealed).unwrap_err(),
            Error::DecryptionFailed
        );
        let other_root = RootSecret::from_text(&"s".repeat(32)).unwrap();
        assert!(other_root.open("vault.token", &sealed).is_err());
    }

    #[test]
    fn short_root_secrets_are_refused() {
        assert!(RootSecret::from_text("short").is_err());
    }
}
