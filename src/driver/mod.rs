//! A library imitation of gitlab-runner's custom executor.
//!
//! [`Driver::run_job`] runs one [`Job`] through an executor program (pogo)
//! exactly the way gitlab-runner 19.x does it: a per-job `custom-executor*`
//! temp dir with `response.json`, `config_exec` + `prepare_exec` with the
//! runner's retry rule, one `run_exec` per stage with scripts in the runner's
//! bash shape, and `cleanup_exec` at the end — each in its own process
//! group, with the same environment, exit-code rules and SIGTERM/SIGKILL
//! handling. It powers pogo's tests and `pogo exec`.
//!
//! Two opt-in extensions serve `pogo exec`: [`Driver::local`] replaces the git and
//! `gitlab-runner` helper commands of the source, cache and artifact stages by local `tar`
//! scripts (see [`local`]), and [`Driver::log_sink`] receives the job log while it is written.

pub mod job;
pub mod local;
pub mod process;
pub mod script;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub use job::{
    Artifacts, ArtifactsWhen, Cache, CachePolicy, CacheWhen, Dependency, DockerOptions, Image, Job,
    Service, Variable,
};
pub use local::{LocalDir, LocalStages};
pub use process::{KillReport, StopReason};

use process::{Deadline, OutputCallback, PhaseCommand, PhaseOutput, StdoutMode, Termination};
use script::{CacheArchive, ScriptInfo, Writer};

/// `PreparationRetries`.
const PREPARATION_RETRIES: u32 = 3;
/// Default of `config_exec_timeout`, `prepare_exec_timeout`, `cleanup_exec_timeout`.
const EXEC_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default of `RUNNER_AFTER_SCRIPT_TIMEOUT`.
const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of `CACHE_REQUEST_TIMEOUT` (minutes).
const CACHE_REQUEST_TIMEOUT: u64 = 10;
/// Masked values shorter than this are not masked (GitLab's minimum).
const MIN_MASKED_LEN: usize = 8;

/// Errors that keep the driver from running a job at all. Everything that
/// gitlab-runner would report as a job failure is an [`Outcome`] instead.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid job: {0}")]
    InvalidJob(String),
}

/// Cancel the job while its `build_script` stage runs, as soon as the stage's output shows
/// this text: like a user who presses "Cancel" in GitLab's UI on seeing it in the job log,
/// whatever the machine's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelWhenLogShows(pub String);

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

/// Receives the job log while the job runs: the concatenation of all pieces is
/// [`JobResult::log`]. A piece is one or more whole lines, except that a phase's output
/// may end without a newline. Called from the driver's threads, one piece at a time.
#[derive(Clone)]
pub struct LogSink(Arc<dyn Fn(&str) + Send + Sync>);

impl LogSink {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        LogSink(Arc::new(f))
    }

    fn send(&self, text: &str) {
        if !text.is_empty() {
            (self.0)(text);
        }
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSink")
    }
}

/// The imitated gitlab-runner, configured like `[[runners]]` in config.toml.
#[derive(Debug, Clone)]
pub struct Driver {
    /// The executable called for all four phases.
    pub pogo: PathBuf,
    /// Arguments before the phase name, e.g. `["--config", "/abs/pogo.yaml"]`.
    pub pogo_args: Vec<String>,
    /// The runner process's environment (`os.Environ()`); only `PATH` is
    /// taken from the current process, and only when missing here.
    pub env: Vec<(String, String)>,
    /// Where the per-job `custom-executor*` dirs are created.
    pub tmp_root: PathBuf,
    /// config.toml `builds_dir` (config_exec output overrides).
    pub builds_dir: Option<String>,
    /// config.toml `cache_dir` (config_exec output overrides).
    pub cache_dir: Option<String>,
    pub prepare_retry_interval: Duration,
    pub graceful_kill_timeout: Duration,
    pub force_kill_timeout: Duration,
    /// Run the phases as this uid/gid; temp dirs are chowned to it.
    pub run_as: Option<(u32, u32)>,
    pub runner_short_token: String,
    pub concurrent_id: u32,
    pub hostname: String,
    /// `Some`: the source, cache and artifact stages use local `tar` scripts against
    /// these directories instead of git and the `gitlab-runner` helper (`pogo exec`).
    pub local: Option<LocalStages>,
    /// Gets the job log as it is written (see [`LogSink`]).
    pub log_sink: Option<LogSink>,
}

impl Driver {
    /// A driver with gitlab-runner's defaults.
    pub fn new(pogo: impl Into<PathBuf>) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        Driver {
            pogo: pogo.into(),
            pogo_args: Vec::new(),
            env: std::env::var("PATH")
                .map(|p| vec![("PATH".to_string(), p)])
                .unwrap_or_default(),
            tmp_root: std::env::temp_dir(),
            builds_dir: None,
            cache_dir: None,
            prepare_retry_interval: Duration::from_secs(3),
            graceful_kill_timeout: Duration::from_secs(600),
            force_kill_timeout: Duration::from_secs(10),
            run_as: None,
            runner_short_token: "pogodrvr".to_string(),
            concurrent_id: 0,
            hostname,
            local: None,
            log_sink: None,
        }
    }

    /// Runs `job` from start to end. `Err` only for an unusable job.
    pub fn run_job(
        &self,
        job: &Job,
        cancel: Option<CancelWhenLogShows>,
    ) -> Result<JobResult, DriverError> {
        validate(job)?;
        let mut run = Run::new(self, job);
        run.execute(cancel);
        Ok(run.into_result())
    }

    /// The environment of one phase, in gitlab-runner's order (before
    /// removing duplicates): runner env, fixed variables, `job_env`,
    /// `CUSTOM_ENV_*` for every variable, `CUSTOM_ENV_CI_JOB_SERVICES`.
    pub fn phase_env_list(
        &self,
        tmp: &Path,
        job_env: &[(String, String)],
        variables: &[Variable],
        services_json: &str,
    ) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if !self.env.iter().any(|(k, _)| k == "PATH") {
            if let Ok(p) = std::env::var("PATH") {
                env.push(("PATH".to_string(), p));
            }
        }
        env.extend(self.env.iter().cloned());
        let tmp_s = tmp.to_string_lossy().into_owned();
        env.push(("TMPDIR".into(), tmp_s.clone()));
        env.push(("BUILD_FAILURE_EXIT_CODE".into(), "1".into()));
        env.push(("SYSTEM_FAILURE_EXIT_CODE".into(), "2".into()));
        env.push((
            "BUILD_EXIT_CODE_FILE".into(),
            format!("{tmp_s}/build_exit_code"),
        ));
        env.push(("JOB_RESPONSE_FILE".into(), format!("{tmp_s}/response.json")));
        env.extend(job_env.iter().cloned());
        for v in variables {
            env.push((format!("CUSTOM_ENV_{}", v.key), v.value.clone()));
        }
        env.push((
            "CUSTOM_ENV_CI_JOB_SERVICES".into(),
            services_json.to_string(),
        ));
        env
    }
}

fn validate(job: &Job) -> Result<(), DriverError> {
    let p = &job.project_path;
    if p.is_empty()
        || p.starts_with('/')
        || p.ends_with('/')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(DriverError::InvalidJob(format!(
            "project_path {p:?} must look like group/project"
        )));
    }
    if job.token.is_empty() {
        return Err(DriverError::InvalidJob("empty job token".into()));
    }
    Ok(())
}

/// Go's `dedupEnv`: later values win.
pub fn dedup_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<(String, String)> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    out.reverse();
    out
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

/// Stage names as passed to run_exec, and their log sections.
fn section_of(stage: &str) -> (&'static str, String) {
    match stage {
        "prepare_script" => ("prepare_script", "Preparing environment".into()),
        "get_sources" => ("get_sources", "Getting source from Git repository".into()),
        "restore_cache" => ("restore_cache", "Restoring cache".into()),
        "download_artifacts" => ("download_artifacts", "Downloading artifacts".into()),
        "build_script" => (
            "step_script",
            "Executing \"step_script\" stage of the job script".into(),
        ),
        "after_script" => ("after_script", "Running after_script".into()),
        "archive_cache" => ("archive_cache", "Saving cache for successful job".into()),
        "archive_cache_on_failure" => (
            "archive_cache_on_failure",
            "Saving cache for failed job".into(),
        ),
        "upload_artifacts_on_success" => (
            "upload_artifacts_on_success",
            "Uploading artifacts for successful job".into(),
        ),
        "upload_artifacts_on_failure" => (
            "upload_artifacts_on_failure",
            "Uploading artifacts for failed job".into(),
        ),
        "cleanup_file_variables" => (
            "cleanup_file_variables",
            "Cleaning up project directory and file based variables".into(),
        ),
        _ => (
            "step",
            format!("Executing \"{stage}\" stage of the job script"),
        ),
    }
}

/// Masked values replaced by `[MASKED]` (longest first, as they are sorted).
fn mask(text: &str, masks: &[String]) -> String {
    let mut text = text.to_string();
    for m in masks {
        text = text.replace(m.as_str(), "[MASKED]");
    }
    text
}

/// A phase's job-log output on its way to the [`LogSink`]: whole lines are masked and
/// sent as they arrive, the rest when the phase ends. Masking line by line gives the
/// same text as masking the whole output, because masked values are single lines.
struct LiveLines {
    pending: Vec<u8>,
    masks: Vec<String>,
    sink: LogSink,
    /// After the phase: a background process still writing is not the job log.
    closed: bool,
}

impl LiveLines {
    fn push(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.pending.extend_from_slice(bytes);
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            self.sink
                .send(&mask(&String::from_utf8_lossy(&lines), &self.masks));
        }
    }

    fn finish(&mut self) {
        if !self.closed {
            let rest = std::mem::take(&mut self.pending);
            self.sink
                .send(&mask(&String::from_utf8_lossy(&rest), &self.masks));
            self.closed = true;
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// State of one executor instance (one Prepare attempt and what follows).
#[derive(Debug, Clone, Default)]
struct Exec {
    tmp: PathBuf,
    job_env: Vec<(String, String)>,
    builds_dir: String,
    cache_dir: String,
    shared_builds_dir: bool,
    hostname: String,
    shell: String,
    /// Empty until `StartBuild`.
    project_dir: String,
    job_cache_dir: String,
}

/// Result of one run_exec stage.
enum StageResult {
    Ok,
    Failed(PhaseFailure),
    Stopped(StopReason),
}

/// Why Prepare failed.
struct PrepareError {
    message: String,
    /// `BuildError`: no retry.
    build_error: Option<Outcome>,
}

struct Run<'a> {
    d: &'a Driver,
    job: &'a Job,
    log: String,
    phase_times: Vec<(String, Duration)>,
    cleanup_output: String,
    config_output: Option<Value>,
    kills: Vec<(String, KillReport)>,
    prepare_attempts: u32,
    temp_dirs: Vec<PathBuf>,
    warnings: Vec<String>,
    cache_keys: Vec<(usize, String)>,
    masks: Vec<String>,
    job_deadline: Instant,
    /// While `build_script` runs: the text whose appearance in its output cancels the job.
    cancel_on: Option<String>,
    outcome: Outcome,
}

impl<'a> Run<'a> {
    fn new(d: &'a Driver, job: &'a Job) -> Self {
        let mut masks: Vec<String> = job
            .payload_variables()
            .into_iter()
            .filter(|v| v.masked && v.value.len() >= MIN_MASKED_LEN)
            .map(|v| v.value)
            .collect();
        masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
        Run {
            d,
            job,
            log: String::new(),
            phase_times: Vec::new(),
            cleanup_output: String::new(),
            config_output: None,
            kills: Vec::new(),
            prepare_attempts: 0,
            temp_dirs: Vec::new(),
            warnings: Vec::new(),
            cache_keys: Vec::new(),
            masks,
            job_deadline: Instant::now() + job.timeout,
            cancel_on: None,
            outcome: Outcome::Success,
        }
    }

    fn into_result(self) -> JobResult {
        JobResult {
            outcome: self.outcome,
            log: self.log,
            phase_times: self.phase_times,
            cleanup_output: self.cleanup_output,
            config_output: self.config_output,
            kills: self.kills,
            prepare_attempts: self.prepare_attempts,
            temp_dirs: self.temp_dirs,
            warnings: self.warnings,
            cache_keys: {
                let mut keys = self.cache_keys;
                keys.sort_by_key(|(i, _)| *i);
                keys
            },
        }
    }

    // ----- job log -------------------------------------------------------

    /// Appends the runner's own text to the log and hands it to the sink.
    fn emit(&mut self, text: &str) {
        self.log.push_str(text);
        if let Some(sink) = &self.d.log_sink {
            sink.send(text);
        }
    }

    fn ensure_newline(&mut self) {
        if !self.log.is_empty() && !self.log.ends_with('\n') {
            self.emit("\n");
        }
    }

    fn logln(&mut self, line: &str) {
        self.ensure_newline();
        self.emit(&format!("{line}\n"));
    }

    /// Appends a phase's output to the log; the sink got it while the phase ran.
    fn log_output(&mut self, bytes: &[u8]) {
        let text = mask(&String::from_utf8_lossy(bytes), &self.masks);
        self.log.push_str(&text);
    }

    /// The phase-output callback for the sink, if there is one.
    fn live_output(&self) -> Option<(OutputCallback, Arc<Mutex<LiveLines>>)> {
        let sink = self.d.log_sink.clone()?;
        let lines = Arc::new(Mutex::new(LiveLines {
            pending: Vec::new(),
            masks: self.masks.clone(),
            sink,
            closed: false,
        }));
        let feed = Arc::clone(&lines);
        let callback: OutputCallback = Arc::new(move |bytes: &[u8]| {
            if let Ok(mut l) = feed.lock() {
                l.push(bytes);
            }
        });
        Some((callback, lines))
    }

    fn section_start(&mut self, name: &str, description: &str) {
        self.ensure_newline();
        self.emit(&format!(
            "section_start:{}:{name}\r\x1b[0K\x1b[0K\x1b[36;1m{description}\x1b[0;m\n",
            unix_now()
        ));
    }

    fn section_end(&mut self, name: &str) {
        self.ensure_newline();
        self.emit(&format!("section_end:{}:{name}\r\x1b[0K\n", unix_now()));
    }

    // ----- variables and environment --------------------------------------

    /// `Build.GetAllVariables()` for the given state of the executor.
    fn all_variables(&self, exec: &Exec, job_status: &str) -> Vec<Variable> {
        let slot = Slot {
            runner_short_token: &self.d.runner_short_token,
            concurrent_id: self.d.concurrent_id,
            builds_dir: &exec.builds_dir_if_started(),
            project_dir: &exec.project_dir,
        };
        all_variables(self.job, &slot, job_status)
    }

    fn env_for(&self, exec: &Exec, job_env: bool, vars: &[Variable]) -> Vec<(String, String)> {
        let services = self.job.services_env(vars);
        let job_env: &[(String, String)] = if job_env { &exec.job_env } else { &[] };
        dedup_env(self.d.phase_env_list(&exec.tmp, job_env, vars, &services))
    }

    fn command(
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

    fn exec_deadline(&self, limit: Duration) -> Deadline {
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
    fn phase(
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
                self.phase_times.push((name.to_string(), out.duration));
                if let Some(k) = &out.kill {
                    self.kills.push((name.to_string(), k.clone()));
                }
                if out.output_truncated {
                    self.warnings.push(format!(
                        "{name}: output pipe still open after the process exited; stopped reading"
                    ));
                }
                Ok(out)
            }
            Err(e) => {
                self.phase_times.push((name.to_string(), started.elapsed()));
                Err(PhaseFailure::System {
                    message: format!("failed to start {}: {e}", cmd.program.display()),
                })
            }
        }
    }

    fn chown(&mut self, path: &Path) {
        if let Some((uid, gid)) = self.d.run_as {
            if let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
                self.warnings
                    .push(format!("chown {} to {uid}:{gid}: {e}", path.display()));
            }
        }
    }

    fn write_private(&mut self, path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
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

    // ----- the job ---------------------------------------------------------

    fn execute(&mut self, cancel: Option<CancelWhenLogShows>) {
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
        let Some(mut exec) = exec else {
            self.finish_log();
            return;
        };

        self.run_stages(&mut exec, cancel);
        self.cleanup(&exec, self.current_status());
        self.finish_log();
    }

    fn current_status(&self) -> &'static str {
        match self.outcome {
            Outcome::Success => "success",
            Outcome::Canceled => "canceled",
            _ => "failed",
        }
    }

    fn finish_log(&mut self) {
        let line = match &self.outcome {
            Outcome::Success => "\x1b[32;1mJob succeeded\x1b[0;m".to_string(),
            Outcome::BuildFailure { exit_code } => {
                format!("\x1b[31;1mERROR: Job failed: exit code {exit_code}\x1b[0;m")
            }
            Outcome::SystemFailure { reason } => {
                format!("\x1b[31;1mERROR: Job failed (system failure): {reason}\x1b[0;m")
            }
            Outcome::ConfigurationError { reason } => {
                format!("\x1b[31;1mERROR: Job failed: {reason}\x1b[0;m")
            }
            Outcome::Canceled => "\x1b[31;1mERROR: Job failed: canceled\x1b[0;m".to_string(),
            Outcome::TimedOut => format!(
                "\x1b[31;1mERROR: Job failed: execution took longer than {} seconds\x1b[0;m",
                self.job.timeout.as_secs()
            ),
        };
        self.logln("");
        self.logln(&line);
    }

    /// `retryCreateExecutor`: up to 3 Prepare attempts, cleanup after each
    /// failed one.
    fn prepare_with_retries(&mut self) -> Option<Exec> {
        let mut last = String::new();
        for attempt in 1..=PREPARATION_RETRIES {
            self.prepare_attempts = attempt;
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
                        self.outcome = o;
                        return None;
                    }
                    last = e.message;
                    if Instant::now() >= self.job_deadline {
                        self.outcome = Outcome::TimedOut;
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
        self.outcome = Outcome::SystemFailure { reason: last };
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
        self.temp_dirs.push(exec.tmp.clone());
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
            self.config_output = Some(value);
            if let Some(b) = cfg.builds_dir {
                exec.builds_dir = b;
            }
            if let Some(c) = cfg.cache_dir {
                exec.cache_dir = c;
            }
            if let Some(s) = cfg.builds_dir_is_shared {
                exec.shared_builds_dir = s;
            }
            if let Some(h) = cfg.hostname {
                exec.hostname = h;
            }
            if let Some(s) = cfg.shell {
                exec.shell = s;
            }
            exec.job_env = cfg.job_env;
            if let Some(name) = cfg.driver_name.filter(|n| !n.is_empty()) {
                driver_line.push_str(&format!(" with driver {name}"));
                if let Some(v) = cfg.driver_version.filter(|v| !v.is_empty()) {
                    driver_line.push_str(&format!(" {v}"));
                }
            }
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
    fn cleanup(&mut self, exec: &Exec, status: &str) {
        let vars = self.all_variables(exec, status);
        let env = self.env_for(exec, true, &vars);
        let cmd = self.command(exec, vec!["cleanup".into()], env, StdoutMode::Combined);
        let deadline = Deadline {
            at: Instant::now() + EXEC_TIMEOUT,
            reason: StopReason::Timeout,
        };
        match self.phase("cleanup", &cmd, Some(deadline), false) {
            Ok(out) => {
                self.cleanup_output
                    .push_str(&String::from_utf8_lossy(&out.output));
                if let Err(f) = interpret_exit(out.termination, &exec.tmp.join("build_exit_code")) {
                    self.warnings
                        .push(format!("cleanup_exec failed: {}", f.message()));
                }
            }
            Err(f) => self
                .warnings
                .push(format!("cleanup_exec failed: {}", f.message())),
        }
        if let Err(e) = std::fs::remove_dir_all(&exec.tmp) {
            self.warnings
                .push(format!("removing {}: {e}", exec.tmp.display()));
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
    fn run_stages(&mut self, exec: &mut Exec, cancel: Option<CancelWhenLogShows>) {
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

impl Exec {
    /// `CI_BUILDS_DIR`: empty before `StartBuild` (i.e. in config_exec).
    fn builds_dir_if_started(&self) -> String {
        if self.project_dir.is_empty() {
            String::new()
        } else {
            self.builds_dir.clone()
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

/// Where a job runs, as far as its variables tell.
pub struct Slot<'a> {
    pub runner_short_token: &'a str,
    /// `CI_CONCURRENT_ID` (and `CI_CONCURRENT_PROJECT_ID`).
    pub concurrent_id: u32,
    /// Empty until gitlab-runner knows it (before config_exec answered).
    pub builds_dir: &'a str,
    pub project_dir: &'a str,
}

/// `Build.GetAllVariables()` (common/build.go): the runner's variables around the job's, in
/// gitlab-runner's order, every non-raw value expanded against the whole list.
pub fn all_variables(job: &Job, slot: &Slot, job_status: &str) -> Vec<Variable> {
    let payload = job.payload_variables();
    let mut v = Vec::new();
    let image = job::expand(job.image_name(), &payload);
    if !image.is_empty() {
        v.push(Variable::new("CI_JOB_IMAGE", image));
    }
    let slot_id = slot.concurrent_id.to_string();
    v.extend([
        Variable::new("CI_RUNNER_SHORT_TOKEN", slot.runner_short_token),
        Variable::new("CI_BUILDS_DIR", slot.builds_dir),
        Variable::new("CI_PROJECT_DIR", slot.project_dir),
        Variable::new("CI_CONCURRENT_ID", slot_id.clone()),
        Variable::new("CI_CONCURRENT_PROJECT_ID", slot_id),
        Variable::new("CI_SERVER", "yes"),
        Variable::new("CI_JOB_STATUS", job_status),
        Variable::new("CI_JOB_TIMEOUT", job.timeout.as_secs().to_string()),
    ]);
    v.extend(payload);
    v.extend([
        Variable::new("CI_SHARED_ENVIRONMENT", "true"),
        Variable::new("CI_RUNNER_VERSION", job::RUNNER_VERSION),
        Variable::new("CI_RUNNER_REVISION", job::RUNNER_REVISION),
        Variable::new("CI_RUNNER_EXECUTABLE_ARCH", format!("linux/{}", go_arch())),
        Variable::new(
            "RUNNER_TEMP_PROJECT_DIR",
            format!("{}.tmp", slot.project_dir),
        ),
    ]);
    // Expansion: every non-raw value against the whole list.
    let snapshot = v.clone();
    for var in v.iter_mut().filter(|x| !x.raw && x.value.contains('$')) {
        var.value = job::expand(&var.value, &snapshot);
    }
    v
}

/// The architecture name gitlab-runner reports (Go's `GOARCH`).
pub use crate::gitlab::go_arch;

/// The fields of config_exec's JSON output (`api.ConfigExecOutput`).
#[derive(Debug, Default, PartialEq, Eq)]
struct ConfigOutput {
    builds_dir: Option<String>,
    cache_dir: Option<String>,
    builds_dir_is_shared: Option<bool>,
    hostname: Option<String>,
    driver_name: Option<String>,
    driver_version: Option<String>,
    job_env: Vec<(String, String)>,
    shell: Option<String>,
}

impl ConfigOutput {
    /// Typed like Go's `json.Unmarshal` into pointer fields: `null` means
    /// unset, unknown keys are ignored, wrong types are errors.
    fn from_value(v: &Value) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("cannot unmarshal {} into ConfigExecOutput", kind(v)))?;
        let string = |key: &str, val: Option<&Value>| -> Result<Option<String>, String> {
            match val {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "cannot unmarshal {} into field {key} of type string",
                    kind(other)
                )),
            }
        };
        let mut out = ConfigOutput {
            builds_dir: string("builds_dir", obj.get("builds_dir"))?,
            cache_dir: string("cache_dir", obj.get("cache_dir"))?,
            hostname: string("hostname", obj.get("hostname"))?,
            shell: string("shell", obj.get("shell"))?,
            ..ConfigOutput::default()
        };
        out.builds_dir_is_shared = match obj.get("builds_dir_is_shared") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(format!(
                    "cannot unmarshal {} into field builds_dir_is_shared of type bool",
                    kind(other)
                ))
            }
        };
        match obj.get("driver") {
            None | Some(Value::Null) => {}
            Some(Value::Object(d)) => {
                out.driver_name = string("driver.name", d.get("name"))?;
                out.driver_version = string("driver.version", d.get("version"))?;
            }
            Some(other) => {
                return Err(format!(
                    "cannot unmarshal {} into field driver",
                    kind(other)
                ))
            }
        }
        match obj.get("job_env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, val) in m {
                    match val {
                        Value::String(s) => out.job_env.push((k.clone(), s.clone())),
                        other => {
                            return Err(format!(
                                "cannot unmarshal {} into field job_env of type string",
                                kind(other)
                            ))
                        }
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "cannot unmarshal {} into field job_env",
                    kind(other)
                ))
            }
        }
        Ok(out)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

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

    #[test]
    fn env_order_and_dedup() {
        let mut d = Driver::new("/bin/true");
        d.env = vec![
            ("PATH".into(), "/p".into()),
            ("TMPDIR".into(), "/runner-tmp".into()),
            ("KEEP".into(), "1".into()),
        ];
        let tmp = Path::new("/t/custom-executor1");
        let job_env = vec![
            ("POGO_X".into(), "x".into()),
            ("BUILD_FAILURE_EXIT_CODE".into(), "9".into()),
        ];
        let vars = vec![Variable::new("A", "1"), Variable::new("A", "2")];
        let list = d.phase_env_list(tmp, &job_env, &vars, "");
        let keys: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "PATH",
                "TMPDIR",
                "KEEP",
                "TMPDIR",
                "BUILD_FAILURE_EXIT_CODE",
                "SYSTEM_FAILURE_EXIT_CODE",
                "BUILD_EXIT_CODE_FILE",
                "JOB_RESPONSE_FILE",
                "POGO_X",
                "BUILD_FAILURE_EXIT_CODE",
                "CUSTOM_ENV_A",
                "CUSTOM_ENV_A",
                "CUSTOM_ENV_CI_JOB_SERVICES"
            ]
        );
        let env: std::collections::HashMap<_, _> = dedup_env(list).into_iter().collect();
        assert_eq!(env["TMPDIR"], "/t/custom-executor1");
        assert_eq!(env["BUILD_FAILURE_EXIT_CODE"], "9");
        assert_eq!(
            env["BUILD_EXIT_CODE_FILE"],
            "/t/custom-executor1/build_exit_code"
        );
        assert_eq!(
            env["JOB_RESPONSE_FILE"],
            "/t/custom-executor1/response.json"
        );
        assert_eq!(env["CUSTOM_ENV_A"], "2");
        assert_eq!(env["CUSTOM_ENV_CI_JOB_SERVICES"], "");
        assert_eq!(env.len(), 10);
    }

    #[test]
    fn a_cache_key_naming_a_variable_gets_that_variables_expanded_value() {
        let d = Driver::new("/bin/true");
        let mut job = Job::new(7, "t", "g/p", "http://127.0.0.1:9/api/v4");
        job.git_ref = "main".into();
        job.variables
            .push(Variable::new("CK", "deps-$CI_COMMIT_REF_NAME"));
        let run = Run::new(&d, &job);
        let exec = Exec::default();
        let all = run.all_variables(&exec, "running");
        let cache = |key: &str| job::Cache {
            key: key.into(),
            paths: vec!["vendor".into()],
            ..job::Cache::default()
        };
        // as gitlab-runner: GetAllVariables() is expanded, then the key against it
        assert_eq!(
            job.cache_key(&cache("$CK"), &all).as_deref(),
            Ok("deps-main")
        );
        assert_eq!(
            job.cache_key(&cache("x-${CK}-$CI_JOB_ID"), &all).as_deref(),
            Ok("x-deps-main-7")
        );
        assert_eq!(job.cache_key(&cache(""), &all).as_deref(), Ok("test/main"));
    }

    #[test]
    fn variables_in_config_and_later() {
        let d = Driver::new("/bin/true");
        let mut job = Job::new(7, "secret-token-123", "g/p", "http://127.0.0.1:9/api/v4");
        job.variables
            .push(Variable::new("MINE", "$CI_PROJECT_DIR/x"));
        job.image = Some(Image::new("img:$CI_JOB_ID"));
        let run = Run::new(&d, &job);
        let mut exec = Exec {
            builds_dir: "/builds".into(),
            ..Exec::default()
        };
        let get = |vars: &[Variable], k: &str| {
            vars.iter()
                .rev()
                .find(|v| v.key == k)
                .map(|v| v.value.clone())
        };
        let v = run.all_variables(&exec, "running");
        assert_eq!(get(&v, "CI_BUILDS_DIR").as_deref(), Some(""));
        assert_eq!(get(&v, "CI_PROJECT_DIR").as_deref(), Some(""));
        assert_eq!(get(&v, "CI_JOB_IMAGE").as_deref(), Some("img:7"));
        assert_eq!(get(&v, "CI_JOB_TOKEN").as_deref(), Some("secret-token-123"));
        exec.project_dir = "/builds/g/p".into();
        let v = run.all_variables(&exec, "canceled");
        assert_eq!(get(&v, "CI_BUILDS_DIR").as_deref(), Some("/builds"));
        assert_eq!(get(&v, "CI_PROJECT_DIR").as_deref(), Some("/builds/g/p"));
        assert_eq!(get(&v, "MINE").as_deref(), Some("/builds/g/p/x"));
        assert_eq!(get(&v, "CI_JOB_STATUS").as_deref(), Some("canceled"));
        assert_eq!(
            get(&v, "RUNNER_TEMP_PROJECT_DIR").as_deref(),
            Some("/builds/g/p.tmp")
        );
        for k in [
            "CI",
            "GITLAB_CI",
            "CI_JOB_ID",
            "CI_JOB_NAME",
            "CI_JOB_STAGE",
            "CI_JOB_URL",
            "CI_PROJECT_PATH",
            "CI_PROJECT_NAME",
            "CI_PROJECT_NAMESPACE",
            "CI_PROJECT_ID",
            "CI_PIPELINE_ID",
            "CI_API_V4_URL",
            "CI_SERVER_URL",
            "CI_RUNNER_SHORT_TOKEN",
            "CI_CONCURRENT_ID",
            "CI_CONCURRENT_PROJECT_ID",
            "CI_SERVER",
            "CI_JOB_TIMEOUT",
            "CI_SHARED_ENVIRONMENT",
        ] {
            assert!(get(&v, k).is_some(), "{k} missing");
        }
    }

    #[test]
    fn config_output_parsing() {
        let v = json!({
            "builds_dir": "/b", "cache_dir": null, "unknown": 1,
            "driver": {"name": "pogo", "version": "0.1.0"},
            "job_env": {"A": "1"}, "builds_dir_is_shared": false
        });
        let c = ConfigOutput::from_value(&v).unwrap();
        assert_eq!(c.builds_dir.as_deref(), Some("/b"));
        assert_eq!(c.cache_dir, None);
        assert_eq!(c.driver_name.as_deref(), Some("pogo"));
        assert_eq!(c.job_env, vec![("A".to_string(), "1".to_string())]);
        assert!(ConfigOutput::from_value(&json!({"builds_dir": 1})).is_err());
        assert!(ConfigOutput::from_value(&json!({"job_env": {"A": 1}})).is_err());
        assert!(ConfigOutput::from_value(&json!([1])).is_err());
    }

    #[test]
    fn job_validation() {
        let ok = Job::new(1, "t", "g/p", "u");
        assert!(validate(&ok).is_ok());
        for bad in ["", "/g/p", "g/../p", "g//p", "g/p/"] {
            let j = Job::new(1, "t", bad, "u");
            assert!(validate(&j).is_err(), "{bad}");
        }
    }

    /// The whole flow against a fake executor written in bash.
    #[test]
    fn flow_with_fake_executor() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        let record = dir.path().join("record");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/bash
echo "$1 ${{2:-}} ${{3:-}} status=$CUSTOM_ENV_CI_JOB_STATUS pd=$CUSTOM_ENV_CI_PROJECT_DIR je=${{POGO_JE:-}} pg=$(cut -d' ' -f5 /proc/$$/stat) pid=$$" >> {rec}
case "$1" in
  config) echo '{{"builds_dir":"{b}","cache_dir":"/c","driver":{{"name":"fake","version":"1"}},"job_env":{{"POGO_JE":"yes"}}}}'; echo "config-stderr" >&2 ;;
  prepare) echo "prepared" ;;
  run) bash "$2"; rc=$?; if [ $rc -ne 0 ]; then echo $rc > "$BUILD_EXIT_CODE_FILE"; exit 1; fi ;;
  cleanup) echo "cleaned" ;;
esac
"#,
                rec = record.display(),
                b = dir.path().join("builds").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.path().to_path_buf();
        let mut job = Job::new(9, "tok-abcdefgh", "g/p", "http://x/api/v4");
        job.script = vec![
            "echo hello-$CI_JOB_ID".into(),
            "echo tok=$CI_JOB_TOKEN".into(),
            "exit 4".into(),
        ];
        job.after_script = vec!["echo after=$CI_JOB_STATUS".into()];
        let r = d.run_job(&job, None).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::BuildFailure { exit_code: 4 },
            "{}",
            r.log
        );
        assert!(r.log.contains("hello-9"), "{}", r.log);
        assert!(r.log.contains("tok=[MASKED]"), "{}", r.log);
        assert!(r.log.contains("after=failed"), "{}", r.log);
        assert!(r.log.contains("config-stderr"));
        assert!(r
            .log
            .contains("Using Custom executor with driver fake 1..."));
        assert!(r.log.contains("prepared"));
        assert!(!r.log.contains("cleaned"));
        assert!(r.cleanup_output.contains("cleaned"));
        assert_eq!(
            r.phases(),
            vec![
                "config",
                "prepare",
                "prepare_script",
                "get_sources",
                "build_script",
                "after_script",
                "cleanup_file_variables",
                "cleanup"
            ]
        );
        let rec = std::fs::read_to_string(&record).unwrap();
        let lines: Vec<&str> = rec.lines().collect();
        assert!(
            lines[0].starts_with("config   status=running pd= je= "),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("je=yes"), "{}", lines[1]);
        assert!(lines[1].contains("/builds/g/p"), "{}", lines[1]);
        assert!(lines[6].contains("status=failed"), "{}", lines[6]);
        for l in &lines {
            // each phase leads its own process group
            let pg = l.split("pg=").nth(1).unwrap().split(' ').next().unwrap();
            let pid = l.split("pid=").nth(1).unwrap();
            assert_eq!(pg, pid, "{l}");
        }
        assert!(!r.temp_dirs[0].exists(), "temp dir removed");
    }

    /// A fake executor that runs each stage script with the host's bash, so the local
    /// stages' `tar` scripts work on host paths.
    fn bash_executor(dir: &Path) -> Driver {
        let fake = dir.join("fake");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/bash
case "$1" in
  config) echo '{{"builds_dir":"{b}","cache_dir":"/c"}}' ;;
  prepare) echo "preparing"; echo "secret-token-xyz in prepare" >&2 ;;
  run) bash "$2"; rc=$?; if [ $rc -ne 0 ]; then echo $rc > "$BUILD_EXIT_CODE_FILE"; exit 1; fi ;;
esac
"#,
                b = dir.join("builds").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.to_path_buf();
        let store = |n: &str| LocalDir {
            host: format!("STORE/{n}"),
            container: dir.join(n).display().to_string(),
        };
        d.local = Some(LocalStages {
            sources_tar: None,
            sources_note: "none here".into(),
            cache: store("cache"),
            artifacts: store("artifacts"),
        });
        d
    }

    #[test]
    fn local_mode_runs_cache_and_artifact_stages_in_gitlab_runner_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = bash_executor(dir.path());
        let mut producer = Job::new(1, "tok-producer", "g/p", "http://x/api/v4");
        producer.name = "build".into();
        producer.git_strategy = None;
        producer.script = vec![
            "mkdir -p out .deps".into(),
            "echo made > out/file".into(),
            "echo dep > .deps/d".into(),
        ];
        producer.cache = vec![Cache {
            key: "deps".into(),
            paths: vec![".deps/".into()],
            ..Cache::default()
        }];
        producer.artifacts = Some(Artifacts {
            paths: vec!["out/".into()],
            when: ArtifactsWhen::OnSuccess,
            ..Artifacts::default()
        });
        let r = d.run_job(&producer, None).unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{}", r.log);
        assert_eq!(
            r.phases(),
            vec![
                "config",
                "prepare",
                "prepare_script",
                "get_sources",
                "restore_cache",
                "build_script",
                "archive_cache",
                "upload_artifacts_on_success",
                "cleanup_file_variables",
                "cleanup"
            ]
        );
        assert!(r.log.contains("No sources (none here)"), "{}", r.log);
        assert!(r.log.contains("Uploading artifacts for successful job"));

        let mut consumer = producer.clone();
        consumer.id = 2;
        consumer.name = "test".into();
        consumer.script = vec!["cat out/file .deps/d".into(), "exit 3".into()];
        consumer.after_script = vec!["echo after".into()];
        consumer.artifacts = Some(Artifacts {
            paths: vec!["out/".into()],
            when: ArtifactsWhen::Always,
            ..Artifacts::default()
        });
        consumer.dependencies = vec![Dependency {
            id: 1,
            name: "build".into(),
            token: String::new(),
            artifacts_file: Some(local::ARTIFACTS_FILE.into()),
        }];
        let r = d.run_job(&consumer, None).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::BuildFailure { exit_code: 3 },
            "{}",
            r.log
        );
        assert!(r.log.contains("made\ndep\n"), "{}", r.log);
        assert!(
            r.log.contains("Successfully extracted cache deps"),
            "{}",
            r.log
        );
        assert_eq!(
            r.phases()[4..9],
            [
                "restore_cache",
                "download_artifacts",
                "build_script",
                "after_script",
                "upload_artifacts_on_failure"
            ],
            "no archive_cache: the cache is saved on success only"
        );
    }

    #[test]
    fn the_log_sink_gets_the_whole_log_while_it_is_written_and_masked() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = bash_executor(dir.path());
        let pieces = Arc::new(Mutex::new(Vec::<String>::new()));
        let p = Arc::clone(&pieces);
        // the script goes on (up to 10 s) only once the sink has seen its first line: that
        // line can only have come while the phase ran
        let seen = dir.path().join("seen-one");
        let flag = seen.clone();
        d.log_sink = Some(LogSink::new(move |t| {
            if t.contains("one\n") {
                std::fs::write(&flag, "").unwrap();
            }
            p.lock().unwrap().push(t.to_string())
        }));
        let mut job = Job::new(3, "secret-token-xyz", "g/p", "http://x/api/v4");
        job.script = vec![
            "echo one".into(),
            format!(
                "i=0; while [ ! -e '{}' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done",
                seen.display()
            ),
            "printf 'token=%s no newline' \"$CI_JOB_TOKEN\"".into(),
        ];
        let r = d.run_job(&job, None).unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{}", r.log);
        let pieces = pieces.lock().unwrap();
        assert_eq!(pieces.concat(), r.log);
        assert!(!r.log.contains("secret-token-xyz"), "{}", r.log);
        assert!(r.log.contains("[MASKED] in prepare"), "{}", r.log);
        assert!(r.log.contains("token=[MASKED] no newline\n"), "{}", r.log);
        assert!(
            pieces
                .iter()
                .any(|p| p.contains("one\n") && !p.contains("token=")),
            "a phase's lines come as they are written, not at its end: {pieces:?}"
        );
    }

    #[test]
    fn prepare_retries_on_system_failure_only() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        use std::os::unix::fs::PermissionsExt;
        for (code, attempts) in [(2, 3), (1, 1), (5, 3)] {
            std::fs::write(
                &fake,
                format!("#!/bin/sh\ncase \"$1\" in config) echo '{{\"builds_dir\":\"/b\",\"cache_dir\":\"/c\"}}';; prepare) exit {code};; esac\n"),
            )
            .unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut d = Driver::new("/bin/bash");
            d.pogo_args = vec![fake.to_string_lossy().into_owned()];
            d.tmp_root = dir.path().to_path_buf();
            d.prepare_retry_interval = Duration::from_millis(10);
            let job = Job::new(9, "tok", "g/p", "http://x/api/v4");
            let r = d.run_job(&job, None).unwrap();
            assert_eq!(r.prepare_attempts, attempts, "code {code}");
            assert_eq!(r.phase_count("cleanup"), attempts as usize, "code {code}");
            assert_eq!(r.phase_count("build_script"), 0);
            if code == 1 {
                assert_eq!(r.outcome, Outcome::BuildFailure { exit_code: 1 });
            } else {
                assert!(matches!(r.outcome, Outcome::SystemFailure { .. }));
            }
        }
    }

    #[test]
    fn missing_dirs_are_configuration_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.path().to_path_buf();
        let r = d
            .run_job(&Job::new(9, "tok", "g/p", "http://x/api/v4"), None)
            .unwrap();
        assert!(
            matches!(r.outcome, Outcome::ConfigurationError { .. }),
            "{:?}",
            r.outcome
        );
        assert_eq!(r.prepare_attempts, 1);
        d.builds_dir = Some("/b".into());
        d.cache_dir = Some("/c".into());
        let r = d
            .run_job(&Job::new(9, "tok", "g/p", "http://x/api/v4"), None)
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{}", r.log);
    }

    #[test]
    fn cancel_runs_after_script_with_canceled() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &fake,
            "#!/bin/bash\ncase \"$1\" in config) echo '{\"builds_dir\":\"@B@\",\"cache_dir\":\"/c\"}';; run) exec bash \"$2\";; esac\n".replace("@B@", &dir.path().join("b").to_string_lossy()),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.path().to_path_buf();
        d.graceful_kill_timeout = Duration::from_secs(5);
        let mut job = Job::new(9, "tok", "g/p", "http://x/api/v4");
        job.script = vec!["echo started-$((1+1)); sleep 300".into()];
        job.after_script = vec!["echo after=$CI_JOB_STATUS".into()];
        let r = d
            .run_job(&job, Some(CancelWhenLogShows("started-2".into())))
            .unwrap();
        assert_eq!(r.outcome, Outcome::Canceled, "{}", r.log);
        let k = r.kill_report("build_script").unwrap();
        assert!(
            k.exited_after_sigterm.unwrap() < Duration::from_secs(3),
            "{k:?}"
        );
        assert!(r.log.contains("after=canceled"), "{}", r.log);
        assert_eq!(r.phase_count("cleanup"), 1);
    }
}
