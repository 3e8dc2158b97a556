//! The load generator: a closed loop of `concurrency` callers, each on its own kept-alive
//! connection, sending the next request as soon as the previous answer is read, for a fixed time.
//!
//! Latency runs from before the client signs a request until the last byte of its answer is read,
//! which is what the calling application waits for. Only requests started after the warm-up count
//! towards throughput and latency; errors count over the whole point, warm-up included, and any
//! answer outside 2xx is an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::client::{Client, Req, Signer};
use crate::procs::cpu_time;

/// Builds the next request of one caller; random choices (which key) come from its generator.
pub type Workload = Arc<dyn Fn(&mut StdRng) -> Req + Send + Sync>;

/// How long and how hard to run one point.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Callers in flight at once.
    pub concurrency: usize,
    /// Time before measuring starts (connections opened, caches filled).
    pub warmup: Duration,
    /// Time measured.
    pub duration: Duration,
}

/// What one point measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    /// Successful requests started inside the measured window.
    pub requests: u64,
    /// Non-2xx answers and transport errors, warm-up included.
    pub errors: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// Requests per second over the measured window.
    pub rps: f64,
    /// Latency percentiles and extremes, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// CPU time the server spent per measured request, in microseconds (all its threads).
    pub server_cpu_us_per_req: Option<f64>,
    /// CPU time the server's peer (OpenBao behind the Vault backend) spent per measured request,
    /// in microseconds.
    pub peer_cpu_us_per_req: Option<f64>,
    /// CPU time this load generator spent per measured request, in microseconds.
    pub client_cpu_us_per_req: Option<f64>,
    /// The 1-minute load average when the point started.
    pub loadavg_1m: Option<f64>,
}

#[derive(Default)]
struct CallerTally {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

/// Where the load goes, and whose CPU time is charged to it.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The server's process.
    pub pid: Option<u32>,
    /// A process the server calls in turn (OpenBao behind the Vault backend).
    pub peer_pid: Option<u32>,
}

impl Target {
    /// A server without a peer.
    pub fn new(addr: SocketAddr, pid: u32) -> Self {
        Self {
            addr,
            pid: Some(pid),
            peer_pid: None,
        }
    }
}

/// Runs one point against `target`.
pub async fn run(
    target: Target,
    signer: Arc<Signer>,
    workload: Workload,
    shape: Shape,
) -> Measured {
    let loadavg_1m = crate::procs::loadavg_1m();
    let start = Instant::now();
    let measure_from = start + shape.warmup;
    let end = measure_from + shape.duration;

    // CPU counters are read when the measured window opens, by a task that sleeps until then.
    let counters = move || {
        [
            target.pid.and_then(cpu_time),
            target.peer_pid.and_then(cpu_time),
            cpu_time(std::process::id()),
        ]
    };
    let cpu_at_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        counters()
    });

    let callers: Vec<_> = (0..shape.concurrency)
        .map(|index| {
            let mut client = Client::new(target.addr, signer.clone());
            let workload = workload.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(index as u64 + 1);
                caller(&mut client, &workload, &mut rng, measure_from, end).await
            })
        })
        .collect();
    let mut tallies = Vec::with_capacity(callers.len());
    for handle in callers {
        match handle.await {
            Ok(tally) => tallies.push(tally),
            Err(e) => tallies.push(CallerTally {
                errors: 1,
                first_error: Some(format!("caller task failed: {e}")),
                ..CallerTally::default()
            }),
        }
    }
    let at_end = counters();
    let at_start = cpu_at_start.await.unwrap_or([None; 3]);

    let mut measured = summarise(tallies, measure_from);
    let requests = measured.requests;
    let per_request = |from: Option<Duration>, to: Option<Duration>| match (from, to) {
        (Some(from), Some(to)) if requests > 0 => {
            Some(to.saturating_sub(from).as_secs_f64() * 1e6 / requests as f64)
        }
        _ => None,
    };
    measured.server_cpu_us_per_req = per_request(at_start[0], at_end[0]);
    measured.peer_cpu_us_per_req = per_request(at_start[1], at_end[1]);
    measured.client_cpu_us_per_req = per_request(at_start[2], at_end[2]);
    measured.loadavg_1m = loadavg_1m;
    measured
}

async fn caller(
    client: &mut Client,
    workload: &Workload,
    rng: &mut StdRng,
    measure_from: Instant,
    end: Instant,
) -> CallerTally {
    let mut tally = CallerTally::default();
    loop {
        let started = Instant::now();
        if started >= end {
            return tally;
        }
        let req = workload(rng);
        let error = match client.send(&req).await {
            Ok((status, _)) if status.is_success() => None,
            Ok((status, body)) => Some(format!(
                "{} {} answered {status}: {}",
                req.method,
                req.path,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )),
            Err(e) => Some(format!("{} {}: {e:#}", req.method, req.path)),
        };
        let done = Instant::now();
        match error {
            None if started >= measure_from => {
                tally
                    .latencies_ns
                    .push(done.duration_since(started).as_nanos() as u64);
                tally.last_done = Some(done);
            }
            None => {}
            Some(message) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(message);
                // A refused connection would otherwise spin; errors are rare by design.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

fn summarise(tallies: Vec<CallerTally>, measure_from: Instant) -> Measured {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_done = measure_from;
    for tally in tallies {
        latencies.extend(tally.latencies_ns);
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
        if let Some(done) = tally.last_done {
            last_done = last_done.max(done);
        }
    }
    latencies.sort_unstable();
    let window = last_done.duration_since(measure_from).as_secs_f64();
    let requests = latencies.len() as u64;
    let ms = |ns: u64| ns as f64 / 1e6;
    let mean = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().map(|&ns| ms(ns)).sum::<f64>() / latencies.len() as f64
    };
    Measured {
        requests,
        errors,
        first_error,
        rps: if window > 0.0 {
            requests as f64 / window
        } else {
            0.0
        },
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        p999_ms: ms(percentile(&latencies, 99.9)),
        mean_ms: mean,
        max_ms: ms(latencies.last().copied().unwrap_or(0)),
        ..Measured::default()
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at least `p`% of all
/// values at or below it.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The small subtraction keeps 99.9% of 1000 at rank 999 despite floating-point rounding.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&values, 50.0), 500);
        assert_eq!(percentile(&values, 99.0), 990);
        assert_eq!(percentile(&values, 99.9), 999);
        assert_eq!(percentile(&values, 100.0), 1000);
        assert_eq!(percentile(&[7], 99.9), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn throughput_counts_only_the_measured_window() {
        let from = Instant::now();
        let tally = CallerTally {
            latencies_ns: vec![1_000_000; 100],
            errors: 2,
            first_error: Some("503".into()),
            last_done: Some(from + Duration::from_secs(2)),
        };
        let measured = summarise(vec![tally, CallerTally::default()], from);
        assert_eq!(measured.requests, 100);
        assert_eq!(measured.errors, 2);
        assert!((measured.rps - 50.0).abs() < 1e-9);
        assert!((measured.p50_ms - 1.0).abs() < 1e-9);
    }
}
