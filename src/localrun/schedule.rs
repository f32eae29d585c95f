//! The scheduler: the planned jobs stage by stage, a stage's jobs side by side (up to
//! `-j N`), `needs:` deciding over earlier stages, and the lines of the jobs that do not run.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};

use super::job::Local;
use super::pipeline::{JobSpec, Pipeline, When};
use super::plan::{decide, Planned};
use super::report::{Row, Status};
use super::{say, ExecError, Out};

/// Runs the planned jobs stage by stage (up to `local.parallel` at a time within a stage),
/// streaming their logs; returns the summary rows in plan order.
pub fn run_pipeline(
    plan: &[Planned<'_>],
    pipeline: &Pipeline,
    local: &Local,
    out: &Out,
    err: &Out,
) -> Result<Vec<Row>, ExecError> {
    let mut rows: Vec<Option<Row>> = vec![None; plan.len()];
    let mut failed_before = false;
    let mut start = 0;
    while start < plan.len() {
        let stage = plan[start].spec.stage.as_str();
        let end = start
            + plan[start..]
                .iter()
                .take_while(|p| p.spec.stage == stage)
                .count();
        let mut runnable = Vec::new();
        for (i, planned) in plan.iter().enumerate().take(end).skip(start) {
            let spec = planned.spec;
            if local.is_interrupted() {
                say(out, &skipped_line(spec, "skipped (interrupted)"));
                rows[i] = Some(not_run(spec, Status::Skipped));
                continue;
            }
            // GitLab: a job with needs: goes by its needed jobs only, not by earlier stages;
            // one that did not run leaves it waiting (unless it runs `when: always`)
            let (failed, waits_for) = match needs_outcome(spec, plan, &rows) {
                Some(NeedsOutcome { failed, not_run }) => (failed, not_run),
                None => (None, None),
            };
            let failed_here = match spec.needs {
                Some(_) => failed.is_some(),
                None => failed_before,
            };
            let decision =
                decide(spec.when, planned.named, failed_here).and_then(|()| match waits_for {
                    Some(_) if spec.when != When::Always => Err(Status::Skipped),
                    _ => Ok(()),
                });
            if let Err(status) = decision {
                let why = match (&status, failed, waits_for) {
                    (Status::Manual, ..) => {
                        format!("manual job, not run (run it with: pogo exec {})", spec.name)
                    }
                    (_, _, Some(n)) if spec.when != When::OnFailure || failed.is_some() => {
                        format!("skipped (it needs '{n}', which did not run)")
                    }
                    _ if spec.when == When::OnFailure => {
                        "skipped (when: on_failure, and nothing failed)".to_string()
                    }
                    (_, Some(n), _) => format!("skipped (it needs '{n}', which failed)"),
                    _ => "skipped (an earlier stage failed)".to_string(),
                };
                say(out, &skipped_line(spec, &why));
                rows[i] = Some(not_run(spec, status));
                continue;
            }
            runnable.push(i);
        }
        for (i, row) in run_stage(plan, &runnable, pipeline, local, out, err)? {
            failed_before |= row.status.is_blocking_failure();
            rows[i] = Some(row);
        }
        start = end;
    }
    Ok(rows.into_iter().flatten().collect())
}

/// How the needed jobs of earlier stages of a job with `needs:` went: one failed (blocking),
/// or one did not run (skipped, or a manual job not started: GitLab leaves the job waiting).
/// `None` for a job without `needs:`. Needs of the same stage are the stage's worker's, and
/// needs outside this run (not planned) do not count.
struct NeedsOutcome<'a> {
    failed: Option<&'a str>,
    not_run: Option<&'a str>,
}

fn needs_outcome<'a>(
    spec: &'a JobSpec,
    plan: &[Planned<'_>],
    rows: &[Option<Row>],
) -> Option<NeedsOutcome<'a>> {
    let needs = spec.needs.as_ref()?;
    let mut outcome = NeedsOutcome {
        failed: None,
        not_run: None,
    };
    for need in needs {
        let row = plan
            .iter()
            .zip(rows)
            .find(|(p, _)| p.spec.name == need.job)
            .and_then(|(_, r)| r.as_ref());
        match row.map(|r| &r.status) {
            Some(s) if s.is_blocking_failure() && outcome.failed.is_none() => {
                outcome.failed = Some(need.job.as_str());
            }
            Some(Status::Skipped | Status::Manual) if outcome.not_run.is_none() => {
                outcome.not_run = Some(need.job.as_str());
            }
            _ => {}
        }
    }
    Some(outcome)
}

fn skipped_line(spec: &JobSpec, why: &str) -> String {
    format!("--- {} (stage {}): {why}\n", spec.name, spec.stage)
}

fn not_run(spec: &JobSpec, status: Status) -> Row {
    Row {
        job: spec.name.clone(),
        stage: spec.stage.clone(),
        status,
        duration: None,
        phases: Vec::new(),
        notes: Vec::new(),
    }
}

/// What the workers of one stage share.
struct StageState {
    /// Plan indices not started yet, in order.
    pending: Vec<usize>,
    running: usize,
    /// Finished jobs of this stage: whether each passed (or was allowed to fail).
    finished: HashMap<String, bool>,
    rows: Vec<(usize, Row)>,
    error: Option<ExecError>,
}

/// Runs the jobs `runnable` (plan indices) of one stage with up to `local.parallel`
/// workers. A job that needs another job of the same stage starts after it, and is skipped
/// when that one failed.
fn run_stage(
    plan: &[Planned<'_>],
    runnable: &[usize],
    pipeline: &Pipeline,
    local: &Local,
    out: &Out,
    err: &Out,
) -> Result<Vec<(usize, Row)>, ExecError> {
    if runnable.is_empty() {
        return Ok(Vec::new());
    }
    let here: HashSet<&str> = runnable
        .iter()
        .map(|&i| plan[i].spec.name.as_str())
        .collect();
    let same_stage_needs = |i: usize| -> Vec<&str> {
        plan[i]
            .spec
            .needs
            .iter()
            .flatten()
            .map(|n| n.job.as_str())
            .filter(|n| here.contains(n))
            .collect()
    };
    let workers = local.parallel.clamp(1, runnable.len());
    let width = runnable
        .iter()
        .map(|&i| plan[i].spec.name.chars().count())
        .max()
        .unwrap_or(0);
    let state = Mutex::new(StageState {
        pending: runnable.to_vec(),
        running: 0,
        finished: HashMap::new(),
        rows: Vec::new(),
        error: None,
    });
    let wake = Condvar::new();

    let worker = || loop {
        let Ok(mut s) = state.lock() else { return };
        let (i, failed_need) = loop {
            if s.error.is_some() || s.pending.is_empty() {
                return;
            }
            let ready = s.pending.iter().position(|&i| {
                same_stage_needs(i)
                    .iter()
                    .all(|n| s.finished.contains_key(*n))
            });
            // Nothing ready and nothing running: a cycle of needs; start one anyway.
            let pick = match ready {
                Some(p) => Some(p),
                None if s.running == 0 => Some(0),
                None => None,
            };
            if let Some(p) = pick {
                let i = s.pending.remove(p);
                let failed = same_stage_needs(i)
                    .into_iter()
                    .find(|n| s.finished.get(*n) == Some(&false))
                    .map(str::to_string);
                break (i, failed);
            }
            s = match wake.wait(s) {
                Ok(s) => s,
                Err(_) => return,
            };
        };
        s.running += 1;
        drop(s);

        let spec = plan[i].spec;
        let result = if local.is_interrupted() {
            say(out, &skipped_line(spec, "skipped (interrupted)"));
            Ok(not_run(spec, Status::Skipped))
        } else if let Some(need) = failed_need {
            say(
                out,
                &skipped_line(spec, &format!("skipped (it needs '{need}', which failed)")),
            );
            Ok(not_run(spec, Status::Skipped))
        } else {
            let prefix = (workers > 1).then(|| format!("[{:<width$}] ", spec.name));
            local.run_one(spec, pipeline, prefix, out, err)
        };

        let Ok(mut s) = state.lock() else { return };
        s.running -= 1;
        match result {
            Ok(row) => {
                let ok = matches!(row.status, Status::Passed | Status::AllowedToFail(_));
                s.finished.insert(spec.name.clone(), ok);
                s.rows.push((i, row));
            }
            Err(e) => s.error = Some(e),
        }
        wake.notify_all();
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(worker);
        }
    });
    let state = state
        .into_inner()
        .map_err(|_| ExecError::Store("a job thread panicked".into()))?;
    match state.error {
        Some(e) => Err(e),
        None => Ok(state.rows),
    }
}
