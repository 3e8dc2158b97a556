//! The results of one run, the targets they are judged against, and their two renderings:
//! Markdown for people (`report.md`) and JSON with every figure (`report.json`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::load::Measured;
use crate::paired::Paired;

/// Groups of points: which server answered, configured how.
pub mod group {
    /// kms-server, local backend, cache on (the default configuration).
    pub const LOCAL: &str = "kms-server local";
    /// kms-server, local backend, `enable_cache: false`.
    pub const LOCAL_NO_CACHE: &str = "kms-server local, cache off";
    /// kms-server on the OpenBao peer (Vault backend).
    pub const VAULT: &str = "kms-server vault";
    /// OpenBao Transit called directly.
    pub const OPENBAO: &str = "OpenBao Transit";
    /// The minimal actix-web route.
    pub const FLOOR: &str = "floor";
    /// Random keys on the server holding few keys.
    pub const FEW_KEYS: &str = "few keys, random key";
    /// Random keys on the server holding many keys.
    pub const MANY_KEYS: &str = "many keys, random key";
}

/// Operations, named once.
pub mod op {
    /// `POST /kms/generate-data-key` (or Transit `datakey/plaintext`).
    pub const GENERATE: &str = "generate-data-key";
    /// `POST /kms/decrypt` (or Transit `decrypt`).
    pub const DECRYPT: &str = "decrypt";
    /// `GET /kms/keys/{id}`.
    pub const DESCRIBE: &str = "describe-key";
    /// `GET /kms/keys?limit=50`.
    pub const LIST: &str = "list-keys (50)";
    /// Transit `encrypt` with associated data: what the Vault backend asks of OpenBao.
    pub const TRANSIT_ENCRYPT: &str = "encrypt (Vault backend's call)";
    /// `GET /{bucket}?encryption`.
    pub const BUCKET_ENCRYPTION: &str = "get-bucket-encryption";
    /// GetObject of 1 MiB stored under SSE-KMS (the bucket default).
    pub const GET_OBJECT_KMS: &str = "get-object 1 MiB, SSE-KMS";
    /// GetObject of 1 MiB stored unencrypted: the reference for the cost of encryption.
    pub const GET_OBJECT_PLAIN: &str = "get-object 1 MiB, unencrypted";
    /// PutObject of 1 MiB under SSE-KMS (one data key per object).
    pub const PUT_OBJECT_KMS: &str = "put-object 1 MiB, SSE-KMS";
    /// PutObject of 1 MiB unencrypted.
    pub const PUT_OBJECT_PLAIN: &str = "put-object 1 MiB, unencrypted";
}

/// One point: one operation against one server at one concurrency.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Which server, configured how (see [`group`]).
    pub group: String,
    /// The operation (see [`op`]).
    pub operation: String,
    /// The HTTP route called.
    pub route: String,
    /// Callers in flight.
    pub concurrency: usize,
    /// `ok`, `failed` (any error) or `skipped: <why>`.
    pub status: String,
    /// The figures, absent when skipped.
    pub measured: Option<Measured>,
}

impl Point {
    /// A point that ran; it failed if any request failed or none succeeded.
    pub fn ran(group: &str, operation: &str, route: &str, concurrency: usize, m: Measured) -> Self {
        let ok = m.errors == 0 && m.requests > 0;
        Self {
            group: group.to_owned(),
            operation: operation.to_owned(),
            route: route.to_owned(),
            concurrency,
            status: if ok { "ok" } else { "failed" }.to_owned(),
            measured: Some(m),
        }
    }

    /// A point that could not run, with the reason.
    pub fn skipped(
        group: &str,
        operation: &str,
        route: &str,
        concurrency: usize,
        why: &str,
    ) -> Self {
        Self {
            group: group.to_owned(),
            operation: operation.to_owned(),
            route: route.to_owned(),
            concurrency,
            status: format!("skipped: {why}"),
            measured: None,
        }
    }

    /// Whether the point ran and failed.
    pub fn failed(&self) -> bool {
        self.status == "failed"
    }
}

/// What a server holding `keys` keys cost to prepare, start and keep.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scale {
    /// `few keys` (the main server) or `many keys` (the scale server).
    pub server: String,
    /// Keys the server holds: the bench keys, the default key and the hot key.
    pub keys: usize,
    /// Time to create the bench keys through `LocalBackend` before start, in seconds.
    pub bulk_create_s: f64,
    /// Keys created per second.
    pub bulk_create_keys_per_s: f64,
    /// From spawning kms-server until `/health` answered 200, in seconds.
    pub startup_s: f64,
    /// `VmRSS` right after start-up, in MiB.
    pub rss_idle_mib: f64,
    /// `VmRSS` after its points ran, in MiB.
    pub rss_after_load_mib: f64,
    /// `VmHWM` (peak RSS) after its points ran, in MiB.
    pub rss_peak_mib: f64,
}

/// A target of the issue, judged.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The goal, as text.
    pub goal: String,
    /// The measured value, as text.
    pub measured: String,
    /// `met`, `missed` or `not measured: <why>`.
    pub verdict: String,
}

/// Everything one run produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// `git rev-parse HEAD`, with `-dirty` when the work tree had changes.
    pub commit: String,
    /// Cores the machine offers to this process.
    pub cores: usize,
    /// The processor, from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// `quick` or `full`.
    pub mode: String,
    /// Measured seconds per point.
    pub duration_s: f64,
    /// Warm-up seconds per point.
    pub warmup_s: f64,
    /// Worker threads of the load generator.
    pub client_threads: usize,
    /// 1-minute load average before and after the run.
    pub loadavg_before: Option<f64>,
    /// See `loadavg_before`.
    pub loadavg_after: Option<f64>,
    /// Every point.
    pub points: Vec<Point>,
    /// The server with few keys, then the one with many.
    pub scale: Vec<Scale>,
    /// The target ratios measured in alternation (see `paired.rs`).
    pub paired: Vec<Paired>,
    /// `VmRSS` of the OpenBao dev server after its points, in MiB.
    pub openbao_rss_mib: Option<f64>,
    /// The targets, judged.
    pub targets: Vec<Target>,
    /// Figures derived from the points that the targets do not cover.
    pub ratios: Vec<Target>,
}

impl Report {
    /// The measured figures of one point, when it ran without error.
    pub fn find(&self, group: &str, operation: &str, concurrency: usize) -> Option<&Measured> {
        self.points
            .iter()
            .find(|p| p.group == group && p.operation == operation && p.concurrency == concurrency)
            .filter(|p| p.status == "ok")
            .and_then(|p| p.measured.as_ref())
    }

    /// The start-up and memory figures of the `few keys` or `many keys` server.
    pub fn scale_of(&self, server: &str) -> Option<&Scale> {
        self.scale.iter().find(|s| s.server == server)
    }

    /// A paired comparison by name, when it ran without error.
    pub fn pair(&self, name: &str) -> Option<&Paired> {
        self.paired
            .iter()
            .find(|p| p.name == name)
            .filter(|p| p.ok())
    }

    /// Whether a point of this group was skipped, and why.
    pub fn skipped_reason(&self, group: &str) -> Option<&str> {
        self.points
            .iter()
            .find(|p| p.group == group)
            .and_then(|p| p.status.strip_prefix("skipped: "))
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# kms-bench report\n");
        let _ = writeln!(
            md,
            "{} · commit `{}` · {} cores ({}) · {} mode: {} s measured after {} s warm-up per point · \
             load generator: {} threads on the same machine · load average {} before, {} after\n",
            self.date,
            self.commit,
            self.cores,
            self.cpu_model.as_deref().unwrap_or("unknown processor"),
            self.mode,
            self.duration_s,
            self.warmup_s,
            self.client_threads,
            opt(self.loadavg_before, 2),
            opt(self.loadavg_after, 2),
        );
        if let Some(load) = self.loadavg_before.filter(|&load| load > 0.5) {
            let _ = writeln!(
                md,
                "**The machine was busy** (load average {load:.2} before the run started): \
                 throughput is lower and latency noisier than on an idle machine; the CPU \
                 microseconds per request are the figures least affected.\n"
            );
        }
        self.targets_table(&mut md);
        self.paired_table(&mut md);
        self.points_table(&mut md);
        self.scale_table(&mut md);
        md
    }

    fn targets_table(&self, md: &mut String) {
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(
            md,
            "| target | goal | measured | verdict |\n|---|---|---|---|"
        );
        for t in &self.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                t.name, t.goal, t.measured, t.verdict
            );
        }
        let _ = writeln!(md, "\n## Other ratios\n");
        let _ = writeln!(md, "| ratio | measured |\n|---|---|");
        for t in &self.ratios {
            let _ = writeln!(md, "| {} | {} |", t.name, t.measured);
        }
        let _ = writeln!(md);
    }

    fn paired_table(&self, md: &mut String) {
        if self.paired.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Paired comparisons\n");
        let _ = writeln!(
            md,
            "Both sides run in alternation (A B, B A, …) while both servers are up, so that load \
             from elsewhere on the machine hits both alike; the ratio is the median over rounds.\n"
        );
        let _ = writeln!(
            md,
            "| ratio | conc. | rounds | median | min | max | req/s (ours ÷ theirs, each round) | \
             errors |\n|---|--:|--:|--:|--:|--:|---|--:|"
        );
        for p in &self.paired {
            let rounds: Vec<String> = p
                .rounds
                .iter()
                .map(|r| format!("{:.0} ÷ {:.0}", r.ours_rps, r.theirs_rps))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
                p.name,
                p.concurrency,
                p.rounds.len(),
                p.median_ratio,
                p.min_ratio,
                p.max_ratio,
                rounds.join(", "),
                p.errors
            );
        }
        let _ = writeln!(md);
    }

    fn points_table(&self, md: &mut String) {
        let _ = writeln!(md, "## Points\n");
        let _ = writeln!(
            md,
            "Latency in milliseconds, from before signing to the last byte of the answer. CPU: \
             microseconds of CPU (all threads) per request, of the server, of OpenBao behind \
             it (Vault backend only) and of the load generator.\n"
        );
        let _ = writeln!(
            md,
            "| server | operation | conc. | req/s | p50 | p99 | p99.9 | errors | server CPU | \
             OpenBao CPU | client CPU | status |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
        );
        for p in &self.points {
            match &p.measured {
                Some(m) => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
                        p.group,
                        p.operation,
                        p.concurrency,
                        m.rps,
                        m.p50_ms,
                        m.p99_ms,
                        m.p999_ms,
                        m.errors,
                        opt(m.server_cpu_us_per_req, 0),
                        opt(m.peer_cpu_us_per_req, 0),
                        opt(m.client_cpu_us_per_req, 0),
                        status_cell(p, m),
                    );
                }
                None => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | – | – | – | – | – | – | – | – | {} |",
                        p.group, p.operation, p.concurrency, p.status
                    );
                }
            }
        }
        let _ = writeln!(md);
    }

    fn scale_table(&self, md: &mut String) {
        let _ = writeln!(md, "## Scale\n");
        let _ = writeln!(
            md,
            "| server | keys | bulk create (s) | keys/s | start-up (s) | RSS idle (MiB) | RSS after load \
             (MiB) | peak RSS (MiB) |\n|---|--:|--:|--:|--:|--:|--:|--:|"
        );
        for s in &self.scale {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.0} | {:.3} | {:.1} | {:.1} | {:.1} |",
                s.server,
                s.keys,
                s.bulk_create_s,
                s.bulk_create_keys_per_s,
                s.startup_s,
                s.rss_idle_mib,
                s.rss_after_load_mib,
                s.rss_peak_mib
            );
        }
        if let Some(rss) = self.openbao_rss_mib {
            let _ = writeln!(
                md,
                "\nOpenBao dev server after its points: {rss:.1} MiB RSS."
            );
        }
    }
}

fn status_cell(p: &Point, m: &Measured) -> String {
    match (&m.first_error, p.failed()) {
        (Some(e), true) => format!("failed: {}", e.replace('|', "/").replace('\n', " ")),
        _ => p.status.clone(),
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Judges `value` with `ok` against the goal stated in `goal`, or says why it was not measured.
pub fn judge(
    name: &str,
    goal: &str,
    value: Result<f64, String>,
    ok: impl Fn(f64) -> bool,
) -> Target {
    match value {
        Ok(v) => Target {
            name: name.to_owned(),
            goal: goal.to_owned(),
            measured: format!("{v:.2}"),
            verdict: if ok(v) { "met" } else { "missed" }.to_owned(),
        },
        Err(why) => Target {
            name: name.to_owned(),
            goal: goal.to_owned(),
            measured: "–".to_owned(),
            verdict: format!("not measured: {why}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_compares_in_the_stated_direction() {
        let at_least_3 = |v: f64| v >= 3.0;
        assert_eq!(judge("r", "≥ 3", Ok(3.0), at_least_3).verdict, "met");
        assert_eq!(judge("r", "≥ 3", Ok(2.9), at_least_3).verdict, "missed");
        assert_eq!(judge("r", "≥ 3", Ok(3.0), at_least_3).measured, "3.00");
        let not = judge("v", "≥ 0.8", Err("skipped".into()), |v| v >= 0.8);
        assert_eq!(not.verdict, "not measured: skipped");
    }

    #[test]
    fn a_point_with_any_error_fails() {
        let m = Measured {
            requests: 10,
            errors: 1,
            ..Measured::default()
        };
        assert!(Point::ran("g", "o", "r", 1, m).failed());
        let none = Measured::default();
        assert!(Point::ran("g", "o", "r", 1, none).failed());
        assert!(!Point::skipped("g", "o", "r", 1, "why").failed());
    }
}
