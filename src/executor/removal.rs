//! The removal of a finished job's podman objects, handed by `pogo cleanup` to a detached
//! `pogo remove-job` so that cleanup returns in milliseconds. gitlab-runner runs cleanup_exec
//! before it reports the job's result, so every millisecond of `podman rm` was on the job's
//! time in GitLab and held the runner's concurrency slot.
//!
//! The order, `<working_dir>/removals/<key>` (0600), is also the removal's lock: cleanup
//! takes an exclusive `flock` on it, writes what to remove, and hands the open file to the
//! remover, which holds the lock until it is done. Whoever must not overlap a removal of the
//! same job waits for that lock: the same job's next prepare (gitlab-runner retries a failed
//! prepare after its cleanup, under the same names), `pogo doctor --run`'s leftover check. The
//! remover keeps the job's key in its environment, so `pogo gc` counts the job as at work and
//! leaves it alone. A removal that succeeds deletes its order; one that fails (or is killed)
//! leaves its objects to `pogo gc`, which removes them as those of a job whose cleanup ran.

use super::cleanup::{remove_job, remove_sockets, Scope};
use super::env::Names;
use crate::podman::Podman;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable that tells `pogo remove-job` which descriptor holds the lock.
pub const LOCK_FD: &str = "POGO_REMOVAL_FD";

/// How long a prepare waits for the removal of its own job's earlier attempt.
pub const WAIT: Duration = Duration::from_secs(120);

/// What the remover removes: written by cleanup, read by `pogo remove-job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub key: String,
    pub podman: String,
    pub podman_args: Vec<String>,
    pub pods: bool,
    pub volumes: bool,
    pub secrets: bool,
    /// Why an earlier removal of this order failed (kept for `pogo gc`).
    #[serde(default)]
    pub errors: Vec<String>,
}

impl Order {
    pub fn new(podman: &Podman, names: &Names, scope: Scope) -> Self {
        Order {
            key: names.key.clone(),
            podman: podman.bin.clone(),
            podman_args: podman.global_args.clone(),
            pods: scope.pods,
            volumes: scope.volumes,
            secrets: scope.secrets,
            errors: Vec::new(),
        }
    }

    fn scope(&self) -> Scope {
        Scope {
            pods: self.pods,
            volumes: self.volumes,
            secrets: self.secrets,
        }
    }
}

/// `<working_dir>/removals/<key>`.
pub fn order_path(working_dir: &Path, key: &str) -> PathBuf {
    working_dir.join("removals").join(key)
}

fn open_order(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::DirBuilderExt;
    if create {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    crate::fsutil::open_lock_file(path, create)
}

/// Take the lock on `path`, trying until `deadline`.
fn lock_until(
    file: std::fs::File,
    deadline: Instant,
) -> Result<Flock<std::fs::File>, std::fs::File> {
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, _)) if Instant::now() >= deadline => return Err(f),
            Err((f, _)) => {
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Wait until no removal of job `key` runs (at most `timeout`); whether none does now. Costs
/// one `stat` when there is no order for the key.
pub fn wait(working_dir: &Path, key: &str, timeout: Duration) -> bool {
    let path = order_path(working_dir, key);
    let Ok(file) = open_order(&path, false) else {
        return true;
    };
    lock_until(file, Instant::now() + timeout).is_ok()
}

/// Is a removal of job `key` running now?
pub fn running(working_dir: &Path, key: &str) -> bool {
    !wait(working_dir, key, Duration::ZERO)
}

/// Remove the job's agent sockets, hand the removal of its podman objects to a detached
/// `pogo remove-job` and return. Where that cannot be done, remove them here and now; the
/// errors of a removal done here.
pub async fn start(
    podman: &Podman,
    working_dir: &Path,
    names: &Names,
    scope: Scope,
) -> Vec<String> {
    // the agent sockets go now, like the job's other private files: the stage agents have
    // nothing more to do
    remove_sockets(working_dir, names);
    let order = Order::new(podman, names, scope);
    match detach(working_dir, &order) {
        Ok(()) => Vec::new(),
        Err(why) => {
            tracing::debug!("removing job {} in the foreground: {why}", names.key);
            remove_job(podman, &names.key, scope).await
        }
    }
}

fn detach(working_dir: &Path, order: &Order) -> Result<(), String> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let path = order_path(working_dir, &order.key);
    let file = open_order(&path, true).map_err(|e| format!("{}: {e}", path.display()))?;
    // an earlier removal of the same job still at work: the new one waits its turn
    let mut lock = lock_until(file, Instant::now() + WAIT)
        .map_err(|_| format!("{} stays locked", path.display()))?;
    let text = serde_json::to_vec(order).map_err(|e| e.to_string())?;
    lock.set_len(0).map_err(|e| e.to_string())?;
    lock.write_all(&text).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let fd = lock.as_raw_fd();
    // the remover inherits the locked file: the lock lasts until it exits
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("remove-job")
        .arg(&path)
        .env(LOCK_FD, fd.to_string())
        // the job's variables (CUSTOM_ENV_*) and description stay behind; the job key stays
        // (it keeps `pogo gc` away from this job until the removal is over)
        .env_remove("JOB_RESPONSE_FILE")
        // gitlab-runner removes the job's temporary directory (cleanup's working directory)
        // once cleanup returns, and podman fails without a working directory
        .current_dir("/")
        // the order comes on stdin too: it must not depend on the file, which an owner (or a
        // test) may delete with the working_dir as soon as the job is over
        .stdin(std::process::Stdio::piped())
        // gitlab-runner reads cleanup's output until every writer is gone
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CUSTOM_ENV_") {
            cmd.env_remove(k);
        }
    }
    let spawned = cmd.spawn();
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    match spawned {
        // not waited for: it outlives this process (init reaps it). The lock is not dropped
        // either: dropping it would unlock it for the remover too (`flock(LOCK_UN)` acts on
        // the open file both share); the descriptor closes when this process exits.
        Ok(mut child) => {
            std::mem::forget(lock);
            // a few hundred bytes: the pipe takes them without waiting for the reader
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(&text);
            }
            Ok(())
        }
        Err(e) => Err(format!("cannot start pogo remove-job: {e}")),
    }
}

/// `pogo remove-job ORDER`: remove what the order names, under the lock cleanup handed over.
/// Exit 0 when everything is gone.
pub fn remove_main(path: &Path) -> i32 {
    // the locked file cleanup handed over stays open until this process exits; podman's
    // processes do not get it (one that lingered would hold the lock)
    let held = std::env::var(LOCK_FD)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|fd| {
            nix::fcntl::fcntl(
                *fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .is_ok()
        });
    // started by hand (or the descriptor lost): take the lock here
    let _own_lock = match held {
        Some(_) => None,
        None => match open_order(path, false).map(|f| lock_until(f, Instant::now() + WAIT)) {
            Ok(Ok(lock)) => Some(lock),
            _ => {
                eprintln!("pogo remove-job: cannot lock {}", path.display());
                return 2;
            }
        },
    };
    // from cleanup on stdin, else (started by hand) from the file
    let mut given = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut given);
    let text = if given.is_empty() {
        std::fs::read(path).map_err(|e| e.to_string())
    } else {
        Ok(given)
    };
    let order: Order =
        match text.and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("pogo remove-job: {}: {e}", path.display());
                return 2;
            }
        };
    let podman = Podman::new(order.podman.clone(), order.podman_args.clone());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pogo remove-job: {e}");
            return 2;
        }
    };
    // (the agent sockets went with cleanup, before it handed this over)
    let errors = rt.block_on(remove_job(&podman, &order.key, order.scope()));
    if errors.is_empty() {
        // deleted while still locked: a waiter that opened it before sees the lock go
        let _ = std::fs::remove_file(path);
        0
    } else {
        let failed = Order { errors, ..order };
        if let Ok(text) = serde_json::to_vec(&failed) {
            let how = crate::fsutil::Replace {
                mode: Some(0o600),
                durable: false,
                keep_owner: false,
            };
            let _ = crate::fsutil::replace(path, &text, how);
        }
        1
    }
}

/// Orders of removals that failed (or were killed) and are no longer running, written at
/// least `min_age` ago (a cleanup creates its order a moment before it locks it): `pogo gc`
/// deletes them once the job's objects are gone.
pub fn stale_orders(working_dir: &Path, min_age: Duration) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(working_dir.join("removals")) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = entries
        .flatten()
        .filter(|e| old_enough(e, min_age))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|k| k.starts_with("pogo-") && !running(working_dir, k))
        .collect();
    keys.sort();
    keys
}

/// The removals that failed and are not running again: each job key with what went wrong, for
/// `pogo doctor` (`pogo gc` removes what they left and their orders).
pub fn failed(working_dir: &Path) -> Vec<(String, Vec<String>)> {
    stale_orders(working_dir, Duration::ZERO)
        .into_iter()
        .filter_map(|key| {
            let text = std::fs::read(order_path(working_dir, &key)).ok()?;
            let order: Order = serde_json::from_slice(&text).ok()?;
            (!order.errors.is_empty()).then_some((key, order.errors))
        })
        .collect()
}

fn old_enough(entry: &std::fs::DirEntry, min_age: Duration) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= min_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pogo-removal-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn without_an_order_nothing_is_waited_for() {
        let wd = tmp();
        assert!(wait(&wd, "pogo-r-1-0-abcd", Duration::from_secs(5)));
        assert!(!running(&wd, "pogo-r-1-0-abcd"));
    }

    #[test]
    fn a_held_order_is_waited_for_until_its_lock_goes() {
        let wd = tmp();
        let path = order_path(&wd, "pogo-r-2-0-abcd");
        let lock = lock_until(open_order(&path, true).unwrap(), Instant::now()).unwrap();
        assert!(running(&wd, "pogo-r-2-0-abcd"));
        assert!(!wait(&wd, "pogo-r-2-0-abcd", Duration::from_millis(100)));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(lock);
        });
        assert!(wait(&wd, "pogo-r-2-0-abcd", Duration::from_secs(10)));
        releaser.join().unwrap();
        assert_eq!(
            stale_orders(&wd, Duration::ZERO),
            vec!["pogo-r-2-0-abcd".to_string()]
        );
        assert!(stale_orders(&wd, Duration::from_secs(600)).is_empty());
    }

    #[test]
    fn a_failed_removal_is_listed_with_its_errors_until_it_runs_again() {
        let wd = tmp();
        let names = Names::from_key("pogo-r-4-0-abcd".to_string());
        let scope = Scope::ALL;
        let mut order = Order::new(&Podman::new("podman", Vec::new()), &names, scope);
        let path = order_path(&wd, &names.key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(&order).unwrap()).unwrap();
        assert!(
            failed(&wd).is_empty(),
            "an order without errors has not failed"
        );
        order.errors = vec!["`podman rm -f` failed (exit 125): storage is full".into()];
        std::fs::write(&path, serde_json::to_vec(&order).unwrap()).unwrap();
        assert_eq!(failed(&wd), vec![(names.key.clone(), order.errors.clone())]);
        let lock = lock_until(open_order(&path, false).unwrap(), Instant::now()).unwrap();
        assert!(failed(&wd).is_empty(), "running again");
        drop(lock);
    }

    #[test]
    fn an_order_round_trips_with_its_scope() {
        let names = Names::from_key("pogo-r-3-0-abcd".to_string());
        let scope = Scope {
            pods: true,
            volumes: false,
            secrets: true,
        };
        let o = Order::new(
            &Podman::new("podman", vec!["--root".into(), "/x".into()]),
            &names,
            scope,
        );
        let back: Order = serde_json::from_slice(&serde_json::to_vec(&o).unwrap()).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.scope(), scope);
    }
}
