//! Who runs gitlab-runner here. Rootless podman is per user: when gitlab-runner runs as another
//! user, its jobs are in that user's podman and this dashboard cannot see them. Parsing
//! `/proc/PID/status` is pure and tested; [`find_other_runner`] is the thin part that reads
//! `/proc`.

use std::path::Path;

/// The process name (`comm`) of gitlab-runner.
pub const RUNNER_COMM: &str = "gitlab-runner";

/// A gitlab-runner process that runs as another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRunner {
    /// The user's name (the uid in digits when it has no name).
    pub user: String,
    pub uid: u32,
}

/// The process name and real uid of a `/proc/PID/status` text; none for a zombie (it has
/// exited, only its parent has not reaped it yet).
pub fn parse_status(text: &str) -> Option<(&str, u32)> {
    let mut name = None;
    let mut uid = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Name:") {
            name = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("State:") {
            if v.trim_start().starts_with('Z') {
                return None;
            }
        } else if let Some(v) = line.strip_prefix("Uid:") {
            // real, effective, saved, filesystem (State comes before Uid)
            uid = v.split_whitespace().next().and_then(|u| u.parse().ok());
            break;
        }
    }
    Some((name?, uid?))
}

/// The uid of a gitlab-runner that runs as another user than `me` (the lowest such uid), given
/// the status texts of the processes; none when one runs as `me` or none runs at all.
pub fn other_runner_uid<I, S>(statuses: I, me: u32) -> Option<u32>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut uids: Vec<u32> = statuses
        .into_iter()
        .filter_map(|s| {
            parse_status(s.as_ref())
                .filter(|(name, _)| *name == RUNNER_COMM)
                .map(|(_, uid)| uid)
        })
        .collect();
    if uids.contains(&me) {
        return None;
    }
    uids.sort_unstable();
    uids.first().copied()
}

/// Look through `/proc` for a gitlab-runner of another user (cheap: `comm` first, `status`
/// only of gitlab-runner processes).
pub fn find_other_runner() -> Option<OtherRunner> {
    find_in(Path::new("/proc"), nix::unistd::getuid().as_raw())
}

fn find_in(proc: &Path, me: u32) -> Option<OtherRunner> {
    let statuses = std::fs::read_dir(proc)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == RUNNER_COMM)
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok());
    let uid = other_runner_uid(statuses, me)?;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    Some(OtherRunner { user, uid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, uid: u32) -> String {
        format!(
            "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t812\nNgid:\t0\nPid:\t812\n\
             PPid:\t1\nTracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
             FDSize:\t64\nGroups:\t{uid}\n"
        )
    }

    #[test]
    fn the_status_file_gives_the_name_and_the_real_uid() {
        assert_eq!(
            parse_status(&status("gitlab-runner", 998)),
            Some(("gitlab-runner", 998))
        );
        // setuid: real uid 1000, effective 0
        let t = "Name:\tsudo\nUid:\t1000\t0\t0\t0\n";
        assert_eq!(parse_status(t), Some(("sudo", 1000)));
        assert_eq!(parse_status("Name:\tx\n"), None);
        let zombie = status("gitlab-runner", 998).replace("S (sleeping)", "Z (zombie)");
        assert_eq!(
            parse_status(&zombie),
            None,
            "an exited process runs nothing"
        );
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn a_gitlab_runner_of_another_user_is_found() {
        let ps = [status("bash", 1000), status("gitlab-runner", 998)];
        assert_eq!(other_runner_uid(&ps, 1000), Some(998));
    }

    #[test]
    fn nothing_is_found_when_gitlab_runner_runs_as_us_or_not_at_all() {
        let ours = [status("gitlab-runner", 1000), status("gitlab-runner", 998)];
        assert_eq!(other_runner_uid(&ours, 1000), None);
        let none = [status("bash", 1000), status("gitlab-runner-helper", 998)];
        assert_eq!(other_runner_uid(&none, 1000), None);
        assert_eq!(other_runner_uid(Vec::<String>::new(), 1000), None);
    }

    #[test]
    fn a_fake_proc_tree_is_read_through_comm_then_status() {
        let d = tempfile::tempdir().unwrap();
        for (pid, name, uid) in [("1", "systemd", 0), ("812", "gitlab-runner", 0)] {
            let p = d.path().join(pid);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("comm"), format!("{name}\n")).unwrap();
            std::fs::write(p.join("status"), status(name, uid)).unwrap();
        }
        std::fs::create_dir(d.path().join("self")).unwrap();
        let found = find_in(d.path(), 4242).unwrap();
        assert_eq!(
            found,
            OtherRunner {
                user: "root".into(),
                uid: 0
            }
        );
        assert_eq!(find_in(d.path(), 0), None);
    }
}
