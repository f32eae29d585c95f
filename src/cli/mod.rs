//! The command line, the only module that knows clap: the custom-executor phases
//! gitlab-runner calls and every other subcommand with their arguments (exec.rs, setup.rs),
//! plain `pogo` opening the dashboard on a terminal, shell completions and man pages. It
//! depends on no other part of pogo; src/app.rs runs what it parsed.

mod exec;
mod setup;

pub use exec::ExecArgs;
pub use setup::{DoctorArgs, InstallArgs, RegisterArgs, TuiArgs, UnregisterArgs};

use clap::{Parser, Subcommand};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Parser)]
#[command(
    name = "pogo",
    version,
    about = "GitLab Runner custom executor on rootless Podman"
)]
pub struct Cli {
    /// pogo config file (default: $POGO_CONFIG, ~/.pogo.yaml, then $XDG_CONFIG_HOME/pogo/config.yaml)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// config_exec: print the executor configuration JSON for gitlab-runner
    Config,
    /// prepare_exec: pull images, start services and the job container
    Prepare,
    /// run_exec: run one stage script in the job container
    Run {
        /// The stage script gitlab-runner wrote
        script: PathBuf,
        /// The stage name (prepare_script, get_sources, build_script, ...)
        stage: String,
    },
    /// cleanup_exec: remove the job's containers, pod and volumes
    #[command(alias = "clean")]
    Cleanup,
    /// The background removal `pogo cleanup` starts (not for direct use): remove the podman
    /// objects the order file names, holding its lock
    #[command(hide = true)]
    RemoveJob {
        /// `<working_dir>/removals/<job key>`
        order: PathBuf,
    },
    /// Run a project's .gitlab-ci.yml locally through the executor phases
    Exec(ExecArgs),
    /// Remove containers, pods and volumes of finished jobs (pogo's labels only)
    Gc(GcArgs),
    /// Print the effective configuration as YAML (credentials redacted)
    Print,
    /// Print pogo's version
    Version,
    /// Add a runner to gitlab-runner's config.toml that hands its jobs to pogo
    Register(RegisterArgs),
    /// Remove a runner from gitlab-runner's config.toml (and tell GitLab)
    Unregister(UnregisterArgs),
    /// Install and enable the systemd user unit that runs gitlab-runner for this user
    Install(InstallArgs),
    /// Check this machine for running jobs in rootless Podman through pogo
    Doctor(DoctorArgs),
    /// Print the shell completion script for SHELL
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print pogo's man page (or write one page per command into --dir)
    Man {
        /// Write pogo.1 and pogo-COMMAND.1 into this directory instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The dashboard: live jobs and their logs, the config with a preview, the runners (also
    /// plain `pogo` on a terminal)
    Tui(TuiArgs),
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Show what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove jobs with no live pogo process older than this (e.g. 30m, 2h) instead of
    /// older than their job timeout + 15 min
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Only this runner's jobs (its short token, label io.pogo.runner)
    #[arg(long, value_name = "TOKEN")]
    pub runner: Option<String>,
    /// Print only errors
    #[arg(long)]
    pub quiet: bool,
}

/// Parse the command line; plain `pogo` (no subcommand) on a terminal opens the dashboard.
pub fn parse_cli_or_dashboard() -> Cli {
    match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::MissingSubcommand
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) && std::io::stdout().is_terminal()
                && std::io::stdin().is_terminal() =>
        {
            let args = std::env::args_os().chain(std::iter::once("tui".into()));
            Cli::try_parse_from(args).unwrap_or_else(|e| e.exit())
        }
        Err(e) => e.exit(),
    }
}

/// `pogo completions SHELL`: the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let full = <Cli as clap::CommandFactory>::command();
    // clap_complete would offer hidden subcommands too (`remove-job`, pogo's own)
    let shown = full.get_subcommands().filter(|s| !s.is_hide_set()).cloned();
    let mut cmd = clap::Command::new("pogo")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(shown);
    clap_complete::generate(shell, &mut cmd, "pogo", out);
}

/// `pogo man`: `pogo.1` to `out`, or with `dir`, `pogo.1` and one `pogo-COMMAND.1` per
/// subcommand into `dir`. Returns the files written.
pub fn man(dir: Option<&Path>, out: &mut dyn Write) -> io::Result<Vec<PathBuf>> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(out)?;
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    let main = dir.join("pogo.1");
    std::fs::write(&main, &buf)?;
    written.push(main);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("pogo-{}", sub.get_name());
        let sub = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("pogo {}", sub.get_name()));
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub).render(&mut buf)?;
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, &buf)?;
        written.push(file);
    }
    Ok(written)
}
