//! Secrets (variable values, the job token) never reach a command line or a file pogo writes.

use crate::common::*;
use pogo::driver::Variable;
use std::process::Command;

#[test]
fn variable_values_and_the_job_token_never_appear_on_a_command_line_or_in_pogos_files() {
    require_podman!();
    let state_dir = tempfile::tempdir().unwrap();
    let mut env = TestEnv::new(&PogoConfig::default());
    env.use_state_dir(state_dir.path());
    let id = unique_id();
    let masked = format!("masked-marker-{id}-9f8e7d");
    let plain = format!("plain-marker-{id}-1a2b3c");
    let service_secret = format!("service-marker-{id}-5d6e");
    let mut job = env.job(
        &[],
        &[
            "test \"$MASKED_SECRET\" = \"$EXPECTED_MASKED\" || exit 7",
            "test -n \"$PLAIN_SECRET\" || exit 8",
            "sleep 2",
            "echo checked",
        ],
    );
    let token = job.token.clone();
    job.variables
        .push(Variable::masked("MASKED_SECRET", masked.clone()));
    job.variables
        .push(Variable::new("PLAIN_SECRET", plain.clone()));
    job.variables
        .push(Variable::new("EXPECTED_MASKED", masked.clone()));
    let mut service = httpd_service("web");
    service
        .variables
        .insert("SERVICE_PASSWORD".to_string(), service_secret.clone());
    job.services = vec![service];
    let markers = vec![
        masked.clone(),
        plain.clone(),
        service_secret.clone(),
        token.clone(),
    ];

    // watch every process's command line while the job runs
    let watch = CmdlineWatch::start(markers.clone());
    let r = env.run(&job);
    let (scans, seen) = watch.stop();
    assert_success(&r);
    assert!(plain_log(&r).contains("\nchecked\n"), "{}", r.log);
    assert!(scans > 20, "the scanner ran only {scans} times");
    assert!(seen.is_empty(), "secrets on command lines: {seen:?}");

    // nothing pogo wrote holds a secret
    let hits: Vec<String> = [
        env.working_dir.as_path(),
        env.cache_dir.as_path(),
        state_dir.path(),
    ]
    .iter()
    .flat_map(|d| files_containing(d, &markers))
    .collect();
    assert!(hits.is_empty(), "{hits:?}");
    env.assert_no_leftovers();
}

#[test]
fn the_command_line_watch_sees_host_and_container_processes_and_on_host_only_the_hosts() {
    require_podman!();
    let id = unique_id();
    let (on_host, in_container) = (format!("host-marker-{id}"), format!("ctr-marker-{id}"));
    let markers = vec![on_host.clone(), in_container.clone()];
    let (all, host) = (
        CmdlineWatch::start(markers.clone()),
        CmdlineWatch::on_host(markers),
    );
    let host_sh = Command::new("sh")
        .args(["-c", "sleep 1; :", &on_host])
        .status()
        .unwrap();
    // the marker reaches the container through podman's environment, so only the container's
    // own `sh` holds it on its command line
    let ctr = PodmanCmd::default()
        .command(&[
            "run",
            "--rm",
            "--env=MARKER",
            IMG_BUSYBOX,
            "sh",
            "-c",
            r#"exec sh -c 'sleep 1; :' "$MARKER""#,
        ])
        .env("MARKER", &in_container)
        .status()
        .unwrap();
    let ((_, all), (_, host)) = (all.stop(), host.stop());
    assert!(host_sh.success() && ctr.success());
    let saw = |seen: &[String], m: &str| seen.iter().any(|c| c.contains(m));
    assert!(saw(&all, &on_host) && saw(&all, &in_container), "{all:?}");
    assert!(saw(&host, &on_host), "{host:?}");
    assert!(!saw(&host, &in_container), "{host:?}");
}
