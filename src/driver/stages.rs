//! The stage loop (`executeScript`): every run_exec stage in gitlab-runner's order, with
//! its deadline, and what its end means for the job.

use std::time::{Duration, Instant};

use super::joblog::section_of;
use super::process::{self, Deadline, StdoutMode, StopReason};
use super::run::{Exec, Run};
use super::script::{self, CacheArchive, ScriptInfo, Writer};
use super::{
    interpret_exit, CachePolicy, CancelWhenLogShows, Dependency, Job, Outcome, PhaseFailure,
};

/// Default of `RUNNER_AFTER_SCRIPT_TIMEOUT`.
const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of `CACHE_REQUEST_TIMEOUT` (minutes).
const CACHE_REQUEST_TIMEOUT: u64 = 10;

/// Result of one run_exec stage.
enum StageResult {
    Ok,
    Failed(PhaseFailure),
    Stopped(StopReason),
}

impl Run<'_> {
    /// `executeScript`: all run_exec stages in order. A failing `prepare_script` or the job's
    /// deadline ends the job early; a failed source stage skips only the job's own script.
    pub(super) fn run_stages(&mut self, exec: &Exec, cancel: Option<CancelWhenLogShows>) {
        let vars = self.all_variables(exec, "running");
        let info = ScriptInfo {
            variables: &vars,
            project_dir: &exec.project_dir,
            hostname: &exec.hostname,
        };
        if !self.prepare_script_stage(exec, &info) {
            return;
        }
        let Some(sources_ok) = self.source_stages(exec, &info) else {
            return;
        };
        if sources_ok && !self.script_stages(exec, &info, cancel) {
            return;
        }
        self.closing_stages(exec);
    }

    /// Stage 1, `prepare_script`: `false` when it failed or timed out (the job ends).
    fn prepare_script_stage(&mut self, exec: &Exec, info: &ScriptInfo<'_>) -> bool {
        let jd = Some(self.job_deadline());
        match self.run_stage(
            exec,
            "prepare_script",
            &info.prepare_script(),
            "running",
            jd,
        ) {
            StageResult::Ok => true,
            StageResult::Failed(f) => {
                self.result.outcome = match Self::failure_outcome(&f) {
                    Outcome::SystemFailure { reason } => Outcome::SystemFailure {
                        reason: format!("prepare environment: {reason}"),
                    },
                    o => o,
                };
                self.logln(&format!(
                    "\x1b[31;1mERROR: Job failed: prepare environment: {}. Check https://docs.gitlab.com/runner/shells/#shell-profile-loading for more information\x1b[0;m",
                    f.message()
                ));
                false
            }
            StageResult::Stopped(_) => {
                self.result.outcome = Outcome::TimedOut;
                false
            }
        }
    }

    /// Stages 2-4: `get_sources`, `restore_cache` (when a cache is to be restored) and
    /// `download_artifacts` (when a dependency has artifacts), their scripts by the driver's
    /// `Transfer`: whether they succeeded (a failure skips the stages after it), `None` when
    /// the job's deadline passed (the job ends).
    fn source_stages(&mut self, exec: &Exec, info: &ScriptInfo<'_>) -> Option<bool> {
        let job = self.job;
        let transfer = self.d.transfer();
        let jd = Some(self.job_deadline());
        let sources = transfer.get_sources(info, job, &git_strategy(job));
        let mut ok = self.run_pre_stage(exec, "get_sources", &sources, jd)?;
        let caches = if ok {
            self.caches(exec, true, true)
        } else {
            Vec::new()
        };
        if !caches.is_empty() {
            let restore = transfer.restore_cache(info, &caches);
            ok = self.run_pre_stage(exec, "restore_cache", &restore, jd)?;
        }
        let deps: Vec<&Dependency> = job
            .dependencies
            .iter()
            .filter(|d| d.artifacts_file.is_some())
            .collect();
        if ok && !deps.is_empty() {
            let download = transfer.download_artifacts(info, job, &deps);
            ok = self.run_pre_stage(exec, "download_artifacts", &download, jd)?;
        }
        Some(ok)
    }

    /// Stages 5-6: `build_script` (cancelable by `cancel`), then `after_script` when the job
    /// has one: `false` when the job's deadline passed in `build_script` (the job ends).
    fn script_stages(
        &mut self,
        exec: &Exec,
        info: &ScriptInfo<'_>,
        cancel: Option<CancelWhenLogShows>,
    ) -> bool {
        let job = self.job;
        let deadline = self.job_deadline();
        self.cancel_on = cancel.map(|CancelWhenLogShows(text)| text);
        let build = self.run_stage(
            exec,
            "build_script",
            &info.user_script(&job.step_script()),
            "running",
            Some(deadline),
        );
        self.cancel_on = None;
        match build {
            StageResult::Ok => {}
            StageResult::Failed(f) => self.result.outcome = Self::failure_outcome(&f),
            StageResult::Stopped(StopReason::Canceled) => self.result.outcome = Outcome::Canceled,
            StageResult::Stopped(StopReason::Timeout) => {
                self.result.outcome = Outcome::TimedOut;
                return false;
            }
        }
        if !job.after_script.is_empty() {
            self.after_script_stage(exec);
        }
        true
    }

    /// Stage 6, `after_script`, with the job's status so far, within its own timeout (and
    /// the job's deadline unless the job was canceled): a failure is only a warning.
    fn after_script_stage(&mut self, exec: &Exec) {
        let status = self.current_status();
        let vars = self.all_variables(exec, status);
        let info = ScriptInfo {
            variables: &vars,
            project_dir: &exec.project_dir,
            hostname: &exec.hostname,
        };
        let own = Instant::now() + AFTER_SCRIPT_TIMEOUT;
        let at = if self.result.outcome == Outcome::Canceled {
            own
        } else {
            own.min(self.job_deadline)
        };
        let d = Deadline {
            at,
            reason: StopReason::Timeout,
        };
        let script = info.after_script(&self.job.after_script);
        match self.run_stage(exec, "after_script", &script, status, Some(d)) {
            StageResult::Ok => {}
            StageResult::Failed(f) => self.logln(&format!(
                "\x1b[0;33mWARNING: after_script failed, but job will continue unaffected: {}\x1b[0;m",
                f.message()
            )),
            StageResult::Stopped(_) => self.logln(
                "\x1b[0;33mWARNING: after_script failed, but job will continue unaffected: context deadline exceeded\x1b[0;m",
            ),
        }
    }

    /// Stages 7-9: the cache and the artifacts saved as the job ended, then
    /// `cleanup_file_variables`; all with the job's status after its script (and without
    /// the job's deadline once it was canceled).
    fn closing_stages(&mut self, exec: &Exec) {
        let job_ok = self.result.outcome.is_success();
        let status = self.current_status();
        let vars = self.all_variables(exec, status);
        let info = ScriptInfo {
            variables: &vars,
            project_dir: &exec.project_dir,
            hostname: &exec.hostname,
        };
        let after_job = if self.result.outcome == Outcome::Canceled {
            None
        } else {
            Some(self.job_deadline())
        };
        if !self.archive_cache_stage(exec, &info, job_ok, status, after_job) {
            return;
        }
        if !self.upload_artifacts_stage(exec, &info, job_ok, status, after_job) {
            return;
        }
        self.cleanup_file_variables_stage(exec, &info);
    }

    /// Stage 7, `archive_cache` / `archive_cache_on_failure` by the driver's `Transfer`, when
    /// a cache is to be saved: its failure counts when the job succeeded. `false` when the
    /// deadline passed (the job ends).
    fn archive_cache_stage(
        &mut self,
        exec: &Exec,
        info: &ScriptInfo<'_>,
        job_ok: bool,
        status: &str,
        deadline: Option<Deadline>,
    ) -> bool {
        let caches = self.caches(exec, false, job_ok);
        if caches.is_empty() {
            return true;
        }
        let stage = if job_ok {
            "archive_cache"
        } else {
            "archive_cache_on_failure"
        };
        let archive = self.d.transfer().archive_cache(info, &caches);
        self.run_post_stage(exec, stage, &archive, status, deadline, job_ok)
    }

    /// Stage 8, `upload_artifacts_on_success` / `upload_artifacts_on_failure` by the
    /// driver's `Transfer`, when the job has artifacts for how it ended (decided by the job's
    /// own result, like `archive_cache`): an upload error counts only when the job had no
    /// error yet. `false` when the deadline passed (the job ends).
    fn upload_artifacts_stage(
        &mut self,
        exec: &Exec,
        info: &ScriptInfo<'_>,
        job_ok: bool,
        status: &str,
        deadline: Option<Deadline>,
    ) -> bool {
        let job = self.job;
        let upload = job.artifacts.as_ref().filter(|a| {
            (!a.paths.is_empty() || !a.dotenv.is_empty())
                && a.when.matches(job_ok)
                && !job.api_url.is_empty()
        });
        let Some(artifacts) = upload else {
            return true;
        };
        let stage = if job_ok {
            "upload_artifacts_on_success"
        } else {
            "upload_artifacts_on_failure"
        };
        let script = self.d.transfer().upload_artifacts(info, job, artifacts);
        let counts = self.result.outcome.is_success();
        self.run_post_stage(exec, stage, &script, status, deadline, counts)
    }

    /// Stage 9, `cleanup_file_variables`, with the status as it is now: a failure is a
    /// runner-log warning.
    fn cleanup_file_variables_stage(&mut self, exec: &Exec, info: &ScriptInfo<'_>) {
        let status = self.current_status();
        let d = if self.result.outcome == Outcome::Canceled {
            None
        } else {
            Some(self.job_deadline())
        };
        let script = info.cleanup_file_variables();
        match self.run_stage(exec, "cleanup_file_variables", &script, status, d) {
            StageResult::Ok => {}
            StageResult::Failed(f) => self
                .result
                .warnings
                .push(format!("cleanup_file_variables failed: {}", f.message())),
            StageResult::Stopped(_) => self
                .result
                .warnings
                .push("cleanup_file_variables: deadline passed".to_string()),
        }
    }

    /// Writes the stage script and calls run_exec.
    fn run_stage(
        &mut self,
        exec: &Exec,
        stage: &str,
        writer: &Writer,
        status: &str,
        deadline: Option<Deadline>,
    ) -> StageResult {
        if let Some(d) = deadline {
            if Instant::now() >= d.at {
                return StageResult::Stopped(d.reason);
            }
        }
        let (section, description) = section_of(stage);
        self.section_start(section, &description);
        let result = self.run_stage_inner(exec, stage, writer, status, deadline);
        self.section_end(section);
        result
    }

    fn run_stage_inner(
        &mut self,
        exec: &Exec,
        stage: &str,
        writer: &Writer,
        status: &str,
        deadline: Option<Deadline>,
    ) -> StageResult {
        let dir = match process::mkdtemp(&exec.tmp, "script") {
            Ok(d) => d,
            Err(e) => {
                return StageResult::Failed(PhaseFailure::System {
                    message: format!("creating script directory: {e}"),
                })
            }
        };
        self.chown(&dir);
        let path = dir.join("script");
        let mut text = writer.finish();
        if exec.shell == "sh" {
            text = text.replacen("#!/usr/bin/env bash", "#!/usr/bin/env sh", 1);
        }
        if let Err(e) = self.write_private(&path, text.as_bytes(), 0o700) {
            return StageResult::Failed(PhaseFailure::System {
                message: format!("writing {}: {e}", path.display()),
            });
        }
        if stage == "build_script" {
            self.logln("\x1b[0;33mWARNING: Starting with version 17.0 the 'build_script' stage will be replaced with 'step_script': https://gitlab.com/groups/gitlab-org/-/epics/6112\x1b[0;m");
        }
        let vars = self.all_variables(exec, status);
        let env = self.env_for(exec, true, &vars);
        let cmd = self.command(
            exec,
            vec![
                "run".into(),
                path.to_string_lossy().into_owned(),
                stage.to_string(),
            ],
            env,
            StdoutMode::Combined,
        );
        let out = match self.phase(stage, &cmd, deadline, true) {
            Ok(o) => o,
            Err(f) => return StageResult::Failed(f),
        };
        self.log_output(&out.output);
        if let Some(k) = &out.kill {
            return StageResult::Stopped(k.reason);
        }
        match interpret_exit(out.termination, &exec.tmp.join("build_exit_code")) {
            Ok(()) => StageResult::Ok,
            Err(f) => StageResult::Failed(f),
        }
    }

    fn failure_outcome(f: &PhaseFailure) -> Outcome {
        match f {
            PhaseFailure::Build { exit_code, .. } => Outcome::BuildFailure {
                exit_code: *exit_code,
            },
            PhaseFailure::System { message } => Outcome::SystemFailure {
                reason: message.clone(),
            },
        }
    }

    fn job_deadline(&self) -> Deadline {
        Deadline {
            at: self.job_deadline,
            reason: StopReason::Timeout,
        }
    }

    /// Caches to restore or archive, with sanitised keys.
    fn caches(&mut self, exec: &Exec, restore: bool, job_ok: bool) -> Vec<CacheArchive> {
        let mut out = Vec::new();
        let all = self.all_variables(exec, self.current_status());
        for (i, c) in self.job.cache.iter().enumerate() {
            if c.paths.is_empty() {
                continue;
            }
            let wanted = if restore {
                c.policy != CachePolicy::Push
            } else {
                c.policy != CachePolicy::Pull && c.when.matches(job_ok)
            };
            if !wanted {
                continue;
            }
            let key = match self.job.cache_key(c, &all) {
                Ok(key) => key,
                Err(raw) => {
                    self.result
                        .warnings
                        .push(format!("skipping cache with invalid key {raw:?}"));
                    continue;
                }
            };
            if !self.result.cache_keys.iter().any(|(at, _)| *at == i) {
                self.result.cache_keys.push((i, key.clone()));
            }
            out.push(CacheArchive {
                rel_file: script::cache_rel_file(&exec.project_dir, &exec.job_cache_dir, &key),
                key,
                paths: c.paths.clone(),
                timeout_minutes: CACHE_REQUEST_TIMEOUT,
            });
        }
        out
    }

    /// Runs get_sources, restore_cache or download_artifacts: `Some(false)` when it failed
    /// (the job's steps are skipped, the `*_on_failure` stages run), `None` when the job's
    /// deadline passed (the job ends).
    fn run_pre_stage(
        &mut self,
        exec: &Exec,
        stage: &str,
        writer: &Writer,
        deadline: Option<Deadline>,
    ) -> Option<bool> {
        match self.run_stage(exec, stage, writer, "running", deadline) {
            StageResult::Ok => Some(true),
            StageResult::Failed(f) => {
                self.result.outcome = Self::failure_outcome(&f);
                Some(false)
            }
            StageResult::Stopped(_) => {
                self.result.outcome = Outcome::TimedOut;
                None
            }
        }
    }

    /// Runs archive_cache or upload_artifacts (and their `_on_failure` forms): a failure
    /// or a passed deadline sets the outcome only when `counts`. `false` when the deadline
    /// passed (the job ends).
    fn run_post_stage(
        &mut self,
        exec: &Exec,
        stage: &str,
        writer: &Writer,
        status: &str,
        deadline: Option<Deadline>,
        counts: bool,
    ) -> bool {
        match self.run_stage(exec, stage, writer, status, deadline) {
            StageResult::Ok => true,
            StageResult::Failed(f) => {
                if counts {
                    self.result.outcome = Self::failure_outcome(&f);
                }
                true
            }
            StageResult::Stopped(_) => {
                if counts {
                    self.result.outcome = Outcome::TimedOut;
                }
                false
            }
        }
    }
}

/// `GIT_STRATEGY` as the job sets it (its last value), `fetch` when it does not.
fn git_strategy(job: &Job) -> String {
    job.payload_variables()
        .iter()
        .rev()
        .find(|v| v.key == "GIT_STRATEGY")
        .map(|v| v.value.clone())
        .unwrap_or_else(|| "fetch".into())
}
