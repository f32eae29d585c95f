//! Podman queries for checks (as root or as another user), and derived test images built
//! offline from the base test images.

use super::*;

/// How to call podman for checks: directly, or as another user.
#[derive(Debug, Clone, Default)]
pub struct PodmanCmd {
    /// (user, env) for `runuser -u USER -- env K=V... podman`.
    pub as_user: Option<(String, Vec<(String, String)>)>,
}

impl PodmanCmd {
    pub fn command(&self, args: &[&str]) -> Command {
        match &self.as_user {
            // the tests' own podman calls keep podman 5's cgroups v1 warning out of the test
            // output, as pogo does for its own
            None => {
                let mut c = Command::new("podman");
                c.args(args).env(QUIET_CGROUPS_V1, "1");
                c
            }
            Some((user, env)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "env"]);
                for (k, v) in env {
                    c.arg(format!("{k}={v}"));
                }
                c.arg(format!("{QUIET_CGROUPS_V1}=1"));
                c.arg("podman").args(args);
                c.current_dir("/");
                c
            }
        }
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running podman")
    }

    /// The list `podman ARGS --format json` prints (nothing printed: an empty list); podman
    /// failing fails the test.
    pub fn json_list(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let out = self.output(&args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim();
        serde_json::from_str(if text.is_empty() { "[]" } else { text }).unwrap()
    }

    /// The names of podman's secrets (pogo's carry a job's multi-line service variables).
    pub fn secret_names(&self) -> Vec<String> {
        let out = self.output(&["secret", "ls", "--format", "{{.Name}}"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Names of containers, pods and volumes carrying `label` (`k=v`).
    pub fn labelled(&self, label: &str) -> Vec<String> {
        let filter = format!("label={label}");
        let mut found = Vec::new();
        let queries: [(&str, Vec<&str>); 3] = [
            (
                "container",
                vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
            ),
            (
                "pod",
                vec!["pod", "ps", "--filter", &filter, "--format", "{{.Name}}"],
            ),
            (
                "volume",
                vec!["volume", "ls", "--filter", &filter, "--format", "{{.Name}}"],
            ),
        ];
        for (kind, args) in queries {
            let out = self.output(&args);
            assert!(
                out.status.success(),
                "podman {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if !line.trim().is_empty() {
                    found.push(format!("{kind} {}", line.trim()));
                }
            }
        }
        found
    }

    /// Asserts that nothing carries `label` within a minute: a cleanup's removal runs on in
    /// the background for a moment after the job ended.
    pub fn assert_nothing_labelled(&self, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut found = self.labelled(label);
        while !found.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            found = self.labelled(label);
        }
        assert!(found.is_empty(), "left behind (label {label}): {found:?}");
    }

    pub fn image_exists(&self, image: &str) -> bool {
        self.command(&["image", "exists", image])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

// ---------------------------------------------------------------------------
// Derived test images
// ---------------------------------------------------------------------------

static DERIVED_IMAGES: Mutex<()> = Mutex::new(());

/// `localhost/pogo-test/NAME:latest`: `base` (an image without ENTRYPOINT) after `setup` (a
/// shell command run in it with `/bin/sh -c`) and the image `changes` (`ENTRYPOINT [...]`,
/// ...). Built once per machine (skipped when present, so change NAME when the recipe
/// changes), by `podman run` + `podman commit`: offline, about a second.
pub fn derived_image(name: &str, base: &str, setup: &str, changes: &[&str]) -> String {
    derived_image_in(&PodmanCmd::default(), name, base, setup, changes)
}

/// [`derived_image`] in the storage `podman` uses (a rootless user's, say).
pub fn derived_image_in(
    podman: &PodmanCmd,
    name: &str,
    base: &str,
    setup: &str,
    changes: &[&str],
) -> String {
    let image = format!("localhost/pogo-test/{name}:latest");
    let _guard = DERIVED_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if podman.image_exists(&image) {
        return image;
    }
    let tmp = format!("pogo-test-build-{name}-{}", std::process::id());
    let _ = podman.output(&["rm", "-f", "-t", "0", &tmp]);
    let out = podman.output(&[
        "run",
        "--name",
        &tmp,
        "--network",
        "none",
        base,
        "/bin/sh",
        "-c",
        setup,
    ]);
    assert!(
        out.status.success(),
        "building {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the setup command must not stay the image's CMD
    let mut commit = vec!["commit", "-q", "--change", "CMD [\"/bin/sh\"]"];
    for c in changes {
        commit.extend(["--change", c]);
    }
    commit.extend([tmp.as_str(), image.as_str()]);
    let out = podman.output(&commit);
    let _ = podman.output(&["rm", "-f", "-t", "0", &tmp]);
    assert!(
        out.status.success(),
        "committing {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// bash with `USER 1000:1000` (and a home it owns as WORKDIR), like many official images, in
/// the storage `podman` uses.
pub fn non_root_image_in(podman: &PodmanCmd) -> String {
    derived_image_in(
        podman,
        "user-1000-v1",
        IMG_BASH,
        "mkdir -p /home/app && chown 1000:1000 /home/app",
        &["USER 1000:1000", "WORKDIR /home/app"],
    )
}

/// [`non_root_image_in`] root's storage.
pub fn non_root_image() -> String {
    non_root_image_in(&PodmanCmd::default())
}
