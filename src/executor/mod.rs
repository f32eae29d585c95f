//! The four custom-executor phases gitlab-runner calls: `config`, `prepare`, `run`, `cleanup`.
//! One file per phase; this module holds what they share: the context they start from and
//! how a failure becomes an exit code gitlab-runner understands.

pub mod agent;
pub mod auth;
pub mod caches;
pub mod cleanup;
pub mod config_stage;
pub mod env;
pub mod exec_guard;
pub mod failure;
pub mod gc;
pub mod images;
pub mod jobdata;
pub mod local;
pub mod plan;
pub mod prepare;
pub mod record;
pub mod removal;
pub mod response;
pub mod run;
pub mod service_logs;

use crate::config::{self, Config};
use crate::podman::Podman;
use crate::state::LogCopy;
use env::JobEnv;
pub use failure::{Failure, OrFailure};
use response::JobResponse;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The job's log copy (for `pogo tui`) of this phase, once [`job_log_copy`] opened it: pogo's
/// own messages for the job go there too, so the dashboard shows why a job failed.
static JOB_LOG_COPY: std::sync::Mutex<Option<Arc<std::sync::Mutex<LogCopy>>>> =
    std::sync::Mutex::new(None);

/// The job's log copy for this phase, opened (appending) on first use; pogo's messages
/// ([`log_error`], [`log_warning`], [`log_info`]) are copied into it from then on.
pub fn job_log_copy(ctx: &Context) -> Arc<std::sync::Mutex<LogCopy>> {
    if let Some(copy) = JOB_LOG_COPY.lock().ok().and_then(|c| c.clone()) {
        return copy;
    }
    // opened without the lock held: opening may warn, which writes here
    let copy = Arc::new(std::sync::Mutex::new(run::open_log_copy(ctx)));
    if let Ok(mut slot) = JOB_LOG_COPY.lock() {
        *slot = Some(Arc::clone(&copy));
    }
    copy
}

/// Write `line` (one whole line) to stderr, the job log, and into the job's log copy (as
/// stderr, through the same redaction as the stages' output).
fn say(line: &str) {
    eprintln!("{line}");
    let copy = JOB_LOG_COPY.lock().ok().and_then(|c| c.clone());
    if let Some(copy) = copy {
        // not while the copy is being written: the copy's own warning (a full disk) comes
        // from inside a write, and waiting for that lock would never end
        if let Ok(mut c) = copy.try_lock() {
            c.write(crate::state::Stream::Stderr, format!("{line}\n").as_bytes());
        }
    }
}

/// The phase is over: write what the log copy's redaction still holds back.
fn finish_job_log_copy() {
    let copy = JOB_LOG_COPY.lock().ok().and_then(|c| c.clone());
    if let Some(copy) = copy {
        if let Ok(mut c) = copy.lock() {
            c.finish();
        }
    }
}

/// Print a message into the job log (stderr of prepare/run is the job log), in GitLab's
/// red error style.
pub fn log_error(message: &str) {
    say(&format!("\x1b[31;1mERROR: pogo: {message}\x1b[0;m"));
}

pub fn log_warning(message: &str) {
    say(&crate::logging::job_log_warning(message));
}

pub fn log_info(message: &str) {
    say(&format!("pogo: {message}"));
}

/// What every phase after `config` starts from.
pub struct Context {
    pub env: HashMap<String, String>,
    pub config: Config,
    pub job: JobEnv,
    pub podman: Podman,
    /// The job description (`JOB_RESPONSE_FILE`), read once per phase; empty when
    /// gitlab-runner gave none (older than 14.1), the reason when it cannot be read.
    pub response: Result<JobResponse, String>,
    /// For the job log (prepare says them): where pogo went by GitLab's values over the job's.
    pub notes: Vec<String>,
}

impl Context {
    pub fn load(config_flag: Option<&Path>, env: HashMap<String, String>) -> Result<Self, Failure> {
        // the config the job started with (the config phase's read of the file), else the file
        let loaded = match env::job_config(&env) {
            Some((text, path)) => config::load_text(text, path.as_deref(), &env),
            None => config::load(config_flag, &env),
        };
        let mut config = loaded.map_err(config_failure)?;
        // The job's files (agent socket, private job data) stay where the job started them,
        // also when working_dir is edited in the config while it runs.
        if let Some(wd) = env::job_working_dir(&env) {
            config.working_dir = wd;
        }
        if let Some((bin, args)) = env::job_podman(&env) {
            config.podman = bin;
            config.podman_args = args;
        }
        // prepare, which needs the description, fails on it with the reason; later phases
        // go by the names the config phase passed on
        let response = load_response(&env);
        let job = JobEnv::from_env(&env, response.as_ref().ok()).map_err(Failure::system)?;
        let notes = job.notes.clone();
        let podman = Podman::new(config.podman.clone(), config.podman_args.clone());
        Ok(Self {
            env,
            config,
            job,
            podman,
            response,
            notes,
        })
    }
}

/// The pogo config cannot be read: what is wrong with it, and how to see what pogo reads.
pub fn config_failure(e: config::ConfigError) -> Failure {
    Failure::system(format!(
        "{e}\n(fix the pogo config; `pogo print` shows what pogo reads)"
    ))
}

/// The job description gitlab-runner wrote, or an empty one (no identity) when it gave none.
pub fn load_response(env: &HashMap<String, String>) -> Result<JobResponse, String> {
    env::job_response_file(env)
        .as_deref()
        .map_or_else(|| Ok(JobResponse::default()), response::load)
}

/// `pogo config`: its exit code for gitlab-runner.
pub fn config_main(flag: Option<&Path>, env: &HashMap<String, String>) -> i32 {
    exit_code(config_stage::run(flag, env), env)
}

/// `pogo prepare`: its exit code for gitlab-runner.
pub fn prepare_main(flag: Option<&Path>, env: &HashMap<String, String>) -> i32 {
    let r = with_context(flag, env, |ctx, rt| {
        let r = rt.block_on(prepare::run(ctx));
        note_failure(ctx, "prepare", &r);
        r
    });
    exit_code(r, env)
}

/// `pogo run SCRIPT STAGE`: its exit code for gitlab-runner.
pub fn run_main(
    flag: Option<&Path>,
    env: &HashMap<String, String>,
    script: &Path,
    stage: &str,
) -> i32 {
    let r = with_context(flag, env, |ctx, rt| {
        let r = rt.block_on(run::run(ctx, script, stage));
        note_failure(ctx, stage, &r);
        r
    });
    exit_code(r, env)
}

/// `pogo cleanup`: its exit code for gitlab-runner.
pub fn cleanup_main(flag: Option<&Path>, env: &HashMap<String, String>) -> i32 {
    let r = runtime().and_then(|rt| rt.block_on(cleanup::phase(flag, env)));
    exit_code(r, env)
}

/// The runtime of a phase: one thread, as a phase is one job's.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .or_system(|| "cannot start pogo's runtime")
}

/// A failed phase's message, for the dashboard's record of the job (a script's own failure
/// has none: its exit code is the reason).
fn note_failure(ctx: &Context, phase: &str, r: &Result<(), Failure>) {
    let message = match r {
        Err(Failure::System(m)) => m.as_str(),
        Err(Failure::Build {
            message: Some(m), ..
        }) => m.as_str(),
        _ => return,
    };
    crate::executor::record::failed_because(ctx, phase, message);
}

fn with_context<F>(flag: Option<&Path>, env: &HashMap<String, String>, f: F) -> Result<(), Failure>
where
    F: FnOnce(&Context, &tokio::runtime::Runtime) -> Result<(), Failure>,
{
    let ctx = Context::load(flag, env.clone())?;
    let rt = runtime()?;
    f(&ctx, &rt)
}

/// Turn a phase result into the process exit code, writing `BUILD_EXIT_CODE_FILE` for build
/// failures as the protocol asks.
pub fn exit_code(result: Result<(), Failure>, env: &HashMap<String, String>) -> i32 {
    let code = phase_exit_code(result, env);
    finish_job_log_copy();
    code
}

fn phase_exit_code(result: Result<(), Failure>, env: &HashMap<String, String>) -> i32 {
    let (build_code, system_code) = env::failure_codes(env);
    match result {
        Ok(()) => 0,
        Err(Failure::System(m)) => {
            log_error(&m);
            system_code
        }
        Err(Failure::Build { exit_code, message }) => {
            if let Some(m) = message {
                log_error(&m);
            }
            if let Some(f) = env.get("BUILD_EXIT_CODE_FILE").filter(|f| !f.is_empty()) {
                if let Err(e) = std::fs::write(f, format!("{exit_code}\n")) {
                    log_error(&format!("cannot write the exit code to {f}: {e}"));
                    return system_code;
                }
            }
            build_code
        }
    }
}
