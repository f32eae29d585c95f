//! What GitLab does to `.gitlab-ci.yml` before it reads any job: `include: local` files are
//! merged in (the including file wins), then `extends:` is resolved (the extending job wins),
//! then `!reference` tags (src/localrun/reference.rs).
//! Both merge mappings key by key, recursively, and replace everything else (lists included).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::inputs;
use super::pipeline::{apply_merge_keys, ParseError};
use crate::config::yaml;

/// How deep `extends:` may chain (GitLab's limit).
const MAX_EXTENDS_DEPTH: usize = 11;
/// How deep `include:` may nest (GitLab's limit).
const MAX_INCLUDE_DEPTH: usize = 100;

/// Reads an included file: the path is relative to the project directory; returns the name
/// to show in messages and the text.
pub type ReadInclude<'a> = dyn FnMut(&str) -> Result<(String, String), String> + 'a;

/// What the files of a pipeline are read with besides their text.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The main file's inputs (`pogo exec --input`), for its `spec: inputs` header.
    pub inputs: Map<String, Value>,
    /// The variables `expand_vars` may use in an input.
    pub variables: HashMap<String, String>,
}

/// Parses one YAML file of the pipeline, as GitLab reads it: anchors and merge keys
/// resolved, then a `spec: inputs` header (if any) checked against `given` and its inputs
/// interpolated into the content (src/localrun/inputs.rs). A syntax error names `file`, line
/// and column.
pub fn load_file(
    text: &str,
    file: &str,
    given: &Map<String, Value>,
    variables: &HashMap<String, String>,
) -> Result<Value, ParseError> {
    let docs =
        yaml::documents::<super::reference::Tagged>(text).map_err(|e| ParseError::Syntax {
            at: match (e.line, e.column) {
                (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
                (Some(l), None) => format!("{file}:{l}"),
                _ => file.to_string(),
            },
            message: e.message,
        })?;
    let docs = docs
        .into_iter()
        .map(|super::reference::Tagged(mut v)| {
            apply_merge_keys(&mut v);
            v
        })
        .collect();
    let invalid = |message: String| ParseError::Invalid {
        file: file.to_string(),
        message,
    };
    let split = inputs::split(docs);
    let values = inputs::resolve(split.spec.as_ref(), given).map_err(invalid)?;
    if split.spec.is_none() {
        return Ok(split.content);
    }
    inputs::interpolate(
        split.content,
        &inputs::Context {
            inputs: &values,
            variables,
        },
    )
    .map_err(invalid)
}

/// `a` with `b` merged over it: mappings key by key, recursively; anything else replaced.
pub fn deep_merge(a: &mut Map<String, Value>, b: Map<String, Value>) {
    for (key, value) in b {
        match (a.get_mut(&key), value) {
            (Some(Value::Object(into)), Value::Object(from)) => deep_merge(into, from),
            (_, value) => {
                a.insert(key, value);
            }
        }
    }
}

/// One entry of `include:`: a local path and the `inputs` for its `spec: inputs` header. The
/// other kinds are refused, naming the include and how to vendor it: a pipeline without the
/// jobs an include brings is not the pipeline GitLab runs (it would pass having run nothing).
/// So is `rules` on an include, which decides whether a file is included.
fn include_entry(entry: &Value) -> Result<(String, Map<String, Value>), String> {
    const VENDOR: &str = "pogo exec reads only files of the project: put a copy in the project \
                          (for example under ci/) and include it with `local: ci/FILE.yml`";
    match entry {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            Err(format!("'{s}' is a remote include; {VENDOR}"))
        }
        Value::String(s) => Ok((s.clone(), Map::new())),
        Value::Object(m) => {
            let shown = || serde_json::to_string(entry).unwrap_or_default();
            let Some(local) = m.get("local") else {
                let kind = ["remote", "template", "project", "component"]
                    .into_iter()
                    .find(|k| m.contains_key(*k));
                return Err(match kind {
                    Some(k) => format!("{k}: {} cannot be included locally; {VENDOR}", shown()),
                    None => format!(
                        "an entry is neither a path nor a mapping with local, remote, \
                         template, project or component: {}",
                        shown()
                    ),
                });
            };
            if let Some(key) = m.keys().find(|k| *k != "local" && *k != "inputs") {
                return Err(format!(
                    "{key} on an include ({}) is not supported by pogo exec: it decides what \
                     is included; include the file without it",
                    shown()
                ));
            }
            let inputs = match m.get("inputs") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(i)) => i.clone(),
                Some(_) => return Err(format!("inputs: must be a mapping: {}", shown())),
            };
            match local {
                Value::String(s) => Ok((s.clone(), inputs)),
                _ => Err("local: must be a path".into()),
            }
        }
        _ => Err("must be a path, a mapping or a list of them".into()),
    }
}

/// A local include path relative to the project directory, or why it cannot be used.
fn local_path(path: &str) -> Result<String, String> {
    let rel = path.trim_start_matches('/');
    if rel.contains('*') {
        return Err(format!(
            "'{path}': wildcards in include paths are not supported by pogo exec yet; list the files"
        ));
    }
    if rel.split('/').any(|c| c == "..") {
        return Err(format!(
            "'{path}' leaves the project directory; include files inside the project"
        ));
    }
    if !(rel.ends_with(".yml") || rel.ends_with(".yaml")) {
        return Err(format!(
            "'{path}' does not have a YAML extension (.yml or .yaml)"
        ));
    }
    Ok(rel.to_string())
}

/// `root` (parsed from `file`) with its `include:` files merged in, recursively.
/// `chain` holds the files being included, to refuse cycles.
pub fn resolve_includes(
    root: Value,
    file: &str,
    read: &mut ReadInclude<'_>,
    variables: &HashMap<String, String>,
    chain: &mut Vec<String>,
) -> Result<Value, ParseError> {
    let invalid = |message: String| ParseError::Invalid {
        file: file.to_string(),
        message,
    };
    let Value::Object(mut top) = root else {
        return Ok(root);
    };
    let Some(include) = top.remove("include") else {
        return Ok(Value::Object(top));
    };
    let entries = match include {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => vec![other],
    };
    if chain.len() >= MAX_INCLUDE_DEPTH {
        return Err(invalid(format!(
            "include: nested more than {MAX_INCLUDE_DEPTH} levels deep"
        )));
    }
    let mut merged = Map::new();
    for entry in &entries {
        let (path, given) = include_entry(entry).map_err(|e| invalid(format!("include: {e}")))?;
        let rel = local_path(&path).map_err(|e| invalid(format!("include: {e}")))?;
        if chain.contains(&rel) {
            return Err(invalid(format!(
                "include: '{rel}' includes itself (through {})",
                chain.join(" -> ")
            )));
        }
        let (shown, text) = read(&rel).map_err(|e| invalid(format!("include: '{rel}': {e}")))?;
        let value = match load_file(&text, &shown, &given, variables)? {
            Value::Null => continue,
            v @ Value::Object(_) => v,
            _ => {
                return Err(ParseError::Invalid {
                    file: shown,
                    message: "an included file must be a mapping of keywords and jobs".into(),
                })
            }
        };
        chain.push(rel);
        let resolved = resolve_includes(value, &shown, read, variables, chain);
        chain.pop();
        if let Value::Object(m) = resolved? {
            deep_merge(&mut merged, m);
        }
    }
    deep_merge(&mut merged, top);
    Ok(Value::Object(merged))
}

/// Resolves `extends:` in every job of `top` (hidden ones included).
pub fn resolve_extends(top: &mut Map<String, Value>) -> Result<(), String> {
    let names: Vec<String> = top
        .iter()
        .filter(|(_, v)| v.get("extends").is_some())
        .map(|(k, _)| k.clone())
        .collect();
    let mut resolved: Vec<(String, Map<String, Value>)> = Vec::new();
    for name in &names {
        let job = resolve_job(top, name, &mut Vec::new())?;
        resolved.push((name.clone(), job));
    }
    for (name, job) in resolved {
        top.insert(name, Value::Object(job));
    }
    Ok(())
}

fn resolve_job(
    top: &Map<String, Value>,
    name: &str,
    chain: &mut Vec<String>,
) -> Result<Map<String, Value>, String> {
    if chain.iter().any(|c| c == name) {
        chain.push(name.to_string());
        return Err(format!("extends: circular: {}", chain.join(" -> ")));
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        return Err(format!(
            "job '{}': extends: more than {MAX_EXTENDS_DEPTH} levels deep",
            chain[0]
        ));
    }
    let Some(Value::Object(job)) = top.get(name) else {
        let from = chain.last().map(String::as_str).unwrap_or(name);
        return Err(format!(
            "job '{from}': extends: '{name}' is not defined (or is not a mapping)"
        ));
    };
    let mut own = job.clone();
    let parents = match own.remove("extends") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(format!(
                    "job '{name}': extends: must be a job name or a list of job names"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!(
                "job '{name}': extends: must be a job name or a list of job names"
            ))
        }
    };
    chain.push(name.to_string());
    let mut merged = Map::new();
    for parent in &parents {
        let p = resolve_job(top, parent, chain)?;
        deep_merge(&mut merged, p);
    }
    chain.pop();
    deep_merge(&mut merged, own);
    if !parents.is_empty() {
        // Already applied; left for messages about the job.
        let names = parents.into_iter().map(Value::String).collect();
        merged.insert("extends".into(), Value::Array(names));
    }
    Ok(merged)
}
