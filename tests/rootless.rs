//! pogo in its primary mode: gitlab-runner (here: the driver, as root)
//! runs the executor phases as an unprivileged user with rootless Podman.
//! The user is described by `/etc/pogo-test-rootless.env`, written by
//! `scripts/setup-test-env.sh`.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use crate::common::*;
use pogo::driver::Driver;

/// chown -R
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// The tests share the user's storage, and each checks that nothing of pogo's is left in
/// it: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A test environment whose jobs the driver (root) runs as the rootless user, like
/// gitlab-runner as a system service with `user = ...`.
struct Rootless {
    user: RootlessUser,
    env: TestEnv,
    driver: Driver,
    /// A runner token of this test alone (see [`Rootless::own_runner`]).
    own_runner: Option<String>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Rootless {
    /// Checks that `user`'s rootless Podman works, then makes the env: `setup` gets its
    /// directory, puts there what the jobs need and returns the config; then the directory
    /// (config, working and cache dirs, a copy of pogo) belongs to the user.
    fn new(user: RootlessUser, setup: impl FnOnce(&Path) -> PogoConfig) -> Self {
        let one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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
        env.write_config(&setup(env.dir.path()));
        // The checkout may live where the test user cannot read (CI clones under /root): give
        // the user its own copy of the binary next to its config.
        let pogo_copy = env.dir.path().join("pogo");
        std::fs::copy(env!("CARGO_BIN_EXE_pogo"), &pogo_copy).unwrap();
        chown_tree(env.dir.path(), user.uid, user.gid);
        env.podman = podman;

        let mut driver = env.driver();
        driver.pogo = pogo_copy;
        driver.run_as = Some((user.uid, user.gid));
        driver.env = user.env();
        Rootless {
            user,
            env,
            driver,
            own_runner: None,
            _one_at_a_time: one_at_a_time,
        }
    }

    /// Gives the driver a runner token no other test uses (for what pogo keeps per runner),
    /// and returns it.
    fn own_runner(&mut self) -> String {
        let runner = format!("pogorl{}", unique_id());
        self.driver.runner_short_token.clone_from(&runner);
        self.own_runner = Some(runner.clone());
        runner
    }

    fn run(&self, job: &pogo::driver::Job) -> pogo::driver::JobResult {
        self.env.run_with(&self.driver, job, None)
    }

    /// `pogo ARGS` as the user, with the env's config.
    fn pogo(&self, args: &[&str]) -> Output {
        let mut c = Command::new("runuser");
        c.args(["-u", &self.user.user, "--", "env", "-i"]);
        for (k, v) in self.user.env() {
            c.arg(format!("{k}={v}"));
        }
        c.arg(&self.driver.pogo)
            .arg("--config")
            .arg(&self.env.config_path)
            .args(args)
            .current_dir("/");
        c.output().unwrap()
    }

    /// Nothing of this env's jobs, and nothing pogo labels at all, is left in the user's
    /// storage: no container, pod or volume.
    fn assert_clean(&self) {
        self.env.assert_no_leftovers();
        self.env
            .podman
            .assert_nothing_labelled(&format!("{LABEL_MANAGED_BY}=pogo"));
    }
}

impl Drop for Rootless {
    /// A failed test may leave its own runner's persistent builds or project volume (job
    /// cleanup keeps them by design): remove them, so later tests and runs do not find them;
    /// once the job containers that mount them are gone (cleanup removes them in the
    /// background, and `volume rm` fails while that runs).
    fn drop(&mut self) {
        let Some(runner) = &self.own_runner else {
            return;
        };
        let _ = self.env.removal_still_running();
        // by the labels pogo checks (podman 4.3 gives the volumes with any of two label
        // filters: it would list every runner's)
        for volume in &builds_volumes_of(&self.env, runner) {
            let _ = self.env.podman.output(&["volume", "rm", "-f", volume]);
        }
    }
}

/// The bare repository (`hello.txt`) under `dir`, readable by the user once `dir` is its,
/// and the config that mounts it into the jobs with the helper image: (config, commit).
fn repo_with_helper(dir: &Path) -> (PogoConfig, String) {
    let parent = dir.join("git");
    std::fs::create_dir(&parent).unwrap();
    let (repo, sha) = bare_repo(&parent, &[("hello.txt", "hello-from-the-repo\n")]);
    (helper_config(&repo), sha)
}

/// The rootless env with the default config; `None` (with a message) when the test cannot
/// run here.
fn rootless_with_default_config() -> Option<Rootless> {
    let user = rootless_user(false)?;
    Some(Rootless::new(user, |_| PogoConfig::default()))
}

/// The rootless env whose jobs clone [`repo_with_helper`]'s repository through the helper
/// image, its config passed through `adjust`: (env, commit). `None` (with a message) when the
/// test cannot run here.
fn rootless_with_helper_repo(
    adjust: impl FnOnce(PogoConfig) -> PogoConfig,
) -> Option<(Rootless, String)> {
    let user = rootless_user(false)?;
    if !rootless_helper_ready(&user) {
        return None;
    }
    let mut sha = String::new();
    let r = Rootless::new(user, |dir| {
        let (config, commit) = repo_with_helper(dir);
        sha = commit;
        adjust(config)
    });
    Some((r, sha))
}

#[test]
fn trivial_job_runs_as_unprivileged_user_with_rootless_podman() {
    require_podman!();
    let Some(r) = rootless_with_default_config() else {
        return;
    };
    let job = r.env.job(
        &["build"],
        &[
            "echo rootless-$((40+2))",
            // container root is the test user on the host: rootless Podman
            "read -r inside outside count < /proc/self/uid_map; echo \"uid-map=$inside:$outside\"",
        ],
    );
    let result = r.run(&job);
    assert_success(&result);
    let log = plain_log(&result);
    assert!(log.contains("\nrootless-42\n"), "{log}");
    assert!(
        log.contains(&format!("\nuid-map=0:{}\n", r.user.uid)),
        "the job container is not running in {}'s rootless Podman:\n{log}",
        r.user.user
    );
    assert_eq!(r.env.gitlab.requests(&job.token), 1);
    for d in &result.temp_dirs {
        assert!(!d.exists(), "{} not removed", d.display());
    }
    r.assert_clean();
}

#[test]
fn a_job_clones_through_the_helper_container_with_rootless_podman() {
    require_podman!();
    let Some((r, sha)) = rootless_with_helper_repo(|config| config) else {
        return;
    };
    let job = git_job(
        &r.env,
        &sha,
        "clone",
        &[
            "cat hello.txt",
            "if command -v git; then exit 9; fi",
            "echo \"no-git-here in $PWD\"",
        ],
    );
    let result = r.run(&job);
    assert_success(&result);
    let log = plain_log(&result);
    assert!(log.contains("starting helper container"), "{log}");
    assert!(log.contains("Created fresh repository."), "{log}");
    assert!(
        log.contains(&format!("Checking out {} as detached HEAD", &sha[..8])),
        "{log}"
    );
    assert!(log.contains("\nhello-from-the-repo\n"), "{log}");
    assert!(
        log.contains(&format!("\nno-git-here in /builds/{}\n", job.project_path)),
        "{log}"
    );
    r.assert_clean();
}

#[test]
fn by_default_fetch_finds_the_last_clone_in_the_kept_builds_volume_with_rootless_podman() {
    require_podman!();
    // persistent_builds_days not set: kept by default
    let Some((mut r, sha)) = rootless_with_helper_repo(|config| config) else {
        return;
    };
    let runner = r.own_runner();

    let first = git_job(
        &r.env,
        &sha,
        "fetch",
        &["touch .git/pogo-marker", "echo first"],
    );
    let result = r.run(&first);
    assert_success(&result);
    let log = plain_log(&result);
    assert!(log.contains("Created fresh repository."), "{log}");
    assert!(
        log.contains("created the builds volume pogo-builds-"),
        "{log}"
    );

    // fetch: the same clone, with what the first job left inside .git/ (git clean keeps it)
    let mut second = git_job(
        &r.env,
        &sha,
        "fetch",
        &["test -e .git/pogo-marker && echo marker-kept"],
    );
    second.project_path.clone_from(&first.project_path);
    let result = r.run(&second);
    assert_success(&result);
    assert_fetch_reused_the_clone(&plain_log(&result));
    r.env.assert_no_leftovers();

    // the volume is in the user's storage; the user's `pogo gc` removes it
    let volumes = builds_volumes_of(&r.env, &runner);
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let out = r.pogo(&["gc", "--runner", &runner, "--older-than", "0s"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("removed builds volume {}", volumes[0])),
        "{out:?}"
    );
    assert!(builds_volumes_of(&r.env, &runner).is_empty());
    r.assert_clean();
}

#[test]
fn a_job_reaches_its_service_on_localhost_and_by_alias_with_rootless_podman() {
    require_podman!();
    let Some(r) = rootless_with_default_config() else {
        return;
    };
    let result = r.run(&job_calling_its_service(&r.env));
    assert_both_requests_reached_the_service(&result);
    r.assert_clean();
}

#[test]
fn a_job_image_with_a_non_root_user_runs_with_rootless_podman() {
    require_podman!();
    let Some(r) = rootless_with_default_config() else {
        return;
    };
    // the image, in the user's own storage
    let image = non_root_image_in(&r.env.podman);
    let mut job = r.env.job(
        &["build"],
        &["echo \"uid=$(id -u)\"", "touch made-here && echo wrote"],
    );
    job.image = Some(pogo::driver::Image::new(image));
    let result = r.run(&job);
    assert_success(&result);
    let log = plain_log(&result);
    assert!(log.contains("\nuid=1000\n"), "{log}");
    assert!(log.contains("\nwrote\n"), "{log}");
    r.assert_clean();
}

/// The takeover seen with rootless podman: a job of another project that sets
/// `variables: {CI_JOB_ID: <a running job's id>}` made its prepare remove the running job's
/// container and run the rest of its stages in its own. Now each gets its own names.
#[test]
fn a_job_claiming_a_running_jobs_id_cannot_take_it_over_with_rootless_podman() {
    require_podman!();
    let Some(user) = rootless_user(false) else {
        return;
    };
    let r = Rootless::new(user, |dir| {
        std::fs::create_dir(dir.join("shared")).unwrap();
        PogoConfig::mounting(&dir.join("shared"), "/shared")
    });
    let shared = r.env.dir.path().join("shared");
    let mut victim = r.env.job(
        &[],
        &[
            "echo victim-$CI_JOB_ID > /tmp/victim-marker",
            "touch /shared/victim-waiting",
            "for i in $(seq 1200); do test -e /shared/go && break; sleep 0.1; done",
            "test -e /shared/go || { echo never told to go; exit 3; }",
            "cat /tmp/victim-marker",
        ],
    );
    victim.after_script = vec!["sed s/^/after-/ /tmp/victim-marker".into()];
    let mut pretender = r.env.job(
        &[],
        &["test ! -e /tmp/victim-marker && echo pretender-on-its-own"],
    );
    pretender.variables.push(pogo::driver::Variable::new(
        "CI_JOB_ID",
        victim.id.to_string(),
    ));
    let (v, p) = std::thread::scope(|s| {
        let victim_run = s.spawn(|| r.run(&victim));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !shared.join("victim-waiting").exists()
            && std::time::Instant::now() < deadline
            && !victim_run.is_finished()
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let p = r.run(&pretender);
        std::fs::write(shared.join("go"), "").unwrap();
        (victim_run.join().unwrap(), p)
    });
    assert_success(&p);
    assert!(
        plain_log(&p).contains("\npretender-on-its-own\n"),
        "{}",
        p.log
    );
    assert_success(&v);
    let log = plain_log(&v);
    assert!(log.contains(&format!("\nvictim-{}\n", victim.id)), "{log}");
    assert!(
        log.contains(&format!("\nafter-victim-{}\n", victim.id)),
        "{log}"
    );
    r.assert_clean();
}

#[test]
fn a_build_images_job_builds_an_image_and_the_next_job_of_its_project_reuses_the_layer_with_rootless_podman(
) {
    require_podman!();
    let Some(user) = rootless_user(false) else {
        return;
    };
    if !buildah_image_ready(&user.podman(), &user.user) {
        return;
    }
    let config = image_build_config(&user.podman());
    let mut r = Rootless::new(user, |_| config);
    let runner = r.own_runner();

    let first = image_build_job(&r.env, &[BUILD_IMAGES_TAG]);
    let result = r.run(&first);
    assert_built_an_image(&result, false);
    let mut second = image_build_job(&r.env, &[BUILD_IMAGES_TAG]);
    second.project_path.clone_from(&first.project_path);
    assert_built_an_image(&r.run(&second), true);
    r.env.assert_no_leftovers();

    // the volume is in the user's storage; the user's `pogo gc` removes it
    let volumes = project_volumes_of(&r.env, &runner);
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let out = r.pogo(&["gc", "--runner", &runner, "--older-than", "0s"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("removed project volume {}", volumes[0])),
        "{out:?}"
    );
    r.assert_clean();
}
