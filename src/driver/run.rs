//! One job run ([`Run`]): the job from the first log line to cleanup, and how each call of
//! the executor program is started, timed and recorded.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::joblog::masks;
use super::process::{self, Deadline, PhaseCommand, PhaseOutput, StdoutMode, StopReason};
use super::{job, CancelWhenLogShows, Driver, Job, JobResult, Outcome, PhaseFailure};

/// One job on its way through the executor: what has been observed so far.
pub(super) struct Run<'a> {
    pub(super) d: &'a Driver,
    pub(super) job: &'a Job,
    /// The result so far; its `outcome` is the job's as it stands.
    pub(super) result: JobResult,
    pub(super) masks: Vec<String>,
    pub(super) job_deadline: Instant,
    /// While `build_script` runs: the text whose appearance in its output cancels the job.
    pub(super) cancel_on: Option<String>,
}

impl<'a> Run<'a> {
    pub(super) fn new(d: &'a Driver, job: &'a Job) -> Self {
        Run {
            d,
            job,
            result: JobResult {
                outcome: Outcome::Success,
                log: String::new(),
                phase_times: Vec::new(),
                cleanup_output: String::new(),
                config_output: None,
                kills: Vec::new(),
                prepare_attempts: 0,
                temp_dirs: Vec::new(),
                warnings: Vec::new(),
                cache_keys: Vec::new(),
            },
            masks: masks(job),
            job_deadline: Instant::now() + job.timeout,
            cancel_on: None,
        }
    }

    /// The result, with the cache keys in the order of the job's `cache:`.
    pub(super) fn into_result(self) -> JobResult {
        let mut result = self.result;
        result.cache_keys.sort_by_key(|(i, _)| *i);
        result
    }

    /// The whole job: Prepare, the stages, cleanup, the last log line.
    pub(super) fn execute(&mut self, cancel: Option<CancelWhenLogShows>) {
        self.logln(&format!(
            "Running with gitlab-runner {} ({})",
            job::RUNNER_VERSION,
            job::RUNNER_REVISION
        ));
        let host = self.d.hostname.clone();
        let token = self.d.runner_short_token.clone();
        self.logln(&format!("  on {host} {token}, system ID: s_000000000000"));

        self.section_start("prepare_executor", "Preparing the \"custom\" executor");
        let exec = self.prepare_with_retries();
        self.section_end("prepare_executor");
        let Some(exec) = exec else {
            self.finish_log();
            return;
        };

        self.run_stages(&exec, cancel);
        self.cleanup(&exec, self.current_status());
        self.finish_log();
    }

    /// `CI_JOB_STATUS` for the outcome so far.
    pub(super) fn current_status(&self) -> &'static str {
        match self.result.outcome {
            Outcome::Success => "success",
            Outcome::Canceled => "canceled",
            _ => "failed",
        }
    }

    /// The executor program called with `args` (after the driver's own arguments).
    pub(super) fn command(
        &self,
        exec: &Exec,
        args: Vec<String>,
        env: Vec<(String, String)>,
        stdout: StdoutMode,
    ) -> PhaseCommand {
        let mut full = self.d.pogo_args.clone();
        full.extend(args);
        PhaseCommand {
            program: self.d.pogo.clone(),
            args: full,
            env,
            cwd: exec.tmp.clone(),
            run_as: self.d.run_as,
            stdout,
        }
    }

    /// `limit` from now, or the job's deadline when that comes first.
    pub(super) fn exec_deadline(&self, limit: Duration) -> Deadline {
        let own = Instant::now() + limit;
        if self.job_deadline < own {
            Deadline {
                at: self.job_deadline,
                reason: StopReason::Timeout,
            }
        } else {
            Deadline {
                at: own,
                reason: StopReason::Timeout,
            }
        }
    }

    /// Runs one phase; records its time and kill report. `to_job_log`: its output goes to
    /// the job log (so to the sink as it arrives), not the runner log.
    pub(super) fn phase(
        &mut self,
        name: &str,
        cmd: &PhaseCommand,
        deadline: Option<Deadline>,
        to_job_log: bool,
    ) -> Result<PhaseOutput, PhaseFailure> {
        let started = Instant::now();
        let live = if to_job_log { self.live_output() } else { None };
        let forward = live.as_ref().map(|(callback, _)| Arc::clone(callback));
        let (callback, cancel) = match &self.cancel_on {
            Some(text) if to_job_log => {
                let (callback, cancel) = process::cancel_on_output(text, forward);
                (Some(callback), Some(cancel))
            }
            _ => (forward, None),
        };
        let result = process::run_phase_live(
            cmd,
            deadline,
            self.d.graceful_kill_timeout,
            self.d.force_kill_timeout,
            callback,
            cancel,
        );
        if let Some((_, lines)) = &live {
            if let Ok(mut l) = lines.lock() {
                l.finish();
            }
        }
        match result {
            Ok(out) => {
                self.result
                    .phase_times
                    .push((name.to_string(), out.duration));
                if let Some(k) = &out.kill {
                    self.result.kills.push((name.to_string(), k.clone()));
                }
                if out.output_truncated {
                    self.result.warnings.push(format!(
                        "{name}: output pipe still open after the process exited; stopped reading"
                    ));
                }
                Ok(out)
            }
            Err(e) => {
                self.result
                    .phase_times
                    .push((name.to_string(), started.elapsed()));
                Err(PhaseFailure::System {
                    message: format!("failed to start {}: {e}", cmd.program.display()),
                })
            }
        }
    }

    /// Gives `path` to the `run_as` user, if there is one.
    pub(super) fn chown(&mut self, path: &Path) {
        if let Some((uid, gid)) = self.d.run_as {
            if let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
                self.result
                    .warnings
                    .push(format!("chown {} to {uid}:{gid}: {e}", path.display()));
            }
        }
    }

    /// Creates `path` (it must not exist) with `content` and `mode`, for the `run_as` user.
    pub(super) fn write_private(
        &mut self,
        path: &Path,
        content: &[u8],
        mode: u32,
    ) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        f.write_all(content)?;
        drop(f);
        self.chown(path);
        Ok(())
    }
}

/// State of one executor instance (one Prepare attempt and what follows).
#[derive(Debug, Clone, Default)]
pub(super) struct Exec {
    pub(super) tmp: PathBuf,
    pub(super) job_env: Vec<(String, String)>,
    pub(super) builds_dir: String,
    pub(super) cache_dir: String,
    pub(super) shared_builds_dir: bool,
    pub(super) hostname: String,
    pub(super) shell: String,
    /// Empty until `StartBuild`.
    pub(super) project_dir: String,
    pub(super) job_cache_dir: String,
}

impl Exec {
    /// `CI_BUILDS_DIR`: empty before `StartBuild` (i.e. in config_exec).
    pub(super) fn builds_dir_if_started(&self) -> String {
        if self.project_dir.is_empty() {
            String::new()
        } else {
            self.builds_dir.clone()
        }
    }
}
