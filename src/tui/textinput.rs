//! Editing one line of text the way terminals do, for every text field of the dashboard
//! (forms, the list filter, the log search, the preview's inputs): typed characters go in at
//! the cursor, ←/→ (and Ctrl-B/Ctrl-F) move it, Home/End (and Ctrl-A/Ctrl-E) jump to either
//! end, Backspace (and Ctrl-H, which some terminals send for it) deletes the character before
//! it, Delete the one under it, Ctrl-W the word before it, Ctrl-U everything before it.
//!
//! The cursor is counted in characters from the end of the text (`back`: 0 is the end, where
//! typing appends), so a field whose text changes elsewhere keeps a sensible position. One
//! field is edited at a time; the caller resets `back` when the focus moves, as the forms'
//! [`move_focus`] does.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Apply `k` to `text` with the cursor `back` characters before its end; whether the key was
/// an edit or a cursor move (the caller handles every other key).
pub fn edit(text: &mut String, back: &mut usize, k: &KeyEvent) -> bool {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let len = text.chars().count();
    let at = len - (*back).min(len);
    // the byte offset of the `n`-th character
    let byte = |t: &str, n: usize| t.char_indices().nth(n).map_or(t.len(), |(i, _)| i);
    match k.code {
        KeyCode::Left | KeyCode::Char('b') if k.code == KeyCode::Left || ctrl => {
            *back = (len - at + 1).min(len);
        }
        KeyCode::Right | KeyCode::Char('f') if k.code == KeyCode::Right || ctrl => {
            *back = (len - at).saturating_sub(1);
        }
        KeyCode::Home | KeyCode::Char('a') if k.code == KeyCode::Home || ctrl => *back = len,
        KeyCode::End | KeyCode::Char('e') if k.code == KeyCode::End || ctrl => *back = 0,
        KeyCode::Backspace | KeyCode::Char('h') if k.code == KeyCode::Backspace || ctrl => {
            if at > 0 {
                let from = byte(text, at - 1);
                text.replace_range(from..byte(text, at), "");
            }
            *back = len - at;
        }
        KeyCode::Delete => {
            if at < len {
                let from = byte(text, at);
                text.replace_range(from..byte(text, at + 1), "");
            }
            *back = (len - at).saturating_sub(1);
        }
        KeyCode::Char('u') if ctrl => {
            let to = byte(text, at);
            text.replace_range(..to, "");
            *back = len - at;
        }
        KeyCode::Char('w') if ctrl => {
            let to = byte(text, at);
            let kept = text[..to].trim_end().len();
            let start = text[..kept].rfind(char::is_whitespace).map_or(0, |i| i + 1);
            text.replace_range(start..to, "");
            *back = len - at;
        }
        KeyCode::Char(c) if !ctrl && !c.is_control() => {
            text.insert(byte(text, at), c);
            *back = len - at;
        }
        _ => return false,
    }
    true
}

/// Between the `n` fields of a form (the register form, the Config forms): Tab, ↓ and Enter
/// focus the next, S-Tab and ↑ the previous, round; typing then starts at the end of the field
/// (`back` is 0). Whether `k` was such a key.
pub fn move_focus(focus: &mut usize, back: &mut usize, n: usize, k: &KeyEvent) -> bool {
    match k.code {
        KeyCode::Tab | KeyCode::Down | KeyCode::Enter => *focus = (*focus + 1) % n,
        KeyCode::BackTab | KeyCode::Up => *focus = (*focus + n - 1) % n,
        _ => return false,
    }
    *back = 0;
    true
}

/// `text` as a focused field shows it: a block after it with the cursor at the end, a thin bar
/// before the character the cursor is on otherwise.
pub fn show(text: &str, back: usize) -> String {
    let len = text.chars().count();
    if back == 0 || len == 0 {
        return format!("{text}█");
    }
    let at = len - back.min(len);
    let mut s: String = text.chars().take(at).collect();
    s.push('▏');
    s.extend(text.chars().skip(at));
    s
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
        let (mut t, mut back) = (String::new(), 0);
        for c in "--env A=b c".chars() {
            assert!(edit(&mut t, &mut back, &key(KeyCode::Char(c), false)));
        }
        assert!(edit(&mut t, &mut back, &key(KeyCode::Char('w'), true)));
        assert_eq!(t, "--env A=b ");
        assert!(edit(&mut t, &mut back, &key(KeyCode::Char('w'), true)));
        assert_eq!(t, "--env ");
        assert!(edit(&mut t, &mut back, &key(KeyCode::Char('h'), true)));
        assert_eq!(t, "--env");
        assert!(edit(&mut t, &mut back, &key(KeyCode::Backspace, false)));
        assert_eq!(t, "--en");
        assert!(edit(&mut t, &mut back, &key(KeyCode::Char('u'), true)));
        assert_eq!(t, "");
        // other control keys are not text, and not handled here
        assert!(!edit(&mut t, &mut back, &key(KeyCode::Char('s'), true)));
        assert!(!edit(&mut t, &mut back, &key(KeyCode::Enter, false)));
        assert_eq!((t.as_str(), back), ("", 0));
    }

    #[test]
    fn tab_and_arrows_move_between_fields_round_and_typing_starts_at_the_end() {
        let (mut focus, mut back) = (0, 3);
        assert!(move_focus(
            &mut focus,
            &mut back,
            3,
            &key(KeyCode::BackTab, false)
        ));
        assert_eq!((focus, back), (2, 0));
        back = 1;
        for code in [KeyCode::Tab, KeyCode::Down, KeyCode::Enter] {
            assert!(move_focus(&mut focus, &mut back, 3, &key(code, false)));
        }
        assert_eq!((focus, back), (2, 0));
        assert!(move_focus(
            &mut focus,
            &mut back,
            3,
            &key(KeyCode::Up, false)
        ));
        assert_eq!(focus, 1);
        back = 2;
        assert!(!move_focus(
            &mut focus,
            &mut back,
            3,
            &key(KeyCode::Left, false)
        ));
        assert_eq!((focus, back), (1, 2));
    }

    #[test]
    fn the_cursor_moves_and_text_goes_in_where_it_is() {
        let (mut t, mut back) = ("--memry 4g".to_string(), 0);
        let press = |t: &mut String, back: &mut usize, code: KeyCode, ctrl: bool| {
            assert!(edit(t, back, &key(code, ctrl)), "{code:?}");
        };
        // fix the typo in the middle: ← ×5 lands after "--mem"
        for _ in 0..5 {
            press(&mut t, &mut back, KeyCode::Left, false);
        }
        assert_eq!(show(&t, back), "--mem▏ry 4g");
        press(&mut t, &mut back, KeyCode::Char('o'), false);
        assert_eq!(t, "--memory 4g");
        assert_eq!(
            show(&t, back),
            "--memo▏ry 4g",
            "the cursor stays after what was typed"
        );
        // Home, Delete, End, then ← → and Backspace in the middle
        press(&mut t, &mut back, KeyCode::Home, false);
        press(&mut t, &mut back, KeyCode::Delete, false);
        assert_eq!(t, "-memory 4g");
        press(&mut t, &mut back, KeyCode::End, false);
        assert_eq!(show(&t, back), "-memory 4g█");
        press(&mut t, &mut back, KeyCode::Left, false);
        press(&mut t, &mut back, KeyCode::Left, false);
        press(&mut t, &mut back, KeyCode::Right, false);
        press(&mut t, &mut back, KeyCode::Backspace, false);
        assert_eq!(t, "-memory g");
        assert_eq!(show(&t, back), "-memory ▏g");
        // Ctrl-W takes the word before the cursor, Ctrl-U everything before it
        let (mut t, mut back) = ("a bc de".to_string(), 3);
        press(&mut t, &mut back, KeyCode::Char('w'), true);
        assert_eq!(show(&t, back), "a ▏ de");
        press(&mut t, &mut back, KeyCode::Char('u'), true);
        assert_eq!(show(&t, back), "▏ de");
        // moves stop at either end; non-ASCII text is moved over by character
        let (mut t, mut back) = ("żółw".to_string(), 0);
        for _ in 0..9 {
            press(&mut t, &mut back, KeyCode::Left, false);
        }
        assert_eq!(back, 4);
        press(&mut t, &mut back, KeyCode::Right, false);
        press(&mut t, &mut back, KeyCode::Char('x'), false);
        assert_eq!(t, "żxółw");
        press(&mut t, &mut back, KeyCode::Char('e'), true);
        press(&mut t, &mut back, KeyCode::Right, false);
        assert_eq!(back, 0);
    }
}
