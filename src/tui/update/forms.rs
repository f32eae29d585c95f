//! Keys while typing: the register form, the Config forms, and a list's `/` filter.

use super::{filter_changed, move_selection, Effect};
use crate::tui::configform::{self, ConfigForm};
use crate::tui::model::{Mode, Model, RegisterForm};
use crate::tui::textinput;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Keys in a Config form; a submit that passes the checks becomes a save.
pub(super) fn config_form_key(m: &mut Model, mut f: ConfigForm, k: KeyEvent, fx: &mut Vec<Effect>) {
    if f.saving {
        m.mode = Mode::ConfigForm(f);
        return;
    }
    match configform::key(&mut f, k) {
        configform::Outcome::Cancel => m.mode = Mode::Normal,
        configform::Outcome::Stay => m.mode = Mode::ConfigForm(f),
        configform::Outcome::Submit => match f.check() {
            Err((field, why)) => {
                f.focus = field;
                f.error = Some(why);
                m.mode = Mode::ConfigForm(f);
            }
            Ok(edit) => {
                // a warning already shown is not asked again
                let check_host = if f.warning.is_some() {
                    None
                } else {
                    f.host_path()
                };
                let base = f.base.clone();
                f.saving = true;
                f.error = None;
                m.mode = Mode::ConfigForm(f);
                fx.push(Effect::SaveConfig {
                    edit,
                    base,
                    check_host,
                });
            }
        },
    }
}

/// Keys in the register form: type into the focused field, Tab/↑/↓ move, Enter on the last
/// field (or Ctrl-S) submits, Esc cancels.
pub(super) fn register_key(m: &mut Model, mut f: RegisterForm, k: KeyEvent, fx: &mut Vec<Effect>) {
    let submit = (k.code == KeyCode::Enter && f.focus + 1 == RegisterForm::FIELDS)
        || (k.code == KeyCode::Char('s') && k.modifiers.contains(KeyModifiers::CONTROL));
    if submit {
        register(m, f, fx);
        return;
    }
    match k.code {
        KeyCode::Esc => {
            m.mode = Mode::Normal;
            return;
        }
        _ if textinput::move_focus(&mut f.focus, &mut f.cursor, RegisterForm::FIELDS, &k) => {}
        _ => match f.focus {
            RegisterForm::URL => {
                textinput::edit(&mut f.url, &mut f.cursor, &k);
            }
            RegisterForm::TOKEN => {
                let mut t = f.token.expose().to_string();
                if textinput::edit(&mut t, &mut f.cursor, &k) {
                    f.token = crate::secret::Secret::new(t);
                }
            }
            RegisterForm::NAME => {
                textinput::edit(&mut f.name, &mut f.cursor, &k);
            }
            _ => {
                textinput::edit(&mut f.ca_file, &mut f.cursor, &k);
            }
        },
    }
    f.error = None;
    m.mode = Mode::Register(f);
}

/// The register form submitted: a registration, or the form again with what is missing.
fn register(m: &mut Model, mut f: RegisterForm, fx: &mut Vec<Effect>) {
    let url = f.url.trim().to_string();
    let name = f.name.trim().to_string();
    let problem = if url.is_empty() {
        Some("the GitLab URL is missing (e.g. https://gitlab.example.com)")
    } else if f.token.is_empty() {
        Some("the runner token is missing (glrt-…, from the project's or group's CI/CD settings → Runners)")
    } else if name.is_empty() {
        Some("the runner needs a name")
    } else {
        None
    };
    if let Some(p) = problem {
        f.error = Some(p.to_string());
        m.mode = Mode::Register(f);
        return;
    }
    m.mode = Mode::Normal;
    m.status = Some(format!("registering {name} with {url}…"));
    m.registering = Some(RegisterForm {
        error: None,
        ..f.clone()
    });
    let ca_file = Some(f.ca_file.trim())
        .filter(|c| !c.is_empty())
        .map(std::path::PathBuf::from);
    fx.push(Effect::Register {
        url,
        token: f.token,
        name,
        ca_file,
    });
}

/// Keys while typing a list's filter: it applies as it is typed; Enter keeps it, Esc clears
/// it, ↑/↓ move among the rows it shows.
pub(super) fn filter_key(m: &mut Model, k: KeyEvent, fx: &mut Vec<Effect>) {
    let screen = m.screen;
    let Some(filter) = m.filters.of_mut(screen) else {
        m.mode = Mode::Normal;
        return;
    };
    match k.code {
        KeyCode::Enter => m.mode = Mode::Normal,
        KeyCode::Esc => {
            filter.clear();
            m.mode = Mode::Normal;
            filter_changed(m, fx);
        }
        _ if textinput::edit(filter, &mut m.cursor, &k) => filter_changed(m, fx),
        KeyCode::Up => move_selection(m, -1, fx),
        KeyCode::Down => move_selection(m, 1, fx),
        _ => {}
    }
}
