//! Which jobs GitLab's pipeline has, and why: `workflow: rules` and each job's `rules:` (or
//! `only`/`except`) applied for the ref, the source and the files of this run, with the
//! predefined variables they see; the verdicts `pogo exec --list` shows.

use std::collections::HashMap;

use crate::driver::{Job, Variable};

use super::origin::Origins;
use super::pipeline::{self, AllowFailure, JobSpec, Pipeline, When};
use super::project::{self, Project};
use super::rules::{self, Decision, RuleWhen};
use super::{report, ExecError, LOCAL_API_URL};

/// `pogo exec --list`: every job of the file in order, whether GitLab's pipeline has it, how
/// it would run and which rule decided.
pub(super) fn list(pipeline: &Pipeline, verdicts: &[Verdict], for_ref: &str) -> String {
    let rows: Vec<[String; 4]> = verdicts
        .iter()
        .map(|v| {
            let runs = match pipeline.job(&v.job) {
                None => "not in pipeline".to_string(),
                Some(j) => {
                    let when = match j.when {
                        When::OnSuccess => "on_success",
                        When::Manual => "manual",
                        When::Always => "always",
                        When::OnFailure => "on_failure",
                    };
                    match j.allow_failure {
                        pipeline::AllowFailure::No => when.to_string(),
                        _ => format!("{when}, may fail"),
                    }
                }
            };
            [v.job.clone(), v.stage.clone(), runs, v.why.clone()]
        })
        .collect();
    let header = ["job", "stage", "runs", "why"];
    let line = report::columns(header, &rows);
    let mut text = format!("GitLab's pipeline for {for_ref}:\n");
    for r in std::iter::once(&header.map(str::to_string)).chain(&rows) {
        text.push_str(&line(r));
        text.push('\n');
    }
    text
}

/// What the pipeline runs for, for messages: `branch main`, `tag v1`, or `no git ref`.
pub(super) fn pushed_ref(project: &Project) -> String {
    let what = match project.git.as_ref() {
        Some(g) => match (&g.branch, &g.tag) {
            (Some(b), _) if project.source == project::MERGE_REQUEST => {
                return format!("a merge request from branch {b}")
            }
            (Some(b), _) if project.source == "push" => return format!("a push to branch {b}"),
            (Some(b), _) => format!("branch {b}"),
            (None, Some(t)) => format!("tag {t}"),
            (None, None) => format!("commit {}", g.sha.chars().take(8).collect::<String>()),
        },
        None => "a project outside git".to_string(),
    };
    match project.source.as_str() {
        "push" => what,
        source => format!("{what} ({source} pipeline)"),
    }
}

/// Whether a job is in GitLab's pipeline, and why (`pogo exec --list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub job: String,
    pub stage: String,
    pub included: bool,
    /// The rule that decided, or GitLab's default.
    pub why: String,
}

/// The predefined variables of the local pipeline, as `rules:` and an input's `expand_vars`
/// see them before any variable of the file.
pub(super) fn predefined_variables(project: &Project) -> HashMap<String, String> {
    let server_url = Job::new(0, "", "", LOCAL_API_URL).server_url();
    let mut base: HashMap<String, String> = project
        .variables(&server_url)
        .into_iter()
        .map(|v| (v.key, v.value))
        .collect();
    if let Some(g) = &project.git {
        base.insert("CI_COMMIT_REF_NAME".into(), g.ref_name.clone());
        base.insert("CI_COMMIT_SHA".into(), g.sha.clone());
    }
    base.insert("CI_PROJECT_PATH".into(), project.path.clone());
    base
}

/// The pipeline GitLab would create for a push of this project: `workflow: rules` decide
/// whether there is one, each job's `rules:` (or `only`/`except`) whether it is in it and how
/// (`when`, `allow_failure`, variables). Returns it and each job's [`Verdict`], in the file's
/// order.
pub fn apply_rules(
    pipeline: &Pipeline,
    project: &Project,
    cli_vars: &[(String, String)],
    dirty: bool,
    origins: &Origins,
) -> Result<(Pipeline, Vec<Verdict>), ExecError> {
    let repo = if uses_rules(pipeline) {
        project.facts(dirty)
    } else {
        project::RepoFacts::default()
    };
    let compare = |r: &str| project.changed_against(r);
    let project_files = |p: &str, r: Option<&str>| origins.project_files(p, r);
    let facts = rule_facts(project, &repo, &compare, &project_files);
    let base = predefined_variables(project);
    let workflow_vars = workflow_variables(pipeline, project, &base, cli_vars, &facts)?;
    let mut out = pipeline.clone();
    let mut verdicts = Vec::new();
    out.jobs.clear();
    for job in &pipeline.jobs {
        let (verdict, spec) = job_verdict(job, &workflow_vars, &base, cli_vars, &facts)?;
        verdicts.push(verdict);
        out.jobs.extend(spec);
    }
    pipeline::drop_missing_optional_needs(&mut out.jobs);
    out.check_references().map_err(|e| {
        ExecError::Rules(format!(
            "{e} (in GitLab's pipeline for {}: rules left jobs out; GitLab rejects such a \
             pipeline too)",
            pushed_ref(project)
        ))
    })?;
    if out.jobs.is_empty() {
        return Err(ExecError::Filtered(
            pushed_ref(project),
            "every job's rules leave it out".to_string(),
        ));
    }
    Ok((out, verdicts))
}

/// Whether `workflow:` or a job's `rules:`, `only:` or `except:` may decide anything (only
/// then are the repository's files and changes looked at).
fn uses_rules(pipeline: &Pipeline) -> bool {
    pipeline.workflow.is_some()
        || pipeline
            .jobs
            .iter()
            .any(|j| j.rules.is_some() || j.only.is_some() || j.except.is_some())
}

/// What `rules:` and `only`/`except` know of the pipeline: its files and changes, its ref
/// and its source.
fn rule_facts<'a>(
    project: &'a Project,
    repo: &'a project::RepoFacts,
    compare: &'a dyn Fn(&str) -> Option<Vec<String>>,
    project_files: &'a rules::ProjectFiles<'a>,
) -> rules::Facts<'a> {
    let git = project.git.as_ref();
    rules::Facts {
        files: &repo.files,
        changed: repo.changed.as_deref(),
        changed_against: compare,
        project_files,
        // outside git, or on a detached commit that no tag names, the pipeline counts as a
        // branch pipeline (GitLab's always run for a branch or a tag) of no particular name
        branch: match git {
            _ if project.source == project::MERGE_REQUEST => None,
            Some(g) if g.tag.is_some() && g.branch.is_none() => None,
            Some(g) => Some(g.branch.as_deref().unwrap_or("")),
            None => Some(""),
        },
        tag: git.and_then(|g| g.tag.as_deref()),
        source: &project.source,
    }
}

/// `vars` with the variables of the command line (`--var`) over them.
fn with_cli(
    mut vars: HashMap<String, String>,
    cli_vars: &[(String, String)],
) -> HashMap<String, String> {
    vars.extend(cli_vars.iter().cloned());
    vars
}

/// `workflow: rules`: the variables the rule that creates the pipeline sets (none without
/// `workflow: rules`), or why GitLab creates no pipeline.
fn workflow_variables(
    pipeline: &Pipeline,
    project: &Project,
    base: &HashMap<String, String>,
    cli_vars: &[(String, String)],
    facts: &rules::Facts<'_>,
) -> Result<Vec<Variable>, ExecError> {
    let Some(wf) = &pipeline.workflow else {
        return Ok(Vec::new());
    };
    let mut vars = base.clone();
    vars.extend(
        pipeline
            .variables
            .iter()
            .map(|v| (v.key.clone(), v.value.clone())),
    );
    match rules::eval_rules(wf, RuleWhen::Always, &with_cli(vars, cli_vars), facts)
        .map_err(|e| ExecError::Rules(format!("workflow: rules: {e}")))?
    {
        Decision::Out(why) => Err(ExecError::Filtered(
            pushed_ref(project),
            format!("workflow: rules: {why}"),
        )),
        Decision::In { variables, .. } => Ok(variables),
    }
}

/// The verdict on `job` and, when GitLab's pipeline has it, the job as it runs there: with
/// the workflow's variables, and what its matching rule sets.
fn job_verdict(
    job: &JobSpec,
    workflow_vars: &[Variable],
    base: &HashMap<String, String>,
    cli_vars: &[(String, String)],
    facts: &rules::Facts<'_>,
) -> Result<(Verdict, Option<JobSpec>), ExecError> {
    let mut spec = job.clone();
    // workflow variables: over the global ones, under the job's own
    for v in workflow_vars {
        if !job.own_variable_keys.contains(&v.key) {
            spec.variables.push(v.clone());
        }
    }
    let mut vars = base.clone();
    vars.insert("CI_JOB_NAME".into(), job.name.clone());
    vars.insert("CI_JOB_STAGE".into(), job.stage.clone());
    vars.extend(
        spec.variables
            .iter()
            .map(|v| (v.key.clone(), v.value.clone())),
    );
    let vars = with_cli(vars, cli_vars);
    let job_when = rule_when(job);
    let decision = match &job.rules {
        Some(r) => rules::eval_rules(r, job_when, &vars, facts),
        None => rules::eval_only_except(job.only.as_ref(), job.except.as_ref(), &vars, facts),
    }
    .map_err(|e| ExecError::Rules(format!("job '{}': {e}", job.name)))?;
    let verdict = |included, why| Verdict {
        job: job.name.clone(),
        stage: job.stage.clone(),
        included,
        why,
    };
    match decision {
        Decision::Out(why) => {
            let what = if job.rules.is_some() {
                "rules"
            } else {
                "only/except"
            };
            Ok((verdict(false, format!("{what}: {why}")), None))
        }
        Decision::In {
            when,
            allow_failure,
            variables,
            needs,
            why,
        } => {
            let verdict = verdict(true, why);
            if job.rules.is_some() {
                apply_rule(&mut spec, job, when, allow_failure, variables);
            }
            // GitLab: the matching rule's needs replace the job's
            if let Some(needs) = needs {
                spec.needs = Some(needs);
            }
            Ok((verdict, Some(spec)))
        }
    }
}

/// A job's own `when:`, as its `rules:` see it (the `when` of a rule that sets none).
fn rule_when(job: &JobSpec) -> RuleWhen {
    match job.when {
        When::OnSuccess if job.delayed => RuleWhen::Delayed,
        When::OnSuccess => RuleWhen::OnSuccess,
        When::Manual => RuleWhen::Manual,
        When::Always => RuleWhen::Always,
        When::OnFailure => RuleWhen::OnFailure,
    }
}

/// What the matching rule of `job`'s `rules:` makes of it in `spec`: its `when`, its
/// `allow_failure` and its variables.
fn apply_rule(
    spec: &mut JobSpec,
    job: &JobSpec,
    when: RuleWhen,
    allow_failure: Option<AllowFailure>,
    variables: Vec<Variable>,
) {
    spec.when = match when {
        RuleWhen::Manual => When::Manual,
        RuleWhen::Always => When::Always,
        RuleWhen::OnFailure => When::OnFailure,
        _ => When::OnSuccess,
    };
    // GitLab: a rule's manual job blocks the pipeline unless it says otherwise
    spec.allow_failure = match allow_failure {
        Some(a) => a,
        None if when == RuleWhen::Manual && job.when != When::Manual => AllowFailure::No,
        None => job.allow_failure.clone(),
    };
    spec.variables.extend(variables);
}
