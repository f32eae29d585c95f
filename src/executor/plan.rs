//! What prepare decides about the job container's mounts, as pure functions of the config and
//! of what prepare found out or set up (the image's user, a helper image, the builds volume,
//! pogo's copy of the gitlab-runner binary): prepare runs them, and `pogo tui`'s Config preview
//! runs them with placeholders for the per-job parts, so the preview is the `podman run`
//! prepare builds (issue 15's prepare plan, first step: the mounts and the builds volume).

use crate::config::resolve::Grants;
use crate::config::{Config, StageRunner};
use crate::podman::args::{self, KeepAlive};
use std::path::{Path, PathBuf};

/// Where the job's builds directory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildsVolume {
    /// A volume kept per runner + project + slot for jobs that fetch (`persistent_builds_days`,
    /// on by default): `fetch` finds the last clone.
    Persistent,
    /// A volume of the job's own: the helper container shares it, or the image's non-root
    /// user could not make the directory in the container's root-owned filesystem (podman
    /// hands the volume to that user, `:U`).
    PerJob,
    /// The job container's own filesystem.
    None,
}

/// Does the job's `get_sources` fetch into the last clone? As gitlab-runner decides it
/// (`Build.GetGitStrategy`): `GIT_STRATEGY: fetch`, or no strategy it knows and the project's
/// Git strategy setting (`allow_git_fetch`, `fetch` by GitLab's default).
pub fn fetches(git_strategy: Option<&str>, allow_git_fetch: bool) -> bool {
    match git_strategy {
        Some("fetch") => true,
        Some("clone" | "none" | "empty") => false,
        _ => allow_git_fetch,
    }
}

/// The builds directory's home for a job (`fetch`: the job fetches into the last clone, and
/// is a runner's, not `pogo exec`'s; `helper`: a helper image is configured; `non_root`: the
/// container runs as a non-root user). As the Docker executor keeps its builds volume for
/// `fetch` jobs only, `clone`, `none` and `empty` get a fresh builds directory. So does a
/// non-root job: podman hands its builds volume to its user (`:U`, all of it, at every start),
/// and git as another user (the helper's root, a later job's) refuses a clone it does not own
/// ("detected dubious ownership").
pub fn builds_volume(config: &Config, fetch: bool, helper: bool, non_root: bool) -> BuildsVolume {
    if fetch && !non_root && config.persistent_builds_days > 0 {
        BuildsVolume::Persistent
    } else if helper || non_root {
        BuildsVolume::PerJob
    } else {
        BuildsVolume::None
    }
}

/// The days `pogo gc` keeps a project volume (`project_volume:`) unused: those of the
/// persistent builds volumes, or their default when they are off.
pub fn project_volume_days(config: &Config) -> u64 {
    match config.persistent_builds_days {
        0 => crate::config::model::DEFAULT_PERSISTENT_BUILDS_DAYS,
        days => days,
    }
}

/// What prepare set up for the job's mounts besides the tag mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    /// `--volume` of the project's cache directory.
    pub cache: Option<String>,
    /// `pogo exec`'s sources, cache and artifacts directories.
    pub local: Vec<String>,
    /// The builds volume's name, where there is one.
    pub builds: Option<String>,
    /// The container runs as a non-root user (the builds volume is handed to it, `:U`).
    pub non_root: bool,
    /// The host path of pogo's copy of the gitlab-runner binary (the job container only).
    pub runner_binary: Option<String>,
    /// The project's kept volumes (`project_volume:`) as (volume name, container path), for
    /// the job container only.
    pub project_volumes: Vec<(String, String)>,
}

/// `--volume` values: the ones the helper container shares, and the job container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volumes {
    pub shared: Vec<String>,
    pub job: Vec<String>,
}

/// The job container's (and the helper's) volumes, in prepare's order: tag mounts, cache,
/// `pogo exec`'s directories, the builds volume, the project's volumes (the job container
/// only), then the gitlab-runner binary.
pub fn volumes(config: &Config, grants: &Grants, m: &Mounts) -> Volumes {
    let mut shared: Vec<String> = grants.mounts.iter().map(|g| g.volume_arg()).collect();
    shared.extend(m.cache.iter().cloned());
    shared.extend(m.local.iter().cloned());
    let mut job = shared.clone();
    if let Some(volume) = &m.builds {
        let mount = format!("{volume}:{}", config.builds_dir);
        shared.push(mount.clone());
        job.push(if m.non_root {
            format!("{mount}:U")
        } else {
            mount
        });
    }
    job.extend(m.project_volumes.iter().map(|(n, p)| format!("{n}:{p}")));
    if let Some(bin) = &m.runner_binary {
        job.push(args::own_volume(bin, args::RUNNER_BINARY_PATH, true));
    }
    Volumes { shared, job }
}

/// How the job container is kept alive: pogo's `init` (its catatonit), running the stage agent
/// when `stage_runner: agent` and prepare set it up (`agent`: the agent's binary and socket
/// directory on the host). Host paths podman cannot mount (`:` or `,`) fall back to the init
/// alone, which stages reach with `podman exec`.
pub fn keep_alive(config: &Config, init: String, agent: Option<(String, String)>) -> KeepAlive {
    match agent {
        Some((agent, socket_dir))
            if config.stage_runner == StageRunner::Agent
                && !agent.contains([':', ','])
                && !socket_dir.contains([':', ',']) =>
        {
            KeepAlive::InitWithAgent {
                init,
                agent,
                socket_dir,
            }
        }
        _ => KeepAlive::Init(init),
    }
}

/// The project's cache directory under `cache_dir`, if the job has a project path; a path
/// that is not a GitLab project path (`..`, odd characters) is refused.
pub fn cache_dir(cache_dir: &Path, project_path: &str) -> Result<Option<PathBuf>, String> {
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
        return Err(format!(
            "project path {project_path:?} is not a GitLab project path; refusing to use it as a cache directory"
        ));
    }
    Ok(Some(cache_dir.join(project_path)))
}

/// `--volume` of a cache directory, mounted at the same path inside (gitlab-runner's cache
/// scripts use the cache_dir pogo reported).
pub fn cache_volume(dir: &Path) -> Result<String, String> {
    let d = dir.display().to_string();
    if d.contains([':', ',']) {
        return Err(format!(
            "cache directory {d} contains ':' or ',', which podman cannot mount; change cache_dir"
        ));
    }
    Ok(args::own_volume(&d, &d, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::load_text(yaml, Some(Path::new("/p.yaml")), &Default::default()).unwrap()
    }

    #[test]
    fn the_builds_directory_gets_a_volume_when_it_must() {
        let off = config("working_dir: /w\npersistent_builds_days: 0\n");
        assert_eq!(builds_volume(&off, true, false, false), BuildsVolume::None);
        assert_eq!(
            builds_volume(&off, true, true, false),
            BuildsVolume::PerJob,
            "helper"
        );
        assert_eq!(
            builds_volume(&off, true, false, true),
            BuildsVolume::PerJob,
            "non-root"
        );
        let default = config("working_dir: /w\n");
        assert_eq!(
            builds_volume(&default, true, false, false),
            BuildsVolume::Persistent,
            "a fetch keeps the project's builds volume by default"
        );
        assert_eq!(
            builds_volume(&default, true, true, true),
            BuildsVolume::PerJob,
            "a non-root job's volume is handed to its user"
        );
        assert_eq!(
            builds_volume(&default, false, false, false),
            BuildsVolume::None,
            "clone, none, empty and pogo exec start afresh"
        );
        assert_eq!(
            builds_volume(&default, false, true, false),
            BuildsVolume::PerJob
        );
    }

    #[test]
    fn a_job_fetches_as_gitlab_runner_decides_it() {
        assert!(fetches(Some("fetch"), false));
        assert!(!fetches(Some("clone"), true));
        assert!(!fetches(Some("none"), true));
        assert!(!fetches(Some("empty"), true));
        // unset or unknown: the project's setting
        assert!(fetches(None, true));
        assert!(!fetches(None, false));
        assert!(fetches(Some("rsync"), true));
    }

    #[test]
    fn the_job_container_alone_gets_the_runner_binary_its_project_volumes_and_a_non_root_user_its_builds_volume(
    ) {
        let c =
            config("working_dir: /w\nbuilds_dir: /builds\nmounts:\n  - volume: /data:/data:ro\n");
        let grants = crate::config::resolve::grants(&c, &[], "group/app");
        let v = volumes(
            &c,
            &grants,
            &Mounts {
                cache: Some("/c/g/p:/c/g/p:z".into()),
                local: vec![],
                builds: Some("job-builds".into()),
                non_root: true,
                runner_binary: Some("/w/agent/gitlab-runner-1".into()),
                project_volumes: vec![("pogo-project-x".into(), "/var/lib/containers".into())],
            },
        );
        assert_eq!(
            v.shared,
            ["/data:/data:ro", "/c/g/p:/c/g/p:z", "job-builds:/builds"]
        );
        assert_eq!(
            v.job,
            [
                "/data:/data:ro",
                "/c/g/p:/c/g/p:z",
                "job-builds:/builds:U",
                "pogo-project-x:/var/lib/containers",
                "/w/agent/gitlab-runner-1:/usr/local/bin/gitlab-runner:ro,z",
            ]
        );
    }

    #[test]
    fn a_cache_dir_is_only_ever_under_cache_dir() {
        let d = Path::new("/cache");
        assert_eq!(
            cache_dir(d, "group/app").unwrap(),
            Some(PathBuf::from("/cache/group/app"))
        );
        assert_eq!(cache_dir(d, "").unwrap(), None);
        for bad in ["../etc", "g/../../x", "g//p", "g/p q"] {
            assert!(cache_dir(d, bad).is_err(), "{bad}");
        }
        assert!(cache_volume(Path::new("/a:b")).is_err());
        assert_eq!(
            cache_volume(Path::new("/cache/g/p")).unwrap(),
            "/cache/g/p:/cache/g/p:z",
            "pogo's own cache directory is relabelled for SELinux"
        );
    }
}
