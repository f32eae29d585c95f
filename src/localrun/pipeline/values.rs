//! Values of the file as GitLab reads them: the kind of a value (for messages), scalars,
//! lists of strings, scripts, `variables:`, `allow_failure:` and the `when:` of uploads.

use serde_json::{Map, Value};

use super::AllowFailure;
use crate::driver::{ArtifactsWhen, CacheWhen, Variable};

/// How deep GitLab lets script lists nest.
const MAX_SCRIPT_DEPTH: usize = 10;

/// The JSON type of a value, for messages.
pub(super) fn kind(v: &Value) -> &'static str {
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
pub(super) fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// A scalar as GitLab turns it into a variable value.
pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

pub use crate::names::valid_variable_name;

/// `variables:`: `KEY: value` or `KEY: {value, description, expand, options}`.
pub(super) fn variables(v: &Value) -> Result<Vec<Variable>, String> {
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

/// A script: a string, or a list of strings and lists nested up to ten levels.
pub(super) fn script(v: &Value) -> Result<Vec<String>, String> {
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

/// A string or a list of strings (`artifacts:exclude`, `reports:dotenv`).
pub(super) fn one_or_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        other => string_list(other),
    }
}

/// A list of strings (`stages`, `tags`, `entrypoint`, `command`).
pub(super) fn string_list(v: &Value) -> Result<Vec<String>, String> {
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
pub(super) fn upload_when(v: Option<&Value>) -> Result<ArtifactsWhen, String> {
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

pub(super) fn allow_failure(v: &Value) -> Result<AllowFailure, String> {
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
