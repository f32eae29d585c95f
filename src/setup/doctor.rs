//! `pogo doctor`: one screen of checks of this machine for running GitLab jobs in rootless
//! Podman through pogo, each ✓ / ⚠ / ✗ with its fix. Exit status 1 when any check is ✗.
//!
//! [`run_checks`] returns the checks as data (the TUI shows the same list). The slow parts
//! (`podman info`, `gitlab-runner --version`, `loginctl`, `podman image exists`) run in
//! parallel, so the whole doctor takes about as long as `podman info` (well under a second)
//! unless `--run` runs a trial job ([`super::trial`]).

use super::install::{gitlab_runner_advice_here, linger, output_with_timeout};
use super::{find_in_path, runner_config, UserInfo};
use crate::config::{self, Config, PullPolicy};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `pogo doctor`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Checks podman, rootless prerequisites (subuid/subgid, XDG_RUNTIME_DIR, /dev/net/tun, slirp4netns or pasta, storage driver), cgroups and resource limits, linger, gitlab-runner and the runners that use pogo, the pogo config, mount paths, default_image and auth_file. Exit status 1 when any check fails (✗)."
)]
pub struct DoctorArgs {
    /// Also run one job-shaped trial through pogo's own phases: the default image (or
    /// --image) with a service, pogo's init and stage agent, removed afterwards
    #[arg(long)]
    pub run: bool,
    /// Image for --run (default: the pogo config's default_image)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// gitlab-runner's config.toml (default: /etc/gitlab-runner/config.toml for root, else
    /// ~/.gitlab-runner/config.toml)
    #[arg(long, value_name = "PATH")]
    pub runner_config: Option<PathBuf>,
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "⚠",
            Status::Fail => "✗",
        }
    }
}

/// One line of the doctor's screen, with the fix when it is not ✓.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    pub name: String,
    pub message: String,
    pub fix: Option<String>,
}

pub(super) fn ok(name: &str, message: impl Into<String>) -> Check {
    Check {
        status: Status::Ok,
        name: name.to_string(),
        message: message.into(),
        fix: None,
    }
}

pub(super) fn warn(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status: Status::Warn,
        name: name.to_string(),
        message: message.into(),
        fix: Some(fix.into()),
    }
}

pub(super) fn fail(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status: Status::Fail,
        name: name.to_string(),
        message: message.into(),
        fix: Some(fix.into()),
    }
}

/// What the doctor looks at.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--config` (else `$POGO_CONFIG`, `~/.pogo.yaml`, ...).
    pub pogo_config: Option<PathBuf>,
    pub runner_config: Option<PathBuf>,
    pub run: bool,
    pub image: Option<String>,
}

const QUICK: Duration = Duration::from_secs(5);

fn first_line(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

pub(super) fn podman_command(podman: &str, podman_args: &[String], args: &[&str]) -> Command {
    let mut c = Command::new(podman);
    // as pogo's other podman calls: podman 5's cgroups v1 warning would be the first line of
    // every error shown here (the cgroups check says it once)
    c.args(podman_args)
        .args(args)
        .env(crate::podman::QUIET_CGROUPS_V1, "1");
    c
}

/// Removals cleanup started in the background that failed (`failed`: job key, errors); no
/// line when there are none. Pure.
fn removals_check(failed: &[(String, Vec<String>)]) -> Option<Check> {
    let (key, errors) = failed.first()?;
    Some(warn(
        "removals",
        format!(
            "{} job(s) whose containers cleanup could not remove, e.g. {key}: {}",
            failed.len(),
            errors.join("; ")
        ),
        "`pogo gc` removes them (prepare starts it every 10 minutes); fix what the error says, then run `pogo gc`",
    ))
}

/// What the images pogo pulled for jobs take now (`None`: podman could not list them).
fn pogo_images_size(cfg: &Config) -> Option<u64> {
    use crate::executor::images;
    let noted = images::noted(&cfg.working_dir);
    if noted.is_empty() {
        return Some(0);
    }
    let cmd = podman_command(
        &cfg.podman,
        &cfg.podman_args,
        &["image", "ls", "--format", "json"],
    );
    let out = super::install::output_with_timeout(cmd, std::time::Duration::from_secs(30)).ok()?;
    let listed: Vec<images::Listed> = serde_json::from_slice(&out.stdout).ok()?;
    Some(images::taken(&noted, &listed))
}

/// `(major, minor)` of "4.3.1" or "podman version 4.3.1".
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

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

fn podman_checks(
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

    // Network helper for rootless containers.
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
        (Some(p), _) => checks.push(ok(
            "network",
            format!("rootless networking: {}", p.display()),
        )),
        (None, true) => checks.push(fail(
            "network",
            "neither slirp4netns nor pasta is installed: rootless containers have no network",
            "sudo apt-get install slirp4netns (or passt for pasta)",
        )),
        (None, false) => checks.push(ok("network", "slirp4netns/pasta not needed as root")),
    }

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

    // Storage driver.
    match driver.as_str() {
        "vfs" => checks.push(warn(
            "storage",
            "storage driver vfs: every layer is a full copy (slow, uses much disk)",
            "install fuse-overlayfs (or use kernel 5.13+), set driver = \"overlay\" in ~/.config/containers/storage.conf, then podman system reset",
        )),
        "" => checks.push(warn(
            "storage",
            "podman did not report its storage driver",
            "run `podman info` and check store.graphDriverName",
        )),
        d => checks.push(ok("storage", format!("storage driver {d}"))),
    }

    // cgroups and resource limits.
    let cgroup_version = s("/host/cgroupVersion");
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
    let podman5 = parse_version(&version).is_some_and(|(major, _)| major >= 5);
    if cgroup_version == "v1" && podman5 {
        checks.push(warn(
            "cgroups",
            format!("cgroups v1: podman {version} deprecates it and will drop it (pogo keeps its warning out of job logs){}", if rootless { "; rootless podman cannot apply resource limits" } else { "" }),
            "boot with cgroups v2 (kernel parameter systemd.unified_cgroup_hierarchy=1)",
        ));
    } else if !rootless {
        checks.push(ok(
            "cgroups",
            format!("cgroups {cgroup_version}: resource limits work (rootful)"),
        ));
    } else if cgroup_version == "v1" {
        checks.push(warn(
            "cgroups",
            "cgroups v1: rootless podman cannot apply resource limits (--memory, --cpus, --pids-limit in extra_arguments)",
            "boot with cgroups v2 (kernel parameter systemd.unified_cgroup_hierarchy=1)",
        ));
    } else if missing.is_empty() {
        checks.push(ok(
            "cgroups",
            format!("cgroups {cgroup_version}: cpu, memory and pids limits work rootless"),
        ));
    } else {
        checks.push(warn(
            "cgroups",
            format!(
                "cgroups {cgroup_version}: {} not delegated to {}: those limits fail rootless",
                missing.join(", "),
                user.name
            ),
            "delegate them: printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf; sudo systemctl daemon-reload; log in again",
        ));
    }
    checks
}

fn rootless_checks(user: &UserInfo, env: &HashMap<String, String>) -> Vec<Check> {
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
        let uid_count = sub_id_count(
            &std::fs::read_to_string("/etc/subuid").unwrap_or_default(),
            &user.name,
            user.uid,
        );
        let gid_count = sub_id_count(
            &std::fs::read_to_string("/etc/subgid").unwrap_or_default(),
            &user.name,
            user.uid,
        );
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

/// The SELinux mode and what pogo does about it; under enforcing SELinux, the tag mounts
/// without `z`/`Z` (a container cannot read host files with their host labels). Pure.
fn selinux_check(mode: crate::podman::Selinux, cfg: &Config) -> Check {
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
fn firewall_check(backend: &str, rootless: bool, tool: Option<&Path>) -> Check {
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

fn linger_check(user: &UserInfo, linger: (Option<bool>, String)) -> Check {
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

fn gitlab_runner_check(found: Option<(PathBuf, Result<String, String>)>) -> Check {
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

fn runners_checks(path: &Path, env: &HashMap<String, String>) -> Vec<Check> {
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

fn config_checks(cfg: &Config, image_present: Option<bool>) -> Vec<Check> {
    let mut checks = Vec::new();
    // Mounts: every host path must exist (podman refuses a missing bind source).
    let missing: Vec<Check> = cfg
        .mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.host.exists())
        .map(|(i, m)| {
            let tags = if m.tags.is_empty() {
                "every job".to_string()
            } else {
                format!("jobs tagged {}", m.tags.join(", "))
            };
            fail(
                "mounts",
                format!(
                    "mounts[{i}]: host path {} does not exist ({tags} would fail)",
                    m.host.display()
                ),
                format!(
                    "mkdir -p {} (or fix the volume in the pogo config)",
                    shell_words::quote(&m.host.to_string_lossy())
                ),
            )
        })
        .collect();
    if missing.is_empty() {
        checks.push(ok(
            "mounts",
            match cfg.mounts.len() {
                0 => "none configured".to_string(),
                n => format!("all {n} host path(s) exist"),
            },
        ));
    } else {
        checks.extend(missing);
    }

    match (&cfg.default_image, image_present) {
        (None, _) => checks.push(warn(
            "default_image",
            "not set: jobs without `image:` fail",
            "set default_image in the pogo config (e.g. default_image: fedora:latest)",
        )),
        (Some(i), Some(true)) => {
            checks.push(ok("default_image", format!("{i} (in local storage)")))
        }
        (Some(i), _) if cfg.pull_policy == PullPolicy::Never => checks.push(fail(
            "default_image",
            format!("{i} is not in local storage and pull_policy is never"),
            format!("podman pull {i}"),
        )),
        (Some(i), _) => checks.push(ok(
            "default_image",
            format!("{i} (pulled on first use, pull_policy {})", cfg.pull_policy),
        )),
    }

    if let Some(auth) = &cfg.auth_file {
        checks.push(auth_file_check(auth));
    }
    checks.push(helper_image_check(cfg));
    checks
}

/// Without a helper image every job image needs git and gitlab-runner for the predefined
/// stages (clone, cache, artifacts); with one, any image works.
fn helper_image_check(cfg: &Config) -> Check {
    match &cfg.helper_image {
        Some(h) => ok(
            "helper_image",
            format!("{h}: clone, cache and artifact stages run there"),
        ),
        None => warn(
            "helper_image",
            "not set: job images need git and gitlab-runner for clone, cache and artifacts",
            "set helper_image in the pogo config (docs/configuration.md, \"Any job image\") \
             so that images without git (python:slim, node:alpine, distroless) work",
        ),
    }
}

fn auth_file_check(auth: &Path) -> Check {
    let text = match std::fs::read_to_string(auth) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                "auth_file",
                format!("cannot read {}: {e}", auth.display()),
                format!("podman login --authfile {} REGISTRY", auth.display()),
            )
        }
    };
    let mode = std::fs::metadata(auth)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    if mode & 0o004 != 0 {
        return fail(
            "auth_file",
            format!(
                "{} is world-readable (mode {mode:o}): every user can read the registry passwords",
                auth.display()
            ),
            format!("chmod 600 {}", auth.display()),
        );
    }
    let json: Result<serde_json::Value, _> = serde_json::from_str(&text);
    match json {
        Err(e) => fail(
            "auth_file",
            format!("{} is not valid JSON: {e}", auth.display()),
            format!(
                "recreate it: podman login --authfile {} REGISTRY",
                auth.display()
            ),
        ),
        Ok(v) if v.get("auths").is_none() => warn(
            "auth_file",
            format!(
                "{} has no \"auths\": podman will not find credentials in it",
                auth.display()
            ),
            format!("podman login --authfile {} REGISTRY", auth.display()),
        ),
        Ok(_) if mode & 0o040 != 0 => warn(
            "auth_file",
            format!("{} is group-readable (mode {mode:o})", auth.display()),
            format!("chmod 600 {}", auth.display()),
        ),
        Ok(_) => ok("auth_file", format!("{} (mode {mode:o})", auth.display())),
    }
}

/// Runs every check (in parallel where it calls other programs) and returns them in screen
/// order.
pub fn run_checks(opts: &Options, env: &HashMap<String, String>) -> Vec<Check> {
    let user = UserInfo::current(env);
    let loaded = config::load(opts.pogo_config.as_deref(), env);
    let cfg = loaded.as_ref().ok();
    let podman = cfg.map_or("podman".to_string(), |c| c.podman.clone());
    let podman_args: Vec<String> = cfg.map(|c| c.podman_args.clone()).unwrap_or_default();
    let runner_config = super::register::runner_config_path(opts.runner_config.as_deref(), &user);
    let have_podman = find_in_path(&podman, env).is_some();

    let (info, image_present, gitlab_runner, linger_state) = std::thread::scope(|s| {
        let info = s.spawn(|| -> Result<serde_json::Value, String> {
            if !have_podman {
                return Err("not installed".to_string());
            }
            let out = output_with_timeout(
                podman_command(&podman, &podman_args, &["info", "--format", "json"]),
                Duration::from_secs(20),
            )?;
            if !out.status.success() {
                return Err(first_line(&out.stderr));
            }
            serde_json::from_slice(&out.stdout).map_err(|e| format!("unreadable output: {e}"))
        });
        let image = s.spawn(|| -> Option<bool> {
            let image = cfg?.default_image.as_deref()?;
            if !have_podman {
                return None;
            }
            let out = output_with_timeout(
                podman_command(&podman, &podman_args, &["image", "exists", image]),
                QUICK,
            )
            .ok()?;
            Some(out.status.success())
        });
        let gitlab_runner = s.spawn(|| {
            let path = find_in_path("gitlab-runner", env)?;
            let mut cmd = Command::new(&path);
            cmd.arg("--version");
            let version = output_with_timeout(cmd, QUICK).and_then(|out| {
                if out.status.success() {
                    let text = String::from_utf8_lossy(&out.stdout).to_string();
                    Ok(text
                        .lines()
                        .find_map(|l| l.strip_prefix("Version:"))
                        .map(|v| format!("gitlab-runner {}", v.trim()))
                        .unwrap_or_else(|| first_line(&out.stdout)))
                } else {
                    Err(first_line(&out.stderr))
                }
            });
            Some((path, version))
        });
        let linger_state = s.spawn(|| linger(&user.name));
        (
            info.join()
                .unwrap_or_else(|_| Err("podman check crashed".to_string())),
            image.join().unwrap_or(None),
            gitlab_runner.join().unwrap_or(None),
            linger_state
                .join()
                .unwrap_or((None, "linger check crashed".to_string())),
        )
    });

    // where podman keeps images, for the disk check
    let graph_root = info
        .as_ref()
        .ok()
        .and_then(|v| v.pointer("/store/graphRoot"))
        .and_then(|v| v.as_str())
        .map(PathBuf::from);
    let mut checks = podman_checks(&user, &podman, env, info);
    // podman's own line first, then who runs it, then what rootless podman needs.
    let rest = checks.split_off(checks.len().min(1));
    checks.extend(rootless_checks(&user, env));
    checks.extend(rest);
    checks.push(linger_check(&user, linger_state));
    checks.push(gitlab_runner_check(gitlab_runner));
    checks.extend(runners_checks(&runner_config, env));
    match &loaded {
        Ok(c) => {
            checks.push(ok(
                "pogo config",
                match &c.source {
                    Some(p) => format!("{} is valid", p.display()),
                    None => "no config file: built-in defaults".to_string(),
                },
            ));
            checks.extend(config_checks(c, image_present));
            checks.push(selinux_check(crate::podman::selinux(), c));
            checks.push(super::space::disk_check(
                graph_root.as_deref(),
                &c.working_dir,
                &c.cache_dir,
                &crate::state::state_dir(&c.working_dir, env),
                super::space::PogoImages {
                    size: pogo_images_size(c),
                    limit: c.max_images_size,
                },
            ));
            checks.push(super::space::gpu_check(
                &[Path::new("/etc/cdi"), Path::new("/var/run/cdi")],
                Path::new("/dev"),
            ));
            if let Some(c) = removals_check(&crate::executor::removal::failed(&c.working_dir)) {
                checks.push(c);
            }
        }
        Err(e) => checks.push(fail(
            "pogo config",
            e.to_string(),
            "fix the file (mounts, default_image and auth_file are checked once it loads)",
        )),
    }
    if opts.run {
        checks.push(super::trial::run(
            opts.pogo_config.as_deref(),
            cfg,
            opts.image.as_deref(),
            env,
        ));
    }
    checks
}

/// The screen: one line per check, its fix indented below, and a summary.
pub fn render(checks: &[Check], color: bool) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    for c in checks {
        let symbol = if color {
            let code = match c.status {
                Status::Ok => "32",
                Status::Warn => "33",
                Status::Fail => "31",
            };
            format!("\x1b[{code}m{}\x1b[0m", c.status.symbol())
        } else {
            c.status.symbol().to_string()
        };
        s.push_str(&format!("{symbol} {:<width$}  {}\n", c.name, c.message));
        if let (Some(fix), true) = (&c.fix, c.status != Status::Ok) {
            s.push_str(&format!("  {:<width$}  fix: {fix}\n", ""));
        }
    }
    let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warns = checks.iter().filter(|c| c.status == Status::Warn).count();
    s.push_str(&match (fails, warns) {
        (0, 0) => "all checks passed\n".to_string(),
        (0, w) => format!("no problems, {w} warning(s) (⚠)\n"),
        (f, w) => format!("{f} problem(s) (✗), {w} warning(s) (⚠)\n"),
    });
    s
}

/// `pogo doctor`: exit status 1 when any check is ✗.
pub fn doctor_main(args: DoctorArgs, global_config: Option<&Path>) -> i32 {
    let env = super::env_map();
    let opts = Options {
        pogo_config: global_config.map(Path::to_path_buf),
        runner_config: args.runner_config,
        run: args.run,
        image: args.image,
    };
    let checks = run_checks(&opts, &env);
    let color = std::io::stdout().is_terminal() && !env.contains_key("NO_COLOR");
    print!("{}", render(&checks, color));
    i32::from(checks.iter().any(|c| c.status == Status::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_background_removal_is_a_warning_naming_the_job_and_the_fix() {
        assert!(removals_check(&[]).is_none(), "nothing to say: no line");
        let c = removals_check(&[(
            "pogo-r-1-0-abcd".to_string(),
            vec!["`podman rm -f` failed (exit 125): no space left on device".to_string()],
        )])
        .unwrap();
        assert_eq!(c.name, "removals");
        assert!(c.message.contains("1 job(s)"), "{}", c.message);
        assert!(
            c.message.contains("pogo-r-1-0-abcd: `podman rm -f` failed"),
            "{}",
            c.message
        );
        assert!(format!("{c:?}").contains("pogo gc"), "{c:?}");
    }

    #[test]
    fn doctor_recommends_a_helper_image_until_one_is_set() {
        let env: HashMap<String, String> = [("HOME".to_string(), "/h".to_string())].into();
        let mut cfg =
            crate::config::finalize(crate::config::RawConfig::default(), None, &env).unwrap();
        let c = helper_image_check(&cfg);
        assert!(
            c.fix.as_deref().is_some_and(|f| f.contains("helper_image")),
            "{c:?}"
        );
        cfg.helper_image = Some("localhost/helper:1".into());
        assert!(helper_image_check(&cfg).fix.is_none());
    }

    #[test]
    fn under_enforcing_selinux_tag_mounts_without_z_are_named() {
        use crate::podman::{selinux_from, Selinux};
        assert_eq!(selinux_from(None), Selinux::Disabled);
        assert_eq!(selinux_from(Some("1\n")), Selinux::Enforcing);
        assert_eq!(selinux_from(Some("0\n")), Selinux::Permissive);
        let env: HashMap<String, String> = [("HOME".to_string(), "/h".to_string())].into();
        let raw = crate::config::parse(
            "mounts:\n  - volume: /srv/keys:/keys:ro\n  - volume: /srv/data:/data:z\n",
            Path::new("/c.yaml"),
        )
        .unwrap();
        let cfg = crate::config::finalize(raw, None, &env).unwrap();
        let c = selinux_check(Selinux::Enforcing, &cfg);
        assert_eq!(c.status, Status::Warn);
        assert!(c.message.contains("mounts[0] (/srv/keys)"), "{c:?}");
        assert!(!c.message.contains("/srv/data"), "{c:?}");
        assert_eq!(selinux_check(Selinux::Disabled, &cfg).status, Status::Ok);
    }

    #[test]
    fn netavark_without_iptables_or_nft_fails_as_root_and_warns_rootless() {
        let nft = Path::new("/usr/sbin/nft");
        assert_eq!(firewall_check("netavark", false, None).status, Status::Fail);
        assert!(firewall_check("netavark", false, None)
            .fix
            .is_some_and(|f| f.contains("apt-get install iptables nftables")));
        assert_eq!(firewall_check("netavark", true, None).status, Status::Warn);
        assert_eq!(
            firewall_check("netavark", false, Some(nft)).status,
            Status::Ok
        );
        assert_eq!(firewall_check("cni", false, None).status, Status::Ok);
    }

    #[test]
    fn sub_ids_are_counted_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:65536\n";
        assert_eq!(sub_id_count(text, "alice", 1000), 65_536);
        assert_eq!(sub_id_count(text, "carol", 1001), 1000);
        assert_eq!(sub_id_count(text, "dave", 1002), 0);
    }

    #[test]
    fn versions_parse_from_podman_output() {
        assert_eq!(parse_version("podman version 4.3.1"), Some((4, 3)));
        assert_eq!(parse_version("5.0.0-dev"), Some((5, 0)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn screen_shows_fix_under_problems_and_a_summary() {
        let checks = vec![
            ok("podman", "podman 4.3.1"),
            fail(
                "mounts",
                "mounts[0]: host path /x does not exist",
                "mkdir -p /x",
            ),
        ];
        let s = render(&checks, false);
        assert!(s.contains("✓ podman  podman 4.3.1\n"), "{s}");
        assert!(s.contains("✗ mounts  mounts[0]"), "{s}");
        assert!(s.contains("fix: mkdir -p /x\n"), "{s}");
        assert!(s.ends_with("1 problem(s) (✗), 0 warning(s) (⚠)\n"), "{s}");
    }

    #[test]
    fn world_readable_auth_file_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("auth.json");
        std::fs::write(&p, "{\"auths\":{}}").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(auth_file_check(&p).status, Status::Fail);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(auth_file_check(&p).status, Status::Ok);
        std::fs::write(&p, "not json").unwrap();
        assert_eq!(auth_file_check(&p).status, Status::Fail);
    }
}
