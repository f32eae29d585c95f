//! `pogo exec`: run the jobs of a local `.gitlab-ci.yml` through pogo's real executor path.
//!
//! Each job goes through [`crate::driver`], the library imitation of gitlab-runner: it calls
//! this very `pogo` binary for `config`, `prepare`, `run` and `cleanup` exactly as
//! gitlab-runner would, so a job that passes here takes the same path on a real runner. The
//! job's tags reach `pogo config` through `POGO_JOB_TAGS`, so no GitLab server is involved.
//!
//! What gitlab-runner does with git and its `gitlab-runner` helper (sources, cache,
//! artifacts) is done by the driver's local stages ([`crate::driver::local`]) with `tar`,
//! against the project's `.pogo/` directory, which `prepare` mounts into the job container
//! (`POGO_LOCAL_MOUNTS`, see [`crate::executor::local`]).

mod artifact_include;
mod child;
pub mod compose;
pub mod dotenv;
mod filter;
pub mod inputs;
mod job;
pub mod origin;
pub mod pipeline;
mod plan;
pub mod project;
pub mod reference;
pub mod report;
pub mod rules;
mod schedule;
mod setup;

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::driver::DriverError;

pub use crate::cli::ExecArgs;
pub use filter::{apply_rules, Verdict};
pub use job::Local;
pub use plan::{decide, select, Planned};
pub use schedule::run_pipeline;
pub(crate) use setup::runner_env;

use filter::{list, predefined_variables, pushed_ref};
use pipeline::{ParseError, Pipeline};
use plan::refuse_foreign_triggers;
use project::{Project, Store};
use report::Row;
use setup::{local_setup, phase_driver, run_sources, runner_setup, RemoveOnDrop};

/// `CI_JOB_TOKEN` of local jobs: nothing accepts it, it only has to be non-empty.
const LOCAL_JOB_TOKEN: &str = "pogo-exec-local-job-token";
/// `CI_API_V4_URL` of local jobs: `.invalid` never resolves, so nothing is sent anywhere.
pub(crate) const LOCAL_API_URL: &str = "https://gitlab.invalid/api/v4";
/// Where the job container sees the sources, the cache and the artifacts.
pub const CONTAINER_DIR: &str = "/pogo-exec";

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
    #[error("{0}")]
    Store(String),
    #[error("cannot pack the sources: {0}")]
    Sources(String),
    #[error("--clean runs no job: run `pogo exec --clean`, then `pogo exec {0}`")]
    CleanWithJobs(String),
    #[error("GitLab would not create a pipeline for {0}: {1}; nothing runs")]
    Filtered(String, String),
    #[error("job '{0}' is not in GitLab's pipeline for {1} ({2}): pogo exec never runs a job GitLab would not")]
    NotInPipeline(String, String, String),
    #[error("{0}")]
    Rules(String),
}

/// Where `pogo exec` writes (stdout and stderr, or buffers in tests); the jobs of a stage
/// share it.
pub type Out = Arc<Mutex<dyn Write + Send>>;

/// Writes `text` to `out` at once (whole lines stay whole when jobs run in parallel).
fn say(out: &Out, text: &str) {
    if let Ok(mut w) = out.lock() {
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }
}

/// Entry point of `pogo exec`; `config` is the global `--config` flag. Returns the exit status.
pub fn exec_main(args: ExecArgs, config: Option<&Path>) -> i32 {
    let colour = std::io::stdout().is_terminal();
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_interrupts(Arc::clone(&interrupted));
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let err: Out = Arc::new(Mutex::new(std::io::stderr()));
    let result = std::env::current_exe()
        .map_err(ExecError::CurrentExe)
        .and_then(|pogo| exec(&args, config, &pogo, colour, Some(interrupted), &out, &err));
    match result {
        Ok(code) => code,
        Err(e) => {
            say(&err, &format!("pogo: {e}\n"));
            2
        }
    }
}

/// The phases run in their own process groups (as under gitlab-runner), so a Ctrl-C in the
/// terminal reaches only `pogo exec`. The first one sets `flag`: the running jobs finish,
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
                eprintln!("pogo: interrupted: finishing the running jobs (cleanup included), then stopping; Ctrl-C again quits at once");
            }
        });
    });
}

/// `pogo exec` with `pogo` as the executable for the phases.
fn exec(
    args: &ExecArgs,
    config: Option<&Path>,
    pogo: &Path,
    colour: bool,
    interrupted: Option<Arc<AtomicBool>>,
    out: &Out,
    err: &Out,
) -> Result<i32, ExecError> {
    if args.clean {
        return clean(args, out);
    }
    let file_path = args.dir.join(".gitlab-ci.yml");
    let file = file_path.display().to_string();
    let (project, pipeline) = load(args, &file_path, &file, err)?;
    let (pipeline, verdicts) =
        apply_rules(&pipeline, &project, &args.vars, args.dirty, &origins(args))?;
    if args.list {
        say(out, &list(&pipeline, &verdicts, &pushed_ref(&project)));
        return Ok(0);
    }
    report_left_out(&args.jobs, &verdicts, &project, out)?;
    let plan = select(&pipeline, &args.jobs, &file)?;
    refuse_foreign_triggers(&plan)?;

    let (env, config) = runner_setup(config)?;
    let store = Store::open(&project.dir).map_err(ExecError::Store)?;
    let run_dir = store.run_dir().map_err(ExecError::Store)?;
    let _remove_run_dir = RemoveOnDrop(run_dir.clone());
    let sources = run_sources(&project, &store, args.dirty, &run_dir, out)?;
    let (stages, mounts) = local_setup(&store, &sources)?;
    let driver = phase_driver(pogo, env, config.as_deref(), stages);

    let local = Local {
        driver,
        project,
        artifacts: store.artifacts_dir(),
        store,
        mounts,
        extra_tags: args
            .tags
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        vars: args.vars.clone(),
        colour,
        interrupted,
        parallel: usize::from(args.parallel),
        started: Mutex::new(HashSet::new()),
        dirty: args.dirty,
        id_base: 0,
        origins: origins(args),
    };
    let rows = run_pipeline(&plan, &pipeline, &local, out, err)?;
    let (end, code) = conclusion(&rows, &local);
    say(out, &end);
    Ok(code)
}

/// `pogo exec --clean`: removes the project's `.pogo/` (cache and artifacts); runs no job.
fn clean(args: &ExecArgs, out: &Out) -> Result<i32, ExecError> {
    if !args.jobs.is_empty() {
        return Err(ExecError::CleanWithJobs(args.jobs.join(" ")));
    }
    match project::clean(&args.dir).map_err(ExecError::Store)? {
        Some(root) => say(
            out,
            &format!(
                "pogo exec: removed {} (cache and artifacts)\n",
                root.display()
            ),
        ),
        None => say(
            out,
            &format!(
                "pogo exec: nothing to clean: {} does not exist\n",
                args.dir.join(project::STORE_DIR).display()
            ),
        ),
    }
    Ok(0)
}

/// The project (as `--branch`, `--tag` and `--source` pretend it is) and its pipeline:
/// `file_path` read and parsed with its includes, `--input` and `--var`; the keys ignored
/// locally are said on `err`.
fn load(
    args: &ExecArgs,
    file_path: &Path,
    file: &str,
    err: &Out,
) -> Result<(Project, Pipeline), ExecError> {
    let text = std::fs::read_to_string(file_path).map_err(|source| ExecError::Read {
        path: file.to_string(),
        source,
    })?;
    let mut project = Project::discover(&args.dir);
    project
        .pretend(
            args.branch.as_deref(),
            args.tag.as_deref(),
            args.source.as_deref(),
        )
        .map_err(ExecError::Rules)?;
    let mut variables = predefined_variables(&project);
    variables.extend(args.vars.iter().cloned());
    let context = compose::Context::new(
        args.inputs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        variables,
        Some((project.clone(), args.dirty)),
    )
    .with_origins(origins(args));
    let read = &mut read_in(&args.dir);
    let pipeline = pipeline::parse_with(&text, file, read, &context)?;
    for key in &pipeline.ignored {
        say(err, &format!("pogo: ignored locally: {key}\n"));
    }
    Ok((project, pipeline))
}

/// A job named on the command line that GitLab's pipeline leaves out is refused; the jobs
/// it leaves out are said on `out`.
fn report_left_out(
    names: &[String],
    verdicts: &[Verdict],
    project: &Project,
    out: &Out,
) -> Result<(), ExecError> {
    for name in names {
        if let Some(v) = verdicts.iter().find(|v| &v.job == name && !v.included) {
            return Err(ExecError::NotInPipeline(
                name.clone(),
                pushed_ref(project),
                v.why.clone(),
            ));
        }
    }
    for v in verdicts.iter().filter(|v| !v.included) {
        say(
            out,
            &format!("--- {}: not in this pipeline ({})\n", v.job, v.why),
        );
    }
    Ok(())
}

/// The end of `pogo exec`'s output (the summary, then how the pipeline went) and its exit
/// status.
fn conclusion(rows: &[Row], local: &Local) -> (String, i32) {
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.status.is_blocking_failure())
        .map(|r| r.job.as_str())
        .collect();
    let mut end = format!("\n{}", report::summary(rows));
    let code = if local.is_interrupted() {
        end.push_str("Pipeline interrupted.\n");
        130
    } else if !rows.iter().any(|r| r.status.ran()) {
        // a pipeline that ran nothing has not passed (GitLab shows it blocked or skipped)
        end.push_str(
            "Nothing ran: every job is manual or was skipped (name a manual job to run it).\n",
        );
        2
    } else if failed.is_empty() {
        end.push_str("Pipeline passed.\n");
        0
    } else {
        end.push_str(&format!("Pipeline failed: {}.\n", failed.join(", ")));
        1
    };
    (end, code)
}

/// Where the pipeline's includes from other projects (`--project-dir`) and the network (unless
/// `--offline`) come from.
fn origins(args: &ExecArgs) -> origin::Origins {
    origin::Origins {
        projects: args.project_dirs.clone(),
        network: (!args.offline).then(origin::Network::default),
    }
}

/// Reads the pipeline's included files from `dir` (the project's directory): the path to
/// show in messages, and the text.
fn read_in(dir: &Path) -> impl FnMut(&str) -> Result<(String, String), String> + '_ {
    move |rel: &str| {
        let path = dir.join(rel);
        std::fs::read_to_string(&path)
            .map(|text| (path.display().to_string(), text))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
