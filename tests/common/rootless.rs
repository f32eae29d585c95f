//! The rootless test user (described by `/etc/pogo-test-rootless.env`) and how to run
//! podman and pogo as it.

use super::*;

pub const ROOTLESS_ENV_FILE: &str = "/etc/pogo-test-rootless.env";

/// The rootless test user, or `None` (with a message) when the test cannot run here: it
/// needs [`ROOTLESS_ENV_FILE`] and root (the driver switches to the user, like
/// gitlab-runner as a system service). With `CI` set, a missing file fails the test, and
/// so does not being root when `ci_needs_root`.
pub fn rootless_user(ci_needs_root: bool) -> Option<RootlessUser> {
    let path = Path::new(ROOTLESS_ENV_FILE);
    let missing = !path.exists();
    if missing || !nix::unistd::Uid::effective().is_root() {
        assert!(
            !(in_ci() && (missing || ci_needs_root)),
            "CI is set: run as root after scripts/setup-test-env.sh ({ROOTLESS_ENV_FILE})"
        );
        skipped(&format!(
            "needs root and {ROOTLESS_ENV_FILE} (set up with `make test` as root)"
        ));
        return None;
    }
    Some(RootlessUser::load(path).unwrap_or_else(|e| panic!("{e}")))
}

/// Like [`helper_ready`], for `user`'s storage (scripts/setup-test-env.sh copies root's
/// helper image there).
pub fn rootless_helper_ready(user: &RootlessUser) -> bool {
    if !helper_ready() {
        return false;
    }
    if user.podman().image_exists(IMG_HELPER) {
        return true;
    }
    if in_ci() {
        panic!(
            "{IMG_HELPER} missing in {}'s storage in CI (scripts/setup-test-env.sh copies it)",
            user.user
        );
    }
    skipped(&format!(
        "{IMG_HELPER} missing in {}'s storage (set up with `make test` as root)",
        user.user
    ));
    false
}

/// The rootless test user described by `/etc/pogo-test-rootless.env`.
#[derive(Debug, Clone)]
pub struct RootlessUser {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub xdg_runtime_dir: String,
    pub containers_conf: Option<String>,
}

impl RootlessUser {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut m = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                m.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
            }
        }
        let get = |k: &str| {
            m.get(k)
                .cloned()
                .ok_or_else(|| format!("{}: missing {k}", path.display()))
        };
        Ok(RootlessUser {
            user: get("POGO_TEST_ROOTLESS_USER")?,
            uid: get("POGO_TEST_ROOTLESS_UID")?
                .parse()
                .map_err(|e| format!("UID: {e}"))?,
            gid: get("POGO_TEST_ROOTLESS_GID")?
                .parse()
                .map_err(|e| format!("GID: {e}"))?,
            home: get("POGO_TEST_ROOTLESS_HOME")?,
            xdg_runtime_dir: get("POGO_TEST_ROOTLESS_XDG_RUNTIME_DIR")?,
            containers_conf: m
                .get("POGO_TEST_ROOTLESS_CONTAINERS_CONF")
                .filter(|v| !v.is_empty())
                .cloned(),
        })
    }

    /// The environment a gitlab-runner running as this user would have.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("HOME".to_string(), self.home.clone()),
            ("USER".to_string(), self.user.clone()),
            ("LOGNAME".to_string(), self.user.clone()),
            ("XDG_RUNTIME_DIR".to_string(), self.xdg_runtime_dir.clone()),
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
        ];
        if let Some(c) = &self.containers_conf {
            env.push(("CONTAINERS_CONF".to_string(), c.clone()));
        }
        env
    }

    pub fn podman(&self) -> PodmanCmd {
        PodmanCmd {
            as_user: Some((self.user.clone(), self.env())),
        }
    }
}
