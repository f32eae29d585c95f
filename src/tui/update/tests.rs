//! The tests of `update`: key sequences and messages in, the model and the effects out.

use super::*;
use crate::state::Outcome;
use crate::tui::configform::{self, ConfigForm, FormKind};
use crate::tui::logview;
use crate::tui::model::PreviewField;
use crate::tui::views::fixtures;
use crossterm::event::KeyModifiers;
use crossterm::event::{MouseButton, MouseEventKind};

fn press(m: &mut Model, keys: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in keys.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\x1b' => KeyCode::Esc,
            '\t' => KeyCode::Tab,
            '\x08' => KeyCode::Backspace,
            '←' => KeyCode::Left,
            '→' => KeyCode::Right,
            '↑' => KeyCode::Up,
            '↓' => KeyCode::Down,
            '⇞' => KeyCode::PageUp,
            '⇟' => KeyCode::PageDown,
            '⇱' => KeyCode::Home,
            '⇲' => KeyCode::End,
            c => KeyCode::Char(c),
        };
        effects.extend(update(m, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))));
    }
    effects
}

#[test]
fn q_quits_and_esc_never_does() {
    let mut m = fixtures::model();
    press(&mut m, "q");
    assert!(m.quit);
    let mut m = fixtures::model();
    press(&mut m, "\x1b\x1b\x1b");
    assert!(!m.quit);
}

#[test]
fn tab_and_number_keys_switch_screens() {
    let mut m = fixtures::model();
    press(&mut m, "\t");
    assert_eq!(m.screen, Screen::Config);
    press(&mut m, "\t\t");
    assert_eq!(m.screen, Screen::Jobs);
    press(&mut m, "3");
    assert_eq!(m.screen, Screen::Runners);
    press(&mut m, "1");
    assert_eq!(m.screen, Screen::Jobs);
}

#[test]
fn moving_to_another_job_loads_its_log() {
    let mut m = fixtures::model();
    let first = m.selected_job().unwrap().key.clone();
    let fx = press(&mut m, "j");
    assert_ne!(m.selected_job().unwrap().key, first);
    assert_eq!(fx, vec![Effect::ReloadLog]);
    assert_eq!(m.log.key, Some(m.selected_job().unwrap().key.clone()));
    press(&mut m, "kkkk");
    assert_eq!(m.selected, 0, "stops at the first job");
}

#[test]
fn f_toggles_following_the_log() {
    let mut m = fixtures::model();
    assert!(m.log.follow);
    press(&mut m, "f");
    assert!(!m.log.follow);
    press(&mut m, "f");
    assert!(m.log.follow);
}

#[test]
fn slash_in_the_log_searches_and_n_jumps_between_matches() {
    let mut m = fixtures::model();
    press(&mut m, "l/step 2\n");
    assert_eq!(m.mode, Mode::Normal);
    let first = m.log.hit.unwrap();
    assert!(m.log.line(first).unwrap().contains("step 2"));
    press(&mut m, "/echo\n");
    let a = m.log.hit.unwrap();
    press(&mut m, "n");
    let b = m.log.hit.unwrap();
    assert!(b > a);
    press(&mut m, "N");
    assert_eq!(m.log.hit, Some(a));
    press(&mut m, "/nothing-like-this\n");
    assert_eq!(m.status.as_deref(), Some("no match"));
}

#[test]
fn typing_in_the_search_does_not_trigger_other_keys() {
    let mut m = fixtures::model();
    press(&mut m, "l/qx");
    assert!(!m.quit);
    assert_eq!(m.mode, Mode::Search("qx".into()));
    press(&mut m, "\x1b");
    assert_eq!(m.mode, Mode::Normal);
    assert!(!m.quit);
}

fn shown_ids(m: &Model) -> Vec<String> {
    m.visible_jobs()
        .into_iter()
        .map(|i| m.jobs[i].id.clone())
        .collect()
}

#[test]
fn slash_in_the_job_list_filters_jobs_as_you_type() {
    let mut m = fixtures::model();
    assert_eq!(shown_ids(&m), vec!["1201", "1202", "1190"]);
    press(&mut m, "/a");
    assert_eq!(m.mode, Mode::Filter);
    assert_eq!(shown_ids(&m).len(), 3, "every job has an a somewhere");
    press(&mut m, "pi");
    assert_eq!(shown_ids(&m), vec!["1202"], "group/api only, while typing");
    assert_eq!(m.selected_job().unwrap().id, "1202");
    press(&mut m, "\x08\x08pp");
    assert_eq!(shown_ids(&m), vec!["1201", "1190"], "backspace, then app");
    assert!(!m.quit, "typing q or x in a filter is text, not a command");
}

#[test]
fn enter_keeps_the_filter_and_esc_while_typing_clears_it() {
    let mut m = fixtures::model();
    press(&mut m, "/LINT\n");
    assert_eq!(m.mode, Mode::Normal);
    assert_eq!(m.filters.jobs, "LINT");
    assert_eq!(shown_ids(&m), vec!["1190"], "the filter ignores case");
    press(&mut m, "/");
    assert_eq!(m.mode, Mode::Filter, "/ again edits the kept filter");
    press(&mut m, "\x1b");
    assert_eq!(m.filters.jobs, "");
    assert_eq!(shown_ids(&m).len(), 3);
    assert!(!m.quit);
}

#[test]
fn the_filter_matches_stage_state_and_image_too() {
    let mut m = fixtures::model();
    press(&mut m, "/failed\n");
    assert_eq!(shown_ids(&m), vec!["1190"]);
    press(&mut m, "/\x1b/get_sources\n");
    assert_eq!(shown_ids(&m), vec!["1202"]);
    press(&mut m, "/\x1b/rust\n");
    assert_eq!(shown_ids(&m), vec!["1201"]);
}

#[test]
fn filtering_moves_the_selection_to_a_shown_job_and_loads_its_log() {
    let mut m = fixtures::model();
    assert_eq!(m.selected_job().unwrap().id, "1201");
    let fx = press(&mut m, "/lint");
    assert_eq!(m.selected_job().unwrap().id, "1190");
    assert_eq!(fx, vec![Effect::ReloadLog]);
    assert_eq!(m.log.key.as_deref(), Some("pogo-laptop-1190-0"));
    press(&mut m, "\n");
    // actions act on the job shown and selected
    assert_eq!(
        press(&mut m, "s"),
        vec![Effect::SaveLog {
            key: "pogo-laptop-1190-0".into(),
            id: "1190".into(),
            times: None
        }]
    );
    // ↑↓ move among the shown jobs only
    press(&mut m, "/\x1b/app\n");
    assert_eq!(shown_ids(&m), vec!["1201", "1190"]);
    press(&mut m, "k");
    assert_eq!(m.selected_job().unwrap().id, "1201");
    press(&mut m, "j");
    assert_eq!(m.selected_job().unwrap().id, "1190", "1202 is skipped");
}

#[test]
fn a_filter_that_matches_nothing_leaves_no_job_to_act_on() {
    let mut m = fixtures::model();
    press(&mut m, "/zzz\n");
    assert!(m.selected_job().is_none());
    assert_eq!(m.log.key, None, "no log shown for a hidden job");
    assert!(press(&mut m, "x").is_empty());
    assert_eq!(m.status.as_deref(), Some("no job selected"));
    let fx = press(&mut m, "/\x1b");
    assert_eq!(m.selected_job().unwrap().id, "1201");
    assert_eq!(fx, vec![Effect::ReloadLog]);
}

#[test]
fn a_refresh_keeps_the_selection_on_a_shown_job() {
    let mut m = fixtures::model();
    press(&mut m, "/api\n");
    let (containers, records) = (m.containers.clone(), m.records.clone());
    update(
        &mut m,
        Msg::Jobs {
            containers: Ok(containers),
            records,
        },
    );
    assert_eq!(m.selected_job().unwrap().id, "1202");
}

#[test]
fn l_arrow_and_enter_focus_the_log_and_h_and_arrow_the_list() {
    for keys in ["l", "→", "\n"] {
        let mut m = fixtures::model();
        assert_eq!(m.focus, Focus::List);
        press(&mut m, keys);
        assert_eq!(m.focus, Focus::Log, "{keys:?}");
    }
    for keys in ["h", "←"] {
        let mut m = fixtures::model();
        press(&mut m, "l");
        press(&mut m, keys);
        assert_eq!(m.focus, Focus::List, "{keys:?}");
    }
}

#[test]
fn esc_in_the_log_goes_back_to_the_list_instead_of_quitting() {
    let mut m = fixtures::model();
    press(&mut m, "l\x1b");
    assert!(!m.quit);
    assert_eq!(m.focus, Focus::List);
    press(&mut m, "\x1b");
    assert!(!m.quit, "Esc never quits");
    assert_eq!(m.status.as_deref(), Some("nothing to back out of; q quits"));
    press(&mut m, "q");
    assert!(m.quit);
}

#[test]
fn esc_clears_a_kept_filter_and_never_quits() {
    let mut m = fixtures::model();
    press(&mut m, "/api\n\x1b");
    assert!(!m.quit);
    assert_eq!(m.filters.jobs, "");
    press(&mut m, "\x1b");
    assert!(!m.quit);
}

#[test]
fn scrolling_the_log_reaches_its_last_line_whatever_the_pane_height() {
    for (jobs, rows) in [(10, 24), (0, 24), (0, 50)] {
        let mut m = fixtures::model();
        fixtures::add_finished_jobs(&mut m, jobs);
        m.size = (80, rows);
        for n in 0..60 {
            let at = m.log.offset;
            m.log.append(at, format!("more {n}\n").as_bytes());
        }
        let shown = |m: &Model| {
            crate::tui::views::fixtures::render(m, 80, rows)
                .to_string()
                .contains("more 59")
        };
        press(&mut m, "lg");
        assert!(!shown(&m), "at the top");
        // one page up from the top does nothing, one line down moves at once
        let top = m.log.first_visible(log_height(&m));
        press(&mut m, "j");
        assert_eq!(m.log.first_visible(log_height(&m)), top + 1);
        for _ in 0..80 {
            press(&mut m, "j");
        }
        assert!(
            shown(&m),
            "{jobs} jobs, {rows} rows: j never shows the last line"
        );
        // `f` pauses where the view is: the last line stays on screen
        press(&mut m, "G");
        press(&mut m, "f");
        assert!(!m.log.follow);
        assert!(shown(&m), "{jobs} jobs, {rows} rows: f moved the view");
    }
}

#[test]
fn j_and_k_scroll_the_focused_log_by_a_line_and_keep_the_job() {
    let mut m = fixtures::model();
    let job = m.selected_job().unwrap().key.clone();
    for _ in 0..10 {
        let at = m.log.offset;
        m.log.append(at, b"more\n");
    }
    press(&mut m, "l");
    let bottom = m.log.first_visible(log_height(&m));
    assert!(bottom > 0);
    let fx = press(&mut m, "k");
    assert!(fx.is_empty());
    assert!(!m.log.follow);
    assert_eq!(m.log.first_visible(log_height(&m)), bottom - 1);
    press(&mut m, "↑");
    assert_eq!(m.log.first_visible(log_height(&m)), bottom - 2);
    press(&mut m, "j↓");
    assert_eq!(m.log.first_visible(log_height(&m)), bottom);
    assert_eq!(
        m.selected_job().unwrap().key,
        job,
        "the selection did not move"
    );
}

#[test]
fn t_on_jobs_toggles_log_timestamps_in_either_pane_and_stays_for_the_next_job() {
    let mut m = fixtures::model();
    assert!(!m.show_times);
    press(&mut m, "t");
    assert!(m.show_times);
    press(&mut m, "j");
    assert!(m.show_times, "another job's log shows times too");
    press(&mut m, "lt");
    assert!(!m.show_times);
    // on Config, t still types the preview's tags
    press(&mut m, "2t");
    assert_eq!(m.mode, Mode::PreviewInput(PreviewField::Tags));
    assert!(!m.show_times);
}

#[test]
fn turning_timestamps_on_reads_the_zone_offset_again_for_daylight_saving() {
    let mut m = fixtures::model();
    assert_eq!(press(&mut m, "t"), vec![Effect::ReadUtcOffset]);
    m.dirty = false;
    update(&mut m, Msg::UtcOffset(7200));
    assert_eq!(m.utc_offset, 7200);
    assert!(m.dirty, "the shown times change");
    assert!(
        press(&mut m, "t").is_empty(),
        "turning them off reads nothing"
    );
}

#[test]
fn s_saves_the_log_with_timestamps_while_they_are_shown() {
    let mut m = fixtures::model();
    press(&mut m, "t");
    update(&mut m, Msg::UtcOffset(-18000));
    assert_eq!(
        press(&mut m, "s"),
        vec![Effect::SaveLog {
            key: "pogo-laptop-1201-0".into(),
            id: "1201".into(),
            times: Some(-18000)
        }]
    );
}

#[test]
fn the_times_of_the_log_arrive_for_the_job_shown_only() {
    let mut m = fixtures::model();
    let key = m.log.key.clone().unwrap();
    let before = m.log.times.clone();
    update(
        &mut m,
        Msg::LogTimes {
            key: "another-job".into(),
            start: 0,
            data: b"0 1\n".to_vec(),
        },
    );
    assert_eq!(m.log.times, before);
    let (at, end) = (m.log.times_offset, m.log.offset);
    update(
        &mut m,
        Msg::LogTimes {
            key,
            start: at,
            data: format!("{end} 1800000000000\n").into_bytes(),
        },
    );
    assert_eq!(m.log.times.len(), before.len() + 1);
}

#[test]
fn the_list_filter_is_edited_at_its_cursor_and_typing_again_starts_at_its_end() {
    let mut m = fixtures::model();
    press(&mut m, "/lptop");
    press(&mut m, "←←←←a");
    assert_eq!(
        m.filters.of(Screen::Jobs).map(String::as_str),
        Some("laptop")
    );
    press(&mut m, "\n/x");
    assert_eq!(
        m.filters.of(Screen::Jobs).map(String::as_str),
        Some("laptopx")
    );
}

#[test]
fn page_and_end_keys_move_in_the_focused_pane() {
    let mut m = fixtures::model();
    m.size = (100, 12);
    let visible = m.visible_jobs();
    assert!(visible.len() > 2, "{visible:?}");
    let page = super::super::views::jobs::list_height(&m);
    // the job list
    press(&mut m, "⇲");
    assert_eq!(m.selected, *visible.last().unwrap(), "End: the last job");
    press(&mut m, "⇱");
    assert_eq!(m.selected, visible[0], "Home: the first job");
    press(&mut m, "⇟");
    // a page of screen rows: service rows count
    let rows = m.shown_rows();
    assert_eq!(
        (m.selected, m.service),
        rows[page.min(rows.len() - 1)],
        "PgDn: a page on"
    );
    press(&mut m, "⇞");
    assert_eq!(m.selected, visible[0]);
    // the log, once focused: the keys act on it, the selection stays
    let before = m.selected;
    press(&mut m, "l⇱");
    assert_eq!((m.log.follow, m.log.top, m.selected), (false, 0, before));
    press(&mut m, "⇲");
    assert!(m.log.follow);
    assert_eq!(m.selected, before);
}

#[test]
fn log_keys_work_whichever_pane_is_focused() {
    for focus in ["", "l"] {
        let mut m = fixtures::model();
        press(&mut m, focus);
        press(&mut m, "f");
        assert!(!m.log.follow, "f with focus {focus:?}");
        press(&mut m, "G");
        assert!(m.log.follow);
        press(&mut m, "g");
        assert_eq!((m.log.follow, m.log.top), (false, 0));
        assert_eq!(
            press(&mut m, "s"),
            vec![Effect::SaveLog {
                key: "pogo-laptop-1201-0".into(),
                id: "1201".into(),
                times: None
            }]
        );
    }
}

#[test]
fn slash_on_runners_filters_by_name_url_and_executor() {
    let mut m = fixtures::model();
    press(&mut m, "3/DOCKER");
    assert_eq!(m.visible_runners(), vec![1]);
    assert_eq!(m.selected_runner().unwrap().name, "docker-old");
    press(&mut m, "\n");
    assert_eq!(
        press(&mut m, "Dy"),
        vec![Effect::Unregister("docker-old".into())],
        "D acts on the runner shown"
    );
    press(&mut m, "/\x1b/gitlab.example\n");
    assert_eq!(m.visible_runners(), vec![0, 1], "the URL counts");
    press(&mut m, "/\x1b/nomatch\n");
    assert!(press(&mut m, "D").is_empty());
    assert_eq!(m.status.as_deref(), Some("no runner selected"));
    assert!(m.filters.jobs.is_empty(), "each screen has its own filter");
}

#[test]
fn x_asks_before_stopping_and_only_y_stops() {
    let mut m = fixtures::model();
    assert!(press(&mut m, "x").is_empty());
    assert!(matches!(m.mode, Mode::ConfirmStop { .. }));
    assert!(press(&mut m, "n").is_empty());
    assert_eq!(m.mode, Mode::Normal);
    let fx = press(&mut m, "xy");
    assert_eq!(
        fx,
        vec![Effect::Stop {
            container: "pogo-laptop-1201-0-build".to_string(),
            key: "pogo-laptop-1201-0".to_string(),
        }]
    );
}

#[test]
fn e_opens_a_shell_only_in_a_running_job() {
    let mut m = fixtures::model();
    let project_dir = "/builds/web/shop".to_string();
    let r = m.records.iter_mut().find(|r| r.id == "1201").unwrap();
    r.project_dir = Some(project_dir.clone());
    m.rebuild_jobs();
    assert_eq!(
        press(&mut m, "e"),
        vec![Effect::Shell {
            container: "pogo-laptop-1201-0-build".into(),
            key: "pogo-laptop-1201-0".into(),
            workdir: Some(project_dir),
        }]
    );
    // the finished job
    let idx = m
        .jobs
        .iter()
        .position(|j| j.outcome == Some(Outcome::Failed))
        .unwrap();
    m.selected = idx;
    assert!(press(&mut m, "e").is_empty());
    assert!(m.status.as_deref().unwrap().contains("not running"));
}

/// The fixture with its failed job 1190 kept by `keep_failed` (its container runs on),
/// selected.
fn kept_failed_job_selected() -> Model {
    let mut m = fixtures::model();
    let r = m.records.iter_mut().find(|r| r.id == "1190").unwrap();
    r.kept_until = Some(fixtures::NOW + 600);
    m.containers.push(fixtures::ctr(
        "pogo-laptop-1190-0-build",
        "pogo-laptop-1190-0",
        "node:22",
        "running",
    ));
    m.rebuild_jobs();
    m.selected = m.jobs.iter().position(|j| j.id == "1190").unwrap();
    m
}

/// `keep_failed` keeps a failed job's container running for debugging: `e` opens a
/// shell in it (it said "not running").
#[test]
fn e_opens_a_shell_in_a_failed_jobs_kept_container() {
    let mut m = kept_failed_job_selected();
    assert_eq!(
        press(&mut m, "e"),
        vec![Effect::Shell {
            container: "pogo-laptop-1190-0-build".into(),
            key: "pogo-laptop-1190-0".into(),
            workdir: None,
        }]
    );
    let (cells, screen) = fixtures::screen_text(&m, 140, 30);
    assert!(cells.contains("kept to 08:10"), "{screen:?}");
}

#[test]
fn a_service_row_is_selectable_with_its_own_log_shell_and_inspect() {
    let mut m = fixtures::model();
    let rows = |m: &Model| (m.selected_job().unwrap().id.clone(), m.service);
    assert_eq!(rows(&m), ("1201".to_string(), None));
    press(&mut m, "j");
    assert_eq!(rows(&m), ("1202".to_string(), None));
    let fx = press(&mut m, "j");
    assert_eq!(rows(&m), ("1202".to_string(), Some(0)), "its service's row");
    assert_eq!(fx, vec![Effect::ReloadLog]);
    assert_eq!(
        m.log.key.as_deref(),
        Some("service:pogo-laptop-1202-1-svc0"),
        "the service's podman logs"
    );
    assert_eq!(
        press(&mut m, "e"),
        vec![Effect::Shell {
            container: "pogo-laptop-1202-1-svc0".into(),
            key: "pogo-laptop-1202-1".into(),
            workdir: None,
        }]
    );
    assert_eq!(
        press(&mut m, "i"),
        vec![Effect::Inspect("pogo-laptop-1202-1-svc0".into())]
    );
    assert_eq!(press(&mut m, "x"), vec![]);
    assert!(m.status.as_deref().unwrap_or("").contains("acts on jobs"));
    let (cells, _) = fixtures::screen_text(&m, 100, 30);
    assert!(
        cells.contains("log · service postgres:16 of job 1202 · podman logs"),
        "{cells}"
    );
    press(&mut m, "j");
    assert_eq!(rows(&m), ("1190".to_string(), None));
    press(&mut m, "k");
    assert_eq!(rows(&m), ("1202".to_string(), Some(0)));
    // a refresh keeps the service row selected
    m.rebuild_jobs();
    assert_eq!(rows(&m), ("1202".to_string(), Some(0)));
}

#[test]
fn a_search_also_counts_the_matches_in_the_lines_the_pane_dropped() {
    let mut m = fixtures::model();
    let line = format!("{}\n", "x".repeat(1023));
    let text = format!(
        "needle early\n{}",
        line.repeat(logview::MAX_TEXT / 1024 + 64)
    );
    m.log.reset(m.log.key.clone());
    m.log.append(0, text.as_bytes());
    assert!(m.log.dropped > 0);
    let upto = m.log.starts[0];
    let key = m.log.key.clone().unwrap();
    press(&mut m, "l/needle");
    let fx = press(&mut m, "\n");
    assert_eq!(
        fx,
        vec![Effect::SearchEarlier {
            key: key.clone(),
            needle: "needle".into(),
            upto
        }]
    );
    update(
        &mut m,
        Msg::EarlierMatches {
            key,
            needle: "needle".into(),
            count: 1,
        },
    );
    let (cells, _) = fixtures::screen_text(&m, 200, 30);
    assert!(
        cells.contains("earlier lines not shown, 1 of them match (s saves all)"),
        "{cells}"
    );
}

#[test]
fn x_on_a_kept_job_asks_then_releases_it() {
    let mut m = kept_failed_job_selected();
    assert_eq!(press(&mut m, "x"), vec![]);
    let (cells, _) = fixtures::screen_text(&m, 100, 30);
    assert!(
        cells.contains("Remove job 1190's kept containers now?"),
        "{cells}"
    );
    assert_eq!(press(&mut m, "n"), vec![]);
    assert_eq!(m.status.as_deref(), Some("still kept"));
    press(&mut m, "x");
    assert_eq!(
        press(&mut m, "y"),
        vec![Effect::Release {
            key: "pogo-laptop-1190-0".into()
        }]
    );
}

#[test]
fn i_inspects_s_saves_and_o_opens_the_job() {
    let mut m = fixtures::model();
    assert_eq!(
        press(&mut m, "i"),
        vec![Effect::Inspect("pogo-laptop-1201-0-build".into())]
    );
    assert_eq!(
        press(&mut m, "s"),
        vec![Effect::SaveLog {
            key: "pogo-laptop-1201-0".into(),
            id: "1201".into(),
            times: None
        }]
    );
    assert_eq!(
        press(&mut m, "o"),
        vec![Effect::OpenUrl(
            "https://gitlab.example.com/group/app/-/jobs/1201".into()
        )]
    );
}

#[test]
fn a_slow_inspect_does_not_replace_a_form_opened_meanwhile() {
    let mut m = fixtures::model();
    press(&mut m, "i2a/srv");
    let inspected = || Msg::Inspected {
        title: "pogo-laptop-1201-0-build".into(),
        text: "[{}]".into(),
    };
    update(&mut m, inspected());
    assert_eq!(
        form(&m).fields[0].value,
        configform::Value::Text("/srv".into()),
        "the typing is kept"
    );
    assert!(m.status.as_deref().unwrap().contains("press i again"));
    press(&mut m, "\x1b1");
    update(&mut m, inspected());
    assert!(matches!(m.mode, Mode::Inspect { .. }));
}

#[test]
fn ctrl_c_quits_from_a_form_a_filter_and_a_search_without_typing_a_c() {
    for open in ["2a", "/", "l/", "3a"] {
        let mut m = fixtures::model();
        press(&mut m, open);
        assert_ne!(m.mode, Mode::Normal, "{open}");
        update(
            &mut m,
            Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        );
        assert!(m.quit, "Ctrl-C after {open:?}");
    }
}

#[test]
fn question_mark_shows_help_and_any_key_closes_it() {
    let mut m = fixtures::model();
    press(&mut m, "?");
    assert_eq!(m.mode, Mode::Help);
    press(&mut m, "j");
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn preview_tags_are_typed_on_the_config_screen() {
    let mut m = fixtures::model();
    press(&mut m, "2tbuild deploy\n");
    assert_eq!(m.config.preview_tags, "build deploy");
    press(&mut m, "pgroup/app\n");
    assert_eq!(m.config.preview_project, "group/app");
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn capital_e_edits_the_config_file() {
    let mut m = fixtures::model();
    let fx = press(&mut m, "2E");
    assert_eq!(fx, vec![Effect::EditConfig("/home/me/.pogo.yaml".into())]);
}

#[test]
fn an_invalid_config_keeps_the_last_good_one() {
    let mut m = fixtures::model();
    let good = m.config.good.clone();
    update(
        &mut m,
        Msg::Config(Err("/home/me/.pogo.yaml:3:5: invalid YAML".into())),
    );
    assert_eq!(m.config.good, good);
    assert!(m.config.error.is_some());
    let c = good.clone().unwrap();
    update(&mut m, Msg::Config(Ok(Box::new((c, "x".into())))));
    assert!(m.config.error.is_none());
}

#[test]
fn a_podman_failure_shows_a_banner_until_podman_answers() {
    let mut m = fixtures::model();
    update(&mut m, Msg::PodmanFailed("podman is not installed".into()));
    assert!(m.podman_error.is_some());
    update(
        &mut m,
        Msg::Jobs {
            containers: Ok(Vec::new()),
            records: Vec::new(),
        },
    );
    assert!(m.podman_error.is_none());
}

#[test]
fn an_empty_job_list_asks_who_runs_gitlab_runner_and_a_full_one_does_not() {
    let mut m = fixtures::model();
    let (containers, records) = (m.containers.clone(), m.records.clone());
    let fx = update(
        &mut m,
        Msg::Jobs {
            containers: Ok(containers),
            records,
        },
    );
    assert!(!fx.contains(&Effect::FindOtherRunner));
    let fx = update(
        &mut m,
        Msg::Jobs {
            containers: Ok(Vec::new()),
            records: Vec::new(),
        },
    );
    assert_eq!(fx, vec![Effect::FindOtherRunner]);
    let other = crate::tui::procs::OtherRunner {
        user: "gitlab-runner".into(),
        uid: 998,
    };
    update(&mut m, Msg::OtherRunner(Some(other.clone())));
    assert_eq!(m.other_runner, Some(other));
    update(&mut m, Msg::OtherRunner(None));
    assert_eq!(m.other_runner, None, "gone again: nothing to say");
}

#[test]
fn a_refused_registration_opens_the_form_again_as_typed_with_gitlabs_answer() {
    let mut m = fixtures::model();
    m.default_runner_name = "laptop-2".into();
    press(&mut m, "3a");
    press(&mut m, "https://gitlab.example.com\nglrt-mistyped");
    let fx = press(&mut m, "\t\n\n");
    assert!(matches!(fx.as_slice(), [Effect::Register { .. }]));
    assert_eq!(m.mode, Mode::Normal);
    update(
        &mut m,
        Msg::RegisterFailed("not registered: GitLab answered 403 Forbidden".into()),
    );
    match &m.mode {
        Mode::Register(f) => {
            assert_eq!(f.url, "https://gitlab.example.com");
            assert_eq!(f.token.expose(), "glrt-mistyped");
            assert_eq!(f.name, "laptop-2");
            assert!(f.error.as_deref().unwrap().contains("403"), "{f:?}");
        }
        other => panic!("the form is gone: {other:?}"),
    }
    // fixed and sent again: a second refusal reopens it once more
    press(&mut m, "\x1b");
    assert_eq!(m.mode, Mode::Normal);
    update(&mut m, Msg::RegisterFailed("not registered: again".into()));
    assert_eq!(m.mode, Mode::Normal, "nothing was being registered");
}

#[test]
fn a_registers_a_runner_with_the_typed_url_token_and_name() {
    let mut m = fixtures::model();
    m.default_runner_name = "laptop-2".into();
    press(&mut m, "3a");
    assert!(matches!(m.mode, Mode::Register(_)));
    // Enter on the URL field moves on; the token is typed into the second field.
    press(&mut m, "https://gitlab.example.com\nglrt-secret-token");
    if let Mode::Register(f) = &m.mode {
        assert_eq!(f.url, "https://gitlab.example.com");
        assert_eq!(f.token.expose(), "glrt-secret-token");
        assert!(!format!("{f:?}").contains("glrt-secret-token"));
    }
    let fx = press(&mut m, "\t\n/etc/company-ca.pem\n");
    match fx.as_slice() {
        [Effect::Register {
            url,
            token,
            name,
            ca_file,
        }] => {
            assert_eq!(url, "https://gitlab.example.com");
            assert_eq!(token.expose(), "glrt-secret-token");
            assert_eq!(name, "laptop-2");
            assert_eq!(
                ca_file.as_deref(),
                Some(std::path::Path::new("/etc/company-ca.pem"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn registering_without_a_token_says_what_is_missing() {
    let mut m = fixtures::model();
    press(&mut m, "3ahttps://gitlab.example.com\n\n");
    // on the name field now; then the CA file (empty), submit
    let fx = press(&mut m, "x\n\n");
    assert!(fx.is_empty());
    match &m.mode {
        Mode::Register(f) => assert!(f.error.as_deref().unwrap().contains("token")),
        other => panic!("{other:?}"),
    }
    press(&mut m, "\x1b");
    assert_eq!(m.mode, Mode::Normal);
    assert!(!m.quit, "Esc closes the form, it does not quit");
}

#[test]
fn capital_d_unregisters_the_selected_runner_after_asking() {
    let mut m = fixtures::model();
    press(&mut m, "3j");
    assert!(press(&mut m, "D").is_empty());
    assert_eq!(m.mode, Mode::ConfirmUnregister("docker-old".into()));
    assert_eq!(
        press(&mut m, "y"),
        vec![Effect::Unregister("docker-old".into())]
    );
    assert!(press(&mut m, "Dn").is_empty());
}

#[test]
fn s_and_t_start_and_stop_the_runner_service() {
    let mut m = fixtures::model();
    assert_eq!(press(&mut m, "3S"), vec![Effect::Service { start: true }]);
    // stopping it aborts every running job: only after asking
    assert!(press(&mut m, "T").is_empty());
    assert_eq!(m.mode, Mode::ConfirmServiceStop);
    assert!(press(&mut m, "n").is_empty());
    assert_eq!(press(&mut m, "Ty"), vec![Effect::Service { start: false }]);
}

fn form(m: &Model) -> &ConfigForm {
    match &m.mode {
        Mode::ConfigForm(f) => f,
        other => panic!("no form open: {other:?}"),
    }
}

#[test]
fn arrows_select_config_rows_and_enter_opens_the_selected_mount_filled_in() {
    let mut m = fixtures::model();
    press(&mut m, "2jjjjj");
    assert_eq!(m.config.selected, 5, "settings 0-3, then mount 1 and 2");
    press(&mut m, "\n");
    let f = form(&m);
    assert_eq!(f.kind, FormKind::Mount(Some(1)));
    assert_eq!(
        f.fields[0].value,
        configform::Value::Text("/home/me/fixtures".into())
    );
    assert_eq!(f.fields[5].value, configform::Value::Flag(true));
    press(&mut m, "jjjjjjjjjj\x1b");
    assert_eq!(
        m.mode,
        Mode::Normal,
        "Esc closes the form; typing went into it"
    );
    assert!(!m.quit);
}

#[test]
fn a_new_mount_is_saved_through_the_runtime_with_its_host_path_checked() {
    let mut m = fixtures::model();
    let fx = press(&mut m, "2a/srv/data\n/data\n\nbig\n\n\n");
    match fx.as_slice() {
        [Effect::SaveConfig {
            edit,
            base,
            check_host,
        }] => {
            assert_eq!(base, fixtures::CONFIG_YAML);
            assert_eq!(
                check_host.as_deref(),
                Some(std::path::Path::new("/srv/data"))
            );
            assert!(matches!(
                edit,
                crate::config::edit::Edit::Mount { index: None, .. }
            ));
        }
        other => panic!("{other:?}"),
    }
    assert!(form(&m).saving, "the form stays until the save is done");
    assert!(press(&mut m, "x").is_empty(), "no typing while saving");
    update(
        &mut m,
        Msg::ConfigSaved(Ok("saved /home/me/.pogo.yaml".into())),
    );
    assert_eq!(m.mode, Mode::Normal);
    assert_eq!(m.status.as_deref(), Some("saved /home/me/.pogo.yaml"));
}

#[test]
fn a_missing_host_directory_warns_once_and_enter_saves_anyway() {
    let mut m = fixtures::model();
    press(&mut m, "2a/nope\n/data\n\n\n\n\n");
    update(
        &mut m,
        Msg::ConfigSaved(Err(SaveProblem::Warning("/nope does not exist".into()))),
    );
    assert_eq!(form(&m).warning.as_deref(), Some("/nope does not exist"));
    assert!(!form(&m).saving);
    // Enter on any field saves while the warning shows (Tab wraps to the first field)
    press(&mut m, "\t");
    assert_eq!(form(&m).focus, 0);
    match press(&mut m, "\n").as_slice() {
        [Effect::SaveConfig { check_host, .. }] => assert_eq!(*check_host, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_form_points_at_the_wrong_field() {
    let mut m = fixtures::model();
    let fx = press(&mut m, "2a/srv\nrelative\n\n\n\n\n");
    assert!(fx.is_empty());
    let f = form(&m);
    assert_eq!(f.focus, 1);
    assert!(f.error.as_deref().unwrap().contains("must be absolute"));
}

#[test]
fn a_on_a_tag_adds_extra_arguments_and_d_deletes_after_asking() {
    let mut m = fixtures::model();
    press(&mut m, "2G");
    // G is not bound on Config; walk down to the last row (the `ci` tag)
    press(&mut m, "jjjjjjjj");
    press(&mut m, "a");
    assert_eq!(form(&m).kind, FormKind::Extra(None));
    press(&mut m, "\x1b");
    assert!(press(&mut m, "D").is_empty());
    assert!(matches!(&m.mode, Mode::ConfirmDelete { what, .. } if what.contains("tag ci")));
    match press(&mut m, "y").as_slice() {
        [Effect::SaveConfig { edit, .. }] => assert_eq!(
            *edit,
            crate::config::edit::Edit::Extra {
                tag: Some("ci".into()),
                new: None
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(press(&mut m, "Dn").is_empty());
    assert_eq!(m.status.as_deref(), Some("kept"));
}

#[test]
fn capital_j_previews_the_running_jobs_in_turn() {
    let mut m = fixtures::model();
    for (i, tags) in [vec!["build", "big"], vec!["test"]].into_iter().enumerate() {
        m.jobs[i].tags = tags.into_iter().map(String::from).collect();
    }
    press(&mut m, "2J");
    assert_eq!(m.config.preview_tags, "build big");
    assert_eq!(m.config.preview_project, "group/app");
    press(&mut m, "J");
    assert_eq!(m.config.preview_tags, "test");
    assert_eq!(m.config.preview_project, "group/api");
    press(&mut m, "J");
    assert_eq!(m.config.preview_tags, "build big", "back to the first");
    let mut idle = Model::new(0, false);
    press(&mut idle, "2J");
    assert!(idle.status.as_deref().unwrap().contains("no running job"));
}

#[test]
fn enter_after_a_config_filter_edits_the_row_the_filter_shows() {
    let mut m = fixtures::model();
    press(&mut m, "2/ci\n");
    assert_eq!(m.mode, Mode::Normal);
    press(&mut m, "\n");
    assert_eq!(form(&m).kind, FormKind::Extra(Some("ci".into())));
    press(&mut m, "\x1b/zzz");
    assert!(m.visible_config_rows().is_empty());
    press(&mut m, "\n\n");
    assert!(m
        .status
        .as_deref()
        .unwrap()
        .contains("filter hides every row"));
}

#[test]
fn editing_a_setting_the_environment_overrides_warns_in_the_form() {
    let mut m = fixtures::model();
    m.config.overridden = vec!["default_image".into()];
    press(&mut m, "2\n");
    assert_eq!(
        form(&m).notes(),
        vec![configform::Note::Warn(
            "$POGO_DEFAULT_IMAGE is set: it wins over the file while it is".into()
        )]
    );
    press(&mut m, "\x1bj\n");
    assert!(form(&m).notes().is_empty(), "pull policy is not overridden");
}

#[test]
fn forms_do_not_open_while_the_file_has_an_error() {
    let mut m = fixtures::model();
    update(
        &mut m,
        Msg::Config(Err("/home/me/.pogo.yaml:3:1: invalid YAML".into())),
    );
    assert!(press(&mut m, "2\n").is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(m.status.as_deref().unwrap().contains("fix it first"));
}

fn click(m: &mut Model, kind: MouseEventKind, row: u16) -> Vec<Effect> {
    update(
        m,
        Msg::Mouse(MouseEvent {
            kind,
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        }),
    )
}

#[test]
fn a_click_in_the_log_focuses_it_and_a_click_in_the_list_focuses_the_list() {
    let mut m = fixtures::model();
    m.size = (80, 24);
    // rows: tabs(0), list 1..=7, log from 8
    click(&mut m, MouseEventKind::Down(MouseButton::Left), 12);
    assert_eq!(m.focus, Focus::Log);
    assert_eq!(
        m.selected_job().unwrap().id,
        "1201",
        "the job stays selected"
    );
    click(&mut m, MouseEventKind::Down(MouseButton::Left), 1);
    assert_eq!(m.focus, Focus::List, "the list's border is the list too");
    press(&mut m, "l");
    let fx = click(&mut m, MouseEventKind::Down(MouseButton::Left), 4);
    assert_eq!(m.focus, Focus::List);
    assert_eq!(m.selected_job().unwrap().id, "1202");
    assert_eq!(fx, vec![Effect::ReloadLog]);
}

#[test]
fn clicking_a_filtered_list_selects_the_row_shown_there() {
    let mut m = fixtures::model();
    m.size = (80, 24);
    press(&mut m, "/app\n");
    // rows: 1201 at 3, 1190 at 4
    click(&mut m, MouseEventKind::Down(MouseButton::Left), 4);
    assert_eq!(m.selected_job().unwrap().id, "1190");
    press(&mut m, "3/docker\n");
    click(&mut m, MouseEventKind::Down(MouseButton::Left), 3);
    assert_eq!(m.selected_runner().unwrap().name, "docker-old");
}

#[test]
fn clicking_a_job_selects_it_and_the_wheel_scrolls_its_log() {
    let mut m = fixtures::model();
    m.size = (80, 24);
    let fx = click(&mut m, MouseEventKind::Down(MouseButton::Left), 6);
    assert_eq!(m.selected_job().unwrap().id, "1190");
    assert_eq!(fx, vec![Effect::ReloadLog]);
    let mut m = fixtures::model();
    m.size = (80, 24);
    click(&mut m, MouseEventKind::ScrollUp, 15);
    assert!(!m.log.follow, "scrolling up stops following");
}

#[test]
fn a_tick_redraws_only_while_jobs_run() {
    let mut m = fixtures::model();
    m.dirty = false;
    let next = m.now + 1;
    update(&mut m, Msg::Tick(next));
    assert!(m.dirty);
    let mut idle = Model::new(0, false);
    idle.dirty = false;
    update(&mut idle, Msg::Tick(5));
    assert!(!idle.dirty);
}
