//! `pogo gc`'s `max_cache_size`: the job caches under `cache_dir` (gitlab-runner's cache
//! archives, one directory per project) kept within a limit, the least recently used file
//! first. A file's last use is the later of its modification and access times (an archive is
//! read when a job restores it); one used in the last [`BUSY`] is never removed (a job may be
//! writing or reading it). Nothing outside `cache_dir` is touched; links are not followed.

use crate::fsutil::human;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cache file used this recently stays, whatever the limit.
pub const BUSY: Duration = Duration::from_secs(15 * 60);

/// At most this many entries are looked at (a bound on gc's time).
const MAX_ENTRIES: usize = 1_000_000;

/// One file under `cache_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFile {
    pub path: PathBuf,
    pub size: u64,
    /// Unix seconds.
    pub last_use: u64,
}

/// The regular files under `cache_dir`.
pub fn files(cache_dir: &Path) -> Vec<CacheFile> {
    let mut out = Vec::new();
    crate::fsutil::walk(cache_dir, MAX_ENTRIES, |path, meta| {
        if meta.is_file() {
            out.push(CacheFile {
                path: path.to_path_buf(),
                size: meta.len(),
                last_use: u64::try_from(meta.mtime().max(meta.atime())).unwrap_or(0),
            });
        }
    });
    out
}

/// The total, and the files to remove so that the rest take at most `limit` bytes: least
/// recently used first, none used within `BUSY` of `now`. `limit` 0: no limit. Pure.
pub fn plan(files: &[CacheFile], limit: u64, now: u64) -> (u64, Vec<&CacheFile>) {
    let total: u64 = files.iter().map(|f| f.size).sum();
    if limit == 0 || total <= limit {
        return (total, Vec::new());
    }
    let mut by_use: Vec<&CacheFile> = files
        .iter()
        .filter(|f| now.saturating_sub(f.last_use) >= BUSY.as_secs())
        .collect();
    by_use.sort_by(|a, b| {
        a.last_use
            .cmp(&b.last_use)
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut left = total;
    let mut out = Vec::new();
    for f in by_use {
        if left <= limit {
            break;
        }
        left = left.saturating_sub(f.size);
        out.push(f);
    }
    (total, out)
}

/// Keep the caches under `cache_dir` within `limit` bytes; the number of errors.
pub fn enforce(cache_dir: &Path, limit: u64, now: u64, dry_run: bool, quiet: bool) -> usize {
    if limit == 0 {
        return 0;
    }
    let all = files(cache_dir);
    let (total, removals) = plan(&all, limit, now);
    let mut errors = 0;
    for f in removals {
        let ago = humantime::format_duration(Duration::from_secs(now.saturating_sub(f.last_use)));
        let what = format!(
            "cache {} ({}, last used {ago} ago): the caches take {}, over max_cache_size {}",
            f.path.display(),
            human(f.size),
            human(total),
            human(limit)
        );
        if dry_run {
            println!("would remove {what}");
            continue;
        }
        match std::fs::remove_file(&f.path) {
            Ok(()) => {
                remove_empty_parents(cache_dir, &f.path);
                if !quiet {
                    println!("removed {what}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                errors += 1;
                eprintln!("pogo gc: could not remove {}: {e}", f.path.display());
            }
        }
    }
    errors
}

/// Remove the directories that held `file` while they are empty, up to (not) `cache_dir`.
fn remove_empty_parents(cache_dir: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == cache_dir || !d.starts_with(cache_dir) || std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, size: u64, last_use: u64) -> CacheFile {
        CacheFile {
            path: PathBuf::from(name),
            size,
            last_use,
        }
    }

    #[test]
    fn the_least_recently_used_caches_go_until_the_rest_fits_but_never_a_busy_one() {
        let now = 100_000;
        let files = vec![
            f("a", 40, 1_000),
            f("b", 40, 3_000),
            f("c", 40, 2_000),
            f("busy", 40, now - 60),
        ];
        let (total, out) = plan(&files, 90, now);
        assert_eq!(total, 160);
        let names: Vec<&str> = out.iter().map(|f| f.path.to_str().unwrap()).collect();
        assert_eq!(names, ["a", "c"], "oldest use first, until 80 <= 90");
        let (_, out) = plan(&files, 10, now);
        assert!(
            !out.iter().any(|f| f.path == Path::new("busy")),
            "a cache in use stays"
        );
        assert!(plan(&files, 0, now).1.is_empty(), "0: no limit");
        assert!(plan(&files, 160, now).1.is_empty());
    }

    #[test]
    fn gc_removes_old_caches_and_their_empty_directories_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        let old = cache.join("group/project/key-old/cache.zip");
        let new = cache.join("group/other/key-new/cache.zip");
        for p in [&old, &new] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, vec![0u8; 4096]).unwrap();
        }
        let outside = d.path().join("outside");
        std::fs::write(&outside, vec![0u8; 4096]).unwrap();
        std::os::unix::fs::symlink(&outside, cache.join("group/link")).unwrap();
        let all = files(&cache);
        let used = |p: &Path| all.iter().find(|f| f.path == p).unwrap().last_use;
        // an hour on, "old" last used an hour before "new"
        let now = used(&new) + 3_600;
        let set = |p: &Path, t: u64| {
            let t = std::time::UNIX_EPOCH + Duration::from_secs(t);
            let f = std::fs::File::options().write(true).open(p).unwrap();
            f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
                .unwrap();
        };
        set(&old, now - 7_200);
        set(&new, now - 3_600);
        assert_eq!(enforce(&cache, 5_000, now, true, true), 0);
        assert!(old.exists(), "a dry run removes nothing");
        assert_eq!(enforce(&cache, 5_000, now, false, true), 0);
        assert!(!old.exists());
        assert!(
            !cache.join("group/project").exists(),
            "its empty directories go"
        );
        assert!(new.exists());
        assert!(outside.exists(), "a link is not followed");
        assert!(cache.exists());
    }
}
