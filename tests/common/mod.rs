//! The harness the suites share: skip rules, unique ids, outcome and command-output helpers
//! (here), and in its modules jobs and repositories, a fake GitLab API, pogo config files, a
//! [`Driver`] set up like a gitlab-runner ([`TestEnv`]), podman queries and derived images, a
//! private registry, the rootless test user and a command-line watch.

mod config;
mod env;
mod gitlab;
mod image_build;
mod jobs;
mod podman;
mod registry;
mod rootless;
mod watch;

pub use config::*;
pub use env::*;
pub use gitlab::*;
pub use image_build::*;
pub use jobs::*;
pub use podman::*;
pub use registry::*;
pub use rootless::*;
pub use watch::*;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pogo::driver::{Cache, CachePolicy, Driver, Image, Job, JobResult, Outcome, Service};
use pogo::podman::QUIET_CGROUPS_V1;

pub const IMG_BASH: &str = "localhost/pogo-test/bash:latest";
pub const IMG_BUSYBOX: &str = "localhost/pogo-test/busybox:latest";
pub const IMG_HTTPD: &str = "localhost/pogo-test/httpd:latest";

pub const LABEL_MANAGED_BY: &str = "io.pogo.managed-by";
pub const LABEL_JOB_KEY: &str = "io.pogo.job-key";
pub const LABEL_JOB_ID: &str = "io.pogo.job-id";

// ---------------------------------------------------------------------------
// Skip rules
// ---------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Where skipped tests are noted (one line each: the test, then why): `make test` lists them
/// at its end, so a test that did nothing never passes for one that ran.
pub const SKIP_LOG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/pogo-skipped-tests.log");

/// Say (on stderr, and in [`SKIP_LOG`]) that the running test, or a part of it, did not run
/// and why.
pub fn skipped(why: &str) {
    eprintln!("SKIPPED: {why}");
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    let binary = std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .map(|n| n.rsplit_once('-').map_or(n.clone(), |(b, _)| b.to_string()))
        .unwrap_or_default();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIP_LOG)
    {
        let _ = writeln!(f, "{binary}::{test}\t{why}");
    }
}

/// A tool a test (or part of one) needs is missing: skipped with `why` outside CI, a failure
/// in CI (where `make test`'s set-up installs it).
pub fn skip_outside_ci(why: &str) {
    assert!(
        !in_ci(),
        "{why}, but CI is set: `make test`'s set-up must provide it"
    );
    skipped(&format!("part of it: {why}"));
}

pub fn podman_available() -> bool {
    Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn image_exists(image: &str) -> bool {
    Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `true` when the Podman tests can run. Without podman (or the test
/// images) they are skipped with a message, except in CI (`CI` set), where
/// that is a failure.
pub fn podman_ready() -> bool {
    if !podman_available() {
        if in_ci() {
            panic!("podman is not installed, but CI is set: the executor tests must run in CI");
        }
        skipped("podman not installed (set up with `make test`)");
        return false;
    }
    let missing: Vec<&str> = [IMG_BASH, IMG_BUSYBOX, IMG_HTTPD]
        .into_iter()
        .filter(|i| !image_exists(i))
        .collect();
    if !missing.is_empty() {
        if in_ci() {
            panic!(
                "test images missing in CI: {missing:?} (scripts/setup-test-env.sh builds them)"
            );
        }
        skipped(&format!(
            "test images missing: {missing:?} (set up with `make test`)"
        ));
        return false;
    }
    true
}

pub const IMG_HELPER: &str = "localhost/pogo-test/helper:latest";

/// `true` when the helper image (Debian + git + the stand-in gitlab-runner, built by
/// scripts/setup-test-env.sh) is there; skipped with a message otherwise, except in CI.
pub fn helper_ready() -> bool {
    if !podman_ready() {
        return false;
    }
    if image_exists(IMG_HELPER) {
        return true;
    }
    if in_ci() {
        panic!("{IMG_HELPER} missing in CI (scripts/setup-test-env.sh builds it)");
    }
    skipped(&format!("{IMG_HELPER} missing (set up with `make test`)"));
    false
}

/// Returns early from the test when Podman is not usable.
#[macro_export]
macro_rules! require_podman {
    () => {
        if !$crate::common::podman_ready() {
            return;
        }
    };
}

/// Returns early from the test when the helper image (or Podman) is not usable.
#[macro_export]
macro_rules! require_helper {
    () => {
        if !$crate::common::helper_ready() {
            return;
        }
    };
}

// ---------------------------------------------------------------------------
// Unique ids
// ---------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A job id no other test (in this or a parallel test process) uses.
pub fn unique_id() -> u64 {
    u64::from(std::process::id()) * 1000 + COUNTER.fetch_add(1, Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// Outcome helpers
// ---------------------------------------------------------------------------

pub fn assert_success(r: &JobResult) {
    assert_eq!(r.outcome, Outcome::Success, "job log:\n{}", r.log);
}

pub fn assert_system_failure(r: &JobResult) -> String {
    match &r.outcome {
        Outcome::SystemFailure { reason } => reason.clone(),
        o => panic!("expected a system failure, got {o:?}; job log:\n{}", r.log),
    }
}

/// The job failed as a script failure with `exit_code`.
pub fn assert_build_failure(r: &JobResult, exit_code: i32) {
    assert_eq!(r.outcome, Outcome::BuildFailure { exit_code }, "{}", r.log);
}

/// The job log without ANSI colour codes and section markers' `\r`.
pub fn plain_log(r: &JobResult) -> String {
    let mut out = String::with_capacity(r.log.len());
    let mut chars = r.log.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Commands' output
// ---------------------------------------------------------------------------

/// What a command printed and its exit code (-1: ended by a signal), shown in the test's
/// output as it is read.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        let r = Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        eprintln!(
            "---- exit {}\n---- stdout:\n{}---- stderr:\n{}",
            r.code, r.stdout, r.stderr
        );
        r
    }
}

/// Run `cmd` with `input` on its stdin; its exit status.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::ExitStatus {
    let mut child = cmd.stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait().unwrap()
}

/// Files under `dir` (recursively) whose contents hold one of `markers`.
pub fn files_containing(dir: &Path, markers: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            hits.extend(files_containing(&p, markers));
        } else if meta.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).to_string();
            for m in markers {
                if text.contains(m.as_str()) {
                    hits.push(format!("{} contains {m}", p.display()));
                }
            }
        }
    }
    hits
}
