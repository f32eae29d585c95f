//! pogo's private per-job directory on the host, `<working_dir>/jobdata/<job key>/` (mode
//! 0700, never mounted into a container): what `prepare` decided and `run` needs
//! (`job.json`: how to start a stage's shell, the helper container) and the job's merged
//! registry auth file (`auth.json`, mode 0600). `cleanup` removes it first thing; `pogo gc`
//! removes those of abandoned jobs.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const JOB_FILE: &str = "job.json";
/// Present when prepare made the job its own builds volume (cleanup removes it, found by label).
pub const BUILDS_VOLUME_MARK: &str = "builds-volume";
pub const AUTH_FILE: &str = "auth.json";

/// What `run` needs to know about the containers `prepare` started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    /// Put before the shell of every stage in the job container: the job's `image:
    /// entrypoint`, else the image's own ENTRYPOINT (empty: none), as the Docker executor
    /// starts each stage through it.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The helper container for the predefined stages, when `helper_image` is set.
    #[serde(default)]
    pub helper: Option<HelperFile>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperFile {
    pub container: String,
    /// The helper image's own ENTRYPOINT, put before the shell like the job's.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The key its stage agent's socket directory is named after (`None`: `podman exec`).
    #[serde(default)]
    pub agent_key: Option<String>,
}

/// `<working_dir>/jobdata/<key>`.
pub fn dir(working_dir: &Path, key: &str) -> PathBuf {
    working_dir.join("jobdata").join(key)
}

/// Create the job's directory (0700, also its parent), emptied of an earlier attempt's files.
pub fn create(working_dir: &Path, key: &str) -> std::io::Result<PathBuf> {
    let parent = working_dir.join("jobdata");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)?;
    let d = dir(working_dir, key);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::DirBuilder::new().mode(0o700).create(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
    Ok(d)
}

/// Write `name` in the job's directory atomically with mode 0600.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    crate::fsutil::replace(
        &path,
        bytes,
        crate::fsutil::Replace {
            mode: Some(0o600),
            durable: true,
            keep_owner: false,
        },
    )?;
    Ok(path)
}

pub fn write_job_file(dir: &Path, job: &JobFile) -> std::io::Result<()> {
    let json = serde_json::to_vec(job).map_err(std::io::Error::other)?;
    write_private(dir, JOB_FILE, &json).map(|_| ())
}

/// The job file `prepare` wrote; `None` when there is none (a job prepared by an older
/// pogo: stages then start the shell directly, as before).
pub fn read_job_file(working_dir: &Path, key: &str) -> Result<Option<JobFile>, String> {
    let path = dir(working_dir, key).join(JOB_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is damaged: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Remove the job's directory (its auth file included). Idempotent.
pub fn remove(working_dir: &Path, key: &str) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir(working_dir, key)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_directory_is_private_and_files_round_trip() {
        let w = tempfile::tempdir().unwrap();
        let d = create(w.path(), "pogo-r-1-0").unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let job = JobFile {
            entrypoint: vec!["/entry".into(), "--".into()],
            helper: Some(HelperFile {
                container: "c".into(),
                entrypoint: vec![],
                agent_key: Some("k-helper".into()),
            }),
        };
        write_job_file(&d, &job).unwrap();
        let auth = write_private(&d, AUTH_FILE, b"{}").unwrap();
        assert_eq!(
            std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_job_file(w.path(), "pogo-r-1-0").unwrap(), Some(job));
        // a second attempt starts empty
        create(w.path(), "pogo-r-1-0").unwrap();
        assert_eq!(read_job_file(w.path(), "pogo-r-1-0").unwrap(), None);
        remove(w.path(), "pogo-r-1-0").unwrap();
        remove(w.path(), "pogo-r-1-0").unwrap();
        assert!(!d.exists());
    }
}
