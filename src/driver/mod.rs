//! A library imitation of gitlab-runner's custom executor.
//!
//! [`Driver::run_job`] runs one [`Job`] through an executor program (pogo)
//! exactly the way gitlab-runner 19.x does it: a per-job `custom-executor*`
//! temp dir with `response.json`, `config_exec` + `prepare_exec` with the
//! runner's retry rule, one `run_exec` per stage with scripts in the runner's
//! bash shape, and `cleanup_exec` at the end — each in its own process
//! group, with the same environment, exit-code rules and SIGTERM/SIGKILL
//! handling. It powers pogo's tests and `pogo exec`.
//!
//! Two opt-in extensions serve `pogo exec`: [`Driver::local`] replaces the git and
//! `gitlab-runner` helper commands of the source, cache and artifact stages by local `tar`
//! scripts (see [`local`]), and [`Driver::log_sink`] receives the job log while it is written.
//!
//! By concern: `run.rs` follows one job (`Run`) and starts each executor call,
//! `prepare.rs` has Prepare (config_exec, prepare_exec) and cleanup_exec, `stages.rs` the
//! stage loop, `transfer.rs` how sources, cache and artifacts move (git and the helper
//! binary, or local `tar`), `script.rs` and [`local`] the stage scripts, `variables.rs` the
//! variables and environment, `config_output.rs` config_exec's answer, `joblog.rs` the job
//! log, `outcome.rs` how a job ended, [`job`] the job itself and [`process`] the processes.

mod config_output;
pub mod job;
mod joblog;
pub mod local;
mod outcome;
mod prepare;
pub mod process;
mod run;
pub mod script;
mod stages;
mod transfer;
mod variables;

use std::path::PathBuf;
use std::time::Duration;

pub use job::{
    Artifacts, ArtifactsWhen, Cache, CachePolicy, CacheWhen, Dependency, DockerOptions, Image, Job,
    Service, Variable,
};
pub use joblog::LogSink;
pub use local::{LocalDir, LocalStages};
pub use outcome::{interpret_exit, JobResult, Outcome, PhaseFailure};
pub use process::{KillReport, StopReason};
pub use variables::{all_variables, dedup_env, go_arch, Slot};

use run::Run;

/// Errors that keep the driver from running a job at all. Everything that
/// gitlab-runner would report as a job failure is an [`Outcome`] instead.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid job: {0}")]
    InvalidJob(String),
}

/// Cancel the job while its `build_script` stage runs, as soon as the stage's output shows
/// this text: like a user who presses "Cancel" in GitLab's UI on seeing it in the job log,
/// whatever the machine's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelWhenLogShows(pub String);

/// The imitated gitlab-runner, configured like `[[runners]]` in config.toml.
#[derive(Debug, Clone)]
pub struct Driver {
    /// The executable called for all four phases.
    pub pogo: PathBuf,
    /// Arguments before the phase name, e.g. `["--config", "/abs/pogo.yaml"]`.
    pub pogo_args: Vec<String>,
    /// The runner process's environment (`os.Environ()`); only `PATH` is
    /// taken from the current process, and only when missing here.
    pub env: Vec<(String, String)>,
    /// Where the per-job `custom-executor*` dirs are created.
    pub tmp_root: PathBuf,
    /// config.toml `builds_dir` (config_exec output overrides).
    pub builds_dir: Option<String>,
    /// config.toml `cache_dir` (config_exec output overrides).
    pub cache_dir: Option<String>,
    pub prepare_retry_interval: Duration,
    pub graceful_kill_timeout: Duration,
    pub force_kill_timeout: Duration,
    /// Run the phases as this uid/gid; temp dirs are chowned to it.
    pub run_as: Option<(u32, u32)>,
    pub runner_short_token: String,
    pub concurrent_id: u32,
    pub hostname: String,
    /// `Some`: the source, cache and artifact stages use local `tar` scripts against
    /// these directories instead of git and the `gitlab-runner` helper (`pogo exec`).
    pub local: Option<LocalStages>,
    /// Gets the job log as it is written (see [`LogSink`]).
    pub log_sink: Option<LogSink>,
}

impl Driver {
    /// A driver with gitlab-runner's defaults.
    pub fn new(pogo: impl Into<PathBuf>) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        Driver {
            pogo: pogo.into(),
            pogo_args: Vec::new(),
            env: std::env::var("PATH")
                .map(|p| vec![("PATH".to_string(), p)])
                .unwrap_or_default(),
            tmp_root: std::env::temp_dir(),
            builds_dir: None,
            cache_dir: None,
            prepare_retry_interval: Duration::from_secs(3),
            graceful_kill_timeout: Duration::from_secs(600),
            force_kill_timeout: Duration::from_secs(10),
            run_as: None,
            runner_short_token: "pogodrvr".to_string(),
            concurrent_id: 0,
            hostname,
            local: None,
            log_sink: None,
        }
    }

    /// Runs `job` from start to end. `Err` only for an unusable job.
    pub fn run_job(
        &self,
        job: &Job,
        cancel: Option<CancelWhenLogShows>,
    ) -> Result<JobResult, DriverError> {
        validate(job)?;
        let mut run = Run::new(self, job);
        run.execute(cancel);
        Ok(run.into_result())
    }
}

fn validate(job: &Job) -> Result<(), DriverError> {
    let p = &job.project_path;
    if p.is_empty()
        || p.starts_with('/')
        || p.ends_with('/')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(DriverError::InvalidJob(format!(
            "project_path {p:?} must look like group/project"
        )));
    }
    if job.token.is_empty() {
        return Err(DriverError::InvalidJob("empty job token".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    #[test]
    fn job_validation() {
        let ok = Job::new(1, "t", "g/p", "u");
        assert!(validate(&ok).is_ok());
        for bad in ["", "/g/p", "g/../p", "g//p", "g/p/"] {
            let j = Job::new(1, "t", bad, "u");
            assert!(validate(&j).is_err(), "{bad}");
        }
    }

    /// The whole flow against a fake executor written in bash.
    #[test]
    fn flow_with_fake_executor() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        let record = dir.path().join("record");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/bash
echo "$1 ${{2:-}} ${{3:-}} status=$CUSTOM_ENV_CI_JOB_STATUS pd=$CUSTOM_ENV_CI_PROJECT_DIR je=${{POGO_JE:-}} pg=$(cut -d' ' -f5 /proc/$$/stat) pid=$$" >> {rec}
case "$1" in
  config) echo '{{"builds_dir":"{b}","cache_dir":"/c","driver":{{"name":"fake","version":"1"}},"job_env":{{"POGO_JE":"yes"}}}}'; echo "config-stderr" >&2 ;;
  prepare) echo "prepared" ;;
  run) bash "$2"; rc=$?; if [ $rc -ne 0 ]; then echo $rc > "$BUILD_EXIT_CODE_FILE"; exit 1; fi ;;
  cleanup) echo "cleaned" ;;
esac
"#,
                rec = record.display(),
                b = dir.path().join("builds").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.path().to_path_buf();
        let mut job = Job::new(9, "tok-abcdefgh", "g/p", "http://x/api/v4");
        job.script = vec![
            "echo hello-$CI_JOB_ID".into(),
            "echo tok=$CI_JOB_TOKEN".into(),
            "exit 4".into(),
        ];
        job.after_script = vec!["echo after=$CI_JOB_STATUS".into()];
        let r = d.run_job(&job, None).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::BuildFailure { exit_code: 4 },
            "{}",
            r.log
        );
        assert!(r.log.contains("hello-9"), "{}", r.log);
        assert!(r.log.contains("tok=[MASKED]"), "{}", r.log);
        assert!(r.log.contains("after=failed"), "{}", r.log);
        assert!(r.log.contains("config-stderr"));
        assert!(r
            .log
            .contains("Using Custom executor with driver fake 1..."));
        assert!(r.log.contains("prepared"));
        assert!(!r.log.contains("cleaned"));
        assert!(r.cleanup_output.contains("cleaned"));
        assert_eq!(
            r.phases(),
            vec![
                "config",
                "prepare",
                "prepare_script",
                "get_sources",
                "build_script",
                "after_script",
                "cleanup_file_variables",
                "cleanup"
            ]
        );
        let rec = std::fs::read_to_string(&record).unwrap();
        let lines: Vec<&str> = rec.lines().collect();
        assert!(
            lines[0].starts_with("config   status=running pd= je= "),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("je=yes"), "{}", lines[1]);
        assert!(lines[1].contains("/builds/g/p"), "{}", lines[1]);
        assert!(lines[6].contains("status=failed"), "{}", lines[6]);
        for l in &lines {
            // each phase leads its own process group
            let pg = l.split("pg=").nth(1).unwrap().split(' ').next().unwrap();
            let pid = l.split("pid=").nth(1).unwrap();
            assert_eq!(pg, pid, "{l}");
        }
        assert!(!r.temp_dirs[0].exists(), "temp dir removed");
    }

    /// A fake executor that runs each stage script with the host's bash, so the local
    /// stages' `tar` scripts work on host paths.
    fn bash_executor(dir: &Path) -> Driver {
        let fake = dir.join("fake");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/bash
case "$1" in
  config) echo '{{"builds_dir":"{b}","cache_dir":"/c"}}' ;;
  prepare) echo "preparing"; echo "secret-token-xyz in prepare" >&2 ;;
  run) bash "$2"; rc=$?; if [ $rc -ne 0 ]; then echo $rc > "$BUILD_EXIT_CODE_FILE"; exit 1; fi ;;
esac
"#,
                b = dir.join("builds").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.to_path_buf();
        let store = |n: &str| LocalDir {
            host: format!("STORE/{n}"),
            container: dir.join(n).display().to_string(),
        };
        d.local = Some(LocalStages {
            sources_tar: None,
            sources_note: "none here".into(),
            cache: store("cache"),
            artifacts: store("artifacts"),
        });
        d
    }

    #[test]
    fn local_mode_runs_cache_and_artifact_stages_in_gitlab_runner_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = bash_executor(dir.path());
        let mut producer = Job::new(1, "tok-producer", "g/p", "http://x/api/v4");
        producer.name = "build".into();
        producer.git_strategy = None;
        producer.script = vec![
            "mkdir -p out .deps".into(),
            "echo made > out/file".into(),
            "echo dep > .deps/d".into(),
        ];
        producer.cache = vec![Cache {
            key: "deps".into(),
            paths: vec![".deps/".into()],
            ..Cache::default()
        }];
        producer.artifacts = Some(Artifacts {
            paths: vec!["out/".into()],
            when: ArtifactsWhen::OnSuccess,
            ..Artifacts::default()
        });
        let r = d.run_job(&producer, None).unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{}", r.log);
        assert_eq!(
            r.phases(),
            vec![
                "config",
                "prepare",
                "prepare_script",
                "get_sources",
                "restore_cache",
                "build_script",
                "archive_cache",
                "upload_artifacts_on_success",
                "cleanup_file_variables",
                "cleanup"
            ]
        );
        assert!(r.log.contains("No sources (none here)"), "{}", r.log);
        assert!(r.log.contains("Uploading artifacts for successful job"));

        let mut consumer = producer.clone();
        consumer.id = 2;
        consumer.name = "test".into();
        consumer.script = vec!["cat out/file .deps/d".into(), "exit 3".into()];
        consumer.after_script = vec!["echo after".into()];
        consumer.artifacts = Some(Artifacts {
            paths: vec!["out/".into()],
            when: ArtifactsWhen::Always,
            ..Artifacts::default()
        });
        consumer.dependencies = vec![Dependency {
            id: 1,
            name: "build".into(),
            token: String::new(),
            artifacts_file: Some(local::ARTIFACTS_FILE.into()),
        }];
        let r = d.run_job(&consumer, None).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::BuildFailure { exit_code: 3 },
            "{}",
            r.log
        );
        assert!(r.log.contains("made\ndep\n"), "{}", r.log);
        assert!(
            r.log.contains("Successfully extracted cache deps"),
            "{}",
            r.log
        );
        assert_eq!(
            r.phases()[4..9],
            [
                "restore_cache",
                "download_artifacts",
                "build_script",
                "after_script",
                "upload_artifacts_on_failure"
            ],
            "no archive_cache: the cache is saved on success only"
        );
    }

    #[test]
    fn the_log_sink_gets_the_whole_log_while_it_is_written_and_masked() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = bash_executor(dir.path());
        let pieces = Arc::new(Mutex::new(Vec::<String>::new()));
        let p = Arc::clone(&pieces);
        // the script goes on (up to 10 s) only once the sink has seen its first line: that
        // line can only have come while the phase ran
        let seen = dir.path().join("seen-one");
        let flag = seen.clone();
        d.log_sink = Some(LogSink::new(move |t| {
            if t.contains("one\n") {
                std::fs::write(&flag, "").unwrap();
            }
            p.lock().unwrap().push(t.to_string())
        }));
        let mut job = Job::new(3, "secret-token-xyz", "g/p", "http://x/api/v4");
        job.script = vec![
            "echo one".into(),
            format!(
                "i=0; while [ ! -e '{}' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done",
                seen.display()
            ),
            "printf 'token=%s no newline' \"$CI_JOB_TOKEN\"".into(),
        ];
        let r = d.run_job(&job, None).unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{}", r.log);
        let pieces = pieces.lock().unwrap();
        assert_eq!(pieces.concat(), r.log);
        assert!(!r.log.contains("secret-token-xyz"), "{}", r.log);
        assert!(r.log.contains("[MASKED] in prepare"), "{}", r.log);
        assert!(r.log.contains("token=[MASKED] no newline\n"), "{}", r.log);
        assert!(
            pieces
                .iter()
                .any(|p| p.contains("one\n") && !p.contains("token=")),
            "a phase's lines come as they are written, not at its end: {pieces:?}"
        );
    }

    #[test]
    fn prepare_retries_on_system_failure_only() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        use std::os::unix::fs::PermissionsExt;
        for (code, attempts) in [(2, 3), (1, 1), (5, 3)] {
            std::fs::write(
                &fake,
                format!("#!/bin/sh\ncase \"$1\" in config) echo '{{\"builds_dir\":\"/b\",\"cache_dir\":\"/c\"}}';; prepare) exit {code};; esac\n"),
            )
            .unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut d = Driver::new("/bin/bash");
            d.pogo_args = vec![fake.to_string_lossy().into_owned()];
            d.tmp_root = dir.path().to_path_buf();
            d.prepare_retry_interval = Duration::from_millis(10);
            let job = Job::new(9, "tok", "g/p", "http://x/api/v4");
            let r = d.run_job(&job, None).unwrap();
            assert_eq!(r.prepare_attempts, attempts, "code {code}");
            assert_eq!(r.phase_count("cleanup"), attempts as usize, "code {code}");
            assert_eq!(r.phase_count("build_script"), 0);
            if code == 1 {
                assert_eq!(r.outcome, Outcome::BuildFailure { exit_code: 1 });
            } else {
                assert!(matches!(r.outcome, Outcome::SystemFailure { .. }));
            }
        }
    }

    #[test]
    fn missing_dirs_are_configuration_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.path().to_path_buf();
        let r = d
            .run_job(&Job::new(9, "tok", "g/p", "http://x/api/v4"), None)
            .unwrap();
        assert!(
            matches!(r.outcome, Outcome::ConfigurationError { .. }),
            "{:?}",
            r.outcome
        );
        assert_eq!(r.prepare_attempts, 1);
        d.builds_dir = Some("/b".into());
        d.cache_dir = Some("/c".into());
        let r = d
            .run_job(&Job::new(9, "tok", "g/p", "http://x/api/v4"), None)
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{}", r.log);
    }

    #[test]
    fn cancel_runs_after_script_with_canceled() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &fake,
            "#!/bin/bash\ncase \"$1\" in config) echo '{\"builds_dir\":\"@B@\",\"cache_dir\":\"/c\"}';; run) exec bash \"$2\";; esac\n".replace("@B@", &dir.path().join("b").to_string_lossy()),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = Driver::new("/bin/bash");
        d.pogo_args = vec![fake.to_string_lossy().into_owned()];
        d.tmp_root = dir.path().to_path_buf();
        d.graceful_kill_timeout = Duration::from_secs(5);
        let mut job = Job::new(9, "tok", "g/p", "http://x/api/v4");
        job.script = vec!["echo started-$((1+1)); sleep 300".into()];
        job.after_script = vec!["echo after=$CI_JOB_STATUS".into()];
        let r = d
            .run_job(&job, Some(CancelWhenLogShows("started-2".into())))
            .unwrap();
        assert_eq!(r.outcome, Outcome::Canceled, "{}", r.log);
        let k = r.kill_report("build_script").unwrap();
        assert!(
            k.exited_after_sigterm.unwrap() < Duration::from_secs(3),
            "{k:?}"
        );
        assert!(r.log.contains("after=canceled"), "{}", r.log);
        assert_eq!(r.phase_count("cleanup"), 1);
    }
}
