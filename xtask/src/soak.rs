//! `cargo xtask soak [ROUNDS]`: the crash test of the end-to-end suite
//! (`tests/e2e/test_crash.py`: client threads writing while the server is killed with SIGKILL and
//! restarted on the same data directory) with many more kill rounds than the default run's 5.
//!
//! The round count reaches the test through `KMS_E2E_CRASH_ROUNDS`; the test prints its random
//! seed, and `KMS_E2E_CRASH_SEED=<seed>` replays the same choices.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Rounds when `cargo xtask soak` is given none.
pub const DEFAULT_ROUNDS: u32 = 100;

/// The variable the crash test reads its round count from.
const ROUNDS_VARIABLE: &str = "KMS_E2E_CRASH_ROUNDS";

/// The round count from the arguments after `soak`: none, or one positive number.
pub fn rounds(rest: &[String]) -> Result<u32> {
    match rest {
        [] => Ok(DEFAULT_ROUNDS),
        [one] => {
            let rounds: u32 = one
                .parse()
                .with_context(|| format!("soak: `{one}` is not a number of rounds"))?;
            if rounds == 0 {
                bail!("soak: the number of rounds must be at least 1");
            }
            Ok(rounds)
        }
        more => bail!("soak takes at most one argument (the number of rounds), got {more:?}"),
    }
}

/// Builds the release server, installs the clients and runs the crash test with `rounds` kill
/// rounds (pytest `-x -s`, so the per-round summary and the seed are shown).
pub fn run(root: &Path, cargo: &Path, rounds: u32) -> Result<()> {
    if rounds == 0 {
        bail!("soak: the number of rounds must be at least 1");
    }
    eprintln!("xtask: soak: {rounds} kill rounds ({ROUNDS_VARIABLE}={rounds})");
    // pytest is started by `e2e::run` and inherits this environment; xtask is single-threaded.
    std::env::set_var(ROUNDS_VARIABLE, rounds.to_string());
    let args = [
        "-k".to_owned(),
        "test_acknowledged_writes_survive_kill_9".to_owned(),
        "-x".to_owned(),
        "-s".to_owned(),
    ];
    crate::e2e::run(root, cargo, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn rounds_default_to_100_and_must_be_positive_numbers() {
        assert_eq!(rounds(&args(&[])).unwrap(), DEFAULT_ROUNDS);
        assert_eq!(rounds(&args(&["7"])).unwrap(), 7);
        assert!(rounds(&args(&["0"])).is_err());
        assert!(rounds(&args(&["many"])).is_err());
        assert!(rounds(&args(&["1", "2"])).is_err());
    }
}
