#![allow(clippy::unwrap_used)]
use super::*;
use crate::driver::{CachePolicy, CacheWhen};
use serde_json::Map;

fn parse_ok(text: &str) -> Pipeline {
    match parse(text, ".gitlab-ci.yml") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn parse_err(text: &str) -> String {
    parse(text, ".gitlab-ci.yml").unwrap_err().to_string()
}

fn var<'a>(j: &'a JobSpec, key: &str) -> Option<&'a str> {
    j.variables
        .iter()
        .rev()
        .find(|v| v.key == key)
        .map(|v| v.value.as_str())
}

#[test]
fn defaults_merge_into_jobs() {
    let p = parse_ok(
        r#"
variables:
  GLOBAL: g
  SHARED: from-global
  PORT: 8080
default:
  image: img-default
  before_script: [echo default-before]
  after_script: echo default-after
  tags: [t1]
  variables:
    SHARED: from-default
a:
  script: echo a
b:
  image: img-b
  before_script: []
  tags: [t2, t3]
  variables:
    SHARED: from-job
    OBJ: {value: "v", description: "d", expand: false}
  script:
    - echo b1
    - [echo b2, [echo b3]]
"#,
    );
    let a = p.job("a").unwrap();
    assert_eq!(a.image, Some(Image::new("img-default")));
    assert_eq!(a.before_script, vec!["echo default-before"]);
    assert_eq!(a.after_script, vec!["echo default-after"]);
    assert_eq!(a.tags, vec!["t1"]);
    assert_eq!(var(a, "GLOBAL"), Some("g"));
    assert_eq!(var(a, "SHARED"), Some("from-default"));
    assert_eq!(var(a, "PORT"), Some("8080"));
    assert_eq!(a.stage, "test");

    let b = p.job("b").unwrap();
    assert_eq!(b.image, Some(Image::new("img-b")));
    assert!(
        b.before_script.is_empty(),
        "an empty job value replaces the default"
    );
    assert_eq!(b.after_script, vec!["echo default-after"]);
    assert_eq!(b.tags, vec!["t2", "t3"]);
    assert_eq!(var(b, "SHARED"), Some("from-job"));
    assert_eq!(b.script, vec!["echo b1", "echo b2", "echo b3"]);
    let obj = b.variables.iter().find(|v| v.key == "OBJ").unwrap();
    assert_eq!(obj.value, "v");
    assert!(obj.raw, "expand: false makes the variable raw");
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
}

#[test]
fn image_and_service_forms() {
    let p = parse_ok(
        r#"
j:
  image:
    name: registry/img:1
    entrypoint: [""]
  services:
    - plain:latest
    - name: localhost/pogo-test/httpd:latest
      alias: web
      entrypoint: ["/bin/httpd"]
      command: ["-f", "-p", "80"]
      variables:
        A: 1
        B: two
  script: ["true"]
"#,
    );
    let j = p.job("j").unwrap();
    assert_eq!(
        j.image,
        Some(Image {
            name: "registry/img:1".into(),
            entrypoint: Some(vec![String::new()]),
            ..Image::default()
        })
    );
    assert_eq!(j.services.len(), 2);
    assert_eq!(j.services[0], Service::new("plain:latest"));
    let web = &j.services[1];
    assert_eq!(web.name, "localhost/pogo-test/httpd:latest");
    assert_eq!(web.alias, "web");
    assert_eq!(web.entrypoint, Some(vec!["/bin/httpd".to_string()]));
    assert_eq!(
        web.command,
        Some(vec!["-f".to_string(), "-p".into(), "80".into()])
    );
    assert_eq!(web.variables.get("A").map(String::as_str), Some("1"));
    assert_eq!(web.variables.get("B").map(String::as_str), Some("two"));

    let e = parse_err("j:\n  image: {entrypoint: [x]}\n  script: x\n");
    assert!(e.contains("job 'j': image: `name:`"), "{e}");
    let e = parse_err("j:\n  services: web\n  script: x\n");
    assert!(e.contains("job 'j': services: must be a list"), "{e}");
}

#[test]
fn stage_order() {
    let p = parse_ok(
        r#"
stages: [lint, build, ship]
z-ship: {stage: ship, script: x}
a-build: {stage: build, script: x}
post: {stage: .post, script: x}
b-lint: {stage: lint, script: x}
pre: {stage: .pre, script: x}
c-build: {stage: build, script: x}
"#,
    );
    assert_eq!(p.stages, vec![".pre", "lint", "build", "ship", ".post"]);
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["pre", "b-lint", "a-build", "c-build", "z-ship", "post"]
    );

    let p =
        parse_ok("d: {stage: deploy, script: x}\nb: {stage: build, script: x}\nt: {script: x}\n");
    assert_eq!(p.stages, vec![".pre", "build", "test", "deploy", ".post"]);
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, vec!["b", "t", "d"]);

    let e = parse_err("stages: [build]\nj: {stage: test, script: x}\n");
    assert!(
        e.contains("job 'j': stage 'test' is not defined; add it to `stages:` (now: build)"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_reported_once() {
    let p = parse_ok(
        r#"
workflow: {rules: [{when: always}]}
default:
  image: i
  retry: 2
a:
  script: x
  rules: [{when: always}]
  image: {name: i, pull_policy: always}
  cache: {paths: [y], untracked: true, key: {files: [Gemfile.lock]}}
  needs: [{pipeline: other}]
b:
  script: x
  retry: 1
  artifacts: {paths: [z], expire_in: 1 week, reports: {junit: r.xml}}
c:
  script: x
  services: [{name: s, pull_policy: never}]
"#,
    );
    // rules, only, except and workflow are evaluated (src/localrun/rules.rs), not ignored
    assert_eq!(
        p.ignored,
        vec![
            "retry",
            "image:pull_policy",
            "cache:untracked",
            "needs:pipeline",
            "artifacts:expire_in",
            "artifacts:reports:junit",
            "services:pull_policy",
        ]
    );
    assert_eq!(p.jobs.len(), 3);
    // trigger jobs are jobs: a child pipeline to run, or another project's to refuse
    let p = parse_ok(
        "t: {trigger: other/project}\nc: {trigger: {include: ci/c.yml, strategy: depend}}\nj: {script: x}\n",
    );
    assert_eq!(p.jobs.len(), 3);
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    assert_eq!(
        p.job("t").unwrap().trigger,
        Some(Trigger::Elsewhere(
            "it triggers a pipeline of project other/project".into()
        ))
    );
    assert_eq!(
        p.job("c").unwrap().trigger,
        Some(Trigger::Child {
            include: serde_json::json!(["ci/c.yml"]),
            depend: true
        })
    );
}

#[test]
fn a_dynamic_child_pipeline_names_its_file_and_the_job_that_made_it_or_is_rejected() {
    let p = parse_ok(
        "gen: {script: x, artifacts: {paths: [c.yml]}}\n\
         kick: {needs: [gen], trigger: {include: [{artifact: c.yml, job: gen}]}}\n",
    );
    assert_eq!(
        p.job("kick").unwrap().trigger,
        Some(Trigger::Child {
            include: serde_json::json!([{"artifact": "c.yml", "job": "gen"}]),
            depend: false
        })
    );
    for (include, why) in [
        (
            "{artifact: c.yml}",
            "must specify the job where to fetch the artifact from",
        ),
        ("{job: gen}", "artifact: must be the path of a file"),
        (
            "{artifact: c.yml, job: gen, ref: main}",
            "'ref' is not a key of an artifact include",
        ),
        (
            "{artifact: c.yml, job: gen, inputs: [a]}",
            "inputs: must be a mapping",
        ),
    ] {
        let e = parse_err(&format!(
            "gen: {{script: x}}\nkick: {{trigger: {{include: [{include}]}}}}\n"
        ));
        assert!(e.contains(why), "{include}: {e}");
    }
}

#[test]
fn rules_needs_are_read_as_needs_and_allowed_only_in_a_jobs_rules() {
    let p = parse_ok(
        "p: {script: x, parallel: 2}\nq: {script: x}\n\
         j:\n  script: x\n  stage: deploy\n  rules:\n    - if: $X\n      needs: [p, {job: q, artifacts: false}]\n    - needs: []\n",
    );
    let rules = p.job("j").unwrap().rules.clone().unwrap();
    let needed: Vec<(String, bool)> = rules[0]
        .needs
        .iter()
        .flatten()
        .map(|n| (n.job.clone(), n.artifacts))
        .collect();
    // a parallel job's name means all its instances, as in the job's own needs
    assert_eq!(
        needed,
        [
            ("p 1/2".to_string(), true),
            ("p 2/2".to_string(), true),
            ("q".to_string(), false)
        ]
    );
    assert_eq!(rules[1].needs, Some(vec![]));
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    let e = parse_err("workflow: {rules: [{needs: [a]}]}\na: {script: x}\n");
    assert!(
        e.contains("workflow: rules: needs is a job's rules: key"),
        "{e}"
    );
}

#[test]
fn cache_keys_paths_policies_and_defaults() {
    let p = parse_ok(
        r#"
cache:
  paths: [global/]
default:
  cache: {key: from-default, paths: [.deps/]}
a:
  script: x
b:
  script: x
  cache:
    key: $CI_COMMIT_REF_SLUG
    paths: [vendor/, "*.o"]
    policy: pull
    when: always
c:
  script: x
  cache:
    - {key: one, paths: [a], policy: push}
    - {paths: [b]}
d:
  script: x
  cache: []
e:
  script: x
  cache: {key: 42, paths: [n], policy: pull-push, when: on_failure}
"#,
    );
    let a = &p.job("a").unwrap().cache;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].key, "from-default", "default: wins over the global");
    assert_eq!(a[0].paths, vec![".deps/"]);
    let b = &p.job("b").unwrap().cache[0];
    assert_eq!(b.key, "$CI_COMMIT_REF_SLUG", "expanded per job, later");
    assert_eq!(b.paths, vec!["vendor/", "*.o"]);
    assert_eq!(b.policy, CachePolicy::Pull);
    assert_eq!(b.when, CacheWhen::Always);
    let c = &p.job("c").unwrap().cache;
    assert_eq!((c[0].key.as_str(), c[0].policy), ("one", CachePolicy::Push));
    assert_eq!(c[1].key, DEFAULT_CACHE_KEY);
    assert_eq!(c[1].policy, CachePolicy::PullPush);
    assert!(p.job("d").unwrap().cache.is_empty());
    let e = &p.job("e").unwrap().cache[0];
    assert_eq!((e.key.as_str(), e.when), ("42", CacheWhen::OnFailure));
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);

    let e = parse_err("j: {script: x, cache: {paths: [a], policy: sometimes}}\n");
    assert!(
        e.contains(
            "job 'j': cache: policy: 'sometimes' is not supported; use pull, push or pull-push"
        ),
        "{e}"
    );
    let e = parse_err("j: {script: x, cache: [{paths: [a]}, {paths: a}]}\n");
    assert!(
        e.contains("job 'j': cache: entry 2: paths: must be a list"),
        "{e}"
    );
}

#[test]
fn artifacts_paths_and_when() {
    let p = parse_ok(
        r#"
default:
  artifacts: {paths: [default-out/]}
a: {script: x}
b: {script: x, artifacts: {paths: [out/, "**/*.log"], when: always}}
c: {script: x, artifacts: {when: on_failure}}
"#,
    );
    assert_eq!(
        p.job("a").unwrap().artifacts,
        Some(Artifacts {
            paths: vec!["default-out/".into()],
            when: CacheWhen::OnSuccess,
            ..Artifacts::default()
        })
    );
    let b = p.job("b").unwrap().artifacts.clone().unwrap();
    assert_eq!(b.paths, vec!["out/", "**/*.log"]);
    assert_eq!(b.when, CacheWhen::Always);
    assert_eq!(
        p.job("c").unwrap().artifacts,
        None,
        "no paths, no artifacts"
    );
    let e = parse_err("j: {script: x, artifacts: {paths: [a], when: later}}\n");
    assert!(
        e.contains("job 'j': artifacts: when: 'later' is not supported"),
        "{e}"
    );
    let e = parse_err("j: {script: x, artifacts: [a]}\n");
    assert!(e.contains("job 'j': artifacts: must be a mapping"), "{e}");
}

#[test]
fn artifacts_come_from_dependencies_needs_or_all_earlier_stages() {
    let p = parse_ok(
        r#"
stages: [build, test, deploy]
b1: {stage: build, script: x}
b2: {stage: build, script: x}
t-default: {stage: test, script: x}
t-deps: {stage: test, script: x, dependencies: [b2]}
t-none: {stage: test, script: x, dependencies: []}
t-needs: {stage: test, script: x, needs: [b1, {job: b2, artifacts: false}, {job: gone, optional: true}]}
t-same-stage: {stage: test, script: x, needs: [t-default]}
d: {stage: deploy, script: x}
"#,
    );
    let sources = |n: &str| p.artifact_sources(p.job(n).unwrap());
    assert_eq!(sources("b1"), Vec::<&str>::new());
    assert_eq!(sources("t-default"), vec!["b1", "b2"]);
    assert_eq!(sources("t-deps"), vec!["b2"]);
    assert_eq!(sources("t-none"), Vec::<&str>::new());
    assert_eq!(
        sources("t-needs"),
        vec!["b1"],
        "artifacts: false, optional dropped"
    );
    assert_eq!(sources("t-same-stage"), vec!["t-default"]);
    assert_eq!(
        sources("d"),
        vec![
            "b1",
            "b2",
            "t-default",
            "t-deps",
            "t-needs",
            "t-none",
            "t-same-stage"
        ]
    );

    let e = parse_err(
        "a: {stage: test, script: x, dependencies: [b]}\nb: {stage: deploy, script: x}\n",
    );
    assert!(
        e.contains(
            "job 'a': dependencies: 'b' is in stage 'deploy', not in an earlier stage than 'test'"
        ),
        "{e}"
    );
    // a dependency in the same stage is fine when it is also needed (it has finished)
    let p = parse_ok(
        "compile: {stage: build, script: x}\npackage: {stage: build, script: x, needs: [compile], dependencies: [compile]}\n",
    );
    assert_eq!(
        p.artifact_sources(p.job("package").unwrap()),
        vec!["compile"]
    );
    let e = parse_err(
        "compile: {stage: build, script: x}\npackage: {stage: build, script: x, dependencies: [compile]}\n",
    );
    assert!(e.contains("must also be in needs:"), "{e}");
    let e = parse_err(
        "a: {stage: build, script: x}\nb: {stage: build, script: x}\nc: {stage: test, script: x, needs: [a], dependencies: [b]}\n",
    );
    assert!(
        e.contains("job 'c': dependencies: 'b' should be part of needs:"),
        "{e}"
    );
    let e = parse_err("a: {script: x, needs: [nope]}\n");
    assert!(
        e.contains("job 'a': needs: 'nope' is not a job of this pipeline"),
        "{e}"
    );
    let e = parse_err("a: {stage: build, script: x, needs: [b]}\nb: {stage: test, script: x}\n");
    assert!(
        e.contains("job 'a': needs: 'b' is in the later stage 'test'"),
        "{e}"
    );
    let e = parse_err("a: {script: x, needs: [{job: 1}]}\n");
    assert!(e.contains("job 'a': needs: job: must be a job name"), "{e}");
}

#[test]
fn extends_merges_templates_deeply_and_the_job_wins() {
    let p = parse_ok(
        r#"
.base:
  image: base-img
  variables: {A: base, B: base}
  script: [echo base]
  tags: [t1]
.more:
  extends: .base
  variables: {B: more, C: more}
  tags: [t2]
job:
  extends: [.more]
  variables: {C: job}
other:
  extends: [.base, .more]
  script: echo other
"#,
    );
    let j = p.job("job").unwrap();
    assert_eq!(j.image, Some(Image::new("base-img")));
    assert_eq!(var(j, "A"), Some("base"));
    assert_eq!(var(j, "B"), Some("more"));
    assert_eq!(var(j, "C"), Some("job"));
    assert_eq!(j.tags, vec!["t2"], "lists are replaced, not merged");
    assert_eq!(j.script, vec!["echo base"]);
    assert_eq!(p.job("other").unwrap().script, vec!["echo other"]);
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);

    let e = parse_err("j:\n  extends: .t\n");
    assert!(e.contains("job 'j': extends: '.t' is not defined"), "{e}");
    let e = parse_err(".a: {extends: .b}\n.b: {extends: .a}\nj: {extends: .a}\n");
    assert!(e.contains("extends: circular: "), "{e}");
    let e = parse_err("j:\n  extends: .t\n.t: {image: x}\n");
    assert!(
        e.contains("job 'j' has no `script:` (nor do the jobs it extends)"),
        "{e}"
    );
}

/// The project's own files, as `pogo exec` reads them from its directory (shown as `proj/FILE`).
pub(crate) fn reader(
    files: &[(&str, &str)],
) -> impl FnMut(&str) -> Result<(String, String), String> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    move |path: &str| {
        files
            .iter()
            .find(|(n, _)| n == path)
            .map(|(n, t)| (format!("proj/{n}"), t.clone()))
            .ok_or_else(|| "No such file or directory".to_string())
    }
}

#[test]
fn parallel_jobs_become_gitlabs_instances_and_needs_follow_them() {
    let p = parse_ok(
        r#"
stages: [build, test]
build:
  stage: build
  script: [x]
  parallel:
    matrix:
      - PROVIDER: aws
        STACK: [monitoring, app]
      - PROVIDER: [gcp]
shard: {stage: build, script: [x], parallel: 3}
all: {stage: test, script: [x], needs: [build, shard]}
one:
  stage: test
  script: [x]
  needs: [{job: build, parallel: {matrix: [{PROVIDER: aws, STACK: app}]}}]
deps: {stage: test, script: [x], dependencies: [shard]}
"#,
    );
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "build: [aws, app]",
            "build: [aws, monitoring]",
            "build: [gcp]",
            "shard 1/3",
            "shard 2/3",
            "shard 3/3",
            "all",
            "deps",
            "one"
        ]
    );
    let b = p.job("build: [aws, app]").unwrap();
    assert_eq!(var(b, "PROVIDER"), Some("aws"));
    assert_eq!(var(b, "STACK"), Some("app"));
    assert_eq!(var(b, "CI_NODE_INDEX"), Some("2"));
    assert_eq!(var(b, "CI_NODE_TOTAL"), Some("3"));
    let s = p.job("shard 3/3").unwrap();
    assert_eq!(var(s, "CI_NODE_INDEX"), Some("3"));
    let needs = |j: &str| -> Vec<String> {
        p.job(j)
            .unwrap()
            .needs
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.job.clone())
            .collect()
    };
    assert_eq!(needs("all").len(), 6);
    assert_eq!(needs("one"), ["build: [aws, app]"]);
    assert_eq!(
        p.job("deps").unwrap().dependencies.as_deref().unwrap(),
        ["shard 1/3", "shard 2/3", "shard 3/3"]
    );
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);

    for (yaml, says) in [
        ("j: {script: [x], parallel: 201}", "from 1 to 200"),
        ("j: {script: [x], parallel: {matrix: [{A: [1, 2]}, {B: {c: d}}]}}", "a value must be a string"),
        ("j: {script: [x], parallel: {matrix: [{A: [1, 2]}]}}\nk: {script: [x], needs: [{job: j, parallel: {matrix: [{A: 3}]}}]}", "'j: [3]' is not a job"),
        ("j: {script: []}", "script: can't be blank"),
    ] {
        let e = parse_err(yaml);
        assert!(e.contains(says), "{yaml}: {e}");
    }
}

#[test]
fn spec_inputs_of_the_main_file_and_of_an_include_are_interpolated_before_merging() {
    let scan = "spec:\n  inputs:\n    stage: {default: test}\n    env: {options: [staging, production]}\n    n: {type: number, default: 1}\n---\n\
                    \"scan-$[[ inputs.env ]]\":\n  stage: $[[ inputs.stage ]]\n  parallel: $[[ inputs.n ]]\n  script:\n    - ./scan $[[ inputs.env | posix_escape ]] on $[[ inputs.where | expand_vars ]]\n";
    let main = "spec:\n  inputs:\n    where: {default: $CI_PROJECT_PATH}\n---\n\
                    stages: [build, test, deploy]\ninclude:\n  - local: ci/scan.yml\n    inputs: {env: staging, n: 2, stage: deploy}\n";
    let mut read = reader(&[("ci/scan.yml", scan)]);
    let context = compose::Context::new(
        [(
            "where".to_string(),
            Value::String("$CI_PROJECT_PATH!".into()),
        )]
        .into_iter()
        .collect(),
        [("CI_PROJECT_PATH".to_string(), "g/p".to_string())].into(),
        None,
    );
    // `where` is the main file's input: the included file does not have it
    let e = parse_with(main, ".gitlab-ci.yml", &mut read, &context).unwrap_err();
    assert_eq!(
        e.to_string(),
        "proj/ci/scan.yml: unknown interpolation key: `where`"
    );
    let scan = scan.replace("$[[ inputs.where | expand_vars ]]", "here");
    let mut read = reader(&[("ci/scan.yml", &scan)]);
    let p = parse_with(main, ".gitlab-ci.yml", &mut read, &context).unwrap();
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["scan-staging 1/2", "scan-staging 2/2"]);
    let j = &p.jobs[0];
    assert_eq!(j.stage, "deploy");
    assert_eq!(j.script, ["./scan staging on here"]);

    // a required input that is not given, named with its file
    let mut read = reader(&[("ci/scan.yml", &scan)]);
    let e = parse_with(
        "include: [{local: ci/scan.yml}]\n",
        ".gitlab-ci.yml",
        &mut read,
        &compose::Context::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "proj/ci/scan.yml: `env` input: required value has not been provided"
    );
    // inputs for the main file without a header
    let e = parse_with(
        "j: {script: x}\n",
        ".gitlab-ci.yml",
        &mut reader(&[]),
        &context,
    )
    .unwrap_err();
    assert!(e.to_string().contains("Given inputs not defined"), "{e}");
    // the main file's expand_vars sees the predefined variables
    let p = parse_with(
        "spec:\n  inputs:\n    where: {default: x}\n---\nj: {script: [\"echo $[[ inputs.where | expand_vars ]]\"]}\n",
        ".gitlab-ci.yml",
        &mut reader(&[]),
        &context,
    )
    .unwrap();
    assert_eq!(p.jobs[0].script, ["echo g/p!"]);
}

#[test]
fn include_wildcards_variables_and_rules_pick_files_as_gitlab_does() {
    let files = [
        ("ci/a.yml", "a: {script: x}\n"),
        ("ci/b.yml", "b: {script: x}\n"),
        ("ci/sub/c.yml", "c: {script: x}\n"),
        ("ci/sub/deep/d.yml", "d: {script: x}\n"),
        ("main.yml", "m: {script: x}\n"),
    ];
    let names = |text: &str, vars: &[(&str, &str)]| -> Vec<String> {
        let context = compose::Context::new(
            Map::new(),
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            None,
        )
        .with_files(files.iter().map(|(n, _)| n.to_string()).collect());
        let p = parse_with(text, ".gitlab-ci.yml", &mut reader(&files), &context)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        p.jobs.iter().map(|j| j.name.clone()).collect()
    };
    assert_eq!(names("include: 'ci/*.yml'\n", &[]), ["a", "b"]);
    assert_eq!(names("include: '/ci/**.yml'\n", &[]), ["a", "b", "c", "d"]);
    assert_eq!(names("include: 'ci/**/*.yml'\n", &[]), ["c", "d"]);
    assert_eq!(
        names("include: 'ci/$WHICH.yml'\n", &[("WHICH", "b")]),
        ["b"]
    );
    let ruled = "include:\n  - local: ci/a.yml\n    rules:\n      - if: $ON == \"yes\"\n  \
                     - local: ci/b.yml\n    rules:\n      - exists: [main.yml]\n  \
                     - local: ci/sub/c.yml\n    rules:\n      - exists: [nope.yml]\n  \
                     - local: main.yml\n    rules:\n      - if: $ON\n        when: never\n      - when: always\n";
    assert_eq!(names(ruled, &[("ON", "yes")]), ["a", "b"]);
    assert_eq!(names(ruled, &[]), ["b", "m"]);
    let e = parse_with(
        "include:\n  - local: ci/a.yml\n    rules: [{when: manual}]\n",
        ".gitlab-ci.yml",
        &mut reader(&files),
        &compose::Context::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("when: manual is not allowed in include rules"),
        "{e}"
    );
}

#[test]
fn image_and_service_docker_options_are_read() {
    let p = parse_ok(
        "j:\n  script: x\n  image: {name: img, docker: {platform: arm64/v8, user: dave}}\n  services:\n    - {name: db, docker: {user: '999'}}\n",
    );
    let j = p.job("j").unwrap();
    let d = &j.image.as_ref().unwrap().docker;
    assert_eq!(
        (d.platform.as_deref(), d.user.as_deref()),
        (Some("arm64/v8"), Some("dave"))
    );
    assert_eq!(j.services[0].docker.user.as_deref(), Some("999"));
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    let e = parse_err("j: {script: x, image: {name: i, docker: {gpus: all}}}\n");
    assert!(e.contains("'gpus' is not a docker: key"), "{e}");
}

#[test]
fn inherit_narrows_what_default_and_the_global_variables_give_a_job() {
    let p = parse_ok(
        r#"
variables: {A: a, B: b}
default:
  image: def-img
  before_script: [echo before]
  tags: [t]
all: {script: x}
none:
  script: x
  inherit: {default: false, variables: false}
some:
  script: x
  inherit: {default: [image], variables: [B]}
"#,
    );
    let keys = |j: &JobSpec| -> Vec<String> { j.variables.iter().map(|v| v.key.clone()).collect() };
    let all = p.job("all").unwrap();
    assert_eq!(all.image, Some(Image::new("def-img")));
    assert_eq!(all.before_script, ["echo before"]);
    assert_eq!(keys(all), ["A", "B"]);
    let none = p.job("none").unwrap();
    assert_eq!((none.image.clone(), none.tags.len()), (None, 0));
    assert!(none.before_script.is_empty());
    assert!(keys(none).is_empty());
    let some = p.job("some").unwrap();
    assert_eq!(some.image, Some(Image::new("def-img")));
    assert!(some.before_script.is_empty() && some.tags.is_empty());
    assert_eq!(keys(some), ["B"]);
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    let e = parse_err("j: {script: x, inherit: {default: maybe}}\n");
    assert!(
        e.contains("job 'j': inherit: default: must be true, false or a list"),
        "{e}"
    );
}

#[test]
fn includes_pogo_exec_cannot_read_are_refused_saying_how_to_vendor_them() {
    // without --project-dir and with --offline (a plain parse has neither)
    for (include, says) in [
        (
            "https://example.com/other.yml",
            "remote 'https://example.com/other.yml' is not fetched with --offline",
        ),
        (
            "{remote: 'https://example.com/ci.yml'}",
            "remote 'https://example.com/ci.yml' is not fetched with --offline",
        ),
        (
            "{template: Auto-DevOps.gitlab-ci.yml}",
            "template 'Auto-DevOps.gitlab-ci.yml' is not fetched with --offline",
        ),
        (
            "{project: group/p, file: ci.yml}",
            "project: 'group/p': pogo exec reads another project's files from a clone you name: \
             pass --project-dir group/p=PATH",
        ),
        (
            "{component: 'gitlab.com/c/x/build@1.0'}",
            "component: 'gitlab.com/c/x/build@1.0': pogo exec reads another project's files \
             from a clone you name: pass --project-dir c/x=PATH",
        ),
        (
            "{local: a.yml, when: manual}",
            "'when' is not an include: key (local, inputs, rules)",
        ),
        (
            "{project: group/p, ref: main}",
            "project: needs file: (a path or a list of paths)",
        ),
        (
            "{component: 'gitlab.com/c/x'}",
            "'gitlab.com/c/x' has no version",
        ),
    ] {
        let e = parse_err(&format!("include: [{include}]\nj: {{script: x}}\n"));
        assert!(e.contains(says), "{include}: {e}");
        if !says.contains("include: key")
            && !says.contains("needs file")
            && !says.contains("no version")
        {
            assert!(e.contains("local: ci/FILE.yml"), "{include}: {e}");
        }
    }
}

#[test]
fn include_local_merges_files_and_the_including_file_wins() {
    let mut read = reader(&[
        (
            "ci/templates.yml",
            ".tpl: {image: tpl-img, script: [echo tpl]}\nvariables: {A: inc, B: inc}\n",
        ),
        (
            "ci/jobs.yaml",
            "include: ci/templates.yml\nlint: {extends: .tpl, stage: test}\n",
        ),
    ]);
    let p = parse_with(
        "include:\n  - local: /ci/jobs.yaml\nvariables: {B: main}\nbuild: {extends: .tpl, stage: build}\n",
        "proj/.gitlab-ci.yml",
        &mut read,
        &compose::Context::default(),
    )
    .unwrap();
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, vec!["build", "lint"]);
    let b = p.job("build").unwrap();
    assert_eq!(b.image, Some(Image::new("tpl-img")));
    assert_eq!(var(b, "A"), Some("inc"));
    assert_eq!(var(b, "B"), Some("main"));
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);

    let err = |text: &str, read: &mut ReadInclude<'_>| {
        parse_with(
            text,
            "proj/.gitlab-ci.yml",
            read,
            &compose::Context::default(),
        )
        .unwrap_err()
        .to_string()
    };
    let e = err("include: missing.yml\n", &mut reader(&[]));
    assert_eq!(
        e,
        "proj/.gitlab-ci.yml: include: 'missing.yml': No such file or directory"
    );
    let e = err("include: ../up.yml\n", &mut reader(&[]));
    assert!(e.contains("leaves the project directory"), "{e}");
    let e = err("include: 'ci/*.yml'\n", &mut reader(&[]));
    assert!(
        e.contains("'ci/*.yml' matches no file of the project"),
        "{e}"
    );
    let e = err("include: ci/x.txt\n", &mut reader(&[]));
    assert!(e.contains("YAML extension"), "{e}");
    let e = err(
        "include: a.yml\n",
        &mut reader(&[("a.yml", "include: b.yml\n"), ("b.yml", "include: a.yml\n")]),
    );
    assert!(
        e.contains("'a.yml' includes itself (through a.yml -> b.yml)"),
        "{e}"
    );
    // A syntax error in an included file names that file, line and column.
    let e = err(
        "include: ci/bad.yml\nj: {script: x}\n",
        &mut reader(&[("ci/bad.yml", "a:\n  script: [x\n")]),
    );
    assert!(e.starts_with("proj/ci/bad.yml:"), "{e}");
    let pos: Vec<&str> = e["proj/ci/bad.yml:".len()..].splitn(3, ':').collect();
    assert!(
        pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(),
        "{e}"
    );
    // Without a project directory (plain `parse`), an include cannot be read.
    let e = parse_err("include: a.yml\n");
    assert!(e.contains("no project directory"), "{e}");
}

#[test]
fn reference_tags_take_values_from_included_and_extended_jobs() {
    let mut read = reader(&[(
        "ci/common.yml",
        ".setup:\n  script: [echo setup-1, echo setup-2]\n  variables: {A: from-setup}\n",
    )]);
    let p = parse_with(
        r#"
include: ci/common.yml
.base: {extends: .setup, image: base-img}
job:
  image: !reference [.base, image]
  variables: !reference [.setup, variables]
  script:
    - echo first
    - !reference [.base, script]
    - echo last
"#,
        ".gitlab-ci.yml",
        &mut read,
        &compose::Context::default(),
    )
    .unwrap();
    let j = p.job("job").unwrap();
    assert_eq!(
        j.script,
        ["echo first", "echo setup-1", "echo setup-2", "echo last"]
    );
    assert_eq!(j.image, Some(Image::new("base-img")));
    assert_eq!(var(j, "A"), Some("from-setup"));
    let p = parse_ok(
        ".r: {rules: [{if: $A, when: never}, {if: $B}]}\nj:\n  script: [x]\n  rules:\n    - !reference [.r, rules]\n    - when: manual\n",
    );
    assert_eq!(p.job("j").unwrap().rules.as_ref().map(Vec::len), Some(3));
    let e = parse_err("j:\n  script: !reference [.missing, script]\n");
    assert_eq!(
        e,
        ".gitlab-ci.yml: !reference [\".missing\", \"script\"] could not be found"
    );
}

#[test]
fn when_and_allow_failure() {
    let p = parse_ok(
        r#"
m: {script: x, when: manual}
n: {script: x, when: manual, allow_failure: false}
a: {script: x, when: always, allow_failure: true}
f: {script: x, when: on_failure, allow_failure: false}
c: {script: x, allow_failure: {exit_codes: [3, 4]}}
s: {script: x, allow_failure: {exit_codes: 5}}
"#,
    );
    assert_eq!(p.job("m").unwrap().when, When::Manual);
    assert_eq!(
        p.job("m").unwrap().allow_failure,
        AllowFailure::Yes,
        "a manual job may fail by default, as on GitLab"
    );
    assert_eq!(p.job("n").unwrap().allow_failure, AllowFailure::No);
    assert_eq!(p.job("a").unwrap().when, When::Always);
    assert_eq!(p.job("a").unwrap().allow_failure, AllowFailure::Yes);
    assert_eq!(p.job("f").unwrap().when, When::OnFailure);
    assert_eq!(p.job("f").unwrap().allow_failure, AllowFailure::No);
    assert_eq!(
        p.job("c").unwrap().allow_failure,
        AllowFailure::ExitCodes(vec![3, 4])
    );
    assert_eq!(
        p.job("s").unwrap().allow_failure,
        AllowFailure::ExitCodes(vec![5])
    );
    let e = parse_err("j: {script: x, when: sometimes}\n");
    assert!(e.contains("when: 'sometimes' is not supported"), "{e}");
    let e = parse_err("j: {script: x, allow_failure: maybe}\n");
    assert!(e.contains("allow_failure: must be true, false"), "{e}");
}

#[test]
fn anchors_and_merge_keys() {
    let p = parse_ok(
        r#"
.cmds:
  - &cmd echo first
.base: &base
  image: anchored
  variables: {A: "1"}
  script: [echo base]
.more: &more
  tags: [m]
  image: not-this-one
j:
  <<: [*base, *more]
  variables: {B: "2"}
k:
  <<: *base
  script:
    - *cmd
    - echo k
"#,
    );
    let j = p.job("j").unwrap();
    assert_eq!(j.image, Some(Image::new("anchored")));
    assert_eq!(j.tags, vec!["m"]);
    assert_eq!(j.script, vec!["echo base"]);
    assert_eq!(var(j, "B"), Some("2"));
    assert_eq!(
        var(j, "A"),
        None,
        "the job's own variables replace the merged ones"
    );
    let k = p.job("k").unwrap();
    assert_eq!(k.script, vec!["echo first", "echo k"]);
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
}

#[test]
fn syntax_error_has_file_line_column() {
    let e = parse("a:\n  script: [x\nb: {script: y}\n", "ci/.gitlab-ci.yml").unwrap_err();
    let ParseError::Syntax { at, message } = &e else {
        panic!("{e:?}")
    };
    assert!(at.starts_with("ci/.gitlab-ci.yml:"), "{at}");
    let parts: Vec<&str> = at.split(':').collect();
    assert_eq!(parts.len(), 3, "{at}");
    assert!(parts[1].parse::<usize>().unwrap() >= 2, "{at}");
    assert!(parts[2].parse::<usize>().is_ok(), "{at}");
    assert!(!message.contains(" at line "), "{message}");
    assert!(e.to_string().starts_with(&format!("{at}: ")));
}

#[test]
fn invalid_shapes_say_what_to_fix() {
    assert!(parse_err("").contains("empty"));
    assert!(parse_err("- a\n").contains("must be a mapping"));
    assert!(parse_err("j: 3\n").contains("'j' is neither a keyword nor a job"));
    let e = parse_err("j:\n  script:\n    - echo a: b\n");
    assert!(e.contains("quote commands that contain ': '"), "{e}");
    let e = parse_err("j: {script: [1]}\n");
    assert!(e.contains("job 'j': script:"), "{e}");
    let e = parse_err("variables: {\"A-B\": 1}\nj: {script: x}\n");
    assert!(e.contains("'A-B' is not a valid variable name"), "{e}");
    let e = parse_err("j: {script: x, tags: fixtures}\n");
    assert!(
        e.contains("job 'j': tags: must be a list of strings"),
        "{e}"
    );
}
