//! The Config screen's rows and its add / edit / delete forms. Pure: a form is filled from the
//! file's settings, checked as the executor will check them, and turned into a
//! [`config::edit::Edit`]; the runtime applies that to the file (keeping its comments) and
//! writes it atomically.

use crate::config::edit::Edit;
use crate::config::model::{ExtraArgsEntry, ExtraArgsRule, MountRule, PullPolicy, RawConfig};
use crate::config::{self, policy, Globs};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::path::PathBuf;

/// The settings the screen edits: key, label, what to type.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "default_image",
        "default image",
        "image for jobs without `image:` (empty: jobs must name one)",
    ),
    (
        "pull_policy",
        "pull policy",
        "always, if-not-present or never (empty: if-not-present)",
    ),
    (
        "auth_file",
        "auth file",
        "podman auth file for private registries, an absolute path (empty: none)",
    ),
    (
        "keep_failed",
        "keep failed",
        "minutes a failed job's containers are kept for debugging (empty: 0, off)",
    ),
];

/// One selectable row of the Config screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Setting(&'static str),
    Mount(usize),
    Extra(String),
}

/// The rows for the file's settings: the settings, then each mount, then each tag's arguments.
pub fn rows(raw: &RawConfig) -> Vec<Row> {
    SETTINGS
        .iter()
        .map(|(k, ..)| Row::Setting(k))
        .chain((0..raw.mounts.len()).map(Row::Mount))
        .chain(raw.extra_arguments.keys().cloned().map(Row::Extra))
        .collect()
}

/// What the `/` filter looks at in a row: the label and value of a setting; a mount's volume,
/// tags and projects; a tag with its arguments and projects.
pub fn row_fields(raw: &RawConfig, row: &Row) -> Vec<String> {
    match row {
        Row::Setting(k) => vec![
            setting_label(k).to_string(),
            setting_value(raw, k).unwrap_or_default(),
        ],
        Row::Mount(i) => raw
            .mounts
            .get(*i)
            .map(|m| {
                let mut v = vec![m.volume.clone()];
                v.extend(m.tags.iter().cloned());
                v.extend(m.projects.iter().cloned());
                v
            })
            .unwrap_or_default(),
        Row::Extra(tag) => {
            let e = raw
                .extra_arguments
                .get(tag)
                .cloned()
                .map(ExtraArgsRule::entry)
                .unwrap_or_default();
            let mut v = vec![tag.clone(), e.args];
            v.extend(e.projects);
            v
        }
    }
}

/// A top-level setting as written in the file (numbers as digits), if set.
pub fn setting_value(raw: &RawConfig, key: &str) -> Option<String> {
    let v = serde_json::to_value(raw).ok()?;
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

pub fn setting_label(key: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|(k, ..)| *k == key)
        .map_or("setting", |(_, l, _)| l)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    Setting(&'static str),
    /// `None`: a new mount.
    Mount(Option<usize>),
    /// `None`: new extra arguments.
    Extra(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    /// A yes/no field: Space toggles.
    Flag(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub value: Value,
    pub hint: &'static str,
}

impl Field {
    fn text(label: &'static str, value: impl Into<String>, hint: &'static str) -> Self {
        Self {
            label,
            value: Value::Text(value.into()),
            hint,
        }
    }
    fn flag(label: &'static str, on: bool, hint: &'static str) -> Self {
        Self {
            label,
            value: Value::Flag(on),
            hint,
        }
    }
}

/// Where each field of a mount's form is (its `fields`, and `focus`).
pub mod mount {
    pub const HOST: usize = 0;
    pub const CONTAINER: usize = 1;
    pub const OPTIONS: usize = 2;
    pub const TAGS: usize = 3;
    pub const PROJECTS: usize = 4;
    pub const READONLY: usize = 5;
}

/// Where each field of a tag's extra arguments form is.
pub mod extra {
    pub const TAG: usize = 0;
    pub const ARGS: usize = 1;
    pub const PROJECTS: usize = 2;
    pub const PRIVILEGED: usize = 3;
    pub const SERVICES: usize = 4;
    pub const PROJECT_VOLUME: usize = 5;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigForm {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
    /// The cursor in the focused text field, characters from its end.
    pub cursor: usize,
    /// Why the last save was refused.
    pub error: Option<String>,
    /// Something to know before saving (a host path that does not exist); Enter saves anyway.
    pub warning: Option<String>,
    /// The file's text when the form opened: the save is refused if it changed meanwhile.
    pub base: String,
    /// How the form's paths resolve (`~/`, `./` relative to the config file).
    pub paths: config::PathBase,
    /// Submitted; waiting for the runtime's answer.
    pub saving: bool,
    /// The environment variable that overrides this setting while it is set, if one does.
    pub overridden_by: Option<String>,
}

/// Why a save did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveProblem {
    /// Worth a second look (Enter again saves anyway).
    Warning(String),
    /// Not saved: the file changed meanwhile, or the result would not load.
    Refused(String),
}

/// What a key did to the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stay,
    Cancel,
    Submit,
}

/// Tags as typed (in the forms and the preview): words separated by spaces or commas.
pub fn parse_tags(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Globs separated by spaces (a glob may hold commas: `group/{a,b}`).
fn globs(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

impl ConfigForm {
    /// A form for `kind`, filled from the file's current settings.
    pub fn open(kind: FormKind, raw: &RawConfig, base: &str, paths: config::PathBase) -> Self {
        let fields = match &kind {
            FormKind::Setting(key) => vec![Field::text(
                setting_label(key),
                setting_value(raw, key).unwrap_or_default(),
                SETTINGS
                    .iter()
                    .find(|(k, ..)| k == key)
                    .map_or("", |(.., h)| h),
            )],
            FormKind::Mount(index) => {
                let m = index.and_then(|i| raw.mounts.get(i));
                let volume = m.map(|m| m.volume.as_str()).unwrap_or_default();
                let mut parts = volume.splitn(3, ':');
                let host = parts.next().unwrap_or_default();
                let container = parts.next().unwrap_or_default();
                let options = parts.next().unwrap_or_default();
                // in the order of `mount`'s positions
                vec![
                    Field::text(
                        "host path",
                        host,
                        "a directory on this machine (~/ allowed)",
                    ),
                    Field::text("container path", container, "where jobs see it, absolute"),
                    Field::text(
                        "options",
                        options,
                        "podman volume options, e.g. z or U (optional)",
                    ),
                    Field::text(
                        "tags",
                        m.map(|m| m.tags.join(" ")).unwrap_or_default(),
                        "only jobs with one of these tags (empty: every job)",
                    ),
                    Field::text(
                        "projects",
                        m.map(|m| m.projects.join(" ")).unwrap_or_default(),
                        "only these CI_PROJECT_PATH globs, space-separated (empty: all)",
                    ),
                    Field::flag("read-only", m.is_some_and(|m| m.readonly), "Space toggles"),
                ]
            }
            FormKind::Extra(tag) => {
                let e = tag
                    .as_ref()
                    .and_then(|t| raw.extra_arguments.get(t))
                    .cloned()
                    .map(ExtraArgsRule::entry)
                    .unwrap_or_default();
                // in the order of `extra`'s positions
                vec![
                    Field::text(
                        "tag",
                        tag.clone().unwrap_or_default(),
                        "jobs with this tag get the arguments",
                    ),
                    Field::text(
                        "arguments",
                        e.args,
                        "podman run arguments, quoted as in a shell",
                    ),
                    Field::text(
                        "projects",
                        e.projects.join(" "),
                        "only these CI_PROJECT_PATH globs, space-separated (empty: all)",
                    ),
                    Field::flag(
                        "privileged",
                        e.privileged,
                        "allow --device, --volume, --cap-add, … (Space toggles)",
                    ),
                    Field::text(
                        "services",
                        e.services,
                        "podman run arguments for its service containers (optional)",
                    ),
                    Field::text(
                        "project volume",
                        e.project_volume.unwrap_or_default(),
                        "container path of a volume per project, kept between jobs (optional)",
                    ),
                ]
            }
        };
        Self {
            kind,
            fields,
            focus: 0,
            cursor: 0,
            error: None,
            warning: None,
            base: base.to_string(),
            paths,
            saving: false,
            overridden_by: None,
        }
    }

    pub fn title(&self) -> String {
        match &self.kind {
            FormKind::Setting(k) => format!("set {}", setting_label(k)),
            FormKind::Mount(None) => "add a mount".into(),
            FormKind::Mount(Some(i)) => format!("edit mount {}", i + 1),
            FormKind::Extra(None) => "add extra arguments".into(),
            FormKind::Extra(Some(t)) => format!("edit extra arguments of tag {t}"),
        }
    }

    fn text(&self, i: usize) -> &str {
        match self.fields.get(i).map(|f| &f.value) {
            Some(Value::Text(s)) => s.trim(),
            _ => "",
        }
    }

    fn flag(&self, i: usize) -> bool {
        matches!(
            self.fields.get(i).map(|f| &f.value),
            Some(Value::Flag(true))
        )
    }

    fn volume(&self) -> String {
        let mut v = format!("{}:{}", self.text(mount::HOST), self.text(mount::CONTAINER));
        if !self.text(mount::OPTIONS).is_empty() {
            v.push(':');
            v.push_str(self.text(mount::OPTIONS));
        }
        v
    }

    /// The host directory a mount form names, `~/` expanded, for the existence check.
    pub fn host_path(&self) -> Option<PathBuf> {
        match self.kind {
            FormKind::Mount(_) => config::parse_volume(&self.volume(), &self.paths)
                .ok()
                .map(|m| m.host),
            _ => None,
        }
    }

    /// The edit this form asks for, or the field that is wrong and why.
    pub fn check(&self) -> Result<Edit, (usize, String)> {
        match &self.kind {
            FormKind::Setting(key) => self.check_setting(key),
            FormKind::Mount(index) => self.check_mount(*index),
            FormKind::Extra(tag) => self.check_extra(tag.clone()),
        }
    }

    fn check_setting(&self, key: &str) -> Result<Edit, (usize, String)> {
        let v = self.text(0);
        let bad = |m: String| Err((0, m));
        if v.is_empty() {
            return Ok(Edit::Scalar {
                key: key.to_string(),
                value: None,
            });
        }
        match key {
            "pull_policy" if PullPolicy::parse(v).is_none() => {
                return bad(format!(
                    "'{v}' is not a pull policy: always, if-not-present or never"
                ))
            }
            "keep_failed" if v.parse::<u64>().is_err() => {
                return bad(format!("'{v}' is not a number of minutes"))
            }
            "auth_file" if !self.paths.resolve(std::path::Path::new(v)).is_absolute() => {
                return bad(format!(
                    "'{v}' must be an absolute path, ~/… or relative to the config file"
                ))
            }
            "default_image" if v.contains(char::is_whitespace) => {
                return bad(format!("'{v}' is not an image name: no spaces"))
            }
            _ => {}
        }
        Ok(Edit::Scalar {
            key: key.to_string(),
            value: Some(v.to_string()),
        })
    }

    fn check_mount(&self, index: Option<usize>) -> Result<Edit, (usize, String)> {
        if self.text(mount::HOST).is_empty() {
            return Err((mount::HOST, "the host path is missing".into()));
        }
        if self.text(mount::CONTAINER).is_empty() {
            return Err((mount::CONTAINER, "the container path is missing".into()));
        }
        for (i, what) in [
            (mount::HOST, "host path"),
            (mount::CONTAINER, "container path"),
            (mount::OPTIONS, "options"),
        ] {
            if self.text(i).contains(':') {
                return Err((i, format!("the {what} cannot contain ':'")));
            }
        }
        if let Err(e) = config::parse_volume(&self.volume(), &self.paths) {
            let field = if e.starts_with("container") {
                mount::CONTAINER
            } else {
                mount::HOST
            };
            return Err((field, e));
        }
        let tags = parse_tags(self.text(mount::TAGS));
        config::validate_tags(&tags).map_err(|e| (mount::TAGS, e))?;
        let projects = globs(self.text(mount::PROJECTS));
        Globs::new(&projects).map_err(|e| (mount::PROJECTS, e))?;
        Ok(Edit::Mount {
            index,
            rule: Some(MountRule {
                volume: self.volume(),
                tags,
                projects,
                readonly: self.flag(mount::READONLY),
            }),
        })
    }

    fn check_extra(&self, tag: Option<String>) -> Result<Edit, (usize, String)> {
        let new_tag = self.text(extra::TAG).to_string();
        if new_tag.is_empty() {
            return Err((extra::TAG, "the tag is missing".into()));
        }
        config::validate_tags(std::slice::from_ref(&new_tag)).map_err(|e| (extra::TAG, e))?;
        let args = self.text(extra::ARGS).to_string();
        let tokens = config::split_args(&args).map_err(|e| (extra::ARGS, e))?;
        let project_volume = Some(self.text(extra::PROJECT_VOLUME).trim())
            .filter(|p| !p.is_empty())
            .map(config::project_volume_path)
            .transpose()
            .map_err(|e| (extra::PROJECT_VOLUME, e))?;
        if tokens.is_empty() && project_volume.is_none() {
            return Err((
                extra::ARGS,
                "no arguments and no project volume: delete the entry instead (D)".into(),
            ));
        }
        let privileged = self.flag(extra::PRIVILEGED);
        let services = self.text(extra::SERVICES).to_string();
        let service_tokens = config::split_args(&services).map_err(|e| (extra::SERVICES, e))?;
        let mut widening = policy::widening_args(&tokens);
        widening.extend(policy::widening_args(&service_tokens));
        if !widening.is_empty() && !privileged {
            return Err((
                extra::PRIVILEGED,
                format!(
                    "{} widen the container's reach: tick privileged if jobs with tag {new_tag} may have that",
                    widening.join(" ")
                ),
            ));
        }
        let projects = globs(self.text(extra::PROJECTS));
        Globs::new(&projects).map_err(|e| (extra::PROJECTS, e))?;
        let rule = if projects.is_empty()
            && !privileged
            && services.trim().is_empty()
            && project_volume.is_none()
        {
            ExtraArgsRule::Args(args)
        } else {
            ExtraArgsRule::Full(ExtraArgsEntry {
                args,
                projects,
                privileged,
                services: services.trim().to_string(),
                project_volume,
            })
        };
        Ok(Edit::Extra {
            tag,
            new: Some((new_tag, rule)),
        })
    }

    /// What the form means, live, under its fields: the volume podman gets, the tags, the
    /// arguments token by token exactly as the executor splits them.
    pub fn notes(&self) -> Vec<Note> {
        let mut v = Vec::new();
        if let Some(var) = &self.overridden_by {
            v.push(Note::Warn(format!(
                "${var} is set: it wins over the file while it is"
            )));
        }
        match &self.kind {
            FormKind::Setting(_) => {}
            FormKind::Mount(_) => {
                if !self.text(mount::HOST).is_empty() && !self.text(mount::CONTAINER).is_empty() {
                    let ro = if self.flag(mount::READONLY) {
                        " (read-only)"
                    } else {
                        ""
                    };
                    v.push(Note::Info(format!("--volume {}{ro}", self.volume())));
                }
                let tags = parse_tags(self.text(mount::TAGS));
                v.push(Note::Info(if tags.is_empty() {
                    "for every job".to_string()
                } else {
                    format!("for jobs tagged {}", tags.join(" or "))
                }));
            }
            FormKind::Extra(_) => match config::split_args(self.text(extra::ARGS)) {
                Ok(tokens) if !tokens.is_empty() => {
                    v.push(Note::Tokens(tokens.clone()));
                    let widening = policy::widening_args(&tokens);
                    if !widening.is_empty() {
                        v.push(Note::Warn(format!(
                            "privileged needed for: {}",
                            widening.join(" ")
                        )));
                    }
                }
                Ok(_) => {}
                Err(e) => v.push(Note::Bad(e)),
            },
        }
        if let FormKind::Extra(_) = &self.kind {
            match config::split_args(self.text(extra::SERVICES)) {
                Ok(tokens) if !tokens.is_empty() => v.push(Note::Info(format!(
                    "its services get: {}",
                    tokens
                        .iter()
                        .map(|t| format!("[{t}]"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ))),
                Ok(_) => {}
                Err(e) => v.push(Note::Bad(format!("services: {e}"))),
            }
        }
        v
    }
}

/// A line under the form's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Info(String),
    /// The arguments as podman will get them, one token each.
    Tokens(Vec<String>),
    Warn(String),
    Bad(String),
}

/// Tab/↓ next field, S-Tab/↑ previous, Enter next (on the last field: save), Ctrl-S save,
/// Space toggles a yes/no field, Esc cancels.
pub fn key(f: &mut ConfigForm, k: KeyEvent) -> Outcome {
    let n = f.fields.len();
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    // Enter saves on the last field, and on any while a warning asks "save anyway?"
    let enter_saves = f.focus + 1 == n || f.warning.is_some();
    if (ctrl && k.code == KeyCode::Char('s')) || (k.code == KeyCode::Enter && enter_saves) {
        return Outcome::Submit;
    }
    if k.code == KeyCode::Esc {
        return Outcome::Cancel;
    }
    if super::textinput::move_focus(&mut f.focus, &mut f.cursor, n, &k) {
        return Outcome::Stay;
    }
    let Some(field) = f.fields.get_mut(f.focus) else {
        return Outcome::Stay;
    };
    let changed = match (&mut field.value, k.code) {
        (Value::Flag(on), KeyCode::Char(' ')) => {
            *on = !*on;
            true
        }
        (Value::Flag(on), KeyCode::Char('y' | 'Y')) => {
            *on = true;
            true
        }
        (Value::Flag(on), KeyCode::Char('n' | 'N')) => {
            *on = false;
            true
        }
        (Value::Text(s), _) => super::textinput::edit(s, &mut f.cursor, &k),
        _ => false,
    };
    if changed {
        f.error = None;
        f.warning = None;
    }
    Outcome::Stay
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "default_image: fedora:41\nmounts:\n  - volume: ~/fixtures:/mnt/fixtures:z\n    tags: [test, e2e]\n    readonly: true\nextra_arguments:\n  ci: '--env CI_LOCAL=1'\n";

    fn home_me() -> config::PathBase {
        config::PathBase {
            home: Some(PathBuf::from("/home/me")),
            dir: Some(PathBuf::from("/home/me/conf")),
        }
    }

    fn raw() -> RawConfig {
        config::parse(TEXT, std::path::Path::new("/p")).unwrap()
    }

    fn form(kind: FormKind) -> ConfigForm {
        ConfigForm::open(kind, &raw(), TEXT, home_me())
    }

    fn typing(f: &mut ConfigForm, s: &str) -> Outcome {
        let mut last = Outcome::Stay;
        for c in s.chars() {
            let code = match c {
                '\n' => KeyCode::Enter,
                '\t' => KeyCode::Tab,
                '\x08' => KeyCode::Backspace,
                '\x1b' => KeyCode::Esc,
                c => KeyCode::Char(c),
            };
            last = key(f, KeyEvent::new(code, KeyModifiers::NONE));
        }
        last
    }

    #[test]
    fn the_named_positions_are_the_fields_labels() {
        let labels = |f: ConfigForm| f.fields.iter().map(|f| f.label).collect::<Vec<_>>();
        let m = labels(form(FormKind::Mount(None)));
        assert_eq!(
            [
                m[mount::HOST],
                m[mount::CONTAINER],
                m[mount::OPTIONS],
                m[mount::TAGS],
                m[mount::PROJECTS],
                m[mount::READONLY]
            ],
            [
                "host path",
                "container path",
                "options",
                "tags",
                "projects",
                "read-only"
            ]
        );
        let e = labels(form(FormKind::Extra(None)));
        assert_eq!(
            [
                e[extra::TAG],
                e[extra::ARGS],
                e[extra::PROJECTS],
                e[extra::PRIVILEGED],
                e[extra::SERVICES],
                e[extra::PROJECT_VOLUME]
            ],
            [
                "tag",
                "arguments",
                "projects",
                "privileged",
                "services",
                "project volume"
            ]
        );
        assert_eq!((m.len(), e.len()), (6, 6));
    }

    #[test]
    fn an_edited_mount_form_starts_with_the_files_values() {
        let f = form(FormKind::Mount(Some(0)));
        let texts: Vec<&str> = (0..5).map(|i| f.text(i)).collect();
        assert_eq!(
            texts,
            vec!["~/fixtures", "/mnt/fixtures", "z", "test e2e", ""]
        );
        assert!(f.flag(5));
        assert_eq!(f.host_path(), Some(PathBuf::from("/home/me/fixtures")));
    }

    #[test]
    fn a_new_mount_is_typed_field_by_field_and_saved_on_the_last_enter() {
        let mut f = form(FormKind::Mount(None));
        assert_eq!(
            typing(&mut f, "/srv/data\n/data\n\nbig, gpu\n\n "),
            Outcome::Stay
        );
        assert_eq!(typing(&mut f, "\n"), Outcome::Submit);
        assert_eq!(
            f.check(),
            Ok(Edit::Mount {
                index: None,
                rule: Some(MountRule {
                    volume: "/srv/data:/data".into(),
                    tags: vec!["big".into(), "gpu".into()],
                    projects: vec![],
                    readonly: true,
                }),
            })
        );
    }

    #[test]
    fn a_mount_form_takes_a_host_path_relative_to_the_config_file() {
        let mut f = form(FormKind::Mount(None));
        typing(&mut f, "./data\n/data\n");
        assert!(f.check().is_ok(), "{:?}", f.check().err());
        assert_eq!(f.host_path(), Some(PathBuf::from("/home/me/conf/data")));
    }

    #[test]
    fn a_relative_container_path_is_refused_on_its_field() {
        let mut f = form(FormKind::Mount(None));
        typing(&mut f, "/srv\ndata\n");
        let (field, why) = f.check().unwrap_err();
        assert_eq!(field, 1);
        assert!(why.contains("must be absolute"), "{why}");
    }

    #[test]
    fn a_colon_in_a_path_is_refused_because_it_would_split_the_volume() {
        let mut f = form(FormKind::Mount(None));
        typing(&mut f, "/srv/a:b\n/data\n");
        assert_eq!(f.check().unwrap_err().0, 0);
    }

    #[test]
    fn extra_arguments_are_shown_token_by_token_as_the_executor_splits_them() {
        let mut f = form(FormKind::Extra(None));
        typing(&mut f, "gpu\n--env 'A=two words' --label x=\"y z\"");
        assert_eq!(
            f.notes(),
            vec![Note::Tokens(vec![
                "--env".into(),
                "A=two words".into(),
                "--label".into(),
                "x=y z".into()
            ])]
        );
        typing(&mut f, " 'open");
        assert!(matches!(&f.notes()[0], Note::Bad(e) if e.contains("quotes")));
        assert_eq!(f.check().unwrap_err().0, 1);
    }

    #[test]
    fn service_arguments_are_saved_with_the_entry_and_checked_like_the_jobs() {
        let mut f = form(FormKind::Extra(None));
        typing(&mut f, "small\n--memory 2g\n\n\n--memory 512m --cpus 1");
        assert!(f.notes().contains(&Note::Info(
            "its services get: [--memory] [512m] [--cpus] [1]".into()
        )));
        match f.check() {
            Ok(Edit::Extra {
                new: Some((tag, ExtraArgsRule::Full(e))),
                ..
            }) => {
                assert_eq!(tag, "small");
                assert_eq!(e.services, "--memory 512m --cpus 1");
                assert!(!e.privileged);
            }
            other => panic!("{other:?}"),
        }
        // a service argument that widens the reach needs privileged too
        typing(&mut f, " --cap-add SYS_ADMIN");
        let (field, why) = f.check().unwrap_err();
        assert_eq!(field, 3);
        assert!(why.contains("--cap-add"), "{why}");
    }

    #[test]
    fn reach_widening_arguments_need_the_privileged_box_ticked() {
        let mut f = form(FormKind::Extra(None));
        typing(&mut f, "fuse\n--device /dev/fuse\n\n");
        let (field, why) = f.check().unwrap_err();
        assert_eq!(field, 3);
        assert!(why.contains("--device"), "{why}");
        typing(&mut f, " ");
        match f.check() {
            Ok(Edit::Extra {
                new: Some((tag, ExtraArgsRule::Full(e))),
                ..
            }) => {
                assert_eq!(tag, "fuse");
                assert!(e.privileged);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_plain_entry_stays_in_the_short_form() {
        let mut f = form(FormKind::Extra(Some("ci".into())));
        assert_eq!(f.text(1), "--env CI_LOCAL=1");
        typing(&mut f, "\n\x082");
        assert_eq!(
            f.check(),
            Ok(Edit::Extra {
                tag: Some("ci".into()),
                new: Some(("ci".into(), ExtraArgsRule::Args("--env CI_LOCAL=2".into())))
            })
        );
    }

    #[test]
    fn an_empty_setting_removes_it_and_a_bad_pull_policy_says_the_choices() {
        let mut f = form(FormKind::Setting("default_image"));
        assert_eq!(f.text(0), "fedora:41");
        typing(&mut f, &"\x08".repeat(9));
        assert_eq!(
            f.check(),
            Ok(Edit::Scalar {
                key: "default_image".into(),
                value: None
            })
        );
        let mut f = form(FormKind::Setting("pull_policy"));
        typing(&mut f, "sometimes");
        assert!(f.check().unwrap_err().1.contains("if-not-present"));
    }

    #[test]
    fn typing_clears_the_last_error_and_esc_cancels() {
        let mut f = form(FormKind::Mount(None));
        f.error = Some("no".into());
        f.warning = Some("careful".into());
        typing(&mut f, "/");
        assert_eq!((f.error.clone(), f.warning.clone()), (None, None));
        assert_eq!(typing(&mut f, "\x1b"), Outcome::Cancel);
    }

    #[test]
    fn rows_list_settings_then_mounts_then_tags() {
        assert_eq!(
            rows(&raw()),
            vec![
                Row::Setting("default_image"),
                Row::Setting("pull_policy"),
                Row::Setting("auth_file"),
                Row::Setting("keep_failed"),
                Row::Mount(0),
                Row::Extra("ci".into()),
            ]
        );
        assert_eq!(setting_value(&raw(), "keep_failed"), None);
        assert_eq!(
            setting_value(
                &config::parse("keep_failed: 15\n", std::path::Path::new("/p")).unwrap(),
                "keep_failed"
            ),
            Some("15".into())
        );
    }
}
