//! What the dashboard asks podman: the labelled containers (`ps`), their numbers (`stats`),
//! the event stream that says when to ask again, `inspect` and `stop`. Parsing is pure and
//! tested; the calls go through [`crate::podman::Podman`].

use crate::podman::labels::LABEL_MANAGED_BY;
use crate::podman::Podman;
use serde::Deserialize;
use std::collections::HashMap;

/// The filter selecting everything pogo created.
pub fn managed_filter() -> String {
    format!("label={LABEL_MANAGED_BY}=pogo")
}

/// One container of `podman ps -a --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct PsContainer {
    #[serde(rename = "Id", default)]
    pub id: String,
    #[serde(rename = "Names", default)]
    pub names: Vec<String>,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "Labels", default)]
    pub labels: HashMap<String, String>,
    #[serde(rename = "Created", default)]
    pub created: u64,
    #[serde(rename = "IsInfra", default)]
    pub is_infra: bool,
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
    /// Its main process on the host (0 when not running): where its cgroup is found.
    #[serde(rename = "Pid", default)]
    pub pid: u32,
}

impl PsContainer {
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or("")
    }
}

/// CPU and memory of one container, as podman formats them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatEntry {
    pub name: String,
    pub cpu: String,
    pub mem: String,
}

#[derive(Deserialize)]
struct RawStat {
    #[serde(default)]
    name: String,
    #[serde(default)]
    cpu_percent: String,
    #[serde(default)]
    mem_usage: String,
}

pub fn ps_args() -> Vec<String> {
    vec![
        "ps".into(),
        "-a".into(),
        "--format".into(),
        "json".into(),
        "--filter".into(),
        managed_filter(),
    ]
}

/// Seconds between two samples of the streaming `podman stats`.
pub const STATS_INTERVAL: u32 = 2;

/// `podman stats` streaming every [`STATS_INTERVAL`] seconds, every running container (it
/// picks up containers that start later). `--no-stream` would be one podman per sample, and
/// on podman 4 its CPU% is the average since the container started; a stream's samples after
/// its first cover the last interval.
pub fn stats_stream_args() -> Vec<String> {
    vec![
        "stats".into(),
        "--format".into(),
        "json".into(),
        "--interval".into(),
        STATS_INTERVAL.to_string(),
    ]
}

/// The streaming `podman stats` output read line by line: each sample is a JSON array
/// (podman prints it over several lines, `]` alone ending it). The first sample is left out:
/// its CPU% is since each container started, not current.
#[derive(Debug, Default)]
pub struct StatsStream {
    buf: String,
    samples: usize,
}

/// A sample is never this big (bytes): garbage is dropped instead of growing without end.
const MAX_SAMPLE: usize = 4 << 20;

impl StatsStream {
    /// Add one line; a whole sample (after the first) comes back.
    pub fn push(&mut self, line: &str) -> Option<Vec<StatEntry>> {
        self.buf.push_str(line);
        self.buf.push('\n');
        let t = line.trim();
        if t != "]" && t != "[]" {
            if self.buf.len() > MAX_SAMPLE {
                self.buf.clear();
            }
            return None;
        }
        let sample = parse_stats(&std::mem::take(&mut self.buf)).ok()?;
        self.samples += 1;
        (self.samples > 1).then_some(sample)
    }
}

pub fn events_args() -> Vec<String> {
    vec![
        "events".into(),
        "--format".into(),
        "json".into(),
        "--filter".into(),
        managed_filter(),
    ]
}

pub fn inspect_args(container: &str) -> Vec<String> {
    vec![
        "container".into(),
        "inspect".into(),
        "--".into(),
        container.into(),
    ]
}

pub fn stop_args(container: &str) -> Vec<String> {
    vec![
        "stop".into(),
        "--time".into(),
        "10".into(),
        "--".into(),
        container.into(),
    ]
}

pub fn parse_ps(json: &str) -> Result<Vec<PsContainer>, String> {
    let t = json.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(t).map_err(|e| format!("cannot read `podman ps` output: {e}"))
}

/// `podman stats` output; `mem_usage` "1.45MB / 25.28GB" is shown as its first half.
pub fn parse_stats(json: &str) -> Result<Vec<StatEntry>, String> {
    let t = json.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<RawStat> =
        serde_json::from_str(t).map_err(|e| format!("cannot read `podman stats` output: {e}"))?;
    Ok(raw
        .into_iter()
        .map(|r| StatEntry {
            name: r.name,
            cpu: r.cpu_percent.trim().to_string(),
            mem: r
                .mem_usage
                .split('/')
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        })
        .collect())
}

/// One line of `podman events --format json`: only what decides whether to look again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct PodmanEvent {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Type", default)]
    pub kind: String,
}

pub fn parse_event(line: &str) -> Option<PodmanEvent> {
    serde_json::from_str(line.trim()).ok()
}

/// Turn what podman said when it failed into a banner that says how to fix it.
pub fn explain_podman_error(podman: &str, message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("cannot start") || m.contains("no such file or directory (os error 2)") {
        return format!(
            "podman is not installed or not on PATH ('{podman}' cannot be started): install it \
             (`apt-get install podman`) or set `podman:` in the pogo config"
        );
    }
    if m.contains("xdg_runtime_dir") || (m.contains("permission denied") && m.contains("/run/user"))
    {
        return format!(
            "podman cannot use its runtime directory: {}; log in as this user through a login \
             session (ssh, `machinectl shell`) or set XDG_RUNTIME_DIR=/run/user/$(id -u)",
            first_line(message)
        );
    }
    if m.contains("permission denied") && (m.contains("storage") || m.contains("containers")) {
        return format!(
            "podman cannot open its storage: {}; rootless podman storage belongs to one user: run \
             `pogo tui` as the user that runs gitlab-runner",
            first_line(message)
        );
    }
    format!(
        "podman failed: {}; check `{podman} ps` in a shell",
        first_line(message)
    )
}

fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// `podman ps` through the configured podman.
pub async fn ps(podman: &Podman) -> Result<Vec<PsContainer>, String> {
    let out = podman.run(&ps_args()).await.map_err(|e| e.to_string())?;
    parse_ps(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_of_podman_4_is_read_with_labels() {
        let json = r#"[{"AutoRemove":false,"Command":["sleep","60"],"Id":"e51d","Image":"localhost/pogo-test/busybox:latest","IsInfra":false,"Labels":{"io.pogo.job-key":"pogo-x-1-0","io.pogo.managed-by":"pogo"},"Names":["tuiprobe"],"State":"running","Created":1796025327,"ExitCode":0}]"#;
        let v = parse_ps(json).unwrap();
        assert_eq!(v[0].name(), "tuiprobe");
        assert_eq!(v[0].labels["io.pogo.job-key"], "pogo-x-1-0");
        assert_eq!(v[0].created, 1796025327);
        assert!(parse_ps("").unwrap().is_empty());
    }

    #[test]
    fn stats_show_cpu_percent_and_memory_in_use() {
        let json = r#"[{"id":"e51d","name":"tuiprobe","cpu_percent":"16.56%","mem_usage":"1.45MB / 25.28GB","mem_percent":"0.01%"}]"#;
        let v = parse_stats(json).unwrap();
        assert_eq!(
            v[0],
            StatEntry {
                name: "tuiprobe".into(),
                cpu: "16.56%".into(),
                mem: "1.45MB".into()
            }
        );
    }

    #[test]
    fn streamed_stats_come_per_sample_without_the_first_since_start_one() {
        // as podman 4.3 prints `stats --format json --interval 2`
        let sample = |cpu: &str| {
            format!(
                "[\n {{\n  \"id\": \"e0f2\",\n  \"name\": \"job\",\n  \"cpu_percent\": \"{cpu}\",\n  \"mem_usage\": \"520.2kB / 25.28GB\"\n }}\n]\n"
            )
        };
        let mut s = StatsStream::default();
        let mut got = Vec::new();
        let text = sample("51.96%") + &sample("0.00%") + "[]\n" + &sample("99.88%");
        for line in text.lines() {
            got.extend(s.push(line));
        }
        let cpus: Vec<Vec<String>> = got
            .iter()
            .map(|v| v.iter().map(|e| e.cpu.clone()).collect())
            .collect();
        assert_eq!(
            cpus,
            vec![
                vec!["0.00%".to_string()],
                vec![],
                vec!["99.88%".to_string()]
            ],
            "the average since start is left out; no container running is an empty sample"
        );
        // garbage between samples does not stop the stream
        assert_eq!(s.push("Error: something"), None);
        assert_eq!(s.push("]"), None);
        for line in sample("5.00%").lines() {
            if let Some(v) = s.push(line) {
                assert_eq!(v[0].cpu, "5.00%");
            }
        }
    }

    #[test]
    fn an_event_line_is_read_and_garbage_ignored() {
        let e = parse_event(
            r#"{"ID":"e5","Name":"tuiprobe","Status":"start","Type":"container","Attributes":{}}"#,
        )
        .unwrap();
        assert_eq!((e.name.as_str(), e.status.as_str()), ("tuiprobe", "start"));
        assert!(parse_event("time=... level=warning").is_none());
    }

    #[test]
    fn podman_errors_come_with_the_fix() {
        let e = explain_podman_error(
            "podman",
            "cannot start 'podman': No such file or directory (os error 2)",
        );
        assert!(e.contains("apt-get install podman"), "{e}");
        let e = explain_podman_error("podman", "Error: mkdir /run/user/1000: permission denied");
        assert!(e.contains("XDG_RUNTIME_DIR"), "{e}");
        let e = explain_podman_error(
            "podman",
            "Error: open /home/gr/.local/share/containers/storage/overlay: permission denied",
        );
        assert!(e.contains("user that runs gitlab-runner"), "{e}");
    }
}
