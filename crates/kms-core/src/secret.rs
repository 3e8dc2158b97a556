use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes: key material, a data key, a token.
///
/// The bytes are zeroized on drop, never printed (`{:?}` shows only the length) and not
/// serializable; the one way to read them is [`SecretBytes::expose`], so a reviewer can find every
/// place a secret leaves its box with one search.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Fresh random bytes from the operating system's generator.
    pub fn random(len: usize) -> Self {
        use rand::RngCore;
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret itself. Every caller is a place where a secret leaves its box.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes the secret has.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_bytes() {
        let secret = SecretBytes::new(b"hunter2-top-secret".to_vec());
        let shown = format!("{secret:?} {secret:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("104"), "byte values leak: {shown}");
        assert!(shown.contains("18 bytes"));
    }

    #[test]
    fn random_secrets_differ() {
        assert_ne!(
            SecretBytes::random(32).expose(),
            SecretBytes::random(32).expose()
        );
        assert_eq!(SecretBytes::random(16).len(), 16);
    }
}
