//! Podman's own checks, from `podman info`: version, rootless networking, the firewall tool
//! netavark needs, the storage driver, cgroups and resource limits; SELinux labels.

use super::super::{find_in_path, UserInfo};
use super::*;
use crate::config::Config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `(major, minor)` of "4.3.1" or "podman version 4.3.1".
pub(super) fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub(super) fn podman_checks(
    user: &UserInfo,
    podman: &str,
    env: &HashMap<String, String>,
    info: Result<serde_json::Value, String>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let Some(podman_path) = find_in_path(podman, env) else {
        checks.push(fail(
            "podman",
            format!("{podman} not found in $PATH"),
            "install it: sudo apt-get install podman (Debian/Ubuntu) or sudo dnf install podman (Fedora)",
        ));
        return checks;
    };
    let info = match info {
        Ok(v) => v,
        Err(e) => {
            let hint = if e.contains("newuidmap") || e.contains("subuid") {
                format!("add subordinate ids: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {}; then podman system migrate", user.name)
            } else {
                format!("run `{podman} info` to see the whole error")
            };
            checks.push(fail(
                "podman",
                format!("{} info failed: {e}", podman_path.display()),
                hint,
            ));
            return checks;
        }
    };
    let s = |ptr: &str| {
        info.pointer(ptr)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let version = s("/version/Version");
    let runtime = s("/host/ociRuntime/name");
    let driver = s("/store/graphDriverName");
    let summary = format!(
        "podman {version} ({}; runtime {runtime}, storage {driver})",
        podman_path.display()
    );
    match parse_version(&version) {
        Some((major, minor)) if (major, minor) >= (4, 3) => checks.push(ok("podman", summary)),
        Some(_) => checks.push(fail(
            "podman",
            summary,
            "pogo needs podman 4.3 or newer: upgrade it",
        )),
        None => checks.push(warn(
            "podman",
            summary,
            "cannot tell podman's version; pogo needs 4.3 or newer",
        )),
    }
    let rootless = info
        .pointer("/host/security/rootless")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(!user.is_root());

    checks.push(network_check(rootless, &s, env));
    // netavark runs iptables or nft for every container with a network; neither comes with it.
    let tools = ["iptables", "nft"].map(|t| {
        find_in_path(t, env)
            .or_else(|| Some(PathBuf::from(format!("/usr/sbin/{t}"))).filter(|p| p.exists()))
    });
    checks.push(firewall_check(
        &s("/host/networkBackend"),
        rootless,
        tools.iter().flatten().next().map(PathBuf::as_path),
    ));

    checks.push(storage_check(&driver));
    checks.push(cgroups_check(&info, &version, rootless, user));
    checks
}

/// The SELinux mode and what pogo does about it; under enforcing SELinux, the tag mounts
/// without `z`/`Z` (a container cannot read host files with their host labels). Pure.
pub(super) fn selinux_check(mode: crate::podman::Selinux, cfg: &Config) -> Check {
    use crate::podman::Selinux;
    const OWN: &str = "pogo mounts its own files (init, agent, socket, cache) with :z";
    match mode {
        Selinux::Disabled => ok(
            "selinux",
            format!("not enabled on this host ({OWN} anyway)"),
        ),
        Selinux::Permissive => ok("selinux", format!("permissive: {OWN}")),
        Selinux::Enforcing => {
            let unlabelled: Vec<String> = cfg
                .mounts
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.options.iter().any(|o| o == "z" || o == "Z"))
                .map(|(i, m)| format!("mounts[{i}] ({})", m.host.display()))
                .collect();
            if unlabelled.is_empty() {
                ok(
                    "selinux",
                    format!("enforcing: {OWN}; every tag mount has z or Z"),
                )
            } else {
                warn(
                    "selinux",
                    format!(
                        "enforcing: {OWN}, but jobs may not read {} (pogo never relabels your paths)",
                        unlabelled.join(", ")
                    ),
                    "add :z (shared) or :Z (one job at a time) to those volumes if containers may relabel them, or label them container_file_t yourself",
                )
            }
        }
    }
}

/// netavark (podman's network stack) needs `iptables` (netavark 1.4) or `nft` (1.14), and
/// installing podman and netavark without recommends brings neither: every container with a
/// network then fails with `netavark: No such file or directory` (or `unable to execute nft`).
pub(super) fn firewall_check(backend: &str, rootless: bool, tool: Option<&Path>) -> Check {
    const FIX: &str = "sudo apt-get install iptables nftables (Debian/Ubuntu) or sudo dnf install iptables-nft nftables (Fedora)";
    match (backend, tool) {
        ("netavark", Some(t)) => ok("firewall", format!("netavark can run {}", t.display())),
        ("netavark", None) if rootless => warn(
            "firewall",
            "netavark finds neither iptables nor nft: containers on a podman network (--network NAME in extra_arguments) will fail",
            FIX,
        ),
        ("netavark", None) => fail(
            "firewall",
            "netavark finds neither iptables nor nft: every job fails with `netavark: No such file or directory`",
            FIX,
        ),
        ("", _) => ok("firewall", "podman did not name its network backend"),
        (other, _) => ok("firewall", format!("network backend {other}")),
    }
}

/// Rootless containers need slirp4netns or pasta for their network.
pub(super) fn network_check(
    rootless: bool,
    s: &dyn Fn(&str) -> String,
    env: &HashMap<String, String>,
) -> Check {
    let slirp = s("/host/slirp4netns/executable");
    let pasta = s("/host/pasta/executable");
    let found = [
        (!slirp.is_empty()).then(|| PathBuf::from(&slirp)),
        (!pasta.is_empty()).then(|| PathBuf::from(&pasta)),
        find_in_path("slirp4netns", env),
        find_in_path("pasta", env),
        Some(PathBuf::from("/usr/libexec/podman/slirp4netns")).filter(|p| p.exists()),
    ]
    .into_iter()
    .flatten()
    .next();
    match (found, rootless) {
        (Some(p), _) => ok("network", format!("rootless networking: {}", p.display())),
        (None, true) => fail(
            "network",
            "neither slirp4netns nor pasta is installed: rootless containers have no network",
            "sudo apt-get install slirp4netns (or passt for pasta)",
        ),
        (None, false) => ok("network", "slirp4netns/pasta not needed as root"),
    }
}

pub(super) fn storage_check(driver: &str) -> Check {
    match driver {
        "vfs" => warn(
            "storage",
            "storage driver vfs: every layer is a full copy (slow, uses much disk)",
            "install fuse-overlayfs (or use kernel 5.13+), set driver = \"overlay\" in ~/.config/containers/storage.conf, then podman system reset",
        ),
        "" => warn(
            "storage",
            "podman did not report its storage driver",
            "run `podman info` and check store.graphDriverName",
        ),
        d => ok("storage", format!("storage driver {d}")),
    }
}

/// cgroups: whether resource limits (`--memory`, `--cpus`, `--pids-limit`) work.
pub(super) fn cgroups_check(
    info: &serde_json::Value,
    version: &str,
    rootless: bool,
    user: &UserInfo,
) -> Check {
    let cgroup_version = info
        .pointer("/host/cgroupVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let controllers: Vec<String> = info
        .pointer("/host/cgroupControllers")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let needed = ["cpu", "memory", "pids"];
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|c| !controllers.iter().any(|have| have == c))
        .collect();
    let podman5 = parse_version(version).is_some_and(|(major, _)| major >= 5);
    if cgroup_version == "v1" && podman5 {
        warn(
            "cgroups",
            format!("cgroups v1: podman {version} deprecates it and will drop it (pogo keeps its warning out of job logs){}", if rootless { "; rootless podman cannot apply resource limits" } else { "" }),
            "boot with cgroups v2 (kernel parameter systemd.unified_cgroup_hierarchy=1)",
        )
    } else if !rootless {
        ok(
            "cgroups",
            format!("cgroups {cgroup_version}: resource limits work (rootful)"),
        )
    } else if cgroup_version == "v1" {
        warn(
            "cgroups",
            "cgroups v1: rootless podman cannot apply resource limits (--memory, --cpus, --pids-limit in extra_arguments)",
            "boot with cgroups v2 (kernel parameter systemd.unified_cgroup_hierarchy=1)",
        )
    } else if missing.is_empty() {
        ok(
            "cgroups",
            format!("cgroups {cgroup_version}: cpu, memory and pids limits work rootless"),
        )
    } else {
        warn(
            "cgroups",
            format!(
                "cgroups {cgroup_version}: {} not delegated to {}: those limits fail rootless",
                missing.join(", "),
                user.name
            ),
            "delegate them: printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf; sudo systemctl daemon-reload; log in again",
        )
    }
}
