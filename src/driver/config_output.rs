//! config_exec's JSON output (`api.ConfigExecOutput`), read like Go's `json.Unmarshal`.

use serde_json::Value;

/// The fields of config_exec's JSON output (`api.ConfigExecOutput`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ConfigOutput {
    pub(super) builds_dir: Option<String>,
    pub(super) cache_dir: Option<String>,
    pub(super) builds_dir_is_shared: Option<bool>,
    pub(super) hostname: Option<String>,
    pub(super) driver_name: Option<String>,
    pub(super) driver_version: Option<String>,
    pub(super) job_env: Vec<(String, String)>,
    pub(super) shell: Option<String>,
}

impl ConfigOutput {
    /// Typed like Go's `json.Unmarshal` into pointer fields: `null` means
    /// unset, unknown keys are ignored, wrong types are errors.
    pub(super) fn from_value(v: &Value) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("cannot unmarshal {} into ConfigExecOutput", kind(v)))?;
        let string = |key: &str, val: Option<&Value>| -> Result<Option<String>, String> {
            match val {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "cannot unmarshal {} into field {key} of type string",
                    kind(other)
                )),
            }
        };
        let mut out = ConfigOutput {
            builds_dir: string("builds_dir", obj.get("builds_dir"))?,
            cache_dir: string("cache_dir", obj.get("cache_dir"))?,
            hostname: string("hostname", obj.get("hostname"))?,
            shell: string("shell", obj.get("shell"))?,
            ..ConfigOutput::default()
        };
        out.builds_dir_is_shared = match obj.get("builds_dir_is_shared") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(format!(
                    "cannot unmarshal {} into field builds_dir_is_shared of type bool",
                    kind(other)
                ))
            }
        };
        match obj.get("driver") {
            None | Some(Value::Null) => {}
            Some(Value::Object(d)) => {
                out.driver_name = string("driver.name", d.get("name"))?;
                out.driver_version = string("driver.version", d.get("version"))?;
            }
            Some(other) => {
                return Err(format!(
                    "cannot unmarshal {} into field driver",
                    kind(other)
                ))
            }
        }
        match obj.get("job_env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, val) in m {
                    match val {
                        Value::String(s) => out.job_env.push((k.clone(), s.clone())),
                        other => {
                            return Err(format!(
                                "cannot unmarshal {} into field job_env of type string",
                                kind(other)
                            ))
                        }
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "cannot unmarshal {} into field job_env",
                    kind(other)
                ))
            }
        }
        Ok(out)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn config_output_parsing() {
        let v = json!({
            "builds_dir": "/b", "cache_dir": null, "unknown": 1,
            "driver": {"name": "pogo", "version": "0.1.0"},
            "job_env": {"A": "1"}, "builds_dir_is_shared": false
        });
        let c = ConfigOutput::from_value(&v).unwrap();
        assert_eq!(c.builds_dir.as_deref(), Some("/b"));
        assert_eq!(c.cache_dir, None);
        assert_eq!(c.driver_name.as_deref(), Some("pogo"));
        assert_eq!(c.job_env, vec![("A".to_string(), "1".to_string())]);
        assert!(ConfigOutput::from_value(&json!({"builds_dir": 1})).is_err());
        assert!(ConfigOutput::from_value(&json!({"job_env": {"A": 1}})).is_err());
        assert!(ConfigOutput::from_value(&json!([1])).is_err());
    }
}
