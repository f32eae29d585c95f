//! The Jobs screen's keys (its log pane's are in [`super::log`]): the job list, and what acts on
//! the selected job or service (shell, stop, inspect, save, open), with the questions asked first.

use super::{log, move_selection, Effect};
use crate::tui::keys::Action;
use crate::tui::model::{Focus, JobRow, Mode, Model, Screen, ServiceRow};

/// An action bound on Jobs.
pub(super) fn action(m: &mut Model, a: Action, fx: &mut Vec<Effect>) {
    let job = m.selected_job().cloned();
    if let Some(s) = m.selected_service().cloned() {
        if service_action(m, a, s, fx) {
            return;
        }
    }
    match a {
        Action::FocusLog => match job {
            Some(_) => m.focus = Focus::Log,
            None => no_job(m),
        },
        Action::FocusList => m.focus = Focus::List,
        Action::PaneUp | Action::PaneDown | Action::PaneTop | Action::PaneBottom => {
            pane_key(m, a, fx);
        }
        Action::NextSort => {
            m.sort = m.sort.next();
            m.rebuild_jobs();
        }
        Action::Search if m.focus == Focus::Log => m.mode = Mode::Search(String::new()),
        Action::Search => m.mode = Mode::Filter,
        Action::SaveLog => match job {
            Some(j) => fx.push(Effect::SaveLog {
                key: j.key,
                id: j.id,
                times: m.show_times.then_some(m.utc_offset),
            }),
            None => no_job(m),
        },
        Action::Shell => shell(m, job, fx),
        Action::Stop => stop(m, job),
        Action::Inspect => match job.and_then(|j| j.container) {
            Some(c) => fx.push(Effect::Inspect(c)),
            None => {
                m.status = Some("the job's container is gone: nothing to inspect".to_string());
            }
        },
        Action::OpenUrl => match job.map(|j| j.url).filter(|u| !u.is_empty()) {
            Some(u) => {
                let runners: Vec<&str> = m.runners.rows.iter().map(|r| r.url.as_str()).collect();
                match crate::tui::model::openable_url(&u, &runners) {
                    Ok(u) => fx.push(Effect::OpenUrl(u)),
                    Err(why) => m.status = Some(why),
                }
            }
            None => m.status = Some("this job has no URL".to_string()),
        },
        Action::PageUp
        | Action::PageDown
        | Action::Top
        | Action::Bottom
        | Action::ToggleFollow
        | Action::ToggleFilter
        | Action::ToggleWrap
        | Action::ToggleColours
        | Action::SideLeft
        | Action::SideRight
        | Action::ToggleTimes
        | Action::NextHit
        | Action::PrevHit => log::action(m, a, fx),
        // bound elsewhere (keys.rs)
        _ => {}
    }
}

/// What a key does on a selected service row; whether it did something (no: what it does on
/// the job's row).
fn service_action(m: &mut Model, a: Action, s: ServiceRow, fx: &mut Vec<Effect>) -> bool {
    let running = s.state == "running";
    match a {
        Action::Shell if running => {
            let Some(job) = m.selected_job() else {
                return false;
            };
            fx.push(Effect::Shell {
                container: s.container,
                key: job.key.clone(),
                workdir: None,
            });
        }
        Action::Shell => {
            m.status = Some(format!("service {} is not running: no shell", s.name));
        }
        Action::Inspect => fx.push(Effect::Inspect(s.container)),
        Action::Stop | Action::SaveLog => {
            m.status = Some(format!(
                "on the job's row: {} acts on jobs (a service's log: podman logs {})",
                if a == Action::Stop { "x" } else { "s" },
                s.container
            ));
        }
        _ => return false,
    }
    true
}

/// `e`: a shell in the job's container. A kept failed job's container runs on: a shell there
/// is what it is kept for.
fn shell(m: &mut Model, job: Option<JobRow>, fx: &mut Vec<Effect>) {
    match job {
        Some(j) if j.running || j.container_running => match j.container {
            Some(container) => fx.push(Effect::Shell {
                container,
                key: j.key,
                workdir: j.project_dir,
            }),
            None => no_job(m),
        },
        Some(j) => {
            m.status = Some(format!(
                "job {} is not running: no container to open a shell in",
                j.id
            ));
        }
        None => no_job(m),
    }
}

/// `x`: asks before stopping a running job, or before releasing a kept one.
fn stop(m: &mut Model, job: Option<JobRow>) {
    match job {
        Some(j) if j.running => match j.container {
            Some(container) => {
                m.mode = Mode::ConfirmStop {
                    container,
                    job: j.id,
                    key: j.key,
                };
            }
            None => no_job(m),
        },
        Some(j) if j.kept_until.is_some() && j.container.is_some() => {
            m.mode = Mode::ConfirmRelease {
                job: j.id,
                key: j.key,
            };
        }
        Some(j) => m.status = Some(format!("job {} is not running", j.id)),
        None => no_job(m),
    }
}

/// The answer to "stop this job?" (the mode is normal again).
pub(super) fn confirm_stop(
    m: &mut Model,
    container: String,
    job: String,
    key: String,
    yes: bool,
    fx: &mut Vec<Effect>,
) {
    m.mode = Mode::Normal;
    if yes {
        m.status = Some(format!("stopping job {job} ({container})…"));
        fx.push(Effect::Stop { container, key });
        return;
    }
    m.status = Some("not stopped".to_string());
}

/// The answer to "release this kept job's containers?".
pub(super) fn confirm_release(
    m: &mut Model,
    job: String,
    key: String,
    yes: bool,
    fx: &mut Vec<Effect>,
) {
    m.mode = Mode::Normal;
    if yes {
        m.status = Some(format!("releasing job {job}'s kept containers…"));
        fx.push(Effect::Release { key });
        return;
    }
    m.status = Some("still kept".to_string());
}

/// PgUp/PgDn/Home/End: on Jobs with the log focused they page and jump in the log (as u, d,
/// g, G do anywhere), elsewhere they move the selection a page or to the first or last row.
fn pane_key(m: &mut Model, a: Action, fx: &mut Vec<Effect>) {
    if m.screen == Screen::Jobs && m.focus == Focus::Log {
        let log = match a {
            Action::PaneUp => Action::PageUp,
            Action::PaneDown => Action::PageDown,
            Action::PaneTop => Action::Top,
            _ => Action::Bottom,
        };
        log::action(m, log, fx);
        return;
    }
    let page = isize::try_from(crate::tui::views::jobs::list_height(m))
        .unwrap_or(1)
        .max(1);
    let delta = match a {
        Action::PaneUp => -page,
        Action::PaneDown => page,
        Action::PaneTop => isize::MIN / 2,
        _ => isize::MAX / 2,
    };
    move_selection(m, delta, fx);
}

fn no_job(m: &mut Model) {
    m.status = Some("no job selected".to_string());
}
