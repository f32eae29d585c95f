//! The dashboard's runtime: one `tokio::select!` loop over the terminal's `EventStream`,
//! podman's event stream, the file watcher (config file and state dir) and timers. It turns
//! what happens into [`Msg`]s for `update`, has the [`Effect`]s `update` asks for run (in
//! [`super::effects`], which reports back with messages too), and draws only when the model
//! says something changed. The model changes only in `update`; the loop clears its `dirty`
//! flag once it has drawn.

use super::effects::{self, Context};
use super::model::Model;
use super::sources::StatEntry;
use super::update::{update, Effect, Msg};
use super::{cgroup, runners, sources, TuiArgs};
use crate::config::{self, ConfigSource};
use crate::podman::Podman;
use crate::state::{self, StateDir};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
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
pub(super) enum Input {
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
    /// What the effects work with (podman, the state dirs, the channel to the loop).
    ctx: Context,
    /// The cgroup mounts, and each running container's files and last sample.
    cgroups: cgroup::Mounts,
    samples: HashMap<String, (cgroup::Open, cgroup::Usage, Instant)>,
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
    // The watcher lives as long as the loop; its callback runs on notify's thread.
    let (mut model, mut rtm, mut rx, _watcher) = start(flag, args, env);
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
        let mut fx = Vec::new();
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) => fx = update(&mut model, Msg::Key(k)),
                Some(Ok(Event::Resize(w, h))) => { update(&mut model, Msg::Resize(w, h)); }
                Some(Ok(Event::Mouse(e))) => fx = update(&mut model, Msg::Mouse(e)),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(format!("cannot read the terminal: {e}")),
                None => break Ok(()),
            },
            input = rx.recv() => if let Some(input) = input {
                fx = on_input(&mut rtm, &mut model, &mut due, input);
            },
            _ = sleep => {}
        }
        on_timers(&mut rtm, &mut model, &mut due, &mut fx);
        events = run_effects(&mut rtm, &mut model, &mut due, &mut terminal, events, fx).await?;
    };
    restore_terminal();
    if let Some(note) = quit_note(&model) {
        println!("{note}");
    }
    result
}

/// The model as the dashboard starts, before any message: where the config is, what the
/// environment overrides, the zone's offset, the host's name.
fn initial_model(flag: Option<&Path>, env: &HashMap<String, String>) -> Model {
    let color = env.get("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut model = Model::new(state::now(), color);
    // UTC when the zone cannot be found
    model.utc_offset = effects::local_utc_offset().unwrap_or(0);
    model.config.path = effects::config_path(flag, env);
    model.config.home = env.get("HOME").map(PathBuf::from);
    model.config.overridden = crate::config::model::SCALAR_KEYS
        .iter()
        .filter(|k| env.contains_key(&config::env_var(k)))
        .map(|k| k.to_string())
        .collect();
    model.config.missing = config::locate(flag, env) == ConfigSource::Defaults;
    model.config.keep_alive = Some(crate::podman::detect_keep_alive());
    model.default_runner_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    model
}

/// The model and the runtime as the loop starts: the config and the runners read, the files
/// watched (the watcher, unless watching is unavailable), podman's events and the service's
/// state asked for.
fn start(
    flag: Option<&Path>,
    args: &TuiArgs,
    env: HashMap<String, String>,
) -> (
    Model,
    Runtime,
    UnboundedReceiver<Input>,
    Option<notify::RecommendedWatcher>,
) {
    let mut model = initial_model(flag, &env);
    let loaded = effects::load_config(flag, &env);
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
    let (tx, rx) = unbounded_channel::<Input>();
    let rtm = Runtime {
        ctx: Context {
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
            service_log: None,
        },
        cgroups: cgroup::mounts(),
        samples: HashMap::new(),
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
        Msg::Runners(runners::load(
            &rtm.ctx.runner_config,
            rtm.ctx.pogo_exe.as_deref(),
        )),
    );
    let watcher = match watch(&rtm, &model, tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            update(
                &mut model,
                Msg::Status(format!(
                    "file watching unavailable ({e}); press r to reload"
                )),
            );
            None
        }
    };
    spawn_events(&rtm.ctx.podman, tx.clone());
    tokio::spawn(effects::service_status(tx));
    (model, rtm, rx, watcher)
}

/// What a background task or the watcher reported; the effects `update` asks for.
fn on_input(rtm: &mut Runtime, model: &mut Model, due: &mut Due, input: Input) -> Vec<Effect> {
    match input {
        Input::Msg(m) => {
            if matches!(m, Msg::Jobs { .. }) {
                rtm.ctx.refresh_in_flight = false;
                // a refresh asked for while this one ran looks again
                if std::mem::take(&mut rtm.ctx.refresh_again) {
                    soon(&mut due.jobs, DEBOUNCE);
                }
            }
            return update(model, m);
        }
        Input::PodmanEvent => {
            // the stream is trusted once it has said something (a fresh machine's
            // podman may run `podman events` and never report a thing)
            rtm.events_live = true;
            soon(&mut due.jobs, DEBOUNCE);
        }
        Input::EventsEnded(why) => {
            tracing::debug!("podman events ended: {why}");
            rtm.events_live = false;
            soon(&mut due.events_restart, EVENTS_RETRY);
            soon(&mut due.poll, POLL);
        }
        Input::StatsEnded(why) => {
            tracing::debug!("podman stats ended: {why}");
            rtm.stats = None;
            rtm.stats_retry = Some(Instant::now() + STATS_RETRY);
        }
        Input::Fs(paths) => on_files(rtm, model, due, &paths),
    }
    Vec::new()
}

/// The timers that are due, and the next ones set; the effects they ask for go to `fx`, after
/// the ones already there.
fn on_timers(rtm: &mut Runtime, model: &mut Model, due: &mut Due, fx: &mut Vec<Effect>) {
    let now = Instant::now();
    if take_due(&mut due.jobs, now) {
        fx.push(Effect::RefreshJobs);
    }
    if take_due(&mut due.config, now) {
        fx.push(Effect::ReloadConfig);
    }
    if take_due(&mut due.log, now) {
        read_log(rtm, model, fx);
    }
    if take_due(&mut due.events_restart, now) {
        spawn_events(&rtm.ctx.podman, rtm.ctx.tx.clone());
    }
    if take_due(&mut due.tick, now) {
        rtm.ticks += 1;
        if rtm.ticks % STATS_EVERY_TICKS == 0 {
            if let Some(sample) = sample_stats(rtm, model, now) {
                fx.extend(update(model, sample));
            }
        }
        fx.extend(update(model, Msg::Tick(state::now())));
        // A running job's log is also read on the tick, in case a file event was missed.
        if model.selected_job().is_some_and(|j| j.running) {
            read_log(rtm, model, fx);
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
        fx.push(Effect::RefreshJobs);
    }
    if take_due(&mut due.utc_offset, now) && model.show_times {
        fx.push(Effect::ReadUtcOffset);
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
}

/// What was appended to the selected job's log and its times, to the model.
fn read_log(rtm: &Runtime, model: &mut Model, fx: &mut Vec<Effect>) {
    let mut report = Vec::new();
    effects::read_log(&rtm.ctx, model, false, &mut report);
    for msg in report {
        fx.extend(update(model, msg));
    }
}

/// Run the effects in order, and hand what they report to `update` (the effects it asks for
/// then run too). A shell or an editor gets the terminal meanwhile; the terminal's event
/// stream is dropped for it, and the new one returned.
async fn run_effects(
    rtm: &mut Runtime,
    model: &mut Model,
    due: &mut Due,
    terminal: &mut ratatui::DefaultTerminal,
    mut events: EventStream,
    fx: Vec<Effect>,
) -> Result<EventStream, String> {
    let mut queue = VecDeque::from(fx);
    while let Some(e) = queue.pop_front() {
        let mut report = Vec::new();
        let leave = effects::run(&mut rtm.ctx, model, e, &mut report).await;
        for msg in report {
            queue.extend(update(model, msg));
        }
        if let Some(leave) = leave {
            // A shell or an editor: give the terminal away, then take it back.
            drop(events);
            restore_terminal();
            leave.run();
            *terminal =
                init_terminal().map_err(|e| format!("cannot set the terminal up again: {e}"))?;
            let _ = terminal.clear();
            events = EventStream::new();
            queue.extend(update(model, Msg::Redraw));
            soon(&mut due.jobs, Duration::ZERO);
            soon(&mut due.config, Duration::ZERO);
        }
    }
    Ok(events)
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
            .create(&rtm.ctx.state.root);
    }
    w.watch(&rtm.ctx.state.root, RecursiveMode::NonRecursive)
        .map_err(|e| format!("{}: {e}", rtm.ctx.state.root.display()))?;
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
    let selected = model.log.key.as_deref().map(|k| (k, rtm.ctx.state_of(k)));
    let selected_log = selected.as_ref().map(|(k, s)| s.log_path(k));
    let selected_times = selected.as_ref().map(|(k, s)| s.times_path(k));
    let roots = rtm.ctx.all_states();
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
/// cgroup v1, which has none), the streaming `podman stats` is the fallback. The sample, for
/// `update`, unless the fallback runs.
fn sample_stats(rtm: &mut Runtime, model: &Model, now: Instant) -> Option<Msg> {
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
            rtm.stats = Some(spawn_stats(&rtm.ctx.podman, rtm.ctx.tx.clone()));
        }
        return None;
    }
    if let Some(stream) = rtm.stats.take() {
        stream.abort();
    }
    Some(Msg::Stats(sample))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
