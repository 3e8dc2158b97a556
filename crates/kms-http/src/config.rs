//! The KMS configuration: the `configure` body parsed into a validated [`KmsConfig`], and the
//! form it is saved in.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kms_backend_local::RootSecret;
use kms_core::{KeyId, SecretBytes};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsConfig {
    /// Where master keys live.
    pub backend: BackendConfig,
    /// The key used when a request names none (SSE-S3, `generate-data-key` without `key_id`).
    pub default_key_id: KeyId,
    /// Whether loaded keys are cached.
    pub enable_cache: bool,
    /// How long a cached key stays.
    pub cache_ttl_seconds: u64,
    /// How many keys the cache holds at most.
    pub cache_max_keys: u64,
    /// How long one backend operation may take (1 to 300).
    pub timeout_seconds: u64,
    /// How often an idempotent backend call is retried (0 to 10).
    pub retry_attempts: u32,
}

/// The backend part of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend_type", rename_all = "lowercase")]
pub enum BackendConfig {
    /// Files in a directory.
    Local {
        /// An absolute path.
        key_directory: PathBuf,
    },
    /// HashiCorp Vault or OpenBao.
    Vault(Box<VaultConfig>),
}

impl BackendConfig {
    /// `local` or `vault`.
    pub fn kind(&self) -> kms_core::BackendKind {
        match self {
            Self::Local { .. } => kms_core::BackendKind::Local,
            Self::Vault(_) => kms_core::BackendKind::Vault,
        }
    }
}

/// Where Vault is and how to log in. Secrets are held sealed under the root secret from the
/// moment the request is parsed, so neither memory snapshots of the configuration nor the saved
/// file hold them in clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultConfig {
    /// `http://` or `https://` address.
    pub address: String,
    /// How to obtain a token.
    pub auth: VaultAuthConfig,
    /// The Transit mount.
    pub mount_path: String,
    /// The KV v2 mount.
    pub kv_mount: String,
    /// Where key metadata lives in the KV mount.
    pub key_path_prefix: String,
    /// Certificates for https.
    pub tls: Option<TlsConfig>,
}

/// The Vault login method of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultAuthConfig {
    /// A token, sealed.
    Token {
        /// The token.
        token: SealedSecret,
    },
    /// A file holding the token.
    TokenFile {
        /// The file.
        token_file: PathBuf,
    },
    /// AppRole.
    AppRole {
        /// The role id.
        role_id: String,
        /// The secret id, sealed.
        secret_id: Option<SealedSecret>,
        /// Or a file holding it.
        secret_id_file: Option<PathBuf>,
    },
}

/// Certificate files for https.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle to trust.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate.
    pub client_cert: Option<PathBuf>,
    /// Client key.
    pub client_key: Option<PathBuf>,
}

/// A secret sealed under the root secret with a label naming its field: what the saved
/// configuration holds instead of a token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// Seals a secret for the field `label`.
    pub fn seal(root: &RootSecret, label: &str, secret: &[u8]) -> Self {
        Self(STANDARD.encode(root.seal(label, secret)))
    }

    /// Opens it again; fails when the root secret or the label differ.
    pub fn open(&self, root: &RootSecret, label: &str) -> kms_core::Result<SecretBytes> {
        let sealed = STANDARD
            .decode(&self.0)
            .map_err(|_| kms_core::Error::DecryptionFailed)?;
        root.open(label, &sealed)
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(..)")
    }
}

/// The label a Vault token is sealed under.
pub const TOKEN_LABEL: &str = "vault.auth.token";
/// The label an AppRole secret id is sealed under.
pub const SECRET_ID_LABEL: &str = "vault.auth.approle.secret_id";

impl KmsConfig {
    /// The configuration of a first start: the local backend under the data directory.
    pub fn first_start(data_dir: &Path) -> Self {
        Self {
            backend: BackendConfig::Local {
                key_directory: data_dir.join("keys"),
            },
            default_key_id: KeyId::parse_default("default-master-key").expect("valid id"),
            enable_cache: true,
            cache_ttl_seconds: 600,
            cache_max_keys: 1000,
            timeout_seconds: 30,
            retry_attempts: 3,
        }
    }
}

/// The body of `configure` and `reconfigure`, as the guide spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureBody {
    backend_type: Option<String>,
    default_key_id: Option<String>,
    enable_cache: Option<bool>,
    cache_ttl_seconds: Option<u64>,
    cache_max_keys: Option<u64>,
    timeout_seconds: Option<u64>,
    retry_attempts: Option<u64>,
    key_directory: Option<String>,
    address: Option<String>,
    auth_method: Option<AuthMethodBody>,
    mount_path: Option<String>,
    kv_mount: Option<String>,
    key_path_prefix: Option<String>,
    tls: Option<TlsConfig>,
}

/// `auth_method`: exactly one of `token`, `token_file`, `approle`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthMethodBody {
    token: Option<String>,
    token_file: Option<String>,
    approle: Option<AppRoleBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRoleBody {
    role_id: String,
    secret_id: Option<String>,
    secret_id_file: Option<String>,
}

fn absolute_path(name: &str, text: &str) -> Result<PathBuf, ApiError> {
    if Path::new(text).is_absolute() && !text.contains('\0') {
        Ok(text.into())
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be an absolute path"
        )))
    }
}

fn mount_name(name: &str, value: Option<String>, default: &str) -> Result<String, ApiError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    let trimmed = value.trim_matches('/');
    let valid = !trimmed.is_empty()
        && trimmed.split('/').all(|seg| {
            !seg.is_empty()
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be a path of letters, digits, '-', '_' and '.'"
        )))
    }
}

impl AuthMethodBody {
    fn validate(self, root: &RootSecret) -> Result<VaultAuthConfig, ApiError> {
        match (self.token, self.token_file, self.approle) {
            (Some(token), None, None) => {
                if token.is_empty() || token.chars().any(char::is_control) {
                    return Err(ApiError::invalid(
                        "auth_method.token must be non-empty text",
                    ));
                }
                Ok(VaultAuthConfig::Token {
                    token: SealedSecret::seal(root, TOKEN_LABEL, token.as_bytes()),
                })
            }
            (None, Some(file), None) => Ok(VaultAuthConfig::TokenFile {
                token_file: absolute_path("auth_method.token_file", &file)?,
            }),
            (None, None, Some(approle)) => {
                if approle.role_id.is_empty() {
                    return Err(ApiError::invalid(
                        "auth_method.approle.role_id must not be empty",
                    ));
                }
                let (secret_id, secret_id_file) =
                    match (approle.secret_id, approle.secret_id_file) {
                        (Some(secret), None) if !secret.is_empty() => (
                            Some(SealedSecret::seal(root, SECRET_ID_LABEL, secret.as_bytes())),
                            None,
                        ),
                        (None, Some(file)) => (
                            None,
                            Some(absolute_path("auth_method.approle.secret_id_file", &file)?),
                        ),
                        _ => return Err(ApiError::invalid(
                            "auth_method.approle needs exactly one of secret_id and secret_id_file",
                        )),
                    };
                Ok(VaultAuthConfig::AppRole {
                    role_id: approle.role_id,
                    secret_id,
                    secret_id_file,
                })
            }
            _ => Err(ApiError::invalid(
                "auth_method needs exactly one of token, token_file and approle",
            )),
        }
    }
}

fn in_range(
    name: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be between {min} and {max}"
        )))
    }
}

impl ConfigureBody {
    /// Validates everything; the data directory gives the default key directory, the root
    /// secret seals the Vault secrets at once.
    pub fn validate(self, data_dir: &Path, root: &RootSecret) -> Result<KmsConfig, ApiError> {
        let default_key_id = self
            .default_key_id
            .as_deref()
            .ok_or_else(|| ApiError::invalid("default_key_id is required"))
            .and_then(|id| KeyId::parse_default(id).map_err(ApiError::from))?;
        let backend = match self.backend_type.as_deref() {
            None => return Err(ApiError::invalid("backend_type is required")),
            Some("local") => {
                let vault_only = [
                    ("address", self.address.is_some()),
                    ("auth_method", self.auth_method.is_some()),
                    ("mount_path", self.mount_path.is_some()),
                    ("kv_mount", self.kv_mount.is_some()),
                    ("key_path_prefix", self.key_path_prefix.is_some()),
                    ("tls", self.tls.is_some()),
                ];
                if let Some((name, _)) = vault_only.iter().find(|(_, given)| *given) {
                    return Err(ApiError::invalid(format!(
                        "{name} applies to backend_type 'vault' only"
                    )));
                }
                let key_directory = match self.key_directory {
                    None => data_dir.join("keys"),
                    Some(dir) if Path::new(&dir).is_absolute() && !dir.contains('\0') => dir.into(),
                    Some(_) => {
                        return Err(ApiError::invalid("key_directory must be an absolute path"))
                    }
                };
                BackendConfig::Local { key_directory }
            }
            Some("vault") => {
                if self.key_directory.is_some() {
                    return Err(ApiError::invalid(
                        "key_directory applies to backend_type 'local' only",
                    ));
                }
                let address = self
                    .address
                    .ok_or_else(|| ApiError::invalid("address is required for vault"))?;
                let valid_address = (address.starts_with("http://")
                    || address.starts_with("https://"))
                    && !address.chars().any(|c| c.is_control() || c.is_whitespace());
                if !valid_address {
                    return Err(ApiError::invalid(
                        "address must be an http:// or https:// URL",
                    ));
                }
                if self.tls.is_some() && !address.starts_with("https://") {
                    return Err(ApiError::invalid("tls applies to https:// addresses only"));
                }
                let id = default_key_id.as_str();
                let edge =
                    |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                if !edge(id.chars().next()) || !edge(id.chars().last()) {
                    return Err(ApiError::invalid(
                        "with vault, default_key_id must start and end with a letter, digit or '_' (a Transit key name)",
                    ));
                }
                let auth = self
                    .auth_method
                    .ok_or_else(|| ApiError::invalid("auth_method is required for vault"))?
                    .validate(root)?;
                BackendConfig::Vault(Box::new(VaultConfig {
                    address,
                    auth,
                    mount_path: mount_name("mount_path", self.mount_path, "transit")?,
                    kv_mount: mount_name("kv_mount", self.kv_mount, "secret")?,
                    key_path_prefix: mount_name(
                        "key_path_prefix",
                        self.key_path_prefix,
                        "rustfs/kms/keys",
                    )?,
                    tls: self.tls,
                }))
            }
            Some(_) => return Err(ApiError::invalid("backend_type must be 'local' or 'vault'")),
        };
        Ok(KmsConfig {
            backend,
            default_key_id,
            enable_cache: self.enable_cache.unwrap_or(true),
            cache_ttl_seconds: in_range(
                "cache_ttl_seconds",
                self.cache_ttl_seconds,
                600,
                1,
                86_400,
            )?,
            cache_max_keys: in_range("cache_max_keys", self.cache_max_keys, 1000, 1, 1_000_000)?,
            timeout_seconds: in_range("timeout_seconds", self.timeout_seconds, 30, 1, 300)?,
            retry_attempts: in_range("retry_attempts", self.retry_attempts, 3, 0, 10)? as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<KmsConfig, ApiError> {
        let root = RootSecret::from_text(&"r".repeat(32)).unwrap();
        serde_json::from_value::<ConfigureBody>(json)
            .map_err(|e| ApiError::invalid(e.to_string()))?
            .validate(Path::new("/data"), &root)
    }

    #[test]
    fn the_guides_local_example_is_accepted_with_defaults() {
        let config = parse(serde_json::json!({
            "backend_type": "local",
            "key_directory": "/var/lib/rustfs/kms/keys",
            "default_key_id": "default-master-key",
            "enable_cache": true,
            "cache_ttl_seconds": 600
        }))
        .unwrap();
        assert_eq!(config.timeout_seconds, 30);
        assert_eq!(config.retry_attempts, 3);
        assert_eq!(config.cache_max_keys, 1000);
    }

    #[test]
    fn out_of_range_and_missing_values_are_refused() {
        let base = serde_json::json!({"backend_type": "local", "default_key_id": "k"});
        for (field, value) in [
            ("timeout_seconds", 0),
            ("timeout_seconds", 301),
            ("retry_attempts", 11),
        ] {
            let mut body = base.clone();
            body[field] = value.into();
            assert!(parse(body).is_err(), "{field}={value}");
        }
        assert!(parse(serde_json::json!({"backend_type": "local"})).is_err());
        assert!(parse(serde_json::json!({"default_key_id": "k"})).is_err());
        let relative = serde_json::json!({"backend_type": "local", "default_key_id": "k", "key_directory": "keys"});
        assert!(parse(relative).is_err());
        let bad_id = serde_json::json!({"backend_type": "local", "default_key_id": "a/b"});
        assert!(parse(bad_id).is_err());
    }

    #[test]
    fn vault_tokens_are_sealed_at_once_and_never_shown() {
        let config = parse(serde_json::json!({
            "backend_type": "vault",
            "address": "http://127.0.0.1:8200",
            "auth_method": {"token": "s.very-secret-token"},
            "default_key_id": "rustfs-master"
        }))
        .unwrap();
        let saved = serde_json::to_string(&config).unwrap();
        assert!(!saved.contains("very-secret"), "{saved}");
        assert!(!format!("{config:?}").contains("very-secret"));
        let BackendConfig::Vault(vault) = &config.backend else {
            panic!("not vault")
        };
        assert_eq!(
            (vault.mount_path.as_str(), vault.kv_mount.as_str()),
            ("transit", "secret")
        );
        let VaultAuthConfig::Token { token } = &vault.auth else {
            panic!("not a token")
        };
        let root = RootSecret::from_text(&"r".repeat(32)).unwrap();
        assert_eq!(
            token.open(&root, TOKEN_LABEL).unwrap().expose(),
            b"s.very-secret-token"
        );
        let reloaded: KmsConfig = serde_json::from_str(&saved).unwrap();
        assert_eq!(reloaded, config);
    }

    #[test]
    fn vault_configurations_are_validated() {
        let base = serde_json::json!({"backend_type": "vault", "default_key_id": "k",
            "address": "http://127.0.0.1:8200", "auth_method": {"token": "t"}});
        assert!(parse(base.clone()).is_ok());
        let broken = [
            ("address", serde_json::json!("ftp://x")),
            ("address", serde_json::Value::Null),
            ("auth_method", serde_json::json!({})),
            (
                "auth_method",
                serde_json::json!({"token": "t", "token_file": "/t"}),
            ),
            ("auth_method", serde_json::json!({"token_file": "relative"})),
            (
                "auth_method",
                serde_json::json!({"approle": {"role_id": "r"}}),
            ),
            ("auth_method", serde_json::json!({"userpass": {}})),
            ("mount_path", serde_json::json!("../sys")),
            ("key_directory", serde_json::json!("/keys")),
            ("tls", serde_json::json!({"ca_cert": "/ca.pem"})),
        ];
        for (field, value) in broken {
            let mut body = base.clone();
            body[field] = value.clone();
            assert!(parse(body).is_err(), "{field}={value}");
        }
        let mut approle = base.clone();
        approle["auth_method"] =
            serde_json::json!({"approle": {"role_id": "r", "secret_id_file": "/s"}});
        assert!(parse(approle).is_ok());
    }
}
