//! The backend conformance suite: the behaviour every backend must show, written once and run
//! against each of them (local files, and a real OpenBao server for Vault).

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::ops::{decrypt, ensure_key, generate_data_key, sweep_deletions};
use crate::{
    Backend, BackendKind, CreateKeyRequest, EncryptionContext, Error, KeyChange, KeyId,
    KeyMetadata, KeyPage, KeySpec, KeyState, ListKeysRequest, LoadedKey, Result, Tags,
};

/// Runs every conformance case against the backend. Each case makes its own keys, so the
/// backend may hold other keys already; the listing case needs a backend with no other keys
/// created concurrently.
pub async fn run_conformance(backend: &dyn Backend) {
    create_then_describe_returns_the_same_metadata(backend).await;
    creating_an_existing_id_is_refused(backend).await;
    unknown_keys_are_not_found(backend).await;
    data_keys_round_trip_under_their_exact_context(backend).await;
    decrypt_with_other_context_is_refused(backend).await;
    modified_blobs_are_refused(backend).await;
    disabled_keys_refuse_data_keys_until_enabled(backend).await;
    pending_deletion_refuses_until_cancelled(backend).await;
    rotation_keeps_old_blobs_readable(backend).await;
    listing_returns_every_key_once_in_creation_order(backend).await;
    keys_are_destroyed_only_after_their_deletion_date(backend).await;
    ensure_key_adopts_an_existing_key(backend).await;
}

fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .expect("valid context")
}

async fn new_key(backend: &dyn Backend, description: &str) -> KeyMetadata {
    let tags = Tags::new([("name".to_string(), description.to_string())].into()).unwrap();
    let request = CreateKeyRequest {
        key_id: None,
        description: description.into(),
        tags,
    };
    backend.create_key(request).await.expect("create key")
}

async fn create_then_describe_returns_the_same_metadata(backend: &dyn Backend) {
    let created = new_key(backend, "conformance describe").await;
    assert_eq!(created.key_state, KeyState::Enabled);
    assert_eq!(created.current_version, 1);
    assert_eq!(created.tags.get("name").unwrap(), "conformance describe");
    let described = backend.describe_key(&created.key_id).await.unwrap();
    assert_eq!(described, created);
}

async fn creating_an_existing_id_is_refused(backend: &dyn Backend) {
    let created = new_key(backend, "conformance duplicate").await;
    let again = CreateKeyRequest {
        key_id: Some(created.key_id.clone()),
        ..Default::default()
    };
    let err = backend.create_key(again).await.unwrap_err();
    assert!(matches!(err, Error::KeyAlreadyExists { .. }), "{err:?}");
    assert_eq!(
        backend.describe_key(&created.key_id).await.unwrap(),
        created
    );
}

async fn unknown_keys_are_not_found(backend: &dyn Backend) {
    let id = KeyId::generate();
    assert!(matches!(
        backend.describe_key(&id).await,
        Err(Error::KeyNotFound { .. })
    ));
    let change = backend.update_key(&id, KeyChange::Disable).await;
    assert!(matches!(change, Err(Error::KeyNotFound { .. })));
    let data_key = generate_data_key(backend, &id, KeySpec::Aes256, &context(&[])).await;
    assert!(matches!(data_key, Err(Error::KeyNotFound { .. })));
}

async fn data_keys_round_trip_under_their_exact_context(backend: &dyn Backend) {
    let key = new_key(backend, "conformance round trip").await;
    let ctx = context(&[("bucket", "photos"), ("object", "a/b.jpg")]);
    for spec in [KeySpec::Aes256, KeySpec::Aes128] {
        let first = generate_data_key(backend, &key.key_id, spec, &ctx)
            .await
            .unwrap();
        let second = generate_data_key(backend, &key.key_id, spec, &ctx)
            .await
            .unwrap();
        assert_eq!(first.plaintext.len(), spec.key_len());
        assert_ne!(
            first.plaintext.expose(),
            second.plaintext.expose(),
            "data keys must be fresh"
        );
        let back = decrypt(backend, &first.ciphertext_blob, &ctx)
            .await
            .unwrap();
        assert_eq!(back.key_id, key.key_id);
        assert_eq!(back.plaintext.expose(), first.plaintext.expose());
    }
}

async fn decrypt_with_other_context_is_refused(backend: &dyn Backend) {
    let key = new_key(backend, "conformance context").await;
    let ctx = context(&[("bucket", "photos")]);
    let data_key = generate_data_key(backend, &key.key_id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    let others = [
        context(&[]),
        context(&[("bucket", "photo")]),
        context(&[("bucket", "photos"), ("extra", "")]),
        context(&[("Bucket", "photos")]),
    ];
    for other in others {
        let result = decrypt(backend, &data_key.ciphertext_blob, &other).await;
        assert!(
            matches!(result, Err(Error::DecryptionFailed)),
            "{other:?} was accepted"
        );
    }
}

async fn modified_blobs_are_refused(backend: &dyn Backend) {
    let key = new_key(backend, "conformance tamper").await;
    let ctx = context(&[]);
    let blob = generate_data_key(backend, &key.key_id, KeySpec::Aes256, &ctx)
        .await
        .unwrap()
        .ciphertext_blob;
    let last = blob.len() - 1;
    for index in [3, 4, 5, last - 20, last] {
        let mut bad = blob.clone();
        bad[index] ^= 0x01;
        let result = decrypt(backend, &bad, &ctx).await;
        assert!(result.is_err(), "flipping byte {index} was not noticed");
    }
    let truncated = decrypt(backend, &blob[..last], &ctx).await;
    assert!(matches!(truncated, Err(Error::DecryptionFailed)));
}

async fn disabled_keys_refuse_data_keys_until_enabled(backend: &dyn Backend) {
    let key = new_key(backend, "conformance disable").await;
    let ctx = context(&[("k", "v")]);
    let old = generate_data_key(backend, &key.key_id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    let disabled = backend
        .update_key(&key.key_id, KeyChange::Disable)
        .await
        .unwrap();
    assert_eq!(disabled.key_state, KeyState::Disabled);
    assert_state_refusal(backend, &key.key_id, &old.ciphertext_blob, &ctx).await;
    let enabled = backend
        .update_key(&key.key_id, KeyChange::Enable)
        .await
        .unwrap();
    assert_eq!(enabled.key_state, KeyState::Enabled);
    let back = decrypt(backend, &old.ciphertext_blob, &ctx).await.unwrap();
    assert_eq!(back.plaintext.expose(), old.plaintext.expose());
}

async fn pending_deletion_refuses_until_cancelled(backend: &dyn Backend) {
    let key = new_key(backend, "conformance pending").await;
    let ctx = context(&[]);
    let old = generate_data_key(backend, &key.key_id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    let schedule = KeyChange::schedule_deletion(crate::now(), 7).unwrap();
    let pending = backend
        .update_key(&key.key_id, schedule.clone())
        .await
        .unwrap();
    assert_eq!(pending.key_state, KeyState::PendingDeletion);
    assert!(pending.deletion_date.is_some());
    let again = backend.update_key(&key.key_id, schedule).await;
    assert!(matches!(again, Err(Error::InvalidKeyState { .. })));
    assert_state_refusal(backend, &key.key_id, &old.ciphertext_blob, &ctx).await;
    let listed = find_in_listing(backend, &key.key_id).await;
    assert_eq!(listed.map(|m| m.key_state), Some(KeyState::PendingDeletion));

    let restored = backend
        .update_key(&key.key_id, KeyChange::CancelDeletion)
        .await
        .unwrap();
    assert_eq!(
        (restored.key_state, restored.deletion_date),
        (KeyState::Enabled, None)
    );
    let back = decrypt(backend, &old.ciphertext_blob, &ctx).await.unwrap();
    assert_eq!(back.plaintext.expose(), old.plaintext.expose());
}

async fn assert_state_refusal(
    backend: &dyn Backend,
    id: &KeyId,
    blob: &[u8],
    ctx: &EncryptionContext,
) {
    let generated = generate_data_key(backend, id, KeySpec::Aes256, ctx).await;
    assert!(
        matches!(generated, Err(Error::InvalidKeyState { .. })),
        "generate was allowed"
    );
    let decrypted = decrypt(backend, blob, ctx).await;
    assert!(
        matches!(decrypted, Err(Error::InvalidKeyState { .. })),
        "decrypt was allowed"
    );
}

async fn rotation_keeps_old_blobs_readable(backend: &dyn Backend) {
    let key = new_key(backend, "conformance rotate").await;
    let ctx = context(&[("v", "1")]);
    let v1 = generate_data_key(backend, &key.key_id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    let rotated = backend.rotate_key(&key.key_id, crate::now()).await.unwrap();
    assert_eq!(rotated.current_version, 2);
    let v2 = generate_data_key(backend, &key.key_id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    let v2_envelope = crate::Envelope::parse(&v2.ciphertext_blob).unwrap();
    assert_eq!(v2_envelope.key_version(), 2);
    for old in [&v1, &v2] {
        let back = decrypt(backend, &old.ciphertext_blob, &ctx).await.unwrap();
        assert_eq!(back.plaintext.expose(), old.plaintext.expose());
    }
    let settings = KeyChange::set_rotation(true, 90).unwrap();
    let meta = backend.update_key(&key.key_id, settings).await.unwrap();
    assert!(meta.rotation_enabled);
    assert_eq!(meta.rotation_period_in_days, 90);
    assert_eq!(meta.current_version, 2, "settings must not rotate");
}

async fn find_in_listing(backend: &dyn Backend, id: &KeyId) -> Option<KeyMetadata> {
    list_everything(backend, 1000)
        .await
        .into_iter()
        .find(|m| &m.key_id == id)
}

async fn list_everything(backend: &dyn Backend, limit: usize) -> Vec<KeyMetadata> {
    let mut all = Vec::new();
    let mut request = ListKeysRequest {
        limit,
        marker: None,
    };
    loop {
        let KeyPage { keys, next_marker } = backend.list_keys(&request).await.unwrap();
        assert!(keys.len() <= limit);
        all.extend(keys);
        match next_marker {
            Some(marker) => request.marker = Some(marker),
            None => return all,
        }
    }
}

async fn listing_returns_every_key_once_in_creation_order(backend: &dyn Backend) {
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            new_key(backend, &format!("conformance list {i}"))
                .await
                .key_id,
        );
    }
    let listed = list_everything(backend, 3).await;
    let order: Vec<_> = listed
        .iter()
        .map(|m| (m.creation_date, m.key_id.clone()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        order, sorted,
        "listing is not in creation order or repeats a key"
    );
    let ids: Vec<_> = listed.iter().map(|m| &m.key_id).collect();
    for id in &created {
        assert_eq!(
            ids.iter().filter(|listed| **listed == id).count(),
            1,
            "{id} not listed once"
        );
    }
}

async fn keys_are_destroyed_only_after_their_deletion_date(backend: &dyn Backend) {
    let key = new_key(backend, "conformance destroy").await;
    let ctx = context(&[]);
    let blob = generate_data_key(backend, &key.key_id, KeySpec::Aes256, &ctx)
        .await
        .unwrap()
        .ciphertext_blob;
    let now = crate::now();
    assert!(
        !backend.destroy_key(&key.key_id, now).await.unwrap(),
        "enabled key destroyed"
    );
    let schedule = KeyChange::schedule_deletion(now, 7).unwrap();
    backend.update_key(&key.key_id, schedule).await.unwrap();
    let early = sweep_deletions(backend, now + Duration::days(6))
        .await
        .unwrap();
    assert!(!early.contains(&key.key_id), "destroyed before its date");
    assert!(backend.describe_key(&key.key_id).await.is_ok());
    let due = sweep_deletions(backend, now + Duration::days(7) + Duration::seconds(1)).await;
    assert!(due.unwrap().contains(&key.key_id));
    assert!(matches!(
        backend.describe_key(&key.key_id).await,
        Err(Error::KeyNotFound { .. })
    ));
    assert!(decrypt(backend, &blob, &ctx).await.is_err());
    assert!(find_in_listing(backend, &key.key_id).await.is_none());
}

async fn ensure_key_adopts_an_existing_key(backend: &dyn Backend) {
    let id = KeyId::parse(&format!("conformance-default-{}", uuid::Uuid::new_v4())).unwrap();
    let first = ensure_key(backend, &id).await.unwrap();
    let second = ensure_key(backend, &id).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.key_id, id);
}

/// A backend wrapper that counts the calls reaching the backend, for cache tests.
pub struct CountingBackend<B> {
    inner: B,
    loads: AtomicU64,
    describes: AtomicU64,
}

impl<B> CountingBackend<B> {
    /// Wraps a backend.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            loads: AtomicU64::new(0),
            describes: AtomicU64::new(0),
        }
    }

    /// How many `load_key` calls reached the backend.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }

    /// How many `describe_key` calls reached the backend.
    pub fn describes(&self) -> u64 {
        self.describes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<B: Backend> Backend for CountingBackend<B> {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    async fn create_key(&self, request: CreateKeyRequest) -> Result<KeyMetadata> {
        self.inner.create_key(request).await
    }
    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyMetadata> {
        self.describes.fetch_add(1, Ordering::SeqCst);
        self.inner.describe_key(key_id).await
    }
    async fn load_key(&self, key_id: &KeyId) -> Result<LoadedKey> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        // A pause, so concurrent misses really overlap in tests of single-flight loading.
        yield_a_few_times().await;
        self.inner.load_key(key_id).await
    }
    async fn list_keys(&self, request: &ListKeysRequest) -> Result<KeyPage> {
        self.inner.list_keys(request).await
    }
    async fn update_key(&self, key_id: &KeyId, change: KeyChange) -> Result<KeyMetadata> {
        self.inner.update_key(key_id, change).await
    }
    async fn rotate_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<KeyMetadata> {
        self.inner.rotate_key(key_id, now).await
    }
    async fn destroy_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<bool> {
        self.inner.destroy_key(key_id, now).await
    }
    async fn health_check(&self) -> Result<()> {
        self.inner.health_check().await
    }
}

/// Yields to the executor a few times, without tying this crate to one async runtime.
async fn yield_a_few_times() {
    struct YieldNow(u8);
    impl std::future::Future for YieldNow {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 == 0 {
                return std::task::Poll::Ready(());
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    YieldNow(8).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_helper_builds_sorted_pairs() {
        assert_eq!(
            context(&[("b", "1"), ("a", "2")])
                .pairs()
                .keys()
                .next()
                .unwrap(),
            "a"
        );
    }
}
