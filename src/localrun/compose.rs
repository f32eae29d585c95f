//! What GitLab does to `.gitlab-ci.yml` before it reads any job: `include:` files are merged
//! in (the including file wins; other projects' and remote files come from
//! src/localrun/origin.rs), then `extends:` is resolved (the extending job wins),
//! then `!reference` tags (src/localrun/reference.rs).
//! Both merge mappings key by key, recursively, and replace everything else (lists included).

use std::cell::OnceCell;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::inputs;
use super::origin::{self, Checkout, Origins, VENDOR};
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
    /// Where `include: project`, `component`, `remote` and `template` files come from.
    pub origins: Origins,
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
            origins: Origins::default(),
            facts: OnceCell::new(),
        }
    }

    /// The context with `origins` for includes from other projects and the network.
    pub fn with_origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
        self
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

/// What one `include:` entry names.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// A file of the including file's project; may hold variables and wildcards.
    Local(String),
    /// `project`, `ref` and `file` (one or a list).
    Project {
        project: String,
        git_ref: Option<String>,
        files: Vec<String>,
    },
    Component(String),
    /// A URL and the `integrity` hash (`sha256-BASE64`) its content must have.
    Remote {
        url: String,
        integrity: Option<String>,
    },
    Template(String),
}

/// One `include:` entry.
#[derive(Debug, Clone)]
struct Include {
    target: Target,
    inputs: Map<String, Value>,
    rules: Option<Vec<rules::Rule>>,
}

/// The keys one include kind takes besides `inputs` and `rules`.
const KINDS: [(&str, &[&str]); 5] = [
    ("local", &[]),
    ("project", &["ref", "file"]),
    ("component", &[]),
    ("remote", &["integrity", "cache"]),
    ("template", &[]),
];

/// One entry of `include:`: what it names, the `inputs` for its `spec: inputs` header, and
/// `rules` deciding whether it is included.
fn include_entry(entry: &Value) -> Result<Include, String> {
    let plain = |target| Include {
        target,
        inputs: Map::new(),
        rules: None,
    };
    let m = match entry {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            return Ok(plain(Target::Remote {
                url: s.clone(),
                integrity: None,
            }))
        }
        Value::String(s) => return Ok(plain(Target::Local(s.clone()))),
        Value::Object(m) => m,
        _ => return Err("must be a path, a mapping or a list of them".into()),
    };
    let shown = || serde_json::to_string(entry).unwrap_or_default();
    let Some((kind, extra)) = KINDS.iter().find(|(k, _)| m.contains_key(*k)) else {
        return Err(format!(
            "an entry is neither a path nor a mapping with local, remote, template, project \
             or component: {}",
            shown()
        ));
    };
    if let Some(key) = m.keys().find(|k| {
        k.as_str() != *kind
            && !extra.contains(&k.as_str())
            && !["inputs", "rules"].contains(&k.as_str())
    }) {
        let allowed = [*kind]
            .iter()
            .chain(extra.iter())
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "'{key}' is not an include: key ({allowed}, inputs, rules): {}",
            shown()
        ));
    }
    let inputs = match m.get("inputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(i)) => i.clone(),
        Some(_) => return Err(format!("inputs: must be a mapping: {}", shown())),
    };
    let rules = m.get("rules").map(include_rules).transpose()?;
    let text = |key: &str| match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("{key}: must be a string: {}", shown())),
    };
    let target = match *kind {
        "local" => Target::Local(text("local").map_err(|_| "local: must be a path".to_string())?),
        "component" => Target::Component(text("component")?),
        "remote" => Target::Remote {
            url: text("remote")?,
            integrity: m.get("integrity").map(|_| text("integrity")).transpose()?,
        },
        "template" => Target::Template(text("template")?),
        _ => Target::Project {
            project: text("project")?,
            git_ref: m.get("ref").map(|_| text("ref")).transpose()?,
            files: match m.get("file") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        format!("file: must be a path or a list of paths: {}", shown())
                    })?,
                _ => {
                    return Err(format!(
                        "project: needs file: (a path or a list of paths): {}",
                        shown()
                    ))
                }
            },
        },
    };
    Ok(Include {
        target,
        inputs,
        rules,
    })
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
    .resolve(root, file, &Place::Main)
}

/// How many files one pipeline may include in all (GitLab's default `max_includes`).
const MAX_INCLUDES: usize = 150;

/// Whose files the `include: local` entries of a file name: GitLab reads them from the
/// project the including file belongs to, at its commit.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    /// The project `pogo exec` runs.
    Main,
    /// A `--project-dir` clone (`include: project`, `component`).
    Clone(Checkout),
    /// A remote or template file: it belongs to no project.
    Remote,
}

/// One file to include.
#[derive(Debug, Clone)]
enum File {
    Main(String),
    Clone(Checkout, String),
    Url(String, Option<String>),
}

impl File {
    /// What names it in the chain of includes (and in the message about a cycle).
    fn key(&self) -> String {
        match self {
            File::Main(rel) => rel.clone(),
            File::Clone(c, rel) => c.shown(rel),
            File::Url(url, _) => url.clone(),
        }
    }

    fn place(&self) -> Place {
        match self {
            File::Main(_) => Place::Main,
            File::Clone(c, _) => Place::Clone(c.clone()),
            File::Url(..) => Place::Remote,
        }
    }
}

impl Target {
    /// The include's kind, as its key is named.
    fn kind(&self) -> &'static str {
        match self {
            Target::Local(_) => "local",
            Target::Project { .. } => "project",
            Target::Component(_) => "component",
            Target::Remote { .. } => "remote",
            Target::Template(_) => "template",
        }
    }

    /// The include as it is written, for messages.
    fn shown(&self) -> String {
        match self {
            Target::Local(p) => p.clone(),
            Target::Project { project, files, .. } => format!("{project}: {}", files.join(", ")),
            Target::Component(s) | Target::Remote { url: s, .. } | Target::Template(s) => s.clone(),
        }
    }
}

struct Includer<'r, 'a> {
    read: &'r mut ReadInclude<'a>,
    context: &'r Context,
    /// The files being included, to refuse cycles.
    chain: Vec<String>,
    /// Files included so far.
    count: usize,
}

impl Includer<'_, '_> {
    fn resolve(&mut self, root: Value, file: &str, place: &Place) -> Result<Value, ParseError> {
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
        let mut merged = Map::new();
        for entry in &entries {
            let inc = include_entry(entry).map_err(|e| invalid(format!("include: {e}")))?;
            if !self.wanted(&inc).map_err(invalid)? {
                continue;
            }
            let files = self
                .files(&inc.target, place)
                .map_err(|e| invalid(format!("include: {e}")))?;
            for f in files {
                let resolved = self.one(f, &inc.inputs, file)?;
                if let Value::Object(m) = resolved {
                    deep_merge(&mut merged, m);
                }
            }
        }
        deep_merge(&mut merged, top);
        Ok(Value::Object(merged))
    }

    /// Whether `inc`'s `rules` (if any) include it.
    fn wanted(&self, inc: &Include) -> Result<bool, String> {
        let Some(rules) = &inc.rules else {
            return Ok(true);
        };
        let facts = self.context.facts();
        let project = self.context.project.as_ref();
        let compare = |r: &str| project.and_then(|(p, _)| p.changed_against(r));
        let project_files = |p: &str, r: Option<&str>| self.context.origins.project_files(p, r);
        let facts = rules::Facts {
            files: &facts.files,
            changed: facts.changed.as_deref(),
            changed_against: &compare,
            project_files: &project_files,
            branch: None,
            tag: None,
            source: "",
        };
        let decision = rules::eval_rules(rules, RuleWhen::Always, &self.context.variables, &facts)
            .map_err(|e| format!("include: '{}': rules: {e}", inc.target.shown()))?;
        Ok(!matches!(decision, Decision::Out(_)))
    }

    /// The files `target` names, included from a file of `place`.
    fn files(&self, target: &Target, place: &Place) -> Result<Vec<File>, String> {
        let vars = &self.context.variables;
        let origins = &self.context.origins;
        let expand = |s: &str| rules::expand_vars(s, vars);
        let network = || {
            origins.network.as_ref().ok_or_else(|| {
                format!(
                    "{} '{}' is not fetched with --offline: {VENDOR}",
                    target.kind(),
                    target.shown()
                )
            })
        };
        Ok(match target {
            Target::Local(path) => {
                let rel = local_path(path, vars)?;
                let (files, whose) = match place {
                    Place::Main if rel.contains('*') => {
                        (self.context.facts().files.clone(), "the project")
                    }
                    Place::Main => return Ok(vec![File::Main(rel)]),
                    Place::Clone(c) if rel.contains('*') => (c.files()?, c.project.as_str()),
                    Place::Clone(c) => return Ok(vec![File::Clone(c.clone(), rel)]),
                    Place::Remote => {
                        return Err(format!(
                            "local: '{path}' in a remote or template file: it belongs to no \
                             project to read it from (GitLab refuses it too); include it with \
                             project: or remote:"
                        ))
                    }
                };
                let found = wildcard_matches(&rel, &files)?;
                if found.is_empty() {
                    return Err(format!("'{path}' matches no file of {whose}"));
                }
                found
                    .into_iter()
                    .map(|rel| match place {
                        Place::Clone(c) => File::Clone(c.clone(), rel),
                        _ => File::Main(rel),
                    })
                    .collect()
            }
            Target::Project {
                project,
                git_ref,
                files,
            } => {
                let project = expand(project);
                let git_ref = git_ref.as_deref().map(expand);
                let checkout = origins
                    .checkout(&project, git_ref.as_deref())
                    .map_err(|e| format!("project: '{project}': {e}"))?;
                files
                    .iter()
                    .map(|f| local_path(f, vars).map(|rel| File::Clone(checkout.clone(), rel)))
                    .collect::<Result<_, _>>()?
            }
            Target::Component(c) => {
                let c = expand(c);
                let (checkout, file) = origins
                    .component(&c)
                    .map_err(|e| format!("component: '{c}': {e}"))?;
                vec![File::Clone(checkout, file)]
            }
            Target::Remote { url, integrity } => {
                network()?;
                vec![File::Url(expand(url), integrity.clone())]
            }
            Target::Template(name) => {
                vec![File::Url(
                    origin::template_url(&expand(name), network()?)?,
                    None,
                )]
            }
        })
    }

    /// The text of `file` and the name to show for it.
    fn read(&mut self, file: &File) -> Result<(String, String), String> {
        match file {
            File::Main(rel) => (self.read)(rel).map_err(|e| format!("'{rel}': {e}")),
            File::Clone(c, rel) => Ok((c.shown(rel), c.read(rel)?)),
            File::Url(url, integrity) => {
                let network = self.context.origins.network.as_ref();
                let text = network
                    .ok_or_else(|| "no network".to_string())
                    .and_then(|n| origin::fetch(url, n))
                    .and_then(|text| match integrity {
                        Some(i) => origin::check_integrity(&text, i).map(|()| text),
                        None => Ok(text),
                    })
                    .map_err(|e| format!("'{url}' cannot be fetched: {e}; {VENDOR}"))?;
                Ok((url.clone(), text))
            }
        }
    }

    /// The included `file` with `given` inputs, its own includes resolved.
    fn one(
        &mut self,
        included: File,
        given: &Map<String, Value>,
        file: &str,
    ) -> Result<Value, ParseError> {
        let invalid = |message: String| ParseError::Invalid {
            file: file.to_string(),
            message,
        };
        let key = included.key();
        if self.chain.contains(&key) {
            return Err(invalid(format!(
                "include: '{key}' includes itself (through {})",
                self.chain.join(" -> ")
            )));
        }
        self.count += 1;
        if self.count > MAX_INCLUDES {
            return Err(invalid(format!(
                "include: Maximum of {MAX_INCLUDES} nested includes are allowed!"
            )));
        }
        let (shown, text) = self
            .read(&included)
            .map_err(|e| invalid(format!("include: {e}")))?;
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
        self.chain.push(key);
        let resolved = self.resolve(value, &shown, &included.place());
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

#[cfg(test)]
mod tests;
