//! The command lines of `pogo register`, `unregister`, `install`, `doctor` and `tui`: their
//! arguments and the help's notes (the commands themselves are in src/setup and src/tui).

use std::path::PathBuf;

const REGISTER_AFTER_HELP: &str = "\
Verifies the runner authentication token with GitLab (POST /api/v4/runners/verify), then adds a
[[runners]] entry to gitlab-runner's config.toml whose custom executor runs this pogo with
`--config <absolute path of the pogo config>` for every phase. Other runners, comments and
formatting in config.toml stay as they were; the file is written atomically with mode 0600.

The token: --token TOKEN, or $POGO_RUNNER_TOKEN, or --token - (read from stdin), or typed at
the prompt. A token on the command line is visible to other users in `ps` and is kept in shell
history: prefer the variable or stdin. pogo never prints tokens.

Create the runner first in GitLab (Settings > CI/CD > Runners > New project runner); its tags,
`run untagged` and `locked` are set there. Self-managed GitLab that still allows registration
tokens: --registration-token (deprecated by GitLab) with --tag-list, --description and
--run-untagged.";

/// `pogo register`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = REGISTER_AFTER_HELP)]
pub struct RegisterArgs {
    /// GitLab's base URL, e.g. https://gitlab.example.com
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Runner authentication token (glrt-…) of a runner created in GitLab; `-` reads it from
    /// stdin [env: POGO_RUNNER_TOKEN]
    #[arg(long, value_name = "TOKEN", conflicts_with = "registration_token")]
    pub token: Option<String>,
    /// Legacy: a registration token (deprecated by GitLab); `-` reads it from stdin
    /// [env: POGO_REGISTRATION_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub registration_token: Option<String>,
    /// The runner's name in config.toml
    #[arg(long, default_value = "pogo")]
    pub name: String,
    /// gitlab-runner's config.toml (default: /etc/gitlab-runner/config.toml for root,
    /// else ~/.gitlab-runner/config.toml)
    #[arg(long, value_name = "PATH")]
    pub runner_config: Option<PathBuf>,
    /// The pogo config the runner uses (default: --config, $POGO_CONFIG, an existing
    /// ~/.pogo.yaml or XDG config file, else ~/.pogo.yaml, created when missing)
    #[arg(long, value_name = "PATH")]
    pub pogo_config: Option<PathBuf>,
    /// The pogo binary gitlab-runner runs (default: this one)
    #[arg(long, value_name = "PATH")]
    pub pogo_binary: Option<PathBuf>,
    /// Replace an existing runner with the same name
    #[arg(long)]
    pub replace: bool,
    /// PEM file of the CA that signed GitLab's certificate (a private CA); also written to
    /// config.toml as the runner's tls-ca-file, so gitlab-runner (and pogo's jobs) trust it
    #[arg(long, value_name = "PATH")]
    pub tls_ca_file: Option<PathBuf>,
    /// Legacy registration only: comma-separated tags
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub tag_list: Vec<String>,
    /// Legacy registration only: the runner's description in GitLab (default: --name)
    #[arg(long)]
    pub description: Option<String>,
    /// Legacy registration only: also pick up jobs without tags
    #[arg(long)]
    pub run_untagged: bool,
}

/// `pogo unregister`.
#[derive(Debug, Clone, clap::Args)]
pub struct UnregisterArgs {
    /// The runner's name in config.toml
    pub name: String,
    /// gitlab-runner's config.toml (default as for `pogo register`)
    #[arg(long, value_name = "PATH")]
    pub runner_config: Option<PathBuf>,
    /// Only remove the entry from config.toml; do not contact GitLab
    #[arg(long)]
    pub local_only: bool,
}

const INSTALL_AFTER_HELP: &str = "\
Writes ~/.config/systemd/user/gitlab-runner.service (gitlab-runner run --config <config.toml>
for this user), then runs `systemctl --user daemon-reload` and
`systemctl --user enable --now gitlab-runner.service`. Checks linger with `loginctl show-user`
and prints the `loginctl enable-linger` command when it is off: without linger, jobs stop when
the user logs out. --dry-run prints every file and command and changes nothing.

Run it as the user that runs the jobs (rootless Podman), after `pogo register`.";

/// `pogo install`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = INSTALL_AFTER_HELP)]
pub struct InstallArgs {
    /// Print every file and command without doing them
    #[arg(long)]
    pub dry_run: bool,
    /// The gitlab-runner binary (default: found in $PATH)
    #[arg(long, value_name = "PATH")]
    pub gitlab_runner: Option<PathBuf>,
    /// gitlab-runner's config.toml (default: /etc/gitlab-runner/config.toml for root, else
    /// ~/.gitlab-runner/config.toml)
    #[arg(long, value_name = "PATH")]
    pub runner_config: Option<PathBuf>,
    /// Enable the unit but do not start it now
    #[arg(long)]
    pub no_start: bool,
    /// Replace a gitlab-runner.service that `pogo install` did not write (a copy is kept next
    /// to it as gitlab-runner.service.pogo-backup)
    #[arg(long)]
    pub force: bool,
}

/// `pogo doctor`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Checks podman, rootless prerequisites (subuid/subgid, XDG_RUNTIME_DIR, /dev/net/tun, slirp4netns or pasta, storage driver), cgroups and resource limits, linger, gitlab-runner and the runners that use pogo, the pogo config, mount paths, default_image and auth_file, whether jobs can build images. Exit status 1 when any check fails (✗)."
)]
pub struct DoctorArgs {
    /// Also run one job-shaped trial through pogo's own phases: the default image (or
    /// --image) with a service, pogo's init and stage agent, removed afterwards
    #[arg(long)]
    pub run: bool,
    /// Image for --run (default: the pogo config's default_image)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// gitlab-runner's config.toml (default: /etc/gitlab-runner/config.toml for root, else
    /// ~/.gitlab-runner/config.toml)
    #[arg(long, value_name = "PATH")]
    pub runner_config: Option<PathBuf>,
}

/// `pogo tui`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TuiArgs {
    /// gitlab-runner's config.toml (default: ~/.gitlab-runner/config.toml, else
    /// /etc/gitlab-runner/config.toml)
    #[arg(long, value_name = "PATH")]
    pub runner_config: Option<PathBuf>,
}
