//! Shared harness for pogo's executor tests: skip rules, a fake GitLab API,
//! pogo config files, a [`Driver`] set up like a gitlab-runner, a private
//! registry, and leftover checks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pogo::driver::{Cache, CachePolicy, Driver, Image, Job, JobResult, Outcome, Service};
use pogo::podman::QUIET_CGROUPS_V1;

pub const IMG_BASH: &str = "localhost/pogo-test/bash:latest";
pub const IMG_BUSYBOX: &str = "localhost/pogo-test/busybox:latest";
pub const IMG_HTTPD: &str = "localhost/pogo-test/httpd:latest";

pub const LABEL_MANAGED_BY: &str = "io.pogo.managed-by";
pub const LABEL_JOB_KEY: &str = "io.pogo.job-key";
pub const LABEL_JOB_ID: &str = "io.pogo.job-id";

// ---------------------------------------------------------------------------
// Skip rules
// ---------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Where skipped tests are noted (one line each: the test, then why): `make test` lists them
/// at its end, so a test that did nothing never passes for one that ran.
pub const SKIP_LOG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/pogo-skipped-tests.log");

/// Say (on stderr, and in [`SKIP_LOG`]) that the running test, or a part of it, did not run
/// and why.
pub fn skipped(why: &str) {
    eprintln!("SKIPPED: {why}");
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    let binary = std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .map(|n| n.rsplit_once('-').map_or(n.clone(), |(b, _)| b.to_string()))
        .unwrap_or_default();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIP_LOG)
    {
        let _ = writeln!(f, "{binary}::{test}\t{why}");
    }
}

/// A tool a test (or part of one) needs is missing: skipped with `why` outside CI, a failure
/// in CI (where `make test`'s set-up installs it).
pub fn skip_outside_ci(why: &str) {
    assert!(
        !in_ci(),
        "{why}, but CI is set: `make test`'s set-up must provide it"
    );
    skipped(&format!("part of it: {why}"));
}

pub fn podman_available() -> bool {
    Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn image_exists(image: &str) -> bool {
    Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `true` when the Podman tests can run. Without podman (or the test
/// images) they are skipped with a message, except in CI (`CI` set), where
/// that is a failure.
pub fn podman_ready() -> bool {
    if !podman_available() {
        if in_ci() {
            panic!("podman is not installed, but CI is set: the executor tests must run in CI");
        }
        skipped("podman not installed (set up with `make test`)");
        return false;
    }
    let missing: Vec<&str> = [IMG_BASH, IMG_BUSYBOX, IMG_HTTPD]
        .into_iter()
        .filter(|i| !image_exists(i))
        .collect();
    if !missing.is_empty() {
        if in_ci() {
            panic!(
                "test images missing in CI: {missing:?} (scripts/setup-test-env.sh builds them)"
            );
        }
        skipped(&format!(
            "test images missing: {missing:?} (set up with `make test`)"
        ));
        return false;
    }
    true
}

pub const IMG_HELPER: &str = "localhost/pogo-test/helper:latest";

/// `true` when the helper image (Debian + git + the stand-in gitlab-runner, built by
/// scripts/setup-test-env.sh) is there; skipped with a message otherwise, except in CI.
pub fn helper_ready() -> bool {
    if !podman_ready() {
        return false;
    }
    if image_exists(IMG_HELPER) {
        return true;
    }
    if in_ci() {
        panic!("{IMG_HELPER} missing in CI (scripts/setup-test-env.sh builds it)");
    }
    skipped(&format!("{IMG_HELPER} missing (set up with `make test`)"));
    false
}

// ---------------------------------------------------------------------------
// Image builds in jobs (the `build-images` recipe of docs/configuration.md)
// ---------------------------------------------------------------------------

/// Debian + buildah (chroot isolation) + the busybox test image as an OCI archive at
/// [`BUILDAH_BASE_ARCHIVE`], built by scripts/setup-test-env.sh (root's and the rootless
/// user's storage).
pub const IMG_BUILDAH: &str = "localhost/pogo-test/buildah:latest";
pub const BUILDAH_BASE_ARCHIVE: &str = "/opt/pogo-test/busybox.oci.tar";
/// The tag of the recipe, and where it puts the project's kept volume.
pub const BUILD_IMAGES_TAG: &str = "build-images";
pub const IMAGE_STORAGE: &str = "/var/lib/containers";

/// `true` when [`IMG_BUILDAH`] is in `podman`'s storage (`who` says whose); skipped with a
/// message otherwise, except in CI.
pub fn buildah_image_ready(podman: &PodmanCmd, who: &str) -> bool {
    if podman.image_exists(IMG_BUILDAH) {
        return true;
    }
    assert!(
        !in_ci(),
        "{IMG_BUILDAH} missing in {who}'s storage in CI (scripts/setup-test-env.sh builds it)"
    );
    skipped(&format!(
        "{IMG_BUILDAH} missing in {who}'s storage (set up with `make test` as root)"
    ));
    false
}

/// The recipe's config entry for `podman`: jobs tagged `build-images` get their project's
/// kept volume at /var/lib/containers, and no podman argument at all; where podman's volumes
/// are on overlayfs (podman in a container, as the rootless user's in `make matrix`'s fresh
/// machines), overlay cannot be mounted on them again and the recipe adds `--device /dev/fuse`
/// for fuse-overlayfs (docs/configuration.md; `pogo doctor` says so).
pub fn image_build_config(podman: &PodmanCmd) -> PogoConfig {
    let out = podman.output(&["info", "--format", "{{.Store.VolumePath}}"]);
    assert!(out.status.success(), "podman info: {out:?}");
    let volumes = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut path = Path::new(&volumes);
    while !path.exists() {
        path = path.parent().unwrap_or(Path::new("/"));
    }
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .unwrap();
    let fuse = String::from_utf8_lossy(&fs.stdout).trim() == "overlayfs";
    if fuse {
        eprintln!("{volumes} is on overlayfs: the recipe with --device /dev/fuse");
    }
    PogoConfig::default().with_extra_yaml(&format!(
        "extra_arguments:\n  {BUILD_IMAGES_TAG}:\n    project_volume: {IMAGE_STORAGE}\n{}",
        if fuse {
            "    args: --device /dev/fuse\n    privileged: true\n"
        } else {
            ""
        }
    ))
}

/// A job in [`IMG_BUILDAH`] that builds an image from a Containerfile (FROM the busybox
/// archive, one RUN) with `buildah build --layers`, then shows it is there: in `buildah
/// images`, and `buildah from` + `buildah run` read the file the RUN wrote.
pub fn image_build_job(env: &TestEnv, tags: &[&str]) -> Job {
    let mut job = env.job(
        tags,
        &[
            "mkdir -p /tmp/ctx",
            &format!(
                "printf 'FROM oci-archive:{BUILDAH_BASE_ARCHIVE}\\nRUN echo built-in-a-pogo-job > /built\\n' > /tmp/ctx/Containerfile"
            ),
            "buildah build --layers -t localhost/pogo-built:test /tmp/ctx",
            "buildah images --format 'image={{.Name}}:{{.Tag}}'",
            "c=$(buildah from localhost/pogo-built:test)",
            "echo \"inside: $(buildah run \"$c\" cat /built)\"",
            "buildah rm \"$c\"",
        ],
    );
    job.image = Some(Image::new(IMG_BUILDAH));
    job
}

/// The job built the image (it is listed, and a container of it has the RUN's file); `cached`:
/// the RUN step's layer came from an earlier job ("Using cache"), else it ran.
pub fn assert_built_an_image(r: &JobResult, cached: bool) {
    assert_success(r);
    let log = plain_log(r);
    assert!(
        log.contains("\nimage=localhost/pogo-built:test\n"),
        "the built image is not listed:\n{log}"
    );
    assert!(log.contains("\ninside: built-in-a-pogo-job\n"), "{log}");
    assert_eq!(
        log.contains("--> Using cache "),
        cached,
        "the RUN step's layer should {}come from the project's earlier job:\n{log}",
        if cached { "" } else { "not " }
    );
}

/// The project volumes (`project_volume:`) of `runner` in `env.podman`'s storage.
pub fn project_volumes_of(env: &TestEnv, runner: &str) -> Vec<String> {
    builds_volumes_of(env, runner)
        .into_iter()
        .filter(|v| v.starts_with("pogo-project-"))
        .collect()
}

/// A bare git repository with one commit on `main` holding `files`: (its path, the commit).
pub fn bare_repo(parent: &Path, files: &[(&str, &str)]) -> (PathBuf, String) {
    let bare = parent.join("repo.git");
    let work = parent.join("work");
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=pogo",
                "-c",
                "user.email=pogo@example.invalid",
            ])
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
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

/// The persistent builds volumes (`persistent_builds_days`) of `runner` in `env.podman`'s storage.
pub fn builds_volumes_of(env: &TestEnv, runner: &str) -> Vec<String> {
    let out = env.podman.output(&[
        "volume",
        "ls",
        "--filter",
        &format!("label=io.pogo.runner={runner}"),
        "--filter",
        "label=io.pogo.builds-volume",
        "--format",
        "{{.Name}}",
    ]);
    assert!(
        out.status.success(),
        "podman volume ls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Returns early from the test when Podman is not usable.
#[macro_export]
macro_rules! require_podman {
    () => {
        if !$crate::common::podman_ready() {
            return;
        }
    };
}

/// Returns early from the test when the helper image (or Podman) is not usable.
#[macro_export]
macro_rules! require_helper {
    () => {
        if !$crate::common::helper_ready() {
            return;
        }
    };
}

// ---------------------------------------------------------------------------
// Unique ids
// ---------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A job id no other test (in this or a parallel test process) uses.
pub fn unique_id() -> u64 {
    u64::from(std::process::id()) * 1000 + COUNTER.fetch_add(1, Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// Fake GitLab API
// ---------------------------------------------------------------------------

#[derive(Default)]
struct GitlabState {
    /// token -> (job id, tags)
    jobs: HashMap<String, (u64, Vec<String>)>,
    /// token -> number of `GET /api/v4/job` requests
    requests: HashMap<String, usize>,
    /// Reply with this status to every request when set.
    forced_status: Option<u16>,
    /// Every request line received, for debugging.
    log: Vec<String>,
}

/// A loopback HTTP server for tests: every connection is answered on its own thread by
/// `serve`, with the shared `state`. Stops accepting when dropped.
pub struct HttpServer<S> {
    pub port: u16,
    pub state: Arc<Mutex<S>>,
    stop: Arc<AtomicBool>,
}

impl<S: Default + Send + 'static> HttpServer<S> {
    pub fn start(serve: fn(TcpStream, &Mutex<S>) -> std::io::Result<()>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake gitlab");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(S::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let st = Arc::clone(&st);
                    thread::spawn(move || {
                        let _ = serve(stream, &st);
                    });
                }
            }
        });
        HttpServer { port, state, stop }
    }
}

impl<S> Drop for HttpServer<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// HTTPS in front of a local HTTP server, with a certificate for 127.0.0.1 from a private CA:
/// a self-hosted GitLab behind a company CA. One request per connection, as the fake servers
/// answer.
pub struct TlsFront {
    pub port: u16,
    /// The CA's certificate, PEM: what a runner's `tls-ca-file` holds.
    pub ca_pem: String,
    stop: Arc<AtomicBool>,
}

impl TlsFront {
    pub fn start(backend_port: u16) -> Self {
        use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pogo test private CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tls front");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let sp = Arc::clone(&stop);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let config = Arc::clone(&config);
                    thread::spawn(move || {
                        let _ = Self::relay(stream, config, backend_port);
                    });
                }
            }
        });
        TlsFront {
            port,
            ca_pem: ca.pem(),
            stop,
        }
    }

    /// One request: decrypt it, pass it to the backend, encrypt its whole answer.
    fn relay(
        stream: TcpStream,
        config: Arc<rustls::ServerConfig>,
        backend_port: u16,
    ) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, stream);
        let (request_line, headers, body) = read_request(&mut BufReader::new(&mut tls))?;
        let mut backend = TcpStream::connect(("127.0.0.1", backend_port))?;
        let mut req = request_line.clone();
        for (k, v) in &headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        backend.write_all(req.as_bytes())?;
        backend.write_all(&body)?;
        let mut answer = Vec::new();
        backend.read_to_end(&mut answer)?;
        tls.write_all(&answer)?;
        tls.conn.send_close_notify();
        tls.flush()
    }

    /// The API URL of the fake GitLab behind this front.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}/api/v4", self.port)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A minimal GitLab answering `GET /api/v4/job` (header `JOB-TOKEN`).
pub struct FakeGitlab {
    server: HttpServer<GitlabState>,
}

impl FakeGitlab {
    pub fn start() -> Self {
        FakeGitlab {
            server: HttpServer::start(handle),
        }
    }

    /// `CI_API_V4_URL`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v4", self.server.port)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Makes `token` a valid job token for job `id` with `tags`.
    pub fn register(&self, id: u64, token: &str, tags: &[&str]) {
        self.server.state.lock().unwrap().jobs.insert(
            token.to_string(),
            (id, tags.iter().map(|t| t.to_string()).collect()),
        );
    }

    /// Answer every request with `status` (None: normal behaviour).
    pub fn force_status(&self, status: Option<u16>) {
        self.server.state.lock().unwrap().forced_status = status;
    }

    /// How many `GET /api/v4/job` requests carried `token`.
    pub fn requests(&self, token: &str) -> usize {
        self.server
            .state
            .lock()
            .unwrap()
            .requests
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    pub fn request_log(&self) -> Vec<String> {
        self.server.state.lock().unwrap().log.clone()
    }
}

/// Reads one HTTP/1.1 request: the request line (with its line end), the headers (names
/// in lower case, values trimmed; the last of a name wins) and the body (`Content-Length`
/// bytes, at most 1 MiB).
pub fn read_request(
    reader: &mut impl BufRead,
) -> std::io::Result<(String, HashMap<String, String>, Vec<u8>)> {
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    reader.read_exact(&mut body)?;
    Ok((request_line, headers, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn handle(stream: TcpStream, state: &Mutex<GitlabState>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let (request_line, headers, _) = read_request(&mut reader)?;
    let token = headers.get("job-token").cloned();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");

    let (status, body) = {
        let mut st = state.lock().unwrap();
        st.log.push(format!(
            "{} {}",
            request_line.trim_end(),
            token.as_deref().unwrap_or("-")
        ));
        if method == "GET" && path == "/api/v4/job" {
            if let Some(t) = &token {
                *st.requests.entry(t.clone()).or_insert(0) += 1;
            }
        }
        if let Some(s) = st.forced_status {
            (s, format!("{{\"message\":\"{s} {}\"}}", reason(s)))
        } else if method == "GET" && path == "/api/v4/job" {
            match token.as_ref().and_then(|t| st.jobs.get(t)) {
                Some((id, tags)) => (
                    200,
                    serde_json::json!({
                        "id": id,
                        "status": "running",
                        "stage": "test",
                        "name": "test",
                        "ref": "main",
                        "tag": false,
                        "allow_failure": false,
                        "tag_list": tags,
                        "web_url": format!("http://127.0.0.1/pogo-test/p/-/jobs/{id}"),
                        "pipeline": {"id": 1, "ref": "main", "status": "running"},
                        "project": {"ci_job_token_scope_enabled": false},
                        "runner": {"id": 1, "description": "pogo-test", "active": true},
                    })
                    .to_string(),
                ),
                None => (401, "{\"message\":\"401 Unauthorized\"}".to_string()),
            }
        } else {
            (404, "{\"message\":\"404 Not Found\"}".to_string())
        }
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )?;
    out.flush()
}

// ---------------------------------------------------------------------------
// pogo configuration
// ---------------------------------------------------------------------------

/// One `mounts:` entry.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub volume: String,
    pub tags: Vec<String>,
    pub readonly: bool,
}

/// The settings a test wants in its pogo config file.
#[derive(Debug, Clone)]
pub struct PogoConfig {
    pub default_image: Option<String>,
    pub builds_dir: Option<String>,
    pub auth_file: Option<PathBuf>,
    pub pull_policy: Option<String>,
    pub runner_binary: Option<PathBuf>,
    pub services_wait_timeout: Option<u64>,
    pub podman: Option<String>,
    pub podman_args: Option<String>,
    pub mounts: Vec<MountSpec>,
    pub extra_arguments: Vec<(String, String)>,
    /// Written verbatim instead of the generated YAML.
    pub raw: Option<String>,
    /// Appended verbatim to the generated YAML (keys the fields above do not cover).
    pub extra_yaml: Option<String>,
}

impl Default for PogoConfig {
    fn default() -> Self {
        PogoConfig {
            default_image: Some(IMG_BASH.to_string()),
            builds_dir: None,
            auth_file: None,
            pull_policy: None,
            runner_binary: None,
            services_wait_timeout: Some(30),
            podman: None,
            podman_args: None,
            mounts: Vec::new(),
            extra_arguments: Vec::new(),
            raw: None,
            extra_yaml: None,
        }
    }
}

/// A YAML scalar (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl PogoConfig {
    /// The default config with `host` mounted writable at `at` in every job.
    pub fn mounting(host: &Path, at: &str) -> Self {
        PogoConfig {
            mounts: vec![MountSpec {
                volume: format!("{}:{at}", host.display()),
                tags: vec![],
                readonly: false,
            }],
            ..PogoConfig::default()
        }
    }

    /// This config with `yaml` (whole lines) appended to its `extra_yaml`.
    pub fn with_extra_yaml(self, yaml: &str) -> Self {
        PogoConfig {
            extra_yaml: Some(format!("{}{yaml}", self.extra_yaml.unwrap_or_default())),
            ..self
        }
    }

    pub fn to_yaml(&self, working_dir: &Path, cache_dir: &Path) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut y = String::new();
        if let Some(i) = &self.default_image {
            y.push_str(&format!("default_image: {}\n", q(i)));
        }
        y.push_str(&format!(
            "working_dir: {}\n",
            q(&working_dir.to_string_lossy())
        ));
        y.push_str(&format!("cache_dir: {}\n", q(&cache_dir.to_string_lossy())));
        if let Some(b) = &self.builds_dir {
            y.push_str(&format!("builds_dir: {}\n", q(b)));
        }
        if let Some(a) = &self.auth_file {
            y.push_str(&format!("auth_file: {}\n", q(&a.to_string_lossy())));
        }
        if let Some(p) = &self.pull_policy {
            y.push_str(&format!("pull_policy: {}\n", q(p)));
        }
        if let Some(r) = &self.runner_binary {
            y.push_str(&format!("runner_binary: {}\n", q(&r.to_string_lossy())));
        }
        if let Some(t) = self.services_wait_timeout {
            y.push_str(&format!("services_wait_timeout: {t}\n"));
        }
        if let Some(p) = &self.podman {
            y.push_str(&format!("podman: {}\n", q(p)));
        }
        if let Some(a) = &self.podman_args {
            y.push_str(&format!("podman_args: {}\n", q(a)));
        }
        if !self.mounts.is_empty() {
            y.push_str("mounts:\n");
            for m in &self.mounts {
                y.push_str(&format!("  - volume: {}\n", q(&m.volume)));
                if !m.tags.is_empty() {
                    let tags: Vec<String> = m.tags.iter().map(|t| q(t)).collect();
                    y.push_str(&format!("    tags: [{}]\n", tags.join(", ")));
                }
                if m.readonly {
                    y.push_str("    readonly: true\n");
                }
            }
        }
        if !self.extra_arguments.is_empty() {
            y.push_str("extra_arguments:\n");
            for (tag, args) in &self.extra_arguments {
                y.push_str(&format!("  {}: {}\n", q(tag), q(args)));
            }
        }
        if let Some(extra) = &self.extra_yaml {
            y.push_str(extra);
        }
        y
    }
}

/// The fixture stand-in for the `gitlab-runner` binary.
pub fn runner_stand_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab-runner")
}

// ---------------------------------------------------------------------------
// Test environment: temp dir + fake GitLab + config + driver
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Podman queries
// ---------------------------------------------------------------------------

/// How to call podman for checks: directly, or as another user.
#[derive(Debug, Clone, Default)]
pub struct PodmanCmd {
    /// (user, env) for `runuser -u USER -- env K=V... podman`.
    pub as_user: Option<(String, Vec<(String, String)>)>,
}

impl PodmanCmd {
    pub fn command(&self, args: &[&str]) -> Command {
        match &self.as_user {
            // the tests' own podman calls keep podman 5's cgroups v1 warning out of the test
            // output, as pogo does for its own
            None => {
                let mut c = Command::new("podman");
                c.args(args).env(QUIET_CGROUPS_V1, "1");
                c
            }
            Some((user, env)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "env"]);
                for (k, v) in env {
                    c.arg(format!("{k}={v}"));
                }
                c.arg(format!("{QUIET_CGROUPS_V1}=1"));
                c.arg("podman").args(args);
                c.current_dir("/");
                c
            }
        }
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running podman")
    }

    /// The names of podman's secrets (pogo's carry a job's multi-line service variables).
    pub fn secret_names(&self) -> Vec<String> {
        let out = self.output(&["secret", "ls", "--format", "{{.Name}}"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Names of containers, pods and volumes carrying `label` (`k=v`).
    pub fn labelled(&self, label: &str) -> Vec<String> {
        let filter = format!("label={label}");
        let mut found = Vec::new();
        let queries: [(&str, Vec<&str>); 3] = [
            (
                "container",
                vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
            ),
            (
                "pod",
                vec!["pod", "ps", "--filter", &filter, "--format", "{{.Name}}"],
            ),
            (
                "volume",
                vec!["volume", "ls", "--filter", &filter, "--format", "{{.Name}}"],
            ),
        ];
        for (kind, args) in queries {
            let out = self.output(&args);
            assert!(
                out.status.success(),
                "podman {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if !line.trim().is_empty() {
                    found.push(format!("{kind} {}", line.trim()));
                }
            }
        }
        found
    }

    /// Asserts that nothing carries `label` within a minute: a cleanup's removal runs on in
    /// the background for a moment after the job ended.
    pub fn assert_nothing_labelled(&self, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut found = self.labelled(label);
        while !found.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            found = self.labelled(label);
        }
        assert!(found.is_empty(), "left behind (label {label}): {found:?}");
    }

    pub fn image_exists(&self, image: &str) -> bool {
        self.command(&["image", "exists", image])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

// ---------------------------------------------------------------------------
// Outcome helpers
// ---------------------------------------------------------------------------

pub fn assert_success(r: &JobResult) {
    assert_eq!(r.outcome, Outcome::Success, "job log:\n{}", r.log);
}

pub fn assert_system_failure(r: &JobResult) -> String {
    match &r.outcome {
        Outcome::SystemFailure { reason } => reason.clone(),
        o => panic!("expected a system failure, got {o:?}; job log:\n{}", r.log),
    }
}

/// The job failed as a script failure with `exit_code`.
pub fn assert_build_failure(r: &JobResult, exit_code: i32) {
    assert_eq!(r.outcome, Outcome::BuildFailure { exit_code }, "{}", r.log);
}

/// The job log without ANSI colour codes and section markers' `\r`.
pub fn plain_log(r: &JobResult) -> String {
    let mut out = String::with_capacity(r.log.len());
    let mut chars = r.log.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Commands' output
// ---------------------------------------------------------------------------

/// What a command printed and its exit code (-1: ended by a signal), shown in the test's
/// output as it is read.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        let r = Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        eprintln!(
            "---- exit {}\n---- stdout:\n{}---- stderr:\n{}",
            r.code, r.stdout, r.stderr
        );
        r
    }
}

// ---------------------------------------------------------------------------
// Derived test images
// ---------------------------------------------------------------------------

static DERIVED_IMAGES: Mutex<()> = Mutex::new(());

/// `localhost/pogo-test/NAME:latest`: `base` (an image without ENTRYPOINT) after `setup` (a
/// shell command run in it with `/bin/sh -c`) and the image `changes` (`ENTRYPOINT [...]`,
/// ...). Built once per machine (skipped when present, so change NAME when the recipe
/// changes), by `podman run` + `podman commit`: offline, about a second.
pub fn derived_image(name: &str, base: &str, setup: &str, changes: &[&str]) -> String {
    derived_image_in(&PodmanCmd::default(), name, base, setup, changes)
}

/// [`derived_image`] in the storage `podman` uses (a rootless user's, say).
pub fn derived_image_in(
    podman: &PodmanCmd,
    name: &str,
    base: &str,
    setup: &str,
    changes: &[&str],
) -> String {
    let image = format!("localhost/pogo-test/{name}:latest");
    let _guard = DERIVED_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if podman.image_exists(&image) {
        return image;
    }
    let tmp = format!("pogo-test-build-{name}-{}", std::process::id());
    let _ = podman.output(&["rm", "-f", "-t", "0", &tmp]);
    let out = podman.output(&[
        "run",
        "--name",
        &tmp,
        "--network",
        "none",
        base,
        "/bin/sh",
        "-c",
        setup,
    ]);
    assert!(
        out.status.success(),
        "building {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the setup command must not stay the image's CMD
    let mut commit = vec!["commit", "-q", "--change", "CMD [\"/bin/sh\"]"];
    for c in changes {
        commit.extend(["--change", c]);
    }
    commit.extend([tmp.as_str(), image.as_str()]);
    let out = podman.output(&commit);
    let _ = podman.output(&["rm", "-f", "-t", "0", &tmp]);
    assert!(
        out.status.success(),
        "committing {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// bash with `USER 1000:1000` (and a home it owns as WORKDIR), like many official images, in
/// the storage `podman` uses.
pub fn non_root_image_in(podman: &PodmanCmd) -> String {
    derived_image_in(
        podman,
        "user-1000-v1",
        IMG_BASH,
        "mkdir -p /home/app && chown 1000:1000 /home/app",
        &["USER 1000:1000", "WORKDIR /home/app"],
    )
}

/// [`non_root_image_in`] root's storage.
pub fn non_root_image() -> String {
    non_root_image_in(&PodmanCmd::default())
}

// ---------------------------------------------------------------------------
// Private registry
// ---------------------------------------------------------------------------

pub const REGISTRY_USER: &str = "pogo";
pub const REGISTRY_PASS: &str = "pogo-secret";

/// Debian's `docker-registry` on 127.0.0.1 with htpasswd auth; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// A registries.conf marking this registry insecure (plain HTTP).
    pub registries_conf: PathBuf,
    pushed: Vec<String>,
}

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry; `None` (with a message) when the tools are missing
    /// outside CI.
    pub fn start() -> Option<Self> {
        Self::start_with_users(&[])
    }

    /// Like [`Registry::start`], with more `(user, password)` logins besides pogo's (each
    /// password goes to `htpasswd` on stdin, never on a command line).
    pub fn start_with_users(users: &[(&str, &str)]) -> Option<Self> {
        let binary = ["/usr/bin/docker-registry", "/usr/bin/registry"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let have_htpasswd = Command::new("htpasswd")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let Some(binary) = binary.filter(|_| have_htpasswd) else {
            if in_ci() {
                panic!("docker-registry/htpasswd missing in CI (scripts/setup-test-env.sh installs them)");
            }
            skipped("docker-registry or htpasswd not installed (set up with `make test`)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pogo-registry")
            .tempdir()
            .unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let st = Command::new("htpasswd")
            .arg("-Bbc")
            .arg(&htpasswd)
            .args([REGISTRY_USER, REGISTRY_PASS])
            .output()
            .unwrap();
        assert!(st.status.success(), "htpasswd: {st:?}");
        for (user, password) in users {
            let mut htpasswd_cmd = Command::new("htpasswd");
            htpasswd_cmd
                .args(["-iB"])
                .arg(&htpasswd)
                .arg(user)
                .stdout(Stdio::null());
            assert!(
                run_with_stdin(&mut htpasswd_cmd, password.as_bytes()).success(),
                "htpasswd -iB {user}"
            );
        }
        for attempt in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: pogo-test-secret\nauth:\n  htpasswd:\n    realm: pogo-test\n    path: {htpasswd}\n",
                    data = dir.path().join("data").display(),
                    htpasswd = htpasswd.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "registry attempt {attempt} on port {port} failed: {}",
                    std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
                );
                continue;
            }
            let registries_conf = dir.path().join("registries.conf");
            std::fs::write(
                &registries_conf,
                format!("[[registry]]\nlocation = \"127.0.0.1:{port}\"\ninsecure = true\n"),
            )
            .unwrap();
            return Some(Registry {
                child,
                port,
                dir,
                registries_conf,
                pushed: Vec::new(),
            });
        }
        panic!("could not start docker-registry");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes local `image` to `<registry>/<repo>:<tag>` and makes sure the
    /// pushed name is not in local storage, so pogo has to pull it.
    pub fn push(&mut self, image: &str, repo: &str, tag: &str) -> String {
        let remote = format!("{}/{repo}:{tag}", self.host());
        let out = Command::new("podman")
            .args(["push", "--tls-verify=false", "--creds"])
            .arg(format!("{REGISTRY_USER}:{REGISTRY_PASS}"))
            .arg(image)
            .arg(&remote)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        remove_image(&remote);
        self.pushed.push(remote.clone());
        remote
    }

    /// Writes an auth file with this registry's credentials.
    pub fn write_auth_file(&self, path: &Path) {
        let auth =
            pogo::executor::auth::base64(format!("{REGISTRY_USER}:{REGISTRY_PASS}").as_bytes());
        std::fs::write(
            path,
            serde_json::json!({"auths": {self.host(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
    }
}

fn remove_image(name: &str) {
    let _ = Command::new("podman")
        .args(["rmi", "-f", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Registry {
    fn drop(&mut self) {
        for p in &self.pushed {
            remove_image(p);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Rootless test user
// ---------------------------------------------------------------------------

pub const ROOTLESS_ENV_FILE: &str = "/etc/pogo-test-rootless.env";

/// The rootless test user, or `None` (with a message) when the test cannot run here: it
/// needs [`ROOTLESS_ENV_FILE`] and root (the driver switches to the user, like
/// gitlab-runner as a system service). With `CI` set, a missing file fails the test, and
/// so does not being root when `ci_needs_root`.
pub fn rootless_user(ci_needs_root: bool) -> Option<RootlessUser> {
    let path = Path::new(ROOTLESS_ENV_FILE);
    let missing = !path.exists();
    if missing || !nix::unistd::Uid::effective().is_root() {
        assert!(
            !(in_ci() && (missing || ci_needs_root)),
            "CI is set: run as root after scripts/setup-test-env.sh ({ROOTLESS_ENV_FILE})"
        );
        skipped(&format!(
            "needs root and {ROOTLESS_ENV_FILE} (set up with `make test` as root)"
        ));
        return None;
    }
    Some(RootlessUser::load(path).unwrap_or_else(|e| panic!("{e}")))
}

/// Like [`helper_ready`], for `user`'s storage (scripts/setup-test-env.sh copies root's
/// helper image there).
pub fn rootless_helper_ready(user: &RootlessUser) -> bool {
    if !helper_ready() {
        return false;
    }
    if user.podman().image_exists(IMG_HELPER) {
        return true;
    }
    if in_ci() {
        panic!(
            "{IMG_HELPER} missing in {}'s storage in CI (scripts/setup-test-env.sh copies it)",
            user.user
        );
    }
    skipped(&format!(
        "{IMG_HELPER} missing in {}'s storage (set up with `make test` as root)",
        user.user
    ));
    false
}

/// The rootless test user described by `/etc/pogo-test-rootless.env`.
#[derive(Debug, Clone)]
pub struct RootlessUser {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub xdg_runtime_dir: String,
    pub containers_conf: Option<String>,
}

impl RootlessUser {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut m = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                m.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
            }
        }
        let get = |k: &str| {
            m.get(k)
                .cloned()
                .ok_or_else(|| format!("{}: missing {k}", path.display()))
        };
        Ok(RootlessUser {
            user: get("POGO_TEST_ROOTLESS_USER")?,
            uid: get("POGO_TEST_ROOTLESS_UID")?
                .parse()
                .map_err(|e| format!("UID: {e}"))?,
            gid: get("POGO_TEST_ROOTLESS_GID")?
                .parse()
                .map_err(|e| format!("GID: {e}"))?,
            home: get("POGO_TEST_ROOTLESS_HOME")?,
            xdg_runtime_dir: get("POGO_TEST_ROOTLESS_XDG_RUNTIME_DIR")?,
            containers_conf: m
                .get("POGO_TEST_ROOTLESS_CONTAINERS_CONF")
                .filter(|v| !v.is_empty())
                .cloned(),
        })
    }

    /// The environment a gitlab-runner running as this user would have.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("HOME".to_string(), self.home.clone()),
            ("USER".to_string(), self.user.clone()),
            ("LOGNAME".to_string(), self.user.clone()),
            ("XDG_RUNTIME_DIR".to_string(), self.xdg_runtime_dir.clone()),
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
        ];
        if let Some(c) = &self.containers_conf {
            env.push(("CONTAINERS_CONF".to_string(), c.clone()));
        }
        env
    }

    pub fn podman(&self) -> PodmanCmd {
        PodmanCmd {
            as_user: Some((self.user.clone(), self.env())),
        }
    }
}

/// Run `cmd` with `input` on its stdin; its exit status.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::ExitStatus {
    let mut child = cmd.stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait().unwrap()
}

/// Watches every readable `/proc/*/cmdline` for `markers` until [`CmdlineWatch::stop`]; each
/// hit names the process (pid and program).
pub struct CmdlineWatch {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(usize, Vec<String>)>,
}

impl CmdlineWatch {
    /// Every process: the host's and those in containers (pogo starts some there too).
    pub fn start(markers: Vec<String>) -> Self {
        Self::watch(markers, false)
    }

    /// The host's processes only: for values a container is given to use as it likes (a
    /// service's variables), where the service's own processes are its business.
    pub fn on_host(markers: Vec<String>) -> Self {
        Self::watch(markers, true)
    }

    fn watch(markers: Vec<String>, host_only: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let (mut scans, mut seen) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                if let Ok(dir) = std::fs::read_dir("/proc") {
                    for e in dir.flatten() {
                        let proc_dir = e.path();
                        let contained_before = host_only && in_a_container(&proc_dir);
                        if let Ok(raw) = std::fs::read(proc_dir.join("cmdline")) {
                            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
                            if markers.iter().any(|m| cmd.contains(m.as_str()))
                                && !contained_before
                                && !(host_only && in_a_container(&proc_dir))
                            {
                                let exe = std::fs::read_link(proc_dir.join("exe"))
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_else(|e| format!("exe unreadable: {e}"));
                                let hit = format!("{} ({exe}): {cmd}", proc_dir.display());
                                if !seen.contains(&hit) {
                                    seen.push(hit);
                                }
                            }
                        }
                    }
                }
                scans += 1;
                thread::sleep(Duration::from_millis(10));
            }
            (scans, seen)
        });
        CmdlineWatch { stop, handle }
    }

    /// How many scans ran, and the command lines that held a marker.
    pub fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Whether the process at `/proc/PID` runs inside a container: its root directory is not the
/// host's. False when that cannot be told (the process is gone).
fn in_a_container(proc_dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(host), Ok(its)) = (
        std::fs::metadata("/"),
        std::fs::metadata(proc_dir.join("root/")),
    ) else {
        return false;
    };
    (host.dev(), host.ino()) != (its.dev(), its.ino())
}

/// Files under `dir` (recursively) whose contents hold one of `markers`.
pub fn files_containing(dir: &Path, markers: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            hits.extend(files_containing(&p, markers));
        } else if meta.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).to_string();
            for m in markers {
                if text.contains(m.as_str()) {
                    hits.push(format!("{} contains {m}", p.display()));
                }
            }
        }
    }
    hits
}

/// Reads the whole output of a child's pipe (helper for ad-hoc commands).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
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
        log.contains("using the builds volume pogo-builds-"),
        "{log}"
    );
}
