//! From a fresh machine to a runner taking jobs:
//!
//! * `pogo register` / `pogo unregister` ([`register`]): GitLab's runner API and
//!   gitlab-runner's `config.toml` ([`runner_config`]).
//! * `pogo install` ([`install`]): the systemd user unit that runs `gitlab-runner run`.
//! * `pogo doctor` ([`doctor`]): checks of the machine, each with its fix.
//! * `pogo completions SHELL` and `pogo man`: see `crate::cli`.
//!
//! The library functions here return data (checks, plans, outcomes) so the TUI can show the
//! same things the commands print.

pub mod doctor;
pub mod install;
pub mod register;
pub mod runner_config;
pub mod space;
pub mod trial;

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, `fsync`, then
/// `rename` over `path` (and `fsync` of the directory). Readers see the old or the new file,
/// never a half-written one. The file gets `mode`; an existing file's owner is kept when we
/// may (root editing another user's file). A symlink at `path` is followed.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let how = crate::fsutil::Replace {
        mode: Some(mode),
        durable: true,
        keep_owner: true,
    };
    crate::fsutil::replace(&target, bytes, how)
}

/// Creates `dir` (and parents) with `mode` for the directories pogo creates.
pub fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
}

/// The user pogo runs as.
#[derive(Debug, Clone)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// `$HOME`, else the passwd entry's home.
    pub home: PathBuf,
}

impl UserInfo {
    pub fn current(env: &HashMap<String, String>) -> Self {
        let uid = nix::unistd::getuid();
        let pw = nix::unistd::User::from_uid(uid).ok().flatten();
        let name = pw
            .as_ref()
            .map(|u| u.name.clone())
            .or_else(|| env.get("USER").cloned())
            .unwrap_or_else(|| uid.to_string());
        let home = env
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| pw.as_ref().map(|u| u.dir.clone()))
            .unwrap_or_else(|| PathBuf::from("/"));
        UserInfo {
            name,
            uid: uid.as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            home,
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// The environment as a map (what `config::load` takes).
pub fn env_map() -> HashMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Finds `program` in `$PATH` (as a shell would), or checks it when it has a slash.
pub fn find_in_path(program: &str, env: &HashMap<String, String>) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    let path = env
        .get("PATH")
        .cloned()
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_exec(p))
}

/// `now` as RFC 3339 UTC (`2024-05-01T10:00:00Z`).
pub fn rfc3339_utc(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now).to_string()
}

/// A token for output: its kind, never its value.
pub fn redact(token: &str) -> String {
    if token.starts_with("glrt-") {
        "glrt-<redacted>".to_string()
    } else {
        "<redacted>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn redact_never_shows_the_token() {
        assert_eq!(redact("glrt-abcdef"), "glrt-<redacted>");
        assert_eq!(redact("GR1348941abc"), "<redacted>");
    }

    #[test]
    fn atomic_write_replaces_the_file_with_mode_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = std::fs::metadata(&p).unwrap().ino();
        atomic_write(&p, b"new", 0o600).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_ne!(m.ino(), before, "written in place instead of renamed");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn atomic_write_into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope/config.toml");
        assert!(atomic_write(&p, b"x", 0o600).is_err());
        assert!(!p.exists());
    }
}
