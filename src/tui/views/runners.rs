//! The Runners screen: gitlab-runner's runners (read-only), token masked, and whether each one
//! hands its jobs to pogo.

use super::Theme;
use crate::tui::model::{Model, RegisterForm};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// The runner list and the detail pane below it.
fn split(area: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Min(4), Constraint::Length(5)]).areas(area)
}

/// The runner (index in `m.runners.rows`) whose row is at screen line `y` of the Runners body
/// `area`, counting the rows the table scrolled past to show the selected one.
pub fn runner_at(m: &Model, area: Rect, y: u16) -> Option<usize> {
    let [list, _] = split(area);
    let visible = m.visible_runners();
    let selected = visible
        .iter()
        .position(|&i| i == m.runners.selected)
        .unwrap_or(0);
    visible
        .get(super::table_line_at(list, selected, y)?)
        .copied()
}

pub fn draw(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let r = &m.runners;
    let mut title = match &r.path {
        Some(p) => format!(" Runners · {} ", p.display()),
        None => " Runners ".to_string(),
    };
    let visible = m.visible_runners();
    if !m.filters.runners.is_empty() {
        title.push_str(&format!(
            "· filter: {} ({} of {}) ",
            m.filters.runners,
            visible.len(),
            r.rows.len()
        ));
    }
    if let Some(e) = &r.error {
        f.render_widget(
            Paragraph::new(vec![Line::from(""), Line::from(e.as_str())])
                .wrap(Wrap { trim: false })
                .block(Block::default().borders(Borders::ALL).title(title)),
            area,
        );
        return;
    }
    let [list, detail] = split(area);
    let header = Row::new(["NAME", "EXECUTOR", "POGO", "TOKEN", "URL"]).style(t.title());
    let rows: Vec<Row> = visible
        .iter()
        .map(|&i| (i, &r.rows[i]))
        .map(|(i, row)| {
            let pogo = if row.uses_pogo {
                Span::styled("yes", t.ok())
            } else {
                Span::styled("no", t.dim())
            };
            Row::new(vec![
                Cell::from(row.name.clone()),
                Cell::from(row.executor.clone()),
                Cell::from(pogo),
                Cell::from(row.token_masked.clone()),
                Cell::from(row.url.clone()),
            ])
            .style(if i == r.selected {
                t.selected()
            } else {
                Style::default()
            })
        })
        .collect();
    let widths = [
        Constraint::Min(10),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(18),
        Constraint::Fill(1),
    ];
    let body = if rows.is_empty() {
        let why = if r.rows.is_empty() {
            "no [[runners]] in this file"
        } else {
            "no runner matches the filter (/ then Esc clears it)"
        };
        Table::new(
            vec![Row::new(vec![Cell::from(Span::styled(why, t.dim()))])],
            [Constraint::Fill(1)],
        )
    } else {
        Table::new(rows, widths).header(header)
    };
    // stateful: with more runners than lines, the table scrolls to keep the selected one shown
    let selected = visible.iter().position(|&i| i == r.selected);
    let mut state = ratatui::widgets::TableState::default().with_selected(selected);
    f.render_stateful_widget(
        body.block(Block::default().borders(Borders::ALL).title(title)),
        list,
        &mut state,
    );
    let sel = m.selected_runner();
    let service = Line::from(vec![
        Span::styled("gitlab-runner service: ", t.title()),
        Span::raw(r.service.clone().unwrap_or_else(|| "…".to_string())),
        Span::styled("  (S start, T stop)", t.dim()),
    ]);
    let mut lines = match sel {
        Some(row) if row.uses_pogo => vec![
            Line::from(format!("{} runs its jobs with pogo", row.name)),
            Line::from(Span::styled(
                format!(
                    "pogo config: {}",
                    row.pogo_config
                        .as_deref()
                        .unwrap_or("(pogo's default lookup)")
                ),
                t.dim(),
            )),
        ],
        Some(row) => vec![Line::from(format!(
            "{} uses the {} executor, not pogo",
            row.name, row.executor
        ))],
        None if !r.rows.is_empty() => vec![Line::from(Span::styled(
            "No runner shown: / then Esc clears the filter.",
            t.dim(),
        ))],
        None => vec![Line::from(Span::styled(
            "No runner yet: press a to register one (as `pogo register` does).",
            t.dim(),
        ))],
    };
    lines.push(service);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" runner ")),
        detail,
    );
}

/// The register form, over the screen. The token shows as asterisks.
pub fn draw_form(f: &mut Frame, area: Rect, form: &RegisterForm, t: Theme) {
    let r = super::popup_fixed(area, 70, 9);
    f.render_widget(Clear, r);
    let token_shown = "*".repeat(form.token.expose().chars().count());
    // at their positions: RegisterForm::URL, TOKEN, NAME, CA_FILE
    let fields = [
        ("GitLab URL ", form.url.as_str()),
        ("token      ", token_shown.as_str()),
        ("name       ", form.name.as_str()),
        ("CA file    ", form.ca_file.as_str()),
    ];
    let mut lines: Vec<Line> = fields
        .iter()
        .enumerate()
        .map(|(i, (label, value))| {
            let focused = i == form.focus;
            let shown = if focused {
                crate::tui::textinput::show(value, form.cursor)
            } else {
                value.to_string()
            };
            Line::from(vec![
                Span::styled(*label, t.title()),
                Span::styled(
                    shown,
                    if focused {
                        t.selected()
                    } else {
                        Style::default()
                    },
                ),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    match &form.error {
        Some(e) => lines.push(Line::from(Span::styled(e.clone(), t.bad()))),
        None => lines.push(Line::from(Span::styled(
            "CA file: private CA only (PEM) · Enter there registers · Esc cancels",
            t.dim(),
        ))),
    }
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" register a runner (same as `pogo register`) "),
        ),
        r,
    );
}

#[cfg(test)]
mod tests {
    use crate::tui::model::Screen;
    use crate::tui::views::fixtures::{model, render};

    #[test]
    fn runners_with_masked_tokens_and_which_use_pogo() {
        let mut m = model();
        m.screen = Screen::Runners;
        let out = render(&m, 80, 24);
        insta::assert_snapshot!(out);
    }

    #[test]
    fn with_more_runners_than_lines_the_selected_one_is_shown_and_clickable() {
        use crate::tui::views::frame_layout;
        let mut m = model();
        m.screen = Screen::Runners;
        let template = m.runners.rows[1].clone();
        for n in 0..30 {
            let mut r = template.clone();
            r.name = format!("extra-{n:02}");
            m.runners.rows.push(r);
        }
        m.runners.selected = m.runners.rows.len() - 1;
        let screen = render(&m, 80, 24).to_string();
        assert!(screen.contains("extra-29"), "{screen}");
        let lines: Vec<&str> = screen.lines().collect();
        let [_, _, body, _] = frame_layout(&m, ratatui::layout::Rect::new(0, 0, 80, 24));
        let mut found = Vec::new();
        for y in body.y..body.y + body.height {
            if let Some(i) = super::runner_at(&m, body, y) {
                let name = &m.runners.rows[i].name;
                assert!(
                    lines[usize::from(y)].contains(&format!("│{name} ")),
                    "line {y} is {name} by runner_at:\n{screen}"
                );
                found.push(i);
            }
        }
        assert!(found.contains(&m.runners.selected), "{found:?}");
        assert!(!found.contains(&0), "scrolled past the first: {found:?}");
    }

    #[test]
    fn filtered_runners_show_the_filter_in_the_title() {
        let mut m = model();
        m.screen = Screen::Runners;
        m.filters.runners = "docker".into();
        m.keep_selection_visible();
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn the_register_form_hides_the_token() {
        use crate::secret::Secret;
        use crate::tui::model::{Mode, RegisterForm};
        let mut m = model();
        m.screen = Screen::Runners;
        m.runners.service = Some("active".into());
        m.mode = Mode::Register(RegisterForm {
            url: "https://gitlab.example.com".into(),
            token: Secret::new("glrt-verysecret"),
            name: "laptop".into(),
            ca_file: String::new(),
            focus: 1,
            // the cursor four characters before the end of the (hidden) token
            cursor: 4,
            error: None,
        });
        let out = render(&m, 80, 24);
        assert!(!format!("{out:?}").contains("verysecret"));
        insta::assert_snapshot!(out);
    }

    #[test]
    fn no_runner_config_says_how_to_register() {
        let mut m = model();
        m.screen = Screen::Runners;
        m.runners = crate::tui::runners::load(
            std::path::Path::new("/nonexistent/.gitlab-runner/config.toml"),
            None,
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }
}
