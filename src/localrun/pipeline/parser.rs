//! The top level of the file and the parser's state: the stages, the global variables,
//! `default:` (and the deprecated top-level globals), `workflow:`, the jobs in order, and
//! `rules:`/`only:`/`except:` as the parser reads them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::needs::{drop_missing_optional_needs, needs_of_instances};
use super::parallel::job_instances;
use super::values::{allow_failure, get, kind, script, string_list, variables};
use super::{JobSpec, KeyFiles, Pipeline, DEFAULT_STAGES};
use crate::driver::{Artifacts, Cache, Image, Service, Variable};
use crate::localrun::rules;

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

#[derive(Default)]
pub(super) struct Parser {
    ignored: Vec<String>,
}

/// The jobs of the file as read, before they are put in order.
#[derive(Default)]
struct Jobs {
    /// In the file's order, a `parallel:` job's instances in its place.
    jobs: Vec<JobSpec>,
    /// Hidden jobs (templates whose name starts with `.`).
    hidden: Vec<String>,
    /// Each `parallel:` job's instances, by the name written.
    parallel: BTreeMap<String, Vec<String>>,
}

/// What `default:` (and the deprecated top-level globals) give every job.
#[derive(Default)]
pub(super) struct Defaults {
    pub(super) image: Option<Image>,
    pub(super) services: Option<Vec<Service>>,
    pub(super) before_script: Option<Vec<String>>,
    pub(super) after_script: Option<Vec<String>>,
    pub(super) tags: Option<Vec<String>>,
    pub(super) variables: Vec<Variable>,
    pub(super) cache: Option<Vec<(Cache, Option<KeyFiles>)>>,
    pub(super) artifacts: Option<Option<Artifacts>>,
}

impl Parser {
    /// The whole file: its stages, global variables, `default:`, `workflow:` and jobs (in
    /// stage order, by name within a stage).
    pub(super) fn pipeline(&mut self, root: &Value) -> Result<Pipeline, String> {
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
        let workflow = self.workflow(top)?;

        let Jobs {
            mut jobs,
            hidden,
            parallel,
        } = self.jobs(top, &globals, &defaults, &stages)?;
        needs_of_instances(&mut jobs, &parallel);
        // stage order, by name within a stage (the file's order is not GitLab's either)
        jobs.sort_by(|a, b| {
            let at = |j: &JobSpec| stages.iter().position(|s| *s == j.stage);
            at(a).cmp(&at(b)).then_with(|| a.name.cmp(&b.name))
        });
        drop_missing_optional_needs(&mut jobs);
        Ok(Pipeline {
            stages,
            jobs,
            hidden,
            ignored: std::mem::take(&mut self.ignored),
            workflow,
            variables: globals,
        })
    }

    /// `workflow:`: its `rules:` (`None`: not given).
    fn workflow(&mut self, top: &Map<String, Value>) -> Result<Option<Vec<rules::Rule>>, String> {
        match get(top, "workflow") {
            None => Ok(None),
            Some(Value::Object(w)) => {
                let mut rules = None;
                for (key, v) in w {
                    match key.as_str() {
                        "rules" => {
                            let parsed =
                                self.rules(v).map_err(|e| format!("workflow: rules: {e}"))?;
                            if parsed.iter().any(|r| r.needs.is_some()) {
                                return Err("workflow: rules: needs is a job's rules: key".into());
                            }
                            rules = Some(parsed)
                        }
                        // the pipeline's title in GitLab's UI: nothing to run
                        "name" => {}
                        "auto_cancel" => self.ignore("workflow: auto_cancel"),
                        other => return Err(format!("workflow: '{other}' is not a workflow key")),
                    }
                }
                Ok(rules)
            }
            Some(other) => Err(format!(
                "workflow: must be a mapping, found {}",
                kind(other)
            )),
        }
    }

    /// The jobs of the file in its order (a `parallel:` job's instances in its place), and
    /// the names of the hidden ones.
    fn jobs(
        &mut self,
        top: &Map<String, Value>,
        globals: &[Variable],
        defaults: &Defaults,
        stages: &[String],
    ) -> Result<Jobs, String> {
        let mut out = Jobs::default();
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
                out.hidden.push(name.clone());
                continue;
            }
            let Value::Object(job) = value else {
                return Err(format!(
                    "'{name}' is neither a keyword nor a job: a job is a mapping with `script:`, found {}",
                    kind(value)
                ));
            };
            let Some(spec) = self.job(name, job, globals, defaults, stages)? else {
                continue;
            };
            match get(job, "parallel") {
                None => out.jobs.push(spec),
                Some(v) => {
                    let instances = job_instances(name, &spec, v)?;
                    let names = instances.iter().map(|j| j.name.clone()).collect();
                    out.jobs.extend(instances);
                    out.parallel.insert(name.clone(), names);
                }
            }
        }
        Ok(out)
    }

    pub(super) fn ignore(&mut self, key: impl Into<String>) {
        let key = key.into();
        if !self.ignored.contains(&key) {
            self.ignored.push(key);
        }
    }

    /// `rules:` of a job or of `workflow:`.
    pub(super) fn rules(&mut self, v: &Value) -> Result<Vec<rules::Rule>, String> {
        rules::parse_rules(
            v,
            &mut rules::RuleKeys {
                allow_failure: &allow_failure,
                variables: &variables,
                needs: &mut |v| self.needs(v),
            },
        )
    }

    /// `only:` or `except:`.
    pub(super) fn refs(&mut self, v: &Value) -> Result<rules::Refs, String> {
        let mut unsupported = Vec::new();
        let refs = rules::parse_refs(v, &mut |k| unsupported.push(k.to_string()))?;
        for k in unsupported {
            self.ignore(&k);
        }
        Ok(refs)
    }

    pub(super) fn stages(&mut self, top: &Map<String, Value>) -> Result<Vec<String>, String> {
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

    pub(super) fn defaults(&mut self, top: &Map<String, Value>) -> Result<Defaults, String> {
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
}
