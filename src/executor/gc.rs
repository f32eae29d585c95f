//! `pogo gc`: remove what finished jobs left behind — containers, pods and volumes carrying
//! pogo's labels whose job is over (no live pogo process for it, and older than its timeout).
//! Never touches anything without pogo's labels, never prunes.

use super::cleanup::remove_job;
use super::env::{DEFAULT_JOB_TIMEOUT_SECS, JOB_KEY};
use crate::podman::labels::{
    LABEL_CREATED, LABEL_JOB_KEY, LABEL_MANAGED_BY, LABEL_RUNNER, LABEL_TIMEOUT,
};
use crate::podman::Podman;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Extra time after a job's timeout before its leftovers count as abandoned: gitlab-runner
/// still runs after_script (5 min by default) and cleanup after the timeout.
pub const GRACE_SECS: u64 = 15 * 60;

/// How often `prepare` starts a background gc of its runner's leftovers.
pub const AUTO_GC_INTERVAL: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    pub dry_run: bool,
    /// Age after which a job with no live pogo process is removed, instead of its timeout.
    pub older_than: Option<Duration>,
    /// Only this runner's leftovers (`io.pogo.runner` label).
    pub runner: Option<String>,
    pub quiet: bool,
    /// The most bytes all log copies together keep (0: no limit): those of finished jobs go,
    /// oldest first, past it.
    pub log_copies_total: u64,
    /// `max_images_size` (bytes, 0: no limit) and `keep_images`.
    pub max_images_size: u64,
    pub keep_images: crate::config::Globs,
    /// `cache_dir` and `max_cache_size` (bytes, 0: no limit).
    pub cache_dir: PathBuf,
    pub max_cache_size: u64,
}

impl GcOptions {
    /// The limits `config` sets (log copies, images, caches); no dry run, no age or runner
    /// filter, not quiet.
    pub fn of_config(config: &crate::config::Config) -> Self {
        GcOptions {
            log_copies_total: config
                .log_copy_limit
                .saturating_mul(crate::config::model::LOG_COPIES_TOTAL_FACTOR),
            max_images_size: config.max_images_size,
            keep_images: config.keep_images.clone(),
            cache_dir: config.cache_dir.clone(),
            max_cache_size: config.max_cache_size,
            ..GcOptions::default()
        }
    }
}

/// What pogo created for one job, found by its labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobObjects {
    pub key: String,
    pub runner: String,
    /// Unix seconds, the oldest object's; `None` when an object lacks pogo's `created` label
    /// (then only an explicit `--older-than` removes it).
    pub created: Option<u64>,
    pub timeout: u64,
    pub containers: Vec<String>,
    pub pods: Vec<String>,
    pub volumes: Vec<String>,
    /// One of its containers is running (and its state record, if any, says prepare finished).
    /// Between two `pogo run` calls no pogo process holds a running job's key, but its job
    /// container runs (its init keeps it alive until cleanup); after a reboot or a crash it has
    /// exited.
    pub running: bool,
    /// From the job's state record: when cleanup ran, and until when a failed job is kept.
    pub ended: Option<u64>,
    pub kept_until: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Listed {
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    /// Containers only (`podman ps`): `running`, `exited`, `created`, …
    #[serde(rename = "State", default)]
    state: Option<String>,
}

impl Listed {
    fn display_name(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| self.name.clone())
    }
}

#[derive(Clone, Copy)]
enum ObjectKind {
    Container,
    Pod,
    Volume,
}

/// Does an object carry pogo's label (and, with `runner`, that runner's)? podman's listings
/// are asked with these filters too, but podman 4.3 ORs several `--filter label=` on `volume
/// ls` (it ANDs them on `ps` and `pod ps`): `pogo gc --runner X` then saw, and removed, every
/// runner's volumes. So each object's labels are checked here. Pure.
fn is_ours(labels: &BTreeMap<String, String>, runner: Option<&str>) -> bool {
    labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some("pogo")
        && runner.is_none_or(|r| labels.get(LABEL_RUNNER).map(String::as_str) == Some(r))
}

/// Group labelled objects by job key, keeping only pogo's (of `runner`, when given). Pure.
fn group(lists: Vec<(ObjectKind, Vec<Listed>)>, runner: Option<&str>) -> Vec<JobObjects> {
    let mut jobs: BTreeMap<String, JobObjects> = BTreeMap::new();
    for (kind, items) in lists {
        for item in items {
            let labels = item.labels.clone().unwrap_or_default();
            if !is_ours(&labels, runner) {
                continue;
            }
            let Some(key) = labels.get(LABEL_JOB_KEY).filter(|k| !k.is_empty()) else {
                continue;
            };
            let created: Option<u64> = labels.get(LABEL_CREATED).and_then(|c| c.parse().ok());
            let timeout = labels
                .get(LABEL_TIMEOUT)
                .and_then(|c| c.parse().ok())
                .unwrap_or(DEFAULT_JOB_TIMEOUT_SECS);
            let job = jobs.entry(key.clone()).or_insert_with(|| JobObjects {
                key: key.clone(),
                runner: labels.get(LABEL_RUNNER).cloned().unwrap_or_default(),
                created,
                timeout,
                ..JobObjects::default()
            });
            job.created = match (job.created, created) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            };
            job.timeout = job.timeout.max(timeout);
            let name = item.display_name();
            match kind {
                ObjectKind::Container => {
                    job.running |= item.state.as_deref() == Some("running");
                    job.containers.push(name);
                }
                ObjectKind::Pod => job.pods.push(name),
                ObjectKind::Volume => job.volumes.push(name),
            }
        }
    }
    jobs.into_values().collect()
}

/// Is this job over? Not while a pogo process for it is alive or a failed job is kept
/// (`keep_failed`); yes once its state record says cleanup ran; otherwise once it is older than
/// its timeout plus `GRACE_SECS`. `older_than` removes younger ones too, but never a job whose
/// container still runs: that job may be between two stages, where no pogo process holds its
/// key. Pure.
pub fn is_abandoned(
    job: &JobObjects,
    now: u64,
    older_than: Option<Duration>,
    live: &HashSet<String>,
) -> bool {
    if live.contains(&job.key) || job.kept_until.is_some_and(|t| t > now) {
        return false;
    }
    if job.ended.is_some() {
        // its cleanup ran: anything left is either a kept failed job past its time, or
        // what a failed cleanup left behind
        return true;
    }
    let past_timeout = job
        .created
        .is_some_and(|c| now.saturating_sub(c) >= job.timeout.saturating_add(GRACE_SECS));
    match older_than {
        None => past_timeout,
        Some(d) => {
            let old_enough = job
                .created
                .is_none_or(|c| now.saturating_sub(c) >= d.as_secs());
            old_enough && (past_timeout || !job.running)
        }
    }
}

/// Job keys of running pogo phases (and their podman commands): processes whose environment
/// holds `POGO_JOB_KEY` (gitlab-runner passes `job_env` to every phase), see
/// [`job_keys_of_process`]. Only processes this user may read are seen — the same user whose
/// podman storage gc looks at.
pub fn live_job_keys() -> HashSet<String> {
    let mut keys = HashSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return keys;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        keys.extend(job_keys_of_process(&entry.path()));
    }
    keys
}

/// Programs podman starts that stay after the podman command that started them has ended:
/// a container's monitor, rootless networking and port forwarding, the network's DNS server,
/// rootless podman's pause process. Podman 5 hands them its whole environment, job key
/// included, so they say nothing about whether a pogo phase still works on the job (a kept
/// container's conmon would keep its job "at work" for ever).
const PODMAN_DAEMONS: &[&str] = &[
    "conmon",
    "slirp4netns",
    "pasta",
    "pasta.avx2",
    "aardvark-dns",
    "rootlessport",
    "rootlessport-ch",
    "catatonit",
];

/// The job keys process `proc_dir` (`/proc/PID`) works for: its `POGO_JOB_KEY`, unless it is
/// one of podman's long-lived helpers ([`PODMAN_DAEMONS`]).
pub fn job_keys_of_process(proc_dir: &std::path::Path) -> Vec<String> {
    let Ok(environ) = std::fs::read(proc_dir.join("environ")) else {
        return Vec::new();
    };
    let keys = job_keys_in_environ(&environ, &format!("{JOB_KEY}="));
    if keys.is_empty() {
        return keys;
    }
    let comm = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
    if PODMAN_DAEMONS.contains(&comm.trim_end()) {
        return Vec::new();
    }
    keys
}

fn job_keys_in_environ(environ: &[u8], prefix: &str) -> Vec<String> {
    environ
        .split(|b| *b == 0)
        .filter_map(|var| std::str::from_utf8(var).ok())
        .filter_map(|var| var.strip_prefix(prefix))
        .map(str::to_string)
        .collect()
}

fn label_filters(runner: Option<&str>) -> Vec<String> {
    let mut f = vec![
        "--filter".to_string(),
        format!("label={LABEL_MANAGED_BY}=pogo"),
    ];
    if let Some(r) = runner {
        f.push("--filter".into());
        f.push(format!("label={LABEL_RUNNER}={r}"));
    }
    f
}

/// Every pogo-labelled object, grouped by job.
pub async fn list_jobs(podman: &Podman, runner: Option<&str>) -> Result<Vec<JobObjects>, String> {
    let filters = label_filters(runner);
    let with = |base: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        a.extend(filters.iter().cloned());
        a.extend(["--format".to_string(), "json".to_string()]);
        a
    };
    let (ps, pods, vols) = (
        with(&["ps", "-a"]),
        with(&["pod", "ps"]),
        with(&["volume", "ls"]),
    );
    let (c, p, v) = tokio::join!(
        podman.json::<Vec<Listed>>(&ps),
        podman.json::<Vec<Listed>>(&pods),
        podman.json::<Vec<Listed>>(&vols),
    );
    Ok(group(
        vec![
            (ObjectKind::Container, c.map_err(|e| e.to_string())?),
            (ObjectKind::Pod, p.map_err(|e| e.to_string())?),
            (ObjectKind::Volume, v.map_err(|e| e.to_string())?),
        ],
        runner,
    ))
}

/// Run a gc; returns the number of errors (0 = everything abandoned is gone).
pub async fn run(
    podman: &Podman,
    opts: &GcOptions,
    working_dir: &Path,
    state_dir: &Path,
) -> Result<usize, String> {
    // The order of these looks is what keeps a starting job safe. A job directory seen first
    // was made by a prepare that had started: if that prepare still runs when the processes
    // are read, its key is live; if it has finished by then, its podman objects exist before
    // they are listed. Read the other way round, a prepare that made its directory and
    // containers in between was in neither look, and gc removed the directory and agent
    // socket of a job that had just begun. The processes are read once more after the
    // listing: a prepare that started after the first read and created its containers before
    // the listing is at work then (`--older-than` would otherwise take its containers for a
    // killed prepare's).
    let job_dirs = job_dir_keys(working_dir, opts.runner.as_deref());
    let mut live = live_job_keys();
    // every runner's: a job directory of another runner's job must not look orphaned
    let all_jobs = list_jobs(podman, None).await?;
    live.extend(live_job_keys());
    let with_objects: HashSet<String> = all_jobs.iter().map(|j| j.key.clone()).collect();
    let mut jobs: Vec<JobObjects> = match opts.runner.as_deref() {
        None => all_jobs,
        Some(r) => all_jobs.into_iter().filter(|j| j.runner == r).collect(),
    };
    let states = crate::state::StateDir::new(state_dir);
    for job in &mut jobs {
        if let Some(r) = states.read(&job.key) {
            job.ended = r.ended;
            job.kept_until = r.kept_until;
            // a prepare that never finished (killed) left its containers running: no stage
            // will come for them
            job.running &= r.prepared;
        }
    }
    if !opts.dry_run {
        states.prune(crate::state::RETENTION, crate::state::now());
        if opts.log_copies_total > 0 {
            states.prune_logs_to(opts.log_copies_total);
        }
    }
    let now = crate::state::now();
    // a job whose cleanup's removal still runs is at work (its remover holds the job's key
    // too, unless it was started by hand)
    let abandoned: Vec<&JobObjects> = jobs
        .iter()
        .filter(|j| is_abandoned(j, now, opts.older_than, &live))
        .filter(|j| !super::removal::running(working_dir, &j.key))
        .collect();
    let (removed, mut errors, gone) =
        remove_abandoned(podman, opts, working_dir, &states, &abandoned, now).await;
    // the orders of removals that failed or were killed, once their job has nothing left
    if !opts.dry_run {
        for key in super::removal::stale_orders(working_dir, Duration::from_secs(2)) {
            if !with_objects.contains(&key) || gone.contains(key.as_str()) {
                let _ = std::fs::remove_file(super::removal::order_path(working_dir, &key));
            }
        }
    }
    // private job directories (registry credentials) of jobs that have no podman object and
    // no live pogo process: a prepare killed before (or while) it pulled
    let orphaned = orphaned_job_dirs(job_dirs, &with_objects, &live);
    errors += remove_orphaned_job_dirs(opts, working_dir, orphaned);
    // persistent builds volumes (persistent_builds_days) unused for too long
    errors += remove_unused_builds_volumes(podman, opts, working_dir, now).await;
    // the images pogo pulled, within max_images_size (after the jobs: their containers go
    // first, so their images are free)
    errors += super::images::enforce(
        podman,
        working_dir,
        opts.max_images_size,
        &opts.keep_images,
        opts.dry_run,
        opts.quiet,
    )
    .await;
    // the job caches, within max_cache_size
    errors += super::caches::enforce(
        &opts.cache_dir,
        opts.max_cache_size,
        now,
        opts.dry_run,
        opts.quiet,
    );
    if !opts.quiet && !opts.dry_run {
        let kept = jobs.len() - abandoned.len();
        println!(
            "pogo gc: {removed} finished job(s) cleaned up, {kept} job(s) still running or too recent"
        );
    }
    Ok(errors)
}

/// Remove the abandoned jobs' podman objects, agent sockets and private directories (or
/// say what would go, with `dry_run`): how many jobs went, how many removals failed, and
/// the keys of the jobs that are gone.
async fn remove_abandoned<'a>(
    podman: &Podman,
    opts: &GcOptions,
    working_dir: &Path,
    states: &crate::state::StateDir,
    abandoned: &[&'a JobObjects],
    now: u64,
) -> (usize, usize, HashSet<&'a str>) {
    let (mut removed, mut errors) = (0, 0);
    let mut gone: HashSet<&str> = HashSet::new();
    for job in abandoned {
        let what = describe(job, now);
        if opts.dry_run {
            println!("would remove {what}");
            continue;
        }
        let errs = remove_job(podman, &job.key, super::cleanup::Scope::ALL).await;
        super::agent::remove_socket_dir(working_dir, &job.key);
        super::agent::remove_socket_dir(working_dir, &format!("{}-helper", job.key));
        let _ = super::jobdata::remove(working_dir, &job.key);
        if errs.is_empty() {
            removed += 1;
            gone.insert(job.key.as_str());
            close_abandoned_record(states, &job.key, now);
            if !opts.quiet {
                println!("removed {what}");
            }
        } else {
            errors += errs.len();
            eprintln!("pogo gc: could not remove {what}: {}", errs.join("; "));
        }
    }
    (removed, errors, gone)
}

/// A job whose cleanup never ran (pogo killed): close its record for `pogo tui`.
fn close_abandoned_record(states: &crate::state::StateDir, key: &str, now: u64) {
    if states.read(key).is_some_and(|r| r.ended.is_none()) {
        let _ = states.update(key, crate::state::JobRecord::default, |r| {
            if r.ended.is_none() {
                r.key = key.to_string();
                r.ended = Some(now);
                r.result.get_or_insert(crate::state::Outcome::Failed);
                r.failure
                    .get_or_insert_with(|| "abandoned: removed by pogo gc".to_string());
            }
        });
    }
}

/// Keys of the job directories under `<working_dir>/jobdata` (of `runner`, when given: its
/// keys start `pogo-<runner>-`), sorted.
fn job_dir_keys(working_dir: &Path, runner: Option<&str>) -> Vec<String> {
    let prefix = runner.map(|r| format!("pogo-{}-", super::env::sanitize_name(r, "runner")));
    let Ok(entries) = std::fs::read_dir(working_dir.join("jobdata")) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|k| k.starts_with("pogo-"))
        .filter(|k| prefix.as_deref().is_none_or(|p| k.starts_with(p)))
        .collect();
    keys.sort();
    keys
}

/// The job directories among `job_dirs` whose job has no podman object left and no live pogo
/// process. Pure; see [`run`] for the order in which its inputs must be read.
fn orphaned_job_dirs(
    job_dirs: Vec<String>,
    with_objects: &HashSet<String>,
    live: &HashSet<String>,
) -> Vec<String> {
    job_dirs
        .into_iter()
        .filter(|k| !with_objects.contains(k) && !live.contains(k))
        .collect()
}

/// Remove the job directories `orphaned` (see [`orphaned_job_dirs`]) and their agent sockets;
/// the number of errors.
fn remove_orphaned_job_dirs(opts: &GcOptions, working_dir: &Path, orphaned: Vec<String>) -> usize {
    let mut errors = 0;
    for key in orphaned {
        if opts.dry_run {
            println!("would remove the job directory of {key} (its job left nothing else)");
            continue;
        }
        super::agent::remove_socket_dir(working_dir, &key);
        super::agent::remove_socket_dir(working_dir, &format!("{key}-helper"));
        match super::jobdata::remove(working_dir, &key) {
            Ok(()) if !opts.quiet => {
                println!("removed the job directory of {key} (its job left nothing else)");
            }
            Ok(()) => {}
            Err(e) => {
                errors += 1;
                eprintln!("pogo gc: could not remove the job directory of {key}: {e}");
            }
        }
    }
    errors
}

fn describe(job: &JobObjects, now: u64) -> String {
    let mut parts = Vec::new();
    if !job.containers.is_empty() {
        parts.push(format!("{} container(s)", job.containers.len()));
    }
    if !job.pods.is_empty() {
        parts.push(format!("{} pod(s)", job.pods.len()));
    }
    if !job.volumes.is_empty() {
        parts.push(format!("{} volume(s)", job.volumes.len()));
    }
    let age = match job.created {
        Some(c) => {
            humantime::format_duration(Duration::from_secs(now.saturating_sub(c))).to_string()
        }
        None => "unknown".to_string(),
    };
    format!("job {} ({}), age {age}", job.key, parts.join(", "))
}

/// Where `prepare` notes the last use of a persistent builds volume: the file's mtime is the
/// time, its content the days it is kept unused.
pub fn builds_volume_stamp(working_dir: &Path, volume: &str) -> PathBuf {
    // the whole name: the first 40 characters are the same for two slots of a project
    let file: String = volume
        .chars()
        .filter(|c| crate::names::is_name_char(*c))
        .collect();
    let file = file.trim_start_matches(['.', '-', '_']);
    working_dir
        .join("builds-volumes")
        .join(if file.is_empty() { "volume" } else { file })
}

/// When `volume` was last used: its stamp's time, else that of the stamp earlier versions
/// wrote (named by the first 40 characters of the volume's name, shared by its slots).
fn builds_volume_touched(working_dir: &Path, volume: &str) -> Option<SystemTime> {
    stamp_time(&builds_volume_stamp(working_dir, volume)).or_else(|| {
        stamp_time(
            &working_dir
                .join("builds-volumes")
                .join(super::env::sanitize_name(volume, "volume")),
        )
    })
}

/// A lock on a persistent builds volume: prepare holds it (shared) from before it looks at the
/// volume until the job container that mounts it exists; `pogo gc` removes a volume only while
/// holding it alone. Without it, gc could remove the volume between prepare's check and its
/// `podman run`, which would re-create it without pogo's labels.
pub type BuildsVolumeLock = nix::fcntl::Flock<std::fs::File>;

fn lock_builds_volume(
    working_dir: &Path,
    volume: &str,
    how: nix::fcntl::FlockArg,
) -> std::io::Result<BuildsVolumeLock> {
    let mut path = builds_volume_stamp(working_dir, volume);
    path.set_extension("lock");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = crate::fsutil::open_lock_file(&path, true)?;
    nix::fcntl::Flock::lock(file, how).map_err(|(_, e)| std::io::Error::from(e))
}

/// The lock prepare holds while it sets a job up on `volume` (waits for a gc removing it).
pub fn lock_builds_volume_for_use(
    working_dir: &Path,
    volume: &str,
) -> std::io::Result<BuildsVolumeLock> {
    lock_builds_volume(working_dir, volume, nix::fcntl::FlockArg::LockShared)
}

/// Note that a job uses `volume` now.
pub fn touch_builds_volume(working_dir: &Path, volume: &str, days: u64) -> std::io::Result<()> {
    let stamp = builds_volume_stamp(working_dir, volume);
    if let Some(dir) = stamp.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&stamp, days.to_string())
}

/// Is a persistent builds volume last used at `last_use` (unix seconds) over? After its days
/// (`--older-than` instead, when given). Pure.
pub fn builds_volume_expired(
    last_use: u64,
    days: u64,
    now: u64,
    older_than: Option<Duration>,
) -> bool {
    let keep = older_than.map_or(days.saturating_mul(86_400), |d| d.as_secs());
    now.saturating_sub(last_use) >= keep
}

/// Remove the persistent builds volumes (label `io.pogo.builds-volume`) unused for their
/// `persistent_builds_days`; one still mounted by a job stays. Returns the number of errors.
async fn remove_unused_builds_volumes(
    podman: &Podman,
    opts: &GcOptions,
    working_dir: &Path,
    now: u64,
) -> usize {
    use crate::podman::labels::LABEL_BUILDS_VOLUME;
    let mut argv: Vec<String> = ["volume", "ls"].iter().map(|s| s.to_string()).collect();
    argv.extend(label_filters(opts.runner.as_deref()));
    argv.extend([
        "--filter".to_string(),
        format!("label={LABEL_BUILDS_VOLUME}"),
        "--format".to_string(),
        "json".to_string(),
    ]);
    let volumes = match podman.json::<Vec<Listed>>(&argv).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("pogo gc: cannot list builds volumes: {e}");
            return 1;
        }
    };
    let mut errors = 0;
    for v in volumes {
        let name = v.display_name();
        let labels = v.labels.clone().unwrap_or_default();
        if !is_ours(&labels, opts.runner.as_deref()) || !labels.contains_key(LABEL_BUILDS_VOLUME) {
            continue;
        }
        let stamp = builds_volume_stamp(working_dir, &name);
        let touched = builds_volume_touched(working_dir, &name);
        let stamped = touched
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let days = std::fs::read_to_string(&stamp)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .or_else(|| labels.get(LABEL_BUILDS_VOLUME).and_then(|d| d.parse().ok()))
            .unwrap_or(crate::config::model::DEFAULT_PERSISTENT_BUILDS_DAYS);
        let Some(last_use) =
            stamped.or_else(|| labels.get(LABEL_CREATED).and_then(|c| c.parse().ok()))
        else {
            continue;
        };
        if !builds_volume_expired(last_use, days, now, opts.older_than) {
            continue;
        }
        let unused = humantime::format_duration(Duration::from_secs(now.saturating_sub(last_use)));
        // the same kind of kept volume, under its own name (see prepare's project_volumes)
        let what = if name.starts_with("pogo-project-") {
            "project volume"
        } else {
            "builds volume"
        };
        if opts.dry_run {
            println!("would remove {what} {name} (unused for {unused})");
            continue;
        }
        // a prepare setting a job up on it holds the lock: keep it (and one that noted its use
        // meanwhile, then let the lock go, has its container by now: `volume rm` keeps it)
        let Ok(_alone) = lock_builds_volume(
            working_dir,
            &name,
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        ) else {
            continue;
        };
        if builds_volume_touched(working_dir, &name) != touched {
            continue;
        }
        // without -f: a volume a running job mounts stays
        match podman
            .run(&crate::podman::args::volume_rm_unused(&name))
            .await
        {
            Ok(_) => {
                let _ = std::fs::remove_file(&stamp);
                if !opts.quiet {
                    println!("removed {what} {name} (unused for {unused})");
                }
            }
            Err(e) if e.to_string().contains("in use") || e.to_string().contains("being used") => {}
            Err(e) => {
                errors += 1;
                eprintln!("pogo gc: could not remove {what} {name}: {e}");
            }
        }
    }
    errors
}

/// When a builds volume's stamp was last written (to the file system's precision).
fn stamp_time(stamp: &Path) -> Option<SystemTime> {
    std::fs::metadata(stamp).and_then(|m| m.modified()).ok()
}

/// The stamp file that rate-limits the background gc `prepare` starts.
pub fn stamp_path(working_dir: &Path, runner: &str) -> PathBuf {
    working_dir.join(format!(
        "gc-{}.stamp",
        super::env::sanitize_name(runner, "runner")
    ))
}

/// Start a background `pogo gc --runner R --quiet` at most every `AUTO_GC_INTERVAL`: costs a
/// `stat` when there is nothing to do, never delays the job.
pub fn maybe_start_background(config: &crate::config::Config, runner: &str) {
    let stamp = stamp_path(&config.working_dir, runner);
    let recent = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < AUTO_GC_INTERVAL);
    if recent {
        return;
    }
    if std::fs::create_dir_all(&config.working_dir).is_err() || std::fs::write(&stamp, b"").is_err()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    if let Some(src) = &config.source {
        cmd.arg("--config").arg(src);
    }
    use std::os::unix::process::CommandExt;
    let _ = cmd
        .args(["gc", "--quiet", "--runner", runner])
        .env_remove(JOB_KEY)
        // the job's temporary directory (prepare's working directory) goes with the job,
        // and podman fails without a working directory
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
}

/// What `pogo gc`'s command line asks for (the rest comes from the config).
#[derive(Debug, Clone, Default)]
pub struct GcRequest {
    pub dry_run: bool,
    pub older_than: Option<std::time::Duration>,
    pub runner: Option<String>,
    pub quiet: bool,
}

/// `pogo gc`: 0 when everything of finished jobs is gone, 1 when something could not be
/// removed, 2 when the config or podman failed.
pub fn gc_main(
    flag: Option<&std::path::Path>,
    env: &std::collections::HashMap<String, String>,
    args: GcRequest,
) -> i32 {
    let config = match crate::config::load(flag, env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pogo gc: {e}");
            return 2;
        }
    };
    let podman = Podman::new(config.podman.clone(), config.podman_args.clone());
    let opts = GcOptions {
        dry_run: args.dry_run,
        older_than: args.older_than,
        runner: args.runner,
        quiet: args.quiet,
        ..GcOptions::of_config(&config)
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => return super::exit_code(Err(e), env),
    };
    let state_dir = crate::state::state_dir(&config.working_dir, env);
    match rt.block_on(run(&podman, &opts, &config.working_dir, &state_dir)) {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("pogo gc: podman failed: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_cannot_take_a_builds_volume_a_prepare_is_setting_up_and_waits_for_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let exclusive = || {
            lock_builds_volume(
                dir.path(),
                "pogo-r-vol",
                nix::fcntl::FlockArg::LockExclusiveNonblock,
            )
        };
        let in_use = lock_builds_volume_for_use(dir.path(), "pogo-r-vol").unwrap();
        // a second prepare on the same volume is fine
        let second = lock_builds_volume_for_use(dir.path(), "pogo-r-vol").unwrap();
        assert!(exclusive().is_err(), "gc must not remove it now");
        drop((in_use, second));
        assert!(
            exclusive().is_ok(),
            "once the jobs' containers exist, gc may try"
        );
    }

    fn listed(name: &str, labels: &[(&str, &str)]) -> Listed {
        Listed {
            names: vec![name.to_string()],
            name: String::new(),
            state: None,
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn objects_are_grouped_by_job_and_unlabelled_ones_ignored() {
        let pogo = (LABEL_MANAGED_BY, "pogo");
        let jobs = group(
            vec![
                (
                    ObjectKind::Container,
                    vec![
                        listed(
                            "a-build",
                            &[
                                pogo,
                                (LABEL_JOB_KEY, "a"),
                                (LABEL_CREATED, "100"),
                                (LABEL_TIMEOUT, "60"),
                            ],
                        ),
                        listed(
                            "a-svc0",
                            &[pogo, (LABEL_JOB_KEY, "a"), (LABEL_CREATED, "90")],
                        ),
                        listed("stranger", &[pogo]),
                        listed("not-pogos", &[(LABEL_JOB_KEY, "b")]),
                    ],
                ),
                (
                    ObjectKind::Pod,
                    vec![listed(
                        "a-pod",
                        &[pogo, (LABEL_JOB_KEY, "a"), (LABEL_CREATED, "95")],
                    )],
                ),
            ],
            None,
        );
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].created, Some(90));
        assert_eq!(
            jobs[0].timeout, DEFAULT_JOB_TIMEOUT_SECS,
            "the largest timeout wins"
        );
        assert_eq!(jobs[0].containers, ["a-build", "a-svc0"]);
        assert_eq!(jobs[0].pods, ["a-pod"]);
    }

    /// podman 4.3 ORs label filters on `volume ls`: what it lists is checked again here.
    #[test]
    fn another_runners_objects_are_never_counted_as_this_runners() {
        let of = |runner: &str, key: &str| {
            listed(
                &format!("{key}-builds"),
                &[
                    (LABEL_MANAGED_BY, "pogo"),
                    (LABEL_RUNNER, runner),
                    (LABEL_JOB_KEY, key),
                ],
            )
        };
        let lists = || vec![(ObjectKind::Volume, vec![of("mine", "m"), of("other", "o")])];
        let mine = group(lists(), Some("mine"));
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].volumes, ["m-builds"]);
        assert_eq!(group(lists(), None).len(), 2);
    }

    #[test]
    fn a_job_is_abandoned_only_without_live_process_and_past_its_timeout() {
        let job = JobObjects {
            key: "k".into(),
            created: Some(1_000),
            timeout: 600,
            ..JobObjects::default()
        };
        let none = HashSet::new();
        let live: HashSet<String> = ["k".to_string()].into();
        assert!(
            !is_abandoned(&job, 1_000 + 600, None, &none),
            "within timeout + grace"
        );
        assert!(is_abandoned(&job, 1_000 + 600 + GRACE_SECS, None, &none));
        assert!(
            !is_abandoned(&job, 1_000_000, None, &live),
            "a live pogo process keeps it"
        );
        assert!(is_abandoned(&job, 1_000, Some(Duration::ZERO), &none));
        assert!(!is_abandoned(&job, 1_000, Some(Duration::ZERO), &live));
        // between two stages no pogo process holds the key, but the container runs
        let between_stages = JobObjects {
            running: true,
            ..job.clone()
        };
        assert!(
            !is_abandoned(&between_stages, 1_000 + 600, Some(Duration::ZERO), &none),
            "--older-than never removes a job whose container runs, within its timeout"
        );
        assert!(is_abandoned(
            &between_stages,
            1_000 + 600 + GRACE_SECS,
            Some(Duration::ZERO),
            &none
        ));
        let kept = JobObjects {
            kept_until: Some(5_000),
            ended: Some(1_100),
            ..job.clone()
        };
        assert!(
            !is_abandoned(&kept, 4_999, Some(Duration::ZERO), &none),
            "kept for debugging"
        );
        assert!(
            is_abandoned(&kept, 5_000, None, &none),
            "removed once its time is up"
        );
        let ended = JobObjects {
            ended: Some(1_100),
            ..job.clone()
        };
        assert!(
            is_abandoned(&ended, 1_200, None, &none),
            "cleanup ran: over at once"
        );
        let unknown = JobObjects {
            created: None,
            ..job
        };
        assert!(
            !is_abandoned(&unknown, u64::MAX, None, &none),
            "unknown age: not by default"
        );
        assert!(is_abandoned(
            &unknown,
            0,
            Some(Duration::from_secs(60)),
            &none
        ));
    }

    #[test]
    fn job_directories_without_objects_or_process_are_orphaned_within_the_runner_asked() {
        let wd = tempfile::tempdir().unwrap();
        for key in [
            "pogo-r1-1-0-aa",
            "pogo-r1-2-0-bb",
            "pogo-r1-3-0-cc",
            "pogo-r2-4-0-dd",
        ] {
            std::fs::create_dir_all(wd.path().join("jobdata").join(key)).unwrap();
        }
        let with_objects: HashSet<String> = ["pogo-r1-2-0-bb".to_string()].into();
        let live: HashSet<String> = ["pogo-r1-3-0-cc".to_string()].into();
        let orphaned =
            |runner| orphaned_job_dirs(job_dir_keys(wd.path(), runner), &with_objects, &live);
        assert_eq!(orphaned(None), ["pogo-r1-1-0-aa", "pogo-r2-4-0-dd"]);
        assert_eq!(orphaned(Some("r2")), ["pogo-r2-4-0-dd"]);
    }

    #[test]
    fn job_keys_are_read_from_a_process_environment() {
        let env = b"PATH=/bin\0POGO_JOB_KEY=pogo-r-1-0\0HOME=/root\0";
        assert_eq!(job_keys_in_environ(env, "POGO_JOB_KEY="), ["pogo-r-1-0"]);
        assert!(job_keys_in_environ(b"A=1\0", "POGO_JOB_KEY=").is_empty());
    }

    #[test]
    fn podmans_long_lived_helpers_do_not_keep_a_job_at_work() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::write(
            proc.path().join("environ"),
            b"A=1\0POGO_JOB_KEY=pogo-r-1-0\0",
        )
        .unwrap();
        for (comm, works) in [
            ("pogo\n", true),
            ("podman\n", true),
            ("conmon\n", false),
            ("pasta.avx2\n", false),
            ("catatonit\n", false),
        ] {
            std::fs::write(proc.path().join("comm"), comm).unwrap();
            assert_eq!(
                !job_keys_of_process(proc.path()).is_empty(),
                works,
                "{comm}"
            );
        }
    }

    #[test]
    fn a_builds_volume_goes_after_its_days_unused_or_older_than() {
        let day = 86_400;
        assert!(!builds_volume_expired(1_000, 7, 1_000 + 7 * day - 1, None));
        assert!(builds_volume_expired(1_000, 7, 1_000 + 7 * day, None));
        assert!(builds_volume_expired(1_000, 7, 1_000, Some(Duration::ZERO)));
        assert!(!builds_volume_expired(
            1_000,
            0,
            1_010,
            Some(Duration::from_secs(60))
        ));
        let w = tempfile::tempdir().unwrap();
        touch_builds_volume(w.path(), "pogo-builds-r-g-p-0", 3).unwrap();
        let stamp = builds_volume_stamp(w.path(), "pogo-builds-r-g-p-0");
        assert_eq!(std::fs::read_to_string(stamp).unwrap(), "3");
        assert_eq!(
            builds_volume_stamp(Path::new("/w"), "../../etc"),
            PathBuf::from("/w/builds-volumes/etc")
        );
        // two slots of a project with a long path: a stamp each
        let slot = |s: &str| {
            let name = super::super::env::persistent_builds_volume(
                "t3_runner",
                "platform-team/service-alpha",
                s,
            );
            builds_volume_stamp(Path::new("/w"), &name)
        };
        assert_ne!(slot("0"), slot("1"));
    }

    #[test]
    fn the_auto_gc_stamp_is_per_runner_and_safe() {
        let p = stamp_path(Path::new("/w"), "../../etc");
        assert_eq!(p, PathBuf::from("/w/gc-etc.stamp"));
    }
}
