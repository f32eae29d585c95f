//! Reading `.gitlab-ci.yml` for `pogo exec`: the subset of GitLab's CI syntax that can run
//! locally without a GitLab server. Every key outside that subset is collected in
//! [`Pipeline::ignored`] so the caller can say so — nothing is dropped silently.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::compose::{self, ReadInclude};
use crate::driver::{
    Artifacts, ArtifactsWhen, Cache, CachePolicy, CacheWhen, Image, Service, Variable,
};

/// GitLab's stages when `stages:` is not given.
pub const DEFAULT_STAGES: &[&str] = &["build", "test", "deploy"];
/// The stage of a job without `stage:`.
pub const DEFAULT_STAGE: &str = "test";

/// Top-level keys that are not jobs and that `pogo exec` does not implement.
const IGNORED_TOP_LEVEL: &[&str] = &["types", "spec"];
/// Keys of `default:` that are applied to jobs.
const DEFAULT_KEYS: &[&str] = &[
    "image",
    "services",
    "before_script",
    "after_script",
    "tags",
    "variables",
    "cache",
    "artifacts",
];
/// The deprecated top-level forms of `default:` keys.
const GLOBAL_KEYS: &[&str] = &[
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
];
/// GitLab's cache key when `cache:key` is not given.
pub const DEFAULT_CACHE_KEY: &str = "default";
/// Keys of a job that are implemented.
const JOB_KEYS: &[&str] = &[
    "stage",
    "image",
    "services",
    "variables",
    "before_script",
    "script",
    "after_script",
    "tags",
    "when",
    "allow_failure",
    "cache",
    "artifacts",
    "dependencies",
    "needs",
    "parallel",
    "rules",
    "only",
    "except",
    "inherit",
    "trigger",
    // Resolved before jobs are read (see compose); kept to explain a missing `script:`.
    "extends",
];

/// `inherit: default` / `inherit: variables` of a job: all of them (GitLab's default),
/// none, or the ones named.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Inherit {
    All,
    Only(Vec<String>),
}

impl Inherit {
    fn parse(v: Option<&Value>) -> Result<Self, String> {
        match v {
            None | Some(Value::Bool(true)) => Ok(Inherit::All),
            Some(Value::Bool(false)) => Ok(Inherit::Only(Vec::new())),
            Some(v @ Value::Array(_)) => string_list(v).map(Inherit::Only),
            Some(other) => Err(format!(
                "must be true, false or a list of names, found {}",
                kind(other)
            )),
        }
    }

    fn allows(&self, name: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// How deep GitLab lets script lists nest.
const MAX_SCRIPT_DEPTH: usize = 10;

/// Why `.gitlab-ci.yml` cannot be used. Messages name the file and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not valid YAML; `at` is `FILE:LINE:COLUMN` (or `FILE` when the parser has no position).
    #[error("{at}: {message}")]
    Syntax { at: String, message: String },
    /// Valid YAML, but not a pipeline `pogo exec` can run.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// `when:` of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    OnSuccess,
    /// Runs only when named on the command line.
    Manual,
    Always,
    OnFailure,
}

/// `allow_failure:` of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowFailure {
    No,
    Yes,
    /// `allow_failure: {exit_codes: [...]}`: only script failures with these codes.
    ExitCodes(Vec<i32>),
}

/// One entry of `needs:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub job: String,
    /// Download its artifacts (`artifacts: false` turns it off).
    pub artifacts: bool,
    /// `optional: true`: dropped when the job does not exist.
    pub optional: bool,
}

/// One runnable job, with `default:` and global variables already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub stage: String,
    pub image: Option<Image>,
    pub services: Vec<Service>,
    /// Global, then `default:`, then the job's own variables (later ones win).
    pub variables: Vec<Variable>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub tags: Vec<String>,
    pub when: When,
    pub allow_failure: AllowFailure,
    /// Keys are as written (`default` when not given); variables are expanded per job.
    pub cache: Vec<Cache>,
    /// For each of `cache`, `key: files` when its key comes from files (`pogo exec`
    /// computes it before the job runs, as GitLab does).
    pub cache_key_files: Vec<Option<KeyFiles>>,
    pub artifacts: Option<Artifacts>,
    /// `dependencies:`: whose artifacts to download (`None`: not given).
    pub dependencies: Option<Vec<String>>,
    /// `needs:` (`None`: not given; `optional` needs of jobs that do not exist are dropped).
    pub needs: Option<Vec<Need>>,
    /// `rules:` (`None`: not given).
    pub rules: Option<Vec<super::rules::Rule>>,
    /// `only:` and `except:` (`None`: not given; without `rules:` GitLab's default `only`,
    /// branches and tags, applies).
    pub only: Option<super::rules::Refs>,
    pub except: Option<super::rules::Refs>,
    /// `when: delayed` (runs as on_success locally, without the delay).
    pub delayed: bool,
    /// The keys the job's own `variables:` sets (they win over `workflow: rules: variables`).
    pub own_variable_keys: Vec<String>,
    /// `trigger:`: the job starts a downstream pipeline instead of running a script.
    pub trigger: Option<Trigger>,
}

/// `cache: key: {files, prefix}` (or `files_commits`): the key is a hash of the files'
/// content (of the commits that last changed them), after `prefix-`; `default` when none of
/// the files exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyFiles {
    pub files: Vec<String>,
    pub prefix: Option<String>,
    /// `files_commits`: the commits, not the content.
    pub commits: bool,
}

/// `trigger:` of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A child pipeline of this project: its `include:` entries (as `include:` takes them,
    /// `inputs` too), and whether the job waits for it and takes its result
    /// (`strategy: depend`).
    Child { include: Value, depend: bool },
    /// A pipeline of another project (or a child from a job's artifact), which `pogo exec`
    /// cannot run: why, for the refusal.
    Elsewhere(String),
}

/// What `.gitlab-ci.yml` describes, as far as `pogo exec` understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// All stages in order, `.pre` first and `.post` last.
    pub stages: Vec<String>,
    /// Jobs in stage order, by name within a stage.
    pub jobs: Vec<JobSpec>,
    /// Hidden jobs (templates whose name starts with `.`); never run.
    pub hidden: Vec<String>,
    /// Keys that were read but are not implemented locally, each once, in the order met.
    pub ignored: Vec<String>,
    /// `workflow: rules` (`None`: not given: every pipeline is created).
    pub workflow: Option<Vec<super::rules::Rule>>,
    /// The top-level `variables:`.
    pub variables: Vec<Variable>,
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&JobSpec> {
        self.jobs.iter().find(|j| j.name == name)
    }

    fn stage_index(&self, stage: &str) -> usize {
        self.stages
            .iter()
            .position(|s| s == stage)
            .unwrap_or(usize::MAX)
    }

    /// The jobs whose artifacts `job` downloads, like GitLab: `dependencies:` when given,
    /// else the `needs:` with `artifacts: true`, else every job of an earlier stage.
    pub fn artifact_sources<'a>(&'a self, job: &'a JobSpec) -> Vec<&'a str> {
        if let Some(deps) = &job.dependencies {
            return deps.iter().map(String::as_str).collect();
        }
        if let Some(needs) = &job.needs {
            return needs
                .iter()
                .filter(|n| n.artifacts)
                .map(|n| n.job.as_str())
                .collect();
        }
        let stage = self.stage_index(&job.stage);
        self.jobs
            .iter()
            .filter(|j| self.stage_index(&j.stage) < stage)
            .map(|j| j.name.as_str())
            .collect()
    }

    /// `needs:` and `dependencies:` name jobs that exist, in the right stages.
    pub(crate) fn check_references(&self) -> Result<(), String> {
        for job in &self.jobs {
            let stage = self.stage_index(&job.stage);
            let find = |name: &str| self.jobs.iter().find(|j| j.name == name);
            let needed = |name: &str| job.needs.iter().flatten().any(|n| n.job == name);
            for dep in job.dependencies.iter().flatten() {
                match find(dep) {
                    // GitLab: with needs:, dependencies must be among the needs
                    Some(_) if job.needs.is_some() && !needed(dep) => {
                        return Err(format!(
                            "job '{}': dependencies: '{dep}' should be part of needs:",
                            job.name
                        ))
                    }
                    Some(d) if self.stage_index(&d.stage) < stage => {}
                    // the same stage: only when needed, so it has finished
                    Some(d) if self.stage_index(&d.stage) == stage && needed(dep) => {}
                    Some(d) => {
                        return Err(format!(
                            "job '{}': dependencies: '{dep}' is in stage '{}', not in an earlier \
                             stage than '{}' (a job of the same stage must also be in needs:)",
                            job.name, d.stage, job.stage
                        ))
                    }
                    None => {
                        return Err(format!(
                            "job '{}': dependencies: '{dep}' is not a job of this pipeline",
                            job.name
                        ))
                    }
                }
            }
            for need in job.needs.iter().flatten() {
                match find(&need.job) {
                    _ if need.job == job.name => {
                        return Err(format!(
                            "job '{}': needs: a job cannot need itself",
                            job.name
                        ))
                    }
                    Some(n) if self.stage_index(&n.stage) <= stage => {}
                    Some(n) => {
                        return Err(format!(
                            "job '{}': needs: '{}' is in the later stage '{}'",
                            job.name, need.job, n.stage
                        ))
                    }
                    None => {
                        return Err(format!(
                            "job '{}': needs: '{}' is not a job of this pipeline (mark the need \
                             `optional: true` if it may be missing)",
                            job.name, need.job
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parses the text of `.gitlab-ci.yml` without a project directory (an `include: local`
/// is an error); `file` is only used in messages.
pub fn parse(text: &str, file: &str) -> Result<Pipeline, ParseError> {
    parse_with(
        text,
        file,
        &mut |path: &str| Err(format!("cannot read {path}: no project directory")),
        &compose::Context::default(),
    )
}

/// Parses the text of `.gitlab-ci.yml`, reading `include: local` files with `read`.
pub fn parse_with(
    text: &str,
    file: &str,
    read: &mut ReadInclude<'_>,
    context: &compose::Context,
) -> Result<Pipeline, ParseError> {
    let invalid = |message: String| ParseError::Invalid {
        file: file.to_string(),
        message,
    };
    let root = compose::load_file(text, file, &context.inputs, &context.variables)?;
    let mut parser = Parser::default();
    let mut root = compose::resolve_includes(root, file, read, context)?;
    if let Value::Object(top) = &mut root {
        compose::resolve_extends(top).map_err(invalid)?;
        super::reference::resolve(top).map_err(invalid)?;
    }
    let pipeline = parser.pipeline(&root).map_err(invalid)?;
    pipeline.check_references().map_err(invalid)?;
    Ok(pipeline)
}

/// YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`): the parser resolves the aliases but
/// leaves `<<` as an ordinary key. Keys of the mapping itself win; among several merged
/// mappings, earlier ones win.
pub fn apply_merge_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(mut merged) = map.remove("<<") {
                apply_merge_keys(&mut merged);
                let sources = match merged {
                    Value::Object(m) => vec![m],
                    Value::Array(items) => items
                        .into_iter()
                        .filter_map(|i| match i {
                            Value::Object(m) => Some(m),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for source in sources {
                    for (k, val) in source {
                        map.entry(k).or_insert(val);
                    }
                }
            }
            for val in map.values_mut() {
                apply_merge_keys(val);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(apply_merge_keys),
        _ => {}
    }
}

/// The JSON type of a value, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `null` (an empty YAML value) counts as absent.
fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

#[derive(Default)]
struct Parser {
    ignored: Vec<String>,
}

/// What `default:` (and the deprecated top-level globals) give every job.
#[derive(Default)]
struct Defaults {
    image: Option<Image>,
    services: Option<Vec<Service>>,
    before_script: Option<Vec<String>>,
    after_script: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    variables: Vec<Variable>,
    cache: Option<Vec<(Cache, Option<KeyFiles>)>>,
    artifacts: Option<Option<Artifacts>>,
}

impl Parser {
    fn ignore(&mut self, key: impl Into<String>) {
        let key = key.into();
        if !self.ignored.contains(&key) {
            self.ignored.push(key);
        }
    }

    fn pipeline(&mut self, root: &Value) -> Result<Pipeline, String> {
        let top = match root {
            Value::Object(m) => m,
            Value::Null => return Err("the file is empty: define at least one job".into()),
            other => {
                return Err(format!(
                    "the file must be a mapping of keywords and jobs, found {}",
                    kind(other)
                ))
            }
        };

        let stages = self.stages(top)?;
        let globals = match get(top, "variables") {
            Some(v) => variables(v).map_err(|e| format!("variables: {e}"))?,
            None => Vec::new(),
        };
        let defaults = self.defaults(top)?;
        let workflow = match get(top, "workflow") {
            None => None,
            Some(Value::Object(w)) => {
                let mut rules = None;
                for (key, v) in w {
                    match key.as_str() {
                        "rules" => {
                            rules =
                                Some(self.rules(v).map_err(|e| format!("workflow: rules: {e}"))?)
                        }
                        // the pipeline's title in GitLab's UI: nothing to run
                        "name" => {}
                        "auto_cancel" => self.ignore("workflow: auto_cancel"),
                        other => return Err(format!("workflow: '{other}' is not a workflow key")),
                    }
                }
                rules
            }
            Some(other) => {
                return Err(format!(
                    "workflow: must be a mapping, found {}",
                    kind(other)
                ))
            }
        };

        let mut jobs = Vec::new();
        let mut hidden = Vec::new();
        // each `parallel:` job's instances, by the name written
        let mut parallel: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in top {
            if matches!(
                name.as_str(),
                "stages" | "variables" | "default" | "workflow"
            ) || GLOBAL_KEYS.contains(&name.as_str())
            {
                continue;
            }
            if IGNORED_TOP_LEVEL.contains(&name.as_str()) {
                self.ignore(name.as_str());
                continue;
            }
            if name.starts_with('.') {
                hidden.push(name.clone());
                continue;
            }
            let Value::Object(job) = value else {
                return Err(format!(
                    "'{name}' is neither a keyword nor a job: a job is a mapping with `script:`, found {}",
                    kind(value)
                ));
            };
            let Some(spec) = self.job(name, job, &globals, &defaults, &stages)? else {
                continue;
            };
            match get(job, "parallel") {
                None => jobs.push(spec),
                Some(v) => {
                    let instances =
                        instances(v).map_err(|e| format!("job '{name}': parallel: {e}"))?;
                    let total = instances.len();
                    let mut names = Vec::with_capacity(total);
                    for (i, inst) in instances.into_iter().enumerate() {
                        let mut j = spec.clone();
                        j.name = inst.name(name, i + 1, total);
                        let mut vars = vec![
                            Variable::new("CI_NODE_INDEX", (i + 1).to_string()),
                            Variable::new("CI_NODE_TOTAL", total.to_string()),
                        ];
                        vars.extend(inst.vars().map(|(k, v)| Variable::new(k, v)));
                        for v in vars {
                            j.own_variable_keys.push(v.key.clone());
                            j.variables.push(v);
                        }
                        names.push(j.name.clone());
                        jobs.push(j);
                    }
                    parallel.insert(name.clone(), names);
                }
            }
        }
        // `needs: [job]` and `dependencies: [job]` of a parallel job mean all its instances
        for job in &mut jobs {
            if let Some(needs) = &mut job.needs {
                *needs = std::mem::take(needs)
                    .into_iter()
                    .flat_map(|n| match parallel.get(&n.job) {
                        Some(names) => names
                            .iter()
                            .map(|name| Need {
                                job: name.clone(),
                                ..n.clone()
                            })
                            .collect(),
                        None => vec![n],
                    })
                    .collect();
            }
            if let Some(deps) = &mut job.dependencies {
                *deps = std::mem::take(deps)
                    .into_iter()
                    .flat_map(|d| parallel.get(&d).cloned().unwrap_or_else(|| vec![d]))
                    .collect();
            }
        }
        // stage order, by name within a stage (the file's order is not GitLab's either)
        jobs.sort_by(|a, b| {
            let at = |j: &JobSpec| stages.iter().position(|s| *s == j.stage);
            at(a).cmp(&at(b)).then_with(|| a.name.cmp(&b.name))
        });
        let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
        for job in &mut jobs {
            if let Some(needs) = &mut job.needs {
                needs.retain(|n| !n.optional || names.contains(&n.job));
            }
        }
        Ok(Pipeline {
            stages,
            jobs,
            hidden,
            ignored: std::mem::take(&mut self.ignored),
            workflow,
            variables: globals,
        })
    }

    /// `rules:` of a job or of `workflow:`.
    fn rules(&mut self, v: &Value) -> Result<Vec<super::rules::Rule>, String> {
        let mut unsupported = Vec::new();
        let rules = super::rules::parse_rules(v, &allow_failure, &variables, &mut |k| {
            unsupported.push(k.to_string())
        })?;
        for k in unsupported {
            self.ignore(&k);
        }
        Ok(rules)
    }

    /// `only:` or `except:`.
    fn refs(&mut self, v: &Value) -> Result<super::rules::Refs, String> {
        let mut unsupported = Vec::new();
        let refs = super::rules::parse_refs(v, &mut |k| unsupported.push(k.to_string()))?;
        for k in unsupported {
            self.ignore(&k);
        }
        Ok(refs)
    }

    fn stages(&mut self, top: &Map<String, Value>) -> Result<Vec<String>, String> {
        let listed: Vec<String> = match get(top, "stages") {
            None => DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
            Some(v) => string_list(v).map_err(|e| format!("stages: {e}"))?,
        };
        let mut stages = vec![".pre".to_string()];
        for s in listed {
            if !stages.contains(&s) && s != ".post" {
                stages.push(s);
            }
        }
        stages.push(".post".to_string());
        Ok(stages)
    }

    fn defaults(&mut self, top: &Map<String, Value>) -> Result<Defaults, String> {
        let mut d = Defaults::default();
        // The deprecated global keywords first; `default:` overrides them.
        self.default_keys(top, &mut d, "", GLOBAL_KEYS)?;
        match get(top, "default") {
            None => {}
            Some(Value::Object(m)) => {
                for key in m.keys() {
                    if !DEFAULT_KEYS.contains(&key.as_str()) {
                        self.ignore(key.as_str());
                    }
                }
                self.default_keys(m, &mut d, "default: ", DEFAULT_KEYS)?;
            }
            Some(other) => {
                return Err(format!("default: must be a mapping, found {}", kind(other)))
            }
        }
        Ok(d)
    }

    fn default_keys(
        &mut self,
        m: &Map<String, Value>,
        d: &mut Defaults,
        prefix: &str,
        keys: &[&str],
    ) -> Result<(), String> {
        for key in keys {
            let Some(v) = get(m, key) else { continue };
            let ctx = |e: String| format!("{prefix}{key}: {e}");
            match *key {
                "image" => d.image = Some(self.image(v).map_err(ctx)?),
                "services" => d.services = Some(self.services(v).map_err(ctx)?),
                "before_script" => d.before_script = Some(script(v).map_err(ctx)?),
                "after_script" => d.after_script = Some(script(v).map_err(ctx)?),
                "tags" => d.tags = Some(string_list(v).map_err(ctx)?),
                "variables" => d.variables = variables(v).map_err(ctx)?,
                "cache" => d.cache = Some(self.caches(v).map_err(ctx)?),
                "artifacts" => d.artifacts = Some(self.artifacts(v).map_err(ctx)?),
                _ => {}
            }
        }
        Ok(())
    }

    fn job(
        &mut self,
        name: &str,
        m: &Map<String, Value>,
        globals: &[Variable],
        d: &Defaults,
        stages: &[String],
    ) -> Result<Option<JobSpec>, String> {
        for key in m.keys() {
            if !JOB_KEYS.contains(&key.as_str()) {
                self.ignore(key.as_str());
            }
        }
        let ctx = |key: &str| {
            let name = name.to_string();
            let key = key.to_string();
            move |e: String| format!("job '{name}': {key}: {e}")
        };
        let trigger = match get(m, "trigger") {
            Some(t) => Some(trigger(t).map_err(ctx("trigger"))?),
            None => None,
        };
        let script_lines = match (get(m, "script"), &trigger) {
            (Some(v), _) => script(v).map_err(ctx("script"))?,
            // a trigger job runs no script of its own
            (None, Some(_)) => Vec::new(),
            (None, None) => {
                let hint = if m.contains_key("extends") {
                    " (nor do the jobs it extends)"
                } else {
                    ""
                };
                return Err(format!("job '{name}' has no `script:`{hint}; add one"));
            }
        };
        if script_lines.is_empty() && trigger.is_none() {
            return Err(format!(
                "job '{name}': script: can't be blank (GitLab rejects an empty script too); \
                 give it a command"
            ));
        }

        let stage = match get(m, "stage") {
            None => DEFAULT_STAGE.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(format!(
                    "job '{name}': stage: must be a string, found {}",
                    kind(other)
                ))
            }
        };
        if !stages.contains(&stage) {
            let listed: Vec<&str> = stages[1..stages.len() - 1]
                .iter()
                .map(String::as_str)
                .collect();
            return Err(format!(
                "job '{name}': stage '{stage}' is not defined; add it to `stages:` (now: {})",
                listed.join(", ")
            ));
        }

        // `inherit:` narrows what `default:` and the global variables give this job
        let (inherit_default, inherit_variables) = match get(m, "inherit") {
            None => (Inherit::All, Inherit::All),
            Some(Value::Object(i)) => {
                if let Some(k) = i.keys().find(|k| *k != "default" && *k != "variables") {
                    return Err(format!(
                        "job '{name}': inherit: '{k}' is not an inherit: key (default, variables)"
                    ));
                }
                (
                    Inherit::parse(get(i, "default")).map_err(ctx("inherit: default"))?,
                    Inherit::parse(get(i, "variables")).map_err(ctx("inherit: variables"))?,
                )
            }
            Some(other) => {
                return Err(format!(
                    "job '{name}': inherit: must be a mapping with default and variables, found {}",
                    kind(other)
                ))
            }
        };
        let empty = Defaults::default();
        let inherited = |key: &str| {
            if inherit_default.allows(key) {
                d
            } else {
                &empty
            }
        };
        let image = match get(m, "image") {
            Some(v) => Some(self.image(v).map_err(ctx("image"))?),
            None => inherited("image").image.clone(),
        };
        let services = match get(m, "services") {
            Some(v) => self.services(v).map_err(ctx("services"))?,
            None => inherited("services").services.clone().unwrap_or_default(),
        };
        let before_script = match get(m, "before_script") {
            Some(v) => script(v).map_err(ctx("before_script"))?,
            None => inherited("before_script")
                .before_script
                .clone()
                .unwrap_or_default(),
        };
        let after_script = match get(m, "after_script") {
            Some(v) => script(v).map_err(ctx("after_script"))?,
            None => inherited("after_script")
                .after_script
                .clone()
                .unwrap_or_default(),
        };
        let tags = match get(m, "tags") {
            Some(v) => string_list(v).map_err(ctx("tags"))?,
            None => inherited("tags").tags.clone().unwrap_or_default(),
        };
        let mut vars: Vec<Variable> = globals
            .iter()
            .chain(&d.variables)
            .filter(|v| inherit_variables.allows(&v.key))
            .cloned()
            .collect();
        let mut own_variable_keys = Vec::new();
        if let Some(v) = get(m, "variables") {
            let own = variables(v).map_err(ctx("variables"))?;
            own_variable_keys = own.iter().map(|v| v.key.clone()).collect();
            vars.extend(own);
        }
        let mut delayed = false;
        let when = match get(m, "when") {
            None => When::OnSuccess,
            Some(Value::String(s)) => match s.as_str() {
                "on_success" => When::OnSuccess,
                "manual" => When::Manual,
                "always" => When::Always,
                "on_failure" => When::OnFailure,
                "delayed" => {
                    self.ignore("when: delayed (runs at once)");
                    delayed = true;
                    When::OnSuccess
                }
                other => {
                    return Err(format!(
                        "job '{name}': when: '{other}' is not supported; use on_success, manual, \
                         always, on_failure or delayed"
                    ))
                }
            },
            Some(other) => {
                return Err(format!(
                    "job '{name}': when: must be a string, found {}",
                    kind(other)
                ))
            }
        };
        let allow_failure = match get(m, "allow_failure") {
            // GitLab: a manual job may fail unless it says otherwise
            None if when == When::Manual => AllowFailure::Yes,
            None => AllowFailure::No,
            Some(v) => allow_failure(v).map_err(ctx("allow_failure"))?,
        };
        let rules = match get(m, "rules") {
            None => None,
            Some(v) => Some(self.rules(v).map_err(ctx("rules"))?),
        };
        let only = match get(m, "only") {
            None => None,
            Some(v) => Some(self.refs(v).map_err(ctx("only"))?),
        };
        let except = match get(m, "except") {
            None => None,
            Some(v) => Some(self.refs(v).map_err(ctx("except"))?),
        };
        if rules.is_some() && (only.is_some() || except.is_some()) {
            // GitLab's own check
            return Err(format!(
                "job '{name}': rules: cannot be used with only: or except: (GitLab rejects it \
                 too); keep one of them"
            ));
        }
        let (cache, cache_key_files) = match get(m, "cache") {
            Some(v) => self.caches(v).map_err(ctx("cache"))?,
            None => inherited("cache").cache.clone().unwrap_or_default(),
        }
        .into_iter()
        .unzip();
        let artifacts = match get(m, "artifacts") {
            Some(v) => self.artifacts(v).map_err(ctx("artifacts"))?,
            None => inherited("artifacts").artifacts.clone().flatten(),
        };
        let dependencies = match m.get("dependencies") {
            None => None,
            Some(Value::Null) => Some(Vec::new()),
            Some(v) => Some(string_list(v).map_err(ctx("dependencies"))?),
        };
        let needs = match m.get("needs") {
            None => None,
            Some(Value::Null) => Some(Vec::new()),
            Some(v) => Some(self.needs(v).map_err(ctx("needs"))?),
        };
        Ok(Some(JobSpec {
            name: name.to_string(),
            stage,
            image,
            services,
            variables: vars,
            before_script,
            script: script_lines,
            after_script,
            tags,
            when,
            allow_failure,
            cache,
            cache_key_files,
            artifacts,
            dependencies,
            needs,
            rules,
            only,
            except,
            delayed,
            own_variable_keys,
            trigger,
        }))
    }

    /// `cache:`: one mapping or a list of them (`[]` or `{}`: no cache).
    fn caches(&mut self, v: &Value) -> Result<Vec<(Cache, Option<KeyFiles>)>, String> {
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            Value::Object(m) if m.is_empty() => Vec::new(),
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let c = self.cache(item).map_err(|e| {
                if matches!(v, Value::Array(_)) {
                    format!("entry {}: {e}", i + 1)
                } else {
                    e
                }
            })?;
            out.push(c);
        }
        Ok(out)
    }

    fn cache(&mut self, v: &Value) -> Result<(Cache, Option<KeyFiles>), String> {
        let Value::Object(m) = v else {
            return Err(format!(
                "must be a mapping with `key:` and `paths:`, found {}",
                kind(v)
            ));
        };
        for key in m.keys() {
            if !matches!(key.as_str(), "key" | "paths" | "policy" | "when") {
                self.ignore(format!("cache:{key}"));
            }
        }
        let mut c = Cache {
            key: DEFAULT_CACHE_KEY.to_string(),
            ..Cache::default()
        };
        let mut key_files = None;
        match get(m, "key") {
            None => {}
            Some(Value::Object(k)) => {
                let prefix = get(k, "prefix").and_then(scalar);
                let (files, commits) = match (get(k, "files"), get(k, "files_commits")) {
                    (Some(f), None) => (f, false),
                    (None, Some(f)) => (f, true),
                    _ => {
                        return Err(
                            "key: a mapping needs `files` or `files_commits` (one of them)".into(),
                        )
                    }
                };
                let files = string_list(files).map_err(|e| format!("key: files: {e}"))?;
                if files.is_empty() || files.len() > 2 {
                    return Err("key: files: give one or two files (GitLab's limit)".into());
                }
                if let Some(extra) = k
                    .keys()
                    .find(|x| !["files", "files_commits", "prefix"].contains(&x.as_str()))
                {
                    return Err(format!("key: '{extra}' is not a key: key (files, prefix)"));
                }
                if let Some(p) = &prefix {
                    c.key = format!("{p}-{DEFAULT_CACHE_KEY}");
                }
                key_files = Some(KeyFiles {
                    files,
                    prefix,
                    commits,
                });
            }
            Some(other) => {
                c.key = scalar(other).ok_or_else(|| {
                    format!("key: must be a string or a mapping, found {}", kind(other))
                })?;
            }
        }
        if let Some(p) = get(m, "paths") {
            c.paths = string_list(p).map_err(|e| format!("paths: {e}"))?;
        }
        c.policy = match get(m, "policy") {
            None => CachePolicy::PullPush,
            Some(Value::String(s)) => match s.as_str() {
                "pull-push" => CachePolicy::PullPush,
                "pull" => CachePolicy::Pull,
                "push" => CachePolicy::Push,
                other => {
                    return Err(format!(
                        "policy: '{other}' is not supported; use pull, push or pull-push"
                    ))
                }
            },
            Some(other) => return Err(format!("policy: must be a string, found {}", kind(other))),
        };
        c.when = upload_when(get(m, "when")).map_err(|e| format!("when: {e}"))?;
        Ok((c, key_files))
    }

    /// `artifacts:`; `None` when it has no paths.
    fn artifacts(&mut self, v: &Value) -> Result<Option<Artifacts>, String> {
        let Value::Object(m) = v else {
            return Err(format!(
                "must be a mapping with `paths:`, found {}",
                kind(v)
            ));
        };
        for key in m.keys() {
            if !matches!(key.as_str(), "paths" | "when" | "exclude" | "reports") {
                self.ignore(format!("artifacts:{key}"));
            }
        }
        let paths = match get(m, "paths") {
            Some(p) => string_list(p).map_err(|e| format!("paths: {e}"))?,
            None => Vec::new(),
        };
        let exclude = match get(m, "exclude") {
            Some(p) => one_or_list(p).map_err(|e| format!("exclude: {e}"))?,
            None => Vec::new(),
        };
        let mut dotenv = Vec::new();
        match get(m, "reports") {
            None | Some(Value::Null) => {}
            Some(Value::Object(reports)) => {
                for (kind, v) in reports {
                    if kind == "dotenv" {
                        dotenv = one_or_list(v).map_err(|e| format!("reports:dotenv: {e}"))?;
                    } else {
                        // test and coverage reports change nothing a later job sees
                        self.ignore(format!("artifacts:reports:{kind}"));
                    }
                }
            }
            Some(other) => {
                return Err(format!("reports: must be a mapping, found {}", kind(other)))
            }
        }
        let when = upload_when(get(m, "when")).map_err(|e| format!("when: {e}"))?;
        Ok(
            (!paths.is_empty() || !dotenv.is_empty()).then_some(Artifacts {
                paths,
                exclude,
                when,
                dotenv,
            }),
        )
    }

    /// `needs:`: job names or `{job, artifacts, optional}`; other kinds are reported.
    fn needs(&mut self, v: &Value) -> Result<Vec<Need>, String> {
        let Value::Array(items) = v else {
            return Err(format!("must be a list, found {}", kind(v)));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(job) => out.push(Need {
                    job: job.clone(),
                    artifacts: true,
                    optional: false,
                }),
                Value::Object(m) => {
                    let Some(job) = get(m, "job") else {
                        let kind = ["pipeline", "project"]
                            .into_iter()
                            .find(|k| m.contains_key(*k))
                            .unwrap_or("entry");
                        self.ignore(format!("needs:{kind}"));
                        continue;
                    };
                    let Value::String(job) = job else {
                        return Err(format!("job: must be a job name, found {}", kind(job)));
                    };
                    for key in m.keys() {
                        if !matches!(key.as_str(), "job" | "artifacts" | "optional" | "parallel") {
                            self.ignore(format!("needs:{key}"));
                        }
                    }
                    let flag = |key: &str, default: bool| match get(m, key) {
                        None => Ok(default),
                        Some(Value::Bool(b)) => Ok(*b),
                        Some(other) => Err(format!(
                            "{key}: must be true or false, found {}",
                            kind(other)
                        )),
                    };
                    let need = Need {
                        job: job.clone(),
                        artifacts: flag("artifacts", true)?,
                        optional: flag("optional", false)?,
                    };
                    match get(m, "parallel") {
                        // `needs: {job, parallel: {matrix: [...]}}`: those instances only
                        Some(p) => {
                            let Value::Object(pm) = p else {
                                return Err("parallel: must be {matrix: [...]}".into());
                            };
                            let Some(matrix) = get(pm, "matrix") else {
                                return Err("parallel: must be {matrix: [...]}".into());
                            };
                            for inst in matrix_instances(matrix)
                                .map_err(|e| format!("parallel: matrix: {e}"))?
                            {
                                out.push(Need {
                                    job: inst.name(job, 0, 0),
                                    ..need.clone()
                                });
                            }
                        }
                        None => out.push(need),
                    }
                }
                other => {
                    return Err(format!(
                        "must be a list of job names or mappings with `job:`, found {} in it",
                        kind(other)
                    ))
                }
            }
        }
        Ok(out)
    }

    /// `image: NAME` or `image: {name, entrypoint}`.
    fn image(&mut self, v: &Value) -> Result<Image, String> {
        match v {
            Value::String(s) => Ok(Image::new(s.clone())),
            Value::Object(m) => {
                for key in m.keys() {
                    if !matches!(key.as_str(), "name" | "entrypoint" | "docker") {
                        self.ignore(format!("image:{key}"));
                    }
                }
                let name = match get(m, "name") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err("`name:` (a string) is required".into()),
                };
                let entrypoint = match get(m, "entrypoint") {
                    None => None,
                    Some(e) => Some(string_list(e).map_err(|e| format!("entrypoint: {e}"))?),
                };
                let docker = docker_options(get(m, "docker"))?;
                Ok(Image {
                    name,
                    entrypoint,
                    docker,
                })
            }
            other => Err(format!(
                "must be an image name or a mapping with `name:`, found {}",
                kind(other)
            )),
        }
    }

    /// A list of `NAME` or `{name, alias, entrypoint, command, variables}`.
    fn services(&mut self, v: &Value) -> Result<Vec<Service>, String> {
        let Value::Array(items) = v else {
            return Err(format!("must be a list, found {}", kind(v)));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let s = self
                .service(item)
                .map_err(|e| format!("entry {}: {e}", i + 1))?;
            out.push(s);
        }
        Ok(out)
    }

    fn service(&mut self, v: &Value) -> Result<Service, String> {
        match v {
            Value::String(s) => Ok(Service::new(s.clone())),
            Value::Object(m) => {
                for key in m.keys() {
                    if !matches!(
                        key.as_str(),
                        "name" | "alias" | "entrypoint" | "command" | "variables" | "docker"
                    ) {
                        self.ignore(format!("services:{key}"));
                    }
                }
                let mut s = match get(m, "name") {
                    Some(Value::String(n)) => Service::new(n.clone()),
                    _ => return Err("`name:` (a string) is required".into()),
                };
                match get(m, "alias") {
                    None => {}
                    Some(Value::String(a)) => s.alias = a.clone(),
                    Some(other) => {
                        return Err(format!("alias: must be a string, found {}", kind(other)))
                    }
                }
                if let Some(e) = get(m, "entrypoint") {
                    s.entrypoint = Some(string_list(e).map_err(|e| format!("entrypoint: {e}"))?);
                }
                if let Some(c) = get(m, "command") {
                    s.command = Some(string_list(c).map_err(|e| format!("command: {e}"))?);
                }
                if let Some(vars) = get(m, "variables") {
                    let list = variables(vars).map_err(|e| format!("variables: {e}"))?;
                    s.variables = list
                        .into_iter()
                        .map(|v| (v.key, v.value))
                        .collect::<BTreeMap<_, _>>();
                }
                s.docker = docker_options(get(m, "docker"))?;
                Ok(s)
            }
            other => Err(format!(
                "must be an image name or a mapping with `name:`, found {}",
                kind(other)
            )),
        }
    }
}

/// `trigger:` as GitLab reads it: a project path (or `project:`) is another project's
/// pipeline; `include:` a child pipeline of files of this project.
fn trigger(v: &Value) -> Result<Trigger, String> {
    let m = match v {
        Value::String(p) => {
            return Ok(Trigger::Elsewhere(format!(
                "it triggers a pipeline of project {p}"
            )))
        }
        Value::Object(m) => m,
        other => {
            return Err(format!(
                "must be a project path or a mapping with include: or project:, found {}",
                kind(other)
            ))
        }
    };
    if let Some(p) = get(m, "project") {
        return Ok(Trigger::Elsewhere(format!(
            "it triggers a pipeline of project {}",
            scalar(p).unwrap_or_default()
        )));
    }
    let Some(include) = get(m, "include") else {
        return Err("needs include: (a child pipeline) or project: (another project's)".into());
    };
    let entries = match include {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    if let Some(e) = entries.iter().find(|e| e.get("artifact").is_some()) {
        return Ok(Trigger::Elsewhere(format!(
            "its child pipeline comes from an artifact of job {} (a dynamic child pipeline)",
            e.get("job").and_then(scalar).unwrap_or_default()
        )));
    }
    let depend = match get(m, "strategy") {
        None => false,
        Some(Value::String(s)) if s == "depend" || s == "mirror" => true,
        Some(other) => {
            return Err(format!(
                "strategy: must be depend or mirror, found {}",
                scalar(other).unwrap_or_default()
            ))
        }
    };
    Ok(Trigger::Child {
        include: Value::Array(entries),
        depend,
    })
}

/// `docker: {platform, user}` of an image or a service (checked when the job starts, as
/// on GitLab's runner).
fn docker_options(v: Option<&Value>) -> Result<crate::driver::DockerOptions, String> {
    let Some(v) = v else {
        return Ok(Default::default());
    };
    let Value::Object(m) = v else {
        return Err(format!(
            "docker: must be a mapping with platform and user, found {}",
            kind(v)
        ));
    };
    let text = |key: &str| match get(m, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "docker: {key}: must be a string, found {}",
            kind(other)
        )),
    };
    if let Some(k) = m.keys().find(|k| *k != "platform" && *k != "user") {
        return Err(format!(
            "docker: '{k}' is not a docker: key (platform, user)"
        ));
    }
    Ok(crate::driver::DockerOptions {
        platform: text("platform")?,
        user: text("user")?,
    })
}

/// A scalar as GitLab turns it into a variable value.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A variable name GitLab accepts: letters, digits and `_`.
pub fn valid_variable_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `variables:`: `KEY: value` or `KEY: {value, description, expand, options}`.
fn variables(v: &Value) -> Result<Vec<Variable>, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "must be a mapping of NAME: value, found {}",
            kind(v)
        ));
    };
    let mut out = Vec::with_capacity(m.len());
    for (key, value) in m {
        if !valid_variable_name(key) {
            return Err(format!(
                "'{key}' is not a valid variable name (use letters, digits and _)"
            ));
        }
        let mut var = match value {
            Value::Object(o) => {
                if let Some(bad) = o
                    .keys()
                    .find(|k| !matches!(k.as_str(), "value" | "description" | "expand" | "options"))
                {
                    return Err(format!(
                        "{key}: unknown key '{bad}'; a variable mapping has value, description, \
                         expand and options"
                    ));
                }
                let raw = o.get("value").unwrap_or(&Value::Null);
                let text = scalar(raw).ok_or_else(|| {
                    format!(
                        "{key}: value: must be a string or a number, found {}",
                        kind(raw)
                    )
                })?;
                let mut var = Variable::new(key.clone(), text);
                match o.get("expand") {
                    None | Some(Value::Null) => {}
                    Some(Value::Bool(b)) => var.raw = !b,
                    Some(other) => {
                        return Err(format!(
                            "{key}: expand: must be true or false, found {}",
                            kind(other)
                        ))
                    }
                }
                var
            }
            other => {
                let text = scalar(other).ok_or_else(|| {
                    format!(
                        "{key}: must be a string, a number or a mapping with `value:`, found {}",
                        kind(other)
                    )
                })?;
                Variable::new(key.clone(), text)
            }
        };
        var.public = true;
        out.push(var);
    }
    Ok(out)
}

/// How many instances `parallel:` may make (GitLab's limit).
const MAX_PARALLEL: usize = 200;

/// One instance of a `parallel:` job: its matrix variables (none for `parallel: N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance(Vec<(String, String)>);

impl Instance {
    /// GitLab's name for instance `index` of `total` of job `job`: `job 2/3`, or with a
    /// matrix `job: [aws, monitoring]` (the values in the order written).
    pub fn name(&self, job: &str, index: usize, total: usize) -> String {
        if self.0.is_empty() {
            return format!("{job} {index}/{total}");
        }
        let values: Vec<&str> = self.0.iter().map(|(_, v)| v.as_str()).collect();
        format!("{job}: [{}]", values.join(", "))
    }

    pub fn vars(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0.iter().cloned()
    }
}

/// `parallel: N` or `parallel: {matrix: [...]}`.
fn instances(v: &Value) -> Result<Vec<Instance>, String> {
    let list = match v {
        Value::Number(n) => {
            let n = n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=MAX_PARALLEL).contains(n))
                .ok_or_else(|| format!("must be a number from 1 to {MAX_PARALLEL}, found {n}"))?;
            vec![Instance(Vec::new()); n]
        }
        Value::Object(m) => match get(m, "matrix") {
            Some(matrix) => matrix_instances(matrix).map_err(|e| format!("matrix: {e}"))?,
            None => return Err("must be a number or {matrix: [...]}".into()),
        },
        other => {
            return Err(format!(
                "must be a number or {{matrix: [...]}}, found {}",
                kind(other)
            ))
        }
    };
    if list.len() > MAX_PARALLEL {
        return Err(format!(
            "makes {} jobs; GitLab allows at most {MAX_PARALLEL}",
            list.len()
        ));
    }
    Ok(list)
}

/// The instances of `matrix: [{VAR: value or [values], ...}, ...]`: for each entry, every
/// combination of its values, the variables in the order written.
fn matrix_instances(v: &Value) -> Result<Vec<Instance>, String> {
    let Value::Array(entries) = v else {
        return Err(format!("must be a list of mappings, found {}", kind(v)));
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("a value must be a string, found {}", kind(other))),
    };
    let mut out = Vec::new();
    for entry in entries {
        let Value::Object(m) = entry else {
            return Err(format!(
                "an entry must be a mapping of variables, found {}",
                kind(entry)
            ));
        };
        if m.is_empty() {
            return Err("an entry has no variables".into());
        }
        let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (key, value) in m {
            if !valid_variable_name(key) {
                return Err(format!("'{key}' is not a valid variable name"));
            }
            let values = match value {
                Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
                other => vec![scalar(other)?],
            };
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((key.clone(), v.clone()));
                        c
                    })
                })
                .collect();
            if combos.len() > MAX_PARALLEL {
                return Err(format!("makes more than {MAX_PARALLEL} jobs"));
            }
        }
        out.extend(combos.into_iter().map(Instance));
    }
    Ok(out)
}

/// A script: a string, or a list of strings and lists nested up to ten levels.
fn script(v: &Value) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    flatten_script(v, 0, &mut out)?;
    Ok(out)
}

fn flatten_script(v: &Value, depth: usize, out: &mut Vec<String>) -> Result<(), String> {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) if depth < MAX_SCRIPT_DEPTH => {
            for item in items {
                flatten_script(item, depth + 1, out)?;
            }
        }
        Value::Array(_) => {
            return Err(format!(
                "lists of commands may nest at most {MAX_SCRIPT_DEPTH} levels deep"
            ))
        }
        Value::Object(m) => {
            let first = m.keys().next().map(String::as_str).unwrap_or("");
            return Err(format!(
                "a command was read as a mapping ('{first}: ...'): quote commands that contain ': '"
            ));
        }
        other => {
            return Err(format!(
                "must be a string or a list of strings, found {} (quote it)",
                kind(other)
            ))
        }
    }
    Ok(())
}

/// A list of strings (`stages`, `tags`, `entrypoint`, `command`).
/// A string or a list of strings (`artifacts:exclude`, `reports:dotenv`).
fn one_or_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        other => string_list(other),
    }
}

fn string_list(v: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = v else {
        return Err(format!("must be a list of strings, found {}", kind(v)));
    };
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "must be a list of strings, found {} in it (quote it)",
                kind(other)
            )),
        })
        .collect()
}

/// `when:` of `cache:` and `artifacts:`.
fn upload_when(v: Option<&Value>) -> Result<ArtifactsWhen, String> {
    match v {
        None => Ok(CacheWhen::OnSuccess),
        Some(Value::String(s)) => match s.as_str() {
            "on_success" => Ok(CacheWhen::OnSuccess),
            "on_failure" => Ok(CacheWhen::OnFailure),
            "always" => Ok(CacheWhen::Always),
            other => Err(format!(
                "'{other}' is not supported; use on_success, on_failure or always"
            )),
        },
        Some(other) => Err(format!("must be a string, found {}", kind(other))),
    }
}

fn allow_failure(v: &Value) -> Result<AllowFailure, String> {
    match v {
        Value::Bool(true) => Ok(AllowFailure::Yes),
        Value::Bool(false) => Ok(AllowFailure::No),
        Value::Object(m) => {
            if let Some(bad) = m.keys().find(|k| *k != "exit_codes") {
                return Err(format!(
                    "unknown key '{bad}'; use true, false or {{exit_codes: [...]}}"
                ));
            }
            let codes = match get(m, "exit_codes") {
                Some(Value::Number(n)) => vec![n.as_i64()],
                Some(Value::Array(items)) => items.iter().map(Value::as_i64).collect(),
                _ => vec![None],
            };
            codes
                .into_iter()
                .map(|c| c.and_then(|c| i32::try_from(c).ok()))
                .collect::<Option<Vec<i32>>>()
                .map(AllowFailure::ExitCodes)
                .ok_or_else(|| "exit_codes: must be an exit code or a list of exit codes".into())
        }
        other => Err(format!(
            "must be true, false or {{exit_codes: [...]}}, found {}",
            kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_ok(text: &str) -> Pipeline {
        match parse(text, ".gitlab-ci.yml") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        parse(text, ".gitlab-ci.yml").unwrap_err().to_string()
    }

    fn var<'a>(j: &'a JobSpec, key: &str) -> Option<&'a str> {
        j.variables
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.as_str())
    }

    #[test]
    fn defaults_merge_into_jobs() {
        let p = parse_ok(
            r#"
variables:
  GLOBAL: g
  SHARED: from-global
  PORT: 8080
default:
  image: img-default
  before_script: [echo default-before]
  after_script: echo default-after
  tags: [t1]
  variables:
    SHARED: from-default
a:
  script: echo a
b:
  image: img-b
  before_script: []
  tags: [t2, t3]
  variables:
    SHARED: from-job
    OBJ: {value: "v", description: "d", expand: false}
  script:
    - echo b1
    - [echo b2, [echo b3]]
"#,
        );
        let a = p.job("a").unwrap();
        assert_eq!(a.image, Some(Image::new("img-default")));
        assert_eq!(a.before_script, vec!["echo default-before"]);
        assert_eq!(a.after_script, vec!["echo default-after"]);
        assert_eq!(a.tags, vec!["t1"]);
        assert_eq!(var(a, "GLOBAL"), Some("g"));
        assert_eq!(var(a, "SHARED"), Some("from-default"));
        assert_eq!(var(a, "PORT"), Some("8080"));
        assert_eq!(a.stage, "test");

        let b = p.job("b").unwrap();
        assert_eq!(b.image, Some(Image::new("img-b")));
        assert!(
            b.before_script.is_empty(),
            "an empty job value replaces the default"
        );
        assert_eq!(b.after_script, vec!["echo default-after"]);
        assert_eq!(b.tags, vec!["t2", "t3"]);
        assert_eq!(var(b, "SHARED"), Some("from-job"));
        assert_eq!(b.script, vec!["echo b1", "echo b2", "echo b3"]);
        let obj = b.variables.iter().find(|v| v.key == "OBJ").unwrap();
        assert_eq!(obj.value, "v");
        assert!(obj.raw, "expand: false makes the variable raw");
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    }

    #[test]
    fn image_and_service_forms() {
        let p = parse_ok(
            r#"
j:
  image:
    name: registry/img:1
    entrypoint: [""]
  services:
    - plain:latest
    - name: localhost/pogo-test/httpd:latest
      alias: web
      entrypoint: ["/bin/httpd"]
      command: ["-f", "-p", "80"]
      variables:
        A: 1
        B: two
  script: ["true"]
"#,
        );
        let j = p.job("j").unwrap();
        assert_eq!(
            j.image,
            Some(Image {
                name: "registry/img:1".into(),
                entrypoint: Some(vec![String::new()]),
                ..Image::default()
            })
        );
        assert_eq!(j.services.len(), 2);
        assert_eq!(j.services[0], Service::new("plain:latest"));
        let web = &j.services[1];
        assert_eq!(web.name, "localhost/pogo-test/httpd:latest");
        assert_eq!(web.alias, "web");
        assert_eq!(web.entrypoint, Some(vec!["/bin/httpd".to_string()]));
        assert_eq!(
            web.command,
            Some(vec!["-f".to_string(), "-p".into(), "80".into()])
        );
        assert_eq!(web.variables.get("A").map(String::as_str), Some("1"));
        assert_eq!(web.variables.get("B").map(String::as_str), Some("two"));

        let e = parse_err("j:\n  image: {entrypoint: [x]}\n  script: x\n");
        assert!(e.contains("job 'j': image: `name:`"), "{e}");
        let e = parse_err("j:\n  services: web\n  script: x\n");
        assert!(e.contains("job 'j': services: must be a list"), "{e}");
    }

    #[test]
    fn stage_order() {
        let p = parse_ok(
            r#"
stages: [lint, build, ship]
z-ship: {stage: ship, script: x}
a-build: {stage: build, script: x}
post: {stage: .post, script: x}
b-lint: {stage: lint, script: x}
pre: {stage: .pre, script: x}
c-build: {stage: build, script: x}
"#,
        );
        assert_eq!(p.stages, vec![".pre", "lint", "build", "ship", ".post"]);
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["pre", "b-lint", "a-build", "c-build", "z-ship", "post"]
        );

        let p = parse_ok(
            "d: {stage: deploy, script: x}\nb: {stage: build, script: x}\nt: {script: x}\n",
        );
        assert_eq!(p.stages, vec![".pre", "build", "test", "deploy", ".post"]);
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, vec!["b", "t", "d"]);

        let e = parse_err("stages: [build]\nj: {stage: test, script: x}\n");
        assert!(
            e.contains("job 'j': stage 'test' is not defined; add it to `stages:` (now: build)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_reported_once() {
        let p = parse_ok(
            r#"
workflow: {rules: [{when: always}]}
default:
  image: i
  retry: 2
a:
  script: x
  rules: [{when: always}]
  image: {name: i, pull_policy: always}
  cache: {paths: [y], untracked: true, key: {files: [Gemfile.lock]}}
  needs: [{pipeline: other}]
b:
  script: x
  retry: 1
  artifacts: {paths: [z], expire_in: 1 week, reports: {junit: r.xml}}
c:
  script: x
  services: [{name: s, pull_policy: never}]
"#,
        );
        // rules, only, except and workflow are evaluated (src/localrun/rules.rs), not ignored
        assert_eq!(
            p.ignored,
            vec![
                "retry",
                "image:pull_policy",
                "cache:untracked",
                "needs:pipeline",
                "artifacts:expire_in",
                "artifacts:reports:junit",
                "services:pull_policy",
            ]
        );
        assert_eq!(p.jobs.len(), 3);
        // trigger jobs are jobs: a child pipeline to run, or another project's to refuse
        let p = parse_ok(
            "t: {trigger: other/project}\nc: {trigger: {include: ci/c.yml, strategy: depend}}\nj: {script: x}\n",
        );
        assert_eq!(p.jobs.len(), 3);
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
        assert_eq!(
            p.job("t").unwrap().trigger,
            Some(Trigger::Elsewhere(
                "it triggers a pipeline of project other/project".into()
            ))
        );
        assert_eq!(
            p.job("c").unwrap().trigger,
            Some(Trigger::Child {
                include: serde_json::json!(["ci/c.yml"]),
                depend: true
            })
        );
    }

    #[test]
    fn cache_keys_paths_policies_and_defaults() {
        let p = parse_ok(
            r#"
cache:
  paths: [global/]
default:
  cache: {key: from-default, paths: [.deps/]}
a:
  script: x
b:
  script: x
  cache:
    key: $CI_COMMIT_REF_SLUG
    paths: [vendor/, "*.o"]
    policy: pull
    when: always
c:
  script: x
  cache:
    - {key: one, paths: [a], policy: push}
    - {paths: [b]}
d:
  script: x
  cache: []
e:
  script: x
  cache: {key: 42, paths: [n], policy: pull-push, when: on_failure}
"#,
        );
        let a = &p.job("a").unwrap().cache;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].key, "from-default", "default: wins over the global");
        assert_eq!(a[0].paths, vec![".deps/"]);
        let b = &p.job("b").unwrap().cache[0];
        assert_eq!(b.key, "$CI_COMMIT_REF_SLUG", "expanded per job, later");
        assert_eq!(b.paths, vec!["vendor/", "*.o"]);
        assert_eq!(b.policy, CachePolicy::Pull);
        assert_eq!(b.when, CacheWhen::Always);
        let c = &p.job("c").unwrap().cache;
        assert_eq!((c[0].key.as_str(), c[0].policy), ("one", CachePolicy::Push));
        assert_eq!(c[1].key, DEFAULT_CACHE_KEY);
        assert_eq!(c[1].policy, CachePolicy::PullPush);
        assert!(p.job("d").unwrap().cache.is_empty());
        let e = &p.job("e").unwrap().cache[0];
        assert_eq!((e.key.as_str(), e.when), ("42", CacheWhen::OnFailure));
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);

        let e = parse_err("j: {script: x, cache: {paths: [a], policy: sometimes}}\n");
        assert!(
            e.contains(
                "job 'j': cache: policy: 'sometimes' is not supported; use pull, push or pull-push"
            ),
            "{e}"
        );
        let e = parse_err("j: {script: x, cache: [{paths: [a]}, {paths: a}]}\n");
        assert!(
            e.contains("job 'j': cache: entry 2: paths: must be a list"),
            "{e}"
        );
    }

    #[test]
    fn artifacts_paths_and_when() {
        let p = parse_ok(
            r#"
default:
  artifacts: {paths: [default-out/]}
a: {script: x}
b: {script: x, artifacts: {paths: [out/, "**/*.log"], when: always}}
c: {script: x, artifacts: {when: on_failure}}
"#,
        );
        assert_eq!(
            p.job("a").unwrap().artifacts,
            Some(Artifacts {
                paths: vec!["default-out/".into()],
                when: CacheWhen::OnSuccess,
                ..Artifacts::default()
            })
        );
        let b = p.job("b").unwrap().artifacts.clone().unwrap();
        assert_eq!(b.paths, vec!["out/", "**/*.log"]);
        assert_eq!(b.when, CacheWhen::Always);
        assert_eq!(
            p.job("c").unwrap().artifacts,
            None,
            "no paths, no artifacts"
        );
        let e = parse_err("j: {script: x, artifacts: {paths: [a], when: later}}\n");
        assert!(
            e.contains("job 'j': artifacts: when: 'later' is not supported"),
            "{e}"
        );
        let e = parse_err("j: {script: x, artifacts: [a]}\n");
        assert!(e.contains("job 'j': artifacts: must be a mapping"), "{e}");
    }

    #[test]
    fn artifacts_come_from_dependencies_needs_or_all_earlier_stages() {
        let p = parse_ok(
            r#"
stages: [build, test, deploy]
b1: {stage: build, script: x}
b2: {stage: build, script: x}
t-default: {stage: test, script: x}
t-deps: {stage: test, script: x, dependencies: [b2]}
t-none: {stage: test, script: x, dependencies: []}
t-needs: {stage: test, script: x, needs: [b1, {job: b2, artifacts: false}, {job: gone, optional: true}]}
t-same-stage: {stage: test, script: x, needs: [t-default]}
d: {stage: deploy, script: x}
"#,
        );
        let sources = |n: &str| p.artifact_sources(p.job(n).unwrap());
        assert_eq!(sources("b1"), Vec::<&str>::new());
        assert_eq!(sources("t-default"), vec!["b1", "b2"]);
        assert_eq!(sources("t-deps"), vec!["b2"]);
        assert_eq!(sources("t-none"), Vec::<&str>::new());
        assert_eq!(
            sources("t-needs"),
            vec!["b1"],
            "artifacts: false, optional dropped"
        );
        assert_eq!(sources("t-same-stage"), vec!["t-default"]);
        assert_eq!(
            sources("d"),
            vec![
                "b1",
                "b2",
                "t-default",
                "t-deps",
                "t-needs",
                "t-none",
                "t-same-stage"
            ]
        );

        let e = parse_err(
            "a: {stage: test, script: x, dependencies: [b]}\nb: {stage: deploy, script: x}\n",
        );
        assert!(
            e.contains("job 'a': dependencies: 'b' is in stage 'deploy', not in an earlier stage than 'test'"),
            "{e}"
        );
        // a dependency in the same stage is fine when it is also needed (it has finished)
        let p = parse_ok(
            "compile: {stage: build, script: x}\npackage: {stage: build, script: x, needs: [compile], dependencies: [compile]}\n",
        );
        assert_eq!(
            p.artifact_sources(p.job("package").unwrap()),
            vec!["compile"]
        );
        let e = parse_err(
            "compile: {stage: build, script: x}\npackage: {stage: build, script: x, dependencies: [compile]}\n",
        );
        assert!(e.contains("must also be in needs:"), "{e}");
        let e = parse_err(
            "a: {stage: build, script: x}\nb: {stage: build, script: x}\nc: {stage: test, script: x, needs: [a], dependencies: [b]}\n",
        );
        assert!(
            e.contains("job 'c': dependencies: 'b' should be part of needs:"),
            "{e}"
        );
        let e = parse_err("a: {script: x, needs: [nope]}\n");
        assert!(
            e.contains("job 'a': needs: 'nope' is not a job of this pipeline"),
            "{e}"
        );
        let e =
            parse_err("a: {stage: build, script: x, needs: [b]}\nb: {stage: test, script: x}\n");
        assert!(
            e.contains("job 'a': needs: 'b' is in the later stage 'test'"),
            "{e}"
        );
        let e = parse_err("a: {script: x, needs: [{job: 1}]}\n");
        assert!(e.contains("job 'a': needs: job: must be a job name"), "{e}");
    }

    #[test]
    fn extends_merges_templates_deeply_and_the_job_wins() {
        let p = parse_ok(
            r#"
.base:
  image: base-img
  variables: {A: base, B: base}
  script: [echo base]
  tags: [t1]
.more:
  extends: .base
  variables: {B: more, C: more}
  tags: [t2]
job:
  extends: [.more]
  variables: {C: job}
other:
  extends: [.base, .more]
  script: echo other
"#,
        );
        let j = p.job("job").unwrap();
        assert_eq!(j.image, Some(Image::new("base-img")));
        assert_eq!(var(j, "A"), Some("base"));
        assert_eq!(var(j, "B"), Some("more"));
        assert_eq!(var(j, "C"), Some("job"));
        assert_eq!(j.tags, vec!["t2"], "lists are replaced, not merged");
        assert_eq!(j.script, vec!["echo base"]);
        assert_eq!(p.job("other").unwrap().script, vec!["echo other"]);
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);

        let e = parse_err("j:\n  extends: .t\n");
        assert!(e.contains("job 'j': extends: '.t' is not defined"), "{e}");
        let e = parse_err(".a: {extends: .b}\n.b: {extends: .a}\nj: {extends: .a}\n");
        assert!(e.contains("extends: circular: "), "{e}");
        let e = parse_err("j:\n  extends: .t\n.t: {image: x}\n");
        assert!(
            e.contains("job 'j' has no `script:` (nor do the jobs it extends)"),
            "{e}"
        );
    }

    fn reader(files: &[(&str, &str)]) -> impl FnMut(&str) -> Result<(String, String), String> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        move |path: &str| {
            files
                .iter()
                .find(|(n, _)| n == path)
                .map(|(n, t)| (format!("proj/{n}"), t.clone()))
                .ok_or_else(|| "No such file or directory".to_string())
        }
    }

    #[test]
    fn parallel_jobs_become_gitlabs_instances_and_needs_follow_them() {
        let p = parse_ok(
            r#"
stages: [build, test]
build:
  stage: build
  script: [x]
  parallel:
    matrix:
      - PROVIDER: aws
        STACK: [monitoring, app]
      - PROVIDER: [gcp]
shard: {stage: build, script: [x], parallel: 3}
all: {stage: test, script: [x], needs: [build, shard]}
one:
  stage: test
  script: [x]
  needs: [{job: build, parallel: {matrix: [{PROVIDER: aws, STACK: app}]}}]
deps: {stage: test, script: [x], dependencies: [shard]}
"#,
        );
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "build: [aws, app]",
                "build: [aws, monitoring]",
                "build: [gcp]",
                "shard 1/3",
                "shard 2/3",
                "shard 3/3",
                "all",
                "deps",
                "one"
            ]
        );
        let b = p.job("build: [aws, app]").unwrap();
        assert_eq!(var(b, "PROVIDER"), Some("aws"));
        assert_eq!(var(b, "STACK"), Some("app"));
        assert_eq!(var(b, "CI_NODE_INDEX"), Some("2"));
        assert_eq!(var(b, "CI_NODE_TOTAL"), Some("3"));
        let s = p.job("shard 3/3").unwrap();
        assert_eq!(var(s, "CI_NODE_INDEX"), Some("3"));
        let needs = |j: &str| -> Vec<String> {
            p.job(j)
                .unwrap()
                .needs
                .as_ref()
                .unwrap()
                .iter()
                .map(|n| n.job.clone())
                .collect()
        };
        assert_eq!(needs("all").len(), 6);
        assert_eq!(needs("one"), ["build: [aws, app]"]);
        assert_eq!(
            p.job("deps").unwrap().dependencies.as_deref().unwrap(),
            ["shard 1/3", "shard 2/3", "shard 3/3"]
        );
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);

        for (yaml, says) in [
            ("j: {script: [x], parallel: 201}", "from 1 to 200"),
            ("j: {script: [x], parallel: {matrix: [{A: [1, 2]}, {B: {c: d}}]}}", "a value must be a string"),
            ("j: {script: [x], parallel: {matrix: [{A: [1, 2]}]}}\nk: {script: [x], needs: [{job: j, parallel: {matrix: [{A: 3}]}}]}", "'j: [3]' is not a job"),
            ("j: {script: []}", "script: can't be blank"),
        ] {
            let e = parse_err(yaml);
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }

    #[test]
    fn spec_inputs_of_the_main_file_and_of_an_include_are_interpolated_before_merging() {
        let scan = "spec:\n  inputs:\n    stage: {default: test}\n    env: {options: [staging, production]}\n    n: {type: number, default: 1}\n---\n\
                    \"scan-$[[ inputs.env ]]\":\n  stage: $[[ inputs.stage ]]\n  parallel: $[[ inputs.n ]]\n  script:\n    - ./scan $[[ inputs.env | posix_escape ]] on $[[ inputs.where | expand_vars ]]\n";
        let main = "spec:\n  inputs:\n    where: {default: $CI_PROJECT_PATH}\n---\n\
                    stages: [build, test, deploy]\ninclude:\n  - local: ci/scan.yml\n    inputs: {env: staging, n: 2, stage: deploy}\n";
        let mut read = reader(&[("ci/scan.yml", scan)]);
        let context = compose::Context::new(
            [(
                "where".to_string(),
                Value::String("$CI_PROJECT_PATH!".into()),
            )]
            .into_iter()
            .collect(),
            [("CI_PROJECT_PATH".to_string(), "g/p".to_string())].into(),
            None,
        );
        // `where` is the main file's input: the included file does not have it
        let e = parse_with(main, ".gitlab-ci.yml", &mut read, &context).unwrap_err();
        assert_eq!(
            e.to_string(),
            "proj/ci/scan.yml: unknown interpolation key: `where`"
        );
        let scan = scan.replace("$[[ inputs.where | expand_vars ]]", "here");
        let mut read = reader(&[("ci/scan.yml", &scan)]);
        let p = parse_with(main, ".gitlab-ci.yml", &mut read, &context).unwrap();
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["scan-staging 1/2", "scan-staging 2/2"]);
        let j = &p.jobs[0];
        assert_eq!(j.stage, "deploy");
        assert_eq!(j.script, ["./scan staging on here"]);

        // a required input that is not given, named with its file
        let mut read = reader(&[("ci/scan.yml", &scan)]);
        let e = parse_with(
            "include: [{local: ci/scan.yml}]\n",
            ".gitlab-ci.yml",
            &mut read,
            &compose::Context::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proj/ci/scan.yml: `env` input: required value has not been provided"
        );
        // inputs for the main file without a header
        let e = parse_with(
            "j: {script: x}\n",
            ".gitlab-ci.yml",
            &mut reader(&[]),
            &context,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Given inputs not defined"), "{e}");
        // the main file's expand_vars sees the predefined variables
        let p = parse_with(
            "spec:\n  inputs:\n    where: {default: x}\n---\nj: {script: [\"echo $[[ inputs.where | expand_vars ]]\"]}\n",
            ".gitlab-ci.yml",
            &mut reader(&[]),
            &context,
        )
        .unwrap();
        assert_eq!(p.jobs[0].script, ["echo g/p!"]);
    }

    #[test]
    fn include_wildcards_variables_and_rules_pick_files_as_gitlab_does() {
        let files = [
            ("ci/a.yml", "a: {script: x}\n"),
            ("ci/b.yml", "b: {script: x}\n"),
            ("ci/sub/c.yml", "c: {script: x}\n"),
            ("ci/sub/deep/d.yml", "d: {script: x}\n"),
            ("main.yml", "m: {script: x}\n"),
        ];
        let names = |text: &str, vars: &[(&str, &str)]| -> Vec<String> {
            let context = compose::Context::new(
                Map::new(),
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                None,
            )
            .with_files(files.iter().map(|(n, _)| n.to_string()).collect());
            let p = parse_with(text, ".gitlab-ci.yml", &mut reader(&files), &context)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            p.jobs.iter().map(|j| j.name.clone()).collect()
        };
        assert_eq!(names("include: 'ci/*.yml'\n", &[]), ["a", "b"]);
        assert_eq!(names("include: '/ci/**.yml'\n", &[]), ["a", "b", "c", "d"]);
        assert_eq!(names("include: 'ci/**/*.yml'\n", &[]), ["c", "d"]);
        assert_eq!(
            names("include: 'ci/$WHICH.yml'\n", &[("WHICH", "b")]),
            ["b"]
        );
        let ruled = "include:\n  - local: ci/a.yml\n    rules:\n      - if: $ON == \"yes\"\n  \
                     - local: ci/b.yml\n    rules:\n      - exists: [main.yml]\n  \
                     - local: ci/sub/c.yml\n    rules:\n      - exists: [nope.yml]\n  \
                     - local: main.yml\n    rules:\n      - if: $ON\n        when: never\n      - when: always\n";
        assert_eq!(names(ruled, &[("ON", "yes")]), ["a", "b"]);
        assert_eq!(names(ruled, &[]), ["b", "m"]);
        let e = parse_with(
            "include:\n  - local: ci/a.yml\n    rules: [{when: manual}]\n",
            ".gitlab-ci.yml",
            &mut reader(&files),
            &compose::Context::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("when: manual is not allowed in include rules"),
            "{e}"
        );
    }

    #[test]
    fn image_and_service_docker_options_are_read() {
        let p = parse_ok(
            "j:\n  script: x\n  image: {name: img, docker: {platform: arm64/v8, user: dave}}\n  services:\n    - {name: db, docker: {user: '999'}}\n",
        );
        let j = p.job("j").unwrap();
        let d = &j.image.as_ref().unwrap().docker;
        assert_eq!(
            (d.platform.as_deref(), d.user.as_deref()),
            (Some("arm64/v8"), Some("dave"))
        );
        assert_eq!(j.services[0].docker.user.as_deref(), Some("999"));
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
        let e = parse_err("j: {script: x, image: {name: i, docker: {gpus: all}}}\n");
        assert!(e.contains("'gpus' is not a docker: key"), "{e}");
    }

    #[test]
    fn inherit_narrows_what_default_and_the_global_variables_give_a_job() {
        let p = parse_ok(
            r#"
variables: {A: a, B: b}
default:
  image: def-img
  before_script: [echo before]
  tags: [t]
all: {script: x}
none:
  script: x
  inherit: {default: false, variables: false}
some:
  script: x
  inherit: {default: [image], variables: [B]}
"#,
        );
        let keys =
            |j: &JobSpec| -> Vec<String> { j.variables.iter().map(|v| v.key.clone()).collect() };
        let all = p.job("all").unwrap();
        assert_eq!(all.image, Some(Image::new("def-img")));
        assert_eq!(all.before_script, ["echo before"]);
        assert_eq!(keys(all), ["A", "B"]);
        let none = p.job("none").unwrap();
        assert_eq!((none.image.clone(), none.tags.len()), (None, 0));
        assert!(none.before_script.is_empty());
        assert!(keys(none).is_empty());
        let some = p.job("some").unwrap();
        assert_eq!(some.image, Some(Image::new("def-img")));
        assert!(some.before_script.is_empty() && some.tags.is_empty());
        assert_eq!(keys(some), ["B"]);
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
        let e = parse_err("j: {script: x, inherit: {default: maybe}}\n");
        assert!(
            e.contains("job 'j': inherit: default: must be true, false or a list"),
            "{e}"
        );
    }

    #[test]
    fn includes_pogo_exec_cannot_read_are_refused_saying_how_to_vendor_them() {
        for (include, says) in [
            (
                "https://example.com/other.yml",
                "'https://example.com/other.yml' is a remote include",
            ),
            (
                "{remote: 'https://example.com/ci.yml'}",
                "remote: {\"remote\":\"https://example.com/ci.yml\"} cannot be included locally",
            ),
            (
                "{template: Auto-DevOps.gitlab-ci.yml}",
                "template: {\"template\":\"Auto-DevOps.gitlab-ci.yml\"} cannot be included locally",
            ),
            ("{project: group/p, file: ci.yml}", "project: "),
            ("{component: 'gitlab.com/c/x@1.0'}", "component: "),
            (
                "{local: a.yml, when: manual}",
                "'when' is not an include: key",
            ),
        ] {
            let e = parse_err(&format!("include: [{include}]\nj: {{script: x}}\n"));
            assert!(e.contains(says), "{include}: {e}");
            if !says.ends_with("include: key") {
                assert!(e.contains("local: ci/FILE.yml"), "{include}: {e}");
            }
        }
    }

    #[test]
    fn include_local_merges_files_and_the_including_file_wins() {
        let mut read = reader(&[
            (
                "ci/templates.yml",
                ".tpl: {image: tpl-img, script: [echo tpl]}\nvariables: {A: inc, B: inc}\n",
            ),
            (
                "ci/jobs.yaml",
                "include: ci/templates.yml\nlint: {extends: .tpl, stage: test}\n",
            ),
        ]);
        let p = parse_with(
            "include:\n  - local: /ci/jobs.yaml\nvariables: {B: main}\nbuild: {extends: .tpl, stage: build}\n",
            "proj/.gitlab-ci.yml",
            &mut read,
            &compose::Context::default(),
        )
        .unwrap();
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, vec!["build", "lint"]);
        let b = p.job("build").unwrap();
        assert_eq!(b.image, Some(Image::new("tpl-img")));
        assert_eq!(var(b, "A"), Some("inc"));
        assert_eq!(var(b, "B"), Some("main"));
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);

        let err = |text: &str, read: &mut ReadInclude<'_>| {
            parse_with(
                text,
                "proj/.gitlab-ci.yml",
                read,
                &compose::Context::default(),
            )
            .unwrap_err()
            .to_string()
        };
        let e = err("include: missing.yml\n", &mut reader(&[]));
        assert_eq!(
            e,
            "proj/.gitlab-ci.yml: include: 'missing.yml': No such file or directory"
        );
        let e = err("include: ../up.yml\n", &mut reader(&[]));
        assert!(e.contains("leaves the project directory"), "{e}");
        let e = err("include: 'ci/*.yml'\n", &mut reader(&[]));
        assert!(
            e.contains("'ci/*.yml' matches no file of the project"),
            "{e}"
        );
        let e = err("include: ci/x.txt\n", &mut reader(&[]));
        assert!(e.contains("YAML extension"), "{e}");
        let e = err(
            "include: a.yml\n",
            &mut reader(&[("a.yml", "include: b.yml\n"), ("b.yml", "include: a.yml\n")]),
        );
        assert!(
            e.contains("'a.yml' includes itself (through a.yml -> b.yml)"),
            "{e}"
        );
        // A syntax error in an included file names that file, line and column.
        let e = err(
            "include: ci/bad.yml\nj: {script: x}\n",
            &mut reader(&[("ci/bad.yml", "a:\n  script: [x\n")]),
        );
        assert!(e.starts_with("proj/ci/bad.yml:"), "{e}");
        let pos: Vec<&str> = e["proj/ci/bad.yml:".len()..].splitn(3, ':').collect();
        assert!(
            pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(),
            "{e}"
        );
        // Without a project directory (plain `parse`), an include cannot be read.
        let e = parse_err("include: a.yml\n");
        assert!(e.contains("no project directory"), "{e}");
    }

    #[test]
    fn reference_tags_take_values_from_included_and_extended_jobs() {
        let mut read = reader(&[(
            "ci/common.yml",
            ".setup:\n  script: [echo setup-1, echo setup-2]\n  variables: {A: from-setup}\n",
        )]);
        let p = parse_with(
            r#"
include: ci/common.yml
.base: {extends: .setup, image: base-img}
job:
  image: !reference [.base, image]
  variables: !reference [.setup, variables]
  script:
    - echo first
    - !reference [.base, script]
    - echo last
"#,
            ".gitlab-ci.yml",
            &mut read,
            &compose::Context::default(),
        )
        .unwrap();
        let j = p.job("job").unwrap();
        assert_eq!(
            j.script,
            ["echo first", "echo setup-1", "echo setup-2", "echo last"]
        );
        assert_eq!(j.image, Some(Image::new("base-img")));
        assert_eq!(var(j, "A"), Some("from-setup"));
        let p = parse_ok(
            ".r: {rules: [{if: $A, when: never}, {if: $B}]}\nj:\n  script: [x]\n  rules:\n    - !reference [.r, rules]\n    - when: manual\n",
        );
        assert_eq!(p.job("j").unwrap().rules.as_ref().map(Vec::len), Some(3));
        let e = parse_err("j:\n  script: !reference [.missing, script]\n");
        assert_eq!(
            e,
            ".gitlab-ci.yml: !reference [\".missing\", \"script\"] could not be found"
        );
    }

    #[test]
    fn when_and_allow_failure() {
        let p = parse_ok(
            r#"
m: {script: x, when: manual}
n: {script: x, when: manual, allow_failure: false}
a: {script: x, when: always, allow_failure: true}
f: {script: x, when: on_failure, allow_failure: false}
c: {script: x, allow_failure: {exit_codes: [3, 4]}}
s: {script: x, allow_failure: {exit_codes: 5}}
"#,
        );
        assert_eq!(p.job("m").unwrap().when, When::Manual);
        assert_eq!(
            p.job("m").unwrap().allow_failure,
            AllowFailure::Yes,
            "a manual job may fail by default, as on GitLab"
        );
        assert_eq!(p.job("n").unwrap().allow_failure, AllowFailure::No);
        assert_eq!(p.job("a").unwrap().when, When::Always);
        assert_eq!(p.job("a").unwrap().allow_failure, AllowFailure::Yes);
        assert_eq!(p.job("f").unwrap().when, When::OnFailure);
        assert_eq!(p.job("f").unwrap().allow_failure, AllowFailure::No);
        assert_eq!(
            p.job("c").unwrap().allow_failure,
            AllowFailure::ExitCodes(vec![3, 4])
        );
        assert_eq!(
            p.job("s").unwrap().allow_failure,
            AllowFailure::ExitCodes(vec![5])
        );
        let e = parse_err("j: {script: x, when: sometimes}\n");
        assert!(e.contains("when: 'sometimes' is not supported"), "{e}");
        let e = parse_err("j: {script: x, allow_failure: maybe}\n");
        assert!(e.contains("allow_failure: must be true, false"), "{e}");
    }

    #[test]
    fn anchors_and_merge_keys() {
        let p = parse_ok(
            r#"
.cmds:
  - &cmd echo first
.base: &base
  image: anchored
  variables: {A: "1"}
  script: [echo base]
.more: &more
  tags: [m]
  image: not-this-one
j:
  <<: [*base, *more]
  variables: {B: "2"}
k:
  <<: *base
  script:
    - *cmd
    - echo k
"#,
        );
        let j = p.job("j").unwrap();
        assert_eq!(j.image, Some(Image::new("anchored")));
        assert_eq!(j.tags, vec!["m"]);
        assert_eq!(j.script, vec!["echo base"]);
        assert_eq!(var(j, "B"), Some("2"));
        assert_eq!(
            var(j, "A"),
            None,
            "the job's own variables replace the merged ones"
        );
        let k = p.job("k").unwrap();
        assert_eq!(k.script, vec!["echo first", "echo k"]);
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    }

    #[test]
    fn syntax_error_has_file_line_column() {
        let e = parse("a:\n  script: [x\nb: {script: y}\n", "ci/.gitlab-ci.yml").unwrap_err();
        let ParseError::Syntax { at, message } = &e else {
            panic!("{e:?}")
        };
        assert!(at.starts_with("ci/.gitlab-ci.yml:"), "{at}");
        let parts: Vec<&str> = at.split(':').collect();
        assert_eq!(parts.len(), 3, "{at}");
        assert!(parts[1].parse::<usize>().unwrap() >= 2, "{at}");
        assert!(parts[2].parse::<usize>().is_ok(), "{at}");
        assert!(!message.contains(" at line "), "{message}");
        assert!(e.to_string().starts_with(&format!("{at}: ")));
    }

    #[test]
    fn invalid_shapes_say_what_to_fix() {
        assert!(parse_err("").contains("empty"));
        assert!(parse_err("- a\n").contains("must be a mapping"));
        assert!(parse_err("j: 3\n").contains("'j' is neither a keyword nor a job"));
        let e = parse_err("j:\n  script:\n    - echo a: b\n");
        assert!(e.contains("quote commands that contain ': '"), "{e}");
        let e = parse_err("j: {script: [1]}\n");
        assert!(e.contains("job 'j': script:"), "{e}");
        let e = parse_err("variables: {\"A-B\": 1}\nj: {script: x}\n");
        assert!(e.contains("'A-B' is not a valid variable name"), "{e}");
        let e = parse_err("j: {script: x, tags: fixtures}\n");
        assert!(
            e.contains("job 'j': tags: must be a list of strings"),
            "{e}"
        );
    }
}
