//! A trigger job's child pipeline (`trigger: include:`), run in place as GitLab runs it,
//! from files of the project or from a file an earlier job made (a dynamic child pipeline).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::driver::local::artifacts_dir_name;

use super::compose::ReadInclude;
use super::filter::predefined_variables;
use super::job::{finished, Local, CHILD_IDS};
use super::pipeline::{self, JobSpec, ParseError, Pipeline};
use super::plan::{refuse_foreign_triggers, select};
use super::report::{Failure, Row};
use super::schedule::run_pipeline;
use super::{apply_rules, artifact_include, compose, read_in, say, ExecError, Out};

impl Local {
    /// A trigger job's child pipeline, run here and now as GitLab runs it: its files
    /// (`include:` with their `inputs`), `CI_PIPELINE_SOURCE` `parent_pipeline`, the trigger
    /// job's variables as the child's pipeline variables. With `strategy: depend` the job
    /// takes the child's result, else it passes once the child exists, as on GitLab.
    pub(super) fn run_child(
        &self,
        spec: &JobSpec,
        trigger_id: u64,
        include: &serde_json::Value,
        depend: bool,
        out: &Out,
        err: &Out,
    ) -> Result<Row, ExecError> {
        let started = Instant::now();
        let file = format!("the child pipeline of {}", spec.name);
        say(
            out,
            &format!("\n==> {} (stage {}): {file}\n", spec.name, spec.stage),
        );
        let mut project = self.project.clone();
        project.source = "parent_pipeline".to_string();
        // the trigger job's variables (global ones included) pass to the child, as GitLab's
        // forward: yaml_variables does by default; --var ones stay on top
        let mut vars: Vec<(String, String)> = spec
            .variables
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect();
        vars.extend(self.vars.iter().cloned());
        let mut variables = predefined_variables(&project);
        variables.extend(vars.iter().cloned());
        let context = compose::Context::new(
            serde_json::Map::new(),
            variables,
            Some((project.clone(), self.dirty)),
        )
        .with_origins(self.origins.clone());
        let created = self
            .child_pipeline(include, &file, &context)
            .map_err(ExecError::from)
            .and_then(|child| {
                for key in &child.ignored {
                    say(err, &format!("pogo: ignored locally: {key} ({file})\n"));
                }
                apply_rules(&child, &project, &vars, self.dirty, &self.origins)
            });
        let (child, verdicts) = match created {
            Ok(created) => created,
            // as on GitLab, a child pipeline that cannot be created fails its trigger job
            // (and the pipeline goes on as after any failed job)
            Err(e) => {
                say(
                    out,
                    &format!("ERROR: pogo: the child pipeline cannot be created: {e}\n"),
                );
                return Ok(finished(
                    spec,
                    Some(Failure::Configuration),
                    started.elapsed(),
                    Vec::new(),
                    vec!["the child pipeline cannot be created".into()],
                    out,
                ));
            }
        };
        for v in verdicts.iter().filter(|v| !v.included) {
            say(
                out,
                &format!("--- {}: not in the child pipeline ({})\n", v.job, v.why),
            );
        }
        let plan = select(&child, &[], &file)?;
        refuse_foreign_triggers(&plan)?;
        let local = self.child_local(spec, project, vars, trigger_id);
        let rows = run_pipeline(&plan, &child, &local, out, err)?;
        let failed: Vec<&str> = rows
            .iter()
            .filter(|r| r.status.is_blocking_failure())
            .map(|r| r.job.as_str())
            .collect();
        let ran = rows.iter().filter(|r| r.status.ran()).count();
        let mut notes = vec![format!(
            "child pipeline: {ran} job(s) ran{}",
            if failed.is_empty() {
                String::new()
            } else {
                format!(", failed: {}", failed.join(", "))
            }
        )];
        let failure = if depend && !failed.is_empty() {
            Some(Failure::Exit(1))
        } else {
            if !depend && !failed.is_empty() {
                notes.push("without strategy: depend the child's failure is not the job's".into());
            }
            None
        };
        Ok(finished(
            spec,
            failure,
            started.elapsed(),
            Vec::new(),
            notes,
            out,
        ))
    }

    /// The child pipeline's runner: the parent's, with the child's project, variables and
    /// job ids, and its artifacts in a directory of their own inside the parent's (mounted).
    fn child_local(
        &self,
        spec: &JobSpec,
        project: super::project::Project,
        vars: Vec<(String, String)>,
        trigger_id: u64,
    ) -> Local {
        // the child's artifacts in a directory of their own, inside the parent's (mounted)
        let sub = format!("child-of-{}", artifacts_dir_name(&spec.name));
        let artifacts = self.artifacts.join(&sub);
        let mut driver = self.driver.clone();
        if let Some(stages) = &mut driver.local {
            stages.artifacts.host = artifacts.display().to_string();
            stages.artifacts.container = format!("{}/{sub}", stages.artifacts.container);
        }
        Local {
            driver,
            project,
            store: self.store.clone(),
            mounts: self.mounts.clone(),
            extra_tags: self.extra_tags.clone(),
            vars,
            colour: self.colour,
            interrupted: self.interrupted.clone(),
            parallel: self.parallel,
            started: Mutex::new(HashSet::new()),
            dirty: self.dirty,
            // the child's jobs must not share a job id (and so a key, names and a removal)
            // with the parent's: the trigger job's id × 1000 on
            id_base: trigger_id.saturating_mul(CHILD_IDS),
            origins: self.origins.clone(),
            artifacts,
        }
    }

    /// The child pipeline of the trigger's `include:` entries: files of the project, and
    /// files earlier jobs of this pipeline made (`artifact:` + `job:`), merged in order as
    /// any includes are.
    fn child_pipeline(
        &self,
        include: &Value,
        file: &str,
        context: &compose::Context,
    ) -> Result<Pipeline, ParseError> {
        let read = &mut read_in(&self.project.dir);
        let entries = include.as_array().map(Vec::as_slice).unwrap_or_default();
        if !entries.iter().any(|e| e.get("artifact").is_some()) {
            return pipeline::parse_root(json!({ "include": include }), file, read, context);
        }
        let mut merged = Map::new();
        for entry in entries {
            let value = if entry.get("artifact").is_some() {
                self.artifact_file(entry, file, context, read)?
            } else {
                compose::resolve_includes(json!({ "include": [entry] }), file, read, context)?
            };
            if let Value::Object(m) = value {
                compose::deep_merge(&mut merged, m);
            }
        }
        pipeline::parse_root(Value::Object(merged), file, read, context)
    }

    /// The file of an `artifact:` include, from the artifacts its `job:` made in this run
    /// (a job that did not run here has none, whatever an earlier run left), with its
    /// `inputs` and its own includes (files of the project) resolved.
    fn artifact_file(
        &self,
        entry: &Value,
        file: &str,
        context: &compose::Context,
        read: &mut ReadInclude<'_>,
    ) -> Result<Value, ParseError> {
        let invalid = |message: String| ParseError::Invalid {
            file: file.to_string(),
            message,
        };
        let (path, job) = pipeline::artifact_include(entry).map_err(invalid)?;
        let ran = self.started.lock().is_ok_and(|s| s.contains(&job));
        if !ran {
            return Err(invalid(format!(
                "Job `{job}` not found in parent pipeline or does not have artifacts! \
                 (it did not run in this pipeline)"
            )));
        }
        let dir = self.artifacts.join(artifacts_dir_name(&job));
        let text = artifact_include::read(&dir, &job, &path).map_err(invalid)?;
        let shown = format!("{path} (artifact of job {job})");
        let inputs = entry
            .get("inputs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let value = compose::load_file(&text, &shown, &inputs, &context.variables)?;
        compose::resolve_includes(value, &shown, read, context)
    }
}
