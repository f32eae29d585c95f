//! The job's podman objects other than services: builds volumes, secrets, containers made
//! with a check that a leftover of the same name is pogo's, pogo's init and agent as the
//! keep-alive, the gitlab-runner binary for the container.

use super::super::plan;
use super::super::{log_info, log_warning, Context, Failure};
use super::*;
use crate::podman::args::{self, KeepAlive};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fast stage path when the config allows it, this pogo has a static agent and podman's
/// catatonit is there to be PID 1 ; otherwise the plain keep-alive (stages via `podman exec`).
/// The host's static init (see [`crate::podman::detect_keep_alive`]), as pogo's own copy
/// under `working_dir` (see [`crate::executor::agent::own_copy`]); the host's file itself when it cannot
/// be copied (then an SELinux host cannot run it: the warning says so).
pub(super) fn own_init(ctx: &Context) -> KeepAlive {
    match crate::podman::detect_keep_alive() {
        KeepAlive::Init(host) => {
            match crate::executor::agent::own_copy(
                &ctx.config.working_dir,
                Path::new(&host),
                "catatonit",
            ) {
                Ok(copy) if !copy.display().to_string().contains([':', ',']) => {
                    KeepAlive::Init(copy.display().to_string())
                }
                Ok(_) => KeepAlive::Init(host),
                Err(e) => {
                    log_warning(&format!(
                        "cannot copy {host} under {}: {e}; mounting it from where it is (an \
                         SELinux host will not let the job container run it)",
                        ctx.config.working_dir.display()
                    ));
                    KeepAlive::Init(host)
                }
            }
        }
        other => other,
    }
}

pub(super) fn with_agent(ctx: &Context, keep_alive: KeepAlive, agent_key: &str) -> KeepAlive {
    let KeepAlive::Init(init) = keep_alive else {
        return keep_alive;
    };
    if ctx.config.stage_runner != crate::config::StageRunner::Agent {
        return KeepAlive::Init(init);
    }
    let working_dir = &ctx.config.working_dir;
    let prepared = crate::executor::agent::install(working_dir).and_then(|agent| {
        let dir = crate::executor::agent::socket_dir(working_dir, agent_key);
        crate::executor::agent::prepare_socket_dir(&dir)?;
        Ok(agent.map(|a| (a.display().to_string(), dir.display().to_string())))
    });
    let agent = prepared.unwrap_or_else(|e| {
        log_warning(&format!(
            "cannot set up the stage agent under {}: {e}; stages use podman exec",
            working_dir.display()
        ));
        None
    });
    plan::keep_alive(&ctx.config, init, agent)
}

/// The persistent builds volume of this runner + project + slot (see [`kept_volume`]), for a
/// job that fetches: the project's last clone.
pub(super) async fn persistent_builds_volume(
    ctx: &Context,
) -> Result<(String, Option<crate::executor::gc::BuildsVolumeLock>), Failure> {
    let name = crate::executor::env::persistent_builds_volume(
        &ctx.job.runner_short_token,
        &ctx.job.project_path,
        &ctx.job.concurrent_project_id,
    );
    let days = ctx.config.persistent_builds_days;
    let kept = Kept {
        what: "builds volume",
        reused: format!(
            "reusing the builds volume {name}: this project's last clone, for GIT_STRATEGY \
             fetch (persistent_builds_days: 0 in the pogo config starts every job afresh)"
        ),
        created: format!(
            "created the builds volume {name}: kept for this project's next GIT_STRATEGY \
             fetch, {days} days unused at most (persistent_builds_days; 0 turns it off)"
        ),
        days,
    };
    kept_volume(ctx, name, &kept).await
}

/// The project's volumes (`project_volume:` of the job's tags' entries) as (name, container
/// path), each kept like a persistent builds volume (see [`kept_volume`]); the locks are held
/// until the job container mounts them. A job without a project path gets none.
pub(super) async fn project_volumes(
    ctx: &Context,
    paths: &[String],
) -> Result<
    (
        Vec<(String, String)>,
        Vec<crate::executor::gc::BuildsVolumeLock>,
    ),
    Failure,
> {
    let (mut volumes, mut locks) = (Vec::new(), Vec::new());
    if ctx.job.project_path.is_empty() {
        if !paths.is_empty() {
            log_warning("the job has no project path: its tags' project_volume is not mounted");
        }
        return Ok((volumes, locks));
    }
    let days = plan::project_volume_days(&ctx.config);
    for path in paths {
        let name = crate::executor::env::project_volume(&ctx.job.project_path, path);
        let kept = Kept {
            what: "project volume",
            reused: format!("using the project volume {name} (project_volume)"),
            created: format!(
                "created the project volume {name} (project_volume: kept for later jobs)"
            ),
            days,
        };
        let (name, lock) = kept_volume(ctx, name, &kept).await?;
        volumes.push((name, path.clone()));
        locks.extend(lock);
    }
    Ok((volumes, locks))
}

/// What kind of kept volume, what the job log says when it is reused or created, and the
/// days `pogo gc` keeps it unused.
struct Kept {
    what: &'static str,
    reused: String,
    created: String,
    days: u64,
}

/// A volume kept between jobs: reused when it is there (one `podman volume inspect`), created
/// otherwise. It carries pogo's and the runner's labels but no job's, so cleanup keeps it;
/// `pogo gc` removes it after its days unused (the stamp under `working_dir` says when it was
/// last used).
async fn kept_volume(
    ctx: &Context,
    name: String,
    kept: &Kept,
) -> Result<(String, Option<crate::executor::gc::BuildsVolumeLock>), Failure> {
    use crate::podman::labels::LABEL_BUILDS_VOLUME;
    let (what, days) = (kept.what, kept.days);
    let failed =
        |e: &dyn std::fmt::Display| Failure::system(format!("cannot use the {what} {name}: {e}"));
    // Locked and noted as in use before it is looked at: a `pogo gc` removing it now finishes
    // first; one that comes later keeps it.
    let lock = match crate::executor::gc::lock_builds_volume_for_use(&ctx.config.working_dir, &name)
    {
        Ok(lock) => Some(lock),
        Err(e) => {
            log_warning(&format!(
                "cannot lock {name} under {}: {e}; a `pogo gc` running now might remove it",
                ctx.config.working_dir.display()
            ));
            None
        }
    };
    if let Err(e) = crate::executor::gc::touch_builds_volume(&ctx.config.working_dir, &name, days) {
        log_warning(&format!(
            "cannot note the use of {name} under {}: {e}; `pogo gc` may remove it early",
            ctx.config.working_dir.display()
        ));
    }
    let inspect = ctx
        .podman
        .output(&args::volume_inspect(&name))
        .await
        .map_err(|e| failed(&e))?;
    if inspect.status.success() {
        #[derive(Deserialize)]
        struct Volume {
            #[serde(rename = "Labels", default)]
            labels: Option<BTreeMap<String, String>>,
        }
        let list: Vec<Volume> =
            serde_json::from_str(inspect.stdout.trim()).map_err(|e| failed(&e))?;
        let labels = list
            .into_iter()
            .next()
            .and_then(|v| v.labels)
            .unwrap_or_default();
        let ours = labels
            .get(crate::podman::labels::LABEL_MANAGED_BY)
            .map(String::as_str)
            == Some("pogo")
            && labels.contains_key(LABEL_BUILDS_VOLUME);
        if !ours {
            return Err(failed(
                &"a volume of that name exists that pogo did not make; remove or rename it",
            ));
        }
        log_info(&kept.reused);
    } else {
        let labels = [
            (
                crate::podman::labels::LABEL_MANAGED_BY.to_string(),
                "pogo".to_string(),
            ),
            (
                crate::podman::labels::LABEL_RUNNER.to_string(),
                ctx.job.runner_short_token.clone(),
            ),
            ("io.pogo.project".to_string(), ctx.job.project_path.clone()),
            (LABEL_BUILDS_VOLUME.to_string(), days.to_string()),
            (
                crate::podman::labels::LABEL_CREATED.to_string(),
                crate::state::now().to_string(),
            ),
        ]
        .map(|(k, v)| (k, crate::podman::labels::sanitize_label_value(&v)));
        match ctx.podman.run(&args::volume_create(&name, &labels)).await {
            Ok(_) => log_info(&kept.created),
            // a job of the same slot made it a moment ago
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(failed(&e)),
        }
    }
    Ok((name, lock))
}

/// The job's builds volume (labelled like its containers: cleanup removes it). A leftover of
/// an earlier attempt of the same job is replaced; a same-named volume pogo did not make for
/// this job is never touched.
pub(super) async fn create_builds_volume(
    ctx: &Context,
    labels: &[(String, String)],
) -> Result<String, Failure> {
    let name = ctx.job.names.builds_volume();
    let argv = args::volume_create(&name, labels);
    let err = match ctx.podman.run(&argv).await {
        Ok(_) => return Ok(name),
        Err(e) => e,
    };
    let failed = |e: &dyn std::fmt::Display| {
        Failure::system(format!("cannot create the builds volume {name}: {e}"))
    };
    if !err.to_string().contains("already exists") {
        return Err(failed(&err));
    }
    let ours = ctx
        .podman
        .json::<Vec<crate::podman::NamedEntry>>(&args::volume_list(&ctx.job.names.key))
        .await
        .is_ok_and(|volumes| volumes.iter().any(|v| v.name == name));
    if !ours {
        return Err(failed(&format!(
            "{err}; it was not made by pogo for this job: remove or rename it"
        )));
    }
    log_info(&format!(
        "removing a leftover volume named {name} from an earlier attempt"
    ));
    ctx.podman
        .run(&args::volume_rm(std::slice::from_ref(&name)))
        .await
        .map_err(|e| failed(&e))?;
    ctx.podman.run(&argv).await.map_err(|e| failed(&e))?;
    Ok(name)
}

/// A podman secret with `value` (on stdin), replacing a leftover of an earlier attempt of the
/// same job (its name is the job's, see [`args::service_secret_name`]).
pub(super) async fn create_secret(
    ctx: &Context,
    name: &str,
    labels: &[(String, String)],
    value: &[u8],
) -> Result<(), crate::podman::PodmanError> {
    let argv = args::secret_create(name, labels);
    match ctx.podman.run_with_input(&argv, value).await {
        Err(e) if e.to_string().contains("in use") => {
            ctx.podman
                .run(&args::secret_rm(&[name.to_string()]))
                .await?;
            ctx.podman.run_with_input(&argv, value).await.map(|_| ())
        }
        r => r.map(|_| ()),
    }
}

/// A container or pod podman could not start: a system failure, with what to do where the
/// cause is known (netavark without iptables/nft: a fresh Debian's podman).
pub(super) fn start_failure(what: &str, err: &dyn std::fmt::Display) -> Failure {
    let text = err.to_string();
    let hint = if text.contains("netavark")
        && (text.contains("No such file or directory") || text.contains("unable to execute"))
    {
        "; netavark (podman's network stack) cannot run iptables or nft: install them \
         (Debian/Ubuntu: apt-get install iptables nftables); `pogo doctor` checks"
    } else {
        ""
    };
    Failure::system(format!("cannot {what}: {text}{hint}"))
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Container,
    Pod,
}

/// Create a container or pod. When the name is taken by a leftover of pogo's (an earlier
/// attempt of the same job that was killed before its cleanup), remove it and try once more;
/// a same-named object without pogo's label is never touched. Checking only on conflict keeps
/// the common path at one podman call.
pub(super) async fn create(
    ctx: &Context,
    kind: Kind,
    name: &str,
    argv: &[String],
) -> Result<(), crate::podman::PodmanError> {
    let attempt = || async { ctx.podman.run(argv).await };
    let err = match attempt().await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    if !err.to_string().contains("in use") || !is_pogo_leftover(ctx, kind, name).await {
        return Err(err);
    }
    log_info(&format!(
        "removing a leftover {kind:?} named {name} from an earlier attempt"
    ));
    let rm = match kind {
        Kind::Container => args::container_rm_by_name(name),
        Kind::Pod => args::pod_rm(&[name.to_string()]),
    };
    ctx.podman.run(&rm).await?;
    attempt().await.map(|_| ())
}

pub(super) async fn is_pogo_leftover(ctx: &Context, kind: Kind, name: &str) -> bool {
    let argv = match kind {
        Kind::Container => args::container_named_by_pogo(name),
        Kind::Pod => args::pod_named_by_pogo(name),
    };
    ctx.podman
        .run(&argv)
        .await
        .is_ok_and(|out| out.lines().any(|l| l.trim() == name))
}

/// The stage agent did not come up: stages can still use `podman exec` while the container
/// runs; when it stopped with the agent (its main process), say so with its last output.
/// `role` names the container in messages: "job" or "helper".
pub(super) async fn agent_did_not_start(
    ctx: &Context,
    container: &str,
    role: &str,
) -> Result<(), Failure> {
    let running = ctx
        .podman
        .container_state(container)
        .await
        .map_err(Failure::system)?
        .is_some_and(|s| s.running);
    if running {
        log_info(&format!(
            "the stage agent did not start in the {role} container; its stages use podman exec"
        ));
        return Ok(());
    }
    let logs = container_logs(ctx, container).await;
    Err(Failure::system(format!(
        "the {role} container stopped at start: pogo's stage agent could not run in it ({}); \
         set `stage_runner: exec` in the pogo config to run stages with podman exec",
        logs.trim().lines().last().unwrap_or("no output")
    )))
}

/// The gitlab-runner binary to mount: configured, else the parent process when it is
/// gitlab-runner, else `gitlab-runner` on PATH.
pub(super) fn runner_binary(
    configured: Option<&Path>,
    env: &std::collections::HashMap<String, String>,
) -> Result<Option<PathBuf>, Failure> {
    if let Some(p) = configured {
        if p.is_file() {
            return Ok(Some(p.to_path_buf()));
        }
        return Err(Failure::system(format!(
            "runner_binary {} does not exist: fix the path in the pogo config",
            p.display()
        )));
    }
    let ppid = nix::unistd::getppid();
    if let Ok(exe) = std::fs::read_link(format!("/proc/{ppid}/exe")) {
        let is_runner = exe
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("gitlab-runner"));
        if is_runner {
            return Ok(Some(exe));
        }
    }
    Ok(find_on_path(
        "gitlab-runner",
        env.get("PATH").map(String::as_str),
    ))
}

pub(super) fn find_on_path(name: &str, path: Option<&str>) -> Option<PathBuf> {
    path?
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
