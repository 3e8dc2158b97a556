//! The targets, judged from the points, and the other ratios worth reading.

use crate::load::Measured;
use crate::report::{group, judge, op, Report, Target};

/// The servers of the scale comparison, as [`crate::report::Scale::server`] names them.
pub const FEW: &str = "few keys";
/// See [`FEW`].
pub const MANY: &str = "many keys";

/// The concurrency the throughput targets are stated at.
pub const TARGET_CONCURRENCY: usize = 16;

/// The paired comparisons, by name.
pub const PAIR_LOCAL_OPENBAO: &str = "local generate-data-key ÷ OpenBao datakey";
/// See [`PAIR_LOCAL_OPENBAO`].
pub const PAIR_LOCAL_FLOOR: &str = "local generate-data-key ÷ floor";
/// See [`PAIR_LOCAL_OPENBAO`].
pub const PAIR_VAULT_GENERATE: &str = "vault backend generate-data-key ÷ OpenBao datakey";
/// See [`PAIR_LOCAL_OPENBAO`].
pub const PAIR_VAULT_DECRYPT: &str = "vault backend decrypt ÷ OpenBao decrypt";
/// See [`PAIR_LOCAL_OPENBAO`]; OpenBao alone on the last core, as if on its own machine.
pub const PAIR_VAULT_GENERATE_PINNED: &str =
    "vault backend generate-data-key ÷ OpenBao datakey, OpenBao on its own core";
/// See [`PAIR_VAULT_GENERATE_PINNED`].
pub const PAIR_VAULT_DECRYPT_PINNED: &str =
    "vault backend decrypt ÷ OpenBao decrypt, OpenBao on its own core";

/// Fills `report.targets` and `report.ratios`.
pub fn judge_all(report: &mut Report) {
    let targets = targets(report);
    let ratios = ratios(report);
    report.targets = targets;
    report.ratios = ratios;
}

fn targets(r: &Report) -> Vec<Target> {
    let c = TARGET_CONCURRENCY;
    let mut out = vec![
        judge(
            &format!("{PAIR_LOCAL_OPENBAO}, req/s at c={c}"),
            "≥ 3",
            paired_or_sequential(
                r,
                PAIR_LOCAL_OPENBAO,
                (group::LOCAL, op::GENERATE),
                (group::OPENBAO, op::GENERATE),
            ),
            |v| v >= 3.0,
        ),
        judge(
            &format!("{PAIR_LOCAL_FLOOR}, req/s at c={c}"),
            "≥ 0.50",
            paired_or_sequential(
                r,
                PAIR_LOCAL_FLOOR,
                (group::LOCAL, op::GENERATE),
                (group::FLOOR, op::GENERATE),
            ),
            |v| v >= 0.5,
        ),
    ];
    for (name, operation) in [
        (PAIR_VAULT_GENERATE, op::GENERATE),
        (PAIR_VAULT_DECRYPT, op::DECRYPT),
    ] {
        let value = match r.skipped_reason(group::VAULT) {
            Some(why) => Err(format!("skipped: {why}")),
            None => paired_or_sequential(
                r,
                name,
                (group::VAULT, operation),
                (group::OPENBAO, operation),
            ),
        };
        out.push(judge(
            &format!("{name}, req/s at c={c}"),
            "≥ 0.80",
            value,
            |v| v >= 0.8,
        ));
    }
    out.push(memory_target(r));
    for operation in [op::LIST, op::DESCRIBE] {
        for concurrency in scale_concurrencies(r) {
            out.push(judge(
                &format!(
                    "{operation} p50 at {} ÷ at {}, c={concurrency}",
                    keys(r, MANY),
                    keys(r, FEW)
                ),
                "≤ 2",
                latency_ratio(r, operation, concurrency, |m| m.p50_ms),
                |v| v <= 2.0,
            ));
        }
    }
    out
}

fn memory_target(r: &Report) -> Target {
    let value = match r.scale_of(MANY) {
        Some(s) if s.rss_idle_mib > 0.0 => Ok(s.rss_idle_mib.max(s.rss_after_load_mib)),
        _ => Err("no scale server".to_owned()),
    };
    let mut target = judge(
        &format!(
            "kms-server RSS with {} (MiB, highest of idle and after load)",
            keys(r, MANY)
        ),
        "< 100",
        value,
        |v| v < 100.0,
    );
    if r.scale_of(MANY).is_some_and(|s| s.keys < 100_000) {
        target.verdict += " (fewer keys than the 100,000 of the target)";
    }
    target
}

fn ratios(r: &Report) -> Vec<Target> {
    let mut out = Vec::new();
    let mut ratio = |name: String, value: Result<f64, String>| {
        out.push(Target {
            name,
            goal: String::new(),
            measured: value.map_or_else(|why| format!("– ({why})"), |v| format!("{v:.2}")),
            verdict: String::new(),
        });
    };
    for &c in &concurrencies(r) {
        for (peer, operation) in [
            (group::OPENBAO, op::GENERATE),
            (group::FLOOR, op::GENERATE),
            (group::OPENBAO, op::DECRYPT),
        ] {
            ratio(
                format!("local {operation} ÷ {peer} {operation}, req/s at c={c}"),
                rps_ratio(r, (group::LOCAL, operation), (peer, operation), c),
            );
        }
    }
    for name in [PAIR_VAULT_GENERATE_PINNED, PAIR_VAULT_DECRYPT_PINNED] {
        let value = r
            .pair(name)
            .map(|p| p.median_ratio)
            .ok_or_else(|| "not measured (needs taskset and 2 cores)".to_owned());
        ratio(format!("{name}, req/s at c={TARGET_CONCURRENCY}"), value);
    }
    ratio(
        format!(
            "OpenBao encrypt (the Vault backend's call) ÷ OpenBao datakey, req/s at \
             c={TARGET_CONCURRENCY} (bounds the Vault backend's ratio while OpenBao shares \
             the machine)"
        ),
        rps_ratio(
            r,
            (group::OPENBAO, op::TRANSIT_ENCRYPT),
            (group::OPENBAO, op::GENERATE),
            TARGET_CONCURRENCY,
        ),
    );
    for (encrypted, plain) in [
        (op::GET_OBJECT_KMS, op::GET_OBJECT_PLAIN),
        (op::PUT_OBJECT_KMS, op::PUT_OBJECT_PLAIN),
    ] {
        ratio(
            format!("{encrypted} ÷ unencrypted, req/s at c={TARGET_CONCURRENCY}"),
            rps_ratio(
                r,
                (group::LOCAL, encrypted),
                (group::LOCAL, plain),
                TARGET_CONCURRENCY,
            ),
        );
    }
    for operation in [op::GENERATE, op::DECRYPT, op::DESCRIBE] {
        ratio(
            format!("cache off ÷ cache on, {operation} req/s at c={TARGET_CONCURRENCY}"),
            rps_ratio(
                r,
                (group::LOCAL_NO_CACHE, operation),
                (group::LOCAL, operation),
                TARGET_CONCURRENCY,
            ),
        );
    }
    for (g, operation) in [
        (group::LOCAL, op::GENERATE),
        (group::FLOOR, op::GENERATE),
        (group::OPENBAO, op::GENERATE),
        (group::OPENBAO, op::TRANSIT_ENCRYPT),
        (group::VAULT, op::GENERATE),
    ] {
        let cpu = r
            .find(g, operation, TARGET_CONCURRENCY)
            .and_then(|m| m.server_cpu_us_per_req)
            .ok_or_else(|| "not measured".to_owned());
        ratio(
            format!("server CPU µs per {operation}, {g}, c={TARGET_CONCURRENCY}"),
            cpu,
        );
    }
    for operation in [op::LIST, op::DESCRIBE, op::GENERATE] {
        for concurrency in scale_concurrencies(r) {
            ratio(
                format!(
                    "{operation} p99 at {} ÷ at {}, c={concurrency}",
                    keys(r, MANY),
                    keys(r, FEW)
                ),
                latency_ratio(r, operation, concurrency, |m| m.p99_ms),
            );
        }
    }
    for concurrency in scale_concurrencies(r) {
        ratio(
            format!(
                "{} p50 at {} ÷ at {}, c={concurrency}",
                op::GENERATE,
                keys(r, MANY),
                keys(r, FEW)
            ),
            latency_ratio(r, op::GENERATE, concurrency, |m| m.p50_ms),
        );
    }
    if let (Some(few), Some(many)) = (r.scale_of(FEW), r.scale_of(MANY)) {
        ratio(
            format!("start-up at {} keys ÷ at {}", many.keys, few.keys),
            Ok(many.startup_s / few.startup_s.max(1e-9)),
        );
    }
    out
}

/// The median ratio of the paired comparison `name`; without one, the ratio of the two
/// sequential points at the target concurrency.
fn paired_or_sequential(
    r: &Report,
    name: &str,
    ours: (&str, &str),
    theirs: (&str, &str),
) -> Result<f64, String> {
    match r.pair(name) {
        Some(pair) => Ok(pair.median_ratio),
        None => rps_ratio(r, ours, theirs, TARGET_CONCURRENCY)
            .map_err(|why| format!("no paired comparison; {why}")),
    }
}

fn rps_ratio(
    r: &Report,
    ours: (&str, &str),
    theirs: (&str, &str),
    c: usize,
) -> Result<f64, String> {
    let ours_m = r
        .find(ours.0, ours.1, c)
        .ok_or_else(|| format!("{} {} c={c} did not run cleanly", ours.0, ours.1))?;
    let theirs_m = r
        .find(theirs.0, theirs.1, c)
        .ok_or_else(|| format!("{} {} c={c} did not run cleanly", theirs.0, theirs.1))?;
    if theirs_m.rps <= 0.0 {
        return Err("no throughput to compare with".to_owned());
    }
    Ok(ours_m.rps / theirs_m.rps)
}

fn latency_ratio(
    r: &Report,
    operation: &str,
    c: usize,
    pick: impl Fn(&Measured) -> f64,
) -> Result<f64, String> {
    let few = r
        .find(group::FEW_KEYS, operation, c)
        .ok_or_else(|| format!("{operation} c={c} with few keys did not run cleanly"))?;
    let many = r
        .find(group::MANY_KEYS, operation, c)
        .ok_or_else(|| format!("{operation} c={c} with many keys did not run cleanly"))?;
    if pick(few) <= 0.0 {
        return Err("no latency to compare with".to_owned());
    }
    Ok(pick(many) / pick(few))
}

fn keys(r: &Report, server: &str) -> String {
    r.scale_of(server)
        .map_or_else(|| "?".to_owned(), |s| format!("{} keys", s.keys))
}

fn concurrencies(r: &Report) -> Vec<usize> {
    distinct(r, group::LOCAL)
}

fn scale_concurrencies(r: &Report) -> Vec<usize> {
    distinct(r, group::FEW_KEYS)
}

fn distinct(r: &Report, g: &str) -> Vec<usize> {
    let mut out: Vec<usize> = r
        .points
        .iter()
        .filter(|p| p.group == g)
        .map(|p| p.concurrency)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}
