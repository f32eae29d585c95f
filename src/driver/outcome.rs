//! How a job and its phases ended: the job's [`Outcome`], the [`JobResult`] with everything
//! observable about a run, and a phase's exit read as gitlab-runner reads it
//! ([`interpret_exit`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::process::{KillReport, Termination};

/// How the job ended, as GitLab would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `script_failure` with the job's exit code.
    BuildFailure {
        exit_code: i32,
    },
    /// `runner_system_failure`.
    SystemFailure {
        reason: String,
    },
    /// `runner_configuration_error` (e.g. builds_dir not configured).
    ConfigurationError {
        reason: String,
    },
    /// The job was canceled ([`CancelWhenLogShows`]).
    Canceled,
    /// `job_execution_timeout`.
    TimedOut,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// Everything observable about one job run.
#[derive(Debug, Clone)]
pub struct JobResult {
    pub outcome: Outcome,
    /// The job log as GitLab would store it.
    pub log: String,
    /// Every phase in order: "config", "prepare", each run stage by the
    /// name passed to run_exec, "cleanup".
    pub phase_times: Vec<(String, Duration)>,
    /// cleanup_exec's stdout+stderr (runner log, not job log), all calls.
    pub cleanup_output: String,
    /// config_exec's parsed output (last successful call).
    pub config_output: Option<Value>,
    /// Phases that had to be signalled, with what happened.
    pub kills: Vec<(String, KillReport)>,
    /// How many times Prepare (config_exec + prepare_exec) was attempted.
    pub prepare_attempts: u32,
    /// The `custom-executor*` temp dirs used (removed after cleanup).
    pub temp_dirs: Vec<PathBuf>,
    /// Runner-log warnings (not in the job log).
    pub warnings: Vec<String>,
    /// The key each cache of the job (by its index in `cache:`) was restored or archived
    /// under, as computed for the job.
    pub cache_keys: Vec<(usize, String)>,
}

impl JobResult {
    /// How many times the phase or stage `name` ran.
    pub fn phase_count(&self, name: &str) -> usize {
        self.phase_times.iter().filter(|(n, _)| n == name).count()
    }

    /// Names of all phases in order.
    pub fn phases(&self) -> Vec<&str> {
        self.phase_times.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The kill report of the first signalled phase named `name`.
    pub fn kill_report(&self, name: &str) -> Option<&KillReport> {
        self.kills.iter().find(|(n, _)| n == name).map(|(_, k)| k)
    }
}

/// A failed phase, classified like `command.go: waitForCommand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseFailure {
    /// `BuildError` (exit 1): the job's exit code.
    Build { exit_code: i32, message: String },
    /// Anything else: a system failure.
    System { message: String },
}

impl PhaseFailure {
    pub fn message(&self) -> &str {
        match self {
            PhaseFailure::Build { message, .. } | PhaseFailure::System { message } => message,
        }
    }
}

/// Interprets how a phase ended. Exit 1 reads the first line of
/// `BUILD_EXIT_CODE_FILE`.
pub fn interpret_exit(
    termination: Termination,
    build_exit_code_file: &Path,
) -> Result<(), PhaseFailure> {
    let unknown = |code: i32, detail: String| {
        PhaseFailure::System {
        message: format!(
            "unknown Custom executor executable exit code {code}; executable execution terminated with: {detail}"
        ),
    }
    };
    match termination {
        Termination::Exited(0) => Ok(()),
        Termination::Exited(1) => match std::fs::read_to_string(build_exit_code_file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PhaseFailure::Build {
                exit_code: 1,
                message: "exit status 1".into(),
            }),
            Err(e) => Err(unknown(
                2,
                format!("reading {}: {e}", build_exit_code_file.display()),
            )),
            Ok(content) => {
                let first = content.lines().next().unwrap_or("");
                match first.parse::<i32>() {
                    Ok(code) => Err(PhaseFailure::Build {
                        exit_code: code,
                        message: format!("exit status {code}"),
                    }),
                    Err(e) => Err(unknown(
                        2,
                        format!("invalid build exit code {first:?}: {e}"),
                    )),
                }
            }
        },
        Termination::Exited(2) => Err(PhaseFailure::System {
            message: "exit status 2".into(),
        }),
        Termination::Exited(n) => Err(unknown(n, format!("exit status {n}"))),
        Termination::Signaled(sig) => Err(unknown(-1, format!("signal: {}", signal_name(sig)))),
        Termination::Dormant { pid } => Err(PhaseFailure::System {
            message: format!("failed to kill process PID={pid}, likely process is dormant"),
        }),
    }
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().trim_start_matches("SIG").to_lowercase())
        .unwrap_or_else(|_| sig.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exit_code_interpretation() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("build_exit_code");
        assert_eq!(interpret_exit(Termination::Exited(0), &f), Ok(()));
        assert_eq!(
            interpret_exit(Termination::Exited(1), &f),
            Err(PhaseFailure::Build {
                exit_code: 1,
                message: "exit status 1".into()
            })
        );
        std::fs::write(&f, "42\nignored\n").unwrap();
        assert!(matches!(
            interpret_exit(Termination::Exited(1), &f),
            Err(PhaseFailure::Build { exit_code: 42, .. })
        ));
        std::fs::write(&f, "forty-two\n").unwrap();
        assert!(matches!(
            interpret_exit(Termination::Exited(1), &f),
            Err(PhaseFailure::System { .. })
        ));
        // exit 2 never looks at the file
        assert_eq!(
            interpret_exit(Termination::Exited(2), &f),
            Err(PhaseFailure::System {
                message: "exit status 2".into()
            })
        );
        let e = interpret_exit(Termination::Exited(3), &f).unwrap_err();
        assert!(e
            .message()
            .starts_with("unknown Custom executor executable exit code 3"));
        let e = interpret_exit(Termination::Signaled(9), &f).unwrap_err();
        assert!(e.message().contains("exit code -1"), "{e:?}");
        assert!(e.message().contains("signal: kill"), "{e:?}");
    }
}
