//! gitlab-runner's `config.toml`: where it is, what runners it has, and edits that keep every
//! other byte of the file (comments, other runners, formatting) as it was.
//!
//! Everything but [`read`] and [`write`] is pure: text in, text out.

use crate::secret::Secret;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Table};

/// What went wrong with config.toml. Each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunnerConfigError {
    #[error("{path}: invalid TOML: {message}; fix the file by hand (pogo did not change it)")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `runners` is not a list of [[runners]] tables; fix the file by hand (pogo did not change it)")]
    NotRunnerTables { path: PathBuf },
    #[error("{path} already has a runner named '{name}'; pass --replace to replace it, or choose another --name")]
    Duplicate { path: PathBuf, name: String },
    #[error("{path} has no runner named '{name}'{}", if known.is_empty() { " (it has no runners)".to_string() } else { format!("; it has: {}", known.join(", ")) })]
    NotFound {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {message}; the old file is unchanged")]
    Write { path: PathBuf, message: String },
    #[error(
        "internal error: the edited {path} would not be valid ({message}); nothing was written"
    )]
    Invalid { path: PathBuf, message: String },
}

/// The default location, as gitlab-runner picks it: `/etc/gitlab-runner/config.toml` for root,
/// `~/.gitlab-runner/config.toml` for anyone else.
pub fn default_path(is_root: bool, home: &Path) -> PathBuf {
    if is_root {
        PathBuf::from("/etc/gitlab-runner/config.toml")
    } else {
        home.join(".gitlab-runner").join("config.toml")
    }
}

/// One `[[runners]]` entry, as far as pogo cares.
#[derive(Debug, Clone)]
pub struct RunnerEntry {
    pub name: String,
    pub url: String,
    pub token: Secret,
    pub executor: String,
    /// `[runners.custom]`'s `run_exec`, when set.
    pub run_exec: Option<String>,
    /// The `--config PATH` in `run_args`, when there is one.
    pub pogo_config: Option<PathBuf>,
    /// `tls-ca-file`: the private CA GitLab's certificate comes from.
    pub tls_ca_file: Option<PathBuf>,
}

impl RunnerEntry {
    /// Whether gitlab-runner hands this runner's jobs to pogo (a custom executor whose
    /// `run_exec` is a program named `pogo`, or `pogo_binary`).
    pub fn uses_pogo(&self, pogo_binary: Option<&Path>) -> bool {
        if self.executor != "custom" {
            return false;
        }
        let Some(exec) = &self.run_exec else {
            return false;
        };
        let exec = Path::new(exec);
        exec.file_name().is_some_and(|n| n == "pogo") || pogo_binary.is_some_and(|p| p == exec)
    }
}

/// A new entry for `pogo register`.
#[derive(Debug, Clone)]
pub struct NewRunner {
    pub name: String,
    pub url: String,
    pub id: u64,
    pub token: Secret,
    /// RFC 3339 UTC time the token was obtained.
    pub token_obtained_at: String,
    /// RFC 3339 expiry from GitLab (none: `0001-01-01T00:00:00Z`, gitlab-runner's "never").
    pub token_expires_at: Option<String>,
    pub builds_dir: String,
    pub cache_dir: String,
    /// pogo's absolute path.
    pub pogo: PathBuf,
    /// The absolute path of the pogo config the runner uses.
    pub pogo_config: PathBuf,
    /// `tls-ca-file` (absolute), for a GitLab whose certificate comes from a private CA.
    pub tls_ca_file: Option<PathBuf>,
}

/// What gitlab-runner creates for a new file (plus a comment saying who wrote it).
const NEW_FILE_HEADER: &str = "\
# gitlab-runner configuration, created by `pogo register`.
concurrent = 1
check_interval = 0
";

fn toml_string(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_string()
}

fn toml_datetime(s: &str) -> Option<String> {
    s.parse::<toml_edit::Datetime>().ok().map(|d| d.to_string())
}

/// The `[[runners]]` entry as text, indented like gitlab-runner writes it.
pub fn render_runner(r: &NewRunner) -> String {
    let pogo = r.pogo.to_string_lossy();
    let config = r.pogo_config.to_string_lossy();
    let mut s = String::new();
    s.push_str(&format!(
        "# Added by `pogo register`; remove it with `pogo unregister {}`.\n",
        r.name.replace('\n', " ")
    ));
    s.push_str("[[runners]]\n");
    s.push_str(&format!("  name = {}\n", toml_string(&r.name)));
    s.push_str(&format!("  url = {}\n", toml_string(&r.url)));
    if let Some(ca) = &r.tls_ca_file {
        s.push_str(&format!(
            "  tls-ca-file = {}\n",
            toml_string(&ca.to_string_lossy())
        ));
    }
    if r.id != 0 {
        s.push_str(&format!("  id = {}\n", r.id));
    }
    s.push_str(&format!("  token = {}\n", toml_string(r.token.expose())));
    if let Some(t) = toml_datetime(&r.token_obtained_at) {
        s.push_str(&format!("  token_obtained_at = {t}\n"));
    }
    let expires = r
        .token_expires_at
        .as_deref()
        .and_then(toml_datetime)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    s.push_str(&format!("  token_expires_at = {expires}\n"));
    s.push_str("  executor = \"custom\"\n");
    s.push_str(&format!("  builds_dir = {}\n", toml_string(&r.builds_dir)));
    s.push_str(&format!("  cache_dir = {}\n", toml_string(&r.cache_dir)));
    s.push_str("  [runners.custom]\n");
    for phase in ["config", "prepare", "run", "cleanup"] {
        s.push_str(&format!("    {phase}_exec = {}\n", toml_string(&pogo)));
        s.push_str(&format!(
            "    {phase}_args = [{}, {}, {}]\n",
            toml_string("--config"),
            toml_string(&config),
            toml_string(phase)
        ));
    }
    s
}

fn parse(text: &str, path: &Path) -> Result<DocumentMut, RunnerConfigError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        RunnerConfigError::Syntax {
            path: path.to_path_buf(),
            message: format!("{at}{}", e.message().trim().replace('\n', " ")),
        }
    })
}

fn str_of(t: &Table, key: &str) -> String {
    t.get(key)
        .and_then(Item::as_str)
        .unwrap_or_default()
        .to_string()
}

fn entry_of(t: &Table) -> RunnerEntry {
    let custom = t.get("custom").and_then(Item::as_table_like);
    let run_exec = custom
        .and_then(|c| c.get("run_exec"))
        .and_then(Item::as_str)
        .map(str::to_string);
    let pogo_config = custom
        .and_then(|c| c.get("run_args"))
        .and_then(Item::as_array)
        .and_then(|a| {
            let args: Vec<&str> = a.iter().filter_map(|v| v.as_str()).collect();
            args.iter()
                .position(|a| *a == "--config")
                .and_then(|i| args.get(i + 1).map(|p| PathBuf::from(*p)))
                .or_else(|| {
                    args.iter()
                        .find_map(|a| a.strip_prefix("--config=").map(PathBuf::from))
                })
        });
    RunnerEntry {
        name: str_of(t, "name"),
        url: str_of(t, "url"),
        token: Secret::new(str_of(t, "token")),
        executor: str_of(t, "executor"),
        run_exec,
        pogo_config,
        tls_ca_file: Some(str_of(t, "tls-ca-file"))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
    }
}

/// The `[[runners]]` of a config.toml text.
pub fn list(text: &str, path: &Path) -> Result<Vec<RunnerEntry>, RunnerConfigError> {
    let doc = parse(text, path)?;
    runners_of(&doc, path)
}

fn runners_of(doc: &DocumentMut, path: &Path) -> Result<Vec<RunnerEntry>, RunnerConfigError> {
    match doc.get("runners") {
        None => Ok(Vec::new()),
        Some(Item::ArrayOfTables(a)) => Ok(a.iter().map(entry_of).collect()),
        Some(_) => Err(RunnerConfigError::NotRunnerTables {
            path: path.to_path_buf(),
        }),
    }
}

/// Checks that `text` is what the edit meant: valid TOML whose runner names are `expected`.
fn validate(text: &str, path: &Path, expected: &[String]) -> Result<(), RunnerConfigError> {
    let invalid = |message: String| RunnerConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let runners = list(text, path).map_err(|e| invalid(e.to_string()))?;
    let names: Vec<String> = runners.into_iter().map(|r| r.name).collect();
    if names != expected {
        return Err(invalid(format!(
            "runners would be {names:?} instead of {expected:?}"
        )));
    }
    Ok(())
}

/// How [`add`] changed the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Appended after everything else.
    Appended,
    /// Replaced the same-named entry in place (`--replace`); the old entry's token.
    Replaced { old_url: String },
}

/// Refuses early (before GitLab is asked) when `name` exists and `replace` is off, or when the
/// file is not valid.
pub fn check_can_add(
    text: &str,
    path: &Path,
    name: &str,
    replace: bool,
) -> Result<(), RunnerConfigError> {
    let runners = list(text, path)?;
    if !replace && runners.iter().any(|r| r.name == name) {
        return Err(RunnerConfigError::Duplicate {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Adds `runner` to the config.toml `text` (empty: a new file). A new entry is appended as
/// text, so every existing byte stays; with `replace`, a same-named entry is swapped in place
/// (keeping the comments above it) and the rest is re-emitted unchanged by toml_edit.
pub fn add(
    text: &str,
    path: &Path,
    runner: &NewRunner,
    replace: bool,
) -> Result<(String, Added), RunnerConfigError> {
    let doc = parse(text, path)?;
    let runners = runners_of(&doc, path)?;
    let mut names: Vec<String> = runners.iter().map(|r| r.name.clone()).collect();
    let existing = runners.iter().position(|r| r.name == runner.name);
    let snippet = render_runner(runner);

    let (out, added) = match existing {
        Some(_) if !replace => {
            return Err(RunnerConfigError::Duplicate {
                path: path.to_path_buf(),
                name: runner.name.clone(),
            })
        }
        Some(index) => {
            let mut doc = doc;
            let new_doc = parse(&snippet, path)?;
            let mut new_table = new_doc
                .get("runners")
                .and_then(Item::as_array_of_tables)
                .and_then(|a| a.get(0))
                .cloned()
                .ok_or_else(|| RunnerConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: "rendered runner entry has no [[runners]] table".to_string(),
                })?;
            let Some(Item::ArrayOfTables(array)) = doc.get_mut("runners") else {
                return Err(RunnerConfigError::NotRunnerTables {
                    path: path.to_path_buf(),
                });
            };
            let Some(old) = array.get_mut(index) else {
                return Err(RunnerConfigError::NotRunnerTables {
                    path: path.to_path_buf(),
                });
            };
            // Keep the old entry's place and the comments above it.
            let position = old.position().unwrap_or(0);
            let prefix = old.decor().prefix().cloned();
            new_table.set_position(position);
            if let Some(custom) = new_table.get_mut("custom").and_then(Item::as_table_mut) {
                custom.set_position(position);
            }
            match prefix {
                Some(p) => new_table.decor_mut().set_prefix(p),
                None => new_table.decor_mut().set_prefix(""),
            }
            let old_url = str_of(old, "url");
            *old = new_table;
            (doc.to_string(), Added::Replaced { old_url })
        }
        None => {
            let mut out = String::with_capacity(text.len() + snippet.len() + 64);
            if text.trim().is_empty() {
                out.push_str(NEW_FILE_HEADER);
            } else {
                out.push_str(text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            out.push('\n');
            out.push_str(&snippet);
            names.push(runner.name.clone());
            (out, Added::Appended)
        }
    };
    validate(&out, path, &names)?;
    Ok((out, added))
}

/// Removes the runner named `name`; returns the new text and the removed entry.
pub fn remove(
    text: &str,
    path: &Path,
    name: &str,
) -> Result<(String, RunnerEntry), RunnerConfigError> {
    let mut doc = parse(text, path)?;
    let runners = runners_of(&doc, path)?;
    let Some(index) = runners.iter().position(|r| r.name == name) else {
        return Err(RunnerConfigError::NotFound {
            path: path.to_path_buf(),
            name: name.to_string(),
            known: runners.into_iter().map(|r| r.name).collect(),
        });
    };
    let removed = runners[index].clone();
    if let Some(Item::ArrayOfTables(array)) = doc.get_mut("runners") {
        array.remove(index);
    }
    let out = doc.to_string();
    let names: Vec<String> = runners
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, r)| r.name.clone())
        .collect();
    validate(&out, path, &names)?;
    Ok((out, removed))
}

/// Reads config.toml; a missing file is empty.
pub fn read(path: &Path) -> Result<String, RunnerConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(RunnerConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// Writes config.toml atomically with mode 0600 (it holds runner tokens).
pub fn write(path: &Path, text: &str) -> Result<(), RunnerConfigError> {
    super::atomic_write(path, text.as_bytes(), 0o600).map_err(|e| RunnerConfigError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(name: &str, token: &str) -> NewRunner {
        NewRunner {
            name: name.to_string(),
            url: "https://gitlab.example.com".to_string(),
            id: 7,
            token: Secret::new(token),
            token_obtained_at: "2024-05-01T10:00:00Z".to_string(),
            token_expires_at: None,
            builds_dir: "/builds".to_string(),
            cache_dir: "/home/r/cache".to_string(),
            pogo: PathBuf::from("/usr/local/bin/pogo"),
            pogo_config: PathBuf::from("/home/r/.pogo.yaml"),
            tls_ca_file: None,
        }
    }

    #[test]
    fn a_private_ca_is_written_as_the_runners_tls_ca_file_and_read_back() {
        let mut r = runner("ca", "glrt-x");
        r.tls_ca_file = Some(PathBuf::from("/etc/gitlab-runner/certs/company-ca.crt"));
        let (out, _) = add("", Path::new("/c.toml"), &r, false).unwrap();
        assert!(
            out.contains("  tls-ca-file = \"/etc/gitlab-runner/certs/company-ca.crt\"\n"),
            "{out}"
        );
        let listed = list(&out, Path::new("/c.toml")).unwrap();
        assert_eq!(
            listed[0].tls_ca_file.as_deref(),
            Some(Path::new("/etc/gitlab-runner/certs/company-ca.crt"))
        );
    }

    const EXISTING: &str = "\
# my runners
concurrent   = 4   # four at a time
check_interval = 0

[session_server]
  session_timeout = 1800

# the docker one
[[runners]]
  name = \"docker\"
  url = \"https://gitlab.example.com\"
  token = \"glrt-docker\"
  executor = \"docker\"
  [runners.docker]
    image = \"alpine\"   # small

[[runners]]
  name = \"pogo\"
  url = \"https://old.example.com\"
  token = \"glrt-old\"
  executor = \"custom\"
  [runners.custom]
    run_exec = \"/opt/pogo\"
    run_args = [\"--config\", \"/old.yaml\", \"run\"]

# trailing comment
";

    #[test]
    fn default_location_follows_gitlab_runner() {
        assert_eq!(
            default_path(true, Path::new("/root")),
            PathBuf::from("/etc/gitlab-runner/config.toml")
        );
        assert_eq!(
            default_path(false, Path::new("/home/u")),
            PathBuf::from("/home/u/.gitlab-runner/config.toml")
        );
    }

    #[test]
    fn appending_keeps_every_existing_byte() {
        let (out, added) = add(
            EXISTING,
            Path::new("c.toml"),
            &runner("new", "glrt-x"),
            false,
        )
        .unwrap();
        assert_eq!(added, Added::Appended);
        assert!(out.starts_with(EXISTING), "{out}");
        let names: Vec<_> = list(&out, Path::new("c.toml"))
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["docker", "pogo", "new"]);
    }

    #[test]
    fn new_entry_points_every_phase_at_pogo_with_its_config() {
        let (out, _) = add("", Path::new("c.toml"), &runner("p", "glrt-x"), false).unwrap();
        let doc: DocumentMut = out.parse().unwrap();
        let r = &doc["runners"][0];
        assert_eq!(r["executor"].as_str(), Some("custom"));
        assert_eq!(r["id"].as_integer(), Some(7));
        assert_eq!(r["builds_dir"].as_str(), Some("/builds"));
        for phase in ["config", "prepare", "run", "cleanup"] {
            assert_eq!(
                r["custom"][&format!("{phase}_exec")].as_str(),
                Some("/usr/local/bin/pogo")
            );
            let args: Vec<_> = r["custom"][&format!("{phase}_args")]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(args, ["--config", "/home/r/.pogo.yaml", phase]);
        }
        assert_eq!(doc["concurrent"].as_integer(), Some(1));
        let e = list(&out, Path::new("c.toml")).unwrap();
        assert!(e[0].uses_pogo(None));
        assert_eq!(e[0].pogo_config, Some(PathBuf::from("/home/r/.pogo.yaml")));
    }

    #[test]
    fn same_name_is_refused_without_replace() {
        let err = add(
            EXISTING,
            Path::new("c.toml"),
            &runner("pogo", "glrt-x"),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--replace"), "{err}");
        assert!(check_can_add(EXISTING, Path::new("c.toml"), "pogo", false).is_err());
        assert!(check_can_add(EXISTING, Path::new("c.toml"), "pogo", true).is_ok());
    }

    #[test]
    fn replace_swaps_in_place_and_keeps_the_rest() {
        let (out, added) = add(
            EXISTING,
            Path::new("c.toml"),
            &runner("pogo", "glrt-new"),
            true,
        )
        .unwrap();
        assert_eq!(
            added,
            Added::Replaced {
                old_url: "https://old.example.com".to_string()
            }
        );
        let head = EXISTING
            .split("[[runners]]\n  name = \"pogo\"")
            .next()
            .unwrap();
        assert!(out.starts_with(head), "{out}");
        assert!(out.ends_with("# trailing comment\n"), "{out}");
        assert!(!out.contains("glrt-old"));
        let e = list(&out, Path::new("c.toml")).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].token.expose(), "glrt-new");
        assert_eq!(e[1].run_exec.as_deref(), Some("/usr/local/bin/pogo"));
    }

    #[test]
    fn remove_drops_only_that_entry() {
        let (out, removed) = remove(EXISTING, Path::new("c.toml"), "docker").unwrap();
        assert_eq!(removed.token.expose(), "glrt-docker");
        assert!(out.starts_with("# my runners\nconcurrent   = 4   # four at a time\n"));
        assert!(!out.contains("docker"), "{out}");
        assert!(out.contains(
            "[[runners]]\n  name = \"pogo\"\n  url = \"https://old.example.com\"\n  token = \"glrt-old\"\n"
        ));
        let err = remove(EXISTING, Path::new("c.toml"), "nope").unwrap_err();
        assert!(err.to_string().contains("docker, pogo"), "{err}");
    }

    #[test]
    fn broken_file_is_reported_not_rewritten() {
        let err = add(
            "concurrent = [\n",
            Path::new("c.toml"),
            &runner("a", "t"),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("c.toml: invalid TOML"), "{err}");
        let err = add(
            "runners = 3\n",
            Path::new("c.toml"),
            &runner("a", "t"),
            false,
        )
        .unwrap_err();
        assert!(
            matches!(err, RunnerConfigError::NotRunnerTables { .. }),
            "{err}"
        );
    }

    #[test]
    fn names_and_paths_with_quotes_are_escaped() {
        let mut r = runner("we\"ird", "glrt-x");
        r.pogo_config = PathBuf::from("/home/a b/\"q\".yaml");
        let (out, _) = add("", Path::new("c.toml"), &r, false).unwrap();
        let e = list(&out, Path::new("c.toml")).unwrap();
        assert_eq!(e[0].name, "we\"ird");
        assert_eq!(
            e[0].pogo_config,
            Some(PathBuf::from("/home/a b/\"q\".yaml"))
        );
    }
}
