//! The jobs of this run: those named on the command line (or all of them), whether each
//! may run (`when:`, a failure before it), and the trigger jobs `pogo exec` cannot run.

use super::pipeline::{self, JobSpec, Pipeline, When};
use super::report::Status;
use super::ExecError;

/// A job chosen to appear in this run.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub spec: &'a JobSpec,
    /// Named on the command line (manual jobs run only then).
    pub named: bool,
}

/// A trigger job that would run but starts a pipeline `pogo exec` cannot run (another
/// project's) is refused before anything runs: without it the run would not be GitLab's
/// pipeline.
pub(super) fn refuse_foreign_triggers(plan: &[Planned<'_>]) -> Result<(), ExecError> {
    for p in plan {
        if let Some(pipeline::Trigger::Elsewhere(why)) = &p.spec.trigger {
            if p.named || p.spec.when != When::Manual {
                return Err(ExecError::Rules(format!(
                    "job '{}': {why}, which pogo exec cannot run locally; run pogo exec in that \
                     project, or name the jobs to run here (pogo exec JOB ...) to leave it out",
                    p.spec.name
                )));
            }
        }
    }
    Ok(())
}

/// The jobs of this run in pipeline order: all of them, or only those named.
pub fn select<'a>(
    pipeline: &'a Pipeline,
    names: &[String],
    file: &str,
) -> Result<Vec<Planned<'a>>, ExecError> {
    if names.is_empty() {
        return Ok(pipeline
            .jobs
            .iter()
            .map(|spec| Planned { spec, named: false })
            .collect());
    }
    for name in names {
        if pipeline.job(name).is_some() {
            continue;
        }
        if pipeline.hidden.contains(name) {
            return Err(ExecError::HiddenJob(name.clone()));
        }
        let jobs: Vec<String> = pipeline.jobs.iter().map(|j| j.name.clone()).collect();
        let candidates: Vec<&str> = jobs.iter().map(String::as_str).collect();
        return Err(ExecError::UnknownJob {
            file: file.to_string(),
            name: name.clone(),
            suggestion: crate::config::closest(name, &candidates),
            jobs,
        });
    }
    Ok(pipeline
        .jobs
        .iter()
        .filter(|j| names.contains(&j.name))
        .map(|spec| Planned { spec, named: true })
        .collect())
}

/// Whether a job runs, given `when:`, whether it was named, and whether the pipeline has
/// failed in an earlier stage. `Err` is the status of a job that does not run.
pub fn decide(when: When, named: bool, failed_before: bool) -> Result<(), Status> {
    match when {
        When::Manual if !named => Err(Status::Manual),
        When::OnSuccess | When::Manual if failed_before => Err(Status::Skipped),
        When::OnFailure if !failed_before => Err(Status::Skipped),
        _ => Ok(()),
    }
}
