//! The pogo config file a test writes: the settings it wants, as YAML.

use super::*;

/// One `mounts:` entry.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub volume: String,
    pub tags: Vec<String>,
    pub readonly: bool,
}

/// The settings a test wants in its pogo config file.
#[derive(Debug, Clone)]
pub struct PogoConfig {
    pub default_image: Option<String>,
    pub builds_dir: Option<String>,
    pub auth_file: Option<PathBuf>,
    pub pull_policy: Option<String>,
    pub runner_binary: Option<PathBuf>,
    pub services_wait_timeout: Option<u64>,
    pub podman: Option<String>,
    pub podman_args: Option<String>,
    pub mounts: Vec<MountSpec>,
    pub extra_arguments: Vec<(String, String)>,
    /// Written verbatim instead of the generated YAML.
    pub raw: Option<String>,
    /// Appended verbatim to the generated YAML (keys the fields above do not cover).
    pub extra_yaml: Option<String>,
}

impl Default for PogoConfig {
    fn default() -> Self {
        PogoConfig {
            default_image: Some(IMG_BASH.to_string()),
            builds_dir: None,
            auth_file: None,
            pull_policy: None,
            runner_binary: None,
            services_wait_timeout: Some(30),
            podman: None,
            podman_args: None,
            mounts: Vec::new(),
            extra_arguments: Vec::new(),
            raw: None,
            extra_yaml: None,
        }
    }
}

/// A YAML scalar (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl PogoConfig {
    /// The default config with `host` mounted writable at `at` in every job.
    pub fn mounting(host: &Path, at: &str) -> Self {
        PogoConfig {
            mounts: vec![MountSpec {
                volume: format!("{}:{at}", host.display()),
                tags: vec![],
                readonly: false,
            }],
            ..PogoConfig::default()
        }
    }

    /// This config with `yaml` (whole lines) appended to its `extra_yaml`.
    pub fn with_extra_yaml(self, yaml: &str) -> Self {
        PogoConfig {
            extra_yaml: Some(format!("{}{yaml}", self.extra_yaml.unwrap_or_default())),
            ..self
        }
    }

    pub fn to_yaml(&self, working_dir: &Path, cache_dir: &Path) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut y = String::new();
        if let Some(i) = &self.default_image {
            y.push_str(&format!("default_image: {}\n", q(i)));
        }
        y.push_str(&format!(
            "working_dir: {}\n",
            q(&working_dir.to_string_lossy())
        ));
        y.push_str(&format!("cache_dir: {}\n", q(&cache_dir.to_string_lossy())));
        if let Some(b) = &self.builds_dir {
            y.push_str(&format!("builds_dir: {}\n", q(b)));
        }
        if let Some(a) = &self.auth_file {
            y.push_str(&format!("auth_file: {}\n", q(&a.to_string_lossy())));
        }
        if let Some(p) = &self.pull_policy {
            y.push_str(&format!("pull_policy: {}\n", q(p)));
        }
        if let Some(r) = &self.runner_binary {
            y.push_str(&format!("runner_binary: {}\n", q(&r.to_string_lossy())));
        }
        if let Some(t) = self.services_wait_timeout {
            y.push_str(&format!("services_wait_timeout: {t}\n"));
        }
        if let Some(p) = &self.podman {
            y.push_str(&format!("podman: {}\n", q(p)));
        }
        if let Some(a) = &self.podman_args {
            y.push_str(&format!("podman_args: {}\n", q(a)));
        }
        if !self.mounts.is_empty() {
            y.push_str("mounts:\n");
            for m in &self.mounts {
                y.push_str(&format!("  - volume: {}\n", q(&m.volume)));
                if !m.tags.is_empty() {
                    let tags: Vec<String> = m.tags.iter().map(|t| q(t)).collect();
                    y.push_str(&format!("    tags: [{}]\n", tags.join(", ")));
                }
                if m.readonly {
                    y.push_str("    readonly: true\n");
                }
            }
        }
        if !self.extra_arguments.is_empty() {
            y.push_str("extra_arguments:\n");
            for (tag, args) in &self.extra_arguments {
                y.push_str(&format!("  {}: {}\n", q(tag), q(args)));
            }
        }
        if let Some(extra) = &self.extra_yaml {
            y.push_str(extra);
        }
        y
    }
}

/// The fixture stand-in for the `gitlab-runner` binary.
pub fn runner_stand_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab-runner")
}
