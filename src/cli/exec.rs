//! The command line of `pogo exec`: its arguments, their checks and the help's notes.

use std::path::PathBuf;

const HELP_NOTES: &str = "\
Runs the jobs of DIR/.gitlab-ci.yml stage by stage through pogo's own
config/prepare/run/cleanup phases (the path gitlab-runner takes), using the pogo config
(--config, $POGO_CONFIG or ~/.pogo.yaml).

Supported: stages, variables, default, image, services, before_script, script,
after_script, tags, stage, when (manual jobs run only when named), allow_failure (with
exit_codes), cache (key, paths, policy, when), artifacts (paths, when), dependencies,
needs, extends, include (local files with inputs, wildcards and rules; project and
component from a clone named with --project-dir; remote and template fetched unless
--offline), spec: inputs (values of .gitlab-ci.yml's from --input), !reference, parallel,
rules (with needs), workflow, only/except, trigger: include (child pipelines, from files of
the project or from a job's artifact), inherit, YAML anchors and merge keys. Every other key
is reported as `pogo: ignored locally: KEY`.

Includes from other projects: `include: project` and `include: component` are read from a
local clone named with --project-dir group/proj=PATH, at the include's ref or version
(committed files only); `include: remote` and `include: template` are fetched unless --offline.
An include that cannot be read is refused before anything runs, saying how to vendor it.

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
    /// A local git clone that stands for a project in `include: project` and `include:
    /// component` (repeatable); files are read from its commits (ref:, @version), not its work tree
    #[arg(long = "project-dir", value_name = "GROUP/PROJECT=PATH", value_parser = parse_project_dir)]
    pub project_dirs: Vec<(String, PathBuf)>,
    /// Fetch nothing over the network: `include: remote` and `include: template` are refused
    #[arg(long)]
    pub offline: bool,
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
    if !crate::names::valid_variable_name(key) {
        return Err(format!(
            "'{key}' is not a valid variable name (use letters, digits and _)"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// `--project-dir`'s value: `group/proj=PATH`.
fn parse_project_dir(s: &str) -> Result<(String, PathBuf), String> {
    let bad = || {
        format!(
            "'{s}' is not group/project=PATH (a project path as GitLab has it, e.g. \
             team/ci-templates=../ci-templates)"
        )
    };
    let (name, path) = s.split_once('=').ok_or_else(bad)?;
    let name = name.trim_matches('/');
    if name.is_empty() || path.is_empty() || !crate::names::valid_project_path(name) {
        return Err(bad());
    }
    Ok((name.to_string(), PathBuf::from(path)))
}
