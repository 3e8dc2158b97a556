//! Bucket records on disk: one file per bucket, written atomically, all held in memory.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use kms_backend_local::{ensure_private_dir, remove_durably, remove_leftover_temps, write_atomic};
use kms_core::KeyId;
use s3_bucket_encryption::{BucketName, BucketRecord, EncryptionConfig, SseAlgorithm};

/// Why a bucket change was refused.
#[derive(Debug)]
pub enum BucketStoreError {
    /// No such bucket.
    NotFound,
    /// The bucket exists already.
    AlreadyExists,
    /// Writing the record failed.
    Io(io::Error),
}

/// Every bucket and its default encryption.
pub struct BucketStore {
    dir: PathBuf,
    records: RwLock<BTreeMap<BucketName, BucketRecord>>,
    writer: tokio::sync::Mutex<()>,
}

impl BucketStore {
    /// Opens (creating if needed) the bucket directory and reads every record.
    pub fn open(dir: PathBuf) -> io::Result<Arc<Self>> {
        ensure_private_dir(&dir)?;
        remove_leftover_temps(&dir)?;
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                let record: BucketRecord = serde_json::from_slice(&std::fs::read(entry.path())?)
                    .map_err(|e| {
                        io::Error::other(format!("bucket record {name} is damaged: {e}"))
                    })?;
                records.insert(record.name.clone(), record);
            }
        }
        Ok(Arc::new(Self {
            dir,
            records: RwLock::new(records),
            writer: tokio::sync::Mutex::new(()),
        }))
    }

    /// Every bucket, in name order.
    pub fn list(&self) -> Vec<BucketRecord> {
        self.records
            .read()
            .expect("bucket lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// One bucket.
    pub fn get(&self, name: &BucketName) -> Option<BucketRecord> {
        self.records
            .read()
            .expect("bucket lock poisoned")
            .get(name)
            .cloned()
    }

    /// Creates a bucket. Like every change here, it runs to its end on a task of its own, even
    /// when the request that asked for it is dropped, so the file and the map never disagree.
    pub async fn create(
        self: &Arc<Self>,
        name: BucketName,
    ) -> Result<BucketRecord, BucketStoreError> {
        let this = Arc::clone(self);
        detached(async move { this.create_now(name).await }).await
    }

    async fn create_now(&self, name: BucketName) -> Result<BucketRecord, BucketStoreError> {
        let _writer = self.writer.lock().await;
        if self.get(&name).is_some() {
            return Err(BucketStoreError::AlreadyExists);
        }
        let record = BucketRecord {
            name,
            creation_date: kms_core::now(),
            encryption: None,
        };
        self.store(record.clone()).await?;
        Ok(record)
    }

    /// Deletes a bucket record (the caller checks that it holds no objects).
    pub async fn delete(self: &Arc<Self>, name: &BucketName) -> Result<(), BucketStoreError> {
        let this = Arc::clone(self);
        let name = name.clone();
        detached(async move { this.delete_now(&name).await }).await
    }

    async fn delete_now(&self, name: &BucketName) -> Result<(), BucketStoreError> {
        let _writer = self.writer.lock().await;
        if self.get(name).is_none() {
            return Err(BucketStoreError::NotFound);
        }
        let path = self.path_of(name);
        blocking(move || remove_durably(&path)).await?;
        self.records
            .write()
            .expect("bucket lock poisoned")
            .remove(name);
        Ok(())
    }

    /// Sets or removes a bucket's default encryption.
    pub async fn set_encryption(
        self: &Arc<Self>,
        name: &BucketName,
        encryption: Option<EncryptionConfig>,
    ) -> Result<(), BucketStoreError> {
        let this = Arc::clone(self);
        let name = name.clone();
        detached(async move { this.set_encryption_now(&name, encryption).await }).await
    }

    async fn set_encryption_now(
        &self,
        name: &BucketName,
        encryption: Option<EncryptionConfig>,
    ) -> Result<(), BucketStoreError> {
        let _writer = self.writer.lock().await;
        let mut record = self.get(name).ok_or(BucketStoreError::NotFound)?;
        record.encryption = encryption;
        self.store(record).await
    }

    /// The buckets whose default encryption names this key.
    pub fn buckets_using_key(&self, key_id: &KeyId) -> Vec<String> {
        let records = self.records.read().expect("bucket lock poisoned");
        records
            .values()
            .filter(|r| {
                r.encryption.as_ref().is_some_and(|e| {
                    e.algorithm == SseAlgorithm::AwsKms
                        && e.kms_master_key_id.as_ref() == Some(key_id)
                })
            })
            .map(|r| r.name.to_string())
            .collect()
    }

    fn path_of(&self, name: &BucketName) -> PathBuf {
        // Bucket names are safe file names by their rules.
        self.dir.join(format!("{name}.json"))
    }

    async fn store(&self, record: BucketRecord) -> Result<(), BucketStoreError> {
        let path = self.path_of(&record.name);
        let bytes = serde_json::to_vec_pretty(&record)
            .map_err(|e| BucketStoreError::Io(io::Error::other(e)))?;
        blocking(move || write_atomic(&path, &bytes, 0o600)).await?;
        self.records
            .write()
            .expect("bucket lock poisoned")
            .insert(record.name.clone(), record);
        Ok(())
    }
}

/// Runs a change on a task of its own and waits for it: dropping the waiting future does not
/// stop the change.
async fn detached<T: Send + 'static>(
    change: impl std::future::Future<Output = Result<T, BucketStoreError>> + Send + 'static,
) -> Result<T, BucketStoreError> {
    tokio::spawn(change)
        .await
        .map_err(|e| BucketStoreError::Io(io::Error::other(e)))?
}

/// Runs file I/O off the async workers.
async fn blocking(
    work: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> Result<(), BucketStoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BucketStoreError::Io(io::Error::other(e)))?
        .map_err(BucketStoreError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_a_reopen_and_name_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let name = BucketName::parse("photos").unwrap();
        let key = KeyId::parse("k1").unwrap();
        {
            let store = BucketStore::open(dir.path().to_owned()).unwrap();
            store.create(name.clone()).await.unwrap();
            assert!(matches!(
                store.create(name.clone()).await,
                Err(BucketStoreError::AlreadyExists)
            ));
            let config = EncryptionConfig::new("aws:kms", Some("k1"), Some(true)).unwrap();
            store.set_encryption(&name, Some(config)).await.unwrap();
        }
        let store = BucketStore::open(dir.path().to_owned()).unwrap();
        assert_eq!(store.buckets_using_key(&key), ["photos"]);
        store.delete(&name).await.unwrap();
        assert!(store.list().is_empty());
        assert!(BucketStore::open(dir.path().to_owned())
            .unwrap()
            .list()
            .is_empty());
    }
}
