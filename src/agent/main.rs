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

/// Send `sig` to the process group `pgid` (the stage's program and whatever it started).
#[allow(unsafe_code)]
fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: a plain syscall on integers; a wrong pid or signal only yields an error code,
    // which there is no one to report to (the stage's exit code says what happened).
    unsafe {
        kill(-pgid, sig);
    }
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
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

fn write_frame(w: &Mutex<UnixStream>, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut w = w.lock().map_err(|_| io::Error::other("poisoned"))?;
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
            let code: i32 = if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            write_frame(
                &writer,
                b'F',
                format!("cannot run {program}: {e}").as_bytes(),
            )?;
            return write_frame(&writer, b'X', &code.to_be_bytes());
        }
    };
    let pgid = child.id() as i32;
    // each pump says when its pipe has ended
    let (ended, pipes_ended) = mpsc::channel::<()>();
    let mut open = 0;
    for (pipe, kind) in [
        (
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            b'O',
        ),
        (
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
            b'R',
        ),
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
                    signal_group(pgid, i32::from(payload.first().copied().unwrap_or(15)));
                }
                _ => {}
            }
        }
        if !client_gone_early.load(std::sync::atomic::Ordering::SeqCst) {
            signal_group(pgid, 9);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn send(s: &UnixStream, kind: u8, payload: &[u8]) {
        write_frame(&Mutex::new(s.try_clone().unwrap()), kind, payload).unwrap();
    }

    /// Run `argv` through `serve_one` with `stdin`; the frames it answered, `O`/`R` merged
    /// per kind.
    fn stage(argv: &[&str], stdin: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>, Option<i32>) {
        let (client, agent) = UnixStream::pair().unwrap();
        let server = thread::spawn(move || serve_one(agent));
        send(&client, b'S', argv.join("\0").as_bytes());
        if !stdin.is_empty() {
            send(&client, b'I', stdin);
        }
        send(&client, b'E', b"");
        let (mut out, mut err, mut failed, mut code) = (Vec::new(), Vec::new(), Vec::new(), None);
        let mut reader = client.try_clone().unwrap();
        while let Some((kind, payload)) = read_frame(&mut reader).unwrap() {
            match kind {
                b'O' => out.extend(payload),
                b'R' => err.extend(payload),
                b'F' => failed.extend(payload),
                b'X' => {
                    code = Some(i32::from_be_bytes(payload.try_into().unwrap()));
                    break;
                }
                other => panic!("unexpected frame {other}"),
            }
        }
        drop(client);
        server.join().unwrap().unwrap();
        (out, err, failed, code)
    }

    #[test]
    fn a_stage_streams_its_output_and_exit_code_and_reads_its_stdin() {
        let (out, err, failed, code) = stage(
            &["/bin/sh", "-c", "cat; echo to-err >&2; exit 3"],
            b"from stdin\n",
        );
        assert_eq!(out, b"from stdin\n");
        assert_eq!(err, b"to-err\n");
        assert!(failed.is_empty());
        assert_eq!(code, Some(3));
    }

    #[test]
    fn a_program_that_does_not_exist_exits_127_with_a_message() {
        let (_, _, failed, code) = stage(&["/nonexistent/program"], b"");
        assert!(String::from_utf8_lossy(&failed).contains("cannot run /nonexistent/program"));
        assert_eq!(code, Some(127));
    }

    #[test]
    fn a_stage_killed_by_a_signal_exits_128_plus_the_signal() {
        let (_, _, _, code) = stage(&["/bin/sh", "-c", "kill -TERM $$"], b"");
        assert_eq!(code, Some(128 + 15));
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        send(&a, b'O', b"payload");
        drop(a);
        let mut r = b;
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((b'O', b"payload".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);

        let mut big = vec![b'O'];
        big.extend((MAX_FRAME + 1).to_be_bytes());
        let err = read_frame(&mut big.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
