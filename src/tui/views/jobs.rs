//! The Jobs screen: one row per job (services nested), and the selected job's live log.

use super::Theme;
use crate::state::Outcome;
use crate::tui::logview;
use crate::tui::model::{clock, day, format_elapsed, Focus, JobRow, Model};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    if m.jobs.is_empty() {
        draw_empty(f, area, m, t);
        return;
    }
    let [table, log] = split(m, area);
    draw_table(f, table, m, t);
    draw_log(f, log, m, t);
}

/// A pane's frame: the focused one drawn thick (and in the title colour).
pub fn pane(title: String, focused: bool, t: Theme) -> Block<'static> {
    let b = Block::default().borders(Borders::ALL).title(title);
    if focused {
        b.border_type(BorderType::Thick).border_style(t.title())
    } else {
        b
    }
}

/// Screen lines each shown job takes (its row and its services').
fn shown_heights(m: &Model) -> Vec<(usize, u16)> {
    m.visible_jobs()
        .into_iter()
        .map(|i| (i, 1 + m.jobs[i].services.len() as u16))
        .collect()
}

/// The job table and the log pane.
pub fn split(m: &Model, area: Rect) -> [Rect; 2] {
    let rows_needed: u16 = shown_heights(m).iter().map(|(_, h)| h).sum::<u16>().max(1) + 3;
    let table_h = rows_needed.min(area.height / 2).max(4);
    Layout::vertical([Constraint::Length(table_h), Constraint::Min(3)]).areas(area)
}

/// How many log lines the log pane shows at the model's terminal size: what scrolling, `f` and
/// search steps are measured against.
pub fn log_height(m: &Model) -> usize {
    let area = Rect::new(0, 0, m.size.0, m.size.1);
    let [_, _, body, _] = super::frame_layout(m, area);
    let [_, log] = split(m, body);
    usize::from(log.height.saturating_sub(2)).max(1)
}

/// The rows a page of a list moves: the job list's height on Jobs (less its header and
/// borders), the body's elsewhere.
pub fn list_height(m: &Model) -> usize {
    let area = Rect::new(0, 0, m.size.0, m.size.1);
    let [_, _, body, _] = super::frame_layout(m, area);
    let height = if m.screen == crate::tui::model::Screen::Jobs {
        let [table, _] = split(m, body);
        table.height
    } else {
        body.height
    };
    usize::from(height.saturating_sub(3)).max(1)
}

/// The job (index in `m.jobs`) whose row or service row is at screen line `y` of the Jobs
/// body `area`.
pub fn job_at(m: &Model, area: Rect, y: u16) -> Option<usize> {
    let [table, _] = split(m, area);
    let heights = shown_heights(m);
    let selected_line: u16 = heights
        .iter()
        .take_while(|&&(i, _)| i != m.selected)
        .map(|(_, h)| h)
        .sum::<u16>()
        + m.service.map_or(0, |s| s as u16 + 1);
    let at = super::table_line_at(table, usize::from(selected_line), y)?;
    let mut line = 0;
    for (i, h) in heights {
        line += usize::from(h);
        if at < line {
            return Some(i);
        }
    }
    None
}

/// Whether screen line `y` is in the job list pane.
pub fn in_list(m: &Model, area: Rect, y: u16) -> bool {
    let [table, _] = split(m, area);
    !m.jobs.is_empty() && y >= table.y && y < table.y + table.height
}

/// Whether screen line `y` is in the log pane.
pub fn in_log(m: &Model, area: Rect, y: u16) -> bool {
    let [_, log] = split(m, area);
    !m.jobs.is_empty() && y >= log.y && y < log.y + log.height
}

/// ` Jobs ` or ` Jobs · filter: app (2 of 5) `.
fn list_title(m: &Model) -> String {
    let q = &m.filters.jobs;
    let sort = if m.sort == crate::tui::model::JobSort::Started {
        String::new()
    } else {
        format!(" · sorted by {}", m.sort.label())
    };
    if q.is_empty() {
        return format!(" Jobs{sort} ");
    }
    let shown = m.visible_jobs().len();
    format!(" Jobs · filter: {q} ({shown} of {}){sort} ", m.jobs.len())
}

fn draw_empty(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let mut lines = vec![
        Line::from(""),
        Line::from(Span::styled("No jobs.", t.title())),
        Line::from(""),
        Line::from(
            "Jobs appear here as soon as gitlab-runner (or `pogo exec`) runs them through pogo.",
        ),
    ];
    // Only when it is so: gitlab-runner runs, as someone else.
    if let Some(o) = &m.other_runner {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!(
                "gitlab-runner runs as user {} (uid {}): its jobs are in that user's rootless \
                 podman, not yours. Run the dashboard as that user:",
                o.user, o.uid
            ),
            t.warn(),
        )));
        lines.push(Line::from(Span::styled(
            format!("sudo -iu {} pogo tui", o.user),
            t.key(),
        )));
    }
    if !m.podman_seen && m.podman_error.is_none() {
        lines.insert(1, Line::from(Span::styled("asking podman…", t.dim())));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(" Jobs ")),
        area,
    );
}

fn elapsed(j: &JobRow, now: u64) -> String {
    if j.started == 0 {
        return "-".to_string();
    }
    let end = j.ended.unwrap_or(now);
    format_elapsed(end.saturating_sub(j.started))
}

/// The STATE cell: a failed job's containers that `keep_failed` keeps say until when
/// (`e` and `i` work on them meanwhile).
fn state_text(j: &JobRow, m: &Model) -> String {
    match j.kept_until {
        Some(until) if until > m.now => {
            format!("kept to {}", &clock(until * 1000, m.utc_offset)[..5])
        }
        _ => j.state.clone(),
    }
}

fn state_style(j: &JobRow, t: Theme) -> Style {
    match j.outcome {
        Some(Outcome::Success) => t.ok(),
        Some(Outcome::Failed) => t.bad(),
        Some(Outcome::Canceled) => t.warn(),
        None if j.running => t.ok(),
        None => t.dim(),
    }
}

/// The job list's columns for a pane `width` wide: CPU and MEM from 100 columns, IMAGE from
/// 120; NAME and PROJECT take what is left. STAGE fits `cleanup_file_variables`.
fn columns(width: u16) -> (Vec<&'static str>, Vec<Constraint>) {
    let mut head = vec!["JOB", "PROJECT", "NAME", "STAGE", "STATE", "TIME"];
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Fill(3),
        Constraint::Fill(2),
        Constraint::Length(22),
        Constraint::Length(15),
        Constraint::Length(6),
    ];
    if width >= 100 {
        head.extend(["CPU", "MEM"]);
        widths.extend([Constraint::Length(7), Constraint::Length(9)]);
    }
    if width >= 120 {
        head.push("IMAGE");
        widths.push(Constraint::Fill(3));
    }
    (head, widths)
}

/// `text` cut to `width` characters, with `…` where it was cut.
fn ellipsize(text: &str, width: u16) -> String {
    let width = usize::from(width);
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

fn draw_table(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let (head, mut widths) = columns(area.width);
    let shown = head.len();
    // the cells' widths, for `…` on text that does not fit
    let inner = Rect {
        x: area.x + 1,
        y: area.y,
        width: area.width.saturating_sub(2),
        height: 1,
    };
    let cols: Vec<u16> = Layout::horizontal(widths.clone())
        .spacing(1)
        .split(inner)
        .iter()
        .map(|r| r.width)
        .collect();
    let fit = |i: usize, text: &str| ellipsize(text, cols.get(i).copied().unwrap_or(0));
    let header = Row::new(head).style(t.title());
    let mut rows = Vec::new();
    let mut selected_row = None;
    for i in m.visible_jobs() {
        let j = &m.jobs[i];
        if i == m.selected && m.service.is_none() {
            selected_row = Some(rows.len());
        }
        let style = if i == m.selected && m.service.is_none() {
            t.selected()
        } else {
            Style::default()
        };
        let mut cells = vec![
            Cell::from(fit(0, &j.id)),
            Cell::from(fit(1, &j.project)),
            Cell::from(fit(2, &j.name)),
            Cell::from(fit(3, &j.stage)),
            Cell::from(Span::styled(state_text(j, m), state_style(j, t))),
            Cell::from(elapsed(j, m.now)),
            Cell::from(j.cpu.clone().unwrap_or_else(|| "-".into())),
            Cell::from(j.mem.clone().unwrap_or_else(|| "-".into())),
            Cell::from(fit(8, &short_image(&j.image))),
        ];
        cells.truncate(shown);
        rows.push(Row::new(cells).style(style));
        for (k, s) in j.services.iter().enumerate() {
            let chosen = i == m.selected && m.service == Some(k);
            if chosen {
                selected_row = Some(rows.len());
            }
            let mut cells = vec![
                Cell::from(""),
                Cell::from(" └ service"),
                Cell::from(""),
                Cell::from(fit(3, &short_image(&s.image))),
                Cell::from(s.state.clone()),
                Cell::from(""),
                Cell::from(s.cpu.clone().unwrap_or_else(|| "-".into())),
                Cell::from(s.mem.clone().unwrap_or_else(|| "-".into())),
                Cell::from(fit(8, &short_image(&s.image))),
            ];
            cells.truncate(shown);
            rows.push(Row::new(cells).style(if chosen { t.selected() } else { t.dim() }));
        }
    }
    if rows.is_empty() {
        rows.push(Row::new(vec![Cell::from(Span::styled(
            "no job matches the filter (/ then Esc clears it)",
            t.dim(),
        ))]));
        widths = vec![Constraint::Fill(1)];
    }
    let mut state = ratatui::widgets::TableState::default().with_selected(selected_row);
    f.render_stateful_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(pane(list_title(m), m.focus == Focus::List, t)),
        area,
        &mut state,
    );
}

/// `docker.io/library/rust:1.80` → `rust:1.80`.
fn short_image(image: &str) -> String {
    image
        .strip_prefix("docker.io/library/")
        .or_else(|| image.strip_prefix("docker.io/"))
        .unwrap_or(image)
        .to_string()
}

/// `HH:MM:SS ` before each log line with `t`.
const TIME_WIDTH: usize = 9;

/// ` · times`, with the day when the log's first known time is not today.
fn times_label(m: &Model) -> String {
    let today = day(m.now.saturating_mul(1000), m.utc_offset);
    match m.log.times.first() {
        Some(&(_, ms)) if day(ms, m.utc_offset) != today => {
            format!(" · times of {}", day(ms, m.utc_offset))
        }
        _ => " · times".to_string(),
    }
}

/// Log line `i` as shown: in the job's colours (unless plain, or the dashboard has none), cut
/// `left` columns when not wrapping, each match of the search highlighted (reversed on the
/// current hit's line).
fn log_line<'a>(m: &'a Model, i: usize, t: Theme) -> Line<'a> {
    let text = m.log.line(i).unwrap_or_default();
    let cut = if m.log.wrap {
        0
    } else {
        text.char_indices()
            .nth(m.log.left)
            .map_or(text.len(), |(b, _)| b)
    };
    let mut spans = Vec::new();
    if m.show_times {
        let stamp = match m.log.time_of(i) {
            Some(ms) => format!("{} ", clock(ms, m.utc_offset)),
            None => " ".repeat(TIME_WIDTH),
        };
        spans.push(Span::styled(stamp, t.dim()));
    }
    let hit = if Some(i) == m.log.hit {
        t.selected()
    } else {
        t.key()
    };
    let matches = m
        .log
        .search()
        .map(|s| logview::match_ranges(text, s))
        .unwrap_or_default();
    let colours = if t.color {
        m.log.line_styles(i)
    } else {
        vec![(0..text.len(), Style::default())]
    };
    // cut the line where a colour or a match starts or ends, and at `cut`
    let mut bounds: Vec<usize> = colours
        .iter()
        .map(|(r, _)| r.start)
        .chain(matches.iter().flat_map(|r| [r.start, r.end]))
        .chain([cut, text.len()])
        .filter(|&b| b >= cut)
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    for w in bounds.windows(2) {
        let (from, to) = (w[0], w[1]);
        let k = colours.partition_point(|(r, _)| r.start <= from);
        let mut style = k.checked_sub(1).map_or(Style::default(), |k| colours[k].1);
        if matches.iter().any(|r| r.start <= from && from < r.end) {
            style = style.patch(hit);
        }
        spans.push(Span::styled(&text[from..to], style));
    }
    Line::from(spans)
}

/// Samples each sparkline shows (the latest).
const SPARK: usize = 20;

/// `values` as block characters, from 0 to `top` (the last [`SPARK`] of them).
fn sparkline(values: &std::collections::VecDeque<f64>, top: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .skip(values.len().saturating_sub(SPARK))
        .map(|v| {
            let k = (v / top.max(f64::MIN_POSITIVE) * 7.0).round();
            BARS[k.clamp(0.0, 7.0) as usize]
        })
        .collect()
}

/// The selected job's recent CPU and memory, for the log pane's bottom border:
/// ` cpu ▁▂▅▇ 97.1% · mem ▁▁▂▂ 1.45MB ` (from two samples of its container on).
fn job_numbers(m: &Model, j: &JobRow) -> Option<String> {
    let (container, cpu, mem) = match m.selected_service() {
        Some(s) => (Some(s.container.as_str()), &s.cpu, &s.mem),
        None => (j.container.as_deref(), &j.cpu, &j.mem),
    };
    let h = m.history.get(container?)?;
    if h.cpu.len() < 2 {
        return None;
    }
    let cpu_top = h.cpu.iter().copied().fold(100.0, f64::max);
    let mem_top = h.mem.iter().copied().fold(0.0, f64::max);
    Some(format!(
        " cpu {} {} · mem {} {} ",
        sparkline(&h.cpu, cpu_top),
        cpu.as_deref().unwrap_or("-"),
        sparkline(&h.mem, mem_top),
        mem.as_deref().unwrap_or("-"),
    ))
}

/// The log pane's title: job, why it failed, following or not, the search with "3/10", and
/// how the log is shown.
fn log_title(m: &Model, j: &JobRow) -> String {
    let log = &m.log;
    let mut title = match m.selected_service() {
        Some(s) => format!(
            " log · service {} of job {} · podman logs",
            short_image(&s.image),
            j.id
        ),
        None => format!(" log · job {} {}", j.id, j.stage),
    };
    if let Some(r) = j.reason.as_ref().filter(|_| m.service.is_none()) {
        title += &format!(" · failed: {r}");
    }
    title += if log.follow {
        " · following"
    } else {
        " · paused"
    };
    if let Some(s) = log.search() {
        title += &match log.hit_position() {
            Some((n, of)) => format!(" · /{s} {n}/{of}"),
            None => format!(" · /{s} ({})", log.match_count()),
        };
        if log.filter {
            title += " · only matches";
        }
    }
    if log.plain {
        title += " · plain";
    }
    if log.wrap {
        title += " · wrap";
    } else if log.left > 0 {
        title += &format!(" · →{}", log.left);
    }
    if log.dropped > 0 {
        title += &match log.earlier_matches.filter(|_| log.search().is_some()) {
            Some(n) => format!(
                " · {} earlier lines not shown, {n} of them match (s saves all)",
                log.dropped
            ),
            None => format!(" · {} earlier lines not shown (s saves all)", log.dropped),
        };
    }
    if m.show_times {
        title += &times_label(m);
    }
    title + " "
}

fn draw_log(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let Some(j) = m.selected_job() else {
        f.render_widget(pane(" log ".to_string(), m.focus == Focus::Log, t), area);
        return;
    };
    let height = usize::from(area.height.saturating_sub(2));
    let width = usize::from(area.width.saturating_sub(2));
    // following wrapped lines: the last `height` lines (enough to fill the pane), scrolled so
    // that the last row is at the bottom (ratatui says how many rows they wrap into)
    let tail = m.log.wrap && m.log.follow;
    let first = if tail {
        m.log.rows().saturating_sub(height)
    } else {
        m.log.first_visible(height)
    };
    let body: Vec<Line> = if m.log.is_empty() {
        let why = if m.service.is_some() {
            "no output from the service (yet)"
        } else if j.running {
            "waiting for output…"
        } else {
            "no log copy for this job"
        };
        vec![Line::from(Span::styled(why, t.dim()))]
    } else if m.log.rows() == 0 {
        vec![Line::from(Span::styled(
            "no line matches the search (& shows every line)",
            t.dim(),
        ))]
    } else {
        m.log
            .rows_from(first)
            .take(height)
            .map(|i| log_line(m, i, t))
            .collect()
    };
    let mut log = Paragraph::new(body);
    if m.log.wrap {
        log = log.wrap(Wrap { trim: false });
        if tail {
            let below = log.line_count(width as u16).saturating_sub(height);
            log = log.scroll((u16::try_from(below).unwrap_or(u16::MAX), 0));
        }
    }
    let mut block = pane(log_title(m, j), m.focus == Focus::Log, t);
    if let Some(numbers) = job_numbers(m, j).filter(|_| j.running) {
        block = block.title_bottom(Line::from(numbers).right_aligned());
    }
    f.render_widget(log.block(block), area);
}

#[cfg(test)]
mod tests {
    use crate::tui::model::Model;
    use crate::tui::update::{update, Msg};
    use crate::tui::views::fixtures::{model, render, screen_text};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    /// A job named with an OSC sequence retitled the terminal and could draw over the table:
    /// what a job chose reaches the terminal with its control characters shown, not obeyed.
    #[test]
    fn a_job_name_with_escape_sequences_is_shown_not_obeyed() {
        let mut m = model();
        m.records[0].name = "\x1b]0;pwned\x07deploy\x1b[2J\u{202e}txt.exe".into();
        m.records[0].project = "g/\x1b[31mred".into();
        m.rebuild_jobs();
        let (cells, screen) = screen_text(&m, 140, 30);
        assert!(!cells.contains('\x1b') && !cells.contains('\x07'));
        assert!(!cells.contains('\u{202e}'));
        // shown as text (and cut with … where the column ends)
        assert!(cells.contains("<U+001B>]0;pwn"), "{screen:?}");
        assert!(cells.contains("g/<U+001B>[31mred"), "{screen:?}");
    }

    #[test]
    fn narrow_panes_drop_image_cpu_and_mem_first_and_cut_text_with_an_ellipsis() {
        let names = |w: u16| super::columns(w).0;
        assert_eq!(
            names(80),
            ["JOB", "PROJECT", "NAME", "STAGE", "STATE", "TIME"]
        );
        assert!(names(100).contains(&"MEM") && !names(100).contains(&"IMAGE"));
        assert!(names(140).contains(&"IMAGE"));
        assert_eq!(super::ellipsize("integration", 7), "integr…");
        assert_eq!(super::ellipsize("lint", 7), "lint");
        // the longest stage name fits
        let mut m = model();
        m.records[0].stage = Some("cleanup_file_variables".into());
        m.rebuild_jobs();
        let (cells, screen) = screen_text(&m, 80, 24);
        assert!(cells.contains("cleanup_file_variables"), "{screen:?}");
    }

    /// A job that failed in prepare: why, in pogo's words, over its log (the log copy has
    /// the whole message); a job chose nothing of it that could reach the terminal raw.
    #[test]
    fn a_failed_jobs_log_pane_says_why_it_failed() {
        let mut m = model();
        let i = m.records.iter().position(|r| r.id == "1190").unwrap();
        m.records[i].result = Some(crate::state::Outcome::Failed);
        m.records[i].reason = Some(
            "prepare: image node:22 is not in podman's local storage and pull_policy is never"
                .into(),
        );
        m.rebuild_jobs();
        m.selected = m.jobs.iter().position(|j| j.id == "1190").unwrap();
        let (cells, screen) = screen_text(&m, 140, 30);
        assert!(
            cells.contains("failed: prepare: image node:22 is not in podman's local storage"),
            "{screen:?}"
        );
        // a job that passed has no reason shown, whatever its record says
        m.records[i].result = Some(crate::state::Outcome::Success);
        m.rebuild_jobs();
        assert_eq!(m.jobs.iter().find(|j| j.id == "1190").unwrap().reason, None);
    }

    #[test]
    fn o_opens_only_http_pages_on_the_runners_gitlab() {
        use crate::tui::model::openable_url;
        let runners = ["https://gitlab.example.com/"];
        assert_eq!(
            openable_url("https://gitlab.example.com/g/p/-/jobs/7", &runners).as_deref(),
            Ok("https://gitlab.example.com/g/p/-/jobs/7")
        );
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://evil.example/g/p/-/jobs/7",
            "https://user:pw@gitlab.example.com/x",
            "--help",
        ] {
            assert!(openable_url(bad, &runners).is_err(), "{bad}");
        }
        // no runner known: any http(s) page, nothing else
        assert!(openable_url("http://127.0.0.1:8080/g/p/-/jobs/1", &[]).is_ok());
        assert!(openable_url("ssh://gitlab.example.com/x", &[]).is_err());
    }

    #[test]
    fn jobs_with_stage_state_numbers_and_the_live_log_at_80x24() {
        insta::assert_snapshot!(render(&model(), 80, 24));
    }

    #[test]
    fn jobs_on_a_wide_terminal() {
        insta::assert_snapshot!(render(&model(), 140, 30));
    }

    #[test]
    fn no_jobs_explains_where_jobs_come_from() {
        let mut m = Model::new(0, true);
        m.podman_seen = true;
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn no_jobs_and_gitlab_runner_running_as_another_user_says_whose_podman_has_them() {
        let mut m = Model::new(0, true);
        m.podman_seen = true;
        update(
            &mut m,
            Msg::OtherRunner(Some(crate::tui::procs::OtherRunner {
                user: "gitlab-runner".into(),
                uid: 998,
            })),
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn podman_missing_shows_a_banner_with_the_fix() {
        let mut m = Model::new(0, true);
        update(
            &mut m,
            Msg::PodmanFailed(crate::tui::sources::explain_podman_error(
                "podman",
                "cannot start 'podman': No such file or directory (os error 2)",
            )),
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn a_search_highlights_the_hit_in_the_log() {
        let mut m = model();
        for c in "l/cargo".chars() {
            update(
                &mut m,
                Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
            );
        }
        update(
            &mut m,
            Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    /// Replace the selected job's log with `text`.
    fn with_log(m: &mut Model, text: &str) {
        m.log.reset(m.log.key.clone());
        m.log.append(0, text.as_bytes());
    }

    /// The screen's rows as text.
    fn rows(m: &Model, w: u16, h: u16) -> Vec<String> {
        let (cells, _) = screen_text(m, w, h);
        let cells: Vec<char> = cells.chars().collect();
        cells
            .chunks(usize::from(w))
            .map(|r| r.iter().collect())
            .collect()
    }

    #[test]
    fn g_reaches_the_first_line_of_a_50_000_line_log_and_search_finds_early_lines() {
        // the dashboard used to hold the last 10 000 lines: `g` landed on line 40 013
        let mut m = model();
        let log: String = (1..=50_015).map(|i| format!("line {i:05}\n")).collect();
        with_log(&mut m, &log);
        keys(&mut m, "lg");
        let shown = rows(&m, 80, 24).join("\n");
        assert!(shown.contains("line 00001"), "{shown}");
        keys(&mut m, "G/line 00007\n");
        let shown = rows(&m, 80, 24).join("\n");
        assert!(shown.contains("/line 00007 1/1"), "{shown}");
        assert!(!shown.contains("no match"), "{shown}");
    }

    #[test]
    fn the_filter_shows_only_matching_lines_and_the_title_counts_them() {
        let mut m = model();
        keys(&mut m, "l/step\n&");
        let shown = rows(&m, 80, 24).join("\n");
        // "Executing \"step_script\" stage", two commands and their output
        assert!(shown.contains("/step 1/5 · only matches"), "{shown}");
        assert!(shown.contains("$ echo step 2"), "{shown}");
        assert!(!shown.contains("Compiling"), "{shown}");
        keys(&mut m, "&");
        let shown = rows(&m, 80, 24).join("\n");
        assert!(shown.contains("Compiling"), "{shown}");
    }

    #[test]
    fn the_match_itself_is_highlighted_not_the_whole_line() {
        let mut m = model();
        keys(&mut m, "l/cargo\n");
        let screen = crate::tui::views::fixtures::render(&m, 80, 24);
        let buf = screen.buffer();
        let row = (0..24)
            .find(|&y| {
                (0..80)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .contains("$ cargo build")
            })
            .expect("the cargo line is shown");
        let line: String = (0..80).map(|x| buf[(x, row)].symbol()).collect();
        let byte = line.find("cargo build").unwrap();
        let at = line[..byte].chars().count() as u16;
        let style = |x: u16| buf[(x, row)].modifier;
        use ratatui::style::Modifier;
        assert!(
            style(at).contains(Modifier::REVERSED),
            "the hit is reversed"
        );
        assert!(style(at + 4).contains(Modifier::REVERSED));
        assert!(
            !style(at + 6).contains(Modifier::REVERSED),
            "' build' is not"
        );
        assert!(!style(at - 2).contains(Modifier::REVERSED), "'$' is not");
    }

    #[test]
    fn the_log_keeps_the_jobs_colours_and_c_shows_it_plain() {
        let mut m = model();
        m.color = true;
        with_log(&mut m, "\x1b[32;1m$ make\x1b[0;m\n\x1b[31mboom\x1b[0m\n");
        let colour_of = |m: &Model, word: &str| {
            let screen = crate::tui::views::fixtures::render(m, 80, 24);
            let buf = screen.buffer();
            (0..24u16)
                .flat_map(|y| (0..79u16).map(move |x| (x, y)))
                .find(|&(x, y)| {
                    (0..word.chars().count() as u16)
                        .map(|k| buf[(x + k.min(79 - x), y)].symbol())
                        .collect::<String>()
                        == word
                })
                .map(|(x, y)| buf[(x, y)].fg)
        };
        use ratatui::style::Color;
        assert_eq!(colour_of(&m, "$ make"), Some(Color::Green));
        assert_eq!(colour_of(&m, "boom"), Some(Color::Red));
        keys(&mut m, "c");
        assert_eq!(colour_of(&m, "boom"), Some(Color::Reset));
        assert!(rows(&m, 80, 24).join("\n").contains("· plain"));
        // NO_COLOR: no colours whatever the job wrote
        keys(&mut m, "c");
        m.color = false;
        assert_eq!(colour_of(&m, "boom"), Some(Color::Reset));
    }

    fn stat(name: &str, cpu: &str, mem: &str) -> crate::tui::sources::StatEntry {
        crate::tui::sources::StatEntry {
            name: name.into(),
            cpu: cpu.into(),
            mem: mem.into(),
        }
    }

    #[test]
    fn s_sorts_the_jobs_by_cpu_then_memory_and_the_title_says_so() {
        let mut m = model();
        m.add_stats(vec![
            stat("pogo-laptop-1201-0-build", "3.00%", "812.4MB"),
            stat("pogo-laptop-1202-1-build", "97.30%", "55.2MB"),
        ]);
        let order = |m: &Model| -> Vec<String> { m.jobs.iter().map(|j| j.id.clone()).collect() };
        assert_eq!(
            order(&m),
            ["1201", "1202", "1190"],
            "started: running, newest first"
        );
        keys(&mut m, "S");
        assert_eq!(
            order(&m),
            ["1202", "1201", "1190"],
            "CPU: 97 % first, none last"
        );
        assert!(rows(&m, 80, 24)
            .join("\n")
            .contains("Jobs · sorted by CPU ↓"));
        keys(&mut m, "S");
        assert_eq!(order(&m), ["1201", "1202", "1190"], "memory: 812 MB first");
        keys(&mut m, "S");
        assert_eq!(
            order(&m),
            ["1201", "1202", "1190"],
            "name: build, integration, lint"
        );
    }

    #[test]
    fn the_selected_running_job_shows_cpu_and_memory_sparklines_under_its_log() {
        let mut m = model();
        let shown = rows(&m, 100, 24).join("\n");
        assert!(
            !shown.contains("cpu ▁"),
            "one sample is no line yet:\n{shown}"
        );
        for (cpu, mem) in [("0.00%", "10MB"), ("50.00%", "20MB"), ("100.00%", "40MB")] {
            m.add_stats(vec![stat("pogo-laptop-1201-0-build", cpu, mem)]);
        }
        let shown = rows(&m, 100, 24).join("\n");
        assert!(shown.contains("cpu ▁▅█ 100.00% · mem ▃▅█ 40MB"), "{shown}");
        // a container gone from the stream loses its history
        m.add_stats(vec![]);
        assert!(m.history.is_empty());
    }

    #[test]
    fn long_lines_are_cut_scroll_sideways_with_gt_and_wrap_with_w() {
        let mut m = model();
        let long = format!("abcdefghijklmnop{}END\nnext\n", "-".repeat(100));
        with_log(&mut m, &long);
        keys(&mut m, "l");
        let shown = rows(&m, 80, 24).join("\n");
        assert!(
            shown.contains("abcdefghijklmnop---") && !shown.contains("END"),
            "{shown}"
        );
        keys(&mut m, ">");
        let shown = rows(&m, 80, 24).join("\n");
        assert!(
            !shown.contains("abcdefgh") && shown.contains("ijklmnop---"),
            "cut 8: {shown}"
        );
        assert!(shown.contains("→8"), "the title says how far: {shown}");
        keys(&mut m, "<w");
        let shown = rows(&m, 80, 24);
        let at = shown
            .iter()
            .position(|r| r.contains("abcdefgh"))
            .expect("shown");
        assert!(
            shown[at + 1].contains("END"),
            "wrapped onto the next row: {shown:?}"
        );
        assert!(shown[at + 2].contains("next"), "{shown:?}");
        assert!(shown.join("\n").contains("· wrap"));
    }

    #[test]
    fn a_followed_wrapped_log_shows_its_last_line() {
        let mut m = model();
        let log: String = (0..40)
            .map(|i| format!("{i:02}-{}\n", "x".repeat(120)))
            .collect();
        with_log(&mut m, &log);
        keys(&mut m, "w");
        let shown = rows(&m, 80, 24).join("\n");
        assert!(shown.contains("39-xxx"), "{shown}");
    }

    fn keys(m: &mut Model, keys: &str) {
        for c in keys.chars() {
            let code = match c {
                '\n' => KeyCode::Enter,
                c => KeyCode::Char(c),
            };
            update(m, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        }
    }

    #[test]
    fn a_filtered_list_shows_the_filter_and_how_many_jobs_it_keeps_at_80x24() {
        let mut m = model();
        keys(&mut m, "/app\n");
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn typing_a_filter_shows_it_in_the_footer_as_it_applies() {
        let mut m = model();
        keys(&mut m, "/lin");
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn a_filter_matching_nothing_says_so() {
        let mut m = model();
        keys(&mut m, "/zzz\n");
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn the_focused_log_has_the_thick_frame_and_the_footer_shows_its_keys() {
        let mut m = model();
        keys(&mut m, "l");
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn t_prefixes_each_log_line_with_the_time_it_was_written() {
        let mut m = model();
        keys(&mut m, "t");
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn timestamps_of_an_older_day_say_which_day_in_the_title() {
        let mut m = model();
        keys(&mut m, "t");
        m.now += 86_400;
        m.utc_offset = 3600;
        let out = render(&m, 80, 24).to_string();
        assert!(out.contains("· times of 2027-01-15 "), "{out}");
        assert!(out.contains("08:58:59 $ echo step 1"), "{out}");
    }

    #[test]
    fn a_click_on_a_row_or_its_service_finds_the_job() {
        use crate::tui::views::frame_layout;
        let m = model();
        let [_, _, body, _] = frame_layout(&m, ratatui::layout::Rect::new(0, 0, 80, 24));
        // rows: tabs(0), border(1), header(2), 1201(3), 1202(4), its service(5), 1190(6)
        assert_eq!(super::job_at(&m, body, 3), Some(0));
        assert_eq!(super::job_at(&m, body, 5), Some(1));
        assert_eq!(super::job_at(&m, body, 6), Some(2));
        assert_eq!(super::job_at(&m, body, 2), None, "the header");
        assert!(super::in_log(&m, body, 12));
        assert!(!super::in_list(&m, body, 12));
        assert!(super::in_list(&m, body, 1), "the list's border");
    }

    #[test]
    fn a_click_in_a_scrolled_job_list_finds_the_job_drawn_on_that_line() {
        use crate::tui::views::frame_layout;
        let mut m = model();
        crate::tui::views::fixtures::add_finished_jobs(&mut m, 10);
        // down to the last job: the list has scrolled
        let down = "j".repeat(m.jobs.len());
        keys(&mut m, &down);
        let last = m.jobs.len() - 1;
        assert_eq!(m.selected, last);
        let screen = render(&m, 80, 24).to_string();
        let lines: Vec<&str> = screen.lines().collect();
        let [_, _, body, _] = frame_layout(&m, ratatui::layout::Rect::new(0, 0, 80, 24));
        let mut found = Vec::new();
        for y in body.y..body.y + body.height {
            if let Some(i) = super::job_at(&m, body, y) {
                let line = lines[usize::from(y)];
                assert!(
                    line.trim_start_matches(['"', '│', '┃'])
                        .starts_with(&format!("{} ", m.jobs[i].id))
                        || line.contains("└ service"),
                    "line {y} is job {} by job_at but shows:\n{line}\n{screen}",
                    m.jobs[i].id
                );
                found.push(i);
            }
        }
        assert!(
            found.contains(&last),
            "the selected job is clickable: {found:?}"
        );
        assert!(
            !found.contains(&0),
            "the first job has scrolled away: {found:?}"
        );
    }

    #[test]
    fn stopping_asks_for_confirmation() {
        let mut m = model();
        update(
            &mut m,
            Msg::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE)),
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }
}
