//! Edits of the config file that keep everything else as the user wrote it: comments, key
//! order, quoting, blank lines. An edit replaces, inserts or removes only the text of the
//! value or entry it changes (located by [`yaml::layout`]); then the new text is parsed again
//! and must give exactly the configuration the edit means, or nothing is changed. Pure: text
//! in, text out; `config::write_atomic` writes it.

use super::model::{ExtraArgsRule, MountRule, RawConfig, SCALAR_KEYS};
use super::yaml::{self, Node};
use super::{parse, ConfigError};
use std::path::Path;

/// One change to the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Set (`Some`) or remove (`None`) a top-level scalar key such as `default_image`.
    Scalar { key: String, value: Option<String> },
    /// `index: Some(i)`: replace mount `i` (`rule: Some`) or remove it (`rule: None`);
    /// `index: None`: add `rule` at the end.
    Mount {
        index: Option<usize>,
        rule: Option<MountRule>,
    },
    /// `tag: Some(t)`: replace the entry of `t` (possibly under a new tag) or remove it
    /// (`new: None`); `tag: None`: add `new`.
    Extra {
        tag: Option<String>,
        new: Option<(String, ExtraArgsRule)>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file as it is on disk does not load: it has to be fixed first.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The edit itself is wrong (no such entry, a tag used twice, a bad value).
    #[error("{0}")]
    Refused(String),
    /// The file is laid out in a way this editor cannot change without touching other parts.
    #[error("{0}")]
    Layout(String),
}

/// The text of `text` with `edit` applied. `path` names the file in error messages.
pub fn apply(text: &str, path: &Path, edit: &Edit) -> Result<String, EditError> {
    // A file written with CRLF line ends keeps them (new lines included).
    let crlf = text.contains("\r\n") && !text.replace("\r\n", "").contains('\n');
    if crlf {
        let new = apply_lf(&text.replace("\r\n", "\n"), path, edit)?;
        return Ok(new.replace('\n', "\r\n"));
    }
    apply_lf(text, path, edit)
}

fn apply_lf(text: &str, path: &Path, edit: &Edit) -> Result<String, EditError> {
    let raw = parse(text, path)?;
    let expected = apply_to_model(raw, edit)?;
    let root = yaml::layout(text).map_err(|e| EditError::Layout(e.message))?;
    // the smallest change first; the rewrite of the whole entry only when that does not do
    let reads_back = |new: &String| parse(new, path).ok().as_ref() == Some(&expected);
    if let Some(new) = splice(text, root.as_ref(), edit).filter(reads_back) {
        return Ok(new);
    }
    if let Some(new) =
        rewrite_key(text, root.as_ref(), edit_key(edit), &expected).filter(reads_back)
    {
        return Ok(new);
    }
    Err(EditError::Layout(format!(
        "cannot change {} in {} without rewriting other parts of the file; press E to edit it in $EDITOR",
        edit_key(edit),
        path.display()
    )))
}

/// What the configuration is after `edit`.
pub fn apply_to_model(mut raw: RawConfig, edit: &Edit) -> Result<RawConfig, EditError> {
    let refused = |s: String| Err(EditError::Refused(s));
    match edit {
        Edit::Scalar { key, value } => {
            if !SCALAR_KEYS.contains(&key.as_str()) {
                return refused(format!("'{key}' is not a setting pogo knows"));
            }
            let mut obj =
                serde_json::to_value(&raw).map_err(|e| EditError::Refused(e.to_string()))?;
            let value = match value {
                None => None,
                Some(v) if NUMERIC_KEYS.contains(&key.as_str()) => {
                    Some(serde_json::Value::from(v.trim().parse::<u64>().map_err(
                        |_| EditError::Refused(format!("{key} must be a whole number, not '{v}'")),
                    )?))
                }
                Some(v) => Some(serde_json::Value::from(v.as_str())),
            };
            if let Some(map) = obj.as_object_mut() {
                match value {
                    Some(v) => map.insert(key.clone(), v),
                    None => map.remove(key),
                };
            }
            raw = serde_json::from_value(obj)
                .map_err(|e| EditError::Refused(format!("{key}: {e}")))?;
        }
        Edit::Mount { index, rule } => match (index, rule) {
            (Some(i), _) if *i >= raw.mounts.len() => {
                return refused(format!("there is no mount number {}", i + 1));
            }
            (Some(i), Some(r)) => raw.mounts[*i] = r.clone(),
            (Some(i), None) => {
                raw.mounts.remove(*i);
            }
            (None, Some(r)) => raw.mounts.push(r.clone()),
            (None, None) => return refused("nothing to change".into()),
        },
        Edit::Extra { tag, new } => {
            if let Some(t) = tag {
                if raw.extra_arguments.remove(t).is_none() {
                    return refused(format!("there are no extra arguments for tag '{t}'"));
                }
            }
            match new {
                Some((t, _)) if raw.extra_arguments.contains_key(t) => {
                    return refused(format!(
                        "tag '{t}' already has extra arguments: edit that entry instead"
                    ));
                }
                Some((t, r)) => {
                    raw.extra_arguments.insert(t.clone(), r.clone());
                }
                None if tag.is_none() => return refused("nothing to change".into()),
                None => {}
            }
        }
    }
    Ok(raw)
}

const NUMERIC_KEYS: &[&str] = &[
    "services_wait_timeout",
    "persistent_builds_days",
    "keep_failed",
    "log_copy_limit",
    "max_images_size",
    "max_cache_size",
];

fn edit_key(edit: &Edit) -> &str {
    match edit {
        Edit::Scalar { key, .. } => key,
        Edit::Mount { .. } => "mounts",
        Edit::Extra { .. } => "extra_arguments",
    }
}

/// The smallest change: only the value or entry the edit is about.
fn splice(text: &str, root: Option<&Node>, edit: &Edit) -> Option<String> {
    let entries = top_entries(root)?;
    let entry = find(entries, edit_key(edit));
    match edit {
        Edit::Scalar { key, value } => match (entry, value) {
            (Some((k, v @ Node::Scalar { .. })), Some(new)) if v.start() == v.end() => {
                // `key:` with no value: the new one goes right after the colon
                let colon = k.end() + text[k.end()..].find(':')? + 1;
                Some(replace(
                    text,
                    colon,
                    colon,
                    &format!(" {}", value_text(key, new)),
                ))
            }
            (Some((_, v @ Node::Scalar { .. })), Some(new)) => {
                Some(replace(text, v.start(), v.end(), &value_text(key, new)))
            }
            (Some((k, v)), None) => Some(remove_lines(text, k.start(), v.end())),
            (None, Some(new)) => {
                // after the last top-level setting, before the lists and maps
                let at = entries
                    .iter()
                    .rfind(|(_, v)| matches!(v, Node::Scalar { .. }))
                    .map(|(_, v)| line_end(text, v.end()))
                    .or_else(|| entries.first().map(|(k, _)| line_start(text, k.start())));
                let line = format!("{key}: {}\n", value_text(key, new));
                Some(match at {
                    Some(at) => insert_line(text, at, &line),
                    None => append(text, &line),
                })
            }
            (None, None) => Some(text.to_string()),
            (Some(_), Some(_)) => None,
        },
        Edit::Mount { index, rule } => {
            let Some((k, v)) = entry else {
                let rule = rule.as_ref()?;
                return Some(append(text, &block("mounts", &[mount_lines(rule)], "- ")));
            };
            let Node::Seq {
                flow: false, items, ..
            } = v
            else {
                return None;
            };
            match (index, rule) {
                (Some(i), Some(rule)) => {
                    let item = items.get(*i)?;
                    Some(replace_entry(
                        text,
                        item.start(),
                        item.end(),
                        &mount_lines(rule),
                    ))
                }
                (Some(_), None) if items.len() == 1 => Some(remove_lines(text, k.start(), v.end())),
                (Some(i), None) => {
                    let item = items.get(*i)?;
                    Some(remove_lines(
                        text,
                        dash_before(text, item.start()),
                        item.end(),
                    ))
                }
                (None, Some(rule)) => {
                    let last = items.last()?;
                    let dash = column(text, dash_before(text, last.start()));
                    let at = line_end(text, last.end());
                    let body = indent_rest(&mount_lines(rule), column(text, last.start()));
                    Some(insert_line(text, at, &format!("{}- {body}\n", pad(dash))))
                }
                (None, None) => None,
            }
        }
        Edit::Extra { tag, new } => {
            let Some((k, v)) = entry else {
                let (t, r) = new.as_ref()?;
                return Some(append(
                    text,
                    &block("extra_arguments", &[extra_lines(t, r)], ""),
                ));
            };
            let Node::Map {
                flow: false,
                entries: tags,
                ..
            } = v
            else {
                return None;
            };
            let find_tag = |t: &str| tags.iter().find(|(tk, _)| scalar_value(tk) == Some(t));
            match (tag, new) {
                (Some(t), Some((nt, r))) => {
                    let (tk, tv) = find_tag(t)?;
                    let lines = extra_lines(nt, r);
                    Some(replace_entry(text, tk.start(), tv.end(), &lines))
                }
                (Some(_), None) if tags.len() == 1 => Some(remove_lines(text, k.start(), v.end())),
                (Some(t), None) => {
                    let (tk, tv) = find_tag(t)?;
                    Some(remove_lines(text, tk.start(), tv.end()))
                }
                (None, Some((nt, r))) => {
                    let (lk, lv) = tags.last()?;
                    let at = line_end(text, lv.end());
                    let col = column(text, lk.start());
                    let body = indent_rest(&extra_lines(nt, r), col);
                    Some(insert_line(text, at, &format!("{}{body}\n", pad(col))))
                }
                (None, None) => None,
            }
        }
    }
}

/// The fallback: the edited top-level entry written out again in block style (comments
/// inside that entry are lost; the rest of the file stays as it was).
fn rewrite_key(text: &str, root: Option<&Node>, key: &str, expected: &RawConfig) -> Option<String> {
    let entries = top_entries(root)?;
    let new = match key {
        "mounts" => (!expected.mounts.is_empty()).then(|| {
            let items: Vec<_> = expected.mounts.iter().map(mount_lines).collect();
            block(key, &items, "- ")
        }),
        "extra_arguments" => (!expected.extra_arguments.is_empty()).then(|| {
            let items: Vec<_> = expected
                .extra_arguments
                .iter()
                .map(|(t, r)| extra_lines(t, r))
                .collect();
            block(key, &items, "")
        }),
        _ => return None,
    };
    let new = new.unwrap_or_default();
    Some(match find(entries, key) {
        Some((k, v)) => {
            let (from, to) = (line_start(text, k.start()), line_end(text, v.end()));
            replace(text, from, to, &new)
        }
        None => append(text, &new),
    })
}

/// Replace the node at `from..to` by `lines` (continuation lines indented to its column).
/// A comment at the end of a one-line node stays on the first line of its replacement.
fn replace_entry(text: &str, from: usize, to: usize, lines: &[String]) -> String {
    let body = indent_rest(lines, column(text, from));
    let eol = text[to..].find('\n').map_or(text.len(), |i| to + i);
    let tail = &text[to..eol];
    match body.split_once('\n') {
        Some((first, rest)) if !text[from..to].contains('\n') && !tail.trim().is_empty() => {
            replace(text, from, eol, &format!("{first}{tail}\n{rest}"))
        }
        _ => replace(text, from, to, &body),
    }
}

/// Where the `-` of the block sequence item starting at `item` is.
fn dash_before(text: &str, item: usize) -> usize {
    text[..item]
        .trim_end_matches([' ', '\t'])
        .strip_suffix('-')
        .map_or(item, str::len)
}

/// How the value of top-level `key` is written: numbers bare (as numbers: `010` as typed is
/// not a YAML integer), text as a scalar.
fn value_text(key: &str, v: &str) -> String {
    if NUMERIC_KEYS.contains(&key) {
        v.trim()
            .parse::<u64>()
            .map_or_else(|_| v.trim().to_string(), |n| n.to_string())
    } else {
        scalar(v)
    }
}

/// The entries of the document's top-level block mapping (none in an empty document, also
/// one that is just `---` and comments: its root is an empty scalar).
fn top_entries(root: Option<&Node>) -> Option<&[(Node, Node)]> {
    match root {
        Some(Node::Map {
            flow: false,
            entries,
            ..
        }) => Some(entries),
        None => Some(&[]),
        Some(Node::Scalar { value, start, end }) if value.is_empty() && start == end => Some(&[]),
        Some(_) => None,
    }
}

fn find<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n (Node, Node)> {
    entries.iter().find(|(k, _)| scalar_value(k) == Some(key))
}

fn scalar_value(n: &Node) -> Option<&str> {
    match n {
        Node::Scalar { value, .. } => Some(value),
        _ => None,
    }
}

/// `key:` and its items, each item's lines indented under it (`prefix` "- " for a list).
fn block(key: &str, items: &[Vec<String>], prefix: &str) -> String {
    let mut s = format!("{key}:\n");
    for lines in items {
        let body = indent_rest(lines, 2 + prefix.len());
        s.push_str(&format!("  {prefix}{body}\n"));
    }
    s
}

/// One mount as block-mapping lines, relative to its own indentation.
fn mount_lines(m: &MountRule) -> Vec<String> {
    let mut v = vec![format!("volume: {}", scalar(&m.volume))];
    if !m.tags.is_empty() {
        v.push(format!("tags: {}", flow_list(&m.tags)));
    }
    if !m.projects.is_empty() {
        v.push(format!("projects: {}", flow_list(&m.projects)));
    }
    if m.readonly {
        v.push("readonly: true".to_string());
    }
    v
}

/// One `extra_arguments` entry as lines: `tag: 'args'`, or the map form.
fn extra_lines(tag: &str, rule: &ExtraArgsRule) -> Vec<String> {
    match rule {
        ExtraArgsRule::Args(a) => vec![format!("{}: {}", scalar(tag), scalar(a))],
        ExtraArgsRule::Full(e) => {
            let mut v = vec![
                format!("{}:", scalar(tag)),
                format!("  args: {}", scalar(&e.args)),
            ];
            if !e.projects.is_empty() {
                v.push(format!("  projects: {}", flow_list(&e.projects)));
            }
            if e.privileged {
                v.push("  privileged: true".to_string());
            }
            if !e.services.is_empty() {
                v.push(format!("  services: {}", scalar(&e.services)));
            }
            if let Some(path) = &e.project_volume {
                v.push(format!("  project_volume: {}", scalar(path)));
            }
            v
        }
    }
}

/// The first line as is, the others indented by `col` spaces (they continue a node that
/// starts at column `col`).
fn indent_rest(lines: &[String], col: usize) -> String {
    let mut s = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            s.push('\n');
            s.push_str(&pad(col));
        }
        s.push_str(l);
    }
    s
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

/// `[a, b]`, each item a scalar safe inside a flow list.
fn flow_list(items: &[String]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|s| {
            // in a flow list a ':' may read as a key's end (libyaml: `[a:?]` is a mapping)
            if plain_ok(s) && !s.contains([',', '[', ']', '{', '}', ':']) {
                s.clone()
            } else {
                quoted(s)
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A YAML scalar that reads back as the string `s`: plain when that is unambiguous, else
/// single-quoted (double-quoted with escapes if it has control characters).
fn scalar(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn quoted(s: &str) -> String {
    let printable = |c: char| !c.is_control() && c != '\u{feff}';
    if s.chars().all(printable) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut q = String::from('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if printable(c) => q.push(c),
            c => q.push_str(&format!("\\u{:04x}", u32::from(c))),
        }
    }
    q.push('"');
    q
}

/// Plain style only for path- and image-like words that cannot read as another type.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let word = s
        .chars()
        .all(|c| c.is_alphanumeric() || "_./:@+=~-*?".contains(c));
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    );
    word && !special
        && (first.is_alphabetic() || first == '/' || first == '_')
        && !s.ends_with(':')
        && !s.contains("://")
        && s.parse::<f64>().is_err()
}

fn replace(text: &str, from: usize, to: usize, with: &str) -> String {
    let mut s = String::with_capacity(text.len() + with.len());
    s.push_str(&text[..from]);
    s.push_str(with);
    s.push_str(&text[to..]);
    s
}

/// Remove the whole lines from the one holding `from` to the one holding the byte before `to`.
fn remove_lines(text: &str, from: usize, to: usize) -> String {
    let start = line_start(text, from);
    let end = line_end(text, to.saturating_sub(1).max(from));
    replace(text, start, end, "")
}

/// `line` inserted at the start of a line (`at` from [`line_start`] or [`line_end`]).
fn insert_line(text: &str, at: usize, line: &str) -> String {
    if at == text.len() {
        append(text, line)
    } else {
        replace(text, at, at, line)
    }
}

/// `block` added at the end, on a line of its own.
fn append(text: &str, block: &str) -> String {
    let mut s = text.to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(block);
    s
}

/// The start of the line that holds byte `pos`. Searched as bytes: `pos` may fall inside a
/// multi-byte character (the last byte of a value), the newline never does.
fn line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

/// One past the newline ending the line that holds byte `pos` (or the end of the text).
fn line_end(text: &str, pos: usize) -> usize {
    text.as_bytes()[pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| pos + i + 1)
}

fn column(text: &str, pos: usize) -> usize {
    pos - line_start(text, pos)
}

#[cfg(test)]
mod tests;
