//! `pogo run SCRIPT STAGE`: feed gitlab-runner's stage script to the shell in the job
//! container (or the helper container, for the predefined stages when `helper_image` is set),
//! through the image's entrypoint as the Docker executor does, stream its output unbuffered,
//! and map its exit code to the protocol.

use super::record as hooks;
use super::{log_info, log_warning, Context, Failure, OrFailure};
use crate::podman::args;
use crate::state::{self, LogCopy, StateDir, Stream};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::signal::unix::{signal, SignalKind};

/// Where and how one stage runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTarget {
    pub container: String,
    /// The image's entrypoint every stage starts through (empty: none).
    pub entrypoint: Vec<String>,
    /// What the stage starts: the entrypoint, then the shell the Docker executor would pick
    /// ([`args::detect_shell_command`]).
    pub command: Vec<String>,
    /// The container's stage agent, when it runs one.
    pub agent_socket: Option<PathBuf>,
    /// Which container, for messages: "job" or "helper".
    pub role: &'static str,
}

/// The stages the Docker executor runs in the job image; every other (predefined) stage runs
/// in the helper container when there is one.
pub fn is_user_stage(stage: &str) -> bool {
    stage == "build_script" || stage == "after_script" || stage.starts_with("step_")
}

/// The command of a stage: `entrypoint... sh -c DETECT_SHELL`, as the Docker executor starts
/// its stages (the shell in `pogo config`'s answer only tells gitlab-runner which scripts to
/// write).
pub fn stage_command(entrypoint: &[String]) -> Vec<String> {
    let mut c = entrypoint.to_vec();
    c.extend(args::detect_shell_command());
    c
}

/// Where `stage` runs, from what `prepare` recorded (a job prepared without a record — an
/// older pogo — runs everything in the job container with the shell alone).
pub fn stage_target(ctx: &Context, stage: &str) -> Result<StageTarget, Failure> {
    let job = super::jobdata::read_job_file(&ctx.config.working_dir, &ctx.job.names.key)
        .map_err(|e| Failure::system(format!("{e}; the job can be retried")))?
        .unwrap_or_default();
    if let Some(helper) = job.helper.as_ref().filter(|_| !is_user_stage(stage)) {
        let agent_socket = helper
            .agent_key
            .as_deref()
            .filter(|_| ctx.config.stage_runner == crate::config::StageRunner::Agent)
            .map(|key| super::agent::socket_path(&ctx.config.working_dir, key))
            .filter(|s| s.exists());
        return Ok(StageTarget {
            container: helper.container.clone(),
            command: stage_command(&helper.entrypoint),
            entrypoint: helper.entrypoint.clone(),
            agent_socket,
            role: HELPER,
        });
    }
    Ok(StageTarget {
        container: ctx.job.names.container.clone(),
        command: stage_command(&job.entrypoint),
        entrypoint: job.entrypoint,
        agent_socket: agent_socket(ctx),
        role: "job",
    })
}

/// How a stage ended, whichever runner ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageExit {
    /// The shell's exit code; `None` when the runner process died of a signal.
    pub code: Option<i32>,
    /// SIGTERM/SIGINT reached `pogo run` while the stage ran.
    pub canceled: bool,
}

/// The stage runner: how a stage script gets executed in the job container. Two
/// implementations with the same contract: [`PodmanExec`] and [`Agent`] (the fast path).
pub trait StageRunner {
    /// Run the script to completion, its output streamed to pogo's stdout/stderr and to the
    /// job's log copy.
    #[allow(async_fn_in_trait)]
    async fn run_stage(
        &self,
        ctx: &Context,
        target: &StageTarget,
        script: &Path,
        stage: &str,
    ) -> Result<StageExit, Failure>;
}

/// The stage runner for this job: the agent when prepare started one (its socket exists),
/// else `podman exec`.
pub fn agent_socket(ctx: &Context) -> Option<std::path::PathBuf> {
    if ctx.config.stage_runner != crate::config::StageRunner::Agent {
        return None;
    }
    let socket = super::agent::socket_path(&ctx.config.working_dir, &ctx.job.names.key);
    // what the job put there instead is refused when connecting (it must not mean podman exec)
    std::fs::symlink_metadata(&socket).is_ok().then_some(socket)
}

/// pogo's agent in the job container: no `podman exec` per stage.
pub struct Agent {
    pub socket: std::path::PathBuf,
}

impl StageRunner for Agent {
    async fn run_stage(
        &self,
        ctx: &Context,
        target: &StageTarget,
        script: &Path,
        stage: &str,
    ) -> Result<StageExit, Failure> {
        use super::agent::Output;
        use std::io::Write;
        let file = open_script(ctx, target, script)?;
        let copy = super::job_log_copy(ctx);
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        let (mut out_ok, mut err_ok) = (true, true);
        let mut sink = |o: Output, chunk: &[u8]| {
            // like the exec path: a failing stdout (gitlab-runner gone) does not stop the stage
            match o {
                Output::Stdout if out_ok => {
                    out_ok = out.write_all(chunk).and_then(|_| out.flush()).is_ok()
                }
                Output::Stderr if err_ok => {
                    err_ok = err.write_all(chunk).and_then(|_| err.flush()).is_ok()
                }
                _ => {}
            }
            let stream = match o {
                Output::Stdout => Stream::Stdout,
                Output::Stderr => Stream::Stderr,
            };
            if let Ok(mut c) = copy.lock() {
                c.write(stream, chunk);
            }
        };
        let argv: Vec<&str> = target.command.iter().map(String::as_str).collect();
        let end = super::agent::run_stage(&self.socket, &argv, file, &mut sink).await;
        if let Ok(mut c) = copy.lock() {
            c.finish();
        }
        match end {
            Ok(e) => Ok(StageExit {
                code: Some(e.exit_code),
                canceled: e.canceled,
            }),
            // the job replaced the agent's socket: its own doing
            Err(e @ super::agent::AgentError::NotASocket { .. }) => {
                Err(Failure::build(1, e.to_string()))
            }
            // the agent went away mid-stage: the container died (classify says how)
            Err(e) => Err(match ctx.podman.container_state(&target.container).await {
                Ok(Some(state)) if state.running => Failure::system(format!(
                    "the stage agent failed: {e}; the job can be retried"
                )),
                _ => classify(ctx, target, 137, stage).await,
            }),
        }
    }
}

/// The stage script to feed the shell. In the helper container it runs after `umask 0000`,
/// as the Docker executor's helper does (its `gitlab-runner-build`): the sources and caches it
/// makes as root stay writable for a job image's non-root `USER`. That copy is written to
/// the job's private directory and unlinked once open.
fn open_script(
    ctx: &Context,
    target: &StageTarget,
    script: &Path,
) -> Result<std::fs::File, Failure> {
    let unreadable = || format!("cannot read the stage script {}", script.display());
    if target.role != HELPER {
        return std::fs::File::open(script).or_system(unreadable);
    }
    let mut text = HELPER_UMASK.to_vec();
    text.extend(std::fs::read(script).or_system(unreadable)?);
    let dir = super::jobdata::dir(&ctx.config.working_dir, &ctx.job.names.key);
    let name = format!(".stage-{}", std::process::id());
    let copy = super::jobdata::write_private(&dir, &name, &text)
        .or_system(|| format!("cannot write in {}", dir.display()))?;
    let file = std::fs::File::open(&copy).or_system(unreadable);
    let _ = std::fs::remove_file(&copy);
    file
}

/// The role of the helper container in a [`StageTarget`].
const HELPER: &str = "helper";
/// What the helper's stages run first.
const HELPER_UMASK: &[u8] = b"umask 0000\n";

/// `podman exec -i CONTAINER bash < script`, with SIGTERM handled by signalling the stage's
/// processes inside the container.
#[derive(Default)]
pub struct PodmanExec {
    /// Set when the stage was stopped by SIGTERM/SIGINT (recorded for `pogo tui`).
    canceled: std::cell::Cell<bool>,
}

impl PodmanExec {
    fn canceled(&self) {
        self.canceled.set(true);
    }
}

impl StageRunner for PodmanExec {
    async fn run_stage(
        &self,
        ctx: &Context,
        target: &StageTarget,
        script: &Path,
        _stage: &str,
    ) -> Result<StageExit, Failure> {
        // Listening before podman exec starts: a SIGTERM from then on stops the stage; one in
        // between would have killed pogo and left podman exec (its own process group) running.
        let mut term = signal(SignalKind::terminate()).or_system(|| "cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).or_system(|| "cannot listen for SIGINT")?;
        let file = open_script(ctx, target, script)?;
        super::exec_guard::reap_previous(ctx).await;
        let argv = args::exec_stage(&target.container, &target.command);
        let mut cmd = ctx.podman.command(&argv);
        // Output goes through pogo: each chunk is written on at once (unbuffered) and to the
        // job's log copy for `pogo tui`.
        cmd.stdin(Stdio::from(file))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // gitlab-runner signals our whole process group on cancel; pogo decides what the
            // container sees, so podman exec gets its own group.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().or_system_fix(
            || format!("cannot start `{}`", ctx.podman.bin),
            "is podman installed?",
        )?;
        // until the stage ends: a next stage that finds it stops what this one left
        let _noted = super::exec_guard::note(ctx, child.id(), &target.container);
        let copy = super::job_log_copy(ctx);
        let pumps = tokio::spawn(pump_both(
            child.stdout.take(),
            child.stderr.take(),
            Arc::clone(&copy),
        ));
        let status = tokio::select! {
            s = child.wait() => s.or_system(|| EXEC_LOST),
            _ = term.recv() => cancel(ctx, target, &mut child, "SIGTERM").await.inspect(|_| self.canceled()),
            _ = int.recv() => cancel(ctx, target, &mut child, "SIGINT").await.inspect(|_| self.canceled()),
        };
        // podman exec is gone: the pipes end with it. A process that kept them open (a
        // daemon started by the script) must not hold the stage up.
        if tokio::time::timeout(OUTPUT_DRAIN, pumps).await.is_err() {
            log_warning(OUTPUT_CUT);
        }
        if let Ok(mut c) = copy.lock() {
            c.finish();
        }
        status.map(|s| StageExit {
            code: s.code(),
            canceled: self.canceled.get(),
        })
    }
}

/// How long to keep reading output after `podman exec` ended (the agent in the container
/// waits as long).
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);
/// The job log's warning when a stage's output stayed open after it ended.
pub(crate) const OUTPUT_CUT: &str = "the stage's output did not end with its process (a process it started in the background keeps it open); stopped reading it 5 s later";

/// The job's log copy, or a disabled one (with one warning) when it cannot be opened.
pub(crate) fn open_log_copy(ctx: &Context) -> LogCopy {
    let dir = StateDir::new(state::state_dir(&ctx.config.working_dir, &ctx.env));
    let secrets: Vec<String> = match ctx.response.as_ref().map(|r| &r.masked) {
        Ok(s) => s.iter().map(|v| v.expose().to_string()).collect(),
        Err(e) => {
            log_warning(&format!(
                "no log copy for `pogo tui`: masked variables unknown ({e}); the job is not affected"
            ));
            return LogCopy::disabled();
        }
    };
    LogCopy::open(&dir, &ctx.job.names.key, &secrets)
        .map(|c| c.with_limit(ctx.config.log_copy_limit))
        .unwrap_or_else(|e| {
            log_warning(&format!(
                "no log copy for `pogo tui`: {e}; the job is not affected"
            ));
            LogCopy::disabled()
        })
}

/// Stream a stage's stdout and stderr to pogo's own (the job log) and into the log copy, as
/// they arrive. Any stage runner feeds its output through here.
pub(crate) async fn pump_both(
    out: Option<tokio::process::ChildStdout>,
    err: Option<tokio::process::ChildStderr>,
    copy: Arc<Mutex<LogCopy>>,
) {
    let o = async {
        if let Some(r) = out {
            pump(r, std::io::stdout(), Stream::Stdout, &copy).await;
        }
    };
    let e = async {
        if let Some(r) = err {
            pump(r, std::io::stderr(), Stream::Stderr, &copy).await;
        }
    };
    tokio::join!(o, e);
}

/// Copy `from` to `to` chunk by chunk as it arrives (flushed at once, nothing accumulates)
/// and into the log copy. A failing `to` (gitlab-runner gone) does not stop the reading, so the
/// stage never blocks on a full pipe. `to` is written directly (a plain `write` on pogo's
/// stdout): tokio's stdout would hand every chunk to a blocking-pool thread, which cost a fifth
/// of the throughput.
async fn pump<R, W>(mut from: R, mut to: W, stream: Stream, copy: &Mutex<LogCopy>)
where
    R: AsyncRead + Unpin,
    W: std::io::Write,
{
    let mut buf = vec![0u8; 64 * 1024];
    let mut to_ok = true;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if to_ok {
            to_ok = to.write_all(chunk).and_then(|()| to.flush()).is_ok();
        }
        if let Ok(mut c) = copy.lock() {
            c.write(stream, chunk);
        }
    }
}

/// Stop the stage's processes in the container (not the container: after_script and the
/// upload stages still need it), first politely, then for good.
async fn cancel(
    ctx: &Context,
    target: &StageTarget,
    child: &mut tokio::process::Child,
    signame: &str,
) -> Result<ExitStatus, Failure> {
    log_info(&format!(
        "received {signame}: stopping the stage's processes in the {} container",
        target.role
    ));
    for (sig, grace) in [
        ("TERM", Duration::from_secs(5)),
        ("KILL", Duration::from_secs(3)),
    ] {
        // a hanging podman must not hold the cancel up: the kill gets the grace time too
        let mut kill = ctx
            .podman
            .command(&args::exec_kill_all(&target.container, sig));
        kill.kill_on_drop(true);
        let _ = tokio::time::timeout(grace, ctx.podman.output_of(kill)).await;
        if let Ok(r) = tokio::time::timeout(grace, child.wait()).await {
            return r.or_system(|| EXEC_LOST);
        }
    }
    let _ = child.start_kill();
    child.wait().await.or_system(|| EXEC_LOST)
}

/// The stage's `podman exec` could not be waited for (its exit code is lost).
const EXEC_LOST: &str = "cannot wait for the stage's `podman exec`";

pub async fn run(ctx: &Context, script: &Path, stage: &str) -> Result<(), Failure> {
    // gitlab-runner never clears this file; a stale code from an earlier stage must not count.
    if let Some(f) = &ctx.job.build_exit_code_file {
        if let Err(e) = std::fs::remove_file(f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Failure::system(format!(
                    "cannot remove stale {}: {e}",
                    f.display()
                )));
            }
        }
    }
    let target = stage_target(ctx, stage)?;
    hooks::stage_started(ctx, stage);
    let followers = super::service_logs::start(ctx);
    let exit = match target.agent_socket.clone() {
        Some(socket) => {
            Agent { socket }
                .run_stage(ctx, &target, script, stage)
                .await
        }
        None => {
            PodmanExec::default()
                .run_stage(ctx, &target, script, stage)
                .await
        }
    };
    if let Some(f) = followers {
        super::service_logs::stop(ctx, f).await;
    }
    let canceled = exit.as_ref().is_ok_and(|e| e.canceled);
    let result = match exit {
        Ok(StageExit { code: Some(0), .. }) => Ok(()),
        Ok(StageExit {
            code: Some(code), ..
        }) => Err(classify(ctx, &target, code, stage).await),
        Ok(StageExit { code: None, .. }) => Err(Failure::system(format!(
            "`podman exec` for stage {stage} was killed by a signal"
        ))),
        Err(e) => Err(e),
    };
    if matches!(result, Err(Failure::Build { .. })) && is_user_stage(stage) && !canceled {
        // a test suite that fails at once: often its database died
        super::service_logs::report_stopped(ctx).await;
    }
    let end = match &result {
        _ if canceled => state::StageEnd::Canceled,
        Ok(()) => state::StageEnd::Ok,
        Err(Failure::Build { exit_code, .. }) => state::StageEnd::ScriptFailed(*exit_code),
        Err(Failure::System(_)) => state::StageEnd::SystemFailure,
    };
    hooks::stage_finished(ctx, stage, end);
    result
}

/// A non-zero exit: the script's own failure (build failure), or the container/podman gone
/// (system failure)? 126/127 may also mean the image lacks the shell, or its entrypoint
/// cannot start one: then the message says which and how to fix it.
async fn classify(ctx: &Context, target: &StageTarget, code: i32, stage: &str) -> Failure {
    let container = &target.container;
    let what = format!("the {} container {container}", target.role);
    match ctx.podman.container_state(container).await {
        Ok(None) => {
            return Failure::system(format!(
                "{what} disappeared during stage {stage}: it was removed \
                 outside pogo (podman rm?); the job can be retried"
            ))
        }
        Ok(Some(state)) if !state.running => {
            let states = StateDir::new(state::state_dir(&ctx.config.working_dir, &ctx.env));
            if let Some(who) = states.stopped_by(&ctx.job.names.key) {
                return Failure::system(format!(
                    "{what} was stopped from pogo tui by {who} during stage {stage}; \
                     the job can be retried"
                ));
            }
            let oom = if state.oom_killed {
                ", killed for lack of memory (OOM)"
            } else {
                ""
            };
            return Failure::system(format!(
                "{what} stopped during stage {stage} (state {}, exit code {}{oom}); \
                 it was stopped outside pogo or ran out of resources",
                state.status, state.exit_code
            ));
        }
        Ok(Some(_)) => {}
        Err(e) => return Failure::system(format!("podman failed while checking {what}: {e}")),
    }
    // `COMMAND -c 'exit 0'` in the container: its exit code, `None` when podman could not
    // run it or did not answer within 30 s (a failing podman may hang too).
    let probe = |command: Vec<String>| async move {
        let mut argv = vec!["exec".to_string(), container.clone()];
        argv.extend(command);
        argv.extend(["-c".to_string(), "exit 0".to_string()]);
        let mut cmd = ctx.podman.command(&argv);
        cmd.kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(30), ctx.podman.output_of(cmd))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|o| o.status.code())
    };
    let sh = || vec!["sh".to_string()];
    // `podman exec` exits 125 when podman itself failed (a lock, the runtime) — or when the
    // script did `exit 125`. (The agent reports the script's own code: no doubt there.) A
    // trivial exec tells them apart: podman failing again is the machine's problem.
    if code == 125 && target.agent_socket.is_none() {
        let again = probe(sh()).await;
        if again != Some(0) {
            let how = again.map_or("does not answer".to_string(), |c| {
                format!("fails too (exit {c})")
            });
            return Failure::system(format!(
                "`podman exec` failed during stage {stage} (exit 125), and a trivial exec in \
                 {what} {how}: podman itself is failing, see its error above; the job can be \
                 retried"
            ));
        }
    }
    if code == 126 || code == 127 {
        if matches!(probe(sh()).await, Some(126) | Some(127)) {
            return Failure::build(code, missing_shell_message(target.role));
        }
        if !target.entrypoint.is_empty() {
            let mut through_entrypoint = target.entrypoint.clone();
            through_entrypoint.extend(sh());
            if matches!(probe(through_entrypoint).await, Some(126) | Some(127)) {
                return Failure::build(
                    code,
                    format!(
                        "the image's entrypoint {} could not start a shell: the Docker executor \
                         starts every stage through it, so it must run its arguments (`exec \
                         \"$@\"`); fix the entrypoint, or override it in .gitlab-ci.yml with \
                         `image: {{name: ..., entrypoint: [\"\"]}}`",
                        serde_json::to_string(&target.entrypoint).unwrap_or_default()
                    ),
                );
            }
        }
    }
    Failure::Build {
        exit_code: code,
        message: None,
    }
}

/// What to say when the image has no `sh` to start a stage with.
pub fn missing_shell_message(role: &str) -> String {
    if role == HELPER {
        return "the helper image (helper_image in the pogo config) has no sh: use a helper image \
                with a shell, git, git-lfs and gitlab-runner (see docs/configuration.md)"
            .to_string();
    }
    "the job image has no sh, which starts every stage (as with the Docker executor, which picks \
     bash, else sh, else /busybox/sh through it): use an image with a shell (a distroless image's \
     `:debug` variant has /busybox/sh and needs `image: {name: ..., entrypoint: [\"\"]}` too)"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_stages_run_in_the_job_image_everything_else_may_go_to_the_helper() {
        for s in [
            "build_script",
            "after_script",
            "step_script",
            "step_release",
        ] {
            assert!(is_user_stage(s), "{s}");
        }
        for s in [
            "prepare_script",
            "get_sources",
            "clear_worktree",
            "restore_cache",
            "download_artifacts",
            "archive_cache",
            "archive_cache_on_failure",
            "upload_artifacts_on_success",
            "upload_artifacts_on_failure",
            "cleanup_file_variables",
        ] {
            assert!(!is_user_stage(s), "{s}");
        }
    }

    #[test]
    fn every_stage_starts_the_shell_the_docker_executor_would_pick_through_the_entrypoint() {
        let detect = args::detect_shell_command();
        assert_eq!(stage_command(&[]), detect);
        let mut through = vec!["/entry.sh".to_string(), "--".to_string()];
        through.extend(detect.iter().cloned());
        assert_eq!(stage_command(&["/entry.sh".into(), "--".into()]), through);
        let argv = args::exec_stage("c", &stage_command(&["--privileged".into()]));
        assert_eq!(&argv[..4], ["exec", "-i", "c", "--privileged"]);
        // bash first, at the Docker executor's places, then sh, then busybox
        let order: Vec<usize> = ["/usr/local/bin/bash", "/bin/bash", "/bin/sh", "/busybox/sh"]
            .iter()
            .map(|s| args::DETECT_SHELL.find(s).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn a_missing_shell_message_says_how_to_fix_it() {
        assert!(missing_shell_message("job").contains("no sh"));
        assert!(missing_shell_message("helper").contains("helper_image"));
    }
}
