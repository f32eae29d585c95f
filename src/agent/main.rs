//! pogo-agent: the stage runner inside a job container (the fast path of `pogo run`).
//!
//! Built by pogo's build.rs as a separate, statically linked program (std only, no crates), so
//! it runs in any image: busybox, alpine (musl), distroless. pogo bind-mounts it read-only and
//! starts the job container as `catatonit -- pogo-agent serve SOCKET`: catatonit is PID 1 and
//! reaps orphans, the agent listens on a unix socket in a per-job directory pogo mounted from
//! the host. `pogo run` connects instead of paying for one `podman exec` per stage.
//!
//! Wire format, both directions: frames of `[kind: u8][len: u32 big-endian][payload]`.
//! Client → agent: `S` start (payload: argv joined by NUL), `I` stdin bytes, `E` end of stdin,
//! `K` signal the stage's process group (payload: one byte, the signal number).
//! Agent → client: `O` stdout bytes, `R` stderr bytes, `X` exit (payload: i32 big-endian, the
//! exit code, or 128 + signal), `F` the program could not be started (payload: message), `D`
//! (before `X`) the output was still open 5 s after the program ended, and is no longer sent.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const MAX_FRAME: u32 = 16 << 20;
/// How long output is still read after the stage's program ended: a process it left in the
/// background (`./server &`) keeps the pipes open and must not hold the stage up. The same as
/// `pogo run` gives `podman exec`.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

extern "C" {
    // The only libc call std does not wrap: signalling a process group (`kill(-pgid, sig)`).
    fn kill(pid: i32, sig: i32) -> i32;
}

fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

fn write_frame(w: &Mutex<UnixStream>, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut w = w.lock().map_err(|_| io::Error::new(io::ErrorKind::Other, "poisoned"))?;
    let mut head = [kind, 0, 0, 0, 0];
    head[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    w.write_all(&head)?;
    w.write_all(payload)
}

/// Copy a child's output pipe into frames of `kind` until it closes.
fn pump(mut from: impl Read, kind: u8, to: Arc<Mutex<UnixStream>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if write_frame(&to, kind, &buf[..n]).is_err() {
                    // the client went away: keep draining so the stage is not blocked
                    let _ = io::copy(&mut from, &mut io::sink());
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

fn serve_one(stream: UnixStream) -> io::Result<()> {
    let mut reader = stream.try_clone()?;
    let writer = Arc::new(Mutex::new(stream));
    let argv = match read_frame(&mut reader)? {
        Some((b'S', payload)) => payload
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>(),
        _ => return Ok(()),
    };
    let Some((program, args)) = argv.split_first() else {
        return write_frame(&writer, b'F', b"empty command");
    };
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let code: i32 = if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 };
            write_frame(&writer, b'F', format!("cannot run {program}: {e}").as_bytes())?;
            return write_frame(&writer, b'X', &code.to_be_bytes());
        }
    };
    let pgid = child.id() as i32;
    // each pump says when its pipe has ended
    let (ended, pipes_ended) = mpsc::channel::<()>();
    let mut open = 0;
    for (pipe, kind) in [
        (child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>), b'O'),
        (child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>), b'R'),
    ] {
        if let Some(p) = pipe {
            let (w, done) = (writer.clone(), ended.clone());
            thread::spawn(move || {
                pump(p, kind, w);
                let _ = done.send(());
            });
            open += 1;
        }
    }
    drop(ended);
    let mut stdin = child.stdin.take();
    // set once the exit code is on its way: a client gone before that (`pogo run` killed)
    // takes the stage with it, as a killed `podman exec` would
    let reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client_gone_early = Arc::clone(&reported);
    // client frames: stdin data, end of stdin, signals — until the client is done
    thread::spawn(move || {
        while let Ok(Some((kind, payload))) = read_frame(&mut reader) {
            match kind {
                b'I' => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&payload).is_err() {
                            stdin = None;
                        }
                    }
                }
                b'E' => stdin = None,
                b'K' => {
                    let sig = i32::from(payload.first().copied().unwrap_or(15));
                    // SAFETY: plain syscall on integers; a wrong pid only yields an error code.
                    unsafe {
                        kill(-pgid, sig);
                    }
                }
                _ => {}
            }
        }
        if !client_gone_early.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: plain syscall on integers; a wrong pid only yields an error code.
            unsafe {
                kill(-pgid, 9);
            }
        }
    });
    let status = child.wait()?;
    let deadline = Instant::now() + OUTPUT_DRAIN;
    while open > 0 {
        match pipes_ended.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => open -= 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => open = 0,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // the pumps go on draining the pipes (into the void once the client is gone)
                write_frame(&writer, b'D', b"")?;
                break;
            }
        }
    }
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    reported.store(true, std::sync::atomic::Ordering::SeqCst);
    write_frame(&writer, b'X', &code.to_be_bytes())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, cmd, socket] = args.as_slice() else {
        eprintln!("usage: pogo-agent serve SOCKET");
        std::process::exit(2);
    };
    if cmd != "serve" {
        eprintln!("usage: pogo-agent serve SOCKET");
        std::process::exit(2);
    }
    let _ = std::fs::remove_file(socket);
    // bind to a temporary name and rename: pogo only ever sees a socket that is listening.
    // Connecting needs write permission on the socket, and the agent may run as the image's
    // non-root USER (not the runner's uid): open it to all; its directory's parent on the host
    // is private to the runner's user.
    let tmp = format!("{socket}.tmp");
    let _ = std::fs::remove_file(&tmp);
    let listen = || {
        use std::os::unix::fs::PermissionsExt;
        let l = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777))?;
        std::fs::rename(&tmp, socket)?;
        Ok::<_, io::Error>(l)
    };
    let listener = match listen() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pogo-agent: cannot listen on {socket}: {e}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming().flatten() {
        thread::spawn(move || {
            let _ = serve_one(stream);
        });
    }
}
