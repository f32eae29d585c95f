//! `pogo run SCRIPT STAGE`: feed gitlab-runner's stage script to the shell in the job
//! container, stream its output unbuffered, and map its exit code to the protocol.

use super::{log_info, Context, Failure};
use crate::podman::args;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// The shell gitlab-runner's scripts are written for (config reports `shell: bash`).
pub const SHELL: &str = "bash";

/// The stage runner: how a stage script gets executed in the job container. One small
/// interface so a faster path can replace `podman exec` later.
pub trait StageRunner {
    /// Run the script to completion; `Ok(status)` of the runner process.
    #[allow(async_fn_in_trait)]
    async fn run_stage(
        &self,
        ctx: &Context,
        script: &Path,
        stage: &str,
    ) -> Result<ExitStatus, Failure>;
}

/// `podman exec -i CONTAINER bash < script`, with SIGTERM handled by signalling the stage's
/// processes inside the container.
pub struct PodmanExec;

impl StageRunner for PodmanExec {
    async fn run_stage(
        &self,
        ctx: &Context,
        script: &Path,
        _stage: &str,
    ) -> Result<ExitStatus, Failure> {
        let file = std::fs::File::open(script).map_err(|e| {
            Failure::system(format!(
                "cannot read the stage script {}: {e}",
                script.display()
            ))
        })?;
        let argv = args::exec_stage(&ctx.job.names.container, SHELL);
        let mut cmd = ctx.podman.command(&argv);
        cmd.stdin(Stdio::from(file))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
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
        let mut term = signal(SignalKind::terminate()).map_err(Failure::system)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Failure::system)?;
        let status = tokio::select! {
            s = child.wait() => s.map_err(Failure::system)?,
            _ = term.recv() => cancel(ctx, &mut child, "SIGTERM").await?,
            _ = int.recv() => cancel(ctx, &mut child, "SIGINT").await?,
        };
        Ok(status)
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
    let status = PodmanExec.run_stage(ctx, script, stage).await?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(classify(ctx, code, stage).await),
        None => Err(Failure::system(format!(
            "`podman exec` for stage {stage} was killed by a signal ({status})"
        ))),
    }
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
