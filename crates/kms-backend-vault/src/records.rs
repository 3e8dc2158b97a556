//! Key metadata records in KV version 2: read, written with check-and-set, listed, deleted.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use kms_core::{Error, KeyId, KeyMetadata, KeyState, Result};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};

use crate::connection::{Call, Connection};
use crate::error::{Failure, BACKEND};
use crate::layout::{is_transit_name, record_path, KeyRecord};

/// How often a read-modify-write of a record is tried when other writers keep winning.
const MAX_CAS_ATTEMPTS: usize = 8;
/// How many records a listing reads at once.
const LIST_CONCURRENCY: usize = 8;

/// The record folder `{kv_mount}/{key_path_prefix}`.
pub(crate) struct Records {
    conn: Arc<Connection>,
}

/// One record as read, with the KV version that check-and-set must name to replace it.
pub(crate) struct Stored {
    pub(crate) record: KeyRecord,
    pub(crate) version: u64,
}

/// Why a check-and-set write did not happen.
pub(crate) enum WriteError {
    /// Another writer replaced the record first.
    Conflict,
    Failed(Error),
}

impl Records {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self { conn }
    }

    fn kv(&self) -> &str {
        self.conn.settings().kv()
    }

    fn path(&self, id: &KeyId) -> String {
        record_path(self.conn.settings().prefix(), id)
    }

    /// Reads a key's record; `None` when there is none. Ids that cannot name a Transit key
    /// cannot exist here and are not looked up.
    pub(crate) async fn read(&self, id: &KeyId) -> Result<Option<Stored>> {
        if !is_transit_name(id) {
            return Ok(None);
        }
        let (kv, path) = (self.kv(), self.path(id));
        let path = path.as_str();
        let result = self
            .conn
            .run(Call::Read, |client| async move {
                let endpoint = ReadSecretRequest::builder()
                    .mount(kv)
                    .path(path)
                    .build()
                    .expect("mount and path are set");
                vaultrs::api::exec_with_result(&*client, endpoint).await
            })
            .await;
        match result {
            Ok(secret) => Ok(Some(Stored {
                record: KeyRecord::from_value(secret.data, id)?,
                version: secret.metadata.version,
            })),
            Err(f) if f.is_not_found() => Ok(None),
            Err(f) => Err(f.into_error("reading key metadata")),
        }
    }

    /// Reads a key's record; a missing one is [`Error::KeyNotFound`].
    pub(crate) async fn read_existing(&self, id: &KeyId) -> Result<Stored> {
        self.read(id).await?.ok_or_else(|| Error::key_not_found(id))
    }

    /// Writes a record if the stored one is still at `version` (0: if there is none).
    pub(crate) async fn write(&self, record: &KeyRecord, version: u64) -> Result<(), WriteError> {
        let cas = u32::try_from(version).map_err(|_| {
            WriteError::Failed(backend_error("the record version is too large".into()))
        })?;
        let (kv, path) = (self.kv(), self.path(&record.metadata.key_id));
        let path = path.as_str();
        let result = self
            .conn
            .run(Call::Once, |client| async move {
                let options = SetSecretRequestOptions { cas };
                vaultrs::kv2::set_with_options(&*client, kv, path, record, options).await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(f) if f.is_cas_conflict() || f.is_uncommitted() => Err(WriteError::Conflict),
            Err(f) => Err(WriteError::Failed(f.into_error("writing key metadata"))),
        }
    }

    /// Reads, changes and writes a record until the write wins over other writers. A record
    /// being destroyed refuses every change.
    pub(crate) async fn modify(
        &self,
        id: &KeyId,
        change: impl Fn(&mut KeyRecord) -> Result<()>,
    ) -> Result<KeyMetadata> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Stored {
                mut record,
                version,
            } = self.read_existing(id).await?;
            if record.destroying {
                return Err(being_destroyed(&record.metadata));
            }
            change(&mut record)?;
            match self.write(&record, version).await {
                Ok(()) => return Ok(record.metadata),
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Failed(e)) => return Err(e),
            }
        }
        Err(too_contended(id))
    }

    /// Marks the record of a key whose deletion is due as being destroyed, with check-and-set,
    /// and returns whether it is (also when an earlier, interrupted destruction marked it).
    /// From then on every change of the record is refused.
    pub(crate) async fn claim_for_destruction(
        &self,
        id: &KeyId,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Stored {
                mut record,
                version,
            } = self.read_existing(id).await?;
            let meta = &record.metadata;
            let due = meta.key_state == KeyState::PendingDeletion
                && meta.deletion_date.is_some_and(|date| date <= now);
            if !due || record.destroying {
                return Ok(due);
            }
            record.destroying = true;
            match self.write(&record, version).await {
                Ok(()) => return Ok(true),
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Failed(e)) => return Err(e),
            }
        }
        Err(too_contended(id))
    }

    /// Deletes a record with all its versions. A record already gone is fine.
    pub(crate) async fn delete(&self, id: &KeyId) -> Result<()> {
        let (kv, path) = (self.kv(), self.path(id));
        let path = path.as_str();
        let result = self
            .conn
            .run(Call::Once, |client| async move {
                vaultrs::kv2::delete_metadata(&*client, kv, path).await
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(f) if f.is_not_found() => Ok(()),
            Err(f) => Err(f.into_error("deleting key metadata")),
        }
    }

    /// The names in the record folder; none when the folder does not exist yet.
    pub(crate) async fn list_names(&self) -> Result<Vec<String>, Failure> {
        let (kv, prefix) = (self.kv(), self.conn.settings().prefix());
        let result = self
            .conn
            .run(Call::Read, |client| async move {
                vaultrs::kv2::list(&*client, kv, prefix).await
            })
            .await;
        match result {
            Ok(names) => Ok(names),
            Err(f) if f.is_not_found() => Ok(Vec::new()),
            Err(f) => Err(f),
        }
    }

    /// Every key's metadata, in no particular order.
    pub(crate) async fn all_metadata(&self) -> Result<Vec<KeyMetadata>> {
        let names = self
            .list_names()
            .await
            .map_err(|f| f.into_error("listing key metadata"))?;
        // Sub-folders end in '/'; names that are no key id of this backend are not records of
        // ours.
        let ids: Vec<KeyId> = names
            .into_iter()
            .filter_map(|name| KeyId::try_from(name).ok())
            .filter(is_transit_name)
            .collect();
        futures_util::stream::iter(ids)
            .map(|id| async move { self.read(&id).await })
            .buffer_unordered(LIST_CONCURRENCY)
            // A key destroyed between the listing and its read is simply not listed.
            .try_filter_map(|stored| async move { Ok(stored.map(|s| s.record.metadata)) })
            .try_collect()
            .await
    }
}

fn too_contended(id: &KeyId) -> Error {
    backend_error(format!(
        "key '{id}' kept changing under concurrent writers; try again"
    ))
}

pub(crate) fn backend_error(reason: String) -> Error {
    Error::Backend {
        backend: BACKEND,
        reason,
    }
}

pub(crate) fn being_destroyed(meta: &KeyMetadata) -> Error {
    Error::InvalidKeyState {
        key_id: meta.key_id.to_string(),
        state: meta.key_state,
        operation: "be changed while its material is being destroyed",
    }
}
