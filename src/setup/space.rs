//! `pogo doctor`'s checks of what a runner needs for months and for special jobs: free disk
//! space where podman keeps images and where pogo keeps its state (with what pogo's images,
//! kept volumes, caches and log copies take), and GPUs for jobs through CDI
//! (`--device nvidia.com/gpu=all`).

use super::doctor::{ok, warn, Check};
use crate::fsutil::human;
use std::path::{Path, PathBuf};

/// Below either, the disk check warns: jobs start failing when image pulls or caches do.
const MIN_FREE_BYTES: u64 = 5 * 1024 * 1024 * 1024;
const MIN_FREE_PERCENT: u64 = 10;
/// At most this many entries are counted per directory tree (a huge cache must not make the
/// doctor slow): past it the size is shown as "at least".
const MAX_ENTRIES: usize = 200_000;

/// Free and total bytes of the file system holding `path`.
fn free_space(path: &Path) -> Option<(u64, u64)> {
    let mut p = path.to_path_buf();
    // the directory may not exist yet: its nearest existing parent tells the file system
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let s = nix::sys::statvfs::statvfs(&p).ok()?;
    let block = s.fragment_size() as u64;
    Some((
        (s.blocks_available() as u64).saturating_mul(block),
        (s.blocks() as u64).saturating_mul(block),
    ))
}

/// The bytes of the files below `dir` (not following links), and whether all were counted.
pub fn tree_size(dir: &Path) -> (u64, bool) {
    let mut total = 0u64;
    let all = crate::fsutil::walk(dir, MAX_ENTRIES, |_, meta| {
        if !meta.is_dir() {
            total = total.saturating_add(meta.len());
        }
    });
    (total, all)
}

/// One file system's line: `PATH: FREE free of TOTAL (P %)`, and whether it is low.
pub fn describe_free(what: &str, path: &Path, free: u64, total: u64) -> (String, bool) {
    let percent = (free.saturating_mul(100)).checked_div(total).unwrap_or(100);
    let low = free < MIN_FREE_BYTES || percent < MIN_FREE_PERCENT;
    (
        format!(
            "{what} {}: {} free of {} ({percent} %)",
            path.display(),
            human(free),
            human(total)
        ),
        low,
    )
}

/// What the images pogo pulled for jobs take (`None`: podman could not say), and the
/// config's `max_images_size` (bytes, 0: none).
#[derive(Debug, Clone, Copy)]
pub struct PogoImages {
    pub size: Option<u64>,
    pub limit: u64,
}

/// The volumes pogo keeps between jobs (persistent builds volumes and `project_volume`s):
/// how many, and the bytes of their files (`all`: every file could be counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeptVolumes {
    pub count: usize,
    pub size: u64,
    pub all: bool,
}

/// The kept volumes whose directories on the host are `mountpoints`.
pub fn kept_volumes(mountpoints: &[PathBuf]) -> KeptVolumes {
    mountpoints.iter().fold(
        KeptVolumes {
            all: true,
            ..KeptVolumes::default()
        },
        |k, m| {
            let (size, all) = tree_size(m);
            KeptVolumes {
                count: k.count + 1,
                size: k.size.saturating_add(size),
                all: k.all && all,
            }
        },
    )
}

/// Free space where podman keeps images (`graph_root`) and where pogo keeps its state, and
/// what pogo's images, kept volumes (`None`: podman could not list them), caches and log
/// copies take.
pub fn disk_check(
    graph_root: Option<&Path>,
    working_dir: &Path,
    cache_dir: &Path,
    state_dir: &Path,
    images: PogoImages,
    kept: Option<KeptVolumes>,
) -> Check {
    let mut parts = Vec::new();
    let mut low = Vec::new();
    let mut places: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(g) = graph_root {
        places.push(("podman storage", g.to_path_buf()));
    }
    places.push(("pogo's working_dir", working_dir.to_path_buf()));
    let mut seen_fs = Vec::new();
    for (what, path) in places {
        let Some((free, total)) = free_space(&path) else {
            continue;
        };
        // one line per file system
        if seen_fs.contains(&(free, total)) {
            continue;
        }
        seen_fs.push((free, total));
        let (line, is_low) = describe_free(what, &path, free, total);
        if is_low {
            low.push(path.display().to_string());
        }
        parts.push(line);
    }
    if let Some(size) = images.size {
        let limit = match images.limit {
            0 => "no max_images_size".to_string(),
            l => format!("max_images_size {}", human(l)),
        };
        parts.push(format!("pogo's images {} ({limit})", human(size)));
    }
    if let Some(k) = kept {
        let at_least = if k.all { "" } else { "at least " };
        parts.push(format!(
            "{} kept volume(s) {at_least}{} (persistent_builds_days, project_volume)",
            k.count,
            human(k.size)
        ));
    }
    for (what, dir) in [("caches", cache_dir), ("log copies", state_dir)] {
        let (size, all) = tree_size(dir);
        let at_least = if all { "" } else { "at least " };
        parts.push(format!("{what} {at_least}{}", human(size)));
    }
    let message = parts.join("; ");
    if low.is_empty() {
        ok("disk", message)
    } else {
        warn(
            "disk",
            message,
            format!(
                "free space on {} (under {} or {MIN_FREE_PERCENT} % free, pulls and caches start failing): \
                 `pogo gc` removes finished jobs' leftovers (and, with max_images_size, the least \
                 recently used images pogo pulled), `podman image prune` unused images, \
                 and removing {} empties pogo's caches",
                low.join(" and "),
                human(MIN_FREE_BYTES),
                cache_dir.display()
            ),
        )
    }
}

/// GPUs for jobs: podman hands them over with CDI (`--device nvidia.com/gpu=all` in a tag's
/// `extra_arguments`), which needs a CDI spec. `cdi_dirs` are where specs live
/// (`/etc/cdi`, `/var/run/cdi`), `dev` where `nvidia0` would be.
pub fn gpu_check(cdi_dirs: &[&Path], dev: &Path) -> Check {
    let specs: Vec<PathBuf> = cdi_dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    let devices: Vec<String> = specs
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| cdi_kinds(&text))
        .collect();
    let nvidia = dev.join("nvidia0").exists();
    match (nvidia, devices.is_empty()) {
        (_, false) => ok(
            "gpu",
            format!(
                "CDI devices {}: a tag's extra_arguments can give jobs `--device {}=all` (privileged: true)",
                devices.join(", "),
                devices[0]
            ),
        ),
        (true, true) => warn(
            "gpu",
            "an NVIDIA GPU is here but no CDI spec describes it: jobs cannot get it",
            "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (NVIDIA Container Toolkit), then `nvidia-ctk cdi list`",
        ),
        (false, true) => ok("gpu", "no GPU and no CDI spec: GPU jobs are not possible here"),
    }
}

/// The `kind:` of a CDI spec (`nvidia.com/gpu`), read without a YAML parser: specs are
/// small, and only this key matters.
fn cdi_kinds(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches('{').trim();
            let rest = l
                .strip_prefix("kind:")
                .or_else(|| l.strip_prefix("\"kind\":"))?;
            let v = rest
                .split(',')
                .next()?
                .trim()
                .trim_matches('"')
                .trim_matches('\'');
            (!v.is_empty()).then(|| v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::setup::doctor::Status;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(48 * 1024), "48.0 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn little_free_space_is_a_warning() {
        let gib = 1024 * 1024 * 1024;
        assert!(
            describe_free("x", Path::new("/"), 2 * gib, 100 * gib).1,
            "2 GiB is low"
        );
        assert!(
            describe_free("x", Path::new("/"), 20 * gib, 400 * gib).1,
            "5 % is low"
        );
        let (line, low) = describe_free("podman storage", Path::new("/var"), 30 * gib, 100 * gib);
        assert!(!low);
        assert_eq!(
            line,
            "podman storage /var: 30.0 GiB free of 100.0 GiB (30 %)"
        );
    }

    #[test]
    fn the_disk_check_counts_pogos_kept_volumes_caches_and_log_copies() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        std::fs::create_dir_all(cache.join("g/p")).unwrap();
        std::fs::write(cache.join("g/p/cache.tgz"), vec![0u8; 3000]).unwrap();
        let images = PogoImages {
            size: Some(3 * 1024 * 1024),
            limit: 0,
        };
        let vol = d.path().join("vol/_data");
        std::fs::create_dir_all(vol.join(".git")).unwrap();
        std::fs::write(vol.join(".git/pack"), vec![0u8; 2048]).unwrap();
        let kept = kept_volumes(&[vol, d.path().join("gone")]);
        let c = disk_check(
            None,
            d.path(),
            &cache,
            &d.path().join("jobs"),
            images,
            Some(kept),
        );
        assert!(
            c.message
                .contains("2 kept volume(s) 2.0 KiB (persistent_builds_days, project_volume)"),
            "{}",
            c.message
        );
        assert!(
            c.message
                .contains("pogo's images 3.0 MiB (no max_images_size)"),
            "{}",
            c.message
        );
        assert!(c.message.contains("caches 2.9 KiB"), "{}", c.message);
        assert!(c.message.contains("log copies 0 B"), "{}", c.message);
        assert!(c.message.contains("pogo's working_dir"), "{}", c.message);
    }

    #[test]
    fn a_gpu_without_a_cdi_spec_says_how_to_make_one() {
        let d = tempfile::tempdir().unwrap();
        let (cdi, dev) = (d.path().join("cdi"), d.path().join("dev"));
        std::fs::create_dir_all(&cdi).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        assert_eq!(gpu_check(&[&cdi], &dev).status, Status::Ok);
        std::fs::write(dev.join("nvidia0"), "").unwrap();
        let c = gpu_check(&[&cdi], &dev);
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("nvidia-ctk cdi generate"));
        std::fs::write(
            cdi.join("nvidia.yaml"),
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n",
        )
        .unwrap();
        let c = gpu_check(&[&cdi], &dev);
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.message.contains("--device nvidia.com/gpu=all"),
            "{}",
            c.message
        );
    }
}
