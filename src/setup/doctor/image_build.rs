//! Can jobs build images here (the `build-images` recipe of docs/configuration.md)? buildah in
//! the job container re-executes itself in a user namespace of its own (the container's root
//! has no CAP_SYS_ADMIN; no `--privileged` is given), where it mounts overlay on the project's
//! kept volume. That needs: user namespaces a process without privileges may create, a kernel
//! that mounts overlay inside one (5.11) and podman's volumes on a file system overlay can sit
//! on (not overlayfs: podman in a container), or else /dev/fuse for fuse-overlayfs; and for
//! rootless podman a full 65536-id range for the container (the namespace maps all of it).

use super::*;

/// What the check looks at, read by [`probe`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Host {
    /// `/proc/sys/user/max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// Debian's and Ubuntu's `/proc/sys/kernel/unprivileged_userns_clone` (absent elsewhere).
    pub unprivileged_userns_clone: Option<u64>,
    /// Ubuntu's `/proc/sys/kernel/apparmor_restrict_unprivileged_userns`.
    pub apparmor_restricts_userns: Option<u64>,
    /// The kernel's (major, minor).
    pub kernel: Option<(u32, u32)>,
    /// podman's volumes are on overlayfs (podman itself runs in a container), where overlay
    /// cannot be mounted again.
    pub volumes_on_overlayfs: bool,
    /// /dev/fuse is a character device this user can read and write.
    pub fuse_usable: bool,
    /// For rootless podman: the user's (subuids, subgids); `None` for root.
    pub sub_ids: Option<(u64, u64)>,
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `"6.1.0-13-amd64"` → (6, 1).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Reads the host (`sub_ids`: the user's ranges when rootless; `volume_path`: where podman
/// keeps volumes, from `podman info`).
pub fn probe(sub_ids: Option<(u64, u64)>, volume_path: Option<&Path>) -> Host {
    let fuse = Path::new("/dev/fuse");
    Host {
        max_user_namespaces: read_number("/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone: read_number("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restricts_userns: read_number(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|r| kernel_version(r.trim())),
        volumes_on_overlayfs: volume_path
            .and_then(|p| nix::sys::statfs::statfs(p).ok())
            .is_some_and(|fs| fs.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC),
        fuse_usable: {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(fuse).is_ok_and(|m| m.file_type().is_char_device())
                && nix::unistd::access(
                    fuse,
                    nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
                )
                .is_ok()
        },
        sub_ids,
    }
}

const NAME: &str = "image builds";
const RECIPE: &str = "docs/configuration.md, \"Building images in jobs\"";

/// A tag whose `extra_arguments` entry gives jobs a `project_volume` (what the recipe uses
/// for the build's layer storage), and whether it also hands them /dev/fuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabling {
    pub tag: String,
    pub fuse: bool,
}

/// The tags that enable image builds (see [`Enabling`]).
pub fn enabling_tags(config: &crate::config::Config) -> Vec<Enabling> {
    config
        .extra_arguments
        .iter()
        .filter(|e| e.project_volume.is_some())
        .map(|e| Enabling {
            tag: e.tag.clone(),
            fuse: e.args.iter().any(|a| a.contains("/dev/fuse")),
        })
        .collect()
}

/// The check: whether jobs can build images here, and which tags let them. What stops
/// builds is ✗ when a tag enables them, ✓ with the reason when none does (nobody asked).
pub fn check(host: &Host, enabling: &[Enabling]) -> Check {
    let tags: Vec<String> = enabling.iter().map(|e| e.tag.clone()).collect();
    let mut problems: Vec<(String, String)> = Vec::new();
    if host.max_user_namespaces == Some(0) {
        problems.push((
            "user namespaces are off (user.max_user_namespaces = 0)".into(),
            "sudo sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/)".into(),
        ));
    }
    if host.unprivileged_userns_clone == Some(0) {
        problems.push((
            "processes without privileges may not create user namespaces (kernel.unprivileged_userns_clone = 0)".into(),
            "sudo sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/)".into(),
        ));
    }
    let native_overlay = host.kernel.is_none_or(|k| k >= (5, 11)) && !host.volumes_on_overlayfs;
    if !native_overlay && !host.fuse_usable {
        let why = if host.volumes_on_overlayfs {
            "podman's volumes are on overlayfs (podman in a container)"
        } else {
            "kernel older than 5.11 (no overlay in a user namespace)"
        };
        problems.push((
            format!("{why} and /dev/fuse not usable"),
            "sudo modprobe fuse; and add `--device /dev/fuse` with `privileged: true` to the tag's entry".into(),
        ));
    }
    let without_fuse: Vec<&str> = enabling
        .iter()
        .filter(|e| !e.fuse)
        .map(|e| e.tag.as_str())
        .collect();
    if !native_overlay && host.fuse_usable && !without_fuse.is_empty() {
        problems.push((
            format!(
                "fuse-overlayfs needs /dev/fuse here, and {} lack(s) it",
                without_fuse.join(", ")
            ),
            "add `args: --device /dev/fuse` and `privileged: true` to the entry".into(),
        ));
    }
    if let Some((uids, gids)) = host.sub_ids {
        if uids < 65_536 || gids < 65_536 {
            problems.push((
                format!("only {uids} subuids / {gids} subgids: buildah's namespace maps the container's ids, and images need 65536"),
                "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER; then podman system migrate".into(),
            ));
        }
    }
    let storage = match (native_overlay, host.volumes_on_overlayfs) {
        (true, _) => "overlay in buildah's user namespace",
        (false, true) => "podman's volumes are on overlayfs: fuse-overlayfs, the tag's entry needs `--device /dev/fuse`",
        (false, false) => "fuse-overlayfs: the tag's entry needs `--device /dev/fuse`",
    };
    let apparmor = if host.apparmor_restricts_userns == Some(1) {
        "; AppArmor restricts user namespaces here (Ubuntu): untested, see the docs"
    } else {
        ""
    };
    match (problems.is_empty(), tags.is_empty()) {
        (true, true) => ok(
            NAME,
            format!("possible ({storage}{apparmor}); no tag enables them: see {RECIPE}"),
        ),
        (true, false) => ok(
            NAME,
            format!("tag(s) {} ({storage}{apparmor})", tags.join(", ")),
        ),
        (false, true) => ok(
            NAME,
            format!(
                "not possible here ({}); no tag enables them",
                problems
                    .iter()
                    .map(|p| p.0.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        (false, false) => {
            let (what, fix): (Vec<String>, Vec<String>) = problems.into_iter().unzip();
            fail(
                NAME,
                format!(
                    "tag(s) {} cannot build images here: {}",
                    tags.join(", "),
                    what.join("; ")
                ),
                fix.join("; "),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Host {
        Host {
            max_user_namespaces: Some(63_000),
            unprivileged_userns_clone: Some(1),
            apparmor_restricts_userns: None,
            kernel: Some((6, 1)),
            volumes_on_overlayfs: false,
            fuse_usable: false,
            sub_ids: Some((65_536, 65_536)),
        }
    }

    fn tags() -> Vec<Enabling> {
        vec![Enabling {
            tag: "build-images".to_string(),
            fuse: false,
        }]
    }

    fn with_fuse() -> Vec<Enabling> {
        vec![Enabling {
            tag: "build-images".to_string(),
            fuse: true,
        }]
    }

    #[test]
    fn kernel_releases_are_read_to_major_and_minor() {
        assert_eq!(kernel_version("6.1.0-13-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("5.10.0"), Some((5, 10)));
        assert_eq!(kernel_version("4.18.0-513.el8.x86_64"), Some((4, 18)));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn a_host_that_can_build_names_the_tags_that_enable_it_or_the_recipe() {
        let c = check(&good(), &tags());
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("build-images"), "{c:?}");
        assert!(
            c.message.contains("overlay in buildah's user namespace"),
            "{c:?}"
        );
        let c = check(&good(), &[]);
        assert_eq!(c.status, Status::Ok);
        assert!(c.message.contains("no tag enables them"), "{c:?}");
        assert!(c.message.contains("docs/configuration.md"), "{c:?}");
    }

    #[test]
    fn what_stops_builds_fails_with_its_fix_only_when_a_tag_asks_for_them() {
        let cases: [(Host, &str, &str); 5] = [
            (
                Host {
                    max_user_namespaces: Some(0),
                    ..good()
                },
                "user.max_user_namespaces = 0",
                "sysctl -w user.max_user_namespaces",
            ),
            (
                Host {
                    unprivileged_userns_clone: Some(0),
                    ..good()
                },
                "unprivileged_userns_clone = 0",
                "kernel.unprivileged_userns_clone=1",
            ),
            (
                Host {
                    kernel: Some((4, 18)),
                    ..good()
                },
                "older than 5.11",
                "--device /dev/fuse",
            ),
            (
                Host {
                    volumes_on_overlayfs: true,
                    ..good()
                },
                "volumes are on overlayfs",
                "--device /dev/fuse",
            ),
            (
                Host {
                    sub_ids: Some((65_536, 1_000)),
                    ..good()
                },
                "1000 subgids",
                "usermod --add-subuids",
            ),
        ];
        for (host, what, fix) in cases {
            let c = check(&host, &tags());
            assert_eq!(c.status, Status::Fail, "{c:?}");
            assert!(c.message.contains(what), "{c:?}");
            assert!(c.fix.as_deref().is_some_and(|f| f.contains(fix)), "{c:?}");
            let c = check(&host, &[]);
            assert_eq!(c.status, Status::Ok, "nobody asked for builds: {c:?}");
            assert!(c.message.contains("not possible here"), "{c:?}");
            assert!(c.message.contains(what), "{c:?}");
        }
    }

    #[test]
    fn with_fuse_an_old_kernel_or_volumes_on_overlayfs_build_through_fuse_overlayfs() {
        let host = Host {
            kernel: Some((4, 18)),
            fuse_usable: true,
            sub_ids: None,
            ..good()
        };
        let c = check(&host, &tags());
        assert_eq!(c.status, Status::Fail, "the entry lacks the device: {c:?}");
        assert!(c.message.contains("build-images lack(s) it"), "{c:?}");
        let c = check(&host, &with_fuse());
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("fuse-overlayfs"), "{c:?}");
        let host = Host {
            volumes_on_overlayfs: true,
            fuse_usable: true,
            ..good()
        };
        let c = check(&host, &with_fuse());
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("volumes are on overlayfs"), "{c:?}");
        assert!(c.message.contains("--device /dev/fuse"), "{c:?}");
    }
}
