use crate::{EncryptionContext, Error, KeyId, Result};

const MAGIC: &[u8; 3] = b"KMS";

/// The ciphertext format version written today. Every version ever written stays readable.
pub const ENVELOPE_VERSION: u8 = 1;

/// A parsed ciphertext blob: which master key and version sealed it, and the backend's payload.
///
/// Layout (documented in `docs/ciphertext-format.md`):
///
/// ```text
/// "KMS" | version u8 = 1 | key id length u16 BE | key id (UTF-8) | key version u32 BE | payload
/// ```
///
/// The header (everything before the payload) followed by the canonical encryption context is
/// the associated data of the seal, so changing any header byte or the context fails
/// authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    key_id: KeyId,
    key_version: u32,
    payload: Vec<u8>,
}

impl Envelope {
    /// An envelope around a backend payload.
    pub fn new(key_id: KeyId, key_version: u32, payload: Vec<u8>) -> Self {
        Self {
            key_id,
            key_version,
            payload,
        }
    }

    /// The master key that sealed the data key.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The master key version that sealed the data key.
    pub fn key_version(&self) -> u32 {
        self.key_version
    }

    /// The backend-specific sealed bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The header bytes: everything before the payload.
    pub fn header(&self) -> Vec<u8> {
        Self::header_for(&self.key_id, self.key_version)
    }

    /// The header of an envelope for this key and version, to compute associated data before
    /// the payload exists.
    pub fn header_for(key_id: &KeyId, key_version: u32) -> Vec<u8> {
        let id = key_id.as_str().as_bytes();
        let mut out = Vec::with_capacity(3 + 1 + 2 + id.len() + 4);
        out.extend_from_slice(MAGIC);
        out.push(ENVELOPE_VERSION);
        // Key ids are at most 256 bytes, so the length always fits.
        out.extend_from_slice(&(id.len() as u16).to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&key_version.to_be_bytes());
        out
    }

    /// The associated data binding header and encryption context.
    pub fn associated_data(
        key_id: &KeyId,
        key_version: u32,
        context: &EncryptionContext,
    ) -> Vec<u8> {
        let mut aad = Self::header_for(key_id, key_version);
        aad.extend_from_slice(&context.canonical_bytes());
        aad
    }

    /// The blob's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header();
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses a blob. Anything that is not a well-formed envelope is [`Error::DecryptionFailed`],
    /// like a blob that fails authentication: a caller learns nothing from the difference.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut rest = bytes;
        let magic = take(&mut rest, 3)?;
        let version = take(&mut rest, 1)?[0];
        if magic != MAGIC || version != ENVELOPE_VERSION {
            return Err(Error::DecryptionFailed);
        }
        let id_len = u16::from_be_bytes(take(&mut rest, 2)?.try_into().map_err(|_| bad())?);
        let id = std::str::from_utf8(take(&mut rest, usize::from(id_len))?).map_err(|_| bad())?;
        let key_id = KeyId::parse(id).map_err(|_| bad())?;
        let key_version = u32::from_be_bytes(take(&mut rest, 4)?.try_into().map_err(|_| bad())?);
        if rest.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            key_id,
            key_version,
            payload: rest.to_vec(),
        })
    }
}

fn bad() -> Error {
    Error::DecryptionFailed
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if rest.len() < n {
        return Err(bad());
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let env = Envelope::new(KeyId::parse("k1").unwrap(), 7, vec![1, 2, 3]);
        let bytes = env.to_bytes();
        assert_eq!(
            bytes,
            [b'K', b'M', b'S', 1, 0, 2, b'k', b'1', 0, 0, 0, 7, 1, 2, 3]
        );
        assert_eq!(Envelope::parse(&bytes).unwrap(), env);
    }

    #[test]
    fn malformed_blobs_are_decryption_failures() {
        let good = Envelope::new(KeyId::parse("k1").unwrap(), 1, vec![9]).to_bytes();
        for n in 0..good.len() {
            assert_eq!(
                Envelope::parse(&good[..n]),
                Err(Error::DecryptionFailed),
                "prefix {n}"
            );
        }
        let mut wrong_version = good.clone();
        wrong_version[3] = 2;
        assert_eq!(
            Envelope::parse(&wrong_version),
            Err(Error::DecryptionFailed)
        );
        let mut bad_id = good.clone();
        bad_id[6] = b'/';
        assert_eq!(Envelope::parse(&bad_id), Err(Error::DecryptionFailed));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Envelope::parse(&bytes);
        }

        #[test]
        fn every_valid_envelope_round_trips(
            id in "[A-Za-z0-9._-]{1,64}",
            version in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 1..200),
        ) {
            prop_assume!(!id.contains(".."));
            let env = Envelope::new(KeyId::parse(&id).unwrap(), version, payload);
            prop_assert_eq!(Envelope::parse(&env.to_bytes()).unwrap(), env);
        }
    }
}
