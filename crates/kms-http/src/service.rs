//! The KMS service lifecycle: `NotConfigured`, `Stopped`, `Running`, `Error`; applying a
//! configuration safely; saving and restoring it; background maintenance.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kms_backend_local::{write_atomic, LocalBackend, RootSecret};
use kms_cache::{CacheSettings, CachedBackend};
use kms_core::{Backend, Error};
use serde::{Deserialize, Serialize};

use kms_backend_vault::{SecretIdSource, VaultAuth, VaultBackend, VaultSettings, VaultTls};

use crate::config::{
    BackendConfig, KmsConfig, VaultAuthConfig, VaultConfig, SECRET_ID_LABEL, TOKEN_LABEL,
};
use crate::error::ApiError;

const CONFIG_FILE: &str = "kms-config.json";
const CONFIG_FORMAT: u32 = 1;

/// Where the service is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceStatus {
    /// No configuration has been applied.
    NotConfigured,
    /// Configured, refusing key operations.
    Stopped,
    /// Configured and serving.
    Running,
    /// The saved configuration could not be applied; retried in the background.
    Error,
}

impl ServiceStatus {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConfigured => "NotConfigured",
            Self::Stopped => "Stopped",
            Self::Running => "Running",
            Self::Error => "Error",
        }
    }
}

/// One consistent view of the service: status, configuration and backend change together.
#[derive(Clone)]
pub struct Snapshot {
    /// The lifecycle state.
    pub status: ServiceStatus,
    /// The applied (or, in `Error`, the saved) configuration.
    pub config: Option<Arc<KmsConfig>>,
    /// Identifies the applied configuration; changes whenever it changes.
    pub config_id: Option<String>,
    /// The backend, present when the configuration has been applied.
    pub backend: Option<Arc<dyn Backend>>,
}

impl Snapshot {
    /// The configuration and its id; `ServiceNotConfigured` when there is none.
    fn configured(&self) -> Result<(Arc<KmsConfig>, String), ApiError> {
        let config = self.config.clone().ok_or(ApiError::ServiceNotConfigured)?;
        Ok((config, self.config_id.clone().unwrap_or_default()))
    }
}

#[derive(Serialize, Deserialize)]
struct SavedConfig {
    format: u32,
    config_id: String,
    running: bool,
    config: KmsConfig,
}

/// The service: owns the current configuration and backend, and every transition between
/// states. Transitions are serialised; readers take a [`Snapshot`] and never wait for one.
pub struct KmsService {
    data_dir: PathBuf,
    root: Arc<RootSecret>,
    current: RwLock<Arc<Snapshot>>,
    transitions: tokio::sync::Mutex<()>,
}

impl KmsService {
    /// Restores the saved configuration, or on a first start (when `auto_configure`) configures
    /// the local backend under the data directory and starts.
    pub async fn open(
        data_dir: &Path,
        root: Arc<RootSecret>,
        auto_configure: bool,
    ) -> std::io::Result<Self> {
        let service = Self {
            data_dir: data_dir.to_owned(),
            root,
            current: RwLock::new(Arc::new(Snapshot {
                status: ServiceStatus::NotConfigured,
                config: None,
                config_id: None,
                backend: None,
            })),
            transitions: tokio::sync::Mutex::new(()),
        };
        match service.load_saved()? {
            Some(saved) => {
                let status = if saved.running {
                    ServiceStatus::Running
                } else {
                    ServiceStatus::Stopped
                };
                let config = Arc::new(saved.config);
                match service.connect(&config).await {
                    Ok(backend) => {
                        service.set(status, Some(config), Some(saved.config_id), Some(backend))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the saved configuration could not be applied");
                        service.set(
                            ServiceStatus::Error,
                            Some(config),
                            Some(saved.config_id),
                            None,
                        );
                    }
                }
            }
            None if auto_configure => {
                let config = KmsConfig::first_start(data_dir);
                service
                    .configure(config, Some(ServiceStatus::Running))
                    .await
                    .map_err(|e| {
                        std::io::Error::other(format!(
                            "first-start configuration failed: {}",
                            e.message()
                        ))
                    })?;
            }
            None => {}
        }
        Ok(service)
    }

    /// The root secret, which seals the secrets of a configuration.
    pub fn root(&self) -> &RootSecret {
        &self.root
    }

    /// The current state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("service lock poisoned").clone()
    }

    /// The backend, when the service is running; the documented error otherwise.
    pub fn running_backend(&self) -> Result<Arc<dyn Backend>, ApiError> {
        let snapshot = self.snapshot();
        match (snapshot.status, &snapshot.backend) {
            (ServiceStatus::Running, Some(backend)) => Ok(backend.clone()),
            (ServiceStatus::NotConfigured, _) => Err(ApiError::ServiceNotConfigured),
            (ServiceStatus::Stopped, _) => Err(ApiError::ServiceNotRunning),
            _ => Err(ApiError::Kms(Error::BackendUnavailable {
                backend: "configured",
                reason: "the saved configuration could not be applied yet".into(),
            })),
        }
    }

    /// Applies a configuration: validates and connects to the backend first, so a failure leaves
    /// the previous configuration serving. `end_status` forces the state (reconfigure: `Running`);
    /// `None` keeps the current run state, `NotConfigured` becoming `Stopped`.
    pub async fn configure(
        &self,
        config: KmsConfig,
        end_status: Option<ServiceStatus>,
    ) -> Result<String, ApiError> {
        let _transition = self.transitions.lock().await;
        let config = Arc::new(config);
        let backend = self.connect(&config).await?;
        let status = end_status.unwrap_or(match self.snapshot().status {
            ServiceStatus::Running => ServiceStatus::Running,
            _ => ServiceStatus::Stopped,
        });
        let config_id = format!("config-{}", uuid::Uuid::new_v4().simple());
        self.save(&config, &config_id, status == ServiceStatus::Running)
            .await?;
        self.set(
            status,
            Some(config.clone()),
            Some(config_id.clone()),
            Some(backend),
        );
        tracing::info!(target: "kms_audit", event = "kms.configured", config_id = %config_id,
            backend = %config.backend.kind(), default_key_id = %config.default_key_id);
        Ok(config_id)
    }

    /// Starts the service. A no-op when running; retries the saved configuration in `Error`.
    pub async fn start(&self) -> Result<ServiceStatus, ApiError> {
        let _transition = self.transitions.lock().await;
        let snapshot = self.snapshot();
        let (config, config_id) = snapshot.configured()?;
        if snapshot.status == ServiceStatus::Running {
            return Ok(ServiceStatus::Running);
        }
        let backend = match &snapshot.backend {
            Some(backend) => {
                with_timeout(&config, backend.health_check()).await?;
                backend.clone()
            }
            None => self.connect(&config).await?,
        };
        self.save(&config, &config_id, true).await?;
        self.set(
            ServiceStatus::Running,
            Some(config),
            Some(config_id),
            Some(backend),
        );
        tracing::info!(target: "kms_audit", event = "kms.started");
        Ok(ServiceStatus::Running)
    }

    /// Stops the service; key operations answer `ServiceNotRunning` until it starts again.
    pub async fn stop(&self) -> Result<ServiceStatus, ApiError> {
        let _transition = self.transitions.lock().await;
        let snapshot = self.snapshot();
        let (config, config_id) = snapshot.configured()?;
        if snapshot.status != ServiceStatus::Stopped {
            self.save(&config, &config_id, false).await?;
            self.set(
                ServiceStatus::Stopped,
                Some(config),
                Some(config_id),
                snapshot.backend.clone(),
            );
            tracing::info!(target: "kms_audit", event = "kms.stopped");
        }
        Ok(ServiceStatus::Stopped)
    }

    /// Whether the service is running with a reachable backend.
    pub async fn healthy(&self) -> bool {
        let snapshot = self.snapshot();
        match (&snapshot.backend, &snapshot.config) {
            (Some(backend), Some(config)) if snapshot.status == ServiceStatus::Running => {
                with_timeout(config, backend.health_check()).await.is_ok()
            }
            _ => false,
        }
    }

    /// One round of background work: destroy keys past their deletion date, rotate keys due for
    /// automatic rotation, and retry a configuration stuck in `Error`.
    pub async fn maintain(&self) {
        let snapshot = self.snapshot();
        if snapshot.status == ServiceStatus::Error {
            if let Err(e) = self.start().await {
                tracing::warn!(error = %e.message(), "the saved configuration still cannot be applied");
            }
            return;
        }
        let Some(backend) = snapshot.backend.clone() else {
            return;
        };
        let now = kms_core::now();
        match kms_core::ops::sweep_deletions(backend.as_ref(), now).await {
            Ok(destroyed) => {
                for key_id in destroyed {
                    tracing::info!(target: "kms_audit", event = "key.destroyed", key_id = %key_id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "the deletion sweep failed"),
        }
        if snapshot.status == ServiceStatus::Running {
            match kms_core::ops::rotate_due_keys(backend.as_ref(), now).await {
                Ok(rotated) => {
                    for key_id in rotated {
                        tracing::info!(target: "kms_audit", event = "key.rotated", key_id = %key_id,
                            reason = "automatic");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "automatic rotation failed"),
            }
        }
    }

    /// Runs [`KmsService::maintain`] every `interval` until the process ends.
    pub fn spawn_maintenance(self: &Arc<Self>, interval: Duration) {
        let service = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                match service.upgrade() {
                    Some(service) => service.maintain().await,
                    None => return,
                }
            }
        });
    }

    async fn connect(&self, config: &KmsConfig) -> Result<Arc<dyn Backend>, ApiError> {
        let backend: Arc<dyn Backend> = match &config.backend {
            BackendConfig::Local { key_directory } => {
                let open = LocalBackend::open(key_directory.clone(), &self.root);
                Arc::new(with_timeout(config, open).await?)
            }
            BackendConfig::Vault(vault) => {
                let settings = vault_settings(vault, config, &self.root)?;
                // Connecting is a login and a few probes, each bounded by the timeout itself;
                // the outer bound only stops a connection that hangs between them.
                let bound = Duration::from_secs(config.timeout_seconds.saturating_mul(4));
                match tokio::time::timeout(bound, VaultBackend::connect(settings)).await {
                    Ok(connected) => Arc::new(connected?),
                    Err(_) => {
                        return Err(ApiError::Kms(Error::BackendUnavailable {
                            backend: "vault",
                            reason: "connecting took too long".into(),
                        }))
                    }
                }
            }
        };
        let backend: Arc<dyn Backend> = if config.enable_cache {
            let settings = CacheSettings {
                ttl: Duration::from_secs(config.cache_ttl_seconds),
                max_keys: config.cache_max_keys,
            };
            Arc::new(CachedBackend::new(backend, settings))
        } else {
            backend
        };
        with_timeout(config, backend.health_check()).await?;
        let default_key = with_timeout(
            config,
            kms_core::ops::ensure_key(backend.as_ref(), &config.default_key_id),
        )
        .await?;
        if !default_key.enabled() {
            tracing::warn!(key_id = %default_key.key_id, state = %default_key.key_state,
                "the default key is not enabled");
        }
        Ok(backend)
    }

    fn set(
        &self,
        status: ServiceStatus,
        config: Option<Arc<KmsConfig>>,
        config_id: Option<String>,
        backend: Option<Arc<dyn Backend>>,
    ) {
        let snapshot = Arc::new(Snapshot {
            status,
            config,
            config_id,
            backend,
        });
        *self.current.write().expect("service lock poisoned") = snapshot;
    }

    fn load_saved(&self) -> std::io::Result<Option<SavedConfig>> {
        let path = self.data_dir.join(CONFIG_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let saved: SavedConfig = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::other(format!("{} is damaged: {e}", path.display()))
                })?;
                if saved.format != CONFIG_FORMAT {
                    return Err(std::io::Error::other(format!(
                        "{}: unknown format",
                        path.display()
                    )));
                }
                Ok(Some(saved))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn save(
        &self,
        config: &KmsConfig,
        config_id: &str,
        running: bool,
    ) -> Result<(), ApiError> {
        let saved = SavedConfig {
            format: CONFIG_FORMAT,
            config_id: config_id.to_owned(),
            running,
            config: config.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(|_| ApiError::Internal)?;
        let path = self.data_dir.join(CONFIG_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, 0o600))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|e| {
                tracing::error!(error = %e, "saving the configuration failed");
                ApiError::Internal
            })
    }
}

/// The settings of the Vault backend, its secrets opened for the connection only.
fn vault_settings(
    vault: &VaultConfig,
    config: &KmsConfig,
    root: &RootSecret,
) -> Result<VaultSettings, ApiError> {
    let unreadable =
        |_| ApiError::invalid("the saved Vault secret cannot be opened with this root secret");
    let auth = match &vault.auth {
        VaultAuthConfig::Token { token } => {
            VaultAuth::Token(token.open(root, TOKEN_LABEL).map_err(unreadable)?)
        }
        VaultAuthConfig::TokenFile { token_file } => VaultAuth::TokenFile(token_file.clone()),
        VaultAuthConfig::AppRole {
            role_id,
            secret_id,
            secret_id_file,
        } => {
            let secret_id = match (secret_id, secret_id_file) {
                (Some(sealed), _) => {
                    SecretIdSource::Value(sealed.open(root, SECRET_ID_LABEL).map_err(unreadable)?)
                }
                (None, Some(file)) => SecretIdSource::File(file.clone()),
                (None, None) => return Err(ApiError::invalid("approle needs a secret id")),
            };
            VaultAuth::AppRole {
                role_id: role_id.clone(),
                secret_id,
            }
        }
    };
    let mut settings = VaultSettings::new(vault.address.clone(), auth);
    settings.mount_path = vault.mount_path.clone();
    settings.kv_mount = vault.kv_mount.clone();
    settings.key_path_prefix = vault.key_path_prefix.clone();
    settings.tls = vault.tls.as_ref().map(|tls| VaultTls {
        ca_cert: tls.ca_cert.clone(),
        client_cert: tls.client_cert.clone(),
        client_key: tls.client_key.clone(),
    });
    settings.timeout = Duration::from_secs(config.timeout_seconds);
    settings.retry_attempts = config.retry_attempts;
    Ok(settings)
}

/// Bounds a backend operation by the configured timeout.
async fn with_timeout<T>(
    config: &KmsConfig,
    op: impl Future<Output = kms_core::Result<T>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(Duration::from_secs(config.timeout_seconds), op).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::Kms(Error::BackendUnavailable {
            backend: config.backend.kind().as_str(),
            reason: format!("no answer within {} seconds", config.timeout_seconds),
        })),
    }
}
