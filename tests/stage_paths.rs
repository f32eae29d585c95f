//! The fast stage path (pogo's agent in the container) and `podman exec` give the same job
//! logs and the same exit codes. (`make test` also runs the whole executor suite on both.)

use crate::common::*;
use pogo::driver::{CancelWhenLogShows, Outcome};

fn config(runner: &str) -> PogoConfig {
    PogoConfig::default().with_extra_yaml(&format!("stage_runner: {runner}\n"))
}

/// The job log without pogo's own lines (they name containers and commands) and without the
/// per-job ids, so two runs of the same job compare equal.
fn comparable(r: &pogo::driver::JobResult, job: &pogo::driver::Job) -> String {
    // stderr and stdout travel in separate pipes on both paths: their relative order is not
    // defined, so stderr's text is compared apart (see STDERR_LINE). It may land in the middle
    // of a stdout line (after `printf 'no newline'`): only the text goes, not the line.
    plain_log(r)
        .replace(&format!("{STDERR_LINE}\n"), "")
        .lines()
        .filter(|l| !l.starts_with("pogo: ") && !l.contains("section_"))
        // the host name is the container's id
        .map(|l| match l.strip_prefix("Running on ") {
            Some(_) => "Running on <container>",
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace(&job.id.to_string(), "<id>")
        .replace(&job.project_path, "<project>")
}

/// What the passing job prints on stderr.
const STDERR_LINE: &str = "to-stderr";

fn both(script: &[&str], after: &[&str], cancel: Option<&str>) -> [(Outcome, String); 2] {
    ["agent", "exec"].map(|runner| {
        // POGO_STAGE_RUNNER in the test's environment would override the file: unset it here
        let mut env = TestEnv::new(&config(runner));
        env.extra_env
            .push(("POGO_STAGE_RUNNER".into(), runner.into()));
        let mut job = env.job(&[], script);
        job.after_script = after.iter().map(|s| s.to_string()).collect();
        let cancel = cancel.map(|text| CancelWhenLogShows(text.into()));
        let r = env.run_with(&env.driver(), &job, cancel);
        env.assert_no_leftovers();
        if script.iter().any(|l| l.contains(STDERR_LINE)) {
            let log = plain_log(&r);
            assert!(log.contains("to-stderr\n"), "{runner}: stderr lost:\n{log}");
        }
        (r.outcome.clone(), comparable(&r, &job))
    })
}

#[test]
fn both_stage_paths_give_the_same_log_and_result_for_a_passing_job() {
    require_podman!();
    let [agent, exec] = both(
        &[
            "echo to-stdout; echo to-stderr >&2",
            "printf 'no newline'",
            "echo; seq 1 2000 | tail -n 1",
            "cat /proc/1/comm; echo \"$HOME $PWD\"",
        ],
        &["echo after"],
        None,
    );
    assert_eq!(agent.0, Outcome::Success, "{}", agent.1);
    assert_eq!(agent, exec);
    assert!(agent.1.contains("\nto-stdout\n"), "{}", agent.1);
}

#[test]
fn both_stage_paths_give_the_same_exit_code_for_a_failing_script() {
    require_podman!();
    let [agent, exec] = both(
        &["echo before", "exit 42"],
        &["echo after=$CI_JOB_STATUS"],
        None,
    );
    assert_eq!(
        agent.0,
        Outcome::BuildFailure { exit_code: 42 },
        "{}",
        agent.1
    );
    assert_eq!(agent, exec);
}

#[test]
fn both_stage_paths_stop_a_canceled_job_and_still_run_after_script() {
    require_podman!();
    let [agent, exec] = both(
        // one line: the log is the same whenever the cancel comes after `started-2`
        &["echo started-$((1+1)); sleep 300", "echo not-reached"],
        &["echo after=$CI_JOB_STATUS"],
        Some("started-2"),
    );
    assert_eq!(agent.0, Outcome::Canceled, "{}", agent.1);
    assert!(agent.1.contains("\nafter=canceled"), "{}", agent.1);
    assert!(!agent.1.contains("not-reached"), "{}", agent.1);
    assert_eq!(agent, exec);
}

#[test]
fn the_fast_path_really_runs_stages_through_the_agent() {
    require_podman!();
    let env = TestEnv::new(&config("agent"));
    let job = env.job(&[], &["echo \"parent=$(cat /proc/$PPID/comm)\""]);
    let r = env.run(&job);
    assert_success(&r);
    // the stage's shell is a child of the agent, not of `podman exec` (whose PPID is 0)
    assert!(plain_log(&r).contains("\nparent=agent\n"), "{}", r.log);
    env.assert_no_leftovers();
}
