//! The dashboard's runtime: one `tokio::select!` loop over the terminal's `EventStream`,
//! podman's event stream, the file watcher (config file and state dir) and timers. It turns
//! what happens into [`Msg`]s for `update`, runs the [`Effect`]s `update` asks for, and draws
//! only when the model says something changed.

use super::configform::SaveProblem;
use super::model::{Model, SERVICE_LOG};
use super::sources::StatEntry;
use super::update::{update, Effect, Msg};
use super::{cgroup, logview, runners, sources, TuiArgs};
use crate::config::{self, ConfigSource};
use crate::podman::Podman;
use crate::state::{self, StateDir};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::time::Instant;

/// File events are gathered this long before acting (editors write several times).
const DEBOUNCE: Duration = Duration::from_millis(100);
/// While jobs run: elapsed times tick this often.
const TICK: Duration = Duration::from_secs(1);
/// While jobs run, their CPU and memory are read every this many ticks (from their cgroups),
/// on a tick: one redraw for both.
const STATS_EVERY_TICKS: u64 = 2;
/// After the streaming `podman stats` (the fallback where cgroups cannot be read) ended
/// (rootless cgroup v1 has no numbers at all), try again after this.
const STATS_RETRY: Duration = Duration::from_secs(30);
/// While jobs run and podman's event stream is unavailable, the job list is refreshed this
/// often; with the stream, every [`POLL_WITH_EVENTS`] as a safety net (a `podman ps` costs
/// podman ≈ 160 ms of CPU).
const POLL: Duration = Duration::from_secs(5);
const POLL_WITH_EVENTS: Duration = Duration::from_secs(30);
const EVENTS_RETRY: Duration = Duration::from_secs(10);
/// While log timestamps are shown, the zone's offset is read again this often: a dashboard
/// left open across a daylight-saving change shows the new local time within this long.
const UTC_OFFSET_EVERY: Duration = Duration::from_secs(600);

/// What the background tasks and the watcher report to the loop.
enum Input {
    Msg(Msg),
    /// A file changed under a watched directory.
    Fs(Vec<PathBuf>),
    /// Something happened to a pogo container.
    PodmanEvent,
    /// `podman events` ended; why.
    EventsEnded(String),
    /// The streaming `podman stats` ended; why.
    StatsEnded(String),
}

/// What the loop knows besides the model.
struct Runtime {
    flag: Option<PathBuf>,
    env: HashMap<String, String>,
    podman: Podman,
    state: StateDir,
    /// The state dirs of the other pogo configs the runners use (`--config` in config.toml):
    /// `pogo tui` with its own config still finds those jobs' records and log copies. By
    /// config path, none where that config cannot be read.
    others: HashMap<PathBuf, Option<StateDir>>,
    runner_config: PathBuf,
    pogo_exe: Option<PathBuf>,
    tx: UnboundedSender<Input>,
    refresh_in_flight: bool,
    /// A refresh was asked for while one ran: it follows.
    refresh_again: bool,
    /// The cgroup mounts, and each running container's files and last sample.
    cgroups: cgroup::Mounts,
    samples: HashMap<String, (cgroup::Open, cgroup::Usage, Instant)>,
    /// `podman logs -f` of the selected service.
    service_log: Option<tokio::task::JoinHandle<()>>,
    /// The streaming `podman stats`, while jobs run whose cgroups cannot be read.
    stats: Option<tokio::task::JoinHandle<()>>,
    /// Not before then again, after it ended.
    stats_retry: Option<Instant>,
    /// `podman events` runs and has reported an event (not ended since).
    events_live: bool,
    /// Ticks so far.
    ticks: u64,
    /// File names of the config file (and of its symlink's target), for the watcher's events.
    config_names: Vec<std::ffi::OsString>,
}

/// Timers: each is "do this at" or nothing.
#[derive(Default)]
struct Due {
    jobs: Option<Instant>,
    log: Option<Instant>,
    config: Option<Instant>,
    tick: Option<Instant>,
    poll: Option<Instant>,
    events_restart: Option<Instant>,
    utc_offset: Option<Instant>,
}

impl Due {
    fn next(&self) -> Option<Instant> {
        [
            self.jobs,
            self.log,
            self.config,
            self.tick,
            self.poll,
            self.events_restart,
            self.utc_offset,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

fn soon(slot: &mut Option<Instant>, after: Duration) {
    let at = Instant::now() + after;
    if slot.is_none_or(|t| t > at) {
        *slot = Some(at);
    }
}

fn take_due(slot: &mut Option<Instant>, now: Instant) -> bool {
    if slot.is_some_and(|t| t <= now) {
        *slot = None;
        true
    } else {
        false
    }
}

/// The config file pogo reads with these flags and environment; without one, `~/.pogo.yaml`,
/// which the first save (or `E`) creates and pogo then reads.
fn config_path(flag: Option<&Path>, env: &HashMap<String, String>) -> Option<PathBuf> {
    match config::locate(flag, env) {
        ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Found(p) => Some(p),
        ConfigSource::Defaults => env
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(h).join(".pogo.yaml")),
    }
}

pub fn run(
    flag: Option<&Path>,
    args: &TuiArgs,
    env: HashMap<String, String>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(run_async(flag, args, env))
}

async fn run_async(
    flag: Option<&Path>,
    args: &TuiArgs,
    env: HashMap<String, String>,
) -> Result<(), String> {
    let color = env.get("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut model = Model::new(state::now(), color);
    // UTC when the zone cannot be found
    model.utc_offset = local_utc_offset().unwrap_or(0);
    model.config.path = config_path(flag, &env);
    model.config.home = env.get("HOME").map(PathBuf::from);
    model.config.overridden = crate::config::model::SCALAR_KEYS
        .iter()
        .filter(|k| env.contains_key(&config::env_var(k)))
        .map(|k| k.to_string())
        .collect();
    model.config.missing = config::locate(flag, &env) == ConfigSource::Defaults;
    model.config.keep_alive = Some(crate::podman::detect_keep_alive());
    let loaded = load_config(flag, &env);
    let (podman, working_dir) = match &loaded {
        Ok((c, _)) => (
            Podman::new(c.podman.clone(), c.podman_args.clone()),
            c.working_dir.clone(),
        ),
        Err(_) => (
            Podman::new("podman", Vec::new()),
            config::load(None, &HashMap::new())
                .map(|c| c.working_dir)
                .unwrap_or_else(|_| PathBuf::from(".")),
        ),
    };
    update(&mut model, Msg::Config(loaded.map(Box::new)));
    let state_dir = StateDir::new(state::state_dir(&working_dir, &env));
    let home = env.get("HOME").map(PathBuf::from);
    let (tx, mut rx) = unbounded_channel::<Input>();
    let mut rtm = Runtime {
        flag: flag.map(Path::to_path_buf),
        runner_config: runners::locate(args.runner_config.as_deref(), home.as_deref()),
        pogo_exe: std::env::current_exe().ok(),
        env,
        podman,
        state: state_dir,
        others: HashMap::new(),
        tx: tx.clone(),
        refresh_in_flight: false,
        refresh_again: false,
        cgroups: cgroup::mounts(),
        samples: HashMap::new(),
        service_log: None,
        stats: None,
        stats_retry: None,
        events_live: false,
        ticks: 0,
        config_names: config_files(&model)
            .iter()
            .filter_map(|f| f.file_name().map(ToOwned::to_owned))
            .collect(),
    };
    update(
        &mut model,
        Msg::Runners(runners::load(&rtm.runner_config, rtm.pogo_exe.as_deref())),
    );

    // The watcher lives as long as the loop; its callback runs on notify's thread.
    let _watcher = watch(&rtm, &model, tx.clone()).map_err(|e| {
        update(
            &mut model,
            Msg::Status(format!(
                "file watching unavailable ({e}); press r to reload"
            )),
        );
    });
    spawn_events(&rtm.podman, tx.clone());
    tokio::spawn(service_status(tx.clone()));
    model.default_runner_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();

    let mut terminal = init_terminal().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    // ratatui's hook (set by try_init) leaves raw mode and the alternate screen; mouse
    // reporting is ours to switch off.
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
        ratatui_hook(info);
    }));
    if let Ok(size) = terminal.size() {
        update(&mut model, Msg::Resize(size.width, size.height));
    }
    let mut events = EventStream::new();
    let mut due = Due {
        jobs: Some(Instant::now()),
        log: None,
        ..Due::default()
    };
    let result = loop {
        if model.dirty {
            if let Err(e) = terminal.draw(|f| super::views::draw(f, &model)) {
                break Err(format!("cannot draw: {e}"));
            }
            model.dirty = false;
        }
        if model.quit {
            break Ok(());
        }
        let sleep = match due.next() {
            Some(at) => tokio::time::sleep_until(at),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        let mut effects = Vec::new();
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) => effects = update(&mut model, Msg::Key(k)),
                Some(Ok(Event::Resize(w, h))) => { update(&mut model, Msg::Resize(w, h)); }
                Some(Ok(Event::Mouse(e))) => effects = update(&mut model, Msg::Mouse(e)),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(format!("cannot read the terminal: {e}")),
                None => break Ok(()),
            },
            input = rx.recv() => match input {
                Some(Input::Msg(m)) => {
                    if matches!(m, Msg::Jobs { .. }) {
                        rtm.refresh_in_flight = false;
                        // a refresh asked for while this one ran looks again
                        if std::mem::take(&mut rtm.refresh_again) {
                            soon(&mut due.jobs, DEBOUNCE);
                        }
                    }
                    effects = update(&mut model, m);
                }
                Some(Input::PodmanEvent) => {
                    // the stream is trusted once it has said something (a fresh machine's
                    // podman may run `podman events` and never report a thing)
                    rtm.events_live = true;
                    soon(&mut due.jobs, DEBOUNCE);
                }
                Some(Input::EventsEnded(why)) => {
                    tracing::debug!("podman events ended: {why}");
                    rtm.events_live = false;
                    soon(&mut due.events_restart, EVENTS_RETRY);
                    soon(&mut due.poll, POLL);
                }
                Some(Input::StatsEnded(why)) => {
                    tracing::debug!("podman stats ended: {why}");
                    rtm.stats = None;
                    rtm.stats_retry = Some(Instant::now() + STATS_RETRY);
                }
                Some(Input::Fs(paths)) => on_files(&rtm, &model, &mut due, &paths),
                None => {}
            },
            _ = sleep => {}
        }
        let now = Instant::now();
        if take_due(&mut due.jobs, now) {
            effects.push(Effect::RefreshJobs);
        }
        if take_due(&mut due.config, now) {
            effects.push(Effect::ReloadConfig);
        }
        if take_due(&mut due.log, now) {
            read_log(&rtm, &mut model, false);
        }
        if take_due(&mut due.events_restart, now) {
            spawn_events(&rtm.podman, tx.clone());
        }
        if take_due(&mut due.tick, now) {
            rtm.ticks += 1;
            if rtm.ticks % STATS_EVERY_TICKS == 0 {
                sample_stats(&mut rtm, &mut model, now);
            }
            update(&mut model, Msg::Tick(state::now()));
            // A running job's log is also read on the tick, in case a file event was missed.
            if model.selected_job().is_some_and(|j| j.running) {
                read_log(&rtm, &mut model, false);
            }
        }
        // numbers only while jobs run (an idle dashboard reads nothing and starts no podman)
        if !model.any_running() {
            if let Some(stream) = rtm.stats.take() {
                stream.abort();
            }
            rtm.samples.clear();
        }
        if take_due(&mut due.poll, now) {
            effects.push(Effect::RefreshJobs);
        }
        if take_due(&mut due.utc_offset, now) && model.show_times {
            effects.push(Effect::ReadUtcOffset);
        }
        if model.show_times && due.utc_offset.is_none() {
            due.utc_offset = Some(now + UTC_OFFSET_EVERY);
        }
        if model.any_running() {
            if due.tick.is_none() {
                due.tick = Some(now + TICK);
            }
            if due.poll.is_none() {
                due.poll = Some(
                    now + if rtm.events_live {
                        POLL_WITH_EVENTS
                    } else {
                        POLL
                    },
                );
            }
        }
        for e in effects {
            if let Some(leave) = run_effect(&mut rtm, &mut model, e).await {
                // A shell or an editor: give the terminal away, then take it back.
                drop(events);
                restore_terminal();
                leave.run();
                terminal = match init_terminal() {
                    Ok(t) => t,
                    Err(e) => return Err(format!("cannot set the terminal up again: {e}")),
                };
                let _ = terminal.clear();
                events = EventStream::new();
                model.dirty = true;
                soon(&mut due.jobs, Duration::ZERO);
                soon(&mut due.config, Duration::ZERO);
            }
        }
    };
    restore_terminal();
    if let Some(note) = quit_note(&model) {
        println!("{note}");
    }
    result
}

/// What to say on the way out: jobs that still run go on without the dashboard.
pub fn quit_note(model: &Model) -> Option<String> {
    let running = model.jobs.iter().filter(|j| j.running).count();
    (running > 0).then(|| {
        format!(
            "pogo tui: {running} job(s) still running; they go on without the dashboard (pogo tui shows them again)"
        )
    })
}

/// Raw mode, alternate screen, mouse reporting; ratatui's panic hook restores the terminal.
fn init_terminal() -> std::io::Result<ratatui::DefaultTerminal> {
    let t = ratatui::try_init()?;
    crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
    Ok(t)
}

/// The terminal as it was: also for the shell (`e`) and `$EDITOR`, which need the cursor that
/// drawing hid (ratatui's `restore` leaves it hidden until the `Terminal` is dropped).
fn restore_terminal() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::event::DisableMouseCapture,
        crossterm::cursor::Show
    );
    ratatui::restore();
}

fn load_config(
    flag: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<(crate::config::Config, String), String> {
    // A file pogo does not read (none found: built-in defaults) has no text.
    let text = match config::locate(flag, env) {
        ConfigSource::Defaults => None,
        _ => config_path(flag, env).and_then(|p| std::fs::read_to_string(p).ok()),
    }
    .unwrap_or_default();
    config::load(flag, env)
        .map(|c| (c, text))
        .map_err(|e| e.to_string())
}

/// Watch the config file's directory (editors replace files by rename) and the state dir.
fn watch(
    rtm: &Runtime,
    model: &Model,
    tx: UnboundedSender<Input>,
) -> Result<notify::RecommendedWatcher, String> {
    use notify::{RecursiveMode, Watcher};
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                let _ = tx.send(Input::Fs(ev.paths));
            }
        }
    })
    .map_err(|e| e.to_string())?;
    for file in config_files(model) {
        if let Some(dir) = file.parent() {
            w.watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&rtm.state.root);
    }
    w.watch(&rtm.state.root, RecursiveMode::NonRecursive)
        .map_err(|e| format!("{}: {e}", rtm.state.root.display()))?;
    Ok(w)
}

/// The config file, and the file it points to when it is a symlink (dotfiles in a repository):
/// an edit of either is an edit of the config.
fn config_files(model: &Model) -> Vec<PathBuf> {
    let Some(path) = model.config.path.clone() else {
        return Vec::new();
    };
    let target = std::fs::canonicalize(&path).ok().filter(|t| *t != path);
    std::iter::once(path).chain(target).collect()
}

fn on_files(rtm: &Runtime, model: &Model, due: &mut Due, paths: &[PathBuf]) {
    let selected = model.log.key.as_deref().map(|k| (k, rtm.state_of(k)));
    let selected_log = selected.as_ref().map(|(k, s)| s.log_path(k));
    let selected_times = selected.as_ref().map(|(k, s)| s.times_path(k));
    let roots = rtm.all_states();
    for p in paths {
        if roots.iter().any(|s| p.parent() == Some(s.root.as_path())) {
            if p.extension().is_some_and(|e| e == "json") {
                soon(&mut due.jobs, DEBOUNCE);
            } else if selected_log.as_deref() == Some(p.as_path())
                || selected_times.as_deref() == Some(p.as_path())
            {
                soon(&mut due.log, DEBOUNCE);
            }
        } else if p
            .file_name()
            .is_some_and(|n| rtm.config_names.iter().any(|c| c == n))
        {
            soon(&mut due.config, DEBOUNCE);
        }
    }
}

/// Read what was appended to the selected job's log (or all of it, `from_start`), and to its
/// `.times` file.
fn read_log(rtm: &Runtime, model: &mut Model, from_start: bool) {
    let Some(key) = model.log.key.clone() else {
        return;
    };
    if key.starts_with(SERVICE_LOG) {
        return; // followed by `podman logs -f` (follow_service_log)
    }
    let offset = if from_start { 0 } else { model.log.offset };
    let state = rtm.state_of(&key);
    if let Ok((data, len, reset)) = logview::read_new(&state.log_path(&key), offset) {
        if !data.is_empty() || reset || from_start {
            update(
                model,
                Msg::Log {
                    key: key.clone(),
                    // read_new reads up to `len`
                    start: len - data.len() as u64,
                    data,
                    reset: reset || from_start,
                },
            );
        }
    }
    // after the log: a reset log starts its times over too
    let offset = model.log.times_offset;
    if let Ok((data, len, _)) = logview::read_new(&state.times_path(&key), offset) {
        if !data.is_empty() {
            update(
                model,
                Msg::LogTimes {
                    key,
                    start: len - data.len() as u64,
                    data,
                },
            );
        }
    }
}

/// The local zone's offset from UTC now, as `date +%z` says (`None` when it cannot).
fn local_utc_offset() -> Option<i32> {
    std::process::Command::new("date")
        .arg("+%z")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| super::model::parse_utc_offset(&String::from_utf8_lossy(&o.stdout)))
}

/// `podman events` for pogo's containers; every line says "look again".
fn spawn_events(podman: &Podman, tx: UnboundedSender<Input>) {
    spawn_podman_lines(
        podman,
        &sources::events_args(),
        tx,
        |line, tx| sources::parse_event(line).is_none() || tx.send(Input::PodmanEvent).is_ok(),
        Input::EventsEnded,
    );
}

/// A long-running podman (`args`): each line of its output goes to `line` (which says whether
/// to go on), and its end to the loop as `ended(why)`, unless the loop is gone.
fn spawn_podman_lines(
    podman: &Podman,
    args: &[String],
    tx: UnboundedSender<Input>,
    mut line: impl FnMut(&str, &UnboundedSender<Input>) -> bool + Send + 'static,
    ended: fn(String) -> Input,
) -> tokio::task::JoinHandle<()> {
    let mut cmd = podman.command(args);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::spawn(async move {
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(ended(e.to_string()));
                return;
            }
        };
        if let Some(out) = child.stdout.take() {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                if !line(&text, &tx) {
                    return;
                }
            }
        }
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut err).await;
        }
        let _ = child.wait().await;
        let _ = tx.send(ended(err));
    })
}

/// The running containers' CPU and memory from their cgroups (CPU% over the time since the last
/// sample). Where no running container's cgroup can be read (an unknown layout, or rootless
/// cgroup v1, which has none), the streaming `podman stats` is the fallback.
fn sample_stats(rtm: &mut Runtime, model: &mut Model, now: Instant) {
    let running: Vec<(String, u32, String)> = model
        .containers
        .iter()
        .filter(|c| c.state == "running" && !c.is_infra && c.pid > 0)
        .map(|c| (c.name().to_string(), c.pid, c.id.clone()))
        .collect();
    let mut sample = Vec::new();
    let mut unreadable = 0;
    for (name, pid, id) in &running {
        let known = rtm.samples.remove(name);
        let (open, before) = match known {
            Some((open, usage, at)) => (Some(open), Some((usage, at))),
            None => (
                cgroup::files_of_pid(&rtm.cgroups, *pid, id).and_then(|f| cgroup::Open::new(&f)),
                None,
            ),
        };
        let Some((open, usage)) = open.and_then(|mut o| o.read().map(|u| (o, u))) else {
            unreadable += 1;
            continue;
        };
        if let Some((before, at)) = before {
            let elapsed = u64::try_from(now.duration_since(at).as_nanos()).unwrap_or(u64::MAX);
            let cpu = cgroup::cpu_percent(before, usage, elapsed);
            sample.push(StatEntry {
                name: name.clone(),
                cpu: format!("{cpu:.2}%"),
                mem: cgroup::si_size(usage.mem),
            });
        }
        rtm.samples.insert(name.clone(), (open, usage, now));
    }
    rtm.samples
        .retain(|name, _| running.iter().any(|(n, _, _)| n == name));
    if unreadable > 0 && unreadable == running.len() {
        if rtm.stats.is_none() && rtm.stats_retry.is_none_or(|t| t <= now) {
            rtm.stats = Some(spawn_stats(&rtm.podman, rtm.tx.clone()));
        }
        return;
    }
    if let Some(stream) = rtm.stats.take() {
        stream.abort();
    }
    update(model, Msg::Stats(sample));
}

/// Lines of a service's log the pane starts with.
const SERVICE_LOG_TAIL: &str = "10000";

/// `podman logs -f` of a service container into the log pane (its stdout and its stderr as
/// they come, line by line), until another log is selected.
fn follow_service_log(
    podman: &Podman,
    container: &str,
    tx: UnboundedSender<Input>,
) -> tokio::task::JoinHandle<()> {
    let key = format!("{SERVICE_LOG}{container}");
    let mut cmd = podman.command(&[
        "logs".to_string(),
        "--follow".to_string(),
        "--tail".to_string(),
        SERVICE_LOG_TAIL.to_string(),
        "--".to_string(),
        container.to_string(),
    ]);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::spawn(async move {
        let Ok(mut child) = cmd.spawn() else {
            return;
        };
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return;
        };
        let (mut out, mut err) = (BufReader::new(out).lines(), BufReader::new(err).lines());
        let (mut out_open, mut err_open) = (true, true);
        let mut at = 0u64;
        while out_open || err_open {
            let line = tokio::select! {
                l = out.next_line(), if out_open => l.ok().flatten().or_else(|| { out_open = false; None }),
                l = err.next_line(), if err_open => l.ok().flatten().or_else(|| { err_open = false; None }),
            };
            let Some(line) = line else {
                continue;
            };
            let data = format!("{line}\n").into_bytes();
            let start = at;
            at += data.len() as u64;
            let msg = Msg::Log {
                key: key.clone(),
                start,
                data,
                reset: false,
            };
            if tx.send(Input::Msg(msg)).is_err() {
                return;
            }
        }
        let _ = child.wait().await;
    })
}

/// The streaming `podman stats`: each sample (after the first) goes to the model. Stats are a
/// nicety: rootless cgroup v1 has none, and then the columns show "-".
fn spawn_stats(podman: &Podman, tx: UnboundedSender<Input>) -> tokio::task::JoinHandle<()> {
    let mut stream = sources::StatsStream::default();
    spawn_podman_lines(
        podman,
        &sources::stats_stream_args(),
        tx,
        move |line, tx| match stream.push(line) {
            Some(sample) => tx.send(Input::Msg(Msg::Stats(sample))).is_ok(),
            None => true,
        },
        Input::StatsEnded,
    )
}

/// Ask systemd whether gitlab-runner's user service runs; the answer goes to the Runners screen.
async fn service_status(tx: UnboundedSender<Input>) {
    let out = tokio::process::Command::new("systemctl")
        .args(["--user", "is-active", crate::setup::install::UNIT_NAME])
        .stdin(Stdio::null())
        .output()
        .await;
    let state = match out {
        Ok(o) => {
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.is_empty() {
                "unknown (no systemd user session)".to_string()
            } else {
                s
            }
        }
        Err(_) => "unknown (no systemctl)".to_string(),
    };
    let _ = tx.send(Input::Msg(Msg::Service(state)));
}

/// Something that needs the terminal for itself.
struct Leave {
    program: String,
    args: Vec<String>,
    banner: String,
}

/// `podman exec` arguments for a shell in `container` as GitLab's web terminal opens one: in
/// the job's project directory (when it exists yet) with the job's `CI_*` variables from
/// `env_file`. The directory goes to the shell as an argument, never into its code. Pure.
fn shell_args(container: &str, env_file: Option<&Path>, workdir: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = vec!["exec".into(), "-it".into()];
    if let Some(f) = env_file {
        a.push(format!("--env-file={}", f.display()));
    }
    a.extend([
        container.to_string(),
        "sh".into(),
        "-c".into(),
        "[ -n \"$1\" ] && cd -- \"$1\" 2>/dev/null; \
         if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"
            .into(),
        "sh".into(),
        workdir.unwrap_or_default().to_string(),
    ]);
    a
}

impl Leave {
    fn run(self) {
        println!("{}", self.banner);
        let status = std::process::Command::new(&self.program)
            .args(&self.args)
            .status();
        // podman's own failures (125: podman, 126/127: the command could not run) would
        // vanish with the dashboard's redraw: they stay until a key
        let failed = match status {
            Err(e) => Some(format!("cannot start {}: {e}", self.program)),
            Ok(s) if matches!(s.code(), Some(125..=127)) => Some(format!(
                "{} ended with exit code {}",
                self.program,
                s.code().unwrap_or_default()
            )),
            Ok(_) => None,
        };
        if let Some(why) = failed {
            eprintln!("pogo: {why}; press Enter to return to the dashboard");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
    }
}

impl Runtime {
    /// Know the state dirs of the pogo configs the runners name (each config read once).
    fn find_others(&mut self, model: &Model) {
        let own = model.config.path.as_deref();
        for path in runners::other_pogo_configs(&model.runners.rows, own) {
            if self.others.contains_key(&path) {
                continue;
            }
            let state = config::load(Some(&path), &HashMap::new())
                .ok()
                .map(|c| StateDir::new(state::state_dir(&c.working_dir, &HashMap::new())))
                .filter(|s| s.root != self.state.root);
            self.others.insert(path, state);
        }
    }

    /// The pogo config whose state dir `state` is (none: the dashboard's own, found as it was).
    fn config_of(&self, state: &StateDir) -> Option<PathBuf> {
        if state.root == self.state.root {
            return self.flag.clone();
        }
        self.others
            .iter()
            .find(|(_, s)| s.as_ref().is_some_and(|s| s.root == state.root))
            .map(|(p, _)| p.clone())
    }

    /// Every state dir: the dashboard's own first.
    fn all_states(&self) -> Vec<StateDir> {
        let mut all = vec![self.state.clone()];
        for s in self.others.values().flatten() {
            if !all.iter().any(|a| a.root == s.root) {
                all.push(s.clone());
            }
        }
        all
    }

    /// The state dir that has job `key`'s record (its log copy, env file, stop note).
    fn state_of(&self, key: &str) -> StateDir {
        self.all_states()
            .into_iter()
            .find(|s| s.record_path(key).exists())
            .unwrap_or_else(|| self.state.clone())
    }
}

async fn run_effect(rtm: &mut Runtime, model: &mut Model, e: Effect) -> Option<Leave> {
    match e {
        Effect::RefreshJobs => {
            rtm.refresh_again = rtm.refresh_in_flight;
            if !rtm.refresh_in_flight {
                rtm.refresh_in_flight = true;
                rtm.find_others(model);
                let podman = rtm.podman.clone();
                let states = rtm.all_states();
                let tx = rtm.tx.clone();
                tokio::spawn(async move {
                    let containers = sources::ps(&podman)
                        .await
                        .map_err(|e| sources::explain_podman_error(&podman.bin, &e));
                    let mut records = Vec::new();
                    for state in &states {
                        for r in state.list() {
                            if !records.iter().any(|x: &state::JobRecord| x.key == r.key) {
                                records.push(r);
                            }
                        }
                    }
                    let _ = tx.send(Input::Msg(Msg::Jobs {
                        containers,
                        records,
                    }));
                });
            }
            None
        }
        Effect::ReadUtcOffset => {
            let tx = rtm.tx.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(o) = local_utc_offset() {
                    let _ = tx.send(Input::Msg(Msg::UtcOffset(o)));
                }
            });
            None
        }
        Effect::FindOtherRunner => {
            let tx = rtm.tx.clone();
            tokio::task::spawn_blocking(move || {
                let found = super::procs::find_other_runner();
                let _ = tx.send(Input::Msg(Msg::OtherRunner(found)));
            });
            None
        }
        Effect::ReloadLog => {
            if let Some(follow) = rtm.service_log.take() {
                follow.abort();
            }
            match model
                .log
                .key
                .as_deref()
                .and_then(|k| k.strip_prefix(SERVICE_LOG))
            {
                Some(container) => {
                    rtm.service_log =
                        Some(follow_service_log(&rtm.podman, container, rtm.tx.clone()));
                }
                None => read_log(rtm, model, true),
            }
            None
        }
        Effect::SearchEarlier { key, needle, upto } => {
            let path = rtm.state_of(&key).log_path(&key);
            let tx = rtm.tx.clone();
            tokio::task::spawn_blocking(move || {
                if let Ok(count) = logview::count_matches(&path, upto, &needle) {
                    let msg = Msg::EarlierMatches { key, needle, count };
                    let _ = tx.send(Input::Msg(msg));
                }
            });
            None
        }
        Effect::ReloadConfig => {
            let r = load_config(rtm.flag.as_deref(), &rtm.env);
            model.config.missing =
                config::locate(rtm.flag.as_deref(), &rtm.env) == ConfigSource::Defaults;
            let unchanged = matches!(&r, Ok((_, text)) if model.config.error.is_none()
                && model.config.text.as_deref() == Some(text.as_str()));
            if !unchanged {
                if let Ok((c, _)) = &r {
                    rtm.podman = Podman::new(c.podman.clone(), c.podman_args.clone());
                }
                update(model, Msg::Config(r.map(Box::new)));
            }
            None
        }
        Effect::ReloadRunners => {
            update(
                model,
                Msg::Runners(runners::load(&rtm.runner_config, rtm.pogo_exe.as_deref())),
            );
            tokio::spawn(service_status(rtm.tx.clone()));
            None
        }
        Effect::Release { key } => {
            let state = rtm.state_of(&key);
            let config = rtm.config_of(&state);
            let released = state.read(&key).map(|mut r| {
                r.kept_until = Some(state::now());
                state.write(&r)
            });
            let (Some(Ok(())), Some(pogo)) = (released, rtm.pogo_exe.clone()) else {
                model.status = Some(format!(
                    "cannot release {key}: its record in {} cannot be changed",
                    state.root.display()
                ));
                return None;
            };
            let tx = rtm.tx.clone();
            tokio::spawn(async move {
                let mut cmd = tokio::process::Command::new(pogo);
                if let Some(c) = config {
                    cmd.arg("--config").arg(c);
                }
                cmd.args(["gc", "--quiet"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let msg = match cmd.output().await {
                    Ok(o) if o.status.success() => format!("released {key}: pogo gc removed it"),
                    Ok(o) => format!(
                        "pogo gc failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    Err(e) => format!("cannot run pogo gc: {e}"),
                };
                let _ = tx.send(Input::Msg(Msg::Status(msg)));
            });
            None
        }
        Effect::Stop { container, key } => {
            let podman = rtm.podman.clone();
            let tx = rtm.tx.clone();
            // before the stop: the job's failure then says who stopped it, not "the machine"
            let who = rtm
                .env
                .get("USER")
                .filter(|u| !u.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("uid {}", nix::unistd::Uid::effective()));
            let noted = rtm.state_of(&key).note_stopped(&key, &who);
            tokio::spawn(async move {
                let msg = match podman.run(&sources::stop_args(&container)).await {
                    Ok(_) if noted.is_ok() => {
                        format!("stopped {container}; gitlab-runner reports the job as failed, stopped from pogo tui")
                    }
                    Ok(_) => {
                        format!("stopped {container}; gitlab-runner reports the job as failed")
                    }
                    Err(e) => format!("cannot stop {container}: {e}"),
                };
                let _ = tx.send(Input::Msg(Msg::Status(msg)));
            });
            None
        }
        Effect::Inspect(container) => {
            let podman = rtm.podman.clone();
            let tx = rtm.tx.clone();
            tokio::spawn(async move {
                let msg = match podman.run(&sources::inspect_args(&container)).await {
                    Ok(text) => Msg::Inspected {
                        title: container,
                        text,
                    },
                    Err(e) => Msg::Status(format!("cannot inspect {container}: {e}")),
                };
                let _ = tx.send(Input::Msg(msg));
            });
            None
        }
        Effect::SaveLog { key, id, times } => {
            let msg = save_log(&rtm.state_of(&key), &key, &id, times);
            update(model, Msg::Status(msg));
            None
        }
        Effect::OpenUrl(url) => {
            let msg = match std::process::Command::new("xdg-open")
                .arg(&url)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(mut child) => {
                    // reaped when it exits (xdg-open returns once the browser has it)
                    std::thread::spawn(move || child.wait());
                    format!("opening {url}")
                }
                Err(e) => format!("cannot run xdg-open ({e}): the job is at {url}"),
            };
            update(model, Msg::Status(msg));
            None
        }
        Effect::Shell {
            container,
            key,
            workdir,
        } => {
            let env_file = rtm.state_of(&key).env_path(&key);
            let mut args = rtm.podman.global_args.clone();
            args.extend(shell_args(
                &container,
                env_file.is_file().then_some(env_file.as_path()),
                workdir.as_deref(),
            ));
            Some(Leave {
                program: rtm.podman.bin.clone(),
                args,
                banner: format!(
                    "pogo: shell in the job container {container}; `exit` returns to the dashboard"
                ),
            })
        }
        Effect::Register {
            url,
            token,
            name,
            ca_file,
        } => {
            let home = rtm.env.get("HOME").map(PathBuf::from).unwrap_or_default();
            let req = crate::setup::register::RegisterRequest {
                url,
                credential: crate::setup::register::Credential::RunnerToken(token),
                name,
                runner_config: rtm.runner_config.clone(),
                pogo_config: crate::setup::register::resolve_pogo_config(
                    rtm.flag.as_deref(),
                    None,
                    &rtm.env,
                    &home,
                ),
                pogo_binary: rtm
                    .pogo_exe
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("pogo")),
                replace: false,
                tls_ca_file: ca_file.map(|p| crate::setup::absolute(&p)),
                timeout: crate::setup::register::API_TIMEOUT,
            };
            let env = rtm.env.clone();
            let pogo = rtm.pogo_exe.clone();
            let tx = rtm.tx.clone();
            tokio::task::spawn_blocking(move || {
                let msg = match crate::setup::register::register(&req, &env) {
                    Ok(r) => Msg::Status(format!(
                        "registered runner {} (id {}) in {}; gitlab-runner picks it up by itself",
                        req.name,
                        r.runner_id,
                        r.runner_config.display()
                    )),
                    Err(e) => Msg::RegisterFailed(format!("not registered: {e}")),
                };
                let _ = tx.send(Input::Msg(msg));
                let _ = tx.send(Input::Msg(Msg::Runners(runners::load(
                    &req.runner_config,
                    pogo.as_deref(),
                ))));
            });
            None
        }
        Effect::Unregister(name) => {
            let path = rtm.runner_config.clone();
            let pogo = rtm.pogo_exe.clone();
            let tx = rtm.tx.clone();
            tokio::task::spawn_blocking(move || {
                let msg = match crate::setup::register::unregister(
                    &path,
                    &name,
                    false,
                    crate::setup::register::API_TIMEOUT,
                ) {
                    Ok(u) => {
                        let mut m = format!("unregistered {name}");
                        if !u.notes.is_empty() {
                            m.push_str(&format!(" ({})", u.notes.join("; ")));
                        }
                        m
                    }
                    Err(e) => format!("not unregistered: {e}"),
                };
                let _ = tx.send(Input::Msg(Msg::Status(msg)));
                let _ = tx.send(Input::Msg(Msg::Runners(runners::load(
                    &path,
                    pogo.as_deref(),
                ))));
            });
            None
        }
        Effect::Service { start } => {
            let verb = if start { "start" } else { "stop" };
            let tx = rtm.tx.clone();
            tokio::spawn(async move {
                let out = tokio::process::Command::new("systemctl")
                    .args(["--user", verb, crate::setup::install::UNIT_NAME])
                    .stdin(Stdio::null())
                    .output()
                    .await;
                let msg = match out {
                    Ok(o) if o.status.success() => format!("gitlab-runner service: {verb} done"),
                    Ok(o) => format!(
                        "systemctl --user {verb} {} failed: {} (set the service up with `pogo install`)",
                        crate::setup::install::UNIT_NAME,
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    Err(e) => format!("cannot run systemctl: {e}"),
                };
                let _ = tx.send(Input::Msg(Msg::Status(msg)));
                service_status(tx).await;
            });
            None
        }
        Effect::SaveConfig {
            edit,
            base,
            check_host,
        } => {
            let Some(path) = model.config.path.clone() else {
                update(
                    model,
                    Msg::ConfigSaved(Err(SaveProblem::Refused(
                        "no config file to save to: set HOME or pass --config PATH".into(),
                    ))),
                );
                return None;
            };
            let saved = save_config(&path, &rtm.env, &edit, &base, check_host.as_deref());
            if saved.is_ok() {
                // read back now, so the watcher's event for our own write changes nothing
                let r = load_config(rtm.flag.as_deref(), &rtm.env);
                model.config.missing =
                    config::locate(rtm.flag.as_deref(), &rtm.env) == ConfigSource::Defaults;
                update(model, Msg::Config(r.map(Box::new)));
            }
            update(model, Msg::ConfigSaved(saved));
            None
        }
        Effect::EditConfig(path) => {
            let editor = ["VISUAL", "EDITOR"]
                .iter()
                .find_map(|k| rtm.env.get(*k).filter(|v| !v.trim().is_empty()).cloned())
                .unwrap_or_else(|| "vi".to_string());
            Some(Leave {
                program: "sh".to_string(),
                args: vec![
                    "-c".to_string(),
                    format!("{editor} \"$1\""),
                    "sh".to_string(),
                    path.display().to_string(),
                ],
                banner: format!("pogo: editing {}", path.display()),
            })
        }
    }
}

/// Apply a form's edit to the config file: only if the file still reads `base` (no edit made
/// elsewhere meanwhile is overwritten), comments and layout kept, written atomically, never
/// in a form pogo would reject.
fn save_config(
    path: &Path,
    env: &HashMap<String, String>,
    edit: &config::edit::Edit,
    base: &str,
    check_host: Option<&Path>,
) -> Result<String, SaveProblem> {
    if let Some(h) = check_host.filter(|h| !h.exists()) {
        return Err(SaveProblem::Warning(format!(
            "{} does not exist on this machine: jobs that get this mount fail to start until it does. Enter saves anyway",
            h.display()
        )));
    }
    let current = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(SaveProblem::Refused(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    if current != base {
        return Err(SaveProblem::Refused(format!(
            "{} changed on disk since this form opened: Esc, look at the change, then edit again",
            path.display()
        )));
    }
    let new = config::edit::apply(&current, path, edit)
        .map_err(|e| SaveProblem::Refused(e.to_string()))?;
    config::write_atomic(path, &new, env).map_err(|e| SaveProblem::Refused(e.to_string()))?;
    Ok(format!("saved {}", path.display()))
}

/// Copy the job's log copy to `./pogo-job-ID.log` (`-N` added if taken); with each line's
/// write time before it when `times` (the zone offset) is given.
fn save_log(state: &StateDir, key: &str, id: &str, times: Option<i32>) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    save_log_in(&cwd, state, key, id, times)
}

/// [`save_log`] into `dir`. The copy is private (0600) like the log copy it comes from.
fn save_log_in(dir: &Path, state: &StateDir, key: &str, id: &str, times: Option<i32>) -> String {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let from = state.log_path(key);
    if !from.is_file() {
        return format!("job {id} has no log copy to save");
    }
    let base = crate::executor::env::sanitize_name(id, "job");
    let mut to = dir.join(format!("pogo-job-{base}.log"));
    let saved = std::fs::read(&from).and_then(|raw| {
        let (text, how) = match times {
            None => (raw, ""),
            Some(offset) => {
                // no times file (an old job): the lines get blank stamps
                let stamps = std::fs::read_to_string(state.times_path(key)).unwrap_or_default();
                let text = super::logview::with_timestamps(&raw, &stamps, offset);
                (text, " with timestamps")
            }
        };
        // the first free name (anything there, a dangling symlink too, is kept)
        let mut n = 1;
        let mut file = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&to)
            {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => {
                    to = dir.join(format!("pogo-job-{base}-{n}.log"));
                    n += 1;
                }
                other => break other?,
            }
        };
        file.write_all(&text).map(|()| how)
    });
    match saved {
        Ok(how) => format!("log saved to {}{how}", to.display()),
        Err(e) => format!("cannot save the log to {}: {e}", to.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_starts_in_the_project_dir_with_the_jobs_variables_and_runs_no_job_text() {
        let hostile = "/builds/x\"; rm -rf / #$(id)";
        let a = shell_args(
            "pogo-r-1-0-build",
            Some(Path::new("/w/jobs/pogo-r-1-0.env")),
            Some(hostile),
        );
        assert_eq!(
            &a[..3],
            ["exec", "-it", "--env-file=/w/jobs/pogo-r-1-0.env"]
        );
        assert_eq!(a[3], "pogo-r-1-0-build");
        // the directory is the script's $1, an argument of its own, never part of its code
        assert_eq!(a.last().map(String::as_str), Some(hostile));
        assert!(!a[6].contains("builds"), "{}", a[6]);
        let plain = shell_args("c", None, None);
        assert!(!plain.iter().any(|x| x.starts_with("--env-file")));
        assert_eq!(plain.last().map(String::as_str), Some(""));
    }

    #[test]
    fn quitting_with_running_jobs_says_they_go_on() {
        let m = crate::tui::views::fixtures::model();
        let note = quit_note(&m).unwrap();
        assert!(
            note.contains("2 job(s) still running; they go on without the dashboard"),
            "{note}"
        );
        let mut idle = crate::tui::views::fixtures::model();
        idle.jobs.retain(|j| !j.running);
        assert_eq!(quit_note(&idle), None);
    }
    use crate::config::edit::Edit;
    use crate::config::model::{ExtraArgsRule, MountRule};

    const FILE: &str =
        "# laptop runner\ndefault_image: alpine   # small\nmounts:\n  - volume: /srv:/srv\n";

    fn env(home: &Path) -> HashMap<String, String> {
        HashMap::from([("HOME".to_string(), home.display().to_string())])
    }

    fn add_mount(volume: &str) -> Edit {
        Edit::Mount {
            index: None,
            rule: Some(MountRule {
                volume: volume.into(),
                tags: vec!["data".into()],
                projects: vec![],
                readonly: false,
            }),
        }
    }

    #[test]
    fn s_saves_a_private_copy_of_the_log_next_to_earlier_ones_with_timestamps_if_shown() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let key = "pogo-laptop-7-0";
        std::fs::write(state.log_path(key), "one\ntwo\n").unwrap();
        std::fs::write(state.times_path(key), "0 0\n4 61000\n").unwrap();
        let msg = save_log_in(dir.path(), &state, key, "7", None);
        let plain = dir.path().join("pogo-job-7.log");
        assert_eq!(msg, format!("log saved to {}", plain.display()));
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "one\ntwo\n");
        let msg = save_log_in(dir.path(), &state, key, "7", Some(0));
        let stamped = dir.path().join("pogo-job-7-1.log");
        assert_eq!(
            msg,
            format!("log saved to {} with timestamps", stamped.display())
        );
        assert_eq!(
            std::fs::read_to_string(&stamped).unwrap(),
            "1970-01-01 00:00:00 one\n1970-01-01 00:01:01 two\n"
        );
        for f in [plain, stamped] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", f.display());
        }
        // a dangling symlink where the next name would be is skipped, not followed
        std::os::unix::fs::symlink("/nonexistent/x", dir.path().join("pogo-job-7-2.log")).unwrap();
        let msg = save_log_in(dir.path(), &state, key, "7", None);
        assert!(msg.ends_with("pogo-job-7-3.log"), "{msg}");
        assert_eq!(
            save_log_in(dir.path(), &state, "pogo-laptop-8-0", "8", None),
            "job 8 has no log copy to save"
        );
    }

    #[test]
    fn a_saved_form_keeps_the_files_comments_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pogo.yaml");
        std::fs::write(&path, FILE).unwrap();
        let host = dir.path().display().to_string();
        let edit = add_mount(&format!("{host}:/data"));
        let msg = save_config(&path, &env(dir.path()), &edit, FILE, Some(dir.path())).unwrap();
        assert!(msg.starts_with("saved "), "{msg}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{FILE}  - volume: {host}:/data\n    tags: [data]\n")
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(".pogo.yaml")]);
    }

    #[test]
    fn a_save_is_refused_when_the_file_changed_on_disk_since_the_form_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pogo.yaml");
        let elsewhere = format!("{FILE}pull_policy: always\n");
        std::fs::write(&path, &elsewhere).unwrap();
        let e = save_config(&path, &env(dir.path()), &add_mount("/a:/a"), FILE, None).unwrap_err();
        assert!(
            matches!(&e, SaveProblem::Refused(m) if m.contains("changed on disk")),
            "{e:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), elsewhere);
    }

    #[test]
    fn a_missing_host_directory_is_a_warning_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pogo.yaml");
        std::fs::write(&path, FILE).unwrap();
        let missing = dir.path().join("nope");
        let e = save_config(
            &path,
            &env(dir.path()),
            &add_mount(&format!("{}:/x", missing.display())),
            FILE,
            Some(&missing),
        )
        .unwrap_err();
        assert!(
            matches!(&e, SaveProblem::Warning(m) if m.contains("does not exist")),
            "{e:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    }

    #[test]
    fn the_first_save_creates_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pogo.yaml");
        let edit = Edit::Scalar {
            key: "default_image".into(),
            value: Some("debian:13".into()),
        };
        save_config(&path, &env(dir.path()), &edit, "", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "default_image: debian:13\n"
        );
    }

    #[test]
    fn a_save_pogo_would_reject_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pogo.yaml");
        std::fs::write(&path, FILE).unwrap();
        // reach-widening arguments without `privileged: true` (the form refuses this too)
        let edit = Edit::Extra {
            tag: None,
            new: Some((
                "fuse".into(),
                ExtraArgsRule::Args("--device /dev/fuse".into()),
            )),
        };
        let e = save_config(&path, &env(dir.path()), &edit, FILE, None).unwrap_err();
        assert!(
            matches!(&e, SaveProblem::Refused(m) if m.contains("privileged")),
            "{e:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    }
}
