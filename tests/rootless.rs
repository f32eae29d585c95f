//! pogo in its primary mode: gitlab-runner (here: the driver, as root)
//! runs the executor phases as an unprivileged user with rootless Podman.
//! The user is described by `/etc/pogo-test-rootless.env`, written by
//! `scripts/setup-test-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;

/// chown -R
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

#[test]
fn trivial_job_runs_as_unprivileged_user_with_rootless_podman() {
    require_podman!();
    let Some(user) = rootless_user(false) else {
        return;
    };
    let podman = user.podman();
    let check = podman.output(&["info", "--format", "{{.Host.Security.Rootless}}"]);
    assert!(
        check.status.success(),
        "rootless podman does not work for {}: {}",
        user.user,
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "true");
    assert!(
        podman.image_exists(IMG_BASH),
        "{IMG_BASH} missing in {}'s storage (scripts/setup-test-env.sh builds it)",
        user.user
    );

    let mut env = TestEnv::new_in(&PogoConfig::default(), Some(Path::new("/tmp")));
    // The checkout may live where the test user cannot read (CI clones under /root): give the
    // user its own copy of the binary next to its config.
    let pogo_copy = env.dir.path().join("pogo");
    std::fs::copy(env!("CARGO_BIN_EXE_pogo"), &pogo_copy).unwrap();
    chown_tree(env.dir.path(), user.uid, user.gid);
    env.podman = podman.clone();

    let mut driver = env.driver();
    driver.pogo = pogo_copy;
    driver.run_as = Some((user.uid, user.gid));
    driver.env = user.env();

    let job = env.job(
        &["build"],
        &[
            "echo rootless-$((40+2))",
            // container root is the test user on the host: rootless Podman
            "read -r inside outside count < /proc/self/uid_map; echo \"uid-map=$inside:$outside\"",
        ],
    );
    let r = env.run_with(&driver, &job, None);
    assert_success(&r);
    let log = plain_log(&r);
    assert!(log.contains("\nrootless-42\n"), "{log}");
    assert!(
        log.contains(&format!("\nuid-map=0:{}\n", user.uid)),
        "the job container is not running in {}'s rootless Podman:\n{log}",
        user.user
    );
    assert_eq!(env.gitlab.requests(&job.token), 1);
    for d in &r.temp_dirs {
        assert!(!d.exists(), "{} not removed", d.display());
    }
    env.assert_no_leftovers();
    podman.assert_nothing_labelled(&format!("{LABEL_MANAGED_BY}=pogo"));
}
