//! The fast stage path: `pogo-agent` (src/agent/main.rs, built static by build.rs and embedded
//! here) runs inside the job container under catatonit and listens on a unix socket in a
//! per-job host directory. `pogo run` connects and streams the stage script to it instead of
//! starting `podman exec` (~0.1–0.2 s) for every stage. Same exit codes, same output.

use crate::podman::args::SOCKET_NAME;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// The agent program, empty when build.rs could not link it statically.
pub const AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pogo-agent"));
/// Identifies this build of the agent (file names of installed copies).
pub const AGENT_ID: &str = env!("POGO_AGENT_ID");

const MAX_FRAME: u32 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach the stage agent at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the stage agent connection broke: {0}")]
    Io(#[from] std::io::Error),
    #[error("the stage agent ended the stage without an exit code")]
    NoExit,
    /// Something other than the agent's socket is at its path: the directory is writable from
    /// inside the job container, and a link there could lead pogo to another job's agent.
    #[error("{path} is not the stage agent's socket (it is a {found}): the job replaced it, so its stages cannot run; do not touch /run/pogo/sock in jobs")]
    NotASocket { path: PathBuf, found: &'static str },
}

/// The agent binary on the host, written once per build into `<working_dir>/agent/`.
/// `None` when this pogo has no static agent (then stages use `podman exec`).
pub fn install(working_dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let Some(path) = installed_path(working_dir) else {
        return Ok(None);
    };
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    install_file(working_dir, &name, AGENT.len() as u64, |to| {
        std::fs::write(to, AGENT)
    })
    .map(Some)
}

/// Where [`install`] puts this build's agent; none when this pogo has no static agent.
pub fn installed_path(working_dir: &Path) -> Option<PathBuf> {
    (!AGENT.is_empty()).then(|| {
        working_dir
            .join("agent")
            .join(format!("pogo-agent-{AGENT_ID}"))
    })
}

/// pogo's own copy of a host program it puts into job containers (catatonit, gitlab-runner),
/// in `<working_dir>/agent/`: nothing pogo injects is read from a system path, so pogo may
/// relabel what it mounts for SELinux (`z`) without touching a file it does not own. Named
/// after the source's size and modification time: copied once per version.
pub fn own_copy(working_dir: &Path, src: &Path, stem: &str) -> std::io::Result<PathBuf> {
    let meta = std::fs::metadata(src)?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("{stem}-{}-{mtime}", meta.len());
    install_file(working_dir, &name, meta.len(), |to| {
        std::fs::copy(src, to).map(|_| ())
    })
}

/// `<working_dir>/agent/NAME`, executable, made by `write` (into a temporary file, then
/// renamed) unless a file of `len` bytes is there already.
fn install_file(
    working_dir: &Path,
    name: &str,
    len: u64,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let dir = working_dir.join("agent");
    let path = dir.join(name);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == len) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let made = write(&tmp).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &path)
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made.map(|()| path)
}

/// The per-job directory holding the agent's socket on the host.
pub fn socket_dir(working_dir: &Path, job_key: &str) -> PathBuf {
    working_dir.join("run").join(job_key)
}

/// The agent's socket on the host.
pub fn socket_path(working_dir: &Path, job_key: &str) -> PathBuf {
    socket_dir(working_dir, job_key).join(SOCKET_NAME)
}

/// Create the per-job socket directory without a stale socket from an earlier attempt. Its
/// parent, `<working_dir>/run`, is 0700: only the runner's user may reach the agent. The
/// directory itself is 0777, so an agent running as the image's non-root `USER` (a uid other
/// than the runner's, rootless or not) can create its socket there.
pub fn prepare_socket_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    // the parent exists by now: `recursive` only makes this one (or finds it there)
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o777)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    match std::fs::remove_file(dir.join(SOCKET_NAME)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove the per-job socket directory (cleanup).
pub fn remove_socket_dir(working_dir: &Path, job_key: &str) {
    let _ = std::fs::remove_dir_all(socket_dir(working_dir, job_key));
}

/// Wait (briefly) until the agent listens; false when it never came up.
pub async fn wait_ready(socket: &Path) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if socket.exists() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Frame header + payload.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Read one frame; `None` at a clean end of stream.
pub async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

/// What the agent reports while a stage runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The program could not be started (message), an `Exit` follows.
    Failed(String),
    /// The program ended but its output stayed open (a process it left in the background):
    /// the rest of the output is not sent; an `Exit` follows.
    OutputCut,
    Exit(i32),
}

/// One stage on the agent.
pub struct Session {
    /// What the agent sent, read by a task of its own: receiving is cancel-safe, so a signal
    /// that wins a `select!` against [`Session::next`] never cuts a frame in half.
    events: mpsc::Receiver<Result<Event, AgentError>>,
    frames: mpsc::UnboundedSender<Vec<u8>>,
}

impl Session {
    /// Connect (retrying briefly: the agent may still be starting right after prepare) and
    /// start `argv` with `script` on its stdin.
    pub async fn start(
        socket: &Path,
        argv: &[&str],
        script: std::fs::File,
    ) -> Result<Self, AgentError> {
        let stream = connect(socket).await?;
        let (reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        let _ = tx.send(encode(b'S', argv.join("\0").as_bytes()));
        let stdin = tx.clone();
        tokio::spawn(async move {
            let mut file = tokio::fs::File::from_std(script);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stdin.send(encode(b'I', &buf[..n])).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = stdin.send(encode(b'E', &[]));
        });
        // a few frames ahead at most: the agent's output waits while pogo's own is slow
        let (events_tx, events) = mpsc::channel(16);
        tokio::spawn(read_events(reader, events_tx));
        Ok(Self { events, frames: tx })
    }

    /// Signal the stage's process group in the container.
    pub fn signal(&self, sig: u8) {
        let _ = self.frames.send(encode(b'K', &[sig]));
    }

    pub async fn next(&mut self) -> Result<Event, AgentError> {
        self.events.recv().await.unwrap_or(Err(AgentError::NoExit))
    }
}

/// Read the agent's frames into `events` until the exit, an error, or the receiver is gone.
async fn read_events(
    mut reader: tokio::net::unix::OwnedReadHalf,
    events: mpsc::Sender<Result<Event, AgentError>>,
) {
    loop {
        let event = match read_frame(&mut reader).await {
            Ok(None) => Err(AgentError::NoExit),
            Err(e) => Err(AgentError::Io(e)),
            Ok(Some((kind, payload))) => match kind {
                b'O' => Ok(Event::Stdout(payload)),
                b'R' => Ok(Event::Stderr(payload)),
                b'F' => Ok(Event::Failed(
                    String::from_utf8_lossy(&payload).into_owned(),
                )),
                b'D' => Ok(Event::OutputCut),
                b'X' if payload.len() == 4 => Ok(Event::Exit(i32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]))),
                _ => continue,
            },
        };
        let last = !matches!(
            event,
            Ok(Event::Stdout(_) | Event::Stderr(_) | Event::Failed(_) | Event::OutputCut)
        );
        if events.send(event).await.is_err() || last {
            return;
        }
    }
}

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// How a stage run through the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageEnd {
    pub exit_code: i32,
    /// SIGTERM/SIGINT reached `pogo run` while the stage ran.
    pub canceled: bool,
}

/// Run a stage script through the agent: `argv` (the shell, after the entrypoint that wraps
/// it) with the script on stdin. Every output chunk
/// goes to `sink` as it arrives. SIGTERM/SIGINT to pogo become SIGTERM to the stage's process
/// group in the container, then SIGKILL 5 s later; the container itself stays for after_script.
pub async fn run_stage(
    socket: &Path,
    argv: &[&str],
    script: std::fs::File,
    sink: &mut dyn FnMut(Output, &[u8]),
) -> Result<StageEnd, AgentError> {
    use tokio::signal::unix::{signal, SignalKind};
    // listening before the stage starts: no SIGTERM can slip in between and end pogo
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut session = Session::start(socket, argv, script).await?;
    let mut canceled = false;
    let kill_after = tokio::time::sleep(std::time::Duration::from_secs(365 * 86400));
    tokio::pin!(kill_after);
    loop {
        let event = tokio::select! {
            e = session.next() => e?,
            _ = term.recv() => { cancel(&session, &mut canceled, kill_after.as_mut()); continue }
            _ = int.recv() => { cancel(&session, &mut canceled, kill_after.as_mut()); continue }
            _ = &mut kill_after, if canceled => {
                session.signal(9);
                kill_after.as_mut().reset(tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
                continue
            }
        };
        match event {
            Event::Stdout(b) => sink(Output::Stdout, &b),
            Event::Stderr(b) => sink(Output::Stderr, &b),
            Event::Failed(m) => sink(Output::Stderr, format!("{m}\n").as_bytes()),
            Event::OutputCut => super::log_warning(super::run::OUTPUT_CUT),
            Event::Exit(exit_code) => {
                return Ok(StageEnd {
                    exit_code,
                    canceled,
                })
            }
        }
    }
}

fn cancel(
    session: &Session,
    canceled: &mut bool,
    kill_after: std::pin::Pin<&mut tokio::time::Sleep>,
) {
    if *canceled {
        return;
    }
    *canceled = true;
    super::log_info("received a stop signal: stopping the stage's processes in the job container");
    session.signal(15);
    kill_after.reset(tokio::time::Instant::now() + std::time::Duration::from_secs(5));
}

/// What is at `socket`, not following a symlink: `Ok(None)` when nothing is (yet).
fn socket_kind(socket: &Path) -> std::io::Result<Option<&'static str>> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(socket) {
        Ok(m) => Ok(Some(match m.file_type() {
            t if t.is_socket() => "socket",
            t if t.is_symlink() => "symbolic link",
            t if t.is_dir() => "directory",
            _ => "file",
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Connect to the agent's socket itself. Its directory is writable from inside the job
/// container, so the name is opened once without following a symlink (`O_PATH|O_NOFOLLOW`),
/// checked to be a socket, and connected to through `/proc/self/fd/N`: there is no second
/// lookup of the name a job could race. (That path is also short: unix socket paths are
/// limited to 108 bytes.)
async fn connect(socket: &Path) -> Result<UnixStream, AgentError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let connect_err = |source: std::io::Error| AgentError::Connect {
        path: socket.to_path_buf(),
        source,
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let attempt = async {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_PATH | nix::libc::O_NOFOLLOW)
                .open(socket)?;
            if !file.metadata()?.file_type().is_socket() {
                return Ok(Err(()));
            }
            let via = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
            UnixStream::connect(&via).await.map(Ok)
        };
        match attempt.await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(())) => {
                return Err(AgentError::NotASocket {
                    path: socket.to_path_buf(),
                    found: socket_kind(socket)
                        .ok()
                        .flatten()
                        .unwrap_or("something else"),
                })
            }
            Err(e)
                if tokio::time::Instant::now() < deadline
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => return Err(connect_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The real agent program, run on the host (it is static), over a real socket.
    struct Agent {
        child: std::process::Child,
        socket: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Agent {
        fn start() -> Option<Self> {
            let dir = tempfile::tempdir().unwrap();
            let bin = install(dir.path()).unwrap()?;
            let socket = dir.path().join("agent.sock");
            let child = std::process::Command::new(bin)
                .arg("serve")
                .arg(&socket)
                .spawn()
                .unwrap();
            Some(Self {
                child,
                socket,
                _dir: dir,
            })
        }
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn script(text: &str) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        f
    }

    async fn collect(s: &mut Session) -> (String, String, i32) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match s.next().await.unwrap() {
                Event::Stdout(b) => out.extend(b),
                Event::Stderr(b) => err.extend(b),
                Event::Failed(m) => err.extend(m.into_bytes()),
                Event::OutputCut => err.extend(b"<output cut>"),
                Event::Exit(c) => {
                    return (
                        String::from_utf8(out).unwrap(),
                        String::from_utf8(err).unwrap(),
                        c,
                    )
                }
            }
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_agent_is_built_static_on_linux() {
        assert!(!AGENT.is_empty(), "build.rs could not build pogo-agent");
        // a static ELF (64-bit, little endian) has no PT_INTERP program header
        assert_eq!(&AGENT[..4], b"\x7fELF");
        let u16_at = |o: usize| usize::from(u16::from_le_bytes([AGENT[o], AGENT[o + 1]]));
        let phoff = u64::from_le_bytes(AGENT[0x20..0x28].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
        let interp = (0..phnum).any(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes(AGENT[o..o + 4].try_into().unwrap()) == 3
        });
        assert!(!interp, "pogo-agent is dynamically linked");
    }

    #[test]
    fn a_stage_streams_output_and_returns_the_scripts_exit_code() {
        let Some(agent) = Agent::start() else { return };
        rt().block_on(async {
            let mut s = Session::start(
                &agent.socket,
                &["bash"],
                script("echo out; echo err >&2; exit 3\n"),
            )
            .await
            .unwrap();
            let (out, err, code) = collect(&mut s).await;
            assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 3));

            // large output arrives whole, stdin of several frames too
            let body = format!(
                "x={}\necho ${{#x}}\nhead -c 3000000 /dev/zero | wc -c\n",
                "a".repeat(600_000)
            );
            let mut s = Session::start(&agent.socket, &["bash"], script(&body))
                .await
                .unwrap();
            let (out, _, code) = collect(&mut s).await;
            assert_eq!((out.as_str(), code), ("600000\n3000000\n", 0));
        });
    }

    #[test]
    fn a_missing_shell_is_exit_127_with_a_message() {
        let Some(agent) = Agent::start() else { return };
        rt().block_on(async {
            let mut s = Session::start(&agent.socket, &["/no/such/bash"], script("true\n"))
                .await
                .unwrap();
            let (_, err, code) = collect(&mut s).await;
            assert_eq!(code, 127);
            assert!(err.contains("cannot run /no/such/bash"), "{err}");
        });
    }

    #[test]
    fn a_background_process_holding_the_output_does_not_hold_the_stage_up() {
        let Some(agent) = Agent::start() else { return };
        rt().block_on(async {
            let mut s = Session::start(
                &agent.socket,
                &["bash"],
                script("(sleep 60; echo late) &\necho main-done\nexit 3\n"),
            )
            .await
            .unwrap();
            // the exit comes (after the 5 s drain), not when the sleep ends a minute later
            let (out, err, code) =
                tokio::time::timeout(std::time::Duration::from_secs(40), collect(&mut s))
                    .await
                    .expect("the stage ended with its script");
            assert_eq!(
                (out.as_str(), err.as_str(), code),
                ("main-done\n", "<output cut>", 3)
            );
        });
    }

    #[test]
    fn a_link_planted_at_the_socket_path_is_refused_not_followed() {
        let Some(agent) = Agent::start() else { return };
        let planted = tempfile::tempdir().unwrap();
        let link = planted.path().join("agent.sock");
        // a job replaced its socket with a link to another job's (live) agent
        std::os::unix::fs::symlink(&agent.socket, &link).unwrap();
        rt().block_on(async {
            // the real socket works (the agent is listening once this connects)
            let mut s = Session::start(&agent.socket, &["bash"], script("exit 0\n"))
                .await
                .unwrap();
            assert_eq!(collect(&mut s).await.2, 0);
            match Session::start(&link, &["bash"], script("echo hijacked\n")).await {
                Err(e @ AgentError::NotASocket { .. }) => {
                    assert!(e.to_string().contains("symbolic link"), "{e}")
                }
                Err(e) => panic!("refused for another reason: {e}"),
                Ok(_) => panic!("connected through a planted link"),
            }
        });
    }

    #[test]
    fn waiting_for_the_next_event_can_be_cancelled_any_time_without_losing_a_byte() {
        let Some(agent) = Agent::start() else { return };
        rt().block_on(async {
            let mut s = Session::start(
                &agent.socket,
                &["bash"],
                script("for i in $(seq 1 3000); do echo line-$i-$(printf '%0100d' 0); done\n"),
            )
            .await
            .unwrap();
            // as run_stage's select! does when a signal arrives: drop the pending next()
            let mut out = Vec::new();
            let code = loop {
                let tick = std::time::Duration::from_micros(20);
                match tokio::time::timeout(tick, s.next()).await {
                    Err(_) => continue,
                    Ok(Ok(Event::Stdout(b))) => out.extend(b),
                    Ok(Ok(Event::Exit(c))) => break c,
                    Ok(other) => panic!("{other:?}"),
                }
            };
            assert_eq!(code, 0);
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 3000);
            assert!(lines[2999].starts_with("line-3000-"));
        });
    }

    #[test]
    fn a_client_gone_before_the_exit_takes_the_stage_with_it() {
        use std::io::{Read, Write};
        let Some(agent) = Agent::start() else { return };
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let stage = format!(
            "sleep 300 & echo $! > '{}'; echo ready; wait",
            pidfile.display()
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut stream = loop {
            match std::os::unix::net::UnixStream::connect(&agent.socket) {
                Ok(s) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        };
        let argv = ["sh", "-c", stage.as_str()].join("\0");
        stream.write_all(&encode(b'S', argv.as_bytes())).unwrap();
        // wait for `ready` (inside an O frame), then go away as a killed `pogo run` would
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(5).any(|w| w == b"ready") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the agent closed early");
            seen.extend_from_slice(&buf[..n]);
        }
        drop(stream);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while proc_dir.exists()
            && !std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| s.contains(") Z "))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the stage's background process {pid} outlived its client"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_signal_stops_the_whole_stage_process_group() {
        let Some(agent) = Agent::start() else { return };
        rt().block_on(async {
            let mut s = Session::start(
                &agent.socket,
                &["bash"],
                script("trap 'echo got-term; exit 1' TERM\necho ready\nsleep 300 & wait\n"),
            )
            .await
            .unwrap();
            // signal once the trap is set (the script says so), not after a guessed delay
            match s.next().await {
                Ok(Event::Stdout(b)) => assert_eq!(b, b"ready\n"),
                other => panic!("{other:?}"),
            }
            let started = std::time::Instant::now();
            s.signal(15);
            let (out, _, code) = collect(&mut s).await;
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            assert_eq!((out.as_str(), code), ("got-term\n", 1));
        });
    }
}
