//! `pogo install`: the systemd user unit that runs `gitlab-runner run` for this user
//! (`packaging/gitlab-runner.service` with the paths found here), enabled and started, plus the
//! linger check (without linger, the user's services stop when the user logs out).
//!
//! [`plan`] computes every file and command without changing anything; `--dry-run` prints it,
//! otherwise [`install_main`] carries it out.

use super::{find_in_path, runner_config, UserInfo};
use crate::cli::InstallArgs;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The unit as shipped in `packaging/`; [`render_unit`] fills in this machine's paths.
pub const UNIT_TEMPLATE: &str = include_str!("../../packaging/gitlab-runner.service");
/// The unit's file name.
pub const UNIT_NAME: &str = "gitlab-runner.service";
/// Where the Debian and RPM packages put gitlab-runner (used in a dry run when it is missing).
pub const DEFAULT_GITLAB_RUNNER: &str = "/usr/bin/gitlab-runner";

/// What `pogo install` does, step by step.
#[derive(Debug, Clone)]
pub struct Plan {
    pub user: UserInfo,
    /// gitlab-runner's path, when found.
    pub gitlab_runner: Option<PathBuf>,
    pub runner_config: PathBuf,
    pub unit_dir: PathBuf,
    pub unit_path: PathBuf,
    pub unit_text: String,
    /// Whether the unit file already has exactly this text.
    pub unit_unchanged: bool,
    /// The unit file there now was not written by `pogo install` (it is the user's): replaced
    /// only with `--force`, after a backup copy.
    pub unit_foreign: bool,
    pub commands: Vec<Vec<String>>,
    /// `Some(true)` linger on, `Some(false)` off, `None` unknown; and how it was found.
    pub linger: (Option<bool>, String),
    /// Findings to show before acting: (is a problem that stops a real install, text).
    pub notes: Vec<(bool, String)>,
}

/// A path as one systemd command-line word (quoted when needed; `%` and `$` escaped).
pub fn systemd_word(s: &str) -> String {
    let escaped = s.replace('%', "%%").replace('$', "$$");
    if escaped
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\' || c == ';')
    {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// How the units `pogo install` writes begin: a unit without it is the user's own.
const UNIT_HEADER: &str = "# Written by `pogo install`";

/// Where `--force` keeps a copy of the user's own unit before replacing it.
fn backup_path(unit: &Path) -> PathBuf {
    let mut name = unit.file_name().unwrap_or_default().to_os_string();
    name.push(".pogo-backup");
    unit.with_file_name(name)
}

/// The user unit for this machine: the packaged template with its `ExecStart=` pointing at
/// `gitlab_runner`, `runner_config` and `working_dir`.
pub fn render_unit(gitlab_runner: &Path, runner_config: &Path, working_dir: &Path) -> String {
    let mut out = String::from(UNIT_HEADER);
    out.push_str(
        " from pogo's packaging/gitlab-runner.service.\n\
         # `pogo install` again rewrites it; `pogo doctor` checks the set-up.\n",
    );
    let body = UNIT_TEMPLATE
        .lines()
        .skip_while(|l| l.starts_with('#') || l.trim().is_empty());
    for line in body {
        if line.starts_with("ExecStart=") {
            out.push_str(&format!(
                "ExecStart={} run --working-directory {} --config {}\n",
                systemd_word(&gitlab_runner.to_string_lossy()),
                systemd_word(&working_dir.to_string_lossy()),
                systemd_word(&runner_config.to_string_lossy()),
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Where to get gitlab-runner on this distribution (`/etc/os-release` text), as lines.
pub fn gitlab_runner_advice(os_release: &str) -> Vec<String> {
    let field = |k: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default()
    };
    let ids = format!("{} {}", field("ID"), field("ID_LIKE"));
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        _ => "amd64",
    };
    let repo = "https://packages.gitlab.com/install/repositories/runner/gitlab-runner";
    if ids.contains("debian") || ids.contains("ubuntu") {
        vec![
            "gitlab-runner is not in Debian/Ubuntu: use GitLab's official package repository:"
                .to_string(),
            format!(
                "curl -L {repo}/script.deb.sh | sudo bash && sudo apt-get install gitlab-runner"
            ),
        ]
    } else if ids.contains("fedora") || ids.contains("rhel") || ids.contains("centos") {
        vec![
            "install gitlab-runner from GitLab's official package repository:".to_string(),
            format!("curl -L {repo}/script.rpm.sh | sudo bash && sudo dnf install gitlab-runner"),
        ]
    } else {
        vec![
            "download GitLab's official gitlab-runner binary:".to_string(),
            format!("sudo curl -L -o /usr/local/bin/gitlab-runner https://gitlab-runner-downloads.s3.amazonaws.com/latest/binaries/gitlab-runner-linux-{arch} && sudo chmod +x /usr/local/bin/gitlab-runner"),
        ]
    }
}

/// [`gitlab_runner_advice`] for this machine.
pub fn gitlab_runner_advice_here() -> Vec<String> {
    gitlab_runner_advice(&std::fs::read_to_string("/etc/os-release").unwrap_or_default())
}

/// Runs `cmd` with a time limit; `Err` says why it did not finish or start.
pub fn output_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|e| e.to_string())?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!("no answer within {} s", timeout.as_secs_f32()))
        }
    }
}

/// Whether linger is on for `user`: `loginctl show-user`, else logind's linger file.
pub fn linger(user: &str) -> (Option<bool>, String) {
    let mut cmd = Command::new("loginctl");
    cmd.args(["show-user", user, "--property=Linger", "--value"]);
    if let Ok(out) = output_with_timeout(cmd, Duration::from_secs(2)) {
        if out.status.success() {
            let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if v == "yes" || v == "no" {
                return (Some(v == "yes"), "loginctl show-user".to_string());
            }
        }
        // `loginctl show-user` fails for users without a session even when logind runs.
    }
    let file = Path::new("/var/lib/systemd/linger").join(user);
    if Path::new("/var/lib/systemd/linger").is_dir() {
        return (Some(file.exists()), format!("{}", file.display()));
    }
    (
        None,
        "loginctl is not available (is systemd-logind running?)".to_string(),
    )
}

/// The unit directory: `$XDG_CONFIG_HOME/systemd/user` or `~/.config/systemd/user`.
pub fn unit_dir(env: &HashMap<String, String>, home: &Path) -> PathBuf {
    env.get("XDG_CONFIG_HOME")
        .filter(|v| Path::new(v).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"))
        .join("systemd")
        .join("user")
}

/// Computes every file and command of `pogo install` (read-only).
pub fn plan(args: &InstallArgs, env: &HashMap<String, String>) -> Plan {
    let user = UserInfo::current(env);
    let runner_config = super::register::runner_config_path(args.runner_config.as_deref(), &user);
    let mut notes = Vec::new();
    let gitlab_runner = match &args.gitlab_runner {
        Some(p) => find_in_path(&crate::fsutil::absolute(p).to_string_lossy(), env),
        None => find_in_path("gitlab-runner", env),
    };
    match &gitlab_runner {
        Some(p) => notes.push((false, format!("✓ gitlab-runner: {}", p.display()))),
        None => {
            let what = match &args.gitlab_runner {
                Some(p) => format!("✗ gitlab-runner: {} is not an executable file", p.display()),
                None => "✗ gitlab-runner is not installed (not in $PATH)".to_string(),
            };
            notes.push((true, what));
            for line in gitlab_runner_advice_here() {
                notes.push((false, format!("  {line}")));
            }
        }
    }
    if user.is_root() {
        notes.push((false, "⚠ you are root: this installs a user unit for root, whose jobs run in rootful Podman; run `pogo install` as the user that should run the jobs".to_string()));
    }
    notes.push(runners_note(&runner_config));
    let unit_dir = unit_dir(env, &user.home);
    let unit_path = unit_dir.join(UNIT_NAME);
    let unit_text = render_unit(
        gitlab_runner
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_GITLAB_RUNNER)),
        &runner_config,
        &user.home,
    );
    let existing = std::fs::read_to_string(&unit_path).ok();
    let unit_unchanged = existing.as_deref() == Some(unit_text.as_str());
    let unit_foreign = existing
        .as_deref()
        .is_some_and(|t| !unit_unchanged && !t.starts_with(UNIT_HEADER));
    if unit_foreign {
        if args.force {
            notes.push((
                false,
                format!(
                    "⚠ {} was not written by pogo install: replacing it (--force), the old one is kept as {}",
                    unit_path.display(),
                    backup_path(&unit_path).display()
                ),
            ));
        } else {
            notes.push((
                true,
                format!(
                    "✗ {} exists and was not written by pogo install (your own unit?): it is kept; \
                     move it away, or pass --force to replace it (a copy is kept as {})",
                    unit_path.display(),
                    backup_path(&unit_path).display()
                ),
            ));
        }
    }
    let sc = |rest: &[&str]| -> Vec<String> {
        ["systemctl", "--user"]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    let mut commands = vec![sc(&["daemon-reload"])];
    if args.no_start {
        commands.push(sc(&["enable", UNIT_NAME]));
    } else if unit_unchanged {
        commands.push(sc(&["enable", "--now", UNIT_NAME]));
    } else {
        // `restart` starts it, or restarts a running one so that it runs the new unit.
        commands.push(sc(&["enable", UNIT_NAME]));
        commands.push(sc(&["restart", UNIT_NAME]));
    }
    let linger = linger(&user.name);
    Plan {
        user,
        gitlab_runner,
        runner_config,
        unit_dir,
        unit_path,
        unit_text,
        unit_unchanged,
        unit_foreign,
        commands,
        linger,
        notes,
    }
}

/// The note on gitlab-runner's config.toml: whether runners there use pogo.
fn runners_note(runner_config: &Path) -> (bool, String) {
    match runner_config::read(runner_config).and_then(|t| runner_config::list(&t, runner_config)) {
        Ok(runners) => {
            let pogo: Vec<String> = runners
                .iter()
                .filter(|r| r.uses_pogo(None))
                .map(|r| r.name.clone())
                .collect();
            if !runner_config.exists() {
                (false, format!("⚠ {} does not exist yet: run `pogo register` (gitlab-runner picks it up when it appears)", runner_config.display()))
            } else if pogo.is_empty() {
                (
                    false,
                    format!(
                        "⚠ no runner in {} uses pogo yet: run `pogo register`",
                        runner_config.display()
                    ),
                )
            } else {
                (
                    false,
                    format!(
                        "✓ {}: runners using pogo: {}",
                        runner_config.display(),
                        pogo.join(", ")
                    ),
                )
            }
        }
        Err(e) => (false, format!("⚠ {e}")),
    }
}

fn linger_lines(plan: &Plan) -> Vec<String> {
    let user = &plan.user.name;
    match plan.linger.0 {
        Some(true) => vec![format!(
            "✓ linger is on for {user}: the service keeps running after logout"
        )],
        Some(false) => vec![
            format!(
                "⚠ linger is off for {user}: the runner (and its jobs) stop when {user} logs out"
            ),
            format!("  fix: sudo loginctl enable-linger {user}"),
        ],
        None => vec![
            format!("⚠ linger for {user} unknown: {}", plan.linger.1),
            format!("  fix (on a systemd machine): sudo loginctl enable-linger {user}"),
        ],
    }
}

fn shell_line(cmd: &[String]) -> String {
    shell_words::join(cmd)
}

/// The dry run's text: every finding, file and command.
pub fn render_dry_run(plan: &Plan) -> String {
    let mut s = String::from(
        "pogo install --dry-run: nothing is changed; this is what `pogo install` would do.\n",
    );
    for (_, n) in &plan.notes {
        s.push_str(n);
        s.push('\n');
    }
    if !plan.unit_dir.is_dir() {
        s.push_str(&format!(
            "mkdir -p {}\n",
            shell_words::quote(&plan.unit_dir.to_string_lossy())
        ));
    }
    if plan.unit_unchanged {
        s.push_str(&format!(
            "keep {} (already up to date):\n",
            plan.unit_path.display()
        ));
    } else {
        s.push_str(&format!(
            "write {} (mode 0644):\n",
            plan.unit_path.display()
        ));
    }
    for line in plan.unit_text.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    for c in &plan.commands {
        s.push_str(&format!("run {}\n", shell_line(c)));
    }
    s.push_str(&format!(
        "check loginctl show-user {} --property=Linger\n",
        plan.user.name
    ));
    for l in linger_lines(plan) {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// `pogo install`.
pub fn install_main(args: InstallArgs) -> i32 {
    let env = super::env_map();
    let plan = plan(&args, &env);
    if args.dry_run {
        print!("{}", render_dry_run(&plan));
        return 0;
    }
    for (_, n) in &plan.notes {
        println!("{n}");
    }
    if plan.notes.iter().any(|(stop, _)| *stop) {
        eprintln!("pogo install: nothing was changed; see the ✗ above");
        return 1;
    }
    if let Err(e) = super::create_dir(&plan.unit_dir, 0o755) {
        eprintln!(
            "pogo install: cannot create {}: {e}",
            plan.unit_dir.display()
        );
        return 1;
    }
    if plan.unit_unchanged {
        println!("✓ {} is up to date", plan.unit_path.display());
    } else {
        if plan.unit_foreign {
            let backup = backup_path(&plan.unit_path);
            if let Err(e) = std::fs::copy(&plan.unit_path, &backup) {
                eprintln!(
                    "pogo install: cannot keep a copy of {} as {}: {e}; nothing was changed",
                    plan.unit_path.display(),
                    backup.display()
                );
                return 1;
            }
            println!("✓ kept your unit as {}", backup.display());
        }
        if let Err(e) = super::atomic_write(&plan.unit_path, plan.unit_text.as_bytes(), 0o644) {
            eprintln!(
                "pogo install: cannot write {}: {e}",
                plan.unit_path.display()
            );
            return 1;
        }
        println!("✓ wrote {}", plan.unit_path.display());
    }
    for c in &plan.commands {
        let mut cmd = Command::new(&c[0]);
        cmd.args(&c[1..]);
        match output_with_timeout(cmd, Duration::from_secs(60)) {
            Ok(out) if out.status.success() => println!("✓ {}", shell_line(c)),
            Ok(out) => {
                let err = String::from_utf8_lossy(&out.stderr);
                let first = err.lines().next().unwrap_or("").trim();
                eprintln!("pogo install: `{}` failed: {first}", shell_line(c));
                eprintln!(
                    "  the unit is in place at {}; start a login session for {} (ssh or console, not `su`), then run: systemctl --user enable --now {UNIT_NAME}",
                    plan.unit_path.display(),
                    plan.user.name
                );
                return 1;
            }
            Err(e) => {
                eprintln!(
                    "pogo install: cannot run `{}`: {e}; is this a systemd machine?",
                    shell_line(c)
                );
                return 1;
            }
        }
    }
    for l in linger_lines(&plan) {
        println!("{l}");
    }
    println!("next: `pogo doctor` checks the whole set-up; `journalctl --user -u {UNIT_NAME}` shows the runner's log");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_execstart_uses_the_paths_found() {
        let u = render_unit(
            Path::new("/opt/gl/gitlab-runner"),
            Path::new("/home/a b/.gitlab-runner/config.toml"),
            Path::new("/home/a b"),
        );
        assert!(u.contains(
            "\nExecStart=/opt/gl/gitlab-runner run --working-directory \"/home/a b\" --config \"/home/a b/.gitlab-runner/config.toml\"\n"
        ), "{u}");
        assert!(u.contains("[Install]\nWantedBy=default.target\n"));
        assert_eq!(u.matches("ExecStart=").count(), 1);
    }

    #[test]
    fn percent_and_dollar_are_escaped_for_systemd() {
        assert_eq!(systemd_word("/a%b$c"), "/a%%b$$c");
        assert_eq!(systemd_word("/plain/path"), "/plain/path");
    }

    #[test]
    fn advice_names_the_official_repository_for_each_distro() {
        let deb = gitlab_runner_advice("ID=debian\nVERSION_ID=\"12\"\n").join("\n");
        assert!(deb.contains("script.deb.sh") && deb.contains("apt-get install gitlab-runner"));
        let fed = gitlab_runner_advice("ID=fedora\n").join("\n");
        assert!(fed.contains("script.rpm.sh") && fed.contains("dnf install"));
        let other = gitlab_runner_advice("ID=arch\n").join("\n");
        assert!(other.contains("gitlab-runner-downloads"));
    }
}
