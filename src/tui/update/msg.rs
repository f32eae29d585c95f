//! The runtime's messages: podman's answers, the files read again, what an effect reports.
//! Each handler says whether the screen is to be drawn again.

use super::{select_log, Effect, Msg};
use crate::config::Config;
use crate::state::JobRecord;
use crate::tui::configform;
use crate::tui::configform::SaveProblem;
use crate::tui::model::{Banner, Mode, Model};
use crate::tui::runners::RunnersState;
use crate::tui::sources::{PsContainer, StatEntry};

/// Any message but a key or the mouse; whether to redraw.
pub(super) fn message(m: &mut Model, msg: Msg, fx: &mut Vec<Effect>) -> bool {
    match msg {
        // dispatched before this
        Msg::Key(_) | Msg::Mouse(_) => false,
        Msg::Redraw => true,
        Msg::ConfigMissing(missing) => {
            m.config.missing = missing;
            // the title that says so is drawn with the config read with it
            false
        }
        Msg::Resize(w, h) => {
            m.size = (w, h);
            true
        }
        Msg::Tick(now) => {
            let moved = m.now != now;
            m.now = now;
            moved && m.any_running()
        }
        Msg::Jobs {
            containers,
            records,
        } => jobs(m, containers, records, fx),
        Msg::OtherRunner(r) => {
            let changed = m.other_runner != r;
            m.other_runner = r;
            changed
        }
        Msg::UtcOffset(o) => {
            let shown = m.utc_offset != o && m.show_times;
            m.utc_offset = o;
            shown
        }
        Msg::Stats(s) => stats(m, s),
        Msg::PodmanFailed(e) => {
            m.podman_error = Some(Banner { text: e });
            true
        }
        Msg::Log {
            key,
            start,
            data,
            reset,
        } => {
            let shown = m.log.key.as_deref() == Some(key.as_str());
            if shown {
                if reset {
                    m.log.reset(Some(key));
                }
                m.log.append(start, &data);
            }
            shown
        }
        Msg::EarlierMatches { key, needle, count } => {
            let current = m.log.key.as_deref() == Some(key.as_str())
                && m.log.search() == Some(needle.as_str());
            if current {
                m.log.earlier_matches = Some(count);
            }
            current
        }
        Msg::LogTimes { key, start, data } => {
            let shown = m.log.key.as_deref() == Some(key.as_str());
            if shown {
                m.log.append_times(start, &data);
            }
            shown && m.show_times
        }
        Msg::Config(r) => config(m, r),
        Msg::Runners(r) => runners(m, r),
        Msg::Inspected { title, text } => inspected(m, title, text),
        Msg::Status(s) => {
            m.status = Some(s);
            true
        }
        Msg::RegisterFailed(why) => {
            // the form comes back as typed, unless another prompt is open meanwhile
            match m.registering.take() {
                Some(mut f) if matches!(m.mode, Mode::Normal) => {
                    f.error = Some(why.clone());
                    m.mode = Mode::Register(f);
                }
                _ => {}
            }
            m.status = Some(why);
            true
        }
        Msg::Service(s) => {
            m.runners.service = Some(s);
            true
        }
        Msg::ConfigSaved(r) => {
            config_saved(m, r);
            true
        }
    }
}

/// Fresh `podman ps` and records: the job list again, the selection kept.
fn jobs(
    m: &mut Model,
    containers: Result<Vec<PsContainer>, String>,
    records: Vec<JobRecord>,
    fx: &mut Vec<Effect>,
) -> bool {
    let before = m.selected_job().map(|j| j.key.clone());
    match containers {
        Ok(c) => {
            m.containers = c;
            m.podman_error = None;
            m.podman_seen = true;
        }
        Err(e) => m.podman_error = Some(Banner { text: e }),
    }
    m.records = records;
    m.rebuild_jobs();
    select_log(m, before, fx);
    if m.jobs.is_empty() {
        fx.push(Effect::FindOtherRunner);
    }
    true
}

fn stats(m: &mut Model, s: Vec<StatEntry>) -> bool {
    // podman streams every running container's numbers: keep pogo's
    let ours: std::collections::HashSet<&str> = m.containers.iter().map(|c| c.name()).collect();
    let sample = s
        .into_iter()
        .filter(|e| ours.contains(e.name.as_str()))
        .collect();
    m.add_stats(sample);
    true
}

fn config(m: &mut Model, r: Result<Box<(Config, String)>, String>) -> bool {
    match r {
        Ok(b) => {
            let (c, text) = *b;
            let path = m.config.path.clone().unwrap_or_default();
            m.config.raw = crate::config::parse(&text, &path).ok();
            m.config.good = Some(c);
            m.config.text = Some(text);
            m.config.error = None;
            let n = m
                .config
                .raw
                .as_ref()
                .map_or(0, |r| configform::rows(r).len());
            m.config.selected = m.config.selected.min(n.saturating_sub(1));
            m.keep_selection_visible();
        }
        Err(e) => m.config.error = Some(e),
    }
    true
}

fn runners(m: &mut Model, r: RunnersState) -> bool {
    let sel = m.runners.selected;
    let service = m.runners.service.take();
    m.runners = r;
    m.runners.service = m.runners.service.take().or(service);
    m.runners.selected = sel.min(m.runners.rows.len().saturating_sub(1));
    m.keep_selection_visible();
    true
}

fn inspected(m: &mut Model, title: String, text: String) -> bool {
    // A slow `podman inspect` must not replace a form or question opened meanwhile.
    if matches!(m.mode, Mode::Normal | Mode::Inspect { .. }) {
        m.mode = Mode::Inspect {
            title,
            text,
            scroll: 0,
        };
    } else {
        m.status = Some(format!(
            "podman inspect of {title} came back while a form was open: press i again to see it"
        ));
    }
    true
}

fn config_saved(m: &mut Model, r: Result<String, SaveProblem>) {
    match (r, &mut m.mode) {
        (Ok(done), _) => {
            if matches!(m.mode, Mode::ConfigForm(_)) {
                m.mode = Mode::Normal;
            }
            m.status = Some(done);
        }
        (Err(SaveProblem::Warning(w)), Mode::ConfigForm(f)) => {
            f.saving = false;
            f.warning = Some(w);
        }
        (Err(SaveProblem::Refused(e)), Mode::ConfigForm(f)) => {
            f.saving = false;
            f.error = Some(e);
        }
        (Err(SaveProblem::Warning(e) | SaveProblem::Refused(e)), _) => {
            m.status = Some(format!("not saved: {e}"));
        }
    }
}
