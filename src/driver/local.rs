//! Local stand-ins for what gitlab-runner does with git and its `gitlab-runner` helper
//! binary, for `pogo exec` ([`Driver::local`](super::Driver::local)).
//!
//! The stages keep gitlab-runner's names, order and rules (`get_sources`, `restore_cache`,
//! `download_artifacts`, `archive_cache[_on_failure]`, `upload_artifacts_on_*`); only their
//! scripts differ: they use `tar` (busybox's is enough) against host directories that pogo's
//! `prepare` mounts into the job container (`POGO_LOCAL_MOUNTS`, see
//! `crate::executor::local`). The job image needs `tar` with gzip support, nothing else.

use super::job::{self, Artifacts, Dependency};
use super::script::{ansi_c_escape, CacheArchive, ScriptInfo, Writer};

// Archives are written to a temporary name unique per container (`$HOSTNAME.$$`) and
// renamed into place: jobs running side by side share the cache directory.

/// The file a cache is kept in, below `<cache dir>/<key>/` (with `cache.1.tgz`, … for
/// thousands of files).
pub const CACHE_FILE: &str = "cache.tgz";
/// [`CACHE_FILE`] without its extension.
const CACHE_BASE: &str = "cache";
/// The file a job's artifacts are kept in, below `<artifacts dir>/<job dir>/` (with
/// `artifacts.1.tgz`, … for thousands of files).
pub const ARTIFACTS_FILE: &str = "artifacts.tgz";
/// [`ARTIFACTS_FILE`] without its extension.
const ARTIFACTS_BASE: &str = "artifacts";
/// The job's dotenv report (`artifacts:reports:dotenv`), beside its artifacts.
pub const DOTENV_FILE: &str = "dotenv.env";

/// The job-log line of a restored cache (how `pogo exec` tells a cache hit).
pub fn cache_extracted_message(key: &str, host_file: &str) -> String {
    format!("Successfully extracted cache {key} from {host_file}")
}

/// A host directory and where the job container sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalDir {
    /// Shown in the job log.
    pub host: String,
    /// Used by the stage scripts.
    pub container: String,
}

/// Where the local stages find their inputs and put their outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalStages {
    /// The sources (a tar) in the job container; `None`: jobs start in an empty directory.
    pub sources_tar: Option<String>,
    /// What the sources are, for the job log (e.g. "committed HEAD 1a2b3c4 of /src/p").
    pub sources_note: String,
    /// Caches: `<key>/cache.tgz` below it.
    pub cache: LocalDir,
    /// Artifacts: `<artifacts_dir_name(job)>/artifacts.tgz` below it.
    pub artifacts: LocalDir,
}

impl LocalStages {
    /// The artifacts archive of the job named `job_name`, in the container and on the host.
    pub fn artifacts_file(&self, job_name: &str) -> (String, String) {
        let rel = format!("{}/{ARTIFACTS_FILE}", artifacts_dir_name(job_name));
        (
            format!("{}/{rel}", self.artifacts.container),
            format!("{}/{rel}", self.artifacts.host),
        )
    }

    /// The archive of the cache `key`, in the container and on the host.
    pub fn cache_file(&self, key: &str) -> (String, String) {
        (
            format!("{}/{key}/{CACHE_FILE}", self.cache.container),
            format!("{}/{key}/{CACHE_FILE}", self.cache.host),
        )
    }
}

/// The directory a job's artifacts are kept in: its name with `[A-Za-z0-9_.-]` kept and
/// anything else turned into `-`, plus a hash of the real name when that changed it
/// (so `test:unit` and `test-unit` do not share one).
pub fn artifacts_dir_name(job_name: &str) -> String {
    let mapped = crate::names::dash_other_chars(job_name);
    let trimmed = mapped.trim_start_matches(['.', '-']);
    if trimmed == job_name && !trimmed.is_empty() {
        return trimmed.to_string();
    }
    let base = if trimmed.is_empty() { "job" } else { trimmed };
    format!("{base}-{:08x}", fnv1a(job_name.as_bytes()))
}

/// 32-bit FNV-1a: stable across Rust versions, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

impl Writer {
    /// A red error line, like `Errorf`.
    pub fn error(&mut self, text: &str) {
        self.line(format!(
            "echo {}",
            ansi_c_escape(&format!("\x1b[31;1m{text}\x1b[0;m"))
        ));
    }

    /// Fails the stage with a message when the image has no `tar`.
    fn require_tar(&mut self) {
        self.line("if ! command -v tar >/dev/null 2>&1; then");
        self.error(
            "ERROR: pogo exec: the job image has no `tar`; local sources, cache and artifacts \
             need tar (with gzip) in the image",
        );
        self.line("exit 1");
        self.line("fi");
    }

    /// Fills the bash array `_pogo_files` with what `patterns` match below the current
    /// directory (bash globs with `**`), reporting each pattern like gitlab-runner's
    /// archiver. Paths outside the project directory are skipped with a warning.
    fn collect_matches(&mut self, patterns: &[String]) {
        let words: Vec<String> = patterns.iter().map(|p| ansi_c_escape(p)).collect();
        let yellow = |s: &str| format!("$'\\x1b[0;33m'\"{s}\"$'\\x1b[0;m'");
        self.line("_pogo_files=(); _pogo_tar_opts=()");
        self.line("shopt -s nullglob globstar");
        self.line(format!("for _pogo_pattern in {}; do", words.join(" ")));
        self.line("_pogo_ifs=$IFS; IFS=; _pogo_matches=( $_pogo_pattern ); IFS=$_pogo_ifs");
        self.line("_pogo_n=0");
        self.line("for _pogo_m in \"${_pogo_matches[@]}\"; do");
        self.line("case \"$_pogo_m\" in \"$PWD\"/*) _pogo_m=${_pogo_m#\"$PWD\"/} ;; esac");
        self.line(format!(
            "case \"$_pogo_m\" in /* | .. | ../* | */.. | */../*) echo {}; continue ;; esac",
            yellow("WARNING: $_pogo_m: outside the project directory, skipped")
        ));
        self.line("if [ -e \"$_pogo_m\" ] || [ -L \"$_pogo_m\" ]; then");
        self.line("case \"$_pogo_m\" in -*) _pogo_m=./$_pogo_m ;; esac");
        self.line("_pogo_files+=( \"$_pogo_m\" ); _pogo_n=$((_pogo_n + 1))");
        self.line("fi");
        self.line("done");
        self.line("if [ \"$_pogo_n\" -eq 0 ]; then");
        self.line(format!(
            "echo {}",
            yellow(
                "WARNING: $_pogo_pattern: no matching files. Ensure that the path is relative to the working directory ($PWD)"
            )
        ));
        self.line("else");
        self.line(
            "echo \"$_pogo_pattern: found $_pogo_n matching artifact files and directories\"",
        );
        self.line("fi");
        self.line("done");
        self.line("shopt -u nullglob globstar");
    }

    /// Drops from `_pogo_files` every path an `artifacts:exclude` pattern matches: matched
    /// directories are first listed entry by entry (`find`; tar then must not descend into
    /// them again), then each path is tested against the patterns ([`exclude_regex`]); each
    /// pattern's count is reported as gitlab-runner reports it.
    fn drop_excluded(&mut self, exclude: &[String]) {
        if exclude.is_empty() {
            return;
        }
        self.line("_pogo_all=(); _pogo_tar_opts=(--no-recursion)");
        self.line("for _pogo_m in \"${_pogo_files[@]}\"; do");
        self.line("_pogo_all+=( \"$_pogo_m\" )");
        self.line("if [ -d \"$_pogo_m\" ] && [ ! -L \"$_pogo_m\" ]; then");
        self.line("while IFS= read -r -d '' _pogo_f; do _pogo_all+=( \"$_pogo_f\" ); done < <(find \"$_pogo_m\" -mindepth 1 -print0)");
        self.line("fi");
        self.line("done");
        for pattern in exclude {
            // unquoted on the right of =~, or bash compares it as a plain string
            self.line(format!(
                "_pogo_re={}; _pogo_keep=(); _pogo_n=0",
                ansi_c_escape(&exclude_regex(pattern))
            ));
            self.line("for _pogo_f in \"${_pogo_all[@]}\"; do");
            self.line(
                "if [[ ${_pogo_f#./} =~ $_pogo_re ]]; then _pogo_n=$((_pogo_n + 1)); else _pogo_keep+=( \"$_pogo_f\" ); fi",
            );
            self.line("done");
            self.line("_pogo_all=( \"${_pogo_keep[@]}\" )");
            self.line(format!(
                "echo {}\": excluded $_pogo_n files\"",
                ansi_c_escape(pattern)
            ));
        }
        self.line("_pogo_files=( \"${_pogo_all[@]}\" )");
    }

    /// Packs `_pogo_files` into `DIR/NAME.tgz`, and `DIR/NAME.1.tgz`, `DIR/NAME.2.tgz`, …
    /// when their names would not fit one command line (thousands of files: `Argument list
    /// too long`), each written to a temporary name and renamed. Any tar will do (busybox's
    /// has no `-T`). Sets `_pogo_ok` to 0 when a tar failed.
    fn tar_in_parts(&mut self, dir: &str, name: &str) {
        let base = format!("{}/{name}", ansi_c_escape(dir));
        self.line("_pogo_part=0; _pogo_batch=(); _pogo_bytes=0; _pogo_ok=1");
        self.line("_pogo_flush() {");
        self.line("[ \"${#_pogo_batch[@]}\" -eq 0 ] && return 0");
        self.line(format!(
            "if [ \"$_pogo_part\" -eq 0 ]; then _pogo_out={base}.tgz; else _pogo_out={base}.$_pogo_part.tgz; fi"
        ));
        self.line("_pogo_tmp=$_pogo_out.tmp.$HOSTNAME.$$");
        self.line("if ! tar \"${_pogo_tar_opts[@]}\" -czf \"$_pogo_tmp\" -- \"${_pogo_batch[@]}\" || ! mv -f \"$_pogo_tmp\" \"$_pogo_out\"; then rm -f \"$_pogo_tmp\"; return 1; fi");
        self.line("_pogo_part=$((_pogo_part + 1)); _pogo_batch=(); _pogo_bytes=0");
        self.line("}");
        self.line("for _pogo_f in \"${_pogo_files[@]}\"; do");
        self.line(format!(
            "if [ $((_pogo_bytes + ${{#_pogo_f}})) -gt {PART_NAME_BYTES} ]; then _pogo_flush || {{ _pogo_ok=0; break; }}; fi"
        ));
        self.line("_pogo_batch+=( \"$_pogo_f\" ); _pogo_bytes=$((_pogo_bytes + ${#_pogo_f} + 1))");
        self.line("done");
        self.line("if [ \"$_pogo_ok\" = 1 ]; then _pogo_flush || _pogo_ok=0; fi");
        // parts an earlier, bigger archive left
        self.line(format!(
            "if [ \"$_pogo_ok\" = 1 ]; then for _pogo_p in {base}.[0-9]*.tgz; do _pogo_i=${{_pogo_p##*/{name}.}}; _pogo_i=${{_pogo_i%.tgz}}; case $_pogo_i in *[!0-9]*) continue ;; esac; [ \"$_pogo_i\" -ge \"$_pogo_part\" ] && rm -f \"$_pogo_p\"; done; fi"
        ));
    }
}

/// The artifacts archive of a job and its further parts ([`Writer::tar_in_parts`]) in `dir`,
/// in their order: `artifacts.tgz`, `artifacts.1.tgz`, `artifacts.2.tgz`, … up to the first
/// missing one. Empty when the job kept no artifacts.
pub fn artifacts_parts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    (0..)
        .map(|i| match i {
            0 => dir.join(ARTIFACTS_FILE),
            i => dir.join(format!("{ARTIFACTS_BASE}.{i}.tgz")),
        })
        .take_while(|p| p.is_file())
        .collect()
}

/// A command that extracts `DIR/NAME.tgz` and its further parts ([`Writer::tar_in_parts`])
/// and fails when one does not extract.
fn untar_parts(dir: &str, name: &str) -> String {
    let base = format!("{}/{name}", ansi_c_escape(dir));
    format!(
        "( tar -xzof {base}.tgz && for _pogo_p in {base}.[0-9]*.tgz; do [ -f \"$_pogo_p\" ] || continue; tar -xzof \"$_pogo_p\" || exit 1; done )"
    )
}

/// The bytes of file names one `tar` of [`Writer::tar_in_parts`] gets: far below any
/// system's argument limit (128 KiB at the least).
const PART_NAME_BYTES: usize = 65_536;

/// An `artifacts:exclude` pattern as a bash `=~` (POSIX ERE) pattern, with
/// gitlab-runner's doublestar meaning: `*` and `?` within one path component, `**/` any
/// number of directories, `/**` at the end everything below, `**` elsewhere anything.
pub fn exclude_regex(pattern: &str) -> String {
    let p = pattern.trim_start_matches("./");
    let mut re = String::from("^");
    let mut i = 0;
    let chars: Vec<char> = p.chars().collect();
    while i < chars.len() {
        let c = chars[i];
        if c == '*' && chars.get(i + 1) == Some(&'*') {
            let at_start = i == 0 || chars[i - 1] == '/';
            if at_start && chars.get(i + 2) == Some(&'/') {
                re.push_str("(.*/)?");
                i += 3;
                continue;
            }
            // `dir/**` (everything below dir) and `**` inside a component alike
            re.push_str(".*");
            i += 2;
            continue;
        }
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' => re.push(c),
            '^' => re.push_str("\\^"),
            c => {
                re.push('[');
                re.push(c);
                re.push(']');
            }
        }
        i += 1;
    }
    re.push('$');
    re
}

impl ScriptInfo<'_> {
    /// Expands `$VAR` in paths like gitlab-runner does for cache and artifact paths.
    fn expand_paths(&self, paths: &[String]) -> Vec<String> {
        paths
            .iter()
            .map(|p| job::expand(p, self.variables))
            .collect()
    }

    /// Stage `get_sources`: the sources archive extracted into the project directory
    /// (`fetch`/`clone`), or nothing (`none`/`empty`).
    pub fn local_get_sources(&self, git_strategy: &str, local: &LocalStages) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        match (git_strategy, &local.sources_tar) {
            ("none", _) => w.notice("Skipping Git repository setup"),
            ("empty", _) => {
                w.notice("Skipping Git repository setup and creating an empty build directory")
            }
            ("fetch" | "clone", None) => w.notice(&format!(
                "No sources ({}): the job starts in an empty directory",
                local.sources_note
            )),
            ("fetch" | "clone", Some(tar)) => {
                w.require_tar();
                w.notice(&format!("Fetching the sources: {}", local.sources_note));
                w.mkdir(self.project_dir);
                w.line(format!(
                    "tar -xof {} -C {}",
                    ansi_c_escape(tar),
                    ansi_c_escape(self.project_dir)
                ));
            }
            (other, _) => {
                w.error(&format!(
                    "ERROR: unknown GIT_STRATEGY '{other}': use fetch, clone, empty or none"
                ));
                w.line("exit 1");
            }
        }
        w.mkdir(self.project_dir);
        w.cd(self.project_dir);
        w
    }

    /// Stage `restore_cache`: each cache archive that exists is extracted; a missing or
    /// broken one is only a warning, as with gitlab-runner.
    pub fn local_restore_cache(&self, caches: &[CacheArchive], local: &LocalStages) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        w.require_tar();
        for c in caches {
            let (file, host) = local.cache_file(&c.key);
            w.notice(&format!("Checking cache for {}...", c.key));
            let dir = format!("{}/{}", local.cache.container, c.key);
            w.line(format!("if [ -f {} ]; then", ansi_c_escape(&file)));
            w.line(format!("if {}; then", untar_parts(&dir, CACHE_BASE)));
            w.notice(&cache_extracted_message(&c.key, &host));
            w.line("else");
            w.warning("Failed to extract cache");
            w.line("fi");
            w.line("else");
            w.warning(&format!("{host} does not exist yet"));
            w.warning("Failed to extract cache");
            w.line("fi");
        }
        w
    }

    /// Stage `download_artifacts`: the artifacts of each dependency extracted into the
    /// project directory; a failure fails the stage, as with gitlab-runner.
    pub fn local_download_artifacts(&self, deps: &[&Dependency], local: &LocalStages) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        w.require_tar();
        for d in deps {
            let (file, host) = local.artifacts_file(&d.name);
            w.notice(&format!(
                "Downloading artifacts for {} ({})...",
                d.name, d.id
            ));
            let dir = file
                .rsplit_once('/')
                .map_or(String::new(), |(d, _)| d.to_string());
            w.line(untar_parts(&dir, ARTIFACTS_BASE));
            w.line(format!(
                "echo {}",
                ansi_c_escape(&format!(
                    "Extracted the artifacts of {} from {host}",
                    d.name
                ))
            ));
        }
        w
    }

    /// Stage `archive_cache` / `archive_cache_on_failure`: the cache paths packed into
    /// `<key>/cache.tgz`; a failure is only a warning, as with gitlab-runner.
    pub fn local_archive_cache(&self, caches: &[CacheArchive], local: &LocalStages) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        w.require_tar();
        for c in caches {
            let (_, host) = local.cache_file(&c.key);
            let dir = format!("{}/{}", local.cache.container, c.key);
            w.notice(&format!("Creating cache {}...", c.key));
            w.collect_matches(&self.expand_paths(&c.paths));
            w.line("if [ \"${#_pogo_files[@]}\" -eq 0 ]; then");
            w.warning("No files to cache: cache not saved");
            w.line(format!("elif mkdir -p {}; then", ansi_c_escape(&dir)));
            // A cache of thousands of files is in parts, renamed one by one: a job restoring
            // it meanwhile may mix two versions, as jobs sharing a cache on GitLab may.
            w.tar_in_parts(&dir, CACHE_BASE);
            w.line("if [ \"$_pogo_ok\" = 1 ]; then");
            w.notice(&format!("Created cache {} in {host}", c.key));
            w.line("else");
            w.warning("Failed to create cache");
            w.line("fi");
            w.line("else");
            w.warning("Failed to create cache");
            w.line("fi");
        }
        w
    }

    /// Stage `upload_artifacts_on_success` / `upload_artifacts_on_failure`: the artifact
    /// paths (less `exclude`) packed into the job's `artifacts.tgz` (in parts for thousands
    /// of files), the dotenv report copied beside it as `dotenv.env`. No matching file is an
    /// error message but not a failure; a failing `tar` fails the stage, as with
    /// gitlab-runner.
    pub fn local_upload_artifacts(
        &self,
        artifacts: &Artifacts,
        job_name: &str,
        local: &LocalStages,
    ) -> Writer {
        let mut w = Writer::new();
        self.write_exports(&mut w);
        w.cd(self.project_dir);
        w.require_tar();
        let dir = format!(
            "{}/{}",
            local.artifacts.container,
            artifacts_dir_name(job_name)
        );
        let host_dir = format!("{}/{}", local.artifacts.host, artifacts_dir_name(job_name));
        if !artifacts.paths.is_empty() {
            w.notice("Uploading artifacts...");
            w.collect_matches(&self.expand_paths(&artifacts.paths));
            w.drop_excluded(&self.expand_paths(&artifacts.exclude));
            w.line("if [ \"${#_pogo_files[@]}\" -eq 0 ]; then");
            w.error("ERROR: No files to upload");
            w.line("else");
            w.mkdir(&dir);
            w.tar_in_parts(&dir, ARTIFACTS_BASE);
            w.line("[ \"$_pogo_ok\" = 1 ] || exit 1");
            w.notice(&format!(
                "Saved the artifacts in {host_dir}/{ARTIFACTS_FILE}"
            ));
            w.line("fi");
        }
        if !artifacts.dotenv.is_empty() {
            let file = format!("{dir}/{DOTENV_FILE}");
            w.notice("Uploading artifacts... (dotenv report)");
            w.collect_matches(&self.expand_paths(&artifacts.dotenv));
            w.line("if [ \"${#_pogo_files[@]}\" -eq 0 ]; then");
            w.error("ERROR: No files to upload");
            w.line("else");
            w.mkdir(&dir);
            w.line(format!(
                "cat -- \"${{_pogo_files[@]}}\" > {}.tmp.$HOSTNAME.$$ && mv -f {}.tmp.$HOSTNAME.$$ {}",
                ansi_c_escape(&file),
                ansi_c_escape(&file),
                ansi_c_escape(&file)
            ));
            w.notice(&format!(
                "Saved the dotenv report in {host_dir}/{DOTENV_FILE}"
            ));
            w.line("fi");
        }
        w
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::driver::job::Variable;
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn artifact_dirs_are_the_job_name_when_it_is_safe_and_unique_otherwise() {
        assert_eq!(artifacts_dir_name("build"), "build");
        assert_eq!(artifacts_dir_name("test-unit_2.x"), "test-unit_2.x");
        let colon = artifacts_dir_name("test:unit");
        assert!(colon.starts_with("test-unit-"), "{colon}");
        assert_ne!(colon, artifacts_dir_name("test-unit"));
        assert_ne!(colon, artifacts_dir_name("test unit"));
        assert_eq!(colon, artifacts_dir_name("test:unit"), "stable");
        for hostile in ["../x", "..", "/", "", "a/b", "-rf"] {
            let d = artifacts_dir_name(hostile);
            assert!(
                !d.contains('/') && !d.starts_with('.') && !d.starts_with('-') && !d.is_empty(),
                "{hostile:?} -> {d:?}"
            );
        }
    }

    struct Sandbox {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        project: String,
        local: LocalStages,
    }

    /// A project dir and a store standing in for the container, paths the same on both
    /// sides (the scripts run in the host's bash here).
    fn sandbox() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let project = root.join("builds/g/p").display().to_string();
        let store = |n: &str| LocalDir {
            host: format!("HOST/{n}"),
            container: root.join(n).display().to_string(),
        };
        let local = LocalStages {
            sources_tar: Some(root.join("sources.tar").display().to_string()),
            sources_note: "a test tree".into(),
            cache: store("cache"),
            artifacts: store("artifacts"),
        };
        Sandbox {
            _dir: dir,
            root,
            project,
            local,
        }
    }

    /// The stage scripts' view of `s`: its project directory, no variables.
    fn script_info(s: &Sandbox) -> ScriptInfo<'_> {
        ScriptInfo {
            variables: &[],
            project_dir: &s.project,
            hostname: "h",
        }
    }

    /// 3000 files (and a `.o` every 1000th when `objects`) in a directory of `parent` whose
    /// long name fills a command line fast; that directory.
    fn thousands_of_files(parent: &Path, objects: bool) -> std::path::PathBuf {
        let deep = parent.join("a-directory-with-a-rather-long-name-to-fill-the-argument-list");
        std::fs::create_dir_all(&deep).unwrap();
        for i in 0..3000 {
            std::fs::write(deep.join(format!("file-number-{i:05}.txt")), "x").unwrap();
            if objects && i % 1000 == 0 {
                std::fs::write(deep.join(format!("file-number-{i:05}.o")), "o").unwrap();
            }
        }
        deep
    }

    fn run(root: &Path, w: &Writer) -> (i32, String) {
        let file = root.join("script");
        std::fs::write(&file, w.finish()).unwrap();
        let out = Command::new("bash").arg(&file).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// [`run`], which must exit 0; the output.
    #[track_caller]
    fn run_ok(root: &Path, w: &Writer) -> String {
        let (code, log) = run(root, w);
        assert_eq!(code, 0, "{log}");
        log
    }

    /// The whole local round trip in the host's bash and tar: sources in, cache and
    /// artifacts out, then into a second "job".
    #[test]
    fn sources_cache_and_artifacts_round_trip() {
        let s = sandbox();
        let tree = s.root.join("tree");
        std::fs::create_dir_all(tree.join("src")).unwrap();
        std::fs::write(tree.join("src/main.txt"), "the sources\n").unwrap();
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .args(["-cf"])
            .arg(s.root.join("sources.tar"))
            .arg(".")
            .status()
            .unwrap();
        assert!(ok.success());

        let vars = vec![Variable::new("OUT", "out")];
        let info = ScriptInfo {
            variables: &vars,
            project_dir: &s.project,
            hostname: "h",
        };
        let log = run_ok(&s.root, &info.local_get_sources("fetch", &s.local));
        assert!(log.contains("Fetching the sources: a test tree"), "{log}");
        assert_eq!(
            std::fs::read_to_string(Path::new(&s.project).join("src/main.txt")).unwrap(),
            "the sources\n"
        );

        let cache = CacheArchive {
            key: "deps/main".into(),
            rel_file: String::new(),
            paths: vec![".deps/".into(), "missing/".into()],
            timeout_minutes: 10,
        };
        let (code, log) = run(
            &s.root,
            &info.local_restore_cache(std::slice::from_ref(&cache), &s.local),
        );
        assert_eq!(code, 0, "a cache miss is not a failure: {log}");
        assert!(
            log.contains("HOST/cache/deps/main/cache.tgz does not exist yet"),
            "{log}"
        );

        let p = Path::new(&s.project);
        std::fs::create_dir_all(p.join(".deps")).unwrap();
        std::fs::write(p.join(".deps/lib"), "cached\n").unwrap();
        std::fs::create_dir_all(p.join("out/sub")).unwrap();
        std::fs::write(p.join("out/a.txt"), "artifact a\n").unwrap();
        std::fs::write(p.join("out/sub/b.txt"), "artifact b\n").unwrap();
        std::fs::write(p.join("-dash.txt"), "dash\n").unwrap();
        let log = run_ok(
            &s.root,
            &info.local_archive_cache(std::slice::from_ref(&cache), &s.local),
        );
        assert!(
            log.contains(".deps/: found 1 matching artifact files and directories"),
            "{log}"
        );
        assert!(
            log.contains("WARNING: missing/: no matching files"),
            "{log}"
        );
        assert!(log.contains("Created cache deps/main"), "{log}");
        assert!(s.root.join("cache/deps/main/cache.tgz").is_file());

        let artifacts = Artifacts {
            paths: vec![
                "$OUT/**/*.txt".into(),
                "-dash.txt".into(),
                "../escape".into(),
            ],
            ..Artifacts::default()
        };
        let log = run_ok(
            &s.root,
            &info.local_upload_artifacts(&artifacts, "build:x", &s.local),
        );
        assert!(
            log.contains("out/**/*.txt: found 2 matching artifact files and directories"),
            "{log}"
        );
        assert!(
            log.contains("../escape: outside the project directory"),
            "{log}"
        );
        let dir = artifacts_dir_name("build:x");
        assert!(log.contains(&format!(
            "Saved the artifacts in HOST/artifacts/{dir}/artifacts.tgz"
        )));

        // A second job in a fresh project directory.
        std::fs::remove_dir_all(p).unwrap();
        std::fs::create_dir_all(p).unwrap();
        let log = run_ok(
            &s.root,
            &info.local_restore_cache(std::slice::from_ref(&cache), &s.local),
        );
        assert!(
            log.contains("Successfully extracted cache deps/main"),
            "{log}"
        );
        assert_eq!(
            std::fs::read_to_string(p.join(".deps/lib")).unwrap(),
            "cached\n"
        );
        let dep = Dependency {
            id: 1,
            name: "build:x".into(),
            token: String::new(),
            artifacts_file: Some(ARTIFACTS_FILE.into()),
        };
        run_ok(&s.root, &info.local_download_artifacts(&[&dep], &s.local));
        assert_eq!(
            std::fs::read_to_string(p.join("out/sub/b.txt")).unwrap(),
            "artifact b\n"
        );
        assert!(p.join("-dash.txt").is_file());
        assert!(!p.join("src").exists(), "only the artifacts came back");

        // A missing artifacts archive fails the stage.
        let gone = Dependency {
            name: "never-ran".into(),
            ..dep
        };
        let (code, _) = run(&s.root, &info.local_download_artifacts(&[&gone], &s.local));
        assert_ne!(code, 0);
    }

    #[test]
    fn exclude_patterns_mean_what_gitlab_runner_means() {
        let matches = |pattern: &str, path: &str| {
            regex::Regex::new(&exclude_regex(pattern))
                .unwrap()
                .is_match(path)
        };
        for (pattern, path, want) in [
            ("*.o", "a.o", true),
            ("*.o", "dir/a.o", false),
            ("**/*.o", "a.o", true),
            ("**/*.o", "dir/sub/a.o", true),
            ("bin/**", "bin/x/y", true),
            ("bin/**", "binx/y", false),
            ("bin/**/*.o", "bin/a.o", true),
            ("bin/**/*.o", "bin/x/a.o", true),
            ("bin/**/*.o", "bin/x/a.c", false),
            ("./out/?.log", "out/a.log", true),
            ("./out/?.log", "out/ab.log", false),
            ("a.b", "axb", false),
            ("a^b(c)", "a^b(c)", true),
        ] {
            assert_eq!(matches(pattern, path), want, "{pattern} ~ {path}");
        }
    }

    /// Thousands of matching files (their names far past one command line), an exclude and
    /// a dotenv report, through the host's bash and tar.
    #[test]
    fn thousands_of_artifact_files_an_exclude_and_a_dotenv_report_round_trip() {
        let s = sandbox();
        let info = script_info(&s);
        let p = Path::new(&s.project);
        let deep = thousands_of_files(&p.join("out"), true);
        std::fs::write(p.join("build.env"), "VERSION=1.2\n").unwrap();
        let a = Artifacts {
            paths: vec!["out/**/*.txt".into(), "out/".into()],
            exclude: vec!["out/**/*.o".into()],
            dotenv: vec!["build.env".into()],
            ..Artifacts::default()
        };
        let log = run_ok(&s.root, &info.local_upload_artifacts(&a, "j", &s.local));
        assert!(log.contains("out/**/*.o: excluded 3 files"), "{log}");
        assert!(s.root.join("artifacts/j/artifacts.tgz").is_file(), "{log}");
        assert!(
            s.root.join("artifacts/j/artifacts.1.tgz").is_file(),
            "{log}"
        );
        assert_eq!(
            std::fs::read_to_string(s.root.join("artifacts/j").join(DOTENV_FILE)).unwrap(),
            "VERSION=1.2\n"
        );

        std::fs::remove_dir_all(p.join("out")).unwrap();
        let dep = Dependency {
            id: 1,
            name: "j".into(),
            token: String::new(),
            artifacts_file: Some(ARTIFACTS_FILE.into()),
        };
        run_ok(&s.root, &info.local_download_artifacts(&[&dep], &s.local));
        let back = std::fs::read_dir(&deep).unwrap().count();
        assert_eq!(back, 3000, "every .txt back, no .o");
    }

    /// A cache of thousands of files is saved in parts and restored whole; a smaller one
    /// saved later leaves no part of the bigger one behind.
    #[test]
    fn a_cache_of_thousands_of_files_round_trips_and_shrinks() {
        let s = sandbox();
        let info = script_info(&s);
        let p = Path::new(&s.project);
        let deep = thousands_of_files(&p.join("deps"), false);
        let cache = CacheArchive {
            key: "k".into(),
            rel_file: String::new(),
            paths: vec!["deps/**/*.txt".into()],
            timeout_minutes: 10,
        };
        let caches = std::slice::from_ref(&cache);
        let log = run_ok(&s.root, &info.local_archive_cache(caches, &s.local));
        assert!(log.contains("Created cache k"), "{log}");
        assert!(s.root.join("cache/k/cache.1.tgz").is_file(), "{log}");
        std::fs::remove_dir_all(p.join("deps")).unwrap();
        let log = run_ok(&s.root, &info.local_restore_cache(caches, &s.local));
        assert!(log.contains("Successfully extracted cache k"), "{log}");
        assert_eq!(std::fs::read_dir(&deep).unwrap().count(), 3000);

        std::fs::remove_dir_all(p.join("deps")).unwrap();
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("only.txt"), "x").unwrap();
        run_ok(&s.root, &info.local_archive_cache(caches, &s.local));
        assert!(!s.root.join("cache/k/cache.1.tgz").exists());
        std::fs::remove_dir_all(p.join("deps")).unwrap();
        run_ok(&s.root, &info.local_restore_cache(caches, &s.local));
        assert_eq!(std::fs::read_dir(&deep).unwrap().count(), 1);
    }

    #[test]
    fn no_files_to_upload_is_reported_but_not_a_failure() {
        let s = sandbox();
        let info = script_info(&s);
        std::fs::create_dir_all(&s.project).unwrap();
        let a = Artifacts {
            paths: vec!["nothing/".into()],
            ..Artifacts::default()
        };
        let log = run_ok(&s.root, &info.local_upload_artifacts(&a, "j", &s.local));
        assert!(log.contains("ERROR: No files to upload"), "{log}");
        assert!(!s.root.join("artifacts/j").exists());
    }

    #[test]
    fn git_strategies() {
        let s = sandbox();
        let info = script_info(&s);
        let log = run_ok(&s.root, &info.local_get_sources("none", &s.local));
        assert!(log.contains("Skipping Git repository setup"), "{log}");
        assert!(Path::new(&s.project).is_dir());
        let (code, log) = run(&s.root, &info.local_get_sources("rsync", &s.local));
        assert_eq!(code, 1, "{log}");
        assert!(log.contains("unknown GIT_STRATEGY 'rsync'"), "{log}");
    }
}
