//! The `?` overlay, generated from the key map so it can never disagree with the keys.

use super::{popup, Theme};
use crate::tui::keys::{help_for, Scope};
use crate::tui::model::Model;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let mut lines = Vec::new();
    let mut last_scope = None;
    // neighbours with the same text share a line (`PgUp PgDn  page up/down`)
    let mut rows: Vec<(Scope, String, &str)> = Vec::new();
    for b in help_for(m.screen) {
        match rows.last_mut() {
            Some((scope, label, help)) if *scope == b.scope && *help == b.help => {
                label.push(' ');
                label.push_str(b.label);
            }
            _ => rows.push((b.scope, b.label.to_string(), b.help)),
        }
    }
    for (scope, label, help) in rows {
        if last_scope != Some(scope) {
            let heading = match scope {
                Scope::Global => "everywhere".to_string(),
                Scope::On(s) => format!("on {}", s.title()),
            };
            lines.push(Line::from(Span::styled(heading, t.title())));
            last_scope = Some(scope);
        }
        lines.push(Line::from(vec![
            Span::styled(format!(" {label:<9} "), t.key()),
            Span::raw(help),
        ]));
    }
    let r = popup(area, 96, 96);
    f.render_widget(Clear, r);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys · any key closes ");
    let inner = block.inner(r);
    f.render_widget(block, r);
    // Two columns when one does not fit (80×24).
    if lines.len() > usize::from(inner.height) {
        let half = lines.len().div_ceil(2);
        let right = lines.split_off(half);
        let [a, b] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(inner);
        f.render_widget(Paragraph::new(lines), a);
        f.render_widget(Paragraph::new(right), b);
    } else {
        f.render_widget(Paragraph::new(lines), inner);
    }
}

#[cfg(test)]
mod tests {
    use crate::tui::model::Mode;
    use crate::tui::views::fixtures::{model, render};

    #[test]
    fn help_lists_every_key_of_the_jobs_screen() {
        let mut m = model();
        m.mode = Mode::Help;
        insta::assert_snapshot!(render(&m, 80, 40));
    }

    #[test]
    fn help_fits_80x24_in_two_columns() {
        let mut m = model();
        m.mode = Mode::Help;
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn every_keys_help_is_shown_whole_at_80x24_on_every_screen() {
        use crate::tui::keys::help_for;
        use crate::tui::model::Screen;
        for screen in Screen::ALL {
            let mut m = model();
            m.screen = screen;
            m.mode = Mode::Help;
            let out = render(&m, 80, 24);
            let text: String = out
                .buffer()
                .content()
                .chunks(80)
                .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
                .collect();
            for b in help_for(screen) {
                assert!(
                    text.contains(b.help),
                    "{screen:?}: '{}' is cut or missing:\n{text}",
                    b.help
                );
            }
        }
    }
}
