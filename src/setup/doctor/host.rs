//! The machine around podman: rootless prerequisites (subordinate ids, runtime dir, /dev/net/tun),
//! linger, gitlab-runner and the runners in its config.toml that use pogo.

use super::super::install::gitlab_runner_advice_here;
use super::super::{find_in_path, runner_config, UserInfo};
use super::*;
use crate::config;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Entries for `user` (name or uid) in an `/etc/subuid`-style file: total count.
pub fn sub_id_count(text: &str, user: &str, uid: u32) -> u64 {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let who = f.next()?;
            let _start: u64 = f.next()?.trim().parse().ok()?;
            let count: u64 = f.next()?.trim().parse().ok()?;
            (who == user || who == uid.to_string()).then_some(count)
        })
        .sum()
}

/// The user's (subuids, subgids) from /etc/subuid and /etc/subgid; `None` for root.
pub(super) fn rootless_sub_ids(user: &UserInfo) -> Option<(u64, u64)> {
    if user.is_root() {
        return None;
    }
    let count = |file: &str| {
        sub_id_count(
            &std::fs::read_to_string(file).unwrap_or_default(),
            &user.name,
            user.uid,
        )
    };
    Some((count("/etc/subuid"), count("/etc/subgid")))
}

pub(super) fn rootless_checks(user: &UserInfo, env: &HashMap<String, String>) -> Vec<Check> {
    let mut checks = Vec::new();
    if user.is_root() {
        checks.push(warn(
            "rootless",
            "running as root: jobs would run in rootful Podman",
            "run gitlab-runner and pogo as an unprivileged user (pogo register/install as that user)",
        ));
    } else {
        checks.push(ok(
            "rootless",
            format!("user {} (uid {})", user.name, user.uid),
        ));
        let fix = format!(
            "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {}; then podman system migrate",
            user.name
        );
        let (uid_count, gid_count) = rootless_sub_ids(user).unwrap_or_default();
        if uid_count == 0 || gid_count == 0 {
            checks.push(fail(
                "subuid/subgid",
                format!(
                    "no subordinate {} for {} in /etc/subuid, /etc/subgid",
                    if uid_count == 0 { "uids" } else { "gids" },
                    user.name
                ),
                fix,
            ));
        } else if uid_count < 65_536 || gid_count < 65_536 {
            checks.push(warn(
                "subuid/subgid",
                format!(
                    "only {uid_count} subuids / {gid_count} subgids: images with high uids fail"
                ),
                fix,
            ));
        } else {
            checks.push(ok(
                "subuid/subgid",
                format!("{uid_count} subuids, {gid_count} subgids"),
            ));
        }
        let fix = format!(
            "log in with a real session (ssh or console, not `su`), or: sudo loginctl enable-linger {} && export XDG_RUNTIME_DIR=/run/user/{}",
            user.name, user.uid
        );
        match env.get("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            None => checks.push(fail(
                "XDG_RUNTIME_DIR",
                "not set: rootless podman needs it",
                fix,
            )),
            Some(dir) => match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() && m.uid() == user.uid => {
                    checks.push(ok("XDG_RUNTIME_DIR", dir.clone()))
                }
                Ok(m) if m.is_dir() => checks.push(fail(
                    "XDG_RUNTIME_DIR",
                    format!("{dir} belongs to uid {}, not {}", m.uid(), user.uid),
                    fix,
                )),
                _ => checks.push(fail(
                    "XDG_RUNTIME_DIR",
                    format!("{dir} does not exist"),
                    fix,
                )),
            },
        }
    }
    let tun = Path::new("/dev/net/tun");
    let usable = std::fs::metadata(tun).is_ok_and(|m| m.file_type().is_char_device())
        && nix::unistd::access(
            tun,
            nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
        )
        .is_ok();
    if usable {
        checks.push(ok("/dev/net/tun", "present and usable"));
    } else if user.is_root() {
        checks.push(warn(
            "/dev/net/tun",
            "missing or not usable: rootless networking will not work for other users",
            "sudo modprobe tun",
        ));
    } else {
        checks.push(fail(
            "/dev/net/tun",
            "missing or not usable: rootless containers get no network",
            "sudo modprobe tun (in a container: run it with --device /dev/net/tun)",
        ));
    }
    checks
}

pub(super) fn linger_check(user: &UserInfo, linger: (Option<bool>, String)) -> Check {
    let fix = format!("sudo loginctl enable-linger {}", user.name);
    match linger.0 {
        Some(true) => ok("linger", format!("on for {}", user.name)),
        Some(false) => warn(
            "linger",
            format!(
                "off for {}: a gitlab-runner user service stops when {} logs out",
                user.name, user.name
            ),
            fix,
        ),
        None => warn("linger", format!("unknown: {}", linger.1), fix),
    }
}

pub(super) fn gitlab_runner_check(found: Option<(PathBuf, Result<String, String>)>) -> Check {
    match found {
        None => fail(
            "gitlab-runner",
            "not installed (not in $PATH)",
            gitlab_runner_advice_here().join(" "),
        ),
        Some((path, Ok(version))) => ok("gitlab-runner", format!("{version} ({})", path.display())),
        Some((path, Err(e))) => fail(
            "gitlab-runner",
            format!("{} --version failed: {e}", path.display()),
            "reinstall gitlab-runner",
        ),
    }
}

pub(super) fn runners_checks(path: &Path, env: &HashMap<String, String>) -> Vec<Check> {
    let mut checks = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            checks.push(warn(
                "runners",
                format!("{} does not exist: no runner uses pogo yet", path.display()),
                "POGO_RUNNER_TOKEN=glrt-… pogo register --url https://gitlab.example.com",
            ));
            return checks;
        }
        Err(e) => {
            checks.push(warn(
                "runners",
                format!("cannot read {}: {e}", path.display()),
                "run pogo doctor as the user gitlab-runner runs as, or pass --runner-config",
            ));
            return checks;
        }
    };
    let runners = match runner_config::list(&text, path) {
        Ok(r) => r,
        Err(e) => {
            checks.push(fail(
                "runners",
                e.to_string(),
                format!("fix {} by hand", path.display()),
            ));
            return checks;
        }
    };
    let pogo: Vec<_> = runners.iter().filter(|r| r.uses_pogo(None)).collect();
    if pogo.is_empty() {
        checks.push(warn(
            "runners",
            format!(
                "none of the {} runner(s) in {} uses pogo",
                runners.len(),
                path.display()
            ),
            "POGO_RUNNER_TOKEN=glrt-… pogo register --url https://gitlab.example.com",
        ));
    } else {
        let names: Vec<&str> = pogo.iter().map(|r| r.name.as_str()).collect();
        checks.push(ok(
            "runners",
            format!("{} uses pogo: {}", path.display(), names.join(", ")),
        ));
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            checks.push(warn(
                "runners",
                format!(
                    "{} is readable by others (mode {:o}) and holds runner tokens",
                    path.display(),
                    m.permissions().mode() & 0o777
                ),
                format!("chmod 600 {}", path.display()),
            ));
        }
    }
    for r in pogo {
        let exec = r.run_exec.clone().unwrap_or_default();
        if find_in_path(&exec, env).is_none() {
            checks.push(fail(
                "runners",
                format!(
                    "runner '{}': run_exec {exec} is not an executable file",
                    r.name
                ),
                format!(
                    "install pogo there, or pogo register --replace --name {}",
                    r.name
                ),
            ));
        }
        match &r.pogo_config {
            None => checks.push(warn(
                "runners",
                format!(
                    "runner '{}' passes no --config: pogo uses gitlab-runner's $HOME",
                    r.name
                ),
                format!("pogo register --replace --name {} (adds --config)", r.name),
            )),
            Some(c) if !c.exists() => checks.push(fail(
                "runners",
                format!(
                    "runner '{}': its pogo config {} does not exist",
                    r.name,
                    c.display()
                ),
                format!(
                    "create it, or pogo register --replace --name {} --pogo-config PATH",
                    r.name
                ),
            )),
            Some(c) => {
                let home: HashMap<String, String> = env
                    .get("HOME")
                    .map(|h| ("HOME".to_string(), h.clone()))
                    .into_iter()
                    .collect();
                if let Err(e) = config::load(Some(c), &home) {
                    checks.push(fail(
                        "runners",
                        format!("runner '{}': {e}", r.name),
                        format!("fix {}", c.display()),
                    ));
                }
            }
        }
    }
    checks
}
