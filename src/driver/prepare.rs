//! `executor.Prepare` with the runner's retries (config_exec, `StartBuild`, prepare_exec)
//! and cleanup_exec: the executor calls around the stages.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::config_output::ConfigOutput;
use super::process::{self, Deadline, PhaseOutput, StdoutMode, StopReason};
use super::run::{Exec, Run};
use super::{interpret_exit, Outcome, PhaseFailure};

/// `PreparationRetries`.
const PREPARATION_RETRIES: u32 = 3;
/// Default of `config_exec_timeout`, `prepare_exec_timeout`, `cleanup_exec_timeout`.
const EXEC_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why Prepare failed.
struct PrepareError {
    message: String,
    /// `BuildError`: no retry.
    build_error: Option<Outcome>,
}

impl Run<'_> {
    /// `retryCreateExecutor`: up to 3 Prepare attempts, cleanup after each
    /// failed one.
    pub(super) fn prepare_with_retries(&mut self) -> Option<Exec> {
        let mut last = String::new();
        for attempt in 1..=PREPARATION_RETRIES {
            self.result.prepare_attempts = attempt;
            let mut exec = Exec::default();
            match self.prepare(&mut exec) {
                Ok(()) => return Some(exec),
                Err(e) => {
                    self.logln(&format!(
                        "\x1b[31;1mERROR: Preparation failed: {}\x1b[0;m",
                        e.message
                    ));
                    if !exec.tmp.as_os_str().is_empty() {
                        self.cleanup(&exec, "running");
                    }
                    if let Some(o) = e.build_error {
                        self.result.outcome = o;
                        return None;
                    }
                    last = e.message;
                    if Instant::now() >= self.job_deadline {
                        self.result.outcome = Outcome::TimedOut;
                        return None;
                    }
                    if attempt < PREPARATION_RETRIES {
                        self.logln(&format!(
                            "Will be retried in {:?} ...",
                            self.d.prepare_retry_interval
                        ));
                        std::thread::sleep(self.d.prepare_retry_interval);
                    }
                }
            }
        }
        self.result.outcome = Outcome::SystemFailure { reason: last };
        None
    }

    /// `executor.Prepare`: temp dir, response.json, config_exec,
    /// StartBuild, prepare_exec.
    fn prepare(&mut self, exec: &mut Exec) -> Result<(), PrepareError> {
        let sys = |message: String| PrepareError {
            message,
            build_error: None,
        };
        exec.tmp = process::mkdtemp(&self.d.tmp_root, "custom-executor").map_err(|e| {
            sys(format!(
                "creating temporary directory in {}: {e}",
                self.d.tmp_root.display()
            ))
        })?;
        self.result.temp_dirs.push(exec.tmp.clone());
        let tmp = exec.tmp.clone();
        self.chown(&tmp);
        let payload = self.job.response_json(&self.job.payload_variables());
        let bytes = serde_json::to_vec(&payload).map_err(|e| sys(format!("encoding job: {e}")))?;
        self.write_private(&tmp.join("response.json"), &bytes, 0o600)
            .map_err(|e| sys(format!("writing response.json: {e}")))?;

        exec.builds_dir = self.d.builds_dir.clone().unwrap_or_default();
        exec.cache_dir = self.d.cache_dir.clone().unwrap_or_default();
        exec.hostname = self.d.hostname.clone();
        exec.shell = "bash".into();

        // config_exec
        let out = self.prepare_phase(exec, "config", false, StdoutMode::Separate)?;
        let mut driver_line = "Using Custom executor".to_string();
        if !out.stdout.is_empty() {
            let value: Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| sys(format!("error while parsing JSON output: {e}")))?;
            let cfg = ConfigOutput::from_value(&value)
                .map_err(|e| sys(format!("error while parsing JSON output: {e}")))?;
            self.result.config_output = Some(value);
            driver_line.push_str(&cfg.apply(exec));
        }
        self.logln(&format!("{driver_line}..."));

        // StartBuild
        if exec.builds_dir.is_empty() {
            return Err(config_error("the builds_dir is not configured"));
        }
        if exec.cache_dir.is_empty() {
            return Err(config_error("the cache_dir is not configured"));
        }
        if exec.shell != "bash" && exec.shell != "sh" {
            return Err(sys(format!("shell {} not found", exec.shell)));
        }
        let builds = exec.builds_dir.trim_end_matches('/').to_string();
        exec.project_dir = if exec.shared_builds_dir {
            format!(
                "{builds}/{}/{}/{}",
                self.d.runner_short_token, self.d.concurrent_id, self.job.project_path
            )
        } else {
            format!("{builds}/{}", self.job.project_path)
        };
        exec.job_cache_dir = format!(
            "{}/{}",
            exec.cache_dir.trim_end_matches('/'),
            self.job.project_path
        );

        // prepare_exec
        self.prepare_phase(exec, "prepare", true, StdoutMode::Combined)
            .map(|_| ())
    }

    /// Runs config_exec or prepare_exec (`name`: "config" or "prepare") and logs its
    /// output; a timeout or a failing exit is a `PrepareError`.
    fn prepare_phase(
        &mut self,
        exec: &Exec,
        name: &str,
        job_env: bool,
        stdout: StdoutMode,
    ) -> Result<PhaseOutput, PrepareError> {
        let sys = |message: String| PrepareError {
            message,
            build_error: None,
        };
        let vars = self.all_variables(exec, "running");
        let env = self.env_for(exec, job_env, &vars);
        let cmd = self.command(exec, vec![name.into()], env, stdout);
        let deadline = self.exec_deadline(EXEC_TIMEOUT);
        let out = self
            .phase(name, &cmd, Some(deadline), true)
            .map_err(|f| sys(f.message().to_string()))?;
        self.log_output(&out.output);
        if out.kill.is_some() {
            return Err(sys(format!("{name}_exec timed out")));
        }
        interpret_exit(out.termination, &exec.tmp.join("build_exit_code"))
            .map_err(|f| self.prepare_error(f))?;
        Ok(out)
    }

    fn prepare_error(&self, f: PhaseFailure) -> PrepareError {
        match f {
            PhaseFailure::Build { exit_code, message } => PrepareError {
                message,
                build_error: Some(Outcome::BuildFailure { exit_code }),
            },
            PhaseFailure::System { message } => PrepareError {
                message,
                build_error: None,
            },
        }
    }

    /// cleanup_exec (runner log), then remove the temp dir.
    pub(super) fn cleanup(&mut self, exec: &Exec, status: &str) {
        let vars = self.all_variables(exec, status);
        let env = self.env_for(exec, true, &vars);
        let cmd = self.command(exec, vec!["cleanup".into()], env, StdoutMode::Combined);
        let deadline = Deadline {
            at: Instant::now() + EXEC_TIMEOUT,
            reason: StopReason::Timeout,
        };
        match self.phase("cleanup", &cmd, Some(deadline), false) {
            Ok(out) => {
                self.result
                    .cleanup_output
                    .push_str(&String::from_utf8_lossy(&out.output));
                if let Err(f) = interpret_exit(out.termination, &exec.tmp.join("build_exit_code")) {
                    self.result
                        .warnings
                        .push(format!("cleanup_exec failed: {}", f.message()));
                }
            }
            Err(f) => self
                .result
                .warnings
                .push(format!("cleanup_exec failed: {}", f.message())),
        }
        if let Err(e) = std::fs::remove_dir_all(&exec.tmp) {
            self.result
                .warnings
                .push(format!("removing {}: {e}", exec.tmp.display()));
        }
    }
}

fn config_error(message: &str) -> PrepareError {
    PrepareError {
        message: message.to_string(),
        build_error: Some(Outcome::ConfigurationError {
            reason: message.to_string(),
        }),
    }
}
