//! Reading `.gitlab-ci.yml` for `pogo exec`: the subset of GitLab's CI syntax that can run
//! locally without a GitLab server. Every key outside that subset is collected in
//! [`Pipeline::ignored`] so the caller can say so — nothing is dropped silently.

mod artifacts;
mod cache;
mod image;
mod job;
mod needs;
mod parallel;
mod parser;
mod values;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::compose::{self, ReadInclude};
use crate::driver::{Artifacts, Cache, Image, Service, Variable};

pub use parallel::Instance;
pub use values::valid_variable_name;

use job::{trigger, Inherit, JOB_KEYS};
use parallel::instances;
use parser::{Defaults, Parser, GLOBAL_KEYS, IGNORED_TOP_LEVEL};
use values::{allow_failure, get, kind, script, string_list, variables};

/// GitLab's stages when `stages:` is not given.
pub const DEFAULT_STAGES: &[&str] = &["build", "test", "deploy"];
/// The stage of a job without `stage:`.
pub const DEFAULT_STAGE: &str = "test";
/// GitLab's cache key when `cache:key` is not given.
pub const DEFAULT_CACHE_KEY: &str = "default";

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

impl Parser {
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
}

#[cfg(test)]
mod tests;
