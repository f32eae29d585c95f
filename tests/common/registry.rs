//! A private registry: Debian's `docker-registry` on 127.0.0.1 with htpasswd auth.

use super::*;

pub const REGISTRY_USER: &str = "pogo";
pub const REGISTRY_PASS: &str = "pogo-secret";

/// Debian's `docker-registry` on 127.0.0.1 with htpasswd auth; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// A registries.conf marking this registry insecure (plain HTTP).
    pub registries_conf: PathBuf,
    pushed: Vec<String>,
}

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry; `None` (with a message) when the tools are missing
    /// outside CI.
    pub fn start() -> Option<Self> {
        Self::start_with_users(&[])
    }

    /// Like [`Registry::start`], with more `(user, password)` logins besides pogo's (each
    /// password goes to `htpasswd` on stdin, never on a command line).
    pub fn start_with_users(users: &[(&str, &str)]) -> Option<Self> {
        let binary = ["/usr/bin/docker-registry", "/usr/bin/registry"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let have_htpasswd = Command::new("htpasswd")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let Some(binary) = binary.filter(|_| have_htpasswd) else {
            if in_ci() {
                panic!("docker-registry/htpasswd missing in CI (scripts/setup-test-env.sh installs them)");
            }
            skipped("docker-registry or htpasswd not installed (set up with `make test`)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pogo-registry")
            .tempdir()
            .unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let st = Command::new("htpasswd")
            .arg("-Bbc")
            .arg(&htpasswd)
            .args([REGISTRY_USER, REGISTRY_PASS])
            .output()
            .unwrap();
        assert!(st.status.success(), "htpasswd: {st:?}");
        for (user, password) in users {
            let mut htpasswd_cmd = Command::new("htpasswd");
            htpasswd_cmd
                .args(["-iB"])
                .arg(&htpasswd)
                .arg(user)
                .stdout(Stdio::null());
            assert!(
                run_with_stdin(&mut htpasswd_cmd, password.as_bytes()).success(),
                "htpasswd -iB {user}"
            );
        }
        for attempt in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: pogo-test-secret\nauth:\n  htpasswd:\n    realm: pogo-test\n    path: {htpasswd}\n",
                    data = dir.path().join("data").display(),
                    htpasswd = htpasswd.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "registry attempt {attempt} on port {port} failed: {}",
                    std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
                );
                continue;
            }
            let registries_conf = dir.path().join("registries.conf");
            std::fs::write(
                &registries_conf,
                format!("[[registry]]\nlocation = \"127.0.0.1:{port}\"\ninsecure = true\n"),
            )
            .unwrap();
            return Some(Registry {
                child,
                port,
                dir,
                registries_conf,
                pushed: Vec::new(),
            });
        }
        panic!("could not start docker-registry");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes local `image` to `<registry>/<repo>:<tag>` and makes sure the
    /// pushed name is not in local storage, so pogo has to pull it.
    pub fn push(&mut self, image: &str, repo: &str, tag: &str) -> String {
        let remote = format!("{}/{repo}:{tag}", self.host());
        let out = Command::new("podman")
            .args(["push", "--tls-verify=false", "--creds"])
            .arg(format!("{REGISTRY_USER}:{REGISTRY_PASS}"))
            .arg(image)
            .arg(&remote)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        remove_image(&remote);
        self.pushed.push(remote.clone());
        remote
    }

    /// Writes an auth file with this registry's credentials.
    pub fn write_auth_file(&self, path: &Path) {
        let auth =
            pogo::executor::auth::base64(format!("{REGISTRY_USER}:{REGISTRY_PASS}").as_bytes());
        std::fs::write(
            path,
            serde_json::json!({"auths": {self.host(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
    }
}

fn remove_image(name: &str) {
    let _ = Command::new("podman")
        .args(["rmi", "-f", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Registry {
    fn drop(&mut self) {
        for p in &self.pushed {
            remove_image(p);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
