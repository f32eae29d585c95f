//! Reading `.gitlab-ci.yml` for `pogo exec`: the subset of GitLab's CI syntax that can run
//! locally without a GitLab server. Every key outside that subset is collected in
//! [`Pipeline::ignored`] so the caller can say so — nothing is dropped silently.

mod artifacts;
mod cache;
mod image;
mod job;
mod needs;
mod parallel;
mod parser;
mod values;

use serde_json::Value;

use super::compose::{self, ReadInclude};
use crate::driver::{Artifacts, Cache, Image, Service, Variable};

pub use job::artifact_include;
pub(crate) use needs::drop_missing_optional_needs;
pub use parallel::Instance;
pub use values::valid_variable_name;

use parser::Parser;

/// GitLab's stages when `stages:` is not given.
pub const DEFAULT_STAGES: &[&str] = &["build", "test", "deploy"];
/// The stage of a job without `stage:`.
pub const DEFAULT_STAGE: &str = "test";
/// GitLab's cache key when `cache:key` is not given.
pub const DEFAULT_CACHE_KEY: &str = "default";

/// Why `.gitlab-ci.yml` cannot be used. Messages name the file and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not valid YAML; `at` is `FILE:LINE:COLUMN` (or `FILE` when the parser has no position).
    #[error("{at}: {message}")]
    Syntax { at: String, message: String },
    /// Valid YAML, but not a pipeline `pogo exec` can run.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// `when:` of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    OnSuccess,
    /// Runs only when named on the command line.
    Manual,
    Always,
    OnFailure,
}

/// `allow_failure:` of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowFailure {
    No,
    Yes,
    /// `allow_failure: {exit_codes: [...]}`: only script failures with these codes.
    ExitCodes(Vec<i32>),
}

/// One entry of `needs:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub job: String,
    /// Download its artifacts (`artifacts: false` turns it off).
    pub artifacts: bool,
    /// `optional: true`: dropped when the job does not exist.
    pub optional: bool,
}

/// One runnable job, with `default:` and global variables already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub stage: String,
    pub image: Option<Image>,
    pub services: Vec<Service>,
    /// Global, then `default:`, then the job's own variables (later ones win).
    pub variables: Vec<Variable>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub tags: Vec<String>,
    pub when: When,
    pub allow_failure: AllowFailure,
    /// Keys are as written (`default` when not given); variables are expanded per job.
    pub cache: Vec<Cache>,
    /// For each of `cache`, `key: files` when its key comes from files (`pogo exec`
    /// computes it before the job runs, as GitLab does).
    pub cache_key_files: Vec<Option<KeyFiles>>,
    pub artifacts: Option<Artifacts>,
    /// `dependencies:`: whose artifacts to download (`None`: not given).
    pub dependencies: Option<Vec<String>>,
    /// `needs:` (`None`: not given; `optional` needs of jobs that do not exist are dropped).
    pub needs: Option<Vec<Need>>,
    /// `rules:` (`None`: not given).
    pub rules: Option<Vec<super::rules::Rule>>,
    /// `only:` and `except:` (`None`: not given; without `rules:` GitLab's default `only`,
    /// branches and tags, applies).
    pub only: Option<super::rules::Refs>,
    pub except: Option<super::rules::Refs>,
    /// `when: delayed` (runs as on_success locally, without the delay).
    pub delayed: bool,
    /// The keys the job's own `variables:` sets (they win over `workflow: rules: variables`).
    pub own_variable_keys: Vec<String>,
    /// `trigger:`: the job starts a downstream pipeline instead of running a script.
    pub trigger: Option<Trigger>,
}

/// `cache: key: {files, prefix}` (or `files_commits`): the key is a hash of the files'
/// content (of the commits that last changed them), after `prefix-`; `default` when none of
/// the files exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyFiles {
    pub files: Vec<String>,
    pub prefix: Option<String>,
    /// `files_commits`: the commits, not the content.
    pub commits: bool,
}

/// `trigger:` of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A child pipeline of this project: its `include:` entries (as `include:` takes them,
    /// `inputs` too, and `artifact:` + `job:` for a file an earlier job made), and whether
    /// the job waits for it and takes its result (`strategy: depend`).
    Child { include: Value, depend: bool },
    /// A pipeline of another project, which `pogo exec` cannot run: why, for the refusal.
    Elsewhere(String),
}

/// What `.gitlab-ci.yml` describes, as far as `pogo exec` understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// All stages in order, `.pre` first and `.post` last.
    pub stages: Vec<String>,
    /// Jobs in stage order, by name within a stage.
    pub jobs: Vec<JobSpec>,
    /// Hidden jobs (templates whose name starts with `.`); never run.
    pub hidden: Vec<String>,
    /// Keys that were read but are not implemented locally, each once, in the order met.
    pub ignored: Vec<String>,
    /// `workflow: rules` (`None`: not given: every pipeline is created).
    pub workflow: Option<Vec<super::rules::Rule>>,
    /// The top-level `variables:`.
    pub variables: Vec<Variable>,
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&JobSpec> {
        self.jobs.iter().find(|j| j.name == name)
    }

    fn stage_index(&self, stage: &str) -> usize {
        self.stages
            .iter()
            .position(|s| s == stage)
            .unwrap_or(usize::MAX)
    }

    /// The jobs whose artifacts `job` downloads, like GitLab: `dependencies:` when given,
    /// else the `needs:` with `artifacts: true`, else every job of an earlier stage.
    pub fn artifact_sources<'a>(&'a self, job: &'a JobSpec) -> Vec<&'a str> {
        if let Some(deps) = &job.dependencies {
            return deps.iter().map(String::as_str).collect();
        }
        if let Some(needs) = &job.needs {
            return needs
                .iter()
                .filter(|n| n.artifacts)
                .map(|n| n.job.as_str())
                .collect();
        }
        let stage = self.stage_index(&job.stage);
        self.jobs
            .iter()
            .filter(|j| self.stage_index(&j.stage) < stage)
            .map(|j| j.name.as_str())
            .collect()
    }
}

/// Parses the text of `.gitlab-ci.yml` without a project directory (an `include: local`
/// is an error); `file` is only used in messages.
pub fn parse(text: &str, file: &str) -> Result<Pipeline, ParseError> {
    parse_with(
        text,
        file,
        &mut |path: &str| Err(format!("cannot read {path}: no project directory")),
        &compose::Context::default(),
    )
}

/// Parses the text of `.gitlab-ci.yml`, reading `include: local` files with `read`.
pub fn parse_with(
    text: &str,
    file: &str,
    read: &mut ReadInclude<'_>,
    context: &compose::Context,
) -> Result<Pipeline, ParseError> {
    let root = compose::load_file(text, file, &context.inputs, &context.variables)?;
    parse_root(root, file, read, context)
}

/// Parses a pipeline file already loaded ([`compose::load_file`]): its includes, `extends:`
/// and `!reference` resolved, then its jobs.
pub fn parse_root(
    root: Value,
    file: &str,
    read: &mut ReadInclude<'_>,
    context: &compose::Context,
) -> Result<Pipeline, ParseError> {
    let invalid = |message: String| ParseError::Invalid {
        file: file.to_string(),
        message,
    };
    let mut parser = Parser::default();
    let mut root = compose::resolve_includes(root, file, read, context)?;
    if let Value::Object(top) = &mut root {
        compose::resolve_extends(top).map_err(invalid)?;
        super::reference::resolve(top).map_err(invalid)?;
    }
    let pipeline = parser.pipeline(&root).map_err(invalid)?;
    pipeline.check_references().map_err(invalid)?;
    Ok(pipeline)
}

/// YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`): the parser resolves the aliases but
/// leaves `<<` as an ordinary key. Keys of the mapping itself win; among several merged
/// mappings, earlier ones win.
pub fn apply_merge_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(mut merged) = map.remove("<<") {
                apply_merge_keys(&mut merged);
                let sources = match merged {
                    Value::Object(m) => vec![m],
                    Value::Array(items) => items
                        .into_iter()
                        .filter_map(|i| match i {
                            Value::Object(m) => Some(m),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for source in sources {
                    for (k, val) in source {
                        map.entry(k).or_insert(val);
                    }
                }
            }
            for val in map.values_mut() {
                apply_merge_keys(val);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(apply_merge_keys),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests;
