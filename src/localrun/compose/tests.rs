#![allow(clippy::unwrap_used)]
//! Includes from other projects (real git clones) and the network (a loopback HTTP server).
use super::*;
use crate::localrun::origin::tests::{serve, sh, template_repo};
use crate::localrun::origin::Network;
use crate::localrun::pipeline::tests::reader;
use crate::localrun::pipeline::{parse_with, Pipeline};
use std::path::Path;

fn context(origins: Origins) -> Context {
    Context::new(
        Map::new(),
        [
            (
                "CI_SERVER_FQDN".to_string(),
                "gitlab.example.com".to_string(),
            ),
            ("TEMPLATES_REF".to_string(), "fixes".to_string()),
        ]
        .into(),
        None,
    )
    .with_origins(origins)
}

fn parse(text: &str, own: &[(&str, &str)], origins: &Origins) -> Result<Pipeline, String> {
    parse_with(
        text,
        ".gitlab-ci.yml",
        &mut reader(own),
        &context(origins.clone()),
    )
    .map_err(|e| e.to_string())
}

/// The pipeline's job names, sorted.
fn names(p: &Pipeline) -> Vec<&str> {
    let mut names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    names.sort_unstable();
    names
}

fn clones(repo: &Path) -> Origins {
    Origins {
        projects: vec![("team/ci".into(), repo.to_path_buf())],
        network: None,
    }
}

#[test]
fn include_project_reads_the_named_clone_at_its_ref_with_its_own_local_includes() {
    let repo = template_repo();
    sh(
        repo.path(),
        "git stash -q && git checkout -q 1.0.0 -b fixes && mkdir -p jobs && echo 'include: {local: ci/common.yml}' > jobs/a.yml \
         && printf 'include: jobs/a.yml\\nb-fixes: {script: x}\\n' > jobs/b.yml \
         && git add -A && git commit -qm fixes && git checkout -q main && git stash pop -q",
    );
    let origins = clones(repo.path());
    // the project's own ci/common.yml must not be the one read for the clone's include
    let own = [("ci/common.yml", "own-common: {script: x}\n")];
    let p = parse(
        "include:\n  - project: team/ci\n    ref: $TEMPLATES_REF\n    file: [/jobs/b.yml, ci/common.yml]\nmain-job: {script: x}\n",
        &own,
        &origins,
    )
    .unwrap();
    assert_eq!(names(&p), ["b-fixes", "common-v1", "main-job"]);
    // without ref: the clone's HEAD (committed: v3, not the work tree's v4); a wildcard
    // include inside it matches the clone's files at that commit
    sh(
        repo.path(),
        "echo 'include: \"templates/**.yml\"' > all.yml && git add all.yml && git commit -qm all \
         && echo 'x: {script: x}' > templates/new.yml",
    );
    let p = parse(
        "include: {project: team/ci, file: all.yml}\n",
        &own,
        &origins,
    )
    .unwrap();
    assert_eq!(names(&p), ["build-v3", "deploy-v3"]);
    // a ref or file that would be a git option is refused, and nothing is read
    for (entry, says) in [
        (
            "{project: team/ci, ref: --output=/tmp/x, file: a.yml}",
            "ref '--output=/tmp/x' is not a branch, tag or commit",
        ),
        (
            "{project: team/ci, ref: nope, file: a.yml}",
            "has no branch, tag or commit 'nope'",
        ),
        (
            "{project: team/ci, file: ../x.yml}",
            "leaves the project directory",
        ),
        (
            "{project: team/ci, file: missing.yml}",
            "no file 'missing.yml' in team/ci@HEAD",
        ),
    ] {
        let e = parse(&format!("include: [{entry}]\n"), &own, &origins).unwrap_err();
        assert!(e.contains(says), "{entry}: {e}");
    }
    // a file of the clone that includes itself is a cycle, named as the clone's file
    sh(
        repo.path(),
        "echo 'include: {local: loop.yml}' > loop.yml && git add loop.yml && git commit -qm loop",
    );
    let e = parse(
        "include: {project: team/ci, file: loop.yml}\n",
        &own,
        &origins,
    )
    .unwrap_err();
    assert!(
        e.contains("'team/ci@HEAD:loop.yml' includes itself (through team/ci@HEAD:loop.yml)"),
        "{e}"
    );
}

#[test]
fn include_component_takes_the_release_asked_for_and_its_inputs() {
    let repo = template_repo();
    sh(
        repo.path(),
        "printf 'spec:\\n  inputs:\\n    stage: {default: test}\\n    name: {}\\n---\\nlint-$[[ inputs.name ]]:\\n  stage: $[[ inputs.stage ]]\\n  script: x\\n' > templates/lint.yml \
         && git add -A && git commit -qm lint && git tag 2.1.0",
    );
    let origins = clones(repo.path());
    let p = parse(
        "stages: [build, test]\ninclude:\n  - component: $CI_SERVER_FQDN/team/ci/lint@~latest\n    inputs: {name: docs, stage: build}\n  - component: gitlab.example.com/team/ci/deploy@1.0\n",
        &[],
        &origins,
    )
    .unwrap();
    assert_eq!(names(&p), ["deploy-v1", "lint-docs"]);
    assert_eq!(p.job("lint-docs").unwrap().stage, "build");
    let e = parse(
        "include: [{component: gitlab.example.com/team/ci/lint@2.1.0}]\n",
        &[],
        &origins,
    )
    .unwrap_err();
    assert!(
        e.contains("`name` input: required value has not been provided"),
        "{e}"
    );
}

#[test]
fn include_remote_and_template_are_fetched_and_their_nested_includes_follow_gitlab() {
    let base = serve(vec![
        (
            "/ci/main.yml",
            "include:\n  - remote: $BASE/ci/more.yml\n  - template: Jobs/Lint.gitlab-ci.yml\nremote-job: {script: x}\n".to_string(),
        ),
        ("/ci/more.yml", "more-job: {script: x}\n".to_string()),
        ("/tpl/Jobs/Lint.gitlab-ci.yml", "lint-tpl: {script: x}\n".to_string()),
        ("/ci/local.yml", "include: {local: ci/x.yml}\n".to_string()),
    ]);
    let origins = Origins {
        projects: Vec::new(),
        network: Some(Network {
            template_base: format!("{base}/tpl/"),
            ..Network::default()
        }),
    };
    let text = format!("variables: {{}}\ninclude: '{base}/ci/main.yml'\nmain-job: {{script: x}}\n");
    let mut context = context(origins.clone());
    context.variables.insert("BASE".into(), base.clone());
    let p = parse_with(&text, ".gitlab-ci.yml", &mut reader(&[]), &context).unwrap();
    assert_eq!(
        names(&p),
        ["lint-tpl", "main-job", "more-job", "remote-job"]
    );

    // a remote file's include: local belongs to no project
    let e = parse(
        &format!("include: {{remote: '{base}/ci/local.yml'}}\n"),
        &[],
        &origins,
    )
    .unwrap_err();
    assert!(
        e.contains("local: 'ci/x.yml' in a remote or template file"),
        "{e}"
    );
    // a failed fetch names the URL, the error and how to vendor the file
    let e = parse(
        &format!("include: {{remote: '{base}/ci/gone.yml'}}\n"),
        &[],
        &origins,
    )
    .unwrap_err();
    assert_eq!(
        e,
        format!(".gitlab-ci.yml: include: '{base}/ci/gone.yml' cannot be fetched: HTTP status 404; {VENDOR}")
    );
    let e = parse(
        &format!("include: {{remote: '{base}/ci/more.yml', integrity: 'sha256-AAAA'}}\n"),
        &[],
        &origins,
    )
    .unwrap_err();
    assert!(e.contains("does not match integrity"), "{e}");
}

#[test]
fn includes_stop_at_gitlabs_limits() {
    // 150 files in all
    let files: Vec<(String, String)> = (0..151)
        .map(|i| (format!("f{i}.yml"), format!("j{i}: {{script: x}}\n")))
        .collect();
    let own: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("  - f{i}.yml\n"))
            .collect::<String>()
    };
    let p = parse(
        &format!("include:\n{}", list(150)),
        &own,
        &Origins::default(),
    )
    .unwrap();
    assert_eq!(p.jobs.len(), 150);
    let e = parse(
        &format!("include:\n{}", list(151)),
        &own,
        &Origins::default(),
    )
    .unwrap_err();
    assert!(
        e.contains("Maximum of 150 nested includes are allowed!"),
        "{e}"
    );
    // 100 levels deep
    let chain: Vec<(String, String)> = (0..102)
        .map(|i| (format!("d{i}.yml"), format!("include: d{}.yml\n", i + 1)))
        .collect();
    let own: Vec<(&str, &str)> = chain
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let e = parse("include: d0.yml\n", &own, &Origins::default()).unwrap_err();
    assert!(
        e.contains("include: nested more than 100 levels deep"),
        "{e}"
    );
}
