use super::*;
use crate::config::{Config, PullPolicy};
use crate::executor::response::ImageSpec;
use crate::podman::service::Service;
use std::path::Path;

/// A prepare context from a config, `CUSTOM_ENV_*` values and a job description.
fn context(config: &str, env: &[(&str, &str)], response: &str) -> Context {
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let response = super::super::response::parse(response).unwrap();
    let config = crate::config::load_text(config, Some(Path::new("/p.yaml")), &env).unwrap();
    let job = super::super::env::JobEnv::from_env(&env, Some(&response)).unwrap();
    Context {
        podman: crate::podman::Podman::new("podman", Vec::new()),
        notes: Vec::new(),
        env,
        config,
        job,
        response: Ok(response),
    }
}

#[test]
fn the_jobs_request_is_checked_before_anything_is_pulled() {
    let services = r#"[{"name":"postgres:16","alias":"db","entrypoint":null,"command":null}]"#;
    let ctx = context(
        "working_dir: /w\nallowed_pull_policies: [always, if-not-present]\n",
        &[
            ("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3"),
            ("CUSTOM_ENV_CI_JOB_SERVICES", services),
        ],
        r#"{"id":7,"token":"t",
            "image":{"name":"alpine:3","entrypoint":["/bin/ep"],"pull_policy":["always"],
                     "executor_opts":{"docker":{"platform":"linux/arm64","user":"1000"}}},
            "services":[{"name":"postgres:16","alias":"db","ports":[{"number":5432}]}]}"#,
    );
    let r = request(&ctx, vec!["a".into()]).unwrap();
    assert_eq!(
        (r.tags, r.image.as_str()),
        (vec!["a".to_string()], "alpine:3")
    );
    assert_eq!(r.entrypoint_override, Some(vec!["/bin/ep".to_string()]));
    assert!(r.image_pull.chosen_by_job);
    assert_eq!(r.docker.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(r.docker.user.as_deref(), Some("1000"));
    assert_eq!(r.service_ports, vec![Some(vec![5432])]);

    // a pull policy the owner does not allow is the job's failure
    let ctx = context(
        "working_dir: /w\n",
        &[("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3")],
        r#"{"id":7,"token":"t","image":{"name":"alpine:3","pull_policy":["always"]}}"#,
    );
    assert!(matches!(request(&ctx, vec![]), Err(Failure::Build { .. })));
    // an image name that would be a podman option never reaches podman
    let ctx = context(
        "working_dir: /w\n",
        &[("CUSTOM_ENV_CI_JOB_IMAGE", "--privileged")],
        r#"{"id":7,"token":"t"}"#,
    );
    assert!(matches!(request(&ctx, vec![]), Err(Failure::Build { .. })));
}

#[test]
fn a_netavark_without_iptables_or_nft_says_what_to_install() {
    for err in [
        "Error: netavark: No such file or directory (os error 2)",
        "Error: netavark: nftables error: unable to execute nft",
    ] {
        let Failure::System(m) = start_failure("start the job container", &err) else {
            panic!("not a system failure")
        };
        assert!(m.contains("apt-get install iptables nftables"), "{m}");
    }
    let Failure::System(m) = start_failure("start the job container", &"Error: other") else {
        panic!("not a system failure")
    };
    assert_eq!(m, "cannot start the job container: Error: other");
}

#[test]
fn listening_sockets_are_read_from_proc_net_tcp() {
    let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n";
    assert_eq!(listening_ports(table), vec![80]);
}

#[test]
fn a_job_without_image_uses_the_default_and_without_both_says_how_to_fix() {
    assert_eq!(pick_image(None, Some("alpine")).unwrap(), "alpine");
    assert_eq!(
        pick_image(Some("debian"), Some("alpine")).unwrap(),
        "debian"
    );
    match pick_image(None, None) {
        Err(Failure::Build {
            message: Some(m), ..
        }) => assert!(m.contains("default_image")),
        other => panic!("{other:?}"),
    }
}

fn config(text: &str) -> Config {
    let env: std::collections::HashMap<String, String> =
        [("HOME".to_string(), "/h".to_string())].into();
    let raw = crate::config::parse(text, Path::new("/p.yaml")).unwrap();
    crate::config::finalize(raw, None, &env).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn message(f: Failure) -> (i32, String) {
    match f {
        Failure::Build { exit_code, message } => (exit_code, message.unwrap_or_default()),
        Failure::System(m) => (-1, m),
    }
}

#[test]
fn a_job_pull_policy_is_limited_to_the_allowed_ones() {
    let c = config("pull_policy: always\nallowed_pull_policies: [always, if-not-present]\n");
    assert_eq!(
        pull_policies(&[], "image x", &c).unwrap(),
        Pull {
            policies: vec![PullPolicy::Always],
            chosen_by_job: false
        }
    );
    let p = pull_policies(
        &strings(&["never", "if-not-present", "always"]),
        "image x",
        &c,
    )
    .unwrap();
    assert_eq!(
        p.policies,
        vec![PullPolicy::IfNotPresent, PullPolicy::Always]
    );
    assert!(p.chosen_by_job);
    let (code, m) = message(pull_policies(&strings(&["never"]), "image x", &c).unwrap_err());
    assert_eq!(code, 1, "a build failure: retrying cannot help");
    assert_eq!(
        m,
        "pull_policy [never] of image x is not allowed on this runner (allowed_pull_policies: \
         always, if-not-present); use one of those in .gitlab-ci.yml, or ask the runner's owner"
    );
    let (code, m) = message(pull_policies(&strings(&["--privileged"]), "image x", &c).unwrap_err());
    assert_eq!(code, 1);
    assert!(m.contains("\"--privileged\" is not a pull policy"), "{m}");
}

#[test]
fn entrypoints_follow_the_docker_executors_rules() {
    assert_eq!(check_entrypoint(&[], "x").unwrap(), Vec::<String>::new());
    assert_eq!(
        check_entrypoint(&strings(&[""]), "x").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        check_entrypoint(&strings(&["/e", "--"]), "x").unwrap(),
        strings(&["/e", "--"])
    );
    assert_eq!(
        message(check_entrypoint(&strings(&["", "a"]), "x").unwrap_err()).0,
        1
    );
    assert_eq!(
        message(check_entrypoint(&strings(&["/e", "a\0b"]), "x").unwrap_err()).0,
        1
    );
}

#[test]
fn readiness_ports_come_from_healthcheck_tcp_port_then_ports_then_the_image() {
    let mut svc = Service {
        name: "db".into(),
        ..Service::default()
    };
    let spec = ImageSpec {
        ports: vec![5432, 8080, 5432],
        ..ImageSpec::default()
    };
    assert_eq!(readiness_ports(&svc, &ImageSpec::default()).unwrap(), None);
    assert_eq!(
        readiness_ports(&svc, &spec).unwrap(),
        Some(vec![5432, 8080])
    );
    svc.variables = Some([("HEALTHCHECK_TCP_PORT".to_string(), "6379".to_string())].into());
    assert_eq!(readiness_ports(&svc, &spec).unwrap(), Some(vec![6379]));
    svc.variables = Some([("HEALTHCHECK_TCP_PORT".to_string(), "0".to_string())].into());
    assert!(readiness_ports(&svc, &spec).is_err());
    svc.variables = None;
    for bad in [0, -1, 65536] {
        let spec = ImageSpec {
            ports: vec![bad],
            ..ImageSpec::default()
        };
        let (code, m) = message(readiness_ports(&svc, &spec).unwrap_err());
        assert_eq!(code, 1);
        assert!(m.contains("is not a TCP port number"), "{m}");
    }
}

#[test]
fn services_are_matched_to_their_description_by_position_and_name() {
    let svc = |n: &str| Service {
        name: n.into(),
        ..Service::default()
    };
    let spec = |n: &str, port: i64| ImageSpec {
        name: n.into(),
        ports: vec![port],
        ..ImageSpec::default()
    };
    let got = service_specs(
        &[svc("a"), svc("b"), svc("a"), svc("c")],
        &[spec("a", 1), spec("a", 3), spec("b", 2)],
    );
    let ports: Vec<Vec<i64>> = got.iter().map(|s| s.ports.clone()).collect();
    assert_eq!(ports, vec![vec![1], vec![2], vec![3], vec![]]);
}

#[test]
fn a_pull_the_registry_refuses_is_the_jobs_failure_an_unreachable_one_the_machines() {
    let job = |e: &str| {
        matches!(
            pull_failure("x", "without credentials", e),
            Failure::Build { .. }
        )
    };
    // what podman prints for registry answers (Docker Hub, distribution, GitLab, ghcr)
    for e in [
        "reading manifest latest in 127.0.0.1:5000/pogo/typo: manifest unknown",
        "initializing source docker://127.0.0.1:5000/x:1: reading manifest 1 in 127.0.0.1:5000/x: name unknown: repository name not known to registry",
        "reading manifest latest in docker.io/library/nope: requested access to the resource is denied",
        "initializing source docker://registry.example.com/a/b:1: reading manifest 1 in registry.example.com/a/b: unauthorized: authentication required",
        "reading manifest 1 in ghcr.io/o/p: denied",
    ] {
        assert!(job(e), "{e}");
    }
    for e in [
        "initializing source docker://localhost/x:latest: pinging container registry localhost: Get \"https://localhost/v2/\": dial tcp 127.0.0.1:443: connect: connection refused",
        "pinging container registry registry.example: Get \"https://registry.example/v2/\": dial tcp: lookup registry.example on 127.0.0.53:53: no such host",
        "copying system image from manifest list: writing blob: storing blob to file: write /var/tmp/x: no space left on device",
        "writing blob: storing blob to file \"/var/tmp/storage123/1\": open /var/tmp/storage123/1: permission denied",
        "net/http: TLS handshake timeout",
    ] {
        assert!(!job(e), "{e}");
    }
}

#[test]
fn an_image_user_other_than_root_is_told_apart_from_root() {
    let with = |u: Option<&str>| InspectedConfig {
        user: u.map(str::to_string),
        ..InspectedConfig::default()
    };
    for root in [
        None,
        Some(""),
        Some("0"),
        Some("root"),
        Some("0:0"),
        Some("root:wheel"),
    ] {
        assert!(!with(root).runs_as_non_root(), "{root:?}");
    }
    for other in [Some("1000"), Some("node"), Some("1000:1000"), Some("app:0")] {
        assert!(with(other).runs_as_non_root(), "{other:?}");
    }
}

/// An image as `podman image inspect` describes it.
fn inspected(json: &str) -> InspectedImage {
    serde_json::from_str(json).unwrap()
}

#[test]
fn stages_start_through_the_jobs_entrypoint_else_the_images() {
    let image = inspected(r#"{"Id":"i","Config":{"Entrypoint":["/docker-entrypoint.sh"]}}"#);
    let images = |job: &InspectedImage| Images {
        job: job.clone(),
        services: vec![],
        helper: None,
    };
    let ctx = context(
        "working_dir: /w\n",
        &[("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3")],
        r#"{"id":7,"token":"t","image":{"name":"alpine:3"}}"#,
    );
    let req = request(&ctx, vec![]).unwrap();
    let d = decide(&ctx.config, &req, &images(&image)).unwrap();
    assert_eq!(d.entrypoint, ["/docker-entrypoint.sh"]);
    assert_eq!(
        (d.non_root, d.builds, d.helper_entrypoint),
        (false, plan::BuildsVolume::None, None)
    );

    let ctx = context(
        "working_dir: /w\n",
        &[("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3")],
        r#"{"id":7,"token":"t","image":{"name":"alpine:3","entrypoint":[""]}}"#,
    );
    let req = request(&ctx, vec![]).unwrap();
    let d = decide(&ctx.config, &req, &images(&image)).unwrap();
    assert!(d.entrypoint.is_empty(), "`entrypoint: [\"\"]` clears it");

    // an image whose entrypoint cannot start anything is the job's failure, unless the
    // job's own `entrypoint: [""]` replaces it
    let broken = inspected(r#"{"Id":"i","Config":{"Entrypoint":["","x"]}}"#);
    assert!(decide(&ctx.config, &req, &images(&broken)).is_ok());
    let ctx = context(
        "working_dir: /w\n",
        &[("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3")],
        r#"{"id":7,"token":"t","image":{"name":"alpine:3"}}"#,
    );
    let req = request(&ctx, vec![]).unwrap();
    assert!(matches!(
        decide(&ctx.config, &req, &images(&broken)),
        Err(Failure::Build { .. })
    ));
}

#[test]
fn a_non_root_image_or_a_helper_image_gets_a_builds_volume_and_docker_user_decides() {
    let nobody = inspected(r#"{"Id":"i","Config":{"User":"nobody"}}"#);
    let root = inspected(r#"{"Id":"i","Config":{"User":"0:0"}}"#);
    let job = |image: &str| {
        context(
            "working_dir: /w\n",
            &[("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3")],
            &format!(r#"{{"id":7,"token":"t","image":{image}}}"#),
        )
    };
    let decided = |ctx: &Context, image: &InspectedImage, helper: Option<&str>| {
        let images = Images {
            job: image.clone(),
            services: vec![],
            helper: helper.map(|h| HelperImage {
                image: "localhost/helper:1".into(),
                inspected: inspected(h),
            }),
        };
        decide(&ctx.config, &request(ctx, vec![]).unwrap(), &images)
    };
    let plain = job(r#"{"name":"alpine:3"}"#);
    let d = decided(&plain, &nobody, None).unwrap();
    assert_eq!((d.non_root, d.builds), (true, plan::BuildsVolume::PerJob));
    let d = decided(&plain, &root, None).unwrap();
    assert_eq!((d.non_root, d.builds), (false, plan::BuildsVolume::None));
    // `docker: user` is who the container runs as, whatever the image's USER
    let as_root = job(r#"{"name":"alpine:3","executor_opts":{"docker":{"user":"root"}}}"#);
    assert!(!decided(&as_root, &nobody, None).unwrap().non_root);
    let as_user = job(r#"{"name":"alpine:3","executor_opts":{"docker":{"user":"1000"}}}"#);
    assert!(decided(&as_user, &root, None).unwrap().non_root);

    // a helper image shares the builds directory through a volume; its entrypoint is kept
    let d = decided(
        &plain,
        &root,
        Some(r#"{"Id":"h","Config":{"Entrypoint":["/helper-ep"]}}"#),
    )
    .unwrap();
    assert_eq!(d.builds, plan::BuildsVolume::PerJob);
    assert_eq!(d.helper_entrypoint, Some(vec!["/helper-ep".to_string()]));
    // a helper image that cannot start is the runner's problem, not the job's
    let e = decided(
        &plain,
        &root,
        Some(r#"{"Id":"h","Config":{"Entrypoint":[""," x"]}}"#),
    );
    assert!(
        matches!(&e, Err(Failure::System(m)) if m.contains("helper_image localhost/helper:1")),
        "{:?}",
        e.err()
    );
}

#[test]
fn services_are_waited_for_on_their_ports_else_the_images_exposed_tcp_ports() {
    let services = r#"[{"name":"postgres:16","alias":"db"},{"name":"redis:7","alias":"cache"}]"#;
    let ctx = context(
        "working_dir: /w\n",
        &[
            ("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3"),
            ("CUSTOM_ENV_CI_JOB_SERVICES", services),
        ],
        r#"{"id":7,"token":"t","image":{"name":"alpine:3"},
            "services":[{"name":"postgres:16","alias":"db","ports":[{"number":5433}]},
                        {"name":"redis:7","alias":"cache"}]}"#,
    );
    let req = request(&ctx, vec![]).unwrap();
    let exposing = |ports: &str| {
        inspected(&format!(
            r#"{{"Id":"s","Config":{{"ExposedPorts":{ports}}}}}"#
        ))
    };
    let images = Images {
        job: inspected(r#"{"Id":"j"}"#),
        services: vec![
            exposing(r#"{"5432/tcp":{}}"#),
            exposing(r#"{"6379/tcp":{},"6379/udp":{},"1/tcp":{}}"#),
        ],
        helper: None,
    };
    let d = decide(&ctx.config, &req, &images).unwrap();
    assert_eq!(d.service_waits, vec![vec![5433], vec![1, 6379]]);
}

#[test]
fn a_runners_job_that_fetches_gets_the_kept_builds_volume_and_pogo_exec_never_does() {
    let fetch = |env: &[(&str, &str)], response: &str| {
        let mut env = env.to_vec();
        env.push(("CUSTOM_ENV_CI_JOB_IMAGE", "alpine:3"));
        request(&context("working_dir: /w\n", &env, response), vec![])
            .unwrap()
            .fetch
    };
    let project_fetches = r#"{"id":7,"token":"t","allow_git_fetch":true}"#;
    let project_clones = r#"{"id":7,"token":"t","allow_git_fetch":false}"#;
    assert!(fetch(&[], project_fetches), "the project's setting");
    assert!(!fetch(&[], project_clones));
    assert!(fetch(
        &[("CUSTOM_ENV_GIT_STRATEGY", "fetch")],
        project_clones
    ));
    assert!(!fetch(
        &[("CUSTOM_ENV_GIT_STRATEGY", "none")],
        project_fetches
    ));
    // `pogo exec` copies the sources into a fresh builds directory for every job
    let local = [("POGO_LOCAL_MOUNTS", "[]")];
    assert!(!fetch(&local, project_fetches));
}
