//! Scenario tests: real jobs through pogo and a real Podman, driven by the
//! gitlab-runner imitation in `pogo::driver`. Each test is named after what
//! a user of pogo would notice if the behaviour broke.

use std::time::{Duration, Instant};

use crate::common::*;
use pogo::driver::{CancelWhenLogShows, Image, Outcome, Service, Variable};

#[test]
fn trivial_job_succeeds_and_its_output_is_in_the_log() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let job = env.job(
        &["build"],
        &["echo pogo-hello-$((6*7))", "echo id=$CI_JOB_ID"],
    );
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(
        log.contains("\n$ echo pogo-hello-$((6*7))\n"),
        "command echo missing:\n{log}"
    );
    assert!(log.contains("\npogo-hello-42\n"), "output missing:\n{log}");
    assert!(log.contains(&format!("\nid={}\n", job.id)), "{log}");
    assert!(
        log.contains("Using Custom executor with driver pogo"),
        "{log}"
    );
    assert_eq!(
        env.gitlab.requests(&job.token),
        1,
        "pogo must ask GitLab for the job's tags exactly once: {:?}",
        env.gitlab.request_log()
    );
    assert_eq!(
        r.phases(),
        vec![
            "config",
            "prepare",
            "prepare_script",
            "get_sources",
            "build_script",
            "cleanup_file_variables",
            "cleanup"
        ]
    );
    let cfg = r.config_output.as_ref().expect("config_exec printed JSON");
    assert_eq!(cfg["driver"]["name"], "pogo");
    assert_eq!(cfg["builds_dir_is_shared"], false);
    assert!(
        job_key(&r).is_some(),
        "config_exec must report POGO_JOB_KEY: {cfg}"
    );
    assert_eq!(
        cfg["job_env"]["POGO_JOB_TAGS"]
            .as_str()
            .map(|s| serde_json::from_str::<Vec<String>>(s).ok()),
        Some(Some(vec!["build".to_string()])),
        "{cfg}"
    );
    for d in &r.temp_dirs {
        assert!(
            !d.exists(),
            "gitlab-runner removes {} after cleanup",
            d.display()
        );
    }
    env.assert_no_leftovers();
}

#[test]
fn failing_command_fails_the_job_with_its_exit_code() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let job = env.job(
        &[],
        &["echo before-$((1+1))", "exit 3", "echo after-$((2+2))"],
    );
    let r = env.run(&job);
    assert_build_failure(&r, 3);
    let log = plain_log(&r);
    assert!(log.contains("\nbefore-2\n"), "{log}");
    assert!(
        !log.contains("\nafter-4\n"),
        "commands after a failure must not run:\n{log}"
    );
    assert!(log.contains("ERROR: Job failed: exit code 3"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn job_without_image_runs_in_the_default_image() {
    require_podman!();
    // default_image is the bash image; the busybox image has no /bin/bash.
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["test -x /bin/bash", "echo default-image-$((1+1))"]);
    job.image = None;
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\ndefault-image-2\n"), "{}", r.log);
    env.assert_no_leftovers();
}

#[test]
fn job_image_overrides_the_default_image() {
    require_podman!();
    // A default image without bash could not run the job's bash scripts.
    let env = TestEnv::new(&PogoConfig {
        default_image: Some(IMG_BUSYBOX.to_string()),
        ..PogoConfig::default()
    });
    let mut job = env.job(&[], &["echo image=$CI_JOB_IMAGE", "test -x /bin/bash"]);
    job.image = Some(Image::new(IMG_BASH));
    let r = env.run(&job);
    assert_success(&r);
    assert!(
        plain_log(&r).contains(&format!("\nimage={IMG_BASH}\n")),
        "{}",
        r.log
    );
    env.assert_no_leftovers();
}

#[test]
fn an_image_whose_registry_is_unreachable_is_a_system_failure_after_three_prepare_attempts() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["echo never"]);
    // nothing listens on localhost:443
    job.image = Some(missing_image("does-not-exist", &job));
    let r = env.run(&job);
    assert_system_failure(&r);
    assert_eq!(
        r.prepare_attempts, 3,
        "gitlab-runner retries Prepare 3 times"
    );
    assert_eq!(r.phase_count("prepare"), 3, "{:?}", r.phases());
    assert_eq!(
        r.phase_count("cleanup"),
        3,
        "cleanup_exec after every failed attempt"
    );
    assert_eq!(r.phase_count("build_script"), 0);
    assert!(
        plain_log(&r).contains("does-not-exist"),
        "the log should name the image:\n{}",
        r.log
    );
    env.assert_no_leftovers();
}

#[test]
fn an_image_the_registry_does_not_have_is_the_jobs_failure_not_retried() {
    require_podman!();
    let Some(registry) = Registry::start() else {
        return;
    };
    // logged in: the registry answers "manifest unknown"
    let env = TestEnv::logged_in_to(&registry);
    let mut job = env.job(&[], &["echo never"]);
    job.image = Some(Image::new(format!(
        "{}/pogo/typo-{}:latest",
        registry.host(),
        job.id
    )));
    let r = env.run(&job);
    assert_build_failure(&r, 1);
    assert_eq!(r.prepare_attempts, 1, "retrying cannot help");
    let log = plain_log(&r);
    assert!(log.contains("does not exist in its registry"), "{log}");
    assert!(log.contains("check the image name and tag"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn private_registry_image_is_pulled_with_the_auth_file() {
    require_podman!();
    let Some(mut registry) = Registry::start() else {
        return;
    };
    let tag = format!("t{}", unique_id());
    let remote = registry.push(IMG_BASH, "pogo/private-bash", &tag);
    let env = TestEnv::logged_in_to(&registry);
    let mut job = env.job(&[], &["echo private-$((3*3))"]);
    job.image = Some(Image::new(remote.clone()));
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\nprivate-9\n"), "{}", r.log);
    assert_eq!(r.prepare_attempts, 1);
    assert!(
        env.podman.image_exists(&remote),
        "pogo should have pulled {remote}"
    );
    env.assert_no_leftovers();
}

#[test]
fn private_registry_image_without_credentials_is_the_jobs_failure_naming_them() {
    require_podman!();
    let Some(mut registry) = Registry::start() else {
        return;
    };
    let tag = format!("t{}", unique_id());
    let remote = registry.push(IMG_BASH, "pogo/private-bash", &tag);
    let mut env = TestEnv::new(&PogoConfig::default());
    env.use_plain_http_registry(&registry);
    let mut job = env.job(&[], &["echo never"]);
    job.image = Some(Image::new(remote.clone()));
    let r = env.run(&job);
    // as the Docker executor's image pull failure: not retried
    assert_build_failure(&r, 1);
    assert_eq!(r.prepare_attempts, 1, "retrying cannot help");
    let log = plain_log(&r);
    assert!(log.contains("the registry refused image"), "{log}");
    assert!(log.contains("DOCKER_AUTH_CONFIG"), "{log}");
    assert_eq!(r.phase_count("build_script"), 0);
    assert!(!env.podman.image_exists(&remote));
    env.assert_no_leftovers();
}

#[test]
fn pull_policy_never_with_a_missing_image_fails_and_says_so() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        pull_policy: Some("never".into()),
        ..PogoConfig::default()
    });
    let mut job = env.job(&[], &["echo never"]);
    job.image = Some(missing_image("absent", &job));
    let r = env.run(&job);
    assert_system_failure(&r);
    assert!(
        plain_log(&r).contains("pull_policy"),
        "the log should mention pull_policy:\n{}",
        r.log
    );
    assert_eq!(r.phase_count("build_script"), 0);
    env.assert_no_leftovers();
}

#[test]
fn pull_policy_never_uses_a_local_image() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        pull_policy: Some("never".into()),
        ..PogoConfig::default()
    });
    let job = env.job(&[], &["echo local-$((5+5))"]);
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\nlocal-10\n"), "{}", r.log);
    env.assert_no_leftovers();
}

#[test]
fn tagged_mount_is_only_in_matching_jobs_and_readonly_is_enforced() {
    require_podman!();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("mounted.txt"), "pogo-mount-content\n").unwrap();
    let env = TestEnv::new(&PogoConfig {
        mounts: vec![MountSpec {
            volume: format!("{}:/mnt/tagged", host.path().display()),
            tags: vec!["build".into(), "deploy".into()],
            readonly: true,
        }],
        ..PogoConfig::default()
    });

    let tagged = env.job(
        &["deploy"],
        &[
            "cat /mnt/tagged/mounted.txt",
            "if touch /mnt/tagged/written-by-job 2>/dev/null; then echo mount-is-writable; exit 9; fi",
            "echo readonly-$((1+1))",
        ],
    );
    let r = env.run(&tagged);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\npogo-mount-content\n"), "{log}");
    assert!(log.contains("\nreadonly-2\n"), "{log}");
    assert!(!host.path().join("written-by-job").exists());

    let untagged = env.job(
        &["other"],
        &[
            "test ! -e /mnt/tagged/mounted.txt",
            "echo no-mount-$((1+2))",
        ],
    );
    let r = env.run(&untagged);
    assert_success(&r);
    assert!(plain_log(&r).contains("\nno-mount-3\n"), "{}", r.log);
    env.assert_no_leftovers();
}

#[test]
fn untagged_mount_is_in_every_job_and_writable_by_default() {
    require_podman!();
    let host = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig::mounting(host.path(), "/mnt/shared"));
    let job = env.job(&[], &["echo from-job > /mnt/shared/out.txt"]);
    let r = env.run(&job);
    assert_success(&r);
    assert_eq!(
        std::fs::read_to_string(host.path().join("out.txt")).unwrap_or_default(),
        "from-job\n"
    );
    env.assert_no_leftovers();
}

#[test]
fn extra_arguments_for_a_tag_keep_their_shell_quoting() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        extra_arguments: vec![(
            "greet".into(),
            "--env 'GREETING=hello world' --label x=y".into(),
        )],
        ..PogoConfig::default()
    });
    let script = ["printf '<%s>\\n' \"${GREETING:-unset}\""];
    let r = env.run(&env.job(&["greet"], &script));
    assert_success(&r);
    assert!(plain_log(&r).contains("\n<hello world>\n"), "{}", r.log);

    let r = env.run(&env.job(&["other"], &script));
    assert_success(&r);
    assert!(plain_log(&r).contains("\n<unset>\n"), "{}", r.log);
    env.assert_no_leftovers();
}

#[test]
fn service_is_reachable_on_localhost_and_by_its_alias() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let r = env.run(&job_calling_its_service(&env));
    assert_both_requests_reached_the_service(&r);
    env.assert_no_leftovers();
}

#[test]
fn cache_written_by_one_job_is_restored_in_the_next() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        runner_binary: Some(runner_stand_in()),
        ..PogoConfig::default()
    });
    let first = job_caching_a_marker(&env, &[]);
    let r1 = env.run(&first);
    assert_success(&r1);
    assert!(r1.phases().contains(&"restore_cache"));
    assert!(r1.phases().contains(&"archive_cache"));
    let log1 = plain_log(&r1);
    assert!(log1.contains("Created cache"), "{log1}");
    let archive = env
        .cache_dir
        .join(&first.project_path)
        .join("test-job/main/cache.zip");
    assert!(
        archive.exists(),
        "no cache archive at {}:\n{log1}",
        archive.display()
    );

    let r2 = env.run(&job_reading_the_cached_marker(&env, &first));
    assert_read_the_marker_cached_by(&r2, &first);
    assert!(
        !r2.phases().contains(&"archive_cache"),
        "policy pull must not archive: {:?}",
        r2.phases()
    );
    env.assert_no_leftovers();
}

#[test]
fn cancel_stops_a_running_job_quickly_and_runs_after_script() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(
        &[],
        &[
            "echo started-$((2+3)); sleep 300",
            "echo not-reached-$((1+1))",
        ],
    );
    job.after_script = vec!["echo after-status=$CI_JOB_STATUS".into()];
    let cancel = CancelWhenLogShows("started-5".into());
    let r = env.run_with(&env.driver(), &job, Some(cancel));
    assert_eq!(r.outcome, Outcome::Canceled, "{}", r.log);
    let kill = r
        .kill_report("build_script")
        .expect("build_script should have been signalled");
    let exited = kill
        .exited_after_sigterm
        .expect("build_script never exited after SIGTERM");
    assert!(
        exited < Duration::from_secs(10),
        "run_exec took {exited:?} to stop after SIGTERM"
    );
    assert!(!kill.sigkilled, "run_exec needed SIGKILL");
    let log = plain_log(&r);
    assert!(log.contains("\nstarted-5\n"), "{log}");
    assert!(!log.contains("\nnot-reached-2\n"), "{log}");
    assert!(
        log.contains("\nafter-status=canceled\n"),
        "after_script must run with CI_JOB_STATUS=canceled:\n{log}"
    );
    assert_eq!(r.phase_count("cleanup"), 1);
    env.assert_no_leftovers();
}

#[test]
fn job_timeout_stops_the_job() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["sleep 300"]);
    // the job timeout covers prepare and the stages before build_script too: leave them room
    // on a loaded machine, or the timeout would fall before build_script
    job.timeout = Duration::from_secs(20);
    let r = env.run(&job);
    assert_eq!(r.outcome, Outcome::TimedOut, "{}", r.log);
    let kill = r
        .kill_report("build_script")
        .expect("build_script signalled");
    assert!(
        kill.exited_after_sigterm
            .is_some_and(|d| d < Duration::from_secs(10)),
        "{kill:?}"
    );
    assert_eq!(r.phase_count("cleanup"), 1);
    env.assert_no_leftovers();
}

#[test]
fn invalid_yaml_config_fails_the_job_naming_line_and_column() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        raw: Some(format!(
            // a tab cannot start a YAML token: a syntax error on line 3
            "default_image: {IMG_BASH}\nmounts:\n\t- volume: /a:/b\n"
        )),
        ..PogoConfig::default()
    });
    let job = env.job(&[], &["echo never"]);
    let r = env.run(&job);
    assert_system_failure(&r);
    let log = plain_log(&r);
    let path = env.config_path.to_string_lossy().into_owned();
    assert!(log.contains(&path), "the log should name {path}:\n{log}");
    // `FILE:LINE:COLUMN` or "line L column C"; the tab is on line 3.
    let has_position = log.contains(&format!("{path}:3:")) || log.contains("line 3 column");
    assert!(has_position, "the log should give line and column:\n{log}");
    assert_eq!(r.phase_count("build_script"), 0);
    env.assert_no_leftovers();
}

#[test]
fn unknown_config_key_fails_the_job_naming_the_key() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        raw: Some(format!("default_image: {IMG_BASH}\nbogus_setting: 1\n")),
        ..PogoConfig::default()
    });
    let r = env.run(&env.job(&[], &["echo never"]));
    assert_system_failure(&r);
    assert!(plain_log(&r).contains("bogus_setting"), "{}", r.log);
    env.assert_no_leftovers();
}

#[test]
fn gitlab_api_error_fails_the_job_with_the_http_status() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    env.gitlab.force_status(Some(500));
    let job = env.job(&[], &["echo never"]);
    let r = env.run(&job);
    assert_system_failure(&r);
    assert!(plain_log(&r).contains("500"), "{}", r.log);
    assert_eq!(r.phase_count("build_script"), 0);
    assert_eq!(
        env.gitlab.requests(&job.token),
        r.prepare_attempts as usize,
        "one tags request per config_exec"
    );
    env.assert_no_leftovers();
}

#[test]
fn file_variables_and_masked_values_reach_the_job() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(
        &[],
        &[
            "cat \"$MY_FILE\"",
            "printf '[%s]\\n' \"$SPACED\"",
            "echo \"token=$SECRET_VALUE\"",
        ],
    );
    // raw: gitlab-runner would otherwise expand `$HOME` and `$x`.
    let mut file = pogo::driver::Variable::file("MY_FILE", "line one\nline 'two' $HOME\n");
    file.raw = true;
    let mut spaced = pogo::driver::Variable::new("SPACED", "a  b\tc 'q' \"d\" $x");
    spaced.raw = true;
    job.variables = vec![
        file,
        spaced,
        pogo::driver::Variable::masked("SECRET_VALUE", "s3cr3t-value-xyz"),
    ];
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nline one\nline 'two' $HOME\n"), "{log}");
    assert!(log.contains("\n[a  b\tc 'q' \"d\" $x]\n"), "{log}");
    assert!(log.contains("\ntoken=[MASKED]\n"), "{log}");
    assert!(!log.contains("s3cr3t-value-xyz"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn image_without_any_shell_fails_as_a_build_failure_that_says_so() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["echo never-runs"]);
    // busybox without its sh link: no bash, no sh where the Docker executor looks
    job.image = Some(Image::new(derived_image(
        "no-shell-v1",
        IMG_BUSYBOX,
        "rm /bin/sh",
        &[],
    )));
    let r = env.run(&job);
    assert_build_failure(&r, 127);
    let log = plain_log(&r);
    assert!(log.contains("the job image has no sh"), "{log}");
    assert!(!log.contains("\nnever-runs\n"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn job_container_removed_from_outside_is_a_system_failure() {
    require_podman!();
    let sync = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig::mounting(sync.path(), "/mnt/sync"));
    let job = env.job(
        &[],
        &[
            "echo started; touch /mnt/sync/in-build; sleep 60",
            "echo not-reached",
        ],
    );
    let id = job.id;
    let podman = env.podman.clone();
    let in_build = sync.path().join("in-build");
    let killer = std::thread::spawn(move || {
        // once the build script runs, remove the job container behind pogo's back
        let deadline = Instant::now() + Duration::from_secs(120);
        while !in_build.exists() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ps = podman.output(&[
            "ps",
            "--filter",
            &format!("label={LABEL_JOB_ID}={id}"),
            "--format",
            "{{.Names}}",
        ]);
        let names = String::from_utf8_lossy(&ps.stdout).to_string();
        let Some(name) = names.lines().find(|n| n.ends_with("-build")) else {
            return false;
        };
        podman.output(&["rm", "-f", "-t", "0", name]);
        true
    });
    let r = env.run(&job);
    assert!(
        killer.join().unwrap(),
        "the build script never ran in a job container"
    );
    assert_system_failure(&r);
    let log = plain_log(&r);
    assert!(
        log.contains("disappeared during stage build_script")
            || log.contains("stopped during stage build_script"),
        "{log}"
    );
    assert!(!log.contains("\nnot-reached\n"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn service_variables_reach_the_service_verbatim_and_never_act_on_the_host_podman() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["wget -qO- http://web:80/; echo"]);
    // The service serves its own variables. CONTAINERS_CONF and LD_PRELOAD would break (or
    // hijack) the host's podman if they reached its environment: for the service they are
    // plain variables like any other.
    // ($VARS in it would be expanded by gitlab-runner, as for any service variable)
    let greeting = r#"a "quoted" 'value' #not-a-comment \back = ok  "#;
    job.services = vec![Service {
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            r#"printf '[%s]|%s|%s' "$GREETING" "$CONTAINERS_CONF" "$LD_PRELOAD" > /www/index.html; exec /bin/httpd -f -p 80 -h /www"#.into(),
        ]),
        variables: [
            ("GREETING", greeting),
            ("CONTAINERS_CONF", "/nonexistent/containers.conf"),
            ("LD_PRELOAD", "/nonexistent/evil.so"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..httpd_service("web")
    }];
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(
        log.contains(&format!(
            "\n[{greeting}]|/nonexistent/containers.conf|/nonexistent/evil.so\n"
        )),
        "{log}"
    );
    let start = log
        .lines()
        .find(|l| l.starts_with("pogo: starting service"))
        .expect("the service's podman run in the log");
    assert!(
        start.contains("--env-file=") && !start.contains("nonexistent"),
        "values stay off the command line: {start}"
    );
    env.assert_no_leftovers();
}

#[test]
fn a_process_the_script_leaves_in_the_background_does_not_hold_the_job_up() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    // the subshell keeps the stage's output open for two minutes
    let job = env.job(&[], &["(sleep 120; echo late) &", "echo main-done"]);
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nmain-done\n"), "{log}");
    let build = r
        .phase_times
        .iter()
        .find(|(n, _)| n == "build_script")
        .map(|(_, d)| *d)
        .expect("build_script ran");
    assert!(
        build < Duration::from_secs(60),
        "build_script took {build:?}"
    );
    env.assert_no_leftovers();
}

#[test]
fn a_link_the_job_plants_at_its_agent_socket_is_refused_not_followed() {
    require_podman!();
    let mut env = TestEnv::new(&PogoConfig::default());
    // the agent's path, also when the suite runs again on the podman exec path
    env.extra_env
        .push(("POGO_STAGE_RUNNER".into(), "agent".into()));
    // The socket's directory is writable in the container; a link there (to another job's
    // socket, say) must not lead pogo's next stage anywhere.
    let mut job = env.job(
        &[],
        &[
            "rm -f /run/pogo/sock/agent.sock",
            "ln -s /run/pogo/sock/elsewhere.sock /run/pogo/sock/agent.sock",
            "echo planted",
        ],
    );
    job.after_script = vec!["echo after-ran".into()];
    let r = env.run(&job);
    let log = plain_log(&r);
    assert!(log.contains("\nplanted\n"), "{log}");
    assert!(
        log.contains("is not the stage agent's socket (it is a symbolic link)"),
        "{log}"
    );
    assert!(!log.contains("\nafter-ran\n"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn a_multi_line_service_variable_reaches_the_service_through_a_podman_secret_that_cleanup_removes()
{
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["wget -qO- http://web:80/; echo"]);
    // markers unique to this run: a phrase like "one line" may be on any process's command line
    let id = job.id;
    let cert = format!("-----BEGIN TEST {id}-----\nline \"2\" #3\n-----END TEST-----");
    let plain = format!("one line {id}");
    job.services = vec![Service {
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            r#"printf '[%s]|%s' "$CERT" "$PLAIN" > /www/index.html; exec /bin/httpd -f -p 80 -h /www"#.into(),
        ]),
        variables: [
            ("CERT".to_string(), cert.clone()),
            ("PLAIN".to_string(), plain.clone()),
        ]
        .into(),
        ..httpd_service("web")
    }];
    // the service's own processes may do as they like with its variables: the host's only
    let watch = CmdlineWatch::on_host(vec![format!("BEGIN TEST {id}"), plain.clone()]);
    let r = env.run(&job);
    let (_, seen) = watch.stop();
    assert_success(&r);
    assert!(seen.is_empty(), "a variable on a command line: {seen:?}");
    let log = plain_log(&r);
    assert!(log.contains(&format!("\n[{cert}]|{plain}\n")), "{log}");
    // the secret went with the job
    let key = expected_job_key(&job);
    env.wait_for_removals();
    let listed = env.podman.secret_names();
    assert!(
        !listed.iter().any(|n| n.contains(&key)),
        "left behind: {listed:?}"
    );
    env.assert_no_leftovers();
}

#[test]
fn service_that_never_listens_fails_with_its_log_after_the_wait_timeout() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        services_wait_timeout: Some(2),
        ..PogoConfig::default()
    });
    let mut job = env.job(&[], &["echo never-runs"]);
    job.services = vec![Service {
        // the image EXPOSEs 80, but this command never listens
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo service-booting-forever; sleep 300".into(),
        ]),
        ..httpd_service("web")
    }];
    let r = env.run(&job);
    assert_system_failure(&r);
    let log = plain_log(&r);
    assert!(log.contains("services_wait_timeout (2 s)"), "{log}");
    assert!(
        log.contains("service-booting-forever"),
        "the service's log is shown:\n{log}"
    );
    assert!(!log.contains("\nnever-runs\n"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn hostile_image_and_service_names_are_refused_before_podman_runs() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    for (image, service) in [
        ("--privileged", None),
        ("-v=/:/host", None),
        ("$(touch /tmp/pogo-pwned)", None),
        (IMG_BASH, Some("--network=host")),
    ] {
        let mut job = env.job(&[], &["echo never-runs"]);
        job.image = Some(Image::new(image));
        if let Some(s) = service {
            job.services = vec![Service::new(s)];
        }
        let r = env.run(&job);
        assert_eq!(
            r.outcome,
            Outcome::BuildFailure { exit_code: 1 },
            "{image}: {}",
            r.log
        );
        let log = plain_log(&r);
        assert!(log.contains("image refused"), "{log}");
        assert!(!log.contains("\nnever-runs\n"), "{log}");
        assert_eq!(
            r.phase_count("prepare"),
            1,
            "a build failure is not retried"
        );
    }
    assert!(!std::path::Path::new("/tmp/pogo-pwned").exists());
    env.assert_no_leftovers();
}

/// The job container's name for `job` as the test driver runs it.
fn build_container_name(job: &pogo::driver::Job) -> String {
    format!("{}-build", expected_job_key(job))
}

#[test]
fn leftover_container_of_an_earlier_attempt_is_replaced() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let job = env.job(&[], &["echo fresh-container"]);
    let name = build_container_name(&job);
    // what a pogo killed half-way through prepare leaves behind
    let out = env.podman.output(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "io.pogo.managed-by=pogo",
        IMG_BASH,
        "sleep",
        "300",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("removing a leftover"), "{}", r.log);
    assert_eq!(r.phase_count("prepare"), 1);
    env.assert_no_leftovers();
}

#[test]
fn same_named_container_pogo_did_not_create_is_never_removed() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let job = env.job(&[], &["echo never-runs"]);
    let name = build_container_name(&job);
    let out = env
        .podman
        .output(&["run", "-d", "--name", &name, IMG_BASH, "sleep", "300"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = env.run(&job);
    assert_system_failure(&r);
    assert!(plain_log(&r).contains("already in use"), "{}", r.log);
    let still = env.podman.output(&["container", "exists", &name]);
    assert!(
        still.status.success(),
        "pogo removed a container it did not create"
    );
    env.podman.output(&["rm", "-f", "-t", "0", &name]);
    env.assert_no_leftovers();
}

#[test]
fn image_outside_allowed_images_fails_as_a_build_failure_naming_the_rule() {
    require_podman!();
    let env = TestEnv::new(
        &PogoConfig::default()
            .with_extra_yaml("allowed_images: ['localhost/pogo-test/busybox:*']\n"),
    );
    let job = env.job(&[], &["echo never-runs"]);
    let r = env.run(&job);
    assert_build_failure(&r, 1);
    let log = plain_log(&r);
    assert!(
        log.contains(
            "is not allowed on this runner (allowed_images: localhost/pogo-test/busybox:*)"
        ),
        "{log}"
    );
    assert_eq!(
        r.phase_count("prepare"),
        1,
        "a policy refusal is not retried"
    );
    env.assert_no_leftovers();
}

#[test]
fn service_outside_allowed_services_is_refused() {
    require_podman!();
    let env = TestEnv::new(
        &PogoConfig::default()
            .with_extra_yaml("allowed_services: ['docker.io/library/postgres:*']\n"),
    );
    let mut job = env.job(&[], &["echo never-runs"]);
    job.services = vec![Service::new(IMG_HTTPD)];
    let r = env.run(&job);
    assert_build_failure(&r, 1);
    assert!(plain_log(&r).contains("allowed_services"), "{}", r.log);
    env.assert_no_leftovers();
}

#[test]
fn privileged_arguments_without_privileged_true_fail_the_job_with_the_fix() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        extra_arguments: vec![("build".into(), "--privileged".into())],
        ..PogoConfig::default()
    });
    let job = env.job(&["build"], &["echo never-runs"]);
    let r = env.run(&job);
    assert_system_failure(&r);
    let log = plain_log(&r);
    assert!(log.contains("extra_arguments.build"), "{log}");
    assert!(log.contains("privileged: true"), "{log}");
    assert!(!log.contains("\nnever-runs\n"), "{log}");
}

#[test]
fn a_mount_limited_to_other_projects_is_not_granted_by_its_tag_alone() {
    require_podman!();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret.txt"), "deploy-key").unwrap();
    let env = TestEnv::new(&PogoConfig::default().with_extra_yaml(&format!(
        "mounts:\n  - volume: {}:/mnt/keys\n    tags: [deploy]\n    projects: ['ops/*']\n",
        host.path().display()
    )));
    let job = env.job(
        &["deploy"],
        &["test ! -e /mnt/keys/secret.txt && echo no-keys-here"],
    );
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\nno-keys-here\n"), "{}", r.log);

    let mut job = env.job(&["deploy"], &["cat /mnt/keys/secret.txt; echo"]);
    job.project_path = format!("ops/infra-{}", job.id);
    let r = env.run(&job);
    assert_success(&r);
    assert!(
        plain_log(&r).contains("\ndeploy-key\n"),
        "a matching project gets it:\n{}",
        r.log
    );

    // A job cannot pass for another project by setting CI_PROJECT_PATH in its variables, nor
    // have pogo ask another server for its tags by setting CI_API_V4_URL: GitLab's own values
    // count, and the job log says so.
    let mut job = env.job(
        &["deploy"],
        &["test ! -e /mnt/keys/secret.txt && echo no-keys-for-a-pretender"],
    );
    job.variables
        .push(Variable::new("CI_PROJECT_PATH", "ops/infra"));
    job.variables
        .push(Variable::new("CI_API_V4_URL", "http://127.0.0.1:9/api/v4"));
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nno-keys-for-a-pretender\n"), "{log}");
    assert!(
        log.contains(
            "the job's variables set CI_PROJECT_PATH to \"ops/infra\"; pogo goes by GitLab's"
        ),
        "{log}"
    );
    assert!(
        log.contains("set CI_API_V4_URL to \"http://127.0.0.1:9/api/v4\""),
        "{log}"
    );
    env.assert_no_leftovers();
}

#[test]
fn a_job_image_with_a_non_root_user_runs_its_script_as_that_user() {
    require_podman!();
    let image = non_root_image();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["echo \"uid=$(id -u)\"", "echo second-stage-ok"]);
    job.image = Some(Image::new(&image));
    job.after_script = vec!["echo \"after uid=$(id -u)\"".into()];
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nuid=1000\n"), "{log}");
    assert!(log.contains("\nsecond-stage-ok\n"), "{log}");
    assert!(log.contains("\nafter uid=1000\n"), "{log}");
    env.assert_no_leftovers();
}

/// A job of another project that sets `variables: {CI_JOB_ID: <a running job's id>}` (same
/// runner, same slot) once made pogo remove the running job's container "as a leftover" and
/// run the rest of that job's stages, secrets and all, in its own. The victim now runs to the
/// end in its own container and the pretender in another.
#[test]
fn a_job_claiming_a_running_jobs_id_cannot_remove_or_take_over_that_jobs_container() {
    require_podman!();
    let shared = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig::mounting(shared.path(), "/shared"));
    let (waiting, go) = (
        shared.path().join("victim-waiting"),
        shared.path().join("go"),
    );
    let mut victim = env.job(
        &[],
        &[
            "echo victim-secret-$CI_JOB_ID > /tmp/victim-marker",
            "touch /shared/victim-waiting",
            "for i in $(seq 1200); do test -e /shared/go && break; sleep 0.1; done",
            "test -e /shared/go || { echo never told to go; exit 3; }",
            "cat /tmp/victim-marker",
        ],
    );
    victim.after_script = vec!["cat /tmp/victim-marker | sed s/^/after-/".into()];
    let victim_id = victim.id;
    let mut pretender = env.job(
        &[],
        &[
            "test ! -e /tmp/victim-marker && echo pretender-in-a-container-of-its-own",
            "echo pretender-ran",
        ],
    );
    pretender
        .variables
        .push(Variable::new("CI_JOB_ID", victim_id.to_string()));
    let (victim_result, pretender_result) = std::thread::scope(|s| {
        let victim_run = s.spawn(|| env.run(&victim));
        let deadline = Instant::now() + Duration::from_secs(300);
        while !waiting.exists() && Instant::now() < deadline && !victim_run.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let pretender_result = env.run(&pretender);
        std::fs::write(&go, "").unwrap();
        (victim_run.join().unwrap(), pretender_result)
    });
    assert_success(&pretender_result);
    let log = plain_log(&pretender_result);
    assert!(
        log.contains("\npretender-in-a-container-of-its-own\n"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "the job's variables set CI_JOB_ID to \"{victim_id}\""
        )),
        "{log}"
    );
    assert!(!log.contains("removing a leftover"), "{log}");
    assert_ne!(job_key(&pretender_result), job_key(&victim_result));

    assert_success(&victim_result);
    let log = plain_log(&victim_result);
    assert!(
        log.contains(&format!("\nvictim-secret-{victim_id}\n")),
        "{log}"
    );
    assert!(
        log.contains(&format!("\nafter-victim-secret-{victim_id}\n")),
        "{log}"
    );
    env.assert_no_leftovers();
}

/// `POGO_LOG=trace` printed the HTTP client's request headers, `JOB-TOKEN: …` among them, on
/// the config phase's stderr: the job log.
#[test]
fn trace_logging_never_puts_the_job_token_in_the_job_log() {
    require_podman!();
    let mut env = TestEnv::new(&PogoConfig::default());
    env.extra_env
        .push(("POGO_LOG".to_string(), "trace".to_string()));
    let job = env.job(&["build"], &["echo traced-job-ran"]);
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\ntraced-job-ran\n"), "{}", r.log);
    for (what, text) in [("job log", &r.log), ("cleanup output", &r.cleanup_output)] {
        assert!(!text.contains(&job.token), "the job token is in the {what}");
        // gitlab-runner masks the token in the log it shows; the header line must not be
        // there to mask
        assert!(
            !text.contains("JOB-TOKEN"),
            "the job token header is in the {what}"
        );
    }
    env.assert_no_leftovers();
}

/// A running job keeps the settings it started with: every `pogo run` used to read the config
/// file again, so one saved invalid for a moment turned the job's remaining stages (its cache
/// here) into system failures.
#[test]
fn a_config_edited_while_a_job_runs_does_not_change_that_job() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let dir = env.config_path.parent().unwrap().to_path_buf();
    let config = PogoConfig {
        runner_binary: Some(runner_stand_in()),
        ..PogoConfig::mounting(&dir, "/cfg")
    };
    env.write_config(&config);

    let mut broken = env.job(
        &[],
        &[
            "mkdir -p vendor && echo kept > vendor/x",
            "printf 'default_image: [broken\\n' > /cfg/pogo.yaml",
            "echo config-broken-mid-job",
        ],
    );
    broken.cache = vec![vendor_cache()];
    broken.after_script = vec!["echo after-script-ran".into()];
    let r = env.run(&broken);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nconfig-broken-mid-job\n"), "{log}");
    assert!(log.contains("\nafter-script-ran\n"), "{log}");
    assert!(
        std::fs::read_to_string(&env.config_path)
            .unwrap()
            .contains("[broken"),
        "the job did not edit the config"
    );

    env.assert_no_leftovers();
}

/// SELinux-safe by construction: nothing pogo puts into the job container is mounted from a
/// system path (an enforcing host would refuse it, and pogo must not relabel it), and what
/// pogo mounts of its own carries `z`; a tag mount keeps the options its owner wrote.
#[test]
fn pogo_mounts_only_its_own_copies_relabelled_and_tag_mounts_as_written() {
    require_podman!();
    let shared = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig {
        runner_binary: Some(runner_stand_in()),
        ..PogoConfig::mounting(shared.path(), "/shared")
    });
    let job = env.job(&[], &["test -x /run/pogo/init && echo own-init-runs"]);
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nown-init-runs\n"), "{log}");
    let run_line = log
        .lines()
        .find(|l| l.contains("starting job container: "))
        .expect("the podman run line");
    let agent_dir = env.working_dir.join("agent");
    assert!(
        run_line.contains(&format!("{}/catatonit-", agent_dir.display())),
        "{run_line}"
    );
    assert!(run_line.contains(":/run/pogo/init:ro,z"), "{run_line}");
    assert!(
        run_line.contains(&format!("{}/gitlab-runner-", agent_dir.display())),
        "{run_line}"
    );
    assert!(!run_line.contains("/usr/bin/catatonit:"), "{run_line}");
    assert!(
        run_line.contains(&format!("{}:/shared ", shared.path().display()))
            || run_line.contains(&format!("'{}:/shared'", shared.path().display())),
        "the tag mount as written: {run_line}"
    );
    env.assert_no_leftovers();
}

/// `CI_DEBUG_SERVICES: "true"`: what a service writes shows in the job log after its alias,
/// each line once however many stages the job has, as the Docker executor shows it.
#[test]
fn ci_debug_services_streams_each_service_line_into_the_job_log_once() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["sleep 2", "echo script-done"]);
    job.after_script = vec!["sleep 1".into()];
    job.variables
        .push(pogo::driver::Variable::new("CI_DEBUG_SERVICES", "true"));
    job.services = vec![Service {
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo started-on-stdout; echo started-on-stderr >&2; sleep 1; echo a-second-later; exec httpd -f -p 80 -h /www".into(),
        ]),
        ..httpd_service("web")
    }];
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    for line in [
        "[service:web] started-on-stdout",
        "[service:web] started-on-stderr",
        "[service:web] a-second-later",
    ] {
        assert_eq!(log.matches(line).count(), 1, "{line}:\n{log}");
    }
    env.assert_no_leftovers();
}

/// A script that fails while a service has died says so, with the service's last lines.
#[test]
fn a_failed_script_names_a_service_that_died_with_its_last_lines() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["sleep 3", "exit 4"]);
    // no exposed port: prepare does not wait for it, and it dies while the script runs
    job.services = vec![Service {
        name: IMG_BUSYBOX.into(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo out of disk space; sleep 1; exit 3".into(),
        ]),
        ..httpd_service("db")
    }];
    let r = env.run(&job);
    assert_build_failure(&r, 4);
    let log = plain_log(&r);
    assert!(
        log.contains("is not running any more (exit code 3); its last lines:"),
        "{log}"
    );
    assert!(log.contains("[service:db] out of disk space"), "{log}");
    env.assert_no_leftovers();
}

/// `extra_arguments: TAG: services:` gives the service containers of the tag's jobs their own
/// limits (as the Docker executor's `service_memory`), and `args` stay the job container's.
#[test]
fn a_tags_service_arguments_limit_its_service_containers_and_not_the_job() {
    require_podman!();
    // the job waits for the test's `go` file, so its containers can be inspected meanwhile
    let sync = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig::mounting(sync.path(), "/mnt/sync").with_extra_yaml(
        "extra_arguments:\n  small-services:\n    args: '--env JOB_SIDE=job-only'\n    services: '--memory 64m --env SERVICE_SIDE=services-only'\n",
    ));
    let mut job = env.job(
        &["small-services"],
        &[
            "echo \"job-env=$JOB_SIDE service-env=${SERVICE_SIDE:-none}\"",
            "i=0; while [ ! -e /mnt/sync/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
        ],
    );
    job.variables
        .push(pogo::driver::Variable::new("CI_DEBUG_SERVICES", "true"));
    job.services = vec![Service {
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo \"service-env=$SERVICE_SIDE job-env=${JOB_SIDE:-none}\"; exec httpd -f -p 80 -h /www".into(),
        ]),
        ..httpd_service("web")
    }];
    let key = expected_job_key(&job);
    let memory = |container: &str| {
        let out = env
            .podman
            .output(&["inspect", "--format", "{{.HostConfig.Memory}}", container]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let go = sync.path().join("go");
    let (service_memory, job_memory, r) = std::thread::scope(|scope| {
        let runner = scope.spawn(|| env.run(&job));
        let build = format!("{key}-build");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !env
            .podman
            .output(&["container", "exists", &build])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "the job container never came");
            std::thread::sleep(Duration::from_millis(100));
        }
        let seen = (memory(&format!("{key}-svc0")), memory(&build));
        std::fs::write(&go, "").unwrap();
        (seen.0, seen.1, runner.join().unwrap())
    });
    assert_success(&r);
    assert_eq!(service_memory, "67108864", "the service's memory limit");
    assert_eq!(
        job_memory, "0",
        "the job container has no limit of the services'"
    );
    let log = plain_log(&r);
    assert!(
        log.contains("[service:web] service-env=services-only job-env=none"),
        "{log}"
    );
    assert!(
        log.contains("\njob-env=job-only service-env=none\n"),
        "{log}"
    );
    env.assert_no_leftovers();
}
