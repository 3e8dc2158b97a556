//! Master key material in the Transit engine: keys created, read, rotated and deleted, and the
//! [`MasterKey`] handle that seals and unseals data keys with Transit `encrypt` and `decrypt`.

use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kms_core::SecretBytes;
use kms_core::{EncryptionContext, Envelope, Error, KeyId, KeyMetadata, MasterKey, Result};
use vaultrs::api::transit::requests::{
    CreateKeyRequest, DecryptDataRequest, EncryptDataRequest, UpdateKeyConfigurationRequest,
};
use vaultrs::api::transit::KeyType;
use zeroize::Zeroizing;

use crate::connection::{Call, Connection};
use crate::endpoints::{ReadTransitKey, TransitKey};
use crate::layout::{ciphertext_version, TRANSIT_KEY_TYPE};
use crate::records::backend_error;

/// The Transit mount.
pub(crate) struct Transit {
    conn: Arc<Connection>,
}

impl Transit {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self { conn }
    }

    fn mount(&self) -> &str {
        self.conn.settings().transit_mount()
    }

    /// The handle sealing under `current_version` of the key named `key_id`.
    pub(crate) fn master_key(&self, key_id: KeyId, current_version: u32) -> Arc<dyn MasterKey> {
        Arc::new(VaultMasterKey {
            conn: self.conn.clone(),
            key_id,
            current_version,
        })
    }

    /// Describes a Transit key; `None` when there is none.
    pub(crate) async fn read(&self, id: &KeyId) -> Result<Option<TransitKey>> {
        let mount = self.mount();
        let result = self
            .conn
            .run(Call::Read, |client| async move {
                let endpoint = ReadTransitKey {
                    mount: mount.to_owned(),
                    name: id.as_str().to_owned(),
                };
                vaultrs::api::exec_with_result(&*client, endpoint).await
            })
            .await;
        match result {
            Ok(key) => Ok(Some(key)),
            Err(f) if f.is_not_found() => Ok(None),
            Err(f) => Err(f.into_error("reading the transit key")),
        }
    }

    /// Creates an `aes256-gcm96` key, neither exportable nor deletable.
    pub(crate) async fn create(&self, id: &KeyId) -> Result<()> {
        let mount = self.mount();
        self.conn
            .run(Call::Once, |client| async move {
                let mut options = CreateKeyRequest::builder();
                options.key_type(KeyType::Aes256Gcm96);
                vaultrs::transit::key::create(&*client, mount, id.as_str(), Some(&mut options))
                    .await
            })
            .await
            .map_err(|f| f.into_error("creating the transit key"))
    }

    /// Adds a version and returns the new latest version.
    pub(crate) async fn rotate(&self, id: &KeyId) -> Result<u32> {
        let mount = self.mount();
        self.conn
            .run(Call::Once, |client| async move {
                vaultrs::transit::key::rotate(&*client, mount, id.as_str()).await
            })
            .await
            .map_err(|f| f.into_error("rotating the transit key"))?;
        let key = self.read(id).await?;
        let key = key.ok_or_else(|| backend_error(format!("transit key '{id}' vanished")))?;
        Ok(key.latest_version)
    }

    /// Deletes a key, allowing its deletion first. A key already gone is fine.
    pub(crate) async fn delete(&self, id: &KeyId) -> Result<()> {
        if self.read(id).await?.is_none() {
            return Ok(());
        }
        let mount = self.mount();
        let allowed = self
            .conn
            .run(Call::Once, |client| async move {
                let mut options = UpdateKeyConfigurationRequest::builder();
                options.deletion_allowed(true);
                vaultrs::transit::key::update(&*client, mount, id.as_str(), Some(&mut options))
                    .await
            })
            .await;
        allowed.map_err(|f| f.into_error("allowing the transit key's deletion"))?;
        let deleted = self
            .conn
            .run(Call::Once, |client| async move {
                vaultrs::transit::key::delete(&*client, mount, id.as_str()).await
            })
            .await;
        match deleted {
            Ok(()) => Ok(()),
            Err(f) if f.is_not_found() => Ok(()),
            Err(f) => Err(f.into_error("deleting the transit key")),
        }
    }
}

/// Metadata for a Transit key that exists without a record: its versions as they are, created
/// when its oldest remaining version was. Only keys this backend could have made qualify.
pub(crate) fn adopt(mut metadata: KeyMetadata, key: &TransitKey) -> Result<KeyMetadata> {
    let usable = key.key_type == TRANSIT_KEY_TYPE
        && !key.derived
        && key.supports_encryption
        && key.supports_decryption;
    if !usable {
        return Err(Error::invalid(format!(
            "a transit key named '{}' exists with type '{}'{}; only {TRANSIT_KEY_TYPE} keys \
             without key derivation can be adopted",
            metadata.key_id,
            key.key_type,
            if key.derived { " and derivation" } else { "" },
        )));
    }
    let now = metadata.creation_date;
    let oldest = key.oldest_version().unwrap_or(key.latest_version);
    metadata.creation_date = key.version_time(oldest).unwrap_or(now);
    metadata.last_rotation_date = key.version_time(key.latest_version).unwrap_or(now);
    metadata.current_version = key.latest_version;
    Ok(metadata)
}

/// The handle of one Transit key. It holds no material: every seal and unseal is a Transit call.
struct VaultMasterKey {
    conn: Arc<Connection>,
    key_id: KeyId,
    current_version: u32,
}

impl VaultMasterKey {
    fn associated_data(&self, version: u32, context: &EncryptionContext) -> String {
        STANDARD.encode(Envelope::associated_data(&self.key_id, version, context))
    }
}

#[async_trait]
impl MasterKey for VaultMasterKey {
    // FIXME: the data key crosses vaultrs and reqwest as base64 text in request and response
    // buffers that this crate cannot zeroize (so do the token, which vaultrs keeps as a
    // `String`, and the plaintext Transit returns on unseal). Only the copies made here are
    // zeroized.
    // FIXME: each Transit call costs kms-server about 120 µs of CPU (a third of it in the
    // vaultrs/rustify/reqwest stack), so on a 2-core machine shared with OpenBao the Vault
    // backend reaches about 0.5 of OpenBao's own throughput, short of the 0.8 target
    // (docs/performance.md).
    async fn seal(&self, data_key: &SecretBytes, context: &EncryptionContext) -> Result<Envelope> {
        let version = self.current_version;
        let aad = self.associated_data(version, context);
        let plaintext = Zeroizing::new(STANDARD.encode(data_key.expose()));
        let mount = self.conn.settings().transit_mount();
        let (aad, plaintext, name) = (aad.as_str(), plaintext.as_str(), self.key_id.as_str());
        let result = self
            .conn
            .run(Call::Once, |client| async move {
                let mut options = EncryptDataRequest::builder();
                options.associated_data(aad).key_version(u64::from(version));
                let options = Some(&mut options);
                vaultrs::transit::data::encrypt(&*client, mount, name, plaintext, options).await
            })
            .await;
        let ciphertext = match result {
            Ok(answer) => answer.ciphertext,
            // Transit refused the version (for example raised `min_encryption_version`).
            Err(f) if f.is_bad_request() => return Err(Error::EncryptionFailed),
            Err(f) => return Err(f.into_error("sealing a data key")),
        };
        if ciphertext_version(&ciphertext) != Some(version) {
            return Err(Error::EncryptionFailed);
        }
        let payload = ciphertext.into_bytes();
        Ok(Envelope::new(self.key_id.clone(), version, payload))
    }

    async fn unseal(
        &self,
        envelope: &Envelope,
        context: &EncryptionContext,
    ) -> Result<SecretBytes> {
        let version = envelope.key_version();
        let ciphertext =
            std::str::from_utf8(envelope.payload()).map_err(|_| Error::DecryptionFailed)?;
        // The payload must name the version the header names. Both are authenticated anyway;
        // this only spares Vault a request that cannot succeed.
        if envelope.key_id() != &self.key_id || ciphertext_version(ciphertext) != Some(version) {
            return Err(Error::DecryptionFailed);
        }
        let aad = self.associated_data(version, context);
        let mount = self.conn.settings().transit_mount();
        let (aad, name) = (aad.as_str(), self.key_id.as_str());
        let result = self
            .conn
            .run(Call::Read, |client| async move {
                let mut options = DecryptDataRequest::builder();
                options.associated_data(aad);
                let options = Some(&mut options);
                vaultrs::transit::data::decrypt(&*client, mount, name, ciphertext, options).await
            })
            .await;
        let plaintext = match result {
            Ok(answer) => Zeroizing::new(answer.plaintext),
            // Transit answers 400 for a ciphertext or associated data that does not
            // authenticate, a malformed ciphertext, and a version it does not have.
            Err(f) if f.is_bad_request() => return Err(Error::DecryptionFailed),
            Err(f) => return Err(f.into_error("unsealing a data key")),
        };
        let bytes = STANDARD
            .decode(plaintext.as_bytes())
            .map_err(|_| backend_error("transit returned a plaintext that is not base64".into()))?;
        Ok(SecretBytes::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_core::Tags;

    fn transit_key(json: &str) -> TransitKey {
        serde_json::from_str(json).unwrap()
    }

    fn metadata() -> KeyMetadata {
        let id = KeyId::parse("default-master-key").unwrap();
        KeyMetadata::new(
            id,
            "default master key".into(),
            Tags::default(),
            kms_core::now(),
        )
    }

    #[test]
    fn adopted_keys_keep_their_versions_and_dates() {
        let key = transit_key(
            r#"{"type":"aes256-gcm96","latest_version":3,"supports_encryption":true,
                "supports_decryption":true,"keys":{"1":1700000000,"2":1700000500,"3":1700001000}}"#,
        );
        let adopted = adopt(metadata(), &key).unwrap();
        assert_eq!(adopted.current_version, 3);
        assert_eq!(adopted.creation_date.timestamp(), 1_700_000_000);
        assert_eq!(adopted.last_rotation_date.timestamp(), 1_700_001_000);
        assert_eq!(adopted.description, "default master key");
    }

    #[test]
    fn keys_this_backend_could_not_have_made_are_not_adopted() {
        for json in [
            r#"{"type":"rsa-2048","latest_version":1,"supports_encryption":true,
                "supports_decryption":true}"#,
            r#"{"type":"aes256-gcm96","derived":true,"latest_version":1,
                "supports_encryption":true,"supports_decryption":true}"#,
            r#"{"type":"chacha20-poly1305","latest_version":1,"supports_encryption":true,
                "supports_decryption":true}"#,
        ] {
            let err = adopt(metadata(), &transit_key(json)).unwrap_err();
            assert!(matches!(err, Error::InvalidRequest { .. }), "{json}");
        }
    }
}
