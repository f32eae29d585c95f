//! The `podman exec` stage path's guard against a `pogo run` killed mid-stage (SIGKILL: no
//! handler runs, kill-on-drop does not either). On the agent path the agent in the container
//! takes the stage's processes with it when its client goes; `podman exec` does not: its
//! process on the host (its own process group) and the stage in the container run on, beside
//! the job's next stage (`after_script`).
//!
//! So each exec-path stage notes itself in the job's private directory (`exec-stage`: pogo's
//! pid, podman exec's pid, the container) before it starts and removes the note when it ends.
//! The next stage that finds a note whose pogo is gone stops what it left: the orphaned
//! `podman exec` (only if that pid still carries this job's key, so a reused pid is never
//! hit) and every process in that container but its init, as when a stage is canceled (the
//! Docker executor starts each stage in a fresh container: nothing of one stage outlives it).

use super::{jobdata, log_warning, Context};
use crate::podman::args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

const NOTE: &str = "exec-stage";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageNote {
    pub pogo: u32,
    pub podman: Option<u32>,
    pub container: String,
}

fn note_path(ctx: &Context) -> PathBuf {
    jobdata::dir(&ctx.config.working_dir, &ctx.job.names.key).join(NOTE)
}

fn alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|p| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
            || std::path::Path::new(&format!("/proc/{p}")).exists()
    })
}

/// Does process `pid` work for this job (pogo and its podman commands carry its key)?
fn carries_key(pid: u32, key: &str) -> bool {
    super::gc::job_keys_of_process(std::path::Path::new(&format!("/proc/{pid}")))
        .iter()
        .any(|k| k == key)
}

/// Before a stage: stop what an earlier stage whose `pogo run` was killed left running.
pub async fn reap_previous(ctx: &Context) {
    let path = note_path(ctx);
    let Ok(text) = std::fs::read(&path) else {
        return;
    };
    let _ = std::fs::remove_file(&path);
    let Ok(note) = serde_json::from_slice::<StageNote>(&text) else {
        return;
    };
    if note.pogo == std::process::id()
        || alive(note.pogo) && carries_key(note.pogo, &ctx.job.names.key)
    {
        return;
    }
    log_warning(&format!(
        "the previous stage's `pogo run` was killed before its stage ended: stopping what it left running in the {} container",
        note.container
    ));
    if let Some(pid) = note
        .podman
        .filter(|p| carries_key(*p, &ctx.job.names.key))
        .and_then(|p| i32::try_from(p).ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let mut kill = ctx
        .podman
        .command(&args::exec_kill_all(&note.container, "KILL"));
    kill.kill_on_drop(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), ctx.podman.output_of(kill)).await;
}

/// The note of a running stage; removed when dropped (the stage ended, however).
pub struct Noted(PathBuf);

impl Drop for Noted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Note the stage `podman` (the `podman exec`'s pid) runs in `container`.
pub fn note(ctx: &Context, podman: Option<u32>, container: &str) -> Option<Noted> {
    let path = note_path(ctx);
    let note = StageNote {
        pogo: std::process::id(),
        podman,
        container: container.to_string(),
    };
    let json = serde_json::to_vec(&note).ok()?;
    let dir = path.parent()?;
    jobdata::write_private(dir, NOTE, &json).ok()?;
    Some(Noted(path))
}
