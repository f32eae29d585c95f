//! pogo's benchmark (issue 7, "fast stage path"). In one run, with interleaved repetitions:
//!
//! 1. floor: `podman run --rm IMAGE bash -c 'echo hi'`;
//! 2. a minimal shell driver: `podman run -d` (pogo's keep-alive), one
//!    `podman exec -i CTR bash < script` per stage the runner runs, `podman rm -f -t 0`;
//! 3. pogo with `stage_runner: exec` (one `podman exec` per stage) and
//! 4. pogo with `stage_runner: agent` (the fast path), both the trivial job
//!    (`script: ["echo hi"]`, no services, `GIT_STRATEGY: none`) through `pogo::driver` (the
//!    gitlab-runner imitation) calling a copy of the release `pogo`, the job's tags served by
//!    a fake GitLab API on 127.0.0.1;
//! 5. per stage path, a probe job whose phases the bench calls itself with podman behind a
//!    timing shim (this executable again): where pogo's time goes (podman vs pogo's own), the
//!    stage scripts' own time inside the job container, an empty stage, and N MB of log
//!    through one stage (`pogo run`, stdout to /dev/null) against a raw `podman exec` of the
//!    same script, with the peak RSS (VmHWM, sampled every 2 ms) and CPU time of `pogo run`.
//!
//! It also times `pogo config` alone, trivial jobs per minute with 4 and 8 at once, two cold
//! starts (bench/cold.rs: a fresh working_dir, an image pulled from a loopback registry) and
//! `pogo exec` against gitlab-ci-local (bench/peers.rs). Run it with
//! `bash bench/run.sh [--runs N] [--markdown]`.
//! Everything it creates (containers labelled `io.pogo.bench=PID` or carrying its runner
//! token, one temp dir) is removed at the end, on errors and on SIGINT/SIGTERM/SIGHUP; it
//! never prunes.

#[path = "fake_gitlab.rs"]
mod fake_gitlab;
use fake_gitlab::FakeGitlab;
#[path = "cold.rs"]
mod cold;
#[path = "machine.rs"]
mod machine;
#[path = "peers.rs"]
mod peers;
use machine::PodmanInfo;
use peers::{GclVolumes, Peer};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::Parser;
use pogo::driver::script::ScriptInfo;
use pogo::driver::{all_variables, dedup_env, Driver, Image, Job, Slot, Variable};
use pogo::podman::args::KeepAlive;
use serde_json::Value;

/// Benchmark a trivial job: plain podman, a minimal shell driver, and pogo on both stage paths.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Measured repetitions of each variant (interleaved).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Unmeasured warm-up rounds before the measured ones (after one warm-up job per path).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Print Markdown tables (for docs/performance.md) instead of plain text.
    #[arg(long)]
    markdown: bool,
    /// The job image (must be in local storage; nothing is pulled).
    #[arg(long, default_value = "localhost/pogo-test/bash:latest")]
    image: String,
    /// The pogo binary [default: `pogo` next to this example's directory, i.e. target/release/pogo].
    #[arg(long)]
    pogo: Option<PathBuf>,
    /// Log volume of the throughput and memory measure, in MB (10^6 bytes).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    log_mb: u64,
    /// Trivial jobs per concurrency level (4 and 8 at once) in the jobs-per-minute measure
    /// (0: skip it).
    #[arg(long, default_value_t = 24)]
    throughput_jobs: usize,
    /// Another pogo binary (an earlier commit's, say) measured in the same jobs-per-minute
    /// rounds, interleaved with this one.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Measured rounds of `pogo exec` against gitlab-ci-local on a one-job pipeline (0: skip;
    /// gitlab-ci-local is installed by bench/gitlab-ci-local.sh into target/bench-tools).
    #[arg(long, default_value_t = 5)]
    peer_runs: u32,
    /// Rounds of each cold start (a fresh working_dir; an image pulled from a loopback
    /// registry), each against the job right after it (0: skip).
    #[arg(long, default_value_t = 3)]
    cold_runs: u32,
}

/// The jobs-per-minute row of plain `podman run --rm IMAGE bash -c 'echo hi'`.
const FLOOR_PER_MINUTE: &str = "floor: `podman run --rm`";

/// The concurrency levels of the jobs-per-minute measure.
const PARALLEL: [usize; 2] = [4, 8];

/// `pogo config` runs per measured round, with and without the HTTP request.
const CONFIG_ALONE_PER_ROUND: usize = 3;
const PROJECT_PATH: &str = "bench/trivial";
const JOB_TOKEN: &str = "bench-job-token-0123456789";
/// Set in the environment of a traced phase: this executable, called as podman, appends
/// `START_US END_US ARGS` to this file and runs the real podman.
const TRACE_LOG_ENV: &str = "PGBENCH_TRACE_LOG";
const TRACE_REAL_ENV: &str = "PGBENCH_REAL_PODMAN";
/// How often the peak RSS of a measured `pogo run` is sampled.
const RSS_POLL: Duration = Duration::from_millis(2);
/// One line of the throughput stage's output (68 bytes with the newline).
const LOG_LINE: &str = "pogo log throughput 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHI";

fn main() {
    if let Some(log) = std::env::var_os(TRACE_LOG_ENV) {
        std::process::exit(podman_shim(Path::new(&log)));
    }
    let started = Instant::now();
    let args = Args::parse();
    if let Err(e) = run(&args, started) {
        eprintln!("bench: error: {e:#}");
        std::process::exit(1);
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
        gcl: GclVolumes::new(),
        dir: dir.clone(),
        done: Mutex::new(false),
    });
    // Before any other thread exists, so that every thread inherits the mask.
    cleanup_on_signals(Arc::clone(&cleanup))?;
    let _guard = Guard(Arc::clone(&cleanup));

    let bench = Bench::new(args, pid, runner_token, dir)?;
    let facts = machine_facts();
    let results = bench.measure(args, &cleanup.gcl)?;
    let wall = started.elapsed();
    let report = Report::new(args, &bench, &facts, &results, wall);
    print!("{}", report.render(args.markdown));
    Ok(())
}

// ----- the podman timing shim ----------------------------------------------------------

/// This executable as `podman`: run the real one with the same arguments and stdio, append
/// its start and end (µs since the epoch) and arguments to `log`, exit with its code.
fn podman_shim(log: &Path) -> i32 {
    let Some(real) = std::env::var_os(TRACE_REAL_ENV) else {
        eprintln!("bench podman shim: {TRACE_REAL_ENV} is not set");
        return 125;
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let start = unix_micros();
    let status = Command::new(&real).args(&args).status();
    let end = unix_micros();
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().replace(['\n', '\r'], " "))
        .collect();
    let line = format!("{start} {end} {}\n", words.join(" "));
    if let Ok(mut f) = fs::OpenOptions::new().append(true).create(true).open(log) {
        let _ = f.write_all(line.as_bytes());
    }
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("bench podman shim: {}: {e}", Path::new(&real).display());
            127
        }
    }
}

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

// ----- cleanup -------------------------------------------------------------------------

/// Removes the bench's containers and temp dir; runs once.
struct Cleanup {
    /// `podman rm --filter` values selecting everything the bench (and pogo for it) made.
    filters: Vec<String>,
    /// gitlab-ci-local's volumes made during the bench.
    gcl: GclVolumes,
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
        self.gcl.remove();
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

// ----- measuring one process -----------------------------------------------------------

/// Where a measured process's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// /dev/null: nothing on the bench's side costs time.
    Null,
    /// A pipe the bench reads and counts (to check that every byte arrived).
    Count,
    /// A pipe the bench keeps.
    Capture,
}

struct Measured {
    status: ExitStatus,
    /// From spawn to exit (not to the end of the output).
    elapsed: Duration,
    stdout: Vec<u8>,
    stdout_bytes: u64,
    stderr: Vec<u8>,
    /// Peak resident set (VmHWM) in kB, when watched.
    peak_rss_kb: Option<u64>,
    /// CPU time of the process itself and of the children it waited for, when watched.
    cpu: Option<Cpu>,
}

/// CPU time (user + system) of a process and of its waited-for children.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    own: Duration,
    children: Duration,
}

/// CPU times from /proc/PID/stat (also readable while the process is a zombie).
fn proc_cpu(pid: i32) -> Option<Cpu> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after "(comm)": state is field 3, utime 14, stime 15, cutime 16, cstime 17
    let f: Vec<u64> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .skip(11)
        .take(4)
        .map_while(|v| v.parse().ok())
        .collect();
    let [utime, stime, cutime, cstime] = f.as_slice() else {
        return None;
    };
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)?;
    let d = |ticks: u64| Duration::from_micros(ticks * 1_000_000 / tick);
    Some(Cpu {
        own: d(utime + stime),
        children: d(cutime + cstime),
    })
}

impl Measured {
    fn check(&self, what: &str) -> Result<()> {
        if self.status.success() {
            return Ok(());
        }
        bail!(
            "{what} failed ({}): {}{}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

/// Run `cmd` to its end, timed from spawn to exit; stderr is kept. With `watch`, the child's
/// VmHWM is sampled every [`RSS_POLL`] until it exits, and its CPU times read as it ends
/// (it is reaped only after that, so the pid cannot be reused meanwhile).
fn measure(cmd: &mut Command, out: Out, watch: bool) -> Result<Measured> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    cmd.stdout(if out == Out::Null {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = i32::try_from(child.id()).context("pid")?;
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let poller = watch.then(|| {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(kb) = vm_hwm_kb(pid) {
                    peak.fetch_max(kb, Ordering::SeqCst);
                }
                std::thread::sleep(RSS_POLL);
            }
        })
    });
    let stdout = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut n = 0u64;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match o.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        n += k as u64;
                        if out == Out::Capture {
                            kept.extend_from_slice(&buf[..k]);
                        }
                    }
                }
            }
            (n, kept)
        })
    });
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = e.read_to_end(&mut v);
            v
        })
    });
    let exited = waitid(
        Id::Pid(nix::unistd::Pid::from_raw(pid)),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
    );
    let elapsed = t.elapsed();
    let cpu = if watch { proc_cpu(pid) } else { None };
    stop.store(true, Ordering::SeqCst);
    if let Some(p) = poller {
        let _ = p.join();
    }
    let status = child.wait()?;
    exited.context("waitid")?;
    let (stdout_bytes, stdout) = match stdout {
        Some(h) => h
            .join()
            .map_err(|_| anyhow!("the stdout reader panicked"))?,
        None => (0, Vec::new()),
    };
    let stderr = match stderr {
        Some(h) => h
            .join()
            .map_err(|_| anyhow!("the stderr reader panicked"))?,
        None => Vec::new(),
    };
    let kb = peak.load(Ordering::SeqCst);
    Ok(Measured {
        status,
        elapsed,
        stdout,
        stdout_bytes,
        stderr,
        peak_rss_kb: (watch && kb > 0).then_some(kb),
        cpu,
    })
}

/// VmHWM (peak resident set) of a process in kB; `None` once it is gone or a zombie.
fn vm_hwm_kb(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ----- the variants --------------------------------------------------------------------

/// How pogo runs stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StagePath {
    /// `stage_runner: exec`: one `podman exec` per stage.
    Exec,
    /// `stage_runner: agent`: pogo-agent in the job container (the default).
    Agent,
}

impl StagePath {
    const BOTH: [StagePath; 2] = [StagePath::Exec, StagePath::Agent];

    fn name(self) -> &'static str {
        match self {
            StagePath::Exec => "exec",
            StagePath::Agent => "agent",
        }
    }

    fn label(self) -> &'static str {
        match self {
            StagePath::Exec => "`podman exec` stages",
            StagePath::Agent => "fast path",
        }
    }
}

/// One timed run split into phases.
#[derive(Debug, Clone)]
struct PhasedRun {
    phases: Vec<(String, Duration)>,
    total: Duration,
    /// From cleanup's return to the end of the removal it left running (not on the job's
    /// time; zero for the shell driver, whose `podman rm` is a phase).
    removal: Duration,
}

/// The name of the background removal's window in a probe.
const REMOVAL: &str = "removal (background)";

impl PhasedRun {
    fn phase(&self, name: &str) -> Option<Duration> {
        self.phases.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
    }
}

/// One phase of a probe job, with the podman calls made during it.
#[derive(Debug, Clone)]
struct TracedPhase {
    name: String,
    wall: Duration,
    /// Time in which at least one podman call ran.
    podman: Duration,
    /// (kind, duration) in start order.
    calls: Vec<(String, Duration)>,
}

/// What one probe job measured.
#[derive(Debug, Clone, Default)]
struct Probe {
    phases: Vec<TracedPhase>,
    /// Own time of each stage script and of the empty script ("empty") inside the container.
    own: Vec<(String, Duration)>,
    /// `pogo run` of the empty script (`:`).
    empty: Duration,
    empty_rss_kb: Option<u64>,
    /// `pogo run` of the throughput script, stdout to /dev/null.
    big: Duration,
    big_rss_kb: Option<u64>,
    big_cpu: Option<Cpu>,
    /// `podman exec -i CTR bash < script` of the throughput script, stdout to /dev/null.
    raw_big: Duration,
    raw_cpu: Option<Cpu>,
    /// pogo-agent's VmHWM after the throughput stage.
    agent_hwm_kb: Option<u64>,
    /// pogo-agent's CPU time during the throughput stage.
    agent_cpu: Option<Duration>,
}

impl Probe {
    fn own(&self, stage: &str) -> Option<Duration> {
        self.own.iter().find(|(n, _)| n == stage).map(|(_, d)| *d)
    }
}

/// One jobs-per-minute round: `jobs` trivial jobs, `parallel` at once, through one binary.
#[derive(Debug, Clone)]
struct Throughput {
    binary: String,
    parallel: usize,
    jobs: usize,
    /// From the first job's start to the last job's end as the runner sees it (cleanup
    /// returned).
    wall: Duration,
    /// … and until the last background removal was over.
    wall_all: Duration,
    /// The machine's busy CPU time (all processes, /proc/stat) over `wall_all`.
    cpu: Duration,
}

/// The machine's busy CPU time so far (user, nice, system, irq, softirq, steal; /proc/stat).
fn busy_cpu() -> Duration {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(i, _)| [0, 1, 2, 5, 6, 7].contains(i))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux
    Duration::from_millis(ticks * 10)
}

#[derive(Debug, Default)]
struct Results {
    /// Jobs per minute at 4 and 8 at once (this binary, and the baseline if given).
    throughput: Vec<Throughput>,
    floor: Vec<Duration>,
    shell: Vec<PhasedRun>,
    exec_jobs: Vec<PhasedRun>,
    agent_jobs: Vec<PhasedRun>,
    exec_probes: Vec<Probe>,
    agent_probes: Vec<Probe>,
    /// `pogo config` alone, tags read from the fake API.
    config_http: Vec<Duration>,
    /// `pogo config` alone with `POGO_JOB_TAGS` set (no HTTP).
    config_no_http: Vec<Duration>,
    /// Requests to the fake API per pogo job.
    api_requests: Vec<usize>,
    /// What the podman shim adds to every traced call (counted in pogo's own time).
    shim_overhead: Duration,
    /// `pogo exec` against gitlab-ci-local.
    peer: Option<Peer>,
    cold: Option<cold::Cold>,
}

impl Results {
    fn jobs(&self, p: StagePath) -> &[PhasedRun] {
        match p {
            StagePath::Exec => &self.exec_jobs,
            StagePath::Agent => &self.agent_jobs,
        }
    }

    fn probes(&self, p: StagePath) -> &[Probe] {
        match p {
            StagePath::Exec => &self.exec_probes,
            StagePath::Agent => &self.agent_probes,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Variant {
    Floor,
    Shell,
    Job(StagePath),
    Probe(StagePath),
}

struct Bench {
    pid: u32,
    image: String,
    /// The bench's own copy of pogo (a concurrent `cargo build` cannot swap it mid-run).
    pogo: PathBuf,
    /// A copy of this executable, used as podman by traced phases.
    shim: PathBuf,
    real_podman: PathBuf,
    dir: PathBuf,
    working_dir: PathBuf,
    gitlab: FakeGitlab,
    exec_driver: Driver,
    agent_driver: Driver,
    runner_token: String,
    log_bytes: u64,
    /// The shell driver's keep-alive arguments (pogo's, without the agent).
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
        let exists = Command::new("podman")
            .args(["image", "exists", "--", &args.image])
            .status()
            .context("running podman: is it installed?")?;
        ensure!(
            exists.success(),
            "image {} is not in podman's local storage: run `make setup` (scripts/setup-test-env.sh)",
            args.image
        );
        let real_podman = find_on_path("podman").context("podman is not on PATH")?;

        let bin = dir.join("bin");
        fs::create_dir(&bin)?;
        let copy = bin.join("pogo");
        fs::copy(&pogo, &copy).with_context(|| format!("copying {}", pogo.display()))?;
        let shim = bin.join("podman-shim");
        fs::copy(std::env::current_exe()?, &shim).context("copying the bench executable")?;

        let working_dir = dir.join("pogo");
        let mut drivers = Vec::new();
        for path in StagePath::BOTH {
            for traced in [false, true] {
                let podman = if traced {
                    format!("podman: {}\n", shim.display())
                } else {
                    String::new()
                };
                fs::write(
                    config_file(&dir, path, traced),
                    format!(
                        "# written by pogo's benchmark\nworking_dir: {0}\ncache_dir: {0}/cache\nstage_runner: {1}\n{podman}",
                        working_dir.display(),
                        path.name()
                    ),
                )?;
            }
            let mut driver = Driver::new(&copy);
            driver.pogo_args = vec![
                "--config".to_string(),
                config_file(&dir, path, false).display().to_string(),
            ];
            // gitlab-runner hands its own environment to every phase; so does the bench,
            // minus anything that would change what pogo does (its config, the tags).
            driver.env = std::env::vars()
                .filter(|(k, _)| {
                    !k.starts_with("POGO_")
                        && !k.starts_with("CUSTOM_ENV_")
                        && !k.starts_with("PGBENCH_")
                })
                .collect();
            driver.tmp_root = dir.clone();
            driver.prepare_retry_interval = Duration::from_millis(100);
            driver.runner_short_token = runner_token.clone();
            drivers.push(driver);
        }
        let agent_driver = drivers.pop().context("driver")?;
        let exec_driver = drivers.pop().context("driver")?;

        let gitlab = FakeGitlab::start("bench")?;
        let (keep_alive, keep_alive_desc) = keep_alive_args();
        Ok(Bench {
            pid,
            image: args.image.clone(),
            pogo: copy,
            shim,
            real_podman,
            dir,
            working_dir,
            gitlab,
            exec_driver,
            agent_driver,
            runner_token,
            log_bytes: args.log_mb * 1_000_000,
            keep_alive,
            keep_alive_desc,
            next_job_id: Mutex::new(1000),
            stages: Mutex::new(Vec::new()),
            builds_dir: Mutex::new(String::new()),
            hostname: Mutex::new(String::new()),
        })
    }

    fn driver(&self, path: StagePath) -> &Driver {
        match path {
            StagePath::Exec => &self.exec_driver,
            StagePath::Agent => &self.agent_driver,
        }
    }

    fn measure(&self, args: &Args, gcl: &GclVolumes) -> Result<Results> {
        let mut results = Results {
            shim_overhead: self.shim_overhead()?,
            ..Results::default()
        };
        let variants = [
            Variant::Floor,
            Variant::Shell,
            Variant::Job(StagePath::Exec),
            Variant::Job(StagePath::Agent),
            Variant::Probe(StagePath::Exec),
            Variant::Probe(StagePath::Agent),
        ];
        // The first pogo job tells which stages the runner runs: the shell driver and the
        // probes use them. One probe per path checks that every byte of the log arrives.
        for path in StagePath::BOTH {
            eprintln!("bench: warm-up job and probe, stage path {}", path.name());
            self.pogo_job(path).context("warm-up pogo job")?;
            self.probe(path, 0, Out::Count)
                .with_context(|| format!("warm-up probe, stage path {}", path.name()))?;
        }
        let rounds = args.warmup + args.runs;
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
                match *v {
                    Variant::Floor => {
                        let d = self.floor().context("floor: podman run --rm")?;
                        let _ = write!(line, " floor {:.0}", ms(d));
                        if measured {
                            results.floor.push(d);
                        }
                    }
                    Variant::Shell => {
                        let r = self.shell_driver().context("shell driver")?;
                        let _ = write!(line, " shell {:.0}", ms(r.total));
                        if measured {
                            results.shell.push(r);
                        }
                    }
                    Variant::Job(path) => {
                        let (r, requests) = self
                            .pogo_job(path)
                            .with_context(|| format!("pogo job, stage path {}", path.name()))?;
                        let _ = write!(line, " pogo-{} {:.0}", path.name(), ms(r.total));
                        if measured {
                            results.api_requests.push(requests);
                            match path {
                                StagePath::Exec => results.exec_jobs.push(r),
                                StagePath::Agent => results.agent_jobs.push(r),
                            }
                        }
                    }
                    Variant::Probe(path) => {
                        let p = self
                            .probe(path, round, Out::Null)
                            .with_context(|| format!("probe, stage path {}", path.name()))?;
                        let _ = write!(
                            line,
                            " probe-{} ({} MB {:.0} vs raw {:.0})",
                            path.name(),
                            self.log_bytes / 1_000_000,
                            ms(p.big),
                            ms(p.raw_big)
                        );
                        if measured {
                            match path {
                                StagePath::Exec => results.exec_probes.push(p),
                                StagePath::Agent => results.agent_probes.push(p),
                            }
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
            eprintln!("{line} (ms)");
        }
        if args.throughput_jobs > 0 {
            let mut binaries = vec![(self.pogo.clone(), "this pogo".to_string())];
            if let Some(b) = &args.baseline {
                binaries.push((b.clone(), format!("baseline ({})", b.display())));
            }
            for parallel in PARALLEL {
                // interleaved: each binary's round follows the other's, then the floor's
                let floor = FLOOR_PER_MINUTE.to_string();
                for (bin, name) in binaries
                    .iter()
                    .map(|(b, n)| (b, n))
                    .chain([(&self.pogo, &floor)])
                {
                    let t = if name == &floor {
                        self.per_minute(name, parallel, args.throughput_jobs, |_| {
                            self.floor().map(|_| None)
                        })
                    } else {
                        self.throughput(bin, name, parallel, args.throughput_jobs)
                    }
                    .with_context(|| format!("jobs per minute, {name}, {parallel} at once"))?;
                    eprintln!(
                        "bench: {name}: {} jobs {parallel} at once in {:.1} s ({:.1} s with removals)",
                        t.jobs,
                        t.wall.as_secs_f64(),
                        t.wall_all.as_secs_f64()
                    );
                    results.throughput.push(t);
                }
            }
        }
        if args.cold_runs > 0 {
            results.cold = Some(self.cold_start(args.cold_runs).context("cold starts")?);
        }
        if args.peer_runs > 0 {
            results.peer = Some(
                self.exec_vs_gitlab_ci_local(args.peer_runs, gcl)
                    .context("pogo exec against gitlab-ci-local")?,
            );
        }
        Ok(results)
    }

    /// `jobs` trivial jobs through `pogo` (fast path), `parallel` at once, as a runner with
    /// that many slots runs them.
    fn throughput(
        &self,
        pogo: &Path,
        name: &str,
        parallel: usize,
        jobs: usize,
    ) -> Result<Throughput> {
        let mut driver = self.agent_driver.clone();
        driver.pogo = pogo.to_path_buf();
        self.per_minute(name, parallel, jobs, |slot| {
            let mut driver = driver.clone();
            driver.concurrent_id = u32::try_from(slot).unwrap_or(0);
            let r = driver.run_job(&self.job()?, None)?;
            ensure!(r.outcome.is_success(), "a job failed:\n{}", r.log);
            Ok(r.config_output.as_ref().and_then(|c| {
                Some(
                    c.get("job_env")?
                        .get(pogo::executor::env::JOB_KEY)?
                        .as_str()?
                        .to_string(),
                )
            }))
        })
    }

    /// `jobs` runs of `one` (given its slot), `parallel` at once; `one` returns the job key
    /// whose background removal the measure waits for at the end (`wall_all`).
    fn per_minute(
        &self,
        name: &str,
        parallel: usize,
        jobs: usize,
        one: impl Fn(usize) -> Result<Option<String>> + Sync,
    ) -> Result<Throughput> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let keys = Mutex::new(Vec::new());
        let cpu_before = busy_cpu();
        let started = Instant::now();
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..parallel)
                .map(|slot| {
                    let (next, keys, one) = (&next, &keys, &one);
                    scope.spawn(move || -> Result<()> {
                        while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < jobs {
                            if let Some(k) = one(slot)? {
                                lock(keys)?.push(k);
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join().map_err(|_| anyhow!("a worker panicked"))??;
            }
            Ok(())
        })?;
        let wall = started.elapsed();
        for k in lock(&keys)?.iter() {
            ensure!(
                pogo::executor::removal::wait(&self.working_dir, k, pogo::executor::removal::WAIT),
                "a background removal never ended"
            );
        }
        let wall_all = started.elapsed();
        Ok(Throughput {
            binary: name.to_string(),
            parallel,
            jobs,
            wall,
            wall_all,
            cpu: busy_cpu().saturating_sub(cpu_before),
        })
    }

    fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.stdin(Stdio::null());
        c
    }

    /// The floor: `podman run --rm IMAGE bash -c 'echo hi'`. Under load podman 4.3's attach
    /// sometimes loses a short container's output (exit 0, nothing printed; seen with 8 at
    /// once): such a run is said on stderr and run again (twice at most), and the time is the
    /// run that printed `hi`.
    fn floor(&self) -> Result<Duration> {
        for _ in 0..3 {
            let mut c = self.podman();
            c.args([
                "run",
                "--rm",
                "--label",
                &format!("io.pogo.bench={}", self.pid),
            ])
            .args(["--", &self.image, "bash", "-c", "echo hi"]);
            let m = measure(&mut c, Out::Capture, false)?;
            m.check("podman run --rm")?;
            let out = String::from_utf8_lossy(&m.stdout);
            if out.trim() == "hi" {
                return Ok(m.elapsed);
            }
            ensure!(out.trim().is_empty(), "unexpected output {out:?}");
            eprintln!(
                "bench: `podman run --rm` exited 0 without its output (podman lost it); again"
            );
        }
        anyhow::bail!("`podman run --rm` printed nothing three times")
    }

    /// The minimal shell driver: `podman run -d`, `podman exec -i CTR bash < script` per
    /// stage, `podman rm -f -t 0`. The stage scripts are generated like the driver's.
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
        let m = measure(&mut c, Out::Capture, false)?;
        phases.push(("podman run -d".to_string(), m.elapsed));
        m.check("podman run -d")?;

        let stages = (|| -> Result<()> {
            for (stage, path) in &scripts {
                let mut c = self.podman();
                c.args(["exec", "-i", &name, "bash"])
                    .stdin(fs::File::open(path)?);
                let m = measure(&mut c, Out::Capture, false)?;
                phases.push((stage.clone(), m.elapsed));
                m.check(&format!("podman exec ({stage})"))?;
                if stage == "build_script" {
                    ensure!(
                        String::from_utf8_lossy(&m.stdout)
                            .lines()
                            .any(|l| l == "hi"),
                        "build_script did not print hi: {}",
                        String::from_utf8_lossy(&m.stdout)
                    );
                }
            }
            Ok(())
        })();

        let mut c = self.podman();
        c.args(["rm", "-f", "-t", "0", "--", &name]);
        let m = measure(&mut c, Out::Capture, false)?;
        phases.push(("podman rm -f".to_string(), m.elapsed));
        let total = t0.elapsed();
        stages?;
        m.check("podman rm -f")?;
        fs::remove_dir_all(&dir)?;
        Ok(PhasedRun {
            phases,
            total,
            removal: Duration::ZERO,
        })
    }

    /// The trivial job through the gitlab-runner imitation on one stage path.
    fn pogo_job(&self, path: StagePath) -> Result<(PhasedRun, usize)> {
        let hits = self.gitlab.hits();
        let (run, r) = self.job_through(self.driver(path), &self.working_dir, &self.job()?)?;
        let requests = self.gitlab.hits() - hits;
        // The path really taken: prepare logs the container's command line.
        let with_agent = r.log.contains(pogo::podman::args::AGENT_PATH)
            && !r.log.contains("stages use podman exec");
        ensure!(
            with_agent == (path == StagePath::Agent),
            "stage path {}: the job {} the agent; job log:\n{}",
            path.name(),
            if with_agent { "used" } else { "did not use" },
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
        Ok((run, requests))
    }

    /// `job` through `driver` (whose pogo config has `working_dir`), checked: it succeeded and
    /// said "hi"; timed by phase, and its background removal until it is over.
    fn job_through(
        &self,
        driver: &Driver,
        working_dir: &Path,
        job: &Job,
    ) -> Result<(PhasedRun, pogo::driver::JobResult)> {
        let t = Instant::now();
        let r = driver.run_job(job, None)?;
        let total = t.elapsed();
        // the removal cleanup left running: timed, and over before the next variant starts
        let t = Instant::now();
        let key = r
            .config_output
            .as_ref()
            .and_then(|c| {
                c.get("job_env")?
                    .get(pogo::executor::env::JOB_KEY)?
                    .as_str()
            })
            .context("the job's key in the config phase's output")?
            .to_string();
        ensure!(
            pogo::executor::removal::wait(working_dir, &key, pogo::executor::removal::WAIT),
            "the job's background removal never ended"
        );
        let removal = t.elapsed();
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
        let run = PhasedRun {
            phases: r.phase_times.clone(),
            total,
            removal,
        };
        Ok((run, r))
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
            .agent_driver
            .phase_env_list(&tmp, &[], &vars, &job.services_env(&vars));
        if tags_known {
            env.push(("POGO_JOB_TAGS".into(), "[]".into()));
        }
        let env = dedup_env(env);
        let mut c = self.pogo_cmd(StagePath::Agent, false, &["config"], &env, &tmp);
        let hits = self.gitlab.hits();
        let m = measure(&mut c, Out::Capture, false)?;
        m.check("pogo config")?;
        let json: Value = serde_json::from_slice(&m.stdout).context("pogo config's output")?;
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
        Ok(m.elapsed)
    }

    /// `pogo [--config C] ARGS` with exactly `env`, in its own process group (like under
    /// gitlab-runner).
    fn pogo_cmd(
        &self,
        path: StagePath,
        traced: bool,
        args: &[&str],
        env: &[(String, String)],
        cwd: &Path,
    ) -> Command {
        use pogo::executor::env::{JOB_CONFIG, JOB_CONFIG_PATH, JOB_PODMAN, JOB_PODMAN_ARGS};
        // untraced: podman itself, not the shim a traced config phase passed on with its
        // config (as for a job whose config phase passed nothing on)
        let passed_on = [JOB_CONFIG, JOB_CONFIG_PATH, JOB_PODMAN, JOB_PODMAN_ARGS];
        let mut c = Command::new(&self.pogo);
        c.arg("--config")
            .arg(config_file(&self.dir, path, traced))
            .args(args)
            .env_clear()
            .envs(
                env.iter()
                    .filter(|(k, _)| traced || !passed_on.contains(&k.as_str()))
                    .map(|(k, v)| (k, v)),
            )
            .current_dir(cwd)
            .stdin(Stdio::null())
            .process_group(0);
        c
    }

    /// What the shim costs per call: the shim around /bin/true minus /bin/true alone.
    fn shim_overhead(&self) -> Result<Duration> {
        let log = self.dir.join("shim-calibration.log");
        let truth = find_on_path("true").unwrap_or_else(|| PathBuf::from("/bin/true"));
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            let mut c = Command::new(&self.shim);
            c.env(TRACE_LOG_ENV, &log)
                .env(TRACE_REAL_ENV, &truth)
                .stdin(Stdio::null());
            with.push(measure(&mut c, Out::Capture, false)?.elapsed);
            let mut c = Command::new(&truth);
            c.stdin(Stdio::null());
            without.push(measure(&mut c, Out::Capture, false)?.elapsed);
        }
        let _ = fs::remove_file(&log);
        let d = stats(&with).0 - stats(&without).0;
        Ok(Duration::from_secs_f64(d.max(0.0) / 1000.0))
    }

    /// A job whose phases the bench calls itself (the driver's environment and stage
    /// scripts), podman behind the timing shim; then, in its container: the stage scripts'
    /// own time, an empty stage and the throughput stage through `pogo run`, and the same
    /// throughput script through a raw `podman exec`.
    fn probe(&self, path: StagePath, round: u32, out: Out) -> Result<Probe> {
        let job = self.job()?;
        let tmp = pogo::driver::process::mkdtemp(&self.dir, &format!("probe-{}-", path.name()))?;
        fs::write(
            tmp.join("response.json"),
            serde_json::to_vec(&job.response_json(&job.payload_variables()))?,
        )?;
        let trace_log = tmp.join("podman-trace.log");
        let trace_env = [
            (TRACE_LOG_ENV.to_string(), trace_log.display().to_string()),
            (
                TRACE_REAL_ENV.to_string(),
                self.real_podman.display().to_string(),
            ),
        ];
        // (phase, start µs, end µs, wall)
        let mut windows: Vec<(String, u128, u128, Duration)> = Vec::new();
        let mut traced =
            |name: &str, args: &[&str], env: &[(String, String)]| -> Result<Measured> {
                let mut env = env.to_vec();
                env.extend(trace_env.iter().cloned());
                let mut c = self.pogo_cmd(path, true, args, &env, &tmp);
                let start = unix_micros();
                let m = measure(&mut c, Out::Capture, false)?;
                windows.push((name.to_string(), start, unix_micros(), m.elapsed));
                m.check(&format!("pogo {name}"))?;
                Ok(m)
            };

        let vars = self.variables(&job, "", "");
        let env = dedup_env(self.driver(path).phase_env_list(&tmp, &[], &vars, ""));
        let m = traced("config", &["config"], &env)?;
        let cfg: Value = serde_json::from_slice(&m.stdout).context("pogo config's output")?;
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
        let env = dedup_env(self.driver(path).phase_env_list(&tmp, &job_env, &vars, ""));
        let env_map: HashMap<String, String> = env.iter().cloned().collect();
        let names = pogo::executor::env::JobEnv::from_env(&env_map, None)
            .map_err(|e| anyhow!("the probe's environment: {e}"))?
            .names;

        let prepared = traced("prepare", &["prepare"], &env);
        let mut probe = Probe::default();
        let body = prepared.and_then(|_| {
            let socket = pogo::executor::agent::socket_path(&self.working_dir, &names.key);
            ensure!(
                socket.exists() == (path == StagePath::Agent),
                "stage path {}: the agent's socket {} {}",
                path.name(),
                socket.display(),
                if socket.exists() {
                    "exists"
                } else {
                    "does not exist"
                }
            );
            let scripts = self.stage_scripts(&job, &tmp)?;
            for (stage, script) in &scripts {
                let script = script.display().to_string();
                traced(stage, &["run", &script, stage], &env)?;
            }
            // the same scripts timed inside the container: bash's start and the script
            let empty = tmp.join("empty");
            fs::write(&empty, ":\n")?;
            for (stage, script) in scripts
                .iter()
                .chain(std::iter::once(&("empty".to_string(), empty.clone())))
            {
                let own = self.own_time(&names.container, script)?;
                probe.own.push((stage.clone(), own));
            }
            let empty_s = empty.display().to_string();
            let mut c = self.pogo_cmd(path, false, &["run", &empty_s, "build_script"], &env, &tmp);
            let m = measure(&mut c, Out::Capture, true)?;
            m.check("pogo run (empty script)")?;
            probe.empty = m.elapsed;
            probe.empty_rss_kb = m.peak_rss_kb;

            let big = tmp.join("log-throughput");
            fs::write(
                &big,
                format!("yes '{LOG_LINE}' | head -c {}\n", self.log_bytes),
            )?;
            let big_s = big.display().to_string();
            let agent = if path == StagePath::Agent {
                self.agent_pid(&names.container)
            } else {
                None
            };
            let agent_before = agent.and_then(proc_cpu);
            // alternate which goes first
            for raw_turn in [round % 2 == 0, round % 2 != 0] {
                if raw_turn {
                    let mut c = self.podman();
                    c.args(["exec", "-i", &names.container, "bash"])
                        .stdin(fs::File::open(&big)?);
                    let m = measure(&mut c, out, true)?;
                    m.check("podman exec (throughput script)")?;
                    self.check_bytes(&m, out, "podman exec")?;
                    probe.raw_big = m.elapsed;
                    probe.raw_cpu = m.cpu;
                } else {
                    let mut c =
                        self.pogo_cmd(path, false, &["run", &big_s, "build_script"], &env, &tmp);
                    let m = measure(&mut c, out, true)?;
                    m.check("pogo run (throughput script)")?;
                    self.check_bytes(&m, out, "pogo run")?;
                    probe.big = m.elapsed;
                    probe.big_rss_kb = m.peak_rss_kb;
                    probe.big_cpu = m.cpu;
                }
            }
            if let Some(pid) = agent {
                probe.agent_hwm_kb = vm_hwm_kb(pid);
                probe.agent_cpu = agent_before
                    .zip(proc_cpu(pid))
                    .map(|(b, a)| a.own.saturating_sub(b.own));
            }
            Ok(())
        });
        let cleaned = traced("cleanup", &["cleanup"], &env);
        body?;
        cleaned?;
        // cleanup hands podman's removal to a process of its own: its calls, once it is over
        let start = unix_micros();
        let t = Instant::now();
        let removed = pogo::executor::removal::wait(
            &self.working_dir,
            &names.key,
            pogo::executor::removal::WAIT,
        );
        ensure!(removed, "the probe's background removal never ended");
        windows.push((REMOVAL.to_string(), start, unix_micros(), t.elapsed()));
        // the 100 MB log copies of pogo tui would pile up in the temp dir
        let state =
            pogo::state::StateDir::new(pogo::state::state_dir(&self.working_dir, &HashMap::new()));
        let _ = fs::remove_file(state.log_path(&names.key));

        let calls = read_trace(&trace_log)?;
        for (name, start, end, wall) in windows {
            let mine: Vec<&(u128, u128, String)> = calls
                .iter()
                .filter(|(s, _, _)| *s >= start && *s <= end)
                .collect();
            probe.phases.push(TracedPhase {
                name,
                wall,
                podman: union_micros(mine.iter().map(|(s, e, _)| (*s, (*e).min(end)))),
                calls: mine
                    .iter()
                    .map(|(s, e, a)| {
                        (
                            call_kind(a),
                            Duration::from_micros(u64::try_from(e.saturating_sub(*s)).unwrap_or(0)),
                        )
                    })
                    .collect(),
            });
        }
        fs::remove_dir_all(&tmp)?;
        Ok(probe)
    }

    /// With [`Out::Count`], every byte of the throughput script must have arrived.
    fn check_bytes(&self, m: &Measured, out: Out, what: &str) -> Result<()> {
        if out == Out::Count {
            ensure!(
                m.stdout_bytes == self.log_bytes,
                "{what}: {} bytes of output arrived, not {}",
                m.stdout_bytes,
                self.log_bytes
            );
        }
        Ok(())
    }

    /// The script's own time in the container: `bash < script` timed by bash itself.
    fn own_time(&self, container: &str, script: &Path) -> Result<Duration> {
        let mut c = self.podman();
        c.args([
            "exec",
            "-i",
            container,
            "bash",
            "-c",
            "s=$EPOCHREALTIME; bash; rc=$?; e=$EPOCHREALTIME; echo \"pogo-bench-own $s $e $rc\" >&2",
        ])
        .stdin(fs::File::open(script)?);
        let m = measure(&mut c, Out::Capture, false)?;
        m.check("podman exec (own time)")?;
        let err = String::from_utf8_lossy(&m.stderr);
        let line = err
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("pogo-bench-own "))
            .with_context(|| format!("no timing from the container's bash: {err}"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let [s, e, rc] = f.as_slice() else {
            bail!("unexpected timing line {line:?}");
        };
        ensure!(
            *rc == "0",
            "{} exited {rc} in the container",
            script.display()
        );
        let (s, e): (f64, f64) = (
            s.parse().context("EPOCHREALTIME (bash ≥ 5 needed)")?,
            e.parse().context("EPOCHREALTIME (bash ≥ 5 needed)")?,
        );
        Ok(Duration::from_secs_f64((e - s).max(0.0)))
    }

    /// pogo-agent's host pid: the child of the container's init (catatonit).
    fn agent_pid(&self, container: &str) -> Option<i32> {
        let out = self
            .podman()
            .args(["inspect", "--format", "{{.State.Pid}}", "--", container])
            .output()
            .ok()?;
        let init: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        let children = fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|p| {
                fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|w| w == b"serve"))
            })
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

    /// The job's variables as gitlab-runner's `GetAllVariables` lists them (the driver's).
    fn variables(&self, job: &Job, builds_dir: &str, project_dir: &str) -> Vec<Variable> {
        let slot = Slot {
            runner_short_token: &self.runner_token,
            concurrent_id: 0,
            builds_dir,
            project_dir,
        };
        all_variables(job, &slot, "running")
    }

    /// Writes the trivial job's stage scripts into `dir`, in the driver's order.
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
                    bail!("the driver ran stage {other}, which the bench does not know")
                }
            };
            let path = dir.join(&stage);
            fs::write(&path, writer.finish())?;
            out.push((stage, path));
        }
        Ok(out)
    }
}

fn config_file(dir: &Path, path: StagePath, traced: bool) -> PathBuf {
    let traced = if traced { "-traced" } else { "" };
    dir.join(format!("pogo-{}{traced}.yaml", path.name()))
}

/// `START_US END_US ARGS` lines written by the shim.
fn read_trace(log: &Path) -> Result<Vec<(u128, u128, String)>> {
    let text = match fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context("reading the podman trace"),
    };
    let mut calls = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ' ');
        let (Some(s), Some(e)) = (f.next(), f.next()) else {
            continue;
        };
        let (Ok(s), Ok(e)) = (s.parse(), e.parse()) else {
            continue;
        };
        calls.push((s, e, f.next().unwrap_or("").to_string()));
    }
    calls.sort();
    Ok(calls)
}

/// Total time covered by the intervals (µs).
fn union_micros(intervals: impl Iterator<Item = (u128, u128)>) -> Duration {
    let mut v: Vec<(u128, u128)> = intervals.collect();
    v.sort_unstable();
    let mut total = 0u128;
    let mut current: Option<(u128, u128)> = None;
    for (s, e) in v {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce - cs;
    }
    Duration::from_micros(u64::try_from(total).unwrap_or(u64::MAX))
}

/// `image exists`, `run`, `rm`, `pod ps`, ... from a podman command line.
fn call_kind(args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        [a, b, ..]
            if matches!(*a, "image" | "pod" | "volume" | "container" | "network")
                && !b.starts_with('-') =>
        {
            format!("{a} {b}")
        }
        [a, ..] => (*a).to_string(),
        [] => "?".into(),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
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

/// pogo's keep-alive for the job container (without the agent), so that the shell driver
/// differs from pogo's exec path only in the phases.
fn keep_alive_args() -> (Vec<String>, String) {
    let keep_alive = pogo::podman::detect_keep_alive();
    let what = match keep_alive {
        KeepAlive::Init(_) | KeepAlive::InitWithAgent { .. } => "catatonit -P",
        KeepAlive::Shell => "sh sleep loop",
    };
    (keep_alive.args(), what.into())
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
    load: String,
}

fn machine_facts() -> Facts {
    let info = PodmanInfo::load();
    let runtime_version = info.get("/host/ociRuntime/version");
    let runtime_version = runtime_version
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .last()
        .unwrap_or("?");
    Facts {
        podman: info.get("/version/Version"),
        runtime: format!("{} {runtime_version}", info.get("/host/ociRuntime/name")),
        storage: info.get("/store/graphDriverName"),
        cgroups: format!(
            "cgroup {}, {}",
            info.get("/host/cgroupVersion"),
            info.get("/host/cgroupManager")
        ),
        rootless: info.mode().into(),
        nproc: machine::nproc(),
        kernel: machine::kernel(),
        os: format!(
            "{} {}",
            info.get("/host/distribution/distribution"),
            info.get("/host/distribution/version")
        ),
        load: fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into()),
    }
}

impl Facts {
    fn line(&self) -> String {
        format!(
            "podman {} ({}), runtime {}, storage {}, {}; {} CPUs; Linux {}; {}; load average at the start {}",
            self.podman,
            self.rootless,
            self.runtime,
            self.storage,
            self.cgroups,
            self.nproc,
            self.kernel,
            self.os,
            self.load
        )
    }
}

// ----- statistics ----------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, min) in milliseconds; NaN for no samples.
fn stats(v: &[Duration]) -> (f64, f64) {
    let mut s: Vec<f64> = v.iter().map(|d| ms(*d)).collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => (f64::NAN, f64::NAN),
        n if n % 2 == 1 => (s[n / 2], s[0]),
        n => ((s[n / 2 - 1] + s[n / 2]) / 2.0, s[0]),
    }
}

fn median(v: &[Duration]) -> f64 {
    stats(v).0
}

/// Median of a phase over runs; `None` unless every run has it.
fn median_of(runs: &[PhasedRun], name: &str) -> Option<f64> {
    let v: Vec<Duration> = runs.iter().filter_map(|r| r.phase(name)).collect();
    (v.len() == runs.len() && !v.is_empty()).then(|| median(&v))
}

fn totals(runs: &[PhasedRun]) -> Vec<Duration> {
    runs.iter().map(|r| r.total).collect()
}

/// Median of the runner's own time between phases: total minus the phases.
fn between(runs: &[PhasedRun]) -> f64 {
    let v: Vec<Duration> = runs
        .iter()
        .map(|p| {
            p.total
                .saturating_sub(p.phases.iter().map(|(_, d)| *d).sum::<Duration>())
        })
        .collect();
    median(&v)
}

/// Median of the per-run sums of the phases (pogo's part of a job).
fn phases_sum(runs: &[PhasedRun]) -> f64 {
    let v: Vec<Duration> = runs
        .iter()
        .map(|p| p.phases.iter().map(|(_, d)| *d).sum::<Duration>())
        .collect();
    median(&v)
}

/// (median, max).
type MedianMax = (f64, f64);

/// Median and max of kB (KiB) samples, in MB (10^6 bytes); `None` without samples.
fn rss_mb(v: impl Iterator<Item = Option<u64>>) -> Option<MedianMax> {
    let mut v: Vec<f64> = v.flatten().map(|kb| kb as f64 * 1024.0 / 1e6).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = match n {
        0 => return None,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Some((med, v[n - 1]))
}

fn opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.1}"),
        _ => "-".into(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**NOT met**"
    }
}

// ----- report --------------------------------------------------------------------------

/// A table: cells may hold Markdown (`code`, **bold**), stripped for the text report.
struct Table {
    title: String,
    header: Vec<String>,
    /// Per column: 'l' left, 'r' right aligned.
    align: Vec<char>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `align`: one 'l' or 'r' per column.
    fn new(title: impl Into<String>, header: &[&str], align: &str) -> Self {
        Table {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            align: align.chars().collect(),
            rows: Vec::new(),
        }
    }

    fn right(&self, i: usize) -> bool {
        self.align.get(i) == Some(&'r')
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, markdown: bool, o: &mut String) {
        if markdown {
            let _ = writeln!(o, "{}\n", self.title);
            let _ = writeln!(o, "| {} |", self.header.join(" | "));
            let align: Vec<&str> = (0..self.header.len())
                .map(|i| if self.right(i) { "---:" } else { "---" })
                .collect();
            let _ = writeln!(o, "|{}|", align.join("|"));
            for r in &self.rows {
                let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
                let _ = writeln!(o, "| {} |", cells.join(" | "));
            }
            let _ = writeln!(o);
            return;
        }
        let _ = writeln!(o, "{}", plain(&self.title));
        let all: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| plain(c)).collect())
            .collect();
        let cols = self.header.len();
        let width: Vec<usize> = (0..cols)
            .map(|i| {
                all.iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &all {
            let mut line = String::from("  ");
            for (i, w) in width.iter().enumerate() {
                let c = r.get(i).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(c.chars().count());
                let gap = if i == 0 { "" } else { "  " };
                if self.right(i) {
                    let _ = write!(line, "{gap}{}{c}", " ".repeat(pad));
                } else {
                    let _ = write!(line, "{gap}{c}{}", " ".repeat(pad));
                }
            }
            let _ = writeln!(o, "{}", line.trim_end());
        }
        let _ = writeln!(o);
    }
}

/// Markdown to plain text: no backticks, no bold.
fn plain(s: &str) -> String {
    s.replace("**", "").replace('`', "")
}

struct Report {
    intro: String,
    tables: Vec<Table>,
    notes: Vec<String>,
}

impl Report {
    fn new(args: &Args, b: &Bench, f: &Facts, r: &Results, wall: Duration) -> Self {
        let stages = b.stages.lock().map(|s| s.clone()).unwrap_or_default();
        let floor = stats(&r.floor);
        let mb = b.log_bytes / 1_000_000;
        let intro = format!(
            "Trivial job (`script: [\"echo hi\"]`, image `{}`, no services, `GIT_STRATEGY: none`, \
             {} run stages), {} interleaved runs of each variant after {} warm-up round(s) (and one \
             warm-up job and probe per stage path); medians, times in ms. Machine: {}.",
            b.image,
            stages.len(),
            args.runs,
            args.warmup,
            f.line()
        );
        let mut tables = Vec::new();

        // whole job
        let mut t = Table::new(
            "**Whole job** (config → cleanup)",
            &["variant", "median", "min", "× floor"],
            "lrrr",
        );
        let mut variant = |name: String, s: (f64, f64)| {
            t.row(vec![
                name,
                format!("{:.1}", s.0),
                format!("{:.1}", s.1),
                format!("{:.2}×", s.0 / floor.0),
            ]);
        };
        variant(
            "floor: `podman run --rm IMAGE bash -c 'echo hi'`".into(),
            floor,
        );
        variant(
            format!(
                "shell driver: `podman run -d`, {} × `podman exec -i CTR bash < script`, `podman rm -f -t 0`",
                stages.len()
            ),
            stats(&totals(&r.shell)),
        );
        for p in StagePath::BOTH {
            variant(
                format!(
                    "pogo, {} (`stage_runner: {}`), via the gitlab-runner imitation",
                    p.label(),
                    p.name()
                ),
                stats(&totals(r.jobs(p))),
            );
        }
        tables.push(t);

        // per phase
        let mut t = Table::new(
            "**Per phase** (as the runner sees them: spawn to exit of each phase)",
            &[
                "phase",
                "shell driver",
                "pogo, `podman exec` stages",
                "pogo, fast path",
            ],
            "lrrr",
        );
        let mut phase_row = |label: String, shell: &str, pogo: &str| {
            t.row(vec![
                label,
                opt(median_of(&r.shell, shell)),
                opt(median_of(&r.exec_jobs, pogo)),
                opt(median_of(&r.agent_jobs, pogo)),
            ]);
        };
        phase_row("config".into(), "", "config");
        phase_row(
            "prepare / `podman run -d`".into(),
            "podman run -d",
            "prepare",
        );
        for s in &stages {
            phase_row(format!("run {s}"), s, s);
        }
        phase_row("cleanup / `podman rm -f`".into(), "podman rm -f", "cleanup");
        let removal =
            |runs: &[PhasedRun]| median(&runs.iter().map(|j| j.removal).collect::<Vec<_>>());
        t.row(vec![
            "*background removal after cleanup returned (not in the total)*".into(),
            "-".into(),
            format!("{:.1}", removal(&r.exec_jobs)),
            format!("{:.1}", removal(&r.agent_jobs)),
        ]);
        t.row(vec![
            "between phases (the runner imitation's own work)".into(),
            "-".into(),
            format!("{:.1}", between(&r.exec_jobs)),
            format!("{:.1}", between(&r.agent_jobs)),
        ]);
        t.row(vec![
            "**total**".into(),
            format!("{:.1}", median(&totals(&r.shell))),
            format!("{:.1}", median(&totals(&r.exec_jobs))),
            format!("{:.1}", median(&totals(&r.agent_jobs))),
        ]);
        tables.push(t);

        // stage overhead
        let own = |stage: &str| -> Option<f64> {
            let v: Vec<Duration> = r
                .agent_probes
                .iter()
                .chain(&r.exec_probes)
                .filter_map(|p| p.own(stage))
                .collect();
            (!v.is_empty()).then(|| median(&v))
        };
        let with_overhead = |t: Option<f64>, own: Option<f64>| match (t, own) {
            (Some(t), Some(o)) => format!("{t:.1} ({:+.1})", t - o),
            (Some(t), None) => format!("{t:.1}"),
            _ => "-".into(),
        };
        let mut t = Table::new(
            "**Run stages**: stage time (overhead = stage time − the script's own time)",
            &[
                "stage",
                "script's own time",
                "shell driver",
                "pogo, `podman exec` stages",
                "pogo, fast path",
            ],
            "lrrrr",
        );
        let mut worst: HashMap<&str, (f64, String)> = HashMap::new();
        for s in &stages {
            let o = own(s);
            let exec = median_of(&r.exec_jobs, s);
            let agent = median_of(&r.agent_jobs, s);
            for (p, v) in [("exec", exec), ("agent", agent)] {
                if let (Some(v), Some(o)) = (v, o) {
                    let e = worst.entry(p).or_insert((f64::MIN, String::new()));
                    if v - o > e.0 {
                        *e = (v - o, s.clone());
                    }
                }
            }
            t.row(vec![
                format!("run {s}"),
                opt(o),
                with_overhead(median_of(&r.shell, s), o),
                with_overhead(exec, o),
                with_overhead(agent, o),
            ]);
        }
        let empty = |p: StagePath| {
            let v: Vec<Duration> = r.probes(p).iter().map(|x| x.empty).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        t.row(vec![
            "empty script `:` (`pogo run` called by the bench)".into(),
            opt(own("empty")),
            "-".into(),
            with_overhead(empty(StagePath::Exec), own("empty")),
            with_overhead(empty(StagePath::Agent), own("empty")),
        ]);
        tables.push(t);

        // throughput
        let secs = |v: &[Duration]| median(v) / 1000.0;
        let raw: Vec<Duration> = r
            .exec_probes
            .iter()
            .chain(&r.agent_probes)
            .map(|p| p.raw_big)
            .collect();
        let raw_s = secs(&raw);
        let mut t = Table::new(
            format!(
                "**Log throughput**: {mb} MB of {}-byte lines (`yes … | head -c {}`) through one stage, stdout to /dev/null",
                LOG_LINE.len() + 1,
                b.log_bytes
            ),
            &[
                "path",
                "time (s)",
                "MB/s",
                "vs raw",
                "CPU time on the host (ms)",
                "`pogo run` peak RSS, median / max (MB)",
            ],
            "lrrrlr",
        );
        let cpu = |v: Vec<Option<Duration>>| -> String {
            let v: Vec<Duration> = v.into_iter().flatten().collect();
            if v.is_empty() {
                "?".into()
            } else {
                format!("{:.0}", median(&v))
            }
        };
        let raw_cpu = cpu(r
            .exec_probes
            .iter()
            .chain(&r.agent_probes)
            .map(|p| p.raw_cpu.map(|c| c.own))
            .collect());
        t.row(vec![
            "raw `podman exec -i CTR bash < script` (same container)".into(),
            format!("{raw_s:.2}"),
            format!("{:.0}", mb as f64 / raw_s),
            "100 %".into(),
            format!("podman exec {raw_cpu}"),
            "-".into(),
        ]);
        // stage path → (share of the raw throughput, RSS median / max in MB)
        let mut throughput: HashMap<&str, (f64, Option<MedianMax>)> = HashMap::new();
        for p in StagePath::BOTH {
            let v: Vec<Duration> = r.probes(p).iter().map(|x| x.big).collect();
            let s = secs(&v);
            let rss = rss_mb(r.probes(p).iter().map(|x| x.big_rss_kb));
            throughput.insert(p.name(), (raw_s / s, rss));
            let own = cpu(r
                .probes(p)
                .iter()
                .map(|x| x.big_cpu.map(|c| c.own))
                .collect());
            let cpu = match p {
                StagePath::Exec => format!(
                    "pogo run {own} + podman exec {}",
                    cpu(r
                        .probes(p)
                        .iter()
                        .map(|x| x.big_cpu.map(|c| c.children))
                        .collect())
                ),
                StagePath::Agent => format!(
                    "pogo run {own} (pogo-agent in the container: {})",
                    cpu(r.probes(p).iter().map(|x| x.agent_cpu).collect())
                ),
            };
            t.row(vec![
                format!("`pogo run`, {}", p.label()),
                format!("{s:.2}"),
                format!("{:.0}", mb as f64 / s),
                format!("{:.0} %", 100.0 * raw_s / s),
                cpu,
                rss.map_or("-".into(), |(m, x)| format!("{m:.1} / {x:.1}")),
            ]);
        }
        tables.push(t);

        // where the time goes
        let mut t = Table::new(
            "**Where pogo's time goes** (probe jobs: the bench calls the phases, podman behind a timing shim)",
            &[
                "phase",
                "stage path",
                "wall",
                "in podman",
                "pogo's own",
                "podman calls (ms each)",
            ],
            "llrrrl",
        );
        for p in StagePath::BOTH {
            let probes = r.probes(p);
            let Some(first) = probes.first() else {
                continue;
            };
            for (i, ph) in first.phases.iter().enumerate() {
                let same: Vec<&TracedPhase> = probes
                    .iter()
                    .filter_map(|x| x.phases.get(i))
                    .filter(|x| x.name == ph.name)
                    .collect();
                let wall: Vec<Duration> = same.iter().map(|x| x.wall).collect();
                let pod: Vec<Duration> = same.iter().map(|x| x.podman).collect();
                let own: Vec<Duration> = same
                    .iter()
                    .map(|x| x.wall.saturating_sub(x.podman))
                    .collect();
                let kinds: Vec<&str> = ph.calls.iter().map(|(k, _)| k.as_str()).collect();
                let calls: Vec<String> = kinds
                    .iter()
                    .enumerate()
                    .map(|(j, k)| {
                        let d: Vec<Duration> = same
                            .iter()
                            .filter(|x| {
                                x.calls
                                    .iter()
                                    .map(|(k, _)| k.as_str())
                                    .eq(kinds.iter().copied())
                            })
                            .filter_map(|x| x.calls.get(j).map(|c| c.1))
                            .collect();
                        format!("{k} {:.0}", median(&d))
                    })
                    .collect();
                t.row(vec![
                    ph.name.clone(),
                    p.name().into(),
                    format!("{:.1}", median(&wall)),
                    format!("{:.1}", median(&pod)),
                    format!("{:.1}", median(&own)),
                    if calls.is_empty() {
                        "-".into()
                    } else {
                        calls.join(", ")
                    },
                ]);
            }
        }
        tables.push(t);

        // targets
        let agent_total = median(&totals(&r.agent_jobs));
        let exec_total = median(&totals(&r.exec_jobs));
        let mut t = Table::new(
            "**Targets** (issues 7 and 18)",
            &["target", "measured", "verdict"],
            "lll",
        );
        let ratio = agent_total / floor.0;
        t.row(vec![
            "whole job, fast path ≤ 0.8 × floor (issue 18; issue 7 asked ≤ 1.5×)".into(),
            format!("{ratio:.2}× ({agent_total:.0} / {:.0} ms)", floor.0),
            verdict(ratio <= 0.8).into(),
        ]);
        let phases_ratio = phases_sum(&r.agent_jobs) / floor.0;
        t.row(vec![
            "… pogo's phases only (without the imitation's work between them)".into(),
            format!("{phases_ratio:.2}×"),
            verdict(phases_ratio <= 0.8).into(),
        ]);
        let removal = median(&r.agent_jobs.iter().map(|j| j.removal).collect::<Vec<_>>());
        t.row(vec![
            "… with the background removal added (the machine's work per job)".into(),
            format!("{:.2}×", (agent_total + removal) / floor.0),
            "-".into(),
        ]);
        t.row(vec![
            "whole job, `podman exec` stages (for comparison; ≈ 3.7× before the fast path)".into(),
            format!("{:.2}×", exec_total / floor.0),
            "-".into(),
        ]);
        for p in StagePath::BOTH {
            let (w, stage) = worst
                .get(p.name())
                .cloned()
                .unwrap_or((f64::NAN, String::new()));
            t.row(vec![
                format!("each run stage ≤ 15 ms overhead, {}", p.label()),
                format!("worst +{w:.1} ms ({stage})"),
                verdict(w <= 15.0).into(),
            ]);
        }
        for p in StagePath::BOTH {
            let (share, _) = throughput
                .get(p.name())
                .cloned()
                .unwrap_or((f64::NAN, None));
            t.row(vec![
                format!("log throughput ≥ 90 % of raw `podman exec`, {}", p.label()),
                format!("{:.0} %", 100.0 * share),
                verdict(share >= 0.9).into(),
            ]);
        }
        for p in StagePath::BOTH {
            let rss = throughput.get(p.name()).and_then(|x| x.1);
            t.row(vec![
                format!(
                    "`pogo run` peak RSS ≤ 15 MB during the {mb} MB stage, {}",
                    p.label()
                ),
                rss.map_or("-".into(), |(_, x)| format!("max {x:.1} MB")),
                rss.map_or("-", |(_, x)| verdict(x <= 15.0)).into(),
            ]);
        }
        let cfg: Vec<Duration> = r
            .exec_jobs
            .iter()
            .chain(&r.agent_jobs)
            .filter_map(|j| j.phase("config"))
            .collect();
        let (cfg_med, _) = stats(&cfg);
        t.row(vec![
            "`pogo config` ≤ 20 ms, in the jobs".into(),
            format!("{cfg_med:.1} ms"),
            verdict(cfg_med <= 20.0).into(),
        ]);
        let (http, http_min) = stats(&r.config_http);
        t.row(vec![
            "`pogo config` ≤ 20 ms, alone, tags over HTTP".into(),
            format!("{http:.1} ms (min {http_min:.1})"),
            verdict(http <= 20.0).into(),
        ]);
        let (nohttp, nohttp_min) = stats(&r.config_no_http);
        t.row(vec![
            "`pogo config` alone, `POGO_JOB_TAGS` set (no HTTP)".into(),
            format!("{nohttp:.1} ms (min {nohttp_min:.1})"),
            "-".into(),
        ]);
        tables.push(t);

        if let Some(c) = &r.cold {
            let mut t = Table::new(
                format!(
                    "**Cold starts** (the trivial job, fast path, {} rounds each; each against the job right after it)",
                    c.fresh.len()
                ),
                &["first job", "whole job (ms)", "prepare (ms)", "the next job (ms)", "its prepare (ms)"],
                "lrrrr",
            );
            let med = |v: Vec<Duration>| median(&v);
            let prep = |runs: &mut dyn Iterator<Item = &PhasedRun>| {
                med(runs.filter_map(|x| x.phase("prepare")).collect())
            };
            t.row(vec![
                "of a fresh `working_dir` (agent and catatonit not yet copied, no state)".into(),
                format!("{:.0}", med(c.fresh.iter().map(|x| x.0.total).collect())),
                format!("{:.0}", prep(&mut c.fresh.iter().map(|x| &x.0))),
                format!("{:.0}", med(c.fresh.iter().map(|x| x.1.total).collect())),
                format!("{:.0}", prep(&mut c.fresh.iter().map(|x| &x.1))),
            ]);
            match &c.pulled {
                Ok(p) => {
                    let total = med(p.runs.iter().map(|x| x.0.total).collect());
                    let pull = med(p.runs.iter().map(|x| x.1).collect());
                    t.row(vec![
                        format!(
                            "with its image pulled from a registry on 127.0.0.1 ({:.1} MB, one layer): `podman pull` {pull:.0} ms, {:.0} % of the job",
                            p.size as f64 / 1e6,
                            100.0 * pull / total
                        ),
                        format!("{total:.0}"),
                        format!("{:.0}", prep(&mut p.runs.iter().map(|x| &x.0))),
                        format!("{:.0}", med(p.runs.iter().map(|x| x.2.total).collect())),
                        format!("{:.0}", prep(&mut p.runs.iter().map(|x| &x.2))),
                    ]);
                }
                Err(why) => t.row(vec![
                    format!("with its image pulled from a loopback registry: not measured: {why}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]),
            }
            tables.push(t);
        }
        let mut peer_notes = Vec::new();
        match &r.peer {
            Some(Peer::Measured {
                version,
                pogo,
                glcl,
                leftovers,
            }) => {
                let (p, g) = peers::medians(pogo, glcl);
                let mut t = Table::new(
                    format!(
                        "**`pogo exec` against gitlab-ci-local {version}** (one-job pipeline `script: [\"echo hi\"]`, image `{}`, `--container-executable podman`, its helper image `{}`, interleaved, {} runs each; peak RSS of the tool's own process)",
                        args.image,
                        "localhost/pogo-test/busybox",
                        pogo.len()
                    ),
                    &["tool", "wall median (ms)", "wall min (ms)", "peak RSS median / max (MB)"],
                    "lrrr",
                );
                for (name, runs) in [("`pogo exec`", pogo), ("gitlab-ci-local", glcl)] {
                    let walls: Vec<Duration> = runs.iter().map(|r| r.0).collect();
                    let (med, min) = stats(&walls);
                    let rss = rss_mb(runs.iter().map(|r| r.1));
                    t.row(vec![
                        name.into(),
                        format!("{med:.0}"),
                        format!("{min:.0}"),
                        rss.map_or("-".into(), |(m, x)| format!("{m:.1} / {x:.1}")),
                    ]);
                }
                t.row(vec![
                    "goal: `pogo exec` ≤ 0.2× gitlab-ci-local's wall".into(),
                    format!("{:.2}×", p / g),
                    verdict(p / g <= 0.2).into(),
                    String::new(),
                ]);
                tables.push(t);
                if *leftovers > 0 {
                    peer_notes.push(format!(
                        "gitlab-ci-local left {leftovers} volumes behind (removed by the bench)."
                    ));
                }
            }
            Some(Peer::NotMeasured(why)) => {
                peer_notes.push(format!(
                    "`pogo exec` against gitlab-ci-local: not measured: {why}."
                ));
            }
            None => {}
        }
        if !r.throughput.is_empty() {
            let mut t = Table::new(
                "**Jobs per minute** (trivial jobs, fast path, N at once as a runner with N slots runs them; a job ends when its cleanup returns, as gitlab-runner sees it)",
                &[
                    "binary",
                    "at once",
                    "jobs",
                    "jobs/min",
                    "jobs/min until every removal was over",
                    "machine CPU per job (all processes)",
                ],
                "llrrrr",
            );
            for x in &r.throughput {
                let per_min = |d: Duration| x.jobs as f64 * 60.0 / d.as_secs_f64().max(0.001);
                t.row(vec![
                    x.binary.clone(),
                    x.parallel.to_string(),
                    x.jobs.to_string(),
                    format!("{:.0}", per_min(x.wall)),
                    format!("{:.0}", per_min(x.wall_all)),
                    format!("{:.0} ms", ms(x.cpu) / x.jobs as f64),
                ]);
            }
            tables.push(t);
            let mut t = Table::new(
                "**Jobs per minute against the goal** (issue 18: twice the baseline's, measured in the same rounds; the floor shows what podman alone allows)",
                &["at once", "this pogo", "baseline", "× baseline (goal ≥ 2×)", "floor `podman run --rm`", "this pogo ÷ floor"],
                "rrrrrr",
            );
            let rate = |who: &str, parallel: usize| {
                r.throughput
                    .iter()
                    .find(|x| {
                        x.parallel == parallel && (x.binary == who || x.binary.starts_with(who))
                    })
                    .map(|x| x.jobs as f64 * 60.0 / x.wall.as_secs_f64().max(0.001))
            };
            for parallel in PARALLEL {
                let this = rate("this pogo", parallel);
                let base = rate("baseline", parallel);
                let floor = rate(FLOOR_PER_MINUTE, parallel);
                let ratio = this.zip(base).map(|(a, b)| a / b);
                t.row(vec![
                    parallel.to_string(),
                    opt(this),
                    opt(base),
                    ratio.map_or("- (no `--baseline`)".into(), |x| {
                        format!("{x:.2}× {}", verdict(x >= 2.0))
                    }),
                    opt(floor),
                    this.zip(floor)
                        .map_or("-".into(), |(a, b)| format!("{:.2}×", a / b)),
                ]);
            }
            tables.push(t);
        }

        let mut requests: Vec<usize> = r.api_requests.clone();
        requests.sort_unstable();
        requests.dedup();
        let requests: Vec<String> = requests.iter().map(usize::to_string).collect();
        let empty_rss: Vec<String> = StagePath::BOTH
            .iter()
            .filter_map(|p| {
                rss_mb(r.probes(*p).iter().map(|x| x.empty_rss_kb))
                    .map(|(m, _)| format!("{} {m:.1} MB", p.name()))
            })
            .collect();
        let agent_rss = rss_mb(r.agent_probes.iter().map(|x| x.agent_hwm_kb));
        let probes_n = r.exec_probes.len();
        let notes = vec![
            format!(
                "How the overhead of a stage is measured: the stage time is what the runner \
                 measures (spawn to exit of `pogo run`, or of `podman exec` for the shell driver). \
                 The script's own time is measured inside a job container: `podman exec -i CTR bash \
                 -c 's=$EPOCHREALTIME; bash; e=$EPOCHREALTIME' < script` — bash's start and the \
                 script, nothing of podman or pogo (median of {} runs per script). The empty script \
                 `:` shows the fixed cost of a stage.",
                2 * probes_n
            ),
            format!(
                "Throughput and memory: in each probe job the {mb} MB script runs through \
                 `pogo run` (the driver's environment, stdout to /dev/null; pogo still writes its \
                 redacted log copy for `pogo tui`) and through a raw `podman exec` in the same \
                 container, alternating which goes first; the warm-up probes counted every byte \
                 on both paths. Peak RSS: VmHWM of the `pogo run` process, sampled every {} ms; \
                 for comparison, on the empty stage: {}. pogo-agent's own peak RSS in the \
                 container: {}. CPU time: user + system from /proc/PID/stat as each process \
                 ends; on the exec path \"+ podman exec\" is the child pogo waited for; conmon \
                 and the script's processes are not counted.",
                RSS_POLL.as_millis(),
                if empty_rss.is_empty() {
                    "-".into()
                } else {
                    empty_rss.join(", ")
                },
                agent_rss.map_or("-".into(), |(m, x)| format!(
                    "median {m:.1} MB, max {x:.1} MB"
                ))
            ),
            format!(
                "Where the time goes: the probe jobs' phases with `podman:` set to a shim that \
                 logs each call's start and end; \"in podman\" is the time at least one podman \
                 call ran, \"pogo's own\" the rest of the phase (it includes the shim's own start, \
                 {:.1} ms per call). The shell driver's container runs `{}`, pogo's exec path the \
                 same, the fast path `catatonit -- pogo-agent serve SOCKET`.",
                ms(r.shim_overhead),
                b.keep_alive_desc
            ),
            format!(
                "Requests to the fake GitLab API per pogo job: {}. `pogo config` alone: {} \
                 samples each, with the driver's config_exec environment. The bench took {:.0} s.",
                requests.join("/"),
                r.config_http.len(),
                wall.as_secs_f64()
            ),
        ];
        Report {
            intro,
            tables,
            notes: notes.into_iter().chain(peer_notes).collect(),
        }
    }

    fn render(&self, markdown: bool) -> String {
        let mut o = String::new();
        if !markdown {
            let _ = writeln!(o);
        }
        let intro = if markdown {
            self.intro.clone()
        } else {
            plain(&self.intro)
        };
        let _ = writeln!(o, "{intro}\n");
        for t in &self.tables {
            t.render(markdown, &mut o);
        }
        for n in &self.notes {
            let n = if markdown { n.clone() } else { plain(n) };
            let _ = writeln!(o, "{n}\n");
        }
        o
    }
}
