#![allow(clippy::unwrap_used)]
use super::*;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Runs `script` with bash in `dir`, git configured as a fresh user's.
pub(crate) fn sh(dir: &Path, script: &str) {
    let ok = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .status()
        .unwrap();
    assert!(ok.success(), "{script}");
}

/// An HTTP server on 127.0.0.1 answering `GET PATH` with the body `routes` gives it
/// (404 otherwise), one connection after the other, for as long as the test runs.
/// Returns its base URL (`http://127.0.0.1:PORT`).
pub(crate) fn serve(routes: Vec<(&'static str, String)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split(' ').nth(1).unwrap_or_default();
            let answer = match routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    base
}

/// A repository of CI templates and components: `1.0.0` and `1.2.0` (the same content,
/// `v1`), `2.0.0` (`v2`), then an untagged commit `v3` on main and `v4` uncommitted.
pub(crate) fn template_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let version = |v: &str| {
        format!(
            "mkdir -p templates/deploy ci && echo 'build-{v}: {{script: x}}' > templates/build.yml \
             && echo 'deploy-{v}: {{script: x}}' > templates/deploy/template.yml \
             && echo 'common-{v}: {{script: x}}' > ci/common.yml"
        )
    };
    sh(
        dir.path(),
        &format!(
            "git init -q -b main && {} && git add -A && git commit -q -m v1 && git tag 1.0.0 \
             && git tag 1.2.0 && git tag not-a-release && {} && git commit -qam v2 && git tag 2.0.0 \
             && {} && git commit -qam v3 && {}",
            version("v1"),
            version("v2"),
            version("v3"),
            version("v4")
        ),
    );
    dir
}

#[test]
fn component_references_parse_as_gitlab_names_them() {
    let c = |s: &str| parse_component(s).map(|(p, n, v)| format!("{p} {n} {v}"));
    assert_eq!(
        c("gitlab.com/g/sub/p/build@1.0").unwrap(),
        "g/sub/p build 1.0"
    );
    assert_eq!(c("$CI_SERVER_FQDN/g/p/x@~latest").unwrap(), "g/p x ~latest");
    assert_eq!(c("/g/p/x@main").unwrap(), "g/p x main");
    for (bad, says) in [
        ("gitlab.com/g/p/x", "has no version"),
        ("gitlab.com/g/p/x@", "has no usable version"),
        (
            "gitlab.com/g/p/x@--upload-pack=evil",
            "has no usable version",
        ),
        ("gitlab.com/x@1", "names no project and component"),
        ("gitlab.com/g/../x@1", "is not a component path"),
    ] {
        let e = c(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    assert_eq!(
        component_files("build"),
        ["templates/build.yml", "templates/build/template.yml"]
    );
    assert_eq!(semver_prefix("~latest"), Some(vec![]));
    assert_eq!(semver_prefix("1"), Some(vec![1]));
    assert_eq!(semver_prefix("1.2"), Some(vec![1, 2]));
    assert_eq!(semver_prefix("1.2.3"), None);
    assert_eq!(semver_prefix("main"), None);
    let tags = [
        "0.9.0",
        "1.10.0",
        "1.9.3",
        "2.0.0-rc1",
        "v3.0.0",
        "main",
        "1.10",
    ];
    assert_eq!(highest_release(tags, &[]).as_deref(), Some("1.10.0"));
    assert_eq!(highest_release(tags, &[1, 9]).as_deref(), Some("1.9.3"));
    assert_eq!(highest_release(tags, &[2]), None);
}

#[test]
fn template_names_become_urls_and_remote_content_is_checked_against_its_integrity() {
    let net = Network::default();
    assert_eq!(
        template_url("Jobs/Build.gitlab-ci.yml", &net).unwrap(),
        "https://gitlab.com/gitlab-org/gitlab/-/raw/master/lib/gitlab/ci/templates/Jobs/Build.gitlab-ci.yml"
    );
    for bad in ["../x.yml", "/etc/x.yml", "a b.yml", "", "a?b=1.yml"] {
        assert!(template_url(bad, &net).is_err(), "{bad}");
    }
    // sha256 of "" and of "abc", as `openssl dgst -sha256 -binary | base64` prints them
    check_integrity("", "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").unwrap();
    check_integrity("abc", "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=").unwrap();
    let e =
        check_integrity("abd", "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=").unwrap_err();
    assert!(e.contains("does not match integrity"), "{e}");
    assert!(check_integrity("abc", "md5-x").is_err());
}

#[test]
fn a_clone_is_read_at_the_ref_and_components_at_their_release() {
    let repo = template_repo();
    let origins = Origins {
        projects: vec![("team/ci".into(), repo.path().to_path_buf())],
        network: None,
    };
    // committed HEAD, not the work tree
    let head = origins.checkout("team/ci", None).unwrap();
    assert_eq!(
        head.read("ci/common.yml").unwrap(),
        "common-v3: {script: x}\n"
    );
    assert_eq!(head.shown("ci/common.yml"), "team/ci@HEAD:ci/common.yml");
    let old = origins.checkout("/team/ci/", Some("1.0.0")).unwrap();
    assert_eq!(
        old.read("ci/common.yml").unwrap(),
        "common-v1: {script: x}\n"
    );
    let mut files = old.files().unwrap();
    files.sort();
    assert_eq!(
        files,
        [
            "ci/common.yml",
            "templates/build.yml",
            "templates/deploy/template.yml"
        ]
    );
    let e = old.read("nope.yml").unwrap_err();
    assert!(e.contains("no file 'nope.yml' in team/ci@1.0.0"), "{e}");
    for bad in ["--output=/tmp/x", "-h", "nope", ""] {
        let e = origins.checkout("team/ci", Some(bad)).unwrap_err();
        assert!(
            e.contains("is not a branch, tag or commit")
                || e.contains("has no branch, tag or commit"),
            "{bad}: {e}"
        );
    }
    let plain = tempfile::tempdir().unwrap();
    let not_git = Origins {
        projects: vec![("team/ci".into(), plain.path().to_path_buf())],
        network: None,
    };
    let e = not_git.checkout("team/ci", None).unwrap_err();
    assert!(
        e.contains("is not a git clone to read from: fatal: not a git repository"),
        "{e}"
    );
    let e = origins.checkout("team/other", None).unwrap_err();
    assert!(e.contains("pass --project-dir team/other=PATH"), "{e}");

    let component = |r: &str| {
        origins
            .component(r)
            .map(|(c, f)| format!("{} {f} {}", c.shown_ref, c.read(&f).unwrap().trim()))
    };
    assert_eq!(
        component("gitlab.example.com/team/ci/build@~latest").unwrap(),
        "2.0.0 templates/build.yml build-v2: {script: x}"
    );
    assert_eq!(
        component("x/team/ci/deploy@1").unwrap(),
        "1.2.0 templates/deploy/template.yml deploy-v1: {script: x}"
    );
    assert_eq!(
        component("x/team/ci/build@main").unwrap(),
        "main templates/build.yml build-v3: {script: x}"
    );
    let e = component("x/team/ci/build@3").unwrap_err();
    assert!(e.contains("no tag of the clone"), "{e}");
    let e = component("x/team/ci/test@1.0.0").unwrap_err();
    assert!(
        e.contains("team/ci@1.0.0 has no component 'test' (neither templates/test.yml nor templates/test/template.yml"),
        "{e}"
    );
}

#[test]
fn remote_files_are_fetched_within_a_size_limit_and_failures_say_why() {
    let base = serve(vec![
        ("/ci.yml", "j: {script: x}\n".to_string()),
        ("/big.yml", "#".repeat(2048)),
    ]);
    let net = Network {
        max_bytes: 1024,
        ..Network::default()
    };
    assert_eq!(
        fetch(&format!("{base}/ci.yml"), &net).unwrap(),
        "j: {script: x}\n"
    );
    let e = fetch(&format!("{base}/missing.yml"), &net).unwrap_err();
    assert_eq!(e, "HTTP status 404");
    let e = fetch(&format!("{base}/big.yml"), &net).unwrap_err();
    assert!(e.contains("larger than 1 KiB"), "{e}");
    // a port nothing listens on
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = fetch(&format!("http://{closed}/ci.yml"), &net).unwrap_err();
    assert!(
        e.contains("Connection Failed") || e.contains("refused"),
        "{e}"
    );
    assert!(fetch("ftp://x/y.yml", &net).is_err());
}
