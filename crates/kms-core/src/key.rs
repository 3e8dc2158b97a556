use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::serde_micros;
use crate::{Error, Result};

/// Descriptions are at most this many characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// A key carries at most this many tags.
pub const MAX_TAGS: usize = 50;
/// A tag key has 1 to this many characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// A tag value has at most this many characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// The allowed waiting period before a scheduled deletion, in days.
pub const PENDING_WINDOW_DAYS: std::ops::RangeInclusive<i64> = 7..=30;
/// The waiting period when none is given.
pub const DEFAULT_PENDING_WINDOW_DAYS: i64 = 7;
/// The allowed automatic rotation period, in days.
pub const ROTATION_PERIOD_DAYS: std::ops::RangeInclusive<i64> = 90..=2560;
/// The rotation period when none is given.
pub const DEFAULT_ROTATION_PERIOD_DAYS: i64 = 365;

const MAX_KEY_ID_BYTES: usize = 256;

/// The id of a master key: 1 to 256 bytes, no `/`, `\`, `..` or control characters.
///
/// Ids created by the server are UUIDs; the configured default key may have any valid id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// Validates a key id taken from a request or a file.
    pub fn parse(id: &str) -> Result<Self> {
        if id.is_empty() {
            return Err(Error::invalid("key id must not be empty"));
        }
        if id.len() > MAX_KEY_ID_BYTES {
            return Err(Error::invalid(format!(
                "key id is longer than {MAX_KEY_ID_BYTES} bytes"
            )));
        }
        if id.contains(['/', '\\']) || id.contains("..") || id.chars().any(char::is_control) {
            return Err(Error::invalid(
                "key id must not contain '/', '\\', '..' or control characters",
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// Validates the id of a configured default key: 1 to 256 bytes of `A-Z a-z 0-9 . _ -`.
    pub fn parse_default(id: &str) -> Result<Self> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !id.chars().all(allowed) {
            return Err(Error::invalid(
                "default_key_id may contain only A-Z, a-z, 0-9, '.', '_' and '-'",
            ));
        }
        Self::parse(id)
    }

    /// A fresh server-generated id (a UUID).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for KeyId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.0
    }
}

/// The lifecycle state of a master key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable for every operation.
    Enabled,
    /// Refuses data key generation and decryption until enabled again.
    Disabled,
    /// Refuses everything but cancellation until its deletion date, then is destroyed.
    PendingDeletion,
}

impl KeyState {
    /// The state's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::PendingDeletion => "PendingDeletion",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a master key may be used for. Only symmetric encryption exists today.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyUsage {
    /// Wrapping and unwrapping data keys.
    #[default]
    #[serde(rename = "ENCRYPT_DECRYPT")]
    EncryptDecrypt,
}

impl KeyUsage {
    /// Parses the wire spelling, `ENCRYPT_DECRYPT`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ENCRYPT_DECRYPT" => Ok(Self::EncryptDecrypt),
            other => Err(Error::invalid(format!(
                "unsupported key usage '{}': only ENCRYPT_DECRYPT is supported",
                other.escape_debug()
            ))),
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        "ENCRYPT_DECRYPT"
    }
}

/// The size of a generated data key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeySpec {
    /// 32 bytes.
    #[default]
    Aes256,
    /// 16 bytes.
    Aes128,
}

impl KeySpec {
    /// Parses `AES_256` or `AES_128`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "AES_256" => Ok(Self::Aes256),
            "AES_128" => Ok(Self::Aes128),
            other => Err(Error::invalid(format!(
                "unsupported key_spec '{}': use AES_256 or AES_128",
                other.escape_debug()
            ))),
        }
    }

    /// The data key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes256 => 32,
            Self::Aes128 => 16,
        }
    }
}

/// Labels on a key. Names need not be unique across keys.
///
/// Kept as a sorted boxed slice rather than a `BTreeMap`: a map with one entry still allocates a
/// whole B-tree node (544 bytes for `String` pairs), which was the largest part of a key's memory
/// when every key carries a `name` tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags(Box<[(String, String)]>);

impl Tags {
    /// Validates tags: at most 50, keys 1–128 characters, values at most 256 characters.
    pub fn new(tags: BTreeMap<String, String>) -> Result<Self> {
        if tags.len() > MAX_TAGS {
            return Err(Error::invalid(format!("a key has at most {MAX_TAGS} tags")));
        }
        for (key, value) in &tags {
            let key_chars = key.chars().count();
            if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS {
                return Err(Error::invalid(format!(
                    "tag keys have 1 to {MAX_TAG_KEY_CHARS} characters"
                )));
            }
            if value.chars().count() > MAX_TAG_VALUE_CHARS {
                return Err(Error::invalid(format!(
                    "tag values have at most {MAX_TAG_VALUE_CHARS} characters"
                )));
            }
        }
        Ok(Self(tags.into_iter().collect()))
    }

    /// The value of one tag.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
            .map(|index| self.0[index].1.as_str())
    }

    /// The tags in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(Self(map.into_iter().collect()))
    }
}

/// Validates a key description: at most 256 characters.
pub(crate) fn validate_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!(
            "description has more than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(())
}

/// Everything known about a master key except its material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMetadata {
    /// The key id.
    pub key_id: KeyId,
    /// Free text, at most 256 characters.
    pub description: String,
    /// What the key may be used for.
    pub key_usage: KeyUsage,
    /// Where the key is in its lifecycle.
    pub key_state: KeyState,
    /// When the key was created.
    #[serde(with = "serde_micros")]
    pub creation_date: DateTime<Utc>,
    /// Whether the key is rotated automatically.
    pub rotation_enabled: bool,
    /// The automatic rotation period in days.
    pub rotation_period_in_days: i64,
    /// When the current version was made (creation or last rotation).
    #[serde(with = "serde_micros")]
    pub last_rotation_date: DateTime<Utc>,
    /// When the key will be destroyed, while it is pending deletion.
    #[serde(with = "serde_micros::option")]
    pub deletion_date: Option<DateTime<Utc>>,
    /// The version new data keys are sealed under; every earlier version still decrypts.
    pub current_version: u32,
    /// Labels.
    pub tags: Tags,
}

impl KeyMetadata {
    /// Metadata of a new, enabled key at version 1.
    pub fn new(key_id: KeyId, description: String, tags: Tags, now: DateTime<Utc>) -> Self {
        Self {
            key_id,
            description,
            key_usage: KeyUsage::EncryptDecrypt,
            key_state: KeyState::Enabled,
            creation_date: now,
            rotation_enabled: false,
            rotation_period_in_days: DEFAULT_ROTATION_PERIOD_DAYS,
            last_rotation_date: now,
            deletion_date: None,
            current_version: 1,
            tags,
        }
    }

    /// Whether the key is usable: true exactly when its state is `Enabled`.
    pub fn enabled(&self) -> bool {
        self.key_state == KeyState::Enabled
    }

    /// When automatic rotation is next due, if it is on.
    pub fn next_rotation_date(&self) -> Option<DateTime<Utc>> {
        self.rotation_enabled
            .then(|| self.last_rotation_date + chrono::Duration::days(self.rotation_period_in_days))
    }

    /// Refuses the operation unless the key is enabled.
    pub fn require_enabled(&self, operation: &'static str) -> Result<()> {
        if self.enabled() {
            Ok(())
        } else {
            Err(Error::InvalidKeyState {
                key_id: self.key_id.to_string(),
                state: self.key_state,
                operation,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_refuse_path_tricks_and_control_characters() {
        for bad in [
            "",
            "a/b",
            "a\\b",
            "..",
            "a..b",
            "a\nb",
            "a\u{7f}",
            &"x".repeat(257),
        ] {
            assert!(KeyId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for good in [
            "default-master-key",
            "fa5bac0e-2a2c-4f9a-a09d-2f5b8a59ed85",
            "ключ",
            "a.b",
        ] {
            assert_eq!(KeyId::parse(good).unwrap().as_str(), good);
        }
        assert!(KeyId::parse(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn default_key_ids_are_plain_ascii() {
        assert!(KeyId::parse_default("rustfs-master_1.0").is_ok());
        assert!(KeyId::parse_default("ключ").is_err());
        assert!(KeyId::parse_default("a b").is_err());
    }

    #[test]
    fn tags_are_bounded() {
        let many: BTreeMap<_, _> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(Tags::new(many).is_err());
        assert!(Tags::new([(String::new(), "v".into())].into()).is_err());
        assert!(Tags::new([("k".repeat(129), "v".into())].into()).is_err());
        assert!(Tags::new([("k".into(), "v".repeat(257))].into()).is_err());
        assert!(Tags::new([("名".repeat(128), "値".repeat(256))].into()).is_ok());
    }

    #[test]
    fn only_enabled_keys_pass_the_state_check() {
        let mut meta = KeyMetadata::new(
            KeyId::generate(),
            String::new(),
            Tags::default(),
            crate::now(),
        );
        assert!(meta.require_enabled("decrypt").is_ok());
        meta.key_state = KeyState::Disabled;
        let err = meta.require_enabled("decrypt").unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidKeyState {
                state: KeyState::Disabled,
                ..
            }
        ));
    }
}
