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

pub mod compose;
pub mod dotenv;
pub mod inputs;
pub mod pipeline;
pub mod project;
pub mod reference;
pub mod report;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime};

use crate::driver::local::{self, artifacts_dir_name, ARTIFACTS_FILE};
use crate::driver::{
    CachePolicy, Dependency, Driver, DriverError, Job, LocalDir, LocalStages, LogSink, Variable,
};
use crate::executor::local::{LocalMount, LOCAL_MOUNTS};

use pipeline::{JobSpec, ParseError, Pipeline, When};
use project::{Project, Sources, Store};
use report::{Failure, Row, Status};

/// `CI_JOB_TOKEN` of local jobs: nothing accepts it, it only has to be non-empty.
const LOCAL_JOB_TOKEN: &str = "pogo-exec-local-job-token";
/// `CI_API_V4_URL` of local jobs: `.invalid` never resolves, so nothing is sent anywhere.
pub(crate) const LOCAL_API_URL: &str = "https://gitlab.invalid/api/v4";
/// `CI_RUNNER_SHORT_TOKEN` of local jobs (part of the container names).
const LOCAL_RUNNER: &str = "local";
/// Where the job container sees the sources, the cache and the artifacts.
pub const CONTAINER_DIR: &str = "/pogo-exec";
/// Environment variables of the caller that must not reach the phases: they belong to
/// the job the phases are run for (set by `pogo exec` or `pogo config`).
const JOB_SCOPED_ENV: &[&str] = &[
    "POGO_JOB_TAGS",
    "POGO_JOB_KEY",
    "POGO_JOB_CONTAINER",
    "POGO_JOB_POD",
    LOCAL_MOUNTS,
];

const HELP_NOTES: &str = "\
Runs the jobs of DIR/.gitlab-ci.yml stage by stage through pogo's own
config/prepare/run/cleanup phases (the path gitlab-runner takes), using the pogo config
(--config, $POGO_CONFIG or ~/.pogo.yaml).

Supported: stages, variables, default, image, services, before_script, script,
after_script, tags, stage, when (manual jobs run only when named), allow_failure (with
exit_codes), cache (key, paths, policy, when), artifacts (paths, when), dependencies,
needs, extends, include (local files, with inputs), spec: inputs (values of
.gitlab-ci.yml's from --input), !reference, parallel, rules, workflow, only/except,
trigger: include (child pipelines), inherit, YAML anchors and merge keys. Every other key is reported as `pogo: ignored locally: KEY`.

Sources: the committed HEAD of the git repository DIR is in (`git archive`); with --dirty
the work tree instead (uncommitted and untracked files, without git-ignored ones); outside
git a copy of DIR. Set GIT_STRATEGY: none to get none.

Cache and artifacts are kept in DIR/.pogo/ (git-ignored) and survive between runs: a job
that is not run gets the artifacts of its dependencies from an earlier run. `pogo exec
--clean` removes DIR/.pogo/. The job image needs tar (with gzip) for sources, cache and
artifacts.

Ctrl-C lets the running jobs finish (cleanup included) and skips the rest; a second Ctrl-C
quits at once.

Exit status: 0 when the pipeline passed, 1 when a job that may not fail failed, 2 when
nothing could run (unreadable .gitlab-ci.yml, unknown job, bad pogo config) or nothing ran
(every job manual or skipped), 130 when interrupted.";

/// `pogo exec [JOB ...] [--dir DIR] [--var KEY=VALUE ...] [--tags t1,t2] [-j N] [--dirty]`.
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
    /// Run up to N jobs of a stage at the same time (their log lines are prefixed with the job name)
    #[arg(short = 'j', long = "parallel", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Sources from the work tree (uncommitted and untracked files) instead of the committed HEAD
    #[arg(long)]
    pub dirty: bool,
    /// Remove DIR/.pogo/ (cache and artifacts kept by pogo exec) and run nothing
    #[arg(long)]
    pub clean: bool,
    /// List every job: whether GitLab's pipeline has it, how it runs and which rule decided; run nothing
    #[arg(long)]
    pub list: bool,
    /// Decide the jobs (rules, only/except) and set CI_COMMIT_* as for a push of this branch
    /// (the sources stay what is checked out)
    #[arg(long, value_name = "NAME", conflicts_with = "tag")]
    pub branch: Option<String>,
    /// The same for a tag: a tag pipeline (CI_COMMIT_TAG)
    #[arg(long, value_name = "NAME")]
    pub tag: Option<String>,
    /// The pipeline source rules see as CI_PIPELINE_SOURCE (default push): web, schedule,
    /// merge_request_event (a merge request from the branch into the default branch, with
    /// CI_MERGE_REQUEST_* set), api, trigger, ...
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// A pipeline input for the `spec: inputs` header of .gitlab-ci.yml (repeatable); arrays
    /// as JSON, e.g. --input 'targets=["a","b"]'
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = parse_input)]
    pub inputs: Vec<(String, String)>,
}

fn parse_input(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("'{s}' is not NAME=VALUE")),
    }
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

/// The environment the phases get, like gitlab-runner's own: the caller's, minus what
/// belongs to one job, with `$POGO_CONFIG` made absolute (the phases run in a temp dir).
pub(crate) fn runner_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| !k.starts_with("CUSTOM_ENV_") && !JOB_SCOPED_ENV.contains(&k.as_str()))
        .map(|(k, v)| {
            if k == "POGO_CONFIG" && !v.is_empty() {
                (
                    k.clone(),
                    project::absolute(Path::new(v)).display().to_string(),
                )
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// Removes this run's directory (its sources) however `pogo exec` ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The local stages and the mounts that make them work: the sources read-only, `.pogo/cache`
/// and `.pogo/artifacts` writable, under [`CONTAINER_DIR`] in the job container.
fn local_setup(store: &Store, sources: &Sources) -> Result<(LocalStages, String), ExecError> {
    let dir = |host: PathBuf, name: &str| LocalDir {
        host: host.display().to_string(),
        container: format!("{CONTAINER_DIR}/{name}"),
    };
    let stages = LocalStages {
        sources_tar: Some(format!("{CONTAINER_DIR}/sources.tar")),
        sources_note: sources.note.clone(),
        cache: dir(store.cache_dir(), "cache"),
        artifacts: dir(store.artifacts_dir(), "artifacts"),
    };
    let mounts = vec![
        LocalMount {
            host: sources.tar.display().to_string(),
            container: format!("{CONTAINER_DIR}/sources.tar"),
            readonly: true,
        },
        LocalMount {
            host: stages.cache.host.clone(),
            container: stages.cache.container.clone(),
            readonly: false,
        },
        LocalMount {
            host: stages.artifacts.host.clone(),
            container: stages.artifacts.container.clone(),
            readonly: false,
        },
    ];
    let json = serde_json::to_string(&mounts).map_err(|e| ExecError::Store(e.to_string()))?;
    // The same check prepare makes, before any job starts.
    crate::executor::local::parse(&json).map_err(ExecError::Store)?;
    Ok((stages, json))
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
        return Ok(0);
    }
    let file_path = args.dir.join(".gitlab-ci.yml");
    let file = file_path.display().to_string();
    let text = std::fs::read_to_string(&file_path).map_err(|source| ExecError::Read {
        path: file.clone(),
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
    );
    let read = &mut read_in(&args.dir);
    let pipeline = pipeline::parse_with(&text, &file, read, &context)?;
    for key in &pipeline.ignored {
        say(err, &format!("pogo: ignored locally: {key}\n"));
    }
    let (pipeline, verdicts) = apply_rules(&pipeline, &project, &args.vars, args.dirty)?;
    if args.list {
        say(out, &list(&pipeline, &verdicts, &pushed_ref(&project)));
        return Ok(0);
    }
    for name in &args.jobs {
        if let Some(v) = verdicts.iter().find(|v| &v.job == name && !v.included) {
            return Err(ExecError::NotInPipeline(
                name.clone(),
                pushed_ref(&project),
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
    let plan = select(&pipeline, &args.jobs, &file)?;
    refuse_foreign_triggers(&plan)?;

    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let env = runner_env(&env);
    let config = config.map(project::absolute);
    let env_map: HashMap<String, String> = env.iter().cloned().collect();
    crate::config::load(config.as_deref(), &env_map)
        .map_err(|e| ExecError::Config(e.to_string()))?;

    let store = Store::open(&project.dir).map_err(ExecError::Store)?;
    let run_dir = store.run_dir().map_err(ExecError::Store)?;
    let _remove_run_dir = RemoveOnDrop(run_dir.clone());
    let sources = project::pack_sources(&project, args.dirty, &run_dir.join("sources.tar"))
        .map_err(ExecError::Sources)?;
    say(out, &format!("pogo exec: sources: {}\n", sources.note));
    if sources.left_out > 0 {
        say(
            out,
            &format!(
                "pogo exec: {} uncommitted change(s) in {} are not in the sources (--dirty takes them)\n",
                sources.left_out,
                project.dir.display()
            ),
        );
    }
    say(
        out,
        &format!(
            "pogo exec: cache and artifacts in {} (pogo exec --clean removes them)\n",
            store.root.display()
        ),
    );
    let (stages, mounts) = local_setup(&store, &sources)?;

    let mut driver = Driver::new(pogo);
    driver.env = env;
    if let Some(c) = &config {
        driver.pogo_args = vec!["--config".into(), c.display().to_string()];
    }
    driver.runner_short_token = LOCAL_RUNNER.into();
    // Two `pogo exec` runs on one machine must not share container names.
    driver.concurrent_id = std::process::id();
    driver.local = Some(stages);

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
    };
    let rows = run_pipeline(&plan, &pipeline, &local, out, err)?;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.status.is_blocking_failure())
        .map(|r| r.job.as_str())
        .collect();
    let mut end = format!("\n{}", report::summary(&rows));
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
    say(out, &end);
    Ok(code)
}

/// `pogo exec --list`: every job of the file in order, whether GitLab's pipeline has it, how
/// it would run and which rule decided.
fn list(pipeline: &Pipeline, verdicts: &[Verdict], for_ref: &str) -> String {
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
fn pushed_ref(project: &Project) -> String {
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
fn predefined_variables(project: &Project) -> HashMap<String, String> {
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
) -> Result<(Pipeline, Vec<Verdict>), ExecError> {
    use rules::{Decision, RuleWhen};
    let uses_rules = pipeline.workflow.is_some()
        || pipeline
            .jobs
            .iter()
            .any(|j| j.rules.is_some() || j.only.is_some() || j.except.is_some());
    let repo = if uses_rules {
        project.facts(dirty)
    } else {
        project::RepoFacts::default()
    };
    let compare = |r: &str| project.changed_against(r);
    let git = project.git.as_ref();
    let facts = rules::Facts {
        files: &repo.files,
        changed: repo.changed.as_deref(),
        changed_against: &compare,
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
    };
    let base = predefined_variables(project);
    let with_cli = |mut vars: HashMap<String, String>| {
        vars.extend(cli_vars.iter().cloned());
        vars
    };
    // workflow: rules
    let mut workflow_vars = Vec::new();
    if let Some(wf) = &pipeline.workflow {
        let mut vars = base.clone();
        vars.extend(
            pipeline
                .variables
                .iter()
                .map(|v| (v.key.clone(), v.value.clone())),
        );
        match rules::eval_rules(wf, RuleWhen::Always, &with_cli(vars), &facts)
            .map_err(|e| ExecError::Rules(format!("workflow: rules: {e}")))?
        {
            Decision::Out(why) => {
                return Err(ExecError::Filtered(
                    pushed_ref(project),
                    format!("workflow: rules: {why}"),
                ))
            }
            Decision::In { variables, .. } => workflow_vars = variables,
        }
    }
    let mut out = pipeline.clone();
    let mut verdicts = Vec::new();
    out.jobs.clear();
    for job in &pipeline.jobs {
        let mut spec = job.clone();
        // workflow variables: over the global ones, under the job's own
        for v in &workflow_vars {
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
        let vars = with_cli(vars);
        let job_when = match job.when {
            When::OnSuccess if job.delayed => RuleWhen::Delayed,
            When::OnSuccess => RuleWhen::OnSuccess,
            When::Manual => RuleWhen::Manual,
            When::Always => RuleWhen::Always,
            When::OnFailure => RuleWhen::OnFailure,
        };
        let decision = match &job.rules {
            Some(r) => rules::eval_rules(r, job_when, &vars, &facts),
            None => rules::eval_only_except(job.only.as_ref(), job.except.as_ref(), &vars, &facts),
        }
        .map_err(|e| ExecError::Rules(format!("job '{}': {e}", job.name)))?;
        match decision {
            Decision::Out(why) => {
                let what = if job.rules.is_some() {
                    "rules"
                } else {
                    "only/except"
                };
                verdicts.push(Verdict {
                    job: job.name.clone(),
                    stage: job.stage.clone(),
                    included: false,
                    why: format!("{what}: {why}"),
                });
            }
            Decision::In {
                when,
                allow_failure,
                variables,
                why,
            } => {
                verdicts.push(Verdict {
                    job: job.name.clone(),
                    stage: job.stage.clone(),
                    included: true,
                    why,
                });
                if job.rules.is_some() {
                    spec.when = match when {
                        RuleWhen::Manual => When::Manual,
                        RuleWhen::Always => When::Always,
                        RuleWhen::OnFailure => When::OnFailure,
                        _ => When::OnSuccess,
                    };
                    // GitLab: a rule's manual job blocks the pipeline unless it says otherwise
                    spec.allow_failure = match allow_failure {
                        Some(a) => a,
                        None if when == RuleWhen::Manual && job.when != When::Manual => {
                            pipeline::AllowFailure::No
                        }
                        None => job.allow_failure.clone(),
                    };
                    spec.variables.extend(variables);
                }
                out.jobs.push(spec);
            }
        }
    }
    let kept: Vec<String> = out.jobs.iter().map(|j| j.name.clone()).collect();
    for job in &mut out.jobs {
        if let Some(needs) = &mut job.needs {
            needs.retain(|n| !n.optional || kept.contains(&n.job));
        }
    }
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

/// A job chosen to appear in this run.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub spec: &'a JobSpec,
    /// Named on the command line (manual jobs run only then).
    pub named: bool,
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

/// A trigger job that would run but starts a pipeline `pogo exec` cannot run (another
/// project's, or a child made from an artifact) is refused before anything runs: without it
/// the run would not be GitLab's pipeline.
fn refuse_foreign_triggers(plan: &[Planned<'_>]) -> Result<(), ExecError> {
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

/// The driver and what every job of this run shares.
pub struct Local {
    /// Configured for this run (local stages included); tags, mounts and the log sink are
    /// added per job.
    pub driver: Driver,
    pub project: Project,
    pub store: Store,
    /// The value of `POGO_LOCAL_MOUNTS` for every job.
    pub mounts: String,
    pub extra_tags: Vec<String>,
    pub vars: Vec<(String, String)>,
    /// Print job logs as they are (colours, section markers) instead of plain text.
    pub colour: bool,
    /// Set on Ctrl-C: start no further job.
    pub interrupted: Option<Arc<AtomicBool>>,
    /// Jobs of one stage that may run at the same time.
    pub parallel: usize,
    /// Jobs started by this run (their artifacts are this run's).
    pub started: Mutex<HashSet<String>>,
    /// `--dirty`: the jobs get the work tree (cache `key: files` hash its files too).
    pub dirty: bool,
    /// Added to the job ids: 0 for the pipeline run, the trigger job's id × [`CHILD_IDS`] for
    /// a child pipeline.
    pub id_base: u64,
    /// Where the jobs' artifacts go on the host: the store's, or for a child pipeline a
    /// directory of its own in the parent's (its jobs may share names with the parent's).
    pub artifacts: PathBuf,
}

/// A child pipeline's job ids start at its trigger job's id times this.
const CHILD_IDS: u64 = 1000;

/// The `CI_JOB_ID` of a job: its place in the pipeline (after `base`), the same in every run.
fn job_id(pipeline: &Pipeline, name: &str, base: u64) -> u64 {
    let index = pipeline
        .jobs
        .iter()
        .position(|j| j.name == name)
        .unwrap_or(pipeline.jobs.len());
    base.saturating_add(u64::try_from(index + 1).unwrap_or(u64::MAX))
}

/// `12.3 KiB`.
fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

impl Local {
    /// The `CI_JOB_ID` of job `name` of `pipeline` in this run.
    fn job_id(&self, pipeline: &Pipeline, name: &str) -> u64 {
        job_id(pipeline, name, self.id_base)
    }

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

    fn artifacts_file(&self, job_name: &str) -> PathBuf {
        self.artifacts
            .join(artifacts_dir_name(job_name))
            .join(ARTIFACTS_FILE)
    }

    /// Where the dotenv report of the job named `job_name` is kept.
    fn dotenv_file(&self, job_name: &str) -> PathBuf {
        self.artifacts
            .join(artifacts_dir_name(job_name))
            .join(local::DOTENV_FILE)
    }

    /// The variables of the dotenv report the job named `job_name` left, if any.
    fn dotenv(&self, job_name: &str) -> Option<Result<Vec<(String, String)>, String>> {
        let text = std::fs::read_to_string(self.dotenv_file(job_name)).ok()?;
        Some(dotenv::parse(&text))
    }

    /// The job as GitLab would hand it to the runner, and notes for the summary about the
    /// artifacts it gets.
    fn job(&self, spec: &JobSpec, pipeline: &Pipeline) -> (Job, Vec<String>) {
        let p = &self.project;
        let mut job = Job::new(
            self.job_id(pipeline, &spec.name),
            LOCAL_JOB_TOKEN,
            p.path.clone(),
            LOCAL_API_URL,
        );
        job.name = spec.name.clone();
        job.stage = spec.stage.clone();
        job.pipeline_id = p.pipeline_id;
        if let Some(g) = &p.git {
            job.git_ref = g.ref_name.clone();
            job.sha = g.sha.clone();
        } else {
            job.git_ref = String::new();
            job.sha = String::new();
        }
        // GitLab's default: fetch, unless the job sets GIT_STRATEGY.
        job.git_strategy = None;
        job.variables = p.variables(&job.server_url());
        job.variables.extend(spec.variables.iter().cloned());
        job.image = spec.image.clone();
        job.services = spec.services.clone();
        job.before_script = spec.before_script.clone();
        job.script = spec.script.clone();
        job.after_script = spec.after_script.clone();
        job.cache = spec.cache.clone();
        for (c, files) in job.cache.iter_mut().zip(&spec.cache_key_files) {
            if let Some(files) = files {
                c.key = p.cache_key(files, self.dirty);
            }
        }
        job.artifacts = spec.artifacts.clone();

        let explicit = spec.dependencies.is_some() || spec.needs.is_some();
        let started = self.started.lock().map(|s| s.clone()).unwrap_or_default();
        let mut got = Vec::new();
        let mut notes = Vec::new();
        for name in pipeline.artifact_sources(spec) {
            let file = self.artifacts_file(name);
            let exists = file.is_file();
            if exists {
                job.dependencies.push(Dependency {
                    id: self.job_id(pipeline, name),
                    name: name.to_string(),
                    token: LOCAL_JOB_TOKEN.to_string(),
                    artifacts_file: Some(ARTIFACTS_FILE.to_string()),
                });
                if started.contains(name) {
                    got.push(name.to_string());
                } else {
                    got.push(format!("{name} (from an earlier run)"));
                }
            } else if explicit && !started.contains(name) {
                notes.push(format!("no artifacts of {name} (it has not run yet)"));
            }
            // over the file's variables, under the pipeline's own (--var), as on GitLab
            match self.dotenv(name) {
                Some(Ok(vars)) if !vars.is_empty() => {
                    notes.push(format!(
                        "{} variable(s) of {name}'s dotenv report",
                        vars.len()
                    ));
                    job.variables
                        .extend(vars.into_iter().map(|(k, v)| Variable::new(k, v)));
                }
                Some(Err(e)) => notes.push(format!("{name}'s dotenv report refused: {e}")),
                _ => {}
            }
        }
        if !got.is_empty() {
            notes.insert(0, format!("artifacts of {}", got.join(", ")));
        }
        job.variables.extend(
            self.vars
                .iter()
                .map(|(k, v)| Variable::new(k.clone(), v.clone())),
        );
        (job, notes)
    }

    /// The job log on its way to `out`: as it is on a terminal, else plain; with `prefix`
    /// before every line when jobs run side by side.
    fn sink(&self, out: &Out, prefix: Option<String>) -> LogSink {
        let out = Arc::clone(out);
        let colour = self.colour;
        let at_line_start = Mutex::new(true);
        LogSink::new(move |text| {
            let text = match (colour, &prefix) {
                (false, _) => report::plain_log(text),
                (true, Some(_)) => report::strip_sections(text),
                (true, None) => text.to_string(),
            };
            let Ok(mut w) = out.lock() else { return };
            match &prefix {
                None => {
                    let _ = w.write_all(text.as_bytes());
                }
                Some(p) => {
                    let Ok(mut start) = at_line_start.lock() else {
                        return;
                    };
                    for piece in text.split_inclusive('\n') {
                        if *start {
                            let _ = w.write_all(p.as_bytes());
                        }
                        let _ = w.write_all(piece.as_bytes());
                        *start = piece.ends_with('\n');
                    }
                }
            }
            let _ = w.flush();
        })
    }

    /// Runs one job, its log streamed to `out`; returns its summary row.
    fn run_one(
        &self,
        spec: &JobSpec,
        pipeline: &Pipeline,
        prefix: Option<String>,
        out: &Out,
        err: &Out,
    ) -> Result<Row, ExecError> {
        if let Some(pipeline::Trigger::Child { include, depend }) = &spec.trigger {
            let id = self.job_id(pipeline, &spec.name);
            return self.run_child(spec, id, include, *depend, out, err);
        }
        // This run's artifacts replace the last run's, even when the job makes none.
        let own_dir = self.artifacts.join(artifacts_dir_name(&spec.name));
        if let Err(e) = std::fs::remove_dir_all(&own_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                say(
                    err,
                    &format!(
                        "pogo: {}: cannot remove the last run's artifacts {}: {e}\n",
                        spec.name,
                        own_dir.display()
                    ),
                );
            }
        }
        if let Ok(mut s) = self.started.lock() {
            s.insert(spec.name.clone());
        }
        let (job, mut notes) = self.job(spec, pipeline);
        let tags = self.tags(spec);
        let mut driver = self.driver.clone();
        driver.env.push((
            "POGO_JOB_TAGS".to_string(),
            serde_json::to_string(&tags).unwrap_or_else(|_| "[]".to_string()),
        ));
        driver
            .env
            .push((LOCAL_MOUNTS.to_string(), self.mounts.clone()));
        driver.log_sink = Some(self.sink(out, prefix));
        let tag_note = if tags.is_empty() {
            String::new()
        } else {
            format!(", tags {}", tags.join(","))
        };
        say(
            out,
            &format!("\n==> {} (stage {}{tag_note})\n", spec.name, spec.stage),
        );

        let started = Instant::now();
        let started_at = SystemTime::now();
        let result = driver
            .run_job(&job, None)
            .map_err(|source| ExecError::Driver {
                job: spec.name.clone(),
                source,
            })?;
        let duration = started.elapsed();
        let mut warnings = String::new();
        for w in &result.warnings {
            warnings.push_str(&format!("pogo: {}: runner warning: {w}\n", spec.name));
        }
        if result
            .warnings
            .iter()
            .any(|w| w.starts_with("cleanup_exec"))
        {
            warnings.push_str(&format!(
                "pogo: {}: cleanup output:\n{}\n",
                spec.name,
                result.cleanup_output.trim_end()
            ));
        }
        say(err, &warnings);

        let mut failure = Failure::from_outcome(&result.outcome);
        // GitLab refuses a bad dotenv report at upload, which fails the job
        if let Some(Err(e)) = self.dotenv(&spec.name) {
            say(
                out,
                &format!(
                    "pogo: {}: GitLab refuses its dotenv report ({e}), so its upload fails and the job with it\n",
                    spec.name
                ),
            );
            notes.push(format!("dotenv report refused: {e}"));
            failure.get_or_insert(Failure::System);
        }
        notes.extend(self.cache_notes(&job, &result, started_at));
        if let Ok(m) = std::fs::metadata(self.artifacts_file(&spec.name)) {
            notes.push(format!("artifacts saved ({})", human_size(m.len())));
        }
        Ok(finished(
            spec,
            failure,
            duration,
            result.phase_times,
            notes,
            out,
        ))
    }

    /// A trigger job's child pipeline, run here and now as GitLab runs it: its files
    /// (`include:` with their `inputs`), `CI_PIPELINE_SOURCE` `parent_pipeline`, the trigger
    /// job's variables as the child's pipeline variables. With `strategy: depend` the job
    /// takes the child's result, else it passes once the child exists, as on GitLab.
    fn run_child(
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
        );
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

    /// `cache 'KEY': hit|miss[, saved]` for each cache of the job.
    fn cache_notes(
        &self,
        job: &Job,
        result: &crate::driver::JobResult,
        started_at: SystemTime,
    ) -> Vec<String> {
        let Some(stages) = &self.driver.local else {
            return Vec::new();
        };
        let log = &result.log;
        let mut notes = Vec::new();
        for (i, key) in &result.cache_keys {
            let Some(c) = job.cache.get(*i) else { continue };
            let (_, host) = stages.cache_file(key);
            let mut parts = Vec::new();
            if c.policy != CachePolicy::Push {
                let hit = log.contains(&local::cache_extracted_message(key, &host));
                parts.push(if hit { "hit" } else { "miss" });
            }
            let saved = std::fs::metadata(&host)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started_at);
            if c.policy != CachePolicy::Pull && saved {
                parts.push("saved");
            }
            if !parts.is_empty() {
                notes.push(format!("cache '{key}': {}", parts.join(", ")));
            }
        }
        notes
    }
}

/// A job's summary row once it ended with `failure` (none: passed; `allow_failure` decides
/// whether a failure blocks), and its `<==` line in the output.
fn finished(
    spec: &JobSpec,
    failure: Option<Failure>,
    duration: std::time::Duration,
    phases: Vec<(String, std::time::Duration)>,
    notes: Vec<String>,
    out: &Out,
) -> Row {
    let status = match failure {
        None => Status::Passed,
        Some(f) if f.allowed_by(&spec.allow_failure) => Status::AllowedToFail(f),
        Some(f) => Status::Failed(f),
    };
    say(
        out,
        &format!(
            "<== {}: {status} in {}\n",
            spec.name,
            report::format_duration(duration)
        ),
    );
    Row {
        job: spec.name.clone(),
        stage: spec.stage.clone(),
        status,
        duration: Some(duration),
        phases,
        notes,
    }
}

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

    /// A writer the test can read afterwards.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn out(&self) -> Out {
            Arc::new(Mutex::new(self.clone()))
        }
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn command_line() {
        let a = parse_args(&[
            "build", "test", "--dir", "example", "--var", "A=1=2", "--var", "B=", "--tags",
            "t1,t2", "-j", "3", "--dirty",
        ])
        .unwrap();
        assert_eq!(a.jobs, vec!["build", "test"]);
        assert_eq!(a.dir, PathBuf::from("example"));
        assert_eq!(
            a.vars,
            vec![("A".into(), "1=2".into()), ("B".into(), String::new())]
        );
        assert_eq!(a.tags, vec!["t1", "t2"]);
        assert_eq!(a.parallel, 3);
        assert!(a.dirty && !a.clean);
        let a = parse_args(&["--clean"]).unwrap();
        assert!(a.clean);
        assert_eq!(a.dir, PathBuf::from("."));
        assert_eq!(a.parallel, 1);
        let e = parse_args(&["--var", "NOVALUE"]).unwrap_err().to_string();
        assert!(e.contains("'NOVALUE' is not KEY=VALUE"), "{e}");
        let e = parse_args(&["--var", "A-B=1"]).unwrap_err().to_string();
        assert!(e.contains("not a valid variable name"), "{e}");
        assert!(parse_args(&["-j", "0"]).is_err());
        let help = TestCli::try_parse_from(["pogo", "exec", "--help"])
            .unwrap_err()
            .to_string();
        assert!(help.contains("committed HEAD"), "{help}");
        assert!(help.contains("--clean"), "{help}");
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

    fn exec_in(
        dir: &Path,
        args: &[&str],
        config: Option<&Path>,
    ) -> (Result<i32, String>, String, String) {
        let mut argv = args.to_vec();
        let d = dir.display().to_string();
        argv.extend(["--dir", d.as_str()]);
        let args = parse_args(&argv).unwrap();
        let (out, err) = (Buffer::default(), Buffer::default());
        let r = exec(
            &args,
            config,
            Path::new("/nonexistent/pogo"),
            false,
            None,
            &out.out(),
            &err.out(),
        );
        (r.map_err(|e| e.to_string()), out.text(), err.text())
    }

    /// Everything that stops `pogo exec` before a job runs, with the messages users see.
    #[test]
    fn errors_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _, _) = exec_in(dir.path(), &[], None);
        let e = r.unwrap_err();
        assert!(e.starts_with("cannot read "), "{e}");
        assert!(e.contains("pass --dir DIR"), "{e}");

        let file = dir.path().join(".gitlab-ci.yml");
        std::fs::write(&file, "job:\n  script: [echo\n").unwrap();
        let e = exec_in(dir.path(), &[], None).0.unwrap_err();
        let prefix = format!("{}:", file.display());
        assert!(e.starts_with(&prefix), "{e}");
        let pos: Vec<&str> = e[prefix.len()..].splitn(3, ':').collect();
        assert!(
            pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(),
            "{e}"
        );

        std::fs::write(&file, "job:\n  script: echo\n  retry: 2\n").unwrap();
        let (r, _, err) = exec_in(dir.path(), &["jobs"], None);
        assert_eq!(err, "pogo: ignored locally: retry\n");
        let e = r.unwrap_err();
        assert!(e.contains("has no job 'jobs' (did you mean 'job'?)"), "{e}");

        let missing = dir.path().join("missing.yaml");
        let e = exec_in(dir.path(), &[], Some(&missing)).0.unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(e.contains("fix the pogo config"), "{e}");

        // include: local files are read from the project directory
        std::fs::write(&file, "include: ci/jobs.yml\n").unwrap();
        let e = exec_in(dir.path(), &[], None).0.unwrap_err();
        assert!(e.contains("include: 'ci/jobs.yml': No such file"), "{e}");
        std::fs::create_dir_all(dir.path().join("ci")).unwrap();
        std::fs::write(dir.path().join("ci/jobs.yml"), "a: {script: x}\n").unwrap();
        let e = exec_in(dir.path(), &["b"], None).0.unwrap_err();
        assert!(e.contains("has no job 'b'"), "{e}");
        assert!(e.ends_with("jobs: a"), "{e}");
        assert!(
            !dir.path().join(".pogo").exists(),
            "nothing created before a job can run"
        );
    }

    #[test]
    fn clean_removes_the_store_and_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = exec_in(dir.path(), &["--clean"], None);
        assert_eq!(r, Ok(0));
        assert!(out.contains("nothing to clean"), "{out}");
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(store.cache_dir().join("x"), "1").unwrap();
        let (r, out, _) = exec_in(dir.path(), &["--clean"], None);
        assert_eq!(r, Ok(0));
        assert!(out.contains("removed "), "{out}");
        assert!(!store.root.exists());
        let e = exec_in(dir.path(), &["--clean", "build"], None)
            .0
            .unwrap_err();
        assert!(e.contains("then `pogo exec build`"), "{e}");
    }

    /// example/.gitlab-ci.yml uses only what `pogo exec` implements.
    #[test]
    fn the_example_parses_without_ignored_keys() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("example");
        let text = std::fs::read_to_string(dir.join(".gitlab-ci.yml")).unwrap();
        let read = &mut read_in(&dir);
        let p = pipeline::parse_with(
            &text,
            "example/.gitlab-ci.yml",
            read,
            &compose::Context::default(),
        )
        .unwrap();
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
        for j in &p.jobs {
            assert_eq!(
                j.image.as_ref().map(|i| i.name.as_str()),
                Some("localhost/pogo-test/bash:latest"),
                "{}",
                j.name
            );
        }
    }

    #[test]
    fn runner_env_drops_job_scoped_variables() {
        let env = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("POGO_JOB_KEY".to_string(), "leak".to_string()),
            ("POGO_LOCAL_MOUNTS".to_string(), "[]".to_string()),
            ("CUSTOM_ENV_CI_JOB_ID".to_string(), "9".to_string()),
            ("POGO_CONFIG".to_string(), "rel/pogo.yaml".to_string()),
        ];
        let out = runner_env(&env);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["PATH", "POGO_CONFIG"]);
        assert!(Path::new(&out[1].1).is_absolute());
        assert!(out[1].1.ends_with("rel/pogo.yaml"));
    }

    /// A `Local` whose executor is a bash script running each stage on the host, with the
    /// "container" side of the local stages on host paths too.
    fn fake_local(dir: &Path, record: &Path) -> Local {
        let fake = dir.join("fake");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/bash
echo "$1 ${{3:-}} tags=${{POGO_JOB_TAGS:-unset}} job=$CUSTOM_ENV_CI_JOB_NAME mounts=${{POGO_LOCAL_MOUNTS:+set}} t=$(date +%s.%N)" >> {rec}
case "$1" in
  config) printf '{{"builds_dir":"%s","cache_dir":"/c","driver":{{"name":"fake","version":"1"}}}}' "{b}/$CUSTOM_ENV_CI_JOB_NAME" ;;
  run) bash "$2"; rc=$?; if [ $rc -ne 0 ]; then echo $rc > "$BUILD_EXIT_CODE_FILE"; exit 1; fi ;;
esac
"#,
                rec = record.display(),
                b = dir.join("builds").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let project_dir = dir.join("project");
        std::fs::create_dir_all(&project_dir).unwrap();
        std::fs::write(project_dir.join("committed.txt"), "from the sources\n").unwrap();
        let project = Project {
            dir: project_dir.clone(),
            path: "local/demo".into(),
            pipeline_id: 77,
            git: Some(project::Git {
                sha: "a".repeat(40),
                ref_name: "main".into(),
                branch: Some("main".into()),
                ..project::Git::default()
            }),
            in_git: false,
            source: "push".into(),
        };
        let store = Store::open(&project_dir).unwrap();
        let sources = project::pack_sources(&project, false, &dir.join("sources.tar")).unwrap();
        let mut driver = Driver::new(&fake);
        driver.tmp_root = dir.to_path_buf();
        let host = |p: PathBuf| LocalDir {
            host: p.display().to_string(),
            container: p.display().to_string(),
        };
        driver.local = Some(LocalStages {
            sources_tar: Some(sources.tar.display().to_string()),
            sources_note: sources.note,
            cache: host(store.cache_dir()),
            artifacts: host(store.artifacts_dir()),
        });
        Local {
            driver,
            project,
            artifacts: store.artifacts_dir(),
            store,
            mounts: "[]".into(),
            extra_tags: vec![],
            vars: vec![],
            colour: false,
            interrupted: None,
            parallel: 1,
            started: Mutex::new(HashSet::new()),
            dirty: false,
            id_base: 0,
        }
    }

    fn run(local: &Local, yaml: &str, names: &[&str]) -> (Vec<Row>, String) {
        let p = pipeline::parse(yaml, "ci.yml").unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let plan = select(&p, &names, "ci.yml").unwrap();
        let (out, err) = (Buffer::default(), Buffer::default());
        let rows = run_pipeline(&plan, &p, local, &out.out(), &err.out()).unwrap();
        (rows, out.text())
    }

    fn statuses(rows: &[Row]) -> Vec<(String, String)> {
        rows.iter()
            .map(|r| (r.job.clone(), r.status.to_string()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn nothing_starts_after_an_interrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut local = fake_local(dir.path(), &dir.path().join("record"));
        local.interrupted = Some(Arc::new(AtomicBool::new(true)));
        let (rows, out) = run(&local, "a: {script: x}\nb: {script: y}\n", &[]);
        assert!(rows.iter().all(|r| r.status == Status::Skipped));
        assert!(
            out.contains("--- a (stage test): skipped (interrupted)"),
            "{out}"
        );
        assert!(!dir.path().join("record").exists(), "no phase ran");
    }

    /// The whole flow against a fake executor: stage order, allow_failure, a failure that
    /// skips later stages, on_failure, manual, tags and mounts handed to the phases,
    /// predefined variables, sources.
    #[test]
    fn pipeline_flow_with_fake_executor() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("record");
        let mut local = fake_local(dir.path(), &record);
        local.extra_tags = vec!["extra".into()];
        local.vars = vec![("FROM_CLI".into(), "yes".into())];
        let (rows, out) = run(
            &local,
            r#"
stages: [build, test, deploy]
variables: {GREETING: hello}
build:
  stage: build
  tags: [fixtures]
  script:
    - echo "$GREETING from $CI_JOB_NAME/$CI_JOB_STAGE in $CI_PROJECT_PATH pipeline $CI_PIPELINE_ID cli=$FROM_CLI"
    - echo "ref $CI_COMMIT_REF_NAME slug $CI_COMMIT_REF_SLUG short $CI_COMMIT_SHORT_SHA"
    - cat committed.txt
lint: {stage: test, script: exit 3, allow_failure: {exit_codes: [3]}}
unit: {stage: test, script: exit 4, allow_failure: {exit_codes: [3]}}
zpkg: {stage: test, script: echo pkg-ran}
ship: {stage: deploy, script: echo shipped}
notify: {stage: deploy, script: echo notified, when: on_failure}
release: {stage: deploy, script: echo released, when: manual}
"#,
            &[],
        );
        assert_eq!(
            statuses(&rows),
            pairs(&[
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
        assert!(out.contains("ref main slug main short aaaaaaaa"), "{out}");
        assert!(out.contains("\nfrom the sources\n"), "{out}");
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
            config_line.contains(r#"tags=["fixtures","extra"] job=build mounts=set"#),
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

    #[test]
    fn cache_and_artifacts_flow_between_jobs_and_runs() {
        let dir = tempfile::tempdir().unwrap();
        let local = fake_local(dir.path(), &dir.path().join("record"));
        let yaml = r#"
stages: [build, test]
cache: {key: deps-$CI_COMMIT_REF_SLUG, paths: [.deps/]}
build:
  stage: build
  script:
    - mkdir -p out .deps
    - echo "built" > out/result.txt
    - test -f .deps/lib && echo "deps were cached" || echo "fresh deps" > .deps/lib
  artifacts: {paths: [out/]}
check:
  stage: test
  script:
    - echo "consumer sees $(cat out/result.txt)"
    - cat .deps/lib
  cache: {key: deps-$CI_COMMIT_REF_SLUG, paths: [.deps/], policy: pull}
other:
  stage: test
  dependencies: []
  cache: []
  script:
    - test ! -e out/result.txt && echo "no artifacts here"
"#;
        let (rows, out) = run(&local, yaml, &[]);
        assert!(rows.iter().all(|r| r.status == Status::Passed), "{out}");
        assert!(out.contains("consumer sees built"), "{out}");
        assert!(out.contains("\nfresh deps\n"), "{out}");
        assert!(out.contains("no artifacts here"), "{out}");
        assert_eq!(rows[0].notes[0], "cache 'deps-main': miss, saved");
        assert!(
            rows[0].notes[1].starts_with("artifacts saved ("),
            "{:?}",
            rows[0].notes
        );
        assert_eq!(
            rows[1].notes,
            vec!["artifacts of build", "cache 'deps-main': hit"]
        );
        assert!(rows[2].notes.is_empty(), "{:?}", rows[2].notes);

        // A later run of `check` alone uses build's artifacts and cache from this run.
        local.started.lock().unwrap().clear();
        let (rows, out) = run(&local, yaml, &["check"]);
        assert_eq!(statuses(&rows), pairs(&[("check", "passed")]), "{out}");
        assert!(out.contains("consumer sees built"), "{out}");
        assert_eq!(
            rows[0].notes,
            vec![
                "artifacts of build (from an earlier run)",
                "cache 'deps-main': hit"
            ]
        );
    }

    #[test]
    fn parallel_jobs_of_a_stage_run_side_by_side_with_prefixed_logs() {
        let dir = tempfile::tempdir().unwrap();
        let mut local = fake_local(dir.path(), &dir.path().join("record"));
        local.parallel = 2;
        // Each job marks that it started, then waits (up to 10 s) for the other's mark: both
        // pass only if they run at the same time. One after the other, the first would fail.
        let meet = |me: &str, other: &str| {
            let d = dir.path().display();
            format!(
                "{me}:\n  script:\n    - touch '{d}/{me}.here'\n    - \"i=0; while [ ! -e '{d}/{other}.here' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\"\n    - test -e '{d}/{other}.here'\n    - echo from-{me}\n"
            )
        };
        let (rows, out) = run(
            &local,
            &format!("{}{}", meet("a", "b"), meet("b", "a")),
            &[],
        );
        assert_eq!(
            statuses(&rows),
            pairs(&[("a", "passed"), ("b", "passed")]),
            "{out}"
        );
        assert!(out.contains("\n[a] from-a\n"), "{out}");
        assert!(out.contains("\n[b] from-b\n"), "{out}");
    }

    #[test]
    fn a_job_with_needs_goes_by_its_needed_jobs_not_by_earlier_stages() {
        let dir = tempfile::tempdir().unwrap();
        let local = fake_local(dir.path(), &dir.path().join("record"));
        let (rows, out) = run(
            &local,
            r#"
stages: [build, test, deploy]
build-a: {stage: build, script: [exit 1]}
build-b: {stage: build, script: [echo b]}
test-b: {stage: test, script: [echo tested-b], needs: [build-b]}
test-a: {stage: test, script: [echo never], needs: [build-a]}
test-all: {stage: test, script: [echo never]}
early: {stage: test, script: [echo early], needs: []}
release: {stage: deploy, script: [echo never], when: manual}
smoke: {stage: deploy, script: [echo never], needs: [release]}
rollback: {stage: deploy, script: [echo never], needs: [release], when: on_failure}
report: {stage: deploy, script: [echo reported], needs: [release], when: always}
"#,
            &[],
        );
        assert_eq!(
            statuses(&rows),
            pairs(&[
                ("build-a", "failed (exit 1)"),
                ("build-b", "passed"),
                ("early", "passed"),
                ("test-a", "skipped"),
                ("test-all", "skipped"),
                ("test-b", "passed"),
                ("release", "manual"),
                ("report", "passed"),
                ("rollback", "skipped"),
                ("smoke", "skipped"),
            ]),
            "{out}"
        );
        assert!(
            out.contains("--- test-a (stage test): skipped (it needs 'build-a', which failed)"),
            "{out}"
        );
        assert!(
            out.contains(
                "--- smoke (stage deploy): skipped (it needs 'release', which did not run)"
            ),
            "{out}"
        );
        assert!(
            out.contains("--- test-all (stage test): skipped (an earlier stage failed)"),
            "{out}"
        );
        // nothing it needs failed: on_failure does not run, whatever failed elsewhere
        assert!(
            out.contains(
                "--- rollback (stage deploy): skipped (when: on_failure, and nothing failed)"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_job_needing_one_of_its_own_stage_waits_for_it_and_is_skipped_when_it_failed() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("record");
        let mut local = fake_local(dir.path(), &record);
        local.parallel = 3;
        let (rows, out) = run(
            &local,
            r#"
first: {script: [sleep 0.5, mkdir -p out, echo made > out/f], artifacts: {paths: [out/]}}
second: {script: [cat out/f], needs: [first]}
broken: {script: [exit 1]}
after-broken: {script: [echo never], needs: [broken]}
"#,
            &[],
        );
        assert_eq!(
            statuses(&rows),
            pairs(&[
                ("after-broken", "skipped"),
                ("broken", "failed (exit 1)"),
                ("first", "passed"),
                ("second", "passed"),
            ]),
            "{out}"
        );
        assert!(out.contains("[second      ] made"), "{out}");
        assert!(
            out.contains(
                "--- after-broken (stage test): skipped (it needs 'broken', which failed)"
            ),
            "{out}"
        );
        let rec = std::fs::read_to_string(&record).unwrap();
        let time = |prefix: &str| -> f64 {
            rec.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit("t=").next())
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            time("config  tags=[] job=second") > time("run build_script tags=[] job=first"),
            "{rec}"
        );
    }
}
