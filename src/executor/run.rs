//! `pogo run SCRIPT STAGE`: feed gitlab-runner's stage script to the shell in the job
//! container, stream its output unbuffered, and map its exit code to the protocol.

use super::{log_info, log_warning, Context, Failure};
use crate::podman::args;
use crate::state::{self, hooks, LogCopy, StateDir, Stream};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// The shell gitlab-runner's scripts are written for (config reports `shell: bash`).
pub const SHELL: &str = "bash";

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
    socket.exists().then_some(socket)
}

/// pogo's agent in the job container: no `podman exec` per stage.
pub struct Agent {
    pub socket: std::path::PathBuf,
}

impl StageRunner for Agent {
    async fn run_stage(
        &self,
        ctx: &Context,
        script: &Path,
        _stage: &str,
    ) -> Result<StageExit, Failure> {
        use super::agent::Output;
        use std::io::Write;
        let file = open_script(script)?;
        let mut copy = open_log_copy(ctx);
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
            copy.write(stream, chunk);
        };
        let end = super::agent::run_stage(&self.socket, SHELL, file, &mut sink).await;
        copy.finish();
        match end {
            Ok(e) => Ok(StageExit {
                code: Some(e.exit_code),
                canceled: e.canceled,
            }),
            // the agent went away mid-stage: the container died (classify says how)
            Err(e) => Err(
                match ctx.podman.container_state(&ctx.job.names.container).await {
                    Ok(Some(state)) if state.running => Failure::system(format!(
                        "the stage agent failed: {e}; the job can be retried"
                    )),
                    _ => classify(ctx, 137, _stage).await,
                },
            ),
        }
    }
}

fn open_script(script: &Path) -> Result<std::fs::File, Failure> {
    std::fs::File::open(script).map_err(|e| {
        Failure::system(format!(
            "cannot read the stage script {}: {e}",
            script.display()
        ))
    })
}

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
        script: &Path,
        _stage: &str,
    ) -> Result<StageExit, Failure> {
        let file = open_script(script)?;
        let argv = args::exec_stage(&ctx.job.names.container, SHELL);
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
        let mut child = cmd.spawn().map_err(|e| {
            Failure::system(format!(
                "cannot start `{}`: {e}; is podman installed?",
                ctx.podman.bin
            ))
        })?;
        let copy = Arc::new(Mutex::new(open_log_copy(ctx)));
        let pumps = tokio::spawn(pump_both(
            child.stdout.take(),
            child.stderr.take(),
            Arc::clone(&copy),
        ));
        let mut term = signal(SignalKind::terminate()).map_err(Failure::system)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Failure::system)?;
        let status = tokio::select! {
            s = child.wait() => s.map_err(Failure::system),
            _ = term.recv() => cancel(ctx, &mut child, "SIGTERM").await.inspect(|_| self.canceled()),
            _ = int.recv() => cancel(ctx, &mut child, "SIGINT").await.inspect(|_| self.canceled()),
        };
        // podman exec is gone: the pipes end with it. A process that kept them open (a
        // daemon started by the script) must not hold the stage up.
        if tokio::time::timeout(OUTPUT_DRAIN, pumps).await.is_err() {
            log_warning("the stage's output did not end with its process; stopped reading it");
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

/// How long to keep reading output after `podman exec` ended.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// The job's log copy, or a disabled one (with one warning) when it cannot be opened.
pub(crate) fn open_log_copy(ctx: &Context) -> LogCopy {
    let dir = StateDir::new(state::state_dir(&ctx.config.working_dir, &ctx.env));
    let secrets = match state::job_secrets(ctx.job.job_response_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            log_warning(&format!(
                "no log copy for `pogo tui`: masked variables unknown ({e}); the job is not affected"
            ));
            return LogCopy::disabled();
        }
    };
    LogCopy::open(&dir, &ctx.job.names.key, &secrets).unwrap_or_else(|e| {
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
            pump(r, tokio::io::stdout(), Stream::Stdout, &copy).await;
        }
    };
    let e = async {
        if let Some(r) = err {
            pump(r, tokio::io::stderr(), Stream::Stderr, &copy).await;
        }
    };
    tokio::join!(o, e);
}

/// Copy `from` to `to` chunk by chunk as it arrives (flushed at once, nothing accumulates)
/// and into the log copy. A failing `to` (gitlab-runner gone) does not stop the reading, so the
/// stage never blocks on a full pipe.
async fn pump<R, W>(mut from: R, mut to: W, stream: Stream, copy: &Mutex<LogCopy>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
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
            to_ok = to.write_all(chunk).await.is_ok() && to.flush().await.is_ok();
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
    child: &mut tokio::process::Child,
    signame: &str,
) -> Result<ExitStatus, Failure> {
    log_info(&format!(
        "received {signame}: stopping the stage's processes in the job container"
    ));
    let container = &ctx.job.names.container;
    for (sig, grace) in [
        ("TERM", Duration::from_secs(5)),
        ("KILL", Duration::from_secs(3)),
    ] {
        let _ = ctx
            .podman
            .output(&args::exec_kill_all(container, SHELL, sig))
            .await;
        if let Ok(r) = tokio::time::timeout(grace, child.wait()).await {
            return r.map_err(Failure::system);
        }
    }
    let _ = child.start_kill();
    child.wait().await.map_err(Failure::system)
}

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
    hooks::stage_started(ctx, stage);
    let exit = match agent_socket(ctx) {
        Some(socket) => Agent { socket }.run_stage(ctx, script, stage).await,
        None => PodmanExec::default().run_stage(ctx, script, stage).await,
    };
    let canceled = exit.as_ref().is_ok_and(|e| e.canceled);
    let result = match exit {
        Ok(StageExit { code: Some(0), .. }) => Ok(()),
        Ok(StageExit {
            code: Some(code), ..
        }) => Err(classify(ctx, code, stage).await),
        Ok(StageExit { code: None, .. }) => Err(Failure::system(format!(
            "`podman exec` for stage {stage} was killed by a signal"
        ))),
        Err(e) => Err(e),
    };
    let end = match &result {
        _ if canceled => hooks::StageEnd::Canceled,
        Ok(()) => hooks::StageEnd::Ok,
        Err(Failure::Build { exit_code, .. }) => hooks::StageEnd::ScriptFailed(*exit_code),
        Err(Failure::System(_)) => hooks::StageEnd::SystemFailure,
    };
    hooks::stage_finished(ctx, stage, end);
    result
}

/// A non-zero exit: the script's own failure (build failure), or the container/podman gone
/// (system failure)?
async fn classify(ctx: &Context, code: i32, stage: &str) -> Failure {
    let container = &ctx.job.names.container;
    match ctx.podman.container_state(container).await {
        Ok(None) => {
            return Failure::system(format!(
                "the job container {container} disappeared during stage {stage}: it was removed \
                 outside pogo (podman rm?); the job can be retried"
            ))
        }
        Ok(Some(state)) if !state.running => {
            let oom = if state.oom_killed {
                ", killed for lack of memory (OOM)"
            } else {
                ""
            };
            return Failure::system(format!(
                "the job container {container} stopped during stage {stage} (state {}, exit code {}{oom}); \
                 it was stopped outside pogo or ran out of resources",
                state.status, state.exit_code
            ));
        }
        Ok(Some(_)) => {}
        Err(e) => {
            return Failure::system(format!(
                "podman failed while checking the job container: {e}"
            ))
        }
    }
    if code == 126 || code == 127 {
        let probe = ctx
            .podman
            .output(&[
                "exec".to_string(),
                container.clone(),
                SHELL.to_string(),
                "-c".to_string(),
                "exit 0".to_string(),
            ])
            .await;
        if let Ok(o) = probe {
            if matches!(o.status.code(), Some(126) | Some(127)) {
                return Failure::build(
                    code,
                    format!(
                        "the job image has no {SHELL}, which gitlab-runner's scripts need: use an image \
                         that has {SHELL} (e.g. debian, ubuntu, fedora, or alpine with `apk add bash`)"
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
