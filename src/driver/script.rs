//! Stage scripts in the shape gitlab-runner's `BashWriter` produces.

use std::path::{Component, Path, PathBuf};

use super::job::{Artifacts, Dependency, Variable};

const ANSI_BOLD_GREEN: &str = "\x1b[32;1m";
const ANSI_YELLOW: &str = "\x1b[0;33m";
const ANSI_RESET: &str = "\x1b[0;m";

/// Bytes that never need quoting in bash.
fn is_shell_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'_' | b'-' | b'.' | b'/' | b',' | b':' | b'+' | b'=' | b'@' | b'%' | b'^'
        )
}

/// gitlab-runner's `ShellEscape`: returns `s` unchanged when it only has
/// safe characters, `''` for the empty string, otherwise an ANSI-C quoted
/// `$'...'` string in which `\` and `'` are backslash-escaped, the usual
/// control characters use their letter escapes and every other control
/// byte (and DEL and non-ASCII bytes) is written as `\xHH`.
pub fn ansi_c_escape(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    if s.bytes().all(is_shell_safe) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str("$'");
    for c in s.bytes() {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            c if !(0x20..0x7f).contains(&c) => out.push_str(&format!("\\x{c:02x}")),
            c => out.push(char::from(c)),
        }
    }
    out.push('\'');
    out
}

/// Builds the body of one stage, line by line.
#[derive(Default)]
pub struct Writer {
    lines: Vec<String>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn line(&mut self, l: impl Into<String>) {
        self.lines.push(l.into());
    }

    /// A green notice, like `Noticef`.
    pub fn notice(&mut self, text: &str) {
        self.line(format!(
            "echo {}",
            ansi_c_escape(&format!("{ANSI_BOLD_GREEN}{text}{ANSI_RESET}"))
        ));
    }

    /// A yellow warning, like `Warningf`.
    pub fn warning(&mut self, text: &str) {
        self.line(format!(
            "echo {}",
            ansi_c_escape(&format!("{ANSI_YELLOW}{text}{ANSI_RESET}"))
        ));
    }

    pub fn mkdir(&mut self, dir: &str) {
        self.line(format!("mkdir -p {}", ansi_c_escape(dir)));
    }

    pub fn cd(&mut self, dir: &str) {
        self.line(format!("cd {}", ansi_c_escape(dir)));
    }

    pub fn rm_file(&mut self, file: &str) {
        self.line(format!("rm -f {}", ansi_c_escape(file)));
    }

    /// `export K=V`; file variables are written below `tmp_project_dir`.
    pub fn variable(&mut self, v: &Variable, tmp_project_dir: &str) {
        if v.file {
            let path = format!("{tmp_project_dir}/{}", v.key);
            self.mkdir(tmp_project_dir);
            self.line(format!(
                "printf '%s' {} > {}",
                ansi_c_escape(&v.value),
                ansi_c_escape(&path)
            ));
            self.line(format!(
                "export {}={}",
                ansi_c_escape(&v.key),
                ansi_c_escape(&path)
            ));
        } else {
            self.line(format!(
                "export {}={}",
                ansi_c_escape(&v.key),
                ansi_c_escape(&v.value)
            ));
        }
    }

    /// The body as it goes into `eval`.
    pub fn body(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }

    /// The complete script file.
    pub fn finish(&self) -> String {
        finish(&self.body())
    }
}

/// Wraps a stage body the way `BashWriter.Finish` does.
pub fn finish(body: &str) -> String {
    let mut s = String::new();
    s.push_str("#!/usr/bin/env bash\n\n");
    s.push_str("trap 'exit 1' TERM\n\n");
    s.push_str("case \"$(set -o)\" in *\"pipefail\"*) set -o pipefail;; esac; set -o errexit\n");
    s.push_str("set +o noclobber\n");
    s.push_str(&format!(
        "( trap 'exit 1' TERM; eval {} ) < /dev/null\n",
        ansi_c_escape(body)
    ));
    s.push_str("exit 0\n");
    s
}

/// What every stage script needs to know about the job.
pub struct ScriptInfo<'a> {
    /// All variables (`GetAllVariables`), exported in this order.
    pub variables: &'a [Variable],
    pub project_dir: &'a str,
    /// Hostname reported by config_exec (or the runner's).
    pub hostname: &'a str,
}

impl ScriptInfo<'_> {
    /// `<project dir>.tmp`.
    pub fn tmp_project_dir(&self) -> String {
        format!("{}.tmp", self.project_dir)
    }

    fn env_file(&self) -> String {
        format!("{}/gitlab_runner_env", self.tmp_project_dir())
    }

    /// Variable exports and the `GITLAB_ENV` dotenv handling.
    pub(super) fn write_exports(&self, w: &mut Writer) {
        let tmp = self.tmp_project_dir();
        for v in self.variables {
            w.variable(v, &tmp);
        }
        let env_file = self.env_file();
        w.mkdir(&tmp);
        w.line(format!("export GITLAB_ENV={}", ansi_c_escape(&env_file)));
        w.line("touch \"$GITLAB_ENV\"");
        w.line("while read -r line; do export \"$line\"; done < \"$GITLAB_ENV\"");
    }

    fn write_commands(w: &mut Writer, commands: &[String]) {
        for command in commands {
            let command = command.trim();
            if command.is_empty() {
                w.line("echo");
                continue;
            }
            match command.split_once('\n') {
                Some((first, _)) => w.notice(&format!("$ {first} # collapsed multi-line command")),
                None => w.notice(&format!("$ {command}")),
            }
            w.line(command);
        }
    }

    /// Stage `prepare_script`.
    pub fn prepare_script(&self) -> Writer {
        let mut w = Writer::new();
        w.line(format!(
            "echo \"Running on $(hostname) via \"{}\"...\"",
            ansi_c_escape(self.hostname)
        ));
        w.rm_file(&self.env_file());
        w.rm_file(&format!("{}/masking.db", self.tmp_project_dir()));
        w
    }

    /// Stage `get_sources` for `GIT_STRATEGY` `fetch` or `clone` from a repository, in the
    /// shape of gitlab-runner's bash writer: `clone` removes the project directory first,
    /// `fetch` reuses what is there; then `git init` (an existing repository is kept),
    /// `origin` set, the refspecs fetched (shallow with `depth` > 0), the commit checked out
    /// and the work tree cleaned with `git clean -ffdx`.
    pub fn get_sources_git(&self, git_strategy: &str, git: &GitSource<'_>) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        let dir = self.project_dir;
        if git_strategy == "clone" {
            w.line(format!("rm -rf {}", ansi_c_escape(dir)));
        }
        if git.depth > 0 {
            w.notice(&format!(
                "Fetching changes with git depth set to {}...",
                git.depth
            ));
        } else {
            w.notice("Fetching changes...");
        }
        let template = format!("{}/git-template", self.tmp_project_dir());
        w.mkdir(&template);
        w.line(format!(
            "git -c init.defaultBranch=main init {} --template {}",
            ansi_c_escape(dir),
            ansi_c_escape(&template)
        ));
        w.cd(dir);
        w.line("rm -f .git/index.lock .git/shallow.lock .git/HEAD.lock .git/hooks/post-checkout .git/config.lock");
        let url = ansi_c_escape(git.url);
        w.line(format!(
            "if git remote add origin {url} >/dev/null 2>&1; then"
        ));
        w.notice("Created fresh repository.");
        w.line("else");
        w.line(format!("git remote set-url origin {url}"));
        w.line("fi");
        let mut fetch = "git fetch origin".to_string();
        for r in git.refspecs {
            fetch.push(' ');
            fetch.push_str(&ansi_c_escape(r));
        }
        if git.depth > 0 {
            fetch.push_str(&format!(" --depth {}", git.depth));
        }
        fetch.push_str(" --prune --quiet");
        w.line(fetch);
        w.notice(&format!(
            "Checking out {} as detached HEAD (ref is {})...",
            git.sha.get(..8).unwrap_or(git.sha),
            git.git_ref
        ));
        w.line(format!(
            "git -c advice.detachedHead=false checkout -f -q {}",
            ansi_c_escape(git.sha)
        ));
        w.notice("Skipping Git submodules setup");
        w.line("git clean -ffdx");
        w
    }

    /// Stage `get_sources` for `GIT_STRATEGY=none`, or for a job without a repository the
    /// imitation can fetch from (see [`ScriptInfo::get_sources_git`]).
    pub fn get_sources(&self, git_strategy: &str) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        if git_strategy == "none" {
            w.notice("Skipping Git repository setup");
        } else {
            w.warning(&format!(
                "GIT_STRATEGY={git_strategy} is not supported by this runner imitation; skipping Git repository setup"
            ));
        }
        w.mkdir(self.project_dir);
        w.cd(self.project_dir);
        w
    }

    /// Stage `restore_cache`: one guarded `cache-extractor` per cache.
    pub fn restore_cache(&self, caches: &[CacheArchive]) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        for c in caches {
            w.notice(&format!("Checking cache for {}...", c.key));
            w.line("if gitlab-runner --version >/dev/null 2>&1; then");
            w.line(format!(
                "if gitlab-runner cache-extractor --file {} --timeout {}; then",
                ansi_c_escape(&c.rel_file),
                c.timeout_minutes
            ));
            w.notice("Successfully extracted cache");
            w.line("else");
            w.warning("Failed to extract cache");
            w.line("fi");
            w.line("else");
            w.warning("Missing gitlab-runner. Extracting cache is disabled.");
            w.line("fi");
        }
        w
    }

    /// Stage `download_artifacts`: one `artifacts-downloader` per dependency with artifacts;
    /// its failure fails the stage.
    pub fn download_artifacts(&self, deps: &[&Dependency], url: &str) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        for d in deps {
            w.notice(&format!(
                "Downloading artifacts for {} ({})...",
                d.name, d.id
            ));
            w.line("if gitlab-runner --version >/dev/null 2>&1; then");
            w.line(format!(
                "gitlab-runner artifacts-downloader --url {} --token {} --id {}",
                ansi_c_escape(url),
                ansi_c_escape(&d.token),
                d.id
            ));
            w.line("else");
            w.warning("Missing gitlab-runner. Downloading artifacts is disabled.");
            w.line("fi");
        }
        w
    }

    /// Stage `upload_artifacts_on_success` / `upload_artifacts_on_failure`: one
    /// `artifacts-uploader` for the archive and one for the dotenv report; a failure fails
    /// the stage.
    pub fn upload_artifacts(&self, a: &Artifacts, url: &str, token: &str, id: u64) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        let uploads = [
            (&a.paths, &a.exclude, "zip", "archive"),
            (&a.dotenv, &Vec::new(), "gzip", "dotenv"),
        ];
        for (paths, exclude, format, kind) in uploads {
            if paths.is_empty() {
                continue;
            }
            w.notice("Uploading artifacts...");
            w.line("if gitlab-runner --version >/dev/null 2>&1; then");
            let mut cmd = format!(
                "gitlab-runner artifacts-uploader --url {} --token {} --id {id} --timeout 1h0m0s --response-header-timeout 10m0s",
                ansi_c_escape(url),
                ansi_c_escape(token)
            );
            for p in paths {
                cmd.push_str(" --path ");
                cmd.push_str(&ansi_c_escape(p));
            }
            for p in exclude {
                cmd.push_str(" --exclude ");
                cmd.push_str(&ansi_c_escape(p));
            }
            cmd.push_str(&format!(
                " --artifact-format {format} --artifact-type {kind}"
            ));
            w.line(cmd);
            w.line("else");
            w.warning("Missing gitlab-runner. Uploading artifacts is disabled.");
            w.line("fi");
        }
        w
    }

    /// Stage `build_script` (step `script`) and other user steps.
    pub fn user_script(&self, commands: &[String]) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        Self::write_commands(&mut w, commands);
        w
    }

    /// Stage `after_script`.
    pub fn after_script(&self, commands: &[String]) -> Writer {
        self.user_script(commands)
    }

    /// Stage `archive_cache` / `archive_cache_on_failure`.
    pub fn archive_cache(&self, caches: &[CacheArchive]) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        for c in caches {
            w.notice(&format!("Creating cache {}...", c.key));
            w.line("if gitlab-runner --version >/dev/null 2>&1; then");
            let mut cmd = format!(
                "if gitlab-runner cache-archiver --file {} --timeout {}",
                ansi_c_escape(&c.rel_file),
                c.timeout_minutes
            );
            for p in &c.paths {
                cmd.push_str(" --path ");
                cmd.push_str(&ansi_c_escape(p));
            }
            cmd.push_str("; then");
            w.line(cmd);
            w.notice("Created cache");
            w.line("else");
            w.warning("Failed to create cache");
            w.line("fi");
            w.line("else");
            w.warning("Missing gitlab-runner. Creating cache is disabled.");
            w.line("fi");
        }
        w
    }

    /// Stage `cleanup_file_variables`.
    pub fn cleanup_file_variables(&self) -> Writer {
        let mut w = Writer::new();
        let tmp = self.tmp_project_dir();
        for v in self.variables.iter().filter(|v| v.file) {
            w.line(format!(
                "export {}={}",
                ansi_c_escape(&v.key),
                ansi_c_escape(&format!("{tmp}/{}", v.key))
            ));
        }
        w.rm_file(&self.env_file());
        w.rm_file(&format!("{tmp}/masking.db"));
        for v in self.variables.iter().filter(|v| v.file) {
            w.rm_file(&format!("{tmp}/{}", v.key));
        }
        w
    }
}

/// Where `get_sources` fetches from (the job's `git_info`).
pub struct GitSource<'a> {
    pub url: &'a str,
    pub git_ref: &'a str,
    pub sha: &'a str,
    pub refspecs: &'a [String],
    /// `GIT_DEPTH`; 0 fetches the whole history.
    pub depth: u32,
}

/// One cache to extract or archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheArchive {
    pub key: String,
    /// Archive path relative to the project directory.
    pub rel_file: String,
    pub paths: Vec<String>,
    pub timeout_minutes: u64,
}

/// Sanitises a cache key like gitlab-runner: backslashes become slashes,
/// `.` and empty components are dropped (so no leading `/`), and a key with
/// a `..` component (or nothing left) is rejected.
pub fn sanitize_cache_key(key: &str) -> Option<String> {
    let key = key.trim().replace('\\', "/");
    let mut parts = Vec::new();
    for part in key.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// `filepath.Rel(base, target)` for absolute, clean paths.
pub fn relative_path(base: &Path, target: &Path) -> PathBuf {
    let norm = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(s) => v.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    v.pop();
                }
                _ => {}
            }
        }
        v
    };
    let b = norm(base);
    let t = norm(target);
    let common = b.iter().zip(t.iter()).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for part in &t[common..] {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `--file` for a local cache archive: `<cache dir>/<key>/cache.zip`
/// relative to the project directory.
pub fn cache_rel_file(project_dir: &str, job_cache_dir: &str, key: &str) -> String {
    let target = Path::new(job_cache_dir).join(key).join("cache.zip");
    relative_path(Path::new(project_dir), &target)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::process::Command;

    /// Runs `printf %s <escaped>` in real bash and returns the bytes.
    fn bash_roundtrip(s: &str) -> Vec<u8> {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("printf %s {}", ansi_c_escape(s)))
            .output()
            .unwrap();
        assert!(out.status.success(), "bash failed for {s:?}");
        out.stdout
    }

    #[test]
    fn escape_edge_cases_in_real_bash() {
        let cases = [
            "plain",
            "",
            "with space",
            "it's",
            "back\\slash",
            "\\'",
            "'\\''",
            "new\nline",
            "tab\there",
            "cr\rlf\n",
            "esc\x1b[0m",
            "bell\x07 bs\x08 vt\x0b ff\x0c",
            "nul-less \x01\x02\x1f\x7f",
            "$HOME `id` $(id) ${X} \"q\"",
            "!history !! and * glob ? [a]",
            "unicode é € 😀",
            "\\x41 is not A",
            "trailing backslash\\",
            "a;b&&c||d|e>f<g",
            "#comment",
            "~user",
        ];
        for c in cases {
            assert_eq!(bash_roundtrip(c), c.as_bytes(), "case {c:?}");
        }
    }

    #[test]
    fn escape_shapes() {
        assert_eq!(ansi_c_escape(""), "''");
        assert_eq!(ansi_c_escape("abc/def-1.2:3"), "abc/def-1.2:3");
        assert_eq!(ansi_c_escape("a b"), "$'a b'");
        assert_eq!(ansi_c_escape("a'b\\c"), "$'a\\'b\\\\c'");
        assert_eq!(ansi_c_escape("a\nb"), "$'a\\nb'");
        assert_eq!(ansi_c_escape("\x1b"), "$'\\x1b'");
        assert_eq!(ansi_c_escape("é"), "$'\\xc3\\xa9'");
    }

    fn vars() -> Vec<Variable> {
        vec![
            Variable::new("A", "x y"),
            Variable::file("F", "file\ncontent"),
        ]
    }

    #[test]
    fn script_shape() {
        let v = vars();
        let info = ScriptInfo {
            variables: &v,
            project_dir: "/builds/g/p",
            hostname: "h",
        };
        let s = info.user_script(&["echo hi".to_string()]).finish();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "#!/usr/bin/env bash");
        assert!(s.contains("\ntrap 'exit 1' TERM\n"));
        assert!(s.contains("set -o errexit\n"));
        assert!(s.contains("\nset +o noclobber\n"));
        assert!(s.contains("\n( trap 'exit 1' TERM; eval $'"));
        assert!(s.contains("' ) < /dev/null\n"));
        assert!(s.ends_with("\nexit 0\n"));
        let body = info.user_script(&["echo hi".to_string()]).body();
        assert!(body.contains("export A=$'x y'\n"));
        assert!(body.contains("export F=/builds/g/p.tmp/F\n"));
        assert!(body.contains("cd /builds/g/p\n"));
        assert!(body.contains("echo $'\\x1b[32;1m$ echo hi\\x1b[0;m'\necho hi\n"));
    }

    /// Runs a generated script with real bash in a temp dir standing in for
    /// the builds dir.
    #[test]
    fn script_runs_in_bash() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("g/p");
        let project = project.to_str().unwrap();
        let mut v = vars();
        v.push(Variable::new("Q", "it's \"q\" $HOME\n"));
        let info = ScriptInfo {
            variables: &v,
            project_dir: project,
            hostname: "h",
        };
        let commands = vec![
            "echo \"A=$A\"".to_string(),
            "cat \"$F\"; echo".to_string(),
            "printf '%s|' \"$Q\"".to_string(),
            "echo 'K=V w' >> \"$GITLAB_ENV\"".to_string(),
            "pwd".to_string(),
        ];
        for (w, _) in [
            (info.get_sources("none"), 0),
            (info.user_script(&commands), 1),
        ] {
            let file = dir.path().join("script");
            std::fs::write(&file, w.finish()).unwrap();
            let out = Command::new("bash").arg(&file).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(out.status.success(), "{stdout} {:?}", out.stderr);
            if stdout.contains("A=") {
                assert!(stdout.contains("A=x y\n"), "{stdout}");
                assert!(stdout.contains("file\ncontent\n"), "{stdout}");
                assert!(stdout.contains("it's \"q\" $HOME\n|"), "{stdout}");
                assert!(stdout.contains(&format!("{project}\n")), "{stdout}");
                assert!(stdout.contains("\x1b[32;1m$ echo \"A=$A\"\x1b[0;m"));
            }
        }
        // The dotenv entry is loaded by the next stage.
        let w = info.after_script(&["echo \"K=$K\"".to_string(), "exit 7".to_string()]);
        let file = dir.path().join("script2");
        std::fs::write(&file, w.finish()).unwrap();
        let out = Command::new("bash").arg(&file).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(stdout.contains("K=V w\n"), "{stdout}");
        assert_eq!(out.status.code(), Some(7), "the subshell's code propagates");
    }

    /// get_sources for fetch and clone, run by real bash and git against a local repository.
    #[test]
    fn git_get_sources_fetches_into_an_existing_clone_and_clone_starts_fresh() {
        let git_ok = Command::new("git").arg("--version").output().is_ok();
        if !git_ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "git is not installed, but CI is set: `make test`'s set-up installs it"
            );
            eprintln!("SKIPPED: git not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let bare = dir.path().join("r.git");
        let work = dir.path().join("w");
        git(&["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        git(&["init", "-q", "-b", "main", work.to_str().unwrap()]);
        std::fs::write(work.join("f.txt"), "content\n").unwrap();
        let w = work.to_str().unwrap();
        git(&["-C", w, "add", "."]);
        git(&["-C", w, "commit", "-q", "-m", "one"]);
        git(&["-C", w, "push", "-q", bare.to_str().unwrap(), "main"]);
        let sha = git(&["-C", w, "rev-parse", "HEAD"]);

        let project = dir.path().join("builds/g/p");
        let project = project.to_str().unwrap();
        let url = format!("file://{}", bare.display());
        let refspecs = vec!["+refs/heads/main:refs/remotes/origin/main".to_string()];
        let run = |strategy: &str| {
            let v = vec![];
            let info = ScriptInfo {
                variables: &v,
                project_dir: project,
                hostname: "h",
            };
            let source = GitSource {
                url: &url,
                git_ref: "main",
                sha: &sha,
                refspecs: &refspecs,
                depth: 20,
            };
            let file = dir.path().join(format!("script-{strategy}"));
            std::fs::write(&file, info.get_sources_git(strategy, &source).finish()).unwrap();
            let out = Command::new("bash").arg(&file).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(out.status.success(), "{text} {:?}", out.stderr);
            text
        };
        let first = run("clone");
        assert!(first.contains("Created fresh repository."), "{first}");
        assert_eq!(
            std::fs::read_to_string(format!("{project}/f.txt")).unwrap(),
            "content\n"
        );
        let marker = format!("{project}/.git/marker");
        std::fs::write(&marker, "").unwrap();
        std::fs::write(format!("{project}/untracked"), "").unwrap();
        let second = run("fetch");
        assert!(!second.contains("Created fresh repository."), "{second}");
        assert!(std::path::Path::new(&marker).exists(), "fetch keeps .git");
        assert!(
            !std::path::Path::new(&format!("{project}/untracked")).exists(),
            "git clean -ffdx"
        );
        run("clone");
        assert!(
            !std::path::Path::new(&marker).exists(),
            "clone starts fresh"
        );
    }

    #[test]
    fn cache_script_guarded() {
        let v = vec![];
        let info = ScriptInfo {
            variables: &v,
            project_dir: "/builds/g/p",
            hostname: "h",
        };
        let c = CacheArchive {
            key: "k".into(),
            rel_file: "../../../cache/g/p/k/cache.zip".into(),
            paths: vec!["vendor".into(), "a b".into()],
            timeout_minutes: 10,
        };
        let body = info.archive_cache(std::slice::from_ref(&c)).body();
        assert!(body.contains("if gitlab-runner --version >/dev/null 2>&1; then\nif gitlab-runner cache-archiver --file ../../../cache/g/p/k/cache.zip --timeout 10 --path vendor --path $'a b'; then\n"));
        assert!(body.contains("Missing gitlab-runner. Creating cache is disabled."));
        let body = info.restore_cache(&[c]).body();
        assert!(body.contains(
            "if gitlab-runner cache-extractor --file ../../../cache/g/p/k/cache.zip --timeout 10; then"
        ));
        assert!(body.contains("Successfully extracted cache"));
        assert!(body.contains("Failed to extract cache"));
    }

    #[test]
    fn artifact_stages_call_the_runner_helper_like_gitlab_runner() {
        let v = vars();
        let info = ScriptInfo {
            variables: &v,
            project_dir: "/builds/g/p",
            hostname: "h",
        };
        let dep = Dependency {
            id: 7,
            name: "build".into(),
            token: "tok 7".into(),
            artifacts_file: Some("artifacts.zip".into()),
        };
        let body = info.download_artifacts(&[&dep], "http://gl").body();
        assert!(body.contains(
            "gitlab-runner artifacts-downloader --url http://gl --token $'tok 7' --id 7\n"
        ));
        assert!(body.contains("Missing gitlab-runner. Downloading artifacts is disabled."));
        let a = Artifacts {
            paths: vec!["out/".into(), "a b".into()],
            ..Artifacts::default()
        };
        let body = info.upload_artifacts(&a, "http://gl", "t", 9).body();
        assert!(body.contains("gitlab-runner artifacts-uploader --url http://gl --token t --id 9 --timeout 1h0m0s --response-header-timeout 10m0s --path out/ --path $'a b' --artifact-format zip --artifact-type archive\n"), "{body}");
        // exclude patterns go to the archive's uploader; a dotenv report gets its own
        let a = Artifacts {
            paths: vec!["out/".into()],
            exclude: vec!["out/*.o".into()],
            dotenv: vec!["build.env".into()],
            ..Artifacts::default()
        };
        let body = info.upload_artifacts(&a, "http://gl", "t", 9).body();
        assert!(
            body.contains(
                "--path out/ --exclude $'out/*.o' --artifact-format zip --artifact-type archive\n"
            ),
            "{body}"
        );
        assert!(
            body.contains("--path build.env --artifact-format gzip --artifact-type dotenv\n"),
            "{body}"
        );
    }

    #[test]
    fn cache_keys() {
        assert_eq!(sanitize_cache_key("job/main").as_deref(), Some("job/main"));
        assert_eq!(sanitize_cache_key("/abs/key/").as_deref(), Some("abs/key"));
        assert_eq!(sanitize_cache_key("a\\b").as_deref(), Some("a/b"));
        assert_eq!(sanitize_cache_key("./a//b").as_deref(), Some("a/b"));
        assert_eq!(sanitize_cache_key("../x"), None);
        assert_eq!(sanitize_cache_key("a/../../x"), None);
        assert_eq!(sanitize_cache_key("/"), None);
        assert_eq!(sanitize_cache_key(""), None);
    }

    #[test]
    fn rel_paths() {
        assert_eq!(
            cache_rel_file("/builds/g/p", "/work/cache/g/p", "job/main"),
            "../../../work/cache/g/p/job/main/cache.zip"
        );
        assert_eq!(
            cache_rel_file("/builds/g/p", "/builds/g/p/c", "k"),
            "c/k/cache.zip"
        );
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/b")),
            PathBuf::from(".")
        );
    }
}
