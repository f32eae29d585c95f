//! `parallel:`: a job's instances (`parallel: N` or a matrix), with GitLab's names.

use serde_json::Value;

use super::values::{get, kind, valid_variable_name};
use super::JobSpec;
use crate::driver::Variable;

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

/// The instances of the job `name` (`spec`) with `parallel:` `v`: copies named as GitLab
/// names them, each with `CI_NODE_INDEX`, `CI_NODE_TOTAL` and its matrix variables as
/// variables of its own.
pub(super) fn job_instances(name: &str, spec: &JobSpec, v: &Value) -> Result<Vec<JobSpec>, String> {
    let instances = instances(v).map_err(|e| format!("job '{name}': parallel: {e}"))?;
    let total = instances.len();
    let mut jobs = Vec::with_capacity(total);
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
        jobs.push(j);
    }
    Ok(jobs)
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
pub(super) fn matrix_instances(v: &Value) -> Result<Vec<Instance>, String> {
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
