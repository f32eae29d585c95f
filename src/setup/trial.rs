//! `pogo doctor --run`: one job-shaped run through pogo's own phases, the check a user makes
//! after installing. The same gitlab-runner imitation that drives `pogo exec` runs a job in
//! the default image (or `--image`) with one service, through `pogo config`, `prepare`, each
//! stage of `run` and `cleanup`: pogo's init and stage agent, the agent socket, the service
//! pod and its host alias are all used as a real job uses them. Afterwards nothing labelled
//! with the job's key may be left. Nothing is sent to any GitLab.

use super::doctor::{fail, ok, warn, Check};
use crate::config::Config;
use crate::driver::{Driver, Image, Job, JobResult, Outcome, Service};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NAME: &str = "trial run";
/// `CI_RUNNER_SHORT_TOKEN` of the trial job: its containers are named `pogo-doctor-…`.
pub const RUNNER: &str = "doctor";
/// The service's alias; the job checks that it resolves inside the job's container.
const SERVICE_ALIAS: &str = "pogo-doctor-service";
const TIMEOUT: Duration = Duration::from_secs(300);

/// The trial job: `image` (`None`: the config's `default_image`, as for a job without
/// `image:`) with `service_image` as a service that only sleeps, and a script that finds the
/// service's alias in `/etc/hosts` with shell builtins only (any image with a POSIX shell
/// passes). Pure.
pub fn trial_job(id: u64, image: Option<&str>, service_image: &str) -> Job {
    let mut job = Job::new(
        id,
        // not a part of the job's names: gitlab-runner masks the token in the log
        format!("trial-job-token-{id}"),
        "pogo/doctor",
        crate::localrun::LOCAL_API_URL,
    );
    job.name = "pogo-doctor".to_string();
    job.image = image.map(Image::new);
    job.services = vec![Service {
        alias: SERVICE_ALIAS.to_string(),
        command: Some(vec!["sleep".to_string(), "600".to_string()]),
        ..Service::new(service_image)
    }];
    job.script = vec![
        format!(
            "found=; while read -r line; do for w in $line; do [ \"$w\" = {SERVICE_ALIAS} ] && found=1; done; done < /etc/hosts"
        ),
        format!(
            "[ -n \"$found\" ] || {{ echo \"the service alias {SERVICE_ALIAS} is not in the job's /etc/hosts\"; exit 1; }}"
        ),
        "echo \"pogo doctor: the job script ran\"".to_string(),
    ];
    job.timeout = TIMEOUT;
    job
}

/// The driver for the trial: pogo itself as the executor, the caller's environment minus
/// anything of a job, no tags (nothing is asked of GitLab). Pure.
pub fn trial_driver(pogo: &Path, config: Option<&Path>, env: &HashMap<String, String>) -> Driver {
    let mut vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort();
    let mut driver = Driver::new(pogo);
    driver.env = crate::localrun::runner_env(&vars);
    driver
        .env
        .push((crate::executor::env::JOB_TAGS.to_string(), "[]".to_string()));
    if let Some(c) = config {
        driver.pogo_args = vec!["--config".into(), c.display().to_string()];
    }
    driver.runner_short_token = RUNNER.to_string();
    // two doctors at once must not share container names
    driver.concurrent_id = std::process::id();
    driver
}

/// Runs the trial job and says how it went. `config` is `--config`, `cfg` what it loaded.
pub fn run(
    config: Option<&Path>,
    cfg: Option<&Config>,
    image: Option<&str>,
    env: &HashMap<String, String>,
) -> Check {
    let Some(cfg) = cfg else {
        return fail(
            NAME,
            "not run: the pogo config does not load",
            "fix the pogo config (see above), then run pogo doctor --run again",
        );
    };
    let Some(service_image) = image.or(cfg.default_image.as_deref()) else {
        return warn(
            NAME,
            "no image to try: no default_image and no --image",
            "pogo doctor --run --image IMAGE",
        );
    };
    let pogo = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            return fail(
                NAME,
                format!("not run: cannot find pogo's own binary: {e}"),
                "run pogo by its full path",
            )
        }
    };
    let id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1);
    let job = trial_job(id, image, service_image);
    let driver = trial_driver(&pogo, config, env);
    let result = match driver.run_job(&job, None) {
        Ok(r) => r,
        Err(e) => return fail(NAME, format!("not run: {e}"), "report this as a pogo bug"),
    };
    let leftovers = match job_key(&result) {
        Some(key) => left_behind(cfg, &key),
        None => Vec::new(),
    };
    judge(service_image, &result, &leftovers, || {
        save_log(id, &result.log)
    })
}

/// The check for a finished trial: `leftovers` are what cleanup did not remove; `save_log`
/// keeps the job log for a failure and says where. Pure but for `save_log`.
pub fn judge(
    image: &str,
    result: &JobResult,
    leftovers: &[String],
    save_log: impl FnOnce() -> Option<PathBuf>,
) -> Check {
    let what = format!("a job in {image} with a service, through pogo's own phases");
    if result.outcome.is_success() && leftovers.is_empty() {
        return ok(NAME, format!("{what}: passed; {}", times(result)));
    }
    if result.outcome.is_success() {
        return fail(
            NAME,
            format!(
                "{what}: passed, but its cleanup left {}",
                leftovers.join(", ")
            ),
            format!("pogo gc --runner {RUNNER} --older-than 0s removes them; please report this"),
        );
    }
    let log = save_log();
    let whole = log.map_or(String::new(), |p| {
        format!("; the whole job log: {}", p.display())
    });
    fail(
        NAME,
        format!("{what}: {}", reason(result)),
        format!("fix the ✗ above first, if any{whole}"),
    )
}

/// Why the trial failed, in the job log's own words where pogo said it: the first `ERROR:`
/// line other than gitlab-runner's closing "Job failed", else the outcome.
fn reason(result: &JobResult) -> String {
    let plain = crate::localrun::report::plain_log(&result.log);
    let said = plain
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("ERROR:") && !l.starts_with("ERROR: Job failed"))
        .map(|l| l.trim_start_matches("ERROR:").trim().to_string())
        .next();
    let outcome = match &result.outcome {
        Outcome::BuildFailure { exit_code } => {
            // the script's last words: section titles and the closing line are the runner's
            let last = result
                .log
                .lines()
                .rev()
                .filter(|l| !l.starts_with("section_"))
                .map(|l| crate::localrun::report::strip_ansi(l).trim().to_string())
                .find(|l| !l.is_empty() && !l.starts_with("ERROR: Job failed"))
                .unwrap_or_default();
            format!("the job script failed (exit {exit_code}): {last}")
        }
        Outcome::SystemFailure { reason } => format!("failed (system failure): {reason}"),
        Outcome::ConfigurationError { reason } => format!("failed (configuration): {reason}"),
        Outcome::Canceled => "canceled".to_string(),
        Outcome::TimedOut => format!("timed out after {} s", TIMEOUT.as_secs()),
        Outcome::Success => "passed".to_string(),
    };
    said.map_or(outcome.clone(), |s| format!("failed: {s}"))
}

/// "in 2.10 s (prepare 0.90 s, stages 0.70 s, cleanup 0.30 s); nothing left behind".
fn times(result: &JobResult) -> String {
    let sum = |pick: &dyn Fn(&str) -> bool| -> f64 {
        result
            .phase_times
            .iter()
            .filter(|(n, _)| pick(n))
            .map(|(_, d)| d.as_secs_f64())
            .sum()
    };
    let total = sum(&|_| true);
    let prepare = sum(&|n| n == "config" || n == "prepare");
    let cleanup = sum(&|n| n == "cleanup");
    format!(
        "in {total:.2} s (prepare {prepare:.2} s, stages {:.2} s, cleanup {cleanup:.2} s); nothing left behind",
        total - prepare - cleanup
    )
}

/// The job key `pogo config` handed to the later phases.
fn job_key(result: &JobResult) -> Option<String> {
    result
        .config_output
        .as_ref()?
        .get("job_env")?
        .get(crate::executor::env::JOB_KEY)?
        .as_str()
        .map(str::to_string)
}

/// Containers, pods and volumes labelled with job `key`, as "container NAME" etc.
fn left_behind(cfg: &Config, key: &str) -> Vec<String> {
    let filter = format!("label={}={key}", crate::podman::labels::LABEL_JOB_KEY);
    let mut found = Vec::new();
    // cleanup hands podman's removal to a process of its own: what counts is what is left
    // once that is over
    use crate::executor::removal;
    if !removal::wait(&cfg.working_dir, key, removal::WAIT) {
        found.push(format!(
            "the removal cleanup started ({}) still runs after {} s",
            removal::order_path(&cfg.working_dir, key).display(),
            removal::WAIT.as_secs()
        ));
    }
    for (kind, list) in [
        ("container", &["ps", "-a"][..]),
        ("pod", &["pod", "ps"][..]),
        ("volume", &["volume", "ls"][..]),
    ] {
        let mut cmd = super::doctor::podman_command(&cfg.podman, &cfg.podman_args, list);
        cmd.args(["--filter", &filter, "--format", "json"]);
        let Ok(out) = super::install::output_with_timeout(cmd, Duration::from_secs(30)) else {
            found.push(format!("{kind}s: could not list them"));
            continue;
        };
        let names: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for n in names {
            let name = n
                .get("Names")
                .and_then(|v| v.get(0).or(Some(v)))
                .or_else(|| n.get("Name"))
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            found.push(format!("{kind} {name}"));
        }
    }
    found
}

/// Keeps the trial's job log (for a failure) in the temp directory; where, if it could.
fn save_log(id: u64, log: &str) -> Option<PathBuf> {
    let path = std::env::temp_dir().join(format!("pogo-doctor-{id}.log"));
    let how = crate::fsutil::Replace {
        mode: Some(0o600),
        durable: false,
        keep_owner: false,
    };
    crate::fsutil::replace(
        &path,
        crate::localrun::report::plain_log(log).as_bytes(),
        how,
    )
    .ok()?;
    Some(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn result(outcome: Outcome, log: &str) -> JobResult {
        JobResult {
            outcome,
            log: log.to_string(),
            phase_times: vec![
                ("config".into(), Duration::from_millis(5)),
                ("prepare".into(), Duration::from_millis(900)),
                ("build_script".into(), Duration::from_millis(700)),
                ("cleanup".into(), Duration::from_millis(300)),
            ],
            cleanup_output: String::new(),
            config_output: None,
            kills: Vec::new(),
            prepare_attempts: 1,
            temp_dirs: Vec::new(),
            warnings: Vec::new(),
            cache_keys: Vec::new(),
        }
    }

    #[test]
    fn the_trial_job_uses_a_service_and_checks_its_alias_with_shell_builtins() {
        let job = trial_job(7, None, "alpine:3");
        assert_eq!(job.image, None, "no image: the config's default_image");
        assert_eq!(job.services.len(), 1);
        assert_eq!(job.services[0].name, "alpine:3");
        assert_eq!(job.services[0].alias, SERVICE_ALIAS);
        let script = job.script.join("\n");
        assert!(script.contains("< /etc/hosts"), "{script}");
        assert!(!script.contains("grep"), "{script}");
        assert_eq!(
            trial_job(7, Some("debian:12"), "debian:12").image,
            Some(Image::new("debian:12"))
        );
    }

    #[test]
    fn the_trial_driver_passes_no_job_of_the_caller_and_asks_gitlab_nothing() {
        let env: HashMap<String, String> = [
            ("PATH", "/bin"),
            ("POGO_JOB_KEY", "pogo-leak"),
            ("CUSTOM_ENV_CI_JOB_ID", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let d = trial_driver(Path::new("/usr/bin/pogo"), Some(Path::new("/p.yaml")), &env);
        assert_eq!(d.pogo_args, ["--config", "/p.yaml"]);
        assert!(d.env.contains(&("PATH".into(), "/bin".into())));
        assert!(d.env.contains(&("POGO_JOB_TAGS".into(), "[]".into())));
        assert!(!d.env.iter().any(|(k, _)| k == "POGO_JOB_KEY"));
        assert!(!d.env.iter().any(|(k, _)| k.starts_with("CUSTOM_ENV_")));
        assert_eq!(d.runner_short_token, RUNNER);
    }

    #[test]
    fn a_passing_trial_shows_its_times() {
        let c = judge("img", &result(Outcome::Success, ""), &[], || None);
        assert_eq!(c.status, super::super::doctor::Status::Ok);
        assert!(
            c.message
                .ends_with("passed; in 1.91 s (prepare 0.91 s, stages 0.70 s, cleanup 0.30 s); nothing left behind"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_trial_whose_cleanup_left_something_fails_and_names_it() {
        let c = judge(
            "img",
            &result(Outcome::Success, ""),
            &["container pogo-doctor-1-build".to_string()],
            || None,
        );
        assert_eq!(c.status, super::super::doctor::Status::Fail);
        assert!(
            c.message.contains("left container pogo-doctor-1-build"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_failed_trial_gives_pogos_own_error_and_where_the_log_is() {
        let log = "Preparing\n\x1b[31;1mERROR: pogo: image x is not in podman's local storage and pull_policy is never: pull it\x1b[0;m\n\x1b[31;1mERROR: Job failed (system failure): prepare failed\x1b[0;m\n";
        let c = judge(
            "x",
            &result(
                Outcome::SystemFailure {
                    reason: "prepare failed".into(),
                },
                log,
            ),
            &[],
            || Some(PathBuf::from("/tmp/pogo-doctor-1.log")),
        );
        assert_eq!(c.status, super::super::doctor::Status::Fail);
        assert!(
            c.message
                .ends_with("failed: pogo: image x is not in podman's local storage and pull_policy is never: pull it"),
            "{}",
            c.message
        );
        assert!(
            c.fix.as_deref().unwrap().contains("/tmp/pogo-doctor-1.log"),
            "{:?}",
            c.fix
        );
    }

    #[test]
    fn a_failed_script_shows_its_last_line() {
        let log = "$ false\nthe service alias pogo-doctor-service is not in the job's /etc/hosts\nsection_start:1:cleanup_file_variables\r\x1b[0KCleaning up project directory and file based variables\nsection_end:1:cleanup_file_variables\r\x1b[0K\n\nERROR: Job failed: exit code 1\n";
        let c = judge(
            "x",
            &result(Outcome::BuildFailure { exit_code: 1 }, log),
            &[],
            || None,
        );
        assert!(
            c.message.ends_with(
                "the job script failed (exit 1): the service alias pogo-doctor-service is not in the job's /etc/hosts"
            ),
            "{}",
            c.message
        );
    }
}
