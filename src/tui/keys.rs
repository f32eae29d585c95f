//! The key map: one table that both dispatches keys (in `update`) and generates the `?` help.

use super::model::{Focus, Screen};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does in normal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Esc: back out one level (log → job list, kept filter → none); never quits.
    Back,
    Help,
    NextScreen,
    PrevScreen,
    GoTo(Screen),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// PgUp/PgDn/Home/End: a page or to either end of the focused pane (the log, or the
    /// list of the screen).
    PaneUp,
    PaneDown,
    PaneTop,
    PaneBottom,
    ToggleFollow,
    ToggleTimes,
    /// `&`: show only the log lines that match the search, or every line again.
    ToggleFilter,
    /// `w`: wrap long log lines, or cut them (and scroll sideways with `<`/`>`).
    ToggleWrap,
    /// `S` on Jobs: the next order of the job list.
    NextSort,
    /// `c`: the log in the job's colours, or plain.
    ToggleColours,
    SideLeft,
    SideRight,
    /// `/` on Jobs: filter the list or search the log, whichever pane is focused.
    Search,
    /// `/` on a list screen: filter it.
    Filter,
    FocusLog,
    FocusList,
    NextHit,
    PrevHit,
    SaveLog,
    Shell,
    Stop,
    Inspect,
    OpenUrl,
    EditTags,
    EditProject,
    EditConfig,
    PreviewJob,
    EditEntry,
    AddEntry,
    DeleteEntry,
    Register,
    Unregister,
    ServiceStart,
    ServiceStop,
    Reload,
}

/// Where a binding applies: everywhere, or on one screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    On(Screen),
}

#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [KeyCode],
    /// How the help shows the keys.
    pub label: &'static str,
    pub scope: Scope,
    pub action: Action,
    pub help: &'static str,
}

use Action as A;
use KeyCode as K;
use Scope::{Global, On};
use Screen::{Config, Jobs, Runners};

#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    Binding { keys: &[K::Char('q')], label: "q", scope: Global, action: A::Quit, help: "quit" },
    Binding { keys: &[K::Esc], label: "Esc", scope: Global, action: A::Back, help: "back out a level; q quits" },
    Binding { keys: &[K::Char('?')], label: "?", scope: Global, action: A::Help, help: "this help" },
    Binding { keys: &[K::Tab], label: "Tab", scope: Global, action: A::NextScreen, help: "next screen" },
    Binding { keys: &[K::BackTab], label: "S-Tab", scope: Global, action: A::PrevScreen, help: "previous screen" },
    Binding { keys: &[K::Char('1')], label: "1", scope: Global, action: A::GoTo(Jobs), help: "Jobs" },
    Binding { keys: &[K::Char('2')], label: "2", scope: Global, action: A::GoTo(Config), help: "Config" },
    Binding { keys: &[K::Char('3')], label: "3", scope: Global, action: A::GoTo(Runners), help: "Runners" },
    Binding { keys: &[K::Up, K::Char('k')], label: "↑ k", scope: Global, action: A::Up, help: "previous row (log: line)" },
    Binding { keys: &[K::Down, K::Char('j')], label: "↓ j", scope: Global, action: A::Down, help: "next row (log: line)" },
    Binding { keys: &[K::Right, K::Char('l'), K::Enter], label: "→ l Enter", scope: On(Jobs), action: A::FocusLog, help: "focus the log" },
    Binding { keys: &[K::Left, K::Char('h')], label: "← h", scope: On(Jobs), action: A::FocusList, help: "focus the job list" },
    Binding { keys: &[K::Char('/')], label: "/", scope: On(Jobs), action: A::Search, help: "filter list / search log" },
    Binding { keys: &[K::Char('n')], label: "n", scope: On(Jobs), action: A::NextHit, help: "next/previous match" },
    Binding { keys: &[K::Char('N')], label: "N", scope: On(Jobs), action: A::PrevHit, help: "next/previous match" },
    Binding { keys: &[K::PageUp], label: "PgUp", scope: On(Jobs), action: A::PaneUp, help: "a page (focused pane)" },
    Binding { keys: &[K::PageDown], label: "PgDn", scope: On(Jobs), action: A::PaneDown, help: "a page (focused pane)" },
    Binding { keys: &[K::Home], label: "Home", scope: On(Jobs), action: A::PaneTop, help: "first/last (focused pane)" },
    Binding { keys: &[K::End], label: "End", scope: On(Jobs), action: A::PaneBottom, help: "first/last (focused pane)" },
    Binding { keys: &[K::Char('u')], label: "u", scope: On(Jobs), action: A::PageUp, help: "scroll the log up/down" },
    Binding { keys: &[K::Char('d')], label: "d", scope: On(Jobs), action: A::PageDown, help: "scroll the log up/down" },
    Binding { keys: &[K::Char('g')], label: "g", scope: On(Jobs), action: A::Top, help: "log start/end (following)" },
    Binding { keys: &[K::Char('G')], label: "G", scope: On(Jobs), action: A::Bottom, help: "log start/end (following)" },
    Binding { keys: &[K::Char('f')], label: "f", scope: On(Jobs), action: A::ToggleFollow, help: "follow the log on/off" },
    Binding { keys: &[K::Char('&')], label: "&", scope: On(Jobs), action: A::ToggleFilter, help: "only lines that match" },
    Binding { keys: &[K::Char('w')], label: "w", scope: On(Jobs), action: A::ToggleWrap, help: "wrap long lines on/off" },
    Binding { keys: &[K::Char('S')], label: "S", scope: On(Jobs), action: A::NextSort, help: "sort the jobs (cycles)" },
    Binding { keys: &[K::Char('c')], label: "c", scope: On(Jobs), action: A::ToggleColours, help: "the job's colours on/off" },
    Binding { keys: &[K::Char('<')], label: "<", scope: On(Jobs), action: A::SideLeft, help: "scroll the log sideways" },
    Binding { keys: &[K::Char('>')], label: ">", scope: On(Jobs), action: A::SideRight, help: "scroll the log sideways" },
    Binding { keys: &[K::Char('t')], label: "t", scope: On(Jobs), action: A::ToggleTimes, help: "log timestamps on/off" },
    Binding { keys: &[K::Char('s')], label: "s", scope: On(Jobs), action: A::SaveLog, help: "save the log to a file" },
    Binding { keys: &[K::Char('e')], label: "e", scope: On(Jobs), action: A::Shell, help: "shell in the job container" },
    Binding { keys: &[K::Char('x')], label: "x", scope: On(Jobs), action: A::Stop, help: "stop (release if kept)" },
    Binding { keys: &[K::Char('i')], label: "i", scope: On(Jobs), action: A::Inspect, help: "podman inspect the job" },
    Binding { keys: &[K::Char('o')], label: "o", scope: On(Jobs), action: A::OpenUrl, help: "open the job's web page" },
    Binding { keys: &[K::Char('t')], label: "t", scope: On(Config), action: A::EditTags, help: "preview: type the job's tags" },
    Binding { keys: &[K::Char('p')], label: "p", scope: On(Config), action: A::EditProject, help: "preview: type the job's project" },
    Binding { keys: &[K::Char('J')], label: "J", scope: On(Config), action: A::PreviewJob, help: "preview: the next running job's tags" },
    Binding { keys: &[K::Enter], label: "Enter", scope: On(Config), action: A::EditEntry, help: "edit the selected setting, mount or tag" },
    Binding { keys: &[K::Char('a')], label: "a", scope: On(Config), action: A::AddEntry, help: "add a mount (extra arguments when on a tag)" },
    Binding { keys: &[K::Char('D'), K::Delete], label: "D Del", scope: On(Config), action: A::DeleteEntry, help: "delete the selected entry (asks first)" },
    Binding { keys: &[K::Char('E')], label: "E", scope: On(Config), action: A::EditConfig, help: "edit the config file in $EDITOR" },
    Binding { keys: &[K::Char('/')], label: "/", scope: On(Config), action: A::Filter, help: "filter the settings, mounts and tags" },
    Binding { keys: &[K::Char('/')], label: "/", scope: On(Runners), action: A::Filter, help: "filter the runners" },
    Binding { keys: &[K::Char('a')], label: "a", scope: On(Runners), action: A::Register, help: "register a runner (URL + glrt- token)" },
    Binding { keys: &[K::Char('D')], label: "D", scope: On(Runners), action: A::Unregister, help: "unregister the runner (asks first)" },
    Binding { keys: &[K::Char('S')], label: "S", scope: On(Runners), action: A::ServiceStart, help: "start the gitlab-runner user service" },
    Binding { keys: &[K::Char('T')], label: "T", scope: On(Runners), action: A::ServiceStop, help: "stop the gitlab-runner user service (asks)" },
    Binding { keys: &[K::Char('r')], label: "r", scope: Global, action: A::Reload, help: "reload everything now" },
];

/// The action of `key` on `screen`, if any. Ctrl-C always quits.
pub fn action_for(key: &KeyEvent, screen: Screen) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, K::Char('c')).then_some(A::Quit);
    }
    binding_for(key, screen).map(|b| b.action)
}

/// The binding of `key` on `screen`, if any: its action and its scope (which `update` routes
/// by). No binding has Ctrl (Ctrl-C is [`action_for`]'s).
pub fn binding_for(key: &KeyEvent, screen: Screen) -> Option<&'static Binding> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return None;
    }
    BINDINGS
        .iter()
        .filter(|b| b.scope == Global || b.scope == On(screen))
        .find(|b| b.keys.contains(&key.code))
}

/// The bindings the help shows for `screen`: global ones, then the screen's.
pub fn help_for(screen: Screen) -> Vec<&'static Binding> {
    let global = BINDINGS.iter().filter(|b| b.scope == Global);
    let own = BINDINGS.iter().filter(|b| b.scope == On(screen));
    global.chain(own).collect()
}

/// A short hint line for the footer; on Jobs it depends on the focused pane.
pub fn footer_hint(screen: Screen, focus: Focus) -> &'static str {
    match (screen, focus) {
        (Jobs, Focus::List) => {
            "↑↓ job  → log  / filter  e shell  x stop  i inspect  s save  ? help  q quit"
        }
        (Jobs, Focus::Log) => {
            "↑↓ scroll  ← list  / search  n/N match  & only matches  w wrap  f follow  ?"
        }
        (Config, _) => {
            "↑↓ select  Enter edit  a add  D delete  / filter  t/p preview  E $EDITOR  ?"
        }
        (Runners, _) => {
            "↑↓ runner  / filter  a register  D unregister  S/T service  ? help  q quit"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_does_two_things_on_the_same_screen() {
        for screen in Screen::ALL {
            let bs = help_for(screen);
            for (i, a) in bs.iter().enumerate() {
                for b in &bs[i + 1..] {
                    for k in a.keys {
                        assert!(
                            !b.keys.contains(k),
                            "{k:?} bound to both {:?} and {:?} on {screen:?}",
                            a.action,
                            b.action
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn vim_keys_and_arrows_move_alike() {
        let k = |c| KeyEvent::new(c, KeyModifiers::NONE);
        assert_eq!(action_for(&k(K::Char('j')), Jobs), Some(A::Down));
        assert_eq!(action_for(&k(K::Down), Jobs), Some(A::Down));
        assert_eq!(action_for(&k(K::Char('k')), Runners), Some(A::Up));
        assert_eq!(
            action_for(&KeyEvent::new(K::Char('c'), KeyModifiers::CONTROL), Config),
            Some(A::Quit)
        );
        assert_eq!(
            action_for(&k(K::Char('e')), Config),
            None,
            "shell is a Jobs key"
        );
    }
}
