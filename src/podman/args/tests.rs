use super::*;
use crate::executor::env::Service;

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
    for good in [
        "alpine",
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
    assert!(a.contains(&"/usr/bin/catatonit:/run/pogo/init:ro".to_string()));
    assert_eq!(
        &pull("x", Some("/auth.json"))[..],
        ["pull", "--authfile", "/auth.json", "--", "x"]
    );
}

#[test]
fn service_variable_values_never_reach_the_command_line() {
    let mut s = svc("postgres:15", "db");
    s.variables = Some([("POSTGRES_PASSWORD".to_string(), "s3cret".to_string())].into());
    s.command = Some(vec!["--privileged".into()]);
    let a = service_run("svc0", "pod", &[], &s);
    assert!(!a.iter().any(|x| x.contains("s3cret")));
    assert!(a
        .windows(2)
        .any(|w| w[0] == "--env" && w[1] == "POSTGRES_PASSWORD"));
    // a service command is positional, after the image
    let dd = a.iter().position(|x| x == "--").unwrap();
    assert_eq!(&a[dd + 1..], ["postgres:15", "--privileged"]);
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
