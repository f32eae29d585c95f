//! Pure resolution of what a job with a given set of tags gets: mounts and podman arguments.

use super::{Config, Mount};

/// What the configuration grants a job with particular tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants<'a> {
    pub mounts: Vec<&'a Mount>,
    /// Extra podman arguments, in the configuration's tag order, already split.
    pub extra_args: Vec<String>,
    /// The same for the job's service containers (the entries' `services:`).
    pub service_args: Vec<String>,
    /// Container paths where the job gets its project's kept volume (`project_volume:`),
    /// each once, in the configuration's tag order.
    pub project_volumes: Vec<String>,
}

/// Mounts whose tags match (or that have no tags) and the extra arguments of every job tag,
/// both limited to entries whose `projects` globs allow the job's project.
pub fn grants<'a>(config: &'a Config, job_tags: &[String], project: &str) -> Grants<'a> {
    let mounts = config
        .mounts
        .iter()
        .filter(|m| m.applies_to(job_tags, project))
        .collect();
    let granted = || {
        config
            .extra_arguments
            .iter()
            .filter(|e| e.applies_to(job_tags, project))
    };
    let extra_args = granted().flat_map(|e| e.args.iter().cloned()).collect();
    let service_args = granted()
        .flat_map(|e| e.service_args.iter().cloned())
        .collect();
    let mut project_volumes: Vec<String> = Vec::new();
    for path in granted().filter_map(|e| e.project_volume.clone()) {
        if !project_volumes.contains(&path) {
            project_volumes.push(path);
        }
    }
    Grants {
        mounts,
        extra_args,
        service_args,
        project_volumes,
    }
}
