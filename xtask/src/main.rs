//! Developer tasks for the workspace, run as `cargo xtask <task>` (an alias in
//! `.cargo/config.toml`). Every task prints the commands it runs, so any step can be repeated by
//! hand. `test` is the one command the README and `.ci/run` name.

mod bench;
mod cmd;
mod e2e;
mod soak;
mod stamp;
mod tidy;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::cmd::Cmd;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  test          tidy, cargo fmt --check, clippy -D warnings, install the test clients, cargo test
                (with a real OpenBao), e2e, then bench --quick; stops at the first failing step
  ci            the same as test
  e2e [-- ARGS] build the release server, install the test clients, run pytest on tests/e2e
                (ARGS go to pytest, e.g. `cargo xtask e2e -- -k datakeys -x`)
  tidy          check the dependency direction between crates/*/Cargo.toml
  soak [ROUNDS] the crash test (SIGKILL while clients write, restart, check) with ROUNDS
                kill rounds (default 100) instead of 5
  bench [--quick] [-- ARGS]
                the benchmark; report in target/bench/ (--quick: target/bench/quick/)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let root = project_root();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            eprintln!("{USAGE}");
            bail!("no task given");
        }
    };
    match task {
        "test" | "ci" => {
            no_arguments(task, rest)?;
            test(&root)
        }
        "e2e" => e2e::run(&root, &cargo(), pytest_args(rest)),
        "tidy" => {
            no_arguments(task, rest)?;
            tidy::run(&root)
        }
        "bench" => bench::run(&root, &cargo(), rest),
        "soak" => soak::run(&root, &cargo(), soak::rounds(rest)?),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("{USAGE}");
            bail!("unknown task `{other}`")
        }
    }
}

/// The whole test suite, cheapest step first, stopping at the first failure.
fn test(root: &Path) -> Result<()> {
    let cargo = cargo();
    let cargo_step = |args: &[&str]| Cmd::new(&cargo).args(args).dir(root).run();
    let bao = std::cell::OnceCell::new();
    let steps: [(&str, &dyn Fn() -> Result<()>); 7] = [
        ("tidy", &|| tidy::run(root)),
        ("fmt", &|| cargo_step(&["fmt", "--all", "--check"])),
        ("clippy", &|| {
            cargo_step(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
        }),
        (
            "install test clients (venv with OpenBao, npm packages)",
            &|| {
                bao.set(e2e::install_clients(root)?)
                    .map_err(|_| anyhow::anyhow!("installed twice"))
            },
        ),
        (
            "unit and integration tests (Vault backend against a real OpenBao)",
            &|| {
                let bao = bao.get().context("the test clients are not installed")?;
                Cmd::new(&cargo)
                    .args(["test", "--workspace"])
                    .dir(root)
                    .env("BAO_BIN", bao)
                    .env("KMS_REQUIRE_VAULT_TESTS", "1")
                    .run()
            },
        ),
        ("e2e", &|| e2e::run(root, &cargo, &[])),
        (
            "bench --quick (keeps the benchmark working; no figure is checked)",
            &|| bench::run(root, &cargo, &["--quick".to_owned()]),
        ),
    ];
    let total = steps.len();
    let started = std::time::Instant::now();
    let mut took = Vec::new();
    for (index, (name, step)) in steps.iter().enumerate() {
        eprintln!("==> xtask test: step {}/{total}: {name}", index + 1);
        let step_started = std::time::Instant::now();
        step().with_context(|| format!("step `{name}` failed; later steps not run"))?;
        took.push((*name, step_started.elapsed()));
    }
    eprintln!(
        "==> xtask test: all {total} steps passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for (name, elapsed) in took {
        eprintln!("    {:>6.0} s  {name}", elapsed.as_secs_f64());
    }
    Ok(())
}

fn no_arguments(task: &str, rest: &[String]) -> Result<()> {
    if !rest.is_empty() {
        bail!("`{task}` takes no arguments, got {rest:?}");
    }
    Ok(())
}

/// Arguments after `e2e`, with an optional leading `--` removed.
fn pytest_args(rest: &[String]) -> &[String] {
    match rest.split_first() {
        Some((first, tail)) if first == "--" => tail,
        _ => rest,
    }
}

/// The cargo that runs us (cargo sets `CARGO`), so that nested builds use the same toolchain.
fn cargo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// The workspace root: the parent of this crate's directory.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn pytest_args_drop_one_leading_separator() {
        assert_eq!(
            pytest_args(&strings(&["--", "-k", "x"])),
            strings(&["-k", "x"])
        );
        assert_eq!(pytest_args(&strings(&["-x"])), strings(&["-x"]));
        assert!(pytest_args(&[]).is_empty());
    }

    #[test]
    fn unknown_tasks_and_stray_arguments_are_refused() {
        assert!(run(&strings(&["frobnicate"])).is_err());
        assert!(run(&strings(&["tidy", "extra"])).is_err());
        assert!(run(&[]).is_err());
    }

    #[test]
    fn the_project_root_holds_the_workspace_manifest() {
        assert!(project_root().join("Cargo.toml").is_file());
        assert!(project_root().join("xtask").is_dir());
    }
}
