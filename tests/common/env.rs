//! [`TestEnv`]: a temp dir, the fake GitLab, a pogo config and a driver set up like a
//! gitlab-runner — everything one test needs.

use super::*;

/// Everything one test needs.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub gitlab: FakeGitlab,
    pub config_path: PathBuf,
    pub working_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub tmp_root: PathBuf,
    /// Extra entries for the runner environment (e.g. CONTAINERS_REGISTRIES_CONF).
    pub extra_env: Vec<(String, String)>,
    /// Jobs run through [`TestEnv::run`], for the leftover check on drop.
    jobs: Mutex<Vec<(u64, Option<String>)>>,
    /// Podman invocation for leftover checks (e.g. as the rootless user).
    pub podman: PodmanCmd,
}

impl TestEnv {
    pub fn new(config: &PogoConfig) -> Self {
        Self::new_in(config, None)
    }

    /// Like `new`, with the temp dir under `parent`.
    pub fn new_in(config: &PogoConfig, parent: Option<&Path>) -> Self {
        let dir = match parent {
            Some(p) => tempfile::Builder::new().prefix("pogo-test").tempdir_in(p),
            None => tempfile::Builder::new().prefix("pogo-test").tempdir(),
        }
        .expect("temp dir");
        let working_dir = dir.path().join("work");
        let cache_dir = dir.path().join("cache");
        let tmp_root = dir.path().join("tmp");
        for d in [&working_dir, &cache_dir, &tmp_root] {
            std::fs::create_dir_all(d).unwrap();
        }
        let config_path = dir.path().join("pogo.yaml");
        std::fs::write(&config_path, config.to_yaml(&working_dir, &cache_dir)).unwrap();
        TestEnv {
            dir,
            gitlab: FakeGitlab::start(),
            config_path,
            working_dir,
            cache_dir,
            tmp_root,
            extra_env: Vec::new(),
            jobs: Mutex::new(Vec::new()),
            podman: PodmanCmd::default(),
        }
    }

    /// Rewrites the config file.
    pub fn write_config(&self, config: &PogoConfig) {
        std::fs::write(
            &self.config_path,
            config.to_yaml(&self.working_dir, &self.cache_dir),
        )
        .unwrap();
    }

    /// A TestEnv whose pogo config logs in to `registry` with an `auth_file` (written into
    /// the registry's directory), and whose podman talks plain HTTP to it.
    pub fn logged_in_to(registry: &Registry) -> Self {
        let auth = registry.dir.path().join("auth.json");
        registry.write_auth_file(&auth);
        let mut env = TestEnv::new(&PogoConfig {
            auth_file: Some(auth),
            ..PogoConfig::default()
        });
        env.use_plain_http_registry(registry);
        env
    }

    /// Points the runner's podman at `registry`'s registries.conf
    /// (`CONTAINERS_REGISTRIES_CONF`), which lets it talk plain HTTP to the registry.
    pub fn use_plain_http_registry(&mut self, registry: &Registry) {
        self.extra_env.push((
            "CONTAINERS_REGISTRIES_CONF".into(),
            registry.registries_conf.to_string_lossy().into_owned(),
        ));
    }

    /// Makes pogo keep its job records and log copies in `dir` (`POGO_STATE_DIR`).
    pub fn use_state_dir(&mut self, dir: &Path) {
        self.extra_env
            .push(("POGO_STATE_DIR".into(), dir.display().to_string()));
    }

    /// A driver set up like a gitlab-runner whose config.toml points at pogo.
    pub fn driver(&self) -> Driver {
        let mut d = Driver::new(env!("CARGO_BIN_EXE_pogo"));
        d.pogo_args = vec![
            "--config".to_string(),
            self.config_path.to_string_lossy().into_owned(),
        ];
        let mut env = Vec::new();
        for k in [
            "PATH",
            "HOME",
            "CONTAINERS_CONF",
            "CONTAINERS_REGISTRIES_CONF",
            "XDG_RUNTIME_DIR",
            "RUST_BACKTRACE",
            // `make test` runs the executor suite once per stage path (agent, exec)
            "POGO_STAGE_RUNNER",
        ] {
            if let Ok(v) = std::env::var(k) {
                env.push((k.to_string(), v));
            }
        }
        env.extend(self.extra_env.iter().cloned());
        d.env = env;
        d.tmp_root = self.tmp_root.clone();
        d.prepare_retry_interval = Duration::from_secs(3);
        d.graceful_kill_timeout = Duration::from_secs(15);
        d.force_kill_timeout = Duration::from_secs(10);
        d.runner_short_token = "pogotest".to_string();
        d
    }

    /// A job with a fresh id and token, registered with the fake GitLab
    /// with `tags`. Its project is unique unless `project` is given.
    pub fn job(&self, tags: &[&str], script: &[&str]) -> Job {
        let id = unique_id();
        let mut job = Job::new(
            id,
            format!("glcbt-test-{id}-tok"),
            format!("pogo-test/p{id}"),
            self.gitlab.api_url(),
        );
        job.name = "test-job".to_string();
        job.image = Some(Image::new(IMG_BASH));
        job.script = script.iter().map(|s| s.to_string()).collect();
        job.timeout = Duration::from_secs(600);
        self.gitlab.register(id, &job.token, tags);
        job
    }

    /// Runs `job` with `driver` and remembers it for the leftover check.
    pub fn run_with(
        &self,
        driver: &Driver,
        job: &Job,
        cancel: Option<pogo::driver::CancelWhenLogShows>,
    ) -> JobResult {
        let started = Instant::now();
        let r = driver.run_job(job, cancel).expect("driver");
        eprintln!(
            "---- job {} ({:?}) finished in {:?}: {:?}\n{}\n---- phases: {:?}\n---- cleanup output:\n{}\n---- warnings: {:?}",
            job.id,
            job.script,
            started.elapsed(),
            r.outcome,
            r.log,
            r.phase_times,
            r.cleanup_output,
            r.warnings
        );
        self.jobs.lock().unwrap().push((job.id, job_key(&r)));
        r
    }

    pub fn run(&self, job: &Job) -> JobResult {
        self.run_with(&self.driver(), job, None)
    }

    /// Waits until the removals the cleanups of this env's jobs started in the background
    /// are over (as the same job's next prepare would).
    pub fn wait_for_removals(&self) {
        if let Some(key) = self.removal_still_running() {
            panic!("the removal of job {key} still runs");
        }
    }

    /// Waits (up to pogo's own limit each) for the removals cleanup left to the background;
    /// the job whose removal still runs then, if one does. (For a `Drop`, which must not panic.)
    pub fn removal_still_running(&self) -> Option<String> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        jobs.into_iter().filter_map(|(_, key)| key).find(|key| {
            !pogo::executor::removal::wait(&self.working_dir, key, pogo::executor::removal::WAIT)
        })
    }

    /// Asserts that nothing labelled with any job of this env remains once the cleanups'
    /// removals are over.
    pub fn assert_no_leftovers(&self) {
        self.wait_for_removals();
        let jobs = self.jobs.lock().unwrap().clone();
        for (id, key) in jobs {
            if let Some(k) = key {
                self.podman
                    .assert_nothing_labelled(&format!("{LABEL_JOB_KEY}={k}"));
            }
            self.podman
                .assert_nothing_labelled(&format!("{LABEL_JOB_ID}={id}"));
        }
    }
}

/// The key pogo gives `job` as the test driver runs it (runner `pogotest`, slot 0): the job
/// description's id and its token's fingerprint.
pub fn expected_job_key(job: &Job) -> String {
    format!(
        "pogo-pogotest-{}-0-{}",
        job.id,
        pogo::executor::response::token_fingerprint(&job.token)
    )
}

/// POGO_JOB_KEY from config_exec's output, if config_exec succeeded.
pub fn job_key(r: &JobResult) -> Option<String> {
    r.config_output
        .as_ref()?
        .get("job_env")?
        .get("POGO_JOB_KEY")?
        .as_str()
        .map(str::to_string)
}
