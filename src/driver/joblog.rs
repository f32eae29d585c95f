//! The job log as gitlab-runner writes it: the runner's own lines, sections, phase output
//! with masked values, and the [`LogSink`] that gets it while it is written.

use std::sync::{Arc, Mutex};

use super::process::OutputCallback;
use super::run::Run;
use super::{Job, Outcome};

/// Receives the job log while the job runs: the concatenation of all pieces is
/// [`JobResult::log`](super::JobResult::log). A piece is one or more whole lines, except
/// that a phase's output may end without a newline. Called from the driver's threads, one
/// piece at a time.
#[derive(Clone)]
pub struct LogSink(Arc<dyn Fn(&str) + Send + Sync>);

impl LogSink {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        LogSink(Arc::new(f))
    }

    pub(super) fn send(&self, text: &str) {
        if !text.is_empty() {
            (self.0)(text);
        }
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSink")
    }
}

/// Stage names as passed to run_exec, and their log sections.
pub(super) fn section_of(stage: &str) -> (&'static str, String) {
    match stage {
        "prepare_script" => ("prepare_script", "Preparing environment".into()),
        "get_sources" => ("get_sources", "Getting source from Git repository".into()),
        "restore_cache" => ("restore_cache", "Restoring cache".into()),
        "download_artifacts" => ("download_artifacts", "Downloading artifacts".into()),
        "build_script" => (
            "step_script",
            "Executing \"step_script\" stage of the job script".into(),
        ),
        "after_script" => ("after_script", "Running after_script".into()),
        "archive_cache" => ("archive_cache", "Saving cache for successful job".into()),
        "archive_cache_on_failure" => (
            "archive_cache_on_failure",
            "Saving cache for failed job".into(),
        ),
        "upload_artifacts_on_success" => (
            "upload_artifacts_on_success",
            "Uploading artifacts for successful job".into(),
        ),
        "upload_artifacts_on_failure" => (
            "upload_artifacts_on_failure",
            "Uploading artifacts for failed job".into(),
        ),
        "cleanup_file_variables" => (
            "cleanup_file_variables",
            "Cleaning up project directory and file based variables".into(),
        ),
        _ => (
            "step",
            format!("Executing \"{stage}\" stage of the job script"),
        ),
    }
}

/// Masked values shorter than this are not masked (GitLab's minimum).
const MIN_MASKED_LEN: usize = 8;

/// The values to mask in the job log: the job's masked variables, longest first.
pub(super) fn masks(job: &Job) -> Vec<String> {
    let mut masks: Vec<String> = job
        .payload_variables()
        .into_iter()
        .filter(|v| v.masked && v.value.len() >= MIN_MASKED_LEN)
        .map(|v| v.value)
        .collect();
    masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
    masks
}

/// Masked values replaced by `[MASKED]` (longest first, as they are sorted).
fn mask(text: &str, masks: &[String]) -> String {
    let mut text = text.to_string();
    for m in masks {
        text = text.replace(m.as_str(), "[MASKED]");
    }
    text
}

/// A phase's job-log output on its way to the [`LogSink`]: whole lines are masked and
/// sent as they arrive, the rest when the phase ends. Masking line by line gives the
/// same text as masking the whole output, because masked values are single lines.
pub(super) struct LiveLines {
    pending: Vec<u8>,
    masks: Vec<String>,
    sink: LogSink,
    /// After the phase: a background process still writing is not the job log.
    closed: bool,
}

impl LiveLines {
    fn push(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.pending.extend_from_slice(bytes);
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            self.sink
                .send(&mask(&String::from_utf8_lossy(&lines), &self.masks));
        }
    }

    pub(super) fn finish(&mut self) {
        if !self.closed {
            let rest = std::mem::take(&mut self.pending);
            self.sink
                .send(&mask(&String::from_utf8_lossy(&rest), &self.masks));
            self.closed = true;
        }
    }
}

impl Run<'_> {
    /// Appends the runner's own text to the log and hands it to the sink.
    fn emit(&mut self, text: &str) {
        self.result.log.push_str(text);
        if let Some(sink) = &self.d.log_sink {
            sink.send(text);
        }
    }

    fn ensure_newline(&mut self) {
        if !self.result.log.is_empty() && !self.result.log.ends_with('\n') {
            self.emit("\n");
        }
    }

    pub(super) fn logln(&mut self, line: &str) {
        self.ensure_newline();
        self.emit(&format!("{line}\n"));
    }

    /// Appends a phase's output to the log; the sink got it while the phase ran.
    pub(super) fn log_output(&mut self, bytes: &[u8]) {
        let text = mask(&String::from_utf8_lossy(bytes), &self.masks);
        self.result.log.push_str(&text);
    }

    /// The phase-output callback for the sink, if there is one.
    pub(super) fn live_output(&self) -> Option<(OutputCallback, Arc<Mutex<LiveLines>>)> {
        let sink = self.d.log_sink.clone()?;
        let lines = Arc::new(Mutex::new(LiveLines {
            pending: Vec::new(),
            masks: self.masks.clone(),
            sink,
            closed: false,
        }));
        let feed = Arc::clone(&lines);
        let callback: OutputCallback = Arc::new(move |bytes: &[u8]| {
            if let Ok(mut l) = feed.lock() {
                l.push(bytes);
            }
        });
        Some((callback, lines))
    }

    pub(super) fn section_start(&mut self, name: &str, description: &str) {
        self.ensure_newline();
        self.emit(&format!(
            "section_start:{}:{name}\r\x1b[0K\x1b[0K\x1b[36;1m{description}\x1b[0;m\n",
            crate::state::now()
        ));
    }

    pub(super) fn section_end(&mut self, name: &str) {
        self.ensure_newline();
        self.emit(&format!(
            "section_end:{}:{name}\r\x1b[0K\n",
            crate::state::now()
        ));
    }

    pub(super) fn finish_log(&mut self) {
        let line = match &self.result.outcome {
            Outcome::Success => "\x1b[32;1mJob succeeded\x1b[0;m".to_string(),
            Outcome::BuildFailure { exit_code } => {
                format!("\x1b[31;1mERROR: Job failed: exit code {exit_code}\x1b[0;m")
            }
            Outcome::SystemFailure { reason } => {
                format!("\x1b[31;1mERROR: Job failed (system failure): {reason}\x1b[0;m")
            }
            Outcome::ConfigurationError { reason } => {
                format!("\x1b[31;1mERROR: Job failed: {reason}\x1b[0;m")
            }
            Outcome::Canceled => "\x1b[31;1mERROR: Job failed: canceled\x1b[0;m".to_string(),
            Outcome::TimedOut => format!(
                "\x1b[31;1mERROR: Job failed: execution took longer than {} seconds\x1b[0;m",
                self.job.timeout.as_secs()
            ),
        };
        self.logln("");
        self.logln(&line);
    }
}
