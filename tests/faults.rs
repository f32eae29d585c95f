//! Faults: pogo killed half-way through a job, and `pogo gc` afterwards.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `pogo prepare` as gitlab-runner would start it, for a job with one service that never
/// becomes ready (so prepare is still busy when the test kills it).
fn start_prepare(env: &TestEnv, runner: &str, job_id: u64) -> std::process::Child {
    let services = format!(
        r#"[{{"name":"{IMG_HTTPD}","alias":"web","entrypoint":null,"command":["sh","-c","sleep 300"],"variables":{{"CERT":"two\nlines"}}}}]"#
    );
    phase(env, "prepare", runner, job_id)
        .env("CUSTOM_ENV_CI_JOB_SERVICES", services)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// One executor phase of a job as gitlab-runner starts it after the config phase.
fn phase(env: &TestEnv, name: &str, runner: &str, job_id: u64) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pogo"));
    cmd.args(["--config", &env.config_path.to_string_lossy(), name])
        .env("CUSTOM_ENV_CI_JOB_ID", job_id.to_string())
        .env("CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN", runner)
        .env("CUSTOM_ENV_CI_PROJECT_PATH", "faults/project")
        .env("CUSTOM_ENV_CI_JOB_IMAGE", IMG_BASH)
        .env("POGO_JOB_TAGS", "[]")
        // job_env from the config phase, as gitlab-runner passes it to every later phase
        .env("POGO_JOB_KEY", format!("pogo-{runner}-{job_id}-0"));
    cmd
}

/// A new job on a new runner token: the token, the job id, the job's key as the phases get
/// it, and its `io.pogo.job-id=ID` label.
fn new_job() -> (String, u64, String, String) {
    let runner = format!("faults{}", unique_id());
    let job_id = unique_id();
    let key = format!("pogo-{runner}-{job_id}-0");
    let label = format!("{LABEL_JOB_ID}={job_id}");
    (runner, job_id, key, label)
}

/// [`phase`] run to its end, which must be a success.
fn phase_ok(env: &TestEnv, name: &str, runner: &str, job_id: u64) {
    let out = phase(env, name, runner, job_id).output().unwrap();
    assert!(
        out.status.success(),
        "pogo {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`start_prepare`] for a new job id on a new runner token: (the runner token, the job id,
/// the label `io.pogo.job-id=ID` the job's containers, pod and volumes carry, the process).
fn start_prepare_of_a_new_job(env: &TestEnv) -> (String, u64, String, std::process::Child) {
    let runner = format!("faults{}", unique_id());
    let job_id = unique_id();
    let label = format!("{LABEL_JOB_ID}={job_id}");
    let prepare = start_prepare(env, &runner, job_id);
    (runner, job_id, label, prepare)
}

/// SIGKILL the `pogo prepare` of job `key`, then wait until the podman commands it started
/// are gone too: they carry the job's key in their environment (as gc sees it, the job is
/// still at work while they run) and may still create a container.
fn kill_prepare(prepare: &mut std::process::Child, key: &str) {
    prepare.kill().unwrap();
    prepare.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let busy = working_for(key);
        if busy.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the killed prepare still run: {busy:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The command lines of the processes that work for job `key` as gc sees them: pogo phases
/// and their podman commands (not podman's long-lived helpers such as a container's conmon).
fn working_for(key: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            pogo::executor::gc::job_keys_of_process(&e.path())
                .iter()
                .any(|k| k == key)
        })
        .map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            format!(
                "{}: {}",
                e.path().display(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            )
        })
        .collect()
}

/// The job's log copy for `pogo tui` in `state_dir` (empty when there is none).
fn log_copy(state_dir: &std::path::Path, job: &pogo::driver::Job) -> String {
    let states = pogo::state::StateDir::new(state_dir);
    std::fs::read_to_string(states.log_path(&expected_job_key(job))).unwrap_or_default()
}

/// `pogo cleanup` of the job succeeds and leaves nothing labelled with its id.
fn cleanup_leaves_nothing(env: &TestEnv, runner: &str, job_id: u64) {
    let out = phase(env, "cleanup", runner, job_id).output().unwrap();
    assert!(out.status.success());
    env.podman
        .assert_nothing_labelled(&format!("{LABEL_JOB_ID}={job_id}"));
}

/// [`pogo_gc`], which must succeed (its stdout and stderr are the failure message).
fn pogo_gc_ok(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let out = pogo_gc(env, args);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn pogo_killed_during_prepare_leaves_nothing_after_gc() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let (runner, job_id, label, mut prepare) = start_prepare_of_a_new_job(&env);

    // wait until the pod, the service and the job container exist, then SIGKILL pogo
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = env.podman.labelled(&label);
        if found.iter().filter(|f| f.starts_with("container")).count() >= 2
            && found.iter().any(|f| f.starts_with("pod"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prepare never got that far: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let key = format!("pogo-{runner}-{job_id}-0");
    kill_prepare(&mut prepare, &key);
    assert!(!env.podman.labelled(&label).is_empty());

    // too recent for the default rule (job timeout + grace): kept
    pogo_gc_ok(&env, &["--runner", &runner]);
    assert!(
        !env.podman.labelled(&label).is_empty(),
        "a recent job must be kept"
    );

    // --dry-run says what it would remove and removes nothing
    let out = pogo_gc(
        &env,
        &["--runner", &runner, "--older-than", "0s", "--dry-run"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("would remove job pogo-"), "{stdout}");
    assert!(stdout.contains("container(s), 1 pod(s)"), "{stdout}");
    assert!(!env.podman.labelled(&label).is_empty());

    let secrets = || {
        env.podman
            .secret_names()
            .iter()
            .filter(|n| n.starts_with(&key))
            .count()
    };
    assert_eq!(secrets(), 1, "the multi-line service variable's secret");
    let out = pogo_gc_ok(&env, &["--runner", &runner, "--older-than", "0s"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 finished job(s) cleaned up"));
    assert_eq!(env.podman.labelled(&label), Vec::<String>::new());
    assert_eq!(secrets(), 0, "gc removes the job's secrets too");
    // the job's state record is closed, so `pogo tui` does not show it as running forever
    let record = env
        .working_dir
        .join("jobs")
        .join(format!("pogo-{runner}-{job_id}-0.json"));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert!(record["ended"].as_u64().is_some(), "{record}");
    assert_eq!(record["result"], "failed", "{record}");
    assert_eq!(
        record["failure"], "abandoned: removed by pogo gc",
        "{record}"
    );
}

#[test]
fn gc_keeps_a_job_whose_pogo_process_is_alive() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let (runner, job_id, label, mut prepare) = start_prepare_of_a_new_job(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.podman.labelled(&label).is_empty() {
        assert!(Instant::now() < deadline, "prepare created nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    // pogo prepare is still running (waiting for the service): its job is not over
    let out = pogo_gc_ok(&env, &["--runner", &runner, "--older-than", "0s"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 finished job(s) cleaned up"));
    assert!(!env.podman.labelled(&label).is_empty());

    kill_prepare(&mut prepare, &format!("pogo-{runner}-{job_id}-0"));
    pogo_gc(&env, &["--runner", &runner, "--older-than", "0s"]);
    assert_eq!(env.podman.labelled(&label), Vec::<String>::new());
}

#[test]
fn gc_never_touches_containers_without_pogos_labels() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let name = format!("not-pogo-{}", unique_id());
    let out = env
        .podman
        .output(&["run", "-d", "--name", &name, IMG_BASH, "sleep", "300"]);
    assert!(out.status.success());
    let out = pogo_gc(&env, &["--older-than", "0s", "--dry-run"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&name));
    pogo_gc(
        &env,
        &["--runner", "nobody-has-this-token", "--older-than", "0s"],
    );
    assert!(env
        .podman
        .output(&["container", "exists", &name])
        .status
        .success());
    env.podman.output(&["rm", "-f", "-t", "0", &name]);
}

#[test]
fn a_failed_job_is_kept_for_debugging_with_keep_failed_then_gc_removes_it() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default().with_extra_yaml("keep_failed: 30\n"));
    let job = env.job(&[], &["echo failing-on-purpose", "exit 5"]);
    // its own runner token: the gc calls below must not see other tests' jobs
    let runner = format!("kept{}", unique_id());
    let mut driver = env.driver();
    driver.runner_short_token = runner.clone();
    let r = env.run_with(&driver, &job, None);
    assert_build_failure(&r, 5);
    assert!(
        r.cleanup_output.contains("keeping failed job"),
        "{}",
        r.cleanup_output
    );
    let key = job_key(&r).expect("job key");
    let label = format!("{LABEL_JOB_KEY}={key}");
    let kept = env.podman.labelled(&label);
    assert!(
        kept.iter().any(|k| k.ends_with("-build")),
        "the failed job's container is kept: {kept:?}"
    );
    let container = format!("{key}-build");
    let out = env
        .podman
        .output(&["exec", &container, "cat", "/proc/1/comm"]);
    assert!(out.status.success(), "the kept container still runs");

    // within its time, even an aggressive gc keeps it
    pogo_gc_ok(&env, &["--older-than", "0s", "--runner", &runner]);
    assert!(!env.podman.labelled(&label).is_empty());

    // once its time is up (the record says until when), gc removes it
    let record_path = env.working_dir.join("jobs").join(format!("{key}.json"));
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert!(record["kept_until"].as_u64().is_some(), "{record}");
    record["kept_until"] = serde_json::json!(1);
    std::fs::write(&record_path, record.to_string()).unwrap();
    pogo_gc_ok(&env, &["--runner", &runner]);
    assert_eq!(env.podman.labelled(&label), Vec::<String>::new());
    env.assert_no_leftovers();
}

#[test]
fn a_passing_job_is_not_kept() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default().with_extra_yaml("keep_failed: 30\n"));
    let r = env.run(&env.job(&[], &["true"]));
    assert_success(&r);
    assert!(!r.cleanup_output.contains("keeping"));
    env.assert_no_leftovers();
}

/// The log copy had no size limit: one chatty job filled the runner's disk for the days
/// copies are kept. With `log_copy_limit` it keeps the log's beginning and its end.
#[test]
fn a_chatty_jobs_log_copy_stays_within_log_copy_limit() {
    require_podman!();
    let state_dir = tempfile::tempdir().unwrap();
    let mut env = TestEnv::new(&PogoConfig::default().with_extra_yaml("log_copy_limit: 64\n"));
    env.use_state_dir(state_dir.path());
    let mut job = env.job(
        &[],
        &[
            "echo first-line-of-the-log",
            "for i in $(seq 1 20000); do echo chatty-line-$i; done",
            "echo last-line-of-the-script",
        ],
    );
    job.after_script = vec!["echo after-script-line".into()];
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\nchatty-line-20000\n"));
    let copy = log_copy(state_dir.path(), &job);
    assert!(copy.len() <= 64 * 1024, "{} bytes", copy.len());
    assert!(
        copy.contains("first-line-of-the-log"),
        "the beginning is kept"
    );
    assert!(copy.contains(pogo::state::DROPPED));
    assert!(
        copy.contains("\nlast-line-of-the-script"),
        "the latest output is kept"
    );
    assert!(copy.contains("\nafter-script-line"), "later stages too");
    env.assert_no_leftovers();
}

#[test]
fn a_full_disk_for_the_log_copy_does_not_affect_the_job() {
    require_podman!();
    let state_dir = tempfile::tempdir().unwrap();
    let mut env = TestEnv::new(&PogoConfig::default());
    env.use_state_dir(state_dir.path());
    let job = env.job(
        &[],
        &[
            "for i in $(seq 1 2000); do echo line-$i; done",
            "echo done-$((6*7))",
        ],
    );
    // every write of the log copy fails with ENOSPC, as on a full disk
    let key = expected_job_key(&job);
    std::os::unix::fs::symlink("/dev/full", state_dir.path().join(format!("{key}.log"))).unwrap();
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(
        log.contains("\nline-2000\n") && log.contains("\ndone-42\n"),
        "{log}"
    );
    let warnings = log.matches("cannot write the job's log copy").count();
    assert!(
        warnings >= 1,
        "the user is told once per stage at most:\n{log}"
    );
    assert!(warnings <= r.phases().len(), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn podman_failing_during_a_stage_is_a_system_failure_but_a_scripts_own_exit_125_is_the_jobs() {
    require_podman!();
    // a podman whose `exec` fails as podman itself does (exit 125) once the flag exists
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fail-exec");
    let wrapper = dir.path().join("podman");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = exec ] && [ -e '{}' ]; then\n  echo 'Error: injected fault: cannot lock the container' >&2\n  exit 125\nfi\nexec podman \"$@\"\n",
            flag.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = PogoConfig {
        podman: Some(wrapper.display().to_string()),
        ..PogoConfig::default()
    };
    // stages through `podman exec` (the agent reports the script's own code, no doubt there)
    let mut env = TestEnv::new(&config.with_extra_yaml("stage_runner: exec\n"));
    env.extra_env
        .push(("POGO_STAGE_RUNNER".into(), "exec".into()));

    let r = env.run(&env.job(&[], &["echo before", "exit 125"]));
    assert_build_failure(&r, 125);
    env.assert_no_leftovers();

    std::fs::write(&flag, "").unwrap();
    let r = env.run(&env.job(&[], &["echo never-runs"]));
    assert_system_failure(&r);
    let log = plain_log(&r);
    assert!(
        log.contains("podman itself is failing") && log.contains("injected fault"),
        "{log}"
    );
    env.assert_no_leftovers();
}

/// A test env whose config directory is mounted at `/cfg` in its jobs, so a job can edit
/// the config while it runs.
fn env_whose_jobs_edit_its_config() -> TestEnv {
    let env = TestEnv::new(&PogoConfig::default());
    env.write_config(&PogoConfig::mounting(env.dir.path(), "/cfg"));
    env
}

/// Job `key`'s private files and agent sockets under the env's working_dir are gone.
fn assert_private_files_gone(env: &TestEnv, key: &str) {
    for private in ["jobdata", "run"] {
        let d = env.working_dir.join(private).join(key);
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn cleanup_with_a_config_broken_mid_job_still_removes_the_containers_and_private_files() {
    require_podman!();
    // the job itself breaks the config file: its later phases go by the config it started
    // with (passed on by the config phase), so nothing of it notices
    let env = env_whose_jobs_edit_its_config();
    let job = env.job(
        &[],
        &["printf 'mountz: [\\n' >> /cfg/pogo.yaml", "echo broke-it"],
    );
    let key = expected_job_key(&job);
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\nbroke-it\n"), "{}", r.log);
    assert!(
        !r.cleanup_output.contains("cleaning up with"),
        "{}",
        r.cleanup_output
    );
    assert_private_files_gone(&env, &key);
    env.assert_no_leftovers();

    // a job without the config phase's copy (started by a pogo that passed none on) whose
    // config breaks: cleanup still removes its containers, with plain podman
    let runner = format!("faults{}", unique_id());
    let job_id = unique_id();
    std::fs::write(&env.config_path, "default_image: [broken\n").unwrap();
    let out = phase(&env, "cleanup", &runner, job_id)
        .env("POGO_JOB_WORKING_DIR", &env.working_dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("cleaning up with `podman`"), "{said}");
}

#[test]
fn working_dir_edited_mid_job_still_finds_and_removes_the_jobs_files() {
    require_podman!();
    let env = env_whose_jobs_edit_its_config();
    // the job points working_dir elsewhere while it runs; its files stay where they began
    let elsewhere = env.dir.path().join("elsewhere");
    let job = env.job(
        &[],
        &[&format!(
            "sed -i 's#^working_dir:.*#working_dir: {}#' /cfg/pogo.yaml",
            elsewhere.display()
        )],
    );
    let key = expected_job_key(&job);
    let r = env.run(&job);
    assert_success(&r);
    let cfg = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(
        cfg.contains("elsewhere"),
        "the job edited the config:\n{cfg}"
    );
    assert_private_files_gone(&env, &key);
    env.assert_no_leftovers();
}

/// podman 4.3 ORs several `--filter label=` on `volume ls`: `pogo gc --runner X` listed every
/// runner's pogo volumes and removed another runner's job and persistent builds volumes.
#[test]
fn gc_for_one_runner_never_removes_another_runners_volumes() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let id = unique_id();
    let other = format!("gc-other-{id}");
    let job_volume = format!("pogo-{other}-1-0-ab-builds");
    let builds_volume = format!("pogo-builds-{other}-group-app-{id}-0");
    for (name, extra) in [
        (&job_volume, format!("io.pogo.job-key=pogo-{other}-1-0-ab")),
        (&builds_volume, "io.pogo.builds-volume=1".to_string()),
    ] {
        let out = env.podman.output(&[
            "volume",
            "create",
            "--label",
            "io.pogo.managed-by=pogo",
            "--label",
            &format!("io.pogo.runner={other}"),
            "--label",
            "io.pogo.created=1000",
            "--label",
            &extra,
            name,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = pogo_gc_ok(
        &env,
        &["--runner", &format!("gc-mine-{id}"), "--older-than", "0s"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    for name in [&job_volume, &builds_volume] {
        assert!(
            env.podman
                .output(&["volume", "exists", name])
                .status
                .success(),
            "gc of another runner removed {name}:\n{said}"
        );
    }
    // the runner they belong to does remove them
    pogo_gc_ok(&env, &["--runner", &other, "--older-than", "0s"]);
    for name in [&job_volume, &builds_volume] {
        assert!(!env
            .podman
            .output(&["volume", "exists", name])
            .status
            .success());
    }
}

/// Between two `pogo run` calls of a running job no pogo process holds its key: `pogo gc
/// --older-than 0s` took such a job for abandoned and removed its container. Its container
/// runs and its prepare finished: it is kept until its cleanup (or its timeout and grace).
#[test]
fn gc_older_than_keeps_a_job_between_two_of_its_stages() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let (runner, job_id, _, label) = new_job();
    phase_ok(&env, "prepare", &runner, job_id);
    assert!(!env.podman.labelled(&label).is_empty());

    let out = pogo_gc_ok(&env, &["--runner", &runner, "--older-than", "0s"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 finished job(s) cleaned up"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !env.podman.labelled(&label).is_empty(),
        "gc removed a running job"
    );

    let out = phase(&env, "cleanup", &runner, job_id).output().unwrap();
    assert!(out.status.success());
    env.podman.assert_nothing_labelled(&label);
}

/// A prepare killed while it pulled leaves `jobdata/<key>/auth.json` (the runner's registry
/// credentials merged with the job's) and no podman object: gc found jobs only by their
/// objects, so the credentials stayed forever.
#[test]
fn gc_removes_the_private_files_of_a_job_that_left_nothing_else() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let runner = format!("faults{}", unique_id());
    let key = format!("pogo-{runner}-{}-0-ab", unique_id());
    let dir = env.working_dir.join("jobdata").join(&key);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("auth.json"), r#"{"auths":{}}"#).unwrap();
    let out = pogo_gc_ok(&env, &["--runner", &runner, "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("would remove the job directory of {key}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(dir.exists());
    // another runner's gc leaves it alone
    pogo_gc_ok(&env, &["--runner", &format!("{runner}x")]);
    assert!(dir.exists());
    pogo_gc_ok(&env, &["--runner", &runner]);
    assert!(!dir.exists(), "the job's credentials outlived it");
}

/// With `stage_runner: exec`, a SIGKILLed `pogo run` left its stage running in the container
/// beside `after_script`, and its `podman exec` orphaned on the host (its own process group;
/// kill-on-drop does not run on SIGKILL). The next stage stops both first.
#[test]
fn after_a_sigkilled_stage_on_the_exec_path_the_next_stage_runs_alone() {
    require_podman!();
    let shared = tempfile::tempdir().unwrap();
    let env = TestEnv::new(
        &PogoConfig::mounting(shared.path(), "/shared").with_extra_yaml("stage_runner: exec\n"),
    );
    let runner = format!("faults{}", unique_id());
    let job_id = unique_id();
    let key = format!("pogo-{runner}-{job_id}-0");
    phase_ok(&env, "prepare", &runner, job_id);
    let script = |name: &str, body: &str| {
        let p = shared.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let long = script(
        "long.sh",
        "echo started > /shared/started\nexec sleep 300\n",
    );
    let mut stage = phase(&env, "run", &runner, job_id)
        .args([long.to_str().unwrap(), "build_script"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shared.path().join("started").exists() {
        assert!(Instant::now() < deadline, "the stage never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    stage.kill().unwrap();
    stage.wait().unwrap();
    let carrying_key = || working_for(&key);
    assert!(
        carrying_key().iter().any(|c| c.contains(" exec ")),
        "the scenario: podman exec outlives its pogo run: {:?}",
        carrying_key()
    );

    let check = script(
        "check.sh",
        "if ps | grep -v grep | grep -q 'sleep 300'; then echo earlier-stage-still-running; else echo running-alone; fi\n",
    );
    let out = phase(&env, "run", &runner, job_id)
        .args([check.to_str().unwrap(), "after_script"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}{warned}");
    assert!(said.contains("running-alone"), "{said}{warned}");
    assert!(
        warned.contains("the previous stage's `pogo run` was killed"),
        "{warned}"
    );
    // podman 5's conmon runs a short `podman container cleanup` for the ended exec session
    // (with the job's key in its environment): an orphan is what is still there later
    let deadline = Instant::now() + Duration::from_secs(10);
    while !carrying_key().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        carrying_key(),
        Vec::<String>::new(),
        "an orphan on the host"
    );

    cleanup_leaves_nothing(&env, &runner, job_id);
}

/// `pogo gc` (started in the background by another job's prepare) listed podman's containers,
/// then a new job's prepare made its directory and containers and finished, then gc read the
/// live processes: the new job was in neither look, and gc removed its private files and agent
/// socket directory while it ran (its next stage could not reach the agent; seen on podman 5,
/// whose listing is slower). A podman wrapper holds gc's container listing until the prepare
/// has finished, the widest this window can be.
#[test]
fn gc_never_takes_the_files_of_a_job_that_started_while_it_listed() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let runner = format!("faults{}", unique_id());
    let job_id = unique_id();
    let listed = env.dir.path().join("gc-listed");
    let go = env.dir.path().join("gc-go");
    let wrapper = podman_wrapper(
        &env,
        "slow-listing-podman",
        &format!(
            "[ \"$1\" = ps ] || exec \"$PODMAN\" \"$@\"\n\
             out=$(\"$PODMAN\" \"$@\") || exit $?\n\
             touch {listed}\n\
             i=0; while [ ! -e {go} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
             printf '%s\\n' \"$out\"\n",
            listed = listed.display(),
            go = go.display(),
        ),
    );
    let gc_config = env.dir.path().join("gc.yaml");
    std::fs::write(
        &gc_config,
        PogoConfig {
            podman: Some(wrapper.to_string_lossy().into_owned()),
            ..PogoConfig::default()
        }
        .to_yaml(&env.working_dir, &env.cache_dir),
    )
    .unwrap();
    let gc = Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args([
            "--config",
            &gc_config.to_string_lossy(),
            "gc",
            "--runner",
            &runner,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !listed.exists() {
        assert!(Instant::now() < deadline, "gc never listed the containers");
        std::thread::sleep(Duration::from_millis(50));
    }

    phase_ok(&env, "prepare", &runner, job_id);
    let key = std::fs::read_dir(env.working_dir.join("jobdata"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|k| k.starts_with(&format!("pogo-{runner}-{job_id}-")))
        .expect("the prepare made its job directory");
    let socket_dir = env.working_dir.join("run").join(&key);
    assert!(socket_dir.exists(), "{}", socket_dir.display());

    std::fs::write(&go, "").unwrap();
    let out = gc.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        env.working_dir.join("jobdata").join(&key).exists(),
        "gc removed a starting job's files: {said}"
    );
    assert!(
        socket_dir.exists(),
        "gc removed a starting job's agent socket: {said}"
    );

    cleanup_leaves_nothing(&env, &runner, job_id);
}

/// The dashboard shows a job's log copy: a job that failed in prepare had none ("no log copy
/// for this job"), though the job log said why. pogo's own messages, and the error that ends
/// prepare, are in the copy too.
#[test]
fn a_job_that_fails_in_prepare_has_its_reason_in_the_log_copy() {
    require_podman!();
    let state_dir = tempfile::tempdir().unwrap();
    let mut env = TestEnv::new(&PogoConfig {
        pull_policy: Some("never".into()),
        ..PogoConfig::default()
    });
    env.use_state_dir(state_dir.path());
    let mut job = env.job(&[], &["echo never-runs"]);
    job.image = Some(missing_image("prepare-reason", &job));
    let r = env.run(&job);
    assert_system_failure(&r);
    let copy = log_copy(state_dir.path(), &job);
    assert!(
        copy.contains("is not in podman's local storage and pull_policy is never"),
        "log copy:\n{copy}"
    );
    assert!(copy.contains("ERROR: pogo:"), "log copy:\n{copy}");
    // and the record says it short, for the dashboard's log pane
    let record = pogo::state::StateDir::new(state_dir.path())
        .read(&expected_job_key(&job))
        .expect("the job's record");
    let reason = record.reason.unwrap_or_default();
    assert!(
        reason.starts_with("prepare: image ")
            && reason.ends_with("is not in podman's local storage and pull_policy is never"),
        "{reason}"
    );
    env.assert_no_leftovers();
}

/// A job stopped from the dashboard (`x`) reached GitLab as "stopped outside pogo or ran out of
/// resources": the dashboard notes who stops it first, and the failure says so.
#[test]
fn a_job_stopped_from_the_dashboard_says_who_stopped_it() {
    require_podman!();
    let state_dir = tempfile::tempdir().unwrap();
    let mut env = TestEnv::new(&PogoConfig::default());
    env.use_state_dir(state_dir.path());
    let job = env.job(&[], &["echo started-and-waiting", "sleep 120"]);
    let key = expected_job_key(&job);
    let container = format!("{key}-build");
    let states = pogo::state::StateDir::new(state_dir.path());
    std::thread::scope(|s| {
        let run = s.spawn(|| env.run(&job));
        // as pogo tui's `x`, once the script runs
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let log = std::fs::read_to_string(states.log_path(&key)).unwrap_or_default();
            if log.contains("started-and-waiting") {
                break;
            }
            assert!(Instant::now() < deadline, "the job never started");
            std::thread::sleep(Duration::from_millis(100));
        }
        states.note_stopped(&key, "dashboard-user").unwrap();
        let out = env
            .podman
            .output(&["stop", "--time", "1", "--", &container]);
        assert!(out.status.success());
        let r = run.join().unwrap();
        assert_system_failure(&r);
        let log = plain_log(&r);
        assert!(
            log.contains("was stopped from pogo tui by dashboard-user during stage"),
            "{log}"
        );
        let copy = std::fs::read_to_string(states.log_path(&key)).unwrap();
        assert!(
            copy.contains("stopped from pogo tui by dashboard-user"),
            "{copy}"
        );
    });
    env.assert_no_leftovers();
}

/// An executable `name` in the env's directory that runs shell `body` as podman, with the
/// real podman in `$PODMAN`.
fn podman_wrapper(env: &TestEnv, name: &str, body: &str) -> std::path::PathBuf {
    let podman = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v podman"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = env.dir.path().join(name);
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nPODMAN='{}'\n{body}", podman.trim()),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    wrapper
}

/// A test env whose podman holds every `podman rm` until the returned file exists (at most
/// a minute), so a cleanup's background removal can be caught while it runs.
fn env_whose_podman_rm_waits() -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::new(&PogoConfig::default());
    let go = env.dir.path().join("rm-go");
    let wrapper = podman_wrapper(
        &env,
        "slow-rm-podman",
        &format!(
            "if [ \"$1\" = rm ]; then\n\
             i=0; while [ ! -e {go} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
             fi\n\
             exec \"$PODMAN\" \"$@\"\n",
            go = go.display(),
        ),
    );
    env.write_config(&PogoConfig {
        podman: Some(wrapper.to_string_lossy().into_owned()),
        ..PogoConfig::default()
    });
    (env, go)
}

/// The order file of job `key`'s background removal.
fn removal_order(env: &TestEnv, key: &str) -> std::path::PathBuf {
    pogo::executor::removal::order_path(&env.working_dir, key)
}

/// gitlab-runner reports a job's result only once cleanup_exec returns: `podman rm` of the
/// job's containers (a quarter of a second and more) was on every job's time. Cleanup now
/// returns while the removal still runs (here: held by podman), with the job's private files
/// gone and its output pipes closed; the removal then finishes alone.
#[test]
fn cleanup_returns_without_waiting_for_podman_and_the_removal_finishes_alone() {
    require_podman!();
    let (env, go) = env_whose_podman_rm_waits();
    let (runner, job_id, key, label) = new_job();
    phase_ok(&env, "prepare", &runner, job_id);

    let started = Instant::now();
    // output() reads stdout and stderr to their end: a remover that kept them would hang it
    phase_ok(&env, "cleanup", &runner, job_id);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cleanup waited for the held podman rm"
    );
    assert!(
        !env.podman.labelled(&label).is_empty(),
        "the removal cannot have happened yet: podman rm is held"
    );
    assert!(!env.working_dir.join("jobdata").join(&key).exists());
    assert!(!env.working_dir.join("run").join(&key).exists());
    assert!(
        pogo::executor::removal::running(&env.working_dir, &key),
        "the removal holds its order's lock"
    );
    // the job is at work for gc while its removal runs
    let out = pogo_gc_ok(&env, &["--runner", &runner, "--older-than", "0s"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 finished job(s) cleaned up"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    std::fs::write(&go, "").unwrap();
    env.podman.assert_nothing_labelled(&label);
    assert!(pogo::executor::removal::wait(
        &env.working_dir,
        &key,
        Duration::from_secs(60)
    ));
    assert!(
        !removal_order(&env, &key).exists(),
        "a removal that succeeded leaves no order behind"
    );
}

/// gitlab-runner retries a failed prepare 3 s after its cleanup, under the same names. The
/// retry must not start while the first attempt's removal runs: that removal (by the job's
/// label) would take the new attempt's containers with it.
#[test]
fn the_same_jobs_next_prepare_waits_for_the_removal_of_its_earlier_attempt() {
    require_podman!();
    let (env, go) = env_whose_podman_rm_waits();
    let (runner, job_id, _, label) = new_job();
    phase_ok(&env, "prepare", &runner, job_id);
    phase_ok(&env, "cleanup", &runner, job_id);

    let mut retry = phase(&env, "prepare", &runner, job_id)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        retry.try_wait().unwrap().is_none(),
        "the retry went ahead while the removal ran"
    );
    std::fs::write(&go, "").unwrap();
    let out = retry.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the retry's job container runs: the earlier removal did not take it
    let ps = env.podman.output(&[
        "ps",
        "--filter",
        &format!("label={label}"),
        "--filter",
        "status=running",
        "--format",
        "{{.Names}}",
    ]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).contains("-build"),
        "{}",
        String::from_utf8_lossy(&ps.stdout)
    );
    cleanup_leaves_nothing(&env, &runner, job_id);
}

/// A background removal killed half-way (a reboot, an OOM kill) leaves the job's containers;
/// the job's cleanup ran, so `pogo gc` takes them at its next run, and the removal's order
/// with them.
#[test]
fn a_killed_background_removal_leaves_the_job_to_gc() {
    require_podman!();
    let (env, go) = env_whose_podman_rm_waits();
    let (runner, job_id, key, label) = new_job();
    phase_ok(&env, "prepare", &runner, job_id);
    phase_ok(&env, "cleanup", &runner, job_id);

    // the remover leads its own process group (podman's processes with it)
    let remover = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains("remove-job") && cmd.contains(&key)
        })
        .and_then(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .expect("the background removal runs");
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(remover),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(pogo::executor::removal::wait(
        &env.working_dir,
        &key,
        Duration::from_secs(60)
    ));
    std::fs::write(&go, "").unwrap();
    assert!(
        !env.podman.labelled(&label).is_empty(),
        "the killed removal removed nothing"
    );
    assert!(removal_order(&env, &key).exists());

    // the order counts as stale once it is a few seconds old
    std::thread::sleep(Duration::from_millis(2500));
    let out = pogo_gc_ok(&env, &["--runner", &runner]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 finished job(s) cleaned up"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(env.podman.labelled(&label), Vec::<String>::new());
    assert!(!removal_order(&env, &key).exists());
}

/// `max_images_size`: past it, `pogo gc` removes the images pogo pulled for jobs, least
/// recently used first, by the name it pulled: never one `keep_images` pins, never an image
/// pogo did not pull (the test images were local before any job).
#[test]
fn gc_keeps_the_images_pogo_pulled_within_max_images_size_least_recently_used_first() {
    let env_podman = PodmanCmd::default;
    require_podman!();
    let Some(mut registry) = Registry::start() else {
        return;
    };
    let id = unique_id();
    let tag = format!("t{id}");
    // images of the test's own (no other test's container uses them), only in the registry
    let mut pushed = |what: &str| {
        let local = derived_image(
            &format!("gc-{id}-{what}"),
            IMG_BUSYBOX,
            &format!("echo {what} > /{what}"),
            &[],
        );
        let remote = registry.push(&local, &format!("pogo/gc-{what}"), &tag);
        let out = env_podman().output(&["image", "rm", &local]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        remote
    };
    let old = pushed("old");
    let pinned = pushed("pinned");
    let new = pushed("new");
    let env = TestEnv::logged_in_to(&registry);
    for image in [&old, &pinned, &new, &IMG_BASH.to_string()] {
        let mut job = env.job(&[], &["echo ran"]);
        job.image = Some(pogo::driver::Image::new(image.clone()));
        assert_success(&env.run(&job));
        // one use a second: the order of last use is the order of the jobs
        std::thread::sleep(Duration::from_millis(1100));
    }
    env.wait_for_removals();
    for image in [&old, &pinned, &new] {
        assert!(env.podman.image_exists(image), "the job pulled {image}");
    }
    let auth = registry.dir.path().join("auth.json");
    env.write_config(
        &PogoConfig {
            auth_file: Some(auth),
            ..PogoConfig::default()
        }
        .with_extra_yaml("max_images_size: 1\nkeep_images: ['*/pogo/gc-pinned:*']\n"),
    );
    let runner = format!("faults{}", unique_id());

    let out = pogo_gc_ok(&env, &["--runner", &runner, "--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout);
    let old_at = said
        .find(&format!("would remove image {old} "))
        .expect(&said);
    let new_at = said
        .find(&format!("would remove image {new} "))
        .expect(&said);
    assert!(old_at < new_at, "least recently used first: {said}");
    assert!(said.contains("over max_images_size 1.0 MiB"), "{said}");
    assert!(said.contains("; frees "), "{said}");
    assert!(!said.contains(&pinned), "{said}");
    assert!(!said.contains(&format!("image {IMG_BASH}")), "{said}");
    assert!(env.podman.image_exists(&old), "a dry run removes nothing");

    let out = pogo_gc_ok(&env, &["--runner", &runner]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("removed image {old} ")), "{said}");
    assert!(!env.podman.image_exists(&old));
    assert!(!env.podman.image_exists(&new));
    assert!(env.podman.image_exists(&pinned), "keep_images pins it");
    assert!(
        env.podman.image_exists(IMG_BASH),
        "{IMG_BASH} was not pogo's to remove"
    );
    // a second run finds nothing more of pogo's to remove
    let out = pogo_gc_ok(&env, &["--runner", &runner]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("removed image"));
    let _ = env.podman.output(&["image", "rm", &pinned]);
}

/// `max_cache_size`: `pogo gc` keeps the job caches under `cache_dir` within it, the least
/// recently used archive first, and says so; a cache used in the last minutes stays.
#[test]
fn gc_keeps_the_caches_within_max_cache_size_least_recently_used_first() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default().with_extra_yaml("max_cache_size: 1\n"));
    let old = env.cache_dir.join("group/a/key/cache.zip");
    let recent = env.cache_dir.join("group/b/key/cache.zip");
    for p in [&old, &recent] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![7u8; 1024 * 1024]).unwrap();
    }
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_times(
            std::fs::FileTimes::new()
                .set_accessed(day_ago)
                .set_modified(day_ago),
        )
        .unwrap();
    let runner = format!("faults{}", unique_id());
    let out = pogo_gc_ok(&env, &["--runner", &runner, "--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("would remove cache {}", old.display())),
        "{said}"
    );
    assert!(said.contains("over max_cache_size 1.0 MiB"), "{said}");
    assert!(!said.contains(&recent.display().to_string()), "{said}");
    assert!(old.exists());
    pogo_gc_ok(&env, &["--runner", &runner]);
    assert!(!old.exists());
    assert!(!env.cache_dir.join("group/a").exists());
    assert!(recent.exists(), "a cache used minutes ago stays");
}

/// A working_dir deleted as soon as the job is over (a test's temporary directory, an owner
/// cleaning up) must not stop the background removal: it gets its order on stdin, not only
/// from `<working_dir>/removals/`. (A `pogo exec` test left a container on Debian 13 when its
/// temporary working_dir went before the removal had read its order.)
#[test]
fn the_background_removal_finishes_when_the_working_dir_is_deleted_right_after_cleanup() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let (runner, job_id, _, label) = new_job();
    phase_ok(&env, "prepare", &runner, job_id);
    phase_ok(&env, "cleanup", &runner, job_id);
    std::fs::remove_dir_all(&env.working_dir).unwrap();
    env.podman.assert_nothing_labelled(&label);
}
