use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::key::validate_description;
use crate::{
    EncryptionContext, Envelope, Error, KeyId, KeyMetadata, KeyState, Result, SecretBytes, Tags,
    PENDING_WINDOW_DAYS, ROTATION_PERIOD_DAYS,
};

/// Which kind of backend holds the master keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Files in a directory, wrapped under the server's root secret.
    Local,
    /// HashiCorp Vault or OpenBao: Transit for key material, KV v2 for metadata.
    Vault,
}

impl BackendKind {
    /// The name used in configuration and status answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Vault => "vault",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request to create a master key.
#[derive(Clone, Debug, Default)]
pub struct CreateKeyRequest {
    /// The id to create; a fresh UUID when `None`.
    pub key_id: Option<KeyId>,
    /// Free text, at most 256 characters.
    pub description: String,
    /// Labels.
    pub tags: Tags,
}

impl CreateKeyRequest {
    /// Validates the request and builds the metadata of the new key.
    pub fn into_metadata(self, now: DateTime<Utc>) -> Result<KeyMetadata> {
        validate_description(&self.description)?;
        let key_id = self.key_id.unwrap_or_else(KeyId::generate);
        Ok(KeyMetadata::new(key_id, self.description, self.tags, now))
    }
}

/// One page of a key listing request.
#[derive(Clone, Debug)]
pub struct ListKeysRequest {
    /// At most this many keys (1 to 1000).
    pub limit: usize,
    /// Where the previous page ended.
    pub marker: Option<ListMarker>,
}

/// An opaque position in the key listing order (creation date, then key id).
///
/// Because it names a position rather than a key, a listing stays correct when the key it stopped
/// at is destroyed meanwhile: every key that exists during the whole listing appears exactly once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListMarker {
    /// Creation date of the last key returned.
    pub creation_date: DateTime<Utc>,
    /// Id of the last key returned.
    pub key_id: KeyId,
}

impl ListMarker {
    /// The marker placed after this key.
    pub fn after(metadata: &KeyMetadata) -> Self {
        Self {
            creation_date: metadata.creation_date,
            key_id: metadata.key_id.clone(),
        }
    }

    /// Whether this key sorts after the marker.
    pub fn precedes(&self, metadata: &KeyMetadata) -> bool {
        (&self.creation_date, &self.key_id) < (&metadata.creation_date, &metadata.key_id)
    }

    /// The marker as text for clients.
    pub fn encode(&self) -> String {
        let text = format!("{}:{}", self.creation_date.timestamp_micros(), self.key_id);
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Parses a marker a client sent back.
    pub fn decode(marker: &str) -> Result<Self> {
        let bad = || Error::invalid("marker is not one this server returned");
        let bytes = URL_SAFE_NO_PAD.decode(marker).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (micros, id) = text.split_once(':').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        Ok(Self {
            creation_date: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
            key_id: KeyId::parse(id).map_err(|_| bad())?,
        })
    }
}

/// A page of keys in listing order.
#[derive(Clone, Debug, Default)]
pub struct KeyPage {
    /// The keys on this page.
    pub keys: Vec<KeyMetadata>,
    /// Where the next page starts; `None` exactly when this is the last page.
    pub next_marker: Option<ListMarker>,
}

impl KeyPage {
    /// Builds a page from keys already sorted in listing order and filtered past the marker,
    /// taking at most `limit` of them.
    pub fn from_sorted(keys: impl Iterator<Item = KeyMetadata>, limit: usize) -> Self {
        let mut keys = keys.peekable();
        let page: Vec<KeyMetadata> = keys.by_ref().take(limit).collect();
        let next_marker = match (keys.peek(), page.last()) {
            (Some(_), Some(last)) => Some(ListMarker::after(last)),
            _ => None,
        };
        Self {
            keys: page,
            next_marker,
        }
    }
}

/// A change of a key's state or settings. Changes never touch key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// Make a disabled key usable again.
    Enable,
    /// Refuse data key generation and decryption until enabled.
    Disable,
    /// Destroy the key at this date unless cancelled before.
    ScheduleDeletion {
        /// When the material will be destroyed.
        deletion_date: DateTime<Utc>,
    },
    /// Cancel a scheduled deletion; the key becomes `Enabled`.
    CancelDeletion,
    /// Turn automatic rotation on or off.
    SetRotation {
        /// Whether to rotate automatically.
        enabled: bool,
        /// The period in days (90 to 2560).
        period_in_days: i64,
    },
}

impl KeyChange {
    /// A deletion `days` days after `now`, the number of days validated.
    pub fn schedule_deletion(now: DateTime<Utc>, days: i64) -> Result<Self> {
        if !PENDING_WINDOW_DAYS.contains(&days) {
            return Err(Error::invalid(format!(
                "pending_window_in_days must be between {} and {}",
                PENDING_WINDOW_DAYS.start(),
                PENDING_WINDOW_DAYS.end()
            )));
        }
        Ok(Self::ScheduleDeletion {
            deletion_date: now + chrono::Duration::days(days),
        })
    }

    /// A rotation setting, the period validated.
    pub fn set_rotation(enabled: bool, period_in_days: i64) -> Result<Self> {
        if !ROTATION_PERIOD_DAYS.contains(&period_in_days) {
            return Err(Error::invalid(format!(
                "rotation_period_in_days must be between {} and {}",
                ROTATION_PERIOD_DAYS.start(),
                ROTATION_PERIOD_DAYS.end()
            )));
        }
        Ok(Self::SetRotation {
            enabled,
            period_in_days,
        })
    }

    /// Applies the change to a key's metadata, or refuses it for the key's state. Every backend
    /// calls this, so the state rules exist once.
    pub fn apply(&self, meta: &mut KeyMetadata) -> Result<()> {
        let refuse = |operation| {
            Err(Error::InvalidKeyState {
                key_id: meta.key_id.to_string(),
                state: meta.key_state,
                operation,
            })
        };
        match (self, meta.key_state) {
            (Self::Enable, KeyState::PendingDeletion) => return refuse("be enabled"),
            (Self::Disable, KeyState::PendingDeletion) => return refuse("be disabled"),
            (Self::ScheduleDeletion { .. }, KeyState::PendingDeletion) => {
                return refuse("be scheduled for deletion")
            }
            (Self::CancelDeletion, state) if state != KeyState::PendingDeletion => {
                return refuse("have its deletion cancelled")
            }
            (Self::SetRotation { .. }, state) if state != KeyState::Enabled => {
                return refuse("change its rotation")
            }
            _ => {}
        }
        match self {
            Self::Enable | Self::CancelDeletion => {
                meta.key_state = KeyState::Enabled;
                meta.deletion_date = None;
            }
            Self::Disable => meta.key_state = KeyState::Disabled,
            Self::ScheduleDeletion { deletion_date } => {
                meta.key_state = KeyState::PendingDeletion;
                meta.deletion_date = Some(*deletion_date);
            }
            Self::SetRotation {
                enabled,
                period_in_days,
            } => {
                meta.rotation_enabled = *enabled;
                meta.rotation_period_in_days = *period_in_days;
            }
        }
        Ok(())
    }
}

/// Hit and miss counters of a cache in front of a backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hit_count: u64,
    /// Lookups that went to the backend.
    pub miss_count: u64,
}

/// A master key ready for use: its metadata and a handle that seals and unseals data keys.
#[derive(Clone)]
pub struct LoadedKey {
    /// The key's metadata when it was loaded.
    pub metadata: KeyMetadata,
    /// Seals and unseals under the key's versions.
    pub master_key: Arc<dyn MasterKey>,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// The cryptographic handle of one master key. For the local backend it holds unwrapped material
/// (zeroized on drop); for Vault it names a Transit key.
#[async_trait]
pub trait MasterKey: Send + Sync {
    /// Seals a data key under the current version, binding the encryption context.
    async fn seal(&self, data_key: &SecretBytes, context: &EncryptionContext) -> Result<Envelope>;

    /// Unseals a data key sealed by any version of this key with exactly this context.
    async fn unseal(&self, envelope: &Envelope, context: &EncryptionContext)
        -> Result<SecretBytes>;
}

/// Where master keys live. Every backend keeps the same behaviour, checked by the conformance
/// suite in [`crate::testing`].
///
/// Backends store and load; the rules about which state allows which operation live in
/// [`KeyChange::apply`] and [`crate::ops`], so they are the same everywhere.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Which kind of backend this is.
    fn kind(&self) -> BackendKind;

    /// Creates a key with fresh material. An existing id is [`Error::KeyAlreadyExists`].
    async fn create_key(&self, request: CreateKeyRequest) -> Result<KeyMetadata>;

    /// The metadata of a key.
    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyMetadata>;

    /// The metadata and cryptographic handle of a key.
    async fn load_key(&self, key_id: &KeyId) -> Result<LoadedKey>;

    /// A page of keys ordered by creation date, then id; keys pending deletion included.
    async fn list_keys(&self, request: &ListKeysRequest) -> Result<KeyPage>;

    /// Applies a state or settings change with [`KeyChange::apply`] and stores it.
    async fn update_key(&self, key_id: &KeyId, change: KeyChange) -> Result<KeyMetadata>;

    /// Adds a new current version; every earlier version keeps decrypting.
    async fn rotate_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<KeyMetadata>;

    /// Destroys a key pending deletion whose deletion date has passed. Returns whether it was
    /// destroyed; a key in any other situation is left alone.
    async fn destroy_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<bool>;

    /// Succeeds when the backend answers.
    async fn health_check(&self) -> Result<()>;

    /// The counters of a cache in front of the backend, if there is one.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }

    /// Empties the cache in front of the backend, if there is one.
    async fn clear_cache(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> KeyMetadata {
        KeyMetadata::new(
            KeyId::generate(),
            String::new(),
            Tags::default(),
            crate::now(),
        )
    }

    #[test]
    fn schedule_and_cancel_follow_the_state_rules() {
        let mut m = meta();
        let schedule = KeyChange::schedule_deletion(crate::now(), 7).unwrap();
        schedule.apply(&mut m).unwrap();
        assert_eq!(m.key_state, KeyState::PendingDeletion);
        assert!(m.deletion_date.is_some());
        assert!(
            schedule.apply(&mut m).is_err(),
            "scheduling twice must be refused"
        );
        assert!(KeyChange::Enable.apply(&mut m).is_err());
        KeyChange::CancelDeletion.apply(&mut m).unwrap();
        assert_eq!((m.key_state, m.deletion_date), (KeyState::Enabled, None));
        assert!(KeyChange::CancelDeletion.apply(&mut m).is_err());
    }

    #[test]
    fn windows_and_periods_are_bounded() {
        let now = crate::now();
        assert!(KeyChange::schedule_deletion(now, 6).is_err());
        assert!(KeyChange::schedule_deletion(now, 31).is_err());
        assert!(KeyChange::schedule_deletion(now, 30).is_ok());
        assert!(KeyChange::set_rotation(true, 89).is_err());
        assert!(KeyChange::set_rotation(true, 2561).is_err());
        assert!(KeyChange::set_rotation(true, 90).is_ok());
    }

    #[test]
    fn markers_round_trip_and_refuse_garbage() {
        let m = meta();
        let marker = ListMarker::after(&m);
        assert_eq!(ListMarker::decode(&marker.encode()).unwrap(), marker);
        assert!(!marker.precedes(&m));
        for bad in ["", "!!", "bm9jb2xvbg", "MTIzOg"] {
            assert!(ListMarker::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_have_a_marker_exactly_when_more_follow() {
        let keys: Vec<_> = (0..3).map(|_| meta()).collect();
        let full = KeyPage::from_sorted(keys.clone().into_iter(), 3);
        assert_eq!((full.keys.len(), full.next_marker), (3, None));
        let part = KeyPage::from_sorted(keys.clone().into_iter(), 2);
        assert_eq!(part.next_marker, Some(ListMarker::after(&keys[1])));
    }
}
