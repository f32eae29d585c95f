//! Description of one CI job, in the shape GitLab sends it to gitlab-runner
//! (`spec.Job`), plus the variable lists gitlab-runner derives from it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

/// The version this imitation claims to be (`CI_RUNNER_VERSION`).
pub const RUNNER_VERSION: &str = "19.4.0";
/// `CI_RUNNER_REVISION` of the imitation.
pub const RUNNER_REVISION: &str = "pogo-driver";

/// One CI/CD variable (`spec.Variable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub public: bool,
    pub file: bool,
    pub masked: bool,
    /// Raw variables are not expanded.
    pub raw: bool,
}

impl Variable {
    /// A plain public variable.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Variable {
            key: key.into(),
            value: value.into(),
            public: true,
            ..Variable::default()
        }
    }

    /// A masked, non-public variable.
    pub fn masked(key: impl Into<String>, value: impl Into<String>) -> Self {
        Variable {
            key: key.into(),
            value: value.into(),
            masked: true,
            ..Variable::default()
        }
    }

    /// A file-type variable: `value` is the file's contents.
    pub fn file(key: impl Into<String>, value: impl Into<String>) -> Self {
        Variable {
            key: key.into(),
            value: value.into(),
            file: true,
            ..Variable::default()
        }
    }
}

/// `image:` of a job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub name: String,
    pub entrypoint: Option<Vec<String>>,
    /// `docker: {platform, user}`.
    pub docker: DockerOptions,
}

impl Image {
    pub fn new(name: impl Into<String>) -> Self {
        Image {
            name: name.into(),
            ..Image::default()
        }
    }
}

/// `image: docker:` (and `services: docker:`): the Docker executor's image options, sent to
/// the runner as `executor_opts.docker`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerOptions {
    pub platform: Option<String>,
    pub user: Option<String>,
}

impl DockerOptions {
    /// The description's `executor_opts`, as GitLab sends it.
    fn payload(&self) -> Value {
        json!({"docker": {"platform": self.platform, "user": self.user}})
    }
}

/// One entry of `services:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    pub name: String,
    /// Aliases, separated by comma or space as in `.gitlab-ci.yml`.
    pub alias: String,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub variables: BTreeMap<String, String>,
    /// `docker: {platform, user}`.
    pub docker: DockerOptions,
}

impl Service {
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            ..Service::default()
        }
    }
}

/// `cache:` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CachePolicy {
    #[default]
    PullPush,
    Pull,
    Push,
}

impl CachePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            CachePolicy::PullPush => "pull-push",
            CachePolicy::Pull => "pull",
            CachePolicy::Push => "push",
        }
    }
}

/// `cache:when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheWhen {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
}

impl CacheWhen {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheWhen::OnSuccess => "on_success",
            CacheWhen::OnFailure => "on_failure",
            CacheWhen::Always => "always",
        }
    }

    /// Whether a cache with this `when` is archived for a job that
    /// succeeded (`job_ok`) or failed.
    pub fn matches(self, job_ok: bool) -> bool {
        match self {
            CacheWhen::Always => true,
            CacheWhen::OnSuccess => job_ok,
            CacheWhen::OnFailure => !job_ok,
        }
    }
}

/// `artifacts:when`: the same values and rule as `cache:when`.
pub type ArtifactsWhen = CacheWhen;

/// `artifacts:` of a job: the `archive` artifact and the `dotenv` report (other reports are
/// not modelled).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Artifacts {
    /// Paths or glob patterns, relative to the project directory.
    pub paths: Vec<String>,
    /// `artifacts:exclude`: what of `paths` is left out (`*` within a directory, `**`
    /// across directories), relative to the project directory.
    pub exclude: Vec<String>,
    pub when: ArtifactsWhen,
    /// `artifacts:reports:dotenv`: files of `KEY=VALUE` lines whose variables the jobs that
    /// depend on this one get.
    pub dotenv: Vec<String>,
}

/// A job whose artifacts this job downloads (`dependencies[]` of the payload).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dependency {
    pub id: u64,
    pub name: String,
    /// The job token gitlab-runner downloads with.
    pub token: String,
    /// `artifacts_file.filename`; `None` when the job has no artifacts (nothing to download).
    pub artifacts_file: Option<String>,
}

/// One entry of `cache:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cache {
    /// Empty: the default key `<job name>/<ref>`.
    pub key: String,
    pub paths: Vec<String>,
    pub policy: CachePolicy,
    pub when: CacheWhen,
}

/// A job as GitLab hands it to the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub token: String,
    pub name: String,
    pub stage: String,
    pub project_id: u64,
    /// `group/project` (may have sub-groups: `a/b/project`).
    pub project_path: String,
    pub pipeline_id: u64,
    /// Branch name (`CI_COMMIT_REF_NAME`), used in the default cache key.
    pub git_ref: String,
    pub sha: String,
    /// User variables (from `.gitlab-ci.yml`, project settings, ...).
    pub variables: Vec<Variable>,
    pub image: Option<Image>,
    pub services: Vec<Service>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub cache: Vec<Cache>,
    pub artifacts: Option<Artifacts>,
    /// Earlier jobs whose artifacts are downloaded before the script.
    pub dependencies: Vec<Dependency>,
    /// `GIT_STRATEGY` in the payload's variables; `None` leaves it out (the runner's default,
    /// `fetch`, applies unless a job variable sets it). [`Job::new`] sets `none`.
    pub git_strategy: Option<String>,
    pub timeout: Duration,
    /// `CI_API_V4_URL`, e.g. `http://127.0.0.1:PORT/api/v4`.
    pub api_url: String,
    /// `CI_JOB_URL`; empty means `<server>/<project path>/-/jobs/<id>`.
    pub job_url: String,
    /// The repository `get_sources` fetches for `GIT_STRATEGY` `fetch`/`clone` (a URL git
    /// understands, e.g. `file:///repos/p.git` mounted into the container). `None`: those
    /// strategies are skipped with a warning, as before.
    pub repo_url: Option<String>,
    /// Merged into the job description (`response.json`) last, for fields this imitation does
    /// not model (an image's `pull_policy`, a service's `ports`, `credentials`, ...): objects
    /// merge key by key, arrays element by element, anything else replaces.
    pub description_patch: Option<Value>,
}

impl Job {
    /// A job with sensible defaults for everything not given.
    pub fn new(
        id: u64,
        token: impl Into<String>,
        project_path: impl Into<String>,
        api_url: impl Into<String>,
    ) -> Self {
        Job {
            id,
            token: token.into(),
            name: "test".to_string(),
            stage: "test".to_string(),
            project_id: 1,
            project_path: project_path.into(),
            pipeline_id: 1,
            git_ref: "main".to_string(),
            sha: "0000000000000000000000000000000000000000".to_string(),
            variables: Vec::new(),
            image: None,
            services: Vec::new(),
            before_script: Vec::new(),
            script: Vec::new(),
            after_script: Vec::new(),
            cache: Vec::new(),
            artifacts: None,
            dependencies: Vec::new(),
            git_strategy: Some("none".to_string()),
            timeout: Duration::from_secs(3600),
            api_url: api_url.into(),
            job_url: String::new(),
            repo_url: None,
            description_patch: None,
        }
    }

    /// `CI_SERVER_URL`: the API URL without `/api/v4`.
    pub fn server_url(&self) -> String {
        let url = self.api_url.trim_end_matches('/');
        url.strip_suffix("/api/v4").unwrap_or(url).to_string()
    }

    /// `CI_JOB_URL`.
    pub fn job_url(&self) -> String {
        if self.job_url.is_empty() {
            format!(
                "{}/{}/-/jobs/{}",
                self.server_url(),
                self.project_path,
                self.id
            )
        } else {
            self.job_url.clone()
        }
    }

    /// `CI_PROJECT_NAME`: the last path component.
    pub fn project_name(&self) -> &str {
        self.project_path
            .rsplit('/')
            .next()
            .unwrap_or(&self.project_path)
    }

    /// `CI_PROJECT_NAMESPACE`: everything before the last component.
    pub fn project_namespace(&self) -> &str {
        match self.project_path.rfind('/') {
            Some(i) => &self.project_path[..i],
            None => "",
        }
    }

    /// The refspecs `get_sources` fetches (`git_info.refspecs`).
    pub fn refspecs(&self) -> Vec<String> {
        vec![format!(
            "+refs/heads/{0}:refs/remotes/origin/{0}",
            self.git_ref
        )]
    }

    /// `GIT_DEPTH` of the payload's variables, else GitLab's default of 20.
    pub fn git_depth(&self) -> u32 {
        self.payload_variables()
            .iter()
            .rev()
            .find(|v| v.key == "GIT_DEPTH")
            .and_then(|v| v.value.trim().parse().ok())
            .unwrap_or(20)
    }

    /// The image name, or "" when the job has none.
    pub fn image_name(&self) -> &str {
        self.image.as_ref().map(|i| i.name.as_str()).unwrap_or("")
    }

    /// before_script + script, as GitLab joins them into the `script` step.
    pub fn step_script(&self) -> Vec<String> {
        self.before_script
            .iter()
            .chain(self.script.iter())
            .cloned()
            .collect()
    }

    /// The variables GitLab puts in the payload: its predefined `CI_*`
    /// variables followed by the user's.
    pub fn payload_variables(&self) -> Vec<Variable> {
        let mut v = vec![
            Variable::new("CI", "true"),
            Variable::new("GITLAB_CI", "true"),
            Variable::new("CI_SERVER_URL", self.server_url()),
            Variable::new("CI_API_V4_URL", self.api_url.clone()),
            Variable::new("CI_JOB_ID", self.id.to_string()),
            Variable::new("CI_JOB_NAME", self.name.clone()),
            Variable::new("CI_JOB_STAGE", self.stage.clone()),
            Variable::masked("CI_JOB_TOKEN", self.token.clone()),
            Variable::new("CI_JOB_URL", self.job_url()),
            Variable::new("CI_PIPELINE_ID", self.pipeline_id.to_string()),
            Variable::new("CI_PROJECT_ID", self.project_id.to_string()),
            Variable::new("CI_PROJECT_NAME", self.project_name()),
            Variable::new("CI_PROJECT_NAMESPACE", self.project_namespace()),
            Variable::new("CI_PROJECT_PATH", self.project_path.clone()),
            Variable::new("CI_COMMIT_REF_NAME", self.git_ref.clone()),
            Variable::new("CI_COMMIT_SHA", self.sha.clone()),
        ];
        if let Some(strategy) = &self.git_strategy {
            v.push(Variable::new("GIT_STRATEGY", strategy.clone()));
        }
        v.extend(self.variables.iter().cloned());
        v
    }

    /// The key a cache is stored under, as gitlab-runner computes it: `cache:key` expanded
    /// with `all` (`GetAllVariables()`, whose values are themselves expanded already, so a key
    /// `$CK` with `CK: deps-$CI_COMMIT_REF_SLUG` gives `deps-main`), or `<job name>/<ref>` when
    /// empty; then sanitised. `Err` carries the expanded key when nothing usable is left
    /// (e.g. it has `..`).
    pub fn cache_key(&self, cache: &Cache, all: &[Variable]) -> Result<String, String> {
        let raw = if cache.key.is_empty() {
            format!("{}/{}", self.name, self.git_ref)
        } else {
            expand(&cache.key, all)
        };
        super::script::sanitize_cache_key(&raw).ok_or(raw)
    }

    /// The services as `CUSTOM_ENV_CI_JOB_SERVICES` carries them: a JSON
    /// array, or "" when there are none. `vars` expands `$VAR` references.
    pub fn services_env(&self, vars: &[Variable]) -> String {
        if self.services.is_empty() {
            return String::new();
        }
        let list: Vec<ServiceEnv> = self
            .services
            .iter()
            .map(|s| ServiceEnv {
                name: expand(&s.name, vars),
                alias: first_alias(&expand(&s.alias, vars)),
                entrypoint: s.entrypoint.clone(),
                command: s.command.clone(),
                variables: if s.variables.is_empty() {
                    None
                } else {
                    Some(
                        s.variables
                            .iter()
                            .map(|(k, v)| (k.clone(), expand(v, vars)))
                            .collect(),
                    )
                },
            })
            .collect();
        serde_json::to_string(&list).unwrap_or_default()
    }

    /// The whole payload as gitlab-runner writes it to `response.json`.
    pub fn response_json(&self, vars: &[Variable]) -> Value {
        let timeout = self.timeout.as_secs();
        let mut description = json!({
            "id": self.id,
            "token": self.token,
            // the project's Git strategy: fetch, GitLab's default (see stages::git_strategy)
            "allow_git_fetch": true,
            "job_info": {
                "id": self.id,
                "name": self.name,
                "stage": self.stage,
                "project_id": self.project_id,
                "project_name": self.project_name(),
            },
            "git_info": {
                "repo_url": self.repo_url.clone().unwrap_or_else(|| format!("{}/{}.git", self.server_url(), self.project_path)),
                "ref": self.git_ref,
                "sha": self.sha,
                "before_sha": "0000000000000000000000000000000000000000",
                "ref_type": "branch",
                "refspecs": self.refspecs(),
                "depth": self.git_depth(),
            },
            "runner_info": {"timeout": timeout},
            "variables": self.payload_variables(),
            "steps": self.steps_json(),
            "image": self.image_json(vars),
            "services": self.services_json(vars),
            "artifacts": self.artifacts_json(),
            "cache": self.cache_json(),
            "credentials": [],
            "dependencies": self.dependencies_json(),
            "features": {
                "trace_sections": true,
                "failure_reasons": ["script_failure", "runner_system_failure", "job_execution_timeout"],
            },
        });
        if let Some(patch) = &self.description_patch {
            merge_json(&mut description, patch);
        }
        description
    }

    /// `steps` of [`Job::response_json`]: `script`, and `after_script` when there is one.
    fn steps_json(&self) -> Vec<Value> {
        let timeout = self.timeout.as_secs();
        let mut steps = vec![json!({
            "name": "script",
            "script": self.step_script(),
            "timeout": timeout,
            "when": "on_success",
            "allow_failure": false,
        })];
        if !self.after_script.is_empty() {
            steps.push(json!({
                "name": "after_script",
                "script": self.after_script,
                "timeout": timeout,
                "when": "always",
                "allow_failure": true,
            }));
        }
        steps
    }

    /// `image` of [`Job::response_json`], its name expanded against `vars`.
    fn image_json(&self, vars: &[Variable]) -> Value {
        match &self.image {
            Some(i) => json!({
                "name": expand(&i.name, vars),
                "entrypoint": i.entrypoint,
                "executor_opts": i.docker.payload(),
            }),
            None => json!({"name": "", "entrypoint": null}),
        }
    }

    /// `services` of [`Job::response_json`], names and variables expanded against `vars`.
    fn services_json(&self, vars: &[Variable]) -> Vec<Value> {
        self.services
            .iter()
            .map(|s| {
                let variables: Vec<Value> = s
                    .variables
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": expand(v, vars), "public": true}))
                    .collect();
                json!({
                    "name": expand(&s.name, vars),
                    "alias": s.alias,
                    "entrypoint": s.entrypoint,
                    "command": s.command,
                    "variables": variables,
                    "executor_opts": s.docker.payload(),
                })
            })
            .collect()
    }

    /// `cache` of [`Job::response_json`].
    fn cache_json(&self) -> Vec<Value> {
        self.cache
            .iter()
            .map(|c| {
                json!({
                    "key": c.key,
                    "untracked": false,
                    "policy": c.policy.as_str(),
                    "paths": c.paths,
                    "when": c.when.as_str(),
                    "fallback_keys": [],
                })
            })
            .collect()
    }

    /// `artifacts` of [`Job::response_json`]: the archive and the dotenv report, each when
    /// it has paths.
    fn artifacts_json(&self) -> Vec<Value> {
        let mut artifacts: Vec<Value> = Vec::new();
        if let Some(a) = &self.artifacts {
            if !a.paths.is_empty() {
                artifacts.push(json!({
                    "name": "",
                    "untracked": false,
                    "paths": a.paths,
                    "exclude": a.exclude,
                    "when": a.when.as_str(),
                    "artifact_type": "archive",
                    "artifact_format": "zip",
                    "expire_in": "",
                }));
            }
            if !a.dotenv.is_empty() {
                artifacts.push(json!({
                    "name": "dotenv",
                    "untracked": false,
                    "paths": a.dotenv,
                    "exclude": [],
                    "when": a.when.as_str(),
                    "artifact_type": "dotenv",
                    "artifact_format": "gzip",
                    "expire_in": "",
                }));
            }
        }
        artifacts
    }

    /// `dependencies` of [`Job::response_json`].
    fn dependencies_json(&self) -> Vec<Value> {
        self.dependencies
            .iter()
            .map(|d| {
                let file = d
                    .artifacts_file
                    .as_ref()
                    .map(|f| json!({"filename": f, "size": 0}));
                json!({"id": d.id, "token": d.token, "name": d.name, "artifacts_file": file})
            })
            .collect()
    }
}

/// Merge `patch` into `base`: objects key by key, arrays element by element (extra elements
/// appended), anything else replaced.
pub fn merge_json(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(p)) => {
            for (i, v) in p.iter().enumerate() {
                match b.get_mut(i) {
                    Some(existing) => merge_json(existing, v),
                    None => b.push(v.clone()),
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[derive(Serialize)]
struct ServiceEnv {
    name: String,
    alias: String,
    entrypoint: Option<Vec<String>>,
    command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<BTreeMap<String, String>>,
}

/// The first alias of a comma- or space-separated list.
pub fn first_alias(aliases: &str) -> String {
    aliases
        .split([',', ' '])
        .find(|a| !a.is_empty())
        .unwrap_or("")
        .to_string()
}

/// Looks a variable up the way gitlab-runner's `Variables.Get` does inside
/// an expansion: the last definition wins; `$$` yields `$`; shell special
/// parameters are kept as they were; unknown names expand to "".
fn lookup(name: &str, vars: &[Variable]) -> String {
    match name {
        "$" => "$".to_string(),
        "*" | "#" | "@" | "!" | "?" | "-" => format!("${name}"),
        n if n.len() == 1 && n.as_bytes()[0].is_ascii_digit() => format!("${name}"),
        _ => vars
            .iter()
            .rev()
            .find(|v| v.key == name)
            .map(|v| v.value.clone())
            .unwrap_or_default(),
    }
}

/// Expands `$NAME` and `${NAME}` like Go's `os.Expand` with gitlab-runner's
/// mapping function.
pub fn expand(value: &str, vars: &[Variable]) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        out.push_str(&value[literal_start..i]);
        let rest = &value[i + 1..];
        let (name, consumed) = shell_name(rest);
        match name {
            Some(n) => out.push_str(&lookup(n, vars)),
            None if consumed == 0 => out.push('$'),
            None => {}
        }
        i += 1 + consumed;
        literal_start = i;
    }
    out.push_str(&value[literal_start..]);
    out
}

/// Go's `getShellName`: the variable name at the start of `s` (after a
/// `$`) and how many bytes it takes. `(None, 0)` means "not a variable".
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let b = s.as_bytes();
    if b.is_empty() {
        return (None, 0);
    }
    if b[0] == b'{' {
        if b.len() > 2 && is_special(b[1]) && b[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match s[1..].find('}') {
            Some(0) => (None, 2),
            Some(end) => (Some(&s[1..1 + end]), end + 2),
            None => (None, 1),
        };
    }
    if is_special(b[0]) {
        return (Some(&s[0..1]), 1);
    }
    let len = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if len == 0 {
        (None, 0)
    } else {
        (Some(&s[..len]), len)
    }
}

fn is_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn job() -> Job {
        Job::new(42, "tok-123456789", "group/sub/proj", "http://h:1/api/v4/")
    }

    #[test]
    fn derived_names() {
        let j = job();
        assert_eq!(j.server_url(), "http://h:1");
        assert_eq!(j.project_name(), "proj");
        assert_eq!(j.project_namespace(), "group/sub");
        assert_eq!(j.job_url(), "http://h:1/group/sub/proj/-/jobs/42");
    }

    #[test]
    fn services_env_shape() {
        let mut j = job();
        assert_eq!(j.services_env(&[]), "");
        j.services.push(Service::new("redis:latest"));
        let mut pg = Service::new("my-postgres:$V");
        pg.alias = "pg,postgres".into();
        pg.entrypoint = Some(vec!["path".into(), "to".into(), "entrypoint".into()]);
        pg.command = Some(vec!["path".into(), "to".into(), "cmd".into()]);
        pg.variables.insert("POSTGRES_DB".into(), "mydb".into());
        pg.variables
            .insert("POSTGRES_PASSWORD".into(), "secret".into());
        j.services.push(pg);
        let vars = vec![Variable::new("V", "9.4")];
        assert_eq!(
            j.services_env(&vars),
            r#"[{"name":"redis:latest","alias":"","entrypoint":null,"command":null},{"name":"my-postgres:9.4","alias":"pg","entrypoint":["path","to","entrypoint"],"command":["path","to","cmd"],"variables":{"POSTGRES_DB":"mydb","POSTGRES_PASSWORD":"secret"}}]"#
        );
    }

    #[test]
    fn response_json_shape() {
        let mut j = job();
        j.before_script = vec!["b".into()];
        j.script = vec!["s".into()];
        j.after_script = vec!["a".into()];
        j.image = Some(Image::new("img"));
        let r = j.response_json(&[]);
        assert_eq!(r["id"], 42);
        assert_eq!(r["token"], "tok-123456789");
        assert_eq!(r["steps"][0]["name"], "script");
        assert_eq!(r["steps"][0]["script"], json!(["b", "s"]));
        assert_eq!(r["steps"][1]["name"], "after_script");
        assert_eq!(r["image"]["name"], "img");
        assert_eq!(r["runner_info"]["timeout"], 3600);
        let vars = r["variables"].as_array().cloned().unwrap_or_default();
        assert!(vars
            .iter()
            .any(|v| v["key"] == "CI_JOB_TOKEN" && v["masked"] == true));
    }

    #[test]
    fn a_description_patch_adds_what_the_imitation_does_not_model() {
        let mut j = job();
        j.image = Some(Image::new("img"));
        j.services.push(Service::new("db"));
        j.description_patch = Some(json!({
            "image": {"pull_policy": ["never"]},
            "services": [{"ports": [{"number": 5432}]}],
            "credentials": [{"type": "registry", "url": "r", "username": "u", "password": "p"}],
        }));
        let r = j.response_json(&[]);
        assert_eq!(r["image"]["name"], "img");
        assert_eq!(r["image"]["pull_policy"], json!(["never"]));
        assert_eq!(r["services"][0]["name"], "db");
        assert_eq!(r["services"][0]["ports"][0]["number"], 5432);
        assert_eq!(r["credentials"][0]["url"], "r");
    }

    #[test]
    fn expansion_like_go() {
        let vars = vec![
            Variable::new("A", "1"),
            Variable::new("B", "2"),
            Variable::new("A", "3"),
        ];
        assert_eq!(expand("x$A-${B}y", &vars), "x3-2y");
        assert_eq!(expand("$$A", &vars), "$A");
        assert_eq!(expand("$UNKNOWN.", &vars), ".");
        assert_eq!(expand("cost: 5$", &vars), "cost: 5$");
        assert_eq!(expand("a $ b", &vars), "a $ b");
        assert_eq!(expand("$1 $?", &vars), "$1 $?");
        assert_eq!(expand("${}", &vars), "");
        assert_eq!(expand("é$A€", &vars), "é3€");
    }

    #[test]
    fn aliases() {
        assert_eq!(first_alias("a,b"), "a");
        assert_eq!(first_alias(" b c"), "b");
        assert_eq!(first_alias(""), "");
    }
}
