//! `needs:` and `dependencies:`: the needs of a job as written, and the check that both
//! name jobs of the pipeline in the right stages.

use serde_json::Value;

use super::parallel::matrix_instances;
use super::parser::Parser;
use super::values::{get, kind};
use super::{Need, Pipeline};

impl Parser {
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
