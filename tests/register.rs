//! `pogo register` / `pogo unregister` against a fake GitLab on 127.0.0.1: what a user sees
//! (messages, exit status) and what gitlab-runner gets (config.toml parsed back, other
//! entries and comments byte for byte, mode 0600, atomic replacement). Tokens must never show
//! up in pogo's output.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::common::{read_request, HttpServer, Run};

const POGO: &str = env!("CARGO_BIN_EXE_pogo");
const RUNNER_TOKEN: &str = "glrt-t3st-S3cret-runner-token";
const REGISTRATION_TOKEN: &str = "GR1348941-legacy-S3cret";
const ISSUED_TOKEN: &str = "t1_issued-S3cret-by-gitlab";

// ---------------------------------------------------------------------------------------------
// Fake GitLab
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Request {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.to_string(),
    }
}

/// GitLab's answer to a token it does not accept.
fn forbidden() -> Reply {
    reply(403, "{\"message\":\"403 Forbidden\"}")
}

#[derive(Default)]
struct State {
    routes: HashMap<(String, String), Reply>,
    requests: Vec<Request>,
}

/// A GitLab that answers configured `(method, path)` routes, 404 otherwise, and records every
/// request. A TLS ClientHello gets a plain-HTTP answer, so https:// clients fail the handshake.
struct FakeGitlab {
    server: HttpServer<State>,
}

impl FakeGitlab {
    fn start() -> Self {
        FakeGitlab {
            server: HttpServer::start(serve),
        }
    }

    /// Started, answering `method path` with `r`.
    fn with_route(method: &str, path: &str, r: Reply) -> Self {
        let gl = Self::start();
        gl.route(method, path, r);
        gl
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    fn route(&self, method: &str, path: &str, r: Reply) -> &Self {
        self.server
            .state
            .lock()
            .unwrap()
            .routes
            .insert((method.to_string(), path.to_string()), r);
        self
    }

    fn requests(&self) -> Vec<Request> {
        self.server.state.lock().unwrap().requests.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut first = [0u8; 1];
    if stream.peek(&mut first)? == 1 && first[0] == 0x16 {
        // A TLS handshake: answer like a plain HTTP server would.
        let mut out = stream;
        out.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return out.flush();
    }
    let mut reader = BufReader::new(stream.try_clone()?);
    let (request_line, headers, body) = read_request(&mut reader)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let r = {
        let mut st = state.lock().unwrap();
        st.requests.push(Request {
            method: method.clone(),
            path: path.clone(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        st.routes
            .get(&(method, path))
            .cloned()
            .unwrap_or_else(|| reply(404, "{\"message\":\"404 Not Found\"}"))
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        r.status,
        r.body.len(),
        r.body
    )?;
    out.flush()
}

// ---------------------------------------------------------------------------------------------
// Running pogo
// ---------------------------------------------------------------------------------------------

/// A temporary HOME with a pogo config and a place for config.toml.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".pogo.yaml"),
            "default_image: alpine:3\ncache_dir: /srv/pogo-cache\nbuilds_dir: /work\n",
        )
        .unwrap();
        Setup { dir }
    }
    fn home(&self) -> &Path {
        self.dir.path()
    }
    fn runner_config(&self) -> PathBuf {
        self.home().join("gitlab-runner/config.toml")
    }
    fn pogo_config(&self) -> PathBuf {
        self.home().join(".pogo.yaml")
    }
    fn read_runner_config(&self) -> String {
        std::fs::read_to_string(self.runner_config()).unwrap()
    }
    fn write_runner_config(&self, text: &str) {
        std::fs::create_dir_all(self.runner_config().parent().unwrap()).unwrap();
        std::fs::write(self.runner_config(), text).unwrap();
    }

    /// pogo with a clean environment (HOME = the temp dir), `env` added, `stdin` fed.
    fn pogo(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(POGO);
        cmd.env_clear()
            .env("HOME", self.home())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let r = Run::from(child.wait_with_output().unwrap());
        assert_no_token_printed(&r);
        r
    }

    /// `pogo register --url URL --runner-config … --pogo-config …` plus `extra`, token in
    /// `$POGO_RUNNER_TOKEN`.
    fn register(&self, url: &str, extra: &[&str]) -> Run {
        let pc = self.pogo_config();
        let mut args = vec!["--pogo-config", pc.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.register_with_token_from(url, &args, &[("POGO_RUNNER_TOKEN", RUNNER_TOKEN)], None)
    }

    /// `pogo register --url URL --runner-config …` plus `extra`, with `env` added and `stdin`
    /// fed: the token comes from one of these.
    fn register_with_token_from(
        &self,
        url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Run {
        let rc = self.runner_config();
        let mut args = vec![
            "register",
            "--url",
            url,
            "--runner-config",
            rc.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.pogo(&args, env, stdin)
    }

    /// `pogo unregister NAME --runner-config …` plus `extra`.
    fn unregister(&self, name: &str, extra: &[&str]) -> Run {
        let rc = self.runner_config();
        let mut args = vec!["unregister", name, "--runner-config", rc.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.pogo(&args, &[], None)
    }
}

/// No token (nor a part of one) is in what pogo printed.
fn assert_no_token_printed(r: &Run) {
    for secret in [RUNNER_TOKEN, REGISTRATION_TOKEN, ISSUED_TOKEN, "S3cret"] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "a token was printed"
        );
    }
}

fn verified(id: u64) -> Reply {
    reply(
        200,
        &format!("{{\"id\":{id},\"token\":\"{RUNNER_TOKEN}\",\"token_expires_at\":null}}"),
    )
}

fn parse(text: &str) -> toml_edit::DocumentMut {
    text.parse().expect("config.toml must stay valid TOML")
}

fn strings(item: &toml_edit::Item) -> Vec<String> {
    item.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/// `POGO_LOG=trace` turned on every crate's debug output, and the HTTP client's shows the
/// request headers: `RUNNER-TOKEN: glrt-…`. [`Setup::pogo`] checks every run's output.
#[test]
fn register_with_trace_logging_never_prints_the_runner_token() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(42));
    let s = Setup::new();
    let pc = s.pogo_config();
    let r = s.register_with_token_from(
        &gl.url(),
        &["--pogo-config", pc.to_str().unwrap(), "--name", "traced"],
        &[("POGO_RUNNER_TOKEN", RUNNER_TOKEN), ("POGO_LOG", "trace")],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(gl.requests().len(), 1);
}

#[test]
fn register_verifies_the_token_and_writes_a_custom_executor_entry_for_pogo() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(42));
    let s = Setup::new();
    let r = s.register(&gl.url(), &["--name", "laptop"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("verified runner 42"), "{}", r.stdout);
    assert!(r.stdout.contains("glrt-<redacted>"));

    let reqs = gl.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/api/v4/runners/verify");
    assert_eq!(
        reqs[0].headers.get("runner-token").map(String::as_str),
        Some(RUNNER_TOKEN)
    );
    assert_eq!(reqs[0].json()["token"], RUNNER_TOKEN);
    let system_id = reqs[0].json()["system_id"].as_str().unwrap().to_string();
    assert!(system_id.starts_with("r_") || system_id.starts_with("s_"));

    let text = s.read_runner_config();
    let doc = parse(&text);
    let runner = &doc["runners"][0];
    assert_eq!(runner["name"].as_str(), Some("laptop"));
    assert_eq!(runner["url"].as_str(), Some(gl.url().as_str()));
    assert_eq!(runner["id"].as_integer(), Some(42));
    assert_eq!(runner["token"].as_str(), Some(RUNNER_TOKEN));
    assert_eq!(runner["executor"].as_str(), Some("custom"));
    assert_eq!(runner["builds_dir"].as_str(), Some("/work"));
    assert_eq!(runner["cache_dir"].as_str(), Some("/srv/pogo-cache"));
    let pogo = std::fs::canonicalize(POGO).unwrap();
    let pc = s.pogo_config();
    for phase in ["config", "prepare", "run", "cleanup"] {
        assert_eq!(
            runner["custom"][&format!("{phase}_exec")].as_str(),
            Some(pogo.to_str().unwrap())
        );
        assert_eq!(
            strings(&runner["custom"][&format!("{phase}_args")]),
            ["--config", pc.to_str().unwrap(), phase]
        );
    }
    // gitlab-runner reuses the system id pogo registered with.
    let sid =
        std::fs::read_to_string(s.runner_config().with_file_name(".runner_system_id")).unwrap();
    assert_eq!(sid.trim(), system_id);
}

#[test]
fn config_toml_holding_tokens_is_mode_0600_and_replaced_atomically() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(1));
    let s = Setup::new();
    s.write_runner_config("concurrent = 2\n");
    std::fs::set_permissions(s.runner_config(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let inode_before = std::fs::metadata(s.runner_config()).unwrap().ino();
    let r = s.register(&gl.url(), &[]);
    assert_eq!(r.code, 0);
    let meta = std::fs::metadata(s.runner_config()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_ne!(
        meta.ino(),
        inode_before,
        "config.toml was rewritten in place, not renamed over"
    );
    let mut names: Vec<String> = std::fs::read_dir(s.runner_config().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".runner_system_id", "config.toml"],
        "temporary files left behind"
    );
}

const EXISTING: &str = r#"# Managed partly by hand. Keep this comment!
concurrent = 4          # four jobs at a time
check_interval = 0
log_level = "info"

[session_server]
  session_timeout = 1800

# the docker runner, set up in 2023
[[runners]]
  name = "docker"
  url = "https://gitlab.example.com"
  token = "glrt-docker-runner"
  executor = "docker"
  [runners.docker]
    image = "alpine:3"      # small
    volumes = ["/cache", "/var/run/docker.sock:/var/run/docker.sock"]

[[runners]]
  name = "pogo"
  url = "https://old.example.com"
  token = "glrt-old-pogo"
  executor = "custom"
  [runners.custom]
    run_exec = "/opt/old/pogo"
    run_args = ["--config", "/old/.pogo.yaml", "run"]

# last words
"#;

#[test]
fn existing_comments_and_other_runners_are_kept_byte_for_byte() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(7));
    let s = Setup::new();
    s.write_runner_config(EXISTING);
    let r = s.register(&gl.url(), &["--name", "second"]);
    assert_eq!(r.code, 0);
    let text = s.read_runner_config();
    assert!(
        text.starts_with(EXISTING),
        "the existing file changed:\n{text}"
    );
    let doc = parse(&text);
    let runners = doc["runners"].as_array_of_tables().unwrap();
    let names: Vec<_> = runners
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docker", "pogo", "second"]);
}

#[test]
fn a_second_runner_with_the_same_name_is_refused_without_asking_gitlab() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(7));
    let s = Setup::new();
    s.write_runner_config(EXISTING);
    let r = s.register(&gl.url(), &["--name", "pogo"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("already has a runner named 'pogo'"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--replace"));
    assert_eq!(s.read_runner_config(), EXISTING);
    assert!(gl.requests().is_empty(), "GitLab was asked anyway");
}

#[test]
fn replace_swaps_the_entry_in_place_and_keeps_everything_else() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(9));
    let s = Setup::new();
    s.write_runner_config(EXISTING);
    let r = s.register(&gl.url(), &["--name", "pogo", "--replace"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("replaced in"), "{}", r.stdout);
    let text = s.read_runner_config();
    let (before_pogo, _) = EXISTING
        .split_once("[[runners]]\n  name = \"pogo\"")
        .unwrap();
    assert!(
        text.starts_with(before_pogo),
        "content before the entry changed:\n{text}"
    );
    assert!(text.ends_with("# last words\n"), "{text}");
    assert!(!text.contains("glrt-old-pogo") && !text.contains("/opt/old/pogo"));
    let doc = parse(&text);
    let runners = doc["runners"].as_array_of_tables().unwrap();
    assert_eq!(runners.len(), 2);
    assert_eq!(runners.get(1).unwrap()["name"].as_str(), Some("pogo"));
    assert_eq!(runners.get(1).unwrap()["id"].as_integer(), Some(9));
    assert_eq!(
        runners.get(1).unwrap()["token"].as_str(),
        Some(RUNNER_TOKEN)
    );
}

#[test]
fn wrong_or_revoked_token_is_reported_as_403_and_nothing_is_written() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", forbidden());
    let s = Setup::new();
    let r = s.register(&gl.url(), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("HTTP 403"), "{}", r.stderr);
    assert!(r.stderr.contains("token is wrong"), "{}", r.stderr);
    assert!(!s.runner_config().exists());
}

#[test]
fn gitlab_server_error_is_reported_with_its_status_and_config_stays() {
    let gl = FakeGitlab::with_route(
        "POST",
        "/api/v4/runners/verify",
        reply(500, "{\"message\":\"500 Internal Server Error\"}"),
    );
    let s = Setup::new();
    s.write_runner_config(EXISTING);
    let r = s.register(&gl.url(), &["--name", "new"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("HTTP 500"), "{}", r.stderr);
    assert!(r.stderr.contains("server error"), "{}", r.stderr);
    assert_eq!(s.read_runner_config(), EXISTING);
}

#[test]
fn an_answer_that_is_not_json_is_reported() {
    let gl = FakeGitlab::with_route(
        "POST",
        "/api/v4/runners/verify",
        reply(200, "<html>sign in</html>"),
    );
    let s = Setup::new();
    let r = s.register(&gl.url(), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not the expected JSON"), "{}", r.stderr);
    assert!(!s.runner_config().exists());
}

#[test]
fn an_answer_without_a_runner_id_fails_verification() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", reply(200, "{\"id\":0}"));
    let s = Setup::new();
    let r = s.register(&gl.url(), &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("did not verify the runner"),
        "{}",
        r.stderr
    );
    assert!(!s.runner_config().exists());
}

#[test]
fn unreachable_gitlab_is_reported_as_connection_refused() {
    let port = crate::common::free_port();
    let s = Setup::new();
    let r = s.register(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot reach GitLab"), "{}", r.stderr);
    assert!(r.stderr.contains("connection refused"), "{}", r.stderr);
    assert!(!s.runner_config().exists());
}

#[test]
fn https_to_a_server_without_tls_is_reported_as_a_tls_failure() {
    let gl = FakeGitlab::start();
    let s = Setup::new();
    let r = s.register(&format!("https://127.0.0.1:{}", gl.server.port), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("TLS"), "{}", r.stderr);
    assert!(!s.runner_config().exists());
}

#[test]
fn bad_urls_are_refused_before_anything_is_sent() {
    let s = Setup::new();
    for (url, says) in [
        ("gitlab.example.com", "no scheme"),
        ("ftp://gitlab.example.com", "not http or https"),
        ("https://gitlab.example.com/api/v4", "without /api/v4"),
        ("http://", "not a usable GitLab URL"),
        (
            "https://me:S3cret@gitlab.example.com",
            "remove the user name and password",
        ),
    ] {
        let r = s.register(url, &[]);
        assert_eq!(r.code, 1, "{url}");
        assert!(r.stderr.contains(says), "{url}: {}", r.stderr);
    }
    assert!(!s.runner_config().exists());
}

#[test]
fn a_broken_config_toml_is_reported_and_left_alone() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(3));
    let s = Setup::new();
    let broken = "concurrent = 1\n[[runners]\nname = \"x\"\n";
    s.write_runner_config(broken);
    let r = s.register(&gl.url(), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("invalid TOML"), "{}", r.stderr);
    assert_eq!(s.read_runner_config(), broken);
    assert!(gl.requests().is_empty());
}

#[test]
fn a_broken_pogo_config_stops_registration() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(3));
    let s = Setup::new();
    std::fs::write(s.pogo_config(), "default_imag: x\n").unwrap();
    let r = s.register(&gl.url(), &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unknown key 'default_imag'"),
        "{}",
        r.stderr
    );
    assert!(!s.runner_config().exists());
    assert!(gl.requests().is_empty());
}

#[test]
fn a_pogo_config_that_cannot_be_made_leaves_config_toml_untouched() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(3));
    let s = Setup::new();
    // its directory cannot be made: a file is in the way
    let blocker = s.home().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let pc = blocker.join("pogo.yaml");
    let r = s.register_with_token_from(
        &gl.url(),
        &["--pogo-config", pc.to_str().unwrap()],
        &[("POGO_RUNNER_TOKEN", RUNNER_TOKEN)],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("blocker"), "{}", r.stderr);
    assert!(
        !s.runner_config().parent().unwrap().exists(),
        "nothing of gitlab-runner's written: no entry pointing at a config that is not there"
    );
}

#[test]
fn a_pogo_config_made_inside_gitlab_runners_directory_keeps_that_directory_private() {
    use std::os::unix::fs::PermissionsExt;
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(3));
    let s = Setup::new();
    let pc = s.runner_config().parent().unwrap().join("pogo.yaml");
    let r = s.register_with_token_from(
        &gl.url(),
        &["--pogo-config", pc.to_str().unwrap()],
        &[("POGO_RUNNER_TOKEN", RUNNER_TOKEN)],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(pc.is_file());
    let mode = std::fs::metadata(s.runner_config().parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "config.toml holds tokens: its directory is 0700"
    );
}

#[test]
fn a_missing_pogo_config_is_created_with_defaults() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(3));
    let s = Setup::new();
    std::fs::remove_file(s.pogo_config()).unwrap();
    let r = s.register(&gl.url(), &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("created"), "{}", r.stdout);
    let created = std::fs::read_to_string(s.pogo_config()).unwrap();
    assert!(created.contains("default_image"));
    // And it is a valid pogo config.
    let p = s.pogo(
        &["--config", s.pogo_config().to_str().unwrap(), "print"],
        &[],
        None,
    );
    assert_eq!(p.code, 0);
}

#[test]
fn the_token_can_come_from_stdin_and_a_command_line_token_gets_a_warning() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(5));
    let s = Setup::new();
    let r = s.register_with_token_from(
        &gl.url(),
        &["--token", "-"],
        &[],
        Some(&format!("{RUNNER_TOKEN}\n")),
    );
    assert_eq!(r.code, 0);
    assert!(!r.stderr.contains("visible to other users"));
    assert_eq!(
        gl.requests()[0]
            .headers
            .get("runner-token")
            .map(String::as_str),
        Some(RUNNER_TOKEN)
    );

    let r = s.register_with_token_from(
        &gl.url(),
        &["--name", "b", "--token", RUNNER_TOKEN],
        &[],
        None,
    );
    assert_eq!(r.code, 0);
    assert!(
        r.stderr.contains("visible to other users in `ps`"),
        "{}",
        r.stderr
    );
}

#[test]
fn without_any_token_pogo_says_how_to_pass_one() {
    let s = Setup::new();
    let r = s.pogo(
        &["register", "--url", "https://gitlab.example.com"],
        &[],
        None,
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("POGO_RUNNER_TOKEN"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Legacy registration
// ---------------------------------------------------------------------------------------------

#[test]
fn legacy_registration_token_creates_the_runner_with_tags_and_warns_it_is_deprecated() {
    let gl = FakeGitlab::with_route(
        "POST",
        "/api/v4/runners",
        reply(
            201,
            &format!("{{\"id\":77,\"token\":\"{ISSUED_TOKEN}\",\"token_expires_at\":\"2031-01-02T03:04:05.000Z\"}}"),
        ),
    );
    let s = Setup::new();
    let r = s.register_with_token_from(
        &gl.url(),
        &[
            "--registration-token",
            "-",
            "--tag-list",
            "podman,linux",
            "--description",
            "build box",
            "--run-untagged",
        ],
        &[],
        Some(REGISTRATION_TOKEN),
    );
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("deprecated"), "{}", r.stderr);
    let req = &gl.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/api/v4/runners")
    );
    let body = req.json();
    assert_eq!(body["token"], REGISTRATION_TOKEN);
    assert_eq!(body["tag_list"], "podman,linux");
    assert_eq!(body["description"], "build box");
    assert_eq!(body["run_untagged"], true);
    let doc = parse(&s.read_runner_config());
    let runner = &doc["runners"][0];
    // The token GitLab issued goes to config.toml, not the registration token.
    assert_eq!(runner["token"].as_str(), Some(ISSUED_TOKEN));
    assert_eq!(runner["id"].as_integer(), Some(77));
    assert_eq!(
        runner["token_expires_at"]
            .as_datetime()
            .map(|d| d.to_string()),
        Some("2031-01-02T03:04:05Z".to_string())
    );
}

#[test]
fn legacy_registration_refused_says_to_check_the_registration_token() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners", forbidden());
    let s = Setup::new();
    let r = s.register_with_token_from(
        &gl.url(),
        &[],
        &[("POGO_REGISTRATION_TOKEN", REGISTRATION_TOKEN)],
        None,
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("HTTP 403"), "{}", r.stderr);
    assert!(
        r.stderr.contains("check the registration token"),
        "{}",
        r.stderr
    );
    assert!(!s.runner_config().exists());
}

#[test]
fn tags_with_a_runner_token_are_refused_because_gitlab_sets_them() {
    let s = Setup::new();
    let r = s.register("https://gitlab.example.com", &["--tag-list", "a,b"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("only work with --registration-token"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Unregister
// ---------------------------------------------------------------------------------------------

fn with_gitlab_url(text: &str, url: &str) -> String {
    text.replace("https://gitlab.example.com", url)
        .replace("https://old.example.com", url)
}

#[test]
fn unregister_removes_the_entry_tells_gitlab_and_keeps_the_rest() {
    let gl = FakeGitlab::with_route("DELETE", "/api/v4/runners/managers", reply(204, ""));
    let s = Setup::new();
    let existing = with_gitlab_url(EXISTING, &gl.url());
    s.write_runner_config(&existing);
    std::fs::write(
        s.runner_config().with_file_name(".runner_system_id"),
        "s_0123456789ab\n",
    )
    .unwrap();
    let r = s.unregister("docker", &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("removed runner 'docker'"), "{}", r.stdout);
    let req = &gl.requests()[0];
    assert_eq!(req.json()["token"], "glrt-docker-runner");
    assert_eq!(req.json()["system_id"], "s_0123456789ab");

    let text = s.read_runner_config();
    assert!(!text.contains("docker"), "{text}");
    let (head, _) = existing.split_once("# the docker runner").unwrap();
    let (_, tail) = existing
        .split_once("\n[[runners]]\n  name = \"pogo\"")
        .unwrap();
    assert_eq!(text, format!("{head}[[runners]]\n  name = \"pogo\"{tail}"));
    assert_eq!(
        std::fs::metadata(s.runner_config())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn unregister_of_a_legacy_runner_deletes_it_in_gitlab() {
    let gl = FakeGitlab::with_route("DELETE", "/api/v4/runners", reply(204, ""));
    let s = Setup::new();
    s.write_runner_config(&format!(
        "[[runners]]\n  name = \"old\"\n  url = \"{}\"\n  token = \"legacy-token\"\n  executor = \"custom\"\n",
        gl.url()
    ));
    let r = s.unregister("old", &[]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("GitLab deleted the runner"),
        "{}",
        r.stdout
    );
    assert_eq!(gl.requests()[0].json()["token"], "legacy-token");
    assert!(parse(&s.read_runner_config())
        .get("runners")
        .is_none_or(|r| r.as_array_of_tables().is_some_and(|a| a.is_empty())));
}

#[test]
fn unregister_of_an_unknown_name_lists_the_runners_there_are() {
    let s = Setup::new();
    s.write_runner_config(EXISTING);
    let r = s.unregister("nope", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no runner named 'nope'; it has: docker, pogo"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read_runner_config(), EXISTING);
}

#[test]
fn unregister_keeps_the_entry_when_gitlab_is_unreachable_unless_local_only() {
    let port = crate::common::free_port();
    let s = Setup::new();
    let text = format!(
        "[[runners]]\n  name = \"gone\"\n  url = \"http://127.0.0.1:{port}\"\n  token = \"legacy-token\"\n  executor = \"custom\"\n"
    );
    s.write_runner_config(&text);
    let r = s.unregister("gone", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot reach GitLab"), "{}", r.stderr);
    assert!(r.stderr.contains("--local-only"), "{}", r.stderr);
    assert_eq!(s.read_runner_config(), text);

    let r = s.unregister("gone", &["--local-only"]);
    assert_eq!(r.code, 0);
    assert!(!s.read_runner_config().contains("gone"));
}

#[test]
fn unregister_of_a_runner_gitlab_already_deleted_still_removes_it() {
    let gl = FakeGitlab::with_route("DELETE", "/api/v4/runners", forbidden());
    let s = Setup::new();
    s.write_runner_config(&format!(
        "[[runners]]\n  name = \"old\"\n  url = \"{}\"\n  token = \"legacy-token\"\n",
        gl.url()
    ));
    let r = s.unregister("old", &[]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("no longer knows this token"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_gitlab_with_a_private_ca_is_registered_and_unregistered_through_tls_ca_file() {
    let gl = FakeGitlab::with_route("POST", "/api/v4/runners/verify", verified(42));
    gl.route("DELETE", "/api/v4/runners/managers", reply(204, ""));
    let front = crate::common::TlsFront::start(gl.server.port);
    let url = format!("https://127.0.0.1:{}", front.port);
    let s = Setup::new();

    // Without the CA: refused, saying what to pass; nothing written.
    let r = s.register(&url, &["--name", "ca"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--tls-ca-file"), "{}", r.stderr);
    assert!(!s.runner_config().exists());

    let ca = s.home().join("company-ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let r = s.register(
        &url,
        &["--name", "ca", "--tls-ca-file", ca.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = parse(&s.read_runner_config());
    assert_eq!(
        doc["runners"][0]["tls-ca-file"].as_str(),
        Some(ca.to_str().unwrap()),
        "gitlab-runner needs the CA too"
    );

    // unregister finds the CA in the entry
    let r = s.unregister("ca", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(gl
        .requests()
        .iter()
        .any(|q| q.method == "DELETE" && q.path == "/api/v4/runners/managers"));
}
