//! `pogo install` (the systemd user unit), `pogo completions`/`pogo man`, and packaging:
//! `make dist`'s tarball and its install.sh, the RPM spec and the cargo-deb metadata.
//! systemd itself is not needed: `systemctl` and `loginctl` are stand-ins that record their
//! arguments, and the unit is checked with `systemd-analyze verify` when that is installed.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{skip_outside_ci, skipped, Run};

const POGO: &str = env!("CARGO_BIN_EXE_pogo");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn write_exec(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A temp HOME with stand-ins for gitlab-runner, systemctl and loginctl in `HOME/bin`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let h = Home { dir };
        std::fs::create_dir(h.bin()).unwrap();
        write_exec(
            &h.bin().join("gitlab-runner"),
            "#!/bin/sh\necho 'Version: 17.11.0'\n",
        );
        h.systemctl("exit 0");
        write_exec(
            &h.bin().join("loginctl"),
            "#!/bin/sh\n[ \"$1\" = show-user ] && echo no\n",
        );
        h
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn bin(&self) -> PathBuf {
        self.path().join("bin")
    }
    fn log(&self) -> PathBuf {
        self.path().join("systemctl.log")
    }
    /// The stand-in systemctl logs its arguments, then runs `then`.
    fn systemctl(&self, then: &str) {
        write_exec(
            &self.bin().join("systemctl"),
            &format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\n{then}\n",
                self.log().display()
            ),
        );
    }
    fn unit(&self) -> PathBuf {
        self.path()
            .join(".config/systemd/user/gitlab-runner.service")
    }
    /// gitlab-runner's default for this user (root: the system-wide file).
    fn runner_config(&self) -> PathBuf {
        if nix::unistd::geteuid().is_root() {
            PathBuf::from("/etc/gitlab-runner/config.toml")
        } else {
            self.path().join(".gitlab-runner/config.toml")
        }
    }
    fn pogo(&self, args: &[&str], path: &str) -> Run {
        let out = Command::new(POGO)
            .env_clear()
            .env("HOME", self.path())
            .env("PATH", path)
            .args(args)
            .output()
            .unwrap();
        Run::from(out)
    }
    fn pogo_with_standins(&self, args: &[&str]) -> Run {
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin().display());
        self.pogo(args, &path)
    }
    /// Every file under HOME except the stand-ins.
    fn files(&self) -> BTreeSet<PathBuf> {
        fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.insert(p);
                }
            }
        }
        let mut all = BTreeSet::new();
        walk(self.path(), &mut all);
        all.into_iter()
            .filter(|p| !p.starts_with(self.bin()))
            .collect()
    }
}

/// `systemd-analyze verify` of a user unit, or `None` when systemd-analyze is not installed.
fn systemd_verify(unit: &Path) -> Option<Output> {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip_outside_ci("systemd-analyze is not installed (apt-get install systemd)");
        return None;
    }
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    Some(
        Command::new("systemd-analyze")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .args(["verify", "--user", "--man=no"])
            .arg(unit)
            .output()
            .unwrap(),
    )
}

/// `systemd-analyze verify` passes `unit` without a warning (skipped without systemd-analyze).
fn assert_systemd_verify_passes(unit: &Path) {
    let Some(out) = systemd_verify(unit) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
}

/// Runs `cmd`, which must succeed: `what` and its stderr are the failure message.
fn output_of_successful(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The crate's Cargo.toml, parsed.
fn cargo_toml() -> toml_edit::DocumentMut {
    std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// pogo install
// ---------------------------------------------------------------------------------------------

#[test]
fn install_dry_run_prints_every_file_and_command_and_changes_nothing() {
    let h = Home::new();
    let r = h.pogo_with_standins(&["install", "--dry-run"]);
    assert_eq!(r.code, 0);
    let unit = h.unit();
    let gr = h.bin().join("gitlab-runner");
    let out = &r.stdout;
    assert!(out.contains("nothing is changed"), "{out}");
    assert!(
        out.contains(&format!("mkdir -p {}\n", unit.parent().unwrap().display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("write {} (mode 0644):\n", unit.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "    ExecStart={} run --working-directory {} --config {}\n",
            gr.display(),
            h.path().display(),
            h.runner_config().display()
        )),
        "{out}"
    );
    assert!(
        out.contains("    [Install]\n    WantedBy=default.target\n"),
        "{out}"
    );
    for cmd in [
        "run systemctl --user daemon-reload\n",
        "run systemctl --user enable gitlab-runner.service\n",
        "run systemctl --user restart gitlab-runner.service\n",
    ] {
        assert!(out.contains(cmd), "missing `{cmd}` in:\n{out}");
    }
    // The stand-in loginctl says linger is off: the exact command to turn it on is printed.
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    assert!(
        out.contains(&format!("sudo loginctl enable-linger {user}\n")),
        "{out}"
    );
    assert!(h.files().is_empty(), "the dry run wrote {:?}", h.files());
    assert!(!h.log().exists(), "the dry run ran systemctl");
}

#[test]
fn install_writes_the_unit_and_enables_it_with_systemctl_user() {
    let h = Home::new();
    let r = h.pogo_with_standins(&["install"]);
    assert_eq!(r.code, 0);
    let unit = std::fs::read_to_string(h.unit()).unwrap();
    assert!(unit.contains(&format!(
        "ExecStart={} run",
        h.bin().join("gitlab-runner").display()
    )));
    assert_eq!(
        std::fs::metadata(h.unit()).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        std::fs::read_to_string(h.log()).unwrap(),
        "--user daemon-reload\n--user enable gitlab-runner.service\n--user restart gitlab-runner.service\n"
    );
    assert!(r.stdout.contains("linger is off"), "{}", r.stdout);

    // Again with the same unit: nothing rewritten, just enabled and started.
    std::fs::remove_file(h.log()).unwrap();
    let r = h.pogo_with_standins(&["install"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("is up to date"), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(h.log()).unwrap(),
        "--user daemon-reload\n--user enable --now gitlab-runner.service\n"
    );
}

#[test]
fn install_without_a_systemd_user_session_says_what_to_do() {
    let h = Home::new();
    h.systemctl("echo 'Failed to connect to bus: No medium found' >&2; exit 1");
    let r = h.pogo_with_standins(&["install"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("Failed to connect to bus"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("start a login session"), "{}", r.stderr);
    assert!(h.unit().exists(), "the unit should be in place for later");
}

#[test]
fn install_without_gitlab_runner_says_where_to_get_it_and_changes_nothing() {
    let h = Home::new();
    std::fs::remove_file(h.bin().join("gitlab-runner")).unwrap();
    let path = format!("{}:/usr/bin:/bin", h.bin().display());
    if ["/usr/bin/gitlab-runner", "/bin/gitlab-runner"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        skipped("a real gitlab-runner is installed on this machine");
        return;
    }
    let r = h.pogo(&["install", "--dry-run"], &path);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("gitlab-runner is not installed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("packages.gitlab.com") || r.stdout.contains("gitlab-runner-downloads"),
        "{}",
        r.stdout
    );
    let r = h.pogo(&["install"], &path);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(h.files().is_empty());
}

#[test]
fn a_gitlab_runner_unit_of_the_users_own_is_kept_unless_forced_and_then_backed_up() {
    let h = Home::new();
    let own = "[Service]\nEnvironment=HTTPS_PROXY=http://proxy:3128\nExecStart=/usr/bin/gitlab-runner run\n";
    std::fs::create_dir_all(h.unit().parent().unwrap()).unwrap();
    std::fs::write(h.unit(), own).unwrap();

    let r = h.pogo_with_standins(&["install"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("was not written by pogo install") && r.stdout.contains("--force"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(h.unit()).unwrap(), own);
    assert!(!h.log().exists(), "systemctl must not run");

    let r = h.pogo_with_standins(&["install", "--force"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let backup = h.unit().with_file_name("gitlab-runner.service.pogo-backup");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), own);
    assert!(r.stdout.contains("kept your unit as"), "{}", r.stdout);
    let unit = std::fs::read_to_string(h.unit()).unwrap();
    assert!(unit.starts_with("# Written by `pogo install`"), "{unit}");

    // pogo's own unit is rewritten without --force
    assert_eq!(h.pogo_with_standins(&["install"]).code, 0);
}

#[test]
fn installed_unit_passes_systemd_analyze_verify() {
    let h = Home::new();
    assert_eq!(h.pogo_with_standins(&["install"]).code, 0);
    assert_systemd_verify_passes(&h.unit());
}

#[test]
fn packaged_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    // The packaged unit runs /usr/bin/gitlab-runner, which this machine may not have.
    let text = std::fs::read_to_string(Path::new(ROOT).join("packaging/gitlab-runner.service"))
        .unwrap()
        .replace("/usr/bin/gitlab-runner", "/bin/true");
    let unit = dir.path().join("gitlab-runner.service");
    std::fs::write(&unit, text).unwrap();
    assert_systemd_verify_passes(&unit);
}

// ---------------------------------------------------------------------------------------------
// Completions and man page
// ---------------------------------------------------------------------------------------------

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef pogo"),
        ("fish", "complete -c pogo"),
    ] {
        let out = Command::new(POGO)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(
            text.contains("register") && text.contains("doctor"),
            "{shell}"
        );
    }
    let out = Command::new(POGO)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn man_page_is_printed_and_written_per_command() {
    let out = Command::new(POGO).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH pogo"),
        "{page}"
    );
    assert!(page.contains("doctor"));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(POGO)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    for name in [
        "pogo.1",
        "pogo-register.1",
        "pogo-install.1",
        "pogo-doctor.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(text.contains(".TH"), "{name}");
    }
    let register = std::fs::read_to_string(dir.path().join("pogo-register.1")).unwrap();
    assert!(register.contains("POGO_RUNNER_TOKEN"));
}

// ---------------------------------------------------------------------------------------------
// Packaging
// ---------------------------------------------------------------------------------------------

/// What packaging/dist.sh made from this test build's binary: the output directory (with
/// `stage/`), the tarball and its file list. Built once per test run (the debug binary is big).
struct Dist {
    dir: PathBuf,
    tarball: PathBuf,
    files: BTreeSet<String>,
}

fn dist() -> &'static Dist {
    static DIST: std::sync::OnceLock<Dist> = std::sync::OnceLock::new();
    DIST.get_or_init(|| {
        // A fixed place, replaced on every run, so runs do not pile up copies of the binary.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dist-test");
        let _ = std::fs::remove_dir_all(&dir);
        let out = output_of_successful(
            Command::new("bash")
                .arg(Path::new(ROOT).join("packaging/dist.sh"))
                .env("POGO_BIN", POGO)
                .env("DIST_DIR", &dir),
            "dist.sh failed",
        );
        let tarball = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        let list = Command::new("tar")
            .arg("-tzf")
            .arg(&tarball)
            .output()
            .unwrap();
        assert!(list.status.success());
        let files = String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter(|l| !l.ends_with('/'))
            .map(|l| l.split_once('/').unwrap().1.to_string())
            .collect();
        Dist {
            dir,
            tarball,
            files,
        }
    })
}

fn cargo_version() -> String {
    cargo_toml()["package"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn dist_tarball_has_binary_configs_unit_completions_man_pages_and_installer() {
    let Dist { tarball, files, .. } = dist();
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("pogo-{}-", cargo_version())) && name.ends_with("-linux.tar.gz"),
        "{name}"
    );
    for f in [
        "install.sh",
        "bin/pogo",
        "share/man/man1/pogo.1",
        "share/man/man1/pogo-register.1",
        "share/bash-completion/completions/pogo",
        "share/zsh/site-functions/_pogo",
        "share/fish/vendor_completions.d/pogo.fish",
        "share/pogo/gitlab-runner.service",
        "share/doc/pogo/README.md",
        "share/doc/pogo/pogo.yaml.example",
        "share/doc/pogo/config.toml.example",
        "share/doc/pogo/assets/dashboard-jobs.png",
        "share/doc/pogo/docs/README.md",
        "share/doc/pogo/docs/configuration.md",
    ] {
        assert!(files.contains(f), "{f} missing from the tarball: {files:?}");
    }
}

#[test]
fn install_sh_puts_pogo_and_its_files_under_dot_local() {
    let Dist { tarball, files, .. } = dist();
    let unpack = tempfile::tempdir().unwrap();
    assert!(Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(unpack.path())
        .status()
        .unwrap()
        .success());
    let top = std::fs::read_dir(unpack.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Run::from(
            Command::new(top.join("install.sh"))
                .args(args)
                .env_clear()
                .env("HOME", home.path())
                .env("PATH", "/usr/bin:/bin")
                .output()
                .unwrap(),
        )
    };
    let r = run(&["--dry-run"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains(&format!(
        "+ install -m 755 {}/bin/pogo {}/.local/bin/pogo",
        top.display(),
        home.path().display()
    )));
    assert!(
        std::fs::read_dir(home.path()).unwrap().next().is_none(),
        "dry run installed files"
    );

    let r = run(&[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("is not in your PATH"), "{}", r.stdout);
    assert!(r.stdout.contains("pogo register"), "{}", r.stdout);
    let local = home.path().join(".local");
    for f in files
        .iter()
        .filter(|f| f.starts_with("bin/") || f.starts_with("share/"))
    {
        assert!(local.join(f).is_file(), "{f} not installed");
    }
    let pogo = local.join("bin/pogo");
    assert_eq!(
        std::fs::metadata(&pogo).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let v = Command::new(&pogo).arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("pogo {}", cargo_version())
    );
}

/// `%{macro}` paths of the spec's %files → where `make dist` puts the same file.
const RPM_TO_TARBALL: &[(&str, &str)] = &[
    ("%{_bindir}/", "bin/"),
    ("%{_mandir}/man1/", "share/man/man1/"),
    (
        "%{bash_completions_dir}/",
        "share/bash-completion/completions/",
    ),
    ("%{zsh_completions_dir}/", "share/zsh/site-functions/"),
    (
        "%{fish_completions_dir}/",
        "share/fish/vendor_completions.d/",
    ),
    ("%{_userunitdir}/", "share/pogo/"),
];

/// Does a glob with `*` (as in `pogo*.1*`) match `name`?
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 && !p.is_empty() {
            return rest.ends_with(p);
        } else if let Some(at) = rest.find(p) {
            rest = &rest[at + p.len()..];
        } else {
            return false;
        }
    }
    true
}

#[test]
fn rpm_spec_has_the_required_fields_and_packages_only_files_dist_builds() {
    let spec = std::fs::read_to_string(Path::new(ROOT).join("packaging/pogo.spec")).unwrap();
    let field = |name: &str| -> String {
        spec.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("pogo.spec has no {name}:"))
            .trim()
            .to_string()
    };
    assert_eq!(field("Name"), "pogo");
    assert_eq!(
        field("Version"),
        cargo_version(),
        "pogo.spec's Version is not Cargo.toml's"
    );
    let cargo = cargo_toml();
    assert_eq!(
        field("License"),
        cargo["package"]["license"].as_str().unwrap()
    );
    for f in ["Release", "Summary", "Source0"] {
        assert!(!field(f).is_empty(), "{f} is empty");
    }
    assert!(spec.contains("Requires:       podman >= 4.3"));
    for section in [
        "%description",
        "%prep",
        "%build",
        "%install",
        "%files",
        "%changelog",
    ] {
        assert!(
            spec.lines().any(|l| l.starts_with(section)),
            "no {section} section"
        );
    }
    assert!(
        spec.contains(&format!("- {}-1\n", cargo_version())),
        "the %changelog has no entry for {}",
        cargo_version()
    );

    let tarball = &dist().files;
    let files_section = spec
        .split("\n%files\n")
        .nth(1)
        .unwrap()
        .split("\n%changelog")
        .next()
        .unwrap();
    let install_section = spec.split("\n%install\n").nth(1).unwrap();
    let mut checked = 0;
    for line in files_section.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(docs) = line.strip_prefix("%doc ") {
            for d in docs.split_whitespace() {
                let name = Path::new(d).file_name().unwrap().to_string_lossy();
                let path = Path::new(ROOT).join(d);
                // a directory (the README's screenshots, docs/) is copied whole, as `%doc` does
                let in_tarball = if path.is_dir() {
                    let prefix = format!("share/doc/pogo/{name}/");
                    tarball.iter().any(|f| f.starts_with(&prefix))
                } else {
                    assert!(path.is_file(), "%doc {d} does not exist");
                    tarball.contains(&format!("share/doc/pogo/{name}"))
                };
                assert!(in_tarball, "%doc {d} is not in the dist tarball");
                checked += 1;
            }
            continue;
        }
        let (prefix, dir) = RPM_TO_TARBALL
            .iter()
            .find(|(p, _)| line.starts_with(p))
            .unwrap_or_else(|| panic!("unexpected %files line: {line}"));
        let pattern = &line[prefix.len()..];
        assert!(
            tarball.iter().any(|f| f
                .strip_prefix(dir)
                .is_some_and(|name| !name.contains('/') && glob_match(pattern, name))),
            "%files {line} matches nothing dist builds in {dir}"
        );
        assert!(
            install_section.contains(prefix.trim_end_matches('/')),
            "%install never installs into {prefix}"
        );
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} %files entries checked");

    // rpm's own parser, when rpm is installed (Fedora's macros defined as Fedora does).
    if Command::new("rpmspec").arg("--version").output().is_err() {
        skip_outside_ci("rpmspec is not installed (apt-get install rpm)");
        return;
    }
    let out = output_of_successful(
        Command::new("rpmspec")
            .args(["-q", "--srpm", "--qf", "%{name} %{version} %{license}\\n"])
            .args(
                FEDORA_MACROS
                    .iter()
                    .flat_map(|(k, v)| ["--define".to_string(), format!("{k} {v}")]),
            )
            .arg(Path::new(ROOT).join("packaging/pogo.spec")),
        "rpmspec cannot parse pogo.spec",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pogo {} MIT", cargo_version())
    );
}

/// The Fedora macros the spec uses, for rpm on other distributions.
const FEDORA_MACROS: &[(&str, &str)] = &[
    ("_userunitdir", "/usr/lib/systemd/user"),
    ("rust_arches", "x86_64 aarch64"),
    (
        "bash_completions_dir",
        "/usr/share/bash-completion/completions",
    ),
    ("zsh_completions_dir", "/usr/share/zsh/site-functions"),
    (
        "fish_completions_dir",
        "/usr/share/fish/vendor_completions.d",
    ),
];

#[test]
fn deb_metadata_lists_assets_that_exist_after_make_dist() {
    let cargo = cargo_toml();
    let deb = cargo["package"]["metadata"]["deb"]
        .as_table()
        .expect("Cargo.toml has no [package.metadata.deb]");
    for key in ["maintainer", "depends", "section", "extended-description"] {
        assert!(deb.contains_key(key), "[package.metadata.deb] has no {key}");
    }
    assert!(deb["depends"].as_str().unwrap().contains("podman (>= 4.3)"));

    let stage = dist().dir.join("stage");
    let assets = deb["assets"].as_array().unwrap();
    let mut targets = BTreeSet::new();
    for a in assets {
        let a: Vec<&str> = a
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let [src, dest, mode] = a[..] else {
            panic!("asset {a:?} is not [source, destination, mode]");
        };
        assert!(mode == "644" || mode == "755", "{src}: mode {mode}");
        targets.insert(dest.to_string());
        let found: Vec<PathBuf> = if src == "target/release/pogo" {
            // cargo-deb builds (or with --no-build takes) the release binary itself.
            vec![PathBuf::from(POGO)]
        } else if let Some(rest) = src.strip_prefix("target/dist/stage/") {
            let (dir, pat) = rest.rsplit_once('/').unwrap();
            std::fs::read_dir(stage.join(dir))
                .map(|rd| {
                    rd.map(|e| e.unwrap().path())
                        .filter(|p| glob_match(pat, &p.file_name().unwrap().to_string_lossy()))
                        .collect()
                })
                .unwrap_or_default()
        } else if let Some((dir, pat)) = src.rsplit_once('/').filter(|(_, p)| p.contains('*')) {
            std::fs::read_dir(Path::new(ROOT).join(dir))
                .map(|rd| {
                    rd.map(|e| e.unwrap().path())
                        .filter(|p| glob_match(pat, &p.file_name().unwrap().to_string_lossy()))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            vec![Path::new(ROOT).join(src)]
                .into_iter()
                .filter(|p| p.is_file())
                .collect()
        };
        assert!(
            !found.is_empty(),
            "deb asset {src} does not exist after make dist"
        );
    }
    for dest in [
        "usr/bin/",
        "usr/share/man/man1/",
        "usr/share/bash-completion/completions/",
        "usr/share/zsh/vendor-completions/",
        "usr/share/fish/vendor_completions.d/",
        "usr/lib/systemd/user/",
        "usr/share/doc/pogo/",
        "usr/share/doc/pogo/assets/",
        "usr/share/doc/pogo/docs/",
    ] {
        assert!(targets.contains(dest), "nothing goes to {dest}");
    }
}

#[test]
fn example_configs_are_valid() {
    let pogo_example = Path::new(ROOT).join("packaging/pogo.yaml.example");
    output_of_successful(
        Command::new(POGO)
            .arg("--config")
            .arg(&pogo_example)
            .arg("print"),
        "pogo.yaml.example",
    );
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("packaging/config.toml.example")).unwrap();
    let runners =
        pogo::setup::runner_config::list(&text, Path::new("config.toml.example")).unwrap();
    assert!(runners.iter().any(|r| r.uses_pogo(None)));
}
