//! `pogo doctor`: one screen of checks of this machine for running GitLab jobs in rootless
//! Podman through pogo, each ✓ / ⚠ / ✗ with its fix. Exit status 1 when any check is ✗.
//!
//! [`run_checks`] returns the checks as data (the TUI shows the same list). The slow parts
//! (`podman info`, `gitlab-runner --version`, `loginctl`, `podman image exists`) run in
//! parallel, so the whole doctor takes about as long as `podman info` (well under a second)
//! unless `--run` runs a trial job ([`super::trial`]).

mod host;
mod image_build;
mod podman;
mod pogo_config;
#[cfg(test)]
mod tests;

use super::install::{linger, output_with_timeout};
use super::{find_in_path, UserInfo};
pub use crate::cli::DoctorArgs;
use crate::config;
use host::*;
use podman::*;
use pogo_config::*;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

pub(super) const QUICK: Duration = Duration::from_secs(5);

pub(super) fn first_line(bytes: &[u8]) -> String {
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

/// Runs every check (in parallel where it calls other programs) and returns them in screen
/// order.
pub fn run_checks(opts: &Options, env: &HashMap<String, String>) -> Vec<Check> {
    let user = UserInfo::current(env);
    let loaded = config::load(opts.pogo_config.as_deref(), env);
    let cfg = loaded.as_ref().ok();
    let podman = cfg.map_or("podman".to_string(), |c| c.podman.clone());
    let podman_args: Vec<String> = cfg.map(|c| c.podman_args.clone()).unwrap_or_default();
    let runner_config = super::register::runner_config_path(opts.runner_config.as_deref(), &user);
    let Probes {
        info,
        image_present,
        gitlab_runner,
        linger_state,
    } = probe(&podman, &podman_args, cfg, &user, env);
    // where podman keeps images, for the disk check
    let graph_root = info
        .as_ref()
        .ok()
        .and_then(|v| v.pointer("/store/graphRoot"))
        .and_then(|v| v.as_str())
        .map(PathBuf::from);
    // where podman keeps volumes, for the image builds check
    let volume_path = info
        .as_ref()
        .ok()
        .and_then(|v| v.pointer("/store/volumePath"))
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
                kept_volume_dirs(c).map(|dirs| super::space::kept_volumes(&dirs)),
            ));
            checks.push(image_build::check(
                &image_build::probe(rootless_sub_ids(&user), volume_path.as_deref()),
                &image_build::enabling_tags(c),
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

/// What the slow commands said: `podman info`, whether `default_image` is in local storage,
/// `gitlab-runner --version`, linger.
struct Probes {
    info: Result<serde_json::Value, String>,
    image_present: Option<bool>,
    gitlab_runner: Option<(PathBuf, Result<String, String>)>,
    linger_state: (Option<bool>, String),
}

/// Run the slow commands at once (the whole doctor takes about as long as `podman info`).
fn probe(
    podman: &str,
    podman_args: &[String],
    cfg: Option<&crate::config::Config>,
    user: &UserInfo,
    env: &HashMap<String, String>,
) -> Probes {
    let have_podman = find_in_path(podman, env).is_some();
    std::thread::scope(|s| {
        let info = s.spawn(|| -> Result<serde_json::Value, String> {
            if !have_podman {
                return Err("not installed".to_string());
            }
            let out = output_with_timeout(
                podman_command(podman, podman_args, &["info", "--format", "json"]),
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
                podman_command(podman, podman_args, &["image", "exists", image]),
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
        Probes {
            info: info
                .join()
                .unwrap_or_else(|_| Err("podman check crashed".to_string())),
            image_present: image.join().unwrap_or(None),
            gitlab_runner: gitlab_runner.join().unwrap_or(None),
            linger_state: linger_state
                .join()
                .unwrap_or((None, "linger check crashed".to_string())),
        }
    })
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
