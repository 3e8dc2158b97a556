//! The operations whose rules do not depend on the backend, written once.

use chrono::{DateTime, Utc};

use crate::{
    Backend, CreateKeyRequest, EncryptionContext, Envelope, Error, KeyId, KeyMetadata, KeySpec,
    KeyState, ListKeysRequest, Result, SecretBytes,
};

/// A freshly generated data key: the plaintext for the caller and the sealed blob to store.
pub struct DataKey {
    /// The master key that sealed it.
    pub key_id: KeyId,
    /// The data key itself.
    pub plaintext: SecretBytes,
    /// The data key sealed under the master key, as envelope bytes.
    pub ciphertext_blob: Vec<u8>,
}

/// A data key recovered from its ciphertext blob.
pub struct DecryptedDataKey {
    /// The master key that had sealed it.
    pub key_id: KeyId,
    /// The data key itself.
    pub plaintext: SecretBytes,
}

/// Generates a fresh random data key and seals it under the key's current version. Every call
/// returns new bytes; nothing is cached or reused.
pub async fn generate_data_key(
    backend: &dyn Backend,
    key_id: &KeyId,
    spec: KeySpec,
    context: &EncryptionContext,
) -> Result<DataKey> {
    let key = backend.load_key(key_id).await?;
    key.metadata.require_enabled("generate data keys")?;
    let plaintext = SecretBytes::random(spec.key_len());
    let envelope = key.master_key.seal(&plaintext, context).await?;
    Ok(DataKey {
        key_id: key.metadata.key_id,
        plaintext,
        ciphertext_blob: envelope.to_bytes(),
    })
}

/// Unseals a ciphertext blob with exactly the encryption context it was sealed with.
pub async fn decrypt(
    backend: &dyn Backend,
    blob: &[u8],
    context: &EncryptionContext,
) -> Result<DecryptedDataKey> {
    let envelope = Envelope::parse(blob)?;
    let key = backend.load_key(envelope.key_id()).await?;
    key.metadata.require_enabled("decrypt")?;
    let plaintext = key.master_key.unseal(&envelope, context).await?;
    Ok(DecryptedDataKey {
        key_id: key.metadata.key_id,
        plaintext,
    })
}

/// Makes sure a key with this id exists: adopts it when present, creates it when absent. Used for
/// the configured default key, so restarts and repeated configures are idempotent.
pub async fn ensure_key(backend: &dyn Backend, key_id: &KeyId) -> Result<KeyMetadata> {
    match backend.describe_key(key_id).await {
        Err(Error::KeyNotFound { .. }) => {}
        other => return other,
    }
    let request = CreateKeyRequest {
        key_id: Some(key_id.clone()),
        description: "default master key".into(),
        ..CreateKeyRequest::default()
    };
    match backend.create_key(request).await {
        Err(Error::KeyAlreadyExists { .. }) => backend.describe_key(key_id).await,
        other => other,
    }
}

/// Destroys every key whose deletion date has passed. Returns the destroyed ids.
pub async fn sweep_deletions(backend: &dyn Backend, now: DateTime<Utc>) -> Result<Vec<KeyId>> {
    let due = due_keys(backend, |meta| {
        meta.key_state == KeyState::PendingDeletion
            && meta.deletion_date.is_some_and(|date| date <= now)
    })
    .await?;
    let mut destroyed = Vec::new();
    for key_id in due {
        if backend.destroy_key(&key_id, now).await? {
            destroyed.push(key_id);
        }
    }
    Ok(destroyed)
}

/// Rotates every enabled key whose automatic rotation is due. Returns the rotated ids.
pub async fn rotate_due_keys(backend: &dyn Backend, now: DateTime<Utc>) -> Result<Vec<KeyId>> {
    let due = due_keys(backend, |meta| {
        meta.enabled() && meta.next_rotation_date().is_some_and(|date| date <= now)
    })
    .await?;
    for key_id in &due {
        backend.rotate_key(key_id, now).await?;
    }
    Ok(due)
}

/// The ids of the keys for which `due` holds, read one page at a time: only the ids are kept,
/// so a pass over 100,000 keys holds one page of metadata, not a copy of all of it.
async fn due_keys(backend: &dyn Backend, due: impl Fn(&KeyMetadata) -> bool) -> Result<Vec<KeyId>> {
    let mut ids = Vec::new();
    let mut request = ListKeysRequest {
        limit: 1000,
        marker: None,
    };
    loop {
        let page = backend.list_keys(&request).await?;
        ids.extend(
            page.keys
                .iter()
                .filter(|meta| due(meta))
                .map(|meta| meta.key_id.clone()),
        );
        match page.next_marker {
            Some(marker) => request.marker = Some(marker),
            None => return Ok(ids),
        }
    }
}
