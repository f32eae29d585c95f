//! `pogo register` and `pogo unregister`: a gitlab-runner `[[runners]]` entry whose custom
//! executor is pogo, checked with GitLab first.
//!
//! [`register`] and [`unregister`] are the library entry points (the TUI's Runners screen
//! calls them too); [`register_main`] and [`unregister_main`] are the commands around them:
//! token input, messages, exit status.

use super::runner_config::{self, Added, NewRunner, RunnerConfigError, RunnerEntry};
use super::{redact, UserInfo};
use crate::cli::{RegisterArgs, UnregisterArgs};
use crate::config::{self, ConfigError};
use crate::gitlab::{self, LegacyRunnerOptions, RunnerApiError};
use crate::secret::Secret;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Environment variable for the runner authentication token (instead of `--token`).
pub const TOKEN_ENV: &str = "POGO_RUNNER_TOKEN";
/// Environment variable for the legacy registration token.
pub const REGISTRATION_TOKEN_ENV: &str = "POGO_REGISTRATION_TOKEN";
/// How long to wait for GitLab.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);
/// gitlab-runner's system id file, next to config.toml.
pub const SYSTEM_ID_FILE: &str = ".runner_system_id";

/// The pogo config `pogo register` creates when the chosen one does not exist yet.
pub const STARTER_POGO_CONFIG: &str = "\
# pogo's configuration, created by `pogo register`. Every key is optional: this file as it is
# means built-in defaults. `pogo print` shows the effective values, `pogo doctor` checks them,
# and docs/configuration.md lists every key.
#
# default_image: fedora:latest          # for jobs without `image:`
# cache_dir: /home/runner/cache         # host side of job caches
# auth_file: /home/runner/.docker-auth.json   # podman --authfile for private registries
# pull_policy: if-not-present           # always | never
# mounts:
#   - volume: /srv/data:/mnt/data
#     tags: [data]                      # mounted only for jobs with one of these tags
#     readonly: true
# extra_arguments:
#   big: --memory 8g                    # extra `podman run` arguments for jobs tagged `big`
";

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Usage(String),
    #[error("pogo config: {0}")]
    PogoConfig(#[from] ConfigError),
    #[error(transparent)]
    RunnerConfig(#[from] RunnerConfigError),
    #[error(transparent)]
    Api(#[from] RunnerApiError),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// Which token, and so which GitLab flow.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `glrt-…` (or another runner token): `POST /runners/verify`.
    RunnerToken(Secret),
    /// Legacy: `POST /runners` creates the runner.
    RegistrationToken(Secret, LegacyRunnerOptions),
}

/// Everything [`register`] needs; paths already resolved.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub url: String,
    pub credential: Credential,
    pub name: String,
    pub runner_config: PathBuf,
    /// Absolute.
    pub pogo_config: PathBuf,
    /// Absolute.
    pub pogo_binary: PathBuf,
    pub replace: bool,
    /// Absolute: the runner's `tls-ca-file`.
    pub tls_ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// What [`register`] did.
#[derive(Debug, Clone)]
pub struct Registered {
    pub runner_config: PathBuf,
    pub runner_id: u64,
    pub url: String,
    pub added: Added,
    /// The pogo config was missing and was created with [`STARTER_POGO_CONFIG`].
    pub created_pogo_config: bool,
    pub created_runner_config: bool,
}

/// The pogo config a runner should use, from the flags and what exists.
pub fn resolve_pogo_config(
    flag: Option<&Path>,
    global: Option<&Path>,
    env: &HashMap<String, String>,
    home: &Path,
) -> PathBuf {
    let chosen = match flag.or(global) {
        Some(p) => p.to_path_buf(),
        None => match config::locate(None, env) {
            config::ConfigSource::Env(p) | config::ConfigSource::Found(p) => p,
            _ => home.join(".pogo.yaml"),
        },
    };
    crate::fsutil::absolute(&chosen)
}

/// gitlab-runner's system id for this config.toml: the one in `.runner_system_id` next to it,
/// or a new `r_` + 12 random characters (gitlab-runner's own format) and `true`.
pub fn system_id(runner_config: &Path) -> (String, bool) {
    let file = system_id_path(runner_config);
    if let Ok(s) = std::fs::read_to_string(&file) {
        let s = s.trim();
        let valid = s.len() == 14
            && (s.starts_with("s_") || s.starts_with("r_"))
            && s[2..].chars().all(|c| c.is_ascii_alphanumeric());
        if valid {
            return (s.to_string(), false);
        }
    }
    (format!("r_{}", random_alnum(12)), true)
}

fn system_id_path(runner_config: &Path) -> PathBuf {
    runner_config
        .parent()
        .unwrap_or(Path::new("."))
        .join(SYSTEM_ID_FILE)
}

fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = vec![0u8; n];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        // No /dev/urandom: time and pid are unique enough for an id (not a secret).
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i * 7) % 120)) as u8;
        }
    }
    bytes
        .iter()
        .map(|b| CHARS[usize::from(*b) % CHARS.len()] as char)
        .collect()
}

/// Registers a runner: checks everything local first (pogo config, config.toml, name), then
/// asks GitLab, then writes config.toml (atomically, 0600). Nothing is written on any error.
pub fn register(
    req: &RegisterRequest,
    env: &HashMap<String, String>,
) -> Result<Registered, RegisterError> {
    let base = gitlab::parse_gitlab_url(&req.url)?;
    if req.name.trim().is_empty() {
        return Err(RegisterError::Usage("--name must not be empty".to_string()));
    }

    // The pogo config must be usable as it is (or missing: then the defaults are used).
    let pogo_exists = req.pogo_config.exists();
    let pogo = if pogo_exists {
        config::load(Some(&req.pogo_config), env)?
    } else {
        config::finalize(
            config::RawConfig::default(),
            Some(req.pogo_config.clone()),
            env,
        )?
    };

    let text = runner_config::read(&req.runner_config)?;
    let created_runner_config = !req.runner_config.exists();
    runner_config::check_can_add(&text, &req.runner_config, &req.name, req.replace)?;
    let (system_id, new_system_id) = system_id(&req.runner_config);

    let http = gitlab::Http {
        timeout: req.timeout,
        ca_pem: read_ca_file(req.tls_ca_file.as_deref())?,
    };
    let credentials = match &req.credential {
        Credential::RunnerToken(token) => gitlab::verify_runner(&base, token, &system_id, &http)?,
        Credential::RegistrationToken(token, options) => {
            gitlab::register_runner(&base, token, options, &http)?
        }
    };

    let url = base.as_str().trim_end_matches('/').to_string();
    let runner = NewRunner {
        name: req.name.clone(),
        url: url.clone(),
        id: credentials.id,
        token: credentials.token.clone(),
        token_obtained_at: super::rfc3339_utc(SystemTime::now()),
        token_expires_at: credentials.token_expires_at.clone(),
        builds_dir: pogo.builds_dir.clone(),
        cache_dir: pogo.cache_dir.to_string_lossy().into_owned(),
        pogo: req.pogo_binary.clone(),
        pogo_config: req.pogo_config.clone(),
        tls_ca_file: req.tls_ca_file.clone(),
    };
    let (out, added) = runner_config::add(&text, &req.runner_config, &runner, req.replace)?;

    let write_err = |path: &Path, e: std::io::Error| RegisterError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // gitlab-runner's directory (0700: config.toml holds tokens) before anything goes into
    // it; then the pogo config: a runner entry must never point at a config that could not
    // be made (every job of it would fail). On an error, what this call created goes again.
    let runner_dir = req
        .runner_config
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf);
    if let Some(dir) = &runner_dir {
        super::create_dir(dir, 0o700).map_err(|e| write_err(dir, e))?;
    }
    let undo = || {
        if !pogo_exists {
            let _ = std::fs::remove_file(&req.pogo_config);
        }
        if let Some(dir) = &runner_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    };
    let files = || -> Result<(), RegisterError> {
        if !pogo_exists {
            if let Some(dir) = req.pogo_config.parent() {
                super::create_dir(dir, 0o755).map_err(|e| write_err(dir, e))?;
            }
            super::atomic_write(&req.pogo_config, STARTER_POGO_CONFIG.as_bytes(), 0o644)
                .map_err(|e| write_err(&req.pogo_config, e))?;
        }
        if new_system_id {
            let file = system_id_path(&req.runner_config);
            super::atomic_write(&file, system_id.as_bytes(), 0o600)
                .map_err(|e| write_err(&file, e))?;
        }
        runner_config::write(&req.runner_config, &out)?;
        Ok(())
    };
    if let Err(e) = files() {
        undo();
        return Err(e);
    }
    Ok(Registered {
        runner_config: req.runner_config.clone(),
        runner_id: credentials.id,
        url,
        added,
        created_pogo_config: !pogo_exists,
        created_runner_config,
    })
}

/// The PEM text of a runner's `tls-ca-file`, if it has one.
fn read_ca_file(path: Option<&Path>) -> Result<Option<String>, RegisterError> {
    path.map(|p| {
        std::fs::read_to_string(p).map_err(|e| {
            RegisterError::Usage(format!(
                "cannot read the CA file {} (--tls-ca-file / tls-ca-file): {e}",
                p.display()
            ))
        })
    })
    .transpose()
}

/// What [`unregister`] did.
#[derive(Debug, Clone)]
pub struct Unregistered {
    pub removed: RunnerEntry,
    /// What GitLab was told, or why not (one line each).
    pub notes: Vec<String>,
}

/// Removes the runner `name` from config.toml, telling GitLab first unless `local_only`.
/// When GitLab cannot be reached the entry stays (so the runner is not left behind in
/// GitLab unnoticed), unless `local_only`.
pub fn unregister(
    runner_config_path: &Path,
    name: &str,
    local_only: bool,
    timeout: Duration,
) -> Result<Unregistered, RegisterError> {
    let text = runner_config::read(runner_config_path)?;
    let (out, removed) = runner_config::remove(&text, runner_config_path, name)?;
    let mut notes = Vec::new();
    if local_only {
        notes.push("GitLab was not contacted (--local-only)".to_string());
    } else {
        let glrt = gitlab::is_runner_authentication_token(removed.token.expose());
        let sid = std::fs::read_to_string(system_id_path(runner_config_path))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if removed.token.is_empty() {
            notes.push("the entry has no token: GitLab was not contacted".to_string());
        } else if glrt && sid.is_none() {
            notes.push(format!(
                "no {SYSTEM_ID_FILE} next to {}: GitLab was not told; it drops this machine from the runner's list once it stops polling",
                runner_config_path.display()
            ));
        } else {
            let base = gitlab::parse_gitlab_url(&removed.url)?;
            let http = gitlab::Http {
                timeout,
                ca_pem: read_ca_file(removed.tls_ca_file.as_deref())?,
            };
            match gitlab::unregister_runner(&base, &removed.token, sid.as_deref(), &http) {
                Ok(()) if glrt => notes.push(format!(
                    "GitLab forgot this machine for runner '{name}'; the runner itself stays in GitLab (delete it there if it is no longer needed)"
                )),
                Ok(()) => notes.push("GitLab deleted the runner".to_string()),
                Err(RunnerApiError::Status { status, .. })
                    if matches!(status, 401 | 403 | 404 | 410) =>
                {
                    notes.push(format!(
                        "GitLab answered HTTP {status}: it no longer knows this token (the runner was deleted there already)"
                    ))
                }
                Err(e) => {
                    return Err(RegisterError::Usage(format!(
                        "{e}\nconfig.toml is unchanged; to remove the entry anyway: pogo unregister --local-only {name}"
                    )))
                }
            }
        }
    }
    runner_config::write(runner_config_path, &out)?;
    Ok(Unregistered { removed, notes })
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// Where the token comes from.
enum TokenInput {
    CommandLine(String),
    Stdin,
    Env(String),
    Prompt,
    Missing,
}

fn token_input(flag: Option<&str>, env_var: &str, env: &HashMap<String, String>) -> TokenInput {
    match flag {
        Some("-") => TokenInput::Stdin,
        Some(t) => TokenInput::CommandLine(t.to_string()),
        None => match env.get(env_var).filter(|v| !v.trim().is_empty()) {
            Some(v) => TokenInput::Env(v.trim().to_string()),
            None if std::io::stdin().is_terminal() => TokenInput::Prompt,
            None => TokenInput::Missing,
        },
    }
}

fn read_stdin_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    Ok(line.trim().to_string())
}

/// Reads a line from the terminal without echoing it.
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(old) = &saved {
        let mut quiet = old.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let line = read_stdin_line();
    if let Some(old) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, old);
    }
    eprintln!();
    line
}

fn resolve_token(
    input: TokenInput,
    flag_name: &str,
    env_var: &str,
    prompt: &str,
) -> Result<Secret, String> {
    let token = match input {
        TokenInput::CommandLine(t) => {
            eprintln!(
                "pogo: note: a token given with {flag_name} is visible to other users in `ps` and stays in shell history; ${env_var} or `{flag_name} -` (stdin) avoid that"
            );
            t
        }
        TokenInput::Env(t) => t,
        TokenInput::Stdin => read_stdin_line()?,
        TokenInput::Prompt => prompt_hidden(prompt)?,
        TokenInput::Missing => {
            return Err(format!(
                "no token: set ${env_var}, or pass `{flag_name} -` and the token on stdin (or {flag_name} TOKEN)"
            ))
        }
    };
    if token.is_empty() {
        return Err(format!(
            "the token is empty; check ${env_var} or {flag_name}"
        ));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "the token contains spaces or control characters; paste only the token".to_string(),
        );
    }
    Ok(Secret::new(token))
}

/// The runner config path from `--runner-config` or gitlab-runner's default for this user.
pub fn runner_config_path(flag: Option<&Path>, user: &UserInfo) -> PathBuf {
    match flag {
        Some(p) => crate::fsutil::absolute(p),
        None => runner_config::default_path(user.is_root(), &user.home),
    }
}

fn credential(args: &RegisterArgs, env: &HashMap<String, String>) -> Result<Credential, String> {
    let legacy_flags = !args.tag_list.is_empty() || args.description.is_some() || args.run_untagged;
    let legacy = args.registration_token.is_some()
        || (args.token.is_none()
            && !env.contains_key(TOKEN_ENV)
            && env.contains_key(REGISTRATION_TOKEN_ENV));
    if !legacy {
        if legacy_flags {
            return Err("--tag-list, --description and --run-untagged only work with --registration-token: a runner created in GitLab gets its tags and settings there (Settings > CI/CD > Runners > edit)".to_string());
        }
        let input = token_input(args.token.as_deref(), TOKEN_ENV, env);
        let token = resolve_token(
            input,
            "--token",
            TOKEN_ENV,
            "Runner authentication token (glrt-…, not shown): ",
        )?;
        return Ok(Credential::RunnerToken(token));
    }
    let input = token_input(
        args.registration_token.as_deref(),
        REGISTRATION_TOKEN_ENV,
        env,
    );
    let token = resolve_token(
        input,
        "--registration-token",
        REGISTRATION_TOKEN_ENV,
        "Registration token (not shown): ",
    )?;
    if gitlab::is_runner_authentication_token(token.expose()) {
        return Err(
            "that is a runner authentication token (glrt-…): pass it with --token".to_string(),
        );
    }
    let tag_list: Vec<String> = args
        .tag_list
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    Ok(Credential::RegistrationToken(
        token,
        LegacyRunnerOptions {
            description: args
                .description
                .clone()
                .unwrap_or_else(|| args.name.clone()),
            tag_list,
            run_untagged: args.run_untagged,
        },
    ))
}

/// `pogo register`: exit status 0 on success, 1 on any error.
pub fn register_main(args: RegisterArgs, global_config: Option<&Path>) -> i32 {
    let env = super::env_map();
    let user = UserInfo::current(&env);
    let credential = match credential(&args, &env) {
        Ok(c) => c,
        Err(m) => {
            eprintln!("pogo register: {m}");
            return 1;
        }
    };
    let pogo_binary = match &args.pogo_binary {
        Some(p) => crate::fsutil::absolute(p),
        None => match std::env::current_exe().and_then(std::fs::canonicalize) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("pogo register: cannot tell where this pogo binary is ({e}); pass --pogo-binary PATH");
                return 1;
            }
        },
    };
    let req = RegisterRequest {
        url: args.url.clone(),
        credential,
        name: args.name.clone(),
        runner_config: runner_config_path(args.runner_config.as_deref(), &user),
        pogo_config: resolve_pogo_config(
            args.pogo_config.as_deref(),
            global_config,
            &env,
            &user.home,
        ),
        pogo_binary,
        replace: args.replace,
        tls_ca_file: args.tls_ca_file.as_deref().map(crate::fsutil::absolute),
        timeout: API_TIMEOUT,
    };
    let legacy = matches!(req.credential, Credential::RegistrationToken(..));
    if legacy {
        eprintln!("pogo register: warning: registration tokens are deprecated by GitLab (since 15.6, to be removed); create the runner in GitLab's UI and use --token glrt-… where you can");
    }
    let token_kind = match &req.credential {
        Credential::RunnerToken(t) | Credential::RegistrationToken(t, _) => redact(t.expose()),
    };
    match register(&req, &env) {
        Ok(r) => {
            if legacy {
                println!(
                    "✓ GitLab registered runner {} at {} (with registration token {token_kind})",
                    r.runner_id, r.url
                );
            } else if r.runner_id != 0 {
                println!(
                    "✓ GitLab verified runner {} at {} (token {token_kind})",
                    r.runner_id, r.url
                );
            } else {
                println!("✓ GitLab accepted the token at {} ({token_kind})", r.url);
            }
            let config = r.runner_config.display();
            match &r.added {
                Added::Appended if r.created_runner_config => {
                    println!("✓ created {config} with runner '{}' (mode 0600)", req.name)
                }
                Added::Appended => {
                    println!("✓ runner '{}' added to {config} (mode 0600)", req.name)
                }
                Added::Replaced { .. } => {
                    println!("✓ runner '{}' replaced in {config} (mode 0600)", req.name)
                }
            }
            println!(
                "  executor custom: {} --config {}",
                req.pogo_binary.display(),
                req.pogo_config.display()
            );
            if r.created_pogo_config {
                println!(
                    "✓ created {} (defaults; add default_image, mounts, ... there)",
                    req.pogo_config.display()
                );
            }
            println!("next: `pogo install` runs gitlab-runner as a systemd user service; `pogo doctor` checks this machine");
            println!("      (a gitlab-runner that is already running picks up config.toml changes by itself)");
            0
        }
        Err(e) => {
            eprintln!("pogo register: {e}");
            1
        }
    }
}

/// `pogo unregister NAME`.
pub fn unregister_main(args: UnregisterArgs) -> i32 {
    let env = super::env_map();
    let user = UserInfo::current(&env);
    let path = runner_config_path(args.runner_config.as_deref(), &user);
    match unregister(&path, &args.name, args.local_only, API_TIMEOUT) {
        Ok(u) => {
            println!("✓ removed runner '{}' from {}", args.name, path.display());
            for n in u.notes {
                println!("  {n}");
            }
            0
        }
        Err(e) => {
            eprintln!("pogo unregister: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pogo_config_defaults_to_home_and_is_absolute() {
        let env: HashMap<String, String> = HashMap::new();
        let home = Path::new("/nonexistent-home-for-test");
        let p = resolve_pogo_config(None, None, &env, home);
        // directories' XDG config may exist on the test machine; otherwise ~/.pogo.yaml.
        assert!(p.is_absolute());
        let p = resolve_pogo_config(Some(Path::new("rel.yaml")), None, &env, home);
        assert!(p.is_absolute() && p.ends_with("rel.yaml"));
        let p = resolve_pogo_config(None, Some(Path::new("/g.yaml")), &env, home);
        assert_eq!(p, PathBuf::from("/g.yaml"));
    }

    #[test]
    fn system_id_is_reused_or_made_in_gitlab_runners_format() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        let (id, new) = system_id(&cfg);
        assert!(new);
        assert!(id.starts_with("r_") && id.len() == 14, "{id}");
        std::fs::write(dir.path().join(SYSTEM_ID_FILE), "s_0123456789ab\n").unwrap();
        assert_eq!(system_id(&cfg), ("s_0123456789ab".to_string(), false));
    }
}
