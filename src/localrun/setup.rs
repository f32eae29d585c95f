//! What every job of a run is set up with: the environment the phases get (the caller's,
//! minus what belongs to one job) and the pogo config they read, the sources, the local
//! stages with their mounts (the sources, the cache and the artifacts of `.pogo/`), and the
//! driver that runs the phases.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::driver::{Driver, LocalDir, LocalStages};
use crate::executor::local::{LocalMount, LOCAL_MOUNTS};

use super::project::{self, Project, Sources, Store};
use super::{say, ExecError, Out, CONTAINER_DIR};

/// `CI_RUNNER_SHORT_TOKEN` of local jobs (part of the container names).
const LOCAL_RUNNER: &str = "local";
/// Environment variables of the caller that must not reach the phases: they belong to
/// the job the phases are run for (set by `pogo exec` or `pogo config`).
const JOB_SCOPED_ENV: &[&str] = &[
    "POGO_JOB_TAGS",
    "POGO_JOB_KEY",
    "POGO_JOB_CONTAINER",
    "POGO_JOB_POD",
    LOCAL_MOUNTS,
];

/// Environment variables, in order.
pub(super) type Env = Vec<(String, String)>;

/// The environment the phases get, like gitlab-runner's own: the caller's, minus what
/// belongs to one job, with `$POGO_CONFIG` made absolute (the phases run in a temp dir).
pub(crate) fn runner_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| !k.starts_with("CUSTOM_ENV_") && !JOB_SCOPED_ENV.contains(&k.as_str()))
        .map(|(k, v)| {
            if k == "POGO_CONFIG" && !v.is_empty() {
                (
                    k.clone(),
                    crate::fsutil::absolute(Path::new(v)).display().to_string(),
                )
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// The environment the phases get and the pogo config they read (made absolute), checked
/// as `pogo config` checks it, before any job starts.
pub(super) fn runner_setup(config: Option<&Path>) -> Result<(Env, Option<PathBuf>), ExecError> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let env = runner_env(&env);
    let config = config.map(crate::fsutil::absolute);
    let env_map: HashMap<String, String> = env.iter().cloned().collect();
    crate::config::load(config.as_deref(), &env_map)
        .map_err(|e| ExecError::Config(e.to_string()))?;
    Ok((env, config))
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

/// The sources of the run, packed into `run_dir`; says on `out` what they are and where the
/// cache and the artifacts are kept.
pub(super) fn run_sources(
    project: &Project,
    store: &Store,
    dirty: bool,
    run_dir: &Path,
    out: &Out,
) -> Result<Sources, ExecError> {
    let sources = project::pack_sources(project, dirty, &run_dir.join("sources.tar"))
        .map_err(ExecError::Sources)?;
    say(out, &format!("pogo exec: sources: {}\n", sources.note));
    if sources.left_out > 0 {
        say(
            out,
            &format!(
                "pogo exec: {} uncommitted change(s) in {} are not in the sources (--dirty takes them)\n",
                sources.left_out,
                project.dir.display()
            ),
        );
    }
    say(
        out,
        &format!(
            "pogo exec: cache and artifacts in {} (pogo exec --clean removes them)\n",
            store.root.display()
        ),
    );
    Ok(sources)
}

/// The driver that runs the phases: `pogo` with the run's environment and pogo config, as
/// the local runner, with the local stages.
pub(super) fn phase_driver(
    pogo: &Path,
    env: Env,
    config: Option<&Path>,
    stages: LocalStages,
) -> Driver {
    let mut driver = Driver::new(pogo);
    driver.env = env;
    if let Some(c) = config {
        driver.pogo_args = vec!["--config".into(), c.display().to_string()];
    }
    driver.runner_short_token = LOCAL_RUNNER.into();
    // Two `pogo exec` runs on one machine must not share container names.
    driver.concurrent_id = std::process::id();
    driver.local = Some(stages);
    driver
}
