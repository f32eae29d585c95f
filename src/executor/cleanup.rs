//! `pogo cleanup`: remove everything labelled for this job (pod, containers, volumes), in a
//! detached process of pogo's own ([`super::removal`]) so that the job ends without waiting
//! for podman. Idempotent; never touches anything without pogo's job label, never prunes.

use std::path::Path;

use super::{Context, Failure};
use crate::podman::{args, NamedEntry, Podman};

/// What a job may have besides containers, so cleanup can skip the look-ups it does not need
/// (each podman call costs tens of milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub pods: bool,
    pub volumes: bool,
    /// podman secrets (multi-line service variables).
    pub secrets: bool,
}

impl Scope {
    /// Everything: for `pogo gc` and whenever the job's shape is unknown.
    pub const ALL: Scope = Scope {
        pods: true,
        volumes: true,
        secrets: true,
    };

    /// A pod only for a job with services; a labelled per-job volume only with a helper image
    /// or when prepare says it made one (`made_volume`); secrets only for services with
    /// multi-line variables.
    pub fn of_job(ctx: &Context, made_volume: bool) -> Scope {
        Scope {
            pods: !ctx.job.services.is_empty(),
            volumes: made_volume || ctx.config.helper_image.is_some(),
            secrets: ctx
                .job
                .services
                .iter()
                .any(|s| args::service_env(s).is_ok_and(|e| !e.secrets.is_empty())),
        }
    }
}

/// Remove the job's pod, containers and volumes, found by the `io.pogo.job-key` label.
/// Pods and volumes are looked up at once; the pod goes first, since its infra container
/// carries the labels too but can only leave with it. Returns what went wrong (empty when
/// everything is gone).
pub async fn remove_job(podman: &Podman, key: &str, scope: Scope) -> Vec<String> {
    let mut errors = Vec::new();
    let (pod_list, volume_list) = (args::pod_list(key), args::volume_list(key));
    let none = || async { Ok(Vec::new()) };
    let (pods, volumes, secrets) = tokio::join!(
        async {
            if scope.pods {
                podman.json::<Vec<NamedEntry>>(&pod_list).await
            } else {
                none().await
            }
        },
        async {
            if scope.volumes {
                podman.json::<Vec<NamedEntry>>(&volume_list).await
            } else {
                none().await
            }
        },
        async {
            if scope.secrets {
                podman
                    .run(&args::secret_names())
                    .await
                    .map(|listed| args::job_secrets(&listed, key))
            } else {
                Ok(Vec::new())
            }
        },
    );
    let mut names = |r: Result<Vec<NamedEntry>, crate::podman::PodmanError>| -> Vec<String> {
        match r {
            Ok(v) => v.into_iter().map(|e| e.name).collect(),
            Err(e) => {
                errors.push(e.to_string());
                Vec::new()
            }
        }
    };
    let pods = names(pods);
    let volumes = names(volumes);
    if !pods.is_empty() {
        if let Err(e) = podman.run(&args::pod_rm(&pods)).await {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = podman.run(&args::containers_rm(key)).await {
        errors.push(e.to_string());
    }
    // volumes only once no container uses them
    if !volumes.is_empty() {
        if let Err(e) = podman.run(&args::volume_rm(&volumes)).await {
            errors.push(e.to_string());
        }
    }
    match secrets {
        Ok(names) if !names.is_empty() => {
            if let Err(e) = podman.run(&args::secret_rm(&names)).await {
                errors.push(e.to_string());
            }
        }
        Ok(_) => {}
        Err(e) => errors.push(e.to_string()),
    }
    errors
}

pub async fn run(ctx: &Context) -> Result<(), Failure> {
    crate::executor::record::job_finished(ctx); // pogo tui: job state record

    // pogo's private job files (the job's registry credentials among them) go first, also
    // when the containers are kept for debugging
    let made_volume = super::jobdata::dir(&ctx.config.working_dir, &ctx.job.names.key)
        .join(super::jobdata::BUILDS_VOLUME_MARK)
        .exists();
    if let Some(m) = remove_jobdata(&ctx.config.working_dir, &ctx.job.names.key) {
        super::log_warning(&m);
    }
    if let Some(until) = keep_failed(ctx) {
        eprintln!(
            "pogo: keeping failed job {}'s containers for {} min for debugging (`podman exec -it {} bash`, \
             or `e` in pogo tui); `pogo gc` removes them after {until} (unix time)",
            ctx.job.job_id, ctx.config.keep_failed, ctx.job.names.container
        );
        return Ok(());
    }
    // podman's removal goes on in the background: gitlab-runner reports the job's result
    // only once cleanup returns
    let errors = super::removal::start(
        &ctx.podman,
        &ctx.config.working_dir,
        &ctx.job.names,
        Scope::of_job(ctx, made_volume),
    )
    .await;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::system(format!(
            "cleanup of job {} incomplete: {}; remove leftovers with `podman rm -f --filter label={}={}`",
            ctx.job.job_id,
            errors.join("; "),
            crate::podman::labels::LABEL_JOB_KEY,
            ctx.job.names.key
        )))
    }
}

/// `pogo cleanup`: [`run`] with the job's context; when the config has become unreadable
/// meanwhile, the job's containers, private files and sockets are still removed, with the
/// podman the job started with (plain `podman` if the config phase passed none on).
pub async fn phase(
    flag: Option<&Path>,
    env: &std::collections::HashMap<String, String>,
) -> Result<(), Failure> {
    match Context::load(flag, env.clone()) {
        Ok(ctx) => run(&ctx).await,
        // only with the names the config phase passed on (or the description's): never by
        // values the job's variables can set
        Err(Failure::System(m)) => match fallback_job(env) {
            Some(job) => fall_back(env, &job, &m).await,
            None => Err(Failure::System(m)),
        },
        Err(e) => Err(e),
    }
}

/// The job as cleanup's fallback sees it: the config phase's names, else the description's.
fn fallback_job(env: &std::collections::HashMap<String, String>) -> Option<super::env::JobEnv> {
    let response = super::load_response(env).ok();
    super::env::JobEnv::from_env(env, response.as_ref()).ok()
}

/// Cleanup without a config (`why` it could not be read).
async fn fall_back(
    env: &std::collections::HashMap<String, String>,
    job: &super::env::JobEnv,
    why: &str,
) -> Result<(), Failure> {
    // the podman the job started with, as the config phase passed it on
    let (bin, args) =
        super::env::job_podman(env).unwrap_or_else(|| ("podman".to_string(), Vec::new()));
    super::log_warning(&format!(
        "{why}; cleaning up with `{}`",
        shell_words::join(std::iter::once(&bin).chain(&args))
    ));
    let podman = Podman::new(bin, args);
    let mut errors = remove_job(&podman, &job.names.key, Scope::ALL).await;
    // the job's private files (registry credentials) and agent sockets, under the
    // working_dir the config phase passed on
    if let Some(wd) = super::env::job_working_dir(env) {
        errors.extend(remove_jobdata(&wd, &job.names.key));
        remove_sockets(&wd, &job.names);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::system(errors.join("; ")))
    }
}

/// Remove the job's private files under `working_dir` (its registry credentials among
/// them); what went wrong, if anything.
pub fn remove_jobdata(working_dir: &Path, key: &str) -> Option<String> {
    super::jobdata::remove(working_dir, key).err().map(|e| {
        format!(
            "cannot remove {}: {e}",
            super::jobdata::dir(working_dir, key).display()
        )
    })
}

/// Remove the agent socket directories of the job and of its helper container.
pub fn remove_sockets(working_dir: &Path, names: &super::env::Names) {
    super::agent::remove_socket_dir(working_dir, &names.key);
    super::agent::remove_socket_dir(working_dir, &names.helper());
}

/// With `keep_failed: MINUTES`, a failed job (per its state record) keeps its containers:
/// returns until when, after noting it in the record for `pogo gc` and `pogo tui`.
fn keep_failed(ctx: &Context) -> Option<u64> {
    if ctx.config.keep_failed == 0 {
        return None;
    }
    let dir =
        crate::state::StateDir::new(crate::state::state_dir(&ctx.config.working_dir, &ctx.env));
    let record = dir.read(&ctx.job.names.key)?;
    if record.result != Some(crate::state::Outcome::Failed) || !record.prepared {
        return None;
    }
    let until = crate::state::now() + ctx.config.keep_failed.saturating_mul(60);
    dir.update(
        &ctx.job.names.key,
        || record.clone(),
        |r| r.kept_until = Some(until),
    )
    .ok()
    .map(|_| until)
}
