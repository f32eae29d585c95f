//! What GitLab does to `.gitlab-ci.yml` before it reads any job: `include: local` files are
//! merged in (the including file wins), then `extends:` is resolved (the extending job wins),
//! then `!reference` tags (src/localrun/reference.rs).
//! Both merge mappings key by key, recursively, and replace everything else (lists included).

use std::cell::OnceCell;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::inputs;
use super::pipeline::{apply_merge_keys, ParseError};
use super::project::{Project, RepoFacts};
use super::rules::{self, Decision, RuleWhen};
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
    /// The variables GitLab allows in `include:` (predefined ones and the pipeline's own,
    /// `--var`): for an input's `expand_vars`, include paths and `include: rules: if`.
    pub variables: HashMap<String, String>,
    /// The project (and `--dirty`), whose files wildcard includes and `include: rules:
    /// exists`/`changes` look at; listed once, when first needed.
    pub project: Option<(Project, bool)>,
    facts: OnceCell<RepoFacts>,
}

impl Context {
    pub fn new(
        inputs: Map<String, Value>,
        variables: HashMap<String, String>,
        project: Option<(Project, bool)>,
    ) -> Self {
        Context {
            inputs,
            variables,
            project,
            facts: OnceCell::new(),
        }
    }

    /// A context whose project has exactly `files` (tests, and callers without git).
    pub fn with_files(mut self, files: Vec<String>) -> Self {
        self.facts = OnceCell::from(RepoFacts {
            files,
            changed: None,
        });
        self
    }

    fn facts(&self) -> &RepoFacts {
        self.facts.get_or_init(|| match &self.project {
            Some((p, dirty)) => p.facts(*dirty),
            None => RepoFacts::default(),
        })
    }
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

/// One `include:` entry pogo exec can read.
#[derive(Debug, Clone, Default)]
struct Include {
    /// As written: may hold variables and wildcards.
    path: String,
    inputs: Map<String, Value>,
    rules: Option<Vec<rules::Rule>>,
}

/// One entry of `include:`: a local path, the `inputs` for its `spec: inputs` header, and
/// `rules` deciding whether it is included. The other kinds are refused, naming the include
/// and how to vendor it: a pipeline without the jobs an include brings is not the pipeline
/// GitLab runs (it would pass having run nothing).
fn include_entry(entry: &Value) -> Result<Include, String> {
    const VENDOR: &str = "pogo exec reads only files of the project: put a copy in the project \
                          (for example under ci/) and include it with `local: ci/FILE.yml`";
    match entry {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            Err(format!("'{s}' is a remote include; {VENDOR}"))
        }
        Value::String(s) => Ok(Include {
            path: s.clone(),
            ..Include::default()
        }),
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
            if let Some(key) = m
                .keys()
                .find(|k| !["local", "inputs", "rules"].contains(&k.as_str()))
            {
                return Err(format!(
                    "'{key}' is not an include: key (local, inputs, rules): {}",
                    shown()
                ));
            }
            let inputs = match m.get("inputs") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(i)) => i.clone(),
                Some(_) => return Err(format!("inputs: must be a mapping: {}", shown())),
            };
            let rules = m.get("rules").map(include_rules).transpose()?;
            match local {
                Value::String(s) => Ok(Include {
                    path: s.clone(),
                    inputs,
                    rules,
                }),
                _ => Err("local: must be a path".into()),
            }
        }
        _ => Err("must be a path, a mapping or a list of them".into()),
    }
}

/// `include: rules`: `if`, `exists`, `changes` and `when: never`/`always` (GitLab's set).
fn include_rules(v: &Value) -> Result<Vec<rules::Rule>, String> {
    let no = |what: &str| -> Result<(), String> {
        Err(format!("rules: {what} is not allowed in include rules"))
    };
    let parsed = rules::parse_rules(
        v,
        &mut rules::RuleKeys {
            allow_failure: &|_| no("allow_failure").map(|()| super::pipeline::AllowFailure::No),
            variables: &|_| no("variables").map(|()| Vec::new()),
            needs: &mut |_| no("needs").map(|()| Vec::new()),
        },
    )
    .map_err(|e| format!("rules: {e}"))?;
    for rule in &parsed {
        if let Some(w) = rule.when {
            if !matches!(w, RuleWhen::Never | RuleWhen::Always) {
                return Err(format!(
                    "rules: when: {} is not allowed in include rules (never or always)",
                    w.as_str()
                ));
            }
        }
    }
    Ok(parsed)
}

/// A local include path relative to the project directory (variables expanded), or why it
/// cannot be used. It may hold wildcards.
fn local_path(path: &str, variables: &HashMap<String, String>) -> Result<String, String> {
    let expanded = rules::expand_vars(path, variables);
    let rel = expanded.trim_start_matches('/');
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

/// The project's files a wildcard include names, sorted: `*` within a directory, `**` across
/// directories (`ci/**.yml`: ci/ and below; `ci/**/*.yml`: below ci/ only), as GitLab
/// documents them.
fn wildcard_matches(pattern: &str, files: &[String]) -> Result<Vec<String>, String> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                re.push_str(".*");
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    let re = regex::Regex::new(&re).map_err(|e| format!("'{pattern}': {e}"))?;
    let mut found: Vec<String> = files.iter().filter(|f| re.is_match(f)).cloned().collect();
    found.sort();
    Ok(found)
}

/// `root` (parsed from `file`) with its `include:` files merged in, recursively, in GitLab's
/// order (each file's includes before the file itself, which wins).
pub fn resolve_includes(
    root: Value,
    file: &str,
    read: &mut ReadInclude<'_>,
    context: &Context,
) -> Result<Value, ParseError> {
    Includer {
        read,
        context,
        chain: Vec::new(),
        count: 0,
    }
    .resolve(root, file)
}

/// How many files one pipeline may include in all (GitLab's default `max_includes`).
const MAX_INCLUDES: usize = 150;

struct Includer<'r, 'a> {
    read: &'r mut ReadInclude<'a>,
    context: &'r Context,
    /// The files being included, to refuse cycles.
    chain: Vec<String>,
    /// Files included so far.
    count: usize,
}

impl Includer<'_, '_> {
    fn resolve(&mut self, root: Value, file: &str) -> Result<Value, ParseError> {
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
        if self.chain.len() >= MAX_INCLUDE_DEPTH {
            return Err(invalid(format!(
                "include: nested more than {MAX_INCLUDE_DEPTH} levels deep"
            )));
        }
        let vars = &self.context.variables;
        let mut merged = Map::new();
        for entry in &entries {
            let inc = include_entry(entry).map_err(|e| invalid(format!("include: {e}")))?;
            if let Some(rules) = &inc.rules {
                let facts = self.context.facts();
                let project = self.context.project.as_ref();
                let compare = |r: &str| project.and_then(|(p, _)| p.changed_against(r));
                let facts = rules::Facts {
                    files: &facts.files,
                    changed: facts.changed.as_deref(),
                    changed_against: &compare,
                    branch: None,
                    tag: None,
                    source: "",
                };
                let decision = rules::eval_rules(rules, RuleWhen::Always, vars, &facts)
                    .map_err(|e| invalid(format!("include: '{}': rules: {e}", inc.path)))?;
                if let Decision::Out(_) = decision {
                    continue;
                }
            }
            let rel = local_path(&inc.path, vars).map_err(|e| invalid(format!("include: {e}")))?;
            let paths = if rel.contains('*') {
                let found = wildcard_matches(&rel, &self.context.facts().files)
                    .map_err(|e| invalid(format!("include: {e}")))?;
                if found.is_empty() {
                    return Err(invalid(format!(
                        "include: '{}' matches no file of the project",
                        inc.path
                    )));
                }
                found
            } else {
                vec![rel]
            };
            for rel in paths {
                let resolved = self.one(&rel, &inc.inputs, file)?;
                if let Value::Object(m) = resolved {
                    deep_merge(&mut merged, m);
                }
            }
        }
        deep_merge(&mut merged, top);
        Ok(Value::Object(merged))
    }

    /// The included file `rel` with `given` inputs, its own includes resolved.
    fn one(
        &mut self,
        rel: &str,
        given: &Map<String, Value>,
        file: &str,
    ) -> Result<Value, ParseError> {
        let invalid = |message: String| ParseError::Invalid {
            file: file.to_string(),
            message,
        };
        if self.chain.iter().any(|c| c == rel) {
            return Err(invalid(format!(
                "include: '{rel}' includes itself (through {})",
                self.chain.join(" -> ")
            )));
        }
        self.count += 1;
        if self.count > MAX_INCLUDES {
            return Err(invalid(format!(
                "include: Maximum of {MAX_INCLUDES} nested includes are allowed!"
            )));
        }
        let (shown, text) =
            (self.read)(rel).map_err(|e| invalid(format!("include: '{rel}': {e}")))?;
        let value = match load_file(&text, &shown, given, &self.context.variables)? {
            Value::Null => return Ok(Value::Null),
            v @ Value::Object(_) => v,
            _ => {
                return Err(ParseError::Invalid {
                    file: shown,
                    message: "an included file must be a mapping of keywords and jobs".into(),
                })
            }
        };
        self.chain.push(rel.to_string());
        let resolved = self.resolve(value, &shown);
        self.chain.pop();
        resolved
    }
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
