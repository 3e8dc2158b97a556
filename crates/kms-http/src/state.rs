//! The shared state of every request, and how it is built at start-up.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};
use kms_backend_local::{ensure_private_dir, remove_leftover_temps, RootSecret};
use kms_core::{KeyId, SecretBytes};
use s3_object_store::ObjectStore;
use sha2::{Digest, Sha256};

use crate::auth::{Identities, RootCredentials};
use crate::buckets::BucketStore;
use crate::error::ApiError;
use crate::request::LogFields;
use crate::service::KmsService;

/// What the server is started with.
pub struct Settings {
    /// Where configuration, keys, buckets and secrets live.
    pub data_dir: PathBuf,
    /// The region requests must be signed for.
    pub region: String,
    /// A TOML file of extra identities.
    pub identities_file: Option<PathBuf>,
    /// Whether a first start configures the local backend by itself.
    pub auto_configure: bool,
    /// Root credentials from the environment, if both are set.
    pub root_credentials: Option<(String, SecretBytes)>,
    /// The root secret from the environment (`KMS_ROOT_SECRET`), if set.
    pub root_secret: Option<SecretBytes>,
}

/// What start-up has to tell the operator once.
pub struct Startup {
    /// Root credentials generated now; shown once on the terminal, never logged.
    pub generated_credentials: Option<RootCredentials>,
    /// Whether the root secret file was created now.
    pub created_root_secret: bool,
}

/// Everything a request handler needs.
pub struct AppState {
    /// The KMS lifecycle and backend.
    pub service: Arc<KmsService>,
    /// Who may call.
    pub identities: Identities,
    /// The buckets.
    pub buckets: Arc<BucketStore>,
    /// The objects and multipart uploads.
    pub objects: Arc<ObjectStore>,
    /// The region requests are signed for.
    pub region: String,
    /// The data directory.
    pub data_dir: PathBuf,
    root_access_key: String,
}

impl AppState {
    /// Opens the data directory (mode 0700): root secret, root credentials, identities, the
    /// saved configuration (or a first-start one) and the buckets.
    pub async fn open(settings: Settings) -> Result<(Self, Startup), String> {
        let data_dir = absolute(settings.data_dir)?;
        ensure_private_dir(&data_dir)
            .map_err(|e| format!("cannot use data directory {}: {e}", data_dir.display()))?;
        // A crash while saving the configuration, credentials or root secret leaves a
        // temporary file beside them; the saved files themselves are whole.
        remove_leftover_temps(&data_dir)
            .map_err(|e| format!("cleaning {}: {e}", data_dir.display()))?;
        let (root, created_root_secret) = match settings.root_secret {
            Some(text) => {
                let text = String::from_utf8(text.expose().to_vec())
                    .map_err(|_| "KMS_ROOT_SECRET is not UTF-8")?;
                (
                    RootSecret::from_text(&text).map_err(|e| e.to_string())?,
                    false,
                )
            }
            None => {
                RootSecret::load_or_create(&data_dir).map_err(|e| format!("root secret: {e}"))?
            }
        };
        let (credentials, generated) = match settings.root_credentials {
            Some((access_key, secret_key)) => (
                RootCredentials {
                    access_key,
                    secret_key,
                },
                false,
            ),
            None => RootCredentials::load_or_create(&data_dir)
                .map_err(|e| format!("root credentials: {e}"))?,
        };
        let mut identities =
            Identities::root(&credentials.access_key, credentials.secret_key.clone());
        if let Some(file) = &settings.identities_file {
            identities.add_file(file)?;
        }
        let objects = ObjectStore::open(&data_dir, root.derive("object-layout-v1"))
            .map_err(|e| format!("objects: {e}"))?;
        let service = KmsService::open(&data_dir, Arc::new(root), settings.auto_configure)
            .await
            .map_err(|e| e.to_string())?;
        let buckets =
            BucketStore::open(data_dir.join("buckets")).map_err(|e| format!("buckets: {e}"))?;
        let state = Self {
            service: Arc::new(service),
            identities,
            buckets,
            objects,
            region: settings.region,
            data_dir,
            root_access_key: credentials.access_key.clone(),
        };
        let startup = Startup {
            generated_credentials: generated.then_some(credentials),
            created_root_secret,
        };
        Ok((state, startup))
    }

    /// The configured default key.
    pub fn default_key_id(&self) -> Result<KeyId, ApiError> {
        let snapshot = self.service.snapshot();
        let config = snapshot
            .config
            .as_ref()
            .ok_or(ApiError::ServiceNotConfigured)?;
        Ok(config.default_key_id.clone())
    }

    /// The owner id shown in bucket listings: stable, derived from the root access key.
    pub fn owner_id(&self) -> String {
        hex::encode(&Sha256::digest(format!("kms-owner:{}", self.root_access_key))[..16])
    }

    /// The root access key, the owner's display name.
    pub fn root_access_key(&self) -> &str {
        &self.root_access_key
    }

    /// Writes a key lifecycle event to the audit log.
    pub fn audit(&self, req: &HttpRequest, event: &'static str, key_id: &KeyId) {
        let identity = req
            .extensions()
            .get::<LogFields>()
            .and_then(|f| f.identity.clone());
        let identity = identity.as_deref().unwrap_or("-");
        tracing::info!(target: "kms_audit", event, key_id = %key_id, identity);
    }
}

fn absolute(dir: PathBuf) -> Result<PathBuf, String> {
    std::path::absolute(&dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))
}
