use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kms_core::{
    Backend, BackendKind, CacheStats, CreateKeyRequest, Error, KeyChange, KeyId, KeyMetadata,
    KeyPage, ListKeysRequest, LoadedKey, Result,
};
use moka::future::Cache;
use tokio::sync::RwLock;

/// How long and how many keys the cache keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long a loaded key stays usable without asking the backend again.
    pub ttl: Duration,
    /// At most this many keys are kept; the least used go first.
    pub max_keys: u64,
}

/// A backend with a cache of loaded keys in front of it.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    keys: Cache<KeyId, LoadedKey>,
    /// Lookups hold it shared from before they look until after the cache is filled; changes
    /// hold it exclusively while they change the backend and invalidate. So a lookup either
    /// finishes before a change starts, or starts after it is complete: never stale.
    changes: RwLock<()>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CachedBackend {
    /// Puts a cache in front of a backend.
    pub fn new(inner: Arc<dyn Backend>, settings: CacheSettings) -> Self {
        let keys = Cache::builder()
            .time_to_live(settings.ttl)
            .max_capacity(settings.max_keys)
            .build();
        Self {
            inner,
            keys,
            changes: RwLock::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    async fn change<T>(
        &self,
        key_id: &KeyId,
        change: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let _exclusive = self.changes.write().await;
        let result = change.await;
        // Invalidate even when the change failed: it may have half-happened in a remote backend.
        self.keys.invalidate(key_id).await;
        result
    }
}

#[async_trait]
impl Backend for CachedBackend {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    async fn create_key(&self, request: CreateKeyRequest) -> Result<KeyMetadata> {
        self.inner.create_key(request).await
    }

    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyMetadata> {
        Ok(self.load_key(key_id).await?.metadata)
    }

    async fn load_key(&self, key_id: &KeyId) -> Result<LoadedKey> {
        let _shared = self.changes.read().await;
        let went_to_backend = AtomicBool::new(false);
        let loaded = self
            .keys
            .try_get_with_by_ref(key_id, async {
                went_to_backend.store(true, Ordering::Relaxed);
                self.inner.load_key(key_id).await
            })
            .await
            .map_err(|e: Arc<Error>| Error::clone(&e));
        let counter = if went_to_backend.load(Ordering::Relaxed) {
            &self.misses
        } else {
            &self.hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
        loaded
    }

    async fn list_keys(&self, request: &ListKeysRequest) -> Result<KeyPage> {
        self.inner.list_keys(request).await
    }

    async fn update_key(&self, key_id: &KeyId, change: KeyChange) -> Result<KeyMetadata> {
        self.change(key_id, self.inner.update_key(key_id, change))
            .await
    }

    async fn rotate_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<KeyMetadata> {
        self.change(key_id, self.inner.rotate_key(key_id, now))
            .await
    }

    async fn destroy_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<bool> {
        self.change(key_id, self.inner.destroy_key(key_id, now))
            .await
    }

    async fn health_check(&self) -> Result<()> {
        self.inner.health_check().await
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        Some(CacheStats {
            hit_count: self.hits.load(Ordering::Relaxed),
            miss_count: self.misses.load(Ordering::Relaxed),
        })
    }

    async fn clear_cache(&self) {
        let _exclusive = self.changes.write().await;
        self.keys.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use kms_backend_local::{LocalBackend, RootSecret};
    use kms_core::ops::{decrypt, generate_data_key};
    use kms_core::testing::CountingBackend;
    use kms_core::{EncryptionContext, KeySpec, KeyState};

    use super::*;

    const LONG: CacheSettings = CacheSettings {
        ttl: Duration::from_secs(3600),
        max_keys: 100,
    };

    async fn setup(
        settings: CacheSettings,
    ) -> (
        tempfile::TempDir,
        Arc<CountingBackend<LocalBackend>>,
        CachedBackend,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = RootSecret::from_text("cache-test-root-secret-with-32-chars").unwrap();
        let local = LocalBackend::open(dir.path(), &root).await.unwrap();
        let counting = Arc::new(CountingBackend::new(local));
        let cached = CachedBackend::new(counting.clone(), settings);
        (dir, counting, cached)
    }

    fn stats(cache: &CachedBackend) -> (u64, u64) {
        let s = cache.cache_stats().unwrap();
        (s.hit_count, s.miss_count)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn passes_the_conformance_suite() {
        let (_dir, _counting, cached) = setup(LONG).await;
        kms_core::testing::run_conformance(&cached).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn repeated_data_keys_load_the_key_once() {
        let (_dir, counting, cached) = setup(LONG).await;
        let key = cached
            .create_key(CreateKeyRequest::default())
            .await
            .unwrap();
        let ctx = EncryptionContext::default();
        let mut blobs = Vec::new();
        for _ in 0..10 {
            let dk = generate_data_key(&cached, &key.key_id, KeySpec::Aes256, &ctx)
                .await
                .unwrap();
            blobs.push(dk.plaintext.expose().to_vec());
        }
        blobs.sort();
        blobs.dedup();
        assert_eq!(blobs.len(), 10, "every data key must be fresh");
        assert_eq!(counting.loads(), 1);
        assert_eq!(stats(&cached), (9, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_make_one_backend_call() {
        let (_dir, counting, cached) = setup(LONG).await;
        let cached = Arc::new(cached);
        let key = cached
            .create_key(CreateKeyRequest::default())
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (cached, barrier, id) = (cached.clone(), barrier.clone(), key.key_id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    cached.describe_key(&id).await.unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().key_id, key.key_id);
        }
        assert_eq!(counting.loads(), 1);
        assert_eq!(stats(&cached), (31, 1));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_change_is_visible_to_the_next_request_despite_a_long_ttl() {
        let (_dir, _counting, cached) = setup(LONG).await;
        let key = cached
            .create_key(CreateKeyRequest::default())
            .await
            .unwrap();
        let id = &key.key_id;
        let ctx = EncryptionContext::default();
        let blob = generate_data_key(&cached, id, KeySpec::Aes256, &ctx)
            .await
            .unwrap();

        cached.update_key(id, KeyChange::Disable).await.unwrap();
        assert_eq!(
            cached.describe_key(id).await.unwrap().key_state,
            KeyState::Disabled
        );
        assert!(generate_data_key(&cached, id, KeySpec::Aes256, &ctx)
            .await
            .is_err());
        cached.update_key(id, KeyChange::Enable).await.unwrap();
        assert!(decrypt(&cached, &blob.ciphertext_blob, &ctx).await.is_ok());

        let schedule = KeyChange::schedule_deletion(kms_core::now(), 7).unwrap();
        cached.update_key(id, schedule).await.unwrap();
        let refused = generate_data_key(&cached, id, KeySpec::Aes256, &ctx).await;
        assert!(matches!(refused, Err(Error::InvalidKeyState { .. })));
        cached
            .update_key(id, KeyChange::CancelDeletion)
            .await
            .unwrap();

        cached.rotate_key(id, kms_core::now()).await.unwrap();
        let after = generate_data_key(&cached, id, KeySpec::Aes256, &ctx)
            .await
            .unwrap();
        let envelope = kms_core::Envelope::parse(&after.ciphertext_blob).unwrap();
        assert_eq!(envelope.key_version(), 2);

        let setting = KeyChange::set_rotation(true, 100).unwrap();
        cached.update_key(id, setting).await.unwrap();
        assert!(cached.describe_key(id).await.unwrap().rotation_enabled);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn entries_expire_after_the_ttl() {
        let short = CacheSettings {
            ttl: Duration::from_millis(100),
            max_keys: 100,
        };
        let (_dir, counting, cached) = setup(short).await;
        let key = cached
            .create_key(CreateKeyRequest::default())
            .await
            .unwrap();
        cached.describe_key(&key.key_id).await.unwrap();
        cached.describe_key(&key.key_id).await.unwrap();
        assert_eq!(counting.loads(), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        cached.describe_key(&key.key_id).await.unwrap();
        assert_eq!(counting.loads(), 2);
        assert_eq!(stats(&cached), (1, 2));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn clearing_empties_the_cache() {
        let (_dir, counting, cached) = setup(LONG).await;
        let key = cached
            .create_key(CreateKeyRequest::default())
            .await
            .unwrap();
        cached.describe_key(&key.key_id).await.unwrap();
        cached.clear_cache().await;
        cached.describe_key(&key.key_id).await.unwrap();
        assert_eq!(counting.loads(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_keys_are_not_cached() {
        let (_dir, counting, cached) = setup(LONG).await;
        let id = KeyId::generate();
        for _ in 0..2 {
            assert!(matches!(
                cached.describe_key(&id).await,
                Err(Error::KeyNotFound { .. })
            ));
        }
        assert_eq!(counting.loads(), 2);
    }
}
