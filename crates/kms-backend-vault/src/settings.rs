//! How to reach and log in to Vault: plain Rust values, validated before anything connects.

use std::path::PathBuf;
use std::time::Duration;

use kms_core::{Error, Result, SecretBytes};

/// The Transit mount used when none is configured.
pub const DEFAULT_MOUNT_PATH: &str = "transit";
/// The KV v2 mount used when none is configured.
pub const DEFAULT_KV_MOUNT: &str = "secret";
/// The folder inside the KV mount holding one metadata record per key, when none is configured.
pub const DEFAULT_KEY_PATH_PREFIX: &str = "rustfs/kms/keys";
/// How long one HTTP request to Vault may take, when nothing else is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a failed idempotent read is tried again, when nothing else is configured.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// The most retries a configuration may ask for.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// The AppRole auth method is expected at `auth/approle`.
pub const APPROLE_MOUNT: &str = "approle";

/// Everything the Vault backend needs to connect.
///
/// `Debug` shows no token and no secret id: they are [`SecretBytes`].
#[derive(Clone, Debug)]
pub struct VaultSettings {
    /// The server's base URL, `http://` or `https://`, for example `https://vault.internal:8200`.
    pub address: String,
    /// How to obtain a token.
    pub auth: VaultAuth,
    /// Where the Transit engine is mounted.
    pub mount_path: String,
    /// Where the KV version 2 engine holding key metadata is mounted.
    pub kv_mount: String,
    /// The folder inside `kv_mount` that holds one metadata record per key.
    pub key_path_prefix: String,
    /// Certificates for `https://` addresses; `None` uses the system's trust store.
    pub tls: Option<VaultTls>,
    /// How long one HTTP request may take, connecting included.
    pub timeout: Duration,
    /// How often an idempotent read that failed because Vault was unreachable is tried again.
    pub retry_attempts: u32,
}

impl VaultSettings {
    /// Settings with every optional field at its default.
    pub fn new(address: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            address: address.into(),
            auth,
            mount_path: DEFAULT_MOUNT_PATH.into(),
            kv_mount: DEFAULT_KV_MOUNT.into(),
            key_path_prefix: DEFAULT_KEY_PATH_PREFIX.into(),
            tls: None,
            timeout: DEFAULT_TIMEOUT,
            retry_attempts: DEFAULT_RETRY_ATTEMPTS,
        }
    }

    /// Checks every field that can be checked without I/O. [`crate::VaultBackend::connect`]
    /// calls this first; the HTTP layer may call it to answer 400 early.
    pub fn validate(&self) -> Result<()> {
        parse_address(&self.address)?;
        validate_path("mount_path", &self.mount_path)?;
        validate_path("kv_mount", &self.kv_mount)?;
        validate_path("key_path_prefix", &self.key_path_prefix)?;
        self.auth.validate()?;
        if let Some(tls) = &self.tls {
            tls.validate(&self.address)?;
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout must be at least one second"));
        }
        if self.retry_attempts > MAX_RETRY_ATTEMPTS {
            return Err(Error::invalid(format!(
                "retry_attempts must be between 0 and {MAX_RETRY_ATTEMPTS}"
            )));
        }
        Ok(())
    }

    /// The mount path without surrounding slashes, as it is used in request paths.
    pub(crate) fn transit_mount(&self) -> &str {
        self.mount_path.trim_matches('/')
    }

    /// The KV mount without surrounding slashes.
    pub(crate) fn kv(&self) -> &str {
        self.kv_mount.trim_matches('/')
    }

    /// The record folder without surrounding slashes.
    pub(crate) fn prefix(&self) -> &str {
        self.key_path_prefix.trim_matches('/')
    }
}

/// How the backend obtains its Vault token.
#[derive(Clone, Debug)]
pub enum VaultAuth {
    /// A token given directly.
    Token(SecretBytes),
    /// A file holding the token (for example written by an agent). It is read at connect and
    /// read again when Vault refuses the token, so a token rotated in the file is picked up.
    TokenFile(PathBuf),
    /// AppRole login at `auth/approle`. The token it yields is renewed, or the login repeated,
    /// before it expires.
    AppRole {
        /// The role id; an identifier rather than a secret.
        role_id: String,
        /// The secret id.
        secret_id: SecretIdSource,
    },
}

impl VaultAuth {
    fn validate(&self) -> Result<()> {
        match self {
            Self::Token(token) => validate_token_bytes("token", token.expose()),
            Self::TokenFile(path) => validate_file_path("token_file", path),
            Self::AppRole { role_id, secret_id } => {
                if role_id.is_empty() || role_id.chars().any(char::is_control) {
                    return Err(Error::invalid(
                        "approle role_id must be non-empty text without control characters",
                    ));
                }
                match secret_id {
                    SecretIdSource::Value(value) => {
                        validate_token_bytes("approle secret_id", value.expose())
                    }
                    SecretIdSource::File(path) => validate_file_path("secret_id_file", path),
                }
            }
        }
    }

    /// The configuration's name of the method, for messages.
    pub fn method_name(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::TokenFile(_) => "token_file",
            Self::AppRole { .. } => "approle",
        }
    }
}

/// Where an AppRole secret id comes from.
#[derive(Clone, Debug)]
pub enum SecretIdSource {
    /// The secret id itself.
    Value(SecretBytes),
    /// A file holding the secret id, read at every login.
    File(PathBuf),
}

/// Certificate files for talking to Vault over TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultTls {
    /// A PEM bundle of CA certificates to trust in addition to the system's.
    pub ca_cert: Option<PathBuf>,
    /// A PEM client certificate, for Vault's TLS client authentication; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

impl VaultTls {
    fn validate(&self, address: &str) -> Result<()> {
        if !address.starts_with("https://") {
            return Err(Error::invalid("tls applies to https:// addresses only"));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(Error::invalid(
                "tls client_cert and client_key must be given together",
            ));
        }
        for (name, path) in [
            ("tls ca_cert", &self.ca_cert),
            ("tls client_cert", &self.client_cert),
            ("tls client_key", &self.client_key),
        ] {
            if let Some(path) = path {
                validate_file_path(name, path)?;
            }
        }
        Ok(())
    }
}

/// Parses the server address: `http` or `https`, a host, no credentials, query or fragment.
pub(crate) fn parse_address(address: &str) -> Result<url::Url> {
    let bad = |why: &str| Error::invalid(format!("vault address {why}"));
    let url = url::Url::parse(address).map_err(|_| bad("is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(bad(
            "must be a bare server URL without path, query or fragment",
        ));
    }
    Ok(url)
}

/// Mount paths and the key prefix: segments of `A-Z a-z 0-9 _ . -` separated by `/`, no empty,
/// `.` or `..` segment once surrounding slashes are removed. They end up in request paths
/// unescaped, so nothing else is allowed.
fn validate_path(name: &str, value: &str) -> Result<()> {
    let trimmed = value.trim_matches('/');
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    if trimmed.is_empty() || !trimmed.split('/').all(segment_ok) {
        return Err(Error::invalid(format!(
            "{name} must be a path of A-Z, a-z, 0-9, '_', '.' and '-' segments"
        )));
    }
    Ok(())
}

fn validate_file_path(name: &str, path: &std::path::Path) -> Result<()> {
    if !path.is_absolute() {
        return Err(Error::invalid(format!("{name} must be an absolute path")));
    }
    Ok(())
}

/// Tokens and secret ids travel in HTTP headers and JSON: visible ASCII only. Checked here so a
/// bad value is a clean error rather than a failure deep inside the HTTP client.
pub(crate) fn validate_token_bytes(name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(Error::invalid(format!(
            "{name} must be non-empty visible ASCII"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> VaultAuth {
        VaultAuth::Token(SecretBytes::new(b"hvs.secret-token-value".to_vec()))
    }

    fn settings() -> VaultSettings {
        VaultSettings::new("https://vault.example:8200", token())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = settings();
        assert_eq!(
            (
                s.mount_path.as_str(),
                s.kv_mount.as_str(),
                s.key_path_prefix.as_str()
            ),
            ("transit", "secret", "rustfs/kms/keys")
        );
        assert_eq!((s.timeout, s.retry_attempts), (Duration::from_secs(30), 3));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn debug_shows_no_token_or_secret_id() {
        let mut s = settings();
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret-token-value"), "{shown}");
        s.auth = VaultAuth::AppRole {
            role_id: "role".into(),
            secret_id: SecretIdSource::Value(SecretBytes::new(b"sid-very-secret".to_vec())),
        };
        let shown = format!("{s:#?}");
        assert!(!shown.contains("sid-very-secret"), "{shown}");
    }

    #[test]
    fn addresses_must_be_bare_http_urls() {
        for good in [
            "http://127.0.0.1:8200",
            "https://vault.example",
            "https://v:1/",
        ] {
            assert!(parse_address(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "vault:8200",
            "ftp://vault",
            "http://user:pw@vault",
            "http://vault/v1",
            "http://vault?x=1",
            "http://",
            "http://:8200",
        ] {
            assert!(parse_address(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn mounts_and_prefixes_are_plain_path_segments() {
        for good in ["transit", "/transit/", "kms/transit", "a.b_c-d"] {
            assert!(validate_path("mount_path", good).is_ok(), "{good}");
        }
        for bad in ["", "/", "a//b", "../x", "a/./b", "a b", "a?b", "a%2f", "é"] {
            assert!(
                validate_path("mount_path", bad).is_err(),
                "{bad} was accepted"
            );
        }
        let mut s = settings();
        s.key_path_prefix = "/rustfs/kms/keys/".into();
        assert_eq!(s.prefix(), "rustfs/kms/keys");
    }

    #[test]
    fn tokens_must_be_header_safe() {
        assert!(validate_token_bytes("token", b"s.abc-DEF_123").is_ok());
        for bad in [&b""[..], b"a b", b"a\nb", b"\xff"] {
            assert!(validate_token_bytes("token", bad).is_err());
        }
        let mut s = settings();
        s.auth = VaultAuth::Token(SecretBytes::new(b"line\n".to_vec()));
        let err = s.validate().unwrap_err().to_string();
        assert!(
            !err.contains("line"),
            "the message must not echo the token: {err}"
        );
    }

    #[test]
    fn tls_needs_https_and_both_client_halves() {
        let mut s = settings();
        s.tls = Some(VaultTls {
            client_cert: Some("/etc/c.pem".into()),
            ..VaultTls::default()
        });
        assert!(s.validate().is_err());
        s.tls = Some(VaultTls {
            ca_cert: Some("/etc/ca.pem".into()),
            client_cert: Some("/etc/c.pem".into()),
            client_key: Some("/etc/k.pem".into()),
        });
        assert!(s.validate().is_ok());
        s.address = "http://vault:8200".into();
        assert!(s.validate().is_err());
        s.address = "https://vault:8200".into();
        s.tls = Some(VaultTls {
            ca_cert: Some("relative.pem".into()),
            ..VaultTls::default()
        });
        assert!(s.validate().is_err());
    }

    #[test]
    fn retries_and_timeouts_are_bounded() {
        let mut s = settings();
        s.retry_attempts = 11;
        assert!(s.validate().is_err());
        s.retry_attempts = 0;
        s.timeout = Duration::ZERO;
        assert!(s.validate().is_err());
    }
}
