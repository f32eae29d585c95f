//! Where `include:` files come from besides the project itself: `include: project` and
//! `include: component` from local git clones named with `--project-dir group/proj=PATH`,
//! `include: remote` and `include: template` over HTTP(S) unless `--offline`.
//!
//! The pipeline's values (project, ref, file, version) reach git only as data: a ref is
//! refused when it starts with `-` and passed after `--end-of-options`, files are read as
//! `COMMIT:FILE` with the commit git resolved (hex), and git runs without a shell.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where GitLab's own CI/CD templates (`include: template`) are fetched from: the templates
/// directory of GitLab's repository on gitlab.com, default branch.
pub const TEMPLATE_BASE: &str =
    "https://gitlab.com/gitlab-org/gitlab/-/raw/master/lib/gitlab/ci/templates/";

/// How long a remote include may take to arrive.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest remote include pogo reads.
const MAX_REMOTE_BYTES: u64 = 2 * 1024 * 1024;

/// What `pogo exec` may read includes from besides the project's own files.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// `--project-dir group/proj=PATH`: the clone that stands for a project.
    pub projects: Vec<(String, PathBuf)>,
    /// Fetching `include: remote` and `template`; `None` (`--offline`, and tests) refuses them.
    pub network: Option<Network>,
}

/// How remote and template includes are fetched.
#[derive(Debug, Clone)]
pub struct Network {
    /// The URL `include: template: NAME` is fetched from, with NAME appended.
    pub template_base: String,
    pub timeout: Duration,
    pub max_bytes: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            template_base: TEMPLATE_BASE.to_string(),
            timeout: FETCH_TIMEOUT,
            max_bytes: MAX_REMOTE_BYTES,
        }
    }
}

/// How to make an include `pogo exec` cannot read part of the project.
pub const VENDOR: &str = "put a copy in the project (for example under ci/) and include it with \
                          `local: ci/FILE.yml`";

/// A project's clone at one commit: where `include: project` and `component` files are read
/// from, and their own `include: local` files too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// `group/proj`, as the pipeline names it.
    pub project: String,
    pub dir: PathBuf,
    /// The ref as the pipeline gives it (`HEAD` without one), for messages.
    pub shown_ref: String,
    /// The commit git resolved it to (hex).
    pub commit: String,
}

impl Origins {
    /// The clone named for `project` (`--project-dir`), or how to name one.
    fn dir(&self, project: &str) -> Result<&Path, String> {
        let project = project.trim_matches('/');
        self.projects
            .iter()
            .rev()
            .find(|(name, _)| name == project)
            .map(|(_, dir)| dir.as_path())
            .ok_or_else(|| {
                format!(
                    "pogo exec reads another project's files from a clone you name: \
                     pass --project-dir {project}=PATH, or {VENDOR}"
                )
            })
    }

    /// `project` at `git_ref` (its clone's HEAD without one).
    pub fn checkout(&self, project: &str, git_ref: Option<&str>) -> Result<Checkout, String> {
        let dir = self.dir(project)?;
        let shown_ref = git_ref.unwrap_or("HEAD");
        let commit = resolve_commit(dir, shown_ref)?;
        Ok(Checkout {
            project: project.trim_matches('/').to_string(),
            dir: dir.to_path_buf(),
            shown_ref: shown_ref.to_string(),
            commit,
        })
    }

    /// Every file of `project` at `git_ref` (its clone's HEAD without one), for `rules:
    /// exists: project`.
    pub fn project_files(
        &self,
        project: &str,
        git_ref: Option<&str>,
    ) -> Result<Vec<String>, String> {
        self.checkout(project, git_ref)?.files()
    }

    /// `include: component: FQDN/group/proj/name@version` from the clone named for
    /// `group/proj`: the checkout and the file (`templates/name.yml`, else
    /// `templates/name/template.yml`). The FQDN is not looked at: the clone stands for the
    /// project on whatever server. `~latest` is the highest `X.Y.Z` tag, `1` and `1.2` the
    /// highest tag of that major or minor version, anything else a ref.
    pub fn component(&self, reference: &str) -> Result<(Checkout, String), String> {
        let (project, name, version) = parse_component(reference)?;
        let dir = self.dir(&project)?;
        let git_ref = match semver_prefix(&version) {
            Some(prefix) => latest_tag(dir, &prefix)?.ok_or_else(|| {
                format!(
                    "no tag of the clone {} matches @{version} (X.Y.Z tags are releases)",
                    dir.display()
                )
            })?,
            None => version.clone(),
        };
        let checkout = self.checkout(&project, Some(&git_ref))?;
        let files = checkout.files()?;
        let file = component_files(&name)
            .into_iter()
            .find(|f| files.contains(f))
            .ok_or_else(|| {
                format!(
                    "{project}@{git_ref} has no component '{name}' (neither {} in {})",
                    component_files(&name).join(" nor "),
                    dir.display()
                )
            })?;
        Ok((checkout, file))
    }
}

/// The files a component `name` may be, in GitLab's order.
pub fn component_files(name: &str) -> [String; 2] {
    [
        format!("templates/{name}.yml"),
        format!("templates/{name}/template.yml"),
    ]
}

/// `FQDN/group/proj/name@version` → (`group/proj`, `name`, `version`).
pub fn parse_component(reference: &str) -> Result<(String, String, String), String> {
    let bad = |why: &str| format!("'{reference}' {why} (FQDN/group/project/name@version)");
    let (path, version) = reference
        .rsplit_once('@')
        .ok_or_else(|| bad("has no version"))?;
    if version.is_empty() || version.starts_with('-') {
        return Err(bad("has no usable version"));
    }
    // the first segment is the server (an unset $CI_SERVER_FQDN stays as written)
    let rest = path.split_once('/').map(|(_, r)| r).unwrap_or_default();
    let Some((project, name)) = rest.rsplit_once('/') else {
        return Err(bad("names no project and component"));
    };
    if !crate::names::valid_project_path(project) || !crate::names::valid_project_path(name) {
        return Err(bad("is not a component path"));
    }
    Ok((project.to_string(), name.to_string(), version.to_string()))
}

/// The release numbers `version` asks for the highest of: `~latest` (any), `1` or `1.2`;
/// `None` for a ref (a full `1.2.3` too: that tag).
pub fn semver_prefix(version: &str) -> Option<Vec<u64>> {
    if version == "~latest" {
        return Some(Vec::new());
    }
    let parts: Option<Vec<u64>> = version.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| (1..=2).contains(&p.len()))
}

/// The highest `X.Y.Z` of `tags` starting with `prefix`.
pub fn highest_release<'a>(
    tags: impl IntoIterator<Item = &'a str>,
    prefix: &[u64],
) -> Option<String> {
    tags.into_iter()
        .filter_map(|t| {
            let n: Vec<u64> = t
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            (n.len() == 3 && n.starts_with(prefix)).then_some((n, t))
        })
        .max()
        .map(|(_, t)| t.to_string())
}

fn latest_tag(dir: &Path, prefix: &[u64]) -> Result<Option<String>, String> {
    let tags = git_out(dir, &["tag", "--list"])?;
    let tags = String::from_utf8_lossy(&tags);
    Ok(highest_release(tags.lines(), prefix))
}

/// The commit `git_ref` names in the clone at `dir`.
fn resolve_commit(dir: &Path, git_ref: &str) -> Result<String, String> {
    if git_ref.is_empty() || git_ref.starts_with('-') {
        return Err(format!("ref '{git_ref}' is not a branch, tag or commit"));
    }
    let spec = format!("{git_ref}^{{commit}}");
    let out = git_out(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ],
    )
    .map_err(|e| {
        if e.is_empty() {
            format!(
                "the clone {} has no branch, tag or commit '{git_ref}' (fetch it there, or fix ref:)",
                dir.display()
            )
        } else {
            format!("{} is not a git clone to read from: {e}", dir.display())
        }
    })?;
    let commit = String::from_utf8_lossy(&out).trim().to_string();
    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("git rev-parse gave '{commit}' for '{git_ref}'"));
    }
    Ok(commit)
}

impl Checkout {
    /// How the file is named in messages: `group/proj@ref:FILE`.
    pub fn shown(&self, file: &str) -> String {
        format!("{}@{}:{file}", self.project, self.shown_ref)
    }

    /// A file of the commit (`file` relative to the repository's top).
    pub fn read(&self, file: &str) -> Result<String, String> {
        let spec = format!("{}:{file}", self.commit);
        let out = git_out(&self.dir, &["cat-file", "blob", &spec]).map_err(|_| {
            format!(
                "no file '{file}' in {}@{} (the clone {})",
                self.project,
                self.shown_ref,
                self.dir.display()
            )
        })?;
        String::from_utf8(out).map_err(|_| format!("'{file}' is not UTF-8 text"))
    }

    /// Every file of the commit, for wildcard includes.
    pub fn files(&self) -> Result<Vec<String>, String> {
        let out = git_out(
            &self.dir,
            &["ls-tree", "-r", "--name-only", "-z", &self.commit],
        )?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect())
    }
}

/// `git -C dir ARGS`'s standard output, or its error output.
fn git_out(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The URL of GitLab's template `name` (`Jobs/Build.gitlab-ci.yml`), or why it is no name.
pub fn template_url(name: &str, network: &Network) -> Result<String, String> {
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && name.split('/').all(|s| !s.is_empty() && s != "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./+".contains(c));
    if !ok {
        return Err(format!("'{name}' is not the name of a GitLab template"));
    }
    Ok(format!("{}{name}", network.template_base))
}

/// The text at `url` (HTTP or HTTPS, the machine's CA store), at most `max_bytes`.
pub fn fetch(url: &str, network: &Network) -> Result<String, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("not an http:// or https:// URL".into());
    }
    let agent = crate::gitlab::agent(url, network.timeout, None)?;
    let resp = agent
        .get(url)
        .set("User-Agent", concat!("pogo/", env!("CARGO_PKG_VERSION")))
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("HTTP status {code}"),
            ureq::Error::Transport(t) => t.to_string(),
        })?;
    let mut body = Vec::new();
    resp.into_reader()
        .take(network.max_bytes + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the answer: {e}"))?;
    if body.len() as u64 > network.max_bytes {
        return Err(format!(
            "larger than {} KiB, the most pogo reads",
            network.max_bytes / 1024
        ));
    }
    String::from_utf8(body).map_err(|_| "the answer is not UTF-8 text".into())
}

/// Whether `text` has the `integrity` GitLab's `include: remote` gives: `sha256-` and the
/// base64 of its SHA-256.
pub fn check_integrity(text: &str, integrity: &str) -> Result<(), String> {
    let Some(expected) = integrity.strip_prefix("sha256-") else {
        return Err(format!("integrity: '{integrity}' is not sha256-BASE64"));
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let actual = base64(digest.as_ref());
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "its content does not match integrity: (sha256-{actual}, not {integrity})"
        ))
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
