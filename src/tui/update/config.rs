//! The Config screen's keys: the preview's inputs, the forms that add, edit and delete
//! settings, mounts and tags' arguments, and `$EDITOR`.

use super::Effect;
use crate::config::edit::Edit;
use crate::tui::configform::{self, ConfigForm, FormKind, Row};
use crate::tui::keys::Action;
use crate::tui::model::{JobRow, Mode, Model, PreviewField};
use crossterm::event::{KeyCode, KeyEvent};

/// An action bound on Config.
pub(super) fn action(m: &mut Model, a: Action, fx: &mut Vec<Effect>) {
    match a {
        Action::Filter => m.mode = Mode::Filter,
        Action::EditTags => m.mode = Mode::PreviewInput(PreviewField::Tags),
        Action::EditProject => m.mode = Mode::PreviewInput(PreviewField::Project),
        Action::EditConfig => match &m.config.path {
            Some(p) => fx.push(Effect::EditConfig(p.clone())),
            None => {
                m.status = Some(
                    "no config file: create ~/.pogo.yaml (or pass --config PATH), then press E"
                        .to_string(),
                );
            }
        },
        Action::PreviewJob => preview_job(m),
        Action::EditEntry => {
            if let Some((row, raw, text)) = selected_row(m) {
                let kind = match row {
                    Row::Setting(k) => FormKind::Setting(k),
                    Row::Mount(i) => FormKind::Mount(Some(i)),
                    Row::Extra(t) => FormKind::Extra(Some(t)),
                };
                open_form(m, kind, &raw, &text);
            }
        }
        Action::AddEntry => {
            if let Some((row, raw, text)) = selected_row(m) {
                let kind = match row {
                    Row::Extra(_) => FormKind::Extra(None),
                    _ => FormKind::Mount(None),
                };
                open_form(m, kind, &raw, &text);
            }
        }
        Action::DeleteEntry => delete_entry(m),
        // bound elsewhere (keys.rs)
        _ => {}
    }
}

/// `J`: the preview takes the tags and project of the next running job.
fn preview_job(m: &mut Model) {
    let running: Vec<&JobRow> = m.jobs.iter().filter(|j| j.running).collect();
    let at = m
        .config
        .preview_job
        .as_ref()
        .and_then(|k| running.iter().position(|j| &j.key == k))
        .map_or(0, |i| i + 1);
    match running.get(at).or(running.first()).copied() {
        Some(j) => {
            m.config.preview_tags = j.tags.join(" ");
            m.config.preview_project = j.project.clone();
            m.config.preview_job = Some(j.key.clone());
            m.status = Some(format!(
                "preview: job {} ({}), tags {}",
                j.id,
                j.project,
                if j.tags.is_empty() {
                    "none".to_string()
                } else {
                    j.tags.join(", ")
                }
            ));
        }
        None => {
            m.status = Some(
                "no running job to preview: type tags with t (and a project with p)".to_string(),
            );
        }
    }
}

/// `D`: asks before deleting the selected setting, mount or tag's arguments.
fn delete_entry(m: &mut Model) {
    let Some((row, raw, base)) = selected_row(m) else {
        return;
    };
    let (what, edit) = match row {
        Row::Setting(k) => {
            if configform::setting_value(&raw, k).is_none() {
                m.status = Some(format!(
                    "{} is not set in the file",
                    configform::setting_label(k)
                ));
                return;
            }
            (
                format!("the {} setting", configform::setting_label(k)),
                Edit::Scalar {
                    key: k.to_string(),
                    value: None,
                },
            )
        }
        Row::Mount(i) => (
            format!(
                "the mount {}",
                raw.mounts.get(i).map_or("", |r| r.volume.as_str())
            ),
            Edit::Mount {
                index: Some(i),
                rule: None,
            },
        ),
        Row::Extra(t) => (
            format!("the extra arguments of tag {t}"),
            Edit::Extra {
                tag: Some(t),
                new: None,
            },
        ),
    };
    m.mode = Mode::ConfirmDelete { what, edit, base };
}

/// The answer to "delete this entry?" (the mode is normal again).
pub(super) fn confirm_delete(
    m: &mut Model,
    what: String,
    edit: Edit,
    base: String,
    yes: bool,
    fx: &mut Vec<Effect>,
) {
    m.mode = Mode::Normal;
    if yes {
        m.status = Some(format!("deleting {what}…"));
        fx.push(Effect::SaveConfig {
            edit,
            base,
            check_host: None,
        });
        return;
    }
    m.status = Some("kept".to_string());
}

/// Keys while typing the preview's tags or project: Esc, Enter or Tab end it.
pub(super) fn preview_key(m: &mut Model, field: PreviewField, k: KeyEvent) {
    let target = match field {
        PreviewField::Tags => &mut m.config.preview_tags,
        PreviewField::Project => &mut m.config.preview_project,
    };
    match k.code {
        KeyCode::Esc | KeyCode::Enter | KeyCode::Tab => m.mode = Mode::Normal,
        _ => {
            crate::tui::textinput::edit(target, &mut m.cursor, &k);
        }
    }
}

/// The selected Config row, if the file's settings are known (the file loads).
fn selected_row(m: &mut Model) -> Option<(Row, crate::config::RawConfig, String)> {
    let refuse = |m: &mut Model, why: &str| {
        m.status = Some(why.to_string());
        None
    };
    if m.config.error.is_some() {
        return refuse(
            m,
            "the config file has an error: fix it first (E opens it); forms only edit a file pogo accepts",
        );
    }
    let (Some(raw), Some(text)) = (m.config.raw.clone(), m.config.text.clone()) else {
        return refuse(m, "the config file is not loaded yet");
    };
    if !m.visible_config_rows().contains(&m.config.selected) {
        return refuse(
            m,
            "no row selected: the filter hides every row (Esc clears it)",
        );
    }
    let rows = configform::rows(&raw);
    let row = rows.get(m.config.selected).cloned()?;
    Some((row, raw, text))
}

fn open_form(m: &mut Model, kind: FormKind, raw: &crate::config::RawConfig, text: &str) {
    let overridden_by = match &kind {
        FormKind::Setting(k) if m.config.overridden.iter().any(|o| o == k) => {
            Some(crate::config::env_var(k))
        }
        _ => None,
    };
    let paths = crate::config::PathBase {
        home: m.config.home.clone(),
        dir: m
            .config
            .path
            .as_deref()
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf),
    };
    let mut form = ConfigForm::open(kind, raw, text, paths);
    form.overridden_by = overridden_by;
    m.mode = Mode::ConfigForm(form);
}
