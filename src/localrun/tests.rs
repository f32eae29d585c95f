#![allow(clippy::unwrap_used)]
use super::*;
use std::path::PathBuf;

use super::pipeline::When;
use super::report::{Row, Status};
use crate::driver::{Driver, LocalDir, LocalStages};
use clap::Parser;

/// `pogo exec ARGS` as pogo's command line parses it.
fn parse_args(args: &[&str]) -> Result<ExecArgs, clap::Error> {
    let mut argv = vec!["pogo", "exec"];
    argv.extend_from_slice(args);
    crate::cli::Cli::try_parse_from(argv).map(|c| match c.command {
        crate::cli::Command::Exec(a) => a,
        other => panic!("not exec: {other:?}"),
    })
}

/// A writer the test can read afterwards.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn out(&self) -> Out {
        Arc::new(Mutex::new(self.clone()))
    }
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn command_line() {
    let a = parse_args(&[
        "build", "test", "--dir", "example", "--var", "A=1=2", "--var", "B=", "--tags", "t1,t2",
        "-j", "3", "--dirty",
    ])
    .unwrap();
    assert_eq!(a.jobs, vec!["build", "test"]);
    assert_eq!(a.dir, PathBuf::from("example"));
    assert_eq!(
        a.vars,
        vec![("A".into(), "1=2".into()), ("B".into(), String::new())]
    );
    assert_eq!(a.tags, vec!["t1", "t2"]);
    assert_eq!(a.parallel, 3);
    assert!(a.dirty && !a.clean);
    let a = parse_args(&["--clean"]).unwrap();
    assert!(a.clean);
    assert_eq!(a.dir, PathBuf::from("."));
    assert_eq!(a.parallel, 1);
    let e = parse_args(&["--var", "NOVALUE"]).unwrap_err().to_string();
    assert!(e.contains("'NOVALUE' is not KEY=VALUE"), "{e}");
    let e = parse_args(&["--var", "A-B=1"]).unwrap_err().to_string();
    assert!(e.contains("not a valid variable name"), "{e}");
    assert!(parse_args(&["-j", "0"]).is_err());
    let help = crate::cli::Cli::try_parse_from(["pogo", "exec", "--help"])
        .unwrap_err()
        .to_string();
    assert!(help.contains("committed HEAD"), "{help}");
    assert!(help.contains("--clean"), "{help}");
    assert!(
        help.contains("--project-dir <GROUP/PROJECT=PATH>"),
        "{help}"
    );
    assert!(help.contains("--offline"), "{help}");
}

#[test]
fn manual_jobs_are_skipped_unless_named() {
    let p = pipeline::parse(
        "build: {stage: build, script: x}\ndeploy: {stage: deploy, script: x, when: manual}\n.tpl: {script: x}\n",
        "ci.yml",
    )
    .unwrap();
    let all = select(&p, &[], "ci.yml").unwrap();
    assert_eq!(all.len(), 2);
    assert!(!all[1].named);
    assert_eq!(
        decide(all[1].spec.when, all[1].named, false),
        Err(Status::Manual)
    );
    assert_eq!(decide(all[0].spec.when, all[0].named, false), Ok(()));

    let named = select(&p, &["deploy".into()], "ci.yml").unwrap();
    assert_eq!(named.len(), 1);
    assert!(named[0].named);
    assert_eq!(decide(named[0].spec.when, true, false), Ok(()));
    assert_eq!(decide(named[0].spec.when, true, true), Err(Status::Skipped));

    assert_eq!(decide(When::Always, false, true), Ok(()));
    assert_eq!(decide(When::OnFailure, false, false), Err(Status::Skipped));
    assert_eq!(decide(When::OnFailure, false, true), Ok(()));

    let e = select(&p, &["deplyo".into()], "ci.yml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "ci.yml has no job 'deplyo' (did you mean 'deploy'?); jobs: build, deploy"
    );
    let e = select(&p, &[".tpl".into()], "ci.yml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("hidden job"), "{e}");
}

fn exec_in(
    dir: &Path,
    args: &[&str],
    config: Option<&Path>,
) -> (Result<i32, String>, String, String) {
    let mut argv = args.to_vec();
    let d = dir.display().to_string();
    argv.extend(["--dir", d.as_str()]);
    let args = parse_args(&argv).unwrap();
    let (out, err) = (Buffer::default(), Buffer::default());
    let r = exec(
        &args,
        config,
        Path::new("/nonexistent/pogo"),
        false,
        None,
        &out.out(),
        &err.out(),
    );
    (r.map_err(|e| e.to_string()), out.text(), err.text())
}

/// Everything that stops `pogo exec` before a job runs, with the messages users see.
#[test]
fn errors_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _, _) = exec_in(dir.path(), &[], None);
    let e = r.unwrap_err();
    assert!(e.starts_with("cannot read "), "{e}");
    assert!(e.contains("pass --dir DIR"), "{e}");

    let file = dir.path().join(".gitlab-ci.yml");
    std::fs::write(&file, "job:\n  script: [echo\n").unwrap();
    let e = exec_in(dir.path(), &[], None).0.unwrap_err();
    let prefix = format!("{}:", file.display());
    assert!(e.starts_with(&prefix), "{e}");
    let pos: Vec<&str> = e[prefix.len()..].splitn(3, ':').collect();
    assert!(
        pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(),
        "{e}"
    );

    std::fs::write(&file, "job:\n  script: echo\n  retry: 2\n").unwrap();
    let (r, _, err) = exec_in(dir.path(), &["jobs"], None);
    assert_eq!(err, "pogo: ignored locally: retry\n");
    let e = r.unwrap_err();
    assert!(e.contains("has no job 'jobs' (did you mean 'job'?)"), "{e}");

    let missing = dir.path().join("missing.yaml");
    let e = exec_in(dir.path(), &[], Some(&missing)).0.unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    assert!(e.contains("fix the pogo config"), "{e}");

    // include: local files are read from the project directory
    std::fs::write(&file, "include: ci/jobs.yml\n").unwrap();
    let e = exec_in(dir.path(), &[], None).0.unwrap_err();
    assert!(e.contains("include: 'ci/jobs.yml': No such file"), "{e}");
    std::fs::create_dir_all(dir.path().join("ci")).unwrap();
    std::fs::write(dir.path().join("ci/jobs.yml"), "a: {script: x}\n").unwrap();
    let e = exec_in(dir.path(), &["b"], None).0.unwrap_err();
    assert!(e.contains("has no job 'b'"), "{e}");
    assert!(e.ends_with("jobs: a"), "{e}");
    assert!(
        !dir.path().join(".pogo").exists(),
        "nothing created before a job can run"
    );
}

/// `rules: exists: {project, ref}` looks at that project's files in the clone named with
/// `--project-dir` (it was refused), and without one says which to pass.
#[test]
fn rules_exists_with_a_project_looks_in_that_projects_clone() {
    let templates = super::origin::tests::template_repo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "uses-build:\n  script: x\n  rules:\n    - exists: {project: team/ci, ref: 1.0.0, paths: [templates/build.yml]}\n\
         no-such:\n  script: x\n  rules:\n    - exists: {project: team/ci, paths: [missing/*.yml]}\n",
    )
    .unwrap();
    let mapped = format!("team/ci={}", templates.path().display());
    let (r, out, _) = exec_in(dir.path(), &["--list", "--project-dir", &mapped], None);
    assert_eq!(r, Ok(0), "{out}");
    let line = |job: &str| {
        out.lines()
            .find(|l| l.contains(job))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("uses-build").contains("rule 0 matched"), "{out}");
    assert!(line("no-such").contains("not in pipeline"), "{out}");
    let e = exec_in(dir.path(), &["--list"], None).0.unwrap_err();
    assert!(
        e.contains("exists: project team/ci: pogo exec reads another project's files from a clone you name: pass --project-dir team/ci=PATH"),
        "{e}"
    );
}

/// `--project-dir` and `--offline` as a user types them: `--list` shows the jobs the
/// project's, the component's and the remote file's includes bring, or the refusal.
#[test]
fn project_dirs_and_the_network_bring_the_included_jobs() {
    let templates = super::origin::tests::template_repo();
    let base = super::origin::tests::serve(vec![("/r.yml", "remote-job: {script: x}\n".into())]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".gitlab-ci.yml");
    std::fs::write(
        &file,
        format!(
            "include:\n  - {{project: team/ci, ref: 1.0.0, file: ci/common.yml}}\n  \
             - component: gitlab.com/team/ci/deploy@~latest\n  - remote: {base}/r.yml\n\
             own: {{script: x}}\n"
        ),
    )
    .unwrap();
    let mapped = format!("team/ci={}", templates.path().display());
    let (r, out, _) = exec_in(dir.path(), &["--list", "--project-dir", &mapped], None);
    assert_eq!(r, Ok(0));
    for job in ["common-v1", "deploy-v2", "remote-job", "own"] {
        assert!(out.contains(job), "{job}: {out}");
    }
    let e = exec_in(dir.path(), &["--list"], None).0.unwrap_err();
    assert!(e.contains("pass --project-dir team/ci=PATH"), "{e}");
    let e = exec_in(
        dir.path(),
        &["--list", "--offline", "--project-dir", &mapped],
        None,
    )
    .0
    .unwrap_err();
    assert!(
        e.contains(&format!(
            "remote '{base}/r.yml' is not fetched with --offline"
        )),
        "{e}"
    );
    let a = parse_args(&["--project-dir", "/a/b/c/=/x", "--project-dir", "t/ci=../ci"]).unwrap();
    assert_eq!(
        a.project_dirs,
        [
            ("a/b/c".into(), PathBuf::from("/x")),
            ("t/ci".into(), PathBuf::from("../ci"))
        ]
    );
    for bad in [
        "team/ci", "=x", "team/ci=", "../up=x", "a//b=x", "a/-b=x", "a b=x",
    ] {
        let e = parse_args(&["--project-dir", bad]).unwrap_err().to_string();
        assert!(e.contains("is not group/project=PATH"), "{bad}: {e}");
    }
}

#[test]
fn clean_removes_the_store_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (r, out, _) = exec_in(dir.path(), &["--clean"], None);
    assert_eq!(r, Ok(0));
    assert!(out.contains("nothing to clean"), "{out}");
    let store = Store::open(dir.path()).unwrap();
    std::fs::write(store.cache_dir().join("x"), "1").unwrap();
    let (r, out, _) = exec_in(dir.path(), &["--clean"], None);
    assert_eq!(r, Ok(0));
    assert!(out.contains("removed "), "{out}");
    assert!(!store.root.exists());
    let e = exec_in(dir.path(), &["--clean", "build"], None)
        .0
        .unwrap_err();
    assert!(e.contains("then `pogo exec build`"), "{e}");
}

/// example/.gitlab-ci.yml uses only what `pogo exec` implements.
#[test]
fn the_example_parses_without_ignored_keys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("example");
    let text = std::fs::read_to_string(dir.join(".gitlab-ci.yml")).unwrap();
    let read = &mut read_in(&dir);
    let p = pipeline::parse_with(
        &text,
        "example/.gitlab-ci.yml",
        read,
        &compose::Context::default(),
    )
    .unwrap();
    assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    for j in &p.jobs {
        assert_eq!(
            j.image.as_ref().map(|i| i.name.as_str()),
            Some("localhost/pogo-test/bash:latest"),
            "{}",
            j.name
        );
    }
}

#[test]
fn runner_env_drops_job_scoped_variables() {
    let env = vec![
        ("PATH".to_string(), "/bin".to_string()),
        ("POGO_JOB_KEY".to_string(), "leak".to_string()),
        ("POGO_LOCAL_MOUNTS".to_string(), "[]".to_string()),
        ("CUSTOM_ENV_CI_JOB_ID".to_string(), "9".to_string()),
        ("POGO_CONFIG".to_string(), "rel/pogo.yaml".to_string()),
    ];
    let out = runner_env(&env);
    let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["PATH", "POGO_CONFIG"]);
    assert!(Path::new(&out[1].1).is_absolute());
    assert!(out[1].1.ends_with("rel/pogo.yaml"));
}

/// A `Local` whose executor is a bash script running each stage on the host, with the
/// "container" side of the local stages on host paths too.
fn fake_local(dir: &Path, record: &Path) -> Local {
    let fake = dir.join("fake");
    std::fs::write(
        &fake,
        format!(
            r#"#!/bin/bash
echo "$1 ${{3:-}} tags=${{POGO_JOB_TAGS:-unset}} job=$CUSTOM_ENV_CI_JOB_NAME mounts=${{POGO_LOCAL_MOUNTS:+set}} t=$(date +%s.%N)" >> {rec}
case "$1" in
  config) printf '{{"builds_dir":"%s","cache_dir":"/c","driver":{{"name":"fake","version":"1"}}}}' "{b}/$CUSTOM_ENV_CI_JOB_NAME" ;;
  run) bash "$2"; rc=$?; if [ $rc -ne 0 ]; then echo $rc > "$BUILD_EXIT_CODE_FILE"; exit 1; fi ;;
esac
"#,
            rec = record.display(),
            b = dir.join("builds").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let project_dir = dir.join("project");
    std::fs::create_dir_all(&project_dir).unwrap();
    std::fs::write(project_dir.join("committed.txt"), "from the sources\n").unwrap();
    let project = Project {
        dir: project_dir.clone(),
        path: "local/demo".into(),
        pipeline_id: 77,
        git: Some(project::Git {
            sha: "a".repeat(40),
            ref_name: "main".into(),
            branch: Some("main".into()),
            ..project::Git::default()
        }),
        in_git: false,
        source: "push".into(),
    };
    let store = Store::open(&project_dir).unwrap();
    let sources = project::pack_sources(&project, false, &dir.join("sources.tar")).unwrap();
    let mut driver = Driver::new(&fake);
    driver.tmp_root = dir.to_path_buf();
    let host = |p: PathBuf| LocalDir {
        host: p.display().to_string(),
        container: p.display().to_string(),
    };
    driver.local = Some(LocalStages {
        sources_tar: Some(sources.tar.display().to_string()),
        sources_note: sources.note,
        cache: host(store.cache_dir()),
        artifacts: host(store.artifacts_dir()),
    });
    Local {
        driver,
        project,
        artifacts: store.artifacts_dir(),
        store,
        mounts: "[]".into(),
        extra_tags: vec![],
        vars: vec![],
        colour: false,
        interrupted: None,
        parallel: 1,
        started: Mutex::new(HashSet::new()),
        dirty: false,
        id_base: 0,
        origins: Default::default(),
    }
}

fn run(local: &Local, yaml: &str, names: &[&str]) -> (Vec<Row>, String) {
    let p = pipeline::parse(yaml, "ci.yml").unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let plan = select(&p, &names, "ci.yml").unwrap();
    let (out, err) = (Buffer::default(), Buffer::default());
    let rows = run_pipeline(&plan, &p, local, &out.out(), &err.out()).unwrap();
    (rows, out.text())
}

fn statuses(rows: &[Row]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r.job.clone(), r.status.to_string()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn nothing_starts_after_an_interrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut local = fake_local(dir.path(), &dir.path().join("record"));
    local.interrupted = Some(Arc::new(AtomicBool::new(true)));
    let (rows, out) = run(&local, "a: {script: x}\nb: {script: y}\n", &[]);
    assert!(rows.iter().all(|r| r.status == Status::Skipped));
    assert!(
        out.contains("--- a (stage test): skipped (interrupted)"),
        "{out}"
    );
    assert!(!dir.path().join("record").exists(), "no phase ran");
}

/// The whole flow against a fake executor: stage order, allow_failure, a failure that
/// skips later stages, on_failure, manual, tags and mounts handed to the phases,
/// predefined variables, sources.
#[test]
fn pipeline_flow_with_fake_executor() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let mut local = fake_local(dir.path(), &record);
    local.extra_tags = vec!["extra".into()];
    local.vars = vec![("FROM_CLI".into(), "yes".into())];
    let (rows, out) = run(
        &local,
        r#"
stages: [build, test, deploy]
variables: {GREETING: hello}
build:
  stage: build
  tags: [fixtures]
  script:
    - echo "$GREETING from $CI_JOB_NAME/$CI_JOB_STAGE in $CI_PROJECT_PATH pipeline $CI_PIPELINE_ID cli=$FROM_CLI"
    - echo "ref $CI_COMMIT_REF_NAME slug $CI_COMMIT_REF_SLUG short $CI_COMMIT_SHORT_SHA"
    - cat committed.txt
lint: {stage: test, script: exit 3, allow_failure: {exit_codes: [3]}}
unit: {stage: test, script: exit 4, allow_failure: {exit_codes: [3]}}
zpkg: {stage: test, script: echo pkg-ran}
ship: {stage: deploy, script: echo shipped}
notify: {stage: deploy, script: echo notified, when: on_failure}
release: {stage: deploy, script: echo released, when: manual}
"#,
        &[],
    );
    assert_eq!(
        statuses(&rows),
        pairs(&[
            ("build", "passed"),
            ("lint", "allowed to fail (exit 3)"),
            ("unit", "failed (exit 4)"),
            ("zpkg", "passed"),
            ("notify", "passed"),
            ("release", "manual"),
            ("ship", "skipped"),
        ]),
        "{out}"
    );
    assert!(
        out.contains("hello from build/build in local/demo pipeline 77 cli=yes"),
        "{out}"
    );
    assert!(out.contains("ref main slug main short aaaaaaaa"), "{out}");
    assert!(out.contains("\nfrom the sources\n"), "{out}");
    assert!(!out.contains("\x1b["), "plain output has no colour codes");
    assert!(
        out.contains("==> build (stage build, tags fixtures,extra)"),
        "{out}"
    );
    assert!(out.contains("--- ship (stage deploy): skipped (an earlier stage failed)"));
    assert!(out.contains("--- release (stage deploy): manual job, not run"));
    assert!(rows[0].phases.iter().any(|(n, _)| n == "build_script"));
    assert!(rows[0].duration.is_some());
    assert!(rows[5].duration.is_none());

    let rec = std::fs::read_to_string(&record).unwrap();
    let config_line = rec.lines().find(|l| l.starts_with("config ")).unwrap();
    assert!(
        config_line.contains(r#"tags=["fixtures","extra"] job=build mounts=set"#),
        "{config_line}"
    );
    assert!(!rec.contains("job=ship"), "{rec}");
    assert!(!rec.contains("job=release"), "{rec}");
    let summary = report::summary(&rows);
    let unit_line = summary.lines().find(|l| l.starts_with("unit ")).unwrap();
    let cells: Vec<&str> = unit_line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[..3], ["unit", "test", "failed (exit 4)"], "{summary}");
}

#[test]
fn cache_and_artifacts_flow_between_jobs_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let local = fake_local(dir.path(), &dir.path().join("record"));
    let yaml = r#"
stages: [build, test]
cache: {key: deps-$CI_COMMIT_REF_SLUG, paths: [.deps/]}
build:
  stage: build
  script:
    - mkdir -p out .deps
    - echo "built" > out/result.txt
    - test -f .deps/lib && echo "deps were cached" || echo "fresh deps" > .deps/lib
  artifacts: {paths: [out/]}
check:
  stage: test
  script:
    - echo "consumer sees $(cat out/result.txt)"
    - cat .deps/lib
  cache: {key: deps-$CI_COMMIT_REF_SLUG, paths: [.deps/], policy: pull}
other:
  stage: test
  dependencies: []
  cache: []
  script:
    - test ! -e out/result.txt && echo "no artifacts here"
"#;
    let (rows, out) = run(&local, yaml, &[]);
    assert!(rows.iter().all(|r| r.status == Status::Passed), "{out}");
    assert!(out.contains("consumer sees built"), "{out}");
    assert!(out.contains("\nfresh deps\n"), "{out}");
    assert!(out.contains("no artifacts here"), "{out}");
    assert_eq!(rows[0].notes[0], "cache 'deps-main': miss, saved");
    assert!(
        rows[0].notes[1].starts_with("artifacts saved ("),
        "{:?}",
        rows[0].notes
    );
    assert_eq!(
        rows[1].notes,
        vec!["artifacts of build", "cache 'deps-main': hit"]
    );
    assert!(rows[2].notes.is_empty(), "{:?}", rows[2].notes);

    // A later run of `check` alone uses build's artifacts and cache from this run.
    local.started.lock().unwrap().clear();
    let (rows, out) = run(&local, yaml, &["check"]);
    assert_eq!(statuses(&rows), pairs(&[("check", "passed")]), "{out}");
    assert!(out.contains("consumer sees built"), "{out}");
    assert_eq!(
        rows[0].notes,
        vec![
            "artifacts of build (from an earlier run)",
            "cache 'deps-main': hit"
        ]
    );
}

#[test]
fn parallel_jobs_of_a_stage_run_side_by_side_with_prefixed_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut local = fake_local(dir.path(), &dir.path().join("record"));
    local.parallel = 2;
    // Each job marks that it started, then waits (up to 10 s) for the other's mark: both
    // pass only if they run at the same time. One after the other, the first would fail.
    let meet = |me: &str, other: &str| {
        let d = dir.path().display();
        format!(
            "{me}:\n  script:\n    - touch '{d}/{me}.here'\n    - \"i=0; while [ ! -e '{d}/{other}.here' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\"\n    - test -e '{d}/{other}.here'\n    - echo from-{me}\n"
        )
    };
    let (rows, out) = run(
        &local,
        &format!("{}{}", meet("a", "b"), meet("b", "a")),
        &[],
    );
    assert_eq!(
        statuses(&rows),
        pairs(&[("a", "passed"), ("b", "passed")]),
        "{out}"
    );
    assert!(out.contains("\n[a] from-a\n"), "{out}");
    assert!(out.contains("\n[b] from-b\n"), "{out}");
}

#[test]
fn a_job_with_needs_goes_by_its_needed_jobs_not_by_earlier_stages() {
    let dir = tempfile::tempdir().unwrap();
    let local = fake_local(dir.path(), &dir.path().join("record"));
    let (rows, out) = run(
        &local,
        r#"
stages: [build, test, deploy]
build-a: {stage: build, script: [exit 1]}
build-b: {stage: build, script: [echo b]}
test-b: {stage: test, script: [echo tested-b], needs: [build-b]}
test-a: {stage: test, script: [echo never], needs: [build-a]}
test-all: {stage: test, script: [echo never]}
early: {stage: test, script: [echo early], needs: []}
release: {stage: deploy, script: [echo never], when: manual}
smoke: {stage: deploy, script: [echo never], needs: [release]}
rollback: {stage: deploy, script: [echo never], needs: [release], when: on_failure}
report: {stage: deploy, script: [echo reported], needs: [release], when: always}
"#,
        &[],
    );
    assert_eq!(
        statuses(&rows),
        pairs(&[
            ("build-a", "failed (exit 1)"),
            ("build-b", "passed"),
            ("early", "passed"),
            ("test-a", "skipped"),
            ("test-all", "skipped"),
            ("test-b", "passed"),
            ("release", "manual"),
            ("report", "passed"),
            ("rollback", "skipped"),
            ("smoke", "skipped"),
        ]),
        "{out}"
    );
    assert!(
        out.contains("--- test-a (stage test): skipped (it needs 'build-a', which failed)"),
        "{out}"
    );
    assert!(
        out.contains("--- smoke (stage deploy): skipped (it needs 'release', which did not run)"),
        "{out}"
    );
    assert!(
        out.contains("--- test-all (stage test): skipped (an earlier stage failed)"),
        "{out}"
    );
    // nothing it needs failed: on_failure does not run, whatever failed elsewhere
    assert!(
        out.contains("--- rollback (stage deploy): skipped (when: on_failure, and nothing failed)"),
        "{out}"
    );
}

#[test]
fn a_job_needing_one_of_its_own_stage_waits_for_it_and_is_skipped_when_it_failed() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let mut local = fake_local(dir.path(), &record);
    local.parallel = 3;
    let (rows, out) = run(
        &local,
        r#"
first: {script: [sleep 0.5, mkdir -p out, echo made > out/f], artifacts: {paths: [out/]}}
second: {script: [cat out/f], needs: [first]}
broken: {script: [exit 1]}
after-broken: {script: [echo never], needs: [broken]}
"#,
        &[],
    );
    assert_eq!(
        statuses(&rows),
        pairs(&[
            ("after-broken", "skipped"),
            ("broken", "failed (exit 1)"),
            ("first", "passed"),
            ("second", "passed"),
        ]),
        "{out}"
    );
    assert!(out.contains("[second      ] made"), "{out}");
    assert!(
        out.contains("--- after-broken (stage test): skipped (it needs 'broken', which failed)"),
        "{out}"
    );
    let rec = std::fs::read_to_string(&record).unwrap();
    let time = |prefix: &str| -> f64 {
        rec.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit("t=").next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        time("config  tags=[] job=second") > time("run build_script tags=[] job=first"),
        "{rec}"
    );
}
