//! The example project (`example/`) through `pogo exec` on real podman: the pipeline
//! `make example` runs, checked from what a user sees (job logs and the summary).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A copy of `example/` committed to a fresh git repository, run with its own
/// `pogo.yaml` as `example/run.sh` runs it.
struct Example {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    config: PathBuf,
    /// pogo's working and cache directories go below it (POGO_WORKING_DIR, POGO_CACHE_DIR).
    state: PathBuf,
    /// Run `pogo exec` as this user (rootless podman), with this copy of pogo.
    run_as: Option<(RootlessUser, PathBuf)>,
}

impl Example {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("example");
        // A name no other run uses: it is in the containers' project label.
        let project = tmp.path().join(format!("example-{}", unique_id()));
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&source)
            .arg(&project)
            .status()
            .unwrap();
        assert!(ok.success());
        let _ = std::fs::remove_dir_all(project.join(".pogo"));
        git(&project, &["init", "-q", "-b", "main"]);
        git(&project, &["add", "-A"]);
        git(&project, &["commit", "-q", "-m", "The example project"]);

        // example/pogo.yaml as it is (its mount is relative to it); pogo's state in the
        // temp dir, as example/run.sh puts it in POGO_EXAMPLE_STATE
        let state = tmp.path().join("state");
        let config = project.join("pogo.yaml");
        Example {
            _tmp: tmp,
            project,
            config,
            state,
            run_as: None,
        }
    }

    /// Hands everything to `user`, who runs `pogo exec` from now on (like a developer
    /// with rootless podman).
    fn hand_to(&mut self, user: RootlessUser) {
        let bin = self._tmp.path().join("pogo");
        std::fs::copy(env!("CARGO_BIN_EXE_pogo"), &bin).unwrap();
        let ok = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(self._tmp.path())
            .status()
            .unwrap();
        assert!(ok.success());
        self.run_as = Some((user, bin));
    }

    /// `pogo --config CONFIG exec --dir PROJECT ARGS...`: exit code, stdout, stderr.
    fn exec(&self, args: &[&str]) -> (i32, String, String) {
        let state = [
            ("POGO_WORKING_DIR", self.state.join("work")),
            ("POGO_CACHE_DIR", self.state.join("cache")),
        ];
        let mut cmd = match &self.run_as {
            None => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_pogo"));
                c.envs(state.iter().map(|(k, v)| (k, v)));
                c
            }
            Some((user, bin)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &user.user, "--", "env", "-i"]);
                c.args(user.env().iter().map(|(k, v)| format!("{k}={v}")));
                c.args(state.iter().map(|(k, v)| format!("{k}={}", v.display())));
                c.arg(bin);
                c.current_dir("/");
                c
            }
        };
        let out = cmd
            .arg("--config")
            .arg(&self.config)
            .arg("exec")
            .arg("--dir")
            .arg(&self.project)
            .args(args)
            .env_remove("POGO_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn label(&self) -> String {
        let name = self.project.file_name().unwrap().to_string_lossy();
        format!("io.pogo.project=local/{name}")
    }
}

/// The summary's `(job, status)` of the example's jobs that run by themselves, when the
/// pipeline passes.
const AUTOMATIC_JOBS_PASSED: [(&str, &str); 6] = [
    ("build", "passed"),
    ("test-cache", "passed"),
    ("test-artifact", "passed"),
    ("test-web", "passed"),
    ("test-fixtures", "passed"),
    ("flaky-check", "allowed to fail (exit 3)"),
];

/// Each job's row in the summary of `out` shows its status.
fn assert_summary_statuses(out: &str, expected: &[(&str, &str)]) {
    for (job, status) in expected {
        assert_eq!(summary_row(out, job).0, *status, "{job}:\n{out}");
    }
}

/// One job's line in the summary: (status, notes line or "").
fn summary_row(out: &str, job: &str) -> (String, String) {
    let summary = &out[out.rfind("\nJOB ").expect("a summary") + 1..];
    let lines: Vec<&str> = summary.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.split("  ").next() == Some(job))
        .unwrap_or_else(|| panic!("no summary row for {job}:\n{summary}"));
    let cells: Vec<&str> = lines[i]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    // The row, its phase times, then (if any) its notes.
    let notes = lines
        .get(i + 2)
        .filter(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    (cells[2].to_string(), notes)
}

#[test]
fn example_pipeline_passes_with_its_cache_artifact_service_and_allowed_failure() {
    require_podman!();
    let ex = Example::new();
    let sha = git(&ex.project, &["rev-parse", "--short=8", "HEAD"]);
    // An uncommitted change: without --dirty the jobs get the committed HEAD.
    std::fs::write(ex.project.join("VERSION"), "9.9.9-uncommitted\n").unwrap();

    let (code, out, err) = ex.exec(&["-j", "3"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("ignored locally"), "{err}");
    assert!(
        out.contains(&format!(
            "pogo exec: sources: committed HEAD {sha} (main) of "
        )),
        "{out}"
    );
    assert!(out.contains("1 uncommitted change(s)"), "{out}");
    assert!(out.ends_with("Pipeline passed.\n"), "{out}");

    assert_summary_statuses(&out, &AUTOMATIC_JOBS_PASSED);
    assert_summary_statuses(&out, &[("deploy", "manual")]);

    // build: sources of HEAD, cache filled, artifact saved.
    assert!(
        out.contains(&format!("app 1.0.0 built by build from commit {sha}")),
        "{out}"
    );
    let (_, notes) = summary_row(&out, "build");
    assert!(
        notes.starts_with("cache 'deps': miss, saved; artifacts saved ("),
        "{notes}"
    );

    // test-cache: the second job restores the cache the first one saved.
    let (_, notes) = summary_row(&out, "test-cache");
    assert!(notes.contains("cache 'deps': hit"), "{notes}");
    assert!(out.contains("deps: restored from the cache (lib 2.3 fetched by build)"));
    assert!(
        out.contains("cached dependency - lib 2.3 fetched by build"),
        "{out}"
    );

    // test-artifact: the consumer sees what build wrote; its after_script runs.
    let (_, notes) = summary_row(&out, "test-artifact");
    assert_eq!(notes, "artifacts of build");
    assert!(
        out.contains(&format!(
            "artifact says - app 1.0.0 built by build from commit {sha}"
        )),
        "{out}"
    );
    assert!(
        out.contains("after_script ran for test-artifact with CI_JOB_STATUS=success"),
        "{out}"
    );

    // test-web: the service answered by its alias and on localhost.
    assert!(out.contains("web answered 'pogo-service-ok'"), "{out}");
    assert!(out.contains("localhost answered too"), "{out}");

    // flaky-check: failed with an allowed exit code; after_script saw the failure.
    assert!(
        out.contains("after_script runs anyway, with CI_JOB_STATUS=failed"),
        "{out}"
    );

    // Jobs of one stage ran side by side (-j 3): their lines carry the job name.
    assert!(out.contains("[test-web     ] web answered"), "{out}");

    // .pogo/ keeps cache and artifacts, git-ignored.
    let store = ex.project.join(".pogo");
    assert!(store.join("cache/deps/cache.tgz").is_file());
    assert!(store.join("artifacts/build/artifacts.tgz").is_file());
    assert_eq!(
        git(&ex.project, &["status", "--porcelain"]),
        "M VERSION",
        "only the edit shows, not .pogo/"
    );

    // A later run of one job uses the cache and artifacts this run left.
    let (code, out, err) = ex.exec(&["test-cache"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let (_, notes) = summary_row(&out, "test-cache");
    assert_eq!(
        notes,
        "artifacts of build (from an earlier run); cache 'deps': hit"
    );

    // --clean removes them; with --dirty the jobs get the uncommitted change.
    let (code, out, _) = ex.exec(&["--clean"]);
    assert_eq!(code, 0, "{out}");
    assert!(!store.exists());
    let (code, out, err) = ex.exec(&["--dirty", "build"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("app 9.9.9-uncommitted built by build"),
        "{out}"
    );
    assert!(out.contains("deps: fetched"), "{out}");
    let (_, notes) = summary_row(&out, "build");
    assert!(notes.starts_with("cache 'deps': miss, saved"), "{notes}");

    PodmanCmd::default().assert_nothing_labelled(&ex.label());
}

#[test]
fn example_pipeline_passes_as_an_unprivileged_user_with_rootless_podman() {
    require_podman!();
    let Some(user) = rootless_user(true) else {
        return;
    };
    let podman = user.podman();
    let mut ex = Example::new();
    ex.hand_to(user);
    let (code, out, err) = ex.exec(&["-j", "2"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_summary_statuses(&out, &AUTOMATIC_JOBS_PASSED);
    assert!(summary_row(&out, "test-cache")
        .1
        .contains("cache 'deps': hit"));
    assert!(
        out.contains("artifact says - app 1.0.0 built by build"),
        "{out}"
    );
    // What the jobs left in .pogo/ belongs to the user, so --clean can remove it.
    let (code, out, err) = ex.exec(&["--clean"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!ex.project.join(".pogo").exists());
    podman.assert_nothing_labelled(&ex.label());
}

#[test]
fn a_failing_job_fails_the_pipeline_and_skips_later_stages() {
    require_podman!();
    let ex = Example::new();
    // flaky-check now exits 4, which its `allow_failure: exit_codes: [3]` does not cover.
    let ci = std::fs::read_to_string(ex.project.join(".gitlab-ci.yml")).unwrap();
    std::fs::write(
        ex.project.join(".gitlab-ci.yml"),
        ci.replace("    - exit 3\n", "    - exit 4\n"),
    )
    .unwrap();
    let (code, out, err) = ex.exec(&["--dirty", "build", "flaky-check", "deploy"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(summary_row(&out, "build").0, "passed");
    assert_eq!(summary_row(&out, "flaky-check").0, "failed (exit 4)");
    assert_eq!(summary_row(&out, "deploy").0, "skipped", "{out}");
    assert!(out.ends_with("Pipeline failed: flaky-check.\n"), "{out}");
    PodmanCmd::default().assert_nothing_labelled(&ex.label());
}

/// `rules: needs`: the matching rule's needs replace the job's, so the job gets the
/// artifacts of the jobs that rule names (it was ignored: the job got its own needs' always).
#[test]
fn the_matching_rules_needs_replace_the_jobs_needs() {
    require_podman!();
    let ex = Example::new();
    let ci = format!(
        r#"image: {IMG_BASH}
stages: [build, test]
a: {{stage: build, script: ["echo from-a > a.txt"], artifacts: {{paths: [a.txt]}}}}
b: {{stage: build, script: ["echo from-b > b.txt"], artifacts: {{paths: [b.txt]}}}}
use:
  stage: test
  needs: [a]
  script: ['echo "sees:" $(cat *.txt)']
  rules:
    - if: $WHICH == "b"
      needs: [b]
    - when: on_success
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nsees: from-a\n"), "{out}");
    let (code, out, err) = ex.exec(&["--dirty", "--var", "WHICH=b"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nsees: from-b\n"), "{out}");
    assert!(!err.contains("ignored locally: rules: needs"), "{err}");
}

/// `rules:` (and `only`/`except`, `workflow: rules`) were "ignored locally": every job ran,
/// the deploy job GitLab runs only on the default branch and jobs whose rules say `when:
/// never` included. pogo exec now runs exactly GitLab's job set for a push of the checked-out
/// branch or tag, and refuses to run a job GitLab would not.
#[test]
fn rules_decide_which_jobs_run_for_a_branch_the_default_branch_and_a_tag() {
    require_podman!();
    let ex = Example::new();
    let ci = format!(
        r#"
image: {IMG_BASH}
stages: [build, deploy]
workflow:
  rules:
    - if: $CI_COMMIT_MESSAGE =~ /skip-pipeline/
      when: never
    - when: always
build:
  stage: build
  script: ["echo built-for-$RULE_VAR"]
  rules:
    - if: $CI_COMMIT_TAG
      variables: {{RULE_VAR: tag}}
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
      variables: {{RULE_VAR: default}}
    - if: $CI_COMMIT_BRANCH
      variables: {{RULE_VAR: branch}}
deploy:
  stage: deploy
  script: [echo deployed]
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
never:
  stage: build
  script: [echo never-runs]
  rules:
    - when: never
docs:
  stage: build
  script: [echo docs-job]
  rules:
    - exists: [docs/*.md]
release-notes:
  stage: build
  script: [echo release-notes]
  only: [tags]
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    git(&ex.project, &["add", "-A"]);
    git(&ex.project, &["commit", "-q", "-m", "rules"]);
    git(&ex.project, &["checkout", "-q", "-b", "feature"]);

    // a feature branch: build (as a branch), no deploy, no never, no docs (no docs/), no tag job
    let (code, out, err) = ex.exec(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nbuilt-for-branch\n"), "{out}");
    for job in ["deploy", "never", "docs", "release-notes"] {
        assert!(
            out.contains(&format!("--- {job}: not in this pipeline (")),
            "{job}: {out}"
        );
    }
    assert!(
        out.contains("--- never: not in this pipeline (rules: rule 0 says when: never)"),
        "{out}"
    );
    assert!(
        !out.contains("\ndeployed\n") && !out.contains("\nnever-runs\n"),
        "{out}"
    );
    // naming a job GitLab would not run does not run it either
    let (code, out2, err) = ex.exec(&["deploy"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("job 'deploy' is not in GitLab's pipeline for a push to branch feature (rules: no rule matched)"),
        "{out2}{err}"
    );

    // the default branch: deploy too; a docs/ file makes docs run
    git(&ex.project, &["checkout", "-q", "main"]);
    std::fs::create_dir_all(ex.project.join("docs")).unwrap();
    std::fs::write(ex.project.join("docs/index.md"), "# docs\n").unwrap();
    git(&ex.project, &["add", "-A"]);
    git(&ex.project, &["commit", "-q", "-m", "docs"]);
    let (code, out, err) = ex.exec(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nbuilt-for-default\n"), "{out}");
    assert!(out.contains("\ndeployed\n"), "{out}");
    assert!(out.contains("\ndocs-job\n"), "{out}");

    // a tag: the tag's build and the tags-only job, no deploy
    git(&ex.project, &["tag", "v1.0"]);
    git(&ex.project, &["checkout", "-q", "v1.0"]);
    let (code, out, err) = ex.exec(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nbuilt-for-tag\n"), "{out}");
    assert!(out.contains("\nrelease-notes\n"), "{out}");
    assert!(!out.contains("\ndeployed\n"), "{out}");

    // workflow: rules can stop the whole pipeline
    git(&ex.project, &["checkout", "-q", "main"]);
    git(
        &ex.project,
        &["commit", "-q", "--allow-empty", "-m", "wip skip-pipeline"],
    );
    let (code, out, err) = ex.exec(&[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("GitLab would not create a pipeline for a push to branch main: workflow: rules: rule 0 (if: $CI_COMMIT_MESSAGE =~ /skip-pipeline/) says when: never"),
        "{err}"
    );
}

#[test]
fn exec_list_shows_gitlabs_job_set_for_a_branch_the_default_branch_a_tag_a_merge_request_and_a_schedule(
) {
    // --list runs nothing: no podman needed
    let ex = Example::new();
    let ci = r#"
stages: [build, deploy]
build:
  stage: build
  script: [x]
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_COMMIT_BRANCH
deploy:
  stage: deploy
  script: [x]
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
release:
  stage: deploy
  script: [x]
  rules:
    - if: $CI_COMMIT_TAG
      when: manual
nightly: {stage: build, script: [x], only: [schedules]}
plain: {stage: build, script: [x]}
mr-only: {stage: build, script: [x], only: [merge_requests]}
"#;
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    git(&ex.project, &["add", "-A"]);
    git(&ex.project, &["commit", "-q", "-m", "rules"]);
    git(&ex.project, &["checkout", "-q", "-b", "feature"]);

    // the jobs in GitLab's pipeline, from the table's "runs" column ("not in pipeline": out)
    let listed = |args: &[&str]| -> (String, Vec<(String, String)>) {
        let mut all = vec!["--list"];
        all.extend_from_slice(args);
        let (code, out, err) = ex.exec(&all);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(
            !out.contains("pogo exec: sources"),
            "--list runs nothing: {out}"
        );
        let jobs = out
            .lines()
            .skip(2)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split("  ").filter(|c| !c.trim().is_empty()).collect();
                (cols.len() >= 4 && cols[2].trim() != "not in pipeline")
                    .then(|| (cols[0].trim().to_string(), cols[2].trim().to_string()))
            })
            .collect();
        (out, jobs)
    };
    let names = |jobs: &[(String, String)]| -> Vec<String> {
        jobs.iter().map(|(j, _)| j.clone()).collect()
    };

    let (out, jobs) = listed(&[]);
    assert!(
        out.starts_with("GitLab's pipeline for a push to branch feature:\n"),
        "{out}"
    );
    assert_eq!(names(&jobs), ["build", "plain"], "{out}");
    assert!(
        out.contains("rule 1 (if: $CI_COMMIT_BRANCH) matched"),
        "{out}"
    );
    assert!(out.contains("rules: no rule matched"), "{out}");
    assert!(
        out.contains("no rules: GitLab's default (branches and tags)"),
        "{out}"
    );

    let (out, jobs) = listed(&["--branch", "main"]);
    assert_eq!(names(&jobs), ["build", "plain", "deploy"], "{out}");

    let (out, jobs) = listed(&["--tag", "v1.0"]);
    assert!(
        out.starts_with("GitLab's pipeline for tag v1.0:\n"),
        "{out}"
    );
    assert_eq!(names(&jobs), ["plain", "release"], "{out}");
    assert_eq!(jobs[1].1, "manual", "{out}");

    let (out, jobs) = listed(&["--source", "merge_request_event"]);
    assert!(
        out.starts_with("GitLab's pipeline for a merge request from branch feature"),
        "{out}"
    );
    assert_eq!(names(&jobs), ["build", "mr-only"], "{out}");

    let (out, jobs) = listed(&["--source", "schedule", "--branch", "main"]);
    assert_eq!(
        names(&jobs),
        ["build", "nightly", "plain", "deploy"],
        "{out}"
    );

    let (code, out, err) = ex.exec(&["--list", "--source", "nightly"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("--source nightly: GitLab has no such pipeline source"),
        "{err}"
    );
    let (code, out, err) = ex.exec(&["--list", "--tag", "v1", "--source", "merge_request_event"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("a tag has no merge request"), "{err}");
}

#[test]
fn a_pipeline_that_runs_nothing_has_not_passed_and_an_include_pogo_cannot_read_is_refused() {
    let ex = Example::new();
    std::fs::write(
        ex.project.join(".gitlab-ci.yml"),
        "deploy: {script: [x], when: manual}\n",
    )
    .unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("Nothing ran: every job is manual or was skipped"),
        "{out}"
    );
    assert!(!out.contains("Pipeline passed"), "{out}");

    std::fs::write(
        ex.project.join(".gitlab-ci.yml"),
        "include:\n  - component: gitlab.com/acme/components/lint@1.0\nj: {script: [x]}\n",
    )
    .unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(
            "component: 'gitlab.com/acme/components/lint@1.0': pogo exec reads another \
             project's files from a clone you name: pass --project-dir acme/components=PATH"
        ),
        "{err}"
    );
    assert!(err.contains("local: ci/FILE.yml"), "{err}");
    assert!(!out.contains("Pipeline passed"), "{out}");
}

#[test]
fn reference_tags_bring_another_jobs_script_and_rules_into_a_job() {
    require_podman!();
    let ex = Example::new();
    let ci = format!(
        r#"
image: {IMG_BASH}
.setup:
  script: [echo setup-from-reference]
  rules:
    - if: $SKIP_ALL
      when: never
job:
  script:
    - !reference [.setup, script]
    - echo job-itself
  rules:
    - !reference [.setup, rules]
    - when: on_success
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nsetup-from-reference\n"), "{out}");
    assert!(out.contains("\njob-itself\n"), "{out}");
    // the referenced rule decides too
    let (code, out, err) = ex.exec(&["--dirty", "--var", "SKIP_ALL=1"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(!out.contains("job-itself"), "{out}");
}

#[test]
fn parallel_and_matrix_jobs_run_once_per_instance_with_their_variables() {
    require_podman!();
    let ex = Example::new();
    let ci = format!(
        r#"
image: {IMG_BASH}
stages: [build, test]
shard:
  stage: build
  script: ["echo shard-$CI_NODE_INDEX-of-$CI_NODE_TOTAL"]
  parallel: 2
deploy:
  stage: test
  script: ["echo deploy-$PROVIDER-$STACK-$CI_NODE_INDEX"]
  parallel:
    matrix:
      - PROVIDER: aws
        STACK: [app, db]
  needs: [shard]
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty", "-j", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "shard-1-of-2",
        "shard-2-of-2",
        "deploy-aws-app-1",
        "deploy-aws-db-2",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert_summary_statuses(
        &out,
        &[
            ("shard 1/2", "passed"),
            ("shard 2/2", "passed"),
            ("deploy: [aws, app]", "passed"),
            ("deploy: [aws, db]", "passed"),
        ],
    );
    // a single instance can be run by its GitLab name
    let (code, out, err) = ex.exec(&["--dirty", "deploy: [aws, db]"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deploy-aws-db-2"), "{out}");
    assert!(!out.contains("deploy-aws-app-1"), "{out}");
}

#[test]
fn spec_inputs_reach_the_jobs_from_the_command_line_and_from_an_include() {
    require_podman!();
    let ex = Example::new();
    std::fs::create_dir_all(ex.project.join("ci")).unwrap();
    std::fs::write(
        ex.project.join("ci/greet.yml"),
        r#"spec:
  inputs:
    who:
    times: {type: number, default: 1}
---
"greet-$[[ inputs.who ]]":
  script:
    - echo "hello $[[ inputs.who ]] x$[[ inputs.times ]]"
"#,
    )
    .unwrap();
    let ci = format!(
        r#"spec:
  inputs:
    flavour:
      default: plain
      options: [plain, spicy]
---
image: {IMG_BASH}
include:
  - local: ci/greet.yml
    inputs: {{who: world, times: 2}}
main:
  script: ["echo flavour-$[[ inputs.flavour ]]"]
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty", "--input", "flavour=spicy"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nflavour-spicy\n"), "{out}");
    assert!(out.contains("\nhello world x2\n"), "{out}");
    assert!(out.contains("greet-world"), "{out}");

    // an input the spec does not allow: nothing runs, and the message says why
    let (code, out, err) = ex.exec(&["--dirty", "--input", "flavour=sweet"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("`flavour` input: `sweet` cannot be used because it is not in the list of allowed options"),
        "{err}"
    );
}

#[test]
fn include_wildcards_and_include_rules_bring_in_the_files_gitlab_would() {
    require_podman!();
    let ex = Example::new();
    std::fs::create_dir_all(ex.project.join("ci/jobs")).unwrap();
    for (file, job) in [("ci/jobs/lint.yml", "lint"), ("ci/jobs/unit.yml", "unit")] {
        std::fs::write(
            ex.project.join(file),
            format!("{job}:\n  script: [\"echo from-{job}\"]\n"),
        )
        .unwrap();
    }
    std::fs::write(
        ex.project.join("ci/release.yml"),
        "release:\n  script: [\"echo from-release\"]\n",
    )
    .unwrap();
    let ci = format!(
        r#"image: {IMG_BASH}
include:
  - local: ci/jobs/*.yml
  - local: ci/release.yml
    rules:
      - if: $RELEASE == "yes"
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nfrom-lint\n"), "{out}");
    assert!(out.contains("\nfrom-unit\n"), "{out}");
    assert!(!out.contains("from-release"), "{out}");
    let (code, out, err) = ex.exec(&["--dirty", "--var", "RELEASE=yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nfrom-release\n"), "{out}");
}

#[test]
fn a_dotenv_report_reaches_the_jobs_that_need_it_and_excluded_artifacts_stay_behind() {
    require_podman!();
    let ex = Example::new();
    let ci = format!(
        r#"image: {IMG_BASH}
stages: [build, test]
build:
  stage: build
  script:
    - mkdir -p out/obj
    - for i in $(seq 1 300); do echo $i > out/file-$i.txt; done
    - echo binary > out/obj/main.o
    - echo "VERSION=1.2.$CI_PIPELINE_IID" > build.env
    - echo "FROM_BUILD=yes" >> build.env
  artifacts:
    paths: [out/]
    exclude: ["out/**/*.o"]
    reports:
      dotenv: build.env
check:
  stage: test
  needs: [build]
  variables:
    FROM_BUILD: "no, the file's"
  script:
    - echo "version=$VERSION from_build=$FROM_BUILD"
    - ls out | wc -l
    - test ! -e out/obj/main.o && echo "no object file"
bad-report:
  stage: build
  script: ["printf 'A=1\\n\\nB=2\\n' > bad.env"]
  artifacts:
    reports:
      dotenv: bad.env
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert!(out.contains("out/**/*.o: excluded 1 files"), "{out}{err}");
    assert!(out.contains("\nversion=1.2."), "{out}");
    // the report wins over the job's own variables
    assert!(out.contains(" from_build=yes\n"), "{out}");
    assert!(out.contains("\n301\n"), "the 300 files and obj/: {out}");
    assert!(out.contains("\nno object file\n"), "{out}");
    // a report GitLab refuses fails its job, as the upload would
    assert!(
        out.contains("GitLab refuses its dotenv report (Invalid Format)"),
        "{out}"
    );
    assert_eq!(code, 1, "{out}{err}");
}

#[test]
fn a_cache_keyed_by_files_is_reused_until_the_files_change() {
    require_podman!();
    let ex = Example::new();
    std::fs::write(ex.project.join("deps.lock"), "left-pad 1.0\n").unwrap();
    let ci = format!(
        r#"image: {IMG_BASH}
deps:
  script:
    - test -f .deps/installed && echo "deps from cache" || echo "installing deps"
    - mkdir -p .deps && touch .deps/installed
  cache:
    key:
      files: [deps.lock]
      prefix: lock
    paths: [.deps/]
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\ninstalling deps\n"), "{out}");
    let key = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("cache '")
                .and_then(|r| r.split('\'').next())
        })
        .expect("a cache note")
        .to_string();
    assert!(key.starts_with("lock-") && key.len() == 45, "{key}");
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\ndeps from cache\n"), "{out}");
    // another lock file, another cache
    std::fs::write(ex.project.join("deps.lock"), "left-pad 2.0\n").unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\ninstalling deps\n"), "{out}");
    assert!(!out.contains(&format!("cache '{key}'")), "{out}");
}

#[test]
fn inherit_keeps_defaults_and_global_variables_from_the_jobs_that_opt_out() {
    require_podman!();
    let ex = Example::new();
    let ci = format!(
        r#"image: {IMG_BASH}
variables: {{GREETING: hello, NAME: world}}
default:
  before_script: ["echo from-default"]
everything:
  script: ['echo "everything: $GREETING $NAME"']
own:
  inherit: {{default: false, variables: [NAME]}}
  script: ['echo "own: [$GREETING] $NAME"']
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\neverything: hello world\n"), "{out}");
    assert!(out.contains("\nown: [] world\n"), "{out}");
    assert_eq!(out.matches("\nfrom-default\n").count(), 1, "{out}");
}

#[test]
fn a_clone_of_a_gitlab_project_gets_its_project_path_and_directory() {
    require_podman!();
    let ex = Example::new();
    git(
        &ex.project,
        &[
            "remote",
            "add",
            "origin",
            "git@gitlab.example.com:team/sub/app.git",
        ],
    );
    let ci = format!(
        r#"image: {IMG_BASH}
where:
  script: ['echo "$CI_PROJECT_PATH $CI_PROJECT_NAMESPACE $CI_PROJECT_NAME $CI_PROJECT_DIR"']
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\nteam/sub/app team/sub app /builds/team/sub/app\n"),
        "{out}"
    );
}

#[test]
fn a_trigger_job_runs_its_child_pipeline_and_depend_takes_its_result() {
    require_podman!();
    let ex = Example::new();
    std::fs::create_dir_all(ex.project.join("ci")).unwrap();
    std::fs::write(
        ex.project.join("ci/child.yml"),
        format!(
            r#"spec:
  inputs:
    who: {{default: nobody}}
---
image: {IMG_BASH}
child-job:
  script: ['echo "child says $FROM_PARENT to $[[ inputs.who ]] from $CI_PIPELINE_SOURCE"', 'echo "child-job-id=$CI_JOB_ID"']
  rules:
    - if: $CI_PIPELINE_SOURCE == "parent_pipeline"
child-fails:
  script: ["exit $CHILD_EXIT"]
"#
        ),
    )
    .unwrap();
    let ci = format!(
        r#"image: {IMG_BASH}
stages: [build, downstream]
build:
  stage: build
  script: ["echo parent-build"]
kick:
  stage: downstream
  variables: {{FROM_PARENT: hello}}
  trigger:
    include:
      - local: ci/child.yml
        inputs: {{who: world}}
    strategy: depend
"#
    );
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci).unwrap();
    let (code, out, err) = ex.exec(&["--dirty", "--var", "CHILD_EXIT=0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\nchild says hello to world from parent_pipeline\n"),
        "{out}"
    );
    // the child's second job is not the parent's second job (kick, id 2): a job id of its
    // own (kick's id × 1000 on), so its containers, names and removal are its own
    assert!(out.contains("\nchild-job-id=2002\n"), "{out}");
    // strategy: depend: the child's failure is the trigger job's
    let (code, out, err) = ex.exec(&["--dirty", "--var", "CHILD_EXIT=3"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("child pipeline: 2 job(s) ran, failed: child-fails"),
        "{out}"
    );

    // another project's pipeline cannot run here: refused before anything runs
    std::fs::write(
        ex.project.join(".gitlab-ci.yml"),
        format!(
            "image: {IMG_BASH}\nj: {{script: [echo j]}}\nother: {{trigger: group/other-project}}\n"
        ),
    )
    .unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("job 'other': it triggers a pipeline of project group/other-project, which pogo exec cannot run locally"),
        "{err}"
    );
    assert!(!out.contains("\nj\n"), "{out}");
}

/// A dynamic child pipeline: a job writes the child's file, keeps it as an artifact, and the
/// trigger job runs the pipeline in it (whose own `include: local` is a file of the project);
/// a file the job did not keep fails the trigger job as on GitLab, and the pipeline goes on
/// as after any failed job.
#[test]
fn a_trigger_job_runs_the_child_pipeline_an_earlier_job_generated() {
    require_podman!();
    let ex = Example::new();
    std::fs::create_dir_all(ex.project.join("ci")).unwrap();
    std::fs::write(
        ex.project.join("ci/common.yml"),
        "variables: {FROM_COMMON: common-file}\n",
    )
    .unwrap();
    let ci = |artifact: &str| {
        format!(
            r#"image: {IMG_BASH}
stages: [generate, downstream, after]
gen:
  stage: generate
  script:
    - |
      mkdir -p out
      for s in a b; do
        echo "made-$s: {{image: {IMG_BASH}, script: ['echo generated job $s sees \$FROM_COMMON']}}"
      done > out/child.yml
      echo 'include: [{{local: ci/common.yml}}]' >> out/child.yml
  artifacts: {{paths: [out/]}}
kick:
  stage: downstream
  needs: [gen]
  trigger:
    include:
      - artifact: {artifact}
        job: gen
    strategy: depend
after:
  stage: after
  script: ["echo after-ran"]
"#
        )
    };
    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci("out/child.yml")).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    for s in ["a", "b"] {
        assert!(
            out.contains(&format!("\ngenerated job {s} sees common-file\n")),
            "{out}"
        );
    }
    assert!(out.contains("child pipeline: 2 job(s) ran"), "{out}");
    assert!(out.contains("\nafter-ran\n"), "{out}");

    std::fs::write(ex.project.join(".gitlab-ci.yml"), ci("out/missing.yml")).unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ERROR: pogo: the child pipeline cannot be created: the child pipeline of kick: artifact `out/missing.yml` is not in the artifacts of job `gen`"),
        "{out}"
    );
    assert!(!out.contains("after-ran"), "{out}");
}

/// A child pipeline may name its jobs as the parent does: a child `build` keeps its artifacts
/// apart from the parent's `build`, its own later jobs get its, and the parent's later jobs
/// still get the parent's.
#[test]
fn a_child_pipelines_artifacts_do_not_replace_the_parents_of_the_same_job_name() {
    require_podman!();
    let ex = Example::new();
    std::fs::create_dir_all(ex.project.join("ci")).unwrap();
    std::fs::write(
        ex.project.join("ci/child.yml"),
        format!(
            r#"image: {IMG_BASH}
stages: [build, test]
build:
  stage: build
  script: ["echo child > who.txt"]
  artifacts: {{paths: [who.txt]}}
use:
  stage: test
  script: ['echo "child sees $(cat who.txt)"']
"#
        ),
    )
    .unwrap();
    std::fs::write(
        ex.project.join(".gitlab-ci.yml"),
        format!(
            r#"image: {IMG_BASH}
stages: [build, downstream, after]
build:
  stage: build
  script: ["echo parent > who.txt"]
  artifacts: {{paths: [who.txt]}}
kick:
  stage: downstream
  trigger:
    include: [{{local: ci/child.yml}}]
    strategy: depend
check:
  stage: after
  needs: [build]
  script: ['echo "parent sees $(cat who.txt)"']
"#
        ),
    )
    .unwrap();
    let (code, out, err) = ex.exec(&["--dirty"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nchild sees child\n"), "{out}");
    assert!(out.contains("\nparent sees parent\n"), "{out}");
}
