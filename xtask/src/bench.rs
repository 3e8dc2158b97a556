//! `cargo xtask bench [--quick] [ARGS]`: builds the release server and the bench crate, then runs
//! `kms-bench`, which starts every server it measures on 127.0.0.1, installs OpenBao into
//! `target/bench/venv` when missing, and writes `target/bench/report.md` and `report.json`.
//!
//! `--quick` (about 1 s per point, 2,000 keys for the scale part, 1.5 minutes in all) is what
//! `cargo xtask test` runs so that the benchmark keeps working; it writes to
//! `target/bench/quick/` so that it never replaces the figures of a full run, and no figure is
//! asserted: it fails only when a request fails. Other arguments go to `kms-bench` as they are
//! (see `kms-bench --help`).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cmd::Cmd;

/// Builds and runs the benchmark with `args` passed on to `kms-bench`.
pub fn run(root: &Path, cargo: &Path, args: &[String]) -> Result<()> {
    Cmd::new(cargo)
        .args(["build", "--release", "-p", "kms-bench", "-p", "kms-server"])
        .dir(root)
        .run()?;
    let bench = target_dir(root).join("release").join("kms-bench");
    Cmd::new(bench).args(bench_args(args)).dir(root).run()
}

/// The arguments for `kms-bench`, with an optional leading `--` removed.
fn bench_args(args: &[String]) -> &[String] {
    match args.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => args,
    }
}

/// The target directory: `CARGO_TARGET_DIR` when set (relative to the root), else `target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_arguments_pass_through_without_a_leading_separator() {
        let args: Vec<String> = ["--", "--quick"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(bench_args(&args), &args[1..]);
        assert_eq!(bench_args(&args[1..]), &args[1..]);
        assert!(bench_args(&[]).is_empty());
    }
}
