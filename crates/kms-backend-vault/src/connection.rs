//! One logged-in connection to Vault: the HTTP client, the token and its renewal, retries.
//!
//! Every request goes through [`Connection::run`], which hands the current client to the request,
//! renews an AppRole token that is due, logs in again once when Vault refuses the token, and
//! retries idempotent reads that failed because Vault could not answer.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kms_core::{Error, Result, SecretBytes};
use tokio::sync::Mutex;
use vaultrs::client::{Identity, VaultClient, VaultClientSettings, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use crate::error::Failure;
use crate::settings::{
    parse_address, validate_token_bytes, SecretIdSource, VaultAuth, VaultSettings, APPROLE_MOUNT,
};

/// Whether a request may be sent again after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// Changes nothing in Vault (reads, listings, Transit decryption): retried with backoff.
    Read,
    /// Changes something, or must report the present state (health): sent once.
    Once,
}

/// An AppRole token is renewed when this share of its lifetime has passed.
const RENEW_AT_SHARE: (u32, u32) = (2, 3);
/// Backoff before retry `n` (0-based) is `BASE << n`, capped, plus up to half again of jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// A token and what is known of its lifetime.
struct Session {
    client: Arc<VaultClient>,
    /// Counts logins, so that concurrent requests refused with one token log in only once.
    generation: u64,
    /// The lease, for tokens this backend obtained itself (AppRole); `None` for tokens the
    /// operator gave, which are theirs to renew.
    lease: Option<Lease>,
}

#[derive(Clone, Copy)]
struct Lease {
    ttl: Duration,
    renewable: bool,
    obtained: Instant,
}

impl Lease {
    fn renew_due(&self, now: Instant) -> bool {
        let (num, den) = RENEW_AT_SHARE;
        now >= self.obtained + self.ttl * num / den
    }

    fn expired(&self, now: Instant) -> bool {
        now >= self.obtained + self.ttl
    }
}

/// A connection to one Vault server with one identity.
pub(crate) struct Connection {
    settings: VaultSettings,
    /// Client settings without a token, the template of every session's client.
    template: VaultClientSettings,
    session: RwLock<Arc<Session>>,
    /// Serialises logins and renewals.
    login: Mutex<()>,
}

impl Connection {
    /// Builds the HTTP client and logs in. Nothing in Vault is changed.
    pub(crate) async fn open(settings: VaultSettings) -> Result<Self> {
        settings.validate()?;
        let template = client_template(&settings).await?;
        let (client, lease) = authenticate(&settings, &template).await?;
        let session = Session {
            client: Arc::new(client),
            generation: 0,
            lease,
        };
        Ok(Self {
            settings,
            template,
            session: RwLock::new(Arc::new(session)),
            login: Mutex::new(()),
        })
    }

    pub(crate) fn settings(&self) -> &VaultSettings {
        &self.settings
    }

    /// Sends a request built by `request` with the current client.
    pub(crate) async fn run<T, F, Fut>(&self, call: Call, request: F) -> Result<T, Failure>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut retries = 0;
        let mut logged_in_again = false;
        loop {
            let session = self.session().await;
            let failure = match request(session.client.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => Failure::from_client(e),
            };
            if failure.is_forbidden() && !logged_in_again && self.can_log_in_again() {
                logged_in_again = true;
                self.log_in_again(session.generation).await?;
                continue;
            }
            if call == Call::Read
                && failure.is_transient()
                && retries < self.settings.retry_attempts
            {
                tracing::debug!(retry = retries + 1, %failure, "vault request failed, retrying");
                tokio::time::sleep(backoff(retries)).await;
                retries += 1;
                continue;
            }
            return Err(failure);
        }
    }

    fn current(&self) -> Arc<Session> {
        self.session.read().expect("session lock poisoned").clone()
    }

    fn replace(&self, session: Session) -> Arc<Session> {
        let session = Arc::new(session);
        *self.session.write().expect("session lock poisoned") = session.clone();
        session
    }

    /// The current session, its AppRole token renewed first when that is due. When renewal
    /// fails but the token is still valid, the token is used and renewal tried again next time.
    async fn session(&self) -> Arc<Session> {
        let current = self.current();
        match current.lease {
            Some(lease) if lease.renew_due(Instant::now()) => {}
            _ => return current,
        }
        let _login = self.login.lock().await;
        let current = self.current();
        let Some(lease) = current.lease.filter(|l| l.renew_due(Instant::now())) else {
            return current;
        };
        match self.refresh(&current, lease).await {
            Ok(session) => self.replace(session),
            Err(e) => {
                tracing::warn!(error = %e, "renewing the vault token failed");
                current
            }
        }
    }

    /// Renews the token when Vault allows a useful renewal, else logs in again.
    async fn refresh(&self, current: &Session, lease: Lease) -> Result<Session> {
        let still_valid = !lease.expired(Instant::now());
        if lease.renewable && still_valid {
            let increment = format!("{}s", lease.ttl.as_secs());
            match vaultrs::token::renew_self(&*current.client, Some(&increment)).await {
                // Near the token's maximum lifetime Vault grants less than asked; then a fresh
                // login is better than renewing ever more often.
                Ok(auth) if Duration::from_secs(auth.lease_duration) * 2 >= lease.ttl => {
                    tracing::debug!("renewed the vault token");
                    return Ok(Session {
                        client: current.client.clone(),
                        generation: current.generation,
                        lease: Some(Lease {
                            ttl: Duration::from_secs(auth.lease_duration),
                            obtained: Instant::now(),
                            ..lease
                        }),
                    });
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(failure = %Failure::from_client(e), "renewal refused"),
            }
        }
        let (client, lease) = authenticate(&self.settings, &self.template).await?;
        tracing::info!("logged in to vault again");
        Ok(Session {
            client: Arc::new(client),
            generation: current.generation + 1,
            lease,
        })
    }

    /// A token given in the configuration cannot be replaced; one from a file or a login can.
    fn can_log_in_again(&self) -> bool {
        !matches!(self.settings.auth, VaultAuth::Token(_))
    }

    /// Logs in again after Vault refused the token of session `generation`, unless another
    /// request has done so meanwhile.
    async fn log_in_again(&self, generation: u64) -> Result<(), Failure> {
        let _login = self.login.lock().await;
        if self.current().generation != generation {
            return Ok(());
        }
        let (client, lease) = authenticate(&self.settings, &self.template)
            .await
            .map_err(Failure::Login)?;
        tracing::info!("vault refused the token; logged in again");
        self.replace(Session {
            client: Arc::new(client),
            generation: generation + 1,
            lease,
        });
        Ok(())
    }
}

fn backoff(retry: u32) -> Duration {
    use rand::Rng;
    let base = BACKOFF_BASE
        .saturating_mul(1 << retry.min(16))
        .min(BACKOFF_CAP);
    let jitter_ms = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 2);
    base + Duration::from_millis(jitter_ms)
}

/// The client settings every session starts from. Every field is set explicitly, because
/// vaultrs otherwise fills some from `VAULT_*` environment variables.
async fn client_template(settings: &VaultSettings) -> Result<VaultClientSettings> {
    let address = parse_address(&settings.address)?;
    let mut ca_certs = Vec::new();
    let mut identity = None;
    if let Some(tls) = &settings.tls {
        if let Some(ca) = &tls.ca_cert {
            let path = ca
                .to_str()
                .ok_or_else(|| Error::invalid("tls ca_cert must be a UTF-8 path"))?;
            ca_certs.push(path.to_owned());
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
            identity = Some(read_identity(cert, key).await?);
        }
    }
    let template = VaultClientSettingsBuilder::default()
        .address(address.as_str())
        .token("")
        .ca_certs(ca_certs)
        .identity(identity)
        .verify(true)
        .timeout(Some(settings.timeout))
        .build()
        .map_err(|e| Error::invalid(format!("vault client settings: {e}")))?;
    // Building a client once here reports unreadable CA files as a configuration error.
    VaultClient::new(template.clone()).map_err(client_build_error)?;
    Ok(template)
}

async fn read_identity(cert: &std::path::Path, key: &std::path::Path) -> Result<Identity> {
    let mut pem = Zeroizing::new(read_file("tls client_cert", cert).await?);
    pem.extend_from_slice(&read_file("tls client_key", key).await?);
    Identity::from_pem(&pem).map_err(|_| {
        Error::invalid("tls client_cert and client_key are not a PEM certificate and key")
    })
}

async fn read_file(name: &str, path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>> {
    tokio::fs::read(path)
        .await
        .map(Zeroizing::new)
        .map_err(|e| Error::invalid(format!("{name} '{}' cannot be read: {e}", path.display())))
}

/// A token or secret id from a file: surrounding whitespace (a trailing newline) removed.
async fn read_secret_file(name: &str, path: &std::path::Path) -> Result<SecretBytes> {
    let bytes = read_file(name, path).await?;
    let trimmed = bytes.trim_ascii();
    validate_token_bytes(name, trimmed)?;
    Ok(SecretBytes::new(trimmed.to_vec()))
}

fn client_build_error(e: ClientError) -> Error {
    match e {
        ClientError::FileReadError { path, source } => {
            Error::invalid(format!("tls ca_cert '{path}' cannot be read: {source}"))
        }
        ClientError::ParseCertificateError { path, .. } => Error::invalid(format!(
            "tls ca_cert '{path}' is not a PEM certificate bundle"
        )),
        other => Failure::from_client(other).into_error("building the vault client"),
    }
}

/// Obtains a token as configured and builds a client carrying it.
async fn authenticate(
    settings: &VaultSettings,
    template: &VaultClientSettings,
) -> Result<(VaultClient, Option<Lease>)> {
    let (token, lease) = match &settings.auth {
        VaultAuth::Token(token) => (token.clone(), None),
        VaultAuth::TokenFile(path) => (read_secret_file("token_file", path).await?, None),
        VaultAuth::AppRole { role_id, secret_id } => {
            let secret_id = match secret_id {
                SecretIdSource::Value(value) => value.clone(),
                SecretIdSource::File(path) => read_secret_file("secret_id_file", path).await?,
            };
            approle_login(template, role_id, &secret_id).await?
        }
    };
    let client = client_with_token(template, &token)?;
    Ok((client, lease))
}

async fn approle_login(
    template: &VaultClientSettings,
    role_id: &str,
    secret_id: &SecretBytes,
) -> Result<(SecretBytes, Option<Lease>)> {
    let anonymous = VaultClient::new(template.clone()).map_err(client_build_error)?;
    let secret_id = std::str::from_utf8(secret_id.expose())
        .map_err(|_| Error::invalid("approle secret_id must be visible ASCII"))?;
    let auth = vaultrs::auth::approle::login(&anonymous, APPROLE_MOUNT, role_id, secret_id)
        .await
        .map_err(|e| login_error(Failure::from_client(e)))?;
    let token = SecretBytes::new(auth.client_token.into_bytes());
    let lease = (auth.lease_duration > 0).then(|| Lease {
        ttl: Duration::from_secs(auth.lease_duration),
        renewable: auth.renewable,
        obtained: Instant::now(),
    });
    Ok((token, lease))
}

/// A refused login is a configuration problem the operator must fix; no answer is transient.
fn login_error(failure: Failure) -> Error {
    match failure {
        Failure::Status {
            code: 400 | 403, ..
        } => Error::invalid(format!("vault refused the approle login: {failure}")),
        other => other.into_error("logging in with approle"),
    }
}

fn client_with_token(template: &VaultClientSettings, token: &SecretBytes) -> Result<VaultClient> {
    validate_token_bytes("token", token.expose())?;
    let mut settings = template.clone();
    // The HTTP client needs the token as text; validated as visible ASCII just above.
    settings.token = String::from_utf8_lossy(token.expose()).into_owned();
    VaultClient::new(settings).map_err(client_build_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(0);
        assert!(
            first >= BACKOFF_BASE && first <= BACKOFF_BASE * 3 / 2,
            "{first:?}"
        );
        let late = backoff(30);
        assert!(
            late >= BACKOFF_CAP && late <= BACKOFF_CAP * 3 / 2,
            "{late:?}"
        );
    }

    #[test]
    fn leases_are_renewed_after_two_thirds() {
        let obtained = Instant::now();
        let lease = Lease {
            ttl: Duration::from_secs(90),
            renewable: true,
            obtained,
        };
        assert!(!lease.renew_due(obtained + Duration::from_secs(59)));
        assert!(lease.renew_due(obtained + Duration::from_secs(60)));
        assert!(!lease.expired(obtained + Duration::from_secs(89)));
        assert!(lease.expired(obtained + Duration::from_secs(90)));
    }

    #[test]
    fn refused_logins_are_configuration_errors() {
        let refused = Failure::Status {
            code: 400,
            errors: vec!["invalid role or secret ID".into()],
        };
        assert!(matches!(login_error(refused), Error::InvalidRequest { .. }));
        let down = Failure::Unreachable("Connection refused".into());
        assert!(matches!(
            login_error(down),
            Error::BackendUnavailable { .. }
        ));
    }

    #[tokio::test]
    async fn secret_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, b"  s.abc123\n").unwrap();
        let token = read_secret_file("token_file", &path).await.unwrap();
        assert_eq!(token.expose(), b"s.abc123");
        std::fs::write(&path, b"two words\n").unwrap();
        assert!(read_secret_file("token_file", &path).await.is_err());
        let missing = read_secret_file("token_file", &dir.path().join("nope")).await;
        assert!(matches!(missing, Err(Error::InvalidRequest { .. })));
    }
}
