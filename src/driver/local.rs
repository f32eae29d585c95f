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

/// The file a cache is kept in, below `<cache dir>/<key>/`.
pub const CACHE_FILE: &str = "cache.tgz";
/// The file a job's artifacts are kept in, below `<artifacts dir>/<job dir>/`.
pub const ARTIFACTS_FILE: &str = "artifacts.tgz";

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
    let mapped: String = job_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
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
        self.line("_pogo_files=()");
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
            w.line(format!("if [ -f {} ]; then", ansi_c_escape(&file)));
            w.line(format!("if tar -xzof {}; then", ansi_c_escape(&file)));
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
            w.line(format!("tar -xzof {}", ansi_c_escape(&file)));
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
            let (file, host) = local.cache_file(&c.key);
            let dir = format!("{}/{}", local.cache.container, c.key);
            let tmp = format!("{file}.tmp.$HOSTNAME.$$");
            w.notice(&format!("Creating cache {}...", c.key));
            w.collect_matches(&self.expand_paths(&c.paths));
            w.line("if [ \"${#_pogo_files[@]}\" -eq 0 ]; then");
            w.warning("No files to cache: cache not saved");
            w.line(format!(
                "elif mkdir -p {} && tar -czf {} -- \"${{_pogo_files[@]}}\" && mv -f {} {}; then",
                ansi_c_escape(&dir),
                ansi_c_escape(&tmp),
                ansi_c_escape(&tmp),
                ansi_c_escape(&file)
            ));
            w.notice(&format!("Created cache {} in {host}", c.key));
            w.line("else");
            w.line(format!("rm -f {}", ansi_c_escape(&tmp)));
            w.warning("Failed to create cache");
            w.line("fi");
        }
        w
    }

    /// Stage `upload_artifacts_on_success` / `upload_artifacts_on_failure`: the artifact
    /// paths packed into the job's `artifacts.tgz`. No matching file is an error message
    /// but not a failure; a failing `tar` fails the stage, as with gitlab-runner.
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
        let (file, host) = local.artifacts_file(job_name);
        let dir = format!(
            "{}/{}",
            local.artifacts.container,
            artifacts_dir_name(job_name)
        );
        let tmp = format!("{file}.tmp.$HOSTNAME.$$");
        w.notice("Uploading artifacts...");
        w.collect_matches(&self.expand_paths(&artifacts.paths));
        w.line("if [ \"${#_pogo_files[@]}\" -eq 0 ]; then");
        w.error("ERROR: No files to upload");
        w.line("else");
        w.mkdir(&dir);
        w.line(format!(
            "tar -czf {} -- \"${{_pogo_files[@]}}\"",
            ansi_c_escape(&tmp)
        ));
        w.line(format!(
            "mv -f {} {}",
            ansi_c_escape(&tmp),
            ansi_c_escape(&file)
        ));
        w.notice(&format!("Saved the artifacts in {host}"));
        w.line("fi");
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
            when: Default::default(),
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
    fn no_files_to_upload_is_reported_but_not_a_failure() {
        let s = sandbox();
        let info = ScriptInfo {
            variables: &[],
            project_dir: &s.project,
            hostname: "h",
        };
        std::fs::create_dir_all(&s.project).unwrap();
        let a = Artifacts {
            paths: vec!["nothing/".into()],
            when: Default::default(),
        };
        let log = run_ok(&s.root, &info.local_upload_artifacts(&a, "j", &s.local));
        assert!(log.contains("ERROR: No files to upload"), "{log}");
        assert!(!s.root.join("artifacts/j").exists());
    }

    #[test]
    fn git_strategies() {
        let s = sandbox();
        let info = ScriptInfo {
            variables: &[],
            project_dir: &s.project,
            hostname: "h",
        };
        let log = run_ok(&s.root, &info.local_get_sources("none", &s.local));
        assert!(log.contains("Skipping Git repository setup"), "{log}");
        assert!(Path::new(&s.project).is_dir());
        let (code, log) = run(&s.root, &info.local_get_sources("rsync", &s.local));
        assert_eq!(code, 1, "{log}");
        assert!(log.contains("unknown GIT_STRATEGY 'rsync'"), "{log}");
    }
}
