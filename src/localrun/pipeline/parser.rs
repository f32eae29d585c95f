//! The parser's state and the top level of the file: the stages, `default:` (and the
//! deprecated top-level globals) and `rules:`/`only:`/`except:` as the parser reads them.

use serde_json::{Map, Value};

use super::values::{allow_failure, get, kind, script, string_list, variables};
use super::{KeyFiles, DEFAULT_STAGES};
use crate::driver::{Artifacts, Cache, Image, Service, Variable};
use crate::localrun::rules;

/// Top-level keys that are not jobs and that `pogo exec` does not implement.
pub(super) const IGNORED_TOP_LEVEL: &[&str] = &["types", "spec"];
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
pub(super) const GLOBAL_KEYS: &[&str] = &[
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
];

#[derive(Default)]
pub(super) struct Parser {
    pub(super) ignored: Vec<String>,
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
    pub(super) fn ignore(&mut self, key: impl Into<String>) {
        let key = key.into();
        if !self.ignored.contains(&key) {
            self.ignored.push(key);
        }
    }

    /// `rules:` of a job or of `workflow:`.
    pub(super) fn rules(&mut self, v: &Value) -> Result<Vec<rules::Rule>, String> {
        let mut unsupported = Vec::new();
        let rules = rules::parse_rules(v, &allow_failure, &variables, &mut |k| {
            unsupported.push(k.to_string())
        })?;
        for k in unsupported {
            self.ignore(&k);
        }
        Ok(rules)
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
