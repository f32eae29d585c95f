//! The dashboard's model: everything the views draw, changed only by `update`.

use super::logview::LogView;
use super::runners::RunnersState;
use super::sources::{PsContainer, StatEntry};
use crate::config::Config;
use crate::state::{JobRecord, Outcome};
use std::collections::HashMap;
use std::path::PathBuf;

/// A finished job stays listed this long after it ended (its record stays on disk longer).
pub const KEEP_FINISHED_SECS: u64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Jobs,
    Config,
    Runners,
}

impl Screen {
    pub const ALL: [Screen; 3] = [Screen::Jobs, Screen::Config, Screen::Runners];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Jobs => "Jobs",
            Screen::Config => "Config",
            Screen::Runners => "Runners",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// What keys currently go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a log search (`/` with the log focused).
    Search(String),
    /// Typing the list's filter (`/` in a list): it applies as it is typed, into
    /// [`Model::filters`] for the current screen.
    Filter,
    /// `x` asked: stop this container?
    /// `T` asked: stop the gitlab-runner service (which aborts every running job)?
    ConfirmServiceStop,
    /// `x` on a job kept by `keep_failed`: remove its containers now?
    ConfirmRelease {
        job: String,
        key: String,
    },
    ConfirmStop {
        container: String,
        job: String,
        /// The job's key: its stop note says who stopped it ([`crate::state::StateDir::note_stopped`]).
        key: String,
    },
    Help,
    /// `i`: podman inspect output, scrolled.
    Inspect {
        title: String,
        text: String,
        scroll: u16,
    },
    /// Typing the preview's tags (`t`) or project (`p`) on the Config screen.
    PreviewInput(PreviewField),
    /// `a` on Runners: register a runner (URL, token, name).
    Register(RegisterForm),
    /// `D` on Runners: remove this runner?
    ConfirmUnregister(String),
    /// Enter or `a` on Config: a form for a setting, a mount or a tag's extra arguments.
    ConfigForm(super::configform::ConfigForm),
    /// `D` on Config: remove this entry from the config file?
    ConfirmDelete {
        what: String,
        edit: crate::config::edit::Edit,
        base: String,
    },
}

/// The register form. The token is kept as a [`Secret`]: never shown, never in debug output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterForm {
    pub url: String,
    pub token: crate::secret::Secret,
    pub name: String,
    /// Optional: the PEM file of a private CA GitLab's certificate comes from.
    pub ca_file: String,
    /// The focused field: [`RegisterForm::URL`], [`RegisterForm::TOKEN`],
    /// [`RegisterForm::NAME`] or [`RegisterForm::CA_FILE`].
    pub focus: usize,
    /// The cursor in the focused field, characters from its end.
    pub cursor: usize,
    /// Why the last submit was refused.
    pub error: Option<String>,
}

impl RegisterForm {
    pub const FIELDS: usize = 4;
    pub const URL: usize = 0;
    pub const TOKEN: usize = 1;
    pub const NAME: usize = 2;
    pub const CA_FILE: usize = 3;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewField {
    Tags,
    Project,
}

/// One service container of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// The container's name as podman has it (for `podman logs`, exec, inspect).
    pub container: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub cpu: Option<String>,
    pub mem: Option<String>,
}

/// One job row: the state record and the labelled containers, merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub key: String,
    pub id: String,
    pub project: String,
    pub name: String,
    pub url: String,
    pub stage: String,
    pub image: String,
    /// Container name of the job container (for shell, stop, inspect), if it exists.
    pub container: Option<String>,
    pub running: bool,
    /// `running`, `success`, `failed (exit 3)`, `canceled`, `exited`...
    pub state: String,
    pub outcome: Option<Outcome>,
    pub started: u64,
    pub ended: Option<u64>,
    pub cpu: Option<String>,
    pub mem: Option<String>,
    pub services: Vec<ServiceRow>,
    /// The job's tags, from its record (empty until prepare asked GitLab).
    pub tags: Vec<String>,
    /// Why the job failed, short (from its record), for the log pane's title.
    pub reason: Option<String>,
    /// Its container runs (also after the job ended, when `keep_failed` keeps it).
    pub container_running: bool,
    /// `keep_failed` keeps the job's containers until then (Unix seconds).
    pub kept_until: Option<u64>,
    /// Where a shell in its container starts (`CI_PROJECT_DIR`).
    pub project_dir: Option<String>,
}

/// The configuration as the Config screen shows it.
#[derive(Debug, Clone, Default)]
pub struct ConfigState {
    /// The file watched (where pogo reads its config from), if any.
    pub path: Option<PathBuf>,
    /// The last configuration that loaded.
    pub good: Option<Config>,
    /// Why the file on disk is not used now (line and column included).
    pub error: Option<String>,
    /// Text of the file last read, to tell real changes from touch/own writes.
    pub text: Option<String>,
    /// The file's settings as written (what the forms edit); `None` while the file is invalid.
    pub raw: Option<crate::config::RawConfig>,
    /// The file does not exist yet: built-in defaults; the first save creates it.
    pub missing: bool,
    /// `~/` in the forms' paths expands to this.
    pub home: Option<PathBuf>,
    /// Settings the environment overrides (`POGO_<KEY>` is set): the file's value is not used.
    pub overridden: Vec<String>,
    /// The selected row (see `configform::rows`).
    pub selected: usize,
    pub preview_tags: String,
    pub preview_project: String,
    /// The job whose tags and project the preview shows (`J`), if one was picked.
    pub preview_job: Option<String>,
    /// How prepare keeps job containers alive on this host (part of the previewed argv).
    pub keep_alive: Option<crate::podman::args::KeepAlive>,
}

/// Which pane of the Jobs screen keys go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    /// The job list: ↑↓ pick a job, `/` filters the list.
    #[default]
    List,
    /// The log: ↑↓ scroll it, `/` searches it.
    Log,
}

/// The `/` filter of each screen's list (empty: everything shows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub jobs: String,
    pub config: String,
    pub runners: String,
}

impl Filters {
    /// The filter of `screen`'s list, if that screen has one.
    pub fn of(&self, screen: Screen) -> Option<&String> {
        match screen {
            Screen::Jobs => Some(&self.jobs),
            Screen::Runners => Some(&self.runners),
            Screen::Config => Some(&self.config),
        }
    }

    pub fn of_mut(&mut self, screen: Screen) -> Option<&mut String> {
        match screen {
            Screen::Jobs => Some(&mut self.jobs),
            Screen::Runners => Some(&mut self.runners),
            Screen::Config => Some(&mut self.config),
        }
    }
}

/// Whether a row with these `fields` passes the filter `query`: every word of the query occurs
/// in one of the fields, ignoring case. An empty query matches everything.
pub fn filter_matches(query: &str, fields: &[&str]) -> bool {
    let fields: Vec<String> = fields.iter().map(|f| f.to_lowercase()).collect();
    query
        .split_whitespace()
        .map(str::to_lowercase)
        .all(|word| fields.iter().any(|f| f.contains(&word)))
}

impl JobRow {
    /// What the Jobs filter looks at: id, project, job name, stage, image and state.
    pub fn matches(&self, query: &str) -> bool {
        filter_matches(
            query,
            &[
                &self.id,
                &self.project,
                &self.name,
                &self.stage,
                &self.image,
                &self.state,
            ],
        )
    }
}

/// A problem shown as a banner on top of every screen, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    pub text: String,
}

/// The order of the job list (`S` cycles it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobSort {
    /// Running jobs first, then the newest.
    #[default]
    Started,
    Cpu,
    Memory,
    Name,
    Project,
    State,
}

impl JobSort {
    pub const ALL: [JobSort; 6] = [
        JobSort::Started,
        JobSort::Cpu,
        JobSort::Memory,
        JobSort::Name,
        JobSort::Project,
        JobSort::State,
    ];

    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|&s| s == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// How the list's title says it.
    pub fn label(self) -> &'static str {
        match self {
            JobSort::Started => "started",
            JobSort::Cpu => "CPU ↓",
            JobSort::Memory => "memory ↓",
            JobSort::Name => "name",
            JobSort::Project => "project",
            JobSort::State => "state",
        }
    }
}

/// The log key of a service's log: this, then the service container's name.
pub const SERVICE_LOG: &str = "service:";

/// Samples of a container's numbers kept for its sparkline (2 s apart: two minutes).
pub const HISTORY: usize = 60;

/// A container's recent CPU (percent) and memory (bytes), oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub cpu: std::collections::VecDeque<f64>,
    pub mem: std::collections::VecDeque<f64>,
}

/// `12.34%` → 12.34.
pub fn percent(s: &str) -> Option<f64> {
    s.trim().strip_suffix('%')?.trim().parse().ok()
}

/// podman's `1.45MB`, `520.2kB`, `1.2GiB` → bytes.
pub fn bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let unit_at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..unit_at].parse().ok()?;
    let scale = match s[unit_at..].trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * scale)
}

pub struct Model {
    pub screen: Screen,
    pub mode: Mode,
    pub records: Vec<JobRecord>,
    pub containers: Vec<PsContainer>,
    /// Stats by container name.
    pub stats: HashMap<String, StatEntry>,
    /// Recent stats by container name, for the selected job's sparkline.
    pub history: HashMap<String, History>,
    /// The job list's order.
    pub sort: JobSort,
    /// Which of the selected job's service rows is selected (none: the job's own row).
    pub service: Option<usize>,
    pub jobs: Vec<JobRow>,
    /// Index in `jobs` of the selected job; always a row the filter shows, when there is one.
    pub selected: usize,
    /// The Jobs screen's focused pane.
    pub focus: Focus,
    /// The `/` filters of the lists.
    pub filters: Filters,
    pub log: LogView,
    /// `t`: each log line starts with the time it was written.
    pub show_times: bool,
    /// Seconds east of UTC that times are shown in (the local zone's offset, 0 in tests).
    pub utc_offset: i32,
    pub podman_error: Option<Banner>,
    /// A gitlab-runner of another user, looked for while the job list is empty: its jobs are in
    /// that user's rootless podman.
    pub other_runner: Option<super::procs::OtherRunner>,
    /// Set once the first `podman ps` answered.
    pub podman_seen: bool,
    pub config: ConfigState,
    pub runners: RunnersState,
    /// A short message in the footer ("log saved to …").
    pub status: Option<String>,
    /// Unix seconds, for elapsed times.
    pub now: u64,
    pub color: bool,
    /// Terminal size (columns, rows), for mapping mouse clicks.
    pub size: (u16, u16),
    /// The name the register form proposes (the host name).
    pub default_runner_name: String,
    /// The cursor of the text being typed (the list filter, the log search, the preview's
    /// inputs): characters from its end (see `textinput`); 0 whenever typing starts.
    pub cursor: usize,
    /// The register form while GitLab answers: a refused registration opens it again as it
    /// was typed (the token included), with GitLab's answer.
    pub registering: Option<RegisterForm>,
    /// The screen is to be drawn again: set by `update` (in one place, its dispatcher), cleared
    /// by the runtime once it has drawn.
    pub dirty: bool,
    pub quit: bool,
}

impl Model {
    pub fn new(now: u64, color: bool) -> Self {
        Self {
            screen: Screen::Jobs,
            mode: Mode::Normal,
            records: Vec::new(),
            containers: Vec::new(),
            stats: HashMap::new(),
            history: HashMap::new(),
            sort: JobSort::default(),
            service: None,
            jobs: Vec::new(),
            selected: 0,
            focus: Focus::List,
            filters: Filters::default(),
            log: LogView::default(),
            show_times: false,
            utc_offset: 0,
            podman_error: None,
            other_runner: None,
            podman_seen: false,
            config: ConfigState::default(),
            runners: RunnersState::default(),
            status: None,
            now,
            color,
            default_runner_name: String::new(),
            registering: None,
            cursor: 0,
            size: (80, 24),
            dirty: true,
            quit: false,
        }
    }

    /// The selected service row of the selected job, if a service row is selected.
    pub fn selected_service(&self) -> Option<&ServiceRow> {
        self.selected_job()?.services.get(self.service?)
    }

    /// The key of the log the log pane shows: the selected job's log copy, or the selected
    /// service's `podman logs` ([`SERVICE_LOG`] and its container).
    pub fn log_source(&self) -> Option<String> {
        match self.selected_service() {
            Some(s) => Some(format!("{SERVICE_LOG}{}", s.container)),
            None => self.selected_job().map(|j| j.key.clone()),
        }
    }

    /// The Jobs list's rows as shown: each job (index in `jobs`), then its services.
    pub fn shown_rows(&self) -> Vec<(usize, Option<usize>)> {
        self.visible_jobs()
            .into_iter()
            .flat_map(|i| {
                std::iter::once((i, None))
                    .chain((0..self.jobs[i].services.len()).map(move |s| (i, Some(s))))
            })
            .collect()
    }

    /// The selected job, unless the filter hides every job.
    pub fn selected_job(&self) -> Option<&JobRow> {
        self.jobs
            .get(self.selected)
            .filter(|j| j.matches(&self.filters.jobs))
    }

    /// Indices in `jobs` of the rows the filter shows, in order.
    pub fn visible_jobs(&self) -> Vec<usize> {
        let q = &self.filters.jobs;
        (0..self.jobs.len())
            .filter(|&i| self.jobs[i].matches(q))
            .collect()
    }

    /// Indices in `runners.rows` of the runners the filter shows (name, URL, executor).
    pub fn visible_runners(&self) -> Vec<usize> {
        let q = &self.filters.runners;
        (0..self.runners.rows.len())
            .filter(|&i| {
                let r = &self.runners.rows[i];
                filter_matches(q, &[&r.name, &r.url, &r.executor])
            })
            .collect()
    }

    /// Indices in `configform::rows` of the Config rows the filter shows.
    pub fn visible_config_rows(&self) -> Vec<usize> {
        let Some(raw) = &self.config.raw else {
            return Vec::new();
        };
        let q = &self.filters.config;
        super::configform::rows(raw)
            .iter()
            .enumerate()
            .filter(|(_, row)| {
                let fields = super::configform::row_fields(raw, row);
                filter_matches(q, &fields.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The selected runner, unless the filter hides every runner.
    pub fn selected_runner(&self) -> Option<&super::runners::RunnerRow> {
        let i = self.runners.selected;
        self.visible_runners()
            .contains(&i)
            .then(|| &self.runners.rows[i])
    }

    /// Keep the selections on rows the filters show: a hidden selection moves to the first
    /// visible row (and stays put when nothing is visible).
    pub fn keep_selection_visible(&mut self) {
        let jobs = self.visible_jobs();
        if !jobs.contains(&self.selected) {
            if let Some(&first) = jobs.first() {
                self.selected = first;
                self.service = None;
            }
        }
        let runners = self.visible_runners();
        if !runners.contains(&self.runners.selected) {
            if let Some(&first) = runners.first() {
                self.runners.selected = first;
            }
        }
        let rows = self.visible_config_rows();
        if !rows.contains(&self.config.selected) {
            if let Some(&first) = rows.first() {
                self.config.selected = first;
            }
        }
    }

    /// Any job still running (elapsed times move, stats are worth polling).
    pub fn any_running(&self) -> bool {
        self.jobs.iter().any(|j| j.running)
    }

    /// Rebuild the rows from records, containers and stats; keep the selection on the same job.
    pub fn rebuild_jobs(&mut self) {
        let key = self.selected_job().map(|j| j.key.clone());
        let service = self.selected_service().map(|s| s.container.clone());
        self.jobs = merge_jobs(&self.records, &self.containers, &self.stats, self.now);
        sort_jobs(&mut self.jobs, self.sort);
        self.selected = key
            .and_then(|k| self.jobs.iter().position(|j| j.key == k))
            .unwrap_or(0)
            .min(self.jobs.len().saturating_sub(1));
        // a service row stays selected while it is listed
        self.service = service.and_then(|c| {
            self.selected_job()?
                .services
                .iter()
                .position(|s| s.container == c)
        });
        self.keep_selection_visible();
    }
}

impl Model {
    /// A sample of the streamed stats: the numbers shown and each container's history.
    pub fn add_stats(&mut self, sample: Vec<StatEntry>) {
        self.history
            .retain(|name, _| sample.iter().any(|e| &e.name == name));
        for e in &sample {
            let h = self.history.entry(e.name.clone()).or_default();
            for (v, x) in [(&mut h.cpu, percent(&e.cpu)), (&mut h.mem, bytes(&e.mem))] {
                v.push_back(x.unwrap_or(0.0));
                if v.len() > HISTORY {
                    v.pop_front();
                }
            }
        }
        self.stats = sample.into_iter().map(|e| (e.name.clone(), e)).collect();
        self.rebuild_jobs();
    }
}

/// Order the rows by `sort`; ties (and rows without the number) keep the default order:
/// running first, then newest.
pub fn sort_jobs(rows: &mut [JobRow], sort: JobSort) {
    let number =
        |v: &Option<String>, f: fn(&str) -> Option<f64>| v.as_deref().and_then(f).unwrap_or(-1.0);
    rows.sort_by(|a, b| {
        let by = match sort {
            JobSort::Started => std::cmp::Ordering::Equal,
            JobSort::Cpu => number(&b.cpu, percent).total_cmp(&number(&a.cpu, percent)),
            JobSort::Memory => number(&b.mem, bytes).total_cmp(&number(&a.mem, bytes)),
            JobSort::Name => a.name.cmp(&b.name),
            JobSort::Project => a.project.cmp(&b.project),
            JobSort::State => a.state.cmp(&b.state),
        };
        by.then_with(|| b.running.cmp(&a.running))
            .then_with(|| b.started.cmp(&a.started))
            .then_with(|| a.key.cmp(&b.key))
    });
}

fn label<'a>(c: &'a PsContainer, k: &str) -> &'a str {
    c.labels.get(k).map(String::as_str).unwrap_or("")
}

/// Merge the executor's records with the labelled containers podman reports: one row per job
/// key, services nested; running jobs first, then newest first. Finished jobs whose containers
/// are gone are kept for [`KEEP_FINISHED_SECS`].
pub fn merge_jobs(
    records: &[JobRecord],
    containers: &[PsContainer],
    stats: &HashMap<String, StatEntry>,
    now: u64,
) -> Vec<JobRow> {
    use crate::podman::labels::LABEL_JOB_KEY;
    let mut by_key: HashMap<&str, Vec<&PsContainer>> = HashMap::new();
    for c in containers.iter().filter(|c| !c.is_infra) {
        let key = label(c, LABEL_JOB_KEY);
        if !key.is_empty() {
            by_key.entry(key).or_default().push(c);
        }
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    for r in records {
        if !by_key.contains_key(r.key.as_str()) {
            let recent = r
                .ended
                .is_none_or(|e| now.saturating_sub(e) <= KEEP_FINISHED_SECS);
            if recent {
                keys.push(r.key.as_str());
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let mut rows: Vec<JobRow> = keys
        .into_iter()
        .map(|key| {
            let record = records.iter().find(|r| r.key == key);
            let cs = by_key.get(key).cloned().unwrap_or_default();
            row(key, record, &cs, stats)
        })
        .collect();
    sort_jobs(&mut rows, JobSort::Started);
    rows
}

fn row(
    key: &str,
    record: Option<&JobRecord>,
    containers: &[&PsContainer],
    stats: &HashMap<String, StatEntry>,
) -> JobRow {
    let job_ctr = containers
        .iter()
        .find(|c| c.name().ends_with("-build"))
        .or_else(|| containers.iter().find(|c| !c.name().contains("-svc")))
        .copied();
    let pick = |f: &dyn Fn(&JobRecord) -> &str, l: &str| -> String {
        visible(&match record.map(f).filter(|s| !s.is_empty()) {
            Some(v) => v.to_string(),
            None => job_ctr
                .or(containers.first().copied())
                .map(|c| label(c, l).to_string())
                .unwrap_or_default(),
        })
    };
    let container_running = job_ctr.is_some_and(|c| c.state == "running");
    let outcome = record.and_then(|r| r.result);
    let ended = record.and_then(|r| r.ended);
    let running = container_running && ended.is_none();
    let system = record
        .and_then(|r| r.failure.as_deref())
        .is_some_and(|f| f.ends_with(SYSTEM_SUFFIX));
    let state = match (record, outcome) {
        (Some(r), Some(Outcome::Failed)) => match r.exit_code {
            Some(c) => format!("failed (exit {c})"),
            None if system => "failed (system)".to_string(),
            None => "failed".to_string(),
        },
        (_, Some(o)) if ended.is_some() || !container_running => o.as_str().to_string(),
        _ if running => "running".to_string(),
        _ => job_ctr
            .map(|c| c.state.clone())
            .unwrap_or_else(|| "gone".to_string()),
    };
    let started = record
        .map(|r| r.started)
        .or_else(|| job_ctr.map(|c| c.created))
        .unwrap_or(0);
    let stat = |name: &str| stats.get(name);
    let mut services: Vec<ServiceRow> = containers
        .iter()
        .filter(|c| c.name().contains("-svc"))
        .map(|c| ServiceRow {
            container: c.name().to_string(),
            name: visible(c.name()),
            image: visible(&c.image),
            state: c.state.clone(),
            cpu: stat(c.name()).map(|s| s.cpu.clone()),
            mem: stat(c.name()).map(|s| s.mem.clone()),
        })
        .collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    JobRow {
        key: key.to_string(),
        id: pick(&|r| r.id.as_str(), "io.pogo.job-id"),
        project: pick(&|r| r.project.as_str(), "io.pogo.project"),
        name: pick(&|r| r.name.as_str(), "io.pogo.job-name"),
        url: pick(&|r| r.url.as_str(), "io.pogo.job-url"),
        // A failed or canceled job shows the stage where it stopped.
        stage: record
            .and_then(|r| {
                r.failure
                    .as_deref()
                    .map(|f| f.trim_end_matches(SYSTEM_SUFFIX).to_string())
                    .or_else(|| r.stage.clone())
            })
            .map(|s| visible(&s))
            .unwrap_or_else(|| "-".to_string()),
        image: visible(
            &job_ctr
                .map(|c| c.image.clone())
                .or_else(|| record.and_then(|r| r.image.clone()))
                .unwrap_or_default(),
        ),
        container: job_ctr.map(|c| c.name().to_string()),
        running,
        state,
        outcome,
        started,
        ended,
        cpu: job_ctr.and_then(|c| stat(c.name())).map(|s| s.cpu.clone()),
        mem: job_ctr.and_then(|c| stat(c.name())).map(|s| s.mem.clone()),
        services,
        tags: record
            .map(|r| r.tags.iter().map(|t| visible(t)).collect())
            .unwrap_or_default(),
        reason: record
            .filter(|r| r.result == Some(Outcome::Failed))
            .and_then(|r| r.reason.as_deref())
            .map(visible),
        container_running,
        kept_until: record
            .and_then(|r| r.kept_until)
            .filter(|_| job_ctr.is_some()),
        project_dir: record.and_then(|r| r.project_dir.clone()),
    }
}

/// A string a job chose (its name, project, stage, URL, image, tags), safe for the terminal:
/// control characters (an escape sequence would retitle the terminal or redraw the table) and
/// bidirectional overrides (which reorder what follows) are shown as `<U+XXXX>`. Pure.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The job's web page, if `o` may open it: an `http`/`https` URL without credentials on the
/// host of one of the runners' GitLab (any host when no runner is known). The URL is GitLab's
/// own `CI_JOB_URL`, but the state record it comes from is a file, so it is checked again.
pub fn openable_url(url: &str, runner_urls: &[&str]) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|_| format!("not a URL: {}", visible(url)))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "not opening {}: only http and https pages",
            visible(url)
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("not opening a URL with credentials in it".to_string());
    }
    let hosts: Vec<String> = runner_urls
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
        .collect();
    let host = parsed.host_str().map(str::to_ascii_lowercase);
    if !hosts.is_empty() && !host.as_ref().is_some_and(|h| hosts.contains(h)) {
        return Err(format!(
            "not opening {}: it is not on the runners' GitLab ({})",
            visible(url),
            hosts.join(", ")
        ));
    }
    Ok(parsed.to_string())
}

/// How the executor marks a system failure in a record's `failure`.
const SYSTEM_SUFFIX: &str = " (system failure)";

/// `1h02m`, `3m05s`, `42s`.
pub fn format_elapsed(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `2027-01-15T08:00:00Z` for Unix milliseconds `millis` shifted by `utc_offset` seconds (so the
/// digits are local time; the `Z` is not to be shown).
fn shifted_rfc3339(millis: u64, utc_offset: i32) -> String {
    // RFC 3339 ends at year 9999 (humantime fails past it); a garbled `.times` line must not
    // crash the dashboard, so such a time shows as the last second of 9999.
    const LAST: u64 = 253_402_300_799;
    let secs = (millis / 1000)
        .saturating_add_signed(i64::from(utc_offset))
        .min(LAST);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// `HH:MM:SS` of Unix milliseconds `millis`, `utc_offset` seconds east of UTC.
pub fn clock(millis: u64, utc_offset: i32) -> String {
    shifted_rfc3339(millis, utc_offset)[11..19].to_string()
}

/// `YYYY-MM-DD` of Unix milliseconds `millis`, `utc_offset` seconds east of UTC.
pub fn day(millis: u64, utc_offset: i32) -> String {
    shifted_rfc3339(millis, utc_offset)[..10].to_string()
}

/// The offset `date +%z` prints (`+0100`, `-0530`) in seconds east of UTC.
pub fn parse_utc_offset(z: &str) -> Option<i32> {
    let z = z.trim();
    let (sign, digits) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests;
