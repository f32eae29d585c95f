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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_runner: Option<StageRunner>,
    /// The shell gitlab-runner writes stage scripts for (reported by `pogo config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Shell>,
    /// Image for the predefined stages (git, cache, artifacts); unset: the job image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper_image: Option<String>,
    /// Days an unused persistent builds volume is kept (default 7; 0: a fresh builds dir per
    /// job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_builds_days: Option<u64>,
    /// Minutes to keep a failed job's containers for debugging (0: remove at cleanup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_failed: Option<u64>,
    /// KiB of a job's log kept in its log copy for `pogo tui` (its first and last halves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_copy_limit: Option<u64>,
    /// MiB the images pogo pulled for jobs may take before `pogo gc` removes the least
    /// recently used (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_images_size: Option<u64>,
    /// MiB the job caches under `cache_dir` may take before `pogo gc` removes the least
    /// recently used (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cache_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountRule>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub extra_arguments: BTreeMap<String, ExtraArgsRule>,
    /// Image globs jobs may use (empty: any image).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_images: Vec<String>,
    /// Image globs `pogo gc` never removes for `max_images_size`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_images: Vec<String>,
    /// Service image globs jobs may use (empty: any service).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_services: Vec<String>,
    /// Pull policies a job may ask for (`image: pull_policy`); empty: only `pull_policy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_pull_policies: Vec<PullPolicy>,
}

/// A map whose keys must differ: YAML parsers keep the last of two equal keys, and a second
/// `gpu:` under `extra_arguments` would silently replace the first.
fn unique_keys<'de, D, T>(de: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Unique<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Unique<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of tag to arguments")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, T>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "'{key}' is there twice: keep one entry per tag"
                    )));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    de.deserialize_map(Unique(std::marker::PhantomData))
}

/// One `extra_arguments` entry: either just the arguments (`tag: '--env A=1'`), or a map
/// restricting it to projects and/or allowing arguments that widen the container's reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ExtraArgsRule {
    Args(String),
    Full(ExtraArgsEntry),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraArgsEntry {
    #[serde(default)]
    pub args: String,
    /// `CI_PROJECT_PATH` globs; empty = every project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Allows arguments such as `--privileged`, `--device`, `--volume`, `--network=host`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// podman arguments for the job's service containers (`--memory 1g --cpus 1`), as the
    /// Docker executor's `service_*` settings; `args` reach the job container only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub services: String,
    /// A container path where the job gets a podman volume of its project's own, kept between
    /// jobs (image builds' layer storage: `/var/lib/containers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_volume: Option<String>,
}

impl ExtraArgsRule {
    pub fn entry(self) -> ExtraArgsEntry {
        match self {
            ExtraArgsRule::Args(args) => ExtraArgsEntry {
                args,
                ..ExtraArgsEntry::default()
            },
            ExtraArgsRule::Full(e) => e,
        }
    }
}

// A string or a map, keeping serde's precise messages (and positions) for the map form,
// which an untagged derive would replace by "did not match any variant".
impl<'de> Deserialize<'de> for ExtraArgsRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ExtraArgsRule;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "podman arguments as a string, or a map with `args`, `projects`, `privileged`, \
                     `services`, `project_volume`",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ExtraArgsRule::Args(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                ExtraArgsEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ExtraArgsRule::Full)
            }
        }
        d.deserialize_any(V)
    }
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
    "stage_runner",
    "shell",
    "helper_image",
    "persistent_builds_days",
    "keep_failed",
    "log_copy_limit",
    "max_images_size",
    "max_cache_size",
];

/// Top-level keys holding lists or maps.
pub const COLLECTION_KEYS: &[&str] = &[
    "mounts",
    "extra_arguments",
    "allowed_images",
    "keep_images",
    "allowed_services",
    "allowed_pull_policies",
];

/// Keys of a map-form `extra_arguments` entry.
pub const EXTRA_ARGS_KEYS: &[&str] = &[
    "args",
    "projects",
    "privileged",
    "services",
    "project_volume",
];

/// Keys of one `mounts:` entry.
pub const MOUNT_KEYS: &[&str] = &["volume", "tags", "projects", "readonly"];

/// A host directory mounted into jobs, optionally only for jobs with one of `tags`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MountRule {
    /// `HOST:CONTAINER[:OPTIONS]`, as for `podman run --volume`.
    pub volume: String,
    /// Mounted only for jobs carrying one of these tags; empty = every job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Mounted only for projects whose `CI_PROJECT_PATH` matches one of these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
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

/// How `pogo run` executes a stage in the job container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageRunner {
    /// pogo's static agent inside the container, falling back to `podman exec` where it
    /// cannot run.
    #[default]
    Agent,
    /// Always `podman exec` (one process per stage).
    Exec,
}

impl StageRunner {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "exec" => Some(Self::Exec),
            _ => None,
        }
    }
}

/// The shell of the stage scripts: what `pogo config` reports to gitlab-runner and what
/// `pogo run` feeds them to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shell {
    /// gitlab-runner's default: the image needs bash.
    #[default]
    Bash,
    /// POSIX sh scripts: images without bash (busybox, alpine) work.
    Sh,
}

impl Shell {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bash" => Some(Self::Bash),
            "sh" => Some(Self::Sh),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bash => "bash",
            Self::Sh => "sh",
        }
    }
}

impl fmt::Display for Shell {
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
    pub projects: Globs,
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

    /// For a job with these tags in this project?
    pub fn applies_to(&self, job_tags: &[String], project: &str) -> bool {
        (self.tags.is_empty() || self.tags.iter().any(|t| job_tags.contains(t)))
            && self.projects.allows(project)
    }
}

/// Extra podman arguments for jobs with `tag`, already split like a shell would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtraArgs {
    pub tag: String,
    pub source: String,
    pub args: Vec<String>,
    pub projects: Globs,
    pub privileged: bool,
    /// For the job's service containers, split (`services:`), and as written.
    pub service_args: Vec<String>,
    pub services_source: String,
    /// Where the job gets its project's kept volume (`project_volume:`).
    pub project_volume: Option<String>,
}

impl ExtraArgs {
    pub fn applies_to(&self, job_tags: &[String], project: &str) -> bool {
        job_tags.contains(&self.tag) && self.projects.allows(project)
    }
}

/// A list of glob patterns (`*`, `?`, `[...]`, `{a,b}`); empty allows everything.
#[derive(Debug, Clone, Default)]
pub struct Globs {
    pub patterns: Vec<String>,
    set: globset::GlobSet,
}

impl Globs {
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            let g = globset::GlobBuilder::new(p)
                .literal_separator(false)
                .build()
                .map_err(|e| format!("'{p}' is not a valid glob: {e}"))?;
            b.add(g);
        }
        let set = b.build().map_err(|e| e.to_string())?;
        Ok(Self {
            patterns: patterns.to_vec(),
            set,
        })
    }

    /// True when the list is empty or `value` matches a pattern.
    pub fn allows(&self, value: &str) -> bool {
        self.patterns.is_empty() || self.set.is_match(value)
    }

    /// True when `value` matches a pattern (never for an empty list).
    pub fn matches(&self, value: &str) -> bool {
        self.set.is_match(value)
    }
}

impl PartialEq for Globs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}
impl Eq for Globs {}

impl Serialize for Globs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.patterns.serialize(s)
    }
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
    pub stage_runner: StageRunner,
    pub shell: Shell,
    pub helper_image: Option<String>,
    /// Keep a builds volume per runner + project + slot for jobs that fetch, removed by
    /// `pogo gc` after this many days unused (0: off).
    pub persistent_builds_days: u64,
    /// Minutes a failed job's containers are kept after cleanup (0 = off).
    pub keep_failed: u64,
    /// Bytes of a job's log its log copy keeps (the first and last halves).
    pub log_copy_limit: u64,
    /// Bytes the images pogo pulled for jobs may take (0: no limit); `pogo gc` removes the
    /// least recently used past it.
    pub max_images_size: u64,
    /// Images `pogo gc` never removes for `max_images_size`.
    pub keep_images: Globs,
    /// Bytes the job caches under `cache_dir` may take (0: no limit); `pogo gc` removes the
    /// least recently used past it.
    pub max_cache_size: u64,
    pub mounts: Vec<Mount>,
    pub extra_arguments: Vec<ExtraArgs>,
    pub allowed_images: Globs,
    pub allowed_services: Globs,
    /// Pull policies a job may choose; never empty (default: `[pull_policy]`).
    pub allowed_pull_policies: Vec<PullPolicy>,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
}

pub const DEFAULT_BUILDS_DIR: &str = "/builds";
pub const DEFAULT_SERVICES_WAIT_TIMEOUT: u64 = 30;
/// `persistent_builds_days`: a project whose jobs run at least weekly keeps its clone, as
/// the Docker executor keeps its builds volume (which nothing removes).
pub const DEFAULT_PERSISTENT_BUILDS_DAYS: u64 = 7;
/// `log_copy_limit` (KiB): gitlab-runner's default `output_limit`, 4 MiB.
pub const DEFAULT_LOG_COPY_LIMIT_KIB: u64 = 4096;
/// The smallest and largest `log_copy_limit` (KiB): 64 KiB, 1 GiB.
pub const LOG_COPY_LIMIT_RANGE_KIB: std::ops::RangeInclusive<u64> = 64..=1024 * 1024;
/// All log copies together keep at most this many times `log_copy_limit` (`pogo gc` removes
/// the oldest of finished jobs first).
pub const LOG_COPIES_TOTAL_FACTOR: u64 = 64;
/// The longest `services_wait_timeout` (seconds): a day. Longer is surely a typo (and would
/// overflow the clock arithmetic).
pub const MAX_SERVICES_WAIT_TIMEOUT: u64 = 86_400;
pub const DEFAULT_PODMAN: &str = "podman";
