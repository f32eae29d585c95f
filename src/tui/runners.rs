//! The Runners screen's data: gitlab-runner's `config.toml`, read-only. Tokens are never kept
//! whole in the model: only their masked form.

use std::path::{Path, PathBuf};

/// One `[[runners]]` entry as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRow {
    pub name: String,
    pub url: String,
    pub executor: String,
    /// The token's kind only (`glrt-<redacted>`).
    pub token_masked: String,
    /// Whether the custom executor's `run_exec` is pogo.
    pub uses_pogo: bool,
    pub pogo_config: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnersState {
    pub path: Option<PathBuf>,
    pub rows: Vec<RunnerRow>,
    pub error: Option<String>,
    pub selected: usize,
    /// `systemctl --user is-active gitlab-runner.service`, when known.
    pub service: Option<String>,
}

/// Where gitlab-runner's config is: `--runner-config`, else the user's
/// `~/.gitlab-runner/config.toml` when it exists, else `/etc/gitlab-runner/config.toml`.
pub fn locate(flag: Option<&Path>, home: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(h) = home {
        let user = h.join(".gitlab-runner/config.toml");
        if user.is_file() {
            return user;
        }
    }
    PathBuf::from("/etc/gitlab-runner/config.toml")
}

/// Parse config.toml's runners through the same code as `pogo register` / `unregister`
/// (`setup::runner_config`). `pogo` is this binary's path, to tell which runners use it.
pub fn parse(text: &str, path: &Path, pogo: Option<&Path>) -> Result<Vec<RunnerRow>, String> {
    let entries = crate::setup::runner_config::list(text, path).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .map(|e| RunnerRow {
            uses_pogo: e.uses_pogo(pogo),
            token_masked: if e.token.is_empty() {
                "(none)".to_string()
            } else {
                crate::setup::redact(e.token.expose())
            },
            pogo_config: e.pogo_config.map(|p| p.display().to_string()),
            name: e.name,
            url: e.url,
            executor: e.executor,
        })
        .collect())
}

/// The pogo configs the runners run pogo with (`--config PATH`), other than `own` (the
/// dashboard's): their jobs' records and log copies are in those configs' working dirs.
pub fn other_pogo_configs(rows: &[RunnerRow], own: Option<&Path>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in rows.iter().filter_map(|r| r.pogo_config.as_deref()) {
        let p = PathBuf::from(p);
        if Some(p.as_path()) != own && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Load the runners from `path` into a state (errors become the screen's message).
pub fn load(path: &Path, pogo: Option<&Path>) -> RunnersState {
    let mut st = RunnersState {
        path: Some(path.to_path_buf()),
        ..RunnersState::default()
    };
    match std::fs::read_to_string(path) {
        Ok(text) => match parse(&text, path, pogo) {
            Ok(rows) => st.rows = rows,
            Err(e) => st.error = Some(e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            st.error = Some(format!(
                "{} does not exist: no runner is registered for this user yet; press a to \
                 register one (as `pogo register` does), or pass --runner-config PATH",
                path.display()
            ))
        }
        Err(e) => {
            st.error = Some(format!(
                "cannot read {}: {e} (run `pogo tui` as the user that owns it, or pass --runner-config PATH)",
                path.display()
            ))
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
concurrent = 2
# my runners
[[runners]]
  name = "laptop"
  url = "https://gitlab.example.com"
  token = "glrt-abcdefghijklmnop"
  executor = "custom"
  [runners.custom]
    run_exec = "/usr/local/bin/pogo"
    run_args = ["--config", "/home/me/.pogo.yaml", "run"]
[[runners]]
  name = "docker one"
  url = "https://gitlab.example.com"
  token = "glrt-zzzzzzzzzzzzzzzz"
  executor = "docker"
"#;

    #[test]
    fn runners_are_listed_with_masked_tokens_and_which_use_pogo() {
        let rows = parse(CONFIG, Path::new("config.toml"), None).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "laptop");
        assert!(rows[0].uses_pogo);
        assert_eq!(rows[0].pogo_config.as_deref(), Some("/home/me/.pogo.yaml"));
        assert!(!rows[1].uses_pogo);
        for r in &rows {
            assert!(!r.token_masked.contains("abcdefghijklmnop"));
            assert!(!r.token_masked.contains("zzzzzzzz"));
        }
        assert_eq!(rows[0].token_masked, "glrt-<redacted>");
    }

    #[test]
    fn a_broken_file_is_an_error_message_not_a_crash() {
        let p = Path::new("config.toml");
        assert!(parse("[[runners]\nname=", p, None).is_err());
        assert!(parse("runners = 3", p, None).is_err());
        assert!(parse("", p, None).unwrap().is_empty());
    }

    #[test]
    fn a_missing_file_says_how_to_get_one() {
        let st = load(Path::new("/nonexistent/config.toml"), None);
        assert!(st.error.unwrap().contains("press a to register"));
    }

    #[test]
    fn the_pogo_configs_of_other_runners_are_found_once_and_not_the_dashboards_own() {
        let row = |config: Option<&str>| RunnerRow {
            name: "r".into(),
            url: "https://gitlab.example.com".into(),
            executor: "custom".into(),
            token_masked: "glrt-<redacted>".into(),
            uses_pogo: true,
            pogo_config: config.map(str::to_string),
        };
        let rows = [
            row(Some("/etc/pogo.yaml")),
            row(Some("/home/me/.pogo.yaml")),
            row(None),
            row(Some("/etc/pogo.yaml")),
        ];
        assert_eq!(
            other_pogo_configs(&rows, Some(Path::new("/home/me/.pogo.yaml"))),
            vec![PathBuf::from("/etc/pogo.yaml")]
        );
    }
}
