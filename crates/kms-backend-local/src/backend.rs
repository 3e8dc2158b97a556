use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use kms_core::{
    Backend, BackendKind, CreateKeyRequest, EncryptionContext, Envelope, Error, KeyChange, KeyId,
    KeyMetadata, KeyPage, KeyState, ListKeysRequest, LoadedKey, MasterKey, Result, SecretBytes,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::durable::{ensure_private_dir, remove_durably, remove_leftover_temps, write_atomic};
use crate::root_secret::{open_with, seal_with};
use crate::RootSecret;

const BACKEND: &str = "local";
const KEY_FILE_FORMAT: u32 = 1;
const NONCE_LEN: usize = 12;
const MATERIAL_LEN: usize = 32;

/// Master keys as files in a directory, material wrapped under the root secret.
///
/// All metadata is also held in memory, indexed by id and by listing order, so describe and list
/// cost no file read; the files are the durable truth and are read once at open.
pub struct LocalBackend {
    dir: PathBuf,
    kek: SecretBytes,
    index: RwLock<Index>,
    /// Serialises writers so that two changes of one key never overwrite each other.
    writer: Mutex<()>,
}

#[derive(Default)]
struct Index {
    by_id: HashMap<KeyId, Arc<KeyFile>>,
    order: BTreeSet<(DateTime<Utc>, KeyId)>,
}

impl Index {
    fn insert(&mut self, file: KeyFile) {
        let id = file.metadata.key_id.clone();
        self.order.insert((file.metadata.creation_date, id.clone()));
        self.by_id.insert(id, Arc::new(file));
    }

    fn remove(&mut self, id: &KeyId) {
        if let Some(file) = self.by_id.remove(id) {
            self.order
                .remove(&(file.metadata.creation_date, id.clone()));
        }
    }
}

/// The on-disk form of one key. Material appears only wrapped.
#[derive(Clone, Serialize, Deserialize)]
struct KeyFile {
    format: u32,
    metadata: KeyMetadata,
    versions: Vec<WrappedVersion>,
}

#[derive(Clone, Serialize, Deserialize)]
struct WrappedVersion {
    version: u32,
    /// Base64 of `nonce || AES-256-GCM(kek, material)`.
    wrapped: String,
}

impl LocalBackend {
    /// Opens (creating if needed, mode 0700) a key directory and loads every key file in it.
    /// Temporary files left by an interrupted write are removed; a key file that cannot be read
    /// is an error rather than a silently missing key.
    pub async fn open(dir: impl Into<PathBuf>, root: &RootSecret) -> Result<Self> {
        let dir = dir.into();
        let kek = root.derive("local-backend-key-wrapping");
        let loader_dir = dir.clone();
        let index = tokio::task::spawn_blocking(move || load_index(&loader_dir))
            .await
            .map_err(|e| io_error("loading keys", e))??;
        Ok(Self {
            dir,
            kek,
            index: RwLock::new(index),
            writer: Mutex::new(()),
        })
    }

    /// The directory holding the key files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&self, id: &KeyId) -> Result<Arc<KeyFile>> {
        let index = self.index.read().expect("index lock poisoned");
        index
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| Error::key_not_found(id))
    }

    fn path_of(&self, id: &KeyId) -> PathBuf {
        // Ids may hold characters that are awkward in file names, and may be longer than a file
        // name allows, so the name is a digest of the id; the id itself is inside the file.
        let digest = Sha256::digest(id.as_str().as_bytes());
        self.dir.join(format!("{}.key", hex_lower(&digest)))
    }

    async fn store(&self, file: KeyFile) -> Result<()> {
        let path = self.path_of(&file.metadata.key_id);
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| backend_error("encoding", e))?;
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, 0o600))
            .await
            .map_err(|e| io_error("writing a key", e))?
            .map_err(|e| io_error("writing a key", e))?;
        self.index
            .write()
            .expect("index lock poisoned")
            .insert(file);
        Ok(())
    }

    fn wrap(&self, id: &KeyId, version: u32, material: &SecretBytes) -> WrappedVersion {
        let sealed = seal_with(&self.kek, &wrap_aad(id, version), material.expose());
        WrappedVersion {
            version,
            wrapped: STANDARD.encode(sealed),
        }
    }

    fn unwrap(&self, id: &KeyId, version: &WrappedVersion) -> Result<SecretBytes> {
        let sealed = STANDARD.decode(&version.wrapped).map_err(|_| corrupt(id))?;
        open_with(&self.kek, &wrap_aad(id, version.version), &sealed).map_err(|_| {
            backend_error(
                "unwrapping key material",
                format!("key '{id}' does not open under this root secret"),
            )
        })
    }
}

/// Binds a wrapped version to its key and version, so wrapped material cannot be moved.
fn wrap_aad(id: &KeyId, version: u32) -> Vec<u8> {
    let mut aad = b"kms-local-material-v1".to_vec();
    aad.extend_from_slice(&Envelope::header_for(id, version));
    aad
}

fn load_index(dir: &Path) -> Result<Index> {
    ensure_private_dir(dir).map_err(|e| io_error("creating the key directory", e))?;
    remove_leftover_temps(dir).map_err(|e| io_error("cleaning up", e))?;
    let mut index = Index::default();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("reading the key directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("reading the key directory", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".key") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| io_error("reading a key", e))?;
        let mut file: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|e| backend_error("reading a key file", format!("{name}: {e}")))?;
        // Deserializing grows the vector to room for four versions; most keys have one.
        file.versions.shrink_to_fit();
        if file.format != KEY_FILE_FORMAT {
            return Err(backend_error(
                "reading a key file",
                format!("{name}: unknown format"),
            ));
        }
        index.insert(file);
    }
    Ok(index)
}

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    async fn create_key(&self, request: CreateKeyRequest) -> Result<KeyMetadata> {
        let metadata = request.into_metadata(kms_core::now())?;
        let _writer = self.writer.lock().await;
        if self.get(&metadata.key_id).is_ok() {
            return Err(Error::KeyAlreadyExists {
                key_id: metadata.key_id.to_string(),
            });
        }
        let material = SecretBytes::random(MATERIAL_LEN);
        let versions = vec![self.wrap(&metadata.key_id, 1, &material)];
        let file = KeyFile {
            format: KEY_FILE_FORMAT,
            metadata: metadata.clone(),
            versions,
        };
        self.store(file).await?;
        Ok(metadata)
    }

    async fn describe_key(&self, key_id: &KeyId) -> Result<KeyMetadata> {
        Ok(self.get(key_id)?.metadata.clone())
    }

    async fn load_key(&self, key_id: &KeyId) -> Result<LoadedKey> {
        let file = self.get(key_id)?;
        let mut versions = BTreeMap::new();
        for wrapped in &file.versions {
            versions.insert(wrapped.version, self.unwrap(key_id, wrapped)?);
        }
        let master_key = LocalMasterKey {
            key_id: key_id.clone(),
            current_version: file.metadata.current_version,
            versions,
        };
        Ok(LoadedKey {
            metadata: file.metadata.clone(),
            master_key: Arc::new(master_key),
        })
    }

    async fn list_keys(&self, request: &ListKeysRequest) -> Result<KeyPage> {
        let index = self.index.read().expect("index lock poisoned");
        let start = match &request.marker {
            Some(m) => Bound::Excluded((m.creation_date, m.key_id.clone())),
            None => Bound::Unbounded,
        };
        let keys = index
            .order
            .range((start, Bound::Unbounded))
            .filter_map(|(_, id)| index.by_id.get(id).map(|f| f.metadata.clone()));
        Ok(KeyPage::from_sorted(keys, request.limit))
    }

    async fn update_key(&self, key_id: &KeyId, change: KeyChange) -> Result<KeyMetadata> {
        let _writer = self.writer.lock().await;
        let mut file = KeyFile::clone(&*self.get(key_id)?);
        change.apply(&mut file.metadata)?;
        let metadata = file.metadata.clone();
        self.store(file).await?;
        Ok(metadata)
    }

    async fn rotate_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<KeyMetadata> {
        let _writer = self.writer.lock().await;
        let mut file = KeyFile::clone(&*self.get(key_id)?);
        file.metadata.require_enabled("be rotated")?;
        let version = file.metadata.current_version + 1;
        let material = SecretBytes::random(MATERIAL_LEN);
        file.versions.push(self.wrap(key_id, version, &material));
        file.metadata.current_version = version;
        file.metadata.last_rotation_date = now;
        let metadata = file.metadata.clone();
        self.store(file).await?;
        Ok(metadata)
    }

    async fn destroy_key(&self, key_id: &KeyId, now: DateTime<Utc>) -> Result<bool> {
        let _writer = self.writer.lock().await;
        let file = self.get(key_id)?;
        let due = file.metadata.key_state == KeyState::PendingDeletion
            && file.metadata.deletion_date.is_some_and(|date| date <= now);
        if !due {
            return Ok(false);
        }
        let path = self.path_of(key_id);
        tokio::task::spawn_blocking(move || remove_durably(&path))
            .await
            .map_err(|e| io_error("destroying a key", e))?
            .map_err(|e| io_error("destroying a key", e))?;
        self.index
            .write()
            .expect("index lock poisoned")
            .remove(key_id);
        Ok(true)
    }

    async fn health_check(&self) -> Result<()> {
        let dir = self.dir.clone();
        let readable = tokio::task::spawn_blocking(move || std::fs::metadata(dir).is_ok())
            .await
            .unwrap_or(false);
        if readable {
            Ok(())
        } else {
            Err(Error::BackendUnavailable {
                backend: BACKEND,
                reason: "the key directory is not accessible".into(),
            })
        }
    }
}

/// The unwrapped versions of one key, zeroized when the last handle is dropped.
struct LocalMasterKey {
    key_id: KeyId,
    current_version: u32,
    versions: BTreeMap<u32, SecretBytes>,
}

impl LocalMasterKey {
    fn cipher(&self, version: u32) -> Result<Aes256Gcm> {
        let material = self.versions.get(&version).ok_or(Error::DecryptionFailed)?;
        Aes256Gcm::new_from_slice(material.expose()).map_err(|_| Error::DecryptionFailed)
    }
}

#[async_trait]
impl MasterKey for LocalMasterKey {
    async fn seal(&self, data_key: &SecretBytes, context: &EncryptionContext) -> Result<Envelope> {
        let version = self.current_version;
        let aad = Envelope::associated_data(&self.key_id, version, context);
        let nonce = SecretBytes::random(NONCE_LEN);
        let sealed = self
            .cipher(version)
            .map_err(|_| Error::EncryptionFailed)?
            .encrypt(
                Nonce::from_slice(nonce.expose()),
                Payload {
                    msg: data_key.expose(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::EncryptionFailed)?;
        let mut payload = nonce.expose().to_vec();
        payload.extend_from_slice(&sealed);
        Ok(Envelope::new(self.key_id.clone(), version, payload))
    }

    async fn unseal(
        &self,
        envelope: &Envelope,
        context: &EncryptionContext,
    ) -> Result<SecretBytes> {
        let payload = envelope.payload();
        if payload.len() < NONCE_LEN + 16 || envelope.key_id() != &self.key_id {
            return Err(Error::DecryptionFailed);
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let aad = Envelope::associated_data(&self.key_id, envelope.key_version(), context);
        self.cipher(envelope.key_version())?
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| Error::DecryptionFailed)
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: BACKEND,
        reason: format!("{what}: {e}"),
    }
}

fn backend_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: BACKEND,
        reason: format!("{what}: {e}"),
    }
}

fn corrupt(id: &KeyId) -> Error {
    backend_error(
        "reading a key file",
        format!("key '{id}' has damaged material"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> RootSecret {
        RootSecret::from_text("test-root-secret-of-at-least-32-chars").unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(dir.path().join("keys"), &root())
            .await
            .unwrap();
        kms_core::testing::run_conformance(&backend).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn keys_and_old_blobs_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = EncryptionContext::default();
        let (id, data_key) = {
            let backend = LocalBackend::open(dir.path(), &root()).await.unwrap();
            let meta = backend
                .create_key(CreateKeyRequest::default())
                .await
                .unwrap();
            let dk = kms_core::ops::generate_data_key(
                &backend,
                &meta.key_id,
                kms_core::KeySpec::Aes256,
                &ctx,
            )
            .await
            .unwrap();
            let change = KeyChange::schedule_deletion(kms_core::now(), 9).unwrap();
            backend.update_key(&meta.key_id, change).await.unwrap();
            backend
                .update_key(&meta.key_id, KeyChange::CancelDeletion)
                .await
                .unwrap();
            backend
                .rotate_key(&meta.key_id, kms_core::now())
                .await
                .unwrap();
            (meta.key_id, dk)
        };
        let reopened = LocalBackend::open(dir.path(), &root()).await.unwrap();
        assert_eq!(reopened.describe_key(&id).await.unwrap().current_version, 2);
        let back = kms_core::ops::decrypt(&reopened, &data_key.ciphertext_blob, &ctx)
            .await
            .unwrap();
        assert_eq!(back.plaintext.expose(), data_key.plaintext.expose());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn key_files_hold_no_material_in_clear_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(dir.path(), &root()).await.unwrap();
        let meta = backend
            .create_key(CreateKeyRequest::default())
            .await
            .unwrap();
        let loaded = backend.load_key(&meta.key_id).await.unwrap();
        let probe = SecretBytes::new(vec![7u8; 32]);
        let envelope = loaded
            .master_key
            .seal(&probe, &EncryptionContext::default())
            .await
            .unwrap();
        assert_eq!(envelope.key_version(), 1);
        let path = backend.path_of(&meta.key_id);
        let content = std::fs::read_to_string(&path).unwrap();
        assert!(content.contains(meta.key_id.as_str()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn another_root_secret_cannot_use_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(dir.path(), &root()).await.unwrap();
        let meta = backend
            .create_key(CreateKeyRequest::default())
            .await
            .unwrap();
        drop(backend);
        let other = RootSecret::from_text("another-root-secret-of-32-chars-or-more").unwrap();
        let reopened = LocalBackend::open(dir.path(), &other).await.unwrap();
        let err = reopened.load_key(&meta.key_id).await.unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn leftover_temporary_files_are_cleaned_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".abc.key.123.tmp"), b"half").unwrap();
        let backend = LocalBackend::open(dir.path(), &root()).await.unwrap();
        assert!(!dir.path().join(".abc.key.123.tmp").exists());
        let page = backend
            .list_keys(&ListKeysRequest {
                limit: 10,
                marker: None,
            })
            .await
            .unwrap();
        assert!(page.keys.is_empty());
    }
}
