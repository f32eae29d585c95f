//! The configuration model: what `~/.pogo.yaml` may contain (`RawConfig`) and the resolved,
//! validated form the executor uses (`Config`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The file as written by the user: every key optional, unknown keys rejected.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_binary: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_wait_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub podman: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub podman_args: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountRule>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_arguments: BTreeMap<String, String>,
}

/// Scalar top-level keys; each one can also be set by `POGO_<KEY>` in the environment.
pub const SCALAR_KEYS: &[&str] = &[
    "default_image",
    "working_dir",
    "cache_dir",
    "builds_dir",
    "auth_file",
    "pull_policy",
    "runner_binary",
    "services_wait_timeout",
    "podman",
    "podman_args",
];

/// Top-level keys holding lists or maps.
pub const COLLECTION_KEYS: &[&str] = &["mounts", "extra_arguments"];

/// Keys of one `mounts:` entry.
pub const MOUNT_KEYS: &[&str] = &["volume", "tags", "readonly"];

/// A host directory mounted into jobs, optionally only for jobs with one of `tags`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MountRule {
    /// `HOST:CONTAINER[:OPTIONS]`, as for `podman run --volume`.
    pub volume: String,
    /// Mounted only for jobs carrying one of these tags; empty = every job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull only when the image is not in local storage.
    #[default]
    IfNotPresent,
    /// Pull before every job.
    Always,
    /// Never pull; the image must already be local.
    Never,
}

impl PullPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "if-not-present" => Some(Self::IfNotPresent),
            "always" => Some(Self::Always),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IfNotPresent => "if-not-present",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `HOST:CONTAINER[:OPTIONS]` mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    /// podman volume options (`ro`, `z`, `U`, ...), `ro` included when `readonly: true`.
    pub options: Vec<String>,
    pub tags: Vec<String>,
}

impl Mount {
    /// The value of `podman run --volume`.
    pub fn volume_arg(&self) -> String {
        let mut s = format!("{}:{}", self.host.display(), self.container);
        if !self.options.is_empty() {
            s.push(':');
            s.push_str(&self.options.join(","));
        }
        s
    }

    pub fn applies_to(&self, job_tags: &[String]) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|t| job_tags.contains(t))
    }
}

/// Extra podman arguments for jobs with `tag`, already split like a shell would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtraArgs {
    pub tag: String,
    pub source: String,
    pub args: Vec<String>,
}

/// The resolved configuration: defaults filled in, environment overrides applied, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub default_image: Option<String>,
    pub working_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub builds_dir: String,
    pub auth_file: Option<PathBuf>,
    pub pull_policy: PullPolicy,
    pub runner_binary: Option<PathBuf>,
    pub services_wait_timeout: u64,
    pub podman: String,
    pub podman_args: Vec<String>,
    pub mounts: Vec<Mount>,
    pub extra_arguments: Vec<ExtraArgs>,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
}

pub const DEFAULT_BUILDS_DIR: &str = "/builds";
pub const DEFAULT_SERVICES_WAIT_TIMEOUT: u64 = 30;
pub const DEFAULT_PODMAN: &str = "podman";
