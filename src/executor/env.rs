//! Pure parsing of what gitlab-runner hands each phase through the environment
//! (`CUSTOM_ENV_*`, the exit-code variables, pogo's own `job_env`).

use crate::podman::labels::{
    sanitize_label_value, LABEL_CREATED, LABEL_JOB_KEY, LABEL_MANAGED_BY, LABEL_RUNNER,
    LABEL_TIMEOUT,
};
use crate::podman::service::Service;
use crate::secret::Secret;
use std::collections::HashMap;
use std::path::PathBuf;

/// `job_env` keys pogo's config phase hands to the later phases.
pub const JOB_TAGS: &str = "POGO_JOB_TAGS";
pub const JOB_KEY: &str = "POGO_JOB_KEY";
/// The `working_dir` the job started with (from the config phase): cleanup finds the job's
/// private files with it even when the config cannot be read any more.
pub const JOB_WORKING_DIR: &str = "POGO_JOB_WORKING_DIR";

/// The pogo config file's text as the config phase read it, and its path (empty: no file, the
/// defaults). Every later phase loads this text, not the file: a running job keeps the
/// settings it started with (its shell, stage runner, podman, paths, …) when the file is
/// edited, or saved invalid for a moment, while it runs. gitlab-runner hands `job_env` to
/// prepare, run and cleanup; a job's own variables arrive prefixed (`CUSTOM_ENV_…`) and cannot
/// shadow these.
pub const JOB_CONFIG: &str = "POGO_JOB_CONFIG";
pub const JOB_CONFIG_PATH: &str = "POGO_JOB_CONFIG_PATH";
/// A config longer than this is not passed on (an environment string may hold 128 KiB):
/// later phases then read the file again, and the job log says so.
pub const JOB_CONFIG_MAX: usize = 64 * 1024;

/// The config text and path the config phase passed on ([`JOB_CONFIG`]), when it did.
pub fn job_config(env: &HashMap<String, String>) -> Option<(&str, Option<PathBuf>)> {
    let text = env.get(JOB_CONFIG)?;
    let path = env
        .get(JOB_CONFIG_PATH)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    Some((text.as_str(), path))
}

/// The `working_dir` the config phase passed on ([`JOB_WORKING_DIR`]), when it did.
pub fn job_working_dir(env: &HashMap<String, String>) -> Option<PathBuf> {
    env.get(JOB_WORKING_DIR)
        .filter(|w| !w.is_empty())
        .map(PathBuf::from)
}
/// The podman binary and its global arguments (a JSON array) the job started with, passed on
/// by the config phase like [`JOB_WORKING_DIR`]: later phases, cleanup above all, talk to
/// the same storage also when `podman`/`podman_args` are edited (or broken) meanwhile.
pub const JOB_PODMAN: &str = "POGO_JOB_PODMAN";
pub const JOB_PODMAN_ARGS: &str = "POGO_JOB_PODMAN_ARGS";

/// The podman the config phase passed on ([`JOB_PODMAN`], [`JOB_PODMAN_ARGS`]), when it did.
pub fn job_podman(env: &HashMap<String, String>) -> Option<(String, Vec<String>)> {
    let bin = env.get(JOB_PODMAN).filter(|b| !b.is_empty())?;
    let args = env
        .get(JOB_PODMAN_ARGS)
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    Some((bin.clone(), args))
}
pub const JOB_CONTAINER: &str = "POGO_JOB_CONTAINER";
pub const JOB_POD: &str = "POGO_JOB_POD";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error(
        "{0} is not set: pogo must be called by gitlab-runner (custom executor) or `pogo exec`"
    )]
    Missing(&'static str),
    #[error("{var} is not valid: {message}")]
    Invalid { var: &'static str, message: String },
}

/// Everything pogo needs to know about the job, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnv {
    pub build_failure_exit_code: i32,
    pub system_failure_exit_code: i32,
    pub build_exit_code_file: Option<PathBuf>,
    pub job_response_file: Option<PathBuf>,
    pub job_id: String,
    pub job_name: String,
    pub job_url: String,
    pub job_token: Secret,
    pub api_url: String,
    pub image: Option<String>,
    pub services: Vec<Service>,
    pub project_path: String,
    pub pipeline_id: String,
    pub runner_short_token: String,
    pub concurrent_id: String,
    /// `CI_CONCURRENT_PROJECT_ID` (the slot among the runner's jobs of this project), else
    /// `CI_CONCURRENT_ID`.
    pub concurrent_project_id: String,
    /// `CI_JOB_TIMEOUT` in seconds (GitLab's default, 1 h, when missing).
    pub timeout_secs: u64,
    /// Tags handed on by the config phase (`POGO_JOB_TAGS`), if it ran.
    pub tags: Option<Vec<String>>,
    /// `GIT_STRATEGY` as the job's variables leave it (their last value), when set: the job's
    /// own choice, which only decides whether prepare mounts the project's kept builds volume.
    pub git_strategy: Option<String>,
    /// `CI_SERVER_TLS_CA_FILE`: the PEM certificates gitlab-runner trusts for GitLab (its
    /// `tls-ca-file`, or the chain it saw); a file variable, so the text itself.
    pub tls_ca: Option<String>,
    pub names: Names,
    /// For the job log (prepare says them): where pogo went by GitLab's values over the job's.
    pub notes: Vec<String>,
}

/// What [`JobEnv::from_env`] reports missing when it has neither the config phase's names
/// nor a job description with an id.
pub const JOB_DESCRIPTION: &str =
    "JOB_RESPONSE_FILE (the job description gitlab-runner 14.1 and later writes; pogo takes \
     the job's identity from it, never from CUSTOM_ENV_CI_JOB_ID, which a job can set)";

/// `JOB_RESPONSE_FILE`, when set.
pub fn job_response_file(env: &HashMap<String, String>) -> Option<PathBuf> {
    env.get("JOB_RESPONSE_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Names of what pogo creates for one job: unique per runner + job + concurrency slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The `io.pogo.job-key` label value and the prefix of every name.
    pub key: String,
    pub container: String,
    pub pod: String,
}

impl Names {
    /// `runner` and `slot` are the job's variables (readable, but a job can set them);
    /// `job_id` and `fingerprint` come from the job description and make the key the job's
    /// alone (see [`super::response::JobIdentity`]).
    pub fn new(runner: &str, job_id: &str, slot: &str, fingerprint: &str) -> Self {
        Self::from_key(format!(
            "pogo-{}-{}-{}-{}",
            sanitize_name(runner, "runner"),
            sanitize_name(job_id, "job"),
            sanitize_name(slot, "0"),
            sanitize_name(fingerprint, "0")
        ))
    }

    /// The names of a job whose key is known.
    pub fn from_key(key: String) -> Self {
        Self {
            container: format!("{key}-build"),
            pod: format!("{key}-pod"),
            key,
        }
    }

    /// Name of the `index`-th service container.
    pub fn service(&self, index: usize) -> String {
        format!("{}-svc{index}", self.key)
    }

    /// The helper container (the predefined stages, when `helper_image` is set).
    pub fn helper(&self) -> String {
        format!("{}-helper", self.key)
    }

    /// The builds volume the job and helper containers share.
    pub fn builds_volume(&self) -> String {
        format!("{}-builds", self.key)
    }
}

/// The persistent builds volume of a runner + project + project slot
/// (`persistent_builds_days`): readable, and unique through a hash of the exact project path.
pub fn persistent_builds_volume(runner: &str, project_path: &str, slot: &str) -> String {
    format!(
        "pogo-builds-{}-{}-{:012x}-{}",
        sanitize_name(runner, "runner"),
        sanitize_name(&project_path.replace('/', "-"), "project"),
        name_hash(project_path.as_bytes()),
        sanitize_name(slot, "0")
    )
}

/// The kept volume of a project at a container path (`project_volume:`): one per exact project
/// path and container path, whatever the runner or slot (a job can name neither: the project
/// path is the job description's own).
pub fn project_volume(project_path: &str, container_path: &str) -> String {
    let key = [project_path.as_bytes(), b"\0", container_path.as_bytes()].concat();
    format!(
        "pogo-project-{}-{:012x}",
        sanitize_name(&project_path.replace('/', "-"), "project"),
        name_hash(&key)
    )
}

/// 48 bits of FNV-1a: what keeps a readable name unique.
fn name_hash(bytes: &[u8]) -> u64 {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    hash & 0xffff_ffff_ffff
}

/// Keep `[A-Za-z0-9_.-]`, at most 40 characters; `fallback` when nothing is left.
pub fn sanitize_name(s: &str, fallback: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| crate::names::is_name_char(*c))
        .take(40)
        .collect();
    let cleaned = cleaned.trim_start_matches(['.', '-', '_']).to_string();
    if cleaned.is_empty() {
        fallback.to_string()
    } else {
        cleaned
    }
}

fn custom<'a>(env: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(&format!("CUSTOM_ENV_{key}"))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn exit_code(
    env: &HashMap<String, String>,
    var: &'static str,
    default: i32,
) -> Result<i32, EnvError> {
    match env.get(var).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| EnvError::Invalid {
            var,
            message: format!("'{v}' is not an exit code"),
        }),
    }
}

/// The build/system failure exit codes alone: needed even when the rest cannot be parsed.
pub fn failure_codes(env: &HashMap<String, String>) -> (i32, i32) {
    (
        exit_code(env, "BUILD_FAILURE_EXIT_CODE", 1).unwrap_or(1),
        exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", 2).unwrap_or(2),
    )
}

impl JobEnv {
    /// The job as gitlab-runner describes it: `described` is the job description
    /// (`JOB_RESPONSE_FILE`), `None` when it could not be read. Every value pogo names, finds
    /// or decides anything by comes from the description where it has one (see
    /// [`Self::trust_gitlab`]); the names come from the config phase (`POGO_JOB_KEY`, computed
    /// there from the description) or from the description's `id` and `token`. Without either
    /// this fails: a job sets `CUSTOM_ENV_CI_JOB_ID` to what it likes.
    pub fn from_env(
        env: &HashMap<String, String>,
        described: Option<&super::response::JobResponse>,
    ) -> Result<Self, EnvError> {
        let identity = described.and_then(|r| r.identity.as_ref());
        let job_id = match identity {
            Some(i) => i.id.clone(),
            None => custom(env, "CI_JOB_ID").unwrap_or("").to_string(),
        };
        let services = match custom(env, "CI_JOB_SERVICES") {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json).map_err(|e| EnvError::Invalid {
                var: "CUSTOM_ENV_CI_JOB_SERVICES",
                message: e.to_string(),
            })?,
        };
        let tags = match env.get(JOB_TAGS) {
            None => None,
            Some(json) => Some(serde_json::from_str(json).map_err(|e| EnvError::Invalid {
                var: JOB_TAGS,
                message: e.to_string(),
            })?),
        };
        let runner = custom(env, "CI_RUNNER_SHORT_TOKEN")
            .unwrap_or("local")
            .to_string();
        let slot = custom(env, "CI_CONCURRENT_ID").unwrap_or("0").to_string();
        let names = match (env.get(JOB_KEY).filter(|k| !k.is_empty()), identity) {
            (Some(key), _) => {
                let computed = Names::from_key(key.clone());
                Names {
                    container: env
                        .get(JOB_CONTAINER)
                        .cloned()
                        .unwrap_or(computed.container),
                    pod: env.get(JOB_POD).cloned().unwrap_or(computed.pod),
                    key: computed.key,
                }
            }
            (None, Some(i)) => Names::new(&runner, &i.id, &slot, &i.fingerprint),
            (None, None) => return Err(EnvError::Missing(JOB_DESCRIPTION)),
        };
        let get = |k: &str| custom(env, k).unwrap_or("").to_string();
        let mut job = Self {
            build_failure_exit_code: exit_code(env, "BUILD_FAILURE_EXIT_CODE", 1)?,
            system_failure_exit_code: exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", 2)?,
            build_exit_code_file: env
                .get("BUILD_EXIT_CODE_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            job_response_file: job_response_file(env),
            job_name: get("CI_JOB_NAME"),
            job_url: get("CI_JOB_URL"),
            job_token: match identity {
                Some(i) => i.token.clone(),
                None => Secret::new(get("CI_JOB_TOKEN")),
            },
            api_url: get("CI_API_V4_URL"),
            image: custom(env, "CI_JOB_IMAGE").map(str::to_string),
            services,
            project_path: get("CI_PROJECT_PATH"),
            pipeline_id: get("CI_PIPELINE_ID"),
            runner_short_token: runner,
            concurrent_project_id: custom(env, "CI_CONCURRENT_PROJECT_ID")
                .map(str::to_string)
                .unwrap_or_else(|| slot.clone()),
            concurrent_id: slot,
            timeout_secs: custom(env, "CI_JOB_TIMEOUT")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(DEFAULT_JOB_TIMEOUT_SECS),
            tags,
            git_strategy: custom(env, "GIT_STRATEGY").map(str::to_string),
            tls_ca: custom(env, "CI_SERVER_TLS_CA_FILE")
                .filter(|v| !v.trim().is_empty())
                .map(str::to_string),
            names,
            job_id,
            notes: Vec::new(),
        };
        if let Some(r) = described {
            job.notes = job.trust_gitlab(&r.gitlab);
            if let Some(i) = identity {
                if let Some(claimed) = custom(env, "CI_JOB_ID").filter(|c| *c != i.id) {
                    job.notes.push(format!(
                        "the job's variables set CI_JOB_ID to {claimed:?}; pogo goes by GitLab's \
                         {:?} to name and find the job's containers",
                        i.id
                    ));
                }
            }
        }
        Ok(job)
    }

    /// Take what GitLab set (see [`super::response::GitLabSet`]) over what the environment
    /// says when the job's own variables changed it; a note for the job log for each change
    /// that matters to what pogo does (project and API URL; the others only label).
    fn trust_gitlab(&mut self, set: &super::response::GitLabSet) -> Vec<String> {
        let mut notes = Vec::new();
        for (key, mine, gitlabs) in [
            ("CI_PROJECT_PATH", &mut self.project_path, &set.project_path),
            ("CI_API_V4_URL", &mut self.api_url, &set.api_url),
        ] {
            if let Some(g) = gitlabs.as_ref().filter(|g| *g != mine) {
                notes.push(format!(
                    "the job's variables set {key} to {mine:?}; pogo goes by GitLab's {g:?} \
                     to choose its mounts, arguments and cache, and to ask for its tags"
                ));
                *mine = g.clone();
            }
        }
        for (mine, gitlabs) in [
            (&mut self.job_name, &set.job_name),
            (&mut self.job_url, &set.job_url),
            (&mut self.pipeline_id, &set.pipeline_id),
        ] {
            if let Some(g) = gitlabs {
                mine.clone_from(g);
            }
        }
        if let Some(t) = set.timeout_secs {
            self.timeout_secs = t;
        }
        notes
    }

    /// The labels every container, pod and volume of this job carries.
    pub fn labels(&self, created: &str) -> Vec<(String, String)> {
        let mut labels = vec![
            (LABEL_MANAGED_BY.to_string(), "pogo".to_string()),
            (LABEL_JOB_KEY.to_string(), self.names.key.clone()),
            (LABEL_RUNNER.to_string(), self.runner_short_token.clone()),
            ("io.pogo.project".to_string(), self.project_path.clone()),
            ("io.pogo.job-id".to_string(), self.job_id.clone()),
            ("io.pogo.job-name".to_string(), self.job_name.clone()),
            ("io.pogo.job-url".to_string(), self.job_url.clone()),
            ("io.pogo.pipeline-id".to_string(), self.pipeline_id.clone()),
            (LABEL_CREATED.to_string(), created.to_string()),
            (LABEL_TIMEOUT.to_string(), self.timeout_secs.to_string()),
        ];
        for (_, v) in &mut labels {
            *v = sanitize_label_value(v);
        }
        labels
    }
}

/// GitLab's default job timeout.
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 3600;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A job description with GitLab's `id` and `token` (and variables, GitLab's first).
    fn described(json: &str) -> super::super::response::JobResponse {
        super::super::response::parse(json).unwrap()
    }

    fn job(pairs: &[(&str, &str)]) -> Result<JobEnv, EnvError> {
        JobEnv::from_env(&env(pairs), Some(&described(r#"{"id":7,"token":"t"}"#)))
    }

    #[test]
    fn services_json_from_gitlab_runner_docs_parses() {
        let json = r#"[{"name":"redis:latest","alias":"","entrypoint":null,"command":null},{"name":"my-postgres:9.4","alias":"pg","entrypoint":["path","to","entrypoint"],"command":["path","to","cmd"],"variables":{"POSTGRES_DB":"mydb"}}]"#;
        let e = job(&[("CUSTOM_ENV_CI_JOB_SERVICES", json)]).unwrap();
        assert_eq!(e.services.len(), 2);
        assert_eq!(e.services[1].alias, "pg");
        assert_eq!(e.services[1].entrypoint.as_deref().unwrap()[0], "path");
        assert_eq!(e.services[0].variables, None);
    }

    #[test]
    fn empty_services_string_means_no_services() {
        let e = job(&[("CUSTOM_ENV_CI_JOB_SERVICES", "")]).unwrap();
        assert!(e.services.is_empty());
    }

    #[test]
    fn names_are_unique_per_runner_job_slot_and_token() {
        let a = Names::new("abc", "10", "0", "f00d");
        let b = Names::new("abc", "10", "1", "f00d");
        let c = Names::new("abd", "10", "0", "f00d");
        let d = Names::new("abc", "10", "0", "beef");
        assert_ne!(a.container, b.container);
        assert_ne!(a.container, c.container);
        assert_ne!(a.container, d.container);
        assert_eq!(a.key, "pogo-abc-10-0-f00d");
    }

    /// A job of another project that sets `variables: {CI_JOB_ID: <a running job's id>}` (and
    /// the runner's short token and slot) gets names of its own: the id comes from the job
    /// description, and the key carries a fingerprint of the job's own token.
    #[test]
    fn a_job_that_claims_another_jobs_id_gets_names_of_its_own() {
        let victim = JobEnv::from_env(
            &env(&[
                ("CUSTOM_ENV_CI_JOB_ID", "100"),
                ("CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN", "r1"),
                ("CUSTOM_ENV_CI_CONCURRENT_ID", "0"),
            ]),
            Some(&described(r#"{"id":100,"token":"glcbt-victim"}"#)),
        )
        .unwrap();
        let pretender_env = env(&[
            ("CUSTOM_ENV_CI_JOB_ID", "100"),
            ("CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN", "r1"),
            ("CUSTOM_ENV_CI_CONCURRENT_ID", "0"),
        ]);
        let pretender = JobEnv::from_env(
            &pretender_env,
            Some(&described(
                r#"{"id":200,"token":"glcbt-pretender","variables":[
                    {"key":"CI_JOB_ID","value":"200"},{"key":"CI_JOB_ID","value":"100"}]}"#,
            )),
        )
        .unwrap();
        assert_eq!(pretender.job_id, "200");
        assert_ne!(pretender.names.key, victim.names.key);
        assert!(pretender.notes[0].contains("set CI_JOB_ID to \"100\""));
        // the same id on another GitLab instance: another token, another key
        let same_id_elsewhere = JobEnv::from_env(
            &pretender_env,
            Some(&described(r#"{"id":100,"token":"glcbt-other-instance"}"#)),
        )
        .unwrap();
        assert_ne!(same_id_elsewhere.names.key, victim.names.key);
        // without a description (nor the config phase's names) there are no names at all
        assert_eq!(
            JobEnv::from_env(&pretender_env, None).unwrap_err(),
            EnvError::Missing(JOB_DESCRIPTION)
        );
    }

    #[test]
    fn labels_carry_gitlabs_job_values_not_the_jobs_overrides() {
        let e = JobEnv::from_env(
            &env(&[
                ("CUSTOM_ENV_CI_JOB_NAME", "\x1b]0;owned\x07deploy"),
                ("CUSTOM_ENV_CI_JOB_URL", "https://evil.example/x"),
                ("CUSTOM_ENV_CI_PIPELINE_ID", "1"),
                ("CUSTOM_ENV_CI_JOB_TIMEOUT", "1"),
            ]),
            Some(&described(
                r#"{"id":7,"token":"t","job_info":{"name":"build"},"runner_info":{"timeout":900},
                   "variables":[{"key":"CI_JOB_URL","value":"https://gitlab.example/g/p/-/jobs/7"},
                                {"key":"CI_PIPELINE_ID","value":"55"}]}"#,
            )),
        )
        .unwrap();
        assert_eq!(e.job_name, "build");
        assert_eq!(e.job_url, "https://gitlab.example/g/p/-/jobs/7");
        assert_eq!(e.pipeline_id, "55");
        assert_eq!(e.timeout_secs, 900);
    }

    #[test]
    fn persistent_builds_volumes_are_per_runner_project_and_slot() {
        let a = persistent_builds_volume("abc", "group/app", "0");
        assert!(a.starts_with("pogo-builds-abc-group-app-"), "{a}");
        assert!(a.ends_with("-0"));
        assert_ne!(a, persistent_builds_volume("abc", "group/app", "1"));
        assert_ne!(a, persistent_builds_volume("abd", "group/app", "0"));
        // same sanitised name, different project
        assert_ne!(
            persistent_builds_volume("r", "a-b/c", "0"),
            persistent_builds_volume("r", "a/b-c", "0")
        );
        let hostile = persistent_builds_volume("--x", "../../$(id)", "-v");
        assert!(hostile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
    }

    #[test]
    fn a_project_volume_is_one_per_project_and_container_path_and_keeps_the_old_hash() {
        let a = project_volume("group/app", "/var/lib/containers");
        assert!(a.starts_with("pogo-project-group-app-"), "{a}");
        assert_eq!(a, project_volume("group/app", "/var/lib/containers"));
        assert_ne!(a, project_volume("group/app", "/cache"));
        assert_ne!(
            project_volume("a-b/c", "/v"),
            project_volume("a/b-c", "/v"),
            "same sanitised name, different project"
        );
        assert_ne!(project_volume("a/b", "c/v"), project_volume("a/bc", "/v"));
        // the persistent builds volumes keep their names (the hash moved into name_hash)
        assert_eq!(
            persistent_builds_volume("abc", "group/app", "0"),
            "pogo-builds-abc-group-app-ea27e6769088-0"
        );
    }

    #[test]
    fn hostile_values_cannot_shape_names() {
        let n = Names::new("--privileged", "$(touch /tmp/x)", "../../1", "ab");
        assert_eq!(n.key, "pogo-privileged-touchtmpx-1-ab");
        assert!(!n.container.contains('/'));
        assert_eq!(Names::new("", "", "", "").key, "pogo-runner-job-0-0");
    }

    #[test]
    fn job_env_from_config_phase_wins_over_recomputation() {
        let e = job(&[
            (JOB_TAGS, r#"["a","b c"]"#),
            (JOB_KEY, "pogo-given"),
            (JOB_CONTAINER, "given"),
        ])
        .unwrap();
        assert_eq!(e.tags, Some(vec!["a".to_string(), "b c".to_string()]));
        assert_eq!(e.names.container, "given");
        assert_eq!(e.names.pod, "pogo-given-pod");
    }

    #[test]
    fn custom_exit_codes_are_honoured_and_garbage_is_an_error() {
        let e = job(&[
            ("BUILD_FAILURE_EXIT_CODE", "11"),
            ("SYSTEM_FAILURE_EXIT_CODE", "12"),
        ])
        .unwrap();
        assert_eq!(
            (e.build_failure_exit_code, e.system_failure_exit_code),
            (11, 12)
        );
        assert!(job(&[("BUILD_FAILURE_EXIT_CODE", "x")]).is_err());
    }

    #[test]
    fn the_job_token_never_shows_in_debug_output() {
        let e = JobEnv::from_env(
            &env(&[("CUSTOM_ENV_CI_JOB_TOKEN", "glcbt-forged")]),
            Some(&described(r#"{"id":7,"token":"glcbt-secret"}"#)),
        )
        .unwrap();
        assert!(!format!("{e:?}").contains("glcbt-secret"));
        // GitLab's token (the description's), not one the job's variables set
        assert_eq!(e.job_token.expose(), "glcbt-secret");
    }
}
