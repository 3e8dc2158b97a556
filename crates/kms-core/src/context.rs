use std::collections::BTreeMap;

use crate::{Error, Result};

/// The most bytes an encryption context may hold: the UTF-8 of all its keys and values.
pub const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// Non-secret key-value pairs bound to a ciphertext blob: decryption succeeds only with exactly
/// the same pairs.
///
/// Keys are non-empty strings, values strings (empty allowed). An absent context and an empty
/// one are the same. The pairs are bound as AEAD associated data in [`canonical_bytes`], an
/// unambiguous encoding: sorted by key, every string length-prefixed.
///
/// [`canonical_bytes`]: EncryptionContext::canonical_bytes
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Validates the pairs: keys non-empty, at most [`MAX_CONTEXT_BYTES`] in total.
    pub fn new(pairs: BTreeMap<String, String>) -> Result<Self> {
        if pairs.keys().any(String::is_empty) {
            return Err(Error::invalid("encryption context keys must not be empty"));
        }
        let total: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > MAX_CONTEXT_BYTES {
            return Err(Error::invalid(format!(
                "encryption context is larger than {MAX_CONTEXT_BYTES} bytes"
            )));
        }
        Ok(Self(pairs))
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical encoding: the pair count, then each key and value, in key order, each as a
    /// big-endian `u32` length followed by its UTF-8 bytes.
    ///
    /// This is part of the ciphertext format: changing it breaks every existing blob.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let size: usize = self.0.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut out = Vec::with_capacity(4 + size);
        out.extend_from_slice(&len_u32(self.0.len()).to_be_bytes());
        for (key, value) in &self.0 {
            for part in [key, value] {
                out.extend_from_slice(&len_u32(part.len()).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out
    }
}

fn len_u32(len: usize) -> u32 {
    // Contexts are bounded by MAX_CONTEXT_BYTES, far below u32::MAX.
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn encoding_is_independent_of_insertion_order() {
        assert_eq!(
            ctx(&[("b", "2"), ("a", "1")]).canonical_bytes(),
            ctx(&[("a", "1"), ("b", "2")]).canonical_bytes()
        );
    }

    #[test]
    fn encoding_is_unambiguous_where_concatenation_is_not() {
        assert_ne!(
            ctx(&[("ab", "c")]).canonical_bytes(),
            ctx(&[("a", "bc")]).canonical_bytes()
        );
        assert_ne!(
            ctx(&[("a", "")]).canonical_bytes(),
            ctx(&[]).canonical_bytes()
        );
    }

    #[test]
    fn encoding_is_stable() {
        // The format of blobs already written depends on these exact bytes.
        assert_eq!(
            ctx(&[("k", "v")]).canonical_bytes(),
            [0, 0, 0, 1, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v']
        );
        assert_eq!(ctx(&[]).canonical_bytes(), [0, 0, 0, 0]);
    }

    #[test]
    fn empty_keys_and_oversized_contexts_are_refused() {
        assert!(EncryptionContext::new([(String::new(), "v".into())].into()).is_err());
        let big = [("k".to_string(), "v".repeat(MAX_CONTEXT_BYTES))].into();
        assert!(EncryptionContext::new(big).is_err());
        let fits = [("k".to_string(), "v".repeat(MAX_CONTEXT_BYTES - 1))].into();
        assert!(EncryptionContext::new(fits).is_ok());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn different_contexts_encode_differently(
            a in proptest::collection::btree_map("[a-z]{1,4}", "[a-z]{0,4}", 0..4),
            b in proptest::collection::btree_map("[a-z]{1,4}", "[a-z]{0,4}", 0..4),
        ) {
            let (ea, eb) = (EncryptionContext::new(a.clone()).unwrap(), EncryptionContext::new(b.clone()).unwrap());
            prop_assert_eq!(a == b, ea.canonical_bytes() == eb.canonical_bytes());
        }
    }
}
