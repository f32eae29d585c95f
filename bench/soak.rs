//! pogo's soak test: many jobs with mixed outcomes through `pogo::driver` (the gitlab-runner
//! imitation) and the release `pogo` binary, several at once, then leftover checks.
//!
//! Jobs follow a fixed rotation of ten:
//!
//! | kind | job | expected |
//! |---|---|---|
//! | success (×2) | `echo ok` | `Success`, `ok` in the log |
//! | script failure (×2) | `exit 3` | `BuildFailure { exit_code: 3 }` |
//! | cancel (×2) | `echo sleeping-$((0+1)); sleep 300`, canceled when the log shows `sleeping-1` | `Canceled`, after_script ran |
//! | service (×2) | httpd as `web`, `wget -qO- http://web/` | `Success`, the page in the log |
//! | prepare failure (×1) | an image not in local storage, `pull_policy: never` | `SystemFailure` after 3 tries |
//! | SIGKILL mid-prepare (×1) | `pogo prepare` started by the soak, killed once its containers exist | leftovers that `pogo gc` removes |
//!
//! At the end it runs `pogo gc --runner <soak runner> --older-than 0s` and checks that nothing
//! with the soak runner's label is left (containers, pods, volumes), no temp dir, no pogo
//! process. A sampler thread reads VmHWM/VmRSS of every pogo process every ~20 ms.
//!
//! Run it with `bash bench/soak.sh [--jobs N] [--parallel P] [--markdown]` (`make soak`).
//! Everything it creates carries its own runner token (`soak<pid>`) and is removed on exit,
//! on errors and on SIGINT/SIGTERM/SIGHUP; nothing else on the machine is touched.

#[path = "fake_gitlab.rs"]
mod fake_gitlab;
use fake_gitlab::FakeGitlab;
#[path = "machine.rs"]
mod machine;
use machine::PodmanInfo;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use pogo::driver::{
    all_variables, dedup_env, CancelWhenLogShows, Driver, Image, Job, JobResult, Outcome, Service,
    Slot, Variable,
};
use serde_json::Value;

/// Soak pogo: many jobs with mixed outcomes, several at once, then leftover checks.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// How many jobs to run (the rotation of ten kinds repeats).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,
    /// How many jobs run at once (gitlab-runner's `concurrent`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    parallel: u32,
    /// Print the report as Markdown (for docs/performance.md) instead of plain text.
    #[arg(long)]
    markdown: bool,
    /// The pogo binary [default: `pogo` next to this example's directory, i.e. target/release/pogo].
    /// The soak runs a private copy of it, so a rebuild during the soak changes nothing.
    #[arg(long)]
    pogo: Option<PathBuf>,
}

const IMG_BASH: &str = "localhost/pogo-test/bash:latest";
const IMG_HTTPD: &str = "localhost/pogo-test/httpd:latest";
const LABEL_RUNNER: &str = "io.pogo.runner";
const LABEL_JOB_KEY: &str = "io.pogo.job-key";
/// gitlab-runner's `PreparationRetries`.
const PREPARE_TRIES: u32 = 3;
/// What a cancel job prints when its `sleep 300` starts; the soak cancels on seeing it.
const CANCEL_WHEN: &str = "sleeping-1";
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// How long a SIGKILL job may take to reach "containers exist".
const KILL_POINT_TIMEOUT: Duration = Duration::from_secs(60);

/// Set by the signal thread: workers take no new job.
static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Success,
    ScriptFailure,
    Cancel,
    Service,
    PrepareFailure,
    SigkillPrepare,
}

/// The fixed rotation: prepare failures (3 tries, 3 s apart) and SIGKILLs are 1 in 10 each.
const ROTATION: [Kind; 10] = [
    Kind::Success,
    Kind::ScriptFailure,
    Kind::Cancel,
    Kind::Service,
    Kind::SigkillPrepare,
    Kind::Success,
    Kind::ScriptFailure,
    Kind::Cancel,
    Kind::Service,
    Kind::PrepareFailure,
];

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Success,
        Kind::ScriptFailure,
        Kind::Cancel,
        Kind::Service,
        Kind::PrepareFailure,
        Kind::SigkillPrepare,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::ScriptFailure => "script failure",
            Kind::Cancel => "cancel (SIGTERM)",
            Kind::Service => "service",
            Kind::PrepareFailure => "prepare failure",
            Kind::SigkillPrepare => "SIGKILL mid-prepare",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::ScriptFailure => "script-failure",
            Kind::Cancel => "cancel",
            Kind::Service => "service",
            Kind::PrepareFailure => "prepare-failure",
            Kind::SigkillPrepare => "sigkill",
        }
    }

    /// (job, expected) for the reports; `code` wraps code for Markdown.
    fn describe(self, code: fn(&str) -> String) -> (String, String) {
        match self {
            Kind::Success => (code("echo ok"), "Success, ok in the log".into()),
            Kind::ScriptFailure => (code("exit 3"), "BuildFailure, exit code 3".into()),
            Kind::Cancel => (
                format!(
                    "{}, canceled when the log shows it",
                    code("echo sleeping-$((0+1)); sleep 300")
                ),
                "Canceled, after_script ran, no SIGKILL".into(),
            ),
            Kind::Service => (
                format!("httpd as web, {}", code("wget -qO- http://web/")),
                "Success, the page in the log".into(),
            ),
            Kind::PrepareFailure => (
                format!("absent image, {}", code("pull_policy: never")),
                format!("SystemFailure after {PREPARE_TRIES} tries"),
            ),
            Kind::SigkillPrepare => (
                format!("{} killed with its containers up", code("pogo prepare")),
                "leftovers, removed by pogo gc".into(),
            ),
        }
    }
}

fn main() {
    let started = Instant::now();
    let args = Args::parse();
    match run(&args, started) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// `Ok(false)`: the soak ran and found a problem.
fn run(args: &Args, started: Instant) -> Result<bool> {
    let pid = std::process::id();
    let runner = format!("soak{pid}");
    let dir = pogo::driver::process::mkdtemp(&std::env::temp_dir(), "pogo-soak-")
        .context("creating the soak's temp dir")?;
    // Canonical: the sampler compares it with `/proc/PID/exe`.
    let dir = dir.canonicalize()?;
    let pogo_copy = dir.join("bin").join("pogo");
    let cleanup = Arc::new(Cleanup {
        runner: runner.clone(),
        pogo: pogo_copy.clone(),
        dir: dir.clone(),
        done: Mutex::new(false),
    });
    cleanup_on_signals(Arc::clone(&cleanup))?;
    let _guard = Guard(Arc::clone(&cleanup));

    let soak = Soak::new(args, runner, dir, pogo_copy)?;
    let facts = machine_facts();
    eprintln!(
        "soak: {} jobs, {} at once, runner {}, pogo {} (copy of {})",
        args.jobs,
        args.parallel,
        soak.runner,
        soak.pogo.display(),
        soak.pogo_source.display()
    );

    let sampler = Sampler::start(soak.pogo.clone())?;
    let jobs_started = Instant::now();
    let done = soak.run_jobs(args)?;
    let jobs_wall = jobs_started.elapsed();
    if STOP.load(Ordering::SeqCst) {
        // The signal thread is cleaning up and ends the process.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let checks = soak.final_checks(&done)?;
    let rss = sampler.stop();
    let report = Report {
        args,
        soak: &soak,
        facts: &facts,
        done: &done,
        checks: &checks,
        rss: &rss,
        jobs_wall,
        wall: started.elapsed(),
    };
    let ok = report.ok();
    let text = if args.markdown {
        report.markdown()
    } else {
        report.text()
    };
    print!("{text}");
    if !ok {
        eprintln!("soak: FAILED (see the report)");
    }
    Ok(ok)
}

// ----- cleanup -------------------------------------------------------------------------

/// Removes what the soak (and pogo for it) made: everything labelled with the soak's runner,
/// its pogo processes, its temp dir. Runs once.
struct Cleanup {
    runner: String,
    /// The soak's private pogo copy: its processes are the soak's.
    pogo: PathBuf,
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
        kill_processes(&own_processes(&self.pogo, &self.runner));
        remove_labelled(&self.runner);
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("soak: warning: removing {}: {e}", self.dir.display());
            }
        }
    }

    /// On a signal: pogo phases run in their own process groups and did not get it, and the
    /// driver may start the next phase (a cleanup, a prepare retry) meanwhile. Kill the soak's
    /// pogo processes and their podman children for a while, then remove by label.
    fn abort(&self) {
        let until = Instant::now() + Duration::from_millis(3500);
        while Instant::now() < until {
            kill_processes(&own_processes(&self.pogo, &self.runner));
            std::thread::sleep(Duration::from_millis(100));
        }
        remove_labelled(&self.runner);
        std::thread::sleep(Duration::from_secs(1));
        self.run();
    }
}

/// Runs the cleanup when `run` returns, with or without an error (or panics).
struct Guard(Arc<Cleanup>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.run();
    }
}

/// SIGINT, SIGTERM and SIGHUP are caught (tokio's handlers, process-wide) and waited for by
/// one thread that cleans up and exits. They are not blocked with a signal mask: the mask
/// would be inherited by the pogo phases the driver starts, and a pogo that cannot see SIGTERM
/// cannot be canceled. Handlers, unlike the mask, are reset by `exec`.
fn cleanup_on_signals(cleanup: Arc<Cleanup>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let streams = (|| {
                    Ok::<_, std::io::Error>((
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::terminate())?,
                        signal(SignalKind::hangup())?,
                    ))
                })();
                let (mut int, mut term, mut hup) = match streams {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let (name, number) = tokio::select! {
                    _ = int.recv() => ("SIGINT", 2),
                    _ = term.recv() => ("SIGTERM", 15),
                    _ = hup.recv() => ("SIGHUP", 1),
                };
                STOP.store(true, Ordering::SeqCst);
                eprintln!(
                    "\nsoak: {name}: stopping the soak's pogo processes, removing everything \
                     labelled {LABEL_RUNNER}={} and the temp dir",
                    cleanup.runner
                );
                cleanup.abort();
                std::process::exit(128 + number);
            });
        })
        .context("starting the signal thread")?;
    ready_rx
        .recv()
        .context("the signal thread ended")?
        .context("installing the signal handlers")
}

/// The soak's processes: its pogo copy, and anything whose environment names the soak's
/// runner (podman children of a phase inherit gitlab-runner's `CUSTOM_ENV_*`).
fn own_processes(pogo: &Path, runner: &str) -> Vec<(i32, String)> {
    let marker = format!("CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN={runner}");
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let path = e.path();
        let is_pogo = fs::read_link(path.join("exe")).is_ok_and(|x| x == pogo);
        let has_marker = !is_pogo
            && fs::read(path.join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()));
        if is_pogo || has_marker {
            let cmd = fs::read(path.join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .split('\0')
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            found.push((pid, cmd));
        }
    }
    found
}

fn kill_processes(procs: &[(i32, String)]) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for (pid, _) in procs {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
}

fn podman_out(args: &[&str]) -> Result<String> {
    let out = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running podman: is it installed?")?;
    ensure!(
        out.status.success(),
        "podman {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes every pod, container and volume labelled with `runner` (never anything else).
fn remove_labelled(runner: &str) {
    let filter = format!("label={LABEL_RUNNER}={runner}");
    let listed = |args: &[&str]| -> Vec<String> {
        podman_out(args)
            .map(|o| {
                o.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let pods = listed(&["pod", "ps", "-q", "--filter", &filter]);
    if !pods.is_empty() {
        let mut a = vec!["pod", "rm", "-f", "-t", "0", "--"];
        a.extend(pods.iter().map(String::as_str));
        if let Err(e) = podman_out(&a) {
            eprintln!("soak: warning: {e:#}");
        }
    }
    if let Err(e) = podman_out(&["rm", "-f", "-t", "0", "--filter", &filter]) {
        eprintln!("soak: warning: {e:#}");
    }
    let volumes = listed(&["volume", "ls", "-q", "--filter", &filter]);
    if !volumes.is_empty() {
        let mut a = vec!["volume", "rm", "-f", "--"];
        a.extend(volumes.iter().map(String::as_str));
        if let Err(e) = podman_out(&a) {
            eprintln!("soak: warning: {e:#}");
        }
    }
}

/// What carries the runner's label, by job key: (containers, pods, volumes).
#[derive(Debug, Default, Clone)]
struct Labelled {
    by_key: BTreeMap<String, [Vec<String>; 3]>,
}

impl Labelled {
    fn query(runner: &str) -> Result<Self> {
        let filter = format!("label={LABEL_RUNNER}={runner}");
        let mut l = Labelled::default();
        let queries: [(usize, Vec<&str>); 3] = [
            (0, vec!["ps", "-a", "--filter", &filter, "--format", "json"]),
            (
                1,
                vec!["pod", "ps", "--filter", &filter, "--format", "json"],
            ),
            (
                2,
                vec!["volume", "ls", "--filter", &filter, "--format", "json"],
            ),
        ];
        for (slot, args) in queries {
            let out = podman_out(&args)?;
            let items: Vec<Value> = if out.trim().is_empty() {
                Vec::new()
            } else {
                serde_json::from_str(&out).with_context(|| format!("podman {args:?}"))?
            };
            for it in items {
                let key = it
                    .pointer(&format!("/Labels/{LABEL_JOB_KEY}"))
                    .and_then(Value::as_str)
                    .unwrap_or("(no job key)")
                    .to_string();
                let name = match it.get("Names") {
                    Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or("?"),
                    _ => it.get("Name").and_then(Value::as_str).unwrap_or("?"),
                }
                .to_string();
                l.by_key.entry(key).or_default()[slot].push(name);
            }
        }
        Ok(l)
    }

    fn count(&self, slot: usize) -> usize {
        self.by_key.values().map(|v| v[slot].len()).sum()
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn summary(&self) -> String {
        format!(
            "{} container(s), {} pod(s), {} volume(s)",
            self.count(0),
            self.count(1),
            self.count(2)
        )
    }
}

// ----- the soak ------------------------------------------------------------------------

/// One job's result.
#[derive(Debug, Clone)]
struct Done {
    index: usize,
    kind: Kind,
    job_id: u64,
    /// `POGO_JOB_KEY` from config_exec.
    key: Option<String>,
    outcome: String,
    /// Why the job is misclassified (empty: as expected).
    problems: Vec<String>,
    took: Duration,
    /// Cancel: how long the run phase took to exit after SIGTERM.
    stop_after_sigterm: Option<Duration>,
    prepare_attempts: u32,
    temp_dirs: usize,
}

struct Soak {
    runner: String,
    tmp_root: PathBuf,
    state_dir: PathBuf,
    pogo: PathBuf,
    pogo_source: PathBuf,
    pogo_args: Vec<String>,
    gitlab: FakeGitlab,
    driver: Driver,
    job_base: u64,
    absent_image: String,
}

impl Soak {
    fn new(args: &Args, runner: String, dir: PathBuf, pogo_copy: PathBuf) -> Result<Self> {
        let source = match &args.pogo {
            Some(p) => p.clone(),
            None => default_pogo()?,
        };
        ensure!(
            source.is_file(),
            "{} does not exist: build it with `cargo build --release` (bench/soak.sh does)",
            source.display()
        );
        let source = source.canonicalize()?;
        fs::create_dir_all(pogo_copy.parent().context("no bin dir")?)?;
        fs::copy(&source, &pogo_copy)
            .with_context(|| format!("copying {} into the soak's dir", source.display()))?;

        for image in [IMG_BASH, IMG_HTTPD] {
            let exists = Command::new("podman")
                .args(["image", "exists", "--", image])
                .status()
                .context("running podman: is it installed?")?;
            ensure!(
                exists.success(),
                "image {image} is not in podman's local storage: run `make setup` \
                 (scripts/setup-test-env.sh)"
            );
        }
        let pid = std::process::id();
        let absent_image = format!("localhost/pogo-soak/absent-{pid}:latest");
        let exists = Command::new("podman")
            .args(["image", "exists", "--", &absent_image])
            .status()?;
        ensure!(
            !exists.success(),
            "image {absent_image} exists: it must not"
        );

        let working_dir = dir.join("pogo");
        let tmp_root = dir.join("tmp");
        fs::create_dir_all(&tmp_root)?;
        let config = dir.join("pogo.yaml");
        fs::write(
            &config,
            format!(
                "# written by pogo's soak test\n\
                 working_dir: {0}\n\
                 cache_dir: {0}/cache\n\
                 pull_policy: never\n\
                 services_wait_timeout: 30\n",
                working_dir.display()
            ),
        )?;
        let pogo_args = vec!["--config".to_string(), config.display().to_string()];

        let gitlab = FakeGitlab::start("soak")?;
        let mut driver = Driver::new(&pogo_copy);
        driver.pogo_args = pogo_args.clone();
        // gitlab-runner hands its own environment to every phase; so does the soak, minus
        // anything that would change what pogo does (its config, state dir, the tags).
        driver.env = std::env::vars()
            .filter(|(k, _)| !k.starts_with("POGO_") && !k.starts_with("CUSTOM_ENV_"))
            .collect();
        driver.tmp_root = tmp_root.clone();
        // gitlab-runner's 3 s between prepare tries (the driver's default) is kept. A stuck
        // phase must not hold the soak for gitlab-runner's 10 min: it fails the job instead.
        driver.graceful_kill_timeout = Duration::from_secs(30);
        driver.force_kill_timeout = Duration::from_secs(10);
        driver.runner_short_token = runner.clone();

        Ok(Soak {
            runner,
            state_dir: working_dir.join("jobs"),
            tmp_root,
            pogo: pogo_copy,
            pogo_source: source,
            pogo_args,
            gitlab,
            driver,
            job_base: u64::from(pid) * 100_000,
            absent_image,
        })
    }

    /// Runs the jobs, `parallel` at once; each worker is one concurrency slot.
    fn run_jobs(&self, args: &Args) -> Result<Vec<Done>> {
        let total = usize::try_from(args.jobs)?;
        let next = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let results = Mutex::new(Vec::with_capacity(total));
        std::thread::scope(|s| -> Result<()> {
            let mut handles = Vec::new();
            for slot in 0..args.parallel {
                let mut driver = self.driver.clone();
                driver.concurrent_id = slot;
                let (next, finished, results) = (&next, &finished, &results);
                let h = std::thread::Builder::new()
                    .name(format!("worker-{slot}"))
                    .spawn_scoped(s, move || loop {
                        if STOP.load(Ordering::SeqCst) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= total {
                            break;
                        }
                        let d = self.one_job(&driver, i);
                        let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                        if STOP.load(Ordering::SeqCst) {
                            break; // killed by the soak's own Ctrl-C handling: not a result
                        }
                        eprintln!(
                            "soak: [{n:>4}/{total}] job {:>3} {:<20} {:<16} {:>6.1} s  {}",
                            d.index + 1,
                            d.kind.name(),
                            d.outcome,
                            d.took.as_secs_f64(),
                            if d.problems.is_empty() {
                                "ok".to_string()
                            } else {
                                format!("MISCLASSIFIED: {}", d.problems.join("; "))
                            }
                        );
                        if let Ok(mut r) = results.lock() {
                            r.push(d);
                        }
                    })
                    .context("starting a worker")?;
                handles.push(h);
            }
            for h in handles {
                if h.join().is_err() {
                    bail!("a worker panicked");
                }
            }
            Ok(())
        })?;
        let mut done = results
            .into_inner()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))?;
        done.sort_by_key(|d| d.index);
        Ok(done)
    }

    fn job(&self, index: usize, kind: Kind) -> Job {
        let id = self.job_base + index as u64;
        let mut job = Job::new(
            id,
            format!("soak-job-token-{id}"),
            format!("soak/project{}", index % 5),
            self.gitlab.api_url.clone(),
        );
        job.name = format!("soak-{}", kind.slug());
        job.image = Some(Image::new(IMG_BASH));
        job.timeout = Duration::from_secs(600);
        match kind {
            Kind::Success => job.script = vec!["echo ok".into()],
            Kind::ScriptFailure => job.script = vec!["exit 3".into()],
            Kind::Cancel => {
                job.script = vec!["echo sleeping-$((0+1)); sleep 300".into()];
                job.after_script = vec!["echo after=$CI_JOB_STATUS".into()];
            }
            Kind::Service => {
                let mut web = Service::new(IMG_HTTPD);
                web.alias = "web".into();
                job.services = vec![web];
                job.script = vec!["wget -qO- http://web/; echo".into()];
            }
            Kind::PrepareFailure => {
                job.image = Some(Image::new(self.absent_image.clone()));
                job.script = vec!["echo unreachable".into()];
            }
            Kind::SigkillPrepare => {
                // A service that never listens: prepare waits for it until killed.
                let mut web = Service::new(IMG_HTTPD);
                web.alias = "web".into();
                web.command = Some(vec!["sh".into(), "-c".into(), "sleep 300".into()]);
                job.services = vec![web];
                job.script = vec!["echo unreachable".into()];
            }
        }
        job
    }

    fn one_job(&self, driver: &Driver, index: usize) -> Done {
        let kind = ROTATION[index % ROTATION.len()];
        let job = self.job(index, kind);
        let t = Instant::now();
        let mut d = Done {
            index,
            kind,
            job_id: job.id,
            key: None,
            outcome: String::new(),
            problems: Vec::new(),
            took: Duration::ZERO,
            stop_after_sigterm: None,
            prepare_attempts: 0,
            temp_dirs: 0,
        };
        if kind == Kind::SigkillPrepare {
            match self.sigkill_prepare(driver, &job) {
                Ok(key) => {
                    d.key = Some(key);
                    d.outcome = "killed".into();
                }
                Err(e) => {
                    d.outcome = "not killed".into();
                    d.problems.push(format!("{e:#}"));
                }
            }
            d.took = t.elapsed();
            return d;
        }
        let cancel = (kind == Kind::Cancel).then(|| CancelWhenLogShows(CANCEL_WHEN.into()));
        match driver.run_job(&job, cancel) {
            Ok(r) => {
                d.took = t.elapsed();
                d.key = job_key(&r);
                d.outcome = short_outcome(&r.outcome);
                d.prepare_attempts = r.prepare_attempts;
                d.temp_dirs = r.temp_dirs.len();
                d.stop_after_sigterm = r
                    .kill_report("build_script")
                    .and_then(|k| k.exited_after_sigterm);
                d.problems = self.classify(kind, &r);
                if !d.problems.is_empty() && !STOP.load(Ordering::SeqCst) {
                    eprintln!(
                        "soak: job {} ({}) misclassified: {}\n---- job log (last 40 lines):\n{}\n---- warnings: {:?}",
                        index + 1,
                        kind.name(),
                        d.problems.join("; "),
                        tail(&r.log, 40),
                        r.warnings
                    );
                }
            }
            Err(e) => {
                d.took = t.elapsed();
                d.outcome = "driver error".into();
                d.problems.push(e.to_string());
            }
        }
        d
    }

    /// Empty when the job ended as its kind must.
    fn classify(&self, kind: Kind, r: &JobResult) -> Vec<String> {
        let mut p = Vec::new();
        let has_line = |want: &str| {
            r.log
                .lines()
                .any(|l| l.trim_end_matches('\r').trim() == want)
        };
        match kind {
            Kind::Success => {
                if r.outcome != Outcome::Success {
                    p.push(format!("expected Success, got {:?}", r.outcome));
                } else if !has_line("ok") {
                    p.push("no line `ok` in the job log".into());
                }
            }
            Kind::ScriptFailure => {
                if r.outcome != (Outcome::BuildFailure { exit_code: 3 }) {
                    p.push(format!(
                        "expected BuildFailure {{ exit_code: 3 }}, got {:?}",
                        r.outcome
                    ));
                }
            }
            Kind::Cancel => {
                if r.outcome != Outcome::Canceled {
                    p.push(format!("expected Canceled, got {:?}", r.outcome));
                }
                if !r.log.contains("after=canceled") {
                    p.push("after_script did not run (no `after=canceled` in the log)".into());
                }
                match r.kill_report("build_script") {
                    None => p.push("build_script was never signalled".into()),
                    Some(k) if k.sigkilled => {
                        p.push("build_script ignored SIGTERM: it had to be SIGKILLed".into())
                    }
                    Some(_) => {}
                }
            }
            Kind::Service => {
                if r.outcome != Outcome::Success {
                    p.push(format!("expected Success, got {:?}", r.outcome));
                } else if !r.log.contains("pogo-service-ok") {
                    p.push("the service's page is not in the job log".into());
                }
            }
            Kind::PrepareFailure => {
                match &r.outcome {
                    Outcome::SystemFailure { .. } => {}
                    o => p.push(format!("expected SystemFailure, got {o:?}")),
                }
                if r.prepare_attempts != PREPARE_TRIES {
                    p.push(format!(
                        "prepare tried {} time(s), expected {PREPARE_TRIES}",
                        r.prepare_attempts
                    ));
                }
                if !r.log.contains(&self.absent_image) {
                    p.push("the job log does not name the missing image".into());
                }
            }
            Kind::SigkillPrepare => p.push("not a driver job".into()),
        }
        for t in &r.temp_dirs {
            if t.exists() {
                p.push(format!("temp dir left: {}", t.display()));
            }
        }
        if r.phase_count("cleanup") == 0 {
            p.push("cleanup never ran".into());
        }
        p
    }

    /// The job's variables as gitlab-runner's `GetAllVariables` lists them (the driver's).
    fn variables(&self, driver: &Driver, job: &Job, builds_dir: &str) -> Vec<Variable> {
        let project_dir = if builds_dir.is_empty() {
            String::new()
        } else {
            format!("{}/{}", builds_dir.trim_end_matches('/'), job.project_path)
        };
        let slot = Slot {
            runner_short_token: &driver.runner_short_token,
            concurrent_id: driver.concurrent_id,
            builds_dir,
            project_dir: &project_dir,
        };
        all_variables(job, &slot, "running")
    }

    /// `pogo config` then `pogo prepare` as gitlab-runner starts them (same environment, own
    /// process group, `job_env` from config in prepare's environment), prepare SIGKILLed once
    /// the pod, the service and the job container run. Its leftovers stay for `pogo gc`.
    /// Returns the job key.
    fn sigkill_prepare(&self, driver: &Driver, job: &Job) -> Result<String> {
        let tmp = pogo::driver::process::mkdtemp(&self.tmp_root, "custom-executor")?;
        let result = self.sigkill_prepare_in(driver, job, &tmp);
        // The runner's own temp dir goes as it would after the job; pogo's leftovers stay.
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        result
    }

    fn sigkill_prepare_in(&self, driver: &Driver, job: &Job, tmp: &Path) -> Result<String> {
        let vars = self.variables(driver, job, "");
        fs::write(
            tmp.join("response.json"),
            serde_json::to_vec(&job.response_json(&vars))?,
        )?;
        let services = job.services_env(&vars);
        let env = dedup_env(driver.phase_env_list(tmp, &[], &vars, &services));
        let out = Command::new(&self.pogo)
            .args(&self.pogo_args)
            .arg("config")
            .env_clear()
            .envs(env)
            .current_dir(tmp)
            .stdin(Stdio::null())
            .process_group(0)
            .output()?;
        ensure!(
            out.status.success(),
            "pogo config failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
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
        let get = |k: &str| {
            job_env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .with_context(|| format!("pogo config's job_env has no {k}: {cfg}"))
        };
        let key = get("POGO_JOB_KEY")?;
        let container = get("POGO_JOB_CONTAINER")?;
        let builds_dir = cfg
            .get("builds_dir")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let vars = self.variables(driver, job, builds_dir);
        let env = dedup_env(driver.phase_env_list(tmp, &job_env, &vars, &services));
        let log = tmp.join("prepare.log");
        let log_file = fs::File::create(&log)?;
        let mut child = Command::new(&self.pogo)
            .args(&self.pogo_args)
            .arg("prepare")
            .env_clear()
            .envs(env)
            .current_dir(tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .process_group(0)
            .spawn()
            .context("starting pogo prepare")?;
        let pgid = i32::try_from(child.id())?;

        let deadline = Instant::now() + KILL_POINT_TIMEOUT;
        let reached = loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "pogo prepare ended by itself ({status}) before it was killed: {}",
                    tail(&fs::read_to_string(&log).unwrap_or_default(), 10)
                );
            }
            if STOP.load(Ordering::SeqCst) {
                break false;
            }
            if self.half_prepared(&key, &container)? {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        child.kill()?;
        let status = child.wait()?;
        // Its podman children (own process group) end by themselves; wait for them.
        let until = Instant::now() + Duration::from_secs(15);
        while nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok() {
            ensure!(
                Instant::now() < until,
                "pogo prepare's process group {pgid} still runs 15 s after the SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ensure!(
            reached,
            "prepare's pod, service and job container were not all running after {} s: {}",
            KILL_POINT_TIMEOUT.as_secs(),
            tail(&fs::read_to_string(&log).unwrap_or_default(), 10)
        );
        ensure!(
            status.signal() == Some(9),
            "pogo prepare was not ended by SIGKILL ({status})"
        );
        Ok(key)
    }

    /// The job's pod exists and its service and job container run.
    fn half_prepared(&self, key: &str, container: &str) -> Result<bool> {
        let filter = format!("label={LABEL_JOB_KEY}={key}");
        let out = podman_out(&["ps", "-a", "--filter", &filter, "--format", "json"])?;
        let items: Vec<Value> = if out.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&out)?
        };
        let running: Vec<String> = items
            .iter()
            .filter(|c| c.get("IsInfra").and_then(Value::as_bool) != Some(true))
            .filter(|c| c.get("State").and_then(Value::as_str) == Some("running"))
            .filter_map(|c| {
                c.pointer("/Names/0")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        if running.len() < 2 || !running.iter().any(|n| n == container) {
            return Ok(false);
        }
        let pods = podman_out(&["pod", "ps", "-q", "--filter", &filter])?;
        Ok(!pods.trim().is_empty())
    }

    /// Everything after the jobs: labelled objects before and after `pogo gc`, temp dirs,
    /// processes, state records.
    fn final_checks(&self, done: &[Done]) -> Result<Checks> {
        let killed: HashSet<&str> = done
            .iter()
            .filter(|d| d.kind == Kind::SigkillPrepare)
            .filter_map(|d| d.key.as_deref())
            .collect();
        // the removals the jobs' cleanups left running in the background end first
        let working_dir = self.state_dir.parent().context("the state dir's parent")?;
        for key in done.iter().filter_map(|d| d.key.as_deref()) {
            ensure!(
                pogo::executor::removal::wait(working_dir, key, pogo::executor::removal::WAIT),
                "the background removal of job {key} never ended"
            );
        }
        let before = Labelled::query(&self.runner)?;
        let unexpected_before: Vec<String> = before
            .by_key
            .iter()
            .filter(|(k, _)| !killed.contains(k.as_str()))
            .map(|(k, v)| {
                format!(
                    "{k}: {} container(s), {} pod(s), {} volume(s)",
                    v[0].len(),
                    v[1].len(),
                    v[2].len()
                )
            })
            .collect();
        let killed_with_objects = before
            .by_key
            .keys()
            .filter(|k| killed.contains(k.as_str()))
            .count();

        eprintln!(
            "soak: before gc: {} of {} job(s): {}; running pogo gc",
            self.runner,
            before.by_key.len(),
            before.summary()
        );
        let t = Instant::now();
        let gc = Command::new(&self.pogo)
            .args(&self.pogo_args)
            .args(["gc", "--runner", &self.runner, "--older-than", "0s"])
            .env_clear()
            .envs(self.driver.env.iter().cloned())
            .stdin(Stdio::null())
            .output()
            .context("running pogo gc")?;
        let gc_took = t.elapsed();
        let gc_stdout = String::from_utf8_lossy(&gc.stdout).into_owned();
        let gc_summary = gc_stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("pogo gc:"))
            .unwrap_or("(no summary line)")
            .to_string();
        eprint!("{gc_stdout}{}", String::from_utf8_lossy(&gc.stderr));
        let after = Labelled::query(&self.runner)?;

        // pogo processes (e.g. the background gc a prepare starts) must end by themselves.
        let until = Instant::now() + Duration::from_secs(10);
        let mut procs = own_processes(&self.pogo, &self.runner);
        while !procs.is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
            procs = own_processes(&self.pogo, &self.runner);
        }
        let temp_left: Vec<String> = fs::read_dir(&self.tmp_root)?
            .flatten()
            .map(|e| e.path().display().to_string())
            .collect();
        let temp_dirs_used = done.iter().map(|d| d.temp_dirs).sum::<usize>()
            + done
                .iter()
                .filter(|d| d.kind == Kind::SigkillPrepare)
                .count();
        let states = self.state_records(done)?;
        Ok(Checks {
            before,
            unexpected_before,
            killed: killed.len(),
            killed_with_objects,
            gc_status: gc.status.code(),
            gc_summary,
            gc_took,
            after,
            temp_left,
            temp_dirs_used,
            procs_left: procs.into_iter().map(|(p, c)| format!("{p} {c}")).collect(),
            states,
            api_requests: self.gitlab.hits(),
        })
    }

    /// The job state records pogo wrote for `pogo tui`, checked against the outcomes.
    fn state_records(&self, done: &[Done]) -> Result<StateCheck> {
        let mut s = StateCheck::default();
        let mut records: HashMap<String, Value> = HashMap::new();
        if !self.state_dir.exists() {
            // A pogo without job state records (`pogo tui`): nothing to check.
            return Ok(s);
        }
        s.written = true;
        if let Ok(entries) = fs::read_dir(&self.state_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(".tmp") {
                    s.stray_tmp.push(name);
                } else if let Some(key) = name.strip_suffix(".json") {
                    let v: Value = serde_json::from_slice(&fs::read(e.path())?)
                        .with_context(|| format!("state record {name}"))?;
                    records.insert(key.to_string(), v);
                }
            }
        }
        s.records = records.len();
        for d in done {
            let Some(key) = &d.key else { continue };
            let Some(r) = records.get(key) else {
                s.wrong
                    .push(format!("job {}: no state record {key}", d.index + 1));
                continue;
            };
            let ended = r.get("ended").is_some_and(|e| !e.is_null());
            let result = r.get("result").and_then(Value::as_str).unwrap_or("none");
            let code = r.get("exit_code").and_then(Value::as_i64);
            if d.kind == Kind::SigkillPrepare {
                // Nothing ran its cleanup: `pogo gc` removed its leftovers and closed it.
                let failure = r.get("failure").and_then(Value::as_str).unwrap_or("");
                if ended && result == "failed" && failure.starts_with("abandoned") {
                    s.closed_by_gc += 1;
                } else {
                    s.wrong.push(format!(
                        "job {} ({key}): the SIGKILLed prepare's record was not closed by pogo gc (ended: {ended}, result {result}, failure {failure:?})",
                        d.index + 1
                    ));
                }
                continue;
            }
            let expected = match d.kind {
                Kind::Success | Kind::Service => ("success", None),
                Kind::ScriptFailure => ("failed", Some(3)),
                Kind::Cancel => ("canceled", None),
                _ => ("failed", None),
            };
            if !ended {
                s.wrong
                    .push(format!("job {} ({key}): record not ended", d.index + 1));
            } else if result != expected.0 || (expected.1.is_some() && code != expected.1) {
                s.wrong.push(format!(
                    "job {} ({key}): record says {result} (exit code {code:?}), expected {}",
                    d.index + 1,
                    expected.0
                ));
            } else {
                s.agreeing += 1;
            }
        }
        Ok(s)
    }
}

fn job_key(r: &JobResult) -> Option<String> {
    r.config_output
        .as_ref()?
        .pointer("/job_env/POGO_JOB_KEY")?
        .as_str()
        .map(str::to_string)
}

fn short_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Success => "Success".into(),
        Outcome::BuildFailure { exit_code } => format!("BuildFailure({exit_code})"),
        Outcome::SystemFailure { .. } => "SystemFailure".into(),
        Outcome::ConfigurationError { .. } => "ConfigurationError".into(),
        Outcome::Canceled => "Canceled".into(),
        Outcome::TimedOut => "TimedOut".into(),
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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

#[derive(Debug, Default)]
struct StateCheck {
    /// The state dir exists (this pogo writes records).
    written: bool,
    records: usize,
    agreeing: usize,
    /// Records of SIGKILLed prepares (nothing ran their cleanup) that `pogo gc` closed.
    closed_by_gc: usize,
    wrong: Vec<String>,
    stray_tmp: Vec<String>,
}

#[derive(Debug)]
struct Checks {
    before: Labelled,
    /// Objects of jobs whose cleanup ran (only the SIGKILLed prepares may have any).
    unexpected_before: Vec<String>,
    killed: usize,
    killed_with_objects: usize,
    gc_status: Option<i32>,
    gc_summary: String,
    gc_took: Duration,
    after: Labelled,
    temp_left: Vec<String>,
    temp_dirs_used: usize,
    procs_left: Vec<String>,
    states: StateCheck,
    api_requests: usize,
}

// ----- peak RSS sampler ----------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct Rss {
    /// Max VmHWM (kB) over all sampled pogo processes, and the phase it was in.
    max_hwm_kb: u64,
    max_hwm_phase: String,
    max_rss_kb: u64,
    /// Max VmHWM (kB) per phase (`config`, `prepare`, `run`, `cleanup`, `gc`).
    by_phase: BTreeMap<String, u64>,
    /// Distinct pogo processes seen, per phase.
    seen_by_phase: BTreeMap<String, usize>,
    max_at_once: usize,
    scans: u64,
    scan_time: Duration,
}

struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Rss>,
}

impl Sampler {
    fn start(pogo: PathBuf) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || sample_loop(&pogo, &flag))
            .context("starting the RSS sampler")?;
        Ok(Sampler { stop, handle })
    }

    fn stop(self) -> Rss {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or_default()
    }
}

fn sample_loop(pogo: &Path, stop: &AtomicBool) -> Rss {
    let mut rss = Rss::default();
    // (pid, start time) -> phase: each process counted once.
    let mut seen: HashMap<(i32, u64), String> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let mut at_once = 0;
        if let Ok(entries) = fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let path = e.path();
                if !fs::read_link(path.join("exe")).is_ok_and(|x| x == pogo) {
                    continue;
                }
                let Ok(status) = fs::read_to_string(path.join("status")) else {
                    continue;
                };
                let (hwm, cur) = (vm_kb(&status, "VmHWM:"), vm_kb(&status, "VmRSS:"));
                if hwm == 0 {
                    continue; // a zombie: no memory, no command line
                }
                let Some(start) = start_time(&path) else {
                    continue;
                };
                at_once += 1;
                let phase = seen
                    .entry((pid, start))
                    .or_insert_with(|| {
                        let p = phase_of(&path);
                        *rss.seen_by_phase.entry(p.clone()).or_default() += 1;
                        p
                    })
                    .clone();
                if hwm > rss.max_hwm_kb {
                    rss.max_hwm_kb = hwm;
                    rss.max_hwm_phase = phase.clone();
                }
                rss.max_rss_kb = rss.max_rss_kb.max(cur);
                let e = rss.by_phase.entry(phase).or_default();
                *e = (*e).max(hwm);
            }
        }
        rss.max_at_once = rss.max_at_once.max(at_once);
        rss.scans += 1;
        let took = t.elapsed();
        rss.scan_time += took;
        std::thread::sleep(SAMPLE_EVERY.saturating_sub(took));
    }
    rss
}

fn vm_kb(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks).
fn start_time(proc_dir: &Path) -> Option<u64> {
    let stat = fs::read_to_string(proc_dir.join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The pogo subcommand of a process: the first argument that is neither an option nor the
/// value of `--config`.
fn phase_of(proc_dir: &Path) -> String {
    let cmdline = fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            it.next();
        } else if !a.starts_with('-') {
            return a.clone();
        }
    }
    "?".into()
}

// ----- machine facts -------------------------------------------------------------------

fn machine_facts() -> String {
    let info = PodmanInfo::load();
    format!(
        "podman {} ({}), runtime {}, storage {}, cgroup {}; {} CPUs; Linux {}; {} {}",
        info.get("/version/Version"),
        info.mode(),
        info.get("/host/ociRuntime/name"),
        info.get("/store/graphDriverName"),
        info.get("/host/cgroupVersion"),
        machine::nproc(),
        machine::kernel(),
        info.get("/host/distribution/distribution"),
        info.get("/host/distribution/version")
    )
}

// ----- report --------------------------------------------------------------------------

struct Report<'a> {
    args: &'a Args,
    soak: &'a Soak,
    facts: &'a str,
    done: &'a [Done],
    checks: &'a Checks,
    rss: &'a Rss,
    jobs_wall: Duration,
    wall: Duration,
}

/// One row per kind: (kind, jobs, correct, median s, max s).
struct KindRow {
    kind: Kind,
    jobs: usize,
    correct: usize,
    median: f64,
    max: f64,
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAILED"
    }
}

impl Report<'_> {
    fn rows(&self) -> Vec<KindRow> {
        Kind::ALL
            .iter()
            .map(|&kind| {
                let mut t: Vec<f64> = self
                    .done
                    .iter()
                    .filter(|d| d.kind == kind)
                    .map(|d| d.took.as_secs_f64())
                    .collect();
                t.sort_by(f64::total_cmp);
                let median = match t.len() {
                    0 => f64::NAN,
                    n if n % 2 == 1 => t[n / 2],
                    n => (t[n / 2 - 1] + t[n / 2]) / 2.0,
                };
                KindRow {
                    kind,
                    jobs: t.len(),
                    correct: self
                        .done
                        .iter()
                        .filter(|d| d.kind == kind && d.problems.is_empty())
                        .count(),
                    median,
                    max: t.last().copied().unwrap_or(f64::NAN),
                }
            })
            .collect()
    }

    fn misclassified(&self) -> Vec<String> {
        self.done
            .iter()
            .filter(|d| !d.problems.is_empty())
            .map(|d| {
                format!(
                    "job {} (id {}, {}): {} — {}",
                    d.index + 1,
                    d.job_id,
                    d.kind.name(),
                    d.outcome,
                    d.problems.join("; ")
                )
            })
            .collect()
    }

    fn correct(&self) -> usize {
        self.done.iter().filter(|d| d.problems.is_empty()).count()
    }

    /// (check, value, counts, ok) rows; checks that do not count are information only.
    fn checks(&self) -> Vec<(String, String, bool, bool)> {
        let c = self.checks;
        let s = &c.states;
        let cancel_stops: Vec<f64> = self
            .done
            .iter()
            .filter_map(|d| d.stop_after_sigterm)
            .map(|d| d.as_secs_f64())
            .collect();
        let max_stop = cancel_stops.iter().copied().fold(0.0, f64::max);
        let list = |v: &[String]| {
            if v.is_empty() {
                "0".to_string()
            } else {
                format!("{}: {}", v.len(), v.join(", "))
            }
        };
        vec![
            (
                format!(
                    "objects labelled {LABEL_RUNNER}={} before gc, of jobs whose cleanup ran",
                    self.soak.runner
                ),
                list(&c.unexpected_before),
                true,
                c.unexpected_before.is_empty(),
            ),
            (
                "SIGKILLed prepares with objects left for gc".into(),
                format!(
                    "{} of {} ({})",
                    c.killed_with_objects,
                    c.killed,
                    c.before.summary()
                ),
                false,
                true,
            ),
            (
                format!("`pogo gc --runner {} --older-than 0s`", self.soak.runner),
                format!(
                    "exit {}, {:.1} s: {}",
                    c.gc_status.map_or("?".into(), |s| s.to_string()),
                    c.gc_took.as_secs_f64(),
                    c.gc_summary
                ),
                true,
                c.gc_status == Some(0),
            ),
            (
                "containers / pods / volumes with the runner's label after gc".into(),
                format!(
                    "{} / {} / {}",
                    c.after.count(0),
                    c.after.count(1),
                    c.after.count(2)
                ),
                true,
                c.after.is_empty(),
            ),
            (
                format!("temp dirs left (of {} used)", c.temp_dirs_used),
                list(&c.temp_left),
                true,
                c.temp_left.is_empty(),
            ),
            (
                "pogo processes (and their podman children) left".into(),
                list(&c.procs_left),
                true,
                c.procs_left.is_empty(),
            ),
            (
                "state records agreeing with the outcome".into(),
                if s.written {
                    format!(
                        "{} of {} driver jobs; wrong: {}",
                        s.agreeing,
                        self.done
                            .iter()
                            .filter(|d| d.kind != Kind::SigkillPrepare && d.key.is_some())
                            .count(),
                        list(&s.wrong)
                    )
                } else {
                    "none written (this pogo keeps no state records)".into()
                },
                true,
                s.wrong.is_empty(),
            ),
            (
                "stray temp files in the state dir".into(),
                list(&s.stray_tmp),
                true,
                s.stray_tmp.is_empty(),
            ),
            (
                "state records of SIGKILLed prepares closed by pogo gc (abandoned)".into(),
                format!("{} of {} records", s.closed_by_gc, s.records),
                false,
                true,
            ),
            (
                "cancel: build_script exited after SIGTERM (max)".into(),
                if cancel_stops.is_empty() {
                    "-".into()
                } else {
                    format!("{max_stop:.2} s")
                },
                false,
                true,
            ),
            (
                "requests to the fake GitLab API (one per config)".into(),
                c.api_requests.to_string(),
                false,
                true,
            ),
        ]
    }

    fn ok(&self) -> bool {
        self.misclassified().is_empty()
            && self.checks().iter().all(|(_, _, _, ok)| *ok)
            && self.done.len() == self.args.jobs as usize
    }

    /// (measure, value) rows about pogo's memory.
    fn rss_rows(&self) -> Vec<(String, String)> {
        let r = self.rss;
        let phases: Vec<String> = r
            .by_phase
            .iter()
            .map(|(p, kb)| {
                format!(
                    "{p} {} ({} processes)",
                    mib(*kb),
                    r.seen_by_phase.get(p).copied().unwrap_or(0)
                )
            })
            .collect();
        let phase = if r.max_hwm_phase.is_empty() {
            "?"
        } else {
            &r.max_hwm_phase
        };
        let mean_scan = if r.scans == 0 {
            0.0
        } else {
            r.scan_time.as_secs_f64() * 1000.0 / r.scans as f64
        };
        vec![
            (
                "pogo peak RSS (max VmHWM of any pogo process)".into(),
                format!("{} (a {phase})", mib(r.max_hwm_kb)),
            ),
            ("peak RSS by phase".into(), phases.join(", ")),
            (
                "sampling".into(),
                format!(
                    "{} scans of /proc, every {} ms (mean scan {mean_scan:.1} ms); up to {} pogo \
                     processes at once; short-lived ones (config: ~2 ms) are caught only sometimes",
                    r.scans,
                    SAMPLE_EVERY.as_millis(),
                    r.max_at_once
                ),
            ),
        ]
    }

    fn per_minute(&self) -> f64 {
        self.done.len() as f64 * 60.0 / self.jobs_wall.as_secs_f64().max(0.001)
    }

    fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "pogo soak: {} jobs, {} at once, runner {}, date {}",
            self.done.len(),
            self.args.parallel,
            self.soak.runner,
            today()
        );
        let _ = writeln!(o, "machine  {}", self.facts);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<20} {:<44} {:<38} {:>5} {:>8} {:>9} {:>7}",
            "kind", "job", "expected", "jobs", "correct", "median s", "max s"
        );
        for (r, (job, expected)) in self
            .rows()
            .iter()
            .map(|r| (r, r.kind.describe(|c| c.to_string())))
        {
            let _ = writeln!(
                o,
                "{:<20} {:<44} {:<38} {:>5} {:>8} {:>9.1} {:>7.1}",
                r.kind.name(),
                job,
                expected,
                r.jobs,
                r.correct,
                r.median,
                r.max
            );
        }
        let _ = writeln!(
            o,
            "{:<20} {:<44} {:<38} {:>5} {:>8}",
            "total",
            "",
            "",
            self.done.len(),
            self.correct()
        );
        let _ = writeln!(o);
        let mis = self.misclassified();
        if mis.is_empty() {
            let _ = writeln!(o, "misclassified: none");
        } else {
            let _ = writeln!(o, "misclassified ({}):", mis.len());
            for m in mis {
                let _ = writeln!(o, "  {m}");
            }
        }
        let _ = writeln!(o);
        for (name, value, counts, ok) in self.checks() {
            let mark = if counts { verdict(ok) } else { "info" };
            let _ = writeln!(o, "[{mark:<6}] {name}: {value}");
        }
        let _ = writeln!(o);
        for (name, value) in self.rss_rows() {
            let _ = writeln!(o, "{name}: {value}");
        }
        let _ = writeln!(
            o,
            "wall time: jobs {:.1} s ({:.1} jobs/min), whole soak {:.1} s",
            self.jobs_wall.as_secs_f64(),
            self.per_minute(),
            self.wall.as_secs_f64()
        );
        let _ = writeln!(o, "result: {}", verdict(self.ok()));
        o
    }

    fn markdown(&self) -> String {
        let code = |c: &str| format!("`{c}`");
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} jobs, {} at once, through the gitlab-runner imitation and the release `pogo` \
             ({}). Machine: {}.",
            self.done.len(),
            self.args.parallel,
            today(),
            self.facts
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "| kind | job | expected | jobs | correct | median s | max s |"
        );
        let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|");
        for r in self.rows() {
            let (job, expected) = r.kind.describe(code);
            let _ = writeln!(
                o,
                "| {} | {job} | {expected} | {} | {} | {:.1} | {:.1} |",
                r.kind.name(),
                r.jobs,
                r.correct,
                r.median,
                r.max
            );
        }
        let _ = writeln!(
            o,
            "| **total** | | | {} | {} | | |",
            self.done.len(),
            self.correct()
        );
        let _ = writeln!(o);
        let mis = self.misclassified();
        let _ = writeln!(o, "| check | value | |");
        let _ = writeln!(o, "|---|---|---|");
        let _ = writeln!(
            o,
            "| misclassified | {} | {} |",
            if mis.is_empty() {
                "none".to_string()
            } else {
                mis.join("<br>").replace('|', "\\|")
            },
            verdict(mis.is_empty())
        );
        for (name, value, counts, ok) in self.checks() {
            let mark = if counts { verdict(ok) } else { "" };
            let _ = writeln!(
                o,
                "| {} | {} | {mark} |",
                name.replace('|', "\\|"),
                value.replace('|', "\\|")
            );
        }
        for (name, value) in self.rss_rows() {
            let _ = writeln!(o, "| {name} | {value} | |");
        }
        let _ = writeln!(
            o,
            "| wall time | jobs {:.0} s, whole soak {:.0} s | |",
            self.jobs_wall.as_secs_f64(),
            self.wall.as_secs_f64()
        );
        let _ = writeln!(o, "| throughput | {:.1} jobs/min | |", self.per_minute());
        o
    }
}

/// Today's date (UTC), `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
