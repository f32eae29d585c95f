//! Service containers: started in the job's pod under their aliases, and waited for until
//! their ports listen (or their last lines explain why not).

use super::super::response::DockerOptions;
use super::super::{jobdata, log_info, Context, Failure, OrFailure};
use super::*;
use crate::podman::args;
use std::path::Path;
use std::time::{Duration, Instant};

/// What prepare worked out for the job's services: each one's variables and image options,
/// and the arguments the job's tags give every service container.
pub(super) struct Services<'a> {
    pub(super) envs: &'a [args::ServiceEnv],
    pub(super) docker: &'a [DockerOptions],
    pub(super) extra_args: &'a [String],
}

pub(super) async fn start_services(
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
                    .or_system(|| {
                        format!(
                            "cannot write the variables of service {} under {}",
                            svc.name,
                            job_dir.display()
                        )
                    })?,
            ),
            None => None,
        };
        let mut secrets = Vec::with_capacity(env.secrets.len());
        for (n, (var, value)) in env.secrets.iter().enumerate() {
            let secret = args::service_secret_name(&name, n);
            create_secret(ctx, &secret, labels, value.as_bytes())
                .await
                .or_system(|| {
                    format!(
                        "cannot hand the variable {var} of service {} to podman",
                        svc.name
                    )
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

/// Wait until each service's ports (`ports[i]`: its readiness ports, from the job or the
/// image) accept connections (are listening in the pod's network namespace), or fail with the
/// service's log.
pub(super) async fn wait_for_services(ctx: &Context, ports: &[Vec<u16>]) -> Result<(), Failure> {
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

/// What a container wrote (stdout, then stderr); empty when podman cannot say.
pub(in crate::executor) async fn container_logs(ctx: &Context, container: &str) -> String {
    ctx.podman
        .output(&args::logs(container))
        .await
        .map(|o| format!("{}{}", o.stdout, o.stderr))
        .unwrap_or_default()
}

pub(super) async fn service_failure(
    ctx: &Context,
    container: &str,
    image: &str,
    message: &str,
) -> Failure {
    let logs = container_logs(ctx, container).await;
    eprintln!(
        "--- last log lines of service {image} ---\n{}\n---",
        logs.trim_end()
    );
    Failure::system(message)
}

pub(super) fn exposed_tcp_ports(image: &InspectedImage) -> Vec<u16> {
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

pub(super) fn listening_ports_of(pid: i64) -> Vec<u16> {
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
