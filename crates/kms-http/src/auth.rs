//! Who is calling and what they may do: root and file-defined identities, their actions, and the
//! SigV4 check that ties a request to one of them.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use crate::sigv4::AuthError;
pub use kms_core::SecretBytes;

/// An action a request needs. The guide's single `ServerInfoAdminAction` is split so that a
/// read-only monitoring account cannot mint data keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Status, configuration, key listing and description.
    ServerInfo,
    /// Configure, reconfigure, start, stop, clear the cache.
    Configure,
    /// Create keys.
    CreateKey,
    /// Enable, disable, rotate, rotation settings.
    ManageKey,
    /// Schedule and cancel deletion.
    DeleteKey,
    /// Generate data keys.
    GenerateDataKey,
    /// Decrypt ciphertext blobs.
    Decrypt,
    /// List buckets.
    ListAllMyBuckets,
    /// Create buckets.
    CreateBucket,
    /// Delete buckets.
    DeleteBucket,
    /// Head a bucket, list its objects.
    ListBucket,
    /// Read bucket default encryption.
    GetEncryptionConfiguration,
    /// Write or delete bucket default encryption.
    PutEncryptionConfiguration,
    /// Write objects: PutObject, CopyObject's destination, multipart create/upload/complete.
    PutObject,
    /// Read objects: GetObject, HeadObject, CopyObject's source.
    GetObject,
    /// Delete objects (DeleteObject, DeleteObjects).
    DeleteObject,
    /// Abort multipart uploads.
    AbortMultipartUpload,
    /// List the parts of an upload.
    ListMultipartUploadParts,
    /// List a bucket's uploads in progress.
    ListBucketMultipartUploads,
}

impl Action {
    const ALL: [Action; 19] = [
        Self::ServerInfo,
        Self::Configure,
        Self::CreateKey,
        Self::ManageKey,
        Self::DeleteKey,
        Self::GenerateDataKey,
        Self::Decrypt,
        Self::ListAllMyBuckets,
        Self::CreateBucket,
        Self::DeleteBucket,
        Self::ListBucket,
        Self::GetEncryptionConfiguration,
        Self::PutEncryptionConfiguration,
        Self::PutObject,
        Self::GetObject,
        Self::DeleteObject,
        Self::AbortMultipartUpload,
        Self::ListMultipartUploadParts,
        Self::ListBucketMultipartUploads,
    ];

    /// The action's name in identity files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::ServerInfo => "admin:ServerInfo",
            Self::Configure => "kms:Configure",
            Self::CreateKey => "kms:CreateKey",
            Self::ManageKey => "kms:ManageKey",
            Self::DeleteKey => "kms:DeleteKey",
            Self::GenerateDataKey => "kms:GenerateDataKey",
            Self::Decrypt => "kms:Decrypt",
            Self::ListAllMyBuckets => "s3:ListAllMyBuckets",
            Self::CreateBucket => "s3:CreateBucket",
            Self::DeleteBucket => "s3:DeleteBucket",
            Self::ListBucket => "s3:ListBucket",
            Self::GetEncryptionConfiguration => "s3:GetEncryptionConfiguration",
            Self::PutEncryptionConfiguration => "s3:PutEncryptionConfiguration",
            Self::PutObject => "s3:PutObject",
            Self::GetObject => "s3:GetObject",
            Self::DeleteObject => "s3:DeleteObject",
            Self::AbortMultipartUpload => "s3:AbortMultipartUpload",
            Self::ListMultipartUploadParts => "s3:ListMultipartUploadParts",
            Self::ListBucketMultipartUploads => "s3:ListBucketMultipartUploads",
        }
    }
}

/// A grant in an identity file: an action name, `prefix:*` or `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant(String);

impl Grant {
    fn parse(text: &str) -> Result<Self, String> {
        let known = text == "*"
            || ["admin:*", "kms:*", "s3:*"].contains(&text)
            || Action::ALL.iter().any(|a| a.name() == text);
        if known {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!("unknown action '{}'", text.escape_debug()))
        }
    }

    fn allows(&self, action: Action) -> bool {
        let name = action.name();
        match self.0.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.0 == name,
        }
    }
}

/// One caller: an access key, its secret and its grants.
pub struct Identity {
    access_key: String,
    secret_key: SecretBytes,
    grants: Vec<Grant>,
}

impl Identity {
    /// The access key, which is how the caller is named in logs.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Whether this identity may perform the action.
    pub fn allows(&self, action: Action) -> bool {
        self.grants.iter().any(|g| g.allows(action))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Every identity the server knows.
#[derive(Debug)]
pub struct Identities {
    by_access_key: HashMap<String, Identity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    access_key: String,
    secret_key: String,
    actions: Vec<String>,
}

impl Identities {
    /// The root identity alone; it may do everything.
    pub fn root(access_key: &str, secret_key: SecretBytes) -> Self {
        let root = Identity {
            access_key: access_key.to_owned(),
            secret_key,
            grants: vec![Grant("*".into())],
        };
        Self {
            by_access_key: HashMap::from([(access_key.to_owned(), root)]),
        }
    }

    /// Adds the users of a TOML identity file (`[[user]]` with `access_key`, `secret_key`,
    /// `actions`). An unknown action or a repeated access key is an error.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read identity file {}: {e}", path.display()))?;
        self.add_toml(&text)
            .map_err(|e| format!("identity file {}: {e}", path.display()))
    }

    fn add_toml(&mut self, text: &str) -> Result<(), String> {
        let file: IdentityFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        for user in file.user {
            if user.access_key.is_empty() || user.secret_key.len() < 8 {
                return Err(
                    "access_key must be set and secret_key have 8 characters or more".into(),
                );
            }
            let grants = user
                .actions
                .iter()
                .map(|a| Grant::parse(a))
                .collect::<Result<_, _>>()?;
            if self.by_access_key.contains_key(&user.access_key) {
                return Err(format!("access key '{}' is defined twice", user.access_key));
            }
            let identity = Identity {
                access_key: user.access_key.clone(),
                secret_key: SecretBytes::new(user.secret_key.into_bytes()),
                grants,
            };
            self.by_access_key.insert(user.access_key, identity);
        }
        Ok(())
    }

    /// The identity with this access key.
    pub fn get(&self, access_key: &str) -> Option<&Identity> {
        self.by_access_key.get(access_key)
    }

    /// The secret of an access key, for signature verification.
    pub fn secret_of(&self, access_key: &str) -> Option<SecretBytes> {
        self.get(access_key).map(|i| i.secret_key.clone())
    }
}

/// The root user's credentials: from `KMS_ACCESS_KEY`/`KMS_SECRET_KEY`, or generated once and
/// kept in `credentials.toml` (mode 0600) in the data directory.
pub struct RootCredentials {
    /// The access key.
    pub access_key: String,
    /// The secret key.
    pub secret_key: SecretBytes,
}

#[derive(Deserialize)]
struct StoredCredentials {
    access_key: String,
    secret_key: String,
}

impl RootCredentials {
    /// Loads the stored credentials, or generates and stores them. Returns whether they were
    /// generated now, so the caller can show them once.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<(Self, bool)> {
        let path = data_dir.join("credentials.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let stored: StoredCredentials = toml::from_str(&text).map_err(|e| {
                    std::io::Error::other(format!("{}: {}", path.display(), e.message()))
                })?;
                let secret_key = SecretBytes::new(stored.secret_key.into_bytes());
                Ok((
                    Self {
                        access_key: stored.access_key,
                        secret_key,
                    },
                    false,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let access_key = format!("kms{}", &random_token(17).to_ascii_uppercase());
                let secret = random_token(40);
                let text = format!("access_key = \"{access_key}\"\nsecret_key = \"{secret}\"\n");
                kms_backend_local::write_atomic(&path, text.as_bytes(), 0o600)?;
                let secret_key = SecretBytes::new(secret.into_bytes());
                Ok((
                    Self {
                        access_key,
                        secret_key,
                    },
                    true,
                ))
            }
            Err(e) => Err(e),
        }
    }
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    SecretBytes::random(len)
        .expose()
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities(toml: &str) -> Result<Identities, String> {
        let mut ids = Identities::root("root", SecretBytes::new(b"rootsecret".to_vec()));
        ids.add_toml(toml)?;
        Ok(ids)
    }

    #[test]
    fn grants_allow_exact_actions_and_prefixes() {
        let ids = identities(
            r#"
            [[user]]
            access_key = "monitor"
            secret_key = "monitor-secret"
            actions = ["admin:ServerInfo"]

            [[user]]
            access_key = "app"
            secret_key = "app-secret"
            actions = ["kms:*"]
            "#,
        )
        .unwrap();
        let monitor = ids.get("monitor").unwrap();
        assert!(monitor.allows(Action::ServerInfo));
        assert!(!monitor.allows(Action::GenerateDataKey));
        let app = ids.get("app").unwrap();
        assert!(app.allows(Action::GenerateDataKey) && app.allows(Action::Decrypt));
        assert!(!app.allows(Action::ServerInfo) && !app.allows(Action::CreateBucket));
        assert!(ids
            .get("root")
            .unwrap()
            .allows(Action::PutEncryptionConfiguration));
    }

    #[test]
    fn unknown_actions_and_duplicate_keys_are_refused() {
        let unknown = "[[user]]\naccess_key='a'\nsecret_key='12345678'\nactions=['kms:Everything']";
        assert!(identities(unknown).unwrap_err().contains("unknown action"));
        let duplicate = "[[user]]\naccess_key='root'\nsecret_key='12345678'\nactions=['*']";
        assert!(identities(duplicate).unwrap_err().contains("twice"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let ids = identities("").unwrap();
        assert!(!format!("{ids:?}").contains("rootsecret"));
    }

    #[test]
    fn root_credentials_are_generated_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = RootCredentials::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (second, created) = RootCredentials::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.access_key, second.access_key);
        assert_eq!(first.secret_key, second.secret_key);
        let meta = std::fs::metadata(dir.path().join("credentials.toml")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
