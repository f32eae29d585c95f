//! A trigger job's child pipeline (`trigger: include:`), run in place as GitLab runs it.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use crate::driver::local::artifacts_dir_name;

use super::filter::predefined_variables;
use super::job::{finished, Local, CHILD_IDS};
use super::pipeline::{self, JobSpec};
use super::plan::{refuse_foreign_triggers, select};
use super::report::{Failure, Row};
use super::schedule::run_pipeline;
use super::{apply_rules, compose, read_in, say, ExecError, Out};

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
        let text = serde_json::json!({ "include": include }).to_string();
        let read = &mut read_in(&self.project.dir);
        let child = pipeline::parse_with(&text, &file, read, &context)?;
        for key in &child.ignored {
            say(err, &format!("pogo: ignored locally: {key} ({file})\n"));
        }
        let (child, verdicts) = apply_rules(&child, &project, &vars, self.dirty)?;
        for v in verdicts.iter().filter(|v| !v.included) {
            say(
                out,
                &format!("--- {}: not in the child pipeline ({})\n", v.job, v.why),
            );
        }
        let plan = select(&child, &[], &file)?;
        refuse_foreign_triggers(&plan)?;
        // the child's artifacts in a directory of their own, inside the parent's (mounted)
        let sub = format!("child-of-{}", artifacts_dir_name(&spec.name));
        let artifacts = self.artifacts.join(&sub);
        let mut driver = self.driver.clone();
        if let Some(stages) = &mut driver.local {
            stages.artifacts.host = artifacts.display().to_string();
            stages.artifacts.container = format!("{}/{sub}", stages.artifacts.container);
        }
        let local = Local {
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
        };
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
}
