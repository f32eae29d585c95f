//! The job description gitlab-runner writes to `JOB_RESPONSE_FILE` (GitLab's `spec.Job`, mode
//! 0600): what the environment does not carry — the image's entrypoint and pull policy, the
//! services' ports and pull policies, the registry credentials GitLab sends with the job, and
//! which variables are masked (their values are redacted from the log copy `pogo run` keeps).
//!
//! Only these fields are read; everything else in the file is ignored. Parsing is pure
//! ([`parse`]); values the job controls are validated where they are used (prepare).

use crate::secret::Secret;
use serde::Deserialize;

/// The parts of the job description pogo uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobResponse {
    pub image: ImageSpec,
    pub services: Vec<ImageSpec>,
    pub credentials: Vec<Credential>,
    /// The values of the variables with `masked: true` (empty ones left out).
    pub masked: Vec<Secret>,
    /// What GitLab itself says of the job, where the job's own variables cannot change it.
    pub gitlab: GitLabSet,
    /// Who the job is: from the description's own fields, which no variable can change.
    /// `None` when the description has no `id` (not one gitlab-runner wrote).
    pub identity: Option<JobIdentity>,
    /// `allow_git_fetch`: the project's Git strategy is `fetch` (GitLab's default), which
    /// applies when the job's variables set no `GIT_STRATEGY`.
    pub allow_git_fetch: bool,
}

/// The job's identity, from the job description's own `id` and `token` fields: pogo names
/// and finds everything it makes for a job by this, never by `CUSTOM_ENV_CI_JOB_ID` (a job
/// may set `variables: {CI_JOB_ID: …}` to any value, another running job's id included).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct JobIdentity {
    /// GitLab's job id (`id`): unique on one GitLab instance.
    pub id: String,
    /// The job token GitLab issued for this job alone (`token`): what pogo asks GitLab with.
    pub token: Secret,
    /// 8 hex digits of SHA-256 over a pogo prefix and the job token: part of every name pogo
    /// gives the job's objects, so that a job of another GitLab instance with the same id, or
    /// any job that does not hold this token, can never name (and so replace or remove) them.
    /// A prefix of a hash of a random token says nothing usable about the token.
    pub fingerprint: String,
}

impl std::fmt::Debug for JobIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobIdentity")
            .field("id", &self.id)
            .field("token", &self.token)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// The fingerprint of a job token (see [`JobIdentity::fingerprint`]).
pub fn token_fingerprint(token: &str) -> String {
    crate::names::sha256_hex(&[b"pogo job key\0", token.as_bytes()], 4)
}

/// Predefined variables pogo decides by, as GitLab set them. GitLab sends its predefined
/// variables first and the job's own after them, duplicates included, and gitlab-runner hands
/// the executor the last value of a key: a job with `variables: {CI_PROJECT_PATH: other/app}`
/// would pass for `other/app` (and get mounts limited to it), and one that sets
/// `CI_API_V4_URL` would have pogo ask a server of its choosing for its tags. So the first
/// value of each key in the job description counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitLabSet {
    pub api_url: Option<String>,
    pub project_path: Option<String>,
    /// `job_info.name`, else the first `CI_JOB_NAME`.
    pub job_name: Option<String>,
    pub job_url: Option<String>,
    pub pipeline_id: Option<String>,
    /// `runner_info.timeout` (seconds; GitLab's, with the runner's maximum applied), when set.
    pub timeout_secs: Option<u64>,
}

/// `image:` or one entry of `services:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    pub name: String,
    /// `None`: the image's own ENTRYPOINT; `Some` overrides it (`[]` or `[""]` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// `ports:` (port numbers as the job wrote them; checked before use).
    pub ports: Vec<i64>,
    /// `pull_policy:` as the job wrote it (empty: the runner's policy).
    pub pull_policy: Vec<String>,
    /// `docker: {platform, user}` (`executor_opts.docker` of the description).
    pub docker: DockerOptions,
}

/// `image: docker:` / `services: docker:` of a job, as the Docker executor honours them:
/// the platform to pull and run, and the user the container runs as. Both are the job's
/// values: checked before use ([`crate::podman::args::validate_docker_options`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerOptions {
    pub platform: Option<String>,
    pub user: Option<String>,
}

/// One entry of `credentials:` (GitLab sends the job's registry login here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `registry` for container registries.
    pub kind: String,
    /// The registry, e.g. `registry.example.com` or `registry.example.com:5050`.
    pub url: String,
    pub username: String,
    pub password: Secret,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    allow_git_fetch: Option<bool>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    job_info: Option<RawJobInfo>,
    #[serde(default)]
    runner_info: Option<RawRunnerInfo>,
    #[serde(default)]
    image: Option<RawImage>,
    #[serde(default)]
    services: Option<Vec<RawImage>>,
    #[serde(default)]
    credentials: Option<Vec<RawCredential>>,
    #[serde(default)]
    variables: Option<Vec<RawVariable>>,
}

#[derive(Deserialize)]
struct RawJobInfo {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawRunnerInfo {
    #[serde(default)]
    timeout: Option<u64>,
}

// No Debug: it holds the values.
#[derive(Deserialize)]
struct RawVariable {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    masked: Option<bool>,
}

#[derive(Deserialize)]
struct RawImage {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    ports: Option<Vec<RawPort>>,
    #[serde(default)]
    pull_policy: Option<OneOrMany>,
    #[serde(default)]
    executor_opts: Option<RawExecutorOpts>,
}

#[derive(Deserialize)]
struct RawExecutorOpts {
    #[serde(default)]
    docker: Option<RawDockerOpts>,
}

#[derive(Deserialize)]
struct RawDockerOpts {
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RawPort {
    number: i64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

// No Debug: it holds the password.
#[derive(Deserialize)]
struct RawCredential {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl From<RawImage> for ImageSpec {
    fn from(r: RawImage) -> Self {
        ImageSpec {
            name: r.name.unwrap_or_default(),
            entrypoint: r.entrypoint,
            ports: r
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.number)
                .collect(),
            pull_policy: match r.pull_policy {
                None => Vec::new(),
                Some(OneOrMany::One(s)) => vec![s],
                Some(OneOrMany::Many(v)) => v,
            },
            docker: r
                .executor_opts
                .and_then(|o| o.docker)
                .map(|d| DockerOptions {
                    platform: d.platform.filter(|p| !p.is_empty()),
                    user: d.user.filter(|u| !u.is_empty()),
                })
                .unwrap_or_default(),
        }
    }
}

/// Parse the job description. The error never quotes the file (it holds the job token and
/// every variable's value).
pub fn parse(text: &str) -> Result<JobResponse, String> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| redacted_json_error(&e))?;
    let variables = raw.variables.unwrap_or_default();
    let first = |key: &str| {
        variables
            .iter()
            .find(|v| v.key.as_deref() == Some(key))
            .and_then(|v| v.value.clone())
    };
    let gitlab = GitLabSet {
        api_url: first("CI_API_V4_URL"),
        project_path: first("CI_PROJECT_PATH"),
        job_name: raw
            .job_info
            .and_then(|i| i.name)
            .or_else(|| first("CI_JOB_NAME")),
        job_url: first("CI_JOB_URL"),
        pipeline_id: first("CI_PIPELINE_ID"),
        timeout_secs: raw.runner_info.and_then(|r| r.timeout).filter(|t| *t > 0),
    };
    let identity = raw.id.map(|id| {
        let token = raw.token.unwrap_or_default();
        JobIdentity {
            id: id.to_string(),
            fingerprint: token_fingerprint(&token),
            token: Secret::new(token),
        }
    });
    Ok(JobResponse {
        identity,
        allow_git_fetch: raw.allow_git_fetch.unwrap_or(false),
        image: raw.image.map(ImageSpec::from).unwrap_or_default(),
        services: raw
            .services
            .unwrap_or_default()
            .into_iter()
            .map(ImageSpec::from)
            .collect(),
        credentials: raw
            .credentials
            .unwrap_or_default()
            .into_iter()
            .map(|c| Credential {
                kind: c.kind.unwrap_or_default(),
                url: c.url.unwrap_or_default(),
                username: c.username.unwrap_or_default(),
                password: Secret::new(c.password.unwrap_or_default()),
            })
            .collect(),
        masked: variables
            .into_iter()
            .filter(|v| v.masked == Some(true))
            .filter_map(|v| v.value.filter(|s| !s.is_empty()))
            .map(Secret::new)
            .collect(),
        gitlab,
    })
}

/// Read and parse `JOB_RESPONSE_FILE`.
pub fn load(path: &std::path::Path) -> Result<JobResponse, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the job description {} (JOB_RESPONSE_FILE): {e}",
            path.display()
        )
    })?;
    parse(&text).map_err(|e| {
        format!(
            "the job description {} (JOB_RESPONSE_FILE) is not what gitlab-runner writes: {e}",
            path.display()
        )
    })
}

/// A serde_json error without the values it may quote (`invalid type: string "…"`): JSON that
/// fails to parse here can hold secrets.
pub fn redacted_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "cannot be read",
        serde_json::error::Category::Syntax => "is not valid JSON",
        serde_json::error::Category::Eof => "ends too early",
        serde_json::error::Category::Data => "has a value of an unexpected type or shape",
    };
    format!("it {what} (line {}, column {})", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_pogo_uses_are_read_and_the_rest_ignored() {
        let r = parse(
            r#"{"id":1,"token":"t","allow_git_fetch":true,"image":{"name":"alpine:3","alias":"","entrypoint":[""],
                "ports":[{"number":8080,"protocol":"http","name":"web"}],
                "pull_policy":["if-not-present","always"],"executor_opts":{}},
               "services":[{"name":"postgres:15","entrypoint":null,"ports":null,"pull_policy":null},
                           {"name":"redis","ports":[{"number":6379}],"pull_policy":"never"}],
               "credentials":[{"type":"registry","url":"registry.example.com","username":"gitlab-ci-token","password":"glcbt-123"}],
               "variables":[{"key":"A","value":"secret"}]}"#,
        )
        .unwrap();
        assert_eq!(r.image.entrypoint, Some(vec![String::new()]));
        assert_eq!(r.image.ports, vec![8080]);
        assert_eq!(r.image.pull_policy, vec!["if-not-present", "always"]);
        assert_eq!(r.services.len(), 2);
        assert_eq!(r.services[0].entrypoint, None);
        assert!(r.services[0].ports.is_empty() && r.services[0].pull_policy.is_empty());
        assert_eq!(r.services[1].ports, vec![6379]);
        assert_eq!(r.services[1].pull_policy, vec!["never"]);
        assert_eq!(r.credentials[0].url, "registry.example.com");
        assert_eq!(r.credentials[0].password.expose(), "glcbt-123");
        assert!(!format!("{r:?}").contains("glcbt-123"));
        assert!(r.allow_git_fetch);
    }

    #[test]
    fn masked_values_are_read_and_kept_out_of_debug_output() {
        let r = parse(
            r#"{"id":1,"variables":[
                {"key":"CI_JOB_TOKEN","value":"glcbt-abcdefgh","masked":true,"public":false},
                {"key":"PLAIN","value":"visible-value","public":true},
                {"key":"EMPTY","value":"","masked":true},
                {"key":"NULL","value":null,"masked":true}
            ]}"#,
        )
        .unwrap();
        let masked: Vec<&str> = r.masked.iter().map(Secret::expose).collect();
        assert_eq!(masked, vec!["glcbt-abcdefgh"]);
        assert!(!format!("{r:?}").contains("glcbt-abcdefgh"));
    }

    #[test]
    fn gitlabs_own_project_and_api_url_come_first_and_a_jobs_override_after_does_not_count() {
        let r = parse(
            r#"{"variables":[
                {"key":"CI_API_V4_URL","value":"https://gitlab.example.com/api/v4"},
                {"key":"CI_PROJECT_PATH","value":"group/app"},
                {"key":"CI_PROJECT_PATH","value":"ops/infra"},
                {"key":"CI_API_V4_URL","value":"http://evil.example/api/v4"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            r.gitlab,
            GitLabSet {
                api_url: Some("https://gitlab.example.com/api/v4".into()),
                project_path: Some("group/app".into()),
                ..GitLabSet::default()
            }
        );
    }

    #[test]
    fn the_jobs_identity_is_the_descriptions_id_and_token_whatever_its_variables_say() {
        let r = parse(
            r#"{"id":4711,"token":"glcbt-own","job_info":{"name":"deploy"},
                "variables":[{"key":"CI_JOB_ID","value":"4711"},{"key":"CI_JOB_ID","value":"1"}]}"#,
        )
        .unwrap();
        let identity = r.identity.unwrap();
        assert_eq!(identity.id, "4711");
        assert_eq!(identity.token.expose(), "glcbt-own");
        assert_eq!(identity.fingerprint, token_fingerprint("glcbt-own"));
        assert_eq!(identity.fingerprint.len(), 8);
        assert_ne!(identity.fingerprint, token_fingerprint("glcbt-other"));
        assert!(!format!("{identity:?}").contains("glcbt-own"));
        assert_eq!(r.gitlab.job_name.as_deref(), Some("deploy"));
    }

    #[test]
    fn a_minimal_or_null_description_is_fine() {
        assert_eq!(parse("{}").unwrap(), JobResponse::default());
        let r =
            parse(r#"{"image":null,"services":null,"credentials":null,"variables":null}"#).unwrap();
        assert_eq!(r, JobResponse::default());
    }

    #[test]
    fn errors_never_quote_the_file() {
        let e = parse(r#"{"image":{"name":"x","entrypoint":"glcbt-secret-value"}}"#).unwrap_err();
        assert!(!e.contains("glcbt-secret-value"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        let e = parse(r#"{"credentials":[{"password":123456789}]}"#).unwrap_err();
        assert!(!e.contains("123456789"), "{e}");
        assert!(parse("{").unwrap_err().contains("ends too early"));
    }
}
