//! One job of the run: the driver and what every job shares ([`Local`]), the job as GitLab
//! would hand it to the runner (variables, cache keys, the artifacts and dotenv reports of
//! the jobs it depends on), running it through the phases with its log streamed, and the
//! notes of its summary row.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::driver::local::{self, artifacts_dir_name, ARTIFACTS_FILE};
use crate::driver::{CachePolicy, Dependency, Driver, Job, LogSink, Variable};
use crate::executor::local::LOCAL_MOUNTS;

use super::pipeline::{self, JobSpec, Pipeline};
use super::project::{Project, Store};
use super::report::{self, Failure, Row, Status};
use super::{dotenv, say, ExecError, Out, LOCAL_API_URL, LOCAL_JOB_TOKEN};

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
    /// Where includes from other projects and the network come from (a child pipeline's too).
    pub origins: super::origin::Origins,
    /// Where the jobs' artifacts go on the host: the store's, or for a child pipeline a
    /// directory of its own in the parent's (its jobs may share names with the parent's).
    pub artifacts: PathBuf,
}

/// A child pipeline's job ids start at its trigger job's id times this.
pub(super) const CHILD_IDS: u64 = 1000;

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
    pub(super) fn job_id(&self, pipeline: &Pipeline, name: &str) -> u64 {
        job_id(pipeline, name, self.id_base)
    }

    pub(super) fn is_interrupted(&self) -> bool {
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
    pub(super) fn run_one(
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
pub(super) fn finished(
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
