//! `update`: the only place the model changes. Pure: a message in, the model changed, and the
//! side effects to run (podman calls, leaving the terminal for a shell or an editor) out.
//!
//! A short dispatcher: the runtime's messages go to [`msg`], the mouse to [`mouse`], keys by the
//! mode they arrive in (a popup, a form, a text being typed) and, in normal mode, by the scope
//! the key table ([`super::keys`]) gives their binding: the global keys here, each screen's in
//! its own file ([`jobs`] with the log pane's keys in [`log`], [`config`], [`runners`]), the
//! forms and the list filter in [`forms`]. Handlers push the effects they ask for into one list;
//! whether the screen is drawn again is set here, once per message.

mod config;
mod forms;
mod jobs;
mod log;
mod mouse;
mod msg;
mod runners;
#[cfg(test)]
mod tests;

use super::configform::SaveProblem;
use super::keys::{binding_for, Action, Scope};
use super::model::{Focus, Mode, Model, Screen};
use super::runners::RunnersState;
use super::sources::{PsContainer, StatEntry};
use super::views::jobs::log_height;
use crate::config::Config;
use crate::state::JobRecord;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent};

/// Lines a page scroll of the inspect popup moves.
pub const PAGE: usize = 20;

#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    /// A second passed (elapsed times move).
    Tick(u64),
    /// Fresh `podman ps` result and state records.
    Jobs {
        containers: Result<Vec<PsContainer>, String>,
        records: Vec<JobRecord>,
    },
    Stats(Vec<StatEntry>),
    /// The podman event stream ended or failed.
    PodmanFailed(String),
    /// Bytes appended to the selected job's log copy, from file position `start` (`reset`: the
    /// file was read from the start again).
    Log {
        key: String,
        start: u64,
        data: Vec<u8>,
        reset: bool,
    },
    /// How many of the lines the log pane dropped (log `key`) match `needle`.
    EarlierMatches {
        key: String,
        needle: String,
        count: usize,
    },
    /// Bytes appended to the selected job's `.times` file, from file position `start`.
    LogTimes {
        key: String,
        start: u64,
        data: Vec<u8>,
    },
    /// The config file was read again: the new config with its text, or why it is invalid.
    Config(Result<Box<(Config, String)>, String>),
    /// Whether pogo finds no config file (it runs on built-in defaults; the first save
    /// creates `~/.pogo.yaml`). Comes before the [`Msg::Config`] of the same read.
    ConfigMissing(bool),
    Runners(RunnersState),
    /// `podman inspect` answered.
    Inspected {
        title: String,
        text: String,
    },
    /// An action finished; a line for the footer.
    Status(String),
    /// GitLab (or config.toml) refused the registration: why, for the form it reopens.
    RegisterFailed(String),
    /// `systemctl --user is-active gitlab-runner.service` answered.
    Service(String),
    /// A form's or a delete's save finished: what was saved, or why not.
    ConfigSaved(Result<String, SaveProblem>),
    /// Whether gitlab-runner runs as another user (looked for while no job is listed).
    OtherRunner(Option<super::procs::OtherRunner>),
    /// The local zone's offset from UTC now, in seconds east (it changes with daylight saving).
    UtcOffset(i32),
    /// The terminal is the dashboard's again (after a shell or an editor): draw it all.
    Redraw,
}

/// Work for the runtime; it reports back with messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    RefreshJobs,
    /// Look for a gitlab-runner of another user (`/proc`); answers with [`Msg::OtherRunner`].
    FindOtherRunner,
    /// Read the selected job's log from its start (another job was selected).
    ReloadLog,
    /// Count the matches of `needle` in the first `upto` bytes of log `key` (the lines the
    /// pane dropped).
    SearchEarlier {
        key: String,
        needle: String,
        upto: u64,
    },
    /// Find the local zone's offset from UTC again; answers with [`Msg::UtcOffset`].
    ReadUtcOffset,
    ReloadConfig,
    ReloadRunners,
    /// Leave the TUI for `podman exec -it CONTAINER bash` (or `sh`), then come back: in the
    /// job's `CI_PROJECT_DIR` (`workdir`), with its `CI_*` variables (the job `key`'s env file).
    Shell {
        container: String,
        key: String,
        workdir: Option<String>,
    },
    /// End the keeping of a job kept by `keep_failed` now, and let `pogo gc` remove it.
    Release {
        key: String,
    },
    /// Stop the job's container, after noting who stops it (the job's failure says so).
    Stop {
        container: String,
        key: String,
    },
    Inspect(String),
    /// Save the log of job `key` (id for the file name); with timestamps (at this offset,
    /// seconds east of UTC) when they are shown.
    SaveLog {
        key: String,
        id: String,
        times: Option<i32>,
    },
    EditConfig(std::path::PathBuf),
    OpenUrl(String),
    /// Register a runner through `setup::register` (asks GitLab, then edits config.toml).
    Register {
        url: String,
        token: crate::secret::Secret,
        name: String,
        /// The private CA's PEM file (`--tls-ca-file`), if given.
        ca_file: Option<std::path::PathBuf>,
    },
    /// Remove a runner through `setup::register::unregister` (tells GitLab first).
    Unregister(String),
    /// `systemctl --user start|stop gitlab-runner.service`.
    Service {
        start: bool,
    },
    /// Apply `edit` to the config file, if it still reads `base`, and write it atomically;
    /// first check that `check_host` exists (a mount's host directory), when given.
    SaveConfig {
        edit: crate::config::edit::Edit,
        base: String,
        check_host: Option<std::path::PathBuf>,
    },
}

/// A message in: the model changed, and the effects to run out.
pub fn update(m: &mut Model, msg: Msg) -> Vec<Effect> {
    let mut fx = Vec::new();
    let redraw = match msg {
        Msg::Key(k) if k.kind == KeyEventKind::Release => false,
        Msg::Key(k) => {
            key(m, k, &mut fx);
            true
        }
        Msg::Mouse(e) => mouse::mouse(m, e, &mut fx),
        other => msg::message(m, other, &mut fx),
    };
    // the one place that asks for a redraw (the runtime clears the flag once it has drawn)
    if redraw {
        m.dirty = true;
    }
    fx
}

/// A key, by the mode it arrives in.
fn key(m: &mut Model, k: KeyEvent, fx: &mut Vec<Effect>) {
    m.status = None;
    // Ctrl-C quits from anywhere, as the help says: in a text field too (it never types a `c`).
    if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
        m.quit = true;
        return;
    }
    let yes = matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y'));
    match m.mode.clone() {
        Mode::Normal => normal(m, k, fx),
        Mode::Help => {
            // Any key closes the help; q still quits from there.
            m.mode = Mode::Normal;
            if k.code == KeyCode::Char('q') {
                m.quit = true;
            }
        }
        Mode::Inspect {
            title,
            text,
            scroll,
        } => inspect_key(m, title, text, scroll, k),
        Mode::Search(text) => log::search_key(m, text, k, fx),
        Mode::Filter => forms::filter_key(m, k, fx),
        Mode::Register(f) => forms::register_key(m, f, k, fx),
        Mode::ConfigForm(f) => forms::config_form_key(m, f, k, fx),
        Mode::PreviewInput(field) => config::preview_key(m, field, k),
        Mode::ConfirmDelete { what, edit, base } => {
            config::confirm_delete(m, what, edit, base, yes, fx);
        }
        Mode::ConfirmUnregister(name) => runners::confirm_unregister(m, name, yes, fx),
        Mode::ConfirmServiceStop => runners::confirm_service_stop(m, yes, fx),
        Mode::ConfirmRelease { job, key } => jobs::confirm_release(m, job, key, yes, fx),
        Mode::ConfirmStop {
            container,
            job,
            key,
        } => jobs::confirm_stop(m, container, job, key, yes, fx),
    }
}

/// Keys in the `i` popup: ↑/↓ (j/k) and PgUp/PgDn scroll it, any other key closes it.
fn inspect_key(m: &mut Model, title: String, text: String, scroll: u16, k: KeyEvent) {
    let scroll = match k.code {
        KeyCode::Down | KeyCode::Char('j') => scroll.saturating_add(1),
        KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
        KeyCode::PageDown => scroll.saturating_add(PAGE as u16),
        KeyCode::PageUp => scroll.saturating_sub(PAGE as u16),
        _ => {
            m.mode = Mode::Normal;
            return;
        }
    };
    m.mode = Mode::Inspect {
        title,
        text,
        scroll,
    };
}

/// A key in normal mode: to the handler of its binding's scope.
fn normal(m: &mut Model, k: KeyEvent, fx: &mut Vec<Effect>) {
    // whatever field this key opens, typing starts at its end
    m.cursor = 0;
    let Some(b) = binding_for(&k, m.screen) else {
        return;
    };
    match b.scope {
        Scope::Global => global(m, b.action, fx),
        Scope::On(Screen::Jobs) => jobs::action(m, b.action, fx),
        Scope::On(Screen::Config) => config::action(m, b.action, fx),
        Scope::On(Screen::Runners) => runners::action(m, b.action, fx),
    }
}

/// The keys of every screen.
fn global(m: &mut Model, a: Action, fx: &mut Vec<Effect>) {
    match a {
        Action::Quit => m.quit = true,
        Action::Back => back(m, fx),
        Action::Help => m.mode = Mode::Help,
        Action::NextScreen => {
            m.screen = Screen::ALL[(m.screen.index() + 1) % Screen::ALL.len()];
        }
        Action::PrevScreen => {
            let n = Screen::ALL.len();
            m.screen = Screen::ALL[(m.screen.index() + n - 1) % n];
        }
        Action::GoTo(s) => m.screen = s,
        Action::Up => up_down(m, -1, fx),
        Action::Down => up_down(m, 1, fx),
        Action::Reload => fx.extend([
            Effect::RefreshJobs,
            Effect::ReloadConfig,
            Effect::ReloadRunners,
        ]),
        // bound on one screen only (keys.rs): handled there
        _ => {}
    }
}

/// Esc: the log back to the job list, else a kept filter cleared; never quits.
fn back(m: &mut Model, fx: &mut Vec<Effect>) {
    if m.screen == Screen::Jobs && m.focus == Focus::Log {
        m.focus = Focus::List;
        return;
    }
    match m.filters.of_mut(m.screen).filter(|f| !f.is_empty()) {
        Some(f) => {
            f.clear();
            filter_changed(m, fx);
        }
        // Esc never quits: it was the commonest accidental quit (q quits)
        None => m.status = Some("nothing to back out of; q quits".to_string()),
    }
}

/// When the selected job changed, the log pane shows the new one's log.
fn select_log(m: &mut Model, before: Option<String>, fx: &mut Vec<Effect>) {
    let now = m.log_source();
    if now != before || m.log.key != now {
        m.log.reset(now.clone());
        if now.is_some() {
            fx.push(Effect::ReloadLog);
        }
    }
}

/// Move the selection by `delta` rows among the rows the filter shows.
fn move_selection(m: &mut Model, delta: isize, fx: &mut Vec<Effect>) {
    let step = |visible: Vec<usize>, current: usize| -> Option<usize> {
        let last = visible.len().checked_sub(1)?;
        let at = visible.iter().position(|&i| i == current).unwrap_or(0);
        visible
            .get(at.saturating_add_signed(delta).min(last))
            .copied()
    };
    match m.screen {
        Screen::Jobs => {
            let rows = m.shown_rows();
            let before = m.log_source();
            let Some(last) = rows.len().checked_sub(1) else {
                return;
            };
            let at = rows
                .iter()
                .position(|&r| r == (m.selected, m.service))
                .unwrap_or(0);
            (m.selected, m.service) = rows[at.saturating_add_signed(delta).min(last)];
            select_log(m, before, fx);
        }
        Screen::Runners => {
            if let Some(i) = step(m.visible_runners(), m.runners.selected) {
                m.runners.selected = i;
            }
        }
        Screen::Config => {
            if let Some(i) = step(m.visible_config_rows(), m.config.selected) {
                m.config.selected = i;
            }
        }
    }
}

/// ↑/↓: on Jobs with the log focused they scroll the log a line, elsewhere they move the
/// selection.
fn up_down(m: &mut Model, delta: isize, fx: &mut Vec<Effect>) {
    if m.screen == Screen::Jobs && m.focus == Focus::Log {
        m.log.scroll(delta, log_height(m));
        return;
    }
    move_selection(m, delta, fx);
}

/// The current screen's filter changed: keep the selection on a shown row.
fn filter_changed(m: &mut Model, fx: &mut Vec<Effect>) {
    let before = m.log.key.clone();
    m.keep_selection_visible();
    if m.screen == Screen::Jobs {
        select_log(m, before, fx);
    }
}
