//! Watching every process's command line for secrets.

use super::*;

/// Watches every readable `/proc/*/cmdline` for `markers` until [`CmdlineWatch::stop`]; each
/// hit names the process (pid and program).
pub struct CmdlineWatch {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(usize, Vec<String>)>,
}

impl CmdlineWatch {
    /// Every process: the host's and those in containers (pogo starts some there too).
    pub fn start(markers: Vec<String>) -> Self {
        Self::watch(markers, false)
    }

    /// The host's processes only: for values a container is given to use as it likes (a
    /// service's variables), where the service's own processes are its business.
    pub fn on_host(markers: Vec<String>) -> Self {
        Self::watch(markers, true)
    }

    fn watch(markers: Vec<String>, host_only: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let (mut scans, mut seen) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                if let Ok(dir) = std::fs::read_dir("/proc") {
                    for e in dir.flatten() {
                        let proc_dir = e.path();
                        let contained_before = host_only && in_a_container(&proc_dir);
                        if let Ok(raw) = std::fs::read(proc_dir.join("cmdline")) {
                            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
                            if markers.iter().any(|m| cmd.contains(m.as_str()))
                                && !contained_before
                                && !(host_only && in_a_container(&proc_dir))
                            {
                                let exe = std::fs::read_link(proc_dir.join("exe"))
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_else(|e| format!("exe unreadable: {e}"));
                                let hit = format!("{} ({exe}): {cmd}", proc_dir.display());
                                if !seen.contains(&hit) {
                                    seen.push(hit);
                                }
                            }
                        }
                    }
                }
                scans += 1;
                thread::sleep(Duration::from_millis(10));
            }
            (scans, seen)
        });
        CmdlineWatch { stop, handle }
    }

    /// How many scans ran, and the command lines that held a marker.
    pub fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Whether the process at `/proc/PID` runs inside a container: its root directory is not the
/// host's. False when that cannot be told (the process is gone).
fn in_a_container(proc_dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(host), Ok(its)) = (
        std::fs::metadata("/"),
        std::fs::metadata(proc_dir.join("root/")),
    ) else {
        return false;
    };
    (host.dev(), host.ino()) != (its.dev(), its.ino())
}
