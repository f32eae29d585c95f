//! One job's keywords: what `inherit:` lets it take from `default:` and the global
//! variables, and `trigger:`.

use serde_json::Value;

use super::values::{get, kind, scalar, string_list};
use super::Trigger;

/// Keys of a job that are implemented.
pub(super) const JOB_KEYS: &[&str] = &[
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
pub(super) enum Inherit {
    All,
    Only(Vec<String>),
}

impl Inherit {
    pub(super) fn parse(v: Option<&Value>) -> Result<Self, String> {
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

    pub(super) fn allows(&self, name: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// `trigger:` as GitLab reads it: a project path (or `project:`) is another project's
/// pipeline; `include:` a child pipeline of files of this project.
pub(super) fn trigger(v: &Value) -> Result<Trigger, String> {
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
