//! A fake GitLab API on loopback (the job endpoint gitlab-runner's driver asks), the HTTP
//! server under it, and HTTPS in front of it with a private CA.

use super::*;

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
