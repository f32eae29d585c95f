//! Which jobs GitLab's pipeline has, and why: the verdicts `pogo exec --list` shows, the
//! ref the pipeline runs for, and the predefined variables `rules:` see.

use std::collections::HashMap;

use crate::driver::Job;

use super::pipeline::{self, Pipeline, When};
use super::project::{self, Project};
use super::{report, LOCAL_API_URL};

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
