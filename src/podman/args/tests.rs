use super::*;
use crate::podman::service::Service;

fn svc(name: &str, alias: &str) -> Service {
    Service {
        name: name.into(),
        alias: alias.into(),
        ..Default::default()
    }
}

#[test]
fn hostile_image_names_are_refused_before_podman_sees_them() {
    for bad in [
        "--privileged",
        "-v=/:/host",
        "$(touch /tmp/pwned)",
        "alpine; rm -rf /",
        "alpine\nlatest",
        "alpine\0",
        "alp ine",
        "",
        "аlpine", // Cyrillic 'а'
        "`id`",
        "alpine|sh",
    ] {
        assert!(validate_image(bad).is_err(), "{bad:?} accepted");
    }
    assert!(validate_image(&"a".repeat(10 * 1024 * 1024)).is_err());
    for bad in [
        "../x",
        "./x",
        "/x",
        "a//b",
        "a/",
        "a:",
        "a@sha256:xyz",
        "a/b:c/d",
        "host:port/x",
    ] {
        assert!(validate_image(bad).is_err(), "{bad:?} accepted");
    }
    for good in [
        "alpine",
        "localhost/pogo-test/bash:latest",
        "a_b/c__d:1.0-rc_1",
        "docker.io/library/postgres:15",
        "127.0.0.1:5000/group/img:tag",
        "registry.example.com/a/b@sha256:0123abcd",
    ] {
        assert!(validate_image(good).is_ok(), "{good} refused");
    }
}

#[test]
fn job_images_come_after_double_dash_in_every_argv() {
    let labels = vec![("io.pogo.job-key".to_string(), "k".to_string())];
    let c = JobContainer {
        name: "n",
        docker: Docker::default(),
        pod: None,
        labels: &labels,
        volumes: vec!["/a:/b:ro".into()],
        extra_args: &["--env".to_string(), "A=b c".to_string()],
        keep_alive: KeepAlive::Init("/usr/bin/catatonit".into()),
        image: "img:1",
    };
    let a = job_run(&c);
    let dd = a.iter().position(|x| x == "--").unwrap();
    assert_eq!(&a[dd + 1..], ["img:1"]);
    assert!(
        a.contains(&"A=b c".to_string()),
        "quoted extra argument stays one argv element"
    );
    // pogo's own files are relabelled for SELinux (`z`)
    assert!(a.contains(&"/usr/bin/catatonit:/run/pogo/init:ro,z".to_string()));
    // a tag mount keeps exactly the options its owner wrote
    assert!(a.contains(&"/a:/b:ro".to_string()));
    assert_eq!(
        &pull("x", Some("/auth.json"), None)[..],
        ["pull", "--authfile", "/auth.json", "--", "x"]
    );
}

#[test]
fn service_variables_reach_the_service_through_a_file_and_secrets_never_the_command_line() {
    let mut s = svc("postgres:15", "db");
    s.variables = Some([("POSTGRES_PASSWORD".to_string(), "s3cret".to_string())].into());
    s.command = Some(vec!["--privileged".into()]);
    let file = std::path::Path::new("/w/jobdata/k/service0.env");
    let secrets = [("k-svc0-env0".to_string(), "CERT".to_string())];
    let docker = Docker::default();
    let run = ServiceRun {
        name: "svc0",
        pod: "pod",
        labels: &[],
        env_file: Some(file),
        secrets: &secrets,
        docker: &docker,
        extra_args: &[],
    };
    let a = service_run(&s, &run);
    assert!(!a
        .iter()
        .any(|x| x.contains("s3cret") || x.contains("POSTGRES_PASSWORD")));
    assert!(a.contains(&"--env-file=/w/jobdata/k/service0.env".to_string()));
    assert!(a.contains(&"--secret=k-svc0-env0,type=env,target=CERT".to_string()));
    // a service command is positional, after the image
    let dd = a.iter().position(|x| x == "--").unwrap();
    assert_eq!(&a[dd + 1..], ["postgres:15", "--privileged"]);
    assert!(!service_run(
        &s,
        &ServiceRun {
            env_file: None,
            secrets: &[],
            ..run
        }
    )
    .iter()
    .any(|x| x.starts_with("--env") || x.starts_with("--secret")));
}

#[test]
fn a_tags_service_arguments_reach_every_service_container_before_the_image() {
    let s = svc("postgres:15", "db");
    let docker = Docker::default();
    let extra = [
        "--memory".to_string(),
        "512m".to_string(),
        "--cpus=1".to_string(),
    ];
    let run = ServiceRun {
        name: "k-svc0",
        pod: "k-pod",
        labels: &[],
        env_file: None,
        secrets: &[],
        docker: &docker,
        extra_args: &extra,
    };
    let a = service_run(&s, &run);
    let dd = a.iter().position(|x| x == "--").unwrap();
    let at = a.iter().position(|x| x == "--memory").unwrap();
    assert!(at < dd, "{a:?}");
    assert_eq!(&a[at..at + 3], ["--memory", "512m", "--cpus=1"]);
    assert_eq!(&a[dd + 1..], ["postgres:15"]);
}

#[test]
fn the_service_env_file_carries_single_line_values_verbatim_the_rest_go_to_secrets() {
    let mut s = svc("postgres:15", "db");
    s.variables = Some(
        [
            ("A".to_string(), " spaced  ".to_string()),
            (
                "B".to_string(),
                "\"quoted\" #not a comment $HOME".to_string(),
            ),
            ("C".to_string(), "with=equals\rinside".to_string()),
            ("CERT".to_string(), "line 1\nline 2\n".to_string()),
            ("CR".to_string(), "ends in\r".to_string()),
            ("E".to_string(), String::new()),
            ("HUGE".to_string(), "x".repeat(64 * 1024)),
        ]
        .into(),
    );
    let env = service_env(&s).unwrap();
    assert_eq!(
        env.file.as_deref(),
        Some("A= spaced  \nB=\"quoted\" #not a comment $HOME\nC=with=equals\rinside\nE=\n")
    );
    let secret_vars: Vec<&str> = env.secrets.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(secret_vars, ["CERT", "CR", "HUGE"]);
    assert_eq!(env.secrets[0].1, "line 1\nline 2\n");
    s.variables = Some(Default::default());
    assert_eq!(service_env(&s).unwrap(), ServiceEnv::default());
    s.variables = None;
    assert_eq!(service_env(&s).unwrap(), ServiceEnv::default());
}

#[test]
fn a_service_variable_no_environment_can_hold_is_refused_saying_why() {
    let mut s = svc("postgres:15", "db");
    s.variables = Some([("NUL".to_string(), "a\0b".to_string())].into());
    assert!(service_env(&s).unwrap_err().contains("NUL byte"));
    s.variables = Some([("BLOB".to_string(), "x".repeat(600_000))].into());
    assert!(service_env(&s).unwrap_err().contains("over 500 kB"));
    s.variables = Some([("LD-PRELOAD".to_string(), "x".to_string())].into());
    assert!(service_env(&s)
        .unwrap_err()
        .contains("invalid variable name"));
}

#[test]
fn a_jobs_secrets_are_found_by_their_names_prefix_only() {
    assert_eq!(
        service_secret_name("pogo-r-1-0-svc2", 3),
        "pogo-r-1-0-svc2-env3"
    );
    let listed = "pogo-r-1-0-svc0-env0\npogo-r-1-01-svc0-env0\nmine\npogo-r-1-0-svc1-env2\n";
    assert_eq!(
        job_secrets(listed, "pogo-r-1-0"),
        ["pogo-r-1-0-svc0-env0", "pogo-r-1-0-svc1-env2"]
    );
    assert_eq!(
        secret_create("n", &[]),
        ["secret", "create", "--", "n", "-"]
    );
}

#[test]
fn services_get_docker_executor_host_names() {
    assert_eq!(
        service_hostnames(&svc("postgres:15", "")),
        vec!["postgres", "library__postgres", "library-postgres"]
    );
    assert_eq!(
        service_hostnames(&svc("tutum/wordpress:latest", "wp")),
        vec!["wp", "tutum__wordpress", "tutum-wordpress"]
    );
    assert_eq!(
        service_hostnames(&svc("127.0.0.1:5000/g/redis:7", "")),
        vec!["127.0.0.1__g__redis", "127.0.0.1-g-redis"],
        "a registry port is not a tag"
    );
    assert_eq!(
        service_hostnames(&svc("x", "$(id) -v")),
        vec!["x", "library__x", "library-x"]
    );
}

#[test]
fn cleanup_selects_by_the_job_label_only() {
    let a = containers_rm("pogo-r-1-0");
    assert!(a.contains(&"label=io.pogo.job-key=pogo-r-1-0".to_string()));
    assert!(!a.iter().any(|x| x == "prune" || x == "--all" || x == "-a"));
}

/// Values a job author controls, chosen to turn into podman options or shell code if pogo
/// ever pasted them into a command line.
fn hostile_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "--privileged",
        "-v=/:/host",
        "--volume=/:/host",
        "-v",
        "--network=host",
        "--pid=host",
        "--entrypoint=/bin/sh",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "; touch /tmp/pwned",
        "| touch /tmp/pwned",
        "&& touch /tmp/pwned",
        "a\nb",
        "a\rb",
        "a\0b",
        "../../etc/passwd",
        "..",
        "аlpine",         // Cyrillic а
        "alpine\u{200b}", // zero-width space
        "ａｌｐｉｎｅ",   // full-width letters
        "'quoted'",
        "\"double\"",
        "name with spaces",
        "",
        "-",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(10 * 1024 * 1024));
    v
}

#[test]
fn hostile_job_values_never_become_options_or_leave_their_argv_slot() {
    let hostile = hostile_values();
    assert!(hostile.len() >= 20);
    for h in &hostile {
        // as a job or service image: refused outright (none of them is a plain image name)
        let shown: String = h.chars().take(40).collect();
        assert!(validate_image(h).is_err(), "image {shown:?} accepted");

        // as a service's alias, entrypoint, command and variable *value*: each stays one argv
        // element after the image, inside the entrypoint JSON, or out of the argv entirely
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("SAFE_NAME".to_string(), h.clone());
        let svc = Service {
            name: "registry.example.com/db:1".into(),
            alias: h.clone(),
            entrypoint: Some(vec![h.clone()]),
            command: Some(vec![h.clone(), "second".into()]),
            variables: Some(vars),
        };
        let docker = Docker::default();
        let run = ServiceRun {
            name: "pogo-r-1-0-svc0",
            pod: "pogo-r-1-0-pod",
            labels: &[],
            env_file: Some(std::path::Path::new("/w/service0.env")),
            secrets: &[],
            docker: &docker,
            extra_args: &[],
        };
        let a = service_run(&svc, &run);
        let dd = a.iter().position(|x| x == "--").unwrap();
        let expected_head: Vec<String> = [
            "run",
            "-d",
            "--name",
            "pogo-r-1-0-svc0",
            "--pod",
            "pogo-r-1-0-pod",
            "--env-file=/w/service0.env",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(&a[..7], &expected_head[..], "{shown:?}");
        assert_eq!(
            a[7],
            format!("--entrypoint={}", serde_json::to_string(&[h]).unwrap())
        );
        assert_eq!(dd, 8);
        assert_eq!(
            &a[9..],
            &[
                "registry.example.com/db:1".to_string(),
                h.clone(),
                "second".into()
            ]
        );
        assert!(
            !a.iter().any(|x| x.contains("SAFE_NAME")),
            "variables stay off the argv"
        );

        // as an alias or image-derived host name: only valid host names reach --add-host
        for name in service_hostnames(&svc) {
            assert!(valid_hostname(&name), "{name:?}");
            let pod = pod_create("p", &[], std::slice::from_ref(&name));
            assert_eq!(pod.last().unwrap(), &format!("{name}:127.0.0.1"));
        }

        // as a variable *name*: refused before it could reach the env file
        assert!(!valid_env_name(h), "env name {shown:?} accepted");
        let mut named = svc.clone();
        named.variables = Some([(h.clone(), "v".to_string())].into());
        assert!(service_env(&named).is_err(), "env name {shown:?} accepted");

        // in names and labels: sanitised to a fixed alphabet / no control characters
        let n = crate::executor::env::Names::new(h, h, h, h);
        assert!(n
            .container
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        assert!(!n.container.starts_with('-'));
        let l = crate::podman::labels::sanitize_label_value(h);
        assert!(!l.chars().any(char::is_control) && l.len() <= 256 * 4);
    }
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[test]
fn docker_platform_and_user_of_a_job_are_checked_and_stay_one_argument_each() {
    for (platform, user) in [
        (Some("linux/arm64"), None),
        (Some("arm64/v8"), Some("1000:1000")),
        (None, Some("nobody")),
        (Some("linux/arm/v7"), Some("app_user:staff")),
    ] {
        assert_eq!(
            validate_docker_options(platform, user),
            Ok(()),
            "{platform:?} {user:?}"
        );
    }
    for (platform, user) in [
        (Some("--privileged"), None),
        (Some("linux/amd64 --rm"), None),
        (Some("a/b/c/d"), None),
        (None, Some("-u0")),
        (None, Some("root;id")),
        (None, Some("a:b:c")),
        (None, Some("")),
    ] {
        assert!(
            validate_docker_options(platform, user).is_err(),
            "{platform:?} {user:?}"
        );
    }
    assert_eq!(normalize_platform("arm64/v8"), "linux/arm64/v8");
    assert_eq!(normalize_platform("aarch64"), "linux/arm64");
    assert_eq!(normalize_platform("linux/x86_64"), "linux/amd64");
    assert_eq!(normalize_platform("windows/amd64"), "windows/amd64");
    let labels = vec![];
    let c = JobContainer {
        name: "n",
        docker: Docker {
            platform: Some("linux/arm64"),
            user: Some("1000"),
        },
        pod: None,
        labels: &labels,
        volumes: vec![],
        extra_args: &["--user=2000".to_string()],
        keep_alive: KeepAlive::Init("/usr/bin/catatonit".into()),
        image: "img:1",
    };
    let a = job_run(&c);
    let at = |x: &str| a.iter().position(|y| y == x).unwrap();
    // the owner's tag arguments come after the job's, and win
    assert!(at("--platform=linux/arm64") < at("--user=2000"));
    assert!(at("--user=1000") < at("--user=2000"));
    assert_eq!(
        pull("img:1", None, Some("linux/arm64")),
        ["pull", "--platform=linux/arm64", "--", "img:1"]
    );
}
