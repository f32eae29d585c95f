//! What every job of a run is set up with: the environment the phases get (the caller's,
//! minus what belongs to one job) and the local stages with their mounts (the sources, the
//! cache and the artifacts of `.pogo/`).

use std::path::{Path, PathBuf};

use crate::driver::{LocalDir, LocalStages};
use crate::executor::local::{LocalMount, LOCAL_MOUNTS};

use super::project::{self, Sources, Store};
use super::{ExecError, CONTAINER_DIR};

/// Environment variables of the caller that must not reach the phases: they belong to
/// the job the phases are run for (set by `pogo exec` or `pogo config`).
const JOB_SCOPED_ENV: &[&str] = &[
    "POGO_JOB_TAGS",
    "POGO_JOB_KEY",
    "POGO_JOB_CONTAINER",
    "POGO_JOB_POD",
    LOCAL_MOUNTS,
];

/// The environment the phases get, like gitlab-runner's own: the caller's, minus what
/// belongs to one job, with `$POGO_CONFIG` made absolute (the phases run in a temp dir).
pub(crate) fn runner_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| !k.starts_with("CUSTOM_ENV_") && !JOB_SCOPED_ENV.contains(&k.as_str()))
        .map(|(k, v)| {
            if k == "POGO_CONFIG" && !v.is_empty() {
                (
                    k.clone(),
                    project::absolute(Path::new(v)).display().to_string(),
                )
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// Removes this run's directory (its sources) however `pogo exec` ends.
pub(super) struct RemoveOnDrop(pub(super) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The local stages and the mounts that make them work: the sources read-only, `.pogo/cache`
/// and `.pogo/artifacts` writable, under [`CONTAINER_DIR`] in the job container.
pub(super) fn local_setup(
    store: &Store,
    sources: &Sources,
) -> Result<(LocalStages, String), ExecError> {
    let dir = |host: PathBuf, name: &str| LocalDir {
        host: host.display().to_string(),
        container: format!("{CONTAINER_DIR}/{name}"),
    };
    let stages = LocalStages {
        sources_tar: Some(format!("{CONTAINER_DIR}/sources.tar")),
        sources_note: sources.note.clone(),
        cache: dir(store.cache_dir(), "cache"),
        artifacts: dir(store.artifacts_dir(), "artifacts"),
    };
    let mounts = vec![
        LocalMount {
            host: sources.tar.display().to_string(),
            container: format!("{CONTAINER_DIR}/sources.tar"),
            readonly: true,
        },
        LocalMount {
            host: stages.cache.host.clone(),
            container: stages.cache.container.clone(),
            readonly: false,
        },
        LocalMount {
            host: stages.artifacts.host.clone(),
            container: stages.artifacts.container.clone(),
            readonly: false,
        },
    ];
    let json = serde_json::to_string(&mounts).map_err(|e| ExecError::Store(e.to_string()))?;
    // The same check prepare makes, before any job starts.
    crate::executor::local::parse(&json).map_err(ExecError::Store)?;
    Ok((stages, json))
}
