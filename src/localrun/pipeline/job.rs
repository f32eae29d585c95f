//! One job's keywords, with what `default:` and the global variables give it as far as its
//! `inherit:` lets them: its script or `trigger:`, stage, variables, `when:`, and the rest
//! read by the other files of the parser.

use serde_json::{Map, Value};

use super::needs::job_dependencies;
use super::parser::{Defaults, Parser};
use super::values::{allow_failure, get, kind, scalar, script, string_list, variables};
use super::{AllowFailure, JobSpec, Trigger, When, DEFAULT_STAGE};
use crate::driver::Variable;
use crate::localrun::rules::{Refs, Rule};

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

impl Parser {
    /// The job `name` (its mapping `m`), with the global variables and what `default:` (`d`)
    /// gives it, as far as its `inherit:` lets them; `stages` are the pipeline's.
    pub(super) fn job(
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
        let ctx = |key: &str| in_job(name, key);
        let trigger = match get(m, "trigger") {
            Some(t) => Some(trigger(t).map_err(ctx("trigger"))?),
            None => None,
        };
        let script_lines = job_script(name, m, trigger.is_some())?;
        let stage = job_stage(name, m, stages)?;
        // `inherit:` narrows what `default:` and the global variables give this job
        let (inherit_default, inherit_variables) = inherit(name, m)?;
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
        let (vars, own_variable_keys) = job_variables(name, m, globals, d, &inherit_variables)?;
        let (when, delayed) = self.job_when(name, m)?;
        let allow_failure = job_allow_failure(name, m, when)?;
        let (rules, only, except) = self.job_rules(name, m)?;
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
        let dependencies = job_dependencies(name, m)?;
        let needs = self.job_needs(name, m)?;
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

    /// `when:` of the job `name`, and whether it is `delayed` (which runs at once locally).
    fn job_when(&mut self, name: &str, m: &Map<String, Value>) -> Result<(When, bool), String> {
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
        Ok((when, delayed))
    }

    /// `rules:`, `only:` and `except:` of the job `name` (`None`: not given); `rules:` goes
    /// with neither of the others.
    fn job_rules(&mut self, name: &str, m: &Map<String, Value>) -> Result<JobRules, String> {
        let ctx = |key: &str| in_job(name, key);
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
        Ok((rules, only, except))
    }
}

/// A job's `rules:`, `only:` and `except:`.
type JobRules = (Option<Vec<Rule>>, Option<Refs>, Option<Refs>);

/// The message about `key` of the job `name` made of the message about its value.
pub(super) fn in_job(name: &str, key: &str) -> impl Fn(String) -> String {
    let name = name.to_string();
    let key = key.to_string();
    move |e: String| format!("job '{name}': {key}: {e}")
}

/// `script:` of the job `name`: required and not blank, unless the job is a trigger job
/// (`triggers`).
fn job_script(name: &str, m: &Map<String, Value>, triggers: bool) -> Result<Vec<String>, String> {
    let script_lines = match (get(m, "script"), triggers) {
        (Some(v), _) => script(v).map_err(in_job(name, "script"))?,
        // a trigger job runs no script of its own
        (None, true) => Vec::new(),
        (None, false) => {
            let hint = if m.contains_key("extends") {
                " (nor do the jobs it extends)"
            } else {
                ""
            };
            return Err(format!("job '{name}' has no `script:`{hint}; add one"));
        }
    };
    if script_lines.is_empty() && !triggers {
        return Err(format!(
            "job '{name}': script: can't be blank (GitLab rejects an empty script too); \
             give it a command"
        ));
    }
    Ok(script_lines)
}

/// `stage:` of the job `name`: one of `stages`.
fn job_stage(name: &str, m: &Map<String, Value>, stages: &[String]) -> Result<String, String> {
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
    Ok(stage)
}

/// `inherit:` of the job `name`: what it takes of `default:`, and of the global variables.
fn inherit(name: &str, m: &Map<String, Value>) -> Result<(Inherit, Inherit), String> {
    match get(m, "inherit") {
        None => Ok((Inherit::All, Inherit::All)),
        Some(Value::Object(i)) => {
            if let Some(k) = i.keys().find(|k| *k != "default" && *k != "variables") {
                return Err(format!(
                    "job '{name}': inherit: '{k}' is not an inherit: key (default, variables)"
                ));
            }
            Ok((
                Inherit::parse(get(i, "default")).map_err(in_job(name, "inherit: default"))?,
                Inherit::parse(get(i, "variables")).map_err(in_job(name, "inherit: variables"))?,
            ))
        }
        Some(other) => Err(format!(
            "job '{name}': inherit: must be a mapping with default and variables, found {}",
            kind(other)
        )),
    }
}

/// The variables of the job `name`: the global ones and `default:`'s, as far as its
/// `inherit: variables` lets them, then its own; and the keys of its own.
fn job_variables(
    name: &str,
    m: &Map<String, Value>,
    globals: &[Variable],
    d: &Defaults,
    inherit_variables: &Inherit,
) -> Result<(Vec<Variable>, Vec<String>), String> {
    let mut vars: Vec<Variable> = globals
        .iter()
        .chain(&d.variables)
        .filter(|v| inherit_variables.allows(&v.key))
        .cloned()
        .collect();
    let mut own_variable_keys = Vec::new();
    if let Some(v) = get(m, "variables") {
        let own = variables(v).map_err(in_job(name, "variables"))?;
        own_variable_keys = own.iter().map(|v| v.key.clone()).collect();
        vars.extend(own);
    }
    Ok((vars, own_variable_keys))
}

/// `allow_failure:` of the job `name`, which runs `when`.
fn job_allow_failure(
    name: &str,
    m: &Map<String, Value>,
    when: When,
) -> Result<AllowFailure, String> {
    Ok(match get(m, "allow_failure") {
        // GitLab: a manual job may fail unless it says otherwise
        None if when == When::Manual => AllowFailure::Yes,
        None => AllowFailure::No,
        Some(v) => allow_failure(v).map_err(in_job(name, "allow_failure"))?,
    })
}

/// `trigger:` as GitLab reads it: a project path (or `project:`) is another project's
/// pipeline; `include:` a child pipeline of files of this project, or of a file an earlier
/// job made (`artifact:` + `job:`, a dynamic child pipeline).
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
    for e in entries
        .iter()
        .filter(|e| e.get("artifact").is_some() || e.get("job").is_some())
    {
        artifact_include(e)?;
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

/// An include entry `{artifact: PATH, job: NAME}` of a dynamic child pipeline: the file's
/// path in the artifacts and the job that made them, or GitLab's reason to refuse it.
pub fn artifact_include(entry: &Value) -> Result<(String, String), String> {
    let field = |key: &str| entry.get(key).and_then(scalar).filter(|s| !s.is_empty());
    let Some(path) = field("artifact") else {
        return Err("include: artifact: must be the path of a file in a job's artifacts".into());
    };
    let Some(job) = field("job") else {
        return Err(format!(
            "include: artifact: {path}: include config must specify the job where to fetch \
             the artifact from (job:)"
        ));
    };
    if let Some(key) = entry.as_object().and_then(|m| {
        m.keys()
            .find(|k| !["artifact", "job", "inputs"].contains(&k.as_str()))
    }) {
        return Err(format!(
            "include: artifact: {path}: '{key}' is not a key of an artifact include \
             (artifact, job, inputs)"
        ));
    }
    if entry
        .get("inputs")
        .is_some_and(|i| !i.is_object() && !i.is_null())
    {
        return Err(format!(
            "include: artifact: {path}: inputs: must be a mapping"
        ));
    }
    Ok((path, job))
}
