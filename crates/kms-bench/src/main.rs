//! `kms-bench`: the benchmark behind `cargo xtask bench`.
//!
//! One run measures kms-server's hot paths (`generate-data-key`, `decrypt`, describe, list, the S3
//! bucket-encryption GET) at several concurrencies, next to what a user would otherwise use
//! (OpenBao Transit, called directly), next to kms-server on that OpenBao (the Vault backend),
//! and next to the floor (a minimal actix-web route doing only the irreducible work, see
//! [`floor`]). It then prepares a server with many keys and compares memory, start-up time and
//! latency with the server holding few. The report goes to `target/bench/report.md` and
//! `report.json`.
//!
//! Every request is signed with `aws-sigv4`, the AWS SDK's own signer, over kept-alive
//! connections ([`client`]); the load is a closed loop per connection for a fixed time
//! ([`load`]). Everything runs on 127.0.0.1, and every process started is stopped at the end.

mod client;
mod floor;
mod load;
mod openbao;
mod paired;
mod procs;
mod report;
mod run;
mod targets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Benchmark of kms-server against OpenBao Transit and a minimal floor.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Flags {
    #[command(subcommand)]
    command: Option<Internal>,

    /// Short run for tests: about 1 s per point and fewer keys for the scale part.
    #[arg(long)]
    quick: bool,

    /// Measured seconds per point (default 5, quick 1).
    #[arg(long)]
    duration: Option<f64>,

    /// Warm-up seconds per point, not measured (default 1, quick 0.25).
    #[arg(long)]
    warmup: Option<f64>,

    /// Rounds of each paired comparison (default 5, quick 2).
    #[arg(long)]
    pair_rounds: Option<usize>,

    /// Concurrencies of the main points.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,

    /// Concurrencies of the scale points (few keys against many).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    scale_concurrency: Vec<usize>,

    /// Keys created before the main server starts.
    #[arg(long, default_value_t = 100)]
    few_keys: usize,

    /// Keys created before the scale server starts (default 100000, quick 2000).
    #[arg(long)]
    many_keys: Option<usize>,

    /// Run only the groups whose name contains one of these words (for example `vault`,
    /// `floor`, `openbao`, `cache off`, `keys`); all groups when absent.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Keep the work directory (data directories, logs) after the run, for investigation.
    #[arg(long)]
    keep_work: bool,

    /// Worker threads of the load generator (default: one per core).
    #[arg(long)]
    client_threads: Option<usize>,

    /// The kms-server binary (default: beside this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,

    /// Where the report and the work directory go (default: `bench` in the target directory
    /// this binary was built in, `bench/quick` for a quick run). OpenBao is installed into
    /// `bench/venv` either way.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Internal {
    /// Serves the floor route (started by the bench itself).
    #[command(hide = true)]
    Floor {
        /// Address to listen on.
        #[arg(long)]
        address: SocketAddr,
        /// actix-web workers.
        #[arg(long)]
        workers: usize,
    },
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let result = match flags.command {
        Some(Internal::Floor { address, workers }) => floor::serve(address, workers).map(|()| true),
        None => bench(flags),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("kms-bench: some points failed; see the report");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("kms-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when any point failed.
fn bench(flags: Flags) -> Result<bool> {
    let plan = plan(flags)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_threads)
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    let report = runtime.block_on(run::run(plan))?;
    let failed_points = report.points.iter().any(|p| p.failed());
    let failed_pairs = report.paired.iter().any(|p| !p.ok());
    Ok(!failed_points && !failed_pairs)
}

fn plan(flags: Flags) -> Result<run::Plan> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let exe_dir = exe.parent().context("this binary has no directory")?;
    let target_dir = exe_dir.parent().unwrap_or(exe_dir);
    // A quick run (the test task's) must not overwrite the figures of the last full run.
    let bench_dir = target_dir.join("bench");
    let default_out = match flags.quick {
        true => bench_dir.join("quick"),
        false => bench_dir.clone(),
    };
    let out_dir = flags.out_dir.unwrap_or(default_out);
    for dir in [&bench_dir, &out_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out_dir = out_dir.canonicalize()?;
    let server_bin = flags
        .server_bin
        .unwrap_or_else(|| exe_dir.join("kms-server"));
    if !server_bin.is_file() {
        anyhow::bail!(
            "{} is missing: build it with `cargo build --release -p kms-server`",
            server_bin.display()
        );
    }
    let (duration, warmup, many_keys) = match flags.quick {
        true => (1.0, 0.25, 2_000),
        false => (5.0, 1.0, 100_000),
    };
    // Paired rounds: short slices, many alternations (quick: enough to exercise the code).
    let (pair_rounds, pair_slice, pair_warmup) = match flags.quick {
        true => (2, 0.5, 0.2),
        false => (6, 2.0, 0.5),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(run::Plan {
        mode: if flags.quick { "quick" } else { "full" },
        duration: Duration::from_secs_f64(flags.duration.unwrap_or(duration)),
        warmup: Duration::from_secs_f64(flags.warmup.unwrap_or(warmup)),
        pair_rounds: flags.pair_rounds.unwrap_or(pair_rounds).max(1),
        pair_slice: Duration::from_secs_f64(pair_slice),
        pair_warmup: Duration::from_secs_f64(pair_warmup),
        concurrencies: flags.concurrency,
        scale_concurrencies: flags.scale_concurrency,
        few_keys: flags.few_keys,
        many_keys: flags.many_keys.unwrap_or(many_keys),
        keep_work: flags.keep_work,
        only: flags.only.iter().map(|word| word.to_lowercase()).collect(),
        client_threads: flags.client_threads.unwrap_or(cores).max(1),
        server_bin,
        out_dir,
        venv_dir: bench_dir.canonicalize()?.join("venv"),
    })
}
