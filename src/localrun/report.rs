//! What `pogo exec` prints: job statuses, the summary table, and job logs made readable
//! when they do not go to a terminal.

use std::fmt;
use std::time::Duration;

use crate::driver::Outcome;

use super::pipeline::AllowFailure;

/// Why a job that ran did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The script failed with this exit code.
    Exit(i32),
    System,
    Configuration,
    TimedOut,
    Canceled,
}

impl Failure {
    /// `None` when the job passed.
    pub fn from_outcome(outcome: &Outcome) -> Option<Self> {
        match outcome {
            Outcome::Success => None,
            Outcome::BuildFailure { exit_code } => Some(Failure::Exit(*exit_code)),
            Outcome::SystemFailure { .. } => Some(Failure::System),
            Outcome::ConfigurationError { .. } => Some(Failure::Configuration),
            Outcome::TimedOut => Some(Failure::TimedOut),
            Outcome::Canceled => Some(Failure::Canceled),
        }
    }

    /// Whether `allow_failure:` covers this failure (exit codes only cover script failures).
    pub fn allowed_by(&self, allow: &AllowFailure) -> bool {
        match allow {
            AllowFailure::No => false,
            AllowFailure::Yes => true,
            AllowFailure::ExitCodes(codes) => {
                matches!(self, Failure::Exit(code) if codes.contains(code))
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Exit(code) => write!(f, "exit {code}"),
            Failure::System => f.write_str("system failure"),
            Failure::Configuration => f.write_str("configuration error"),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Canceled => f.write_str("canceled"),
        }
    }
}

/// How one job of the pipeline ended (or why it did not run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed(Failure),
    AllowedToFail(Failure),
    /// Not run because of an earlier failure (or, for `when: on_failure`, the lack of one).
    Skipped,
    /// `when: manual` and not named on the command line.
    Manual,
}

impl Status {
    /// A failure that fails the pipeline.
    pub fn is_blocking_failure(&self) -> bool {
        matches!(self, Status::Failed(_))
    }

    /// Did the job run (pass or fail), rather than stay manual or be skipped?
    pub fn ran(&self) -> bool {
        !matches!(self, Status::Skipped | Status::Manual)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Passed => f.write_str("passed"),
            Status::Failed(Failure::Exit(code)) => write!(f, "failed (exit {code})"),
            Status::Failed(other) => write!(f, "{other}"),
            Status::AllowedToFail(why) => write!(f, "allowed to fail ({why})"),
            Status::Skipped => f.write_str("skipped"),
            Status::Manual => f.write_str("manual"),
        }
    }
}

/// One line of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub job: String,
    pub stage: String,
    pub status: Status,
    /// `None` for jobs that did not run.
    pub duration: Option<Duration>,
    /// The driver's phase times: config, prepare, each run stage, cleanup.
    pub phases: Vec<(String, Duration)>,
    /// What happened to its cache and artifacts (`cache 'deps': hit`, ...).
    pub notes: Vec<String>,
}

/// `1.23s`, `2m03s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Phase times summed per name, in the order first seen; repeated phases (Prepare retries)
/// show how often they ran.
pub fn format_phases(phases: &[(String, Duration)]) -> String {
    let mut totals: Vec<(&str, Duration, usize)> = Vec::new();
    for (name, d) in phases {
        match totals.iter_mut().find(|(n, _, _)| n == name) {
            Some(entry) => {
                entry.1 += *d;
                entry.2 += 1;
            }
            None => totals.push((name.as_str(), *d, 1)),
        }
    }
    totals
        .iter()
        .map(|(name, d, count)| {
            if *count > 1 {
                format!("{name} {} ({count}x)", format_duration(*d))
            } else {
                format!("{name} {}", format_duration(*d))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A function that lays out one line of a four-column table with `header` and `cells`: each
/// column as wide as its widest cell, two spaces between, no trailing blanks.
pub fn columns(header: [&str; 4], cells: &[[String; 4]]) -> impl Fn(&[String; 4]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for c in cells {
        for (w, cell) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    move |c: &[String; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
        .trim_end()
        .to_string()
    }
}

/// The summary table; each job that ran gets a second line with its phase times, and a
/// third with what happened to its cache and artifacts.
pub fn summary(rows: &[Row]) -> String {
    let header = ["JOB", "STAGE", "STATUS", "DURATION"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.job.clone(),
                r.stage.clone(),
                r.status.to_string(),
                r.duration
                    .map(format_duration)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let line = columns(header, &cells);
    let mut out = line(&header.map(str::to_string));
    out.push('\n');
    for (row, c) in rows.iter().zip(&cells) {
        out.push_str(&line(c));
        out.push('\n');
        if !row.phases.is_empty() {
            out.push_str(&format!("    {}\n", format_phases(&row.phases)));
        }
        if !row.notes.is_empty() {
            out.push_str(&format!("    {}\n", row.notes.join("; ")));
        }
    }
    out
}

/// The job log for a reader that is not a terminal: GitLab's section markers and ANSI
/// colour codes removed.
pub fn plain_log(log: &str) -> String {
    strip_ansi(&strip_sections(log))
}

/// The job log without GitLab's section markers (a section start keeps its title). On a
/// terminal the markers hide themselves with `\r` and a line erase, which would also erase
/// a prefix written before them.
pub fn strip_sections(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    for line in log.split_inclusive('\n') {
        if line.starts_with("section_end:") {
            continue;
        }
        let line = match line.strip_prefix("section_start:") {
            Some(rest) => rest.split_once("\r\x1b[0K").map(|(_, r)| r).unwrap_or(rest),
            None => line,
        };
        out.push_str(line);
    }
    out
}

/// Removes ANSI CSI sequences (`ESC [ ... final-byte`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for f in chars.by_ref() {
                if ('@'..='~').contains(&f) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statuses_read_like_the_summary() {
        assert_eq!(Status::Passed.to_string(), "passed");
        assert_eq!(
            Status::Failed(Failure::Exit(3)).to_string(),
            "failed (exit 3)"
        );
        assert_eq!(
            Status::Failed(Failure::System).to_string(),
            "system failure"
        );
        assert_eq!(
            Status::AllowedToFail(Failure::Exit(1)).to_string(),
            "allowed to fail (exit 1)"
        );
        assert_eq!(Status::Skipped.to_string(), "skipped");
        assert_eq!(Status::Manual.to_string(), "manual");
        assert!(Failure::Exit(3).allowed_by(&AllowFailure::ExitCodes(vec![3])));
        assert!(!Failure::Exit(4).allowed_by(&AllowFailure::ExitCodes(vec![3])));
        assert!(!Failure::System.allowed_by(&AllowFailure::ExitCodes(vec![3])));
        assert!(Failure::System.allowed_by(&AllowFailure::Yes));
    }

    #[test]
    fn summary_table() {
        let ms = Duration::from_millis;
        let rows = vec![
            Row {
                job: "build".into(),
                stage: "build".into(),
                status: Status::Passed,
                duration: Some(ms(1500)),
                phases: vec![
                    ("config".into(), ms(10)),
                    ("prepare".into(), ms(1000)),
                    ("build_script".into(), ms(400)),
                    ("cleanup".into(), ms(90)),
                ],
                notes: vec![
                    "cache 'deps': hit, saved".into(),
                    "artifacts saved (2 KiB)".into(),
                ],
            },
            Row {
                job: "deploy-production".into(),
                stage: "deploy".into(),
                status: Status::Manual,
                duration: None,
                phases: vec![],
                notes: vec![],
            },
        ];
        let s = summary(&rows);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "JOB                STAGE   STATUS  DURATION");
        assert_eq!(lines[1], "build              build   passed  1.50s");
        assert_eq!(
            lines[2],
            "    config 0.01s, prepare 1.00s, build_script 0.40s, cleanup 0.09s"
        );
        assert_eq!(
            lines[3],
            "    cache 'deps': hit, saved; artifacts saved (2 KiB)"
        );
        assert_eq!(lines[4], "deploy-production  deploy  manual  -");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn repeated_phases_are_summed() {
        let s = Duration::from_secs;
        let p = vec![
            ("config".to_string(), s(1)),
            ("prepare".to_string(), s(2)),
            ("cleanup".to_string(), s(1)),
            ("config".to_string(), s(1)),
            ("prepare".to_string(), s(2)),
            ("cleanup".to_string(), s(1)),
        ];
        assert_eq!(
            format_phases(&p),
            "config 2.00s (2x), prepare 4.00s (2x), cleanup 2.00s (2x)"
        );
        assert_eq!(format_duration(s(125)), "2m05s");
    }

    #[test]
    fn plain_log_drops_sections_and_colours() {
        let log = "Running with gitlab-runner\nsection_start:1700000000:prepare_executor\r\x1b[0K\x1b[0K\x1b[36;1mPreparing the \"custom\" executor\x1b[0;m\nUsing Custom executor...\nsection_end:1700000001:prepare_executor\r\x1b[0K\n\x1b[32;1mJob succeeded\x1b[0;m\n";
        assert_eq!(
            plain_log(log),
            "Running with gitlab-runner\nPreparing the \"custom\" executor\nUsing Custom executor...\nJob succeeded\n"
        );
        let kept = strip_sections(log);
        assert!(kept.contains("\x1b[0K\x1b[36;1mPreparing the"), "{kept:?}");
        assert!(!kept.contains("section_"), "{kept:?}");
    }
}
