//! Replacing a file atomically: pogo's one way to write a file others read (configs, job
//! state records, the job's private files). Readers see the old file or the new one, never a
//! mix; a failed write (a full disk) leaves no temporary file behind. Also how pogo writes a
//! size for people ([`human`]) and a path made absolute ([`absolute`]).

use std::io::Write;
use std::path::{Path, PathBuf};

/// How [`replace`] writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replace {
    /// The new file's mode; `None` keeps the old file's permissions (0600 when there is none).
    pub mode: Option<u32>,
    /// Flush the file and the rename to disk before returning (configs, credentials); off for
    /// records rewritten on every stage.
    pub durable: bool,
    /// Give the new file the old file's owner when pogo runs as root (root editing another
    /// user's gitlab-runner config or systemd unit).
    pub keep_owner: bool,
}

/// Write `bytes` to a new file `.NAME.tmp-<pid>-<n>` next to `path` (created exclusively,
/// mode 0600) and rename it over `path`. The temporary file is removed when anything fails.
pub fn replace(path: &Path, bytes: &[u8], how: Replace) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let (tmp, mut file) = tempfile_in(dir, &name)?;
    // the file being replaced, if there is one: its owner and permissions may carry over
    let old = std::fs::metadata(path).ok();
    let result = (|| {
        if let Some(meta) = old.as_ref().filter(|_| how.keep_owner) {
            if nix::unistd::geteuid().is_root() {
                use std::os::unix::fs::MetadataExt;
                nix::unistd::fchown(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    Some(nix::unistd::Uid::from_raw(meta.uid())),
                    Some(nix::unistd::Gid::from_raw(meta.gid())),
                )
                .map_err(std::io::Error::from)?;
            }
        }
        file.write_all(bytes)?;
        match (how.mode, &old) {
            (Some(mode), _) => file.set_permissions(std::fs::Permissions::from_mode(mode))?,
            (None, Some(meta)) => file.set_permissions(meta.permissions())?,
            (None, None) => {}
        }
        if how.durable {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if how.durable {
            // make the rename itself durable
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file `.NAME.tmp-<pid>-<n>` in `dir`, created exclusively (mode 0600).
fn tempfile_in(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Open `path` for reading and writing as a lock file (mode 0600 when `create` makes it; never
/// truncated: it may hold what its holder wrote).
pub fn open_lock_file(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Visit every entry under `dir` (not following symbolic links) with its own metadata,
/// directories before what they hold, stopping after `max_entries`; whether it saw them all.
pub fn walk(
    dir: &Path,
    max_entries: usize,
    mut visit: impl FnMut(&Path, &std::fs::Metadata),
) -> bool {
    let mut seen = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > max_entries {
                return false;
            }
            let path = e.path();
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            visit(&path, &meta);
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    true
}

/// `1.5 GiB`, `312 MiB`, `48 KiB`, `12 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_replaced_file_has_the_new_bytes_and_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        std::fs::write(&p, "old").unwrap();
        let how = Replace {
            mode: Some(0o600),
            durable: true,
            keep_owner: false,
        };
        replace(&p, b"new", how).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn root_replacing_another_users_file_keeps_its_owner_when_asked() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "old").unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            std::os::unix::fs::chown(&p, Some(4321), Some(4321)).unwrap();
        }
        let me = nix::unistd::geteuid().as_raw();
        let write = |keep_owner| {
            let how = Replace {
                mode: Some(0o600),
                durable: false,
                keep_owner,
            };
            replace(&p, b"new", how).unwrap();
            std::fs::metadata(&p).unwrap().uid()
        };
        // as root the old owner stays; as anyone else the file stays theirs
        assert_eq!(write(true), if root { 4321 } else { me });
        assert_eq!(write(false), me);
    }

    /// A write that fails half-way (a full disk; here a rename onto a directory) must not
    /// leave the temporary file behind, and the other files stay as they were.
    #[test]
    fn a_write_that_fails_leaves_no_temporary_file_and_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rec.json");
        std::fs::write(&p, "old").unwrap();
        // a directory where the file should go makes the rename fail after the write
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inner")).unwrap();
        assert!(replace(&blocked, b"x", Replace::default()).is_err());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
    }
}
