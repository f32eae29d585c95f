//! `pogo prepare`: read the job description, pull the image(s) per the job's (allowed) pull
//! policies with the job's registry credentials, start the services in a pod, start the job
//! container with the tag mounts, extra arguments, cache and gitlab-runner binary, record how
//! stages start (the image's entrypoint), wait for the services' ports.

mod containers;
mod decide;
mod pull;
mod request;
mod services;
#[cfg(test)]
mod tests;

use super::config_stage::job_tags;
use super::plan;
use super::{jobdata, log_info, log_warning, Context, Failure, OrFailure};
use crate::config::resolve;
use crate::podman::args::{self, JobContainer, KeepAlive};
use containers::*;
pub use decide::*;
pub use pull::*;
pub use request::*;
pub(super) use services::container_logs;
use services::*;
use std::path::{Path, PathBuf};

pub async fn run(ctx: &Context) -> Result<(), Failure> {
    // pogo tui: the job's state record
    let state = crate::executor::record::Prepare::start(ctx);
    // the dashboard's shell in the job's container gets its CI_* variables (masked masked)
    crate::executor::record::shell_env_written(ctx);
    // from here pogo's messages (and its error, should prepare fail) reach the dashboard too
    let _log_copy = super::job_log_copy(ctx);
    wait_for_earlier_attempt(ctx)?;
    // Leftovers of this runner's killed jobs: a background gc at most every 10 minutes.
    super::gc::maybe_start_background(&ctx.config, &ctx.job.runner_short_token);
    for note in &ctx.notes {
        log_warning(note);
    }
    let tags = job_tags(&ctx.job)?;
    let req = request(ctx, tags)?;
    crate::executor::record::tags_known(ctx, &req.tags);
    let configured_auth = check_auth_file(ctx.config.auth_file.as_deref())?;
    let job_dir = create_job_dir(ctx)?;
    let mut pull_auth = PullAuth::for_job(ctx, configured_auth, req.response, &job_dir)?;

    let labels = ctx.job.labels(&crate::state::now().to_string());
    let images = pull_images(ctx, &req, &mut pull_auth).await?;
    let decided = decide(&ctx.config, &req, &images)?;
    if !decided.entrypoint.is_empty() {
        log_info(&format!(
            "stages start through the entrypoint {} (set `image: entrypoint: [\"\"]` in the job to start the shell directly)",
            serde_json::to_string(&decided.entrypoint).unwrap_or_default()
        ));
    }

    let grants = resolve::grants(&ctx.config, &req.tags, &ctx.job.project_path);
    let pod = if ctx.job.services.is_empty() {
        None
    } else {
        let services = Services {
            envs: &req.service_envs,
            docker: &req.service_docker,
            extra_args: &grants.service_args,
        };
        Some(start_services(ctx, &labels, &job_dir, &services).await?)
    };

    let cache = cache_mount(ctx)?;
    // `pogo exec` only: sources, cache and artifacts dirs (see executor::local).
    let local = super::local::volumes(&ctx.env).map_err(Failure::system)?;
    // held until the job container mounts the kept volumes (see gc::BuildsVolumeLock)
    let (builds, volume_lock) = builds_volume(ctx, decided.builds, &labels, &job_dir).await?;
    let (project_volumes, project_locks) = project_volumes(ctx, &grants.project_volumes).await?;
    let volumes = plan::volumes(
        &ctx.config,
        &grants,
        &plan::Mounts {
            cache,
            runner_binary: runner_binary_mount(ctx, images.helper.is_some(), local.is_empty())?,
            local,
            builds,
            non_root: decided.non_root,
            project_volumes,
        },
    );
    let job = JobContainer {
        name: &ctx.job.names.container,
        docker: args::Docker {
            platform: req.docker.platform.as_deref(),
            user: req.docker.user.as_deref(),
        },
        pod: pod.as_deref(),
        labels: &labels,
        volumes: volumes.job,
        extra_args: &grants.extra_args,
        keep_alive: with_agent(ctx, own_init(ctx), &ctx.job.names.key),
        image: &req.image,
    };
    // the helper container: the same builds volume, cache and mounts; no tag arguments
    let helper_name = ctx.job.names.helper();
    let helper = images
        .helper
        .as_ref()
        .zip(decided.helper_entrypoint)
        .map(|(h, ep)| {
            let spec = JobContainer {
                name: &helper_name,
                docker: args::Docker::default(),
                pod: pod.as_deref(),
                labels: &labels,
                volumes: volumes.shared.clone(),
                extra_args: &[],
                keep_alive: KeepAlive::Shell, // its own init and agent: see start_containers
                image: &h.image,
            };
            (spec, ep)
        });
    let started = start_containers(ctx, job, helper).await;
    drop((volume_lock, project_locks));
    let started = started?;
    jobdata::write_job_file(
        &job_dir,
        &jobdata::JobFile {
            entrypoint: decided.entrypoint,
            helper: started.helper_file,
        },
    )
    .or_system(|| format!("cannot write {}", job_dir.join(jobdata::JOB_FILE).display()))?;

    if pod.is_some() {
        wait_for_services(ctx, &decided.service_waits).await?;
    }
    for (socket, container, role) in started.agents {
        if !super::agent::wait_ready(&socket).await {
            agent_did_not_start(ctx, &container, role).await?;
        }
    }
    state.succeeded(); // pogo tui: prepare finished
    Ok(())
}

/// gitlab-runner retries a failed prepare after its cleanup, under the same names: the
/// removal that cleanup started must be over before anything of this attempt exists.
fn wait_for_earlier_attempt(ctx: &Context) -> Result<(), Failure> {
    if super::removal::wait(
        &ctx.config.working_dir,
        &ctx.job.names.key,
        super::removal::WAIT,
    ) {
        return Ok(());
    }
    Err(Failure::system(format!(
        "the removal of this job's earlier attempt ({}) still runs after {} s; podman may be stuck: check `podman ps -a --filter label={}={}`",
        super::removal::order_path(&ctx.config.working_dir, &ctx.job.names.key).display(),
        super::removal::WAIT.as_secs(),
        crate::podman::labels::LABEL_JOB_KEY,
        ctx.job.names.key
    )))
}

fn create_job_dir(ctx: &Context) -> Result<PathBuf, Failure> {
    jobdata::create(&ctx.config.working_dir, &ctx.job.names.key).or_system_fix(
        || {
            format!(
                "cannot create pogo's job directory under {}",
                ctx.config.working_dir.display()
            )
        },
        "check working_dir in the pogo config",
    )
}

/// The job's image, its services' and the helper image, each in local storage (pulled per
/// its pull policies) and noted for `pogo gc`'s image limits.
async fn pull_images(
    ctx: &Context,
    req: &Request<'_>,
    pull_auth: &mut PullAuth,
) -> Result<Images, Failure> {
    let note = |name: &str, info: &InspectedImage| {
        super::images::note_use(&ctx.config.working_dir, name, &info.id, info.pulled);
    };
    let platform = req.docker.platform.as_deref();
    let job = ensure_image(
        &ctx.podman,
        &req.image,
        platform,
        &req.image_pull,
        pull_auth,
    )
    .await?;
    note(&req.image, &job);
    let mut services = Vec::with_capacity(ctx.job.services.len());
    for ((svc, pull), d) in ctx
        .job
        .services
        .iter()
        .zip(&req.service_pulls)
        .zip(&req.service_docker)
    {
        let platform = d.platform.as_deref();
        let info = ensure_image(&ctx.podman, &svc.name, platform, pull, pull_auth).await?;
        note(&svc.name, &info);
        services.push(info);
    }
    let helper = match &ctx.config.helper_image {
        None => None,
        Some(helper_image) => {
            let info = pull_helper_image(ctx, helper_image, pull_auth).await?;
            note(helper_image, &info);
            Some(HelperImage {
                image: helper_image.clone(),
                inspected: info,
            })
        }
    };
    Ok(Images {
        job,
        services,
        helper,
    })
}

/// The helper image: the runner's own choice, pulled per the runner's policy and login.
async fn pull_helper_image(
    ctx: &Context,
    helper_image: &str,
    pull_auth: &PullAuth,
) -> Result<InspectedImage, Failure> {
    let pull = Pull {
        policies: vec![ctx.config.pull_policy],
        chosen_by_job: false,
    };
    let mut runner_auth = PullAuth::configured(pull_auth.configured.clone());
    ensure_image(&ctx.podman, helper_image, None, &pull, &mut runner_auth)
        .await
        .or_system(|| "helper_image")
}

/// `--volume` of the project's cache directory (made here), when there is a `cache_dir`.
fn cache_mount(ctx: &Context) -> Result<Option<String>, Failure> {
    let Some(dir) =
        plan::cache_dir(&ctx.config.cache_dir, &ctx.job.project_path).map_err(Failure::system)?
    else {
        return Ok(None);
    };
    std::fs::create_dir_all(&dir).or_system_fix(
        || format!("cannot create the cache directory {}", dir.display()),
        "check cache_dir in the pogo config",
    )?;
    Ok(Some(plan::cache_volume(&dir).map_err(Failure::system)?))
}

/// The builds volume `kind` says (see plan::BuildsVolume), and the lock that keeps gc from a
/// persistent one until the job container mounts it.
async fn builds_volume(
    ctx: &Context,
    kind: plan::BuildsVolume,
    labels: &[(String, String)],
    job_dir: &Path,
) -> Result<(Option<String>, Option<super::gc::BuildsVolumeLock>), Failure> {
    match kind {
        plan::BuildsVolume::Persistent => {
            let (volume, lock) = persistent_builds_volume(ctx).await?;
            Ok((Some(volume), lock))
        }
        plan::BuildsVolume::PerJob => {
            let volume = create_builds_volume(ctx, labels).await?;
            jobdata::write_private(job_dir, jobdata::BUILDS_VOLUME_MARK, b"")
                .or_system(|| format!("cannot write in {}", job_dir.display()))?;
            Ok((Some(volume), None))
        }
        plan::BuildsVolume::None => Ok((None, None)),
    }
}

/// The host path of pogo's copy of the gitlab-runner binary for the job container, when the
/// job container runs gitlab-runner's stages (no helper image; `local`: not `pogo exec`).
fn runner_binary_mount(
    ctx: &Context,
    helper: bool,
    local_is_empty: bool,
) -> Result<Option<String>, Failure> {
    if helper {
        if ctx.config.runner_binary.is_some() {
            log_info("runner_binary is not mounted: the helper image brings gitlab-runner");
        }
        return Ok(None);
    }
    match runner_binary(ctx.config.runner_binary.as_deref(), &ctx.env)? {
        Some(bin) => {
            let own = super::agent::own_copy(&ctx.config.working_dir, &bin, "gitlab-runner")
                .or_system_fix(
                    || {
                        format!(
                            "cannot copy the gitlab-runner binary {} under {}",
                            bin.display(),
                            ctx.config.working_dir.display()
                        )
                    },
                    "check working_dir in the pogo config",
                )?;
            Ok(Some(own.display().to_string()))
        }
        None if !local_is_empty => Ok(None), // pogo exec's stages use tar, not gitlab-runner
        None => {
            log_warning(
                "no gitlab-runner binary found on this host (PATH) and `runner_binary` is not set: \
                 cache and artifact stages will be skipped; set runner_binary in the pogo config, \
                 or set helper_image",
            );
            Ok(None)
        }
    }
}

/// What starting the containers left to do: the agents to wait for (socket, container, role)
/// and the helper container's entry in the job file.
struct Started {
    agents: Vec<(PathBuf, String, &'static str)>,
    helper_file: Option<jobdata::HelperFile>,
}

/// Create the job container and (with a helper image and its entrypoint) the helper
/// container, at once; each gets pogo's init and agent (the helper's agent socket directory
/// is named after the helper container).
async fn start_containers(
    ctx: &Context,
    job: JobContainer<'_>,
    helper: Option<(JobContainer<'_>, Vec<String>)>,
) -> Result<Started, Failure> {
    let mut agents = Vec::new();
    if matches!(job.keep_alive, KeepAlive::InitWithAgent { .. }) {
        let socket = super::agent::socket_path(&ctx.config.working_dir, &ctx.job.names.key);
        agents.push((socket, ctx.job.names.container.clone(), "job"));
    }
    let argv = args::job_run(&job);
    log_info(&format!(
        "starting job container: {}",
        ctx.podman.display(&argv)
    ));
    let job_container = async {
        create(ctx, Kind::Container, job.name, &argv)
            .await
            .map_err(|e| start_failure("start the job container", &e))
    };
    let mut helper_file = None;
    let helper_argv = helper.map(|(mut spec, entrypoint)| {
        spec.keep_alive = with_agent(ctx, own_init(ctx), spec.name);
        let agent = matches!(spec.keep_alive, KeepAlive::InitWithAgent { .. });
        if agent {
            let socket = super::agent::socket_path(&ctx.config.working_dir, spec.name);
            agents.push((socket, spec.name.to_string(), "helper"));
        }
        helper_file = Some(jobdata::HelperFile {
            container: spec.name.to_string(),
            entrypoint,
            agent_key: agent.then(|| spec.name.to_string()),
        });
        let argv = args::job_run(&spec);
        log_info(&format!(
            "starting helper container: {}",
            ctx.podman.display(&argv)
        ));
        (spec.name, argv)
    });
    let helper_container = async {
        match &helper_argv {
            None => Ok(()),
            Some((name, argv)) => create(ctx, Kind::Container, name, argv)
                .await
                .map_err(|e| start_failure("start the helper container", &e)),
        }
    };
    let (job_started, helper_started) = tokio::join!(job_container, helper_container);
    job_started?;
    helper_started?;
    Ok(Started {
        agents,
        helper_file,
    })
}
