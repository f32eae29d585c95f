//! `pogo cleanup`: remove everything labelled for this job (pod, containers, volumes).
//! Idempotent; never touches anything without pogo's job label, never prunes.

use super::{Context, Failure};
use crate::podman::{args, NamedEntry, Podman};

/// Remove the job's pod, containers and volumes, found by the `io.pogo.job-key` label.
/// The three look-ups run at once (each podman call costs tens of milliseconds).
/// Returns what went wrong (empty when everything is gone).
pub async fn remove_job(podman: &Podman, key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let (rm, pod_list, volume_list) = (
        args::containers_rm(key),
        args::pod_list(key),
        args::volume_list(key),
    );
    let (containers, pods, volumes) = tokio::join!(
        podman.run(&rm),
        podman.json::<Vec<NamedEntry>>(&pod_list),
        podman.json::<Vec<NamedEntry>>(&volume_list),
    );
    if let Err(e) = containers {
        errors.push(e.to_string());
    }
    let pods: Vec<String> = pods
        .map_err(|e| errors.push(e.to_string()))
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let volumes: Vec<String> = volumes
        .map_err(|e| errors.push(e.to_string()))
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    // A pod goes with its remaining (infra) container; volumes only once no container uses them.
    if !pods.is_empty() {
        if let Err(e) = podman.run(&args::pod_rm(&pods)).await {
            errors.push(e.to_string());
        }
    }
    if !volumes.is_empty() {
        if let Err(e) = podman.run(&args::volume_rm(&volumes)).await {
            errors.push(e.to_string());
        }
    }
    errors
}

pub async fn run(ctx: &Context) -> Result<(), Failure> {
    let errors = remove_job(&ctx.podman, &ctx.job.names.key).await;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::system(format!(
            "cleanup of job {} incomplete: {}; remove leftovers with `podman rm -f --filter label={}={}`",
            ctx.job.job_id,
            errors.join("; "),
            super::env::LABEL_JOB_KEY,
            ctx.job.names.key
        )))
    }
}
