//! `pogo prepare`: read the job description, pull the image(s) per the job's (allowed) pull
//! policies with the job's registry credentials, start the services in a pod, start the job
//! container with the tag mounts, extra arguments, cache and gitlab-runner binary, record how
//! stages start (the image's entrypoint), wait for the services' ports.

use super::config_stage::job_tags;
use super::plan;
use super::response::{DockerOptions, ImageSpec, JobResponse};
use super::{auth, jobdata, log_info, log_warning, Context, Failure};
use crate::config::{resolve, Config, PullPolicy};
use crate::podman::args::{self, JobContainer, KeepAlive};
use crate::podman::service::Service;
use crate::podman::Podman;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub async fn run(ctx: &Context) -> Result<(), Failure> {
    // pogo tui: the job's state record
    let state = crate::executor::record::Prepare::start(ctx);
    // the dashboard's shell in the job's container gets its CI_* variables (masked masked)
    crate::executor::record::shell_env_written(ctx);
    // from here pogo's messages (and its error, should prepare fail) reach the dashboard too
    let _log_copy = super::job_log_copy(ctx);
    // gitlab-runner retries a failed prepare after its cleanup, under the same names: the
    // removal that cleanup started must be over before anything of this attempt exists
    if !super::removal::wait(
        &ctx.config.working_dir,
        &ctx.job.names.key,
        super::removal::WAIT,
    ) {
        return Err(Failure::system(format!(
            "the removal of this job's earlier attempt ({}) still runs after {} s; podman may be stuck: check `podman ps -a --filter label={}={}`",
            super::removal::order_path(&ctx.config.working_dir, &ctx.job.names.key).display(),
            super::removal::WAIT.as_secs(),
            crate::podman::labels::LABEL_JOB_KEY,
            ctx.job.names.key
        )));
    }
    // Leftovers of this runner's killed jobs: a background gc at most every 10 minutes.
    super::gc::maybe_start_background(&ctx.config, &ctx.job.runner_short_token);
    for note in &ctx.notes {
        log_warning(note);
    }
    let tags = job_tags(&ctx.job)?;
    let req = request(ctx, tags)?;
    crate::executor::record::tags_known(ctx, &req.tags);
    let configured_auth = check_auth_file(ctx.config.auth_file.as_deref())?;
    let job_dir = jobdata::create(&ctx.config.working_dir, &ctx.job.names.key).map_err(|e| {
        Failure::system(format!(
            "cannot create pogo's job directory under {}: {e}; check working_dir in the pogo config",
            ctx.config.working_dir.display()
        ))
    })?;
    let mut pull_auth = PullAuth::for_job(ctx, configured_auth, req.response, &job_dir)?;

    let labels = ctx.job.labels(&unix_now().to_string());
    let image_info = ensure_image(
        &ctx.podman,
        &req.image,
        req.docker.platform.as_deref(),
        &req.image_pull,
        &mut pull_auth,
    )
    .await?;
    let note = |name: &str, info: &InspectedImage| {
        super::images::note_use(&ctx.config.working_dir, name, &info.id, info.pulled);
    };
    note(&req.image, &image_info);
    let mut service_images = Vec::with_capacity(ctx.job.services.len());
    for ((svc, pull), d) in ctx
        .job
        .services
        .iter()
        .zip(&req.service_pulls)
        .zip(&req.service_docker)
    {
        let platform = d.platform.as_deref();
        let info = ensure_image(&ctx.podman, &svc.name, platform, pull, &mut pull_auth).await?;
        note(&svc.name, &info);
        service_images.push(info);
    }
    // The helper image: the runner's own choice, pulled per the runner's policy and login.
    let helper = match &ctx.config.helper_image {
        None => None,
        Some(helper_image) => {
            let pull = Pull {
                policies: vec![ctx.config.pull_policy],
                chosen_by_job: false,
            };
            let mut runner_auth = PullAuth::configured(pull_auth.configured.clone());
            let info = ensure_image(&ctx.podman, helper_image, None, &pull, &mut runner_auth)
                .await
                .map_err(|f| match f {
                    Failure::System(m) => Failure::system(format!("helper_image: {m}")),
                    Failure::Build { message, .. } => {
                        Failure::system(format!("helper_image: {}", message.unwrap_or_default()))
                    }
                })?;
            note(helper_image, &info);
            let entrypoint = check_entrypoint(
                info.config.entrypoint.as_deref().unwrap_or(&[]),
                &format!("helper image {helper_image}"),
            )
            .map_err(|_| {
                Failure::system(format!(
                    "the entrypoint of helper_image {helper_image} is not usable; fix the image"
                ))
            })?;
            Some((helper_image.clone(), entrypoint))
        }
    };
    // Each stage starts through the entrypoint, as the Docker executor starts each of its
    // stage containers; pogo's own init replaces it as the container's main process.
    let entrypoint = match req.entrypoint_override {
        Some(ep) => ep,
        None => check_entrypoint(
            image_info.config.entrypoint.as_deref().unwrap_or(&[]),
            &format!("image {}", req.image),
        )?,
    };
    if !entrypoint.is_empty() {
        log_info(&format!(
            "stages start through the entrypoint {} (set `image: entrypoint: [\"\"]` in the job to start the shell directly)",
            serde_json::to_string(&entrypoint).unwrap_or_default()
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

    let cache = match plan::cache_dir(&ctx.config.cache_dir, &ctx.job.project_path)
        .map_err(Failure::system)?
    {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Failure::system(format!(
                    "cannot create the cache directory {}: {e}; check cache_dir in the pogo config",
                    dir.display()
                ))
            })?;
            Some(plan::cache_volume(&dir).map_err(Failure::system)?)
        }
        None => None,
    };
    // `pogo exec` only: sources, cache and artifacts dirs (see executor::local).
    let local = super::local::volumes(&ctx.env).map_err(Failure::system)?;
    // The builds directory (see plan::BuildsVolume). An image with a non-root USER cannot make
    // it in the container's root-owned filesystem.
    let non_root = match &req.docker.user {
        // `docker: user` is who the container runs as, whatever the image's USER
        Some(user) => InspectedConfig {
            user: Some(user.clone()),
            ..InspectedConfig::default()
        }
        .runs_as_non_root(),
        None => image_info.config.runs_as_non_root(),
    };
    // held until the job container mounts the persistent volume (see gc::BuildsVolumeLock)
    let mut volume_lock = None;
    let builds = match plan::builds_volume(&ctx.config, helper.is_some(), non_root) {
        plan::BuildsVolume::Persistent => {
            let (volume, lock) = persistent_builds_volume(ctx).await?;
            volume_lock = lock;
            Some(volume)
        }
        plan::BuildsVolume::PerJob => {
            let volume = create_builds_volume(ctx, &labels).await?;
            jobdata::write_private(&job_dir, jobdata::BUILDS_VOLUME_MARK, b"").map_err(|e| {
                Failure::system(format!("cannot write in {}: {e}", job_dir.display()))
            })?;
            Some(volume)
        }
        plan::BuildsVolume::None => None,
    };
    let runner_binary = if helper.is_some() {
        if ctx.config.runner_binary.is_some() {
            log_info("runner_binary is not mounted: the helper image brings gitlab-runner");
        }
        None
    } else {
        match runner_binary(ctx.config.runner_binary.as_deref(), &ctx.env)? {
            Some(bin) => {
                let own = super::agent::own_copy(&ctx.config.working_dir, &bin, "gitlab-runner")
                    .map_err(|e| {
                        Failure::system(format!(
                            "cannot copy the gitlab-runner binary {} under {}: {e}; check \
                             working_dir in the pogo config",
                            bin.display(),
                            ctx.config.working_dir.display()
                        ))
                    })?;
                Some(own.display().to_string())
            }
            None if !local.is_empty() => None, // pogo exec's stages use tar, not gitlab-runner
            None => {
                log_warning(
                    "no gitlab-runner binary found on this host (PATH) and `runner_binary` is not set: \
                     cache and artifact stages will be skipped; set runner_binary in the pogo config, \
                     or set helper_image",
                );
                None
            }
        }
    };
    let volumes = plan::volumes(
        &ctx.config,
        &grants,
        &plan::Mounts {
            cache,
            local,
            builds,
            non_root,
            runner_binary,
        },
    );
    let keep_alive = with_agent(ctx, own_init(ctx), &ctx.job.names.key);
    let agent_socket = matches!(keep_alive, KeepAlive::InitWithAgent { .. })
        .then(|| super::agent::socket_path(&ctx.config.working_dir, &ctx.job.names.key));
    let spec = JobContainer {
        name: &ctx.job.names.container,
        docker: args::Docker {
            platform: req.docker.platform.as_deref(),
            user: req.docker.user.as_deref(),
        },
        pod: pod.as_deref(),
        labels: &labels,
        volumes: volumes.job,
        extra_args: &grants.extra_args,
        keep_alive,
        image: &req.image,
    };
    let argv = args::job_run(&spec);
    log_info(&format!(
        "starting job container: {}",
        ctx.podman.display(&argv)
    ));
    let job_container = async {
        create(ctx, Kind::Container, spec.name, &argv)
            .await
            .map_err(|e| start_failure("start the job container", &e))
    };

    // The helper container: the same builds volume, cache and mounts; no tag arguments.
    // (its name also names its agent's socket directory)
    let helper_name = ctx.job.names.helper();
    let mut helper_file = None;
    let mut helper_socket = None;
    let helper_argv = helper.as_ref().map(|(helper_image, helper_entrypoint)| {
        let keep_alive = with_agent(ctx, own_init(ctx), &helper_name);
        let agent = matches!(keep_alive, KeepAlive::InitWithAgent { .. });
        if agent {
            helper_socket = Some(super::agent::socket_path(
                &ctx.config.working_dir,
                &helper_name,
            ));
        }
        helper_file = Some(jobdata::HelperFile {
            container: helper_name.clone(),
            entrypoint: helper_entrypoint.clone(),
            agent_key: agent.then(|| helper_name.clone()),
        });
        let argv = args::job_run(&JobContainer {
            name: &helper_name,
            docker: args::Docker::default(),
            pod: pod.as_deref(),
            labels: &labels,
            volumes: volumes.shared.clone(),
            extra_args: &[],
            keep_alive,
            image: helper_image,
        });
        log_info(&format!(
            "starting helper container: {}",
            ctx.podman.display(&argv)
        ));
        argv
    });
    let helper_container = async {
        match &helper_argv {
            None => Ok(()),
            Some(argv) => create(ctx, Kind::Container, &helper_name, argv)
                .await
                .map_err(|e| Failure::system(format!("cannot start the helper container: {e}"))),
        }
    };
    let (job_started, helper_started) = tokio::join!(job_container, helper_container);
    drop(volume_lock);
    job_started?;
    helper_started?;
    jobdata::write_job_file(
        &job_dir,
        &jobdata::JobFile {
            entrypoint,
            helper: helper_file,
        },
    )
    .map_err(|e| {
        Failure::system(format!(
            "cannot write {}: {e}",
            job_dir.join(jobdata::JOB_FILE).display()
        ))
    })?;

    if pod.is_some() {
        let waits: Vec<Vec<u16>> = req
            .service_ports
            .into_iter()
            .zip(&service_images)
            .map(|(ports, info)| ports.unwrap_or_else(|| exposed_tcp_ports(info)))
            .collect();
        wait_for_services(ctx, &waits).await?;
    }
    if let Some(socket) = agent_socket {
        if !super::agent::wait_ready(&socket).await {
            agent_did_not_start(ctx, &ctx.job.names.container, "job").await?;
        }
    }
    if let Some(socket) = helper_socket {
        if !super::agent::wait_ready(&socket).await {
            agent_did_not_start(ctx, &helper_name, "helper").await?;
        }
    }
    state.succeeded(); // pogo tui: prepare finished
    Ok(())
}

/// What the job asks for, checked against the config, before anything is pulled or started:
/// its tags, image and services (names, variables, entrypoint, pull policies, ports, `docker:`
/// options). A pure function of the job, its tags (which GitLab may have been asked for)
/// and the config; a refusal is the job's failure (or the config's: `allowed_images`).
pub struct Request<'a> {
    pub tags: Vec<String>,
    pub image: String,
    pub service_envs: Vec<args::ServiceEnv>,
    /// `image: entrypoint:` of the job, when it sets one.
    pub entrypoint_override: Option<Vec<String>>,
    pub image_pull: Pull,
    pub docker: DockerOptions,
    pub service_pulls: Vec<Pull>,
    /// Per service: the ports to wait for, when its `ports:` say (else the image's).
    pub service_ports: Vec<Option<Vec<u16>>>,
    pub service_docker: Vec<DockerOptions>,
    /// The job description (its credentials are used to pull).
    pub response: &'a JobResponse,
}

pub fn request(ctx: &Context, tags: Vec<String>) -> Result<Request<'_>, Failure> {
    let image = pick_image(
        ctx.job.image.as_deref(),
        ctx.config.default_image.as_deref(),
    )?;
    args::validate_image(&image)
        .map_err(|m| Failure::build(1, format!("job image refused: {m}")))?;
    let mut service_envs = Vec::with_capacity(ctx.job.services.len());
    for svc in &ctx.job.services {
        args::validate_image(&svc.name)
            .map_err(|m| Failure::build(1, format!("service image refused: {m}")))?;
        service_envs.push(args::service_env(svc).map_err(|m| Failure::build(1, m))?);
    }
    check_allowed(&image, &ctx.job.services, &ctx.config)?;

    // What only the job description carries: entrypoint, pull policies, ports, credentials.
    let response = job_response(ctx)?;
    let image_spec = job_image_spec(ctx.job.image.as_deref(), &response.image);
    let entrypoint_override = match image_spec.and_then(|s| s.entrypoint.as_deref()) {
        Some(ep) => Some(check_entrypoint(ep, "the job's image")?),
        None => None,
    };
    let image_pull = pull_policies(
        image_spec.map(|s| s.pull_policy.as_slice()).unwrap_or(&[]),
        &format!("image {image}"),
        &ctx.config,
    )?;
    let docker = docker_options(image_spec, "the job's image")?;
    let service_specs = service_specs(&ctx.job.services, &response.services);
    let mut service_pulls = Vec::with_capacity(service_specs.len());
    let mut service_ports = Vec::with_capacity(service_specs.len());
    let mut service_docker = Vec::with_capacity(service_specs.len());
    for (svc, spec) in ctx.job.services.iter().zip(&service_specs) {
        let what = format!("service {}", svc.name);
        service_pulls.push(pull_policies(&spec.pull_policy, &what, &ctx.config)?);
        service_ports.push(readiness_ports(svc, spec)?);
        service_docker.push(docker_options(Some(spec), &what)?);
    }
    Ok(Request {
        tags,
        image,
        service_envs,
        entrypoint_override,
        image_pull,
        docker,
        service_pulls,
        service_ports,
        service_docker,
        response,
    })
}

/// `docker: {platform, user}` of an image (the job's or a service's) checked — they are
/// the job's values — and the platform in podman's form. A value that is not one is the
/// job's mistake.
fn docker_options(spec: Option<&ImageSpec>, what: &str) -> Result<DockerOptions, Failure> {
    let Some(d) = spec.map(|s| &s.docker) else {
        return Ok(DockerOptions::default());
    };
    args::validate_docker_options(d.platform.as_deref(), d.user.as_deref())
        .map_err(|m| Failure::build(1, format!("{what}: {m}")))?;
    Ok(DockerOptions {
        platform: d.platform.as_deref().map(args::normalize_platform),
        user: d.user.clone(),
    })
}

/// The job description, or an empty one when gitlab-runner gave none (older than 14.1).
fn job_response(ctx: &Context) -> Result<&JobResponse, Failure> {
    ctx.response
        .as_ref()
        .map_err(|e| Failure::system(format!("{e}; the job can be retried")))
}

/// The description of the job's own image (not of a default image pogo picked).
fn job_image_spec<'a>(job_image: Option<&str>, described: &'a ImageSpec) -> Option<&'a ImageSpec> {
    let job_image = job_image.filter(|i| !i.is_empty())?;
    if described.name.is_empty() || described.name == job_image {
        Some(described)
    } else {
        log_warning(&format!(
            "the job description names image {:?}, the job's variables {job_image:?}; ignoring the \
             description's entrypoint and pull_policy",
            described.name
        ));
        None
    }
}

/// The description of each service of `CUSTOM_ENV_CI_JOB_SERVICES`, matched by position and
/// name (an empty description when there is none).
pub fn service_specs(services: &[Service], described: &[ImageSpec]) -> Vec<ImageSpec> {
    let mut used = vec![false; described.len()];
    services
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let at = if described.get(i).is_some_and(|d| d.name == svc.name) && !used[i] {
                Some(i)
            } else {
                (0..described.len()).find(|&j| !used[j] && described[j].name == svc.name)
            };
            match at {
                Some(j) => {
                    used[j] = true;
                    described[j].clone()
                }
                None => ImageSpec::default(),
            }
        })
        .collect()
}

/// An entrypoint as the Docker executor takes it: `[]` and `[""]` mean none. Refuses what
/// cannot be a command (an empty program with arguments, NUL bytes).
pub fn check_entrypoint(ep: &[String], what: &str) -> Result<Vec<String>, Failure> {
    if ep.is_empty() || (ep.len() == 1 && ep[0].is_empty()) {
        return Ok(Vec::new());
    }
    if ep[0].is_empty() {
        return Err(Failure::build(
            1,
            format!(
                "the entrypoint of {what} starts with an empty program name; use `entrypoint: [\"\"]` \
                 to clear it, or name the program first"
            ),
        ));
    }
    if ep.iter().any(|a| a.contains('\0')) {
        return Err(Failure::build(
            1,
            format!("the entrypoint of {what} contains a NUL byte"),
        ));
    }
    Ok(ep.to_vec())
}

/// The ports to wait for: `HEALTHCHECK_TCP_PORT` among the service's variables (as the Docker
/// executor), else its `ports:` from the job description; `None`: the image's EXPOSEd ports.
pub fn readiness_ports(svc: &Service, spec: &ImageSpec) -> Result<Option<Vec<u16>>, Failure> {
    let bad = |p: &str, from: &str| {
        Failure::build(
            1,
            format!(
                "service {}: {from} {p:?} is not a TCP port number (1-65535)",
                svc.name
            ),
        )
    };
    if let Some(p) = svc
        .variables
        .as_ref()
        .and_then(|v| v.get("HEALTHCHECK_TCP_PORT"))
    {
        let port: u16 = p
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(p, "HEALTHCHECK_TCP_PORT"))?;
        return Ok(Some(vec![port]));
    }
    if spec.ports.is_empty() {
        return Ok(None);
    }
    let mut ports = Vec::with_capacity(spec.ports.len());
    for n in &spec.ports {
        let port = u16::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(&n.to_string(), "port"))?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(Some(ports))
}

/// The pull policies to try, in order, and whether the job chose them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub policies: Vec<PullPolicy>,
    pub chosen_by_job: bool,
}

/// The job's `pull_policy` for an image (`what`), limited to the runner's
/// `allowed_pull_policies`; the runner's `pull_policy` when the job gives none. A job asking
/// only for refused policies fails as a build failure naming the rule (as the Docker
/// executor: "pull_policy ([always]) ... is not one of the allowed_pull_policies").
pub fn pull_policies(requested: &[String], what: &str, config: &Config) -> Result<Pull, Failure> {
    if requested.is_empty() {
        return Ok(Pull {
            policies: vec![config.pull_policy],
            chosen_by_job: false,
        });
    }
    let mut wanted: Vec<PullPolicy> = Vec::new();
    for r in requested {
        let p = PullPolicy::parse(r.trim()).ok_or_else(|| {
            Failure::build(
                1,
                format!(
                    "{what}: pull_policy {:?} is not a pull policy; use always, if-not-present or never",
                    r.chars().take(40).collect::<String>()
                ),
            )
        })?;
        if !wanted.contains(&p) {
            wanted.push(p);
        }
    }
    let names = |v: &[PullPolicy]| v.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    let allowed: Vec<PullPolicy> = wanted
        .iter()
        .copied()
        .filter(|p| config.allowed_pull_policies.contains(p))
        .collect();
    if allowed.is_empty() {
        return Err(Failure::build(
            1,
            format!(
                "pull_policy [{}] of {what} is not allowed on this runner (allowed_pull_policies: {}); \
                 use one of those in .gitlab-ci.yml, or ask the runner's owner",
                names(&wanted),
                names(&config.allowed_pull_policies)
            ),
        ));
    }
    if allowed.len() < wanted.len() {
        let refused: Vec<PullPolicy> = wanted
            .iter()
            .copied()
            .filter(|p| !allowed.contains(p))
            .collect();
        log_info(&format!(
            "{what}: ignoring pull_policy {} (not in allowed_pull_policies: {})",
            names(&refused),
            names(&config.allowed_pull_policies)
        ));
    }
    Ok(Pull {
        policies: allowed,
        chosen_by_job: true,
    })
}

/// The auth file the job's pulls use: the configured `auth_file`, or — when the job brings
/// registry credentials — a per-job merge written (0600) into pogo's job directory the first
/// time a pull needs it.
pub struct PullAuth {
    configured: Option<String>,
    merged: Option<auth::MergedFile>,
    path: PathBuf,
    written: bool,
}

impl PullAuth {
    /// Only the runner's own auth file (the helper image's pulls).
    pub fn configured(configured: Option<String>) -> Self {
        Self {
            configured,
            merged: None,
            path: PathBuf::new(),
            written: false,
        }
    }

    fn for_job(
        ctx: &Context,
        configured: Option<String>,
        response: &JobResponse,
        job_dir: &Path,
    ) -> Result<Self, Failure> {
        let custom = |k: &str| {
            ctx.env
                .get(&format!("CUSTOM_ENV_{k}"))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let docker_auth_config = custom("DOCKER_AUTH_CONFIG");
        let ci_registry = custom("CI_REGISTRY").map(|registry| {
            let user = custom("CI_REGISTRY_USER").unwrap_or_else(|| "gitlab-ci-token".into());
            let password = custom("CI_REGISTRY_PASSWORD")
                .map(crate::secret::Secret::new)
                .unwrap_or_else(|| ctx.job.job_token.clone());
            (registry, user, password)
        });
        let job = auth::JobAuth {
            docker_auth_config: docker_auth_config.as_deref(),
            credentials: &response.credentials,
            ci_registry,
        };
        let mut this = Self::configured(configured);
        if !job.has_any() {
            return Ok(this);
        }
        let configured_text = match &this.configured {
            None => None,
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| Failure::system(format!("cannot read auth_file {p}: {e}")))?,
            ),
        };
        let merged = auth::merge(configured_text.as_deref(), &job).map_err(|e| {
            Failure::system(format!(
                "auth_file {} cannot be merged with the job's registry credentials: {}; fix it \
                 (`podman login --authfile {}` writes a valid one)",
                this.configured.as_deref().unwrap_or(""),
                e.0,
                this.configured.as_deref().unwrap_or("")
            ))
        })?;
        for w in &merged.warnings {
            log_warning(w);
        }
        this.merged = merged.file;
        this.path = job_dir.join(jobdata::AUTH_FILE);
        Ok(this)
    }

    /// The `--authfile` for a pull, writing the per-job file on first use.
    fn path(&mut self) -> Result<Option<String>, Failure> {
        let Some(merged) = &self.merged else {
            return Ok(self.configured.clone());
        };
        let shown = self.path.display().to_string();
        if !self.written {
            let dir = self.path.parent().unwrap_or(Path::new("/"));
            jobdata::write_private(dir, jobdata::AUTH_FILE, merged.json.as_bytes())
                .map_err(|e| Failure::system(format!("cannot write {shown}: {e}")))?;
            self.written = true;
            let registries: Vec<String> = merged
                .registries
                .iter()
                .map(|(r, source)| format!("{r} ({})", source.describe()))
                .collect();
            let configured = self.configured.as_deref().unwrap_or("");
            if registries.is_empty() {
                log_info(&format!(
                    "the job's registry credentials are all for registries auth_file {configured} covers; using those"
                ));
            } else {
                log_info(&format!(
                    "registry credentials for this job: {}{}",
                    registries.join(", "),
                    if configured.is_empty() {
                        String::new()
                    } else {
                        format!(", merged with auth_file {configured}")
                    }
                ));
            }
        }
        Ok(Some(shown))
    }

    fn describe(&self) -> String {
        match (&self.merged, &self.configured) {
            (Some(_), Some(c)) => {
                format!("with the job's registry credentials merged with auth_file {c}")
            }
            (Some(_), None) => "with the job's registry credentials".to_string(),
            (None, Some(c)) => format!("with auth_file {c}"),
            (None, None) => "without credentials (no auth_file configured)".to_string(),
        }
    }
}

/// What pogo reads from `podman image inspect`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InspectedImage {
    #[serde(rename = "Id", default)]
    pub id: String,
    /// pogo pulled it for this job (not read from podman).
    #[serde(skip)]
    pub pulled: bool,
    #[serde(rename = "Config", default)]
    pub config: InspectedConfig,
    #[serde(rename = "Os", default)]
    pub os: String,
    #[serde(rename = "Architecture", default)]
    pub architecture: String,
    #[serde(rename = "Variant", default)]
    pub variant: String,
}

impl InspectedImage {
    /// Whether this image is for `platform` (normalized, `os/arch[/variant]`); an image that
    /// does not say is taken for it.
    pub fn is_for(&self, platform: &str) -> bool {
        let mut want = platform.split('/');
        let (os, arch, variant) = (want.next(), want.next(), want.next());
        let same = |want: Option<&str>, have: &str| {
            have.is_empty() || want.is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        same(os, &self.os) && same(arch, &self.architecture) && same(variant, &self.variant)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InspectedConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `USER` (`name`, `uid`, `uid:gid`...); empty: root.
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

impl InspectedConfig {
    /// Whether the image runs as a user other than root (then it cannot create the builds
    /// directory in the container's root-owned filesystem).
    pub fn runs_as_non_root(&self) -> bool {
        let user = self.user.as_deref().unwrap_or("").trim();
        let name = user.split(':').next().unwrap_or("");
        !(name.is_empty() || name == "0" || name == "root")
    }
}

/// The image's configuration when it is in local storage, `None` when it is not.
async fn inspect_local(podman: &Podman, image: &str) -> Result<Option<InspectedImage>, Failure> {
    let argv = args::inspect_image(image);
    let out = podman
        .output(&argv)
        .await
        .map_err(|e| Failure::system(format!("cannot inspect image {image}: {e}")))?;
    if out.status.success() {
        let list: Vec<InspectedImage> = serde_json::from_str(out.stdout.trim()).map_err(|e| {
            Failure::system(format!(
                "cannot read `podman image inspect` of {image}: {e}"
            ))
        })?;
        return Ok(Some(list.into_iter().next().unwrap_or_default()));
    }
    // missing, or podman failing? (only on this slow path: a pull follows anyway)
    match podman.image_exists(image).await {
        Ok(false) => Ok(None),
        Ok(true) => Err(Failure::system(format!(
            "cannot inspect image {image}: {}",
            crate::podman::last_lines(&out.stderr, 3)
        ))),
        Err(e) => Err(Failure::system(format!(
            "cannot check for image {image}: {e}"
        ))),
    }
}

/// Make `image` available locally, trying the pull policies in order (as the Docker executor:
/// when one fails the next is tried); returns its configuration. Pull progress goes to the log.
pub async fn ensure_image(
    podman: &Podman,
    image: &str,
    platform: Option<&str>,
    pull: &Pull,
    auth: &mut PullAuth,
) -> Result<InspectedImage, Failure> {
    let mut last = Failure::system(format!("no pull policy for image {image}"));
    for (i, policy) in pull.policies.iter().enumerate() {
        if i > 0 {
            log_info(&format!(
                "attempt #{}: trying pull_policy {policy} for {image}",
                i + 1
            ));
        }
        match ensure_with(podman, image, platform, *policy, pull.chosen_by_job, auth).await {
            Ok(info) => return Ok(info),
            Err(e) => {
                if i + 1 < pull.policies.len() {
                    let m = match &e {
                        Failure::System(m) => m.clone(),
                        Failure::Build { message, .. } => message.clone().unwrap_or_default(),
                    };
                    log_warning(&format!("pull_policy {policy} failed for {image}: {m}"));
                }
                last = e;
            }
        }
    }
    Err(last)
}

async fn ensure_with(
    podman: &Podman,
    image: &str,
    platform: Option<&str>,
    policy: PullPolicy,
    chosen_by_job: bool,
    auth: &mut PullAuth,
) -> Result<InspectedImage, Failure> {
    // a local image for another platform (`docker: platform`) counts as missing; `always`
    // pulls without looking
    let local = match policy {
        PullPolicy::Always => None,
        _ => inspect_local(podman, image)
            .await?
            .filter(|info| platform.is_none_or(|p| info.is_for(p))),
    };
    let image_for = match platform {
        Some(p) => format!("{image} for {p}"),
        None => image.to_string(),
    };
    match policy {
        PullPolicy::Never => {
            if let Some(info) = local {
                return Ok(info);
            }
            let image = &image_for;
            if chosen_by_job {
                return Err(Failure::build(
                    1,
                    format!(
                        "image {image} is not in podman's local storage and the job's pull_policy is \
                         never (image: pull_policy in .gitlab-ci.yml): allow a pull in the job, or \
                         ask the runner's owner to pull the image"
                    ),
                ));
            }
            return Err(Failure::system(format!(
                "image {image} is not in podman's local storage and pull_policy is never: \
                 pull it as the runner's user (`podman pull {image}`) or set pull_policy: if-not-present"
            )));
        }
        PullPolicy::IfNotPresent => {
            if let Some(info) = local {
                log_info(&format!(
                    "using local image {image_for} (pull_policy if-not-present)"
                ));
                return Ok(info);
            }
        }
        PullPolicy::Always => {}
    }
    log_info(&format!("pulling image {image_for} (pull_policy {policy})"));
    let auth_file = auth.path()?;
    let argv = args::pull(image, auth_file.as_deref(), platform);
    let (ok, tail) = podman
        .run_tee(&argv)
        .await
        .map_err(|e| Failure::system(format!("cannot pull {image}: {e}")))?;
    if ok {
        let mut info = inspect_local(podman, image).await?.ok_or_else(|| {
            Failure::system(format!(
                "image {image} was pulled but podman cannot find it"
            ))
        })?;
        info.pulled = true;
        return Ok(info);
    }
    // podman's final "Error: …" line says it all (its retries were shown above)
    let tail = tail
        .rsplit("; ")
        .find_map(|l| l.strip_prefix("Error: "))
        .map(str::to_string)
        .unwrap_or(tail);
    Err(pull_failure(image, &auth.describe(), &tail))
}

/// A failed pull: the job's mistake when the registry answered that it has no such image or
/// will not give it (a wrong name or tag, missing credentials) — retrying cannot help, and the
/// Docker executor fails the job there too (`ImagePullFailure`, not retried); otherwise (the
/// registry unreachable, a timeout, podman failing) a system failure, which gitlab-runner
/// retries.
pub fn pull_failure(image: &str, auth: &str, error: &str) -> Failure {
    let e = error.to_ascii_lowercase();
    let answered = |words: &[&str]| words.iter().any(|w| e.contains(w));
    // the machine refusing pogo (storage, an auth file) is not the registry refusing the job
    if answered(&["permission denied", "operation not permitted"]) {
        return Failure::system(format!(
            "pulling image {image} failed {auth}: {error}; this machine refused it (storage or \
             file permissions of the runner's user); the job can be retried"
        ));
    }
    if answered(&[
        "manifest unknown",
        "name unknown",
        "repository does not exist",
        "invalid reference format",
    ]) {
        Failure::build(
            1,
            format!("image {image} does not exist in its registry ({error}); check the image name and tag"),
        )
    } else if answered(&[
        "unauthorized",
        "authentication required",
        "denied",
        "forbidden",
    ]) {
        Failure::build(
            1,
            format!(
                "the registry refused image {image} {auth} ({error}); check the image name and the \
                 credentials (DOCKER_AUTH_CONFIG, the runner's auth_file)"
            ),
        )
    } else {
        Failure::system(format!(
            "pulling image {image} failed {auth}: {error}; check that the registry is reachable; the job can be retried"
        ))
    }
}

/// The runner owner's `allowed_images` / `allowed_services`: a job outside them fails as a
/// build failure naming the rule (retrying cannot help).
pub fn check_allowed(
    image: &str,
    services: &[crate::podman::service::Service],
    config: &crate::config::Config,
) -> Result<(), Failure> {
    if !config.allowed_images.allows(image) {
        return Err(Failure::build(
            1,
            format!(
                "image {image} is not allowed on this runner (allowed_images: {}); use an allowed image \
                 or ask the runner's owner",
                config.allowed_images.patterns.join(", ")
            ),
        ));
    }
    if let Some(svc) = services
        .iter()
        .find(|s| !config.allowed_services.allows(&s.name))
    {
        return Err(Failure::build(
            1,
            format!(
                "service {} is not allowed on this runner (allowed_services: {}); use an allowed \
                 service image or ask the runner's owner",
                svc.name,
                config.allowed_services.patterns.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The fast stage path when the config allows it, this pogo has a static agent and podman's
/// catatonit is there to be PID 1 ; otherwise the plain keep-alive (stages via `podman exec`).
/// The host's static init (see [`crate::podman::detect_keep_alive`]), as pogo's own copy
/// under `working_dir` (see [`super::agent::own_copy`]); the host's file itself when it cannot
/// be copied (then an SELinux host cannot run it: the warning says so).
fn own_init(ctx: &Context) -> KeepAlive {
    match crate::podman::detect_keep_alive() {
        KeepAlive::Init(host) => {
            match super::agent::own_copy(&ctx.config.working_dir, Path::new(&host), "catatonit") {
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

fn with_agent(ctx: &Context, keep_alive: KeepAlive, agent_key: &str) -> KeepAlive {
    let KeepAlive::Init(init) = keep_alive else {
        return keep_alive;
    };
    if ctx.config.stage_runner != crate::config::StageRunner::Agent {
        return KeepAlive::Init(init);
    }
    let working_dir = &ctx.config.working_dir;
    let prepared = super::agent::install(working_dir).and_then(|agent| {
        let dir = super::agent::socket_dir(working_dir, agent_key);
        super::agent::prepare_socket_dir(&dir)?;
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

/// The job's image, else the configured default, else a message saying how to get one.
pub fn pick_image(job_image: Option<&str>, default: Option<&str>) -> Result<String, Failure> {
    match (job_image, default) {
        (Some(i), _) if !i.is_empty() => Ok(i.to_string()),
        (_, Some(d)) if !d.is_empty() => Ok(d.to_string()),
        _ => Err(Failure::build(
            1,
            "the job has no `image:` and this runner has no default_image: add `image:` to the job \
             in .gitlab-ci.yml, or set default_image in the pogo config",
        )),
    }
}

fn check_auth_file(auth: Option<&Path>) -> Result<Option<String>, Failure> {
    let Some(p) = auth else { return Ok(None) };
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => {
            use std::os::unix::fs::PermissionsExt;
            if m.permissions().mode() & 0o077 != 0 {
                log_warning(&format!(
                    "auth_file {} is readable by other users; `chmod 600` it",
                    p.display()
                ));
            }
            Ok(Some(p.display().to_string()))
        }
        _ => Err(Failure::system(format!(
            "auth_file {} does not exist or is not a file: create it (`podman login --authfile {}`) or remove auth_file from the pogo config",
            p.display(),
            p.display()
        ))),
    }
}

/// What prepare worked out for the job's services: each one's variables and image options,
/// and the arguments the job's tags give every service container.
struct Services<'a> {
    envs: &'a [args::ServiceEnv],
    docker: &'a [DockerOptions],
    extra_args: &'a [String],
}

async fn start_services(
    ctx: &Context,
    labels: &[(String, String)],
    job_dir: &Path,
    services: &Services<'_>,
) -> Result<String, Failure> {
    let (envs, docker) = (services.envs, services.docker);
    let pod = ctx.job.names.pod.clone();
    let mut hosts: Vec<String> = Vec::new();
    for svc in &ctx.job.services {
        for h in args::service_hostnames(svc) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    let argv = args::pod_create(&pod, labels, &hosts);
    create(ctx, Kind::Pod, &pod, &argv)
        .await
        .map_err(|e| start_failure("create the job's pod", &e))?;
    for (i, ((svc, env), d)) in ctx.job.services.iter().zip(envs).zip(docker).enumerate() {
        let name = ctx.job.names.service(i);
        // single-line variables go in a 0600 file of the job's private directory (never
        // mounted), the others in podman secrets (after the pod, whose labels let `pogo gc`
        // find the job should prepare die here)
        let env_file = match &env.file {
            Some(text) => Some(
                jobdata::write_private(job_dir, &format!("service{i}.env"), text.as_bytes())
                    .map_err(|e| {
                        Failure::system(format!(
                            "cannot write the variables of service {} under {}: {e}",
                            svc.name,
                            job_dir.display()
                        ))
                    })?,
            ),
            None => None,
        };
        let mut secrets = Vec::with_capacity(env.secrets.len());
        for (n, (var, value)) in env.secrets.iter().enumerate() {
            let secret = args::service_secret_name(&name, n);
            create_secret(ctx, &secret, labels, value.as_bytes())
                .await
                .map_err(|e| {
                    Failure::system(format!(
                        "cannot hand the variable {var} of service {} to podman: {e}",
                        svc.name
                    ))
                })?;
            secrets.push((secret, var.clone()));
        }
        let d = args::Docker {
            platform: d.platform.as_deref(),
            user: d.user.as_deref(),
        };
        let run = args::ServiceRun {
            name: &name,
            pod: &pod,
            labels,
            env_file: env_file.as_deref(),
            secrets: &secrets,
            docker: &d,
            extra_args: services.extra_args,
        };
        let argv = args::service_run(svc, &run);
        log_info(&format!(
            "starting service {}: {}",
            svc.name,
            ctx.podman.display(&argv)
        ));
        create(ctx, Kind::Container, &name, &argv)
            .await
            .map_err(|e| start_failure(&format!("start service {}", svc.name), &e))?;
    }
    Ok(pod)
}

/// The persistent builds volume of this runner + project + slot: reused when it is there
/// (one `podman volume inspect`), created otherwise. It carries pogo's and the runner's
/// labels but no job's, so cleanup keeps it; `pogo gc` removes it after
/// `persistent_builds_days` unused (the stamp under `working_dir` says when it was last used).
async fn persistent_builds_volume(
    ctx: &Context,
) -> Result<(String, Option<super::gc::BuildsVolumeLock>), Failure> {
    use crate::podman::labels::LABEL_BUILDS_VOLUME;
    let name = super::env::persistent_builds_volume(
        &ctx.job.runner_short_token,
        &ctx.job.project_path,
        &ctx.job.concurrent_project_id,
    );
    let failed = |e: &dyn std::fmt::Display| {
        Failure::system(format!("cannot use the builds volume {name}: {e}"))
    };
    // Locked and noted as in use before it is looked at: a `pogo gc` removing it now finishes
    // first; one that comes later keeps it.
    let lock = match super::gc::lock_builds_volume_for_use(&ctx.config.working_dir, &name) {
        Ok(lock) => Some(lock),
        Err(e) => {
            log_warning(&format!(
                "cannot lock {name} under {}: {e}; a `pogo gc` running now might remove it",
                ctx.config.working_dir.display()
            ));
            None
        }
    };
    if let Err(e) = super::gc::touch_builds_volume(
        &ctx.config.working_dir,
        &name,
        ctx.config.persistent_builds_days,
    ) {
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
        log_info(&format!(
            "using the builds volume {name} (persistent_builds_days)"
        ));
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
            (
                LABEL_BUILDS_VOLUME.to_string(),
                ctx.config.persistent_builds_days.to_string(),
            ),
            (
                crate::podman::labels::LABEL_CREATED.to_string(),
                unix_now().to_string(),
            ),
        ]
        .map(|(k, v)| (k, crate::podman::labels::sanitize_label_value(&v)));
        match ctx.podman.run(&args::volume_create(&name, &labels)).await {
            Ok(_) => log_info(&format!(
                "created the builds volume {name} (persistent_builds_days: kept for later jobs)"
            )),
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
async fn create_builds_volume(
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
async fn create_secret(
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
fn start_failure(what: &str, err: &dyn std::fmt::Display) -> Failure {
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
enum Kind {
    Container,
    Pod,
}

/// Create a container or pod. When the name is taken by a leftover of pogo's (an earlier
/// attempt of the same job that was killed before its cleanup), remove it and try once more;
/// a same-named object without pogo's label is never touched. Checking only on conflict keeps
/// the common path at one podman call.
async fn create(
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

async fn is_pogo_leftover(ctx: &Context, kind: Kind, name: &str) -> bool {
    let argv = match kind {
        Kind::Container => args::container_named_by_pogo(name),
        Kind::Pod => args::pod_named_by_pogo(name),
    };
    ctx.podman
        .run(&argv)
        .await
        .is_ok_and(|out| out.lines().any(|l| l.trim() == name))
}

/// Wait until each service's ports (`ports[i]`: its readiness ports, from the job or the
/// image) accept connections (are listening in the pod's network namespace), or fail with the
/// service's log.
async fn wait_for_services(ctx: &Context, ports: &[Vec<u16>]) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(ctx.config.services_wait_timeout);
    for (i, (svc, ports)) in ctx.job.services.iter().zip(ports).enumerate() {
        let name = ctx.job.names.service(i);
        if ports.is_empty() {
            log_info(&format!(
                "service {} exposes no TCP port; not waiting for it",
                svc.name
            ));
            continue;
        }
        log_info(&format!(
            "waiting for service {} on port(s) {:?}",
            svc.name, ports
        ));
        loop {
            let state = ctx
                .podman
                .container_state(&name)
                .await
                .map_err(Failure::system)?
                .unwrap_or_default();
            if !state.running {
                return Err(service_failure(
                    ctx,
                    &name,
                    &svc.name,
                    &format!(
                        "service {} stopped (exit code {}) before it was ready",
                        svc.name, state.exit_code
                    ),
                )
                .await);
            }
            let listening = listening_ports_of(state.pid);
            if ports.iter().all(|p| listening.contains(p)) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(service_failure(ctx, &name, &svc.name, &format!(
                    "service {} did not accept connections on port(s) {:?} within services_wait_timeout ({} s)",
                    svc.name, ports, ctx.config.services_wait_timeout
                ))
                .await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// The stage agent did not come up: stages can still use `podman exec` while the container
/// runs; when it stopped with the agent (its main process), say so with its last output.
/// `role` names the container in messages: "job" or "helper".
async fn agent_did_not_start(ctx: &Context, container: &str, role: &str) -> Result<(), Failure> {
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

/// What a container wrote (stdout, then stderr); empty when podman cannot say.
pub(super) async fn container_logs(ctx: &Context, container: &str) -> String {
    ctx.podman
        .output(&args::logs(container))
        .await
        .map(|o| format!("{}{}", o.stdout, o.stderr))
        .unwrap_or_default()
}

async fn service_failure(ctx: &Context, container: &str, image: &str, message: &str) -> Failure {
    let logs = container_logs(ctx, container).await;
    eprintln!(
        "--- last log lines of service {image} ---\n{}\n---",
        logs.trim_end()
    );
    Failure::system(message)
}

fn exposed_tcp_ports(image: &InspectedImage) -> Vec<u16> {
    let mut ports: Vec<u16> = image
        .config
        .exposed_ports
        .as_ref()
        .map(|m| {
            m.keys()
                .filter_map(|k| {
                    let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
                    (proto == "tcp").then(|| port.parse().ok()).flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn listening_ports_of(pid: i64) -> Vec<u16> {
    if pid <= 0 {
        return Vec::new();
    }
    let mut ports = Vec::new();
    for f in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")) {
            ports.extend(listening_ports(&text));
        }
    }
    ports
}

/// Local ports in LISTEN state (`0A`) in a `/proc/net/tcp{,6}` table.
pub fn listening_ports(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1)?;
            let state = cols.nth(1)?;
            if state != "0A" {
                return None;
            }
            let port = local.rsplit(':').next()?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

/// The gitlab-runner binary to mount: configured, else the parent process when it is
/// gitlab-runner, else `gitlab-runner` on PATH.
fn runner_binary(
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

fn find_on_path(name: &str, path: Option<&str>) -> Option<PathBuf> {
    path?
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prepare context from a config, `CUSTOM_ENV_*` values and a job description.
    fn context(config: &str, env: &[(&str, &str)], response: &str) -> Context {
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let response = super::super::response::parse(response).unwrap();
        let config = crate::config::load_text(config, Some(Path::new("/p.yaml")), &env).unwrap();
        let job = super::super::env::JobEnv::from_env(&env, Some(&response)).unwrap();
        Context {
            podman: crate::podman::Podman::new("podman", Vec::new()),
            notes: Vec::new(),
            env,
            config,
            job,
            response: Ok(response),
        }
    }

    #[test]
    fn the_jobs_request_is_checked_before_anything_is_pulled() {
        let services = r#"[{"name":"postgres:16","alias":"db","entrypoint":null,"command":null}]"#;
        let ctx = context(
            "working_dir: /w\nallowed_pull_policies: [always, if-not-present]\n",
            &[
                ("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3"),
                ("CUSTOM_ENV_CI_JOB_SERVICES", services),
            ],
            r#"{"id":7,"token":"t",
                "image":{"name":"alpine:3","entrypoint":["/bin/ep"],"pull_policy":["always"],
                         "executor_opts":{"docker":{"platform":"linux/arm64","user":"1000"}}},
                "services":[{"name":"postgres:16","alias":"db","ports":[{"number":5432}]}]}"#,
        );
        let r = request(&ctx, vec!["a".into()]).unwrap();
        assert_eq!(
            (r.tags, r.image.as_str()),
            (vec!["a".to_string()], "alpine:3")
        );
        assert_eq!(r.entrypoint_override, Some(vec!["/bin/ep".to_string()]));
        assert!(r.image_pull.chosen_by_job);
        assert_eq!(r.docker.platform.as_deref(), Some("linux/arm64"));
        assert_eq!(r.docker.user.as_deref(), Some("1000"));
        assert_eq!(r.service_ports, vec![Some(vec![5432])]);

        // a pull policy the owner does not allow is the job's failure
        let ctx = context(
            "working_dir: /w\n",
            &[("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3")],
            r#"{"id":7,"token":"t","image":{"name":"alpine:3","pull_policy":["always"]}}"#,
        );
        assert!(matches!(request(&ctx, vec![]), Err(Failure::Build { .. })));
        // an image name that would be a podman option never reaches podman
        let ctx = context(
            "working_dir: /w\n",
            &[("CUSTOM_ENV_CI_JOB_IMAGE", "--privileged")],
            r#"{"id":7,"token":"t"}"#,
        );
        assert!(matches!(request(&ctx, vec![]), Err(Failure::Build { .. })));
    }

    #[test]
    fn a_netavark_without_iptables_or_nft_says_what_to_install() {
        for err in [
            "Error: netavark: No such file or directory (os error 2)",
            "Error: netavark: nftables error: unable to execute nft",
        ] {
            let Failure::System(m) = start_failure("start the job container", &err) else {
                panic!("not a system failure")
            };
            assert!(m.contains("apt-get install iptables nftables"), "{m}");
        }
        let Failure::System(m) = start_failure("start the job container", &"Error: other") else {
            panic!("not a system failure")
        };
        assert_eq!(m, "cannot start the job container: Error: other");
    }

    #[test]
    fn listening_sockets_are_read_from_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n";
        assert_eq!(listening_ports(table), vec![80]);
    }

    #[test]
    fn a_job_without_image_uses_the_default_and_without_both_says_how_to_fix() {
        assert_eq!(pick_image(None, Some("alpine")).unwrap(), "alpine");
        assert_eq!(
            pick_image(Some("debian"), Some("alpine")).unwrap(),
            "debian"
        );
        match pick_image(None, None) {
            Err(Failure::Build {
                message: Some(m), ..
            }) => assert!(m.contains("default_image")),
            other => panic!("{other:?}"),
        }
    }

    fn config(text: &str) -> Config {
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), "/h".to_string())].into();
        let raw = crate::config::parse(text, Path::new("/p.yaml")).unwrap();
        crate::config::finalize(raw, None, &env).unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn message(f: Failure) -> (i32, String) {
        match f {
            Failure::Build { exit_code, message } => (exit_code, message.unwrap_or_default()),
            Failure::System(m) => (-1, m),
        }
    }

    #[test]
    fn a_job_pull_policy_is_limited_to_the_allowed_ones() {
        let c = config("pull_policy: always\nallowed_pull_policies: [always, if-not-present]\n");
        assert_eq!(
            pull_policies(&[], "image x", &c).unwrap(),
            Pull {
                policies: vec![PullPolicy::Always],
                chosen_by_job: false
            }
        );
        let p = pull_policies(
            &strings(&["never", "if-not-present", "always"]),
            "image x",
            &c,
        )
        .unwrap();
        assert_eq!(
            p.policies,
            vec![PullPolicy::IfNotPresent, PullPolicy::Always]
        );
        assert!(p.chosen_by_job);
        let (code, m) = message(pull_policies(&strings(&["never"]), "image x", &c).unwrap_err());
        assert_eq!(code, 1, "a build failure: retrying cannot help");
        assert_eq!(
            m,
            "pull_policy [never] of image x is not allowed on this runner (allowed_pull_policies: \
             always, if-not-present); use one of those in .gitlab-ci.yml, or ask the runner's owner"
        );
        let (code, m) =
            message(pull_policies(&strings(&["--privileged"]), "image x", &c).unwrap_err());
        assert_eq!(code, 1);
        assert!(m.contains("\"--privileged\" is not a pull policy"), "{m}");
    }

    #[test]
    fn entrypoints_follow_the_docker_executors_rules() {
        assert_eq!(check_entrypoint(&[], "x").unwrap(), Vec::<String>::new());
        assert_eq!(
            check_entrypoint(&strings(&[""]), "x").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            check_entrypoint(&strings(&["/e", "--"]), "x").unwrap(),
            strings(&["/e", "--"])
        );
        assert_eq!(
            message(check_entrypoint(&strings(&["", "a"]), "x").unwrap_err()).0,
            1
        );
        assert_eq!(
            message(check_entrypoint(&strings(&["/e", "a\0b"]), "x").unwrap_err()).0,
            1
        );
    }

    #[test]
    fn readiness_ports_come_from_healthcheck_tcp_port_then_ports_then_the_image() {
        let mut svc = Service {
            name: "db".into(),
            ..Service::default()
        };
        let spec = ImageSpec {
            ports: vec![5432, 8080, 5432],
            ..ImageSpec::default()
        };
        assert_eq!(readiness_ports(&svc, &ImageSpec::default()).unwrap(), None);
        assert_eq!(
            readiness_ports(&svc, &spec).unwrap(),
            Some(vec![5432, 8080])
        );
        svc.variables = Some([("HEALTHCHECK_TCP_PORT".to_string(), "6379".to_string())].into());
        assert_eq!(readiness_ports(&svc, &spec).unwrap(), Some(vec![6379]));
        svc.variables = Some([("HEALTHCHECK_TCP_PORT".to_string(), "0".to_string())].into());
        assert!(readiness_ports(&svc, &spec).is_err());
        svc.variables = None;
        for bad in [0, -1, 65536] {
            let spec = ImageSpec {
                ports: vec![bad],
                ..ImageSpec::default()
            };
            let (code, m) = message(readiness_ports(&svc, &spec).unwrap_err());
            assert_eq!(code, 1);
            assert!(m.contains("is not a TCP port number"), "{m}");
        }
    }

    #[test]
    fn services_are_matched_to_their_description_by_position_and_name() {
        let svc = |n: &str| Service {
            name: n.into(),
            ..Service::default()
        };
        let spec = |n: &str, port: i64| ImageSpec {
            name: n.into(),
            ports: vec![port],
            ..ImageSpec::default()
        };
        let got = service_specs(
            &[svc("a"), svc("b"), svc("a"), svc("c")],
            &[spec("a", 1), spec("a", 3), spec("b", 2)],
        );
        let ports: Vec<Vec<i64>> = got.iter().map(|s| s.ports.clone()).collect();
        assert_eq!(ports, vec![vec![1], vec![2], vec![3], vec![]]);
    }

    #[test]
    fn a_pull_the_registry_refuses_is_the_jobs_failure_an_unreachable_one_the_machines() {
        let job = |e: &str| {
            matches!(
                pull_failure("x", "without credentials", e),
                Failure::Build { .. }
            )
        };
        // what podman prints for registry answers (Docker Hub, distribution, GitLab, ghcr)
        for e in [
            "reading manifest latest in 127.0.0.1:5000/pogo/typo: manifest unknown",
            "initializing source docker://127.0.0.1:5000/x:1: reading manifest 1 in 127.0.0.1:5000/x: name unknown: repository name not known to registry",
            "reading manifest latest in docker.io/library/nope: requested access to the resource is denied",
            "initializing source docker://registry.example.com/a/b:1: reading manifest 1 in registry.example.com/a/b: unauthorized: authentication required",
            "reading manifest 1 in ghcr.io/o/p: denied",
        ] {
            assert!(job(e), "{e}");
        }
        for e in [
            "initializing source docker://localhost/x:latest: pinging container registry localhost: Get \"https://localhost/v2/\": dial tcp 127.0.0.1:443: connect: connection refused",
            "pinging container registry registry.example: Get \"https://registry.example/v2/\": dial tcp: lookup registry.example on 127.0.0.53:53: no such host",
            "copying system image from manifest list: writing blob: storing blob to file: write /var/tmp/x: no space left on device",
            "writing blob: storing blob to file \"/var/tmp/storage123/1\": open /var/tmp/storage123/1: permission denied",
            "net/http: TLS handshake timeout",
        ] {
            assert!(!job(e), "{e}");
        }
    }

    #[test]
    fn an_image_user_other_than_root_is_told_apart_from_root() {
        let with = |u: Option<&str>| InspectedConfig {
            user: u.map(str::to_string),
            ..InspectedConfig::default()
        };
        for root in [
            None,
            Some(""),
            Some("0"),
            Some("root"),
            Some("0:0"),
            Some("root:wheel"),
        ] {
            assert!(!with(root).runs_as_non_root(), "{root:?}");
        }
        for other in [Some("1000"), Some("node"), Some("1000:1000"), Some("app:0")] {
            assert!(with(other).runs_as_non_root(), "{other:?}");
        }
    }
}
