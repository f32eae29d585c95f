//! Pure builders for podman argument vectors. Job-controlled values (image, service names,
//! aliases, variables) only ever appear as option *values* or after `--`, never as options.

use std::path::Path;

use crate::podman::labels::{LABEL_JOB_KEY, LABEL_MANAGED_BY};
use crate::podman::service::Service;

/// Where pogo mounts its keep-alive init (catatonit) inside the job container.
pub const INIT_PATH: &str = "/run/pogo/init";
/// Where pogo's stage agent (src/agent) and its socket's directory appear inside the job
/// container.
pub const AGENT_PATH: &str = "/run/pogo/agent";
pub const SOCKET_DIR: &str = "/run/pogo/sock";
pub const SOCKET_NAME: &str = "agent.sock";
/// Where the gitlab-runner binary appears inside the job container (on PATH).
pub const RUNNER_BINARY_PATH: &str = "/usr/local/bin/gitlab-runner";

/// Is `image` a plausible image reference (`[registry[:port]/]path[:tag][@digest]`)?
/// Refuses anything podman could read as an option or that could not be an image name at all.
/// The platform and user a job asks for with `image: docker:` (or a service's), as podman's
/// `--platform=` and `--user=` take them, from values the job wrote: `os[/arch[/variant]]`
/// and `user[:group]` (names or numbers) only — never an option, never anything else.
pub fn validate_docker_options(platform: Option<&str>, user: Option<&str>) -> Result<(), String> {
    let word = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('-')
            && s.chars().all(crate::names::is_name_char)
    };
    if let Some(p) = platform {
        let parts: Vec<&str> = p.split('/').collect();
        if parts.len() > 3 || !parts.iter().all(|part| word(part)) {
            return Err(format!(
                "docker: platform {p:?} is not OS[/ARCH[/VARIANT]] (for example linux/arm64)"
            ));
        }
    }
    if let Some(u) = user {
        let parts: Vec<&str> = u.split(':').collect();
        if parts.len() > 2 || !parts.iter().all(|part| word(part)) {
            return Err(format!(
                "docker: user {u:?} is not USER[:GROUP] (names or numeric ids)"
            ));
        }
    }
    Ok(())
}

/// A platform as podman wants it, `os/arch[/variant]`, from what the Docker executor accepts
/// (`arm64`, `arm64/v8`, `linux/arm64`, `x86_64`): a leading architecture means Linux, and
/// architectures get their OCI names (`aarch64` is `arm64`, `x86_64` is `amd64`).
pub fn normalize_platform(platform: &str) -> String {
    const OSES: &[&str] = &[
        "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix",
    ];
    let mut parts: Vec<String> = platform
        .split('/')
        .map(|p| p.to_ascii_lowercase())
        .collect();
    if !OSES.contains(&parts[0].as_str()) {
        parts.insert(0, "linux".to_string());
    }
    if let Some(arch) = parts.get_mut(1) {
        *arch = match arch.as_str() {
            "aarch64" => "arm64".to_string(),
            "x86_64" | "x86-64" => "amd64".to_string(),
            "armhf" => "arm".to_string(),
            other => other.to_string(),
        };
    }
    parts.join("/")
}

pub fn validate_image(image: &str) -> Result<(), String> {
    let shown: String = image.chars().take(80).collect();
    let refuse = |why: &str| Err(format!("{:?} is not an image name ({why})", shown));
    if image.is_empty() {
        return Err("the image name is empty".to_string());
    }
    if image.len() > 512 {
        return Err(format!(
            "the image name is {} bytes long (at most 512)",
            image.len()
        ));
    }
    if image.starts_with('-') {
        return refuse("it starts with '-'");
    }
    if let Some(c) = image
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@')))
    {
        return refuse(&format!("character {c:?} is not allowed"));
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty() && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return refuse("the digest after '@' must be ALGORITHM:HEX");
        }
    }
    let (path, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    if let Some(t) = tag {
        if t.is_empty()
            || t.len() > 128
            || !t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            return refuse("invalid tag");
        }
    }
    let components: Vec<&str> = path.split('/').collect();
    for (i, comp) in components.iter().enumerate() {
        // the registry may carry a port: host:5000
        let comp = match comp.split_once(':') {
            Some((host, port)) if i == 0 && components.len() > 1 => {
                if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
                    return refuse("invalid registry port");
                }
                host
            }
            Some(_) => return refuse("':' in the middle of the name"),
            None => comp,
        };
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !edge_ok(comp.chars().next()) || !edge_ok(comp.chars().last()) || comp.contains("..") {
            return refuse("each part between '/' must start and end with a letter or digit");
        }
    }
    Ok(())
}

/// A name usable in `/etc/hosts` (and `--add-host`).
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with(['-', '.'])
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Host names a service is reachable by, as GitLab's Docker executor derives them: the alias,
/// and the image path without tag with `/` replaced by `__` and by `-` (for a Docker Hub
/// library image also the bare name and the `library` forms). Invalid names are dropped.
pub fn service_hostnames(svc: &Service) -> Vec<String> {
    let mut names = Vec::new();
    for alias in svc.alias.split([',', ' ']).filter(|a| !a.is_empty()) {
        names.push(alias.to_string());
    }
    let path = image_path(&svc.name);
    // a registry's port is not part of a host name
    let path = match path.split_once('/') {
        Some((first, rest)) if first.contains(':') => {
            format!("{}/{rest}", first.split(':').next().unwrap_or(first))
        }
        _ => path.to_string(),
    };
    let mut paths = vec![path.clone()];
    if !path.contains('/') {
        paths.push(format!("library/{path}"));
    }
    for p in paths {
        if !p.contains('/') {
            names.push(p.clone());
        }
        names.push(p.replace('/', "__"));
        names.push(p.replace('/', "-"));
    }
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if valid_hostname(&n) && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The image reference without tag or digest.
fn image_path(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        // a ':' after the last '/' is a tag; before it, a registry port
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

fn label_args(labels: &[(String, String)]) -> Vec<String> {
    labels
        .iter()
        .flat_map(|(k, v)| ["--label".to_string(), format!("{k}={v}")])
        .collect()
}

/// `podman pull [--authfile F] -- IMAGE`
pub fn pull(image: &str, auth_file: Option<&str>, platform: Option<&str>) -> Vec<String> {
    let mut a = vec!["pull".to_string()];
    if let Some(f) = auth_file {
        a.push("--authfile".into());
        a.push(f.into());
    }
    if let Some(p) = platform {
        a.push(format!("--platform={p}"));
    }
    a.push("--".into());
    a.push(image.into());
    a
}

/// `podman image exists -- IMAGE`
pub fn image_exists(image: &str) -> Vec<String> {
    vec!["image".into(), "exists".into(), "--".into(), image.into()]
}

/// `podman pod create` for a job with services: the aliases resolve to 127.0.0.1 for every
/// container of the pod.
pub fn pod_create(name: &str, labels: &[(String, String)], hosts: &[String]) -> Vec<String> {
    let mut a = vec!["pod".into(), "create".into(), "--name".into(), name.into()];
    a.extend(label_args(labels));
    for h in hosts {
        a.push("--add-host".into());
        a.push(format!("{h}:127.0.0.1"));
    }
    a
}

/// How one service container of a job is started, besides the service itself.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRun<'a> {
    pub name: &'a str,
    pub pod: &'a str,
    pub labels: &'a [(String, String)],
    pub env_file: Option<&'a Path>,
    pub secrets: &'a [(String, String)],
    pub docker: &'a Docker<'a>,
    /// Arguments the job's tags give its service containers.
    pub extra_args: &'a [String],
}

/// `podman run -d` of one service container in the job's pod. The service's variables are in
/// `env_file` (see [`service_env_file`]): neither their values (secrets) nor their names reach
/// the command line, and none of them is ever in the environment of podman itself, where a
/// job-chosen `LD_PRELOAD`, `PATH` or `CONTAINERS_CONF` would act on the host.
pub fn service_run(svc: &Service, run: &ServiceRun<'_>) -> Vec<String> {
    let mut a = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        run.name.into(),
        "--pod".into(),
        run.pod.into(),
    ];
    a.extend(label_args(run.labels));
    a.extend(run.docker.args());
    // the runner owner's, from the job's tags (`extra_arguments: TAG: services:`)
    a.extend(run.extra_args.iter().cloned());
    if let Some(f) = run.env_file {
        a.push(format!("--env-file={}", f.display()));
    }
    for (secret, var) in run.secrets {
        a.push(format!("--secret={secret},type=env,target={var}"));
    }
    if let Some(ep) = &svc.entrypoint {
        a.push(format!("--entrypoint={}", entrypoint_json(ep)));
    }
    a.push("--".into());
    a.push(svc.name.clone());
    if let Some(cmd) = &svc.command {
        a.extend(cmd.iter().cloned());
    }
    a
}

/// A JSON array for `--entrypoint` (an empty list clears the image's entrypoint).
fn entrypoint_json(ep: &[String]) -> String {
    serde_json::to_string(ep).unwrap_or_else(|_| "[]".to_string())
}

/// podman reads an `--env-file` line by line with Go's `bufio.Scanner`: a line is at most
/// 64 KiB, and a `\r` before the newline is dropped.
const ENV_FILE_LINE_MAX: usize = 64 * 1024 - 1;

/// podman keeps a secret of at most this many bytes.
const SECRET_MAX: usize = 512_000 - 1;

/// A service's variables as podman takes them without their names or values on a command
/// line or in podman's own environment (where a job-chosen `LD_PRELOAD` or `PATH` would act on
/// the host): single-line values as `NAME=value` lines of an `--env-file`, which podman takes
/// verbatim (no quotes or escapes are interpreted); the others — with a line break, ending in
/// `\r`, or over 64 KiB — as podman secrets of type env, `(NAME, value)` in `secrets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEnv {
    pub file: Option<String>,
    pub secrets: Vec<(String, String)>,
}

/// The [`ServiceEnv`] of `svc`; a name that is not a POSIX name, or a value no environment
/// can hold (a NUL byte, over 500 kB), is refused with a message for the job log.
pub fn service_env(svc: &Service) -> Result<ServiceEnv, String> {
    let mut env = ServiceEnv::default();
    let Some(vars) = svc.variables.as_ref().filter(|v| !v.is_empty()) else {
        return Ok(env);
    };
    let mut text = String::new();
    for (k, v) in vars {
        if !valid_env_name(k) {
            return Err(format!(
                "service '{}' has an invalid variable name {k:?}: use letters, digits and _",
                svc.name
            ));
        }
        if v.contains('\0') {
            return Err(format!(
                "service '{}': the value of {k} has a NUL byte, which no environment variable can hold",
                svc.name
            ));
        }
        if v.len() > SECRET_MAX {
            return Err(format!(
                "service '{}': the value of {k} is over 500 kB, more than podman passes to a container; put it in a file variable",
                svc.name
            ));
        }
        if v.contains('\n') || v.ends_with('\r') || k.len() + 1 + v.len() > ENV_FILE_LINE_MAX {
            env.secrets.push((k.clone(), v.clone()));
            continue;
        }
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push('\n');
    }
    if !text.is_empty() {
        env.file = Some(text);
    }
    Ok(env)
}

/// The name of the podman secret carrying service container `container`'s `n`-th
/// multi-line variable: `<job key>-svcI-envN`, so cleanup and `pogo gc` find a job's secrets by
/// the prefix `<job key>-svc`.
pub fn service_secret_name(container: &str, n: usize) -> String {
    format!("{container}-env{n}")
}

/// `podman secret create NAME -`: the value comes on stdin.
pub fn secret_create(name: &str, labels: &[(String, String)]) -> Vec<String> {
    let mut a = vec!["secret".to_string(), "create".to_string()];
    a.extend(label_args(labels));
    a.extend(["--".to_string(), name.to_string(), "-".to_string()]);
    a
}

/// `podman secret ls` names, one per line (podman 4.3 has no label filter for secrets).
pub fn secret_names() -> Vec<String> {
    ["secret", "ls", "--format", "{{.Name}}"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

pub fn secret_rm(names: &[String]) -> Vec<String> {
    let mut a = vec!["secret".to_string(), "rm".to_string(), "--".to_string()];
    a.extend(names.iter().cloned());
    a
}

/// The secrets among `listed` (one name per line) that belong to job `key`'s services.
pub fn job_secrets(listed: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}-svc");
    listed
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Is a variable name a POSIX name: letters, digits and `_`, not starting with a digit, at
/// most 256 bytes?
pub fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 256
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How the job container is kept alive between stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    /// A static init (catatonit): pogo's copy of the host's, bind-mounted read-only, in pause
    /// mode.
    Init(String),
    /// catatonit as init running pogo's static stage agent (the fast stage path): host paths
    /// of catatonit, of the agent, and of the per-job directory for the agent's socket.
    InitWithAgent {
        init: String,
        agent: String,
        socket_dir: String,
    },
    /// A shell loop, when no static init is available on the host.
    Shell,
}

/// `--volume` for a path pogo owns (its init and agent copies, the agent's socket directory,
/// its cache directories): `z` relabels it for containers on an SELinux host (a container
/// process cannot read files with their host labels there); podman ignores it elsewhere.
/// Only ever for pogo's own paths: a tag mount keeps exactly the options its owner wrote.
pub fn own_volume(host: &str, container: &str, readonly: bool) -> String {
    let options = if readonly { "ro,z" } else { "z" };
    format!("{host}:{container}:{options}")
}

impl KeepAlive {
    /// The `podman run` options that make the container's main process the keep-alive.
    pub fn args(&self) -> Vec<String> {
        match self {
            KeepAlive::Init(host) => vec![
                "--volume".into(),
                own_volume(host, INIT_PATH, true),
                format!("--entrypoint=[\"{INIT_PATH}\",\"-P\"]"),
            ],
            KeepAlive::InitWithAgent {
                init,
                agent,
                socket_dir,
            } => vec![
                "--volume".into(),
                own_volume(init, INIT_PATH, true),
                "--volume".into(),
                own_volume(agent, AGENT_PATH, true),
                "--volume".into(),
                own_volume(socket_dir, SOCKET_DIR, false),
                format!(
                    "--entrypoint=[\"{INIT_PATH}\",\"--\",\"{}\",\"serve\",\"{}/{}\"]",
                    AGENT_PATH,
                    SOCKET_DIR,
                    SOCKET_NAME
                ),
            ],
            KeepAlive::Shell => vec![
                "--entrypoint=[\"/bin/sh\",\"-c\",\"trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done\"]"
                    .into(),
            ],
        }
    }
}

/// Everything about the job container `podman run -d` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContainer<'a> {
    pub name: &'a str,
    /// `image: docker:` of the job (checked with [`validate_docker_options`]).
    pub docker: Docker<'a>,
    pub pod: Option<&'a str>,
    pub labels: &'a [(String, String)],
    /// Values for `--volume` (tag mounts, cache, runner binary).
    pub volumes: Vec<String>,
    /// The extra arguments of the job's tags (from the runner owner's config).
    pub extra_args: &'a [String],
    pub keep_alive: KeepAlive,
    pub image: &'a str,
}

pub fn job_run(c: &JobContainer<'_>) -> Vec<String> {
    let mut a = vec!["run".into(), "-d".into(), "--name".into(), c.name.into()];
    if let Some(pod) = c.pod {
        a.push("--pod".into());
        a.push(pod.into());
    }
    a.extend(label_args(c.labels));
    for v in &c.volumes {
        a.push("--volume".into());
        a.push(v.clone());
    }
    a.extend(c.keep_alive.args());
    // before the owner's tag arguments, which win where both set one
    a.extend(c.docker.args());
    a.extend(c.extra_args.iter().cloned());
    a.push("--".into());
    a.push(c.image.into());
    a
}

/// `image: docker: {platform, user}` as `podman run` options, each one argument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Docker<'a> {
    pub platform: Option<&'a str>,
    pub user: Option<&'a str>,
}

impl Docker<'_> {
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(p) = self.platform {
            a.push(format!("--platform={p}"));
        }
        if let Some(u) = self.user {
            a.push(format!("--user={u}"));
        }
        a
    }
}

/// `podman exec -i CONTAINER COMMAND...`: the stage script arrives on stdin. `command` is
/// the shell, after the entrypoint that wraps it; everything after the container name is the
/// command (podman reads no options there), so entrypoint values from the job stay arguments.
pub fn exec_stage(container: &str, command: &[String]) -> Vec<String> {
    let mut a = vec!["exec".into(), "-i".into(), container.into()];
    a.extend(command.iter().cloned());
    a
}

/// Signal every process of the job container except its init (stage scripts and their
/// children) — `kill -1` from inside the container's PID namespace.
pub fn exec_kill_all(container: &str, signal: &str) -> Vec<String> {
    vec![
        "exec".into(),
        container.into(),
        "sh".into(),
        "-c".into(),
        format!("kill -{signal} -1"),
    ]
}

/// How the Docker executor starts every stage, for `shell: bash` and `shell: sh` alike
/// (gitlab-runner's `BashDetectShellScript`): `sh -c` this, which runs the first of bash at
/// /usr/local/bin, /usr/bin, /bin, then sh there, then /busybox/sh, with the stage script on
/// stdin. So an alpine or busybox image runs the default shell's scripts with its sh, and a
/// Debian image runs `shell: sh`'s scripts (bash quoting included) with bash.
pub const DETECT_SHELL: &str = "for s in /usr/local/bin/bash /usr/bin/bash /bin/bash \
/usr/local/bin/sh /usr/bin/sh /bin/sh /busybox/sh; do if [ -x \"$s\" ]; then exec \"$s\" \"$@\"; fi; \
done; echo 'shell not found: the image has no bash or sh at /usr/local/bin, /usr/bin, /bin or /busybox' >&2; exit 1";

/// The command a stage starts (after the image's entrypoint): `sh -c DETECT_SHELL`.
pub fn detect_shell_command() -> Vec<String> {
    vec!["sh".into(), "-c".into(), DETECT_SHELL.into(), "sh".into()]
}

pub fn inspect_container(name: &str) -> Vec<String> {
    vec![
        "container".into(),
        "inspect".into(),
        "--format".into(),
        "json".into(),
        "--".into(),
        name.into(),
    ]
}

pub fn inspect_image(image: &str) -> Vec<String> {
    vec![
        "image".into(),
        "inspect".into(),
        "--format".into(),
        "json".into(),
        "--".into(),
        image.into(),
    ]
}

pub fn logs(name: &str) -> Vec<String> {
    vec![
        "logs".into(),
        "--tail".into(),
        "50".into(),
        "--".into(),
        name.into(),
    ]
}

fn key_filter(key: &str) -> String {
    format!("label={LABEL_JOB_KEY}={key}")
}

pub fn pod_list(key: &str) -> Vec<String> {
    vec![
        "pod".into(),
        "ps".into(),
        "--filter".into(),
        key_filter(key),
        "--format".into(),
        "json".into(),
    ]
}

pub fn pod_rm(names: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "pod".into(),
        "rm".into(),
        "-f".into(),
        "-i".into(),
        "-t".into(),
        "0".into(),
    ];
    a.push("--".into());
    a.extend(names.iter().cloned());
    a
}

pub fn containers_rm(key: &str) -> Vec<String> {
    vec![
        "rm".into(),
        "-f".into(),
        "-v".into(),
        "-t".into(),
        "0".into(),
        "--filter".into(),
        key_filter(key),
    ]
}

/// `podman rm -f` of one container by name (a leftover pogo verified carries its label).
pub fn container_rm_by_name(name: &str) -> Vec<String> {
    ["rm", "-f", "-v", "-t", "0", "--", name]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Lists the container `name` only if pogo created it (exact name and pogo's label).
pub fn container_named_by_pogo(name: &str) -> Vec<String> {
    vec![
        "ps".into(),
        "-a".into(),
        "--filter".into(),
        format!("name=^{name}$"),
        "--filter".into(),
        format!("label={LABEL_MANAGED_BY}=pogo"),
        "--format".into(),
        "{{.Names}}".into(),
    ]
}

/// Lists the pod `name` only if pogo created it.
pub fn pod_named_by_pogo(name: &str) -> Vec<String> {
    vec![
        "pod".into(),
        "ps".into(),
        "--filter".into(),
        format!("name=^{name}$"),
        "--filter".into(),
        format!("label={LABEL_MANAGED_BY}=pogo"),
        "--format".into(),
        "{{.Name}}".into(),
    ]
}

pub fn volume_list(key: &str) -> Vec<String> {
    vec![
        "volume".into(),
        "ls".into(),
        "--filter".into(),
        key_filter(key),
        "--format".into(),
        "json".into(),
    ]
}

/// `podman volume create --label ... -- NAME`.
pub fn volume_create(name: &str, labels: &[(String, String)]) -> Vec<String> {
    let mut a: Vec<String> = vec!["volume".into(), "create".into()];
    a.extend(label_args(labels));
    a.push("--".into());
    a.push(name.into());
    a
}

/// `podman volume inspect --format json -- NAME`.
pub fn volume_inspect(name: &str) -> Vec<String> {
    vec![
        "volume".into(),
        "inspect".into(),
        "--format".into(),
        "json".into(),
        "--".into(),
        name.into(),
    ]
}

/// `podman volume rm -- NAME` without `-f`: fails while a container uses it.
pub fn volume_rm_unused(name: &str) -> Vec<String> {
    vec!["volume".into(), "rm".into(), "--".into(), name.into()]
}

pub fn volume_rm(names: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec!["volume".into(), "rm".into(), "-f".into(), "--".into()];
    a.extend(names.iter().cloned());
    a
}

#[cfg(test)]
mod tests;
