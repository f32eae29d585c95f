//! The job's state record for `pogo tui`: each phase records its stages and the result of the
//! job in the state dir. Failures to write are reported once in the job log and otherwise
//! ignored.

use super::Context;
use crate::state::{
    apply_stage_end, failure_is_ignored, finish, now, shell_env, short_reason, state_dir,
    JobRecord, Outcome, StageEnd, StateDir,
};

fn dir(ctx: &Context) -> StateDir {
    StateDir::new(state_dir(&ctx.config.working_dir, &ctx.env))
}

fn init(ctx: &Context) -> JobRecord {
    let j = &ctx.job;
    JobRecord {
        key: j.names.key.clone(),
        id: j.job_id.clone(),
        name: j.job_name.clone(),
        project: j.project_path.clone(),
        url: j.job_url.clone(),
        image: j.image.clone().or_else(|| ctx.config.default_image.clone()),
        container: j.names.container.clone(),
        started: now(),
        project_dir: ctx.env.get("CUSTOM_ENV_CI_PROJECT_DIR").cloned(),
        ..JobRecord::default()
    }
}

/// One warning per process is enough: the job log is the user's, not pogo's.
static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn record(ctx: &Context, change: impl FnOnce(&mut JobRecord)) {
    if let Err(e) = dir(ctx).update(&ctx.job.names.key, || init(ctx), change) {
        if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        super::log_warning(&format!(
        "cannot write the job's state record for `pogo tui` in {}: {e}; the job is not affected",
        dir(ctx).root.display()
    ));
    }
}

/// Prepare begins: a fresh record (an earlier attempt's is replaced). Old records are
/// pruned by `pogo gc`, which prepare starts in the background, not on every job.
pub fn prepare_started(ctx: &Context) {
    dir(ctx).clear_stop_note(&ctx.job.names.key);
    let fresh = init(ctx);
    let stamp = fresh.started;
    record(ctx, |r| {
        *r = fresh;
        r.stage = Some("prepare".to_string());
        r.stage_started = Some(stamp);
    });
}

/// Records "prepare started" now and "prepare finished" when dropped: as a success only
/// after [`Prepare::succeeded`], so every early return of prepare counts as a failure.
#[must_use = "keep the guard until prepare ends"]
pub struct Prepare<'a> {
    ctx: &'a Context,
    ok: bool,
}

impl<'a> Prepare<'a> {
    pub fn start(ctx: &'a Context) -> Self {
        prepare_started(ctx);
        Self { ctx, ok: false }
    }
    pub fn succeeded(mut self) {
        self.ok = true;
    }
}

impl Drop for Prepare<'_> {
    fn drop(&mut self) {
        prepare_finished(self.ctx, self.ok);
    }
}

/// A phase failed with `message`: the job's record keeps the first reason, after the
/// phase or stage it happened in (`prepare`, `build_script`).
pub fn failed_because(ctx: &Context, phase: &str, message: &str) {
    if failure_is_ignored(phase) {
        return;
    }
    record(ctx, |r| {
        if r.reason.is_none() {
            r.reason = Some(format!("{phase}: {}", short_reason(message)));
        }
    });
}

/// The job's variables for the dashboard's shell in its container ([`shell_env`], mode
/// 0600, pruned with the record). Best effort: the job never fails for it.
pub fn shell_env_written(ctx: &Context) {
    let mut secrets: Vec<&str> = vec![ctx.job.job_token.expose()];
    if let Ok(r) = &ctx.response {
        secrets.extend(r.masked.iter().map(|m| m.expose()));
    }
    let text = shell_env(&ctx.env, &secrets);
    let how = crate::fsutil::Replace {
        mode: Some(0o600),
        durable: false,
        keep_owner: false,
    };
    let d = dir(ctx);
    if d.ensure().is_ok() {
        let _ = crate::fsutil::replace(&d.env_path(&ctx.job.names.key), text.as_bytes(), how);
    }
}

/// Prepare learnt the job's tags (the dashboard's preview can show what they grant).
pub fn tags_known(ctx: &Context, tags: &[String]) {
    record(ctx, |r| r.tags = tags.to_vec());
}

/// Prepare ended; `ok` false records the job as failed at prepare.
pub fn prepare_finished(ctx: &Context, ok: bool) {
    record(ctx, |r| {
        r.prepared = ok;
        if !ok && r.result.is_none() {
            r.result = Some(Outcome::Failed);
            r.failure = Some("prepare".to_string());
        }
    });
}

pub fn stage_started(ctx: &Context, stage: &str) {
    record(ctx, |r| {
        r.stage = Some(stage.to_string());
        r.stage_started = Some(now());
    });
}

pub fn stage_finished(ctx: &Context, stage: &str, end: StageEnd) {
    record(ctx, |r| apply_stage_end(r, stage, end));
}

/// Cleanup: the job is over. No failure recorded so far means it succeeded.
pub fn job_finished(ctx: &Context) {
    record(ctx, finish);
}
