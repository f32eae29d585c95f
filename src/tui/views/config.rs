//! The Config screen: what the config grants (mounts, extra arguments, image, auth, pulls) and
//! the Preview: the exact mounts and `podman run` a job with the typed tags and project gets,
//! built by the same code as `pogo prepare` (`config::resolve::grants`, `podman::args::job_run`).

use super::Theme;
use crate::config::model::{ExtraArgsEntry, ExtraArgsRule, MountRule, RawConfig};
use crate::config::{resolve, Config};
use crate::podman::args::{self, JobContainer, KeepAlive};
use crate::tui::configform::{self, parse_tags, ConfigForm, Note, Row, Value};
use crate::tui::model::{Mode, Model, PreviewField};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// What a job with `tags` in `project` gets: the `--volume` values from the tag mounts and
/// the full `podman run` argv of the job container, built by prepare's own code
/// (`executor::plan`, `podman::args::job_run`) with placeholders for what each job makes: its
/// name and labels, the builds volume's name, pogo's copies of catatonit and gitlab-runner
/// (named per version), the agent's socket directory. `detected`: the host's keep-alive.
pub fn preview(
    config: &Config,
    tags: &[String],
    project: &str,
    detected: &KeepAlive,
) -> (Vec<String>, Vec<String>) {
    use crate::executor::{agent, env, plan};
    let grants = resolve::grants(config, tags, project);
    let tag_mounts: Vec<String> = grants.mounts.iter().map(|m| m.volume_arg()).collect();
    let helper = config.helper_image.is_some();
    // a job that fetches, GitLab's default
    let builds = match plan::builds_volume(config, true, helper, false) {
        plan::BuildsVolume::Persistent => {
            Some(env::persistent_builds_volume("<runner>", project, "<slot>"))
        }
        plan::BuildsVolume::PerJob => Some("<job>-builds".to_string()),
        plan::BuildsVolume::None => None,
    };
    let own = |name: &str| {
        config
            .working_dir
            .join("agent")
            .join(name)
            .display()
            .to_string()
    };
    let mounts = plan::Mounts {
        cache: if project.is_empty() {
            plan::cache_volume(&config.cache_dir.join("<project>")).ok()
        } else {
            plan::cache_dir(&config.cache_dir, project)
                .ok()
                .flatten()
                .and_then(|d| plan::cache_volume(&d).ok())
        },
        local: Vec::new(),
        builds,
        non_root: false,
        runner_binary: (!helper).then(|| own("gitlab-runner-<version>")),
        project_volumes: grants
            .project_volumes
            .iter()
            .map(|path| {
                let name = if project.is_empty() {
                    "pogo-project-<project>".to_string()
                } else {
                    env::project_volume(project, path)
                };
                (name, path.clone())
            })
            .collect(),
    };
    let volumes = plan::volumes(config, &grants, &mounts);
    let keep_alive = match detected {
        KeepAlive::Init(_) => plan::keep_alive(
            config,
            own("catatonit-<version>"),
            agent::installed_path(&config.working_dir).map(|a| {
                let socket = agent::socket_dir(&config.working_dir, "<job>");
                (a.display().to_string(), socket.display().to_string())
            }),
        ),
        other => other.clone(),
    };
    let image = config
        .default_image
        .clone()
        .unwrap_or_else(|| "<job image>".to_string());
    let spec = JobContainer {
        name: "<job>-build",
        docker: args::Docker::default(),
        pod: None,
        labels: &[],
        volumes: volumes.job,
        extra_args: &grants.extra_args,
        keep_alive,
        image: &image,
    };
    (tag_mounts, args::job_run(&spec))
}

pub fn draw(f: &mut Frame, area: Rect, m: &Model, t: Theme) {
    let [settings, prev] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(6)]).areas(area);
    let title = match (&m.config.path, m.config.missing) {
        (Some(p), false) => format!(" Config · {} ", p.display()),
        (Some(p), true) => format!(
            " Config · {} not created yet: built-in defaults, a save creates it ",
            p.display()
        ),
        (None, _) => " Config · no file: built-in defaults ".to_string(),
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
    let list = settings_list(m, c, t);
    let top = list_top(&list, settings);
    let q = m.filters.config.trim();
    let title = if q.is_empty() {
        title
    } else {
        let total = m
            .config
            .raw
            .as_ref()
            .map_or(0, |r| configform::rows(r).len());
        let shown = m.visible_config_rows().len();
        format!("{} · filter: {q} ({shown} of {total}) ", title.trim_end())
    };
    f.render_widget(
        Paragraph::new(list.lines)
            .scroll((top as u16, 0))
            .block(Block::default().borders(Borders::ALL).title(title)),
        settings,
    );
    draw_preview(f, prev, m, c, t);
}

/// The settings pane's lines and, for each, the row it shows (headers and notes: none).
struct SettingsList {
    lines: Vec<Line<'static>>,
    rows: Vec<Option<usize>>,
    selected_line: Option<usize>,
}

/// The first line shown, so that the selected row is on screen.
fn list_top(list: &SettingsList, area: Rect) -> usize {
    let inner = usize::from(area.height.saturating_sub(2)).max(1);
    list.selected_line
        .map_or(0, |s| (s + 1).saturating_sub(inner))
}

/// The Config row under screen row `y` of the body `area` (for mouse clicks).
pub fn row_at(m: &Model, area: Rect, y: u16) -> Option<usize> {
    let c = m.config.good.as_ref()?;
    let [settings, _] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(6)]).areas(area);
    let list = settings_list(m, c, Theme { color: false });
    let line = usize::from(y.checked_sub(settings.y + 1)?) + list_top(&list, settings);
    if y + 1 >= settings.y + settings.height {
        return None;
    }
    list.rows.get(line).copied().flatten()
}

fn kv<'a>(k: &'a str, v: String, t: Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{k:<16}"), t.title()),
        Span::raw(v),
    ])
}

/// The effective value of a setting the file leaves out (the default, or the environment's).
fn effective(c: &Config, key: &str) -> String {
    match key {
        "default_image" => c.default_image.clone().unwrap_or_else(|| "none".into()),
        "pull_policy" => c.pull_policy.to_string(),
        "auth_file" => c
            .auth_file
            .as_ref()
            .map_or_else(|| "none".into(), |p| p.display().to_string()),
        "keep_failed" => match c.keep_failed {
            0 => "off".into(),
            n => format!("{n} min"),
        },
        _ => String::new(),
    }
}

fn settings_list(m: &Model, c: &Config, t: Theme) -> SettingsList {
    let mut list = SettingsList {
        lines: Vec::new(),
        rows: Vec::new(),
        selected_line: None,
    };
    let empty = RawConfig::default();
    let raw = m.config.raw.as_ref().unwrap_or(&empty);
    let push = |list: &mut SettingsList, line: Line<'static>, row: Option<usize>| {
        let selected = row.is_some() && row == Some(m.config.selected);
        if selected {
            list.selected_line = Some(list.lines.len());
        }
        let mut spans = vec![Span::raw(if selected { "› " } else { "  " })];
        spans.extend(line.spans);
        let line = Line::from(spans);
        list.lines.push(if selected {
            line.style(t.selected())
        } else {
            line
        });
        list.rows.push(row);
    };
    let header = |s: &'static str| Line::from(Span::styled(s, t.title()));
    let none = || Line::from(Span::styled("  (none)", t.dim()));
    let visible = m.visible_config_rows();
    // While filtering, sections without a match are left out rather than shown empty.
    let filtering = !m.filters.config.trim().is_empty();
    let rows = configform::rows(raw);
    let section = |want: fn(&Row) -> bool| {
        let shown = rows
            .iter()
            .enumerate()
            .any(|(i, r)| want(r) && visible.contains(&i));
        (shown, !filtering && !rows.iter().any(want))
    };
    let mounts = section(|r| matches!(r, Row::Mount(_)));
    let extras = section(|r| matches!(r, Row::Extra(_)));
    // the tags' column: as wide as the longest tag
    let tag_width = raw
        .extra_arguments
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
        .max(9);
    let mut headed = (false, false);
    let mut head = |list: &mut SettingsList, which: usize| {
        let (done, (shown, empty), title) = if which == 0 {
            (&mut headed.0, mounts, "mounts")
        } else {
            (&mut headed.1, extras, "extra arguments")
        };
        if !*done && (shown || empty) {
            push(list, header(title), None);
            if empty {
                push(list, none(), None);
            }
        }
        *done = true;
    };
    for (i, row) in rows.iter().enumerate() {
        match row {
            Row::Mount(_) => head(&mut list, 0),
            Row::Extra(_) => {
                head(&mut list, 0);
                head(&mut list, 1);
            }
            Row::Setting(_) => {}
        }
        if !visible.contains(&i) {
            continue;
        }
        let line = match row {
            Row::Setting(k) => {
                let label = format!("{:<16}", configform::setting_label(k));
                let value = match configform::setting_value(raw, k) {
                    Some(v) => Span::raw(v),
                    None => Span::styled(format!("(not set: {})", effective(c, k)), t.dim()),
                };
                let mut spans = vec![Span::styled(label, t.title()), value];
                if m.config.overridden.iter().any(|o| o == k) {
                    spans.push(Span::styled(
                        format!(
                            "  ← ${} overrides it: {}",
                            crate::config::env_var(k),
                            effective(c, k)
                        ),
                        t.warn(),
                    ));
                }
                Line::from(spans)
            }
            Row::Mount(i) => mount_line(&raw.mounts[*i], t),
            Row::Extra(tag) => {
                let rule = raw.extra_arguments.get(tag).cloned();
                extra_line(
                    tag,
                    tag_width,
                    rule.map(ExtraArgsRule::entry).unwrap_or_default(),
                    t,
                )
            }
        };
        push(&mut list, line, Some(i));
    }
    head(&mut list, 0);
    head(&mut list, 1);
    let podman = std::iter::once(c.podman.clone())
        .chain(c.podman_args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    push(&mut list, kv("podman", podman, t), None);
    if !c.allowed_images.patterns.is_empty() {
        let allowed = c.allowed_images.patterns.join(", ");
        push(&mut list, kv("allowed images", allowed, t), None);
    }
    list
}

fn mount_line(r: &MountRule, t: Theme) -> Line<'static> {
    let mut spans = vec![Span::raw(format!("  {}", r.volume))];
    if r.readonly {
        spans.push(Span::styled(" ro", t.warn()));
    }
    let who = if r.tags.is_empty() {
        "every job".to_string()
    } else {
        format!("tags {}", r.tags.join(", "))
    };
    spans.push(Span::styled(format!("  ← {who}"), t.dim()));
    if !r.projects.is_empty() {
        spans.push(Span::styled(
            format!("; projects {}", r.projects.join(", ")),
            t.dim(),
        ));
    }
    Line::from(spans)
}

/// A tag's row: the tag in a column `width` wide (the longest tag's), then its arguments.
fn extra_line(tag: &str, width: usize, e: ExtraArgsEntry, t: Theme) -> Line<'static> {
    let mut spans = vec![Span::styled(format!("  {tag:<width$} "), t.key())];
    match crate::config::split_args(&e.args) {
        Ok(tokens) => spans.push(Span::raw(token_text(&tokens))),
        Err(_) => spans.push(Span::raw(e.args.clone())),
    }
    if e.privileged {
        spans.push(Span::styled("privileged ", t.warn()));
    }
    if let Some(path) = &e.project_volume {
        spans.push(Span::raw(format!("project volume at {path} ")));
    }
    if !e.projects.is_empty() {
        spans.push(Span::styled(
            format!(" projects {}", e.projects.join(", ")),
            t.dim(),
        ));
    }
    Line::from(spans)
}

/// Arguments one by one, as podman gets them: `[--env] [A=two words] `.
pub fn token_text(tokens: &[String]) -> String {
    tokens.iter().map(|a| format!("[{a}] ")).collect()
}

/// The add / edit form, over the screen.
pub fn draw_form(f: &mut Frame, area: Rect, form: &ConfigForm, t: Theme) {
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let value = match &field.value {
            Value::Text(s) if focused => crate::tui::textinput::show(s, form.cursor),
            Value::Text(s) => s.clone(),
            Value::Flag(on) => if *on { "[x]" } else { "[ ]" }.to_string(),
        };
        let label = Span::styled(
            format!("{:<15} ", field.label),
            if focused { t.key() } else { t.title() },
        );
        lines.push(Line::from(vec![
            label,
            Span::styled(
                value,
                if focused {
                    t.selected()
                } else {
                    ratatui::style::Style::default()
                },
            ),
        ]));
        if focused {
            lines.push(Line::from(Span::styled(
                format!("{:16}{}", "", field.hint),
                t.dim(),
            )));
        }
    }
    lines.push(Line::from(""));
    for note in form.notes() {
        lines.push(match note {
            Note::Info(s) => Line::from(Span::styled(s, t.dim())),
            Note::Tokens(tokens) => Line::from(vec![
                Span::styled("podman gets: ", t.dim()),
                Span::raw(token_text(&tokens)),
            ]),
            Note::Warn(s) => Line::from(Span::styled(s, t.warn())),
            Note::Bad(s) => Line::from(Span::styled(s, t.bad())),
        });
    }
    if let Some(w) = &form.warning {
        lines.push(Line::from(Span::styled(format!("! {w}"), t.warn())));
    }
    if let Some(e) = &form.error {
        lines.push(Line::from(Span::styled(format!("✗ {e}"), t.bad())));
    }
    if form.saving {
        lines.push(Line::from(Span::styled("saving…", t.dim())));
    }
    let inner = usize::from(area.width.min(76).saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let r = super::popup_fixed(area, 76, (rows + 2).min(usize::from(u16::MAX)) as u16);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {} ", form.title()))
                .title_bottom(" Tab next · Enter on the last field or Ctrl-S saves · Esc cancels "),
        ),
        r,
    );
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
            crate::tui::textinput::show(value, m.cursor)
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
        "(+ the job's labels; <…>: named per job or per version; the image's own USER adds :U)",
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
    fn the_preview_is_the_podman_run_prepare_builds_with_pogos_init_agent_cache_and_runner() {
        use crate::executor::agent;
        let c = config();
        let host_init = KeepAlive::Init("/usr/libexec/podman/catatonit".into());
        let (_, argv) = preview(&c, &[], "group/app", &host_init);
        let cmd = argv.join(" ");
        let wd = c.working_dir.display().to_string();
        let cache = c.cache_dir.join("group/app").display().to_string();
        assert!(
            cmd.contains(&format!("{cache}:{cache}:z")),
            "the cache: {cmd}"
        );
        assert!(
            cmd.contains(&format!(
                "{wd}/agent/gitlab-runner-<version>:/usr/local/bin/gitlab-runner:ro,z"
            )),
            "pogo's copy of gitlab-runner: {cmd}"
        );
        assert!(
            cmd.contains(&format!("{wd}/agent/catatonit-<version>:")),
            "pogo's copy of catatonit, not the host's: {cmd}"
        );
        if agent::AGENT.is_empty() {
            assert!(
                cmd.contains(r#"--entrypoint=["/run/pogo/init","-P"]"#),
                "{cmd}"
            );
        } else {
            assert!(
                cmd.contains(&format!("{wd}/run/<job>:/run/pogo/sock:z")),
                "{cmd}"
            );
            assert!(cmd.contains("pogo-agent-"), "the stage agent: {cmd}");
        }
        // a job that fetches (GitLab's default) mounts the project's kept builds volume
        assert!(
            cmd.contains("--volume pogo-builds-runner-group-app-")
                && cmd.contains(&format!("-slot:{} ", c.builds_dir)),
            "{cmd}"
        );
        // a helper image: no runner binary (the helper brings it); without kept builds
        // volumes, a builds volume per job
        let mut c = c;
        c.helper_image = Some("registry.example.com/helper:1".into());
        c.persistent_builds_days = 0;
        let (_, argv) = preview(&c, &[], "group/app", &host_init);
        let cmd = argv.join(" ");
        assert!(!cmd.contains("gitlab-runner-<version>"), "{cmd}");
        assert!(
            cmd.contains(&format!("<job>-builds:{}", c.builds_dir)),
            "{cmd}"
        );
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

    #[test]
    fn the_extra_arguments_form_shows_the_tokens_podman_gets_at_80x24() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        m.config.selected = 6;
        update(
            &mut m,
            Msg::Key(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Enter,
            )),
        );
        assert!(matches!(m.mode, Mode::ConfigForm(_)));
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn a_refused_mount_form_says_why_under_its_fields() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        let raw = m.config.raw.clone().unwrap();
        let mut f = ConfigForm::open(
            configform::FormKind::Mount(None),
            &raw,
            "",
            crate::config::PathBase {
                home: Some("/home/me".into()),
                dir: None,
            },
        );
        f.fields[0].value = Value::Text("~/data".into());
        f.fields[1].value = Value::Text("data".into());
        f.focus = 1;
        f.error = f.check().err().map(|(_, why)| why);
        m.mode = Mode::ConfigForm(f);
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn deleting_a_mount_asks_first() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        m.config.selected = 4;
        update(
            &mut m,
            Msg::Key(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Char('D'),
            )),
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn slash_filters_the_config_rows_and_hides_sections_without_a_match() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        for c in "/fix".chars() {
            update(
                &mut m,
                Msg::Key(crossterm::event::KeyEvent::from(
                    crossterm::event::KeyCode::Char(c),
                )),
            );
        }
        assert_eq!(m.visible_config_rows(), vec![5]);
        assert_eq!(
            m.config.selected, 5,
            "the selection moves to what the filter shows"
        );
        insta::assert_snapshot!(render(&m, 80, 24));
    }

    #[test]
    fn an_entry_with_a_project_volume_says_where_jobs_get_it() {
        let e = ExtraArgsEntry {
            project_volume: Some("/var/lib/containers".into()),
            ..ExtraArgsEntry::default()
        };
        let line = extra_line("build-images", 12, e, Theme { color: false });
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(
            text.trim_end(),
            "  build-images project volume at /var/lib/containers"
        );
    }

    #[test]
    fn a_long_tag_keeps_a_space_before_its_arguments() {
        let e = ExtraArgsEntry {
            args: "--env A=1".into(),
            ..ExtraArgsEntry::default()
        };
        let line = extra_line("integration", 11, e, Theme { color: false });
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text.trim_end(), "  integration [--env] [A=1]");
    }

    #[test]
    fn a_setting_the_environment_overrides_says_so_with_the_value_used() {
        let mut m = model();
        m.screen = crate::tui::model::Screen::Config;
        m.config.overridden = vec!["pull_policy".into()];
        let out = format!("{:?}", render(&m, 100, 24));
        assert!(
            out.contains("$POGO_PULL_POLICY overrides it: always"),
            "{out}"
        );
    }
}
