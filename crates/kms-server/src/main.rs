//! `kms-server`: a self-hosted KMS with S3 bucket encryption.
//!
//! This binary only reads flags (each with a `KMS_*` environment equivalent), sets up logging,
//! opens the state in `kms-http` and serves it until SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use kms_http::{AppState, Settings};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::prelude::*;

/// A self-hosted KMS with S3 bucket encryption: master keys that never leave the server, data
/// keys bound to an encryption context, and buckets encrypted by default.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Flags {
    /// Address to listen on.
    #[arg(long, env = "KMS_ADDRESS", default_value = "127.0.0.1:9000")]
    address: SocketAddr,

    /// Directory for configuration, keys, buckets, objects and uploads, and secrets (created with
    /// mode 0700).
    #[arg(long, env = "KMS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,

    /// TOML file of extra identities: `[[user]]` with `access_key`, `secret_key`, `actions`.
    #[arg(long, env = "KMS_IDENTITIES")]
    identities: Option<PathBuf>,

    /// Region that requests must be signed for.
    #[arg(long, env = "KMS_REGION", default_value = "us-east-1")]
    region: String,

    /// Browser origins allowed by CORS, comma-separated (for web consoles).
    #[arg(long, env = "KMS_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    cors_allowed_origins: Vec<String>,

    /// Start `NotConfigured` instead of configuring the local backend on first start
    /// (`KMS_AUTO_CONFIGURE=false` does the same). A saved configuration is always reloaded.
    #[arg(long = "no-auto-configure", env = "KMS_AUTO_CONFIGURE", action = clap::ArgAction::SetFalse)]
    auto_configure: bool,

    /// Log level filter, for example `info` or `kms_http=debug,info`. vaultrs and its HTTP
    /// layer rustify are silenced by default: they log every Vault error answer (an ordinary
    /// decrypt refusal or a lookup before a create included) at ERROR level; the server reports
    /// what matters itself.
    #[arg(
        long,
        env = "KMS_LOG_LEVEL",
        default_value = "info,vaultrs=off,rustify=off"
    )]
    log_level: String,

    /// Log format.
    #[arg(long, env = "KMS_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,

    /// Audit log file for key lifecycle events (default: `audit.log` in the data directory).
    #[arg(long, env = "KMS_AUDIT_LOG")]
    audit_log: Option<PathBuf>,

    /// Seconds between background maintenance rounds (deletion sweep, automatic rotation,
    /// recovery from `Error`).
    #[arg(long, env = "KMS_MAINTENANCE_INTERVAL", default_value_t = 60)]
    maintenance_interval: u64,

    /// Worker threads for HTTP (default: one per core).
    #[arg(long, env = "KMS_WORKERS")]
    workers: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[actix_web::main]
async fn main() -> Result<()> {
    let flags = Flags::parse();
    let data_dir = flags.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let audit_path = flags
        .audit_log
        .clone()
        .unwrap_or_else(|| data_dir.join("audit.log"));
    init_logging(&flags, &audit_path)?;

    let settings = Settings {
        data_dir,
        region: flags.region.clone(),
        identities_file: flags.identities.clone(),
        auto_configure: flags.auto_configure,
        root_credentials: root_credentials_from_env(),
        root_secret: std::env::var("KMS_ROOT_SECRET")
            .ok()
            .map(|s| kms_core_secret(s.into_bytes())),
    };
    let (state, startup) = AppState::open(settings).await.map_err(anyhow::Error::msg)?;
    if let Some(credentials) = &startup.generated_credentials {
        // Shown once, on the terminal rather than in the log; also kept in credentials.toml.
        let mut stderr = std::io::stderr().lock();
        writeln!(
            stderr,
            "Root credentials were generated (kept in credentials.toml, mode 0600):"
        )?;
        writeln!(stderr, "  access key: {}", credentials.access_key)?;
        writeln!(
            stderr,
            "  secret key: {}",
            String::from_utf8_lossy(credentials.secret_key.expose())
        )?;
    }
    if startup.created_root_secret {
        tracing::warn!("a new root secret was created in the data directory: back it up, losing it loses every local key");
    }

    let state = actix_web::web::Data::new(state);
    state
        .service
        .spawn_maintenance(Duration::from_secs(flags.maintenance_interval.max(1)));
    tracing::info!(address = %flags.address, status = state.service.snapshot().status.as_str(), "kms-server listening");
    let origins = flags.cors_allowed_origins.clone();
    let mut server = actix_web::HttpServer::new(move || kms_http::app(state.clone(), &origins))
        .bind(flags.address)
        .with_context(|| format!("binding {}", flags.address))?
        .shutdown_timeout(10);
    if let Some(workers) = flags.workers {
        server = server.workers(workers);
    }
    server.run().await.context("serving")
}

fn kms_core_secret(bytes: Vec<u8>) -> kms_http::auth::SecretBytes {
    kms_http::auth::SecretBytes::new(bytes)
}

fn root_credentials_from_env() -> Option<(String, kms_http::auth::SecretBytes)> {
    let access_key = std::env::var("KMS_ACCESS_KEY")
        .ok()
        .filter(|v| !v.is_empty())?;
    let secret_key = std::env::var("KMS_SECRET_KEY")
        .ok()
        .filter(|v| !v.is_empty())?;
    Some((access_key, kms_core_secret(secret_key.into_bytes())))
}

fn init_logging(flags: &Flags, audit_path: &std::path::Path) -> Result<()> {
    let filter = EnvFilter::try_new(&flags.log_level).context("parsing --log-level")?;
    let audit_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(audit_path)
        .with_context(|| format!("opening the audit log {}", audit_path.display()))?;
    let audit_layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::sync::Mutex::new(audit_file))
        .with_filter(Targets::new().with_target("kms_audit", tracing::Level::INFO));
    let registry = tracing_subscriber::registry().with(audit_layer);
    match flags.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .init(),
    }
    Ok(())
}
