//! `needs:` and `dependencies:`: the needs of a job as written, and the check that both
//! name jobs of the pipeline in the right stages.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::job::in_job;
use super::parallel::matrix_instances;
use super::parser::Parser;
use super::values::{get, kind, string_list};
use super::{JobSpec, Need, Pipeline};

impl Parser {
    /// `needs:` of the job `name` (`None`: not given; `null`: none).
    pub(super) fn job_needs(
        &mut self,
        name: &str,
        m: &Map<String, Value>,
    ) -> Result<Option<Vec<Need>>, String> {
        Ok(match m.get("needs") {
            None => None,
            Some(Value::Null) => Some(Vec::new()),
            Some(v) => Some(self.needs(v).map_err(in_job(name, "needs"))?),
        })
    }

    /// `needs:`: job names or `{job, artifacts, optional}`; other kinds are reported.
    pub(super) fn needs(&mut self, v: &Value) -> Result<Vec<Need>, String> {
        let Value::Array(items) = v else {
            return Err(format!("must be a list, found {}", kind(v)));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(job) => out.push(Need {
                    job: job.clone(),
                    artifacts: true,
                    optional: false,
                }),
                Value::Object(m) => {
                    let Some(job) = get(m, "job") else {
                        let kind = ["pipeline", "project"]
                            .into_iter()
                            .find(|k| m.contains_key(*k))
                            .unwrap_or("entry");
                        self.ignore(format!("needs:{kind}"));
                        continue;
                    };
                    let Value::String(job) = job else {
                        return Err(format!("job: must be a job name, found {}", kind(job)));
                    };
                    for key in m.keys() {
                        if !matches!(key.as_str(), "job" | "artifacts" | "optional" | "parallel") {
                            self.ignore(format!("needs:{key}"));
                        }
                    }
                    let flag = |key: &str, default: bool| match get(m, key) {
                        None => Ok(default),
                        Some(Value::Bool(b)) => Ok(*b),
                        Some(other) => Err(format!(
                            "{key}: must be true or false, found {}",
                            kind(other)
                        )),
                    };
                    let need = Need {
                        job: job.clone(),
                        artifacts: flag("artifacts", true)?,
                        optional: flag("optional", false)?,
                    };
                    match get(m, "parallel") {
                        // `needs: {job, parallel: {matrix: [...]}}`: those instances only
                        Some(p) => {
                            let Value::Object(pm) = p else {
                                return Err("parallel: must be {matrix: [...]}".into());
                            };
                            let Some(matrix) = get(pm, "matrix") else {
                                return Err("parallel: must be {matrix: [...]}".into());
                            };
                            for inst in matrix_instances(matrix)
                                .map_err(|e| format!("parallel: matrix: {e}"))?
                            {
                                out.push(Need {
                                    job: inst.name(job, 0, 0),
                                    ..need.clone()
                                });
                            }
                        }
                        None => out.push(need),
                    }
                }
                other => {
                    return Err(format!(
                        "must be a list of job names or mappings with `job:`, found {} in it",
                        kind(other)
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl Pipeline {
    /// `needs:` and `dependencies:` name jobs that exist, in the right stages.
    pub(crate) fn check_references(&self) -> Result<(), String> {
        for job in &self.jobs {
            let stage = self.stage_index(&job.stage);
            let find = |name: &str| self.jobs.iter().find(|j| j.name == name);
            let needed = |name: &str| job.needs.iter().flatten().any(|n| n.job == name);
            for dep in job.dependencies.iter().flatten() {
                match find(dep) {
                    // GitLab: with needs:, dependencies must be among the needs
                    Some(_) if job.needs.is_some() && !needed(dep) => {
                        return Err(format!(
                            "job '{}': dependencies: '{dep}' should be part of needs:",
                            job.name
                        ))
                    }
                    Some(d) if self.stage_index(&d.stage) < stage => {}
                    // the same stage: only when needed, so it has finished
                    Some(d) if self.stage_index(&d.stage) == stage && needed(dep) => {}
                    Some(d) => {
                        return Err(format!(
                            "job '{}': dependencies: '{dep}' is in stage '{}', not in an earlier \
                             stage than '{}' (a job of the same stage must also be in needs:)",
                            job.name, d.stage, job.stage
                        ))
                    }
                    None => {
                        return Err(format!(
                            "job '{}': dependencies: '{dep}' is not a job of this pipeline",
                            job.name
                        ))
                    }
                }
            }
            for need in job.needs.iter().flatten() {
                match find(&need.job) {
                    _ if need.job == job.name => {
                        return Err(format!(
                            "job '{}': needs: a job cannot need itself",
                            job.name
                        ))
                    }
                    Some(n) if self.stage_index(&n.stage) <= stage => {}
                    Some(n) => {
                        return Err(format!(
                            "job '{}': needs: '{}' is in the later stage '{}'",
                            job.name, need.job, n.stage
                        ))
                    }
                    None => {
                        return Err(format!(
                            "job '{}': needs: '{}' is not a job of this pipeline (mark the need \
                             `optional: true` if it may be missing)",
                            job.name, need.job
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

/// `dependencies:` of the job `name` (`None`: not given; `null`: none).
pub(super) fn job_dependencies(
    name: &str,
    m: &Map<String, Value>,
) -> Result<Option<Vec<String>>, String> {
    Ok(match m.get("dependencies") {
        None => None,
        Some(Value::Null) => Some(Vec::new()),
        Some(v) => Some(string_list(v).map_err(in_job(name, "dependencies"))?),
    })
}

/// `needs: [job]` and `dependencies: [job]` of a parallel job mean all its instances
/// (`parallel`: each `parallel:` job's instances, by the name written); so do the `needs:`
/// of a job's rules.
pub(super) fn needs_of_instances(jobs: &mut [JobSpec], parallel: &BTreeMap<String, Vec<String>>) {
    let expand = |needs: &mut Vec<Need>| {
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
    };
    for job in jobs {
        if let Some(needs) = &mut job.needs {
            expand(needs);
        }
        for rule in job.rules.iter_mut().flatten() {
            if let Some(needs) = &mut rule.needs {
                expand(needs);
            }
        }
        if let Some(deps) = &mut job.dependencies {
            *deps = std::mem::take(deps)
                .into_iter()
                .flat_map(|d| parallel.get(&d).cloned().unwrap_or_else(|| vec![d]))
                .collect();
        }
    }
}

/// Drops the `optional: true` needs of jobs that are not among `jobs`.
pub(crate) fn drop_missing_optional_needs(jobs: &mut [JobSpec]) {
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    for job in jobs {
        if let Some(needs) = &mut job.needs {
            needs.retain(|n| !n.optional || names.contains(&n.job));
        }
    }
}
