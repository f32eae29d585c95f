//! What the executor leaves behind for the dashboard: one small JSON record per job (stage,
//! times, result) and a copy of the job's log with masked variables redacted.
//!
//! Layout: `<state dir>/<job key>.json`, `<state dir>/<job key>.log` and its timestamps
//! `<state dir>/<job key>.times` (mode 0600), where the state dir is `$POGO_STATE_DIR`, else
//! `<working_dir>/jobs` (`working_dir` defaults to the `directories` data dir,
//! `~/.local/share/pogo`). Records are replaced atomically (temp file + rename), so a reader never
//! sees half a record. Old records, logs and timestamps are removed by age.
//!
//! Everything here is best-effort for the executor: a job never fails because its record or log
//! copy could not be written.

pub mod redact;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Environment variable overriding the state directory.
pub const STATE_DIR_ENV: &str = "POGO_STATE_DIR";

/// Records and logs of jobs that ended (or were last touched) longer ago than this are removed.
pub const RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);

/// The state directory for a given working dir and environment.
pub fn state_dir(working_dir: &Path, env: &HashMap<String, String>) -> PathBuf {
    match env.get(STATE_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => working_dir.join("jobs"),
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failed,
    Canceled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
        }
    }
}

/// One job as the executor saw it. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobRecord {
    /// `io.pogo.job-key`: also the file name.
    pub key: String,
    pub id: String,
    pub name: String,
    pub project: String,
    pub url: String,
    pub image: Option<String>,
    pub container: String,
    /// The stage running now, or the last one that ran.
    pub stage: Option<String>,
    pub stage_started: Option<u64>,
    pub started: u64,
    /// Set when prepare finished successfully.
    #[serde(default)]
    pub prepared: bool,
    pub ended: Option<u64>,
    pub result: Option<Outcome>,
    /// Exit code of the failed stage's script, when a script failed.
    pub exit_code: Option<i32>,
    /// The stage that failed, or a system failure's message.
    #[serde(default)]
    pub failure: Option<String>,
    /// A failed job's containers are kept until then (`keep_failed`); `pogo gc` removes them
    /// afterwards.
    #[serde(default)]
    pub kept_until: Option<u64>,
    /// The job's tags (what chose its mounts and extra arguments), once prepare knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Why the job failed, short, as pogo told the job log (`prepare: image … is not in
    /// podman's local storage`); `None` for a script's own failure (its exit code says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `CI_PROJECT_DIR` in the job container: where the dashboard's shell starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_dir: Option<String>,
}

/// What `pogo tui`'s shell in a job's container gets, as GitLab's web terminal: the job's
/// `CI_*` and `GITLAB_*` variables (gitlab-runner's `CUSTOM_ENV_*`), as `--env-file` lines,
/// with every masked value and the job token replaced by `[MASKED]` wherever they appear
/// (`CI_REPOSITORY_URL` holds the token too). Values podman's env file cannot hold (a line
/// break) are left out, and so is `CI_JOB_SERVICES` (the services' variables). Pure.
pub fn shell_env<'a>(
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
    secrets: &[&str],
) -> String {
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    // the longest first: a secret that contains a shorter one is masked whole
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut lines: Vec<String> = env
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("CUSTOM_ENV_")?, v)))
        .filter(|(k, _)| k.starts_with("CI_") || k.starts_with("GITLAB_"))
        // gitlab-runner's description of the services, their variables included: not the
        // job's variables, and not for a shell
        .filter(|(k, _)| *k != "CI_JOB_SERVICES")
        .filter(|(k, _)| k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .filter(|(_, v)| !v.contains(['\n', '\r', '\0']))
        .map(|(k, v)| {
            let masked = secrets
                .iter()
                .fold(v.clone(), |v, s| v.replace(s, "[MASKED]"));
            format!("{k}={masked}")
        })
        .collect();
    lines.sort();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A failure message made short for one line of the dashboard: its first line, up to the
/// first ": " or "; " after which the message says what to do, at most 120 characters.
pub fn short_reason(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    let cut = [": ", "; "]
        .iter()
        .filter_map(|sep| first.find(sep))
        .filter(|i| *i >= 12)
        .min()
        .unwrap_or(first.len());
    let s = &first[..cut];
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(119).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Stages whose failure does not fail the job (gitlab-runner runs them after a failure or
/// ignores their result).
pub fn failure_is_ignored(stage: &str) -> bool {
    matches!(
        stage,
        "after_script"
            | "archive_cache_on_failure"
            | "upload_artifacts_on_failure"
            | "cleanup_file_variables"
    )
}

/// The extension of a job's stop note ([`StateDir::stop_note_path`]).
const STOPPED_EXT: &str = ".stopped";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Keys are pogo's job keys (`[A-Za-z0-9_.-]`); anything else cannot name a state file.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.starts_with('.') && key.chars().all(crate::names::is_name_char)
}

/// The state directory with its records and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn record_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.json"))
    }

    /// `<key>.stopped`: who stopped the job from `pogo tui`, written before the stop, so the
    /// job's failure can say so rather than blame the machine.
    pub fn stop_note_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}{STOPPED_EXT}"))
    }

    /// Note that `who` stops job `key` now (the dashboard, before `podman stop`).
    pub fn note_stopped(&self, key: &str, who: &str) -> std::io::Result<()> {
        if !valid_key(key) {
            return Err(std::io::Error::other(format!(
                "job key {key:?} cannot name a file"
            )));
        }
        self.ensure()?;
        crate::fsutil::replace(
            &self.stop_note_path(key),
            who.as_bytes(),
            crate::fsutil::Replace {
                mode: Some(0o600),
                durable: false,
                keep_owner: false,
            },
        )
    }

    /// Who stopped job `key` from the dashboard, if someone did.
    pub fn stopped_by(&self, key: &str) -> Option<String> {
        if !valid_key(key) {
            return None;
        }
        let who = fs::read_to_string(self.stop_note_path(key)).ok()?;
        let who: String = who
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        Some(if who.is_empty() {
            "someone".to_string()
        } else {
            who
        })
    }

    /// A new attempt of job `key`: an earlier attempt's stop note no longer holds.
    pub fn clear_stop_note(&self, key: &str) {
        if valid_key(key) {
            let _ = fs::remove_file(self.stop_note_path(key));
        }
    }

    pub fn log_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.log"))
    }

    /// When each part of the log copy was written: lines `OFFSET UNIX_MILLIS`, OFFSET the byte
    /// of the log copy where a write began (see [`LogCopy`]).
    pub fn times_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.times"))
    }

    /// The job's `CI_*` variables for the dashboard's shell in its container (see
    /// [`shell_env`]).
    pub fn env_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.env"))
    }

    pub(crate) fn ensure(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
    }

    /// Write `record` atomically: a reader sees the old or the new record, never a mix.
    pub fn write(&self, record: &JobRecord) -> std::io::Result<()> {
        if !valid_key(&record.key) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("job key {:?} cannot name a state file", record.key),
            ));
        }
        self.ensure()?;
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        let mut bytes = json;
        bytes.push(b'\n');
        crate::fsutil::replace(
            &self.record_path(&record.key),
            &bytes,
            crate::fsutil::Replace {
                mode: Some(0o600),
                durable: false,
                keep_owner: false,
            },
        )
    }

    pub fn read(&self, key: &str) -> Option<JobRecord> {
        if !valid_key(key) {
            return None;
        }
        let text = fs::read(self.record_path(key)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Read, change and write back a record (creating it from `init` when missing).
    pub fn update(
        &self,
        key: &str,
        init: impl FnOnce() -> JobRecord,
        change: impl FnOnce(&mut JobRecord),
    ) -> std::io::Result<JobRecord> {
        let mut r = self.read(key).unwrap_or_else(init);
        change(&mut r);
        self.write(&r)?;
        Ok(r)
    }

    /// Every readable record, newest first. Unreadable files are skipped.
    pub fn list(&self) -> Vec<JobRecord> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut v: Vec<JobRecord> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let key = name.strip_suffix(".json")?;
                self.read(key)
            })
            .collect();
        v.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.key.cmp(&b.key)));
        v
    }

    /// Remove records, logs and their timestamps whose job ended, or that were last written,
    /// more than `max_age` ago. Returns how many files were removed.
    pub fn prune(&self, max_age: Duration, now: u64) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return 0;
        };
        let cutoff = now.saturating_sub(max_age.as_secs());
        let mut removed = 0;
        for e in entries.flatten() {
            let path = e.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let ext_ok = name.ends_with(".json")
                || name.ends_with(".log")
                || name.ends_with(".times")
                || name.ends_with(".env")
                || name.ends_with(STOPPED_EXT)
                || name.contains(".tmp");
            if !ext_ok {
                continue;
            }
            let modified = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(now);
            let ended = name
                .strip_suffix(".json")
                .and_then(|k| self.read(k))
                .and_then(|r| r.ended);
            if ended.unwrap_or(modified).max(modified) < cutoff && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Remove the log copies (and their timestamps) of finished jobs, oldest first, until all
    /// log copies together take at most `total` bytes. A running job's copy is never removed.
    /// Returns how many went.
    pub fn prune_logs_to(&self, total: u64) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return 0;
        };
        let mut used = 0;
        let mut finished = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".log") else {
                continue;
            };
            let Ok(meta) = e.metadata() else { continue };
            used += meta.len();
            if self.read(key).is_some_and(|r| r.ended.is_some()) {
                let modified = meta.modified().unwrap_or(UNIX_EPOCH);
                finished.push((modified, key.to_string(), meta.len()));
            }
        }
        finished.sort();
        let mut removed = 0;
        for (_, key, len) in finished {
            if used <= total {
                break;
            }
            if fs::remove_file(self.log_path(&key)).is_ok() {
                let _ = fs::remove_file(self.times_path(&key));
                used = used.saturating_sub(len);
                removed += 1;
            }
        }
        removed
    }
}

/// How a job's record changes when a stage ends and when the job ends (pure).
/// How a stage ended, as `pogo run` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageEnd {
    Ok,
    /// The script exited with this code.
    ScriptFailed(i32),
    /// Podman or the container failed.
    SystemFailure,
    /// SIGTERM/SIGINT: canceled or timed out.
    Canceled,
}

/// The first failure of a stage that counts decides the job's result.
pub fn apply_stage_end(r: &mut JobRecord, stage: &str, end: StageEnd) {
    if r.result.is_some() && r.result != Some(Outcome::Success) {
        return;
    }
    match end {
        StageEnd::Ok => {}
        StageEnd::Canceled => {
            r.result = Some(Outcome::Canceled);
            r.failure = Some(stage.to_string());
        }
        StageEnd::ScriptFailed(_) | StageEnd::SystemFailure if failure_is_ignored(stage) => {}
        StageEnd::ScriptFailed(code) => {
            r.result = Some(Outcome::Failed);
            r.exit_code = Some(code);
            r.failure = Some(stage.to_string());
        }
        StageEnd::SystemFailure => {
            r.result = Some(Outcome::Failed);
            r.failure = Some(format!("{stage} (system failure)"));
        }
    }
}

/// The job is over: no failure recorded so far means it succeeded.
pub fn finish(r: &mut JobRecord) {
    r.ended = Some(now());
    if r.result.is_none() {
        r.result = Some(if r.prepared {
            Outcome::Success
        } else {
            Outcome::Failed
        });
    }
}

/// The job's log copy: what `pogo run` streams, redacted, appended to `<key>.log` (0600).
/// Best-effort: the first write error is reported once on stderr and the copy stops.
///
/// Beside it, `<key>.times` (0600) says when each part was written, for the dashboard's
/// timestamps: a line `OFFSET UNIX_MILLIS` for a write that starts at byte OFFSET of the log copy
/// (after redaction). Writes within the same second as the last line add none (the dashboard
/// shows seconds). Failing to write it only stops the timestamps, silently.
pub struct LogCopy {
    file: Option<fs::File>,
    times: Option<fs::File>,
    /// Length of the log copy: where the next write lands.
    pos: u64,
    /// The most bytes the copy holds (`log_copy_limit`): past it, the first half stays, a
    /// [`DROPPED`] line follows, then the latest output (see [`LogCopy::compact`]).
    limit: u64,
    /// The second of the last timestamp line written.
    stamped: Option<u64>,
    /// Where the head ends, and whether a [`DROPPED`] line follows it there: found at the
    /// first compaction of this process, the same from then on (the head is never rewritten).
    head: Option<(u64, bool)>,
    out: redact::Redactor,
    err: redact::Redactor,
    buf: Vec<u8>,
    path: PathBuf,
}

/// The line a log copy has where output was dropped to keep it within `log_copy_limit`.
pub const DROPPED: &str = "[pogo: output dropped here to keep this log copy within log_copy_limit; it has the log's first and latest part, GitLab's job log has the rest]";

/// Which of the job's output streams a chunk came from (each is redacted on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Where the head of a log copy `len` bytes long ends, and whether a [`DROPPED`] line
/// (`marker`) follows it: an earlier compaction's marker where there is one, else the last line
/// end in the first `half` bytes.
fn find_head(
    file: &mut fs::File,
    len: u64,
    half: u64,
    marker: &str,
) -> std::io::Result<(u64, bool)> {
    use std::io::Read;
    let want = half.saturating_add(marker.len() as u64).min(len);
    let mut head = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
    file.take(want).read_to_end(&mut head)?;
    if head.starts_with(marker.as_bytes()) {
        return Ok((0, true));
    }
    let line_then_marker = format!("\n{marker}");
    if let Some(i) = head
        .windows(line_then_marker.len())
        .position(|w| w == line_then_marker.as_bytes())
    {
        return Ok((i as u64 + 1, true));
    }
    let first_half = &head[..usize::try_from(half.min(len))
        .unwrap_or(head.len())
        .min(head.len())];
    let end = match first_half.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => first_half.len(),
    };
    Ok((end as u64, false))
}

impl LogCopy {
    /// Open (append) the log copy of job `key` in `dir`, redacting `secrets`.
    pub fn open(dir: &StateDir, key: &str, secrets: &[String]) -> Result<Self, String> {
        use std::os::unix::fs::OpenOptionsExt;
        if !valid_key(key) {
            return Err(format!("job key {key:?} cannot name a log file"));
        }
        dir.ensure()
            .map_err(|e| format!("cannot create {}: {e}", dir.root.display()))?;
        let path = dir.log_path(key);
        let file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let pos = file.metadata().map(|m| m.len()).unwrap_or(0);
        let times = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(dir.times_path(key))
            .ok();
        Ok(Self {
            file: Some(file),
            times,
            pos,
            limit: crate::config::model::DEFAULT_LOG_COPY_LIMIT_KIB * 1024,
            stamped: None,
            head: None,
            out: redact::Redactor::new(secrets),
            err: redact::Redactor::new(secrets),
            buf: Vec::new(),
            path,
        })
    }

    /// A copy that writes nothing (when the log file could not be opened).
    pub fn disabled() -> Self {
        Self {
            file: None,
            times: None,
            pos: 0,
            limit: 0,
            stamped: None,
            head: None,
            out: redact::Redactor::default(),
            err: redact::Redactor::default(),
            buf: Vec::new(),
            path: PathBuf::new(),
        }
    }

    /// Keep at most `bytes` of the job's log (`log_copy_limit`).
    pub fn with_limit(mut self, bytes: u64) -> Self {
        self.limit = bytes;
        self
    }

    pub fn write(&mut self, stream: Stream, chunk: &[u8]) {
        self.write_at(stream, chunk, now_millis());
    }

    /// [`LogCopy::write`] at a given time (Unix milliseconds).
    pub fn write_at(&mut self, stream: Stream, chunk: &[u8], millis: u64) {
        if self.file.is_none() {
            return;
        }
        self.buf.clear();
        match stream {
            Stream::Stdout => self.out.push(chunk, &mut self.buf),
            Stream::Stderr => self.err.push(chunk, &mut self.buf),
        }
        self.flush_buf(millis);
    }

    /// End of the stage: write what the redactors held back.
    pub fn finish(&mut self) {
        if self.file.is_none() {
            return;
        }
        self.buf.clear();
        self.out.finish(&mut self.buf);
        self.err.finish(&mut self.buf);
        self.flush_buf(now_millis());
    }

    fn flush_buf(&mut self, millis: u64) {
        if self.buf.is_empty() {
            return;
        }
        if self.pos + self.buf.len() as u64 > self.limit {
            if let Err(e) = self.compact(millis) {
                eprintln!("{}", crate::logging::job_log_warning(&format!(
                    "cannot keep the job's log copy {} within log_copy_limit: {e}; the copy stops here, the job is not affected",
                    self.path.display()
                )));
                self.file = None;
            }
            return;
        }
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(&self.buf) {
                eprintln!("{}", crate::logging::job_log_warning(&format!(
                    "cannot write the job's log copy {} for `pogo tui`: {e}; the copy stops here, the job is not affected",
                    self.path.display()
                )));
                self.file = None;
                return;
            }
            let start = self.pos;
            self.pos += self.buf.len() as u64;
            self.stamp(start, millis);
        }
    }

    /// Make room for `buf` within the limit: the copy keeps its head (up to the last line end
    /// in its first half, never rewritten), then one [`DROPPED`] line, then the latest output
    /// (the last eighth of the limit, from a line start), `buf` included. The timestamps
    /// past the head go, and one for the new part is written. Only the latest output is read
    /// back (the head once per process): a 100 MB log costs a few percent more writing, not
    /// twice as much.
    fn compact(&mut self, millis: u64) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        if self.file.is_none() {
            return Ok(());
        }
        let marker = format!("{DROPPED}\n");
        let mut reader = fs::File::open(&self.path)?;
        let (head_end, marked) = match self.head {
            Some(h) => h,
            None => {
                let h = find_head(&mut reader, self.pos, self.limit / 2, &marker)?;
                self.head = Some(h);
                h
            }
        };
        let after_head = head_end + if marked { marker.len() as u64 } else { 0 };
        // the latest output: the end of what is there after the head, and `buf`
        let keep = usize::try_from(self.limit / 8).unwrap_or(usize::MAX);
        let from_buf = keep.min(self.buf.len());
        let from_file = (keep - from_buf)
            .min(usize::try_from(self.pos.saturating_sub(after_head)).unwrap_or(0));
        let mut latest: Vec<u8> = Vec::with_capacity(from_file + from_buf);
        reader.seek(SeekFrom::Start(self.pos - from_file as u64))?;
        Read::by_ref(&mut reader)
            .take(from_file as u64)
            .read_to_end(&mut latest)?;
        latest.extend_from_slice(&self.buf[self.buf.len() - from_buf..]);
        let cut = match latest.iter().position(|b| *b == b'\n') {
            Some(i) if i + 1 < latest.len() => i + 1,
            _ => 0,
        };
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        f.set_len(head_end)?;
        f.write_all(marker.as_bytes())?;
        f.write_all(&latest[cut..])?;
        self.head = Some((head_end, true));
        self.pos = head_end + (marker.len() + latest.len() - cut) as u64;
        // timestamps: those of the head stay; the rest is new
        if let Some(t) = &mut self.times {
            let mut text = String::new();
            if fs::File::open(self.path.with_extension("times"))
                .and_then(|mut r| r.read_to_string(&mut text))
                .is_ok()
            {
                let mut keep_to = 0;
                for line in text.split_inclusive('\n') {
                    let offset = line.split(' ').next().and_then(|o| o.parse::<u64>().ok());
                    if offset.is_none_or(|o| o >= head_end) {
                        break;
                    }
                    keep_to += line.len();
                }
                let ok = t.set_len(keep_to as u64).is_ok()
                    && t.write_all(format!("{head_end} {millis}\n").as_bytes())
                        .is_ok();
                if ok {
                    self.stamped = Some(millis / 1000);
                } else {
                    self.times = None;
                }
            }
        }
        Ok(())
    }

    /// Say in the timestamps that the log copy's bytes from `offset` on were written at `millis`.
    fn stamp(&mut self, offset: u64, millis: u64) {
        let second = millis / 1000;
        if self.stamped == Some(second) {
            return;
        }
        if let Some(t) = &mut self.times {
            if t.write_all(format!("{offset} {millis}\n").as_bytes())
                .is_ok()
            {
                self.stamped = Some(second);
            } else {
                self.times = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_message_is_made_short_for_the_dashboard() {
        assert_eq!(
            short_reason("image x:1 is not in podman's local storage and pull_policy is never: pull it as the runner's user"),
            "image x:1 is not in podman's local storage and pull_policy is never"
        );
        assert_eq!(short_reason("first line\nsecond"), "first line");
        let long = "a".repeat(200);
        assert_eq!(short_reason(&long).chars().count(), 120);
        assert!(short_reason(&long).ends_with('…'));
        // a colon early on (`stage x:`) is not where the advice starts
        assert_eq!(short_reason("job image: refused"), "job image: refused");
    }

    fn rec(key: &str, started: u64) -> JobRecord {
        JobRecord {
            key: key.into(),
            id: "42".into(),
            started,
            ..JobRecord::default()
        }
    }

    #[test]
    fn a_record_written_is_read_back_and_listed_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().join("state"));
        s.write(&rec("pogo-a-1-0", 10)).unwrap();
        s.write(&rec("pogo-a-2-0", 20)).unwrap();
        assert_eq!(s.read("pogo-a-1-0").unwrap().started, 10);
        let keys: Vec<String> = s.list().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, vec!["pogo-a-2-0", "pogo-a-1-0"]);
        // no temp files left behind by the atomic write
        let names: Vec<String> = fs::read_dir(&s.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn a_hostile_key_cannot_write_outside_the_state_dir() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        assert!(s.write(&rec("../evil", 1)).is_err());
        assert!(s.read("../evil").is_none());
        assert!(LogCopy::open(&s, "a/b", &[]).is_err());
    }

    #[test]
    fn old_records_and_logs_are_pruned_and_recent_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        let mut old = rec("pogo-old", 1);
        old.ended = Some(1);
        s.write(&old).unwrap();
        fs::write(s.log_path("pogo-old"), "x").unwrap();
        fs::write(s.times_path("pogo-old"), "0 1000\n").unwrap();
        s.write(&rec("pogo-new", now())).unwrap();
        // the files were just written: only an age of zero removes them
        assert_eq!(s.prune(RETENTION, now()), 0);
        let far_future = now() + RETENTION.as_secs() + 10;
        assert_eq!(s.prune(RETENTION, far_future), 4);
        assert!(s.list().is_empty());
        assert!(!s.times_path("pogo-old").exists(), "the timestamps go too");
    }

    #[test]
    fn log_copies_over_the_total_lose_the_oldest_finished_ones_never_a_running_jobs() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        for (i, key) in ["pogo-old", "pogo-mid", "pogo-running"].iter().enumerate() {
            let mut r = rec(key, i as u64);
            r.ended = (*key != "pogo-running").then_some(10 + i as u64);
            s.write(&r).unwrap();
            std::fs::write(s.log_path(key), vec![b'x'; 1000]).unwrap();
            std::fs::write(s.times_path(key), "0 1\n").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + i as u64);
            let f = std::fs::File::options()
                .write(true)
                .open(s.log_path(key))
                .unwrap();
            f.set_modified(t).unwrap();
        }
        // the running job's copy counts, but only finished ones go
        assert_eq!(s.prune_logs_to(1500), 2);
        assert!(!s.log_path("pogo-old").exists() && !s.times_path("pogo-old").exists());
        assert!(!s.log_path("pogo-mid").exists());
        assert!(s.log_path("pogo-running").exists());
        assert_eq!(s.prune_logs_to(1500), 0);
    }

    /// GitLab's web terminal: the job's CI variables, with what is masked masked wherever it
    /// appears (the job token is in `CI_REPOSITORY_URL` too).
    #[test]
    fn the_shell_gets_the_jobs_ci_variables_with_secrets_masked() {
        let env: std::collections::HashMap<String, String> = [
            ("CUSTOM_ENV_CI_JOB_NAME", "build"),
            ("CUSTOM_ENV_CI_JOB_TOKEN", "glcbt-TOKEN123"),
            (
                "CUSTOM_ENV_CI_REPOSITORY_URL",
                "https://gitlab-ci-token:glcbt-TOKEN123@gitlab.example.com/g/p.git",
            ),
            ("CUSTOM_ENV_CI_DEPLOY_PASSWORD", "hunter2"),
            ("CUSTOM_ENV_GITLAB_USER_LOGIN", "me"),
            ("CUSTOM_ENV_MY_SECRET", "not-a-ci-variable"),
            ("CUSTOM_ENV_CI_CERT", "two\nlines"),
            (
                "CUSTOM_ENV_CI_JOB_SERVICES",
                r#"[{"name":"db","variables":{"PW":"svc-secret"}}]"#,
            ),
            ("PATH", "/usr/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let text = shell_env(&env, &["glcbt-TOKEN123", "hunter2", ""]);
        assert_eq!(
            text,
            "CI_DEPLOY_PASSWORD=[MASKED]\n\
             CI_JOB_NAME=build\n\
             CI_JOB_TOKEN=[MASKED]\n\
             CI_REPOSITORY_URL=https://gitlab-ci-token:[MASKED]@gitlab.example.com/g/p.git\n\
             GITLAB_USER_LOGIN=me\n"
        );
    }

    /// Lines longer than the dropped-output line: a later stage (a new `pogo run`) finds the
    /// head where the earlier one ended it, not at some line end after the marker.
    #[test]
    fn a_log_of_long_lines_keeps_one_head_and_one_marker_across_stages() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        let limit = 64 * 1024;
        let long = "x".repeat(900);
        for stage in 0..4 {
            let mut c = LogCopy::open(&s, "pogo-k", &[]).unwrap().with_limit(limit);
            for i in 0..300 {
                c.write(
                    Stream::Stdout,
                    format!("stage {stage} line {i:05} {long}\n").as_bytes(),
                );
            }
            c.finish();
        }
        let text = std::fs::read_to_string(s.log_path("pogo-k")).unwrap();
        assert!(text.len() as u64 <= limit, "{}", text.len());
        assert_eq!(text.matches(DROPPED).count(), 1, "one marker");
        let (head, latest) = text.split_once(DROPPED).unwrap();
        assert!(
            head.lines().all(|l| l.starts_with("stage 0 ")),
            "the head is stage 0's"
        );
        assert!(latest
            .trim_start()
            .lines()
            .all(|l| l.starts_with("stage 3 ")));
        assert!(text.ends_with(&format!("stage 3 line 00299 {long}\n")));
    }

    /// One chatty job filled the runner's disk with its log copy: it keeps its first half and
    /// its latest output within the limit, across stages (each a new `pogo run`), with a line
    /// saying where output was dropped.
    #[test]
    fn a_long_log_keeps_its_beginning_and_its_latest_output_within_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        let limit = 64 * 1024;
        for stage in 0..3 {
            let mut c = LogCopy::open(&s, "pogo-k", &[]).unwrap().with_limit(limit);
            for i in 0..5_000 {
                c.write(
                    Stream::Stdout,
                    format!("stage {stage} line {i:05}\n").as_bytes(),
                );
            }
            c.finish();
        }
        let text = std::fs::read_to_string(s.log_path("pogo-k")).unwrap();
        assert!(text.len() as u64 <= limit, "{}", text.len());
        assert!(text.starts_with("stage 0 line 00000\n"));
        assert!(
            text.ends_with("stage 2 line 04999\n"),
            "{}",
            &text[text.len() - 40..]
        );
        assert_eq!(text.matches(DROPPED).count(), 1, "one marker");
        // whole lines only
        for line in text.lines() {
            assert!(line.starts_with("stage ") || line == DROPPED, "{line:?}");
        }
        // the timestamps point inside the file
        let times = std::fs::read_to_string(s.times_path("pogo-k")).unwrap();
        for line in times.lines() {
            let offset: u64 = line.split(' ').next().unwrap().parse().unwrap();
            assert!(offset < text.len() as u64, "{line}");
        }
    }

    #[test]
    fn the_log_copy_is_private_and_redacts_masked_values() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        let mut c = LogCopy::open(&s, "pogo-k", &["supersecret123".to_string()]).unwrap();
        c.write(Stream::Stdout, b"pw=supers");
        c.write(Stream::Stderr, b"err\n");
        c.write(Stream::Stdout, b"ecret123\n");
        c.finish();
        let text = fs::read_to_string(s.log_path("pogo-k")).unwrap();
        assert_eq!(text, "pw=err\n[MASKED]\n");
        let mode = fs::metadata(s.log_path("pogo-k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_log_copy_says_when_each_part_was_written_at_its_offset_after_redaction() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        let mut c = LogCopy::open(&s, "pogo-k", &["supersecret123".to_string()]).unwrap();
        c.write_at(Stream::Stdout, b"one\n", 1_000);
        // "supers" may begin the secret: held back, only "pw=" is written now
        c.write_at(Stream::Stdout, b"pw=supers", 2_000);
        c.write_at(Stream::Stdout, b"ecret123!\n", 3_000);
        // the same second as the last line: no new line
        c.write_at(Stream::Stderr, b"three\n", 3_900);
        c.write_at(Stream::Stdout, b"four\n", 4_000);
        drop(c);
        // the next stage appends to both
        let mut c = LogCopy::open(&s, "pogo-k", &[]).unwrap();
        c.write_at(Stream::Stdout, b"five\n", 9_000);
        let log = fs::read_to_string(s.log_path("pogo-k")).unwrap();
        assert_eq!(log, "one\npw=[MASKED]!\nthree\nfour\nfive\n");
        let times = fs::read_to_string(s.times_path("pogo-k")).unwrap();
        assert_eq!(times, "0 1000\n4 2000\n7 3000\n23 4000\n28 9000\n");
        for (offset, text) in [(4, "pw="), (7, "[MASKED]"), (23, "four"), (28, "five")] {
            assert!(log[offset..].starts_with(text), "{offset}: {text}");
        }
        let mode = fs::metadata(s.times_path("pogo-k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn timestamps_that_cannot_be_written_do_not_stop_the_log_copy() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        // a directory where the timestamps file would be: it cannot be opened
        fs::create_dir(s.times_path("pogo-k")).unwrap();
        let mut c = LogCopy::open(&s, "pogo-k", &[]).unwrap();
        c.write_at(Stream::Stdout, b"still copied\n", 1_000);
        c.finish();
        let log = fs::read_to_string(s.log_path("pogo-k")).unwrap();
        assert_eq!(log, "still copied\n");
    }

    #[test]
    fn a_failed_script_stage_fails_the_job_but_after_script_does_not() {
        let mut r = rec("k", 1);
        r.prepared = true;
        apply_stage_end(&mut r, "after_script", StageEnd::ScriptFailed(3));
        assert_eq!(r.result, None);
        apply_stage_end(&mut r, "build_script", StageEnd::ScriptFailed(7));
        apply_stage_end(&mut r, "after_script", StageEnd::Ok);
        finish(&mut r);
        assert_eq!(r.result, Some(Outcome::Failed));
        assert_eq!(r.exit_code, Some(7));
        assert_eq!(r.failure.as_deref(), Some("build_script"));
        assert!(r.ended.is_some());
    }

    #[test]
    fn a_job_whose_stages_all_passed_is_a_success_and_a_cancel_is_a_cancel() {
        let mut ok = rec("k", 1);
        ok.prepared = true;
        apply_stage_end(&mut ok, "build_script", StageEnd::Ok);
        finish(&mut ok);
        assert_eq!(ok.result, Some(Outcome::Success));

        let mut c = rec("k", 1);
        c.prepared = true;
        apply_stage_end(&mut c, "build_script", StageEnd::Canceled);
        apply_stage_end(&mut c, "after_script", StageEnd::ScriptFailed(1));
        finish(&mut c);
        assert_eq!(c.result, Some(Outcome::Canceled));

        let mut never_prepared = rec("k", 1);
        finish(&mut never_prepared);
        assert_eq!(never_prepared.result, Some(Outcome::Failed));
    }

    #[test]
    fn the_state_dir_follows_the_working_dir_unless_overridden() {
        let mut env = HashMap::new();
        assert_eq!(state_dir(Path::new("/w"), &env), PathBuf::from("/w/jobs"));
        env.insert(STATE_DIR_ENV.to_string(), "/x".to_string());
        assert_eq!(state_dir(Path::new("/w"), &env), PathBuf::from("/x"));
    }
}
