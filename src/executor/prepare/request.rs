//! What the job asks for, checked against the config before anything is pulled or started
//! (pure): its image and services, their `docker:` options, entrypoints, pull policies and
//! readiness ports, the allowed images, the auth file.

use super::super::response::{DockerOptions, ImageSpec, JobResponse};
use super::super::{log_info, log_warning, plan, Context, Failure, OrFailure};
use crate::config::{Config, PullPolicy};
use crate::podman::args;
use crate::podman::service::Service;
use std::path::Path;

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
    /// The job fetches into the last clone (see [`plan::fetches`]) and is a runner's: `pogo
    /// exec` copies the sources into a fresh builds directory for every job, so a kept one
    /// would only keep files the sources no longer have.
    pub fetch: bool,
}

pub fn request(ctx: &Context, tags: Vec<String>) -> Result<Request<'_>, Failure> {
    let image = pick_image(
        ctx.job.image.as_deref(),
        ctx.config.default_image.as_deref(),
    )?;
    args::validate_image(&image).or_build(1, || "job image refused")?;
    let mut service_envs = Vec::with_capacity(ctx.job.services.len());
    for svc in &ctx.job.services {
        args::validate_image(&svc.name).or_build(1, || "service image refused")?;
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
        fetch: plan::fetches(ctx.job.git_strategy.as_deref(), response.allow_git_fetch)
            && !crate::executor::local::is_local(&ctx.env),
        response,
    })
}

/// `docker: {platform, user}` of an image (the job's or a service's) checked — they are
/// the job's values — and the platform in podman's form. A value that is not one is the
/// job's mistake.
pub(super) fn docker_options(
    spec: Option<&ImageSpec>,
    what: &str,
) -> Result<DockerOptions, Failure> {
    let Some(d) = spec.map(|s| &s.docker) else {
        return Ok(DockerOptions::default());
    };
    args::validate_docker_options(d.platform.as_deref(), d.user.as_deref()).or_build(1, || what)?;
    Ok(DockerOptions {
        platform: d.platform.as_deref().map(args::normalize_platform),
        user: d.user.clone(),
    })
}

/// The job description, or an empty one when gitlab-runner gave none (older than 14.1).
pub(super) fn job_response(ctx: &Context) -> Result<&JobResponse, Failure> {
    ctx.response
        .as_ref()
        .map_err(|e| Failure::system(format!("{e}; the job can be retried")))
}

/// The description of the job's own image (not of a default image pogo picked).
pub(super) fn job_image_spec<'a>(
    job_image: Option<&str>,
    described: &'a ImageSpec,
) -> Option<&'a ImageSpec> {
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

pub(super) fn check_auth_file(auth: Option<&Path>) -> Result<Option<String>, Failure> {
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
