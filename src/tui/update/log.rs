//! The Jobs screen's log pane: its keys (scroll, follow, search hits, how lines show) and
//! typing a search.

use super::Effect;
use crate::tui::keys::Action;
use crate::tui::logview;
use crate::tui::model::{Mode, Model};
use crate::tui::views::jobs::log_height;
use crossterm::event::{KeyCode, KeyEvent};

/// PgUp/PgDn in the log: the pane's height less one line, kept on screen for context.
fn log_page(m: &Model) -> isize {
    log_height(m).saturating_sub(1).max(1) as isize
}

/// A log key (whichever pane is focused).
pub(super) fn action(m: &mut Model, a: Action, fx: &mut Vec<Effect>) {
    match a {
        Action::PageUp => m.log.scroll(-log_page(m), log_height(m)),
        Action::PageDown => m.log.scroll(log_page(m), log_height(m)),
        Action::Top => {
            m.log.follow = false;
            m.log.top = 0;
        }
        Action::Bottom => m.log.follow = true,
        Action::ToggleFollow => {
            if m.log.follow {
                m.log.top = m.log.first_visible(log_height(m));
            }
            m.log.follow = !m.log.follow;
        }
        Action::ToggleFilter => {
            if m.log.search().is_none() {
                m.status = Some("nothing to filter by: search with / first".to_string());
            } else {
                m.log.toggle_filter(log_height(m));
            }
        }
        Action::ToggleColours => m.log.plain = !m.log.plain,
        Action::ToggleWrap => m.log.wrap = !m.log.wrap,
        Action::SideLeft => m.log.scroll_sideways(-(logview::SIDE_STEP as isize)),
        Action::SideRight => {
            m.log.wrap = false;
            m.log.scroll_sideways(logview::SIDE_STEP as isize);
        }
        Action::ToggleTimes => {
            m.show_times = !m.show_times;
            // the offset read at start may be stale by now (daylight saving)
            if m.show_times {
                fx.push(Effect::ReadUtcOffset);
            }
        }
        Action::NextHit | Action::PrevHit => {
            if m.log.search().is_none() {
                m.status = Some("no search: press / first".to_string());
            } else if !m.log.find(a == Action::NextHit, log_height(m)) {
                m.status = Some("no match".to_string());
            }
        }
        // not a log key
        _ => {}
    }
}

/// Keys while typing a log search: Enter searches (and counts the matches in the lines the
/// pane dropped), Esc leaves it as it was.
pub(super) fn search_key(m: &mut Model, mut text: String, k: KeyEvent, fx: &mut Vec<Effect>) {
    match k.code {
        KeyCode::Esc => m.mode = Mode::Normal,
        KeyCode::Enter => {
            m.mode = Mode::Normal;
            m.log.set_search(Some(text));
            if !m.log.find(true, log_height(m)) && m.log.search().is_some() {
                m.status = Some("no match".to_string());
            }
            // the lines the pane no longer holds are searched in the file
            let earlier = (m.log.dropped > 0)
                .then(|| m.log.starts.first().copied())
                .flatten();
            if let (Some(upto), Some(key), Some(needle)) =
                (earlier, m.log.key.clone(), m.log.search())
            {
                fx.push(Effect::SearchEarlier {
                    key,
                    needle: needle.to_string(),
                    upto,
                });
            }
        }
        _ => {
            crate::tui::textinput::edit(&mut text, &mut m.cursor, &k);
            m.mode = Mode::Search(text);
        }
    }
}
