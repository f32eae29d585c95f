//! The images pogo pulled for jobs, and `pogo gc`'s `max_images_size`.
//!
//! Prepare notes every image a job uses in `<working_dir>/images/<name fingerprint>` (0600):
//! the name the job gave, podman's image id, and whether pogo pulled it (an image that was in
//! the storage before pogo first used it is the owner's, and never pogo's to remove). The
//! file's modification time is the image's last use by a pogo job. Past `max_images_size`,
//! `pogo gc` removes the least recently used of the images pogo pulled, by the name it pulled
//! (`podman image rm NAME` without `--force`: an image that also has another name only loses
//! that name), never one a container uses or one matching `keep_images`.

use crate::fsutil::human;
use crate::podman::Podman;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What prepare notes of an image a job used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub id: String,
    /// pogo pulled it (at some use); an image only ever found local stays the owner's.
    pub pulled: bool,
}

fn dir(working_dir: &Path) -> PathBuf {
    working_dir.join("images")
}

fn record_path(working_dir: &Path, name: &str) -> PathBuf {
    dir(working_dir).join(crate::names::sha256_hex(&[name.as_bytes()], 12))
}

/// Note that a job used image `name` (podman's id `id`), pulled by pogo now or not. Best
/// effort: a job never fails for its note.
pub fn note_use(working_dir: &Path, name: &str, id: &str, pulled_now: bool) {
    use std::os::unix::fs::DirBuilderExt;
    if id.is_empty() {
        return;
    }
    let path = record_path(working_dir, name);
    let earlier: Option<Record> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let record = Record {
        name: name.to_string(),
        id: id.to_string(),
        // the same image as when pogo pulled it, or pulled now
        pulled: pulled_now || earlier.is_some_and(|e| e.pulled && e.id == id),
    };
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir(working_dir));
    if let Ok(text) = serde_json::to_vec(&record) {
        let how = crate::fsutil::Replace {
            mode: Some(0o600),
            durable: false,
            keep_owner: false,
        };
        if let Err(e) = crate::fsutil::replace(&path, &text, how) {
            tracing::debug!("cannot note the use of image {name}: {e}");
        }
    }
}

/// The noted images with their last use (Unix seconds).
fn records(working_dir: &Path) -> Vec<(PathBuf, Record, u64)> {
    let Ok(entries) = std::fs::read_dir(dir(working_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let used = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()?
                .duration_since(UNIX_EPOCH)
                .ok()?
                .as_secs();
            let record = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((e.path(), record, used))
        })
        .collect()
}

/// The noted images with their last use, as [`plan`] takes them.
pub fn noted(working_dir: &Path) -> Vec<(Record, u64)> {
    records(working_dir)
        .into_iter()
        .map(|(_, r, used)| (r, used))
        .collect()
}

/// Bytes the images pogo pulled take (each image once). Pure.
pub fn taken(noted: &[(Record, u64)], listed: &[Listed]) -> u64 {
    plan(noted, listed, 0, &crate::config::Globs::default()).0
}

/// One image in podman's storage (`podman image ls --format json`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Listed {
    #[serde(rename = "Id", default)]
    pub id: String,
    #[serde(rename = "Names", default)]
    pub names: Option<Vec<String>>,
    #[serde(rename = "Size", default)]
    pub size: u64,
    /// Containers using it.
    #[serde(rename = "Containers", default)]
    pub containers: u64,
}

/// One image name `pogo gc` removes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    pub id: String,
    /// Bytes freed: the image's size when this was its last name, else 0.
    pub frees: u64,
    pub last_used: u64,
}

/// Which noted images to remove so that the images pogo pulled take at most `limit` bytes:
/// the least recently used first, never one a container uses or one `keep` matches. The
/// size of an image counts once however many names it has, and is freed only with its last
/// name. Pure.
pub fn plan(
    noted: &[(Record, u64)],
    listed: &[Listed],
    limit: u64,
    keep: &crate::config::Globs,
) -> (u64, Vec<Removal>) {
    let by_id: BTreeMap<&str, &Listed> = listed.iter().map(|l| (l.id.as_str(), l)).collect();
    // pogo's images: those it pulled that are still there (the same image)
    let mut ours: Vec<&(Record, u64)> = noted
        .iter()
        .filter(|(r, _)| r.pulled && by_id.contains_key(r.id.as_str()))
        .collect();
    let mut ids: Vec<&str> = ours.iter().map(|(r, _)| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut total: u64 = ids
        .iter()
        .filter_map(|id| by_id.get(id))
        .map(|l| l.size)
        .sum();
    if limit == 0 || total <= limit {
        return (total, Vec::new());
    }
    let taken = total;
    ours.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.name.cmp(&b.0.name)));
    // names each image has left
    let mut names_left: BTreeMap<&str, usize> = ids
        .iter()
        .filter_map(|id| by_id.get(id))
        .map(|l| {
            (
                l.id.as_str(),
                l.names.as_ref().map_or(1, |n| n.len().max(1)),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (record, used) in ours {
        if total <= limit {
            break;
        }
        let Some(image) = by_id.get(record.id.as_str()) else {
            continue;
        };
        if image.containers > 0 || keep.matches(&record.name) {
            continue;
        }
        let left = names_left.entry(record.id.as_str()).or_insert(1);
        *left = left.saturating_sub(1);
        let frees = if *left == 0 { image.size } else { 0 };
        total = total.saturating_sub(frees);
        out.push(Removal {
            name: record.name.clone(),
            id: record.id.clone(),
            frees,
            last_used: *used,
        });
    }
    (taken, out)
}

/// `podman image ls`. Podman 4 fails it when an image goes while it lists (another job's
/// `podman rmi`, "image not known"): it is asked again, three times at most.
async fn list_images(podman: &Podman) -> Option<Vec<Listed>> {
    let argv: Vec<String> = ["image", "ls", "--format", "json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        match podman.json::<Vec<Listed>>(&argv).await {
            Ok(l) => return Some(l),
            Err(e) => last = e.to_string(),
        }
    }
    eprintln!("pogo gc: cannot list images (3 tries): {last}");
    None
}

/// Keep the images pogo pulled within `limit` bytes (0: no limit, and no podman call: the
/// notes of images that are gone are dropped when there is a limit). Returns the number of
/// errors.
pub async fn enforce(
    podman: &Podman,
    working_dir: &Path,
    limit: u64,
    keep: &crate::config::Globs,
    dry_run: bool,
    quiet: bool,
) -> usize {
    let noted = records(working_dir);
    if noted.is_empty() || limit == 0 {
        return 0;
    }
    let Some(listed) = list_images(podman).await else {
        return 1;
    };
    let present: std::collections::HashSet<&str> = listed.iter().map(|l| l.id.as_str()).collect();
    if !dry_run {
        for (path, record, _) in &noted {
            if !present.contains(record.id.as_str()) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let pairs: Vec<(Record, u64)> = noted.iter().map(|(_, r, u)| (r.clone(), *u)).collect();
    let (taken, removals) = plan(&pairs, &listed, limit, keep);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut errors = 0;
    for r in removals {
        let ago = humantime::format_duration(Duration::from_secs(now.saturating_sub(r.last_used)));
        let what = format!(
            "image {} (last used by a pogo job {ago} ago; {}): pogo's images take {}, over max_images_size {}",
            r.name,
            if r.frees > 0 {
                format!("frees {}", human(r.frees))
            } else {
                "another name keeps the image".to_string()
            },
            human(taken),
            human(limit)
        );
        if dry_run {
            println!("would remove {what}");
            continue;
        }
        let argv: Vec<String> = ["image", "rm", "--", &r.name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match podman.run(&argv).await {
            Ok(_) => {
                let _ = std::fs::remove_file(record_path(working_dir, &r.name));
                if !quiet {
                    println!("removed {what}");
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("pogo gc: could not remove image {}: {e}", r.name);
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Globs;

    fn rec(name: &str, id: &str, pulled: bool) -> Record {
        Record {
            name: name.into(),
            id: id.into(),
            pulled,
        }
    }
    fn img(id: &str, names: &[&str], size: u64, containers: u64) -> Listed {
        Listed {
            id: id.into(),
            names: Some(names.iter().map(|n| n.to_string()).collect()),
            size,
            containers,
        }
    }

    #[test]
    fn the_least_recently_used_pulled_images_go_until_the_rest_fits() {
        let noted = vec![
            (rec("a:1", "ia", true), 100),
            (rec("b:1", "ib", true), 300),
            (rec("c:1", "ic", true), 200),
        ];
        let listed = vec![
            img("ia", &["a:1"], 50, 0),
            img("ib", &["b:1"], 50, 0),
            img("ic", &["c:1"], 50, 0),
        ];
        let (taken, out) = plan(&noted, &listed, 60, &Globs::default());
        assert_eq!(taken, 150);
        let names: Vec<&str> = out.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a:1", "c:1"], "oldest use first, until 50 <= 60");
        assert!(plan(&noted, &listed, 150, &Globs::default()).1.is_empty());
        assert!(
            plan(&noted, &listed, 0, &Globs::default()).1.is_empty(),
            "0: no limit"
        );
    }

    #[test]
    fn images_pogo_did_not_pull_in_use_or_kept_are_never_removed() {
        let noted = vec![
            (rec("owners:1", "io", false), 1),
            (rec("busy:1", "ib", true), 2),
            (rec("pinned/x:1", "ip", true), 3),
            (rec("gone:1", "ig", true), 4),
            (rec("free:1", "if", true), 5),
        ];
        let listed = vec![
            img("io", &["owners:1"], 100, 0),
            img("ib", &["busy:1"], 100, 1),
            img("ip", &["pinned/x:1"], 100, 0),
            img("if", &["free:1"], 100, 0),
        ];
        let keep = Globs::new(&["pinned/*".to_string()]).unwrap();
        let (taken, out) = plan(&noted, &listed, 1, &keep);
        assert_eq!(taken, 300, "the owner's image does not count");
        let names: Vec<&str> = out.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["free:1"]);
    }

    #[test]
    fn an_image_with_another_name_frees_nothing_until_its_last_name_goes() {
        let noted = vec![
            (rec("reg/a:1", "i1", true), 1),
            (rec("reg/b:1", "i1", true), 2),
        ];
        let listed = vec![img("i1", &["reg/a:1", "reg/b:1", "local/a:1"], 80, 0)];
        let (taken, out) = plan(&noted, &listed, 10, &Globs::default());
        assert_eq!(taken, 80);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|r| r.frees == 0),
            "local/a:1 keeps the image"
        );
        let listed = vec![img("i1", &["reg/a:1", "reg/b:1"], 80, 0)];
        let (_, out) = plan(&noted, &listed, 10, &Globs::default());
        assert_eq!(out[0].frees, 0);
        assert_eq!(out[1].frees, 80);
    }

    #[test]
    fn a_use_keeps_pulled_only_for_the_same_image() {
        let wd = tempfile::tempdir().unwrap();
        note_use(wd.path(), "r/a:1", "id1", true);
        note_use(wd.path(), "r/a:1", "id1", false);
        let noted = records(wd.path());
        assert_eq!(noted.len(), 1);
        assert!(noted[0].1.pulled, "still the image pogo pulled");
        // retagged by the owner to another image: no longer pogo's
        note_use(wd.path(), "r/a:1", "id2", false);
        assert!(!records(wd.path())[0].1.pulled);
    }
}
