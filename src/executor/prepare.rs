//! `pogo prepare`: pull the image(s), start the services in a pod, start the job container
//! with the tag mounts, extra arguments, cache and gitlab-runner binary, wait for services.

use super::config_stage::job_tags;
use super::{log_info, log_warning, Context, Failure};
use crate::config::{resolve, PullPolicy};
use crate::podman::args::{self, JobContainer, KeepAlive, RUNNER_BINARY_PATH};
use crate::podman::{ImageInspect, Podman};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub async fn run(ctx: &Context) -> Result<(), Failure> {
    let state = crate::state::hooks::Prepare::start(ctx); // pogo tui: job state record
                                                          // Leftovers of this runner's killed jobs: a background gc at most every 10 minutes.
    super::gc::maybe_start_background(&ctx.config, &ctx.job.runner_short_token);
    let tags = job_tags(&ctx.job)?;
    let image = pick_image(
        ctx.job.image.as_deref(),
        ctx.config.default_image.as_deref(),
    )?;
    args::validate_image(&image)
        .map_err(|m| Failure::build(1, format!("job image refused: {m}")))?;
    for svc in &ctx.job.services {
        args::validate_image(&svc.name)
            .map_err(|m| Failure::build(1, format!("service image refused: {m}")))?;
        if let Some(vars) = &svc.variables {
            if let Some(bad) = vars.keys().find(|k| !args::valid_env_name(k)) {
                return Err(Failure::build(
                    1,
                    format!(
                        "service '{}' has an invalid variable name {:?}",
                        svc.name, bad
                    ),
                ));
            }
        }
    }
    check_allowed(&image, &ctx.job.services, &ctx.config)?;
    let auth_file = check_auth_file(ctx.config.auth_file.as_deref())?;

    let labels = ctx.job.labels(&unix_now().to_string());
    let policy = ctx.config.pull_policy;
    ensure_image(&ctx.podman, &image, policy, auth_file.as_deref()).await?;
    for svc in &ctx.job.services {
        ensure_image(&ctx.podman, &svc.name, policy, auth_file.as_deref()).await?;
    }

    let pod = if ctx.job.services.is_empty() {
        None
    } else {
        Some(start_services(ctx, &labels).await?)
    };

    let grants = resolve::grants(&ctx.config, &tags, &ctx.job.project_path);
    let mut volumes: Vec<String> = grants.mounts.iter().map(|m| m.volume_arg()).collect();
    if let Some(v) = cache_volume(&ctx.config.cache_dir, &ctx.job.project_path)? {
        volumes.push(v);
    }
    // `pogo exec` only: sources, cache and artifacts dirs (see executor::local).
    let local = super::local::volumes(&ctx.env).map_err(Failure::system)?;
    match runner_binary(ctx.config.runner_binary.as_deref(), &ctx.env)? {
        Some(bin) => volumes.push(format!("{}:{RUNNER_BINARY_PATH}:ro", bin.display())),
        None if !local.is_empty() => {} // pogo exec's stages use tar, not gitlab-runner
        None => log_warning(
            "no gitlab-runner binary found on this host (PATH) and `runner_binary` is not set: \
             cache and artifact stages will be skipped; set runner_binary in the pogo config",
        ),
    }
    volumes.extend(local);
    let keep_alive = with_agent(ctx, crate::podman::detect_keep_alive());
    let agent_socket = matches!(keep_alive, KeepAlive::InitWithAgent { .. })
        .then(|| super::agent::socket_path(&ctx.config.working_dir, &ctx.job.names.key));
    let spec = JobContainer {
        name: &ctx.job.names.container,
        pod: pod.as_deref(),
        labels: &labels,
        volumes,
        extra_args: &grants.extra_args,
        keep_alive,
        image: &image,
    };
    let argv = args::job_run(&spec);
    log_info(&format!(
        "starting job container: {}",
        ctx.podman.display(&argv)
    ));
    create(ctx, Kind::Container, spec.name, &argv, None)
        .await
        .map_err(|e| Failure::system(format!("cannot start the job container: {e}")))?;

    if pod.is_some() {
        wait_for_services(ctx).await?;
    }
    if let Some(socket) = agent_socket {
        if !super::agent::wait_ready(&socket).await {
            log_info("the stage agent did not start in this image (a non-root USER?); stages use podman exec");
        }
    }
    state.succeeded(); // pogo tui: prepare finished
    Ok(())
}

/// The runner owner's `allowed_images` / `allowed_services`: a job outside them fails as a
/// build failure naming the rule (retrying cannot help).
pub fn check_allowed(
    image: &str,
    services: &[crate::executor::env::Service],
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
fn with_agent(ctx: &Context, keep_alive: KeepAlive) -> KeepAlive {
    let KeepAlive::Init(init) = &keep_alive else {
        return keep_alive;
    };
    if ctx.config.stage_runner != crate::config::StageRunner::Agent {
        return keep_alive;
    }
    let working_dir = &ctx.config.working_dir;
    let prepared = super::agent::install(working_dir).and_then(|agent| {
        let dir = super::agent::socket_dir(working_dir, &ctx.job.names.key);
        super::agent::prepare_socket_dir(&dir)?;
        Ok(agent.map(|a| (a, dir)))
    });
    match prepared {
        Ok(Some((agent, dir)))
            if !agent.display().to_string().contains([':', ','])
                && !dir.display().to_string().contains([':', ',']) =>
        {
            KeepAlive::InitWithAgent {
                init: init.clone(),
                agent: agent.display().to_string(),
                socket_dir: dir.display().to_string(),
            }
        }
        Ok(_) => keep_alive,
        Err(e) => {
            log_warning(&format!(
                "cannot set up the stage agent under {}: {e}; stages use podman exec",
                working_dir.display()
            ));
            keep_alive
        }
    }
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

/// Make `image` available locally according to the pull policy; pull progress goes to the log.
pub async fn ensure_image(
    podman: &Podman,
    image: &str,
    policy: PullPolicy,
    auth_file: Option<&str>,
) -> Result<(), Failure> {
    let exists = || async {
        podman
            .image_exists(image)
            .await
            .map_err(|e| Failure::system(format!("cannot check for image {image}: {e}")))
    };
    match policy {
        PullPolicy::Never => {
            if exists().await? {
                return Ok(());
            }
            return Err(Failure::system(format!(
                "image {image} is not in podman's local storage and pull_policy is never: \
                 pull it as the runner's user (`podman pull {image}`) or set pull_policy: if-not-present"
            )));
        }
        PullPolicy::IfNotPresent => {
            if exists().await? {
                log_info(&format!(
                    "using local image {image} (pull_policy if-not-present)"
                ));
                return Ok(());
            }
        }
        PullPolicy::Always => {}
    }
    log_info(&format!("pulling image {image} (pull_policy {policy})"));
    let argv = args::pull(image, auth_file);
    let (ok, tail) = podman
        .run_tee(&argv)
        .await
        .map_err(|e| Failure::system(format!("cannot pull {image}: {e}")))?;
    if ok {
        return Ok(());
    }
    let auth = match auth_file {
        Some(f) => format!("with auth_file {f}"),
        None => "without credentials (no auth_file configured)".to_string(),
    };
    // podman's final "Error: …" line says it all (its retries were shown above)
    let tail = tail
        .rsplit("; ")
        .find_map(|l| l.strip_prefix("Error: "))
        .map(str::to_string)
        .unwrap_or(tail);
    Err(Failure::system(format!(
        "pulling image {image} failed {auth}: {tail}; check the image name, that the registry is reachable, and the credentials"
    )))
}

async fn start_services(ctx: &Context, labels: &[(String, String)]) -> Result<String, Failure> {
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
    create(ctx, Kind::Pod, &pod, &argv, None)
        .await
        .map_err(|e| Failure::system(format!("cannot create the job's pod: {e}")))?;
    for (i, svc) in ctx.job.services.iter().enumerate() {
        let name = ctx.job.names.service(i);
        let argv = args::service_run(&name, &pod, labels, svc);
        log_info(&format!(
            "starting service {}: {}",
            svc.name,
            ctx.podman.display(&argv)
        ));
        create(ctx, Kind::Container, &name, &argv, svc.variables.as_ref())
            .await
            .map_err(|e| Failure::system(format!("cannot start service {}: {e}", svc.name)))?;
    }
    Ok(pod)
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
    envs: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<(), crate::podman::PodmanError> {
    let attempt = || async {
        let mut cmd = ctx.podman.command(argv);
        if let Some(vars) = envs {
            cmd.envs(vars);
        }
        let out = ctx.podman.output_of(cmd).await?;
        ctx.podman.check(argv, out)
    };
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

/// Wait until every exposed TCP port of every service accepts connections (is listening in
/// the pod's network namespace), or fail with the service's log.
async fn wait_for_services(ctx: &Context) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(ctx.config.services_wait_timeout);
    for (i, svc) in ctx.job.services.iter().enumerate() {
        let name = ctx.job.names.service(i);
        let inspect: Vec<ImageInspect> = ctx
            .podman
            .json(&args::inspect_image(&svc.name))
            .await
            .map_err(|e| {
                Failure::system(format!("cannot inspect service image {}: {e}", svc.name))
            })?;
        let ports = exposed_tcp_ports(inspect.first());
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

async fn service_failure(ctx: &Context, container: &str, image: &str, message: &str) -> Failure {
    let logs = ctx
        .podman
        .output(&args::logs(container))
        .await
        .map(|o| format!("{}{}", o.stdout, o.stderr))
        .unwrap_or_default();
    eprintln!(
        "--- last log lines of service {image} ---\n{}\n---",
        logs.trim_end()
    );
    Failure::system(message)
}

fn exposed_tcp_ports(image: Option<&ImageInspect>) -> Vec<u16> {
    let mut ports: Vec<u16> = image
        .and_then(|i| i.config.exposed_ports.as_ref())
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

/// `<cache_dir>/<project path>` on the host, mounted at the same path (gitlab-runner's cache
/// scripts use the cache_dir pogo reported).
fn cache_volume(cache_dir: &Path, project_path: &str) -> Result<Option<String>, Failure> {
    if project_path.is_empty() {
        return Ok(None);
    }
    let valid = project_path.split('/').all(|c| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
    });
    if !valid {
        return Err(Failure::system(format!(
            "project path {:?} is not a GitLab project path; refusing to use it as a cache directory",
            project_path
        )));
    }
    let dir = cache_dir.join(project_path);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::system(format!(
            "cannot create the cache directory {}: {e}; check cache_dir in the pogo config",
            dir.display()
        ))
    })?;
    let d = dir.display().to_string();
    if d.contains([':', ',']) {
        return Err(Failure::system(format!(
            "cache directory {d} contains ':' or ',', which podman cannot mount; change cache_dir"
        )));
    }
    Ok(Some(format!("{d}:{d}")))
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

    #[test]
    fn project_paths_that_escape_the_cache_dir_are_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(cache_volume(d.path(), "../etc").is_err());
        assert!(cache_volume(d.path(), "a//b").is_err());
        let v = cache_volume(d.path(), "group/project").unwrap().unwrap();
        let p = d.path().join("group/project").display().to_string();
        assert_eq!(v, format!("{p}:{p}"));
        assert!(d.path().join("group/project").is_dir());
    }
}
