//! The Config screen: what the config grants (mounts, extra arguments, image, auth, pulls) and
//! the Preview: the exact mounts and `podman run` a job with the typed tags and project gets,
//! built by the same code as `pogo prepare` (`config::resolve::grants`, `podman::args::job_run`).

use super::Theme;
use crate::config::{resolve, Config};
use crate::podman::args::{self, JobContainer, KeepAlive};
use crate::tui::model::{Mode, Model, PreviewField};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

/// Tags as typed: words separated by spaces or commas.
pub fn parse_tags(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a job with `tags` in `project` gets: the `--volume` values from the tag mounts and
/// the full `podman run` argv of the job container (as prepare builds it, with placeholders
/// for the per-job parts: name, labels, cache and runner binary).
pub fn preview(
    config: &Config,
    tags: &[String],
    project: &str,
    keep_alive: &KeepAlive,
) -> (Vec<String>, Vec<String>) {
    let grants = resolve::grants(config, tags, project);
    let volumes: Vec<String> = grants.mounts.iter().map(|m| m.volume_arg()).collect();
    let image = config
        .default_image
        .clone()
        .unwrap_or_else(|| "<job image>".to_string());
    let spec = JobContainer {
        name: "<job>-build",
        pod: None,
        labels: &[],
        volumes: volumes.clone(),
        extra_args: &grants.extra_args,
        keep_alive: keep_alive.clone(),
        image: &image,
    };
    (volumes, args::job_run(&spec))
}

pub fn draw(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let [settings, prev] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(6)]).areas(area);
    let title = match &m.config.path {
        Some(p) => format!(" Config · {} ", p.display()),
        None => " Config · no file: built-in defaults ".to_string(),
    };
    let Some(c) = &m.config.good else {
        let why = m
            .config
            .error
            .clone()
            .unwrap_or_else(|| "loading…".to_string());
        f.render_widget(
            Paragraph::new(why)
                .wrap(Wrap { trim: false })
                .block(Block::default().borders(Borders::ALL).title(title)),
            area,
        );
        return;
    };
    f.render_widget(
        Paragraph::new(settings_lines(c, t))
            .wrap(Wrap { trim: false })
            .scroll((m.config.scroll, 0))
            .block(Block::default().borders(Borders::ALL).title(title)),
        settings,
    );
    draw_preview(f, prev, m, c, t);
}

fn kv<'a>(k: &'a str, v: String, t: Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{k:<16}"), t.title()),
        Span::raw(v),
    ])
}

fn settings_lines(c: &Config, t: Theme) -> Vec<Line<'static>> {
    let none = || "(none)".to_string();
    let mut v = vec![
        kv(
            "default image",
            c.default_image.clone().unwrap_or_else(none),
            t,
        ),
        kv("pull policy", c.pull_policy.to_string(), t),
        kv(
            "auth file",
            c.auth_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(none),
            t,
        ),
        kv(
            "podman",
            std::iter::once(c.podman.clone())
                .chain(c.podman_args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            t,
        ),
    ];
    if !c.allowed_images.patterns.is_empty() {
        v.push(kv(
            "allowed images",
            c.allowed_images.patterns.join(", "),
            t,
        ));
    }
    v.push(Line::from(Span::styled("mounts", t.title())));
    if c.mounts.is_empty() {
        v.push(Line::from(Span::styled("  (none)", t.dim())));
    }
    for mnt in &c.mounts {
        let mut spans = vec![Span::raw(format!("  {}", mnt.volume_arg()))];
        let who = if mnt.tags.is_empty() {
            "every job".to_string()
        } else {
            format!("tags {}", mnt.tags.join(", "))
        };
        spans.push(Span::styled(format!("  ← {who}"), t.dim()));
        if !mnt.projects.patterns.is_empty() {
            spans.push(Span::styled(
                format!("; projects {}", mnt.projects.patterns.join(", ")),
                t.dim(),
            ));
        }
        v.push(Line::from(spans));
    }
    v.push(Line::from(Span::styled("extra arguments", t.title())));
    if c.extra_arguments.is_empty() {
        v.push(Line::from(Span::styled("  (none)", t.dim())));
    }
    for e in &c.extra_arguments {
        let mut spans = vec![Span::styled(format!("  {:<10}", e.tag), t.key())];
        for a in &e.args {
            spans.push(Span::raw(format!("[{a}] ")));
        }
        if e.privileged {
            spans.push(Span::styled("privileged ", t.warn()));
        }
        if !e.projects.patterns.is_empty() {
            spans.push(Span::styled(
                format!(" projects {}", e.projects.patterns.join(", ")),
                t.dim(),
            ));
        }
        v.push(Line::from(spans));
    }
    v
}

fn draw_preview(f: &mut Frame, area: Rect, m: &Model, c: &Config, t: Theme) {
    let tags = parse_tags(&m.config.preview_tags);
    let project = m.config.preview_project.trim();
    let keep_alive = m.config.keep_alive.clone().unwrap_or(KeepAlive::Shell);
    let (volumes, argv) = preview(c, &tags, project, &keep_alive);
    let field = |label: &'static str, value: &str, which: PreviewField| -> Vec<Span<'static>> {
        let editing = m.mode == Mode::PreviewInput(which);
        let shown = if value.is_empty() && !editing {
            "(none)".to_string()
        } else if editing {
            format!("{value}█")
        } else {
            value.to_string()
        };
        vec![
            Span::styled(label, t.key()),
            Span::styled(
                shown,
                if editing {
                    t.selected()
                } else {
                    ratatui::style::Style::default()
                },
            ),
        ]
    };
    let mut head = field("t tags: ", &m.config.preview_tags, PreviewField::Tags);
    head.push(Span::raw("   "));
    head.extend(field(
        "p project: ",
        &m.config.preview_project,
        PreviewField::Project,
    ));
    let mut lines = vec![Line::from(head)];
    if volumes.is_empty() {
        lines.push(Line::from(Span::styled("mounts: none", t.dim())));
    }
    for v in &volumes {
        lines.push(Line::from(format!("mount  {v}")));
    }
    let cmd = crate::podman::Podman::new(c.podman.clone(), c.podman_args.clone()).display(&argv);
    lines.push(Line::from(vec![
        Span::styled("podman run: ", t.title()),
        Span::raw(cmd),
    ]));
    lines.push(Line::from(Span::styled(
        "(+ labels, the project's cache dir and the gitlab-runner binary, per job)",
        t.dim(),
    )));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Preview ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::update::{update, Msg};
    use crate::tui::views::fixtures::{config, model, render};

    #[test]
    fn preview_of_a_test_job_gets_the_tagged_mount_and_no_buildah_args() {
        let c = config();
        let (vols, argv) = preview(&c, &parse_tags("test"), "group/app", &KeepAlive::Shell);
        assert_eq!(
            vols,
            vec!["/srv/cache:/cache", "/home/me/fixtures:/mnt/fixtures:ro"]
        );
        assert!(!argv.contains(&"/dev/fuse:rw".to_string()));
        let (_, argv) = preview(
            &c,
            &parse_tags("buildah, other"),
            "group/app",
            &KeepAlive::Shell,
        );
        let i = argv.iter().position(|a| a == "--device").unwrap();
        assert_eq!(argv[i + 1], "/dev/fuse:rw");
        assert!(argv.contains(&"label=disable".to_string()));
        assert_eq!(argv.last().unwrap(), "fedora:41");
    }

    #[test]
    fn config_with_preview_at_80x24() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        m.config.preview_tags = "test buildah".into();
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn an_invalid_edit_shows_the_error_and_keeps_the_last_good_config() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        update(
            &mut m,
            Msg::Config(Err(
                "/home/me/.pogo.yaml:4:3: unknown key 'mount' (did you mean 'mounts'?)".into(),
            )),
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn typing_the_preview_tags_shows_a_cursor() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        m.mode = Mode::PreviewInput(PreviewField::Tags);
        m.config.preview_tags = "bui".into();
        insta::assert_snapshot!(render(&m, 100, 30));
    }
}
