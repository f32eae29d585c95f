//! pogo's benchmark: one trivial job (`script: ["echo hi"]`, no services,
//! `GIT_STRATEGY: none`) four ways, with interleaved repetitions:
//!
//! 1. floor: `podman run --rm IMAGE bash -c 'echo hi'`;
//! 2. a minimal shell driver: `podman run -d` (keep-alive), one
//!    `podman exec -i CTR bash < script` per stage the runner runs, `podman rm -f -t 0`;
//! 3. pogo: the job through `pogo::driver` (the gitlab-runner imitation) calling the
//!    release `pogo` binary, with the job's tags served by a fake GitLab API on 127.0.0.1;
//! 4. pogo again, its four phases called directly by the bench with blocking waits (like
//!    gitlab-runner's Go `os/exec`), the same environment and stage scripts: this isolates
//!    pogo's own cost from the imitation's (which polls for a phase's exit).
//!
//! It also times `pogo config` alone. Run it with `bash bench/run.sh [--runs N] [--markdown]`.
//! Everything it creates (containers labelled `io.pogo.bench=PID` or carrying its runner
//! token, one temp dir) is removed at the end, on errors and on SIGINT/SIGTERM/SIGHUP.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use pogo::driver::job::{RUNNER_REVISION, RUNNER_VERSION};
use pogo::driver::script::ScriptInfo;
use pogo::driver::{dedup_env, go_arch, Driver, Image, Job, Variable};
use pogo::podman::args::KeepAlive;
use serde_json::Value;

/// Benchmark a trivial job: plain podman, a minimal shell driver, and pogo.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Measured repetitions of each variant (interleaved).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Unmeasured warm-up rounds before the measured ones (after one warm-up pogo job).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Print Markdown tables (for the README) instead of plain text.
    #[arg(long)]
    markdown: bool,
    /// The job image (must be in local storage; nothing is pulled).
    #[arg(long, default_value = "localhost/pogo-test/bash:latest")]
    image: String,
    /// The pogo binary [default: `pogo` next to this example's directory, i.e. target/release/pogo].
    #[arg(long)]
    pogo: Option<PathBuf>,
}

/// `pogo config` runs per measured round, with and without the HTTP request.
const CONFIG_ALONE_PER_ROUND: usize = 3;
const PROJECT_PATH: &str = "bench/trivial";
const JOB_TOKEN: &str = "bench-job-token-0123456789";

fn main() {
    let started = Instant::now();
    let args = Args::parse();
    match run(&args, started) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: &Args, started: Instant) -> Result<()> {
    let pid = std::process::id();
    let runner_token = format!("pogobench{pid}");
    let dir = pogo::driver::process::mkdtemp(&std::env::temp_dir(), "pogo-bench-")
        .context("creating the bench's temp dir")?;
    let cleanup = Arc::new(Cleanup {
        filters: vec![
            format!("label=io.pogo.bench={pid}"),
            format!("label=io.pogo.runner={runner_token}"),
        ],
        dir: dir.clone(),
        done: Mutex::new(false),
    });
    // Before any other thread exists, so that every thread inherits the mask.
    cleanup_on_signals(Arc::clone(&cleanup))?;
    let _guard = Guard(Arc::clone(&cleanup));

    let bench = Bench::new(args, pid, runner_token, dir)?;
    let facts = machine_facts();
    let results = bench.measure(args)?;
    let wall = started.elapsed();
    let report = if args.markdown {
        markdown_report(args, &bench, &facts, &results, wall)
    } else {
        text_report(args, &bench, &facts, &results, wall)
    };
    print!("{report}");
    Ok(())
}

// ----- cleanup -------------------------------------------------------------------------

/// Removes the bench's containers and temp dir; runs once.
struct Cleanup {
    /// `podman rm --filter` values selecting everything the bench (and pogo for it) made.
    filters: Vec<String>,
    dir: PathBuf,
    done: Mutex<bool>,
}

impl Cleanup {
    fn run(&self) {
        let Ok(mut done) = self.done.lock() else {
            return;
        };
        if *done {
            return;
        }
        *done = true;
        self.remove_containers();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("bench: warning: removing {}: {e}", self.dir.display());
            }
        }
    }

    fn remove_containers(&self) {
        for f in &self.filters {
            let out = Command::new("podman")
                .args(["rm", "-f", "-t", "0", "--filter", f])
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "bench: warning: podman rm --filter {f}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("bench: warning: podman rm --filter {f}: {e}"),
            }
        }
    }
}

/// Runs the cleanup when `run` returns, with or without an error (or panics).
struct Guard(Arc<Cleanup>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.run();
    }
}

/// SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one thread that
/// cleans up and exits. (Children start with an empty mask: `std::process` resets it.)
fn cleanup_on_signals(cleanup: Arc<Cleanup>) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().context("blocking signals")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                eprintln!("\nbench: {sig}: removing the bench's containers and temp dir");
                cleanup.run();
                // A pogo phase runs in its own process group (like under gitlab-runner) and
                // did not get the signal: a prepare may still be starting a container.
                std::thread::sleep(Duration::from_secs(1));
                cleanup.remove_containers();
                std::process::exit(128 + sig as i32);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

// ----- fake GitLab API -----------------------------------------------------------------

/// Answers `GET /api/v4/job` (with a `JOB-TOKEN` header) like GitLab: the job's tags.
struct FakeGitlab {
    api_url: String,
    hits: Arc<AtomicUsize>,
}

impl FakeGitlab {
    fn start() -> Result<Self> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).context("binding the fake GitLab API")?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        std::thread::Builder::new()
            .name("fake-gitlab".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if let Err(e) = serve(stream, &counter) {
                        eprintln!("bench: fake GitLab: {e}");
                    }
                }
            })
            .context("starting the fake GitLab API")?;
        Ok(FakeGitlab {
            api_url: format!("http://{addr}/api/v4"),
            hits,
        })
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn serve(mut s: TcpStream, hits: &AtomicUsize) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_nodelay(true)?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > 64 * 1024 {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("");
    let path = request_line
        .next()
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("");
    let has_token = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("job-token:"));
    let (status, body) = if method == "GET" && path == "/api/v4/job" && has_token {
        hits.fetch_add(1, Ordering::SeqCst);
        ("200 OK", r#"{"id":1,"tag_list":[]}"#)
    } else {
        ("404 Not Found", r#"{"message":"404 Not Found"}"#)
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(response.as_bytes())?;
    s.flush()
}

// ----- the three variants --------------------------------------------------------------

/// One timed run split into phases.
#[derive(Debug, Clone)]
struct PhasedRun {
    phases: Vec<(String, Duration)>,
    total: Duration,
}

impl PhasedRun {
    fn phase(&self, name: &str) -> Option<Duration> {
        self.phases.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
    }
}

#[derive(Debug, Default)]
struct Results {
    floor: Vec<Duration>,
    shell: Vec<PhasedRun>,
    pogo: Vec<PhasedRun>,
    direct: Vec<PhasedRun>,
    /// `pogo config` alone, tags read from the fake API.
    config_http: Vec<Duration>,
    /// `pogo config` alone with `POGO_JOB_TAGS` set (no HTTP).
    config_no_http: Vec<Duration>,
    /// Requests to the fake API per pogo job.
    api_requests: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Variant {
    Floor,
    Shell,
    Pogo,
    Direct,
}

struct Bench {
    pid: u32,
    image: String,
    pogo: PathBuf,
    pogo_args: Vec<String>,
    dir: PathBuf,
    gitlab: FakeGitlab,
    driver: Driver,
    runner_token: String,
    /// The shell driver's keep-alive arguments (the same as pogo's).
    keep_alive: Vec<String>,
    keep_alive_desc: String,
    next_job_id: Mutex<u64>,
    /// Run stages of the trivial job, as the driver ran them (set by the first pogo run).
    stages: Mutex<Vec<String>>,
    /// `builds_dir` and `hostname` from pogo's config output.
    builds_dir: Mutex<String>,
    hostname: Mutex<String>,
}

impl Bench {
    fn new(args: &Args, pid: u32, runner_token: String, dir: PathBuf) -> Result<Self> {
        let pogo = match &args.pogo {
            Some(p) => p.clone(),
            None => default_pogo()?,
        };
        ensure!(
            pogo.is_file(),
            "{} does not exist: build it with `cargo build --release` (bench/run.sh does)",
            pogo.display()
        );
        let pogo = pogo.canonicalize()?;
        let exists = Command::new("podman")
            .args(["image", "exists", "--", &args.image])
            .status()
            .context("running podman: is it installed?")?;
        ensure!(
            exists.success(),
            "image {} is not in podman's local storage: run `make setup` (scripts/setup-test-env.sh)",
            args.image
        );

        let config = dir.join("pogo.yaml");
        fs::write(
            &config,
            format!(
                "# written by pogo's benchmark\nworking_dir: {0}/pogo\ncache_dir: {0}/pogo/cache\n",
                dir.display()
            ),
        )?;
        let pogo_args = vec!["--config".to_string(), config.display().to_string()];

        let gitlab = FakeGitlab::start()?;
        let mut driver = Driver::new(&pogo);
        driver.pogo_args = pogo_args.clone();
        // gitlab-runner hands its own environment to every phase; so does the bench, minus
        // anything that would change what pogo does (its config, the tags).
        driver.env = std::env::vars()
            .filter(|(k, _)| !k.starts_with("POGO_") && !k.starts_with("CUSTOM_ENV_"))
            .collect();
        driver.tmp_root = dir.clone();
        driver.prepare_retry_interval = Duration::from_millis(100);
        driver.runner_short_token = runner_token.clone();

        let (keep_alive, keep_alive_desc) = keep_alive_args();
        Ok(Bench {
            pid,
            image: args.image.clone(),
            pogo,
            pogo_args,
            dir,
            gitlab,
            driver,
            runner_token,
            keep_alive,
            keep_alive_desc,
            next_job_id: Mutex::new(1000),
            stages: Mutex::new(Vec::new()),
            builds_dir: Mutex::new(String::new()),
            hostname: Mutex::new(String::new()),
        })
    }

    fn measure(&self, args: &Args) -> Result<Results> {
        let mut results = Results::default();
        let variants = [
            Variant::Floor,
            Variant::Shell,
            Variant::Pogo,
            Variant::Direct,
        ];
        let rounds = args.warmup + args.runs;
        // The first pogo run tells which stages the runner runs: the shell driver uses them.
        self.pogo_job().context("warm-up pogo job")?;
        for round in 0..rounds {
            let measured = round >= args.warmup;
            let label = if measured {
                format!("run {}/{}", round - args.warmup + 1, args.runs)
            } else {
                format!("warm-up {}/{}", round + 1, args.warmup)
            };
            let mut line = format!("bench: {label}:");
            // Rotate the order so that no variant always follows the same one.
            let shift = usize::try_from(round).unwrap_or(0) % variants.len();
            for v in variants.iter().cycle().skip(shift).take(variants.len()) {
                match v {
                    Variant::Floor => {
                        let d = self.floor().context("floor: podman run --rm")?;
                        let _ = write!(line, " floor {:.0} ms", ms(d));
                        if measured {
                            results.floor.push(d);
                        }
                    }
                    Variant::Shell => {
                        let r = self.shell_driver().context("shell driver")?;
                        let _ = write!(line, " shell {:.0} ms", ms(r.total));
                        if measured {
                            results.shell.push(r);
                        }
                    }
                    Variant::Pogo => {
                        let (r, requests) = self.pogo_job().context("pogo job")?;
                        let _ = write!(line, " pogo {:.0} ms", ms(r.total));
                        if measured {
                            results.pogo.push(r);
                            results.api_requests.push(requests);
                        }
                    }
                    Variant::Direct => {
                        let r = self.pogo_direct().context("pogo, phases called directly")?;
                        let _ = write!(line, " direct {:.0} ms", ms(r.total));
                        if measured {
                            results.direct.push(r);
                        }
                    }
                }
            }
            for _ in 0..CONFIG_ALONE_PER_ROUND {
                let http = self.config_alone(false).context("pogo config alone")?;
                let no_http = self.config_alone(true).context("pogo config alone")?;
                if measured {
                    results.config_http.push(http);
                    results.config_no_http.push(no_http);
                }
            }
            eprintln!("{line}");
        }
        Ok(results)
    }

    fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.stdin(Stdio::null());
        c
    }

    /// Variant 1, the floor: `podman run --rm IMAGE bash -c 'echo hi'`.
    fn floor(&self) -> Result<Duration> {
        let mut c = self.podman();
        c.args([
            "run",
            "--rm",
            "--label",
            &format!("io.pogo.bench={}", self.pid),
        ])
        .args(["--", &self.image, "bash", "-c", "echo hi"]);
        let t = Instant::now();
        let out = c.output()?;
        let d = t.elapsed();
        check(&out, "podman run --rm")?;
        ensure!(
            String::from_utf8_lossy(&out.stdout).trim() == "hi",
            "unexpected output {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(d)
    }

    /// Variant 2, the minimal shell driver: `podman run -d`, `podman exec -i CTR bash <
    /// script` per stage, `podman rm -f -t 0`. The stage scripts are generated like the
    /// driver's.
    fn shell_driver(&self) -> Result<PhasedRun> {
        let job = self.job()?;
        let name = format!("pogo-bench-{}-shell-{}", self.pid, job.id);
        let dir = self.dir.join(format!("shell-{}", job.id));
        fs::create_dir(&dir)?;
        let scripts = self.stage_scripts(&job, &dir)?;

        let mut phases = Vec::new();
        let t0 = Instant::now();
        let mut c = self.podman();
        c.args(["run", "-d", "--name", &name])
            .args(["--label", &format!("io.pogo.bench={}", self.pid)])
            .args(&self.keep_alive)
            .args(["--", &self.image]);
        let t = Instant::now();
        let out = c.output()?;
        phases.push(("podman run -d".to_string(), t.elapsed()));
        check(&out, "podman run -d")?;

        let stages = (|| -> Result<()> {
            for (stage, path) in &scripts {
                let script = fs::File::open(path)?;
                let mut c = self.podman();
                c.args(["exec", "-i", &name, "bash"]).stdin(script);
                let t = Instant::now();
                let out = c.output()?;
                phases.push((stage.clone(), t.elapsed()));
                check(&out, &format!("podman exec ({stage})"))?;
                if stage == "build_script" {
                    ensure!(
                        String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .any(|l| l == "hi"),
                        "build_script did not print hi: {}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
            Ok(())
        })();

        let mut c = self.podman();
        c.args(["rm", "-f", "-t", "0", "--", &name]);
        let t = Instant::now();
        let out = c.output()?;
        phases.push(("podman rm -f".to_string(), t.elapsed()));
        let total = t0.elapsed();
        stages?;
        check(&out, "podman rm -f")?;
        fs::remove_dir_all(&dir)?;
        Ok(PhasedRun { phases, total })
    }

    /// Variant 3: the trivial job through the gitlab-runner imitation and the release pogo.
    fn pogo_job(&self) -> Result<(PhasedRun, usize)> {
        let job = self.job()?;
        let hits = self.gitlab.hits();
        let t = Instant::now();
        let r = self.driver.run_job(&job, None)?;
        let total = t.elapsed();
        let requests = self.gitlab.hits() - hits;
        ensure!(
            r.outcome.is_success(),
            "the job did not succeed ({:?}); job log:\n{}",
            r.outcome,
            r.log
        );
        ensure!(
            r.log.lines().any(|l| l == "hi"),
            "the job log has no line \"hi\":\n{}",
            r.log
        );
        for w in &r.warnings {
            eprintln!("bench: driver warning: {w}");
        }
        let stages: Vec<String> = r
            .phases()
            .into_iter()
            .filter(|p| !matches!(*p, "config" | "prepare" | "cleanup"))
            .map(str::to_string)
            .collect();
        {
            let mut known = lock(&self.stages)?;
            if known.is_empty() {
                *known = stages;
                let cfg = r.config_output.as_ref();
                let field = |k: &str| {
                    cfg.and_then(|c| c.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                *lock(&self.builds_dir)? = field("builds_dir");
                *lock(&self.hostname)? = field("hostname");
            } else {
                ensure!(
                    *known == stages,
                    "the driver ran stages {stages:?}, earlier {known:?}"
                );
            }
        }
        Ok((
            PhasedRun {
                phases: r.phase_times,
                total,
            },
            requests,
        ))
    }

    /// `pogo config` on its own, with the environment the driver gives config_exec.
    fn config_alone(&self, tags_known: bool) -> Result<Duration> {
        let job = self.job()?;
        let tmp = pogo::driver::process::mkdtemp(&self.dir, "config-alone")?;
        let vars = self.variables(&job, "", "");
        fs::write(
            tmp.join("response.json"),
            serde_json::to_vec(&job.response_json(&job.payload_variables()))?,
        )?;
        let mut env = self
            .driver
            .phase_env_list(&tmp, &[], &vars, &job.services_env(&vars));
        if tags_known {
            env.push(("POGO_JOB_TAGS".into(), "[]".into()));
        }
        let env = dedup_env(env);
        let mut c = Command::new(&self.pogo);
        c.args(&self.pogo_args)
            .arg("config")
            .env_clear()
            .envs(env)
            .current_dir(&tmp)
            .stdin(Stdio::null());
        let hits = self.gitlab.hits();
        let t = Instant::now();
        let out = c.output()?;
        let d = t.elapsed();
        check(&out, "pogo config")?;
        let json: Value = serde_json::from_slice(&out.stdout).context("pogo config's output")?;
        ensure!(
            json.get("builds_dir").is_some(),
            "pogo config printed {json}"
        );
        let requests = self.gitlab.hits() - hits;
        ensure!(
            requests == usize::from(!tags_known),
            "pogo config made {requests} requests to GitLab"
        );
        fs::remove_dir_all(&tmp)?;
        Ok(d)
    }

    /// Variant 4, pogo's phases called directly: config, prepare, `run SCRIPT STAGE` per
    /// stage and cleanup, each in its own process group with the driver's environment, each
    /// waited for without polling.
    fn pogo_direct(&self) -> Result<PhasedRun> {
        let job = self.job()?;
        let tmp = pogo::driver::process::mkdtemp(&self.dir, "direct-")?;
        fs::write(
            tmp.join("response.json"),
            serde_json::to_vec(&job.response_json(&job.payload_variables()))?,
        )?;
        let mut phases = Vec::new();
        let t0 = Instant::now();
        let phase = |phases: &mut Vec<(String, Duration)>,
                     name: &str,
                     args: &[&str],
                     env: &[(String, String)]|
         -> Result<Output> {
            let mut c = Command::new(&self.pogo);
            c.args(&self.pogo_args)
                .args(args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .current_dir(&tmp)
                .stdin(Stdio::null())
                .process_group(0);
            let t = Instant::now();
            let out = c.output()?;
            phases.push((name.to_string(), t.elapsed()));
            check(&out, &format!("pogo {name}"))?;
            Ok(out)
        };

        let vars = self.variables(&job, "", "");
        let env = dedup_env(self.driver.phase_env_list(&tmp, &[], &vars, ""));
        let hits = self.gitlab.hits();
        let out = phase(&mut phases, "config", &["config"], &env)?;
        ensure!(
            self.gitlab.hits() == hits + 1,
            "pogo config did not ask the fake GitLab API for the tags"
        );
        let cfg: Value = serde_json::from_slice(&out.stdout).context("pogo config's output")?;
        let job_env: Vec<(String, String)> = cfg
            .get("job_env")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let builds_dir = cfg
            .get("builds_dir")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let project_dir = format!("{}/{PROJECT_PATH}", builds_dir.trim_end_matches('/'));
        let vars = self.variables(&job, builds_dir, &project_dir);
        let env = dedup_env(self.driver.phase_env_list(&tmp, &job_env, &vars, ""));

        let body = (|| -> Result<()> {
            phase(&mut phases, "prepare", &["prepare"], &env)?;
            for (stage, path) in self.stage_scripts(&job, &tmp)? {
                let script = path.display().to_string();
                let out = phase(&mut phases, &stage, &["run", &script, &stage], &env)?;
                if stage == "build_script" {
                    ensure!(
                        String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .any(|l| l == "hi"),
                        "build_script did not print hi"
                    );
                }
            }
            Ok(())
        })();
        let cleanup = phase(&mut phases, "cleanup", &["cleanup"], &env);
        let total = t0.elapsed();
        body?;
        cleanup?;
        fs::remove_dir_all(&tmp)?;
        Ok(PhasedRun { phases, total })
    }

    fn job_id(&self) -> Result<u64> {
        let mut id = lock(&self.next_job_id)?;
        *id += 1;
        Ok(*id)
    }

    /// The trivial job; every call gets a new job id (like GitLab).
    fn job(&self) -> Result<Job> {
        let mut job = Job::new(
            self.job_id()?,
            JOB_TOKEN,
            PROJECT_PATH,
            self.gitlab.api_url.clone(),
        );
        job.name = "trivial".into();
        job.image = Some(Image::new(self.image.clone()));
        job.script = vec!["echo hi".into()];
        job.timeout = Duration::from_secs(300);
        Ok(job)
    }

    /// The job's variables as gitlab-runner's `GetAllVariables` lists them (no `$` in the
    /// values here, so no expansion).
    fn variables(&self, job: &Job, builds_dir: &str, project_dir: &str) -> Vec<Variable> {
        let mut v = vec![
            Variable::new("CI_JOB_IMAGE", job.image_name()),
            Variable::new("CI_RUNNER_SHORT_TOKEN", self.runner_token.clone()),
            Variable::new("CI_BUILDS_DIR", builds_dir),
            Variable::new("CI_PROJECT_DIR", project_dir),
            Variable::new("CI_CONCURRENT_ID", "0"),
            Variable::new("CI_CONCURRENT_PROJECT_ID", "0"),
            Variable::new("CI_SERVER", "yes"),
            Variable::new("CI_JOB_STATUS", "running"),
            Variable::new("CI_JOB_TIMEOUT", job.timeout.as_secs().to_string()),
        ];
        v.extend(job.payload_variables());
        v.push(Variable::new("CI_SHARED_ENVIRONMENT", "true"));
        v.push(Variable::new("CI_RUNNER_VERSION", RUNNER_VERSION));
        v.push(Variable::new("CI_RUNNER_REVISION", RUNNER_REVISION));
        v.push(Variable::new(
            "CI_RUNNER_EXECUTABLE_ARCH",
            format!("linux/{}", go_arch()),
        ));
        v.push(Variable::new(
            "RUNNER_TEMP_PROJECT_DIR",
            format!("{project_dir}.tmp"),
        ));
        v
    }

    /// Writes the stage scripts of the shell driver into `dir`, in the driver's order.
    fn stage_scripts(&self, job: &Job, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
        let builds_dir = lock(&self.builds_dir)?.clone();
        let hostname = lock(&self.hostname)?.clone();
        let project_dir = format!("{}/{PROJECT_PATH}", builds_dir.trim_end_matches('/'));
        let vars = self.variables(job, &builds_dir, &project_dir);
        let info = ScriptInfo {
            variables: &vars,
            project_dir: &project_dir,
            hostname: &hostname,
        };
        let stages = lock(&self.stages)?.clone();
        ensure!(!stages.is_empty(), "no stages known yet");
        let mut out = Vec::new();
        for stage in stages {
            let writer = match stage.as_str() {
                "prepare_script" => info.prepare_script(),
                "get_sources" => info.get_sources("none"),
                "build_script" => info.user_script(&job.step_script()),
                "after_script" => info.after_script(&job.after_script),
                "cleanup_file_variables" => info.cleanup_file_variables(),
                other => {
                    bail!("the driver ran stage {other}, which the shell driver does not know")
                }
            };
            let path = dir.join(&stage);
            fs::write(&path, writer.finish())?;
            out.push((stage, path));
        }
        Ok(out)
    }
}

/// `target/release/pogo`: this example lives in `target/release/examples/`.
fn default_pogo() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    Ok(release.join("pogo"))
}

/// pogo's keep-alive for the job container, so that the shell driver differs from pogo only
/// in the phases.
fn keep_alive_args() -> (Vec<String>, String) {
    let keep_alive = pogo::podman::detect_keep_alive();
    let what = match keep_alive {
        KeepAlive::Init(_) | KeepAlive::InitWithAgent { .. } => "catatonit -P",
        KeepAlive::Shell => "sh sleep loop",
    };
    (keep_alive.args(), what.into())
}

fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| anyhow::anyhow!("a bench thread panicked"))
}

// ----- machine facts -------------------------------------------------------------------

#[derive(Debug, Default)]
struct Facts {
    podman: String,
    runtime: String,
    storage: String,
    cgroups: String,
    rootless: String,
    nproc: String,
    kernel: String,
    os: String,
}

fn machine_facts() -> Facts {
    let mut f = Facts {
        nproc: std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into()),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into()),
        ..Facts::default()
    };
    let info: Value = Command::new("podman")
        .args(["info", "--format", "json"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or(Value::Null);
    let s = |p: &str| {
        info.pointer(p)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "?".into())
    };
    f.podman = s("/version/Version");
    let runtime_version = s("/host/ociRuntime/version");
    let runtime_version = runtime_version
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .last()
        .unwrap_or("?");
    f.runtime = format!("{} {runtime_version}", s("/host/ociRuntime/name"));
    f.storage = s("/store/graphDriverName");
    f.cgroups = format!(
        "cgroup {}, {}",
        s("/host/cgroupVersion"),
        s("/host/cgroupManager")
    );
    f.rootless = match info.pointer("/host/security/rootless") {
        Some(Value::Bool(true)) => "rootless".into(),
        Some(Value::Bool(false)) => "rootful".into(),
        _ => "?".into(),
    };
    f.os = format!(
        "{} {}",
        s("/host/distribution/distribution"),
        s("/host/distribution/version")
    );
    f
}

impl Facts {
    fn line(&self) -> String {
        format!(
            "podman {} ({}), runtime {}, storage {}, {}; {} CPUs; Linux {}; {}",
            self.podman,
            self.rootless,
            self.runtime,
            self.storage,
            self.cgroups,
            self.nproc,
            self.kernel,
            self.os
        )
    }
}

// ----- statistics and reports ----------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, min) in milliseconds.
fn stats(v: &[Duration]) -> (f64, f64) {
    let mut s: Vec<f64> = v.iter().map(|d| ms(*d)).collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => (f64::NAN, f64::NAN),
        n if n % 2 == 1 => (s[n / 2], s[0]),
        n => ((s[n / 2 - 1] + s[n / 2]) / 2.0, s[0]),
    }
}

fn median_of(runs: &[PhasedRun], name: &str) -> Option<f64> {
    let v: Vec<Duration> = runs.iter().filter_map(|r| r.phase(name)).collect();
    (v.len() == runs.len() && !v.is_empty()).then(|| stats(&v).0)
}

fn totals(runs: &[PhasedRun]) -> Vec<Duration> {
    runs.iter().map(|r| r.total).collect()
}

/// One phase: its label and the medians of the shell driver, pogo via the imitation and
/// pogo direct (`None` where the variant has no such phase).
type PhaseRow = (String, Option<f64>, Option<f64>, Option<f64>);

/// Everything the reports print, computed once.
struct Summary {
    floor: (f64, f64),
    shell: (f64, f64),
    pogo: (f64, f64),
    direct: (f64, f64),
    phases: Vec<PhaseRow>,
    stages: usize,
    /// pogo's total minus the sum of its phases: the imitation's / the bench's own work.
    pogo_between: f64,
    direct_between: f64,
    config_in_job: (f64, f64),
    config_direct: (f64, f64),
    config_http: (f64, f64),
    config_no_http: (f64, f64),
    samples_alone: usize,
    requests: String,
}

fn between(runs: &[PhasedRun]) -> f64 {
    let v: Vec<Duration> = runs
        .iter()
        .map(|p| {
            p.total
                .saturating_sub(p.phases.iter().map(|(_, d)| *d).sum::<Duration>())
        })
        .collect();
    stats(&v).0
}

fn phase_stats(runs: &[PhasedRun], name: &str) -> (f64, f64) {
    let v: Vec<Duration> = runs.iter().filter_map(|p| p.phase(name)).collect();
    stats(&v)
}

fn summarize(bench: &Bench, r: &Results) -> Summary {
    let stages = bench.stages.lock().map(|s| s.clone()).unwrap_or_default();
    let row = |label: String, shell: &str, pogo: &str| {
        (
            label,
            median_of(&r.shell, shell),
            median_of(&r.pogo, pogo),
            median_of(&r.direct, pogo),
        )
    };
    let mut phases = vec![row("config".into(), "", "config")];
    phases.push(row(
        "prepare | podman run -d".into(),
        "podman run -d",
        "prepare",
    ));
    for s in &stages {
        phases.push(row(format!("run {s}"), s, s));
    }
    phases.push(row(
        "cleanup | podman rm -f".into(),
        "podman rm -f",
        "cleanup",
    ));
    let mut requests: Vec<usize> = r.api_requests.clone();
    requests.sort_unstable();
    requests.dedup();
    Summary {
        floor: stats(&r.floor),
        shell: stats(&totals(&r.shell)),
        pogo: stats(&totals(&r.pogo)),
        direct: stats(&totals(&r.direct)),
        phases,
        stages: stages.len(),
        pogo_between: between(&r.pogo),
        direct_between: between(&r.direct),
        config_in_job: phase_stats(&r.pogo, "config"),
        config_direct: phase_stats(&r.direct, "config"),
        config_http: stats(&r.config_http),
        config_no_http: stats(&r.config_no_http),
        samples_alone: r.config_http.len(),
        requests: requests
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("/"),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

impl Summary {
    /// (name, (median, min)) of the four variants; `code` wraps commands for Markdown.
    fn variants(&self, code: fn(&str) -> String) -> Vec<(String, (f64, f64))> {
        vec![
            (
                format!("floor: {}", code("podman run --rm IMAGE bash -c 'echo hi'")),
                self.floor,
            ),
            (
                format!(
                    "shell driver: {}, {} × {}, {}",
                    code("run -d"),
                    self.stages,
                    code("exec -i CTR bash < script"),
                    code("rm -f")
                ),
                self.shell,
            ),
            ("pogo via the gitlab-runner imitation".into(), self.pogo),
            ("pogo, phases called directly".into(), self.direct),
        ]
    }

    /// (measure, value, target) rows.
    fn ratios(&self) -> Vec<(String, String, String)> {
        let target = |ok: bool, t: &str| format!("{t} ({})", verdict(ok));
        let vs_shell = self.pogo.0 / self.shell.0;
        let direct_vs_shell = self.direct.0 / self.shell.0;
        vec![
            (
                "pogo (imitation) / floor".into(),
                format!("{:.2}x", self.pogo.0 / self.floor.0),
                String::new(),
            ),
            (
                "pogo (direct) / floor".into(),
                format!("{:.2}x", self.direct.0 / self.floor.0),
                String::new(),
            ),
            (
                "pogo (imitation) / shell driver".into(),
                format!("{vs_shell:.2}x"),
                target(vs_shell <= 1.10, "<= 1.10x"),
            ),
            (
                "pogo (direct) / shell driver".into(),
                format!("{direct_vs_shell:.2}x"),
                target(direct_vs_shell <= 1.10, "<= 1.10x"),
            ),
            (
                "pogo config, in the imitation's job".into(),
                format!("{:.1} ms", self.config_in_job.0),
                target(self.config_in_job.0 < 20.0, "< 20 ms"),
            ),
            (
                "pogo config, direct job".into(),
                format!("{:.1} ms", self.config_direct.0),
                target(self.config_direct.0 < 20.0, "< 20 ms"),
            ),
            (
                format!(
                    "pogo config alone, tags over HTTP (min {:.1})",
                    self.config_http.1
                ),
                format!("{:.1} ms", self.config_http.0),
                target(self.config_http.0 < 20.0, "< 20 ms"),
            ),
            (
                format!(
                    "pogo config alone, POGO_JOB_TAGS set (min {:.1})",
                    self.config_no_http.1
                ),
                format!("{:.1} ms", self.config_no_http.0),
                String::new(),
            ),
        ]
    }
}

fn text_report(args: &Args, b: &Bench, f: &Facts, r: &Results, wall: Duration) -> String {
    let s = summarize(b, r);
    let mut o = String::new();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "pogo benchmark: trivial job (script: echo hi, no services, GIT_STRATEGY none)"
    );
    let _ = writeln!(o, "image    {}", b.image);
    let _ = writeln!(o, "machine  {}", f.line());
    let _ = writeln!(
        o,
        "runs     {} measured per variant, interleaved, after {} warm-up round(s); times in ms",
        args.runs, args.warmup
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<62} {:>9} {:>9}", "variant", "median", "min");
    for (name, (med, min)) in s.variants(|c| c.to_string()) {
        let _ = writeln!(o, "{name:<62} {med:>9.1} {min:>9.1}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<32} {:>13} {:>18} {:>15}",
        "phase (median)", "shell driver", "pogo (imitation)", "pogo (direct)"
    );
    for (name, sh, pg, di) in &s.phases {
        let _ = writeln!(
            o,
            "{name:<32} {:>13} {:>18} {:>15}",
            opt(*sh),
            opt(*pg),
            opt(*di)
        );
    }
    let _ = writeln!(
        o,
        "{:<32} {:>13} {:>18.1} {:>15.1}",
        "between phases (caller's work)", "-", s.pogo_between, s.direct_between
    );
    let _ = writeln!(
        o,
        "{:<32} {:>13.1} {:>18.1} {:>15.1}",
        "total", s.shell.0, s.pogo.0, s.direct.0
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<52} {:>10}   target",
        "ratio / measure (medians)", "value"
    );
    for (name, value, target) in s.ratios() {
        let _ = writeln!(o, "{name:<52} {value:>10}   {target}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "pogo config alone: {} samples each, with the driver's config_exec environment; \
         GitLab API requests per pogo job: {}",
        s.samples_alone, s.requests
    );
    let _ = writeln!(
        o,
        "keep-alive of the shell driver's container: {} (the same as pogo's)",
        b.keep_alive_desc
    );
    let _ = writeln!(
        o,
        "pogo (direct): the bench calls pogo's phases itself and waits for each without polling"
    );
    let _ = writeln!(o, "bench wall time: {:.1} s", wall.as_secs_f64());
    o
}

fn markdown_report(args: &Args, b: &Bench, f: &Facts, r: &Results, wall: Duration) -> String {
    let s = summarize(b, r);
    let code = |c: &str| format!("`{c}`");
    let cell = |c: &str| c.replace('|', "\\|");
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Trivial job (`script: [\"echo hi\"]`, image `{}`, no services, `GIT_STRATEGY: none`), \
         {} interleaved runs of each variant after {} warm-up round(s), times in ms. \
         Machine: {}.",
        b.image,
        args.runs,
        args.warmup,
        f.line()
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "| variant | median | min |");
    let _ = writeln!(o, "|---|---:|---:|");
    for (name, (med, min)) in s.variants(code) {
        let _ = writeln!(o, "| {} | {med:.1} | {min:.1} |", cell(&name));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| phase (median) | shell driver | pogo (imitation) | pogo (direct) |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|");
    for (name, sh, pg, di) in &s.phases {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            name.replace('|', "/"),
            opt(*sh),
            opt(*pg),
            opt(*di)
        );
    }
    let _ = writeln!(
        o,
        "| between phases (caller's work) | - | {:.1} | {:.1} |",
        s.pogo_between, s.direct_between
    );
    let _ = writeln!(
        o,
        "| **total** | {:.1} | {:.1} | {:.1} |",
        s.shell.0, s.pogo.0, s.direct.0
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "| measure | value | target |");
    let _ = writeln!(o, "|---|---:|---|");
    for (name, value, target) in s.ratios() {
        let name = name
            .replace("pogo config", "`pogo config`")
            .replace("POGO_JOB_TAGS", "`POGO_JOB_TAGS`");
        let value = match value.strip_suffix('x') {
            Some(v) => format!("{v}×"),
            None => value,
        };
        let _ = writeln!(
            o,
            "| {} | {value} | {} |",
            cell(&name),
            cell(&target.replace("<= 1.10x", "≤ 1.10×"))
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "\"pogo (direct)\": the bench calls pogo's four phases itself (same environment and \
         stage scripts) and waits for each without polling. The bench (`bash bench/run.sh \
         --runs {}`) took {:.0} s.",
        args.runs,
        wall.as_secs_f64()
    );
    o
}
