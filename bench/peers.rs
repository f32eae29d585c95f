//! `pogo exec` against gitlab-ci-local (issue 18, goal 3): the same one-job trivial pipeline
//! (`script: ["echo hi"]`, the bench's image, local only), interleaved, on this machine. Wall
//! time and the peak RSS of each tool's own process (pogo; gitlab-ci-local's node).
//! gitlab-ci-local comes from `bench/gitlab-ci-local.sh` (npm, into target/bench-tools); when it
//! cannot be had, the report says why instead of a figure.

use super::{measure, median, ms, Bench, Out};
use anyhow::{bail, ensure, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Its helper image (a `sh` for chown; the default is pulled from Docker Hub).
const HELPER_IMAGE: &str = "localhost/pogo-test/busybox:latest";

/// One run: wall time and the tool's own peak RSS in kB.
pub type Run = (Duration, Option<u64>);

#[derive(Debug)]
pub enum Peer {
    Measured {
        version: String,
        pogo: Vec<Run>,
        glcl: Vec<Run>,
        /// gitlab-ci-local's volumes left after its runs (removed by the bench).
        leftovers: usize,
    },
    NotMeasured(String),
}

/// gitlab-ci-local's volumes (`gcl-<job>-<id>-build`/`-tmp`): those there before the bench
/// are left alone, those it made are removed with the containers using them.
pub struct GclVolumes {
    before: Mutex<Option<Vec<String>>>,
}

impl GclVolumes {
    pub fn new() -> Self {
        Self {
            before: Mutex::new(None),
        }
    }

    fn list() -> Vec<String> {
        Command::new("podman")
            .args(["volume", "ls", "-q", "--filter", "name=^gcl-"])
            .stdin(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn remember(&self) {
        if let Ok(mut b) = self.before.lock() {
            b.get_or_insert_with(Self::list);
        }
    }

    /// The volumes gitlab-ci-local made during the bench.
    fn new_ones(&self) -> Vec<String> {
        let Ok(before) = self.before.lock() else {
            return Vec::new();
        };
        let Some(before) = before.as_ref() else {
            return Vec::new();
        };
        Self::list()
            .into_iter()
            .filter(|v| !before.contains(v))
            .collect()
    }

    /// Remove what gitlab-ci-local left; returns how many volumes.
    pub fn remove(&self) -> usize {
        let new = self.new_ones();
        for v in &new {
            let users = Command::new("podman")
                .args(["ps", "-aq", "--filter", &format!("volume={v}")])
                .stdin(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            for c in users.split_whitespace() {
                let _ = Command::new("podman")
                    .args(["rm", "-f", "-t", "0", c])
                    .stdin(Stdio::null())
                    .output();
            }
            let _ = Command::new("podman")
                .args(["volume", "rm", "-f", v])
                .stdin(Stdio::null())
                .output();
        }
        new.len()
    }
}

impl Bench {
    /// `runs` interleaved rounds (after one unmeasured each) of `pogo exec` and gitlab-ci-local.
    pub fn exec_vs_gitlab_ci_local(&self, runs: u32, volumes: &GclVolumes) -> Result<Peer> {
        let glcl = match install() {
            Ok(p) => p,
            Err(why) => return Ok(Peer::NotMeasured(why)),
        };
        let version = Command::new(&glcl)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let root = self.dir.join("peers");
        let project = root.join("proj");
        fs::create_dir_all(&project)?;
        fs::write(
            project.join(".gitlab-ci.yml"),
            format!("job:\n  image: {}\n  script:\n    - echo hi\n", self.image),
        )?;
        git(&project, &["init", "-q", "-b", "main"])?;
        git(&project, &["add", ".gitlab-ci.yml"])?;
        git(&project, &["commit", "-q", "-m", "trivial"])?;
        git(
            &project,
            &[
                "remote",
                "add",
                "origin",
                "https://gitlab.example.com/bench/proj.git",
            ],
        )?;
        git(
            &project,
            &["update-ref", "refs/remotes/origin/main", "HEAD"],
        )?;
        git(&project, &["remote", "set-head", "origin", "main"])?;
        volumes.remember();

        let (mut pogo_runs, mut glcl_runs) = (Vec::new(), Vec::new());
        for round in 0..=runs {
            let measured = round > 0;
            let mut line = format!(
                "bench: pogo exec vs gitlab-ci-local {}:",
                if measured {
                    format!("run {round}/{runs}")
                } else {
                    "warm-up".into()
                }
            );
            let order: [bool; 2] = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_pogo in order {
                let run = if is_pogo {
                    self.pogo_exec(&project)
                } else {
                    gitlab_ci_local(&glcl, &project)
                }?;
                let _ = std::fmt::Write::write_fmt(
                    &mut line,
                    format_args!(
                        " {} {:.0}",
                        if is_pogo { "pogo" } else { "glcl" },
                        ms(run.0)
                    ),
                );
                if measured {
                    if is_pogo {
                        pogo_runs.push(run);
                    } else {
                        glcl_runs.push(run);
                    }
                }
            }
            eprintln!("{line} (ms)");
        }
        let leftovers = volumes.remove();
        Ok(Peer::Measured {
            version,
            pogo: pogo_runs,
            glcl: glcl_runs,
            leftovers,
        })
    }

    fn pogo_exec(&self, project: &Path) -> Result<Run> {
        let mut c = Command::new(self.pogo.as_path());
        c.arg("--config")
            .arg(super::config_file(
                &self.dir,
                super::StagePath::Agent,
                false,
            ))
            .arg("exec")
            .arg("--dir")
            .arg(project)
            .env("NO_COLOR", "1");
        let m = measure(&mut c, Out::Capture, true)?;
        m.check("pogo exec")?;
        ensure!(
            String::from_utf8_lossy(&m.stdout)
                .lines()
                .any(|l| l == "hi"),
            "pogo exec: no \"hi\" in its output"
        );
        Ok((m.elapsed, m.peak_rss_kb))
    }
}

fn gitlab_ci_local(glcl: &Path, project: &Path) -> Result<Run> {
    let mut c = Command::new(glcl);
    c.current_dir(project).args([
        "--container-executable",
        "podman",
        "--helper-image",
        HELPER_IMAGE,
        "--no-artifacts-to-source",
        "--no-color",
        "--state-dir",
        "../glcl-state",
    ]);
    let m = measure(&mut c, Out::Capture, true)?;
    m.check("gitlab-ci-local")?;
    ensure!(
        String::from_utf8_lossy(&m.stdout)
            .lines()
            .any(|l| l.trim_end().ends_with("> hi")),
        "gitlab-ci-local: no \"hi\" in its output"
    );
    Ok((m.elapsed, m.peak_rss_kb))
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .stdin(Stdio::null())
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The wrapper `bench/gitlab-ci-local.sh` prints, or why there is none.
fn install() -> std::result::Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/gitlab-ci-local.sh");
    eprintln!("bench: gitlab-ci-local: bash {}", script.display());
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run {}: {e}", script.display()))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        return Err(format!(
            "gitlab-ci-local could not be installed ({}; its messages are above in the bench's stderr)",
            out.status
        ));
    }
    Ok(PathBuf::from(path))
}

/// The report's lines: (median wall ms of pogo, of gitlab-ci-local, ratio) for the verdict.
pub fn medians(pogo: &[Run], glcl: &[Run]) -> (f64, f64) {
    let walls = |v: &[Run]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    (median(&walls(pogo)), median(&walls(glcl)))
}
