//! The Vault backend against a real OpenBao server.
//!
//! The tests of this binary share one `bao server -dev` on a free port of 127.0.0.1, started on
//! first use from the binary named by `BAO_BIN`; the TLS test has a second one started with
//! `-dev-tls`. Without `BAO_BIN` every test prints a loud skip notice and passes, unless
//! `KMS_REQUIRE_VAULT_TESTS=1`, in which case they fail.
//!
//! The server runs under a small shell supervisor that reads this process's end of a pipe: when
//! the test process exits, however it exits, the pipe closes and the supervisor stops the server,
//! so no `bao` process outlives the tests.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kms_backend_vault::{SecretIdSource, VaultAuth, VaultBackend, VaultSettings, VaultTls};
use kms_core::ops::{decrypt, ensure_key, generate_data_key};
use kms_core::{
    Backend, CreateKeyRequest, EncryptionContext, Envelope, Error, KeyChange, KeyId, KeySpec,
    KeyState, SecretBytes,
};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

/// The policy an AppRole token gets: exactly what the crate documentation asks for.
const POLICY: &str = r#"
path "transit/keys/*"      { capabilities = ["create", "read", "update", "delete"] }
path "transit/encrypt/*"   { capabilities = ["update"] }
path "transit/decrypt/*"   { capabilities = ["update"] }
path "secret/data/rustfs/kms/keys/*"     { capabilities = ["create", "read", "update"] }
path "secret/metadata/rustfs/kms/keys/*" { capabilities = ["list", "delete"] }
path "secret/metadata/rustfs/kms/keys"   { capabilities = ["list"] }
"#;

/// A running dev server.
struct Bao {
    address: String,
    root_token: String,
    /// The CA certificate bao generated, for a `-dev-tls` server.
    ca_cert: Option<PathBuf>,
    /// AppRole credentials of role `kms` (tokens live one hour).
    role: (String, String),
    /// AppRole credentials of role `kms-short` (tokens live three seconds).
    short_role: (String, String),
    /// The supervisor; its stdin is the pipe whose closing stops the server.
    _supervisor: Mutex<Child>,
    _home: tempfile::TempDir,
}

static BAO: OnceLock<Option<Bao>> = OnceLock::new();
static BAO_TLS: OnceLock<Option<Bao>> = OnceLock::new();

/// The shared plain-HTTP server, started on first use; `None` (after a loud notice) without
/// `BAO_BIN`.
fn bao() -> Option<&'static Bao> {
    shared(&BAO, false)
}

/// The shared `-dev-tls` server (`https://`, with a CA of its own), like [`bao`].
fn bao_tls() -> Option<&'static Bao> {
    shared(&BAO_TLS, true)
}

fn shared(cell: &'static OnceLock<Option<Bao>>, tls: bool) -> Option<&'static Bao> {
    let bao = cell.get_or_init(|| start(tls)).as_ref();
    if bao.is_none() {
        // Written to the stream itself, not with `eprintln!`, so the test harness's output
        // capture cannot hide it.
        let notice = "\n*** skipped: BAO_BIN not set; this OpenBao integration test did not run \
                      (set BAO_BIN to a `bao` binary, KMS_REQUIRE_VAULT_TESTS=1 to fail instead) \
                      ***\n";
        let _ = std::io::stderr().write_all(notice.as_bytes());
    }
    bao
}

fn start(tls: bool) -> Option<Bao> {
    let Some(bin) = std::env::var_os("BAO_BIN") else {
        if std::env::var("KMS_REQUIRE_VAULT_TESTS").as_deref() == Ok("1") {
            panic!("KMS_REQUIRE_VAULT_TESTS=1 but BAO_BIN is not set");
        }
        return None;
    };
    let home = tempfile::tempdir().expect("temporary home");
    let addr = free_address();
    let root_token = format!("root-{}", uuid::Uuid::new_v4());
    let log = home.path().join("bao.log");
    let mut extra = Vec::new();
    let mut ca_cert = None;
    if tls {
        // bao writes vault-ca.pem, vault-cert.pem and vault-key.pem here; it must exist.
        let certs = home.path().join("certs");
        std::fs::create_dir(&certs).expect("certificate folder");
        extra = vec![
            "-dev-tls".to_string(),
            format!("-dev-tls-cert-dir={}", certs.display()),
        ];
        ca_cert = Some(certs.join("vault-ca.pem"));
    }
    // `cat` returns when this process's end of the pipe closes; the trap then stops bao.
    let script = r#"
        bin=$0 addr=$1 log=$2
        shift 2
        "$bin" server -dev -dev-no-store-token -dev-listen-address="$addr" "$@" >"$log" 2>&1 &
        bao=$!
        trap 'kill "$bao" 2>/dev/null; wait "$bao" 2>/dev/null' EXIT
        trap 'exit 1' HUP INT TERM
        cat >/dev/null
    "#;
    let supervisor = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg(addr.to_string())
        .arg(&log)
        .args(&extra)
        .env("HOME", home.path())
        .env("BAO_DEV_ROOT_TOKEN_ID", &root_token)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", PathBuf::from(&bin).display()));
    let address = format!("{}://{addr}", if tls { "https" } else { "http" });
    let (role, short_role) = set_up(&address, &root_token, ca_cert.as_deref(), &log);
    eprintln!("openbao dev server at {address} (log: {})", log.display());
    Some(Bao {
        address,
        root_token,
        ca_cert,
        role,
        short_role,
        _supervisor: Mutex::new(supervisor),
        _home: home,
    })
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap()
}

/// Polls until the dev server serves requests with the root token. (Not `sys/health`: vaultrs
/// cannot parse OpenBao's answer there, which lacks `performance_standby`.)
async fn wait_until_ready(address: &str, token: &str, ca_cert: Option<&Path>, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        // Rebuilt every time: a `-dev-tls` server writes its CA file only once it starts.
        if let Ok(client) = client(address, token, ca_cert) {
            if vaultrs::sys::mount::list(&client).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("openbao did not become ready in 60 s; its log:\n{log}");
}

/// Waits for the server, enables Transit and AppRole, writes the policy and two roles, and
/// returns their credentials. Runs on its own thread and runtime, because the first caller is a
/// test already inside a runtime.
fn set_up(
    address: &str,
    root_token: &str,
    ca_cert: Option<&Path>,
    log: &Path,
) -> ((String, String), (String, String)) {
    let (address, root_token) = (address.to_owned(), root_token.to_owned());
    let (ca_cert, log) = (ca_cert.map(Path::to_owned), log.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            wait_until_ready(&address, &root_token, ca_cert.as_deref(), &log).await;
            let root = client(&address, &root_token, ca_cert.as_deref()).expect("root client");
            vaultrs::sys::mount::enable(&root, "transit", "transit", None)
                .await
                .expect("enable transit");
            vaultrs::sys::auth::enable(&root, "approle", "approle", None)
                .await
                .expect("enable approle");
            vaultrs::sys::policy::set(&root, "kms", POLICY)
                .await
                .expect("write policy");
            let role = make_role(&root, "kms", "1h", "24h").await;
            let short_role = make_role(&root, "kms-short", "3s", "1h").await;
            (role, short_role)
        })
    })
    .join()
    .expect("set up openbao")
}

async fn make_role(root: &VaultClient, name: &str, ttl: &str, max_ttl: &str) -> (String, String) {
    use vaultrs::api::auth::approle::requests::SetAppRoleRequest;
    let mut options = SetAppRoleRequest::builder();
    options
        .token_policies(vec!["kms".to_string()])
        .token_ttl(ttl)
        .token_max_ttl(max_ttl);
    vaultrs::auth::approle::role::set(root, "approle", name, Some(&mut options))
        .await
        .expect("write role");
    let role_id = vaultrs::auth::approle::role::read_id(root, "approle", name)
        .await
        .expect("read role id")
        .role_id;
    let secret_id = vaultrs::auth::approle::role::secret::generate(root, "approle", name, None)
        .await
        .expect("generate secret id")
        .secret_id;
    (role_id, secret_id)
}

fn root_client(address: &str, token: &str) -> VaultClient {
    client(address, token, None).unwrap()
}

/// A client of the test's own, trusting `ca_cert` if given; fails while that file is missing.
fn client(
    address: &str,
    token: &str,
    ca_cert: Option<&Path>,
) -> Result<VaultClient, vaultrs::error::ClientError> {
    let mut settings = VaultClientSettingsBuilder::default();
    settings.address(address).token(token);
    if let Some(ca) = ca_cert {
        settings.ca_certs(vec![ca.display().to_string()]);
    }
    VaultClient::new(settings.build().unwrap())
}

/// Root-token settings with a key prefix of their own, so tests never see each other's keys.
fn settings(bao: &Bao) -> VaultSettings {
    let token = SecretBytes::new(bao.root_token.clone().into_bytes());
    let mut settings = VaultSettings::new(&bao.address, VaultAuth::Token(token));
    settings.key_path_prefix = format!("rustfs/kms/test-{}", uuid::Uuid::new_v4());
    settings
}

async fn connect(bao: &Bao) -> VaultBackend {
    VaultBackend::connect(settings(bao)).await.expect("connect")
}

fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    EncryptionContext::new(pairs.collect()).unwrap()
}

async fn new_key(backend: &VaultBackend) -> KeyId {
    backend
        .create_key(CreateKeyRequest::default())
        .await
        .expect("create key")
        .key_id
}

#[tokio::test(flavor = "multi_thread")]
async fn passes_the_conformance_suite() {
    let Some(bao) = bao() else { return };
    let backend = connect(bao).await;
    kms_core::testing::run_conformance(&backend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn approle_with_the_documented_policy_passes_the_conformance_suite() {
    let Some(bao) = bao() else { return };
    let (role_id, secret_id) = bao.role.clone();
    let auth = VaultAuth::AppRole {
        role_id,
        secret_id: SecretIdSource::Value(SecretBytes::new(secret_id.into_bytes())),
    };
    // The default prefix, which the policy names; no other test uses it.
    let backend = VaultBackend::connect(VaultSettings::new(&bao.address, auth))
        .await
        .expect("approle connect");
    kms_core::testing::run_conformance(&backend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn approle_tokens_are_renewed_or_replaced_before_they_lapse() {
    let Some(bao) = bao() else { return };
    let (role_id, secret_id) = bao.short_role.clone();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, format!("{secret_id}\n")).unwrap();
    let mut settings = settings(bao);
    // Inside the folder the policy grants, apart from the other AppRole test's keys.
    settings.key_path_prefix = format!("rustfs/kms/keys/renewal-{}", uuid::Uuid::new_v4());
    settings.auth = VaultAuth::AppRole {
        role_id,
        secret_id: SecretIdSource::File(secret_file),
    };
    let backend = VaultBackend::connect(settings).await.expect("connect");
    let id = new_key(&backend).await;
    let ctx = context(&[("bucket", "b")]);
    let blob = generate_data_key(&backend, &id, KeySpec::Aes256, &ctx)
        .await
        .unwrap()
        .ciphertext_blob;
    // The token lives 3 s: past two thirds it is renewed; past its whole life a new login
    // replaces it. Either way every call keeps working.
    for pause in [2200, 4000, 1000] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        assert!(
            decrypt(&backend, &blob, &ctx).await.is_ok(),
            "after {pause} ms"
        );
        backend.health_check().await.expect("healthy");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_created_through_the_backend_are_transit_keys() {
    let Some(bao) = bao() else { return };
    let backend = connect(bao).await;
    let id = new_key(&backend).await;
    backend.rotate_key(&id, kms_core::now()).await.unwrap();
    let root = root_client(&bao.address, &bao.root_token);
    let key = vaultrs::transit::key::read(&root, "transit", id.as_str())
        .await
        .expect("the transit key exists");
    assert!(matches!(
        key.key_type,
        vaultrs::api::transit::KeyType::Aes256Gcm96
    ));
    assert!(!key.deletion_allowed && !key.exportable);
    assert_eq!(backend.describe_key(&id).await.unwrap().current_version, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_decrypt_only_with_their_exact_context() {
    let Some(bao) = bao() else { return };
    let backend = connect(bao).await;
    let id = new_key(&backend).await;
    let ctx = context(&[("bucket", "photos"), ("object", "a.jpg")]);
    let data_key = generate_data_key(&backend, &id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    let envelope = Envelope::parse(&data_key.ciphertext_blob).unwrap();
    let transit_ciphertext = std::str::from_utf8(envelope.payload()).unwrap();
    assert!(
        transit_ciphertext.starts_with("vault:v1:"),
        "{transit_ciphertext}"
    );

    let back = decrypt(&backend, &data_key.ciphertext_blob, &ctx)
        .await
        .unwrap();
    assert_eq!(back.plaintext.expose(), data_key.plaintext.expose());
    for other in [
        context(&[]),
        context(&[("bucket", "photos")]),
        context(&[("bucket", "photos"), ("object", "a.jpg"), ("x", "")]),
        context(&[("bucket", "photos"), ("object", "b.jpg")]),
    ] {
        let result = decrypt(&backend, &data_key.ciphertext_blob, &other).await;
        assert!(matches!(result, Err(Error::DecryptionFailed)), "{other:?}");
    }

    // The binding is Transit's own: without the associated data Transit refuses the ciphertext.
    let root = root_client(&bao.address, &bao.root_token);
    let bare =
        vaultrs::transit::data::decrypt(&root, "transit", id.as_str(), transit_ciphertext, None)
            .await;
    assert!(
        bare.is_err(),
        "transit decrypted without the associated data"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_fails_cleanly_without_echoing_it() {
    let Some(bao) = bao() else { return };
    let mut settings = settings(bao);
    let wrong = "s.wrong-token-0123456789";
    settings.auth = VaultAuth::Token(SecretBytes::new(wrong.as_bytes().to_vec()));
    let err = VaultBackend::connect(settings).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(shown.contains("permission denied"), "{shown}");

    let mut settings = self::settings(bao);
    settings.auth = VaultAuth::AppRole {
        role_id: bao.role.0.clone(),
        secret_id: SecretIdSource::Value(SecretBytes::new(b"not-the-secret-id".to_vec())),
    };
    let err = VaultBackend::connect(settings).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
    assert!(!format!("{err:?}").contains("not-the-secret-id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_address_is_backend_unavailable() {
    // Needs no server: nothing listens on a port just released.
    let address = format!("http://{}", free_address());
    let token = SecretBytes::new(b"s.anything".to_vec());
    let mut settings = VaultSettings::new(address, VaultAuth::Token(token));
    settings.timeout = Duration::from_secs(2);
    settings.retry_attempts = 1;
    let err = VaultBackend::connect(settings).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::BackendUnavailable {
                backend: "vault",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("s.anything"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_wrong_mounts_fail_at_connect() {
    let Some(bao) = bao() else { return };
    let mut settings = settings(bao);
    settings.mount_path = "no-such-transit".into();
    let err = VaultBackend::connect(settings).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");

    let mut settings = self::settings(bao);
    settings.kv_mount = "transit".into();
    let err = VaultBackend::connect(settings).await.unwrap_err();
    assert!(err.to_string().contains("KV version 2"), "{err}");

    let mut settings = self::settings(bao);
    settings.mount_path = "secret".into();
    let err = VaultBackend::connect(settings).await.unwrap_err();
    assert!(err.to_string().contains("not transit"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_file_is_read_and_trimmed() {
    let Some(bao) = bao() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{}\n", bao.root_token)).unwrap();
    let mut settings = settings(bao);
    settings.auth = VaultAuth::TokenFile(path);
    let backend = VaultBackend::connect(settings).await.expect("connect");
    assert!(!format!("{backend:?}").contains(&bao.root_token));
    let missing = backend.describe_key(&KeyId::generate()).await;
    assert!(matches!(missing, Err(Error::KeyNotFound { .. })));
    backend.health_check().await.expect("healthy");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_file_is_read_again_when_vault_refuses_the_old_token() {
    let Some(bao) = bao() else { return };
    let root = root_client(&bao.address, &bao.root_token);
    let first = vaultrs::token::new(&root, None).await.unwrap().client_token;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, &first).unwrap();
    let mut settings = settings(bao);
    settings.auth = VaultAuth::TokenFile(path.clone());
    let backend = VaultBackend::connect(settings).await.expect("connect");
    let id = new_key(&backend).await;

    // An agent replaces the token in the file and the old one is revoked.
    let second = vaultrs::token::new(&root, None).await.unwrap().client_token;
    std::fs::write(&path, format!("{second}\n")).unwrap();
    vaultrs::token::revoke(&root, &first).await.unwrap();
    let meta = backend
        .describe_key(&id)
        .await
        .expect("read with the new token");
    assert_eq!(meta.key_id, id);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_transit_key_is_adopted_as_the_default_key() {
    let Some(bao) = bao() else { return };
    let backend = connect(bao).await;
    let root = root_client(&bao.address, &bao.root_token);
    let name = format!("adopt-{}", uuid::Uuid::new_v4());
    vaultrs::transit::key::create(&root, "transit", &name, None)
        .await
        .unwrap();
    for _ in 0..2 {
        vaultrs::transit::key::rotate(&root, "transit", &name)
            .await
            .unwrap();
    }
    let id = KeyId::parse_default(&name).unwrap();
    let adopted = ensure_key(&backend, &id).await.unwrap();
    assert_eq!(adopted.current_version, 3);
    assert_eq!(adopted.key_state, KeyState::Enabled);
    assert_eq!(ensure_key(&backend, &id).await.unwrap(), adopted);
    let ctx = context(&[]);
    let data_key = generate_data_key(&backend, &id, KeySpec::Aes128, &ctx)
        .await
        .unwrap();
    assert_eq!(
        Envelope::parse(&data_key.ciphertext_blob)
            .unwrap()
            .key_version(),
        3
    );

    let rsa = format!("rsa-{}", uuid::Uuid::new_v4());
    let mut options = vaultrs::api::transit::requests::CreateKeyRequest::builder();
    options.key_type(vaultrs::api::transit::KeyType::Rsa2048);
    vaultrs::transit::key::create(&root, "transit", &rsa, Some(&mut options))
        .await
        .unwrap();
    let refused = ensure_key(&backend, &KeyId::parse_default(&rsa).unwrap()).await;
    assert!(
        matches!(refused, Err(Error::InvalidRequest { .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_that_cannot_name_a_transit_key_are_refused_or_absent() {
    let Some(bao) = bao() else { return };
    let backend = connect(bao).await;
    for odd in ["-leading-dash", "ключ", "a b", "q?x"] {
        let id = KeyId::parse(odd).unwrap();
        let request = CreateKeyRequest {
            key_id: Some(id.clone()),
            ..CreateKeyRequest::default()
        };
        let created = backend.create_key(request).await;
        assert!(
            matches!(created, Err(Error::InvalidRequest { .. })),
            "{odd}"
        );
        let described = backend.describe_key(&id).await;
        assert!(matches!(described, Err(Error::KeyNotFound { .. })), "{odd}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_on_two_servers_never_lose_a_change() {
    let Some(bao) = bao() else { return };
    // Two servers sharing the same records.
    let shared = settings(bao);
    let first = VaultBackend::connect(shared.clone()).await.unwrap();
    let second = VaultBackend::connect(shared).await.unwrap();
    for _ in 0..4 {
        let id = new_key(&first).await;
        let rotation = KeyChange::set_rotation(true, 100).unwrap();
        let (rotated, disabled) = tokio::join!(
            first.update_key(&id, rotation),
            second.update_key(&id, KeyChange::Disable),
        );
        disabled.expect("disable always applies");
        let meta = first.describe_key(&id).await.unwrap();
        assert_eq!(meta.key_state, KeyState::Disabled);
        match rotated {
            Ok(_) => assert!(meta.rotation_enabled, "the rotation setting was lost"),
            Err(Error::InvalidKeyState { .. }) => assert!(!meta.rotation_enabled),
            Err(e) => panic!("{e:?}"),
        }

        // A rotation records its new version even when another server changes the record
        // between the Transit rotation and the record write.
        first.update_key(&id, KeyChange::Enable).await.unwrap();
        let (rotated, disabled) = tokio::join!(
            first.rotate_key(&id, kms_core::now()),
            second.update_key(&id, KeyChange::Disable),
        );
        disabled.expect("disable always applies");
        let meta = second.describe_key(&id).await.unwrap();
        assert_eq!(meta.key_state, KeyState::Disabled);
        match rotated {
            Ok(_) => assert_eq!(meta.current_version, 2, "the rotation was lost"),
            Err(Error::InvalidKeyState { .. }) => assert_eq!(meta.current_version, 1),
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotations_on_one_server_are_serialised() {
    let Some(bao) = bao() else { return };
    let backend = connect(bao).await;
    let id = new_key(&backend).await;
    let now = kms_core::now();
    let (a, b, c) = tokio::join!(
        backend.rotate_key(&id, now),
        backend.rotate_key(&id, now),
        backend.rotate_key(&id, now),
    );
    let mut versions = [a, b, c].map(|r| r.unwrap().current_version);
    versions.sort();
    assert_eq!(versions, [2, 3, 4]);
    let ctx = context(&[]);
    let data_key = generate_data_key(&backend, &id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    assert_eq!(
        Envelope::parse(&data_key.ciphertext_blob)
            .unwrap()
            .key_version(),
        4
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_is_verified_against_the_configured_ca() {
    // Client certificates are not covered: the dev TLS listener neither requests nor verifies
    // them, so sending one would prove nothing.
    let Some(bao) = bao_tls() else { return };
    assert!(bao.address.starts_with("https://"), "{}", bao.address);
    let ca_cert = bao.ca_cert.clone().expect("a -dev-tls server has a CA");
    let mut with_ca = settings(bao);
    with_ca.tls = Some(VaultTls {
        ca_cert: Some(ca_cert),
        ..VaultTls::default()
    });
    let backend = VaultBackend::connect(with_ca)
        .await
        .expect("connect over tls");
    let id = new_key(&backend).await;
    let ctx = context(&[("bucket", "tls")]);
    let data_key = generate_data_key(&backend, &id, KeySpec::Aes256, &ctx)
        .await
        .unwrap();
    let back = decrypt(&backend, &data_key.ciphertext_blob, &ctx)
        .await
        .unwrap();
    assert_eq!(back.plaintext.expose(), data_key.plaintext.expose());

    // Without the CA the server's certificate is not trusted: a clean error naming the
    // certificate problem, not a panic, and without the token.
    let mut without_ca = settings(bao);
    without_ca.retry_attempts = 0;
    let err = VaultBackend::connect(without_ca).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&bao.root_token), "{shown}");
    assert!(shown.contains("certificate"), "{shown}");
    eprintln!("without the CA: {err}");
}
