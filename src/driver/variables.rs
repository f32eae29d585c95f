//! A job's variables and the environment of its executor calls: `Build.GetAllVariables()`
//! ([`all_variables`]) and the environment gitlab-runner gives each call
//! ([`Driver::phase_env_list`], [`dedup_env`]).

use std::path::Path;

use super::job::{self, Job, Variable};
use super::run::{Exec, Run};
use super::Driver;

impl Driver {
    /// The environment of one phase, in gitlab-runner's order (before
    /// removing duplicates): runner env, fixed variables, `job_env`,
    /// `CUSTOM_ENV_*` for every variable, `CUSTOM_ENV_CI_JOB_SERVICES`.
    pub fn phase_env_list(
        &self,
        tmp: &Path,
        job_env: &[(String, String)],
        variables: &[Variable],
        services_json: &str,
    ) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if !self.env.iter().any(|(k, _)| k == "PATH") {
            if let Ok(p) = std::env::var("PATH") {
                env.push(("PATH".to_string(), p));
            }
        }
        env.extend(self.env.iter().cloned());
        let tmp_s = tmp.to_string_lossy().into_owned();
        env.push(("TMPDIR".into(), tmp_s.clone()));
        env.push(("BUILD_FAILURE_EXIT_CODE".into(), "1".into()));
        env.push(("SYSTEM_FAILURE_EXIT_CODE".into(), "2".into()));
        env.push((
            "BUILD_EXIT_CODE_FILE".into(),
            format!("{tmp_s}/build_exit_code"),
        ));
        env.push(("JOB_RESPONSE_FILE".into(), format!("{tmp_s}/response.json")));
        env.extend(job_env.iter().cloned());
        for v in variables {
            env.push((format!("CUSTOM_ENV_{}", v.key), v.value.clone()));
        }
        env.push((
            "CUSTOM_ENV_CI_JOB_SERVICES".into(),
            services_json.to_string(),
        ));
        env
    }
}

/// Go's `dedupEnv`: later values win.
pub fn dedup_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<(String, String)> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    out.reverse();
    out
}

impl Run<'_> {
    /// `Build.GetAllVariables()` for the given state of the executor.
    pub(super) fn all_variables(&self, exec: &Exec, job_status: &str) -> Vec<Variable> {
        let slot = Slot {
            runner_short_token: &self.d.runner_short_token,
            concurrent_id: self.d.concurrent_id,
            builds_dir: &exec.builds_dir_if_started(),
            project_dir: &exec.project_dir,
        };
        all_variables(self.job, &slot, job_status)
    }

    /// The environment of an executor call: with config_exec's `job_env` when `job_env`.
    pub(super) fn env_for(
        &self,
        exec: &Exec,
        job_env: bool,
        vars: &[Variable],
    ) -> Vec<(String, String)> {
        let services = self.job.services_env(vars);
        let job_env: &[(String, String)] = if job_env { &exec.job_env } else { &[] };
        dedup_env(self.d.phase_env_list(&exec.tmp, job_env, vars, &services))
    }
}

/// Where a job runs, as far as its variables tell.
pub struct Slot<'a> {
    pub runner_short_token: &'a str,
    /// `CI_CONCURRENT_ID` (and `CI_CONCURRENT_PROJECT_ID`).
    pub concurrent_id: u32,
    /// Empty until gitlab-runner knows it (before config_exec answered).
    pub builds_dir: &'a str,
    pub project_dir: &'a str,
}

/// `Build.GetAllVariables()` (common/build.go): the runner's variables around the job's, in
/// gitlab-runner's order, every non-raw value expanded against the whole list.
pub fn all_variables(job: &Job, slot: &Slot, job_status: &str) -> Vec<Variable> {
    let payload = job.payload_variables();
    let mut v = Vec::new();
    let image = job::expand(job.image_name(), &payload);
    if !image.is_empty() {
        v.push(Variable::new("CI_JOB_IMAGE", image));
    }
    let slot_id = slot.concurrent_id.to_string();
    v.extend([
        Variable::new("CI_RUNNER_SHORT_TOKEN", slot.runner_short_token),
        Variable::new("CI_BUILDS_DIR", slot.builds_dir),
        Variable::new("CI_PROJECT_DIR", slot.project_dir),
        Variable::new("CI_CONCURRENT_ID", slot_id.clone()),
        Variable::new("CI_CONCURRENT_PROJECT_ID", slot_id),
        Variable::new("CI_SERVER", "yes"),
        Variable::new("CI_JOB_STATUS", job_status),
        Variable::new("CI_JOB_TIMEOUT", job.timeout.as_secs().to_string()),
    ]);
    v.extend(payload);
    v.extend([
        Variable::new("CI_SHARED_ENVIRONMENT", "true"),
        Variable::new("CI_RUNNER_VERSION", job::RUNNER_VERSION),
        Variable::new("CI_RUNNER_REVISION", job::RUNNER_REVISION),
        Variable::new("CI_RUNNER_EXECUTABLE_ARCH", format!("linux/{}", go_arch())),
        Variable::new(
            "RUNNER_TEMP_PROJECT_DIR",
            format!("{}.tmp", slot.project_dir),
        ),
    ]);
    // Expansion: every non-raw value against the whole list.
    let snapshot = v.clone();
    for var in v.iter_mut().filter(|x| !x.raw && x.value.contains('$')) {
        var.value = job::expand(&var.value, &snapshot);
    }
    v
}

/// The architecture name gitlab-runner reports (Go's `GOARCH`).
pub use crate::gitlab::go_arch;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::driver::Image;

    #[test]
    fn env_order_and_dedup() {
        let mut d = Driver::new("/bin/true");
        d.env = vec![
            ("PATH".into(), "/p".into()),
            ("TMPDIR".into(), "/runner-tmp".into()),
            ("KEEP".into(), "1".into()),
        ];
        let tmp = Path::new("/t/custom-executor1");
        let job_env = vec![
            ("POGO_X".into(), "x".into()),
            ("BUILD_FAILURE_EXIT_CODE".into(), "9".into()),
        ];
        let vars = vec![Variable::new("A", "1"), Variable::new("A", "2")];
        let list = d.phase_env_list(tmp, &job_env, &vars, "");
        let keys: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "PATH",
                "TMPDIR",
                "KEEP",
                "TMPDIR",
                "BUILD_FAILURE_EXIT_CODE",
                "SYSTEM_FAILURE_EXIT_CODE",
                "BUILD_EXIT_CODE_FILE",
                "JOB_RESPONSE_FILE",
                "POGO_X",
                "BUILD_FAILURE_EXIT_CODE",
                "CUSTOM_ENV_A",
                "CUSTOM_ENV_A",
                "CUSTOM_ENV_CI_JOB_SERVICES"
            ]
        );
        let env: std::collections::HashMap<_, _> = dedup_env(list).into_iter().collect();
        assert_eq!(env["TMPDIR"], "/t/custom-executor1");
        assert_eq!(env["BUILD_FAILURE_EXIT_CODE"], "9");
        assert_eq!(
            env["BUILD_EXIT_CODE_FILE"],
            "/t/custom-executor1/build_exit_code"
        );
        assert_eq!(
            env["JOB_RESPONSE_FILE"],
            "/t/custom-executor1/response.json"
        );
        assert_eq!(env["CUSTOM_ENV_A"], "2");
        assert_eq!(env["CUSTOM_ENV_CI_JOB_SERVICES"], "");
        assert_eq!(env.len(), 10);
    }

    #[test]
    fn a_cache_key_naming_a_variable_gets_that_variables_expanded_value() {
        let d = Driver::new("/bin/true");
        let mut job = Job::new(7, "t", "g/p", "http://127.0.0.1:9/api/v4");
        job.git_ref = "main".into();
        job.variables
            .push(Variable::new("CK", "deps-$CI_COMMIT_REF_NAME"));
        let run = Run::new(&d, &job);
        let exec = Exec::default();
        let all = run.all_variables(&exec, "running");
        let cache = |key: &str| job::Cache {
            key: key.into(),
            paths: vec!["vendor".into()],
            ..job::Cache::default()
        };
        // as gitlab-runner: GetAllVariables() is expanded, then the key against it
        assert_eq!(
            job.cache_key(&cache("$CK"), &all).as_deref(),
            Ok("deps-main")
        );
        assert_eq!(
            job.cache_key(&cache("x-${CK}-$CI_JOB_ID"), &all).as_deref(),
            Ok("x-deps-main-7")
        );
        assert_eq!(job.cache_key(&cache(""), &all).as_deref(), Ok("test/main"));
    }

    #[test]
    fn variables_in_config_and_later() {
        let d = Driver::new("/bin/true");
        let mut job = Job::new(7, "secret-token-123", "g/p", "http://127.0.0.1:9/api/v4");
        job.variables
            .push(Variable::new("MINE", "$CI_PROJECT_DIR/x"));
        job.image = Some(Image::new("img:$CI_JOB_ID"));
        let run = Run::new(&d, &job);
        let mut exec = Exec {
            builds_dir: "/builds".into(),
            ..Exec::default()
        };
        let get = |vars: &[Variable], k: &str| {
            vars.iter()
                .rev()
                .find(|v| v.key == k)
                .map(|v| v.value.clone())
        };
        let v = run.all_variables(&exec, "running");
        assert_eq!(get(&v, "CI_BUILDS_DIR").as_deref(), Some(""));
        assert_eq!(get(&v, "CI_PROJECT_DIR").as_deref(), Some(""));
        assert_eq!(get(&v, "CI_JOB_IMAGE").as_deref(), Some("img:7"));
        assert_eq!(get(&v, "CI_JOB_TOKEN").as_deref(), Some("secret-token-123"));
        exec.project_dir = "/builds/g/p".into();
        let v = run.all_variables(&exec, "canceled");
        assert_eq!(get(&v, "CI_BUILDS_DIR").as_deref(), Some("/builds"));
        assert_eq!(get(&v, "CI_PROJECT_DIR").as_deref(), Some("/builds/g/p"));
        assert_eq!(get(&v, "MINE").as_deref(), Some("/builds/g/p/x"));
        assert_eq!(get(&v, "CI_JOB_STATUS").as_deref(), Some("canceled"));
        assert_eq!(
            get(&v, "RUNNER_TEMP_PROJECT_DIR").as_deref(),
            Some("/builds/g/p.tmp")
        );
        for k in [
            "CI",
            "GITLAB_CI",
            "CI_JOB_ID",
            "CI_JOB_NAME",
            "CI_JOB_STAGE",
            "CI_JOB_URL",
            "CI_PROJECT_PATH",
            "CI_PROJECT_NAME",
            "CI_PROJECT_NAMESPACE",
            "CI_PROJECT_ID",
            "CI_PIPELINE_ID",
            "CI_API_V4_URL",
            "CI_SERVER_URL",
            "CI_RUNNER_SHORT_TOKEN",
            "CI_CONCURRENT_ID",
            "CI_CONCURRENT_PROJECT_ID",
            "CI_SERVER",
            "CI_JOB_TIMEOUT",
            "CI_SHARED_ENVIRONMENT",
        ] {
            assert!(get(&v, k).is_some(), "{k} missing");
        }
    }
}
