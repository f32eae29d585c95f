//! A fake GitLab API on 127.0.0.1 for the benchmark and the soak (both `#[path]`-include this
//! file): it answers `GET /api/v4/job` (with a `JOB-TOKEN` header) like GitLab, with the job's
//! tags (none), and counts those requests.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct FakeGitlab {
    pub api_url: String,
    hits: Arc<AtomicUsize>,
}

impl FakeGitlab {
    /// `who` prefixes the error lines (`bench`, `soak`).
    pub fn start(who: &'static str) -> Result<Self> {
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
                        eprintln!("{who}: fake GitLab: {e}");
                    }
                }
            })
            .context("starting the fake GitLab API")?;
        Ok(FakeGitlab {
            api_url: format!("http://{addr}/api/v4"),
            hits,
        })
    }

    /// `GET /api/v4/job` requests answered so far.
    pub fn hits(&self) -> usize {
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
