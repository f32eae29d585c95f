//! Running one executor phase the way gitlab-runner's `helpers/process`
//! does on Unix: own process group, stdin `/dev/null`, SIGTERM to the group
//! when the deadline passes, SIGKILL after the graceful timeout.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long to keep reading a phase's output after the phase exited (a
/// grandchild may still hold the pipe open).
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a phase is stopped at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The job was canceled.
    Canceled,
    /// The job (or phase) timeout passed.
    Timeout,
}

/// When and why to stop a phase.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub reason: StopReason,
}

/// Where a phase's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutMode {
    /// stdout and stderr share one pipe (job log or runner log).
    Combined,
    /// stdout is captured on its own (config_exec); stderr goes to `output`.
    Separate,
}

/// Everything needed to start a phase.
#[derive(Debug, Clone)]
pub struct PhaseCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Final environment (the child gets exactly this).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub run_as: Option<(u32, u32)>,
    pub stdout: StdoutMode,
}

/// How the phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
    /// Still running after SIGTERM and SIGKILL (gitlab-runner: "failed to
    /// kill process, likely process is dormant").
    Dormant {
        pid: i32,
    },
}

impl Termination {
    fn from_status(s: ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            (Some(c), _) => Termination::Exited(c),
            (None, Some(sig)) => Termination::Signaled(sig),
            (None, None) => Termination::Exited(-1),
        }
    }

    /// The code gitlab-runner sees (`-1` for a signal).
    pub fn exit_code(self) -> i32 {
        match self {
            Termination::Exited(c) => c,
            Termination::Signaled(_) | Termination::Dormant { .. } => -1,
        }
    }
}

/// What happened when a phase had to be stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillReport {
    pub reason: StopReason,
    /// Time from phase start to SIGTERM.
    pub sigterm_after: Duration,
    /// Time from SIGTERM until the phase exited (None: it never did).
    pub exited_after_sigterm: Option<Duration>,
    /// Whether SIGKILL had to be sent.
    pub sigkilled: bool,
}

/// Result of one phase.
#[derive(Debug, Clone)]
pub struct PhaseOutput {
    pub termination: Termination,
    /// Combined output, or only stderr in `StdoutMode::Separate`.
    pub output: Vec<u8>,
    /// stdout in `StdoutMode::Separate`, empty otherwise.
    pub stdout: Vec<u8>,
    pub duration: Duration,
    pub kill: Option<KillReport>,
    /// The output pipes were still open `OUTPUT_DRAIN_TIMEOUT` after exit.
    pub output_truncated: bool,
}

fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// Called from a reader thread with each chunk of job-log output as it arrives.
pub type OutputCallback = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// An output callback that sets the returned flag (the `cancel` of [`run_phase_live`]) once the
/// output shows `marker`, also when a chunk boundary splits it; every chunk goes on to `then`.
/// Like a user who presses "Cancel" on seeing a line in the job log.
pub fn cancel_on_output(
    marker: &str,
    then: Option<OutputCallback>,
) -> (OutputCallback, Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    let marker = marker.as_bytes().to_vec();
    let tail = Mutex::new(Vec::<u8>::new());
    let callback: OutputCallback = Arc::new(move |bytes: &[u8]| {
        if let Ok(mut t) = tail.lock() {
            t.extend_from_slice(bytes);
            if !marker.is_empty() && t.windows(marker.len()).any(|w| w == marker.as_slice()) {
                set.store(true, Ordering::SeqCst);
            }
            let keep = marker.len().saturating_sub(1).min(t.len());
            let cut = t.len() - keep;
            t.drain(..cut);
        }
        if let Some(then) = &then {
            then(bytes);
        }
    });
    (callback, flag)
}

/// Reads `fd` to EOF in a thread, handing each chunk to `live` too; signals `done` when
/// finished.
fn reader(
    fd: OwnedFd,
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Sender<()>,
    live: Option<OutputCallback>,
) {
    thread::spawn(move || {
        let mut file = std::fs::File::from(fd);
        let mut chunk = [0u8; 8192];
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    if let Ok(mut b) = buf.lock() {
                        b.extend_from_slice(&chunk[..n]);
                    }
                    if let Some(live) = &live {
                        live(&chunk[..n]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
}

fn take(buf: &Arc<Mutex<Vec<u8>>>) -> Vec<u8> {
    buf.lock()
        .map(|mut b| std::mem::take(&mut *b))
        .unwrap_or_default()
}

/// Waits for the child's exit status (sent by the waiter thread) until `until` passes.
/// No polling: the phase's real duration is measured to the microsecond.
fn wait_until(
    exited: &mpsc::Receiver<std::io::Result<ExitStatus>>,
    until: Option<Instant>,
) -> std::io::Result<Option<ExitStatus>> {
    let received = match until {
        None => exited.recv().map_err(|_| ()),
        Some(u) => exited
            .recv_timeout(u.saturating_duration_since(Instant::now()))
            .map_err(|_| ()),
    };
    match received {
        Ok(status) => status.map(Some),
        // timed out (or the waiter is gone, which only happens after it sent)
        Err(()) => Ok(None),
    }
}

/// How often a phase that may be canceled while it runs checks whether it is.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// [`wait_until`] that also returns (with `Ok(None)`, as at the deadline) once `cancel` is set.
fn wait_until_or_canceled(
    exited: &mpsc::Receiver<std::io::Result<ExitStatus>>,
    until: Option<Instant>,
    cancel: Option<&AtomicBool>,
) -> std::io::Result<(Option<ExitStatus>, bool)> {
    let Some(cancel) = cancel else {
        return wait_until(exited, until).map(|s| (s, false));
    };
    loop {
        if cancel.load(Ordering::SeqCst) {
            // a phase that printed the text and ended meanwhile ended by itself
            return match exited.try_recv() {
                Ok(status) => status.map(|s| (Some(s), false)),
                Err(_) => Ok((None, true)),
            };
        }
        let step = Instant::now() + CANCEL_POLL;
        let at = until.map_or(step, |u| u.min(step));
        if let Some(status) = wait_until(exited, Some(at))? {
            return Ok((Some(status), false));
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return Ok((None, false));
        }
    }
}

/// Moves the child to a thread that blocks in `wait()` and reports its status.
fn spawn_waiter(mut child: Child) -> mpsc::Receiver<std::io::Result<ExitStatus>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx
}

fn signal_group(pid: i32, sig: Signal) {
    // ESRCH (group already gone) is fine.
    let _ = killpg(Pid::from_raw(pid), sig);
}

/// Starts the phase and waits for it, enforcing `deadline`.
pub fn run_phase(
    cmd: &PhaseCommand,
    deadline: Option<Deadline>,
    graceful_kill_timeout: Duration,
    force_kill_timeout: Duration,
) -> std::io::Result<PhaseOutput> {
    run_phase_live(
        cmd,
        deadline,
        graceful_kill_timeout,
        force_kill_timeout,
        None,
        None,
    )
}

/// [`run_phase`], handing the output that goes to the job log (the combined output, or
/// stderr in [`StdoutMode::Separate`]) to `live` as it arrives. [`PhaseOutput::output`]
/// still holds all of it. Once `cancel` is set the phase is stopped as at a deadline, with
/// [`StopReason::Canceled`].
pub fn run_phase_live(
    cmd: &PhaseCommand,
    deadline: Option<Deadline>,
    graceful_kill_timeout: Duration,
    force_kill_timeout: Duration,
    live: Option<OutputCallback>,
    cancel: Option<Arc<AtomicBool>>,
) -> std::io::Result<PhaseOutput> {
    let out_buf = Arc::new(Mutex::new(Vec::new()));
    let stdout_buf = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let mut readers = 0;

    let started = Instant::now();
    let child = {
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args)
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&cmd.cwd)
            .stdin(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = cmd.run_as {
            c.uid(uid).gid(gid);
        }
        let (out_r, out_w) = cloexec_pipe()?;
        match cmd.stdout {
            StdoutMode::Combined => {
                c.stdout(Stdio::from(out_w.try_clone()?));
                c.stderr(Stdio::from(out_w));
            }
            StdoutMode::Separate => {
                let (so_r, so_w) = cloexec_pipe()?;
                c.stdout(Stdio::from(so_w));
                c.stderr(Stdio::from(out_w));
                reader(so_r, Arc::clone(&stdout_buf), done_tx.clone(), None);
                readers += 1;
            }
        }
        reader(out_r, Arc::clone(&out_buf), done_tx.clone(), live);
        readers += 1;
        // `c` (holding the write ends) is dropped at the end of this block,
        // so the readers see EOF once the phase and its children are gone.
        c.spawn()?
    };
    drop(done_tx);
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let exited = spawn_waiter(child);

    let mut kill = None;
    let (status, canceled) =
        wait_until_or_canceled(&exited, deadline.map(|d| d.at), cancel.as_deref())?;
    let termination = match status {
        Some(status) => Termination::from_status(status),
        None => {
            let reason = match deadline {
                _ if canceled => StopReason::Canceled,
                Some(d) => d.reason,
                None => StopReason::Timeout,
            };
            let sigterm_at = Instant::now();
            signal_group(pid, Signal::SIGTERM);
            let mut report = KillReport {
                reason,
                sigterm_after: sigterm_at - started,
                exited_after_sigterm: None,
                sigkilled: false,
            };
            let mut status = wait_until(&exited, Some(sigterm_at + graceful_kill_timeout))?;
            if status.is_none() {
                signal_group(pid, Signal::SIGKILL);
                report.sigkilled = true;
                status = wait_until(&exited, Some(Instant::now() + force_kill_timeout))?;
            }
            let t = match status {
                Some(s) => {
                    report.exited_after_sigterm = Some(sigterm_at.elapsed());
                    Termination::from_status(s)
                }
                None => Termination::Dormant { pid },
            };
            kill = Some(report);
            t
        }
    };
    let duration = started.elapsed();

    let drain_until = Instant::now() + OUTPUT_DRAIN_TIMEOUT;
    let mut finished = 0;
    while finished < readers {
        let left = drain_until.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => finished += 1,
            Err(_) => break,
        }
    }
    Ok(PhaseOutput {
        termination,
        output: take(&out_buf),
        stdout: take(&stdout_buf),
        duration,
        kill,
        output_truncated: finished < readers,
    })
}

/// Creates `<dir>/<prefix>XXXXXX` with mode 0700 (`os.MkdirTemp`).
pub fn mkdtemp(dir: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    let template = dir.join(format!("{prefix}XXXXXX"));
    nix::unistd::mkdtemp(&template).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sh(script: &str) -> PhaseCommand {
        PhaseCommand {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("X".into(), "1".into()),
            ],
            cwd: PathBuf::from("/"),
            run_as: None,
            stdout: StdoutMode::Combined,
        }
    }

    #[test]
    fn exit_codes_and_output() {
        let o = run_phase(
            &sh("echo out; echo err >&2; exit 3"),
            None,
            Duration::ZERO,
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(o.termination, Termination::Exited(3));
        assert_eq!(String::from_utf8_lossy(&o.output), "out\nerr\n");
        assert!(o.kill.is_none());
    }

    #[test]
    fn live_output_arrives_while_the_phase_still_runs() {
        // The script prints a line, then waits (up to 10 s) for a file that only the live
        // callback creates on seeing that line: "second" is printed only if the first chunk
        // was delivered while the phase still ran. No clock involved, so load cannot flake it.
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("seen");
        let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let (s, f) = (Arc::clone(&seen), flag.clone());
        let live: OutputCallback = Arc::new(move |b: &[u8]| {
            if b.starts_with(b"first") {
                std::fs::write(&f, "").unwrap();
            }
            s.lock().unwrap().push(b.to_vec());
        });
        let script = format!(
            "echo first; i=0; while [ ! -e '{f}' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
             if [ -e '{f}' ]; then echo second >&2; else echo 'no live chunk' >&2; fi",
            f = flag.display()
        );
        let o = run_phase_live(
            &sh(&script),
            None,
            Duration::ZERO,
            Duration::ZERO,
            Some(live),
            None,
        )
        .unwrap();
        let seen = seen.lock().unwrap();
        let all: Vec<u8> = seen.iter().flatten().copied().collect();
        assert_eq!(all, o.output, "the live chunks add up to the output");
        assert_eq!(seen[0], b"first\n");
        assert_eq!(
            String::from_utf8_lossy(&o.output),
            "first\nsecond\n",
            "the first chunk must reach the callback while the phase runs"
        );
    }

    #[test]
    fn separate_stdout_and_clean_env() {
        let mut c = sh("echo \"$X-$HOME\"; echo e >&2; read l || echo eof");
        c.stdout = StdoutMode::Separate;
        let o = run_phase(&c, None, Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "1-\neof\n");
        assert_eq!(String::from_utf8_lossy(&o.output), "e\n");
    }

    /// Runs `script` and cancels it once it prints `ready` (after setting up its traps), with
    /// the given graceful timeout.
    fn cancel_when_ready(script: &str, graceful: Duration) -> PhaseOutput {
        let (live, cancel) = cancel_on_output("ready", None);
        // a deadline far off, so a `ready` never seen fails the test (reason Timeout) instead
        // of hanging it
        let never = Deadline {
            at: Instant::now() + Duration::from_secs(60),
            reason: StopReason::Timeout,
        };
        run_phase_live(
            &sh(script),
            Some(never),
            graceful,
            Duration::from_secs(5),
            Some(live),
            Some(cancel),
        )
        .unwrap()
    }

    #[test]
    fn sigterm_reaches_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-got-term");
        let trapped = dir.path().join("trapped");
        // the inner shell sets its trap, then says so; the outer one waits for that before
        // printing `ready`
        let script = format!(
            "sh -c 'trap \"touch {m} ; exit 0\" TERM; touch {t}; sleep 100 & wait' & \
             while [ ! -e {t} ]; do sleep 0.02; done; echo ready; wait; exit 0",
            m = marker.display(),
            t = trapped.display()
        );
        let o = cancel_when_ready(&script, Duration::from_secs(5));
        let k = o.kill.unwrap();
        assert_eq!(k.reason, StopReason::Canceled);
        assert!(!k.sigkilled);
        assert!(k.exited_after_sigterm.unwrap() < Duration::from_secs(3));
        assert!(marker.exists(), "grandchild did not get SIGTERM");
    }

    #[test]
    fn sigkill_after_graceful_timeout() {
        let o = cancel_when_ready(
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
            Duration::from_millis(300),
        );
        let k = o.kill.unwrap();
        assert!(k.sigkilled);
        assert_eq!(o.termination, Termination::Signaled(9));
        assert_eq!(o.termination.exit_code(), -1);
    }

    #[test]
    fn the_deadline_stops_a_phase_with_its_reason() {
        let d = Deadline {
            at: Instant::now() + Duration::from_millis(100),
            reason: StopReason::Timeout,
        };
        let o = run_phase(
            &sh("sleep 30"),
            Some(d),
            Duration::from_secs(5),
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(o.kill.unwrap().reason, StopReason::Timeout);
        assert_eq!(o.termination, Termination::Signaled(15));
    }

    #[test]
    fn a_phase_that_ended_when_the_cancel_comes_ended_by_itself() {
        let (tx, exited) = mpsc::channel();
        tx.send(Ok(ExitStatus::from_raw(3 << 8))).unwrap();
        let cancel = AtomicBool::new(true);
        let (status, canceled) = wait_until_or_canceled(&exited, None, Some(&cancel)).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(3));
        assert!(!canceled);
        // still running: canceled
        let (_tx, running) = mpsc::channel::<std::io::Result<ExitStatus>>();
        let (status, canceled) = wait_until_or_canceled(&running, None, Some(&cancel)).unwrap();
        assert!(status.is_none() && canceled);
    }

    #[test]
    fn a_cancel_marker_split_across_chunks_is_still_seen() {
        let (live, cancel) = cancel_on_output("ready", None);
        live(b"not yet re");
        assert!(!cancel.load(Ordering::SeqCst));
        live(b"ady\n");
        assert!(cancel.load(Ordering::SeqCst));
    }

    #[test]
    fn background_child_holding_pipe_does_not_hang() {
        let t = Instant::now();
        let o = run_phase(
            &sh("sleep 30 & echo started"),
            None,
            Duration::ZERO,
            Duration::ZERO,
        )
        .unwrap();
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(o.output_truncated);
        assert_eq!(String::from_utf8_lossy(&o.output), "started\n");
    }

    #[test]
    fn mkdtemp_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = mkdtemp(dir.path(), "custom-executor").unwrap();
        assert!(d
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("custom-executor"));
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
