//! Views: pure functions of the model. One file per screen, each with its snapshot tests;
//! this file draws the frame around them (tabs, banners, footer, popups).

pub mod config;
pub mod help;
pub mod jobs;
pub mod runners;

use super::keys::footer_hint;
use super::model::{Mode, Model, Screen};
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// Styles, with or without colour (`NO_COLOR`): without, emphasis uses bold/reverse only.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn of(m: &Model) -> Self {
        Self { color: m.color }
    }
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn dim(self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub fn error(self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn key(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
}

/// Draw the whole screen.
/// The frame's regions: tabs, banner, screen body, footer.
pub fn frame_layout(m: &Model, area: Rect) -> [Rect; 4] {
    let banners = banner_lines(m);
    let banner_h = if banners.is_empty() {
        0
    } else {
        // wrapped lines, at most 4
        let w = usize::from(area.width.max(1));
        banners
            .iter()
            .map(|b| b.chars().count().div_ceil(w).max(1))
            .sum::<usize>()
            .min(4) as u16
    };
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_h),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area)
}

pub fn draw(f: &mut Frame, m: &Model) {
    let t = Theme::of(m);
    let area = f.area();
    let banners = banner_lines(m);
    let [top, banner, body, footer] = frame_layout(m, area);
    let banner_h = banner.height;
    draw_tabs(f, top, m, t);
    if banner_h > 0 {
        let text: Vec<Line> = banners.into_iter().map(Line::from).collect();
        f.render_widget(
            Paragraph::new(text)
                .style(t.error())
                .wrap(Wrap { trim: false }),
            banner,
        );
    }
    match m.screen {
        Screen::Jobs => jobs::draw(f, body, m, t),
        Screen::Config => config::draw(f, body, m, t),
        Screen::Runners => runners::draw(f, body, m, t),
    }
    draw_footer(f, footer, m, t);
    match &m.mode {
        Mode::Help => help::draw(f, area, m, t),
        Mode::Inspect {
            title,
            text,
            scroll,
        } => {
            let r = popup(area, 90, 80);
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(text.as_str()).scroll((*scroll, 0)).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(format!(" {title} · ↑↓ PgUp PgDn scroll · any key closes ")),
                ),
                r,
            );
        }
        Mode::Register(form) => runners::draw_form(f, area, form, t),
        Mode::ConfigForm(form) => config::draw_form(f, area, form, t),
        Mode::ConfirmUnregister(name) => confirm(
            f,
            area,
            t,
            " unregister ",
            format!("Unregister runner {name}?"),
            "GitLab is told first; the entry leaves config.toml",
            ("unregister", "keep it"),
        ),
        Mode::ConfirmServiceStop => confirm(
            f,
            area,
            t,
            " stop gitlab-runner ",
            "Stop the gitlab-runner service?".to_string(),
            "every job it runs now is aborted",
            ("stop", "keep it running"),
        ),
        Mode::ConfirmRelease { job, .. } => confirm(
            f,
            area,
            t,
            " release ",
            format!("Remove job {job}'s kept containers now?"),
            "keep_failed kept them for debugging; pogo gc removes them",
            ("remove", "keep them"),
        ),
        Mode::ConfirmStop { container, job, .. } => confirm(
            f,
            area,
            t,
            " stop ",
            format!("Stop job {job}?"),
            container,
            ("stop", "keep running"),
        ),
        Mode::ConfirmDelete { what, .. } => confirm(
            f,
            area,
            t,
            " delete ",
            format!("Delete {what}?"),
            "only its lines leave the file; comments and the rest stay",
            ("delete", "keep it"),
        ),
        _ => {}
    }
}

/// A yes/no question in a popup: `y` does it, any other key does not.
fn confirm(
    f: &mut Frame,
    area: Rect,
    t: Theme,
    title: &str,
    question: String,
    detail: &str,
    (yes, no): (&str, &str),
) {
    let r = popup_fixed(area, 60, 5);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(question),
            Line::from(Span::styled(detail.to_string(), t.dim())),
            Line::from(vec![
                Span::styled("y", t.key()),
                Span::raw(format!(" {yes}   ")),
                Span::styled("any other key", t.key()),
                Span::raw(format!(" {no}")),
            ]),
        ])
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(title.to_string()),
        ),
        r,
    );
}

/// Problems shown on every screen: podman unusable; the config file invalid (on Config it is
/// shown in place).
fn banner_lines(m: &Model) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(b) = &m.podman_error {
        v.push(format!(" ! {}", b.text));
    }
    if let Some(e) = &m.config.error {
        // the error first: it says what to fix, and stays visible however narrow the screen
        v.push(format!(" ! invalid config: {e}"));
        v.push(
            "   jobs that start now fail on it (a system failure) until it is fixed; running jobs \
             keep the config they started with; shown here: the last valid one"
                .to_string(),
        );
    }
    v
}

fn draw_tabs(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let mut spans = vec![Span::styled(" pogo ", t.title())];
    for s in Screen::ALL {
        let label = format!(" {} {} ", s.index() + 1, s.title());
        if s == m.screen {
            spans.push(Span::styled(label, t.selected()));
        } else {
            spans.push(Span::raw(label));
        }
    }
    let running = m.jobs.iter().filter(|j| j.running).count();
    spans.push(Span::styled(
        format!("  {running} running, {} listed", m.jobs.len()),
        t.dim(),
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let line = match &m.mode {
        Mode::Search(s) => Line::from(vec![
            Span::styled("/", t.key()),
            Span::raw(crate::tui::textinput::show(s, m.cursor)),
            Span::styled("   Enter search · Esc cancel", t.dim()),
        ]),
        Mode::Filter => Line::from(vec![
            Span::styled("filter /", t.key()),
            Span::raw(crate::tui::textinput::show(
                &m.filters.of(m.screen).cloned().unwrap_or_default(),
                m.cursor,
            )),
            Span::styled("   Enter keep · Esc clear · ↑↓ move", t.dim()),
        ]),
        Mode::PreviewInput(_) => {
            Line::from(Span::styled("typing the preview · Enter/Esc done", t.dim()))
        }
        Mode::Register(_) => {
            Line::from(Span::styled("registering a runner · Esc cancels", t.dim()))
        }
        Mode::ConfigForm(_) => Line::from(Span::styled(
            "editing the config file · saved with its comments kept · Esc cancels",
            t.dim(),
        )),
        _ => match &m.status {
            Some(s) => Line::from(Span::styled(s.clone(), t.warn())),
            None => Line::from(Span::styled(footer_hint(m.screen, m.focus), t.dim())),
        },
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The line of a bordered table with a header that screen line `y` shows, `None` outside its
/// body. The rows ratatui scrolled past to keep line `selected` on screen count too (with a
/// fresh `TableState` each frame it keeps the first line shown as low as it can).
pub fn table_line_at(table: Rect, selected: usize, y: u16) -> Option<usize> {
    // border + header
    let first = table.y + 2;
    if y < first || y + 1 >= table.y + table.height {
        return None;
    }
    let shown = usize::from(table.height.saturating_sub(3));
    Some(usize::from(y - first) + (selected + 1).saturating_sub(shown))
}

/// A centred rectangle of `pw`% × `ph`% of `area`.
pub fn popup(area: Rect, pw: u16, ph: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Percentage(ph)])
        .flex(Flex::Center)
        .areas(area);
    let [h] = Layout::horizontal([Constraint::Percentage(pw)])
        .flex(Flex::Center)
        .areas(v);
    h
}

/// A centred rectangle of at most `w` × `h` cells.
pub fn popup_fixed(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    r
}

/// Shared test fixtures: a model with jobs, a log, a config and runners, at a fixed time.
#[cfg(test)]
pub mod fixtures {
    use super::super::model::Model;
    use super::super::runners::{RunnerRow, RunnersState};
    use super::super::sources::{PsContainer, StatEntry};
    use crate::state::{JobRecord, Outcome};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use std::collections::HashMap;

    pub const NOW: u64 = 1_800_000_000;

    pub fn ctr(name: &str, key: &str, image: &str, state: &str) -> PsContainer {
        PsContainer {
            id: format!("id-{name}"),
            names: vec![name.to_string()],
            image: image.to_string(),
            state: state.to_string(),
            labels: HashMap::from([
                ("io.pogo.managed-by".to_string(), "pogo".to_string()),
                ("io.pogo.job-key".to_string(), key.to_string()),
            ]),
            created: NOW - 95,
            is_infra: false,
            exit_code: 0,
            pid: 0,
        }
    }

    /// The fixture's config file, with a comment the forms must keep.
    pub const CONFIG_YAML: &str = "# my laptop\n\
            default_image: fedora:41\n\
            pull_policy: always\n\
            auth_file: /home/me/.docker-auth.json\n\
            working_dir: /home/me/.local/share/pogo\n\
            mounts:\n  - volume: /srv/cache:/cache\n  - volume: /home/me/fixtures:/mnt/fixtures\n    tags: [test]\n    readonly: true\n\
            extra_arguments:\n  buildah:\n    args: '--device /dev/fuse:rw --security-opt \"label=disable\"'\n    privileged: true\n  ci: '--env CI_LOCAL=1'\n";

    pub fn config() -> crate::config::Config {
        let raw = crate::config::parse(CONFIG_YAML, std::path::Path::new("/home/me/.pogo.yaml"))
            .expect("fixture config parses");
        crate::config::finalize(
            raw,
            Some("/home/me/.pogo.yaml".into()),
            &HashMap::from([("HOME".to_string(), "/home/me".to_string())]),
        )
        .expect("fixture config is valid")
    }

    /// Two running jobs (one with a service), one failed job, at [`NOW`].
    pub fn model() -> Model {
        let mut m = Model::new(NOW, true);
        m.records = vec![
            JobRecord {
                key: "pogo-laptop-1201-0".into(),
                id: "1201".into(),
                name: "build".into(),
                project: "group/app".into(),
                url: "https://gitlab.example.com/group/app/-/jobs/1201".into(),
                image: Some("rust:1.80".into()),
                container: "pogo-laptop-1201-0-build".into(),
                stage: Some("build_script".into()),
                stage_started: Some(NOW - 30),
                started: NOW - 95,
                prepared: true,
                ..JobRecord::default()
            },
            JobRecord {
                key: "pogo-laptop-1202-1".into(),
                id: "1202".into(),
                name: "integration".into(),
                project: "group/api".into(),
                image: Some("python:3.12".into()),
                container: "pogo-laptop-1202-1-build".into(),
                stage: Some("get_sources".into()),
                started: NOW - 300,
                prepared: true,
                ..JobRecord::default()
            },
            JobRecord {
                key: "pogo-laptop-1190-0".into(),
                id: "1190".into(),
                name: "lint".into(),
                project: "group/app".into(),
                image: Some("node:22".into()),
                container: "pogo-laptop-1190-0-build".into(),
                stage: Some("build_script".into()),
                started: NOW - 700,
                ended: Some(NOW - 600),
                prepared: true,
                result: Some(Outcome::Failed),
                exit_code: Some(2),
                failure: Some("build_script".into()),
                ..JobRecord::default()
            },
        ];
        m.containers = vec![
            ctr(
                "pogo-laptop-1201-0-build",
                "pogo-laptop-1201-0",
                "docker.io/library/rust:1.80",
                "running",
            ),
            ctr(
                "pogo-laptop-1202-1-build",
                "pogo-laptop-1202-1",
                "docker.io/library/python:3.12",
                "running",
            ),
            ctr(
                "pogo-laptop-1202-1-svc0",
                "pogo-laptop-1202-1",
                "docker.io/library/postgres:16",
                "running",
            ),
        ];
        m.stats = [
            ("pogo-laptop-1201-0-build", "97.30%", "812.4MB"),
            ("pogo-laptop-1202-1-build", "3.10%", "55.2MB"),
            ("pogo-laptop-1202-1-svc0", "0.50%", "31.0MB"),
        ]
        .into_iter()
        .map(|(n, c, mm)| {
            (
                n.to_string(),
                StatEntry {
                    name: n.into(),
                    cpu: c.into(),
                    mem: mm.into(),
                },
            )
        })
        .collect();
        m.podman_seen = true;
        m.rebuild_jobs();
        m.log.reset(m.selected_job().map(|j| j.key.clone()));
        let log: &[u8] = b"\x1b[0Ksection_start:1800000000:step_script\r\x1b[0K\x1b[32;1mExecuting \"step_script\" stage of the job script\x1b[0;m\n\
              $ echo step 1\nstep 1\n$ cargo build --release\n   Compiling pogo v0.1.0\n$ echo step 2\nstep 2\n";
        m.log.append(0, log);
        // When the parts were written (the first line's time is unknown).
        let at = |s: &str| {
            log.windows(s.len())
                .position(|w| w == s.as_bytes())
                .expect("in the fixture log")
        };
        let times = format!(
            "{} {}\n{} {}\n{} {}\n",
            at("$ echo step 1"),
            (NOW - 61) * 1000 + 250,
            at("$ cargo build"),
            (NOW - 45) * 1000,
            at("$ echo step 2"),
            (NOW - 3) * 1000 + 999,
        );
        m.log.append_times(0, times.as_bytes());
        m.config.path = Some("/home/me/.pogo.yaml".into());
        m.config.good = Some(config());
        m.config.text = Some(CONFIG_YAML.to_string());
        m.config.raw = crate::config::parse(CONFIG_YAML, std::path::Path::new("/p")).ok();
        m.config.home = Some("/home/me".into());
        m.runners = RunnersState {
            path: Some("/home/me/.gitlab-runner/config.toml".into()),
            rows: vec![
                RunnerRow {
                    name: "laptop".into(),
                    url: "https://gitlab.example.com".into(),
                    executor: "custom".into(),
                    token_masked: "glrt-<redacted>".into(),
                    uses_pogo: true,
                    pogo_config: Some("/home/me/.pogo.yaml".into()),
                },
                RunnerRow {
                    name: "docker-old".into(),
                    url: "https://gitlab.example.com".into(),
                    executor: "docker".into(),
                    token_masked: "glrt-<redacted>".into(),
                    uses_pogo: false,
                    pogo_config: None,
                },
            ],
            error: None,
            selected: 0,
            service: Some("active".into()),
        };
        m.dirty = false;
        m
    }

    /// `n` more finished jobs (copies of the failed `lint` job, ids 1100, 1101, …), enough to
    /// make the job list scroll.
    pub fn add_finished_jobs(m: &mut Model, n: u64) {
        let finished = m.records[2].clone();
        for k in 0..n {
            let mut r = finished.clone();
            r.id = format!("{}", 1100 + k);
            r.key = format!("pogo-laptop-{}-0", 1100 + k);
            r.started -= 10 * (k + 1);
            m.records.push(r);
        }
        m.rebuild_jobs();
    }

    /// Render `m` on a `w`×`h` test terminal.
    pub fn render(m: &Model, w: u16, h: u16) -> TestBackend {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        t.draw(|f| super::draw(f, m)).expect("draw");
        t.backend().clone()
    }

    /// Every cell's text of [`render`], row after row, with the screen for messages.
    pub fn screen_text(m: &Model, w: u16, h: u16) -> (String, TestBackend) {
        let screen = render(m, w, h);
        let cells = screen
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        (cells, screen)
    }
}
