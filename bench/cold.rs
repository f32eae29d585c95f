//! Cold starts (issue 18, goal 4), each against the warm job right after it:
//!
//! 1. the first job of a fresh `working_dir` — pogo's agent and its own catatonit not yet
//!    copied, no state, no gc stamp: what the first job after installing pogo (or after a
//!    reboot that cleared a working_dir on tmpfs) pays; the image is in local storage;
//! 2. the first job whose image must be pulled from a registry on 127.0.0.1 (Debian's
//!    `docker-registry`, plain HTTP), with the time spent in `podman pull` (timed by a podman
//!    wrapper around the pull call only). The image is the bench image exported and imported
//!    with one file of its own, so that none of its layer is in local storage: a whole pull.

use super::{Bench, PhasedRun};
use anyhow::{bail, ensure, Context, Result};
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Cold {
    /// Per round: the first job of a fresh working_dir, then the next job there.
    pub fresh: Vec<(PhasedRun, PhasedRun)>,
    /// Per round: the first job with an image from the loopback registry, its time in
    /// `podman pull`, then the next job (the image local now); or why it was not measured.
    pub pulled: std::result::Result<Pulled, String>,
}

#[derive(Debug)]
pub struct Pulled {
    pub runs: Vec<(PhasedRun, Duration, PhasedRun)>,
    /// The image's size as podman reports it (bytes).
    pub size: u64,
}

/// Debian's docker-registry on 127.0.0.1 (no auth), killed on drop.
struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start(dir: &Path) -> std::result::Result<Self, String> {
        let binary = ["/usr/bin/docker-registry", "/usr/bin/registry"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("Debian's docker-registry is not installed (`make setup` installs it)")?;
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = fs::File::create(dir.join("registry.log")).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {binary}: {e}"))?;
        let registry = Registry { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(registry);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{binary} did not listen on 127.0.0.1:{port} within 15 s: {}",
            fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
        ))
    }
}

fn podman_ok(args: &[&str]) -> Result<String> {
    let out = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("podman {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Bench {
    /// A copy of the fast-path driver whose pogo reads `config`.
    fn driver_with(&self, config: &Path) -> pogo::driver::Driver {
        let mut d = self.driver(super::StagePath::Agent).clone();
        d.pogo_args = vec!["--config".into(), config.display().to_string()];
        d
    }

    pub fn cold_start(&self, runs: u32) -> Result<Cold> {
        let mut fresh = Vec::new();
        for round in 1..=runs {
            let wd = self.dir.join(format!("cold-{round}"));
            let config = self.dir.join(format!("pogo-cold-{round}.yaml"));
            fs::write(
                &config,
                format!(
                    "# written by pogo's benchmark: a working_dir no job used yet\nworking_dir: {0}\ncache_dir: {0}/cache\nstage_runner: agent\n",
                    wd.display()
                ),
            )?;
            let driver = self.driver_with(&config);
            ensure!(!wd.exists(), "{} exists already", wd.display());
            let (cold, _) = self.job_through(&driver, &wd, &self.job()?)?;
            let (warm, _) = self.job_through(&driver, &wd, &self.job()?)?;
            eprintln!(
                "bench: cold start {round}/{runs}: fresh working_dir {:.0} ms, the next job {:.0} ms",
                super::ms(cold.total),
                super::ms(warm.total)
            );
            fresh.push((cold, warm));
        }
        let pulled = match Registry::start(&self.dir.join("registry")) {
            Ok(registry) => self.pulls(&registry, runs),
            Err(why) => Err(why),
        };
        Ok(Cold { fresh, pulled })
    }

    /// `runs` rounds of a job whose image is only in `registry`, then the same job again.
    fn pulls(&self, registry: &Registry, runs: u32) -> std::result::Result<Pulled, String> {
        let image = format!(
            "127.0.0.1:{}/pogo-bench/cold-{}:latest",
            registry.port, self.pid
        );
        let size = self
            .push_own_image(&image)
            .map_err(|e| format!("could not put an image into the loopback registry: {e:#}"))?;
        let result = self.pull_rounds(&image, runs);
        let _ = podman_ok(&["rmi", "-f", &image]);
        result
            .map(|runs| Pulled { runs, size })
            .map_err(|e| format!("{e:#}"))
    }

    fn pull_rounds(&self, image: &str, runs: u32) -> Result<Vec<(PhasedRun, Duration, PhasedRun)>> {
        let registries = self.dir.join("registries.conf");
        let host = image.split('/').next().unwrap_or_default();
        fs::write(
            &registries,
            format!("[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"),
        )?;
        let pulls = self.dir.join("pull-times");
        let wrapper = self.dir.join("bin/podman-pull-timer");
        let real = self.real_podman.display();
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n# written by pogo's benchmark: podman with the loopback registry; times each pull\nexport CONTAINERS_REGISTRIES_CONF={}\nif [ \"$1\" = pull ]; then\n  s=$(date +%s%N); {real} \"$@\"; rc=$?; e=$(date +%s%N)\n  echo \"$s $e\" >> {}\n  exit $rc\nfi\nexec {real} \"$@\"\n",
                registries.display(),
                pulls.display()
            ),
        )?;
        fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let config = self.dir.join("pogo-pull.yaml");
        fs::write(
            &config,
            format!(
                "# written by pogo's benchmark: the bench's working_dir, podman timing pulls\nworking_dir: {0}\ncache_dir: {0}/cache\nstage_runner: agent\npodman: {1}\n",
                self.working_dir.display(),
                wrapper.display()
            ),
        )?;
        let driver = self.driver_with(&config);
        let mut job = self.job()?;
        job.image = Some(pogo::driver::Image::new(image.to_string()));
        let mut out = Vec::new();
        for round in 1..=runs {
            podman_ok(&["rmi", "-f", image])?;
            let _ = fs::remove_file(&pulls);
            job.id = self.job_id()?;
            let (cold, _) = self.job_through(&driver, &self.working_dir, &job)?;
            let pulled: Duration = fs::read_to_string(&pulls)
                .context("no podman pull was timed: pogo did not pull the image")?
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace().map(str::parse::<u128>);
                    match (it.next(), it.next()) {
                        (Some(Ok(s)), Some(Ok(e))) => {
                            Some(Duration::from_nanos(e.saturating_sub(s) as u64))
                        }
                        _ => None,
                    }
                })
                .sum();
            let _ = fs::remove_file(&pulls);
            job.id = self.job_id()?;
            let (warm, _) = self.job_through(&driver, &self.working_dir, &job)?;
            ensure!(
                !pulls.exists(),
                "the second job pulled the image again (pull_policy?)"
            );
            eprintln!(
                "bench: first pull {round}/{runs}: {:.0} ms ({:.0} ms in podman pull), the next job {:.0} ms",
                super::ms(cold.total),
                super::ms(pulled),
                super::ms(warm.total)
            );
            out.push((cold, pulled, warm));
        }
        Ok(out)
    }

    /// The bench image with a file of its own, as one layer, pushed to `image` and gone from
    /// local storage; returns its size.
    fn push_own_image(&self, image: &str) -> Result<u64> {
        let work = self.dir.join("cold-image");
        fs::create_dir_all(work.join("add"))?;
        let ctr = podman_ok(&[
            "create",
            "--label",
            &format!("io.pogo.bench={}", self.pid),
            &self.image,
            "true",
        ])?;
        let tar = work.join("rootfs.tar");
        let exported = podman_ok(&["export", "-o", &tar.display().to_string(), &ctr]);
        let _ = podman_ok(&["rm", "-f", &ctr]);
        exported?;
        fs::write(
            work.join("add/pogo-bench-id"),
            format!("{} {:?}\n", self.pid, Instant::now()),
        )?;
        let st = Command::new("tar")
            .arg("--append")
            .arg("-f")
            .arg(&tar)
            .arg("-C")
            .arg(work.join("add"))
            .arg("pogo-bench-id")
            .status()
            .context("tar")?;
        ensure!(st.success(), "tar --append failed");
        podman_ok(&[
            "import",
            "--change",
            "CMD [\"bash\"]",
            &tar.display().to_string(),
            image,
        ])?;
        let size: u64 = podman_ok(&["image", "inspect", "--format", "{{.Size}}", image])?
            .parse()
            .unwrap_or(0);
        podman_ok(&[
            "push",
            "--tls-verify=false",
            image,
            &format!("docker://{image}"),
        ])?;
        podman_ok(&["rmi", "-f", image])?;
        let _ = fs::remove_dir_all(&work);
        Ok(size)
    }
}
