//! `pogo cleanup`: remove everything labelled for this job (pod, containers, volumes).
//! Idempotent; never touches anything without pogo's job label, never prunes.

use super::{Context, Failure};
use crate::podman::{args, NamedEntry, Podman};

/// Remove the job's pod, containers and volumes, found by the `io.pogo.job-key` label.
/// Returns what went wrong (empty when everything is gone).
pub async fn remove_job(podman: &Podman, key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    match podman.json::<Vec<NamedEntry>>(&args::pod_list(key)).await {
        Ok(pods) if !pods.is_empty() => {
            let names: Vec<String> = pods.into_iter().map(|p| p.name).collect();
            if let Err(e) = podman.run(&args::pod_rm(&names)).await {
                errors.push(e.to_string());
            }
        }
        Ok(_) => {}
        Err(e) => errors.push(e.to_string()),
    }
    if let Err(e) = podman.run(&args::containers_rm(key)).await {
        errors.push(e.to_string());
    }
    match podman
        .json::<Vec<NamedEntry>>(&args::volume_list(key))
        .await
    {
        Ok(vols) if !vols.is_empty() => {
            let names: Vec<String> = vols.into_iter().map(|v| v.name).collect();
            if let Err(e) = podman.run(&args::volume_rm(&names)).await {
                errors.push(e.to_string());
            }
        }
        Ok(_) => {}
        Err(e) => errors.push(e.to_string()),
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
