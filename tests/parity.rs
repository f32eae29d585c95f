//! Docker-executor parity: what a job's description (`JOB_RESPONSE_FILE`) asks for —
//! `image: entrypoint`, `pull_policy` within the runner's `allowed_pull_policies`, service
//! `ports` — is honoured the way GitLab's Docker executor honours it, on both stage paths.

use crate::common::*;
use pogo::driver::{Image, Job, JobResult, Outcome, Service};
use serde_json::json;
use std::collections::BTreeMap;

/// An image whose ENTRYPOINT wraps the command it is given (like many official images'
/// `docker-entrypoint.sh`): it exports a variable naming its first argument, then execs it.
fn wrapper_image() -> String {
    derived_image(
        "entrypoint-wrapper-v1",
        IMG_BASH,
        "mkdir -p /usr/local/bin && printf '#!/bin/sh\\nexport POGO_ENTRY=\"ran-before-$1\"\\nexec \"$@\"\\n' \
         > /usr/local/bin/entry.sh && chmod 755 /usr/local/bin/entry.sh",
        &["ENTRYPOINT [\"/usr/local/bin/entry.sh\"]"],
    )
}

/// An image whose ENTRYPOINT is a program, not a wrapper: it never starts its arguments.
fn not_a_wrapper_image() -> String {
    derived_image(
        "entrypoint-not-a-wrapper-v1",
        IMG_BASH,
        "mkdir -p /usr/local/bin && printf '#!/bin/sh\\necho \"not-a-wrapper: $*\"\\nexit 3\\n' \
         > /usr/local/bin/nowrap && chmod 755 /usr/local/bin/nowrap",
        &["ENTRYPOINT [\"/usr/local/bin/nowrap\"]"],
    )
}

/// A test environment whose stages run on `runner` (`agent` or `exec`).
fn env_on(runner: &str, config: PogoConfig) -> TestEnv {
    let mut env = TestEnv::new(&config.with_extra_yaml(&format!("stage_runner: {runner}\n")));
    // POGO_STAGE_RUNNER in the test's environment would override the file
    env.extra_env
        .push(("POGO_STAGE_RUNNER".into(), runner.into()));
    env
}

fn image_with_entrypoint(name: &str, entrypoint: &[&str]) -> Image {
    Image {
        name: name.to_string(),
        entrypoint: Some(entrypoint.iter().map(|s| s.to_string()).collect()),
        docker: Default::default(),
    }
}

fn run_checked(env: &TestEnv, job: &Job) -> JobResult {
    let r = env.run(job);
    env.assert_no_leftovers();
    r
}

#[test]
fn an_images_entrypoint_wraps_every_stage_on_both_stage_paths() {
    require_podman!();
    let image = wrapper_image();
    for runner in ["agent", "exec"] {
        let env = env_on(runner, PogoConfig::default());
        let mut job = env.job(&[], &["echo \"entry=$POGO_ENTRY\""]);
        job.image = Some(Image::new(&image));
        job.after_script = vec!["echo \"after-entry=$POGO_ENTRY\"".into()];
        let r = run_checked(&env, &job);
        assert_success(&r);
        let log = plain_log(&r);
        assert!(log.contains("\nentry=ran-before-sh\n"), "{runner}: {log}");
        assert!(
            log.contains("\nafter-entry=ran-before-sh\n"),
            "{runner}: {log}"
        );
        assert!(
            log.contains("stages start through the entrypoint [\"/usr/local/bin/entry.sh\"]"),
            "{runner}: {log}"
        );
    }
}

#[test]
fn entrypoint_empty_string_clears_the_images_entrypoint() {
    require_podman!();
    let image = not_a_wrapper_image();
    for runner in ["agent", "exec"] {
        let env = env_on(runner, PogoConfig::default());
        // as with the Docker executor, an entrypoint that does not start its arguments
        // breaks the job ...
        let mut job = env.job(&[], &["echo never-runs"]);
        job.image = Some(Image::new(&image));
        let r = run_checked(&env, &job);
        assert_eq!(
            r.outcome,
            Outcome::BuildFailure { exit_code: 3 },
            "{runner}: {}",
            r.log
        );
        let log = plain_log(&r);
        // (`podman exec -i` 4.3 often drops the output of a program that exits without
        // reading its stdin: only the agent's log is certain to show it)
        if runner == "agent" {
            assert!(log.contains("\nnot-a-wrapper: sh -c "), "{runner}: {log}");
        }
        assert!(!log.contains("\nnever-runs\n"), "{runner}: {log}");

        // ... and `entrypoint: [""]` is the fix
        let mut job = env.job(&[], &["echo cleared-$((20+1))"]);
        job.image = Some(image_with_entrypoint(&image, &[""]));
        let r = run_checked(&env, &job);
        assert_success(&r);
        let log = plain_log(&r);
        assert!(log.contains("\ncleared-21\n"), "{runner}: {log}");
        assert!(!log.contains("not-a-wrapper: "), "{runner}: {log}");
        assert!(!log.contains("stages start through"), "{runner}: {log}");
    }
}

#[test]
fn a_jobs_entrypoint_replaces_the_images() {
    require_podman!();
    let image = wrapper_image();
    for runner in ["agent", "exec"] {
        let env = env_on(runner, PogoConfig::default());
        let mut job = env.job(&[], &["echo \"entry=$POGO_ENTRY\""]);
        job.image = Some(image_with_entrypoint(
            &image,
            &[
                "/bin/sh",
                "-c",
                "export POGO_ENTRY=custom-$0; exec \"$0\" \"$@\"",
            ],
        ));
        let r = run_checked(&env, &job);
        assert_success(&r);
        assert!(
            plain_log(&r).contains("\nentry=custom-sh\n"),
            "{runner}: {}",
            r.log
        );
    }
}

#[test]
fn an_entrypoint_that_cannot_start_the_shell_fails_the_job_saying_how_to_fix_it() {
    require_podman!();
    for runner in ["agent", "exec"] {
        let env = env_on(runner, PogoConfig::default());
        let mut job = env.job(&[], &["echo never-runs"]);
        job.image = Some(image_with_entrypoint(IMG_BASH, &["/no/such/entrypoint"]));
        let r = run_checked(&env, &job);
        assert_eq!(
            r.outcome,
            Outcome::BuildFailure { exit_code: 127 },
            "{runner}: {}",
            r.log
        );
        let log = plain_log(&r);
        assert!(
            log.contains(
                "the image's entrypoint [\"/no/such/entrypoint\"] could not start a shell"
            ),
            "{runner}: {log}"
        );
        assert!(log.contains("entrypoint: [\"\"]"), "{runner}: {log}");
        assert_eq!(
            r.phase_count("prepare"),
            1,
            "a build failure is not retried"
        );
    }
}

/// `image: pull_policy` (and the services') of the job description.
fn with_pull_policy(job: &mut Job, image: &[&str], services: &[&[&str]]) {
    let services: Vec<serde_json::Value> = services
        .iter()
        .map(|p| json!({ "pull_policy": p }))
        .collect();
    job.description_patch = Some(json!({
        "image": { "pull_policy": image },
        "services": services,
    }));
}

#[test]
fn a_job_pull_policy_outside_allowed_pull_policies_fails_naming_the_rule() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["echo never-runs"]);
    with_pull_policy(&mut job, &["always"], &[]);
    let r = run_checked(&env, &job);
    assert_build_failure(&r, 1);
    let log = plain_log(&r);
    assert!(
        log.contains(&format!(
            "pull_policy [always] of image {IMG_BASH} is not allowed on this runner (allowed_pull_policies: if-not-present)"
        )),
        "{log}"
    );
    assert_eq!(r.phase_count("prepare"), 1, "not retried");

    // the same rule for a service's pull_policy
    let mut job = env.job(&[], &["echo never-runs"]);
    job.services = vec![Service::new(IMG_HTTPD)];
    with_pull_policy(&mut job, &[], &[&["never"]]);
    let r = run_checked(&env, &job);
    assert_build_failure(&r, 1);
    assert!(
        plain_log(&r).contains(&format!(
            "pull_policy [never] of service {IMG_HTTPD} is not allowed on this runner"
        )),
        "{}",
        r.log
    );
}

#[test]
fn a_job_pull_policy_never_on_a_missing_image_is_a_clear_build_failure() {
    require_podman!();
    let env = TestEnv::new(
        &PogoConfig::default().with_extra_yaml("allowed_pull_policies: [if-not-present, never]\n"),
    );
    let mut job = env.job(&[], &["echo never-runs"]);
    job.image = Some(missing_image("absent", &job));
    with_pull_policy(&mut job, &["never"], &[]);
    let r = run_checked(&env, &job);
    assert_build_failure(&r, 1);
    let log = plain_log(&r);
    assert!(
        log.contains("is not in podman's local storage and the job's pull_policy is never"),
        "{log}"
    );
    assert!(!log.contains("pulling image"), "never must not pull: {log}");
    assert_eq!(r.phase_count("prepare"), 1, "not retried");
}

#[test]
fn a_job_may_choose_an_allowed_policy_and_falls_back_along_its_list() {
    require_podman!();
    // the runner always pulls; a local-only image can then only be used when the job asks
    // for if-not-present (allowed here)
    let env = TestEnv::new(
        &PogoConfig {
            pull_policy: Some("always".into()),
            ..PogoConfig::default()
        }
        .with_extra_yaml("allowed_pull_policies: [always, if-not-present]\n"),
    );
    let mut job = env.job(&[], &["echo chosen-$((4*4))"]);
    with_pull_policy(&mut job, &["if-not-present"], &[]);
    let r = run_checked(&env, &job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nchosen-16\n"), "{log}");
    assert!(log.contains("using local image"), "{log}");
    assert!(!log.contains("pulling image"), "{log}");

    // [always, if-not-present]: the pull fails (no registry serves localhost/), the next
    // policy is tried, as the Docker executor does
    let mut job = env.job(&[], &["echo fell-back"]);
    with_pull_policy(&mut job, &["always", "if-not-present"], &[]);
    let r = run_checked(&env, &job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("pull_policy always failed for"), "{log}");
    assert!(
        log.contains("attempt #2: trying pull_policy if-not-present"),
        "{log}"
    );
    assert!(log.contains("\nfell-back\n"), "{log}");
}

fn httpd_on_8080(variables: &[(&str, &str)]) -> Service {
    Service {
        // the image EXPOSEs 80; this service listens on 8080 only
        command: Some(
            ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        variables: variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..httpd_service("web")
    }
}

#[test]
fn service_ports_from_the_job_are_what_pogo_waits_for() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        services_wait_timeout: Some(10),
        ..PogoConfig::default()
    });
    let script = ["wget -qO- http://web:8080/; echo"];

    let mut job = env.job(&[], &script);
    job.services = vec![httpd_on_8080(&[])];
    job.description_patch =
        Some(json!({"services": [{"ports": [{"number": 8080, "protocol": "http"}]}]}));
    let r = run_checked(&env, &job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("on port(s) [8080]"), "{log}");
    assert!(log.contains("\npogo-service-ok\n"), "{log}");

    // the Docker executor's HEALTHCHECK_TCP_PORT service variable
    let mut job = env.job(&[], &script);
    job.services = vec![httpd_on_8080(&[("HEALTHCHECK_TCP_PORT", "8080")])];
    let r = run_checked(&env, &job);
    assert_success(&r);
    assert!(plain_log(&r).contains("on port(s) [8080]"), "{}", r.log);

    // a port that is no port is the job's mistake
    let mut job = env.job(&[], &script);
    job.services = vec![httpd_on_8080(&[])];
    job.description_patch = Some(json!({"services": [{"ports": [{"number": 70000}]}]}));
    let r = run_checked(&env, &job);
    assert_build_failure(&r, 1);
    assert!(
        plain_log(&r).contains("port \"70000\" is not a TCP port number"),
        "{}",
        r.log
    );
}

// ---------------------------------------------------------------------------------------
// Registry credentials of the job
// ---------------------------------------------------------------------------------------

/// The job's own registry logins reach podman through a per-job auth file only: no command
/// line ever holds them, and nothing pogo leaves behind does.
fn pull_with_job_credentials(
    env: &mut TestEnv,
    registry: &Registry,
    job: &Job,
    secret: &str,
    expect_source: &str,
) {
    env.use_plain_http_registry(registry);
    let remote = job.image_name().to_string();
    let watch = CmdlineWatch::start(vec![secret.to_string()]);
    let r = env.run(job);
    let (scans, seen) = watch.stop();
    assert_success(&r);
    assert!(scans > 20, "the scanner ran only {scans} times");
    assert!(seen.is_empty(), "credentials on a command line: {seen:?}");
    let log = plain_log(&r);
    assert!(log.contains("\nfrom-the-registry\n"), "{log}");
    assert!(
        log.contains(&format!(
            "registry credentials for this job: {} ({expect_source})",
            registry.host()
        )),
        "{log}"
    );
    assert!(!log.contains(secret), "{log}");
    assert!(
        env.podman.image_exists(&remote),
        "pogo should have pulled {remote}"
    );
    let key = job_key(&r).unwrap();
    assert!(
        !env.working_dir.join("jobdata").join(&key).exists(),
        "the per-job auth file is removed at cleanup"
    );
    let hits = files_containing(&env.working_dir, &[secret.to_string()]);
    assert!(hits.is_empty(), "{hits:?}");
    env.assert_no_leftovers();
}

/// A job whose image is in a new registry that lets `gitlab-ci-token` in with the job's token,
/// as a project's GitLab container registry does: (the job, the registry). `None` (with a
/// message) when no registry can start here.
fn job_with_its_image_in_its_gitlab_registry(env: &TestEnv) -> Option<(Job, Registry)> {
    let mut job = env.job(&[], &["echo from-the-registry"]);
    let mut registry = Registry::start_with_users(&[("gitlab-ci-token", &job.token)])?;
    let remote = registry.push(IMG_BASH, "group/project/ci-image", &format!("t{}", job.id));
    job.image = Some(Image::new(&remote));
    Some((job, registry))
}

/// [`pull_with_job_credentials`] with the job's token as the credentials.
fn pull_with_the_job_token(env: &mut TestEnv, registry: &Registry, job: &Job) {
    pull_with_job_credentials(
        env,
        registry,
        job,
        &job.token,
        "the job's GitLab registry credentials (job token)",
    );
}

#[test]
fn an_image_in_the_jobs_gitlab_registry_is_pulled_with_the_job_token() {
    require_podman!();
    let mut env = TestEnv::new(&PogoConfig::default()); // no auth_file
    let Some((mut job, registry)) = job_with_its_image_in_its_gitlab_registry(&env) else {
        return;
    };
    // what GitLab sends with every job of a project with a container registry
    job.description_patch = Some(json!({"credentials": [{
        "type": "registry",
        "url": registry.host(),
        "username": "gitlab-ci-token",
        "password": job.token,
    }]}));
    pull_with_the_job_token(&mut env, &registry, &job);
}

#[test]
fn ci_registry_variables_and_the_job_token_are_enough_without_credentials() {
    require_podman!();
    let mut env = TestEnv::new(&PogoConfig::default());
    let Some((mut job, registry)) = job_with_its_image_in_its_gitlab_registry(&env) else {
        return;
    };
    job.variables
        .push(pogo::driver::Variable::new("CI_REGISTRY", registry.host()));
    job.variables.push(pogo::driver::Variable::new(
        "CI_REGISTRY_USER",
        "gitlab-ci-token",
    ));
    pull_with_the_job_token(&mut env, &registry, &job);
}

#[test]
fn docker_auth_config_of_the_job_logs_in_to_a_private_registry() {
    require_podman!();
    let Some(mut registry) = Registry::start() else {
        return;
    };
    let mut env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(&[], &["echo from-the-registry"]);
    let remote = registry.push(IMG_BUSYBOX, "pogo/private-busybox", &format!("t{}", job.id));
    // the job's image is busybox (no bash): use the registry image as a service instead and
    // keep the job image local; the pull of the service needs the credentials
    let auth = {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        registry.write_auth_file(&f);
        std::fs::read_to_string(&f).unwrap()
    };
    let secret = auth
        .split("\"auth\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    job.variables
        .push(pogo::driver::Variable::masked("DOCKER_AUTH_CONFIG", auth));
    job.services = vec![Service {
        name: remote.clone(),
        alias: "busy".into(),
        entrypoint: None,
        command: Some(vec!["sleep".into(), "300".into()]),
        variables: BTreeMap::new(),
        docker: Default::default(),
    }];
    env.use_plain_http_registry(&registry);
    let watch = CmdlineWatch::start(vec![secret.clone(), REGISTRY_PASS.to_string()]);
    let r = env.run(&job);
    let (_, seen) = watch.stop();
    assert_success(&r);
    assert!(seen.is_empty(), "credentials on a command line: {seen:?}");
    let log = plain_log(&r);
    assert!(
        log.contains(&format!(
            "registry credentials for this job: {} (the job's DOCKER_AUTH_CONFIG)",
            registry.host()
        )),
        "{log}"
    );
    assert!(env.podman.image_exists(&remote));
    assert!(files_containing(&env.working_dir, &[secret]).is_empty());
    env.assert_no_leftovers();
}

#[test]
fn the_runners_auth_file_wins_over_the_jobs_gitlab_credentials() {
    require_podman!();
    let Some(mut registry) = Registry::start() else {
        return;
    };
    let env = TestEnv::logged_in_to(&registry);
    let mut job = env.job(&[], &["echo merged-ok"]);
    let remote = registry.push(IMG_BASH, "pogo/private-bash", &format!("t{}", job.id));
    job.image = Some(Image::new(&remote));
    // GitLab's credentials for the same registry are wrong here: the runner's own login
    // comes first, as ~/.docker/config.json does for the Docker executor
    job.description_patch = Some(json!({"credentials": [
        {"type": "registry", "url": registry.host(), "username": "gitlab-ci-token", "password": job.token},
        {"type": "registry", "url": "registry.other.example", "username": "gitlab-ci-token", "password": job.token},
    ]}));
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nmerged-ok\n"), "{log}");
    assert!(
        log.contains(
            "registry credentials for this job: registry.other.example (the job's GitLab registry credentials (job token)), merged with auth_file"
        ),
        "{log}"
    );
    env.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------
// shell: sh
// ---------------------------------------------------------------------------------------

#[test]
fn a_job_image_without_bash_runs_with_shell_sh_on_both_stage_paths() {
    require_podman!();
    for runner in ["agent", "exec"] {
        let env = env_on(runner, PogoConfig::default().with_extra_yaml("shell: sh\n"));
        let mut job = env.job(
            &[],
            &["test ! -e /bin/bash", "echo \"busybox-$((2+2)) in $0\""],
        );
        job.image = Some(Image::new(IMG_BUSYBOX));
        job.after_script = vec!["echo \"after=$CI_JOB_STATUS\"".into()];
        let r = run_checked(&env, &job);
        assert_success(&r);
        let cfg = r.config_output.as_ref().unwrap();
        assert_eq!(cfg["shell"], "sh", "config_exec reports the shell: {cfg}");
        let log = plain_log(&r);
        // the Docker executor's pick: no bash in the image, so its /bin/sh
        assert!(log.contains("\nbusybox-4 in /bin/sh\n"), "{runner}: {log}");
        assert!(log.contains("\nafter=success\n"), "{runner}: {log}");

        // a canceled stage stops as quickly as with bash
        let mut job = env.job(&[], &["echo started-$((1+1)); sleep 300"]);
        job.image = Some(Image::new(IMG_BUSYBOX));
        let cancel = pogo::driver::CancelWhenLogShows("started-2".into());
        let r = env.run_with(&env.driver(), &job, Some(cancel));
        assert_eq!(r.outcome, Outcome::Canceled, "{runner}: {}", r.log);
        let kill = r.kill_report("build_script").expect("signalled");
        assert!(
            kill.exited_after_sigterm
                .is_some_and(|d| d < std::time::Duration::from_secs(10)),
            "{runner}: {kill:?}"
        );
        env.assert_no_leftovers();
    }
}

/// The Docker executor never runs a fixed shell: with the default `bash` an alpine or busybox
/// image runs the scripts with its sh (pogo used to fail such jobs with "no bash").
#[test]
fn with_the_default_shell_a_busybox_image_runs_with_its_sh_on_both_stage_paths() {
    require_podman!();
    for runner in ["agent", "exec"] {
        let env = env_on(runner, PogoConfig::default());
        let mut job = env.job(&[], &["echo \"default-shell-$((3+3)) in $0\""]);
        job.image = Some(Image::new(IMG_BUSYBOX));
        job.after_script = vec!["echo \"after=$CI_JOB_STATUS\"".into()];
        let r = run_checked(&env, &job);
        assert_success(&r);
        assert_eq!(r.config_output.as_ref().unwrap()["shell"], "bash");
        let log = plain_log(&r);
        assert!(
            log.contains("\ndefault-shell-6 in /bin/sh\n"),
            "{runner}: {log}"
        );
        assert!(log.contains("\nafter=success\n"), "{runner}: {log}");
        env.assert_no_leftovers();
    }
}

/// And a Debian image runs under bash even with `shell: sh`: gitlab-runner writes `$'…'`
/// quoting for sh too, which Debian's /bin/sh (dash) cannot run (every predefined stage in a
/// Debian helper failed with `sh: 1: eval: Running on …: not found`).
#[test]
fn with_shell_sh_a_debian_helper_clones_for_a_busybox_job_on_both_stage_paths() {
    require_helper!();
    let dir = tempfile::tempdir().unwrap();
    let (repo, sha) = bare_repo(dir.path(), &[("hello.txt", "hello-from-the-repo\n")]);
    for runner in ["agent", "exec"] {
        let env = env_on(runner, helper_config(&repo).with_extra_yaml("shell: sh\n"));
        let mut job = git_job(
            &env,
            &sha,
            "clone",
            &["cat hello.txt", "echo \"job in $0\""],
        );
        job.image = Some(Image::new(IMG_BUSYBOX));
        let r = run_checked(&env, &job);
        assert_success(&r);
        assert_eq!(r.config_output.as_ref().unwrap()["shell"], "sh");
        let log = plain_log(&r);
        assert!(log.contains("\nhello-from-the-repo\n"), "{runner}: {log}");
        assert!(log.contains("\njob in /bin/sh\n"), "{runner}: {log}");
        env.assert_no_leftovers();
    }
}

// ---------------------------------------------------------------------------------------
// helper_image: the predefined stages in a helper container
// ---------------------------------------------------------------------------------------

#[test]
fn a_job_image_without_git_clones_through_the_helper_and_runs_its_script() {
    require_helper!();
    let dir = tempfile::tempdir().unwrap();
    let (repo, sha) = bare_repo(dir.path(), &[("hello.txt", "hello-from-the-repo\n")]);
    for runner in ["agent", "exec"] {
        let env = env_on(runner, helper_config(&repo));
        let job = git_job(
            &env,
            &sha,
            "clone",
            &[
                "cat hello.txt",
                "if command -v git; then exit 9; fi",
                "test ! -e /usr/local/bin/gitlab-runner",
                "echo \"no-git-here in $PWD\"",
            ],
        );
        let r = run_checked(&env, &job);
        assert_success(&r);
        let log = plain_log(&r);
        assert!(log.contains("Created fresh repository."), "{runner}: {log}");
        assert!(
            log.contains(&format!("Checking out {} as detached HEAD", &sha[..8])),
            "{runner}: {log}"
        );
        assert!(log.contains("\nhello-from-the-repo\n"), "{runner}: {log}");
        assert!(
            log.contains(&format!("\nno-git-here in /builds/{}\n", job.project_path)),
            "{runner}: {log}"
        );
        assert!(log.contains("starting helper container"), "{runner}: {log}");
    }
}

#[test]
fn the_helper_container_joins_the_jobs_pod_when_it_has_services() {
    require_helper!();
    let dir = tempfile::tempdir().unwrap();
    let (repo, sha) = bare_repo(dir.path(), &[("page.txt", "from-git\n")]);
    let env = TestEnv::new(&helper_config(&repo));
    let mut job = git_job(
        &env,
        &sha,
        "fetch",
        &["cat page.txt", "wget -qO- http://web:80/; echo"],
    );
    job.services = vec![httpd_service("web")];
    // a fetch keeps its builds volume: this test's own runner, and gc removes it below
    let (driver, runner) = own_runner(&env);
    let r = env.run_with(&driver, &job, None);
    env.assert_no_leftovers();
    remove_kept_volumes(&env, &runner);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nfrom-git\n"), "{log}");
    assert!(log.contains("\npogo-service-ok\n"), "{log}");
    assert!(log.contains(&format!("--name pogo-{runner}-")), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("pogo: starting helper container") && l.contains("--pod")),
        "{log}"
    );
}

#[test]
fn a_cache_round_trip_works_with_a_job_image_without_gitlab_runner() {
    require_helper!();
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = bare_repo(dir.path(), &[("x", "x")]);
    let env = TestEnv::new(&helper_config(&repo)); // no runner_binary: the helper has its own
    let first = job_caching_a_marker(&env, &["test ! -e /usr/local/bin/gitlab-runner"]);
    let r1 = run_checked(&env, &first);
    assert_success(&r1);
    let log1 = plain_log(&r1);
    assert!(log1.contains("Created cache"), "{log1}");
    assert!(!log1.contains("Missing gitlab-runner"), "{log1}");

    let r2 = run_checked(&env, &job_reading_the_cached_marker(&env, &first));
    assert_read_the_marker_cached_by(&r2, &first);
}

#[test]
fn a_job_image_with_a_non_root_user_can_write_in_the_clone_the_helper_made() {
    require_helper!();
    let dir = tempfile::tempdir().unwrap();
    let (repo, sha) = bare_repo(dir.path(), &[("hello.txt", "hello\n")]);
    let env = TestEnv::new(&helper_config(&repo));
    // the helper clones as root; as with the Docker executor (umask 0000 in the helper), the
    // job's own user can change the sources
    let mut job = git_job(
        &env,
        &sha,
        "clone",
        &[
            "echo \"uid=$(id -u)\"",
            "echo more >> hello.txt && mkdir made && touch made/file && echo wrote-in-clone",
        ],
    );
    job.image = Some(Image::new(non_root_image()));
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nuid=1000\n"), "{log}");
    assert!(log.contains("\nwrote-in-clone\n"), "{log}");
    env.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------
// persistent_builds_days: GIT_STRATEGY fetch finds the last clone
// ---------------------------------------------------------------------------------------

/// A driver whose runner token is its own (`kept…`, which the suite's leftover check knows):
/// `pogo gc --runner` then touches this test's kept builds volumes alone.
fn own_runner(env: &TestEnv) -> (pogo::driver::Driver, String) {
    let mut driver = env.driver();
    let runner = format!("kept{}", unique_id());
    driver.runner_short_token = runner.clone();
    (driver, runner)
}

/// Removes `runner`'s kept builds volumes the way a user would, `pogo gc` finding them by label.
fn remove_kept_volumes(env: &TestEnv, runner: &str) {
    let out = pogo_gc(env, &["--runner", runner, "--older-than", "0s"]);
    assert!(out.status.success(), "{out:?}");
    assert!(builds_volumes_of(env, runner).is_empty());
}

/// A repository, a runner with the helper image (and `extra` config) of its own, and the
/// first job of a project, which fetched and left `.git/pogo-marker` in its clone.
struct FirstFetch {
    _dir: tempfile::TempDir,
    env: TestEnv,
    driver: pogo::driver::Driver,
    runner: String,
    sha: String,
    first: Job,
    first_log: String,
}

impl FirstFetch {
    fn run(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (repo, sha) = bare_repo(dir.path(), &[("hello.txt", "hello\n")]);
        let env = TestEnv::new(&helper_config(&repo).with_extra_yaml(extra));
        let (driver, runner) = own_runner(&env);
        let first = git_job(&env, &sha, "fetch", &["touch .git/pogo-marker"]);
        let r = env.run_with(&driver, &first, None);
        assert_success(&r);
        FirstFetch {
            _dir: dir,
            env,
            driver,
            runner,
            sha,
            first,
            first_log: plain_log(&r),
        }
    }

    /// A job of the first job's project with `strategy` that runs `script`.
    fn next(&self, strategy: &str, script: &[&str]) -> Job {
        let mut job = git_job(&self.env, &self.sha, strategy, script);
        job.project_path.clone_from(&self.first.project_path);
        job
    }
}

#[test]
fn by_default_a_fetch_finds_its_projects_last_clone_while_clone_and_none_start_afresh() {
    require_helper!();
    let t = FirstFetch::run(""); // persistent_builds_days not set
    let (env, driver, runner) = (&t.env, &t.driver, &t.runner);
    let log = &t.first_log;
    assert!(log.contains("Created fresh repository."), "{log}");
    assert!(
        log.contains("created the builds volume pogo-builds-")
            && log.contains("persistent_builds_days; 0 turns it off"),
        "the log says how to turn it off: {log}"
    );

    // fetch: the same clone, with what the first job left inside .git/ (git clean keeps it)
    let kept = &["test -e .git/pogo-marker && echo marker-kept"];
    let r = env.run_with(driver, &t.next("fetch", kept), None);
    assert_success(&r);
    assert_fetch_reused_the_clone(&plain_log(&r));

    // clone and none: a fresh directory, as the Docker executor gives them, and the kept
    // clone stays as it was
    let clone = t.next(
        "clone",
        &["test ! -e .git/pogo-marker && echo clone-is-fresh"],
    );
    let none = t.next("none", &["test ! -e .git && echo none-is-empty"]);
    for (job, says) in [(&clone, "\nclone-is-fresh\n"), (&none, "\nnone-is-empty\n")] {
        let r = env.run_with(driver, job, None);
        assert_success(&r);
        let log = plain_log(&r);
        assert!(log.contains(says), "{log}");
        assert!(!log.contains("builds volume pogo-builds-"), "{log}");
    }
    let r = env.run_with(driver, &t.next("fetch", kept), None);
    assert_success(&r);
    assert_fetch_reused_the_clone(&plain_log(&r));
    env.assert_no_leftovers();

    // cleanup keeps the volume; gc removes it, found by its label, once unused for 7 days
    let volumes = builds_volumes_of(env, runner);
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let out = pogo_gc(env, &["--runner", runner]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        builds_volumes_of(env, runner),
        volumes,
        "7 days are not over"
    );
    let stamp = env.working_dir.join("builds-volumes").join(&volumes[0]);
    let aged = std::process::Command::new("touch")
        .args(["-d", "8 days ago"])
        .arg(&stamp)
        .status()
        .unwrap();
    assert!(aged.success() && stamp.exists(), "{}", stamp.display());
    let out = pogo_gc(env, &["--runner", runner]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "removed builds volume {} (unused for 8days",
            volumes[0]
        )),
        "{out:?}"
    );
    assert!(builds_volumes_of(env, runner).is_empty());
}

/// podman hands a non-root job's builds volume to its user (`:U`, all of it): in the kept
/// clone, git as root (the helper, the next job) would then refuse to fetch ("detected dubious
/// ownership"). So a non-root job gets a builds volume of its own, and the kept clone stays
/// the other jobs'.
#[test]
fn a_non_root_job_fetches_into_a_fresh_builds_dir_and_the_kept_clone_stays_usable() {
    require_helper!();
    let t = FirstFetch::run("");
    let mut non_root = t.next(
        "fetch",
        &[
            "echo \"uid=$(id -u)\"",
            "test ! -e .git/pogo-marker && echo fresh",
            "echo more >> hello.txt && touch made && echo wrote-in-clone",
        ],
    );
    non_root.image = Some(Image::new(non_root_image()));
    let r = t.env.run_with(&t.driver, &non_root, None);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nuid=1000\n"), "{log}");
    assert!(log.contains("\nfresh\n"), "{log}");
    assert!(log.contains("\nwrote-in-clone\n"), "{log}");
    assert!(!log.contains("builds volume pogo-builds-"), "{log}");

    let again = t.next("fetch", &["test -e .git/pogo-marker && echo marker-kept"]);
    let r = t.env.run_with(&t.driver, &again, None);
    assert_success(&r);
    assert_fetch_reused_the_clone(&plain_log(&r));
    t.env.assert_no_leftovers();
    remove_kept_volumes(&t.env, &t.runner);
}

#[test]
fn projects_and_slots_never_share_a_kept_builds_volume() {
    require_helper!();
    let t = FirstFetch::run("");
    let fresh = &["test ! -e .git/pogo-marker && echo own-clone"];
    // another project, same slot
    let other_project = git_job(&t.env, &t.sha, "fetch", fresh);
    // the same project, another slot (CI_CONCURRENT_PROJECT_ID)
    let other_slot = t.next("fetch", fresh);
    let mut slot_1 = t.driver.clone();
    slot_1.concurrent_id = 1;
    for (job, driver) in [(&other_project, &t.driver), (&other_slot, &slot_1)] {
        let r = t.env.run_with(driver, job, None);
        assert_success(&r);
        let log = plain_log(&r);
        assert!(log.contains("Created fresh repository."), "{log}");
        assert!(log.contains("\nown-clone\n"), "{log}");
        assert!(log.contains("created the builds volume"), "{log}");
    }
    t.env.assert_no_leftovers();
    assert_eq!(builds_volumes_of(&t.env, &t.runner).len(), 3);
    remove_kept_volumes(&t.env, &t.runner);
}

#[test]
fn with_persistent_builds_days_0_every_fetch_clones_afresh_and_nothing_is_kept() {
    require_helper!();
    let t = FirstFetch::run("persistent_builds_days: 0\n");
    let second = t.next("fetch", &["test ! -e .git/pogo-marker && echo fresh"]);
    let r = t.env.run_with(&t.driver, &second, None);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("Created fresh repository."), "{log}");
    assert!(log.contains("\nfresh\n"), "{log}");
    t.env.assert_no_leftovers();
    assert!(builds_volumes_of(&t.env, &t.runner).is_empty());
}

/// A repository with `commits` commits on `main`, each adding a 1 KiB file (git fast-import).
fn big_repo(parent: &std::path::Path, commits: usize) -> (std::path::PathBuf, String) {
    let bare = parent.join("big.git");
    let out = std::process::Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut stream = String::new();
    for i in 1..=commits {
        let body = format!("{i}\n").repeat(1024 / (i.to_string().len() + 1));
        let message = format!("commit {i}");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter pogo <pogo@example.invalid> {} +0000\ndata {}\n{message}\nM 644 inline f/{i}.txt\ndata {}\n{body}\n",
            1_700_000_000 + i,
            message.len(),
            body.len()
        ));
    }
    let mut fast_import = std::process::Command::new("git");
    fast_import
        .arg("-C")
        .arg(&bare)
        .args(["fast-import", "--quiet"]);
    assert!(run_with_stdin(&mut fast_import, stream.as_bytes()).success());
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&bare)
        .args(["rev-parse", "main"])
        .output()
        .unwrap();
    (
        bare,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// The figures in docs/performance.md: `cargo test --test suite parity::measure -- --ignored --nocapture`.
/// A job that fetches, round after round in the same project and slot: with
/// `persistent_builds_days: 0` (a fresh builds volume per job: a whole clone each time) and
/// with the default (the kept volume: a fetch into the last clone), interleaved.
#[test]
#[ignore = "a measurement for docs/performance.md, not a check"]
fn measure_a_fetch_job_with_and_without_the_kept_builds_volume_on_a_2000_commit_repository() {
    require_helper!();
    let dir = tempfile::tempdir().unwrap();
    let (repo, sha) = big_repo(dir.path(), 2000);
    let fresh = TestEnv::new(&helper_config(&repo).with_extra_yaml("persistent_builds_days: 0\n"));
    let kept = TestEnv::new(&helper_config(&repo));
    let runner = format!("kept{}", unique_id());
    let ms = |r: &JobResult, phase: &str| {
        r.phase_times
            .iter()
            .filter(|(n, _)| phase == "job" || n == phase)
            .map(|(_, d)| d.as_secs_f64() * 1000.0)
            .sum::<f64>()
    };
    let mut rows: Vec<(&str, &str, [f64; 3])> = Vec::new();
    for depth in ["0", "20"] {
        let mut project = None;
        for round in 0..6 {
            for (what, env) in [
                ("persistent_builds_days: 0", &fresh),
                ("kept (default)", &kept),
            ] {
                let mut driver = env.driver();
                driver.runner_short_token = runner.clone();
                let mut job = git_job(env, &sha, "fetch", &["true"]);
                job.variables
                    .push(pogo::driver::Variable::new("GIT_DEPTH", depth));
                job.project_path
                    .clone_from(project.get_or_insert_with(|| job.project_path.clone()));
                let r = env.run_with(&driver, &job, None);
                assert_success(&r);
                // round 0 makes the kept clone
                if round > 0 {
                    rows.push((
                        depth,
                        what,
                        [ms(&r, "prepare"), ms(&r, "get_sources"), ms(&r, "job")],
                    ));
                }
            }
        }
    }
    for depth in ["0", "20"] {
        for what in ["persistent_builds_days: 0", "kept (default)"] {
            let median = |k: usize| {
                let mut v: Vec<f64> = rows
                    .iter()
                    .filter(|(d, w, _)| *d == depth && *w == what)
                    .map(|(_, _, t)| t[k])
                    .collect();
                v.sort_by(f64::total_cmp);
                (v[v.len() / 2], v[0], v[v.len() - 1])
            };
            let [p, g, j] = [median(0), median(1), median(2)];
            eprintln!(
                "MEASURE GIT_DEPTH={depth:<2} {what:<26} prepare {:.0} ms ({:.0}–{:.0}), \
                 get_sources {:.0} ms ({:.0}–{:.0}), all phases {:.0} ms ({:.0}–{:.0})",
                p.0, p.1, p.2, g.0, g.1, g.2, j.0, j.1, j.2
            );
        }
    }
    remove_kept_volumes(&kept, &runner);
    fresh.assert_no_leftovers();
    kept.assert_no_leftovers();
}

/// `image: docker: user`: the job runs as that user, as the Docker executor runs it, and can
/// still write its builds directory (podman hands it over, as for an image's own USER).
#[test]
fn image_docker_user_runs_the_job_as_that_user() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let mut job = env.job(
        &[],
        &[
            "echo \"uid=$(id -u) gid=$(id -g)\"",
            "touch made-here && echo wrote",
        ],
    );
    job.image = Some(Image {
        docker: pogo::driver::DockerOptions {
            user: Some("1234:2345".into()),
            platform: None,
        },
        ..Image::new(IMG_BASH)
    });
    let r = env.run(&job);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nuid=1234 gid=2345\n"), "{log}");
    assert!(log.contains("\nwrote\n"), "{log}");
    assert!(log.contains("--user=1234:2345"), "{log}");
    env.assert_no_leftovers();
}

/// `image: docker: platform`: the local image serves when it is for that platform; one for
/// another platform is not taken for it, and the message names the platform.
#[test]
fn image_docker_platform_picks_the_image_for_that_platform() {
    require_podman!();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let env = TestEnv::new(&PogoConfig {
        pull_policy: Some("never".into()),
        ..PogoConfig::default()
    });
    let mut job = env.job(&[], &["echo on-my-platform"]);
    job.image = Some(Image {
        docker: pogo::driver::DockerOptions {
            platform: Some(arch.into()),
            user: None,
        },
        ..Image::new(IMG_BASH)
    });
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\non-my-platform\n"));

    let other = if arch == "s390x" { "ppc64le" } else { "s390x" };
    let mut job = env.job(&[], &["echo never-runs"]);
    job.image = Some(Image {
        docker: pogo::driver::DockerOptions {
            platform: Some(other.into()),
            user: None,
        },
        ..Image::new(IMG_BASH)
    });
    let r = env.run(&job);
    let message = assert_system_failure(&r);
    let log = plain_log(&r);
    assert!(
        log.contains(&format!(
            "image {IMG_BASH} for linux/{other} is not in podman's local storage"
        )),
        "{message}\n{log}"
    );
    // a value that is not a platform is the job's mistake, and never an option
    let mut job = env.job(&[], &["echo never-runs"]);
    job.image = Some(Image {
        docker: pogo::driver::DockerOptions {
            platform: Some("--privileged".into()),
            user: None,
        },
        ..Image::new(IMG_BASH)
    });
    let r = env.run(&job);
    assert_build_failure(&r, 1);
    assert!(plain_log(&r).contains("is not OS[/ARCH[/VARIANT]]"));
    env.assert_no_leftovers();
}
