//! The thin IO layer over the `podman` CLI (`tokio::process`, `--format json` where it answers).

pub mod args;
pub mod labels;
pub mod service;

use serde::Deserialize;
use std::process::{ExitStatus, Stdio};
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    #[error(
        "cannot start '{bin}': {source}; is podman installed and on PATH? (config key `podman`)"
    )]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`podman {command}` failed (exit {code}): {stderr}")]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("cannot read the output of `podman {command}`: {message}")]
    Parse { command: String, message: String },
}

/// The podman binary plus its global arguments (`podman_args`, e.g. `--connection NAME`).
#[derive(Debug, Clone)]
pub struct Podman {
    pub bin: String,
    pub global_args: Vec<String>,
}

/// What `podman` printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Podman 5's switch for its cgroups v1 deprecation warning.
pub const QUIET_CGROUPS_V1: &str = "PODMAN_IGNORE_CGROUPSV1_WARNING";

impl Podman {
    pub fn new(bin: impl Into<String>, global_args: Vec<String>) -> Self {
        Self {
            bin: bin.into(),
            global_args,
        }
    }

    /// A command for `podman GLOBAL_ARGS ARGS`, stdin closed.
    pub fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(&self.global_args).args(args).stdin(Stdio::null());
        // Podman 5 on a cgroups v1 host prints a deprecation warning on every command, which
        // would be in every job log several times; `pogo doctor` says it once instead.
        c.env(QUIET_CGROUPS_V1, "1");
        c
    }

    /// The command line a user can paste to reproduce a call (no secrets are ever in argv).
    pub fn display(&self, args: &[String]) -> String {
        let mut all = vec![self.bin.clone()];
        all.extend(self.global_args.iter().cloned());
        all.extend(args.iter().cloned());
        shell_words::join(all)
    }

    fn spawn_error(&self, e: std::io::Error) -> PodmanError {
        PodmanError::Spawn {
            bin: self.bin.clone(),
            source: e,
        }
    }

    /// Run and capture stdout/stderr.
    pub async fn output(&self, args: &[String]) -> Result<Output, PodmanError> {
        self.output_of(self.command(args)).await
    }

    pub async fn output_of(&self, mut cmd: Command) -> Result<Output, PodmanError> {
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| self.spawn_error(e))?;
        Ok(Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Run, capture, and turn a non-zero exit into an error carrying podman's message.
    pub async fn run(&self, args: &[String]) -> Result<String, PodmanError> {
        let out = self.output(args).await?;
        self.check(args, out)
    }

    pub fn check(&self, args: &[String], out: Output) -> Result<String, PodmanError> {
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(PodmanError::Failed {
                command: args.first().cloned().unwrap_or_default()
                    + args
                        .get(1)
                        .map(|s| format!(" {s}"))
                        .as_deref()
                        .unwrap_or(""),
                code: out.status.code().unwrap_or(-1),
                stderr: last_lines(&out.stderr, 5),
            })
        }
    }

    /// Run with `input` on stdin (a secret's value: never on the command line), capture, and
    /// turn a non-zero exit into an error carrying podman's message.
    pub async fn run_with_input(
        &self,
        args: &[String],
        input: &[u8],
    ) -> Result<String, PodmanError> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            // a podman that fails early closes its stdin: its exit status says why
            let _ = stdin.write_all(input).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.spawn_error(e))?;
        self.check(
            args,
            Output {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
        )
    }

    /// Run with stdout/stderr going straight to ours (the job log); returns the exit status.
    pub async fn status_inherit(&self, args: &[String]) -> Result<ExitStatus, PodmanError> {
        self.command(args)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .await
            .map_err(|e| self.spawn_error(e))
    }

    /// Run with stderr shown line by line as it arrives (pull progress in the job log) and
    /// kept: returns success and the last lines of stderr for the error message.
    pub async fn run_tee(&self, args: &[String]) -> Result<(bool, String), PodmanError> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        if let Some(stderr) = child.stderr.take() {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
                if tail.len() == 5 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        let status = child.wait().await.map_err(|e| self.spawn_error(e))?;
        let tail: Vec<String> = tail.into_iter().collect();
        Ok((status.success(), last_lines(&tail.join("\n"), 3)))
    }

    /// Run and parse stdout as JSON.
    pub async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        args: &[String],
    ) -> Result<T, PodmanError> {
        let stdout = self.run(args).await?;
        let text = if stdout.trim().is_empty() {
            "[]"
        } else {
            stdout.trim()
        };
        serde_json::from_str(text).map_err(|e| PodmanError::Parse {
            command: args.join(" "),
            message: e.to_string(),
        })
    }

    /// `podman image exists`: true/false, error only if podman itself failed.
    pub async fn image_exists(&self, image: &str) -> Result<bool, PodmanError> {
        let args = args::image_exists(image);
        let out = self.output(&args).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => self.check(&args, out).map(|_| false),
        }
    }

    /// State of a container, `None` when it does not exist.
    pub async fn container_state(&self, name: &str) -> Result<Option<ContainerState>, PodmanError> {
        let args = args::inspect_container(name);
        let out = self.output(&args).await?;
        if !out.status.success() {
            if out.stderr.contains("no such") || out.stdout.trim() == "[]" {
                return Ok(None);
            }
            return self.check(&args, out).map(|_| None);
        }
        let v: Vec<ContainerInspect> =
            serde_json::from_str(out.stdout.trim()).map_err(|e| PodmanError::Parse {
                command: "container inspect".into(),
                message: e.to_string(),
            })?;
        Ok(v.into_iter().next().map(|c| c.state))
    }
}

/// The host's SELinux mode, from `/sys/fs/selinux/enforce` (absent: no SELinux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selinux {
    Disabled,
    Permissive,
    Enforcing,
}

/// [`Selinux`] of this host (the one place pogo looks; [`selinux_from`] is the pure part).
pub fn selinux() -> Selinux {
    selinux_from(
        std::fs::read_to_string("/sys/fs/selinux/enforce")
            .ok()
            .as_deref(),
    )
}

/// [`Selinux`] from the content of `/sys/fs/selinux/enforce` (`None`: the file is absent).
pub fn selinux_from(enforce: Option<&str>) -> Selinux {
    match enforce.map(str::trim) {
        None => Selinux::Disabled,
        Some("1") => Selinux::Enforcing,
        Some(_) => Selinux::Permissive,
    }
}

/// How to keep a job container alive on this host: podman's own static `catatonit` when it
/// is installed (bind-mounted, pause mode), else a shell loop.
pub fn detect_keep_alive() -> args::KeepAlive {
    [
        "/usr/libexec/podman/catatonit",
        "/usr/bin/catatonit",
        "/usr/libexec/catatonit/catatonit",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file())
    .and_then(|p| p.canonicalize().ok())
    .map(|p| args::KeepAlive::Init(p.display().to_string()))
    .unwrap_or(args::KeepAlive::Shell)
}

/// The last `n` non-empty lines of `s`, joined with "; " for a one-line message.
pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("; ")
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct ContainerInspect {
    #[serde(rename = "State", default)]
    pub state: ContainerState,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
pub struct ContainerState {
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Running", default)]
    pub running: bool,
    #[serde(rename = "Pid", default)]
    pub pid: i64,
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct NamedEntry {
    #[serde(rename = "Name", default)]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_5s_cgroups_v1_warning_stays_out_of_job_logs() {
        let podman = Podman::new("podman", vec!["--root".into(), "/r".into()]);
        let cmd = podman.command(&["ps".to_string()]);
        let std = cmd.as_std();
        assert!(std
            .get_envs()
            .any(|(k, v)| k == QUIET_CGROUPS_V1 && v == Some(std::ffi::OsStr::new("1"))));
        let argv: Vec<_> = std.get_args().collect();
        assert_eq!(argv, ["--root", "/r", "ps"]);
    }
}
