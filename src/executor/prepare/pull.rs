//! Images: looked up in podman's local storage, pulled per the pull policies with the job's or
//! the runner's registry credentials, and what their inspect says (entrypoint, user, ports).

use super::super::response::JobResponse;
use super::super::{auth, jobdata, log_info, log_warning, Context, Failure, OrFailure};
use super::*;
use crate::config::PullPolicy;
use crate::podman::args;
use crate::podman::Podman;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The auth file the job's pulls use: the configured `auth_file`, or — when the job brings
/// registry credentials — a per-job merge written (0600) into pogo's job directory the first
/// time a pull needs it.
pub struct PullAuth {
    pub(super) configured: Option<String>,
    merged: Option<auth::MergedFile>,
    path: PathBuf,
    written: bool,
}

impl PullAuth {
    /// Only the runner's own auth file (the helper image's pulls).
    pub fn configured(configured: Option<String>) -> Self {
        Self {
            configured,
            merged: None,
            path: PathBuf::new(),
            written: false,
        }
    }

    pub(super) fn for_job(
        ctx: &Context,
        configured: Option<String>,
        response: &JobResponse,
        job_dir: &Path,
    ) -> Result<Self, Failure> {
        let custom = |k: &str| {
            ctx.env
                .get(&format!("CUSTOM_ENV_{k}"))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let docker_auth_config = custom("DOCKER_AUTH_CONFIG");
        let ci_registry = custom("CI_REGISTRY").map(|registry| {
            let user = custom("CI_REGISTRY_USER").unwrap_or_else(|| "gitlab-ci-token".into());
            let password = custom("CI_REGISTRY_PASSWORD")
                .map(crate::secret::Secret::new)
                .unwrap_or_else(|| ctx.job.job_token.clone());
            (registry, user, password)
        });
        let job = auth::JobAuth {
            docker_auth_config: docker_auth_config.as_deref(),
            credentials: &response.credentials,
            ci_registry,
        };
        let mut this = Self::configured(configured);
        if !job.has_any() {
            return Ok(this);
        }
        let configured_text = match &this.configured {
            None => None,
            Some(p) => Some(
                std::fs::read_to_string(p).or_system(|| format!("cannot read auth_file {p}"))?,
            ),
        };
        let merged = auth::merge(configured_text.as_deref(), &job).map_err(|e| {
            Failure::system(format!(
                "auth_file {} cannot be merged with the job's registry credentials: {}; fix it \
                 (`podman login --authfile {}` writes a valid one)",
                this.configured.as_deref().unwrap_or(""),
                e.0,
                this.configured.as_deref().unwrap_or("")
            ))
        })?;
        for w in &merged.warnings {
            log_warning(w);
        }
        this.merged = merged.file;
        this.path = job_dir.join(jobdata::AUTH_FILE);
        Ok(this)
    }

    /// The `--authfile` for a pull, writing the per-job file on first use.
    pub(super) fn path(&mut self) -> Result<Option<String>, Failure> {
        let Some(merged) = &self.merged else {
            return Ok(self.configured.clone());
        };
        let shown = self.path.display().to_string();
        if !self.written {
            let dir = self.path.parent().unwrap_or(Path::new("/"));
            jobdata::write_private(dir, jobdata::AUTH_FILE, merged.json.as_bytes())
                .or_system(|| format!("cannot write {shown}"))?;
            self.written = true;
            let registries: Vec<String> = merged
                .registries
                .iter()
                .map(|(r, source)| format!("{r} ({})", source.describe()))
                .collect();
            let configured = self.configured.as_deref().unwrap_or("");
            if registries.is_empty() {
                log_info(&format!(
                    "the job's registry credentials are all for registries auth_file {configured} covers; using those"
                ));
            } else {
                log_info(&format!(
                    "registry credentials for this job: {}{}",
                    registries.join(", "),
                    if configured.is_empty() {
                        String::new()
                    } else {
                        format!(", merged with auth_file {configured}")
                    }
                ));
            }
        }
        Ok(Some(shown))
    }

    pub(super) fn describe(&self) -> String {
        match (&self.merged, &self.configured) {
            (Some(_), Some(c)) => {
                format!("with the job's registry credentials merged with auth_file {c}")
            }
            (Some(_), None) => "with the job's registry credentials".to_string(),
            (None, Some(c)) => format!("with auth_file {c}"),
            (None, None) => "without credentials (no auth_file configured)".to_string(),
        }
    }
}

/// What pogo reads from `podman image inspect`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InspectedImage {
    #[serde(rename = "Id", default)]
    pub id: String,
    /// pogo pulled it for this job (not read from podman).
    #[serde(skip)]
    pub pulled: bool,
    #[serde(rename = "Config", default)]
    pub config: InspectedConfig,
    #[serde(rename = "Os", default)]
    pub os: String,
    #[serde(rename = "Architecture", default)]
    pub architecture: String,
    #[serde(rename = "Variant", default)]
    pub variant: String,
}

impl InspectedImage {
    /// Whether this image is for `platform` (normalized, `os/arch[/variant]`); an image that
    /// does not say is taken for it.
    pub fn is_for(&self, platform: &str) -> bool {
        let mut want = platform.split('/');
        let (os, arch, variant) = (want.next(), want.next(), want.next());
        let same = |want: Option<&str>, have: &str| {
            have.is_empty() || want.is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        same(os, &self.os) && same(arch, &self.architecture) && same(variant, &self.variant)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InspectedConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `USER` (`name`, `uid`, `uid:gid`...); empty: root.
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

impl InspectedConfig {
    /// Whether the image runs as a user other than root (then it cannot create the builds
    /// directory in the container's root-owned filesystem).
    pub fn runs_as_non_root(&self) -> bool {
        let user = self.user.as_deref().unwrap_or("").trim();
        let name = user.split(':').next().unwrap_or("");
        !(name.is_empty() || name == "0" || name == "root")
    }
}

/// The image's configuration when it is in local storage, `None` when it is not.
pub(super) async fn inspect_local(
    podman: &Podman,
    image: &str,
) -> Result<Option<InspectedImage>, Failure> {
    let argv = args::inspect_image(image);
    let out = podman
        .output(&argv)
        .await
        .or_system(|| format!("cannot inspect image {image}"))?;
    if out.status.success() {
        let list: Vec<InspectedImage> = serde_json::from_str(out.stdout.trim())
            .or_system(|| format!("cannot read `podman image inspect` of {image}"))?;
        return Ok(Some(list.into_iter().next().unwrap_or_default()));
    }
    // missing, or podman failing? (only on this slow path: a pull follows anyway)
    let exists = podman
        .image_exists(image)
        .await
        .or_system(|| format!("cannot check for image {image}"))?;
    if !exists {
        return Ok(None);
    }
    Err(Failure::system(format!(
        "cannot inspect image {image}: {}",
        crate::podman::last_lines(&out.stderr, 3)
    )))
}

/// Make `image` available locally, trying the pull policies in order (as the Docker executor:
/// when one fails the next is tried); returns its configuration. Pull progress goes to the log.
pub async fn ensure_image(
    podman: &Podman,
    image: &str,
    platform: Option<&str>,
    pull: &Pull,
    auth: &mut PullAuth,
) -> Result<InspectedImage, Failure> {
    let mut last = Failure::system(format!("no pull policy for image {image}"));
    for (i, policy) in pull.policies.iter().enumerate() {
        if i > 0 {
            log_info(&format!(
                "attempt #{}: trying pull_policy {policy} for {image}",
                i + 1
            ));
        }
        match ensure_with(podman, image, platform, *policy, pull.chosen_by_job, auth).await {
            Ok(info) => return Ok(info),
            Err(e) => {
                if i + 1 < pull.policies.len() {
                    log_warning(&format!("pull_policy {policy} failed for {image}: {e}"));
                }
                last = e;
            }
        }
    }
    Err(last)
}

pub(super) async fn ensure_with(
    podman: &Podman,
    image: &str,
    platform: Option<&str>,
    policy: PullPolicy,
    chosen_by_job: bool,
    auth: &mut PullAuth,
) -> Result<InspectedImage, Failure> {
    // a local image for another platform (`docker: platform`) counts as missing; `always`
    // pulls without looking
    let local = match policy {
        PullPolicy::Always => None,
        _ => inspect_local(podman, image)
            .await?
            .filter(|info| platform.is_none_or(|p| info.is_for(p))),
    };
    let image_for = match platform {
        Some(p) => format!("{image} for {p}"),
        None => image.to_string(),
    };
    match policy {
        PullPolicy::Never => {
            if let Some(info) = local {
                return Ok(info);
            }
            let image = &image_for;
            if chosen_by_job {
                return Err(Failure::build(
                    1,
                    format!(
                        "image {image} is not in podman's local storage and the job's pull_policy is \
                         never (image: pull_policy in .gitlab-ci.yml): allow a pull in the job, or \
                         ask the runner's owner to pull the image"
                    ),
                ));
            }
            return Err(Failure::system(format!(
                "image {image} is not in podman's local storage and pull_policy is never: \
                 pull it as the runner's user (`podman pull {image}`) or set pull_policy: if-not-present"
            )));
        }
        PullPolicy::IfNotPresent => {
            if let Some(info) = local {
                log_info(&format!(
                    "using local image {image_for} (pull_policy if-not-present)"
                ));
                return Ok(info);
            }
        }
        PullPolicy::Always => {}
    }
    log_info(&format!("pulling image {image_for} (pull_policy {policy})"));
    let auth_file = auth.path()?;
    let argv = args::pull(image, auth_file.as_deref(), platform);
    let (ok, tail) = podman
        .run_tee(&argv)
        .await
        .or_system(|| format!("cannot pull {image}"))?;
    if ok {
        let mut info = inspect_local(podman, image).await?.ok_or_else(|| {
            Failure::system(format!(
                "image {image} was pulled but podman cannot find it"
            ))
        })?;
        info.pulled = true;
        return Ok(info);
    }
    // podman's final "Error: …" line says it all (its retries were shown above)
    let tail = tail
        .rsplit("; ")
        .find_map(|l| l.strip_prefix("Error: "))
        .map(str::to_string)
        .unwrap_or(tail);
    Err(pull_failure(image, &auth.describe(), &tail))
}

/// A failed pull: the job's mistake when the registry answered that it has no such image or
/// will not give it (a wrong name or tag, missing credentials) — retrying cannot help, and the
/// Docker executor fails the job there too (`ImagePullFailure`, not retried); otherwise (the
/// registry unreachable, a timeout, podman failing) a system failure, which gitlab-runner
/// retries.
pub fn pull_failure(image: &str, auth: &str, error: &str) -> Failure {
    let e = error.to_ascii_lowercase();
    let answered = |words: &[&str]| words.iter().any(|w| e.contains(w));
    // the machine refusing pogo (storage, an auth file) is not the registry refusing the job
    if answered(&["permission denied", "operation not permitted"]) {
        return Failure::system(format!(
            "pulling image {image} failed {auth}: {error}; this machine refused it (storage or \
             file permissions of the runner's user); the job can be retried"
        ));
    }
    if answered(&[
        "manifest unknown",
        "name unknown",
        "repository does not exist",
        "invalid reference format",
    ]) {
        Failure::build(
            1,
            format!("image {image} does not exist in its registry ({error}); check the image name and tag"),
        )
    } else if answered(&[
        "unauthorized",
        "authentication required",
        "denied",
        "forbidden",
    ]) {
        Failure::build(
            1,
            format!(
                "the registry refused image {image} {auth} ({error}); check the image name and the \
                 credentials (DOCKER_AUTH_CONFIG, the runner's auth_file)"
            ),
        )
    } else {
        Failure::system(format!(
            "pulling image {image} failed {auth}: {error}; check that the registry is reachable; the job can be retried"
        ))
    }
}
