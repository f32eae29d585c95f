//! The effects `update` asks for, run: podman calls, files read and written, GitLab, systemd,
//! and leaving the terminal for a shell or an editor. They report back only with [`Msg`]s:
//! at once (returned to the loop, which hands them to `update` in order) or later, from a
//! task, through the loop's channel. None writes the model.

use super::app::Input;
use super::configform::SaveProblem;
use super::model::{Model, SERVICE_LOG};
use super::update::{Effect, Msg};
use super::{logview, runners, sources};
use crate::config::{self, ConfigSource};
use crate::podman::Podman;
use crate::state::{self, StateDir};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;

/// What the effects work with: podman, the state dirs, where the configs are, the way back to
/// the loop.
pub(super) struct Context {
    pub(super) flag: Option<PathBuf>,
    pub(super) env: HashMap<String, String>,
    pub(super) podman: Podman,
    pub(super) state: StateDir,
    /// The state dirs of the other pogo configs the runners use (`--config` in config.toml):
    /// `pogo tui` with its own config still finds those jobs' records and log copies. By
    /// config path, none where that config cannot be read.
    pub(super) others: HashMap<PathBuf, Option<StateDir>>,
    pub(super) runner_config: PathBuf,
    pub(super) pogo_exe: Option<PathBuf>,
    pub(super) tx: UnboundedSender<Input>,
    pub(super) refresh_in_flight: bool,
    /// A refresh was asked for while one ran: it follows.
    pub(super) refresh_again: bool,
    /// `podman logs -f` of the selected service.
    pub(super) service_log: Option<tokio::task::JoinHandle<()>>,
}

/// Run `e`. Messages for `update` now go to `report`, in order; a shell or an editor comes back
/// as the [`Leave`] to run with the terminal given away.
pub(super) async fn run(
    ctx: &mut Context,
    model: &Model,
    e: Effect,
    report: &mut Vec<Msg>,
) -> Option<Leave> {
    match e {
        Effect::RefreshJobs => refresh_jobs(ctx, model),
        Effect::ReadUtcOffset => {
            let tx = ctx.tx.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(o) = local_utc_offset() {
                    let _ = tx.send(Input::Msg(Msg::UtcOffset(o)));
                }
            });
        }
        Effect::FindOtherRunner => {
            let tx = ctx.tx.clone();
            tokio::task::spawn_blocking(move || {
                let found = super::procs::find_other_runner();
                let _ = tx.send(Input::Msg(Msg::OtherRunner(found)));
            });
        }
        Effect::ReloadLog => reload_log(ctx, model, report),
        Effect::SearchEarlier { key, needle, upto } => {
            let path = ctx.state_of(&key).log_path(&key);
            let tx = ctx.tx.clone();
            tokio::task::spawn_blocking(move || {
                if let Ok(count) = logview::count_matches(&path, upto, &needle) {
                    let msg = Msg::EarlierMatches { key, needle, count };
                    let _ = tx.send(Input::Msg(msg));
                }
            });
        }
        Effect::ReloadConfig => reload_config(ctx, model, report),
        Effect::ReloadRunners => {
            report.push(Msg::Runners(runners::load(
                &ctx.runner_config,
                ctx.pogo_exe.as_deref(),
            )));
            tokio::spawn(service_status(ctx.tx.clone()));
        }
        Effect::Release { key } => release(ctx, key, report),
        Effect::Stop { container, key } => stop(ctx, container, key),
        Effect::Inspect(container) => inspect(ctx, container),
        Effect::SaveLog { key, id, times } => {
            report.push(Msg::Status(save_log(&ctx.state_of(&key), &key, &id, times)));
        }
        Effect::OpenUrl(url) => report.push(Msg::Status(open_url(&url))),
        Effect::Shell {
            container,
            key,
            workdir,
        } => return Some(shell(ctx, &container, &key, workdir.as_deref())),
        Effect::Register {
            url,
            token,
            name,
            ca_file,
        } => register(ctx, url, token, name, ca_file),
        Effect::Unregister(name) => unregister(ctx, name),
        Effect::Service { start } => service(ctx, start),
        Effect::SaveConfig {
            edit,
            base,
            check_host,
        } => save_config_effect(ctx, model, &edit, &base, check_host.as_deref(), report),
        Effect::EditConfig(path) => return Some(edit_config(ctx, &path)),
    }
    None
}

/// `podman ps` and the state records of every state dir, in a task (one at a time: one asked
/// for meanwhile follows it).
fn refresh_jobs(ctx: &mut Context, model: &Model) {
    ctx.refresh_again = ctx.refresh_in_flight;
    if ctx.refresh_in_flight {
        return;
    }
    ctx.refresh_in_flight = true;
    ctx.find_others(model);
    let podman = ctx.podman.clone();
    let states = ctx.all_states();
    let tx = ctx.tx.clone();
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

/// The log pane's log from its start: a job's log copy read now, a service's followed.
fn reload_log(ctx: &mut Context, model: &Model, report: &mut Vec<Msg>) {
    if let Some(follow) = ctx.service_log.take() {
        follow.abort();
    }
    match model
        .log
        .key
        .as_deref()
        .and_then(|k| k.strip_prefix(SERVICE_LOG))
    {
        Some(container) => {
            ctx.service_log = Some(follow_service_log(&ctx.podman, container, ctx.tx.clone()));
        }
        None => read_log(ctx, model, true, report),
    }
}

/// Read what was appended to the selected job's log (or all of it, `from_start`), and to its
/// `.times` file.
pub(super) fn read_log(ctx: &Context, model: &Model, from_start: bool, report: &mut Vec<Msg>) {
    let Some(key) = model.log.key.clone() else {
        return;
    };
    if key.starts_with(SERVICE_LOG) {
        return; // followed by `podman logs -f` (follow_service_log)
    }
    let offset = if from_start { 0 } else { model.log.offset };
    let state = ctx.state_of(&key);
    let mut times_offset = model.log.times_offset;
    if let Ok((data, len, reset)) = logview::read_new(&state.log_path(&key), offset) {
        if !data.is_empty() || reset || from_start {
            // after the log: a reset log starts its times over too (`update` resets the pane)
            if reset || from_start {
                times_offset = 0;
            }
            report.push(Msg::Log {
                key: key.clone(),
                // read_new reads up to `len`
                start: len - data.len() as u64,
                data,
                reset: reset || from_start,
            });
        }
    }
    if let Ok((data, len, _)) = logview::read_new(&state.times_path(&key), times_offset) {
        if !data.is_empty() {
            report.push(Msg::LogTimes {
                key,
                start: len - data.len() as u64,
                data,
            });
        }
    }
}

/// The config file read again: a new config (and podman) only when its text changed.
fn reload_config(ctx: &mut Context, model: &Model, report: &mut Vec<Msg>) {
    let r = load_config(ctx.flag.as_deref(), &ctx.env);
    report.push(Msg::ConfigMissing(
        config::locate(ctx.flag.as_deref(), &ctx.env) == ConfigSource::Defaults,
    ));
    let unchanged = matches!(&r, Ok((_, text)) if model.config.error.is_none()
        && model.config.text.as_deref() == Some(text.as_str()));
    if !unchanged {
        if let Ok((c, _)) = &r {
            ctx.podman = Podman::new(c.podman.clone(), c.podman_args.clone());
        }
        report.push(Msg::Config(r.map(Box::new)));
    }
}

/// End the keeping of a kept job now (its record says so), then `pogo gc` removes it.
fn release(ctx: &Context, key: String, report: &mut Vec<Msg>) {
    let state = ctx.state_of(&key);
    let config = ctx.config_of(&state);
    let released = state.read(&key).map(|mut r| {
        r.kept_until = Some(state::now());
        state.write(&r)
    });
    let (Some(Ok(())), Some(pogo)) = (released, ctx.pogo_exe.clone()) else {
        report.push(Msg::Status(format!(
            "cannot release {key}: its record in {} cannot be changed",
            state.root.display()
        )));
        return;
    };
    let tx = ctx.tx.clone();
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
}

/// Stop the job's container, after noting who stops it.
fn stop(ctx: &Context, container: String, key: String) {
    let podman = ctx.podman.clone();
    let tx = ctx.tx.clone();
    // before the stop: the job's failure then says who stopped it, not "the machine"
    let who = ctx
        .env
        .get("USER")
        .filter(|u| !u.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("uid {}", nix::unistd::Uid::effective()));
    let noted = ctx.state_of(&key).note_stopped(&key, &who);
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
}

fn inspect(ctx: &Context, container: String) {
    let podman = ctx.podman.clone();
    let tx = ctx.tx.clone();
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
}

/// `xdg-open` the job's page; what happened, for the footer.
fn open_url(url: &str) -> String {
    match std::process::Command::new("xdg-open")
        .arg(url)
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
    }
}

/// A shell in the job's container, with its variables, where its project is.
fn shell(ctx: &Context, container: &str, key: &str, workdir: Option<&str>) -> Leave {
    let env_file = ctx.state_of(key).env_path(key);
    let mut args = ctx.podman.global_args.clone();
    args.extend(shell_args(
        container,
        env_file.is_file().then_some(env_file.as_path()),
        workdir,
    ));
    Leave {
        program: ctx.podman.bin.clone(),
        args,
        banner: format!(
            "pogo: shell in the job container {container}; `exit` returns to the dashboard"
        ),
    }
}

/// Register a runner as `pogo register` does, in a task (GitLab answers slowly).
fn register(
    ctx: &Context,
    url: String,
    token: crate::secret::Secret,
    name: String,
    ca_file: Option<PathBuf>,
) {
    let home = ctx.env.get("HOME").map(PathBuf::from).unwrap_or_default();
    let req = crate::setup::register::RegisterRequest {
        url,
        credential: crate::setup::register::Credential::RunnerToken(token),
        name,
        runner_config: ctx.runner_config.clone(),
        pogo_config: crate::setup::register::resolve_pogo_config(
            ctx.flag.as_deref(),
            None,
            &ctx.env,
            &home,
        ),
        pogo_binary: ctx
            .pogo_exe
            .clone()
            .unwrap_or_else(|| PathBuf::from("pogo")),
        replace: false,
        tls_ca_file: ca_file.map(|p| crate::fsutil::absolute(&p)),
        timeout: crate::setup::register::API_TIMEOUT,
    };
    let env = ctx.env.clone();
    let pogo = ctx.pogo_exe.clone();
    let tx = ctx.tx.clone();
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
}

/// Unregister a runner (GitLab first), in a task.
fn unregister(ctx: &Context, name: String) {
    let path = ctx.runner_config.clone();
    let pogo = ctx.pogo_exe.clone();
    let tx = ctx.tx.clone();
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
}

/// `systemctl --user start|stop gitlab-runner.service`, then its state again.
fn service(ctx: &Context, start: bool) {
    let verb = if start { "start" } else { "stop" };
    let tx = ctx.tx.clone();
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
}

/// A form's (or a delete's) edit saved; the file read back at once when it was.
fn save_config_effect(
    ctx: &Context,
    model: &Model,
    edit: &config::edit::Edit,
    base: &str,
    check_host: Option<&Path>,
    report: &mut Vec<Msg>,
) {
    let Some(path) = model.config.path.clone() else {
        report.push(Msg::ConfigSaved(Err(SaveProblem::Refused(
            "no config file to save to: set HOME or pass --config PATH".into(),
        ))));
        return;
    };
    let saved = save_config(&path, &ctx.env, edit, base, check_host);
    if saved.is_ok() {
        // read back now, so the watcher's event for our own write changes nothing
        let r = load_config(ctx.flag.as_deref(), &ctx.env);
        report.push(Msg::ConfigMissing(
            config::locate(ctx.flag.as_deref(), &ctx.env) == ConfigSource::Defaults,
        ));
        report.push(Msg::Config(r.map(Box::new)));
    }
    report.push(Msg::ConfigSaved(saved));
}

/// `$VISUAL` (or `$EDITOR`, or vi) on the config file.
fn edit_config(ctx: &Context, path: &Path) -> Leave {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|k| ctx.env.get(*k).filter(|v| !v.trim().is_empty()).cloned())
        .unwrap_or_else(|| "vi".to_string());
    Leave {
        program: "sh".to_string(),
        args: vec![
            "-c".to_string(),
            format!("{editor} \"$1\""),
            "sh".to_string(),
            path.display().to_string(),
        ],
        banner: format!("pogo: editing {}", path.display()),
    }
}

/// The config file pogo reads with these flags and environment; without one, `~/.pogo.yaml`,
/// which the first save (or `E`) creates and pogo then reads.
pub(super) fn config_path(flag: Option<&Path>, env: &HashMap<String, String>) -> Option<PathBuf> {
    match config::locate(flag, env) {
        ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Found(p) => Some(p),
        ConfigSource::Defaults => env
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(h).join(".pogo.yaml")),
    }
}

/// The config pogo reads now, with the text of its file.
pub(super) fn load_config(
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

/// The local zone's offset from UTC now, as `date +%z` says (`None` when it cannot).
pub(super) fn local_utc_offset() -> Option<i32> {
    std::process::Command::new("date")
        .arg("+%z")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| super::model::parse_utc_offset(&String::from_utf8_lossy(&o.stdout)))
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

/// Ask systemd whether gitlab-runner's user service runs; the answer goes to the Runners screen.
pub(super) async fn service_status(tx: UnboundedSender<Input>) {
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
pub(super) struct Leave {
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
    pub(super) fn run(self) {
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

impl Context {
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
    pub(super) fn all_states(&self) -> Vec<StateDir> {
        let mut all = vec![self.state.clone()];
        for s in self.others.values().flatten() {
            if !all.iter().any(|a| a.root == s.root) {
                all.push(s.clone());
            }
        }
        all
    }

    /// The state dir that has job `key`'s record (its log copy, env file, stop note).
    pub(super) fn state_of(&self, key: &str) -> StateDir {
        self.all_states()
            .into_iter()
            .find(|s| s.record_path(key).exists())
            .unwrap_or_else(|| self.state.clone())
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
mod tests;
