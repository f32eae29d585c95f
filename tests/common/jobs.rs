//! Jobs, services, caches and repositories the tests run, and what their logs must show.

use super::*;

/// `git -C dir ARGS`'s output (trimmed), with no user or system configuration but a fixed
/// author; a failing git fails the test.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Example Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Example Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare git repository with one commit on `main` holding `files`: (its path, the commit).
pub fn bare_repo(parent: &Path, files: &[(&str, &str)]) -> (PathBuf, String) {
    let bare = parent.join("repo.git");
    let work = parent.join("work");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&work, &["init", "-q", "-b", "main"]);
    for (name, content) in files {
        std::fs::write(work.join(name), content).unwrap();
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    (bare, sha)
}

/// A config with the helper image and the bare repository mounted at `/repos/p.git`.
pub fn helper_config(repo: &Path) -> PogoConfig {
    PogoConfig {
        mounts: vec![MountSpec {
            volume: format!("{}:/repos/p.git", repo.display()),
            tags: vec![],
            readonly: true,
        }],
        extra_yaml: Some(format!("helper_image: {IMG_HELPER}\n")),
        ..PogoConfig::default()
    }
}

/// A job with `GIT_STRATEGY` `strategy` checking out `sha` of the repository
/// [`helper_config`] mounts.
pub fn git_job(env: &TestEnv, sha: &str, strategy: &str, script: &[&str]) -> Job {
    let mut job = env.job(&[], script);
    job.git_strategy = Some(strategy.to_string());
    job.repo_url = Some("file:///repos/p.git".to_string());
    job.sha = sha.to_string();
    job.git_ref = "main".to_string();
    job
}

/// The httpd test image as a service reachable by `alias`, with the image's own command.
pub fn httpd_service(alias: &str) -> Service {
    Service {
        name: IMG_HTTPD.into(),
        alias: alias.into(),
        entrypoint: None,
        command: None,
        variables: BTreeMap::new(),
        docker: Default::default(),
    }
}

/// A job with the httpd service `web` that requests its page on localhost and by the alias;
/// see [`assert_both_requests_reached_the_service`].
pub fn job_calling_its_service(env: &TestEnv) -> Job {
    let mut job = env.job(
        &[],
        &[
            "wget -qO- http://localhost:80/; echo",
            "wget -qO- http://web:80/; echo",
        ],
    );
    job.services = vec![httpd_service("web")];
    job
}

/// Both requests of a [`job_calling_its_service`] got the service's page.
pub fn assert_both_requests_reached_the_service(r: &JobResult) {
    assert_success(r);
    let log = plain_log(r);
    assert_eq!(
        log.matches("\npogo-service-ok\n").count(),
        2,
        "both requests should reach the service:\n{log}"
    );
}

/// `vendor/` cached under the default key (`<job name>/<ref>`), pulled and pushed.
pub fn vendor_cache() -> Cache {
    Cache {
        key: String::new(),
        paths: vec!["vendor".into()],
        policy: CachePolicy::PullPush,
        ..Cache::default()
    }
}

/// A job that runs `checks`, then leaves `cached-by-<its id>` in `vendor/marker`, which
/// [`vendor_cache`] keeps.
pub fn job_caching_a_marker(env: &TestEnv, checks: &[&str]) -> Job {
    let mut script = checks.to_vec();
    script.extend([
        "mkdir -p vendor",
        "echo cached-by-$CI_JOB_ID > vendor/marker",
    ]);
    let mut job = env.job(&[], &script);
    job.cache = vec![vendor_cache()];
    job
}

/// A job of `first`'s project that prints the marker [`vendor_cache`] brings back, with the
/// cache only pulled.
pub fn job_reading_the_cached_marker(env: &TestEnv, first: &Job) -> Job {
    let mut job = env.job(&[], &["cat vendor/marker"]);
    job.project_path = first.project_path.clone();
    job.cache = vec![Cache {
        policy: CachePolicy::Pull,
        ..vendor_cache()
    }];
    job
}

/// `r`, of a [`job_reading_the_cached_marker`], passed and printed the marker `first` cached.
pub fn assert_read_the_marker_cached_by(r: &JobResult, first: &Job) {
    assert_success(r);
    let log = plain_log(r);
    assert!(log.contains("Successfully extracted cache"), "{log}");
    assert!(
        log.contains(&format!("\ncached-by-{}\n", first.id)),
        "{log}"
    );
}

/// `localhost/pogo-test/WHAT-ID:latest`: an image name no storage or registry has.
pub fn missing_image(what: &str, job: &Job) -> Image {
    Image::new(format!("localhost/pogo-test/{what}-{}:latest", job.id))
}

/// `pogo gc ARGS` with the env's config.
pub fn pogo_gc(env: &TestEnv, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pogo"))
        .arg("--config")
        .arg(&env.config_path)
        .arg("gc")
        .args(args)
        .output()
        .unwrap()
}

/// The persistent builds volumes (`persistent_builds_days`) of `runner` in `env.podman`'s
/// storage. Their labels are checked here: podman 4.3 gives the volumes with *any* of two
/// `--filter label=…`.
pub fn builds_volumes_of(env: &TestEnv, runner: &str) -> Vec<String> {
    let volumes = env.podman.json_list(&[
        "volume",
        "ls",
        "--filter",
        &format!("label=io.pogo.runner={runner}"),
    ]);
    volumes
        .iter()
        .filter(|v| {
            let labels = &v["Labels"];
            labels["io.pogo.runner"] == runner && labels.get("io.pogo.builds-volume").is_some()
        })
        .filter_map(|v| v["Name"].as_str().map(str::to_string))
        .collect()
}

/// The log of a `GIT_STRATEGY: fetch` job that found the last job's clone (and the marker file
/// it left in `.git/`) in the persistent builds volume.
pub fn assert_fetch_reused_the_clone(log: &str) {
    assert!(log.contains("\nmarker-kept\n"), "{log}");
    assert!(
        log.contains("Reinitialized existing Git repository"),
        "{log}"
    );
    assert!(!log.contains("Created fresh repository."), "{log}");
    assert!(
        log.contains("reusing the builds volume pogo-builds-"),
        "{log}"
    );
}
