//! The project `pogo exec` runs: facts from its git repository (for the predefined
//! variables), the sources its jobs get, and `.pogo/`, where cache and artifacts are kept
//! between runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::driver::Variable;

/// The directory under the project where `pogo exec` keeps its state.
pub const STORE_DIR: &str = ".pogo";

/// What the local git repository says about HEAD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Git {
    pub sha: String,
    /// The branch, else the tag pointing at HEAD, else `HEAD` (detached).
    pub ref_name: String,
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub message: String,
    pub author: String,
    /// ISO 8601.
    pub timestamp: String,
    pub default_branch: Option<String>,
    pub user_name: Option<String>,
    pub user_email: Option<String>,
}

/// Everything a local job needs to know about the project and this run.
#[derive(Debug, Clone)]
pub struct Project {
    /// Absolute.
    pub dir: PathBuf,
    /// `local/<directory name>`.
    pub path: String,
    pub pipeline_id: u64,
    /// `None`: not in a git repository, or no commit yet.
    pub git: Option<Git>,
    /// Whether `dir` is inside a git work tree (even without commits).
    pub in_git: bool,
    /// `CI_PIPELINE_SOURCE`: `push` unless `--source` says otherwise.
    pub source: String,
}

/// The pipeline sources GitLab sets `CI_PIPELINE_SOURCE` to.
pub const SOURCES: &[&str] = &[
    "push",
    "web",
    "schedule",
    "api",
    "trigger",
    "pipeline",
    "parent_pipeline",
    "merge_request_event",
    "external_pull_request_event",
    "external",
    "chat",
    "webide",
    "ondemand_dast_scan",
    "ondemand_dast_validation",
    "security_orchestration_policy",
];

/// A merge request pipeline's source.
pub const MERGE_REQUEST: &str = "merge_request_event";

/// Files under `dir` (relative to `root`), without `.git` and pogo's store.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        if name == ".git" || name == STORE_DIR {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.display().to_string());
        }
    }
}

/// `git -C dir ARGS`'s output as it is (a file's content), if it succeeded.
fn git_bytes(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// [`git_bytes`] as trimmed text; `None` for empty output too.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let s = String::from_utf8(git_bytes(dir, args)?)
        .ok()?
        .trim_end()
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// What `rules: exists` and `rules: changes` look at, read from git once per run.
#[derive(Debug, Clone, Default)]
pub struct RepoFacts {
    /// The files of the commit (with `--dirty`, of the work tree too).
    pub files: Vec<String>,
    /// The files this push changes: on the default branch the last commit, on another branch
    /// the commits since it left the default branch; `None` for a tag or without git (then
    /// `changes` is true, as GitLab has it without a push to compare).
    pub changed: Option<Vec<String>>,
}

fn lines(s: Option<String>) -> Vec<String> {
    s.map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

impl Project {
    /// [`RepoFacts`] of this project (`dirty`: the work tree's uncommitted files count too).
    pub fn facts(&self, dirty: bool) -> RepoFacts {
        let Some(g) = &self.git else {
            let mut files = Vec::new();
            walk(&self.dir, &self.dir, &mut files);
            return RepoFacts {
                files,
                changed: None,
            };
        };
        let mut files = lines(git(&self.dir, &["ls-tree", "-r", "--name-only", "HEAD"]));
        let uncommitted = if dirty {
            lines(git(
                &self.dir,
                &["ls-files", "--modified", "--others", "--exclude-standard"],
            ))
        } else {
            Vec::new()
        };
        files.extend(uncommitted.iter().cloned());
        files.sort();
        files.dedup();
        let changed = match (&g.branch, &g.default_branch) {
            (None, _) | (_, None) => None,
            (Some(b), Some(d)) if b == d => {
                if git(&self.dir, &["rev-parse", "--verify", "-q", "HEAD~1"]).is_some() {
                    Some(lines(git(
                        &self.dir,
                        &["diff", "--name-only", "HEAD~1", "HEAD"],
                    )))
                } else {
                    Some(files.clone())
                }
            }
            (Some(_), Some(d)) => self.changed_against(d),
        }
        .map(|mut c| {
            c.extend(uncommitted);
            c
        });
        RepoFacts { files, changed }
    }

    /// The files changed between `reference` and HEAD (`changes: compare_to`), `None` when
    /// git does not know the ref.
    /// The cache key `cache: key: files` (or `files_commits`) gives this commit: a hash of the
    /// files' content as the job sees them (with `dirty`, the work tree's), or of the commits
    /// that last changed them; `default` when none of them exists; after `prefix-`.
    pub fn cache_key(&self, key: &super::pipeline::KeyFiles, dirty: bool) -> String {
        let mut hashed = Vec::new();
        for file in &key.files {
            let rel = file.trim_start_matches("./").trim_start_matches('/');
            let part = if key.commits {
                git(&self.dir, &["log", "-n", "1", "--format=%H", "--", rel])
                    .map(String::into_bytes)
            } else if dirty || self.git.is_none() {
                std::fs::read(self.dir.join(rel)).ok()
            } else {
                // `./`: relative to the project directory, which may be below the repository's top
                git_bytes(&self.dir, &["show", &format!("HEAD:./{rel}")])
            };
            if let Some(bytes) = part {
                hashed.extend_from_slice(rel.as_bytes());
                hashed.push(0);
                hashed.extend_from_slice(&bytes);
                hashed.push(0);
            }
        }
        let hash = if hashed.is_empty() {
            super::pipeline::DEFAULT_CACHE_KEY.to_string()
        } else {
            crate::names::sha256_hex(&[&hashed], 20)
        };
        match &key.prefix {
            Some(p) => format!("{p}-{hash}"),
            None => hash,
        }
    }

    pub fn changed_against(&self, reference: &str) -> Option<Vec<String>> {
        let base = git(&self.dir, &["merge-base", reference, "HEAD"])?;
        Some(lines(git(
            &self.dir,
            &["diff", "--name-only", &base, "HEAD"],
        )))
    }

    pub fn discover(dir: &Path) -> Self {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| crate::fsutil::absolute(dir));
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pipeline_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        let in_git = git(&dir, &["rev-parse", "--is-inside-work-tree"]).as_deref() == Some("true");
        // the project's path on GitLab, from the clone's `origin`, so that CI_PROJECT_PATH,
        // CI_PROJECT_NAMESPACE and CI_PROJECT_DIR are what they are there
        let remote = in_git
            .then(|| git(&dir, &["remote", "get-url", "origin"]))
            .flatten()
            .and_then(|url| project_path_of_remote(&url));
        let git = if in_git { read_git(&dir) } else { None };
        Project {
            path: remote.unwrap_or_else(|| format!("local/{}", sanitize_project_name(&name))),
            pipeline_id,
            git,
            in_git,
            dir,
            source: "push".into(),
        }
    }

    /// Evaluate and run the pipeline as GitLab would for a push of `branch` or `tag` (the
    /// sources stay what is checked out) and/or for pipeline source `source`
    /// (`merge_request_event`: a merge request from the branch into the default branch).
    pub fn pretend(
        &mut self,
        branch: Option<&str>,
        tag: Option<&str>,
        source: Option<&str>,
    ) -> Result<(), String> {
        if let Some(s) = source {
            if !SOURCES.contains(&s) {
                return Err(format!(
                    "--source {s}: GitLab has no such pipeline source (one of {})",
                    SOURCES.join(", ")
                ));
            }
            self.source = s.to_string();
        }
        if branch.is_some() || tag.is_some() {
            let Some(g) = &mut self.git else {
                return Err(format!(
                    "--branch and --tag need a git repository with a commit; {} has none",
                    self.dir.display()
                ));
            };
            g.branch = branch.map(str::to_string);
            g.tag = tag.map(str::to_string);
            g.ref_name = branch.or(tag).unwrap_or("HEAD").to_string();
        }
        if self.source == MERGE_REQUEST {
            match &self.git {
                Some(g) if g.branch.is_some() => {}
                _ => {
                    return Err(
                        "--source merge_request_event needs a branch to merge (check one out, or \
                         pass --branch NAME); a tag has no merge request"
                            .to_string(),
                    )
                }
            }
        }
        Ok(())
    }

    /// The branch GitLab's ref keywords and rules see: none in a tag pipeline, and none in a
    /// merge request pipeline (its ref is the merge request's, not the branch).
    pub fn pipeline_branch(&self) -> Option<&str> {
        if self.source == MERGE_REQUEST {
            return None;
        }
        self.git.as_ref().and_then(|g| g.branch.as_deref())
    }

    /// GitLab's predefined variables that the driver does not set itself, from the local
    /// repository where they make sense. Job and command-line variables come after them.
    pub fn variables(&self, server_url: &str) -> Vec<Variable> {
        let mut v = vec![
            Variable::new("CI_PIPELINE_SOURCE", self.source.clone()),
            Variable::new("CI_PIPELINE_IID", self.pipeline_id.to_string()),
            Variable::new("CI_PROJECT_PATH_SLUG", slug(&self.path, usize::MAX)),
            Variable::new(
                "CI_PROJECT_TITLE",
                self.path.rsplit('/').next().unwrap_or(&self.path),
            ),
            Variable::new("CI_PROJECT_URL", format!("{server_url}/{}", self.path)),
            Variable::new("CI_NODE_TOTAL", "1"),
        ];
        let Some(g) = &self.git else {
            return v;
        };
        let title = g.message.lines().next().unwrap_or("").to_string();
        let description = g
            .message
            .split_once('\n')
            .map(|(_, rest)| rest.trim_start_matches('\n').to_string())
            .unwrap_or_default();
        v.extend([
            Variable::new(
                "CI_COMMIT_SHORT_SHA",
                g.sha.chars().take(8).collect::<String>(),
            ),
            Variable::new("CI_COMMIT_REF_SLUG", slug(&g.ref_name, 63)),
            Variable::new("CI_COMMIT_BEFORE_SHA", "0".repeat(40)),
            Variable::new("CI_COMMIT_MESSAGE", g.message.clone()),
            Variable::new("CI_COMMIT_TITLE", title.clone()),
            Variable::new("CI_COMMIT_DESCRIPTION", description),
            Variable::new("CI_COMMIT_AUTHOR", g.author.clone()),
            Variable::new("CI_COMMIT_TIMESTAMP", g.timestamp.clone()),
        ]);
        if let Some(b) = self.pipeline_branch() {
            v.push(Variable::new("CI_COMMIT_BRANCH", b));
        }
        if let (true, Some(b)) = (self.source == MERGE_REQUEST, &g.branch) {
            let target = g.default_branch.clone().unwrap_or_else(|| "main".into());
            v.extend([
                Variable::new("CI_MERGE_REQUEST_ID", "1"),
                Variable::new("CI_MERGE_REQUEST_IID", "1"),
                Variable::new("CI_MERGE_REQUEST_EVENT_TYPE", "detached"),
                Variable::new("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", b.clone()),
                Variable::new("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", target),
                Variable::new("CI_MERGE_REQUEST_TITLE", title.clone()),
                Variable::new("CI_MERGE_REQUEST_PROJECT_PATH", self.path.clone()),
            ]);
        }
        if let Some(t) = &g.tag {
            v.push(Variable::new("CI_COMMIT_TAG", t.clone()));
        }
        if let Some(d) = &g.default_branch {
            v.push(Variable::new("CI_DEFAULT_BRANCH", d.clone()));
        }
        if let Some(n) = &g.user_name {
            v.push(Variable::new("GITLAB_USER_NAME", n.clone()));
        }
        if let Some(e) = &g.user_email {
            v.push(Variable::new("GITLAB_USER_EMAIL", e.clone()));
        }
        for var in &mut v {
            // Commit messages may hold `$`: never expand them.
            var.raw = true;
        }
        v
    }
}

fn read_git(dir: &Path) -> Option<Git> {
    // sha, author, timestamp, message; NUL-separated (the message may have anything else).
    let log = git(dir, &["log", "-1", "--format=%H%x00%an <%ae>%x00%cI%x00%B"])?;
    let mut parts = log.splitn(4, '\0');
    let sha = parts.next()?.to_string();
    let author = parts.next().unwrap_or_default().to_string();
    let timestamp = parts.next().unwrap_or_default().to_string();
    let message = parts.next().unwrap_or_default().trim_end().to_string();
    let branch = git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]);
    // A tag pipeline only when no branch is checked out (a detached HEAD on a tag): GitLab
    // sets CI_COMMIT_TAG in tag pipelines only, and CI_COMMIT_BRANCH never in them.
    let tag = match &branch {
        Some(_) => None,
        None => git(dir, &["describe", "--tags", "--exact-match", "HEAD"]),
    };
    let ref_name = branch
        .clone()
        .or_else(|| tag.clone())
        .unwrap_or_else(|| "HEAD".to_string());
    let default_branch = git(
        dir,
        &[
            "symbolic-ref",
            "--quiet",
            "--short",
            "refs/remotes/origin/HEAD",
        ],
    )
    .map(|r| r.trim_start_matches("origin/").to_string())
    // no remote to ask (a local repository): the local branch GitLab would have made the
    // default, as git names it (`init.defaultBranch`), else main, else master
    .or_else(|| {
        let exists = |b: &str| {
            git(
                dir,
                &["rev-parse", "--verify", "-q", &format!("refs/heads/{b}")],
            )
            .is_some()
        };
        git(dir, &["config", "init.defaultBranch"])
            .into_iter()
            .chain(["main".to_string(), "master".to_string()])
            .find(|b| exists(b))
    });
    Some(Git {
        sha,
        ref_name,
        branch,
        tag,
        message,
        author,
        timestamp,
        default_branch,
        user_name: git(dir, &["config", "user.name"]),
        user_email: git(dir, &["config", "user.email"]),
    })
}

/// `CI_COMMIT_REF_SLUG`'s rule: lower case, anything but `[a-z0-9]` becomes `-`, at most
/// `max` characters, no `-` at either end.
pub fn slug(s: &str, max: usize) -> String {
    let mapped: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(max)
        .collect();
    mapped.trim_matches('-').to_string()
}

/// A GitLab-like project path component: `[A-Za-z0-9_.-]`, other characters become `-`.
/// `group/sub/project` of a clone URL (`git@host:group/project.git`,
/// `ssh://git@host:22/group/project.git`, `https://host/group/project`), each part as
/// [`sanitize_project_name`] leaves it; `None` for a local path or a URL without a group.
pub fn project_path_of_remote(url: &str) -> Option<String> {
    let url = url.trim();
    let path = if let Some((_, rest)) = url.split_once("://") {
        // scheme://[user@]host[:port]/path
        if url.starts_with("file://") {
            return None;
        }
        rest.split_once('/')?.1
    } else if let Some((host, rest)) = url.split_once(':') {
        // scp-like: [user@]host:path (not a local path with a colon in it)
        if host.contains('/') {
            return None;
        }
        rest
    } else {
        return None;
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .map(sanitize_project_name)
        .collect();
    (parts.len() >= 2).then(|| parts.join("/"))
}

pub fn sanitize_project_name(name: &str) -> String {
    let mapped = crate::names::dash_other_chars(name);
    let trimmed = mapped.trim_matches(|c| matches!(c, '-' | '.' | '_'));
    if trimmed.is_empty() {
        "project".to_string()
    } else {
        trimmed.to_string()
    }
}

// ----- sources ---------------------------------------------------------------------------

/// The sources the jobs get, packed once per run.
#[derive(Debug, Clone)]
pub struct Sources {
    pub tar: PathBuf,
    /// What they are, for the user and the job log.
    pub note: String,
    /// Changes in the work tree that are not in the sources (committed HEAD only).
    pub left_out: usize,
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Packs the project's sources into `tar`: the committed HEAD (`git archive`), or with
/// `dirty` every file of the work tree git does not ignore; outside git, a copy of the
/// directory without `.pogo/` and `.git/`.
pub fn pack_sources(project: &Project, dirty: bool, tar: &Path) -> Result<Sources, String> {
    let dir = &project.dir;
    let shown = dir.display();
    if !project.in_git {
        run(
            Command::new("tar")
                .arg("-C")
                .arg(dir)
                .arg(format!("--exclude=./{STORE_DIR}"))
                .arg("--exclude=./.git")
                .arg("-cf")
                .arg(tar)
                .arg("."),
            "tar (packing the project directory)",
        )?;
        return Ok(Sources {
            tar: tar.to_path_buf(),
            note: format!("a copy of {shown} (not a git repository)"),
            left_out: 0,
        });
    }
    if dirty {
        let listed = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !listed.status.success() {
            return Err(format!(
                "git ls-files failed: {}",
                String::from_utf8_lossy(&listed.stderr).trim()
            ));
        }
        // Tracked files deleted in the work tree are still listed: leave them out.
        let mut list = Vec::new();
        let mut count = 0usize;
        for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let rel = String::from_utf8_lossy(name);
            if std::fs::symlink_metadata(dir.join(rel.as_ref())).is_ok() {
                list.extend_from_slice(name);
                list.push(0);
                count += 1;
            }
        }
        let mut child = Command::new("tar")
            .arg("-C")
            .arg(dir)
            .args(["--null", "--no-recursion", "-T", "-", "-cf"])
            .arg(tar)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run tar to pack the sources: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&list)
                .map_err(|e| format!("cannot hand the file list to tar: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("tar (packing the sources) failed: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tar (packing the sources) failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let head = project
            .git
            .as_ref()
            .map(|g| format!("HEAD {} plus ", &g.sha[..g.sha.len().min(8)]))
            .unwrap_or_default();
        return Ok(Sources {
            tar: tar.to_path_buf(),
            note: format!(
                "the work tree of {shown} ({head}uncommitted changes: {count} files, --dirty)"
            ),
            left_out: 0,
        });
    }
    let Some(g) = &project.git else {
        return Err(format!(
            "{shown} is in a git repository without commits: commit, or run with --dirty to use the work tree"
        ));
    };
    run(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["archive", "--format=tar", "-o"])
            .arg(tar)
            .arg("HEAD"),
        "git archive",
    )?;
    let left_out = git(dir, &["status", "--porcelain", "--", "."])
        .map(|s| s.lines().count())
        .unwrap_or(0);
    Ok(Sources {
        tar: tar.to_path_buf(),
        note: format!(
            "committed HEAD {} ({}) of {shown}",
            &g.sha[..g.sha.len().min(8)],
            g.ref_name
        ),
        left_out,
    })
}

// ----- .pogo/ ----------------------------------------------------------------------------

/// `DIR/.pogo/`: `cache/<key>/cache.tgz`, `artifacts/<job>/artifacts.tgz`, and a `run-<pid>/`
/// directory per running `pogo exec` (its sources; removed at the end).
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    /// Creates `.pogo/` (git-ignored through its own `.gitignore`) and its directories.
    pub fn open(project_dir: &Path) -> Result<Self, String> {
        let root = project_dir.join(STORE_DIR);
        let shown = root.display().to_string();
        if shown.contains([':', ',']) {
            return Err(format!(
                "the project directory {} contains ':' or ',', which podman cannot mount: \
                 run pogo exec on a copy in a directory without them",
                project_dir.display()
            ));
        }
        let store = Store { root };
        for d in [store.root.clone(), store.cache_dir(), store.artifacts_dir()] {
            std::fs::create_dir_all(&d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let ignore = store.root.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "*\n")
                .map_err(|e| format!("cannot write {}: {e}", ignore.display()))?;
        }
        Ok(store)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    /// This run's own directory.
    pub fn run_dir(&self) -> Result<PathBuf, String> {
        let d = self.root.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        Ok(d)
    }
}

/// `pogo exec --clean`: removes `DIR/.pogo/`. Returns what was removed, or `None` when
/// there was nothing.
pub fn clean(project_dir: &Path) -> Result<Option<PathBuf>, String> {
    let root = project_dir.join(STORE_DIR);
    match std::fs::symlink_metadata(&root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot look at {}: {e}", root.display())),
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "{} is not a directory pogo exec made; remove it yourself",
                root.display()
            ))
        }
        Ok(_) => {}
    }
    std::fs::remove_dir_all(&root).map_err(|e| {
        format!(
            "cannot remove {}: {e} (files a job wrote as another user in a rootless container: \
             `podman unshare rm -rf {}`)",
            root.display(),
            root.display()
        )
    })?;
    Ok(Some(root))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::origin::tests::sh;
    use super::*;

    fn listing(tar: &Path) -> Vec<String> {
        let out = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_start_matches("./").to_string())
            .filter(|l| !l.is_empty() && !l.ends_with('/'))
            .collect();
        names.sort();
        names
    }

    /// A repository with a committed file, a modified one, a deleted one, an untracked
    /// one and an ignored one, in the subdirectory `proj` of the repository.
    fn repo() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        sh(
            dir.path(),
            "git init -q -b main && mkdir -p proj/src other && echo c > proj/src/committed \
             && echo m > proj/modified && echo d > proj/deleted && echo o > other/file \
             && echo '*.log' > proj/.gitignore && git add -A && git commit -q -m 'Title line' -m 'Body $HOME' \
             && echo changed > proj/modified && rm proj/deleted && echo u > proj/untracked \
             && echo i > proj/ignored.log",
        );
        let proj = dir.path().join("proj");
        (dir, proj)
    }

    #[test]
    fn the_project_path_comes_from_the_clones_origin_as_on_gitlab() {
        for (url, want) in [
            ("git@gitlab.com:group/sub/proj.git", Some("group/sub/proj")),
            ("ssh://git@gitlab.example.com:2222/g/p.git", Some("g/p")),
            ("https://gitlab.example.com/g/p", Some("g/p")),
            (
                "https://oauth2:tok@gitlab.example.com/g/p.git/",
                Some("g/p"),
            ),
            ("https://gitlab.example.com/p.git", None),
            ("/srv/git/g/p.git", None),
            ("file:///srv/git/g/p.git", None),
            ("../p", None),
            ("git@host:../../etc", None),
        ] {
            assert_eq!(project_path_of_remote(url).as_deref(), want, "{url}");
        }
        let (_d, proj) = repo();
        sh(
            &proj,
            "git remote add origin git@gitlab.example.com:team/app.git",
        );
        let p = Project::discover(&proj);
        assert_eq!(p.path, "team/app");
    }

    #[test]
    fn a_files_cache_key_follows_the_files_the_job_sees() {
        let (_d, proj) = repo();
        let p = Project::discover(&proj);
        let files = |files: &[&str], prefix: Option<&str>, commits: bool| {
            super::super::pipeline::KeyFiles {
                files: files.iter().map(|f| f.to_string()).collect(),
                prefix: prefix.map(str::to_string),
                commits,
            }
        };
        let head = p.cache_key(&files(&["modified"], None, false), false);
        let work = p.cache_key(&files(&["modified"], None, false), true);
        assert_eq!(head.len(), 40, "{head}");
        assert_ne!(head, work, "the work tree's content differs from HEAD's");
        assert_eq!(
            head,
            p.cache_key(&files(&["./modified"], None, false), false)
        );
        assert_eq!(
            p.cache_key(&files(&["nope.lock"], Some("deps"), false), false),
            "deps-default"
        );
        let with_prefix = p.cache_key(&files(&["modified"], Some("deps"), false), false);
        assert_eq!(with_prefix, format!("deps-{head}"));
        let by_commit = p.cache_key(&files(&["modified"], None, true), false);
        assert_ne!(by_commit, head);
        assert_eq!(by_commit.len(), 40);
    }

    #[test]
    fn sources_are_committed_head_by_default_and_the_work_tree_with_dirty() {
        let (_d, proj) = repo();
        let p = Project::discover(&proj);
        let store = Store::open(&p.dir).unwrap();
        let run = store.run_dir().unwrap();
        let head = pack_sources(&p, false, &run.join("head.tar")).unwrap();
        assert_eq!(
            listing(&head.tar),
            vec![".gitignore", "deleted", "modified", "src/committed"]
        );
        assert!(head.note.starts_with("committed HEAD "), "{}", head.note);
        assert!(head
            .note
            .ends_with(&format!("(main) of {}", p.dir.display())));
        assert_eq!(head.left_out, 3, "modified, deleted, untracked");

        let dirty = pack_sources(&p, true, &run.join("dirty.tar")).unwrap();
        assert_eq!(
            listing(&dirty.tar),
            vec![".gitignore", "modified", "src/committed", "untracked"],
            "no deleted file, no ignored file, nothing of .pogo/"
        );
        assert!(
            dirty.note.contains("uncommitted changes: 4 files, --dirty"),
            "{}",
            dirty.note
        );
        let out = Command::new("tar")
            .arg("-xOf")
            .arg(&dirty.tar)
            .arg("modified")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"changed\n");
    }

    #[test]
    fn sources_outside_git_are_a_copy_without_pogo_and_git_dirs() {
        let dir = tempfile::tempdir().unwrap();
        sh(
            dir.path(),
            "mkdir -p a .git sub/.pogo && echo 1 > a/f && echo 2 > .git/config && echo 3 > sub/.pogo/kept",
        );
        let p = Project::discover(dir.path());
        assert!(p.git.is_none() && !p.in_git);
        let store = Store::open(&p.dir).unwrap();
        std::fs::write(store.cache_dir().join("x"), "cached").unwrap();
        let s = pack_sources(&p, false, &store.run_dir().unwrap().join("s.tar")).unwrap();
        assert_eq!(listing(&s.tar), vec!["a/f", "sub/.pogo/kept"]);
        assert!(s.note.contains("not a git repository"), "{}", s.note);
    }

    #[test]
    fn a_repository_without_commits_needs_dirty() {
        let dir = tempfile::tempdir().unwrap();
        sh(dir.path(), "git init -q && echo x > f");
        let p = Project::discover(dir.path());
        assert!(p.in_git && p.git.is_none());
        let store = Store::open(&p.dir).unwrap();
        let run = store.run_dir().unwrap();
        let e = pack_sources(&p, false, &run.join("a.tar")).unwrap_err();
        assert!(
            e.contains("without commits: commit, or run with --dirty"),
            "{e}"
        );
        let s = pack_sources(&p, true, &run.join("b.tar")).unwrap();
        assert_eq!(listing(&s.tar), vec!["f"]);
    }

    #[test]
    fn a_detached_head_on_a_tag_is_a_tag_pipeline_without_a_branch() {
        let (_d, proj) = repo();
        sh(&proj, "git tag v1.0 && git checkout -q --detach v1.0");
        let vars = Project::discover(&proj).variables("https://gitlab.invalid");
        let get = |k: &str| vars.iter().find(|v| v.key == k).map(|v| v.value.as_str());
        assert_eq!(get("CI_COMMIT_TAG"), Some("v1.0"));
        assert_eq!(get("CI_COMMIT_REF_SLUG"), Some("v1-0"));
        assert_eq!(get("CI_COMMIT_BRANCH"), None);
    }

    #[test]
    fn pretending_a_ref_or_a_merge_request_sets_the_variables_gitlab_would() {
        let (_d, proj) = repo();
        sh(&proj, "git checkout -q -b feature");
        let get = |p: &Project, k: &str| {
            p.variables("https://gitlab.invalid")
                .into_iter()
                .find(|v| v.key == k)
                .map(|v| v.value)
        };
        let mut p = Project::discover(&proj);
        p.pretend(None, Some("v2.0"), None).unwrap();
        assert_eq!(get(&p, "CI_COMMIT_TAG").as_deref(), Some("v2.0"));
        assert_eq!(get(&p, "CI_COMMIT_BRANCH"), None);
        assert_eq!(get(&p, "CI_COMMIT_REF_SLUG").as_deref(), Some("v2-0"));

        let mut p = Project::discover(&proj);
        p.pretend(None, None, Some(MERGE_REQUEST)).unwrap();
        assert_eq!(
            get(&p, "CI_PIPELINE_SOURCE").as_deref(),
            Some("merge_request_event")
        );
        assert_eq!(get(&p, "CI_COMMIT_BRANCH"), None, "not in MR pipelines");
        assert_eq!(
            get(&p, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME").as_deref(),
            Some("feature")
        );
        assert!(get(&p, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME").is_some());
        assert_eq!(get(&p, "CI_MERGE_REQUEST_IID").as_deref(), Some("1"));

        let mut p = Project::discover(&proj);
        assert!(p.pretend(None, None, Some("nightly")).is_err());
        assert!(p.pretend(None, Some("v1"), Some(MERGE_REQUEST)).is_err());
        let outside = tempfile::tempdir().unwrap();
        let mut p = Project::discover(outside.path());
        assert!(p
            .pretend(Some("main"), None, None)
            .unwrap_err()
            .contains("git repository"));
    }

    #[test]
    fn predefined_variables_come_from_the_repository() {
        let (_d, proj) = repo();
        sh(&proj, "git tag v1.0 && git checkout -q -b Feature/X_1");
        let p = Project::discover(&proj);
        assert_eq!(p.path, "local/proj");
        let vars = p.variables("https://gitlab.invalid");
        let get = |k: &str| {
            vars.iter()
                .find(|v| v.key == k)
                .map(|v| v.value.clone())
                .unwrap_or_else(|| panic!("{k} missing"))
        };
        let g = p.git.clone().unwrap();
        assert_eq!(g.sha.len(), 40);
        assert_eq!(get("CI_COMMIT_SHORT_SHA"), g.sha[..8]);
        assert_eq!(get("CI_COMMIT_BRANCH"), "Feature/X_1");
        assert_eq!(get("CI_COMMIT_REF_SLUG"), "feature-x-1");
        assert!(
            vars.iter().all(|v| v.key != "CI_COMMIT_TAG"),
            "a branch pipeline has no CI_COMMIT_TAG, even on a tagged commit"
        );
        assert_eq!(get("CI_COMMIT_TITLE"), "Title line");
        assert_eq!(get("CI_COMMIT_DESCRIPTION"), "Body $HOME");
        assert_eq!(get("CI_COMMIT_AUTHOR"), "Ada <ada@example.com>");
        assert!(get("CI_COMMIT_TIMESTAMP").contains('T'));
        assert_eq!(get("CI_PROJECT_PATH_SLUG"), "local-proj");
        assert!(vars.iter().all(|v| v.raw), "never expanded");
        assert_eq!(g.ref_name, "Feature/X_1");
    }

    #[test]
    fn store_is_git_ignored_and_clean_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(clean(dir.path()).unwrap(), None);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(store.root.join(".gitignore")).unwrap(),
            "*\n"
        );
        std::fs::create_dir_all(store.cache_dir().join("k")).unwrap();
        std::fs::write(store.cache_dir().join("k/cache.tgz"), "x").unwrap();
        assert_eq!(clean(dir.path()).unwrap(), Some(store.root.clone()));
        assert!(!store.root.exists());
        let odd = tempfile::tempdir().unwrap();
        let named = odd.path().join("a:b");
        std::fs::create_dir_all(&named).unwrap();
        let e = Store::open(&named).unwrap_err();
        assert!(e.contains("which podman cannot mount"), "{e}");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Feature/ABC_1", 63), "feature-abc-1");
        assert_eq!(slug(&"a".repeat(80), 63).len(), 63);
        assert_eq!(slug("--x--", 63), "x");
        assert_eq!(sanitize_project_name("my project!"), "my-project");
        assert_eq!(sanitize_project_name("..."), "project");
    }
}
