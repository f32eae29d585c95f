//! `pogo config`: the JSON gitlab-runner reads from stdout (builds/cache dir, driver, shell)
//! plus `job_env` that hands the job's tags and names to the later phases.

use super::env::{self, JobEnv};
use super::Failure;
use crate::config;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ConfigOutput {
    pub builds_dir: String,
    pub cache_dir: String,
    pub builds_dir_is_shared: bool,
    pub hostname: String,
    pub driver: Driver,
    pub shell: String,
    pub job_env: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Driver {
    pub name: String,
    pub version: String,
}

/// Build the output from the resolved pieces (pure).
pub fn output(
    config: &config::Config,
    job: &JobEnv,
    tags: &[String],
    hostname: &str,
) -> ConfigOutput {
    let mut job_env = BTreeMap::new();
    job_env.insert(
        env::JOB_TAGS.to_string(),
        serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_string()),
    );
    job_env.insert(env::JOB_KEY.to_string(), job.names.key.clone());
    job_env.insert(env::JOB_CONTAINER.to_string(), job.names.container.clone());
    job_env.insert(env::JOB_POD.to_string(), job.names.pod.clone());
    job_env.insert(
        env::JOB_WORKING_DIR.to_string(),
        config.working_dir.display().to_string(),
    );
    job_env.insert(env::JOB_PODMAN.to_string(), config.podman.clone());
    job_env.insert(
        env::JOB_PODMAN_ARGS.to_string(),
        serde_json::to_string(&config.podman_args).unwrap_or_else(|_| "[]".to_string()),
    );
    ConfigOutput {
        builds_dir: config.builds_dir.clone(),
        cache_dir: config.cache_dir.display().to_string(),
        builds_dir_is_shared: false,
        hostname: hostname.to_string(),
        driver: Driver {
            name: "pogo".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        shell: config.shell.as_str().to_string(),
        job_env,
    }
}

/// Hand the config text this phase read to the later phases ([`env::JOB_CONFIG`]), unless it
/// is too long for the environment (then they read the file, and the job log says so).
pub fn pass_on_config(job_env: &mut BTreeMap<String, String>, text: &str, path: Option<&Path>) {
    if text.len() > env::JOB_CONFIG_MAX {
        super::log_warning(&format!(
            "the pogo config is over {} KiB: this job's later phases read it again, so edits \
             made while it runs apply to it",
            env::JOB_CONFIG_MAX / 1024
        ));
        return;
    }
    job_env.insert(env::JOB_CONFIG.to_string(), text.to_string());
    job_env.insert(
        env::JOB_CONFIG_PATH.to_string(),
        path.map(|p| p.display().to_string()).unwrap_or_default(),
    );
}

/// The job's tags: from `POGO_JOB_TAGS` when the caller already knows them (`pogo exec`),
/// else one request to GitLab.
pub fn job_tags(job: &JobEnv) -> Result<Vec<String>, Failure> {
    if let Some(tags) = &job.tags {
        return Ok(tags.clone());
    }
    crate::gitlab::job_tags(
        &job.api_url,
        &job.job_token,
        job.tls_ca.as_deref(),
        Duration::from_secs(30),
    )
    .map_err(Failure::system)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Run the phase: JSON on stdout, nothing else there.
pub fn run(config_flag: Option<&Path>, env: &HashMap<String, String>) -> Result<(), Failure> {
    let (text, path) = config::source(config_flag, env).map_err(super::config_failure)?;
    let config = config::load_text(&text, path.as_deref(), env).map_err(super::config_failure)?;
    // the job's names come from the description (its `id` and `token`), never from
    // variables a job can set: a description that cannot be read fails the phase
    let response = super::load_response(env).map_err(Failure::system)?;
    let job = JobEnv::from_env(env, Some(&response)).map_err(Failure::system)?;
    let tags = job_tags(&job)?;
    let mut out = output(&config, &job, &tags, &hostname());
    pass_on_config(&mut out.job_env, &text, path.as_deref());
    let json = serde_json::to_string(&out).map_err(Failure::system)?;
    println!("{json}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_output_carries_tags_and_names_for_later_phases() {
        let env: HashMap<String, String> = [
            ("CUSTOM_ENV_CI_JOB_ID", "42"),
            ("CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN", "abc"),
            ("HOME", "/h"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = config::finalize(config::RawConfig::default(), None, &env).unwrap();
        let described = crate::executor::response::parse(r#"{"id":42,"token":"t"}"#).unwrap();
        let job = JobEnv::from_env(&env, Some(&described)).unwrap();
        let out = output(&cfg, &job, &["a".into(), "b".into()], "host1");
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["builds_dir"], "/builds");
        assert_eq!(v["builds_dir_is_shared"], false);
        assert_eq!(v["driver"]["name"], "pogo");
        assert_eq!(v["shell"], "bash");
        assert_eq!(v["job_env"]["POGO_JOB_TAGS"], r#"["a","b"]"#);
        assert_eq!(
            v["job_env"]["POGO_JOB_CONTAINER"],
            format!(
                "pogo-abc-42-0-{}-build",
                crate::executor::response::token_fingerprint("t")
            )
        );
        assert_eq!(v["job_env"]["POGO_JOB_PODMAN"], "podman");
        assert_eq!(v["job_env"]["POGO_JOB_PODMAN_ARGS"], "[]");
    }

    #[test]
    fn later_phases_use_the_podman_the_job_started_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pogo.yaml");
        std::fs::write(&path, "podman_args: --log-level=error\n").unwrap();
        let env: HashMap<String, String> = [
            ("CUSTOM_ENV_CI_JOB_ID", "42"),
            ("HOME", "/h"),
            (env::JOB_KEY, "pogo-r-42-0-ab"),
            (env::JOB_PODMAN, "/opt/podman"),
            (env::JOB_PODMAN_ARGS, r#"["--root","/srv/storage"]"#),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let ctx = super::super::Context::load(Some(&path), env).unwrap();
        assert_eq!(
            ctx.podman.display(&["ps".to_string()]),
            "/opt/podman --root /srv/storage ps"
        );
    }
}
