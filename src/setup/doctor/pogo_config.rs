//! The pogo config's checks once it loads: mounts, default_image, helper_image, auth_file,
//! pogo's images against their limit, background removals that failed.

use super::*;
use crate::config::{Config, PullPolicy};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Removals cleanup started in the background that failed (`failed`: job key, errors); no
/// line when there are none. Pure.
pub(super) fn removals_check(failed: &[(String, Vec<String>)]) -> Option<Check> {
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
pub(super) fn pogo_images_size(cfg: &Config) -> Option<u64> {
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
    let out =
        crate::setup::install::output_with_timeout(cmd, std::time::Duration::from_secs(30)).ok()?;
    let listed: Vec<images::Listed> = serde_json::from_slice(&out.stdout).ok()?;
    Some(images::taken(&noted, &listed))
}

/// The directories of the volumes pogo keeps between jobs (labelled as builds volumes: the
/// persistent builds volumes and the `project_volume`s), to count what they take (`None`:
/// podman could not list them).
pub(super) fn kept_volume_dirs(cfg: &Config) -> Option<Vec<PathBuf>> {
    use crate::podman::labels::{LABEL_BUILDS_VOLUME, LABEL_MANAGED_BY};
    let filter = format!("label={LABEL_BUILDS_VOLUME}");
    let cmd = podman_command(
        &cfg.podman,
        &cfg.podman_args,
        &["volume", "ls", "--filter", &filter, "--format", "json"],
    );
    let out =
        crate::setup::install::output_with_timeout(cmd, std::time::Duration::from_secs(30)).ok()?;
    if !out.status.success() {
        return None;
    }
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Some(
        listed
            .iter()
            .filter(|v| v["Labels"][LABEL_MANAGED_BY] == "pogo")
            .filter_map(|v| v["Mountpoint"].as_str().map(PathBuf::from))
            .collect(),
    )
}

pub(super) fn config_checks(cfg: &Config, image_present: Option<bool>) -> Vec<Check> {
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
pub(super) fn helper_image_check(cfg: &Config) -> Check {
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

pub(super) fn auth_file_check(auth: &Path) -> Check {
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
