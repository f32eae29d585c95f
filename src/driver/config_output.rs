//! config_exec's JSON output (`api.ConfigExecOutput`), read like Go's `json.Unmarshal`, and
//! what it changes for the job.

use serde_json::Value;

use super::run::Exec;

/// The fields of config_exec's JSON output (`api.ConfigExecOutput`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ConfigOutput {
    builds_dir: Option<String>,
    cache_dir: Option<String>,
    builds_dir_is_shared: Option<bool>,
    hostname: Option<String>,
    driver_name: Option<String>,
    driver_version: Option<String>,
    job_env: Vec<(String, String)>,
    shell: Option<String>,
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

    /// Sets on `exec` what config_exec set; the " with driver NAME VERSION" the "Using Custom
    /// executor" line gets (empty without a driver name).
    pub(super) fn apply(self, exec: &mut Exec) -> String {
        if let Some(b) = self.builds_dir {
            exec.builds_dir = b;
        }
        if let Some(c) = self.cache_dir {
            exec.cache_dir = c;
        }
        if let Some(s) = self.builds_dir_is_shared {
            exec.shared_builds_dir = s;
        }
        if let Some(h) = self.hostname {
            exec.hostname = h;
        }
        if let Some(s) = self.shell {
            exec.shell = s;
        }
        exec.job_env = self.job_env;
        let mut driver = String::new();
        if let Some(name) = self.driver_name.filter(|n| !n.is_empty()) {
            driver.push_str(&format!(" with driver {name}"));
            if let Some(v) = self.driver_version.filter(|v| !v.is_empty()) {
                driver.push_str(&format!(" {v}"));
            }
        }
        driver
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

    #[test]
    fn what_config_exec_set_replaces_the_defaults_and_names_the_driver() {
        let mut exec = Exec {
            builds_dir: "/runner-builds".into(),
            cache_dir: "/runner-cache".into(),
            hostname: "runner".into(),
            shell: "bash".into(),
            ..Exec::default()
        };
        let v = json!({"builds_dir": "/b", "builds_dir_is_shared": true, "shell": "sh",
                       "job_env": {"A": "1"}, "driver": {"name": "pogo", "version": ""}});
        let driver = ConfigOutput::from_value(&v).unwrap().apply(&mut exec);
        assert_eq!(driver, " with driver pogo");
        assert_eq!(exec.builds_dir, "/b");
        assert_eq!(exec.cache_dir, "/runner-cache", "unset: kept");
        assert!(exec.shared_builds_dir);
        assert_eq!(exec.hostname, "runner");
        assert_eq!(exec.shell, "sh");
        assert_eq!(exec.job_env, vec![("A".to_string(), "1".to_string())]);
        let none = ConfigOutput::default().apply(&mut exec);
        assert_eq!(none, "");
        assert!(exec.job_env.is_empty(), "job_env is replaced, not merged");
    }
}
