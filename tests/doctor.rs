//! `pogo doctor` on this machine: the podman checks pass, problems a user made (a broken pogo
//! config, a missing mount path, a world-readable auth file, a runner pointing at a missing
//! config) are each reported with their fix and exit status 1, and it answers quickly.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const POGO: &str = env!("CARGO_BIN_EXE_pogo");

/// A temp HOME with a pogo config, a config.toml whose runner uses pogo, and a stand-in
/// `gitlab-runner` first in PATH.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new(pogo_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = Machine { dir };
        std::fs::write(m.pogo_config(), pogo_yaml).unwrap();
        let bin = m.bin();
        std::fs::create_dir_all(&bin).unwrap();
        let gr = bin.join("gitlab-runner");
        std::fs::write(
            &gr,
            "#!/bin/sh\necho 'Version:      17.11.0'\necho 'Git revision: test'\n",
        )
        .unwrap();
        std::fs::set_permissions(&gr, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pogo = std::fs::canonicalize(POGO).unwrap();
        m.write_runner_config(&format!(
            "[[runners]]\n  name = \"box\"\n  url = \"https://gitlab.example.com\"\n  token = \"glrt-x\"\n  executor = \"custom\"\n  [runners.custom]\n    run_exec = \"{}\"\n    run_args = [\"--config\", \"{}\", \"run\"]\n",
            pogo.display(),
            m.pogo_config().display()
        ));
        m
    }
    fn home(&self) -> &Path {
        self.dir.path()
    }
    fn bin(&self) -> PathBuf {
        self.home().join("bin")
    }
    fn pogo_config(&self) -> PathBuf {
        self.home().join("pogo.yaml")
    }
    fn runner_config(&self) -> PathBuf {
        self.home().join("config.toml")
    }
    fn write_runner_config(&self, text: &str) {
        std::fs::write(self.runner_config(), text).unwrap();
        std::fs::set_permissions(self.runner_config(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }

    /// `pogo --config … doctor --runner-config … EXTRA`, with `path_first` (or the stand-in
    /// gitlab-runner) before the usual PATH.
    fn doctor_with_path(&self, extra: &[&str], path_first: Option<&Path>) -> Doctor {
        let path = format!(
            "{}:{}",
            path_first.unwrap_or(&self.bin()).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(POGO);
        cmd.env_clear()
            .env("HOME", self.home())
            .env("PATH", path)
            .arg("--config")
            .arg(self.pogo_config())
            .arg("doctor")
            .arg("--runner-config")
            .arg(self.runner_config())
            .args(extra);
        for k in [
            "XDG_RUNTIME_DIR",
            "CONTAINERS_CONF",
            "CONTAINERS_REGISTRIES_CONF",
            "USER",
        ] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let took = started.elapsed();
        let d = Doctor {
            code: out.status.code().unwrap_or(-1),
            screen: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        eprintln!(
            "---- pogo doctor: exit {} in {took:?}\n{}---- stderr:\n{}",
            d.code,
            d.screen,
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    fn doctor(&self, extra: &[&str]) -> Doctor {
        self.doctor_with_path(extra, None)
    }
}

struct Doctor {
    code: i32,
    screen: String,
}

impl Doctor {
    /// The line of check `name`, e.g. `✓ podman …`.
    fn line(&self, name: &str) -> &str {
        self.screen
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name) && l.starts_with(['✓', '⚠', '✗']))
            .unwrap_or_else(|| panic!("no '{name}' check in:\n{}", self.screen))
    }
    fn lines_of(&self, name: &str) -> Vec<&str> {
        self.screen
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(name))
            .collect()
    }
    fn assert_ok(&self, name: &str) {
        let l = self.line(name);
        assert!(
            l.starts_with('✓'),
            "expected ✓ for {name}: {l}\n{}",
            self.screen
        );
    }
    /// The fix printed under the first ✗ line mentioning `needle`.
    fn fix_for(&self, needle: &str) -> String {
        let lines: Vec<&str> = self.screen.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.starts_with('✗') && l.contains(needle))
            .unwrap_or_else(|| panic!("no ✗ line with '{needle}' in:\n{}", self.screen));
        lines
            .get(i + 1)
            .filter(|l| l.trim_start().starts_with("fix:"))
            .unwrap_or_else(|| panic!("no fix under '{}'", lines[i]))
            .trim()
            .to_string()
    }
}

fn good_config() -> String {
    format!("default_image: {IMG_BUSYBOX}\npull_policy: never\n")
}

#[test]
fn doctor_passes_the_podman_checks_on_this_machine_quickly() {
    require_podman!();
    let m = Machine::new(&good_config());
    let d = m.doctor(&[]);
    for name in [
        "podman",
        "network",
        "firewall",
        "selinux",
        "storage",
        "/dev/net/tun",
        "gitlab-runner",
        "runners",
        "pogo",
        "mounts",
        "default_image",
    ] {
        d.assert_ok(name);
    }
    assert!(d.line("podman").contains("podman 4.") || d.line("podman").contains("podman 5."));
    assert!(d.line("gitlab-runner").contains("17.11.0"), "{}", d.screen);
    assert!(d.line("runners").contains("uses pogo: box"), "{}", d.screen);
    assert!(
        d.line("default_image").contains("in local storage"),
        "{}",
        d.screen
    );
    assert!(!d.screen.contains('✗'), "unexpected problem:\n{}", d.screen);
    assert_eq!(d.code, 0);
    // the space podman's images and pogo's state have, and what pogo's files take
    let disk = d.line("disk");
    assert!(
        disk.contains("podman storage ")
            && disk.contains(" free of ")
            && disk.contains(" kept volume(s) ")
            && disk.contains("log copies "),
        "{disk}"
    );
    assert!(
        d.line("gpu").contains("GPU") || d.line("gpu").contains("CDI"),
        "{}",
        d.screen
    );
}

#[test]
fn doctor_reports_a_broken_config_with_file_line_and_suggestion() {
    let m = Machine::new("default_imag: alpine\n");
    let d = m.doctor(&[]);
    assert_eq!(d.code, 1);
    let line = d.line("pogo");
    assert!(line.starts_with('✗'), "{line}");
    assert!(
        line.contains(&format!("{}:1:1", m.pogo_config().display())),
        "{line}"
    );
    assert!(line.contains("did you mean 'default_image'"), "{line}");
    // The runner that uses this config is flagged too.
    assert!(
        d.lines_of("runners")
            .iter()
            .any(|l| l.starts_with('✗') && l.contains("'box'")),
        "{}",
        d.screen
    );
    assert!(d.screen.lines().last().unwrap().contains("problem(s) (✗)"));
}

#[test]
fn doctor_reports_a_missing_mount_path_with_the_command_that_fixes_it() {
    let m = Machine::new("");
    let present = m.home().join("present");
    std::fs::create_dir(&present).unwrap();
    let missing = m.home().join("no such dir");
    std::fs::write(
        m.pogo_config(),
        format!(
            "{}mounts:\n  - volume: {}:/mnt/a\n  - volume: {}:/mnt/b\n    tags: [data]\n",
            good_config(),
            present.display(),
            missing.display()
        ),
    )
    .unwrap();
    let d = m.doctor(&[]);
    assert_eq!(d.code, 1);
    let bad: Vec<&str> = d
        .lines_of("mounts")
        .into_iter()
        .filter(|l| l.starts_with('✗'))
        .collect();
    assert_eq!(bad.len(), 1, "{}", d.screen);
    assert!(bad[0].contains("mounts[1]"), "{}", bad[0]);
    assert!(bad[0].contains("jobs tagged data"), "{}", bad[0]);
    assert_eq!(
        d.fix_for("mounts[1]"),
        format!(
            "fix: mkdir -p '{}' (or fix the volume in the pogo config)",
            missing.display()
        )
    );
}

#[test]
fn doctor_reports_a_world_readable_auth_file() {
    let m = Machine::new("");
    let auth = m.home().join("auth.json");
    std::fs::write(&auth, "{\"auths\":{}}").unwrap();
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        m.pogo_config(),
        format!("{}auth_file: {}\n", good_config(), auth.display()),
    )
    .unwrap();
    let d = m.doctor(&[]);
    assert_eq!(d.code, 1);
    assert!(
        d.line("auth_file").contains("world-readable"),
        "{}",
        d.screen
    );
    assert_eq!(
        d.fix_for("world-readable"),
        format!("fix: chmod 600 {}", auth.display())
    );

    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = m.doctor(&[]);
    d.assert_ok("auth_file");
}

#[test]
fn doctor_flags_a_runner_whose_pogo_config_is_gone_and_a_readable_config_toml() {
    let m = Machine::new(&good_config());
    let text = std::fs::read_to_string(m.runner_config())
        .unwrap()
        .replace(m.pogo_config().to_str().unwrap(), "/nonexistent/pogo.yaml");
    m.write_runner_config(&text);
    std::fs::set_permissions(m.runner_config(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = m.doctor(&[]);
    assert_eq!(d.code, 1);
    let runners = d.lines_of("runners").join("\n");
    assert!(
        runners.contains("runner 'box': its pogo config /nonexistent/pogo.yaml does not exist"),
        "{}",
        d.screen
    );
    assert!(runners.contains("readable by others"), "{}", d.screen);
}

#[test]
fn doctor_without_gitlab_runner_says_where_to_get_it() {
    let m = Machine::new(&good_config());
    let empty = m.home().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let d = m.doctor_with_path(&[], Some(&empty));
    if std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|p| Path::new(p).join("gitlab-runner").exists())
    {
        skipped("a real gitlab-runner is installed on this machine");
        return;
    }
    assert_eq!(d.code, 1);
    let line = d.line("gitlab-runner");
    assert!(
        line.starts_with('✗') && line.contains("not installed"),
        "{line}"
    );
    let fix = d.fix_for("not installed");
    assert!(
        fix.contains("packages.gitlab.com") || fix.contains("gitlab-runner-downloads"),
        "{fix}"
    );
}

/// `--run` is the check a user makes after installing: a job with a service through pogo's
/// own phases (init, stage agent, socket, pod), nothing left afterwards.
#[test]
fn doctor_run_passes_a_job_with_a_service_through_pogo_and_leaves_nothing() {
    require_podman!();
    let m = Machine::new(&good_config());
    let d = m.doctor(&["--run"]);
    let line = d.line("trial");
    assert!(line.starts_with('✓'), "{}", d.screen);
    assert!(line.contains(IMG_BUSYBOX), "{line}");
    assert!(line.contains("with a service"), "{line}");
    assert!(line.contains("nothing left behind"), "{line}");
    assert_eq!(d.code, 0);
    PodmanCmd::default().assert_nothing_labelled("io.pogo.runner=doctor");
}

/// A trial that cannot run says why in pogo's own words (the job log's error) and keeps the
/// whole job log for the user.
#[test]
fn doctor_run_with_an_image_that_is_not_there_names_the_problem_and_keeps_the_log() {
    require_podman!();
    let m = Machine::new(&good_config());
    let d = m.doctor(&["--run", "--image", "localhost/pogo-test/no-such-image:1"]);
    assert_eq!(d.code, 1, "{}", d.screen);
    let line = d.line("trial");
    assert!(line.starts_with('✗'), "{}", d.screen);
    assert!(
        line.contains("is not in podman's local storage"),
        "{}",
        d.screen
    );
    let fix = d.fix_for("trial run");
    let log = fix
        .split("the whole job log: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no log path in {fix}"))
        .trim();
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("no-such-image"), "{text}");
    std::fs::remove_file(log).unwrap();
    PodmanCmd::default().assert_nothing_labelled("io.pogo.runner=doctor");
}

#[test]
fn doctor_as_the_rootless_user_finds_its_subuids_and_runtime_dir() {
    require_podman!();
    let Ok(user) = RootlessUser::load(Path::new(ROOTLESS_ENV_FILE)) else {
        if std::env::var_os("CI").is_some() {
            panic!("{ROOTLESS_ENV_FILE} is missing, but CI is set");
        }
        skipped(&format!(
            "{ROOTLESS_ENV_FILE} missing (set up with `make test` as root)"
        ));
        return;
    };
    if !nix::unistd::Uid::effective().is_root() {
        skipped("switching to the rootless test user needs root");
        return;
    }
    // A copy of pogo and a config the test user can read.
    let dir = tempfile::Builder::new()
        .prefix("pogo-doctor")
        .tempdir_in("/tmp")
        .unwrap();
    let pogo = dir.path().join("pogo");
    std::fs::copy(POGO, &pogo).unwrap();
    let config = dir.path().join("pogo.yaml");
    std::fs::write(&config, good_config()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", &user.user, "--", "env", "-i"]);
    for (k, v) in user.env() {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(&pogo)
        .arg("--config")
        .arg(&config)
        .arg("doctor")
        .arg("--run")
        .current_dir("/");
    let out = cmd.output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{screen}{}", String::from_utf8_lossy(&out.stderr));
    let d = Doctor {
        code: out.status.code().unwrap_or(-1),
        screen,
    };
    d.assert_ok("rootless");
    assert!(d.line("rootless").contains(&user.user));
    d.assert_ok("subuid/subgid");
    d.assert_ok("XDG_RUNTIME_DIR");
    d.assert_ok("podman");
    d.assert_ok("network");
    // a job with a service through pogo's phases, rootless
    d.assert_ok("trial");
    // Its runner config does not exist: a warning, not a problem.
    assert!(d.line("runners").starts_with('⚠'), "{}", d.screen);
    let _ = d.code;
}
