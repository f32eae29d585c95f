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
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, `fsync`, then
/// `rename` over `path` (and `fsync` of the directory). Readers see the old or the new file,
/// never a half-written one. The file gets `mode`; an existing file's owner is kept when we
/// may (root editing another user's file). A symlink at `path` is followed.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let target = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let owner = std::fs::metadata(&target).ok().map(|m| (m.uid(), m.gid()));
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(
            ".{file_name}.pogo-{}-{attempt}.tmp",
            std::process::id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        // The umask may have removed bits; set exactly `mode`.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            if nix::unistd::geteuid().is_root() {
                nix::unistd::fchown(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                )
                .map_err(io::Error::from)?;
            }
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

/// `path` made absolute against the current directory (without resolving symlinks).
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
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
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
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
    use std::time::Duration;

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
