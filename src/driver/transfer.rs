//! How a job's files come and go: its sources, its cache and its artifacts, moved by git and
//! the `gitlab-runner` helper binary as gitlab-runner does it ([`GitlabRunner`]), or by local
//! `tar` for `pogo exec` ([`LocalStages`], see [`super::local`]). The stage loop asks a
//! [`Transfer`] for these stages' scripts; when and in which order they run is its own.

use super::job::{Artifacts, Dependency, Job};
use super::script::{CacheArchive, GitSource, ScriptInfo, Writer};
use super::{Driver, LocalStages};

/// The scripts of the stages that move a job's files in and out of its project directory.
/// Each gets the stage's [`ScriptInfo`] (variables, project directory) and what the stage
/// moves; the stage loop has already decided that the stage runs.
pub(super) trait Transfer {
    /// `get_sources` for `GIT_STRATEGY` `git_strategy`.
    fn get_sources(&self, info: &ScriptInfo<'_>, job: &Job, git_strategy: &str) -> Writer;
    /// `restore_cache`: `caches` extracted.
    fn restore_cache(&self, info: &ScriptInfo<'_>, caches: &[CacheArchive]) -> Writer;
    /// `download_artifacts`: the artifacts of `deps` extracted.
    fn download_artifacts(&self, info: &ScriptInfo<'_>, job: &Job, deps: &[&Dependency]) -> Writer;
    /// `archive_cache` / `archive_cache_on_failure`: `caches` saved.
    fn archive_cache(&self, info: &ScriptInfo<'_>, caches: &[CacheArchive]) -> Writer;
    /// `upload_artifacts_on_success` / `upload_artifacts_on_failure`: `artifacts` saved.
    fn upload_artifacts(&self, info: &ScriptInfo<'_>, job: &Job, artifacts: &Artifacts) -> Writer;
}

impl Driver {
    /// How this driver's jobs move their files: [`Driver::local`]'s `tar` stages when it is
    /// set, gitlab-runner's otherwise.
    pub(super) fn transfer(&self) -> &dyn Transfer {
        match &self.local {
            Some(local) => local,
            None => &GitlabRunner,
        }
    }
}

/// gitlab-runner's way: the sources fetched with git (when the job names a repository the
/// imitation can fetch from), the cache and artifacts moved by the `gitlab-runner` helper
/// binary in the job container (`cache-extractor`, `artifacts-downloader`, …).
#[derive(Debug, Clone, Copy)]
pub(super) struct GitlabRunner;

impl Transfer for GitlabRunner {
    fn get_sources(&self, info: &ScriptInfo<'_>, job: &Job, git_strategy: &str) -> Writer {
        match (&job.repo_url, git_strategy) {
            (Some(url), "fetch" | "clone") => {
                let refspecs = job.refspecs();
                info.get_sources_git(
                    git_strategy,
                    &GitSource {
                        url,
                        git_ref: &job.git_ref,
                        sha: &job.sha,
                        refspecs: &refspecs,
                        depth: job.git_depth(),
                    },
                )
            }
            _ => info.get_sources(git_strategy),
        }
    }

    fn restore_cache(&self, info: &ScriptInfo<'_>, caches: &[CacheArchive]) -> Writer {
        info.restore_cache(caches)
    }

    fn download_artifacts(&self, info: &ScriptInfo<'_>, job: &Job, deps: &[&Dependency]) -> Writer {
        info.download_artifacts(deps, &job.server_url())
    }

    fn archive_cache(&self, info: &ScriptInfo<'_>, caches: &[CacheArchive]) -> Writer {
        info.archive_cache(caches)
    }

    fn upload_artifacts(&self, info: &ScriptInfo<'_>, job: &Job, artifacts: &Artifacts) -> Writer {
        info.upload_artifacts(artifacts, &job.server_url(), &job.token, job.id)
    }
}

/// `pogo exec`'s way: `tar` against the host directories of [`LocalStages`] (see
/// [`super::local`]).
impl Transfer for LocalStages {
    fn get_sources(&self, info: &ScriptInfo<'_>, _job: &Job, git_strategy: &str) -> Writer {
        info.local_get_sources(git_strategy, self)
    }

    fn restore_cache(&self, info: &ScriptInfo<'_>, caches: &[CacheArchive]) -> Writer {
        info.local_restore_cache(caches, self)
    }

    fn download_artifacts(
        &self,
        info: &ScriptInfo<'_>,
        _job: &Job,
        deps: &[&Dependency],
    ) -> Writer {
        info.local_download_artifacts(deps, self)
    }

    fn archive_cache(&self, info: &ScriptInfo<'_>, caches: &[CacheArchive]) -> Writer {
        info.local_archive_cache(caches, self)
    }

    fn upload_artifacts(&self, info: &ScriptInfo<'_>, job: &Job, artifacts: &Artifacts) -> Writer {
        info.local_upload_artifacts(artifacts, &job.name, self)
    }
}
