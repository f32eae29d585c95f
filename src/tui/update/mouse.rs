//! The mouse: the wheel scrolls, a click selects (and on Jobs focuses the pane it lands in).

use super::{move_selection, select_log, Effect};
use crate::tui::model::{Focus, Mode, Model, Screen};
use crate::tui::views::{self, jobs::log_height};
use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};

/// Wheel: scroll the log (Jobs), the settings (Config), the selection (Runners). Click: select
/// the job or runner under the pointer; on Jobs a click also focuses the pane it lands in. Only
/// in normal mode. Whether to redraw.
pub(super) fn mouse(m: &mut Model, e: MouseEvent, fx: &mut Vec<Effect>) -> bool {
    if m.mode != Mode::Normal {
        return false;
    }
    let area = ratatui::layout::Rect::new(0, 0, m.size.0, m.size.1);
    let [_, _, body, _] = views::frame_layout(m, area);
    match (e.kind, m.screen) {
        (MouseEventKind::ScrollDown, Screen::Jobs) => m.log.scroll(3, log_height(m)),
        (MouseEventKind::ScrollUp, Screen::Jobs) => m.log.scroll(-3, log_height(m)),
        (MouseEventKind::ScrollDown, _) => move_selection(m, 1, fx),
        (MouseEventKind::ScrollUp, _) => move_selection(m, -1, fx),
        (MouseEventKind::Down(MouseButton::Left), Screen::Jobs) => {
            if views::jobs::in_log(m, body, e.row) {
                m.focus = Focus::Log;
            } else if views::jobs::in_list(m, body, e.row) {
                m.focus = Focus::List;
                match views::jobs::job_at(m, body, e.row) {
                    Some(i) if i != m.selected || m.service.is_some() => {
                        let before = m.log_source();
                        (m.selected, m.service) = (i, None);
                        select_log(m, before, fx);
                    }
                    _ => {}
                }
            }
        }
        (MouseEventKind::Down(MouseButton::Left), Screen::Runners) => {
            if let Some(i) = views::runners::runner_at(m, body, e.row) {
                m.runners.selected = i;
            }
        }
        (MouseEventKind::Down(MouseButton::Left), Screen::Config) => {
            if let Some(i) = views::config::row_at(m, body, e.row) {
                m.config.selected = i;
            }
        }
        _ => return false,
    }
    true
}
