//! Running external programs the way every task does: print the command line first, then run it
//! with inherited output, and turn a non-zero exit into an error that names the command.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};

/// One command line, with the directory and extra environment it runs with.
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    envs: Vec<(String, OsString)>,
}

impl Cmd {
    /// A command that runs `program` with no arguments in the current directory.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            dir: None,
            envs: Vec::new(),
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs the command in `dir` instead of the current directory.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Sets one environment variable for the command (and shows it in the printed line).
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    /// Prints the command line, runs it with inherited stdin, stdout and stderr, and fails when
    /// it cannot start or exits unsuccessfully.
    pub fn run(&self) -> Result<()> {
        let status = self.run_status()?;
        if !status.success() {
            bail!("command `{self}` failed ({status})");
        }
        Ok(())
    }

    /// Prints the command line and runs it like [`Cmd::run`], but leaves the judgement of the
    /// exit status to the caller (pytest's "no tests ran" status deserves its own message).
    pub fn run_status(&self) -> Result<ExitStatus> {
        eprintln!("$ {self}");
        self.command()
            .status()
            .with_context(|| format!("cannot start `{}`", self.program.to_string_lossy()))
    }

    /// Runs the command quietly and returns its standard output; used for version probes, so it
    /// is not printed.
    pub fn read(&self) -> Result<String> {
        let output = self
            .command()
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot start `{}`", self.program.to_string_lossy()))?;
        if !output.status.success() {
            bail!("command `{self}` failed ({})", output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.dir {
            write!(f, "(cd {} && ", dir.display())?;
        }
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", quote(&value.to_string_lossy()))?;
        }
        write!(f, "{}", quote(&self.program.to_string_lossy()))?;
        for arg in &self.args {
            write!(f, " {}", quote(&arg.to_string_lossy()))?;
        }
        if self.dir.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Quotes a word for display so that the printed line can be pasted into a shell.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Finds `program` on `PATH`, the way a shell would, so that errors can say what is missing.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_a_pasteable_command_line() {
        let cmd = Cmd::new("cargo")
            .args(["clippy", "--", "-D", "warnings"])
            .arg("it's");
        assert_eq!(cmd.to_string(), r"cargo clippy -- -D warnings 'it'\''s'");
    }

    #[test]
    fn display_shows_directory_and_environment() {
        let cmd = Cmd::new("npm").arg("ci").dir("/tmp/js").env("A", "b c");
        assert_eq!(cmd.to_string(), "(cd /tmp/js && A='b c' npm ci)");
    }

    #[test]
    fn a_failing_command_names_itself_in_the_error() {
        let err = Cmd::new("false").run().unwrap_err();
        assert!(err.to_string().contains("command `false` failed"), "{err}");
    }

    #[test]
    fn read_returns_standard_output() {
        assert_eq!(Cmd::new("echo").arg("hi").read().unwrap(), "hi\n");
    }

    #[test]
    fn find_on_path_finds_sh_and_not_nonsense() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("no-such-program-xtask").is_none());
    }
}
