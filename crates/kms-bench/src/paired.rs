//! Paired comparisons: the two sides of a target ratio measured in alternation (A B, then B A,
//! round after round) while both servers run, so that a neighbour's build slowing the machine for
//! a minute slows both sides alike. The ratio reported is the median of the rounds' ratios.

use std::sync::Arc;

use serde::Serialize;

use crate::client::Signer;
use crate::load::{self, Shape, Target, Workload};

/// One side of a pair.
#[derive(Clone)]
pub struct Side {
    /// What it is, for the report (for example `kms-server local generate-data-key`).
    pub label: String,
    /// Where the load goes.
    pub target: Target,
    /// What is sent.
    pub workload: Workload,
}

/// A ratio to measure: `ours` ÷ `theirs` in requests per second.
#[derive(Clone)]
pub struct Pair {
    /// The name the targets look the result up by.
    pub name: &'static str,
    /// The numerator.
    pub ours: Side,
    /// The denominator.
    pub theirs: Side,
}

/// One round of a pair.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    /// Requests per second of `ours`.
    pub ours_rps: f64,
    /// Requests per second of `theirs`.
    pub theirs_rps: f64,
    /// `ours_rps / theirs_rps`.
    pub ratio: f64,
}

/// The result of a pair.
#[derive(Clone, Debug, Serialize)]
pub struct Paired {
    /// See [`Pair::name`].
    pub name: String,
    /// See [`Side::label`].
    pub ours: String,
    /// See [`Side::label`].
    pub theirs: String,
    /// Callers in flight on each side.
    pub concurrency: usize,
    /// Every round.
    pub rounds: Vec<Round>,
    /// The median of the rounds' ratios.
    pub median_ratio: f64,
    /// The lowest round ratio.
    pub min_ratio: f64,
    /// The highest round ratio.
    pub max_ratio: f64,
    /// Failed requests on either side; any makes the pair fail.
    pub errors: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
}

impl Paired {
    /// Whether every request of every round succeeded.
    pub fn ok(&self) -> bool {
        self.errors == 0 && !self.rounds.is_empty()
    }
}

/// Measures `pair` for `rounds` rounds of `shape` per side, alternating which side goes first.
pub async fn run(pair: &Pair, signer: &Arc<Signer>, rounds: usize, shape: Shape) -> Paired {
    eprintln!("kms-bench: paired · {} · {rounds} rounds", pair.name);
    let mut results = Vec::with_capacity(rounds);
    let mut errors = 0;
    let mut first_error = None;
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [&pair.ours, &pair.theirs]
        } else {
            [&pair.theirs, &pair.ours]
        };
        let mut rps = [0.0; 2];
        for side in order {
            let m = load::run(side.target, signer.clone(), side.workload.clone(), shape).await;
            errors += m.errors;
            if first_error.is_none() {
                first_error = m.first_error.clone();
            }
            let slot = if std::ptr::eq(side, &pair.ours) { 0 } else { 1 };
            rps[slot] = m.rps;
        }
        results.push(Round {
            ours_rps: rps[0],
            theirs_rps: rps[1],
            ratio: if rps[1] > 0.0 { rps[0] / rps[1] } else { 0.0 },
        });
    }
    let mut ratios: Vec<f64> = results.iter().map(|r| r.ratio).collect();
    ratios.sort_by(f64::total_cmp);
    Paired {
        name: pair.name.to_owned(),
        ours: pair.ours.label.clone(),
        theirs: pair.theirs.label.clone(),
        concurrency: shape.concurrency,
        rounds: results,
        median_ratio: median(&ratios),
        min_ratio: ratios.first().copied().unwrap_or(0.0),
        max_ratio: ratios.last().copied().unwrap_or(0.0),
        errors,
        first_error,
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_takes_the_middle() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 9.0]), 2.5);
    }
}
