//! The stage loop (`executeScript`): every run_exec stage in gitlab-runner's order, with
//! its deadline, and what its end means for the job.

use std::time::{Duration, Instant};

use super::joblog::section_of;
use super::process::{self, Deadline, StdoutMode, StopReason};
use super::run::{Exec, Run};
use super::script::{self, CacheArchive, ScriptInfo, Writer};
use super::{interpret_exit, CachePolicy, CancelWhenLogShows, Dependency, Outcome, PhaseFailure};

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
                    self.warnings
                        .push(format!("skipping cache with invalid key {raw:?}"));
                    continue;
                }
            };
            if !self.cache_keys.iter().any(|(at, _)| *at == i) {
                self.cache_keys.push((i, key.clone()));
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
                self.outcome = Self::failure_outcome(&f);
                Some(false)
            }
            StageResult::Stopped(_) => {
                self.outcome = Outcome::TimedOut;
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
                    self.outcome = Self::failure_outcome(&f);
                }
                true
            }
            StageResult::Stopped(_) => {
                if counts {
                    self.outcome = Outcome::TimedOut;
                }
                false
            }
        }
    }

    /// `executeScript`: all run_exec stages in order.
    pub(super) fn run_stages(&mut self, exec: &mut Exec, cancel: Option<CancelWhenLogShows>) {
        let job = self.job;
        let jd = Some(self.job_deadline());
        let git_strategy = job
            .payload_variables()
            .iter()
            .rev()
            .find(|v| v.key == "GIT_STRATEGY")
            .map(|v| v.value.clone())
            .unwrap_or_else(|| "fetch".into());

        let vars = self.all_variables(exec, "running");
        let hostname = exec.hostname.clone();
        let info = ScriptInfo {
            variables: &vars,
            project_dir: &exec.project_dir,
            hostname: &hostname,
        };

        // 1. prepare_script
        match self.run_stage(
            exec,
            "prepare_script",
            &info.prepare_script(),
            "running",
            jd,
        ) {
            StageResult::Ok => {}
            StageResult::Failed(f) => {
                self.outcome = match Self::failure_outcome(&f) {
                    Outcome::SystemFailure { reason } => Outcome::SystemFailure {
                        reason: format!("prepare environment: {reason}"),
                    },
                    o => o,
                };
                self.logln(&format!(
                    "\x1b[31;1mERROR: Job failed: prepare environment: {}. Check https://docs.gitlab.com/runner/shells/#shell-profile-loading for more information\x1b[0;m",
                    f.message()
                ));
                return;
            }
            StageResult::Stopped(_) => {
                self.outcome = Outcome::TimedOut;
                return;
            }
        }

        // 2.-4. get_sources, restore_cache, download_artifacts
        let local = self.d.local.clone();
        let sources = match &local {
            Some(l) => info.local_get_sources(&git_strategy, l),
            None => match (&job.repo_url, git_strategy.as_str()) {
                (Some(url), "fetch" | "clone") => {
                    let refspecs = job.refspecs();
                    info.get_sources_git(
                        &git_strategy,
                        &script::GitSource {
                            url,
                            git_ref: &job.git_ref,
                            sha: &job.sha,
                            refspecs: &refspecs,
                            depth: job.git_depth(),
                        },
                    )
                }
                _ => info.get_sources(&git_strategy),
            },
        };
        let Some(mut sources_ok) = self.run_pre_stage(exec, "get_sources", &sources, jd) else {
            return;
        };
        let caches = if sources_ok {
            self.caches(exec, true, true)
        } else {
            Vec::new()
        };
        if !caches.is_empty() {
            let restore = match &local {
                Some(l) => info.local_restore_cache(&caches, l),
                None => info.restore_cache(&caches),
            };
            let Some(ok) = self.run_pre_stage(exec, "restore_cache", &restore, jd) else {
                return;
            };
            sources_ok = ok;
        }
        let deps: Vec<&Dependency> = job
            .dependencies
            .iter()
            .filter(|d| d.artifacts_file.is_some())
            .collect();
        if sources_ok && !deps.is_empty() {
            let download = match &local {
                Some(l) => info.local_download_artifacts(&deps, l),
                None => info.download_artifacts(&deps, &job.server_url()),
            };
            let Some(ok) = self.run_pre_stage(exec, "download_artifacts", &download, jd) else {
                return;
            };
            sources_ok = ok;
        }

        // 5.-6. build_script, after_script
        if sources_ok {
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
                StageResult::Failed(f) => self.outcome = Self::failure_outcome(&f),
                StageResult::Stopped(StopReason::Canceled) => self.outcome = Outcome::Canceled,
                StageResult::Stopped(StopReason::Timeout) => {
                    self.outcome = Outcome::TimedOut;
                    return;
                }
            }
            if !job.after_script.is_empty() {
                let status = self.current_status();
                let after_vars = self.all_variables(exec, status);
                let after_info = ScriptInfo {
                    variables: &after_vars,
                    project_dir: &exec.project_dir,
                    hostname: &hostname,
                };
                let own = Instant::now() + AFTER_SCRIPT_TIMEOUT;
                let d = if self.outcome == Outcome::Canceled {
                    Deadline {
                        at: own,
                        reason: StopReason::Timeout,
                    }
                } else {
                    Deadline {
                        at: own.min(self.job_deadline),
                        reason: StopReason::Timeout,
                    }
                };
                match self.run_stage(exec, "after_script", &after_info.after_script(&job.after_script), status, Some(d)) {
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
        }

        // 7. archive_cache / archive_cache_on_failure
        let job_ok = self.outcome.is_success();
        let status = self.current_status();
        let final_vars = self.all_variables(exec, status);
        let final_info = ScriptInfo {
            variables: &final_vars,
            project_dir: &exec.project_dir,
            hostname: &hostname,
        };
        let caches = self.caches(exec, false, job_ok);
        let after_job = if self.outcome == Outcome::Canceled {
            None
        } else {
            jd
        };
        if !caches.is_empty() {
            let stage = if job_ok {
                "archive_cache"
            } else {
                "archive_cache_on_failure"
            };
            let archive = match &local {
                Some(l) => final_info.local_archive_cache(&caches, l),
                None => final_info.archive_cache(&caches),
            };
            if !self.run_post_stage(exec, stage, &archive, status, after_job, job_ok) {
                return;
            }
        }

        // 8. upload_artifacts_on_success / upload_artifacts_on_failure: decided by the
        // job's own result, like archive_cache; an upload error counts only when the job
        // had no error yet.
        let upload = job.artifacts.as_ref().filter(|a| {
            (!a.paths.is_empty() || !a.dotenv.is_empty())
                && a.when.matches(job_ok)
                && !job.api_url.is_empty()
        });
        if let Some(artifacts) = upload {
            let stage = if job_ok {
                "upload_artifacts_on_success"
            } else {
                "upload_artifacts_on_failure"
            };
            let script = match &local {
                Some(l) => final_info.local_upload_artifacts(artifacts, &job.name, l),
                None => {
                    final_info.upload_artifacts(artifacts, &job.server_url(), &job.token, job.id)
                }
            };
            let counts = self.outcome.is_success();
            if !self.run_post_stage(exec, stage, &script, status, after_job, counts) {
                return;
            }
        }

        // 9. cleanup_file_variables
        let status = self.current_status();
        let d = if self.outcome == Outcome::Canceled {
            None
        } else {
            jd
        };
        match self.run_stage(
            exec,
            "cleanup_file_variables",
            &final_info.cleanup_file_variables(),
            status,
            d,
        ) {
            StageResult::Ok => {}
            StageResult::Failed(f) => self
                .warnings
                .push(format!("cleanup_file_variables failed: {}", f.message())),
            StageResult::Stopped(_) => self
                .warnings
                .push("cleanup_file_variables: deadline passed".to_string()),
        }
    }
}
