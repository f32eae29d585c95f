//! The Runners screen's keys: register and unregister a runner, start and stop gitlab-runner's
//! user service, with the questions asked first.

use super::Effect;
use crate::tui::keys::Action;
use crate::tui::model::{Mode, Model, RegisterForm};

/// An action bound on Runners.
pub(super) fn action(m: &mut Model, a: Action, fx: &mut Vec<Effect>) {
    match a {
        Action::Filter => m.mode = Mode::Filter,
        Action::Register => {
            m.mode = Mode::Register(RegisterForm {
                name: m.default_runner_name.clone(),
                ..RegisterForm::default()
            });
        }
        Action::Unregister => match m.selected_runner().map(|r| r.name.clone()) {
            Some(name) => m.mode = Mode::ConfirmUnregister(name),
            None => m.status = Some("no runner selected".to_string()),
        },
        Action::ServiceStart => fx.push(Effect::Service { start: true }),
        // stopping gitlab-runner aborts every running job: asked first
        Action::ServiceStop => m.mode = Mode::ConfirmServiceStop,
        // bound elsewhere (keys.rs)
        _ => {}
    }
}

/// The answer to "unregister this runner?" (the mode is normal again).
pub(super) fn confirm_unregister(m: &mut Model, name: String, yes: bool, fx: &mut Vec<Effect>) {
    m.mode = Mode::Normal;
    if yes {
        m.status = Some(format!("unregistering {name}…"));
        fx.push(Effect::Unregister(name));
        return;
    }
    m.status = Some("kept".to_string());
}

/// The answer to "stop the gitlab-runner service?".
pub(super) fn confirm_service_stop(m: &mut Model, yes: bool, fx: &mut Vec<Effect>) {
    m.mode = Mode::Normal;
    if yes {
        fx.push(Effect::Service { start: false });
        return;
    }
    m.status = Some("gitlab-runner keeps running".to_string());
}
