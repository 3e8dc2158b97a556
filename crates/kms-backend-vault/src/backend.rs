use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kms_core::{
    Backend, BackendKind, CreateKeyRequest, Error, KeyChange, KeyId, KeyMetadata, KeyPage,
    ListKeysRequest, LoadedKey, Result,
};
use tokio::sync::Mutex;

use crate::connection::{Call, Connection};
use crate::endpoints::{MountInfo, ReadHealth, ReadMountInfo};
use crate::error::{Failure, BACKEND};
use crate::layout::{require_transit_name, KeyRecord};
use crate::records::{being_destroyed, Records, WriteError};
use crate::transit::{adopt, Transit};
use crate::VaultSettings;

/// Master keys in Vault or OpenBao: material in Transit, metadata in KV version 2.
///
/// Each master key is the Transit key named by its key id, of type `aes256-gcm96`; its
/// [`KeyMetadata`] is a record at `{kv_mount}/{key_path_prefix}/{key_id}`, written with
/// check-and-set so that two writers never overwrite each other. Data keys are sealed with
/// Transit `encrypt` under the current version, the envelope header and encryption context
/// passed as `associated_data`.
pub struct VaultBackend {
    conn: Arc<Connection>,
    records: Records,
    transit: Transit,
    /// Serialises this server's writers, so they do not make each other retry; check-and-set
    /// protects against writers elsewhere.
    writer: Mutex<()>,
}

impl std::fmt::Debug for VaultBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.conn.settings();
        f.debug_struct("VaultBackend")
            .field("address", &s.address)
            .field("auth", &s.auth.method_name())
            .field("mount_path", &s.mount_path)
            .field("kv_mount", &s.kv_mount)
            .field("key_path_prefix", &s.key_path_prefix)
            .finish_non_exhaustive()
    }
}

impl VaultBackend {
    /// Logs in and probes the Transit and KV mounts, so that a bad configuration fails here,
    /// before anything is changed.
    ///
    /// Refusals that the operator must fix (credentials, missing or wrong mounts, missing
    /// permissions) are [`Error::InvalidRequest`]; an unreachable or sealed server is
    /// [`Error::BackendUnavailable`].
    pub async fn connect(settings: VaultSettings) -> Result<Self> {
        let conn = Arc::new(Connection::open(settings).await?);
        let backend = Self {
            records: Records::new(conn.clone()),
            transit: Transit::new(conn.clone()),
            conn,
            writer: Mutex::new(()),
        };
        backend.probe().await?;
        let s = backend.conn.settings();
        tracing::info!(
            address = %s.address,
            auth = s.auth.method_name(),
            mount_path = %s.mount_path,
            kv_mount = %s.kv_mount,
            "connected to vault"
        );
        Ok(backend)
    }

    fn settings(&self) -> &VaultSettings {
        self.conn.settings()
    }

    async fn probe(&self) -> Result<()> {
        let transit = self.settings().transit_mount().to_owned();
        let info = self.mount_info("mount_path", &transit).await?;
        if info.kind != "transit" {
            return Err(Error::invalid(format!(
                "mount_path '{transit}' is a {} mount, not transit",
                info.kind
            )));
        }
        let kv = self.settings().kv().to_owned();
        let info = self.mount_info("kv_mount", &kv).await?;
        if !info.is_kv_v2() {
            return Err(Error::invalid(format!(
                "kv_mount '{kv}' is not a KV version 2 mount"
            )));
        }
        self.records
            .list_names()
            .await
            .map_err(|e| refusal_is_invalid(e, "listing the key records"))?;
        Ok(())
    }

    async fn mount_info(&self, field: &str, mount: &str) -> Result<MountInfo> {
        let result = self
            .conn
            .run(Call::Read, |client| async move {
                let endpoint = ReadMountInfo {
                    path: mount.to_owned(),
                };
                vaultrs::api::exec_with_result(&*client, endpoint).await
            })
            .await;
        match result {
            Ok(info) => Ok(info),
            Err(f) if f.is_forbidden() => Err(Error::invalid(format!(
                "vault refused the token for {field} '{mount}': {f}"
            ))),
            Err(
                f @ Failure::Status {
                    code: 400 | 404, ..
                },
            ) => Err(Error::invalid(format!(
                "{field} '{mount}' is not mounted on this vault: {f}"
            ))),
            Err(f) => Err(f.into_error(&format!("probing {field} '{mount}'"))),
        }
    }
}

#[async_trait]
impl Backend for VaultBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Vault
    }

    /// Creates the Transit key and its record. A Transit key of that name that has no record
    /// yet is adopted rather than refused: the contract asks that a default key made in Vault
    /// beforehand be used, and [`kms_core::ops::ensure_key`] reaches it through here. Adoption
    /// happens only on an explicit create of that id, never on a describe or a listing, so
    /// Transit keys of other applications on the same mount are never picked up silently.
    async fn create_key(&self, request: CreateKeyRequest) -> Result<KeyMetadata> {
        let metadata = request.into_metadata(kms_core::now())?;
        let id = metadata.key_id.clone();
        require_transit_name(&id)?;
        let _writer = self.writer.lock().await;
        let exists = || Error::KeyAlreadyExists {
            key_id: id.to_string(),
        };
        if self.records.read(&id).await?.is_some() {
            return Err(exists());
        }
        let metadata = match self.transit.read(&id).await? {
            Some(key) => {
                let adopted = adopt(metadata, &key)?;
                let version = adopted.current_version;
                tracing::info!(key_id = %id, version, "adopting an existing transit key");
                adopted
            }
            None => {
                self.transit.create(&id).await?;
                metadata
            }
        };
        match self
            .records
            .write(&KeyRecord::new(metadata.clone()), 0)
            .await
        {
            Ok(()) => Ok(metadata),
            // Another server created the same id meanwhile; the Transit key is shared.
            Err(WriteError::Conflict) => Err(exists()),
            Err(WriteError::Failed(e)) => Err(e),
        }
    }

    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyMetadata> {
        Ok(self.records.read_existing(key_id).await?.record.metadata)
    }

    async fn load_key(&self, key_id: &KeyId) -> Result<LoadedKey> {
        let metadata = self.describe_key(key_id).await?;
        let master_key = self
            .transit
            .master_key(key_id.clone(), metadata.current_version);
        Ok(LoadedKey {
            metadata,
            master_key,
        })
    }

    // FIXME: every page lists the whole record folder and reads every record (eight at a
    // time), because KV v2 can list names but neither sort by creation date nor return
    // metadata with the listing. Fine for hundreds of keys; thousands need an index record
    // kept in creation order (or a cache of records) so a page costs a few reads.
    async fn list_keys(&self, request: &ListKeysRequest) -> Result<KeyPage> {
        let mut keys = self.records.all_metadata().await?;
        if let Some(marker) = &request.marker {
            keys.retain(|m| marker.precedes(m));
        }
        keys.sort_by(|a, b| (a.creation_date, &a.key_id).cmp(&(b.creation_date, &b.key_id)));
        Ok(KeyPage::from_sorted(keys.into_iter(), request.limit))
    }

    async fn update_key(&self, key_id: &KeyId, change: KeyChange) -> Result<KeyMetadata> {
        let _writer = self.writer.lock().await;
        self.records
            .modify(key_id, |record| change.apply(&mut record.metadata))
            .await
    }

    async fn rotate_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<KeyMetadata> {
        let _writer = self.writer.lock().await;
        let stored = self.records.read_existing(key_id).await?;
        if stored.record.destroying {
            return Err(being_destroyed(&stored.record.metadata));
        }
        stored.record.metadata.require_enabled("be rotated")?;

        // FIXME: OpenBao (seen in 2.7.2) may answer 500 "transaction commit failed" to one of
        // two rotations of the same key sent at once, although that rotation took effect in its
        // memory. `writer` serialises the rotations of this server; two servers sharing one
        // Vault could still collide, which is one reason this release supports one server per
        // backend. A failed rotation is reported and never retried.
        let latest = self.transit.rotate(key_id).await?;

        // Transit has rotated; the record now only has to learn the new version, whatever else
        // other writers change meanwhile.
        self.records
            .modify(key_id, |record| {
                let meta = &mut record.metadata;
                if meta.current_version < latest {
                    meta.current_version = latest;
                    meta.last_rotation_date = now;
                }
                Ok(())
            })
            .await
    }

    async fn destroy_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<bool> {
        let _writer = self.writer.lock().await;
        // First claim the key, so that no change made elsewhere after the check of the
        // deletion date can succeed; then delete the material, then the record.
        if !self.records.claim_for_destruction(key_id, now).await? {
            return Ok(false);
        }
        self.transit.delete(key_id).await?;
        self.records.delete(key_id).await?;
        tracing::info!(key_id = %key_id, "destroyed a master key in vault");
        Ok(true)
    }

    /// Vault answers `sys/health` unsealed and initialised (a standby counts as healthy: it
    /// forwards requests), and the token may still use the Transit mount.
    async fn health_check(&self) -> Result<()> {
        let health = self
            .conn
            .run(Call::Once, |client| async move {
                vaultrs::api::exec_with_no_result(&*client, ReadHealth).await
            })
            .await
            .map_err(|f| f.into_error("checking vault's health"))?;
        if health.sealed || !health.initialized {
            return Err(Error::BackendUnavailable {
                backend: BACKEND,
                reason: "vault is sealed or not initialised".into(),
            });
        }
        let transit = self.settings().transit_mount().to_owned();
        self.mount_info("mount_path", &transit).await.map(|_| ())
    }
}

/// At connect, a refusal is a configuration problem for the operator to fix.
fn refusal_is_invalid(failure: Failure, what: &str) -> Error {
    if failure.is_forbidden() {
        Error::invalid(format!("vault refused {what}: {failure}"))
    } else {
        failure.into_error(what)
    }
}
