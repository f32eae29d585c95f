//! The dashboard end to end: the real `pogo tui` in tmux (send-keys / capture-pane) while a real
//! job runs in real podman through the gitlab-runner imitation; and the executor side it reads
//! (state record, log copy with masked variables redacted).

use crate::common::*;
use pogo::driver::Variable;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for something to show on the screen: generous, as a wait ends as soon as it
/// shows (the suite runs other podman jobs on the same cores meanwhile).
const LONG: Duration = Duration::from_secs(30);

/// tmux is needed to drive a terminal program; in CI it must be there (setup-test-env.sh).
fn tmux_ready() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_outside_ci("tmux is not installed (set up with `make test`)");
    }
    ok
}

/// A tmux server of our own (its own socket), running one program in a fixed-size window.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(argv: &[String], env: &[(&str, String)], w: u16, h: u16) -> Self {
        let socket = format!("pogo-e2e-{}", unique_id());
        let mut cmd = vec!["env".to_string()];
        cmd.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.extend(argv.iter().cloned());
        // Keep the window after the program exits, so its last screen can be read.
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &w.to_string(), "-y", &h.to_string()])
            .args(["-s", "e2e"])
            .arg(shell_words::join(&cmd))
            .status()
            .expect("tmux new-session");
        assert!(status.success(), "tmux new-session failed");
        let t = Tmux { socket };
        t.cmd(&["set-option", "-t", "e2e", "remain-on-exit", "on"]);
        t
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "e2e"])
    }

    fn keys(&self, keys: &str) {
        self.cmd(&["send-keys", "-t", "e2e", "-l", keys]);
    }

    /// A named key: `Enter`, `Escape`, `Tab`...
    fn key(&self, name: &str) {
        self.cmd(&["send-keys", "-t", "e2e", name]);
    }

    /// Wait until `pred` holds for the screen; the screen, or a panic showing the last one.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pane_dead(&self) -> bool {
        self.cmd(&["display-message", "-p", "-t", "e2e", "#{pane_dead}"])
            .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn pogo_tui(config: &Path) -> Vec<String> {
    vec![
        env!("CARGO_BIN_EXE_pogo").to_string(),
        "--config".to_string(),
        config.display().to_string(),
        "tui".to_string(),
        "--runner-config".to_string(),
        config
            .with_file_name("runner-config.toml")
            .display()
            .to_string(),
    ]
}

fn tui_env() -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("TERM", "xterm-256color".to_string()),
        ("NO_COLOR", "1".to_string()),
    ];
    for k in ["PATH", "HOME", "XDG_RUNTIME_DIR", "CONTAINERS_CONF"] {
        if let Ok(val) = std::env::var(k) {
            v.push((k, val));
        }
    }
    v
}

#[test]
fn the_dashboard_shows_a_running_job_with_its_stage_and_live_log_and_reloads_the_config() {
    require_podman!();
    if !tmux_ready() {
        return;
    }
    // The job waits for the test's `go` file: it runs until the test has seen it running.
    let sync = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig::mounting(sync.path(), "/mnt/sync"));
    let t = Tmux::start(&pogo_tui(&env.config_path), &tui_env(), 120, 36);
    t.wait_for("the Jobs screen", LONG, |s| {
        s.contains("1 Jobs") && s.contains("2 Config")
    });

    let job = env.job(
        &[],
        &[
            "echo tui-e2e-start",
            "sleep 10",
            "i=0; while [ ! -e /mnt/sync/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done",
            "echo tui-e2e-end",
        ],
    );
    let id = job.id;
    let row_of_our_job = |s: &str, what: &str| {
        s.lines()
            .any(|l| l.contains(&id.to_string()) && l.contains(what))
    };
    let go = sync.path().join("go");
    let result = std::thread::scope(|scope| {
        let runner = scope.spawn(|| env.run(&job));
        // let the job end even when a wait below fails, so the test fails at once
        let _go = Touch(go.clone());

        // The job appears with its stage while it runs.
        t.wait_for("the job in build_script", Duration::from_secs(90), |s| {
            row_of_our_job(s, "build_script")
        });
        // `/` in the job list filters it as typed (other tests' jobs are listed too); the
        // list's title says so, and the one job left is selected: the log pane shows its output.
        t.keys(&format!("/{id}"));
        t.wait_for("the filtered job list", LONG, |s| {
            s.contains(&format!("filter: {id} (1 of "))
        });
        t.keys("\r");
        let s = t.wait_for("the job's output in the log pane", LONG, |s| {
            s.contains(&format!("log · job {id} ")) && s.contains("tui-e2e-start")
        });
        assert!(s.contains("tui-e2e-start"), "{s}");
        // the state comes from podman's container list, which may lag the log by one refresh
        // (5 s where `podman events` reports nothing, as on a fresh Debian 12)
        t.wait_for("the job's row running", LONG, |s| {
            row_of_our_job(s, "running")
        });
        std::fs::write(&go, "").unwrap();
        runner.join().unwrap()
    });
    assert_success(&result);

    // Finished: the row keeps the result, the log has the end.
    let s = t.wait_for("the finished job's result", LONG, |s| {
        row_of_our_job(s, "success") && s.contains("tui-e2e-end")
    });
    assert!(s.contains(&format!("log · job {id} ")), "{s}");

    // The log focused, `t` shows when each line was written (from the log copy's .times): the
    // script slept 10 s between its two lines.
    t.keys("lt");
    let s = t.wait_for("timestamps in the log", LONG, |s| {
        stamp_of(s, "tui-e2e-start").is_some() && stamp_of(s, "tui-e2e-end").is_some()
    });
    let (start, end) = (
        stamp_of(&s, "tui-e2e-start").unwrap(),
        stamp_of(&s, "tui-e2e-end").unwrap(),
    );
    let slept = (end + 86_400 - start) % 86_400;
    assert!((9..=3600).contains(&slept), "{start} → {end}:\n{s}");
    // Esc in the log goes back to the list (it does not quit); Esc again clears the filter.
    t.keys("\x1b");
    t.wait_for("the list focused again", LONG, |s| {
        s.contains("→ log  / filter")
    });
    t.keys("\x1b");
    let s = t.wait_for("the filter cleared", LONG, |s| !s.contains("filter:"));
    assert!(!t.pane_dead(), "Esc quit the dashboard:\n{s}");

    // An external edit of the config shows up on the Config screen.
    t.keys("2");
    t.wait_for("the Config screen", LONG, |s| {
        s.contains("default image") && s.contains("Preview")
    });
    let good = std::fs::read_to_string(&env.config_path).unwrap();
    let edited = good.replace(IMG_BASH, "localhost/pogo-test/e2e-reloaded:1");
    assert_ne!(good, edited);
    // (how fast: bench/tui.sh measures it; a timed assertion here would flake under load)
    std::fs::write(&env.config_path, &edited).unwrap();
    t.wait_for("the edited default image", LONG, |s| {
        s.contains("e2e-reloaded:1")
    });

    // An invalid edit: a banner with line and column and what it means for jobs, the last
    // good config still shown.
    std::fs::write(&env.config_path, format!("{edited}mountz: []\n")).unwrap();
    let s = t.wait_for("the invalid-config banner", LONG, |s| {
        s.contains("invalid config:")
    });
    assert!(s.contains("jobs that start now fail on it"), "{s}");
    let lines = edited.lines().count() + 1;
    assert!(
        s.contains(&format!(":{lines}:1: unknown key 'mountz'")),
        "line and column of the bad key expected:\n{s}"
    );
    assert!(s.contains("e2e-reloaded:1"), "last good config kept:\n{s}");

    // Fixed again (with a comment of the user's): the banner goes away.
    let commented = format!("# e2e: the user's comment\n{good}");
    std::fs::write(&env.config_path, &commented).unwrap();
    let s = t.wait_for("the banner to go", LONG, |s| !s.contains("invalid config:"));
    assert!(s.contains(IMG_BASH), "{s}");

    // A mount added in the form is saved into the file, the comment kept, and shown.
    let host = env.config_path.parent().unwrap().display().to_string();
    t.keys("a");
    t.wait_for("the mount form", LONG, |s| s.contains("add a mount"));
    t.keys(&host);
    t.key("Enter");
    t.keys("/e2e-data");
    t.key("Enter");
    t.key("Enter");
    t.keys("e2e");
    t.key("C-s");
    // The status line names the file once written (the form's own footer also says "saved
    // with its comments kept", so wait for the file name, not the word).
    let saved_status = format!("saved {}", env.config_path.display());
    let s = t.wait_for("the saved mount", LONG, |s| {
        s.contains(&saved_status) && s.contains("/e2e-data")
    });
    assert!(!s.contains("add a mount"), "the form closes:\n{s}");
    let saved = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(saved.starts_with(&commented), "only added to:\n{saved}");
    assert!(
        saved.contains(&format!("volume: {host}:/e2e-data")) && saved.contains("tags: [e2e]"),
        "{saved}"
    );
    // our own write is not reported as a change, nor reloaded in a loop
    std::thread::sleep(Duration::from_millis(600));
    let s = t.screen();
    assert!(!s.contains("invalid config:"), "{s}");
    std::fs::write(&env.config_path, &good).unwrap();

    // q quits and gives the terminal back.
    t.keys("q");
    let start = Instant::now();
    while !t.pane_dead() {
        assert!(start.elapsed() < LONG, "pogo tui did not quit");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.assert_no_leftovers();
}

/// Creates its file when dropped (also while a failed assertion unwinds).
struct Touch(PathBuf);

impl Drop for Touch {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// The `HH:MM:SS` before the log line `text` (a line showing just it), in seconds of the day.
fn stamp_of(screen: &str, text: &str) -> Option<u32> {
    screen.lines().find_map(|line| {
        let at = line.find(text)?;
        let stamp = line[..at].trim_end().rsplit([' ', '┃', '│']).next()?;
        let parts: Vec<u32> = stamp
            .split(':')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        match parts[..] {
            [h, m, s] if stamp.len() == 8 => Some(h * 3600 + m * 60 + s),
            _ => None,
        }
    })
}

fn state_dir(env: &TestEnv) -> PathBuf {
    env.working_dir.join("jobs")
}

fn record(env: &TestEnv, key: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(state_dir(env).join(format!("{key}.json")))
        .expect("the job's state record");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_log_copy_redacts_masked_variables_and_the_record_says_success() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let secret = "s3cr3t-Value-4711";
    let mut job = env.job(
        &["e2e", "small"],
        &["echo \"the secret is $MY_SECRET.\"", "echo visible-line"],
    );
    job.variables.push(Variable::masked("MY_SECRET", secret));
    let r = env.run(&job);
    assert_success(&r);
    let key = job_key(&r).expect("job key");

    use std::os::unix::fs::PermissionsExt;
    let log_path = state_dir(&env).join(format!("{key}.log"));
    let log = std::fs::read_to_string(&log_path).expect("the job's log copy");
    // Its timestamps: rising offsets into the log copy, each at the start of a write.
    let times_path = state_dir(&env).join(format!("{key}.times"));
    let times = std::fs::read_to_string(&times_path).expect("the log copy's timestamps");
    let mut last = None;
    for l in times.lines() {
        let (offset, millis) = l.split_once(' ').expect("OFFSET MILLIS");
        let offset: usize = offset.parse().unwrap();
        let millis: u64 = millis.parse().unwrap();
        assert!(offset < log.len(), "{l}");
        assert!(last < Some(offset), "{times}");
        assert!(millis > 1_700_000_000_000, "{l}");
        last = Some(offset);
    }
    assert_eq!(
        times.lines().next().map(|l| l.starts_with("0 ")),
        Some(true),
        "{times}"
    );
    let mode = std::fs::metadata(&times_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(log.contains("visible-line"), "{log}");
    assert!(log.contains("the secret is [MASKED]."), "{log}");
    assert!(!log.contains(secret), "the masked value leaked:\n{log}");
    let mode = std::fs::metadata(&log_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let rec = record(&env, &key);
    assert_eq!(rec["result"], "success", "{rec}");
    assert_eq!(rec["id"], job.id.to_string());
    assert_eq!(rec["prepared"], true);
    assert!(rec["ended"].as_u64().is_some(), "{rec}");
    // the tags GitLab gave the job, for the dashboard's preview (J)
    assert_eq!(rec["tags"], serde_json::json!(["e2e", "small"]), "{rec}");
    env.assert_no_leftovers();
}

#[test]
fn a_failed_script_is_recorded_as_failed_with_its_exit_code() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let job = env.job(&[], &["echo before-failing", "exit 3"]);
    let r = env.run(&job);
    assert_build_failure(&r, 3);
    let key = job_key(&r).expect("job key");
    let rec = record(&env, &key);
    assert_eq!(rec["result"], "failed", "{rec}");
    assert_eq!(rec["exit_code"], 3, "{rec}");
    assert_eq!(rec["failure"], "build_script", "{rec}");
    env.assert_no_leftovers();
}

#[test]
fn a_job_printing_a_lot_streams_through_pogo_without_losing_output() {
    require_podman!();
    // a log copy big enough for all of it (the default keeps 4 MiB: see tests/faults.rs)
    let env = TestEnv::new(&PogoConfig::default().with_extra_yaml("log_copy_limit: 32768\n"));
    // 20 MB through `podman exec` → pogo → the runner and the log copy (pipefail is on in
    // gitlab-runner's scripts: no producer that dies of SIGPIPE here).
    let job = env.job(
        &[],
        &["head -c 20000000 /dev/zero | tr '\\0' x | fold -w 100; echo big-output-done"],
    );
    let start = Instant::now();
    let r = env.run(&job);
    eprintln!("20 MB job took {:?}", start.elapsed());
    assert_success(&r);
    assert!(r.log.contains("big-output-done"));
    let key = job_key(&r).expect("job key");
    let len = std::fs::metadata(state_dir(&env).join(format!("{key}.log")))
        .unwrap()
        .len();
    assert!(len > 20_000_000, "log copy has {len} bytes");
    env.assert_no_leftovers();
}

/// `e` on a running job opens a shell in its container the way GitLab's web terminal does:
/// in `$CI_PROJECT_DIR`, with the job's `CI_*` variables, the masked ones (the job token)
/// masked; `exit` returns to the dashboard.
/// A test env whose config mounts a temp dir (returned) at /mnt/sync, and `pogo tui` on it in
/// tmux, `width`×36, showing its Jobs screen; none (skipped) without podman or tmux.
fn dashboard_with_sync(width: u16) -> Option<(tempfile::TempDir, TestEnv, Tmux)> {
    if !podman_ready() || !tmux_ready() {
        return None;
    }
    let sync = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig::mounting(sync.path(), "/mnt/sync"));
    let t = Tmux::start(&pogo_tui(&env.config_path), &tui_env(), width, 36);
    t.wait_for("the Jobs screen", LONG, |s| s.contains("1 Jobs"));
    Some((sync, env, t))
}

/// The script line that waits (up to 2 min) for the test's `go` file at /mnt/sync.
const WAIT_FOR_GO: &str =
    "i=0; while [ ! -e /mnt/sync/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done";

/// Runs `job` of `env` (whose config mounts `sync` at /mnt/sync; the job waits with
/// [`WAIT_FOR_GO`]) while `during` looks at the dashboard in `t`, once the job shows in
/// build_script with its container running and the list is filtered to it. The job ends
/// when `during` returns or panics.
fn while_job_runs(
    env: &TestEnv,
    sync: &Path,
    t: &Tmux,
    job: &pogo::driver::Job,
    during: impl FnOnce(u64),
) -> pogo::driver::JobResult {
    let id = job.id;
    let go = sync.join("go");
    std::thread::scope(|scope| {
        let runner = scope.spawn(|| env.run(job));
        let _go = Touch(go.clone());
        // running: podman has listed its container too (the stage comes from pogo's record,
        // which can be ahead of the container list under load; `e` needs the container)
        t.wait_for(
            "the job running in build_script",
            Duration::from_secs(90),
            |s| {
                s.lines().any(|l| {
                    l.contains(&id.to_string())
                        && l.contains("build_script")
                        && l.contains("running")
                })
            },
        );
        t.keys(&format!("/{id}"));
        t.keys("\r");
        during(id);
        std::fs::write(&go, "").unwrap();
        runner.join().unwrap()
    })
}

#[test]
fn e_opens_a_shell_in_the_project_dir_with_the_jobs_variables_masked() {
    let Some((sync, env, t)) = dashboard_with_sync(120) else {
        return;
    };
    let job = env.job(&[], &["mkdir -p \"$CI_PROJECT_DIR\"", WAIT_FOR_GO]);
    let result = while_job_runs(&env, sync.path(), &t, &job, |id| {
        t.keys("e");
        t.wait_for("the shell", LONG, |s| {
            s.contains("`exit` returns to the dashboard")
        });
        t.keys("echo \"at=$(pwd) name=$CI_JOB_NAME token=$CI_JOB_TOKEN\"\r");
        let s = t.wait_for("the shell's answer", LONG, |s| {
            s.contains("name=test-job token=")
        });
        assert!(s.contains("name=test-job token=[MASKED]"), "{s}");
        assert!(!s.contains(&job.token), "the job token shown:\n{s}");
        assert!(s.contains(&format!("at=/builds/pogo-test/p{id} ")), "{s}");
        t.keys("exit\r");
        t.wait_for("the dashboard again", LONG, |s| s.contains("1 Jobs"));
    });
    assert_success(&result);
}

/// The CPU% of job `id`'s row (the first `N.NN%` on it), if shown.
fn cpu_of(screen: &str, id: u64) -> Option<f64> {
    screen
        .lines()
        .filter(|l| l.contains(&id.to_string()))
        .find_map(|row| {
            row.split_whitespace()
                .find_map(|w| w.strip_suffix('%').and_then(|n| n.parse::<f64>().ok()))
        })
}

/// Every process: pid, parent pid and command line (from /proc: a fresh Debian has no pgrep).
fn processes() -> Vec<(u32, u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `PID (COMM) STATE PPID ...`: the command may hold spaces and parentheses
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

/// pids of the `podman stats` processes the dashboard started (its children).
fn stats_children(tui_pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, ppid, cmd)| *ppid == tui_pid && cmd.contains("stats"))
        .map(|(pid, _, _)| pid)
        .collect()
}

#[test]
fn the_cpu_column_shows_current_use_without_starting_podman_not_the_average_since_start() {
    let Some((sync, env, t)) = dashboard_with_sync(140) else {
        return;
    };
    let tui = format!("{} tui", env.config_path.display());
    let tui_pid = processes()
        .into_iter()
        .filter(|(_, _, cmd)| cmd.starts_with(env!("CARGO_BIN_EXE_pogo")) && cmd.contains(&tui))
        .map(|(pid, _, _)| pid)
        .max()
        .expect("pogo tui's pid");
    // 16 s of a spinning core, then idle until the test says go
    let job = env.job(
        &[],
        &[
            "end=$((SECONDS+16)); while [ $SECONDS -lt $end ]; do :; done; touch /mnt/sync/spun",
            WAIT_FOR_GO,
        ],
    );
    let spun = sync.path().join("spun");
    let result = while_job_runs(&env, sync.path(), &t, &job, |id| {
        let spinning = t.wait_for("the spinning job's CPU", LONG, |s| {
            cpu_of(s, id).is_some_and(|c| c >= 40.0) || spun.exists()
        });
        let Some(busy) = cpu_of(&spinning, id) else {
            // a host with no per-container numbers at all (rootless cgroup v1; some nested
            // set-ups): the column shows "-", which is only right when podman has none either
            assert!(
                !job_cgroup_readable(&env, id) && !podman_stats_has_numbers(&env, id),
                "no CPU shown, yet this host has numbers for the job:\n{spinning}"
            );
            eprintln!("note: this host has no per-container CPU numbers (podman stats neither)");
            return;
        };
        assert!(busy >= 40.0, "a spinning job at {busy} %:\n{spinning}");
        // The numbers come from the containers' cgroups: no `podman stats` (it costs podman
        // ≈ 110 ms of CPU a sample with 20 containers), streaming or one per sample — where
        // this host lets pogo read the job container's cgroup (else the stream is the fallback).
        if job_cgroup_readable(&env, id) {
            for _ in 0..20 {
                let stats = stats_children(tui_pid);
                assert!(stats.is_empty(), "podman stats runs: {stats:?}");
                std::thread::sleep(Duration::from_millis(250));
            }
        } else {
            eprintln!("note: the job container's cgroup is not readable here: podman stats gives the numbers");
        }
        // Spun down: within seconds the row says so (the average since the start stays near
        // half a core for minutes).
        let start = Instant::now();
        while !spun.exists() {
            assert!(start.elapsed() < LONG, "the job never finished spinning");
            std::thread::sleep(Duration::from_millis(100));
        }
        t.wait_for("the idle job's CPU", Duration::from_secs(12), |s| {
            cpu_of(s, id).is_some_and(|c| c < 5.0)
        });
    });
    assert_success(&result);
}

/// Whether pogo can read job `id`'s container's CPU and memory from its cgroup here.
fn job_cgroup_readable(env: &TestEnv, id: u64) -> bool {
    use pogo::tui::cgroup;
    let Some(c) = job_container(env, id) else {
        return false;
    };
    c.pid
        .and_then(|p| cgroup::files_of_pid(&cgroup::mounts(), p, &c.id))
        .and_then(|f| cgroup::Open::new(&f))
        .and_then(|mut o| o.read())
        .is_some()
}

/// Whether `podman stats` gives job `id`'s container a CPU figure here.
fn podman_stats_has_numbers(env: &TestEnv, id: u64) -> bool {
    let Some(c) = job_container(env, id) else {
        return false;
    };
    let out = env
        .podman
        .output(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", &c.name]);
    out.status.success()
        && String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .is_ok()
}

/// Job `id`'s running job container as `podman ps` lists it.
struct JobContainer {
    id: String,
    pid: Option<u32>,
    name: String,
}

fn job_container(env: &TestEnv, id: u64) -> Option<JobContainer> {
    let out = env.podman.output(&[
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Pid}} {{.Names}}",
    ]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    listed.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let (cid, pid, name) = (w.next()?, w.next()?, w.next()?);
        (name.contains(&format!("-{id}-")) && name.ends_with("-build")).then(|| JobContainer {
            id: cid.to_string(),
            pid: pid.parse().ok(),
            name: name.to_string(),
        })
    })
}

#[test]
fn a_job_run_with_another_pogo_config_shows_its_log_through_the_runners_config() {
    // gitlab-runner runs `pogo --config B`; the user runs `pogo tui` with their own config A:
    // the dashboard showed "waiting for output…" for ever. It finds B through config.toml.
    require_podman!();
    if !tmux_ready() {
        return;
    }
    let sync = tempfile::tempdir().unwrap();
    let env = TestEnv::new(&PogoConfig::mounting(sync.path(), "/mnt/sync"));
    let mine = tempfile::tempdir().unwrap();
    let own_config = mine.path().join("own.yaml");
    std::fs::write(
        &own_config,
        format!("working_dir: {}\n", mine.path().join("work").display()),
    )
    .unwrap();
    let runners = mine.path().join("config.toml");
    std::fs::write(
        &runners,
        format!(
            "concurrent = 1\n\n[[runners]]\n  name = \"other\"\n  url = \"https://gitlab.example.com\"\n  token = \"glrt-e2e\"\n  executor = \"custom\"\n  [runners.custom]\n    run_exec = {pogo:?}\n    run_args = [\"--config\", {config:?}, \"run\"]\n",
            pogo = env!("CARGO_BIN_EXE_pogo"),
            config = env.config_path.display().to_string(),
        ),
    )
    .unwrap();
    let argv = vec![
        env!("CARGO_BIN_EXE_pogo").to_string(),
        "--config".to_string(),
        own_config.display().to_string(),
        "tui".to_string(),
        "--runner-config".to_string(),
        runners.display().to_string(),
    ];
    let t = Tmux::start(&argv, &tui_env(), 120, 36);
    t.wait_for("the Jobs screen", LONG, |s| s.contains("1 Jobs"));
    let job = env.job(&[], &["echo other-config-output", WAIT_FOR_GO]);
    let result = while_job_runs(&env, sync.path(), &t, &job, |id| {
        t.wait_for("the job's log copy from the other config", LONG, |s| {
            s.contains(&format!("log · job {id} ")) && s.contains("other-config-output")
        });
    });
    assert_success(&result);
}

#[test]
fn x_releases_a_job_kept_by_keep_failed_and_its_containers_go() {
    require_podman!();
    if !tmux_ready() {
        return;
    }
    let env = TestEnv::new(&PogoConfig::default().with_extra_yaml("keep_failed: 30\n"));
    let t = Tmux::start(&pogo_tui(&env.config_path), &tui_env(), 120, 36);
    t.wait_for("the Jobs screen", LONG, |s| s.contains("1 Jobs"));
    let job = env.job(&[], &["exit 5"]);
    let r = env.run(&job);
    assert_build_failure(&r, 5);
    let key = job_key(&r).expect("job key");
    let label = format!("{LABEL_JOB_KEY}={key}");
    assert!(!env.podman.labelled(&label).is_empty(), "kept");
    let id = job.id;
    t.keys(&format!("/{id}"));
    t.keys("\r");
    t.wait_for("the kept job", LONG, |s| {
        s.lines()
            .any(|l| l.contains(&id.to_string()) && l.contains("kept to"))
    });
    t.keys("x");
    t.wait_for("the question", LONG, |s| {
        s.contains(&format!("Remove job {id}'s kept containers now?"))
    });
    t.keys("y");
    t.wait_for("pogo gc's answer", LONG, |s| s.contains("released"));
    assert_eq!(env.podman.labelled(&label), Vec::<String>::new());
}

#[test]
fn a_service_row_shows_the_services_own_log() {
    let Some((sync, env, t)) = dashboard_with_sync(120) else {
        return;
    };
    let mut job = env.job(&[], &[WAIT_FOR_GO]);
    let mut svc = pogo::driver::Service::new(IMG_BUSYBOX);
    svc.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo service-says-hello; echo service-error >&2; sleep 600".into(),
    ]);
    job.services = vec![svc];
    let result = while_job_runs(&env, sync.path(), &t, &job, |id| {
        // the job's row, then its service's
        t.keys("j");
        let s = t.wait_for("the service's log", LONG, |s| {
            s.contains(&format!("service {IMG_BUSYBOX} of job {id}"))
                && s.contains("service-says-hello")
                && s.contains("service-error")
        });
        assert!(s.contains("podman logs"), "{s}");
    });
    assert_success(&result);
}
