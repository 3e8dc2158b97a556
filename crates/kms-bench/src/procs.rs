//! The processes the bench starts (kms-server, the floor, OpenBao) and what `/proc` tells about
//! them: resident memory, CPU time, the load of the machine.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::{Auth, Client, Req, Signer};

/// A child process that is killed (by its pid) when dropped, so no run leaves servers behind.
pub struct Proc {
    name: String,
    child: Child,
    spawned: Instant,
}

impl Proc {
    /// Starts `command` with its output appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        eprintln!("$ {}  (log: {})", shown(command), log.display());
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        eprintln!("kms-bench: {name} runs as pid {}", child.id());
        Ok(Self {
            name: name.to_owned(),
            child,
            spawned: Instant::now(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET path` until it answers 2xx; returns the time since the process was spawned.
    pub async fn wait_ready(&mut self, addr: SocketAddr, path: &str) -> Result<Duration> {
        let signer = std::sync::Arc::new(Signer::new("-", "-"));
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let mut client = Client::new(addr, signer.clone());
            if let Ok((status, _)) = client.send(&Req::get(path, Auth::None)).await {
                if status.is_success() {
                    return Ok(self.spawned.elapsed());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited while starting ({status}); see its log",
                    self.name
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not answer {path} within 300 s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        status_field(self.pid(), "VmRSS:")
    }

    /// Peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_field(self.pid(), "VmHWM:")
    }

    /// Stops the process now.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A command line for the terminal with the run's throwaway secrets left out: environment
/// variables by name only, and the value of an OpenBao root token argument hidden.
fn shown(command: &Command) -> String {
    let mut words: Vec<String> = command
        .get_envs()
        .map(|(name, _)| format!("{}=…", name.to_string_lossy()))
        .collect();
    words.push(command.get_program().to_string_lossy().into_owned());
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        match arg.split_once("token-id=") {
            Some((flag, _)) => words.push(format!("{flag}token-id=…")),
            None => words.push(arg.into_owned()),
        }
    }
    words.join(" ")
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// An address on 127.0.0.1 with a free port.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// User plus system CPU time of a whole process (every thread), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces, so fields are counted after its closing parenthesis:
    // the first field there is the state (field 3), so utime (14) and stime (15) are 11 and 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// Restricts every thread of process `pid` to the cores in `cpus` (a `taskset` list such as
/// `0` or `0-2`). Returns whether it worked; `taskset` (util-linux) may be missing.
pub fn pin(pid: u32, cpus: &str) -> bool {
    Command::new("taskset")
        .args(["--all-tasks", "--pid", "--cpu-list", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The 1-minute load average of the machine.
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_commands_leave_secrets_out() {
        let mut command = Command::new("bao");
        command
            .args(["server", "-dev-root-token-id=s3cret"])
            .env("KMS_SECRET_KEY", "hunter2");
        let text = shown(&command);
        assert_eq!(text, "KMS_SECRET_KEY=… bao server -dev-root-token-id=…");
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        assert!(status_field(std::process::id(), "VmRSS:").is_some_and(|kib| kib > 0));
        assert!(cpu_time(std::process::id()).is_some());
        assert!(loadavg_1m().is_some());
    }
}
