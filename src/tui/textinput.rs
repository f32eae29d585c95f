//! Editing one line of text the way terminals do, for every text field of the dashboard
//! (forms, the list filter, the log search, the preview's inputs): typed characters go at the
//! end, Backspace (and Ctrl-H, which some terminals send for it) deletes one, Ctrl-W the word
//! before, Ctrl-U the whole line.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Apply `k` to `text`; whether the key was an edit (the caller handles every other key).
pub fn edit(text: &mut String, k: &KeyEvent) -> bool {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match k.code {
        KeyCode::Backspace | KeyCode::Char('h') if k.code == KeyCode::Backspace || ctrl => {
            text.pop();
            true
        }
        KeyCode::Char('u') if ctrl => {
            text.clear();
            true
        }
        KeyCode::Char('w') if ctrl => {
            let kept = text.trim_end().len();
            let start = text[..kept].rfind(char::is_whitespace).map_or(0, |i| i + 1);
            text.truncate(start);
            true
        }
        KeyCode::Char(c) if !ctrl && !c.is_control() => {
            text.push(c);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, ctrl: bool) -> KeyEvent {
        let m = if ctrl {
            KeyModifiers::CONTROL
        } else {
            KeyModifiers::NONE
        };
        KeyEvent::new(code, m)
    }

    #[test]
    fn a_line_is_edited_as_in_a_terminal() {
        let mut t = String::new();
        for c in "--env A=b c".chars() {
            assert!(edit(&mut t, &key(KeyCode::Char(c), false)));
        }
        assert!(edit(&mut t, &key(KeyCode::Char('w'), true)));
        assert_eq!(t, "--env A=b ");
        assert!(edit(&mut t, &key(KeyCode::Char('w'), true)));
        assert_eq!(t, "--env ");
        assert!(edit(&mut t, &key(KeyCode::Char('h'), true)));
        assert_eq!(t, "--env");
        assert!(edit(&mut t, &key(KeyCode::Backspace, false)));
        assert_eq!(t, "--en");
        assert!(edit(&mut t, &key(KeyCode::Char('u'), true)));
        assert_eq!(t, "");
        // other control keys are not text, and not handled here
        assert!(!edit(&mut t, &key(KeyCode::Char('s'), true)));
        assert!(!edit(&mut t, &key(KeyCode::Enter, false)));
        assert_eq!(t, "");
    }
}
