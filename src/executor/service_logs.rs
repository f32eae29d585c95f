//! The services' output in the job log, as the Docker executor gives it:
//!
//! * `CI_DEBUG_SERVICES: "true"`: while each stage runs, every service's output (stdout and
//!   stderr) is streamed into the job log, each line after `[service:ALIAS]` in its own
//!   colour; what podman had not read out when the stage ends is shown then. Each stage
//!   follows on from where the last one stopped (`podman logs --since` the last line's
//!   timestamp, kept in the job's private directory), so nothing is shown twice or lost.
//! * A script that fails while a service is no longer running says so, with the service's
//!   last lines: the usual reason a test suite fails at once is its database that died.
//!
//! The value is the job's own choice about its own log, so the job's variable is used as is.

use super::{jobdata, log_warning, Context};
use crate::podman::args;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The variable that turns the streaming on.
pub const VARIABLE: &str = "CI_DEBUG_SERVICES";
/// Where the last shown line's timestamp of each service is kept, in the job's directory.
const POSITIONS_FILE: &str = "service-logs.json";
/// The colour of a service's lines (gitlab-runner shows them in their own colour).
const COLOUR: &str = "\x1b[0;36m";
const RESET: &str = "\x1b[0;m";

/// `CI_DEBUG_SERVICES` as gitlab-runner reads it: `true`/`TRUE`/`True` on,
/// `false`/`FALSE`/`False` (or unset) off, anything else off with a warning.
pub fn enabled(value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("") => Ok(false),
        Some("true" | "TRUE" | "True") => Ok(true),
        Some("false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(format!(
            "{VARIABLE}: '{other}' is not true or false; service logs are not shown"
        )),
    }
}

/// What precedes a service's lines: its alias (or the name its image gives it).
pub fn prefix(svc: &crate::podman::service::Service) -> String {
    let name = args::service_hostnames(svc)
        .into_iter()
        .next()
        .unwrap_or_else(|| svc.name.clone());
    format!("{COLOUR}[service:{name}]{RESET} ")
}

/// A `podman logs --timestamps` line split into its timestamp and the line itself.
pub fn split_timestamp(line: &str) -> (Option<&str>, &str) {
    match line.split_once(' ') {
        Some((ts, rest)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.contains('T') => {
            (Some(ts), rest)
        }
        _ => (None, line),
    }
}

/// Whether timestamp `ts` comes after `last` (RFC 3339, as podman writes them); when either
/// cannot be read, yes (a line shown twice is better than one lost).
pub fn is_after(ts: &str, last: Option<&str>) -> bool {
    let Some(last) = last else { return true };
    match (
        humantime::parse_rfc3339_weak(ts.trim_end_matches('Z')),
        humantime::parse_rfc3339_weak(last.trim_end_matches('Z')),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => true,
    }
}

/// The followers of one stage.
pub struct Followers {
    tasks: Vec<tokio::task::JoinHandle<(String, Option<String>)>>,
    children: Vec<tokio::process::Child>,
    positions: BTreeMap<String, String>,
}

fn read_positions(ctx: &Context) -> BTreeMap<String, String> {
    let dir = jobdata::dir(&ctx.config.working_dir, &ctx.job.names.key);
    std::fs::read(dir.join(POSITIONS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Start following every service of the job when `CI_DEBUG_SERVICES` asks for it.
pub fn start(ctx: &Context) -> Option<Followers> {
    if ctx.job.services.is_empty() {
        return None;
    }
    match enabled(
        ctx.env
            .get(&format!("CUSTOM_ENV_{VARIABLE}"))
            .map(String::as_str),
    ) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            log_warning(&e);
            return None;
        }
    }
    let positions = read_positions(ctx);
    let mut followers = Followers {
        tasks: Vec::new(),
        children: Vec::new(),
        positions,
    };
    for (i, svc) in ctx.job.services.iter().enumerate() {
        let container = ctx.job.names.service(i);
        let last = followers.positions.get(&container).cloned();
        let Some(mut child) = podman_logs(ctx, &container, last.as_deref(), true) else {
            log_warning(&format!("cannot follow the output of service {}", svc.name));
            continue;
        };
        let prefix = prefix(svc);
        let (out, err) = (child.stdout.take(), child.stderr.take());
        followers.tasks.push(tokio::spawn(async move {
            let last = follow(out, err, &prefix, last).await;
            (container, last)
        }));
        followers.children.push(child);
    }
    Some(followers)
}

/// `podman logs --timestamps` of `container` from after `since`, following it or not.
fn podman_logs(
    ctx: &Context,
    container: &str,
    since: Option<&str>,
    follow: bool,
) -> Option<tokio::process::Child> {
    let mut argv = vec!["logs".to_string(), "--timestamps".to_string()];
    if follow {
        argv.push("--follow".to_string());
    }
    if let Some(ts) = since {
        argv.extend(["--since".to_string(), ts.to_string()]);
    }
    argv.extend(["--".to_string(), container.to_string()]);
    let mut cmd = ctx.podman.command(&argv);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().ok()
}

/// Copy both streams of one `podman logs` into the job log; the last timestamp shown.
async fn follow(
    out: Option<tokio::process::ChildStdout>,
    err: Option<tokio::process::ChildStderr>,
    prefix: &str,
    since: Option<String>,
) -> Option<String> {
    let last = std::sync::Mutex::new(since.clone());
    let copy = |line: &str| {
        let (ts, text) = split_timestamp(line);
        if let Some(ts) = ts {
            if !is_after(ts, since.as_deref()) {
                return;
            }
            if let Ok(mut l) = last.lock() {
                if is_after(ts, l.as_deref()) {
                    *l = Some(ts.to_string());
                }
            }
        }
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{prefix}{text}");
        let _ = stdout.flush();
    };
    let o = async {
        if let Some(r) = out {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                copy(&l);
            }
        }
    };
    let e = async {
        if let Some(r) = err {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                copy(&l);
            }
        }
    };
    tokio::join!(o, e);
    last.into_inner().ok().flatten()
}

/// Stop following (the stage ended) and remember where each service's output stopped.
pub async fn stop(ctx: &Context, mut followers: Followers) {
    for child in &mut followers.children {
        let _ = child.start_kill();
    }
    for task in followers.tasks {
        if let Ok((container, Some(ts))) = task.await {
            followers.positions.insert(container, ts);
        }
    }
    for mut child in followers.children {
        let _ = child.wait().await;
    }
    // What the services wrote before now and the followers had not read yet (a busy machine's
    // `podman logs --follow` can start late): one `podman logs` that ends, from where they
    // stopped, so the job's last stage loses nothing either.
    for (i, svc) in ctx.job.services.iter().enumerate() {
        let container = ctx.job.names.service(i);
        let last = followers.positions.get(&container).cloned();
        let Some(mut child) = podman_logs(ctx, &container, last.as_deref(), false) else {
            continue;
        };
        let (out, err) = (child.stdout.take(), child.stderr.take());
        if let Some(ts) = follow(out, err, &prefix(svc), last).await {
            followers.positions.insert(container, ts);
        }
        let _ = child.wait().await;
    }
    let dir = jobdata::dir(&ctx.config.working_dir, &ctx.job.names.key);
    if let Ok(json) = serde_json::to_vec(&followers.positions) {
        let _ = jobdata::write_private(&dir, POSITIONS_FILE, &json);
    }
}

/// After a failed script: each service that is no longer running, with its last lines.
pub async fn report_stopped(ctx: &Context) {
    for (i, svc) in ctx.job.services.iter().enumerate() {
        let container = ctx.job.names.service(i);
        let Ok(Some(state)) = ctx.podman.container_state(&container).await else {
            continue;
        };
        if state.running {
            continue;
        }
        let logs = super::prepare::container_logs(ctx, &container).await;
        let oom = if state.oom_killed {
            ", out of memory"
        } else {
            ""
        };
        log_warning(&format!(
            "service {} is not running any more (exit code {}{oom}); its last lines:",
            svc.name, state.exit_code
        ));
        let prefix = prefix(svc);
        for line in logs
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("{prefix}{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ci_debug_services_takes_gitlab_runners_spellings() {
        for v in ["true", "TRUE", "True"] {
            assert_eq!(enabled(Some(v)), Ok(true));
        }
        for v in [None, Some(""), Some("false"), Some("FALSE"), Some("False")] {
            assert_eq!(enabled(v), Ok(false));
        }
        assert!(enabled(Some("yes"))
            .unwrap_err()
            .contains("'yes' is not true or false"));
    }

    #[test]
    fn a_service_line_is_shown_once_after_its_alias() {
        let svc = crate::podman::service::Service {
            name: "postgres:15".into(),
            alias: "db".into(),
            ..Default::default()
        };
        assert_eq!(prefix(&svc), "\x1b[0;36m[service:db]\x1b[0;m ");
        let line = "2026-12-07T13:09:09.389421609Z LOG:  ready";
        assert_eq!(
            split_timestamp(line),
            (Some("2026-12-07T13:09:09.389421609Z"), "LOG:  ready")
        );
        assert_eq!(split_timestamp("no stamp here"), (None, "no stamp here"));
        assert!(is_after(
            "2026-12-07T13:09:09.5Z",
            Some("2026-12-07T13:09:09.389421609Z")
        ));
        assert!(!is_after(
            "2026-12-07T13:09:09.389421609Z",
            Some("2026-12-07T13:09:09.389421609Z")
        ));
        assert!(is_after("2026-12-07T13:09:09Z", None));
    }
}
