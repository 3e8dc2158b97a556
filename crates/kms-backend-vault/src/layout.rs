//! Where a key lives in Vault and in which shape: the Transit key name, the KV record and the
//! Transit ciphertext format. Pure functions, so the rules are tested without a server.

use kms_core::{Error, KeyId, KeyMetadata, Result};
use serde::{Deserialize, Serialize};

/// The format of the KV record written today.
pub(crate) const RECORD_FORMAT: u32 = 1;

/// The Transit key type of every master key: AES-256-GCM with 96-bit nonces, an AEAD that
/// authenticates `associated_data`.
pub(crate) const TRANSIT_KEY_TYPE: &str = "aes256-gcm96";

/// The KV v2 record of one key.
///
/// `destroying` is set (with check-and-set) before the Transit key is deleted. A record with it
/// set refuses every change, so a cancellation racing the deletion on another server cannot
/// report success for a key whose material is about to go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub(crate) format: u32,
    pub(crate) metadata: KeyMetadata,
    #[serde(default)]
    pub(crate) destroying: bool,
}

impl KeyRecord {
    pub(crate) fn new(metadata: KeyMetadata) -> Self {
        Self {
            format: RECORD_FORMAT,
            metadata,
            destroying: false,
        }
    }

    /// Parses a record read from `path`, checking that it belongs to the key it is filed under.
    pub(crate) fn from_value(value: serde_json::Value, id: &KeyId) -> Result<Self> {
        let record: Self = serde_json::from_value(value).map_err(|_| corrupt(id))?;
        if record.format != RECORD_FORMAT || &record.metadata.key_id != id {
            return Err(corrupt(id));
        }
        Ok(record)
    }
}

fn corrupt(id: &KeyId) -> Error {
    Error::Backend {
        backend: crate::error::BACKEND,
        reason: format!("the metadata record of key '{id}' is not one this server wrote"),
    }
}

/// Whether a key id can name a Transit key. Transit accepts names of ASCII letters, digits,
/// `_`, `-` and `.` that start and end with a letter, digit or `_`; ids outside that set cannot
/// exist in this backend. Every id that passes is also safe in a URL path unescaped.
pub(crate) fn is_transit_name(id: &KeyId) -> bool {
    let name = id.as_str().as_bytes();
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    match (name.first(), name.last()) {
        (Some(first), Some(last)) => {
            word(first) && word(last) && name.iter().all(|c| word(c) || matches!(c, b'-' | b'.'))
        }
        _ => false,
    }
}

/// Refuses, as an invalid request, an id that cannot name a Transit key.
pub(crate) fn require_transit_name(id: &KeyId) -> Result<()> {
    if is_transit_name(id) {
        Ok(())
    } else {
        Err(Error::invalid(
            "on the vault backend a key id may contain only A-Z, a-z, 0-9, '_', '-' and '.', \
             and must start and end with a letter, digit or '_'",
        ))
    }
}

/// The KV path of a key's record, relative to the KV mount.
pub(crate) fn record_path(prefix: &str, id: &KeyId) -> String {
    format!("{prefix}/{}", id.as_str())
}

/// The key version named in a Transit ciphertext, `vault:v<N>:<base64>`.
pub(crate) fn ciphertext_version(ciphertext: &str) -> Option<u32> {
    let rest = ciphertext.strip_prefix("vault:v")?;
    let (version, body) = rest.split_once(':')?;
    if body.is_empty() || version.starts_with('0') || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    version.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_core::Tags;

    fn id(s: &str) -> KeyId {
        KeyId::parse(s).unwrap()
    }

    #[test]
    fn transit_names_follow_transit_rules() {
        for good in [
            "default-master-key",
            "fa5bac0e-2a2c-4f9a-a09d-2f5b8a59ed85",
            "a",
            "_x.y",
        ] {
            assert!(is_transit_name(&id(good)), "{good}");
        }
        for bad in [
            "-lead", "trail.", "a b", "ключ", "a?b", "a#b", "a%2fb", "a:b",
        ] {
            assert!(!is_transit_name(&id(bad)), "{bad} was accepted");
        }
        let err = require_transit_name(&id("-x")).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest { .. }));
    }

    #[test]
    fn records_live_under_the_prefix() {
        assert_eq!(
            record_path("rustfs/kms/keys", &id("k1")),
            "rustfs/kms/keys/k1"
        );
    }

    #[test]
    fn records_round_trip_and_must_match_their_path() {
        let meta = KeyMetadata::new(id("k1"), "d".into(), Tags::default(), kms_core::now());
        let record = KeyRecord::new(meta);
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(
            KeyRecord::from_value(value.clone(), &id("k1")).unwrap(),
            record
        );
        assert!(KeyRecord::from_value(value.clone(), &id("k2")).is_err());
        let mut old = value;
        old.as_object_mut().unwrap().remove("destroying");
        assert!(!KeyRecord::from_value(old, &id("k1")).unwrap().destroying);
        let foreign = serde_json::json!({"password": "hunter2"});
        let err = KeyRecord::from_value(foreign, &id("k1")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn ciphertext_versions_are_read_strictly() {
        assert_eq!(ciphertext_version("vault:v1:abc="), Some(1));
        assert_eq!(ciphertext_version("vault:v42:abc"), Some(42));
        for bad in [
            "",
            "vault:v1:",
            "vault:v:abc",
            "vault:v01:abc",
            "vault:vx:abc",
            "v1:abc",
        ] {
            assert_eq!(ciphertext_version(bad), None, "{bad}");
        }
        assert_eq!(ciphertext_version("vault:v99999999999:abc"), None);
    }
}
