//! `pogo exec`: run the jobs of a local `.gitlab-ci.yml` through pogo's real executor path.
//!
//! Each job goes through [`crate::driver`], the library imitation of gitlab-runner: it calls
//! this very `pogo` binary for `config`, `prepare`, `run` and `cleanup` exactly as
//! gitlab-runner would, so a job that passes here takes the same path on a real runner. The
//! job's tags reach `pogo config` through `POGO_JOB_TAGS`, so no GitLab server is involved.
//!
//! This version runs jobs one after another, stage by stage, and does not clone sources
//! (`GIT_STRATEGY=none`): jobs start in an empty `$CI_PROJECT_DIR`.

pub mod pipeline;
pub mod report;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::driver::{Driver, DriverError, Job, Variable};

use pipeline::{JobSpec, ParseError, Pipeline, When};
use report::{Failure, Row, Status};

/// `CI_JOB_TOKEN` of local jobs: nothing accepts it, it only has to be non-empty.
const LOCAL_JOB_TOKEN: &str = "pogo-exec-local-job-token";
/// `CI_API_V4_URL` of local jobs: `.invalid` never resolves, so nothing is sent anywhere.
const LOCAL_API_URL: &str = "https://gitlab.invalid/api/v4";
/// `CI_RUNNER_SHORT_TOKEN` of local jobs (part of the container names).
const LOCAL_RUNNER: &str = "local";
/// Environment variables of the caller that must not reach the phases: they belong to
/// the job the phases are run for (set by `pogo exec` or `pogo config`).
const JOB_SCOPED_ENV: &[&str] = &[
    "POGO_JOB_TAGS",
    "POGO_JOB_KEY",
    "POGO_JOB_CONTAINER",
    "POGO_JOB_POD",
];

const HELP_NOTES: &str = "\
Runs the jobs of DIR/.gitlab-ci.yml stage by stage, one job at a time, through pogo's own
config/prepare/run/cleanup phases (the path gitlab-runner takes), using the pogo config
(--config, $POGO_CONFIG or ~/.pogo.yaml).

Supported: stages, variables, default (image, services, before_script, after_script, tags,
variables), image, services, before_script, script, after_script, tags, stage, when (manual
jobs run only when named), allow_failure, YAML anchors and merge keys. Every other key is
reported as `pogo: ignored locally: KEY`.

Sources are not cloned (GIT_STRATEGY=none): jobs start in an empty $CI_PROJECT_DIR.

Ctrl-C lets the running job finish (cleanup included) and skips the rest; a second Ctrl-C
quits at once.

Exit status: 0 when the pipeline passed, 1 when a job that may not fail failed, 2 when
nothing could run (unreadable .gitlab-ci.yml, unknown job, bad pogo config), 130 when
interrupted.";

/// `pogo exec [JOB ...] [--dir DIR] [--var KEY=VALUE ...] [--tags t1,t2]`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = HELP_NOTES)]
pub struct ExecArgs {
    /// Jobs to run (default: every job except manual ones); named manual jobs run too
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Project directory holding .gitlab-ci.yml
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Set a variable in every job, over .gitlab-ci.yml's (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Extra tags for every job, added to its `tags:` (selects pogo's tag mounts and extra_arguments)
    #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
    pub tags: Vec<String>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    if !pipeline::valid_variable_name(key) {
        return Err(format!(
            "'{key}' is not a valid variable name (use letters, digits and _)"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Why `pogo exec` could not run the pipeline at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "cannot read {path}: {source} (run pogo exec in a project directory or pass --dir DIR)"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{file} has no job '{name}'{}; jobs: {}", suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default(), jobs.join(", "))]
    UnknownJob {
        file: String,
        name: String,
        suggestion: Option<String>,
        jobs: Vec<String>,
    },
    #[error("'{0}' is a hidden job (its name starts with '.'): it is a template and never runs; name a job that uses it")]
    HiddenJob(String),
    #[error("{0}\n(fix the pogo config; `pogo print` shows what pogo reads)")]
    Config(String),
    #[error("cannot find the pogo executable to run the phases with: {0}")]
    CurrentExe(std::io::Error),
    #[error("job '{job}': {source}")]
    Driver { job: String, source: DriverError },
}

/// Entry point of `pogo exec`; `config` is the global `--config` flag. Returns the exit status.
pub fn exec_main(args: ExecArgs, config: Option<&Path>) -> i32 {
    let colour = std::io::stdout().is_terminal();
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_interrupts(Arc::clone(&interrupted));
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    let result = std::env::current_exe()
        .map_err(ExecError::CurrentExe)
        .and_then(|pogo| {
            exec(
                &args,
                config,
                &pogo,
                colour,
                Some(interrupted),
                &mut out,
                &mut err,
            )
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = out.flush();
            let _ = writeln!(err, "pogo: {e}");
            2
        }
    }
}

/// The phases run in their own process groups (as under gitlab-runner), so a Ctrl-C in the
/// terminal reaches only `pogo exec`. The first one sets `flag`: the running job finishes,
/// cleanup included, and no further job starts. The second one quits at once.
fn watch_interrupts(flag: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    // Installed before any job starts; without it Ctrl-C would leave the job's containers.
    let Ok(mut sigint) = rt.block_on(async { signal(SignalKind::interrupt()) }) else {
        return;
    };
    std::thread::spawn(move || {
        rt.block_on(async move {
            while sigint.recv().await.is_some() {
                if flag.swap(true, Ordering::SeqCst) {
                    eprintln!("pogo: interrupted again: quitting; the running job's containers may be left (podman ps -a --filter label=io.pogo.managed-by=pogo)");
                    std::process::exit(130);
                }
                eprintln!("pogo: interrupted: finishing the running job (cleanup included), then stopping; Ctrl-C again quits at once");
            }
        });
    });
}

/// Everything a local job needs to know about the project and this run.
#[derive(Debug, Clone)]
pub struct Project {
    /// `local/<directory name>`.
    pub path: String,
    pub pipeline_id: u64,
    /// Branch (`CI_COMMIT_REF_NAME`), when DIR is in a git repository.
    pub git_ref: Option<String>,
    /// `CI_COMMIT_SHA`, when DIR is in a git repository.
    pub sha: Option<String>,
}

impl Project {
    pub fn discover(dir: &Path) -> Self {
        let name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let pipeline_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        Project {
            path: format!("local/{}", sanitize_project_name(&name)),
            pipeline_id,
            sha: git(dir, &["rev-parse", "HEAD"]),
            git_ref: git(dir, &["rev-parse", "--abbrev-ref", "HEAD"]),
        }
    }
}

/// A GitLab-like project path component: `[A-Za-z0-9_.-]`, other characters become `-`.
pub fn sanitize_project_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c| matches!(c, '-' | '.' | '_'));
    if trimmed.is_empty() {
        "project".to_string()
    } else {
        trimmed.to_string()
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// The environment the phases get, like gitlab-runner's own: the caller's, minus what
/// belongs to one job, with `$POGO_CONFIG` made absolute (the phases run in a temp dir).
fn runner_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| !k.starts_with("CUSTOM_ENV_") && !JOB_SCOPED_ENV.contains(&k.as_str()))
        .map(|(k, v)| {
            if k == "POGO_CONFIG" && !v.is_empty() {
                (k.clone(), absolute(Path::new(v)).display().to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// `pogo exec` with `pogo` as the executable for the phases.
fn exec(
    args: &ExecArgs,
    config: Option<&Path>,
    pogo: &Path,
    colour: bool,
    interrupted: Option<Arc<AtomicBool>>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, ExecError> {
    let file_path = args.dir.join(".gitlab-ci.yml");
    let file = file_path.display().to_string();
    let text = std::fs::read_to_string(&file_path).map_err(|source| ExecError::Read {
        path: file.clone(),
        source,
    })?;
    let pipeline = pipeline::parse(&text, &file)?;
    for key in &pipeline.ignored {
        let _ = writeln!(err, "pogo: ignored locally: {key}");
    }
    let plan = select(&pipeline, &args.jobs, &file)?;

    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let env = runner_env(&env);
    let config = config.map(absolute);
    let env_map: HashMap<String, String> = env.iter().cloned().collect();
    crate::config::load(config.as_deref(), &env_map)
        .map_err(|e| ExecError::Config(e.to_string()))?;

    let mut driver = Driver::new(pogo);
    driver.env = env;
    if let Some(c) = &config {
        driver.pogo_args = vec!["--config".into(), c.display().to_string()];
    }
    driver.runner_short_token = LOCAL_RUNNER.into();
    // Two `pogo exec` runs on one machine must not share container names.
    driver.concurrent_id = std::process::id();

    let local = Local {
        driver,
        project: Project::discover(&args.dir),
        extra_tags: args
            .tags
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        vars: args.vars.clone(),
        colour,
        interrupted,
    };
    let rows = run_pipeline(&plan, &local, out, err)?;
    let _ = writeln!(out);
    let _ = write!(out, "{}", report::summary(&rows));
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.status.is_blocking_failure())
        .map(|r| r.job.as_str())
        .collect();
    let _ = writeln!(
        out,
        "Sources are not cloned yet (GIT_STRATEGY=none): jobs start in an empty $CI_PROJECT_DIR."
    );
    if local.is_interrupted() {
        let _ = writeln!(out, "Pipeline interrupted.");
        Ok(130)
    } else if failed.is_empty() {
        let _ = writeln!(out, "Pipeline passed.");
        Ok(0)
    } else {
        let _ = writeln!(out, "Pipeline failed: {}.", failed.join(", "));
        Ok(1)
    }
}

/// A job chosen to appear in this run.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub spec: &'a JobSpec,
    /// Named on the command line (manual jobs run only then).
    pub named: bool,
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

/// The driver and what every job of this run shares.
pub struct Local {
    /// Configured for this run; `POGO_JOB_TAGS` is added per job.
    pub driver: Driver,
    pub project: Project,
    pub extra_tags: Vec<String>,
    pub vars: Vec<(String, String)>,
    /// Print job logs as they are (colours, section markers) instead of plain text.
    pub colour: bool,
    /// Set on Ctrl-C: start no further job.
    pub interrupted: Option<Arc<AtomicBool>>,
}

impl Local {
    fn is_interrupted(&self) -> bool {
        self.interrupted
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    fn tags(&self, spec: &JobSpec) -> Vec<String> {
        let mut tags = spec.tags.clone();
        for t in &self.extra_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        tags
    }

    fn job(&self, spec: &JobSpec, id: u64) -> Job {
        let p = &self.project;
        let mut job = Job::new(id, LOCAL_JOB_TOKEN, p.path.clone(), LOCAL_API_URL);
        job.name = spec.name.clone();
        job.stage = spec.stage.clone();
        job.pipeline_id = p.pipeline_id;
        job.git_ref = p.git_ref.clone().unwrap_or_default();
        job.sha = p.sha.clone().unwrap_or_default();
        job.variables = spec.variables.clone();
        job.variables.extend(
            self.vars
                .iter()
                .map(|(k, v)| Variable::new(k.clone(), v.clone())),
        );
        job.image = spec.image.clone();
        job.services = spec.services.clone();
        job.before_script = spec.before_script.clone();
        job.script = spec.script.clone();
        job.after_script = spec.after_script.clone();
        job
    }
}

/// Runs the planned jobs stage by stage, printing each log; returns the summary rows.
pub fn run_pipeline(
    plan: &[Planned<'_>],
    local: &Local,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Vec<Row>, ExecError> {
    let mut rows = Vec::with_capacity(plan.len());
    let mut failed_before = false;
    let mut stage_failed = false;
    let mut current_stage: Option<&str> = None;
    for (index, planned) in plan.iter().enumerate() {
        let spec = planned.spec;
        if current_stage != Some(spec.stage.as_str()) {
            failed_before |= stage_failed;
            stage_failed = false;
            current_stage = Some(spec.stage.as_str());
        }
        let not_run = |status: Status| Row {
            job: spec.name.clone(),
            stage: spec.stage.clone(),
            status,
            duration: None,
            phases: Vec::new(),
        };
        if local.is_interrupted() {
            let _ = writeln!(
                out,
                "--- {} (stage {}): skipped (interrupted)",
                spec.name, spec.stage
            );
            rows.push(not_run(Status::Skipped));
            continue;
        }
        if let Err(status) = decide(spec.when, planned.named, failed_before) {
            let why = match status {
                Status::Manual => {
                    format!("manual job, not run (run it with: pogo exec {})", spec.name)
                }
                _ if spec.when == When::OnFailure => {
                    "skipped (when: on_failure, and nothing failed)".to_string()
                }
                _ => "skipped (an earlier stage failed)".to_string(),
            };
            let _ = writeln!(out, "--- {} (stage {}): {why}", spec.name, spec.stage);
            rows.push(not_run(status));
            continue;
        }

        let id = u64::try_from(index + 1).unwrap_or(u64::MAX);
        let tags = local.tags(spec);
        let job = local.job(spec, id);
        let mut driver = local.driver.clone();
        driver.env.push((
            "POGO_JOB_TAGS".to_string(),
            serde_json::to_string(&tags).unwrap_or_else(|_| "[]".to_string()),
        ));
        let tag_note = if tags.is_empty() {
            String::new()
        } else {
            format!(", tags {}", tags.join(","))
        };
        let _ = writeln!(out, "\n==> {} (stage {}{tag_note})", spec.name, spec.stage);
        let _ = out.flush();

        let started = Instant::now();
        let result = driver
            .run_job(&job, None)
            .map_err(|source| ExecError::Driver {
                job: spec.name.clone(),
                source,
            })?;
        let duration = started.elapsed();
        if local.colour {
            let _ = write!(out, "{}", result.log);
        } else {
            let _ = write!(out, "{}", report::plain_log(&result.log));
        }
        let _ = out.flush();
        for w in &result.warnings {
            let _ = writeln!(err, "pogo: {}: runner warning: {w}", spec.name);
        }
        if result
            .warnings
            .iter()
            .any(|w| w.starts_with("cleanup_exec"))
        {
            let _ = writeln!(
                err,
                "pogo: {}: cleanup output:\n{}",
                spec.name,
                result.cleanup_output.trim_end()
            );
        }

        let status = match Failure::from_outcome(&result.outcome) {
            None => Status::Passed,
            Some(f) if f.allowed_by(&spec.allow_failure) => Status::AllowedToFail(f),
            Some(f) => Status::Failed(f),
        };
        let _ = writeln!(
            out,
            "<== {}: {status} in {}",
            spec.name,
            report::format_duration(duration)
        );
        stage_failed |= status.is_blocking_failure();
        rows.push(Row {
            job: spec.name.clone(),
            stage: spec.stage.clone(),
            status,
            duration: Some(duration),
            phases: result.phase_times,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Debug, clap::Subcommand)]
    enum TestCommand {
        /// Run .gitlab-ci.yml jobs locally
        Exec(ExecArgs),
    }

    fn parse_args(args: &[&str]) -> Result<ExecArgs, clap::Error> {
        let mut argv = vec!["pogo", "exec"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv).map(|c| match c.command {
            TestCommand::Exec(a) => a,
        })
    }

    #[test]
    fn command_line() {
        let a = parse_args(&[
            "build", "test", "--dir", "example", "--var", "A=1=2", "--var", "B=", "--tags", "t1,t2",
        ])
        .unwrap();
        assert_eq!(a.jobs, vec!["build", "test"]);
        assert_eq!(a.dir, PathBuf::from("example"));
        assert_eq!(
            a.vars,
            vec![("A".into(), "1=2".into()), ("B".into(), String::new())]
        );
        assert_eq!(a.tags, vec!["t1", "t2"]);
        let a = parse_args(&[]).unwrap();
        assert_eq!(a.dir, PathBuf::from("."));
        let e = parse_args(&["--var", "NOVALUE"]).unwrap_err().to_string();
        assert!(e.contains("'NOVALUE' is not KEY=VALUE"), "{e}");
        let e = parse_args(&["--var", "A-B=1"]).unwrap_err().to_string();
        assert!(e.contains("not a valid variable name"), "{e}");
        let help = TestCli::try_parse_from(["pogo", "exec", "--help"])
            .unwrap_err()
            .to_string();
        assert!(help.contains("GIT_STRATEGY=none"), "{help}");
    }

    #[test]
    fn manual_jobs_are_skipped_unless_named() {
        let p = pipeline::parse(
            "build: {stage: build, script: x}\ndeploy: {stage: deploy, script: x, when: manual}\n.tpl: {script: x}\n",
            "ci.yml",
        )
        .unwrap();
        let all = select(&p, &[], "ci.yml").unwrap();
        assert_eq!(all.len(), 2);
        assert!(!all[1].named);
        assert_eq!(
            decide(all[1].spec.when, all[1].named, false),
            Err(Status::Manual)
        );
        assert_eq!(decide(all[0].spec.when, all[0].named, false), Ok(()));

        let named = select(&p, &["deploy".into()], "ci.yml").unwrap();
        assert_eq!(named.len(), 1);
        assert!(named[0].named);
        assert_eq!(decide(named[0].spec.when, true, false), Ok(()));
        assert_eq!(decide(named[0].spec.when, true, true), Err(Status::Skipped));

        assert_eq!(decide(When::Always, false, true), Ok(()));
        assert_eq!(decide(When::OnFailure, false, false), Err(Status::Skipped));
        assert_eq!(decide(When::OnFailure, false, true), Ok(()));

        let e = select(&p, &["deplyo".into()], "ci.yml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ci.yml has no job 'deplyo' (did you mean 'deploy'?); jobs: build, deploy"
        );
        let e = select(&p, &[".tpl".into()], "ci.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden job"), "{e}");
    }

    /// Everything that stops `pogo exec` before a job runs, with the messages users see.
    #[test]
    fn errors_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let run = |jobs: &[&str], config: Option<&Path>| {
            let args = ExecArgs {
                jobs: jobs.iter().map(|j| j.to_string()).collect(),
                dir: dir.path().to_path_buf(),
                vars: vec![],
                tags: vec![],
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let r = exec(
                &args,
                config,
                Path::new("/nonexistent/pogo"),
                false,
                None,
                &mut out,
                &mut err,
            );
            (
                r.map_err(|e| e.to_string()),
                String::from_utf8(err).unwrap(),
            )
        };
        let (r, _) = run(&[], None);
        let e = r.unwrap_err();
        assert!(e.starts_with("cannot read "), "{e}");
        assert!(e.contains("pass --dir DIR"), "{e}");

        let file = dir.path().join(".gitlab-ci.yml");
        std::fs::write(&file, "job:\n  script: [echo\n").unwrap();
        let e = run(&[], None).0.unwrap_err();
        let prefix = format!("{}:", file.display());
        assert!(e.starts_with(&prefix), "{e}");
        let pos: Vec<&str> = e[prefix.len()..].splitn(3, ':').collect();
        assert!(
            pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(),
            "{e}"
        );

        std::fs::write(&file, "job:\n  script: echo\n  cache: {paths: [x]}\n").unwrap();
        let (r, err) = run(&["jobs"], None);
        assert_eq!(err, "pogo: ignored locally: cache\n");
        let e = r.unwrap_err();
        assert!(e.contains("has no job 'jobs' (did you mean 'job'?)"), "{e}");

        let missing = dir.path().join("missing.yaml");
        let e = run(&[], Some(&missing)).0.unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(e.contains("fix the pogo config"), "{e}");
    }

    /// example/.gitlab-ci.yml uses only what `pogo exec` implements.
    #[test]
    fn the_example_parses_without_ignored_keys() {
        let text = include_str!("../../example/.gitlab-ci.yml");
        let p = pipeline::parse(text, "example/.gitlab-ci.yml").unwrap();
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
        let names: Vec<(&str, &str)> = p
            .jobs
            .iter()
            .map(|j| (j.name.as_str(), j.stage.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("build", "build"),
                ("flaky-check", "test"),
                ("test-fixtures", "test"),
                ("test-web", "test"),
                ("deploy", "deploy"),
            ]
        );
        let web = p.job("test-web").unwrap();
        assert_eq!(web.services[0].alias, "web");
        assert_eq!(p.job("test-fixtures").unwrap().tags, vec!["fixtures"]);
        assert_eq!(p.job("deploy").unwrap().when, When::Manual);
        assert_eq!(
            p.job("flaky-check").unwrap().allow_failure,
            pipeline::AllowFailure::Yes
        );
        for j in &p.jobs {
            assert_eq!(
                j.image.as_ref().map(|i| i.name.as_str()),
                Some("localhost/pogo-test/bash:latest")
            );
        }
    }

    #[test]
    fn project_names() {
        assert_eq!(sanitize_project_name("my project!"), "my-project");
        assert_eq!(sanitize_project_name("..."), "project");
        assert_eq!(sanitize_project_name("pogo_ex.1"), "pogo_ex.1");
    }

    #[test]
    fn runner_env_drops_job_scoped_variables() {
        let env = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("POGO_JOB_KEY".to_string(), "leak".to_string()),
            ("CUSTOM_ENV_CI_JOB_ID".to_string(), "9".to_string()),
            ("POGO_CONFIG".to_string(), "rel/pogo.yaml".to_string()),
        ];
        let out = runner_env(&env);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["PATH", "POGO_CONFIG"]);
        assert!(Path::new(&out[1].1).is_absolute());
        assert!(out[1].1.ends_with("rel/pogo.yaml"));
    }

    #[test]
    fn nothing_starts_after_an_interrupt() {
        let p = pipeline::parse("a: {script: x}\nb: {script: y}\n", "ci.yml").unwrap();
        let plan = select(&p, &[], "ci.yml").unwrap();
        let local = Local {
            driver: Driver::new("/nonexistent/pogo"),
            project: Project {
                path: "local/x".into(),
                pipeline_id: 1,
                git_ref: None,
                sha: None,
            },
            extra_tags: vec![],
            vars: vec![],
            colour: false,
            interrupted: Some(Arc::new(AtomicBool::new(true))),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let rows = run_pipeline(&plan, &local, &mut out, &mut err).unwrap();
        assert!(rows.iter().all(|r| r.status == Status::Skipped));
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("--- a (stage test): skipped (interrupted)"),
            "{out}"
        );
    }

    /// The whole flow against a fake executor: stage order, allow_failure, a failure that
    /// skips later stages, on_failure, manual, tags handed to `config`, predefined variables.
    #[test]
    fn pipeline_flow_with_fake_executor() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        let record = dir.path().join("record");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/bash
echo "$1 ${{3:-}} tags=${{POGO_JOB_TAGS:-unset}} job=$CUSTOM_ENV_CI_JOB_NAME" >> {rec}
case "$1" in
  config) echo '{{"builds_dir":"{b}","cache_dir":"/c","driver":{{"name":"fake","version":"1"}}}}' ;;
  run) bash "$2"; rc=$?; if [ $rc -ne 0 ]; then echo $rc > "$BUILD_EXIT_CODE_FILE"; exit 1; fi ;;
esac
"#,
                rec = record.display(),
                b = dir.path().join("builds").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

        let p = pipeline::parse(
            r#"
stages: [build, test, deploy]
variables: {GREETING: hello}
build:
  stage: build
  tags: [fixtures]
  script:
    - echo "$GREETING from $CI_JOB_NAME/$CI_JOB_STAGE in $CI_PROJECT_PATH pipeline $CI_PIPELINE_ID cli=$FROM_CLI"
lint: {stage: test, script: exit 3, allow_failure: true}
unit: {stage: test, script: exit 4}
zpkg: {stage: test, script: echo pkg-ran}
ship: {stage: deploy, script: echo shipped}
notify: {stage: deploy, script: echo notified, when: on_failure}
release: {stage: deploy, script: echo released, when: manual}
"#,
            "ci.yml",
        )
        .unwrap();
        let plan = select(&p, &[], "ci.yml").unwrap();
        let mut driver = Driver::new(&fake);
        driver.tmp_root = dir.path().to_path_buf();
        let local = Local {
            driver,
            project: Project {
                path: "local/demo".into(),
                pipeline_id: 77,
                git_ref: Some("main".into()),
                sha: None,
            },
            extra_tags: vec!["extra".into()],
            vars: vec![("FROM_CLI".into(), "yes".into())],
            colour: false,
            interrupted: None,
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let rows = run_pipeline(&plan, &local, &mut out, &mut err).unwrap();
        let out = String::from_utf8(out).unwrap();
        let statuses: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.job.clone(), r.status.to_string()))
            .collect();
        let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            statuses,
            expect(&[
                ("build", "passed"),
                ("lint", "allowed to fail (exit 3)"),
                ("unit", "failed (exit 4)"),
                ("zpkg", "passed"),
                ("notify", "passed"),
                ("release", "manual"),
                ("ship", "skipped"),
            ]),
            "{out}"
        );
        assert!(
            out.contains("hello from build/build in local/demo pipeline 77 cli=yes"),
            "{out}"
        );
        assert!(!out.contains("\x1b["), "plain output has no colour codes");
        assert!(
            out.contains("==> build (stage build, tags fixtures,extra)"),
            "{out}"
        );
        assert!(out.contains("--- ship (stage deploy): skipped (an earlier stage failed)"));
        assert!(out.contains("--- release (stage deploy): manual job, not run"));
        assert!(rows[0].phases.iter().any(|(n, _)| n == "build_script"));
        assert!(rows[0].duration.is_some());
        assert!(rows[5].duration.is_none());

        let rec = std::fs::read_to_string(&record).unwrap();
        let config_line = rec.lines().find(|l| l.starts_with("config ")).unwrap();
        assert!(
            config_line.contains(r#"tags=["fixtures","extra"] job=build"#),
            "{config_line}"
        );
        assert!(!rec.contains("job=ship"), "{rec}");
        assert!(!rec.contains("job=release"), "{rec}");
        let summary = report::summary(&rows);
        let unit_line = summary.lines().find(|l| l.starts_with("unit ")).unwrap();
        let cells: Vec<&str> = unit_line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells[..3], ["unit", "test", "failed (exit 4)"], "{summary}");
    }
}
