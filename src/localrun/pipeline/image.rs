//! `image:` and `services:`, with their `docker:` options.

use std::collections::BTreeMap;

use serde_json::Value;

use super::parser::Parser;
use super::values::{get, kind, string_list, variables};
use crate::driver::{Image, Service};

impl Parser {
    /// `image: NAME` or `image: {name, entrypoint}`.
    pub(super) fn image(&mut self, v: &Value) -> Result<Image, String> {
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
    pub(super) fn services(&mut self, v: &Value) -> Result<Vec<Service>, String> {
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
