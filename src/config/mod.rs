//! Loading pogo's configuration: file location, YAML parsing with positions, environment
//! overrides (`POGO_<KEY>`), defaults and validation. Everything but `load` is pure.

pub mod edit;
pub mod model;
pub mod policy;
pub mod resolve;
pub mod yaml;

pub use model::{
    Config, ExtraArgs, ExtraArgsEntry, ExtraArgsRule, Globs, Mount, MountRule, PullPolicy,
    RawConfig, Shell, StageRunner,
};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why the configuration could not be used. Every message says what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config file {path} (from {origin}) does not exist; create it or fix the path")]
    NotFound { path: PathBuf, origin: String },
    #[error("cannot read config file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: invalid YAML: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}:{column}: unknown key '{key}'{}", suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        suggestion: Option<String>,
    },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// Where the configuration comes from, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH` (must exist).
    Flag(PathBuf),
    /// `$POGO_CONFIG` (must exist).
    Env(PathBuf),
    /// `~/.pogo.yaml` or the XDG config file, found on disk.
    Found(PathBuf),
    /// No file: built-in defaults (plus environment overrides).
    Defaults,
}

/// Pick the config file: `--config`, then `$POGO_CONFIG`, then `~/.pogo.yaml`, then
/// `$XDG_CONFIG_HOME/pogo/config.yaml`, else defaults.
pub fn locate(flag: Option<&Path>, env: &HashMap<String, String>) -> ConfigSource {
    if let Some(p) = flag {
        return ConfigSource::Flag(p.to_path_buf());
    }
    if let Some(p) = env.get("POGO_CONFIG").filter(|p| !p.is_empty()) {
        return ConfigSource::Env(PathBuf::from(p));
    }
    if let Some(home) = env.get("HOME").filter(|h| !h.is_empty()) {
        let p = Path::new(home).join(".pogo.yaml");
        if p.is_file() {
            return ConfigSource::Found(p);
        }
    }
    if let Some(dirs) = directories::ProjectDirs::from("", "", "pogo") {
        let p = dirs.config_dir().join("config.yaml");
        if p.is_file() {
            return ConfigSource::Found(p);
        }
    }
    ConfigSource::Defaults
}

/// Load the effective configuration for this process (`--config` flag and environment).
pub fn load(flag: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let (text, path) = source(flag, env)?;
    load_text(&text, path.as_deref(), env)
}

/// The config file's text and path as [`load`] finds it: `("", None)` for the defaults.
pub fn source(
    flag: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<(String, Option<PathBuf>), ConfigError> {
    match locate(flag, env) {
        ConfigSource::Defaults => Ok((String::new(), None)),
        ConfigSource::Flag(p) | ConfigSource::Env(p) if !p.exists() => {
            let origin = if flag.is_some() {
                "--config".to_string()
            } else {
                "$POGO_CONFIG".to_string()
            };
            Err(ConfigError::NotFound { path: p, origin })
        }
        ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Found(p) => {
            // absolute: relative paths in the file are relative to its directory, and the
            // later phases of a job run elsewhere
            let p = match std::env::current_dir() {
                Ok(cwd) if p.is_relative() => cwd.join(p),
                _ => p,
            };
            let text = std::fs::read_to_string(&p).map_err(|e| ConfigError::Read {
                path: p.clone(),
                message: e.to_string(),
            })?;
            Ok((text, Some(p)))
        }
    }
}

/// The configuration from a config file's `text` (read from `path`; none: the defaults) and
/// the environment's overrides. An executor phase after `config` loads the text the config
/// phase read, so a job keeps the settings it started with (see `executor::env::JOB_CONFIG`).
pub fn load_text(
    text: &str,
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let raw = match path {
        None => RawConfig::default(),
        Some(p) => parse(text, p)?,
    };
    let raw = apply_env(raw, env)?;
    finalize(raw, path.map(Path::to_path_buf), env)
}

/// The file a symlinked config stands for, following every link; it need not exist yet (a
/// dotfiles link made before its target): then it is the path the last link names.
fn symlink_target(path: &Path) -> std::io::Result<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(path) {
        return Ok(real);
    }
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        if !current.is_symlink() {
            return Ok(current);
        }
        let target = std::fs::read_link(&current)?;
        current = match current.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    Err(std::io::Error::other(format!(
        "too many levels of symbolic links at {}",
        path.display()
    )))
}

/// Parse the YAML text of a config file. `path` is only used in error messages.
pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    // a byte-order mark (Windows editors) is not content either
    let has_content = text.trim_start_matches('\u{feff}').lines().any(|l| {
        let l = l.trim_start_matches('\u{feff}').trim();
        !l.is_empty() && !l.starts_with('#') && l != "---"
    });
    if !has_content {
        return Ok(RawConfig::default());
    }
    yaml::from_str::<RawConfig>(text).map_err(|e| {
        let line = e.line.unwrap_or(1);
        let column = e.column.unwrap_or(1);
        if let Some(key) = unknown_field(&e.message) {
            // which map it is, from the keys serde expected (not from the unknown key itself)
            let expected = e.message.split(", expected").nth(1).unwrap_or("");
            let candidates: Vec<&str> = if expected.contains("`volume`") {
                model::MOUNT_KEYS.to_vec()
            } else if expected.contains("`privileged`") {
                model::EXTRA_ARGS_KEYS.to_vec()
            } else {
                [model::SCALAR_KEYS, model::COLLECTION_KEYS].concat()
            };
            return ConfigError::UnknownKey {
                path: path.to_path_buf(),
                line,
                column,
                suggestion: closest(&key, &candidates).filter(|s| *s != key),
                key,
            };
        }
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message,
        }
    })
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

/// The candidate closest to `key`, if it is close enough to be a plausible typo.
pub fn closest(key: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(key, c), *c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// The environment variable that overrides setting `key` (`POGO_DEFAULT_IMAGE`, ...).
pub fn env_var(key: &str) -> String {
    format!("POGO_{}", key.to_ascii_uppercase())
}

/// Apply `POGO_DEFAULT_IMAGE`, `POGO_CACHE_DIR`, ... over the file's values. An empty value
/// unsets the key (back to the default).
pub fn apply_env(
    mut raw: RawConfig,
    env: &HashMap<String, String>,
) -> Result<RawConfig, ConfigError> {
    for key in model::SCALAR_KEYS {
        let var = env_var(key);
        let Some(value) = env.get(&var) else { continue };
        let v = (!value.is_empty()).then(|| value.clone());
        let invalid = |message: String| ConfigError::Invalid {
            origin: format!("${var}"),
            key: (*key).to_string(),
            message,
        };
        // a path from the environment has no config file to be relative to
        let path = |v: Option<String>| -> Result<Option<PathBuf>, ConfigError> {
            match v.map(PathBuf::from) {
                Some(p) if p.is_relative() && !p.starts_with("~") => Err(invalid(format!(
                    "'{}' must be an absolute path",
                    p.display()
                ))),
                p => Ok(p),
            }
        };
        match *key {
            "default_image" => raw.default_image = v,
            "working_dir" => raw.working_dir = path(v)?,
            "cache_dir" => raw.cache_dir = path(v)?,
            "builds_dir" => raw.builds_dir = v,
            "auth_file" => raw.auth_file = path(v)?,
            "runner_binary" => raw.runner_binary = path(v)?,
            "podman" => raw.podman = v,
            "podman_args" => raw.podman_args = v,
            "helper_image" => raw.helper_image = v,
            "persistent_builds_days" => {
                raw.persistent_builds_days = match v {
                    None => None,
                    Some(s) => Some(
                        s.parse()
                            .map_err(|_| invalid(format!("'{s}' is not a number of days")))?,
                    ),
                }
            }
            "shell" => {
                raw.shell =
                    match v {
                        None => None,
                        Some(s) => Some(Shell::parse(&s).ok_or_else(|| {
                            invalid(format!("'{s}' is not a shell; use bash or sh"))
                        })?),
                    }
            }
            "stage_runner" => {
                raw.stage_runner = match v {
                    None => None,
                    Some(s) => Some(StageRunner::parse(&s).ok_or_else(|| {
                        invalid(format!("'{s}' is not a stage runner; use agent or exec"))
                    })?),
                }
            }
            "pull_policy" => {
                raw.pull_policy = match v {
                    None => None,
                    Some(s) => Some(PullPolicy::parse(&s).ok_or_else(|| {
                        invalid(format!(
                            "'{s}' is not a pull policy; use if-not-present, always or never"
                        ))
                    })?),
                }
            }
            "keep_failed" => {
                raw.keep_failed = match v {
                    None => None,
                    Some(s) => Some(
                        s.parse()
                            .map_err(|_| invalid(format!("'{s}' is not a number of minutes")))?,
                    ),
                }
            }
            "log_copy_limit" => {
                raw.log_copy_limit = match v {
                    None => None,
                    Some(s) => Some(
                        s.parse()
                            .map_err(|_| invalid(format!("'{s}' is not a number of KiB")))?,
                    ),
                }
            }
            "max_images_size" | "max_cache_size" => {
                let mib = match v {
                    None => None,
                    Some(s) => Some(
                        s.parse()
                            .map_err(|_| invalid(format!("'{s}' is not a number of MiB")))?,
                    ),
                };
                if *key == "max_images_size" {
                    raw.max_images_size = mib;
                } else {
                    raw.max_cache_size = mib;
                }
            }
            "services_wait_timeout" => {
                raw.services_wait_timeout = match v {
                    None => None,
                    Some(s) => Some(
                        s.parse()
                            .map_err(|_| invalid(format!("'{s}' is not a number of seconds")))?,
                    ),
                }
            }
            _ => {}
        }
    }
    Ok(raw)
}

/// Fill in defaults and validate. `env` supplies `HOME` for `~/` paths and default dirs.
pub fn finalize(
    raw: RawConfig,
    source: Option<PathBuf>,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let invalid = Invalid {
        origin: source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".to_string()),
    };
    let paths = PathBase::of(source.as_deref(), env);
    let abs = |key: &str, p: PathBuf| -> Result<PathBuf, ConfigError> {
        let p = paths.resolve(&p);
        if p.is_absolute() {
            Ok(p)
        } else {
            Err(invalid.at(key, format!("'{}' must be an absolute path", p.display())))
        }
    };

    let working_dir = match raw.working_dir {
        Some(p) => abs("working_dir", p)?,
        None => default_working_dir(paths.home.as_deref()),
    };
    let cache_dir = match raw.cache_dir {
        Some(p) => abs("cache_dir", p)?,
        None => working_dir.join("cache"),
    };
    let builds_dir = raw
        .builds_dir
        .unwrap_or_else(|| model::DEFAULT_BUILDS_DIR.to_string());
    if !builds_dir.starts_with('/') {
        return Err(invalid.at(
            "builds_dir",
            format!("'{builds_dir}' must be an absolute path inside the job container"),
        ));
    }
    let auth_file = raw.auth_file.map(|p| abs("auth_file", p)).transpose()?;
    let runner_binary = raw
        .runner_binary
        .map(|p| abs("runner_binary", p))
        .transpose()?;
    let (services_wait_timeout, log_copy_limit) =
        limits(raw.services_wait_timeout, raw.log_copy_limit, &invalid)?;
    // empty means the default, as POGO_PODMAN="" does
    let podman = raw
        .podman
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| model::DEFAULT_PODMAN.to_string());
    let podman_args = split_args(raw.podman_args.as_deref().unwrap_or(""))
        .map_err(|m| invalid.at("podman_args", m))?;
    let mounts = mounts(raw.mounts, &paths, &invalid)?;
    let extra_arguments = extra_arguments(raw.extra_arguments, &invalid)?;
    let allowed_images = invalid.globs("allowed_images", &raw.allowed_images)?;
    let keep_images = invalid.globs("keep_images", &raw.keep_images)?;
    let allowed_services = invalid.globs("allowed_services", &raw.allowed_services)?;
    let pull_policy = raw.pull_policy.unwrap_or_default();
    let allowed_pull_policies =
        allowed_pull_policies(raw.allowed_pull_policies, pull_policy, &invalid)?;
    let helper_image = raw.helper_image.filter(|s| !s.is_empty());
    if let Some(h) = &helper_image {
        crate::podman::args::validate_image(h).map_err(|m| invalid.at("helper_image", m))?;
    }

    Ok(Config {
        default_image: raw.default_image.filter(|s| !s.is_empty()),
        working_dir,
        cache_dir,
        builds_dir,
        auth_file,
        pull_policy,
        runner_binary,
        services_wait_timeout,
        log_copy_limit: log_copy_limit * 1024,
        max_images_size: raw.max_images_size.unwrap_or(0).saturating_mul(1024 * 1024),
        keep_images,
        max_cache_size: raw.max_cache_size.unwrap_or(0).saturating_mul(1024 * 1024),
        podman,
        podman_args,
        stage_runner: raw.stage_runner.unwrap_or_default(),
        shell: raw.shell.unwrap_or_default(),
        helper_image,
        persistent_builds_days: raw
            .persistent_builds_days
            .unwrap_or(model::DEFAULT_PERSISTENT_BUILDS_DAYS),
        keep_failed: raw.keep_failed.unwrap_or(0),
        mounts,
        extra_arguments,
        allowed_images,
        allowed_services,
        allowed_pull_policies,
        source,
    })
}

/// Makes [`ConfigError::Invalid`]s of one config file.
struct Invalid {
    origin: String,
}

impl Invalid {
    fn at(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.clone(),
            key: key.to_string(),
            message,
        }
    }

    fn globs(&self, key: &str, patterns: &[String]) -> Result<Globs, ConfigError> {
        Globs::new(patterns).map_err(|m| self.at(key, m))
    }
}

/// `services_wait_timeout` (seconds) and `log_copy_limit` (KiB), defaulted and in range.
fn limits(
    services_wait_timeout: Option<u64>,
    log_copy_limit: Option<u64>,
    invalid: &Invalid,
) -> Result<(u64, u64), ConfigError> {
    let services_wait_timeout =
        services_wait_timeout.unwrap_or(model::DEFAULT_SERVICES_WAIT_TIMEOUT);
    if !(1..=model::MAX_SERVICES_WAIT_TIMEOUT).contains(&services_wait_timeout) {
        return Err(invalid.at(
            "services_wait_timeout",
            format!(
                "{services_wait_timeout} is not between 1 and {} seconds (a day)",
                model::MAX_SERVICES_WAIT_TIMEOUT
            ),
        ));
    }
    let log_copy_limit = log_copy_limit.unwrap_or(model::DEFAULT_LOG_COPY_LIMIT_KIB);
    if !model::LOG_COPY_LIMIT_RANGE_KIB.contains(&log_copy_limit) {
        return Err(invalid.at(
            "log_copy_limit",
            format!(
                "{log_copy_limit} is not between {} and {} KiB",
                model::LOG_COPY_LIMIT_RANGE_KIB.start(),
                model::LOG_COPY_LIMIT_RANGE_KIB.end()
            ),
        ));
    }
    Ok((services_wait_timeout, log_copy_limit))
}

fn mounts(
    rules: Vec<model::MountRule>,
    paths: &PathBase,
    invalid: &Invalid,
) -> Result<Vec<Mount>, ConfigError> {
    let mut mounts = Vec::with_capacity(rules.len());
    for (i, rule) in rules.into_iter().enumerate() {
        let key = format!("mounts[{i}]");
        let mut m = parse_volume(&rule.volume, paths).map_err(|e| invalid.at(&key, e))?;
        validate_tags(&rule.tags).map_err(|e| invalid.at(&key, e))?;
        if rule.readonly && !m.options.iter().any(|o| o == "ro") {
            m.options.retain(|o| o != "rw");
            m.options.push("ro".to_string());
        }
        m.tags = rule.tags;
        m.projects = invalid.globs(&key, &rule.projects)?;
        mounts.push(m);
    }
    Ok(mounts)
}

fn extra_arguments(
    rules: std::collections::BTreeMap<String, model::ExtraArgsRule>,
    invalid: &Invalid,
) -> Result<Vec<ExtraArgs>, ConfigError> {
    let mut extra_arguments = Vec::with_capacity(rules.len());
    for (tag, rule) in rules {
        let key = format!("extra_arguments.{tag}");
        validate_tags(std::slice::from_ref(&tag)).map_err(|e| invalid.at(&key, e))?;
        let entry = rule.entry();
        let args = split_args(&entry.args).map_err(|e| invalid.at(&key, e))?;
        let service_args =
            split_args(&entry.services).map_err(|e| invalid.at(&format!("{key}.services"), e))?;
        let mut widening = policy::widening_args(&args);
        widening.extend(policy::widening_args(&service_args));
        if !widening.is_empty() && !entry.privileged {
            return Err(invalid.at(
                &key,
                format!(
                    "{} widen(s) what jobs with tag '{tag}' can reach on this host; if you mean it, \
                     write the entry as a map with `args:` and `privileged: true`",
                    widening.join(", ")
                ),
            ));
        }
        let project_volume = entry
            .project_volume
            .map(|p| project_volume_path(&p))
            .transpose()
            .map_err(|e| invalid.at(&format!("{key}.project_volume"), e))?;
        extra_arguments.push(ExtraArgs {
            project_volume,
            projects: invalid.globs(&key, &entry.projects)?,
            privileged: entry.privileged,
            tag,
            source: entry.args,
            args,
            service_args,
            services_source: entry.services,
        });
    }
    Ok(extra_arguments)
}

/// The pull policies jobs may choose: as listed (once each), else `pull_policy` alone; the
/// list must include `pull_policy`, which jobs that choose none use.
fn allowed_pull_policies(
    listed: Vec<PullPolicy>,
    pull_policy: PullPolicy,
    invalid: &Invalid,
) -> Result<Vec<PullPolicy>, ConfigError> {
    let mut allowed: Vec<PullPolicy> = Vec::new();
    for p in listed {
        if !allowed.contains(&p) {
            allowed.push(p);
        }
    }
    if allowed.is_empty() {
        allowed.push(pull_policy);
    } else if !allowed.contains(&pull_policy) {
        return Err(invalid.at(
            "allowed_pull_policies",
            format!(
                "must include pull_policy ({pull_policy}): jobs that choose no pull_policy use it"
            ),
        ));
    }
    Ok(allowed)
}

/// Split podman arguments the way a POSIX shell would (quotes respected), without running one.
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    shell_words::split(s)
        .map_err(|e| format!("cannot split '{s}' into arguments: {e} (check the quotes)"))
}

/// How a path written in a config file becomes absolute: `~/` is the home directory, and a
/// relative path is relative to the directory of the config file (as named, not where a
/// symlink leads), as compose files and editors' configs do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathBase {
    pub home: Option<PathBuf>,
    /// The config file's directory; `None` (built-in defaults, environment variables):
    /// relative paths stay relative and are refused.
    pub dir: Option<PathBuf>,
}

impl PathBase {
    /// For the config file `file` (absolute), with `HOME` from `env`.
    pub fn of(file: Option<&Path>, env: &HashMap<String, String>) -> Self {
        PathBase {
            home: env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
            dir: file.and_then(Path::parent).map(Path::to_path_buf),
        }
    }

    /// `p` with `~` expanded and, when relative, joined to the config file's directory
    /// (`.` and `..` resolved by name). Pure.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        let p = match (p.strip_prefix("~"), &self.home) {
            (Ok(rest), Some(h)) => h.join(rest),
            _ => p.to_path_buf(),
        };
        match &self.dir {
            Some(dir) if p.is_relative() && !p.starts_with("~") => lexically_clean(&dir.join(p)),
            _ => p,
        }
    }
}

/// `p` without `.` components and with `name/..` pairs removed (by name, as compose does).
fn lexically_clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn default_working_dir(home: Option<&Path>) -> PathBuf {
    if let Some(dirs) = directories::ProjectDirs::from("", "", "pogo") {
        return dirs.data_dir().to_path_buf();
    }
    match home {
        Some(h) => h.join(".local/share/pogo"),
        None => std::env::temp_dir().join("pogo"),
    }
}

/// Tags must be non-empty words without spaces or commas (as GitLab stores them).
/// A `project_volume:` container path: absolute, without `:` or `,` (podman's separators),
/// `..` or the container's root; written back without a trailing `/`.
pub fn project_volume_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    if !path.starts_with('/')
        || trimmed.is_empty()
        || path.contains([':', ','])
        || path.chars().any(char::is_control)
        || trimmed.split('/').any(|c| c == "..")
    {
        return Err(format!(
            "'{path}' must be an absolute container path other than / without ':', ',' or '..' \
             (for image builds: /var/lib/containers)"
        ));
    }
    Ok(trimmed.to_string())
}

pub fn validate_tags(tags: &[String]) -> Result<(), String> {
    for t in tags {
        if t.is_empty()
            || t.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',')
        {
            return Err(format!(
                "tag '{t}' must be a non-empty word without spaces or commas"
            ));
        }
    }
    Ok(())
}

/// Parse `HOST:CONTAINER[:OPTIONS]` as `podman run --volume` does. HOST is absolute, `~/…`,
/// or `./…` / `../…` relative to the config file ([`PathBase`]); a bare name is podman's
/// named volume, which pogo does not mount.
pub fn parse_volume(spec: &str, paths: &PathBase) -> Result<Mount, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, options) = match parts.as_slice() {
        [h, c] => (*h, *c, ""),
        [h, c, o] => (*h, *c, *o),
        _ => {
            return Err(format!(
                "volume '{spec}' must be HOST:CONTAINER or HOST:CONTAINER:OPTIONS"
            ))
        }
    };
    let written = Path::new(host);
    let relative = written.starts_with(".") || written.starts_with("..");
    let host = if relative || written.starts_with("~") {
        paths.resolve(written)
    } else {
        written.to_path_buf()
    };
    if !host.is_absolute() {
        return Err(format!(
            "host path '{}' in volume '{spec}' must be absolute, ~/… or ./… (relative to the config file)",
            host.display()
        ));
    }
    if host.to_string_lossy().contains(':') {
        // only a relative or ~/ path can get one, from the directory it is joined to
        return Err(format!(
            "host path '{}' in volume '{spec}' contains ':', which podman's --volume cannot take: \
             move the directory or write another path",
            host.display()
        ));
    }
    if !container.starts_with('/') {
        return Err(format!(
            "container path '{container}' in volume '{spec}' must be absolute"
        ));
    }
    let options = options
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Mount {
        host,
        container: container.to_string(),
        options,
        tags: Vec::new(),
        projects: Globs::default(),
    })
}

/// Write a config file atomically: the text is checked first (a file pogo would reject is
/// never written), then written to a temporary file in the same directory, flushed to disk
/// and renamed over `path`. Readers — the executor, an editor, another writer — see the old
/// file or the new one, never a mix or a truncated file. Keeps the old file's permissions,
/// and a symlink stays a symlink (the file it points to is replaced).
pub fn write_atomic(
    path: &Path,
    text: &str,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let raw = parse(text, path)?;
    finalize(raw, Some(path.to_path_buf()), env)?;
    let io_err = |e: std::io::Error| ConfigError::Read {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    };
    // A symlinked config (dotfiles kept in a repository) stays a symlink: the file it points
    // to is replaced, not the link.
    let resolved;
    let path = if path.is_symlink() {
        resolved = symlink_target(path).map_err(io_err)?;
        resolved.as_path()
    } else {
        path
    };
    crate::fsutil::replace(
        path,
        text.as_bytes(),
        crate::fsutil::Replace {
            mode: None,
            durable: true,
            keep_owner: true,
        },
    )
    .map_err(io_err)
}

/// The effective configuration as YAML for `pogo print`, with credentials redacted.
pub fn to_yaml(config: &Config) -> Result<String, yaml::YamlError> {
    let redact = |args: &[String]| -> String {
        let mut out = Vec::with_capacity(args.len());
        let mut hide_next = false;
        for a in args {
            if hide_next {
                out.push("<redacted>".to_string());
                hide_next = false;
            } else if let Some((flag, _)) = a.split_once('=').filter(|(f, _)| is_secret_flag(f)) {
                out.push(format!("{flag}=<redacted>"));
            } else {
                hide_next = is_secret_flag(a);
                out.push(a.clone());
            }
        }
        shell_words::join(out)
    };
    let raw = RawConfig {
        default_image: config.default_image.clone(),
        working_dir: Some(config.working_dir.clone()),
        cache_dir: Some(config.cache_dir.clone()),
        builds_dir: Some(config.builds_dir.clone()),
        auth_file: config.auth_file.clone(),
        pull_policy: Some(config.pull_policy),
        runner_binary: config.runner_binary.clone(),
        services_wait_timeout: Some(config.services_wait_timeout),
        podman: Some(config.podman.clone()),
        podman_args: Some(redact(&config.podman_args)),
        stage_runner: Some(config.stage_runner),
        shell: Some(config.shell),
        helper_image: config.helper_image.clone(),
        persistent_builds_days: Some(config.persistent_builds_days),
        keep_failed: (config.keep_failed > 0).then_some(config.keep_failed),
        log_copy_limit: Some(config.log_copy_limit / 1024),
        max_images_size: (config.max_images_size > 0)
            .then_some(config.max_images_size / (1024 * 1024)),
        max_cache_size: (config.max_cache_size > 0)
            .then_some(config.max_cache_size / (1024 * 1024)),
        mounts: config
            .mounts
            .iter()
            .map(|m| MountRule {
                volume: m.volume_arg(),
                tags: m.tags.clone(),
                projects: m.projects.patterns.clone(),
                readonly: m.options.iter().any(|o| o == "ro"),
            })
            .collect(),
        extra_arguments: config
            .extra_arguments
            .iter()
            .map(|e| {
                let args = redact(&e.args);
                let services = redact(&e.service_args);
                let rule = if e.privileged
                    || !e.projects.patterns.is_empty()
                    || !services.is_empty()
                    || e.project_volume.is_some()
                {
                    ExtraArgsRule::Full(ExtraArgsEntry {
                        args,
                        projects: e.projects.patterns.clone(),
                        privileged: e.privileged,
                        services,
                        project_volume: e.project_volume.clone(),
                    })
                } else {
                    ExtraArgsRule::Args(args)
                };
                (e.tag.clone(), rule)
            })
            .collect(),
        allowed_images: config.allowed_images.patterns.clone(),
        keep_images: config.keep_images.patterns.clone(),
        allowed_services: config.allowed_services.patterns.clone(),
        // the default (only the configured policy) is left out
        allowed_pull_policies: if config.allowed_pull_policies == [config.pull_policy] {
            Vec::new()
        } else {
            config.allowed_pull_policies.clone()
        },
    };
    yaml::to_string(&raw)
}

fn is_secret_flag(flag: &str) -> bool {
    matches!(flag, "--creds" | "--password" | "--secret" | "--passphrase")
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
